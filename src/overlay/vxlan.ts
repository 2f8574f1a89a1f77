/**
 * The VXLAN tunnel endpoint (RFC 7348) of this host: one UDP socket for all overlay
 * networks, each network a VNI with a set of remote VTEPs. Remote VTEPs are ports of the
 * switch (see Switch.addVtepPort), so learning, flooding (head-end replication) and
 * forwarding are the ordinary L2 pipeline; this module only moves datagrams.
 *
 *   const vx = new Vxlan({ sw, bindIp: '10.0.0.1', port: 4789 })
 *   vx.attach(network.id, 5000, ['10.0.0.2'])
 */
import { native, type Poller, type VxlanTx } from '../native/binding.js'
import { parseIpv4, ipv4ToString } from '../packet/ipv4.js'
import type { Switch } from '../switch/switch.js'
import type { Logger } from '../util/log.js'

export const VXLAN_PORT = 4789
export const VXLAN_OVERHEAD = 50
/** Inner MTU of a VNI not attached (yet): a 1500-byte underlay's. */
const DEFAULT_INNER_MTU = 1500 - VXLAN_OVERHEAD
const VXLAN_HEADER = 8
const FLAG_I = 0x08
const BATCH = 64
/**
 * A slot holds the largest UDP message: over a veth underlay the kernel's vxlan hands over
 * whole segmentation-offload aggregates (one datagram carrying up to 64 KiB of TCP), and with
 * UDP GRO a peer's train of datagrams arrives as one message. 256 spare bytes: a train that is
 * split gets its datagrams spread apart by the virtio-net header's room (native ReadDatagrams).
 */
const SLOT = 65536 + 256
/** A train splits into at most 64 frames (native kGroMaxSplit). */
const FRAMES = BATCH * 64

export interface VxlanRxCounters {
  /** Frames taken in: a UDP GRO train coalesced into one super-frame counts once. */
  rxDatagrams: number
  malformed: number
  foreignVni: number
  notMember: number
  truncated: number
}

/** What the transmit side did (native/udp_io.cc VxlanTx, in this order there). */
const TX_COUNTERS = ['txDatagrams', 'gsoFrames', 'gsoSegments', 'checksumsCompleted', 'txSendErrors', 'udpGsoFallbacks'] as const
export type VxlanTxCounters = Record<(typeof TX_COUNTERS)[number], number> & {
  /** Frames refused before sending, by reason (gso.h GsoError): malformed offload headers, oversize segments. */
  txDrops: Record<string, number>
}
export type VxlanCounters = VxlanRxCounters & VxlanTxCounters

interface Overlay {
  networkId: string
  vni: number
  mtu: number
  /** VTEP address as a signed 32-bit number (a Smi: no boxing per lookup) -> switch port. */
  vteps: Map<number, number>
}

export interface VxlanOptions {
  sw: Switch
  /** This host's VTEP address (the underlay address peers send to). */
  bindIp: string
  port?: number
  log?: Logger
  /** Segments of a super-frame as UDP GSO sends (default) or one datagram message each. */
  udpGso?: boolean
}

export class Vxlan {
  private readonly rx: VxlanRxCounters = { rxDatagrams: 0, malformed: 0, foreignVni: 0, notMember: 0, truncated: 0 }
  /** Written by the native transmit side; read only when someone asks for counters. */
  private readonly txCounters = new Float64Array(native.vxlanTxCounters.count)
  readonly port: number
  readonly bindIp: string
  private readonly fd: number
  private readonly tx: VxlanTx
  private readonly poller: Poller
  private readonly slab = new Uint8Array(BATCH * SLOT)
  private readonly meta = new Int32Array(FRAMES * 2)
  private readonly srcs = new Uint32Array(FRAMES)
  /** The same sender addresses read signed, as `vteps` keys them. */
  private readonly srcKeys = new Int32Array(this.srcs.buffer)
  private readonly byVni = new Map<number, Overlay>()
  private readonly byNetwork = new Map<string, Overlay>()

  constructor(private readonly opts: VxlanOptions) {
    this.port = opts.port ?? VXLAN_PORT
    this.bindIp = opts.bindIp
    this.fd = native.udpOpen(parseIpv4(opts.bindIp), this.port)
    const hdr = opts.sw.io.hdr
    // TAPs of overlay networks have TSO on: super-frames are segmented on their way out, each
    // segment fitting its network's MTU (setMtu in attach).
    this.tx = new native.VxlanTx(this.fd, this.port, hdr, this.txCounters, DEFAULT_INNER_MTU)
    if (opts.udpGso === false) this.tx.setUdpGso(false)
    opts.sw.forwarder.tunnelSend = (slab, desc, count) => this.tx.send(slab, desc, count)
    // Each datagram lands `hdr - 8` bytes into its slot: its VXLAN header then sits exactly
    // where the frame's virtio-net header goes, and is zeroed into one after it is read.
    this.poller = new native.Poller(this.fd, this.slab, this.meta, BATCH, SLOT, (n) => this.receive(n), this.srcs, hdr - VXLAN_HEADER)
    this.poller.start()
  }

  /** Receive and transmit counters (a snapshot). */
  get counters(): VxlanCounters {
    const c = this.txCounters
    const out = { ...this.rx } as VxlanCounters
    TX_COUNTERS.forEach((name, i) => (out[name] = c[i]))
    const base = native.vxlanTxCounters.dropBase
    out.txDrops = {}
    for (let i = 1; i < native.gsoErrorNames.length; i++) out.txDrops[native.gsoErrorNames[i]] = c[base + i]
    return out
  }

