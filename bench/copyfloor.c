// The copy floor of a TAP-based switch: every byte crosses user space twice (read from one
// TAP, write to another), so the switch's CPU per Gbit can never be below two memcpy of it.
// Prints the memcpy rate for 64 KiB frames over a 16 MiB working set and what that costs per
// Gbit carried. Build: cc -O2 -o bench/bin/copyfloor bench/copyfloor.c
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(void) {
  const size_t frame = 65536, frames = 256;
  const long iters = 40000;
  char* src = aligned_alloc(4096, frame * frames);
  char* dst = aligned_alloc(4096, frame * frames);
  if (!src || !dst) return 1;
  memset(src, 1, frame * frames);
  memset(dst, 2, frame * frames);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < iters; i++) memcpy(dst + (i % frames) * frame, src + ((i * 7) % frames) * frame, frame);
  clock_gettime(CLOCK_MONOTONIC, &b);
  double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
  double gbps = iters * frame / s / 1e9;
  // 1 Gbit = 125 MB, copied twice.
  printf("memcpy %.1f GB/s (%.2f us per 64 KiB); two copies = %.4f CPU s per Gbit carried\n", gbps, s / iters * 1e6, 2 * 0.125 / gbps);
  return dst[5] == 1 ? 0 : 1;
}
