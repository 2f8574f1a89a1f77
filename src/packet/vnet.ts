/**
 * The virtio-net header (struct virtio_net_hdr_mrg_rxbuf, 12 bytes) that a TAP opened with
 * IFF_VNET_HDR puts in front of every frame. It tells us whether the L4 checksum is still
 * to be done (NEEDS_CSUM) and whether the frame is a GSO super-frame to be segmented.
 * Fields are little-endian: legacy virtio is guest-native, and we only run on x86/arm64
 * little-endian hosts.
 *
 *   const start = VNET_HDR_LENGTH                            // Ethernet frame follows
 *   if (vnetFlags(slab, off) & VnetFlag.NEEDS_CSUM) vnetFinishChecksum(slab, off, len)
 *   zeroVnetHeader(out, 0)                                   // "plain frame" on transmit
 */
import { onesSum } from './checksum.js'
import { MalformedPacketError, checkUint, decodeLength, encodeTarget } from './errors.js'

/** Size of the header we configure with TUNSETVNETHDRSZ (the mergeable-buffers layout). */
export const VNET_HDR_LENGTH = 12
/** Bytes the accessors below may read from their offset. */
export const VNET_HDR_MIN_LENGTH = VNET_HDR_LENGTH

/** `flags` bits (VIRTIO_NET_HDR_F_*). */
export const VnetFlag = {
  /** L4 checksum not done: sum from csumStart to the end, store at csumStart + csumOffset. */
  NEEDS_CSUM: 1,
  /** The sender already verified the checksum. */
  DATA_VALID: 2,
} as const

/** `gso_type` values (VIRTIO_NET_HDR_GSO_*); ECN is a flag OR-ed into the others. */
export const VnetGso = {
  NONE: 0,
  TCPV4: 1,
  UDP: 3,
  TCPV6: 4,
  /** USO (TUN_F_USO4/6, Linux 6.2+). */
  UDP_L4: 5,
  ECN: 0x80,
} as const

/** The header's fields as numbers. */
export interface VnetHeader {
  /** VnetFlag bits. */
  flags: number
  /** VnetGso type, possibly with VnetGso.ECN. */
  gsoType: number
  /** Length of the headers to repeat on every segment (a hint; may be 0). */
  hdrLen: number
  /** Payload bytes per segment when gsoType is not NONE. */
  gsoSize: number
  /** Where the checksummed range starts, from the start of the Ethernet frame. */
  csumStart: number
  /** Where the checksum field is, from csumStart. */
  csumOffset: number
  /** Merged rx buffers; 0 on transmit. */
  numBuffers: number
}

/** A header with the frame that follows it, as `decode` returns it. */
export interface VnetFrame extends VnetHeader {
  /** The Ethernet frame after the header (a view, not a copy). */
  payload: Uint8Array
}

/** Encode input: header fields default to 0, the payload to empty. */
export type VnetFrameInit = Partial<VnetHeader> & { payload?: Uint8Array }

const u16le = (buf: Uint8Array, off: number): number => buf[off] | (buf[off + 1] << 8)

function writeU16le(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v & 0xff
  buf[off + 1] = (v >>> 8) & 0xff
}

// Hot-path accessors: each reads within buf[off, off + VNET_HDR_MIN_LENGTH).

/** VnetFlag bits. */
export const vnetFlags = (buf: Uint8Array, off: number): number => buf[off]
/** VnetGso type, with ECN bit. */
export const vnetGsoType = (buf: Uint8Array, off: number): number => buf[off + 1]
/** Header length hint for GSO. */
export const vnetHdrLen = (buf: Uint8Array, off: number): number => u16le(buf, off + 2)
/** Segment payload size for GSO. */
export const vnetGsoSize = (buf: Uint8Array, off: number): number => u16le(buf, off + 4)
/** Start of the checksummed range, from the Ethernet frame's first byte. */
export const vnetCsumStart = (buf: Uint8Array, off: number): number => u16le(buf, off + 6)
/** Position of the checksum field, from csumStart. */
export const vnetCsumOffset = (buf: Uint8Array, off: number): number => u16le(buf, off + 8)
/** Merged rx buffer count. */
export const vnetNumBuffers = (buf: Uint8Array, off: number): number => u16le(buf, off + 10)

/** Writes all 12 bytes of the header at `off`. Fields are masked, not checked. */
export function writeVnetHeader(buf: Uint8Array, off: number, h: VnetHeader): void {
  buf[off] = h.flags & 0xff
  buf[off + 1] = h.gsoType & 0xff
  writeU16le(buf, off + 2, h.hdrLen)
  writeU16le(buf, off + 4, h.gsoSize)
  writeU16le(buf, off + 6, h.csumStart)
  writeU16le(buf, off + 8, h.csumOffset)
  writeU16le(buf, off + 10, h.numBuffers)
}

