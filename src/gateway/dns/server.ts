/**
 * The embedded DNS server's logic, transport-agnostic: the data path hands it a query (a
 * UDP payload, or one TCP message without its 2-byte length) and a callback for the answer.
 * Local names come from `DnsRecords`, scoped to the asking sandbox's network; everything
 * else goes to upstream resolvers through a bounded cache.
 *
 *   const dns = new DnsServer({ records, upstreams: readHostResolvers() })
 *   dns.handle('net1', { internal: false, domain: 'sy.local' }, payload, 'udp', (answer) => sendUdp(answer))
 *   dns.counters.cacheHits
 *   dns.close()
 */
import { setMaxListeners } from 'node:events'
import {
  CLASS,
  FLAG,
  MAX_MESSAGE,
  OPT_RECORD_SIZE,
  RCODE,
  TYPE,
  WireWriter,
  appendOpt,
  asciiLower,
  encodeErrorReply,
  parseQuery,
  removeOpt,
  sameQuestion,
  setId,
  truncate,
  udpLimit,
  writeOpt,
  type ParsedQuery,
} from './codec.js'
import { AnswerCache, cacheKey, forward, type DnsLogger, type Upstream } from './forwarder.js'
import { reverseNameToAddress, type DnsRecords } from './records.js'

/** TTL of local answers, as Docker's embedded DNS uses. */
export const LOCAL_TTL = 600

/** How a network's DNS behaves. */
export interface DnsNetwork {
  /** Internal networks get no egress: their sandboxes' queries are never forwarded. */
  internal: boolean
  /** Upstreams for this network instead of the server's. */
  upstreams?: readonly Upstream[]
  /** A search domain: `NAME.domain` resolves like `NAME`; PTR answers end with it. */
  domain?: string
}

/** What a DnsServer needs; everything but `records` and `upstreams` has a default. */
export interface DnsServerOptions {
  /** The local name table. */
  records: DnsRecords
  /** Default upstream resolvers, tried in order. */
  upstreams: readonly Upstream[]
  /** Most answers kept in the cache (default 4096). */
  cacheEntries?: number
  /** Most queries being forwarded at once; beyond it the answer is REFUSED (default 1024). */
  maxInFlight?: number
  /** Timeout per upstream attempt in milliseconds (default 2000). */
  timeoutMs?: number
  /** Where failures and overload are reported (default: nowhere). */
  log?: DnsLogger
}

/** What the server did with queries, for `stats`. */
export interface DnsCounters {
  queries: number
  answeredLocal: number
  forwarded: number
  cacheHits: number
  formerr: number
  notimp: number
  dropped: number
  servfail: number
  refused: number
}

const QTYPE_XFR_MIN = TYPE.IXFR // IXFR, AXFR, MAILB, MAILA: zone transfers we do not do
const QTYPE_XFR_MAX = TYPE.MAILA
const WARN_INTERVAL_MS = 2000

/** The embedded DNS server; see the module comment. */
export class DnsServer {
  readonly counters: DnsCounters = {
    queries: 0,
    answeredLocal: 0,
    forwarded: 0,
    cacheHits: 0,
    formerr: 0,
    notimp: 0,
    dropped: 0,
    servfail: 0,
    refused: 0,
  }

  private readonly records: DnsRecords
  private readonly upstreams: readonly Upstream[]
  private readonly cache: AnswerCache
  private readonly maxInFlight: number
  private readonly timeoutMs: number
  private readonly log: DnsLogger | undefined
  /** Local answers are built here, synchronously, then copied out. */
  private readonly writer = new WireWriter()
  private readonly stop = new AbortController()
  private inFlight = 0
  private lastWarn = -Infinity
  private closed = false

  constructor(opts: DnsServerOptions) {
    this.records = opts.records
    this.upstreams = opts.upstreams
    this.cache = new AnswerCache(opts.cacheEntries ?? 4096)
    this.maxInFlight = opts.maxInFlight ?? 1024
    this.timeoutMs = opts.timeoutMs ?? 2000
    this.log = opts.log
    // Every forward in flight listens on the stop signal: allow as many as may be in flight.
    setMaxListeners(this.maxInFlight + 16, this.stop.signal)
  }

  /** Queries being forwarded right now. */
  get forwardsInFlight(): number {
    return this.inFlight
  }

  /** Entries in the answer cache. */
  get cacheSize(): number {
    return this.cache.size
  }

