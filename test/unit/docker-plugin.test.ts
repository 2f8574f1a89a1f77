// Docker's plugin protocol against the real control plane (in-process, real TAP devices and
// namespaces): what Docker sent in test/fixtures/engines (copied from shared/fixtures) replayed call by call, each call twice
// (Docker retries), Docker's own part played by moving the TAP into a namespace after Join
// and back after Leave; a failed Join's rollback; a restart of the daemon under joined
// endpoints; the HTTP side (empty bodies, Err/Error, 404); the IPAM pools; option mapping.
import t, { type Test } from 'tap'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ControlPlane } from '../../src/control/control-plane.js'
import { TapIo } from '../../src/dataplane/tap-port.js'
import { DockerPool } from '../../src/plugins/docker/ipam.js'
import { findTapByMac } from '../../src/plugins/docker/links.js'
import { DockerPlugin, macForAddress, networkOptions, toPublish } from '../../src/plugins/docker/plugin.js'
import { openMemoryStore, type Store } from '../../src/store/store.js'
import { Switch } from '../../src/switch/switch.js'
import { silentLogger } from '../../src/util/log.js'
import { makeNs } from '../helpers/netns.js'
import { must, run, waitFor } from '../helpers/sh.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const FIXTURES = path.join(root, 'test', 'fixtures', 'engines') // copies of shared/fixtures

interface FixtureCall {
  path?: string
  request: Record<string, unknown> | null
  response: Record<string, any>
}

function fixture(name: string): FixtureCall[] {
  const file = path.join(FIXTURES, name)
  if (!fs.existsSync(file)) throw new Error(`fixture ${file} is missing: copy it from shared/fixtures`)
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as FixtureCall).filter((c) => c.path)
}

/** A control plane and the plugin on a store, as the daemon wires them; `stop` is a daemon exit. */
async function plane(store: Store = openMemoryStore()) {
  const sw = new Switch({ io: new TapIo(), log: silentLogger })
  const cp = new ControlPlane({ store, sw, log: silentLogger, hostRoutes: () => [], upstreams: [{ host: '127.0.0.1', port: 9 }] })
  await cp.restore()
  const plugin = new DockerPlugin({ cp, store, log: silentLogger, locateTimeoutMs: 5000 })
  await plugin.restore()
  return {
    cp,
    plugin,
    store,
    sw,
    async stop() {
      await plugin.close()
      cp.shutdown()
    },
  }
}

/** Removes everything the plane holds (devices included) and stops it. */
async function wipe(p: Awaited<ReturnType<typeof plane>>): Promise<void> {
  for (const e of p.cp.listEndpoints()) await p.cp.removeEndpoint(e.id).catch(() => undefined)
  for (const s of p.cp.listSandboxes()) await p.cp.deleteSandbox(s.id).catch(() => undefined)
  for (const n of p.cp.listNetworks()) await p.cp.deleteNetwork(n.id).catch(() => undefined)
  await p.stop()
}

