/* echo_load: closed-loop echo load generator for bench/run (epoll, 1 thread).
 *
 * Opens CONNS connections to 127.0.0.1:PORT.  On each connection it writes one
 * SIZE-byte message, waits until all SIZE bytes have come back, and writes the
 * next one (one message in flight per connection).  It runs for DURATION
 * seconds; messages completed in the first WARMUP seconds are not counted.
 *
 * With -P PID[,PID...] it reads utime+stime of those processes from
 * /proc/PID/stat when the measured window opens and when it closes, so that
 * the harness can divide the server's CPU time by the messages of exactly
 * that window.
 *
 * usage: echo_load -p PORT [-c 100] [-d 5] [-w 1] [-s 64] [-P PID,...]
 * prints one line of key=value pairs:
 *   msgs window_s msgs_per_s p50_us p90_us p99_us max_us errors
 *   srv_utime_ticks srv_stime_ticks clk_tck (with -P) client_cpu_s
 * exit status 0 when messages were counted and no connection failed. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* latency histogram: 1 us resolution up to LAT_LINEAR us, then 1 ms up to 10 s */
#define LAT_LINEAR 100000
#define LAT_SLOTS (LAT_LINEAR + 10000)

struct peer {
    int fd;
    int dead;
    size_t out;     /* bytes of the current message written */
    size_t in;      /* bytes of its echo read */
    uint64_t start; /* when the current message was started, ns */
};

static uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int watched[32];
static int n_watched;

static void read_ticks(long long *user, long long *sys)
{
    *user = 0;
    *sys = 0;
    for (int i = 0; i < n_watched; i++) {
        char path[48], text[2048];
        snprintf(path, sizeof path, "/proc/%d/stat", watched[i]);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, text, sizeof text - 1);
        close(fd);
        if (len <= 0)
            continue;
        text[len] = '\0';
        /* the command name is in parentheses and may hold spaces */
        char *p = strrchr(text, ')');
        if (!p)
            continue;
        p += 2;
        /* p is at field 3 (state); utime and stime are fields 14 and 15 */
        for (int field = 3; field < 14 && p; field++) {
            p = strchr(p, ' ');
            if (p)
                p++;
        }
        if (!p)
            continue;
        long long u = 0, s = 0;
        if (sscanf(p, "%lld %lld", &u, &s) == 2) {
            *user += u;
            *sys += s;
        }
    }
}

static uint32_t *lat_hist;
static uint64_t lat_count;

static void lat_add(uint64_t us)
{
    size_t slot = us < LAT_LINEAR ? us : LAT_LINEAR + (us - LAT_LINEAR) / 1000;
    if (slot >= LAT_SLOTS)
        slot = LAT_SLOTS - 1;
    lat_hist[slot]++;
    lat_count++;
}

static double lat_quantile(double q)
{
    if (!lat_count)
        return -1;
    uint64_t rank = (uint64_t)(q * (double)lat_count + 0.5), seen = 0;
    if (rank < 1)
        rank = 1;
    for (size_t i = 0; i < LAT_SLOTS; i++) {
        seen += lat_hist[i];
        if (seen >= rank)
            return i < LAT_LINEAR ? (double)i : LAT_LINEAR + (double)(i - LAT_LINEAR) * 1000;
    }
    return -1;
}

static char *payload;
static size_t msg_len = 64;

/* write what is left of the message: 1 = done, 0 = would block, -1 = error */
static int push(struct peer *c)
{
    while (c->out < msg_len) {
        ssize_t n = send(c->fd, payload + c->out, msg_len - c->out, MSG_NOSIGNAL);
        if (n > 0)
            c->out += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        else
            return -1;
    }
    return 1;
}

