/**
 * The internet checksum (RFC 1071) and its incremental update (RFC 1624), shared by IPv4,
 * ICMP, UDP and TCP. Sums are plain numbers; nothing here allocates.
 *
 *   hdr[10] = hdr[11] = 0
 *   const csum = internetChecksum(hdr, 0, 20)                          // IPv4 header
 *   internetChecksum(seg, 0, len, pseudoHeaderSum(src, dst, 6, len))   // TCP segment
 *   checksumAdjust16(csum, 0x0800, 0x0000)        // ICMP echo request became a reply
 */

/** Folds carries back into the low 16 bits (works for any non-negative integer sum). */
export function foldSum(sum: number): number {
  while (sum > 0xffff) sum = (sum % 65536) + Math.floor(sum / 65536)
  return sum
}

/**
 * One's-complement sum of `len` bytes from `off`, read as big-endian 16-bit words (an odd
 * last byte is padded with zero), plus `initial`; folded to 16 bits, not complemented.
 * Reads exactly buf[off, off + len).
 */
export function onesSum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial
  const end = off + len - (len & 1)
  for (let i = off; i < end; i += 2) sum += (buf[i] << 8) | buf[i + 1]
  if (len & 1) sum += buf[end] << 8
  return foldSum(sum)
}

/**
 * The checksum to store: the complement of {@link onesSum}. With the checksum field
 * zeroed first, write the result there; over a range that includes a correct checksum
 * field, {@link onesSum} is 0xffff.
 */
export function internetChecksum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  return ~onesSum(buf, off, len, initial) & 0xffff
}

/** The IPv4 addresses a TCP or UDP checksum covers besides the segment itself. */
export interface PseudoHeader {
  /** Source address as an unsigned 32-bit number. */
  src: number
  /** Destination address as an unsigned 32-bit number. */
  dst: number
}

/**
 * Sum of the IPv4 pseudo-header (RFC 768, RFC 793) that TCP and UDP checksums cover:
 * source and destination address, protocol number, and the L4 length.
 */
export function pseudoHeaderSum(src: number, dst: number, protocol: number, length: number): number {
  return foldSum((src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length)
}

/**
 * RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'): the checksum after one 16-bit word of the
 * covered data changed from `oldWord` to `newWord`, without rereading the data.
 * Never returns 0 (see adjusted()), so UDP needs no special case.
 */
export function checksumAdjust16(csum: number, oldWord: number, newWord: number): number {
  return adjusted((~csum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff))
}

// Eqn. 3 yields 0 when the new data sums to zero. If the data is all zeros (an echo reply
// with id, seq and payload 0) only 0xffff verifies; otherwise 0 and 0xffff both do.
function adjusted(sum: number): number {
  return ~foldSum(sum) & 0xffff || 0xffff
}

/** {@link checksumAdjust16} for a 32-bit field, such as an IPv4 address rewritten by NAT. */
export function checksumAdjust32(csum: number, oldValue: number, newValue: number): number {
  return adjusted(
    (~csum & 0xffff) + (~(oldValue >>> 16) & 0xffff) + (~oldValue & 0xffff) + (newValue >>> 16) + (newValue & 0xffff),
  )
}
