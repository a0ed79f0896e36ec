/* c10k_load: many idle connections, then one echoed line on each.
 *
 * Driven by bench/run through stdin/stdout, one line per step:
 *   1. opens N connections to 127.0.0.1:PORT (non-blocking connects, at most
 *      -f of them in progress at once) and prints
 *        "connected open=.. failed=.. connect_s=.."
 *   2. waits for a line on stdin (the harness measures the idle server now)
 *   3. writes one 16-byte line on every connection, waits for every echo and
 *      prints "echoed ok=.. bad=.. lost=.. dropped=.. echo_s=.."
 *   4. waits for a line on stdin, closes every connection, prints "closed".
 * Every wait is bounded by -t seconds; EOF on stdin ends the program.
 * It raises its own RLIMIT_NOFILE to fit N sockets.  -b ADDR binds the
 * connections to a loopback source address (e.g. 127.0.0.7) so that
 * consecutive runs do not compete for the same ephemeral ports.
 *
 * usage: c10k_load -p PORT [-n 10000] [-t 30] [-f 256] [-b 127.0.0.1] */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define LINE 16

enum { S_NONE, S_PENDING, S_IDLE, S_WAITING, S_ECHOED, S_GONE };

struct slot {
    int fd;
    unsigned char state;
    unsigned char have;
    char buf[LINE];
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void line_for(int i, char *out)
{
    char tmp[LINE + 8];
    snprintf(tmp, sizeof tmp, "idle#%09d\n", i); /* 5 + 9 + 1 = 15, pad below */
    memset(out, '.', LINE);
    memcpy(out, tmp, 15);
    out[LINE - 1] = '\n';
}

/* one line from stdin within `secs`; 0 when it came */
static int await_go(double secs)
{
    double end = now() + secs;
    for (;;) {
        double left = end - now();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = 0, .events = POLLIN};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        char b[128];
        ssize_t n = read(0, b, sizeof b);
        if (n <= 0)
            return -1;
        if (memchr(b, '\n', (size_t)n))
            return 0;
    }
}

static void drop(int ep, struct slot *s, unsigned char state)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    s->fd = -1;
    s->state = state;
}

