/**
 * JSON over HTTP on a unix socket: the client side of the daemon's API, shared by the CLI
 * and the CNI plugin executable.
 *
 *   const r = await requestJson('/run/switchyard/switchyard.sock', 'GET', '/v1/stats')
 *   if (r.status === 200) console.log(r.body)
 */
import http from 'node:http'

export interface JsonReply {
  status: number
  /** The parsed body (undefined for an empty one). */
  body: unknown
  text: string
}

/** The daemon answered, but not with JSON. */
export class NotJsonError extends Error {
  constructor(readonly status: number) {
    super(`the daemon answered ${status} with a body that is not JSON`)
  }
}

/**
 * Ends a request once its body has left. After end(body), or end() while the body is still
 * queued, node:http writes one more, empty, chunk; a daemon that has read the body, answered
 * and closed the connection by then turns that write into an EPIPE on the request, at times
 * before the answer has been read.
 */
export function endRequest(req: http.ClientRequest, payload?: string | Buffer): void {
  if (payload === undefined) req.end()
  else req.write(payload, () => req.end())
}

/** Sends one request; rejects on transport errors (with their errno code) and on a non-JSON answer. */
export function requestJson(socket: string, method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<JsonReply> {
  const payload = body === undefined ? undefined : JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath: socket,
        method,
        path,
        headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
        timeout: timeoutMs,
        // A connection of its own: on a kept-alive one, node:http lets go of the socket's error
        // listener once the answer is in and the body's last write completes — if that write
        // failed (the server answered before reading the body, then closed or stopped), the
        // EPIPE has no listener and crashes the caller after it already has its answer.
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          const status = res.statusCode ?? 0
          try {
            resolve({ status, body: text ? JSON.parse(text) : undefined, text })
          } catch {
            reject(new NotJsonError(status))
          }
        })
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    req.on('error', reject)
    endRequest(req, payload)
  })
}
