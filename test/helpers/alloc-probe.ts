// Run as a child process with --expose-gc: pushes frames through the forwarder until V8 has
// optimized it, then counts what the heap grew by and the young-generation collections over
// a measured run. Prints one JSON line: { frames, bytesPerFrame, scavenges, ms }, where
// bytesPerFrame is the young generation's growth (compiled code lands elsewhere).
// The traffic mixes every forwarding decision: known unicast both ways, unknown unicast
// (flooded), broadcast, and a runt (dropped).
import { PerformanceObserver, constants, performance } from 'node:perf_hooks'
import v8 from 'node:v8'
import { CounterTable } from '../../src/switch/counters.js'
import { Forwarder } from '../../src/switch/forwarder.js'
import { MacTable } from '../../src/switch/mac-table.js'
import { PortTable } from '../../src/switch/ports.js'
import { writeMac } from '../../src/packet/mac.js'

const HDR = 12
const BATCH = 64
const SLOT = 128
const mac = (n: number) => 0x0242ac110000 + n

const ports = new PortTable()
const counters = new CounterTable()
const fdb = new MacTable()
const fwd = new Forwarder(fdb, ports, counters, (_slab, desc, n) => {
  for (let i = 0; i < n; i++) desc[i * 4 + 3] = desc[i * 4 + 2]
  return n
})
for (let i = 0; i < 4; i++) {
  const p = ports.alloc(`p${i}`)
  counters.ensure(p)
  ports.fd[p] = 100 + p
  ports.net[p] = 0
  ports.hdr[p] = HDR
  ports.maxFrame[p] = 1518
}
fwd.setMembers(0, [0, 1, 2, 3])

/** One batch from port `from`: frames from `src` to `dst`, and a few of other kinds. */
function batch(from: number, src: number, dst: number) {
  const slab = new Uint8Array(BATCH * SLOT)
  const meta = new Int32Array(BATCH * 2)
  for (let i = 0; i < BATCH; i++) {
    const off = i * SLOT
    const kind = i % 16
    writeMac(slab, off + HDR, kind === 1 ? 0xffffffffffff : kind === 2 ? mac(999) : dst)
    writeMac(slab, off + HDR + 6, src)
    slab[off + HDR + 12] = 0x08
    meta[2 * i] = off
    meta[2 * i + 1] = kind === 3 ? HDR + 10 : HDR + 60
  }
  return { slab, meta }
}
const ab = batch(0, mac(1), mac(2))
const ba = batch(1, mac(2), mac(1))

// A clock past 2^31 ms, as Date.now() is: a double, never a small integer.
fdb.clock[0] = 1_700_000_000_000
function run(batches: number) {
  for (let k = 0; k < batches; k++) {
    fdb.clock[0] += 0.5
    fwd.process(0, ab.slab, ab.meta, BATCH)
    fwd.process(1, ba.slab, ba.meta, BATCH)
  }
}

function youngBytes(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_used_size ?? NaN
}

const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('run with --expose-gc')
run(40_000)
const minorGcAt: number[] = []
const obs = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) minorGcAt.push(e.startTime)
})
obs.observe({ entryTypes: ['gc'] })
gc()
const before = youngBytes()
const t0 = performance.now()
const batches = 40_000
run(batches)
const grew = youngBytes() - before
const t1 = performance.now()
// GC entries are delivered asynchronously.
await new Promise((r) => setTimeout(r, 50))
obs.disconnect()
const frames = batches * 2 * BATCH
const scavenges = minorGcAt.filter((at) => at >= t0 && at <= t1).length
console.log(JSON.stringify({ frames, bytesPerFrame: grew / frames, scavenges, ms: t1 - t0 }))
