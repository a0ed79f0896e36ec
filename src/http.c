/* gl.http's input: request and response heads parsed straight out of a green socket's
 * read-ahead buffer into Lua tables, and body readers that take from the same buffer.
 * Responses and the access log are http_out.c; policy (keep-alive, limits, the app call,
 * the client's connection pool) lives in lua/gl/http/, but for core.http_serve: the server's
 * keep-alive loop, which hands every request that needs that policy back to it. */
#include "http.h"
#include "hub.h"
#include "http_int.h"

#include "http_parser.h"
#include "socket.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SCRATCH_SIZE 65536
#define BODY_MT "gl.http.body"
#define HEADERS_MT "gl.http.headers" /* the case-insensitive metatable of headers tables */

static const char *const upvalue_strings[] = {
    "method",  "target",     "path",     "query",    "version",  "headers", "_f",
    "_body",   "_reject",    "_upgrade", "1.1",      "1.0",      "status",  "reason",
    "referer", "user-agent", "busy",     "stopping", "_hijacked"};
#define KEY(L, k) lua_pushvalue(L, UV(k))

/* [-1, +0] t[upvalue k] = value on top (t an absolute index) */
static void set_k(lua_State *L, int t, int k)
{
    lua_pushvalue(L, UV(k));
    lua_insert(L, -2);
    lua_rawset(L, t);
}

static _Thread_local char scratch[SCRATCH_SIZE];

/* ---- reading into the socket's read-ahead buffer ---- */

static void consume(gl_sock *s, size_t n)
{
    s->rpos += n;
    s->rlen -= n;
    if (!s->rlen)
        s->rpos = 0;
}

static void check_reader(lua_State *L, gl_sock *s)
{
    if (s->reader && s->reader != gl_current(L))
        luaL_error(L, "another green thread is already reading this socket");
}

static int fail(lua_State *L, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

/* ---- heads into tables ---- */

/* [-0, +1] Pushes the name lowercased (interned like any short string). */
static void push_lower(lua_State *L, const char *p, size_t n)
{
    char tmp[128] = {0}; /* zeroed: gcc cannot see that only n bytes are read */
    char *d = n <= sizeof tmp ? tmp : malloc(n);
    if (!d)
        luaL_error(L, "gl.http: out of memory");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        d[i] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
    }
    lua_pushlstring(L, d, n);
    if (d != tmp)
        free(d);
}

/* [-0, +1] Pushes a headers table: lowercase keys, repeats joined with ", " (or gathered in a
 * list for Set-Cookie when cookie_list), with the case-insensitive metatable. */
static void push_headers(lua_State *L, const gl_http_header *h, size_t n, int cookie_list)
{
    lua_createtable(L, 0, (int)n);
    int t = lua_gettop(L);
    for (size_t i = 0; i < n; i++) {
        push_lower(L, h[i].name.p, h[i].name.len);
        int is_cookie =
            cookie_list && h[i].name.len == 10 && gl_http_name_eq(h[i].name, "set-cookie");
        lua_pushvalue(L, -1);
        if (lua_rawget(L, t) == LUA_TNIL) { /* stack: name, nil */
            lua_pop(L, 1);
            if (is_cookie) {
                lua_createtable(L, 2, 0);
                lua_pushlstring(L, h[i].value.p, h[i].value.len);
                lua_rawseti(L, -2, 1);
            } else {
                lua_pushlstring(L, h[i].value.p, h[i].value.len);
            }
        } else if (is_cookie) { /* stack: name, list */
            lua_pushlstring(L, h[i].value.p, h[i].value.len);
            lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        } else { /* stack: name, old */
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, h[i].value.p, h[i].value.len);
            lua_concat(L, 3);
        }
        lua_rawset(L, t);
    }
    lua_pushvalue(L, UV_HEADERS_MT);
    lua_setmetatable(L, t);
}

/* __index of header tables: look the name up lowercased */
static int headers_index(lua_State *L)
{
    if (lua_type(L, 2) != LUA_TSTRING)
        return 0;
    size_t n;
    const char *k = lua_tolstring(L, 2, &n);
    push_lower(L, k, n);
    lua_rawget(L, 1);
    return 1;
}

static int headers_newindex(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING) {
        size_t n;
        const char *k = lua_tolstring(L, 2, &n);
        push_lower(L, k, n);
    } else {
        lua_pushvalue(L, 2);
    }
    lua_pushvalue(L, 3);
    lua_rawset(L, 1);
    return 0;
}

/* ---- request headers, made Lua strings only when asked for ----
 * A request's headers table starts with one private entry: the header bytes (a lazy_head
 * userdata) under a light-userdata key. Its metatable, shared by every such table, looks a
 * name up in those bytes. pairs() or a write first fills in every field, drops the entry and
 * gives the table the plain headers metatable. Turning 20 headers into 40 strings and a table
 * was the largest user-space cost of a realistic request (about 1 us), and most apps read two
 * or three of them; a metatable per request (holding the bytes as its __index) cost another
 * 1,000 instructions. */
