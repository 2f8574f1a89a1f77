/**
 * Programs this host's tables for endpoints that live on other hosts, as the cluster store
 * describes them: their VTEP becomes a peer of the network (head-end replication reaches it),
 * their MAC a static FDB entry behind that VTEP, their address an ARP entry the gateway
 * answers locally (no ARP flood across the overlay), their names DNS records.
 *
 *   const remote = new RemoteEndpoints({ sw, vxlan, gateway, log })
 *   remote.up(endpointRec)     // false: its network is not here (yet)
 *   remote.down(endpointRec.id)
 */
import type { GatewayServices } from '../gateway/services.js'
import type { Vxlan } from '../overlay/vxlan.js'
import { parseMac } from '../packet/mac.js'
import type { Switch } from '../switch/switch.js'
import type { Logger } from '../util/log.js'
import type { EndpointRec } from './records.js'

export interface RemoteEndpointsOptions {
  sw: Switch
  vxlan: Vxlan
  gateway: GatewayServices
  log: Logger
}

export class RemoteEndpoints {
  private readonly live = new Map<string, EndpointRec>()
  /** network -> VTEP -> endpoints behind it. */
  private readonly vteps = new Map<string, Map<string, number>>()

  constructor(private readonly opts: RemoteEndpointsOptions) {}

  get size(): number {
    return this.live.size
  }

  list(): EndpointRec[] {
    return [...this.live.values()]
  }

  /** Programs (or re-programs) a remote endpoint; false when its network does not exist here. */
  up(ep: EndpointRec): boolean {
    if (!this.opts.sw.hasNetwork(ep.networkId)) return false
    const before = this.live.get(ep.id)
    if (before) this.down(ep.id)
    const { sw, vxlan, gateway } = this.opts
    const port = vxlan.addPeer(ep.networkId, ep.vtep)
    if (port === undefined) return false
    const perNet = this.vteps.get(ep.networkId) ?? new Map<string, number>()
    this.vteps.set(ep.networkId, perNet)
    perNet.set(ep.vtep, (perNet.get(ep.vtep) ?? 0) + 1)
    if (!sw.pinMac(ep.networkId, parseMac(ep.mac), port)) this.opts.log.warn('remote endpoint MAC not programmed: the VTEP port is at its FDB limit', { endpoint: ep.name, mac: ep.mac })
    gateway.addRemoteEndpoint(ep.networkId, ep.id, ep.address.split('/')[0], parseMac(ep.mac), ep.names)
    this.live.set(ep.id, ep)
    return true
  }

  down(id: string): void {
    const ep = this.live.get(id)
    if (!ep) return
    this.live.delete(id)
    const { sw, vxlan, gateway } = this.opts
    sw.unpinMac(ep.networkId, parseMac(ep.mac))
    gateway.removeRemoteEndpoint(ep.networkId, ep.id, ep.address.split('/')[0])
    const perNet = this.vteps.get(ep.networkId)
    const left = (perNet?.get(ep.vtep) ?? 1) - 1
    if (left > 0) perNet!.set(ep.vtep, left)
    else {
      perNet?.delete(ep.vtep)
      vxlan.removePeer(ep.networkId, ep.vtep)
    }
  }

  /** The network went away here (with its VTEP ports, FDB and gateway): only the bookkeeping is left. */
  networkGone(networkId: string): void {
    for (const ep of [...this.live.values()]) if (ep.networkId === networkId) this.live.delete(ep.id)
    this.vteps.delete(networkId)
  }
}
