// Switchyard's native addon: TAP devices and batched frame I/O. Small and dumb on purpose:
// every forwarding decision is made in TypeScript (src/switch).
#include <napi.h>

#include "batch_io.h"
#include "icmp_socket.h"
#include "udp_io.h"
#include "poller.h"
#include "tap_device.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  switchyard::InitTapDevice(env, exports);
  switchyard::InitBatchIo(env, exports);
  switchyard::InitPoller(env, exports);
  switchyard::InitIcmpSocket(env, exports);
  switchyard::InitUdpIo(env, exports);
  return exports;
}

NODE_API_MODULE(switchyard, Init)
