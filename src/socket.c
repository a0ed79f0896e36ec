/* Green sockets: the gl.socket userdata, its waits and its byte paths (recv, read,
 * send, sendall, close). Every call tries the system call first and only on EAGAIN parks
 * the thread on the socket's own read or write event (made once, reused). Making,
 * connecting and configuring sockets is sockctl.c; name lookup and policy socket.lua. */
#include "socket.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RBUF_MIN 4096

_Thread_local char gl_sock_scratch[GL_SOCK_SCRATCH];

/* ---- the plain transport ---- */

/* After EAGAIN the socket waits for the next edge without another recv: the read event
 * is edge-triggered and persistent (every arrival after this point sets rready again) or
 * level-triggered and added per wait. A short read alone does not prove the socket
 * drained: a FIN or a reset that came with the data is told only by the next recv, and no
 * later edge would come. A FIN shows as EV_CLOSED (fin_seen); a reset does not (libevent
 * turns EPOLLHUP/EPOLLERR into a plain read), but a pending reset fails every send. So a
 * send that succeeds after a short read, with no FIN seen, proves the socket drained, and
 * a request/response exchange skips the recv that would only say EAGAIN. */
static ssize_t plain_recv(gl_sock *s, char *buf, size_t len)
{
    if (!s->rready)
        return GL_IO_WAIT_READ;
    for (;;) {
        ssize_t n = recv(s->fd, buf, len, 0);
        if (n >= 0) {
            /* a datagram shorter than len says nothing about the ones queued behind it */
            s->rshort = n > 0 && (size_t)n < len && s->type == SOCK_STREAM;
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            s->rready = 0;
            return GL_IO_WAIT_READ;
        }
        s->err_no = errno;
        s->err_msg = NULL;
        return GL_IO_ERROR;
    }
}

static ssize_t plain_send(gl_sock *s, const char *buf, size_t len)
{
    for (;;) {
        ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) {
            if (s->rshort && !s->fin_seen) { /* no reset pending at the short read */
                s->rshort = 0;
                s->rready = 0;
            }
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return GL_IO_WAIT_WRITE;
        s->err_no = errno;
        s->err_msg = NULL;
        return GL_IO_ERROR;
    }
}

const gl_sock_io gl_plain_io = {plain_recv, plain_send, NULL, NULL};

/* ---- objects ---- */

gl_sock *gl_sock_check(lua_State *L, int idx)
{
    /* every method call checks its socket: compare a magic number in a userdata of our
     * size instead of looking both metatables up by name */
    gl_sock *s = lua_touserdata(L, idx);
    if (s && lua_rawlen(L, idx) == sizeof *s && s->magic == GL_SOCK_MAGIC)
        return s; /* (a light userdata has no length, so it never passes) */
    s = luaL_testudata(L, idx, GL_SOCK_MT);
    if (!s)
        s = luaL_testudata(L, idx, GL_TLS_MT);
    if (!s)
        luaL_typeerror(L, idx, GL_SOCK_MT);
    return s;
}

gl_sock *gl_sock_check_open(lua_State *L, int idx)
{
    gl_sock *s = gl_sock_check(L, idx);
    if (s->fd < 0)
        luaL_error(L, "attempt to use a closed socket");
    return s;
}

gl_sock *gl_sock_push(lua_State *L, int fd, int family, int type, const char *mt)
{
    gl_sock *s = lua_newuserdatauv(L, sizeof *s, 1);
    memset(s, 0, sizeof *s);
    s->magic = GL_SOCK_MAGIC;
    s->fd = -1; /* closed until everything below succeeded */
    s->family = family;
    s->type = type;
    s->timeout = -1;
    s->rready = 1;
    s->io = &gl_plain_io;
    luaL_setmetatable(L, mt);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        luaL_error(L, "gl.socket: cannot make fd non-blocking: %s", strerror(e));
    }
    s->fd = fd;
    return s;
}

