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

void InitBatchIo(Napi::Env env, Napi::Object exports);

}  // namespace switchyard
