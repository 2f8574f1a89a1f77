import t from 'tap'
import {
  CLASS,
  DnsFormatError,
  FLAG,
  MessageCursor,
  RCODE,
  TYPE,
  decode,
  decrementTtls,
  encode,
  encodeErrorReply,
  encodingLength,
  formatIPv6,
  parseIPv4,
  parseIPv6,
  parseQuery,
  rcodeOf,
  removeOpt,
  sameQuestion,
  truncate,
  udpLimit,
  type DnsMessage,
  type DnsRecord,
} from '../../src/gateway/dns/codec.js'

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'))
const u16 = (b: Uint8Array, at: number): number => (b[at] << 8) | b[at + 1]

function message(over: Partial<DnsMessage>): DnsMessage {
  return { id: 0x1234, flags: 0, questions: [], answers: [], authorities: [], additionals: [], ...over }
}

/** A header followed by raw bytes, with the given counts. */
function raw(counts: [number, number, number, number], body: string, flags = 0x0100): Uint8Array {
  const h = Buffer.alloc(12)
  h.writeUInt16BE(0xbeef, 0)
  h.writeUInt16BE(flags, 2)
  counts.forEach((c, i) => h.writeUInt16BE(c, 4 + i * 2))
  return new Uint8Array(Buffer.concat([h, Buffer.from(body.replace(/\s+/g, ''), 'hex')]))
}

// "example.com" A IN
const EXAMPLE_Q = '076578616d706c6503636f6d00 0001 0001'

t.test('decodes a hand-written query byte for byte', async (t) => {
  const m = decode(raw([1, 0, 0, 0], EXAMPLE_Q))
  t.equal(m.id, 0xbeef)
  t.equal(m.flags, FLAG.RD)
  t.same(m.questions, [{ name: 'example.com', type: TYPE.A, class: CLASS.IN }])
})

t.test('encodes a query to the exact bytes', async (t) => {
  const wire = encode(message({ id: 0xbeef, flags: FLAG.RD, questions: [{ name: 'Example.COM.', type: TYPE.A, class: CLASS.IN }] }))
  t.same(Buffer.from(wire).toString('hex'), Buffer.from(raw([1, 0, 0, 0], '074578616d706c6503434f4d00 0001 0001')).toString('hex'))
})

t.test('round-trips every supported record type', async (t) => {
  const records: DnsRecord[] = [
    { name: 'a.example.com', type: TYPE.A, class: CLASS.IN, ttl: 60, data: '192.0.2.1' },
    { name: 'a.example.com', type: TYPE.AAAA, class: CLASS.IN, ttl: 60, data: '2001:db8::1' },
    { name: '1.2.0.192.in-addr.arpa', type: TYPE.PTR, class: CLASS.IN, ttl: 60, data: 'a.example.com' },
    { name: 'www.example.com', type: TYPE.CNAME, class: CLASS.IN, ttl: 60, data: 'a.example.com' },
    { name: 'example.com', type: TYPE.NS, class: CLASS.IN, ttl: 60, data: 'ns1.example.com' },
    { name: 'example.com', type: TYPE.MX, class: CLASS.IN, ttl: 60, data: { preference: 10, exchange: 'mail.example.com' } },
    { name: 'example.com', type: TYPE.TXT, class: CLASS.IN, ttl: 60, data: [new TextEncoder().encode('v=spf1 -all'), new Uint8Array(0)] },
    { name: '_http._tcp.example.com', type: TYPE.SRV, class: CLASS.IN, ttl: 60, data: { priority: 1, weight: 2, port: 80, target: 'a.example.com' } },
    { name: 'example.com', type: 99, class: CLASS.IN, ttl: 60, data: new Uint8Array([1, 2, 3]) },
  ]
  const msg = message({
    flags: FLAG.QR | FLAG.RD | FLAG.RA,
    questions: [{ name: 'example.com', type: TYPE.ANY, class: CLASS.IN }],
    answers: records,
    authorities: [
      {
        name: 'example.com',
        type: TYPE.SOA,
        class: CLASS.IN,
        ttl: 300,
        data: { mname: 'ns1.example.com', rname: 'hostmaster.example.com', serial: 2024010101, refresh: 7200, retry: 900, expire: 1209600, minimum: 120 },
      },
    ],
    additionals: [{ name: '', type: TYPE.OPT, class: 1232, ttl: 0, data: hex('000a0008 0102030405060708') }],
  })
  const wire = encode(msg)
  t.equal(encodingLength(msg), wire.length)
  const back = decode(wire)
  // TXT strings come back as Uint8Array; compare their text.
  const norm = (m: DnsMessage): unknown => JSON.parse(JSON.stringify(m, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)))
  t.same(norm(back), norm(msg))
})

