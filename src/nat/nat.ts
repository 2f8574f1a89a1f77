/**
 * External connectivity without iptables or ip_forward: traffic from a sandbox to an address
 * beyond its network is terminated at the gateway and carried on the daemon's own sockets
 * (as slirp4netns and passt do), so the far side sees the host's address; published ports
 * are host sockets whose connections the switch carries into the sandbox, showing the real
 * client address. Every flow is tracked in one bounded table. Egress UDP shares one host
 * socket per sandbox address and port among its remotes (udp-mappings.ts).
 *
 *   const nat = new Nat({ send: sw.sendFrame })
 *   gateway → nat.egress(net, inPort, slab, eth, len, hdr)   // frames for the outside
 *   await nat.publish(endpointId, { hostIp: '0.0.0.0', hostPort: 8080, port: 80, proto: 'tcp' }, target)
 */
import dgram from 'node:dgram'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import { IpProtocol, ipv4Dst, ipv4HeaderLength, ipv4IsFragment, ipv4Number, ipv4Protocol, ipv4Src, ipv4ToString, ipv4TotalLength } from '../packet/ipv4.js'
import { icmpCheck, icmpCode, icmpType, IcmpType } from '../packet/icmp.js'
import { readMac } from '../packet/mac.js'
import { TcpFlag, tcpAck, tcpCheck, tcpChecksumOk, tcpDstPort, tcpFlags, tcpHeaderLength, tcpSeq, tcpSrcPort, tcpWindow } from '../packet/tcp.js'
import { udpCheck, udpChecksumOk, udpDstPort, udpLength, udpSrcPort } from '../packet/udp.js'
import { writeTcpFrame, type FlowAddress, type SendFrame } from '../gateway/frames.js'
import { ConnTrack, flowKey, type TrackedFlow } from './conntrack.js'
import { IcmpEcho } from './icmp-echo.js'
import { native } from '../native/binding.js'
import { AckQueue } from './ack-queue.js'
import { TcpFlow, type SandboxSide, type SendFrameParts, type TcpFlowEnv } from './tcp-flow.js'
import { UdpHostSocket, type UdpEnv, type UdpFlow } from './udp-flow.js'
import { UdpMappings } from './udp-mappings.js'

const ETH = 14
const VNET_NEEDS_CSUM = 1
const LOOPBACK = 0x7f000001
/** A TCP flow's descriptors: Node's socket and the addon's duplicate it writes through. */
const TCP_DESCRIPTORS = 2

/** A TCP service the gateway itself offers (DNS over TCP): a stream per connection, or undefined to refuse. */
export type LocalTcpService = (peerIp: number, peerPort: number) => Duplex | undefined

/** The network a frame came from, as NAT needs it. */
export interface NatNetwork {
  id: string
  gatewayIp: number
  gatewayMac: number
  mtu: number
  /** No egress at all: only the gateway's own services answer. */
  internal: boolean
  /** TCP services on the gateway's address, by port. */
  services?: ReadonlyMap<number, LocalTcpService>
}

export interface Publish {
  hostIp: string
  hostPort: number
  port: number
  proto: 'tcp' | 'udp'
}

/** Where a published port's traffic goes, looked up when a client arrives. */
export interface PublishTarget {
  network: NatNetwork
  /** The sandbox endpoint's switch port and its virtio-net header size. */
  port: number
  hdr: number
  sandboxIp: number
  sandboxMac: number
}

export interface NatOptions extends NatLimits {
  send: SendFrame
  /** TCP frames to sandboxes with their payload in place (no copy); absent: copied. */
  sendParts?: SendFrameParts
  /** A new unbound udp4 socket (tests give fakes). */
  udpSocket?: () => dgram.Socket
}

/** The daemon's NAT knobs. */
export interface NatLimits {
  maxFlows?: number
  maxPerSandbox?: number
  /** Most host sockets: TCP flows and UDP mappings (default: the open-file limit less room for the rest). */
  maxSockets?: number
  /** Idle timeout of a UDP flow nobody answered yet (default 30 s). */
  udpTimeoutMs?: number
  /** Idle timeout of a UDP flow that got an answer (default 180 s). */
  udpStreamTimeoutMs?: number
}

export class PublishError extends Error {
  constructor(
    readonly code: 'PORT_IN_USE' | 'PUBLISH_FAILED',
    message: string,
  ) {
    super(message)
  }
}