int gl_sock_fail(lua_State *L, gl_sock *s, int e)
{
    lua_pushnil(L);
    if (!e && s && s->err_msg) {
        lua_pushstring(L, s->err_msg);
        return 2;
    }
    if (!e && s)
        e = s->err_no;
    switch (e) {
    case ECONNREFUSED:
        lua_pushliteral(L, "connection refused");
        break;
    case ECONNRESET:
    case EPIPE:
        lua_pushliteral(L, "closed");
        break;
    case ETIMEDOUT:
        lua_pushliteral(L, "timeout");
        break;
    default: {
        /* strerror with a lowercase first letter, as the contract's messages are */
        char msg[128];
        snprintf(msg, sizeof msg, "%s", strerror(e));
        if (msg[0] >= 'A' && msg[0] <= 'Z')
            msg[0] = (char)(msg[0] - 'A' + 'a');
        lua_pushstring(L, msg);
    }
    }
    lua_pushinteger(L, e);
    return 3;
}

int gl_sock_fail_closed(lua_State *L)
{
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
}

int gl_sock_fail_timeout(lua_State *L)
{
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    lua_pushinteger(L, ETIMEDOUT);
    return 3;
}

/* ---- waiting ---- */

static void wake_waiter(gl_thread **slot, short what)
{
    gl_thread *t = *slot;
    if (!t)
        return;
    *slot = NULL;
    t->unwait = NULL;
    gl_sched_wake_now(t, (what & EV_TIMEOUT) ? GL_WAKE_TIMEOUT : GL_WAKE_OK);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    gl_sock *s = arg;
    s->rready = 1;
    s->rshort = 0;
    if (what & EV_CLOSED) /* a FIN in the same edge as data: only a recv tells it */
        s->fin_seen = 1;
    wake_waiter(&s->reader, what);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    wake_waiter(&((gl_sock *)arg)->writer, what);
}

static void unwait_read(gl_thread *t)
{
    gl_sock *s = t->wait_data;
    if (s->reader == t) {
        s->reader = NULL;
        if (s->rev && !s->radded)
            event_del(s->rev);
    }
}

static void unwait_write(gl_thread *t)
{
    gl_sock *s = t->wait_data;
    if (s->writer == t) {
        s->writer = NULL;
        if (s->wev && !s->wadded)
            event_del(s->wev);
    }
}

/* ---- persistent events ----
 * With an edge-triggered backend (epoll) a socket's read and write events are added once
 * and stay added while the socket is in use, so a wait costs no epoll_ctl; every call
 * tries the system call first, which is what edge triggering needs. They are dropped
 * when gl goes idle, so an embedding host's loop can end. */

static void link_sock(gl_hub *h, gl_sock *s)
{
    if (s->linked)
        return;
    s->hub = h;
    s->prev = NULL;
    s->next = h->socks;
    if (s->next)
        s->next->prev = s;
    h->socks = s;
    s->linked = 1;
}

void gl_sock_cork(lua_State *L, gl_sock *s)
{
    if (s->corked || s->fd < 0 || s->type != SOCK_STREAM ||
        (s->family != AF_INET && s->family != AF_INET6))
        return;
    s->hub = gl_hub_get(L);
    gl_hub_cork(s->hub, s->fd, &s->corked);
}

static void unlink_sock(gl_sock *s)
{
    if (!s->linked)
        return;
    if (s->prev)
        s->prev->next = s->next;
    else
        s->hub->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->linked = 0;
}

static void drop_events(gl_sock *s)
{
    if (s->radded && !s->reader) {
        event_del(s->rev);
        s->radded = 0;
        s->rready = 1; /* edges are no longer tracked */
        s->rshort = 0;
    }
    if (s->wadded && !s->writer) {
        event_del(s->wev);
        s->wadded = 0;
    }
    if (!s->radded && !s->wadded)
        unlink_sock(s);
}

static void quiesce(gl_hub *h)
{
    gl_sock *s = h->socks;
    while (s) {
        gl_sock *next = s->next;
        drop_events(s);
        s = next;
    }
    gl_sched_drop_stale(h); /* socket timeouts' timers (gl_sched_arm_deadline) */
}

