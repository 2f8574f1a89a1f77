// The DHCP server's state machine (RFC 2131 4.3) over the memory backend.
import t from 'tap'
import {
  BOOTREPLY, BROADCAST_FLAG, DhcpMessageType, DhcpOption, decode, encode, getLeaseTime, getMessageType,
  getServerId, ipListOption, ipOption, readIpListOption, readIpOption, readStringOption, readUint16Option,
  readUint32Option, stringOption, uint16Option, uint8Option, type DhcpMessage, type DhcpOptions,
} from '../../src/gateway/dhcp/codec.js'
import { DhcpServer, type DhcpCounters, type DhcpLeaseBackend, type DhcpNetworkConfig, type DhcpReply } from '../../src/gateway/dhcp/server.js'
import { MemoryLeaseBackend } from '../../src/gateway/dhcp/memory-backend.js'
import { InvalidDhcpConfigError } from '../../src/gateway/dhcp/config.js'
import { BROADCAST_MAC, parseMac, writeMac } from '../../src/packet/mac.js'

const NET: DhcpNetworkConfig = {
  enabled: true,
  serverIp: '10.0.0.1',
  subnetMask: '255.255.255.0',
  router: '10.0.0.1',
  dnsServers: ['10.0.0.1', '10.0.0.2'],
  domainName: 'sy.internal',
  mtu: 1450,
  leaseSeconds: 3600,
}
const POOL = ['10.0.0.10', '10.0.0.11', '10.0.0.12']
const A = parseMac('52:54:00:12:34:56')
const B = parseMac('52:54:00:00:00:0b')

interface ClientOpts {
  xid?: number
  flags?: number
  ciaddr?: string
  requested?: string
  serverId?: string
  params?: number[]
  hostname?: string
  clientId?: Uint8Array
  maxSize?: number
  op?: number
  htype?: number
}

/** A client's message as busybox udhcpc or dhclient would build it. */
function client(type: number, mac: number, o: ClientOpts = {}): Uint8Array {
  const chaddr = new Uint8Array(6)
  writeMac(chaddr, 0, mac)
  const options: DhcpOptions = new Map([[DhcpOption.MESSAGE_TYPE, uint8Option(type)]])
  if (o.requested) options.set(DhcpOption.REQUESTED_IP, ipOption(o.requested))
  if (o.serverId) options.set(DhcpOption.SERVER_ID, ipOption(o.serverId))
  if (o.params) options.set(DhcpOption.PARAMETER_REQUEST_LIST, Uint8Array.from(o.params))
  if (o.hostname) options.set(DhcpOption.HOSTNAME, stringOption(o.hostname))
  if (o.clientId) options.set(DhcpOption.CLIENT_ID, o.clientId)
  if (o.maxSize) options.set(DhcpOption.MAX_MESSAGE_SIZE, uint16Option(o.maxSize))
  const msg: DhcpMessage = {
    op: o.op ?? 1, htype: o.htype ?? 1, hops: 0, xid: o.xid ?? 0x1234, secs: 0, flags: o.flags ?? 0,
    ciaddr: o.ciaddr ?? '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0',
    chaddr, sname: '', file: '', options,
  }
  return encode(msg)
}

function setup(net: DhcpNetworkConfig = NET, logs: string[] = []) {
  const backend = new MemoryLeaseBackend(POOL)
  const server = new DhcpServer(backend, { log: (m) => logs.push(m) })
  const send = (payload: Uint8Array, now?: number) => server.handle('net1', net, payload, now)
  return { backend, server, send, logs }
}

function reply(r: DhcpReply | null): { r: DhcpReply, m: DhcpMessage } {
  if (r === null) throw new Error('expected a reply, got none')
  return { r, m: decode(r.payload) }
}

function sum(c: DhcpCounters): number {
  return c.offers + c.acks + c.naks + c.releases + c.declines + c.informs + c.malformed + c.ignored
}

