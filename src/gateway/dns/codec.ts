/**
 * DNS wire format (RFC 1035, 3596, 2782, 6891): a bounded codec of our own.
 *
 * Why not `dns-packet`: it builds an object per record and once read past a buffer's end
 * (its CVE). Here every length is checked, names are at most 255 bytes, labels at most 63,
 * and a compression pointer must point strictly backwards (so it cannot loop) and never into
 * the header. Errors are sticky on a reader instead of thrown, so a flood of garbage costs
 * no stack traces; only the object-level `decode` throws.
 *
 *   const q = parseQuery(bytes)                 // header + question + EDNS, never throws
 *   if (q.status === 'ok') console.log(q.qname, q.qtype)
 *   const wire = encode({ id: 7, flags: FLAG.RD, questions: [{ name: 'example.com', type: TYPE.A, class: CLASS.IN }],
 *                         answers: [], authorities: [], additionals: [] })
 *   decode(wire).questions[0].name              // 'example.com'
 *
 * The object codec (`encode`, `decode`, `encodingLength`) is for tests and the control
 * plane; the per-query path uses `parseQuery`, `MessageCursor` and `WireWriter` directly.
 */

/** Bytes in a DNS header; compression pointers below this are invalid. */
export const HEADER_SIZE = 12
/** Largest DNS message (TCP length prefix is 16 bits). */
export const MAX_MESSAGE = 65535
/** Classic UDP limit without EDNS0 (RFC 1035 4.2.1). */
export const UDP_MIN_PAYLOAD = 512
/** We never send UDP answers larger than this, whatever the client's OPT says. */
export const UDP_MAX_PAYLOAD = 4096
const MAX_NAME_WIRE = 255
const MAX_LABEL = 63
/** Pointers must go strictly backwards, which bounds hops already; this is a second fence. */
const MAX_POINTER_HOPS = 127
/** An OPT record: root name (1) + type, class, ttl, rdlength (10) with no options. */
export const OPT_RECORD_SIZE = 11

/** Record types this codec knows by name (others pass as opaque rdata). */
export const TYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  IXFR: 251,
  AXFR: 252,
  MAILB: 253,
  MAILA: 254,
  ANY: 255,
} as const

/** Record classes. */
export const CLASS = { IN: 1, CH: 3, ANY: 255 } as const

/** Response codes. */
export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  /** Extended (12 bits): low 4 bits in the header, high 8 in the OPT record. */
  BADVERS: 16,
} as const

/** Header flag bits, as in the 16-bit flags word. Opcode is bits 11-14, rcode bits 0-3. */
export const FLAG = {
  QR: 0x8000,
  AA: 0x0400,
  TC: 0x0200,
  RD: 0x0100,
  RA: 0x0080,
  AD: 0x0020,
  CD: 0x0010,
} as const

/** The only opcode we serve; others get NOTIMP. */
export const OPCODE_QUERY = 0

/** Opcode from a flags word. */
export function opcodeOf(flags: number): number {
  return (flags >>> 11) & 0xf
}

/** Rcode (header part) from a flags word. */
export function rcodeOf(flags: number): number {
  return flags & 0xf
}

/** Why a message did not decode. */
export type DnsErrorCode =
  | 'TRUNCATED' // a length or count runs past the end of the message
  | 'BAD_LABEL' // label length over 63 (label types 0x40/0x80 are reserved) or empty label
  | 'NAME_TOO_LONG' // a name over 255 bytes on the wire
  | 'BAD_POINTER' // compression pointer forward, into itself or into the header
  | 'POINTER_LOOP' // too many compression hops
  | 'BAD_RDATA' // rdata does not match its type's layout or its rdlength
  | 'BAD_OPT' // OPT record outside the additional section, twice, or with a name

/** Thrown by `decode` (object level); the cursor and `parseQuery` report codes instead. */
export class DnsFormatError extends Error {
  readonly code: DnsErrorCode
  constructor(code: DnsErrorCode, readonly offset: number) {
    super(`malformed DNS message: ${code} at byte ${offset}`)
    this.code = code
  }
}

/** Thrown by `encode` and `WireWriter` for objects that cannot be put on the wire. */
export class DnsEncodeError extends Error {
  readonly code = 'DNS_ENCODE'
}

// ---------------------------------------------------------------------------------------
// Reading

const EMPTY = new Uint8Array(0)

/**
 * A bounds-checked reader with a sticky error: after the first failure every read returns
 * 0 or '' and `error` keeps the first cause, so callers check once per step, not per byte.
 */
export class WireReader {
  buf: Uint8Array = EMPTY
  pos = 0
  end = 0
  error: DnsErrorCode | null = null
  errorAt = 0

  reset(buf: Uint8Array, pos = 0, end = buf.length): this {
    this.buf = buf
    this.pos = pos
    this.end = end
    this.error = null
    this.errorAt = 0
    return this
  }