/** Docker's part: it moves the TAP into the container (ethN) after Join, and back after Leave. */
async function moveIn(srcName: string, ns: string): Promise<string> {
  const present = (JSON.parse(await must('ip', ['-n', ns, '-j', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname)
  let i = 0
  while (present.includes(`eth${i}`)) i++
  await must('ip', ['link', 'set', 'dev', srcName, 'netns', ns])
  await must('ip', ['-n', ns, 'link', 'set', 'dev', srcName, 'name', `eth${i}`])
  await must('ip', ['-n', ns, 'link', 'set', 'dev', `eth${i}`, 'up'])
  return `eth${i}`
}

async function moveOut(ns: string, ifname: string, srcName: string): Promise<void> {
  await must('ip', ['-n', ns, 'link', 'set', 'dev', ifname, 'down'])
  await must('ip', ['-n', ns, 'link', 'set', 'dev', ifname, 'name', srcName])
  await must('ip', ['-n', ns, 'link', 'set', 'dev', srcName, 'netns', '1'])
}

const hostHas = async (ifname: string) => (await run('ip', ['link', 'show', 'dev', ifname])).code === 0

/**
 * Replays a fixture: each call twice (the second must answer the same, except for fresh
 * address requests), with SandboxKeys mapped to test namespaces and PoolIDs to ours.
 * `failedJoin`: endpoints whose Join Docker did not complete (the TAP stays in the container).
 */
async function replay(t: Test, p: Awaited<ReturnType<typeof plane>>, calls: FixtureCall[], failedJoin: string[] = []) {
  const nsFor = new Map<string, string>()
  const poolIds = new Map<string, string>()
  const joined = new Map<string, { ns: string; src: string; ifname?: string }>()
  const internal = new Set(calls.filter((c) => c.path === '/NetworkDriver.CreateNetwork' && (c.request?.Options as any)?.['com.docker.network.internal']).map((c) => c.request!.NetworkID as string))
  for (const call of calls) {
    const method = call.path!.slice(1)
    const body = call.request ? structuredClone(call.request) : null
    if (body && typeof body.SandboxKey === 'string') {
      if (!nsFor.has(body.SandboxKey)) nsFor.set(body.SandboxKey, await makeNs(t, 'syd'))
      body.SandboxKey = `/run/netns/${nsFor.get(body.SandboxKey)}`
    }
    if (body && typeof body.PoolID === 'string') body.PoolID = poolIds.get(body.PoolID) ?? body.PoolID
    const res = await p.plugin.call(method, body)
    t.equal(res.status, 200, `${method} answered`)
    t.notOk(res.body && ('Err' in res.body || 'Error' in res.body), `${method}: ${JSON.stringify(res.body)}`)
    const got = res.body as Record<string, any>
    const want = call.response
    const eid = (body?.EndpointID as string | undefined) ?? ''
    switch (method) {
      case 'IpamDriver.RequestPool':
        t.equal(got.Pool, want.Pool, 'the pool Docker asked for')
        poolIds.set(want.PoolID, got.PoolID)
        break
      case 'IpamDriver.RequestAddress':
        t.equal(got.Address, want.Address, `address ${want.Address}, as Docker got it then`)
        break
      case 'NetworkDriver.CreateEndpoint': {
        const asked = (body!.Interface as { MacAddress?: string; Address: string })
        if (asked.MacAddress) t.same(got, {}, 'a MAC Docker chose is not answered back')
        else t.equal(got.Interface?.MacAddress, macForAddress(asked.Address.split('/')[0]), 'a MAC made from the address, as Docker\'s bridge makes them')
        break
      }
      case 'NetworkDriver.Join': {
        t.equal(got.InterfaceName?.DstPrefix, 'eth')
        t.match(got.InterfaceName?.SrcName, /^sy[0-9a-f]{10}$/)
        if (internal.has(body!.NetworkID as string)) t.equal(got.Gateway, undefined, 'no gateway on an internal network: no default route through it')
        else t.equal(got.Gateway, want.Gateway, 'the network gateway')
        t.ok(await hostHas(got.InterfaceName.SrcName), 'the TAP to take is in the host namespace')
        joined.set(eid, { ns: nsFor.get(call.request!.SandboxKey as string)!, src: got.InterfaceName.SrcName })
        break
      }
      case 'NetworkDriver.EndpointOperInfo':
        t.equal(got.Value?.tap, joined.get(eid)?.src ?? got.Value?.tap, 'oper info names the TAP')
        break
      case 'IpamDriver.GetDefaultAddressSpaces':
        t.same(got, { LocalDefaultAddressSpace: 'switchyard', GlobalDefaultAddressSpace: 'switchyard-global' })
        break
      default:
        t.same(got, want, `${method}: as Docker expects`)
    }
    // Docker retries: the same call again answers the same (fresh addresses aside).
    const fresh = method === 'IpamDriver.RequestPool' || (method === 'IpamDriver.RequestAddress' && !body?.Address && (body?.Options as any)?.RequestAddressType !== 'com.docker.network.gateway')
    if (!fresh) {
      const again = await p.plugin.call(method, body)
      t.same(again.body, got, `${method} again: the same answer`)
    }
    // Docker's part after the call.
    if (method === 'NetworkDriver.Join') {
      const j = joined.get(eid)!
      j.ifname = await moveIn(j.src, j.ns)
      if (!failedJoin.includes(eid)) {
        const ep = await waitFor(() => p.cp.listEndpoints().find((e) => e.tap === j.src && e.ifname === j.ifname), 5000, 20)
        t.ok(ep, `the plugin found ${j.ifname} in the container and recorded it`)
        t.equal(ep && p.cp.inspectSandbox(ep.sandboxId!).name, `docker-${j.ns}`, 'the container is an adopted sandbox')
      }
    }
    if (method === 'NetworkDriver.Leave') {
      const j = joined.get(eid)!
      if (!failedJoin.includes(eid)) await moveOut(j.ns, j.ifname!, j.src)
    }
    if (method === 'NetworkDriver.DeleteEndpoint') {
      const j = joined.get(eid)
      if (j) {
        t.notOk(await hostHas(j.src), 'the TAP is gone from the host')
        t.equal(await findTapByMac(`/run/netns/${j.ns}`, macOf(calls, eid)), undefined, 'and from the container')
      }
    }
  }
}

function macOf(calls: FixtureCall[], eid: string): string {
  const c = calls.find((x) => x.path === '/NetworkDriver.CreateEndpoint' && x.request?.EndpointID === eid)!
  const iface = c.request!.Interface as { MacAddress: string; Address: string }
  return iface.MacAddress || macForAddress(iface.Address.split('/')[0])
}

function leftovers(p: Awaited<ReturnType<typeof plane>>) {
  return {
    networks: p.cp.listNetworks().length,
    sandboxes: p.cp.listSandboxes().length,
    endpoints: p.cp.listEndpoints().length,
    dockerEndpoints: p.store.list('docker.endpoint').length,
    pools: p.store.list('docker.pool').length,
  }
}

const NOTHING = { networks: 0, sandboxes: 0, endpoints: 0, dockerEndpoints: 0, pools: 0 }

t.test('docker run: Activate to DeleteNetwork (Docker\'s IPAM)', async (t) => {
  const p = await plane()
  t.teardown(() => wipe(p))
  await replay(t, p, fixture('docker-run-persistent-tap.jsonl'))
  await replay(t, p, fixture('docker-run-held-tap.jsonl'))
  t.same(leftovers(p), NOTHING, 'nothing left')
})

t.test('remote IPAM, connect --ip, disconnect, stop/start', async (t) => {
  const p = await plane()
  t.teardown(() => wipe(p))
  await replay(t, p, fixture('docker-ipam-connect-disconnect-restart.jsonl'))
  t.same(leftovers(p), NOTHING, 'nothing left')
})

t.test('a failed Join and Docker\'s rollback (the TAP left in the container)', async (t) => {
  const p = await plane()
  t.teardown(() => wipe(p))
  const calls = fixture('docker-ipam-and-failed-connect.jsonl')
  await replay(t, p, calls, ['dc1510d77e28018234c271ab33d14c507e89ae1f3738d3fa249f4eecf2007d6b'])
  t.same(leftovers(p), NOTHING, 'nothing left')
})

t.test('errors, unknown methods, empty bodies, refusals', async (t) => {
  const p = await plane()
  t.teardown(() => wipe(p))
  t.same((await p.plugin.call('Plugin.Activate', undefined)).body, { Implements: ['NetworkDriver', 'IpamDriver'] }, 'an empty body is fine')
  t.same((await p.plugin.call('NetworkDriver.GetCapabilities', null)).body, { Scope: 'local', ConnectivityScope: 'local' })
  t.same((await p.plugin.call('IpamDriver.GetCapabilities', undefined)).body, { RequiresMACAddress: false, RequiresRequestReplay: false })
  t.same((await p.plugin.call('NetworkDriver.DiscoverNew', { DiscoveryType: 1, DiscoveryData: {} })).body, {})
  t.same((await p.plugin.call('NetworkDriver.DiscoverDelete', {})).body, {})
  t.equal((await p.plugin.call('NetworkDriver.AllocateNetwork', {})).status, 404, 'unknown method: 404')
  t.equal((await p.plugin.call('toString', {})).status, 404, 'not a method: 404')

  const err = async (method: string, body: unknown) => (await p.plugin.call(method, body)).body as Record<string, string>
  t.match(await err('NetworkDriver.CreateNetwork', {}), { Err: /NetworkID is missing/ }, 'network errors are {Err}')
  t.match(await err('NetworkDriver.CreateNetwork', []), { Err: /JSON object/ })
  t.match(await err('IpamDriver.RequestAddress', { PoolID: 'nope' }), { Error: /no pool nope/ }, 'IPAM errors are {Error}')
  const id = 'a'.repeat(64)
  const v4 = [{ AddressSpace: 'LocalDefault', Pool: '10.233.1.0/24', Gateway: '10.233.1.1/24' }]
  t.match(await err('NetworkDriver.CreateNetwork', { NetworkID: id, IPv4Data: v4, IPv6Data: [{ Pool: 'fd00::/64' }], Options: {} }), { Err: /IPv4 only/ })
  t.match(await err('NetworkDriver.CreateNetwork', { NetworkID: id, IPv4Data: [...v4, ...v4], Options: {} }), { Err: /exactly one IPv4 subnet/ })
  t.match(await err('NetworkDriver.CreateNetwork', { NetworkID: id, IPv4Data: v4, Options: { 'com.docker.network.generic': { mtu: 'big' } } }), { Err: /MTU/ })
  t.same(await err('NetworkDriver.CreateNetwork', { NetworkID: id, IPv4Data: v4, Options: { 'com.docker.network.generic': { mtu: '1400' } } }), {})
  t.match(await err('NetworkDriver.CreateNetwork', { NetworkID: id, IPv4Data: [{ Pool: '10.233.2.0/24' }], Options: {} }), { Err: /already exists here with subnet 10\.233\.1\.0\/24/ }, 'the same NetworkID with another subnet')
  t.match(await err('NetworkDriver.CreateEndpoint', { NetworkID: 'b'.repeat(64), EndpointID: 'c'.repeat(64), Interface: { Address: '10.233.1.5/24' } }), { Err: /no network for Docker network/ })
  t.match(await err('NetworkDriver.CreateEndpoint', { NetworkID: id, EndpointID: 'c'.repeat(64), Interface: { Address: '10.233.9.5/24' } }), { Err: /10\.233\.9\.5/ }, 'an address outside the subnet')
  t.same(leftovers(p).endpoints, 0, 'a refused endpoint leaves nothing')
  t.match(await err('NetworkDriver.Join', { NetworkID: id, EndpointID: 'c'.repeat(64), SandboxKey: '/run/netns/none' }), { Err: /no endpoint/ })
  t.same(await err('NetworkDriver.Leave', { NetworkID: id, EndpointID: 'c'.repeat(64) }), {}, 'Leave of an unknown endpoint is fine (a rollback)')
  t.same(await err('NetworkDriver.DeleteEndpoint', { NetworkID: id, EndpointID: 'c'.repeat(64) }), {}, 'so is DeleteEndpoint')
  t.same(await err('NetworkDriver.RevokeExternalConnectivity', { NetworkID: id, EndpointID: 'c'.repeat(64) }), {})
  t.same(await err('IpamDriver.ReleaseAddress', { PoolID: 'nope', Address: '10.0.0.1' }), {})
  t.same(await err('IpamDriver.ReleasePool', { PoolID: 'nope' }), {})

  // A published port: the host port must be given; taken ports are refused with the reason.
  const eid = 'd'.repeat(64)
  t.same(await err('NetworkDriver.CreateEndpoint', { NetworkID: id, EndpointID: eid, Interface: { Address: '10.233.1.5/24' } }), { Interface: { MacAddress: '02:42:0a:e9:01:05' } })
  const ep = p.cp.listEndpoints()[0]
  t.equal(JSON.parse(await must('ip', ['-j', 'link', 'show', 'dev', ep.tap]))[0].mtu, 1400, 'the TAP has the network MTU before Docker takes it')
  t.match(await err('NetworkDriver.ProgramExternalConnectivity', { NetworkID: id, EndpointID: eid, Options: { 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 0 }] } }), { Err: /host port/ })
  const blocker = net.createServer()
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => new Promise((r) => blocker.close(r)))
  const busy = (blocker.address() as net.AddressInfo).port
  t.match(await err('NetworkDriver.ProgramExternalConnectivity', { NetworkID: id, EndpointID: eid, Options: { 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostIP: '127.0.0.1', HostPort: busy, HostPortEnd: busy }] } }), { Err: /in use/ })
  t.same(await err('NetworkDriver.DeleteEndpoint', { NetworkID: id, EndpointID: eid }), {})
  t.same(await err('NetworkDriver.DeleteNetwork', { NetworkID: id }), {})
  t.same(await err('NetworkDriver.DeleteNetwork', { NetworkID: id }), {}, 'DeleteNetwork again is fine')
  t.same(leftovers(p), NOTHING)
})

