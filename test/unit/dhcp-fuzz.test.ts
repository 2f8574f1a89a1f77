// Seeded fuzzing of DhcpServer.handle: mutated real and built client messages must never
// throw, every payload is counted exactly once, and every reply is a valid DHCP message.
import t from 'tap'
import { prng } from '../helpers/packet-fuzz.js'
import {
  DhcpMessageType, DhcpOption, decode, encode, getMessageType, ipOption, uint8Option,
  type DhcpMessage,
} from '../../src/gateway/dhcp/codec.js'
import { DhcpServer, type DhcpCounters, type DhcpNetworkConfig } from '../../src/gateway/dhcp/server.js'
import { MemoryLeaseBackend } from '../../src/gateway/dhcp/memory-backend.js'

const ITERATIONS = 5000
const SEED = 0x5eed1234


const UDHCPC_DISCOVER = Buffer.from(
  '010106000d671a43000000000000000000000000000000000000000052540012345600000000000000000000' +
  '00'.repeat(192) +
  '638253633501013902024037070103060c0f1c2a3c0c756468637020312e33352e303d0701525400123456ff' +
  '00'.repeat(20),
  'hex',
)

function variant(type: number, extra: Array<[number, Uint8Array]>, ciaddr = '0.0.0.0'): Uint8Array {
  const m: DhcpMessage = decode(UDHCPC_DISCOVER)
  m.ciaddr = ciaddr
  m.options = new Map([[DhcpOption.MESSAGE_TYPE, uint8Option(type)], ...extra, ...[...m.options].filter(([c]) => c !== 53)])
  return encode(m)
}

const SEEDS: Uint8Array[] = [
  UDHCPC_DISCOVER,
  variant(DhcpMessageType.REQUEST, [[50, ipOption('10.0.0.10')], [54, ipOption('10.0.0.1')]]),
  variant(DhcpMessageType.REQUEST, [[50, ipOption('10.0.0.10')]]),
  variant(DhcpMessageType.REQUEST, [], '10.0.0.10'),
  variant(DhcpMessageType.RELEASE, [[54, ipOption('10.0.0.1')]], '10.0.0.10'),
  variant(DhcpMessageType.DECLINE, [[50, ipOption('10.0.0.10')], [54, ipOption('10.0.0.1')]]),
  variant(DhcpMessageType.INFORM, [], '10.0.0.10'),
]

function mutate(rand: () => number, seed: Uint8Array): Uint8Array {
  const int = (n: number) => Math.floor(rand() * n)
  const kind = int(7)
  let b = Uint8Array.from(seed)
  switch (kind) {
    case 0: // flip a few bytes anywhere
      for (let i = 0, n = 1 + int(8); i < n; i++) b[int(b.length)] = int(256)
      break
    case 1: // hit the options area, where lengths live
      for (let i = 0, n = 1 + int(4); i < n; i++) b[240 + int(b.length - 240)] = int(256)
      break
    case 2: // truncate
      b = b.subarray(0, int(b.length + 1))
      break
    case 3: { // extend with junk, sometimes past the size limit
      const out = new Uint8Array(b.length + int(1400))
      out.set(b)
      for (let i = b.length; i < out.length; i++) out[i] = int(256)
      b = out
      break
    }
    case 4: { // random TLVs after the cookie, lengths often wrong
      let i = 240
      while (i < b.length - 1) {
        b[i] = int(256)
        b[i + 1] = int(rand() < 0.8 ? 8 : 256)
        i += 2 + b[i + 1]
      }
      if (rand() < 0.5) b[b.length - 1] = 255
      break
    }
    case 5: // header fields: op, htype, hlen, flags, ciaddr
      b[int(12) + (rand() < 0.5 ? 0 : 12)] = int(256)
      break
    default: { // nothing like DHCP at all
      b = new Uint8Array(int(1600))
      for (let i = 0; i < b.length; i++) b[i] = int(256)
    }
  }
  return b
}

function sum(c: DhcpCounters): number {
  return c.offers + c.acks + c.naks + c.releases + c.declines + c.informs + c.malformed + c.ignored
}

t.test(`handle() survives ${ITERATIONS} mutated packets (seed ${SEED.toString(16)})`, async (t) => {
  const rand = prng(SEED)
  const pool = Array.from({ length: 200 }, (_, i) => `10.0.0.${i + 10}`)
  const server = new DhcpServer(new MemoryLeaseBackend(pool), { maxPendingOffers: 64 })
  const net: DhcpNetworkConfig = {
    enabled: true, serverIp: '10.0.0.1', subnetMask: '255.255.255.0', router: '10.0.0.1',
    dnsServers: ['10.0.0.1'], domainName: 'sy.internal', mtu: 1450, leaseSeconds: 3600,
  }
  const problems: string[] = []
  let replies = 0
  for (let i = 0; i < ITERATIONS; i++) {
    const payload = mutate(rand, SEEDS[i % SEEDS.length])
    try {
      const r = server.handle('fuzz', net, payload, i * 1000)
      if (r === null) continue
      replies++
      const m = decode(r.payload)
      const type = getMessageType(m.options)
      if (m.op !== 2 || r.payload.length < 300 || (type !== 2 && type !== 5 && type !== 6)) {
        problems.push(`#${i}: bad reply op=${m.op} type=${type} len=${r.payload.length}`)
      }
    } catch (err) {
      problems.push(`#${i}: threw ${String(err)} for ${Buffer.from(payload).toString('hex')}`)
    }
    if (problems.length > 5) break
  }
  t.same(problems, [], 'no throw, every reply valid')
  const c = server.counters
  t.equal(c.received, ITERATIONS)
  t.equal(sum(c), c.received, 'each payload counted exactly once')
  t.ok(c.malformed > ITERATIONS / 4, `malformed counted: ${c.malformed}`)
  t.ok(replies > 100, `the fuzz also reaches the state machine: ${replies} replies, counters ${JSON.stringify(c)}`)
  t.ok(server.pendingOffers <= 64, 'offers stay bounded')
})
