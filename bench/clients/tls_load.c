/* tls_load: TLS load generator for bench/run (OpenSSL, one thread).
 *
 * -m hs    full handshakes, one after the other, for DURATION seconds: TCP
 *          connect, SSL_connect with no session cache and no tickets (so
 *          every handshake is a full one), write "ping\n", read the 5-byte
 *          answer (an echo, or s_server -rev's "gnip\n"), send close_notify,
 *          close.  The echo makes sure the server finished its side too.
 * -m bulk  one connection; writes lines of SIZE bytes (SIZE-1 'x' and '\n',
 *          so that a line echoes to itself under s_server -rev too) and keeps
 *          at most WINDOW lines unanswered; counts the bytes echoed back.
 *
 * The first WARMUP seconds are not counted.  With -P PID[,PID...] it reads
 * utime+stime of those processes from /proc/PID/stat at the edges of the
 * counted window (as echo_load does).
 *
 * usage: tls_load -p PORT -m hs|bulk [-d 5] [-w 1] [-s 16000] [-W 4] [-P pid,...]
 * prints one line of key=value pairs. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int watched[32], n_watched;

static void read_ticks(long long *user, long long *sys)
{
    *user = *sys = 0;
    for (int i = 0; i < n_watched; i++) {
        char path[48], text[2048];
        snprintf(path, sizeof path, "/proc/%d/stat", watched[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[len] = '\0';
        char *p = strrchr(text, ')');
        if (!p)
            continue;
        p += 2;
        for (int field = 3; field < 14 && p; field++) {
            p = strchr(p, ' ');
            if (p)
                p++;
        }
        long long u, s;
        if (p && sscanf(p, "%lld %lld", &u, &s) == 2) {
            *user += u;
            *sys += s;
        }
    }
}

static struct sockaddr_in target;

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&target, sizeof target) < 0) {
        close(fd);
        return -1;
    }
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    return fd;
}

static int read_exact(SSL *ssl, char *buf, int len)
{
    int got = 0;
    while (got < len) {
        int r = SSL_read(ssl, buf + got, len - got);
        if (r <= 0)
            return -1;
        got += r;
    }
    return 0;
}

/* one full handshake + a 5-byte exchange; 0 on success */
static int one_handshake(SSL_CTX *ctx)
{
    int fd = dial();
    if (fd < 0)
        return -1;
    SSL *ssl = SSL_new(ctx);
    int rc = -1;
    char buf[8];
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) == 1 && SSL_write(ssl, "ping\n", 5) == 5 && read_exact(ssl, buf, 5) == 0)
        rc = 0;
    if (rc == 0)
        SSL_shutdown(ssl); /* sends close_notify; we do not wait for the peer's */
    SSL_free(ssl);
    close(fd);
    return rc;
}

