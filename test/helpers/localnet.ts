/**
 * Loopback helpers for tests that publish ports to the host: a free port, and a GET that
 * never throws (a failed request is status 0 with the error as body).
 */
import http from 'node:http'
import net from 'node:net'

/** A free TCP port on 127.0.0.1, for a published port. */
export async function freePort(): Promise<number> {
  const srv = net.createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
  const port = (srv.address() as net.AddressInfo).port
  await new Promise((r) => srv.close(r))
  return port
}

export function httpGet(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: 5000 }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('timeout', () => req.destroy())
    req.on('error', (e) => resolve({ status: 0, body: String(e) }))
  })
}
