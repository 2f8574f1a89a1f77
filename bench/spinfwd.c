// spinfwd: the smallest userspace TAP switches, as reference rows in bench/run.sh. Two TAPs,
// each frame of one written to the other: no learning, no parsing.
//
//   spinfwd TAP_A TAP_B         "c-spin": one read and one write per frame, poll() with a zero
//                               timeout so it never sleeps, no offloads. Its ping round trip is
//                               the floor for any userspace switch between two TAPs on the
//                               machine at that moment (two passes through a process on the
//                               other vCPU), what the switches' ping figures are read against.
//   spinfwd -t TAP_A TAP_B      "c-tso": the TAPs with a virtio-net header and TSO/checksum
//                               offload (64 KiB frames pass whole), poll() that sleeps, a ready
//                               TAP drained (up to 64 reads, until EAGAIN) and then written.
//                               Switchyard's TAP design without its switch: its TCP figures
//                               are what any switch reading and writing TAPs can reach here.
//   spinfwd -T TAP_A TAP_B      "c-tso-thr": as -t, but a thread per direction blocked in read(),
//                               so both cores can forward (what multi-queue TAPs with a worker
//                               per queue would give a switch).
//
// Both TAPs are created (gone when it exits); stop it with SIGTERM.
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define VNET_HDR_LEN 12  // struct virtio_net_hdr_v1: what TUNSETVNETHDRSZ sets
#define FRAME_MAX (65536 + VNET_HDR_LEN + 64)
#define BATCH 64

static int open_tap(const char *name, int tso, int blocking) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | (blocking ? 0 : O_NONBLOCK));
    if (fd < 0) {
        perror("open /dev/net/tun");
        exit(1);
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (tso ? IFF_VNET_HDR : 0);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        fprintf(stderr, "TUNSETIFF %s: %s\n", name, strerror(errno));
        exit(1);
    }
    int hdr = VNET_HDR_LEN;
    if (tso && (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0 ||
                ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) < 0)) {
        fprintf(stderr, "offloads on %s: %s\n", name, strerror(errno));
        exit(1);
    }
    return fd;
}

static unsigned long long dropped;

// A full queue on the other side drops the frame, as a switch would.
static void put(int fd, const unsigned char *frame, size_t n) {
    if (write(fd, frame, n) < 0 && ++dropped % 100000 == 1)
        fprintf(stderr, "write: %s (%llu dropped)\n", strerror(errno), dropped);
}

static int fds[2];

// One direction, blocked in read() while its TAP is empty.
static void *direction(void *arg) {
    int from = (int)(long)arg;
    static unsigned char frames[2][FRAME_MAX];
    for (;;) {
        ssize_t n = read(fds[from], frames[from], FRAME_MAX);
        if (n > 0) put(fds[1 - from], frames[from], (size_t)n);
        else if (n < 0 && errno != EINTR) {
            perror("read");
            exit(1);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    int tso = argc == 4 && !strcmp(argv[1], "-t");
    int threads = argc == 4 && !strcmp(argv[1], "-T");
    if (argc != 3 && !tso && !threads) {
        fprintf(stderr, "usage: %s [-t|-T] TAP_A TAP_B\n", argv[0]);
        return 2;
    }
    for (int i = 0; i < 2; i++) fds[i] = open_tap(argv[argc - 2 + i], tso || threads, threads);
    if (threads) {
        pthread_t t;
        if (pthread_create(&t, NULL, direction, (void *)1L) != 0) {
            perror("pthread_create");
            return 1;
        }
        direction((void *)0L);
    }
    struct pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
    static unsigned char frames[BATCH][FRAME_MAX];
    static size_t lens[BATCH];
    for (;;) {
        if (poll(p, 2, tso ? -1 : 0) < 0 && errno != EINTR) {
            perror("poll");
            return 1;
        }
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & POLLIN)) continue;
            if (!tso) {
                ssize_t n = read(p[i].fd, frames[0], sizeof frames[0]);
                if (n > 0) put(p[1 - i].fd, frames[0], (size_t)n);
                continue;
            }
            int k = 0;
            for (; k < BATCH; k++) {
                ssize_t n = read(p[i].fd, frames[k], FRAME_MAX);
                if (n <= 0) break;
                lens[k] = (size_t)n;
            }
            for (int j = 0; j < k; j++) put(p[1 - i].fd, frames[j], lens[j]);
        }
    }
}
