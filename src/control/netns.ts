/**
 * The kernel side of sandboxes: network namespaces and the interfaces in them, driven with
 * iproute2 (the same commands an operator would type, so failures read familiar).
 *
 *   await netns.create('web')                      // /run/netns/web
 *   await netns.moveLink('sy1a2b3c', '/run/netns/web', 'eth0')
 */
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export const NETNS_DIR = '/run/netns'

export class NetnsError extends Error {
  readonly code = 'NETNS_FAILED'
  constructor(
    readonly command: string,
    readonly stderr: string,
  ) {
    super(`${command}: ${stderr.trim() || 'failed'}`)
  }
}

async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', args, { timeout: 10_000 })
    return stdout
  } catch (e) {
    const err = e as { stderr?: string; message: string }
    throw new NetnsError(`ip ${args.join(' ')}`, err.stderr || err.message)
  }
}

/** `ip -n` takes a name; for namespaces given by path we go through nsenter-like `ip -netns` with the path's basename when it lives in /run/netns, else we bind it there. */
export function netnsPathFor(name: string): string {
  return path.join(NETNS_DIR, name)
}

export function netnsExists(nsPath: string): boolean {
  return fs.existsSync(nsPath)
}

export async function createNetns(name: string): Promise<string> {
  await ip(['netns', 'add', name])
  await ip(['-n', name, 'link', 'set', 'lo', 'up'])
  return netnsPathFor(name)
}

/** Deletes a namespace we created, with its resolv.conf; one that is already gone is fine. */
export async function deleteNetns(name: string): Promise<void> {
  try {
    if (netnsExists(netnsPathFor(name))) await ip(['netns', 'del', name])
  } finally {
    fs.rmSync(path.join('/etc/netns', name), { recursive: true, force: true })
  }
}

/**
 * Runs `ip` inside the namespace at nsPath. Namespaces under /run/netns are addressed by
 * name; others (Docker's, CNI's) through `ip -netns` on a link we make under /run/netns.
 */
async function ipIn(nsPath: string, args: string[]): Promise<string> {
  return ip(['-n', await nameFor(nsPath), ...args])
}

async function nameFor(nsPath: string): Promise<string> {
  if (path.dirname(nsPath) === NETNS_DIR) return path.basename(nsPath)
  // iproute2 only knows namespaces by name in /run/netns: give a foreign one a bind mount.
  const name = 'sy-' + Buffer.from(nsPath).toString('hex').slice(-24)
  const target = netnsPathFor(name)
  if (!fs.existsSync(target)) {
    fs.mkdirSync(NETNS_DIR, { recursive: true })
    fs.writeFileSync(target, '')
    try {
      await run('mount', ['--bind', nsPath, target])
    } catch (e) {
      fs.rmSync(target, { force: true })
      throw new NetnsError(`mount --bind ${nsPath} ${target}`, (e as { stderr?: string }).stderr ?? String(e))
    }
  }
  return name
}

export interface InterfaceConfig {
  /** Name inside the sandbox, e.g. eth0. */
  ifname: string
  mac: string
  /** Address with prefix, e.g. 10.0.0.2/24. */
  address: string
  mtu: number
}

/** Moves a host interface into a sandbox, renames it and brings it up with its address. */
export async function moveLink(hostName: string, nsPath: string, cfg: InterfaceConfig): Promise<void> {
  const ns = await nameFor(nsPath)
  await ip(['link', 'set', 'dev', hostName, 'netns', ns])
  await ip(['-n', ns, 'link', 'set', 'dev', hostName, 'name', cfg.ifname, 'address', cfg.mac, 'mtu', String(cfg.mtu)])
  await ip(['-n', ns, 'addr', 'add', cfg.address, 'dev', cfg.ifname])
  await ip(['-n', ns, 'link', 'set', 'dev', cfg.ifname, 'up'])
}

/** Moves a host interface into a namespace under `ifname` and brings it up, with no address (a VM-like port). */
export async function moveLinkBare(hostName: string, nsPath: string, ifname: string): Promise<void> {
  const ns = await nameFor(nsPath)
  await ip(['link', 'set', 'dev', hostName, 'netns', ns])
  if (ifname !== hostName) await ip(['-n', ns, 'link', 'set', 'dev', hostName, 'name', ifname])
  await ip(['-n', ns, 'link', 'set', 'dev', ifname, 'up'])
}

export async function linkUp(ifname: string): Promise<void> {
  await ip(['link', 'set', 'dev', ifname, 'up'])
}

/** Interface names present in a sandbox. */
export async function listLinks(nsPath: string): Promise<string[]> {
  const out = await ipIn(nsPath, ['-j', 'link', 'show'])
  return (JSON.parse(out) as { ifname: string }[]).map((l) => l.ifname)
}

export async function deleteLink(nsPath: string | undefined, ifname: string): Promise<void> {
  if (nsPath) await ipIn(nsPath, ['link', 'del', 'dev', ifname])
  else await ip(['link', 'del', 'dev', ifname])
}

export async function linkExists(nsPath: string | undefined, ifname: string): Promise<boolean> {
  try {
    if (nsPath) await ipIn(nsPath, ['link', 'show', 'dev', ifname])
    else await ip(['link', 'show', 'dev', ifname])
    return true
  } catch {
    return false
  }
}

/** Makes `gateway` on `ifname` the sandbox's only default route. */
export async function setDefaultRoute(nsPath: string, gateway: string, ifname: string): Promise<void> {
  await ipIn(nsPath, ['route', 'replace', 'default', 'via', gateway, 'dev', ifname])
}

export async function deleteDefaultRoute(nsPath: string): Promise<void> {
  try {
    await ipIn(nsPath, ['route', 'del', 'default'])
  } catch {
    // none was there
  }
}

/** The sandbox's default route as (gateway, device), if any. */
export async function defaultRoute(nsPath: string): Promise<{ gateway: string; dev: string } | undefined> {
  const out = await ipIn(nsPath, ['-j', 'route', 'show', 'default'])
  const r = (JSON.parse(out) as { gateway?: string; dev?: string }[])[0]
  return r?.gateway && r.dev ? { gateway: r.gateway, dev: r.dev } : undefined
}

/**
 * `ip netns exec NAME` bind-mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf, so this
 * is where a sandbox's resolver configuration lives.
 */
export function writeResolvConf(name: string, content: string): string {
  const dir = path.join('/etc/netns', name)
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, 'resolv.conf')
  fs.writeFileSync(file + '.tmp', content)
  fs.renameSync(file + '.tmp', file)
  return file
}

/** Releases the /run/netns bind mount made for a foreign namespace, if any. */
export async function forgetForeign(nsPath: string): Promise<void> {
  if (path.dirname(nsPath) === NETNS_DIR) return
  const target = netnsPathFor('sy-' + Buffer.from(nsPath).toString('hex').slice(-24))
  if (!fs.existsSync(target)) return
  await run('umount', [target]).catch(() => undefined)
  fs.rmSync(target, { force: true })
}
