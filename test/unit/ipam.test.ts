import t from 'tap'
import { parseCidr } from '../../src/control/cidr.js'
import {
  AddressInUseError,
  AddressOutOfRangeError,
  AddressPool,
  chooseDefaultSubnet,
  DEFAULT_POOLS,
  InvalidPoolError,
  IpamExhaustedError,
  NoDefaultPoolError,
  parseIpAddrJson,
  parseProcNetRoute,
  readHostRoutes,
  type PoolConfig,
} from '../../src/control/ipam.js'

/** The error fn throws, or undefined. */
function caught(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  return undefined
}

/** Allocate until the pool is exhausted; returns what was handed out. */
function drain(pool: AddressPool): string[] {
  const out: string[] = []
  for (;;) {
    try {
      out.push(pool.allocate())
    } catch (err) {
      if (err instanceof IpamExhaustedError) return out
      throw err
    }
  }
}

t.test('pool defaults: gateway is the first address, network/broadcast reserved', async (t) => {
  const pool = new AddressPool({ subnet: '10.5.0.0/24' })
  t.equal(pool.subnet, '10.5.0.0/24')
  t.equal(pool.gateway, '10.5.0.1')
  t.equal(pool.ipRange, undefined)
  t.same(pool.auxAddresses, {})
  t.ok(pool.isReserved('10.5.0.0'))
  t.ok(pool.isReserved('10.5.0.1'))
  t.ok(pool.isReserved('10.5.0.255'))
  t.notOk(pool.isReserved('10.5.0.2'))
  t.notOk(pool.isAllocated('10.5.0.1'), 'the gateway is reserved, not allocated')
  t.equal(pool.allocate(), '10.5.0.2')
  t.equal(pool.allocate(), '10.5.0.3')
  t.same(pool.allocated(), ['10.5.0.2', '10.5.0.3'])
  t.equal(pool.allocatedCount, 2)
})

t.test('pool config validation names the field', async (t) => {
  const cases: Array<[PoolConfig, string, string]> = [
    [{ subnet: '' }, 'subnet', 'empty subnet'],
    [{ subnet: 'garbage' }, 'subnet', 'garbage subnet'],
    [{ subnet: '10.0.0.0' }, 'subnet', 'no prefix'],
    [{ subnet: '10.0.0.0/33' }, 'subnet', 'prefix too long'],
    [{ subnet: '10.0.0.5/24' }, 'subnet', 'host bits set'],
    [{ subnet: '10.0.0.0/31' }, 'subnet', '/31 has no room'],
    [{ subnet: '10.0.0.1/32' }, 'subnet', '/32 has no room'],
    [{ subnet: '0.0.0.0/0' }, 'subnet', '/0 is everything'],
    [{ subnet: 42 as unknown as string }, 'subnet', 'not a string'],
    [{ subnet: '10.0.0.0/24', gateway: '10.0.1.1' }, 'gateway', 'gateway outside subnet'],
    [{ subnet: '10.0.0.0/24', gateway: '10.0.0.0' }, 'gateway', 'gateway is the network address'],
    [{ subnet: '10.0.0.0/24', gateway: '10.0.0.255' }, 'gateway', 'gateway is the broadcast address'],
    [{ subnet: '10.0.0.0/24', gateway: '10.0.0' }, 'gateway', 'malformed gateway'],
    [{ subnet: '10.0.0.0/24', ipRange: '10.0.1.0/25' }, 'ipRange', 'range outside subnet'],
    [{ subnet: '10.0.0.0/24', ipRange: '10.0.0.0/23' }, 'ipRange', 'range larger than subnet'],
    [{ subnet: '10.0.0.0/24', ipRange: '10.0.0.5/25' }, 'ipRange', 'range with host bits'],
    [{ subnet: '10.0.0.0/24', ipRange: '10.0.0.0/32' }, 'ipRange', 'range of only the network address'],
    [{ subnet: '10.0.0.0/24', ipRange: 'x' }, 'ipRange', 'malformed range'],
    [{ subnet: '10.0.0.0/24', auxAddresses: { r: '10.0.1.2' } }, 'auxAddresses.r', 'aux outside subnet'],
    [{ subnet: '10.0.0.0/24', auxAddresses: { r: '10.0.0.1' } }, 'auxAddresses.r', 'aux equals gateway'],
    [{ subnet: '10.0.0.0/24', auxAddresses: { r: '10.0.0.255' } }, 'auxAddresses.r', 'aux is broadcast'],
    [{ subnet: '10.0.0.0/24', auxAddresses: { a: '10.0.0.7', b: '10.0.0.7' } }, 'auxAddresses.b', 'duplicate aux'],
    [{ subnet: '10.0.0.0/24', auxAddresses: { r: 7 as unknown as string } }, 'auxAddresses.r', 'aux not a string'],
    [{ subnet: '10.0.0.0/24', auxAddresses: [] as unknown as Record<string, string> }, 'auxAddresses', 'aux is an array'],
  ]
  for (const [config, field, what] of cases) {
    const err = caught(() => new AddressPool(config))
    t.ok(err instanceof InvalidPoolError, what)
    t.match(err, { code: 'INVALID_POOL', field, message: `invalid IPAM config: ${field}` }, what)
  }
  t.match(caught(() => new AddressPool({ subnet: '10.0.0.5/24' })), { message: 'did you mean 10.0.0.0/24' })
  t.match(caught(() => new AddressPool(null as unknown as PoolConfig)), { code: 'INVALID_POOL', field: 'config' })
  t.ok(new AddressPool({ subnet: '10.0.0.0/30' }), 'a /30 is the smallest pool')
  t.ok(new AddressPool({ subnet: '10.0.0.0/24', ipRange: '10.0.0.0/24' }), 'range equal to subnet')
})

