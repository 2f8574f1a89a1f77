// The per-frame pipeline as a table: (ports, frames in) -> (frames out per port, counters).
import t from 'tap'
import { C, CounterTable } from '../../src/switch/counters.js'
import { Forwarder, type LocalStack } from '../../src/switch/forwarder.js'
import { MacTable } from '../../src/switch/mac-table.js'
import { PortTable } from '../../src/switch/ports.js'
import { writeMac } from '../../src/packet/mac.js'

const HDR = 12
const BCAST = 0xffffffffffff
const mac = (n: number) => 0x020000000000 + n

function rig(netOf: number[], maxTx = 1024) {
  const ports = new PortTable()
  const counters = new CounterTable()
  const fdb = new MacTable()
  const sent: { fd: number; off: number; len: number }[] = []
  const fwd = new Forwarder(fdb, ports, counters, (_slab, desc, n) => {
    for (let i = 0; i < n; i++) {
      sent.push({ fd: desc[i * 4], off: desc[i * 4 + 1], len: desc[i * 4 + 2] })
      desc[i * 4 + 3] = desc[i * 4 + 2]
    }
    return n
  }, maxTx)
  const members = new Map<number, number[]>()
  netOf.forEach((net, i) => {
    const p = ports.alloc(`p${i}`)
    counters.ensure(p)
    ports.fd[p] = 100 + p
    ports.net[p] = net
    ports.hdr[p] = HDR
    ports.maxFrame[p] = 1518
    members.set(net, [...(members.get(net) ?? []), p])
  })
  for (const [net, ps] of members) fwd.setMembers(net, ps)
  const slab = new Uint8Array(1 << 20)
  const meta = new Int32Array(128)
  let off = 0
  const frames: number[][] = []
  return {
    fwd,
    counters,
    sent,
    fdb,
    /** Queues a frame (virtio header + Ethernet) for the next process() call. */
    frame(dst: number, src: number, l2len = 60, gso = 0) {
      slab.fill(0, off, off + HDR + l2len)
      slab[off + 1] = gso
      writeMac(slab, off + HDR, dst)
      writeMac(slab, off + HDR + 6, src)
      frames.push([off, HDR + l2len])
      off += HDR + l2len + 8
    },
    run(inPort: number, now = 0) {
      frames.forEach(([o, l], i) => {
        meta[2 * i] = o
        meta[2 * i + 1] = l
      })
      sent.length = 0
      fdb.clock[0] = now
      fwd.process(inPort, slab, meta, frames.length)
      frames.length = 0
      off = 0
      return sent.map((s) => s.fd - 100)
    },
  }
}

t.test('broadcast floods to every other port of the network only', async (t) => {
  const r = rig([0, 0, 0, 1])
  r.frame(BCAST, mac(1))
  t.same(r.run(0), [1, 2], 'not back to port 0, not to network 1')
})

t.test('multicast floods like broadcast', async (t) => {
  const r = rig([0, 0, 0])
  r.frame(0x01005e000001, mac(1))
  t.same(r.run(1), [0, 2])
})

t.test('unknown unicast floods; known unicast goes to one port', async (t) => {
  const r = rig([0, 0, 0])
  r.frame(mac(2), mac(1))
  t.same(r.run(0), [1, 2], 'unknown: flood')
  r.frame(mac(1), mac(2))
  t.same(r.run(2), [0], 'reply goes straight back to the learned port')
  r.frame(mac(2), mac(1))
  t.same(r.run(0), [2], 'now both are known')
})

t.test('a frame for a MAC learned on the ingress port is not sent back', async (t) => {
  const r = rig([0, 0])
  r.frame(BCAST, mac(5))
  r.run(0)
  r.frame(mac(5), mac(6))
  t.same(r.run(0), [])
  t.equal(r.counters.get(0, C.DROP_SAME_PORT), 1)
})

t.test('runts, oversize and multicast sources are dropped and counted', async (t) => {
  const r = rig([0, 0])
  r.frame(BCAST, mac(1), 13) // shorter than an Ethernet header
  r.frame(BCAST, mac(1), 1600) // over MTU 1500 + 18, no GSO
  r.frame(BCAST, 0x010000000001) // multicast source
  t.same(r.run(0), [])
  t.equal(r.counters.get(0, C.DROP_RUNT), 1)
  t.equal(r.counters.get(0, C.DROP_OVERSIZE), 1)
  t.equal(r.counters.get(0, C.DROP_BAD_SRC), 1)
  t.equal(r.fdb.count, 0, 'nothing learned from bad frames')
  t.equal(r.counters.get(0, C.RX_PACKETS), 3)
})

t.test('a large frame with a GSO type passes (TSO)', async (t) => {
  const r = rig([0, 0])
  r.frame(BCAST, mac(1), 65000, 1)
  t.same(r.run(0), [1])
  t.equal(r.counters.get(1, C.TX_BYTES), 65000)
})

t.test('frames to the local stack MAC go to it, broadcasts go to it and are flooded', async (t) => {
  const r = rig([0, 0])
  const got: number[] = []
  const stack: LocalStack = {
    mac: mac(99),
    receive: (_net, inPort) => {
      got.push(inPort)
    },
  }
  r.fwd.setLocalStack(0, stack)
  r.frame(mac(99), mac(1))
  t.same(r.run(0), [], 'unicast to the gateway is not forwarded')
  r.frame(BCAST, mac(1))
  t.same(r.run(1), [0])
  t.same(got, [0, 1])
})

t.test('a broadcast the local stack answered (ARP suppression) is not flooded', async (t) => {
  const r = rig([0, 0, 0])
  let answered = 0
  r.fwd.setLocalStack(0, { mac: mac(99), receive: () => (answered++, true) })
  r.frame(BCAST, mac(1))
  t.same(r.run(0), [], 'not flooded')
  t.equal(answered, 1)
})

t.test('a batch larger than the descriptor array is flushed in parts', async (t) => {
  const r = rig([0, 0, 0, 0], 4)
  for (let i = 0; i < 10; i++) r.frame(BCAST, mac(1))
  t.equal(r.run(0).length, 30)
  t.equal(r.counters.get(1, C.TX_PACKETS), 10)
})

t.test('write errors are counted per port', async (t) => {
  const ports = new PortTable()
  const counters = new CounterTable()
  const fwd = new Forwarder(new MacTable(), ports, counters, (_s, desc, n) => {
    for (let i = 0; i < n; i++) desc[i * 4 + 3] = -5
    return 0
  })
  for (let i = 0; i < 2; i++) {
    const p = ports.alloc(`p${i}`)
    ports.fd[p] = 10 + p
    ports.net[p] = 0
    ports.hdr[p] = 0
    ports.maxFrame[p] = 1518
  }
  fwd.setMembers(0, [0, 1])
  const slab = new Uint8Array(64)
  slab.fill(0xff, 0, 6)
  writeMac(slab, 6, mac(1))
  fwd.process(0, slab, Int32Array.of(0, 60), 1)
  t.equal(counters.get(1, C.DROP_TX_ERROR), 1)
  t.equal(counters.get(1, C.TX_PACKETS), 0)
})
