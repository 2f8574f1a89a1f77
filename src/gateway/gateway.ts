/**
 * A network's gateway, answered by the switch itself in the data path: ARP for the gateway
 * address, ICMP echo to it, DNS (UDP and TCP port 53) and DHCP (UDP port 67). It is the
 * network's LocalStack: the forwarder hands it frames addressed to the gateway's MAC and
 * every broadcast of the network.
 *
 *   const gw = new Gateway({ networkId, ip, mac, mtu, send, dns, dhcp, isMember })
 *   sw.setLocalStack(networkId, gw)
 */
import { ArpOp, arpOp, arpSenderIp, arpTargetIp, isEthIpv4Arp, writeArpReply, ARP_LENGTH } from '../packet/arp.js'
import { echoRequestToReply, icmpCheck, icmpCode, icmpType, IcmpType } from '../packet/icmp.js'
import { IpProtocol, ipv4Check, ipv4Dst, ipv4HeaderLength, ipv4IsFragment, ipv4Protocol, ipv4Src, ipv4SwapAddresses, ipv4TotalLength } from '../packet/ipv4.js'
import { readMac, writeMac, BROADCAST_MAC } from '../packet/mac.js'
import { tcpCheck } from '../packet/tcp.js'
import { udpCheck, udpDstPort, udpLength, udpSrcPort } from '../packet/udp.js'
import { parseIpv4 } from '../packet/ipv4.js'
import type { LocalStack } from '../switch/forwarder.js'
import type { DhcpNetworkConfig, DhcpServer } from './dhcp/index.js'
import type { DnsNetwork, DnsServer } from './dns/index.js'
import { sendUdp, type FlowAddress, type SendFrame } from './frames.js'
import type { Nat, NatNetwork } from '../nat/nat.js'

const ETH = 14
const ETHERTYPE_ARP = 0x0806
const ETHERTYPE_IPV4 = 0x0800
const LIMITED_BROADCAST = 0xffffffff
const DNS_PORT = 53
const DHCP_SERVER_PORT = 67
const DHCP_CLIENT_PORT = 68
/** DHCP chaddr sits 28 bytes into the message. */
const DHCP_CHADDR = 28

export interface GatewayCounters {
  arpReplies: number
  /** ARP requests for endpoints on other hosts answered here instead of flooding them across the overlay. */
  arpSuppressed: number
  arpIgnored: number
  icmpEchoReplies: number
  dnsQueries: number
  dnsRefusedNotMember: number
  dhcpPackets: number
  dhcpSpoofed: number
  malformed: number
  unhandled: number
}

export interface GatewayOptions {
  networkId: string
  ip: string
  mac: number
  mtu: number
  send: SendFrame
  dns?: { server: DnsServer; network: DnsNetwork }
  dhcp?: { server: DhcpServer; config: () => DhcpNetworkConfig; onPort?: (port: number) => void }
  /** True when `ip` belongs to an endpoint of this network: DNS answers only those. */
  isMember: (ip: number) => boolean
  /** External connectivity (none on internal networks) and the gateway's TCP services. */
  nat: { engine: Nat; network: NatNetwork }
  /** The network's subnet: traffic within it is never NAT's. */
  subnet: { network: number; mask: number }
}

export class Gateway implements LocalStack {
  readonly mac: number
  readonly ip: number
  readonly counters: GatewayCounters = { arpReplies: 0, arpSuppressed: 0, arpIgnored: 0, icmpEchoReplies: 0, dnsQueries: 0, dnsRefusedNotMember: 0, dhcpPackets: 0, dhcpSpoofed: 0, malformed: 0, unhandled: 0 }
  private readonly tx: Uint8Array
  private readonly addr: FlowAddress = { srcMac: 0, dstMac: 0, srcIp: 0, dstIp: 0, srcPort: 0, dstPort: 0 }
  /** Addresses of endpoints on other hosts -> their MACs, known from the cluster store. */
  readonly remoteArp = new Map<number, number>()

  constructor(private readonly opts: GatewayOptions) {
    this.mac = opts.mac
    this.ip = parseIpv4(opts.ip)
    // Replies are built here: the slab they answer belongs to the batch being processed.
    this.tx = new Uint8Array(64 + ETH + 65536)
  }

