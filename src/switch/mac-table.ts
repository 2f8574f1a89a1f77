/**
 * The forwarding database (FDB): which port a MAC was last seen on, per network.
 *
 * Entries live in typed arrays indexed by slot; a Map per network takes a MAC number to its
 * slot. Learning a MAC that is already known touches only numbers, so the per-frame path
 * allocates nothing. Each port keeps its entries in a least-recently-seen list, which makes
 * aging and eviction O(1) per entry.
 *
 * Limits protect known hosts from a MAC flood: a port at its own limit learns nothing new
 * (its frames are still forwarded; replies to unknown MACs are flooded), and when the whole
 * table is full the oldest entry of the port holding the most entries goes, as in Open
 * vSwitch. A flooding port therefore only ever displaces its own entries.
 *
 *   const fdb = new MacTable({ capacity: 65536, portLimit: 4096, agingMs: 300_000 })
 *   fdb.learn(net, srcMac, inPort, now)
 *   const out = fdb.lookup(net, dstMac, now)   // -1 when unknown: flood
 */

export interface MacTableOptions {
  /** Most entries in the whole table. */
  capacity?: number
  /** Most entries learned on one port. */
  portLimit?: number
  /** An entry not refreshed for this long is forgotten (802.1D default: 300 s). */
  agingMs?: number
}

export const LEARN_KNOWN = 0
export const LEARN_NEW = 1
export const LEARN_MOVED = 2
export const LEARN_REFUSED = -1

export interface FdbEntry {
  network: number
  mac: number
  port: number
  ageMs: number
  /** Programmed by the control plane (a remote endpoint behind a VTEP): never ages, never moves. */
  static?: boolean
}

const NONE = -1
// Refreshing the LRU position once a second is enough for 300 s aging and keeps the
// per-frame cost of a known source to one compare.
const REFRESH_MS = 1000

export class MacTable {
  readonly capacity: number
  readonly portLimit: number
  agingMs: number

  private size = 0
  private slots = 0
  private mac: Float64Array
  private seen: Float64Array
  private port: Int32Array
  private net: Int32Array
  private prev: Int32Array
  private next: Int32Array
  private pinned: Uint8Array
  private freeHead = NONE

  private portHead = new Int32Array(16).fill(NONE)
  private portTail = new Int32Array(16).fill(NONE)
  private portCount = new Int32Array(16)

  private byNet: (Map<number, number> | undefined)[] = []

  /** Counters for observability: learned, moved, refused (port full), evicted (table full), aged. */
  readonly stats = { learned: 0, moved: 0, refused: 0, evicted: 0, aged: 0 }

  constructor(opts: MacTableOptions = {}) {
    this.capacity = opts.capacity ?? 65536
    this.portLimit = opts.portLimit ?? 4096
    this.agingMs = opts.agingMs ?? 300_000
    if (!(this.capacity >= 1) || !(this.portLimit >= 1)) throw new RangeError('MAC table capacity and port limit must be at least 1')
    const initial = Math.min(this.capacity, 1024)
    this.mac = new Float64Array(initial)
    this.seen = new Float64Array(initial)
    this.port = new Int32Array(initial)
    this.net = new Int32Array(initial)
    this.prev = new Int32Array(initial)
    this.next = new Int32Array(initial)
    this.pinned = new Uint8Array(initial)
  }

  get count(): number {
    return this.size
  }

  countOnPort(port: number): number {
    return port < this.portCount.length ? this.portCount[port] : 0
  }

