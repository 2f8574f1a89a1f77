// Egress UDP mappings (RFC 4787 endpoint-independent mapping, address-and-port-dependent
// filtering) and their conntrack accounting, with fake host sockets: frames from a sandbox
// go in through Nat.egress, datagrams from the world are 'message' events on the fakes.
import t, { type Test } from 'tap'
import type dgram from 'node:dgram'
import { EventEmitter } from 'node:events'
import { sendUdp } from '../../src/gateway/frames.js'
import { Nat, type NatLimits, type NatNetwork } from '../../src/nat/nat.js'
import { ipv4Dst, ipv4Src, ipv4ToString, parseIpv4 } from '../../src/packet/ipv4.js'
import { udpDstPort, udpSrcPort } from '../../src/packet/udp.js'

const GW = parseIpv4('10.0.0.1')
const SB = parseIpv4('10.0.0.2')
const SB_MAC = 0x020000000002
const NET: NatNetwork = { id: 'n1', gatewayIp: GW, gatewayMac: 0x025300000001, mtu: 1500, internal: false }
const SB_PORT = 7

class FakeSocket extends EventEmitter {
  readonly sent: { to: string; data: string }[] = []
  bound?: number
  closed = false

  bind(a?: number | { port: number }, cb?: () => void): this {
    this.bound = typeof a === 'number' ? a : (a?.port ?? 0)
    if (cb) setImmediate(cb)
    return this
  }

  send(msg: Buffer, port: number, address: string): void {
    this.sent.push({ to: `${address}:${port}`, data: msg.toString() })
  }

  close(): void {
    if (this.closed) throw new Error('closed twice')
    this.closed = true
  }

  /** A datagram from the world. */
  from(addr: string, data: string): void {
    const i = addr.lastIndexOf(':')
    this.emit('message', Buffer.from(data), { address: addr.slice(0, i), port: Number(addr.slice(i + 1)), family: 'IPv4', size: data.length })
  }
}

interface ToSandbox {
  from: string
  to: string
  data: string
}

function setup(t: Test, limits: NatLimits = {}) {
  const sockets: FakeSocket[] = []
  const frames: ToSandbox[] = []
  const nat = new Nat({
    maxSockets: 100,
    ...limits,
    send: (_port, buf, len) => {
      const ip = 14
      const udp = ip + 20
      frames.push({
        from: `${ipv4ToString(ipv4Src(buf, ip))}:${udpSrcPort(buf, udp)}`,
        to: `${ipv4ToString(ipv4Dst(buf, ip))}:${udpDstPort(buf, udp)}`,
        data: Buffer.from(buf.subarray(udp + 8, len)).toString(),
      })
      return true
    },
    udpSocket: () => {
      const s = new FakeSocket()
      sockets.push(s)
      return s as unknown as dgram.Socket
    },
  })
  const slab = new Uint8Array(2048)
  /** A datagram from the sandbox, from SB:sport to `to`. */
  const egress = (sport: number, to: string, data = 'x') => {
    const [ip, port] = to.split(':')
    const addr = { srcMac: SB_MAC, dstMac: NET.gatewayMac, srcIp: SB, dstIp: parseIpv4(ip), srcPort: sport, dstPort: Number(port) }
    sendUdp((_p, buf, len) => (nat.egress(NET, SB_PORT, buf, 0, len, 0), true), SB_PORT, slab, 0, addr, Buffer.from(data), 1500)
  }
  t.teardown(() => nat.close())
  return { nat, sockets, frames, egress }
}

t.test('the flows of one sandbox port share one host socket; each is its own tracked flow', async (t) => {
  const { nat, sockets, egress } = setup(t)
  egress(5000, '192.0.2.1:53', 'a')
  egress(5000, '192.0.2.1:54', 'b')
  egress(5000, '198.51.100.7:53', 'c')
  egress(5000, '192.0.2.1:53', 'd')
  t.equal(sockets.length, 1, 'one socket for three remotes')
  t.equal(sockets[0].bound, 0, 'bound to an ephemeral port')
  t.same(sockets[0].sent.map((s) => `${s.to} ${s.data}`), ['192.0.2.1:53 a', '192.0.2.1:54 b', '198.51.100.7:53 c', '192.0.2.1:53 d'])
  t.equal(nat.ct.size, 3, 'three flows tracked')
  t.equal(nat.ct.sockets, 1, 'one socket counted')
  t.equal(nat.udpMappings.size, 1)
  t.same(nat.list().map((f) => `${ipv4ToString(f.sandboxIp)}:${f.sandboxPort} ${ipv4ToString(f.remoteIp)}:${f.remotePort} ${f.state}`).sort(), [
    '10.0.0.2:5000 192.0.2.1:53 unreplied',
    '10.0.0.2:5000 192.0.2.1:54 unreplied',
    '10.0.0.2:5000 198.51.100.7:53 unreplied',
  ])
  egress(5001, '192.0.2.1:53')
  t.equal(sockets.length, 2, 'another source port is another mapping')
  t.equal(nat.ct.sockets, 2)
})

