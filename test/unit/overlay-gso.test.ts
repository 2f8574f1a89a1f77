// The overlay's software offloads in the addon: TSO super-frames segmented on their way into
// the VXLAN tunnel (native/gso.cc), checksums completed, malformed offload headers counted and
// dropped; and on receipt, a UDP GRO train coalesced back into one super-frame or split.
// Checksums are verified here with a separate JS implementation, not the addon's.
import dgram from 'node:dgram'
import { spawnSync } from 'node:child_process'
import t, { type Test } from 'tap'
import { native } from '../../src/native/binding.js'
import { prng } from '../helpers/packet-fuzz.js'

const HDR = native.VNET_HDR_SIZE // 10: struct virtio_net_hdr
const MTU = 1450
const NEEDS_CSUM = 1
const GSO_TCPV4 = 1
const GSO_UDP = 3
const GSO_TCPV6 = 4
const GSO_ECN = 0x80
const FIN = 0x01
const PSH = 0x08
const ACK = 0x10
const CWR = 0x80
const ERR = Object.fromEntries(native.gsoErrorNames.map((n, i) => [n, i])) as Record<string, number>

// ---------------------------------------------------------------- independent checksum
function sum16(b: Uint8Array, off: number, len: number, acc = 0): number {
  for (let i = 0; i + 1 < len; i += 2) acc += (b[off + i] << 8) | b[off + i + 1]
  if (len & 1) acc += b[off + len - 1] << 8
  return acc
}
function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536)
  return s
}
/** A range including its checksum field sums to 0xffff when the checksum is right. */
const verifies = (s: number): boolean => fold(s) === 0xffff

function ipv4Ok(f: Uint8Array, ip: number): boolean {
  return verifies(sum16(f, ip, (f[ip] & 15) * 4))
}
function tcpOk(f: Uint8Array, ip: number, v6: boolean): boolean {
  const l4 = ip + (v6 ? 40 : (f[ip] & 15) * 4)
  const tcpLen = v6 ? be16(f, ip + 4) : be16(f, ip + 2) - (l4 - ip)
  const pseudo = v6 ? sum16(f, ip + 8, 32) : sum16(f, ip + 12, 8)
  return verifies(sum16(f, l4, tcpLen, pseudo + 6 + tcpLen))
}
function udpOk(f: Uint8Array, ip: number): boolean {
  const l4 = ip + (f[ip] & 15) * 4
  const len = be16(f, l4 + 4)
  return verifies(sum16(f, l4, len, sum16(f, ip + 12, 8) + 17 + len))
}
const be16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1]
const be32 = (b: Uint8Array, o: number): number => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0

// ---------------------------------------------------------------- frames
interface SuperFrame {
  buf: Uint8Array
  payload: Uint8Array
  ip: number // offset of the IP header in the frame (after the vnet header)
  hlen: number
}

/**
 * A TSO super-frame as a TAP with offloads hands it over: virtio-net header, Ethernet, IPv4
 * (or IPv6), TCP with a 12-byte timestamp option, `payloadLen` bytes; checksum left partial.
 */
