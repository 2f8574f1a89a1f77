import t from 'tap'
import * as ipv4 from '../../src/packet/ipv4.js'
import {
  IPV4_MIN_LENGTH,
  InvalidIpv4Error,
  IpProtocol,
  Ipv4Flag,
  ipv4Check,
  ipv4Checksum,
  ipv4Dst,
  ipv4Flags,
  ipv4FragmentOffset,
  ipv4HeaderChecksumOk,
  ipv4HeaderLength,
  ipv4Id,
  ipv4Number,
  ipv4IsFragment,
  ipv4Protocol,
  ipv4Src,
  ipv4SwapAddresses,
  ipv4ToString,
  ipv4TotalLength,
  ipv4Tos,
  ipv4Ttl,
  ipv4Version,
  parseIpv4,
  writeIpv4Checksum,
  writeIpv4Header,
} from '../../src/packet/ipv4.js'
import { onesSum } from '../../src/packet/checksum.js'
import { fuzzDecode, hex, reasonOf } from '../helpers/packet-fuzz.js'

// Captured on a veth pair between 10.77.0.2 and 10.77.0.1 (IPv4 packets without Ethernet).
const ECHO_REQUEST = hex(`
  4500 002c 3c25 4000 4001 ea0f 0a4d 0002 0a4d 0001
  0800 d0aa 18ef 0001 41a3 066b 0000 0000 b956 0d00 0000 0000`)
const ECHO_REPLY = hex(`
  4500 002c 8505 0000 4001 e12f 0a4d 0001 0a4d 0002
  0000 d8aa 18ef 0001 41a3 066b 0000 0000 b956 0d00 0000 0000`)
const UDP = hex(`
  4500 0026 8a5a 4000 4011 9bd0 0a4d 0002 0a4d 0001
  9c40 14e9 0012 0dea 7377 6974 6368 7961 7264`)
const TCP_SYN = hex(`
  4500 003c 046a 4000 4006 21b6 0a4d 0002 0a4d 0001
  e08c 1f90 ecd4 18ab 0000 0000 a002 faf0 1793 0000
  0204 05b4 0402 080a ac48 6ef7 0000 0000 0103 030a`)
const ASKER = 0x0a4d0002
const GW = 0x0a4d0001

/** A copy with byte `at` set and, unless told not to, the header checksum made right again. */
function withByte(p: Uint8Array, at: number, value: number, fixChecksum = true): Uint8Array {
  const c = p.slice()
  c[at] = value
  if (fixChecksum && ipv4HeaderLength(c, 0) >= 20 && ipv4HeaderLength(c, 0) <= c.length) writeIpv4Checksum(c, 0)
  return c
}

t.test('decodes a captured packet', async (t) => {
  const p = ipv4.decode(ECHO_REQUEST)
  t.same(
    { ...p, options: p.options.length, payload: p.payload.length },
    {
      headerLength: 20, tos: 0, totalLength: 44, id: 0x3c25, flags: Ipv4Flag.DF, fragmentOffset: 0, ttl: 64,
      protocol: IpProtocol.ICMP, checksum: 0xea0f, src: ASKER, dst: GW, options: 0, payload: 24,
    },
  )
  t.same(p.payload, ECHO_REQUEST.subarray(20))
  t.equal(ipv4.decode(UDP).protocol, IpProtocol.UDP)
  t.equal(ipv4.decode(TCP_SYN).protocol, IpProtocol.TCP)
})

t.test('hot-path accessors', async (t) => {
  const f = new Uint8Array(14 + TCP_SYN.length)
  f.set(TCP_SYN, 14)
  t.equal(ipv4Version(f, 14), 4)
  t.equal(ipv4HeaderLength(f, 14), 20)
  t.equal(ipv4Tos(f, 14), 0)
  t.equal(ipv4TotalLength(f, 14), 60)
  t.equal(ipv4Id(f, 14), 0x046a)
  t.equal(ipv4Flags(f, 14), Ipv4Flag.DF)
  t.equal(ipv4FragmentOffset(f, 14), 0)
  t.equal(ipv4IsFragment(f, 14), false)
  t.equal(ipv4Ttl(f, 14), 64)
  t.equal(ipv4Protocol(f, 14), IpProtocol.TCP)
  t.equal(ipv4Checksum(f, 14), 0x21b6)
  t.equal(ipv4Src(f, 14), ASKER)
  t.equal(ipv4Dst(f, 14), GW)
  t.equal(ipv4HeaderChecksumOk(f, 14), true)
  t.equal(ipv4Check(f, 14, TCP_SYN.length), null)
  t.equal(ipv4Src(hex('0000000000000000000000ff ffffffff 00000000'), 0), 0xffffffff, 'unsigned')
})

t.test('Ethernet padding is not payload', async (t) => {
  const frame = new Uint8Array(60)
  frame.set(UDP, 14)
  const p = ipv4.decode(frame, 14)
  t.equal(p.totalLength, 38)
  t.equal(p.payload.length, 18)
})

