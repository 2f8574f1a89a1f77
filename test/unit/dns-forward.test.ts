import t, { type Test } from 'tap'
import { CLASS, FLAG, RCODE, TYPE, decode, encode, rcodeOf, type DnsMessage, type DnsRecord } from '../../src/gateway/dns/codec.js'
import { DnsRecords } from '../../src/gateway/dns/records.js'
import { DnsServer, type DnsNetwork } from '../../src/gateway/dns/server.js'
import { cacheTtl } from '../../src/gateway/dns/forwarder.js'
import { FakeUpstream } from '../helpers/fake-dns.js'

function query(name: string, type: number = TYPE.A, id = 1000, edns = 0): Uint8Array {
  const additionals: DnsRecord[] = edns ? [{ name: '', type: TYPE.OPT, class: edns, ttl: 0, data: new Uint8Array(0) }] : []
  return encode({ id, flags: FLAG.RD, questions: [{ name, type, class: CLASS.IN }], answers: [], authorities: [], additionals })
}

/** The reply to one query (null if none within waitMs); fails the test on a second reply. */
function ask(s: DnsServer, network: DnsNetwork, q: Uint8Array, transport: 'udp' | 'tcp' = 'udp', waitMs = 4000): Promise<Uint8Array | null> {
  return new Promise((resolve, reject) => {
    let replies = 0
    const timer = setTimeout(() => resolve(null), waitMs)
    s.handle('n', network, q, transport, (a) => {
      if (++replies > 1) return reject(new Error('replied twice'))
      clearTimeout(timer)
      resolve(a)
    })
  })
}

async function askMsg(s: DnsServer, network: DnsNetwork, q: Uint8Array, transport: 'udp' | 'tcp' = 'udp'): Promise<DnsMessage> {
  const r = await ask(s, network, q, transport)
  if (!r) throw new Error('no reply')
  return decode(r)
}

const PUBLIC: DnsNetwork = { internal: false }
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function fixture(t: Test, n = 2, opts: { maxInFlight?: number; timeoutMs?: number } = {}): Promise<{ ups: FakeUpstream[]; server: DnsServer; records: DnsRecords }> {
  const ups: FakeUpstream[] = []
  for (let i = 0; i < n; i++) ups.push(await FakeUpstream.start())
  const records = new DnsRecords()
  records.set('n', 'e1', ['local'], '10.99.0.2')
  const server = new DnsServer({ records, upstreams: ups.map((u) => u.upstream), timeoutMs: opts.timeoutMs ?? 250, maxInFlight: opts.maxInFlight })
  t.teardown(async () => {
    server.close()
    for (const u of ups) await u.close()
  })
  return { ups, server, records }
}

t.test('forwards, relays with the client ID, and caches', async (t) => {
  const { ups, server } = await fixture(t)
  const m = await askMsg(server, PUBLIC, query('www.example', TYPE.A, 1111))
  t.equal(m.id, 1111)
  t.equal(rcodeOf(m.flags), RCODE.NOERROR)
  t.same(m.answers.map((r) => r.data), ['10.0.0.0'])
  t.equal(ups[0].queries, 1)
  t.equal(ups[1].queries, 0)
  const again = await askMsg(server, PUBLIC, query('WWW.Example.', TYPE.A, 2222))
  t.equal(again.id, 2222)
  t.equal(again.questions[0].name, 'WWW.Example', "the second client's spelling")
  t.same(again.answers.map((r) => r.data), ['10.0.0.0'])
  t.equal(ups[0].queries, 1, 'cache hit: upstream not asked again')
  t.equal(server.counters.cacheHits, 1)
  t.equal(server.counters.forwarded, 1)
  // A different type is a different key.
  await askMsg(server, PUBLIC, query('www.example', TYPE.AAAA))
  t.equal(ups[0].queries, 2)
  t.equal(server.cacheSize, 2)
  // Local names never go upstream.
  t.same((await askMsg(server, PUBLIC, query('local'))).answers.map((r) => r.data), ['10.99.0.2'])
  t.equal(ups[0].queries, 2)
})

