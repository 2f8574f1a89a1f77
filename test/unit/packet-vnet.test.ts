import t from 'tap'
import * as vnet from '../../src/packet/vnet.js'
import {
  VNET_HDR_LENGTH,
  VnetFlag,
  VnetGso,
  vnetCsumOffset,
  vnetCsumStart,
  vnetFinishChecksum,
  vnetFlags,
  vnetGsoSize,
  vnetGsoType,
  vnetHdrLen,
  vnetNumBuffers,
  writeVnetHeader,
  zeroVnetHeader,
} from '../../src/packet/vnet.js'
import { udpChecksumOk } from '../../src/packet/udp.js'
import { tcpChecksumOk } from '../../src/packet/tcp.js'
import { MalformedPacketError } from '../../src/packet/errors.js'
import { fuzzDecode, hex, reasonOf } from '../helpers/packet-fuzz.js'

// Read from a TAP opened with IFF_VNET_HDR and TUN_F_CSUM|TUN_F_TSO4, hdr size 12: the
// kernel sent a UDP datagram 10.78.0.1:40001 > 10.78.0.2:5353 "switchyard vnet" and a
// TCP SYN 10.78.0.1 > 10.78.0.2:8080, both with checksums left to the receiver.
const UDP_FRAME = hex(`
  01 00 0000 0000 2200 0600 0000
  02420a4e0002 02420a4e0001 0800
  4500 002b 8d7b 4000 4011 98a8 0a4e 0001 0a4e 0002
  9c41 14e9 0017 14c7 7377 6974 6368 7961 7264 2076 6e65 74`)
const TCP_FRAME = hex(`
  01 00 0000 0000 2200 1000 0000
  02420a4e0002 02420a4e0001 0800
  4500 003c 85cd 4000 4006 a050 0a4e 0001 0a4e 0002
  de78 1f90 96c7 dbff 0000 0000 a002 faf0 14cd 0000
  0204 05b4 0402 080a b03a 3e73 0000 0000 0103 030a`)
const SRC = 0x0a4e0001
const DST = 0x0a4e0002
const L4 = VNET_HDR_LENGTH + 14 + 20

t.test('decodes a real NEEDS_CSUM header', async (t) => {
  const h = vnet.decode(UDP_FRAME)
  t.same(
    { ...h, payload: h.payload.length },
    { flags: VnetFlag.NEEDS_CSUM, gsoType: VnetGso.NONE, hdrLen: 0, gsoSize: 0, csumStart: 34, csumOffset: 6, numBuffers: 0, payload: 57 },
  )
  t.equal(h.payload[12], 0x08, 'payload is the Ethernet frame')
  t.equal(vnetFlags(TCP_FRAME, 0), VnetFlag.NEEDS_CSUM)
  t.equal(vnetGsoType(TCP_FRAME, 0), VnetGso.NONE)
  t.equal(vnetHdrLen(TCP_FRAME, 0), 0)
  t.equal(vnetGsoSize(TCP_FRAME, 0), 0)
  t.equal(vnetCsumStart(TCP_FRAME, 0), 34)
  t.equal(vnetCsumOffset(TCP_FRAME, 0), 16)
  t.equal(vnetNumBuffers(TCP_FRAME, 0), 0)
})

t.test('vnetFinishChecksum completes UDP and TCP checksums as the kernel would', async (t) => {
  const u = UDP_FRAME.slice()
  t.notOk(udpChecksumOk(u, L4, SRC, DST), 'partial checksum does not verify yet')
  t.equal(vnetFinishChecksum(u, 0, u.length), true)
  t.ok(udpChecksumOk(u, L4, SRC, DST), 'UDP checksum verifies')
  t.equal(vnetFlags(u, 0) & VnetFlag.NEEDS_CSUM, 0)
  t.equal(vnetCsumStart(u, 0), 0)
  const c = TCP_FRAME.slice()
  t.equal(vnetFinishChecksum(c, 0, c.length), true)
  t.ok(tcpChecksumOk(c, L4, c.length - L4, SRC, DST), 'TCP checksum verifies')
  const field = L4 + 16
  c.set(TCP_FRAME.subarray(field, field + 2), field)
  c[0] = TCP_FRAME[0]
  c.set(TCP_FRAME.subarray(6, 10), 6)
  t.same(c, TCP_FRAME, 'nothing but the checksum and the header changed')
})

