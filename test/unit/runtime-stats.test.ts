import t from 'tap'
import { RuntimeMonitor } from '../../src/daemon/runtime-stats.js'

// Lets the observer's entries arrive: Node hands them over after the collection, asynchronously.
const settle = () => new Promise((r) => setTimeout(r, 50))

t.test('counts young-generation collections, and stops counting when stopped', async (t) => {
  const m = new RuntimeMonitor()
  m.start()
  t.teardown(() => m.stop())
  const before = m.stats()
  t.ok(before.rssBytes > 0 && before.heapUsedBytes > 0 && before.heapTotalBytes >= before.heapUsedBytes, 'memory figures')
  let keep: unknown[] = []
  // Short-lived objects, far more than a young generation holds: scavenges, not full collections.
  for (let i = 0; i < 2_000_000; i++) keep = [i, keep.length]
  await settle()
  const mid = m.stats()
  t.ok(mid.gc.minor > before.gc.minor, `young collections counted (${before.gc.minor} -> ${mid.gc.minor})`)
  t.ok(mid.gc.pauseMs > before.gc.pauseMs, 'their pauses summed')
  m.stop()
  for (let i = 0; i < 2_000_000; i++) keep = [i, keep.length]
  await settle()
  t.equal(m.stats().gc.minor, mid.gc.minor, 'a stopped monitor counts nothing more')
})
