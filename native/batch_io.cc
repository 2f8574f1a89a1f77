// Batched reads and writes on TAP fds, into and out of buffers that JS owns.
// One JS->native crossing per batch, never per frame.
#include "batch_io.h"

#include <errno.h>
#include <liburing.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

#include "errors.h"

namespace switchyard {

// A system call costs ~1.6 us on this kind of VM (page-table isolation), more than the
// switch's own work on a small frame, and a TAP gives one frame per read(2) and takes one
// per write(2). io_uring runs many of those reads and writes in one io_uring_enter. With
// RWF_NOWAIT each one runs inline, in submission order, and an empty queue answers EAGAIN
// instead of leaving a read armed: frames come out in the order the TAP queued them, as
// with read(2). Without io_uring (old kernel, disabled by sysctl) the plain loops below run.
namespace {

struct Ring {
  struct io_uring ring;
  int state = 0;  // 0 untried, 1 ready, -1 unavailable
  ~Ring() {
    if (state > 0) io_uring_queue_exit(&ring);
  }
};
thread_local Ring t_ring;
constexpr unsigned kRingEntries = 256;

struct io_uring* GetRing() {
  if (t_ring.state == 0) t_ring.state = io_uring_queue_init(kRingEntries, &t_ring.ring, 0) == 0 ? 1 : -1;
  return t_ring.state > 0 ? &t_ring.ring : nullptr;
}

// Submits what is queued and collects `k` results into res[user_data].
bool Complete(struct io_uring* ring, int k, int32_t* res) {
  int r;
  do { r = io_uring_submit_and_wait(ring, (unsigned)k); } while (r == -EINTR);
  if (r < 0) return false;
  for (int got = 0; got < k;) {
    struct io_uring_cqe* cqe;
    r = io_uring_wait_cqe(ring, &cqe);
    if (r == -EINTR) continue;
    if (r < 0) return false;
    res[cqe->user_data] = cqe->res;
    io_uring_cqe_seen(ring, cqe);
    got++;
  }
  return true;
}

// Queues a read of up to `len` bytes into `buf` that answers EAGAIN at once on an empty queue;
// its result goes to res[tag] (see Complete).
void QueueRead(struct io_uring* ring, int fd, uint8_t* buf, size_t len, int tag) {
  struct io_uring_sqe* sqe = io_uring_get_sqe(ring);
  io_uring_prep_read(sqe, fd, buf, (unsigned)len, 0);
  sqe->rw_flags = RWF_NOWAIT;
  io_uring_sqe_set_data64(sqe, (uint64_t)tag);
}

// Reads are tried in chunks: a chunk that meets an empty queue ends the batch, so a batch of
// a few frames costs a few empty tries rather than maxFrames of them.
constexpr int kReadChunk = 16;

int ReadFramesRing(struct io_uring* ring, int fd, uint8_t* slab, size_t slabLen, size_t start,
                   int32_t* meta, int maxFrames, size_t frameMax) {
  // Each read needs its slot before it runs, so frames sit at fixed strides here.
  size_t slots = (slabLen - start) / frameMax;
  if ((size_t)maxFrames > slots) maxFrames = (int)slots;
  int32_t res[kReadChunk];
  int n = 0;
  while (n < maxFrames) {
    int k = std::min(kReadChunk, maxFrames - n);
    for (int i = 0; i < k; i++) QueueRead(ring, fd, slab + start + (size_t)(n + i) * frameMax, frameMax, i);
    if (!Complete(ring, k, res)) return n > 0 ? n : -EIO;
    bool empty = false;
    int base = n;
    for (int i = 0; i < k; i++) {
      int32_t r = res[i];
      if (r < 0) {
        if (r == -EAGAIN) {
          empty = true;
          continue;
        }
        if (n > 0) return n;  // a persistent error shows again on the next call
        return r;
      }
      meta[2 * n] = (int32_t)(start + (size_t)(base + i) * frameMax);
      meta[2 * n + 1] = r;
      n++;
    }
    if (empty) break;
  }
  return n;
}

}  // namespace

bool ReadOneEach(const int* fds, uint8_t* const* bufs, const size_t* lens, int count, int32_t* res) {
  struct io_uring* ring = count > 0 && count <= (int)kRingEntries ? GetRing() : nullptr;
  if (!ring) return false;
  for (int i = 0; i < count; i++) QueueRead(ring, fds[i], bufs[i], lens[i], i);
  return Complete(ring, count, res);
}

int ReadFrames(int fd, uint8_t* slab, size_t slabLen, size_t start, int32_t* meta,
               int maxFrames, size_t frameMax) {
  // One frame wanted (light traffic) is one read(2): nothing to batch.
  struct io_uring* ring = maxFrames > 1 ? GetRing() : nullptr;
  if (ring && slabLen >= start + 2 * frameMax) {
    int n = ReadFramesRing(ring, fd, slab, slabLen, start, meta, maxFrames, frameMax);
    // Nothing read although the fd polled readable: a file that cannot do RWF_NOWAIT says
    // EAGAIN to every try; one plain read(2) below tells the two apart.
    if (n != 0) return n;
    maxFrames = 1;
  }
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

// One frame by write(2): bytes written or -errno.
static int32_t WriteOne(int fd, const uint8_t* p, size_t n) {
  ssize_t w;
  do { w = write(fd, p, n); } while (w < 0 && errno == EINTR);
  return w < 0 ? -errno : (int32_t)w;
}

// Writes `count` (fd, offset, length, result) descriptors through the ring, a chunk per
// io_uring_enter; -1 when the ring itself failed (nothing reported yet).
static int WriteFramesRing(struct io_uring* ring, uint8_t* base, size_t len, int32_t* desc, int count) {
  constexpr int kChunk = 128;
  int32_t res[kChunk];
  int ok = 0;
  for (int done = 0; done < count;) {
    int k = std::min(kChunk, count - done);
    int32_t* d = desc + 4 * done;
    int queued = 0;
    for (int i = 0; i < k; i++) {
      size_t off = (uint32_t)d[4 * i + 1], n = (uint32_t)d[4 * i + 2];
      if (off + n > len) {  // defensive: JS already bounds these
        res[i] = -EFAULT;
        continue;
      }
      struct io_uring_sqe* sqe = io_uring_get_sqe(ring);
      io_uring_prep_write(sqe, d[4 * i], base + off, (unsigned)n, 0);
      sqe->rw_flags = RWF_NOWAIT;
      io_uring_sqe_set_data64(sqe, (uint64_t)i);
      queued++;
    }
    if (queued > 0 && !Complete(ring, queued, res)) return done == 0 ? -1 : ok;
    for (int i = 0; i < k; i++) {
      int32_t r = res[i];
      // A file that cannot do RWF_NOWAIT says EAGAIN or EOPNOTSUPP: write(2) it as before.
      if (r == -EAGAIN || r == -EOPNOTSUPP) r = WriteOne(d[4 * i], base + (uint32_t)d[4 * i + 1], (uint32_t)d[4 * i + 2]);
      d[4 * i + 3] = r;
      if (r >= 0) ok++;
    }
    done += k;
  }
  return ok;
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
  if (struct io_uring* ring = count > 1 ? GetRing() : nullptr) {
    ok = WriteFramesRing(ring, base, len, d, count);
    if (ok >= 0) return Napi::Number::New(env, ok);
    ok = 0;  // the ring failed as a whole: every frame goes by write(2)
  }
  for (int i = 0; i < count; i++, d += 4) {
    size_t off = (uint32_t)d[1], n = (uint32_t)d[2];
    if (off + n > len) { d[3] = -EFAULT; continue; }  // defensive: JS already bounds these
    d[3] = WriteOne(d[0], base + off, n);
    if (d[3] >= 0) ok++;
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