  fail(code: DnsErrorCode, at: number): void {
    if (this.error === null) {
      this.error = code
      this.errorAt = at
    }
    this.pos = this.end
  }

  u8(): number {
    if (this.pos + 1 > this.end) {
      this.fail('TRUNCATED', this.pos)
      return 0
    }
    return this.buf[this.pos++]
  }

  u16(): number {
    if (this.pos + 2 > this.end) {
      this.fail('TRUNCATED', this.pos)
      return 0
    }
    const b = this.buf
    const v = (b[this.pos] << 8) | b[this.pos + 1]
    this.pos += 2
    return v
  }

  u32(): number {
    if (this.pos + 4 > this.end) {
      this.fail('TRUNCATED', this.pos)
      return 0
    }
    const v = readU32(this.buf, this.pos)
    this.pos += 4
    return v
  }

  /** A view (not a copy) of the next n bytes. */
  bytes(n: number): Uint8Array {
    if (this.pos + n > this.end) {
      this.fail('TRUNCATED', this.pos)
      return EMPTY
    }
    const v = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return v
  }

  /**
   * Reads a possibly compressed name and returns its text (no trailing dot, '' for the
   * root; '.' and '\' inside labels escaped) when `text` is true, else validates and skips it.
   * Pointer targets must lie in [HEADER_SIZE, start of the current name segment).
   */
  name(text = true): string {
    const buf = this.buf
    const end = this.end
    let pos = this.pos
    let segmentStart = pos
    let resume = -1 // where reading continues after the first pointer
    let hops = 0
    let wire = 1 // the root byte
    let out = ''
    for (;;) {
      if (pos >= end) {
        this.fail('TRUNCATED', pos)
        return ''
      }
      const len = buf[pos]
      if (len === 0) {
        pos += 1
        break
      }
      const kind = len & 0xc0
      if (kind === 0xc0) {
        if (pos + 2 > end) {
          this.fail('TRUNCATED', pos)
          return ''
        }
        const ptr = ((len & 0x3f) << 8) | buf[pos + 1]
        if (ptr < HEADER_SIZE || ptr >= segmentStart) {
          this.fail('BAD_POINTER', pos)
          return ''
        }
        if (++hops > MAX_POINTER_HOPS) {
          this.fail('POINTER_LOOP', pos)
          return ''
        }
        if (resume < 0) resume = pos + 2
        pos = ptr
        segmentStart = ptr
        continue
      }
      if (kind !== 0) {
        this.fail('BAD_LABEL', pos)
        return ''
      }
      wire += len + 1
      if (wire > MAX_NAME_WIRE) {
        this.fail('NAME_TOO_LONG', pos)
        return ''
      }
      if (pos + 1 + len > end) {
        this.fail('TRUNCATED', pos)
        return ''
      }
      if (text) {
        if (out.length > 0) out += '.'
        for (let i = pos + 1; i <= pos + len; i++) {
          const c = buf[i]
          if (c === 0x2e) out += '\\.'
          else if (c === 0x5c) out += '\\\\'
          else out += String.fromCharCode(c)
        }
      }
      pos += 1 + len
    }
    this.pos = resume >= 0 ? resume : pos
    return out
  }
}

function readU32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0
}

function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24
  b[at + 1] = (v >>> 16) & 0xff
  b[at + 2] = (v >>> 8) & 0xff
  b[at + 3] = v & 0xff
}

/** Section of the record a cursor stands on. */
export const SECTION = { ANSWER: 1, AUTHORITY: 2, ADDITIONAL: 3 } as const

/**
 * Walks a message without building objects: `open` reads the header and the question
 * section, each `next` steps onto one resource record and exposes where its parts lie.
 *
 *   const c = new MessageCursor()
 *   if (c.open(buf)) while (c.next()) if (c.type === TYPE.OPT) ...
 *   if (c.error) ...                       // malformed: c.error, c.errorAt
 */
export class MessageCursor {
  private readonly r = new WireReader()
  id = 0
  flags = 0
  qdcount = 0
  ancount = 0
  nscount = 0
  arcount = 0
  /** First question (text as `WireReader.name` gives it), type and class. */
  qname = ''
  qtype = 0
  qclass = 0
  /** Offset just past the first question's name, and past the whole question section. */
  qnameEnd = 0
  questionEnd = 0
  /** The current record: its section, where it starts and ends, and its fixed fields. */
  section = 0
  start = 0
  type = 0
  class = 0
  ttl = 0
  ttlOffset = 0
  rdataOffset = 0
  rdlength = 0
  end = 0
  /** Index of the current record within its section. */
  index = -1
  private left = 0

  get error(): DnsErrorCode | null {
    return this.r.error
  }

  get errorAt(): number {
    return this.r.errorAt
  }

