/**
 * IPAM for one network: which addresses of its subnet are handed out, reserved (network,
 * broadcast, gateway, aux addresses) or free; plus the choice of a default subnet when
 * the user gives none.
 *
 *   const pool = new AddressPool({ subnet: '10.5.0.0/24', ipRange: '10.5.0.128/25' })
 *   pool.gateway                  // '10.5.0.1'
 *   pool.allocate()               // '10.5.0.128'
 *   pool.allocate('10.5.0.9')     // static request, may lie outside ipRange
 *   pool.release('10.5.0.128')
 *   store.put('pool', id, pool.toJSON()); AddressPool.fromJSON(store.get('pool', id))
 *
 * Free space is a sparse bitmap: pages of 65536 addresses (8 KiB) created on first use, so a
 * /8 or larger costs memory only where addresses are taken, and a full page is skipped
 * in one step. Dynamic allocation is next-fit: a cursor moves on past each handed-out
 * address and is persisted, so an address released a moment ago (whose old owner may
 * still be in ARP caches or DNS answers) is the last to come back.
 */

import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { endianness } from 'node:os'
import {
  broadcastOf,
  cidrContains,
  cidrOverlaps,
  cidrSize,
  formatCidr,
  formatIPv4,
  maskOf,
  parseCidr,
  parseIPv4,
  type Cidr,
} from './cidr.js'

/** What a network's IPAM is created from (Docker's `--subnet --gateway --ip-range --aux-address`). */
export interface PoolConfig {
  subnet: string
  gateway?: string
  ipRange?: string
  auxAddresses?: Record<string, string>
}

/** The persisted form of a pool; `allocated` holds 'a.b.c.d' or 'first-last' runs. */
export interface AddressPoolState {
  version: 1
  subnet: string
  gateway: string
  ipRange?: string
  auxAddresses: Record<string, string>
  allocated: string[]
  next: string
}

/** Base of IPAM errors; `code` is stable for the API to map. */
export abstract class IpamError extends Error {
  abstract readonly code: string
  constructor(message: string) {
    super(message)
    this.name = new.target.name // stack traces and test matchers show the real class
  }
}

/** No free address is left where dynamic allocation looks. */
export class IpamExhaustedError extends IpamError {
  readonly code = 'IPAM_EXHAUSTED'
  constructor(readonly subnet: string, readonly ipRange: string | undefined, assignable: number) {
    super(
      `no free address left in ${ipRange ? `ip-range ${ipRange} of ` : ''}subnet ${subnet}: all ${assignable} assignable ` +
        `addresses are in use; create the network with a larger subnet${ipRange ? ' or ip-range' : ''}, or release addresses by removing endpoints`,
    )
  }
}

/** A requested address is already taken (by an endpoint, the gateway or an aux address). */
export class AddressInUseError extends IpamError {
  readonly code = 'ADDRESS_IN_USE'
  constructor(readonly address: string, readonly subnet: string, reason: string) {
    super(`address ${address} in ${subnet} is already in use (${reason}); ask for another address, or none to get a free one`)
  }
}

/** A requested address lies outside the subnet, or is its network or broadcast address. */
export class AddressOutOfRangeError extends IpamError {
  readonly code = 'ADDRESS_OUT_OF_RANGE'
  constructor(readonly address: string, readonly subnet: string, reason: string) {
    super(`address ${address} cannot be assigned in ${subnet}: ${reason}`)
  }
}

/** A pool config (or persisted pool state) is invalid; `field` names the culprit. */
export class InvalidPoolError extends IpamError {
  readonly code = 'INVALID_POOL'
  constructor(readonly field: string, detail: string) {
    super(`invalid IPAM config: ${field} ${detail}`)
  }
}

/** Every default pool overlaps an existing network or a host route. */
export class NoDefaultPoolError extends IpamError {
  readonly code = 'IPAM_NO_DEFAULT_POOL'
  constructor() {
    super(
      'no default address pool is free: 172.17.0.0/16-172.31.0.0/16 and the /20s of 192.168.0.0/16 all overlap ' +
        'existing networks or host routes; give a subnet explicitly, e.g. --subnet 10.123.0.0/24',
    )
  }
}

const PAGE_SHIFT = 16
const PAGE_SIZE = 1 << PAGE_SHIFT
const PAGE_MASK = PAGE_SIZE - 1

/** 65536 addresses' worth of bits plus how many are set (a full page is skipped whole). */
interface Page {
  bits: Uint32Array
  used: number
}

