import t from 'tap'
import {
  RecordError,
  decodeAllocation,
  decodeEndpoint,
  decodeHost,
  decodeNetwork,
  encodeAllocation,
  encodeEndpoint,
  encodeHost,
  encodeNetwork,
  keys,
  parseKey,
  type EndpointRec,
  type NetworkRec,
} from '../../src/cluster/records.js'
import { parseClusterUrl } from '../../src/cluster/etcd-cluster.js'
import { prng } from '../helpers/packet-fuzz.js'

const ID = 'a1'.repeat(32)
const NET = 'b2'.repeat(32)
const network: NetworkRec = {
  id: NET, name: 'ov', vni: 4096, subnet: '10.9.0.0/24', gateway: '10.9.0.1', ipRange: '', auxAddresses: { r: '10.9.0.5' },
  mtu: 1450, internal: false, labels: { a: 'b' }, options: {}, createdAt: '2026-11-25T00:00:00Z', origin: 'host-1',
}
const endpoint: EndpointRec = { id: ID, networkId: NET, name: 'web-ov', mac: '02:42:0a:09:00:02', address: '10.9.0.2/24', names: ['web', 'www'], host: 'host-1', vtep: '10.228.0.1' }

t.test('records round-trip', async (t) => {
  t.same(decodeNetwork(encodeNetwork(network)), network)
  t.same(decodeEndpoint(encodeEndpoint(endpoint)), endpoint)
  t.same(decodeAllocation(encodeAllocation({ endpointId: ID, host: 'h' })), { endpointId: ID, host: 'h' })
  t.same(decodeHost(encodeHost({ id: 'h', vtep: '10.0.0.1', vxlanPort: 4789, startedAtMs: 1764000000000 })), { id: 'h', vtep: '10.0.0.1', vxlanPort: 4789, startedAtMs: 1764000000000 })
  t.same(encodeAllocation({ endpointId: ID, host: 'h' }), encodeAllocation({ endpointId: ID, host: 'h' }), 'encoding is deterministic (releases compare by value)')
})

t.test('records that decode but say nonsense are RecordErrors', async (t) => {
  const bad: [string, () => unknown][] = [
    ['network id', () => decodeNetwork(encodeNetwork({ ...network, id: 'x' }))],
    ['network name', () => decodeNetwork(encodeNetwork({ ...network, name: '../etc' }))],
    ['vni 0', () => decodeNetwork(encodeNetwork({ ...network, vni: 0 }))],
    ['vni too big', () => decodeNetwork(encodeNetwork({ ...network, vni: 1 << 24 }))],
    ['mtu', () => decodeNetwork(encodeNetwork({ ...network, mtu: 100 }))],
    ['subnet', () => decodeNetwork(encodeNetwork({ ...network, subnet: '10.9.0.0' }))],
    ['gateway', () => decodeNetwork(encodeNetwork({ ...network, gateway: '300.1.1.1' }))],
    ['endpoint mac', () => decodeEndpoint(encodeEndpoint({ ...endpoint, mac: 'zz' }))],
    ['endpoint address', () => decodeEndpoint(encodeEndpoint({ ...endpoint, address: '10.9.0.2' }))],
    ['endpoint vtep', () => decodeEndpoint(encodeEndpoint({ ...endpoint, vtep: '' }))],
    ['endpoint ids', () => decodeEndpoint(encodeEndpoint({ ...endpoint, networkId: 'n' }))],
    ['too many names', () => decodeEndpoint(encodeEndpoint({ ...endpoint, names: Array(65).fill('a') }))],
    ['allocation', () => decodeAllocation(encodeAllocation({ endpointId: '', host: 'h' }))],
    ['host vtep', () => decodeHost(encodeHost({ id: 'h', vtep: 'x', vxlanPort: 1, startedAtMs: 0 }))],
    ['oversized', () => decodeEndpoint(Buffer.alloc(70_000))],
    ['empty', () => decodeEndpoint(Buffer.alloc(0))],
  ]
  for (const [what, fn] of bad) t.throws(fn, RecordError, what)
})

t.test('truncated and random bytes never throw anything but RecordError', async (t) => {
  const good = [encodeNetwork(network), encodeEndpoint(endpoint), encodeAllocation({ endpointId: ID, host: 'h' })]
  const decoders = [decodeNetwork, decodeEndpoint, decodeAllocation, decodeHost]
  const rnd = prng(7)
  let n = 0
  for (const g of good) {
    for (let cut = 0; cut < g.length; cut++) {
      for (const d of decoders) {
        try {
          d(g.subarray(0, cut))
        } catch (e) {
          if (!(e instanceof RecordError)) throw e
        }
        n++
      }
    }
    for (let i = 0; i < 500; i++) {
      const m = Buffer.from(g)
      for (let k = 0; k < 3; k++) m[Math.floor(rnd() * m.length)] = Math.floor(rnd() * 256)
      for (const d of decoders) {
        try {
          d(m)
        } catch (e) {
          if (!(e instanceof RecordError)) throw e
        }
        n++
      }
    }
  }
  t.ok(n > 6000, `${n} decodes of mutated records`)
})

t.test('keys', async (t) => {
  t.same(parseKey(keys.endpoint(NET, ID)), { kind: 'endpoints', parts: [NET, ID] })
  t.same(parseKey(keys.ipam(NET, '10.9.0.2')), { kind: 'ipam', parts: [NET, '10.9.0.2'] })
  t.equal(parseKey('/other/v1/hosts/x'), undefined, 'foreign prefix')
  t.equal(parseKey('/switchyard/v1/bogus/x'), undefined, 'unknown kind')
  t.equal(parseKey('/switchyard/v1/endpoints//x'), undefined, 'empty segment')
})

t.test('--cluster-store URLs', async (t) => {
  t.same(parseClusterUrl('etcd://10.0.0.1:2379'), ['http://10.0.0.1:2379'])
  t.same(parseClusterUrl('etcd://a:2379,b.example:2380'), ['http://a:2379', 'http://b.example:2380'])
  for (const bad of ['http://a:2379', 'etcd://', 'etcd://a', 'etcd://a:2379,', 'etcd://a b:1']) t.throws(() => parseClusterUrl(bad), { name: 'ClusterStoreError' }, bad)
})
