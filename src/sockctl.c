/* Making, connecting and configuring green sockets: numeric addresses, bind/listen/
 * accept/connect, UDP datagrams, options and queries. The byte paths and the waits they
 * share are socket.c's; name lookup is socket.lua's. */
#include "socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <lauxlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* ---- addresses ---- */

static int family_of(lua_State *L, int idx)
{
    static const char *const names[] = {"inet", "inet6", "unix", NULL};
    static const int values[] = {AF_INET, AF_INET6, AF_UNIX};
    return values[luaL_checkoption(L, idx, "inet", names)];
}

/* The port argument at idx (0 when absent and optional): the kernel would take an
 * out-of-range one modulo 65536 and bind or reach some other port without a word. The
 * message names no function: gl.listen, gl.connect and sendto reach here by internal ones. */
static int check_port(lua_State *L, int idx, int optional)
{
    if (optional && lua_isnoneornil(L, idx))
        return 0;
    if (lua_type(L, idx) != LUA_TNUMBER && lua_type(L, idx) != LUA_TSTRING)
        luaL_checkinteger(L, idx); /* raises the usual type error */
    int is_int;
    lua_Integer port = lua_tointegerx(L, idx, &is_int);
    if (!is_int || port < 0 || port > 65535)
        return luaL_error(L, "port out of range: %s", luaL_tolstring(L, idx, NULL));
    return (int)port;
}

/* Fills ss from a numeric host (or a path for AF_UNIX); 0, or -1 with a message pushed. */
static int to_sockaddr(lua_State *L, int family, const char *host, int port,
                       struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (family == AF_UNIX) {
        struct sockaddr_un *su = (struct sockaddr_un *)ss;
        size_t n = strlen(host);
        if (n >= sizeof su->sun_path) {
            lua_pushfstring(L, "unix socket path too long: %s", host);
            return -1;
        }
        su->sun_family = AF_UNIX;
        memcpy(su->sun_path, host, n + 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        return 0;
    }
    if (family == AF_INET) {
        struct sockaddr_in *si = (struct sockaddr_in *)ss;
        si->sin_family = AF_INET;
        si->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &si->sin_addr) != 1) {
            lua_pushfstring(L, "not a numeric IPv4 address: %s", host);
            return -1;
        }
        *len = sizeof *si;
        return 0;
    }
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) {
        lua_pushfstring(L, "not a numeric IPv6 address: %s", host);
        return -1;
    }
    *len = sizeof *s6;
    return 0;
}

