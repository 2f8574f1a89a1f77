import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import * as ethernet from '../../src/packet/ethernet.js'
import * as ipv4 from '../../src/packet/ipv4.js'
import * as udp from '../../src/packet/udp.js'
import { EtherType, ethPayloadType, ethSrc } from '../../src/packet/ethernet.js'
import { IpProtocol, ipv4Check, ipv4Protocol, ipv4Src, ipv4Dst, ipv4HeaderLength } from '../../src/packet/ipv4.js'
import { udpCheck, udpChecksumOk, udpDstPort, udpSrcPort } from '../../src/packet/udp.js'
import { BROADCAST_MAC, parseMac } from '../../src/packet/mac.js'

// A VM (QEMU, e1000, busybox udhcpc) on a TAP port: its first frames, captured on the TAP.
const PCAP = readFileSync(fileURLToPath(new URL('../fixtures/qemu-tap-dhcp.pcap', import.meta.url)))
const VM_MAC = parseMac('52:54:00:12:34:56')

interface PcapRecord {
  /** Offset of the frame in the file. */
  offset: number
  length: number
}

/**
 * Frames of a classic pcap file (not pcapng), read in place. Stops at the first record
 * that does not fit: this capture ends in a cut-off record, as a killed tcpdump leaves it.
 */
function pcapRecords(file: Uint8Array): { linkType: number; records: PcapRecord[] } {
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength)
  const magic = v.getUint32(0, true)
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d
  if (!le && v.getUint32(0, false) !== 0xa1b2c3d4 && v.getUint32(0, false) !== 0xa1b23c4d) throw new Error('not a pcap file')
  const snapLen = v.getUint32(16, le)
  const linkType = v.getUint32(20, le)
  const records: PcapRecord[] = []
  let off = 24
  while (off + 16 <= file.length) {
    const incl = v.getUint32(off + 8, le)
    if (incl > snapLen || off + 16 + incl > file.length) break
    records.push({ offset: off + 16, length: incl })
    off += 16 + incl
  }
  return { linkType, records }
}

const { linkType, records } = pcapRecords(PCAP)

t.test('the capture parses', async (t) => {
  t.equal(linkType, 1, 'Ethernet')
  t.equal(records.length, 11, 'complete records before the cut-off one')
  for (const r of records) {
    t.doesNotThrow(() => ethernet.decode(PCAP, r.offset, r.length), `frame at ${r.offset}`)
  }
})

t.test('DHCP DISCOVERs decode through ethernet, ipv4, udp', async (t) => {
  const discovers = records.filter((r) => ethernet.decode(PCAP, r.offset, r.length).etherType === EtherType.IPV4)
  t.equal(discovers.length, 3, 'udhcpc sent three')
  for (const [i, r] of discovers.entries()) {
    const eth = ethernet.decode(PCAP, r.offset, r.length)
    t.equal(eth.dst, BROADCAST_MAC)
    t.equal(eth.src, VM_MAC)
    t.equal(eth.vlan, undefined)
    const ip = ipv4.decode(eth.payload)
    t.equal(ip.protocol, IpProtocol.UDP)
    t.equal(ip.src, 0, 'from 0.0.0.0')
    t.equal(ip.dst, 0xffffffff, 'to 255.255.255.255')
    t.equal(ip.totalLength, 328)
    t.equal(ip.ttl, 64)
    const dgram = udp.decode(ip.payload, 0, undefined, { src: ip.src, dst: ip.dst })
    t.equal(dgram.srcPort, 68, 'from the client port')
    t.equal(dgram.dstPort, 67, 'to the server port')
    t.equal(dgram.length, 308)
    t.not(dgram.checksum, 0, 'checksum present and verified')
    const bootp = dgram.payload
    t.equal(bootp.length, 300)
    t.equal(bootp[0], 1, 'BOOTREQUEST')
    t.equal(Buffer.from(bootp.subarray(4, 8)).toString('hex'), '0d671a43', 'xid')
    t.equal(bootp[9], i, 'secs counts the retries')
    t.equal(Buffer.from(bootp.subarray(28, 34)).toString('hex'), '525400123456', 'chaddr')
    t.equal(Buffer.from(bootp.subarray(236, 240)).toString('hex'), '63825363', 'magic cookie')
    t.same(Array.from(bootp.subarray(240, 243)), [53, 1, 1], 'DHCP message type DISCOVER')
  }
})

t.test('the hot-path accessors agree, reading the capture in place', async (t) => {
  let dhcp = 0
  let ipv6 = 0
  let fromVm = 0
  for (const r of records) {
    const f = r.offset
    if (ethSrc(PCAP, f) === VM_MAC) fromVm++
    const type = ethPayloadType(PCAP, f)
    if (type === EtherType.IPV6) ipv6++
    if (type !== EtherType.IPV4) continue
    const ip = f + 14
    t.equal(ipv4Check(PCAP, ip, r.length - 14), null)
    t.equal(ipv4Protocol(PCAP, ip), IpProtocol.UDP)
    const l4 = ip + ipv4HeaderLength(PCAP, ip)
    const l4Len = r.length - 14 - ipv4HeaderLength(PCAP, ip)
    t.equal(udpCheck(PCAP, l4, l4Len), null)
    t.equal(udpChecksumOk(PCAP, l4, ipv4Src(PCAP, ip), ipv4Dst(PCAP, ip)), true)
    if (udpSrcPort(PCAP, l4) === 68 && udpDstPort(PCAP, l4) === 67) dhcp++
  }
  t.equal(dhcp, 3)
  t.equal(fromVm, 9, 'all but two MLD reports from the host side of the TAP')
  t.equal(ipv6, 8, 'the rest is IPv6 MLD, NS and RS')
})
