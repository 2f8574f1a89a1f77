// The data path of NAT TCP flows without Node's stream machinery: a sandbox's segment is
// written to the host socket straight from the batch slab (SockPoller.write), the host socket
// is read into a ring that the flow owns in JS (SockPoller, no buffer allocated per read), and
// a frame to the sandbox goes to the TAP as two iovecs, headers and payload from the ring
// (writeFrameParts: the payload is not copied into a scratch frame first). The TCP state
// machine stays in TypeScript (src/nat/tcp-flow.ts).
#include "tcp_io.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include "errors.h"
#include "poller.h"

namespace switchyard {

// writeFrameParts(fd, head: Uint8Array, headLength, data: Uint8Array, offset, length)
// -> bytes | -errno: one frame written from two places (writev); a TAP takes it whole.
static Napi::Value WriteFrameParts(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Uint8Array head = info[1].As<Napi::Uint8Array>();
  size_t hlen = info[2].As<Napi::Number>().Uint32Value();
  Napi::Uint8Array data = info[3].As<Napi::Uint8Array>();
  size_t off = info[4].As<Napi::Number>().Uint32Value();
  size_t n = info[5].As<Napi::Number>().Uint32Value();
  if (hlen > head.ByteLength() || off + n > data.ByteLength()) return ThrowErrno(info.Env(), ERANGE, "writeFrameParts");
  struct iovec iov[2] = {{head.Data(), hlen}, {data.Data() + off, n}};
  ssize_t w;
  do { w = writev(fd, iov, n > 0 ? 2 : 1); } while (w < 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), w < 0 ? -errno : (double)w);
}

// copyBytes(dst: Uint8Array, dstOffset, src: Uint8Array, srcOffset, length): memmove between
// two arrays. In JS the same takes a subarray() view of the source, an object per copy.
static Napi::Value CopyBytes(const Napi::CallbackInfo& info) {
  Napi::Uint8Array dst = info[0].As<Napi::Uint8Array>();
  size_t doff = info[1].As<Napi::Number>().Uint32Value();
  Napi::Uint8Array src = info[2].As<Napi::Uint8Array>();
  size_t soff = info[3].As<Napi::Number>().Uint32Value();
  size_t n = info[4].As<Napi::Number>().Uint32Value();
  if (doff > dst.ByteLength() || n > dst.ByteLength() - doff || soff > src.ByteLength() || n > src.ByteLength() - soff)
    return ThrowErrno(info.Env(), ERANGE, "copyBytes");
  memmove(dst.Data() + doff, src.Data() + soff, n);
  return info.Env().Undefined();
}

// new SockPoller(fd, ring: Uint8Array, state: Int32Array, onEvent(bytes, status))
// Reads a socket into a ring: state[0] is where the ring's data starts, state[1] how many
// bytes it holds; JS takes bytes off the front (acknowledged by the sandbox) and the poller
// appends. It writes to the socket, and while JS has bytes the socket did not take, it says
// when the socket can take more. It works on a dup() of the fd, closed only by close(): Node's
// own handle keeps the original (connecting, shutdown), libuv allows one watcher per fd, and
// a descriptor number Node closed and the kernel gave to someone else is never written to.
// onEvent gets the bytes read and a status: 0, 1 at end of stream, 2 for "writable", or
// -errno. Reading stops by itself at the end, on an error and when the ring is full (JS
// starts it again).
constexpr int kWritable = 2;