int gl_sock_wait_role(lua_State *L, gl_sock *s, int writing, int want, lua_KFunction k,
                      lua_KContext ctx)
{
    gl_thread *t = gl_check_blocking(L, writing ? "socket write" : "socket read");
    gl_thread **slot = writing ? &s->writer : &s->reader;
    if (*slot)
        return luaL_error(L, "another green thread is already %s this socket",
                          writing ? "writing" : "reading");
    gl_sched_check_pending(L, t);
    if (!writing && s->rlen == 0 && s->rbuf) { /* an idle socket keeps no buffer */
        gl_hub *h = t->hub;
        if (s->rcap == RBUF_MIN && h->n_spare_rbufs < (int)(sizeof h->spare_rbufs / sizeof(void *)))
            h->spare_rbufs[h->n_spare_rbufs++] = s->rbuf;
        else
            free(s->rbuf);
        s->rbuf = NULL;
        s->rcap = s->rpos = 0;
    }
    short ev = want == GL_IO_WAIT_READ ? EV_READ : EV_WRITE;
    struct timeval tv, *tvp = NULL;
    if (s->timeout >= 0) {
        tv = gl_timeval(s->timeout);
        tvp = &tv;
    }
    int same = (ev == EV_READ) != writing;
    gl_hub *h = t->hub;
    if (same && (event_base_get_features(h->base) & EV_FEATURE_ET)) {
        struct event **evp = writing ? &s->wev : &s->rev;
        unsigned char *added = writing ? &s->wadded : &s->radded;
        /* EV_CLOSED on the read side so a FIN that came with the last data is known */
        short flags = (short)(ev | EV_PERSIST | EV_ET | (writing ? 0 : EV_CLOSED));
        if (!*evp)
            *evp = event_new(h->base, s->fd, flags, writing ? write_cb : read_cb, s);
        if (!*evp || (!*added && event_add(*evp, NULL) != 0))
            return luaL_error(L, "gl.socket: cannot watch fd %d", s->fd);
        *added = 1;
        link_sock(h, s);
        h->quiesce = quiesce;
        if (s->timeout >= 0 && gl_sched_arm_deadline(t, s->timeout) != 0)
            return luaL_error(L, "gl.socket: cannot arm the timeout");
    } else if (same) { /* poll and select: one-shot events, added per wait */
        struct event **evp = writing ? &s->wev : &s->rev;
        if (!*evp)
            *evp = event_new(h->base, s->fd, ev, writing ? write_cb : read_cb, s);
        if (!*evp || event_add(*evp, tvp) != 0)
            return luaL_error(L, "gl.socket: cannot watch fd %d", s->fd);
    } else if (gl_sched_arm(t, s->fd, ev, s->timeout) != 0) {
        /* a TLS read that must write first (or the reverse): the thread's own event */
        return luaL_error(L, "gl.socket: cannot watch fd %d", s->fd);
    }
    *slot = t;
    t->unwait = writing ? unwait_write : unwait_read;
    t->wait_data = s;
    return gl_sched_park(L, t, k, ctx);
}

int gl_sock_wait(lua_State *L, gl_sock *s, int want, lua_KFunction k, lua_KContext ctx)
{
    return gl_sock_wait_role(L, s, want == GL_IO_WAIT_WRITE, want, k, ctx);
}

int gl_sock_resumed(lua_State *L, gl_sock *s)
{
    int kind = gl_sched_wake_check(L, gl_current(L));
    if (s->fd < 0)
        return -1;
    return kind == GL_WAKE_OK;
}

/* After a wait: 1 to retry; otherwise pushes nil, "closed"/"timeout" and returns -n. */
int gl_sock_after_wait(lua_State *L, gl_sock *s, int status)
{
    if (status != LUA_YIELD)
        return 1;
    int r = gl_sock_resumed(L, s);
    if (r < 0)
        return -gl_sock_fail_closed(L);
    if (r == 0)
        return -gl_sock_fail_timeout(L);
    return 1;
}

/* ---- closing ---- */

