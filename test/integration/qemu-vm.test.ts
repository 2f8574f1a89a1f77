// A real QEMU guest on a Switchyard port: it gets its address from the gateway's DHCP, pings
// the gateway and a sandbox, and resolves the sandbox's name through the gateway's DNS; the
// sandbox resolves the guest's DHCP hostname back. The guest is built by scripts/vm-image.sh.
//
// How the guest reaches the port: `port add --vm` leaves a persistent TAP for QEMU to open by
// name (`-netdev tap,ifname=PORT`), and the switch attaches to that device with a packet
// socket, as Open vSwitch does with libvirt's TAPs.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startDaemon, type TestDaemon } from '../helpers/daemon.js'
import { sandboxName, uniqueName } from '../helpers/netns.js'
import { inNs, must, ping, run } from '../helpers/sh.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const SUBNET = '10.240.0.0/24'
const GATEWAY = '10.240.0.1'
const BOOT_TIMEOUT_MS = 90_000

interface VmImage {
  kernel: string
  initrd: string
}

interface VmRun {
  code: number | null
  signal: string | null
  timedOut: boolean
  serial: string
  stderr: string
  ms: number
}

/** What the guest's /init reported, parsed from its SYTEST-* lines. */
interface Markers {
  boot: boolean
  done: boolean
  carrier?: string
  lease: Record<string, string>
  results: Record<string, { ok: boolean; detail: Record<string, string>; line: string }>
}

function fields(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const m of text.matchAll(/(\S+?)=(\S*)/g)) out[m[1]] = m[2]
  return out
}

function parseMarkers(serial: string): Markers {
  const m: Markers = { boot: false, done: false, lease: {}, results: {} }
  for (const raw of serial.split('\n')) {
    const line = raw.replace(/\r$/, '')
    const at = line.indexOf('SYTEST-')
    if (at < 0) continue
    const rest = line.slice(at)
    if (rest.startsWith('SYTEST-BOOT')) m.boot = true
    else if (rest.startsWith('SYTEST-DONE')) m.done = true
    else if (rest.startsWith('SYTEST-CARRIER ')) m.carrier = rest.split(' ')[1]
    else if (rest.startsWith('SYTEST-LEASE ')) m.lease = fields(rest.slice('SYTEST-LEASE '.length))
    else if (rest.startsWith('SYTEST-RESULT ')) {
      const body = rest.slice('SYTEST-RESULT '.length)
      const first = /^(\S+?)=(ok|fail)\b(.*)$/.exec(body)
      if (first) m.results[first[1]] = { ok: first[2] === 'ok', detail: fields(first[3]), line: rest }
    }
  }
  return m
}

function inSubnet24(addr: string, subnet: string): boolean {
  const net = subnet.split('/')[0].split('.').slice(0, 3).join('.')
  const parts = addr.split('.')
  const host = Number(parts[3])
  return parts.length === 4 && parts.slice(0, 3).join('.') === net && host > 1 && host < 255
}

/** Builds (or finds cached) the guest with scripts/vm-image.sh; undefined after a t.fail. */
async function buildImage(t: Test): Promise<VmImage | undefined> {
  const r = await run('bash', [path.join(root, 'scripts', 'vm-image.sh')], 600_000)
  if (r.code !== 0) {
    t.fail(`could not build the test VM image: scripts/vm-image.sh exited ${r.code}:\n${r.stderr.trim().split('\n').slice(-8).join('\n')}`)
    return undefined
  }
  const dir = r.stdout.trim().split('\n').pop()!
  const image = { kernel: path.join(dir, 'vmlinuz'), initrd: path.join(dir, 'initrd.gz') }
  for (const f of Object.values(image)) if (!fs.existsSync(f)) {
    t.fail(`scripts/vm-image.sh printed ${dir} but ${f} is not there`)
    return undefined
  }
  t.pass(`VM image in ${dir}`)
  return image
}