/** Addresses of one subnet: reserved, handed out, free. */
export class AddressPool {
  /** The subnet as network/prefix. */
  readonly subnet: string
  /** The gateway address (first host address unless configured). */
  readonly gateway: string
  /** Where dynamic allocation draws from, if narrower than the subnet. */
  readonly ipRange: string | undefined
  /** Addresses reserved by name for hosts that already exist on the network. */
  readonly auxAddresses: Readonly<Record<string, string>>

  private readonly base: number
  private readonly size: number
  /** Dynamic allocation range as offsets from `base`, inclusive. */
  private readonly lo: number
  private readonly hi: number
  /** Offset → why it is reserved; these are set in the bitmap but never handed out or released. */
  private readonly reserved = new Map<number, string>()
  private readonly pages = new Map<number, Page>()
  private cursor: number
  private count = 0

  constructor(config: PoolConfig) {
    if (typeof config !== 'object' || config === null) throw new InvalidPoolError('config', 'must be an object with a subnet')
    const subnet = parseBlock('subnet', config.subnet)
    if (subnet.prefix < 1 || subnet.prefix > 30) {
      throw new InvalidPoolError('subnet', `${JSON.stringify(config.subnet)} has prefix /${subnet.prefix}; use /1 to /30 (a /31 or /32 has no room for a gateway and hosts)`)
    }
    this.subnet = formatCidr(subnet)
    this.base = subnet.network
    this.size = cidrSize(subnet)
    const last = this.size - 1

    this.reserved.set(0, 'network address')
    this.reserved.set(last, 'broadcast address')

    let gw = this.base + 1
    if (config.gateway !== undefined) {
      gw = this.hostAddress('gateway', config.gateway, subnet)
    }
    this.gateway = formatIPv4(gw)
    this.reserved.set(gw - this.base, 'the gateway')

    if (config.ipRange !== undefined) {
      const range = parseBlock('ipRange', config.ipRange)
      if (range.prefix < subnet.prefix || !cidrContains(subnet, range.network)) {
        throw new InvalidPoolError('ipRange', `${JSON.stringify(config.ipRange)} is not inside subnet ${this.subnet}`)
      }
      this.ipRange = formatCidr(range)
      this.lo = Math.max(1, range.network - this.base)
      this.hi = Math.min(last - 1, broadcastOf(range) - this.base)
      if (this.lo > this.hi) {
        throw new InvalidPoolError('ipRange', `${JSON.stringify(config.ipRange)} holds only the network or broadcast address of ${this.subnet}; use a wider range`)
      }
    } else {
      this.ipRange = undefined
      this.lo = 1
      this.hi = last - 1
    }

    const aux: Record<string, string> = {}
    const auxIn = config.auxAddresses ?? {}
    if (typeof auxIn !== 'object' || auxIn === null || Array.isArray(auxIn)) {
      throw new InvalidPoolError('auxAddresses', 'must be an object of name → address, like { "router": "10.0.0.2" }')
    }
    for (const [name, value] of Object.entries(auxIn)) {
      const field = `auxAddresses.${name}`
      const ip = this.hostAddress(field, value, subnet)
      const clash = this.reserved.get(ip - this.base)
      if (clash !== undefined) throw new InvalidPoolError(field, `${value} is already reserved as ${clash}; give each aux address its own address`)
      this.reserved.set(ip - this.base, `auxiliary address "${name}"`)
      aux[name] = formatIPv4(ip)
    }
    this.auxAddresses = Object.freeze(aux)

    for (const off of this.reserved.keys()) this.setBit(off)
    this.cursor = this.lo
  }

  /** Hand out an address: the preferred one (static, anywhere in the subnet) or the next free one in the range. */
  allocate(preferred?: string): string {
    if (preferred !== undefined) {
      const off = this.offsetOf(preferred)
      const why = this.reserved.get(off)
      if (off === 0 || off === this.size - 1) throw new AddressOutOfRangeError(preferred, this.subnet, `it is the ${why}; ${this.validSpan()}`)
      if (why !== undefined) throw new AddressInUseError(formatIPv4(this.base + off), this.subnet, why)
      if (this.testBit(off)) throw new AddressInUseError(formatIPv4(this.base + off), this.subnet, 'allocated to an endpoint')
      this.setBit(off)
      this.count++
      return formatIPv4(this.base + off)
    }
    let off = this.findFree(this.cursor, this.hi)
    if (off < 0) off = this.findFree(this.lo, this.cursor - 1)
    if (off < 0) throw new IpamExhaustedError(this.subnet, this.ipRange, this.assignable())
    this.setBit(off)
    this.count++
    this.cursor = off + 1 > this.hi ? this.lo : off + 1
    return formatIPv4(this.base + off)
  }

