/**
 * `switchyard daemon`: one process that owns the switch, the control plane, the store and
 * the API socket. Several can run side by side with their own --socket and --state-dir.
 *
 *   const d = await startDaemon({ socket: '/tmp/sy.sock', stateDir: '/tmp/sy' })
 *   await d.stop()
 */
import fs from 'node:fs'
import path from 'node:path'
import { ApiServer } from '../api/server.js'
import { registerRoutes } from '../api/routes.js'
import { ControlPlane } from '../control/control-plane.js'
import type { Upstream } from '../gateway/dns/index.js'
import { TapIo } from '../dataplane/tap-port.js'
import { native } from '../native/binding.js'
import type { NatLimits } from '../nat/nat.js'
import { Vxlan } from '../overlay/vxlan.js'
import { EtcdCluster } from '../cluster/etcd-cluster.js'
import { RemoteEndpoints } from '../cluster/remote-endpoints.js'
import { newId } from '../control/model.js'
import { openSqliteStore } from '../store/store.js'
import { Switch } from '../switch/switch.js'
import { DEFAULT_DOCKER_PLUGIN_SOCKET, DockerPlugin } from '../plugins/docker/plugin.js'
import { CniService, registerCniRoutes } from '../plugins/cni/service.js'
import { createLogger, type Level, type Logger } from '../util/log.js'
import { RuntimeMonitor } from './runtime-stats.js'

export const DEFAULT_SOCKET = '/run/switchyard/switchyard.sock'
export const DEFAULT_STATE_DIR = '/var/lib/switchyard'

export interface DaemonOptions {
  socket?: string
  stateDir?: string
  logLevel?: Level
  /** Name of the network created at first start. */
  defaultNetwork?: string
  /** Its subnet; chosen from the default pools when not given. */
  defaultSubnet?: string
  fdbCapacity?: number
  fdbPortLimit?: number
  agingSeconds?: number
  /** Upstream resolvers for the embedded DNS (default: the host's resolv.conf). */
  dns?: string[]
  /** NAT table limits and UDP timeouts. */
  nat?: NatLimits
  /** Microseconds to keep polling after a heavy batch before sleeping (default 0; 50 on a VXLAN tunnel endpoint). */
  busyPollUs?: number
  /** The same while traffic is light (request/response): long enough for the next request to find the switch awake. */
  busyPollLightUs?: number
  /** This host's underlay address: makes it a VXLAN tunnel endpoint for overlay networks. */
  advertiseAddr?: string
  vxlanPort?: number
  /** Default static peer VTEPs of overlay networks. */
  peers?: string[]
  /** `etcd://HOST:PORT[,...]`: overlay networks, their addresses and endpoints are shared with the other hosts there. */
  clusterStore?: string
  /** Seconds after which a host that stopped renewing its lease leaves every other host's tables. */
  clusterTtlSeconds?: number
  /**
   * Where to serve Docker's remote network/IPAM driver protocol (default
   * /run/docker/plugins/switchyard.sock; when that default is taken by another live daemon,
   * this one runs without it); false: not at all.
   */
  dockerPluginSocket?: string | false
  log?: Logger
}

export interface Daemon {
  socket: string
  stop(): Promise<void>
}

export class DaemonStartError extends Error {}

