/**
 * What the control plane needs from a cluster store for overlay networks: cluster-wide names,
 * VNIs and addresses (claimed by transactions), and telling other hosts which endpoints live
 * here. Implemented by EtcdCluster; the control plane never talks to etcd itself.
 */
import type { EndpointRecord, NetworkRecord } from '../control/model.js'

/** 'name' or 'vni': another network of the cluster holds it. */
export type NetworkClaim = 'ok' | 'name' | 'vni'

export interface ClusterNetworkSummary {
  id: string
  name: string
  subnet: string
  vni: number
}

export interface ClusterLink {
  /** Overlay networks the store holds (for choosing subnets and VNIs that do not clash). */
  networks(): ClusterNetworkSummary[]
  claimNetwork(rec: NetworkRecord): Promise<NetworkClaim>
  /** Deletes the network from the store; a conflict while other hosts have endpoints on it. */
  releaseNetwork(rec: NetworkRecord): Promise<void>
  /** The network is gone here: forget what was programmed for its remote endpoints. */
  networkGone(networkId: string): void
  /** True when the address is now this endpoint's in the whole cluster. */
  claimAddress(networkId: string, address: string, endpointId: string): Promise<boolean>
  /** Gives the address back (in the background; retried at the next start if the store is away). */
  releaseAddress(networkId: string, address: string, endpointId: string): void
  /** The endpoint is live here: other hosts program it (MAC -> this VTEP, ARP, DNS). */
  announce(ep: EndpointRecord, names: string[]): void
  withdraw(ep: EndpointRecord): void
}
