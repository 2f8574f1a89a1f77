/**
 * DHCP options (RFC 2132): their codes, and typed readers and encoders over the raw
 * `Map<code, bytes>` that the codec produces. Readers return undefined when an option is
 * absent and throw MalformedDhcpError when it is present with a wrong length, so a bad
 * option becomes a counted drop, never a wrong answer.
 *
 *   const opts: DhcpOptions = new Map([[DhcpOption.MESSAGE_TYPE, uint8Option(DhcpMessageType.DISCOVER)]])
 *   getMessageType(opts)                                   // 1
 *   opts.set(DhcpOption.ROUTER, ipListOption(['10.0.0.1']))
 */
import { MalformedDhcpError } from './errors.js'
import { readIpv4, writeIpv4 } from './ipv4.js'

/** Option values by code; a code that appears more than once on the wire is concatenated (RFC 3396). */
export type DhcpOptions = Map<number, Uint8Array>

/** Option codes the switch reads or writes. */
export const DhcpOption = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS_SERVERS: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  MTU: 26,
  BROADCAST_ADDRESS: 28,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAMETER_REQUEST_LIST: 55,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  VENDOR_CLASS_ID: 60,
  CLIENT_ID: 61,
  END: 255,
} as const

/** Values of option 53. */
export const DhcpMessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const

const TYPE_NAMES = ['', 'DISCOVER', 'OFFER', 'REQUEST', 'DECLINE', 'ACK', 'NAK', 'RELEASE', 'INFORM']

/** 'DISCOVER', 'ACK', ... for logs; 'TYPE<n>' for unknown values. */
export function messageTypeName(type: number): string {
  return TYPE_NAMES[type] || `TYPE${type}`
}

function fixed(opts: DhcpOptions, code: number, len: number, what: string): Uint8Array | undefined {
  const v = opts.get(code)
  if (v !== undefined && v.length !== len) throw new MalformedDhcpError(`${what} (option ${code}) has length ${v.length}, expected ${len}`)
  return v
}

/** A one-byte option as a number. */
export function readUint8Option(opts: DhcpOptions, code: number): number | undefined {
  const v = fixed(opts, code, 1, 'one-byte option')
  return v && v[0]
}

/** A two-byte big-endian option as a number. */
export function readUint16Option(opts: DhcpOptions, code: number): number | undefined {
  const v = fixed(opts, code, 2, 'two-byte option')
  return v && ((v[0] << 8) | v[1])
}

/** A four-byte big-endian option as an unsigned number (lease times, T1, T2). */
export function readUint32Option(opts: DhcpOptions, code: number): number | undefined {
  const v = fixed(opts, code, 4, 'four-byte option')
  return v && ((v[0] << 24) | (v[1] << 16) | (v[2] << 8) | v[3]) >>> 0
}

/** A single-address option (subnet mask, requested IP, server id, broadcast address). */
export function readIpOption(opts: DhcpOptions, code: number): string | undefined {
  const v = fixed(opts, code, 4, 'address option')
  return v && readIpv4(v, 0)
}

/** An address-list option (router, DNS servers): one or more addresses. */
export function readIpListOption(opts: DhcpOptions, code: number): string[] | undefined {
  const v = opts.get(code)
  if (v === undefined) return undefined
  if (v.length === 0 || v.length % 4 !== 0) throw new MalformedDhcpError(`address list (option ${code}) has length ${v.length}, expected a multiple of 4`)
  const out: string[] = []
  for (let i = 0; i < v.length; i += 4) out.push(readIpv4(v, i))
  return out
}

/** A text option (hostname, domain name); trailing NULs, which some clients send, are dropped. */
export function readStringOption(opts: DhcpOptions, code: number): string | undefined {
  const v = opts.get(code)
  if (v === undefined) return undefined
  let end = v.length
  while (end > 0 && v[end - 1] === 0) end--
  let s = ''
  for (let i = 0; i < end; i++) s += String.fromCharCode(v[i])
  return s
}

/** Option 53; undefined if absent, throws if not one byte. */
export function getMessageType(opts: DhcpOptions): number | undefined {
  return readUint8Option(opts, DhcpOption.MESSAGE_TYPE)
}

/** Option 50, the address a client asks for. */
export function getRequestedIp(opts: DhcpOptions): string | undefined {
  return readIpOption(opts, DhcpOption.REQUESTED_IP)
}

/** Option 54, the server a client addresses (or the server that answered). */
export function getServerId(opts: DhcpOptions): string | undefined {
  return readIpOption(opts, DhcpOption.SERVER_ID)
}

/** Option 55 as a list of codes, in the client's order of preference (RFC 2132 9.8). */
export function getParameterRequestList(opts: DhcpOptions): number[] | undefined {
  const v = opts.get(DhcpOption.PARAMETER_REQUEST_LIST)
  return v && Array.from(v)
}

/** Option 51, seconds. */
export function getLeaseTime(opts: DhcpOptions): number | undefined {
  return readUint32Option(opts, DhcpOption.LEASE_TIME)
}

/** Option 57, the largest DHCP message (IP packet) the client accepts. */
export function getMaxMessageSize(opts: DhcpOptions): number | undefined {
  return readUint16Option(opts, DhcpOption.MAX_MESSAGE_SIZE)
}

/** Option 61, opaque; RFC 6842 has servers echo it unaltered. */
export function getClientId(opts: DhcpOptions): Uint8Array | undefined {
  const v = opts.get(DhcpOption.CLIENT_ID)
  if (v !== undefined && v.length < 2) throw new MalformedDhcpError(`client identifier (option 61) has length ${v.length}, expected at least 2`)
  return v
}

/** Option 12, the client's host name as sent. */
export function getHostname(opts: DhcpOptions): string | undefined {
  return readStringOption(opts, DhcpOption.HOSTNAME)
}

/** Encodes a one-byte option value. */
export function uint8Option(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff)
}

/** Encodes a two-byte big-endian option value. */
export function uint16Option(n: number): Uint8Array {
  return Uint8Array.of((n >>> 8) & 0xff, n & 0xff)
}

/** Encodes a four-byte big-endian option value (seconds for 51, 58, 59). */
export function uint32Option(n: number): Uint8Array {
  return Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff)
}

/** Encodes one address; throws InvalidIpv4Error for a bad dotted quad. */
export function ipOption(addr: string): Uint8Array {
  const b = new Uint8Array(4)
  writeIpv4(b, 0, addr)
  return b
}

/** Encodes a list of addresses (router, DNS servers). */
export function ipListOption(addrs: readonly string[]): Uint8Array {
  const b = new Uint8Array(addrs.length * 4)
  for (let i = 0; i < addrs.length; i++) writeIpv4(b, i * 4, addrs[i])
  return b
}

/** Encodes ASCII text without a trailing NUL (RFC 2132 3.14, 3.17); throws on non-ASCII. */
export function stringOption(s: string): Uint8Array {
  const b = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c > 0x7e || c < 0x20) throw new TypeError(`DHCP text option ${JSON.stringify(s)} must be printable ASCII`)
    b[i] = c
  }
  return b
}
