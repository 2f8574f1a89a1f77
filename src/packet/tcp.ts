/**
 * TCP headers (RFC 9293) over IPv4, for connection tracking and the NAT that terminates
 * flows at the gateway. Options stay raw bytes. A segment has no length field of its own:
 * its length is the IPv4 payload length. The checksum covers an IPv4 pseudo-header (see
 * udp.ts for why it is optional here).
 *
 *   if (tcpCheck(buf, off, len) === null && tcpFlags(buf, off) & TcpFlag.SYN) ...
 *   const seg = tcp.decode(buf, off, len, { src, dst })
 *   tcp.encode({ srcPort, dstPort, seq, ack, flags: TcpFlag.ACK, window, pseudoHeader: { src, dst } })
 */
import { type PseudoHeader, internetChecksum, onesSum, pseudoHeaderSum } from './checksum.js'
import { MalformedPacketError, type MalformedReason, checkUint, decodeLength, encodeTarget } from './errors.js'

export type { PseudoHeader } from './checksum.js'

/** A header without options: what the accessors below may read. */
export const TCP_MIN_LENGTH = 20
/** Largest header: data offset 15. */
export const TCP_MAX_HEADER_LENGTH = 60

const PROTO_TCP = 6

/** Flag bits as tcpFlags returns them (AE, formerly NS, is bit 8). */
export const TcpFlag = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
  AE: 0x100,
} as const

/** What `encode` needs; numbers default to 0, options and payload to empty. */
export interface TcpSegmentInit {
  srcPort: number
  dstPort: number
  seq?: number
  ack?: number
  /** TcpFlag bits. */
  flags?: number
  window?: number
  urgentPointer?: number
  /** Raw options, a multiple of 4 bytes (pad with NOP/EOL), at most 40. */
  options?: Uint8Array
  payload?: Uint8Array
  /** Addresses to compute the checksum with; without them `checksum` is written as given. */
  pseudoHeader?: PseudoHeader
  /** Written as is when there is no pseudoHeader; default 0. */
  checksum?: number
}

