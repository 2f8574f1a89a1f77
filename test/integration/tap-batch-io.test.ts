// The addon's batched TAP I/O on a real TAP: a batch of reads (or writes) goes to the kernel
// in one io_uring_enter, and must still give frames in the order the TAP queued them, end at an
// empty queue without blocking, and report each write's result.
import t, { type Test } from 'tap'
import { native } from '../../src/native/binding.js'
import { makeNs, plug, uniqueName } from '../helpers/netns.js'
import { mustInNs, sleep, spawnInNs } from '../helpers/sh.js'

const FRAME_MAX = 2048
const SLOTS = 64
const COUNT = 40
const TAP_IP = '10.203.0.1'
const PEER_IP = '10.203.0.2'
const PEER_MAC = '02:00:00:20:30:02'

/** A TAP in the root side of the test (the fd) with its device in a fresh namespace. */
async function tapInNs(tt: Test) {
  const ns = await makeNs(tt)
  const name = uniqueName('sybio')
  const tap = native.tapOpen(name, 0)
  tt.teardown(() => native.closeFd(tap.fd))
  await plug(name, ns, `${TAP_IP}/24`)
  await mustInNs(ns, ['ip', 'neigh', 'replace', PEER_IP, 'lladdr', PEER_MAC, 'dev', name])
  const mac = (await mustInNs(ns, ['cat', `/sys/class/net/${name}/address`])).trim()
  return { ns, fd: tap.fd, name, mac }
}

const udpPayload = (slab: Uint8Array, off: number, len: number) => Buffer.from(slab.subarray(off + 42, off + len)).toString()

t.test('readBatch gives queued frames in order and stops at an empty queue', async (t) => {
  const { ns, fd } = await tapInNs(t)
  const slab = new Uint8Array(SLOTS * FRAME_MAX)
  const meta = new Int32Array(SLOTS * 2)
  while (native.readBatch(fd, slab, 0, meta, SLOTS, FRAME_MAX) > 0); // whatever came up with the link
  await mustInNs(ns, [
    'python3',
    '-c',
    `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range(1,${COUNT + 1}): s.sendto(str(i).encode(),('${PEER_IP}',9999))`,
  ])
  await sleep(100)
  const started = process.hrtime.bigint()
  const n = native.readBatch(fd, slab, 0, meta, SLOTS, FRAME_MAX)
  t.equal(n, COUNT, 'every queued frame in one batch')
  const got: string[] = []
  for (let i = 0; i < n; i++) got.push(udpPayload(slab, meta[2 * i], meta[2 * i + 1]))
  t.same(got, Array.from({ length: COUNT }, (_, i) => String(i + 1)), 'in the order they were queued')
  for (let i = 1; i < n; i++) if (meta[2 * i] < meta[2 * i - 2] + meta[2 * i - 1]) t.fail(`frame ${i} overlaps frame ${i - 1}`)
  t.equal(native.readBatch(fd, slab, 0, meta, SLOTS, FRAME_MAX), 0, 'an empty queue reads nothing')
  t.ok(process.hrtime.bigint() - started < 1_000_000_000n, 'and does not wait for more')
  t.equal(native.readBatch(fd, slab, 0, meta, 1, FRAME_MAX), 0, 'one frame wanted, none there: nothing')
})

t.test('writeBatch delivers a batch in order and reports each frame', async (t) => {
  const { ns, fd, name, mac } = await tapInNs(t)
  const sink = spawnInNs(ns, [
    'python3',
    '-u',
    '-c',
    `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('${TAP_IP}',9998))\ns.settimeout(3)\nprint('ready',flush=True)\ntry:\n  while True: print(s.recv(100).decode(),flush=True)\nexcept socket.timeout: pass`,
  ])
  t.teardown(() => sink.kill('SIGKILL'))
  let out = ''
  sink.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  const done = new Promise((r) => sink.on('exit', r))
  while (!out.includes('ready')) await sleep(20)

  const slab = new Uint8Array(SLOTS * FRAME_MAX)
  const desc = new Int32Array((COUNT + 1) * 4)
  const lengths: number[] = []
  for (let i = 0; i < COUNT; i++) {
    const off = i * 256
    lengths.push(udpFrame(slab, off, macBytes(mac), macBytes(PEER_MAC), PEER_IP, TAP_IP, 9998, String(i + 1)))
    desc.set([fd, off, lengths[i], 0], i * 4)
  }
  // A frame out of the slab's bounds is refused alone; the others still go.
  desc.set([fd, slab.length - 10, 100, 0], COUNT * 4)
  t.equal(native.writeBatch(slab, desc, COUNT + 1), COUNT, 'every frame in bounds written')
  for (let i = 0; i < COUNT; i++) if (desc[i * 4 + 3] !== lengths[i]) t.fail(`frame ${i}: result ${desc[i * 4 + 3]}`)
  t.ok(desc[COUNT * 4 + 3] < 0, 'the out-of-bounds frame has an error result')
  await done
  const got = out.split('\n').filter((l) => l && l !== 'ready')
  t.same(got, Array.from({ length: COUNT }, (_, i) => String(i + 1)), `the stack in ${name}'s namespace got them in order`)
})

function macBytes(mac: string): number[] {
  return mac.split(':').map((h) => parseInt(h, 16))
}

function ipBytes(ip: string): number[] {
  return ip.split('.').map(Number)
}

/** An Ethernet + IPv4 + UDP frame (UDP checksum 0: none) at buf[off]; returns its length. */
function udpFrame(buf: Uint8Array, off: number, dstMac: number[], srcMac: number[], srcIp: string, dstIp: string, dport: number, text: string): number {
  const payload = Buffer.from(text)
  const udpLen = 8 + payload.length
  const ipLen = 20 + udpLen
  buf.set(dstMac, off)
  buf.set(srcMac, off + 6)
  buf.set([0x08, 0x00], off + 12)
  const ip = off + 14
  buf.set([0x45, 0, ipLen >> 8, ipLen & 0xff, 0, 0, 0x40, 0, 64, 17, 0, 0, ...ipBytes(srcIp), ...ipBytes(dstIp)], ip)
  let sum = 0
  for (let i = 0; i < 20; i += 2) sum += (buf[ip + i] << 8) | buf[ip + i + 1]
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16)
  const csum = ~sum & 0xffff
  buf[ip + 10] = csum >> 8
  buf[ip + 11] = csum & 0xff
  const udp = ip + 20
  buf.set([0x30, 0x39, dport >> 8, dport & 0xff, udpLen >> 8, udpLen & 0xff, 0, 0], udp)
  buf.set(payload, udp + 8)
  return 14 + ipLen
}