t.test('a /29 hands out exactly 5 addresses, then a clear exhaustion error', async (t) => {
  const pool = new AddressPool({ subnet: '192.168.100.0/29' })
  const got = drain(pool)
  t.same(got, ['192.168.100.2', '192.168.100.3', '192.168.100.4', '192.168.100.5', '192.168.100.6'])
  const err = caught(() => pool.allocate())
  t.ok(err instanceof IpamExhaustedError)
  t.match(err, { code: 'IPAM_EXHAUSTED', message: '192.168.100.0/29' })
  t.match((err as Error).message, /larger subnet/)
  t.match((err as Error).message, /release/)
  t.match((err as Error).message, /all 5 assignable/)
  t.notOk(got.includes('192.168.100.0') || got.includes('192.168.100.7') || got.includes('192.168.100.1'))
})

t.test('a /30 has exactly one address for endpoints', async (t) => {
  const pool = new AddressPool({ subnet: '10.9.9.4/30' })
  t.same(drain(pool), ['10.9.9.6'])
})

t.test('a configured gateway in the middle is skipped', async (t) => {
  const pool = new AddressPool({ subnet: '10.0.0.0/29', gateway: '10.0.0.4' })
  t.equal(pool.gateway, '10.0.0.4')
  t.same(drain(pool), ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.5', '10.0.0.6'])
})

t.test('aux addresses are never handed out', async (t) => {
  const pool = new AddressPool({ subnet: '10.0.0.0/29', auxAddresses: { router: '10.0.0.3', nas: '10.0.0.6' } })
  t.same(pool.auxAddresses, { router: '10.0.0.3', nas: '10.0.0.6' })
  t.same(drain(pool), ['10.0.0.2', '10.0.0.4', '10.0.0.5'])
  t.match(caught(() => pool.allocate()), { message: 'all 3 assignable' })
  const err = caught(() => new AddressPool({ subnet: '10.0.0.0/29', auxAddresses: { router: '10.0.0.3' } }).allocate('10.0.0.3'))
  t.ok(err instanceof AddressInUseError)
  t.match(err, { code: 'ADDRESS_IN_USE', message: 'router' })
})

t.test('static requests', async (t) => {
  const pool = new AddressPool({ subnet: '172.20.0.0/16', ipRange: '172.20.5.0/24' })
  t.equal(pool.allocate('172.20.9.9'), '172.20.9.9', 'outside ipRange but inside subnet is allowed')
  t.ok(pool.isAllocated('172.20.9.9'))
  t.equal(pool.allocate('172.20.5.7'), '172.20.5.7')

  let err = caught(() => pool.allocate('172.20.9.9'))
  t.ok(err instanceof AddressInUseError, 'already allocated')
  t.match(err, { code: 'ADDRESS_IN_USE', address: '172.20.9.9', message: 'allocated to an endpoint' })

  err = caught(() => pool.allocate('172.20.0.1'))
  t.ok(err instanceof AddressInUseError, 'the gateway')
  t.match(err, { code: 'ADDRESS_IN_USE', message: 'gateway' })

  err = caught(() => pool.allocate('172.21.0.5'))
  t.ok(err instanceof AddressOutOfRangeError, 'outside the subnet')
  t.match(err, { code: 'ADDRESS_OUT_OF_RANGE', message: '172.20.0.1 to 172.20.255.254' })

  for (const a of ['172.20.0.0', '172.20.255.255']) {
    err = caught(() => pool.allocate(a))
    t.ok(err instanceof AddressOutOfRangeError, `${a} is not assignable`)
    t.match(err, { code: 'ADDRESS_OUT_OF_RANGE' })
  }
  t.match(caught(() => pool.allocate('172.20.0.300')), { code: 'INVALID_ADDRESS' })

  // Dynamic allocation skips statically taken addresses in the range.
  const dyn: string[] = []
  for (let i = 0; i < 8; i++) dyn.push(pool.allocate())
  t.same(dyn, ['172.20.5.0', '172.20.5.1', '172.20.5.2', '172.20.5.3', '172.20.5.4', '172.20.5.5', '172.20.5.6', '172.20.5.8'])
})

t.test('ipRange bounds dynamic allocation and the exhaustion message names it', async (t) => {
  const pool = new AddressPool({ subnet: '10.1.0.0/24', ipRange: '10.1.0.248/29' })
  t.same(drain(pool), ['10.1.0.248', '10.1.0.249', '10.1.0.250', '10.1.0.251', '10.1.0.252', '10.1.0.253', '10.1.0.254'],
    'the subnet broadcast at the range end is skipped')
  t.match(caught(() => pool.allocate()), { code: 'IPAM_EXHAUSTED', message: 'ip-range 10.1.0.248/29 of subnet 10.1.0.0/24' })
  t.equal(pool.allocate('10.1.0.9'), '10.1.0.9', 'static outside the range still works')
})

t.test('release: next-fit keeps a released address until wraparound', async (t) => {
  const pool = new AddressPool({ subnet: '10.0.0.0/29' })
  const [a, b, c] = [pool.allocate(), pool.allocate(), pool.allocate()]
  t.same([a, b, c], ['10.0.0.2', '10.0.0.3', '10.0.0.4'])
  t.equal(pool.release(b), true)
  t.notOk(pool.isAllocated(b))
  t.equal(pool.release(b), false, 'releasing twice is a no-op')
  t.equal(pool.allocate(), '10.0.0.5', 'the released address is not reused at once')
  t.equal(pool.allocate(), '10.0.0.6')
  t.equal(pool.allocate(), '10.0.0.3', 'after wraparound the released address comes back')
  t.match(caught(() => pool.allocate()), { code: 'IPAM_EXHAUSTED' })
  t.equal(pool.release('10.0.0.6'), true)
  t.equal(pool.allocate(), '10.0.0.6')
  t.equal(pool.release('10.0.0.1'), false, 'the gateway cannot be released')
  t.ok(pool.isReserved('10.0.0.1'))
  t.equal(pool.release('10.0.0.0'), false, 'nor the network address')
  t.match(caught(() => pool.release('10.0.1.1')), { code: 'ADDRESS_OUT_OF_RANGE' })
  t.match(caught(() => pool.release('nope')), { code: 'INVALID_ADDRESS' })
  t.notOk(pool.isAllocated('10.9.9.9'), 'outside the subnet is simply not allocated')
})

t.test('toJSON/fromJSON round trip keeps allocations and the cursor', async (t) => {
  const pool = new AddressPool({ subnet: '10.3.0.0/24', gateway: '10.3.0.254', ipRange: '10.3.0.0/25', auxAddresses: { r: '10.3.0.5' } })
  for (let i = 0; i < 10; i++) pool.allocate()
  pool.allocate('10.3.0.200')
  pool.release('10.3.0.3')
  pool.release('10.3.0.7')
  const state = pool.toJSON()
  t.same(state, {
    version: 1,
    subnet: '10.3.0.0/24',
    gateway: '10.3.0.254',
    ipRange: '10.3.0.0/25',
    auxAddresses: { r: '10.3.0.5' },
    allocated: ['10.3.0.1-10.3.0.2', '10.3.0.4', '10.3.0.6', '10.3.0.8-10.3.0.11', '10.3.0.200'],
    next: '10.3.0.12',
  })
  const back = AddressPool.fromJSON(JSON.parse(JSON.stringify(state)))
  t.same(back.allocated(), pool.allocated())
  t.equal(back.allocatedCount, pool.allocatedCount)
  t.same(back.toJSON(), state)
  t.equal(back.allocate(), pool.allocate(), 'the next address is the same as before the restart')
  t.match(caught(() => back.allocate('10.3.0.4')), { code: 'ADDRESS_IN_USE' }, 'never twice, also after a restart')
  t.notOk(back.allocated().includes('10.3.0.5'))

  const noRange = new AddressPool({ subnet: '10.4.0.0/30' })
  t.notOk('ipRange' in noRange.toJSON(), 'no ipRange key when none is set')
})

t.test('fromJSON rejects bad state with InvalidPoolError', async (t) => {
  const good = new AddressPool({ subnet: '10.3.0.0/24' }).toJSON()
  const bad: Array<[unknown, string]> = [
    [null, 'state'],
    ['x', 'state'],
    [{ ...good, version: 2 }, 'version'],
    [{ ...good, gateway: undefined }, 'gateway'],
    [{ ...good, subnet: 'x' }, 'subnet'],
    [{ ...good, allocated: 'x' }, 'allocated'],
    [{ ...good, allocated: [7] }, 'allocated'],
    [{ ...good, allocated: ['10.3.1.7'] }, 'allocated'],
    [{ ...good, allocated: ['10.3.0.9-10.3.0.4'] }, 'allocated'],
    [{ ...good, allocated: ['10.3.0.1'] }, 'allocated'],
    [{ ...good, allocated: ['10.3.0.250-10.3.0.255'] }, 'allocated'],
    [{ ...good, allocated: ['10.3.0.x'] }, 'allocated'],
    [{ ...good, next: 'x' }, 'next'],
  ]
  for (const [state, field] of bad) {
    const err = caught(() => AddressPool.fromJSON(state))
    t.ok(err instanceof InvalidPoolError, `bad ${field}: ${JSON.stringify(state)}`)
    t.match(err, { field })
  }
  const outOfRange = AddressPool.fromJSON({ ...good, next: '10.3.0.255' })
  t.equal(outOfRange.allocate(), '10.3.0.2', 'a cursor outside the range restarts at the range start')
})

t.test('large subnets stay cheap: sparse pages', async (t) => {
  const big = new AddressPool({ subnet: '10.0.0.0/8' })
  const n = 70000 // crosses a 65536-address page
  let last = ''
  for (let i = 0; i < n; i++) last = big.allocate()
  t.equal(big.allocatedCount, n)
  t.equal(last, '10.1.17.113')
  t.equal(big.allocate('10.255.255.254'), '10.255.255.254')
  t.equal(big.toJSON().allocated.length, 2, 'runs keep the state small')
  t.same(big.toJSON().allocated, ['10.0.0.2-10.1.17.113', '10.255.255.254'])

  const huge = new AddressPool({ subnet: '0.0.0.0/1' })
  t.equal(huge.allocate(), '0.0.0.2')
  t.equal(huge.allocate('127.255.255.254'), '127.255.255.254')
  t.equal(huge.release('127.255.255.254'), true)

  const upper = new AddressPool({ subnet: '128.0.0.0/1' })
  t.equal(upper.gateway, '128.0.0.1')
  t.equal(upper.allocate('255.255.255.254'), '255.255.255.254')
  t.match(caught(() => upper.allocate('255.255.255.255')), { code: 'ADDRESS_OUT_OF_RANGE' })
})

t.test('a full /16 (one whole page) exhausts exactly', async (t) => {
  const pool = new AddressPool({ subnet: '172.30.0.0/16' })
  const got = drain(pool)
  t.equal(got.length, 65533)
  t.equal(new Set(got).size, 65533, 'no address twice')
  t.equal(got[got.length - 1], '172.30.255.254')
  t.equal(pool.release('172.30.128.0'), true)
  t.equal(pool.allocate(), '172.30.128.0')
})

t.test('chooseDefaultSubnet skips networks and host routes', async (t) => {
  const c = (s: string) => parseCidr(s)
  t.equal(DEFAULT_POOLS.length, 31)
  t.equal(DEFAULT_POOLS[0], '172.17.0.0/16')
  t.equal(DEFAULT_POOLS[14], '172.31.0.0/16')
  t.equal(DEFAULT_POOLS[15], '192.168.0.0/20')
  t.equal(DEFAULT_POOLS[30], '192.168.240.0/20')
  t.equal(chooseDefaultSubnet([], []), '172.17.0.0/16')
  t.equal(chooseDefaultSubnet([c('172.17.0.0/16')], []), '172.18.0.0/16')
  t.equal(chooseDefaultSubnet([c('172.17.0.0/16')], [c('172.18.3.0/24')]), '172.19.0.0/16', 'a route inside a pool rules it out')
  t.equal(chooseDefaultSubnet([], [c('0.0.0.0/0'), c('172.17.0.1/16')]), '172.18.0.0/16', 'the default route is ignored')
  t.equal(chooseDefaultSubnet([], [c('172.16.0.0/12')]), '192.168.0.0/20', 'a route covering all 172 pools')
  t.equal(chooseDefaultSubnet([c('192.168.0.0/20')], [c('172.16.0.0/12'), c('192.168.17.0/24')]), '192.168.32.0/20')
  const err = caught(() => chooseDefaultSubnet([c('192.168.0.0/16')], [c('172.16.0.0/12')]))
  t.ok(err instanceof NoDefaultPoolError)
  t.match(err, { code: 'IPAM_NO_DEFAULT_POOL', message: /give a subnet explicitly/ })
})

t.test('host routes: parsing and reading', async (t) => {
  const route = [
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0',
    'eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
    'docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0',
    'weird\t000011AC\t00000000\t0001\t0\t0\t0\t00FF00FF\t0\t0\t0',
    'short line',
    '',
  ].join('\n')
  t.same(parseProcNetRoute(route, true).map((r) => `${r.network}/${r.prefix}`),
    [`${parseCidr('192.0.2.0/24').network}/24`, `${parseCidr('172.17.0.0/16').network}/16`],
    'little-endian hex, default route and non-contiguous masks skipped')
  t.same(parseProcNetRoute('Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\neth0\tC0000200\t0\t1\t0\t0\t0\tFFFFFF00', false),
    [parseCidr('192.0.2.0/24')], 'big-endian hosts')

  const addrs = JSON.stringify([
    { ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
    { ifname: 'eth0', addr_info: [{ family: 'inet', local: '192.0.2.2', prefixlen: 24 }, { family: 'inet6', local: '::1', prefixlen: 128 }] },
    { ifname: 'bad', addr_info: [{ family: 'inet', local: 'x', prefixlen: 24 }, null, { family: 'inet' }] },
    null,
    { ifname: 'noaddr' },
  ])
  t.same(parseIpAddrJson(addrs), [parseCidr('127.0.0.1/8'), parseCidr('192.0.2.2/24')])
  t.same(parseIpAddrJson('not json'), [])
  t.same(parseIpAddrJson('{}'), [])

  const routes = readHostRoutes()
  t.ok(Array.isArray(routes))
  t.notOk(routes.some((r) => r.prefix === 0), 'no default route')
})
