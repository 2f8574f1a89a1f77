/**
 * BOOTP/DHCP message codec (RFC 951, RFC 2131 section 2, RFC 2132, RFC 3396), in the
 * codec shape every Switchyard codec shares: decode, encode, encodingLength.
 *
 *   const msg = decode(udpPayload)               // throws MalformedDhcpError
 *   getMessageType(msg.options)                  // DhcpMessageType.DISCOVER
 *   const bytes = encode(reply)                  // at least 300 bytes, every byte written
 *
 * Decoding is bounded: one pass over the options, each length checked against the end of
 * the message before it is read. Values are copied out, so the caller may reuse its buffer.
 */
import { MalformedDhcpError } from './errors.js'
import { readIpv4, writeIpv4 } from './ipv4.js'
import { DhcpOption, type DhcpOptions } from './options.js'

export { MalformedDhcpError } from './errors.js'
// The typed option helpers belong to the codec's surface: callers import one module.
export * from './options.js'

/** op: a client's message. */
export const BOOTREQUEST = 1
/** op: a server's message. */
export const BOOTREPLY = 2
/** htype for Ethernet (ARP hardware type 1). */
export const HTYPE_ETHERNET = 1
/** The flags bit a client sets when it cannot receive unicast before it is configured. */
export const BROADCAST_FLAG = 0x8000
/** Size of the fixed BOOTP header, up to the options field. */
export const HEADER_LENGTH = 236
/** Header plus the magic cookie: the shortest DHCP message. */
export const MIN_LENGTH = 240
/** BOOTP's fixed message size; replies are padded to it because some clients drop shorter ones. */
export const BOOTP_MIN_LENGTH = 300
/**
 * Longest message accepted: a DHCP message that fits one standard Ethernet frame
 * (1500 - 20 IPv4 - 8 UDP). Real clients send about 300 bytes; anything near this is junk.
 */
export const MAX_LENGTH = 1472

const COOKIE = [99, 130, 83, 99]
const CHADDR_OFF = 28
const SNAME_OFF = 44
const SNAME_LEN = 64
const FILE_OFF = 108
const FILE_LEN = 128

/** A decoded BOOTP/DHCP message. Addresses are dotted quads; '0.0.0.0' means unset. */
export interface DhcpMessage {
  /** BOOTREQUEST (1) from clients, BOOTREPLY (2) from servers. */
  op: number
  /** Hardware type; 1 for Ethernet. */
  htype: number
  /** Relay hops; 0 without relays. */
  hops: number
  /** Transaction id the client chose; replies echo it. */
  xid: number
  /** Seconds since the client began acquiring or renewing. */
  secs: number
  /** Flags; only BROADCAST_FLAG is defined. */
  flags: number
  /** Client's current address (RENEWING, REBINDING, BOUND, INFORM). */
  ciaddr: string
  /** "Your" address: what the server gives the client. */
  yiaddr: string
  /** Next server for bootstrap (TFTP); unused here. */
  siaddr: string
  /** Relay agent address; unused here (no relays). */
  giaddr: string
  /** Client hardware address, hlen bytes (6 for Ethernet, at most 16). */
  chaddr: Uint8Array
  /** Server host name (NUL-terminated on the wire, at most 64 bytes). */
  sname: string
  /** Boot file name (NUL-terminated on the wire, at most 128 bytes). */
  file: string
  /** Options in wire order, repeated codes concatenated. */
  options: DhcpOptions
}

function readCString(buf: Uint8Array, off: number, len: number): string {
  let s = ''
  for (let i = 0; i < len; i++) {
    const c = buf[off + i]
    if (c === 0) break
    s += String.fromCharCode(c)
  }
  return s
}

function writeCString(buf: Uint8Array, off: number, len: number, s: string, field: string): void {
  if (s.length > len) throw new RangeError(`DHCP ${field} is ${s.length} characters, at most ${len} fit`)
  for (let i = 0; i < s.length; i++) buf[off + i] = s.charCodeAt(i) & 0xff
}

function readU32(buf: Uint8Array, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}

/**
 * Decodes a DHCP message from `length` bytes of `buf` at `offset` (a UDP payload).
 * Throws MalformedDhcpError for anything that is not a well-formed DHCP message,
 * RangeError if offset/length fall outside `buf` (a caller's bug, not the packet's).
 */
