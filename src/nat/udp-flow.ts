/**
 * UDP between a sandbox and the world: each flow is a host datagram socket of the daemon
 * (egress), or shares the published port's socket (published). Replies are accepted only
 * from the address the flow talks to.
 */
import type dgram from 'node:dgram'
import { sendUdp, type SendFrame } from '../gateway/frames.js'
import type { ConnTrack, TrackedFlow } from './conntrack.js'
import type { SandboxSide } from './tcp-flow.js'

export interface UdpFlowEnv {
  send: SendFrame
  scratch: Uint8Array
  ct: ConnTrack
  onSocketError?: () => void
}

export class UdpFlow implements TrackedFlow {
  readonly proto = 'udp'
  state = 'unreplied'
  lastActive = Date.now()
  bytesIn = 0
  bytesOut = 0
  private closed = false

  constructor(
    private readonly env: UdpFlowEnv,
    readonly key: string,
    readonly network: string,
    readonly sandboxIp: number,
    readonly sandboxPort: number,
    readonly remoteIp: number,
    readonly remotePort: number,
    readonly direction: 'egress' | 'published',
    private readonly side: SandboxSide,
    /** Where the sandbox's datagrams go on the host side. */
    private readonly host: { sock: dgram.Socket; address: string; port: number; owned: boolean },
  ) {
    if (host.owned) {
      host.sock.on('message', (msg, rinfo) => {
        if (rinfo.address === host.address && rinfo.port === host.port) this.toSandbox(msg)
      })
      // Binding can fail (out of ports or descriptors): the flow goes, counted by its owner.
      host.sock.on('error', () => {
        env.onSocketError?.()
        this.close('socket error')
      })
    }
  }

  timeoutMs(): number {
    return this.state === 'replied' ? 180_000 : 30_000
  }

  /** A datagram from the sandbox. */
  fromSandbox(data: Uint8Array, off: number, len: number): void {
    this.lastActive = Date.now()
    this.bytesOut += len
    this.host.sock.send(Buffer.from(data.subarray(off, off + len)), this.host.port, this.host.address)
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
    if (this.host.owned) this.host.sock.close()
  }
}
