/**
 * Docker's remote network driver and remote IPAM driver (libnetwork's plugin protocol, JSON
 * over HTTP on a unix socket that Docker finds as /run/docker/plugins/NAME.sock) on top of the
 * control plane. `docker network create -d switchyard [--ipam-driver switchyard]` makes a
 * Switchyard network named `docker-<first 12 of NetworkID>`; each container's endpoint is
 * `docker-<first 12 of EndpointID>`, a TAP the switch holds, that Docker moves into the
 * container itself after Join.
 *
 *   const plugin = new DockerPlugin({ cp, store, log })
 *   await plugin.restore()                                  // after cp.restore()
 *   await plugin.listen('/run/docker/plugins/switchyard.sock')
 *   await plugin.call('NetworkDriver.GetCapabilities', undefined)   // {Scope: 'local', ...}
 *
 * Every call is idempotent (Docker retries, and rolls back with Leave/DeleteEndpoint/Release*
 * after a failure), calls run one at a time, and what Docker created is kept in the store
 * ('docker.endpoint' and 'docker.pool' records beside the control plane's), so a restarted
 * daemon still knows Docker's networks, endpoints and pools. Errors are answered as Docker
 * reads them: `{"Err": ...}` from NetworkDriver, `{"Error": ...}` from IpamDriver; unknown
 * methods get a 404.
 */
import fs from 'node:fs'
import path from 'node:path'
import { ApiError } from '../../api/errors.js'
import { ApiServer } from '../../api/server.js'
import { cidrOverlaps, formatCidr, parseCidr } from '../../control/cidr.js'
import type { ControlPlane } from '../../control/control-plane.js'
import { ControlError } from '../../control/errors.js'
import { chooseDefaultSubnet, readHostRoutes } from '../../control/ipam.js'
import type { NetworkRecord } from '../../control/model.js'
import type { Store } from '../../store/store.js'
import type { Logger } from '../../util/log.js'
import { DockerPool, type DockerPoolState } from './ipam.js'
import { deleteLink, findTapByMac, setLink } from './links.js'

export const DEFAULT_DOCKER_PLUGIN_SOCKET = '/run/docker/plugins/switchyard.sock'
/** The address spaces this IPAM driver answers GetDefaultAddressSpaces with. */
export const LOCAL_ADDRESS_SPACE = 'switchyard'
export const GLOBAL_ADDRESS_SPACE = 'switchyard-global'
/** Label on a Switchyard network that carries the full Docker NetworkID. */
export const NETWORK_LABEL = 'switchyard.docker.network-id'

const KIND_ENDPOINT = 'docker.endpoint'
const KIND_POOL = 'docker.pool'
const GATEWAY_REQUEST = 'com.docker.network.gateway'
const ID_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/

/** What the plugin keeps of a Docker endpoint. */
interface DockerEndpointRecord {
  /** Docker's EndpointID. */
  id: string
  /** Docker's NetworkID. */
  networkId: string
  /** The Switchyard endpoint's ID. */
  endpoint: string
  /** The container's namespace while joined. */
  sandboxKey?: string
  /** The last namespace it was joined to: where a device a failed Join left behind is. */
  lastSandboxKey?: string
  createdAt: string
}

interface DockerPoolRecord {
  /** The PoolID handed to Docker: "<address space>/<pool>". */
  id: string
  addressSpace: string
  state: DockerPoolState
  createdAt: string
}

export interface DockerPluginOptions {
  cp: ControlPlane
  store: Store
  log: Logger
  /** How long to look for an endpoint's device in the container after Join (ms). */
  locateTimeoutMs?: number
}

type Body = Record<string, unknown>
type Handler = (body: Body) => Promise<object> | object

/** A request Docker made that cannot be served; the message goes back to the user. */
export class PluginError extends Error {}

export class DockerPlugin {
  private readonly cp: ControlPlane
  private readonly store: Store
  private readonly log: Logger
  private readonly locateTimeoutMs: number
  private readonly methods: Record<string, Handler>
  private queue: Promise<unknown> = Promise.resolve()
  /** Timers looking for joined endpoints' devices, by EndpointID. */
  private readonly locating = new Map<string, NodeJS.Timeout>()
  private server?: ApiServer
  private socket?: string
  private madeDirs: string[] = []
  private closed = false

