/**
 * The gateway services of every network, wired to the switch: one Gateway (ARP, ICMP, DNS,
 * DHCP) per network as its LocalStack, one DNS server and name table, one DHCP server.
 * The control plane tells it which endpoints exist; it never reads the store itself.
 *
 *   const gw = new GatewayServices({ sw, upstreams, leases, log })
 *   gw.attach(network)
 *   gw.addEndpoint(network.id, endpoint.id, '10.0.0.2', ['web'])
 */
import { parseIpv4 } from '../packet/ipv4.js'
import { formatIPv4, maskOf } from '../control/cidr.js'
import { readMac } from '../packet/mac.js'
import type { Switch } from '../switch/switch.js'
import type { Logger } from '../util/log.js'
import { DhcpServer, type DhcpLeaseBackend, type DhcpNetworkConfig } from './dhcp/index.js'
import { DnsRecords, DnsServer, type Upstream } from './dns/index.js'
import { Gateway } from './gateway.js'
import { Nat, type NatLimits, type NatNetwork } from '../nat/nat.js'
import { dnsTcpService } from './dns-tcp.js'

export interface GatewayNetwork {
  id: string
  name: string
  gateway: string
  prefix: number
  mtu: number
  internal: boolean
  options: Record<string, string>
}

export interface GatewayServicesOptions {
  sw: Switch
  upstreams: Upstream[]
  leases: DhcpLeaseBackend
  log: Logger
  dhcpLeaseSeconds?: number
  nat?: NatLimits
}

/** The gateway's MAC, derived from the network ID so it survives restarts (sandboxes' ARP caches stay right). */
export function gatewayMac(networkId: string): number {
  const b = new Uint8Array(6)
  b[0] = 0x02
  b[1] = 0x53
  for (let i = 0; i < 4; i++) b[2 + i] = parseInt(networkId.slice(2 * i, 2 * i + 2), 16)
  return readMac(b, 0)
}


/** Network option `dns`: comma-separated upstream resolvers for this network only. */
function networkUpstreams(options: Record<string, string>): Upstream[] | undefined {
  const v = options.dns
  if (!v) return undefined
  return v.split(',').map((h) => ({ host: h.trim(), port: 53 }))
}

export class GatewayServices {
  readonly records = new DnsRecords()
  readonly dns: DnsServer
  readonly dhcp: DhcpServer
  readonly nat: Nat
  private readonly gateways = new Map<string, Gateway>()
  private readonly members = new Map<string, Map<number, number>>()
  private readonly natNetworks = new Map<string, NatNetwork>()
  private readonly sw: Switch
  private readonly leaseSeconds: number
  /** The switch port the DHCP message being handled came in on (handle() is synchronous). */
  dhcpPort = -1

  constructor(opts: GatewayServicesOptions) {
    this.sw = opts.sw
    this.leaseSeconds = opts.dhcpLeaseSeconds ?? 3600
    this.dns = new DnsServer({ records: this.records, upstreams: opts.upstreams, log: opts.log })
    this.dhcp = new DhcpServer(opts.leases, { log: (m) => opts.log.info(m) })
    this.nat = new Nat({ ...opts.nat, send: this.sw.sendFrame, sendParts: this.sw.sendFrameParts })
  }

  /** What NAT knows of an attached network (published ports use it too). */
  natNetworkOf(networkId: string): NatNetwork | undefined {
    return this.natNetworks.get(networkId)
  }

