/**
 * MAC addresses as plain numbers (48 bits fit a double exactly), so the per-frame path
 * reads, compares and hashes them without allocating strings or buffers.
 *
 *   const dst = readMac(frame, off)            // 0xffffffffffff for broadcast
 *   macToString(dst)                           // 'ff:ff:ff:ff:ff:ff'
 */

/** 2^32: a MAC number splits into (mac / TWO32) | 0 and mac | 0. */
export const TWO32 = 4294967296

export const BROADCAST_MAC = 0xffffffffffff

export class InvalidMacError extends Error {
  readonly code = 'INVALID_MAC'
  constructor(readonly input: string) {
    super(`invalid MAC address ${JSON.stringify(input)}: expected six hex pairs like 02:42:ac:11:00:02`)
  }
}

export function readMac(buf: Uint8Array, off: number): number {
  return ((buf[off] << 8) | buf[off + 1]) * TWO32 + (((buf[off + 2] << 24) | (buf[off + 3] << 16) | (buf[off + 4] << 8) | buf[off + 5]) >>> 0)
}

export function writeMac(buf: Uint8Array, off: number, mac: number): void {
  writeMacHalves(buf, off, (mac / TWO32) | 0, mac | 0)
}

/**
 * writeMac for a MAC split into its first 16 and last 32 bits (`(mac / 2 ** 32) | 0`, `mac | 0`):
 * small integers, which a caller on the frame path can pass without boxing a double.
 */
export function writeMacHalves(buf: Uint8Array, off: number, hi: number, lo: number): void {
  buf[off] = hi >>> 8
  buf[off + 1] = hi & 0xff
  buf[off + 2] = lo >>> 24
  buf[off + 3] = (lo >>> 16) & 0xff
  buf[off + 4] = (lo >>> 8) & 0xff
  buf[off + 5] = lo & 0xff
}

/** Group bit (I/G) of the first octet: broadcast and multicast. */
export function isMulticastMac(mac: number): boolean {
  return (Math.floor(mac / 1099511627776) & 1) === 1
}

/** Multicast source MACs are invalid (IEEE 802.3); the switch must never learn them. */
export function isMulticastMacAt(buf: Uint8Array, off: number): boolean {
  return (buf[off] & 1) === 1
}

export function macToString(mac: number): string {
  const b = new Uint8Array(6)
  writeMac(b, 0, mac)
  let s = ''
  for (let i = 0; i < 6; i++) s += (i ? ':' : '') + b[i].toString(16).padStart(2, '0')
  return s
}

export function parseMac(s: string): number {
  const m = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(s)
  if (!m) throw new InvalidMacError(s)
  const b = new Uint8Array(6)
  for (let i = 0; i < 6; i++) b[i] = parseInt(m[i + 1], 16)
  return readMac(b, 0)
}

/** A random locally administered unicast MAC (02:xx:...), as Docker and QEMU make them. */
export function randomMac(random: () => number = Math.random): number {
  const b = new Uint8Array(6)
  for (let i = 0; i < 6; i++) b[i] = Math.floor(random() * 256)
  b[0] = (b[0] & 0xfc) | 0x02
  return readMac(b, 0)
}
