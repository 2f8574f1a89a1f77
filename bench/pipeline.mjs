// Microbenchmark of the per-frame pipeline (parse, learn, look up, decide) with the
// `benchmark` package: no kernel, no syscalls — the forwarder's loop over a batch of 64
// frames with the native write replaced by a no-op. Run: node bench/pipeline.mjs
// Also measures the same loop with 1,000 ports and 1,000,000 MAC entries learned, and the
// daemon-sized table's memory.
import Benchmark from 'benchmark'
import { Forwarder } from '../dist/switch/forwarder.js'
import { MacTable } from '../dist/switch/mac-table.js'
import { PortTable } from '../dist/switch/ports.js'
import { CounterTable } from '../dist/switch/counters.js'
import { writeMac } from '../dist/packet/mac.js'

const HDR = 10
const BATCH = 64

function rig(nPorts, nMacs) {
  const ports = new PortTable()
  const counters = new CounterTable()
  const fdb = new MacTable({ capacity: Math.max(65536, nMacs + 1024), portLimit: Math.max(4096, nMacs) })
  for (let i = 0; i < nPorts; i++) {
    const p = ports.alloc(`p${i}`)
    counters.ensure(p)
    ports.fd[p] = 100 + p
    ports.net[p] = 0
    ports.hdr[p] = HDR
    ports.maxFrame[p] = 1518
  }
  const fwd = new Forwarder(fdb, ports, counters, (_s, desc, n) => {
    for (let i = 0; i < n; i++) desc[i * 4 + 3] = desc[i * 4 + 2]
    return n
  })
  fwd.setMembers(0, Array.from({ length: nPorts }, (_, i) => i))
  // Background hosts spread over all ports (port 0 and 1 are the measured pair).
  for (let i = 0; i < nMacs; i++) fdb.learn(0, 0x020000000000 + 1000 + i, 2 + (i % (nPorts - 2)), 0)
  // A batch of 64 unicast frames port 0 -> port 1, of two known hosts.
  const slab = new Uint8Array(BATCH * 128)
  const meta = new Int32Array(BATCH * 2)
  const a = 0x020000000001
  const b = 0x020000000002
  fdb.learn(0, b, 1, 0)
  for (let i = 0; i < BATCH; i++) {
    const off = i * 128
    writeMac(slab, off + HDR, b)
    writeMac(slab, off + HDR + 6, a)
    slab[off + HDR + 12] = 0x08
    meta[2 * i] = off
    meta[2 * i + 1] = HDR + 60
  }
  return { fwd, slab, meta }
}

function rssMiB() {
  return (process.memoryUsage().rss / 1048576).toFixed(0)
}

const small = rig(2 + 1, 0)
const base = rssMiB()
const big = rig(1000, 1_000_000)
const bigRss = rssMiB()
// A fixed clock: the learned hosts must not age out while the benchmark runs.
small.fwd.fdb.clock[0] = 1
big.fwd.fdb.clock[0] = 1

const suite = new Benchmark.Suite()
suite
  .add('2 ports, 2 MACs: batch of 64 frames', () => small.fwd.process(0, small.slab, small.meta, BATCH))
  .add('1,000 ports, 1,000,000 MACs: batch of 64 frames', () => big.fwd.process(0, big.slab, big.meta, BATCH))
  .on('cycle', (e) => {
    const t = e.target
    const nsPerFrame = (1e9 / t.hz / BATCH).toFixed(1)
    console.log(`${t.name}: ${nsPerFrame} ns/frame (±${t.stats.rme.toFixed(1)}%, ${t.stats.sample.length} samples)`)
  })
  .on('complete', function () {
    const [s, b] = this.map((t) => 1e9 / t.hz / BATCH)
    console.log(`large/small: ${(b / s).toFixed(2)}x; resident memory: ${base} MiB small, ${bigRss} MiB with 1,000,000 MACs`)
  })
  .run()
