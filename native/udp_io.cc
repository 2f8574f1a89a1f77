// Batched UDP for the overlay: recvmmsg into the switch's slab (with room in front of each
// datagram for the frame's virtio-net header) and sendmmsg of VXLAN-encapsulated frames
// straight from the slab, the 8-byte VXLAN header in its own iovec: no copy of the frame.
#include "udp_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "errors.h"

namespace switchyard {

constexpr int kBatch = 64;
constexpr int kVxlanHeader = 8;

int ReadDatagrams(int fd, uint8_t* slab, size_t slabLen, int32_t* meta, uint32_t* srcs, int maxFrames,
                  size_t slotSize, size_t headroom) {
  struct mmsghdr msgs[kBatch];
  struct iovec iov[kBatch];
  struct sockaddr_in addr[kBatch];
  int n = maxFrames < kBatch ? maxFrames : kBatch;
  if ((size_t)n * slotSize > slabLen) n = (int)(slabLen / slotSize);
  if (n <= 0 || slotSize <= headroom) return -EINVAL;
  memset(msgs, 0, sizeof(msgs[0]) * n);
  for (int i = 0; i < n; i++) {
    iov[i].iov_base = slab + (size_t)i * slotSize + headroom;
    iov[i].iov_len = slotSize - headroom;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &addr[i];
    msgs[i].msg_hdr.msg_namelen = sizeof addr[i];
  }
  int r;
  do { r = recvmmsg(fd, msgs, n, MSG_DONTWAIT, nullptr); } while (r < 0 && errno == EINTR);
  if (r < 0) return errno == EAGAIN ? 0 : -errno;
  for (int i = 0; i < r; i++) {
    meta[2 * i] = (int32_t)((size_t)i * slotSize);
    // A datagram cut short by the slot is reported as such (MSG_TRUNC): JS drops it.
    meta[2 * i + 1] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : (int32_t)(headroom + msgs[i].msg_len);
    srcs[i] = ntohl(addr[i].sin_addr.s_addr);
  }
  return r;
}

// udpOpen(ipv4 as uint32, port) -> fd, bound, non-blocking, with large buffers.
static Napi::Value UdpOpen(const Napi::CallbackInfo& info) {
  uint32_t ip = info[0].As<Napi::Number>().Uint32Value();
  int port = info[1].As<Napi::Number>().Int32Value();
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(info.Env(), errno, "socket(AF_INET, SOCK_DGRAM)");
  int buf = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
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

// vxlanSendBatch(fd, slab, desc: Int32Array, count, dstPort, hdr) -> datagrams sent.
// desc holds (vtep ip, vni, offset, length, result) quintuples; offset/length cover the
// frame with its `hdr`-byte virtio-net header, which is not sent.
static Napi::Value VxlanSendBatch(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Uint8Array slab = info[1].As<Napi::Uint8Array>();
  Napi::Int32Array descArr = info[2].As<Napi::Int32Array>();
  int count = info[3].As<Napi::Number>().Int32Value();
  int port = info[4].As<Napi::Number>().Int32Value();
  size_t hdr = info[5].As<Napi::Number>().Uint32Value();
  int32_t* desc = descArr.Data();
  if ((size_t)count * 5 > descArr.ElementLength()) count = (int)(descArr.ElementLength() / 5);
  uint8_t heads[kBatch][kVxlanHeader];
  struct iovec iov[kBatch][2];
  struct sockaddr_in addr[kBatch];
  struct mmsghdr msgs[kBatch];
  int sent = 0;
  for (int base = 0; base < count; base += kBatch) {
    int n = count - base < kBatch ? count - base : kBatch;
    int m = 0;
    int idx[kBatch];
    for (int i = 0; i < n; i++) {
      int32_t* d = desc + (base + i) * 5;
      size_t off = (uint32_t)d[2], len = (uint32_t)d[3];
      if (len <= hdr || off + len > slab.ByteLength()) {
        d[4] = -EINVAL;
        continue;
      }
      uint32_t vni = (uint32_t)d[1];
      memset(heads[m], 0, kVxlanHeader);
      heads[m][0] = 0x08;  // I flag: the VNI is valid
      heads[m][4] = (vni >> 16) & 0xff;
      heads[m][5] = (vni >> 8) & 0xff;
      heads[m][6] = vni & 0xff;
      iov[m][0].iov_base = heads[m];
      iov[m][0].iov_len = kVxlanHeader;
      iov[m][1].iov_base = slab.Data() + off + hdr;
      iov[m][1].iov_len = len - hdr;
      memset(&addr[m], 0, sizeof addr[m]);
      addr[m].sin_family = AF_INET;
      addr[m].sin_port = htons(port);
      addr[m].sin_addr.s_addr = htonl((uint32_t)d[0]);
      memset(&msgs[m], 0, sizeof msgs[m]);
      msgs[m].msg_hdr.msg_iov = iov[m];
      msgs[m].msg_hdr.msg_iovlen = 2;
      msgs[m].msg_hdr.msg_name = &addr[m];
      msgs[m].msg_hdr.msg_namelen = sizeof addr[m];
      idx[m++] = base + i;
    }
    int done = 0;
    while (done < m) {
      int r = sendmmsg(fd, msgs + done, m - done, MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        // The first message of the rest failed: count it and go on with the others.
        desc[idx[done] * 5 + 4] = -err;
        done++;
        continue;
      }
      for (int k = 0; k < r; k++) desc[idx[done + k] * 5 + 4] = (int32_t)msgs[done + k].msg_len;
      sent += r;
      done += r;
    }
  }
  return Napi::Number::New(info.Env(), sent);
}

void InitUdpIo(Napi::Env env, Napi::Object exports) {
  exports.Set("udpOpen", Napi::Function::New(env, UdpOpen));
  exports.Set("vxlanSendBatch", Napi::Function::New(env, VxlanSendBatch));
}

}  // namespace switchyard
