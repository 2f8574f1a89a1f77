/**
 * A tiny upstream DNS resolver for tests, on 127.0.0.1 (UDP and TCP on one port), that
 * answers, fails or stays silent as it is told.
 */
import dgram from 'node:dgram'
import net from 'node:net'
import { once } from 'node:events'
import { CLASS, FLAG, RCODE, TYPE, decode, encode, type DnsMessage, type DnsRecord } from '../../src/gateway/dns/codec.js'
import type { Upstream } from '../../src/gateway/dns/forwarder.js'

export type Mode = 'answer' | 'servfail' | 'refused' | 'silent' | 'truncate' | 'nxdomain'

/** A tiny upstream resolver on 127.0.0.1 (UDP and TCP on one port) that does what it is told. */
export class FakeUpstream {
  mode: Mode = 'answer'
  ttl = 300
  /** How many A records to answer with (10.x.y.z). */
  count = 1
  udpQueries = 0
  tcpQueries = 0
  private readonly conns = new Set<net.Socket>()

  private constructor(
    private readonly udp: dgram.Socket,
    private readonly tcp: net.Server,
    readonly port: number,
  ) {
    udp.on('message', (msg, rinfo) => {
      this.udpQueries++
      const r = this.respond(msg, false)
      if (r) udp.send(r, rinfo.port, rinfo.address)
    })
    tcp.on('connection', (sock) => {
      this.conns.add(sock)
      sock.on('close', () => this.conns.delete(sock))
      sock.on('error', () => sock.destroy())
      let buf = Buffer.alloc(0)
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d])
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const msg = buf.subarray(2, 2 + buf.readUInt16BE(0))
          buf = buf.subarray(2 + msg.length)
          this.tcpQueries++
          const r = this.respond(msg, true)
          if (r) {
            const len = Buffer.alloc(2)
            len.writeUInt16BE(r.length)
            sock.write(Buffer.concat([len, r]))
          }
        }
      })
    })
  }

  static async start(): Promise<FakeUpstream> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const udp = dgram.createSocket('udp4')
      udp.bind(0, '127.0.0.1')
      await once(udp, 'listening')
      const port = udp.address().port
      const tcp = net.createServer()
      const ok = await new Promise<boolean>((resolve) => {
        tcp.once('error', () => resolve(false))
        tcp.listen(port, '127.0.0.1', () => resolve(true))
      })
      if (ok) return new FakeUpstream(udp, tcp, port)
      udp.close()
    }
    throw new Error('no port free for both UDP and TCP')
  }

  get upstream(): Upstream {
    return { host: '127.0.0.1', port: this.port }
  }

  get queries(): number {
    return this.udpQueries + this.tcpQueries
  }

  private respond(wire: Uint8Array, tcp: boolean): Uint8Array | null {
    if (this.mode === 'silent') return null
    const q = decode(wire)
    const opt = q.additionals.filter((r) => r.type === TYPE.OPT)
    const reply: DnsMessage = { id: q.id, flags: FLAG.QR | FLAG.RA | (q.flags & FLAG.RD), questions: q.questions, answers: [], authorities: [], additionals: opt }
    const name = q.questions[0].name
    if (this.mode === 'servfail') reply.flags |= RCODE.SERVFAIL
    else if (this.mode === 'refused') reply.flags |= RCODE.REFUSED
    else if (this.mode === 'nxdomain') {
      reply.flags |= RCODE.NXDOMAIN
      reply.authorities.push({
        name: 'example',
        type: TYPE.SOA,
        class: CLASS.IN,
        ttl: this.ttl,
        data: { mname: 'ns.example', rname: 'h.example', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: this.ttl },
      })
    } else if (this.mode === 'truncate' && !tcp) reply.flags |= FLAG.TC
    else {
      for (let i = 0; i < this.count; i++) {
        const rr: DnsRecord = { name, type: TYPE.A, class: CLASS.IN, ttl: this.ttl, data: `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}` }
        reply.answers.push(rr)
      }
    }
    return encode(reply)
  }

  async close(): Promise<void> {
    for (const s of this.conns) s.destroy()
    this.udp.close()
    await new Promise<void>((resolve) => this.tcp.close(() => resolve()))
  }
}

