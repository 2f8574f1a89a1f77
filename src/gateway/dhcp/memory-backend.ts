/**
 * An in-memory DhcpLeaseBackend over a plain address list, for tests and demos. Each
 * network gets its own copy of the pool. The daemon uses the control plane's backend,
 * where an endpoint's address is its lease and everything persists.
 *
 *   const backend = new MemoryLeaseBackend(['10.0.0.10', '10.0.0.11'])
 *   const dhcp = new DhcpServer(backend)
 *   backend.lookup('net1', mac)      // { address: '10.0.0.10', committed: true, ... } after an ACK
 */
import type { DhcpLeaseBackend } from './server.js'

/** One client's binding in the memory backend. */
export interface MemoryLease {
  /** The client's address. */
  address: string
  /** True once a REQUEST was ACKed (false while only offered). */
  committed: boolean
  /** Lease end in ms since the epoch (0 while only offered). */
  expiresAt: number
  /** Option 12 as last seen. */
  hostname: string | undefined
}

/** Options of a MemoryLeaseBackend. */
export interface MemoryLeaseBackendInit {
  /** How long a declined address stays out of the pool; default 600 s. */
  declineSeconds?: number
  /** Clock (ms); default Date.now. */
  now?: () => number
}

interface NetworkState {
  byMac: Map<number, MemoryLease>
  /** address -> MAC holding it */
  byAddress: Map<string, number>
  /** address -> ms until which it is declined */
  declined: Map<string, number>
}

/** DhcpLeaseBackend over a fixed address list; leases end only on release or decline (no expiry sweep). */
export class MemoryLeaseBackend implements DhcpLeaseBackend {
  private readonly pool: readonly string[]
  private readonly poolSet: ReadonlySet<string>
  private readonly declineMs: number
  private readonly now: () => number
  private readonly networks = new Map<string, NetworkState>()

  constructor(addresses: readonly string[], init: MemoryLeaseBackendInit = {}) {
    this.pool = [...addresses]
    this.poolSet = new Set(addresses)
    this.declineMs = (init.declineSeconds ?? 600) * 1000
    this.now = init.now ?? Date.now
  }

  /** The client's binding on a network, if any. */
  lookup(networkId: string, mac: number): MemoryLease | undefined {
    return this.networks.get(networkId)?.byMac.get(mac)
  }

  /** True while a DECLINE keeps `address` out of the pool. */
  isDeclined(networkId: string, address: string): boolean {
    const until = this.networks.get(networkId)?.declined.get(address)
    return until !== undefined && until > this.now()
  }

  offer(networkId: string, mac: number, requested: string | undefined, hostname: string | undefined): { address: string } | { error: string } {
    const net = this.state(networkId)
    const known = net.byMac.get(mac)
    if (known) return { address: known.address }
    const address = requested !== undefined && this.isFree(networkId, net, requested)
      ? requested
      : this.pool.find((a) => this.isFree(networkId, net, a))
    if (address === undefined) return { error: `no free address among ${this.pool.length} in the pool` }
    this.bind(net, mac, { address, committed: false, expiresAt: 0, hostname })
    return { address }
  }

  commit(networkId: string, mac: number, address: string, leaseSeconds: number, hostname: string | undefined): boolean {
    const net = this.state(networkId)
    const known = net.byMac.get(mac)
    if (known) {
      if (known.address !== address) return false
    } else if (!this.isFree(networkId, net, address)) {
      return false
    }
    this.bind(net, mac, { address, committed: true, expiresAt: this.now() + leaseSeconds * 1000, hostname: hostname ?? known?.hostname })
    return true
  }

  release(networkId: string, mac: number, address: string): void {
    const net = this.state(networkId)
    if (net.byMac.get(mac)?.address === address) this.unbind(net, mac, address)
  }

  decline(networkId: string, mac: number, address: string): void {
    const net = this.state(networkId)
    // Only the holder may decline; otherwise any client could empty the pool.
    if (net.byMac.get(mac)?.address !== address) return
    this.unbind(net, mac, address)
    net.declined.set(address, this.now() + this.declineMs)
  }

  forgetOffer(networkId: string, mac: number, address: string): void {
    const net = this.state(networkId)
    const lease = net.byMac.get(mac)
    if (lease !== undefined && lease.address === address && !lease.committed) this.unbind(net, mac, address)
  }

  private state(networkId: string): NetworkState {
    let s = this.networks.get(networkId)
    if (s === undefined) {
      s = { byMac: new Map(), byAddress: new Map(), declined: new Map() }
      this.networks.set(networkId, s)
    }
    return s
  }

  private isFree(networkId: string, net: NetworkState, address: string): boolean {
    return this.poolSet.has(address) && !net.byAddress.has(address) && !this.isDeclined(networkId, address)
  }

  private bind(net: NetworkState, mac: number, lease: MemoryLease): void {
    net.byMac.set(mac, lease)
    net.byAddress.set(lease.address, mac)
  }

  private unbind(net: NetworkState, mac: number, address: string): void {
    net.byMac.delete(mac)
    net.byAddress.delete(address)
  }
}