  constructor(opts: DockerPluginOptions) {
    this.cp = opts.cp
    this.store = opts.store
    this.log = opts.log.child({ component: 'docker-plugin' })
    this.locateTimeoutMs = opts.locateTimeoutMs ?? 30_000
    this.methods = {
      'Plugin.Activate': () => ({ Implements: ['NetworkDriver', 'IpamDriver'] }),
      'NetworkDriver.GetCapabilities': () => ({ Scope: 'local', ConnectivityScope: 'local' }),
      'NetworkDriver.CreateNetwork': (b) => this.createNetwork(b),
      'NetworkDriver.DeleteNetwork': (b) => this.deleteNetwork(b),
      'NetworkDriver.CreateEndpoint': (b) => this.createEndpoint(b),
      'NetworkDriver.EndpointOperInfo': (b) => this.endpointOperInfo(b),
      'NetworkDriver.DeleteEndpoint': (b) => this.deleteEndpoint(b),
      'NetworkDriver.Join': (b) => this.join(b),
      'NetworkDriver.Leave': (b) => this.leave(b),
      'NetworkDriver.DiscoverNew': () => ({}),
      'NetworkDriver.DiscoverDelete': () => ({}),
      'NetworkDriver.ProgramExternalConnectivity': (b) => this.programExternalConnectivity(b),
      'NetworkDriver.RevokeExternalConnectivity': (b) => this.revokeExternalConnectivity(b),
      'IpamDriver.GetCapabilities': () => ({ RequiresMACAddress: false, RequiresRequestReplay: false }),
      'IpamDriver.GetDefaultAddressSpaces': () => ({ LocalDefaultAddressSpace: LOCAL_ADDRESS_SPACE, GlobalDefaultAddressSpace: GLOBAL_ADDRESS_SPACE }),
      'IpamDriver.RequestPool': (b) => this.requestPool(b),
      'IpamDriver.ReleasePool': (b) => this.releasePool(b),
      'IpamDriver.RequestAddress': (b) => this.requestAddress(b),
      'IpamDriver.ReleaseAddress': (b) => this.releaseAddress(b),
    }
  }

  /** The protocol's method names this plugin answers. */
  get methodNames(): string[] {
    return Object.keys(this.methods)
  }

  /**
   * Runs one call, e.g. ('NetworkDriver.Join', body): the answer Docker gets (status 200, with
   * `Err`/`Error` on failure), or status 404 for an unknown method.
   */
  async call(method: string, body: unknown): Promise<{ status: number; body: object }> {
    const handler = Object.hasOwn(this.methods, method) ? this.methods[method] : undefined
    if (!handler) return { status: 404, body: { Err: `switchyard: unknown plugin method ${method}` } }
    const errKey = method.startsWith('IpamDriver.') ? 'Error' : 'Err'
    try {
      const b = body === undefined || body === null ? {} : body
      if (typeof b !== 'object' || Array.isArray(b)) throw new PluginError('the request body must be a JSON object')
      const out = await this.serial(() => handler(b as Body))
      this.log.debug('plugin call', { method })
      return { status: 200, body: out }
    } catch (e) {
      const message = e instanceof PluginError || e instanceof ControlError ? e.message : `${method} failed: ${(e as Error)?.message ?? String(e)}`
      this.log.warn('plugin call failed', { method, error: message })
      return { status: 200, body: { [errKey]: message } }
    }
  }

  /** Serves the protocol on a unix socket (Docker looks for /run/docker/plugins/NAME.sock). */
  async listen(socketPath: string): Promise<void> {
    const api = new ApiServer(this.log)
    api.route('POST', '/:method', async (r) => {
      const res = await this.call(r.params.method, r.body)
      if (res.status === 404) throw new ApiError(404, 'NOT_FOUND', (res.body as { Err: string }).Err)
      return res.body
    })
    this.madeDirs = missingDirs(path.dirname(socketPath))
    try {
      await api.listen(socketPath)
    } catch (e) {
      this.removeMadeDirs()
      throw e
    }
    this.server = api
    this.socket = socketPath
    this.log.info('docker plugin listening', { socket: socketPath })
  }

  /** Stops serving and looking for devices; the records stay for the next start. */
  async close(): Promise<void> {
    this.closed = true
    for (const t of this.locating.values()) clearTimeout(t)
    this.locating.clear()
    await this.server?.close()
    if (this.socket) fs.rmSync(this.socket, { force: true })
    this.removeMadeDirs()
    this.server = undefined
    this.socket = undefined
  }