  /** The reader, positioned after the current record's fixed fields (for rdata). */
  get reader(): WireReader {
    return this.r
  }

  /** Whether the 12-byte header was readable (counts may still be wrong). */
  get headerRead(): boolean {
    return this.r.buf.length >= HEADER_SIZE
  }

  /** Reads header and questions; false (with `error` set) when malformed. */
  open(buf: Uint8Array, qnameText = true): boolean {
    const r = this.r.reset(buf)
    this.section = 0
    this.index = -1
    this.left = 0
    this.qname = ''
    this.qtype = this.qclass = this.qnameEnd = this.questionEnd = 0
    this.start = this.type = this.class = this.ttl = this.ttlOffset = this.rdataOffset = this.rdlength = this.end = 0
    this.id = r.u16()
    this.flags = r.u16()
    this.qdcount = r.u16()
    this.ancount = r.u16()
    this.nscount = r.u16()
    this.arcount = r.u16()
    if (r.error) return false
    for (let i = 0; i < this.qdcount && !r.error; i++) {
      const name = r.name(qnameText && i === 0)
      if (i === 0) {
        this.qname = name
        this.qnameEnd = r.pos
      }
      const type = r.u16()
      const klass = r.u16()
      if (i === 0) {
        this.qtype = type
        this.qclass = klass
      }
    }
    this.questionEnd = r.pos
    return r.error === null
  }

  /** Steps onto the next record; false at the end of the message or on error. */
  next(): boolean {
    const r = this.r
    if (r.error) return false
    if (this.section > 0) r.pos = this.end
    while (this.left === 0) {
      if (this.section >= SECTION.ADDITIONAL) return false
      this.section++
      this.index = -1
      this.left = this.section === SECTION.ANSWER ? this.ancount : this.section === SECTION.AUTHORITY ? this.nscount : this.arcount
    }
    this.left--
    this.index++
    this.start = r.pos
    r.name(false)
    this.type = r.u16()
    this.class = r.u16()
    this.ttlOffset = r.pos
    this.ttl = r.u32()
    this.rdlength = r.u16()
    this.rdataOffset = r.pos
    if (r.error) return false
    if (r.pos + this.rdlength > r.end) {
      r.fail('TRUNCATED', r.pos)
      return false
    }
    this.end = r.pos + this.rdlength
    return true
  }
}

// ---------------------------------------------------------------------------------------
// Queries: what the per-query path needs, never throwing

/** What a server should do with a query, per RFC 1035 / 6891. */
export type QueryStatus = 'ok' | 'drop' | 'formerr' | 'notimp' | 'badvers'

/** The parts of a query a server acts on. */
export interface ParsedQuery {
  status: QueryStatus
  /** Error code or a short reason when status is not 'ok'. */
  reason: string
  id: number
  flags: number
  qname: string
  qtype: number
  qclass: number
  /** End of the single question (0 when the question was not readable). */
  questionEnd: number
  /** Client's EDNS0 UDP payload size, 0 when the query has no OPT record. */
  ednsSize: number
  /** EDNS version from the OPT record (only 0 is served). */
  ednsVersion: number
  /** End of the last record parsed: the query without trailing garbage. */
  messageEnd: number
}

const queryCursor = new MessageCursor()

/**
 * Parses a query. Unreadable header or QR set: 'drop' (never answer a response: two
 * servers could bounce errors forever). Opcode other than QUERY: 'notimp'. Anything else
 * malformed: 'formerr'. OPT with version > 0: 'badvers'.
 */
export function parseQuery(buf: Uint8Array): ParsedQuery {
  const q: ParsedQuery = {
    status: 'ok',
    reason: '',
    id: 0,
    flags: 0,
    qname: '',
    qtype: 0,
    qclass: 0,
    questionEnd: 0,
    ednsSize: 0,
    ednsVersion: 0,
    messageEnd: 0,
  }
  if (buf.length < HEADER_SIZE) return bad(q, 'drop', 'TRUNCATED')
  q.id = (buf[0] << 8) | buf[1]
  q.flags = (buf[2] << 8) | buf[3]
  if (q.flags & FLAG.QR) return bad(q, 'drop', 'QR_SET')
  if (opcodeOf(q.flags) !== OPCODE_QUERY) return bad(q, 'notimp', 'OPCODE')
  const qdcount = (buf[4] << 8) | buf[5]
  if (qdcount !== 1) return bad(q, 'formerr', 'QDCOUNT')
  const c = queryCursor
  if (!c.open(buf)) return bad(q, 'formerr', c.error ?? 'TRUNCATED')
  q.qname = c.qname
  q.qtype = c.qtype
  q.qclass = c.qclass
  q.questionEnd = c.questionEnd
  let opts = 0
  q.messageEnd = c.questionEnd
  while (c.next()) {
    q.messageEnd = c.end
    if (c.type !== TYPE.OPT) continue
    if (c.section !== SECTION.ADDITIONAL || buf[c.start] !== 0 || ++opts > 1) return bad(q, 'formerr', 'BAD_OPT')
    if (!optionsWellFormed(buf, c.rdataOffset, c.end)) return bad(q, 'formerr', 'BAD_OPT')
    q.ednsSize = Math.max(c.class, UDP_MIN_PAYLOAD)
    q.ednsVersion = (c.ttl >>> 16) & 0xff
  }
  if (c.error) return bad(q, 'formerr', c.error)
  if (opts > 0 && q.ednsVersion !== 0) return bad(q, 'badvers', 'EDNS_VERSION')
  return q
}

