// Batched UDP for the overlay: recvmmsg into the switch's slab (with room in front of each
// datagram for the frame's virtio-net header) and sendmmsg of VXLAN-encapsulated frames
// straight from the slab, the 8-byte VXLAN header in its own iovec: no copy of the frame
// (TSO super-frames are segmented on the way, gso.cc).
#include "udp_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/udp.h>
#include <unistd.h>

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "errors.h"
#include "gso.h"

namespace switchyard {

constexpr int kBatch = 64;

// With UDP_GRO on the socket, a message may hold a train of datagrams (a peer's UDP GSO send
// crossing a veth whole, or the kernel's GRO on a NIC): equal-sized datagrams but the last, the
// size in a UDP_GRO cmsg. A train that is one inner TCP flow in order becomes one TSO
// super-frame (GroCoalesce: one TAP write instead of dozens); any other train is split into
// its datagrams, each moved up by `headroom` bytes so that every one has room for its
// virtio-net header. Up to kGroMaxSplit datagrams per train; a longer one is dropped
// (reported as truncated). A message that continues the flow of the frame before it in the
// same read is appended to that frame (GroAppend).
int ReadDatagrams(int fd, uint8_t* slab, size_t slabLen, int32_t* meta, uint32_t* srcs, int maxMsgs,
                  int frameCap, size_t slotSize, size_t headroom) {
  struct mmsghdr msgs[kBatch];
  struct iovec iov[kBatch];
  struct sockaddr_in addr[kBatch];
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } ctl[kBatch];
  const size_t slack = headroom * kGroMaxSplit;  // room to spread a train's datagrams apart
  int n = maxMsgs < kBatch ? maxMsgs : kBatch;
  if ((size_t)n * slotSize > slabLen) n = (int)(slabLen / slotSize);
  if (n > frameCap) n = frameCap;
  if (n <= 0 || slotSize <= headroom + slack) return -EINVAL;
  memset(msgs, 0, sizeof(msgs[0]) * n);
  for (int i = 0; i < n; i++) {
    iov[i].iov_base = slab + (size_t)i * slotSize + headroom;
    iov[i].iov_len = slotSize - headroom - slack;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &addr[i];
    msgs[i].msg_hdr.msg_namelen = sizeof addr[i];
    msgs[i].msg_hdr.msg_control = ctl[i].buf;
    msgs[i].msg_hdr.msg_controllen = sizeof ctl[i].buf;
  }
  int r;
  do { r = recvmmsg(fd, msgs, n, MSG_DONTWAIT, nullptr); } while (r < 0 && errno == EINTR);
  if (r < 0) return errno == EAGAIN ? 0 : -errno;
  int out = 0;
  bool prevWhole = false;  // the frame before owns its whole slot (not part of a split train)
  for (int i = 0; i < r; i++) {
    size_t slot = (size_t)i * slotSize;
    size_t len = msgs[i].msg_len;
    uint32_t src = ntohl(addr[i].sin_addr.s_addr);
    // A datagram cut short by the slot is reported as such (MSG_TRUNC): JS drops it.
    bool trunc = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    size_t seg = 0;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        int g;
        memcpy(&g, CMSG_DATA(c), sizeof g);
        seg = g > 0 ? (size_t)g : 0;
      }
    }
    uint8_t* d = slab + slot + headroom;
    if (!trunc && seg > 0 && len > seg && GroIsTrain(d, len, seg)) {
      size_t merged = GroCoalesce(d, len, seg);
      if (merged) {
        len = merged;
      } else {
        size_t count = (len + seg - 1) / seg;
        prevWhole = false;
        if (count > (size_t)kGroMaxSplit || out + (int)count > frameCap - (r - 1 - i)) {
          meta[2 * out] = (int32_t)slot;
          meta[2 * out + 1] = -1;
          srcs[out++] = src;
          continue;
        }
        // Last first: each datagram moves up by k * headroom, past its successor's new place.
        for (size_t k = count; k-- > 1;) {
          size_t dl = std::min(seg, len - k * seg);
          memmove(d + k * (seg + headroom), d + k * seg, dl);
        }
        for (size_t k = 0; k < count; k++) {
          size_t dl = std::min(seg, len - k * seg);
          meta[2 * out] = (int32_t)(slot + k * (seg + headroom));
          meta[2 * out + 1] = (int32_t)(headroom + dl);
          srcs[out++] = src;
        }
        continue;
      }
    }
    // The next segment of the flow the frame before it carries (a peer's super-frame leaves as
    // two UDP GSO sends: 44 + 3 segments): appended, one TAP write and one ACK fewer.
    if (!trunc && prevWhole && srcs[out - 1] == src) {
      size_t prevOff = (size_t)meta[2 * out - 2];
      size_t prevLen = (size_t)meta[2 * out - 1] - headroom;
      size_t grown = GroAppend(slab + prevOff + headroom, prevLen, d, len, slotSize - headroom);
      if (grown) {
        meta[2 * out - 1] = (int32_t)(headroom + grown);
        continue;
      }
    }
    meta[2 * out] = (int32_t)slot;
    meta[2 * out + 1] = trunc ? -1 : (int32_t)(headroom + len);
    srcs[out++] = src;
    prevWhole = !trunc;
  }
  return out;
}

