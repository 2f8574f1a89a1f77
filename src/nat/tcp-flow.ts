/**
 * One TCP connection carried between a sandbox and a host socket. Towards the sandbox the
 * switch is the far end of the connection (it writes the frames, so it can be any address);
 * towards the world it is an ordinary `net.Socket` of the daemon, so the far side sees the
 * host. Egress flows start with the sandbox's SYN (passive open here); published-port flows
 * with a client connecting to the host (active open towards the sandbox).
 *
 * What it does: handshake with MSS and window scaling; in-order data with cumulative ACKs
 * (ACKs coalesced per batch); the advertised window follows the host socket's buffer, and
 * the host socket is paused while the sandbox has not taken what we sent (memory stays
 * bounded both ways); retransmission from the first unacknowledged byte; large frames with
 * TSO towards sandboxes whose TAP has offloads; FIN and RST both ways.
 *
 * The data path skips Node's stream machinery for host sockets (net.Socket): a sandbox's
 * segment is sent to the socket straight from the batch slab, and only what the socket does
 * not take is copied, into a ring of the flow's that the advertised window counts and that is
 * written out when the addon says the socket can take more; the socket is read by the addon
 * into another ring, and frames to the sandbox carry their payload from there (two iovecs, no
 * copy into the scratch frame). A service stream (DNS over TCP) goes through Node's stream
 * calls, its data copied into the ring.
 */
import { createHmac, randomBytes } from 'node:crypto'
import net from 'node:net'
import os from 'node:os'
import type { Duplex } from 'node:stream'
import { TcpFlag } from '../packet/tcp.js'
import { writeTcpFrame, type FlowAddress, type SendFrame } from '../gateway/frames.js'
import type { ConnTrack, TrackedFlow } from './conntrack.js'
import { batchClock, native, SOCK_WRITABLE, type SockPoller } from '../native/binding.js'
import type { AckQueue } from './ack-queue.js'
import { SendRing } from './send-ring.js'

/** Writes one frame made of headers (head[0, headLen)) and a payload elsewhere; false when it failed. */
export type SendFrameParts = (port: number, head: Uint8Array, headLen: number, data: Uint8Array, offset: number, length: number) => boolean

/** What a flow needs from the NAT engine. */
export interface TcpFlowEnv {
  send: SendFrame
  /** Frames to the sandbox without copying their payload (absent: copied into scratch). */
  sendParts?: SendFrameParts
  /** Frame scratch: 64 KiB of segment plus headers. */
  scratch: Uint8Array
  ct: ConnTrack
  /** Flows with an ACK owed, sent at the end of the batch. */
  ackQueue: AckQueue<TcpFlow>
  counters: { retransmits: number; resets: number }
}

/** Where the sandbox is: the switch port, its virtio-net header size, and the network's MTU. */
export interface SandboxSide {
  port: number
  hdr: number
  mtu: number
  /** Addressing of frames to the sandbox: src is the remote end as the sandbox sees it. */
  addr: FlowAddress
}

const enum St {
  Connecting, // egress: SYN seen, host socket connecting
  SynSent, // published: our SYN sent to the sandbox
  SynRcvd, // egress: our SYN-ACK sent
  Established,
  Closed,
}
const STATE_NAMES = ['connecting', 'syn_sent', 'syn_rcvd', 'established', 'closed']

/** Our receive window: bytes we accept ahead of the host socket taking them. */
const RCV_BUF = 4 << 20
const WSCALE = 7
/** Bytes read from the host socket but not yet acknowledged by the sandbox, before pausing it. */
const SND_BUF = 4 << 20
const MAX_SEG = 65535 - 20 - 60 - 14
const RTO_MS = 200
const MAX_RETRIES = 8
/** A new flow's ring; it doubles while the host sends faster than the sandbox acknowledges. */
const RING_START = 4 << 10

const EAGAIN = -os.constants.errno.EAGAIN

/** Node's socket handle: its descriptor, for the addon's reads and writes. */
type HandleSocket = { _handle?: { fd?: number } | null }