  /** Give an address back. Returns false if it was not handed out (reserved ones stay reserved). */
  release(addr: string): boolean {
    const off = this.offsetOf(addr)
    if (this.reserved.has(off) || !this.testBit(off)) return false
    this.clearBit(off)
    this.count--
    return true
  }

  /** Whether the address is handed out to an endpoint (reserved addresses are not). */
  isAllocated(addr: string): boolean {
    const ip = parseIPv4(addr)
    if (ip < this.base || ip - this.base >= this.size) return false
    const off = ip - this.base
    return !this.reserved.has(off) && this.testBit(off)
  }

  /** Whether the address is reserved: network, broadcast, gateway or an aux address. */
  isReserved(addr: string): boolean {
    const ip = parseIPv4(addr)
    return ip >= this.base && this.reserved.has(ip - this.base)
  }

  /** Number of addresses handed out. */
  get allocatedCount(): number {
    return this.count
  }

  /** The handed-out addresses in ascending order. */
  allocated(): string[] {
    const out: string[] = []
    this.forEachAllocated((off) => out.push(formatIPv4(this.base + off)))
    return out
  }

  /** The persisted form: config, handed-out addresses as runs, and the next-fit cursor. */
  toJSON(): AddressPoolState {
    const runs: string[] = []
    let first = -1
    let prev = -2
    const flush = (): void => {
      if (first < 0) return
      runs.push(first === prev ? formatIPv4(this.base + first) : `${formatIPv4(this.base + first)}-${formatIPv4(this.base + prev)}`)
    }
    this.forEachAllocated((off) => {
      if (off !== prev + 1) {
        flush()
        first = off
      }
      prev = off
    })
    flush()
    const state: AddressPoolState = {
      version: 1,
      subnet: this.subnet,
      gateway: this.gateway,
      auxAddresses: { ...this.auxAddresses },
      allocated: runs,
      next: formatIPv4(this.base + this.cursor),
    }
    if (this.ipRange !== undefined) state.ipRange = this.ipRange
    return state
  }

  /** Rebuild a pool from `toJSON()` output, validating it (a bad record throws InvalidPoolError). */
  static fromJSON(state: unknown): AddressPool {
    if (typeof state !== 'object' || state === null) throw new InvalidPoolError('state', 'must be an object from AddressPool.toJSON()')
    const s = state as Partial<Record<keyof AddressPoolState, unknown>>
    if (s.version !== 1) throw new InvalidPoolError('version', `${JSON.stringify(s.version)} is not a known pool state version (expected 1)`)
    if (typeof s.gateway !== 'string') throw new InvalidPoolError('gateway', 'is missing from the saved pool state')
    if (!Array.isArray(s.allocated)) throw new InvalidPoolError('allocated', 'must be an array of addresses or first-last runs')
    const pool = new AddressPool({
      subnet: s.subnet as string,
      gateway: s.gateway,
      ipRange: s.ipRange as string | undefined,
      auxAddresses: s.auxAddresses as Record<string, string> | undefined,
    })
    for (const entry of s.allocated) pool.restoreRun(entry)
    if (typeof s.next === 'string') {
      let next: number
      try {
        next = parseIPv4(s.next) - pool.base
      } catch (err) {
        throw new InvalidPoolError('next', (err as Error).message)
      }
      // A cursor outside the range (config edited by hand) just restarts at the range's start.
      if (next >= pool.lo && next <= pool.hi) pool.cursor = next
    }
    return pool
  }

  private restoreRun(entry: unknown): void {
    if (typeof entry !== 'string') throw new InvalidPoolError('allocated', `entry ${JSON.stringify(entry)} is not a string`)
    const dash = entry.indexOf('-')
    let first: number
    let last: number
    try {
      first = parseIPv4(dash < 0 ? entry : entry.slice(0, dash)) - this.base
      last = dash < 0 ? first : parseIPv4(entry.slice(dash + 1)) - this.base
    } catch (err) {
      throw new InvalidPoolError('allocated', `entry ${JSON.stringify(entry)}: ${(err as Error).message}`)
    }
    if (first < 0 || last >= this.size || first > last) {
      throw new InvalidPoolError('allocated', `entry ${JSON.stringify(entry)} is not an ascending run inside ${this.subnet}`)
    }
    for (let off = first; off <= last; off++) {
      const why = this.reserved.get(off)
      if (why !== undefined) throw new InvalidPoolError('allocated', `entry ${JSON.stringify(entry)} covers ${formatIPv4(this.base + off)}, the ${why}`)
      if (!this.testBit(off)) {
        this.setBit(off)
        this.count++
      }
    }
  }

