// External connectivity: a test "host" namespace runs the daemon, an "outside" namespace
// joined to it by veth runs servers. Nothing leaves these namespaces.
import t from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { sandboxName } from '../helpers/netns.js'
import { GW, HOST, lines, listening, natStats, natWorld, OUTSIDE, PEER, sandboxIp, serve } from '../helpers/natworld.js'
import { inNs, mustInNs, ping, run, spawnInNs, waitFor } from '../helpers/sh.js'

t.test('NAT through the host', async (t) => {
  const { host, outside, d } = await natWorld(t, ['--nat-max-per-sandbox', '64'])
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-nat-'))
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }))

  const a = sandboxName(t, 'nt')
  const b = sandboxName(t, 'nt')
  t.equal((await d.cli(['sandbox', 'create', a, '--network', 'default'])).code, 0)
  t.equal((await d.cli(['sandbox', 'create', b, '--network', 'default'])).code, 0)
  const httpLog = path.join(tmp, 'http.log')
  serve(t, outside, ['http-serve', OUTSIDE, '8000', httpLog])
  const udpLog = path.join(tmp, 'udp.log')
  serve(t, outside, ['udp-echo', OUTSIDE, '7000', udpLog])
  t.ok((await listening(outside, 'tcp', 8000)) && (await listening(outside, 'udp', 7000)), 'the outside servers are up')

  await t.test('TCP, UDP and ICMP reach the outside, which sees the host', async (t) => {
    const r = await inNs(a, ['curl', '-s', '-m', '5', `http://${OUTSIDE}:8000/`])
    t.equal(r.stdout, 'ok', r.stderr)
    t.equal(lines(httpLog).at(-1)?.split(' ')[0], HOST, 'the server saw the host address')
    const u = await inNs(a, ['python3', PEER, 'udp-ask', OUTSIDE, '7000', 'hello'])
    t.equal(u.stdout.trim(), 'echo:hello')
    t.equal(lines(udpLog).at(-1)?.split(' ')[0], HOST)
    t.equal(await ping(a, OUTSIDE, 3), 3, 'ICMP echo')
    const flows = JSON.parse((await d.cli(['--format', 'json', 'nat', 'ls'])).stdout) as { proto: string; sandbox: string }[]
    t.ok(flows.some((f) => f.proto === 'udp' && f.sandbox === a), 'nat ls shows the UDP flow')
    t.ok(flows.some((f) => f.proto === 'icmp'), 'and the ping')
  })

  await t.test('1 GiB arrives intact, in large frames', async (t) => {
    const server = serve(t, outside, ['stream-serve', OUTSIDE, '9000', String(1 << 30)])
    let sent = ''
    server.stdout!.on('data', (c: Buffer) => (sent += c.toString()))
    await waitFor(() => sent.includes('ready'), 5000)
    const port = (await d.api('GET', `/v1/sandboxes/${a}`)).body.endpoints[0]
    const before = (await d.api('GET', `/v1/endpoints/${port.id}`)).body.counters
    const r = await inNs(a, ['python3', PEER, 'stream-fetch', OUTSIDE, '9000'], 180_000)
    t.equal(r.code, 0, r.stderr)
    const [bytes, sum] = r.stdout.trim().split(' ')
    t.equal(Number(bytes), 1 << 30)
    await waitFor(() => sent.trim().split('\n').length >= 2, 5000)
    t.equal(sum, sent.trim().split('\n')[1], 'sha256 matches what the server sent')
    const after = (await d.api('GET', `/v1/endpoints/${port.id}`)).body.counters
    const avg = (after.txBytes - before.txBytes) / (after.txPackets - before.txPackets)
    t.ok(avg > 3000, `frames to the sandbox average ${avg.toFixed(0)} bytes: segmentation is left to the kernel`)
  })

  await t.test('1 GiB from the sandbox arrives intact, past a receiver that stalls', async (t) => {
    // The sink waits 2 s before reading: the host socket fills (writes taken in part, then
    // EAGAIN), the rest waits in the flow's queue and the window the sandbox sees closes.
    const sink = serve(t, outside, ['stream-sink', OUTSIDE, '9001', '2'])
    let got = ''
    sink.stdout!.on('data', (c: Buffer) => (got += c.toString()))
    await waitFor(() => got.includes('ready'), 5000)
    const r = await inNs(a, ['python3', PEER, 'stream-push', OUTSIDE, '9001', String(1 << 30)], 180_000)
    t.equal(r.code, 0, r.stderr)
    await waitFor(() => got.trim().split('\n').length >= 2, 10_000)
    const [bytes, sum] = got.trim().split('\n')[1].split(' ')
    t.equal(Number(bytes), 1 << 30)
    t.equal(sum, r.stdout.trim(), 'sha256 matches what the sandbox sent')
  })

  await t.test('a sandbox that stops reading closes the window; data resumes intact', async (t) => {
    const server = serve(t, outside, ['stream-serve', OUTSIDE, '9002', String(64 << 20)])
    let sent = ''
    server.stdout!.on('data', (c: Buffer) => (sent += c.toString()))
    await waitFor(() => sent.includes('ready'), 5000)
    const r = await inNs(a, ['python3', PEER, 'stream-fetch', OUTSIDE, '9002', '2'], 60_000)
    t.equal(r.code, 0, r.stderr)
    await waitFor(() => sent.trim().split('\n').length >= 2, 5000)
    t.equal(r.stdout.trim(), `${64 << 20} ${sent.trim().split('\n')[1]}`, 'all bytes, sha256 matches')
  })

  await t.test('many parallel connections', async (t) => {
    const r = await inNs(a, ['bash', '-c', `for i in $(seq 40); do curl -s -m 10 -o /dev/null -w '%{http_code}\\n' http://${OUTSIDE}:8000/ & done; wait`], 60_000)
    const codes = r.stdout.trim().split('\n')
    t.equal(codes.filter((c) => c === '200').length, 40)
  })

  await t.test('published TCP and UDP ports show the real client', async (t) => {
    const web = sandboxName(t, 'nt')
    const created = await d.cli(['sandbox', 'create', web, '--network', 'default', '-p', '8081:80', '-p', '5354:5353/udp'])
    t.equal(created.code, 0, created.stderr)
    const webLog = path.join(tmp, 'web.log')
    serve(t, web, ['http-serve', '0.0.0.0', '80', webLog])
    const echoLog = path.join(tmp, 'echo.log')
    serve(t, web, ['udp-echo', '0.0.0.0', '5353', echoLog])
    t.ok((await listening(web, 'tcp', 80)) && (await listening(web, 'udp', 5353)), 'the sandbox servers are up')
    t.equal((await inNs(outside, ['curl', '-s', '-m', '5', `http://${HOST}:8081/`])).stdout, 'ok', 'from the outside')
    t.equal(lines(webLog).at(-1)?.split(' ')[0], OUTSIDE, 'the sandbox saw the outside client itself')
    t.equal((await run('nsenter', [`--net=/run/netns/${host}`, 'curl', '-s', '-m', '5', 'http://127.0.0.1:8081/'])).stdout, 'ok', 'from the host loopback')
    t.equal(lines(webLog).at(-1)?.split(' ')[0], GW, 'a loopback client shows as the gateway')
    t.equal((await inNs(outside, ['python3', PEER, 'udp-ask', HOST, '5354', 'q'])).stdout.trim(), 'echo:q', 'UDP from the outside')
    t.equal(lines(echoLog).at(-1)?.split(' ')[0], OUTSIDE)
    t.equal((await inNs(a, ['curl', '-s', '-m', '5', `http://${HOST}:8081/`])).stdout, 'ok', 'hairpin through the host address')
    t.equal((await inNs(a, ['curl', '-s', '-m', '5', `http://${GW}:8081/`])).stdout, 'ok', 'hairpin through the gateway')
    t.equal((await inNs(web, ['curl', '-s', '-m', '5', `http://${HOST}:8081/`])).stdout, 'ok', 'a sandbox reaching its own published port')

    // A client reusing its source port while the sandbox still holds the old connection in
    // TIME-WAIT (the server closed first): every request must still get through.
    const reuse = await inNs(outside, ['python3', PEER, 'get-from-port', HOST, '8081', '41000', '5'], 60_000)
    t.equal(reuse.stdout.trim(), '5', `five requests from one source port (${reuse.stderr.trim()})`)
    const clash = sandboxName(t, 'nt')
    const r = await d.cli(['sandbox', 'create', clash, '--network', 'default', '-p', '8081:80'])
    t.not(r.code, 0)
    t.match(r.stderr, /8081.*already in use/)
    t.equal((await d.api('GET', `/v1/sandboxes/${clash}`)).status, 404, 'the failed sandbox was rolled back')
    const bad = await d.api('POST', '/v1/networks/default/connect', { sandbox: a, publish: ['80'] })
    t.equal(bad.status, 400)
    t.equal(bad.body.error.field, 'publish')
  })

  await t.test('a published port carries 256 MiB in, also while the sandbox stalls', async (t) => {
    const sink = sandboxName(t, 'nt')
    const created = await d.cli(['sandbox', 'create', sink, '--network', 'default', '-p', '9010:9010'])
    t.equal(created.code, 0, created.stderr)
    const p = serve(t, sink, ['stream-sink', '0.0.0.0', '9010', '2'])
    let got = ''
    p.stdout!.on('data', (c: Buffer) => (got += c.toString()))
    await waitFor(() => got.includes('ready'), 5000)
    const r = await inNs(outside, ['python3', PEER, 'stream-push', HOST, '9010', String(256 << 20)], 120_000)
    t.equal(r.code, 0, r.stderr)
    await waitFor(() => got.trim().split('\n').length >= 2, 10_000)
    t.equal(got.trim().split('\n')[1], `${256 << 20} ${r.stdout.trim()}`, 'all bytes, sha256 matches')
  })

  await t.test('unsolicited inbound traffic never reaches a sandbox', async (t) => {
    const bIp = await sandboxIp(d, b)
    // Watch b's interface for any IP packet from the outside or the host while the outside tries.
    const dump = spawnInNs(b, ['timeout', '8', 'tcpdump', '-i', 'eth0', '-n', '-l', `ip and (src host ${OUTSIDE} or src host ${HOST})`])
    t.teardown(() => dump.kill('SIGKILL'))
    let seen = ''
    let status = ''
    dump.stdout!.on('data', (c: Buffer) => (seen += c.toString()))
    dump.stderr!.on('data', (c: Buffer) => (status += c.toString()))
    t.ok(await waitFor(() => status.includes('listening on'), 5000), 'the capture is running')
    await inNs(outside, ['curl', '-s', '-m', '2', `http://${HOST}:9999/`])
    await inNs(outside, ['curl', '-s', '-m', '2', `http://${bIp}:80/`])
    await inNs(outside, ['python3', PEER, 'udp-ask', bIp, '53', 'x'])
    await inNs(outside, ['ping', '-c', '2', '-W', '1', bIp])
    await new Promise((r) => dump.once('exit', r))
    t.equal(seen.trim(), '', 'nothing from the outside was delivered to the sandbox')
  })

  await t.test('an internal network has no egress', async (t) => {
    await d.cli(['network', 'create', 'sealed', '--internal', '--subnet', '10.228.0.0/24'])
    const inner = sandboxName(t, 'nt')
    await d.cli(['sandbox', 'create', inner, '--network', 'sealed'])
    const before = (await natStats(d)).frames
    t.equal(await ping(inner, OUTSIDE, 1), 0)
    t.equal((await inNs(inner, ['curl', '-s', '-m', '2', `http://${OUTSIDE}:8000/`])).code === 0, false)
    t.equal((await natStats(d)).frames, before, 'not a frame reached NAT')
    t.notMatch(await mustInNs(inner, ['ip', 'route']), /default/, 'and it has no default route')
  })

  await t.test('a flood of connections from one sandbox hits its limit; others keep working', async (t) => {
    serve(t, outside, ['hold-serve', OUTSIDE, '8100'])
    t.ok(await listening(outside, 'tcp', 8100), 'the holding server is up')
    const flood = sandboxName(t, 'nt')
    await d.cli(['sandbox', 'create', flood, '--network', 'default'])
    const r = await inNs(flood, ['python3', PEER, 'many-connect', OUTSIDE, '8100', '150'], 120_000)
    t.ok(Number(r.stdout) <= 64, `${r.stdout.trim()} of 150 connections made it (limit 64)`)
    const s = await natStats(d)
    t.ok(s.conntrack.refusedSandboxLimit > 0, `refused at the limit: ${s.conntrack.refusedSandboxLimit}`)
    t.equal((await inNs(b, ['curl', '-s', '-m', '5', `http://${OUTSIDE}:8000/`])).stdout, 'ok', 'another sandbox still gets out')
    t.ok(s.flows <= s.maxFlows)
  })

  await t.test('malformed packets are counted drops', async (t) => {
    const netId = (await d.api('GET', '/v1/networks/default')).body.id as string
    const gwMac = `02:53:${netId.slice(0, 2)}:${netId.slice(2, 4)}:${netId.slice(4, 6)}:${netId.slice(6, 8)}`.replace(/:/g, '')
    const before = await natStats(d)
    const gwBefore = (await d.api('GET', '/v1/stats')).body.gateways[netId].malformed
    const src = await sandboxIp(d, b)
    const r = await inNs(b, ['python3', '-c', `
import socket, struct
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b)//2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
def ip(proto, payload, ihl=5, total=None):
    h = struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, 0, total or 20 + len(payload), 1, 0, 64, proto, 0, socket.inet_aton('${src}'), socket.inet_aton('${OUTSIDE}'))
    h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
    return h + payload
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0))
mac = bytes.fromhex(open('/sys/class/net/eth0/address').read().strip().replace(':', ''))
eth = bytes.fromhex('${gwMac}') + mac + b'\\x08\\x00'
tcp = struct.pack('!HHIIBBHHH', 40000, 8000, 1, 0, 0x50, 0x02, 65535, 0xdead, 0)   # bad checksum
s.send(eth + ip(6, tcp))
udp = struct.pack('!HHHH', 40001, 7000, 200, 0) + b'x' * 8                          # UDP length past the packet
s.send(eth + ip(17, udp))
s.send(eth + ip(6, tcp)[:24])                                                        # IP total length past the frame
s.send(eth + bytes([0x46]) + ip(6, tcp)[1:])                                         # header length not matching
`])
    t.equal(r.code, 0, r.stderr)
    const after = await waitFor(async () => {
      const s = await natStats(d)
      return s.badChecksum > before.badChecksum && s.malformed > before.malformed ? s : undefined
    }, 3000)
    t.ok(after, 'bad checksum and bad UDP length counted by NAT')
    const gwAfter = (await d.api('GET', '/v1/stats')).body.gateways[netId].malformed
    t.ok(gwAfter - gwBefore >= 2, 'bad IP headers counted by the gateway')
    t.equal((await inNs(a, ['curl', '-s', '-m', '5', `http://${OUTSIDE}:8000/`])).stdout, 'ok', 'and traffic goes on')
  })
})
