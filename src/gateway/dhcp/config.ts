/**
 * A network's DHCP settings and their check. The control plane builds one per network
 * (from its IPAM config and options) and should call checkDhcpConfig when the network is
 * created or changed, so a bad setting is an API error, not a surprise in the data path.
 *
 *   const net: DhcpNetworkConfig = { enabled: true, serverIp: '10.0.0.1', subnetMask: '255.255.255.0',
 *     router: '10.0.0.1', dnsServers: ['10.0.0.1'], leaseSeconds: 3600 }
 *   checkDhcpConfig(net)   // throws InvalidDhcpConfigError
 */
import { tryParseIpv4 } from './ipv4.js'

/** DHCP settings of one network. */
export interface DhcpNetworkConfig {
  /** Per-network switch: when false the server stays silent on this network. */
  enabled: boolean
  /** The gateway's address: source of replies and server identifier (option 54). */
  serverIp: string
  /** Subnet mask of the network (option 1); also decides which requested addresses are on-link. */
  subnetMask: string
  /** Default gateway (option 3); '' for none (an internal network without egress). */
  router: string
  /** DNS servers (option 6), normally the gateway itself; empty for none. */
  dnsServers: string[]
  /** Search domain (option 15). */
  domainName?: string
  /** Interface MTU (option 26), e.g. 1450 on an overlay. */
  mtu?: number
  /** Lease time in seconds (option 51); T1 and T2 are derived from it. */
  leaseSeconds: number
}

/** A DhcpNetworkConfig that cannot be served. */
export class InvalidDhcpConfigError extends Error {
  override readonly name = 'InvalidDhcpConfigError'
  readonly code = 'INVALID_DHCP_CONFIG'
  constructor(readonly field: string, readonly problem: string) {
    super(`invalid DHCP config: ${field} ${problem}`)
  }
}

function isContiguousMask(m: number): boolean {
  const inv = (~m) >>> 0
  // A mask is ones then zeros, so its complement plus one is a power of two.
  return ((inv + 1) & inv) === 0
}

/** Throws InvalidDhcpConfigError naming the first bad field. */
export function checkDhcpConfig(net: DhcpNetworkConfig): void {
  if (tryParseIpv4(net.serverIp) === undefined) throw new InvalidDhcpConfigError('serverIp', `${JSON.stringify(net.serverIp)} is not an IPv4 address`)
  const mask = tryParseIpv4(net.subnetMask)
  if (mask === undefined || !isContiguousMask(mask)) throw new InvalidDhcpConfigError('subnetMask', `${JSON.stringify(net.subnetMask)} is not a netmask like 255.255.255.0`)
  if (net.router !== '' && tryParseIpv4(net.router) === undefined) throw new InvalidDhcpConfigError('router', `${JSON.stringify(net.router)} is not an IPv4 address (use '' for none)`)
  for (const d of net.dnsServers) {
    if (tryParseIpv4(d) === undefined) throw new InvalidDhcpConfigError('dnsServers', `entry ${JSON.stringify(d)} is not an IPv4 address`)
  }
  if (net.dnsServers.length > 63) throw new InvalidDhcpConfigError('dnsServers', 'has more than 63 entries')
  if (net.domainName !== undefined && !/^[\x21-\x7e]{1,253}$/.test(net.domainName)) {
    throw new InvalidDhcpConfigError('domainName', `${JSON.stringify(net.domainName)} is not 1-253 printable ASCII characters`)
  }
  if (net.mtu !== undefined && !(Number.isInteger(net.mtu) && net.mtu >= 68 && net.mtu <= 65535)) {
    throw new InvalidDhcpConfigError('mtu', `${net.mtu} is not an integer in 68..65535 (RFC 2132 5.1)`)
  }
  if (!(Number.isInteger(net.leaseSeconds) && net.leaseSeconds >= 1 && net.leaseSeconds <= 0xffffffff)) {
    throw new InvalidDhcpConfigError('leaseSeconds', `${net.leaseSeconds} is not an integer in 1..4294967295`)
  }
}
