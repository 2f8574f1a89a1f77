/**
 * ICMP for IPv4 (RFC 792), mainly echo: the switch answers pings to its gateway address by
 * turning the request around in place. Other types decode generically: `id` and `seq` are
 * then just the two halves of the header's second word (e.g. next-hop MTU in `seq`).
 *
 *   if (icmpType(buf, off) === IcmpType.ECHO_REQUEST && icmpChecksumOk(buf, off, len)) {
 *     echoRequestToReply(buf, off); ipv4SwapAddresses(buf, ipOff); ethSwapAddresses(buf, 0)
 *   }
 *   icmp.encode({ type: IcmpType.ECHO_REQUEST, id: 1, seq: 1, payload })
 */
import { checksumAdjust16, internetChecksum, onesSum } from './checksum.js'
import { MalformedPacketError, type MalformedReason, checkUint, decodeLength, encodeTarget } from './errors.js'

/** Type, code, checksum and one 32-bit word: what the accessors below may read. */
export const ICMP_MIN_LENGTH = 8

/** Message types the switch uses. */
export const IcmpType = {
  ECHO_REPLY: 0,
  DEST_UNREACHABLE: 3,
  ECHO_REQUEST: 8,
  TIME_EXCEEDED: 11,
} as const

/** What `encode` needs; code, id, seq default to 0, the payload to empty. */
export interface IcmpMessageInit {
  type: number
  code?: number
  /** Echo identifier (high half of the second word). */
  id?: number
  /** Echo sequence number (low half of the second word). */
  seq?: number
  payload?: Uint8Array
}

/** A decoded message; the payload is a view into the input. */
export interface IcmpMessage extends Required<IcmpMessageInit> {
  /** The checksum as received (verified by decode). */
  checksum: number
}

const u16 = (buf: Uint8Array, off: number): number => (buf[off] << 8) | buf[off + 1]

function writeU16(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 8) & 0xff
  buf[off + 1] = v & 0xff
}

// Hot-path accessors: each reads within buf[off, off + ICMP_MIN_LENGTH).

/** IcmpType. */
export const icmpType = (buf: Uint8Array, off: number): number => buf[off]
/** Code. */
export const icmpCode = (buf: Uint8Array, off: number): number => buf[off + 1]
/** Checksum field. */
export const icmpChecksum = (buf: Uint8Array, off: number): number => u16(buf, off + 2)
/** Echo identifier. */
export const icmpEchoId = (buf: Uint8Array, off: number): number => u16(buf, off + 4)
/** Echo sequence number. */
export const icmpEchoSeq = (buf: Uint8Array, off: number): number => u16(buf, off + 6)

/** True when the checksum over the whole message, buf[off, off + len), is right. */
export function icmpChecksumOk(buf: Uint8Array, off: number, len: number): boolean {
  return onesSum(buf, off, len) === 0xffff
}

/** Computes and stores the checksum over the whole message, buf[off, off + len). */
export function writeIcmpChecksum(buf: Uint8Array, off: number, len: number): void {
  buf[off + 2] = 0
  buf[off + 3] = 0
  writeU16(buf, off + 2, internetChecksum(buf, off, len))
}

/**
 * Turns the echo request at `off` into its reply in place: type 0, checksum updated
 * incrementally (RFC 1624), so the payload is not reread. Id, seq and data stay, as the
 * reply must echo them. Does not check the type: test icmpType first.
 */
export function echoRequestToReply(buf: Uint8Array, off: number): void {
  const oldWord = u16(buf, off)
  buf[off] = IcmpType.ECHO_REPLY
  writeU16(buf, off + 2, checksumAdjust16(icmpChecksum(buf, off), oldWord, u16(buf, off)))
}

/** Validates buf[off, off + len) without allocating: null if good, else the reason. */
export function icmpCheck(buf: Uint8Array, off: number, len: number): MalformedReason | null {
  if (len < ICMP_MIN_LENGTH) return 'truncated'
  if (!icmpChecksumOk(buf, off, len)) return 'bad_checksum'
  return null
}

/**
 * Decodes the message that fills buf[offset, offset + length) (an ICMP message has no
 * length field: pass the IPv4 payload length). Verifies the checksum.
 */
export function decode(buf: Uint8Array, offset = 0, length?: number): IcmpMessage {
  const len = decodeLength(buf, offset, length)
  const bad = icmpCheck(buf, offset, len)
  if (bad !== null) throw new MalformedPacketError('icmp', bad, `${len} bytes`)
  return {
    type: icmpType(buf, offset),
    code: icmpCode(buf, offset),
    checksum: icmpChecksum(buf, offset),
    id: icmpEchoId(buf, offset),
    seq: icmpEchoSeq(buf, offset),
    payload: buf.subarray(offset + ICMP_MIN_LENGTH, offset + len),
  }
}

/** Header plus payload length. */
export function encodingLength(obj: IcmpMessageInit): number {
  return ICMP_MIN_LENGTH + (obj.payload?.length ?? 0)
}

/** Writes the message with its checksum; returns `buf` (or a new buffer). */
export function encode(obj: IcmpMessageInit, buf?: Uint8Array, offset = 0): Uint8Array {
  const code = obj.code ?? 0
  const id = obj.id ?? 0
  const seq = obj.seq ?? 0
  checkUint('icmp', 'type', obj.type, 0xff)
  checkUint('icmp', 'code', code, 0xff)
  checkUint('icmp', 'id', id, 0xffff)
  checkUint('icmp', 'seq', seq, 0xffff)
  const len = encodingLength(obj)
  const out = encodeTarget(buf, offset, len)
  out[offset] = obj.type
  out[offset + 1] = code
  writeU16(out, offset + 4, id)
  writeU16(out, offset + 6, seq)
  if (obj.payload) out.set(obj.payload, offset + ICMP_MIN_LENGTH)
  writeIcmpChecksum(out, offset, len)
  return out
}
