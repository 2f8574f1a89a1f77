// How much a thread that never sleeps loses to the host: spins reading CLOCK_MONOTONIC and
// counts the gaps in which it did not run (hypervisor exits, other runnable work, interrupts).
// A spinning forwarder loses the same gaps, so they are part of the ping floor of any
// busy-polling switch on the machine: a frame that arrives at a random moment waits, on
// average, sum(gap^2) / (2 * time) for the spinner to run again.
// Build: cc -O2 -o bench/bin/hiccup bench/hiccup.c
//   hiccup [SECONDS (10)] [GAP_US (5)]     run one per vCPU (taskset -c N) to load both
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  const double seconds = argc > 1 ? atof(argv[1]) : 10, threshold = argc > 2 ? atof(argv[2]) : 5;
  const double start = now_us(), end = start + seconds * 1e6;
  static const double edges[] = {20, 100, 500, 2000, 10000};
  long gaps = 0, bins[6] = {0};
  double last = start, lost = 0, squares = 0, longest = 0;
  while (last < end) {
    const double t = now_us(), g = t - last;
    last = t;
    if (g <= threshold) continue;
    gaps++;
    lost += g;
    squares += g * g;
    if (g > longest) longest = g;
    int b = 0;
    while (b < 5 && g >= edges[b]) b++;
    bins[b]++;
  }
  const double elapsed = last - start;
  printf("%.1f s: %ld gaps over %.0f us (%.0f/s), %.2f %% of the time lost, longest %.0f us, "
         "mean wait of a random arrival %.2f us; gaps <20 us %ld, <100 %ld, <500 %ld, <2000 %ld, <10000 %ld, longer %ld\n",
         elapsed / 1e6, gaps, threshold, gaps / (elapsed / 1e6), 100 * lost / elapsed, longest, squares / 2 / elapsed, bins[0],
         bins[1], bins[2], bins[3], bins[4], bins[5]);
  return 0;
}