// udpOpen(ipv4 as uint32, port) -> fd, bound, non-blocking, with large buffers.
static Napi::Value UdpOpen(const Napi::CallbackInfo& info) {
  uint32_t ip = info[0].As<Napi::Number>().Uint32Value();
  int port = info[1].As<Napi::Number>().Int32Value();
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(info.Env(), errno, "socket(AF_INET, SOCK_DGRAM)");
  // 8 MiB each way: a GRO train or a peer kernel's aggregate is one 64 KiB datagram, and the
  // default limit (net.core.rmem_max, ~200 KiB) would hold only a few. FORCE needs
  // CAP_NET_ADMIN, which the daemon has; without it the capped size is what we get.
  int buf = 8 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) < 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  // Trains of datagrams in one read (ReadDatagrams); a kernel without it reads them one by one.
  int one = 1;
  setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
  struct sockaddr_in sa = {};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(ip);
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(info.Env(), err, "bind(udp)");
  }
  return Napi::Number::New(info.Env(), fd);
}

// The transmit side of the VTEP: one per UDP socket, with its scratch allocated once. A batch
// of (vtep ip, vni, offset, length, result) descriptors becomes datagrams: plain frames go
// straight from the slab behind an 8-byte VXLAN header (its own iovec), NEEDS_CSUM frames are
// completed in place first, and TSO super-frames are segmented (gso.cc): per segment a copy of
// the headers in the scratch and the payload where it is in the slab.
//
// Segments of one super-frame leave as one UDP GSO send (UDP_SEGMENT: all datagrams of a
// message have one size but the last, <= 64 and <= 64 KiB a send), not as one sendmmsg
// message each. Measured with bench/overlay.sh's topology (two hosts on a veth underlay, both
// Switchyard, three alternating pairs of 5-s iperf3 runs, busy machine): UDP GSO 7.4 / 7.3
// Gbit/s for 1 / 4 TCP streams, a message per segment 1.9 / 1.8. The underlay stack is walked
// once per send instead of once per segment, and the peer reads the send as one train (UDP
// GRO, ReadDatagrams) instead of 47 datagrams. A kernel or route that refuses UDP_SEGMENT
// makes us fall back to one message per segment for good.
class VxlanTx : public Napi::ObjectWrap<VxlanTx> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "VxlanTx",
                       {InstanceMethod("send", &VxlanTx::Send), InstanceMethod("setMtu", &VxlanTx::SetMtu),
                        InstanceMethod("setUdpGso", &VxlanTx::SetUdpGso)});
  }

  // new VxlanTx(fd, dstPort, hdr, counters: Float64Array, defaultMtu)
  explicit VxlanTx(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VxlanTx>(info) {
    fd_ = info[0].As<Napi::Number>().Int32Value();
    port_ = info[1].As<Napi::Number>().Int32Value();
    hdr_ = info[2].As<Napi::Number>().Uint32Value();
    Napi::Float64Array counters = info[3].As<Napi::Float64Array>();
    defaultMtu_ = info[4].As<Napi::Number>().Uint32Value();
    if (counters.ElementLength() < kTxCounterCount) {
      ErrnoError(info.Env(), EINVAL, "VxlanTx", "counters").ThrowAsJavaScriptException();
      return;
    }
    countersRef_ = Napi::Persistent(counters);
    counters_ = counters.Data();
    heads_.resize((size_t)kCap * kGsoHeadMax);
    iov_.resize((size_t)kCap * 2);
    msgs_.resize(kCap);
    addrs_.resize(kCap);
    cmsgs_.resize(kCap);
    owner_.resize(kCap);
    segsIn_.resize(kCap);
  }

  // Layout of the counters array (names in src/overlay/vxlan.ts, TX_COUNTERS).
  enum TxCounter {
    kTxDatagrams = 0,      // datagrams the socket took
    kTxGsoFrames,          // super-frames segmented
    kTxGsoSegments,        // segments made of them
    kTxChecksums,          // NEEDS_CSUM frames completed
    kTxSendErrors,         // datagrams the socket refused (ENOBUFS, EAGAIN, ...)
    kTxUdpGsoFallbacks,    // UDP_SEGMENT refused: switched to a message per segment
    kTxDropBase,           // + GsoError: frames dropped before sending, per reason
    kTxCounterCount = kTxDropBase + kGsoErrorCount
  };

 private:
  static constexpr int kCap = 1024;           // datagrams per sendmmsg round (UIO_MAXIOV)
  static constexpr int kUdpGsoMaxSegs = 64;   // UDP_MAX_SEGMENTS of older kernels
  static constexpr size_t kUdpMaxPayload = 65507;
  static constexpr size_t kVxlanHeader = 8;
  union Cmsg {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(uint16_t))];
  };

  // send(slab, desc: Int32Array, count) -> datagrams sent. Result per descriptor: 8 + inner
  // bytes sent (the frame's bytes for a plain frame, as before), or a negative errno
  // (-EINVAL for a frame refused by the checks; its reason is counted).
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Uint8Array slab = info[0].As<Napi::Uint8Array>();
    Napi::Int32Array descArr = info[1].As<Napi::Int32Array>();
    int count = info[2].As<Napi::Number>().Int32Value();
    int32_t* desc = descArr.Data();
    uint8_t* base = slab.Data();
    size_t slabLen = slab.ByteLength();
    if (count < 0) count = 0;
    if ((size_t)count * 5 > descArr.ElementLength()) count = (int)(descArr.ElementLength() / 5);
    desc_ = desc;
    sent_ = 0;
    Reset();
    for (int i = 0; i < count; i++) {
      int32_t* d = desc + i * 5;
      size_t off = (uint32_t)d[2], len = (uint32_t)d[3];
      if (len <= hdr_ + 14 || off + len > slabLen) {
        d[4] = -EINVAL;
        counters_[kTxDropBase + kGsoTruncated]++;
        continue;
      }
      uint32_t vni = (uint32_t)d[1];
      uint32_t ip = (uint32_t)d[0];
      uint8_t* vnet = base + off;
      uint8_t* f = vnet + hdr_;
      size_t flen = len - hdr_;
      uint8_t gsoType = hdr_ ? vnet[kVnetGsoType] & ~kVnetGsoEcn : kVnetGsoNone;
      if (gsoType == kVnetGsoNone) {
        if (hdr_ && (vnet[kVnetFlags] & kVnetNeedsCsum)) {
          // In place: the slab's header says so afterwards, so the same frame flooded to a
          // local TAP in this batch stays consistent.
          int r = CompleteChecksum(vnet, f, flen);
          if (r != kGsoOk) {
            Drop(d, r);
            continue;
          }
          counters_[kTxChecksums]++;
        }
        if (nhead_ + 1 > kCap) Flush();
        uint8_t* h = NextHead(vni);
        struct iovec* v = &iov_[niov_];
        v[0] = {h, kVxlanHeader};
        v[1] = {f, flen};
        niov_ += 2;
        d[4] = (int32_t)kVxlanHeader;
        AddMsg(i, ip, v, 2, 1, 0);
        continue;
      }
      GsoPlan p;
      int r = GsoParse(vnet, f, flen, MtuOf(vni), &p);
      if (r != kGsoOk) {
        Drop(d, r);
        continue;
      }
      if (nhead_ + p.segs > kCap) Flush();  // heads >= messages, iovecs = 2 x heads
      d[4] = (int32_t)kVxlanHeader;
      counters_[kTxGsoFrames]++;
      counters_[kTxGsoSegments] += p.segs;
      size_t segBytes = kVxlanHeader + p.hlen + p.gso;  // every datagram but the last
      int perMsg = 1;
      if (udpGso_) {
        perMsg = (int)std::min<size_t>(kUdpGsoMaxSegs, kUdpMaxPayload / segBytes);
        if (perMsg < 1) perMsg = 1;
      }
      for (int k = 0; k < p.segs; k += perMsg) {
        int n = std::min(perMsg, p.segs - k);
        struct iovec* v = &iov_[niov_];
        for (int j = 0; j < n; j++) {
          uint8_t* h = NextHead(vni);
          const uint8_t* pay;
          size_t plen;
          GsoBuildSegment(f, p, k + j, h + kVxlanHeader, &pay, &plen);
          v[2 * j] = {h, kVxlanHeader + p.hlen};
          v[2 * j + 1] = {const_cast<uint8_t*>(pay), plen};
        }
        niov_ += 2 * n;
        AddMsg(i, ip, v, 2 * n, n, n > 1 ? (uint16_t)segBytes : 0);
      }
    }
    Flush();
    return Napi::Number::New(info.Env(), sent_);
  }

  Napi::Value SetMtu(const Napi::CallbackInfo& info) {
    uint32_t vni = info[0].As<Napi::Number>().Uint32Value();
    uint32_t mtu = info[1].As<Napi::Number>().Uint32Value();
    if (mtu == 0) mtu_.erase(vni);
    else mtu_[vni] = mtu;
    return info.Env().Undefined();
  }

  Napi::Value SetUdpGso(const Napi::CallbackInfo& info) {
    udpGso_ = info[0].ToBoolean();
    return info.Env().Undefined();
  }

  size_t MtuOf(uint32_t vni) const {
    auto it = mtu_.find(vni);
    return it == mtu_.end() ? defaultMtu_ : it->second;
  }

  void Drop(int32_t* d, int reason) {
    d[4] = -EINVAL;
    counters_[kTxDropBase + reason]++;
  }

  void Reset() {
    nmsg_ = 0;
    niov_ = 0;
    nhead_ = 0;
  }

  uint8_t* NextHead(uint32_t vni) {
    uint8_t* h = &heads_[(size_t)nhead_++ * kGsoHeadMax];
    memset(h, 0, kVxlanHeader);
    h[0] = 0x08;  // I flag: the VNI is valid
    h[4] = (vni >> 16) & 0xff;
    h[5] = (vni >> 8) & 0xff;
    h[6] = vni & 0xff;
    return h;
  }

  void AddMsg(int owner, uint32_t ip, struct iovec* v, int nv, int segs, uint16_t gsoSize) {
    int m = nmsg_++;
    struct sockaddr_in& a = addrs_[m];
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(ip);
    struct msghdr& h = msgs_[m].msg_hdr;
    memset(&msgs_[m], 0, sizeof msgs_[m]);
    h.msg_name = &a;
    h.msg_namelen = sizeof a;
    h.msg_iov = v;
    h.msg_iovlen = nv;
    if (gsoSize) {
      Cmsg& c = cmsgs_[m];
      memset(&c, 0, sizeof c);
      c.h.cmsg_level = SOL_UDP;
      c.h.cmsg_type = UDP_SEGMENT;
      c.h.cmsg_len = CMSG_LEN(sizeof(uint16_t));
      memcpy(CMSG_DATA(&c.h), &gsoSize, sizeof gsoSize);
      h.msg_control = c.buf;
      h.msg_controllen = sizeof c.buf;
    }
    owner_[m] = owner;
    segsIn_[m] = segs;
  }

  // Result bookkeeping for message m: its datagrams' inner bytes add to the owner's result.
  void Done(int m, ssize_t bytes) {
    int32_t* r = &desc_[owner_[m] * 5 + 4];
    if (bytes < 0) {
      *r = (int32_t)bytes;
      counters_[kTxSendErrors] += segsIn_[m];
      return;
    }
    sent_ += segsIn_[m];
    counters_[kTxDatagrams] += segsIn_[m];
    if (*r >= 0) *r += (int32_t)(bytes - (ssize_t)kVxlanHeader * segsIn_[m]);
  }

  // A UDP GSO message the kernel refused as such: its segments one message each.
  bool SendSplit(int m) {
    struct mmsghdr one[kUdpGsoMaxSegs];
    int n = segsIn_[m];
    struct msghdr& src = msgs_[m].msg_hdr;
    memset(one, 0, sizeof(one[0]) * n);
    for (int j = 0; j < n; j++) {
      one[j].msg_hdr.msg_name = src.msg_name;
      one[j].msg_hdr.msg_namelen = src.msg_namelen;
      one[j].msg_hdr.msg_iov = src.msg_iov + 2 * j;
      one[j].msg_hdr.msg_iovlen = 2;
    }
    int done = 0;
    ssize_t bytes = 0;
    while (done < n) {
      int r = sendmmsg(fd_, one + done, n - done, MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EINTR) continue;
        Done(m, -errno);
        return false;
      }
      for (int k = 0; k < r; k++) bytes += one[done + k].msg_len;
      done += r;
    }
    Done(m, bytes);
    return true;
  }

  void Flush() {
    int done = 0;
    while (done < nmsg_) {
      int r = sendmmsg(fd_, msgs_.data() + done, nmsg_ - done, MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        if (segsIn_[done] > 1 && (err == EINVAL || err == EIO || err == EMSGSIZE || err == ENOPROTOOPT)) {
          // No UDP GSO on this path (old kernel, an underlay device or route that cannot).
          if (SendSplit(done)) {
            udpGso_ = false;
            counters_[kTxUdpGsoFallbacks]++;
          }
        } else {
          Done(done, -err);  // the first message of the rest failed: count it, go on with the others
        }
        done++;
        continue;
      }
      for (int k = 0; k < r; k++) Done(done + k, msgs_[done + k].msg_len);
      done += r;
    }
    Reset();
  }

  int fd_ = -1;
  int port_ = 4789;
  size_t hdr_ = 0;
  size_t defaultMtu_ = 1450;
  bool udpGso_ = true;
  std::unordered_map<uint32_t, uint32_t> mtu_;
  Napi::Reference<Napi::Float64Array> countersRef_;
  double* counters_ = nullptr;
  std::vector<uint8_t> heads_;
  std::vector<struct iovec> iov_;
  std::vector<struct mmsghdr> msgs_;
  std::vector<struct sockaddr_in> addrs_;
  std::vector<Cmsg> cmsgs_;
  std::vector<int> owner_;
  std::vector<int> segsIn_;
  int nmsg_ = 0, niov_ = 0, nhead_ = 0;
  int32_t* desc_ = nullptr;
  int sent_ = 0;
};

void InitUdpIo(Napi::Env env, Napi::Object exports) {
  exports.Set("udpOpen", Napi::Function::New(env, UdpOpen));
  exports.Set("VxlanTx", VxlanTx::Init(env));
  Napi::Object c = Napi::Object::New(env);
  c.Set("count", (uint32_t)VxlanTx::kTxCounterCount);
  c.Set("dropBase", (uint32_t)VxlanTx::kTxDropBase);
  exports.Set("vxlanTxCounters", c);
}

}  // namespace switchyard