int main(int argc, char **argv)
{
    int port = 0, n = 10000, max_pending = 256, opt;
    double limit = 30;
    const char *src = NULL;
    while ((opt = getopt(argc, argv, "p:n:t:f:b:")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'n':
            n = atoi(optarg);
            break;
        case 't':
            limit = atof(optarg);
            break;
        case 'f':
            max_pending = atoi(optarg);
            break;
        case 'b':
            src = optarg;
            break;
        default:
            fprintf(stderr, "usage: %s -p PORT [-n conns] [-t secs] [-f pending] [-b srcaddr]\n",
                    argv[0]);
            return 2;
        }
    }
    if (port <= 0 || n < 1 || n > 60000 || limit <= 0 || limit > 600 || max_pending < 1) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t need = (rlim_t)n + 100;
    if (rl.rlim_cur < need) {
        rl.rlim_cur = need;
        if (rl.rlim_max < need)
            rl.rlim_max = need; /* works as root */
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            getrlimit(RLIMIT_NOFILE, &rl);
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
            if (rl.rlim_cur < need) {
                fprintf(stderr, "RLIMIT_NOFILE %llu is below %llu\n",
                        (unsigned long long)rl.rlim_cur, (unsigned long long)need);
                return 1;
            }
        }
    }

    struct sockaddr_in dst, from;
    memset(&dst, 0, sizeof dst);
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)port);
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memset(&from, 0, sizeof from);
    from.sin_family = AF_INET;
    if (src && inet_pton(AF_INET, src, &from.sin_addr) != 1) {
        fprintf(stderr, "bad source address %s\n", src);
        return 2;
    }

    struct slot *slots = calloc((size_t)n, sizeof *slots);
    struct epoll_event *evs = calloc(1024, sizeof *evs);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!slots || !evs || ep < 0) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }

    /* ---- 1. connect */
    int next = 0, pending = 0, open_n = 0, failed = 0, first_err = 0;
    double t0 = now(), deadline = t0 + limit;
    while ((next < n || pending > 0) && now() < deadline) {
        while (next < n && pending < max_pending) {
            struct slot *s = &slots[next];
            s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            int ok = s->fd >= 0;
            if (ok && src) {
                int on = 1;
                setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on);
                ok = bind(s->fd, (struct sockaddr *)&from, sizeof from) == 0;
            }
            if (ok)
                ok = connect(s->fd, (struct sockaddr *)&dst, sizeof dst) == 0 ||
                     errno == EINPROGRESS;
            if (!ok) {
                if (!first_err)
                    first_err = errno;
                if (s->fd >= 0)
                    close(s->fd);
                s->fd = -1;
                s->state = S_GONE;
                failed++;
            } else {
                struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)next};
                epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
                s->state = S_PENDING;
                pending++;
            }
            next++;
        }
        int k = epoll_wait(ep, evs, 1024, 50);
        for (int j = 0; j < k; j++) {
            struct slot *s = &slots[evs[j].data.u32];
            if (s->state != S_PENDING)
                continue;
            pending--;
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) {
                if (!first_err)
                    first_err = err;
                drop(ep, s, S_GONE);
                failed++;
                continue;
            }
            /* idle: listen only for the server hanging up */
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = evs[j].data.u32};
            epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
            s->state = S_IDLE;
            open_n++;
        }
    }
    failed += (n - next) + pending;
    printf("connected open=%d failed=%d connect_s=%.3f first_errno=%d\n", open_n, failed,
           now() - t0, first_err);
    fflush(stdout);

    /* ---- 2. idle until told */
    if (await_go(limit + 60) < 0)
        return 3;

    /* connections the server closed while idle */
    int dropped = 0, k;
    while ((k = epoll_wait(ep, evs, 1024, 0)) > 0)
        for (int j = 0; j < k; j++) {
            struct slot *s = &slots[evs[j].data.u32];
            if (s->state == S_IDLE) {
                drop(ep, s, S_GONE);
                dropped++;
            }
        }

    /* ---- 3. one line each */
    char line[LINE];
    int waiting = 0, ok_n = 0, bad = 0, lost = 0;
    t0 = now();
    for (int i = 0; i < n; i++) {
        struct slot *s = &slots[i];
        if (s->state != S_IDLE)
            continue;
        line_for(i, line);
        if (send(s->fd, line, LINE, MSG_NOSIGNAL) != LINE) {
            drop(ep, s, S_GONE);
            lost++;
            continue;
        }
        s->state = S_WAITING;
        waiting++;
    }
    deadline = now() + limit;
    while (waiting > 0 && now() < deadline) {
        k = epoll_wait(ep, evs, 1024, 50);
        for (int j = 0; j < k; j++) {
            int i = (int)evs[j].data.u32;
            struct slot *s = &slots[i];
            if (s->state != S_WAITING)
                continue;
            ssize_t r = recv(s->fd, s->buf + s->have, LINE - s->have, 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r <= 0) {
                drop(ep, s, S_GONE);
                lost++;
                waiting--;
                continue;
            }
            s->have += (unsigned char)r;
            if (s->have < LINE)
                continue;
            line_for(i, line);
            if (memcmp(line, s->buf, LINE) == 0)
                ok_n++;
            else
                bad++;
            s->state = S_ECHOED;
            waiting--;
        }
    }
    lost += waiting;
    printf("echoed ok=%d bad=%d lost=%d dropped=%d echo_s=%.3f\n", ok_n, bad, lost, dropped,
           now() - t0);
    fflush(stdout);

    /* ---- 4. close when told (or when the harness goes away) */
    await_go(limit + 60);
    for (int i = 0; i < n; i++)
        if (slots[i].fd > 0 && slots[i].state != S_GONE)
            close(slots[i].fd);
    printf("closed\n");
    fflush(stdout);
    return ok_n == n ? 0 : 1;
}
