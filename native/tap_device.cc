// Opening and configuring TAP devices. Configuration (addresses, moves between namespaces)
// is left to iproute2 in the control plane; this file only does what needs the tun fd.
#include "tap_device.h"

#include <fcntl.h>
#include <net/if.h>  // glibc's, not linux/if.h: the two clash
#include <linux/if_tun.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <string>

#include "errors.h"

namespace switchyard {

// Flags understood by tapOpen; mirrored in src/native/binding.ts.
enum TapFlags : uint32_t {
  kVnetHdr = 1,      // IFF_VNET_HDR + 12-byte header + TSO/CSUM offloads
  kPersist = 2,      // device outlives the fd (survives a daemon crash)
  kMultiQueue = 4,   // IFF_MULTI_QUEUE
  kAttachOnly = 8,   // fail with ENODEV instead of creating the device
  kCreateOnly = 16,  // fail with EBUSY if the device exists (IFF_TUN_EXCL)
  kNoOffload = 32,   // with kVnetHdr: no TSO/checksum offload (frames leave over a tunnel)
};

// struct virtio_net_hdr (no num_buffers): the size packet sockets use too, so frames pass
// between TAP ports and packet-socket ports without moving bytes.
constexpr int kVnetHdrSize = 10;

// Opens /dev/net/tun inside the namespace at nsPath: the tun file's namespace is the
// one of the opener, and TUNSETIFF looks the device name up there.
static int OpenTunIn(const char* nsPath, const char* ifname, bool mustExist, int* errOut,
                     const char** syscallOut) {
  int self = -1, target = -1, fd = -1;
  if (nsPath) {
    self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0) { *errOut = errno; *syscallOut = "open(/proc/thread-self/ns/net)"; return -1; }
    target = open(nsPath, O_RDONLY | O_CLOEXEC);
    if (target < 0) { *errOut = errno; *syscallOut = "open(netns)"; close(self); return -1; }
    if (setns(target, CLONE_NEWNET) < 0) {
      *errOut = errno; *syscallOut = "setns"; close(self); close(target); return -1;
    }
  }
  if (mustExist && if_nametoindex(ifname) == 0) {
    *errOut = ENODEV; *syscallOut = "if_nametoindex";
  } else {
    fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) { *errOut = errno; *syscallOut = "open(/dev/net/tun)"; }
  }
  if (nsPath) {
    // Going back cannot reasonably fail (we hold the fd); if it does, the thread would
    // be stranded in the wrong namespace, which is worse than aborting.
    if (setns(self, CLONE_NEWNET) < 0) abort();
    close(self);
    close(target);
  }
  return fd;
}

// tapOpen(name, flags, netnsPath?) -> { fd, name, vnetHdrSize }
static Napi::Value TapOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  uint32_t flags = info[1].As<Napi::Number>().Uint32Value();
  std::string ns;
  bool haveNs = info.Length() > 2 && info[2].IsString();
  if (haveNs) ns = info[2].As<Napi::String>().Utf8Value();
  if (name.empty() || name.size() >= IFNAMSIZ) return ThrowErrno(env, EINVAL, "tapOpen", name.c_str());

  int err = 0;
  const char* syscall = "";
  int fd = OpenTunIn(haveNs ? ns.c_str() : nullptr, name.c_str(), flags & kAttachOnly, &err, &syscall);
  if (fd < 0) return ThrowErrno(env, err, syscall, name.c_str());

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (flags & kVnetHdr) ifr.ifr_flags |= IFF_VNET_HDR;
  if (flags & kMultiQueue) ifr.ifr_flags |= IFF_MULTI_QUEUE;
  if (flags & kCreateOnly) ifr.ifr_flags |= IFF_TUN_EXCL;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    err = errno; close(fd); return ThrowErrno(env, err, "ioctl(TUNSETIFF)", name.c_str());
  }
  if (flags & kVnetHdr) {
    int sz = kVnetHdrSize;
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) {
      err = errno; close(fd); return ThrowErrno(env, err, "ioctl(TUNSETVNETHDRSZ)", name.c_str());
    }
    unsigned off = (flags & kNoOffload) ? 0 : TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    if (ioctl(fd, TUNSETOFFLOAD, off) < 0) {
      err = errno; close(fd); return ThrowErrno(env, err, "ioctl(TUNSETOFFLOAD)", name.c_str());
    }
  }
  if (ioctl(fd, TUNSETPERSIST, (flags & kPersist) ? 1 : 0) < 0) {
    err = errno; close(fd); return ThrowErrno(env, err, "ioctl(TUNSETPERSIST)", name.c_str());
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", fd);
  out.Set("name", std::string(ifr.ifr_name));
  out.Set("vnetHdrSize", (flags & kVnetHdr) ? kVnetHdrSize : 0);
  return out;
}