// Sequence numbers are kept as signed 32-bit integers: V8 holds those as small integers, where
// an unsigned value above 2^31 is a double, boxed on the heap each time it is passed to a
// function. Only differences and order count (`before`), both the same in either form.
const add = (a: number, n: number) => (a + n) | 0

const ISN_SECRET = randomBytes(16)

/**
 * Initial sequence numbers as RFC 6528 makes them: a 4 µs clock plus a keyed hash of the
 * connection's addresses. For the same addresses they keep rising, so a new connection
 * starts above the old one's sequence space, which the sandbox's kernel accepts even while
 * the old one is in TIME-WAIT; other connections' numbers cannot be guessed from one's own.
 */
function initialSequence(key: string): number {
  // CLOCK_MONOTONIC counts since boot, so it keeps rising across daemon restarts too.
  const clock = Number((process.hrtime.bigint() / 4000n) & 0xffffffffn)
  return (clock + createHmac('sha256', ISN_SECRET).update(key).digest().readUInt32BE(0)) | 0
}
const before = (a: number, b: number) => ((a - b) | 0) < 0

export class TcpFlow implements TrackedFlow {
  readonly proto = 'tcp'
  state = 'connecting'
  lastActive = Date.now()
  /** In the env's ackQueue: an ACK goes out at the end of the batch. */
  ackOwed = false
  bytesIn = 0
  bytesOut = 0
  private st: St
  private iss: number
  private sndUna = 0
  private sndNxt = 0
  /** Highest sequence sent: ACKs up to here count, also after a go-back retransmission. */
  private sndMax = 0
  /** Our FIN was sent, with sequence number finSeq. */
  private finSent = false
  private finSeq = 0
  private rcvNxt = 0
  private peerWnd = 0
  private peerShift = 0
  private useScale = false
  private mss: number
  /** Host bytes not yet acknowledged by the sandbox; its front is sndUna. */
  private readonly q = new SendRing(RING_START)
  /** Sandbox bytes the host socket has not taken yet (its own buffer was full). */
  private readonly out = new SendRing(0)
  /** Reads the host socket into q, says when it takes writes (net.Socket hosts, once established). */
  private poller?: SockPoller
  /** net.Socket host: its data goes through the addon; else through Node's stream calls. */
  private nativeIo: boolean
  private readonly frameOpts = { gsoSize: 0 }
  private hostEnded = false
  private finAcked = false
  private sandboxFin = false
  private timer?: NodeJS.Timeout
  /** The running retransmission timer's duration (rto() when it was set). */
  private timerMs = 0
  private retries = 0
  /** The host is not read (a full send ring) until acks make room: Node stream paused, or the poller stopped. */
  private paused = false

  constructor(
    private readonly env: TcpFlowEnv,
    readonly key: string,
    readonly network: string,
    readonly sandboxIp: number,
    readonly sandboxPort: number,
    readonly remoteIp: number,
    readonly remotePort: number,
    readonly direction: 'egress' | 'published',
    private readonly side: SandboxSide,
    /**
     * The other end: a host socket (net.Socket, allowHalfOpen) or an in-process service
     * stream; either emits 'connect' once it can take data.
     */
    private readonly sock: Duplex,
  ) {
    this.mss = side.mtu - 40
    this.iss = initialSequence(key)
    this.st = direction === 'egress' ? St.Connecting : St.SynSent
    this.state = STATE_NAMES[this.st]
    this.nativeIo = sock instanceof net.Socket
    // Paused before it connects, Node never starts reading it: the addon will (established()).
    if (this.nativeIo) sock.pause()
    else sock.on('data', (d: Buffer) => this.fromHost(d))
    sock.on('end', () => {
      this.hostEnded = true
      this.flush()
    })
    sock.on('drain', () => this.windowUpdate())
    sock.on('error', () => undefined) // 'close' follows, with hadError
    sock.on('close', (hadError?: boolean) => {
      // A clean end leaves queued data and our FIN to be delivered; anything else is a reset.
      if (this.st !== St.Closed && (hadError || !this.hostEnded)) this.reset('host socket closed')
    })
  }