t.test('replies find their flow by sender; datagrams from anyone else are filtered', async (t) => {
  const { nat, sockets, frames, egress } = setup(t)
  egress(5000, '192.0.2.1:53')
  egress(5000, '198.51.100.7:123')
  const s = sockets[0]
  s.from('198.51.100.7:123', 'r1')
  s.from('192.0.2.1:53', 'r2')
  t.same(frames, [
    { from: '198.51.100.7:123', to: '10.0.0.2:5000', data: 'r1' },
    { from: '192.0.2.1:53', to: '10.0.0.2:5000', data: 'r2' },
  ])
  t.ok(nat.list().every((f) => f.state === 'replied'))
  s.from('192.0.2.1:54', 'known address, other port')
  s.from('203.0.113.9:53', 'a stranger')
  s.from('::1:53', 'not IPv4')
  t.equal(frames.length, 2, 'none of them reached the sandbox')
  t.equal(nat.counters.udpFiltered, 3)
  t.equal(nat.ct.size, 2, 'and they made no flow')
})

t.test('the gateway address stands for the host loopback', async (t) => {
  const { sockets, frames, egress } = setup(t)
  egress(5000, '10.0.0.1:5353', 'q')
  t.same(sockets[0].sent, [{ to: '127.0.0.1:5353', data: 'q' }])
  sockets[0].from('127.0.0.1:5353', 'a')
  t.same(frames, [{ from: '10.0.0.1:5353', to: '10.0.0.2:5000', data: 'a' }])
})

t.test('sockets are counted per mapping, flows per flow', async (t) => {
  const { nat, sockets, egress } = setup(t, { maxSockets: 1, maxPerSandbox: 3 })
  egress(5000, '192.0.2.1:53')
  egress(5001, '192.0.2.1:53')
  t.equal(sockets.length, 1, 'no socket for a second mapping')
  t.equal(nat.ct.counters.refusedSockets, 1)
  t.equal(nat.counters.refusedLimit, 1)
  egress(5000, '192.0.2.2:53')
  egress(5000, '192.0.2.3:53')
  t.equal(nat.ct.size, 3, 'new flows on the existing mapping need no socket')
  t.equal(sockets[0].sent.length, 3)
  egress(5000, '192.0.2.4:53')
  t.equal(nat.ct.counters.refusedSandboxLimit, 1, 'but the per-sandbox limit still counts flows')
  t.equal(nat.ct.size, 3)
  t.equal(nat.ct.counters.refusedSockets, 1)
})

t.test('idle flows expire after their timeouts; the last one takes the socket', async (t) => {
  const { nat, sockets, egress } = setup(t, { udpTimeoutMs: 1000, udpStreamTimeoutMs: 5000 })
  egress(5000, '192.0.2.1:53')
  egress(5000, '192.0.2.2:53')
  sockets[0].from('192.0.2.2:53', 'answer')
  const now = Date.now()
  t.equal(nat.ct.expire(now + 900), 0)
  t.equal(nat.ct.expire(now + 2000), 1, 'the unanswered flow after 1 s')
  t.equal(nat.ct.size, 1)
  t.notOk(sockets[0].closed, 'the answered one still holds the mapping')
  t.equal(nat.ct.expire(now + 4500), 0)
  t.equal(nat.ct.expire(now + 6000), 1, 'the answered flow after 5 s')
  t.ok(sockets[0].closed, 'the socket closed with its last flow')
  t.equal(nat.ct.sockets, 0)
  t.equal(nat.udpMappings.size, 0)
  egress(5000, '192.0.2.1:53')
  t.equal(sockets.length, 2, 'the next datagram makes a new mapping')
  t.equal(nat.ct.sockets, 1)
})

t.test('a socket error closes the flows of its mapping, counted', async (t) => {
  const { nat, sockets, egress } = setup(t)
  egress(5000, '192.0.2.1:53')
  egress(5000, '192.0.2.2:53')
  egress(5001, '192.0.2.1:53')
  sockets[0].emit('error', Object.assign(new Error('bind EMFILE'), { code: 'EMFILE' }))
  t.equal(nat.counters.socketErrors, 1)
  t.ok(sockets[0].closed)
  t.equal(nat.ct.size, 1, 'the other mapping keeps its flow')
  t.equal(nat.ct.sockets, 1)
  t.equal(nat.udpMappings.size, 1)
})

t.test('a published port shares its socket among its clients the same way', async (t) => {
  const { nat, sockets, frames, egress } = setup(t)
  await nat.publish('ep1', { hostIp: '0.0.0.0', hostPort: 5354, port: 5353, proto: 'udp' }, () => ({ network: NET, port: SB_PORT, hdr: 0, sandboxIp: SB, sandboxMac: SB_MAC }))
  const s = sockets[0]
  t.equal(s.bound, 5354)
  s.from('192.0.2.1:4000', 'q1')
  s.from('192.0.2.2:4000', 'q2')
  s.from('127.0.0.1:4001', 'q3')
  t.same(frames, [
    { from: '192.0.2.1:4000', to: '10.0.0.2:5353', data: 'q1' },
    { from: '192.0.2.2:4000', to: '10.0.0.2:5353', data: 'q2' },
    { from: '10.0.0.1:4001', to: '10.0.0.2:5353', data: 'q3' },
  ])
  egress(5353, '192.0.2.2:4000', 'a2')
  egress(5353, '10.0.0.1:4001', 'a3')
  t.same(s.sent, [
    { to: '192.0.2.2:4000', data: 'a2' },
    { to: '127.0.0.1:4001', data: 'a3' },
  ])
  t.equal(sockets.length, 1, 'answers go out on the published socket')
  t.equal(nat.ct.size, 3)
  t.ok(nat.list().every((f) => f.direction === 'published'))
  nat.unpublish('ep1')
  t.ok(s.closed)
  t.equal(nat.ct.size, 0, 'unpublishing closed its flows')
})