/* [-0, +2] host, port (or path, nil for a Unix socket) */
static int push_sockaddr(lua_State *L, const struct sockaddr *sa, socklen_t len)
{
    char buf[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *si = (const struct sockaddr_in *)sa;
        lua_pushstring(L, inet_ntop(AF_INET, &si->sin_addr, buf, sizeof buf));
        lua_pushinteger(L, ntohs(si->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        lua_pushstring(L, inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf));
        lua_pushinteger(L, ntohs(s6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *su = (const struct sockaddr_un *)sa;
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                       ? strnlen(su->sun_path, len - offsetof(struct sockaddr_un, sun_path))
                       : 0;
        lua_pushlstring(L, su->sun_path, n);
        lua_pushnil(L);
    } else {
        lua_pushnil(L);
        lua_pushnil(L);
    }
    return 2;
}

/* ---- creating, binding, listening ---- */

/* core.socket(family, "stream"|"dgram") -> socket */
int gl_sockctl_new(lua_State *L)
{
    int family = family_of(L, 1);
    static const char *const types[] = {"stream", "dgram", NULL};
    int type = luaL_checkoption(L, 2, "stream", types) == 0 ? SOCK_STREAM : SOCK_DGRAM;
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return gl_sock_fail(L, NULL, errno);
    gl_sock_push(L, fd, family, type, GL_SOCK_MT);
    return 1;
}

static int sock_bind(lua_State *L)
{
    gl_sock *s = gl_sock_check_open(L, 1);
    const char *host = luaL_checkstring(L, 2);
    int port = check_port(L, 3, 1);
    struct sockaddr_storage ss;
    socklen_t len;
    if (to_sockaddr(L, s->family, host, port, &ss, &len) != 0)
        return lua_error(L);
    if (bind(s->fd, (struct sockaddr *)&ss, len) != 0)
        return gl_sock_fail(L, s, errno);
    lua_pushboolean(L, 1);
    return 1;
}

static int sock_listen(lua_State *L)
{
    gl_sock *s = gl_sock_check_open(L, 1);
    int backlog = (int)luaL_optinteger(L, 2, SOMAXCONN);
    if (listen(s->fd, backlog) != 0)
        return gl_sock_fail(L, s, errno);
    s->listening = 1;
    lua_pushboolean(L, 1);
    return 1;
}

static int sock_accept_k(lua_State *L, int status, lua_KContext ctx)
{
    gl_sock *s = lua_touserdata(L, 1); /* checked by the entry function */
    int r = gl_sock_after_wait(L, s, status);
    if (r < 0)
        return -r;
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(s->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            gl_sock_push(L, fd, s->family, s->type, GL_SOCK_MT);
            if (s->family == AF_UNIX) {
                push_sockaddr(L, (struct sockaddr *)&ss, len);
                lua_pop(L, 1);
                return 2;
            }
            push_sockaddr(L, (struct sockaddr *)&ss, len);
            return 3;
        }
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return WAIT_READER(L, s, GL_IO_WAIT_READ, sock_accept_k, ctx);
        return gl_sock_fail(L, s, errno);
    }
}

static int sock_accept(lua_State *L)
{
    gl_sock *s = gl_sock_check_open(L, 1);
    if (!s->listening)
        return luaL_error(L, "socket:accept: the socket is not listening");
    lua_settop(L, 1);
    return sock_accept_k(L, LUA_OK, 0);
}

/* socket:_connect(numeric_host_or_path, port) -> true | nil, err */
static int sock_connect_k(lua_State *L, int status, lua_KContext ctx)
{
    gl_sock *s = lua_touserdata(L, 1); /* checked by the entry function */
    int r = gl_sock_after_wait(L, s, status);
    if (r < 0)
        return -r;
    if (ctx) { /* the connect was in progress: how did it end? */
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err)
            return gl_sock_fail(L, s, err);
        lua_pushboolean(L, 1);
        return 1;
    }
    struct sockaddr_storage ss;
    socklen_t len;
    if (to_sockaddr(L, s->family, luaL_checkstring(L, 2), check_port(L, 3, 1), &ss, &len) != 0)
        return lua_error(L);
    if (connect(s->fd, (struct sockaddr *)&ss, len) == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (errno == EINPROGRESS || errno == EINTR)
        return WAIT_WRITER(L, s, GL_IO_WAIT_WRITE, sock_connect_k, 1);
    if (errno == EAGAIN && s->family == AF_UNIX) /* a full backlog: wait like TCP */
        return WAIT_WRITER(L, s, GL_IO_WAIT_WRITE, sock_connect_k, 0);
    return gl_sock_fail(L, s, errno);
}

static int sock_connect(lua_State *L)
{
    gl_sock_check_open(L, 1);
    lua_settop(L, 3);
    return sock_connect_k(L, LUA_OK, 0);
}

/* ---- datagrams ---- */

static int sock_recvfrom_k(lua_State *L, int status, lua_KContext ctx)
{
    gl_sock *s = lua_touserdata(L, 1); /* checked by the entry function */
    int r = gl_sock_after_wait(L, s, status);
    if (r < 0)
        return -r;
    lua_Integer want = luaL_optinteger(L, 2, GL_SOCK_SCRATCH);
    size_t n = want > 0 && (size_t)want < GL_SOCK_SCRATCH ? (size_t)want : GL_SOCK_SCRATCH;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    for (;;) {
        ssize_t got = recvfrom(s->fd, gl_sock_scratch, n, 0, (struct sockaddr *)&ss, &len);
        if (got >= 0) {
            lua_pushlstring(L, gl_sock_scratch, (size_t)got);
            push_sockaddr(L, (struct sockaddr *)&ss, len);
            return 3;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return WAIT_READER(L, s, GL_IO_WAIT_READ, sock_recvfrom_k, ctx);
        return gl_sock_fail(L, s, errno);
    }
}

static int sock_recvfrom(lua_State *L)
{
    gl_sock_check_open(L, 1);
    lua_settop(L, 2);
    return sock_recvfrom_k(L, LUA_OK, 0);
}

/* socket:_sendto(data, numeric_host, port) */
static int sock_sendto_k(lua_State *L, int status, lua_KContext ctx)
{
    gl_sock *s = lua_touserdata(L, 1); /* checked by the entry function */
    int r = gl_sock_after_wait(L, s, status);
    if (r < 0)
        return -r;
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    struct sockaddr_storage ss;
    socklen_t slen;
    if (to_sockaddr(L, s->family, luaL_checkstring(L, 3), check_port(L, 4, 0), &ss, &slen) != 0)
        return lua_error(L);
    for (;;) {
        ssize_t n = sendto(s->fd, data, len, MSG_NOSIGNAL, (struct sockaddr *)&ss, slen);
        if (n >= 0) {
            lua_pushinteger(L, n);
            return 1;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return WAIT_WRITER(L, s, GL_IO_WAIT_WRITE, sock_sendto_k, ctx);
        return gl_sock_fail(L, s, errno);
    }
}

static int sock_sendto(lua_State *L)
{
    gl_sock_check_open(L, 1);
    lua_settop(L, 4);
    return sock_sendto_k(L, LUA_OK, 0);
}

/* ---- options and queries ---- */

static int sock_setoption(lua_State *L)
{
    gl_sock *s = gl_sock_check_open(L, 1);
    static const char *const names[] = {"nodelay", "keepalive", "reuseaddr", "reuseport",
                                        "rcvbuf",  "sndbuf",    "linger",    NULL};
    int opt = luaL_checkoption(L, 2, NULL, names);
    int rc;
    if (opt == 6) {
        struct linger lg = {0, 0};
        if (lua_toboolean(L, 3)) {
            lg.l_onoff = 1;
            lg.l_linger = lua_isinteger(L, 3) ? (int)lua_tointeger(L, 3) : 0;
        }
        rc = setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    } else {
        int v = (opt == 4 || opt == 5) ? (int)luaL_checkinteger(L, 3) : lua_toboolean(L, 3);
        static const int levels[] = {IPPROTO_TCP, SOL_SOCKET, SOL_SOCKET,
                                     SOL_SOCKET,  SOL_SOCKET, SOL_SOCKET};
        static const int optnames[] = {TCP_NODELAY,  SO_KEEPALIVE, SO_REUSEADDR,
                                       SO_REUSEPORT, SO_RCVBUF,    SO_SNDBUF};
        rc = setsockopt(s->fd, levels[opt], optnames[opt], &v, sizeof v);
    }
    if (rc != 0)
        return gl_sock_fail(L, s, errno);
    lua_pushboolean(L, 1);
    return 1;
}

static int sock_shutdown(lua_State *L)
{
    gl_sock *s = gl_sock_check_open(L, 1);
    static const char *const hows[] = {"r", "w", "rw", NULL};
    static const int values[] = {SHUT_RD, SHUT_WR, SHUT_RDWR};
    int how = values[luaL_checkoption(L, 2, "rw", hows)];
    if (shutdown(s->fd, how) != 0)
        return gl_sock_fail(L, s, errno);
    lua_pushboolean(L, 1);
    return 1;
}

static int sock_name(lua_State *L, int peer)
{
    gl_sock *s = gl_sock_check_open(L, 1);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int rc = peer ? getpeername(s->fd, (struct sockaddr *)&ss, &len)
                  : getsockname(s->fd, (struct sockaddr *)&ss, &len);
    if (rc != 0)
        return gl_sock_fail(L, s, errno);
    return push_sockaddr(L, (struct sockaddr *)&ss, len);
}

static int sock_getpeername(lua_State *L)
{
    return sock_name(L, 1);
}

static int sock_getsockname(lua_State *L)
{
    return sock_name(L, 0);
}

static int sock_fileno(lua_State *L)
{
    lua_pushinteger(L, gl_sock_check(L, 1)->fd);
    return 1;
}

static int sock_family(lua_State *L)
{
    gl_sock *s = gl_sock_check(L, 1);
    lua_pushstring(L, s->family == AF_INET ? "inet" : s->family == AF_INET6 ? "inet6" : "unix");
    lua_pushstring(L, s->type == SOCK_STREAM ? "stream" : "dgram");
    return 2;
}

static int sock_closed(lua_State *L)
{
    lua_pushboolean(L, gl_sock_check(L, 1)->fd < 0);
    return 1;
}

static int sock_tostring(lua_State *L)
{
    gl_sock *s = gl_sock_check(L, 1);
    if (s->fd < 0)
        lua_pushliteral(L, "gl.socket (closed)");
    else
        lua_pushfstring(L, "gl.socket (fd %d)", s->fd);
    return 1;
}

void gl_sockctl_setfuncs(lua_State *L)
{
    static const luaL_Reg methods[] = {{"bind", sock_bind},
                                       {"listen", sock_listen},
                                       {"accept", sock_accept},
                                       {"_connect", sock_connect},
                                       {"recvfrom", sock_recvfrom},
                                       {"_sendto", sock_sendto},
                                       {"setoption", sock_setoption},
                                       {"shutdown", sock_shutdown},
                                       {"getpeername", sock_getpeername},
                                       {"getsockname", sock_getsockname},
                                       {"fileno", sock_fileno},
                                       {"family", sock_family},
                                       {"closed", sock_closed},
                                       {NULL, NULL}};
    luaL_setfuncs(L, methods, 0);
    lua_pushcfunction(L, sock_tostring);
    lua_setfield(L, -3, "__tostring"); /* stack: metatable, __index */
}