void gl_sock_close(lua_State *L, gl_sock *s)
{
    if (s->fd < 0)
        return;
    gl_thread *waiters[2] = {s->reader, s->writer};
    s->reader = s->writer = NULL;
    if (s->rev)
        event_del(s->rev);
    if (s->wev)
        event_del(s->wev);
    s->radded = s->wadded = 0;
    unlink_sock(s);
    if (s->corked)
        gl_hub_uncork(s->hub, s->fd);
    if (s->io->close)
        s->io->close(s);
    close(s->fd);
    s->fd = -1;
    for (int i = 0; i < 2; i++) {
        gl_thread *t = waiters[i];
        if (t && t->state == GL_T_PARKED) {
            t->unwait = NULL;
            gl_sched_wake(L, t, GL_WAKE_OK, 0); /* its continuation sees the closed fd */
        }
    }
    free(s->rbuf);
    s->rbuf = NULL;
    s->rcap = s->rpos = s->rlen = 0;
    if (s->rev) {
        event_free(s->rev);
        s->rev = NULL;
    }
    if (s->wev) {
        event_free(s->wev);
        s->wev = NULL;
    }
}

int gl_sock_detach(lua_State *L, gl_sock *s)
{
    (void)L;
    int fd = s->fd;
    s->radded = s->wadded = 0;
    unlink_sock(s);
    if (s->corked)
        gl_hub_uncork(s->hub, s->fd);
    if (s->rev)
        event_free(s->rev);
    if (s->wev)
        event_free(s->wev);
    s->rev = s->wev = NULL;
    s->fd = -1;
    return fd;
}

static int sock_close(lua_State *L)
{
    gl_sock_close(L, gl_sock_check(L, 1));
    return 0;
}

/* ---- receiving ---- */

/* ctx: the byte count, checked by sock_recv (the hottest call: no argument look-ups) */
static int sock_recv_k(lua_State *L, int status, lua_KContext ctx)
{
    gl_sock *s = lua_touserdata(L, 1); /* checked by the entry function */
    int r = gl_sock_after_wait(L, s, status);
    if (r < 0)
        return -r;
    size_t n = (size_t)ctx;
    if (s->rlen) { /* bytes read ahead by read() come first */
        if (n > s->rlen)
            n = s->rlen;
        lua_pushlstring(L, s->rbuf + s->rpos, n);
        s->rpos += n;
        s->rlen -= n;
        return 1;
    }
    if (s->eof)
        return gl_sock_fail_closed(L);
    ssize_t got = s->io->recv(s, gl_sock_scratch, n);
    if (got > 0) {
        lua_pushlstring(L, gl_sock_scratch, (size_t)got);
        return 1;
    }
    if (got == 0)
        return gl_sock_fail_closed(L);
    if (got == GL_IO_WAIT_READ || got == GL_IO_WAIT_WRITE)
        return WAIT_READER(L, s, (int)got, sock_recv_k, ctx);
    return gl_sock_fail(L, s, 0);
}

static int sock_recv(lua_State *L)
{
    gl_sock_check_open(L, 1);
    lua_Integer want = GL_SOCK_SCRATCH;
    if (!lua_isnoneornil(L, 2)) {
        want = luaL_checkinteger(L, 2);
        luaL_argcheck(L, want > 0, 2, "positive byte count expected");
    }
    return sock_recv_k(L, LUA_OK, want < GL_SOCK_SCRATCH ? (lua_KContext)want : GL_SOCK_SCRATCH);
}