/** DISCOVER, then REQUEST in SELECTING: the client's address. */
function lease(send: (p: Uint8Array) => DhcpReply | null, mac: number): string {
  const offer = reply(send(client(DhcpMessageType.DISCOVER, mac))).m
  const ack = reply(send(client(DhcpMessageType.REQUEST, mac, { requested: offer.yiaddr, serverId: NET.serverIp }))).m
  if (getMessageType(ack.options) !== DhcpMessageType.ACK) throw new Error('no ACK')
  return ack.yiaddr
}

t.test('DISCOVER -> OFFER -> REQUEST -> ACK', async (t) => {
  const { backend, server, send } = setup()
  const { r: o, m: offer } = reply(send(client(DhcpMessageType.DISCOVER, A, { xid: 77, hostname: 'vm1' })))
  t.equal(getMessageType(offer.options), DhcpMessageType.OFFER)
  t.equal(offer.op, BOOTREPLY)
  t.equal(offer.xid, 77, 'xid echoed')
  t.equal(offer.yiaddr, '10.0.0.10')
  t.equal(offer.ciaddr, '0.0.0.0')
  t.same(Array.from(offer.chaddr), [0x52, 0x54, 0, 0x12, 0x34, 0x56])
  t.equal(getServerId(offer.options), '10.0.0.1')
  t.same({ broadcast: o.broadcast, dstMac: o.dstMac, dstIp: o.dstIp }, { broadcast: false, dstMac: A, dstIp: '10.0.0.10' },
    'no broadcast flag: unicast to chaddr and yiaddr')
  t.equal(backend.lookup('net1', A)?.committed, false, 'offered, not yet leased')
  t.equal(server.pendingOffers, 1)

  const { r: a, m: ack } = reply(send(client(DhcpMessageType.REQUEST, A, { xid: 78, requested: '10.0.0.10', serverId: '10.0.0.1', hostname: 'vm1' })))
  t.equal(getMessageType(ack.options), DhcpMessageType.ACK)
  t.equal(ack.yiaddr, '10.0.0.10')
  t.equal(getLeaseTime(ack.options), 3600)
  t.equal(a.dstIp, '10.0.0.10')
  t.same(backend.lookup('net1', A), { address: '10.0.0.10', committed: true, expiresAt: backend.lookup('net1', A)?.expiresAt, hostname: 'vm1' })
  t.equal(server.pendingOffers, 0, 'offer settled')
  t.match(server.counters, { received: 2, offers: 1, acks: 1 })
})

t.test('a backend that cannot answer yet (cluster claim pending): REQUEST dropped, the retransmission is ACKed', async (t) => {
  const memory = new MemoryLeaseBackend(POOL)
  let pending = true
  const backend: DhcpLeaseBackend = {
    offer: (...a) => memory.offer(...a),
    commit: (...a) => (pending ? 'pending' : memory.commit(...a)),
    release: (...a) => memory.release(...a),
    decline: (...a) => memory.decline(...a),
  }
  const server = new DhcpServer(backend)
  const offer = reply(server.handle('net1', NET, client(DhcpMessageType.DISCOVER, A))).m
  const req = client(DhcpMessageType.REQUEST, A, { requested: offer.yiaddr, serverId: NET.serverIp })
  t.equal(server.handle('net1', NET, req), null, 'no answer, no NAK')
  t.equal(server.counters.naks, 0)
  pending = false
  const ack = reply(server.handle('net1', NET, req)).m
  t.equal(getMessageType(ack.options), DhcpMessageType.ACK)
  t.equal(ack.yiaddr, offer.yiaddr)
})