  /**
   * Answers one query from a sandbox on `networkId`. `reply` is called at most once,
   * possibly later (forwarded queries); not at all for dropped queries. Never throws.
   */
  handle(networkId: string, network: DnsNetwork, query: Uint8Array, transport: 'udp' | 'tcp', reply: (answer: Uint8Array) => void): void {
    this.counters.queries++
    try {
      this.dispatch(networkId, network, query, transport, reply)
    } catch (e) {
      // A bug must cost one query, not the daemon.
      this.counters.dropped++
      this.log?.warn('dns query handling failed', { networkId, error: e instanceof Error ? e.message : String(e) })
    }
  }

  /** Stops forwarding: in-flight forwards are aborted and get no reply; the cache is emptied. */
  close(): void {
    this.closed = true
    this.stop.abort()
    this.cache.clear()
  }

  private dispatch(networkId: string, network: DnsNetwork, query: Uint8Array, transport: 'udp' | 'tcp', reply: (answer: Uint8Array) => void): void {
    if (this.closed) {
      this.counters.dropped++
      return
    }
    const q = parseQuery(query)
    switch (q.status) {
      case 'drop':
        this.counters.dropped++
        return
      case 'notimp':
        this.counters.notimp++
        return reply(encodeErrorReply(query, q, RCODE.NOTIMP))
      case 'formerr':
        this.counters.formerr++
        return reply(encodeErrorReply(query, q, RCODE.FORMERR))
      case 'badvers':
        this.counters.formerr++
        return reply(encodeErrorReply(query, q, RCODE.BADVERS))
      case 'ok':
        break
    }
    if (q.qtype >= QTYPE_XFR_MIN && q.qtype <= QTYPE_XFR_MAX) {
      this.counters.notimp++
      return reply(encodeErrorReply(query, q, RCODE.NOTIMP))
    }
    const limit = transport === 'tcp' ? MAX_MESSAGE : udpLimit(q)
    const name = asciiLower(q.qname)
    if (q.qclass === CLASS.IN || q.qclass === CLASS.ANY) {
      const local = this.answerLocal(networkId, network, query, q, name, limit)
      if (local) {
        this.counters.answeredLocal++
        return reply(local)
      }
    }
    if (network.internal) {
      // Docker's embedded DNS does not forward for sandboxes without external access and
      // answers SERVFAIL (libnetwork resolver: proxyDNS false). We do the same: local names
      // resolve, nothing leaves the host, and SERVFAIL (not NXDOMAIN) claims nothing about
      // whether the name exists elsewhere.
      this.counters.servfail++
      return reply(encodeErrorReply(query, q, RCODE.SERVFAIL))
    }
    this.forwardQuery(network, query, q, name, transport, limit, reply)
  }

  /** A local answer, or null when the name is not ours (then it is forwarded). */
  private answerLocal(networkId: string, network: DnsNetwork, query: Uint8Array, q: ParsedQuery, name: string, limit: number): Uint8Array | null {
    const domain = network.domain ? asciiLower(network.domain).replace(/^\.+|\.+$/g, '') : ''
    if (q.qtype === TYPE.PTR) {
      const addr = reverseNameToAddress(name)
      if (addr !== null) {
        const host = this.records.nameOfAddress(networkId, addr)
        if (host === undefined) return null
        return this.writeAnswer(query, q, limit, [], domain ? `${host}.${domain}` : host)
      }
    }
    let host = name
    if (!this.records.has(networkId, host)) {
      if (!domain || !host.endsWith(`.${domain}`)) return null
      host = host.slice(0, -domain.length - 1)
      if (!this.records.has(networkId, host)) return null
    }
    const wantV4 = q.qtype === TYPE.A || q.qtype === TYPE.ANY
    const wantV6 = q.qtype === TYPE.AAAA || q.qtype === TYPE.ANY
    // Other types of an existing name: NOERROR with no answers, never NXDOMAIN (musl would
    // take NXDOMAIN for AAAA as "the name does not exist" and fail the A lookup too).
    const addrs = [...(wantV4 ? (this.records.addresses(networkId, host, 4) ?? []) : []), ...(wantV6 ? (this.records.addresses(networkId, host, 6) ?? []) : [])]
    return this.writeAnswer(query, q, limit, addrs, null)
  }

