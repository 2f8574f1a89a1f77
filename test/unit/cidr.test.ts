import t from 'tap'
import {
  broadcastOf,
  cidrContains,
  cidrOverlaps,
  cidrSize,
  formatCidr,
  formatIPv4,
  InvalidAddressError,
  InvalidCidrError,
  maskOf,
  parseCidr,
  parseIPv4,
} from '../../src/control/cidr.js'

/** The error fn throws, or undefined. */
function caught(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  return undefined
}

t.test('parseIPv4 accepts dotted quads', async (t) => {
  t.equal(parseIPv4('0.0.0.0'), 0)
  t.equal(parseIPv4('255.255.255.255'), 0xffffffff)
  t.equal(parseIPv4('10.1.2.3'), 0x0a010203)
  t.equal(parseIPv4('172.17.0.1'), 0xac110001)
  t.equal(parseIPv4('192.168.0.100'), 0xc0a80064, 'high addresses stay positive (unsigned)')
})

t.test('parseIPv4 rejects bad input with the input in the message', async (t) => {
  const bad = ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '1.2.3.256', '01.2.3.4', '1.2.3.04', ' 1.2.3.4', '1.2.3.4 ', '1.2.3.-4',
    '1..2.3', 'a.b.c.d', '0x1.2.3.4', '1.2.3.4/24', '１.2.3.4', 'garbage', '1e2.0.0.1', '1000.0.0.1']
  for (const s of bad) {
    const err = caught(() => parseIPv4(s))
    t.ok(err instanceof InvalidAddressError, `rejects ${JSON.stringify(s)}`)
    t.match(err, { code: 'INVALID_ADDRESS', message: JSON.stringify(s) })
    t.match((err as Error).message, 'like 172.18.0.2', 'says what a valid address looks like')
  }
  t.throws(() => parseIPv4(undefined as unknown as string), InvalidAddressError, 'not a string')
})

t.test('formatIPv4 round-trips', async (t) => {
  for (const s of ['0.0.0.0', '255.255.255.255', '10.0.0.1', '192.168.240.15', '128.0.0.0']) t.equal(formatIPv4(parseIPv4(s)), s)
})

t.test('maskOf', async (t) => {
  t.equal(maskOf(0), 0)
  t.equal(maskOf(1), 0x80000000)
  t.equal(maskOf(24), 0xffffff00)
  t.equal(maskOf(32), 0xffffffff)
  t.throws(() => maskOf(33), InvalidCidrError)
  t.throws(() => maskOf(-1), InvalidCidrError)
  t.throws(() => maskOf(1.5), InvalidCidrError)
})

t.test('parseCidr keeps host bits in address and masks network', async (t) => {
  t.same(parseCidr('10.1.2.3/24'), { address: 0x0a010203, network: 0x0a010200, prefix: 24 })
  t.same(parseCidr('0.0.0.0/0'), { address: 0, network: 0, prefix: 0 })
  t.same(parseCidr('255.255.255.255/32'), { address: 0xffffffff, network: 0xffffffff, prefix: 32 })
  t.equal(formatCidr(parseCidr('172.18.5.9/16')), '172.18.0.0/16')
  t.equal(formatCidr(parseCidr('192.168.17.1/20')), '192.168.16.0/20')
})

t.test('parseCidr rejects bad input', async (t) => {
  const bad = ['', '1.2.3.4', '1.2.3.4/', '1.2.3.4/33', '1.2.3.4/-1', '1.2.3.4/08', '1.2.3.4/ 8', '1.2.3/8', '256.1.1.1/8',
    '1.2.3.4/8/8', '/8', 'garbage', '1.2.3.4/1.5', ' 10.0.0.0/8']
  for (const s of bad) {
    const err = caught(() => parseCidr(s))
    t.ok(err instanceof InvalidCidrError, `rejects ${JSON.stringify(s)}`)
    t.match(err, { code: 'INVALID_CIDR', message: JSON.stringify(s) })
    t.match((err as Error).message, 'like 172.18.0.0/16', 'says what a valid CIDR looks like')
  }
})

t.test('contains, overlaps, size, broadcast', async (t) => {
  const net = parseCidr('10.0.0.0/24')
  t.ok(cidrContains(net, parseIPv4('10.0.0.0')))
  t.ok(cidrContains(net, parseIPv4('10.0.0.255')))
  t.notOk(cidrContains(net, parseIPv4('10.0.1.0')))
  t.notOk(cidrContains(net, parseIPv4('9.255.255.255')))
  t.ok(cidrContains(parseCidr('0.0.0.0/0'), parseIPv4('203.0.113.7')))
  t.ok(cidrContains(parseCidr('192.168.0.0/16'), parseIPv4('192.168.255.255')), 'works above 2^31')

  t.ok(cidrOverlaps(net, parseCidr('10.0.0.128/25')))
  t.ok(cidrOverlaps(parseCidr('10.0.0.128/25'), net), 'symmetric')
  t.ok(cidrOverlaps(parseCidr('10.0.0.0/8'), net))
  t.notOk(cidrOverlaps(net, parseCidr('10.0.1.0/24')))
  t.notOk(cidrOverlaps(parseCidr('172.17.0.0/16'), parseCidr('172.18.0.0/16')))
  t.ok(cidrOverlaps(parseCidr('172.16.0.0/12'), parseCidr('172.31.0.0/16')))

  t.equal(cidrSize(net), 256)
  t.equal(cidrSize(parseCidr('0.0.0.0/0')), 4294967296)
  t.equal(cidrSize(parseCidr('1.2.3.4/32')), 1)
  t.equal(formatIPv4(broadcastOf(net)), '10.0.0.255')
  t.equal(formatIPv4(broadcastOf(parseCidr('192.168.16.0/20'))), '192.168.31.255')
  t.equal(formatIPv4(broadcastOf(parseCidr('0.0.0.0/0'))), '255.255.255.255')
})
