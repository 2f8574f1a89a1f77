/**
 * The REST resources of the daemon (documented in docs/api.md), mapped onto the control
 * plane and the switch. Validation happens here; the control plane gets typed values.
 */
import { ControlError } from '../control/errors.js'
import type { ControlPlane, NetworkCreate } from '../control/control-plane.js'
import { IpamError, InvalidPoolError } from '../control/ipam.js'
import { InvalidAddressError, InvalidCidrError } from '../control/cidr.js'
import { NetnsError } from '../control/netns.js'
import { SwitchError } from '../switch/switch.js'
import type { Switch } from '../switch/switch.js'
import { ApiError } from './errors.js'
import type { ApiServer } from './server.js'
import { check, compile, IFNAME_PATTERN, NAME_PATTERN } from './validate.js'

const stringMap = { type: 'object', additionalProperties: { type: 'string', maxLength: 1024 }, maxProperties: 256 }
const ipv4 = { type: 'string', maxLength: 15 }
const cidr = { type: 'string', maxLength: 18 }

const portCreate = compile<{ name: string; network?: string; netns?: string; ifname?: string; vm?: boolean }>({
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', pattern: IFNAME_PATTERN },
    network: { type: 'string', minLength: 1, maxLength: 128 },
    netns: { type: 'string', minLength: 1, maxLength: 4096 },
    ifname: { type: 'string', pattern: IFNAME_PATTERN },
    vm: { type: 'boolean' },
  },
})

const networkCreate = compile<NetworkCreate>({
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', pattern: NAME_PATTERN },
    driver: { type: 'string', enum: ['bridge', 'overlay'] },
    subnet: cidr,
    gateway: ipv4,
    ipRange: cidr,
    auxAddresses: stringMap,
    mtu: { type: 'integer', minimum: 576, maximum: 65535 },
    internal: { type: 'boolean' },
    labels: stringMap,
    options: stringMap,
  },
})

const sandboxCreate = compile<{ name: string; netnsPath?: string }>({
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: { type: 'string', pattern: NAME_PATTERN }, netnsPath: { type: 'string', minLength: 1, maxLength: 4096, pattern: '^/' } },
})

const connectBody = compile<{ sandbox: string; ip?: string; mac?: string; aliases?: string[]; name?: string; publish?: string[] }>({
  type: 'object',
  additionalProperties: false,
  required: ['sandbox'],
  properties: {
    sandbox: { type: 'string', minLength: 1, maxLength: 128 },
    ip: ipv4,
    mac: { type: 'string', maxLength: 17 },
    aliases: { type: 'array', items: { type: 'string', pattern: NAME_PATTERN }, maxItems: 64 },
    name: { type: 'string', pattern: NAME_PATTERN },
    publish: { type: 'array', items: { type: 'string', maxLength: 64 }, maxItems: 256 },
  },
})

const disconnectBody = compile<{ sandbox: string }>({
  type: 'object',
  additionalProperties: false,
  required: ['sandbox'],
  properties: { sandbox: { type: 'string', minLength: 1, maxLength: 128 } },
})

const STATUS: Record<ControlError['kind'], number> = { invalid: 400, not_found: 404, conflict: 409, failed: 500 }

/** Turns the domain's typed errors into API errors with the right status. */
export function mapDomainError(e: unknown): ApiError | undefined {
  if (e instanceof ControlError) return new ApiError(STATUS[e.kind], e.code, e.message, e.field)
  if (e instanceof InvalidPoolError) return new ApiError(400, e.code, e.message, e.field)
  if (e instanceof IpamError) return new ApiError(e.code === 'ADDRESS_OUT_OF_RANGE' ? 400 : 409, e.code, e.message)
  if (e instanceof InvalidAddressError || e instanceof InvalidCidrError) return new ApiError(400, 'INVALID_ARGUMENT', e.message)
  if (e instanceof SwitchError) {
    const status = e.code.startsWith('NO_SUCH') ? 404 : 409
    return new ApiError(status, e.code, e.message)
  }
  if (e instanceof NetnsError) return new ApiError(500, e.code, e.message)
  return undefined
}

