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
