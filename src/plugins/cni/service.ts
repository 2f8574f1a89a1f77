/**
 * The daemon's side of the CNI plugin: the `switchyard-cni` executable relays each invocation
 * (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS and the network config) to
 * `POST /v1/cni` on the daemon's API socket, and prints what comes back. Here an ADD adopts
 * the runtime's namespace as a sandbox (named after K8S_POD_NAME, which podman sets to the
 * container's name, so the gateway's DNS knows it) and connects it to the Switchyard network
 * under CNI_IFNAME; DEL removes that endpoint; CHECK compares; STATUS and GC (CNI 1.1) too.
 *
 *   const cni = new CniService({ cp, store, log })
 *   registerCniRoutes(api, cni)
 *   await cni.handle({ command: 'ADD', containerId, netns: '/run/netns/x', ifname: 'eth0', config })
 *
 * Attachments are recorded ('cni.attachment' records, by CNI network name, container ID and
 * interface name) so DEL, CHECK and GC find them after a daemon restart, and a repeated ADD
 * answers with what the first one made.
 */
import { ApiError } from '../../api/errors.js'
import type { ApiServer } from '../../api/server.js'
import { InvalidAddressError, InvalidCidrError } from '../../control/cidr.js'
import type { ControlPlane } from '../../control/control-plane.js'
import { ControlError } from '../../control/errors.js'
import { IpamError } from '../../control/ipam.js'
import { formatPublish, parsePublish, type NetworkRecord } from '../../control/model.js'
import { NetnsError } from '../../control/netns.js'
import type { Store } from '../../store/store.js'
import type { Logger } from '../../util/log.js'
import { defaultRouteDev, listLinks } from '../docker/links.js'
import { CNI_ERR, CniError, compareVersions, isSupportedVersion, parseCniArgs, shapeResult, type CniReply, type CniRequest, type CniResult, type NetConf } from './spec.js'

const KIND = 'cni.attachment'
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/
const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/

/** One container interface on one CNI network. */
interface AttachmentRecord {
  /** `<CNI network name>/<container ID>/<ifname>`. */
  id: string
  cniNetwork: string
  containerId: string
  ifname: string
  netns: string
  /** The Switchyard endpoint's ID. */
  endpoint: string
  createdAt: string
}

export interface CniServiceOptions {
  cp: ControlPlane
  store: Store
  log: Logger
}

export class CniService {
  private readonly cp: ControlPlane
  private readonly store: Store
  private readonly log: Logger
  private queue: Promise<unknown> = Promise.resolve()

  constructor(opts: CniServiceOptions) {
    this.cp = opts.cp
    this.store = opts.store
    this.log = opts.log.child({ component: 'cni' })
  }

