// spinfwd: the smallest userspace TAP switch that busy-polls, as a reference row in
// bench/run.sh ("c-spin"). Two TAPs, each frame of one written to the other, one read and one
// write per frame, poll() with a zero timeout so it never sleeps: no learning, no offloads, no
// batching. Its ping round trip is the floor for any userspace switch that sits between two
// TAPs on the machine at that moment (two passes through a process on the other vCPU), which is
// what the switches' ping figures are to be read against.
//
//   spinfwd TAP_A TAP_B      creates both TAPs (gone when it exits); stop it with SIGTERM
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int open_tap(const char *name) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        perror("open /dev/net/tun");
        exit(1);
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        fprintf(stderr, "TUNSETIFF %s: %s\n", name, strerror(errno));
        exit(1);
    }
    return fd;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s TAP_A TAP_B\n", argv[0]);
        return 2;
    }
    struct pollfd p[2] = {{open_tap(argv[1]), POLLIN, 0}, {open_tap(argv[2]), POLLIN, 0}};
    static unsigned char frame[65536];
    unsigned long long dropped = 0;
    for (;;) {
        if (poll(p, 2, 0) < 0 && errno != EINTR) {
            perror("poll");
            return 1;
        }
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & POLLIN)) continue;
            ssize_t n = read(p[i].fd, frame, sizeof frame);
            if (n <= 0) continue;
            // A full queue on the other side drops the frame, as a switch would.
            if (write(p[1 - i].fd, frame, (size_t)n) < 0 && ++dropped % 100000 == 1)
                fprintf(stderr, "write: %s (%llu dropped)\n", strerror(errno), dropped);
        }
    }
}
