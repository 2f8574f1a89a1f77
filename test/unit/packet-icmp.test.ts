import t from 'tap'
import * as icmp from '../../src/packet/icmp.js'
import {
  ICMP_MIN_LENGTH,
  IcmpType,
  echoRequestToReply,
  icmpCheck,
  icmpChecksum,
  icmpChecksumOk,
  icmpCode,
  icmpEchoId,
  icmpEchoSeq,
  icmpType,
  writeIcmpChecksum,
} from '../../src/packet/icmp.js'
import { ethSwapAddresses } from '../../src/packet/ethernet.js'
import { ipv4HeaderChecksumOk, ipv4SwapAddresses } from '../../src/packet/ipv4.js'
import { fuzzDecode, hex, prng, reasonOf } from '../helpers/packet-fuzz.js'

// Captured: `ping -c 1 -s 16 -p 53776974636879617264 10.77.0.1` from 10.77.0.2 and Linux's
// reply (id 6383, seq 1), whole frames.
const REQUEST_FRAME = hex(`
  02420a4d0001 02420a4d0002 0800
  4500 002c 3c25 4000 4001 ea0f 0a4d 0002 0a4d 0001
  0800 d0aa 18ef 0001 41a3 066b 0000 0000 b956 0d00 0000 0000`)
const REPLY_FRAME = hex(`
  02420a4d0002 02420a4d0001 0800
  4500 002c 8505 0000 4001 e12f 0a4d 0001 0a4d 0002
  0000 d8aa 18ef 0001 41a3 066b 0000 0000 b956 0d00 0000 0000`)
const ICMP_OFF = 34
const REQUEST = REQUEST_FRAME.subarray(ICMP_OFF)
const REPLY = REPLY_FRAME.subarray(ICMP_OFF)

t.test('decodes a captured echo request and reply', async (t) => {
  const req = icmp.decode(REQUEST)
  t.same({ ...req, payload: Array.from(req.payload) }, {
    type: IcmpType.ECHO_REQUEST, code: 0, checksum: 0xd0aa, id: 6383, seq: 1, payload: Array.from(REQUEST.subarray(8)),
  })
  const rep = icmp.decode(REPLY_FRAME, ICMP_OFF, 24)
  t.equal(rep.type, IcmpType.ECHO_REPLY)
  t.equal(rep.checksum, 0xd8aa)
})

t.test('hot-path accessors', async (t) => {
  t.equal(icmpType(REQUEST_FRAME, ICMP_OFF), IcmpType.ECHO_REQUEST)
  t.equal(icmpCode(REQUEST_FRAME, ICMP_OFF), 0)
  t.equal(icmpChecksum(REQUEST_FRAME, ICMP_OFF), 0xd0aa)
  t.equal(icmpEchoId(REQUEST_FRAME, ICMP_OFF), 6383)
  t.equal(icmpEchoSeq(REQUEST_FRAME, ICMP_OFF), 1)
  t.equal(icmpChecksumOk(REQUEST_FRAME, ICMP_OFF, 24), true)
  t.equal(icmpCheck(REQUEST_FRAME, ICMP_OFF, 24), null)
})

t.test('echoRequestToReply gives Linux\'s reply, byte for byte', async (t) => {
  const m = REQUEST.slice()
  echoRequestToReply(m, 0)
  t.same(m, REPLY)
})

t.test('a whole frame turned around in place is a valid reply', async (t) => {
  const f = REQUEST_FRAME.slice()
  echoRequestToReply(f, ICMP_OFF)
  ipv4SwapAddresses(f, 14)
  ethSwapAddresses(f, 0)
  t.same(f.subarray(0, 14), REPLY_FRAME.subarray(0, 14), 'Ethernet header')
  t.same(f.subarray(26, 34), REPLY_FRAME.subarray(26, 34), 'IPv4 addresses')
  t.equal(ipv4HeaderChecksumOk(f, 14), true)
  t.same(f.subarray(ICMP_OFF), REPLY)
})