  /** Runs one CNI invocation; never throws: failures come back as CNI error objects. */
  handle(req: CniRequest): Promise<CniReply> {
    const version = typeof req.config?.cniVersion === 'string' ? req.config.cniVersion : '1.0.0'
    const run = async (): Promise<CniReply> => {
      if (typeof req.config !== 'object' || req.config === null) throw new CniError(CNI_ERR.DECODE_FAILURE, 'the network configuration is not a JSON object')
      if (!isSupportedVersion(req.config.cniVersion)) {
        throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, `cniVersion ${JSON.stringify(req.config.cniVersion)} is not supported`, 'switchyard-cni speaks 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0')
      }
      if (typeof req.config.name !== 'string' || !NAME_RE.test(req.config.name)) throw new CniError(CNI_ERR.INVALID_CONFIG, 'the network configuration has no valid "name"')
      switch (req.command) {
        case 'ADD':
          return { stdout: await this.add(req, version), exit: 0 }
        case 'DEL':
          await this.del(req)
          return { stdout: null, exit: 0 }
        case 'CHECK':
          await this.check(req, version)
          return { stdout: null, exit: 0 }
        case 'STATUS':
          await this.status(req.config)
          return { stdout: null, exit: 0 }
        case 'GC':
          await this.gc(req.config)
          return { stdout: null, exit: 0 }
        default:
          throw new CniError(CNI_ERR.INVALID_ENV, `CNI_COMMAND ${JSON.stringify(req.command)} is not ADD, DEL, CHECK, STATUS, GC or VERSION`)
      }
    }
    return this.serial(run).catch((e) => {
      const err = toCniError(e)
      this.log.warn('cni command failed', { command: req.command, container: req.containerId, ifname: req.ifname, code: err.code, error: err.message })
      return { stdout: err.toJSON(version), exit: 1 }
    })
  }

  private async add(req: CniRequest, version: string): Promise<CniResult> {
    const { containerId, netns, ifname } = need(req, ['containerId', 'netns', 'ifname'])
    const conf = req.config
    const cniNetwork = conf.name!
    const args = parseCniArgs(req.args)
    const net = await this.network(conf, true)
    const key = attachmentKey(cniNetwork, containerId, ifname)
    const prior = this.store.get<AttachmentRecord>(KIND, key)
    if (prior) {
      const ep = this.endpoint(prior.endpoint)
      if (ep && prior.netns === netns && ep.networkId === net.id) return shapeResult(await this.result(net, ep, prior), version)
      this.log.warn('replacing a stale CNI attachment', { attachment: key })
      if (ep) await this.cp.removeEndpoint(ep.id)
      this.store.delete(KIND, key)
    }
    const rc = conf.runtimeConfig ?? {}
    const ip = oneAddress([...(Array.isArray(rc.ips) ? rc.ips : []), ...(args.IP ? args.IP.split(',') : [])], net)
    const mac = typeof rc.mac === 'string' && rc.mac ? rc.mac : args.MAC || undefined
    const aliases = (rc.aliases?.[cniNetwork] ?? []).filter((a) => typeof a === 'string' && NAME_RE.test(a))
    const mappings = portMappings(rc.portMappings)
    const sb = await this.sandbox(netns, args.K8S_POD_NAME, containerId)
    // The runtime passes the same port mappings to every network of the container: the first one publishes.
    const taken = new Set(this.cp.listEndpoints().filter((e) => e.sandboxId === sb.id).flatMap((e) => (e.publish ?? []).map(formatPublish)))
    const publish = mappings.filter((p) => !taken.has(formatPublish(parsePublish(p))))
    let ep
    try {
      ep = await this.cp.connect(net.id, sb.id, { ifname, ...(ip ? { ip } : {}), ...(mac ? { mac } : {}), aliases, publish, name: endpointName(containerId, ifname) })
    } catch (e) {
      await this.cp.forgetSandboxIfEmpty(sb.id).catch(() => undefined)
      throw e
    }
    const rec: AttachmentRecord = { id: key, cniNetwork, containerId, ifname, netns, endpoint: ep.id, createdAt: new Date().toISOString() }
    try {
      this.store.put(KIND, key, rec)
    } catch (e) {
      await this.cp.removeEndpoint(ep.id).catch(() => undefined)
      throw e
    }
    this.cp.announceEndpoint(ep.id)
    this.log.info('cni attachment added', { attachment: key, address: ep.address, sandbox: sb.name })
    return shapeResult(await this.result(net, ep, rec), version)
  }

  private async del(req: CniRequest): Promise<void> {
    const { containerId, ifname } = need(req, ['containerId', 'ifname'])
    const key = attachmentKey(req.config.name!, containerId, ifname)
    const rec = this.store.get<AttachmentRecord>(KIND, key)
    const ref = rec?.endpoint ?? endpointName(containerId, ifname)
    // Only an endpoint of this CNI network's Switchyard network goes (a name alone could be another network's).
    const ep = this.endpoint(ref)
    const net = this.networkIfAny(req.config)
    if (ep && (rec || (net && ep.networkId === net.id))) await this.cp.removeEndpoint(ep.id)
    if (rec) this.store.delete(KIND, key)
    if (ep || rec) this.log.info('cni attachment removed', { attachment: key })
  }

  private async check(req: CniRequest, version: string): Promise<void> {
    if (compareVersions(version, '0.4.0') < 0) throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, `CHECK needs cniVersion 0.4.0 or later, not ${version}`)
    const { containerId, netns, ifname } = need(req, ['containerId', 'netns', 'ifname'])
    const key = attachmentKey(req.config.name!, containerId, ifname)
    const rec = this.store.get<AttachmentRecord>(KIND, key)
    if (!rec) throw new CniError(CNI_ERR.CHECK_FAILED, `container ${containerId} has no ${ifname} on network ${req.config.name}`)
    const ep = this.endpoint(rec.endpoint)
    if (!ep) throw new CniError(CNI_ERR.CHECK_FAILED, `the endpoint of ${key} is gone from switchyard`)
    if (rec.netns !== netns) throw new CniError(CNI_ERR.CHECK_FAILED, `${key} was added in namespace ${rec.netns}, not ${netns}`)
    if (ep.state !== 'up') throw new CniError(CNI_ERR.CHECK_FAILED, `the switch has no working port for ${key} (${ep.state})`)
    const link = (await listLinks(netns).catch(() => [])).find((l) => l.ifname === ifname)
    if (!link) throw new CniError(CNI_ERR.CHECK_FAILED, `there is no ${ifname} in ${netns}`)
    if (link.mac !== ep.mac) throw new CniError(CNI_ERR.CHECK_FAILED, `${ifname} in ${netns} has MAC ${link.mac}, not ${ep.mac}`)
    const prev = req.config.prevResult
    if (prev?.ips?.length && !prev.ips.some((i) => i.address === ep.address)) {
      throw new CniError(CNI_ERR.CHECK_FAILED, `${ifname} has address ${ep.address}, the previous result says ${prev.ips.map((i) => i.address).join(', ')}`)
    }
  }

  private async status(conf: NetConf): Promise<void> {
    if (this.networkIfAny(conf) || conf.subnet) return
    throw new CniError(CNI_ERR.NOT_AVAILABLE, `switchyard has no network "${conf.network ?? conf.name}" and the configuration gives no "subnet" to create it`)
  }

  private async gc(conf: NetConf): Promise<void> {
    const valid = conf['cni.dev/valid-attachments'] ?? conf['cni.dev/attachments'] ?? []
    if (!Array.isArray(valid)) throw new CniError(CNI_ERR.INVALID_CONFIG, 'cni.dev/valid-attachments must be a list')
    const keep = (r: AttachmentRecord) => valid.some((v) => v && v.containerID === r.containerId && (!v.ifname || v.ifname === r.ifname))
    for (const rec of this.store.list<AttachmentRecord>(KIND)) {
      if (rec.cniNetwork !== conf.name || keep(rec)) continue
      await this.cp.removeEndpoint(rec.endpoint).catch((e) => this.log.warn('gc: removing an endpoint failed', { attachment: rec.id, error: String(e) }))
      this.store.delete(KIND, rec.id)
      this.log.info('cni attachment collected', { attachment: rec.id })
    }
  }

  // ---- helpers ----------------------------------------------------------------------------

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn)
    this.queue = next.catch(() => undefined)
    return next
  }

  private networkIfAny(conf: NetConf): NetworkRecord | undefined {
    try {
      return this.cp.networkRecord(conf.network ?? conf.name!)
    } catch (e) {
      if (e instanceof ControlError && e.kind === 'not_found') return undefined
      throw e
    }
  }

  /** The Switchyard network of the config, created from its `subnet` when it is missing. */
  private async network(conf: NetConf, create: boolean): Promise<NetworkRecord> {
    const found = this.networkIfAny(conf)
    if (found) return found
    const name = conf.network ?? conf.name!
    if (!create || typeof conf.subnet !== 'string') {
      throw new CniError(CNI_ERR.INVALID_CONFIG, `switchyard has no network "${name}"`, `create it (switchyard network create ${name} --subnet CIDR), or give "subnet" in the CNI network configuration`)
    }
    await this.cp.ensureNetwork({
      name,
      subnet: conf.subnet,
      ...(typeof conf.gateway === 'string' ? { gateway: conf.gateway } : {}),
      ...(typeof conf.mtu === 'number' ? { mtu: conf.mtu } : {}),
      ...(typeof conf.internal === 'boolean' ? { internal: conf.internal } : {}),
    })
    return this.cp.networkRecord(name)
  }

  private endpoint(ref: string) {
    try {
      return this.cp.inspectEndpoint(ref)
    } catch (e) {
      if (e instanceof ControlError && e.kind === 'not_found') return undefined
      throw e
    }
  }

  /** The runtime's namespace as a sandbox: found by path, or adopted as the pod's (container's) name. */
  private async sandbox(netns: string, podName: string | undefined, containerId: string) {
    const names = [podName && NAME_RE.test(podName) ? podName : undefined, `cni-${containerId.slice(0, 12)}`, `cni-${containerId.slice(0, 12)}-${Date.now().toString(36)}`]
    let last: unknown
    for (const name of names) {
      if (!name) continue
      try {
        return await this.cp.adoptSandbox(netns, name)
      } catch (e) {
        if (!(e instanceof ControlError && e.code === 'NAME_TAKEN')) throw e
        last = e
      }
    }
    throw last
  }

  private async result(net: NetworkRecord, ep: { mac: string; address: string }, rec: AttachmentRecord): Promise<CniResult> {
    const viaHere = (await defaultRouteDev(rec.netns).catch(() => undefined)) === rec.ifname
    return {
      cniVersion: '1.0.0',
      interfaces: [{ name: rec.ifname, mac: ep.mac, sandbox: rec.netns }],
      ips: [{ address: ep.address, gateway: net.gateway, interface: 0 }],
      routes: viaHere ? [{ dst: '0.0.0.0/0', gw: net.gateway }] : [],
      dns: { nameservers: [net.gateway] },
    }
  }
}