function superFrame(payloadLen: number, opts: { gso?: number; v6?: boolean; flags?: number; seq?: number; ecn?: boolean; seed?: number } = {}): SuperFrame {
  const v6 = opts.v6 ?? false
  const ipLen = v6 ? 40 : 20
  const tcpLen = 32
  const ip = 14
  const hlen = ip + ipLen + tcpLen
  const buf = new Uint8Array(HDR + hlen + payloadLen)
  const f = buf.subarray(HDR)
  const rnd = prng(opts.seed ?? 7)
  const payload = f.subarray(hlen)
  for (let i = 0; i < payloadLen; i++) payload[i] = (rnd() * 256) | 0
  f.set([0x02, 0, 0, 0, 0, 0x12, 0x02, 0, 0, 0, 0, 0x11])
  f[12] = v6 ? 0x86 : 0x08
  f[13] = v6 ? 0xdd : 0x00
  if (v6) {
    f[ip] = 0x60
    f[ip + 4] = (tcpLen + payloadLen) >> 8
    f[ip + 5] = (tcpLen + payloadLen) & 0xff
    f[ip + 6] = 6
    f[ip + 7] = 64
    f.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11], ip + 8)
    f.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12], ip + 24)
  } else {
    const tot = ipLen + tcpLen + payloadLen
    f.set([0x45, 0, tot >> 8, tot & 0xff, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 235, 0, 11, 10, 235, 0, 12], ip)
  }
  const th = ip + ipLen
  const seq = opts.seq ?? 0xfffff000 // wraps inside the frame
  f.set([0x9c, 0x41, 0x14, 0x51, seq >>> 24, (seq >>> 16) & 0xff, (seq >>> 8) & 0xff, seq & 0xff, 0, 0, 0x10, 0, 0x80, opts.flags ?? ACK | PSH, 0x01, 0xf6, 0xab, 0xcd, 0, 0], th)
  f.set([1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78], th + 20)
  const gso = opts.gso ?? 1398
  buf[0] = NEEDS_CSUM
  buf[1] = (v6 ? GSO_TCPV6 : GSO_TCPV4) | (opts.ecn ? GSO_ECN : 0)
  buf[2] = hlen & 0xff
  buf[3] = hlen >> 8
  buf[4] = gso & 0xff
  buf[5] = gso >> 8
  buf[6] = th & 0xff
  buf[7] = th >> 8
  buf[8] = 16
  return { buf, payload: payload.slice(), ip, hlen }
}

const OUT = new Uint8Array(1 << 20)
const META = new Int32Array(4096)

function segment(buf: Uint8Array, mtu = MTU): number {
  return native.gsoSegment(buf, 0, buf.length, HDR, mtu, OUT, META)
}

/** Checks the segments in OUT/META against the super-frame; returns the reassembled payload. */
function checkSegments(t: Test, sf: SuperFrame, n: number, gso: number, v6: boolean): Uint8Array {
  const f0 = sf.buf.subarray(HDR)
  const th0 = sf.ip + (v6 ? 40 : 20)
  const seq0 = be32(f0, th0 + 4)
  const flags0 = f0[th0 + 13]
  const id0 = be16(f0, sf.ip + 4)
  const parts: Uint8Array[] = []
  let bad = 0
  for (let k = 0; k < n; k++) {
    const off = META[2 * k]
    const len = META[2 * k + 1]
    const f = OUT.subarray(off, off + len)
    const plen = len - sf.hlen
    const last = k === n - 1
    const why: string[] = []
    if (!last && plen !== gso) why.push(`payload ${plen} != gso ${gso}`)
    if (len - 14 > MTU) why.push(`IP packet ${len - 14} > MTU`)
    if (!v6 && be16(f, sf.ip + 2) !== len - 14) why.push('IP total length')
    if (v6 && be16(f, sf.ip + 4) !== len - 14 - 40) why.push('IPv6 payload length')
    if (!v6 && be16(f, sf.ip + 4) !== ((id0 + k) & 0xffff)) why.push('IP id')
    if (!v6 && !ipv4Ok(f, sf.ip)) why.push('IP checksum')
    const th = sf.ip + (v6 ? 40 : 20)
    if (be32(f, th + 4) !== ((seq0 + k * gso) >>> 0)) why.push(`seq ${be32(f, th + 4)}`)
    let want = flags0
    if (!last) want &= ~(FIN | PSH)
    if (k > 0) want &= ~CWR
    if (f[th + 13] !== want) why.push(`flags ${f[th + 13].toString(16)} != ${want.toString(16)}`)
    if (!tcpOk(f, sf.ip, v6)) why.push('TCP checksum')
    // Everything else in the headers is the super-frame's.
    for (const [a, b] of [[0, 14], [th, th + 4], [th + 8, th + 13], [th + 14, th + 16], [th + 18, sf.hlen]]) {
      for (let i = a; i < b; i++) if (f[i] !== f0[i]) why.push(`header byte ${i}`)
    }
    if (why.length) {
      bad++
      if (bad < 4) t.fail(`segment ${k}: ${why.join(', ')}`)
    }
    parts.push(f.slice(sf.hlen))
  }
  t.equal(bad, 0, `all ${n} segments: lengths, IP id, seq, flags, IP and TCP checksums`)
  return Buffer.concat(parts)
}