t.test('echoRequestToReply keeps the checksum right for any request', async (t) => {
  // All zeros after the type: the one case where eqn. 3 alone would give a wrong 0.
  const zero = hex('0800 f7ff 0000 0000')
  t.equal(icmpChecksumOk(zero, 0, 8), true)
  echoRequestToReply(zero, 0)
  t.same(zero, hex('0000 ffff 0000 0000'))
  t.equal(icmpChecksumOk(zero, 0, 8), true)
  const rnd = prng(792)
  let bad = 0
  for (let i = 0; i < 2000; i++) {
    const payload = new Uint8Array(Math.floor(rnd() * 64))
    for (let j = 0; j < payload.length; j++) payload[j] = i % 5 === 0 ? 0 : Math.floor(rnd() * 256)
    const id = i % 5 === 0 ? 0 : Math.floor(rnd() * 65536)
    const m = icmp.encode({ type: IcmpType.ECHO_REQUEST, code: i % 3, id, seq: i % 7 ? i : 0, payload })
    echoRequestToReply(m, 0)
    if (m[0] !== 0 || !icmpChecksumOk(m, 0, m.length)) bad++
  }
  t.equal(bad, 0, '2000 random requests')
})

t.test('encode and round trips', async (t) => {
  t.same(icmp.encode({ type: IcmpType.ECHO_REQUEST, id: 6383, seq: 1, payload: REQUEST.subarray(8) }), REQUEST)
  t.same(icmp.encode(icmp.decode(REPLY)), REPLY)
  t.equal(icmp.encodingLength({ type: 8, payload: new Uint8Array(5) }), 13)
  const odd = icmp.encode({ type: IcmpType.ECHO_REQUEST, id: 1, seq: 2, payload: hex('616263') })
  t.equal(icmpChecksumOk(odd, 0, odd.length), true, 'odd length')
  t.same(icmp.decode(odd).payload, hex('616263'))
  const buf = new Uint8Array(40).fill(0xee)
  t.equal(icmp.encode(icmp.decode(REQUEST), buf, 4), buf)
  t.same(buf.subarray(4, 28), REQUEST)
  t.same(buf.subarray(28), new Uint8Array(12).fill(0xee))
  t.same(buf.subarray(0, 4), new Uint8Array(4).fill(0xee))
  t.throws(() => icmp.encode({ type: 256 }), RangeError)
  t.throws(() => icmp.encode({ type: 8, id: 65536 }), RangeError)
  t.throws(() => icmp.encode({ type: 8, seq: -1 }), RangeError)
  t.throws(() => icmp.encode({ type: 8 }, new Uint8Array(7)), RangeError)
})

t.test('writeIcmpChecksum', async (t) => {
  const m = REQUEST.slice()
  m[2] = m[3] = 0x55
  writeIcmpChecksum(m, 0, m.length)
  t.same(m, REQUEST)
})

t.test('other types decode generically', async (t) => {
  // Fragmentation needed, next-hop MTU 1450: the MTU is the low half of the second word.
  const m = icmp.encode({ type: IcmpType.DEST_UNREACHABLE, code: 4, seq: 1450, payload: REQUEST_FRAME.subarray(14, 42) })
  const d = icmp.decode(m)
  t.equal(d.type, 3)
  t.equal(d.code, 4)
  t.equal(d.id, 0)
  t.equal(d.seq, 1450)
})

t.test('malformed messages', async (t) => {
  for (let n = 0; n < ICMP_MIN_LENGTH; n++) {
    t.equal(reasonOf(() => icmp.decode(REQUEST.slice(0, n))), 'truncated', `${n} bytes alone`)
    t.equal(reasonOf(() => icmp.decode(REQUEST_FRAME, ICMP_OFF, n)), 'truncated', `${n} bytes of a frame`)
  }
  // No length field: a shorter message fails its checksum, unless only zeros were cut.
  for (let n = ICMP_MIN_LENGTH; n < REQUEST.length; n++) {
    const zerosCut = REQUEST.subarray(n).every((b) => b === 0)
    t.equal(reasonOf(() => icmp.decode(REQUEST, 0, n)), zerosCut ? 'ok' : 'bad_checksum', `${n} bytes`)
  }
  const flipped = REQUEST.slice()
  flipped[10] ^= 0x01
  t.equal(reasonOf(() => icmp.decode(flipped)), 'bad_checksum', 'payload bit flipped')
  t.equal(icmpCheck(flipped, 0, flipped.length), 'bad_checksum')
  const wrongSum = REQUEST.slice()
  wrongSum[3] ^= 0x80
  t.equal(reasonOf(() => icmp.decode(wrongSum)), 'bad_checksum', 'checksum changed')
})

t.test('fuzz', async (t) => {
  fuzzDecode(t, { seeds: [REQUEST, REPLY, hex('0000 ffff 0000 0000')], decode: icmp.decode, layer: 'icmp', seed: 792 })
})