  /**
   * After a daemon restart (run after cp.restore()): forgets records of endpoints that are
   * gone, and finds the devices of joined endpoints in their containers by MAC, re-opening
   * them where Docker put them.
   */
  async restore(): Promise<void> {
    for (const rec of this.store.list<DockerEndpointRecord>(KIND_ENDPOINT)) {
      const ep = this.endpointOf(rec)
      if (!ep) {
        this.store.delete(KIND_ENDPOINT, rec.id)
        continue
      }
      if (!rec.sandboxKey) continue
      if (!fs.existsSync(rec.sandboxKey)) {
        // Joined, but the container's namespace is not bound yet (or is gone: then Docker's Leave follows).
        if (!ep.ifname) this.startLocating(rec.id)
        continue
      }
      try {
        const ifname = await findTapByMac(rec.sandboxKey, ep.mac)
        if (!ifname) {
          this.startLocating(rec.id)
          continue
        }
        if (!ep.sandboxId) await this.adopt(rec, ep.id, rec.sandboxKey)
        if (ep.ifname !== ifname || ep.state !== 'up') await this.cp.reattachEndpoint(ep.id, ifname)
      } catch (e) {
        this.log.warn('could not re-attach a Docker endpoint', { endpoint: ep.name, sandboxKey: rec.sandboxKey, error: (e as Error).message })
      }
    }
    const n = this.store.list(KIND_ENDPOINT).length
    if (n) this.log.info('docker endpoints restored', { endpoints: n })
  }

  // ---- NetworkDriver ----------------------------------------------------------------------

  private async createNetwork(b: Body): Promise<object> {
    const id = needId(b, 'NetworkID')
    const options = obj(b.Options, 'Options')
    if (options['com.docker.network.enable_ipv6'] === true || arr(b.IPv6Data, 'IPv6Data').length > 0) {
      throw new PluginError('switchyard networks are IPv4 only: create the network without --ipv6')
    }
    const v4 = arr(b.IPv4Data, 'IPv4Data')
    if (v4.length !== 1) throw new PluginError(`a switchyard network has exactly one IPv4 subnet; Docker sent ${v4.length} (one --subnet, please)`)
    const data = obj(v4[0], 'IPv4Data[0]')
    const subnet = needStr(data, 'Pool')
    const gateway = optStr(data, 'Gateway')?.split('/')[0]
    const auxAddresses = Object.fromEntries(Object.entries(obj(data.AuxAddresses, 'AuxAddresses')).map(([k, v]) => [k, String(v).split('/')[0]]))
    const { mtu, internal, rest } = networkOptions(options)
    const existing = this.networkOf(id)
    if (existing) {
      if (existing.subnet !== canonicalCidr(subnet)) throw new PluginError(`Docker network ${id} already exists here with subnet ${existing.subnet}, not ${subnet}`)
      return {}
    }
    await this.cp.createNetwork({ name: networkName(id), subnet, gateway, auxAddresses, mtu, internal, labels: { [NETWORK_LABEL]: id }, options: rest })
    return {}
  }

  private async deleteNetwork(b: Body): Promise<object> {
    const id = needId(b, 'NetworkID')
    const net = this.networkOf(id)
    // Docker removes a network only when it has no endpoints: what is left here is stale.
    for (const rec of this.store.list<DockerEndpointRecord>(KIND_ENDPOINT)) {
      if (rec.networkId === id || (net && this.endpointOf(rec)?.networkId === net.id)) {
        this.log.warn('removing a stale Docker endpoint with its network', { endpoint: rec.id })
        await this.dropEndpoint(rec)
      }
    }
    if (net) await this.cp.deleteNetwork(net.id)
    return {}
  }

