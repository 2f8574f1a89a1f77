/**
 * UDP between a sandbox and the world. Every flow (sandbox address and port, remote address
 * and port) is tracked on its own, but flows share host sockets: an egress mapping (one
 * socket per sandbox address and port, see udp-mappings.ts) or a published port's socket.
 * A datagram on a host socket finds its flow by its sender; anything from a sender no flow
 * talks to goes to the socket's owner, which filters it (egress) or takes it as a new
 * client (published).
 *
 *   const host = new UdpHostSocket(env, sock, (msg, ip, rinfo) => ...)   // unknown senders
 *   const flow = host.track(key, net, sandboxIp, sport, remoteIp, dport, 'egress', side, remote, dport)
 *   flow.fromSandbox(slab, off, len)
 */
import type dgram from 'node:dgram'
import { sendUdp, type SendFrame } from '../gateway/frames.js'
import { ipv4Number, ipv4ToString } from '../packet/ipv4.js'
import type { ConnTrack, TrackedFlow } from './conntrack.js'
import type { SandboxSide } from './tcp-flow.js'

export interface UdpEnv {
  send: SendFrame
  scratch: Uint8Array
  ct: ConnTrack
  counters: { socketErrors: number; udpFiltered: number }
  /** A new unbound udp4 socket (tests give fakes). */
  createSocket: () => dgram.Socket
  /** Idle timeouts of a flow nobody answered yet, and of one that got an answer. */
  timeouts: { unrepliedMs: number; repliedMs: number }
}

/** A sender as one number: address and port (48 bits, exact in a double). */
const senderKey = (ip: number, port: number) => ip * 65536 + port

export class UdpFlow implements TrackedFlow {
  readonly proto = 'udp'
  state = 'unreplied'
  lastActive = Date.now()
  bytesIn = 0
  bytesOut = 0
  /** The remote as the host socket sees it (the gateway stands for the host's loopback). */
  readonly hostKey: number
  private readonly hostAddress: string
  private closed = false

  constructor(
    private readonly env: UdpEnv,
    readonly key: string,
    readonly network: string,
    readonly sandboxIp: number,
    readonly sandboxPort: number,
    readonly remoteIp: number,
    readonly remotePort: number,
    readonly direction: 'egress' | 'published',
    private readonly side: SandboxSide,
    private readonly host: UdpHostSocket,
    hostIp: number,
    private readonly hostPort: number,
  ) {
    this.hostKey = senderKey(hostIp, hostPort)
    this.hostAddress = ipv4ToString(hostIp)
  }

  timeoutMs(): number {
    return this.state === 'replied' ? this.env.timeouts.repliedMs : this.env.timeouts.unrepliedMs
  }

  /** A datagram from the sandbox. */
  fromSandbox(data: Uint8Array, off: number, len: number): void {
    this.lastActive = Date.now()
    this.bytesOut += len
    this.host.sock.send(Buffer.from(data.subarray(off, off + len)), this.hostPort, this.hostAddress)
  }

  /** A datagram for the sandbox (a reply, or a client of a published port). */
  toSandbox(msg: Uint8Array): void {
    if (this.closed) return
    this.lastActive = Date.now()
    this.bytesIn += msg.length
    if (this.direction === 'egress') this.state = 'replied'
    sendUdp(this.env.send, this.side.port, this.env.scratch, this.side.hdr, this.side.addr, msg, this.side.mtu)
  }

  close(_reason: string): void {
    if (this.closed) return
    this.closed = true
    this.env.ct.remove(this.key)
    this.host.detach(this)
  }
}

/** What a host socket does with a datagram from a sender none of its flows talks to. */
export type UnknownSender = (msg: Buffer, ip: number, rinfo: dgram.RemoteInfo) => void

/**
 * A host datagram socket and the flows it carries, found by sender. A socket error closes
 * them all (counted in socketErrors); `onIdle` runs when the last flow is gone.
 */
export class UdpHostSocket {
  private readonly flows = new Map<number, UdpFlow>()
  private closed = false

  constructor(
    private readonly env: UdpEnv,
    readonly sock: dgram.Socket,
    private readonly onUnknown: UnknownSender,
    private readonly onIdle?: () => void,
  ) {
    sock.on('message', this.onMessage)
    // Binding can fail (out of ports or descriptors), a socket can fail later: its flows go.
    sock.on('error', () => {
      env.counters.socketErrors++
      this.closeFlows('socket error')
    })
  }

  /** A flow already talks to this sender through this socket. */
  has(ip: number, port: number): boolean {
    return this.flows.has(senderKey(ip, port))
  }

  /** A new flow on this socket, to host-side remote hostIp:hostPort, tracked in conntrack. */
  track(key: string, network: string, sandboxIp: number, sandboxPort: number, remoteIp: number, remotePort: number, direction: 'egress' | 'published', side: SandboxSide, hostIp: number, hostPort: number): UdpFlow {
    const flow = new UdpFlow(this.env, key, network, sandboxIp, sandboxPort, remoteIp, remotePort, direction, side, this, hostIp, hostPort)
    this.flows.set(flow.hostKey, flow)
    this.env.ct.add(key, flow)
    return flow
  }

  /** A flow of this socket closed. */
  detach(flow: UdpFlow): void {
    if (this.flows.get(flow.hostKey) === flow) this.flows.delete(flow.hostKey)
    if (this.flows.size === 0 && !this.closed) this.onIdle?.()
  }

  closeFlows(reason: string): void {
    for (const f of [...this.flows.values()]) f.close(reason)
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.sock.close()
  }

  // One handler per socket, not a closure per datagram: the sender's address as a number
  // is the key of its flow.
  private readonly onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    const ip = ipv4Number(rinfo.address)
    const flow = ip < 0 ? undefined : this.flows.get(senderKey(ip, rinfo.port))
    if (flow) flow.toSandbox(msg)
    else this.onUnknown(msg, ip, rinfo)
  }
}
