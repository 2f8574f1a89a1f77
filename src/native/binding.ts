/**
 * Typed access to the native addon (native/*.cc): TAP devices and batched frame I/O.
 *
 *   const tap = native.tapOpen('sy0', TapFlags.VNET_HDR)
 *   const n = native.readBatch(tap.fd, slab, 0, meta, 64, FRAME_MAX)
 */
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

export interface TapHandle {
  fd: number
  name: string
  /** 12 when the device carries virtio-net headers (IFF_VNET_HDR), else 0. */
  vnetHdrSize: number
}

export interface Poller {
  start(): void
  stop(): void
  close(): void
}

export interface BusyPollStats {
  slices: number
  turns: number
  readTurns: number
  pollTurns: number
  yields: number
  frames: number
}

/** The VTEP's transmit side (native/udp_io.cc): segments TSO frames, completes checksums, sends. */
export interface VxlanTx {
  /** desc holds (vtep ip, vni, offset, length, result) quintuples; returns datagrams sent. */
  send(slab: Uint8Array, desc: Int32Array, count: number): number
  /** The inner MTU of a VNI's network (0 forgets it): segments must fit it. */
  setMtu(vni: number, mtu: number): void
  /** UDP GSO (one send per <= 64 segments) on or off (then one message per segment). */
  setUdpGso(on: boolean): void
}

/**
 * Reads a socket into a ring that JS owns (native/tcp_io.cc), and says when it can take
 * writes again: `state` is [start, count] of the ring's data; the poller appends and calls
 * onEvent(bytes, status), status 0, 1 (end of stream), SOCK_WRITABLE or -errno. Reading stops
 * by itself at the end, on an error and when the ring is full.
 */
export interface SockPoller {
  read(on: boolean): void
  /** A non-blocking send: bytes written or -errno (-EAGAIN: the socket's buffer is full). */
  write(buf: Uint8Array, offset: number, length: number): number
  watchWritable(on: boolean): void
  /** A new ring; the data was moved into it and `state` describes it. */
  setRing(ring: Uint8Array): void
  /** Stops and closes the poller's own descriptor (a dup of the socket's). */
  close(): void
}

export interface NativeBinding {
  tapOpen(name: string, flags: number, netnsPath?: string): TapHandle
  tapSetPersist(fd: number, on: boolean): void
  packetOpen(ifname: string, netnsPath?: string): number
  closeFd(fd: number): void
  readBatch(fd: number, slab: Uint8Array, start: number, meta: Int32Array, maxFrames: number, frameMax: number): number
  writeBatch(slab: Uint8Array, desc: Int32Array, count: number): number
  writeFrame(fd: number, buf: Uint8Array, offset: number, length: number): number
  Poller: new (
    fd: number,
    slab: Uint8Array,
    meta: Int32Array,
    maxFrames: number,
    frameMax: number,
    onBatch: (count: number) => void,
    /** Datagram mode: sender addresses, and bytes left free in front of each datagram. */
    srcs?: Uint32Array,
    headroom?: number,
  ) => Poller
  udpOpen(ipv4: number, port: number): number
  VxlanTx: new (fd: number, dstPort: number, hdr: number, counters: Float64Array, defaultMtu: number) => VxlanTx
  /** Size of VxlanTx's counters array, and where its per-reason drop counters start. */
  vxlanTxCounters: { count: number; dropBase: number }
  /**
   * The transmit path's segmentation alone (tests): the frame at buf[off, off + len) with its
   * `hdr`-byte virtio-net header, segments laid out in `out` with (offset, length) pairs in
   * `meta`. Returns the segment count, or minus an index of gsoErrorNames.
   */
  gsoSegment(buf: Uint8Array, off: number, len: number, hdr: number, mtu: number, out: Uint8Array, meta: Int32Array): number
  /** Reasons a frame is refused by the segmentation, by negated return code of gsoSegment. */
  gsoErrorNames: string[]
  icmpOpen(): number
  raiseFdLimit(): number
  /** Spin this long after a batch of heavy traffic before sleeping, `lightMicroseconds` while traffic is light (under 10 k frames/s); both 0: never spin. */
  setBusyPoll(microseconds: number, lightMicroseconds?: number): void
  /**
   * What busy-polling did since start: slices run, turns (one look at every port), turns that
   * read one frame per port in one system call (light traffic) or polled, yields, frames handled.
   */
  busyPollStats(): BusyPollStats
  /** Where every poller writes the wall-clock time in ms (as Date.now()) before it hands JS a batch. */
  setBatchClock(cell: Float64Array): void
  /** The caller opened a socket or started watching one: a busy-polling switch lets libuv's poll phase register it now. */
  loopTurn(): void
  /** Copies src[srcOffset, srcOffset + length) to dst at dstOffset (memmove); throws ERANGE past either end. */
  copyBytes(dst: Uint8Array, dstOffset: number, src: Uint8Array, srcOffset: number, length: number): void
  /** One frame from two places (headers, payload) with writev: bytes or -errno. */
  writeFrameParts(fd: number, head: Uint8Array, headLength: number, data: Uint8Array, offset: number, length: number): number
  SockPoller: new (fd: number, ring: Uint8Array, state: Int32Array, onEvent: (bytes: number, status: number) => void) => SockPoller
  /** The status a SockPoller reports when its socket can take writes again. */
  SOCK_WRITABLE: number
  sendTo(fd: number, buf: Uint8Array, offset: number, length: number, ipv4: number): number
  tapFlags: { VNET_HDR: number; PERSIST: number; MULTI_QUEUE: number; ATTACH_ONLY: number; CREATE_ONLY: number; NO_OFFLOAD: number }
  VNET_HDR_SIZE: number
}

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)

export const native: NativeBinding = require(path.join(here, '..', '..', 'build', 'Release', 'switchyard.node'))

export const TapFlags = native.tapFlags
export const VNET_HDR_SIZE = native.VNET_HDR_SIZE
export const SOCK_WRITABLE = native.SOCK_WRITABLE

/**
 * The time of the batch being handled, in ms since the epoch: the pollers write it before each
 * callback. Reading it allocates nothing; Date.now() boxes a new number per call.
 */
export const batchClock = new Float64Array(1)
native.setBatchClock(batchClock)

/** Errors from the addon carry the errno name and the syscall, like Node's own. */
export interface NativeError extends Error {
  code: string
  errno: number
  syscall: string
}

export function isNativeError(e: unknown): e is NativeError {
  return e instanceof Error && typeof (e as NativeError).code === 'string' && typeof (e as NativeError).syscall === 'string'
}