// packetOpen(ifname, netnsPath?) -> fd: an AF_PACKET socket on a device someone else holds
// (a hypervisor's TAP), with virtio-net headers, not seeing its own transmissions.
static Napi::Value PacketOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  std::string ns;
  bool haveNs = info.Length() > 1 && info[1].IsString();
  if (haveNs) ns = info[1].As<Napi::String>().Utf8Value();
  int self = -1, target = -1;
  if (haveNs) {
    self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    target = self < 0 ? -1 : open(ns.c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0 || setns(target, CLONE_NEWNET) < 0) {
      int err = errno;
      if (self >= 0) close(self);
      if (target >= 0) close(target);
      return ThrowErrno(env, err, "setns", ns.c_str());
    }
  }
  int err = 0;
  const char* syscall = "";
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
  unsigned idx = if_nametoindex(name.c_str());
  if (fd < 0) {
    err = errno;
    syscall = "socket(AF_PACKET)";
  } else if (idx == 0) {
    err = ENODEV;
    syscall = "if_nametoindex";
  }
  if (haveNs) {
    if (setns(self, CLONE_NEWNET) < 0) abort();
    close(self);
    close(target);
  }
  if (err) {
    if (fd >= 0) close(fd);
    return ThrowErrno(env, err, syscall, name.c_str());
  }
  int one = 1;
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = (int)idx;
  if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0) { err = errno; syscall = "setsockopt(PACKET_VNET_HDR)"; }
  else if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0) { err = errno; syscall = "setsockopt(PACKET_IGNORE_OUTGOING)"; }
  else if (bind(fd, reinterpret_cast<struct sockaddr*>(&sll), sizeof sll) < 0) { err = errno; syscall = "bind(AF_PACKET)"; }
  if (err) {
    close(fd);
    return ThrowErrno(env, err, syscall, name.c_str());
  }
  return Napi::Number::New(env, fd);
}

// tapSetPersist(fd, on): a port removed on purpose must not outlive the daemon.
static Napi::Value TapSetPersist(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  int on = info[1].ToBoolean() ? 1 : 0;
  if (ioctl(fd, TUNSETPERSIST, on) < 0) return ThrowErrno(info.Env(), errno, "ioctl(TUNSETPERSIST)");
  return info.Env().Undefined();
}

static Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (close(fd) < 0) return ThrowErrno(info.Env(), errno, "close");
  return info.Env().Undefined();
}

void InitTapDevice(Napi::Env env, Napi::Object exports) {
  exports.Set("tapOpen", Napi::Function::New(env, TapOpen));
  exports.Set("tapSetPersist", Napi::Function::New(env, TapSetPersist));
  exports.Set("packetOpen", Napi::Function::New(env, PacketOpen));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  Napi::Object f = Napi::Object::New(env);
  f.Set("VNET_HDR", (uint32_t)kVnetHdr);
  f.Set("PERSIST", (uint32_t)kPersist);
  f.Set("MULTI_QUEUE", (uint32_t)kMultiQueue);
  f.Set("ATTACH_ONLY", (uint32_t)kAttachOnly);
  f.Set("CREATE_ONLY", (uint32_t)kCreateOnly);
  f.Set("NO_OFFLOAD", (uint32_t)kNoOffload);
  exports.Set("tapFlags", f);
  exports.Set("VNET_HDR_SIZE", kVnetHdrSize);
}

}  // namespace switchyard
