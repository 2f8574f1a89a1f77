/**
 * The packet codecs, one namespace per layer, all with the same shape:
 * `encode(obj, buf?, offset?)`, `decode(buf, offset?, length?)`, `encodingLength(obj)`,
 * plus allocation-free accessors for the per-frame path (`ipv4.ipv4Dst(buf, off)`).
 *
 *   import { ethernet, ipv4, udp } from './packet/index.js'
 *   const eth = ethernet.decode(frame)
 *   const ip = ipv4.decode(eth.payload)
 *   const dgram = udp.decode(ip.payload, 0, undefined, { src: ip.src, dst: ip.dst })
 */
export { MalformedPacketError, type MalformedReason, type PacketLayer } from './errors.js'
export * from './checksum.js'
export * from './mac.js'
export * as vnet from './vnet.js'
export * as ethernet from './ethernet.js'
export * as arp from './arp.js'
export * as ipv4 from './ipv4.js'
export * as icmp from './icmp.js'
export * as udp from './udp.js'
export * as tcp from './tcp.js'
