// Docker (Debian's docker.io) with Switchyard as its remote network driver and remote IPAM
// driver: a dockerd of the test's own (its own networking off, its own socket, data root
// and exec root), an image imported from busybox, two containers pinging each other, a
// published port answering from the host, network connect/disconnect, container restart, a
// Switchyard daemon killed and restarted under running containers, network removal, and
// nothing left behind afterwards.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, httpGet } from '../helpers/localnet.js'
import { startDaemon, type TestDaemon } from '../helpers/daemon.js'
import { uniqueName } from '../helpers/netns.js'
import { must, run, waitFor } from '../helpers/sh.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const DOCKER = '/usr/bin/docker' // another `docker` may come first on PATH
/** Host paths dockerd and its containerd make outside their data and exec roots, innermost first. */
const HOST_PATHS = ['/etc/docker/key.json', '/etc/docker', '/run/containerd/s', '/run/containerd', '/run/docker/plugins', '/run/docker']

class Engine {
  proc?: ChildProcess
  logs = ''
  readonly socket: string

  constructor(readonly dir: string) {
    this.socket = path.join(dir, 'docker.sock')
  }

  docker(args: string[], timeoutMs = 60_000) {
    return run(DOCKER, ['-H', `unix://${this.socket}`, ...args], timeoutMs)
  }

  async must(args: string[], timeoutMs = 60_000): Promise<string> {
    const r = await this.docker(args, timeoutMs)
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`)
    return r.stdout.trim()
  }

  async start(): Promise<void> {
    const args = [
      '--iptables=false', '--ip6tables=false', '--bridge=none', '--ip-forward=false', '--ip-masq=false', '--userland-proxy=false',
      '-H', `unix://${this.socket}`, '--data-root', path.join(this.dir, 'data'), '--exec-root', path.join(this.dir, 'exec'),
      '--pidfile', path.join(this.dir, 'docker.pid'),
    ]
    const p = spawn('dockerd', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    this.proc = p
    p.stderr!.on('data', (c: Buffer) => {
      this.logs = (this.logs + c.toString()).slice(-200_000)
    })
    const ok = await waitFor(async () => p.exitCode === null && (await this.docker(['info', '--format', '{{.ServerVersion}}'], 5000)).code === 0, 30_000, 200)
    if (!ok) throw new Error(`dockerd did not become ready: ${this.logs.slice(-3000)}`)
  }

  /** Removes every container and network it has, then stops it (by PID) and what it started. */
  async stop(): Promise<void> {
    const p = this.proc
    if (!p || p.exitCode !== null || p.signalCode !== null) return
    const ids = (await this.docker(['ps', '-aq'])).stdout.split(/\s+/).filter(Boolean)
    if (ids.length) await this.docker(['rm', '-f', ...ids], 120_000)
    const nets = (await this.docker(['network', 'ls', '--filter', 'type=custom', '-q'])).stdout.split(/\s+/).filter(Boolean)
    if (nets.length) await this.docker(['network', 'rm', ...nets])
    const exited = new Promise((r) => p.once('exit', r))
    p.kill('SIGTERM')
    const timer = setTimeout(() => p.kill('SIGKILL'), 20_000)
    await exited
    clearTimeout(timer)
    // Its containerd (started with our exec root in its arguments), should dockerd not have stopped it.
    for (const pid of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      let cmd = ''
      try {
        cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      } catch {
        continue
      }
      if (cmd.includes(this.dir)) process.kill(Number(pid), 'SIGKILL')
    }
    for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n').reverse()) {
      const mnt = line.split(' ')[1]
      if (mnt?.startsWith(this.dir)) await run('umount', ['-l', mnt])
    }
  }
}


/** A root filesystem of busybox and every applet, with a page for httpd. */
function busyboxRootfs(dir: string): string {
  const rootfs = path.join(dir, 'rootfs')
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'www']) fs.mkdirSync(path.join(rootfs, d), { recursive: true })
  fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin', 'busybox'))
  fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755)
  return rootfs
}

async function linkApplets(rootfs: string): Promise<void> {
  for (const applet of (await must('/bin/busybox', ['--list-full'])).split('\n').filter(Boolean)) {
    const target = path.join(rootfs, applet)
    fs.mkdirSync(path.dirname(target), { recursive: true })
    if (!fs.existsSync(target)) fs.symlinkSync('/bin/busybox', target)
  }
  fs.writeFileSync(path.join(rootfs, 'www', 'index.html'), 'served by a container on switchyard\n')
}

async function switchyardState(d: TestDaemon) {
  const [n, s, e] = await Promise.all([d.api('GET', '/v1/networks'), d.api('GET', '/v1/sandboxes'), d.api('GET', '/v1/endpoints')])
  return { networks: n.body as { name: string; labels: Record<string, string>; mtu: number; subnet: string }[], sandboxes: s.body as { name: string; endpoints: unknown[] }[], endpoints: e.body as { name: string }[] }
}

