/**
 * The bytes a TCP flow has from the host and the sandbox has not acknowledged yet: a ring
 * whose front is the flow's first unacknowledged byte, so a retransmission reads from it
 * again. The host socket is read straight into it (native SockPoller, which shares `state`)
 * or chunks of a stream are copied in; segments to the sandbox are views of it.
 *
 * It starts small (most flows carry little) and doubles when full, up to what the flow
 * allows; growing is the only copy of data already in it.
 *
 *   const q = new SendRing(4 << 10)
 *   q.push(chunk) or q.push(buf, off, len); const at = q.offset(0); const n = q.contiguous(0)   // q.buf[at, at + n)
 *   q.consume(acked)
 */
import { native } from '../native/binding.js'

/** The memory of every empty ring (size 0): a flow that never queues anything allocates none. */
const NONE = new Uint8Array(0)
const MIN_SIZE = 4096

export class SendRing {
  buf: Uint8Array
  /** [start, count]: where the data begins in buf and how many bytes there are (shared with the native reader). */
  readonly state = new Int32Array(2)

  constructor(initial: number) {
    this.buf = initial > 0 ? new Uint8Array(initial) : NONE
  }

  get length(): number {
    return this.state[1]
  }

  get capacity(): number {
    return this.buf.length
  }

  /** Where byte `qOff` (counted from the front) is in buf. */
  offset(qOff: number): number {
    const p = this.state[0] + qOff
    return p >= this.buf.length ? p - this.buf.length : p
  }

  /** How many bytes from `qOff` on lie in one piece in buf. */
  contiguous(qOff: number): number {
    const p = this.offset(qOff)
    return Math.min(this.state[1] - qOff, this.buf.length - p)
  }

  /** Appends a copy of src[off, off + len), growing the ring as far as it needs. */
  push(src: Uint8Array, off = 0, len = src.length - off): void {
    while (this.buf.length - this.state[1] < len) this.grow(Math.max(MIN_SIZE, this.buf.length * 2))
    const tail = this.offset(this.state[1])
    const first = Math.min(len, this.buf.length - tail)
    // Copied natively: set(src.subarray(...)) would make a view object per push (per segment
    // while a host socket is full).
    native.copyBytes(this.buf, tail, src, off, first)
    if (first < len) native.copyBytes(this.buf, 0, src, off + first, len - first)
    this.state[1] += len
  }

  /** Drops `n` bytes from the front (acknowledged). */
  consume(n: number): void {
    const count = this.state[1] - n
    this.state[1] = count
    // An empty ring starts over at 0: the next read lands in one piece.
    this.state[0] = count === 0 ? 0 : this.offset(n)
  }

  /** Moves the data into a new buffer of `size` bytes (at least the data's length), starting at 0. */
  grow(size: number): void {
    const next = new Uint8Array(size)
    const count = this.state[1]
    const first = Math.min(count, this.buf.length - this.state[0])
    next.set(this.buf.subarray(this.state[0], this.state[0] + first), 0)
    if (first < count) next.set(this.buf.subarray(0, count - first), first)
    this.buf = next
    this.state[0] = 0
  }

  /** Lets go of the memory (the flow is closed). */
  clear(): void {
    this.buf = NONE
    this.state[0] = this.state[1] = 0
  }
}