  private async createEndpoint(b: Body): Promise<object> {
    const networkId = needId(b, 'NetworkID')
    const id = needId(b, 'EndpointID')
    const iface = obj(b.Interface, 'Interface')
    const askedAddress = optStr(iface, 'Address')
    const askedMac = optStr(iface, 'MacAddress')
    if (optStr(iface, 'AddressIPv6')) throw new PluginError('switchyard networks are IPv4 only: no IPv6 address can be given')
    const known = this.store.get<DockerEndpointRecord>(KIND_ENDPOINT, id)
    if (known) {
      const ep = this.endpointOf(known)
      if (ep) return endpointReply(ep, askedAddress, askedMac)
      this.store.delete(KIND_ENDPOINT, id)
    }
    const net = this.networkOf(networkId)
    if (!net) throw new PluginError(`switchyard has no network for Docker network ${networkId}; remove it (docker network rm) and create it again`)
    const ip = askedAddress?.split('/')[0]
    // As Docker's bridge driver does: a MAC made from the address, the same after a restart.
    const mac = askedMac || (ip ? macForAddress(ip) : undefined)
    const ep = await this.cp.createHostEndpoint(net.id, { name: endpointName(id), ip, mac })
    try {
      await setLink(ep.tap, { mac: ep.mac, mtu: net.mtu })
      this.store.put(KIND_ENDPOINT, id, { id, networkId, endpoint: ep.id, createdAt: new Date().toISOString() } satisfies DockerEndpointRecord)
    } catch (e) {
      await this.cp.removeEndpoint(ep.id).catch(() => undefined)
      throw e
    }
    return endpointReply(ep, askedAddress, askedMac)
  }

  private endpointOperInfo(b: Body): object {
    const id = needId(b, 'EndpointID')
    const rec = this.store.get<DockerEndpointRecord>(KIND_ENDPOINT, id)
    const ep = rec && this.endpointOf(rec)
    if (!rec || !ep) return { Value: {} }
    if (rec.sandboxKey && !ep.ifname && !this.locating.has(id)) this.startLocating(id)
    return {
      Value: {
        'switchyard.endpoint': ep.id,
        'switchyard.network': ep.network ?? '',
        tap: ep.tap,
        mac: ep.mac,
        address: ep.address,
        ...(ep.ifname ? { ifname: ep.ifname } : {}),
        ...(ep.publish?.length ? { published: ep.publish.map((p) => `${p.hostIp}:${p.hostPort}->${p.port}/${p.proto}`).join(',') } : {}),
      },
    }
  }

  private async deleteEndpoint(b: Body): Promise<object> {
    const rec = this.store.get<DockerEndpointRecord>(KIND_ENDPOINT, needId(b, 'EndpointID'))
    if (rec) await this.dropEndpoint(rec)
    return {}
  }

  private async join(b: Body): Promise<object> {
    const id = needId(b, 'EndpointID')
    const sandboxKey = needStr(b, 'SandboxKey')
    const rec = this.store.get<DockerEndpointRecord>(KIND_ENDPOINT, id)
    const ep = rec && this.endpointOf(rec)
    if (!rec || !ep) throw new PluginError(`switchyard has no endpoint ${id}: it was never created or is removed`)
    const net = this.cp.networkRecord(ep.networkId)
    if (rec.sandboxKey && rec.sandboxKey !== sandboxKey) await this.cp.releaseEndpoint(ep.id)
    // The namespace at SandboxKey does not exist yet: Docker binds the container's there when
    // runc has made it, then moves the TAP in. The sandbox is recorded when the TAP is found there.
    this.store.put(KIND_ENDPOINT, id, { ...rec, sandboxKey, lastSandboxKey: sandboxKey })
    this.startLocating(id)
    return {
      InterfaceName: { SrcName: ep.tap, DstPrefix: 'eth' },
      ...(net.internal ? {} : { Gateway: net.gateway }),
      DisableGatewayService: false,
    }
  }

  private async leave(b: Body): Promise<object> {
    const id = needId(b, 'EndpointID')
    const rec = this.store.get<DockerEndpointRecord>(KIND_ENDPOINT, id)
    if (!rec) return {}
    this.stopLocating(id)
    await this.cp.releaseEndpoint(rec.endpoint)
    const { sandboxKey: _k, ...rest } = rec
    this.store.put(KIND_ENDPOINT, id, rest)
    return {}
  }

  private async programExternalConnectivity(b: Body): Promise<object> {
    const id = needId(b, 'EndpointID')
    const rec = this.store.get<DockerEndpointRecord>(KIND_ENDPOINT, id)
    if (!rec || !this.endpointOf(rec)) throw new PluginError(`switchyard has no endpoint ${id}`)
    const portmap = arr(obj(b.Options, 'Options')['com.docker.network.portmap'], 'com.docker.network.portmap')
    await this.cp.publishEndpoint(rec.endpoint, portmap.map(toPublish))
    return {}
  }

  private async revokeExternalConnectivity(b: Body): Promise<object> {
    const rec = this.store.get<DockerEndpointRecord>(KIND_ENDPOINT, needId(b, 'EndpointID'))
    if (rec) await this.cp.unpublishEndpoint(rec.endpoint)
    return {}
  }

