/**
 * A real Switchyard daemon for a test: its own socket and state directory under a temp dir,
 * started as a child process, and stopped (with everything it made removed) in teardown.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { endRequest } from '../../src/api/unix-client.js'
import { run, sleep, type RunResult } from './sh.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
export const CLI = path.join(root, 'bin', 'switchyard.js')

export interface ApiResponse<T = any> {
  status: number
  body: T
}

export class TestDaemon {
  proc?: ChildProcess
  logs = ''
  readonly socket: string
  readonly stateDir: string

  constructor(
    readonly dir: string,
    readonly args: string[],
    /** Run the daemon in this network namespace (a test "host"); its mount namespace stays shared. */
    readonly netns?: string,
    /** Added to the daemon's environment (NODE_OPTIONS, say). */
    readonly env: Record<string, string> = {},
  ) {
    this.socket = path.join(dir, 'sy.sock')
    this.stateDir = path.join(dir, 'state')
  }

  get pid(): number {
    return this.proc!.pid!
  }

  async start(): Promise<void> {
    const argv = [process.execPath, CLI, '--socket', this.socket, 'daemon', '--state-dir', this.stateDir, ...this.args]
    // nsenter, not `ip netns exec`: the latter unshares the mount namespace, hiding the daemon's /run/netns.
    const cmd = this.netns ? ['nsenter', `--net=/run/netns/${this.netns}`, ...argv] : argv
    const p = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...this.env } })
    this.proc = p
    p.stderr!.on('data', (c: Buffer) => {
      this.logs += c.toString()
      if (this.logs.length > 1 << 20) this.logs = this.logs.slice(-(1 << 19))
    })
    const end = Date.now() + 20_000
    while (Date.now() < end) {
      if (p.exitCode !== null) throw new Error(`daemon exited with ${p.exitCode}: ${this.logs}`)
      if (fs.existsSync(this.socket)) {
        const r = await this.api('GET', '/v1/health').catch(() => undefined)
        if (r?.status === 200) return
      }
      await sleep(50)
    }
    throw new Error(`daemon did not become ready: ${this.logs}`)
  }

  /** SIGKILL, as a crash would. */
  async kill9(): Promise<void> {
    const p = this.proc
    if (!p || p.exitCode !== null) return
    const exited = new Promise((r) => p.once('exit', r))
    p.kill('SIGKILL')
    await exited
  }

  async stop(): Promise<number | null> {
    const p = this.proc
    if (!p || p.exitCode !== null || p.signalCode !== null) return p?.exitCode ?? null
    const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)))
    p.kill('SIGTERM')
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000)
    const code = await exited
    clearTimeout(t)
    return code
  }

  cli(args: string[], timeoutMs = 60_000): Promise<RunResult> {
    return run(process.execPath, [CLI, '--socket', this.socket, ...args], timeoutMs)
  }

  api<T = any>(method: string, p: string, body?: unknown, rawBody?: string | Buffer): Promise<ApiResponse<T>> {
    const payload = rawBody ?? (body === undefined ? undefined : JSON.stringify(body))
    return new Promise((resolve, reject) => {
      const req = http.request(
        { socketPath: this.socket, method, path: p, agent: false /* see requestJson */, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString()
            let parsed: unknown = text
            try {
              parsed = text ? JSON.parse(text) : undefined
            } catch {
              // keep text
            }
            resolve({ status: res.statusCode ?? 0, body: parsed as T })
          })
        },
      )
      req.on('error', reject)
      endRequest(req, payload)
    })
  }

  /** Removes every sandbox, port and non-default network the daemon knows. */
  async clean(): Promise<void> {
    const sbs = await this.api<{ id: string }[]>('GET', '/v1/sandboxes').catch(() => undefined)
    for (const s of sbs?.body ?? []) await this.api('DELETE', `/v1/sandboxes/${s.id}`)
    const ports = await this.api<{ name: string; kind: string }[]>('GET', '/v1/ports').catch(() => undefined)
    for (const p of ports?.body ?? []) if (p.kind === 'port') await this.api('DELETE', `/v1/ports/${p.name}`)
    const eps = await this.api<{ tap: string }[]>('GET', '/v1/endpoints').catch(() => undefined)
    await this.api('POST', '/v1/networks/prune').catch(() => undefined)
    // Endpoints without a sandbox keep a persistent TAP in the host namespace.
    for (const e of eps?.body ?? []) await run('ip', ['link', 'del', e.tap])
  }
}

/** Starts a daemon for test `t`; teardown cleans its objects and stops it. */
export async function startDaemon(t: Test, args: string[] = [], netns?: string, env?: Record<string, string>): Promise<TestDaemon> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-test-'))
  // Never forward a test's DNS queries to the host's real resolvers: nothing listens on port 9.
  const d = new TestDaemon(dir, args.includes('--dns') ? args : [...args, '--dns', '127.0.0.1:9'], netns, env)
  t.teardown(async () => {
    if (d.proc && d.proc.exitCode === null && d.proc.signalCode === null) await d.clean().catch(() => undefined)
    await d.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  await d.start()
  return d
}
