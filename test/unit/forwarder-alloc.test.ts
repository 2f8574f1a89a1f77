// The per-frame path allocates nothing: once V8 has optimized the forwarder, a run of
// frames through it leaves the heap as it was and triggers no young-generation collection.
// Measured in a child process with a small young generation (4 MiB), so that an allocation
// of even a few bytes per frame shows up as collections.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const probe = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'alloc-probe.ts')

t.test('forwarding a frame allocates nothing on the JS heap', async (t) => {
  // The TypeScript loader tap runs this test with, so the child imports the same source.
  const loader = process.execArgv.filter((a) => a.includes('typescript'))
  const child = spawnSync(process.execPath, [...loader, '--expose-gc', '--max-semi-space-size=4', probe], { encoding: 'utf8', timeout: 120_000 })
  t.equal(child.status, 0, `probe ran: ${child.stderr}`)
  const r = JSON.parse(child.stdout.trim().split('\n').pop() ?? '{}') as { frames: number; bytesPerFrame: number; scavenges: number; ms: number }
  t.comment(`${r.frames} frames in ${r.ms?.toFixed(0)} ms: ${r.bytesPerFrame?.toFixed(3)} bytes/frame, ${r.scavenges} scavenges`)
  t.equal(r.scavenges, 0, 'no young-generation collection while frames pass')
  // A boxed double is 16 bytes: one per batch of 64 would be 0.25 bytes per frame. What is
  // left is a fixed few tens of KiB over 5 million frames.
  t.ok(r.bytesPerFrame < 0.05, `young generation grew ${r.bytesPerFrame} bytes per frame`)
})
