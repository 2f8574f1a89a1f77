// NAT TCP flows on their own: a fake sandbox drives a TcpFlow frame by frame while the host
// side is a real socket (a unix stream socket in a temporary directory: no network). Covers
// the addon's data path: reads into the send ring (which grows), frames whose payload comes
// from the ring, retransmission after a lost frame, and writes to a host socket that stops
// taking data (partial writes and EAGAIN: the rest queued, the window closing, nothing lost).
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { native, type SockPoller } from '../../src/native/binding.js'
import { ConnTrack } from '../../src/nat/conntrack.js'
import { SendRing } from '../../src/nat/send-ring.js'
import { AckQueue } from '../../src/nat/ack-queue.js'
import { TcpFlow, type SandboxSide, type TcpFlowEnv } from '../../src/nat/tcp-flow.js'
import { TcpFlag, tcpAck, tcpFlags, tcpHeaderLength, tcpSeq, tcpWindow } from '../../src/packet/tcp.js'

const HDR = native.VNET_HDR_SIZE
const TCP = HDR + 14 + 20
const WSCALE = 7
const NO_OPTS = { mss: 0, wscale: -1 }
const EMPTY = new Uint8Array(0)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const sha = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex')

t.test('SendRing: wraps, grows, and hands out contiguous pieces', async (t) => {
  const q = new SendRing(8)
  q.push(Uint8Array.of(1, 2, 3, 4, 5, 6))
  q.consume(4)
  t.same([q.length, q.offset(0), q.contiguous(0)], [2, 4, 2])
  q.push(Uint8Array.of(7, 8, 9, 10, 11)) // wraps: 5 6 7 8 | 9 10 11
  t.same([q.length, q.capacity, q.contiguous(0), q.offset(4)], [7, 8, 4, 0])
  q.push(Uint8Array.of(12, 13)) // full past 8: grows, data moved to the front
  t.same([q.length, q.capacity, q.offset(0), q.contiguous(0)], [9, 4096, 0, 9])
  t.same([...q.buf.subarray(0, 9)], [5, 6, 7, 8, 9, 10, 11, 12, 13])
  q.consume(9)
  t.same([q.length, q.offset(0)], [0, 0], 'an empty ring starts over at 0')
})

t.test('SendRing: push takes a piece of a larger buffer, also across the wrap', async (t) => {
  const q = new SendRing(8)
  const src = Uint8Array.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
  q.push(src, 2, 5) // 2 3 4 5 6
  q.consume(3)
  q.push(src, 6, 4) // 5 6 6 7 8 from offset 3, then 9 wraps to 0
  t.same([q.length, q.capacity, q.contiguous(0)], [6, 8, 5])
  const out = [0, 1, 2, 3, 4, 5].map((i) => q.buf[q.offset(i)])
  t.same(out, [5, 6, 6, 7, 8, 9])
})

t.test('copyBytes refuses ranges past either array instead of reading or writing outside them', async (t) => {
  const a = new Uint8Array(8)
  const b = Uint8Array.of(1, 2, 3, 4)
  native.copyBytes(a, 6, b, 2, 2)
  t.same([...a], [0, 0, 0, 0, 0, 0, 3, 4])
  for (const [doff, soff, n] of [
    [7, 0, 2], // past the end of dst
    [0, 3, 2], // past the end of src
    [9, 0, 0], // dst offset beyond dst
    [0, 5, 0], // src offset beyond src
    [0, 0, 2 ** 32 - 1], // a length that wraps size_t arithmetic
  ]) {
    t.throws(() => native.copyBytes(a, doff, b, soff, n), { code: 'ERANGE' }, `dst ${doff}, src ${soff}, ${n} bytes`)
  }
  t.same([...a], [0, 0, 0, 0, 0, 0, 3, 4], 'nothing written by a refused copy')
})

interface Seg {
  flags: number
  seq: number
  ack: number
  window: number
  payload: Uint8Array
  parts: boolean
}

/** The sandbox's side: takes the flow's frames, answers through flow.segment(). */
class FakeSandbox {
  readonly frames: Seg[] = []
  readonly ct = new ConnTrack()
  readonly env: TcpFlowEnv
  flow!: TcpFlow
  seq = 1000

  constructor() {
    this.env = {
      send: (_p, buf, len) => this.take(buf, len, undefined, 0, 0),
      sendParts: (_p, head, hlen, data, off, len) => this.take(head, hlen, data, off, len),
      scratch: new Uint8Array(64 + 14 + 65536 + 128),
      ct: this.ct,
      ackQueue: new AckQueue(),
      counters: { retransmits: 0, resets: 0 },
    }
  }

