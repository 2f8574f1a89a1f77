import t from 'tap'
import {
  checksumAdjust16,
  checksumAdjust32,
  foldSum,
  internetChecksum,
  onesSum,
  pseudoHeaderSum,
} from '../../src/packet/checksum.js'
import { hex, prng } from '../helpers/packet-fuzz.js'

t.test('RFC 1071 section 3 example', async (t) => {
  const b = hex('0001 f203 f4f5 f6f7')
  t.equal(onesSum(b, 0, 8), 0xddf2)
  t.equal(internetChecksum(b, 0, 8), 0x220d)
})

t.test('odd length pads the last byte with zero', async (t) => {
  t.equal(onesSum(hex('0102 03'), 0, 3), 0x0402)
  t.equal(onesSum(hex('ff'), 0, 1), 0xff00)
  t.equal(onesSum(new Uint8Array(0), 0, 0), 0)
})

t.test('reads only the given range', async (t) => {
  const b = hex('ffff 0001 f203 f4f5 f6f7 ffff')
  t.equal(onesSum(b, 2, 8), 0xddf2)
})

t.test('foldSum folds any carry', async (t) => {
  t.equal(foldSum(0x1ffff), 0x0001)
  t.equal(foldSum(0xffff), 0xffff)
  t.equal(foldSum(0x3fffffffc), 0xffff)
})

t.test('a real IPv4 header checksums to 0xffff and recomputes to its field', async (t) => {
  // Captured: 10.77.0.2 > 10.77.0.1 ICMP, checksum 0xea0f.
  const h = hex('4500 002c 3c25 4000 4001 ea0f 0a4d 0002 0a4d 0001')
  t.equal(onesSum(h, 0, 20), 0xffff)
  h[10] = h[11] = 0
  t.equal(internetChecksum(h, 0, 20), 0xea0f)
})

t.test('pseudo-header sum of a captured UDP datagram', async (t) => {
  // 10.77.0.2:40000 > 10.77.0.1:5353 "switchyard", checksum 0x0dea.
  const u = hex('9c40 14e9 0012 0dea 7377 6974 6368 7961 7264')
  const src = 0x0a4d0002
  const dst = 0x0a4d0001
  t.equal(onesSum(u, 0, u.length, pseudoHeaderSum(src, dst, 17, u.length)), 0xffff)
  u[6] = u[7] = 0
  t.equal(internetChecksum(u, 0, u.length, pseudoHeaderSum(src, dst, 17, u.length)), 0x0dea)
  t.equal(pseudoHeaderSum(0xffffffff, 0xffffffff, 0xff, 0xffff) <= 0xffff, true)
})

t.test('incremental update (RFC 1624) agrees with recomputing', async (t) => {
  const rnd = prng(1624)
  for (let i = 0; i < 2000; i++) {
    const len = 2 + 2 * Math.floor(rnd() * 40)
    const b = new Uint8Array(len + 2)
    for (let j = 2; j < b.length; j++) b[j] = Math.floor(rnd() * 256)
    if (i % 10 === 0) b.fill(0, 2) // all-zero data: the -0/+0 corner
    const w = 2 + 2 * Math.floor(rnd() * (len / 2))
    const csum = internetChecksum(b, 2, len)
    b[0] = csum >>> 8
    b[1] = csum & 0xff
    const oldWord = (b[w] << 8) | b[w + 1]
    const newWord = i % 7 === 0 ? 0 : Math.floor(rnd() * 65536)
    b[w] = newWord >>> 8
    b[w + 1] = newWord & 0xff
    const adj = checksumAdjust16(csum, oldWord, newWord)
    b[0] = adj >>> 8
    b[1] = adj & 0xff
    if (onesSum(b, 0, b.length) !== 0xffff) {
      t.fail(`word ${w} ${oldWord} -> ${newWord}: adjusted ${adj} does not verify`)
      return
    }
  }
  t.pass('2000 random updates verify')
})

t.test('checksumAdjust32 follows a rewritten address', async (t) => {
  const h = hex('4500 002c 3c25 4000 4001 ea0f 0a4d 0002 0a4d 0001')
  const adj = checksumAdjust32(0xea0f, 0x0a4d0002, 0xc0a80164)
  h.set(hex('c0a8 0164'), 12)
  h[10] = adj >>> 8
  h[11] = adj & 0xff
  t.equal(onesSum(h, 0, 20), 0xffff)
  h[10] = h[11] = 0
  t.equal(internetChecksum(h, 0, 20), adj)
})
