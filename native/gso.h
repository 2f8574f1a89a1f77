// Software segmentation offload for frames leaving through the VXLAN tunnel: a TAP with TSO
// hands us 64 KiB TCP super-frames (virtio-net header with gso_type TCPV4/TCPV6) and frames
// whose L4 checksum is still to be done (NEEDS_CSUM). A far VTEP may be the kernel's vxlan,
// which trusts nothing it receives, so every inner frame leaves complete: MTU-sized, with
// valid IP and TCP checksums.
#pragma once
#include <napi.h>
#include <stddef.h>
#include <stdint.h>

namespace switchyard {

// struct virtio_net_hdr, the 10-byte layout every TAP and packet socket of the addon uses.
constexpr size_t kVnetFlags = 0, kVnetGsoType = 1, kVnetHdrLen = 2, kVnetGsoSize = 4, kVnetCsumStart = 6,
                 kVnetCsumOffset = 8;
constexpr uint8_t kVnetNeedsCsum = 1;
constexpr uint8_t kVnetGsoNone = 0, kVnetGsoTcpv4 = 1, kVnetGsoTcpv6 = 4, kVnetGsoEcn = 0x80;

// Why a frame was refused on its way into the tunnel (counted per reason; mirrored in
// src/overlay/vxlan.ts through gsoErrorNames).
enum GsoError : int {
  kGsoOk = 0,
  kGsoBadCsumOffsets,    // NEEDS_CSUM with csum_start/csum_offset outside the frame
  kGsoBadHdrLen,         // hdr_len beyond the frame
  kGsoBadSize,           // gso_size 0
  kGsoUnsupported,       // a gso_type we do not segment (UFO, USO, unknown)
  kGsoNotTcpIp,          // not IPv4/IPv6 + TCP, or L3 not matching the gso_type, or a fragment
  kGsoTruncated,         // L2/L3/L4 headers cut short, or IP length beyond the frame
  kGsoOversize,          // a segment would not fit the overlay MTU
  kGsoTooManySegments,   // more than kGsoMaxSegs segments (bounds the work one frame can cause)
  kGsoErrorCount
};

// Segments of one frame at most. TCP's smallest MSS (48) would need 1366 for 64 KiB; a
// sandbox behind a 1450-byte MTU uses ~1400. 1024 keeps gso_size >= 64 possible while capping
// what one frame written by a sandbox may turn into on the underlay.
constexpr int kGsoMaxSegs = 1024;
// Room for VXLAN (8) + Ethernet with one VLAN tag (18) + IPv4 with options (60) or IPv6 (40)
// + TCP with options (60), rounded up.
constexpr size_t kGsoHeadMax = 160;

// Where the headers of a super-frame are, from the start of the Ethernet frame.
struct GsoPlan {
  size_t l3;     // IP header
  size_t l4;     // TCP header
  size_t hlen;   // end of the TCP header: bytes repeated in front of every segment
  size_t end;    // end of the IP packet (any Ethernet padding after it is not sent)
  size_t gso;    // payload bytes per segment (the last may be shorter)
  int segs;
  bool v6;
};

// One's-complement sum of n bytes, 64-bit accumulator in host order (fold with CsumFold).
uint64_t CsumPartial(const uint8_t* p, size_t n, uint64_t acc);
// Folds to 16 bits, in host order: store the complement with memcpy, not as a big-endian number.
uint16_t CsumFold(uint64_t sum);

// Checks a TCPV4/TCPV6 super-frame and plans its segments; mtu bounds each segment's IP
// packet. Returns kGsoOk or the reason to drop it.
int GsoParse(const uint8_t* vnet, const uint8_t* frame, size_t flen, size_t mtu, GsoPlan* plan);

// Writes segment k's Ethernet/IP/TCP headers (plan.hlen bytes) to out, with the IP length,
// IPv4 id and checksum, TCP sequence number, flags and the full TCP checksum over the segment's
// payload; *payload/*plen get the payload, which stays where it is in the frame.
void GsoBuildSegment(const uint8_t* frame, const GsoPlan& plan, int k, uint8_t* out, const uint8_t** payload,
                     size_t* plen);

// Completes a NEEDS_CSUM frame in place (the field holds the pseudo-header sum, as the
// kernel's skb_checksum_help expects) and clears the flag. kGsoOk or kGsoBadCsumOffsets.
int CompleteChecksum(uint8_t* vnet, uint8_t* frame, size_t flen);

// The receive side's counterpart (UDP GRO, see ReadDatagrams): a message of `len` bytes read
// from a socket with UDP_GRO, holding datagrams of `seg` bytes each but the last.
constexpr int kGroMaxSplit = 64;  // UDP_GRO_CNT_MAX: the kernel merges at most 64 datagrams

// Whether the message is such a train (its first inner frame ends at `seg`), rather than one
// datagram that is a peer kernel's tunnel offload aggregate (which also reports a GRO size).
bool GroIsTrain(const uint8_t* msg, size_t len, size_t seg);

// Merges a train that is one inner IPv4 TCP flow in sequence (same VXLAN and L2-L4 headers,
// consecutive sequence numbers, only ACK and a final PSH) into one super-frame in place: the
// first datagram's VXLAN and inner headers, all payloads after them, IP length and checksum
// fixed, the TCP checksum field left as the pseudo-header sum (the frame is handed on as
// NEEDS_CSUM, as the kernel's GRO would leave it). Returns the new message length (VXLAN
// header included), or 0 when the train must be split instead.
size_t GroCoalesce(uint8_t* msg, size_t len, size_t seg);

// Appends message b (alen/blen: lengths with the VXLAN header) to message a when b is the
// next segment of a's flow and a did not end with PSH, as GroCoalesce does within a train;
// `room` bounds a's growth. Returns a's new length, or 0 (nothing changed).
size_t GroAppend(uint8_t* a, size_t alen, const uint8_t* b, size_t blen, size_t room);

void InitGso(Napi::Env env, Napi::Object exports);

}  // namespace switchyard