t.test('round trips and encode from fields', async (t) => {
  for (const p of [ECHO_REQUEST, ECHO_REPLY, UDP, TCP_SYN]) t.same(ipv4.encode(ipv4.decode(p)), p)
  const built = ipv4.encode({ id: 0x3c25, flags: Ipv4Flag.DF, protocol: IpProtocol.ICMP, src: ASKER, dst: GW, payload: ECHO_REQUEST.subarray(20) })
  t.same(built, ECHO_REQUEST, 'defaults: tos 0, ttl 64, not a fragment')
  t.equal(ipv4.encodingLength(ipv4.decode(TCP_SYN)), 60)
})

t.test('encode writes exactly its bytes into a given buffer', async (t) => {
  const buf = new Uint8Array(70).fill(0xee)
  t.equal(ipv4.encode(ipv4.decode(UDP), buf, 3), buf)
  t.same(buf.subarray(3, 41), UDP)
  t.same(buf.subarray(0, 3), [0xee, 0xee, 0xee])
  t.same(buf.subarray(41), new Uint8Array(29).fill(0xee))
})

t.test('options', async (t) => {
  const routerAlert = hex('94040000')
  const bytes = ipv4.encode({ ttl: 1, protocol: 2, src: ASKER, dst: 0xe0000016, options: routerAlert, payload: hex('2200') })
  t.equal(bytes[0], 0x46, 'IHL 6')
  t.equal(onesSum(bytes, 0, 24), 0xffff, 'checksum covers the options')
  const p = ipv4.decode(bytes)
  t.equal(p.headerLength, 24)
  t.same(p.options, routerAlert)
  t.same(p.payload, hex('2200'))
  t.same(ipv4.encode(p), bytes)
  t.throws(() => ipv4.encode({ protocol: 1, src: 0, dst: 0, options: new Uint8Array(3) }), RangeError)
  t.throws(() => ipv4.encode({ protocol: 1, src: 0, dst: 0, options: new Uint8Array(44) }), RangeError)
  t.equal(ipv4.decode(ipv4.encode({ protocol: 1, src: 0, dst: 0, options: new Uint8Array(40) })).headerLength, 60)
})

t.test('fragments', async (t) => {
  const first = ipv4.encode({ id: 7, flags: Ipv4Flag.MF, protocol: 17, src: ASKER, dst: GW, payload: new Uint8Array(8) })
  t.equal(ipv4IsFragment(first, 0), true)
  const last = ipv4.encode({ id: 7, fragmentOffset: 1, protocol: 17, src: ASKER, dst: GW, payload: new Uint8Array(8) })
  t.equal(ipv4IsFragment(last, 0), true)
  t.equal(ipv4.decode(first).flags, Ipv4Flag.MF)
  t.equal(ipv4.decode(last).flags, 0)
  t.equal(ipv4.decode(last).fragmentOffset, 1)
  t.equal(ipv4FragmentOffset(last, 0), 1)
  // Offset 8184 × 8 = 65472 plus 64 payload bytes ends past 65535 (the ping of death).
  const tooFar = ipv4.encode({ fragmentOffset: 8184, protocol: 1, src: ASKER, dst: GW, payload: new Uint8Array(64) })
  t.equal(reasonOf(() => ipv4.decode(tooFar)), 'bad_length')
  const justFits = ipv4.encode({ fragmentOffset: 8184, protocol: 1, src: ASKER, dst: GW, payload: new Uint8Array(63) })
  t.equal(reasonOf(() => ipv4.decode(justFits)), 'ok')
  t.throws(() => ipv4.encode({ fragmentOffset: 0x2000, protocol: 1, src: 0, dst: 0 }), RangeError)
  t.throws(() => ipv4.encode({ flags: 8, protocol: 1, src: 0, dst: 0 }), RangeError)
})

t.test('writeIpv4Header builds the kernel\'s echo reply header', async (t) => {
  const buf = new Uint8Array(22).fill(0xee)
  t.equal(writeIpv4Header(buf, 1, 44, 0x8505, 64, IpProtocol.ICMP, GW, ASKER), IPV4_MIN_LENGTH)
  t.same(buf.subarray(1, 21), ECHO_REPLY.subarray(0, 20))
  t.equal(buf[0], 0xee)
  t.equal(buf[21], 0xee)
})

t.test('ipv4SwapAddresses keeps the checksum right', async (t) => {
  const p = ECHO_REQUEST.slice()
  ipv4SwapAddresses(p, 0)
  t.equal(ipv4Src(p, 0), GW)
  t.equal(ipv4Dst(p, 0), ASKER)
  t.equal(ipv4HeaderChecksumOk(p, 0), true)
})

