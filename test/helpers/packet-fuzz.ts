/**
 * Shared pieces of the packet codec tests: hex fixtures, a seeded PRNG, and a bounded fuzz
 * loop that holds every decoder to the codec contract.
 *
 *   fuzzDecode(t, { seeds: [arpRequest], decode: arp.decode })
 */
import { MalformedPacketError } from '../../src/packet/errors.js'

/** Bytes from a hex string; whitespace is ignored. */
export function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'))
}

/** mulberry32: small, seeded, so a failing run reproduces. Returns floats in [0, 1). */
export function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** The reason code `fn` threw as MalformedPacketError, or 'ok'. Other errors propagate. */
export function reasonOf(fn: () => unknown): string {
  try {
    fn()
    return 'ok'
  } catch (err) {
    if (err instanceof MalformedPacketError) return err.reason
    throw err
  }
}

/** Plain data for comparing decode results: views become arrays. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Array.from(v)
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(v)) o[k] = plain(x)
    return o
  }
  return v
}

type Outcome = { ok: true; value: string } | { ok: false; reason: string; layer: string }

function outcome(fn: () => unknown): Outcome {
  try {
    return { ok: true, value: JSON.stringify(plain(fn())) }
  } catch (err) {
    if (err instanceof MalformedPacketError) return { ok: false, reason: err.reason, layer: err.layer }
    throw err
  }
}

/** The part of a tap Test the fuzz loop uses. */
interface Asserts {
  fail(message: string): void
  ok(value: unknown, message: string): void
  equal(a: unknown, b: unknown, message: string): void
}

export interface FuzzOptions {
  /** Valid packets to mutate. */
  seeds: Uint8Array[]
  /** The decoder under test. */
  decode: (buf: Uint8Array, offset: number, length: number) => unknown
  /** The layer its errors must name. */
  layer: string
  /** Iterations; default 3000. */
  runs?: number
  /** PRNG seed; default 1. */
  seed?: number
}

/**
 * Decodes random and mutated buffers (bit flips, truncation, extension, random bytes),
 * each placed at a random offset inside random garbage. Checks that decode returns or
 * throws MalformedPacketError of its layer and nothing else, and that the result equals
 * decoding an exact copy of the range: a decoder that read past `length` would see the
 * garbage and differ.
 */
export function fuzzDecode(t: Asserts, opts: FuzzOptions): void {
  const rnd = prng(opts.seed ?? 1)
  const int = (n: number): number => Math.floor(rnd() * n)
  const runs = opts.runs ?? 3000
  let decoded = 0
  for (let i = 0; i < runs; i++) {
    const base = opts.seeds[i % opts.seeds.length]
    let pkt: Uint8Array
    switch (i % 4) {
      case 0: // random bytes
        pkt = new Uint8Array(int(base.length + 16))
        for (let j = 0; j < pkt.length; j++) pkt[j] = int(256)
        break
      case 1: // truncated or extended
        pkt = new Uint8Array(int(base.length + 16))
        pkt.set(base.subarray(0, pkt.length))
        for (let j = base.length; j < pkt.length; j++) pkt[j] = int(256)
        break
      default: {
        // a few bytes changed, often in the header where the length fields are
        pkt = base.slice()
        const n = 1 + int(4)
        for (let j = 0; j < n && pkt.length; j++) pkt[int(Math.min(pkt.length, j === 0 ? 24 : pkt.length))] = int(256)
      }
    }
    const off = int(9)
    const big = new Uint8Array(off + pkt.length + 32)
    for (let j = 0; j < big.length; j++) big[j] = int(256)
    big.set(pkt, off)
    let inPlace: Outcome
    let exact: Outcome
    try {
      inPlace = outcome(() => opts.decode(big, off, pkt.length))
      exact = outcome(() => opts.decode(pkt.slice(), 0, pkt.length))
    } catch (err) {
      t.fail(`run ${i}: decode threw ${String(err)} for ${Buffer.from(pkt).toString('hex')}`)
      return
    }
    if (JSON.stringify(inPlace) !== JSON.stringify(exact)) {
      t.fail(`run ${i}: result depends on bytes past length for ${Buffer.from(pkt).toString('hex')}`)
      return
    }
    if (!inPlace.ok && inPlace.layer !== opts.layer) {
      t.fail(`run ${i}: error names layer ${inPlace.layer}`)
      return
    }
    if (inPlace.ok) decoded++
  }
  t.ok(true, `${runs} fuzzed buffers: ${decoded} decoded, ${runs - decoded} rejected as malformed`)
}
