// Overlay networks across hosts through the cluster store: three "hosts" (namespaces with
// their own underlay address, daemon, state directory and socket) and one etcd on the
// underlay, all created by the test.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { encodeEndpoint } from '../../src/cluster/records.js'
import { startDaemon, type TestDaemon } from '../helpers/daemon.js'
import { startEtcd, type TestEtcd } from '../helpers/etcd.js'
import { makeNs, sandboxName, uniqueName } from '../helpers/netns.js'
import { inNs, must, mustInNs, ping, run, sleep, spawnInNs, waitFor } from '../helpers/sh.js'
import { underlay } from '../helpers/underlay.js'

const IPS = ['10.228.0.1', '10.228.0.2', '10.228.0.3']
const STORE_IP = '10.228.0.100'
const TTL = 3

interface Cluster {
  etcd: TestEtcd
  hosts: string[]
  daemons: TestDaemon[]
}

async function cluster(t: Test, n: number): Promise<Cluster> {
  const hosts: string[] = []
  for (let i = 0; i < n; i++) hosts.push(await makeNs(t, `h${i}`))
  const ul = await underlay(t, hosts.map((ns, i) => ({ ns, ip: IPS[i] })))
  await must('ip', ['-n', ul, 'addr', 'add', `${STORE_IP}/24`, 'dev', 'br0'])
  const etcd = await startEtcd(t, ul, STORE_IP)
  const daemons: TestDaemon[] = []
  for (let i = 0; i < n; i++) daemons.push(await startDaemon(t, hostArgs(etcd, i), hosts[i]))
  return { etcd, hosts, daemons }
}

function hostArgs(etcd: TestEtcd, i: number): string[] {
  return ['--default-subnet', `10.23${i}.9.0/24`, '--advertise-addr', IPS[i], '--cluster-store', etcd.url, '--cluster-ttl', String(TTL), '--no-docker-plugin']
}

async function sandboxOn(t: Test, d: TestDaemon, network: string, prefix = 'cl'): Promise<{ name: string; address: string; mac: string }> {
  const name = sandboxName(t, prefix)
  const r = await d.cli(['--format', 'json', 'sandbox', 'create', name, '--network', network])
  if (r.code !== 0) throw new Error(`sandbox create: ${r.stderr}`)
  const sb = JSON.parse(r.stdout)
  return { name, address: sb.endpoints[0].address.split('/')[0], mac: sb.endpoints[0].mac }
}

async function stats(d: TestDaemon) {
  return (await d.api('GET', '/v1/stats')).body
}

async function dig(ns: string, server: string, name: string): Promise<string> {
  return (await inNs(ns, ['dig', '+short', '+time=1', '+tries=2', `@${server}`, name])).stdout.trim()
}

async function fdbMacs(d: TestDaemon, network: string): Promise<{ mac: string; port: string; static?: boolean }[]> {
  return JSON.parse((await d.cli(['--format', 'json', 'fdb', 'show', '--network', network])).stdout)
}

/** Counts VXLAN datagrams carrying ARP on a host's underlay while `fn` runs. */
async function arpOverUnderlay(host: string, fn: () => Promise<void>): Promise<number> {
  // UDP header (8) + VXLAN header (8) + inner destination and source MACs (12): the inner EtherType.
  const dump = spawnInNs(host, ['tcpdump', '-i', 'ul0', '-n', '-l', 'udp port 4789 and udp[28:2] = 0x0806'])
  let out = ''
  dump.stdout!.on('data', (c: Buffer) => (out += c.toString()))
  const exited = new Promise((r) => dump.once('exit', r))
  try {
    await sleep(800)
    await fn()
    await sleep(500)
  } finally {
    dump.kill('SIGINT')
    await exited
  }
  return out.split('\n').filter((l) => l.includes('VXLAN') || l.includes('ARP')).length
}