  receive(_net: number, inPort: number, slab: Uint8Array, eth: number, len: number, hdr: number): boolean {
    const type = (slab[eth + 12] << 8) | slab[eth + 13]
    if (type === ETHERTYPE_ARP) return this.arp(inPort, slab, eth, len, hdr)
    if (type === ETHERTYPE_IPV4) this.ipv4(inPort, slab, eth, len, hdr)
    return false
  }

  endBatch(): void {
    this.opts.nat.engine.endBatch()
  }

  /** Returns true when the request was answered for a remote endpoint (and must not be flooded). */
  private arp(inPort: number, slab: Uint8Array, eth: number, len: number, hdr: number): boolean {
    const a = eth + ETH
    if (len < ETH + ARP_LENGTH || !isEthIpv4Arp(slab, a)) {
      this.counters.malformed++
      return false
    }
    const target = arpTargetIp(slab, a)
    // Gratuitous ARP (sender == target) and replies change nothing here.
    if (arpOp(slab, a) !== ArpOp.REQUEST || arpSenderIp(slab, a) === target) {
      this.counters.arpIgnored++
      return false
    }
    if (target === this.ip) {
      if (this.replyArp(inPort, slab, eth, hdr, this.mac)) this.counters.arpReplies++
      return false
    }
    // Only requests from local ports reach here (the forwarder keeps VTEP traffic from the gateway).
    const remote = this.remoteArp.get(target)
    if (remote === undefined) {
      this.counters.arpIgnored++
      return false
    }
    if (this.replyArp(inPort, slab, eth, hdr, remote)) this.counters.arpSuppressed++
    return true
  }

  /** Answers the ARP request at `eth` with `mac` as the owner of the address asked for. */
  private replyArp(inPort: number, slab: Uint8Array, eth: number, hdr: number, mac: number): boolean {
    const tx = this.tx
    tx.fill(0, 0, hdr)
    writeMac(tx, hdr, readMac(slab, eth + 6))
    writeMac(tx, hdr + 6, mac)
    tx[hdr + 12] = ETHERTYPE_ARP >>> 8
    tx[hdr + 13] = ETHERTYPE_ARP & 0xff
    writeArpReply(slab, eth + ETH, mac, tx, hdr + ETH)
    // Pad to the 60-byte Ethernet minimum like any NIC would.
    const n = hdr + ETH + ARP_LENGTH
    tx.fill(0, n, hdr + 60)
    return this.opts.send(inPort, tx, hdr + 60)
  }

  private ipv4(inPort: number, slab: Uint8Array, eth: number, len: number, hdr: number): void {
    const ip = eth + ETH
    const ipLen = len - ETH
    // A NEEDS_CSUM frame carries a partial transport checksum; the IP header's is always complete.
    if (ipv4Check(slab, ip, ipLen) !== null) {
      this.counters.malformed++
      return
    }
    const dst = ipv4Dst(slab, ip)
    if (dst !== this.ip && dst !== LIMITED_BROADCAST) {
      // Beyond the network: external connectivity (NAT refuses it on internal networks).
      const sub = this.opts.subnet
      if (((dst & sub.mask) >>> 0) !== sub.network) this.opts.nat.engine.egress(this.opts.nat.network, inPort, slab, eth, len, hdr)
      return
    }
    if (ipv4IsFragment(slab, ip)) {
      this.counters.unhandled++
      return
    }
    const ihl = ipv4HeaderLength(slab, ip)
    const l4 = ip + ihl
    const l4len = ipv4TotalLength(slab, ip) - ihl
    const proto = ipv4Protocol(slab, ip)
    if (proto === IpProtocol.ICMP && dst === this.ip) this.icmp(inPort, slab, eth, ip, l4, l4len, hdr)
    else if (proto === IpProtocol.UDP) this.udp(inPort, slab, eth, ip, l4, l4len, hdr, dst, len)
    else if (proto === IpProtocol.TCP && dst === this.ip) this.tcpSegment(inPort, slab, eth, l4, l4len, hdr, len)
    else this.counters.unhandled++
  }

