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
  vxlanSendBatch(fd: number, slab: Uint8Array, desc: Int32Array, count: number, dstPort: number, hdr: number): number
  icmpOpen(): number
  raiseFdLimit(): number
  /** Keeps polling every port this long after a batch before sleeping (0: off). */
  /** Spin this long after traffic before sleeping; `lightMicroseconds` while traffic is light (under 10 k frames/s). */
  setBusyPoll(microseconds: number, lightMicroseconds?: number): void
  sendTo(fd: number, buf: Uint8Array, offset: number, length: number, ipv4: number): number
  tapFlags: { VNET_HDR: number; PERSIST: number; MULTI_QUEUE: number; ATTACH_ONLY: number; CREATE_ONLY: number; NO_OFFLOAD: number }
  VNET_HDR_SIZE: number
}

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)

export const native: NativeBinding = require(path.join(here, '..', '..', 'build', 'Release', 'switchyard.node'))

export const TapFlags = native.tapFlags
export const VNET_HDR_SIZE = native.VNET_HDR_SIZE

/** Errors from the addon carry the errno name and the syscall, like Node's own. */
export interface NativeError extends Error {
  code: string
  errno: number
  syscall: string
}

export function isNativeError(e: unknown): e is NativeError {
  return e instanceof Error && typeof (e as NativeError).code === 'string' && typeof (e as NativeError).syscall === 'string'
}
