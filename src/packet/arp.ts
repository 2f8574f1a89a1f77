/**
 * ARP for IPv4 over Ethernet (RFC 826) — the only kind the switch answers, for its gateway
 * address and for remote overlay endpoints. Other hardware or protocol types are rejected.
 *
 *   if (len >= ARP_MIN_LENGTH && isEthIpv4Arp(buf, off) && arpOp(buf, off) === ArpOp.REQUEST &&
 *       arpTargetIp(buf, off) === gatewayIp) writeArpReply(buf, off, gatewayMac)  // in place
 *   arp.encode({ op: ArpOp.REQUEST, senderMac, senderIp, targetMac: 0, targetIp })
 */
import { readMac, writeMac } from './mac.js'
import { MalformedPacketError, checkUint, decodeLength, encodeTarget } from './errors.js'

/** Bytes of an Ethernet/IPv4 ARP message; anything after it is Ethernet padding. */
export const ARP_LENGTH = 28
/** Bytes the accessors below may read from their offset. */
export const ARP_MIN_LENGTH = ARP_LENGTH

/** Operation codes. */
export const ArpOp = {
  REQUEST: 1,
  REPLY: 2,
} as const

const HTYPE_ETHERNET = 1
const PTYPE_IPV4 = 0x0800

/** A decoded (or to-be-encoded) Ethernet/IPv4 ARP message. */
export interface ArpPacket {
  /** ArpOp.REQUEST or ArpOp.REPLY. */
  op: number
  senderMac: number
  /** IPv4 address as an unsigned 32-bit number. */
  senderIp: number
  /** 0 in a request. */
  targetMac: number
  targetIp: number
}

const u16 = (buf: Uint8Array, off: number): number => (buf[off] << 8) | buf[off + 1]
const u32 = (buf: Uint8Array, off: number): number =>
  ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0

function writeU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 24
  buf[off + 1] = (v >>> 16) & 0xff
  buf[off + 2] = (v >>> 8) & 0xff
  buf[off + 3] = v & 0xff
}

// Hot-path accessors: each reads within buf[off, off + ARP_MIN_LENGTH).

/** True for hardware type Ethernet (6-byte addresses) and protocol IPv4 (4-byte). */
export function isEthIpv4Arp(buf: Uint8Array, off: number): boolean {
  return u16(buf, off) === HTYPE_ETHERNET && u16(buf, off + 2) === PTYPE_IPV4 && buf[off + 4] === 6 && buf[off + 5] === 4
}
/** Operation code. */
export const arpOp = (buf: Uint8Array, off: number): number => u16(buf, off + 6)
/** Sender hardware address. */
export const arpSenderMac = (buf: Uint8Array, off: number): number => readMac(buf, off + 8)
/** Sender protocol address. */
export const arpSenderIp = (buf: Uint8Array, off: number): number => u32(buf, off + 14)
/** Target hardware address. */
export const arpTargetMac = (buf: Uint8Array, off: number): number => readMac(buf, off + 18)
/** Target protocol address: the address asked about in a request. */
export const arpTargetIp = (buf: Uint8Array, off: number): number => u32(buf, off + 24)

/** Writes a whole 28-byte message. Fields are masked, not checked. */
export function writeArp(buf: Uint8Array, off: number, op: number, senderMac: number, senderIp: number, targetMac: number, targetIp: number): void {
  buf[off] = 0
  buf[off + 1] = HTYPE_ETHERNET
  buf[off + 2] = PTYPE_IPV4 >>> 8
  buf[off + 3] = PTYPE_IPV4 & 0xff
  buf[off + 4] = 6
  buf[off + 5] = 4
  buf[off + 6] = (op >>> 8) & 0xff
  buf[off + 7] = op & 0xff
  writeMac(buf, off + 8, senderMac)
  writeU32(buf, off + 14, senderIp)
  writeMac(buf, off + 18, targetMac)
  writeU32(buf, off + 24, targetIp)
}

/**
 * Builds the reply to the request at `req[reqOff]`: "targetIp is at `mac`", addressed to
 * the requester. Writes all 28 bytes at `out[outOff]`, which may be the request itself
 * (the default). Does not check that the request is one: test isEthIpv4Arp and arpOp
 * first. Returns ARP_LENGTH. The Ethernet header is the caller's (dst = requester).
 */
export function writeArpReply(req: Uint8Array, reqOff: number, mac: number, out: Uint8Array = req, outOff: number = reqOff): number {
  // Read everything before writing: out may overlap req.
  const askerMac = arpSenderMac(req, reqOff)
  const askerIp = arpSenderIp(req, reqOff)
  const askedIp = arpTargetIp(req, reqOff)
  writeArp(out, outOff, ArpOp.REPLY, mac, askedIp, askerMac, askerIp)
  return ARP_LENGTH
}

/** Decodes one message; bytes after the first 28 (Ethernet padding) are ignored. */
export function decode(buf: Uint8Array, offset = 0, length?: number): ArpPacket {
  const len = decodeLength(buf, offset, length)
  if (len < ARP_LENGTH) throw new MalformedPacketError('arp', 'truncated', `${len} of ${ARP_LENGTH} bytes`)
  const htype = u16(buf, offset)
  const ptype = u16(buf, offset + 2)
  if (htype !== HTYPE_ETHERNET) throw new MalformedPacketError('arp', 'unsupported', `hardware type ${htype}`)
  if (ptype !== PTYPE_IPV4) throw new MalformedPacketError('arp', 'unsupported', `protocol type 0x${ptype.toString(16)}`)
  if (buf[offset + 4] !== 6 || buf[offset + 5] !== 4) {
    throw new MalformedPacketError('arp', 'bad_length', `address sizes ${buf[offset + 4]}/${buf[offset + 5]}, expected 6/4`)
  }
  const op = arpOp(buf, offset)
  if (op !== ArpOp.REQUEST && op !== ArpOp.REPLY) throw new MalformedPacketError('arp', 'unsupported', `operation ${op}`)
  return {
    op,
    senderMac: arpSenderMac(buf, offset),
    senderIp: arpSenderIp(buf, offset),
    targetMac: arpTargetMac(buf, offset),
    targetIp: arpTargetIp(buf, offset),
  }
}

/** Always ARP_LENGTH. */
export function encodingLength(_obj?: ArpPacket): number {
  return ARP_LENGTH
}

/** Writes all 28 bytes; returns `buf` (or a new buffer). */
export function encode(obj: ArpPacket, buf?: Uint8Array, offset = 0): Uint8Array {
  checkUint('arp', 'op', obj.op, 0xffff)
  checkUint('arp', 'senderMac', obj.senderMac, 0xffffffffffff)
  checkUint('arp', 'senderIp', obj.senderIp, 0xffffffff)
  checkUint('arp', 'targetMac', obj.targetMac, 0xffffffffffff)
  checkUint('arp', 'targetIp', obj.targetIp, 0xffffffff)
  const out = encodeTarget(buf, offset, ARP_LENGTH)
  writeArp(out, offset, obj.op, obj.senderMac, obj.senderIp, obj.targetMac, obj.targetIp)
  return out
}