function randomGuestMac(): string {
  const b = Array.from({ length: 3 }, () => Math.floor(Math.random() * 256).toString(16).padStart(2, '0'))
  return `52:54:00:${b.join(':')}`
}

/**
 * Boots the guest and resolves when it powers off (or after BOOT_TIMEOUT_MS, when it is
 * killed). `netdev` is QEMU's -netdev value.
 * `onMarker` sees every SYTEST-* line as it arrives.
 */
async function bootVm(
  t: Test,
  image: VmImage,
  opts: { netdev: string; mac: string; append: string; onMarker?: (line: string) => void },
): Promise<VmRun> {
  const args = [
    '-machine', 'pc', '-accel', 'tcg', '-m', '256', '-smp', '1',
    '-nodefaults', '-no-user-config', '-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot',
    '-kernel', image.kernel, '-initrd', image.initrd,
    '-append', `console=ttyS0 panic=-1 loglevel=4 mitigations=off ${opts.append}`,
    '-netdev', opts.netdev, '-device', `e1000,netdev=n0,mac=${opts.mac}`,
  ]
  const started = Date.now()
  const q = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const pid = q.pid
  t.teardown(() => {
    if (pid && q.exitCode === null && q.signalCode === null) q.kill('SIGKILL')
  })
  let serial = ''
  let stderr = ''
  let pending = ''
  q.stdout!.on('data', (c: Buffer) => {
    const s = c.toString('latin1')
    serial += s
    pending += s
    const lines = pending.split('\n')
    pending = lines.pop()!
    for (const l of lines) {
      const at = l.indexOf('SYTEST-')
      if (at >= 0) opts.onMarker?.(l.slice(at).replace(/\r$/, ''))
    }
  })
  q.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    q.kill('SIGKILL')
  }, BOOT_TIMEOUT_MS)
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => {
    q.once('error', (e) => {
      stderr += String(e)
      resolve([null, null])
    })
    q.once('close', (c, s) => resolve([c, s]))
  })
  clearTimeout(timer)
  return { code, signal, timedOut, serial, stderr, ms: Date.now() - started }
}

/** The last lines of the console, for failure messages. */
const tail = (run: VmRun, n = 25) => `qemu stderr: ${run.stderr.trim() || '(none)'}\nconsole tail:\n${run.serial.replace(/\r/g, '').split('\n').slice(-n).join('\n')}`

/** A sandbox on the default network; returns its address (without prefix). */
async function sandbox(t: Test, d: TestDaemon): Promise<{ name: string; ip: string }> {
  const name = sandboxName(t)
  const r = await d.cli(['sandbox', 'create', name, '--network', 'default'])
  if (r.code !== 0) throw new Error(`sandbox create ${name}: ${r.stderr}`)
  const sb = await d.api('GET', `/v1/sandboxes/${name}`)
  const ip = String(sb.body.endpoints[0].address).split('/')[0]
  return { name, ip }
}

/** `port add --vm` on the default network (a TAP left for QEMU), IPv6-quiet on the host; `port rm` in teardown. */
async function vmPort(t: Test, d: TestDaemon): Promise<string> {
  const port = uniqueName('vm')
  const r = await d.cli(['port', 'add', port, '--network', 'default', '--vm'])
  if (r.code !== 0) throw new Error(`port add ${port}: ${r.stderr}`)
  t.teardown(async () => {
    await d.cli(['port', 'rm', port])
    await run('ip', ['link', 'del', port]) // only if the daemon left it behind
  })
  await must('sysctl', ['-qw', `net.ipv6.conf.${port}.disable_ipv6=1`])
  return port
}

let image: VmImage | undefined

t.test('the test VM image builds (scripts/vm-image.sh)', async (t) => {
  image = await buildImage(t)
})

