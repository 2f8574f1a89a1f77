/**
 * Egress UDP mappings, as a NAT keeps them (RFC 4787): all flows from one sandbox address
 * and port share one host socket, whatever remote they go to (endpoint-independent mapping,
 * REQ-1), so a sandbox needs one descriptor and one host port per source port, not per
 * flow. Filtering stays address-and-port dependent (REQ-8 allows either; this is the safer
 * one): on that socket, only remotes the sandbox sent to reach it; anything else is dropped
 * and counted (udpFiltered).
 *
 * Each (remote address, port) is still its own flow in conntrack (limits, timeouts, `nat
 * ls`); the socket counts against ct.maxSockets once, and closes with its last flow.
 *
 *   const flow = mappings.open(key, net, sandboxIp, sport, dst, dport, remote, side)   // undefined: refused
 */
import { UdpHostSocket, type UdpEnv, type UdpFlow } from './udp-flow.js'
import type { SandboxSide } from './tcp-flow.js'

export class UdpMappings {
  /** network|sandboxIp|sandboxPort → its socket. */
  private readonly mappings = new Map<string, UdpHostSocket>()

  constructor(private readonly env: UdpEnv) {}

  /** Mappings (host sockets) in use. */
  get size(): number {
    return this.mappings.size
  }

  /**
   * A new egress flow from sandboxIp:sandboxPort to dst:dport, sent to remote:dport on the
   * host (remote differs from dst where the gateway stands for the host's loopback).
   * Undefined when conntrack refuses it (counted there) or the mapping already sends another
   * flow to that host-side remote.
   */
  open(key: string, network: string, sandboxIp: number, sandboxPort: number, dst: number, dport: number, remote: number, side: SandboxSide): UdpFlow | undefined {
    const mk = `${network}|${sandboxIp}|${sandboxPort}`
    let m = this.mappings.get(mk)
    if (m?.has(remote, dport)) return undefined
    if (this.env.ct.admit(network, sandboxIp, !m)) return undefined
    m ??= this.create(mk)
    return m.track(key, network, sandboxIp, sandboxPort, dst, dport, 'egress', side, remote, dport)
  }

  private create(mk: string): UdpHostSocket {
    const { ct, counters } = this.env
    const sock = this.env.createSocket()
    const m: UdpHostSocket = new UdpHostSocket(
      this.env,
      sock,
      () => counters.udpFiltered++,
      () => {
        this.mappings.delete(mk)
        m.close()
        ct.releaseSocket()
      },
    )
    this.mappings.set(mk, m)
    ct.holdSocket()
    sock.bind(0)
    return m
  }
}
