// Gateway services answered by the switch: ARP and ICMP for the gateway, embedded DNS, DHCP.
import t from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startDaemon, type TestDaemon } from '../helpers/daemon.js'
import { FakeUpstream } from '../helpers/fake-dns.js'
import { makeNs, sandboxName, uniqueName } from '../helpers/netns.js'
import { inNs, mustInNs, ping, run, sleep, spawnInNs, waitFor } from '../helpers/sh.js'

const helpers = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'helpers')


async function dig(ns: string, args: string[]): Promise<string> {
  const r = await inNs(ns, ['dig', '+time=3', '+tries=1', ...args], 20_000)
  return r.stdout
}

const status = (out: string) => /status: (\w+)/.exec(out)?.[1]
const answers = (out: string) => [...out.matchAll(/^\S+\s+\d+\s+IN\s+A\s+(\S+)$/gm)].map((m) => m[1])

async function stats(d: TestDaemon) {
  return (await d.api('GET', '/v1/stats')).body
}

t.test('ARP and ICMP for the gateway', async (t) => {
  const d = await startDaemon(t, ['--default-subnet', '10.220.0.0/24'])
  const [a, b] = [sandboxName(t, 'gw'), sandboxName(t, 'gw')]
  await d.cli(['sandbox', 'create', a, '--network', 'default'])
  await d.cli(['sandbox', 'create', b, '--network', 'default'])
  t.equal(await ping(a, '10.220.0.1', 3), 3, 'the gateway answers ping')
  const neigh = await mustInNs(a, ['ip', 'neigh', 'show', '10.220.0.1'])
  const netId = (await d.api('GET', '/v1/networks/default')).body.id as string
  const gwMac = `02:53:${netId.slice(0, 2)}:${netId.slice(2, 4)}:${netId.slice(4, 6)}:${netId.slice(6, 8)}`
  t.match(neigh, gwMac, 'ARP resolved the gateway to its MAC')
  let s = await stats(d)
  const gw = s.gateways[netId]
  t.ok(gw.arpReplies >= 1 && gw.icmpEchoReplies >= 3, `arp replies ${gw.arpReplies}, echo replies ${gw.icmpEchoReplies}`)

  // Sandbox b claims the gateway's address with a gratuitous ARP: the switch changes nothing.
  const garp = await inNs(b, ['python3', '-c', `
import socket
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0))
mac = open('/sys/class/net/eth0/address').read().strip().replace(':', '')
src = bytes.fromhex(mac); ip = socket.inet_aton('10.220.0.1')
arp = bytes.fromhex('0001080006040001') + src + ip + b'\\x00' * 6 + ip
s.send(b'\\xff' * 6 + src + b'\\x08\\x06' + arp + b'\\x00' * 18)
`])
  t.equal(garp.code, 0, garp.stderr)
  await sleep(200)
  s = await stats(d)
  t.ok(s.gateways[netId].arpIgnored > gw.arpIgnored, 'the gratuitous ARP was ignored by the gateway')
  await mustInNs(a, ['ip', 'neigh', 'flush', 'all'])
  t.equal(await ping(a, '10.220.0.1', 2), 2, 'the gateway still answers')
  t.match(await mustInNs(a, ['ip', 'neigh', 'show', '10.220.0.1']), gwMac, 'and still with its own MAC')

  // A broken ARP and a bad IP header are counted, not answered.
  const bad = await inNs(b, ['python3', '-c', `
import socket
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0))
src = bytes.fromhex(open('/sys/class/net/eth0/address').read().strip().replace(':', ''))
dst = bytes.fromhex('${gwMac.replace(/:/g, '')}')
s.send(b'\\xff' * 6 + src + b'\\x08\\x06' + bytes.fromhex('0001080006') + b'\\x00' * 41)
s.send(dst + src + b'\\x08\\x00' + bytes.fromhex('4f000014') + b'\\x00' * 42)
`])
  t.equal(bad.code, 0, bad.stderr)
  const malformed = await waitFor(async () => {
    const m = (await stats(d)).gateways[netId].malformed
    return m >= 2 ? m : 0
  }, 3000)
  t.ok(malformed >= 2, `malformed frames counted: ${malformed}`)
})

