/**
 * The CLI's side of the API: JSON over HTTP on the daemon's unix socket.
 */
import http from 'node:http'

export class CliError extends Error {}

export interface ApiErrorBody {
  error: { code: string; message: string; field?: string }
}

export async function call<T = unknown>(socket: string, method: string, path: string, body?: unknown): Promise<T> {
  const payload = body === undefined ? undefined : JSON.stringify(body)
  return new Promise<T>((resolve, reject) => {
    const req = http.request(
      {
        socketPath: socket,
        method,
        path,
        headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
        timeout: 60_000,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          let parsed: unknown
          try {
            parsed = text ? JSON.parse(text) : undefined
          } catch {
            reject(new CliError(`the daemon answered ${res.statusCode} with a body that is not JSON`))
            return
          }
          if ((res.statusCode ?? 500) >= 400) {
            const e = (parsed as ApiErrorBody | undefined)?.error
            reject(new CliError(e ? e.message : `the daemon answered ${res.statusCode}`))
            return
          }
          resolve(parsed as T)
        })
      },
    )
    req.on('timeout', () => req.destroy(new Error('timed out after 60 s')))
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
        reject(new CliError(`cannot reach the switchyard daemon at ${socket} (${e.code}): is it running? Start it with "switchyard daemon", or pass --socket`))
      } else if (e.code === 'EACCES') {
        reject(new CliError(`permission denied on ${socket}: run as root (the socket is root-only)`))
      } else {
        reject(new CliError(`talking to the daemon at ${socket} failed: ${e.message}`))
      }
    })
    if (payload) req.write(payload)
    req.end()
  })
}