t.test('IPAM pools: defaults, overlaps, sub-pools, gateways', async (t) => {
  const p = await plane()
  t.teardown(() => wipe(p))
  const call = async (m: string, b: unknown) => (await p.plugin.call(m, b)).body as Record<string, any>
  t.same(await call('IpamDriver.GetDefaultAddressSpaces', {}), { LocalDefaultAddressSpace: 'switchyard', GlobalDefaultAddressSpace: 'switchyard-global' })
  const auto = await call('IpamDriver.RequestPool', { AddressSpace: 'switchyard', Pool: '', SubPool: '', V6: false })
  t.match(auto, { PoolID: /^switchyard\/172\.17\.0\.0\/16$/, Pool: '172.17.0.0/16', Data: {} }, 'no pool asked: the first free default one')
  const auto2 = await call('IpamDriver.RequestPool', {})
  t.equal(auto2.Pool, '172.18.0.0/16', 'the next one does not overlap it')
  t.match(await call('IpamDriver.RequestPool', { Pool: '172.17.5.0/24' }), { Error: /overlaps pool 172\.17\.0\.0\/16/ })
  t.match(await call('IpamDriver.RequestPool', { Pool: '10.233.0.1/24' }), { Error: /host bits/ })
  t.match(await call('IpamDriver.RequestPool', { Pool: '10.233.0.0/24', V6: true }), { Error: /IPv4 only/ })
  t.match(await call('IpamDriver.RequestPool', { Pool: '10.233.0.0/24', SubPool: '10.234.0.0/25' }), { Error: /not inside/ })
  const sub = await call('IpamDriver.RequestPool', { Pool: '10.233.0.0/24', SubPool: '10.233.0.128/25' })
  t.same(await call('IpamDriver.RequestAddress', { PoolID: sub.PoolID, Address: '10.233.0.254', Options: { RequestAddressType: 'com.docker.network.gateway' } }), { Address: '10.233.0.254/24', Data: {} }, 'a given gateway')
  t.same(await call('IpamDriver.RequestAddress', { PoolID: sub.PoolID, Address: '10.233.0.254', Options: { RequestAddressType: 'com.docker.network.gateway' } }), { Address: '10.233.0.254/24', Data: {} }, 'asked again: the same')
  t.equal((await call('IpamDriver.RequestAddress', { PoolID: sub.PoolID })).Address, '10.233.0.129/24', 'dynamic addresses come from the sub-pool')
  t.match(await call('IpamDriver.RequestAddress', { PoolID: sub.PoolID, Address: '10.233.0.254' }), { Error: /already in use/ })
  t.match(await call('IpamDriver.RequestAddress', { PoolID: sub.PoolID, Address: '10.9.9.9' }), { Error: /not in pool/ })
  t.same(await call('IpamDriver.RequestAddress', { PoolID: sub.PoolID, Address: '10.233.0.5', Options: null }), { Address: '10.233.0.5/24', Data: {} }, 'a static address outside the sub-pool')
  // A network made from the pool: the Switchyard network takes Docker's addresses.
  await p.cp.createNetwork({ name: 'other', subnet: '10.235.0.0/24' })
  t.match(await call('IpamDriver.RequestPool', { Pool: '10.235.0.0/16' }), { Error: /overlaps switchyard network "other"/ })
  for (const id of [auto.PoolID, auto2.PoolID, sub.PoolID]) t.same(await call('IpamDriver.ReleasePool', { PoolID: id }), {})
  t.equal((await call('IpamDriver.RequestPool', { Pool: '10.233.0.0/24' })).Pool, '10.233.0.0/24', 'a released pool can be asked for again')

  const pool = DockerPool.create('10.9.0.0/30')
  t.equal(pool.request(undefined, true), '10.9.0.1')
  t.equal(pool.request(), '10.9.0.2')
  t.throws(() => pool.request(), /no free address/)
  t.equal(pool.release('10.9.0.2'), true)
  t.equal(pool.release('10.9.0.2'), false, 'releasing twice is fine')
  t.same(DockerPool.fromJSON(pool.toJSON()).toJSON(), pool.toJSON(), 'the state round-trips')
  t.throws(() => DockerPool.create('10.9.0.0/31'), /too small/)
})

