/**
 * The parts of the CNI specification (1.0 and 1.1, with 0.3/0.4 results) that the
 * `switchyard-cni` executable and the daemon share: versions, error codes and objects,
 * CNI_ARGS, the network configuration's own keys, and the result's shape per version.
 * Nothing here touches devices: the executable imports it and starts fast.
 *
 *   parseCniArgs('IgnoreUnknown=1;IP=10.0.0.9')    // { IgnoreUnknown: '1', IP: '10.0.0.9' }
 *   new CniError(CNI_ERR.INVALID_CONFIG, 'no "name"').toJSON('1.0.0')
 */

/** Spec versions this plugin speaks, oldest first; results are shaped for the config's version. */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const
export const LATEST_VERSION = '1.1.0'

/** The well-known error codes (0-99 are the spec's; 100+ are this plugin's). */
export const CNI_ERR = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  DECODE_FAILURE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  /** STATUS: the plugin cannot serve ADDs. */
  NOT_AVAILABLE: 50,
  /** Switchyard refused the attachment (address in use, port taken, ...); msg says why. */
  REFUSED: 100,
  /** CHECK found the attachment not as it was added. */
  CHECK_FAILED: 101,
} as const

export const DEFAULT_DAEMON_SOCKET = '/run/switchyard/switchyard.sock'

export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details?: string,
  ) {
    super(message)
  }

  toJSON(cniVersion: string): CniErrorObject {
    return { cniVersion, code: this.code, msg: this.message, ...(this.details ? { details: this.details } : {}) }
  }
}

export interface CniErrorObject {
  cniVersion: string
  code: number
  msg: string
  details?: string
}

/**
 * The network configuration as the runtime hands it to the plugin (one entry of a conflist,
 * with the list's name and cniVersion). Switchyard's own keys, all optional:
 * - `socket`: the daemon's API socket (default /run/switchyard/switchyard.sock);
 * - `network`: the Switchyard network (default: the CNI network's `name`);
 * - `subnet`, `gateway`, `mtu`, `internal`: create that network with these when it does not
 *   exist yet (without `subnet`, a missing network is an error).
 * Runtime values: `runtimeConfig.portMappings`, `.aliases`, `.ips`, `.mac` (the capabilities
 * the conflist declares), `prevResult`, and for GC `cni.dev/valid-attachments`.
 */
export interface NetConf {
  cniVersion?: string
  name?: string
  type?: string
  socket?: string
  network?: string
  subnet?: string
  gateway?: string
  mtu?: number
  internal?: boolean
  runtimeConfig?: {
    portMappings?: { hostPort?: number; containerPort?: number; protocol?: string; hostIP?: string }[]
    aliases?: Record<string, string[]>
    ips?: string[]
    mac?: string
  }
  prevResult?: CniResult
  'cni.dev/valid-attachments'?: { containerID: string; ifname?: string }[]
  'cni.dev/attachments'?: { containerID: string; ifname?: string }[]
  [key: string]: unknown
}

export interface CniResult {
  cniVersion: string
  interfaces?: { name: string; mac?: string; sandbox?: string; mtu?: number }[]
  ips?: { address: string; gateway?: string; interface?: number; version?: string }[]
  routes?: { dst: string; gw?: string }[]
  dns?: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] }
}

/** One invocation, as the executable passes it to the daemon (POST /v1/cni). */
export interface CniRequest {
  command: 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC'
  containerId?: string
  netns?: string
  ifname?: string
  /** CNI_ARGS as given. */
  args?: string
  config: NetConf
}

/** The daemon's answer: what the executable prints (nothing for `null`) and its exit status. */
export interface CniReply {
  stdout: CniResult | CniErrorObject | null
  exit: number
}

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'] as const

export function isSupportedVersion(v: unknown): v is string {
  return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v)
}

/** Orders "a.b.c" versions; unknown parts count as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] || 0) - (pb[i] || 0)
    if (d) return d
  }
  return 0
}

/** The VERSION answer. */
export function versionResult(requested: string | undefined) {
  return { cniVersion: isSupportedVersion(requested) ? requested : LATEST_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] }
}

/** Keys of CNI_ARGS this plugin reads; others are refused unless IgnoreUnknown is set (as libcni's LoadArgs does). */
const KNOWN_ARGS = new Set(['IgnoreUnknown', 'IP', 'MAC', 'K8S_POD_NAME', 'K8S_POD_NAMESPACE', 'K8S_POD_INFRA_CONTAINER_ID', 'K8S_POD_UID'])

/** Parses CNI_ARGS ("K=V;K=V"). */
export function parseCniArgs(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  if (!s) return out
  for (const part of s.split(';')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    if (eq <= 0) throw new CniError(CNI_ERR.INVALID_ENV, `CNI_ARGS: "${part}" is not KEY=VALUE`)
    out[part.slice(0, eq)] = part.slice(eq + 1)
  }
  const ignore = ['1', 'true'].includes((out.IgnoreUnknown ?? '').toLowerCase())
  const unknown = Object.keys(out).filter((k) => !KNOWN_ARGS.has(k))
  if (unknown.length && !ignore) throw new CniError(CNI_ERR.INVALID_ENV, `CNI_ARGS: unknown key ${unknown.join(', ')} (set IgnoreUnknown=1 to pass it anyway)`)
  return out
}

/** A result shaped for `cniVersion`: before 1.0.0 each IP carries `version: "4"`. */
export function shapeResult(result: CniResult, cniVersion: string): CniResult {
  if (compareVersions(cniVersion, '1.0.0') >= 0) return { ...result, cniVersion }
  return { ...result, cniVersion, ips: result.ips?.map((ip) => ({ version: '4', ...ip })) }
}
