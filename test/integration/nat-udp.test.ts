// Egress UDP through the host with endpoint-independent mappings (RFC 4787): one host port
// per sandbox address and port, whatever the remote; only remotes the sandbox sent to get
// in. Namespaces and daemons as in nat.test.ts (test/helpers/natworld.ts).
import t from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { sandboxName } from '../helpers/netns.js'
import { HOST, lines, listening, natFlows, natStats, natWorld, OUTSIDE, outputLines, PEER, sandboxIp, serve } from '../helpers/natworld.js'
import { inNs, must, mustInNs, spawnInNs, waitFor } from '../helpers/sh.js'

t.test('egress UDP mappings', async (t) => {
  // Short UDP timeouts, so that the test of them does not wait long.
  const { outside, d } = await natWorld(t, ['--nat-udp-timeout', '3', '--nat-udp-stream-timeout', '8'])
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-nat-'))
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }))
  const fan = sandboxName(t, 'nt')
  t.equal((await d.cli(['sandbox', 'create', fan, '--network', 'default'])).code, 0)
  const remotes: string[] = []
  for (let i = 10; i < 15; i++) {
    await must('ip', ['-n', outside, 'addr', 'add', `10.226.0.${i}/24`, 'dev', 'vo'])
    for (let p = 7100; p < 7104; p++) remotes.push(`10.226.0.${i}:${p}`)
  }
  const fanLog = path.join(tmp, 'fan.log')
  const echoesOut = outputLines(serve(t, outside, ['udp-echo-many', fanLog, ...remotes]))
  let fanOut: string[] = []
  let fanProc: ChildProcess | undefined
  t.teardown(() => fanProc?.kill('SIGKILL'))
  let hostPort = 0

  await t.test('one sandbox port to 20 remotes: one host port, every reply comes back', async (t) => {
    t.ok(await waitFor(() => echoesOut.includes('ready'), 5000), 'the remotes listen')
    fanProc = spawnInNs(fan, ['python3', PEER, 'udp-fan', '40000', '12', ...remotes])
    fanOut = outputLines(fanProc)
    t.ok(await waitFor(() => fanOut.length >= 20, 5000), `${fanOut.length} replies`)
    const seen = lines(fanLog).map((l) => l.split(' '))
    t.equal(seen.length, 20, 'every remote got the datagram')
    t.same([...new Set(seen.map((l) => l[0]))], [HOST], 'from the host address')
    const ports = [...new Set(seen.map((l) => l[1]))]
    t.equal(ports.length, 1, `all from one host port (${ports.join(', ')})`)
    hostPort = Number(ports[0])
    t.not(hostPort, 40000, 'a port of the host, not the sandbox\'s')
    t.same(seen.map((l) => l[2]).sort(), [...remotes].sort())
    t.same(fanOut.map((l) => `${l.split(' ')[0]}:${l.split(' ')[1]} ${l.split(' ')[2]}`).sort(), remotes.map((r) => `${r} echo:hi`).sort(), 'each reply from its remote')
    const ip = await sandboxIp(d, fan)
    const flows = (await natFlows(d)).filter((f) => f.proto === 'udp' && f.sandboxAddress === `${ip}:40000`)
    t.equal(flows.length, 20, 'each remote is a tracked flow')
    t.ok(flows.every((f) => f.state === 'replied'))
    const s = await natStats(d)
    t.equal(s.udpMappings, 1, 'on one mapping')
    t.equal(s.sockets, 1, 'holding one host socket')
  })

  await t.test('a stranger sending to that host port never reaches the sandbox', async (t) => {
    t.ok(hostPort > 0, 'the host port is known')
    const before = (await natStats(d)).udpFiltered
    // Every remote but a (address, port) the sandbox sent to: known address, other port;
    // other address, known port; and neither.
    for (const from of ['10.226.0.10:7200', `${OUTSIDE}:7100`, `${OUTSIDE}:5555`]) {
      const r = await inNs(outside, ['python3', PEER, 'udp-send', HOST, String(hostPort), 'stranger', from])
      t.equal(r.code, 0, r.stderr)
    }
    const after = await waitFor(async () => {
      const n = (await natStats(d)).udpFiltered
      return n - before >= 3 ? n : 0
    }, 3000)
    t.equal(after - before, 3, 'each counted as filtered')
    // The sandbox's client listens 12 s in all, then exits.
    const p = fanProc!
    if (p.exitCode === null && p.signalCode === null) await new Promise((r) => p.once('exit', r))
    t.equal(p.exitCode, 0)
    t.equal(fanOut.length, 20, 'the sandbox got the 20 replies and nothing else')
    t.notOk(fanOut.some((l) => l.includes('stranger')))
  })

  await t.test('UDP flows expire after the configured timeouts; the mapping with its last flow', async (t) => {
    const s = await natStats(d)
    t.equal(s.udpTimeoutSeconds, 3)
    t.equal(s.udpStreamTimeoutSeconds, 8)
    const ip = await sandboxIp(d, fan)
    const start = Date.now()
    // One remote answers (10.226.0.10:7100, an echo), one does not (nothing listens on 7999).
    const r = await inNs(fan, ['python3', PEER, 'udp-fan', '40001', '1', '10.226.0.10:7100', `${OUTSIDE}:7999`])
    t.match(r.stdout, /echo:hi/)
    const mine = async () => (await natFlows(d)).filter((f) => f.proto === 'udp' && f.sandboxAddress === `${ip}:40001`)
    t.equal((await mine()).length, 2)
    const one = await waitFor(async () => {
      const m = await mine()
      return m.length === 1 ? m : undefined
    }, 6000)
    t.ok(Date.now() - start >= 3000, `the unanswered flow went after ${Date.now() - start} ms`)
    t.same(one?.map((f) => f.state), ['replied'], 'the answered one stays')
    t.ok(await waitFor(async () => (await mine()).length === 0, 8000), 'until its own timeout')
    t.ok(Date.now() - start >= 8000, `after ${Date.now() - start} ms`)
    // By now every egress UDP flow of this daemon is idle past 8 s: no mapping, no socket left.
    t.ok(await waitFor(async () => (await natStats(d)).udpMappings === 0, 8000), 'every mapping closed with its last flow')
  })
})

