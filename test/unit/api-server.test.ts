import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { MAX_BODY, MAX_DRAIN, ApiServer } from '../../src/api/server.js'
import { silentLogger } from '../../src/util/log.js'
import { sleep, waitFor } from '../helpers/sh.js'

async function server(t: Test): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-api-'))
  const sock = path.join(dir, 'api.sock')
  const api = new ApiServer(silentLogger)
  api.route('POST', '/v1/ports', () => ({ ok: true }), 201)
  api.route('GET', '/v1/health', () => ({ ok: true }))
  await api.listen(sock)
  t.teardown(async () => {
    await api.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return sock
}

/** A raw HTTP/1.1 connection: what was received so far, and whether the server closed it. */
async function connect(t: Test, sock: string) {
  const c = net.connect(sock)
  await new Promise<void>((r, j) => c.once('connect', r).once('error', j))
  t.teardown(() => void c.destroy())
  const conn = { c, received: '', ended: false }
  c.on('data', (d: Buffer) => (conn.received += d.toString('latin1')))
  c.on('error', () => undefined)
  c.on('close', () => (conn.ended = true))
  return conn
}

/** Polls a condition on what the connection received, every 10 ms for up to 5 s. */
const until = (what: () => boolean) => waitFor(what, 5000, 10)

const post = (len: number | 'chunked', path = '/v1/ports') =>
  `POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
  (len === 'chunked' ? 'transfer-encoding: chunked\r\n' : `content-length: ${len}\r\n`) +
  '\r\n'

for (const [what, path] of [['too large', '/v1/ports'], ['sent to no route', '/v1/nothing']] as const) {
  t.test(`a body ${what} is answered once it is all read, and the connection stays usable`, async (t) => {
    const conn = await connect(t, await server(t))
    const len = 2 * MAX_BODY + 10
    conn.c.write(post(len, path) + 'x'.repeat(MAX_BODY))
    await sleep(300)
    t.equal(conn.received, '', 'no answer while the client is still sending')
    conn.c.write('x'.repeat(len - MAX_BODY))
    t.ok(await until(() => /\r\n\r\n\{.*\}$/s.test(conn.received)), 'answered after the last byte')
    t.match(conn.received, what === 'too large' ? /^HTTP\/1.1 413 .*BODY_TOO_LARGE/s : /^HTTP\/1.1 404 .*NOT_FOUND/s)
    t.notMatch(conn.received, /connection: close/i)
    conn.received = ''
    conn.c.write('GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n')
    t.ok(await until(() => /^HTTP\/1.1 200 /.test(conn.received)), 'the next request on the same connection is answered')
    t.equal(conn.ended, false)
  })
}

t.test('a chunked body past the limit is read to its end too', async (t) => {
  const conn = await connect(t, await server(t))
  const chunk = 'x'.repeat(256 << 10)
  conn.c.write(post('chunked'))
  for (let i = 0; i < 8; i++) conn.c.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`)
  await sleep(300)
  t.equal(conn.received, '', 'no answer before the last chunk')
  conn.c.write('0\r\n\r\n')
  t.ok(await until(() => /^HTTP\/1.1 413 /.test(conn.received)))
  t.equal(conn.ended, false)
})

t.test('a body too large to read is answered at once and the connection closed', async (t) => {
  const conn = await connect(t, await server(t))
  conn.c.write(post(MAX_DRAIN + 1))
  t.ok(await until(() => conn.ended), 'the server closed the connection')
  t.match(conn.received, /^HTTP\/1.1 413 /)
  t.match(conn.received, /connection: close/i)
})

t.test('a body that turns out longer than the drain limit: answered, then closed', async (t) => {
  const conn = await connect(t, await server(t))
  conn.c.write(post('chunked'))
  const chunk = 'x'.repeat(1 << 20)
  // Written while the server reads: it stops at MAX_DRAIN and closes, so later writes may fail.
  for (let i = 0; i <= MAX_DRAIN / chunk.length + 2 && !conn.ended; i++) {
    if (!conn.c.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`)) await new Promise((r) => conn.c.once('drain', r).once('close', r))
  }
  t.ok(await until(() => conn.ended), 'the server closed the connection')
  t.match(conn.received, /^HTTP\/1.1 413 /)
})

t.test('a small body is read and answered as before', async (t) => {
  const conn = await connect(t, await server(t))
  conn.c.write(post(11) + '{"name":"a"}'.slice(0, 11))
  t.ok(await until(() => /^HTTP\/1.1 400 /.test(conn.received)), 'a cut JSON body is a 400')
  conn.received = ''
  const ok = '{"name":"a"}'
  conn.c.write(post(ok.length) + ok)
  t.ok(await until(() => /^HTTP\/1.1 201 /.test(conn.received)))
})
