// The learning switch with a real daemon and three namespaces on TAP ports.
import t, { type Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startDaemon, type TestDaemon } from '../helpers/daemon.js'
import { makeNs, plug, uniqueName } from '../helpers/netns.js'
import { inNs, mustInNs, ping, run, sleep, spawnInNs, waitFor } from '../helpers/sh.js'

const RAWSEND = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'rawsend.py')

interface Host {
  ns: string
  port: string
  ip: string
}

async function portCounters(d: TestDaemon, name: string) {
  const r = await d.api('GET', `/v1/ports/${name}`)
  return r.body.counters as { rxPackets: number; txPackets: number; drops: Record<string, number>; learnRefused: number }
}

/** Three namespaces, each on its own TAP port of the default network. */
async function threeHosts(tt: Test, d: TestDaemon): Promise<Host[]> {
  const hosts: Host[] = []
  for (let i = 1; i <= 3; i++) {
    const ns = await makeNs(tt)
    const port = uniqueName('syp')
    const r = await d.cli(['port', 'add', port])
    tt.equal(r.code, 0, `port add ${port}: ${r.stderr}`)
    tt.teardown(() => run('ip', ['-n', ns, 'link', 'del', 'eth0']))
    await plug(port, ns, `10.201.0.${i}/24`, { newName: 'eth0' })
    hosts.push({ ns, port, ip: `10.201.0.${i}` })
  }
  return hosts
}

t.test('three namespaces on TAP ports', async (t) => {
  const d = await startDaemon(t, ['--fdb-port-max', '1024'])
  const [a, b, c] = await threeHosts(t, d)

  await t.test('every pair pings', async (t) => {
    for (const [x, y] of [[a, b], [a, c], [b, c], [b, a], [c, a], [c, b]]) {
      t.equal(await ping(x.ns, y.ip, 2), 2, `${x.ip} -> ${y.ip}`)
    }
  })

  await t.test('ARP broadcast reaches every port, unicast only its destination', async (t) => {
    await mustInNs(a.ns, ['ip', 'neigh', 'flush', 'all'])
    await mustInNs(b.ns, ['ip', 'neigh', 'flush', 'all'])
    const c0 = await portCounters(d, c.port)
    // One ARP request (broadcast) from a for b: c must see it.
    await inNs(a.ns, ['ping', '-c', '1', '-W', '1', b.ip])
    const c1 = await portCounters(d, c.port)
    t.ok(c1.txPackets > c0.txPackets, 'the ARP broadcast was flooded to the third port')
    // Now every MAC is learned: 100 unicast pings a<->b must not reach c.
    t.equal(await ping(a.ns, b.ip, 100, '0.01'), 100)
    const c2 = await portCounters(d, c.port)
    t.equal(c2.txPackets - c1.txPackets, 0, 'no unicast frame between a and b leaked to c')
    const fdb = await d.cli(['--format', 'json', 'fdb', 'show'])
    const entries = JSON.parse(fdb.stdout) as { port: string }[]
    t.ok(entries.some((e) => e.port === a.port) && entries.some((e) => e.port === b.port), 'fdb shows a and b')
  })

  await t.test('iperf3 TCP between two completes', async (t) => {
    const server = spawnInNs(b.ns, ['iperf3', '-s', '-1', '-p', '5301'])
    t.teardown(() => server.kill('SIGKILL'))
    await sleep(300)
    const r = await inNs(a.ns, ['iperf3', '-c', b.ip, '-p', '5301', '-t', '2', '-J'], 30_000)
    t.equal(r.code, 0, r.stderr)
    const bps = JSON.parse(r.stdout).end.sum_received.bits_per_second as number
    t.ok(bps > 0, `received ${(bps / 1e9).toFixed(2)} Gbit/s`)
  })

  await t.test('garbage frames are counted drops', async (t) => {
    const before = await portCounters(d, c.port)
    const bad = await inNs(c.ns, ['python3', RAWSEND, 'eth0', 'badsrc', '50'])
    t.equal(bad.code, 0, bad.stderr)
    // Oversize: the namespace side allows 4000 bytes, the network's MTU is 1500.
    await mustInNs(c.ns, ['ip', 'link', 'set', 'eth0', 'mtu', '4000'])
    const big = await inNs(c.ns, ['python3', RAWSEND, 'eth0', 'oversize', '20', '3000'])
    await mustInNs(c.ns, ['ip', 'link', 'set', 'eth0', 'mtu', '1500'])
    t.equal(big.code, 0, big.stderr)
    const after = await waitFor(async () => {
      const x = await portCounters(d, c.port)
      return x.drops.badSource - before.drops.badSource >= 50 && x.drops.oversize - before.drops.oversize >= 20 ? x : undefined
    }, 5000)
    t.ok(after, 'bad-source and oversize frames were counted')
    t.equal(await ping(a.ns, c.ip, 2), 2, 'the port still works')
  })

  await t.test('a MAC flood leaves known hosts reachable and the table bounded', async (t) => {
    const statsBefore = (await d.api('GET', '/v1/stats')).body
    const cBefore = await portCounters(d, c.port)
    const rssBefore = rss(d.pid)
    // A deeper TAP queue so that most of the flood reaches the switch rather than the kernel's drop counter.
    await mustInNs(c.ns, ['ip', 'link', 'set', 'eth0', 'txqueuelen', '100000'])
    const r = await inNs(c.ns, ['python3', RAWSEND, 'eth0', 'flood', '100000'], 120_000)
    t.equal(r.code, 0, r.stderr)
    t.ok(Number(r.stdout) > 90_000, `sent ${r.stdout.trim()} frames`)
    // Wait until the switch has taken in everything that reached it.
    let last = -1
    const settled = await waitFor(async () => {
      const rx = (await portCounters(d, c.port)).rxPackets
      const done = rx === last
      last = rx
      return done
    }, 30_000, 500)
    t.ok(settled, 'the flood has drained')
    const arrived = last - cBefore.rxPackets
    t.ok(arrived > 50_000, `${arrived} flood frames reached the switch`)
    const stats = (await d.api('GET', '/v1/stats')).body
    const refused = stats.fdb.refused - statsBefore.fdb.refused
    t.ok(refused >= arrived - 1024, `${refused} flood MACs were refused at the port limit`)
    t.ok(stats.fdb.entries <= 1024 + 10, `table holds ${stats.fdb.entries} entries (port limit 1024)`)
    const fdb = JSON.parse((await d.cli(['--format', 'json', 'fdb', 'show'])).stdout) as { port: string }[]
    t.equal(fdb.filter((e) => e.port === c.port).length <= 1024, true, 'flooding port stays within its limit')
    t.ok(fdb.some((e) => e.port === a.port), 'a is still known')
    t.equal(await ping(a.ns, b.ip, 5, '0.05'), 5, 'a still reaches b')
    t.equal(await ping(b.ns, c.ip, 3, '0.05'), 3, 'b still reaches c')
    const grown = rss(d.pid) - rssBefore
    t.ok(grown < 64 * 1024 * 1024, `daemon memory grew by ${(grown / 1048576).toFixed(1)} MiB`)
  })

  await t.test('a port removed mid-traffic is counted and the rest keeps working', async (t) => {
    const pinger = spawnInNs(a.ns, ['ping', '-i', '0.01', '-c', '300', c.ip])
    t.teardown(() => pinger.kill('SIGKILL'))
    await sleep(500)
    // Delete c's device from under the switch (as a crashed VM or a deleted namespace would).
    await mustInNs(c.ns, ['ip', 'link', 'del', 'eth0'])
    const lost = await waitFor(async () => {
      const s = (await d.api('GET', '/v1/stats')).body
      return s.portsLost >= 1 ? s : undefined
    }, 5000)
    t.ok(lost, 'the daemon noticed the port is gone')
    const p = await d.api('GET', `/v1/ports/${c.port}`)
    t.equal(p.body.state, 'gone', `port state: ${p.body.goneReason}`)
    t.equal(await ping(a.ns, b.ip, 3, '0.05'), 3, 'a and b still talk')
    const rm = await d.cli(['port', 'rm', c.port])
    t.equal(rm.code, 0, 'the gone port can be removed')
  })
})

