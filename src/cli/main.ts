/**
 * The `switchyard` command: `daemon` runs the switch; every other verb talks to a running
 * daemon over its API socket. Verbs mirror `docker network` where they overlap.
 *
 *   switchyard daemon &
 *   switchyard network create blue --subnet 10.10.0.0/24
 *   switchyard sandbox create web --network blue
 *   switchyard sandbox exec web -- ping -c1 10.10.0.1
 */
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { Command, InvalidArgumentError, Option } from 'commander'
import { DEFAULT_SOCKET, DEFAULT_STATE_DIR, startDaemon } from '../daemon/daemon.js'
import type { RuntimeStats } from '../daemon/runtime-stats.js'
import { DEFAULT_DOCKER_PLUGIN_SOCKET } from '../plugins/docker/plugin.js'
import { createLogger, isLevel } from '../util/log.js'
import { call, CliError } from './client.js'
import { render, renderObject, type Format } from './format.js'

// `switchyard nat ls | head`: a closed pipe ends the listing, not the process with a trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0)
  throw e
})

const program = new Command()
program
  .name('switchyard')
  .description('Userspace virtual switch: networks, sandboxes and ports over TAP devices')
  .option('--socket <path>', 'daemon API socket', process.env.SWITCHYARD_SOCKET ?? DEFAULT_SOCKET)
  .addOption(new Option('--format <format>', 'output of listings').choices(['table', 'json']).default('table'))
  .showHelpAfterError(false)

const g = () => program.opts<{ socket: string; format: Format }>()
const api = <T = unknown>(method: string, p: string, body?: unknown) => call<T>(g().socket, method, p, body)
const out = (s: string) => process.stdout.write(s + '\n')
const enc = encodeURIComponent

