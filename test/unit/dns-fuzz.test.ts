import t from 'tap'
import { prng } from '../helpers/packet-fuzz.js'
import { CLASS, DnsFormatError, FLAG, RCODE, TYPE, decode, decrementTtls, encode, parseQuery, rcodeOf, removeOpt, truncate, type DnsRecord } from '../../src/gateway/dns/codec.js'
import { cacheTtl } from '../../src/gateway/dns/forwarder.js'
import { DnsRecords } from '../../src/gateway/dns/records.js'
import { DnsServer, type DnsNetwork } from '../../src/gateway/dns/server.js'


const SEED = 0x5eed1234
const rand = prng(SEED)
const int = (n: number): number => Math.floor(rand() * n)

function query(name: string, type: number, edns: number): Uint8Array {
  const additionals: DnsRecord[] = edns ? [{ name: '', type: TYPE.OPT, class: edns, ttl: 0, data: new Uint8Array([0, 10, 0, 2, 1, 2]) }] : []
  return encode({ id: int(65536), flags: FLAG.RD, questions: [{ name, type, class: CLASS.IN }], answers: [], authorities: [], additionals })
}

const seeds: Uint8Array[] = [
  query('web', TYPE.A, 0),
  query('WEB.corp.example', TYPE.AAAA, 1232),
  query('many', TYPE.A, 0),
  query('2.0.0.10.in-addr.arpa', TYPE.PTR, 4096),
  query('example.com', TYPE.MX, 0),
  query('a.b.c.d.e.f.example', TYPE.TXT, 512),
  // An answer-shaped message with pointers, to give mutations something to bend.
  encode({
    id: 1,
    flags: FLAG.QR,
    questions: [{ name: 'x.example', type: TYPE.A, class: CLASS.IN }],
    answers: [
      { name: 'x.example', type: TYPE.CNAME, class: CLASS.IN, ttl: 5, data: 'y.x.example' },
      { name: 'y.x.example', type: TYPE.A, class: CLASS.IN, ttl: 5, data: '10.0.0.1' },
    ],
    authorities: [{ name: 'example', type: TYPE.SOA, class: CLASS.IN, ttl: 5, data: { mname: 'ns.example', rname: 'h.example', serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5 } }],
    additionals: [{ name: '', type: TYPE.OPT, class: 1232, ttl: 0, data: new Uint8Array(0) }],
  }),
]

function mutate(src: Uint8Array): Uint8Array {
  let b = src.slice()
  const rounds = 1 + int(4)
  for (let r = 0; r < rounds; r++) {
    switch (int(8)) {
      case 0: // flip a bit
        if (b.length) b[int(b.length)] ^= 1 << int(8)
        break
      case 1: // set a byte
        if (b.length) b[int(b.length)] = int(256)
        break
      case 2: // cut the tail
        b = b.subarray(0, int(b.length + 1)).slice()
        break
      case 3: {
        // plant a compression pointer anywhere, pointing anywhere
        if (b.length > 2) {
          const at = int(b.length - 1)
          b[at] = 0xc0 | int(4)
          b[at + 1] = int(256)
        }
        break
      }
      case 4: // bend a count
        if (b.length >= 12) b[4 + int(8)] = int(4)
        break
      case 5: {
        // append junk
        const junk = new Uint8Array(int(40))
        for (let i = 0; i < junk.length; i++) junk[i] = int(256)
        const n = new Uint8Array(b.length + junk.length)
        n.set(b)
        n.set(junk, b.length)
        b = n
        break
      }
      case 6: // make a label length lie
        if (b.length > 12) b[12 + int(b.length - 12)] = int(64) | (int(4) << 6)
        break
      case 7: // flip header flag bits (QR, opcode, TC, ...)
        if (b.length >= 4) b[2 + int(2)] ^= 1 << int(8)
        break
    }
  }
  return b
}

function randomBytes(): Uint8Array {
  const b = new Uint8Array(int(600))
  for (let i = 0; i < b.length; i++) b[i] = int(256)
  return b
}

t.test(`fuzz the server with random and mutated queries (seed ${SEED})`, async (t) => {
  const records = new DnsRecords()
  records.set('n', 'e1', ['web'], '10.0.0.2', 'fd00::2')
  for (let i = 0; i < 50; i++) records.set('n', `m${i}`, ['many'], `10.0.1.${i}`)
  const failures: string[] = []
  const server = new DnsServer({
    records,
    upstreams: [], // nothing is forwarded: every reply is synchronous and no socket opens
    log: { debug: () => {}, warn: (msg) => failures.push(msg) },
  })
  t.teardown(() => server.close())
  const networks: DnsNetwork[] = [{ internal: true, domain: 'corp.example' }, { internal: false }]
  const allowed = new Set<number>([RCODE.NOERROR, RCODE.FORMERR, RCODE.SERVFAIL, RCODE.NOTIMP, RCODE.REFUSED, 0 /* BADVERS low bits */])
  let replied = 0
  let silent = 0
  const total = 6000
  for (let i = 0; i < total; i++) {
    const input = i % 3 === 0 ? randomBytes() : mutate(seeds[int(seeds.length)])
    const replies: Uint8Array[] = []
    server.handle('n', networks[i & 1], input, i % 5 === 0 ? 'tcp' : 'udp', (a) => replies.push(a))
    if (replies.length > 1) failures.push(`#${i}: two replies`)
    if (replies.length === 0) {
      silent++
      continue
    }
    replied++
    const reply = replies[0]
    try {
      const m = decode(reply)
      if (!(m.flags & FLAG.QR)) failures.push(`#${i}: reply without QR`)
      if (m.id !== ((input[0] << 8) | input[1])) failures.push(`#${i}: reply ID differs`)
      if (!allowed.has(rcodeOf(m.flags))) failures.push(`#${i}: rcode ${rcodeOf(m.flags)}`)
      if (i % 5 !== 0 && reply.length > 4096) failures.push(`#${i}: UDP reply of ${reply.length} bytes`)
    } catch (e) {
      failures.push(`#${i}: reply does not decode: ${(e as Error).message} (input ${Buffer.from(input).toString('hex')})`)
    }
  }
  t.comment(JSON.stringify(server.counters))
  t.same(failures.slice(0, 5), [], 'no failures')
  t.equal(server.counters.queries, total)
  t.equal(replied + silent, total)
  t.equal(silent, server.counters.dropped, 'every silent query is a counted drop')
  t.ok(server.counters.formerr > 100, `formerr ${server.counters.formerr}`)
  t.ok(server.counters.answeredLocal > 10, `answered ${server.counters.answeredLocal}`)
})

t.test('fuzz the wire functions used on upstream answers', async (t) => {
  const unexpected: string[] = []
  for (let i = 0; i < 4000; i++) {
    const b = i % 2 ? randomBytes() : mutate(seeds[int(seeds.length)])
    try {
      parseQuery(b)
      cacheTtl(b)
      decrementTtls(b.slice(), int(100))
      const r = removeOpt(b)
      const cut = truncate(r, 12 + int(600))
      if (cut && cut.length > 612) unexpected.push(`#${i}: cut to ${cut.length}`)
      decode(b)
    } catch (e) {
      if (!(e instanceof DnsFormatError)) unexpected.push(`#${i}: ${(e as Error).stack ?? String(e)}`)
    }
  }
  t.same(unexpected.slice(0, 5), [])
})
