// The CNM control plane with a real daemon: networks, sandboxes, endpoints, IPAM, restarts.
import t from 'tap'
import fs from 'node:fs'
import { startDaemon, type TestDaemon } from '../helpers/daemon.js'
import { sandboxName } from '../helpers/netns.js'
import { inNs, mustInNs, ping, sleep, spawnInNs } from '../helpers/sh.js'


async function counts(d: TestDaemon) {
  const [n, s, e] = await Promise.all([d.api('GET', '/v1/networks'), d.api('GET', '/v1/sandboxes'), d.api('GET', '/v1/endpoints')])
  return { networks: n.body.length, sandboxes: s.body.length, endpoints: e.body.length }
}

t.test('networks: create, inspect by name/ID/prefix, conflicts, remove', async (t) => {
  const d = await startDaemon(t, ['--default-subnet', '10.210.0.0/24'])
  const created = await d.cli(['network', 'create', 'blue', '--subnet', '10.211.0.0/24', '--gateway', '10.211.0.254', '--ip-range', '10.211.0.128/25', '--aux-address', 'router=10.211.0.2', '--label', 'team=a', '--mtu', '1400'])
  t.equal(created.code, 0, created.stderr)
  const id = created.stdout.trim()
  t.match(id, /^[0-9a-f]{64}$/)
  for (const ref of ['blue', id, id.slice(0, 12)]) {
    const r = await d.api('GET', `/v1/networks/${ref}`)
    t.equal(r.status, 200, `inspect by ${ref.length > 20 ? 'id' : ref}`)
    t.equal(r.body.name, 'blue')
  }
  const net = (await d.api('GET', '/v1/networks/blue')).body
  t.same([net.subnet, net.gateway, net.ipRange, net.mtu, net.labels.team, net.auxAddresses.router], ['10.211.0.0/24', '10.211.0.254', '10.211.0.128/25', 1400, 'a', '10.211.0.2'])
  const ls = JSON.parse((await d.cli(['--format', 'json', 'network', 'ls'])).stdout) as { name: string }[]
  t.same(ls.map((n) => n.name).sort(), ['blue', 'default'])
  const table = await d.cli(['network', 'ls'])
  t.match(table.stdout, /NETWORK ID\s+NAME\s+DRIVER\s+SUBNET/)

  const before = await counts(d)
  const bad: [unknown, number, string, string?][] = [
    [{ name: 'blue' }, 409, 'NAME_TAKEN'],
    [{ name: 'other', subnet: '10.211.0.128/25' }, 409, 'SUBNET_OVERLAP'],
    [{ name: 'x', subnet: '10.300.0.0/24' }, 400, 'INVALID_ARGUMENT'],
    [{ name: 'x', subnet: '10.1.0.0/33' }, 400, 'INVALID_ARGUMENT'],
    [{ name: 'x', subnet: '10.1.0.0/24', gateway: '10.2.0.1' }, 400, 'INVALID_POOL', 'gateway'],
    [{ name: 'x/y' }, 400, 'INVALID_ARGUMENT', 'name'],
    [{ name: 'n'.repeat(300) }, 400, 'INVALID_ARGUMENT', 'name'],
    [{ name: 'x', colour: 'red' }, 400, 'INVALID_ARGUMENT', 'colour'],
    [{ name: 'x', mtu: 'big' }, 400, 'INVALID_ARGUMENT', 'mtu'],
    [{ name: 'x', driver: 'macvlan' }, 400, 'INVALID_ARGUMENT', 'driver'],
  ]
  for (const [body, status, code, field] of bad) {
    const r = await d.api('POST', '/v1/networks', body)
    t.equal(r.status, status, JSON.stringify(body).slice(0, 60))
    t.equal(r.body.error.code, code)
    if (field) t.equal(r.body.error.field, field)
  }
  t.equal((await d.api('POST', '/v1/networks', undefined, '{"name": "x",')).status, 400, 'malformed JSON')
  t.equal((await d.api('POST', '/v1/networks', undefined, JSON.stringify({ name: 'x', labels: { a: 'b'.repeat(2 << 20) } }))).status, 413, 'huge body')
  t.same(await counts(d), before, 'no bad request changed anything')

  const cliBad = await d.cli(['network', 'create', 'y', '--subnet', 'nonsense'])
  t.not(cliBad.code, 0)
  t.match(cliBad.stderr, /^error: .*nonsense/)
  t.equal((await d.cli(['network', 'rm', 'nope'])).code, 1)
  t.equal((await d.api('DELETE', '/v1/networks/default')).status, 409, 'the default network stays')
  t.equal((await d.cli(['network', 'rm', 'blue'])).code, 0)
  t.equal((await d.api('GET', '/v1/networks/blue')).status, 404)
})

