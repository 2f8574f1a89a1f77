import t from 'tap'
import * as tcp from '../../src/packet/tcp.js'
import {
  TCP_MIN_LENGTH,
  TcpFlag,
  tcpAck,
  tcpCheck,
  tcpChecksum,
  tcpChecksumOk,
  tcpDstPort,
  tcpFlags,
  tcpHeaderLength,
  tcpSeq,
  tcpSrcPort,
  tcpUrgentPointer,
  tcpWindow,
  writeTcpChecksum,
} from '../../src/packet/tcp.js'
import { fuzzDecode, hex, reasonOf } from '../helpers/packet-fuzz.js'

// Captured handshake and close between 10.77.0.2:57484 and 10.77.0.1:8080 (IPv4 payloads).
const SYN = hex(`
  e08c 1f90 ecd4 18ab 0000 0000 a002 faf0 1793 0000
  0204 05b4 0402 080a ac48 6ef7 0000 0000 0103 030a`)
const SYN_ACK = hex(`
  1f90 e08c 35a4 7829 ecd4 18ac a012 fe88 9e54 0000
  0204 05b4 0402 080a d44b f37b ac48 6ef7 0103 030a`)
const ACK = hex(`
  e08c 1f90 ecd4 18ac 35a4 782a 8010 003f cb6c 0000
  0101 080a ac48 6ef8 d44b f37b`)
const FIN_ACK = hex(`
  1f90 e08c 35a4 782a ecd4 18ac 8011 0040 cb6a 0000
  0101 080a d44b f37b ac48 6ef8`)
const CLIENT = 0x0a4d0002
const SERVER = 0x0a4d0001
const UP = { src: CLIENT, dst: SERVER }
const DOWN = { src: SERVER, dst: CLIENT }
const SYN_OPTIONS = SYN.subarray(20)

t.test('decodes a captured SYN and verifies its checksum', async (t) => {
  const s = tcp.decode(SYN, 0, undefined, UP)
  t.same({ ...s, options: Array.from(s.options), payload: s.payload.length }, {
    srcPort: 57484, dstPort: 8080, seq: 3973322923, ack: 0, headerLength: 40, flags: TcpFlag.SYN,
    window: 64240, checksum: 0x1793, urgentPointer: 0, options: Array.from(SYN_OPTIONS), payload: 0,
  })
  t.equal(tcp.decode(SYN_ACK, 0, undefined, DOWN).flags, TcpFlag.SYN | TcpFlag.ACK)
  t.equal(tcp.decode(ACK, 0, undefined, UP).flags, TcpFlag.ACK)
  t.equal(tcp.decode(FIN_ACK, 0, undefined, DOWN).flags, TcpFlag.FIN | TcpFlag.ACK)
  t.equal(tcp.decode(ACK).headerLength, 32)
})

t.test('hot-path accessors', async (t) => {
  const b = new Uint8Array(34 + SYN_ACK.length)
  b.set(SYN_ACK, 34)
  t.equal(tcpSrcPort(b, 34), 8080)
  t.equal(tcpDstPort(b, 34), 57484)
  t.equal(tcpSeq(b, 34), 899971113)
  t.equal(tcpAck(b, 34), 3973322924)
  t.equal(tcpHeaderLength(b, 34), 40)
  t.equal(tcpFlags(b, 34), TcpFlag.SYN | TcpFlag.ACK)
  t.equal(tcpWindow(b, 34), 65160)
  t.equal(tcpChecksum(b, 34), 0x9e54)
  t.equal(tcpUrgentPointer(b, 34), 0)
  t.equal(tcpCheck(b, 34, 40), null)
  t.equal(tcpChecksumOk(b, 34, 40, SERVER, CLIENT), true)
  t.equal(tcpChecksumOk(b, 34, 40, CLIENT, SERVER + 2), false)
})

t.test('encode and round trips', async (t) => {
  for (const s of [SYN, SYN_ACK, ACK, FIN_ACK]) t.same(tcp.encode(tcp.decode(s)), s)
  const built = tcp.encode({ srcPort: 57484, dstPort: 8080, seq: 3973322923, flags: TcpFlag.SYN, window: 64240, options: SYN_OPTIONS, pseudoHeader: UP })
  t.same(built, SYN, 'from fields, checksum computed')
  t.equal(tcp.encodingLength({ srcPort: 1, dstPort: 2, options: SYN_OPTIONS, payload: new Uint8Array(5) }), 45)
  const buf = new Uint8Array(50).fill(0xee)
  t.equal(tcp.encode(tcp.decode(ACK), buf, 9), buf)
  t.same(buf.subarray(9, 41), ACK)
  t.same(buf.subarray(0, 9), new Uint8Array(9).fill(0xee))
  t.same(buf.subarray(41), new Uint8Array(9).fill(0xee))
})