export function registerRoutes(
  api: ApiServer,
  cp: ControlPlane,
  sw: Switch,
  defaultNetwork: string,
  sources: { cluster?: { stats(): object }; runtime?: { stats(): object } } = {},
): void {
  const { cluster, runtime } = sources
  api.mapError = mapDomainError

  api.route('GET', '/v1/health', () => ({ ok: true }))
  api.route('GET', '/v1/stats', () => {
    const s = sw.stats()
    return { ...s, ports: cp.listPorts(), ...cp.gateway.stats(), ...cp.overlayStats(), ...(cluster ? { cluster: cluster.stats() } : {}), ...(runtime ? { runtime: runtime.stats() } : {}) }
  })

  // ports (a TAP on a network, no address: what a VM or a benchmark plugs into)
  api.route('GET', '/v1/ports', (r) => cp.listPorts(r.query.get('network') ?? undefined))
  api.route('GET', '/v1/ports/:name', (r) => {
    const p = cp.listPorts().find((x) => x.name === r.params.name)
    if (!p) throw new ApiError(404, 'NOT_FOUND', `no port named "${r.params.name}"`)
    return p
  })
  api.route('POST', '/v1/ports', (r) => {
    const b = check(portCreate, r.body ?? {})
    // A bare name means /run/netns/NAME, as `ip netns` names them.
    const netnsPath = b.netns === undefined ? undefined : b.netns.startsWith('/') ? b.netns : `/run/netns/${b.netns}`
    return cp.addPort(b.name, b.network ?? defaultNetwork, { netnsPath, ifname: b.ifname, vm: b.vm })
  }, 201)
  api.route('DELETE', '/v1/ports/:name', async (r) => {
    await cp.removePort(r.params.name)
    return { removed: r.params.name }
  })

  // forwarding database
  api.route('GET', '/v1/fdb', (r) => {
    const net = r.query.get('network')
    return sw.fdbEntries(net ? cp.networkId(net) : undefined).map((e) => ({ ...e, network: cp.networkRecord(e.network).name }))
  })
  api.route('DELETE', '/v1/fdb', (r) => {
    const net = r.query.get('network')
    return { flushed: sw.flushFdb(net ? cp.networkId(net) : undefined) }
  })

  // networks
  api.route('GET', '/v1/networks', () => cp.listNetworks())
  api.route('POST', '/v1/networks', (r) => cp.createNetwork(check(networkCreate, r.body ?? {})), 201)
  api.route('POST', '/v1/networks/prune', async () => ({ removed: await cp.pruneNetworks([defaultNetwork]) }))
  api.route('GET', '/v1/networks/:ref', (r) => cp.inspectNetwork(r.params.ref))
  api.route('DELETE', '/v1/networks/:ref', async (r) => {
    if (cp.networkRecord(r.params.ref).name === defaultNetwork) throw new ApiError(409, 'DEFAULT_NETWORK', `the default network "${defaultNetwork}" cannot be removed`)
    await cp.deleteNetwork(r.params.ref)
    return { removed: r.params.ref }
  })
  api.route('POST', '/v1/networks/:ref/connect', (r) => {
    const b = check(connectBody, r.body ?? {})
    return cp.connect(r.params.ref, b.sandbox, b)
  }, 201)
  api.route('POST', '/v1/networks/:ref/disconnect', async (r) => {
    const b = check(disconnectBody, r.body ?? {})
    await cp.disconnect(r.params.ref, b.sandbox)
    return { disconnected: b.sandbox }
  })

  // sandboxes
  api.route('GET', '/v1/sandboxes', () => cp.listSandboxes())
  api.route('POST', '/v1/sandboxes', (r) => cp.createSandbox(check(sandboxCreate, r.body ?? {})), 201)
  api.route('GET', '/v1/sandboxes/:ref', (r) => cp.inspectSandbox(r.params.ref))
  api.route('DELETE', '/v1/sandboxes/:ref', async (r) => {
    await cp.deleteSandbox(r.params.ref)
    return { removed: r.params.ref }
  })

  // NAT
  api.route('GET', '/v1/nat', () => cp.natFlows())

  // endpoints
  api.route('GET', '/v1/endpoints', () => cp.listEndpoints())
  api.route('GET', '/v1/endpoints/:ref', (r) => cp.inspectEndpoint(r.params.ref))

}