t.test('broadcast flag: OFFER and ACK broadcast', async (t) => {
  const { send } = setup()
  const { r: o } = reply(send(client(DhcpMessageType.DISCOVER, A, { flags: BROADCAST_FLAG })))
  t.same([o.broadcast, o.dstMac, o.dstIp], [true, BROADCAST_MAC, '255.255.255.255'])
  t.equal(decode(o.payload).flags, BROADCAST_FLAG, 'flags echoed')
  const { r: a } = reply(send(client(DhcpMessageType.REQUEST, A, { flags: BROADCAST_FLAG, requested: '10.0.0.10', serverId: '10.0.0.1' })))
  t.same([a.broadcast, a.dstMac, a.dstIp], [true, BROADCAST_MAC, '255.255.255.255'])
})

t.test('a known client is offered its address again; a hint is honoured when free', async (t) => {
  const { send } = setup()
  const addr = lease(send, A)
  t.equal(reply(send(client(DhcpMessageType.DISCOVER, A, { requested: '10.0.0.12' }))).m.yiaddr, addr, 'its lease wins over its hint')
  t.equal(reply(send(client(DhcpMessageType.DISCOVER, B, { requested: '10.0.0.12' }))).m.yiaddr, '10.0.0.12', 'hint for a free address')
})

t.test('RENEWING: unicast to ciaddr, ACK', async (t) => {
  const { send, backend } = setup()
  const addr = lease(send, A)
  const before = backend.lookup('net1', A)?.expiresAt ?? 0
  const { r, m } = reply(send(client(DhcpMessageType.REQUEST, A, { ciaddr: addr })))
  t.equal(getMessageType(m.options), DhcpMessageType.ACK)
  t.equal(m.ciaddr, addr, 'ciaddr echoed in the ACK')
  t.equal(m.yiaddr, addr)
  t.same([r.broadcast, r.dstMac, r.dstIp], [false, A, addr], 'unicast to ciaddr')
  t.ok((backend.lookup('net1', A)?.expiresAt ?? 0) >= before, 'lease extended')
})

t.test('REBINDING (sent broadcast, broadcast flag set): still answered at ciaddr (RFC 2131 4.1)', async (t) => {
  const { send } = setup()
  const addr = lease(send, A)
  const { r, m } = reply(send(client(DhcpMessageType.REQUEST, A, { ciaddr: addr, flags: BROADCAST_FLAG })))
  t.equal(getMessageType(m.options), DhcpMessageType.ACK)
  t.same([r.broadcast, r.dstMac, r.dstIp], [false, A, addr])
})

t.test('RENEWING an address that is not the client\'s: NAK, broadcast', async (t) => {
  const { send, server } = setup()
  const addrA = lease(send, A)
  lease(send, B)
  const { r, m } = reply(send(client(DhcpMessageType.REQUEST, B, { ciaddr: addrA })))
  t.equal(getMessageType(m.options), DhcpMessageType.NAK)
  t.same([r.broadcast, r.dstMac, r.dstIp], [true, BROADCAST_MAC, '255.255.255.255'])
  t.equal(m.yiaddr, '0.0.0.0')
  t.equal(m.ciaddr, '0.0.0.0')
  t.equal(getServerId(m.options), '10.0.0.1')
  t.equal(readStringOption(m.options, DhcpOption.MESSAGE), 'address not yours')
  t.notOk(m.options.has(DhcpOption.LEASE_TIME), 'no lease in a NAK')
  t.equal(server.counters.naks, 1)
})

t.test('INIT-REBOOT after a server restart: the lease is in the backend', async (t) => {
  const { send, backend } = setup()
  const addr = lease(send, A)
  const restarted = new DhcpServer(backend)
  const { m } = reply(restarted.handle('net1', NET, client(DhcpMessageType.REQUEST, A, { requested: addr })))
  t.equal(getMessageType(m.options), DhcpMessageType.ACK)
  t.equal(m.yiaddr, addr)
  t.equal(restarted.counters.acks, 1)
})