t.test('compresses names: repeated owners become pointers, SRV targets never', async (t) => {
  const a = (name: string): DnsRecord => ({ name, type: TYPE.A, class: CLASS.IN, ttl: 1, data: '10.0.0.1' })
  const msg = message({ questions: [{ name: 'web.example.com', type: TYPE.A, class: CLASS.IN }], answers: [a('web.example.com'), a('WEB.example.com'), a('db.example.com')] })
  const wire = encode(msg)
  // header 12 + question (17 + 4) = 33: first answer's owner is a pointer to offset 12.
  t.equal(u16(wire, 33), 0xc00c)
  t.equal(u16(wire, 33 + 16), 0xc00c, 'case-insensitive match')
  // third: label "db" then a pointer to "example.com" at offset 16
  t.equal(wire[33 + 32], 2)
  t.equal(u16(wire, 33 + 32 + 3), 0xc010)
  t.same(
    decode(wire).answers.map((r) => r.name),
    ['web.example.com', 'web.example.com', 'db.example.com'],
    'pointers decode to the first spelling',
  )

  const srv = encode(
    message({
      questions: [{ name: 'a.example.com', type: TYPE.SRV, class: CLASS.IN }],
      answers: [{ name: 'a.example.com', type: TYPE.SRV, class: CLASS.IN, ttl: 1, data: { priority: 0, weight: 0, port: 1, target: 'a.example.com' } }],
    }),
  )
  const rdata = srv.subarray(srv.length - 15)
  t.equal(rdata[0], 1, 'SRV target written as labels, not a pointer')
  t.same(decode(srv).answers[0].data, { priority: 0, weight: 0, port: 1, target: 'a.example.com' })
})

t.test('names with dots or backslashes inside labels round-trip as escapes', async (t) => {
  const wire = raw([1, 0, 0, 0], '03612e62 015c 00 0001 0001')
  const m = decode(wire)
  t.equal(m.questions[0].name, 'a\\.b.\\\\')
  t.same(encode(m), wire)
})

t.test('encode rejects what cannot go on the wire', async (t) => {
  const q = (name: string): DnsMessage => message({ questions: [{ name, type: 1, class: 1 }] })
  t.throws(() => encode(q('a'.repeat(64) + '.com')), { code: 'DNS_ENCODE' })
  t.throws(() => encode(q(Array(130).fill('ab').join('.'))), { code: 'DNS_ENCODE' })
  t.throws(() => encode(q('a..b')), { code: 'DNS_ENCODE' })
  t.throws(() => encode(message({ answers: [{ name: 'x', type: TYPE.A, class: 1, ttl: 1, data: 'not-an-ip' }] })), { code: 'DNS_ENCODE' })
  t.throws(() => encode(message({ answers: [{ name: 'x', type: TYPE.MX, class: 1, ttl: 1, data: 'x' }] })), { code: 'DNS_ENCODE' })
  t.throws(() => encode(q('a'), new Uint8Array(10)), { code: 'DNS_ENCODE' }, 'target buffer too small')
  const buf = new Uint8Array(64)
  const view = encode(q('a'), buf, 5)
  t.equal(view.byteOffset, 5)
  t.same(decode(buf, 5).questions[0].name, 'a')
})

