/**
 * The `switchyard-cni` executable's logic: a CNI plugin (spec 1.0/1.1) that answers VERSION
 * itself and relays ADD, DEL, CHECK, STATUS and GC to the Switchyard daemon over its API
 * socket, whose path comes from the network configuration (`"socket"`), never from the
 * environment: podman runs DEL from a cleanup process that does not have the caller's.
 *
 *   { "cniVersion": "1.0.0", "name": "blue",
 *     "plugins": [{ "type": "switchyard-cni", "socket": "/run/switchyard/switchyard.sock",
 *                   "capabilities": { "portMappings": true, "aliases": true, "ips": true, "mac": true } }] }
 *
 *   const { stdout, exitCode } = await runCni(process.env, stdinText)
 *
 * With podman (CNI backend): put the conflist in its `network_config_dir`, the executable (or
 * a link named switchyard-cni) in one of its `cni_plugin_dirs`, and for published ports set
 * `enable_port_reservation = false` under [engine] in containers.conf: Switchyard listens on
 * the host port itself (as slirp4netns' port handler does), which podman's reservation would
 * hold. The conflist's "subnet" (with "gateway", "mtu", "internal") creates the Switchyard
 * network on first use; "network" names an existing one instead of the CNI network's name.
 */
import { requestJson } from '../../api/unix-client.js'
import { CNI_ERR, COMMANDS, CniError, DEFAULT_DAEMON_SOCKET, isSupportedVersion, versionResult, type CniReply, type CniRequest, type NetConf } from './spec.js'

export interface RunCniOptions {
  /** How long to wait for the daemon (ms). */
  timeoutMs?: number
}

/** One invocation: the environment (CNI_*) and stdin in, what to print and the exit status out. */
export async function runCni(env: NodeJS.ProcessEnv, input: string, opts: RunCniOptions = {}): Promise<{ stdout: string; exitCode: number }> {
  let version = '1.0.0'
  try {
    let conf: NetConf
    try {
      conf = JSON.parse(input) as NetConf
    } catch (e) {
      throw new CniError(CNI_ERR.DECODE_FAILURE, 'the network configuration on stdin is not JSON', (e as Error).message)
    }
    if (typeof conf !== 'object' || conf === null || Array.isArray(conf)) throw new CniError(CNI_ERR.DECODE_FAILURE, 'the network configuration on stdin is not a JSON object')
    if (typeof conf.cniVersion === 'string') version = conf.cniVersion
    const command = env.CNI_COMMAND
    if (!command) throw new CniError(CNI_ERR.INVALID_ENV, 'CNI_COMMAND is not set')
    if (command === 'VERSION') return { stdout: JSON.stringify(versionResult(conf.cniVersion)), exitCode: 0 }
    if (!(COMMANDS as readonly string[]).includes(command)) throw new CniError(CNI_ERR.INVALID_ENV, `CNI_COMMAND ${command} is not one of ${COMMANDS.join(', ')}`)
    if (!isSupportedVersion(conf.cniVersion)) {
      throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, `cniVersion ${JSON.stringify(conf.cniVersion)} is not supported`, 'switchyard-cni speaks 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0')
    }
    const req: CniRequest = {
      command: command as CniRequest['command'],
      ...(env.CNI_CONTAINERID ? { containerId: env.CNI_CONTAINERID } : {}),
      ...(env.CNI_NETNS ? { netns: env.CNI_NETNS } : {}),
      ...(env.CNI_IFNAME ? { ifname: env.CNI_IFNAME } : {}),
      ...(env.CNI_ARGS ? { args: env.CNI_ARGS } : {}),
      config: conf,
    }
    const socket = typeof conf.socket === 'string' && conf.socket !== '' ? conf.socket : DEFAULT_DAEMON_SOCKET
    let reply: CniReply
    try {
      reply = await post(socket, req, opts.timeoutMs ?? 60_000)
    } catch (e) {
      const why = (e as Error).message
      if (command === 'STATUS') throw new CniError(CNI_ERR.NOT_AVAILABLE, `the switchyard daemon at ${socket} does not answer`, why)
      throw new CniError(CNI_ERR.TRY_AGAIN_LATER, `the switchyard daemon at ${socket} does not answer: ${why}`, 'start it (switchyard daemon), or set "socket" in the network configuration')
    }
    return { stdout: reply.stdout === null ? '' : JSON.stringify(reply.stdout), exitCode: reply.exit === 0 ? 0 : 1 }
  } catch (e) {
    const err = e instanceof CniError ? e : new CniError(CNI_ERR.IO_FAILURE, (e as Error)?.message ?? String(e))
    return { stdout: JSON.stringify(err.toJSON(version)), exitCode: 1 }
  }
}

/** POST /v1/cni on the daemon's socket. */
async function post(socket: string, body: CniRequest, timeoutMs: number): Promise<CniReply> {
  const reply = await requestJson(socket, 'POST', '/v1/cni', body, timeoutMs)
  if (reply.status === 200) return reply.body as CniReply
  const message = (reply.body as { error?: { message?: string } } | undefined)?.error?.message ?? reply.text
  const err = new CniError(CNI_ERR.IO_FAILURE, reply.status === 404 ? `the switchyard daemon at ${socket} does not serve CNI (an older version?)` : `the switchyard daemon refused the request: ${message}`)
  throw err
}