t.test('INIT-REBOOT on a wrong subnet: NAK', async (t) => {
  const { send, server } = setup()
  lease(send, A)
  const { r, m } = reply(send(client(DhcpMessageType.REQUEST, A, { requested: '192.168.1.50' })))
  t.equal(getMessageType(m.options), DhcpMessageType.NAK)
  t.equal(readStringOption(m.options, DhcpOption.MESSAGE), 'address not on this network')
  t.equal(r.broadcast, true)
  t.equal(server.counters.naks, 1)
})

t.test('INIT-REBOOT for another client\'s address: NAK', async (t) => {
  const { send } = setup()
  const addrA = lease(send, A)
  const { m } = reply(send(client(DhcpMessageType.REQUEST, B, { requested: addrA })))
  t.equal(getMessageType(m.options), DhcpMessageType.NAK)
})

t.test('SELECTING an address that is not the client\'s: NAK', async (t) => {
  const { send, backend } = setup()
  const addrA = lease(send, A)
  reply(send(client(DhcpMessageType.DISCOVER, B)))
  const { m } = reply(send(client(DhcpMessageType.REQUEST, B, { requested: addrA, serverId: '10.0.0.1' })))
  t.equal(getMessageType(m.options), DhcpMessageType.NAK)
  t.equal(backend.lookup('net1', A)?.address, addrA, 'A keeps its lease')
})

t.test('REQUEST naming another server: no reply, our offer forgotten', async (t) => {
  const { send, server, backend } = setup()
  reply(send(client(DhcpMessageType.DISCOVER, A)))
  t.equal(backend.lookup('net1', A)?.address, '10.0.0.10')
  t.equal(send(client(DhcpMessageType.REQUEST, A, { requested: '10.0.0.99', serverId: '10.0.0.254' })), null)
  t.equal(server.counters.ignored, 1)
  t.equal(server.pendingOffers, 0)
  t.equal(backend.lookup('net1', A), undefined, 'the reservation is undone (forgetOffer)')
  t.equal(reply(send(client(DhcpMessageType.DISCOVER, B))).m.yiaddr, '10.0.0.10', 'the address is free again')
})

t.test('an expired offer is not forgotten in the backend', async (t) => {
  const backend = new MemoryLeaseBackend(POOL)
  const server = new DhcpServer(backend, { offerTimeoutMs: 1000 })
  reply(server.handle('net1', NET, client(DhcpMessageType.DISCOVER, A), 0))
  server.handle('net1', NET, client(DhcpMessageType.REQUEST, A, { requested: '10.0.0.99', serverId: '10.0.0.254' }), 5000)
  t.equal(backend.lookup('net1', A)?.address, '10.0.0.10')
})

t.test('RELEASE', async (t) => {
  const { send, server, backend } = setup()
  const addr = lease(send, A)
  t.equal(send(client(DhcpMessageType.RELEASE, A, { ciaddr: addr, serverId: '10.0.0.1' })), null, 'no reply to a RELEASE')
  t.equal(server.counters.releases, 1)
  t.equal(backend.lookup('net1', A), undefined)
  const { m } = reply(send(client(DhcpMessageType.REQUEST, A, { ciaddr: addr })))
  t.equal(getMessageType(m.options), DhcpMessageType.ACK, 'a free address may be taken again (the memory backend allows it)')
})

t.test('RELEASE for another server, or without ciaddr', async (t) => {
  const { send, server, backend } = setup()
  const addr = lease(send, A)
  t.equal(send(client(DhcpMessageType.RELEASE, A, { ciaddr: addr, serverId: '10.9.9.9' })), null)
  t.equal(server.counters.ignored, 1)
  t.equal(send(client(DhcpMessageType.RELEASE, A, { serverId: '10.0.0.1' })), null)
  t.equal(server.counters.malformed, 1)
  t.equal(backend.lookup('net1', A)?.address, addr, 'still leased')
})

