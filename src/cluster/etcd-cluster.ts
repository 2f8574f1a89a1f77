/**
 * This host's membership of a cluster kept in etcd (client: `etcd3`, gRPC): it registers the
 * host and its overlay endpoints under a lease, claims names, VNIs and addresses with
 * transactions, and watches the store to program what lives elsewhere. Records are protobuf
 * (proto/cluster.proto); keys are in records.ts.
 *
 * A host that dies stops renewing its lease: etcd deletes its host and endpoint records when
 * the TTL runs out, and every other host's watch unprograms them. Address allocations are not
 * leased: a host that comes back finds its addresses still its own.
 *
 *   const cluster = new EtcdCluster({ url: 'etcd://10.0.0.1:2379', hostId, vtep, vxlanPort, ttlSeconds: 10, log })
 *   const cp = new ControlPlane({ ..., cluster })
 *   await cp.restore()
 *   await cluster.start(cp, new RemoteEndpoints({ sw, vxlan, gateway: cp.gateway, log }))
 */
import { Etcd3, type Lease, type Watcher } from 'etcd3'
import type { ControlPlane } from '../control/control-plane.js'
import { ControlError, conflict } from '../control/errors.js'
import type { EndpointRecord, NetworkRecord } from '../control/model.js'
import type { Logger } from '../util/log.js'
import type { ClusterLink, ClusterNetworkSummary, NetworkClaim } from './link.js'
import {
  PREFIX,
  RecordError,
  decodeAllocation,
  decodeEndpoint,
  decodeNetwork,
  encodeAllocation,
  encodeEndpoint,
  encodeHost,
  encodeNetwork,
  keys,
  parseKey,
  type EndpointRec,
  type NetworkRec,
} from './records.js'
import type { RemoteEndpoints } from './remote-endpoints.js'

export interface EtcdClusterOptions {
  /** `etcd://HOST:PORT[,HOST:PORT...]`. */
  url: string
  hostId: string
  /** This host's VTEP address (--advertise-addr). */
  vtep: string
  vxlanPort: number
  /** How long after its last renewal a silent host is dropped from the cluster. */
  ttlSeconds: number
  log: Logger
}

export class ClusterStoreError extends Error {
  override name = 'ClusterStoreError'
}

/** `etcd://a:2379,b:2379` -> the client's endpoint list. */
export function parseClusterUrl(url: string): string[] {
  const m = /^etcd:\/\/(.+)$/.exec(url)
  if (!m) throw new ClusterStoreError(`--cluster-store takes etcd://HOST:PORT[,HOST:PORT], got "${url}"`)
  return m[1].split(',').map((hp) => {
    if (!/^[A-Za-z0-9.-]+:\d{1,5}$/.test(hp)) throw new ClusterStoreError(`cluster store endpoint "${hp}" is not HOST:PORT`)
    return `http://${hp}`
  })
}

export class EtcdCluster implements ClusterLink {
  readonly counters = { corruptRecords: 0, leaseLost: 0, storeErrors: 0, events: 0 }
  private readonly client: Etcd3
  private readonly log: Logger
  private lease?: Lease
  private watcher?: Watcher
  private cp?: ControlPlane
  private remote?: RemoteEndpoints
  private closed = false
  /** Overlay networks of the store, by ID. */
  private readonly nets = new Map<string, NetworkRec>()
  /** Endpoint records of this host, re-put whenever a new lease is granted. */
  private readonly own = new Map<string, Buffer>()
  /** Remote endpoints whose network is not (yet) here. */
  private readonly pending = new Map<string, EndpointRec>()
  /** Store writes of this host, in order. */
  private writes: Promise<unknown> = Promise.resolve()
  /** Watch events, applied one at a time. */
  private events: Promise<unknown> = Promise.resolve()

  constructor(private readonly opts: EtcdClusterOptions) {
    this.client = new Etcd3({ hosts: parseClusterUrl(opts.url), dialTimeout: 3000 })
    this.log = opts.log.child({ component: 'cluster' })
  }

  // ---- start-up ------------------------------------------------------------------------