t.test('three hosts share an overlay network through etcd', async (t) => {
  const { etcd, hosts, daemons } = await cluster(t, 3)
  const [da, db, dc] = daemons
  const created = await da.api('POST', '/v1/networks', { name: 'ov', driver: 'overlay' })
  t.equal(created.status, 201, JSON.stringify(created.body))
  const net = created.body
  t.equal(net.vni, 4096, 'the first VNI of the cluster')
  t.equal(net.mtu, 1450, 'inner MTU = underlay 1500 - 50')

  // The other hosts take the network up from the store.
  for (const d of [db, dc]) {
    const seen = await waitFor(async () => {
      const r = await d.api('GET', '/v1/networks/ov')
      return r.status === 200 ? r.body : undefined
    })
    t.same({ id: seen?.id, vni: seen?.vni, subnet: seen?.subnet, gateway: seen?.gateway }, { id: net.id, vni: net.vni, subnet: net.subnet, gateway: net.gateway }, 'same network on every host')
  }
  const clash = await db.api('POST', '/v1/networks', { name: 'ov', driver: 'overlay' })
  t.equal(clash.status, 409, 'names are unique in the cluster')
  const vniClash = await db.api('POST', '/v1/networks', { name: 'ov-b', driver: 'overlay', options: { vni: '4096' } })
  t.equal(vniClash.status, 409, 'VNIs are unique in the cluster')

  // Addresses: endpoints made at the same moment on two hosts never share one.
  const made = await Promise.all([
    ...[0, 1, 2, 3].map(() => sandboxOn(t, db, 'ov', 'cb')),
    ...[0, 1, 2, 3].map(() => sandboxOn(t, dc, 'ov', 'cc')),
  ])
  const addrs = made.map((m) => m.address)
  t.equal(new Set(addrs).size, addrs.length, `distinct addresses across hosts: ${addrs.join(' ')}`)
  const sa = await sandboxOn(t, da, 'ov', 'ca')
  const sb = made[0]
  const sc = made[4]

  t.equal(await ping(sa.name, sb.address, 3), 3, 'host A -> host B')
  t.equal(await ping(sb.name, sc.address, 3), 3, 'host B -> host C')
  t.equal(await ping(sc.name, sa.address, 3), 3, 'host C -> host A')

  // Names of endpoints on other hosts resolve in the embedded DNS of each host.
  t.equal(await dig(sa.name, net.gateway, sb.name), sb.address, 'A resolves a sandbox of B')
  t.equal(await dig(sc.name, net.gateway, sa.name), sa.address, 'C resolves a sandbox of A')

  // Remote MACs are static entries behind their VTEP, programmed from the store.
  const fdbA = await fdbMacs(da, 'ov')
  t.ok(fdbA.some((e) => e.mac === sb.mac && e.port === `vx4096-${IPS[1]}` && e.static), 'B\'s sandbox MAC is static behind VTEP B on host A')

  // ARP for a remote endpoint is answered on the local host: no ARP crosses the underlay.
  const suppressedBefore = (await stats(da)).gateways[net.id].arpSuppressed
  await mustInNs(sa.name, ['ip', 'neigh', 'flush', 'all'])
  await mustInNs(sb.name, ['ip', 'neigh', 'flush', 'all'])
  const arps = await arpOverUnderlay(hosts[0], async () => {
    t.equal(await ping(sa.name, sb.address, 1), 1, 'ping after flushing the ARP caches')
  })
  t.equal(arps, 0, 'no ARP inside VXLAN on the underlay')
  t.ok((await stats(da)).gateways[net.id].arpSuppressed > suppressedBefore, 'host A answered the ARP request itself')
  const neigh = await mustInNs(sa.name, ['ip', 'neigh', 'show', sb.address])
  t.match(neigh, sb.mac, 'with B\'s sandbox MAC')

  // iperf3 across hosts.
  const srv = spawnInNs(sb.name, ['iperf3', '-s', '-1', '-p', '5321'])
  t.teardown(() => srv.kill('SIGKILL'))
  await sleep(300)
  const ip3 = await inNs(sa.name, ['iperf3', '-c', sb.address, '-p', '5321', '-t', '2', '-J'], 30_000)
  t.equal(ip3.code, 0, ip3.stderr)
  const bps = ip3.code === 0 ? JSON.parse(ip3.stdout).end.sum_received.bits_per_second : 0
  t.ok(bps > 0, `iperf3 TCP host A -> host B: ${(bps / 1e9).toFixed(2)} Gbit/s`)

  // A network with endpoints on other hosts cannot be deleted.
  const rm = await da.api('DELETE', '/v1/networks/ov')
  t.equal(rm.status, 409, 'network in use elsewhere is kept')

  // Host C dies: its endpoints leave A's tables within the lease.
  const cSeen = (await stats(da)).cluster.remoteEndpoints
  await dc.kill9()
  const gone = await waitFor(async () => !(await fdbMacs(da, 'ov')).some((e) => e.mac === sc.mac), (TTL + 4) * 1000, 250)
  t.ok(gone, `host C's endpoint left host A's FDB within ${TTL}s lease + margin`)
  t.equal((await stats(da)).cluster.remoteEndpoints, cSeen - 4, 'all four of C\'s endpoints are gone from A')
  t.equal(await dig(sa.name, net.gateway, sc.name), '', 'and from its DNS')

  // A network created and deleted while C is down must not come back with C.
  t.equal((await da.api('POST', '/v1/networks', { name: 'ov-tmp', driver: 'overlay' })).status, 201)
  t.equal((await da.api('DELETE', '/v1/networks/ov-tmp')).status, 200, 'unused overlay network deleted')

  // C restarts with its state directory: its endpoints come back everywhere.
  await dc.start()
  t.ok(await waitFor(async () => (await fdbMacs(da, 'ov')).some((e) => e.mac === sc.mac), 10_000, 250), 'host C\'s endpoint is back on host A')
  t.equal(await ping(sa.name, sc.address, 3), 3, 'host A -> restarted host C')
  t.equal(await dig(sa.name, net.gateway, sc.name), sc.address, 'and resolvable again')
  t.equal((await dc.api('GET', '/v1/networks/ov-tmp')).status, 404, 'a network deleted while C was down stays deleted on C')
  const stored = await etcd.ctl(['get', '--prefix', '--keys-only', '/switchyard/v1/names/'])
  t.notMatch(stored.stdout, /ov-tmp/, 'and in the store')

  // An endpoint removed on its host leaves the others.
  t.equal((await db.cli(['sandbox', 'rm', sb.name])).code, 0)
  t.ok(await waitFor(async () => (await dig(sa.name, net.gateway, sb.name)) === ''), 'a removed endpoint leaves the other hosts\' DNS')
  t.equal(await ping(sa.name, sb.address, 1), 0, 'and is unreachable')
})

