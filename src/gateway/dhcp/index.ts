/**
 * DHCP for VMs on TAP ports (RFC 2131/2132): a codec and a transport-agnostic server.
 * The data path hands the server a client's UDP payload (port 67) and sends back what it
 * returns; addresses come from a lease backend (the network's IPAM).
 *
 *   import { DhcpServer, MemoryLeaseBackend } from './gateway/dhcp/index.js'
 *   const dhcp = new DhcpServer(new MemoryLeaseBackend(['10.0.0.10', '10.0.0.11']))
 *   const net = { enabled: true, serverIp: '10.0.0.1', subnetMask: '255.255.255.0',
 *     router: '10.0.0.1', dnsServers: ['10.0.0.1'], leaseSeconds: 3600 }
 *   const reply = dhcp.handle('net1', net, udpPayload)   // DhcpReply | null
 *
 * Modules: codec (wire format) + options (option codes and values), request (what a
 * client asked, validated), reply (what goes back and where), server (the state machine),
 * config (a network's settings), memory-backend (a backend for tests).
 */
export * from './codec.js'
export * from './config.js'
export { readClientRequest, DEFAULT_MAX_REPLY, type ClientRequest } from './request.js'
export { DhcpServer, type DhcpLeaseBackend, type DhcpCounters, type DhcpServerInit, type DhcpReply } from './server.js'
export { MemoryLeaseBackend, type MemoryLease, type MemoryLeaseBackendInit } from './memory-backend.js'