t.test('addresses as text', async (t) => {
  t.equal(parseIpv4('10.77.0.2'), ASKER)
  t.equal(parseIpv4('255.255.255.255'), 0xffffffff)
  t.equal(parseIpv4('0.0.0.0'), 0)
  t.equal(ipv4ToString(0xc0a80101), '192.168.1.1')
  t.equal(ipv4ToString(0xffffffff), '255.255.255.255')
  for (const bad of ['256.0.0.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', 'a.b.c.d', ' 1.2.3.4', '']) {
    t.throws(() => parseIpv4(bad), InvalidIpv4Error, JSON.stringify(bad))
  }
})

t.test('senders\' addresses as numbers, without exceptions', async (t) => {
  for (const s of ['10.77.0.2', '255.255.255.255', '0.0.0.0', '127.0.0.1', '1.2.3.4']) t.equal(ipv4Number(s), parseIpv4(s), s)
  for (const bad of ['256.0.0.1', '1.2.3', '1.2.3.4.5', '1..2.3', '.1.2.3', '1.2.3.', '1.2.3.1000', 'a.b.c.d', ' 1.2.3.4', '', '::1', '::ffff:1.2.3.4']) {
    t.equal(ipv4Number(bad), -1, JSON.stringify(bad))
  }
})

t.test('truncated at every length', async (t) => {
  for (const p of [ECHO_REQUEST, TCP_SYN]) {
    for (let n = 0; n < p.length; n++) {
      t.equal(reasonOf(() => ipv4.decode(p.slice(0, n))), 'truncated', `${n} of ${p.length} bytes alone`)
      t.equal(reasonOf(() => ipv4.decode(p, 0, n)), 'truncated', `${n} of ${p.length} bytes of a longer buffer`)
      t.equal(ipv4Check(p, 0, n), 'truncated')
    }
  }
})

t.test('bad header fields', async (t) => {
  t.equal(reasonOf(() => ipv4.decode(withByte(ECHO_REQUEST, 0, 0x65))), 'bad_version', 'version 6')
  t.equal(reasonOf(() => ipv4.decode(withByte(ECHO_REQUEST, 0, 0x05))), 'bad_version', 'version 0')
  for (let ihl = 0; ihl < 5; ihl++) {
    t.equal(reasonOf(() => ipv4.decode(withByte(ECHO_REQUEST, 0, 0x40 | ihl))), 'bad_header_length', `IHL ${ihl}`)
  }
  t.equal(reasonOf(() => ipv4.decode(withByte(ECHO_REQUEST, 0, 0x4f, false))), 'truncated', 'IHL 15 in a 44-byte packet')
  t.equal(reasonOf(() => ipv4.decode(withByte(ECHO_REQUEST, 3, 19))), 'bad_length', 'total length 19 < header')
  t.equal(reasonOf(() => ipv4.decode(withByte(ECHO_REQUEST, 3, 0))), 'bad_length', 'total length 0')
  t.equal(reasonOf(() => ipv4.decode(withByte(ECHO_REQUEST, 3, 45))), 'truncated', 'total length past the buffer')
  t.equal(reasonOf(() => ipv4.decode(withByte(ECHO_REQUEST, 2, 0xff))), 'truncated', 'total length 65324')
  t.equal(reasonOf(() => ipv4.decode(withByte(ECHO_REQUEST, 3, 20))), 'ok', 'total length 20: empty payload')
  t.equal(reasonOf(() => ipv4.decode(withByte(ECHO_REQUEST, 8, 63, false))), 'bad_checksum', 'TTL changed, checksum not')
  t.equal(reasonOf(() => ipv4.decode(withByte(ECHO_REQUEST, 11, 0x10, false))), 'bad_checksum', 'checksum changed')
  t.equal(ipv4Check(withByte(ECHO_REQUEST, 11, 0x10, false), 0, 44), 'bad_checksum')
  t.equal(reasonOf(() => ipv4.decode(withByte(ECHO_REQUEST, 30, 0xff, false))), 'ok', 'payload bytes are not covered')
})

t.test('encode rejects impossible fields', async (t) => {
  t.throws(() => ipv4.encode({ protocol: 1, src: 0, dst: 0, payload: new Uint8Array(65516) }), RangeError, 'total > 65535')
  t.equal(ipv4.encode({ protocol: 1, src: 0, dst: 0, payload: new Uint8Array(65515) }).length, 65535)
  t.throws(() => ipv4.encode({ ttl: 256, protocol: 1, src: 0, dst: 0 }), RangeError)
  t.throws(() => ipv4.encode({ protocol: 256, src: 0, dst: 0 }), RangeError)
  t.throws(() => ipv4.encode({ protocol: 1, src: 2 ** 32, dst: 0 }), RangeError)
  t.throws(() => ipv4.encode({ protocol: 1, src: 0, dst: 0.5 }), RangeError)
  t.throws(() => ipv4.encode({ protocol: 1, src: 0, dst: 0 }, new Uint8Array(19)), RangeError)
})

t.test('fuzz', async (t) => {
  fuzzDecode(t, { seeds: [ECHO_REQUEST, UDP, TCP_SYN], decode: ipv4.decode, layer: 'ipv4', seed: 791 })
})