t.test('-o options and published ports map to Switchyard\'s', async (t) => {
  t.same(networkOptions({ 'com.docker.network.generic': { mtu: '9000', dns: '127.0.0.1', internal: 'true' } }), { mtu: 9000, internal: true, rest: { dns: '127.0.0.1' } })
  t.same(networkOptions({ 'com.docker.network.internal': true, 'com.docker.network.generic': { 'com.docker.network.driver.mtu': '1450' } }), { mtu: 1450, internal: true, rest: {} })
  t.same(networkOptions({}), { internal: false, rest: {} })
  t.equal(toPublish({ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 }), '8080:80/tcp')
  t.equal(toPublish({ Proto: 17, Port: 53, HostIP: '127.0.0.1', HostPort: 5353 }), '127.0.0.1:5353:53/udp')
  t.throws(() => toPublish({ Proto: 132, Port: 80, HostPort: 80 }), /tcp and udp only/)
  t.throws(() => toPublish({ Proto: 6, Port: 80, HostPort: 8080, HostPortEnd: 8090 }), /ranges/)
  t.throws(() => toPublish({ Proto: 6, Port: 80, HostIP: '::1', HostPort: 8080 }), /not IPv4/)
  t.equal(macForAddress('10.123.0.2'), '02:42:0a:7b:00:02')
})

