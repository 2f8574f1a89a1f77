/*
 * cgen.c - small-frame generator for Switchyard's benchmark (bench/run.sh).
 *
 *   cgen IFNAME DST_MAC SRC_IP DST_IP SECONDS [PAYLOAD_BYTES=64] [DST_PORT=9]
 *
 * Builds one Ethernet + IPv4 + UDP frame (64-byte UDP payload by default, so
 * 14 + 20 + 8 + 64 = 106 bytes on the wire without FCS; valid IPv4 header
 * checksum and valid UDP checksum) addressed to DST_MAC / DST_IP port 9, and
 * sends it as fast as it can for SECONDS through an AF_PACKET raw socket bound
 * to IFNAME, with PACKET_QDISC_BYPASS (no qdisc on the sending side), in
 * sendmmsg(2) batches of 64.  Run it inside the sender's network namespace.
 *
 * When the device pushes back (ENOBUFS: its queue is stopped or the frame was
 * dropped on the way in), the call is counted and the unsent rest of the batch
 * is retried after a sched_yield(); the generator never sleeps otherwise.
 *
 * Prints one JSON line on stdout:
 *   {"ifname":..,"frame_bytes":106,"payload_bytes":64,"batch":64,
 *    "seconds":5.000,"sent":N,"accepted":N,"errors":N,"enobufs":N,"partial":N,
 *    "calls":N,"accepted_kpps":..}
 * sent     = frame offers: accepted + refused offers (a frame refused and
 *            retried counts once per offer),
 * accepted = frames the kernel took (sendmmsg's return values summed); the
 *            device or the switch may still drop them later, which is why the
 *            benchmark counts at the receiver,
 * errors   = sendmmsg calls that failed with anything other than ENOBUFS
 *            (those frames are dropped, not retried),
 * enobufs  = sendmmsg calls that failed with ENOBUFS on their first frame
 *            (retried),
 * partial  = calls that sent only part of the batch (the kernel refused the
 *            next frame, e.g. ENOBUFS, and sendmmsg drops the error code; the
 *            rest is retried).
 * Exit status 0 on success, 1 on a setup error, 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_PAYLOAD 1472

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One's-complement sum over a byte range, folded into 32 bits (not inverted). */
static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc)
{
    while (n > 1) {
        acc += (uint32_t)((p[0] << 8) | p[1]);
        p += 2;
        n -= 2;
    }
    if (n)
        acc += (uint32_t)(p[0] << 8);
    return acc;
}

static uint16_t fold(uint32_t acc)
{
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
    unsigned int b[6];
    char tail;
    if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
        return -1;
    for (int i = 0; i < 6; i++) {
        if (b[i] > 0xff)
            return -1;
        mac[i] = (uint8_t)b[i];
    }
    return 0;
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s IFNAME DST_MAC SRC_IP DST_IP SECONDS [PAYLOAD_BYTES=64] [DST_PORT=9]\n",
            argv0);
}

