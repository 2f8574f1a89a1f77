/**
 * The local name table: which names (sandbox names, endpoint aliases) map to which
 * addresses, per network. A name lives on one network only, so a lookup from network A
 * never sees network B's endpoints. A name shared by several endpoints returns all their
 * addresses, rotated by one on every lookup (round-robin).
 *
 *   const records = new DnsRecords()
 *   records.set('net1', 'ep1', ['web', 'frontend'], '10.0.0.2')
 *   records.set('net1', 'ep2', ['web'], '10.0.0.3', 'fd00::3')
 *   records.addresses('net1', 'web', 4)      // [10.0.0.2, 10.0.0.3] as bytes, then rotated
 *   records.nameOfAddress('net1', '10.0.0.2') // 'web'
 */
import { asciiLower, formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from './codec.js'

/** Thrown by `set` for names that cannot be DNS host names. */
export class InvalidDnsNameError extends Error {
  readonly code = 'INVALID_DNS_NAME'
  constructor(readonly input: string) {
    super(`invalid DNS name ${JSON.stringify(input)}: use labels of letters, digits, '-' and '_' (1-63 each, 253 in all) separated by dots`)
  }
}

/** Thrown by `set` for addresses that do not parse. */
export class InvalidAddressError extends Error {
  readonly code = 'INVALID_ADDRESS'
  constructor(readonly input: string, family: 4 | 6) {
    super(`invalid IPv${family} address ${JSON.stringify(input)}`)
  }
}

/** One endpoint's entry: its names and its addresses as ready-to-send rdata. */
interface Member {
  endpointId: string
  names: string[]
  v4: Uint8Array
  v6: Uint8Array | null
  v4Key: string
  v6Key: string | null
}

/** The endpoints behind one name, and where the next rotation starts. */
interface NameSet {
  members: Member[]
  cursor: number
}

interface NetworkTable {
  names: Map<string, NameSet>
  /** Canonical address text -> endpoint (for PTR). */
  byAddress: Map<string, Member>
  endpoints: Map<string, Member>
}

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/

/** Lower-cases, drops one trailing dot, and checks a host name; throws InvalidDnsNameError. */
export function normalizeHostName(name: string): string {
  let n = asciiLower(name)
  if (n.endsWith('.')) n = n.slice(0, -1)
  if (n.length === 0 || n.length > 253) throw new InvalidDnsNameError(name)
  for (const label of n.split('.')) if (!LABEL.test(label)) throw new InvalidDnsNameError(name)
  return n
}

/** The local name table; see the module comment. */
export class DnsRecords {
  private readonly networks = new Map<string, NetworkTable>()

  /**
   * Adds or replaces an endpoint's names and addresses on a network. Names are
   * case-insensitive and may end with a dot; at least one is required, and the first is
   * the one PTR answers. Throws on invalid names or addresses.
   */
  set(networkId: string, endpointId: string, names: readonly string[], ipv4: string, ipv6?: string): void {
    if (names.length === 0) throw new InvalidDnsNameError('')
    const normalized = [...new Set(names.map(normalizeHostName))]
    const v4 = parseIPv4(ipv4)
    if (!v4) throw new InvalidAddressError(ipv4, 4)
    let v6: Uint8Array | null = null
    if (ipv6 !== undefined && ipv6 !== '') {
      v6 = parseIPv6(ipv6)
      if (!v6) throw new InvalidAddressError(ipv6, 6)
    }
    this.remove(networkId, endpointId)
    let table = this.networks.get(networkId)
    if (!table) {
      table = { names: new Map(), byAddress: new Map(), endpoints: new Map() }
      this.networks.set(networkId, table)
    }
    const m: Member = { endpointId, names: normalized, v4, v6, v4Key: formatIPv4(v4), v6Key: v6 ? formatIPv6(v6) : null }
    table.endpoints.set(endpointId, m)
    for (const n of normalized) {
      let set = table.names.get(n)
      if (!set) {
        set = { members: [], cursor: 0 }
        table.names.set(n, set)
      }
      set.members.push(m)
    }
    table.byAddress.set(m.v4Key, m)
    if (m.v6Key) table.byAddress.set(m.v6Key, m)
  }

  /** Removes an endpoint from a network's table; false if it was not there. */
  remove(networkId: string, endpointId: string): boolean {
    const table = this.networks.get(networkId)
    const m = table?.endpoints.get(endpointId)
    if (!table || !m) return false
    table.endpoints.delete(endpointId)
    for (const n of m.names) {
      const set = table.names.get(n)
      if (!set) continue
      set.members = set.members.filter((x) => x !== m)
      if (set.members.length === 0) table.names.delete(n)
    }
    // Only drop the reverse entry if it is still ours (another endpoint may have taken the address).
    if (table.byAddress.get(m.v4Key) === m) table.byAddress.delete(m.v4Key)
    if (m.v6Key && table.byAddress.get(m.v6Key) === m) table.byAddress.delete(m.v6Key)
    if (table.endpoints.size === 0) this.networks.delete(networkId)
    return true
  }

  /** Forgets a whole network. */
  removeNetwork(networkId: string): void {
    this.networks.delete(networkId)
  }

  /** Whether `name` (lower case, no trailing dot) exists on the network. */
  has(networkId: string, name: string): boolean {
    return this.networks.get(networkId)?.names.has(name) ?? false
  }

  /**
   * Addresses (4 or 16 bytes each) of a name on a network, rotated one step further on
   * each call. Undefined when the name does not exist; empty when it exists but has no
   * address of that family. `name` must be lower case without a trailing dot.
   */
  addresses(networkId: string, name: string, family: 4 | 6): Uint8Array[] | undefined {
    const set = this.networks.get(networkId)?.names.get(name)
    if (!set) return undefined
    const n = set.members.length
    const start = set.cursor % n
    set.cursor = (start + 1) % n
    const out: Uint8Array[] = []
    for (let i = 0; i < n; i++) {
      const m = set.members[(start + i) % n]
      const a = family === 4 ? m.v4 : m.v6
      if (a) out.push(a)
    }
    return out
  }

  /** The first name of the endpoint holding `address` on the network (for PTR). */
  nameOfAddress(networkId: string, address: string): string | undefined {
    const table = this.networks.get(networkId)
    if (!table) return undefined
    const v4 = parseIPv4(address)
    const v6 = v4 ? null : parseIPv6(address)
    const key = v4 ? formatIPv4(v4) : v6 ? formatIPv6(v6) : null
    return key === null ? undefined : table.byAddress.get(key)?.names[0]
  }
}

/**
 * The address a reverse name stands for: `4.3.2.1.in-addr.arpa` -> '1.2.3.4', 32 nibbles
 * under `ip6.arpa` -> RFC 5952 text. Null for anything else (partial names included).
 * Expects lower case without a trailing dot.
 */
export function reverseNameToAddress(name: string): string | null {
  if (name.endsWith('.in-addr.arpa')) {
    const parts = name.slice(0, -'.in-addr.arpa'.length).split('.')
    if (parts.length !== 4) return null
    const b = parseIPv4(parts.reverse().join('.'))
    return b ? formatIPv4(b) : null
  }
  if (name.endsWith('.ip6.arpa')) {
    const nibbles = name.slice(0, -'.ip6.arpa'.length).split('.')
    if (nibbles.length !== 32) return null
    const b = new Uint8Array(16)
    for (let i = 0; i < 32; i++) {
      const nib = nibbles[31 - i]
      if (!/^[0-9a-f]$/.test(nib)) return null
      b[i >> 1] |= parseInt(nib, 16) << (i & 1 ? 0 : 4)
    }
    return formatIPv6(b)
  }
  return null
}
