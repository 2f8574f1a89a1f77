import t from 'tap'
import * as ethernet from '../../src/packet/ethernet.js'
import {
  ETHERNET_MIN_LENGTH,
  ETHERNET_VLAN_MIN_LENGTH,
  EtherType,
  ethDst,
  ethHasVlan,
  ethHeaderLength,
  ethPayloadType,
  ethSrc,
  ethSwapAddresses,
  ethVlanId,
  ethVlanTci,
  etherType,
  writeEthHeader,
} from '../../src/packet/ethernet.js'
import { BROADCAST_MAC, parseMac } from '../../src/packet/mac.js'
import { fuzzDecode, hex, reasonOf } from '../helpers/packet-fuzz.js'

// Captured on a veth: "who-has 10.77.0.1 tell 10.77.0.2" from 02:42:0a:4d:00:02.
const ARP_REQUEST = hex(`
  ffffffffffff 02420a4d0002 0806
  0001 0800 06 04 0001 02420a4d0002 0a4d0002 000000000000 0a4d0001`)
// The same frame with an 802.1Q tag: PCP 5, DEI 1, VID 100.
const TAGGED = hex(`
  ffffffffffff 02420a4d0002 8100 b064 0806
  0001 0800 06 04 0001 02420a4d0002 0a4d0002 000000000000 0a4d0001`)
const ASKER = parseMac('02:42:0a:4d:00:02')

t.test('decodes a captured frame', async (t) => {
  const f = ethernet.decode(ARP_REQUEST)
  t.equal(f.dst, BROADCAST_MAC)
  t.equal(f.src, ASKER)
  t.equal(f.etherType, EtherType.ARP)
  t.equal(f.vlan, undefined)
  t.same(f.payload, ARP_REQUEST.subarray(14))
  t.equal(f.payload.buffer, ARP_REQUEST.buffer, 'payload is a view')
})

t.test('decodes one 802.1Q tag', async (t) => {
  const f = ethernet.decode(TAGGED)
  t.same(f.vlan, { pcp: 5, dei: 1, vid: 100 })
  t.equal(f.etherType, EtherType.ARP)
  t.same(f.payload, ARP_REQUEST.subarray(14))
})

t.test('hot-path accessors', async (t) => {
  t.equal(ethDst(ARP_REQUEST, 0), BROADCAST_MAC)
  t.equal(ethSrc(ARP_REQUEST, 0), ASKER)
  t.equal(etherType(ARP_REQUEST, 0), EtherType.ARP)
  t.equal(ethHasVlan(ARP_REQUEST, 0), false)
  t.equal(ethHeaderLength(ARP_REQUEST, 0), ETHERNET_MIN_LENGTH)
  t.equal(ethPayloadType(ARP_REQUEST, 0), EtherType.ARP)
  t.equal(etherType(TAGGED, 0), EtherType.VLAN)
  t.equal(ethHasVlan(TAGGED, 0), true)
  t.equal(ethVlanTci(TAGGED, 0), 0xb064)
  t.equal(ethVlanId(TAGGED, 0), 100)
  t.equal(ethHeaderLength(TAGGED, 0), ETHERNET_VLAN_MIN_LENGTH)
  t.equal(ethPayloadType(TAGGED, 0), EtherType.ARP)
  const shifted = new Uint8Array(TAGGED.length + 7)
  shifted.set(TAGGED, 7)
  t.equal(ethSrc(shifted, 7), ASKER, 'at an offset')
  t.equal(ethVlanId(shifted, 7), 100)
})

t.test('writeEthHeader and ethSwapAddresses', async (t) => {
  const buf = new Uint8Array(16).fill(0xee)
  t.equal(writeEthHeader(buf, 1, ASKER, 0x02420a4d0001, EtherType.IPV4), 14)
  t.same(buf, hex('ee 02420a4d0002 02420a4d0001 0800 ee'))
  ethSwapAddresses(buf, 1)
  t.same(buf, hex('ee 02420a4d0001 02420a4d0002 0800 ee'))
})

t.test('round trips', async (t) => {
  t.same(ethernet.encode(ethernet.decode(ARP_REQUEST)), ARP_REQUEST)
  t.same(ethernet.encode(ethernet.decode(TAGGED)), TAGGED)
  t.equal(ethernet.encodingLength(ethernet.decode(TAGGED)), TAGGED.length)
  const bare = ethernet.encode({ dst: 1, src: 2, etherType: EtherType.IPV6 })
  t.same(bare, hex('000000000001 000000000002 86dd'), 'payload defaults to empty')
})

t.test('encode writes exactly its bytes into a given buffer', async (t) => {
  const buf = new Uint8Array(30).fill(0xee)
  const out = ethernet.encode({ dst: BROADCAST_MAC, src: ASKER, vlan: { pcp: 0, dei: 0, vid: 4095 }, etherType: 0x0800, payload: hex('aa') }, buf, 2)
  t.equal(out, buf)
  t.same(buf, hex('eeee ffffffffffff 02420a4d0002 8100 0fff 0800 aa eeeeeeeeeeeeeeeeee'))
  t.throws(() => ethernet.encode({ dst: 1, src: 2, etherType: 0x800 }, new Uint8Array(13)), RangeError)
  t.throws(() => ethernet.encode({ dst: 2 ** 48, src: 2, etherType: 0x800 }), RangeError)
  t.throws(() => ethernet.encode({ dst: 1, src: 2, etherType: 0x10000 }), RangeError)
  t.throws(() => ethernet.encode({ dst: 1, src: 2, etherType: 0x800, vlan: { pcp: 0, dei: 0, vid: 4096 } }), RangeError)
  t.throws(() => ethernet.encode({ dst: 1, src: 2, etherType: 0x800, vlan: { pcp: 8, dei: 0, vid: 1 } }), RangeError)
})

t.test('truncated at every length', async (t) => {
  for (let n = 0; n < ETHERNET_MIN_LENGTH; n++) {
    t.equal(reasonOf(() => ethernet.decode(ARP_REQUEST.slice(0, n))), 'truncated', `untagged, ${n} bytes`)
  }
  for (let n = 0; n < ETHERNET_VLAN_MIN_LENGTH; n++) {
    t.equal(reasonOf(() => ethernet.decode(TAGGED, 0, n)), 'truncated', `tagged, ${n} bytes`)
  }
  for (let n = ETHERNET_MIN_LENGTH; n <= ARP_REQUEST.length; n++) {
    t.equal(ethernet.decode(ARP_REQUEST, 0, n).payload.length, n - 14, `${n} bytes: a shorter payload`)
  }
})

t.test('fuzz', async (t) => {
  fuzzDecode(t, { seeds: [ARP_REQUEST, TAGGED], decode: ethernet.decode, layer: 'ethernet', seed: 14 })
})
