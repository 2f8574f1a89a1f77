import t from 'tap'
import * as udp from '../../src/packet/udp.js'
import {
  UDP_MIN_LENGTH,
  udpCheck,
  udpChecksum,
  udpChecksumOk,
  udpDstPort,
  udpLength,
  udpSrcPort,
  writeUdpChecksum,
} from '../../src/packet/udp.js'
import { internetChecksum, pseudoHeaderSum } from '../../src/packet/checksum.js'
import { fuzzDecode, hex, reasonOf } from '../helpers/packet-fuzz.js'

// Captured: 10.77.0.2:40000 > 10.77.0.1:5353 "switchyard" (the IPv4 payload).
const DATAGRAM = hex('9c40 14e9 0012 0dea 7377 6974 6368 7961 7264')
const SRC = 0x0a4d0002
const DST = 0x0a4d0001
const PSEUDO = { src: SRC, dst: DST }
const TEXT = new TextEncoder().encode('switchyard')

t.test('decodes a captured datagram and verifies its checksum', async (t) => {
  const d = udp.decode(DATAGRAM, 0, undefined, PSEUDO)
  t.same({ ...d, payload: Array.from(d.payload) }, { srcPort: 40000, dstPort: 5353, length: 18, checksum: 0x0dea, payload: Array.from(TEXT) })
  t.equal(d.payload.buffer, DATAGRAM.buffer, 'payload is a view')
})

t.test('hot-path accessors', async (t) => {
  const b = new Uint8Array(34 + DATAGRAM.length)
  b.set(DATAGRAM, 34)
  t.equal(udpSrcPort(b, 34), 40000)
  t.equal(udpDstPort(b, 34), 5353)
  t.equal(udpLength(b, 34), 18)
  t.equal(udpChecksum(b, 34), 0x0dea)
  t.equal(udpCheck(b, 34, 18), null)
  t.equal(udpChecksumOk(b, 34, SRC, DST), true)
  t.equal(udpChecksumOk(b, 34, SRC, DST + 1), false, 'another destination')
})

t.test('checksums', async (t) => {
  t.equal(reasonOf(() => udp.decode(DATAGRAM, 0, undefined, { src: SRC, dst: 0x0a4d0003 })), 'bad_checksum', 'wrong pseudo-header')
  const flipped = DATAGRAM.slice()
  flipped[12] ^= 4
  t.equal(reasonOf(() => udp.decode(flipped, 0, undefined, PSEUDO)), 'bad_checksum', 'payload bit flipped')
  t.equal(reasonOf(() => udp.decode(flipped)), 'ok', 'not checked without a pseudo-header')
  const none = DATAGRAM.slice()
  none[6] = none[7] = 0
  t.equal(reasonOf(() => udp.decode(none, 0, undefined, PSEUDO)), 'ok', 'checksum 0 means none')
  const c = DATAGRAM.slice()
  c[6] = c[7] = 0x55
  writeUdpChecksum(c, 0, SRC, DST)
  t.same(c, DATAGRAM)
})

t.test('a computed checksum of 0 is sent as 0xffff', async (t) => {
  const d = udp.encode({ srcPort: 1, dstPort: 2, payload: new Uint8Array(2) })
  // Choose the payload word x so that the data sums to 0xffff: sum + x = 0xffff.
  const sum = 0xffff - internetChecksum(d, 0, 10, pseudoHeaderSum(SRC, DST, 17, 10))
  const x = 0xffff - sum
  d[8] = x >>> 8
  d[9] = x & 0xff
  t.equal(internetChecksum(d, 0, 10, pseudoHeaderSum(SRC, DST, 17, 10)), 0, 'data sums to 0xffff')
  writeUdpChecksum(d, 0, SRC, DST)
  t.equal(udpChecksum(d, 0), 0xffff)
  t.equal(udpChecksumOk(d, 0, SRC, DST), true)
})

t.test('encode and round trips', async (t) => {
  t.same(udp.encode({ srcPort: 40000, dstPort: 5353, payload: TEXT, pseudoHeader: PSEUDO }), DATAGRAM)
  t.same(udp.encode(udp.decode(DATAGRAM)), DATAGRAM, 'checksum kept as decoded')
  t.same(udp.encode({ srcPort: 68, dstPort: 67 }), hex('0044 0043 0008 0000'), 'no payload, no checksum')
  t.same(udp.encode({ srcPort: 1, dstPort: 2, checksum: 0xabcd }), hex('0001 0002 0008 abcd'))
  t.equal(udp.encodingLength({ srcPort: 1, dstPort: 2, payload: TEXT }), 18)
  const buf = new Uint8Array(30).fill(0xee)
  t.equal(udp.encode({ srcPort: 40000, dstPort: 5353, payload: TEXT, pseudoHeader: PSEUDO }, buf, 6), buf)
  t.same(buf.subarray(6, 24), DATAGRAM)
  t.same(buf.subarray(0, 6), new Uint8Array(6).fill(0xee))
  t.same(buf.subarray(24), new Uint8Array(6).fill(0xee))
  t.throws(() => udp.encode({ srcPort: 65536, dstPort: 1 }), RangeError)
  t.throws(() => udp.encode({ srcPort: 1, dstPort: -1 }), RangeError)
  t.throws(() => udp.encode({ srcPort: 1, dstPort: 1, checksum: 0x10000 }), RangeError)
  t.throws(() => udp.encode({ srcPort: 1, dstPort: 1, payload: new Uint8Array(65528) }), RangeError, 'length > 65535')
  t.throws(() => udp.encode({ srcPort: 1, dstPort: 1 }, new Uint8Array(7)), RangeError)
})

t.test('bytes past the length field are not payload', async (t) => {
  const padded = new Uint8Array(26)
  padded.set(DATAGRAM)
  const d = udp.decode(padded, 0, undefined, PSEUDO)
  t.equal(d.payload.length, 10)
})

t.test('truncated at every length', async (t) => {
  for (let n = 0; n < DATAGRAM.length; n++) {
    t.equal(reasonOf(() => udp.decode(DATAGRAM.slice(0, n))), 'truncated', `${n} bytes alone`)
    t.equal(reasonOf(() => udp.decode(DATAGRAM, 0, n, PSEUDO)), 'truncated', `${n} bytes of a longer buffer`)
    t.equal(udpCheck(DATAGRAM, 0, n), 'truncated')
  }
})

t.test('bad length fields', async (t) => {
  for (let len = 0; len < UDP_MIN_LENGTH; len++) {
    const d = DATAGRAM.slice()
    d[5] = len
    t.equal(reasonOf(() => udp.decode(d)), 'bad_length', `length field ${len}`)
  }
  const long = DATAGRAM.slice()
  long[5] = 19
  t.equal(reasonOf(() => udp.decode(long)), 'truncated', 'length field past the datagram')
  long[4] = 0xff
  t.equal(reasonOf(() => udp.decode(long)), 'truncated', 'length field 65299')
  const eight = DATAGRAM.slice()
  eight[5] = 8
  eight[6] = eight[7] = 0
  t.equal(udp.decode(eight).payload.length, 0, 'length 8: empty payload')
})

t.test('fuzz', async (t) => {
  fuzzDecode(t, { seeds: [DATAGRAM], decode: udp.decode, layer: 'udp', seed: 768 })
  fuzzDecode(t, { seeds: [DATAGRAM], decode: (b, o, l) => udp.decode(b, o, l, PSEUDO), layer: 'udp', seed: 769 })
})
