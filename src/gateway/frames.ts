/**
 * Frames the gateway writes itself: UDP datagrams (fragmented to the network's MTU when an
 * answer is larger, as a kernel would) and TCP segments, each with a virtio-net header of
 * `hdr` bytes in front (all zero: checksums are complete, no segmentation).
 *
 *   const len = writeTcpFrame(buf, 12, addr, seq, ack, TcpFlag.ACK, 65535, data, 0, data.length)
 *   send(port, buf, len)
 */
import { writeMac } from '../packet/mac.js'
import { IpProtocol, writeIpv4Checksum, writeIpv4Header } from '../packet/ipv4.js'
import { writeTcpChecksum } from '../packet/tcp.js'
import { internetChecksum, pseudoHeaderSum } from '../packet/checksum.js'

const ETH = 14
const IP = 20
const UDP = 8
const TCP = 20
const ETHERTYPE_IPV4 = 0x0800

/** Who talks to whom: the gateway's and the peer's MAC, address and port. */
export interface FlowAddress {
  srcMac: number
  dstMac: number
  srcIp: number
  dstIp: number
  srcPort: number
  dstPort: number
}

/** Writes one frame to a switch port; returns false when the write failed. */
export type SendFrame = (port: number, buf: Uint8Array, len: number) => boolean

let ipId = 1
const nextId = () => (ipId = (ipId + 1) & 0xffff)

function writeFrameHead(buf: Uint8Array, hdr: number, a: FlowAddress): number {
  buf.fill(0, 0, hdr)
  writeMac(buf, hdr, a.dstMac)
  writeMac(buf, hdr + 6, a.srcMac)
  buf[hdr + 12] = ETHERTYPE_IPV4 >>> 8
  buf[hdr + 13] = ETHERTYPE_IPV4 & 0xff
  return hdr + ETH
}

/**
 * Sends a UDP datagram, split into IPv4 fragments when it does not fit `mtu`.
 * `scratch` must hold hdr + 14 + mtu bytes. Returns the number of frames sent.
 */
export function sendUdp(send: SendFrame, port: number, scratch: Uint8Array, hdr: number, a: FlowAddress, payload: Uint8Array, mtu: number): number {
  const udpLen = UDP + payload.length
  const id = nextId()
  // The UDP header and checksum cover the whole datagram, so compute them once up front.
  const udpHead = new Uint8Array(UDP)
  udpHead[0] = a.srcPort >>> 8
  udpHead[1] = a.srcPort & 0xff
  udpHead[2] = a.dstPort >>> 8
  udpHead[3] = a.dstPort & 0xff
  udpHead[4] = udpLen >>> 8
  udpHead[5] = udpLen & 0xff
  const sum = pseudoHeaderSum(a.srcIp, a.dstIp, IpProtocol.UDP, udpLen)
  const csum = internetChecksum(payload, 0, payload.length, internetChecksum(udpHead, 0, UDP, sum) ^ 0xffff) || 0xffff
  udpHead[6] = csum >>> 8
  udpHead[7] = csum & 0xff

  const maxData = (mtu - IP) & ~7
  let sent = 0
  for (let pos = 0; pos < udpLen; pos += maxData) {
    const chunk = Math.min(maxData, udpLen - pos)
    const ip = writeFrameHead(scratch, hdr, a)
    const data = ip + IP
    for (let i = 0; i < chunk; i++) {
      const p = pos + i
      scratch[data + i] = p < UDP ? udpHead[p] : payload[p - UDP]
    }
    writeIpv4Header(scratch, ip, IP + chunk, id, 64, IpProtocol.UDP, a.srcIp, a.dstIp)
    const more = pos + chunk < udpLen ? 0x2000 : 0
    const frag = more | (pos >>> 3)
    scratch[ip + 6] = frag >>> 8
    scratch[ip + 7] = frag & 0xff
    writeIpv4Checksum(scratch, ip)
    if (send(port, scratch, data + chunk)) sent++
  }
  return sent
}

export const TCP_MSS_OPTION = 4

/**
 * Writes a TCP segment carrying payload[pOff, pOff + pLen); with `mss` set, adds the MSS
 * option (for SYN-ACK). Returns the frame length.
 */
export function writeTcpFrame(buf: Uint8Array, hdr: number, a: FlowAddress, seq: number, ack: number, flags: number, window: number, payload: Uint8Array | undefined, pOff: number, pLen: number, mss = 0): number {
  const ip = writeFrameHead(buf, hdr, a)
  const tcp = ip + IP
  const thl = TCP + (mss ? TCP_MSS_OPTION : 0)
  const segLen = thl + pLen
  writeIpv4Header(buf, ip, IP + segLen, nextId(), 64, IpProtocol.TCP, a.srcIp, a.dstIp)
  buf[tcp] = a.srcPort >>> 8
  buf[tcp + 1] = a.srcPort & 0xff
  buf[tcp + 2] = a.dstPort >>> 8
  buf[tcp + 3] = a.dstPort & 0xff
  writeU32(buf, tcp + 4, seq)
  writeU32(buf, tcp + 8, ack)
  buf[tcp + 12] = (thl / 4) << 4
  buf[tcp + 13] = flags & 0xff
  buf[tcp + 14] = window >>> 8
  buf[tcp + 15] = window & 0xff
  buf[tcp + 16] = buf[tcp + 17] = buf[tcp + 18] = buf[tcp + 19] = 0
  if (mss) {
    buf[tcp + 20] = 2
    buf[tcp + 21] = 4
    buf[tcp + 22] = mss >>> 8
    buf[tcp + 23] = mss & 0xff
  }
  if (payload && pLen) buf.set(payload.subarray(pOff, pOff + pLen), tcp + thl)
  writeTcpChecksum(buf, tcp, segLen, a.srcIp, a.dstIp)
  return tcp + segLen
}

function writeU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 24
  buf[off + 1] = (v >>> 16) & 0xff
  buf[off + 2] = (v >>> 8) & 0xff
  buf[off + 3] = v & 0xff
}