t.test('failover: silent, SERVFAIL or REFUSED upstreams make way for the next', async (t) => {
  for (const mode of ['silent', 'servfail', 'refused'] as const) {
    const { ups, server } = await fixture(t)
    ups[0].mode = mode
    const m = await askMsg(server, PUBLIC, query(`${mode}.example`))
    t.equal(rcodeOf(m.flags), RCODE.NOERROR, mode)
    t.equal(m.answers.length, 1)
    t.equal(ups[0].queries, 1)
    t.equal(ups[1].queries, 1)
  }
})

t.test('all upstreams failing: SERVFAIL; recovery once one comes back', async (t) => {
  const { ups, server } = await fixture(t)
  ups[0].mode = 'silent'
  ups[1].mode = 'servfail'
  const started = performance.now()
  const m = await askMsg(server, PUBLIC, query('down.example', TYPE.A, 7))
  t.equal(rcodeOf(m.flags), RCODE.SERVFAIL)
  t.equal(m.id, 7)
  t.ok(performance.now() - started < 2000, 'bounded by the per-upstream timeout')
  t.equal(server.counters.servfail, 1)
  ups[0].mode = 'answer'
  const back = await askMsg(server, PUBLIC, query('down.example'))
  t.equal(rcodeOf(back.flags), RCODE.NOERROR, 'failures are not cached')
  t.equal(back.answers.length, 1)
})

t.test('TTLs: a short TTL expires, a long one is served aged', async (t) => {
  const { ups, server } = await fixture(t, 1)
  ups[0].ttl = 1
  await askMsg(server, PUBLIC, query('short.example'))
  ups[0].ttl = 300
  await askMsg(server, PUBLIC, query('long.example'))
  await askMsg(server, PUBLIC, query('short.example'))
  t.equal(ups[0].queries, 2, 'both cached')
  await sleep(1200)
  const short = await askMsg(server, PUBLIC, query('short.example'))
  t.equal(ups[0].queries, 3, 'short TTL expired: asked again')
  t.equal(short.answers[0].ttl, 300, 'fresh answer')
  const long = await askMsg(server, PUBLIC, query('long.example'))
  t.equal(ups[0].queries, 3)
  t.equal(long.answers[0].ttl, 299, 'TTL lowered by the time spent in the cache')
})

t.test('negative answers are cached by the SOA minimum, TTL 0 is not cached', async (t) => {
  const { ups, server } = await fixture(t, 1)
  ups[0].mode = 'nxdomain'
  ups[0].ttl = 60
  t.equal(rcodeOf((await askMsg(server, PUBLIC, query('nope.example'))).flags), RCODE.NXDOMAIN)
  t.equal(rcodeOf((await askMsg(server, PUBLIC, query('nope.example'))).flags), RCODE.NXDOMAIN)
  t.equal(ups[0].queries, 1)
  ups[0].mode = 'answer'
  ups[0].ttl = 0
  await askMsg(server, PUBLIC, query('zero.example'))
  await askMsg(server, PUBLIC, query('zero.example'))
  t.equal(ups[0].queries, 3)
  t.equal(cacheTtl(encode({ id: 1, flags: FLAG.QR | RCODE.SERVFAIL, questions: [], answers: [], authorities: [], additionals: [] })), 0)
})

t.test('in-flight limit: beyond it, REFUSED at once', async (t) => {
  const { ups, server } = await fixture(t, 1, { maxInFlight: 2, timeoutMs: 300 })
  ups[0].mode = 'silent'
  const a = ask(server, PUBLIC, query('a.example'))
  const b = ask(server, PUBLIC, query('b.example'))
  t.equal(server.forwardsInFlight, 2)
  let refused: Uint8Array | null = null
  server.handle('n', PUBLIC, query('c.example', TYPE.A, 33), 'udp', (r) => (refused = r))
  if (!refused) throw new Error('REFUSED should be synchronous')
  const r = decode(refused)
  t.equal(rcodeOf(r.flags), RCODE.REFUSED)
  t.equal(r.id, 33)
  t.equal(server.counters.refused, 1)
  t.equal(rcodeOf(decode((await a) ?? new Uint8Array(0)).flags), RCODE.SERVFAIL)
  t.equal(rcodeOf(decode((await b) ?? new Uint8Array(0)).flags), RCODE.SERVFAIL)
  t.equal(server.forwardsInFlight, 0)
})