t.test('DECLINE: the address is out of the pool, the client gets another', async (t) => {
  const { send, server, backend } = setup()
  const addr = lease(send, A)
  t.equal(send(client(DhcpMessageType.DECLINE, A, { requested: addr, serverId: '10.0.0.1' })), null)
  t.equal(server.counters.declines, 1)
  t.ok(backend.isDeclined('net1', addr))
  const next = reply(send(client(DhcpMessageType.DISCOVER, A))).m.yiaddr
  t.not(next, addr)
  t.equal(send(client(DhcpMessageType.DECLINE, B, { serverId: '10.0.0.1' })), null)
  t.equal(server.counters.malformed, 1, 'DECLINE without option 50')
})

t.test('INFORM: configuration without a lease, to ciaddr', async (t) => {
  const { send, server } = setup()
  const { r, m } = reply(send(client(DhcpMessageType.INFORM, A, { ciaddr: '10.0.0.200', params: [1, 3, 6, 15, 51] })))
  t.equal(getMessageType(m.options), DhcpMessageType.ACK)
  t.equal(m.yiaddr, '0.0.0.0', 'no yiaddr')
  t.equal(m.ciaddr, '10.0.0.200')
  for (const code of [DhcpOption.LEASE_TIME, DhcpOption.RENEWAL_TIME, DhcpOption.REBINDING_TIME]) {
    t.notOk(m.options.has(code), `no option ${code}, even when asked for`)
  }
  t.equal(readIpOption(m.options, DhcpOption.SUBNET_MASK), '255.255.255.0')
  t.same([r.broadcast, r.dstMac, r.dstIp], [false, A, '10.0.0.200'])
  t.equal(server.counters.informs, 1)
  t.equal(send(client(DhcpMessageType.INFORM, A, { ciaddr: '172.16.0.5' })), null, 'INFORM from another subnet')
})

t.test('options: asked-for first in the client\'s order, then the defaults; values and encodings', async (t) => {
  const { send } = setup()
  const clientId = Uint8Array.of(1, 0x52, 0x54, 0, 0x12, 0x34, 0x56)
  // What busybox udhcpc asks for by default (see the pcap fixture).
  const { r, m } = reply(send(client(DhcpMessageType.DISCOVER, A, { params: [1, 3, 6, 12, 15, 28, 42], clientId })))
  t.same([...m.options.keys()], [53, 1, 3, 6, 15, 28, 54, 51, 58, 59, 26, 61])
  t.equal(readIpOption(m.options, DhcpOption.SUBNET_MASK), '255.255.255.0')
  t.same(readIpListOption(m.options, DhcpOption.ROUTER), ['10.0.0.1'])
  t.same(readIpListOption(m.options, DhcpOption.DNS_SERVERS), ['10.0.0.1', '10.0.0.2'])
  t.equal(readStringOption(m.options, DhcpOption.DOMAIN_NAME), 'sy.internal')
  t.equal(readIpOption(m.options, DhcpOption.BROADCAST_ADDRESS), '10.0.0.255')
  t.equal(readUint32Option(m.options, DhcpOption.LEASE_TIME), 3600)
  t.equal(readUint32Option(m.options, DhcpOption.RENEWAL_TIME), 1800, 'T1 = 0.5 lease')
  t.equal(readUint32Option(m.options, DhcpOption.REBINDING_TIME), 3150, 'T2 = 0.875 lease')
  t.equal(readUint16Option(m.options, DhcpOption.MTU), 1450)
  t.same(Array.from(m.options.get(DhcpOption.CLIENT_ID) ?? []), Array.from(clientId), 'client id echoed (RFC 6842)')
  t.notOk(m.options.has(12), 'nothing we cannot answer')
  t.notOk(m.options.has(42), 'nothing we cannot answer')

  // The same bytes on the wire, checked by hand.
  const p = r.payload
  t.same(Array.from(p.subarray(236, 240)), [99, 130, 83, 99], 'magic cookie')
  t.same(Array.from(p.subarray(240, 243)), [53, 1, 2], 'message type OFFER first')
  t.same(Array.from(p.subarray(243, 249)), [1, 4, 255, 255, 255, 0], 'subnet mask')
  t.same(Array.from(p.subarray(249, 255)), [3, 4, 10, 0, 0, 1], 'router')
  t.same(Array.from(p.subarray(255, 265)), [6, 8, 10, 0, 0, 1, 10, 0, 0, 2], 'DNS servers')
  t.same(Array.from(p.subarray(265, 278)), [15, 11, ...Buffer.from('sy.internal')], 'domain name, no NUL')
  t.ok(p.length >= 300, 'padded to 300')
})