class SockPoller : public Napi::ObjectWrap<SockPoller> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "SockPoller",
                       {InstanceMethod("read", &SockPoller::Read), InstanceMethod("write", &SockPoller::Write),
                        InstanceMethod("watchWritable", &SockPoller::WatchWritable),
                        InstanceMethod("setRing", &SockPoller::SetRing), InstanceMethod("close", &SockPoller::Close)});
  }

  explicit SockPoller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SockPoller>(info) {
    Napi::Env env = info.Env();
    int fd = info[0].As<Napi::Number>().Int32Value();
    Napi::Int32Array state = info[2].As<Napi::Int32Array>();
    if (state.ElementLength() < 2) {
      ErrnoError(env, EINVAL, "SockPoller", "state needs 2 elements").ThrowAsJavaScriptException();
      return;
    }
    stateRef_ = Napi::Persistent(state);
    state_ = state.Data();
    UseRing(info[1].As<Napi::Uint8Array>());
    callback_ = Napi::Persistent(info[3].As<Napi::Function>());
    fd_ = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (fd_ < 0) {
      ErrnoError(env, errno, "fcntl(F_DUPFD_CLOEXEC)").ThrowAsJavaScriptException();
      return;
    }
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    handle_ = new uv_poll_t;
    int r = uv_poll_init(loop, handle_, fd_);
    if (r < 0) {
      delete handle_;
      handle_ = nullptr;
      close(fd_);
      fd_ = -1;
      ErrnoError(env, -r, "uv_poll_init").ThrowAsJavaScriptException();
      return;
    }
    handle_->data = this;
  }

  ~SockPoller() override { CloseHandle(); }

 private:
  void UseRing(Napi::Uint8Array ring) {
    ringRef_ = Napi::Persistent(ring);
    ring_ = ring.Data();
    cap_ = ring.ByteLength();
  }

  static void OnPoll(uv_poll_t* h, int status, int events) {
    SockPoller* self = static_cast<SockPoller*>(h->data);
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    if (status < 0) {
      self->reading_ = self->writing_ = false;
      self->Watch();
      self->Call(env, 0, status);
      return;
    }
    // Writes first: the callback may close the poller, so check before reading.
    if (events & UV_WRITABLE && self->writing_) {
      self->Call(env, 0, kWritable);
      if (!self->handle_ || env.IsExceptionPending()) return;
    }
    if (!(events & UV_READABLE) || !self->reading_) return;
    size_t got = 0;
    int st = self->Fill(&got);
    if (st != 0 || (size_t)self->state_[1] >= self->cap_) {
      self->reading_ = false;
      self->Watch();
    }
    if (got > 0 || st != 0) self->Call(env, got, st);
  }

  void Call(Napi::Env env, size_t got, int st) {
    StampBatchClock();
    callback_.MakeCallback(env.Global(), {Napi::Number::New(env, (double)got), Napi::Number::New(env, st)});
  }

  // Polls for what is wanted now: reading, writability, both, or nothing.
  int Watch() {
    if (!handle_) return -EBADF;
    int ev = (reading_ ? UV_READABLE : 0) | (writing_ ? UV_WRITABLE : 0);
    return ev ? uv_poll_start(handle_, ev, OnPoll) : uv_poll_stop(handle_);
  }

  // Reads into the ring's free space (up to two pieces when it wraps) until the socket has no
  // more or the ring is full. Returns 0, 1 at end of stream, or -errno.
  int Fill(size_t* got) {
    while (true) {
      size_t head = (size_t)state_[0], count = (size_t)state_[1];
      if (count >= cap_) return 0;
      size_t tail = (head + count) % cap_;
      struct iovec iov[2];
      int n = 1;
      if (tail >= head) {
        iov[0] = {ring_ + tail, cap_ - tail};
        if (head > 0) iov[n++] = {ring_, head};
      } else {
        iov[0] = {ring_ + tail, head - tail};
      }
      size_t room = cap_ - count;
      ssize_t r = readv(fd_, iov, n);
      if (r < 0) {
        if (errno == EINTR) continue;
        return errno == EAGAIN ? 0 : -errno;
      }
      if (r == 0) return 1;
      state_[1] = (int32_t)(count + (size_t)r);
      *got += (size_t)r;
      if ((size_t)r < room) return 0;  // the socket had less than the room: it is drained
    }
  }

  // read(on): reading starts (again) or stops.
  Napi::Value Read(const Napi::CallbackInfo& info) {
    reading_ = info[0].As<Napi::Boolean>().Value();
    int r = Watch();
    if (r < 0) return ThrowErrno(info.Env(), -r, "uv_poll_start");
    return info.Env().Undefined();
  }

  // write(buf: Uint8Array, offset, length) -> bytes written | -errno (-EAGAIN when the socket
  // buffer is full). Never blocks and never raises SIGPIPE.
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Uint8Array buf = info[0].As<Napi::Uint8Array>();
    size_t off = info[1].As<Napi::Number>().Uint32Value();
    size_t n = info[2].As<Napi::Number>().Uint32Value();
    if (off + n > buf.ByteLength()) return ThrowErrno(info.Env(), ERANGE, "SockPoller.write");
    if (fd_ < 0) return Napi::Number::New(info.Env(), -EBADF);
    ssize_t w;
    do { w = send(fd_, buf.Data() + off, n, MSG_DONTWAIT | MSG_NOSIGNAL); } while (w < 0 && errno == EINTR);
    return Napi::Number::New(info.Env(), w < 0 ? -errno : (double)w);
  }

  // watchWritable(on): say (once per readiness) when the socket can take more.
  Napi::Value WatchWritable(const Napi::CallbackInfo& info) {
    writing_ = info[0].As<Napi::Boolean>().Value();
    int r = Watch();
    if (r < 0) return ThrowErrno(info.Env(), -r, "uv_poll_start");
    return info.Env().Undefined();
  }

  // setRing(ring): a larger ring; JS has moved the data (state describes the new one).
  Napi::Value SetRing(const Napi::CallbackInfo& info) {
    UseRing(info[0].As<Napi::Uint8Array>());
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseHandle();
    return info.Env().Undefined();
  }

  void CloseHandle() {
    if (!handle_) return;
    ClosePollHandle(handle_);
    close(fd_);
    fd_ = -1;
    // The callback holds the flow: let both go now rather than when this object is collected.
    callback_.Reset();
    ringRef_.Reset();
    stateRef_.Reset();
    ring_ = nullptr;
    cap_ = 0;
  }

  int fd_ = -1;
  bool reading_ = false;
  bool writing_ = false;
  uint8_t* ring_ = nullptr;
  size_t cap_ = 0;
  int32_t* state_ = nullptr;
  uv_poll_t* handle_ = nullptr;
  Napi::Reference<Napi::Uint8Array> ringRef_;
  Napi::Reference<Napi::Int32Array> stateRef_;
  Napi::FunctionReference callback_;
};

void InitTcpIo(Napi::Env env, Napi::Object exports) {
  exports.Set("writeFrameParts", Napi::Function::New(env, WriteFrameParts));
  exports.Set("copyBytes", Napi::Function::New(env, CopyBytes));
  exports.Set("SockPoller", SockPoller::Init(env));
  exports.Set("SOCK_WRITABLE", Napi::Number::New(env, kWritable));
}

}  // namespace switchyard