t.test('docker: remote network and IPAM driver, end to end', async (t) => {
  const started = Date.now()
  const install = await run('bash', [path.join(root, 'scripts', 'install-engines.sh')], 300_000)
  t.equal(install.code, 0, `engines installed: ${install.stderr.slice(-500)}`)
  if (install.code !== 0) return
  const defaults = (await run('pgrep', ['-x', 'dockerd'])).stdout.split(/\s+/).filter(Boolean).filter((pid) => {
    try {
      return !fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--iptables=false')
    } catch {
      return false
    }
  })
  t.same(defaults, [], 'no dockerd with default settings runs (the package did not start one; it would add iptables rules)')

  const hostPathsBefore = new Set(HOST_PATHS.filter((p) => fs.existsSync(p)))
  const name = uniqueName('sy') // the driver's name: Docker finds /run/docker/plugins/NAME.sock
  const pluginSocket = `/run/docker/plugins/${name}.sock`
  const d = await startDaemon(t, ['--default-subnet', '10.236.0.0/24', '--docker-plugin-socket', pluginSocket])
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-docker-'))
  const engine = new Engine(dir)
  // Registered after the daemon's: runs first, while the plugin still answers Docker.
  t.teardown(async () => {
    await engine.stop().catch((e) => console.error('stopping dockerd:', e))
    fs.rmSync(dir, { recursive: true, force: true })
    for (const p of HOST_PATHS) {
      if (hostPathsBefore.has(p) || !fs.existsSync(p)) continue
      try {
        if (fs.statSync(p).isDirectory()) fs.rmdirSync(p)
        else fs.rmSync(p) // key.json: dockerd's identity, made at its first start
      } catch {
        // not empty: someone else's now
      }
    }
  })
  t.ok(fs.existsSync(pluginSocket), 'the daemon serves the plugin socket')

  await engine.start()
  const rootfs = busyboxRootfs(dir)
  await linkApplets(rootfs)
  const tar = spawn('tar', ['-C', rootfs, '-c', '.'], { stdio: ['ignore', 'pipe', 'ignore'] })
  const imp = spawn(DOCKER, ['-H', `unix://${engine.socket}`, 'import', '-', `${name}:latest`], { stdio: ['pipe', 'ignore', 'pipe'] })
  tar.stdout!.pipe(imp.stdin!)
  t.equal(await new Promise((r) => imp.once('exit', r)), 0, 'image imported from busybox')
  const image = `${name}:latest`
  t.comment(`dockerd ready and image built in ${Date.now() - started} ms`)

  // Errors come back the way Docker shows them.
  const v6 = await engine.docker(['network', 'create', '-d', name, '--ipv6', '--subnet', '10.237.9.0/24', '--subnet', 'fd00:5::/64', `${name}-v6`])
  t.not(v6.code, 0, 'an IPv6 network is refused')
  t.match(v6.stderr, /IPv4 only/)

  // Network A: Docker's own IPAM, -o options; network B: Switchyard's IPAM.
  const netA = await engine.must(['network', 'create', '-d', name, '--subnet', '10.237.1.0/24', '-o', 'mtu=1400', '-o', 'domain=test.example', `${name}-a`])
  const netB = await engine.must(['network', 'create', '-d', name, '--ipam-driver', name, '--subnet', '10.237.2.0/24', `${name}-b`])
  let st = await switchyardState(d)
  const syA = st.networks.find((n) => n.name === `docker-${netA.slice(0, 12)}`)
  t.ok(syA, 'Switchyard has a network for docker network A')
  t.equal(syA?.labels['switchyard.docker.network-id'], netA, 'labelled with the Docker NetworkID')
  t.equal(syA?.mtu, 1400, '-o mtu=1400 is the network MTU')
  t.equal((syA as unknown as { options: Record<string, string> })?.options.domain, 'test.example', 'other -o options are network options')
  t.ok(st.networks.some((n) => n.name === `docker-${netB.slice(0, 12)}` && n.subnet === '10.237.2.0/24'), 'and one for network B')

  const port = await freePort()
  t.equal((await engine.docker(['run', '-d', '--name', 'c1', '--network', `${name}-a`, image, 'sleep', '3600'])).code, 0, 'container c1 runs')
  const c2 = await engine.docker(['run', '-d', '--name', 'c2', '--network', `${name}-a`, '-p', `127.0.0.1:${port}:80`, image, 'httpd', '-f', '-p', '80', '-h', '/www'])
  t.equal(c2.code, 0, `container c2 runs with a published port: ${c2.stderr}`)
  const ping = async (from: string, to: string) => /1 packets received/.test((await engine.docker(['exec', from, 'ping', '-c1', '-W2', to])).stdout)
  t.ok(await ping('c1', 'c2'), 'c1 pings c2 (by name, through Docker\'s resolver)')
  t.ok(await ping('c2', 'c1'), 'c2 pings c1')
  t.ok(await ping('c1', '10.237.1.1'), 'c1 pings the gateway (answered by the switch)')
  t.match((await engine.docker(['exec', 'c1', 'cat', '/sys/class/net/eth0/mtu'])).stdout, /^1400/, 'the container interface has the network MTU')
  const page = await waitFor(async () => {
    const r = await httpGet(port)
    return r.status === 200 ? r : undefined
  }, 10_000, 200)
  t.equal(page?.body, 'served by a container on switchyard\n', 'the published port answers from the host')

  st = await waitFor(async () => {
    const s = await switchyardState(d)
    return s.sandboxes.length === 2 && s.sandboxes.every((x) => x.endpoints.length === 1) ? s : undefined
  }, 10_000, 100) ?? (await switchyardState(d))
  t.equal(st.sandboxes.length, 2, 'each container is an adopted sandbox with its endpoint')

  // connect --ip to the Switchyard-IPAM network, then disconnect.
  t.equal((await engine.docker(['network', 'connect', '--ip', '10.237.2.50', `${name}-b`, 'c1'])).code, 0, 'network connect --ip')
  t.equal((await engine.docker(['network', 'connect', `${name}-b`, 'c2'])).code, 0, 'network connect c2')
  t.match((await engine.docker(['exec', 'c1', 'ip', 'addr', 'show', 'eth1'])).stdout, /inet 10\.237\.2\.50\/24/, 'c1 has eth1 with the asked address')
  t.ok(await ping('c2', '10.237.2.50'), 'c2 pings c1 on network B')
  const taken = await engine.docker(['network', 'connect', '--ip', '10.237.2.50', `${name}-b`, 'c2'])
  t.not(taken.code, 0, 'an address in use is refused')
  const dup = await engine.docker(['run', '--rm', '--network', `${name}-b`, '--ip', '10.237.2.50', image, 'true'])
  t.match(dup.stderr, /already in use/, 'by the IPAM driver, with its message')
  t.equal((await engine.docker(['network', 'disconnect', `${name}-b`, 'c1'])).code, 0, 'network disconnect')
  t.equal((await engine.docker(['exec', 'c1', 'ip', 'link', 'show', 'eth1'])).code !== 0, true, 'c1 has no eth1 any more')

  // Restart a container: Leave + DeleteEndpoint, then CreateEndpoint + Join.
  t.equal((await engine.docker(['restart', '-t', '0', 'c1'])).code, 0, 'docker restart c1')
  t.ok(await ping('c2', 'c1'), 'c2 pings the restarted c1')
  t.ok(await ping('c1', 'c2'), 'and the other way')

  // The Switchyard daemon dies and comes back under running containers.
  await waitFor(async () => (await switchyardState(d)).endpoints.length === 3, 10_000, 100)
  await d.kill9()
  await d.start()
  st = await switchyardState(d)
  t.equal(st.endpoints.length, 3, 'Docker\'s endpoints survive a kill -9 of the daemon')
  t.ok(await ping('c1', 'c2'), 'c1 pings c2 after the restart')
  t.ok(await ping('c2', '10.237.2.1'), 'c2 pings its network B gateway')
  t.equal((await httpGet(port)).status, 200, 'the published port answers again')
  const ports = (await d.api('GET', '/v1/ports')).body as { state: string }[]
  t.ok(ports.every((p) => p.state === 'up'), 'every port is re-attached inside its container')

  // Teardown through Docker: nothing of it stays in Switchyard or the host.
  const taps = ((await d.api('GET', '/v1/endpoints')).body as { tap: string }[]).map((e) => e.tap)
  t.equal((await engine.docker(['rm', '-f', 'c1', 'c2'])).code, 0, 'containers removed')
  t.equal((await engine.docker(['network', 'rm', `${name}-a`, `${name}-b`])).code, 0, 'networks removed')
  st = await switchyardState(d)
  t.same(st.networks.map((n) => n.name), ['default'], 'only the default network is left')
  t.same([st.sandboxes.length, st.endpoints.length], [0, 0], 'no sandboxes, no endpoints')
  const hostLinks = (JSON.parse(await must('ip', ['-j', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname)
  t.same(taps.filter((tap) => hostLinks.includes(tap)), [], 'no endpoint TAP left in the host')
  const mounts = fs.readFileSync('/proc/mounts', 'utf8')
  t.notOk(mounts.includes(path.join(dir, 'exec', 'netns')), 'no container namespace kept mounted')
  const again = await engine.docker(['network', 'create', '-d', name, '--ipam-driver', name, '--subnet', '10.237.2.0/24', `${name}-b2`])
  t.equal(again.code, 0, 'the IPAM pool was released: the subnet can be used again')
  await engine.docker(['network', 'rm', `${name}-b2`])
  t.comment(`docker end to end took ${Date.now() - started} ms`)
})