export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const socket = opts.socket ?? DEFAULT_SOCKET
  const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR
  const log = opts.log ?? createLogger({ level: opts.logLevel ?? 'info' })
  const defaultNetwork = opts.defaultNetwork ?? 'default'

  // After a heavy batch a lone switch does best going to sleep (the senders and receivers need
  // the cores), but a VTEP is one of two userspace hops in a row: there, spinning 50 us keeps
  // the tunnel's pipeline moving (overlay bench: +20 % TCP, +65 % small frames on 2 cores).
  native.setBusyPoll(opts.busyPollUs ?? (opts.advertiseAddr ? 50 : 0), opts.busyPollLightUs ?? 5000)
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 })
  const pidFile = path.join(stateDir, 'daemon.pid')
  claimPidFile(pidFile)

  const store = openSqliteStore(stateDir, {
    log,
    onCorrupt: (kind, id, error) => log.error('skipping corrupt record', { kind, id, error: error.message }),
  })
  const sw = new Switch({
    io: new TapIo(),
    log,
    fdb: { capacity: opts.fdbCapacity, portLimit: opts.fdbPortLimit, agingMs: opts.agingSeconds === undefined ? undefined : opts.agingSeconds * 1000 },
  })
  if (opts.clusterStore && !opts.advertiseAddr) throw new DaemonStartError('--cluster-store needs --advertise-addr IP: the address other hosts send VXLAN to')
  const vxlan = opts.advertiseAddr ? new Vxlan({ sw, bindIp: opts.advertiseAddr, port: opts.vxlanPort, log }) : undefined
  const cluster = opts.clusterStore ? new EtcdCluster({ url: opts.clusterStore, hostId: hostId(store), vtep: opts.advertiseAddr!, vxlanPort: vxlan!.port, ttlSeconds: opts.clusterTtlSeconds ?? 10, log }) : undefined
  const cp = new ControlPlane({ store, sw, log, overlay: vxlan ? { vxlan, peers: opts.peers ?? [] } : undefined, cluster, upstreams: opts.dns?.map(parseUpstream), nat: opts.nat })
  const api = new ApiServer(log)
  const runtime = new RuntimeMonitor()
  runtime.start()
  const plugin = opts.dockerPluginSocket === false ? undefined : new DockerPlugin({ cp, store, log })
  let listening = false
  try {
    await cp.restore()
    await cluster?.start(cp, new RemoteEndpoints({ sw, vxlan: vxlan!, gateway: cp.gateway, log }))
    await plugin?.restore()
    await cp.restorePublished()
    await cp.ensureNetwork({ name: defaultNetwork, subnet: opts.defaultSubnet })
    registerRoutes(api, cp, sw, defaultNetwork, { cluster, runtime })
    registerCniRoutes(api, new CniService({ cp, store, log }))
    await api.listen(socket)
    listening = true
    if (plugin) await listenDockerPlugin(plugin, opts.dockerPluginSocket || undefined, log)
  } catch (e) {
    runtime.stop()
    await plugin?.close()
    await api.close()
    if (listening) fs.rmSync(socket, { force: true })
    await cluster?.close()
    cp.shutdown()
    vxlan?.close()
    store.close()
    fs.rmSync(pidFile, { force: true })
    throw e
  }
  log.info('daemon ready', { socket, stateDir, pid: process.pid })

  let stopping: Promise<void> | undefined
  return {
    socket,
    stop() {
      stopping ??= (async () => {
        runtime.stop()
        await plugin?.close()
        await api.close()
        await cluster?.close()
        cp.shutdown()
        vxlan?.close()
        store.close()
        fs.rmSync(socket, { force: true })
        fs.rmSync(pidFile, { force: true })
        log.info('daemon stopped')
      })()
      return stopping
    },
  }
}

/** An explicit socket must be served; the default one may be another daemon's already. */
async function listenDockerPlugin(plugin: DockerPlugin, socket: string | undefined, log: Logger): Promise<void> {
  try {
    await plugin.listen(socket ?? DEFAULT_DOCKER_PLUGIN_SOCKET)
  } catch (e) {
    if (socket !== undefined) throw new DaemonStartError(`cannot serve the Docker plugin on ${socket}: ${(e as Error).message}`)
    log.warn('not serving the Docker plugin: its default socket is taken; pass --docker-plugin-socket PATH (Docker finds /run/docker/plugins/NAME.sock as driver NAME)', {
      socket: DEFAULT_DOCKER_PLUGIN_SOCKET,
      error: (e as Error).message,
    })
  }
}

/** This host's ID in a cluster: made once, kept in the state directory's store. */
function hostId(store: ReturnType<typeof openSqliteStore>): string {
  const rec = store.get<{ id: string }>('cluster', 'host')
  if (rec) return rec.id
  const id = newId()
  store.put('cluster', 'host', { id })
  return id
}

/** `IP` or `IP:PORT` (a test's own resolver listens on a high port). */
function parseUpstream(s: string): Upstream {
  const m = /^(\d+\.\d+\.\d+\.\d+)(?::(\d+))?$/.exec(s)
  if (!m) throw new DaemonStartError(`--dns takes IP or IP:PORT, got "${s}"`)
  return { host: m[1], port: m[2] ? Number(m[2]) : 53 }
}

/** One daemon per state directory: a second one would corrupt the first one's devices. */
function claimPidFile(file: string): void {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim())
    if (pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new DaemonStartError(`another daemon (pid ${pid}) uses state directory ${path.dirname(file)}; stop it or pass another --state-dir`)
    }
  } catch (e) {
    if (e instanceof DaemonStartError) throw e
  }
  fs.writeFileSync(file, String(process.pid))
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    return cmd.includes('switchyard') || cmd.includes('daemon')
  } catch {
    return false
  }
}