  /**
   * Whether this open flow carries the sandbox's segments from src:sport to dst:dport on
   * `network`; the addresses as signed 32-bit numbers (small integers to V8, never boxed).
   */
  carries(network: string, src: number, sport: number, dst: number, dport: number): boolean {
    return this.st !== St.Closed && this.sandboxPort === sport && this.remotePort === dport && (this.sandboxIp | 0) === src && (this.remoteIp | 0) === dst && this.network === network
  }

  timeoutMs(): number {
    if (this.st === St.Established && !this.finSent && !this.sandboxFin) return 2 * 3600_000
    return this.st === St.Established ? 60_000 : 30_000
  }

  // ---- opening -------------------------------------------------------------------------

  /** Egress: the sandbox's SYN arrived; the host socket is connecting. */
  acceptSyn(seq: number, window: number, mss: number, wscale: number): void {
    this.rcvNxt = add(seq, 1)
    this.peerWnd = window
    if (mss > 0) this.mss = Math.min(this.mss, mss)
    if (wscale >= 0) {
      this.useScale = true
      this.peerShift = Math.min(wscale, 14)
    }
    this.sock.once('connect', () => {
      if (this.st !== St.Connecting) return
      this.st = St.SynRcvd
      this.state = STATE_NAMES[this.st]
      this.sndUna = this.iss
      this.sndNxt = this.sndMax = add(this.iss, 1)
      this.emitSyn(TcpFlag.SYN | TcpFlag.ACK)
      this.arm()
    })
  }

  /** Published: a client connected to the host port; open towards the sandbox. */
  connect(): void {
    this.sock.pause()
    this.sndUna = this.iss
    this.sndNxt = this.sndMax = add(this.iss, 1)
    this.emitSyn(TcpFlag.SYN)
    this.arm()
  }

  // ---- frames from the sandbox ---------------------------------------------------------

  segment(flags: number, seq: number, ack: number, window: number, opts: { mss: number; wscale: number }, data: Uint8Array, dOff: number, dLen: number): void {
    seq |= 0
    ack |= 0
    // The pollers stamp the clock before every batch: Date.now() would box a number per segment.
    this.lastActive = batchClock[0]
    if (flags & TcpFlag.RST) {
      if (this.st === St.SynSent || this.inWindow(seq)) this.teardown('reset by sandbox', false)
      return
    }
    if (this.st === St.Connecting) return // a retransmitted SYN while the host connects
    if (flags & TcpFlag.SYN) {
      if (this.st === St.SynSent && flags & TcpFlag.ACK && ack === this.sndNxt) {
        this.rcvNxt = add(seq, 1)
        if (opts.mss > 0) this.mss = Math.min(this.mss, opts.mss)
        if (opts.wscale >= 0) {
          this.useScale = true
          this.peerShift = Math.min(opts.wscale, 14)
        }
        this.peerWnd = window // never scaled in a SYN
        this.sndUna = ack
        this.established()
        this.ackNow()
      } else if (this.st === St.SynRcvd) {
        this.emitSyn(TcpFlag.SYN | TcpFlag.ACK) // our SYN-ACK was lost
      }
      return
    }
    if (!(flags & TcpFlag.ACK)) return
    if (this.st === St.SynSent) {
      // An ACK that is not for our SYN (an old connection of the same addresses in the
      // sandbox's TIME-WAIT): reset it, as RFC 793 says, and our SYN gets through on retry.
      const n = writeTcpFrame(this.env.scratch, this.side.hdr, this.side.addr, ack, 0, TcpFlag.RST, 0, undefined, 0, 0)
      this.env.send(this.side.port, this.env.scratch, n)
      return
    }
    this.peerWnd = this.useScale ? window << this.peerShift : window
    if (this.st === St.SynRcvd) {
      if (ack !== this.sndNxt) return
      this.sndUna = ack
      this.established()
    } else {
      this.onAck(ack)
    }
    if (this.st === St.Closed) return
    if (dLen > 0 || flags & TcpFlag.FIN) {
      // Out of order, a duplicate, or past the window we advertised: say what we expect.
      if (seq !== this.rcvNxt || this.out.length > RCV_BUF) {
        this.ackNow()
        return
      }
      if (dLen > 0 && !this.sandboxFin) {
        this.rcvNxt = add(this.rcvNxt, dLen)
        this.bytesOut += dLen
        this.toHost(data, dOff, dLen)
        if ((this.st as St) === St.Closed) return // the host socket failed
      }
      if (flags & TcpFlag.FIN && !this.sandboxFin) {
        this.sandboxFin = true
        this.rcvNxt = add(this.rcvNxt, 1)
        if (this.out.length === 0) this.sock.end() // else once the rest is written (drainOut)
      }
      this.env.ackQueue.add(this)
    }
    this.flush()
    this.maybeDone()
  }

