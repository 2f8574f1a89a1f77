/**
 * Looking at and tidying interfaces where a container engine put them: in the host, or in a
 * namespace given by path (Docker's SandboxKey, a CNI_NETNS), entered with
 * `nsenter --net=PATH ip ...` so nothing is mounted to get there.
 *
 *   const name = await findTapByMac('/var/run/docker/netns/8cfff83ca0de', '02:42:0a:7b:00:02')  // 'eth0'
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface LinkInfo {
  ifname: string
  mac: string
  mtu: number
  /** 'tun' for TAP devices (from `ip -d`), undefined for plain devices. */
  kind?: string
}

async function ipAt(nsPath: string | undefined, args: string[]): Promise<string> {
  const [cmd, argv] = nsPath ? ['nsenter', [`--net=${nsPath}`, 'ip', ...args]] : ['ip', args]
  try {
    const { stdout } = await run(cmd, argv, { timeout: 10_000 })
    return stdout
  } catch (e) {
    const err = e as { stderr?: string; message: string }
    throw new Error(`${cmd} ${argv.join(' ')}: ${(err.stderr || err.message).trim()}`)
  }
}

/** The interfaces of the host (no path) or of the namespace at `nsPath`. */
export async function listLinks(nsPath?: string): Promise<LinkInfo[]> {
  const out = JSON.parse(await ipAt(nsPath, ['-d', '-j', 'link', 'show'])) as { ifname: string; address?: string; mtu: number; linkinfo?: { info_kind?: string } }[]
  return out.map((l) => ({ ifname: l.ifname, mac: (l.address ?? '').toLowerCase(), mtu: l.mtu, ...(l.linkinfo?.info_kind ? { kind: l.linkinfo.info_kind } : {}) }))
}

/** The name of the TAP device with this MAC in the host or in the namespace, if there is one. */
export async function findTapByMac(nsPath: string | undefined, mac: string): Promise<string | undefined> {
  const want = mac.toLowerCase()
  return (await listLinks(nsPath)).find((l) => l.kind === 'tun' && l.mac === want)?.ifname
}

/** Sets a host interface's MAC and MTU (before an engine takes it). */
export async function setLink(name: string, opts: { mac?: string; mtu?: number }): Promise<void> {
  const args = ['link', 'set', 'dev', name]
  if (opts.mac) args.push('address', opts.mac)
  if (opts.mtu) args.push('mtu', String(opts.mtu))
  if (args.length > 4) await ipAt(undefined, args)
}

/** Deletes an interface in the host or in the namespace; false when it was not there. */
export async function deleteLink(nsPath: string | undefined, name: string): Promise<boolean> {
  try {
    await ipAt(nsPath, ['link', 'del', 'dev', name])
    return true
  } catch {
    return false
  }
}

/** The device of the namespace's default route, if it has one. */
export async function defaultRouteDev(nsPath: string): Promise<string | undefined> {
  const routes = JSON.parse(await ipAt(nsPath, ['-4', '-j', 'route', 'show', 'default'])) as { dev?: string }[]
  return routes[0]?.dev
}