t.test('a 64 KiB TCPv4 super-frame becomes MTU-sized segments with valid checksums', async (t) => {
  const payloadLen = 65535 - 20 - 32
  const sf = superFrame(payloadLen, { flags: ACK | PSH | FIN | CWR })
  const n = segment(sf.buf)
  t.equal(n, Math.ceil(payloadLen / 1398), `${n} segments`)
  const joined = checkSegments(t, sf, n, 1398, false)
  t.same(Buffer.compare(joined, sf.payload), 0, 'the payloads reassemble to the original')
  t.equal(META[2 * (n - 1) + 1] - sf.hlen, payloadLen - (n - 1) * 1398, 'the last segment carries the rest')
})

t.test('odd payload sizes, ECN, a sequence number that wraps', async (t) => {
  for (const [len, gso] of [[1399, 1398], [2797, 1398], [5001, 1000], [1, 536], [4096, 1024]]) {
    const sf = superFrame(len, { gso, ecn: true, flags: ACK | CWR | PSH, seq: 0xffffffff - 100, seed: len })
    const n = segment(sf.buf)
    t.equal(n, Math.ceil(len / gso), `${len} bytes at ${gso}: ${n} segments`)
    t.same(Buffer.compare(checkSegments(t, sf, n, gso, false), sf.payload), 0, 'reassembles')
  }
})

t.test('a TCPv6 super-frame', async (t) => {
  const sf = superFrame(20000, { v6: true, gso: 1378 })
  const n = segment(sf.buf)
  t.equal(n, Math.ceil(20000 / 1378))
  t.same(Buffer.compare(checkSegments(t, sf, n, 1378, true), sf.payload), 0, 'reassembles')
})

t.test('NEEDS_CSUM without GSO: the checksum is completed in place', async (t) => {
  // UDP 10.235.0.11:40001 -> 10.235.0.12:53, 30 bytes of payload, field = pseudo-header sum.
  const buf = new Uint8Array(HDR + 14 + 20 + 8 + 30)
  const f = buf.subarray(HDR)
  f.set([2, 0, 0, 0, 0, 0x12, 2, 0, 0, 0, 0, 0x11, 8, 0])
  f.set([0x45, 0, 0, 58, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 235, 0, 11, 10, 235, 0, 12], 14)
  const ipsum = ~fold(sum16(f, 14, 20)) & 0xffff
  f[24] = ipsum >> 8
  f[25] = ipsum & 0xff
  f.set([0x9c, 0x41, 0, 53, 0, 38, 0, 0], 34)
  for (let i = 0; i < 30; i++) f[42 + i] = i * 7
  const pseudo = fold(sum16(f, 26, 8) + 17 + 38)
  f[40] = pseudo >> 8
  f[41] = pseudo & 0xff
  buf[0] = NEEDS_CSUM
  buf[6] = 34
  buf[8] = 6
  t.equal(segment(buf), 1)
  const out = OUT.subarray(0, META[1])
  t.ok(udpOk(out, 14), 'UDP checksum valid')
  t.ok(udpOk(f, 14), 'completed in the frame itself (a flood to a local port sees the same bytes)')
  t.equal(buf[0] & NEEDS_CSUM, 0, 'NEEDS_CSUM cleared')
  t.equal(buf[6] | buf[7] | buf[8] | buf[9], 0, 'offsets cleared')
  t.equal(segment(buf), 1, 'a complete frame passes unchanged')
  t.ok(udpOk(OUT.subarray(0, META[1]), 14), 'and stays valid')
})

