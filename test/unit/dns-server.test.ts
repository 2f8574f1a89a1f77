import t from 'tap'
import { CLASS, FLAG, RCODE, TYPE, decode, encode, rcodeOf, type DnsMessage, type DnsRecord } from '../../src/gateway/dns/codec.js'
import { DnsRecords } from '../../src/gateway/dns/records.js'
import { DnsServer, LOCAL_TTL, type DnsNetwork } from '../../src/gateway/dns/server.js'

interface QueryOpts {
  id?: number
  flags?: number
  edns?: number
  klass?: number
}

function query(name: string, type: number, o: QueryOpts = {}): Uint8Array {
  const additionals: DnsRecord[] = o.edns ? [{ name: '', type: TYPE.OPT, class: o.edns, ttl: 0, data: new Uint8Array(0) }] : []
  return encode({ id: o.id ?? 4242, flags: o.flags ?? FLAG.RD, questions: [{ name, type, class: o.klass ?? CLASS.IN }], answers: [], authorities: [], additionals })
}

/** Local answers come synchronously; this asserts at most one reply and returns it. */
function askSync(s: DnsServer, net: string, network: DnsNetwork, q: Uint8Array, transport: 'udp' | 'tcp' = 'udp'): Uint8Array | null {
  const replies: Uint8Array[] = []
  s.handle(net, network, q, transport, (a) => replies.push(a))
  if (replies.length > 1) throw new Error('replied twice')
  return replies[0] ?? null
}

function answer(s: DnsServer, net: string, network: DnsNetwork, q: Uint8Array, transport: 'udp' | 'tcp' = 'udp'): DnsMessage {
  const r = askSync(s, net, network, q, transport)
  if (!r) throw new Error('no reply')
  return decode(r)
}

const PUBLIC: DnsNetwork = { internal: false }

function setup(): { records: DnsRecords; server: DnsServer } {
  const records = new DnsRecords()
  records.set('n1', 'e1', ['web1', 'web'], '10.0.0.2', 'fd00::2')
  records.set('n1', 'e2', ['web2', 'web'], '10.0.0.3')
  records.set('n1', 'e3', ['db'], '10.0.0.4')
  records.set('n2', 'e4', ['secret'], '10.9.0.2')
  // No upstreams: anything not local answers SERVFAIL at once, no sockets in this file.
  const server = new DnsServer({ records, upstreams: [] })
  return { records, server }
}

t.test('A and AAAA for names and aliases, TTL 600, AA, question echoed', async (t) => {
  const { server } = setup()
  const m = answer(server, 'n1', PUBLIC, query('web1', TYPE.A, { id: 77 }))
  t.equal(m.id, 77)
  t.equal(rcodeOf(m.flags), RCODE.NOERROR)
  t.ok(m.flags & FLAG.QR && m.flags & FLAG.AA && m.flags & FLAG.RD && m.flags & FLAG.RA)
  t.same(m.questions, [{ name: 'web1', type: TYPE.A, class: CLASS.IN }])
  t.same(m.answers, [{ name: 'web1', type: TYPE.A, class: CLASS.IN, ttl: LOCAL_TTL, data: '10.0.0.2' }])
  t.same(answer(server, 'n1', PUBLIC, query('web1', TYPE.AAAA)).answers.map((r) => r.data), ['fd00::2'])
  t.same(answer(server, 'n1', PUBLIC, query('web', TYPE.ANY)).answers.length, 3, 'ANY: A and AAAA')
  t.equal(server.counters.answeredLocal, 3)
  t.equal(server.counters.queries, 3)
})

t.test('a shared name answers every endpoint, rotated on each query', async (t) => {
  const { server } = setup()
  const order = (): unknown[] => answer(server, 'n1', PUBLIC, query('web', TYPE.A)).answers.map((r) => r.data)
  const first = order()
  t.same([...first].sort(), ['10.0.0.2', '10.0.0.3'])
  const second = order()
  t.same(second, [first[1], first[0]])
  t.same(order(), first)
})

t.test('a name without the asked type: NOERROR and no answers, never NXDOMAIN', async (t) => {
  const { server } = setup()
  for (const type of [TYPE.AAAA, TYPE.MX, TYPE.TXT, TYPE.CNAME, TYPE.SRV]) {
    const m = answer(server, 'n1', PUBLIC, query('web2', type))
    t.equal(rcodeOf(m.flags), RCODE.NOERROR, `type ${type}`)
    t.equal(m.answers.length, 0)
  }
})

