/* Echo server in C on raw libevent events: the floor gl's echo is compared to.
 *
 * The listening socket and every connection have one persistent EV_READ
 * event.  A readable connection is read once (up to 64 KiB, into one buffer
 * shared by all connections) and the bytes are written straight back.  Only
 * if the socket cannot take them all is the rest copied to a buffer of the
 * connection's own, and reading pauses until an EV_WRITE event has flushed
 * it.  An idle connection costs its struct and its two events.
 *
 * usage: echo_libevent PORT      (binds 127.0.0.1:PORT) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct client {
    int fd;
    struct event *on_read;
    struct event *on_write;
    char *pending; /* unsent bytes are pending[head..tail), or NULL */
    size_t head, tail;
};

static char shared_buf[65536];

static struct event_base *loop;

static void client_close(struct client *c)
{
    free(c->pending);
    event_free(c->on_read);
    event_free(c->on_write);
    close(c->fd);
    free(c);
}

/* send data[*head..tail): 1 = all sent, 0 = socket full, -1 = error */
static int send_all(int fd, const char *data, size_t *head, size_t tail)
{
    while (*head < tail) {
        ssize_t n = send(fd, data + *head, tail - *head, MSG_NOSIGNAL);
        if (n >= 0)
            *head += (size_t)n;
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        else if (errno != EINTR)
            return -1;
    }
    return 1;
}

static void writable(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    (void)fd;
    (void)what;
    switch (send_all(c->fd, c->pending, &c->head, c->tail)) {
    case 1:
        free(c->pending);
        c->pending = NULL;
        event_add(c->on_read, NULL);
        break;
    case 0:
        event_add(c->on_write, NULL);
        break;
    default:
        client_close(c);
    }
}

static void readable(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    (void)what;
    ssize_t n = recv(fd, shared_buf, sizeof shared_buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        client_close(c);
        return;
    }
    if (n < 0)
        return;
    size_t head = 0;
    int r = send_all(fd, shared_buf, &head, (size_t)n);
    if (r < 0) {
        client_close(c);
    } else if (r == 0) {
        c->tail = (size_t)n - head;
        c->head = 0;
        c->pending = malloc(c->tail);
        if (!c->pending) {
            client_close(c);
            return;
        }
        memcpy(c->pending, shared_buf + head, c->tail);
        event_del(c->on_read);
        event_add(c->on_write, NULL);
    }
}

static void acceptable(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    (void)arg;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a transient error: try on the next event */
        int on = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        struct client *c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->pending = NULL;
        c->head = c->tail = 0;
        c->on_read = event_new(loop, fd, EV_READ | EV_PERSIST, readable, c);
        c->on_write = event_new(loop, fd, EV_WRITE, writable, c);
        event_add(c->on_read, NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(argv[1]));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4096) < 0) {
        perror("bind/listen");
        return 1;
    }
    loop = event_base_new();
    struct event *lev = event_new(loop, lfd, EV_READ | EV_PERSIST, acceptable, NULL);
    event_add(lev, NULL);
    event_base_dispatch(loop);
    return 0;
}
