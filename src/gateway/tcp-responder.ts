/**
 * A small TCP server endpoint inside the switch, for request/response services the gateway
 * answers itself (DNS over TCP). The switch owns the link, so this is a plain TCP state
 * machine: handshake, in-order data with cumulative ACKs, retransmission of our data until
 * acknowledged, FIN/RST both ways. Connections are bounded per responder and time out.
 *
 *   const tcp = new TcpResponder({ port: 53, send, onData: (conn, bytes) => conn.write(answer) })
 *   tcp.receive(inPort, hdr, a, buf, tcpOff, tcpLen)   // for every segment to the gateway's port 53
 */
import { TcpFlag, tcpAck, tcpFlags, tcpHeaderLength, tcpSeq, tcpWindow } from '../packet/tcp.js'
import { writeTcpFrame, type FlowAddress, type SendFrame } from './frames.js'

export interface TcpConnection {
  readonly peerIp: number
  readonly peerPort: number
  /** Queues bytes to the peer. */
  write(data: Uint8Array): void
  /** Sends FIN after what is queued. */
  end(): void
  /** Application state (e.g. a partial request). */
  state: unknown
}

export interface TcpResponderOptions {
  send: SendFrame
  /** Called with each in-order chunk of data from the peer. */
  onData: (conn: TcpConnection, data: Uint8Array) => void
  maxConnections?: number
  /** A connection with no traffic for this long is reset. */
  idleMs?: number
  retransmitMs?: number
  maxRetransmits?: number
  mtu: number
}

export interface TcpCounters {
  accepted: number
  refused: number
  resets: number
  retransmits: number
  dropped: number
}

const enum St {
  SynRcvd,
  Established,
  FinWait, // we sent FIN, waiting for its ACK (peer may still send)
  CloseWait, // peer sent FIN; we close after our data
  LastAck,
}

const WINDOW = 65535

interface Conn extends TcpConnection {
  key: string
  st: St
  port: number
  hdr: number
  addr: FlowAddress
  iss: number
  sndUna: number
  sndNxt: number
  rcvNxt: number
  peerWindow: number
  out: Uint8Array[]
  outBytes: number
  /** Bytes of out[] already sent once (from sndUna). */
  finQueued: boolean
  finSent: boolean
  timer?: NodeJS.Timeout
  retries: number
  lastActive: number
}

const seqLt = (a: number, b: number) => ((a - b) | 0) < 0
const seqLe = (a: number, b: number) => ((a - b) | 0) <= 0
const add = (a: number, n: number) => (a + n) >>> 0

export class TcpResponder {
  readonly counters: TcpCounters = { accepted: 0, refused: 0, resets: 0, retransmits: 0, dropped: 0 }
  private readonly conns = new Map<string, Conn>()
  private readonly scratch: Uint8Array
  private readonly opts: Required<Omit<TcpResponderOptions, 'send' | 'onData'>> & Pick<TcpResponderOptions, 'send' | 'onData'>
  private readonly sweeper: NodeJS.Timeout

  constructor(opts: TcpResponderOptions) {
    this.opts = { maxConnections: 256, idleMs: 30_000, retransmitMs: 200, maxRetransmits: 6, ...opts }
    this.scratch = new Uint8Array(64 + 14 + 20 + 60 + opts.mtu)
    this.sweeper = setInterval(() => this.sweep(), Math.min(5000, this.opts.idleMs))
    this.sweeper.unref()
  }

  get connections(): number {
    return this.conns.size
  }