t.test('UDP mappings at scale', async (t) => {
  // Long UDP timeouts: the flows made here stay while the later steps count on them.
  const { outside, d } = await natWorld(t, ['--nat-max-per-sandbox', '50000', '--nat-max-sockets', '8', '--nat-udp-timeout', '300'])
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-nat-'))
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }))
  serve(t, outside, ['udp-echo', OUTSIDE, '7000', path.join(tmp, 'echo0.log')])
  serve(t, outside, ['udp-echo', OUTSIDE, '7001', path.join(tmp, 'echo1.log')])
  const sb = sandboxName(t, 'nt')
  t.equal((await d.cli(['sandbox', 'create', sb, '--network', 'default'])).code, 0)
  t.ok((await listening(outside, 'udp', 7000)) && (await listening(outside, 'udp', 7001)), 'the echo servers are up')
  const fds = () => fs.readdirSync(`/proc/${d.pid}/fd`).length

  await t.test('20,000 flows from 4 source ports: all tracked on 4 host sockets', async (t) => {
    const fds0 = fds()
    // Room for 1 s of datagrams in the sandbox's queue towards the switch: on a busy machine the
    // daemon may not read for a while, and this test is about tracking, not about that queue.
    await mustInNs(sb, ['ip', 'link', 'set', 'eth0', 'txqueuelen', '10000'])
    const r = await inNs(sb, ['python3', PEER, 'udp-spray', OUTSIDE, '20000', '5000', '41000', '41001', '41002', '41003'], 120_000)
    t.equal(r.code, 0, r.stderr)
    const s = await waitFor(async () => {
      const n = await natStats(d)
      return n.flows >= 20000 ? n : undefined
    }, 15_000)
    t.ok(s, 'the stats API answers')
    t.equal(s?.flows, 20000, `every flow tracked (conntrack ${JSON.stringify(s?.conntrack)})`)
    t.equal(s?.udpMappings, 4, 'on four mappings')
    t.equal(s?.sockets, 4, 'holding four sockets')
    t.equal(s?.conntrack.refusedSockets, 0)
    t.ok(fds() - fds0 <= 8, `the daemon's descriptors: ${fds0} -> ${fds()}`)
    const ls = await d.cli(['--format', 'json', 'nat', 'ls'])
    t.equal((JSON.parse(ls.stdout) as unknown[]).length, 20000, 'nat ls lists them all')
    t.equal((await d.cli(['stats'])).code, 0)
  })

  await t.test('beyond --nat-max-sockets new mappings are refused; existing ones keep working', async (t) => {
    const before = await natStats(d)
    t.equal(before.sockets, 4)
    const got: string[] = []
    for (let p = 42000; p < 42006; p++) got.push((await inNs(sb, ['python3', PEER, 'udp-ask', OUTSIDE, '7000', `p${p}`, String(p)])).stdout.trim())
    t.same(got, ['echo:p42000', 'echo:p42001', 'echo:p42002', 'echo:p42003', 'timeout', 'timeout'], 'four more mappings fit in 8 sockets, then none')
    const s = await natStats(d)
    t.equal(s.sockets, 8)
    t.equal(s.udpMappings, 8)
    t.equal(s.conntrack.refusedSockets - before.conntrack.refusedSockets, 2, 'the refused ones counted')
    t.equal(s.refusedLimit - before.refusedLimit, 2)
    t.equal((await inNs(sb, ['python3', PEER, 'udp-ask', OUTSIDE, '7001', 'again', '42000'])).stdout.trim(), 'echo:again', 'a new remote on an existing mapping')
    t.equal((await inNs(sb, ['python3', PEER, 'udp-ask', OUTSIDE, '7000', 'old', '41000'])).stdout.trim(), 'echo:old', 'and on one of the 20,000 flows\' mappings')
    t.equal((await natStats(d)).sockets, 8, 'with no new socket')
    const stats = await d.cli(['stats'])
    t.match(stats.stdout, /sockets 8\/8, of them 8 UDP mappings/, 'switchyard stats shows the mappings')
    t.match(stats.stdout, /nat refused: 2 no socket/)
  })
})