  private icmp(inPort: number, slab: Uint8Array, eth: number, ip: number, l4: number, l4len: number, hdr: number): void {
    if (icmpCheck(slab, l4, l4len) !== null) {
      this.counters.malformed++
      return
    }
    if (icmpType(slab, l4) !== IcmpType.ECHO_REQUEST || icmpCode(slab, l4) !== 0) {
      this.counters.unhandled++
      return
    }
    const total = l4 + l4len - eth
    const tx = this.tx
    if (hdr + total > tx.length) return
    tx.fill(0, 0, hdr)
    tx.set(slab.subarray(eth, eth + total), hdr)
    writeMac(tx, hdr, readMac(slab, eth + 6))
    writeMac(tx, hdr + 6, this.mac)
    const rip = hdr + (ip - eth)
    ipv4SwapAddresses(tx, rip)
    echoRequestToReply(tx, hdr + (l4 - eth))
    if (this.opts.send(inPort, tx, hdr + total)) this.counters.icmpEchoReplies++
  }

  private flow(slab: Uint8Array, eth: number, ip: number, sport: number, dport: number): FlowAddress {
    const a = this.addr
    a.srcMac = this.mac
    a.dstMac = readMac(slab, eth + 6)
    a.srcIp = this.ip
    a.dstIp = ipv4Src(slab, ip)
    a.srcPort = dport
    a.dstPort = sport
    return a
  }

  private udp(inPort: number, slab: Uint8Array, eth: number, ip: number, l4: number, l4len: number, hdr: number, dst: number, len: number): void {
    if (udpCheck(slab, l4, l4len) !== null) {
      this.counters.malformed++
      return
    }
    const dport = udpDstPort(slab, l4)
    const payload = l4 + 8
    const plen = udpLength(slab, l4) - 8
    if (dport === DNS_PORT && dst === this.ip && this.opts.dns) {
      const src = ipv4Src(slab, ip)
      if (!this.opts.isMember(src)) {
        this.counters.dnsRefusedNotMember++
        return
      }
      this.counters.dnsQueries++
      // The reply may come later (forwarded query): keep the addressing and a copy of the query.
      const a = { ...this.flow(slab, eth, ip, udpSrcPort(slab, l4), dport) }
      const query = slab.slice(payload, payload + plen)
      const { server, network } = this.opts.dns
      server.handle(this.opts.networkId, network, query, 'udp', (answer) => {
        sendUdp(this.opts.send, inPort, this.tx, hdr, a, answer, this.opts.mtu)
      })
    } else if (dport === DHCP_SERVER_PORT && udpSrcPort(slab, l4) === DHCP_CLIENT_PORT && this.opts.dhcp) {
      this.dhcp(inPort, slab, eth, payload, plen, hdr)
    } else if (dst === this.ip) {
      // Other ports of the gateway's address stand for the host.
      this.opts.nat.engine.egress(this.opts.nat.network, inPort, slab, eth, len, hdr)
    } else {
      this.counters.unhandled++
    }
  }

  private dhcp(inPort: number, slab: Uint8Array, eth: number, payload: number, plen: number, hdr: number): void {
    this.counters.dhcpPackets++
    const { server, config, onPort } = this.opts.dhcp!
    // A client may only ask for its own MAC's lease.
    if (plen < DHCP_CHADDR + 6 || readMac(slab, payload + DHCP_CHADDR) !== readMac(slab, eth + 6)) {
      this.counters.dhcpSpoofed++
      return
    }
    onPort?.(inPort)
    const reply = server.handle(this.opts.networkId, config(), slab.subarray(payload, payload + plen))
    if (!reply) return
    const a: FlowAddress = {
      srcMac: this.mac,
      dstMac: reply.broadcast ? BROADCAST_MAC : reply.dstMac,
      srcIp: this.ip,
      dstIp: parseIpv4(reply.dstIp),
      srcPort: DHCP_SERVER_PORT,
      dstPort: DHCP_CLIENT_PORT,
    }
    sendUdp(this.opts.send, inPort, this.tx, hdr, a, reply.payload, this.opts.mtu)
  }

  /** TCP to the gateway: its own services (DNS) and, beyond them, the host; NAT carries both. */
  private tcpSegment(inPort: number, slab: Uint8Array, eth: number, l4: number, l4len: number, hdr: number, len: number): void {
    if (tcpCheck(slab, l4, l4len) !== null) {
      this.counters.malformed++
      return
    }
    this.opts.nat.engine.egress(this.opts.nat.network, inPort, slab, eth, len, hdr)
  }
}
