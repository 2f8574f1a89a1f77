/**
 * Connection tracking for the flows the switch carries between sandboxes and the host's
 * sockets: a bounded table with a per-sandbox share, per-protocol idle timeouts, counters
 * and a listing for `switchyard nat ls`.
 *
 * Keys are strings built once per flow lookup; this is the NAT path (a socket write per
 * segment follows anyway), not the L2 forwarding loop.
 *
 *   const ct = new ConnTrack({ maxFlows: 65536, maxPerSandbox: 4096 })
 *   const key = flowKey('tcp', net, sandboxIp, sport, remoteIp, dport)
 *   if (!ct.get(key)) ct.add(key, flow)   // false when a limit says no
 */

export type Proto = 'tcp' | 'udp' | 'icmp'

export interface TrackedFlow {
  readonly proto: Proto
  readonly network: string
  readonly sandboxIp: number
  readonly sandboxPort: number
  readonly remoteIp: number
  readonly remotePort: number
  /** 'egress' (the sandbox opened it) or 'published' (a client of a published port did). */
  readonly direction: 'egress' | 'published'
  /** Protocol state for the listing and for choosing the timeout. */
  state: string
  lastActive: number
  bytesIn: number
  bytesOut: number
  /** Idle time after which the flow is closed, given its state. */
  timeoutMs(): number
  /** Tears the flow down (sockets closed, RST sent where it helps). */
  close(reason: string): void
}

export interface ConnTrackOptions {
  /** Most host sockets held at once (flows' own and shared ones): each is a file descriptor. */
  maxSockets?: number
  maxFlows?: number
  maxPerSandbox?: number
  now?: () => number
}

export interface ConnTrackCounters {
  /** New flows refused because the daemon is out of sockets (file descriptors). */
  refusedSockets: number
  created: number
  closed: number
  expired: number
  refusedTableFull: number
  refusedSandboxLimit: number
}

export function flowKey(proto: Proto, network: string, sandboxIp: number, sandboxPort: number, remoteIp: number, remotePort: number): string {
  return `${proto}|${network}|${sandboxIp}|${sandboxPort}|${remoteIp}|${remotePort}`
}

export class ConnTrack {
  readonly maxFlows: number
  readonly maxPerSandbox: number
  readonly maxSockets: number
  /**
   * Descriptors of host sockets held now: two per TCP flow (Node's socket and the addon's
   * duplicate it writes through), one per UDP mapping (shared by its flows).
   */
  sockets = 0
  readonly counters: ConnTrackCounters = { refusedSockets: 0, created: 0, closed: 0, expired: 0, refusedTableFull: 0, refusedSandboxLimit: 0 }
  private readonly flows = new Map<string, TrackedFlow>()
  private readonly perSandbox = new Map<string, number>()
  /** Descriptors held by each flow that has its own socket. */
  private readonly socketFlows = new Map<string, number>()
  private readonly now: () => number
  private readonly sweeper: NodeJS.Timeout

  constructor(opts: ConnTrackOptions = {}) {
    this.maxFlows = opts.maxFlows ?? 65536
    this.maxPerSandbox = opts.maxPerSandbox ?? 4096
    this.maxSockets = opts.maxSockets ?? Infinity
    this.now = opts.now ?? Date.now
    this.sweeper = setInterval(() => this.expire(), 1000)
    this.sweeper.unref()
  }

  get size(): number {
    return this.flows.size
  }

  get(key: string): TrackedFlow | undefined {
    return this.flows.get(key)
  }

  /** Why a new flow of this sandbox would be refused, or undefined when there is room. */
  admit(network: string, sandboxIp: number, needsSocket = false): 'table_full' | 'sandbox_limit' | 'no_socket' | undefined {
    if (needsSocket && this.sockets >= this.maxSockets) {
      this.counters.refusedSockets++
      return 'no_socket'
    }
    if (this.flows.size >= this.maxFlows) {
      this.counters.refusedTableFull++
      return 'table_full'
    }
    if ((this.perSandbox.get(`${network}|${sandboxIp}`) ?? 0) >= this.maxPerSandbox) {
      this.counters.refusedSandboxLimit++
      return 'sandbox_limit'
    }
    return undefined
  }

  /** Adds a flow holding `descriptors` of its own, given back by remove(). */
  add(key: string, flow: TrackedFlow, descriptors = 0): void {
    if (descriptors > 0) {
      this.sockets += descriptors
      this.socketFlows.set(key, descriptors)
    }
    this.flows.set(key, flow)
    const sk = `${flow.network}|${flow.sandboxIp}`
    this.perSandbox.set(sk, (this.perSandbox.get(sk) ?? 0) + 1)
    this.counters.created++
  }

  /** A socket that several flows share (a UDP mapping) was opened: counted once, not per flow. */
  holdSocket(): void {
    this.sockets++
  }

  /** That shared socket was closed. */
  releaseSocket(): void {
    this.sockets--
  }

  /** Forgets a flow (its owner closed it). Idempotent. */
  remove(key: string): void {
    const f = this.flows.get(key)
    if (!f) return
    this.flows.delete(key)
    const held = this.socketFlows.get(key)
    if (held !== undefined) {
      this.sockets -= held
      this.socketFlows.delete(key)
    }
    const sk = `${f.network}|${f.sandboxIp}`
    const n = (this.perSandbox.get(sk) ?? 1) - 1
    if (n > 0) this.perSandbox.set(sk, n)
    else this.perSandbox.delete(sk)
    this.counters.closed++
  }

  list(): TrackedFlow[] {
    return [...this.flows.values()]
  }

  /** Closes flows idle past their timeout. */
  expire(now = this.now()): number {
    let n = 0
    for (const f of [...this.flows.values()]) {
      if (now - f.lastActive > f.timeoutMs()) {
        f.close('timeout')
        n++
      }
    }
    this.counters.expired += n
    return n
  }

  close(): void {
    clearInterval(this.sweeper)
    for (const f of [...this.flows.values()]) f.close('shutdown')
  }
}
