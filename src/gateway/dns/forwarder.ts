/**
 * Forwarding to upstream resolvers, and the cache of their answers.
 *
 * Socket strategy: one fresh socket per attempt (UDP connected to the upstream, or a TCP
 * connection), closed as soon as the attempt ends. A new random source port and a new
 * random ID per attempt make spoofed answers hard to land (RFC 5452) and need no ID map;
 * the number of sockets is bounded by the caller's in-flight limit (one attempt at a time
 * per forwarded query). Answers must match the ID, have QR set and echo our question.
 *
 *   const answer = await forward([{ host: '192.0.2.53', port: 53 }], queryBytes, 'udp', { timeoutMs: 2000 })
 *   // null: every upstream failed (SERVFAIL, REFUSED, timeout, socket error)
 */
import dgram from 'node:dgram'
import net from 'node:net'
import { randomInt } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { FLAG, MessageCursor, RCODE, SECTION, TYPE, asciiLower, decrementTtls, sameQuestion, setId } from './codec.js'

/** An upstream resolver. `loopback` marks host-local ones (reachable by the daemon only). */
export interface Upstream {
  host: string
  port: number
  loopback?: boolean
}

/** Where the DNS code reports; `console` fits. */
export interface DnsLogger {
  debug(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
}

/** How `forward` behaves. */
export interface ForwardOptions {
  /** Per-upstream timeout, for each attempt (UDP, and TCP after a truncated UDP answer). */
  timeoutMs: number
  /** Aborts the forward (closing its socket); the promise then resolves null. */
  signal?: AbortSignal
  /** Gets a debug line per failed upstream attempt. */
  log?: DnsLogger
}

const TC_BYTE = FLAG.TC >>> 8

/**
 * Sends a query to each upstream in turn until one answers with anything but SERVFAIL or
 * REFUSED. Over UDP, a truncated answer is fetched again over TCP from the same upstream;
 * a client that came over TCP is forwarded over TCP. The query is copied, never modified.
 */
export async function forward(
  upstreams: readonly Upstream[],
  query: Uint8Array,
  transport: 'udp' | 'tcp',
  opts: ForwardOptions,
): Promise<Uint8Array | null> {
  const q = query.slice()
  const c = new MessageCursor()
  if (!c.open(q, false)) return null
  const qEnd = c.questionEnd
  for (const up of upstreams) {
    if (opts.signal?.aborted) return null
    setId(q, randomInt(65536))
    let answer = transport === 'tcp' ? await exchangeTcp(up, q, qEnd, opts.timeoutMs, opts.signal) : await exchangeUdp(up, q, qEnd, opts.timeoutMs, opts.signal)
    if (answer && transport === 'udp' && answer[2] & TC_BYTE) {
      setId(q, randomInt(65536))
      // If TCP fails, pass the truncated answer on: the client can still retry over TCP.
      answer = (await exchangeTcp(up, q, qEnd, opts.timeoutMs, opts.signal)) ?? answer
    }
    if (!answer) {
      opts.log?.debug('dns upstream gave no usable answer', { upstream: `${up.host}:${up.port}`, transport })
      continue
    }
    const rcode = answer[3] & 0xf
    if (rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) {
      opts.log?.debug('dns upstream failed, trying the next', { upstream: `${up.host}:${up.port}`, rcode })
      continue
    }
    return answer
  }
  return null
}

/** Accept a reply only if it answers our query, and it walks (we truncate and re-TTL it). */
function verdict(query: Uint8Array, qEnd: number, reply: Uint8Array, c: MessageCursor): 'ok' | 'ignore' | 'bad' {
  if (reply.length < 12 || reply[0] !== query[0] || reply[1] !== query[1] || !(reply[2] & 0x80)) return 'ignore'
  if (!c.open(reply, false)) return 'bad'
  if (c.qdcount === 0) return reply[3] & 0xf ? 'ok' : 'bad' // error replies may omit the question
  if (c.qdcount !== 1 || !sameQuestion(query, qEnd, reply, c.questionEnd)) return 'ignore'
  while (c.next()) {
    // walk to the end to prove every record is in bounds
  }
  return c.error ? 'bad' : 'ok'
}

/** One query over UDP from a fresh connected socket; null on timeout, error or abort. */
export function exchangeUdp(up: Upstream, query: Uint8Array, qEnd: number, timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array | null> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(null)
    const sock = dgram.createSocket(net.isIPv6(up.host.split('%')[0]) ? 'udp6' : 'udp4')
    const c = new MessageCursor()
    let done = false
    const finish = (v: Uint8Array | null): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      try {
        sock.close()
      } catch {
        // already closed
      }
      resolve(v)
    }
    const onAbort = (): void => finish(null)
    const timer = setTimeout(onAbort, timeoutMs)
    signal?.addEventListener('abort', onAbort, { once: true })
    sock.on('error', onAbort)
    sock.on('message', (msg: Buffer) => {
      const v = verdict(query, qEnd, msg, c)
      if (v === 'ok') finish(msg)
      else if (v === 'bad') finish(null)
    })
    sock.connect(up.port, up.host, () => {
      if (done) return
      sock.send(query, (err) => {
        if (err) finish(null)
      })
    })
  })
}

