/**
 * Errors shared by the packet codecs. A frame from a port is untrusted input: a codec that
 * rejects it throws MalformedPacketError (counted as a drop, never a crash), while a caller
 * that passes impossible arguments (a field out of range, a buffer too small to encode
 * into) gets a plain RangeError, because that is a bug in our code, not in the frame.
 *
 *   try { ipv4.decode(frame, 14) } catch (err) {
 *     if (err instanceof MalformedPacketError) drops[err.layer + ':' + err.reason]++
 *     else throw err
 *   }
 */

/** The protocol layer whose bytes were bad. */
export type PacketLayer =
  | 'vnet'
  | 'ethernet'
  | 'arp'
  | 'ipv4'
  | 'icmp'
  | 'udp'
  | 'tcp'
  | 'vxlan'
  | 'dhcp'
  | 'dns'

/**
 * Why the bytes were rejected. The length codes follow one rule so counters mean the same
 * thing at every layer:
 * - `truncated`: fewer bytes than the fixed header needs, or than a length field (IPv4
 *   total length, IHL, UDP length, TCP data offset) claims;
 * - `bad_length`: a length field smaller than its own header, or otherwise impossible;
 * - `bad_header_length`: IPv4 IHL or TCP data offset below 5 words.
 */
export type MalformedReason =
  | 'truncated'
  | 'bad_length'
  | 'bad_header_length'
  | 'bad_version'
  | 'bad_checksum'
  | 'unsupported'
  | 'bad_value'
  | 'bad_option'
  | 'bad_pointer'
  | 'limit_exceeded'

/** Thrown by every `decode` when the input is not a valid packet of its layer. */
export class MalformedPacketError extends Error {
  readonly code = 'MALFORMED_PACKET'
  constructor(
    readonly layer: PacketLayer,
    readonly reason: MalformedReason,
    detail?: string,
  ) {
    super(`malformed ${layer} packet: ${reason}${detail ? ` (${detail})` : ''}`)
    this.name = 'MalformedPacketError'
  }
}

/**
 * Resolves a decode call's `(offset, length)` against the buffer and returns the length.
 * Out-of-range arguments are a caller bug, so they throw RangeError, not a packet error.
 */
export function decodeLength(buf: Uint8Array, offset: number, length: number | undefined): number {
  if (!Number.isInteger(offset) || offset < 0 || offset > buf.length) {
    throw new RangeError(`offset ${offset} is outside the buffer (length ${buf.length})`)
  }
  const len = length ?? buf.length - offset
  if (!Number.isInteger(len) || len < 0 || offset + len > buf.length) {
    throw new RangeError(`length ${len} at offset ${offset} runs past the buffer (length ${buf.length})`)
  }
  return len
}

/**
 * Returns the buffer an encode call writes into: the given one after checking that `need`
 * bytes fit at `offset`, or a new zeroed one (the only allocation an encode makes).
 */
export function encodeTarget(buf: Uint8Array | undefined, offset: number, need: number): Uint8Array {
  if (!buf) return new Uint8Array(offset + need)
  if (!Number.isInteger(offset) || offset < 0 || offset + need > buf.length) {
    throw new RangeError(`need ${need} bytes at offset ${offset}, buffer has ${buf.length}`)
  }
  return buf
}

/** Checks that an encode input field is an integer in [0, max]; names the field if not. */
export function checkUint(layer: PacketLayer, field: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${layer} ${field} must be an integer from 0 to ${max}, got ${value}`)
  }
}