t.test('malformed messages: every length checked, every pointer bounded', async (t) => {
  const code = (b: Uint8Array): string => {
    try {
      decode(b)
      return 'ok'
    } catch (e) {
      t.type(e, DnsFormatError)
      return (e as DnsFormatError).code
    }
  }
  t.equal(code(new Uint8Array(11)), 'TRUNCATED', 'short header')
  t.equal(code(raw([1, 0, 0, 0], '076578616d706c')), 'TRUNCATED', 'name cut inside a label')
  t.equal(code(raw([1, 0, 0, 0], '076578616d706c6503636f6d00 00')), 'TRUNCATED', 'question cut in its type')
  t.equal(code(raw([1, 0, 0, 0], '40' + '61'.repeat(64) + '00 0001 0001')), 'BAD_LABEL', 'label length 64 (0x40 type)')
  t.equal(code(raw([1, 0, 0, 0], '80 00 0001 0001')), 'BAD_LABEL', 'reserved 0x80 label type')
  const long = Array(5).fill('3f' + '61'.repeat(63)).join('') + '00 0001 0001'
  t.equal(code(raw([1, 0, 0, 0], long)), 'NAME_TOO_LONG', 'name over 255 bytes')
  t.equal(code(raw([1, 0, 0, 0], 'c00c 0001 0001')), 'BAD_POINTER', 'pointer to itself')
  t.equal(code(raw([1, 0, 0, 0], '0161 c00c 0001 0001')), 'BAD_POINTER', 'pointer back into its own name (loop)')
  t.equal(code(raw([1, 0, 0, 0], '0161 c020 0001 0001 0162 00')), 'BAD_POINTER', 'pointer forward')
  t.equal(code(raw([1, 0, 0, 0], 'c3ff 0001 0001')), 'BAD_POINTER', 'pointer out of bounds')
  t.equal(code(raw([1, 0, 0, 0], 'c002 0001 0001')), 'BAD_POINTER', 'pointer into the header')
  // two names pointing at each other: 12: "a" -> ptr 17 ; 17: "b" -> ptr 12
  t.equal(code(raw([2, 0, 0, 0], '0161c011 0001 0001 0162c00c 0001 0001')), 'BAD_POINTER', 'pointer cycle between names')
  t.equal(code(raw([1, 0, 0, 0], 'c0')), 'TRUNCATED', 'pointer cut in half')
  t.equal(code(raw([1, 1, 0, 0], EXAMPLE_Q)), 'TRUNCATED', 'ancount larger than the records present')
  t.equal(code(raw([3, 0, 0, 0], EXAMPLE_Q)), 'TRUNCATED', 'qdcount larger than the questions present')
  t.equal(code(raw([1, 1, 0, 0], EXAMPLE_Q + 'c00c 0001 0001 00000001 0004 0a00')), 'TRUNCATED', 'rdlength past the end')
  t.equal(code(raw([1, 1, 0, 0], EXAMPLE_Q + 'c00c 0001 0001 00000001 0003 0a0000')), 'BAD_RDATA', 'A with 3 bytes')
  t.equal(code(raw([1, 1, 0, 0], EXAMPLE_Q + 'c00c 0005 0001 00000001 0002 0161 00')), 'BAD_RDATA', 'CNAME name running past rdlength')
  t.equal(code(raw([1, 1, 0, 0], EXAMPLE_Q + '00 0029 1000 00000000 0000')), 'BAD_OPT', 'OPT in the answer section')
  t.equal(code(raw([1, 0, 0, 2], EXAMPLE_Q + '00 0029 1000 00000000 0000 00 0029 1000 00000000 0000')), 'BAD_OPT', 'two OPT records')
  t.equal(code(raw([1, 0, 0, 0], EXAMPLE_Q)), 'ok')
})

