#pragma once
#include <napi.h>
#include <stddef.h>
#include <stdint.h>

namespace switchyard {

// Receives up to maxMsgs messages with one recvmmsg: message i lands at
// slab[i * slotSize + headroom]; meta gets (offset, headroom + length) pairs of the frames
// (a train of datagrams read as one message becomes one coalesced frame or several; up to
// frameCap) and srcs each frame's sender IPv4 address. Returns the frame count or -errno.
int ReadDatagrams(int fd, uint8_t* slab, size_t slabLen, int32_t* meta, uint32_t* srcs, int maxMsgs,
                  int frameCap, size_t slotSize, size_t headroom);

void InitUdpIo(Napi::Env env, Napi::Object exports);

}  // namespace switchyard