  /** Validate an address (gateway, aux) that must be a usable host address of the subnet. */
  private hostAddress(field: string, value: unknown, subnet: Cidr): number {
    if (typeof value !== 'string') throw new InvalidPoolError(field, `must be an IPv4 address string, like ${formatIPv4(subnet.network + 1)}`)
    let ip: number
    try {
      ip = parseIPv4(value)
    } catch (err) {
      throw new InvalidPoolError(field, (err as Error).message)
    }
    if (!cidrContains(subnet, ip)) throw new InvalidPoolError(field, `${value} is not inside subnet ${formatCidr(subnet)}`)
    if (ip === subnet.network || ip === broadcastOf(subnet)) {
      throw new InvalidPoolError(field, `${value} is the ${ip === subnet.network ? 'network' : 'broadcast'} address of ${formatCidr(subnet)}; ${this.validSpanOf(subnet)}`)
    }
    return ip
  }

  /** Offset of an address inside the subnet; throws for malformed or outside addresses. */
  private offsetOf(addr: string): number {
    const ip = parseIPv4(addr)
    if (ip < this.base || ip - this.base >= this.size) throw new AddressOutOfRangeError(addr, this.subnet, `it is outside the subnet; ${this.validSpan()}`)
    return ip - this.base
  }

  private validSpan(): string {
    return `use an address from ${formatIPv4(this.base + 1)} to ${formatIPv4(this.base + this.size - 2)}`
  }

  private validSpanOf(subnet: Cidr): string {
    return `use an address from ${formatIPv4(subnet.network + 1)} to ${formatIPv4(broadcastOf(subnet) - 1)}`
  }

  /** How many addresses dynamic allocation could ever hand out. */
  private assignable(): number {
    let n = this.hi - this.lo + 1
    for (const off of this.reserved.keys()) if (off >= this.lo && off <= this.hi) n--
    return n
  }

  /** First clear bit in [from, to], or -1. Missing pages are all free; full pages are skipped whole. */
  private findFree(from: number, to: number): number {
    let off = from
    while (off <= to) {
      const p = off >>> PAGE_SHIFT
      const pageEnd = Math.min(to, (p + 1) * PAGE_SIZE - 1)
      const page = this.pages.get(p)
      if (!page) return off
      if (page.used < PAGE_SIZE) {
        const bits = page.bits
        let i = off
        while (i <= pageEnd) {
          const w = bits[(i & PAGE_MASK) >>> 5]
          if (w === 0xffffffff) {
            i = (i | 31) + 1
            continue
          }
          if ((w & (1 << (i & 31))) === 0) return i
          i++
        }
      }
      off = pageEnd + 1
    }
    return -1
  }

  private forEachAllocated(fn: (off: number) => void): void {
    const keys = [...this.pages.keys()].sort((a, b) => a - b)
    for (const p of keys) {
      const bits = (this.pages.get(p) as Page).bits
      for (let w = 0; w < bits.length; w++) {
        const word = bits[w]
        if (word === 0) continue
        for (let b = 0; b < 32; b++) {
          if ((word & (1 << b)) === 0) continue
          const off = p * PAGE_SIZE + w * 32 + b
          if (!this.reserved.has(off)) fn(off)
        }
      }
    }
  }

  private testBit(off: number): boolean {
    const page = this.pages.get(off >>> PAGE_SHIFT)
    return page !== undefined && (page.bits[(off & PAGE_MASK) >>> 5] & (1 << (off & 31))) !== 0
  }

  private setBit(off: number): void {
    const p = off >>> PAGE_SHIFT
    let page = this.pages.get(p)
    if (!page) {
      page = { bits: new Uint32Array(PAGE_SIZE / 32), used: 0 }
      this.pages.set(p, page)
    }
    const w = (off & PAGE_MASK) >>> 5
    const bit = 1 << (off & 31)
    if ((page.bits[w] & bit) !== 0) return
    page.bits[w] |= bit
    page.used++
  }

  private clearBit(off: number): void {
    const p = off >>> PAGE_SHIFT
    const page = this.pages.get(p)
    if (!page) return
    const w = (off & PAGE_MASK) >>> 5
    const bit = 1 << (off & 31)
    if ((page.bits[w] & bit) === 0) return
    page.bits[w] &= ~bit
    // Drop empty pages so a pool that filled once does not keep its memory forever.
    if (--page.used === 0) this.pages.delete(p)
  }
}

