// Overlay networks over VXLAN: a Switchyard host and a host running the kernel's vxlan device
// plus a bridge, and two Switchyard hosts, each host a namespace with its own underlay address.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { startDaemon, type TestDaemon } from '../helpers/daemon.js'
import { makeNs, sandboxName } from '../helpers/netns.js'
import { inNs, must, mustInNs, ping, sleep, spawnInNs } from '../helpers/sh.js'
import { underlay } from '../helpers/underlay.js'

const VNI = 5000
const A = '10.229.0.1'
const B = '10.229.0.2'
const C = '10.229.0.3'

/** A host with the kernel's vxlan device and a bridge, and a sandbox behind it at `addr`. */
async function kernelHost(t: Test, ns: string, local: string, peer: string, addr: string): Promise<string> {
  const sb = await makeNs(t, 'kb')
  await mustInNs(ns, ['sh', '-c', 'for f in iptables ip6tables arptables; do echo 0 > /proc/sys/net/bridge/bridge-nf-call-$f; done'])
  await must('ip', ['-n', ns, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', String(VNI), 'dstport', '4789', 'local', local, 'remote', peer, 'dev', 'ul0'])
  await must('ip', ['-n', ns, 'link', 'add', 'br0', 'type', 'bridge'])
  await must('ip', ['-n', ns, 'link', 'set', 'vx0', 'master', 'br0'])
  await must('ip', ['link', 'add', 'kbv', 'netns', ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', sb])
  await must('ip', ['-n', ns, 'link', 'set', 'kbv', 'master', 'br0'])
  for (const l of ['vx0', 'br0', 'kbv']) await must('ip', ['-n', ns, 'link', 'set', l, 'up'])
  await must('ip', ['-n', sb, 'addr', 'add', `${addr}/24`, 'dev', 'eth0'])
  await must('ip', ['-n', sb, 'link', 'set', 'eth0', 'mtu', '1450', 'up'])
  return sb
}

async function overlayNet(d: TestDaemon, peers: string): Promise<void> {
  const r = await d.cli(['network', 'create', 'ov', '--driver', 'overlay', '--subnet', '10.235.0.0/24', '-o', `vni=${VNI}`, '-o', `peers=${peers}`])
  if (r.code !== 0) throw new Error(`overlay network: ${r.stderr}`)
}

/**
 * Inner frames in a pcap of the underlay. A capture point before segmentation (a veth passes a
 * UDP GSO send on whole) shows one packet holding several VXLAN datagrams back to back; each
 * is walked by its inner IP length, so every inner packet is seen either way. `bad` counts
 * datagrams whose chain does not add up.
 */
function innerPackets(pcap: Buffer): { sizes: number[]; bad: number } {
  const sizes: number[] = []
  let bad = 0
  for (let o = 24; o + 16 <= pcap.length; ) {
    const cap = pcap.readUInt32LE(o + 8)
    const pkt = pcap.subarray(o + 16, o + 16 + cap)
    o += 16 + cap
    if (pkt.length < 42 || pkt.readUInt16BE(12) !== 0x0800 || pkt[23] !== 17) continue
    const udp = 14 + (pkt[14] & 15) * 4
    if (pkt.readUInt16BE(udp + 2) !== 4789) continue
    let d = udp + 8
    while (d + 8 + 14 + 4 <= pkt.length) {
      const inner = d + 8
      const ipLen = pkt.readUInt16BE(inner + 12) === 0x0800 ? pkt.readUInt16BE(inner + 16) : pkt.length - inner - 14
      sizes.push(ipLen)
      d = inner + 14 + ipLen
    }
    if (d !== pkt.length) bad++
  }
  return { sizes, bad }
}

async function iperf(t: Test, server: string, client: string, addr: string, reverse: boolean): Promise<number> {
  const s = spawnInNs(server, ['iperf3', '-s', '-1', '-p', '5320'])
  t.teardown(() => s.kill('SIGKILL'))
  await sleep(300)
  const r = await inNs(client, ['iperf3', '-c', addr, '-p', '5320', '-t', '2', '-J', ...(reverse ? ['-R'] : [])], 30_000)
  if (r.code !== 0) return 0
  return JSON.parse(r.stdout).end.sum_received.bits_per_second as number
}

t.test('interop with the kernel vxlan device', async (t) => {
  const hostA = await makeNs(t, 'ha')
  const hostB = await makeNs(t, 'hb')
  await underlay(t, [
    { ns: hostA, ip: A },
    { ns: hostB, ip: B },
  ])
  const kb = await kernelHost(t, hostB, B, A, '10.235.0.20')
  const d = await startDaemon(t, ['--default-subnet', '10.236.0.0/24', '--advertise-addr', A], hostA)
  await overlayNet(d, B)
  const sa = sandboxName(t, 'ov')
  t.equal((await d.cli(['sandbox', 'create', sa, '--network', 'ov', '--ip', '10.235.0.10'])).code, 0)
  t.equal((await mustInNs(sa, ['cat', '/sys/class/net/eth0/mtu'])).trim(), '1450', 'the overlay MTU is 1450 on a 1500 underlay')

  const dump = spawnInNs(hostA, ['timeout', '10', 'tcpdump', '-i', 'ul0', '-n', '-v', '-c', '4', 'udp port 4789'])
  t.teardown(() => dump.kill('SIGKILL'))
  const dumped = new Promise((r) => dump.once('exit', r))
  let captured = ''
  dump.stdout!.on('data', (c: Buffer) => (captured += c.toString()))
  await sleep(800)
  t.equal(await ping(sa, '10.235.0.20', 3), 3, 'Switchyard sandbox -> kernel sandbox')
  t.equal(await ping(kb, '10.235.0.10', 3), 3, 'kernel sandbox -> Switchyard sandbox')
  await dumped
  t.match(captured, new RegExp(`VXLAN, flags \\[I\\] \\(0x08\\), vni ${VNI}`), 'the underlay carries VXLAN with our VNI')

  // TSO on the sandbox's port: 64 KiB super-frames reach the VTEP, which segments them into
  // frames that fit the overlay MTU, with checksums the kernel's vxlan on the far side accepts.
  const offloads = await mustInNs(sa, ['ethtool', '-k', 'eth0'])
  t.match(offloads, /tcp-segmentation-offload: on/, 'the sandbox sends TSO frames on the overlay')
  const stats0 = (await d.api('GET', '/v1/stats')).body.overlay
  const pcapDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-ovl-'))
  t.teardown(() => fs.rmSync(pcapDir, { recursive: true, force: true }))
  const pcap = path.join(pcapDir, 'ul0.pcap')
  const cap = spawnInNs(hostA, ['timeout', '20', 'tcpdump', '-i', 'ul0', '-n', '-s', '0', '-c', '300', '-w', pcap, 'udp dst port 4789 and src host ' + A])
  t.teardown(() => cap.kill('SIGKILL'))
  const capDone = new Promise((r) => cap.once('exit', r))
  await sleep(800)
  const up = await iperf(t, kb, sa, '10.235.0.20', false)
  t.ok(up > 0, `iperf3 TCP to the kernel host, offloads on: ${(up / 1e9).toFixed(2)} Gbit/s`)
  await capDone
  const stats1 = (await d.api('GET', '/v1/stats')).body.overlay
  t.ok(stats1.gsoFrames - stats0.gsoFrames > 100, `super-frames segmented on the way out: ${stats1.gsoFrames - stats0.gsoFrames}`)
  t.same(Object.values(stats1.txDrops).filter((v) => v !== 0), [], 'no frame refused by the segmentation')
  const inner = innerPackets(fs.readFileSync(pcap))
  t.ok(inner.sizes.length >= 300, `${inner.sizes.length} inner packets on the underlay`)
  t.equal(inner.bad, 0, 'every captured datagram walks as VXLAN datagrams with inner IPv4')
  t.ok(inner.sizes.every((n) => n <= 1450), `every inner packet fits the overlay MTU (largest ${Math.max(...inner.sizes)})`)
  t.ok(inner.sizes.filter((n) => n === 1450).length > 100, 'full-sized segments: the stream was segmented, not sent small')
  const down = await iperf(t, kb, sa, '10.235.0.20', true)
  t.ok(down > 0, `iperf3 TCP from the kernel host: ${(down / 1e9).toFixed(2)} Gbit/s`)

  // Bad input from the underlay: counted drops, and the overlay keeps working.
  await must('ip', ['-n', hostB, 'addr', 'add', '10.229.0.9/24', 'dev', 'ul0'])
  const before = (await d.api('GET', '/v1/stats')).body.overlay
  const r = await inNs(hostB, ['python3', '-c', `
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('${B}', 0))
inner = b'\\xff' * 6 + b'\\x02\\x00\\x00\\x00\\x00\\x09' + b'\\x08\\x06' + b'\\x00' * 46
s.sendto(b'\\x00' * 8 + inner, ('${A}', 4789))                                  # I flag missing
s.sendto(struct.pack('!BxxxI', 8, 4242 << 8) + inner, ('${A}', 4789))             # a VNI we do not serve
s.sendto(struct.pack('!BxxxI', 8, ${VNI} << 8) + inner[:6], ('${A}', 4789))       # inner frame a runt
spoof = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); spoof.bind(('10.229.0.9', 0))
spoof.sendto(struct.pack('!BxxxI', 8, ${VNI} << 8) + inner, ('${A}', 4789))      # not a VTEP of the network
`])
  t.equal(r.code, 0, r.stderr)
  await sleep(300)
  const after = (await d.api('GET', '/v1/stats')).body.overlay
  t.ok(after.malformed - before.malformed >= 2, `malformed: ${after.malformed - before.malformed}`)
  t.equal(after.foreignVni - before.foreignVni, 1, 'foreign VNI dropped')
  t.equal(after.notMember - before.notMember, 1, 'spoofed VTEP dropped')
  t.equal(await ping(sa, '10.235.0.20', 2), 2, 'the overlay still works')
})

t.test('two Switchyard hosts with static peers', async (t) => {
  const hostA = await makeNs(t, 'ha')
  const hostC = await makeNs(t, 'hc')
  await underlay(t, [
    { ns: hostA, ip: A },
    { ns: hostC, ip: C },
  ])
  const da = await startDaemon(t, ['--default-subnet', '10.236.0.0/24', '--advertise-addr', A], hostA)
  const dc = await startDaemon(t, ['--default-subnet', '10.236.0.0/24', '--advertise-addr', C], hostC)
  await overlayNet(da, C)
  await overlayNet(dc, A)
  const sa = sandboxName(t, 'ov')
  const sc = sandboxName(t, 'ov')
  await da.cli(['sandbox', 'create', sa, '--network', 'ov', '--ip', '10.235.0.11'])
  await dc.cli(['sandbox', 'create', sc, '--network', 'ov', '--ip', '10.235.0.12'])
  t.equal(await ping(sa, '10.235.0.12', 3), 3, 'host A sandbox -> host C sandbox')
  t.equal(await ping(sc, '10.235.0.11', 3), 3, 'and back')
  const bps = await iperf(t, sc, sa, '10.235.0.12', false)
  t.ok(bps > 0, `iperf3 TCP across hosts: ${(bps / 1e9).toFixed(2)} Gbit/s`)
  const [txA, rxC] = [(await da.api('GET', '/v1/stats')).body.overlay, (await dc.api('GET', '/v1/stats')).body.overlay]
  t.ok(txA.gsoFrames > 0 && txA.txDatagrams > txA.gsoFrames, `host A segmented ${txA.gsoFrames} super-frames into ${txA.txDatagrams} datagrams`)
  t.ok(rxC.rxDatagrams < txA.txDatagrams / 4, `host C took them in as ${rxC.rxDatagrams} frames (UDP GRO, coalesced)`)
  const fdb = JSON.parse((await da.cli(['--format', 'json', 'fdb', 'show', '--network', 'ov'])).stdout) as { port: string }[]
  t.ok(fdb.some((e) => e.port === `vx${VNI}-${C}`), 'host A learned the remote sandbox behind VTEP C')
  const bad = await da.api('POST', '/v1/networks', { name: 'ov2', driver: 'overlay', options: { vni: String(VNI) } })
  t.equal(bad.status, 409, 'a VNI serves one network')
  const noVtep = await startDaemon(t, ['--default-subnet', '10.237.0.0/24'])
  const r = await noVtep.api('POST', '/v1/networks', { name: 'ov', driver: 'overlay' })
  t.equal(r.status, 400)
  t.match(r.body.error.message, /--advertise-addr/)
})