int main(int argc, char **argv)
{
    if (argc < 6 || argc > 8) {
        usage(argv[0]);
        return 2;
    }
    const char *ifname = argv[1];
    uint8_t dst_mac[6], src_mac[6];
    struct in_addr src_ip, dst_ip;
    char *end = NULL;
    double seconds = strtod(argv[5], &end);
    long payload = argc > 6 ? strtol(argv[6], NULL, 10) : 64;
    long dport = argc > 7 ? strtol(argv[7], NULL, 10) : 9;

    if (strlen(ifname) >= IFNAMSIZ || parse_mac(argv[2], dst_mac) != 0 ||
        inet_pton(AF_INET, argv[3], &src_ip) != 1 || inet_pton(AF_INET, argv[4], &dst_ip) != 1 ||
        end == argv[5] || !(seconds > 0) || payload < 0 || payload > MAX_PAYLOAD || dport < 1 ||
        dport > 65535) {
        usage(argv[0]);
        return 2;
    }

    int fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: send only, receive nothing */
    if (fd < 0) {
        perror("cgen: socket(AF_PACKET)");
        return 1;
    }
    int one = 1;
    if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0) {
        perror("cgen: PACKET_QDISC_BYPASS");
        return 1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, ifname, strlen(ifname));
    if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
        perror("cgen: SIOCGIFINDEX");
        return 1;
    }
    int ifindex = ifr.ifr_ifindex;
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
        perror("cgen: SIOCGIFHWADDR");
        return 1;
    }
    memcpy(src_mac, ifr.ifr_hwaddr.sa_data, 6);

    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_IP);
    sll.sll_ifindex = ifindex;
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
        perror("cgen: bind");
        return 1;
    }
    sll.sll_halen = 6;
    memcpy(sll.sll_addr, dst_mac, 6);

    /* ---- the frame, written byte by byte in network order ---- */
    static uint8_t frame[14 + 20 + 8 + MAX_PAYLOAD];
    const size_t udp_len = 8 + (size_t)payload;
    const size_t ip_len = 20 + udp_len;
    const size_t frame_len = 14 + ip_len;
    memset(frame, 0, sizeof frame);
    uint8_t *eth = frame, *ip = frame + 14, *udp = frame + 34, *data = frame + 42;
    memcpy(eth, dst_mac, 6);
    memcpy(eth + 6, src_mac, 6);
    put16(eth + 12, ETH_P_IP);
    ip[0] = 0x45;                   /* IPv4, IHL 5 */
    ip[1] = 0;                      /* DSCP/ECN */
    put16(ip + 2, (uint16_t)ip_len);
    put16(ip + 4, 0);               /* identification (DF set: never fragmented) */
    put16(ip + 6, 0x4000);          /* DF */
    ip[8] = 64;                     /* TTL */
    ip[9] = 17;                     /* UDP */
    memcpy(ip + 12, &src_ip, 4);
    memcpy(ip + 16, &dst_ip, 4);
    put16(ip + 10, fold(sum16(ip, 20, 0)));
    put16(udp + 0, 9);              /* source port (discard) */
    put16(udp + 2, (uint16_t)dport);
    put16(udp + 4, (uint16_t)udp_len);
    for (long i = 0; i < payload; i++)
        data[i] = (uint8_t)('a' + i % 26);
    /* UDP checksum over the pseudo-header + UDP header + payload */
    uint32_t acc = sum16(ip + 12, 8, 0);
    acc += 17;
    acc += (uint32_t)udp_len;
    acc = sum16(udp, udp_len, acc);
    uint16_t uc = fold(acc);
    put16(udp + 6, uc ? uc : 0xffff);

    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = frame;
        iov[i].iov_len = frame_len;
        msgs[i].msg_hdr.msg_name = &sll;
        msgs[i].msg_hdr.msg_namelen = sizeof sll;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    unsigned long long accepted = 0, errors = 0, enobufs = 0, partial = 0, calls = 0;
    int last_errno = 0;
    const double t0 = mono_now(), deadline = t0 + seconds;
    double t = t0;
    unsigned int off = 0; /* first unsent message of the current batch */
    unsigned int iter = 0;
    while (t < deadline) {
        const unsigned int n = BATCH - off;
        const int r = sendmmsg(fd, msgs + off, n, 0);
        calls++;
        if (r == (int)n) {
            accepted += n;
            off = 0;
        } else if (r >= 0) {
            /* frame off+r was refused; sendmmsg drops the error code: retry it */
            accepted += (unsigned int)r;
            partial++;
            off += (unsigned int)r;
        } else if (errno == ENOBUFS) {
            enobufs++;
            sched_yield(); /* let the consumer drain, then retry the same frame */
        } else if (errno != EINTR) {
            errors++;
            last_errno = errno;
            off = 0;
            if (errors > 1000 && accepted == 0)
                break; /* hopeless: e.g. interface down */
        }
        if ((++iter & 7) == 0 || r != (int)n)
            t = mono_now();
    }
    /* every refused frame was one offer that did not make it */
    const unsigned long long sent = accepted + partial + enobufs + errors;
    const double elapsed = mono_now() - t0;
    printf("{\"ifname\":\"%s\",\"frame_bytes\":%zu,\"payload_bytes\":%ld,\"batch\":%d,"
           "\"seconds\":%.3f,\"sent\":%llu,\"accepted\":%llu,\"errors\":%llu,\"enobufs\":%llu,"
           "\"partial\":%llu,\"calls\":%llu,\"accepted_kpps\":%.1f",
           ifname, frame_len, payload, BATCH, elapsed, sent, accepted, errors, enobufs, partial, calls,
           elapsed > 0 ? (double)accepted / elapsed / 1000.0 : 0.0);
    if (last_errno)
        printf(",\"last_error\":\"%s\"", strerror(last_errno));
    printf("}\n");
    close(fd);
    return (accepted == 0 && errors > 0) ? 1 : 0;
}
