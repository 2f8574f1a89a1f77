/**
 * Where frames enter: a TAP device's fd, read in batches into the switch's shared slab by the
 * native poller when libuv sees it readable, then handed to the forwarder in one call.
 *
 *   const io = new TapIo(onBatch)
 *   const fd = io.open('sy0', { persist: true })
 */
import { native, TapFlags, VNET_HDR_SIZE, type Poller } from '../native/binding.js'

/** Largest frame a TAP with segmentation offload hands us: 64 KiB of IP + Ethernet + header. */
export const FRAME_MAX = 65536 + 64
/** Frames read per readiness event; enough to amortise the crossing, small enough to stay fair. */
export const BATCH_FRAMES = 64

export interface TapOpenOptions {
  /** Keep the device when the daemon exits or crashes, so sandboxes keep their interface. */
  persist?: boolean
  /** Attach to an existing device only; never create one. */
  attachOnly?: boolean
  /** The network namespace the device lives in (a path like /run/netns/NAME). */
  netnsPath?: string
  /** The device's name there, when it differs from the port's (a TAP renamed eth0 in a sandbox). */
  device?: string
  /**
   * 'tun' (default): the switch holds the TAP's queue. 'packet': someone else holds it (QEMU
   * with `-netdev tap,ifname=...`) and the switch attaches with a packet socket, as OVS does.
   */
  attach?: 'tun' | 'packet'
  /** No segmentation/checksum offload: for networks whose frames leave through a tunnel. */
  noOffload?: boolean
}

/** Errno names that mean the device is gone rather than that something is wrong with us. */
export const PORT_GONE_ERRNOS = new Set(['EFAULT', 'EIO', 'EBADFD', 'ENXIO', 'ENODEV', 'EBADF', 'EPIPE'])

/**
 * One shared slab for every port: a batch is read, forwarded and written inside one
 * callback, so ports never hold frames across callbacks.
 */
export class TapIo {
  readonly slab = new Uint8Array(BATCH_FRAMES * FRAME_MAX)
  readonly meta = new Int32Array(BATCH_FRAMES * 2)
  readonly hdr = VNET_HDR_SIZE

  /** Opens (or creates) the TAP with virtio-net headers and TSO/checksum offloads, or attaches a packet socket to it. */
  open(name: string, opts: TapOpenOptions = {}): number {
    if (opts.attach === 'packet') return native.packetOpen(opts.device ?? name, opts.netnsPath)
    let flags = TapFlags.VNET_HDR
    if (opts.persist) flags |= TapFlags.PERSIST
    if (opts.attachOnly) flags |= TapFlags.ATTACH_ONLY
    if (opts.noOffload) flags |= TapFlags.NO_OFFLOAD
    return native.tapOpen(opts.device ?? name, flags, opts.netnsPath).fd
  }

  /** Starts delivering batches of `fd` to `onBatch(count)`; a negative count is -errno. */
  poll(fd: number, onBatch: (count: number) => void): Poller {
    const p = new native.Poller(fd, this.slab, this.meta, BATCH_FRAMES, FRAME_MAX, onBatch)
    p.start()
    return p
  }

  /**
   * Creates a persistent TAP and lets go of it, for a hypervisor to open by name; frames of it
   * reach the switch through a packet socket.
   */
  createFree(name: string): void {
    native.closeFd(native.tapOpen(name, TapFlags.VNET_HDR | TapFlags.PERSIST | TapFlags.CREATE_ONLY).fd)
  }

  /** Closes the fd; a TAP that is not persistent disappears with it (packet sockets just close). */
  close(fd: number, removeDevice: boolean, attach: 'tun' | 'packet' = 'tun'): void {
    try {
      if (removeDevice && attach === 'tun') native.tapSetPersist(fd, false)
    } finally {
      native.closeFd(fd)
    }
  }

  /** What the pollers' busy-polling did (they share one spin loop). */
  busyPollStats = native.busyPollStats
  writeBatch = native.writeBatch
  writeFrame = native.writeFrame
  writeFrameParts = native.writeFrameParts
}