ssize_t gl_sock_fill(gl_sock *s)
{
    if (!s->rbuf) {
        gl_hub *h = s->hub;
        s->rbuf = h && h->n_spare_rbufs ? h->spare_rbufs[--h->n_spare_rbufs] : malloc(RBUF_MIN);
        if (!s->rbuf) {
            s->err_no = ENOMEM;
            s->err_msg = NULL;
            return GL_IO_ERROR;
        }
        s->rcap = RBUF_MIN;
        s->rpos = s->rlen = 0;
    }
    if (s->rpos && s->rpos + s->rlen == s->rcap) {
        memmove(s->rbuf, s->rbuf + s->rpos, s->rlen);
        s->rpos = 0;
    }
    if (s->rlen == s->rcap) {
        char *p = realloc(s->rbuf, s->rcap * 2);
        if (!p) {
            s->err_no = ENOMEM;
            s->err_msg = NULL;
            return GL_IO_ERROR;
        }
        s->rbuf = p;
        s->rcap *= 2;
    }
    size_t room = s->rcap - s->rpos - s->rlen;
    ssize_t n = s->io->recv(s, s->rbuf + s->rpos + s->rlen, room);
    if (n > 0)
        s->rlen += (size_t)n;
    else if (n == 0)
        s->eof = 1;
    return n;
}

static void take(lua_State *L, gl_sock *s, size_t n, size_t skip)
{
    lua_pushlstring(L, s->rbuf + s->rpos, n);
    s->rpos += n + skip;
    s->rlen -= n + skip;
    if (!s->rlen)
        s->rpos = 0;
}

/* One format; 1 when a result was pushed (nil at EOF counts), 0 when more input is
 * needed, or the GL_IO_* code of a failed fill. */
static int read_one(lua_State *L, gl_sock *s, int arg)
{
    if (lua_type(L, arg) == LUA_TNUMBER) {
        size_t want = (size_t)luaL_checkinteger(L, arg);
        if (want == 0) { /* as file:read(0): "" while there is more to read, nil at EOF */
            if (!s->rlen && !s->eof)
                return 0;
            if (s->rlen)
                lua_pushliteral(L, "");
            else
                lua_pushnil(L);
            return 1;
        }
        if (s->rlen >= want) {
            take(L, s, want, 0);
            return 1;
        }
        if (s->eof) {
            if (s->rlen)
                take(L, s, s->rlen, 0);
            else
                lua_pushnil(L);
            return 1;
        }
        return 0;
    }
    const char *fmt = luaL_checkstring(L, arg);
    if (*fmt == '*')
        fmt++; /* Lua 5.1 spelling: "*l" */
    switch (*fmt) {
    case 'l':
    case 'L': {
        const char *nl = s->rlen ? memchr(s->rbuf + s->rpos, '\n', s->rlen) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - (s->rbuf + s->rpos));
            if (*fmt == 'L')
                take(L, s, n + 1, 0);
            else
                take(L, s, n, 1);
            return 1;
        }
        if (s->eof) {
            if (s->rlen)
                take(L, s, s->rlen, 0);
            else
                lua_pushnil(L);
            return 1;
        }
        return 0;
    }
    case 'a':
        if (s->eof) {
            if (s->rlen)
                take(L, s, s->rlen, 0);
            else
                lua_pushliteral(L, "");
            return 1;
        }
        return 0;
    default:
        return luaL_argerror(L, arg, "invalid format (\"l\", \"L\", \"a\" or a count)");
    }
}

/* stack: sock, fmt..., results so far; ctx = index of the format being read */
static int sock_read_k(lua_State *L, int status, lua_KContext ctx)
{
    gl_sock *s = lua_touserdata(L, 1); /* checked by the entry function */
    int r = gl_sock_after_wait(L, s, status);
    if (r < 0)
        return -r;
    int first = 2, i = (int)ctx;
    int nfmt = lua_gettop(L) - 1 - (i - first);
    for (; i < first + nfmt; i++) {
        for (;;) {
            int got = read_one(L, s, i);
            if (got == 1)
                break;
            ssize_t n = gl_sock_fill(s);
            if (n == GL_IO_WAIT_READ || n == GL_IO_WAIT_WRITE)
                return WAIT_READER(L, s, (int)n, sock_read_k, i);
            if (n == GL_IO_ERROR)
                return gl_sock_fail(L, s, 0);
        }
        if (lua_isnil(L, -1))
            return i - first + 1; /* like file:read, stop at the first failure */
    }
    return nfmt;
}