  /** A segment for us: `a` has the gateway as src (so replies use it directly). */
  receive(port: number, hdr: number, a: FlowAddress, buf: Uint8Array, off: number, len: number): void {
    const key = `${a.dstIp}:${a.dstPort}:${a.srcPort}`
    const flags = tcpFlags(buf, off)
    const seq = tcpSeq(buf, off)
    const ack = tcpAck(buf, off)
    const dataOff = off + tcpHeaderLength(buf, off)
    const dataLen = off + len - dataOff
    let c = this.conns.get(key)
    if (flags & TcpFlag.RST) {
      if (c) this.drop(c)
      return
    }
    if (!c) {
      if (flags & TcpFlag.SYN && !(flags & TcpFlag.ACK)) return this.accept(key, port, hdr, a, seq, tcpWindow(buf, off))
      // Not ours (old connection, stray segment): reset, as RFC 793 says.
      if (!(flags & TcpFlag.RST)) this.sendReset(port, hdr, a, flags & TcpFlag.ACK ? ack : 0, add(seq, dataLen + (flags & TcpFlag.SYN ? 1 : 0) + (flags & TcpFlag.FIN ? 1 : 0)), !(flags & TcpFlag.ACK))
      return
    }
    c.lastActive = Date.now()
    c.port = port
    if (flags & TcpFlag.SYN) {
      // A retransmitted SYN: our SYN-ACK got lost.
      if (c.st === St.SynRcvd) this.emit(c, c.iss, TcpFlag.SYN | TcpFlag.ACK, undefined, 0, 0, this.mss())
      return
    }
    if (flags & TcpFlag.ACK) this.onAck(c, ack, tcpWindow(buf, off))
    if (!this.conns.has(key)) return
    if (dataLen > 0 || flags & TcpFlag.FIN) {
      if (seq !== c.rcvNxt) {
        // Out of order or duplicate: say what we expect.
        this.counters.dropped++
        this.emit(c, c.sndNxt, TcpFlag.ACK, undefined, 0, 0)
        return
      }
      if (dataLen > 0 && (c.st === St.Established || c.st === St.FinWait)) {
        c.rcvNxt = add(c.rcvNxt, dataLen)
        // Copy: the slab is reused by the next batch, the application may keep the bytes.
        this.opts.onData(c, buf.slice(dataOff, dataOff + dataLen))
      }
      if (flags & TcpFlag.FIN) {
        c.rcvNxt = add(c.rcvNxt, 1)
        if (c.st === St.Established) c.st = St.CloseWait
        if (!c.finQueued) c.end()
      }
      if (this.conns.has(key)) this.flush(c, true)
    }
  }

  close(): void {
    clearInterval(this.sweeper)
    for (const c of [...this.conns.values()]) this.drop(c)
  }

  private accept(key: string, port: number, hdr: number, a: FlowAddress, seq: number, window: number): void {
    if (this.conns.size >= this.opts.maxConnections) {
      this.counters.refused++
      this.sendReset(port, hdr, a, 0, add(seq, 1), true)
      return
    }
    const iss = (Math.random() * 0x100000000) >>> 0
    const self = this
    const c: Conn = {
      key,
      st: St.SynRcvd,
      port,
      hdr,
      addr: { ...a },
      peerIp: a.dstIp,
      peerPort: a.dstPort,
      iss,
      sndUna: iss,
      sndNxt: add(iss, 1),
      rcvNxt: add(seq, 1),
      peerWindow: window,
      out: [],
      outBytes: 0,
      finQueued: false,
      finSent: false,
      retries: 0,
      lastActive: Date.now(),
      state: undefined,
      write(data: Uint8Array) {
        if (this.finQueued || data.length === 0) return
        ;(this as Conn).out.push(data)
        ;(this as Conn).outBytes += data.length
        self.flush(this as Conn, false)
      },
      end() {
        if (this.finQueued) return
        ;(this as Conn).finQueued = true
        self.flush(this as Conn, false)
      },
    }
    this.conns.set(key, c)
    this.counters.accepted++
    this.emit(c, iss, TcpFlag.SYN | TcpFlag.ACK, undefined, 0, 0, this.mss())
    this.arm(c)
  }

  private mss(): number {
    return this.opts.mtu - 40
  }

  private onAck(c: Conn, ack: number, window: number): void {
    c.peerWindow = window
    if (c.st === St.SynRcvd) {
      if (ack !== c.sndNxt) return
      c.st = St.Established
      c.sndUna = ack
      c.retries = 0
      this.disarm(c)
      return
    }
    if (seqLt(c.sndUna, ack) && seqLe(ack, c.sndNxt)) {
      let acked = (ack - c.sndUna) >>> 0
      c.sndUna = ack
      c.retries = 0
      if (c.finSent && ack === c.sndNxt) acked-- // our FIN took one sequence number
      this.consume(c, acked)
      if (c.finSent && ack === c.sndNxt) {
        // Our FIN is acknowledged: done once the peer has closed too.
        if (c.st === St.LastAck || c.st === St.CloseWait) return this.drop(c, false)
        c.st = St.FinWait
      }
      if (c.sndUna === c.sndNxt) this.disarm(c)
      else this.arm(c)
    }
  }

  /** Drops `n` acknowledged bytes from the front of the send queue. */
  private consume(c: Conn, n: number): void {
    while (n > 0 && c.out.length) {
      const head = c.out[0]
      if (head.length <= n) {
        n -= head.length
        c.outBytes -= head.length
        c.out.shift()
      } else {
        c.out[0] = head.subarray(n)
        c.outBytes -= n
        n = 0
      }
    }
  }