t.test('two hosts: DHCP on a cluster overlay network, corrupt records skipped', async (t) => {
  const { etcd, daemons } = await cluster(t, 2)
  const [da, db] = daemons
  t.equal((await da.api('POST', '/v1/networks', { name: 'ov', driver: 'overlay' })).status, 201)
  const net = (await da.api('GET', '/v1/networks/ov')).body
  await waitFor(async () => (await db.api('GET', '/v1/networks/ov')).status === 200)
  const sa = await sandboxOn(t, da, 'ov')
  const sb = await sandboxOn(t, db, 'ov')
  t.equal(await ping(sa.name, sb.address, 2), 2)

  // A VM-like client on a bare port of host B leases an address through DHCP; the address is
  // claimed in the store, so host A knows it (DNS, ARP) and never hands it out.
  const vm = await makeNs(t, 'vm')
  const port = uniqueName('cvp')
  const added = await db.cli(['port', 'add', port, '--network', 'ov', '--netns', vm, '--ifname', 'eth0'])
  t.equal(added.code, 0, added.stderr)
  t.teardown(() => run('ip', ['-n', vm, 'link', 'del', 'eth0']))
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sy-cdhcp-')), 'ev')
  t.teardown(() => fs.rmSync(path.dirname(out), { recursive: true, force: true }))
  const script = fileURLToPath(new URL('../helpers/udhcpc.script', import.meta.url))
  const client = spawnInNs(vm, ['env', `SY_OUT=${out}`, 'busybox', 'udhcpc', '-f', '-i', 'eth0', '-s', script, '-x', 'hostname:cvm', '-t', '10', '-T', '1'])
  t.teardown(() => client.kill('SIGKILL'))
  t.ok(await waitFor(() => fs.existsSync(`${out}.bound`), 20_000), 'udhcpc got a lease on the overlay')
  const leased = /^ip=(.*)$/m.exec(fs.readFileSync(`${out}.bound`, 'utf8'))?.[1] ?? ''
  t.notOk([sa.address, sb.address].includes(leased), `the lease ${leased} is an address nobody else has`)
  const held = await etcd.ctl(['get', '--keys-only', `/switchyard/v1/ipam/${net.id}/${leased}`])
  t.match(held.stdout, leased, 'and it is claimed in the store')
  t.equal(await ping(sa.name, leased, 2), 2, 'host A reaches the VM on host B')
  t.equal(await dig(sa.name, net.gateway, 'cvm'), leased, 'and resolves its DHCP hostname')
  const next = await sandboxOn(t, da, 'ov')
  t.not(next.address, leased, 'host A does not hand out the leased address')

  const before = (await stats(da)).cluster.corruptRecords
  const id = 'ab'.repeat(32)
  const bad: [string, Buffer][] = [
    [`/switchyard/v1/endpoints/${net.id}/${id}`, Buffer.from([0xff, 0xff, 0xff, 0x0f])], // not protobuf
    [`/switchyard/v1/endpoints/${net.id}/${'cd'.repeat(32)}`, encodeEndpoint({ id: 'cd'.repeat(32), networkId: net.id, name: 'x', mac: 'not-a-mac', address: '10.0.0.1/24', names: [], host: 'h', vtep: IPS[1] })],
    [`/switchyard/v1/endpoints/${net.id}/${'ef'.repeat(32)}`, encodeEndpoint({ id: 'ef'.repeat(32), networkId: net.id, name: 'x', mac: '02:00:00:00:00:01', address: '10.0.0.1/24', names: [], host: 'h', vtep: '999.1.1.1' })],
    [`/switchyard/v1/networks/${'12'.repeat(32)}`, Buffer.from('{"json":"is not protobuf"}')],
    [`/switchyard/v1/ipam/${net.id}/10.0.0.9`, Buffer.from([0x0a, 0xff])], // truncated field
  ]
  for (const [key, value] of bad) await putRaw(etcd, key, value)
  t.ok(await waitFor(async () => (await stats(da)).cluster.corruptRecords >= before + bad.length), 'every corrupt record counted')
  t.match(da.logs, /skipping a corrupt record in the cluster store/, 'and logged')
  t.equal(await ping(sa.name, sb.address, 2), 2, 'the daemon keeps running and forwarding')

  // A restart reads the same corrupt records and still starts.
  await da.stop()
  await da.start()
  t.equal(await ping(sa.name, sb.address, 3), 3, 'restarted over a store with corrupt records')
})

t.test('--cluster-store errors are clear', async (t) => {
  const r = await startDaemon(t, ['--cluster-store', 'etcd://127.0.0.1:9', '--advertise-addr', '127.0.0.1', '--no-docker-plugin']).then(
    () => 'started',
    (e: Error) => e.message,
  )
  t.match(r, /cannot reach the cluster store etcd:\/\/127\.0\.0\.1:9/)
  const r2 = await startDaemon(t, ['--cluster-store', 'etcd://127.0.0.1:9', '--no-docker-plugin']).then(
    () => 'started',
    (e: Error) => e.message,
  )
  t.match(r2, /--cluster-store needs --advertise-addr/)
})

/**
 * Puts bytes under a key with etcdctl. Bytes below 0x80 arrive as they are; higher ones are
 * re-encoded as UTF-8 on the way through argv, which leaves garbage no less corrupt.
 */
async function putRaw(etcd: TestEtcd, key: string, value: Buffer): Promise<void> {
  const r = await etcd.ctl(['put', key, value.toString('latin1')])
  if (r.code !== 0) throw new Error(`etcdctl put: ${r.stderr}`)
}