  // ---- IpamDriver -------------------------------------------------------------------------

  private requestPool(b: Body): object {
    if (b.V6 === true) throw new PluginError('switchyard IPAM is IPv4 only: create the network without --ipv6')
    const space = optStr(b, 'AddressSpace') || LOCAL_ADDRESS_SPACE
    const subPool = optStr(b, 'SubPool') || undefined
    const pools = this.store.list<DockerPoolRecord>(KIND_POOL)
    const nets = this.cp.listNetworks()
    let wanted = optStr(b, 'Pool')
    if (!wanted) {
      if (subPool) throw new PluginError('an --ip-range needs a --subnet')
      wanted = chooseDefaultSubnet([...pools.map((p) => parseCidr(p.state.pool)), ...nets.map((n) => parseCidr(n.subnet))], readHostRoutes())
    }
    let pool: DockerPool
    try {
      pool = DockerPool.create(wanted, subPool)
    } catch (e) {
      throw new PluginError((e as Error).message)
    }
    const c = parseCidr(pool.pool)
    const clash = pools.find((p) => cidrOverlaps(parseCidr(p.state.pool), c))
    if (clash) throw new PluginError(`pool ${pool.pool} overlaps pool ${clash.state.pool} of another network`)
    const net = nets.find((n) => cidrOverlaps(parseCidr(n.subnet), c))
    if (net) throw new PluginError(`pool ${pool.pool} overlaps switchyard network "${net.name}" (${net.subnet})`)
    const id = `${space}/${pool.pool}`
    this.store.put(KIND_POOL, id, { id, addressSpace: space, state: pool.toJSON(), createdAt: new Date().toISOString() } satisfies DockerPoolRecord)
    return { PoolID: id, Pool: pool.pool, Data: {} }
  }

  private releasePool(b: Body): object {
    this.store.delete(KIND_POOL, needStr(b, 'PoolID'))
    return {}
  }

  private requestAddress(b: Body): object {
    const id = needStr(b, 'PoolID')
    const rec = this.store.get<DockerPoolRecord>(KIND_POOL, id)
    if (!rec) throw new PluginError(`switchyard IPAM has no pool ${id}`)
    const gateway = obj(b.Options, 'Options').RequestAddressType === GATEWAY_REQUEST
    const pool = DockerPool.fromJSON(rec.state)
    let ip: string
    try {
      ip = pool.request(optStr(b, 'Address')?.split('/')[0] || undefined, gateway)
    } catch (e) {
      throw new PluginError((e as Error).message)
    }
    this.store.put(KIND_POOL, id, { ...rec, state: pool.toJSON() })
    return { Address: `${ip}/${pool.prefix}`, Data: {} }
  }

  private releaseAddress(b: Body): object {
    const id = needStr(b, 'PoolID')
    const address = needStr(b, 'Address')
    const rec = this.store.get<DockerPoolRecord>(KIND_POOL, id)
    if (!rec) return {}
    const pool = DockerPool.fromJSON(rec.state)
    if (pool.release(address)) this.store.put(KIND_POOL, id, { ...rec, state: pool.toJSON() })
    return {}
  }

  // ---- helpers ----------------------------------------------------------------------------

  private serial<T>(fn: () => Promise<T> | T): Promise<T> {
    const next = this.queue.then(fn, fn)
    this.queue = next.catch(() => undefined)
    return next
  }

  /** The Switchyard network made for a Docker network, if there is one. */
  private networkOf(dockerId: string): NetworkRecord | undefined {
    try {
      const rec = this.cp.networkRecord(networkName(dockerId))
      if (rec.labels[NETWORK_LABEL] !== dockerId) throw new PluginError(`switchyard network "${rec.name}" exists but was not made for Docker network ${dockerId}`)
      return rec
    } catch (e) {
      if (e instanceof ControlError && e.kind === 'not_found') return undefined
      throw e
    }
  }

  private endpointOf(rec: DockerEndpointRecord) {
    try {
      return this.cp.inspectEndpoint(rec.endpoint)
    } catch (e) {
      if (e instanceof ControlError && e.kind === 'not_found') return undefined
      throw e
    }
  }

