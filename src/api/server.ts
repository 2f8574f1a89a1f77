/**
 * The daemon's HTTP/JSON API on a unix socket. A tiny router: routes are (method, path
 * pattern) pairs; handlers take the parsed request and return a JSON-able value or throw
 * an ApiError. Bodies are capped (413) and must be JSON objects (400).
 *
 *   const api = new ApiServer({ log })
 *   api.route('GET', '/v1/ports/:name', (req) => sw.port(req.params.name))
 *   await api.listen('/run/switchyard/switchyard.sock')
 */
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import type { Logger } from '../util/log.js'
import { ApiError } from './errors.js'

export interface ApiRequest {
  method: string
  params: Record<string, string>
  query: URLSearchParams
  body: unknown
}

export type Handler = (req: ApiRequest) => unknown | Promise<unknown>

interface Route {
  method: string
  parts: string[]
  handler: Handler
  status: number
}

export const MAX_BODY = 1 << 20
/**
 * How much of a refused body (too large, or sent to a wrong path) the server still reads and
 * drops before it answers. Node answers at once otherwise, and a client still writing when the
 * connection closes (it sent "Connection: close", or the daemon stops) meets EPIPE instead of
 * the answer. A longer body gets its answer at once and a closed connection.
 */
export const MAX_DRAIN = 16 * MAX_BODY

export class ApiServer {
  private routes: Route[] = []
  private server?: http.Server
  /** Maps domain errors (switch, IPAM, ...) to API errors; returns undefined for unknown ones. */
  mapError: (e: unknown) => ApiError | undefined = () => undefined

  constructor(private readonly log?: Logger) {}

  route(method: string, pattern: string, handler: Handler, status = 200): void {
    this.routes.push({ method, parts: pattern.split('/').filter(Boolean), handler, status })
  }

  async listen(socketPath: string, mode = 0o660): Promise<void> {
    fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o755 })
    await removeStaleSocket(socketPath)
    const server = http.createServer((req, res) => void this.serve(req, res))
    this.server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(socketPath, () => resolve())
    })
    fs.chmodSync(socketPath, mode)
  }

  async close(): Promise<void> {
    const s = this.server
    if (!s) return
    s.closeAllConnections()
    await new Promise<void>((resolve) => s.close(() => resolve()))
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let status = 200
    let body: unknown
    try {
      const url = new URL(req.url ?? '/', 'http://switchyard')
      const { route, params } = this.match(req.method ?? 'GET', url.pathname)
      const raw = await readBody(req)
      let parsed: unknown = undefined
      if (raw.length > 0) {
        try {
          parsed = JSON.parse(raw.toString('utf8'))
        } catch (e) {
          throw new ApiError(400, 'INVALID_JSON', `request body is not valid JSON: ${(e as Error).message}`)
        }
      }
      body = await route.handler({ method: route.method, params, query: url.searchParams, body: parsed })
      status = route.status
    } catch (e) {
      const err = e instanceof ApiError ? e : this.mapError(e)
      if (err) {
        status = err.status
        body = err
      } else {
        status = 500
        body = new ApiError(500, 'INTERNAL', (e as Error)?.message ?? String(e))
        this.log?.error('request failed', { method: req.method, url: req.url, error: (e as Error)?.stack ?? String(e) })
      }
    }
    const text = body === undefined ? '' : JSON.stringify(body)
    if (!(await drain(req, MAX_DRAIN))) res.setHeader('connection', 'close')
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
    res.end(text)
  }

  private match(method: string, pathname: string): { route: Route; params: Record<string, string> } {
    const parts = pathname.split('/').filter(Boolean)
    let pathMatched = false
    for (const r of this.routes) {
      if (r.parts.length !== parts.length) continue
      const params: Record<string, string> = {}
      let ok = true
      for (let i = 0; i < parts.length && ok; i++) {
        if (r.parts[i].startsWith(':')) params[r.parts[i].slice(1)] = decodeURIComponent(parts[i])
        else ok = r.parts[i] === parts[i]
      }
      if (!ok) continue
      pathMatched = true
      if (r.method === method) return { route: r, params }
    }
    if (pathMatched) throw new ApiError(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed on ${pathname}`)
    throw new ApiError(404, 'NOT_FOUND', `no such endpoint: ${method} ${pathname}`)
  }
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0)
    if (declared > MAX_BODY) {
      reject(new ApiError(413, 'BODY_TOO_LARGE', `request body of ${declared} bytes exceeds the ${MAX_BODY}-byte limit`))
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > MAX_BODY) {
        req.removeAllListeners('data')
        reject(new ApiError(413, 'BODY_TOO_LARGE', `request body exceeds the ${MAX_BODY}-byte limit`))
        return
      }
      chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

/** Reads and drops what is left of a request's body; false when more than `limit` bytes are left. */
function drain(req: http.IncomingMessage, limit: number): Promise<boolean> {
  if (req.complete || req.destroyed) return Promise.resolve(true)
  if (Number(req.headers['content-length'] ?? 0) > limit) return Promise.resolve(false)
  return new Promise((resolve) => {
    let size = 0
    const done = (whole: boolean) => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('close', onEnd)
      resolve(whole)
    }
    const onData = (c: Buffer) => {
      size += c.length
      if (size > limit) {
        req.pause()
        done(false)
      }
    }
    // 'close' without 'end': the client went away, nothing left to protect.
    const onEnd = () => done(true)
    req.on('data', onData)
    req.once('end', onEnd)
    req.once('close', onEnd)
    req.resume()
  })
}

/** A socket file left by a crashed daemon blocks listen(); one that answers means a live daemon. */
async function removeStaleSocket(p: string): Promise<void> {
  let st: fs.Stats
  try {
    st = fs.statSync(p)
  } catch {
    return
  }
  if (!st.isSocket()) throw new Error(`${p} exists and is not a socket; remove it or choose another --socket`)
  const live = await new Promise<boolean>((resolve) => {
    const c = net.connect(p)
    c.once('connect', () => {
      c.destroy()
      resolve(true)
    })
    c.once('error', () => resolve(false))
  })
  if (live) throw new Error(`another daemon is listening on ${p}; stop it or choose another --socket`)
  fs.unlinkSync(p)
}
