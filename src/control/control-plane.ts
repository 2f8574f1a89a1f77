/**
 * The CNM control plane: networks, endpoints and sandboxes, their IPAM, their persistence,
 * and how they program the switch and the kernel (namespaces, interfaces, routes).
 *
 * Mutations are serialised (one at a time, in arrival order) so concurrent API requests
 * never interleave half-done changes; each change is committed to the store before the call
 * returns, and a failure half-way rolls back what it did.
 *
 *   const cp = new ControlPlane({ store, sw, log })
 *   await cp.restore()
 *   const net = await cp.createNetwork({ name: 'blue' })
 *   const sb = await cp.createSandbox({ name: 'web' })
 *   await cp.connect('blue', 'web', {})
 */
import type { DhcpLeaseBackend } from '../gateway/dhcp/index.js'
import { readHostResolvers, type Upstream } from '../gateway/dns/index.js'
import { GatewayServices } from '../gateway/services.js'
import { VXLAN_OVERHEAD, type Vxlan } from '../overlay/vxlan.js'
import { randomMac, parseMac, macToString, BROADCAST_MAC } from '../packet/mac.js'
import { ARP_LENGTH, ArpOp, writeArp } from '../packet/arp.js'
import { EtherType, writeEthHeader } from '../packet/ethernet.js'
import type { Store } from '../store/store.js'
import type { Switch } from '../switch/switch.js'
import type { Logger } from '../util/log.js'
import { cidrOverlaps, formatIPv4, parseCidr, parseIPv4, type Cidr } from './cidr.js'
import { ControlError, conflict, invalid, notFound } from './errors.js'
import { AddressPool, chooseDefaultSubnet, readHostRoutes } from './ipam.js'
import {
  KIND,
  newId,
  resolveRef,
  tapNameFor,
  type Driver,
  type EndpointRecord,
  type NetworkRecord,
  type PortRecord,
  type SandboxRecord,
  parsePublish,
  formatPublish,
  type PublishSpec,
} from './model.js'
import { PublishError, type NatLimits, type PublishTarget } from '../nat/nat.js'
import { parseIpv4 } from '../packet/ipv4.js'
import * as netns from './netns.js'
import type { ClusterLink } from '../cluster/link.js'

export interface NetworkCreate {
  name: string
  driver?: Driver
  subnet?: string
  gateway?: string
  ipRange?: string
  auxAddresses?: Record<string, string>
  mtu?: number
  internal?: boolean
  labels?: Record<string, string>
  options?: Record<string, string>
}

export interface ConnectOptions {
  ip?: string
  mac?: string
  aliases?: string[]
  /** Endpoint name; defaults to "<sandbox>-<network>". */
  name?: string
  /** Host ports to publish into the endpoint, `[HOSTIP:]HOSTPORT:PORT[/tcp|/udp]`. */
  publish?: string[]
  /** The interface's name in the sandbox (a CNI runtime's CNI_IFNAME); default: the next free ethN. */
  ifname?: string
}

export interface SandboxCreate {
  name: string
  /** Adopt an existing namespace (Docker's, a CNI runtime's) instead of creating one. */
  netnsPath?: string
}

export interface ControlPlaneOptions {
  store: Store
  sw: Switch
  log: Logger
  /** The host's routes, for choosing default subnets that do not clash; injectable for tests. */
  hostRoutes?: () => Cidr[]
  /** Nameservers written into sandboxes' resolv.conf; default: the network's gateway. */
  resolvConf?: (net: NetworkRecord) => string
  /** Where the embedded DNS forwards names it does not know; default: the host's resolv.conf. */
  upstreams?: Upstream[]
  nat?: NatLimits
  /** This host's VTEP, when it carries overlay networks, and the default static peers. */
  overlay?: { vxlan: Vxlan; peers: string[] }
  /** The cluster store: overlay networks, their addresses and endpoints are shared through it. */
  cluster?: ClusterLink
}

/** VNIs handed out when none is asked for (below are often used by hand, as kernel vxlan ids). */
const VNI_MIN = 4096
const VNI_MAX = 0xffffff

/** An offer not taken up within this time is withdrawn. */
const OFFER_MS = 60_000
/** An address a client declined (found in use) stays out of circulation this long. */
const DECLINE_MS = 600_000

interface NetState {
  rec: NetworkRecord
  /** Replaced when a cluster network's pool is rebuilt from the store. */
  pool: AddressPool
}

export const DEFAULT_MTU = 1500

export class ControlPlane implements DhcpLeaseBackend {
  private readonly store: Store
  private readonly sw: Switch
  private readonly log: Logger
  private readonly hostRoutes: () => Cidr[]
  private readonly nets = new Map<string, NetState>()
  private readonly endpoints = new Map<string, EndpointRecord>()
  private readonly sandboxes = new Map<string, SandboxRecord>()
  private readonly ports = new Map<string, PortRecord>()
  private queue: Promise<unknown> = Promise.resolve()
  private readonly resolvConf: (net: NetworkRecord) => string
  readonly gateway: GatewayServices
  private readonly leaseSweeper: NodeJS.Timeout
  private readonly overlay?: { vxlan: Vxlan; peers: string[] }
  private readonly cluster?: ClusterLink
  /** DHCP offers on cluster networks whose address claim is still on its way to the store. */
  private readonly pendingClaims = new Map<string, Promise<boolean>>()

  constructor(opts: ControlPlaneOptions) {
    this.store = opts.store
    this.sw = opts.sw
    this.log = opts.log
    this.hostRoutes = opts.hostRoutes ?? readHostRoutes
    this.resolvConf = opts.resolvConf ?? ((net) => `# written by switchyard for network ${net.name}\nnameserver ${net.gateway}\noptions ndots:0\n`)
    this.gateway = new GatewayServices({ sw: this.sw, upstreams: opts.upstreams ?? readHostResolvers(), leases: this, log: this.log, nat: opts.nat })
    this.overlay = opts.overlay
    this.cluster = opts.cluster
    this.leaseSweeper = setInterval(() => this.expireLeases(Date.now()), 5000)
    this.leaseSweeper.unref()
  }

  /** Runs mutations one at a time. */
  private serial<T>(fn: () => Promise<T> | T): Promise<T> {
    const next = this.queue.then(fn, fn)
    this.queue = next.catch(() => undefined)
    return next
  }

  // ---- restore -------------------------------------------------------------------------

  /** Loads every record and re-attaches the data plane to the devices that survived. */
  async restore(): Promise<void> {
    for (const rec of this.store.list<NetworkRecord>(KIND.network)) {
      try {
        const pool = AddressPool.fromJSON(rec.ipam)
        this.nets.set(rec.id, { rec, pool })
        this.sw.addNetwork(rec.id, { mtu: rec.mtu })
        this.gateway.attach(gatewayNetwork(rec))
        if (rec.driver === 'overlay') {
          if (this.overlay) this.overlay.vxlan.attach(rec.id, rec.vni!, rec.peers ?? [], rec.mtu)
          else this.log.warn('overlay network restored without a VTEP: start the daemon with --advertise-addr', { network: rec.name })
        }
      } catch (e) {
        this.log.error('skipping network record that does not load', { id: rec.id, error: String(e) })
      }
    }
    for (const rec of this.store.list<SandboxRecord>(KIND.sandbox)) this.sandboxes.set(rec.id, rec)
    for (const rec of this.store.list<EndpointRecord>(KIND.endpoint)) {
      if (!this.nets.has(rec.networkId)) {
        this.log.error('skipping endpoint of unknown network', { id: rec.id, network: rec.networkId })
        continue
      }
      this.endpoints.set(rec.id, rec)
      this.register(rec)
      if (rec.lease) continue // lives on a bare port, restored below
      const sb = rec.sandboxId ? this.sandboxes.get(rec.sandboxId) : undefined
      try {
        if (sb && rec.ifname) this.sw.addTapPort(rec.tap, rec.networkId, { persist: true, attachOnly: true, netnsPath: sb.netnsPath, device: rec.ifname })
        else this.sw.addTapPort(rec.tap, rec.networkId, { persist: true })
      } catch (e) {
        this.log.warn('endpoint device did not come back; it stays defined but without a port', { endpoint: rec.name, error: String(e) })
      }
    }
    for (const rec of this.store.list<PortRecord>(KIND.port)) {
      if (!this.nets.has(rec.networkId)) continue
      this.ports.set(rec.name, rec)
      try {
        // Only re-attach: a device that is gone (or was moved by hand) must not be recreated elsewhere.
        if (rec.kind === 'vm') this.sw.addTapPort(rec.name, rec.networkId, { attach: 'packet' })
        else this.sw.addTapPort(rec.name, rec.networkId, { persist: true, attachOnly: true, netnsPath: rec.netnsPath, device: rec.ifname })
      } catch (e) {
        this.log.warn('port device did not come back; remove the port or recreate it', { port: rec.name, error: String(e) })
      }
    }
    this.log.info('state restored', { networks: this.nets.size, endpoints: this.endpoints.size, sandboxes: this.sandboxes.size, ports: this.ports.size })
  }