t.test('embedded DNS', async (t) => {
  const up1 = await FakeUpstream.start()
  const up2 = await FakeUpstream.start()
  t.teardown(() => up1.close())
  t.teardown(() => up2.close())
  const d = await startDaemon(t, ['--default-subnet', '10.222.0.0/24', '--dns', `127.0.0.1:${up1.port}`, '--dns', `127.0.0.1:${up2.port}`])
  await d.cli(['network', 'create', 'other', '--subnet', '10.223.0.0/24'])
  const [web, db1, db2, far] = [sandboxName(t, 'gw'), sandboxName(t, 'gw'), sandboxName(t, 'gw'), sandboxName(t, 'gw')]
  await d.cli(['sandbox', 'create', web, '--network', 'default'])
  await d.cli(['sandbox', 'create', db1])
  await d.cli(['network', 'connect', 'default', db1, '--ip', '10.222.0.51', '--alias', 'db', '--alias', 'primary'])
  await d.cli(['sandbox', 'create', db2])
  await d.cli(['network', 'connect', 'default', db2, '--ip', '10.222.0.52', '--alias', 'db'])
  await d.cli(['sandbox', 'create', far, '--network', 'other'])
  const gw = '10.222.0.1'

  await t.test('names and aliases, on this network only', async (t) => {
    t.same(answers(await dig(web, [`@${gw}`, db1])), ['10.222.0.51'], 'sandbox name')
    t.same(answers(await dig(web, [`@${gw}`, 'primary'])), ['10.222.0.51'], 'alias')
    t.same(answers(await dig(web, [`@${gw}`, 'PRIMARY.'])), ['10.222.0.51'], 'case-insensitive, trailing dot')
    const ttl = /\s(\d+)\s+IN\s+A\s/.exec(await dig(web, [`@${gw}`, db1]))?.[1]
    t.equal(ttl, '600')
    up1.mode = 'nxdomain'
    const isolated = await dig(web, [`@${gw}`, far])
    t.equal(status(isolated), 'NXDOMAIN', 'a sandbox on another network is unknown here')
    t.same(answers(await dig(far, ['@10.223.0.1', far])), [(await d.api('GET', `/v1/sandboxes/${far}`)).body.endpoints[0].address.split('/')[0]])
    up1.mode = 'answer'
  })

  await t.test('a shared name answers all addresses, rotated', async (t) => {
    const first = answers(await dig(web, [`@${gw}`, 'db']))
    const second = answers(await dig(web, [`@${gw}`, 'db']))
    t.same([...first].sort(), ['10.222.0.51', '10.222.0.52'])
    t.not(first[0], second[0], 'round-robin: the order rotates between queries')
  })

  await t.test('PTR, AAAA for an A-only name, TCP', async (t) => {
    t.match(await dig(web, [`@${gw}`, '+short', '-x', '10.222.0.51']), new RegExp(`^${db1}\\.`, 'm'))
    const aaaa = await dig(web, [`@${gw}`, db1, 'AAAA'])
    t.equal(status(aaaa), 'NOERROR', 'exists without AAAA: NOERROR, not NXDOMAIN')
    t.match(aaaa, /ANSWER: 0,/)
    t.same(answers(await dig(web, [`@${gw}`, '+tcp', db2])), ['10.222.0.52'], 'over TCP')
  })

  await t.test('a large answer sets TC over UDP and comes whole over TCP', async (t) => {
    const many = Array.from({ length: 34 }, () => sandboxName(t, 'gw'))
    for (const n of many) {
      await d.api('POST', '/v1/sandboxes', { name: n })
      const r = await d.api('POST', '/v1/networks/default/connect', { sandbox: n, aliases: ['big'] })
      t.equal(r.status, 201)
    }
    const udp = await dig(web, [`@${gw}`, '+noedns', '+ignore', 'big'])
    t.match(udp, /flags: qr aa tc rd|flags: qr tc aa rd|flags:[^;]*\btc\b/, 'truncated over UDP')
    t.ok(answers(udp).length < 34)
    const retried = await dig(web, [`@${gw}`, '+noedns', 'big'])
    t.equal(answers(retried).length, 34, 'dig retried over TCP and got all 34')
    for (const n of many) await d.api('DELETE', `/v1/sandboxes/${n}`)
  })

  await t.test('forwarding, failover, cache, failure and recovery', async (t) => {
    up1.mode = 'answer'
    const q0 = up1.queries
    t.same(answers(await dig(web, [`@${gw}`, 'www.example.org'])), ['10.0.0.0'], 'forwarded to the first upstream')
    t.same(answers(await dig(web, [`@${gw}`, 'www.example.org'])), ['10.0.0.0'])
    t.equal(up1.queries - q0, 1, 'the second answer came from the cache')
    up1.mode = 'servfail'
    const q2 = up2.queries
    t.same(answers(await dig(web, [`@${gw}`, 'fail1.example.org'])), ['10.0.0.0'], 'SERVFAIL from the first: the second answers')
    t.equal(up2.queries - q2, 1)
    up2.mode = 'silent'
    t.equal(status(await dig(web, [`@${gw}`, 'fail2.example.org'])), 'SERVFAIL', 'all upstreams failing: SERVFAIL')
    up1.mode = 'answer'
    up2.mode = 'answer'
    t.same(answers(await dig(web, [`@${gw}`, 'back.example.org'])), ['10.0.0.0'], 'recovered')
  })

  await t.test('internal networks never forward; strangers get no answer', async (t) => {
    await d.cli(['network', 'create', 'sealed', '--internal', '--subnet', '10.224.0.0/24'])
    const inner = sandboxName(t, 'gw')
    await d.cli(['sandbox', 'create', inner, '--network', 'sealed'])
    const q = up1.queries
    t.same(answers(await dig(inner, ['@10.224.0.1', inner])), ['10.224.0.2'], 'local names work')
    t.equal(status(await dig(inner, ['@10.224.0.1', 'www.example.org'])), 'SERVFAIL')
    t.equal(up1.queries, q, 'nothing was forwarded')
    // An address on the network that no endpoint owns is not a member: no answer at all.
    await mustInNs(web, ['ip', 'addr', 'add', '10.222.0.200/24', 'dev', 'eth0'])
    const before = (await stats(d)).gateways
    const r = await inNs(web, ['dig', '+time=1', '+tries=1', '-b', '10.222.0.200', `@${gw}`, db1])
    t.match(r.stdout, /timed out|no servers could be reached/)
    const after = (await stats(d)).gateways
    const id = (await d.api('GET', '/v1/networks/default')).body.id
    t.ok(after[id].dnsRefusedNotMember > before[id].dnsRefusedNotMember)
  })

  await t.test('thousands of random and mutated queries cannot hurt it', async (t) => {
    const r = await inNs(web, ['python3', path.join(helpers, 'dnsfuzz.py'), gw, '4000'], 120_000)
    t.equal(r.code, 0, r.stderr)
    await sleep(300)
    const s = (await stats(d)).dns
    t.ok(s.formerr + s.dropped + s.notimp > 1000, `formerr ${s.formerr}, dropped ${s.dropped}, notimp ${s.notimp}`)
    t.same(answers(await dig(web, [`@${gw}`, db1])), ['10.222.0.51'], 'still answers')
    t.equal((await d.api('GET', '/v1/health')).status, 200)
  })
})