t.test('busy-polling follows the traffic: it spins while pings come, and sleeps once they stop', async (t) => {
  const d = await startDaemon(t, [])
  const [a, b] = await threeHosts(t, d)
  // A ping every 2 ms is light traffic: the daemon keeps polling between them. Its counters
  // show it, not its CPU time: on a loaded machine a spinning daemon gets as few ticks as one
  // woken per frame (10 each with two busy loops beside the test; 70-100 on a quiet one).
  const busyBefore = cpuTicks(d.pid)
  const spinBefore = (await d.api('GET', '/v1/stats')).body.busyPoll
  t.equal(await ping(a.ns, b.ip, 400, '0.002'), 400)
  const busy = cpuTicks(d.pid) - busyBefore
  const spin = (await d.api('GET', '/v1/stats')).body.busyPoll
  // Light traffic: most of the 800 frames are found by the spin, each turn one system call
  // that tries a read on every port (a poll() only every 16th turn).
  const frames = spin.frames - spinBefore.frames
  const reads = spin.readTurns - spinBefore.readTurns
  const polls = spin.pollTurns - spinBefore.pollTurns
  t.ok(frames >= 400, `${frames} of 800 frames were handled while spinning (${busy} ticks of CPU)`)
  t.ok(reads > 8 * polls, `turns that read every port at once: ${reads}, that polled: ${polls}`)
  // Then idle: after the light-traffic budget (5 ms) it sleeps in the event loop. A stray
  // frame (a namespace's IPv6 router solicitation) may wake it for a few 1 ms slices.
  await sleep(500)
  const idleBefore = cpuTicks(d.pid)
  const idleSpinBefore = (await d.api('GET', '/v1/stats')).body.busyPoll
  await sleep(2000)
  const idle = cpuTicks(d.pid) - idleBefore
  const idleSlices = (await d.api('GET', '/v1/stats')).body.busyPoll.slices - idleSpinBefore.slices
  t.ok(idleSlices <= 50, `idle for 2 s it spun ${idleSlices} slices of at most 1 ms`)
  t.ok(idle <= 10, `idle for 2 s it used ${idle} ticks (100 per core-second)`)
})

