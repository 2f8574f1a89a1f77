/**
 * The NAT tests' world: a test "host" namespace runs the daemon, an "outside" namespace
 * joined to it by veth runs servers (test/helpers/natpeer.py). Nothing leaves these
 * namespaces; teardown removes them, the daemon and the servers.
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ChildProcess } from 'node:child_process'
import type { Test } from 'tap'
import { startDaemon, type TestDaemon } from './daemon.js'
import { makeNs } from './netns.js'
import { inNs, must, spawnInNs, waitFor } from './sh.js'

export const PEER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'natpeer.py')
export const HOST = '10.226.0.1'
export const OUTSIDE = '10.226.0.2'
export const GW = '10.227.0.1'

/** Host and outside namespaces, and a daemon with `args` (and `env`) in the host one. */
export async function natWorld(t: Test, args: string[], env?: Record<string, string>): Promise<{ host: string; outside: string; d: TestDaemon }> {
  const host = await makeNs(t, 'nh')
  const outside = await makeNs(t, 'no')
  await must('ip', ['link', 'add', 'vh', 'netns', host, 'type', 'veth', 'peer', 'name', 'vo', 'netns', outside])
  await must('ip', ['-n', host, 'addr', 'add', `${HOST}/24`, 'dev', 'vh'])
  await must('ip', ['-n', outside, 'addr', 'add', `${OUTSIDE}/24`, 'dev', 'vo'])
  await must('ip', ['-n', host, 'link', 'set', 'vh', 'up'])
  await must('ip', ['-n', outside, 'link', 'set', 'vo', 'up'])
  // The outside even has a route to the sandboxes' subnet via the host: it must still not reach them.
  await must('ip', ['-n', outside, 'route', 'add', '10.227.0.0/24', 'via', HOST])
  const d = await startDaemon(t, ['--default-subnet', '10.227.0.0/24', ...args], host, env)
  return { host, outside, d }
}

/** natpeer.py in a namespace, killed in teardown. */
export function serve(t: { teardown(fn: () => unknown): void }, ns: string, args: string[]): ChildProcess {
  const p = spawnInNs(ns, ['python3', PEER, ...args])
  t.teardown(() => p.kill('SIGKILL'))
  return p
}

/** Waits until something in `ns` listens on `port` (tcp) or is bound to it (udp); a loaded machine starts servers late. */
export async function listening(ns: string, proto: 'tcp' | 'udp', port: number, timeoutMs = 15_000): Promise<boolean> {
  const flags = proto === 'tcp' ? '-Hltn' : '-Hlun'
  return waitFor(async () => (await inNs(ns, ['ss', flags, `sport = :${port}`])).stdout.trim() !== '', timeoutMs)
}

export function lines(file: string): string[] {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : []
}

/** A child's stdout lines, collected as they come. */
export function outputLines(p: ChildProcess): string[] {
  const out: string[] = []
  let buf = ''
  p.stdout!.on('data', (c: Buffer) => {
    buf += c.toString()
    const parts = buf.split('\n')
    buf = parts.pop()!
    out.push(...parts.filter(Boolean))
  })
  return out
}

export async function natStats(d: TestDaemon) {
  return (await d.api('GET', '/v1/stats')).body.nat
}

export interface FlowRow {
  proto: string
  direction: string
  state: string
  sandbox?: string
  sandboxAddress: string
  remoteAddress: string
}

/** What `nat ls` lists (from the API: quick enough to poll). */
export async function natFlows(d: TestDaemon): Promise<FlowRow[]> {
  return (await d.api<FlowRow[]>('GET', '/v1/nat')).body
}

export async function sandboxIp(d: TestDaemon, sb: string): Promise<string> {
  return (await d.api('GET', `/v1/sandboxes/${sb}`)).body.endpoints[0].address.split('/')[0]
}