  // ---- networks ------------------------------------------------------------------------

  createNetwork(req: NetworkCreate): Promise<ReturnType<ControlPlane['networkView']>> {
    return this.serial(() => this.doCreateNetwork(req))
  }

  /** Creates the network `name` unless one of that name exists. */
  ensureNetwork(req: NetworkCreate): Promise<ReturnType<ControlPlane['networkView']>> {
    return this.serial(() => {
      const existing = [...this.nets.values()].find((n) => n.rec.name === req.name)
      return existing ? this.networkView(existing) : this.doCreateNetwork(req)
    })
  }

  private async doCreateNetwork(req: NetworkCreate) {
    if ([...this.nets.values()].some((n) => n.rec.name === req.name)) throw conflict('NAME_TAKEN', `a network named "${req.name}" already exists`)
    if ((req.driver ?? 'bridge') !== 'overlay' || !this.cluster) return this.installNetwork(this.newNetworkRecord(req))
    // Name and VNI are claimed in the cluster; a VNI taken by another host meanwhile means choosing again.
    for (let attempt = 0; ; attempt++) {
      const rec = this.newNetworkRecord(req)
      const claim = await this.cluster.claimNetwork(rec)
      if (claim === 'ok') return this.installNetwork(rec)
      if (claim === 'name') throw conflict('NAME_TAKEN', `a network named "${req.name}" already exists in the cluster`)
      if (req.options?.vni !== undefined) throw conflict('VNI_IN_USE', `VNI ${rec.vni} is already used by another overlay network of the cluster`)
      if (attempt >= 10) throw conflict('VNI_CONTENDED', 'could not claim a VNI in the cluster after 10 attempts; try again')
    }
  }