export interface NatCounters {
  frames: number
  malformed: number
  badChecksum: number
  fragments: number
  unroutable: number
  refusedLimit: number
  unsolicited: number
  retransmits: number
  resets: number
  /** Frames from sandboxes of internal networks for anything but the gateway's services. */
  internal: number
  /** Host sockets that failed (no port or descriptor left). */
  socketErrors: number
  /** Datagrams on an egress UDP mapping from a remote its sandbox never sent to: dropped. */
  udpFiltered: number
}

export class Nat {
  readonly ct: ConnTrack
  readonly counters: NatCounters = { frames: 0, malformed: 0, badChecksum: 0, fragments: 0, unroutable: 0, refusedLimit: 0, unsolicited: 0, retransmits: 0, resets: 0, internal: 0, socketErrors: 0, udpFiltered: 0 }
  private readonly send: SendFrame
  private readonly tcpEnv: TcpFlowEnv
  private readonly scratch = new Uint8Array(64 + ETH + 65536 + 128)
  private readonly ackQueue = new AckQueue<TcpFlow>()
  private readonly tcpCache: (TcpFlow | undefined)[] = new Array(TCP_CACHE).fill(undefined)
  private readonly icmp: IcmpEcho
  private readonly published = new Map<string, { spec: Publish; close: () => void }[]>()
  private readonly udpEnv: UdpEnv
  /** Egress UDP: one host socket per sandbox address and port. */
  readonly udpMappings: UdpMappings

  constructor(opts: NatOptions) {
    this.send = opts.send
    // Keep a thousand descriptors for everything else (the API, TAPs, the store).
    const maxSockets = opts.maxSockets ?? Math.max(64, native.raiseFdLimit() - 1024)
    this.ct = new ConnTrack({ maxFlows: opts.maxFlows, maxPerSandbox: opts.maxPerSandbox, maxSockets })
    this.icmp = new IcmpEcho(this.ct, this.send)
    this.tcpEnv = { send: this.send, sendParts: opts.sendParts, scratch: this.scratch, ct: this.ct, ackQueue: this.ackQueue, counters: this.counters }
    this.udpEnv = {
      send: this.send,
      scratch: this.scratch,
      ct: this.ct,
      counters: this.counters,
      timeouts: { unrepliedMs: opts.udpTimeoutMs ?? 30_000, repliedMs: opts.udpStreamTimeoutMs ?? 180_000 },
      createSocket:
        opts.udpSocket ??
        (() => {
          native.loopTurn()
          return dgram.createSocket({ type: 'udp4', reuseAddr: false })
        }),
    }
    this.udpMappings = new UdpMappings(this.udpEnv)
  }

  /** UDP idle timeouts in effect, in ms. */
  get udpTimeouts(): Readonly<UdpEnv['timeouts']> {
    return this.udpEnv.timeouts
  }

  /**
   * An IPv4 frame from a sandbox that is not for the gateway's own services (already checked
   * by the gateway: version, header, lengths, header checksum).
   */
  egress(nw: NatNetwork, inPort: number, slab: Uint8Array, eth: number, len: number, hdr: number): void {
    this.counters.frames++
    const ip = eth + ETH
    if (ipv4IsFragment(slab, ip)) {
      this.counters.fragments++
      return
    }
    const dst = ipv4Dst(slab, ip)
    const src = ipv4Src(slab, ip)
    const proto = ipv4Protocol(slab, ip)
    if (nw.internal && !(dst === nw.gatewayIp && proto === IpProtocol.TCP)) {
      this.counters.internal++
      return
    }
    // The gateway's own address stands for the host (its loopback), as pasta maps it.
    const remote = dst === nw.gatewayIp ? LOOPBACK : dst
    if (!routable(remote)) {
      this.counters.unroutable++
      return
    }
    const ihl = ipv4HeaderLength(slab, ip)
    const l4 = ip + ihl
    const l4len = ipv4TotalLength(slab, ip) - ihl
    const partialCsum = hdr > 0 && (slab[eth - hdr] & VNET_NEEDS_CSUM) !== 0
    if (proto === IpProtocol.TCP) {
      if (tcpCheck(slab, l4, l4len) !== null) return void this.counters.malformed++
      if (!partialCsum && !tcpChecksumOk(slab, l4, l4len, src, dst)) return void this.counters.badChecksum++
      // Signed: addresses above 2^31 (172.17/16) would be boxed doubles in the call.
      this.tcp(nw, inPort, slab, eth, hdr, l4, l4len, src | 0, dst | 0, remote | 0)
    } else if (proto === IpProtocol.UDP) {
      if (udpCheck(slab, l4, l4len) !== null) return void this.counters.malformed++
      if (!partialCsum && !udpChecksumOk(slab, l4, src, dst)) return void this.counters.badChecksum++
      this.udp(nw, inPort, slab, eth, hdr, l4, src, dst, remote)
    } else if (proto === IpProtocol.ICMP) {
      if (icmpCheck(slab, l4, l4len) !== null) return void this.counters.malformed++
      if (icmpType(slab, l4) !== IcmpType.ECHO_REQUEST || icmpCode(slab, l4) !== 0) return void this.counters.unroutable++
      const side = this.side(nw, inPort, hdr, slab, eth, dst, src, 0, 0)
      if (this.icmp.request(nw.id, side, src, remote, slab, l4, l4len) === 'limit') this.counters.refusedLimit++
    } else {
      this.counters.unroutable++
    }
  }

