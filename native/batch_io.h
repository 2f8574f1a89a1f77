#pragma once
#include <napi.h>
#include <stddef.h>
#include <stdint.h>

namespace switchyard {

// Reads frames from a non-blocking fd into slab[start..] until EAGAIN, maxFrames, or the
// slab has less than frameMax bytes left. meta gets (offset, length) pairs.
// Returns the count, or -errno when the very first read fails.
int ReadFrames(int fd, uint8_t* slab, size_t slabLen, size_t start, int32_t* meta,
               int maxFrames, size_t frameMax);

// Tries one read on each of `count` fds in one io_uring_enter, each with RWF_NOWAIT into
// bufs[i] (lens[i] bytes): res[i] gets the length, -EAGAIN when that queue is empty, or
// -errno. Returns false when io_uring is unavailable (nothing was read).
bool ReadOneEach(const int* fds, uint8_t* const* bufs, const size_t* lens, int count, int32_t* res);

void InitBatchIo(Napi::Env env, Napi::Object exports);

}  // namespace switchyard