static void want(int ep, struct peer *c, int idx, uint32_t events)
{
    struct epoll_event ev;
    ev.events = events;
    ev.data.u32 = (uint32_t)idx;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void usage(const char *me)
{
    fprintf(stderr,
            "usage: %s -p PORT [-c conns] [-d seconds] [-w warmup] [-s size] [-P pid,...]\n", me);
    exit(2);
}

int main(int argc, char **argv)
{
    int port = 0, nconns = 100, opt;
    double duration = 5, warmup = 1;
    while ((opt = getopt(argc, argv, "p:c:d:w:s:P:")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'c':
            nconns = atoi(optarg);
            break;
        case 'd':
            duration = atof(optarg);
            break;
        case 'w':
            warmup = atof(optarg);
            break;
        case 's':
            msg_len = (size_t)atol(optarg);
            break;
        case 'P': {
            char *save = NULL;
            for (char *t = strtok_r(optarg, ",", &save); t && n_watched < 32;
                 t = strtok_r(NULL, ",", &save))
                if (atoi(t) > 0)
                    watched[n_watched++] = atoi(t);
            break;
        }
        default:
            usage(argv[0]);
        }
    }
    if (port <= 0 || nconns < 1 || nconns > 60000 || msg_len < 1 || msg_len > (1u << 20) ||
        duration <= 0 || duration > 600 || warmup < 0 || warmup >= duration)
        usage(argv[0]);

    signal(SIGPIPE, SIG_IGN);
    lat_hist = calloc(LAT_SLOTS, sizeof *lat_hist);
    payload = malloc(msg_len);
    char *sink = malloc(msg_len);
    struct peer *peers = calloc((size_t)nconns, sizeof *peers);
    struct epoll_event *evs = calloc(512, sizeof *evs);
    if (!lat_hist || !payload || !sink || !peers || !evs) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < msg_len; i++)
        payload[i] = (char)('a' + i % 26);

    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons((uint16_t)port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < nconns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof to) < 0) {
            fprintf(stderr, "connect %d/%d: %s\n", i + 1, nconns, strerror(errno));
            return 1;
        }
        int on = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        peers[i].fd = fd;
        struct epoll_event ev;
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)i;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }

    uint64_t t_begin = clock_ns();
    uint64_t t_window = t_begin + (uint64_t)(warmup * 1e9);
    uint64_t t_finish = t_begin + (uint64_t)(duration * 1e9);
    uint64_t t_open = 0, counted = 0, max_us = 0;
    int in_window = 0, failures = 0, alive = nconns;
    long long u0 = 0, s0 = 0, u1 = 0, s1 = 0;

    for (int i = 0; i < nconns; i++) {
        peers[i].start = clock_ns();
        int r = push(&peers[i]);
        if (r < 0) {
            peers[i].dead = 1;
            failures++;
            alive--;
        } else if (r == 0) {
            want(ep, &peers[i], i, EPOLLIN | EPOLLOUT);
        }
    }

    while (alive > 0) {
        uint64_t now = clock_ns();
        if (now >= t_finish)
            break;
        if (!in_window && now >= t_window) {
            read_ticks(&u0, &s0);
            t_open = clock_ns();
            in_window = 1;
        }
        uint64_t next_edge = in_window ? t_finish : t_window;
        int timeout_ms = (int)((next_edge - now) / 1000000) + 1;
        if (timeout_ms > 100)
            timeout_ms = 100;
        int n = epoll_wait(ep, evs, 512, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            break;
        }
        for (int k = 0; k < n; k++) {
            int idx = (int)evs[k].data.u32;
            struct peer *c = &peers[idx];
            if (c->dead)
                continue;
            int broken = 0;
            if (evs[k].events & EPOLLOUT) {
                int r = push(c);
                if (r < 0)
                    broken = 1;
                else if (r == 1)
                    want(ep, c, idx, EPOLLIN);
            }
            if (!broken && (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                for (;;) {
                    ssize_t got = recv(c->fd, sink, msg_len - c->in, 0);
                    if (got == 0) {
                        broken = 1;
                        break;
                    }
                    if (got < 0) {
                        if (errno == EINTR)
                            continue;
                        if (errno != EAGAIN && errno != EWOULDBLOCK)
                            broken = 1;
                        break;
                    }
                    c->in += (size_t)got;
                    if (c->in < msg_len)
                        continue;
                    /* full echo: account, then start the next message */
                    uint64_t done = clock_ns();
                    if (in_window) {
                        uint64_t us = (done - c->start) / 1000;
                        lat_add(us);
                        if (us > max_us)
                            max_us = us;
                        counted++;
                    }
                    c->in = 0;
                    c->out = 0;
                    c->start = done;
                    int r = push(c);
                    if (r < 0)
                        broken = 1;
                    else if (r == 0)
                        want(ep, c, idx, EPOLLIN | EPOLLOUT);
                    break;
                }
            }
            if (broken) {
                c->dead = 1;
                failures++;
                alive--;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
            }
        }
    }
    uint64_t t_close = clock_ns();
    if (in_window)
        read_ticks(&u1, &s1);
    double window = in_window ? (double)(t_close - t_open) / 1e9 : 0;
    for (int i = 0; i < nconns; i++)
        if (!peers[i].dead)
            close(peers[i].fd);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cli_cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    double wall = (double)(t_close - t_begin) / 1e9;

    printf("conns=%d size=%zu msgs=%llu window_s=%.3f msgs_per_s=%.1f p50_us=%.0f p90_us=%.0f "
           "p99_us=%.0f max_us=%llu errors=%d client_cpu_s=%.3f client_wall_s=%.3f",
           nconns, msg_len, (unsigned long long)counted, window,
           window > 0 ? (double)counted / window : 0.0, lat_quantile(0.50), lat_quantile(0.90),
           lat_quantile(0.99), (unsigned long long)max_us, failures, cli_cpu, wall);
    if (n_watched)
        printf(" srv_utime_ticks=%lld srv_stime_ticks=%lld clk_tck=%ld", u1 - u0, s1 - s0,
               sysconf(_SC_CLK_TCK));
    printf("\n");
    return (counted > 0 && failures == 0) ? 0 : 1;
}