  /** A new network's record: driver, VNI, MTU, subnet (clear of every network known here and in the cluster) and pool. */
  private newNetworkRecord(req: NetworkCreate): NetworkRecord {
    const driver = req.driver ?? 'bridge'
    let vni: number | undefined
    let peers: string[] | undefined
    if (driver === 'overlay') {
      if (!this.overlay) throw invalid('overlay networks need a VTEP: start the daemon with --advertise-addr IP', 'driver')
      vni = this.chooseVni(req.options?.vni)
      // In a cluster the VTEPs of a network are the hosts with endpoints on it, from the store.
      peers = this.cluster ? [] : parsePeers(req.options?.peers, this.overlay.peers)
    }
    // An overlay frame carries 50 bytes of outer headers: 1450 on a 1500-byte underlay.
    const mtu = req.mtu ?? (driver === 'overlay' ? DEFAULT_MTU - VXLAN_OVERHEAD : DEFAULT_MTU)
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535) throw invalid(`mtu ${mtu} is out of range 576-65535`, 'mtu')
    const known = [...this.nets.values()].map((n) => ({ name: n.rec.name, subnet: n.rec.subnet }))
    if (driver === 'overlay' && this.cluster) known.push(...this.cluster.networks().filter((c) => !this.nets.has(c.id)))
    let subnet = req.subnet
    if (subnet === undefined) {
      if (req.gateway || req.ipRange) throw invalid('gateway and ipRange need an explicit subnet', req.gateway ? 'gateway' : 'ipRange')
      subnet = chooseDefaultSubnet(known.map((k) => parseCidr(k.subnet)), this.hostRoutes())
    } else {
      const c = parseCidrField(subnet, 'subnet')
      const clash = known.find((k) => cidrOverlaps(parseCidr(k.subnet), c))
      if (clash) throw conflict('SUBNET_OVERLAP', `subnet ${subnet} overlaps network "${clash.name}" (${clash.subnet})`)
    }
    const pool = new AddressPool({ subnet, gateway: req.gateway, ipRange: req.ipRange, auxAddresses: req.auxAddresses })
    const rec: NetworkRecord = {
      id: newId(),
      name: req.name,
      driver,
      subnet: pool.subnet,
      gateway: pool.gateway,
      ...(pool.ipRange ? { ipRange: pool.ipRange } : {}),
      auxAddresses: { ...(req.auxAddresses ?? {}) },
      mtu,
      internal: req.internal ?? false,
      labels: { ...(req.labels ?? {}) },
      options: { ...(req.options ?? {}) },
      createdAt: new Date().toISOString(),
      ipam: pool.toJSON(),
      ...(vni !== undefined ? { vni, peers } : {}),
    }
    return rec
  }

  /** Makes a network real here: stored, in the switch, with its gateway and VTEP. */
  private installNetwork(rec: NetworkRecord) {
    const pool = AddressPool.fromJSON(rec.ipam)
    const mtu = rec.mtu
    const vni = rec.vni
    this.store.put(KIND.network, rec.id, rec)
    const st = { rec, pool }
    this.nets.set(rec.id, st)
    this.sw.addNetwork(rec.id, { mtu })
    this.gateway.attach(gatewayNetwork(rec))
    if (vni !== undefined) this.overlay!.vxlan.attach(rec.id, vni, rec.peers ?? [], mtu)
    this.log.info('network created', { network: rec.name, id: rec.id, subnet: rec.subnet })
    return this.networkView(st)
  }

  deleteNetwork(ref: string): Promise<void> {
    return this.serial(async () => {
      const n = this.net(ref)
      const eps = [...this.endpoints.values()].filter((e) => e.networkId === n.rec.id)
      const ports = [...this.ports.values()].filter((p) => p.networkId === n.rec.id)
      if (eps.length || ports.length) {
        const names = [...eps.map((e) => e.name), ...ports.map((p) => p.name)]
        throw conflict('NETWORK_IN_USE', `network "${n.rec.name}" is in use by ${names.join(', ')}; disconnect or remove them first`)
      }
      if (this.isClustered(n)) await this.cluster!.releaseNetwork(n.rec)
      this.dropNetwork(n)
      this.log.info('network removed', { network: n.rec.name })
    })
  }

  /** Removes every network with no endpoints and no ports (except `keep`); returns their names. */
  pruneNetworks(keep: string[] = []): Promise<string[]> {
    return this.serial(async () => {
      const removed: string[] = []
      for (const n of [...this.nets.values()]) {
        if (keep.includes(n.rec.name)) continue
        if ([...this.endpoints.values()].some((e) => e.networkId === n.rec.id)) continue
        if ([...this.ports.values()].some((p) => p.networkId === n.rec.id)) continue
        // An overlay network with endpoints on other hosts is still in use.
        if (this.isClustered(n) && !(await this.cluster!.releaseNetwork(n.rec).then(() => true, () => false))) continue
        this.dropNetwork(n)
        removed.push(n.rec.name)
      }
      return removed
    })
  }

  /** Overlay networks of a cluster: shared through the cluster store. */
  private isClustered(n: NetState): boolean {
    return this.cluster !== undefined && n.rec.driver === 'overlay'
  }

  private dropNetwork(n: NetState): void {
    this.cluster?.networkGone(n.rec.id)
    this.store.delete(KIND.network, n.rec.id)
    this.nets.delete(n.rec.id)
    this.gateway.detach(n.rec.id)
    this.overlay?.vxlan.detach(n.rec.id)
    this.sw.removeNetwork(n.rec.id)
  }

  /** The VNI asked for (option `vni`), or the lowest free one from 4096; unique on this host. */
  private chooseVni(asked: string | undefined): number {
    const used = new Set([...this.nets.values()].map((n) => n.rec.vni).filter((v) => v !== undefined))
    for (const c of this.cluster?.networks() ?? []) used.add(c.vni)
    if (asked !== undefined) {
      const v = Number(asked)
      if (!/^\d+$/.test(asked) || v < 1 || v > VNI_MAX) throw invalid(`vni ${asked} is not a number from 1 to ${VNI_MAX}`, 'options.vni')
      if (used.has(v)) throw conflict('VNI_IN_USE', `VNI ${v} is already used by another overlay network`)
      return v
    }
    for (let v = VNI_MIN; v <= VNI_MAX; v++) if (!used.has(v)) return v
    throw conflict('VNI_EXHAUSTED', 'no VNI is free')
  }

  listNetworks() {
    return [...this.nets.values()].map((n) => this.networkView(n)).sort((a, b) => a.name.localeCompare(b.name))
  }

  inspectNetwork(ref: string) {
    return this.networkView(this.net(ref))
  }

  /** The network's ID for a reference (name, ID, prefix); the switch knows networks by ID. */
  networkId(ref: string): string {
    return this.net(ref).rec.id
  }

  networkRecord(ref: string): NetworkRecord {
    return this.net(ref).rec
  }

  private networkView(n: NetState) {
    const { ipam: _ipam, ...rec } = n.rec
    const endpoints = [...this.endpoints.values()]
      .filter((e) => e.networkId === n.rec.id)
      .map((e) => ({ id: e.id, name: e.name, sandbox: e.sandboxId ? this.sandboxes.get(e.sandboxId)?.name : undefined, mac: e.mac, address: e.address, aliases: e.aliases }))
    const ports = [...this.ports.values()].filter((p) => p.networkId === n.rec.id).map((p) => p.name)
    return { ...rec, endpoints, ports, allocated: n.pool.allocatedCount }
  }

  // ---- bare ports ----------------------------------------------------------------------

  /** Creates a TAP port; with `netnsPath` the device is moved there (renamed `ifname`) and found there again after a restart. */
  addPort(name: string, networkRef: string, place: { netnsPath?: string; ifname?: string; vm?: boolean } = {}) {
    return this.serial(async () => {
      const n = this.net(networkRef)
      if (this.ports.has(name) || this.sw.hasPort(name)) throw conflict('NAME_TAKEN', `a port named "${name}" already exists`)
      if (place.ifname && !place.netnsPath) throw invalid('ifname needs netns', 'ifname')
      if (place.vm && place.netnsPath) throw invalid('a VM port stays in the host namespace, where the hypervisor opens it', 'netns')
      if (place.netnsPath && !netns.netnsExists(place.netnsPath)) throw invalid(`network namespace ${place.netnsPath} does not exist`, 'netns')
      const rec: PortRecord = {
        id: newId(),
        name,
        networkId: n.rec.id,
        ...(place.netnsPath ? { netnsPath: place.netnsPath, ifname: place.ifname ?? name } : {}),
        ...(place.vm ? { kind: 'vm' as const } : {}),
        createdAt: new Date().toISOString(),
      }
      const info = place.vm ? await this.addVmPort(name, n.rec.id) : this.sw.addTapPort(name, n.rec.id, { persist: true })
      try {
        if (rec.netnsPath) await netns.moveLinkBare(name, rec.netnsPath, rec.ifname!)
        this.store.put(KIND.port, rec.name, rec)
      } catch (e) {
        this.sw.removePort(name, true)
        throw e
      }
      this.ports.set(name, rec)
      return { ...info, network: n.rec.name, ...(rec.netnsPath ? { netnsPath: rec.netnsPath, ifname: rec.ifname } : {}) }
    })
  }

  /** A TAP left free for QEMU (`-netdev tap,ifname=NAME`), attached through a packet socket. */
  private async addVmPort(name: string, networkId: string) {
    try {
      this.sw.createFreeTap(name)
    } catch (e) {
      throw new ControlError('conflict', 'DEVICE_EXISTS', `cannot create TAP device ${name}: ${(e as Error).message}`)
    }
    try {
      await netns.linkUp(name)
      return this.sw.addTapPort(name, networkId, { attach: 'packet' })
    } catch (e) {
      await netns.deleteLink(undefined, name).catch(() => undefined)
      throw e
    }
  }

  removePort(name: string) {
    return this.serial(async () => {
      const rec = this.ports.get(name)
      if (!rec) throw notFound('port', name)
      for (const ep of [...this.endpoints.values()].filter((e) => e.lease && e.tap === name)) this.dropLease(ep)
      this.store.delete(KIND.port, name)
      this.ports.delete(name)
      const held = this.sw.hasPort(name)
      if (held) this.sw.removePort(name, true) // a TAP the switch holds goes with its fd
      if (rec.kind === 'vm' || !held) {
        // A hypervisor's TAP, or a device we never got back, is deleted by name where it lives.
        const where = rec.netnsPath && netns.netnsExists(rec.netnsPath) ? rec.netnsPath : undefined
        await netns.deleteLink(where, where ? rec.ifname! : name).catch(() => undefined)
      }
    })
  }

  listPorts(networkRef?: string) {
    const netId = networkRef === undefined ? undefined : this.net(networkRef).rec.id
    return this.sw
      .listPorts(netId)
      .map((p) => ({ ...p, network: this.nets.get(p.network)?.rec.name ?? p.network, kind: this.ports.has(p.name) ? 'port' : 'endpoint' }))
  }

  // ---- sandboxes -----------------------------------------------------------------------

  createSandbox(req: SandboxCreate) {
    return this.serial(async () => {
      if ([...this.sandboxes.values()].some((s) => s.name === req.name)) throw conflict('NAME_TAKEN', `a sandbox named "${req.name}" already exists`)
      let nsPath = req.netnsPath
      const owned = nsPath === undefined
      if (owned) {
        if (netns.netnsExists(netns.netnsPathFor(req.name))) {
          throw conflict('NAME_TAKEN', `a network namespace named "${req.name}" already exists (ip netns list); choose another sandbox name`)
        }
        nsPath = await netns.createNetns(req.name)
      } else if (!netns.netnsExists(nsPath!)) {
        throw invalid(`network namespace ${nsPath} does not exist`, 'netnsPath')
      }
      const rec: SandboxRecord = { id: newId(), name: req.name, netnsPath: nsPath!, owned, createdAt: new Date().toISOString() }
      try {
        this.store.put(KIND.sandbox, rec.id, rec)
      } catch (e) {
        if (owned) await netns.deleteNetns(req.name).catch(() => undefined)
        throw e
      }
      this.sandboxes.set(rec.id, rec)
      this.log.info('sandbox created', { sandbox: rec.name, netns: rec.netnsPath })
      return this.sandboxView(rec)
    })
  }

  deleteSandbox(ref: string) {
    return this.serial(async () => {
      const sb = this.sandbox(ref)
      for (const ep of [...this.endpoints.values()].filter((e) => e.sandboxId === sb.id)) await this.doDeleteEndpoint(ep)
      this.store.delete(KIND.sandbox, sb.id)
      this.sandboxes.delete(sb.id)
      if (sb.owned) await netns.deleteNetns(sb.name).catch((e) => this.log.warn('deleting namespace failed', { sandbox: sb.name, error: String(e) }))
      else await netns.forgetForeign(sb.netnsPath)
      this.log.info('sandbox removed', { sandbox: sb.name })
    })
  }

  listSandboxes() {
    return [...this.sandboxes.values()].map((s) => this.sandboxView(s)).sort((a, b) => a.name.localeCompare(b.name))
  }

  inspectSandbox(ref: string) {
    return this.sandboxView(this.sandbox(ref))
  }

  private sandboxView(s: SandboxRecord) {
    const endpoints = [...this.endpoints.values()]
      .filter((e) => e.sandboxId === s.id)
      .sort((a, b) => (a.ifname ?? '').localeCompare(b.ifname ?? ''))
      .map((e) => ({ id: e.id, name: e.name, network: this.nets.get(e.networkId)?.rec.name, ifname: e.ifname, mac: e.mac, address: e.address, aliases: e.aliases }))
    return { ...s, endpoints }
  }

  // ---- endpoints: connect / disconnect -------------------------------------------------

  /** Creates an endpoint on the network and puts it into the sandbox. */
  connect(networkRef: string, sandboxRef: string, opts: ConnectOptions = {}) {
    return this.serial(async () => {
      const n = this.net(networkRef)
      const sb = this.sandbox(sandboxRef)
      const publish = (opts.publish ?? []).map((p) => {
        try {
          return parsePublish(p)
        } catch (e) {
          throw invalid((e as Error).message, 'publish')
        }
      })
      if (publish.length && n.rec.internal) throw invalid(`network "${n.rec.name}" is internal: nothing can be published from it`, 'publish')
      if ([...this.endpoints.values()].some((e) => e.sandboxId === sb.id && e.networkId === n.rec.id)) {
        throw conflict('ALREADY_CONNECTED', `sandbox "${sb.name}" is already connected to network "${n.rec.name}"`)
      }
      const ep = await this.doCreateEndpoint(n, { ...opts, name: opts.name ?? `${sb.name}-${n.rec.name}` })
      try {
        await this.plugIntoSandbox(ep, n, sb, opts.ifname)
        if (publish.length) {
          ep.publish = publish
          await this.publishAll(ep)
          this.store.put(KIND.endpoint, ep.id, ep)
        }
      } catch (e) {
        await this.doDeleteEndpoint(ep)
        throw e
      }
      return this.endpointView(ep)
    })
  }

  disconnect(networkRef: string, sandboxRef: string) {
    return this.serial(async () => {
      const n = this.net(networkRef)
      const sb = this.sandbox(sandboxRef)
      const ep = [...this.endpoints.values()].find((e) => e.sandboxId === sb.id && e.networkId === n.rec.id)
      if (!ep) throw new ControlError('not_found', 'NOT_CONNECTED', `sandbox "${sb.name}" is not connected to network "${n.rec.name}"`)
      await this.doDeleteEndpoint(ep)
    })
  }

  listEndpoints() {
    return [...this.endpoints.values()].map((e) => this.endpointView(e))
  }

  inspectEndpoint(ref: string) {
    const ep = resolveRef(this.endpoints.values(), ref)
    if (ep === 'ambiguous') throw conflict('AMBIGUOUS', `"${ref}" matches several endpoints; use more of the ID`)
    if (!ep) throw notFound('endpoint', ref)
    return this.endpointView(ep)
  }

  private endpointView(e: EndpointRecord) {
    const port = this.sw.hasPort(e.tap) ? this.sw.port(e.tap) : undefined
    return {
      ...e,
      network: this.nets.get(e.networkId)?.rec.name,
      sandbox: e.sandboxId ? this.sandboxes.get(e.sandboxId)?.name : undefined,
      state: port ? port.state : 'detached',
      counters: port?.counters,
    }
  }

  /** Allocates the address, creates the TAP on the switch, and commits both with the pool. */
  private async doCreateEndpoint(n: NetState, opts: ConnectOptions): Promise<EndpointRecord> {
    if ([...this.endpoints.values()].some((e) => e.name === opts.name)) throw conflict('NAME_TAKEN', `an endpoint named "${opts.name}" already exists`)
    let mac: string
    try {
      mac = macToString(opts.mac ? parseMac(opts.mac) : randomMac())
    } catch (e) {
      throw invalid((e as Error).message, 'mac')
    }
    if (opts.mac && [...this.endpoints.values()].some((e) => e.networkId === n.rec.id && e.mac === mac)) {
      throw conflict('MAC_IN_USE', `MAC ${mac} is already used on network "${n.rec.name}"`)
    }
    if (opts.ip !== undefined) parseIpField(opts.ip, 'ip')
    const id = newId()
    const addr = this.isClustered(n) ? await this.allocateInCluster(n, opts.ip, id) : n.pool.allocate(opts.ip)
    const rec: EndpointRecord = {
      id,
      name: opts.name!,
      networkId: n.rec.id,
      tap: tapNameFor(id),
      mac,
      address: `${addr}/${parseCidr(n.rec.subnet).prefix}`,
      aliases: [...(opts.aliases ?? [])],
      createdAt: new Date().toISOString(),
    }
    const undo = () => {
      n.pool.release(addr)
      if (this.isClustered(n)) this.cluster!.releaseAddress(n.rec.id, addr, id)
    }
    try {
      this.sw.addTapPort(rec.tap, n.rec.id, { persist: true })
    } catch (e) {
      undo()
      throw new ControlError('failed', 'DEVICE_FAILED', `creating TAP device ${rec.tap} failed: ${(e as Error).message}`)
    }
    try {
      this.commitEndpoint(n, rec)
    } catch (e) {
      undo()
      this.sw.removePort(rec.tap, true)
      throw e
    }
    this.endpoints.set(rec.id, rec)
    return rec
  }

  /**
   * An address of a cluster's overlay network: the next free one here (addresses other hosts
   * hold are marked in the pool from the store), claimed in the store by a transaction. A
   * claim lost to another host marks that address and tries the next.
   */
  private async allocateInCluster(n: NetState, wanted: string | undefined, endpointId: string): Promise<string> {
    for (let attempt = 0; attempt < 64; attempt++) {
      const addr = n.pool.allocate(wanted)
      if (await this.cluster!.claimAddress(n.rec.id, addr, endpointId)) return addr
      if (wanted !== undefined) {
        n.pool.release(addr)
        throw conflict('ADDRESS_IN_USE', `address ${wanted} is already used on network "${n.rec.name}" by an endpoint on another host`)
      }
      // Lost the race: the address stays marked here (the store's watch confirms it).
    }
    throw conflict('ADDRESS_CONTENDED', `could not claim an address on network "${n.rec.name}" after 64 attempts; try again`)
  }

  private commitEndpoint(n: NetState, rec: EndpointRecord): void {
    n.rec.ipam = n.pool.toJSON()
    this.store.transaction(() => {
      this.store.put(KIND.endpoint, rec.id, rec)
      this.store.put(KIND.network, n.rec.id, n.rec)
    })
  }

  private async plugIntoSandbox(ep: EndpointRecord, n: NetState, sb: SandboxRecord, wanted?: string): Promise<void> {
    const present = new Set(await netns.listLinks(sb.netnsPath))
    let i = 0
    while (present.has(`eth${i}`)) i++
    const ifname = wanted ?? `eth${i}`
    if (wanted !== undefined && present.has(wanted)) throw conflict('IFNAME_TAKEN', `sandbox "${sb.name}" already has an interface named ${wanted}`)
    await netns.moveLink(ep.tap, sb.netnsPath, { ifname, mac: ep.mac, address: ep.address, mtu: n.rec.mtu })
    ep.sandboxId = sb.id
    ep.ifname = ifname
    this.store.put(KIND.endpoint, ep.id, ep)
    if (!n.rec.internal && !(await netns.defaultRoute(sb.netnsPath))) {
      await netns.setDefaultRoute(sb.netnsPath, n.rec.gateway, ifname)
      if (sb.owned) netns.writeResolvConf(sb.name, this.resolvConf(n.rec))
    } else if (sb.owned && !this.hasOtherEndpoints(sb, ep)) {
      netns.writeResolvConf(sb.name, this.resolvConf(n.rec))
    }
    this.register(ep)
    this.log.info('endpoint connected', { endpoint: ep.name, sandbox: sb.name, network: n.rec.name, ifname, address: ep.address })
  }

  private hasOtherEndpoints(sb: SandboxRecord, ep: EndpointRecord): boolean {
    return [...this.endpoints.values()].some((e) => e.sandboxId === sb.id && e.id !== ep.id)
  }

  /** Removes the device, releases the address, and moves the sandbox's default route if it used this endpoint. */
  private async doDeleteEndpoint(ep: EndpointRecord): Promise<void> {
    const n = this.nets.get(ep.networkId)!
    const sb = ep.sandboxId ? this.sandboxes.get(ep.sandboxId) : undefined
    let hadDefault = false
    if (sb && ep.ifname && netns.netnsExists(sb.netnsPath)) {
      hadDefault = (await netns.defaultRoute(sb.netnsPath).catch(() => undefined))?.dev === ep.ifname
    }
    this.unregister(ep)
    this.gateway.nat.unpublish(ep.id)
    if (this.sw.hasPort(ep.tap)) this.sw.removePort(ep.tap, true)
    // A persistent TAP whose fd we never got back (daemon restarted, device elsewhere) must still go.
    if (sb && ep.ifname && netns.netnsExists(sb.netnsPath) && (await netns.linkExists(sb.netnsPath, ep.ifname))) {
      await netns.deleteLink(sb.netnsPath, ep.ifname).catch(() => undefined)
    }
    this.forgetEndpoint(n, ep)
    if (sb && hadDefault) {
      const next = [...this.endpoints.values()].find((e) => e.sandboxId === sb.id && e.ifname && !this.nets.get(e.networkId)!.rec.internal)
      if (next) {
        const nn = this.nets.get(next.networkId)!.rec
        await netns.setDefaultRoute(sb.netnsPath, nn.gateway, next.ifname!).catch((e) => this.log.warn('moving default route failed', { error: String(e) }))
        if (sb.owned) netns.writeResolvConf(sb.name, this.resolvConf(nn))
      }
    }
    this.log.info('endpoint removed', { endpoint: ep.name })
  }

  // ---- lookups -------------------------------------------------------------------------

  private net(ref: string): NetState {
    const recs = [...this.nets.values()].map((n) => n.rec)
    const r = resolveRef(recs, ref)
    if (r === 'ambiguous') throw conflict('AMBIGUOUS', `"${ref}" matches several networks; use more of the ID`)
    if (!r) throw notFound('network', ref)
    return this.nets.get(r.id)!
  }

  private sandbox(ref: string): SandboxRecord {
    const r = resolveRef(this.sandboxes.values(), ref)
    if (r === 'ambiguous') throw conflict('AMBIGUOUS', `"${ref}" matches several sandboxes; use more of the ID`)
    if (!r) throw notFound('sandbox', ref)
    return r
  }

  // ---- published ports ------------------------------------------------------------------

  /** Listens on every host port the endpoint publishes; all or nothing. */
  private async publishAll(ep: EndpointRecord): Promise<void> {
    try {
      for (const p of ep.publish ?? []) await this.gateway.nat.publish(ep.id, p, () => this.publishTarget(ep.id))
    } catch (e) {
      this.gateway.nat.unpublish(ep.id)
      if (e instanceof PublishError) throw new ControlError(e.code === 'PORT_IN_USE' ? 'conflict' : 'failed', e.code, e.message, 'publish')
      throw e
    }
  }

  private publishTarget(endpointId: string): PublishTarget | undefined {
    const ep = this.endpoints.get(endpointId)
    const port = ep && this.sw.portIndex(ep.tap)
    const network = ep && this.gateway.natNetworkOf(ep.networkId)
    if (!ep || port === undefined || !network) return undefined
    return {
      network,
      port,
      hdr: this.sw.ports.hdr[port],
      sandboxIp: parseIpv4(ep.address.split('/')[0]),
      sandboxMac: parseMac(ep.mac),
    }
  }

  /** The VTEP's address and counters, when this host carries overlay networks. */
  overlayStats() {
    const vx = this.overlay?.vxlan
    return vx ? { overlay: { vtep: vx.bindIp, port: vx.port, ...vx.counters } } : {}
  }

  /** Tracked NAT flows for `nat ls`, with sandbox names where known. */
  natFlows() {
    const bySandboxIp = new Map<string, string>()
    for (const e of this.endpoints.values()) {
      const sb = e.sandboxId ? this.sandboxes.get(e.sandboxId)?.name : e.name
      if (sb) bySandboxIp.set(`${e.networkId}|${parseIpv4(e.address.split('/')[0])}`, sb)
    }
    const now = Date.now()
    return this.gateway.nat.list().map((f) => ({
      proto: f.proto,
      direction: f.direction,
      state: f.state,
      network: this.nets.get(f.network)?.rec.name ?? f.network,
      sandbox: bySandboxIp.get(`${f.network}|${f.sandboxIp}`),
      sandboxAddress: `${formatIPv4(f.sandboxIp)}:${f.sandboxPort}`,
      remoteAddress: `${formatIPv4(f.remoteIp)}:${f.remotePort}`,
      idleSeconds: Math.floor((now - f.lastActive) / 1000),
      bytesIn: f.bytesIn,
      bytesOut: f.bytesOut,
    }))
  }

  /** Restores the host listeners of published ports after a restart. */
  async restorePublished(): Promise<void> {
    for (const ep of this.endpoints.values()) {
      if (!ep.publish?.length) continue
      await this.publishAll(ep).catch((e) => this.log.error('could not publish ports again', { endpoint: ep.name, error: (e as Error).message }))
    }
  }

  // ---- DHCP leases (DhcpLeaseBackend) ---------------------------------------------------

  /** DNS names of an endpoint: its sandbox's name, its aliases, a DHCP client's hostname. */
  private names(ep: EndpointRecord): string[] {
    const sb = ep.sandboxId ? this.sandboxes.get(ep.sandboxId) : undefined
    return [...(sb ? [sb.name] : []), ...ep.aliases, ...(ep.lease?.hostname ? [ep.lease.hostname] : [])]
  }

  private register(ep: EndpointRecord): void {
    if (ep.lease && ep.lease.state !== 'bound') return
    if (!ep.lease && !ep.sandboxId) return
    this.gateway.addEndpoint(ep.networkId, ep.id, ep.address.split('/')[0], this.names(ep))
    if (this.isClustered(this.nets.get(ep.networkId)!)) this.cluster!.announce(ep, this.names(ep))
  }

  private unregister(ep: EndpointRecord): void {
    if (ep.lease && ep.lease.state !== 'bound') return
    if (!ep.lease && !ep.sandboxId) return
    this.gateway.removeEndpoint(ep.networkId, ep.id, ep.address.split('/')[0])
    if (this.isClustered(this.nets.get(ep.networkId)!)) this.cluster!.withdraw(ep)
  }

  private endpointByMac(networkId: string, mac: number): EndpointRecord | undefined {
    const m = macToString(mac)
    return [...this.endpoints.values()].find((e) => e.networkId === networkId && e.mac === m && e.lease?.state !== 'declined')
  }

  offer(networkId: string, mac: number, requested: string | undefined, hostname: string | undefined): { address: string } | { error: string } {
    const n = this.nets.get(networkId)
    if (!n) return { error: 'unknown network' }
    const known = this.endpointByMac(networkId, mac)
    if (known) {
      if (known.lease?.state === 'offered') known.lease.expiresAt = Date.now() + OFFER_MS
      return { address: known.address.split('/')[0] }
    }
    const portName = this.sw.ports.names[this.gateway.dhcpPort]
    if (!portName || !this.ports.has(portName)) return { error: 'DHCP is served on bare ports (switchyard port add); sandboxes get static addresses' }
    let addr: string
    try {
      addr = requested && !n.pool.isAllocated(requested) && !n.pool.isReserved(requested) ? n.pool.allocate(requested) : n.pool.allocate()
    } catch {
      try {
        addr = n.pool.allocate()
      } catch (e) {
        return { error: (e as Error).message }
      }
    }
    const macStr = macToString(mac)
    const rec: EndpointRecord = {
      id: newId(),
      name: `${n.rec.name}-${macStr.replace(/:/g, '')}`,
      networkId,
      tap: portName,
      mac: macStr,
      address: `${addr}/${parseCidr(n.rec.subnet).prefix}`,
      aliases: [],
      lease: { state: 'offered', expiresAt: Date.now() + OFFER_MS, ...(hostname ? { hostname } : {}) },
      createdAt: new Date().toISOString(),
    }
    try {
      this.commitEndpoint(n, rec)
    } catch (e) {
      n.pool.release(addr)
      return { error: (e as Error).message }
    }
    this.endpoints.set(rec.id, rec)
    this.log.info('dhcp offer', { network: n.rec.name, mac: macStr, address: addr, port: portName })
    if (this.isClustered(n)) this.claimOffer(n, rec, addr)
    return { address: addr }
  }

  /**
   * DHCP answers at once, so an offer on a cluster network is claimed in the store behind it;
   * an address another host won meanwhile withdraws the offer, and the client's REQUEST gets a
   * NAK (no endpoint for it) and starts over. Until the claim lands a REQUEST goes unanswered.
   */
  private claimOffer(n: NetState, rec: EndpointRecord, addr: string): void {
    const claim = this.cluster!.claimAddress(n.rec.id, addr, rec.id).then(
      (ok) => ok,
      (e) => {
        this.log.warn('dhcp offer not claimed in the cluster store', { address: addr, error: (e as Error).message })
        return false
      },
    )
    this.pendingClaims.set(rec.id, claim)
    void claim.then((ok) => {
      this.pendingClaims.delete(rec.id)
      if (ok || this.endpoints.get(rec.id) !== rec) return
      this.log.info('dhcp offer withdrawn: another host holds the address', { network: n.rec.name, address: addr })
      this.unregister(rec)
      n.pool.release(addr)
      n.rec.ipam = n.pool.toJSON()
      this.store.transaction(() => {
        this.store.delete(KIND.endpoint, rec.id)
        this.store.put(KIND.network, n.rec.id, n.rec)
      })
      this.endpoints.delete(rec.id)
      // The other host's address: keep it out of the pool here.
      this.markClusterAddress(n.rec.id, addr, true)
    })
  }

  commit(networkId: string, mac: number, address: string, leaseSeconds: number, hostname: string | undefined): boolean | 'pending' {
    const ep = this.endpointByMac(networkId, mac)
    if (!ep || ep.address.split('/')[0] !== address) return false
    if (this.pendingClaims.has(ep.id)) return 'pending'
    if (!ep.lease) return true // a static endpoint asking for its own address
    this.unregister(ep)
    ep.lease = { state: 'bound', expiresAt: Date.now() + leaseSeconds * 1000, ...(hostname ? { hostname } : ep.lease.hostname ? { hostname: ep.lease.hostname } : {}) }
    this.store.put(KIND.endpoint, ep.id, ep)
    this.register(ep)
    return true
  }

  release(networkId: string, mac: number, address: string): void {
    const ep = this.endpointByMac(networkId, mac)
    if (ep?.lease && ep.address.split('/')[0] === address) this.dropLease(ep)
  }

  decline(networkId: string, mac: number, address: string): void {
    const ep = this.endpointByMac(networkId, mac)
    if (!ep?.lease || ep.address.split('/')[0] !== address) return
    // Keep the address allocated, owned by nobody, until it is safe to hand out again.
    this.unregister(ep)
    ep.lease = { state: 'declined', expiresAt: Date.now() + DECLINE_MS }
    ep.name = `declined-${address}-${ep.id.slice(0, 8)}`
    this.store.put(KIND.endpoint, ep.id, ep)
  }

  forgetOffer(networkId: string, mac: number, address: string): void {
    const ep = this.endpointByMac(networkId, mac)
    if (ep?.lease?.state === 'offered' && ep.address.split('/')[0] === address) this.dropLease(ep)
  }

  /** Removes leases past their time (offers not taken, leases not renewed, declines served). */
  expireLeases(now: number): number {
    let n = 0
    for (const ep of [...this.endpoints.values()]) {
      if (ep.lease && ep.lease.expiresAt < now) {
        this.dropLease(ep)
        n++
      }
    }
    return n
  }

  private dropLease(ep: EndpointRecord): void {
    this.unregister(ep)
    this.forgetEndpoint(this.nets.get(ep.networkId)!, ep)
  }

  /** Releases the endpoint's address and deletes its record, in one transaction with the pool. */
  private forgetEndpoint(n: NetState, ep: EndpointRecord): void {
    n.pool.release(ep.address.split('/')[0])
    if (this.isClustered(n)) this.cluster!.releaseAddress(n.rec.id, ep.address.split('/')[0], ep.id)
    n.rec.ipam = n.pool.toJSON()
    this.store.transaction(() => {
      this.store.delete(KIND.endpoint, ep.id)
      this.store.put(KIND.network, n.rec.id, n.rec)
    })
    this.endpoints.delete(ep.id)
  }

  /** Stops the data plane without touching persistent devices: they outlive a restart. */
  shutdown(): void {
    clearInterval(this.leaseSweeper)
    this.gateway.close()
    this.sw.close((name) => !this.ports.has(name) && ![...this.endpoints.values()].some((e) => e.tap === name))
  }

  // ---- cluster (called by the cluster store's agent) ----

  /** This host's overlay networks and their endpoints (with their DNS names), for reconciling with the store. */
  clusterState(): { networks: NetworkRecord[]; endpoints: { ep: EndpointRecord; names: string[]; live: boolean }[] } {
    const networks = [...this.nets.values()].filter((n) => n.rec.driver === 'overlay').map((n) => n.rec)
    const ids = new Set(networks.map((n) => n.id))
    const endpoints = [...this.endpoints.values()]
      .filter((e) => ids.has(e.networkId))
      .map((ep) => ({ ep, names: this.names(ep), live: ep.lease ? ep.lease.state === 'bound' : ep.sandboxId !== undefined }))
    return { networks, endpoints }
  }

  /** An overlay network another host created: it is made here too, so sandboxes here can join it. */
  adoptClusterNetwork(rec: Omit<NetworkRecord, 'ipam' | 'peers'>): Promise<void> {
    return this.serial(() => {
      if (this.nets.has(rec.id)) return
      const clash = [...this.nets.values()].find((n) => n.rec.name === rec.name || (n.rec.vni !== undefined && n.rec.vni === rec.vni))
      if (clash) {
        this.log.error('cluster network not taken up: a local network has its name or VNI', { network: rec.name, vni: rec.vni, local: clash.rec.name })
        return
      }
      const pool = new AddressPool({ subnet: rec.subnet, gateway: rec.gateway, ipRange: rec.ipRange, auxAddresses: rec.auxAddresses })
      this.installNetwork({ ...rec, ipam: pool.toJSON(), peers: [] })
    })
  }

  /** An overlay network deleted from the store (possibly while this host was away): it goes here too, with any endpoints left on it. */
  dropClusterNetwork(id: string, why: string): Promise<void> {
    return this.serial(async () => {
      const n = this.nets.get(id)
      if (!n || n.rec.driver !== 'overlay') return
      for (const ep of [...this.endpoints.values()].filter((e) => e.networkId === id)) await this.doDeleteEndpoint(ep)
      for (const p of [...this.ports.values()].filter((p) => p.networkId === id)) {
        this.store.delete(KIND.port, p.name)
        this.ports.delete(p.name)
        if (this.sw.hasPort(p.name)) this.sw.removePort(p.name, true)
      }
      this.dropNetwork(n)
      this.log.warn('overlay network removed: it is gone from the cluster store', { network: n.rec.name, why })
    })
  }

  /** A local endpoint whose address the store no longer holds (deleted while this host was away). */
  dropClusterEndpoint(id: string, why: string): Promise<void> {
    return this.serial(async () => {
      const ep = this.endpoints.get(id)
      if (!ep) return
      const sb = ep.sandboxId ? this.sandboxes.get(ep.sandboxId) : undefined
      await this.doDeleteEndpoint(ep)
      if (sb && !sb.owned) await this.dropIfEmptyAdopted(sb)
      this.log.warn('endpoint removed: its address is gone from the cluster store', { endpoint: ep.name, why })
    })
  }

  /** Another host took (or gave back) an address of an overlay network: keeps the pool here in step. */
  markClusterAddress(networkId: string, address: string, taken: boolean): void {
    const n = this.nets.get(networkId)
    if (!n) return
    try {
      if (taken && !n.pool.isAllocated(address) && !n.pool.isReserved(address)) n.pool.allocate(address)
      else if (!taken && ![...this.endpoints.values()].some((e) => e.networkId === networkId && e.address.split('/')[0] === address)) n.pool.release(address)
    } catch (e) {
      this.log.warn('cluster address outside the pool ignored', { network: n.rec.name, address, error: (e as Error).message })
    }
  }

  /**
   * Rebuilds an overlay network's pool from the store's allocations (addresses given back while
   * this host was away are free again). Other hosts' addresses are not persisted here: the store
   * holds them, and this runs at every start.
   */
  syncClusterPool(networkId: string, taken: string[]): void {
    const n = this.nets.get(networkId)
    if (!n) return
    const r = n.rec
    n.pool = new AddressPool({ subnet: r.subnet, gateway: r.gateway, ipRange: r.ipRange, auxAddresses: r.auxAddresses })
    for (const e of this.endpoints.values()) if (e.networkId === networkId) this.markClusterAddress(networkId, e.address.split('/')[0], true)
    for (const a of taken) this.markClusterAddress(networkId, a, true)
  }

  // ---- engines (Docker, CNI) ----
  // A container engine owns the namespace, and Docker also moves the device itself: it asks
  // for an endpoint first (a TAP left in the host), moves it into the container after Join,
  // and takes it out again on Leave. A CNI runtime hands over its namespace and lets connect()
  // do the rest (with `ifname`). Sandboxes of engines are adopted: their namespaces are never
  // deleted here, and the record goes when the engine's last endpoint in it does.

  /**
   * Creates an endpoint in no sandbox: its persistent TAP stays in the host namespace, held by
   * the switch, for an engine to move into its own namespace (Docker's CreateEndpoint). An
   * endpoint of that name on that network is returned as it is (a retried call).
   */
  createHostEndpoint(networkRef: string, opts: ConnectOptions & { name: string }) {
    return this.serial(async () => {
      const n = this.net(networkRef)
      const same = [...this.endpoints.values()].find((e) => e.name === opts.name)
      if (same) {
        if (same.networkId !== n.rec.id) throw conflict('NAME_TAKEN', `an endpoint named "${opts.name}" already exists on network "${this.nets.get(same.networkId)?.rec.name}"`)
        return this.endpointView(same)
      }
      return this.endpointView(await this.doCreateEndpoint(n, opts))
    })
  }

  /**
   * The engine moved the endpoint's device into the namespace at `netnsPath` (Docker's Join):
   * the sandbox of that namespace is found, or adopted as `sandboxName`; the endpoint joins it
   * and its names go into DNS. `ifname`, the device's name there once the engine renamed it,
   * lets a restarted daemon find the device again. Calling again completes the record.
   */
  adoptEndpoint(endpointRef: string, place: { netnsPath: string; sandboxName: string; ifname?: string }) {
    return this.serial(() => {
      const ep = this.engineEndpoint(endpointRef)
      if (!netns.netnsExists(place.netnsPath)) throw invalid(`network namespace ${place.netnsPath} does not exist`, 'netnsPath')
      let sb = [...this.sandboxes.values()].find((s) => s.netnsPath === place.netnsPath)
      if (ep.sandboxId && ep.sandboxId !== sb?.id) {
        throw conflict('ALREADY_CONNECTED', `endpoint "${ep.name}" is in sandbox "${this.sandboxes.get(ep.sandboxId)?.name}"; release it first`)
      }
      const created = !sb
      if (!sb) {
        if ([...this.sandboxes.values()].some((s) => s.name === place.sandboxName)) throw conflict('NAME_TAKEN', `a sandbox named "${place.sandboxName}" already exists`)
        sb = { id: newId(), name: place.sandboxName, netnsPath: place.netnsPath, owned: false, createdAt: new Date().toISOString() }
      }
      const next: EndpointRecord = { ...ep, sandboxId: sb.id, ...(place.ifname ? { ifname: place.ifname } : {}) }
      this.store.transaction(() => {
        if (created) this.store.put(KIND.sandbox, sb.id, sb)
        this.store.put(KIND.endpoint, ep.id, next)
      })
      if (created) this.sandboxes.set(sb.id, sb)
      this.unregister(ep)
      Object.assign(ep, next)
      this.register(ep)
      this.log.info('endpoint adopted', { endpoint: ep.name, sandbox: sb.name, netns: sb.netnsPath, ifname: ep.ifname })
      return this.endpointView(ep)
    })
  }

  /**
   * The engine took the endpoint's device out of its sandbox (Docker's Leave): its names leave
   * DNS, its published ports close, and an adopted sandbox left without endpoints is
   * forgotten. The endpoint stays until it is removed. Unknown or sandbox-less: nothing to do.
   */
  releaseEndpoint(endpointRef: string): Promise<void> {
    return this.serial(async () => {
      const ep = this.findEngineEndpoint(endpointRef)
      if (!ep?.sandboxId) return
      const sb = this.sandboxes.get(ep.sandboxId)
      this.unregister(ep)
      this.gateway.nat.unpublish(ep.id)
      const { sandboxId: _s, ifname: _i, publish: _p, ...rest } = ep
      this.store.put(KIND.endpoint, ep.id, rest)
      delete ep.sandboxId
      delete ep.ifname
      delete ep.publish
      if (sb) await this.dropIfEmptyAdopted(sb)
    })
  }

  /**
   * Removes an endpoint by ID or name wherever it is (Docker's DeleteEndpoint, CNI's DEL): the
   * device goes, the address is released, an adopted sandbox left empty is forgotten.
   * Returns false when there is no such endpoint (a repeated call).
   */
  removeEndpoint(endpointRef: string): Promise<boolean> {
    return this.serial(async () => {
      const ep = this.findEngineEndpoint(endpointRef)
      if (!ep) return false
      const sb = ep.sandboxId ? this.sandboxes.get(ep.sandboxId) : undefined
      await this.doDeleteEndpoint(ep)
      // A persistent TAP in the host that the switch no longer held (it was handed back by an engine, or never re-opened).
      if (!sb && (await netns.linkExists(undefined, ep.tap))) await netns.deleteLink(undefined, ep.tap).catch(() => undefined)
      if (sb) await this.dropIfEmptyAdopted(sb)
      return true
    })
  }

  /**
   * Finds the sandbox of the namespace at `netnsPath`, or adopts the namespace as `name` (a CNI
   * runtime's CNI_NETNS). A name taken by another namespace is a NAME_TAKEN conflict.
   */
  adoptSandbox(netnsPath: string, name: string) {
    return this.serial(() => {
      const found = [...this.sandboxes.values()].find((s) => s.netnsPath === netnsPath)
      if (found) return this.sandboxView(found)
      if (!netns.netnsExists(netnsPath)) throw invalid(`network namespace ${netnsPath} does not exist`, 'netnsPath')
      if ([...this.sandboxes.values()].some((s) => s.name === name)) throw conflict('NAME_TAKEN', `a sandbox named "${name}" already exists`)
      const rec: SandboxRecord = { id: newId(), name, netnsPath, owned: false, createdAt: new Date().toISOString() }
      this.store.put(KIND.sandbox, rec.id, rec)
      this.sandboxes.set(rec.id, rec)
      this.log.info('sandbox adopted', { sandbox: name, netns: netnsPath })
      return this.sandboxView(rec)
    })
  }

  /** Forgets an adopted sandbox that has no endpoints left (an engine's failed ADD); true if it went. */
  forgetSandboxIfEmpty(sandboxRef: string): Promise<boolean> {
    return this.serial(async () => {
      const sb = resolveRef(this.sandboxes.values(), sandboxRef)
      if (!sb || sb === 'ambiguous') return false
      return this.dropIfEmptyAdopted(sb)
    })
  }

  /** Publishes host ports into an endpoint, replacing what it published before; all or nothing. */
  publishEndpoint(endpointRef: string, publish: string[]) {
    return this.serial(async () => {
      const ep = this.engineEndpoint(endpointRef)
      const n = this.nets.get(ep.networkId)!
      const specs = publish.map((p) => {
        try {
          return parsePublish(p)
        } catch (e) {
          throw invalid((e as Error).message, 'publish')
        }
      })
      if (specs.length && n.rec.internal) throw invalid(`network "${n.rec.name}" is internal: nothing can be published from it`, 'publish')
      const key = (l: PublishSpec[] | undefined) => (l ?? []).map(formatPublish).sort().join(',')
      if (key(specs) === key(ep.publish)) return this.endpointView(ep)
      const before = ep.publish
      this.gateway.nat.unpublish(ep.id)
      ep.publish = specs
      try {
        await this.publishAll(ep)
        this.store.put(KIND.endpoint, ep.id, ep)
      } catch (e) {
        ep.publish = before
        await this.publishAll(ep).catch(() => undefined)
        throw e
      }
      return this.endpointView(ep)
    })
  }

  /** Closes every host port published into the endpoint; unknown endpoint: nothing to do. */
  unpublishEndpoint(endpointRef: string): Promise<void> {
    return this.serial(() => {
      const ep = this.findEngineEndpoint(endpointRef)
      if (!ep) return
      this.gateway.nat.unpublish(ep.id)
      if (!ep.publish) return
      delete ep.publish
      this.store.put(KIND.endpoint, ep.id, ep)
    })
  }

  /**
   * Opens the endpoint's device again where the engine put it: its sandbox, under `ifname`
   * (found there by the caller, e.g. by MAC). For a device moved while the daemon was down:
   * restore() looked for it where it was last recorded and may have made a new TAP of its
   * name in the host, which goes.
   */
  reattachEndpoint(endpointRef: string, ifname: string) {
    return this.serial(async () => {
      const ep = this.engineEndpoint(endpointRef)
      const sb = ep.sandboxId ? this.sandboxes.get(ep.sandboxId) : undefined
      if (!sb) throw invalid(`endpoint "${ep.name}" is in no sandbox`, 'endpoint')
      const strayInHost = await netns.linkExists(undefined, ep.tap)
      if (this.sw.hasPort(ep.tap)) this.sw.removePort(ep.tap, strayInHost)
      else if (strayInHost) await netns.deleteLink(undefined, ep.tap).catch(() => undefined)
      ep.ifname = ifname
      this.store.put(KIND.endpoint, ep.id, ep)
      this.sw.addTapPort(ep.tap, ep.networkId, { persist: true, attachOnly: true, netnsPath: sb.netnsPath, device: ifname })
      this.log.info('endpoint re-attached', { endpoint: ep.name, sandbox: sb.name, ifname })
      return this.endpointView(ep)
    })
  }

  /**
   * Tells the endpoint's network that its address is at its MAC: a gratuitous ARP, written by
   * the switch to every other port. Neighbours that knew the address at another MAC (the
   * container was restarted, or reloaded, with a new interface) move at once instead of
   * after ARP's timeouts, as the CNI bridge plugin's GARP does. Returns the ports written to.
   */
  announceEndpoint(endpointRef: string): number {
    const ep = this.findEngineEndpoint(endpointRef)
    if (!ep || ep.lease) return 0
    const self = this.sw.portIndex(ep.tap)
    const mac = parseMac(ep.mac)
    const ip = parseIpv4(ep.address.split('/')[0])
    const frames = new Map<number, Uint8Array>()
    let sent = 0
    for (const p of this.sw.listPorts(ep.networkId)) {
      if (p.index === self || p.state !== 'up' || this.sw.ports.fd[p.index] < 0) continue
      const hdr = this.sw.ports.hdr[p.index]
      let frame = frames.get(hdr)
      if (!frame) {
        frame = new Uint8Array(hdr + 14 + ARP_LENGTH) // a zeroed virtio-net header: no offload
        writeEthHeader(frame, hdr, BROADCAST_MAC, mac, EtherType.ARP)
        writeArp(frame, hdr + 14, ArpOp.REQUEST, mac, ip, 0, ip)
        frames.set(hdr, frame)
      }
      if (this.sw.sendFrame(p.index, frame, frame.length)) sent++
    }
    return sent
  }

  private findEngineEndpoint(ref: string): EndpointRecord | undefined {
    return this.endpoints.get(ref) ?? [...this.endpoints.values()].find((e) => e.name === ref)
  }

  private engineEndpoint(ref: string): EndpointRecord {
    const ep = this.findEngineEndpoint(ref)
    if (!ep) throw notFound('endpoint', ref)
    return ep
  }

  private async dropIfEmptyAdopted(sb: SandboxRecord): Promise<boolean> {
    if (sb.owned || !this.sandboxes.has(sb.id) || [...this.endpoints.values()].some((e) => e.sandboxId === sb.id)) return false
    this.store.delete(KIND.sandbox, sb.id)
    this.sandboxes.delete(sb.id)
    await netns.forgetForeign(sb.netnsPath)
    this.log.info('adopted sandbox forgotten', { sandbox: sb.name })
    return true
  }
}

/** Option `peers`: comma-separated VTEP addresses; the daemon's --peer list otherwise. */
function parsePeers(option: string | undefined, defaults: string[]): string[] {
  const list = option === undefined ? defaults : option.split(',').map((p) => p.trim()).filter(Boolean)
  for (const p of list) {
    try {
      parseIPv4(p)
    } catch {
      throw invalid(`peer "${p}" is not an IPv4 address`, 'options.peers')
    }
  }
  return [...new Set(list)]
}

function gatewayNetwork(rec: NetworkRecord) {
  return { id: rec.id, name: rec.name, gateway: rec.gateway, prefix: parseCidr(rec.subnet).prefix, mtu: rec.mtu, internal: rec.internal, options: rec.options }
}

function parseCidrField(s: string, field: string): Cidr {
  try {
    return parseCidr(s)
  } catch (e) {
    throw invalid((e as Error).message, field)
  }
}

function parseIpField(s: string, field: string): string {
  try {
    return formatIPv4(parseIPv4(s))
  } catch (e) {
    throw invalid((e as Error).message, field)
  }
}
