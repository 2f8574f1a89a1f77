/**
 * Building the server's answers: the BOOTREPLY header (RFC 2131 table 3), the options in
 * the order the client prefers within the size it accepts, and where the answer goes
 * (RFC 2131 section 4.1, without relays).
 *
 *   const reply = leaseReply(req, net, DhcpMessageType.OFFER, '10.0.0.7')
 *   reply.dstIp   // '10.0.0.7' (unicast to chaddr), or '255.255.255.255' if the client set the broadcast flag
 */
import { BROADCAST_MAC } from '../../packet/mac.js'
import { BOOTREPLY, BROADCAST_FLAG, encode, type DhcpMessage } from './codec.js'
import type { DhcpNetworkConfig } from './config.js'
import { BROADCAST_IPV4, ZERO_IPV4, subnetBroadcast } from './ipv4.js'
import {
  DhcpMessageType, DhcpOption, type DhcpOptions, ipListOption, ipOption, stringOption, uint16Option,
  uint32Option, uint8Option,
} from './options.js'
import type { ClientRequest } from './request.js'

/** A reply for the transport to send as UDP 67 -> 68 from the gateway. */
export interface DhcpReply {
  /** The DHCP message (UDP payload), at least 300 bytes. */
  payload: Uint8Array
  /** True: send to ff:ff:ff:ff:ff:ff / 255.255.255.255. */
  broadcast: boolean
  /** Ethernet destination: the client's MAC, or BROADCAST_MAC. */
  dstMac: number
  /** IPv4 destination: ciaddr, yiaddr, or 255.255.255.255. */
  dstIp: string
  /** Option 53 of the reply (OFFER, ACK or NAK), for logs and counters. */
  messageType: number
}

/** Options sent whether or not the client asked, in this order after the ones it asked for. */
const ALWAYS = [
  DhcpOption.SERVER_ID, DhcpOption.LEASE_TIME, DhcpOption.RENEWAL_TIME, DhcpOption.REBINDING_TIME,
  DhcpOption.SUBNET_MASK, DhcpOption.ROUTER, DhcpOption.DNS_SERVERS, DhcpOption.DOMAIN_NAME, DhcpOption.MTU,
]

/** Options never left out for size: without them the reply means nothing (61: RFC 6842 MUST). */
const ESSENTIAL: ReadonlySet<number> = new Set([
  DhcpOption.MESSAGE_TYPE, DhcpOption.SERVER_ID, DhcpOption.LEASE_TIME, DhcpOption.RENEWAL_TIME,
  DhcpOption.REBINDING_TIME, DhcpOption.CLIENT_ID,
])

/** Header, cookie and the end option. */
const FIXED_BYTES = 241

function wireSize(value: Uint8Array): number {
  return 2 * Math.max(1, Math.ceil(value.length / 255)) + value.length
}

/** What this network can tell a client; lease options only for a lease (not for INFORM). */
function availableOptions(net: DhcpNetworkConfig, lease: boolean): DhcpOptions {
  const o: DhcpOptions = new Map()
  o.set(DhcpOption.SERVER_ID, ipOption(net.serverIp))
  if (lease) {
    o.set(DhcpOption.LEASE_TIME, uint32Option(net.leaseSeconds))
    o.set(DhcpOption.RENEWAL_TIME, uint32Option(Math.floor(net.leaseSeconds * 0.5)))
    o.set(DhcpOption.REBINDING_TIME, uint32Option(Math.floor(net.leaseSeconds * 0.875)))
  }
  o.set(DhcpOption.SUBNET_MASK, ipOption(net.subnetMask))
  if (net.router !== '') o.set(DhcpOption.ROUTER, ipListOption([net.router]))
  if (net.dnsServers.length > 0) o.set(DhcpOption.DNS_SERVERS, ipListOption(net.dnsServers))
  if (net.domainName !== undefined) o.set(DhcpOption.DOMAIN_NAME, stringOption(net.domainName))
  if (net.mtu !== undefined) o.set(DhcpOption.MTU, uint16Option(net.mtu))
  o.set(DhcpOption.BROADCAST_ADDRESS, ipOption(subnetBroadcast(net.serverIp, net.subnetMask)))
  return o
}

