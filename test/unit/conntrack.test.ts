// Connection tracking's budget of host descriptors: flows with their own sockets give back
// what they hold; shared sockets count once.
import t from 'tap'
import { ConnTrack, flowKey, type TrackedFlow } from '../../src/nat/conntrack.js'

function flow(port: number): TrackedFlow {
  return {
    proto: 'tcp',
    network: 'n1',
    sandboxIp: 0x0a000002,
    sandboxPort: port,
    remoteIp: 0x0a000001,
    remotePort: 80,
    direction: 'egress',
    state: 'established',
    lastActive: Date.now(),
    bytesIn: 0,
    bytesOut: 0,
    timeoutMs: () => 60_000,
    close: () => undefined,
  }
}

t.test('a TCP flow holds two descriptors until it goes; the budget refuses beyond', async (t) => {
  const ct = new ConnTrack({ maxSockets: 4 })
  t.teardown(() => ct.close())
  const k1 = flowKey('tcp', 'n1', 0x0a000002, 1000, 0x0a000001, 80)
  const k2 = flowKey('tcp', 'n1', 0x0a000002, 1001, 0x0a000001, 80)
  t.equal(ct.admit('n1', 0x0a000002, true), undefined)
  ct.add(k1, flow(1000), 2)
  ct.add(k2, flow(1001), 2)
  t.equal(ct.sockets, 4, 'two flows, four descriptors')
  t.equal(ct.admit('n1', 0x0a000002, true), 'no_socket', 'the budget is spent')
  t.equal(ct.counters.refusedSockets, 1)
  t.equal(ct.admit('n1', 0x0a000002, false), undefined, 'a flow without a socket of its own still fits')
  ct.remove(k1)
  ct.remove(k1)
  t.equal(ct.sockets, 2, 'given back once, however often removed')
  ct.add(flowKey('udp', 'n1', 0x0a000002, 53, 0x0a000001, 53), { ...flow(53), proto: 'udp' })
  t.equal(ct.sockets, 2, 'a flow on a shared socket holds none of its own')
  ct.holdSocket()
  t.equal(ct.sockets, 3)
  ct.releaseSocket()
  ct.remove(k2)
  t.equal(ct.sockets, 0)
})
