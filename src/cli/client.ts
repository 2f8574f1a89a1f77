/**
 * The CLI's side of the API: JSON over HTTP on the daemon's unix socket.
 */
import { NotJsonError, requestJson } from '../api/unix-client.js'

export class CliError extends Error {}

export interface ApiErrorBody {
  error: { code: string; message: string; field?: string }
}

export async function call<T = unknown>(socket: string, method: string, path: string, body?: unknown): Promise<T> {
  let reply
  try {
    reply = await requestJson(socket, method, path, body)
  } catch (e) {
    if (e instanceof NotJsonError) throw new CliError(e.message)
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ECONNREFUSED') {
      throw new CliError(`cannot reach the switchyard daemon at ${socket} (${code}): is it running? Start it with "switchyard daemon", or pass --socket`)
    }
    if (code === 'EACCES') throw new CliError(`permission denied on ${socket}: run as root (the socket is root-only)`)
    throw new CliError(`talking to the daemon at ${socket} failed: ${(e as Error).message}`)
  }
  if (reply.status >= 400) {
    const err = (reply.body as ApiErrorBody | undefined)?.error
    throw new CliError(err ? err.message : `the daemon answered ${reply.status}`)
  }
  return reply.body as T
}