  /** Learns that `mac` was seen on `port` of network `net`; returns LEARN_*. */
  learn(net: number, mac: number, port: number, now: number): number {
    let map = this.byNet[net]
    if (map === undefined) map = this.byNet[net] = new Map()
    const slot = map.get(mac)
    if (slot !== undefined) {
      if (this.pinned[slot] === 1) return this.port[slot] === port ? LEARN_KNOWN : LEARN_REFUSED
      if (this.port[slot] === port) {
        if (now - this.seen[slot] >= REFRESH_MS) {
          this.seen[slot] = now
          this.unlink(slot)
          this.append(slot)
        }
        return LEARN_KNOWN
      }
      // MAC move: the host is now behind another port.
      if (!this.roomOnPort(port, now)) {
        this.stats.refused++
        return LEARN_REFUSED
      }
      this.unlink(slot)
      this.portCount[this.port[slot]]--
      this.port[slot] = port
      this.seen[slot] = now
      this.ensurePort(port)
      this.append(slot)
      this.portCount[port]++
      this.stats.moved++
      return LEARN_MOVED
    }
    if (!this.roomOnPort(port, now)) {
      this.stats.refused++
      return LEARN_REFUSED
    }
    if (this.size >= this.capacity) this.evictFromFullestPort()
    const s = this.allocSlot()
    this.mac[s] = mac
    this.net[s] = net
    this.port[s] = port
    this.seen[s] = now
    this.ensurePort(port)
    this.append(s)
    this.portCount[port]++
    map.set(mac, s)
    this.size++
    this.stats.learned++
    return LEARN_NEW
  }

  /** The port `mac` was learned on in `net`, or -1 (unknown or aged out). */
  lookup(net: number, mac: number, now: number): number {
    const map = this.byNet[net]
    if (map === undefined) return NONE
    const slot = map.get(mac)
    if (slot === undefined) return NONE
    if (now - this.seen[slot] > this.agingMs && this.pinned[slot] === 0) {
      this.remove(slot)
      this.stats.aged++
      return NONE
    }
    return this.port[slot]
  }

  /**
   * Programs `mac` on `port` as a static entry (the control plane knows where it lives):
   * it does not age, and frames with that source elsewhere do not move it. Replaces a learned entry.
   */
  pin(net: number, mac: number, port: number, now: number): boolean {
    const slot = this.byNet[net]?.get(mac)
    if (slot !== undefined) this.remove(slot)
    if (this.learn(net, mac, port, now) === LEARN_REFUSED) return false
    this.pinned[this.byNet[net]!.get(mac)!] = 1
    return true
  }

  /** Removes a static entry (learned ones stay); returns whether there was one. */
  unpin(net: number, mac: number): boolean {
    const slot = this.byNet[net]?.get(mac)
    if (slot === undefined || this.pinned[slot] === 0) return false
    this.remove(slot)
    return true
  }

  /** Drops every entry older than the aging time; returns how many. */
  age(now: number): number {
    let n = 0
    for (let p = 0; p < this.portHead.length; p++) {
      let s = this.portHead[p]
      while (s !== NONE && now - this.seen[s] > this.agingMs) {
        const nx = this.next[s]
        if (this.pinned[s] === 1) {
          // Back to the tail as fresh, so the walk ends when it meets it again.
          this.seen[s] = now
          this.unlink(s)
          this.append(s)
        } else {
          this.remove(s)
          n++
        }
        s = nx
      }
    }
    this.stats.aged += n
    return n
  }

  /** Forgets what was learned on a port (the port left or went down). */
  flushPort(port: number): number {
    let n = 0
    if (port >= this.portHead.length) return 0
    let s = this.portHead[port]
    while (s !== NONE) {
      const nx = this.next[s]
      this.remove(s)
      n++
      s = nx
    }
    return n
  }

  /** Forgets a network's entries; `keepStatic` leaves the control plane's static ones (a user's flush). */
  flushNetwork(net: number, keepStatic = false): number {
    const map = this.byNet[net]
    if (!map) return 0
    const slots = [...map.values()].filter((s) => !keepStatic || this.pinned[s] === 0)
    for (const s of slots) this.remove(s)
    return slots.length
  }

  flushAll(keepStatic = false): number {
    let n = 0
    for (let net = 0; net < this.byNet.length; net++) n += this.flushNetwork(net, keepStatic)
    return n
  }

