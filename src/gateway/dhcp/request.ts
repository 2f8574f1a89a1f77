/**
 * What a client asked, read and checked once: the server's state machine works on a
 * ClientRequest and never touches raw options, so every "malformed" decision is made here,
 * before any lease is touched.
 *
 *   const req = readClientRequest(decode(payload))   // throws MalformedDhcpError
 *   if (req === null) ignored++                      // not Ethernet: not ours to answer
 */
import { readMac, isMulticastMac } from '../../packet/mac.js'
import { BOOTREQUEST, HTYPE_ETHERNET, type DhcpMessage } from './codec.js'
import { MalformedDhcpError } from './errors.js'
import {
  DhcpMessageType, getClientId, getHostname, getMaxMessageSize, getMessageType,
  getParameterRequestList, getRequestedIp, getServerId,
} from './options.js'
import { ZERO_IPV4 } from './ipv4.js'

/** The largest IP datagram every client must accept (RFC 2131 section 2), minus IPv4 and UDP headers. */
export const DEFAULT_MAX_REPLY = 576 - 28

/** A client's DHCP message, validated. */
export interface ClientRequest {
  /** The decoded message (replies copy xid, flags, giaddr, chaddr from it). */
  msg: DhcpMessage
  /** Option 53. */
  type: number
  /** chaddr as a MAC number: the client, for the lease backend. */
  mac: number
  /** ciaddr, or undefined when 0.0.0.0. */
  ciaddr: string | undefined
  /** Option 50. */
  requestedIp: string | undefined
  /** Option 54. */
  serverId: string | undefined
  /** Option 12 when it is a usable DNS name, else undefined (a bad name is not worth a drop). */
  hostname: string | undefined
  /** Option 61, echoed in replies (RFC 6842). */
  clientId: Uint8Array | undefined
  /** Option 55, in the client's order of preference; empty if absent. */
  parameters: number[]
  /** Largest DHCP payload the reply may have (option 57 less IP/UDP headers, never under 548). */
  maxReply: number
}

const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
const HOSTNAME = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*$`)

const SERVER_TYPES: ReadonlySet<number> = new Set([DhcpMessageType.OFFER, DhcpMessageType.ACK, DhcpMessageType.NAK])

/**
 * Validates a decoded message as a client's request. Returns null for a well-formed
 * message the switch does not serve (non-Ethernet hardware); throws MalformedDhcpError
 * for anything a client may not send.
 */
export function readClientRequest(msg: DhcpMessage): ClientRequest | null {
  if (msg.op !== BOOTREQUEST) throw new MalformedDhcpError(`op ${msg.op} (BOOTREPLY) from a client`)
  const type = getMessageType(msg.options)
  if (type === undefined) throw new MalformedDhcpError('no message type (option 53): a BOOTP, not DHCP, request')
  if (SERVER_TYPES.has(type)) throw new MalformedDhcpError(`message type ${type} is a server's, not a client's`)
  // Read every option now, so a bad length throws before the server acts.
  const requestedIp = getRequestedIp(msg.options)
  const serverId = getServerId(msg.options)
  const clientId = getClientId(msg.options)
  const parameters = getParameterRequestList(msg.options) ?? []
  const maxSize = getMaxMessageSize(msg.options)
  const name = getHostname(msg.options)

  if (msg.htype !== HTYPE_ETHERNET || msg.chaddr.length !== 6) return null
  const mac = readMac(msg.chaddr, 0)
  if (mac === 0 || isMulticastMac(mac)) throw new MalformedDhcpError('chaddr is not a unicast MAC address')

  return {
    msg,
    type,
    mac,
    ciaddr: msg.ciaddr === ZERO_IPV4 ? undefined : msg.ciaddr,
    requestedIp,
    serverId,
    hostname: name !== undefined && HOSTNAME.test(name) ? name : undefined,
    clientId,
    parameters,
    // RFC 2132 9.10: values under 576 are invalid; fall back to the minimum every client accepts.
    maxReply: Math.max(DEFAULT_MAX_REPLY, (maxSize ?? 0) - 28),
  }
}