function bad(q: ParsedQuery, status: QueryStatus, reason: string): ParsedQuery {
  q.status = status
  q.reason = reason
  return q
}

/** EDNS options are (code, length, data) triples that must tile the rdata exactly. */
function optionsWellFormed(buf: Uint8Array, pos: number, end: number): boolean {
  while (pos < end) {
    if (pos + 4 > end) return false
    const len = (buf[pos + 2] << 8) | buf[pos + 3]
    pos += 4 + len
  }
  return pos === end
}

/**
 * The UDP size limit for answering a query: 512 without EDNS0, else the client's OPT
 * payload size capped at 4096 (and never below 512).
 */
export function udpLimit(q: Pick<ParsedQuery, 'ednsSize'>): number {
  if (q.ednsSize === 0) return UDP_MIN_PAYLOAD
  return Math.min(Math.max(q.ednsSize, UDP_MIN_PAYLOAD), UDP_MAX_PAYLOAD)
}

/**
 * An error reply to a query: header with QR, the query's opcode and RD, the rcode, and the
 * question when it was readable. BADVERS carries its high bits in an OPT record.
 */
export function encodeErrorReply(query: Uint8Array, q: ParsedQuery, rcode: number, writer = new WireWriter(1024)): Uint8Array {
  const w = writer.reset()
  const withQuestion = q.questionEnd > 0
  const withOpt = q.ednsSize > 0 || rcode > 15
  w.u16(q.id)
  w.u16(FLAG.QR | (q.flags & (0x7800 | FLAG.RD | FLAG.CD)) | FLAG.RA | (rcode & 0xf))
  w.u16(withQuestion ? 1 : 0)
  w.u16(0)
  w.u16(0)
  w.u16(withOpt ? 1 : 0)
  if (withQuestion) w.bytes(query.subarray(HEADER_SIZE, q.questionEnd))
  if (withOpt) writeOpt(w, rcode >>> 4)
  return w.finish()
}

/** Our OPT record: root name, the payload size we accept, no options. */
export function writeOpt(w: WireWriter, extendedRcode = 0, payloadSize = 1232): void {
  w.u8(0)
  w.u16(TYPE.OPT)
  w.u16(payloadSize)
  w.u32((extendedRcode & 0xff) << 24)
  w.u16(0)
}

// ---------------------------------------------------------------------------------------
// Whole-message operations on wire bytes (forwarded and cached answers)

/** Sets the ID of a message in place. */
export function setId(buf: Uint8Array, id: number): void {
  buf[0] = id >>> 8
  buf[1] = id & 0xff
}

const opsCursor = new MessageCursor()

/**
 * Subtracts `seconds` from every TTL in place (OPT excluded: its TTL field is flags),
 * stopping at zero. Returns false if the message does not walk.
 */
export function decrementTtls(buf: Uint8Array, seconds: number): boolean {
  const c = opsCursor
  if (!c.open(buf, false)) return false
  while (c.next()) {
    if (c.type === TYPE.OPT) continue
    writeU32(buf, c.ttlOffset, c.ttl > seconds ? c.ttl - seconds : 0)
  }
  return c.error === null
}

/**
 * A copy of the message without its OPT record (for a client that sent none: RFC 6891
 * 7 forbids OPT in answers to such queries). Returns the input when there is none.
 */
export function removeOpt(buf: Uint8Array): Uint8Array {
  const c = opsCursor
  if (!c.open(buf, false)) return buf
  let start = -1
  let end = -1
  while (c.next()) {
    if (c.type === TYPE.OPT && c.section === SECTION.ADDITIONAL) {
      start = c.start
      end = c.end
    }
  }
  if (start < 0 || c.error) return buf
  const out = new Uint8Array(buf.length - (end - start))
  out.set(buf.subarray(0, start), 0)
  out.set(buf.subarray(end), start)
  const ar = ((out[10] << 8) | out[11]) - 1
  out[10] = ar >>> 8
  out[11] = ar & 0xff
  return out
}