  /** Sends the ACKs owed for this batch's data, one per flow. */
  endBatch(): void {
    this.ackQueue.drain()
  }

  private side(nw: NatNetwork, port: number, hdr: number, slab: Uint8Array, eth: number, shownIp: number, sandboxIp: number, shownPort: number, sandboxPort: number): SandboxSide {
    const addr: FlowAddress = { srcMac: nw.gatewayMac, dstMac: readMac(slab, eth + 6), srcIp: shownIp, dstIp: sandboxIp, srcPort: shownPort, dstPort: sandboxPort }
    return { port, hdr, mtu: nw.mtu, addr }
  }

  /** A TCP segment from a sandbox; the addresses come as signed 32-bit numbers (see egress). */
  private tcp(nw: NatNetwork, inPort: number, slab: Uint8Array, eth: number, hdr: number, l4: number, l4len: number, src: number, dst: number, remote: number): void {
    const sport = tcpSrcPort(slab, l4)
    const dport = tcpDstPort(slab, l4)
    const flags = tcpFlags(slab, l4)
    // Signed for the same reason; the flow takes sequence numbers that way.
    const seq = tcpSeq(slab, l4) | 0
    // The flows of recent segments, by their ports and addresses: a hit costs no key string
    // (the no-allocation rule); a miss looks the flow up by key as before.
    const slot = (sport ^ dport ^ src ^ dst) & (TCP_CACHE - 1)
    let existing = this.tcpCache[slot]
    let key = ''
    if (existing === undefined || !existing.carries(nw.id, src, sport, dst, dport)) {
      // Not a recent flow: per connection from here on, the addresses back to their usual form.
      src >>>= 0
      dst >>>= 0
      remote >>>= 0
      key = flowKey('tcp', nw.id, src, sport, dst, dport)
      existing = this.ct.get(key) as TcpFlow | undefined
      if (existing) this.tcpCache[slot] = existing
    }
    const thl = tcpHeaderLength(slab, l4)
    if (existing) {
      const opts = flags & TcpFlag.SYN ? synOptions(slab, l4, thl) : NO_OPTS
      existing.segment(flags, seq, tcpAck(slab, l4) | 0, tcpWindow(slab, l4), opts, slab, l4 + thl, l4len - thl)
      return
    }
    const side = this.side(nw, inPort, hdr, slab, eth, dst, src, dport, sport)
    if (!(flags & TcpFlag.SYN) || flags & TcpFlag.ACK) {
      // Not part of any flow we know: tell the sandbox, as a host would.
      if (!(flags & TcpFlag.RST)) {
        this.counters.unsolicited++
        const dataLen = l4len - thl
        const ackNo = (seq + dataLen + (flags & TcpFlag.FIN ? 1 : 0)) >>> 0
        const n = writeTcpFrame(this.scratch, hdr, side.addr, flags & TcpFlag.ACK ? tcpAck(slab, l4) : 0, ackNo, TcpFlag.RST | (flags & TcpFlag.ACK ? 0 : TcpFlag.ACK), 0, undefined, 0, 0)
        this.send(inPort, this.scratch, n)
      }
      return
    }
    const service = dst === nw.gatewayIp ? nw.services?.get(dport) : undefined
    // No closure here: one capturing tcp()'s variables would make every call allocate a context.
    if (nw.internal && !service) {
      this.counters.internal++
      return this.refuseSyn(inPort, side, seq)
    }
    if (this.ct.admit(nw.id, src, !service)) {
      this.counters.refusedLimit++
      return this.refuseSyn(inPort, side, seq)
    }
    const sock = service ? service(src, sport) : net.connect({ host: ipv4ToString(remote), port: dport, noDelay: true, allowHalfOpen: true })
    if (!sock) return this.refuseSyn(inPort, side, seq)
    if (!service) native.loopTurn() // a busy-polling switch lets libuv register the socket at once
    const flow = new TcpFlow(this.tcpEnv, key, nw.id, src, sport, dst, dport, 'egress', side, sock)
    this.ct.add(key, flow, service ? 0 : TCP_DESCRIPTORS)
    const o = synOptions(slab, l4, thl)
    flow.acceptSyn(seq, tcpWindow(slab, l4), o.mss, o.wscale)
  }