t.test('IPAM: default pools, static addresses, exhaustion, concurrency', async (t) => {
  const d = await startDaemon(t, ['--default-subnet', '10.212.0.0/24'])
  const auto = await d.api('POST', '/v1/networks', { name: 'auto1' })
  t.equal(auto.status, 201)
  const auto2 = await d.api('POST', '/v1/networks', { name: 'auto2' })
  t.not(auto.body.subnet, auto2.body.subnet, 'default pools do not overlap each other')
  t.match(auto.body.subnet, /^(172|192\.168)\./)
  t.equal(auto.body.gateway, auto.body.subnet.replace(/0\/\d+$/, '1'), 'gateway is the first address')

  await d.api('POST', '/v1/networks', { name: 'tiny', subnet: '10.213.0.0/29' })
  const got: string[] = []
  for (let i = 0; i < 5; i++) {
    const sb = sandboxName(t)
    t.equal((await d.api('POST', '/v1/sandboxes', { name: sb })).status, 201)
    const c = await d.api('POST', '/v1/networks/tiny/connect', { sandbox: sb })
    t.equal(c.status, 201, JSON.stringify(c.body))
    got.push(c.body.address)
  }
  t.same(got.sort(), ['10.213.0.2/29', '10.213.0.3/29', '10.213.0.4/29', '10.213.0.5/29', '10.213.0.6/29'])
  const sb6 = sandboxName(t)
  await d.api('POST', '/v1/sandboxes', { name: sb6 })
  const full = await d.api('POST', '/v1/networks/tiny/connect', { sandbox: sb6 })
  t.equal(full.status, 409)
  t.equal(full.body.error.code, 'IPAM_EXHAUSTED')
  t.match(full.body.error.message, /10\.213\.0\.0\/29/)
  t.notOk((await d.api('GET', `/v1/sandboxes/${sb6}`)).body.endpoints.length, 'the failed connect left nothing behind')

  await d.api('POST', '/v1/networks', { name: 'stat', subnet: '10.214.0.0/24' })
  const s1 = await d.cli(['network', 'connect', 'stat', sb6, '--ip', '10.214.0.77'])
  t.equal(s1.stdout.trim(), '10.214.0.77/24', s1.stderr)
  const sb7 = sandboxName(t)
  await d.api('POST', '/v1/sandboxes', { name: sb7 })
  const taken = await d.api('POST', '/v1/networks/stat/connect', { sandbox: sb7, ip: '10.214.0.77' })
  t.equal(taken.status, 409)
  t.equal(taken.body.error.code, 'ADDRESS_IN_USE')
  const outside = await d.api('POST', '/v1/networks/stat/connect', { sandbox: sb7, ip: '10.99.0.5' })
  t.equal(outside.status, 400)
  const gw = await d.api('POST', '/v1/networks/stat/connect', { sandbox: sb7, ip: '10.214.0.1' })
  t.equal(gw.status, 409, 'the gateway address is never handed out')

  // 50 endpoints at once: every address distinct.
  await d.api('POST', '/v1/networks', { name: 'many', subnet: '10.215.0.0/24' })
  const names = Array.from({ length: 50 }, () => sandboxName(t))
  await Promise.all(names.map((n) => d.api('POST', '/v1/sandboxes', { name: n })))
  const results = await Promise.all(names.map((n) => d.api('POST', '/v1/networks/many/connect', { sandbox: n })))
  t.equal(results.filter((r) => r.status === 201).length, 50, 'all 50 connected')
  const addrs = new Set(results.map((r) => r.body.address))
  t.equal(addrs.size, 50, 'no address handed out twice')
  t.notOk(addrs.has('10.215.0.1/24'))
})

