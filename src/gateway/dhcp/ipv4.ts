/**
 * IPv4 addresses the way the DHCP code needs them: dotted strings at the edges (the lease
 * backend and config speak strings), read from and written to message bytes, and subnet
 * checks. Parsing itself is the packet layer's (src/packet/ipv4.ts).
 *
 *   inSubnet('10.0.0.7', '10.0.0.1', '255.255.255.0') // true
 *   subnetBroadcast('10.0.0.1', '255.255.255.0')      // '10.0.0.255'
 */
import { InvalidIpv4Error, ipv4ToString, parseIpv4 } from '../../packet/ipv4.js'

export const ZERO_IPV4 = '0.0.0.0'
export const BROADCAST_IPV4 = '255.255.255.255'

/** parseIpv4 without the throw, for input from the wire or a config check. */
export function tryParseIpv4(s: string): number | undefined {
  try {
    return parseIpv4(s)
  } catch (err) {
    if (err instanceof InvalidIpv4Error) return undefined
    throw err
  }
}

/** Reads four bytes at `off` as a dotted quad. */
export function readIpv4(buf: Uint8Array, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`
}

/** Writes a dotted quad as four bytes at `off`; throws InvalidIpv4Error. */
export function writeIpv4(buf: Uint8Array, off: number, s: string): void {
  const n = parseIpv4(s)
  buf[off] = n >>> 24
  buf[off + 1] = (n >>> 16) & 0xff
  buf[off + 2] = (n >>> 8) & 0xff
  buf[off + 3] = n & 0xff
}

/** True when `addr` and `ref` share the network part under `mask`; false if any does not parse. */
export function inSubnet(addr: string, ref: string, mask: string): boolean {
  const a = tryParseIpv4(addr)
  const r = tryParseIpv4(ref)
  const m = tryParseIpv4(mask)
  if (a === undefined || r === undefined || m === undefined) return false
  return ((a & m) >>> 0) === ((r & m) >>> 0)
}

/** The directed broadcast address of `ref`'s subnet under `mask` (option 28). */
export function subnetBroadcast(ref: string, mask: string): string {
  return ipv4ToString((parseIpv4(ref) | ~parseIpv4(mask)) >>> 0)
}