t.test('parseQuery tells drop, FORMERR, NOTIMP and BADVERS apart', async (t) => {
  t.equal(parseQuery(new Uint8Array(5)).status, 'drop', 'header unreadable')
  t.equal(parseQuery(raw([1, 0, 0, 0], EXAMPLE_Q, 0x8100)).status, 'drop', 'QR set: a response, never answered')
  t.equal(parseQuery(raw([1, 0, 0, 0], EXAMPLE_Q, 0x2000)).status, 'notimp', 'opcode NOTIFY (4)')
  t.equal(parseQuery(raw([0, 0, 0, 0], '')).status, 'formerr', 'qdcount 0')
  t.equal(parseQuery(raw([2, 0, 0, 0], EXAMPLE_Q + EXAMPLE_Q)).status, 'formerr', 'qdcount 2')
  t.equal(parseQuery(raw([1, 0, 0, 0], '40' + '61'.repeat(64) + '00 0001 0001')).status, 'formerr', 'label over 63')
  t.equal(parseQuery(raw([1, 0, 0, 1], EXAMPLE_Q)).status, 'formerr', 'arcount without records')
  t.equal(parseQuery(raw([1, 0, 0, 1], EXAMPLE_Q + '00 0029 1000 00000000 0003 000100')).status, 'formerr', 'OPT option cut short')
  t.equal(parseQuery(raw([1, 0, 0, 1], EXAMPLE_Q + '0161 00 0029 1000 00000000 0000')).status, 'formerr', 'OPT with a name')
  t.equal(parseQuery(raw([1, 0, 0, 1], EXAMPLE_Q + '00 0029 1000 00010000 0000')).status, 'badvers', 'EDNS version 1')
  const ok = parseQuery(raw([1, 0, 0, 1], EXAMPLE_Q + '00 0029 1000 00008000 0000'))
  t.equal(ok.status, 'ok')
  t.equal(ok.ednsSize, 4096)
  t.equal(ok.qname, 'example.com')
  t.equal(ok.questionEnd, 12 + 17)
  t.equal(udpLimit(ok), 4096)
  t.equal(udpLimit({ ednsSize: 65000 }), 4096, 'capped at 4096')
  t.equal(udpLimit({ ednsSize: 0 }), 512)
  t.equal(parseQuery(raw([1, 0, 0, 1], EXAMPLE_Q + '00 0029 0100 00000000 0000')).ednsSize, 512, 'payload below 512 counts as 512')
})

t.test('error replies echo ID, opcode, RD and the question when readable', async (t) => {
  const query = raw([1, 0, 0, 1], EXAMPLE_Q + '00 0029 1000 00010000 0000')
  const q = parseQuery(query)
  const r = decode(encodeErrorReply(query, q, RCODE.BADVERS))
  t.equal(r.id, 0xbeef)
  t.ok(r.flags & FLAG.QR)
  t.ok(r.flags & FLAG.RD)
  t.equal(rcodeOf(r.flags), 0, 'BADVERS low bits are 0')
  t.equal(r.additionals[0].ttl >>> 24, 1, 'BADVERS high bits in OPT')
  t.equal(r.questions[0].name, 'example.com')
  const nq = raw([1, 0, 0, 0], EXAMPLE_Q, 0x2100)
  const n = decode(encodeErrorReply(nq, parseQuery(nq), RCODE.NOTIMP))
  t.equal(rcodeOf(n.flags), RCODE.NOTIMP)
  t.equal((n.flags >>> 11) & 0xf, 4, 'opcode echoed')
  t.equal(n.questions.length, 0)
})

t.test('truncate keeps whole answers and the OPT, sets TC', async (t) => {
  const answers: DnsRecord[] = Array.from({ length: 40 }, (_, i) => ({ name: 'many.example', type: TYPE.A, class: 1, ttl: 5, data: `10.0.0.${i + 1}` }))
  const full = encode(
    message({
      flags: FLAG.QR,
      questions: [{ name: 'many.example', type: TYPE.A, class: 1 }],
      answers,
      authorities: [{ name: 'example', type: TYPE.NS, class: 1, ttl: 5, data: 'ns.example' }],
      additionals: [{ name: '', type: TYPE.OPT, class: 1232, ttl: 0, data: new Uint8Array(0) }],
    }),
  )
  t.equal(truncate(full, 65535), full, 'fits: unchanged')
  const cut = truncate(full, 512)
  if (!cut) throw new Error('no cut')
  t.ok(cut.length <= 512)
  const m = decode(cut)
  t.ok(m.flags & FLAG.TC)
  t.ok(m.answers.length > 0 && m.answers.length < 40)
  t.equal(m.authorities.length, 0)
  t.equal(m.additionals.length, 1)
  t.equal(m.additionals[0].type, TYPE.OPT)
  t.equal(truncate(full, 20), null, 'not even the question fits')
})

