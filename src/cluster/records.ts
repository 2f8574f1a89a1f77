/**
 * The cluster store's records (proto/cluster.proto) and key layout. Decoding checks every
 * field a daemon programs its tables from: a record another host (or a person with etcdctl)
 * wrote badly is a RecordError, which the watcher logs and skips.
 *
 *   const bytes = encodeEndpoint({ id, networkId, name, mac, address, names, host, vtep })
 *   const ep = decodeEndpoint(bytes)   // throws RecordError
 */
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import { parseCidr, parseIPv4 } from '../control/cidr.js'
import { parseMac } from '../packet/mac.js'

export const PREFIX = '/switchyard/v1/'

export const keys = {
  host: (id: string) => `${PREFIX}hosts/${id}`,
  network: (id: string) => `${PREFIX}networks/${id}`,
  name: (name: string) => `${PREFIX}names/${name}`,
  vni: (vni: number) => `${PREFIX}vnis/${vni}`,
  ipamPrefix: (networkId: string) => `${PREFIX}ipam/${networkId}/`,
  ipam: (networkId: string, address: string) => `${PREFIX}ipam/${networkId}/${address}`,
  endpointPrefix: (networkId: string) => `${PREFIX}endpoints/${networkId}/`,
  endpoint: (networkId: string, id: string) => `${PREFIX}endpoints/${networkId}/${id}`,
}

export type KeyKind = 'hosts' | 'networks' | 'names' | 'vnis' | 'ipam' | 'endpoints'

/** Splits a key into its kind and path segments after the kind; undefined for foreign keys. */
export function parseKey(key: string): { kind: KeyKind; parts: string[] } | undefined {
  if (!key.startsWith(PREFIX)) return undefined
  const [kind, ...parts] = key.slice(PREFIX.length).split('/')
  if (!['hosts', 'networks', 'names', 'vnis', 'ipam', 'endpoints'].includes(kind) || parts.some((p) => p === '')) return undefined
  return { kind: kind as KeyKind, parts }
}

export interface HostRec {
  id: string
  vtep: string
  vxlanPort: number
  startedAtMs: number
}

export interface NetworkRec {
  id: string
  name: string
  vni: number
  subnet: string
  gateway: string
  ipRange: string
  auxAddresses: Record<string, string>
  mtu: number
  internal: boolean
  labels: Record<string, string>
  options: Record<string, string>
  createdAt: string
  origin: string
}

export interface AllocationRec {
  endpointId: string
  host: string
}

export interface EndpointRec {
  id: string
  networkId: string
  name: string
  mac: string
  address: string
  names: string[]
  host: string
  vtep: string
}

export class RecordError extends Error {
  override name = 'RecordError'
}

const root = protobuf.loadSync(fileURLToPath(new URL('../../proto/cluster.proto', import.meta.url)))
const T = {
  host: root.lookupType('switchyard.cluster.v1.Host'),
  network: root.lookupType('switchyard.cluster.v1.Network'),
  allocation: root.lookupType('switchyard.cluster.v1.Allocation'),
  endpoint: root.lookupType('switchyard.cluster.v1.Endpoint'),
}

/** Records are small; anything bigger was not written by a daemon. */
const MAX_RECORD = 64 * 1024
const ID = /^[0-9a-f]{64}$/

function encode(type: protobuf.Type, rec: object): Buffer {
  return Buffer.from(type.encode(type.fromObject(rec)).finish())
}

function decode<R>(type: protobuf.Type, bytes: Uint8Array, what: string): R {
  if (bytes.length > MAX_RECORD) throw new RecordError(`${what} record of ${bytes.length} bytes is larger than ${MAX_RECORD}`)
  try {
    return type.toObject(type.decode(bytes), { longs: Number, defaults: true, arrays: true, objects: true }) as R
  } catch (e) {
    throw new RecordError(`${what} record does not decode: ${(e as Error).message}`)
  }
}

function check(ok: boolean, what: string, detail: string): void {
  if (!ok) throw new RecordError(`${what} record: ${detail}`)
}

function isIpv4(s: string): boolean {
  try {
    parseIPv4(s)
    return true
  } catch {
    return false
  }
}

export const encodeHost = (r: HostRec) => encode(T.host, r)
export const encodeNetwork = (r: NetworkRec) => encode(T.network, r)
export const encodeAllocation = (r: AllocationRec) => encode(T.allocation, r)
export const encodeEndpoint = (r: EndpointRec) => encode(T.endpoint, r)

export function decodeHost(bytes: Uint8Array): HostRec {
  const r = decode<HostRec>(T.host, bytes, 'host')
  check(r.id.length > 0 && r.id.length <= 64, 'host', 'id missing')
  check(isIpv4(r.vtep), 'host', `vtep "${r.vtep}" is not an IPv4 address`)
  return r
}

export function decodeNetwork(bytes: Uint8Array): NetworkRec {
  const r = decode<NetworkRec>(T.network, bytes, 'network')
  check(ID.test(r.id), 'network', `id "${r.id}" is not 64 hex digits`)
  check(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(r.name), 'network', `name "${r.name}" is not a valid name`)
  check(r.vni >= 1 && r.vni <= 0xffffff, 'network', `vni ${r.vni} is out of range`)
  check(r.mtu >= 576 && r.mtu <= 65535, 'network', `mtu ${r.mtu} is out of range`)
  try {
    parseCidr(r.subnet)
  } catch {
    throw new RecordError(`network record: subnet "${r.subnet}" is not a CIDR`)
  }
  check(isIpv4(r.gateway), 'network', `gateway "${r.gateway}" is not an IPv4 address`)
  return r
}

export function decodeAllocation(bytes: Uint8Array): AllocationRec {
  const r = decode<AllocationRec>(T.allocation, bytes, 'allocation')
  check(ID.test(r.endpointId), 'allocation', 'endpoint id missing')
  return r
}

export function decodeEndpoint(bytes: Uint8Array): EndpointRec {
  const r = decode<EndpointRec>(T.endpoint, bytes, 'endpoint')
  check(ID.test(r.id) && ID.test(r.networkId), 'endpoint', 'id or network id is not 64 hex digits')
  try {
    parseMac(r.mac)
    parseCidr(r.address)
  } catch (e) {
    throw new RecordError(`endpoint record: ${(e as Error).message}`)
  }
  check(isIpv4(r.vtep), 'endpoint', `vtep "${r.vtep}" is not an IPv4 address`)
  check(r.names.length <= 64, 'endpoint', 'too many names')
  return r
}
