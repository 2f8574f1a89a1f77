// A raw ICMP socket for carrying sandboxes' echo requests out through the host: Node has no
// raw sockets. Reads come through the Poller like TAP frames (one IPv4 packet per read).
#include "icmp_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "errors.h"

namespace switchyard {

// icmpOpen() -> fd
static Napi::Value IcmpOpen(const Napi::CallbackInfo& info) {
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (fd < 0) return ThrowErrno(info.Env(), errno, "socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)");
  return Napi::Number::New(info.Env(), fd);
}

// sendTo(fd, buf, offset, length, ipv4 as uint32) -> bytes | -errno
static Napi::Value SendTo(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Uint8Array buf = info[1].As<Napi::Uint8Array>();
  size_t off = info[2].As<Napi::Number>().Uint32Value();
  size_t n = info[3].As<Napi::Number>().Uint32Value();
  uint32_t ip = info[4].As<Napi::Number>().Uint32Value();
  if (off + n > buf.ByteLength()) return ThrowErrno(info.Env(), ERANGE, "sendTo");
  struct sockaddr_in sa = {};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(ip);
  ssize_t w = sendto(fd, buf.Data() + off, n, 0, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa);
  return Napi::Number::New(info.Env(), w < 0 ? -errno : (double)w);
}

void InitIcmpSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("icmpOpen", Napi::Function::New(env, IcmpOpen));
  exports.Set("sendTo", Napi::Function::New(env, SendTo));
}

}  // namespace switchyard