/** One query over a fresh TCP connection (2-byte length framing); null on failure. */
export function exchangeTcp(up: Upstream, query: Uint8Array, qEnd: number, timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array | null> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(null)
    const sock = net.createConnection({ host: up.host, port: up.port })
    const chunks: Buffer[] = []
    let have = 0
    let done = false
    const finish = (v: Uint8Array | null): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      sock.destroy()
      resolve(v)
    }
    const onAbort = (): void => finish(null)
    const timer = setTimeout(onAbort, timeoutMs)
    signal?.addEventListener('abort', onAbort, { once: true })
    sock.setNoDelay(true)
    sock.on('error', onAbort)
    sock.on('close', onAbort)
    sock.on('connect', () => {
      const framed = Buffer.allocUnsafe(2 + query.length)
      framed.writeUInt16BE(query.length, 0)
      framed.set(query, 2)
      sock.write(framed)
    })
    sock.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      have += chunk.length
      if (have < 2) return
      const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, have)
      chunks.length = 0
      chunks.push(all)
      const need = all.readUInt16BE(0)
      if (have < 2 + need) return
      const msg = all.subarray(2, 2 + need)
      finish(verdict(query, qEnd, msg, new MessageCursor()) === 'ok' ? msg : null)
    })
  })
}

// ---------------------------------------------------------------------------------------
// Cache

/** Cache key: lower-case name, type, class (RFC 1034: names compare case-insensitively). */
export function cacheKey(qname: string, qtype: number, qclass: number): string {
  return `${asciiLower(qname)}/${qtype}/${qclass}`
}

/** Longest we keep a positive answer, whatever its TTL says. */
const MAX_TTL = 86400
/** Longest we keep a negative answer (RFC 2308 suggests 1-3 hours at most). */
const MAX_NEGATIVE_TTL = 3600

const ttlCursor = new MessageCursor()

/**
 * How long an upstream answer may be cached, in seconds; 0 for not at all. Positive:
 * the smallest TTL of its records. NXDOMAIN or no data: the SOA's TTL capped by its
 * MINIMUM (RFC 2308), or nothing without an SOA. Truncated or failed answers: never.
 */
export function cacheTtl(msg: Uint8Array): number {
  if (msg.length < 12 || msg[2] & TC_BYTE) return 0
  const rcode = msg[3] & 0xf
  if (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN) return 0
  const c = ttlCursor
  if (!c.open(msg, false)) return 0
  let min = Infinity
  let answers = 0
  let negative = Infinity
  while (c.next()) {
    if (c.type === TYPE.OPT) continue
    if (c.section === SECTION.ANSWER) answers++
    if (c.section === SECTION.AUTHORITY && c.type === TYPE.SOA && c.rdlength >= 22) {
      const at = c.end - 4
      const minimum = ((msg[at] << 24) | (msg[at + 1] << 16) | (msg[at + 2] << 8) | msg[at + 3]) >>> 0
      negative = Math.min(negative, c.ttl, minimum)
    }
    min = Math.min(min, c.ttl)
  }
  if (c.error) return 0
  if (rcode === RCODE.NOERROR && answers > 0) return Math.min(min, MAX_TTL)
  return negative === Infinity ? 0 : Math.min(negative, MAX_NEGATIVE_TTL)
}

interface CachedAnswer {
  msg: Uint8Array
  storedAt: number
}

/**
 * Upstream answers by question, bounded in entries (least recently used go first), each
 * kept for its own TTL. `get` returns a private copy whose TTLs are lowered by the time
 * spent in the cache, so clients never see a record outlive its TTL.
 */
export class AnswerCache {
  private readonly lru: LRUCache<string, CachedAnswer>

  constructor(maxEntries: number) {
    this.lru = new LRUCache<string, CachedAnswer>({ max: Math.max(1, maxEntries) })
  }

  /** Stores an answer if it is cacheable; returns the TTL used (0: not stored). */
  put(key: string, msg: Uint8Array): number {
    const ttl = cacheTtl(msg)
    if (ttl > 0) this.lru.set(key, { msg: msg.slice(), storedAt: performance.now() }, { ttl: ttl * 1000 })
    return ttl
  }

  /** A copy of the cached answer with TTLs aged, or undefined. The ID is the original's. */
  get(key: string): Uint8Array | undefined {
    const e = this.lru.get(key)
    if (!e) return undefined
    const out = e.msg.slice()
    const elapsed = Math.floor((performance.now() - e.storedAt) / 1000)
    if (elapsed > 0) decrementTtls(out, elapsed)
    return out
  }

  get size(): number {
    return this.lru.size
  }

  clear(): void {
    this.lru.clear()
  }
}
