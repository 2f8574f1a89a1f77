// The CNI plugin: what podman sent (test/fixtures/engines, copied from shared/fixtures) replayed through runCni — the
// executable's logic — against a daemon's API served in-process (real control plane, TAP
// devices, namespaces standing in for podman's); results and errors as the spec gives them;
// ADD/DEL idempotency; CHECK, STATUS, GC; the executable itself.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ApiServer } from '../../src/api/server.js'
import { ControlPlane } from '../../src/control/control-plane.js'
import { TapIo } from '../../src/dataplane/tap-port.js'
import { runCni } from '../../src/plugins/cni/plugin.js'
import { CniService, registerCniRoutes } from '../../src/plugins/cni/service.js'
import { parseCniArgs, shapeResult, versionResult } from '../../src/plugins/cni/spec.js'
import { openMemoryStore } from '../../src/store/store.js'
import { Switch } from '../../src/switch/switch.js'
import { silentLogger } from '../../src/util/log.js'
import { makeNs } from '../helpers/netns.js'
import { must } from '../helpers/sh.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const FIXTURES = path.join(root, 'test', 'fixtures', 'engines') // copies of shared/fixtures

interface CniCall {
  env: Record<string, string>
  stdin: Record<string, any>
  stdout: Record<string, any> | null
  rc: number
}

function fixture(name: string): CniCall[] {
  const file = path.join(FIXTURES, name)
  if (!fs.existsSync(file)) throw new Error(`fixture ${file} is missing: copy it from shared/fixtures`)
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as CniCall)
}

