// The DHCP codec: failure cases first, then round trips and option encodings.
import t, { type Test } from 'tap'
import {
  BOOTP_MIN_LENGTH, BOOTREQUEST, DhcpMessageType, DhcpOption, MAX_LENGTH, MalformedDhcpError,
  decode, encode, encodingLength, getClientId, getHostname, getLeaseTime, getMaxMessageSize,
  getMessageType, getParameterRequestList, getRequestedIp, getServerId, ipListOption, ipOption,
  readIpListOption, readIpOption, readStringOption, readUint16Option, readUint32Option,
  stringOption, uint16Option, uint32Option, uint8Option, type DhcpMessage,
} from '../../src/gateway/dhcp/codec.js'

/** The DISCOVER a QEMU guest's busybox udhcpc sent (from test/fixtures/dhcp/qemu-tap-dhcp.pcap). */
const UDHCPC_DISCOVER = Buffer.from(
  '010106000d671a43000000000000000000000000000000000000000052540012345600000000000000000000' +
  '00'.repeat(192) +
  '638253633501013902024037070103060c0f1c2a3c0c756468637020312e33352e303d0701525400123456ff' +
  '00'.repeat(20),
  'hex',
)
const END_AT = 279

function message(over: Partial<DhcpMessage> = {}): DhcpMessage {
  return {
    op: BOOTREQUEST, htype: 1, hops: 0, xid: 0xdeadbeef, secs: 3, flags: 0x8000,
    ciaddr: '10.0.0.5', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0',
    chaddr: Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56), sname: 'srv', file: 'boot/pxelinux.0',
    options: new Map([
      [DhcpOption.MESSAGE_TYPE, uint8Option(DhcpMessageType.REQUEST)],
      [DhcpOption.REQUESTED_IP, ipOption('10.0.0.5')],
      [DhcpOption.PARAMETER_REQUEST_LIST, Uint8Array.of(1, 3, 6, 15)],
      [DhcpOption.HOSTNAME, stringOption('vm1')],
    ]),
    ...over,
  }
}

function malformed(t: Test, buf: Uint8Array, reason: RegExp, msg: string): void {
  try {
    decode(buf)
    t.fail(`${msg}: decoded`)
  } catch (err) {
    t.ok(err instanceof MalformedDhcpError, `${msg}: MalformedDhcpError`)
    if (err instanceof MalformedDhcpError) t.match(err.reason, reason, `${msg}: reason`)
  }
}

t.test('fixture is what udhcpc sends', async (t) => {
  t.equal(UDHCPC_DISCOVER.length, 300)
  t.equal(UDHCPC_DISCOVER[END_AT], 255)
})

t.test('truncated at every length below the end option: malformed', async (t) => {
  for (let len = 0; len <= END_AT; len++) {
    const cut = UDHCPC_DISCOVER.subarray(0, len)
    let reason = ''
    try { decode(cut) } catch (err) { if (err instanceof MalformedDhcpError) reason = err.reason }
    if (reason === '') t.fail(`length ${len} did not throw MalformedDhcpError`)
  }
  for (let len = END_AT + 1; len <= UDHCPC_DISCOVER.length; len++) {
    const m = decode(UDHCPC_DISCOVER.subarray(0, len))
    if (getMessageType(m.options) !== DhcpMessageType.DISCOVER) t.fail(`length ${len} lost the message type`)
  }
  malformed(t, UDHCPC_DISCOVER.subarray(0, 239), /truncated/, 'shorter than header + cookie')
  malformed(t, UDHCPC_DISCOVER.subarray(0, 243), /no length byte|running past|not terminated/, 'cut inside an option')
})

t.test('bad magic cookie', async (t) => {
  const b = Buffer.from(UDHCPC_DISCOVER)
  b[239] = 0x64
  malformed(t, b, /magic cookie/, 'last cookie byte wrong')
})

t.test('option length beyond the end', async (t) => {
  const b = Buffer.from(UDHCPC_DISCOVER.subarray(0, 250))
  b[240] = 12 // hostname
  b[241] = 200
  malformed(t, b, /running past the end/, 'length 200 with 8 bytes left')
  const c = Buffer.from(UDHCPC_DISCOVER.subarray(0, 242))
  c[240] = 0
  c[241] = 12 // a code as the last byte, no room for its length
  malformed(t, c, /no length byte/, 'code without a length byte')
})

t.test('options without an end option', async (t) => {
  const b = Buffer.from(UDHCPC_DISCOVER)
  b[END_AT] = 0
  malformed(t, b, /not terminated/, 'end replaced by pad')
})

