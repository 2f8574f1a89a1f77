/**
 * IPv4 addresses and CIDR blocks as unsigned 32-bit numbers, so IPAM can do its
 * arithmetic (containment, overlap, offsets into a bitmap) without strings.
 *
 *   const c = parseCidr('10.1.2.3/24')       // { address: 0x0a010203, network: 0x0a010200, prefix: 24 }
 *   formatCidr(c)                            // '10.1.2.0/24'
 *   cidrContains(c, parseIPv4('10.1.2.77'))  // true
 *   formatIPv4(broadcastOf(c))               // '10.1.2.255'
 */

/** A CIDR block. `address` is as written (host bits kept); `network` has them masked off. */
import { ipv4ToString, parseIpv4 } from '../packet/ipv4.js'

export interface Cidr {
  address: number
  network: number
  prefix: number
}

/** A string that is not a dotted-quad IPv4 address. */
export class InvalidAddressError extends Error {
  override readonly name = 'InvalidAddressError'
  readonly code = 'INVALID_ADDRESS'
  constructor(readonly input: string, reason?: string) {
    super(`invalid IPv4 address ${JSON.stringify(input)}${reason ? ` (${reason})` : ''}: expected four decimal numbers 0-255 separated by dots, like 172.18.0.2`)
  }
}

/** A string that is not an IPv4 CIDR block, or a prefix length out of 0..32. */
export class InvalidCidrError extends Error {
  override readonly name = 'InvalidCidrError'
  readonly code = 'INVALID_CIDR'
  constructor(readonly input: string, reason?: string) {
    super(`invalid IPv4 CIDR ${JSON.stringify(input)}${reason ? ` (${reason})` : ''}: expected an address and a prefix length 0-32, like 172.18.0.0/16`)
  }
}

const PREFIX_RE = /^(0|[1-9][0-9]?)$/

/**
 * Parse a strict dotted quad ('10.0.0.1') into an unsigned 32-bit number. No leading zeros:
 * '010' is octal to inet_aton and decimal to others. (The parsing itself is the packet
 * layer's; this adds the control plane's error.)
 */
export function parseIPv4(s: string): number {
  if (typeof s !== 'string') throw new InvalidAddressError(String(s), 'not a string')
  try {
    return parseIpv4(s)
  } catch {
    throw new InvalidAddressError(s, /^\d+\.\d+\.\d+\.\d+$/.test(s) ? 'octets are 0-255, without leading zeros' : undefined)
  }
}

/** Format an unsigned 32-bit number as a dotted quad. */
export const formatIPv4 = ipv4ToString

/** The netmask of a prefix length as an unsigned 32-bit number (24 → 0xffffff00). */
export function maskOf(prefix: number): number {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) {
    throw new InvalidCidrError(`/${prefix}`, 'prefix length must be an integer 0-32')
  }
  // A shift by 32 is a shift by 0 in JS, so /0 needs its own case.
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0
}

/** Parse 'a.b.c.d/n'. Host bits may be set; `network` is the masked block. */
export function parseCidr(s: string): Cidr {
  if (typeof s !== 'string') throw new InvalidCidrError(String(s), 'not a string')
  const slash = s.indexOf('/')
  if (slash < 0) throw new InvalidCidrError(s, 'no /prefix')
  const addrPart = s.slice(0, slash)
  const prefixPart = s.slice(slash + 1)
  if (!PREFIX_RE.test(prefixPart) || Number(prefixPart) > 32) {
    throw new InvalidCidrError(s, `prefix ${JSON.stringify(prefixPart)} is not a number 0-32`)
  }
  let address: number
  try {
    address = parseIPv4(addrPart)
  } catch {
    throw new InvalidCidrError(s, `${JSON.stringify(addrPart)} is not an IPv4 address`)
  }
  const prefix = Number(prefixPart)
  return { address, network: (address & maskOf(prefix)) >>> 0, prefix }
}

/** Format a block as network/prefix ('10.1.2.0/24'), dropping host bits. */
export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.network)}/${c.prefix}`
}

/** Whether `ip` lies inside the block. */
export function cidrContains(c: Cidr, ip: number): boolean {
  return ((ip & maskOf(c.prefix)) >>> 0) === c.network
}

/** Whether two blocks share any address (one of them then contains the other's network). */
export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  const shorter = a.prefix <= b.prefix ? a : b
  const longer = shorter === a ? b : a
  return cidrContains(shorter, longer.network)
}

/** Number of addresses in the block, network and broadcast included (2^(32-prefix)). */
export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.prefix)
}

/** The last address of the block (all host bits set). */
export function broadcastOf(c: Cidr): number {
  return (c.network | ~maskOf(c.prefix)) >>> 0
}
