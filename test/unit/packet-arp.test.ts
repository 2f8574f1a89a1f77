import t from 'tap'
import * as arp from '../../src/packet/arp.js'
import {
  ARP_LENGTH,
  ArpOp,
  arpOp,
  arpSenderIp,
  arpSenderMac,
  arpTargetIp,
  arpTargetMac,
  isEthIpv4Arp,
  writeArpReply,
} from '../../src/packet/arp.js'
import { EtherType, writeEthHeader } from '../../src/packet/ethernet.js'
import { parseMac } from '../../src/packet/mac.js'
import { fuzzDecode, hex, reasonOf } from '../helpers/packet-fuzz.js'

// Captured on a veth pair: 10.77.0.2 (02:42:0a:4d:00:02) asks for 10.77.0.1, and Linux on
// 10.77.0.1 (02:42:0a:4d:00:01) replies. Ethernet headers included.
const REQUEST_FRAME = hex(`
  ffffffffffff 02420a4d0002 0806
  0001 0800 06 04 0001 02420a4d0002 0a4d0002 000000000000 0a4d0001`)
const REPLY_FRAME = hex(`
  02420a4d0002 02420a4d0001 0806
  0001 0800 06 04 0002 02420a4d0001 0a4d0001 02420a4d0002 0a4d0002`)
const REQUEST = REQUEST_FRAME.subarray(14)
const REPLY = REPLY_FRAME.subarray(14)
const ASKER_MAC = parseMac('02:42:0a:4d:00:02')
const GW_MAC = parseMac('02:42:0a:4d:00:01')
const ASKER_IP = 0x0a4d0002
const GW_IP = 0x0a4d0001

t.test('decodes a captured request and reply', async (t) => {
  t.same(arp.decode(REQUEST), { op: ArpOp.REQUEST, senderMac: ASKER_MAC, senderIp: ASKER_IP, targetMac: 0, targetIp: GW_IP })
  t.same(arp.decode(REPLY), { op: ArpOp.REPLY, senderMac: GW_MAC, senderIp: GW_IP, targetMac: ASKER_MAC, targetIp: ASKER_IP })
  t.same(arp.decode(REQUEST_FRAME, 14), arp.decode(REQUEST), 'at an offset')
})

t.test('hot-path accessors', async (t) => {
  t.equal(isEthIpv4Arp(REQUEST_FRAME, 14), true)
  t.equal(arpOp(REQUEST_FRAME, 14), ArpOp.REQUEST)
  t.equal(arpSenderMac(REQUEST_FRAME, 14), ASKER_MAC)
  t.equal(arpSenderIp(REQUEST_FRAME, 14), ASKER_IP)
  t.equal(arpTargetMac(REQUEST_FRAME, 14), 0)
  t.equal(arpTargetIp(REQUEST_FRAME, 14), GW_IP)
  const hi = REQUEST.slice()
  hi.set(hex('c0a80001'), 14)
  t.equal(arpSenderIp(hi, 0), 0xc0a80001, 'addresses above 2^31 stay unsigned')
})

t.test('writeArpReply in place gives the kernel\'s reply, byte for byte', async (t) => {
  const frame = REQUEST_FRAME.slice()
  writeEthHeader(frame, 0, arpSenderMac(frame, 14), GW_MAC, EtherType.ARP)
  t.equal(writeArpReply(frame, 14, GW_MAC), ARP_LENGTH)
  t.same(frame, REPLY_FRAME)
})

t.test('writeArpReply into another buffer writes 28 bytes and nothing else', async (t) => {
  const out = new Uint8Array(40).fill(0xee)
  writeArpReply(REQUEST_FRAME, 14, GW_MAC, out, 5)
  t.same(out.subarray(5, 33), REPLY)
  t.same(out.subarray(0, 5), new Uint8Array(5).fill(0xee))
  t.same(out.subarray(33), new Uint8Array(7).fill(0xee))
  t.same(REQUEST_FRAME.subarray(14), REQUEST, 'request untouched')
})

t.test('round trips and encode', async (t) => {
  t.same(arp.encode(arp.decode(REQUEST)), REQUEST)
  t.same(arp.encode(arp.decode(REPLY)), REPLY)
  t.equal(arp.encodingLength(), ARP_LENGTH)
  const buf = new Uint8Array(30).fill(0xee)
  t.equal(arp.encode(arp.decode(REPLY), buf, 1), buf)
  t.same(buf, hex(`ee ${Buffer.from(REPLY).toString('hex')} ee`))
  t.throws(() => arp.encode(arp.decode(REPLY), new Uint8Array(27)), RangeError)
  t.throws(() => arp.encode({ op: 1, senderMac: 2 ** 48, senderIp: 0, targetMac: 0, targetIp: 0 }), RangeError)
  t.throws(() => arp.encode({ op: 1, senderMac: 0, senderIp: -1, targetMac: 0, targetIp: 0 }), RangeError)
  t.throws(() => arp.encode({ op: 0x10000, senderMac: 0, senderIp: 0, targetMac: 0, targetIp: 0 }), RangeError)
})

t.test('Ethernet padding after the message is ignored', async (t) => {
  const padded = new Uint8Array(46)
  padded.set(REQUEST)
  t.same(arp.decode(padded), arp.decode(REQUEST))
})

t.test('malformed messages', async (t) => {
  for (let n = 0; n < ARP_LENGTH; n++) {
    t.equal(reasonOf(() => arp.decode(REQUEST.slice(0, n))), 'truncated', `${n} bytes alone`)
    t.equal(reasonOf(() => arp.decode(REQUEST_FRAME, 14, n)), 'truncated', `${n} bytes of a longer buffer`)
  }
  const cases: Array<[string, number, number, string]> = [
    ['hardware type IEEE 802', 1, 6, 'unsupported'],
    ['protocol type IPv6', 2, 0x86, 'unsupported'],
    ['hardware size 8', 4, 8, 'bad_length'],
    ['protocol size 16', 5, 16, 'bad_length'],
    ['hardware size 0', 4, 0, 'bad_length'],
    ['RARP request op 3', 7, 3, 'unsupported'],
    ['op 0', 7, 0, 'unsupported'],
  ]
  for (const [name, at, value, reason] of cases) {
    const m = REQUEST.slice()
    m[at] = value
    t.equal(reasonOf(() => arp.decode(m)), reason, name)
    if (at < 6) t.equal(isEthIpv4Arp(m, 0), false, `${name}: isEthIpv4Arp`)
  }
})

t.test('fuzz', async (t) => {
  fuzzDecode(t, { seeds: [REQUEST, REPLY], decode: arp.decode, layer: 'arp', seed: 826 })
})
