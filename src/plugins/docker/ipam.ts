/**
 * Address pools handed to Docker as a remote IPAM driver. Docker asks for a pool before the
 * network exists (RequestPool), then for the gateway and each container's address
 * (RequestAddress), so a pool here is its own small allocator, persisted with the plugin's
 * records; the Switchyard network created later takes the addresses Docker got from it.
 *
 *   const p = DockerPool.create('10.124.0.0/24')
 *   p.request(undefined, true)   // '10.124.0.1' (the gateway)
 *   p.request()                  // '10.124.0.2'
 *   p.request('10.124.0.9')      // a static address (--ip)
 *   p.release('10.124.0.2')
 */
import { broadcastOf, cidrContains, cidrSize, formatCidr, formatIPv4, parseCidr, parseIPv4, type Cidr } from '../../control/cidr.js'

/** The persisted form of a pool. */
export interface DockerPoolState {
  /** The pool, network/prefix. */
  pool: string
  /** Docker's SubPool (`--ip-range`): where dynamic addresses come from. */
  subPool?: string
  allocated: string[]
  gateway?: string
  /** Next-fit cursor: recently released addresses come back last. */
  next?: string
}

export class PoolError extends Error {}

export class DockerPool {
  private readonly cidr: Cidr
  private readonly range: Cidr
  private readonly used = new Set<number>()
  private gateway?: number
  private next: number

  private constructor(private readonly state: DockerPoolState) {
    this.cidr = parseCidr(state.pool)
    if (formatCidr(this.cidr) !== state.pool) throw new PoolError(`pool ${state.pool} has host bits set; did you mean ${formatCidr(this.cidr)}?`)
    if (this.cidr.prefix > 30) throw new PoolError(`pool ${state.pool} is too small: use a /30 or larger`)
    this.range = state.subPool ? parseCidr(state.subPool) : this.cidr
    if (state.subPool && (!cidrContains(this.cidr, this.range.network) || this.range.prefix < this.cidr.prefix)) {
      throw new PoolError(`sub-pool ${state.subPool} is not inside pool ${state.pool}`)
    }
    for (const a of state.allocated) this.used.add(parseIPv4(a))
    if (state.gateway) this.gateway = parseIPv4(state.gateway)
    this.next = state.next ? parseIPv4(state.next) : this.range.network
  }

  static create(pool: string, subPool?: string): DockerPool {
    return new DockerPool({ pool, ...(subPool ? { subPool } : {}), allocated: [] })
  }

  static fromJSON(state: DockerPoolState): DockerPool {
    return new DockerPool(state)
  }

  get pool(): string {
    return this.state.pool
  }

  get prefix(): number {
    return this.cidr.prefix
  }

  /**
   * Hands out `address` (static) or the next free one; `gateway` asks for the network's
   * gateway: the first host address unless one is named. Asking again for the gateway it
   * already has returns it (Docker retries); any other address in use is refused.
   */
  request(address?: string, gateway = false): string {
    if (address !== undefined) {
      let ip: number
      try {
        ip = parseIPv4(address)
      } catch {
        throw new PoolError(`"${address}" is not an IPv4 address`)
      }
      if (!cidrContains(this.cidr, ip)) throw new PoolError(`address ${address} is not in pool ${this.state.pool}`)
      if (ip === this.cidr.network || ip === broadcastOf(this.cidr)) throw new PoolError(`address ${address} is the network or broadcast address of ${this.state.pool}`)
      if (gateway && this.gateway === ip) return address
      if (this.used.has(ip)) throw new PoolError(`address ${address} is already in use in pool ${this.state.pool}`)
      return this.take(ip, gateway)
    }
    if (gateway) {
      if (this.gateway !== undefined) return formatIPv4(this.gateway)
      const first = this.cidr.network + 1
      if (!this.used.has(first)) return this.take(first, true)
    }
    const lo = this.range.network + 1
    const hi = this.range.network + cidrSize(this.range) - 2
    const span = hi - lo + 1
    const start = Math.min(Math.max(this.next, lo), hi)
    for (let i = 0; i < span; i++) {
      const ip = lo + ((start - lo + i) % span)
      if (ip === this.cidr.network || ip === broadcastOf(this.cidr) || this.used.has(ip)) continue
      this.next = ip + 1 > hi ? lo : ip + 1
      return this.take(ip, gateway)
    }
    throw new PoolError(`no free address left in ${this.state.subPool ? `sub-pool ${this.state.subPool} of ` : ''}pool ${this.state.pool}`)
  }

  /** Gives an address back; one that was not handed out is fine (a retried release). */
  release(address: string): boolean {
    let ip: number
    try {
      ip = parseIPv4(address.split('/')[0])
    } catch {
      return false
    }
    if (ip === this.gateway) this.gateway = undefined
    return this.used.delete(ip)
  }

  isAllocated(address: string): boolean {
    return this.used.has(parseIPv4(address))
  }

  toJSON(): DockerPoolState {
    return {
      pool: this.state.pool,
      ...(this.state.subPool ? { subPool: this.state.subPool } : {}),
      allocated: [...this.used].sort((a, b) => a - b).map(formatIPv4),
      ...(this.gateway !== undefined ? { gateway: formatIPv4(this.gateway) } : {}),
      next: formatIPv4(this.next),
    }
  }

  private take(ip: number, gateway: boolean): string {
    this.used.add(ip)
    if (gateway) this.gateway = ip
    return formatIPv4(ip)
  }
}