static double cpu_self(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void print_ticks(long long u, long long s)
{
    if (n_watched)
        printf(" srv_utime_ticks=%lld srv_stime_ticks=%lld clk_tck=%ld", u, s,
               sysconf(_SC_CLK_TCK));
}

static int run_hs(SSL_CTX *ctx, double duration, double warmup)
{
    double t_start = now(), t_window = t_start + warmup, t_end = t_start + duration;
    double t_open = 0;
    long long u0 = 0, s0 = 0, u1 = 0, s1 = 0;
    long counted = 0, failures = 0, all = 0;
    int in_window = 0;
    for (;;) {
        double t = now();
        if (t >= t_end)
            break;
        if (!in_window && t >= t_window) {
            read_ticks(&u0, &s0);
            t_open = now();
            in_window = 1;
        }
        if (one_handshake(ctx) == 0) {
            all++;
            if (in_window)
                counted++;
        } else {
            failures++;
            if (failures > 20 && failures > all) /* the server is not answering: give up */
                break;
        }
    }
    double t_close = now();
    if (in_window)
        read_ticks(&u1, &s1);
    double window = in_window ? t_close - t_open : 0;
    printf("mode=hs handshakes=%ld window_s=%.3f hs_per_s=%.1f errors=%ld client_cpu_s=%.3f "
           "client_wall_s=%.3f",
           counted, window, window > 0 ? counted / window : 0.0, failures, cpu_self(),
           t_close - t_start);
    print_ticks(u1 - u0, s1 - s0);
    printf("\n");
    return counted > 0 && failures == 0 ? 0 : 1;
}

static int run_bulk(SSL_CTX *ctx, double duration, double warmup, int size, int window_lines)
{
    int fd = dial();
    if (fd < 0) {
        perror("connect");
        return 1;
    }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

    char *line = malloc((size_t)size);
    char *sink = malloc(65536);
    memset(line, 'x', (size_t)size);
    line[size - 1] = '\n';
    long long budget = (long long)size * window_lines;
    long long unanswered = 0; /* bytes written whose echo has not come back */
    long long counted = 0, total = 0;
    double t_start = now(), t_window = t_start + warmup, t_end = t_start + duration, t_open = 0;
    long long u0 = 0, s0 = 0, u1 = 0, s1 = 0;
    int in_window = 0, failed = 0, write_blocked_on = 0, read_blocked_on = SSL_ERROR_WANT_READ;

    while (!failed) {
        double t = now();
        if (t >= t_end)
            break;
        if (!in_window && t >= t_window) {
            read_ticks(&u0, &s0);
            t_open = now();
            in_window = 1;
        }
        int progress = 0;
        /* write whole lines while the window has room (a blocked SSL_write
         * is retried with the same buffer and length, as OpenSSL requires) */
        while (unanswered + size <= budget) {
            int r = SSL_write(ssl, line, size);
            if (r > 0) {
                unanswered += r;
                write_blocked_on = 0;
                progress = 1;
                continue;
            }
            int e = SSL_get_error(ssl, r);
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                write_blocked_on = e;
            else
                failed = 1;
            break;
        }
        /* read everything available */
        for (;;) {
            int r = SSL_read(ssl, sink, 65536);
            if (r > 0) {
                unanswered -= r;
                total += r;
                if (in_window)
                    counted += r;
                progress = 1;
                continue;
            }
            int e = SSL_get_error(ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                read_blocked_on = e;
            else
                failed = 1;
            break;
        }
        if (progress || failed)
            continue;
        struct pollfd p = {.fd = fd, .events = 0};
        if (read_blocked_on == SSL_ERROR_WANT_READ || write_blocked_on == SSL_ERROR_WANT_READ)
            p.events |= POLLIN;
        if (read_blocked_on == SSL_ERROR_WANT_WRITE || write_blocked_on == SSL_ERROR_WANT_WRITE)
            p.events |= POLLOUT;
        int ms = (int)((in_window ? t_end - t : t_window - t) * 1000) + 1;
        if (ms > 100)
            ms = 100;
        poll(&p, 1, ms);
    }
    double t_close = now();
    if (in_window)
        read_ticks(&u1, &s1);
    double window = in_window ? t_close - t_open : 0;
    printf("mode=bulk size=%d window_lines=%d bytes=%lld window_s=%.3f mbytes_per_s=%.2f "
           "errors=%d client_cpu_s=%.3f client_wall_s=%.3f cipher=%s",
           size, window_lines, counted, window, window > 0 ? counted / window / 1e6 : 0.0, failed,
           cpu_self(), t_close - t_start, SSL_get_cipher_name(ssl));
    print_ticks(u1 - u0, s1 - s0);
    printf("\n");
    SSL_free(ssl);
    close(fd);
    (void)total;
    return counted > 0 && !failed ? 0 : 1;
}

int main(int argc, char **argv)
{
    int port = 0, size = 16000, window_lines = 4, opt;
    double duration = 5, warmup = 1;
    const char *mode = "hs";
    while ((opt = getopt(argc, argv, "p:m:d:w:s:W:P:")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'm':
            mode = optarg;
            break;
        case 'd':
            duration = atof(optarg);
            break;
        case 'w':
            warmup = atof(optarg);
            break;
        case 's':
            size = atoi(optarg);
            break;
        case 'W':
            window_lines = atoi(optarg);
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
            fprintf(stderr,
                    "usage: %s -p PORT -m hs|bulk [-d secs] [-w warmup] [-s size] [-W lines] [-P "
                    "pids]\n",
                    argv[0]);
            return 2;
        }
    }
    if (port <= 0 || duration <= 0 || duration > 600 || warmup < 0 || warmup >= duration ||
        size < 2 || size > (1 << 20) || window_lines < 1 || window_lines > 1024 ||
        (strcmp(mode, "hs") && strcmp(mode, "bulk"))) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    memset(&target, 0, sizeof target);
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)port);
    target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);          /* self-signed test cert */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); /* never resume */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    int rc = strcmp(mode, "hs") == 0 ? run_hs(ctx, duration, warmup)
                                     : run_bulk(ctx, duration, warmup, size, window_lines);
    SSL_CTX_free(ctx);
    return rc;
}