t.test('options without a parameter request list, and without optional settings', async (t) => {
  const net: DhcpNetworkConfig = { enabled: true, serverIp: '10.0.0.1', subnetMask: '255.255.255.0', router: '', dnsServers: [], leaseSeconds: 600 }
  const { send } = setup(net)
  const { m } = reply(send(client(DhcpMessageType.DISCOVER, A)))
  t.same([...m.options.keys()], [53, 54, 51, 58, 59, 1], 'no router, DNS, domain, MTU when not set')
  t.equal(readUint32Option(m.options, DhcpOption.REBINDING_TIME), 525)
})

t.test('replies fit the client\'s maximum message size; optional options give way', async (t) => {
  const dnsServers = Array.from({ length: 60 }, (_, i) => `10.0.1.${i + 1}`)
  const net: DhcpNetworkConfig = { ...NET, dnsServers, domainName: 'd'.repeat(200) }
  const { send } = setup(net)
  const small = reply(send(client(DhcpMessageType.DISCOVER, A, { params: [15, 6] }))).r.payload
  t.ok(small.length <= 576 - 28, `${small.length} bytes within the RFC 2131 minimum of 576`)
  const m = decode(small)
  for (const code of [53, 54, 51, 58, 59]) t.ok(m.options.has(code), `essential option ${code} kept`)
  t.ok(m.options.has(15), 'asked first, kept')
  t.notOk(m.options.has(6), 'did not fit after 15')
  const big = decode(reply(send(client(DhcpMessageType.DISCOVER, B, { params: [15, 6], maxSize: 1500 }))).r.payload)
  t.ok(big.options.has(6) && big.options.has(15), 'room for both with option 57 = 1500')
})

t.test('disabled network: silent, counted as ignored', async (t) => {
  const { send, server } = setup({ ...NET, enabled: false })
  t.equal(send(client(DhcpMessageType.DISCOVER, A)), null)
  t.match(server.counters, { received: 1, ignored: 1, offers: 0 })
})

t.test('pool exhausted: no offer, logged, ignored', async (t) => {
  const { send, server, logs } = setup()
  for (const mac of [1, 2, 3].map((i) => parseMac(`02:00:00:00:00:0${i}`))) reply(send(client(DhcpMessageType.DISCOVER, mac)))
  t.equal(send(client(DhcpMessageType.DISCOVER, A)), null)
  t.equal(server.counters.ignored, 1)
  t.match(logs[0], /no offer for 52:54:00:12:34:56: no free address/)
})

t.test('pending offers are bounded', async (t) => {
  const pool = Array.from({ length: 50 }, (_, i) => `10.0.0.${i + 10}`)
  const server = new DhcpServer(new MemoryLeaseBackend(pool), { maxPendingOffers: 4 })
  for (let i = 0; i < 50; i++) reply(server.handle('n', NET, client(DhcpMessageType.DISCOVER, 0x020000000000 + i)))
  t.equal(server.pendingOffers, 4)
})

t.test('networks are separate', async (t) => {
  const backend = new MemoryLeaseBackend(POOL)
  const server = new DhcpServer(backend)
  const net2: DhcpNetworkConfig = { ...NET, serverIp: '10.0.0.1' }
  t.equal(reply(server.handle('n1', NET, client(DhcpMessageType.DISCOVER, A))).m.yiaddr, '10.0.0.10')
  t.equal(reply(server.handle('n2', net2, client(DhcpMessageType.DISCOVER, B))).m.yiaddr, '10.0.0.10', 'own pool per network')
  t.equal(backend.lookup('n2', A), undefined)
})