/** A daemon's API with the CNI route on a socket of its own, in this process. */
async function daemon(t: Test) {
  const store = openMemoryStore()
  const sw = new Switch({ io: new TapIo(), log: silentLogger })
  const cp = new ControlPlane({ store, sw, log: silentLogger, hostRoutes: () => [], upstreams: [{ host: '127.0.0.1', port: 9 }] })
  await cp.restore()
  const api = new ApiServer(silentLogger)
  registerCniRoutes(api, new CniService({ cp, store, log: silentLogger }))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-cni-'))
  const socket = path.join(dir, 'sy.sock')
  await api.listen(socket)
  t.teardown(async () => {
    for (const e of cp.listEndpoints()) await cp.removeEndpoint(e.id).catch(() => undefined)
    for (const s of cp.listSandboxes()) await cp.deleteSandbox(s.id).catch(() => undefined)
    await api.close()
    cp.shutdown()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return { cp, store, socket }
}

async function freePort(): Promise<number> {
  const srv = net.createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
  const port = (srv.address() as net.AddressInfo).port
  await new Promise((r) => srv.close(r))
  return port
}

async function linkIn(ns: string, ifname: string) {
  const r = JSON.parse(await must('ip', ['-n', ns, '-j', 'addr', 'show', 'dev', ifname])) as { address: string; addr_info: { family: string; local: string; prefixlen: number }[] }[]
  return { mac: r[0].address, v4: r[0].addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`) }
}

/** Replays podman's calls: namespaces mapped to the test's, the socket and the host port to ours. */
async function replay(t: Test, d: Awaited<ReturnType<typeof daemon>>, calls: CniCall[]) {
  const nsFor = new Map<string, string>()
  const port = await freePort()
  for (const call of calls) {
    const env = { ...call.env }
    if (env.CNI_NETNS && env.CNI_NETNS !== 'dummy') {
      if (!nsFor.has(env.CNI_NETNS)) nsFor.set(env.CNI_NETNS, await makeNs(t, 'syc'))
      env.CNI_NETNS = `/run/netns/${nsFor.get(env.CNI_NETNS)}`
    }
    const stdin = JSON.parse(JSON.stringify({ ...call.stdin, socket: d.socket }).replaceAll('18080', String(port)))
    if (stdin.prevResult) stdin.prevResult = JSON.parse(JSON.stringify(stdin.prevResult).replaceAll(call.env.CNI_NETNS, env.CNI_NETNS))
    const r = await runCni(env, JSON.stringify(stdin))
    const what = `${env.CNI_COMMAND} ${env.CNI_IFNAME ?? ''} ${stdin.name ?? ''}`
    t.equal(r.exitCode, call.rc, `${what}: exit ${call.rc} ${r.exitCode ? r.stdout : ''}`)
    if (env.CNI_COMMAND === 'VERSION') {
      const v = JSON.parse(r.stdout)
      t.equal(v.cniVersion, call.stdout!.cniVersion, 'VERSION echoes the asked version')
      t.ok((call.stdout!.supportedVersions as string[]).every((x) => v.supportedVersions.includes(x)), 'and supports all podman knows')
      continue
    }
    if (env.CNI_COMMAND === 'DEL') {
      t.equal(r.stdout, '', 'DEL prints nothing')
      const again = await runCni(env, JSON.stringify(stdin))
      t.same([again.exitCode, again.stdout], [0, ''], 'DEL again: still fine')
      continue
    }
    // ADD
    const res = JSON.parse(r.stdout)
    const want = call.stdout!
    const args = parseCniArgs(env.CNI_ARGS)
    t.equal(res.cniVersion, '1.0.0')
    t.same(res.interfaces, [{ name: env.CNI_IFNAME, mac: res.interfaces[0].mac, sandbox: env.CNI_NETNS }], 'the interface, in the container\'s namespace')
    const asked = stdin.runtimeConfig?.ips?.[0] ?? args.IP
    if (asked) t.equal(res.ips[0].address, want.ips[0].address, `the asked address ${asked}`)
    else t.match(res.ips[0].address, new RegExp(`^${stdin.subnet.replace(/0\/24$/, '').replaceAll('.', '\\.')}\\d+/24$`), 'an address of the subnet')
    if (args.MAC ?? stdin.runtimeConfig?.mac) t.equal(res.interfaces[0].mac, args.MAC ?? stdin.runtimeConfig.mac, 'the asked MAC')
    t.same(res.ips, [{ address: res.ips[0].address, gateway: stdin.gateway, interface: 0 }])
    t.same(res.dns, { nameservers: [stdin.gateway] }, 'DNS: the gateway')
    t.same(res.routes, env.CNI_IFNAME === 'eth0' ? [{ dst: '0.0.0.0/0', gw: stdin.gateway }] : [], 'a default route on the first network only')
    const dev = await linkIn(nsFor.get(call.env.CNI_NETNS)!, env.CNI_IFNAME)
    t.same(dev, { mac: res.interfaces[0].mac, v4: [res.ips[0].address] }, 'the device in the namespace is as the result says')
    const again = await runCni(env, JSON.stringify(stdin))
    t.same(JSON.parse(again.stdout), res, 'ADD again: the same result')
  }
}

t.test('podman run: VERSION, ADD, DEL', async (t) => {
  const d = await daemon(t)
  await replay(t, d, fixture('podman-cni-run-simple.jsonl'))
  t.same([d.cp.listSandboxes().length, d.cp.listEndpoints().length, d.store.list('cni.attachment').length], [0, 0, 0], 'nothing left')
  t.equal(d.cp.networkRecord('rvsnet').subnet, '10.126.0.0/24', 'the network was made from the configuration\'s subnet')
})

t.test('podman: --ip, --mac-address, -p, aliases, connect, reload, disconnect, restart', async (t) => {
  const d = await daemon(t)
  await replay(t, d, fixture('podman-cni-run-connect-reload.jsonl'))
  t.same([d.cp.listSandboxes().length, d.cp.listEndpoints().length, d.store.list('cni.attachment').length], [0, 0, 0], 'nothing left')
})

t.test('published ports, aliases and DNS names of an attachment', async (t) => {
  const d = await daemon(t)
  const ns = await makeNs(t, 'syc')
  const port = await freePort()
  const conf = { cniVersion: '1.1.0', name: 'cninet', type: 'switchyard-cni', socket: d.socket, subnet: '10.232.1.0/24', runtimeConfig: { mac: '02:00:00:00:aa:01', aliases: { cninet: ['web', 'bad name!'] }, portMappings: [{ hostPort: port, containerPort: 80, protocol: 'tcp', hostIP: '127.0.0.1' }] } }
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c0ffee', CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAME=webpod', CNI_PATH: '/usr/lib/cni' }
  const r = await runCni(env, JSON.stringify(conf))
  t.equal(r.exitCode, 0, r.stdout)
  const ep = d.cp.listEndpoints()[0]
  t.same(ep.aliases, ['web'], 'valid aliases of this network')
  t.equal(ep.mac, '02:00:00:00:aa:01', 'runtimeConfig mac')
  t.equal(d.cp.inspectSandbox(ep.sandboxId!).name, 'webpod', 'the sandbox is named after K8S_POD_NAME')
  t.same(ep.publish, [{ hostIp: '127.0.0.1', hostPort: port, port: 80, proto: 'tcp' }], 'the port mapping is published')
  // A second network with the same mappings (podman passes them to every network) publishes nothing more.
  const r2 = await runCni({ ...env, CNI_IFNAME: 'eth1' }, JSON.stringify({ ...conf, name: 'cninet2', subnet: '10.232.2.0/24' }))
  t.equal(r2.exitCode, 0, r2.stdout)
  t.same(d.cp.listEndpoints().find((e) => e.ifname === 'eth1')?.publish, undefined)
  // CHECK, STATUS, GC
  t.same(await runCni({ ...env, CNI_COMMAND: 'CHECK' }, JSON.stringify({ ...conf, prevResult: JSON.parse(r.stdout) })), { stdout: '', exitCode: 0 }, 'CHECK passes')
  const wrongPrev = { ...JSON.parse(r.stdout), ips: [{ address: '10.232.1.99/24' }] }
  t.match(JSON.parse((await runCni({ ...env, CNI_COMMAND: 'CHECK' }, JSON.stringify({ ...conf, prevResult: wrongPrev }))).stdout), { code: 101, msg: /10\.232\.1\.99/ }, 'CHECK against another previous result fails')
  t.match(JSON.parse((await runCni({ ...env, CNI_COMMAND: 'CHECK' }, JSON.stringify({ ...conf, cniVersion: '0.3.1' }))).stdout), { code: 1 }, 'CHECK needs 0.4.0+')
  await must('ip', ['-n', ns, 'link', 'set', 'dev', 'eth0', 'address', '02:00:00:00:00:01'])
  t.match(JSON.parse((await runCni({ ...env, CNI_COMMAND: 'CHECK' }, JSON.stringify(conf))).stdout), { code: 101, msg: /MAC/ }, 'CHECK sees a device changed under it')
  t.same(await runCni({ CNI_COMMAND: 'STATUS' }, JSON.stringify(conf)), { stdout: '', exitCode: 0 }, 'STATUS: ready')
  t.match(JSON.parse((await runCni({ CNI_COMMAND: 'STATUS' }, JSON.stringify({ ...conf, name: 'nonet', subnet: undefined }))).stdout), { code: 50 }, 'STATUS: a network that cannot be made is not ready')
  const ns2 = await makeNs(t, 'syc')
  t.equal((await runCni({ ...env, CNI_CONTAINERID: 'beef', CNI_NETNS: `/run/netns/${ns2}`, CNI_ARGS: '' }, JSON.stringify({ ...conf, runtimeConfig: {} }))).exitCode, 0)
  t.same(await runCni({ CNI_COMMAND: 'GC' }, JSON.stringify({ ...conf, 'cni.dev/valid-attachments': [{ containerID: 'beef', ifname: 'eth0' }] })), { stdout: '', exitCode: 0 }, 'GC')
  t.same(d.cp.listEndpoints().map((e) => `${e.ifname}@${d.cp.inspectSandbox(e.sandboxId!).netnsPath}`).sort(), [`eth0@/run/netns/${ns2}`, `eth1@/run/netns/${ns}`].sort(), 'GC removed the attachment not listed, on its network only')
  for (const [e, c] of [[{ ...env, CNI_COMMAND: 'DEL', CNI_IFNAME: 'eth1' }, { ...conf, name: 'cninet2' }], [{ ...env, CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'beef', CNI_NETNS: `/run/netns/${ns2}` }, conf]] as const) {
    t.same(await runCni(e, JSON.stringify(c)), { stdout: '', exitCode: 0 })
  }
  t.same([d.cp.listSandboxes().length, d.cp.listEndpoints().length, d.store.list('cni.attachment').length], [0, 0, 0], 'nothing left')
  // DEL of a container whose namespace is already gone is fine too.
  t.same(await runCni({ ...env, CNI_COMMAND: 'DEL', CNI_NETNS: '' }, JSON.stringify(conf)), { stdout: '', exitCode: 0 })
})

t.test('errors as the spec gives them', async (t) => {
  const d = await daemon(t)
  const ns = await makeNs(t, 'syc')
  const conf = { cniVersion: '1.0.0', name: 'errnet', type: 'switchyard-cni', socket: d.socket, subnet: '10.232.3.0/24' }
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' }
  const err = async (e: Record<string, string>, stdin: string) => {
    const r = await runCni(e, stdin)
    t.equal(r.exitCode, 1, 'exit status 1')
    return JSON.parse(r.stdout) as { cniVersion: string; code: number; msg: string; details?: string }
  }
  t.match(await err({ ...env, CNI_COMMAND: '' }, JSON.stringify(conf)), { cniVersion: '1.0.0', code: 4, msg: /CNI_COMMAND/ })
  t.match(await err({ ...env, CNI_COMMAND: 'FROB' }, JSON.stringify(conf)), { code: 4 })
  t.match(await err(env, '{"cniVersion": '), { code: 6 }, 'stdin that is not JSON')
  t.match(await err(env, JSON.stringify({ ...conf, cniVersion: '9.9.9' })), { cniVersion: '9.9.9', code: 1, msg: /not supported/ })
  t.match(await err({ ...env, CNI_NETNS: '' }, JSON.stringify(conf)), { code: 4, msg: /CNI_NETNS/ })
  t.match(await err({ ...env, CNI_IFNAME: 'way-too-long-interface-name' }, JSON.stringify(conf)), { code: 4, msg: /CNI_IFNAME/ })
  t.match(await err({ ...env, CNI_ARGS: 'FOO=1' }, JSON.stringify(conf)), { code: 4, msg: /IgnoreUnknown/ })
  t.match(await err(env, JSON.stringify({ ...conf, name: undefined })), { code: 7, msg: /name/ })
  t.match(await err(env, JSON.stringify({ ...conf, subnet: undefined, name: 'nosuch' })), { code: 7, msg: /no network "nosuch"/, details: /subnet/ })
  t.match(await err(env, JSON.stringify({ ...conf, runtimeConfig: { ips: ['10.99.0.5'] } })), { code: 100, msg: /10\.99\.0\.5/ }, 'an address outside the subnet')
  t.match(await err(env, JSON.stringify({ ...conf, runtimeConfig: { ips: ['10.232.3.5', '10.232.3.6'] } })), { code: 100, msg: /one address/ })
  t.match(await err(env, JSON.stringify({ ...conf, runtimeConfig: { portMappings: [{ hostPort: 1, containerPort: 2, protocol: 'sctp' }] } })), { code: 100, msg: /sctp/ })
  t.match(await err({ ...env, CNI_NETNS: '/run/netns/not-there' }, JSON.stringify(conf)), { code: 100, msg: /does not exist/ })
  t.same([d.cp.listSandboxes().length, d.cp.listEndpoints().length], [0, 0], 'failed ADDs leave nothing')
  const ok = await runCni(env, JSON.stringify(conf))
  t.equal(ok.exitCode, 0, ok.stdout)
  const ns2 = await makeNs(t, 'syc')
  t.match(await err({ ...env, CNI_CONTAINERID: 'other', CNI_NETNS: `/run/netns/${ns2}`, CNI_ARGS: 'IP=' + JSON.parse(ok.stdout).ips[0].address.split('/')[0] }, JSON.stringify(conf)), { code: 100, msg: /in use/ }, 'an address in use')
  t.match(await err({ ...env, CNI_CONTAINERID: 'other', CNI_IFNAME: 'eth0' }, JSON.stringify({ ...conf, name: 'errnet2', subnet: '10.232.4.0/24' })), { code: 100, msg: /eth0/ }, 'an interface name taken in the namespace')
  t.match(await err({ ...env, CNI_COMMAND: 'CHECK', CNI_CONTAINERID: 'nobody' }, JSON.stringify(conf)), { code: 101 }, 'CHECK of an attachment that is not there')
  t.same(await runCni({ ...env, CNI_COMMAND: 'DEL' }, JSON.stringify(conf)), { stdout: '', exitCode: 0 })
  // No daemon behind the socket.
  const gone = { ...conf, socket: path.join(os.tmpdir(), 'no-such-switchyard.sock') }
  t.match(await err(env, JSON.stringify(gone)), { code: 11, msg: /does not answer/ }, 'ADD: try again later')
  t.match(await err({ ...env, CNI_COMMAND: 'DEL' }, JSON.stringify(gone)), { code: 11 })
  t.match(await err({ CNI_COMMAND: 'STATUS' }, JSON.stringify(gone)), { code: 50 }, 'STATUS: not available')
})

t.test('spec helpers and the executable', async (t) => {
  t.same(parseCniArgs('IgnoreUnknown=1;K8S_POD_NAME=p1;MAC=02:00:00:00:00:77;IP=10.126.0.77;X=y'), { IgnoreUnknown: '1', K8S_POD_NAME: 'p1', MAC: '02:00:00:00:00:77', IP: '10.126.0.77', X: 'y' })
  t.same(parseCniArgs(''), {})
  t.throws(() => parseCniArgs('nokey'), /KEY=VALUE/)
  t.same(versionResult('0.4.0').cniVersion, '0.4.0')
  t.same(versionResult(undefined).supportedVersions, ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'])
  const res = { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 }] }
  t.same(shapeResult(res, '0.4.0').ips, [{ version: '4', address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 }], 'before 1.0.0 IPs carry a version')
  t.same(shapeResult(res, '1.1.0'), { ...res, cniVersion: '1.1.0' })
  // The installed executable: VERSION needs no daemon; no environment beyond CNI_*.
  const bin = path.join(root, 'bin', 'switchyard-cni.js')
  const out = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const c = spawn(bin, [], { env: { CNI_COMMAND: 'VERSION', PATH: '/usr/bin:/bin' }, stdio: ['pipe', 'pipe', 'inherit'] })
    let stdout = ''
    c.stdout!.on('data', (b: Buffer) => (stdout += b.toString()))
    c.stdin!.end('{"cniVersion":"1.0.0"}')
    c.once('exit', (code) => resolve({ code, stdout }))
  })
  t.equal(out.code, 0)
  t.same(JSON.parse(out.stdout), { cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] })
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
  t.equal(pkg.bin['switchyard-cni'], 'bin/switchyard-cni.js', 'installed with the package as switchyard-cni')
})