/**
 * A copy of the message with our own OPT record (no options) appended, for answers served
 * from the cache: the upstream's OPT may carry another client's COOKIE, which a client
 * must reject (RFC 7873 5.3). Call `removeOpt` first.
 */
export function appendOpt(buf: Uint8Array): Uint8Array {
  const out = new Uint8Array(buf.length + OPT_RECORD_SIZE)
  out.set(buf, 0)
  const w = new WireWriter(OPT_RECORD_SIZE)
  writeOpt(w)
  out.set(w.buf, buf.length)
  const ar = ((out[10] << 8) | out[11]) + 1
  out[10] = ar >>> 8
  out[11] = ar & 0xff
  return out
}

/**
 * Cuts a message to `limit` bytes for UDP: header and question, then as many whole answer
 * records as fit, then the OPT record if there was one; authority and additional sections
 * go; TC is set. Pointers only point backwards, so a prefix of records stays valid.
 * Returns the input unchanged when it fits, null when it does not walk.
 */
export function truncate(buf: Uint8Array, limit: number): Uint8Array | null {
  if (buf.length <= limit) return buf
  const c = opsCursor
  if (!c.open(buf, false)) return null
  let optStart = -1
  let optEnd = -1
  // End offsets of answers are increasing; remember the last one that fits once we know
  // the OPT size, so walk once collecting both.
  const answerEnds: number[] = []
  while (c.next()) {
    if (c.section === SECTION.ANSWER) answerEnds.push(c.end)
    else if (c.type === TYPE.OPT && c.section === SECTION.ADDITIONAL) {
      optStart = c.start
      optEnd = c.end
    }
  }
  if (c.error) return null
  const optLen = optStart >= 0 ? optEnd - optStart : 0
  let cut = c.questionEnd
  let kept = 0
  for (const e of answerEnds) {
    if (e + optLen > limit) break
    cut = e
    kept++
  }
  if (cut > limit) return null // not even header and question fit: nothing sane to send
  // OPT goes too when it fits (it may not with no answers kept and a tiny limit).
  const withOpt = optLen > 0 && cut + optLen <= limit
  const out = new Uint8Array(cut + (withOpt ? optLen : 0))
  out.set(buf.subarray(0, cut), 0)
  if (withOpt) out.set(buf.subarray(optStart, optEnd), cut)
  out[2] |= FLAG.TC >>> 8
  out[6] = kept >>> 8
  out[7] = kept & 0xff
  out[8] = out[9] = 0
  out[10] = 0
  out[11] = withOpt ? 1 : 0
  return out
}

/** Compares the question names of two messages (ASCII case-insensitive) plus type and class. */
export function sameQuestion(a: Uint8Array, aEnd: number, b: Uint8Array, bEnd: number): boolean {
  if (aEnd !== bEnd || a.length < aEnd || b.length < bEnd) return false
  for (let i = HEADER_SIZE; i < aEnd; i++) {
    let x = a[i]
    let y = b[i]
    if (i < aEnd - 4) {
      // Name bytes: label lengths are <= 63, below 'A', so folding every byte is safe.
      if (x >= 0x41 && x <= 0x5a) x |= 0x20
      if (y >= 0x41 && y <= 0x5a) y |= 0x20
    }
    if (x !== y) return false
  }
  return true
}

// ---------------------------------------------------------------------------------------
// Writing

/** ASCII-only lower case: DNS compares names case-insensitively for ASCII letters only. */
export function asciiLower(s: string): string {
  return /[A-Z]/.test(s) ? s.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : s
}

/**
 * Writes a message into a fixed buffer with name compression. One writer can be reused
 * for many messages (`reset`); `finish` returns a copy of what was written.
 */
export class WireWriter {
  readonly buf: Uint8Array
  offset = 0
  /** Lower-cased name suffix -> offset where it was written. */
  private readonly names = new Map<string, number>()

  constructor(capacity = MAX_MESSAGE) {
    this.buf = new Uint8Array(capacity)
  }

  reset(): this {
    this.offset = 0
    this.names.clear()
    return this
  }

  private room(n: number): void {
    if (this.offset + n > this.buf.length) throw new DnsEncodeError(`DNS message would exceed ${this.buf.length} bytes`)
  }

  u8(v: number): void {
    this.room(1)
    this.buf[this.offset++] = v & 0xff
  }

  u16(v: number): void {
    this.room(2)
    this.buf[this.offset++] = (v >>> 8) & 0xff
    this.buf[this.offset++] = v & 0xff
  }

  u32(v: number): void {
    this.room(4)
    writeU32(this.buf, this.offset, v >>> 0)
    this.offset += 4
  }

  bytes(b: Uint8Array): void {
    this.room(b.length)
    this.buf.set(b, this.offset)
    this.offset += b.length
  }

  patchU16(at: number, v: number): void {
    this.buf[at] = (v >>> 8) & 0xff
    this.buf[at + 1] = v & 0xff
  }