  /**
   * Joins: registers the host, reconciles this host's overlay state with the store (the store
   * wins: what was deleted while this host was away goes here too), programs the remote
   * endpoints, and watches for changes.
   */
  async start(cp: ControlPlane, remote: RemoteEndpoints): Promise<void> {
    this.cp = cp
    this.remote = remote
    let snapshot
    try {
      await this.grantLease()
      snapshot = await this.client.getAll().prefix(PREFIX).exec()
    } catch (e) {
      throw new ClusterStoreError(`cannot reach the cluster store ${this.opts.url}: ${(e as Error).message}`)
    }
    const allocations = new Map<string, { networkId: string; address: string; endpointId: string; host: string }>()
    const endpoints: EndpointRec[] = []
    for (const kv of snapshot.kvs) {
      const key = kv.key.toString()
      const k = parseKey(key)
      if (!k) continue
      this.decoded(key, () => {
        if (k.kind === 'networks') this.nets.set(k.parts[0], decodeNetwork(kv.value))
        else if (k.kind === 'ipam' && k.parts.length === 2) allocations.set(key, { networkId: k.parts[0], address: k.parts[1], ...decodeAllocation(kv.value) })
        else if (k.kind === 'endpoints') endpoints.push(decodeEndpoint(kv.value))
      })
    }
    const local = cp.clusterState()
    for (const n of local.networks) if (!this.nets.has(n.id)) await cp.dropClusterNetwork(n.id, 'deleted from the cluster store while this host was away')
    for (const n of this.nets.values()) await cp.adoptClusterNetwork(toNetworkRecord(n))
    const localIds = new Set<string>()
    for (const { ep } of local.endpoints) {
      const a = allocations.get(keys.ipam(ep.networkId, ep.address.split('/')[0]))
      if (!this.nets.has(ep.networkId)) continue
      if (a?.endpointId !== ep.id) await cp.dropClusterEndpoint(ep.id, 'its address was released in the cluster store while this host was away')
      else localIds.add(ep.id)
    }
    // Addresses this host held for endpoints it no longer has (released while the store was away).
    for (const [key, a] of allocations) {
      if (a.host === this.opts.hostId && !localIds.has(a.endpointId)) {
        await this.client.delete().key(key).exec().catch((e) => this.storeError('releasing a stale address', e))
        allocations.delete(key)
      }
    }
    for (const id of this.nets.keys()) {
      cp.syncClusterPool(id, [...allocations.values()].filter((a) => a.networkId === id).map((a) => a.address))
    }
    // Announced during restore(), before reconciling: start again from what survived it.
    this.own.clear()
    for (const { ep, names, live } of cp.clusterState().endpoints) if (live) this.announce(ep, names)
    for (const ep of endpoints) if (ep.host !== this.opts.hostId) this.remoteUp(ep)
    await this.writes
    this.watcher = await this.client
      .watch()
      .prefix(PREFIX)
      .withPreviousKV()
      .startRevision(String(Number(snapshot.header.revision) + 1))
      .create()
    this.watcher.on('put', (kv) => this.enqueue(() => this.onPut(kv.key.toString(), kv.value)))
    this.watcher.on('delete', (kv, prev) => this.enqueue(() => this.onDelete(kv.key.toString(), prev?.value)))
    this.watcher.on('disconnected', () => this.log.warn('cluster store watch disconnected; reconnecting'))
    this.watcher.on('connected', () => this.log.info('cluster store watch connected'))
    this.watcher.on('error', (e) => this.storeError('watch', e))
    this.log.info('joined the cluster', { store: this.opts.url, host: this.opts.hostId, vtep: this.opts.vtep, networks: this.nets.size, remoteEndpoints: remote.size })
  }

  /** A lease for this host's records; when it is lost (store unreachable past the TTL) a new one is granted and everything put again. */
  private async grantLease(): Promise<void> {
    const lease = this.client.lease(this.opts.ttlSeconds)
    this.lease = lease
    lease.on('lost', (err) => {
      if (this.closed || this.lease !== lease) return
      this.counters.leaseLost++
      this.log.warn('cluster lease lost; registering again', { error: err.message })
      const retry = () => {
        if (this.closed) return
        this.grantLease().catch((e) => {
          this.storeError('re-registering', e)
          setTimeout(retry, 1000).unref()
        })
      }
      retry()
    })
    await lease.grant()
    await lease.put(keys.host(this.opts.hostId)).value(encodeHost({ id: this.opts.hostId, vtep: this.opts.vtep, vxlanPort: this.opts.vxlanPort, startedAtMs: Date.now() }))
    // At start-up the endpoints are announced after reconciling, not before.
    if (this.watcher) for (const [key, value] of this.own) await lease.put(key).value(value)
  }

  // ---- ClusterLink ---------------------------------------------------------------------