t.test('removeOpt and decrementTtls work on the wire', async (t) => {
  const wire = encode(
    message({
      flags: FLAG.QR,
      questions: [{ name: 'x.example', type: TYPE.A, class: 1 }],
      answers: [{ name: 'x.example', type: TYPE.A, class: 1, ttl: 100, data: '10.0.0.1' }],
      additionals: [
        { name: 'ns.example', type: TYPE.A, class: 1, ttl: 3, data: '10.0.0.2' },
        { name: '', type: TYPE.OPT, class: 1232, ttl: 0x8000, data: new Uint8Array(0) },
      ],
    }),
  )
  t.ok(decrementTtls(wire, 10))
  const m = decode(wire)
  t.equal(m.answers[0].ttl, 90)
  t.equal(m.additionals[0].ttl, 0, 'stops at zero')
  t.equal(m.additionals[1].ttl, 0x8000, 'OPT flags untouched')
  const s = decode(removeOpt(wire))
  t.equal(s.additionals.length, 1)
  t.equal(s.additionals[0].type, TYPE.A)
  const noOpt = removeOpt(wire)
  t.equal(removeOpt(noOpt), noOpt, 'nothing to remove: same buffer')
})

t.test('sameQuestion folds ASCII case in the name only', async (t) => {
  const a = raw([1, 0, 0, 0], EXAMPLE_Q)
  const b = raw([1, 0, 0, 0], '074578414d706c6503434f4d00 0001 0001')
  t.ok(sameQuestion(a, 29, b, 29))
  const c = raw([1, 0, 0, 0], '076578616d706c6503636f6d00 0001 0003')
  t.notOk(sameQuestion(a, 29, c, 29), 'class differs')
  t.notOk(sameQuestion(a, 29, b, 28))
})

t.test('cursor exposes record positions', async (t) => {
  const wire = encode(
    message({
      questions: [{ name: 'q.example', type: 1, class: 1 }],
      answers: [{ name: 'q.example', type: 1, class: 1, ttl: 42, data: '1.2.3.4' }],
    }),
  )
  const c = new MessageCursor()
  t.ok(c.open(wire))
  t.equal(c.qname, 'q.example')
  t.ok(c.next())
  t.equal(c.ttl, 42)
  t.equal(c.rdlength, 4)
  t.same([...wire.subarray(c.rdataOffset, c.end)], [1, 2, 3, 4])
  t.notOk(c.next())
  t.equal(c.error, null)
})

t.test('IPv4 and IPv6 text', async (t) => {
  t.same(parseIPv4('10.0.0.255'), new Uint8Array([10, 0, 0, 255]))
  for (const bad of ['10.0.0', '10.0.0.256', '1.2.3.4.5', 'a.b.c.d', '', '1..2.3']) t.equal(parseIPv4(bad), null, bad)
  const cases: [string, string][] = [
    ['2001:db8::1', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['fe80:0:0:0:1:0:0:1', 'fe80::1:0:0:1'],
    ['2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1'],
    ['::ffff:10.0.0.1', '::ffff:a00:1'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1:0:3:4:5:6:7:8', '1:0:3:4:5:6:7:8'],
  ]
  for (const [input, want] of cases) {
    const b = parseIPv6(input)
    t.ok(b, input)
    if (b) t.equal(formatIPv6(b), want, input)
  }
  for (const bad of ['1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'g::1', 'fe80::1%eth0', '1:2:3:4:5:6:7']) t.equal(parseIPv6(bad), null, bad)
})