  /** Carries network `networkId` as VNI `vni` to the given VTEPs (static peers). */
  attach(networkId: string, vni: number, peers: string[], mtu: number): void {
    this.detach(networkId)
    const o: Overlay = { networkId, vni, mtu, vteps: new Map() }
    this.byVni.set(vni, o)
    this.byNetwork.set(networkId, o)
    this.opts.sw.forwarder.setVni(this.opts.sw.networkIndex(networkId), vni)
    this.tx.setMtu(vni, mtu)
    for (const p of peers) this.addPeer(networkId, p)
  }

  /** Adds a remote VTEP (idempotent); returns its switch port, undefined for an unknown network or this host. */
  addPeer(networkId: string, ip: string): number | undefined {
    const o = this.byNetwork.get(networkId)
    if (!o || ip === this.bindIp) return undefined
    const n = parseIpv4(ip)
    let port = o.vteps.get(n | 0)
    if (port === undefined) o.vteps.set(n | 0, (port = this.opts.sw.addVtepPort(networkId, n, `vx${o.vni}-${ip}`)))
    return port
  }

  removePeer(networkId: string, ip: string): void {
    const o = this.byNetwork.get(networkId)
    const n = parseIpv4(ip) | 0
    if (!o?.vteps.has(n)) return
    o.vteps.delete(n)
    this.opts.sw.removePort(`vx${o.vni}-${ip}`, false)
  }

  detach(networkId: string): void {
    const o = this.byNetwork.get(networkId)
    if (!o) return
    for (const ip of [...o.vteps.keys()]) this.removePeer(networkId, ipv4ToString(ip >>> 0))
    this.byVni.delete(o.vni)
    this.byNetwork.delete(networkId)
    this.tx.setMtu(o.vni, 0)
  }

  peers(networkId: string): string[] {
    return [...(this.byNetwork.get(networkId)?.vteps.keys() ?? [])].map((ip) => ipv4ToString(ip >>> 0))
  }

  close(): void {
    this.poller.close()
    native.closeFd(this.fd)
  }

  private receive(n: number): void {
    if (n < 0) {
      this.opts.log?.error('overlay socket failed', { errno: n })
      return
    }
    const fwd = this.opts.sw.forwarder
    const hdr = this.opts.sw.io.hdr
    const slab = this.slab
    fwd.begin(slab)
    for (let i = 0; i < n; i++) {
      this.rx.rxDatagrams++
      const off = this.meta[2 * i]
      const len = this.meta[2 * i + 1]
      if (len < 0) {
        this.rx.truncated++
        continue
      }
      const vx = off + hdr - VXLAN_HEADER
      // I must be set; the reserved bits are ignored on receipt (RFC 7348 5).
      if (len - hdr < 14 || (slab[vx] & FLAG_I) === 0) {
        this.rx.malformed++
        continue
      }
      const vni = (slab[vx + 4] << 16) | (slab[vx + 5] << 8) | slab[vx + 6]
      const o = this.byVni.get(vni)
      if (!o) {
        this.rx.foreignVni++
        continue
      }
      const port = o.vteps.get(this.srcKeys[i])
      if (port === undefined) {
        this.rx.notMember++
        continue
      }
      // The VXLAN header becomes the frame's virtio-net header.
      slab.fill(0, off, off + hdr)
      markOffloads(slab, off, off + hdr, len - hdr, o.mtu)
      fwd.frame(port, off, len)
    }
    fwd.flush()
  }
}

const VNET_NEEDS_CSUM = 1
const VNET_GSO_TCPV4 = 1

/**
 * Fills the virtio-net header of a decapsulated frame as the kernel's vxlan would leave the
 * skb. The inner TCP/UDP checksum is marked partial (NEEDS_CSUM with its offsets): a sender
 * with checksum offload leaves only the pseudo-header sum in the field, and over a veth
 * underlay it arrives that way; the receiving kernel takes a partial checksum as valid and
 * completes it only if it sends the frame on. A TCP frame larger than the MTU is an offload
 * aggregate and is marked as one (TSO), so the sandbox's kernel takes it whole.
 */
function markOffloads(slab: Uint8Array, vnet: number, eth: number, len: number, mtu: number): void {
  if (len < 34 || slab[eth + 12] !== 0x08 || slab[eth + 13] !== 0x00) return
  const ip = eth + 14
  const ihl = (slab[ip] & 0x0f) * 4
  if (slab[ip] >> 4 !== 4 || ihl < 20 || ((slab[ip + 6] & 0x3f) | slab[ip + 7]) !== 0) return
  const proto = slab[ip + 9]
  const l4 = ip + ihl
  let csumOffset: number
  if (proto === 6 && len >= 14 + ihl + 20) csumOffset = 16
  else if (proto === 17 && len >= 14 + ihl + 8 && (slab[l4 + 6] | slab[l4 + 7]) !== 0) csumOffset = 6
  else return
  const start = 14 + ihl
  if (len - 14 > mtu) {
    if (proto !== 6) return // only TCP aggregates are taken apart by the receiver
    const hdrLen = start + ((slab[l4 + 12] >> 4) * 4)
    const gsoSize = mtu - (hdrLen - 14)
    slab[vnet + 1] = VNET_GSO_TCPV4
    slab[vnet + 2] = hdrLen & 0xff
    slab[vnet + 3] = hdrLen >>> 8
    slab[vnet + 4] = gsoSize & 0xff
    slab[vnet + 5] = gsoSize >>> 8
  }
  slab[vnet] = VNET_NEEDS_CSUM
  slab[vnet + 6] = start & 0xff
  slab[vnet + 7] = start >>> 8
  slab[vnet + 8] = csumOffset
  slab[vnet + 9] = 0
}