  networks(): ClusterNetworkSummary[] {
    return [...this.nets.values()].map((n) => ({ id: n.id, name: n.name, subnet: n.subnet, vni: n.vni }))
  }

  async claimNetwork(rec: NetworkRecord): Promise<NetworkClaim> {
    const n = fromNetworkRecord(rec, this.opts.hostId)
    const res = await this.call('creating the network', () =>
      this.client
        .if(keys.name(n.name), 'Create', '==', 0)
        .and(keys.vni(n.vni), 'Create', '==', 0)
        .then(this.client.put(keys.network(n.id)).value(encodeNetwork(n)), this.client.put(keys.name(n.name)).value(n.id), this.client.put(keys.vni(n.vni)).value(n.id))
        .commit(),
    )
    if (res.succeeded) {
      this.nets.set(n.id, n)
      return 'ok'
    }
    // Lost to another host: refresh what the store holds so the next choice avoids it.
    const taken = await this.call('reading networks', () => this.client.getAll().prefix(`${PREFIX}networks/`).buffers())
    for (const [key, value] of Object.entries(taken)) this.decoded(key, () => this.nets.set(key.split('/').pop()!, decodeNetwork(value)))
    return (await this.call('reading names', () => this.client.get(keys.name(n.name)).exists())) ? 'name' : 'vni'
  }

  async releaseNetwork(rec: NetworkRecord): Promise<void> {
    const held = await this.call('reading addresses', () => this.client.getAll().prefix(keys.ipamPrefix(rec.id)).count())
    if (held > 0) throw conflict('NETWORK_IN_USE', `network "${rec.name}" has ${held} endpoint(s) in the cluster; remove them on their hosts first`)
    await this.call('deleting the network', () =>
      this.client
        .if(keys.name(rec.name), 'Value', '==', rec.id)
        .and(keys.vni(rec.vni!), 'Value', '==', rec.id)
        .then(this.client.delete().key(keys.network(rec.id)), this.client.delete().key(keys.name(rec.name)), this.client.delete().key(keys.vni(rec.vni!)))
        .else(this.client.delete().key(keys.network(rec.id)))
        .commit(),
    )
    this.nets.delete(rec.id)
  }

  networkGone(networkId: string): void {
    this.remote?.networkGone(networkId)
    for (const [id, ep] of this.pending) if (ep.networkId === networkId) this.pending.delete(id)
  }

  async claimAddress(networkId: string, address: string, endpointId: string): Promise<boolean> {
    const key = keys.ipam(networkId, address)
    const res = await this.call('claiming an address', () =>
      this.client
        .if(key, 'Create', '==', 0)
        .then(this.client.put(key).value(encodeAllocation({ endpointId, host: this.opts.hostId })))
        .commit(),
    )
    return res.succeeded
  }

  releaseAddress(networkId: string, address: string, endpointId: string): void {
    const key = keys.ipam(networkId, address)
    // Only if it is still this endpoint's: a stale release must not free another's address.
    this.write('releasing an address', () =>
      this.client
        .if(key, 'Value', '==', encodeAllocation({ endpointId, host: this.opts.hostId }))
        .then(this.client.delete().key(key))
        .commit(),
    )
  }

  announce(ep: EndpointRecord, names: string[]): void {
    const key = keys.endpoint(ep.networkId, ep.id)
    const value = encodeEndpoint({ id: ep.id, networkId: ep.networkId, name: ep.name, mac: ep.mac, address: ep.address, names, host: this.opts.hostId, vtep: this.opts.vtep })
    this.own.set(key, value)
    const lease = this.lease
    if (lease && this.cp) this.write('announcing an endpoint', () => lease.put(key).value(value).exec())
  }

  withdraw(ep: EndpointRecord): void {
    const key = keys.endpoint(ep.networkId, ep.id)
    if (!this.own.delete(key)) return
    this.write('withdrawing an endpoint', () => this.client.delete().key(key).exec())
  }

  // ---- watch ---------------------------------------------------------------------------

  private enqueue(fn: () => Promise<void> | void): void {
    this.counters.events++
    this.events = this.events.then(fn).catch((e) => this.log.error('applying a cluster store change failed', { error: String(e) }))
  }

