// Batched reads and writes on TAP fds, into and out of buffers that JS owns.
// One JS->native crossing per batch, never per frame.
#include "batch_io.h"

#include <errno.h>
#include <unistd.h>

#include "errors.h"

namespace switchyard {

int ReadFrames(int fd, uint8_t* slab, size_t slabLen, size_t start, int32_t* meta,
               int maxFrames, size_t frameMax) {
  size_t off = start;
  int n = 0;
  while (n < maxFrames && slabLen >= off + frameMax) {
    ssize_t r = read(fd, slab + off, frameMax);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || n > 0) break;  // a persistent error shows again on the next call
      return -errno;
    }
    meta[2 * n] = (int32_t)off;
    meta[2 * n + 1] = (int32_t)r;
    n++;
    off += ((size_t)r + 7) & ~(size_t)7;  // keep every frame 8-byte aligned
  }
  return n;
}

// readBatch(fd, slab: Uint8Array, start, meta: Int32Array, maxFrames, frameMax) -> count | -errno
static Napi::Value ReadBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Uint8Array slab = info[1].As<Napi::Uint8Array>();
  size_t start = info[2].As<Napi::Number>().Uint32Value();
  Napi::Int32Array meta = info[3].As<Napi::Int32Array>();
  int maxFrames = info[4].As<Napi::Number>().Int32Value();
  size_t frameMax = info[5].As<Napi::Number>().Uint32Value();
  if ((size_t)maxFrames * 2 > meta.ElementLength()) maxFrames = (int)(meta.ElementLength() / 2);
  int n = ReadFrames(fd, slab.Data(), slab.ByteLength(), start, meta.Data(), maxFrames, frameMax);
  return Napi::Number::New(env, n);
}

// writeBatch(slab: Uint8Array, desc: Int32Array, count) -> frames written.
// desc holds (fd, offset, length, result) quadruples; result gets bytes written or -errno,
// so JS can count drops per port without another crossing.
static Napi::Value WriteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array slab = info[0].As<Napi::Uint8Array>();
  Napi::Int32Array desc = info[1].As<Napi::Int32Array>();
  int count = info[2].As<Napi::Number>().Int32Value();
  uint8_t* base = slab.Data();
  size_t len = slab.ByteLength();
  int32_t* d = desc.Data();
  if ((size_t)count * 4 > desc.ElementLength()) count = (int)(desc.ElementLength() / 4);
  int ok = 0;
  for (int i = 0; i < count; i++, d += 4) {
    size_t off = (uint32_t)d[1], n = (uint32_t)d[2];
    if (off + n > len) { d[3] = -EFAULT; continue; }  // defensive: JS already bounds these
    ssize_t w;
    do { w = write(d[0], base + off, n); } while (w < 0 && errno == EINTR);
    if (w < 0) {
      d[3] = -errno;
    } else {
      d[3] = (int32_t)w;
      ok++;
    }
  }
  return Napi::Number::New(env, ok);
}

// writeFrame(fd, buf: Uint8Array, offset, length) -> bytes | -errno. For the control plane
// (gateway replies, tests); the data path uses writeBatch.
static Napi::Value WriteFrame(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Uint8Array buf = info[1].As<Napi::Uint8Array>();
  size_t off = info[2].As<Napi::Number>().Uint32Value();
  size_t n = info[3].As<Napi::Number>().Uint32Value();
  if (off + n > buf.ByteLength()) return ThrowErrno(info.Env(), ERANGE, "writeFrame");
  ssize_t w = write(fd, buf.Data() + off, n);
  return Napi::Number::New(info.Env(), w < 0 ? -errno : (double)w);
}

void InitBatchIo(Napi::Env env, Napi::Object exports) {
  exports.Set("readBatch", Napi::Function::New(env, ReadBatch));
  exports.Set("writeBatch", Napi::Function::New(env, WriteBatch));
  exports.Set("writeFrame", Napi::Function::New(env, WriteFrame));
}

}  // namespace switchyard