t.test('a restart under joined endpoints, and a TAP moved while the daemon was down', async (t) => {
  const store = openMemoryStore()
  let p = await plane(store)
  t.teardown(() => wipe(p))
  const nid = '1'.repeat(64)
  const [e1, e2] = ['2'.repeat(64), '3'.repeat(64)]
  const ns1 = await makeNs(t, 'syd')
  const ns2 = await makeNs(t, 'syd')
  const ok = async (m: string, b: unknown) => {
    const r = (await p.plugin.call(m, b)).body as Record<string, any>
    t.notOk('Err' in r, `${m}: ${JSON.stringify(r)}`)
    return r
  }
  await ok('NetworkDriver.CreateNetwork', { NetworkID: nid, IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '10.233.3.0/24', Gateway: '10.233.3.1/24' }], Options: {} })
  await ok('NetworkDriver.CreateEndpoint', { NetworkID: nid, EndpointID: e1, Interface: { Address: '10.233.3.2/24' } })
  await ok('NetworkDriver.CreateEndpoint', { NetworkID: nid, EndpointID: e2, Interface: { Address: '10.233.3.3/24' } })
  const j1 = await ok('NetworkDriver.Join', { NetworkID: nid, EndpointID: e1, SandboxKey: `/run/netns/${ns1}` })
  await moveIn(j1.InterfaceName.SrcName, ns1)
  await waitFor(() => p.cp.listEndpoints().find((e) => e.tap === j1.InterfaceName.SrcName)?.ifname, 5000, 20)
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const n = (s.address() as net.AddressInfo).port
      s.close(() => resolve(n))
    })
  })
  await ok('NetworkDriver.ProgramExternalConnectivity', { NetworkID: nid, EndpointID: e1, Options: { 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostIP: '127.0.0.1', HostPort: port, HostPortEnd: port }] } })
  const j2 = await ok('NetworkDriver.Join', { NetworkID: nid, EndpointID: e2, SandboxKey: `/run/netns/${ns2}` })

  // The daemon stops; Docker moves the second TAP meanwhile; the daemon comes back.
  await p.stop()
  await moveIn(j2.InterfaceName.SrcName, ns2)
  p = await plane(store)
  await p.cp.restorePublished()
  const eps = p.cp.listEndpoints()
  t.equal(eps.length, 2, 'both endpoints are still there')
  for (const [tap, ns] of [[j1.InterfaceName.SrcName, ns1], [j2.InterfaceName.SrcName, ns2]]) {
    const ep = eps.find((e) => e.tap === tap)
    t.equal(ep?.ifname, 'eth0', `${tap} is found in its container`)
    t.equal(ep?.state, 'up', 'and the switch holds it again')
    t.equal(ep && p.cp.inspectSandbox(ep.sandboxId!).netnsPath, `/run/netns/${ns}`)
  }
  t.notOk(await hostHas(j2.InterfaceName.SrcName), 'no stray TAP of that name in the host')
  t.match(((await p.plugin.call('NetworkDriver.EndpointOperInfo', { NetworkID: nid, EndpointID: e1 })).body as any).Value, { ifname: 'eth0', published: `127.0.0.1:${port}->80/tcp` })
  const inUse = await new Promise<boolean>((resolve) => {
    const s = net.createServer().once('error', () => resolve(true))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)))
  })
  t.ok(inUse, 'the published port is listened on again')
  // Frames flow through the re-opened TAPs: ns1 pings ns2 through the switch.
  await must('ip', ['-n', ns1, 'addr', 'add', '10.233.3.2/24', 'dev', 'eth0'])
  await must('ip', ['-n', ns2, 'addr', 'add', '10.233.3.3/24', 'dev', 'eth0'])
  const pinged = await run('ip', ['netns', 'exec', ns1, 'ping', '-c1', '-W2', '10.233.3.3'])
  t.match(pinged.stdout, /1 received/, 'traffic resumes between the two containers')

  for (const e of [e1, e2]) {
    await ok('NetworkDriver.RevokeExternalConnectivity', { NetworkID: nid, EndpointID: e })
    await ok('NetworkDriver.Leave', { NetworkID: nid, EndpointID: e })
    await ok('NetworkDriver.DeleteEndpoint', { NetworkID: nid, EndpointID: e })
  }
  await ok('NetworkDriver.DeleteNetwork', { NetworkID: nid })
  t.same(leftovers(p), NOTHING, 'nothing left')
  t.equal(await findTapByMac(`/run/netns/${ns1}`, macForAddress('10.233.3.2')), undefined, 'the TAPs are gone from the containers')
})