t.test('DHCP for a VM-like client on a bare port', async (t) => {
  const d = await startDaemon(t, ['--default-subnet', '10.225.0.0/24'])
  const vm = await makeNs(t, 'vm')
  const port = uniqueName('vmp')
  const added = await d.cli(['port', 'add', port, '--netns', vm, '--ifname', 'eth0'])
  t.equal(added.code, 0, added.stderr)
  t.teardown(() => run('ip', ['-n', vm, 'link', 'del', 'eth0']))
  const sb = sandboxName(t, 'gw')
  await d.cli(['sandbox', 'create', sb, '--network', 'default'])
  const sbAddr = (await d.api('GET', `/v1/sandboxes/${sb}`)).body.endpoints[0].address.split('/')[0]

  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sy-dhcp-')), 'ev')
  t.teardown(() => fs.rmSync(path.dirname(out), { recursive: true, force: true }))
  const env = (ev: string) => {
    const text = fs.readFileSync(`${out}.${ev}`, 'utf8')
    return Object.fromEntries(text.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
  }
  const client = spawnInNs(vm, ['env', `SY_OUT=${out}`, 'busybox', 'udhcpc', '-f', '-i', 'eth0', '-s', path.join(helpers, 'udhcpc.script'), '-x', 'hostname:vmone', '-t', '5', '-T', '1'])
  t.teardown(() => client.kill('SIGKILL'))
  t.ok(await waitFor(() => fs.existsSync(`${out}.bound`), 15_000), 'udhcpc got a lease')
  const lease = env('bound')
  t.match(lease.ip, /^10\.225\.0\.\d+$/)
  t.same([lease.subnet, lease.router, lease.dns?.trim(), lease.serverid, lease.lease, lease.mtu], ['255.255.255.0', '10.225.0.1', '10.225.0.1', '10.225.0.1', '3600', '1500'])
  t.equal(await ping(vm, '10.225.0.1', 2), 2, 'the VM reaches the gateway')
  t.equal(await ping(vm, sbAddr, 2), 2, 'and a sandbox')
  t.same(answers(await dig(sb, ['@10.225.0.1', 'vmone'])), [lease.ip], 'its hostname resolves from the sandbox')
  const eps = (await d.api('GET', '/v1/endpoints')).body as { address: string; lease?: { state: string } }[]
  t.equal(eps.find((e) => e.address.startsWith(lease.ip + '/'))?.lease?.state, 'bound', 'the lease is an endpoint')

  const acks = (await stats(d)).dhcp.acks
  fs.rmSync(`${out}.renew`, { force: true })
  client.kill('SIGUSR1')
  t.ok(await waitFor(() => fs.existsSync(`${out}.renew`), 10_000), 'renewed')
  t.equal(env('renew').ip, lease.ip)
  t.ok((await stats(d)).dhcp.acks > acks)

  // Bad DHCP packets: malformed ones and ones asking for another MAC's lease are counted drops.
  const junk = await inNs(vm, ['python3', '-c', `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 68))
mac = bytes.fromhex(open('/sys/class/net/eth0/address').read().strip().replace(':', ''))
base = bytearray(300); base[0] = 1; base[1] = 1; base[2] = 6; base[28:34] = mac
s.sendto(bytes(base[:100]), ('255.255.255.255', 67))          # truncated
s.sendto(bytes(base), ('255.255.255.255', 67))                # no magic cookie
spoof = bytearray(base); spoof[28:34] = b'\\x02\\x00\\x00\\x00\\x00\\x77'
s.sendto(bytes(spoof), ('255.255.255.255', 67))               # someone else's MAC
`])
  t.equal(junk.code, 0, junk.stderr)
  const bad = await waitFor(async () => {
    const s = await stats(d)
    const id = (await d.api('GET', '/v1/networks/default')).body.id
    return s.dhcp.malformed >= 2 && s.gateways[id].dhcpSpoofed >= 1 ? s : undefined
  }, 3000)
  t.ok(bad, 'malformed and spoofed DHCP counted')

  // The lease survives a restart of the daemon.
  await d.stop()
  await d.start()
  const after = (await d.api('GET', '/v1/endpoints')).body as { address: string; lease?: { state: string } }[]
  t.ok(after.some((e) => e.address.startsWith(lease.ip + '/') && e.lease?.state === 'bound'), 'lease restored')
  t.equal((await d.api('GET', `/v1/ports/${port}`)).body.state, 'up', 'the port re-attached inside its namespace')
  fs.rmSync(`${out}.renew`, { force: true })
  client.kill('SIGUSR1')
  t.ok(await waitFor(() => fs.existsSync(`${out}.renew`), 10_000), 'renewed after the restart')
  t.equal(env('renew').ip, lease.ip, 'with the same address')
  t.same(answers(await dig(sb, ['@10.225.0.1', 'vmone'])), [lease.ip], 'name restored too')

  // Release: the lease and the address go back.
  fs.rmSync(`${out}.deconfig`, { force: true })
  client.kill('SIGUSR2')
  t.ok(await waitFor(() => fs.existsSync(`${out}.deconfig`), 10_000), 'released')
  const gone = await waitFor(async () => {
    const e = (await d.api('GET', '/v1/endpoints')).body as { address: string }[]
    return !e.some((x) => x.address.startsWith(lease.ip + '/'))
  }, 5000)
  t.ok(gone, 'the lease endpoint is gone after RELEASE')
  if (!gone) t.comment(JSON.stringify((await stats(d)).dhcp))
})