  /** Answers a SYN that opens no flow with a reset, as a host with a closed port does. */
  private refuseSyn(inPort: number, side: SandboxSide, seq: number): void {
    const n = writeTcpFrame(this.scratch, side.hdr, side.addr, 0, (seq + 1) >>> 0, TcpFlag.RST | TcpFlag.ACK, 0, undefined, 0, 0)
    this.send(inPort, this.scratch, n)
  }

  private udp(nw: NatNetwork, inPort: number, slab: Uint8Array, eth: number, hdr: number, l4: number, src: number, dst: number, remote: number): void {
    const sport = udpSrcPort(slab, l4)
    const dport = udpDstPort(slab, l4)
    const key = flowKey('udp', nw.id, src, sport, dst, dport)
    let flow = this.ct.get(key) as UdpFlow | undefined
    if (!flow) {
      flow = this.udpMappings.open(key, nw.id, src, sport, dst, dport, remote, this.side(nw, inPort, hdr, slab, eth, dst, src, dport, sport))
      if (!flow) return void this.counters.refusedLimit++
    }
    flow.fromSandbox(slab, l4 + 8, udpLength(slab, l4) - 8)
  }

  // ---- published ports -----------------------------------------------------------------

  /** Listens on the host for `owner` (an endpoint); a port already taken is an error now, not later. */
  async publish(owner: string, spec: Publish, target: () => PublishTarget | undefined): Promise<void> {
    const close = spec.proto === 'tcp' ? await this.listenTcp(spec, target) : await this.listenUdp(spec, target)
    const list = this.published.get(owner) ?? []
    list.push({ spec, close })
    this.published.set(owner, list)
  }

  unpublish(owner: string): void {
    for (const p of this.published.get(owner) ?? []) p.close()
    this.published.delete(owner)
  }

  private shown(t: PublishTarget, address: string | undefined, port: number | undefined): { ip: number; port: number } | undefined {
    if (!address || port === undefined) return undefined
    const v4 = address.startsWith('::ffff:') ? address.slice(7) : address
    return this.shownIp(t, ipv4Number(v4), port)
  }

  /** The same for an address already a number (-1: not IPv4). */
  private shownIp(t: PublishTarget, ip: number, port: number): { ip: number; port: number } | undefined {
    if (ip < 0) return undefined
    // A loopback client cannot be shown as itself inside the sandbox: it appears as the gateway.
    return { ip: ip >>> 24 === 127 ? t.network.gatewayIp : ip, port }
  }

