/**
 * The forwarding database (FDB): which port a MAC was last seen on, per network.
 *
 * Entries live in typed arrays indexed by slot, found through an open-addressing hash index
 * (linear probing) keyed by the network and the MAC's two 24-bit halves. Every key part is a
 * small integer, so the per-frame path allocates nothing: a MAC as one 48-bit number is a
 * double, and a double passed to a call or used as a Map key is boxed on the heap. The time
 * comes from `clock` for the same reason. Each port keeps its entries in a least-recently-seen
 * list, which makes aging and eviction O(1) per entry.
 *
 * Limits protect known hosts from a MAC flood: a port at its own limit learns nothing new
 * (its frames are still forwarded; replies to unknown MACs are flooded), and when the whole
 * table is full the oldest entry of the port holding the most entries goes, as in Open
 * vSwitch. A flooding port therefore only ever displaces its own entries.
 *
 *   const fdb = new MacTable({ capacity: 65536, portLimit: 4096, agingMs: 300_000, clock: batchClock })
 *   // the pollers stamp batchClock before each batch
 *   fdb.learnFrom(net, frame, eth + 6, inPort) // the source MAC, read in place
 *   const out = fdb.lookupFrom(net, frame, eth) // -1 when unknown: flood
 *   fdb.lookup(net, 0x0242ac110002, now)       // the same with a MAC number, off the frame path
 */

export interface MacTableOptions {
  /** Most entries in the whole table. */
  capacity?: number
  /** Most entries learned on one port. */
  portLimit?: number
  /** An entry not refreshed for this long is forgotten (802.1D default: 300 s). */
  agingMs?: number
  /**
   * The cell holding the current time in ms (default: a cell of its own). The switch passes
   * the pollers' batch clock, which they stamp before every batch.
   */
  clock?: Float64Array
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

  /** The current time in ms: learnFrom/lookupFrom read it, learn/lookup/pin set it. */
  readonly clock: Float64Array

  private size = 0
  private slots = 0
  /** The MAC's first and last three octets; a free slot has net -1. */
  private macHi: Int32Array
  private macLo: Int32Array
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

  /** Hash index: slot + 1, 0 for empty; length a power of two, at most half full. */
  private index: Int32Array
  private mask: number

  /** Counters for observability: learned, moved, refused (port full), evicted (table full), aged. */
  readonly stats = { learned: 0, moved: 0, refused: 0, evicted: 0, aged: 0 }

  constructor(opts: MacTableOptions = {}) {
    this.capacity = opts.capacity ?? 65536
    this.portLimit = opts.portLimit ?? 4096
    this.agingMs = opts.agingMs ?? 300_000
    this.clock = opts.clock ?? new Float64Array(1)
    if (!(this.capacity >= 1) || !(this.portLimit >= 1)) throw new RangeError('MAC table capacity and port limit must be at least 1')
    const initial = Math.min(this.capacity, 1024)
    this.macHi = new Int32Array(initial)
    this.macLo = new Int32Array(initial)
    this.seen = new Float64Array(initial)
    this.port = new Int32Array(initial)
    this.net = new Int32Array(initial)
    this.prev = new Int32Array(initial)
    this.next = new Int32Array(initial)
    this.pinned = new Uint8Array(initial)
    let buckets = 16
    while (buckets < initial * 2) buckets *= 2
    this.index = new Int32Array(buckets)
    this.mask = buckets - 1
  }

  get count(): number {
    return this.size
  }

  countOnPort(port: number): number {
    return port < this.portCount.length ? this.portCount[port] : 0
  }

  /** Learns that `mac` was seen on `port` of network `net` at `now`; returns LEARN_*. */
  learn(net: number, mac: number, port: number, now: number): number {
    this.clock[0] = now
    return this.learnKey(net, macHigh(mac), macLow(mac), port)
  }

  /** The port `mac` was learned on in `net`, or -1 (unknown or aged out at `now`). */
  lookup(net: number, mac: number, now: number): number {
    this.clock[0] = now
    return this.lookupKey(net, macHigh(mac), macLow(mac))
  }

  /** `learn` for the MAC at buf[off, off + 6), at the time in `clock`. */
  learnFrom(net: number, buf: Uint8Array, off: number, port: number): number {
    return this.learnKey(net, macHalfAt(buf, off), macHalfAt(buf, off + 3), port)
  }

  /** `lookup` for the MAC at buf[off, off + 6), at the time in `clock`. */
  lookupFrom(net: number, buf: Uint8Array, off: number): number {
    return this.lookupKey(net, macHalfAt(buf, off), macHalfAt(buf, off + 3))
  }

