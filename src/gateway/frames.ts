/**
 * Frames the gateway writes itself: UDP datagrams (fragmented to the network's MTU when an
 * answer is larger, as a kernel would) and TCP segments, each with a virtio-net header of
 * `hdr` bytes in front (all zero: checksums are complete, no segmentation).
 *
 *   const len = writeTcpFrame(buf, 12, addr, seq, ack, TcpFlag.ACK, 65535, data, 0, data.length)
 *   send(port, buf, len)
 */
import { TWO32, writeMacHalves } from '../packet/mac.js'
import { IpProtocol, writeIpv4Checksum, writeIpv4Header } from '../packet/ipv4.js'
import { writeTcpChecksum } from '../packet/tcp.js'
import { foldSum, internetChecksum, pseudoHeaderSum } from '../packet/checksum.js'

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
  // Split here: a 48-bit MAC handed to a function is a boxed double (one per frame).
  const dst = a.dstMac
  const src = a.srcMac
  writeMacHalves(buf, hdr, (dst / TWO32) | 0, dst | 0)
  writeMacHalves(buf, hdr + 6, (src / TWO32) | 0, src | 0)
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

/** TCP options the switch sends: MSS and window scale on SYNs. */
export interface TcpFrameOptions {
  /** MSS option (SYN and SYN-ACK). */
  mss?: number
  /** Window scale option (SYN and SYN-ACK), shift count 0-14. */
  wscale?: number
  /**
   * Hand the checksum and segmentation to the receiving kernel (virtio-net header needed):
   * a payload larger than `gsoSize` goes as one TSO frame, cut by the kernel.
   */
  gsoSize?: number
}

const VNET_NEEDS_CSUM = 1
const VNET_GSO_TCPV4 = 1
const TCP_CSUM_OFFSET = 16

/**
 * Writes a TCP segment carrying payload[pOff, pOff + pLen) and returns the frame length.
 * With `gsoSize` and a virtio-net header, only the pseudo-header sum goes into the checksum
 * (NEEDS_CSUM): the kernel completes it, so no byte of payload is summed in JS.
 */
export function writeTcpFrame(buf: Uint8Array, hdr: number, a: FlowAddress, seq: number, ack: number, flags: number, window: number, payload: Uint8Array | undefined, pOff: number, pLen: number, opts: TcpFrameOptions = {}): number {
  const ip = writeFrameHead(buf, hdr, a)
  const tcp = ip + IP
  const optLen = (opts.mss ? 4 : 0) + (opts.wscale !== undefined ? 4 : 0)
  const thl = TCP + optLen
  const segLen = thl + pLen
  // Addresses passed on as signed 32-bit numbers: one above 2^31 would be boxed per call.
  const srcIp = a.srcIp | 0
  const dstIp = a.dstIp | 0
  writeIpv4Header(buf, ip, IP + segLen, nextId(), 64, IpProtocol.TCP, srcIp, dstIp)
  buf[ip + 6] = 0x40 // DF, as a TCP sender sets it
  writeIpv4Checksum(buf, ip)
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
  let o = tcp + TCP
  if (opts.mss) {
    buf[o] = 2
    buf[o + 1] = 4
    buf[o + 2] = opts.mss >>> 8
    buf[o + 3] = opts.mss & 0xff
    o += 4
  }
  if (opts.wscale !== undefined) {
    buf[o] = 1 // NOP, keeps the 3-byte option aligned
    buf[o + 1] = 3
    buf[o + 2] = 3
    buf[o + 3] = opts.wscale
    o += 4
  }
  if (payload && pLen) buf.set(payload.subarray(pOff, pOff + pLen), tcp + thl)
  if (opts.gsoSize && hdr >= 10) {
    const partial = foldSum(pseudoHeaderSum(srcIp, dstIp, IpProtocol.TCP, segLen))
    buf[tcp + 16] = partial >>> 8
    buf[tcp + 17] = partial & 0xff
    buf[0] = VNET_NEEDS_CSUM
    const gso = pLen > opts.gsoSize
    buf[1] = gso ? VNET_GSO_TCPV4 : 0
    writeU16le(buf, 2, tcp + thl - hdr) // hdr_len: all headers
    writeU16le(buf, 4, gso ? opts.gsoSize : 0)
    writeU16le(buf, 6, tcp - hdr) // csum_start
    writeU16le(buf, 8, TCP_CSUM_OFFSET)
  } else {
    writeTcpChecksum(buf, tcp, segLen, srcIp, dstIp)
  }
  return tcp + segLen
}

function writeU16le(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v & 0xff
  buf[off + 1] = v >>> 8
}

function writeU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 24
  buf[off + 1] = (v >>> 16) & 0xff
  buf[off + 2] = (v >>> 8) & 0xff
  buf[off + 3] = v & 0xff
}
