/**
 * Shell helpers for integration tests: run a command (optionally inside a namespace) and
 * get its output, with a bounded time.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { promisify } from 'node:util'

const pexec = promisify(execFile)

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs a command; never throws for a non-zero exit (tests assert on `code`). */
export async function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  try {
    const { stdout, stderr } = await pexec(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20 })
    return { code: 0, stdout, stderr }
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string; message: string }
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? err.message }
  }
}

/** Runs a command and throws with its stderr when it fails. */
export async function must(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const r = await run(cmd, args, timeoutMs)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`)
  return r.stdout
}

export const inNs = (ns: string, args: string[], timeoutMs?: number) => run('ip', ['netns', 'exec', ns, ...args], timeoutMs)
export const mustInNs = (ns: string, args: string[], timeoutMs?: number) => must('ip', ['netns', 'exec', ns, ...args], timeoutMs)

/** Starts a long-running command inside a namespace (servers, background pings). */
export function spawnInNs(ns: string, args: string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Ping `count` times; returns how many replies came back. */
export async function ping(ns: string, addr: string, count = 3, interval = '0.2'): Promise<number> {
  const r = await inNs(ns, ['ping', '-c', String(count), '-i', interval, '-W', '1', addr], 30_000)
  const m = /(\d+) received/.exec(r.stdout)
  return m ? Number(m[1]) : 0
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(fn: () => Promise<T> | T, timeoutMs = 10_000, stepMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs
  let last: T
  do {
    last = await fn()
    if (last) return last
    await sleep(stepMs)
  } while (Date.now() < end)
  return last
}