t.test('light traffic on several ports at once: every frame intact, from the port it came in on', async (t) => {
  const d = await startDaemon(t, [])
  const [a, b, c] = await threeHosts(t, d)
  // Every MAC learned first: a frame handed over as another port's would show as a move.
  t.equal(await ping(a.ns, c.ip, 2), 2)
  t.equal(await ping(b.ns, c.ip, 2), 2)
  const before = (await d.api('GET', '/v1/stats')).body
  // Two pingers at once, a frame every 2 ms each way per pinger: light traffic, so each spin
  // turn reads one frame from every port, often from two ports in the same turn.
  const [fromA, fromB] = await Promise.all([ping(a.ns, c.ip, 500, '0.002'), ping(b.ns, c.ip, 500, '0.002')])
  const after = (await d.api('GET', '/v1/stats')).body
  t.equal(fromA, 500, 'every ping from a answered')
  t.equal(fromB, 500, 'every ping from b answered')
  t.equal(after.fdb.moved - before.fdb.moved, 0, 'no MAC was seen behind another port')
  t.ok(after.busyPoll.readTurns > before.busyPoll.readTurns, 'the spin read the ports one frame each')
})

t.test('API rejects bad requests for ports and leaves state alone', async (t) => {
  const d = await startDaemon(t)
  const before = (await d.api('GET', '/v1/ports')).body.length
  const cases: [string, string, unknown, number, string][] = [
    ['POST', '/v1/ports', undefined, 400, 'missing'],
    ['POST', '/v1/ports', { name: 'x/y' }, 400, 'name'],
    ['POST', '/v1/ports', { name: 'a'.repeat(300) }, 400, 'name'],
    ['POST', '/v1/ports', { name: 'ok0', bogus: 1 }, 400, 'unknown field'],
    ['POST', '/v1/ports', { name: 'ok0', network: 'nope' }, 404, 'nope'],
    ['DELETE', '/v1/ports/nope0', undefined, 404, 'nope0'],
    ['GET', '/v1/nothing', undefined, 404, 'no such endpoint'],
    ['PUT', '/v1/ports', undefined, 405, 'not allowed'],
  ]
  for (const [m, p, body, status, text] of cases) {
    const r = await d.api(m, p, body)
    t.equal(r.status, status, `${m} ${p} ${JSON.stringify(body)?.slice(0, 40)}`)
    t.match(r.body.error.message, text)
  }
  const bad = await d.api('POST', '/v1/ports', undefined, '{"name": ')
  t.equal(bad.status, 400)
  t.equal(bad.body.error.code, 'INVALID_JSON')
  const huge = await d.api('POST', '/v1/ports', undefined, '{"name":"' + 'x'.repeat(2 << 20) + '"}')
  t.equal(huge.status, 413)
  t.equal((await d.api('GET', '/v1/ports')).body.length, before, 'no port was created')
})

t.test('CLI errors are one line and non-zero', async (t) => {
  const d = await startDaemon(t)
  const unknownFlag = await d.cli(['port', 'ls', '--bogus'])
  t.not(unknownFlag.code, 0)
  t.match(unknownFlag.stderr.trim(), /^error: unknown option '--bogus'$/)
  const badName = await d.cli(['port', 'add', 'bad/name'])
  t.not(badName.code, 0)
  t.equal(badName.stderr.trim().split('\n').length, 1)
  t.match(badName.stderr, /name/)
  const badFormat = await d.cli(['--format', 'xml', 'port', 'ls'])
  t.not(badFormat.code, 0)
  const noDaemon = await d.cli(['--socket', '/nonexistent/sy.sock', 'stats'])
  t.not(noDaemon.code, 0)
  t.match(noDaemon.stderr.trim(), /^error: cannot reach the switchyard daemon at \/nonexistent\/sy.sock/)
  t.equal(noDaemon.stderr.trim().split('\n').length, 1)
  const help = await d.cli(['fdb', 'show', '--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /--network/)
})

function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : 0
}

/** utime + stime of a process, in clock ticks (100 per second). */
function cpuTicks(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ')
  return Number(rest[11]) + Number(rest[12])
}
