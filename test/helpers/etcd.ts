/**
 * A one-member etcd (Debian's etcd-server) for a test: listens for clients on `ip` inside the
 * namespace `ns`, keeps its data in a temp directory, and is stopped and removed in teardown.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Test } from 'tap'
import { inNs, sleep, spawnInNs } from './sh.js'

export interface TestEtcd {
  url: string
  /** etcdctl inside the namespace, against this etcd. */
  ctl(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }>
}

export async function startEtcd(t: Test, ns: string, ip: string, port = 23790): Promise<TestEtcd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-etcd-'))
  const client = `http://${ip}:${port}`
  const peer = `http://127.0.0.1:${port + 10}`
  const p = spawnInNs(ns, [
    'etcd', '--name', 'test', '--data-dir', dir,
    '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `test=${peer}`,
    '--log-level', 'error',
  ])
  let logs = ''
  p.stderr!.on('data', (c: Buffer) => (logs = (logs + c.toString()).slice(-8192)))
  t.teardown(async () => {
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r))
      p.kill('SIGKILL')
      await exited
    }
    fs.rmSync(dir, { recursive: true, force: true })
  })
  const ctl: TestEtcd['ctl'] = (args) => inNs(ns, ['env', 'ETCDCTL_API=3', 'etcdctl', '--endpoints', client, ...args], 15_000)
  const end = Date.now() + 20_000
  while (Date.now() < end) {
    if (p.exitCode !== null) throw new Error(`etcd exited with ${p.exitCode}: ${logs}`)
    if ((await ctl(['endpoint', 'health'])).code === 0) return { url: `etcd://${ip}:${port}`, ctl }
    await sleep(200)
  }
  throw new Error(`etcd did not become healthy: ${logs}`)
}
