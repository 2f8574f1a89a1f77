/**
 * Per-port counters in one Float64Array (doubles count exactly past 2^32 and up to 2^53),
 * so the frame path bumps numbers in place and reading stats allocates only the report.
 *
 *   counters.add(port, C.RX_PACKETS, 1)
 *   counters.snapshot(port)   // { rxPackets: 12, ..., drops: { runt: 1 } }
 */

export const C = {
  RX_PACKETS: 0,
  RX_BYTES: 1,
  TX_PACKETS: 2,
  TX_BYTES: 3,
  /** Shorter than an Ethernet header. */
  DROP_RUNT: 4,
  /** Longer than the port's MTU allows and not a segmentation-offload frame. */
  DROP_OVERSIZE: 5,
  /** Multicast/broadcast source MAC: invalid, never learned or forwarded. */
  DROP_BAD_SRC: 6,
  /** Destination learned on the ingress port itself: never sent back out. */
  DROP_SAME_PORT: 7,
  /** The kernel refused a write to this port (queue full, device gone). */
  DROP_TX_ERROR: 8,
  /** Frames that arrived for a port that is down or gone. */
  DROP_PORT_DOWN: 9,
  /** Source MAC not learned because the port is at its FDB limit (frame still forwarded). */
  LEARN_REFUSED: 10,
} as const

const DROP_NAMES: Record<string, number> = {
  runt: C.DROP_RUNT,
  oversize: C.DROP_OVERSIZE,
  badSource: C.DROP_BAD_SRC,
  samePort: C.DROP_SAME_PORT,
  txError: C.DROP_TX_ERROR,
  portDown: C.DROP_PORT_DOWN,
}

const FIELDS = 11

export interface PortCounters {
  rxPackets: number
  rxBytes: number
  txPackets: number
  txBytes: number
  learnRefused: number
  drops: Record<string, number>
  dropsTotal: number
}

export class CounterTable {
  private values: Float64Array

  constructor(ports = 64) {
    this.values = new Float64Array(ports * FIELDS)
  }

  add(port: number, field: number, n: number): void {
    this.values[port * FIELDS + field] += n
  }

  get(port: number, field: number): number {
    return this.values[port * FIELDS + field]
  }

  /** Makes room for port index `port`; called when a port is added, never per frame. */
  ensure(port: number): void {
    if ((port + 1) * FIELDS <= this.values.length) return
    let n = this.values.length / FIELDS
    while (n <= port) n *= 2
    const v = new Float64Array(n * FIELDS)
    v.set(this.values)
    this.values = v
  }

  reset(port: number): void {
    this.values.fill(0, port * FIELDS, (port + 1) * FIELDS)
  }

  snapshot(port: number): PortCounters {
    const b = port * FIELDS
    const drops: Record<string, number> = {}
    let total = 0
    for (const [name, f] of Object.entries(DROP_NAMES)) {
      drops[name] = this.values[b + f]
      total += this.values[b + f]
    }
    return {
      rxPackets: this.values[b + C.RX_PACKETS],
      rxBytes: this.values[b + C.RX_BYTES],
      txPackets: this.values[b + C.TX_PACKETS],
      txBytes: this.values[b + C.TX_BYTES],
      learnRefused: this.values[b + C.LEARN_REFUSED],
      drops,
      dropsTotal: total,
    }
  }
}