/** A decoded segment; options and payload are views into the input. */
export interface TcpSegment {
  srcPort: number
  dstPort: number
  seq: number
  ack: number
  /** Header length in bytes: the data offset × 4, 20–60. */
  headerLength: number
  /** TcpFlag bits. */
  flags: number
  window: number
  /** As received. */
  checksum: number
  urgentPointer: number
  options: Uint8Array
  payload: Uint8Array
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

// Hot-path accessors: each reads within buf[off, off + TCP_MIN_LENGTH).

/** Source port. */
export const tcpSrcPort = (buf: Uint8Array, off: number): number => u16(buf, off)
/** Destination port. */
export const tcpDstPort = (buf: Uint8Array, off: number): number => u16(buf, off + 2)
/** Sequence number. */
export const tcpSeq = (buf: Uint8Array, off: number): number => u32(buf, off + 4)
/** Acknowledgment number. */
export const tcpAck = (buf: Uint8Array, off: number): number => u32(buf, off + 8)
/** Header length in bytes (data offset × 4); below 20 means malformed. */
export const tcpHeaderLength = (buf: Uint8Array, off: number): number => (buf[off + 12] >>> 4) << 2
/** TcpFlag bits, AE included. */
export const tcpFlags = (buf: Uint8Array, off: number): number => ((buf[off + 12] & 1) << 8) | buf[off + 13]
/** Receive window (unscaled). */
export const tcpWindow = (buf: Uint8Array, off: number): number => u16(buf, off + 14)
/** Checksum field. */
export const tcpChecksum = (buf: Uint8Array, off: number): number => u16(buf, off + 16)
/** Urgent pointer. */
export const tcpUrgentPointer = (buf: Uint8Array, off: number): number => u16(buf, off + 18)

/** True when the checksum over buf[off, off + len) with the pseudo-header is right. */
export function tcpChecksumOk(buf: Uint8Array, off: number, len: number, src: number, dst: number): boolean {
  return onesSum(buf, off, len, pseudoHeaderSum(src, dst, PROTO_TCP, len)) === 0xffff
}

/** Computes and stores the checksum over buf[off, off + len). */
export function writeTcpChecksum(buf: Uint8Array, off: number, len: number, src: number, dst: number): void {
  buf[off + 16] = 0
  buf[off + 17] = 0
  writeU16(buf, off + 16, internetChecksum(buf, off, len, pseudoHeaderSum(src, dst, PROTO_TCP, len)))
}

/**
 * Validates the data offset of the segment in buf[off, off + len) without allocating:
 * null if good, else the reason. Does not check the checksum.
 */
export function tcpCheck(buf: Uint8Array, off: number, len: number): MalformedReason | null {
  if (len < TCP_MIN_LENGTH) return 'truncated'
  const hl = tcpHeaderLength(buf, off)
  if (hl < TCP_MIN_LENGTH) return 'bad_header_length'
  if (hl > len) return 'truncated'
  return null
}

/**
 * Decodes the segment that fills buf[offset, offset + length) (pass the IPv4 payload
 * length). With a pseudoHeader, the checksum is verified.
 */
export function decode(buf: Uint8Array, offset = 0, length?: number, pseudoHeader?: PseudoHeader): TcpSegment {
  const len = decodeLength(buf, offset, length)
  const bad = tcpCheck(buf, offset, len)
  if (bad !== null) throw new MalformedPacketError('tcp', bad, `${len} bytes, data offset ${len > 12 ? buf[offset + 12] >>> 4 : '-'}`)
  if (pseudoHeader && !tcpChecksumOk(buf, offset, len, pseudoHeader.src, pseudoHeader.dst)) {
    throw new MalformedPacketError('tcp', 'bad_checksum')
  }
  const hl = tcpHeaderLength(buf, offset)
  return {
    srcPort: tcpSrcPort(buf, offset),
    dstPort: tcpDstPort(buf, offset),
    seq: tcpSeq(buf, offset),
    ack: tcpAck(buf, offset),
    headerLength: hl,
    flags: tcpFlags(buf, offset),
    window: tcpWindow(buf, offset),
    checksum: tcpChecksum(buf, offset),
    urgentPointer: tcpUrgentPointer(buf, offset),
    options: buf.subarray(offset + TCP_MIN_LENGTH, offset + hl),
    payload: buf.subarray(offset + hl, offset + len),
  }
}

/** Header (with options) plus payload length. */
export function encodingLength(obj: TcpSegmentInit): number {
  return TCP_MIN_LENGTH + (obj.options?.length ?? 0) + (obj.payload?.length ?? 0)
}

/** Writes header, options and payload, with a checksum when given a pseudoHeader; returns `buf`. */
export function encode(obj: TcpSegmentInit, buf?: Uint8Array, offset = 0): Uint8Array {
  const seq = obj.seq ?? 0
  const ack = obj.ack ?? 0
  const flags = obj.flags ?? 0
  const window = obj.window ?? 0
  const urgent = obj.urgentPointer ?? 0
  const checksum = obj.checksum ?? 0
  const optLen = obj.options?.length ?? 0
  checkUint('tcp', 'srcPort', obj.srcPort, 0xffff)
  checkUint('tcp', 'dstPort', obj.dstPort, 0xffff)
  checkUint('tcp', 'seq', seq, 0xffffffff)
  checkUint('tcp', 'ack', ack, 0xffffffff)
  checkUint('tcp', 'flags', flags, 0x1ff)
  checkUint('tcp', 'window', window, 0xffff)
  checkUint('tcp', 'urgentPointer', urgent, 0xffff)
  checkUint('tcp', 'checksum', checksum, 0xffff)
  if (optLen % 4 !== 0 || optLen > TCP_MAX_HEADER_LENGTH - TCP_MIN_LENGTH) {
    throw new RangeError(`tcp options must be a multiple of 4 bytes and at most 40, got ${optLen}`)
  }
  const hl = TCP_MIN_LENGTH + optLen
  const len = encodingLength(obj)
  const out = encodeTarget(buf, offset, len)
  writeU16(out, offset, obj.srcPort)
  writeU16(out, offset + 2, obj.dstPort)
  writeU32(out, offset + 4, seq)
  writeU32(out, offset + 8, ack)
  out[offset + 12] = ((hl >>> 2) << 4) | (flags >>> 8)
  out[offset + 13] = flags & 0xff
  writeU16(out, offset + 14, window)
  writeU16(out, offset + 16, checksum)
  writeU16(out, offset + 18, urgent)
  if (obj.options) out.set(obj.options, offset + TCP_MIN_LENGTH)
  if (obj.payload) out.set(obj.payload, offset + hl)
  if (obj.pseudoHeader) writeTcpChecksum(out, offset, len, obj.pseudoHeader.src, obj.pseudoHeader.dst)
  return out
}
