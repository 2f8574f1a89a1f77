// The NAT's TCP path allocates nothing per segment. A daemon whose young generation is 1 MiB
// carries iperf3 through NAT, out and in; it cannot allocate more than 1 MiB without a
// young-generation collection, so its collections (from `stats`) bound what it allocated per
// frame. What is left is Node's own cost of entering JavaScript from the event loop, ~57 bytes
// per batch, not per frame.
import t from 'tap'
import { sandboxName } from '../helpers/netns.js'
import { listening, natWorld, OUTSIDE } from '../helpers/natworld.js'
import type { TestDaemon } from '../helpers/daemon.js'
import { inNs, spawnInNs } from '../helpers/sh.js'

const SEMI_SPACE_MIB = 1
// A boxed number is 16 bytes, a closure's context 40 or more: one per frame would be far above
// this; the segment path before it stopped allocating measured ~280 bytes per frame.
const MAX_BYTES_PER_FRAME = 64

async function snapshot(d: TestDaemon, endpoint: string): Promise<{ minor: number; frames: number }> {
  const minor = (await d.api('GET', '/v1/stats')).body.runtime.gc.minor
  const c = (await d.api('GET', `/v1/endpoints/${endpoint}`)).body.counters
  return { minor, frames: c.rxPackets + c.txPackets }
}

t.test('TCP through NAT allocates next to nothing per frame', async (t) => {
  const { outside, d } = await natWorld(t, [], { NODE_OPTIONS: `--max-semi-space-size=${SEMI_SPACE_MIB}` })
  const sb = sandboxName(t, 'na')
  t.equal((await d.cli(['sandbox', 'create', sb, '--network', 'default'])).code, 0)
  const endpoint = (await d.api('GET', `/v1/sandboxes/${sb}`)).body.endpoints[0].id as string
  const server = spawnInNs(outside, ['iperf3', '-s', '-p', '5310'])
  t.teardown(() => server.kill('SIGKILL'))
  t.ok(await listening(outside, 'tcp', 5310), 'iperf3 server up')

  for (const [what, flags] of [['sandbox to outside', []], ['outside to sandbox', ['-R']]] as const) {
    await t.test(what, async (t) => {
      // A first run lets V8 optimize the path; only the second one is counted.
      const warm = await inNs(sb, ['iperf3', '-c', OUTSIDE, '-p', '5310', '-t', '1', ...flags], 30_000)
      t.equal(warm.code, 0, warm.stderr)
      const before = await snapshot(d, endpoint)
      // A fixed amount, not a fixed time: a slow (loaded) machine still passes enough frames
      // for one collection, 1 MiB, to be a small share of each.
      const r = await inNs(sb, ['iperf3', '-c', OUTSIDE, '-p', '5310', '-n', '4G', '-J', ...flags], 120_000)
      const after = await snapshot(d, endpoint)
      t.equal(r.code, 0, r.stderr)
      const gbps = JSON.parse(r.stdout).end.sum_received.bits_per_second / 1e9
      const frames = after.frames - before.frames
      const scavenges = after.minor - before.minor
      const bound = (scavenges * SEMI_SPACE_MIB * 1024 * 1024) / frames
      t.comment(`${gbps.toFixed(2)} Gbit/s, ${frames} frames, ${scavenges} young-generation collections: at most ${bound.toFixed(1)} bytes per frame`)
      t.ok(frames > 60_000, `${frames} frames passed`)
      t.ok(bound < MAX_BYTES_PER_FRAME, `at most ${bound.toFixed(1)} bytes allocated per frame (${scavenges} collections of ${SEMI_SPACE_MIB} MiB)`)
    })
  }
})
