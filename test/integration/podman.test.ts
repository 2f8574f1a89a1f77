// podman 4.3 (Debian) on its CNI backend with `switchyard-cni` as the plugin of two
// networks: containers run from a busybox root filesystem (--rootfs), ping each other (by
// address, by name and alias through the gateway's DNS), --ip and --mac-address, a published
// port from the host, network connect/disconnect, network reload, container restart, a
// Switchyard daemon killed and restarted under running containers, and DEL from podman's
// cleanup process (which runs without the caller's environment). Nothing is left behind.
import t from 'tap'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, httpGet } from '../helpers/localnet.js'
import { startDaemon, type TestDaemon } from '../helpers/daemon.js'
import { uniqueName } from '../helpers/netns.js'
import { must, run, waitFor } from '../helpers/sh.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
/** Host paths podman, runc and libcni create outside the test's own storage. */
const HOST_PATHS = ['/var/lib/cni/results', '/var/lib/cni', '/run/runc', '/run/containers/storage', '/run/containers', '/run/libpod']


async function busyboxRootfs(dir: string): Promise<string> {
  const rootfs = path.join(dir, 'rootfs')
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'www']) fs.mkdirSync(path.join(rootfs, d), { recursive: true })
  fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin', 'busybox'))
  fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755)
  for (const applet of (await must('/bin/busybox', ['--list-full'])).split('\n').filter(Boolean)) {
    const target = path.join(rootfs, applet)
    fs.mkdirSync(path.dirname(target), { recursive: true })
    if (!fs.existsSync(target)) fs.symlinkSync('/bin/busybox', target)
  }
  fs.writeFileSync(path.join(rootfs, 'www', 'index.html'), 'served by a podman container on switchyard\n')
  return rootfs
}

/** podman's own configuration for the test: CNI backend, our plugin and config dirs, no port reservation. */
function configure(dir: string, socket: string, nets: { name: string; network?: string; subnet?: string }[]) {
  const cniConf = path.join(dir, 'cni-conf')
  const cniBin = path.join(dir, 'cni-bin')
  fs.mkdirSync(cniConf)
  fs.mkdirSync(cniBin)
  // The plugin as a package installs it: an executable named switchyard-cni.
  fs.symlinkSync(path.join(root, 'bin', 'switchyard-cni.js'), path.join(cniBin, 'switchyard-cni'))
  for (const n of nets) {
    const plugin = { type: 'switchyard-cni', socket, ...(n.network ? { network: n.network } : {}), ...(n.subnet ? { subnet: n.subnet } : {}), capabilities: { portMappings: true, aliases: true, ips: true, mac: true } }
    fs.writeFileSync(path.join(cniConf, `${n.name}.conflist`), JSON.stringify({ cniVersion: '1.0.0', name: n.name, plugins: [plugin] }, null, 2))
  }
  fs.writeFileSync(
    path.join(dir, 'containers.conf'),
    [
      '[containers]',
      'netns = "private"',
      'default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]',
      '[engine]',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      'runtime = "runc"',
      // Switchyard listens on published ports itself: podman must not hold them.
      'enable_port_reservation = false',
      `tmp_dir = "${path.join(dir, 'tmp')}"`,
      '[network]',
      'network_backend = "cni"',
      `cni_plugin_dirs = ["${cniBin}", "/usr/lib/cni"]`,
      `network_config_dir = "${cniConf}"`,
      '',
    ].join('\n'),
  )
  fs.writeFileSync(path.join(dir, 'storage.conf'), `[storage]\ndriver = "overlay"\ngraphroot = "${path.join(dir, 'storage')}"\nrunroot = "${path.join(dir, 'run')}"\n`)
  const env = [`CONTAINERS_CONF=${path.join(dir, 'containers.conf')}`, `CONTAINERS_STORAGE_CONF=${path.join(dir, 'storage.conf')}`]
  return (args: string[], timeoutMs = 60_000) => run('env', [...env, 'podman', ...args], timeoutMs)
}

async function sandboxes(d: TestDaemon) {
  return (await d.api('GET', '/v1/sandboxes')).body as { name: string; endpoints: { network: string; ifname: string; address: string; mac: string }[] }[]
}