#define LAZY_HEAD_MT "gl.http.lazyhead" /* of the tables holding a lazy_head */
static const char lazy_key;             /* its address: the key of a headers table's lazy_head */

typedef struct lazy_field {
    uint32_t name, name_len, value, value_len; /* offsets into the copied bytes */
} lazy_field;

/* The fields are 4 uint16_t each when the bytes fit (the usual case: it keeps a typical head
 * under 1 KB, where glibc's malloc stays on its fast path), else 4 uint32_t; then the bytes. */
typedef struct lazy_head {
    uint32_t magic; /* LAZY_MAGIC: checked on every lookup (cheaper than a metatable) */
    uint32_t n, wide;
} lazy_head;
#define LAZY_MAGIC 0x676c6c68u /* "gllh" */

static size_t lazy_field_size(const lazy_head *u)
{
    return u->wide ? 4 * sizeof(uint32_t) : 4 * sizeof(uint16_t);
}

static const char *lazy_bytes(const lazy_head *u)
{
    return (const char *)(u + 1) + u->n * lazy_field_size(u);
}

static lazy_field lazy_get(const lazy_head *u, uint32_t i)
{
    if (u->wide) {
        const uint32_t *f = (const uint32_t *)(const void *)(u + 1) + 4 * i;
        return (lazy_field){f[0], f[1], f[2], f[3]};
    }
    const uint16_t *f = (const uint16_t *)(const void *)(u + 1) + 4 * i;
    return (lazy_field){f[0], f[1], f[2], f[3]};
}

static int lazy_name_is(const lazy_head *u, uint32_t i, const char *k, size_t n)
{
    lazy_field f = lazy_get(u, i);
    return f.name_len == n && gl_http_ieq(lazy_bytes(u) + f.name, n, k, n);
}

/* [-0, +1] Pushes the value of the fields named like field i, from i on (joined with ", "). */
static void lazy_push_value(lua_State *L, const lazy_head *u, uint32_t i)
{
    const char *b = lazy_bytes(u);
    lazy_field f = lazy_get(u, i);
    uint32_t next = i + 1;
    while (next < u->n && !lazy_name_is(u, next, b + f.name, f.name_len))
        next++;
    if (next == u->n) { /* the common case: one field of that name */
        lua_pushlstring(L, b + f.value, f.value_len);
        return;
    }
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    luaL_addlstring(&buf, b + f.value, f.value_len);
    for (uint32_t j = next; j < u->n; j++) {
        if (lazy_name_is(u, j, b + f.name, f.name_len)) {
            lazy_field g = lazy_get(u, j);
            luaL_addlstring(&buf, ", ", 2);
            luaL_addlstring(&buf, b + g.value, g.value_len);
        }
    }
    luaL_pushresult(&buf);
}

/* [-0, +1] Pushes the private entry of the headers table at idx and returns it as a
 * lazy_head, or NULL when it is not one. Only gl makes a userdata that starts with the magic
 * number and is long enough for its fields. */
static const lazy_head *push_lazy(lua_State *L, int idx)
{
    if (lua_rawgetp(L, idx, &lazy_key) != LUA_TUSERDATA)
        return NULL;
    const lazy_head *u = lua_touserdata(L, -1);
    size_t len = lua_rawlen(L, -1);
    if (len < sizeof *u || u->magic != LAZY_MAGIC || len < sizeof *u + u->n * lazy_field_size(u))
        return NULL;
    return u;
}

void gl_http_headers_fill(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx) || !lua_getmetatable(L, idx))
        return; /* the common case, cheaply */
    lua_pop(L, 1);
    const lazy_head *u = push_lazy(L, idx); /* on the stack: alive while the entry goes */
    if (!u) {
        lua_pop(L, 1);
        return;
    }
    lua_pushnil(L);
    lua_rawsetp(L, idx, &lazy_key);
    const char *b = lazy_bytes(u);
    for (uint32_t i = 0; i < u->n; i++) {
        lazy_field f = lazy_get(u, i);
        uint32_t j = 0;
        while (j < i && !lazy_name_is(u, j, b + f.name, f.name_len))
            j++;
        if (j < i)
            continue; /* joined into the first field of that name */
        push_lower(L, b + f.name, f.name_len);
        lazy_push_value(L, u, i);
        lua_rawset(L, idx);
    }
    lua_pop(L, 1);
    luaL_getmetatable(L, HEADERS_MT);
    lua_setmetatable(L, idx);
}

/* __index of a headers table holding a lazy_head. Found fields are not kept in the table: a
 * scan of the fields costs less than growing it. */
static int lazy_index(lua_State *L)
{
    if (lua_type(L, 2) != LUA_TSTRING || !lua_istable(L, 1))
        return 0;
    const lazy_head *u = push_lazy(L, 1);
    if (!u)
        return 0;
    size_t n;
    const char *k = lua_tolstring(L, 2, &n);
    const char *b = lazy_bytes(u);
    uint32_t i = 0;
    if (!u->wide) { /* the usual case, scanned without lazy_get's branch per field */
        const uint16_t *f = (const uint16_t *)(const void *)(u + 1);
        while (i < u->n && !(f[4 * i + 1] == n && gl_http_ieq(b + f[4 * i], n, k, n)))
            i++;
    } else {
        while (i < u->n && !lazy_name_is(u, i, k, n))
            i++;
    }
    if (i == u->n)
        return 0;
    lazy_push_value(L, u, i);
    return 1;
}

