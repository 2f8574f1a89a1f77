// Readiness of a port's fd, driven by Node's own libuv loop. When the fd is readable the
// poller reads a whole batch into the shared slab and calls JS once with the count, so a
// batch costs one crossing in each direction.
#include "poller.h"

#include <uv.h>

#include "batch_io.h"
#include "errors.h"

namespace switchyard {

class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Poller",
                       {InstanceMethod("start", &Poller::Start), InstanceMethod("stop", &Poller::Stop),
                        InstanceMethod("close", &Poller::Close)});
  }

  // new Poller(fd, slab: Uint8Array, meta: Int32Array, maxFrames, frameMax, onBatch(count))
  // onBatch gets the frame count, or a negative errno when the fd failed (port gone).
  explicit Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info) {
    Napi::Env env = info.Env();
    fd_ = info[0].As<Napi::Number>().Int32Value();
    Napi::Uint8Array slab = info[1].As<Napi::Uint8Array>();
    Napi::Int32Array meta = info[2].As<Napi::Int32Array>();
    maxFrames_ = info[3].As<Napi::Number>().Int32Value();
    frameMax_ = info[4].As<Napi::Number>().Uint32Value();
    slabRef_ = Napi::Persistent(slab);
    metaRef_ = Napi::Persistent(meta);
    slab_ = slab.Data();
    slabLen_ = slab.ByteLength();
    meta_ = meta.Data();
    if ((size_t)maxFrames_ * 2 > meta.ElementLength()) maxFrames_ = (int)(meta.ElementLength() / 2);
    callback_ = Napi::Persistent(info[5].As<Napi::Function>());
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    handle_ = new uv_poll_t;
    int r = uv_poll_init(loop, handle_, fd_);
    if (r < 0) {
      delete handle_;
      handle_ = nullptr;
      ErrnoError(env, -r, "uv_poll_init").ThrowAsJavaScriptException();
      return;
    }
    handle_->data = this;
  }

  ~Poller() override { CloseHandle(); }

 private:
  static void OnPoll(uv_poll_t* h, int status, int events) {
    Poller* self = static_cast<Poller*>(h->data);
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    int n;
    if (status < 0) {
      n = status;  // libuv errors are negative errno values already
    } else {
      n = ReadFrames(self->fd_, self->slab_, self->slabLen_, 0, self->meta_, self->maxFrames_, self->frameMax_);
      if (n == 0) return;
    }
    if (n < 0) uv_poll_stop(h);  // a failed fd would spin the loop; JS decides what comes next
    self->callback_.MakeCallback(env.Global(), {Napi::Number::New(env, n)});
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (!handle_) return ThrowErrno(info.Env(), EBADF, "uv_poll_start");
    int r = uv_poll_start(handle_, UV_READABLE, OnPoll);
    if (r < 0) return ThrowErrno(info.Env(), -r, "uv_poll_start");
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (handle_) uv_poll_stop(handle_);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseHandle();
    return info.Env().Undefined();
  }

  void CloseHandle() {
    if (!handle_) return;
    uv_poll_stop(handle_);
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    handle_ = nullptr;
  }

  int fd_ = -1;
  uint8_t* slab_ = nullptr;
  size_t slabLen_ = 0;
  int32_t* meta_ = nullptr;
  int maxFrames_ = 0;
  size_t frameMax_ = 0;
  uv_poll_t* handle_ = nullptr;
  Napi::Reference<Napi::Uint8Array> slabRef_;
  Napi::Reference<Napi::Int32Array> metaRef_;
  Napi::FunctionReference callback_;
};

void InitPoller(Napi::Env env, Napi::Object exports) { exports.Set("Poller", Poller::Init(env)); }

}  // namespace switchyard