/** Parse a block for a pool field, rejecting host bits (10.0.0.5/24 is almost always a typo). */
function parseBlock(field: string, value: unknown): Cidr {
  if (typeof value !== 'string') throw new InvalidPoolError(field, 'must be a CIDR string, like 172.18.0.0/16')
  let c: Cidr
  try {
    c = parseCidr(value)
  } catch (err) {
    throw new InvalidPoolError(field, (err as Error).message)
  }
  if (c.address !== c.network) throw new InvalidPoolError(field, `${JSON.stringify(value)} has host bits set; did you mean ${formatCidr(c)}?`)
  return c
}

/** Docker's default pools, in the order they are tried. */
export const DEFAULT_POOLS: readonly string[] = Object.freeze([
  ...Array.from({ length: 15 }, (_, i) => `172.${17 + i}.0.0/16`),
  ...Array.from({ length: 16 }, (_, i) => `192.168.${i * 16}.0/20`),
])

/** The first default pool that overlaps neither an existing network nor a host route. */
export function chooseDefaultSubnet(inUse: Cidr[], hostRoutes: Cidr[]): string {
  const taken = [...inUse, ...hostRoutes].filter((c) => c.prefix > 0)
  for (const candidate of DEFAULT_POOLS) {
    const c = parseCidr(candidate)
    if (!taken.some((t) => cidrOverlaps(c, t))) return candidate
  }
  throw new NoDefaultPoolError()
}

/**
 * The host's IPv4 routes (main table) and interface addresses, without the default route.
 * Never throws: a source that cannot be read contributes nothing.
 */
export function readHostRoutes(): Cidr[] {
  const out: Cidr[] = []
  try {
    out.push(...parseProcNetRoute(readFileSync('/proc/net/route', 'utf8')))
  } catch {
    // no procfs (container without /proc, other OS): fall through to `ip`
  }
  try {
    const text = execFileSync('ip', ['-j', '-4', 'addr', 'show'], { encoding: 'utf8', timeout: 2000, stdio: ['ignore', 'pipe', 'ignore'] })
    out.push(...parseIpAddrJson(text))
  } catch {
    // iproute2 missing or too old for -j: routes alone will have to do
  }
  const seen = new Set<string>()
  return out.filter((c) => {
    const key = formatCidr(c)
    if (c.prefix === 0 || seen.has(key)) return false
    seen.add(key)
    return true
  })
}

/** Parse /proc/net/route: hex Destination and Mask in host byte order. Skips the default route. */
export function parseProcNetRoute(text: string, littleEndian = endianness() === 'LE'): Cidr[] {
  const out: Cidr[] = []
  const lines = text.split('\n')
  for (let i = 1; i < lines.length; i++) {
    const cols = lines[i].trim().split(/\s+/)
    if (cols.length < 8 || !/^[0-9A-Fa-f]{8}$/.test(cols[1]) || !/^[0-9A-Fa-f]{8}$/.test(cols[7])) continue
    const dest = hostOrder(parseInt(cols[1], 16), littleEndian)
    const mask = hostOrder(parseInt(cols[7], 16), littleEndian)
    const prefix = prefixOfMask(mask)
    if (prefix <= 0) continue
    out.push({ address: dest, network: (dest & maskOf(prefix)) >>> 0, prefix })
  }
  return out
}

/** Parse `ip -j -4 addr` output into the interfaces' subnets (address kept in `address`). */
export function parseIpAddrJson(text: string): Cidr[] {
  const out: Cidr[] = []
  let links: unknown
  try {
    links = JSON.parse(text)
  } catch {
    return out
  }
  if (!Array.isArray(links)) return out
  for (const link of links) {
    const infos = (link as { addr_info?: unknown } | null)?.addr_info
    if (!Array.isArray(infos)) continue
    for (const info of infos) {
      const { family, local, prefixlen } = (info ?? {}) as { family?: unknown; local?: unknown; prefixlen?: unknown }
      if (family !== 'inet' || typeof local !== 'string' || typeof prefixlen !== 'number') continue
      try {
        const c = parseCidr(`${local}/${prefixlen}`)
        if (c.prefix > 0) out.push(c)
      } catch {
        // an entry we cannot read is not worth failing over
      }
    }
  }
  return out
}

function hostOrder(n: number, littleEndian: boolean): number {
  if (!littleEndian) return n >>> 0
  return (((n & 0xff) << 24) | ((n & 0xff00) << 8) | ((n >>> 8) & 0xff00) | (n >>> 24)) >>> 0
}

/** Prefix length of a contiguous mask, or -1 if the mask has holes. */
function prefixOfMask(mask: number): number {
  let prefix = 0
  while (prefix < 32 && (mask & (0x80000000 >>> prefix)) !== 0) prefix++
  return maskOf(prefix) === mask ? prefix : -1
}