const MALFORMED: [string, () => Uint8Array, string][] = [
    ['hdr_len beyond the frame', () => set(superFrame(10000).buf, (b) => ((b[2] = 0xff), (b[3] = 0xff))), 'badHdrLen'],
    ['gso_size 0', () => set(superFrame(10000).buf, (b) => ((b[4] = 0), (b[5] = 0))), 'badGsoSize'],
    ['gso_size huge (65000)', () => set(superFrame(65000).buf, (b) => ((b[4] = 65000 & 0xff), (b[5] = 65000 >> 8))), 'oversize'],
    ['segments over the MTU (gso 1500)', () => superFrame(10000, { gso: 1500 }).buf, 'oversize'],
    ['not IPv4 (ARP under TCPV4)', () => set(superFrame(10000).buf, (b) => ((b[HDR + 12] = 0x08), (b[HDR + 13] = 0x06))), 'notTcpIp'],
    ['IPv6 frame marked TCPV4', () => set(superFrame(10000, { v6: true }).buf, (b) => (b[1] = GSO_TCPV4)), 'notTcpIp'],
    ['UDP, not TCP', () => set(superFrame(10000).buf, (b) => (b[HDR + 14 + 9] = 17)), 'notTcpIp'],
    ['an IP fragment', () => set(superFrame(10000).buf, (b) => (b[HDR + 14 + 6] = 0x20)), 'notTcpIp'],
    ['truncated TCP header', () => truncatedTcp(), 'truncated'],
    ['IP length beyond the frame', () => superFrame(10000).buf.subarray(0, HDR + 14 + 52 + 5000), 'truncated'],
    ['TCP data offset below 5', () => set(superFrame(10000).buf, (b) => (b[HDR + 34 + 12] = 0x40)), 'truncated'],
    ['too many segments (gso_size 16 over 64 KiB)', () => set(superFrame(60000).buf, (b) => ((b[4] = 16), (b[5] = 0))), 'tooManySegments'],
    ['UFO (gso_type UDP)', () => set(superFrame(10000).buf, (b) => (b[1] = GSO_UDP)), 'unsupportedGso'],
    ['unknown gso_type', () => set(superFrame(10000).buf, (b) => (b[1] = 9)), 'unsupportedGso'],
    ['checksum offsets outside the frame', () => set(new Uint8Array(HDR + 60), (b) => ((b[0] = NEEDS_CSUM), (b[6] = 58), (b[8] = 6))), 'badCsumOffsets'],
]

t.test('malformed offload headers are refused with a reason, never a crash', async (t) => {
  for (const [what, make, reason] of MALFORMED) t.equal(native.gsoErrorNames[-segment(make())], reason, what)
})

function set(b: Uint8Array, fn: (b: Uint8Array) => unknown): Uint8Array {
  fn(b)
  return b
}

/** IP says 30 bytes of TCP follow: not even a whole TCP header. */
function truncatedTcp(): Uint8Array {
  const b = superFrame(0).buf.subarray(0, HDR + 14 + 20 + 10)
  b[2] = b[3] = 0 // no hdr_len hint
  b[HDR + 14 + 2] = 0
  b[HDR + 14 + 3] = 30
  return b
}

