/**
 * ICMP echo from sandboxes to the world, through one raw ICMP socket of the daemon. Each
 * sandbox's (address, echo id) gets an id of our own on the wire, so replies find their way
 * back, and nothing but replies to our requests ever reaches a sandbox.
 */
import { native, type Poller } from '../native/binding.js'
import { writeIcmpChecksum } from '../packet/icmp.js'
import { IpProtocol, writeIpv4Header } from '../packet/ipv4.js'
import { writeMac } from '../packet/mac.js'
import type { SendFrame } from '../gateway/frames.js'
import { flowKey, type ConnTrack, type TrackedFlow } from './conntrack.js'
import type { SandboxSide } from './tcp-flow.js'

const ETH = 14
const ECHO_REPLY = 0

class EchoFlow implements TrackedFlow {
  readonly proto = 'icmp'
  readonly direction = 'egress'
  state = 'unreplied'
  lastActive = Date.now()
  bytesIn = 0
  bytesOut = 0
  readonly remotePort = 0

  constructor(
    private readonly owner: IcmpEcho,
    readonly key: string,
    readonly network: string,
    readonly sandboxIp: number,
    /** The sandbox's echo id. */
    readonly sandboxPort: number,
    readonly remoteIp: number,
    readonly wireId: number,
    readonly side: SandboxSide,
  ) {}

  timeoutMs(): number {
    return 30_000
  }

  close(): void {
    this.owner.forget(this)
  }
}

export class IcmpEcho {
  private fd = -1
  private poller?: Poller
  private readonly slab = new Uint8Array(64 * 2048)
  private readonly meta = new Int32Array(128)
  private readonly out = new Uint8Array(64 + 65536)
  private readonly byWireId = new Map<number, EchoFlow>()
  private nextId = 1

  constructor(
    private readonly ct: ConnTrack,
    private readonly send: SendFrame,
  ) {}

  /** Forwards an echo request (ICMP message at buf[off, off + len)) from a sandbox. */
  request(network: string, side: SandboxSide, sandboxIp: number, remoteIp: number, buf: Uint8Array, off: number, len: number): 'ok' | 'limit' | 'failed' {
    this.open()
    const id = (buf[off + 4] << 8) | buf[off + 5]
    const key = flowKey('icmp', network, sandboxIp, id, remoteIp, 0)
    let flow = this.ct.get(key) as EchoFlow | undefined
    if (!flow) {
      if (this.ct.admit(network, sandboxIp)) return 'limit'
      const wireId = this.allocId()
      if (wireId < 0) return 'limit'
      flow = new EchoFlow(this, key, network, sandboxIp, id, remoteIp, wireId, side)
      this.byWireId.set(wireId, flow)
      this.ct.add(key, flow)
    }
    flow.lastActive = Date.now()
    flow.bytesOut += len
    const msg = this.out
    msg.set(buf.subarray(off, off + len), 0)
    msg[4] = flow.wireId >>> 8
    msg[5] = flow.wireId & 0xff
    writeIcmpChecksum(msg, 0, len)
    return native.sendTo(this.fd, msg, 0, len, remoteIp) >= 0 ? 'ok' : 'failed'
  }

  forget(flow: EchoFlow): void {
    this.byWireId.delete(flow.wireId)
    this.ct.remove(flow.key)
  }

  close(): void {
    this.poller?.close()
    this.poller = undefined
    if (this.fd >= 0) native.closeFd(this.fd)
    this.fd = -1
  }

  private open(): void {
    if (this.fd >= 0) return
    this.fd = native.icmpOpen()
    this.poller = new native.Poller(this.fd, this.slab, this.meta, 64, 2048, (n) => {
      for (let i = 0; i < n; i++) this.reply(this.meta[2 * i], this.meta[2 * i + 1])
    })
    this.poller.start()
  }

  private allocId(): number {
    for (let i = 0; i < 65535; i++) {
      const id = this.nextId
      this.nextId = (this.nextId % 65535) + 1
      if (!this.byWireId.has(id)) return id
    }
    return -1
  }

  /** An IPv4 packet from the raw socket: an echo reply to one of ours goes to its sandbox. */
  private reply(off: number, len: number): void {
    const b = this.slab
    if (len < 20 + 8) return
    const ihl = (b[off] & 0x0f) * 4
    const icmp = off + ihl
    if (icmp + 8 > off + len || b[icmp] !== ECHO_REPLY) return
    const flow = this.byWireId.get((b[icmp + 4] << 8) | b[icmp + 5])
    const src = ((b[off + 12] << 24) | (b[off + 13] << 16) | (b[off + 14] << 8) | b[off + 15]) >>> 0
    if (!flow || src !== flow.remoteIp) return
    flow.state = 'replied'
    flow.lastActive = Date.now()
    const msgLen = off + len - icmp
    flow.bytesIn += msgLen
    const s = flow.side
    const o = this.out
    o.fill(0, 0, s.hdr)
    writeMac(o, s.hdr, s.addr.dstMac)
    writeMac(o, s.hdr + 6, s.addr.srcMac)
    o[s.hdr + 12] = 0x08
    o[s.hdr + 13] = 0x00
    const ip = s.hdr + ETH
    o.set(b.subarray(icmp, icmp + msgLen), ip + 20)
    o[ip + 20 + 4] = flow.sandboxPort >>> 8
    o[ip + 20 + 5] = flow.sandboxPort & 0xff
    writeIcmpChecksum(o, ip + 20, msgLen)
    writeIpv4Header(o, ip, 20 + msgLen, 0, 64, IpProtocol.ICMP, s.addr.srcIp, s.addr.dstIp)
    this.send(s.port, o, ip + 20 + msgLen)
  }
}