  private take(buf: Uint8Array, hlen: number, data: Uint8Array | undefined, off: number, len: number): boolean {
    const thl = tcpHeaderLength(buf, TCP)
    const payload = data ? data.slice(off, off + len) : buf.slice(TCP + thl, hlen)
    this.frames.push({ flags: tcpFlags(buf, TCP), seq: tcpSeq(buf, TCP), ack: tcpAck(buf, TCP), window: tcpWindow(buf, TCP) << WSCALE, payload, parts: !!data })
    return true
  }

  /** What the switch does after a batch: the ACKs owed. */
  endBatch(): void {
    this.env.ackQueue.drain()
  }

  send(flags: number, ack: number, data = EMPTY, window = 0xffff): void {
    this.flow.segment(flags, this.seq, ack, window, NO_OPTS, data, 0, data.length)
    this.seq = (this.seq + data.length + (flags & TcpFlag.FIN ? 1 : 0)) >>> 0
  }
}

/** A published-port flow over a unix socket pair, established; `client` is the host-side peer. */
async function openFlow(t: Test, sandboxIsn = 1000): Promise<{ sb: FakeSandbox; client: net.Socket; iss: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-tcpflow-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true })
  await new Promise<void>((r) => server.listen(path.join(dir, 's'), r))
  t.teardown(() => server.close())
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r))
  const client = net.connect({ path: path.join(dir, 's'), allowHalfOpen: true })
  t.teardown(() => client.destroy())
  const sock = await accepted
  const sb = new FakeSandbox()
  sb.seq = sandboxIsn
  t.teardown(() => sb.ct.close())
  const side: SandboxSide = { port: 0, hdr: HDR, mtu: 1500, addr: { srcMac: 2, dstMac: 3, srcIp: 0x0a000002, dstIp: 0x0a000003, srcPort: 5555, dstPort: 80 } }
  sb.flow = new TcpFlow(sb.env, 'k', 'n', 0x0a000003, 80, 0x0a000002, 5555, 'published', side, sock)
  sb.ct.add('k', sb.flow)
  sb.flow.connect()
  const syn = sb.frames.shift()!
  t.equal(syn.flags, TcpFlag.SYN)
  sb.flow.segment(TcpFlag.SYN | TcpFlag.ACK, sb.seq, (syn.seq + 1) >>> 0, 0xffff, { mss: 1460, wscale: WSCALE }, EMPTY, 0, 0)
  sb.seq = (sb.seq + 1) >>> 0
  sb.frames.length = 0
  t.equal(sb.flow.state, 'established')
  return { sb, client, iss: syn.seq }
}

t.test('host to sandbox: read into the ring, sent from it, a lost frame sent again', async (t) => {
  const { sb, client, iss } = await openFlow(t)
  const data = crypto.randomBytes(12 << 20)
  client.end(data)
  let expected = (iss + 1) >>> 0
  const got: Buffer[] = []
  let dropped = false
  let parts = 0
  let fin = false
  const deadline = Date.now() + 20_000
  while (!fin && Date.now() < deadline) {
    await sleep(1)
    const frames = sb.frames.splice(0)
    for (const f of frames) {
      if (f.payload.length > 0 && f.seq === expected) {
        // The first large frame past 1 MiB is lost: the flow must send it again from there.
        if (!dropped && f.payload.length > 1448 && expected - iss > 1 << 20) {
          dropped = true
          continue
        }
        got.push(Buffer.from(f.payload))
        expected = (expected + f.payload.length) >>> 0
        if (f.parts) parts++
      }
      if (f.flags & TcpFlag.FIN && f.seq === expected) {
        fin = true
        expected = (expected + 1) >>> 0
      }
    }
    if (frames.length) sb.send(TcpFlag.ACK, expected)
  }
  t.ok(fin, 'the host end arrived as a FIN after all data')
  t.equal(sha(Buffer.concat(got)), sha(data), `${data.length} bytes arrived intact`)
  t.ok(dropped && sb.env.counters.retransmits > 0, `sent again after a loss (${sb.env.counters.retransmits} retransmissions)`)
  t.ok(parts > 0, `frames carried their payload from the ring (${parts})`)
  const ended = new Promise((r) => client.once('end', r))
  client.resume()
  sb.send(TcpFlag.FIN | TcpFlag.ACK, expected)
  await ended
  t.equal(sb.flow.state, 'closed', 'both FINs acknowledged: the flow is gone')
  t.equal(sb.ct.size, 0)
})

