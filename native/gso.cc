// Software TSO for the VXLAN transmit path (see gso.h): what the kernel's tcp_gso_segment does
// for a device without TSO, on a frame that stays in the switch's slab. Segment headers are
// built in the caller's scratch; payloads are never copied here.
#include "gso.h"

#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>

#include "errors.h"

namespace switchyard {

static inline uint16_t Be16(const uint8_t* p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint16_t Le16(const uint8_t* p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline void PutBe16(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline uint32_t Be32(const uint8_t* p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void PutBe32(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
// A big-endian 16-bit word as it adds into a host-order (little-endian) sum.
static inline uint64_t BeWord(uint32_t v) { return (uint64_t)(((v & 0xff) << 8) | ((v >> 8) & 0xff)); }

// Two 32-bit halves into two 64-bit accumulators: no carry chain between iterations (the
// halves are added back together at the end; 2^32 == 1 in one's-complement arithmetic).
static uint64_t CsumScalar(const uint8_t* p, size_t n, uint64_t acc) {
  uint64_t a = acc & 0xffffffff, b = acc >> 32;
  while (n >= 32) {
    uint64_t w[4];
    memcpy(w, p, 32);
    a += (w[0] & 0xffffffff) + (w[1] & 0xffffffff) + (w[2] & 0xffffffff) + (w[3] & 0xffffffff);
    b += (w[0] >> 32) + (w[1] >> 32) + (w[2] >> 32) + (w[3] >> 32);
    p += 32;
    n -= 32;
  }
  while (n >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    a += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t w;
    memcpy(&w, p, 2);
    a += w;
    p += 2;
    n -= 2;
  }
  if (n) a += p[0];  // an odd last byte is the high-order byte of a zero-padded word: low in host order
  return a + b;      // both < 2^48 for anything a frame holds
}

#if defined(__x86_64__)
// The same with AVX2, 64 bytes a step: ~95 GB/s against ~17 in cache on the machine of
// bench/RESULTS.md; the payload of every segment is summed once, so this is per byte sent.
__attribute__((target("avx2"))) static uint64_t CsumAvx2(const uint8_t* p, size_t n, uint64_t acc) {
  __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
  const __m256i mask = _mm256_set1_epi64x(0xffffffff);
  while (n >= 64) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    lo = _mm256_add_epi64(lo, _mm256_and_si256(v, mask));
    hi = _mm256_add_epi64(hi, _mm256_srli_epi64(v, 32));
    lo = _mm256_add_epi64(lo, _mm256_and_si256(w, mask));
    hi = _mm256_add_epi64(hi, _mm256_srli_epi64(w, 32));
    p += 64;
    n -= 64;
  }
  uint64_t t[4];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(t), _mm256_add_epi64(lo, hi));
  return t[0] + t[1] + t[2] + t[3] + CsumScalar(p, n, acc);  // the rest starts on an even byte
}
static const bool g_avx2 = __builtin_cpu_supports("avx2");
#endif

uint64_t CsumPartial(const uint8_t* p, size_t n, uint64_t acc) {
#if defined(__x86_64__)
  if (n >= 256 && g_avx2) return CsumAvx2(p, n, acc);
#endif
  return CsumScalar(p, n, acc);
}

uint16_t CsumFold(uint64_t s) {
  s = (s & 0xffffffff) + (s >> 32);
  s = (s & 0xffffffff) + (s >> 32);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

int GsoParse(const uint8_t* vnet, const uint8_t* f, size_t flen, size_t mtu, GsoPlan* p) {
  uint8_t type = vnet[kVnetGsoType] & ~kVnetGsoEcn;
  if (type != kVnetGsoTcpv4 && type != kVnetGsoTcpv6) return kGsoUnsupported;
  size_t gso = Le16(vnet + kVnetGsoSize);
  if (gso == 0) return kGsoBadSize;
  // hdr_len is only a hint (we parse the headers ourselves), but one pointing past the frame
  // means the header is garbage.
  if (Le16(vnet + kVnetHdrLen) > flen) return kGsoBadHdrLen;
  if (flen < 14) return kGsoTruncated;
  size_t l3 = 14;
  uint16_t et = Be16(f + 12);
  if (et == 0x8100) {
    if (flen < 18) return kGsoTruncated;
    et = Be16(f + 16);
    l3 = 18;
  }
  size_t l4, end;
  if (type == kVnetGsoTcpv4) {
    if (et != 0x0800) return kGsoNotTcpIp;
    if (flen < l3 + 20) return kGsoTruncated;
    const uint8_t* ip = f + l3;
    size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
    if (ip[0] >> 4 != 4 || ihl < 20) return kGsoNotTcpIp;
    if (ip[9] != 6 || (Be16(ip + 6) & 0x3fff) != 0) return kGsoNotTcpIp;  // not TCP, or a fragment
    size_t tot = Be16(ip + 2);
    if (tot < ihl + 20 || l3 + tot > flen) return kGsoTruncated;
    l4 = l3 + ihl;
    end = l3 + tot;
  } else {
    if (et != 0x86dd) return kGsoNotTcpIp;
    if (flen < l3 + 40) return kGsoTruncated;
    const uint8_t* ip = f + l3;
    if (ip[0] >> 4 != 6 || ip[6] != 6) return kGsoNotTcpIp;  // extension headers are not segmented
    size_t plen = Be16(ip + 4);
    if (plen < 20 || l3 + 40 + plen > flen) return kGsoTruncated;
    l4 = l3 + 40;
    end = l3 + 40 + plen;
  }
  size_t doff = (size_t)(f[l4 + 12] >> 4) * 4;
  if (doff < 20 || l4 + doff > end) return kGsoTruncated;
  size_t hlen = l4 + doff;
  size_t payload = end - hlen;
  // The inner MTU is what the far side's bridge and sandbox accept: the first (largest) segment
  // must fit, or it would be dropped there (or fragmented by nobody).
  if (hlen - l3 + std::min(gso, payload) > mtu) return kGsoOversize;
  size_t segs = payload == 0 ? 1 : (payload + gso - 1) / gso;
  if (segs > (size_t)kGsoMaxSegs) return kGsoTooManySegments;
  p->l3 = l3;
  p->l4 = l4;
  p->hlen = hlen;
  p->end = end;
  p->gso = gso;
  p->segs = (int)segs;
  p->v6 = type == kVnetGsoTcpv6;
  return kGsoOk;
}

constexpr uint8_t kTcpFin = 0x01, kTcpPsh = 0x08, kTcpCwr = 0x80;

void GsoBuildSegment(const uint8_t* f, const GsoPlan& p, int k, uint8_t* out, const uint8_t** payload,
                     size_t* plenOut) {
  size_t off = p.hlen + (size_t)k * p.gso;
  size_t plen = off >= p.end ? 0 : std::min(p.gso, p.end - off);
  memcpy(out, f, p.hlen);
  uint8_t* ip = out + p.l3;
  uint8_t* th = out + p.l4;
  size_t tcplen = p.hlen - p.l4 + plen;
  PutBe32(th + 4, Be32(th + 4) + (uint32_t)(k * p.gso));
  // As tcp_gso_segment: FIN and PSH only on the last segment, CWR only on the first.
  uint8_t flags = th[13];
  if (k != p.segs - 1) flags &= (uint8_t)~(kTcpFin | kTcpPsh);
  if (k != 0) flags &= (uint8_t)~kTcpCwr;
  th[13] = flags;
  th[16] = th[17] = 0;
  uint64_t s;
  if (!p.v6) {
    size_t ihl = p.l4 - p.l3;
    PutBe16(ip + 2, (uint32_t)(ihl + tcplen));
    PutBe16(ip + 4, (uint32_t)(Be16(ip + 4) + k));  // every segment its own IP id, as the kernel does
    ip[10] = ip[11] = 0;
    uint16_t ipsum = (uint16_t)~CsumFold(CsumPartial(ip, ihl, 0));
    memcpy(ip + 10, &ipsum, 2);
    s = CsumPartial(ip + 12, 8, 0);  // pseudo-header: addresses
  } else {
    PutBe16(ip + 4, (uint32_t)tcplen);
    s = CsumPartial(ip + 8, 32, 0);
  }
  s += BeWord(6) + BeWord((uint32_t)tcplen);  // pseudo-header: protocol and TCP length
  s = CsumPartial(th, p.hlen - p.l4, s);
  s = CsumPartial(f + off, plen, s);  // the TCP header is a multiple of 4: the payload starts on an even byte
  uint16_t sum = (uint16_t)~CsumFold(s);
  memcpy(th + 16, &sum, 2);
  *payload = f + off;
  *plenOut = plen;
}

int CompleteChecksum(uint8_t* vnet, uint8_t* f, size_t flen) {
  size_t start = Le16(vnet + kVnetCsumStart);
  size_t field = start + Le16(vnet + kVnetCsumOffset);
  if (field + 2 > flen) return kGsoBadCsumOffsets;
  uint16_t sum = (uint16_t)~CsumFold(CsumPartial(f + start, flen - start, 0));
  if (sum == 0) sum = 0xffff;  // as skb_checksum_help (CSUM_MANGLED_0): UDP reads 0 as "no checksum"
  memcpy(f + field, &sum, 2);
  vnet[kVnetFlags] &= (uint8_t)~kVnetNeedsCsum;
  memset(vnet + kVnetCsumStart, 0, 4);
  return kGsoOk;
}

bool GroIsTrain(const uint8_t* d, size_t len, size_t seg) {
  if (len < 8 + 14) return true;
  const uint8_t* f = d + 8;
  size_t l2 = 14;
  uint16_t et = Be16(f + 12);
  if (et == 0x8100 && len >= 8 + 18) {
    et = Be16(f + 16);
    l2 = 18;
  }
  size_t ipLen;
  if (et == 0x0800 && len >= 8 + l2 + 4) ipLen = Be16(f + l2 + 2);
  else if (et == 0x86dd && len >= 8 + l2 + 6) ipLen = 40 + (size_t)Be16(f + l2 + 4);
  else return true;  // only IP frames travel as tunnel aggregates
  size_t first = 8 + l2 + ipLen;
  if (first == len) return false;
  return first <= seg;
}

// One VXLAN datagram (or an already merged message) as GRO sees it.
struct GroSeg {
  size_t doff;     // TCP header length
  size_t hlen;     // inner Ethernet + IPv4 + TCP headers
  size_t payload;
  uint32_t seq;
  uint8_t flags;
};

constexpr uint8_t kTcpAck = 0x10;

// Mergeable at all: inner IPv4 without options carrying TCP with payload, not a fragment, the
// IP length exactly the datagram's (no padding, nothing cut), flags ACK and at most PSH.
static bool GroParse(const uint8_t* d, size_t dl, GroSeg* s) {
  if (dl < 8 + 14 + 20 + 20) return false;
  const uint8_t* f = d + 8;
  const uint8_t* ip = f + 14;
  if (Be16(f + 12) != 0x0800 || ip[0] != 0x45 || ip[9] != 6 || (Be16(ip + 6) & 0x3fff) != 0) return false;
  const uint8_t* th = ip + 20;
  s->doff = (size_t)(th[12] >> 4) * 4;
  s->hlen = 14 + 20 + s->doff;
  if (s->doff < 20 || dl <= 8 + s->hlen || Be16(ip + 2) != dl - 8 - 14) return false;
  s->flags = th[13];
  if ((s->flags & ~kTcpPsh) != kTcpAck) return false;
  s->payload = dl - 8 - s->hlen;
  s->seq = Be32(th + 4);
  return true;
}

// b continues a's flow right where a's payload ends, with headers a merge may keep as a's.
static bool GroFollows(const uint8_t* a, const GroSeg& sa, const uint8_t* b, const GroSeg& sb) {
  if (sb.hlen != sa.hlen || sb.seq != (uint32_t)(sa.seq + sa.payload)) return false;
  const uint8_t *ia = a + 8 + 14, *ib = b + 8 + 14;
  const uint8_t *ta = ia + 20, *tb = ib + 20;
  return memcmp(a, b, 8 + 14) == 0 &&                                              // VNI; MACs, type
         memcmp(ia, ib, 2) == 0 && memcmp(ia + 6, ib + 6, 4) == 0 &&               // version, TOS; DF, TTL, proto
         memcmp(ia + 12, ib + 12, 8) == 0 &&                                       // addresses
         memcmp(ta, tb, 4) == 0 && memcmp(ta + 8, tb + 8, 5) == 0 &&               // ports; ack, data offset
         memcmp(ta + 14, tb + 14, 2) == 0 && memcmp(ta + 18, tb + 18, sa.doff - 18) == 0;  // window; urg, options
}

// Headers of a merged message: IP length and checksum, the last segment's flags, and the TCP
// checksum field as the pseudo-header sum (NEEDS_CSUM, as the kernel's GRO leaves it).
static void GroFinish(uint8_t* d, const GroSeg& s, size_t total, uint8_t flags) {
  uint8_t* ip = d + 8 + 14;
  uint8_t* th = ip + 20;
  size_t tcplen = s.doff + total;
  PutBe16(ip + 2, (uint32_t)(20 + tcplen));
  ip[10] = ip[11] = 0;
  uint16_t ipsum = (uint16_t)~CsumFold(CsumPartial(ip, 20, 0));
  memcpy(ip + 10, &ipsum, 2);
  th[13] = flags;
  uint16_t partial = CsumFold(CsumPartial(ip + 12, 8, 0) + BeWord(6) + BeWord((uint32_t)tcplen));
  memcpy(th + 16, &partial, 2);  // not complemented: what a CHECKSUM_PARTIAL field holds
}

size_t GroCoalesce(uint8_t* d, size_t len, size_t seg) {
  size_t count = (len + seg - 1) / seg;
  GroSeg s0;
  if (count < 2 || !GroParse(d, seg, &s0)) return 0;
  GroSeg prev = s0;
  const uint8_t* prevMsg = d;
  size_t total = s0.payload;
  uint8_t flags = s0.flags;
  for (size_t k = 1; k < count; k++) {
    const uint8_t* dk = d + k * seg;
    GroSeg sk;
    // PSH ends a train: only the last may carry it.
    if (flags != kTcpAck || !GroParse(dk, std::min(seg, len - k * seg), &sk) || !GroFollows(prevMsg, prev, dk, sk)) return 0;
    total += sk.payload;
    flags = sk.flags;
    prev = sk;
    prevMsg = dk;
  }
  if (20 + s0.doff + total > 65535) return 0;
  uint8_t* dst = d + seg;  // the first datagram is a full one: its payload ends here
  for (size_t k = 1; k < count; k++) {
    size_t pl = std::min(seg, len - k * seg) - 8 - s0.hlen;
    memmove(dst, d + k * seg + 8 + s0.hlen, pl);
    dst += pl;
  }
  GroFinish(d, s0, total, flags);
  return 8 + s0.hlen + total;
}

size_t GroAppend(uint8_t* a, size_t alen, const uint8_t* b, size_t blen, size_t room) {
  GroSeg sa, sb;
  if (!GroParse(a, alen, &sa) || sa.flags != kTcpAck || !GroParse(b, blen, &sb) || !GroFollows(a, sa, b, sb)) return 0;
  size_t total = sa.payload + sb.payload;
  if (20 + sa.doff + total > 65535 || alen + sb.payload > room) return 0;
  memcpy(a + alen, b + 8 + sb.hlen, sb.payload);
  GroFinish(a, sa, total, sb.flags);
  return alen + sb.payload;
}

// gsoSegment(buf: Uint8Array, off, len, hdr, mtu, out: Uint8Array, meta: Int32Array) -> count | -GsoError
// The transmit path's segmentation on its own, for tests: frame at buf[off, off + len) with its
// hdr-byte virtio-net header; segments (Ethernet frames, no header) are laid out one after the
// other in out, (offset, length) pairs in meta. A NEEDS_CSUM frame without GSO is completed in
// place and copied as one segment. -ERANGE-like overflow of out/meta is reported as -kGsoErrorCount.
static Napi::Value GsoSegment(const Napi::CallbackInfo& info) {
  Napi::Uint8Array buf = info[0].As<Napi::Uint8Array>();
  size_t off = info[1].As<Napi::Number>().Uint32Value();
  size_t len = info[2].As<Napi::Number>().Uint32Value();
  size_t hdr = info[3].As<Napi::Number>().Uint32Value();
  size_t mtu = info[4].As<Napi::Number>().Uint32Value();
  Napi::Uint8Array outArr = info[5].As<Napi::Uint8Array>();
  Napi::Int32Array metaArr = info[6].As<Napi::Int32Array>();
  Napi::Env env = info.Env();
  if (hdr != 10 || off + len > buf.ByteLength() || len < hdr) return ThrowErrno(env, EINVAL, "gsoSegment");
  uint8_t* vnet = buf.Data() + off;
  uint8_t* f = vnet + hdr;
  size_t flen = len - hdr;
  uint8_t* out = outArr.Data();
  size_t outLen = outArr.ByteLength();
  int32_t* meta = metaArr.Data();
  size_t maxSegs = metaArr.ElementLength() / 2;
  if ((vnet[kVnetGsoType] & ~kVnetGsoEcn) == kVnetGsoNone) {
    if (vnet[kVnetFlags] & kVnetNeedsCsum) {
      int r = CompleteChecksum(vnet, f, flen);
      if (r != kGsoOk) return Napi::Number::New(env, -r);
    }
    if (flen > outLen || maxSegs < 1) return Napi::Number::New(env, -kGsoErrorCount);
    memcpy(out, f, flen);
    meta[0] = 0;
    meta[1] = (int32_t)flen;
    return Napi::Number::New(env, 1);
  }
  GsoPlan p;
  int r = GsoParse(vnet, f, flen, mtu, &p);
  if (r != kGsoOk) return Napi::Number::New(env, -r);
  if ((size_t)p.segs > maxSegs) return Napi::Number::New(env, -kGsoErrorCount);
  size_t pos = 0;
  for (int k = 0; k < p.segs; k++) {
    const uint8_t* pay;
    size_t plen;
    if (pos + p.hlen + p.gso > outLen) return Napi::Number::New(env, -kGsoErrorCount);
    GsoBuildSegment(f, p, k, out + pos, &pay, &plen);
    memcpy(out + pos + p.hlen, pay, plen);
    meta[2 * k] = (int32_t)pos;
    meta[2 * k + 1] = (int32_t)(p.hlen + plen);
    pos += p.hlen + plen;
  }
  return Napi::Number::New(env, p.segs);
}

void InitGso(Napi::Env env, Napi::Object exports) {
  exports.Set("gsoSegment", Napi::Function::New(env, GsoSegment));
  // Index = GsoError; [0] unused (kGsoOk).
  static const char* const kNames[kGsoErrorCount] = {
      "ok", "badCsumOffsets", "badHdrLen", "badGsoSize", "unsupportedGso", "notTcpIp", "truncated", "oversize",
      "tooManySegments"};
  Napi::Array names = Napi::Array::New(env, kGsoErrorCount);
  for (int i = 0; i < kGsoErrorCount; i++) names.Set((uint32_t)i, kNames[i]);
  exports.Set("gsoErrorNames", names);
}

}  // namespace switchyard