t.test('malformed requests are counted drops', async (t) => {
  const { send, server } = setup()
  const noType = decode(client(DhcpMessageType.DISCOVER, A))
  noType.options.delete(DhcpOption.MESSAGE_TYPE)
  const badLen = decode(client(DhcpMessageType.REQUEST, A))
  badLen.options.set(DhcpOption.REQUESTED_IP, Uint8Array.of(10, 0, 0))
  const cases: Array<[string, Uint8Array]> = [
    ['op=2 (BOOTREPLY) from a client', client(DhcpMessageType.DISCOVER, A, { op: 2 })],
    ['no message type', encode(noType)],
    ['server message type from a client', client(DhcpMessageType.OFFER, A)],
    ['requested IP of 3 bytes', encode(badLen)],
    ['REQUEST naming no address', client(DhcpMessageType.REQUEST, A)],
    ['broadcast chaddr', client(DhcpMessageType.DISCOVER, BROADCAST_MAC)],
    ['zero chaddr', client(DhcpMessageType.DISCOVER, 0)],
    ['not DHCP at all', new Uint8Array(300)],
    ['oversize', Uint8Array.from([...client(DhcpMessageType.DISCOVER, A), ...new Uint8Array(1200)])],
    ['empty', new Uint8Array(0)],
  ]
  for (const [name, payload] of cases) {
    const before = server.counters.malformed
    t.equal(send(payload), null, name)
    t.equal(server.counters.malformed, before + 1, `${name}: counted`)
  }
  t.equal(send(client(DhcpMessageType.DISCOVER, A, { htype: 6 })), null, 'IEEE 802 htype')
  t.equal(server.counters.ignored, 1, 'non-Ethernet is ignored, not malformed')
  t.equal(send(client(9, A)), null, 'a message type from a later RFC')
  t.equal(server.counters.ignored, 2)
  t.equal(sum(server.counters), server.counters.received, 'each payload counted once')
})

t.test('a bad network config throws a clear error', async (t) => {
  const server = new DhcpServer(new MemoryLeaseBackend(POOL))
  t.throws(() => server.handle('n', { ...NET, subnetMask: '255.0.255.0' }, client(1, A)), InvalidDhcpConfigError)
  t.throws(() => server.handle('n', { ...NET, mtu: 20 }, client(1, A)), /mtu 20/)
  t.throws(() => server.handle('n', { ...NET, router: 'gw' }, client(1, A)), /router/)
  t.throws(() => server.handle('n', { ...NET, leaseSeconds: 0 }, client(1, A)), /leaseSeconds/)
})

t.test('hostnames: valid names reach the backend, junk does not', async (t) => {
  const { send, backend } = setup()
  reply(send(client(DhcpMessageType.DISCOVER, A, { hostname: 'vm-1.lab' })))
  t.equal(backend.lookup('net1', A)?.hostname, 'vm-1.lab')
  reply(send(client(DhcpMessageType.DISCOVER, B, { hostname: 'bad name;rm' })))
  t.equal(backend.lookup('net1', B)?.hostname, undefined)
})

t.test('reply encodings are valid: op, htype, hlen, giaddr echoed, sname/file empty', async (t) => {
  const { send } = setup()
  const { m } = reply(send(client(DhcpMessageType.DISCOVER, A)))
  t.same({ op: m.op, htype: m.htype, hops: m.hops, secs: m.secs, siaddr: m.siaddr, giaddr: m.giaddr, sname: m.sname, file: m.file },
    { op: 2, htype: 1, hops: 0, secs: 0, siaddr: '0.0.0.0', giaddr: '0.0.0.0', sname: '', file: '' })
  t.equal(m.chaddr.length, 6)
  t.same(ipListOption(['10.0.0.1']), m.options.get(DhcpOption.ROUTER))
})
