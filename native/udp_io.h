#pragma once
#include <napi.h>
#include <stddef.h>
#include <stdint.h>

namespace switchyard {

// Receives up to maxFrames datagrams with one recvmmsg: datagram i lands at
// slab[i * slotSize + headroom]; meta gets (i * slotSize, headroom + length) pairs and srcs
// the sender's IPv4 address. Returns the count or -errno.
int ReadDatagrams(int fd, uint8_t* slab, size_t slabLen, int32_t* meta, uint32_t* srcs, int maxFrames,
                  size_t slotSize, size_t headroom);

void InitUdpIo(Napi::Env env, Napi::Object exports);

}  // namespace switchyard