t.test('fuzz: random offload headers and header bytes never crash the segmentation', async (t) => {
  const rnd = prng(0x6e5)
  const names = new Set(native.gsoErrorNames)
  const seen = new Map<string, number>()
  for (let i = 0; i < 3000; i++) {
    const sf = superFrame(1 + ((rnd() * 20000) | 0), { v6: rnd() < 0.3, seed: i })
    const b = sf.buf
    const flips = 1 + ((rnd() * 4) | 0)
    for (let j = 0; j < flips; j++) {
      const at = rnd() < 0.5 ? (rnd() * HDR) | 0 : HDR + ((rnd() * sf.hlen) | 0)
      b[at] = (rnd() * 256) | 0
    }
    const cut = rnd() < 0.2 ? (rnd() * b.length) | 0 : b.length
    const r = native.gsoSegment(b, 0, Math.max(cut, HDR), HDR, MTU, OUT, META)
    const key = r > 0 ? 'segmented' : native.gsoErrorNames[-r] ?? `code ${r}`
    seen.set(key, (seen.get(key) ?? 0) + 1)
    if (r > 0) for (let k = 0; k < r; k++) if (META[2 * k + 1] - 14 > MTU) t.fail(`case ${i}: segment over the MTU`)
  }
  t.ok([...seen.keys()].every((k) => k === 'segmented' || names.has(k)), `outcomes: ${JSON.stringify(Object.fromEntries(seen))}`)
})

// ---------------------------------------------------------------- the real transmit path
const VNI = 5001

async function listen(): Promise<{ sock: dgram.Socket; port: number; got: Buffer[] }> {
  const sock = dgram.createSocket('udp4')
  const got: Buffer[] = []
  sock.on('message', (m) => got.push(m))
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r))
  return { sock, port: sock.address().port, got }
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
}

for (const udpGso of [true, false]) {
  t.test(`VxlanTx sends segments ${udpGso ? 'as UDP GSO' : 'one message each'}, counts drops`, async (t) => {
    const rx = await listen()
    t.teardown(() => rx.sock.close())
    const fd = native.udpOpen(0x7f000001, 0)
    t.teardown(() => native.closeFd(fd))
    const counters = new Float64Array(native.vxlanTxCounters.count)
    const tx = new native.VxlanTx(fd, rx.port, HDR, counters, MTU)
    tx.setMtu(VNI, MTU)
    if (!udpGso) tx.setUdpGso(false)
    const sf = superFrame(65535 - 52)
    const bad = set(superFrame(3000).buf, (b) => ((b[4] = 0), (b[5] = 0)))
    const slab = new Uint8Array(sf.buf.length + bad.length)
    slab.set(sf.buf)
    slab.set(bad, sf.buf.length)
    const desc = new Int32Array([0x7f000001, VNI, 0, sf.buf.length, 0, 0x7f000001, VNI, sf.buf.length, bad.length, 0])
    const segs = Math.ceil((65535 - 52) / 1398)
    const sent = tx.send(slab, desc, 2)
    t.equal(sent, segs, `${segs} datagrams`)
    t.equal(desc[4], 8 + segs * sf.hlen + sf.payload.length, 'result: 8 + inner bytes sent')
    t.ok(desc[9] < 0, 'the malformed frame: an error result')
    await until(() => rx.got.length >= segs)
    t.equal(rx.got.length, segs, 'all arrived')
    const parts: Uint8Array[] = []
    let ok = 0
    for (const [k, d] of rx.got.entries()) {
      const f = new Uint8Array(d.buffer, d.byteOffset + 8, d.length - 8)
      const good = d[0] === 0x08 && ((d[4] << 16) | (d[5] << 8) | d[6]) === VNI && f.length - 14 <= MTU && ipv4Ok(f, 14) && tcpOk(f, 14, false)
      if (good && (k === segs - 1 || d.length === 8 + sf.hlen + 1398)) ok++
      parts.push(f.slice(sf.hlen))
    }
    t.equal(ok, segs, 'VXLAN header with the VNI, inner frame <= MTU with valid checksums, equal sizes but the last')
    t.same(Buffer.compare(Buffer.concat(parts), sf.payload), 0, 'payload intact')
    const c = (name: string): number => counters[['txDatagrams', 'gsoFrames', 'gsoSegments'].indexOf(name)]
    t.equal(c('txDatagrams'), segs)
    t.equal(c('gsoFrames'), 1)
    t.equal(c('gsoSegments'), segs)
    t.equal(counters[native.vxlanTxCounters.dropBase + ERR.badGsoSize], 1, 'the drop is counted by reason')
  })
}

