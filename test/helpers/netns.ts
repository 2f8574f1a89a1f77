/**
 * Namespaces for tests, named with a per-run prefix and removed in teardown (also when the
 * test fails).
 */
import fs from 'node:fs'
import type { Test } from 'tap'
import { must, run } from './sh.js'

let counter = 0
const runTag = (process.pid % 10000).toString(36)

/** A short unique name (interface names must fit 15 bytes). */
export function uniqueName(prefix: string): string {
  return `${prefix}${runTag}${(counter++).toString(36)}`
}

/** Creates a namespace with lo up and IPv6 off (no RS/MLD chatter in counters). */
export async function makeNs(t: Test, prefix = 'syt'): Promise<string> {
  const name = uniqueName(prefix)
  await must('ip', ['netns', 'add', name])
  t.teardown(() => removeNs(name))
  await must('ip', ['-n', name, 'link', 'set', 'lo', 'up'])
  await quietIpv6(name)
  return name
}

export async function quietIpv6(ns: string): Promise<void> {
  await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'])
}

export async function removeNs(name: string): Promise<void> {
  // Kill whatever the test left running inside (by PID, only processes in this namespace).
  const pids = await run('ip', ['netns', 'pids', name])
  for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL')
    } catch {
      // already gone
    }
  }
  await run('ip', ['netns', 'del', name])
}

/**
 * A name for a sandbox the daemon will create; teardown removes the namespace and its
 * resolv.conf even if the daemon could not (a failed test, a killed daemon).
 */
export function sandboxName(t: { teardown(fn: () => unknown): void }, prefix = 'sb'): string {
  const name = uniqueName(prefix)
  t.teardown(async () => {
    await removeNs(name)
    fs.rmSync(`/etc/netns/${name}`, { recursive: true, force: true })
  })
  return name
}

/** Moves a host interface into a namespace with an address, and brings it up. */
export async function plug(ifname: string, ns: string, cidr: string, opts: { mtu?: number; newName?: string } = {}): Promise<string> {
  const name = opts.newName ?? ifname
  await must('ip', ['link', 'set', 'dev', ifname, 'netns', ns])
  if (name !== ifname) await must('ip', ['-n', ns, 'link', 'set', 'dev', ifname, 'name', name])
  if (opts.mtu) await must('ip', ['-n', ns, 'link', 'set', 'dev', name, 'mtu', String(opts.mtu)])
  await must('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', name])
  await must('ip', ['-n', ns, 'link', 'set', 'dev', name, 'up'])
  return name
}
