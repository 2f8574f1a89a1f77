/**
 * IPv4 headers (RFC 791). Addresses are unsigned 32-bit numbers (10.0.0.1 = 0x0a000001),
 * so the data path compares and hashes them without strings. Options are kept raw.
 *
 *   if (ipv4Check(frame, 14, len - 14) === null && ipv4Dst(frame, 14) === gatewayIp) ...
 *   const { src, protocol, payload } = ipv4.decode(frame, 14)
 *   ipv4.encode({ protocol: IpProtocol.UDP, src: gw, dst: parseIpv4('10.0.0.2'), payload: udpBytes })
 */
import { internetChecksum, onesSum } from './checksum.js'
import { MalformedPacketError, type MalformedReason, checkUint, decodeLength, encodeTarget } from './errors.js'

/** A header without options: what the accessors below may read. */
export const IPV4_MIN_LENGTH = 20
/** Largest header: IHL 15. */
export const IPV4_MAX_HEADER_LENGTH = 60

/** Protocol numbers the switch looks at. */
export const IpProtocol = {
  ICMP: 1,
  TCP: 6,
  UDP: 17,
} as const

/** Bits of the 3-bit flags field. */
export const Ipv4Flag = {
  /** Don't fragment. */
  DF: 2,
  /** More fragments follow. */
  MF: 1,
} as const

/** Fields every header has; what `encode` needs (the rest defaults). */
export interface Ipv4PacketInit {
  /** DSCP and ECN byte; default 0. */
  tos?: number
  /** Identification; default 0. */
  id?: number
  /** Ipv4Flag bits; default 0. */
  flags?: number
  /** Fragment offset in 8-byte units; default 0. */
  fragmentOffset?: number
  /** Default 64. */
  ttl?: number
  /** IpProtocol number. */
  protocol: number
  src: number
  dst: number
  /** Raw options, a multiple of 4 bytes, at most 40; default none. */
  options?: Uint8Array
  /** Default empty. */
  payload?: Uint8Array
}

/** A decoded packet. Options and payload are views into the input, not copies. */
export interface Ipv4Packet extends Required<Ipv4PacketInit> {
  /** Header length in bytes, 20–60 (IHL × 4). */
  headerLength: number
  /** Header plus payload; bytes after it in the buffer (Ethernet padding) are not payload. */
  totalLength: number
  /** The header checksum as received (verified by decode). */
  checksum: number
}

/** An address that parseIpv4 could not read. */
export class InvalidIpv4Error extends Error {
  readonly code = 'INVALID_IPV4'
  constructor(readonly input: string) {
    super(`invalid IPv4 address ${JSON.stringify(input)}: expected four decimal octets like 10.0.0.1`)
    this.name = 'InvalidIpv4Error'
  }
}

const u16 = (buf: Uint8Array, off: number): number => (buf[off] << 8) | buf[off + 1]
const u32 = (buf: Uint8Array, off: number): number =>
  ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0

function writeU16(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 8) & 0xff
  buf[off + 1] = v & 0xff
}

function writeU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 24
  buf[off + 1] = (v >>> 16) & 0xff
  buf[off + 2] = (v >>> 8) & 0xff
  buf[off + 3] = v & 0xff
}

// Hot-path accessors: each reads within buf[off, off + IPV4_MIN_LENGTH).

/** Version nibble (4 for a valid packet). */
export const ipv4Version = (buf: Uint8Array, off: number): number => buf[off] >>> 4
/** Header length in bytes (IHL × 4); below 20 means malformed. */
export const ipv4HeaderLength = (buf: Uint8Array, off: number): number => (buf[off] & 0x0f) << 2
/** DSCP and ECN byte. */
export const ipv4Tos = (buf: Uint8Array, off: number): number => buf[off + 1]
/** Total length field: header plus payload. */
export const ipv4TotalLength = (buf: Uint8Array, off: number): number => u16(buf, off + 2)
/** Identification. */
export const ipv4Id = (buf: Uint8Array, off: number): number => u16(buf, off + 4)
/** Ipv4Flag bits. */
export const ipv4Flags = (buf: Uint8Array, off: number): number => buf[off + 6] >>> 5
/** Fragment offset in 8-byte units. */
export const ipv4FragmentOffset = (buf: Uint8Array, off: number): number => u16(buf, off + 6) & 0x1fff
/** True for any fragment of a fragmented datagram (MF set or offset non-zero). */
export const ipv4IsFragment = (buf: Uint8Array, off: number): boolean => (u16(buf, off + 6) & 0x3fff) !== 0
/** Time to live. */
export const ipv4Ttl = (buf: Uint8Array, off: number): number => buf[off + 8]
/** IpProtocol number. */
export const ipv4Protocol = (buf: Uint8Array, off: number): number => buf[off + 9]
/** Header checksum field. */
export const ipv4Checksum = (buf: Uint8Array, off: number): number => u16(buf, off + 10)
/** Source address. */
export const ipv4Src = (buf: Uint8Array, off: number): number => u32(buf, off + 12)
/** Destination address. */
export const ipv4Dst = (buf: Uint8Array, off: number): number => u32(buf, off + 16)