export function decode(buf: Uint8Array, offset = 0, length = buf.length - offset): DhcpMessage {
  if (offset < 0 || length < 0 || offset + length > buf.length) {
    throw new RangeError(`DHCP decode: offset ${offset} + length ${length} outside a ${buf.length}-byte buffer`)
  }
  if (length < MIN_LENGTH) throw new MalformedDhcpError(`truncated: ${length} bytes, a DHCP message has at least ${MIN_LENGTH}`)
  if (length > MAX_LENGTH) throw new MalformedDhcpError(`oversize: ${length} bytes, at most ${MAX_LENGTH} accepted`)
  const b = buf.subarray(offset, offset + length)

  const op = b[0]
  if (op !== BOOTREQUEST && op !== BOOTREPLY) throw new MalformedDhcpError(`op ${op} is neither BOOTREQUEST (1) nor BOOTREPLY (2)`)
  const hlen = b[2]
  if (hlen > 16) throw new MalformedDhcpError(`hlen ${hlen} exceeds the 16-byte chaddr field`)
  for (let i = 0; i < 4; i++) {
    if (b[HEADER_LENGTH + i] !== COOKIE[i]) throw new MalformedDhcpError('bad magic cookie: not 99.130.83.99')
  }

  const options: DhcpOptions = new Map()
  let ended = false
  // Each step moves i forward by at least one byte, so the loop ends within `length` steps.
  let i = MIN_LENGTH
  while (i < length) {
    const code = b[i]
    if (code === DhcpOption.PAD) { i++; continue }
    if (code === DhcpOption.END) { ended = true; break }
    if (i + 1 >= length) throw new MalformedDhcpError(`option ${code} at byte ${i} has no length byte`)
    const len = b[i + 1]
    const start = i + 2
    if (start + len > length) throw new MalformedDhcpError(`option ${code} at byte ${i} has length ${len}, running past the end (${length} bytes)`)
    const value = new Uint8Array(b.subarray(start, start + len))
    const prev = options.get(code)
    // RFC 3396: a code seen again continues the same value.
    options.set(code, prev ? concat(prev, value) : value)
    i = start + len
  }
  if (!ended) throw new MalformedDhcpError('options are not terminated by the end option (255)')
  // Options hidden in sname/file would need a second parse of fields other servers treat as text; no client we serve sends them.
  if (options.has(DhcpOption.OVERLOAD)) throw new MalformedDhcpError('option overload (52) is not supported')

  return {
    op,
    htype: b[1],
    hops: b[3],
    xid: readU32(b, 4),
    secs: (b[8] << 8) | b[9],
    flags: (b[10] << 8) | b[11],
    ciaddr: readIpv4(b, 12),
    yiaddr: readIpv4(b, 16),
    siaddr: readIpv4(b, 20),
    giaddr: readIpv4(b, 24),
    chaddr: new Uint8Array(b.subarray(CHADDR_OFF, CHADDR_OFF + hlen)),
    sname: readCString(b, SNAME_OFF, SNAME_LEN),
    file: readCString(b, FILE_OFF, FILE_LEN),
    options,
  }
}

/** Wire size of the options: values over 255 bytes are split into several instances (RFC 3396). */
function optionsLength(options: DhcpOptions): number {
  let n = 0
  for (const value of options.values()) {
    const pieces = Math.max(1, Math.ceil(value.length / 255))
    n += pieces * 2 + value.length
  }
  return n
}

/** Bytes `encode(msg)` writes: header, cookie, options, end option, padded to BOOTP_MIN_LENGTH. */
export function encodingLength(msg: DhcpMessage): number {
  return Math.max(BOOTP_MIN_LENGTH, MIN_LENGTH + optionsLength(msg.options) + 1)
}

/**
 * Encodes `msg` into `buf` at `offset` (a new buffer if none is given) and returns the buffer.
 * Every byte of the message is written, padding included. Throws RangeError/TypeError for
 * a message that cannot be encoded (bad address, chaddr over 16 bytes, PAD/END as options).
 */
export function encode(msg: DhcpMessage, buf?: Uint8Array, offset = 0): Uint8Array {
  const len = encodingLength(msg)
  const out = buf ?? new Uint8Array(len)
  if (offset < 0 || offset + len > out.length) throw new RangeError(`DHCP encode needs ${len} bytes at offset ${offset}, buffer has ${out.length}`)
  if (msg.chaddr.length > 16) throw new RangeError(`DHCP chaddr is ${msg.chaddr.length} bytes, at most 16`)
  const b = out.subarray(offset, offset + len)
  b.fill(0)

  b[0] = msg.op
  b[1] = msg.htype
  b[2] = msg.chaddr.length
  b[3] = msg.hops
  b[4] = msg.xid >>> 24
  b[5] = (msg.xid >>> 16) & 0xff
  b[6] = (msg.xid >>> 8) & 0xff
  b[7] = msg.xid & 0xff
  b[8] = (msg.secs >>> 8) & 0xff
  b[9] = msg.secs & 0xff
  b[10] = (msg.flags >>> 8) & 0xff
  b[11] = msg.flags & 0xff
  writeIpv4(b, 12, msg.ciaddr)
  writeIpv4(b, 16, msg.yiaddr)
  writeIpv4(b, 20, msg.siaddr)
  writeIpv4(b, 24, msg.giaddr)
  b.set(msg.chaddr, CHADDR_OFF)
  writeCString(b, SNAME_OFF, SNAME_LEN, msg.sname, 'sname')
  writeCString(b, FILE_OFF, FILE_LEN, msg.file, 'file')
  b.set(COOKIE, HEADER_LENGTH)

  let i = MIN_LENGTH
  for (const [code, value] of msg.options) {
    if (code <= DhcpOption.PAD || code >= DhcpOption.END || !Number.isInteger(code)) {
      throw new TypeError(`DHCP option code ${code} cannot carry a value (1..254)`)
    }
    let start = 0
    do {
      const piece = Math.min(255, value.length - start)
      b[i] = code
      b[i + 1] = piece
      b.set(value.subarray(start, start + piece), i + 2)
      i += 2 + piece
      start += piece
    } while (start < value.length)
  }
  b[i] = DhcpOption.END
  return out
}