  /** Sends the ACK owed (called once per batch). */
  sendAck(): void {
    if (this.st === St.Established) this.emit(this.sndNxt, TcpFlag.ACK, 0, 0)
  }

  close(reason: string): void {
    this.reset(reason)
  }

  // ---- data to and from the host -------------------------------------------------------

  /**
   * Sandbox bytes to the host: sent straight from the batch slab while nothing waits before
   * them; what the socket does not take is copied into `out`, which the advertised window
   * counts (so it stays bounded) and drainOut() writes when the socket can take more. Written
   * out by hand for the no-allocation rule. A service stream gets Node's write (a copy).
   */
  private toHost(data: Uint8Array, off: number, len: number): void {
    const poller = this.poller
    if (!poller) return void this.sock.write(Buffer.from(data.subarray(off, off + len)))
    let sent = 0
    if (this.out.length === 0) {
      sent = poller.write(data, off, len)
      if (sent === len) return
      if (sent === EAGAIN) sent = 0
      else if (sent < 0) return this.reset('host socket failed')
      poller.watchWritable(true)
    }
    this.out.push(data, off + sent, len - sent)
  }

  /** The host socket takes writes again: what waits in `out` goes first, then our FIN. */
  private drainOut(): void {
    const out = this.out
    while (out.length > 0) {
      const n = out.contiguous(0)
      const w = this.poller!.write(out.buf, out.offset(0), n)
      if (w === EAGAIN) return
      if (w < 0) return this.reset('host socket failed')
      out.consume(w)
      if (w < n) return
    }
    this.poller!.watchWritable(false)
    if (this.sandboxFin) {
      this.sock.end()
      this.maybeDone()
    } else {
      this.windowUpdate()
    }
  }

  /** Starts the host socket's data path (once established): the addon's poller, or Node's 'data' events. */
  private startHostIo(): void {
    const fd = (this.sock as HandleSocket)._handle?.fd
    if (!this.nativeIo || this.poller || fd === undefined || fd < 0) return
    try {
      this.poller = new native.SockPoller(fd, this.q.buf, this.q.state, (n, status) => this.fromPoller(n, status))
      native.loopTurn()
      this.poller.read(true)
    } catch {
      // No descriptor left for the poller's own: Node carries this socket's data as any other.
      this.nativeIo = false
      this.poller = undefined
      this.sock.on('data', (d: Buffer) => this.fromHost(d))
      this.sock.resume()
    }
  }

  /** From the poller: `n` bytes read into q; status 1: the host ended; SOCK_WRITABLE; below 0: the socket failed. */
  private fromPoller(n: number, status: number): void {
    if (this.st === St.Closed) return
    if (status === SOCK_WRITABLE) return this.drainOut()
    this.lastActive = batchClock[0]
    this.bytesIn += n
    if (status < 0) return this.reset('host socket failed')
    if (status === 1) this.hostEnded = true
    else if (this.q.length >= this.q.capacity) {
      if (this.q.capacity < SND_BUF) {
        this.q.grow(this.q.capacity * 2)
        this.poller!.setRing(this.q.buf)
        this.poller!.read(true)
      } else {
        this.paused = true // the poller stopped itself; acks start it again
      }
    }
    this.flush()
  }

  private fromHost(d: Buffer): void {
    this.lastActive = Date.now()
    this.bytesIn += d.length
    this.q.push(d)
    if (this.q.length >= SND_BUF && !this.paused) {
      this.paused = true
      this.sock.pause()
    }
    this.flush()
  }

