/**
 * DNS over TCP at the gateway (RFC 1035 4.2.2, RFC 7766): the TCP connection itself is
 * carried by the NAT engine's TCP (the gateway's address is its far end); this is the
 * service behind it, a stream of two-byte-length-prefixed messages, several per connection.
 */
import { Duplex } from 'node:stream'
import type { DnsNetwork, DnsServer } from './dns/index.js'
import type { LocalTcpService } from '../nat/nat.js'

/** How long a closing connection waits for forwarded answers still out. */
const DRAIN_MS = 5000
/** A partial message can never be longer than this (length prefix + 64 KiB). */
const MAX_PENDING_BYTES = 65537

class DnsTcpStream extends Duplex {
  private buf: Uint8Array = new Uint8Array(0)
  private outstanding = 0
  private finished = false

  constructor(
    private readonly server: DnsServer,
    private readonly networkId: string,
    private readonly network: DnsNetwork,
    private readonly count: () => void,
  ) {
    super({ allowHalfOpen: true })
    process.nextTick(() => this.emit('connect'))
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error) => void): void {
    let buf = this.buf.length ? concat(this.buf, chunk) : chunk
    while (buf.length >= 2) {
      const n = (buf[0] << 8) | buf[1]
      if (buf.length < 2 + n) break
      const query = buf.slice(2, 2 + n)
      buf = buf.subarray(2 + n)
      this.count()
      this.outstanding++
      let answered = false
      this.server.handle(this.networkId, this.network, query, 'tcp', (answer) => {
        answered = true
        this.outstanding--
        const framed = new Uint8Array(2 + answer.length)
        framed[0] = answer.length >>> 8
        framed[1] = answer.length & 0xff
        framed.set(answer, 2)
        this.push(framed)
        this.maybeEnd()
      })
      // A query the server dropped (malformed) gets no answer: do not wait for one.
      if (!answered && this.server.forwardsInFlight === 0) this.outstanding = Math.max(0, this.outstanding - 1)
    }
    if (buf.length > MAX_PENDING_BYTES) return done(new Error('DNS message over 64 KiB'))
    this.buf = buf
    done()
  }

  override _final(done: (e?: Error) => void): void {
    this.finished = true
    this.maybeEnd()
    if (this.outstanding > 0) setTimeout(() => this.push(null), DRAIN_MS).unref()
    done()
  }

  private maybeEnd(): void {
    if (this.finished && this.outstanding === 0) this.push(null)
  }
}

/** The DNS service of one network for sandboxes that are its members. */
export function dnsTcpService(server: DnsServer, networkId: string, network: DnsNetwork, isMember: (ip: number) => boolean, count: () => void): LocalTcpService {
  return (peerIp) => (isMember(peerIp) ? new DnsTcpStream(server, networkId, network, count) : undefined)
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}