/** True when the header checksum is right. Reads ipv4HeaderLength bytes (check them first). */
export function ipv4HeaderChecksumOk(buf: Uint8Array, off: number): boolean {
  return onesSum(buf, off, ipv4HeaderLength(buf, off)) === 0xffff
}

/** Computes and stores the header checksum over ipv4HeaderLength bytes. */
export function writeIpv4Checksum(buf: Uint8Array, off: number): void {
  buf[off + 10] = 0
  buf[off + 11] = 0
  writeU16(buf, off + 10, internetChecksum(buf, off, ipv4HeaderLength(buf, off)))
}

/** Swaps source and destination in place. The checksum stays right: the sum is the same. */
export function ipv4SwapAddresses(buf: Uint8Array, off: number): void {
  for (let i = 12; i < 16; i++) {
    const b = buf[off + i]
    buf[off + i] = buf[off + i + 4]
    buf[off + i + 4] = b
  }
}

/**
 * Writes a 20-byte header without options (not fragmented, DF clear, TOS 0) with its
 * checksum, for replies the switch builds. Returns IPV4_MIN_LENGTH. Fields are masked.
 */
export function writeIpv4Header(buf: Uint8Array, off: number, totalLength: number, id: number, ttl: number, protocol: number, src: number, dst: number): number {
  buf[off] = 0x45
  buf[off + 1] = 0
  writeU16(buf, off + 2, totalLength)
  writeU16(buf, off + 4, id)
  buf[off + 6] = 0
  buf[off + 7] = 0
  buf[off + 8] = ttl & 0xff
  buf[off + 9] = protocol & 0xff
  writeU32(buf, off + 12, src)
  writeU32(buf, off + 16, dst)
  writeIpv4Checksum(buf, off)
  return IPV4_MIN_LENGTH
}

/**
 * Validates the packet in buf[off, off + len) without allocating: null when it is good,
 * else the reason decode would throw. Checks version, IHL, total length against IHL and
 * `len`, the header checksum, and that a fragment does not end past 65535 bytes.
 */
export function ipv4Check(buf: Uint8Array, off: number, len: number): MalformedReason | null {
  if (len < IPV4_MIN_LENGTH) return 'truncated'
  if (ipv4Version(buf, off) !== 4) return 'bad_version'
  const hl = ipv4HeaderLength(buf, off)
  if (hl < IPV4_MIN_LENGTH) return 'bad_header_length'
  if (hl > len) return 'truncated'
  const total = ipv4TotalLength(buf, off)
  if (total < hl) return 'bad_length'
  if (total > len) return 'truncated'
  if (!ipv4HeaderChecksumOk(buf, off)) return 'bad_checksum'
  // A fragment reaching past 65535 bytes would reassemble into an impossible datagram.
  if (ipv4FragmentOffset(buf, off) * 8 + total - hl > 0xffff) return 'bad_length'
  return null
}