  private async adopt(rec: DockerEndpointRecord, endpoint: string, sandboxKey: string, ifname?: string): Promise<void> {
    const name = sandboxName(sandboxKey)
    try {
      await this.cp.adoptEndpoint(endpoint, { netnsPath: sandboxKey, sandboxName: name, ...(ifname ? { ifname } : {}) })
    } catch (e) {
      if (!(e instanceof ControlError && e.code === 'NAME_TAKEN')) throw e
      await this.cp.adoptEndpoint(endpoint, { netnsPath: sandboxKey, sandboxName: `${name}-${rec.id.slice(0, 8)}`, ...(ifname ? { ifname } : {}) })
    }
  }

  /** Removes the Switchyard endpoint, anything of it Docker left in the container, and the record. */
  private async dropEndpoint(rec: DockerEndpointRecord): Promise<void> {
    this.stopLocating(rec.id)
    const ep = this.endpointOf(rec)
    if (ep) await this.cp.removeEndpoint(ep.id)
    const where = rec.lastSandboxKey
    // Closing the held TAP deletes it wherever it is; a device the switch did not hold (a
    // failed re-attach) may still sit in the container, under whatever name Docker gave it.
    if (ep && where && fs.existsSync(where) && !this.cp.listEndpoints().some((e) => e.mac === ep.mac)) {
      const left = await findTapByMac(where, ep.mac).catch(() => undefined)
      if (left && (await deleteLink(where, left))) this.log.info('removed a device Docker left in the container', { endpoint: ep.name, ifname: left })
    }
    this.store.delete(KIND_ENDPOINT, rec.id)
  }

  /**
   * After Join, Docker moves the TAP into the container once the container's namespace
   * exists, and renames it (eth0, ...): find it there by MAC, then record the sandbox and the
   * device's name (so that DNS knows it and a restarted daemon can open it again).
   */
  private startLocating(id: string): void {
    this.stopLocating(id)
    const deadline = Date.now() + this.locateTimeoutMs
    let delay = 10
    const tick = async () => {
      this.locating.delete(id)
      if (this.closed) return
      const rec = this.store.get<DockerEndpointRecord>(KIND_ENDPOINT, id)
      const ep = rec && this.endpointOf(rec)
      const key = rec?.sandboxKey
      if (!rec || !ep || !key || ep.ifname) return
      const name = fs.existsSync(key) ? await findTapByMac(key, ep.mac).catch(() => undefined) : undefined
      const late = Date.now() > deadline
      // Not renamed yet (still the TAP's own name): Docker is half-way; look again.
      if (name && (name !== ep.tap || late)) {
        await this.serial(async () => {
          const now = this.store.get<DockerEndpointRecord>(KIND_ENDPOINT, id)
          if (now?.sandboxKey === key && this.endpointOf(now)) {
            await this.adopt(now, now.endpoint, key, name)
            this.cp.announceEndpoint(now.endpoint)
          }
        }).catch((e) => this.log.warn('recording the device of a Docker endpoint failed', { endpoint: ep.name, error: (e as Error).message }))
        return
      }
      if (late) {
        this.log.warn('Docker did not move the endpoint device into the container', { endpoint: ep.name, sandboxKey: key })
        return
      }
      delay = Math.min(delay * 2, 500)
      this.locating.set(id, setTimeout(() => void tick(), delay))
    }
    this.locating.set(id, setTimeout(() => void tick(), delay))
  }

  private stopLocating(id: string): void {
    const t = this.locating.get(id)
    if (t) clearTimeout(t)
    this.locating.delete(id)
  }

  private removeMadeDirs(): void {
    for (const d of [...this.madeDirs].reverse()) {
      try {
        fs.rmdirSync(d)
      } catch {
        break // not empty: someone else uses it now
      }
    }
    this.madeDirs = []
  }
}

/** The Switchyard network's name for a Docker network. */
export function networkName(dockerNetworkId: string): string {
  return `docker-${dockerNetworkId.slice(0, 12)}`
}

/** The Switchyard endpoint's name for a Docker endpoint. */
export function endpointName(dockerEndpointId: string): string {
  return `docker-${dockerEndpointId.slice(0, 12)}`
}

/** The sandbox a container's namespace is recorded as: docker-<its SandboxKey's name>. */
export function sandboxName(sandboxKey: string): string {
  return `docker-${path.basename(sandboxKey).replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 48)}`
}

/**
 * `-o` options of `docker network create` (Options["com.docker.network.generic"]) and
 * `--internal`: mtu (or com.docker.network.driver.mtu) and internal become the network's
 * fields, everything else its options (dns, domain, dhcp, ...), as strings.
 */