t.test('sandbox to host: a socket that stops taking data gets the rest queued, the window closes, nothing is lost', async (t) => {
  const { sb, client, iss } = await openFlow(t)
  const ours = (iss + 1) >>> 0
  const results: number[] = []
  // The addon's methods are read-only: the spy is an own property of this flow's poller.
  const poller = (sb.flow as unknown as { poller: SockPoller }).poller
  const real = poller.write.bind(poller)
  Object.defineProperty(poller, 'write', {
    value: (buf: Uint8Array, off: number, len: number) => {
      const r = real(buf, off, len)
      results.push(r === len ? 0 : r < 0 ? r : 1)
      return r
    },
  })
  client.pause()
  const data = crypto.randomBytes(16 << 20)
  let pos = 0
  let window = 4 << 20 // what the flow advertised with its last ACK
  let minWindow = window
  let maxQueued = 0
  const queued = () => (sb.flow as unknown as { out: SendRing }).out.length
  const pushSome = () => {
    // As a sandbox does: never past the window the flow advertised.
    let room = window
    while (pos < data.length && room >= 1) {
      const n = Math.min(65000, data.length - pos, room)
      sb.send(TcpFlag.ACK | TcpFlag.PSH, ours, data.subarray(pos, pos + n))
      pos += n
      room -= n
      maxQueued = Math.max(maxQueued, queued())
    }
    sb.endBatch()
    for (const f of sb.frames.splice(0)) window = f.window
    minWindow = Math.min(minWindow, window)
  }
  for (let i = 0; i < 200 && window > 0; i++) {
    pushSome()
    await sleep(1)
  }
  t.ok(results.some((r) => r === 1 || r === -os.constants.errno.EAGAIN), 'the socket took part of a segment, or none (EAGAIN)')
  t.ok(results[0] === 0, 'while it kept up, segments went straight from the slab')
  t.ok(minWindow < 64 << 10, `the advertised window closed (${minWindow})`)
  t.ok(maxQueued <= (4 << 20) + 65536, `the queue stayed within the window (${maxQueued} bytes)`)
  t.ok(pos < data.length, 'the sandbox was held back')
  const chunks: Buffer[] = []
  const ended = new Promise((r) => client.once('end', r))
  client.on('data', (c: Buffer) => chunks.push(c))
  client.resume()
  const deadline = Date.now() + 20_000
  while (pos < data.length && Date.now() < deadline) {
    await sleep(2)
    for (const f of sb.frames.splice(0)) window = f.window // window updates as the queue drains
    pushSome()
  }
  t.equal(pos, data.length, 'the window opened again')
  sb.send(TcpFlag.FIN | TcpFlag.ACK, ours)
  await ended
  t.equal(sha(Buffer.concat(chunks)), sha(data), `${data.length} bytes arrived intact, in order`)
})

t.test('sandbox to host: sequence numbers above 2^31 and across the wrap at 2^32', async (t) => {
  const { sb, client, iss } = await openFlow(t, 0xfffe8000)
  const data = crypto.randomBytes(1 << 20)
  const chunks: Buffer[] = []
  const ended = new Promise((r) => client.once('end', r))
  client.on('data', (c: Buffer) => chunks.push(c))
  let lastAck = -1
  for (let pos = 0; pos < data.length; pos += 65000) {
    sb.send(TcpFlag.ACK | TcpFlag.PSH, (iss + 1) >>> 0, data.subarray(pos, Math.min(pos + 65000, data.length)))
    sb.endBatch()
    for (const f of sb.frames.splice(0)) lastAck = f.ack
    await sleep(1)
  }
  t.equal(lastAck, (0xfffe8000 + 1 + data.length) % 2 ** 32, 'the flow acknowledged every byte, past the wrap')
  sb.send(TcpFlag.FIN | TcpFlag.ACK, (iss + 1) >>> 0)
  await ended
  t.equal(sha(Buffer.concat(chunks)), sha(data), 'the host got every byte in order')
})

t.test('sandbox to host: a FIN behind queued data reaches the host after the data', async (t) => {
  const { sb, client, iss } = await openFlow(t)
  client.pause()
  const data = crypto.randomBytes(2 << 20)
  for (let pos = 0; pos < data.length; pos += 65000) sb.send(TcpFlag.ACK | TcpFlag.PSH, (iss + 1) >>> 0, data.subarray(pos, Math.min(pos + 65000, data.length)))
  sb.send(TcpFlag.FIN | TcpFlag.ACK, (iss + 1) >>> 0)
  const queued = (sb.flow as unknown as { out: SendRing }).out.length
  t.ok(queued > 0, `${queued} bytes wait for the socket`)
  const chunks: Buffer[] = []
  const ended = new Promise((r) => client.once('end', r))
  client.on('data', (c: Buffer) => chunks.push(c))
  client.resume()
  await ended
  t.equal(sha(Buffer.concat(chunks)), sha(data), 'all data, then the end')
  client.end()
  await sleep(50)
  sb.endBatch()
  const fin = sb.frames.find((f) => f.flags & TcpFlag.FIN)
  t.ok(fin, 'the host end went to the sandbox as a FIN')
  sb.send(TcpFlag.ACK, (fin!.seq + 1) >>> 0)
  t.equal(sb.flow.state, 'closed', 'both FINs acknowledged, nothing left to write: the flow is gone')
})
