/**
 * The Container Network Model's objects as they are stored: networks, endpoints and
 * sandboxes, plus bare ports (a TAP on a network without an address, as `port add` makes).
 * Every object has a 64-hex ID and a name; the API accepts either, or a unique ID prefix.
 */
import crypto from 'node:crypto'

export type Driver = 'bridge' | 'overlay'

export interface NetworkRecord {
  id: string
  name: string
  driver: Driver
  subnet: string
  gateway: string
  ipRange?: string
  auxAddresses: Record<string, string>
  mtu: number
  internal: boolean
  labels: Record<string, string>
  options: Record<string, string>
  createdAt: string
  /** IPAM state of the network's pool (AddressPool.toJSON()). */
  ipam: unknown
  /** Overlay networks: the VXLAN network identifier and the static peer VTEPs. */
  vni?: number
  peers?: string[]
}

export interface EndpointRecord {
  id: string
  name: string
  networkId: string
  /** Host-side TAP device name while the endpoint is not in a sandbox. */
  tap: string
  mac: string
  /** Address with prefix, e.g. 10.0.0.2/24. */
  address: string
  aliases: string[]
  sandboxId?: string
  /** Interface name inside the sandbox (eth0, eth1, ...). */
  ifname?: string
  /** Host ports published into this endpoint. */
  publish?: PublishSpec[]
  /** Set for addresses handed out by DHCP: the endpoint lives on a bare port (`tap` names it). */
  lease?: LeaseInfo
  createdAt: string
}

export interface PublishSpec {
  hostIp: string
  hostPort: number
  port: number
  proto: 'tcp' | 'udp'
}

/** Parses Docker's `[HOSTIP:]HOSTPORT:PORT[/tcp|/udp]`; throws with what is wrong. */
export function parsePublish(s: string): PublishSpec {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d{1,5}):(\d{1,5})(?:\/(tcp|udp))?$/.exec(s)
  if (!m) throw new Error(`publish "${s}" is not [HOSTIP:]HOSTPORT:PORT[/tcp|/udp], e.g. 8080:80 or 127.0.0.1:5353:53/udp`)
  const hostPort = Number(m[2])
  const port = Number(m[3])
  if (hostPort < 1 || hostPort > 65535 || port < 1 || port > 65535) throw new Error(`publish "${s}": ports must be 1-65535`)
  const hostIp = m[1] ?? '0.0.0.0'
  if (hostIp.split('.').some((x) => Number(x) > 255)) throw new Error(`publish "${s}": ${hostIp} is not an IPv4 address`)
  return { hostIp, hostPort, port, proto: (m[4] as 'tcp' | 'udp' | undefined) ?? 'tcp' }
}

export function formatPublish(p: PublishSpec): string {
  return `${p.hostIp}:${p.hostPort}:${p.port}/${p.proto}`
}

export interface LeaseInfo {
  state: 'offered' | 'bound' | 'declined'
  /** Milliseconds since the epoch. */
  expiresAt: number
  hostname?: string
}

export interface SandboxRecord {
  id: string
  name: string
  netnsPath: string
  /** True when Switchyard created the namespace (and so deletes it). */
  owned: boolean
  createdAt: string
}

export interface PortRecord {
  id: string
  name: string
  networkId: string
  /** Where the device was put when it is not in the host namespace, and its name there. */
  netnsPath?: string
  ifname?: string
  /** 'vm': the TAP is left free for a hypervisor to open by name; the switch attaches with a packet socket. */
  kind?: 'tap' | 'vm'
  createdAt: string
}

export const KIND = { network: 'network', endpoint: 'endpoint', sandbox: 'sandbox', port: 'port' } as const

export function newId(): string {
  return crypto.randomBytes(32).toString('hex')
}

/** A TAP name derived from an ID: 'sy' + 10 hex digits fits IFNAMSIZ with room to spare. */
export function tapNameFor(id: string): string {
  return 'sy' + id.slice(0, 10)
}

/** Finds an object by exact ID, name, or unique ID prefix (at least 3 characters), as Docker does. */
export function resolveRef<T extends { id: string; name: string }>(items: Iterable<T>, ref: string): T | 'ambiguous' | undefined {
  const all = [...items]
  const exact = all.find((x) => x.id === ref) ?? all.find((x) => x.name === ref)
  if (exact) return exact
  if (ref.length < 3 || !/^[0-9a-f]+$/.test(ref)) return undefined
  const pref = all.filter((x) => x.id.startsWith(ref))
  if (pref.length > 1) return 'ambiguous'
  return pref[0]
}