  private listenTcp(spec: Publish, target: () => PublishTarget | undefined): Promise<() => void> {
    const server = net.createServer({ pauseOnConnect: true, noDelay: true, allowHalfOpen: true }, (sock) => {
      const t = target()
      const from = t && this.shown(t, sock.remoteAddress, sock.remotePort)
      if (!t || !from) return void sock.destroy()
      const key = flowKey('tcp', t.network.id, t.sandboxIp, spec.port, from.ip, from.port)
      if (this.ct.get(key) || this.ct.admit(t.network.id, t.sandboxIp, true)) {
        this.counters.refusedLimit++
        return void sock.destroy()
      }
      const side: SandboxSide = {
        port: t.port,
        hdr: t.hdr,
        mtu: t.network.mtu,
        addr: { srcMac: t.network.gatewayMac, dstMac: t.sandboxMac, srcIp: from.ip, dstIp: t.sandboxIp, srcPort: from.port, dstPort: spec.port },
      }
      const flow = new TcpFlow(this.tcpEnv, key, t.network.id, t.sandboxIp, spec.port, from.ip, from.port, 'published', side, sock)
      this.ct.add(key, flow, TCP_DESCRIPTORS)
      flow.connect()
    })
    return new Promise((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => reject(publishError(spec, e)))
      server.listen({ host: spec.hostIp, port: spec.hostPort, exclusive: true }, () => {
        server.removeAllListeners('error')
        server.on('error', () => undefined)
        resolve(() => server.close())
      })
    })
  }

  /** A published UDP port: one host socket shared by its clients' flows, as an egress mapping is by its remotes'. */
  private listenUdp(spec: Publish, target: () => PublishTarget | undefined): Promise<() => void> {
    const sock = this.udpEnv.createSocket()
    // A datagram from a client without a flow yet: a new flow into the sandbox.
    const client = (host: UdpHostSocket, msg: Buffer, ip: number, rinfo: dgram.RemoteInfo) => {
      const t = target()
      // The socket parsed the sender already (udp4: never an ::ffff: form).
      const from = t && this.shownIp(t, ip, rinfo.port)
      if (!t || !from) return
      const key = flowKey('udp', t.network.id, t.sandboxIp, spec.port, from.ip, from.port)
      let flow = this.ct.get(key) as UdpFlow | undefined
      if (!flow) {
        if (this.ct.admit(t.network.id, t.sandboxIp)) return void this.counters.refusedLimit++
        const side: SandboxSide = {
          port: t.port,
          hdr: t.hdr,
          mtu: t.network.mtu,
          addr: { srcMac: t.network.gatewayMac, dstMac: t.sandboxMac, srcIp: from.ip, dstIp: t.sandboxIp, srcPort: from.port, dstPort: spec.port },
        }
        flow = host.track(key, t.network.id, t.sandboxIp, spec.port, from.ip, from.port, 'published', side, ip, rinfo.port)
      }
      flow.toSandbox(msg)
    }
    return new Promise((resolve, reject) => {
      sock.once('error', (e: NodeJS.ErrnoException) => reject(publishError(spec, e)))
      sock.bind({ address: spec.hostIp, port: spec.hostPort, exclusive: true }, () => {
        sock.removeAllListeners('error')
        const host: UdpHostSocket = new UdpHostSocket(this.udpEnv, sock, (msg, ip, rinfo) => client(host, msg, ip, rinfo))
        resolve(() => {
          host.closeFlows('unpublished')
          host.close()
        })
      })
    })
  }

  list(): TrackedFlow[] {
    return this.ct.list()
  }

  close(): void {
    for (const owner of [...this.published.keys()]) this.unpublish(owner)
    this.ct.close()
    this.icmp.close()
  }
}

const NO_OPTS = { mss: 0, wscale: -1 }
/** Slots of the TCP flow cache (a power of two). */
const TCP_CACHE = 64

/** MSS and window scale from a SYN's options (0 / -1 when absent). */
function synOptions(buf: Uint8Array, tcp: number, thl: number): { mss: number; wscale: number } {
  let mss = 0
  let wscale = -1
  let i = tcp + 20
  const end = tcp + thl
  while (i < end) {
    const kind = buf[i]
    if (kind === 0) break
    if (kind === 1) {
      i++
      continue
    }
    if (i + 1 >= end) break
    const len = buf[i + 1]
    if (len < 2 || i + len > end) break
    if (kind === 2 && len === 4) mss = (buf[i + 2] << 8) | buf[i + 3]
    else if (kind === 3 && len === 3) wscale = buf[i + 2]
    i += len
  }
  return { mss, wscale }
}

/** Loopback (other than the gateway's mapping), "this network", multicast and broadcast go nowhere. */
function routable(ip: number): boolean {
  const a = ip >>> 24
  if (ip === LOOPBACK) return true
  return a !== 0 && a !== 127 && a < 224
}

function publishError(spec: Publish, e: NodeJS.ErrnoException): PublishError {
  const where = `${spec.hostIp}:${spec.hostPort}/${spec.proto}`
  if (e.code === 'EADDRINUSE') return new PublishError('PORT_IN_USE', `host port ${where} is already in use; choose another host port`)
  return new PublishError('PUBLISH_FAILED', `cannot listen on ${where}: ${e.message}`)
}