  private learnKey(net: number, hi: number, lo: number, port: number): number {
    const now = this.clock[0]
    const slot = this.find(net, hi, lo)
    if (slot !== NONE) {
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
    this.macHi[s] = hi
    this.macLo[s] = lo
    this.net[s] = net
    this.port[s] = port
    this.seen[s] = now
    this.ensurePort(port)
    this.append(s)
    this.portCount[port]++
    this.size++
    if (this.size * 2 > this.index.length) this.rehash(this.index.length * 2)
    else this.insert(s)
    this.stats.learned++
    return LEARN_NEW
  }

  private lookupKey(net: number, hi: number, lo: number): number {
    const slot = this.find(net, hi, lo)
    if (slot === NONE) return NONE
    if (this.clock[0] - this.seen[slot] > this.agingMs && this.pinned[slot] === 0) {
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
    const hi = macHigh(mac)
    const lo = macLow(mac)
    const slot = this.find(net, hi, lo)
    if (slot !== NONE) this.remove(slot)
    this.clock[0] = now
    if (this.learnKey(net, hi, lo, port) === LEARN_REFUSED) return false
    this.pinned[this.find(net, hi, lo)] = 1
    return true
  }

  /** Removes a static entry (learned ones stay); returns whether there was one. */
  unpin(net: number, mac: number): boolean {
    const slot = this.find(net, macHigh(mac), macLow(mac))
    if (slot === NONE || this.pinned[slot] === 0) return false
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
    return this.flushWhere(net, keepStatic)
  }

  flushAll(keepStatic = false): number {
    return this.flushWhere(NONE, keepStatic)
  }

  /** A snapshot for the API, oldest slot first; allocation is fine here, it is not the frame path. */
  entries(now: number, net?: number): FdbEntry[] {
    const out: FdbEntry[] = []
    for (let s = 0; s < this.slots; s++) {
      const n = this.net[s]
      if (n === NONE || (net !== undefined && n !== net)) continue
      const mac = this.macHi[s] * MAC_HALF + this.macLo[s]
      const age = now - this.seen[s]
      if (this.pinned[s] === 1) out.push({ network: n, mac, port: this.port[s], ageMs: 0, static: true })
      else if (age <= this.agingMs) out.push({ network: n, mac, port: this.port[s], ageMs: age })
    }
    return out
  }

  /** Removes the entries of network `net` (NONE: of all), static ones too unless `keepStatic`. */
  private flushWhere(net: number, keepStatic: boolean): number {
    let n = 0
    for (let s = 0; s < this.slots; s++) {
      const sn = this.net[s]
      if (sn === NONE || (net !== NONE && sn !== net) || (keepStatic && this.pinned[s] === 1)) continue
      this.remove(s)
      n++
    }
    return n
  }

  /** The slot holding (net, hi, lo), or NONE. */
  private find(net: number, hi: number, lo: number): number {
    const index = this.index
    const mask = this.mask
    for (let i = hashKey(net, hi, lo) & mask; ; i = (i + 1) & mask) {
      const e = index[i]
      if (e === 0) return NONE
      const s = e - 1
      if (this.macLo[s] === lo && this.macHi[s] === hi && this.net[s] === net) return s
    }
  }

  private insert(s: number): void {
    const index = this.index
    const mask = this.mask
    let i = hashKey(this.net[s], this.macHi[s], this.macLo[s]) & mask
    while (index[i] !== 0) i = (i + 1) & mask
    index[i] = s + 1
  }

  /** Takes slot `s` out of the index, shifting back later entries of its probe run (no tombstones). */
  private unindex(s: number): void {
    const index = this.index
    const mask = this.mask
    let i = hashKey(this.net[s], this.macHi[s], this.macLo[s]) & mask
    while (index[i] !== s + 1) i = (i + 1) & mask
    for (let j = (i + 1) & mask; index[j] !== 0; j = (j + 1) & mask) {
      const t = index[j] - 1
      const home = hashKey(this.net[t], this.macHi[t], this.macLo[t]) & mask
      // Entry j may fill the hole at i unless its home lies cyclically in (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        index[i] = index[j]
        i = j
      }
    }
    index[i] = 0
  }

  private rehash(length: number): void {
    this.index = new Int32Array(length)
    this.mask = length - 1
    for (let s = 0; s < this.slots; s++) if (this.net[s] !== NONE) this.insert(s)
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
    this.unindex(s)
    this.net[s] = NONE
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
    if (this.slots === this.port.length) this.grow()
    return this.slots++
  }

  private grow(): void {
    const n = Math.min(this.capacity, this.port.length * 2)
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
    this.macHi = i32(this.macHi)
    this.macLo = i32(this.macLo)
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

const MAC_HALF = 0x1000000

/** The first three octets of a MAC number. */
const macHigh = (mac: number): number => Math.floor(mac / MAC_HALF)
/** The last three octets of a MAC number. */
const macLow = (mac: number): number => mac % MAC_HALF
/** Three octets of a MAC in a frame, as one half. */
const macHalfAt = (buf: Uint8Array, off: number): number => (buf[off] << 16) | (buf[off + 1] << 8) | buf[off + 2]

function hashKey(net: number, hi: number, lo: number): number {
  let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1) ^ Math.imul(net + 1, 0x85ebca6b), 0x27d4eb2d)
  h ^= h >>> 15
  return h
}
