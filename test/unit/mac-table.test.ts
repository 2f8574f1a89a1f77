import t from 'tap'
import { LEARN_KNOWN, LEARN_MOVED, LEARN_NEW, LEARN_REFUSED, MacTable } from '../../src/switch/mac-table.js'

const M = (n: number) => 0x020000000000 + n

t.test('learns, looks up, and keeps networks apart', async (t) => {
  const fdb = new MacTable()
  t.equal(fdb.learn(0, M(1), 3, 0), LEARN_NEW)
  t.equal(fdb.learn(0, M(1), 3, 10), LEARN_KNOWN)
  t.equal(fdb.lookup(0, M(1), 10), 3)
  t.equal(fdb.lookup(1, M(1), 10), -1, 'same MAC on another network is unknown')
  t.equal(fdb.learn(1, M(1), 7, 10), LEARN_NEW)
  t.equal(fdb.lookup(1, M(1), 10), 7)
  t.equal(fdb.lookup(0, M(1), 10), 3)
  t.equal(fdb.count, 2)
})

t.test('a MAC move re-points the entry', async (t) => {
  const fdb = new MacTable()
  fdb.learn(0, M(1), 1, 0)
  t.equal(fdb.learn(0, M(1), 2, 5), LEARN_MOVED)
  t.equal(fdb.lookup(0, M(1), 5), 2)
  t.equal(fdb.countOnPort(1), 0)
  t.equal(fdb.countOnPort(2), 1)
  t.equal(fdb.stats.moved, 1)
})

t.test('aging forgets entries not refreshed within the aging time', async (t) => {
  const fdb = new MacTable({ agingMs: 300_000 })
  fdb.learn(0, M(1), 1, 0)
  fdb.learn(0, M(2), 1, 0)
  fdb.learn(0, M(2), 1, 200_000) // refreshed
  t.equal(fdb.lookup(0, M(1), 299_999), 1)
  t.equal(fdb.age(300_001), 1, 'one entry aged out')
  t.equal(fdb.lookup(0, M(1), 300_001), -1)
  t.equal(fdb.lookup(0, M(2), 300_001), 1, 'the refreshed one stays')
  t.equal(fdb.lookup(0, M(2), 500_001), -1, 'lookup itself treats stale entries as unknown')
  t.equal(fdb.count, 0)
})

t.test('aging is configurable', async (t) => {
  const fdb = new MacTable({ agingMs: 10_000 })
  fdb.learn(0, M(1), 1, 0)
  t.equal(fdb.lookup(0, M(1), 10_001), -1)
})

t.test('a port at its limit learns nothing new and evicts nobody', async (t) => {
  const fdb = new MacTable({ portLimit: 4, capacity: 100 })
  fdb.learn(0, M(100), 1, 0) // a known host on another port
  for (let i = 0; i < 4; i++) t.equal(fdb.learn(0, M(i), 2, 0), LEARN_NEW)
  for (let i = 4; i < 1000; i++) t.equal(fdb.learn(0, M(i), 2, 1), LEARN_REFUSED)
  t.equal(fdb.countOnPort(2), 4)
  t.equal(fdb.lookup(0, M(100), 1), 1, 'the other port’s host is untouched')
  t.equal(fdb.lookup(0, M(0), 1), 2, 'the flooding port’s first hosts are kept too')
  t.equal(fdb.stats.refused, 996)
  t.equal(fdb.learn(0, M(5000), 2, 300_002), LEARN_NEW, 'once an entry ages out, the port learns again')
})

t.test('a MAC moving onto a full port is refused', async (t) => {
  const fdb = new MacTable({ portLimit: 1 })
  fdb.learn(0, M(1), 1, 0)
  fdb.learn(0, M(2), 2, 0)
  t.equal(fdb.learn(0, M(2), 1, 1), LEARN_REFUSED)
  t.equal(fdb.lookup(0, M(2), 1), 2)
})

t.test('a full table evicts the oldest entry of the port with the most entries', async (t) => {
  const fdb = new MacTable({ capacity: 10, portLimit: 8 })
  fdb.learn(0, M(100), 1, 0)
  fdb.learn(0, M(101), 1, 0)
  for (let i = 0; i < 8; i++) fdb.learn(0, M(i), 2, i)
  t.equal(fdb.count, 10)
  fdb.learn(0, M(200), 3, 100)
  t.equal(fdb.count, 10)
  t.equal(fdb.lookup(0, M(0), 100), -1, 'oldest entry of port 2 (the fullest) went')
  t.equal(fdb.lookup(0, M(100), 100), 1, 'port 1 kept its hosts')
  t.equal(fdb.lookup(0, M(200), 100), 3)
  t.equal(fdb.stats.evicted, 1)
})

t.test('flushes by port, network and all; slots are reused', async (t) => {
  const fdb = new MacTable()
  for (let i = 0; i < 50; i++) fdb.learn(i % 2, M(i), i % 5, 0)
  t.equal(fdb.flushPort(0), 10)
  t.equal(fdb.flushNetwork(1), 20)
  t.equal(fdb.count, 20)
  t.equal(fdb.flushAll(), 20)
  t.equal(fdb.count, 0)
  for (let i = 0; i < 2000; i++) fdb.learn(0, M(i), 1, 0)
  t.equal(fdb.count, 2000, 'grows past the initial arrays')
  t.equal(fdb.entries(0).length, 2000)
})

t.test('rejects nonsense limits', async (t) => {
  t.throws(() => new MacTable({ capacity: 0 }), RangeError)
  t.throws(() => new MacTable({ portLimit: 0 }), RangeError)
})