t.test('a QEMU guest on a port it opens by name: DHCP, ping gateway and sandbox, DNS both ways', async (t) => {
  if (!image) return t.fail('no VM image: see the failure of the image build above')
  const d = await startDaemon(t, ['--default-subnet', SUBNET])
  const sb = await sandbox(t, d)
  const port = await vmPort(t, d)

  const hostname = uniqueName('vmh')
  const mac = randomGuestMac()
  // While the guest holds (after its own tests), check from the host side.
  let hostSide: Promise<{ dig: string; digCode: number; pings: number; vmIp: string }> | undefined
  let leaseIp = ''
  const vm = await bootVm(t, image, {
      // As an operator would: QEMU opens the port's TAP by name; the switch reads it through a packet socket.
      netdev: `tap,id=n0,ifname=${port},script=no,downscript=no`,
      mac,
      append: `sy.host=${hostname} sy.ping=${sb.ip} sy.lookup=${sb.name} sy.hold=5`,
      onMarker: (line) => {
        if (line.startsWith('SYTEST-LEASE ')) leaseIp = fields(line).ip ?? ''
        if (line.startsWith('SYTEST-HOLD') && !hostSide) {
          hostSide = (async () => {
            const dig = await inNs(sb.name, ['dig', '+short', '+time=2', '+tries=2', hostname, `@${GATEWAY}`], 15_000)
            const pings = leaseIp ? await ping(sb.name, leaseIp, 3) : 0
            return { dig: dig.stdout.trim(), digCode: dig.code, pings, vmIp: leaseIp }
          })()
        }
      },
    })
  t.comment(`guest ran ${vm.ms} ms`)

  t.notOk(vm.timedOut, `the guest powered off within ${BOOT_TIMEOUT_MS / 1000} s`)
  t.equal(vm.code, 0, 'qemu exited cleanly')
  const m = parseMarkers(vm.serial)
  t.ok(m.boot, 'the guest ran /init')
  t.equal(m.carrier, '1', 'the guest saw carrier on eth0')
  t.ok(m.done, 'the guest finished its tests')
  if (!m.results.dhcp?.ok) return t.fail(`the guest got no DHCP lease\n${tail(vm)}`)

  t.ok(inSubnet24(m.lease.ip, SUBNET), `leased ${m.lease.ip} is a host address of ${SUBNET}`)
  t.not(m.lease.ip, sb.ip, 'not the sandbox address')
  t.equal(m.lease.mask, '24', 'prefix /24')
  t.equal(m.lease.router, GATEWAY, 'router option is the gateway')
  t.equal(m.lease.dns, GATEWAY, 'DNS option is the gateway')
  t.equal(m.lease.server, GATEWAY, 'the DHCP server identifies as the gateway')

  const r = m.results
  t.ok(r['ping-gw']?.ok, `guest pinged the gateway: ${r['ping-gw']?.line}`)
  t.equal(r['ping-gw']?.detail.gw, GATEWAY)
  t.ok(r['ping-1']?.ok, `guest pinged the sandbox: ${r['ping-1']?.line}`)
  t.equal(r['ping-1']?.detail.target, sb.ip)
  t.ok(r.dns?.ok, `guest resolved ${sb.name}: ${r.dns?.line}`)
  t.equal(r.dns?.detail.server, GATEWAY, 'through the gateway DNS')
  t.equal(r.dns?.detail.addr, sb.ip, `${sb.name} is ${sb.ip}`)

  t.ok(hostSide, 'the guest held while the host side checked')
  if (hostSide) {
    const h = await hostSide
    t.equal(h.vmIp, m.lease.ip)
    t.equal(h.dig, m.lease.ip, `the sandbox resolves the guest's DHCP hostname ${hostname} (dig exit ${h.digCode})`)
    t.ok(h.pings >= 2, `the sandbox pings the guest (${h.pings}/3)`)
  }

  const fdb = await d.api<{ mac: string; port: string }[]>('GET', '/v1/fdb')
  const entry = fdb.body.find((e) => e.mac === mac)
  t.equal(entry?.port, port, `the switch learned the guest's MAC ${mac} on ${port}`)
  if (!r.dhcp?.ok || !r['ping-gw']?.ok) t.comment(tail(vm))
})
