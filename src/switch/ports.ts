/**
 * The switch's view of its ports: parallel typed arrays indexed by port number, so the
 * frame path reads a port's fd, network and limits without touching an object.
 */

export const PORT_FREE = 0
export const PORT_UP = 1
/** The device went away under us (deleted, or its fd failed); kept for counters until removed. */
export const PORT_GONE = 2

/** A port with a device fd (TAP, packet socket). */
export const KIND_FD = 0
/** A remote VXLAN tunnel endpoint of an overlay network: frames to it are encapsulated. */
export const KIND_VTEP = 1

export class PortTable {
  fd = new Int32Array(16).fill(-1)
  net = new Int32Array(16).fill(-1)
  /** Bytes of virtio-net header in front of each frame on this port (0 or 12). */
  hdr = new Int32Array(16)
  /** Largest Ethernet frame accepted without segmentation offload (MTU + 14 + 4 for a VLAN tag). */
  maxFrame = new Int32Array(16)
  state = new Uint8Array(16)
  kind = new Uint8Array(16)
  /** The remote VTEP's IPv4 address, for KIND_VTEP ports. */
  vtepIp = new Uint32Array(16)
  names: (string | undefined)[] = []
  private freeList: number[] = []
  private high = 0

  /** Returns a free port number, growing the arrays when needed. */
  alloc(name: string): number {
    const p = this.freeList.length ? this.freeList.pop()! : this.high++
    if (p >= this.fd.length) this.grow(p + 1)
    this.names[p] = name
    this.state[p] = PORT_UP
    this.kind[p] = KIND_FD
    return p
  }

  release(p: number): void {
    this.fd[p] = -1
    this.net[p] = -1
    this.state[p] = PORT_FREE
    this.names[p] = undefined
    this.freeList.push(p)
  }

  get highWater(): number {
    return this.high
  }

  private grow(min: number): void {
    let n = this.fd.length
    while (n < min) n *= 2
    const i32 = (a: Int32Array, fill: number) => {
      const b = new Int32Array(n).fill(fill)
      b.set(a)
      return b
    }
    this.fd = i32(this.fd, -1)
    this.net = i32(this.net, -1)
    this.hdr = i32(this.hdr, 0)
    this.maxFrame = i32(this.maxFrame, 0)
    const u8 = (a: Uint8Array) => {
      const b = new Uint8Array(n)
      b.set(a)
      return b
    }
    this.state = u8(this.state)
    this.kind = u8(this.kind)
    const ips = new Uint32Array(n)
    ips.set(this.vtepIp)
    this.vtepIp = ips
  }
}
