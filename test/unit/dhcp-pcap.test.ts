// What a real client sends: a QEMU guest's busybox udhcpc, captured on its TAP port.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import {
  BROADCAST_FLAG, DhcpMessageType, DhcpOption, decode, getClientId, getMaxMessageSize, getMessageType,
  getParameterRequestList, getServerId, ipOption, readIpOption, readUint32Option, encode, type DhcpMessage,
} from '../../src/gateway/dhcp/codec.js'
import { DhcpServer, type DhcpNetworkConfig } from '../../src/gateway/dhcp/server.js'
import { MemoryLeaseBackend } from '../../src/gateway/dhcp/memory-backend.js'
import { macToString, readMac } from '../../src/packet/mac.js'

const PCAP = fileURLToPath(new URL('../fixtures/dhcp/qemu-tap-dhcp.pcap', import.meta.url))
const NET: DhcpNetworkConfig = {
  enabled: true, serverIp: '10.0.0.1', subnetMask: '255.255.255.0', router: '10.0.0.1',
  dnsServers: ['10.0.0.1'], domainName: 'sy.internal', mtu: 1500, leaseSeconds: 3600,
}

interface Frame { data: Uint8Array }

/**
 * Records of a classic pcap file (24-byte global header, 16-byte record headers), either
 * byte order. Stops at the first record that does not fit: the fixture's tail is cut.
 */
function readPcap(file: Uint8Array): Frame[] {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength)
  const magic = dv.getUint32(0, true)
  if (magic !== 0xa1b2c3d4 && magic !== 0xd4c3b2a1) throw new Error('not a pcap file')
  const le = magic === 0xa1b2c3d4
  const snaplen = dv.getUint32(16, le)
  const linktype = dv.getUint32(20, le)
  if (linktype !== 1) throw new Error(`link type ${linktype}, expected Ethernet (1)`)
  const frames: Frame[] = []
  let off = 24
  while (off + 16 <= file.length) {
    const incl = dv.getUint32(off + 8, le)
    if (incl > snaplen || off + 16 + incl > file.length) break
    frames.push({ data: file.subarray(off + 16, off + 16 + incl) })
    off += 16 + incl
  }
  return frames
}

/** The UDP payload of an IPv4/UDP frame to port 67, else undefined. */
function dhcpPayload(f: Uint8Array): Uint8Array | undefined {
  if (f.length < 14 + 20 + 8) return undefined
  if (((f[12] << 8) | f[13]) !== 0x0800) return undefined
  const ip = 14
  if (f[ip] >> 4 !== 4) return undefined
  const ihl = (f[ip] & 0x0f) * 4
  if (f[ip + 9] !== 17) return undefined
  const udp = ip + ihl
  if (udp + 8 > f.length || ((f[udp + 2] << 8) | f[udp + 3]) !== 67) return undefined
  const udpLen = (f[udp + 4] << 8) | f[udp + 5]
  return f.subarray(udp + 8, Math.min(f.length, udp + udpLen))
}

const frames = readPcap(readFileSync(PCAP))
const discovers = frames.map((f) => ({ frame: f.data, payload: dhcpPayload(f.data) }))
  .filter((x): x is { frame: Uint8Array, payload: Uint8Array } => x.payload !== undefined)

t.test('the capture holds udhcpc DISCOVERs amid IPv6 noise', async (t) => {
  t.ok(frames.length >= 10, `${frames.length} frames`)
  t.equal(discovers.length, 3, 'three DISCOVER retries')
})

t.test('each DISCOVER decodes as udhcpc sent it', async (t) => {
  for (const { frame, payload } of discovers) {
    const m = decode(payload)
    t.equal(getMessageType(m.options), DhcpMessageType.DISCOVER)
    t.equal(macToString(readMac(m.chaddr, 0)), '52:54:00:12:34:56')
    t.equal(readMac(frame, 6), readMac(m.chaddr, 0), 'chaddr is the Ethernet source')
    t.equal(m.flags & BROADCAST_FLAG, 0, 'unicast replies accepted')
    t.equal(getMaxMessageSize(m.options), 576)
    t.same(getParameterRequestList(m.options), [1, 3, 6, 12, 15, 28, 42])
    t.equal(getClientId(m.options)?.[0], 1, 'client id: htype + MAC')
  }
})

t.test('the server answers each with an OFFER, then ACKs the REQUEST udhcpc would send', async (t) => {
  const backend = new MemoryLeaseBackend(['10.0.0.50', '10.0.0.51'])
  const server = new DhcpServer(backend)
  let offer: DhcpMessage | undefined
  for (const { payload } of discovers) {
    const r = server.handle('qemu', NET, payload)
    t.ok(r, 'a reply')
    if (!r) continue
    offer = decode(r.payload)
    t.equal(getMessageType(offer.options), DhcpMessageType.OFFER)
    t.equal(offer.yiaddr, '10.0.0.50', 'same address on every retry')
    t.equal(offer.xid, 0x0d671a43)
    t.same([r.broadcast, macToString(r.dstMac), r.dstIp], [false, '52:54:00:12:34:56', '10.0.0.50'])
    t.ok(r.payload.length >= 300 && r.payload.length <= 548, `${r.payload.length} bytes`)
    t.same([...offer.options.keys()], [53, 1, 3, 6, 15, 28, 54, 51, 58, 59, 26, 61])
  }
  t.equal(server.counters.offers, 3)
  if (!offer) return

  // udhcpc's REQUEST in SELECTING: its DISCOVER with type 3, options 50 and 54 added.
  const req = decode(discovers[0].payload)
  req.options = new Map([
    [DhcpOption.MESSAGE_TYPE, Uint8Array.of(DhcpMessageType.REQUEST)],
    [DhcpOption.REQUESTED_IP, ipOption(offer.yiaddr)],
    [DhcpOption.SERVER_ID, ipOption(getServerId(offer.options) ?? '')],
    ...[...req.options].filter(([code]) => code !== DhcpOption.MESSAGE_TYPE),
  ])
  const r = server.handle('qemu', NET, encode(req))
  t.ok(r)
  if (!r) return
  const ack = decode(r.payload)
  t.equal(getMessageType(ack.options), DhcpMessageType.ACK)
  t.equal(ack.yiaddr, '10.0.0.50')
  t.equal(readIpOption(ack.options, DhcpOption.SUBNET_MASK), '255.255.255.0')
  t.equal(readUint32Option(ack.options, DhcpOption.LEASE_TIME), 3600)
  t.equal(backend.lookup('qemu', readMac(req.chaddr, 0))?.committed, true)
})
