// The data path of NAT TCP flows without Node's stream machinery: a sandbox's segment is
// written to the host socket straight from the batch slab (sockWrite), the host socket is
// read into a ring that the flow owns in JS (SockReader, no buffer allocated per read), and
// a frame to the sandbox goes to the TAP as two iovecs, headers and payload from the ring
// (writeFrameParts: the payload is not copied into a scratch frame first). The TCP state
// machine stays in TypeScript (src/nat/tcp-flow.ts).
#include "tcp_io.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include "errors.h"

namespace switchyard {

// sockWrite(fd, buf: Uint8Array, offset, length) -> bytes written | -errno (-EAGAIN when the
// socket buffer is full). Never blocks and never raises SIGPIPE.
static Napi::Value SockWrite(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Uint8Array buf = info[1].As<Napi::Uint8Array>();
  size_t off = info[2].As<Napi::Number>().Uint32Value();
  size_t n = info[3].As<Napi::Number>().Uint32Value();
  if (off + n > buf.ByteLength()) return ThrowErrno(info.Env(), ERANGE, "sockWrite");
  ssize_t w;
  do { w = send(fd, buf.Data() + off, n, MSG_DONTWAIT | MSG_NOSIGNAL); } while (w < 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), w < 0 ? -errno : (double)w);
}

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

// new SockReader(fd, ring: Uint8Array, state: Int32Array, onRead(bytes, status))
// Reads a socket into a ring: state[0] is where the ring's data starts, state[1] how many
// bytes it holds; JS takes bytes off the front (acknowledged by the sandbox) and the reader
// appends. The reader watches a dup() of the fd: Node's own handle keeps the original for
// connecting and for writes that had to wait, and libuv allows one watcher per fd.
// onRead gets the bytes read and a status: 0, 1 at end of stream, or -errno; the reader
// stops itself at the end, on an error and when the ring is full (JS starts it again).
class SockReader : public Napi::ObjectWrap<SockReader> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "SockReader",
                       {InstanceMethod("start", &SockReader::Start), InstanceMethod("stop", &SockReader::Stop),
                        InstanceMethod("setRing", &SockReader::SetRing), InstanceMethod("close", &SockReader::Close)});
  }

  explicit SockReader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SockReader>(info) {
    Napi::Env env = info.Env();
    int fd = info[0].As<Napi::Number>().Int32Value();
    Napi::Int32Array state = info[2].As<Napi::Int32Array>();
    if (state.ElementLength() < 2) {
      ErrnoError(env, EINVAL, "SockReader", "state needs 2 elements").ThrowAsJavaScriptException();
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

  ~SockReader() override { CloseHandle(); }

 private:
  void UseRing(Napi::Uint8Array ring) {
    ringRef_ = Napi::Persistent(ring);
    ring_ = ring.Data();
    cap_ = ring.ByteLength();
  }

  static void OnPoll(uv_poll_t* h, int status, int events) {
    SockReader* self = static_cast<SockReader*>(h->data);
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    size_t got = 0;
    int st = status < 0 ? status : self->Fill(&got);
    if (st != 0 || (size_t)self->state_[1] >= self->cap_) uv_poll_stop(h);
    if (got == 0 && st == 0) return;
    self->callback_.MakeCallback(env.Global(), {Napi::Number::New(env, (double)got), Napi::Number::New(env, st)});
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
    uv_poll_stop(handle_);
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    handle_ = nullptr;
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
  uint8_t* ring_ = nullptr;
  size_t cap_ = 0;
  int32_t* state_ = nullptr;
  uv_poll_t* handle_ = nullptr;
  Napi::Reference<Napi::Uint8Array> ringRef_;
  Napi::Reference<Napi::Int32Array> stateRef_;
  Napi::FunctionReference callback_;
};

void InitTcpIo(Napi::Env env, Napi::Object exports) {
  exports.Set("sockWrite", Napi::Function::New(env, SockWrite));
  exports.Set("writeFrameParts", Napi::Function::New(env, WriteFrameParts));
  exports.Set("SockReader", SockReader::Init(env));
}

}  // namespace switchyard
