/* ws_load: closed-loop WebSocket echo load. Opens C connections to 127.0.0.1:PORT (the
 * HTTP upgrade done blocking, then non-blocking on epoll), keeps one masked binary message
 * of S bytes in flight per connection, and after a warm-up counts echoed messages for D
 * seconds. Prints "msgs=.. rate=.. p50_us=.. p99_us=.. errors=..".
 * usage: ws_load -p PORT [-c 100] [-s 64] [-d 5] [-w 1] [-u /path] */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 4096
#define BUCKETS 100000 /* latency histogram, 1 us per bucket up to 100 ms */

struct conn {
    int fd;
    size_t have;
    double sent_at;
    unsigned char rbuf[65536 + 16];
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long hist[BUCKETS + 1];
static unsigned char frame[65536 + 16];
static size_t frame_len, echo_len;

static int handshake(int fd, const char *path)
{
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path);
    if (write(fd, req, (size_t)n) != n)
        return -1;
    char buf[2048];
    size_t got = 0;
    while (got < sizeof buf - 1) { /* byte by byte: nothing after the head is read */
        ssize_t r = read(fd, buf + got, 1);
        if (r <= 0)
            return -1;
        got++;
        if (got >= 4 && memcmp(buf + got - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    buf[got] = 0;
    return strncmp(buf, "HTTP/1.1 101", 12) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    int port = 0, nconn = 100, size = 64;
    double dur = 5, warm = 1;
    const char *path = "/";
    int opt;
    while ((opt = getopt(argc, argv, "p:c:s:d:w:u:")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'c':
            nconn = atoi(optarg);
            break;
        case 's':
            size = atoi(optarg);
            break;
        case 'd':
            dur = atof(optarg);
            break;
        case 'w':
            warm = atof(optarg);
            break;
        case 'u':
            path = optarg;
            break;
        default:
            return 2;
        }
    }
    if (!port || nconn < 1 || nconn > MAXC || size < 1 || size > 65535) {
        fprintf(stderr, "usage: ws_load -p PORT [-c 100] [-s 64] [-d 5] [-w 1] [-u /path]\n");
        return 2;
    }
    /* one masked binary frame, reused (the key is fixed: this is a load client) */
    static const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
    size_t h = 0;
    frame[h++] = 0x82;
    if (size < 126) {
        frame[h++] = (unsigned char)(0x80 | size);
    } else {
        frame[h++] = 0x80 | 126;
        frame[h++] = (unsigned char)(size >> 8);
        frame[h++] = (unsigned char)size;
    }
    memcpy(frame + h, key, 4);
    h += 4;
    for (int i = 0; i < size; i++)
        frame[h + (size_t)i] = (unsigned char)('a' + i % 26) ^ key[i & 3];
    frame_len = h + (size_t)size;
    echo_len = (size < 126 ? 2 : 4) + (size_t)size;

    struct conn *cs = calloc((size_t)nconn, sizeof *cs);
    int ep = epoll_create1(0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < nconn; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
            handshake(fd, path) != 0) {
            fprintf(stderr, "ws_load: connection %d failed: %s\n", i, strerror(errno));
            return 1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        cs[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    double start = now(), measure_from = start + warm, end = measure_from + dur;
    for (int i = 0; i < nconn; i++) {
        cs[i].sent_at = now();
        if (write(cs[i].fd, frame, frame_len) != (ssize_t)frame_len)
            return 1;
    }
    unsigned long msgs = 0, errors = 0;
    struct epoll_event evs[256];
    for (;;) {
        double t = now();
        if (t >= end)
            break;
        int n = epoll_wait(ep, evs, 256, 100);
        for (int k = 0; k < n; k++) {
            struct conn *c = &cs[evs[k].data.u32];
            ssize_t r = read(c->fd, c->rbuf + c->have, sizeof c->rbuf - c->have);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN)
                    continue;
                errors++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                continue;
            }
            c->have += (size_t)r;
            while (c->have >= echo_len) {
                double done = now();
                if (c->rbuf[0] != 0x82)
                    errors++;
                memmove(c->rbuf, c->rbuf + echo_len, c->have - echo_len);
                c->have -= echo_len;
                if (done >= measure_from && done < end) {
                    msgs++;
                    long us = (long)((done - c->sent_at) * 1e6);
                    hist[us < 0 ? 0 : us > BUCKETS ? BUCKETS : us]++;
                }
                c->sent_at = done;
                if (write(c->fd, frame, frame_len) != (ssize_t)frame_len)
                    errors++;
            }
        }
    }
    unsigned long acc = 0, p50 = 0, p99 = 0;
    int have50 = 0;
    for (long i = 0; i <= BUCKETS; i++) {
        acc += hist[i];
        if (!have50 && acc * 2 >= msgs) {
            p50 = (unsigned long)i;
            have50 = 1;
        }
        if (acc * 100 >= msgs * 99) {
            p99 = (unsigned long)i;
            break;
        }
    }
    printf("msgs=%lu rate=%.0f p50_us=%lu p99_us=%lu errors=%lu\n", msgs, msgs / dur, p50, p99,
           errors);
    return 0;
}