t.test('the protocol over HTTP on a unix socket', async (t) => {
  const p = await plane()
  t.teardown(() => wipe(p))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-plugin-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const sock = path.join(dir, 'plugins', 'switchyard.sock')
  await p.plugin.listen(sock)
  const post = (p: string, body?: string, method = 'POST') =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ socketPath: sock, method, path: p, headers: { 'content-length': Buffer.byteLength(body ?? '') } }, (res) => {
        let b = ''
        res.on('data', (c: Buffer) => (b += c.toString()))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }))
      })
      req.on('error', reject)
      req.end(body ?? '')
    })
  t.same(await post('/Plugin.Activate'), { status: 200, body: '{"Implements":["NetworkDriver","IpamDriver"]}' }, 'Activate with Content-Length: 0')
  t.same(await post('/NetworkDriver.GetCapabilities', 'null'), { status: 200, body: '{"Scope":"local","ConnectivityScope":"local"}' })
  t.equal((await post('/NetworkDriver.Nope', '{}')).status, 404, 'unknown method: 404')
  t.equal((await post('/IpamDriver.RequestPool', '{"Pool":')).status, 400, 'malformed JSON: 400')
  t.match(JSON.parse((await post('/IpamDriver.RequestAddress', '{"PoolID":"x"}')).body), { Error: /no pool x/ })
  t.equal((await post('/Plugin.Activate', '', 'GET')).status, 405)
  await p.plugin.close()
  t.notOk(fs.existsSync(sock), 'the socket goes on close')
  t.notOk(fs.existsSync(path.dirname(sock)), 'and the directory it made')
})