static int sock_read(lua_State *L)
{
    gl_sock_check_open(L, 1);
    if (lua_gettop(L) == 1)
        lua_pushliteral(L, "l");
    return sock_read_k(L, LUA_OK, 2);
}

/* ---- sending ---- */

/* socket:sendall(s) -> true | nil, err; ctx = bytes already sent */
static int sock_sendall_k(lua_State *L, int status, lua_KContext ctx)
{
    gl_sock *s = lua_touserdata(L, 1); /* checked by the entry function */
    int r = gl_sock_after_wait(L, s, status);
    if (r < 0)
        return -r;
    size_t len;
    const char *data = lua_tolstring(L, 2, &len); /* checked by the entry function */
    size_t off = (size_t)ctx;
    while (off < len) {
        ssize_t n = s->io->send(s, data + off, len - off);
        if (n > 0)
            off += (size_t)n;
        else if (n == GL_IO_WAIT_READ || n == GL_IO_WAIT_WRITE)
            return WAIT_WRITER(L, s, (int)n, sock_sendall_k, (lua_KContext)off);
        else
            return gl_sock_fail(L, s, 0);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int sock_sendall(lua_State *L)
{
    gl_sock_check_open(L, 1);
    luaL_checkstring(L, 2);
    return sock_sendall_k(L, LUA_OK, 0);
}

static int sock_send_k(lua_State *L, int status, lua_KContext ctx)
{
    gl_sock *s = lua_touserdata(L, 1); /* checked by the entry function */
    int r = gl_sock_after_wait(L, s, status);
    if (r < 0)
        return -r;
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    if (len == 0) {
        lua_pushinteger(L, 0);
        return 1;
    }
    ssize_t n = s->io->send(s, data, len);
    if (n >= 0) {
        lua_pushinteger(L, n);
        return 1;
    }
    if (n == GL_IO_WAIT_READ || n == GL_IO_WAIT_WRITE)
        return WAIT_WRITER(L, s, (int)n, sock_send_k, ctx);
    return gl_sock_fail(L, s, 0);
}

static int sock_send(lua_State *L)
{
    gl_sock_check_open(L, 1);
    luaL_checkstring(L, 2);
    lua_settop(L, 2);
    return sock_send_k(L, LUA_OK, 0);
}

static int sock_settimeout(lua_State *L)
{
    gl_sock *s = gl_sock_check(L, 1);
    if (lua_isnoneornil(L, 2))
        s->timeout = -1;
    else {
        double t = luaL_checknumber(L, 2);
        s->timeout = t < 0 ? -1 : t;
    }
    lua_settop(L, 1);
    return 1;
}

static int sock_gettimeout(lua_State *L)
{
    gl_sock *s = gl_sock_check(L, 1);
    if (s->timeout < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, s->timeout);
    return 1;
}

void gl_sock_setup_metatable(lua_State *L, const char *mt)
{
    static const luaL_Reg methods[] = {{"recv", sock_recv},
                                       {"read", sock_read},
                                       {"send", sock_send},
                                       {"sendall", sock_sendall},
                                       {"settimeout", sock_settimeout},
                                       {"gettimeout", sock_gettimeout},
                                       {"close", sock_close},
                                       {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", sock_close}, {"__close", sock_close}, {NULL, NULL}};
    luaL_newmetatable(L, mt);
    luaL_setfuncs(L, meta, 0);
    if (lua_getfield(L, -1, "__index") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "__index");
    }
    luaL_setfuncs(L, methods, 0);
    gl_sockctl_setfuncs(L); /* sockctl.c: addresses, connecting, datagrams, options */
    lua_pop(L, 2);
}

int gl_open_socket(lua_State *L)
{
    gl_sock_setup_metatable(L, GL_SOCK_MT);
    lua_pushcfunction(L, gl_sockctl_new);
    lua_setfield(L, -2, "socket");
    luaL_getmetatable(L, GL_SOCK_MT);
    lua_getfield(L, -1, "__index");
    lua_setfield(L, -3, "socket_methods"); /* socket.lua adds its Lua methods here */
    lua_pop(L, 1);
    return 0;
}