/** Decodes and validates (see ipv4Check); `length` defaults to the rest of `buf`. */
export function decode(buf: Uint8Array, offset = 0, length?: number): Ipv4Packet {
  const len = decodeLength(buf, offset, length)
  const bad = ipv4Check(buf, offset, len)
  if (bad !== null) {
    throw new MalformedPacketError('ipv4', bad, `${len} bytes, version ${len ? ipv4Version(buf, offset) : '-'}, ` +
      `header ${len ? ipv4HeaderLength(buf, offset) : '-'}, total ${len >= 4 ? ipv4TotalLength(buf, offset) : '-'}`)
  }
  const hl = ipv4HeaderLength(buf, offset)
  const total = ipv4TotalLength(buf, offset)
  return {
    headerLength: hl,
    tos: ipv4Tos(buf, offset),
    totalLength: total,
    id: ipv4Id(buf, offset),
    flags: ipv4Flags(buf, offset),
    fragmentOffset: ipv4FragmentOffset(buf, offset),
    ttl: ipv4Ttl(buf, offset),
    protocol: ipv4Protocol(buf, offset),
    checksum: ipv4Checksum(buf, offset),
    src: ipv4Src(buf, offset),
    dst: ipv4Dst(buf, offset),
    options: buf.subarray(offset + IPV4_MIN_LENGTH, offset + hl),
    payload: buf.subarray(offset + hl, offset + total),
  }
}

/** Header (with options) plus payload length. */
export function encodingLength(obj: Ipv4PacketInit): number {
  return IPV4_MIN_LENGTH + (obj.options?.length ?? 0) + (obj.payload?.length ?? 0)
}

/**
 * Writes header (computing total length and checksum) and copies options and payload;
 * returns `buf` (or a new buffer). Throws RangeError for fields out of range.
 */
export function encode(obj: Ipv4PacketInit, buf?: Uint8Array, offset = 0): Uint8Array {
  const tos = obj.tos ?? 0
  const id = obj.id ?? 0
  const flags = obj.flags ?? 0
  const frag = obj.fragmentOffset ?? 0
  const ttl = obj.ttl ?? 64
  const optLen = obj.options?.length ?? 0
  checkUint('ipv4', 'tos', tos, 0xff)
  checkUint('ipv4', 'id', id, 0xffff)
  checkUint('ipv4', 'flags', flags, 7)
  checkUint('ipv4', 'fragmentOffset', frag, 0x1fff)
  checkUint('ipv4', 'ttl', ttl, 0xff)
  checkUint('ipv4', 'protocol', obj.protocol, 0xff)
  checkUint('ipv4', 'src', obj.src, 0xffffffff)
  checkUint('ipv4', 'dst', obj.dst, 0xffffffff)
  if (optLen % 4 !== 0 || optLen > IPV4_MAX_HEADER_LENGTH - IPV4_MIN_LENGTH) {
    throw new RangeError(`ipv4 options must be a multiple of 4 bytes and at most 40, got ${optLen}`)
  }
  const hl = IPV4_MIN_LENGTH + optLen
  const total = encodingLength(obj)
  checkUint('ipv4', 'total length', total, 0xffff)
  const out = encodeTarget(buf, offset, total)
  out[offset] = 0x40 | (hl >>> 2)
  out[offset + 1] = tos
  writeU16(out, offset + 2, total)
  writeU16(out, offset + 4, id)
  writeU16(out, offset + 6, (flags << 13) | frag)
  out[offset + 8] = ttl
  out[offset + 9] = obj.protocol
  writeU32(out, offset + 12, obj.src)
  writeU32(out, offset + 16, obj.dst)
  if (obj.options) out.set(obj.options, offset + IPV4_MIN_LENGTH)
  if (obj.payload) out.set(obj.payload, offset + hl)
  writeIpv4Checksum(out, offset)
  return out
}

/** Dotted quad of an address number. */
export function ipv4ToString(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 0xff}.${(ip >>> 8) & 0xff}.${ip & 0xff}`
}

/**
 * Address number of a dotted quad (no leading zeros), or -1 for anything else; no regex, no
 * allocation and no exception, as it runs per datagram (node's sender addresses).
 */
export function ipv4Number(s: string): number {
  let ip = 0
  let octet = 0
  let digits = 0
  let dots = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return -1
      ip = ip * 256 + octet
      octet = 0
      digits = 0
    } else if (c >= 48 && c <= 57 && digits < 3 && !(digits > 0 && octet === 0)) {
      octet = octet * 10 + (c - 48)
      if (octet > 255) return -1
      digits++
    } else {
      return -1
    }
  }
  return dots === 3 && digits > 0 ? ip * 256 + octet : -1
}

/** Address number of a dotted quad; throws InvalidIpv4Error for anything else. */
export function parseIpv4(s: string): number {
  const ip = ipv4Number(s)
  if (ip < 0) throw new InvalidIpv4Error(s)
  return ip
}