/** An all-zero header: a complete frame, checksums done, no GSO. */
export function zeroVnetHeader(buf: Uint8Array, off: number): void {
  buf.fill(0, off, off + VNET_HDR_LENGTH)
}

/**
 * Completes a NEEDS_CSUM frame in place, as the kernel's skb_checksum_help does: the
 * checksum field already holds the pseudo-header sum, so the result is the complement of
 * the sum from csumStart to the end (0 becomes 0xffff, which UDP needs and TCP accepts).
 * Clears NEEDS_CSUM and the offsets. `len` counts header plus frame. Returns false, leaving
 * the frame untouched, if the offsets point outside the frame (drop it).
 */
export function vnetFinishChecksum(buf: Uint8Array, off: number, len: number): boolean {
  if ((buf[off] & VnetFlag.NEEDS_CSUM) === 0) return true
  const frame = off + VNET_HDR_LENGTH
  const frameLen = len - VNET_HDR_LENGTH
  const start = vnetCsumStart(buf, off)
  const field = start + vnetCsumOffset(buf, off)
  if (field + 2 > frameLen) return false
  const csum = ~onesSum(buf, frame + start, frameLen - start) & 0xffff || 0xffff
  buf[frame + field] = csum >>> 8
  buf[frame + field + 1] = csum & 0xff
  buf[off] &= ~VnetFlag.NEEDS_CSUM
  writeU16le(buf, off + 6, 0)
  writeU16le(buf, off + 8, 0)
  return true
}

const KNOWN_GSO = new Set<number>([VnetGso.NONE, VnetGso.TCPV4, VnetGso.UDP, VnetGso.TCPV6, VnetGso.UDP_L4])

/**
 * Decodes the header and views the frame after it. `length` (default: to the end of `buf`)
 * counts header plus frame. Rejects unknown GSO types, GSO without a segment size and
 * checksum offsets outside the frame.
 */
export function decode(buf: Uint8Array, offset = 0, length?: number): VnetFrame {
  const len = decodeLength(buf, offset, length)
  if (len < VNET_HDR_LENGTH) throw new MalformedPacketError('vnet', 'truncated', `${len} of ${VNET_HDR_LENGTH} header bytes`)
  const h: VnetFrame = {
    flags: vnetFlags(buf, offset),
    gsoType: vnetGsoType(buf, offset),
    hdrLen: vnetHdrLen(buf, offset),
    gsoSize: vnetGsoSize(buf, offset),
    csumStart: vnetCsumStart(buf, offset),
    csumOffset: vnetCsumOffset(buf, offset),
    numBuffers: vnetNumBuffers(buf, offset),
    payload: buf.subarray(offset + VNET_HDR_LENGTH, offset + len),
  }
  const gso = h.gsoType & ~VnetGso.ECN
  if (!KNOWN_GSO.has(gso)) throw new MalformedPacketError('vnet', 'unsupported', `gso type ${h.gsoType}`)
  if (gso !== VnetGso.NONE && h.gsoSize === 0) throw new MalformedPacketError('vnet', 'bad_value', 'gso without a segment size')
  if (h.flags & VnetFlag.NEEDS_CSUM && h.csumStart + h.csumOffset + 2 > h.payload.length) {
    throw new MalformedPacketError('vnet', 'bad_value', `checksum at ${h.csumStart}+${h.csumOffset} is outside the ${h.payload.length}-byte frame`)
  }
  return h
}

/** Header plus payload length. */
export function encodingLength(obj: VnetFrameInit): number {
  return VNET_HDR_LENGTH + (obj.payload?.length ?? 0)
}

/** Writes the header and copies the payload after it; returns `buf` (or a new buffer). */
export function encode(obj: VnetFrameInit, buf?: Uint8Array, offset = 0): Uint8Array {
  const h: VnetHeader = {
    flags: obj.flags ?? 0,
    gsoType: obj.gsoType ?? VnetGso.NONE,
    hdrLen: obj.hdrLen ?? 0,
    gsoSize: obj.gsoSize ?? 0,
    csumStart: obj.csumStart ?? 0,
    csumOffset: obj.csumOffset ?? 0,
    numBuffers: obj.numBuffers ?? 0,
  }
  checkUint('vnet', 'flags', h.flags, 0xff)
  checkUint('vnet', 'gsoType', h.gsoType, 0xff)
  checkUint('vnet', 'hdrLen', h.hdrLen, 0xffff)
  checkUint('vnet', 'gsoSize', h.gsoSize, 0xffff)
  checkUint('vnet', 'csumStart', h.csumStart, 0xffff)
  checkUint('vnet', 'csumOffset', h.csumOffset, 0xffff)
  checkUint('vnet', 'numBuffers', h.numBuffers, 0xffff)
  const out = encodeTarget(buf, offset, encodingLength(obj))
  writeVnetHeader(out, offset, h)
  if (obj.payload) out.set(obj.payload, offset + VNET_HDR_LENGTH)
  return out
}