/** Serves CNI invocations relayed by `switchyard-cni` on the daemon's API: `POST /v1/cni`. */
export function registerCniRoutes(api: ApiServer, service: CniService): void {
  api.route('POST', '/v1/cni', (r) => {
    const b = r.body as Partial<CniRequest> | undefined
    if (!b || typeof b !== 'object' || typeof b.command !== 'string' || typeof b.config !== 'object' || b.config === null) {
      throw new ApiError(400, 'INVALID_ARGUMENT', 'a CNI request is {"command": "ADD|DEL|CHECK|STATUS|GC", "containerId", "netns", "ifname", "args", "config": {...}}')
    }
    for (const f of ['containerId', 'netns', 'ifname', 'args'] as const) {
      if (b[f] !== undefined && typeof b[f] !== 'string') throw new ApiError(400, 'INVALID_ARGUMENT', `${f} must be a string`, f)
    }
    return service.handle(b as CniRequest)
  })
}

function attachmentKey(network: string, containerId: string, ifname: string): string {
  return `${network}/${containerId}/${ifname}`
}

/** The Switchyard endpoint's name for a container interface. */
export function endpointName(containerId: string, ifname: string): string {
  return `cni-${containerId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40)}-${ifname}`
}

function need<K extends 'containerId' | 'netns' | 'ifname'>(req: CniRequest, fields: K[]): Record<K, string> {
  const env: Record<string, string> = { containerId: 'CNI_CONTAINERID', netns: 'CNI_NETNS', ifname: 'CNI_IFNAME' }
  const out = {} as Record<K, string>
  for (const f of fields) {
    const v = req[f]
    if (typeof v !== 'string' || v === '') throw new CniError(CNI_ERR.INVALID_ENV, `${env[f]} is not set`)
    out[f] = v
  }
  if (out['ifname' as K] !== undefined && !IFNAME_RE.test(out['ifname' as K])) throw new CniError(CNI_ERR.INVALID_ENV, `CNI_IFNAME "${out['ifname' as K]}" is not an interface name`)
  if (out['netns' as K] !== undefined && !out['netns' as K].startsWith('/')) throw new CniError(CNI_ERR.INVALID_ENV, `CNI_NETNS "${out['netns' as K]}" is not a path`)
  return out
}

