/**
 * UDP headers (RFC 768) over IPv4, for DHCP, DNS and VXLAN. The checksum covers an IPv4
 * pseudo-header, so checking or computing it needs the addresses: pass them as a
 * PseudoHeader. Without one, decode skips the check — which is also right for frames from
 * a TAP marked NEEDS_CSUM, whose checksum field holds only the pseudo-header sum.
 *
 *   if (udpCheck(buf, off, len) === null && udpDstPort(buf, off) === 67) ...
 *   const { srcPort, payload } = udp.decode(buf, off, len, { src, dst })
 *   udp.encode({ srcPort: 67, dstPort: 68, payload: dhcpBytes, pseudoHeader: { src: gw, dst } })
 */
import { type PseudoHeader, internetChecksum, onesSum, pseudoHeaderSum } from './checksum.js'
import { MalformedPacketError, type MalformedReason, checkUint, decodeLength, encodeTarget } from './errors.js'

export type { PseudoHeader } from './checksum.js'

/** The 8-byte header: what the accessors below may read. */
export const UDP_MIN_LENGTH = 8

const PROTO_UDP = 17

/** What `encode` needs. */
export interface UdpDatagramInit {
  srcPort: number
  dstPort: number
  /** Default empty. */
  payload?: Uint8Array
  /** Addresses to compute the checksum with; without them `checksum` is written as given. */
  pseudoHeader?: PseudoHeader
  /** Written as is when there is no pseudoHeader; default 0 ("no checksum", legal in IPv4). */
  checksum?: number
}

/** A decoded datagram; the payload is a view into the input. */
export interface UdpDatagram {
  srcPort: number
  dstPort: number
  /** The length field: header plus payload. */
  length: number
  /** As received; 0 means the sender computed none. */
  checksum: number
  payload: Uint8Array
}

const u16 = (buf: Uint8Array, off: number): number => (buf[off] << 8) | buf[off + 1]

function writeU16(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 8) & 0xff
  buf[off + 1] = v & 0xff
}

// Hot-path accessors: each reads within buf[off, off + UDP_MIN_LENGTH).

/** Source port. */
export const udpSrcPort = (buf: Uint8Array, off: number): number => u16(buf, off)
/** Destination port. */
export const udpDstPort = (buf: Uint8Array, off: number): number => u16(buf, off + 2)
/** Length field: header plus payload. */
export const udpLength = (buf: Uint8Array, off: number): number => u16(buf, off + 4)
/** Checksum field. */
export const udpChecksum = (buf: Uint8Array, off: number): number => u16(buf, off + 6)

/**
 * True when the checksum is right or absent (0). Reads udpLength bytes: run udpCheck
 * first. `src`, `dst` are the IPv4 addresses.
 */
export function udpChecksumOk(buf: Uint8Array, off: number, src: number, dst: number): boolean {
  if (udpChecksum(buf, off) === 0) return true
  const len = udpLength(buf, off)
  return onesSum(buf, off, len, pseudoHeaderSum(src, dst, PROTO_UDP, len)) === 0xffff
}

/** Computes and stores the checksum over udpLength bytes (a result of 0 is sent as 0xffff). */
export function writeUdpChecksum(buf: Uint8Array, off: number, src: number, dst: number): void {
  const len = udpLength(buf, off)
  buf[off + 6] = 0
  buf[off + 7] = 0
  writeU16(buf, off + 6, internetChecksum(buf, off, len, pseudoHeaderSum(src, dst, PROTO_UDP, len)) || 0xffff)
}

/**
 * Validates the lengths of the datagram in buf[off, off + len) (len: the IPv4 payload
 * length) without allocating: null if good, else the reason. Does not check the checksum.
 */
export function udpCheck(buf: Uint8Array, off: number, len: number): MalformedReason | null {
  if (len < UDP_MIN_LENGTH) return 'truncated'
  const ulen = udpLength(buf, off)
  if (ulen < UDP_MIN_LENGTH) return 'bad_length'
  if (ulen > len) return 'truncated'
  return null
}

/**
 * Decodes the datagram at `offset`; `length` (default: the rest of `buf`) is what the
 * IPv4 layer carries, and bytes past the UDP length field are not payload. With a
 * pseudoHeader, a non-zero checksum is verified.
 */
export function decode(buf: Uint8Array, offset = 0, length?: number, pseudoHeader?: PseudoHeader): UdpDatagram {
  const len = decodeLength(buf, offset, length)
  const bad = udpCheck(buf, offset, len)
  if (bad !== null) throw new MalformedPacketError('udp', bad, `${len} bytes, length field ${len >= 6 ? udpLength(buf, offset) : '-'}`)
  if (pseudoHeader && !udpChecksumOk(buf, offset, pseudoHeader.src, pseudoHeader.dst)) {
    throw new MalformedPacketError('udp', 'bad_checksum')
  }
  const ulen = udpLength(buf, offset)
  return {
    srcPort: udpSrcPort(buf, offset),
    dstPort: udpDstPort(buf, offset),
    length: ulen,
    checksum: udpChecksum(buf, offset),
    payload: buf.subarray(offset + UDP_MIN_LENGTH, offset + ulen),
  }
}

/** Header plus payload length. */
export function encodingLength(obj: UdpDatagramInit): number {
  return UDP_MIN_LENGTH + (obj.payload?.length ?? 0)
}

/** Writes header and payload, with a checksum when given a pseudoHeader; returns `buf`. */
export function encode(obj: UdpDatagramInit, buf?: Uint8Array, offset = 0): Uint8Array {
  const len = encodingLength(obj)
  checkUint('udp', 'srcPort', obj.srcPort, 0xffff)
  checkUint('udp', 'dstPort', obj.dstPort, 0xffff)
  checkUint('udp', 'length', len, 0xffff)
  checkUint('udp', 'checksum', obj.checksum ?? 0, 0xffff)
  const out = encodeTarget(buf, offset, len)
  writeU16(out, offset, obj.srcPort)
  writeU16(out, offset + 2, obj.dstPort)
  writeU16(out, offset + 4, len)
  writeU16(out, offset + 6, obj.checksum ?? 0)
  if (obj.payload) out.set(obj.payload, offset + UDP_MIN_LENGTH)
  if (obj.pseudoHeader) writeUdpChecksum(out, offset, obj.pseudoHeader.src, obj.pseudoHeader.dst)
  return out
}