  /**
   * Writes a name (text form: dots between labels, optional trailing dot, `\.` and `\\`
   * escapes). With `compress`, the longest suffix already written becomes a pointer.
   * Every suffix written here can be pointed at by later names either way.
   */
  name(name: string, compress = true): void {
    const labels = splitName(name)
    let wire = 1
    for (const l of labels) wire += l.bytes.length + 1
    if (wire > MAX_NAME_WIRE) throw new DnsEncodeError(`DNS name too long (${wire} bytes on the wire, max 255): ${JSON.stringify(name)}`)
    for (let i = 0; i < labels.length; i++) {
      const key = asciiLower(labels[i].suffix)
      if (compress) {
        const at = this.names.get(key)
        if (at !== undefined) {
          this.u16(0xc000 | at)
          return
        }
      }
      if (this.offset < 0x4000 && !this.names.has(key)) this.names.set(key, this.offset)
      this.u8(labels[i].bytes.length)
      this.bytes(labels[i].bytes)
    }
    this.u8(0)
  }

  /** A copy of the bytes written so far. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.offset)
  }
}

interface Label {
  bytes: Uint8Array
  /** The text from this label to the end of the name (the compression key). */
  suffix: string
}

/** Splits a text name into labels, resolving `\.`, `\\` and `\DDD` escapes. */
function splitName(name: string): Label[] {
  if (name.endsWith('.') && !name.endsWith('\\.')) name = name.slice(0, -1)
  const labels: Label[] = []
  if (name === '') return labels
  let cur: number[] = []
  let start = 0
  for (let i = 0; i <= name.length; i++) {
    const ch = i < name.length ? name.charCodeAt(i) : 0x2e
    if (ch === 0x2e) {
      if (cur.length === 0) throw new DnsEncodeError(`empty label in DNS name ${JSON.stringify(name)}`)
      if (cur.length > MAX_LABEL) throw new DnsEncodeError(`DNS label over 63 bytes in ${JSON.stringify(name)}`)
      labels.push({ bytes: Uint8Array.from(cur), suffix: name.slice(start) })
      cur = []
      start = i + 1
      continue
    }
    if (ch === 0x5c && i + 1 < name.length) {
      const d = name.slice(i + 1, i + 4)
      if (/^[0-9]{3}$/.test(d) && Number(d) <= 255) {
        cur.push(Number(d))
        i += 3
      } else {
        cur.push(name.charCodeAt(++i))
      }
      if (cur[cur.length - 1] > 255) throw new DnsEncodeError(`non-latin1 character in DNS name ${JSON.stringify(name)}`)
      continue
    }
    if (ch > 255) throw new DnsEncodeError(`non-latin1 character in DNS name ${JSON.stringify(name)}`)
    cur.push(ch)
  }
  return labels
}

// ---------------------------------------------------------------------------------------
// Addresses

/** Four bytes of a dotted-quad IPv4 address, or null. */
export function parseIPv4(s: string): Uint8Array | null {
  const parts = s.split('.')
  if (parts.length !== 4) return null
  const out = new Uint8Array(4)
  for (let i = 0; i < 4; i++) {
    const p = parts[i]
    if (!/^[0-9]{1,3}$/.test(p)) return null
    const v = Number(p)
    if (v > 255) return null
    out[i] = v
  }
  return out
}

/** Sixteen bytes of an IPv6 address (with `::` and a dotted IPv4 tail allowed), or null. */
export function parseIPv6(s: string): Uint8Array | null {
  if (s.length === 0 || s.length > 45 || s.includes('%')) return null
  const out = new Uint8Array(16)
  const halves = s.split('::')
  if (halves.length > 2) return null
  const head = halves[0] === '' ? [] : halves[0].split(':')
  const tail = halves.length === 2 ? (halves[1] === '' ? [] : halves[1].split(':')) : []
  const groups: number[] = []
  const parseGroups = (parts: string[], last: boolean): number[] | null => {
    const g: number[] = []
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]
      if (last && i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIPv4(p)
        if (!v4) return null
        g.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3])
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null
        g.push(parseInt(p, 16))
      }
    }
    return g
  }
  const h = parseGroups(head, halves.length === 1)
  const t = parseGroups(tail, true)
  if (!h || !t) return null
  if (halves.length === 1) {
    if (h.length !== 8) return null
    groups.push(...h)
  } else {
    if (h.length + t.length > 7) return null
    groups.push(...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t)
  }
  for (let i = 0; i < 8; i++) {
    out[i * 2] = groups[i] >>> 8
    out[i * 2 + 1] = groups[i] & 0xff
  }
  return out
}

