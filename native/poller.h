#pragma once
#include <napi.h>
#include <uv.h>

namespace switchyard {
void InitPoller(Napi::Env env, Napi::Object exports);

// Writes the wall-clock time into the cell JS registered with setBatchClock (if any); called
// before JS gets frames or host-socket data, so JS reads the time without Date.now().
void StampBatchClock();

// Stops and closes a poll handle; libuv frees it once the loop is done with it.
inline void ClosePollHandle(uv_poll_t*& handle) {
  if (!handle) return;
  uv_poll_stop(handle);
  uv_close(reinterpret_cast<uv_handle_t*>(handle), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  handle = nullptr;
}
}  // namespace switchyard