/**
 * Orders the options: message type first (some PXE ROMs look only there), then what the
 * client asked for in its order (RFC 2132 9.8: that is its preference), then the rest of
 * ALWAYS. Optional ones that would push the reply past the client's limit are left out.
 */
function replyOptions(req: ClientRequest, type: number, available: DhcpOptions): DhcpOptions {
  const candidates: DhcpOptions = new Map([[DhcpOption.MESSAGE_TYPE, uint8Option(type)]])
  for (const code of req.parameters) {
    const v = available.get(code)
    if (v !== undefined && !candidates.has(code)) candidates.set(code, v)
  }
  for (const code of ALWAYS) {
    const v = available.get(code)
    if (v !== undefined && !candidates.has(code)) candidates.set(code, v)
  }
  if (req.clientId !== undefined) candidates.set(DhcpOption.CLIENT_ID, req.clientId)

  let room = req.maxReply - FIXED_BYTES
  for (const [code, v] of candidates) if (ESSENTIAL.has(code)) room -= wireSize(v)
  const out: DhcpOptions = new Map()
  for (const [code, v] of candidates) {
    if (ESSENTIAL.has(code)) { out.set(code, v); continue }
    const size = wireSize(v)
    if (size <= room) { out.set(code, v); room -= size }
  }
  return out
}

function build(req: ClientRequest, type: number, yiaddr: string, ciaddr: string, options: DhcpOptions): DhcpReply {
  const c = req.msg
  const msg: DhcpMessage = {
    op: BOOTREPLY,
    htype: c.htype,
    hops: 0,
    xid: c.xid,
    secs: 0,
    flags: c.flags,
    ciaddr,
    yiaddr,
    siaddr: ZERO_IPV4,
    giaddr: c.giaddr,
    chaddr: c.chaddr,
    sname: '',
    file: '',
    options,
  }
  // RFC 2131 4.1 with giaddr ignored (no relays on a switch port): NAK broadcast; a client
  // that has an address gets unicast there; the broadcast flag asks for broadcast; else
  // unicast to chaddr/yiaddr, which a raw-socket client (udhcpc, dhclient) receives.
  let dstIp: string
  if (type === DhcpMessageType.NAK) dstIp = BROADCAST_IPV4
  else if (ciaddr !== ZERO_IPV4) dstIp = ciaddr
  else if ((c.flags & BROADCAST_FLAG) !== 0 || yiaddr === ZERO_IPV4) dstIp = BROADCAST_IPV4
  else dstIp = yiaddr
  const broadcast = dstIp === BROADCAST_IPV4
  return { payload: encode(msg), broadcast, dstMac: broadcast ? BROADCAST_MAC : req.mac, dstIp, messageType: type }
}

/** OFFER or ACK of `address` with lease options. */
export function leaseReply(req: ClientRequest, net: DhcpNetworkConfig, type: number, address: string): DhcpReply {
  const options = replyOptions(req, type, availableOptions(net, true))
  // Table 3: ciaddr is 0 in an OFFER, the client's ciaddr in an ACK.
  const ciaddr = type === DhcpMessageType.ACK ? req.msg.ciaddr : ZERO_IPV4
  return build(req, type, address, ciaddr, options)
}

/** ACK to an INFORM: configuration only, no yiaddr and no lease time (RFC 2131 4.3.5). */
export function informReply(req: ClientRequest, net: DhcpNetworkConfig): DhcpReply {
  const options = replyOptions(req, DhcpMessageType.ACK, availableOptions(net, false))
  return build(req, DhcpMessageType.ACK, ZERO_IPV4, req.msg.ciaddr, options)
}

/** NAK with a short reason in option 56, which clients log. */
export function nakReply(req: ClientRequest, net: DhcpNetworkConfig, reason: string): DhcpReply {
  const options: DhcpOptions = new Map([
    [DhcpOption.MESSAGE_TYPE, uint8Option(DhcpMessageType.NAK)],
    [DhcpOption.SERVER_ID, ipOption(net.serverIp)],
    [DhcpOption.MESSAGE, stringOption(reason)],
  ])
  if (req.clientId !== undefined) options.set(DhcpOption.CLIENT_ID, req.clientId)
  return build(req, DhcpMessageType.NAK, ZERO_IPV4, ZERO_IPV4, options)
}