t.test('payload, AE flag and checksum', async (t) => {
  const data = new TextEncoder().encode('GET / HTTP/1.0\r\n\r\n!')
  const seg = tcp.encode({ srcPort: 1234, dstPort: 80, seq: 0xffffffff, ack: 1, flags: TcpFlag.PSH | TcpFlag.ACK | TcpFlag.AE, window: 512, urgentPointer: 3, payload: data, pseudoHeader: UP })
  t.equal(seg[12], 0x51, 'data offset 5, AE bit')
  t.equal(tcpChecksumOk(seg, 0, seg.length, CLIENT, SERVER), true, 'odd length')
  const d = tcp.decode(seg, 0, undefined, UP)
  t.equal(d.flags, TcpFlag.PSH | TcpFlag.ACK | TcpFlag.AE)
  t.equal(d.seq, 0xffffffff)
  t.equal(d.urgentPointer, 3)
  t.same(d.payload, data)
  t.equal(d.options.length, 0)
  const c = SYN.slice()
  c[16] = c[17] = 0
  writeTcpChecksum(c, 0, c.length, CLIENT, SERVER)
  t.same(c, SYN)
})

t.test('bad checksums', async (t) => {
  t.equal(reasonOf(() => tcp.decode(SYN, 0, undefined, DOWN)), 'ok', 'swapped addresses sum the same')
  t.equal(reasonOf(() => tcp.decode(SYN, 0, undefined, { src: CLIENT, dst: 0x0a4d0009 })), 'bad_checksum')
  const flipped = SYN.slice()
  flipped[30] ^= 0x20
  t.equal(reasonOf(() => tcp.decode(flipped, 0, undefined, UP)), 'bad_checksum', 'option bit flipped')
  t.equal(reasonOf(() => tcp.decode(flipped)), 'ok', 'not checked without a pseudo-header')
})

t.test('truncated at every length', async (t) => {
  for (let n = 0; n < SYN.length; n++) {
    t.equal(reasonOf(() => tcp.decode(SYN.slice(0, n))), 'truncated', `${n} bytes alone`)
    t.equal(reasonOf(() => tcp.decode(SYN, 0, n, UP)), 'truncated', `${n} bytes of a longer buffer`)
    t.equal(tcpCheck(SYN, 0, n), 'truncated')
  }
})

t.test('bad data offsets', async (t) => {
  for (let doff = 0; doff < 5; doff++) {
    const s = SYN.slice()
    s[12] = (doff << 4) | (s[12] & 0x0f)
    t.equal(reasonOf(() => tcp.decode(s)), 'bad_header_length', `data offset ${doff}`)
  }
  for (let doff = 11; doff <= 15; doff++) {
    const s = SYN.slice()
    s[12] = (doff << 4) | (s[12] & 0x0f)
    t.equal(reasonOf(() => tcp.decode(s)), 'truncated', `data offset ${doff} beyond a 40-byte segment`)
  }
  const five = ACK.slice()
  five[12] = 0x50
  t.equal(tcp.decode(five).payload.length, 12, 'data offset 5: options become payload')
  t.equal(tcp.decode(five).headerLength, TCP_MIN_LENGTH)
})

t.test('encode rejects impossible fields', async (t) => {
  t.throws(() => tcp.encode({ srcPort: 1, dstPort: 2, options: new Uint8Array(3) }), RangeError)
  t.throws(() => tcp.encode({ srcPort: 1, dstPort: 2, options: new Uint8Array(44) }), RangeError)
  t.equal(tcp.decode(tcp.encode({ srcPort: 1, dstPort: 2, options: new Uint8Array(40) })).headerLength, 60)
  t.throws(() => tcp.encode({ srcPort: 1, dstPort: 2, flags: 0x200 }), RangeError)
  t.throws(() => tcp.encode({ srcPort: 1, dstPort: 2, seq: 2 ** 32 }), RangeError)
  t.throws(() => tcp.encode({ srcPort: 1, dstPort: 2, ack: -1 }), RangeError)
  t.throws(() => tcp.encode({ srcPort: 65536, dstPort: 2 }), RangeError)
  t.throws(() => tcp.encode({ srcPort: 1, dstPort: 2, window: 70000 }), RangeError)
  t.throws(() => tcp.encode({ srcPort: 1, dstPort: 2 }, new Uint8Array(19)), RangeError)
})

t.test('fuzz', async (t) => {
  fuzzDecode(t, { seeds: [SYN, SYN_ACK, ACK, FIN_ACK], decode: tcp.decode, layer: 'tcp', seed: 793 })
  fuzzDecode(t, { seeds: [SYN, ACK], decode: (b, o, l) => tcp.decode(b, o, l, UP), layer: 'tcp', seed: 9293 })
})