t.test('VxlanTx: each malformed frame is a counted drop with its reason, and nothing is sent', async (t) => {
  const rx = await listen()
  t.teardown(() => rx.sock.close())
  const fd = native.udpOpen(0x7f000001, 0)
  t.teardown(() => native.closeFd(fd))
  const counters = new Float64Array(native.vxlanTxCounters.count)
  const tx = new native.VxlanTx(fd, rx.port, HDR, counters, MTU)
  tx.setMtu(VNI, MTU)
  const base = native.vxlanTxCounters.dropBase
  for (const [what, make, reason] of MALFORMED) {
    const frame = make()
    const slab = Uint8Array.from(frame)
    const desc = new Int32Array([0x7f000001, VNI, 0, slab.length, 0])
    const before = counters[base + ERR[reason]]
    t.equal(tx.send(slab, desc, 1), 0, `${what}: nothing sent`)
    t.ok(desc[4] < 0 && counters[base + ERR[reason]] === before + 1, `${what}: counted as ${reason}`)
  }
  await new Promise((r) => setTimeout(r, 50))
  t.equal(rx.got.length, 0, 'no datagram left')
})

t.test('VxlanTx: a NEEDS_CSUM frame leaves complete, descriptors out of the slab are refused', async (t) => {
  const rx = await listen()
  t.teardown(() => rx.sock.close())
  const fd = native.udpOpen(0x7f000001, 0)
  t.teardown(() => native.closeFd(fd))
  const counters = new Float64Array(native.vxlanTxCounters.count)
  const tx = new native.VxlanTx(fd, rx.port, HDR, counters, MTU)
  const sf = superFrame(500)
  sf.buf[1] = 0 // no GSO, checksum still partial: the TCP field holds the pseudo-header sum
  const f = sf.buf.subarray(HDR)
  const pseudo = fold(sum16(f, 26, 8) + 6 + (f.length - 34))
  f[34 + 16] = pseudo >> 8
  f[34 + 17] = pseudo & 0xff
  const desc = new Int32Array([0x7f000001, VNI, 0, sf.buf.length, 0, 0x7f000001, VNI, 100, 1 << 20, 0, 0x7f000001, VNI, 0, 5, 0])
  t.equal(tx.send(sf.buf, desc, 3), 1)
  t.ok(desc[9] < 0 && desc[14] < 0, 'out-of-slab and runt descriptors get an error')
  await until(() => rx.got.length >= 1)
  const d = rx.got[0]
  t.ok(tcpOk(new Uint8Array(d.buffer, d.byteOffset + 8, d.length - 8), 14, false), 'TCP checksum completed')
  t.equal(counters[3], 1, 'checksumsCompleted')
})

// ---------------------------------------------------------------- the receive side (UDP GRO)
interface Rx {
  /** Length of each frame delivered (negative: dropped as truncated). */
  lens: number[]
  /** Copies of the frames: the slab is reused by the next read. */
  frames: Uint8Array[]
}

async function receiver(t: Test): Promise<{ fd: number; port: number; rx: Rx }> {
  // udpOpen binds a port we pick: find a free one first.
  const probe = dgram.createSocket('udp4')
  await new Promise<void>((r) => probe.bind(0, '127.0.0.1', r))
  const port = probe.address().port
  probe.close()
  const fd = native.udpOpen(0x7f000001, port)
  const slot = 65536 + 256
  const slab = new Uint8Array(8 * slot)
  const meta = new Int32Array(8 * 64 * 2)
  const srcs = new Uint32Array(8 * 64)
  const rx: Rx = { lens: [], frames: [] }
  const poller = new native.Poller(fd, slab, meta, 8, slot, (n) => {
    for (let i = 0; i < n; i++) {
      const off = meta[2 * i]
      const len = meta[2 * i + 1]
      rx.lens.push(len)
      rx.frames.push(len > 0 ? slab.slice(off, off + len) : new Uint8Array(0))
    }
  }, srcs, HDR - 8)
  poller.start()
  t.teardown(() => {
    poller.close()
    native.closeFd(fd)
  })
  return { fd, port, rx }
}