  attach(net: GatewayNetwork): void {
    this.detach(net.id)
    const members = new Map<number, number>()
    this.members.set(net.id, members)
    const dhcpConfig: DhcpNetworkConfig = {
      enabled: !['false', 'off', 'no', '0'].includes((net.options.dhcp ?? 'on').toLowerCase()),
      serverIp: net.gateway,
      subnetMask: formatIPv4(maskOf(net.prefix)),
      router: net.internal ? '' : net.gateway,
      dnsServers: [net.gateway],
      mtu: net.mtu,
      leaseSeconds: this.leaseSeconds,
      ...(net.options.domain ? { domainName: net.options.domain } : {}),
    }
    const dnsNetwork = { internal: net.internal, upstreams: networkUpstreams(net.options), domain: net.options.domain }
    const isMember = (ip: number) => members.has(ip)
    const natNetwork: NatNetwork = {
      id: net.id,
      gatewayIp: parseIpv4(net.gateway),
      gatewayMac: gatewayMac(net.id),
      mtu: net.mtu,
      internal: net.internal,
      services: new Map([[53, dnsTcpService(this.dns, net.id, dnsNetwork, isMember, () => gw.counters.dnsQueries++)]]),
    }
    this.natNetworks.set(net.id, natNetwork)
    const gw: Gateway = new Gateway({
      networkId: net.id,
      ip: net.gateway,
      mac: gatewayMac(net.id),
      mtu: net.mtu,
      send: this.sw.sendFrame,
      dns: { server: this.dns, network: dnsNetwork },
      dhcp: { server: this.dhcp, config: () => dhcpConfig, onPort: (p) => (this.dhcpPort = p) },
      isMember,
      subnet: { network: (parseIpv4(net.gateway) & maskOf(net.prefix)) >>> 0, mask: maskOf(net.prefix) },
      nat: { engine: this.nat, network: natNetwork },
    })
    this.gateways.set(net.id, gw)
    this.sw.setLocalStack(net.id, gw)
  }

  detach(networkId: string): void {
    const gw = this.gateways.get(networkId)
    if (!gw) return
    this.gateways.delete(networkId)
    this.natNetworks.delete(networkId)
    this.members.delete(networkId)
    this.records.removeNetwork(networkId)
    if (this.sw.hasNetwork(networkId)) this.sw.setLocalStack(networkId, undefined)
  }

  /** Makes `ip` a member of the network (DNS answers it) and its names resolvable there. */
  addEndpoint(networkId: string, endpointId: string, ip: string, names: string[]): void {
    const m = this.members.get(networkId)
    if (m) {
      const n = parseIpv4(ip)
      m.set(n, (m.get(n) ?? 0) + 1)
    }
    this.setNames(networkId, endpointId, ip, names)
  }

  removeEndpoint(networkId: string, endpointId: string, ip: string): void {
    const m = this.members.get(networkId)
    if (m) {
      const n = parseIpv4(ip)
      const c = (m.get(n) ?? 0) - 1
      if (c > 0) m.set(n, c)
      else m.delete(n)
    }
    this.records.remove(networkId, endpointId)
  }

  /**
   * An endpoint of the network on another host: its names resolve here, and ARP requests for
   * its address are answered here with its MAC.
   */
  addRemoteEndpoint(networkId: string, endpointId: string, ip: string, mac: number, names: string[]): void {
    this.gateways.get(networkId)?.remoteArp.set(parseIpv4(ip), mac)
    this.setNames(networkId, endpointId, ip, names)
  }

  removeRemoteEndpoint(networkId: string, endpointId: string, ip: string): void {
    this.gateways.get(networkId)?.remoteArp.delete(parseIpv4(ip))
    this.records.remove(networkId, endpointId)
  }

  private setNames(networkId: string, endpointId: string, ip: string, names: string[]): void {
    const valid = names.filter((n) => /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,62})$/.test(n))
    if (valid.length) this.records.set(networkId, endpointId, valid, ip)
  }

  stats() {
    const gateways: Record<string, unknown> = {}
    for (const [id, gw] of this.gateways) gateways[id] = gw.counters
    return {
      dns: { ...this.dns.counters, cacheEntries: this.dns.cacheSize },
      dhcp: { ...this.dhcp.counters },
      nat: { flows: this.nat.ct.size, maxFlows: this.nat.ct.maxFlows, maxPerSandbox: this.nat.ct.maxPerSandbox, sockets: this.nat.ct.sockets, maxSockets: this.nat.ct.maxSockets, udpMappings: this.nat.udpMappings.size, udpTimeoutSeconds: this.nat.udpTimeouts.unrepliedMs / 1000, udpStreamTimeoutSeconds: this.nat.udpTimeouts.repliedMs / 1000, ...this.nat.counters, conntrack: { ...this.nat.ct.counters } },
      gateways,
    }
  }

  close(): void {
    for (const id of [...this.gateways.keys()]) this.detach(id)
    this.dns.close()
    this.nat.close()
  }
}