t.test('static entries (remote endpoints) never age and are not moved by learning', async (t) => {
  const fdb = new MacTable({ agingMs: 1000 })
  fdb.learn(0, M(1), 1, 0)
  t.ok(fdb.pin(0, M(1), 9, 0), 'a learned entry is replaced by the static one')
  t.equal(fdb.lookup(0, M(1), 0), 9)
  t.equal(fdb.learn(0, M(1), 2, 10), LEARN_REFUSED, 'a spoofed source elsewhere does not move it')
  t.equal(fdb.learn(0, M(1), 9, 10), LEARN_KNOWN)
  fdb.learn(0, M(2), 9, 0)
  t.equal(fdb.age(5000), 1, 'the learned entry behind the same port ages')
  t.equal(fdb.lookup(0, M(1), 1_000_000), 9, 'the static one does not')
  t.same(fdb.entries(1_000_000).map((e) => ({ mac: e.mac, static: e.static })), [{ mac: M(1), static: true }])
  t.equal(fdb.flushNetwork(0, true), 0, 'a user flush keeps static entries')
  t.equal(fdb.unpin(0, M(2)), false, 'unpin of a MAC that is not static')
  t.equal(fdb.unpin(0, M(1)), true)
  t.equal(fdb.lookup(0, M(1), 0), -1)
  t.equal(fdb.count, 0)
  // A freed slot reused by a learned entry is not static.
  fdb.learn(0, M(3), 1, 0)
  t.equal(fdb.age(5000), 1)
})

t.test('a static entry at the head of a full port does not block aging of the rest', async (t) => {
  const fdb = new MacTable({ agingMs: 1000, portLimit: 2 })
  fdb.pin(0, M(1), 1, 0)
  fdb.learn(0, M(2), 1, 0)
  t.equal(fdb.learn(0, M(3), 1, 5000), LEARN_NEW, 'the stale learned entry makes room, the static one stays')
  t.equal(fdb.lookup(0, M(1), 5000), 1)
  t.equal(fdb.lookup(0, M(2), 5000), -1)
})

t.test('the hash index agrees with a plain Map through random learns, moves, ages and flushes', async (t) => {
  // Keys chosen to crowd the index: few distinct low halves, the same MACs on two networks.
  let seed = 12345
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    return (seed >>> 8) % n
  }
  const fdb = new MacTable({ capacity: 5000, portLimit: 5000, agingMs: 1000 })
  const model = new Map<string, { port: number; seen: number }>()
  const key = (net: number, mac: number) => `${net}/${mac}`
  let now = 0
  let mismatches = 0
  for (let step = 0; step < 30_000; step++) {
    now += rand(3)
    const net = rand(2)
    const mac = rand(16) * 0x1000000 + rand(8) * 0x10000 + rand(4)
    const op = rand(100)
    if (op < 70) {
      const port = rand(6)
      fdb.learn(net, mac, port, now)
      const m = model.get(key(net, mac))
      if (!m || now - m.seen > 1000) model.set(key(net, mac), { port, seen: now })
      else if (m.port !== port) model.set(key(net, mac), { port, seen: now })
      else if (now - m.seen >= 1000) m.seen = now
    } else if (op < 97) {
      const m = model.get(key(net, mac))
      const want = m && now - m.seen <= 1000 ? m.port : -1
      if (want === -1) model.delete(key(net, mac))
      if (fdb.lookup(net, mac, now) !== want) mismatches++
    } else if (op < 99) {
      const port = rand(6)
      fdb.flushPort(port)
      for (const [k, m] of model) if (m.port === port) model.delete(k)
    } else {
      fdb.flushNetwork(net)
      for (const k of [...model.keys()]) if (k.startsWith(`${net}/`)) model.delete(k)
    }
  }
  t.equal(mismatches, 0, 'every lookup answered as the model')
  // Whatever aged entries the model dropped lazily, every live one is found.
  let missing = 0
  for (const [k, m] of model) {
    const [net, mac] = k.split('/').map(Number)
    if (now - m.seen <= 1000 && fdb.lookup(net, mac, now) !== m.port) missing++
  }
  t.equal(missing, 0, 'every live entry is still in the index')
  t.ok(fdb.stats.learned > 1000 && fdb.stats.moved > 1000, `exercised: ${JSON.stringify(fdb.stats)}`)
})

t.test('MACs that differ only in one half, or only by network, are distinct entries', async (t) => {
  const fdb = new MacTable()
  const a = 0x020000000001
  const b = 0x030000000001 // same last three octets
  const c = 0x020000000101 // same first three
  fdb.learn(0, a, 1, 0)
  fdb.learn(0, b, 2, 0)
  fdb.learn(0, c, 3, 0)
  fdb.learn(5, a, 4, 0)
  t.same([fdb.lookup(0, a, 0), fdb.lookup(0, b, 0), fdb.lookup(0, c, 0), fdb.lookup(5, a, 0), fdb.lookup(1, a, 0)], [1, 2, 3, 4, -1])
  t.same(fdb.entries(0, 0).map((e) => e.mac).sort(), [a, c, b].sort(), 'entries give the MACs back whole')
  const frame = Uint8Array.of(0x03, 0, 0, 0, 0, 1)
  t.equal(fdb.lookupFrom(0, frame, 0), 2, 'a MAC read in place from a frame finds the same entry')
  t.equal(fdb.learnFrom(0, frame, 0, 2), LEARN_KNOWN)
  t.equal(fdb.learnFrom(0, Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xfe), 0, 2), LEARN_NEW, 'the highest MAC values fit')
  t.equal(fdb.lookup(0, 0xfffffffffffe, 0), 2)
})