t.test('hlen over 16', async (t) => {
  const b = Buffer.from(UDHCPC_DISCOVER)
  b[2] = 17
  malformed(t, b, /hlen 17/, 'hlen 17')
  b[2] = 16
  t.equal(decode(b).chaddr.length, 16, 'hlen 16 is fine')
})

t.test('op other than 1 or 2', async (t) => {
  for (const op of [0, 3, 255]) {
    const b = Buffer.from(UDHCPC_DISCOVER)
    b[0] = op
    malformed(t, b, /op \d+ is neither/, `op ${op}`)
  }
})

t.test('oversize', async (t) => {
  const b = new Uint8Array(MAX_LENGTH + 1)
  b.set(UDHCPC_DISCOVER)
  malformed(t, b, /oversize/, `${MAX_LENGTH + 1} bytes`)
  const ok = new Uint8Array(MAX_LENGTH)
  ok.set(UDHCPC_DISCOVER)
  t.equal(decode(ok).xid, 0x0d671a43, `${MAX_LENGTH} bytes decode`)
})

t.test('option overload (52) is refused', async (t) => {
  const b = Buffer.from(UDHCPC_DISCOVER)
  b.set([52, 1, 3, 255], END_AT)
  malformed(t, b, /overload/, 'overload option')
})

t.test('offset/length outside the buffer is a caller bug (RangeError)', async (t) => {
  t.throws(() => decode(UDHCPC_DISCOVER, 10, 300), RangeError)
  t.throws(() => decode(UDHCPC_DISCOVER, -1), RangeError)
})

t.test('typed readers refuse wrong lengths', async (t) => {
  const opts = new Map<number, Uint8Array>([
    [DhcpOption.MESSAGE_TYPE, Uint8Array.of(1, 2)],
    [DhcpOption.REQUESTED_IP, Uint8Array.of(10, 0, 0)],
    [DhcpOption.LEASE_TIME, Uint8Array.of(0, 0, 1)],
    [DhcpOption.MAX_MESSAGE_SIZE, Uint8Array.of(2)],
    [DhcpOption.DNS_SERVERS, Uint8Array.of(1, 2, 3, 4, 5)],
    [DhcpOption.CLIENT_ID, Uint8Array.of(1)],
  ])
  t.throws(() => getMessageType(opts), MalformedDhcpError)
  t.throws(() => getRequestedIp(opts), MalformedDhcpError)
  t.throws(() => getLeaseTime(opts), MalformedDhcpError)
  t.throws(() => getMaxMessageSize(opts), MalformedDhcpError)
  t.throws(() => readIpListOption(opts, DhcpOption.DNS_SERVERS), MalformedDhcpError)
  t.throws(() => getClientId(opts), MalformedDhcpError)
  t.equal(getServerId(opts), undefined, 'absent is undefined, not an error')
})

t.test('encode refuses what cannot go on the wire', async (t) => {
  t.throws(() => encode(message({ options: new Map([[0, Uint8Array.of(1)]]) })), TypeError, 'PAD as an option')
  t.throws(() => encode(message({ options: new Map([[255, Uint8Array.of(1)]]) })), TypeError, 'END as an option')
  t.throws(() => encode(message({ chaddr: new Uint8Array(17) })), RangeError, 'chaddr over 16 bytes')
  t.throws(() => encode(message({ ciaddr: '10.0.0.256' })), /invalid IPv4/, 'bad address')
  t.throws(() => encode(message({ sname: 'x'.repeat(65) })), RangeError, 'sname too long')
  t.throws(() => encode(message(), new Uint8Array(100)), RangeError, 'buffer too small')
  t.throws(() => stringOption('caf\u00e9'), TypeError, 'non-ASCII text option')
})

t.test('decodes the udhcpc DISCOVER', async (t) => {
  const m = decode(UDHCPC_DISCOVER)
  t.equal(m.op, 1)
  t.equal(m.htype, 1)
  t.equal(m.xid, 0x0d671a43)
  t.equal(m.flags, 0, 'udhcpc asks for unicast replies')
  t.same(Array.from(m.chaddr), [0x52, 0x54, 0, 0x12, 0x34, 0x56])
  t.equal(m.ciaddr, '0.0.0.0')
  t.equal(m.sname, '')
  t.equal(getMessageType(m.options), DhcpMessageType.DISCOVER)
  t.equal(getMaxMessageSize(m.options), 576)
  t.same(getParameterRequestList(m.options), [1, 3, 6, 12, 15, 28, 42])
  t.equal(readStringOption(m.options, DhcpOption.VENDOR_CLASS_ID), 'udhcp 1.35.0')
  t.same(Array.from(getClientId(m.options) ?? []), [1, 0x52, 0x54, 0, 0x12, 0x34, 0x56])
  t.same([...m.options.keys()], [53, 57, 55, 60, 61], 'wire order kept')
})