  /**
   * Header, the question as the client wrote it, answers (owner = pointer to the question)
   * while they fit in `limit` (TC otherwise), and OPT if the client sent one.
   */
  private writeAnswer(query: Uint8Array, q: ParsedQuery, limit: number, addrs: readonly Uint8Array[], ptr: string | null): Uint8Array {
    const w = this.writer.reset()
    const reserve = q.ednsSize > 0 ? OPT_RECORD_SIZE : 0
    w.u16(q.id)
    w.u16(FLAG.QR | FLAG.AA | FLAG.RA | (q.flags & (FLAG.RD | FLAG.CD)))
    w.u16(1)
    w.u16(0)
    w.u16(0)
    w.u16(reserve > 0 ? 1 : 0)
    w.bytes(query.subarray(12, q.questionEnd))
    let count = 0
    let tc = false
    for (const a of addrs) {
      if (w.offset + 12 + a.length + reserve > limit) {
        tc = true
        break
      }
      w.u16(0xc00c)
      w.u16(a.length === 4 ? TYPE.A : TYPE.AAAA)
      w.u16(CLASS.IN)
      w.u32(LOCAL_TTL)
      w.u16(a.length)
      w.bytes(a)
      count++
    }
    if (ptr !== null) {
      const mark = w.offset
      w.u16(0xc00c)
      w.u16(TYPE.PTR)
      w.u16(CLASS.IN)
      w.u32(LOCAL_TTL)
      w.u16(0)
      w.name(ptr)
      w.patchU16(mark + 10, w.offset - mark - 12)
      if (w.offset + reserve > limit) {
        w.offset = mark
        tc = true
      } else count++
    }
    w.patchU16(6, count)
    if (tc) w.buf[2] |= FLAG.TC >>> 8
    if (reserve > 0) writeOpt(w)
    return w.finish()
  }

  private forwardQuery(
    network: DnsNetwork,
    query: Uint8Array,
    q: ParsedQuery,
    name: string,
    transport: 'udp' | 'tcp',
    limit: number,
    reply: (answer: Uint8Array) => void,
  ): void {
    const upstreams = network.upstreams ?? this.upstreams
    if (upstreams.length === 0) {
      this.counters.servfail++
      return reply(encodeErrorReply(query, q, RCODE.SERVFAIL))
    }
    // Networks with their own upstreams may see a different DNS: keep their answers apart.
    const scope = network.upstreams ? `${network.upstreams.map((u) => `${u.host}:${u.port}`).join(',')}|` : ''
    const key = scope + cacheKey(name, q.qtype, q.qclass)
    const cached = this.cache.get(key)
    if (cached) {
      this.counters.cacheHits++
      return this.relay(cached, true, query, q, transport, limit, reply)
    }
    if (this.inFlight >= this.maxInFlight) {
      this.counters.refused++
      this.warnSometimes(`more than ${this.maxInFlight} DNS queries being forwarded: refusing`)
      return reply(encodeErrorReply(query, q, RCODE.REFUSED))
    }
    this.inFlight++
    this.counters.forwarded++
    // Forward only what we parsed: trailing garbage stays here.
    forward(upstreams, query.subarray(0, q.messageEnd), transport, { timeoutMs: this.timeoutMs, signal: this.stop.signal, log: this.log }).then(
      (answer) => {
        this.inFlight--
        if (this.closed) return
        try {
          if (!answer) {
            this.counters.servfail++
            return reply(encodeErrorReply(query, q, RCODE.SERVFAIL))
          }
          this.cache.put(key, answer)
          this.relay(answer, false, query, q, transport, limit, reply)
        } catch (e) {
          this.counters.dropped++
          this.log?.warn('dns answer relay failed', { error: e instanceof Error ? e.message : String(e) })
        }
      },
      (e: unknown) => {
        this.inFlight--
        this.counters.dropped++
        this.log?.warn('dns forward failed', { error: e instanceof Error ? e.message : String(e) })
      },
    )
  }

  /** Sends an upstream (or cached) answer as if it answered this client's query. */
  private relay(
    answer: Uint8Array,
    fromCache: boolean,
    query: Uint8Array,
    q: ParsedQuery,
    transport: 'udp' | 'tcp',
    limit: number,
    reply: (answer: Uint8Array) => void,
  ): void {
    let out = answer
    setId(out, q.id)
    out[2] = (out[2] & ~(FLAG.RD >>> 8)) | ((q.flags & FLAG.RD) >>> 8)
    // No OPT for clients that sent none (RFC 6891 7); a cached OPT is another client's
    // (its COOKIE would be rejected), so cached answers get ours instead.
    if (q.ednsSize === 0 || fromCache) out = removeOpt(out)
    if (q.ednsSize > 0 && fromCache) out = appendOpt(out)
    // Echo the client's spelling of the name (a cached answer may carry another client's).
    if (sameQuestion(query, q.questionEnd, out, q.questionEnd)) out.set(query.subarray(12, q.questionEnd), 12)
    if (transport === 'udp') {
      const cut = truncate(out, limit)
      if (!cut) {
        this.counters.servfail++
        return reply(encodeErrorReply(query, q, RCODE.SERVFAIL))
      }
      out = cut
    }
    reply(out)
  }

  private warnSometimes(msg: string): void {
    const now = performance.now()
    if (now - this.lastWarn < WARN_INTERVAL_MS) return
    this.lastWarn = now
    this.log?.warn(msg)
  }
}