t.test('sandboxes: reachability, isolation, routes and resolv.conf', async (t) => {
  const d = await startDaemon(t, ['--default-subnet', '10.216.0.0/24'])
  await d.cli(['network', 'create', 'red', '--subnet', '10.217.0.0/24'])
  await d.cli(['network', 'create', 'green', '--subnet', '10.218.0.0/24'])
  const [r1, r2, g1, both] = [sandboxName(t), sandboxName(t), sandboxName(t), sandboxName(t)]
  t.equal((await d.cli(['sandbox', 'create', r1, '--network', 'red', '--ip', '10.217.0.11'])).code, 0)
  t.equal((await d.cli(['sandbox', 'create', r2, '--network', 'red', '--ip', '10.217.0.12'])).code, 0)
  t.equal((await d.cli(['sandbox', 'create', g1, '--network', 'green', '--ip', '10.218.0.11'])).code, 0)
  const mk = await d.cli(['sandbox', 'create', both, '--network', 'red', '--network', 'green'])
  t.equal(mk.code, 0, mk.stderr)

  t.equal(await ping(r1, '10.217.0.12', 2), 2, 'same network: reachable')
  t.equal(await ping(r1, '10.218.0.11', 2), 0, 'other network: not reachable')
  const bothInfo = (await d.api('GET', `/v1/sandboxes/${both}`)).body
  t.same(bothInfo.endpoints.map((e: { ifname: string }) => e.ifname), ['eth0', 'eth1'])
  const redAddr = bothInfo.endpoints[0].address.split('/')[0]
  const greenAddr = bothInfo.endpoints[1].address.split('/')[0]
  t.equal(await ping(both, '10.217.0.11', 2), 2, 'two-network sandbox reaches red')
  t.equal(await ping(both, '10.218.0.11', 2), 2, 'two-network sandbox reaches green')
  t.equal(await ping(g1, greenAddr, 2), 2)
  t.equal(await ping(g1, redAddr, 1), 0, 'green cannot use the two-network sandbox as a bridge to red')

  const routes = await mustInNs(both, ['ip', 'route', 'show', 'default'])
  t.equal(routes.trim().split('\n').length, 1, 'one default route')
  t.match(routes, /default via 10\.217\.0\.1 dev eth0/)
  const resolv = fs.readFileSync(`/etc/netns/${r1}/resolv.conf`, 'utf8')
  t.match(resolv, /^nameserver 10\.217\.0\.1$/m)
  const inside = await d.cli(['sandbox', 'exec', r1, '--', 'cat', '/etc/resolv.conf'])
  t.match(inside.stdout, /nameserver 10\.217\.0\.1/, 'sandbox exec sees its own resolv.conf')
  const mtu = await mustInNs(r1, ['cat', '/sys/class/net/eth0/mtu'])
  t.equal(mtu.trim(), '1500')

  // Disconnecting the default-route network moves the default route to the other one.
  t.equal((await d.cli(['network', 'disconnect', 'red', both])).code, 0)
  t.match(await mustInNs(both, ['ip', 'route', 'show', 'default']), /via 10\.218\.0\.1 dev eth1/)
  t.equal((await d.api('POST', '/v1/networks/red/disconnect', { sandbox: both })).status, 404, 'not connected any more')
  t.equal((await d.api('POST', '/v1/networks/green/connect', { sandbox: both })).status, 409, 'already connected')
  const inUse = await d.api('DELETE', '/v1/networks/green')
  t.equal(inUse.status, 409)
  t.equal(inUse.body.error.code, 'NETWORK_IN_USE')
  t.equal((await d.cli(['sandbox', 'rm', both])).code, 0)
  t.equal((await inNs(both, ['true'])).code === 0, false, 'the namespace is gone')
  const pruned = JSON.parse((await d.cli(['--format', 'json', 'network', 'prune'])).stdout)
  t.same(pruned.removed, [], 'networks with endpoints are kept')
})

t.test('state survives kill -9 and traffic resumes', async (t) => {
  const d = await startDaemon(t, ['--default-subnet', '10.219.0.0/24'])
  const [a, b] = [sandboxName(t), sandboxName(t)]
  await d.cli(['sandbox', 'create', a, '--network', 'default'])
  await d.cli(['sandbox', 'create', b, '--network', 'default'])
  const bAddr = (await d.api('GET', `/v1/sandboxes/${b}`)).body.endpoints[0].address.split('/')[0]
  const before = (await d.api('GET', '/v1/endpoints')).body.map((e: { address: string }) => e.address).sort()
  const pinger = spawnInNs(a, ['ping', '-D', '-i', '0.02', '-c', '400', bAddr])
  t.teardown(() => pinger.kill('SIGKILL'))
  let out = ''
  pinger.stdout!.on('data', (c: Buffer) => (out += c.toString()))
  await sleep(1000)
  await d.kill9()
  const killedAt = Date.now()
  await d.start()
  const restartMs = Date.now() - killedAt
  await new Promise((r) => pinger.once('exit', r))
  const seqs = [...out.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]))
  t.ok(seqs.length > 300, `${seqs.length}/400 replies`)
  t.ok(seqs[seqs.length - 1] >= 395, 'replies came back after the restart')
  let gap = 0
  for (let i = 1; i < seqs.length; i++) gap = Math.max(gap, seqs[i] - seqs[i - 1] - 1)
  t.comment(`restart took ${restartMs} ms; longest run of lost pings: ${gap} (x 20 ms)`)
  const after = (await d.api('GET', '/v1/endpoints')).body
  t.same(after.map((e: { address: string }) => e.address).sort(), before, 'endpoints and addresses intact')
  t.ok(after.every((e: { state: string }) => e.state === 'up'), 'every endpoint re-attached')
  const c = sandboxName(t)
  await d.cli(['sandbox', 'create', c, '--network', 'default'])
  const cAddr = (await d.api('GET', `/v1/sandboxes/${c}`)).body.endpoints[0].address
  t.notOk(before.includes(cAddr), `new endpoint got a fresh address ${cAddr}`)
  t.equal(await ping(c, bAddr, 2), 2)
})
