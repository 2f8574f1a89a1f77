/**
 * The flows that owe the sandbox an ACK, sent once at the end of a batch (coalesced). A flag on
 * the flow and a reused array rather than a Set: adding and deleting one element per segment
 * made the Set rehash (a new table) every few segments, and iterating or clearing it once per
 * batch allocated too.
 *
 *   queue.add(flow)        // a segment arrived that needs acknowledging
 *   queue.delete(flow)     // an ACK went out with data anyway
 *   queue.drain()          // end of batch: flow.sendAck() for each still owing one
 */
export interface AckOwer {
  ackOwed: boolean
  sendAck(): void
}

export class AckQueue<T extends AckOwer> {
  private readonly flows: (T | undefined)[] = []
  private count = 0

  add(flow: T): void {
    if (flow.ackOwed) return
    flow.ackOwed = true
    this.flows[this.count++] = flow
  }

  /** The flow no longer owes one; its slot is skipped when the queue drains. */
  delete(flow: T): void {
    flow.ackOwed = false
  }

  drain(): void {
    const n = this.count
    // A flow deleted and added again in one batch sits here twice; its flag sends one ACK.
    for (let i = 0; i < n; i++) {
      const f = this.flows[i]!
      this.flows[i] = undefined
      if (f.ackOwed) {
        f.ackOwed = false
        f.sendAck()
      }
    }
    this.count = 0
  }
}