t.test('names are case-insensitive, trailing dot optional, search domain honoured', async (t) => {
  const { server } = setup()
  const dom: DnsNetwork = { internal: false, domain: 'Corp.Example.' }
  t.same(answer(server, 'n1', PUBLIC, query('DB', TYPE.A)).answers.map((r) => r.data), ['10.0.0.4'])
  t.same(answer(server, 'n1', PUBLIC, query('db.', TYPE.A)).answers.map((r) => r.data), ['10.0.0.4'])
  const m = answer(server, 'n1', dom, query('dB.corp.EXAMPLE', TYPE.A))
  t.same(m.answers.map((r) => r.data), ['10.0.0.4'])
  t.equal(m.questions[0].name, 'dB.corp.EXAMPLE', "the client's spelling is echoed")
  t.equal(rcodeOf(answer(server, 'n1', PUBLIC, query('db.corp.example', TYPE.A)).flags), RCODE.SERVFAIL, 'no domain on the network: not local')
})

t.test('PTR answers, with the domain when the network has one', async (t) => {
  const { server } = setup()
  const m = answer(server, 'n1', PUBLIC, query('4.0.0.10.in-addr.arpa', TYPE.PTR))
  t.same(m.answers, [{ name: '4.0.0.10.in-addr.arpa', type: TYPE.PTR, class: CLASS.IN, ttl: LOCAL_TTL, data: 'db' }])
  const v6 = '2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.IP6.ARPA.'
  t.same(answer(server, 'n1', { internal: false, domain: 'corp.example' }, query(v6, TYPE.PTR)).answers.map((r) => r.data), ['web1.corp.example'])
  t.equal(rcodeOf(answer(server, 'n1', PUBLIC, query('9.9.9.10.in-addr.arpa', TYPE.PTR)).flags), RCODE.SERVFAIL, 'unknown address: not local')
})

t.test('network isolation: a name on another network is not visible', async (t) => {
  const { server } = setup()
  const internal: DnsNetwork = { internal: true }
  t.equal(rcodeOf(answer(server, 'n1', internal, query('secret', TYPE.A)).flags), RCODE.SERVFAIL)
  t.equal(rcodeOf(answer(server, 'n1', internal, query('2.0.9.10.in-addr.arpa', TYPE.PTR)).flags), RCODE.SERVFAIL)
  t.same(answer(server, 'n2', internal, query('secret', TYPE.A)).answers.map((r) => r.data), ['10.9.0.2'])
  t.equal(rcodeOf(answer(server, 'n2', internal, query('web', TYPE.A)).flags), RCODE.SERVFAIL)
})

t.test('internal network: local names answered, the rest SERVFAIL without forwarding', async (t) => {
  const records = new DnsRecords()
  records.set('n', 'e', ['app'], '10.0.0.2')
  // An upstream that nobody listens on: a forward would leave a socket and no sync reply.
  const server = new DnsServer({ records, upstreams: [{ host: '127.0.0.1', port: 9 }] })
  t.teardown(() => server.close())
  const internal: DnsNetwork = { internal: true }
  t.same(answer(server, 'n', internal, query('app', TYPE.A)).answers.map((r) => r.data), ['10.0.0.2'])
  const m = answer(server, 'n', internal, query('example.com', TYPE.A))
  t.equal(rcodeOf(m.flags), RCODE.SERVFAIL)
  t.equal(server.counters.forwarded, 0)
  t.equal(server.forwardsInFlight, 0)
  t.equal(server.counters.servfail, 1)
})

t.test('truncation: 40 addresses over UDP at 512 set TC; over TCP all come', async (t) => {
  const records = new DnsRecords()
  for (let i = 0; i < 40; i++) records.set('n', `e${i}`, [`m${i}`, 'many'], `10.0.1.${i + 1}`)
  const server = new DnsServer({ records, upstreams: [] })
  const udp = askSync(server, 'n', PUBLIC, query('many', TYPE.A))
  if (!udp) throw new Error('no reply')
  t.ok(udp.length <= 512, `udp answer ${udp.length} bytes`)
  const u = decode(udp)
  t.ok(u.flags & FLAG.TC, 'TC set')
  t.ok(u.answers.length > 0 && u.answers.length < 40, `${u.answers.length} whole records kept`)
  t.same(u.questions[0].name, 'many')
  const tcp = answer(server, 'n', PUBLIC, query('many', TYPE.A), 'tcp')
  t.notOk(tcp.flags & FLAG.TC)
  t.equal(tcp.answers.length, 40)
  t.equal(new Set(tcp.answers.map((r) => r.data)).size, 40)
  // Compression: each answer is pointer (2) + 10 + 4 bytes.
  const raw = askSync(server, 'n', PUBLIC, query('many', TYPE.A), 'tcp')
  t.equal(raw?.length, 12 + 6 + 4 + 40 * 16)
})