/** Dotted-quad text of four bytes at `off`. */
export function formatIPv4(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`
}

/** RFC 5952 text: lower case, longest run (>= 2) of zero groups as `::`. */
export function formatIPv6(b: Uint8Array, off = 0): string {
  const g: number[] = []
  for (let i = 0; i < 8; i++) g.push((b[off + i * 2] << 8) | b[off + i * 2 + 1])
  let bestStart = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen) {
      bestStart = i
      bestLen = j - i
    }
    i = j
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':')
  if (bestStart < 0) return hex(g)
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`
}

// ---------------------------------------------------------------------------------------
// The object codec: encode / decode / encodingLength

/** A question: name in text form, type and class. */
export interface DnsQuestion {
  name: string
  type: number
  class: number
}

/** MX rdata. */
export interface MxData {
  preference: number
  exchange: string
}

/** SRV rdata (RFC 2782). */
export interface SrvData {
  priority: number
  weight: number
  port: number
  target: string
}

/** SOA rdata; `minimum` bounds negative caching (RFC 2308). */
export interface SoaData {
  mname: string
  rname: string
  serial: number
  refresh: number
  retry: number
  expire: number
  minimum: number
}

/**
 * Record data by type: A/AAAA an address string; NS/CNAME/PTR a name; MX, SRV, SOA objects;
 * TXT an array of character strings; everything else (OPT included) opaque bytes.
 */
export type RecordData = string | Uint8Array | readonly Uint8Array[] | MxData | SrvData | SoaData

/** A resource record. For OPT, `class` is the UDP payload size and `ttl` the EDNS flags word. */
export interface DnsRecord {
  name: string
  type: number
  class: number
  ttl: number
  data: RecordData
}

/** A whole message; `flags` is the 16-bit word (see FLAG, opcodeOf, rcodeOf). */
export interface DnsMessage {
  id: number
  flags: number
  questions: DnsQuestion[]
  answers: DnsRecord[]
  authorities: DnsRecord[]
  additionals: DnsRecord[]
}

const scratch = new WireWriter()

/** Exact encoded size of a message, compression included. */
export function encodingLength(msg: DnsMessage): number {
  writeMessage(scratch.reset(), msg)
  return scratch.offset
}

/**
 * Encodes a message with name compression. Writes into `buf` at `offset` when given
 * (throws if it does not fit) and returns the written bytes as a view.
 */
export function encode(msg: DnsMessage, buf?: Uint8Array, offset = 0): Uint8Array {
  writeMessage(scratch.reset(), msg)
  const n = scratch.offset
  if (!buf) return scratch.finish()
  if (offset < 0 || offset + n > buf.length) throw new DnsEncodeError(`buffer too small: need ${n} bytes at offset ${offset}, have ${buf.length - offset}`)
  buf.set(scratch.buf.subarray(0, n), offset)
  return buf.subarray(offset, offset + n)
}

function writeMessage(w: WireWriter, msg: DnsMessage): void {
  w.u16(msg.id)
  w.u16(msg.flags)
  w.u16(msg.questions.length)
  w.u16(msg.answers.length)
  w.u16(msg.authorities.length)
  w.u16(msg.additionals.length)
  for (const q of msg.questions) {
    w.name(q.name)
    w.u16(q.type)
    w.u16(q.class)
  }
  for (const rr of msg.answers) writeRecord(w, rr)
  for (const rr of msg.authorities) writeRecord(w, rr)
  for (const rr of msg.additionals) writeRecord(w, rr)
}

function isBytes(d: RecordData): d is Uint8Array {
  return d instanceof Uint8Array
}

function isObj(d: RecordData, key: string): boolean {
  return typeof d === 'object' && d !== null && !(d instanceof Uint8Array) && !Array.isArray(d) && key in d
}

function wrongData(rr: DnsRecord, want: string): DnsEncodeError {
  return new DnsEncodeError(`record ${JSON.stringify(rr.name)} type ${rr.type}: data must be ${want}`)
}

