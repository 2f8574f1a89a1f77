/**
 * Embedded DNS for Switchyard networks: each network's gateway answers its sandboxes'
 * queries in the data path. Local names (sandboxes, aliases) come from a per-network table;
 * everything else is forwarded to upstream resolvers with a cache. Transport-agnostic: the
 * data path passes a UDP payload or TCP message in and sends the answer back as frames.
 *
 *   import { DnsRecords, DnsServer, readHostResolvers } from './gateway/dns/index.js'
 *   const records = new DnsRecords()
 *   records.set('net1', 'ep1', ['web', 'www'], '10.0.0.2')
 *   const dns = new DnsServer({ records, upstreams: readHostResolvers() })
 *   dns.handle('net1', { internal: false }, udpPayload, 'udp', (answer) => send(answer))
 *
 * Modules: `codec` (wire format), `records` (the name table), `forwarder` (upstreams and
 * cache), `server` (the query logic), `resolv-conf` (host and sandbox resolv.conf).
 */
export { DnsServer, LOCAL_TTL, type DnsCounters, type DnsNetwork, type DnsServerOptions } from './server.js'
export { DnsRecords, InvalidAddressError, InvalidDnsNameError, normalizeHostName, reverseNameToAddress } from './records.js'
export { AnswerCache, cacheKey, cacheTtl, exchangeTcp, exchangeUdp, forward, type DnsLogger, type ForwardOptions, type Upstream } from './forwarder.js'
export {
  InvalidResolvConfError,
  isLoopback,
  parseResolvConf,
  readHostResolvers,
  renderResolvConf,
  type ResolvConf,
  type ResolvConfInput,
} from './resolv-conf.js'
export * as dnsCodec from './codec.js'