  private async onPut(key: string, value: Buffer): Promise<void> {
    const k = parseKey(key)
    if (!k || !this.cp) return
    if (k.kind === 'networks') {
      const n = this.decoded(key, () => decodeNetwork(value))
      if (!n) return
      this.nets.set(n.id, n)
      await this.cp.adoptClusterNetwork(toNetworkRecord(n))
      for (const ep of [...this.pending.values()]) if (ep.networkId === n.id) this.remoteUp(ep)
    } else if (k.kind === 'ipam' && k.parts.length === 2) {
      const a = this.decoded(key, () => decodeAllocation(value))
      if (a && a.host !== this.opts.hostId) this.cp.markClusterAddress(k.parts[0], k.parts[1], true)
    } else if (k.kind === 'endpoints') {
      const ep = this.decoded(key, () => decodeEndpoint(value))
      if (ep && ep.host !== this.opts.hostId) this.remoteUp(ep)
    }
  }

  private async onDelete(key: string, previous: Buffer | undefined): Promise<void> {
    const k = parseKey(key)
    if (!k || !this.cp) return
    if (k.kind === 'networks') {
      this.nets.delete(k.parts[0])
      await this.cp.dropClusterNetwork(k.parts[0], 'deleted in the cluster store')
    } else if (k.kind === 'ipam' && k.parts.length === 2) {
      const a = previous && this.decoded(key, () => decodeAllocation(previous))
      if (!a || a.host !== this.opts.hostId) this.cp.markClusterAddress(k.parts[0], k.parts[1], false)
    } else if (k.kind === 'endpoints' && k.parts.length === 2) {
      this.pending.delete(k.parts[1])
      this.remote?.down(k.parts[1])
    }
  }

  private remoteUp(ep: EndpointRec): void {
    if (this.remote?.up(ep)) this.pending.delete(ep.id)
    else this.pending.set(ep.id, ep)
  }

  // ---- helpers ---------------------------------------------------------------------------

  /** Decodes a record; a corrupt one is logged, counted and skipped. */
  private decoded<T>(key: string, fn: () => T): T | undefined {
    try {
      return fn()
    } catch (e) {
      if (!(e instanceof RecordError)) throw e
      this.counters.corruptRecords++
      this.log.warn('skipping a corrupt record in the cluster store', { key, error: e.message })
      return undefined
    }
  }

  /** A store call the user waits for: failure is a clear error naming the store. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (e) {
      if (e instanceof ControlError) throw e
      this.counters.storeErrors++
      throw new ControlError('failed', 'CLUSTER_STORE_UNAVAILABLE', `${what} in the cluster store ${this.opts.url} failed: ${(e as Error).message}`)
    }
  }

  /** A store write in the background, in order with the others. */
  private write(what: string, fn: () => Promise<unknown>): void {
    this.writes = this.writes.then(fn).catch((e) => this.storeError(what, e))
  }

  private storeError(what: string, e: unknown): void {
    this.counters.storeErrors++
    this.log.warn(`cluster store: ${what} failed`, { error: (e as Error).message })
  }

  stats() {
    return { store: this.opts.url, host: this.opts.hostId, vtep: this.opts.vtep, networks: this.nets.size, remoteEndpoints: this.remote?.size ?? 0, pendingEndpoints: this.pending.size, ...this.counters }
  }

  /** Leaves the cluster: the lease is revoked, so this host's endpoints vanish from the others at once. */
  async close(): Promise<void> {
    this.closed = true
    await this.writes
    await this.watcher?.cancel().catch(() => undefined)
    await this.lease?.revoke().catch(() => undefined)
    this.client.close()
  }
}

function toNetworkRecord(n: NetworkRec): Omit<NetworkRecord, 'ipam' | 'peers'> {
  return {
    id: n.id,
    name: n.name,
    driver: 'overlay',
    subnet: n.subnet,
    gateway: n.gateway,
    ...(n.ipRange ? { ipRange: n.ipRange } : {}),
    auxAddresses: n.auxAddresses,
    mtu: n.mtu,
    internal: n.internal,
    labels: n.labels,
    options: n.options,
    createdAt: n.createdAt,
    vni: n.vni,
  }
}

function fromNetworkRecord(r: NetworkRecord, origin: string): NetworkRec {
  return {
    id: r.id,
    name: r.name,
    vni: r.vni!,
    subnet: r.subnet,
    gateway: r.gateway,
    ipRange: r.ipRange ?? '',
    auxAddresses: r.auxAddresses,
    mtu: r.mtu,
    internal: r.internal,
    labels: r.labels,
    options: r.options,
    createdAt: r.createdAt,
    origin,
  }
}