export function networkOptions(options: Record<string, unknown>): { mtu?: number; internal: boolean; rest: Record<string, string> } {
  const generic = obj(options['com.docker.network.generic'], 'com.docker.network.generic')
  const rest: Record<string, string> = {}
  let mtu: number | undefined
  let internal = options['com.docker.network.internal'] === true
  for (const [k, v] of Object.entries(generic)) {
    const s = typeof v === 'string' ? v : JSON.stringify(v)
    if (k === 'mtu' || k === 'com.docker.network.driver.mtu') {
      mtu = Number(s)
      if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535) throw new PluginError(`-o ${k}=${s}: the MTU must be a whole number from 576 to 65535`)
    } else if (k === 'internal') {
      internal ||= ['true', '1', 'yes', 'on'].includes(s.toLowerCase())
    } else {
      rest[k] = s
    }
  }
  return { ...(mtu !== undefined ? { mtu } : {}), internal, rest }
}

/** One entry of Docker's com.docker.network.portmap as Switchyard's `[HOSTIP:]HOSTPORT:PORT/PROTO`. */
export function toPublish(entry: unknown): string {
  const p = obj(entry, 'portmap entry')
  const proto = p.Proto === 6 ? 'tcp' : p.Proto === 17 ? 'udp' : undefined
  if (!proto) throw new PluginError(`published port protocol ${String(p.Proto)} is not supported: tcp and udp only`)
  const port = Number(p.Port)
  const hostPort = Number(p.HostPort ?? 0)
  const hostPortEnd = Number(p.HostPortEnd ?? 0)
  if (!hostPort) throw new PluginError(`publish port ${port}/${proto} with a host port (-p HOSTPORT:${port}); switchyard does not choose host ports for Docker`)
  if (hostPortEnd && hostPortEnd !== hostPort) throw new PluginError(`host port ranges (${hostPort}-${hostPortEnd}) are not supported; publish one host port per container port`)
  const hostIp = typeof p.HostIP === 'string' && p.HostIP !== '' ? `${p.HostIP}:` : ''
  if (hostIp.includes('::') || (hostIp && hostIp.split(':').length > 2)) throw new PluginError(`host address ${String(p.HostIP)} is not IPv4`)
  return `${hostIp}${hostPort}:${port}/${proto}`
}

/** 02:42 and the four bytes of the address, as Docker's bridge driver makes MACs. */
export function macForAddress(ip: string): string {
  return ['02', '42', ...ip.split('.').map((b) => Number(b).toString(16).padStart(2, '0'))].join(':')
}

function endpointReply(ep: { mac: string; address: string }, askedAddress: string | undefined, askedMac: string | undefined): object {
  const iface = { ...(askedMac ? {} : { MacAddress: ep.mac }), ...(askedAddress ? {} : { Address: ep.address }) }
  return Object.keys(iface).length ? { Interface: iface } : {}
}

function canonicalCidr(s: string): string {
  try {
    return formatCidr(parseCidr(s))
  } catch {
    return s
  }
}

/** The directories listen() will create (to remove them again if they end up empty). */
function missingDirs(dir: string): string[] {
  const out: string[] = []
  for (let d = dir; !fs.existsSync(d) && d !== path.dirname(d); d = path.dirname(d)) out.unshift(d)
  return out
}

function obj(v: unknown, field: string): Record<string, unknown> {
  if (v === undefined || v === null) return {}
  if (typeof v !== 'object' || Array.isArray(v)) throw new PluginError(`${field} must be a JSON object`)
  return v as Record<string, unknown>
}

function arr(v: unknown, field: string): unknown[] {
  if (v === undefined || v === null) return []
  if (!Array.isArray(v)) throw new PluginError(`${field} must be a JSON array`)
  return v
}

function optStr(b: Record<string, unknown>, field: string): string | undefined {
  const v = b[field]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string') throw new PluginError(`${field} must be a string`)
  return v
}

function needStr(b: Record<string, unknown>, field: string): string {
  const v = optStr(b, field)
  if (!v) throw new PluginError(`${field} is missing`)
  return v
}

function needId(b: Record<string, unknown>, field: string): string {
  const v = needStr(b, field)
  if (!ID_PATTERN.test(v)) throw new PluginError(`${field} "${v.slice(0, 80)}" is not an ID`)
  return v
}