static int lazy_newindex(lua_State *L)
{
    gl_http_headers_fill(L, 1);
    return headers_newindex(L);
}

static int raw_next(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    if (lua_next(L, 1))
        return 2;
    lua_pushnil(L);
    return 1;
}

static int lazy_pairs(lua_State *L)
{
    gl_http_headers_fill(L, 1);
    lua_pushcfunction(L, raw_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* [-0, +1] Pushes the lazy headers table for the n fields h of a parsed head. */
static void push_lazy_headers(lua_State *L, const gl_http_header *h, size_t n)
{
    const char *first = n ? h[0].name.p : NULL;
    size_t span = n ? (size_t)(h[n - 1].value.p + h[n - 1].value.len - first) : 0;
    lua_createtable(L, 0, 1);
    lazy_head head = {LAZY_MAGIC, (uint32_t)n, span > UINT16_MAX};
    lazy_head *u = lua_newuserdatauv(L, sizeof head + n * lazy_field_size(&head) + span, 0);
    *u = head;
    if (head.wide) {
        uint32_t *f = (uint32_t *)(void *)(u + 1);
        for (size_t i = 0; i < n; i++, f += 4) {
            f[0] = (uint32_t)(h[i].name.p - first);
            f[1] = (uint32_t)h[i].name.len;
            f[2] = (uint32_t)(h[i].value.p - first);
            f[3] = (uint32_t)h[i].value.len;
        }
    } else { /* the usual case, per field a few stores */
        uint16_t *f = (uint16_t *)(void *)(u + 1);
        for (size_t i = 0; i < n; i++, f += 4) {
            f[0] = (uint16_t)(h[i].name.p - first);
            f[1] = (uint16_t)h[i].name.len;
            f[2] = (uint16_t)(h[i].value.p - first);
            f[3] = (uint16_t)h[i].value.len;
        }
    }
    if (span)
        memcpy((char *)lazy_bytes(u), first, span);
    lua_rawsetp(L, -2, &lazy_key);
    lua_pushvalue(L, UV(U_LAZY_MT));
    lua_setmetatable(L, -2);
}

typedef struct http_body {
    int mode; /* GL_HTTP_BODY_LENGTH, _CHUNKED or _CLOSE */
    int done, failed;
    uint64_t left;       /* LENGTH: bytes still to come */
    uint64_t total, max; /* CHUNKED: bytes so far, the limit (0: none) */
    gl_http_chunked ch;
} http_body;

/* [-0, +1] Pushes a body reader state. */
static http_body *push_body(lua_State *L, int mode, uint64_t len, uint64_t max)
{
    http_body *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    b->mode = mode;
    b->left = len;
    b->max = max;
    if (mode == GL_HTTP_BODY_CHUNKED)
        gl_http_chunked_init(&b->ch, 0);
    luaL_setmetatable(L, BODY_MT);
    return b;
}

/* [-0, +1] Builds the request table from a parsed head, with the connection's metatable (the
 * table at mt_idx: its __index holds remote_addr, scheme and the methods). */
/* Returns the request's flags, also its _f. */
static int push_request(lua_State *L, const gl_http_request *r, int mt_idx, uint64_t max_body)
{
    /* with a body, room for _body and what Request:read and :body add (_text, _continued):
     * a 9th key would rehash the table */
    lua_createtable(L, 0, r->content_length > 0 || r->chunked ? 11 : 8);
    int t = lua_gettop(L);
    KEY(L, U_METHOD);
    lua_pushlstring(L, r->method.p, r->method.len);
    lua_rawset(L, t);
    KEY(L, U_TARGET);
    lua_pushlstring(L, r->target.p, r->target.len);
    KEY(L, U_PATH);
    if (r->path.len == r->target.len)
        lua_pushvalue(L, -2); /* no query: path is the same string */
    else
        lua_pushlstring(L, r->path.p, r->path.len);
    lua_rawset(L, t);
    lua_rawset(L, t);
    KEY(L, U_QUERY);
    lua_pushlstring(L, r->query.p, r->query.len);
    lua_rawset(L, t);
    KEY(L, U_VERSION);
    lua_pushvalue(L, UV(r->minor ? U_V11 : U_V10));
    lua_rawset(L, t);
    KEY(L, U_HEADERS);
    push_lazy_headers(L, r->headers, r->nheaders);
    lua_rawset(L, t);
    int f = (r->keep_alive ? F_KEEP : 0) | (r->minor ? 0 : F_V10);
    if (r->method.len == 4 && memcmp(r->method.p, "HEAD", 4) == 0)
        f |= F_HEAD;
    if (r->content_length > 0 || r->chunked) {
        if (max_body && r->content_length > 0 && (uint64_t)r->content_length > max_body) {
            f |= F_REJECT;
        } else {
            KEY(L, U_BODY);
            push_body(L, r->chunked ? GL_HTTP_BODY_CHUNKED : GL_HTTP_BODY_LENGTH,
                      r->chunked ? 0 : (uint64_t)r->content_length, max_body);
            lua_rawset(L, t);
            f |= F_BODY;
            if (r->expect_continue)
                f |= F_EXPECT;
        }
    }
    if (r->upgrade) {
        KEY(L, U_UPGRADE);
        lua_pushboolean(L, 1);
        lua_rawset(L, t);
    }
    KEY(L, U_F);
    lua_pushinteger(L, f);
    lua_rawset(L, t);
    lua_pushvalue(L, mt_idx);
    lua_setmetatable(L, t);
    return f;
}

#define HEAD_DEADLINE 4 /* stack slot: when the head under way must be complete */
#define LIMITS_MT "gl.http.limits"
#define LIMITS_MAGIC 0x676c686cu /* "glhl" */

/* A server's limits, read once per connection instead of from 6 arguments per request:
 * luaL_opt* on each was about 800 instructions of a request's 14,500. 0 / negative: none. */
typedef struct http_limits {
    uint32_t magic; /* LIMITS_MAGIC: checked per request without luaL_checkudata's name look-up */
    lua_Integer max_head, max_target, max_body;
    double keepalive_timeout, timeout, header_timeout;
} http_limits;

/* core.http_limits(max_head, max_target, keepalive_timeout, timeout, max_body,
 *   header_timeout) -> limits for http_read_request; nil for any: none */
static int l_limits(lua_State *L)
{
    http_limits *lim = lua_newuserdatauv(L, sizeof *lim, 0);
    lim->magic = LIMITS_MAGIC;
    lim->max_head = luaL_optinteger(L, 1, 0);
    lim->max_target = luaL_optinteger(L, 2, 0);
    lim->keepalive_timeout = luaL_optnumber(L, 3, -1);
    lim->timeout = luaL_optnumber(L, 4, -1);
    lim->max_body = luaL_optinteger(L, 5, 0);
    lim->header_timeout = luaL_optnumber(L, 6, -1);
    luaL_setmetatable(L, LIMITS_MT);
    return 1;
}

/* core.http_read_request(sock, mt, limits) -> req | nil, err[, status]; mt is the
 * connection's request metatable, limits from core.http_limits. A head must arrive whole
 * within header_timeout of its first bytes, however it trickles (slowloris): else nil,
 * "timeout", 408. ctx: bytes of the buffer already parsed and found incomplete (re-parse
 * only when newer bytes hold a '\n'). */
/* One request's head into a table on top: returns 1 and sets *flags, or returns 2 or 3 with
 * nil, err[, status] on top. Waits for input by yielding to k with ctx scanned << shift (the
 * low bits are k's own). Slots 1-4 are the socket, mt, limits and HEAD_DEADLINE. */
static int read_step(lua_State *L, int status, size_t scanned, lua_KFunction k, int shift,
                     int *flags)
{
    gl_sock *s = check_sock(L);
    const http_limits *hl = lua_touserdata(L, 3); /* checked by the caller */
    double timeout = hl->timeout;
    if (status == LUA_YIELD) {
        s->timeout = timeout;
        int r = gl_sock_after_wait(L, s, status);
        if (r < 0) { /* nil, err only: a status is for the server to answer */
            lua_settop(L, lua_gettop(L) + r + 2);
            if (lua_isnumber(L, HEAD_DEADLINE) && gl_hub_now() >= lua_tonumber(L, HEAD_DEADLINE)) {
                lua_pushinteger(L, 408);
                return 3;
            }
            return 2;
        }
    }
    if (s->fd < 0)
        return fail(L, "closed");
    check_reader(L, s);
    gl_http_limits lim = {(size_t)hl->max_target, (size_t)hl->max_head, 0};
    size_t max_head = lim.max_head ? lim.max_head : GL_HTTP_DEFAULT_MAX_HEAD;
    for (;;) {
        if (s->rlen > scanned) {
            const char *buf = s->rbuf + s->rpos;
            if (scanned == 0 || s->rlen > max_head ||
                memchr(buf + scanned, '\n', s->rlen - scanned)) {
                gl_http_request req;
                int n = gl_http_parse_request(buf, s->rlen, &req, &lim);
                if (n > 0) {
                    *flags = push_request(L, &req, 2, (uint64_t)hl->max_body);
                    consume(s, (size_t)n);
                    if (s->rlen)
                        gl_sock_cork(L, s); /* pipelined: answer them in one segment */
                    return 1;
                }
                if (n < 0) {
                    lua_pushnil(L);
                    lua_pushliteral(L, "bad request");
                    lua_pushinteger(L, -n);
                    return 3;
                }
            }
            scanned = s->rlen;
        }
        if (s->eof)
            return fail(L, "closed");
        ssize_t got = gl_sock_fill(s);
        if (got > 0 || got == 0)
            continue;
        if (got == GL_IO_WAIT_READ || got == GL_IO_WAIT_WRITE) {
            s->timeout = s->rlen ? timeout : hl->keepalive_timeout;
            double head_timeout = hl->header_timeout;
            if (s->rlen && head_timeout >= 0) {
                double now = gl_hub_now();
                if (lua_isnil(L, HEAD_DEADLINE)) {
                    lua_pushnumber(L, now + head_timeout);
                    lua_replace(L, HEAD_DEADLINE);
                }
                double left = lua_tonumber(L, HEAD_DEADLINE) - now;
                if (left <= 0) {
                    lua_pushnil(L);
                    lua_pushliteral(L, "timeout");
                    lua_pushinteger(L, 408);
                    return 3;
                }
                if (s->timeout < 0 || left < s->timeout)
                    s->timeout = left;
            }
            return gl_sock_wait(L, s, (int)got, k, (lua_KContext)(scanned << shift));
        }
        return gl_sock_fail(L, s, 0);
    }
}

static int read_request_k(lua_State *L, int status, lua_KContext ctx)
{
    int flags;
    return read_step(L, status, (size_t)ctx, read_request_k, 0, &flags);
}

static void check_limits(lua_State *L)
{
    const http_limits *hl = lua_touserdata(L, 3);
    if (!hl || lua_rawlen(L, 3) != sizeof *hl || hl->magic != LIMITS_MAGIC)
        luaL_checkudata(L, 3, LIMITS_MT); /* raises the usual error */
}

static int l_read_request(lua_State *L)
{
    if (check_sock(L)->fd < 0)
        return luaL_error(L, "attempt to use a closed socket");
    luaL_checktype(L, 2, LUA_TTABLE);
    check_limits(L);
    lua_settop(L, HEAD_DEADLINE);
    return read_request_k(L, LUA_OK, 0);
}

/* core.http_serve(sock, mt, limits, app, on_error, state, srv, cinfo, log, host) -> phase,
 * ...: the keep-alive loop of gl.http.server, in C. Each request is read, answered by app
 * (under on_error, as xpcall does), sent and, when log is true, logged by http_log_write as
 * from host, for as long as nothing asks for the server's Lua policy; then it returns where
 * that policy takes over:
 *   SERVE_READ, req | nil, err[, status]   a request over max_body, or none
 *   SERVE_APP, req, ok, status, headers, body   the app failed, hijacked the connection,
 *       answered with a stream, or with something respond refuses, or left some of the
 *       request's body unread (the Lua policy drains or closes)
 *   SERVE_SENT, keep, rest1, rest2, req, status, nbytes   the answer is partly sent: the
 *       rest is for sendall, and it is not logged yet
 *   SERVE_LOGGED, keep   the log buffer was empty before this line: schedule a flush
 *   nothing   the connection is done: the client left, no keep-alive, or srv.stopping.
 * Sets state.busy while a request is under way, as the Lua loop does. */
enum { SERVE_READ = 1, SERVE_APP, SERVE_SENT, SERVE_LOGGED };
enum {
    S_APP = 5,
    S_ON_ERROR,
    S_STATE,
    S_SRV,
    S_CINFO,
    S_LOG,
    S_HOST,
    S_REQ
};                        /* 1-4: read_step's */
enum { AT_READ, AT_APP }; /* what serve_k resumes */

static int serve_k(lua_State *L, int status, lua_KContext ctx);

/* Whether the request at S_REQ has a body the app has not read to its end. */
static int body_unread(lua_State *L, int flags)
{
    if (!(flags & F_BODY))
        return 0;
    lua_pushvalue(L, UV(U_BODY));
    lua_rawget(L, S_REQ);
    const http_body *b = luaL_testudata(L, -1, BODY_MT); /* push_request's, unless replaced */
    int unread = !b || !b->done;
    lua_pop(L, 1);
    return unread;
}

static int field_is_true(lua_State *L, int t, int key)
{
    lua_pushvalue(L, UV(key));
    int yes = lua_rawget(L, t) != LUA_TNIL && lua_toboolean(L, -1);
    lua_pop(L, 1);
    return yes;
}

static void set_busy(lua_State *L, int busy)
{
    lua_pushvalue(L, UV(U_BUSY));
    lua_pushboolean(L, busy);
    lua_rawset(L, S_STATE);
}

/* [-n, +n+1] returns the n values on top, with phase before them */
static int serve_return(lua_State *L, int phase, int n)
{
    lua_pushinteger(L, phase);
    lua_insert(L, -(n + 1));
    return n + 1;
}

/* After the app: the request at S_REQ and the app's 3 results (or its error) on top. Sends
 * the answer; returns -1 to go on with the next request, or what serve returns. */
static int serve_answer(lua_State *L, int status, int flags)
{
    int ok = status == LUA_OK || status == LUA_YIELD;
    int top = lua_gettop(L), n = ok ? 3 : 1;
    if (!ok || field_is_true(L, S_CINFO, U_HIJACKED) || lua_type(L, top) == LUA_TFUNCTION ||
        body_unread(L, flags)) {
        lua_pushvalue(L, S_REQ);
        lua_pushboolean(L, ok);
        lua_rotate(L, top - n + 1, 2); /* req, ok before the results */
        return serve_return(L, SERVE_APP, n + 2);
    }
    if (field_is_true(L, S_SRV, U_STOPPING))
        flags &= ~F_KEEP;
    int base = top + 1;
    lua_pushvalue(L, 1);
    lua_pushinteger(L, flags);
    lua_pushvalue(L, top - 2);
    lua_pushvalue(L, top - 1);
    lua_pushvalue(L, top);
    int r = gl_http_respond_at(L, base);
    if (r == 3) { /* the app's answer cannot be sent, and nothing was: Lua says why, sends 500 */
        lua_settop(L, top);
        lua_pushvalue(L, S_REQ);
        lua_pushboolean(L, 1);
        lua_rotate(L, top - 2, 2);
        return serve_return(L, SERVE_APP, 5);
    }
    if (r == 2) /* nil, err: the client went away */
        return 0;
    int res = lua_gettop(L) - 4; /* keep, rest1, rest2, chunked, nbytes */
    int keep = lua_toboolean(L, res);
    if (!lua_isnil(L, res + 1) || !lua_isnil(L, res + 2)) {
        lua_pushvalue(L, res);
        lua_pushvalue(L, res + 1);
        lua_pushvalue(L, res + 2);
        lua_pushvalue(L, S_REQ);
        lua_pushvalue(L, top - 2);
        lua_pushvalue(L, res + 4);
        return serve_return(L, SERVE_SENT, 6);
    }
    if (lua_toboolean(L, S_LOG)) {
        int line = res + 5;
        lua_pushvalue(L, S_REQ);
        lua_pushvalue(L, top - 2);
        lua_pushvalue(L, res + 4);
        lua_pushvalue(L, S_HOST);
        gl_http_log_write_at(L, line);
        if (lua_toboolean(L, -1)) {
            lua_pushboolean(L, keep);
            return serve_return(L, SERVE_LOGGED, 1);
        }
    }
    return keep ? -1 : 0;
}

/* ctx: what it resumes in its low bit; above it, the head bytes already scanned (AT_READ)
 * or the request's flags (AT_APP) */
static int serve_k(lua_State *L, int status, lua_KContext ctx)
{
    size_t scanned = 0;
    if ((ctx & 1) == AT_APP) {
        int r = serve_answer(L, status, (int)(ctx >> 1));
        if (r >= 0)
            return r;
        status = LUA_OK;
    } else {
        scanned = (size_t)ctx >> 1;
    }
    for (;;) {
        if (status == LUA_OK) { /* a new request; else a wait for this one's head ended */
            lua_settop(L, S_REQ - 1);
            lua_pushnil(L); /* S_REQ: the last request is garbage now */
            lua_pushnil(L);
            lua_replace(L, HEAD_DEADLINE);
            if (field_is_true(L, S_SRV, U_STOPPING))
                return 0;
            set_busy(L, 0);
        }
        int flags = 0;
        int n = read_step(L, status, scanned, serve_k, 1, &flags); /* AT_READ: low bit 0 */
        set_busy(L, 1);
        if (n != 1 || (flags & F_REJECT))
            return serve_return(L, SERVE_READ, n);
        lua_replace(L, S_REQ);
        lua_settop(L, S_REQ); /* drops what the last wait's resume left */
        lua_pushvalue(L, S_APP);
        lua_pushvalue(L, S_REQ);
        int st = lua_pcallk(L, 1, 3, S_ON_ERROR, (lua_KContext)flags << 1 | AT_APP, serve_k);
        int r = serve_answer(L, st, flags);
        if (r >= 0)
            return r;
        status = LUA_OK;
        scanned = 0;
    }
}

static int l_serve(lua_State *L)
{
    if (check_sock(L)->fd < 0)
        return luaL_error(L, "attempt to use a closed socket");
    luaL_checktype(L, 2, LUA_TTABLE);
    check_limits(L);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    luaL_checktype(L, 6, LUA_TTABLE);
    luaL_checktype(L, 7, LUA_TTABLE);
    luaL_checktype(L, 8, LUA_TTABLE);
    lua_settop(L, 10);
    /* room for the slots, the app's results, respond's arguments and what respond pushes;
     * this frame keeps it across yields */
    luaL_checkstack(L, S_REQ + 3 + 5 + 4 + 2 * LUA_MINSTACK, NULL);
    lua_pushnil(L);
    lua_insert(L, HEAD_DEADLINE); /* app moves to S_APP and on */
    return serve_k(L, LUA_OK, 0);
}

/* core.http_read_response(sock, head_request, max_head) -> res, body|false, keep
 * | nil, err. res = {status, reason, version, headers}; 1xx heads other than 101 are
 * skipped. */
static int read_response_k(lua_State *L, int status, lua_KContext ctx)
{
    gl_sock *s = gl_sock_check(L, 1);
    size_t scanned = (size_t)ctx;
    int r = gl_sock_after_wait(L, s, status);
    if (r < 0)
        return -r;
    if (s->fd < 0)
        return fail(L, "closed");
    check_reader(L, s);
    gl_http_limits lim = {0, (size_t)luaL_optinteger(L, 3, 0), 0};
    size_t max_head = lim.max_head ? lim.max_head : GL_HTTP_DEFAULT_MAX_HEAD;
    for (;;) {
        if (s->rlen > scanned) {
            const char *buf = s->rbuf + s->rpos;
            if (scanned == 0 || s->rlen > max_head ||
                memchr(buf + scanned, '\n', s->rlen - scanned)) {
                static _Thread_local gl_http_response res;
                int n = gl_http_parse_response(buf, s->rlen, &res, &lim);
                if (n > 0 && res.status < 200 && res.status != 101) {
                    consume(s, (size_t)n); /* 100 Continue and friends: read the next head */
                    scanned = 0;
                    continue;
                }
                if (n > 0) {
                    lua_createtable(L, 0, 6);
                    int t = lua_gettop(L);
                    lua_pushinteger(L, res.status);
                    set_k(L, t, U_STATUS);
                    lua_pushlstring(L, res.reason.p, res.reason.len);
                    set_k(L, t, U_REASON);
                    lua_pushvalue(L, UV(res.minor ? U_V11 : U_V10));
                    set_k(L, t, U_VERSION);
                    push_headers(L, res.headers, res.nheaders, 1);
                    set_k(L, t, U_HEADERS);
                    gl_http_body mode = gl_http_response_body(&res, lua_toboolean(L, 2));
                    if (res.status == 101)
                        mode = GL_HTTP_BODY_NONE;
                    if (mode == GL_HTTP_BODY_NONE ||
                        (mode == GL_HTTP_BODY_LENGTH && res.content_length == 0))
                        lua_pushboolean(L, 0);
                    else
                        push_body(L, mode, (uint64_t)res.content_length, 0);
                    lua_pushboolean(L, res.keep_alive && mode != GL_HTTP_BODY_CLOSE &&
                                           res.status != 101);
                    consume(s, (size_t)n);
                    return 3;
                }
                if (n < 0)
                    return fail(L, "bad response");
            }
            scanned = s->rlen;
        }
        if (s->eof)
            return fail(L, "closed");
        ssize_t got = gl_sock_fill(s);
        if (got >= 0)
            continue;
        if (got == GL_IO_WAIT_READ || got == GL_IO_WAIT_WRITE)
            return gl_sock_wait(L, s, (int)got, read_response_k, (lua_KContext)scanned);
        return gl_sock_fail(L, s, 0);
    }
}

static int l_read_response(lua_State *L)
{
    gl_sock_check_open(L, 1);
    lua_settop(L, 3);
    return read_response_k(L, LUA_OK, 0);
}

/* ---- bodies ---- */

/* core.http_body_read(sock, body, n) -> up to n bytes | nil at the end | nil, err */
static int body_read_k(lua_State *L, int status, lua_KContext ctx)
{
    gl_sock *s = gl_sock_check(L, 1);
    http_body *b = luaL_checkudata(L, 2, BODY_MT);
    lua_Integer want = luaL_optinteger(L, 3, SCRATCH_SIZE);
    if (want <= 0)
        return luaL_argerror(L, 3, "positive byte count expected");
    size_t n = (size_t)want;
    int r = gl_sock_after_wait(L, s, status);
    if (r < 0)
        return -r;
    if (b->failed)
        return fail(L, b->failed == 413 ? "body too large" : "bad chunked body");
    if (b->done) {
        lua_pushnil(L);
        return 1;
    }
    if (s->fd < 0)
        return fail(L, "closed");
    check_reader(L, s);
    for (;;) {
        if (s->rlen) {
            const char *buf = s->rbuf + s->rpos;
            if (b->mode == GL_HTTP_BODY_CHUNKED) {
                size_t used;
                const char *data;
                size_t dlen;
                int r = gl_http_chunked_decode(&b->ch, buf, s->rlen < n ? s->rlen : n, &used, &data,
                                               &dlen);
                if (r == GL_HTTP_CHUNK_DATA) {
                    b->total += dlen;
                    if (b->max && b->total > b->max) {
                        b->failed = 413;
                        return fail(L, "body too large");
                    }
                    lua_pushlstring(L, data, dlen);
                    consume(s, used);
                    return 1;
                }
                consume(s, used);
                if (r == GL_HTTP_CHUNK_DONE) {
                    b->done = 1;
                    lua_pushnil(L);
                    return 1;
                }
                if (r < 0) {
                    b->failed = 400;
                    return fail(L, "bad chunked body");
                }
                continue; /* MORE: the slice was used up */
            }
            size_t k = s->rlen < n ? s->rlen : n;
            if (b->mode == GL_HTTP_BODY_LENGTH && k > b->left)
                k = (size_t)b->left;
            lua_pushlstring(L, buf, k);
            consume(s, k);
            if (b->mode == GL_HTTP_BODY_LENGTH && (b->left -= k) == 0)
                b->done = 1;
            return 1;
        }
        if (s->eof) {
            if (b->mode == GL_HTTP_BODY_CLOSE) {
                b->done = 1;
                lua_pushnil(L);
                return 1;
            }
            return fail(L, "closed");
        }
        ssize_t got;
        if (b->mode != GL_HTTP_BODY_CHUNKED) { /* big reads skip the buffer */
            size_t k = n < SCRATCH_SIZE ? n : SCRATCH_SIZE;
            if (b->mode == GL_HTTP_BODY_LENGTH && k > b->left)
                k = (size_t)b->left;
            got = s->io->recv(s, scratch, k);
            if (got > 0) {
                lua_pushlstring(L, scratch, (size_t)got);
                if (b->mode == GL_HTTP_BODY_LENGTH && (b->left -= (uint64_t)got) == 0)
                    b->done = 1;
                return 1;
            }
            if (got == 0)
                s->eof = 1;
        } else {
            got = gl_sock_fill(s);
        }
        if (got >= 0)
            continue;
        if (got == GL_IO_WAIT_READ || got == GL_IO_WAIT_WRITE)
            return gl_sock_wait(L, s, (int)got, body_read_k, ctx);
        return gl_sock_fail(L, s, 0);
    }
}

static int l_body_read(lua_State *L)
{
    gl_sock_check_open(L, 1);
    luaL_checkudata(L, 2, BODY_MT);
    lua_settop(L, 3);
    return body_read_k(L, LUA_OK, 0);
}

/* core.http_body_rest(sock, body) -> the rest of a Content-Length body when all of it is
 * in the read buffer already (the usual small body, which came with its head), else nil:
 * req:body() in one call instead of a loop of reads. */
static int l_body_rest(lua_State *L)
{
    gl_sock *s = gl_sock_check_open(L, 1);
    http_body *b = luaL_checkudata(L, 2, BODY_MT);
    if (b->mode != GL_HTTP_BODY_LENGTH || b->failed || b->done || b->left > s->rlen ||
        (s->reader && s->reader != gl_current(L)))
        return 0;
    lua_pushlstring(L, s->rbuf + s->rpos, (size_t)b->left);
    consume(s, (size_t)b->left);
    b->left = 0;
    b->done = 1;
    return 1;
}

/* core.http_body_done(body) -> true when the whole body has been read */
static int l_body_done(lua_State *L)
{
    http_body *b = luaL_checkudata(L, 1, BODY_MT);
    lua_pushboolean(L, b->done);
    return 1;
}

/* core.http_body(mode, length, max) -> a body state ("length", "chunked", "close") */
static int l_body(lua_State *L)
{
    static const char *const modes[] = {"length", "chunked", "close", NULL};
    static const int values[] = {GL_HTTP_BODY_LENGTH, GL_HTTP_BODY_CHUNKED, GL_HTTP_BODY_CLOSE};
    int mode = values[luaL_checkoption(L, 1, NULL, modes)];
    push_body(L, mode, (uint64_t)luaL_optinteger(L, 2, 0), (uint64_t)luaL_optinteger(L, 3, 0));
    return 1;
}

/* ---- odds and ends ---- */

/* core.http_alive(sock) -> whether an idle keep-alive connection looks reusable: nothing
 * buffered, no EOF, nothing readable (a close_notify or stray bytes mean it is not). */
static int l_alive(lua_State *L)
{
    gl_sock *s = gl_sock_check(L, 1);
    int ok = 0;
    if (s->fd >= 0 && !s->rlen && !s->eof && !(s->io->pending && s->io->pending(s))) {
        char c;
        ssize_t n = recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        ok = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    lua_pushboolean(L, ok);
    return 1;
}

int gl_open_http(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"http_read_request", l_read_request},
        {"http_serve", l_serve},
        {"http_limits", l_limits},
        {"http_read_response", l_read_response},
        {"http_body_read", l_body_read},
        {"http_body_rest", l_body_rest},
        {"http_body_done", l_body_done},
        {"http_body", l_body},
        {"http_respond", gl_http_respond},
        {"http_log_line", gl_http_log_line},
        {"http_log_write", gl_http_log_write},
        {"http_log_flush", gl_http_log_flush},
        {"http_alive", l_alive},
        {"http_date", gl_http_date},
        {NULL, NULL},
    };
    luaL_newmetatable(L, BODY_MT);
    lua_pop(L, 1);
    luaL_newmetatable(L, LIMITS_MT);
    lua_pop(L, 1);
    /* stack: core */
    luaL_newmetatable(L, HEADERS_MT);
    lua_pushcfunction(L, headers_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, headers_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "http_headers_mt");
    luaL_newmetatable(L, LAZY_HEAD_MT);
    lua_pushcfunction(L, lazy_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, lazy_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, lazy_pairs);
    lua_setfield(L, -2, "__pairs");
    for (int i = 0; i < (int)(sizeof upvalue_strings / sizeof *upvalue_strings); i++)
        lua_pushstring(L, upvalue_strings[i]);
    /* stack: core, headers_mt, lazy_head mt, strings... */
    luaL_setfuncs(L, funcs, U_COUNT);
    return 0;
}