/** One IPv4 address from runtimeConfig.ips and CNI_ARGS IP (duplicates allowed, prefixes dropped). */
function oneAddress(list: unknown[], net: NetworkRecord): string | undefined {
  const addrs = [...new Set(list.filter((x): x is string => typeof x === 'string' && x !== '').map((x) => x.split('/')[0]))]
  if (addrs.some((a) => a.includes(':'))) throw new CniError(CNI_ERR.REFUSED, `switchyard network "${net.name}" is IPv4 only; asked for ${addrs.join(', ')}`)
  if (addrs.length > 1) throw new CniError(CNI_ERR.REFUSED, `one address per interface; asked for ${addrs.join(', ')}`)
  return addrs[0]
}

/** runtimeConfig.portMappings as Switchyard's `[HOSTIP:]HOSTPORT:PORT/PROTO`. */
function portMappings(list: unknown): string[] {
  if (list === undefined || list === null) return []
  if (!Array.isArray(list)) throw new CniError(CNI_ERR.INVALID_CONFIG, 'runtimeConfig.portMappings must be a list')
  return list.map((m) => {
    const p = (m ?? {}) as { hostPort?: unknown; containerPort?: unknown; protocol?: unknown; hostIP?: unknown }
    const proto = typeof p.protocol === 'string' && p.protocol !== '' ? p.protocol.toLowerCase() : 'tcp'
    if (proto !== 'tcp' && proto !== 'udp') throw new CniError(CNI_ERR.REFUSED, `port mapping protocol ${proto} is not supported: tcp and udp only`)
    if (!Number.isInteger(p.hostPort) || !Number.isInteger(p.containerPort)) throw new CniError(CNI_ERR.INVALID_CONFIG, `port mapping ${JSON.stringify(m)} needs hostPort and containerPort`)
    const hostIp = typeof p.hostIP === 'string' && p.hostIP !== '' ? p.hostIP : undefined
    if (hostIp?.includes(':')) throw new CniError(CNI_ERR.REFUSED, `port mapping host address ${hostIp} is not IPv4`)
    const s = `${hostIp ? `${hostIp}:` : ''}${p.hostPort}:${p.containerPort}/${proto}`
    try {
      parsePublish(s)
    } catch (e) {
      throw new CniError(CNI_ERR.INVALID_CONFIG, (e as Error).message)
    }
    return s
  })
}

function toCniError(e: unknown): CniError {
  if (e instanceof CniError) return e
  if (e instanceof ControlError) return new CniError(e.kind === 'failed' ? CNI_ERR.IO_FAILURE : CNI_ERR.REFUSED, e.message, e.code)
  if (e instanceof IpamError) return new CniError(CNI_ERR.REFUSED, e.message, e.code)
  if (e instanceof InvalidAddressError || e instanceof InvalidCidrError) return new CniError(CNI_ERR.INVALID_CONFIG, e.message)
  if (e instanceof NetnsError) return new CniError(CNI_ERR.IO_FAILURE, e.message)
  return new CniError(CNI_ERR.IO_FAILURE, (e as Error)?.message ?? String(e))
}
