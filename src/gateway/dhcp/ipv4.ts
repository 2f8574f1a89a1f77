/**
 * IPv4 addresses for the DHCP code: dotted strings at the edges (the lease backend and
 * config speak strings), unsigned 32-bit numbers for comparisons and subnet math.
 *
 *   ipv4ToNumber('10.0.0.1')                          // 167772161
 *   inSubnet('10.0.0.7', '10.0.0.1', '255.255.255.0') // true
 */

/** A dotted-quad address that failed to parse. */
export class InvalidIpv4Error extends Error {
  override readonly name = 'InvalidIpv4Error'
  readonly code = 'INVALID_IPV4'
  constructor(readonly input: string) {
    super(`invalid IPv4 address ${JSON.stringify(input)}: expected four decimal octets like 10.0.0.1`)
  }
}

const DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/

/** Parses a dotted quad; returns undefined instead of throwing, for input from the wire or config checks. */
export function tryIpv4ToNumber(s: string): number | undefined {
  const m = DOTTED.exec(s)
  if (!m) return undefined
  let n = 0
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i])
    if (o > 255) return undefined
    n = n * 256 + o
  }
  return n
}

/** Parses a dotted quad into an unsigned 32-bit number; throws InvalidIpv4Error. */
export function ipv4ToNumber(s: string): number {
  const n = tryIpv4ToNumber(s)
  if (n === undefined) throw new InvalidIpv4Error(s)
  return n
}

/** Formats an unsigned 32-bit number as a dotted quad. */
export function numberToIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`
}

/** Reads four bytes at `off` as a dotted quad. */
export function readIpv4(buf: Uint8Array, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`
}

/** Writes a dotted quad as four bytes at `off`; throws InvalidIpv4Error. */
export function writeIpv4(buf: Uint8Array, off: number, s: string): void {
  const n = ipv4ToNumber(s)
  buf[off] = n >>> 24
  buf[off + 1] = (n >>> 16) & 0xff
  buf[off + 2] = (n >>> 8) & 0xff
  buf[off + 3] = n & 0xff
}

/** True when `addr` and `ref` share the network part under `mask` (all dotted quads). */
export function inSubnet(addr: string, ref: string, mask: string): boolean {
  const a = tryIpv4ToNumber(addr)
  const r = tryIpv4ToNumber(ref)
  const m = tryIpv4ToNumber(mask)
  if (a === undefined || r === undefined || m === undefined) return false
  return ((a & m) >>> 0) === ((r & m) >>> 0)
}

/** The directed broadcast address of `ref`'s subnet under `mask`. */
export function subnetBroadcast(ref: string, mask: string): string {
  return numberToIpv4((ipv4ToNumber(ref) | ~ipv4ToNumber(mask)) >>> 0)
}

export const ZERO_IPV4 = '0.0.0.0'
export const BROADCAST_IPV4 = '255.255.255.255'