  /** A snapshot for the API; allocation is fine here, it is not the frame path. */
  entries(now: number, net?: number): FdbEntry[] {
    const out: FdbEntry[] = []
    for (let n = 0; n < this.byNet.length; n++) {
      if (net !== undefined && n !== net) continue
      const map = this.byNet[n]
      if (!map) continue
      for (const [mac, s] of map) {
        const age = now - this.seen[s]
        if (this.pinned[s] === 1) out.push({ network: n, mac, port: this.port[s], ageMs: 0, static: true })
        else if (age <= this.agingMs) out.push({ network: n, mac, port: this.port[s], ageMs: age })
      }
    }
    return out
  }

  private roomOnPort(port: number, now: number): boolean {
    if (this.countOnPort(port) < this.portLimit) return true
    // The port's oldest entry may have aged out without a sweep yet (static ones go to the back).
    let head = this.portHead[port]
    for (let n = this.portCount[port]; n > 0 && head !== NONE && this.pinned[head] === 1 && now - this.seen[head] > this.agingMs; n--) {
      this.seen[head] = now
      this.unlink(head)
      this.append(head)
      head = this.portHead[port]
    }
    if (head !== NONE && now - this.seen[head] > this.agingMs && this.pinned[head] === 0) {
      this.remove(head)
      this.stats.aged++
      return true
    }
    return false
  }

  private evictFromFullestPort(): void {
    let best = NONE
    let most = 0
    for (let p = 0; p < this.portCount.length; p++) {
      if (this.portCount[p] > most) {
        most = this.portCount[p]
        best = p
      }
    }
    if (best === NONE) return
    this.remove(this.portHead[best])
    this.stats.evicted++
  }

  private remove(s: number): void {
    this.pinned[s] = 0
    this.unlink(s)
    this.portCount[this.port[s]]--
    this.byNet[this.net[s]]!.delete(this.mac[s])
    this.size--
    this.next[s] = this.freeHead
    this.freeHead = s
  }

  private allocSlot(): number {
    if (this.freeHead !== NONE) {
      const s = this.freeHead
      this.freeHead = this.next[s]
      return s
    }
    if (this.slots === this.mac.length) this.grow()
    return this.slots++
  }

  private grow(): void {
    const n = Math.min(this.capacity, this.mac.length * 2)
    const f64 = (a: Float64Array) => {
      const b = new Float64Array(n)
      b.set(a)
      return b
    }
    const i32 = (a: Int32Array) => {
      const b = new Int32Array(n)
      b.set(a)
      return b
    }
    this.mac = f64(this.mac)
    this.seen = f64(this.seen)
    this.port = i32(this.port)
    this.net = i32(this.net)
    this.prev = i32(this.prev)
    this.next = i32(this.next)
    const pinned = new Uint8Array(n)
    pinned.set(this.pinned)
    this.pinned = pinned
  }

  private ensurePort(port: number): void {
    if (port < this.portHead.length) return
    let n = this.portHead.length
    while (n <= port) n *= 2
    const head = new Int32Array(n).fill(NONE)
    head.set(this.portHead)
    const tail = new Int32Array(n).fill(NONE)
    tail.set(this.portTail)
    const count = new Int32Array(n)
    count.set(this.portCount)
    this.portHead = head
    this.portTail = tail
    this.portCount = count
  }

  private append(s: number): void {
    const p = this.port[s]
    const t = this.portTail[p]
    this.prev[s] = t
    this.next[s] = NONE
    if (t === NONE) this.portHead[p] = s
    else this.next[t] = s
    this.portTail[p] = s
  }

  private unlink(s: number): void {
    const p = this.port[s]
    const pv = this.prev[s]
    const nx = this.next[s]
    if (pv === NONE) this.portHead[p] = nx
    else this.next[pv] = nx
    if (nx === NONE) this.portTail[p] = pv
    else this.prev[nx] = pv
  }
}
