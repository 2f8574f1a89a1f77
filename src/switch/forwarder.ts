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
import { PORT_UP, PortTable } from './ports.js'

/** The kernel side of a batch write, injected so unit tests can watch what leaves. */
export type WriteBatch = (slab: Uint8Array, desc: Int32Array, count: number) => number

/**
 * A network's own stack (gateway services): it gets frames addressed to its MAC and every
 * broadcast/multicast frame of the network (ARP, DHCP), and answers on its own.
 */
export interface LocalStack {
  readonly mac: number
  /** `off` points at the Ethernet header; `hdr` bytes of virtio-net header precede it. */
  receive(net: number, inPort: number, slab: Uint8Array, off: number, len: number, hdr: number): void
  /** Called once after a batch that may have reached it (coalesced replies such as ACKs). */
  endBatch?(): void
}

const GSO_TYPE_OFFSET = 1
const ETH_HEADER = 14
const DESC = 4

export class Forwarder {
  /** Members of each network, for flooding. Rebuilt when ports join or leave. */
  private members: Int32Array[] = []
  private local: (LocalStack | undefined)[] = []
  private desc: Int32Array
  private descPort: Int32Array
  private txCount = 0
  private slab: Uint8Array = new Uint8Array(0)

  constructor(
    readonly fdb: MacTable,
    readonly ports: PortTable,
    readonly counters: CounterTable,
    private readonly writeBatch: WriteBatch,
    maxTx = 1024,
  ) {
    this.desc = new Int32Array(maxTx * DESC)
    this.descPort = new Int32Array(maxTx)
  }

  setMembers(net: number, ports: number[]): void {
    this.members[net] = Int32Array.from(ports)
  }

  setLocalStack(net: number, stack: LocalStack | undefined): void {
    this.local[net] = stack
  }

  /** Processes `count` frames of port `inPort` whose (offset, length) pairs are in `meta`. */
  process(inPort: number, slab: Uint8Array, meta: Int32Array, count: number, now: number): void {
    const ports = this.ports
    const counters = this.counters
    const fdb = this.fdb
    const net = ports.net[inPort]
    const hdr = ports.hdr[inPort]
    const maxFrame = ports.maxFrame[inPort]
    const local = this.local[net]
    const localMac = local === undefined ? -1 : local.mac
    this.slab = slab
    if (ports.state[inPort] !== PORT_UP || net < 0) {
      counters.add(inPort, C.DROP_PORT_DOWN, count)
      return
    }
    for (let i = 0; i < count; i++) {
      const off = meta[2 * i]
      const len = meta[2 * i + 1]
      const l2 = len - hdr
      counters.add(inPort, C.RX_PACKETS, 1)
      counters.add(inPort, C.RX_BYTES, l2 > 0 ? l2 : 0)
      if (l2 < ETH_HEADER) {
        counters.add(inPort, C.DROP_RUNT, 1)
        continue
      }
      if (l2 > maxFrame && (hdr === 0 || slab[off + GSO_TYPE_OFFSET] === 0)) {
        counters.add(inPort, C.DROP_OVERSIZE, 1)
        continue
      }
      const eth = off + hdr
      if ((slab[eth + 6] & 1) === 1) {
        counters.add(inPort, C.DROP_BAD_SRC, 1)
        continue
      }
      if (fdb.learn(net, readMac(slab, eth + 6), inPort, now) === LEARN_REFUSED) counters.add(inPort, C.LEARN_REFUSED, 1)

      if ((slab[eth] & 1) === 1) {
        if (local !== undefined) local.receive(net, inPort, slab, eth, l2, hdr)
        this.flood(net, inPort, off, len)
        continue
      }
      const dst = readMac(slab, eth)
      if (dst === localMac) {
        local!.receive(net, inPort, slab, eth, l2, hdr)
        continue
      }
      const out = fdb.lookup(net, dst, now)
      if (out < 0) {
        this.flood(net, inPort, off, len)
      } else if (out === inPort) {
        counters.add(inPort, C.DROP_SAME_PORT, 1)
      } else {
        this.queue(out, off, len)
      }
    }
    this.flush()
    local?.endBatch?.()
  }

  /** Sends the frames queued so far; also called by the local stack after it wrote into the slab. */
  flush(): void {
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

  private flood(net: number, inPort: number, off: number, len: number): void {
    const members = this.members[net]
    if (members === undefined) return
    for (let j = 0; j < members.length; j++) {
      const p = members[j]
      if (p !== inPort && this.ports.state[p] === PORT_UP) this.queue(p, off, len)
    }
  }

  private queue(port: number, off: number, len: number): void {
    if (this.txCount === this.descPort.length) this.flush()
    const d = this.txCount * DESC
    this.desc[d] = this.ports.fd[port]
    this.desc[d + 1] = off
    this.desc[d + 2] = len
    this.desc[d + 3] = 0
    this.descPort[this.txCount++] = port
  }
}