  /** Sends what the peer's window allows beyond sndNxt; `ackNow` forces a pure ACK when nothing else goes. */
  private flush(c: Conn, ackNow: boolean): void {
    if (c.st === St.SynRcvd) return
    let sentSomething = false
    const inFlight = (c.sndNxt - c.sndUna) >>> 0
    let offset = inFlight - (c.finSent ? 1 : 0)
    let room = Math.max(0, c.peerWindow - inFlight)
    const mss = this.mss()
    while (offset < c.outBytes && room > 0) {
      const n = Math.min(mss, room, c.outBytes - offset)
      const chunk = this.gather(c, offset, n)
      this.emit(c, c.sndNxt, TcpFlag.ACK | TcpFlag.PSH, chunk, 0, n)
      c.sndNxt = add(c.sndNxt, n)
      offset += n
      room -= n
      sentSomething = true
    }
    if (c.finQueued && !c.finSent && offset >= c.outBytes) {
      this.emit(c, c.sndNxt, TcpFlag.FIN | TcpFlag.ACK, undefined, 0, 0)
      c.sndNxt = add(c.sndNxt, 1)
      c.finSent = true
      if (c.st === St.CloseWait) c.st = St.LastAck
      sentSomething = true
    }
    if (!sentSomething && ackNow) this.emit(c, c.sndNxt, TcpFlag.ACK, undefined, 0, 0)
    if (c.sndUna !== c.sndNxt) this.arm(c)
  }

  /** n bytes of the send queue starting `offset` bytes after sndUna. */
  private gather(c: Conn, offset: number, n: number): Uint8Array {
    const out = new Uint8Array(n)
    let filled = 0
    for (const b of c.out) {
      if (offset >= b.length) {
        offset -= b.length
        continue
      }
      const take = Math.min(b.length - offset, n - filled)
      out.set(b.subarray(offset, offset + take), filled)
      filled += take
      offset = 0
      if (filled === n) break
    }
    return out
  }

  private arm(c: Conn): void {
    if (c.timer) return
    c.timer = setTimeout(() => {
      c.timer = undefined
      this.retransmit(c)
    }, this.opts.retransmitMs * 2 ** Math.min(c.retries, 5))
    c.timer.unref()
  }

  private disarm(c: Conn): void {
    if (c.timer) clearTimeout(c.timer)
    c.timer = undefined
  }

  private retransmit(c: Conn): void {
    if (!this.conns.has(c.key)) return
    if (++c.retries > this.opts.maxRetransmits) {
      this.emit(c, c.sndNxt, TcpFlag.RST | TcpFlag.ACK, undefined, 0, 0)
      this.counters.resets++
      return this.drop(c, false)
    }
    this.counters.retransmits++
    if (c.st === St.SynRcvd) {
      this.emit(c, c.iss, TcpFlag.SYN | TcpFlag.ACK, undefined, 0, 0, this.mss())
    } else {
      // Go back to the first unacknowledged byte (go-back-N: simple and enough on a local link).
      c.sndNxt = c.sndUna
      c.finSent = false
      if (c.st === St.LastAck) c.st = St.CloseWait
      this.flush(c, false)
    }
    this.arm(c)
  }

  private emit(c: Conn, seq: number, flags: number, data: Uint8Array | undefined, off: number, len: number, mss = 0): void {
    const n = writeTcpFrame(this.scratch, c.hdr, c.addr, seq, c.rcvNxt, flags, WINDOW, data, off, len, mss ? { mss } : {})
    this.opts.send(c.port, this.scratch, n)
  }

  private sendReset(port: number, hdr: number, a: FlowAddress, seq: number, ack: number, withAck: boolean): void {
    this.counters.resets++
    const n = writeTcpFrame(this.scratch, hdr, a, seq, ack, TcpFlag.RST | (withAck ? TcpFlag.ACK : 0), 0, undefined, 0, 0)
    this.opts.send(port, this.scratch, n)
  }

  private drop(c: Conn, counted = true): void {
    if (counted) this.counters.resets++
    this.disarm(c)
    this.conns.delete(c.key)
  }

  private sweep(): void {
    const now = Date.now()
    for (const c of [...this.conns.values()]) {
      if (now - c.lastActive > this.opts.idleMs) {
        this.emit(c, c.sndNxt, TcpFlag.RST | TcpFlag.ACK, undefined, 0, 0)
        this.drop(c)
      }
    }
  }
}
