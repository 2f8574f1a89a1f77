/**
 * Ethernet II headers as TAP devices carry them: no preamble, no FCS, and at most one
 * 802.1Q tag. Frames are not padded to 60 bytes: a TAP takes short frames as they are.
 *
 *   if (len >= ETHERNET_MIN_LENGTH && ethPayloadType(frame, 0) === EtherType.ARP) ...
 *   const { dst, src, etherType, payload } = ethernet.decode(frame)
 *   ethernet.encode({ dst: BROADCAST_MAC, src: myMac, etherType: EtherType.ARP, payload: arpMsg })
 */
import { readMac, writeMac } from './mac.js'
import { MalformedPacketError, checkUint, decodeLength, encodeTarget } from './errors.js'

/** An untagged header: destination, source, EtherType. */
export const ETHERNET_MIN_LENGTH = 14
/** A header with one 802.1Q tag. */
export const ETHERNET_VLAN_MIN_LENGTH = 18

/** EtherTypes the switch looks at. */
export const EtherType = {
  IPV4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  IPV6: 0x86dd,
} as const

/** The 802.1Q tag control information, split into its fields. */
export interface VlanTag {
  /** Priority code point, 0–7. */
  pcp: number
  /** Drop eligible indicator, 0 or 1. */
  dei: number
  /** VLAN id, 0–4095. */
  vid: number
}

/** A decoded frame. */
export interface EthernetFrame {
  dst: number
  src: number
  /** The tag, if the frame carried one. */
  vlan?: VlanTag
  /** The EtherType of the payload (after the tag); values below 0x0600 are 802.3 lengths. */
  etherType: number
  /** Everything after the header (a view, not a copy). */
  payload: Uint8Array
}

/** Encode input: the payload defaults to empty. */
export type EthernetFrameInit = Omit<EthernetFrame, 'payload'> & { payload?: Uint8Array }

const u16 = (buf: Uint8Array, off: number): number => (buf[off] << 8) | buf[off + 1]

// Hot-path accessors. The first three read within ETHERNET_MIN_LENGTH bytes; the tag
// accessors within ETHERNET_VLAN_MIN_LENGTH (check ethHasVlan and the length first).

/** Destination MAC. */
export const ethDst = (buf: Uint8Array, off: number): number => readMac(buf, off)
/** Source MAC. */
export const ethSrc = (buf: Uint8Array, off: number): number => readMac(buf, off + 6)
/** The EtherType field at byte 12 (EtherType.VLAN when tagged). */
export const etherType = (buf: Uint8Array, off: number): number => u16(buf, off + 12)
/** True when an 802.1Q tag follows the source MAC. */
export const ethHasVlan = (buf: Uint8Array, off: number): boolean => u16(buf, off + 12) === EtherType.VLAN
/** Tag control information (PCP, DEI, VID) of a tagged frame. */
export const ethVlanTci = (buf: Uint8Array, off: number): number => u16(buf, off + 14)
/** VLAN id of a tagged frame. */
export const ethVlanId = (buf: Uint8Array, off: number): number => u16(buf, off + 14) & 0x0fff

/** Header length: 14, or 18 with a tag. Reads within ETHERNET_MIN_LENGTH. */
export function ethHeaderLength(buf: Uint8Array, off: number): number {
  return ethHasVlan(buf, off) ? ETHERNET_VLAN_MIN_LENGTH : ETHERNET_MIN_LENGTH
}

/**
 * EtherType of the payload, looking past one tag. Reads within ETHERNET_VLAN_MIN_LENGTH
 * for a tagged frame, else ETHERNET_MIN_LENGTH.
 */
export function ethPayloadType(buf: Uint8Array, off: number): number {
  const t = u16(buf, off + 12)
  return t === EtherType.VLAN ? u16(buf, off + 16) : t
}

/** Writes an untagged header (14 bytes) and returns its length. */
export function writeEthHeader(buf: Uint8Array, off: number, dst: number, src: number, type: number): number {
  writeMac(buf, off, dst)
  writeMac(buf, off + 6, src)
  buf[off + 12] = type >>> 8
  buf[off + 13] = type & 0xff
  return ETHERNET_MIN_LENGTH
}

/** Swaps destination and source MAC in place, turning a frame around for a reply. */
export function ethSwapAddresses(buf: Uint8Array, off: number): void {
  for (let i = 0; i < 6; i++) {
    const b = buf[off + i]
    buf[off + i] = buf[off + 6 + i]
    buf[off + 6 + i] = b
  }
}

/** Decodes the header and views the payload; a tag needs its 4 bytes to be present. */
export function decode(buf: Uint8Array, offset = 0, length?: number): EthernetFrame {
  const len = decodeLength(buf, offset, length)
  if (len < ETHERNET_MIN_LENGTH) throw new MalformedPacketError('ethernet', 'truncated', `${len} of ${ETHERNET_MIN_LENGTH} header bytes`)
  const dst = ethDst(buf, offset)
  const src = ethSrc(buf, offset)
  if (!ethHasVlan(buf, offset)) {
    return { dst, src, etherType: etherType(buf, offset), payload: buf.subarray(offset + ETHERNET_MIN_LENGTH, offset + len) }
  }
  if (len < ETHERNET_VLAN_MIN_LENGTH) throw new MalformedPacketError('ethernet', 'truncated', `${len} of ${ETHERNET_VLAN_MIN_LENGTH} tagged header bytes`)
  const tci = ethVlanTci(buf, offset)
  return {
    dst,
    src,
    vlan: { pcp: tci >>> 13, dei: (tci >>> 12) & 1, vid: tci & 0x0fff },
    etherType: u16(buf, offset + 16),
    payload: buf.subarray(offset + ETHERNET_VLAN_MIN_LENGTH, offset + len),
  }
}

/** Header (14 or 18) plus payload length. */
export function encodingLength(obj: EthernetFrameInit): number {
  return (obj.vlan ? ETHERNET_VLAN_MIN_LENGTH : ETHERNET_MIN_LENGTH) + (obj.payload?.length ?? 0)
}

/** Writes the header and copies the payload after it; returns `buf` (or a new buffer). */
export function encode(obj: EthernetFrameInit, buf?: Uint8Array, offset = 0): Uint8Array {
  checkUint('ethernet', 'dst', obj.dst, 0xffffffffffff)
  checkUint('ethernet', 'src', obj.src, 0xffffffffffff)
  checkUint('ethernet', 'etherType', obj.etherType, 0xffff)
  if (obj.vlan) {
    checkUint('ethernet', 'vlan.pcp', obj.vlan.pcp, 7)
    checkUint('ethernet', 'vlan.dei', obj.vlan.dei, 1)
    checkUint('ethernet', 'vlan.vid', obj.vlan.vid, 0x0fff)
  }
  const out = encodeTarget(buf, offset, encodingLength(obj))
  writeMac(out, offset, obj.dst)
  writeMac(out, offset + 6, obj.src)
  let p = offset + 12
  if (obj.vlan) {
    const tci = (obj.vlan.pcp << 13) | (obj.vlan.dei << 12) | obj.vlan.vid
    out[p++] = EtherType.VLAN >>> 8
    out[p++] = EtherType.VLAN & 0xff
    out[p++] = tci >>> 8
    out[p++] = tci & 0xff
  }
  out[p++] = obj.etherType >>> 8
  out[p++] = obj.etherType & 0xff
  if (obj.payload) out.set(obj.payload, p)
  return out
}
