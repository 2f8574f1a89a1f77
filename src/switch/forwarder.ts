/**
 * The per-frame pipeline of the L2 switch: one pass over a batch of frames read from one
 * port, deciding for each where it goes, and one batched write of the result.
 *
 *   ingress frame ─► checks (runt, oversize, source) ─► learn source ─► local stack?
 *                                                                     └► lookup ─► unicast | flood
 *
 * Works on offsets into the shared slab and fills a descriptor array of (fd, offset, length,
 * result); nothing is allocated per frame. Flooding writes the same bytes to several fds.
 */
import { readMac } from '../packet/mac.js'
import { C, CounterTable } from './counters.js'
import { LEARN_REFUSED, MacTable } from './mac-table.js'
import { KIND_VTEP, PORT_UP, PortTable } from './ports.js'

/** The kernel side of a batch write, injected so unit tests can watch what leaves. */
export type WriteBatch = (slab: Uint8Array, desc: Int32Array, count: number) => number

/** Sends frames to remote VTEPs: desc holds (vtep ip, vni, offset, length, result). */
export type TunnelSend = (slab: Uint8Array, desc: Int32Array, count: number) => number

/**
 * A network's own stack (gateway services): it gets frames addressed to its MAC and every
 * broadcast/multicast frame of the network (ARP, DHCP), and answers on its own.
 */
export interface LocalStack {
  readonly mac: number
  /**
   * `off` points at the Ethernet header; `hdr` bytes of virtio-net header precede it.
   * Returning true for a broadcast/multicast frame means it was answered here and is not
   * flooded (ARP suppression for endpoints on other hosts).
   */
  receive(net: number, inPort: number, slab: Uint8Array, off: number, len: number, hdr: number): boolean | void
  /** Called once after a batch that may have reached it (coalesced replies such as ACKs). */
  endBatch?(): void
}

const GSO_TYPE_OFFSET = 1
const ETH_HEADER = 14
const DESC = 4
const VX_DESC = 5

export class Forwarder {
  /** Members of each network, for flooding. Rebuilt when ports join or leave. */
  private members: Int32Array[] = []
  private local: (LocalStack | undefined)[] = []
  private desc: Int32Array
  private descPort: Int32Array
  private txCount = 0
  private slab: Uint8Array = new Uint8Array(0)
  private vxDesc: Int32Array
  private vxPort: Int32Array
  private vxCount = 0
  /** VNI of each overlay network (0: not an overlay). */
  private vni: number[] = []
  /** Set when an overlay exists: how encapsulated frames leave. */
  tunnelSend?: TunnelSend

  constructor(
    readonly fdb: MacTable,
    readonly ports: PortTable,
    readonly counters: CounterTable,
    private readonly writeBatch: WriteBatch,
    maxTx = 1024,
  ) {
    this.desc = new Int32Array(maxTx * DESC)
    this.descPort = new Int32Array(maxTx)
    this.vxDesc = new Int32Array(maxTx * VX_DESC)
    this.vxPort = new Int32Array(maxTx)
  }

  setVni(net: number, vni: number): void {
    this.vni[net] = vni
  }

  setMembers(net: number, ports: number[]): void {
    this.members[net] = Int32Array.from(ports)
  }

  setLocalStack(net: number, stack: LocalStack | undefined): void {
    this.local[net] = stack
  }

  /**
   * Processes `count` frames of port `inPort` whose (offset, length) pairs are in `meta`, at
   * the time in `fdb.clock` (the pollers' batch clock in the switch; a time passed per call
   * would be boxed).
   */
  process(inPort: number, slab: Uint8Array, meta: Int32Array, count: number): void {
    this.slab = slab
    for (let i = 0; i < count; i++) this.frame(inPort, meta[2 * i], meta[2 * i + 1])
    this.flush()
    const net = this.ports.net[inPort]
    if (net >= 0) this.local[net]?.endBatch?.()
  }

  /** Starts a batch whose frames come from several ports (the overlay's UDP socket). */
  begin(slab: Uint8Array): void {
    this.slab = slab
  }