t.test('a truncated UDP answer is fetched again over TCP', async (t) => {
  const { ups, server } = await fixture(t, 1)
  ups[0].mode = 'truncate'
  ups[0].count = 3
  const m = await askMsg(server, PUBLIC, query('tc.example'))
  t.notOk(m.flags & FLAG.TC)
  t.equal(m.answers.length, 3)
  t.equal(ups[0].udpQueries, 1)
  t.equal(ups[0].tcpQueries, 1)
})

t.test('a big answer: UDP client gets TC within 512, its TCP retry gets it all', async (t) => {
  const { ups, server } = await fixture(t, 1)
  ups[0].count = 60 // 60 * 16 bytes: over 512 without EDNS, so the upstream's UDP answer is big
  const raw = await ask(server, PUBLIC, query('big.example'))
  if (!raw) throw new Error('no reply')
  t.ok(raw.length <= 512, `${raw.length} bytes`)
  const u = decode(raw)
  t.ok(u.flags & FLAG.TC)
  t.ok(u.answers.length < 60)
  const tcp = await askMsg(server, PUBLIC, query('big.example'), 'tcp')
  t.equal(tcp.answers.length, 60)
  t.notOk(tcp.flags & FLAG.TC)
  t.equal(server.counters.cacheHits, 1, 'the TCP retry came from the cache')
})

t.test('a client over TCP is forwarded over TCP', async (t) => {
  const { ups, server } = await fixture(t, 1)
  const m = await askMsg(server, PUBLIC, query('tcp.example'), 'tcp')
  t.equal(m.answers.length, 1)
  t.equal(ups[0].tcpQueries, 1)
  t.equal(ups[0].udpQueries, 0)
})

t.test('EDNS: OPT relayed to EDNS clients; from the cache, stripped or replaced by ours', async (t) => {
  const { server } = await fixture(t, 1)
  // Client A sends a COOKIE option (code 10); the fake upstream echoes the OPT as is.
  const cookieA = new Uint8Array([0, 10, 0, 8, 1, 1, 1, 1, 1, 1, 1, 1])
  const withCookie = encode({
    id: 5,
    flags: FLAG.RD,
    questions: [{ name: 'edns.example', type: TYPE.A, class: CLASS.IN }],
    answers: [],
    authorities: [],
    additionals: [{ name: '', type: TYPE.OPT, class: 1232, ttl: 0, data: cookieA }],
  })
  const e = await askMsg(server, PUBLIC, withCookie)
  t.same(e.additionals.at(-1)?.data, cookieA, 'direct relay: the client gets its own cookie back')
  const plain = await askMsg(server, PUBLIC, query('edns.example'))
  t.equal(plain.additionals.length, 0, 'no OPT for a client without EDNS')
  const other = await askMsg(server, PUBLIC, query('edns.example', TYPE.A, 6, 4096))
  t.equal(other.additionals.length, 1)
  t.equal(other.additionals[0].type, TYPE.OPT)
  t.same(other.additionals[0].data, new Uint8Array(0), "never another client's cookie")
  t.equal(server.counters.cacheHits, 2)
})

t.test('per-network upstreams replace the default ones, with their own cache entries', async (t) => {
  const { ups, server } = await fixture(t, 2)
  const own: DnsNetwork = { internal: false, upstreams: [ups[1].upstream] }
  await askMsg(server, own, query('split.example'))
  t.equal(ups[0].queries, 0)
  t.equal(ups[1].queries, 1)
  await askMsg(server, PUBLIC, query('split.example'))
  t.equal(ups[0].queries, 1, 'not served from the other view')
})

t.test('internal networks never forward', async (t) => {
  const { ups, server } = await fixture(t, 1)
  const m = await askMsg(server, { internal: true }, query('www.example'))
  t.equal(rcodeOf(m.flags), RCODE.SERVFAIL)
  t.equal(ups[0].queries, 0)
  t.equal(server.counters.forwarded, 0)
})

t.test('close aborts forwards in flight without replying', async (t) => {
  const { ups, server } = await fixture(t, 1, { timeoutMs: 5000 })
  ups[0].mode = 'silent'
  const pending = ask(server, PUBLIC, query('hang.example'), 'udp', 500)
  await sleep(50)
  server.close()
  t.equal(await pending, null)
  await sleep(10)
  t.equal(server.forwardsInFlight, 0)
})