  /** Data bytes sent and not yet acknowledged (the FIN, if among them, is not data). */
  private dataInFlight(): number {
    const n = (this.sndNxt - this.sndUna) | 0
    return this.finSent && before(this.finSeq, this.sndNxt) && !before(this.finSeq, this.sndUna) ? n - 1 : n
  }

  /** Sends what the sandbox's window allows, then our FIN once the host is done. */
  private flush(): void {
    if (this.st !== St.Established) return
    const idle = this.sndUna === this.sndNxt
    const seg = this.side.hdr >= 10 ? MAX_SEG : this.mss
    let inFlight = this.dataInFlight()
    const finPending = this.finSent && !before(this.finSeq, this.sndNxt) // FIN sent once, not (re)sent since rewind
    const queued = this.q.length
    while (inFlight < queued) {
      const room = this.peerWnd - inFlight
      if (room <= 0) break
      // A segment is one piece of the ring: it ends where the ring wraps.
      const n = Math.min(seg, room, this.q.contiguous(inFlight))
      this.emit(this.sndNxt, TcpFlag.ACK | TcpFlag.PSH, inFlight, n)
      this.sndNxt = add(this.sndNxt, n)
      inFlight += n
    }
    if (this.hostEnded && inFlight >= queued && !this.finAcked && (!this.finSent || finPending)) {
      this.finSent = true
      this.finSeq = this.sndNxt
      this.emit(this.sndNxt, TcpFlag.FIN | TcpFlag.ACK, 0, 0)
      this.sndNxt = add(this.sndNxt, 1)
    }
    if (before(this.sndMax, this.sndNxt)) this.sndMax = this.sndNxt
    // From idle the retransmission clock starts now (a timer left from before may be running).
    if (this.sndUna !== this.sndNxt) {
      if (idle) this.rearm()
      else this.arm()
    }
  }

  private onAck(ack: number): void {
    if (!before(this.sndUna, ack) || before(this.sndMax, ack)) return
    let n = (ack - this.sndUna) | 0
    if (this.finSent && before(this.finSeq, ack) && !before(this.finSeq, this.sndUna)) {
      this.finAcked = true
      n--
    }
    this.sndUna = ack
    if (before(this.sndNxt, ack)) this.sndNxt = ack
    this.retries = 0
    this.q.consume(n)
    // All acknowledged: the timer is left to lapse (retransmit() finds nothing outstanding),
    // so the next data reuses it instead of making a new one.
    if (this.sndUna !== this.sndNxt) this.rearm()
    if (this.paused && this.q.length < SND_BUF / 2) {
      this.paused = false
      if (this.poller) this.poller.read(true)
      else this.sock.resume()
    }
  }

  // ---- frames to the sandbox -----------------------------------------------------------

  private window(): number {
    const free = Math.max(0, RCV_BUF - this.out.length - this.sock.writableLength)
    return this.useScale ? Math.min(0xffff, free >>> WSCALE) : Math.min(0xffff, free)
  }

  private emitSyn(flags: number): void {
    const opts = { mss: this.side.mtu - 40, ...(this.st === St.SynSent || this.useScale ? { wscale: WSCALE } : {}) }
    const n = writeTcpFrame(this.env.scratch, this.side.hdr, this.side.addr, this.iss, flags & TcpFlag.ACK ? this.rcvNxt : 0, flags, Math.min(0xffff, RCV_BUF), undefined, 0, 0, opts)
    this.env.send(this.side.port, this.env.scratch, n)
  }

  /** Emits a segment with ring bytes [qOff, qOff + len) (offsets from sndUna, one piece of the ring). */
  private emit(seq: number, flags: number, qOff: number, len: number): void {
    const buf = this.env.scratch
    const side = this.side
    const at = len > 0 ? this.q.offset(qOff) : 0
    this.frameOpts.gsoSize = this.mss
    // With a virtio-net header the kernel completes the checksum: the headers alone are
    // written here and the payload goes from the ring as the frame's second piece.
    if (len > 0 && side.hdr >= 10 && this.env.sendParts) {
      const n = writeTcpFrame(buf, side.hdr, side.addr, seq, this.rcvNxt, flags, this.window(), undefined, 0, len, this.frameOpts)
      this.env.sendParts(side.port, buf, n - len, this.q.buf, at, len)
    } else {
      const n = writeTcpFrame(buf, side.hdr, side.addr, seq, this.rcvNxt, flags, this.window(), this.q.buf, at, len, this.frameOpts)
      this.env.send(side.port, buf, n)
    }
    this.env.ackQueue.delete(this)
  }