t.test('UDP GRO: a train of one TCP flow is coalesced back into one super-frame', async (t) => {
  const PAYLOAD = 65535 - 52
  const { port, rx } = await receiver(t)
  const fd = native.udpOpen(0x7f000001, 0)
  t.teardown(() => native.closeFd(fd))
  const tx = new native.VxlanTx(fd, port, HDR, new Float64Array(native.vxlanTxCounters.count), MTU)
  // 47 segments: two UDP GSO sends (44 + 3), two messages, appended into one frame.
  const sf = superFrame(PAYLOAD, { flags: ACK | PSH })
  const desc = new Int32Array([0x7f000001, VNI, 0, sf.buf.length, 0])
  t.equal(tx.send(sf.buf, desc, 1), Math.ceil(PAYLOAD / 1398))
  await until(() => rx.frames.length >= 1)
  await new Promise((r) => setTimeout(r, 50))
  t.equal(rx.frames.length, 1, 'one frame')
  const m = rx.frames[0]
  // [2 bytes room][VXLAN 8][inner frame]
  const f = m.subarray(HDR)
  t.equal(f.length, sf.hlen + PAYLOAD, 'all the payload behind one set of headers')
  t.same(Buffer.compare(f.subarray(sf.hlen), sf.payload), 0, 'payload in order')
  t.equal(be16(f, 16), f.length - 14, 'IP total length')
  t.ok(ipv4Ok(f, 14), 'IP checksum')
  t.equal(be32(f, 34 + 4), 0xfffff000, 'the first sequence number')
  t.equal(f[34 + 13], ACK | PSH, 'PSH of the last segment')
  const pseudo = fold(sum16(f, 26, 8) + 6 + (f.length - 34))
  t.equal(be16(f, 34 + 16), pseudo, 'TCP checksum field: the pseudo-header sum (partial, NEEDS_CSUM)')
})

t.test('UDP GRO: a train that is not one flow in order is split into its datagrams', async (t) => {
  const { port, rx } = await receiver(t)
  // Three 300-byte VXLAN datagrams in one UDP GSO send, each a distinct non-TCP frame.
  const py = `
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
d = b''
for k in range(3):
    inner = b'\\x02\\x00\\x00\\x00\\x00\\x12' + b'\\x02\\x00\\x00\\x00\\x00\\x11' + b'\\x88\\xb5' + bytes([k]) * (300 - 8 - 14)
    d += struct.pack('!BxxxI', 8, ${VNI} << 8) + inner
d = d[:-50]  # the last one shorter
s.sendmsg([d], [(socket.SOL_UDP, 103, struct.pack('H', 300))], 0, ('127.0.0.1', ${port}))
`
  const r = spawnSync('python3', ['-c', py], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  await until(() => rx.frames.length >= 3)
  await new Promise((r) => setTimeout(r, 50))
  t.equal(rx.frames.length, 3, 'three frames')
  t.same(rx.lens, [HDR - 8 + 300, HDR - 8 + 300, HDR - 8 + 250], 'each with room for its virtio-net header')
  rx.frames.forEach((m, k) => {
    t.equal(m[HDR - 8], 0x08, `frame ${k}: its VXLAN header where the frame's header goes`)
    t.equal(m[HDR + 14], k, `frame ${k}: its own bytes`)
    t.equal(m[m.length - 1], k, `frame ${k}: to the end`)
  })
})