t.test('podman: CNI plugin, end to end', async (t) => {
  const started = Date.now()
  const install = await run('bash', [path.join(root, 'scripts', 'install-engines.sh')], 300_000)
  t.equal(install.code, 0, `engines installed: ${install.stderr.slice(-500)}`)
  if (install.code !== 0) return
  const hostPathsBefore = new Set(HOST_PATHS.filter((p) => fs.existsSync(p)))

  const d = await startDaemon(t, ['--default-subnet', '10.238.0.0/24', '--no-docker-plugin'])
  const name = uniqueName('sy')
  const [netA, netB] = [`${name}a`, `${name}b`]
  // Network B exists in Switchyard beforehand; A is made by the plugin from its "subnet".
  t.equal((await d.api('POST', '/v1/networks', { name: `sw-${netB}`, subnet: '10.239.2.0/24' })).status, 201)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-podman-'))
  fs.mkdirSync(path.join(dir, 'tmp'))
  const podman = configure(dir, d.socket, [{ name: netA, subnet: '10.239.1.0/24' }, { name: netB, network: `sw-${netB}` }])
  // Registered after the daemon's teardown: runs first, while the daemon still answers DEL.
  t.teardown(async () => {
    await podman(['rm', '-af', '-t', '0'], 120_000)
    for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n').reverse()) {
      const mnt = line.split(' ')[1]
      if (mnt?.startsWith(dir)) await run('umount', ['-l', mnt])
    }
    fs.rmSync(dir, { recursive: true, force: true })
    for (const p of HOST_PATHS) {
      if (hostPathsBefore.has(p) || !fs.existsSync(p)) continue
      try {
        fs.rmdirSync(p)
      } catch {
        // not empty: someone else's now
      }
    }
  })
  const rootfs = await busyboxRootfs(dir)
  const ls = await podman(['network', 'ls', '--format', '{{.Name}} {{.Driver}}'])
  t.match(ls.stdout, new RegExp(`${netA} switchyard-cni`), 'podman lists the network with our plugin')

  // --rm: DEL comes from `podman container cleanup`, without our environment.
  const once = await podman(['run', '--rm', '--network', netA, '--rootfs', rootfs, 'sh', '-c', 'ip -4 addr show eth0; ip route'])
  t.equal(once.code, 0, `podman run --rm: ${once.stderr}`)
  t.match(once.stdout, /inet 10\.239\.1\.\d+\/24/, 'the container got an address of the network')
  t.match(once.stdout, /default via 10\.239\.1\.1 dev eth0/, 'and its default route via the gateway')
  t.ok(await waitFor(async () => (await sandboxes(d)).length === 0, 10_000, 100), 'its endpoint went with it')

  const port = await freePort()
  const p1 = await podman(['run', '-d', '--name', 'p1', '--network', netA, '--ip', '10.239.1.77', '--mac-address', '02:00:00:00:00:77', '--network-alias', 'web', '-p', `127.0.0.1:${port}:80`, '--rootfs', rootfs, 'httpd', '-f', '-p', '80', '-h', '/www'])
  t.equal(p1.code, 0, `p1 runs with --ip, --mac-address, an alias and a published port: ${p1.stderr}`)
  const p2 = await podman(['run', '-d', '--name', 'p2', '--network', netA, '--dns', '10.239.1.1', '--rootfs', rootfs, 'sleep', '3600'])
  t.equal(p2.code, 0, `p2 runs: ${p2.stderr}`)
  const ping = async (from: string, to: string) => /1 packets received/.test((await podman(['exec', from, 'ping', '-c1', '-W2', to])).stdout)
  const eth0 = (await podman(['exec', 'p1', 'ip', 'addr', 'show', 'eth0'])).stdout
  t.match(eth0, /inet 10\.239\.1\.77\/24/, '--ip (CNI_ARGS IP) is the address')
  t.match(eth0, /link\/ether 02:00:00:00:00:77/, '--mac-address (CNI_ARGS MAC) is the MAC')
  t.ok(await ping('p2', '10.239.1.77'), 'p2 pings p1')
  t.ok(await ping('p2', 'p1'), 'p2 pings p1 by name (the gateway\'s DNS)')
  t.ok(await ping('p2', 'web'), 'and by its --network-alias (runtimeConfig aliases)')
  t.ok(await ping('p1', '10.239.1.1'), 'p1 pings the gateway')
  const page = await waitFor(async () => {
    const r = await httpGet(port)
    return r.status === 200 ? r : undefined
  }, 10_000, 200)
  t.equal(page?.body, 'served by a podman container on switchyard\n', 'the published port (runtimeConfig portMappings) answers from the host')

  // CHECK (podman 4.3 never calls it): the plugin as the runtime would run it.
  const id = (await podman(['inspect', 'p1', '--format', '{{.Id}}'])).stdout.trim()
  const sandboxKey = (await podman(['inspect', 'p1', '--format', '{{.NetworkSettings.SandboxKey}}'])).stdout.trim()
  const conf = JSON.parse(fs.readFileSync(path.join(dir, 'cni-conf', `${netA}.conflist`), 'utf8'))
  const stdin = JSON.stringify({ cniVersion: '1.0.0', name: netA, ...conf.plugins[0] })
  const check = await spawnPlugin({ CNI_COMMAND: 'CHECK', CNI_CONTAINERID: id, CNI_NETNS: sandboxKey, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' }, stdin)
  t.same([check.code, check.out], [0, ''], 'CHECK of p1\'s eth0 passes')

  // connect / reload / disconnect
  t.equal((await podman(['network', 'connect', netB, 'p1'])).code, 0, 'podman network connect (a second network, eth1)')
  t.equal((await podman(['network', 'connect', netB, 'p2'])).code, 0, 'and p2')
  const p1b = (await sandboxes(d)).find((s) => s.name === 'p1')?.endpoints.find((e) => e.ifname === 'eth1')
  t.match(p1b?.address, /^10\.239\.2\.\d+\/24$/, 'p1 is on network B as eth1')
  t.ok(p1b && (await ping('p2', p1b.address.split('/')[0])), 'p2 pings p1 on network B')
  const reload = await podman(['network', 'reload', 'p1'])
  t.equal(reload.code, 0, `podman network reload (DEL and ADD of every network): ${reload.stderr}`)
  const afterReload = (await sandboxes(d)).find((s) => s.name === 'p1')
  t.same(afterReload?.endpoints.map((e) => `${e.ifname} ${e.address} ${e.mac}`).sort(), [`eth0 10.239.1.77/24 02:00:00:00:00:77`, `eth1 ${p1b?.address} ${p1b?.mac}`].sort(), 'reload keeps interfaces, addresses and MACs')
  t.ok(await ping('p2', '10.239.1.77'), 'p2 pings p1 after the reload')
  t.equal((await httpGet(port)).status, 200, 'the published port answers after the reload')
  t.equal((await podman(['network', 'disconnect', netB, 'p1'])).code, 0, 'podman network disconnect')
  t.not((await podman(['exec', 'p1', 'ip', 'link', 'show', 'eth1'])).code, 0, 'p1 has no eth1 any more')

  // restart: DEL (old namespace) and ADD (new namespace); neighbours learn the move at once.
  t.equal((await podman(['restart', '-t', '0', 'p1'])).code, 0, 'podman restart p1')
  t.ok(await ping('p2', '10.239.1.77'), 'p2 pings the restarted p1 right away')
  t.equal((await httpGet(port)).status, 200, 'the published port answers after the restart')

  // The daemon dies and comes back under running containers.
  await d.kill9()
  await d.start()
  t.ok(await ping('p2', 'p1'), 'p2 pings p1 (by name) after a kill -9 of the daemon')
  t.equal((await httpGet(port)).status, 200, 'the published port answers again')

  // stop / rm: DEL from the cleanup process; nothing stays.
  t.equal((await podman(['rm', '-f', '-t', '0', 'p1', 'p2'])).code, 0, 'containers removed')
  t.ok(await waitFor(async () => (await sandboxes(d)).length === 0, 10_000, 100), 'no sandboxes left')
  t.same((await d.api('GET', '/v1/endpoints')).body, [], 'no endpoints left')
  t.equal((await d.api('DELETE', `/v1/networks/${netA}`)).status, 200, 'network A (made by the plugin) can be removed: it is unused')
  t.equal((await d.api('DELETE', `/v1/networks/sw-${netB}`)).status, 200, 'and network B')
  t.comment(`podman end to end took ${Date.now() - started} ms`)
})

/** Runs bin/switchyard-cni.js as a runtime would: env in, config on stdin. */
async function spawnPlugin(env: Record<string, string>, stdin: string): Promise<{ code: number | null; out: string }> {
  const c = spawn(path.join(root, 'bin', 'switchyard-cni.js'), [], { env: { PATH: '/usr/bin:/bin', ...env }, stdio: ['pipe', 'pipe', 'inherit'] })
  let out = ''
  c.stdout!.on('data', (b: Buffer) => (out += b.toString()))
  c.stdin!.end(stdin)
  const code = await new Promise<number | null>((r) => c.once('exit', r))
  return { code, out: out.trim() }
}
