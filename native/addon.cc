// Switchyard's native addon: TAP devices and batched frame I/O. Small and dumb on purpose:
// every forwarding decision is made in TypeScript (src/switch).
#include <napi.h>
#include <sys/resource.h>

#include "batch_io.h"
#include "gso.h"
#include "icmp_socket.h"
#include "udp_io.h"
#include "poller.h"
#include "tap_device.h"
#include "tcp_io.h"

// raiseFdLimit() -> the open-file limit after raising the soft limit to the hard one: every
// NAT flow holds a host socket.
static Napi::Value RaiseFdLimit(const Napi::CallbackInfo& info) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return Napi::Number::New(info.Env(), (double)rl.rlim_cur);
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("raiseFdLimit", Napi::Function::New(env, RaiseFdLimit));
  switchyard::InitTapDevice(env, exports);
  switchyard::InitBatchIo(env, exports);
  switchyard::InitPoller(env, exports);
  switchyard::InitIcmpSocket(env, exports);
  switchyard::InitUdpIo(env, exports);
  switchyard::InitGso(env, exports);
  switchyard::InitTcpIo(env, exports);
  return exports;
}

NODE_API_MODULE(switchyard, Init)