t.test('vnetFinishChecksum works at an offset and leaves bad frames alone', async (t) => {
  const big = new Uint8Array(UDP_FRAME.length + 10)
  big.set(UDP_FRAME, 5)
  t.equal(vnetFinishChecksum(big, 5, UDP_FRAME.length), true)
  t.ok(udpChecksumOk(big, 5 + L4, SRC, DST))
  const plain = UDP_FRAME.slice()
  plain[0] = 0
  t.equal(vnetFinishChecksum(plain, 0, plain.length), true, 'no NEEDS_CSUM: nothing to do')
  t.same(plain.subarray(1), UDP_FRAME.subarray(1))
  const bad = UDP_FRAME.slice()
  bad[8] = 200 // csum offset 200: outside the frame
  t.equal(vnetFinishChecksum(bad, 0, bad.length), false)
  t.same(bad.subarray(9), UDP_FRAME.subarray(9), 'untouched')
  t.equal(vnetFinishChecksum(UDP_FRAME.slice(0, 20), 0, 20), false, 'frame shorter than the checksum field')
})

t.test('round trip keeps every byte', async (t) => {
  for (const f of [UDP_FRAME, TCP_FRAME]) t.same(vnet.encode(vnet.decode(f)), f)
  const gso = { flags: 1, gsoType: VnetGso.TCPV4 | VnetGso.ECN, hdrLen: 66, gsoSize: 1448, csumStart: 34, csumOffset: 16, numBuffers: 1, payload: new Uint8Array(100) }
  const d = vnet.decode(vnet.encode(gso))
  t.same({ ...d, payload: d.payload.length }, { ...gso, payload: 100 })
})

t.test('encode writes exactly its bytes into a given buffer', async (t) => {
  const buf = new Uint8Array(40).fill(0xee)
  const out = vnet.encode({ gsoType: VnetGso.UDP_L4, gsoSize: 1400, payload: hex('aabb') }, buf, 3)
  t.equal(out, buf, 'returns the given buffer')
  t.same(buf.subarray(0, 3), [0xee, 0xee, 0xee])
  t.same(buf.subarray(3, 17), hex('00 05 0000 7805 0000 0000 0000 aabb'))
  t.same(buf.subarray(17), new Uint8Array(23).fill(0xee))
  t.equal(vnet.encodingLength({ payload: hex('aabb') }), 14)
  t.same(vnet.encode({}), new Uint8Array(12), 'defaults are zero')
  t.throws(() => vnet.encode({}, new Uint8Array(11)), RangeError)
  t.throws(() => vnet.encode({ gsoSize: 0x10000 }), RangeError)
  t.throws(() => vnet.encode({ flags: -1 }), RangeError)
})

t.test('writeVnetHeader and zeroVnetHeader', async (t) => {
  const buf = new Uint8Array(14).fill(0xee)
  writeVnetHeader(buf, 1, { flags: 2, gsoType: 4, hdrLen: 0x102, gsoSize: 0x304, csumStart: 0x506, csumOffset: 0x708, numBuffers: 0x90a })
  t.same(buf, hex('ee 02 04 0201 0403 0605 0807 0a09 ee'))
  zeroVnetHeader(buf, 1)
  t.same(buf, hex('ee 000000000000000000000000 ee'))
})

t.test('malformed headers', async (t) => {
  for (let n = 0; n < VNET_HDR_LENGTH; n++) {
    t.equal(reasonOf(() => vnet.decode(UDP_FRAME.slice(0, n))), 'truncated', `${n} bytes alone`)
    t.equal(reasonOf(() => vnet.decode(UDP_FRAME, 0, n)), 'truncated', `${n} bytes of a longer buffer`)
  }
  for (let n = VNET_HDR_LENGTH; n < VNET_HDR_LENGTH + 42; n++) {
    t.equal(reasonOf(() => vnet.decode(UDP_FRAME, 0, n)), 'bad_value', `NEEDS_CSUM field outside a ${n - 12}-byte frame`)
  }
  t.equal(reasonOf(() => vnet.decode(UDP_FRAME, 0, VNET_HDR_LENGTH + 42)), 'ok')
  const unknown = UDP_FRAME.slice()
  unknown[1] = 2
  t.equal(reasonOf(() => vnet.decode(unknown)), 'unsupported', 'gso type 2 does not exist')
  const noSize = vnet.encode({ gsoType: VnetGso.TCPV6, payload: new Uint8Array(60) })
  t.equal(reasonOf(() => vnet.decode(noSize)), 'bad_value', 'gso without a segment size')
  const err = (() => {
    try {
      vnet.decode(new Uint8Array(3))
    } catch (e) {
      return e
    }
  })()
  t.ok(err instanceof MalformedPacketError)
  t.equal((err as MalformedPacketError).layer, 'vnet')
  t.throws(() => vnet.decode(UDP_FRAME, 60, 20), RangeError, 'range past the buffer is a caller bug')
})

t.test('fuzz', async (t) => {
  fuzzDecode(t, { seeds: [UDP_FRAME, TCP_FRAME], decode: vnet.decode, layer: 'vnet', seed: 12 })
})