t.test('round trip: decode(encode(m)) equals m, and re-encoding is byte-identical', async (t) => {
  const long = new Uint8Array(600).map((_, i) => i & 0xff)
  const m = message({
    options: new Map([
      [DhcpOption.MESSAGE_TYPE, uint8Option(DhcpMessageType.ACK)],
      [DhcpOption.SERVER_ID, ipOption('10.0.0.1')],
      [DhcpOption.DNS_SERVERS, ipListOption(['10.0.0.1', '1.1.1.1'])],
      [DhcpOption.LEASE_TIME, uint32Option(0xfffffffe)],
      [DhcpOption.MTU, uint16Option(1450)],
      [224, long], // longer than 255: split on the wire, joined on decode (RFC 3396)
      [80, new Uint8Array(0)], // rapid commit: an empty option
    ]),
  })
  const bytes = encode(m)
  t.equal(bytes.length, encodingLength(m))
  const back = decode(bytes)
  t.same(back, m)
  t.same(Buffer.from(encode(back)), Buffer.from(bytes))

  const again = decode(encode(decode(UDHCPC_DISCOVER)))
  t.same(again, decode(UDHCPC_DISCOVER), 'the real DISCOVER round-trips')
  t.same(Buffer.from(encode(decode(UDHCPC_DISCOVER))), UDHCPC_DISCOVER, 'byte-identical (udhcpc pads to 300 too)')
})

t.test('long options are split into 255-byte pieces', async (t) => {
  const v = new Uint8Array(300).fill(7)
  const bytes = encode(message({ options: new Map([[DhcpOption.MESSAGE_TYPE, uint8Option(1)], [43, v]]) }))
  t.same(Array.from(bytes.subarray(243, 245)), [43, 255], 'first piece')
  t.same(Array.from(bytes.subarray(243 + 257, 243 + 259)), [43, 45], 'second piece')
  t.equal(bytes[243 + 257 + 47], 255, 'end')
})

t.test('repeated codes on the wire are concatenated, pads skipped, bytes after end ignored', async (t) => {
  const b = Buffer.from(UDHCPC_DISCOVER)
  b.set([0, 0, 12, 2, 0x76, 0x6d, 0, 12, 1, 0x31, 255, 9, 9, 9], END_AT)
  t.equal(getHostname(decode(b).options), 'vm1')
})

t.test('replies are padded to the BOOTP minimum and every byte is written', async (t) => {
  const m = message({ options: new Map([[DhcpOption.MESSAGE_TYPE, uint8Option(DhcpMessageType.NAK)]]) })
  t.equal(encodingLength(m), BOOTP_MIN_LENGTH)
  const dirty = new Uint8Array(BOOTP_MIN_LENGTH + 20).fill(0xaa)
  encode(m, dirty, 10)
  t.same(Buffer.from(dirty.subarray(10, 10 + BOOTP_MIN_LENGTH)), Buffer.from(encode(m)), 'no stale byte survives')
  t.equal(dirty[9], 0xaa, 'nothing written before offset')
  t.equal(dirty[10 + BOOTP_MIN_LENGTH], 0xaa, 'nothing written after the message')
  t.same(decode(dirty, 10, BOOTP_MIN_LENGTH), m, 'decodes at an offset')
})

t.test('option value encodings', async (t) => {
  t.same(Array.from(uint32Option(3600)), [0, 0, 0x0e, 0x10])
  t.same(Array.from(uint16Option(1450)), [0x05, 0xaa])
  t.same(Array.from(ipOption('255.255.255.0')), [255, 255, 255, 0])
  t.same(Array.from(ipListOption(['10.0.0.1', '8.8.8.8'])), [10, 0, 0, 1, 8, 8, 8, 8])
  t.same(Array.from(stringOption('sy.lan')), [0x73, 0x79, 0x2e, 0x6c, 0x61, 0x6e])
  const opts = new Map([[51, uint32Option(0xffffffff)], [26, uint16Option(9000)], [1, ipOption('255.255.0.0')], [15, Uint8Array.of(0x61, 0x62, 0)]])
  t.equal(readUint32Option(opts, 51), 0xffffffff, 'unsigned')
  t.equal(readUint16Option(opts, 26), 9000)
  t.equal(readIpOption(opts, 1), '255.255.0.0')
  t.equal(readStringOption(opts, 15), 'ab', 'trailing NUL dropped')
})
