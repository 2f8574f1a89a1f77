import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { DnsRecords, normalizeHostName, reverseNameToAddress } from '../../src/gateway/dns/records.js'
import { formatIPv4, formatIPv6 } from '../../src/gateway/dns/codec.js'
import { isLoopback, parseResolvConf, readHostResolvers, renderResolvConf } from '../../src/gateway/dns/resolv-conf.js'

const text = (addrs: Uint8Array[] | undefined): string[] | undefined => addrs?.map((a) => (a.length === 4 ? formatIPv4(a) : formatIPv6(a)))

t.test('invalid names and addresses are refused with a clear error', async (t) => {
  const r = new DnsRecords()
  t.throws(() => r.set('n', 'e', [], '10.0.0.1'), { code: 'INVALID_DNS_NAME' })
  t.throws(() => r.set('n', 'e', ['bad name'], '10.0.0.1'), { code: 'INVALID_DNS_NAME' })
  t.throws(() => r.set('n', 'e', ['-x'], '10.0.0.1'), { code: 'INVALID_DNS_NAME' })
  t.throws(() => r.set('n', 'e', ['a'.repeat(64)], '10.0.0.1'), { code: 'INVALID_DNS_NAME' })
  t.throws(() => r.set('n', 'e', ['x'], '10.0.0'), { code: 'INVALID_ADDRESS' })
  t.throws(() => r.set('n', 'e', ['x'], '10.0.0.1', 'nope'), { code: 'INVALID_ADDRESS' })
  t.equal(normalizeHostName('Web.Example.'), 'web.example')
})

t.test('names and aliases resolve; a shared name answers all, rotated per lookup', async (t) => {
  const r = new DnsRecords()
  r.set('n1', 'e1', ['web1', 'Web'], '10.0.0.2')
  r.set('n1', 'e2', ['web2', 'web'], '10.0.0.3', 'fd00::3')
  r.set('n1', 'e3', ['web3', 'web.'], '10.0.0.4')
  t.same(text(r.addresses('n1', 'web1', 4)), ['10.0.0.2'])
  t.same(text(r.addresses('n1', 'web', 4)), ['10.0.0.2', '10.0.0.3', '10.0.0.4'])
  t.same(text(r.addresses('n1', 'web', 4)), ['10.0.0.3', '10.0.0.4', '10.0.0.2'])
  t.same(text(r.addresses('n1', 'web', 4)), ['10.0.0.4', '10.0.0.2', '10.0.0.3'])
  t.same(text(r.addresses('n1', 'web', 6)), ['fd00::3'])
  t.same(text(r.addresses('n1', 'web1', 6)), [], 'exists without IPv6: empty, not undefined')
  t.equal(r.addresses('n1', 'nope', 4), undefined)
  t.ok(r.has('n1', 'web'))
})

t.test('networks are isolated', async (t) => {
  const r = new DnsRecords()
  r.set('a', 'e1', ['db'], '10.0.0.2')
  r.set('b', 'e2', ['db'], '10.1.0.2')
  r.set('b', 'e3', ['cache'], '10.1.0.3')
  t.same(text(r.addresses('a', 'db', 4)), ['10.0.0.2'])
  t.same(text(r.addresses('b', 'db', 4)), ['10.1.0.2'])
  t.equal(r.addresses('a', 'cache', 4), undefined)
  t.equal(r.nameOfAddress('a', '10.1.0.3'), undefined)
  t.equal(r.nameOfAddress('b', '10.1.0.3'), 'cache')
})

t.test('set replaces, remove forgets names and reverse entries', async (t) => {
  const r = new DnsRecords()
  r.set('n', 'e1', ['old', 'alias'], '10.0.0.2', '2001:db8::2')
  r.set('n', 'e1', ['new'], '10.0.0.5')
  t.equal(r.addresses('n', 'old', 4), undefined)
  t.equal(r.nameOfAddress('n', '10.0.0.2'), undefined)
  t.equal(r.nameOfAddress('n', '2001:db8:0::2'), undefined)
  t.equal(r.nameOfAddress('n', '10.0.0.5'), 'new')
  r.set('n', 'e2', ['other', 'new'], '10.0.0.6', '2001:db8::6')
  t.equal(r.nameOfAddress('n', '2001:0db8::0006'), 'other', 'IPv6 compared in canonical form')
  t.ok(r.remove('n', 'e1'))
  t.notOk(r.remove('n', 'e1'))
  t.same(text(r.addresses('n', 'new', 4)), ['10.0.0.6'])
  t.ok(r.remove('n', 'e2'))
  t.notOk(r.has('n', 'new'))
})

t.test('reverse names', async (t) => {
  t.equal(reverseNameToAddress('4.3.2.10.in-addr.arpa'), '10.2.3.4')
  t.equal(reverseNameToAddress('3.2.10.in-addr.arpa'), null, 'partial')
  t.equal(reverseNameToAddress('300.3.2.10.in-addr.arpa'), null)
  const v6 = '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa'
  t.equal(reverseNameToAddress(v6), '2001:db8::1')
  t.equal(reverseNameToAddress('x.' + v6.slice(2)), null)
  t.equal(reverseNameToAddress('example.com'), null)
})

t.test('resolv.conf: host resolvers, loopback kept and flagged', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-dns-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'resolv.conf')
  writeFileSync(file, '# comment\n; other\nnameserver 127.0.0.53\nnameserver   192.0.2.1  \nnameserver not-an-ip\nnameserver fe80::1%eth0\nnameserver 192.0.2.9\nsearch a.example b.example\noptions edns0 trust-ad\n')
  t.same(readHostResolvers(file), [
    { host: '127.0.0.53', port: 53, loopback: true },
    { host: '192.0.2.1', port: 53, loopback: false },
    { host: 'fe80::1%eth0', port: 53, loopback: false },
  ])
  t.same(parseResolvConf('domain x.example\nsearch y.example\noptions a\noptions b\n'), { nameservers: [], search: ['y.example'], options: ['a', 'b'] })
  t.same(readHostResolvers(path.join(dir, 'missing')), [{ host: '127.0.0.1', port: 53, loopback: true }], 'glibc default')
  t.throws(() => readHostResolvers(dir), /cannot read host resolvers/, 'a directory is an error, not a default')
  t.ok(isLoopback('::1'))
  t.notOk(isLoopback('10.127.0.1'))
})

t.test('resolv.conf: rendering a sandbox file', async (t) => {
  t.equal(
    renderResolvConf({ nameservers: ['10.0.0.1'], search: ['corp.example'], options: ['ndots:0'] }),
    '# Generated by Switchyard: the network gateway answers DNS.\nnameserver 10.0.0.1\nsearch corp.example\noptions ndots:0\n',
  )
  t.equal(renderResolvConf({ nameservers: ['10.0.0.1', 'fd00::1'] }), '# Generated by Switchyard: the network gateway answers DNS.\nnameserver 10.0.0.1\nnameserver fd00::1\n')
  t.throws(() => renderResolvConf({ nameservers: [] }), { code: 'INVALID_RESOLV_CONF' })
  t.throws(() => renderResolvConf({ nameservers: ['10.0.0.1\nnameserver 6.6.6.6'] }), { code: 'INVALID_RESOLV_CONF' })
  t.throws(() => renderResolvConf({ nameservers: ['10.0.0.1'], search: ['a b'] }), { code: 'INVALID_RESOLV_CONF' })
  t.throws(() => renderResolvConf({ nameservers: ['10.0.0.1'], options: ['ndots:1\nnameserver 1.1.1.1'] }), { code: 'INVALID_RESOLV_CONF' })
})