  private ackNow(): void {
    this.emit(this.sndNxt, TcpFlag.ACK, 0, 0)
  }

  private windowUpdate(): void {
    if (this.st === St.Established) this.ackNow()
  }

  private established(): void {
    this.st = St.Established
    this.state = STATE_NAMES[this.st]
    this.retries = 0
    this.disarm()
    this.startHostIo()
  }

  private inWindow(seq: number): boolean {
    return !before(seq, this.rcvNxt) && before(seq, add(this.rcvNxt, RCV_BUF))
  }

  // ---- timers and teardown -------------------------------------------------------------

  private arm(): void {
    if (this.timer) return
    this.timerMs = this.rto()
    this.timer = setTimeout(this.onTimer, this.timerMs)
    this.timer.unref()
  }

  /** The retransmission timeout: RTO_MS, doubled per retry. */
  private rto(): number {
    return RTO_MS * 2 ** Math.min(this.retries, 6)
  }

  // One callback per flow: an arrow function inside arm() would capture `this` and make every
  // call of arm() allocate a context, also when a timer is running and it returns at once.
  private readonly onTimer = (): void => {
    this.timer = undefined
    this.retransmit()
  }

  /**
   * Starts the retransmission clock over (an ACK moved sndUna). The timer is reused while its
   * duration still fits: a new one per ACK would be objects allocated per segment.
   */
  private rearm(): void {
    if (this.timer && this.timerMs === this.rto()) {
      this.timer.refresh()
      return
    }
    this.disarm()
    this.arm()
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
  }

  private retransmit(): void {
    if (this.st === St.Closed) return
    if (this.st === St.Established && this.sndUna === this.sndNxt) return // acknowledged since: a lapsed timer
    if (++this.retries > MAX_RETRIES) return this.reset('sandbox stopped answering')
    this.env.counters.retransmits++
    if (this.st === St.SynSent) this.emitSyn(TcpFlag.SYN)
    else if (this.st === St.SynRcvd) this.emitSyn(TcpFlag.SYN | TcpFlag.ACK)
    else if (this.st === St.Established) {
      // Go back to the first unacknowledged byte; a zero window gets a one-byte probe.
      this.sndNxt = this.sndUna
      if (this.peerWnd === 0 && this.q.length > 0) this.peerWnd = 1
      this.flush()
    }
    this.arm()
  }

  private maybeDone(): void {
    // Both ends done, and all the sandbox sent handed to the host socket.
    if (this.sandboxFin && this.finAcked && this.out.length === 0) this.teardown('closed', false)
  }

  /** RST to the sandbox and away. */
  private reset(reason: string): void {
    if (this.st === St.Closed) return
    if (this.st !== St.Connecting) this.emit(this.sndNxt, TcpFlag.RST | TcpFlag.ACK, 0, 0)
    else {
      const n = writeTcpFrame(this.env.scratch, this.side.hdr, this.side.addr, 0, this.rcvNxt, TcpFlag.RST | TcpFlag.ACK, 0, undefined, 0, 0)
      this.env.send(this.side.port, this.env.scratch, n)
    }
    this.env.counters.resets++
    this.teardown(reason, true)
  }

  private teardown(_reason: string, destroy: boolean): void {
    if (this.st === St.Closed) return
    this.st = St.Closed
    this.state = STATE_NAMES[this.st]
    this.disarm()
    this.env.ackQueue.delete(this)
    this.env.ct.remove(this.key)
    this.poller?.close()
    this.poller = undefined
    if (destroy || !this.sock.destroyed) this.sock.destroy()
    this.q.clear()
    this.out.clear()
  }
}