function int(name: string, min: number, max: number) {
  return (v: string) => {
    const n = Number(v)
    if (!/^\d+$/.test(v) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`)
    return n
  }
}

function keyValue(flag: string) {
  return (v: string, prev: Record<string, string> = {}) => {
    const i = v.indexOf('=')
    if (i <= 0) throw new InvalidArgumentError(`${flag} takes KEY=VALUE, got "${v}"`)
    return { ...prev, [v.slice(0, i)]: v.slice(i + 1) }
  }
}

const collect = (v: string, prev: string[] = []) => [...prev, v]

// ---- daemon ----------------------------------------------------------------------------

program
  .command('daemon')
  .description('run the switch daemon in the foreground')
  .option('--state-dir <dir>', 'where state is kept', DEFAULT_STATE_DIR)
  .option('--log-level <level>', 'debug, info, warn or error', 'info')
  .option('--default-network <name>', 'network created at first start', 'default')
  .option('--default-subnet <cidr>', 'its subnet (default: a free one from the default pools)')
  .option('--fdb-max <n>', 'most MAC table entries in all', int('--fdb-max', 1, 16_777_216), 65536)
  .option('--fdb-port-max <n>', 'most MAC table entries learned on one port', int('--fdb-port-max', 1, 16_777_216), 4096)
  .option('--aging <seconds>', 'MAC table aging time', int('--aging', 1, 1_000_000), 300)
  .option('--dns <ip[:port]>', 'upstream resolver for the embedded DNS (repeatable; default: the host\'s)', collect)
  .option('--nat-max-flows <n>', 'most tracked NAT flows', int('--nat-max-flows', 1, 10_000_000), 262144)
  .option('--advertise-addr <ip>', 'this host\'s underlay address: a VXLAN tunnel endpoint for overlay networks')
  .option('--vxlan-port <port>', 'UDP port of VXLAN', int('--vxlan-port', 1, 65535), 4789)
  .option('--peer <ip>', 'a static peer VTEP of overlay networks (repeatable)', collect)
  .option('--cluster-store <url>', 'etcd://HOST:PORT[,HOST:PORT]: share overlay networks with the other hosts there (needs --advertise-addr)')
  .option('--cluster-ttl <seconds>', 'a host silent this long leaves the other hosts\' tables', int('--cluster-ttl', 2, 3600), 10)
  .option('--busy-poll <us>', 'keep polling this many microseconds after a batch of heavy traffic before sleeping (default 0, heavy traffic keeps the switch awake by itself; 50 with --advertise-addr, a tunnel endpoint)', int('--busy-poll', 0, 100_000))
  .option('--busy-poll-light <us>', 'the same while traffic is light (under 10k frames/s), for request/response latency (0 with --busy-poll 0: never spin)', int('--busy-poll-light', 0, 1_000_000), 5000)
  .option('--nat-max-per-sandbox <n>', 'most tracked NAT flows of one sandbox', int('--nat-max-per-sandbox', 1, 10_000_000), 8192)
  .option('--nat-max-sockets <n>', 'most host sockets for NAT: one per TCP flow, one per UDP mapping (default: the open-file limit less 1024)', int('--nat-max-sockets', 1, 10_000_000))
  .option('--nat-udp-timeout <seconds>', 'idle timeout of a UDP flow nobody answered yet', int('--nat-udp-timeout', 1, 86_400), 30)
  .option('--nat-udp-stream-timeout <seconds>', 'idle timeout of a UDP flow that got an answer', int('--nat-udp-stream-timeout', 1, 86_400), 180)
  .option('--docker-plugin-socket <path>', `serve Docker's remote network and IPAM driver here; Docker names the driver after the file (default ${DEFAULT_DOCKER_PLUGIN_SOCKET})`)
  .option('--no-docker-plugin', "do not serve Docker's plugin protocol")
  .action(async (o) => {
    if (!isLevel(o.logLevel)) throw new CliError(`--log-level must be debug, info, warn or error, not "${o.logLevel}"`)
    const log = createLogger({ level: o.logLevel })
    const d = await startDaemon({
      socket: g().socket,
      stateDir: path.resolve(o.stateDir),
      log,
      defaultNetwork: o.defaultNetwork,
      defaultSubnet: o.defaultSubnet,
      fdbCapacity: o.fdbMax,
      fdbPortLimit: o.fdbPortMax,
      agingSeconds: o.aging,
      dns: o.dns,
      nat: {
        maxFlows: o.natMaxFlows,
        maxPerSandbox: o.natMaxPerSandbox,
        maxSockets: o.natMaxSockets,
        udpTimeoutMs: o.natUdpTimeout * 1000,
        udpStreamTimeoutMs: o.natUdpStreamTimeout * 1000,
      },
      busyPollUs: o.busyPoll,
      busyPollLightUs: o.busyPollLight,
      advertiseAddr: o.advertiseAddr,
      vxlanPort: o.vxlanPort,
      peers: o.peer,
      clusterStore: o.clusterStore,
      clusterTtlSeconds: o.clusterTtl,
      dockerPluginSocket: o.dockerPlugin === false ? false : o.dockerPluginSocket,
    })
    const stop = (sig: string) => {
      log.info('signal received, stopping', { signal: sig })
      d.stop().then(
        () => process.exit(0),
        (e) => {
          log.error('stop failed', { error: String(e) })
          process.exit(1)
        },
      )
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })

// ---- ports -----------------------------------------------------------------------------

interface PortRow {
  name: string
  network: string
  state: string
  kind: string
  counters: { rxPackets: number; txPackets: number; rxBytes: number; txBytes: number; dropsTotal: number }
}
const portColumns = [
  { header: 'NAME', get: (p: PortRow) => p.name },
  { header: 'NETWORK', get: (p: PortRow) => p.network },
  { header: 'KIND', get: (p: PortRow) => p.kind },
  { header: 'STATE', get: (p: PortRow) => p.state },
  { header: 'RX PKTS', get: (p: PortRow) => p.counters.rxPackets },
  { header: 'TX PKTS', get: (p: PortRow) => p.counters.txPackets },
  { header: 'DROPS', get: (p: PortRow) => p.counters.dropsTotal },
]

const port = program.command('port').description('TAP ports without addresses (for VMs and benchmarks)')
port
  .command('add <name>')
  .description('create TAP device NAME and put it on a network')
  .option('--network <network>', 'network name or ID', 'default')
  .option('--netns <name|path>', 'move the device into this network namespace')
  .option('--ifname <name>', 'its name there (default: NAME)')
  .option('--vm', 'leave the TAP for a hypervisor to open by name (qemu -netdev tap,ifname=NAME)')
  .action(async (name: string, o) => {
    const p = await api<PortRow>('POST', '/v1/ports', {
      name,
      network: o.network,
      ...(o.netns ? { netns: o.netns } : {}),
      ...(o.ifname ? { ifname: o.ifname } : {}),
      ...(o.vm ? { vm: true } : {}),
    })
    out(g().format === 'json' ? renderObject(p) : p.name)
  })
port
  .command('rm <name>')
  .alias('remove')
  .description('remove a port and its TAP device')
  .action(async (name: string) => {
    await api('DELETE', `/v1/ports/${enc(name)}`)
    out(name)
  })
port
  .command('ls')
  .alias('list')
  .description('list ports and endpoints with their counters')
  .option('--network <network>', 'only this network')
  .action(async (o) => {
    const rows = await api<PortRow[]>('GET', '/v1/ports' + (o.network ? `?network=${enc(o.network)}` : ''))
    out(render(rows, portColumns, g().format))
  })

// ---- fdb -------------------------------------------------------------------------------

interface FdbRow {
  network: string
  mac: string
  port: string
  ageSeconds: number
}
const fdb = program.command('fdb').description('the MAC learning table')
fdb
  .command('show')
  .description('list learned MAC addresses')
  .option('--network <network>', 'only this network')
  .action(async (o) => {
    const rows = await api<FdbRow[]>('GET', '/v1/fdb' + (o.network ? `?network=${enc(o.network)}` : ''))
    out(
      render(
        rows,
        [
          { header: 'NETWORK', get: (r) => r.network },
          { header: 'MAC', get: (r) => r.mac },
          { header: 'PORT', get: (r) => r.port },
          { header: 'AGE', get: (r) => r.ageSeconds },
        ],
        g().format,
      ),
    )
  })
fdb
  .command('flush')
  .description('forget learned MAC addresses')
  .option('--network <network>', 'only this network')
  .action(async (o) => {
    const r = await api<{ flushed: number }>('DELETE', '/v1/fdb' + (o.network ? `?network=${enc(o.network)}` : ''))
    out(g().format === 'json' ? renderObject(r) : `flushed ${r.flushed} entries`)
  })

// ---- stats -----------------------------------------------------------------------------

type NatStats = Record<'flows' | 'maxFlows' | 'maxPerSandbox' | 'sockets' | 'maxSockets' | 'udpMappings' | 'udpTimeoutSeconds' | 'udpStreamTimeoutSeconds' | 'udpFiltered' | 'socketErrors', number> & {
  conntrack: Record<'refusedSockets' | 'refusedTableFull' | 'refusedSandboxLimit', number>
}

program
  .command('stats')
  .description('switch and per-port counters')
  .action(async () => {
    const s = await api<{ fdb: Record<string, number>; ports: PortRow[]; portsLost: number; nat?: NatStats; runtime?: RuntimeStats }>('GET', '/v1/stats')
    if (g().format === 'json') {
      out(renderObject(s))
      return
    }
    out(`fdb: ${s.fdb.entries}/${s.fdb.capacity} entries (per-port limit ${s.fdb.portLimit}, aging ${s.fdb.agingSeconds}s); learned ${s.fdb.learned}, moved ${s.fdb.moved}, refused ${s.fdb.refused}, evicted ${s.fdb.evicted}, aged ${s.fdb.aged}`)
    const n = s.nat
    if (n) {
      out(`nat: ${n.flows}/${n.maxFlows} flows (per sandbox ${n.maxPerSandbox}); sockets ${n.sockets}/${n.maxSockets}, of them ${n.udpMappings} UDP mappings; UDP timeouts ${n.udpTimeoutSeconds}s/${n.udpStreamTimeoutSeconds}s`)
      out(`nat refused: ${n.conntrack.refusedSockets} no socket, ${n.conntrack.refusedTableFull} table full, ${n.conntrack.refusedSandboxLimit} sandbox limit; ${n.udpFiltered} UDP filtered, ${n.socketErrors} socket errors`)
    }
    out(`ports lost: ${s.portsLost}`)
    const r = s.runtime
    if (r) {
      const mib = (b: number) => (b / 1048576).toFixed(1)
      out(`daemon: rss ${mib(r.rssBytes)} MiB, heap ${mib(r.heapUsedBytes)}/${mib(r.heapTotalBytes)} MiB; collections ${r.gc.minor} young, ${r.gc.major} full, ${r.gc.pauseMs.toFixed(1)} ms paused`)
    }
    out(render(s.ports, [...portColumns, { header: 'RX BYTES', get: (p: PortRow) => p.counters.rxBytes }, { header: 'TX BYTES', get: (p: PortRow) => p.counters.txBytes }], 'table'))
  })

// ---- networks --------------------------------------------------------------------------

interface NetworkRow {
  id: string
  name: string
  driver: string
  subnet: string
  gateway: string
  internal: boolean
  endpoints: unknown[]
}
const network = program.command('network').description('manage networks')
network
  .command('ls')
  .alias('list')
  .description('list networks')
  .action(async () => {
    const rows = await api<NetworkRow[]>('GET', '/v1/networks')
    out(
      render(
        rows,
        [
          { header: 'NETWORK ID', get: (n) => n.id.slice(0, 12) },
          { header: 'NAME', get: (n) => n.name },
          { header: 'DRIVER', get: (n) => n.driver },
          { header: 'SUBNET', get: (n) => n.subnet },
          { header: 'GATEWAY', get: (n) => n.gateway },
          { header: 'INTERNAL', get: (n) => n.internal },
          { header: 'ENDPOINTS', get: (n) => n.endpoints.length },
        ],
        g().format,
      ),
    )
  })
network
  .command('create <name>')
  .description('create a network')
  .option('-d, --driver <driver>', 'bridge (one host) or overlay (many hosts)', 'bridge')
  .option('--subnet <cidr>', 'subnet, e.g. 10.10.0.0/24 (default: a free one)')
  .option('--gateway <ip>', 'gateway address (default: first address)')
  .option('--ip-range <cidr>', 'allocate dynamic addresses from this sub-range')
  .option('--aux-address <name=ip>', 'reserve an address (repeatable)', keyValue('--aux-address'))
  .option('--mtu <n>', 'MTU', int('--mtu', 576, 65535))
  .option('--internal', 'no external connectivity')
  .option('--label <key=value>', 'label (repeatable)', keyValue('--label'))
  .option('-o, --opt <key=value>', 'driver option (repeatable)', keyValue('--opt'))
  .action(async (name: string, o) => {
    const body = {
      name,
      driver: o.driver,
      ...(o.subnet ? { subnet: o.subnet } : {}),
      ...(o.gateway ? { gateway: o.gateway } : {}),
      ...(o.ipRange ? { ipRange: o.ipRange } : {}),
      ...(o.auxAddress ? { auxAddresses: o.auxAddress } : {}),
      ...(o.mtu ? { mtu: o.mtu } : {}),
      ...(o.internal ? { internal: true } : {}),
      ...(o.label ? { labels: o.label } : {}),
      ...(o.opt ? { options: o.opt } : {}),
    }
    const n = await api<NetworkRow>('POST', '/v1/networks', body)
    out(g().format === 'json' ? renderObject(n) : n.id)
  })
network
  .command('inspect <network...>')
  .description('show networks in detail (JSON)')
  .action(async (refs: string[]) => {
    const all = []
    for (const r of refs) all.push(await api('GET', `/v1/networks/${enc(r)}`))
    out(renderObject(all))
  })
network
  .command('rm <network...>')
  .alias('remove')
  .description('remove networks (they must have no endpoints)')
  .action(async (refs: string[]) => {
    for (const r of refs) {
      await api('DELETE', `/v1/networks/${enc(r)}`)
      out(r)
    }
  })
network
  .command('connect <network> <sandbox>')
  .description('connect a sandbox to a network')
  .option('--ip <address>', 'static IPv4 address')
  .option('--mac <mac>', 'MAC address')
  .option('--alias <name>', 'DNS alias (repeatable)', collect)
  .option('-p, --publish <[hostip:]hostport:port[/proto]>', 'publish a host port into the sandbox (repeatable)', collect)
  .action(async (net: string, sandbox: string, o) => {
    const ep = await api<{ address: string }>('POST', `/v1/networks/${enc(net)}/connect`, {
      sandbox,
      ...(o.ip ? { ip: o.ip } : {}),
      ...(o.mac ? { mac: o.mac } : {}),
      ...(o.alias ? { aliases: o.alias } : {}),
      ...(o.publish ? { publish: o.publish } : {}),
    })
    out(g().format === 'json' ? renderObject(ep) : ep.address)
  })
network
  .command('disconnect <network> <sandbox>')
  .description('disconnect a sandbox from a network')
  .action(async (net: string, sandbox: string) => {
    await api('POST', `/v1/networks/${enc(net)}/disconnect`, { sandbox })
  })
network
  .command('prune')
  .description('remove all networks without endpoints')
  .action(async () => {
    const r = await api<{ removed: string[] }>('POST', '/v1/networks/prune')
    out(g().format === 'json' ? renderObject(r) : r.removed.join('\n'))
  })

// ---- nat -------------------------------------------------------------------------------

interface FlowRow {
  proto: string
  direction: string
  state: string
  network: string
  sandbox?: string
  sandboxAddress: string
  remoteAddress: string
  idleSeconds: number
  bytesIn: number
  bytesOut: number
}
const nat = program.command('nat').description('connection tracking of external traffic')
nat
  .command('ls')
  .alias('list')
  .description('list tracked flows')
  .action(async () => {
    const rows = await api<FlowRow[]>('GET', '/v1/nat')
    out(
      render(
        rows,
        [
          { header: 'PROTO', get: (f) => f.proto },
          { header: 'DIRECTION', get: (f) => f.direction },
          { header: 'STATE', get: (f) => f.state },
          { header: 'SANDBOX', get: (f) => f.sandbox ?? '' },
          { header: 'LOCAL', get: (f) => f.sandboxAddress },
          { header: 'REMOTE', get: (f) => f.remoteAddress },
          { header: 'IDLE', get: (f) => f.idleSeconds },
          { header: 'IN', get: (f) => f.bytesIn },
          { header: 'OUT', get: (f) => f.bytesOut },
        ],
        g().format,
      ),
    )
  })

// ---- sandboxes -------------------------------------------------------------------------

interface SandboxRow {
  id: string
  name: string
  netnsPath: string
  owned: boolean
  endpoints: { network: string; ifname: string; address: string }[]
}
const sandbox = program.command('sandbox').description('manage sandboxes (network namespaces)')
sandbox
  .command('create <name>')
  .description('create a sandbox (a network namespace), optionally connected to networks')
  .option('--netns <path>', 'adopt an existing namespace instead of creating one')
  .option('--network <network>', 'connect to this network (repeatable)', collect)
  .option('--ip <address>', 'static address on the first network')
  .option('--alias <name>', 'DNS alias on the first network (repeatable)', collect)
  .option('-p, --publish <[hostip:]hostport:port[/proto]>', 'publish a host port, on the first network (repeatable)', collect)
  .action(async (name: string, o) => {
    const sb = await api<SandboxRow>('POST', '/v1/sandboxes', { name, ...(o.netns ? { netnsPath: o.netns } : {}) })
    const nets: string[] = o.network ?? []
    if (!nets.length && (o.ip || o.publish || o.alias)) throw new CliError('--ip, --alias and --publish need --network')
    try {
      for (let i = 0; i < nets.length; i++) {
        const first = i === 0 ? { ...(o.ip ? { ip: o.ip } : {}), ...(o.alias ? { aliases: o.alias } : {}), ...(o.publish ? { publish: o.publish } : {}) } : {}
        await api('POST', `/v1/networks/${enc(nets[i])}/connect`, { sandbox: sb.id, ...first })
      }
    } catch (e) {
      // All or nothing, like `docker run`: a sandbox that could not be wired is removed again.
      await api('DELETE', `/v1/sandboxes/${sb.id}`).catch(() => undefined)
      throw e
    }
    out(g().format === 'json' ? renderObject(await api('GET', `/v1/sandboxes/${sb.id}`)) : sb.id)
  })
sandbox
  .command('ls')
  .alias('list')
  .description('list sandboxes')
  .action(async () => {
    const rows = await api<SandboxRow[]>('GET', '/v1/sandboxes')
    out(
      render(
        rows,
        [
          { header: 'SANDBOX ID', get: (s) => s.id.slice(0, 12) },
          { header: 'NAME', get: (s) => s.name },
          { header: 'NETNS', get: (s) => s.netnsPath },
          { header: 'ENDPOINTS', get: (s) => s.endpoints.map((e) => `${e.ifname}:${e.network}:${e.address}`) },
        ],
        g().format,
      ),
    )
  })
sandbox
  .command('inspect <sandbox...>')
  .description('show sandboxes in detail (JSON)')
  .action(async (refs: string[]) => {
    const all = []
    for (const r of refs) all.push(await api('GET', `/v1/sandboxes/${enc(r)}`))
    out(renderObject(all))
  })
sandbox
  .command('rm <sandbox...>')
  .alias('remove')
  .description('remove sandboxes with their endpoints')
  .action(async (refs: string[]) => {
    for (const r of refs) {
      await api('DELETE', `/v1/sandboxes/${enc(r)}`)
      out(r)
    }
  })
sandbox
  .command('exec <sandbox> <command...>')
  .description('run a command inside a sandbox: sandbox exec NAME -- CMD ARGS')
  .action(async (ref: string, cmd: string[]) => {
    const sb = await api<SandboxRow>('GET', `/v1/sandboxes/${enc(ref)}`)
    // `ip netns exec` also bind-mounts the sandbox's resolv.conf; foreign namespaces get nsenter.
    const r = sb.owned
      ? spawnSync('ip', ['netns', 'exec', sb.name, ...cmd], { stdio: 'inherit' })
      : spawnSync('nsenter', [`--net=${sb.netnsPath}`, '--', ...cmd], { stdio: 'inherit' })
    if (r.error) throw new CliError(`running ${cmd[0]} failed: ${r.error.message}`)
    process.exitCode = r.status ?? 1
  })

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`)
  process.exit(1)
})