/** Writes one record: owner, fixed fields, rdata with its length patched in afterwards. */
export function writeRecord(w: WireWriter, rr: DnsRecord): void {
  w.name(rr.name)
  w.u16(rr.type)
  w.u16(rr.class)
  w.u32(rr.ttl)
  const lenAt = w.offset
  w.u16(0)
  const d = rr.data
  switch (rr.type) {
    case TYPE.A: {
      const b = typeof d === 'string' ? parseIPv4(d) : null
      if (!b) throw wrongData(rr, 'an IPv4 address string')
      w.bytes(b)
      break
    }
    case TYPE.AAAA: {
      const b = typeof d === 'string' ? parseIPv6(d) : null
      if (!b) throw wrongData(rr, 'an IPv6 address string')
      w.bytes(b)
      break
    }
    case TYPE.NS:
    case TYPE.CNAME:
    case TYPE.PTR:
      if (typeof d !== 'string') throw wrongData(rr, 'a name string')
      w.name(d)
      break
    case TYPE.MX:
      if (!isObj(d, 'exchange')) throw wrongData(rr, '{ preference, exchange }')
      w.u16((d as MxData).preference)
      w.name((d as MxData).exchange)
      break
    case TYPE.SRV:
      if (!isObj(d, 'target')) throw wrongData(rr, '{ priority, weight, port, target }')
      w.u16((d as SrvData).priority)
      w.u16((d as SrvData).weight)
      w.u16((d as SrvData).port)
      w.name((d as SrvData).target, false) // RFC 2782: the target is never compressed
      break
    case TYPE.SOA: {
      if (!isObj(d, 'mname')) throw wrongData(rr, '{ mname, rname, serial, refresh, retry, expire, minimum }')
      const s = d as SoaData
      w.name(s.mname)
      w.name(s.rname)
      w.u32(s.serial)
      w.u32(s.refresh)
      w.u32(s.retry)
      w.u32(s.expire)
      w.u32(s.minimum)
      break
    }
    case TYPE.TXT:
      if (!Array.isArray(d)) throw wrongData(rr, 'an array of byte strings')
      for (const s of d as readonly Uint8Array[]) {
        if (!(s instanceof Uint8Array) || s.length > 255) throw wrongData(rr, 'byte strings of at most 255 bytes')
        w.u8(s.length)
        w.bytes(s)
      }
      break
    default:
      if (!isBytes(d)) throw wrongData(rr, 'bytes (opaque rdata)')
      w.bytes(d)
  }
  const len = w.offset - lenAt - 2
  if (len > 0xffff) throw new DnsEncodeError(`rdata of ${JSON.stringify(rr.name)} over 65535 bytes`)
  w.patchU16(lenAt, len)
}

const decodeCursor = new MessageCursor()

/** Decodes a whole message into objects; throws DnsFormatError when malformed. */
export function decode(buf: Uint8Array, offset = 0): DnsMessage {
  const b = offset === 0 ? buf : buf.subarray(offset)
  const c = decodeCursor
  const fail = (): DnsFormatError => new DnsFormatError(c.error ?? 'TRUNCATED', c.errorAt)
  if (!c.open(b)) throw fail()
  const msg: DnsMessage = { id: c.id, flags: c.flags, questions: [], answers: [], authorities: [], additionals: [] }
  // Re-read questions as objects (the cursor keeps only the first).
  const r = new WireReader().reset(b, HEADER_SIZE)
  for (let i = 0; i < c.qdcount; i++) msg.questions.push({ name: r.name(), type: r.u16(), class: r.u16() })
  let opts = 0
  while (c.next()) {
    const name = new WireReader().reset(b, c.start).name()
    const rr: DnsRecord = { name, type: c.type, class: c.class, ttl: c.ttl, data: EMPTY }
    if (c.type === TYPE.OPT && (c.section !== SECTION.ADDITIONAL || name !== '' || ++opts > 1)) throw new DnsFormatError('BAD_OPT', c.start)
    rr.data = readRdata(b, c.type, c.rdataOffset, c.end)
    const list = c.section === SECTION.ANSWER ? msg.answers : c.section === SECTION.AUTHORITY ? msg.authorities : msg.additionals
    list.push(rr)
  }
  if (c.error) throw fail()
  return msg
}

/** Decodes rdata of the types we know; names may point anywhere before them. */
function readRdata(b: Uint8Array, type: number, start: number, end: number): RecordData {
  const r = new WireReader().reset(b, start)
  let data: RecordData
  switch (type) {
    case TYPE.A:
      if (end - start !== 4) throw new DnsFormatError('BAD_RDATA', start)
      return formatIPv4(b, start)
    case TYPE.AAAA:
      if (end - start !== 16) throw new DnsFormatError('BAD_RDATA', start)
      return formatIPv6(b, start)
    case TYPE.NS:
    case TYPE.CNAME:
    case TYPE.PTR:
      data = r.name()
      break
    case TYPE.MX:
      data = { preference: r.u16(), exchange: r.name() }
      break
    case TYPE.SRV:
      data = { priority: r.u16(), weight: r.u16(), port: r.u16(), target: r.name() }
      break
    case TYPE.SOA:
      data = { mname: r.name(), rname: r.name(), serial: r.u32(), refresh: r.u32(), retry: r.u32(), expire: r.u32(), minimum: r.u32() }
      break
    case TYPE.TXT: {
      const strings: Uint8Array[] = []
      r.end = end
      while (r.pos < end && !r.error) strings.push(r.bytes(r.u8()).slice())
      data = strings
      break
    }
    default:
      return b.slice(start, end)
  }
  if (r.error) throw new DnsFormatError(r.error, r.errorAt)
  if (r.pos !== end) throw new DnsFormatError('BAD_RDATA', start)
  return data
}