t.test('EDNS0 payload size is honoured (and capped at 4096), OPT echoed', async (t) => {
  const records = new DnsRecords()
  for (let i = 0; i < 300; i++) records.set('n', `e${i}`, ['lots'], `10.0.${i >> 8}.${i & 0xff}`)
  const server = new DnsServer({ records, upstreams: [] })
  const sizes: [number, number][] = [
    [1232, 1232],
    [4096, 4096],
    [65000, 4096],
    [100, 512],
  ]
  for (const [asked, limit] of sizes) {
    const r = askSync(server, 'n', PUBLIC, query('lots', TYPE.A, { edns: asked }))
    if (!r) throw new Error('no reply')
    t.ok(r.length <= limit && r.length > limit - 16 - 1, `asked ${asked}: ${r.length} bytes within ${limit}`)
    const m = decode(r)
    t.ok(m.flags & FLAG.TC)
    t.equal(m.additionals.at(-1)?.type, TYPE.OPT)
  }
  const small = decode(askSync(server, 'n', PUBLIC, query('lots', TYPE.A)) ?? new Uint8Array(0))
  t.equal(small.additionals.length, 0, 'no OPT for a client without EDNS')
})

t.test('malformed queries: FORMERR, NOTIMP or a counted drop, never a throw', async (t) => {
  const { server } = setup()
  const good = query('web', TYPE.A)
  const mutate = (f: (b: Uint8Array) => void, from = good): Uint8Array => {
    const b = from.slice()
    f(b)
    return b
  }
  const rcode = (q: Uint8Array): number | 'none' => {
    const r = askSync(server, 'n1', PUBLIC, q)
    return r ? rcodeOf(decode(r).flags) : 'none'
  }
  t.equal(rcode(new Uint8Array(0)), 'none', 'empty')
  t.equal(rcode(good.subarray(0, 11)), 'none', 'short header')
  t.equal(rcode(mutate((b) => (b[2] |= 0x80))), 'none', 'QR set')
  t.equal(server.counters.dropped, 3)
  t.equal(rcode(good.subarray(0, good.length - 1)), RCODE.FORMERR, 'truncated question')
  t.equal(rcode(mutate((b) => (b[12] = 0x40))), RCODE.FORMERR, 'label over 63')
  t.equal(rcode(mutate((b) => (b[5] = 2))), RCODE.FORMERR, 'qdcount 2')
  t.equal(rcode(mutate((b) => (b[5] = 0))), RCODE.FORMERR, 'qdcount 0')
  t.equal(rcode(mutate((b) => (b[7] = 1))), RCODE.FORMERR, 'ancount with no records')
  const loop = new Uint8Array([...good.subarray(0, 12), 0xc0, 12, 0, 1, 0, 1])
  t.equal(rcode(loop), RCODE.FORMERR, 'compression loop')
  const fwd = new Uint8Array([...good.subarray(0, 12), 0xc0, 0x40, 0, 1, 0, 1])
  t.equal(rcode(fwd), RCODE.FORMERR, 'pointer forward / out of bounds')
  const longName = query(Array(4).fill('a'.repeat(63)).join('.').slice(0, 250), TYPE.A)
  t.equal(rcode(longName), RCODE.SERVFAIL, 'a 250-character name is fine (forwarded; no upstreams)')
  const tooLong = new Uint8Array([...good.subarray(0, 12), ...Array(5).fill([63, ...Array(63).fill(97)]).flat(), 0, 0, 1, 0, 1])
  t.equal(rcode(tooLong), RCODE.FORMERR, 'name over 255')
  t.equal(rcode(mutate((b) => (b[2] = (b[2] & 0x87) | (2 << 3)))), RCODE.NOTIMP, 'opcode STATUS')
  t.equal(rcode(query('example.com', TYPE.AXFR)), RCODE.NOTIMP, 'AXFR')
  t.equal(rcode(query('web', TYPE.A, { edns: 1232 }).map((v, i, a) => (i === a.length - 5 ? 1 : v))), RCODE.NOERROR, 'EDNS version 1: BADVERS (low bits 0)')
  t.equal(server.counters.formerr, 9)
  t.equal(server.counters.notimp, 2)
  const formerr = decode(askSync(server, 'n1', PUBLIC, mutate((b) => (b[7] = 1))) ?? new Uint8Array(0))
  t.equal(formerr.id, 4242)
  t.ok(formerr.flags & FLAG.QR)
})

t.test('after close, queries are dropped', async (t) => {
  const { server } = setup()
  server.close()
  t.equal(askSync(server, 'n1', PUBLIC, query('web', TYPE.A)), null)
  t.equal(server.counters.dropped, 1)
})