  /** One frame at slab[off, off + len) (virtio-net header included) from `inPort`. */
  frame(inPort: number, off: number, len: number): void {
    const ports = this.ports
    const counters = this.counters
    const slab = this.slab
    const net = ports.net[inPort]
    const hdr = ports.hdr[inPort]
    counters.add(inPort, C.RX_PACKETS, 1)
    const l2 = len - hdr
    counters.add(inPort, C.RX_BYTES, l2 > 0 ? l2 : 0)
    if (ports.state[inPort] !== PORT_UP || net < 0) {
      counters.add(inPort, C.DROP_PORT_DOWN, 1)
      return
    }
    if (l2 < ETH_HEADER) {
      counters.add(inPort, C.DROP_RUNT, 1)
      return
    }
    if (l2 > ports.maxFrame[inPort] && (hdr === 0 || slab[off + GSO_TYPE_OFFSET] === 0)) {
      counters.add(inPort, C.DROP_OVERSIZE, 1)
      return
    }
    const eth = off + hdr
    if ((slab[eth + 6] & 1) === 1) {
      counters.add(inPort, C.DROP_BAD_SRC, 1)
      return
    }
    if (this.fdb.learnFrom(net, slab, eth + 6, inPort) === LEARN_REFUSED) counters.add(inPort, C.LEARN_REFUSED, 1)
    // The gateway is each host's own: frames from other hosts' VTEPs are not for it.
    const local = ports.kind[inPort] === KIND_VTEP ? undefined : this.local[net]
    if ((slab[eth] & 1) === 1) {
      if (local !== undefined && local.receive(net, inPort, slab, eth, l2, hdr) === true) return
      this.flood(net, inPort, off, len)
      return
    }
    if (local !== undefined && readMac(slab, eth) === local.mac) {
      local.receive(net, inPort, slab, eth, l2, hdr)
      return
    }
    const out = this.fdb.lookupFrom(net, slab, eth)
    if (out < 0) this.flood(net, inPort, off, len)
    else if (out === inPort) counters.add(inPort, C.DROP_SAME_PORT, 1)
    else this.queue(out, off, len)
  }

  /** Sends the frames queued so far; also called by the local stack after it wrote into the slab. */
  flush(): void {
    if (this.vxCount > 0) this.flushTunnel()
    const n = this.txCount
    if (n === 0) return
    this.writeBatch(this.slab, this.desc, n)
    const desc = this.desc
    const ports = this.ports
    for (let i = 0; i < n; i++) {
      const p = this.descPort[i]
      const r = desc[i * DESC + 3]
      if (r >= 0) {
        this.counters.add(p, C.TX_PACKETS, 1)
        this.counters.add(p, C.TX_BYTES, r - ports.hdr[p])
      } else {
        this.counters.add(p, C.DROP_TX_ERROR, 1)
      }
    }
    this.txCount = 0
  }

  private flushTunnel(): void {
    const n = this.vxCount
    this.vxCount = 0
    if (!this.tunnelSend) return
    this.tunnelSend(this.slab, this.vxDesc, n)
    for (let i = 0; i < n; i++) {
      const p = this.vxPort[i]
      const r = this.vxDesc[i * VX_DESC + 4]
      if (r >= 0) {
        this.counters.add(p, C.TX_PACKETS, 1)
        this.counters.add(p, C.TX_BYTES, r - 8)
      } else {
        this.counters.add(p, C.DROP_TX_ERROR, 1)
      }
    }
  }

  private flood(net: number, inPort: number, off: number, len: number): void {
    const members = this.members[net]
    if (members === undefined) return
    const ports = this.ports
    // Split horizon: every VTEP floods to all others itself (head-end replication), so a frame
    // from one is never sent on to another.
    const fromVtep = ports.kind[inPort] === KIND_VTEP
    for (let j = 0; j < members.length; j++) {
      const p = members[j]
      if (p !== inPort && ports.state[p] === PORT_UP && !(fromVtep && ports.kind[p] === KIND_VTEP)) this.queue(p, off, len)
    }
  }

  private queue(port: number, off: number, len: number): void {
    if (this.ports.kind[port] === KIND_VTEP) {
      if (this.vxCount === this.vxPort.length) this.flushTunnel()
      const d = this.vxCount * VX_DESC
      this.vxDesc[d] = this.ports.vtepIp[port] | 0
      this.vxDesc[d + 1] = this.vni[this.ports.net[port]]
      this.vxDesc[d + 2] = off
      this.vxDesc[d + 3] = len
      this.vxDesc[d + 4] = 0
      this.vxPort[this.vxCount++] = port
      return
    }
    if (this.txCount === this.descPort.length) this.flush()
    const d = this.txCount * DESC
    this.desc[d] = this.ports.fd[port]
    this.desc[d + 1] = off
    this.desc[d + 2] = len
    this.desc[d + 3] = 0
    this.descPort[this.txCount++] = port
  }
}
