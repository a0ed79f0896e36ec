/* gl.http's byte paths: request and response heads parsed straight out of a green socket's
 * read-ahead buffer into Lua tables, body readers that take from the same buffer, a response
 * formatter that sends a small response in one write, and the access-log line. Policy
 * (keep-alive, limits, the app call, the client's connection pool) lives in lua/gl/http/. */
#include "http.h"

#include "http_parser.h"
#include "socket.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF_MIN 1024 /* small enough for malloc's per-thread cache */
#define SCRATCH_SIZE 65536
#define ONE_WRITE_MAX 65536 /* a response up to this size goes out in one send */
#define BODY_MT "gl.http.body"

/* request flags, req._f */
#define F_KEEP 1
#define F_HEAD 2
#define F_V10 4
#define F_EXPECT 8
#define F_BODY 16   /* _body is set */
#define F_REJECT 32 /* Content-Length over max_body: answer 413 */

/* Upvalues of every http_* function: two metatables, then interned strings, so the hot path
 * builds tables with lua_rawset and never looks a C string up. */
enum {
    U_HEADERS_MT = 1,
    U_SOCK_MT,
    U_METHOD,
    U_TARGET,
    U_PATH,
    U_QUERY,
    U_VERSION,
    U_HEADERS,
    U_F,
    U_BODY,
    U_REJECT,
    U_UPGRADE,
    U_V11,
    U_V10,
    U_STATUS,
    U_REASON,
    U_REFERER,
    U_USER_AGENT,
    U_COUNT = U_USER_AGENT
};
static const char *const upvalue_strings[] = {
    "method",  "target",   "path", "query", "version", "headers", "_f",      "_body",
    "_reject", "_upgrade", "1.1",  "1.0",   "status",  "reason",  "referer", "user-agent"};
#define UV(k) lua_upvalueindex(k)
#define UV_HEADERS_MT UV(U_HEADERS_MT)

#define KEY(L, k) lua_pushvalue(L, UV(k))

/* [-1, +0] t[upvalue k] = value on top (t an absolute index) */
static void set_k(lua_State *L, int t, int k)
{
    lua_pushvalue(L, UV(k));
    lua_insert(L, -2);
    lua_rawset(L, t);
}

/* The socket at index 1: the plain metatable is compared directly (the common case). */
static gl_sock *check_sock(lua_State *L)
{
    if (lua_getmetatable(L, 1)) {
        int plain = lua_rawequal(L, -1, UV(U_SOCK_MT));
        lua_pop(L, 1);
        if (plain)
            return lua_touserdata(L, 1);
    }
    return gl_sock_check(L, 1);
}

/* Appends the decimal digits of v to d; returns the end. */
static char *put_uint(char *d, unsigned long long v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *d++ = tmp[--n];
    return d;
}

static _Thread_local char scratch[SCRATCH_SIZE];

/* The output buffer: grows to the largest head + small body seen, never shrinks. */
static _Thread_local char *obuf;
static _Thread_local size_t ocap, olen;

static int out_reserve(size_t n)
{
    if (olen + n <= ocap)
        return 0;
    size_t cap = ocap ? ocap : 4096;
    while (cap < olen + n)
        cap *= 2;
    char *p = realloc(obuf, cap);
    if (!p)
        return -1;
    obuf = p;
    ocap = cap;
    return 0;
}

static void out_put(lua_State *L, const char *s, size_t n)
{
    if (out_reserve(n) != 0)
        luaL_error(L, "gl.http: out of memory");
    memcpy(obuf + olen, s, n);
    olen += n;
}

#define OUT_LIT(L, s) out_put(L, s, sizeof(s) - 1)

/* ---- time: the Date header and the log's timestamp, formatted once per second ---- */

static _Thread_local time_t date_sec = -1, log_sec = -1;
static _Thread_local char date_buf[64], log_time_buf[64];
static _Thread_local size_t date_len, log_time_len;

static void date_update(void)
{
    time_t now = time(NULL);
    if (now == date_sec)
        return;
    struct tm tm;
    gmtime_r(&now, &tm);
    date_len = strftime(date_buf, sizeof date_buf, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    date_sec = now;
}

static void log_time_update(void)
{
    time_t now = time(NULL);
    if (now == log_sec)
        return;
    struct tm tm;
    localtime_r(&now, &tm);
    log_time_len = strftime(log_time_buf, sizeof log_time_buf, "[%d/%b/%Y:%H:%M:%S %z]", &tm);
    log_sec = now;
}

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
    char tmp[128] = {0};
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
static void push_request(lua_State *L, const gl_http_request *r, int mt_idx, uint64_t max_body)
{
    lua_createtable(L, 0, 8);
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
    push_headers(L, r->headers, r->nheaders, 0);
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
}

/* core.http_read_request(sock, mt, max_head, max_target, keepalive_timeout, timeout,
 *   max_body) -> req | nil, err[, status]; mt is the connection's request metatable. ctx: bytes of
 * the buffer already parsed and found incomplete (re-parse only when newer bytes hold a '\n'). */
static int read_request_k(lua_State *L, int status, lua_KContext ctx)
{
    gl_sock *s = check_sock(L);
    size_t scanned = (size_t)ctx;
    double timeout = luaL_optnumber(L, 6, -1);
    if (status == LUA_YIELD) {
        s->timeout = timeout;
        int r = gl_sock_resumed(L, s);
        if (r < 0)
            return fail(L, "closed");
        if (r == 0)
            return fail(L, "timeout");
    }
    if (s->fd < 0)
        return fail(L, "closed");
    check_reader(L, s);
    gl_http_limits lim = {(size_t)luaL_optinteger(L, 4, 0), (size_t)luaL_optinteger(L, 3, 0), 0};
    size_t max_head = lim.max_head ? lim.max_head : GL_HTTP_DEFAULT_MAX_HEAD;
    for (;;) {
        if (s->rlen > scanned) {
            const char *buf = s->rbuf + s->rpos;
            if (scanned == 0 || s->rlen > max_head ||
                memchr(buf + scanned, '\n', s->rlen - scanned)) {
                gl_http_request req;
                int n = gl_http_parse_request(buf, s->rlen, &req, &lim);
                if (n > 0) {
                    push_request(L, &req, 2, (uint64_t)luaL_optinteger(L, 7, 0));
                    consume(s, (size_t)n);
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
            s->timeout = s->rlen ? timeout : luaL_optnumber(L, 5, -1);
            return gl_sock_wait(L, s, (int)got, read_request_k, (lua_KContext)scanned);
        }
        return gl_sock_fail(L, s, 0);
    }
}

static int l_read_request(lua_State *L)
{
    if (check_sock(L)->fd < 0)
        return luaL_error(L, "attempt to use a closed socket");
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 7);
    return read_request_k(L, LUA_OK, 0);
}

/* core.http_read_response(sock, head_request, max_head) -> res, body|false, keep
 * | nil, err. res = {status, reason, version, headers}; 1xx heads other than 101 are
 * skipped. */
static int read_response_k(lua_State *L, int status, lua_KContext ctx)
{
    gl_sock *s = gl_sock_check(L, 1);
    size_t scanned = (size_t)ctx;
    if (status == LUA_YIELD) {
        int r = gl_sock_resumed(L, s);
        if (r < 0)
            return fail(L, "closed");
        if (r == 0)
            return fail(L, "timeout");
    }
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
    if (status == LUA_YIELD) {
        int r = gl_sock_resumed(L, s);
        if (r < 0)
            return fail(L, "closed");
        if (r == 0)
            return fail(L, "timeout");
    }
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

/* ---- responses ---- */

static const char *reason_of(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 418:
        return "I'm a teapot";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

static int ieq(const char *a, size_t alen, const char *lit, size_t llen)
{
    if (alen != llen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if ((a[i] | 0x20) != lit[i])
            return 0;
    return 1;
}

#define IEQ_LIT(p, n, lit) ieq(p, n, lit, sizeof(lit) - 1)

static void check_field(lua_State *L, const char *p, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
            luaL_error(L, "gl.http: invalid character in a response header %s", what);
}

static void out_header(lua_State *L, const char *k, size_t klen, int vidx)
{
    size_t vlen;
    const char *v = lua_tolstring(L, vidx, &vlen);
    if (!v)
        luaL_error(L, "gl.http: header %s: string or number expected, got %s", k,
                   luaL_typename(L, vidx));
    check_field(L, v, vlen, "value");
    if (out_reserve(klen + vlen + 4) != 0)
        luaL_error(L, "gl.http: out of memory");
    memcpy(obuf + olen, k, klen);
    olen += klen;
    obuf[olen++] = ':';
    obuf[olen++] = ' ';
    memcpy(obuf + olen, v, vlen);
    olen += vlen;
    obuf[olen++] = '\r';
    obuf[olen++] = '\n';
}

/* What the app's headers said. */
enum { H_LENGTH = 1, H_TE = 2, H_CONNECTION = 4, H_DATE = 8, H_CLOSE = 16 };

/* Appends the app's headers (table at idx) to the output; returns H_* bits. */
static int out_headers(lua_State *L, int idx)
{
    int seen = 0;
    if (lua_isnoneornil(L, idx))
        return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) { /* stack: key, value */
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "gl.http: header names must be strings");
        size_t klen;
        const char *k = lua_tolstring(L, -2, &klen);
        check_field(L, k, klen, "name");
        switch (klen) {
        case 4:
            if (IEQ_LIT(k, klen, "date"))
                seen |= H_DATE;
            break;
        case 10:
            if (IEQ_LIT(k, klen, "connection")) {
                seen |= H_CONNECTION;
                const char *v = lua_tostring(L, -1);
                if (v && (strstr(v, "close") || strstr(v, "Close")))
                    seen |= H_CLOSE;
            }
            break;
        case 14:
            if (IEQ_LIT(k, klen, "content-length"))
                seen |= H_LENGTH;
            break;
        case 17:
            if (IEQ_LIT(k, klen, "transfer-encoding"))
                seen |= H_TE;
            break;
        }
        if (lua_type(L, -1) == LUA_TTABLE) { /* one line per item (Set-Cookie) */
            lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, -1, i);
                out_header(L, k, klen, lua_gettop(L));
                lua_pop(L, 1);
            }
        } else if (lua_type(L, -1) != LUA_TBOOLEAN || lua_toboolean(L, -1)) {
            out_header(L, k, klen, lua_gettop(L));
        }
        lua_pop(L, 1);
    }
    return seen;
}

/* Sends as much of p[0..n) as the socket takes now; returns bytes sent, or -1 on error. */
static ssize_t send_now(gl_sock *s, const char *p, size_t n)
{
    size_t off = 0;
    if (s->writer)
        return 0; /* another thread is writing: leave it all to sendall, which will say so */
    while (off < n) {
        ssize_t k = s->io->send(s, p + off, n - off);
        if (k > 0)
            off += (size_t)k;
        else if (k == GL_IO_WAIT_READ || k == GL_IO_WAIT_WRITE)
            break;
        else
            return -1;
    }
    return (ssize_t)off;
}

/* core.http_respond(sock, flags, status, headers, body) -> keep, rest1, rest2, chunked
 * | nil, err. Formats the status line, the app's headers, Date, Content-Length or
 * Transfer-Encoding and Connection as needed, and (unless HEAD or a stream) the body, and
 * sends it at once: one write when it fits ONE_WRITE_MAX. What the socket would not take
 * now comes back as rest1 (and rest2) for sock:sendall. body: nil, a string, or a function
 * (a stream: only the head is sent; chunked says how the caller frames the chunks). */
static int l_respond(lua_State *L)
{
    gl_sock *s = check_sock(L);
    if (s->fd < 0)
        return luaL_error(L, "attempt to use a closed socket");
    int flags = (int)luaL_checkinteger(L, 2);
    int status;
    size_t rlen = 0;
    const char *reason = NULL;
    if (lua_type(L, 3) == LUA_TSTRING) { /* "404 Not Found" */
        const char *st = lua_tolstring(L, 3, &rlen);
        char *end;
        status = (int)strtol(st, &end, 10);
        reason = end;
        while (*reason == ' ')
            reason++;
        rlen -= (size_t)(reason - st);
        check_field(L, reason, rlen, "reason");
    } else {
        status = (int)luaL_checkinteger(L, 3);
    }
    if (status < 100 || status > 999)
        return luaL_error(L, "gl.http: bad status %d", status);
    if (!reason || !rlen) {
        reason = reason_of(status);
        rlen = strlen(reason);
    }
    int btype = lua_type(L, 5);
    size_t blen = 0;
    const char *body = NULL;
    if (btype == LUA_TSTRING || btype == LUA_TNUMBER)
        body = lua_tolstring(L, 5, &blen);
    else if (btype != LUA_TNIL && btype != LUA_TNONE && btype != LUA_TFUNCTION)
        return luaL_error(L, "gl.http: body must be a string, a list or a function");

    int v10 = flags & F_V10;
    olen = 0;
    char line[64];
    memcpy(line, "HTTP/1.1 ", 9);
    if (v10)
        line[7] = '0';
    line[9] = (char)('0' + status / 100);
    line[10] = (char)('0' + status / 10 % 10);
    line[11] = (char)('0' + status % 10);
    line[12] = ' ';
    out_put(L, line, 13);
    out_put(L, reason, rlen);
    OUT_LIT(L, "\r\n");
    int seen = out_headers(L, 4);
    if (!(seen & H_DATE)) {
        date_update();
        out_put(L, date_buf, date_len);
    }
    int keep = (flags & F_KEEP) && !(seen & H_CLOSE);
    int no_body = status < 200 || status == 204 || status == 304;
    int chunked = 0;
    if (!no_body && !(seen & (H_LENGTH | H_TE))) {
        if (btype == LUA_TFUNCTION) {
            if (v10)
                keep = 0; /* HTTP/1.0: the end of the body is the end of the connection */
            else {
                OUT_LIT(L, "Transfer-Encoding: chunked\r\n");
                chunked = 1;
            }
        } else {
            char *e = put_uint(line + 16, blen);
            memcpy(line, "Content-Length: ", 16);
            *e++ = '\r';
            *e++ = '\n';
            out_put(L, line, (size_t)(e - line));
        }
    }
    if (!(seen & H_CONNECTION) && status != 101) {
        if (!keep && !v10)
            OUT_LIT(L, "Connection: close\r\n");
        else if (keep && v10)
            OUT_LIT(L, "Connection: keep-alive\r\n");
    }
    OUT_LIT(L, "\r\n");
    if ((flags & F_HEAD) || no_body)
        blen = 0;
    size_t head = olen;
    int together = blen && head + blen <= ONE_WRITE_MAX;
    if (together) {
        out_put(L, body, blen);
        blen = 0;
    }
    ssize_t sent = send_now(s, obuf, olen);
    if (sent < 0)
        return gl_sock_fail(L, s, 0);
    lua_pushboolean(L, keep);
    if ((size_t)sent < olen) {
        lua_pushlstring(L, obuf + sent, olen - (size_t)sent);
        if (blen)
            lua_pushlstring(L, body, blen);
        else
            lua_pushnil(L);
    } else if (blen) {
        ssize_t k = send_now(s, body, blen);
        if (k < 0)
            return gl_sock_fail(L, s, 0);
        lua_pushnil(L);
        if ((size_t)k < blen)
            lua_pushlstring(L, body + k, blen - (size_t)k);
        else
            lua_pushnil(L);
    } else {
        lua_pushnil(L);
        lua_pushnil(L);
    }
    lua_pushboolean(L, chunked);
    return 4;
}

/* ---- the access log ---- */

#define LOG_MAX (1u << 20) /* buffered log bytes while stderr does not keep up */

static _Thread_local char *logbuf;
static _Thread_local size_t logcap, loglen;

/* Appends p[0..n) to the out buffer as Apache escapes a quoted field. */
static void out_escaped(lua_State *L, const char *p, size_t n)
{
    if (out_reserve(n * 4) != 0)
        luaL_error(L, "gl.http: out of memory");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\') {
            obuf[olen++] = '\\';
            obuf[olen++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            olen += (size_t)snprintf(obuf + olen, 5, "\\x%02x", c);
        } else {
            obuf[olen++] = (char)c;
        }
    }
}

/* Appends t[upvalue k] (a raw get), escaped, or "-" when absent or empty. */
static void out_field(lua_State *L, int t, int k, int quoted)
{
    size_t n;
    lua_pushvalue(L, UV(k));
    lua_rawget(L, t);
    const char *v = lua_tolstring(L, -1, &n);
    if (quoted)
        OUT_LIT(L, "\"");
    if (v && n)
        out_escaped(L, v, n);
    else
        OUT_LIT(L, "-");
    if (quoted)
        OUT_LIT(L, "\"");
    lua_pop(L, 1);
}

/* Formats the combined-format line for req (table at 1, or nil), status (2), bytes (3) and
 * the client's address (4). */
static void format_log(lua_State *L)
{
    olen = 0;
    int t = lua_istable(L, 1) ? 1 : 0;
    size_t n;
    const char *addr = lua_tolstring(L, 4, &n);
    if (addr)
        out_escaped(L, addr, n);
    else
        OUT_LIT(L, "-");
    OUT_LIT(L, " - - ");
    log_time_update();
    out_put(L, log_time_buf, log_time_len);
    OUT_LIT(L, " \"");
    if (t) {
        out_field(L, 1, U_METHOD, 0);
        OUT_LIT(L, " ");
        out_field(L, 1, U_TARGET, 0);
        OUT_LIT(L, " HTTP/");
        out_field(L, 1, U_VERSION, 0);
    } else {
        OUT_LIT(L, "-");
    }
    char num[64], *e = num;
    lua_Integer status = luaL_checkinteger(L, 2), bytes = luaL_optinteger(L, 3, 0);
    *e++ = '"';
    *e++ = ' ';
    e = put_uint(e, status > 0 ? (unsigned long long)status : 0);
    *e++ = ' ';
    if (bytes > 0)
        e = put_uint(e, (unsigned long long)bytes);
    else
        *e++ = '-';
    *e++ = ' ';
    out_put(L, num, (size_t)(e - num));
    if (t) {
        lua_pushvalue(L, UV(U_HEADERS));
        if (lua_rawget(L, 1) == LUA_TTABLE) {
            int h = lua_gettop(L);
            out_field(L, h, U_REFERER, 1);
            OUT_LIT(L, " ");
            out_field(L, h, U_USER_AGENT, 1);
            lua_pop(L, 1);
            return;
        }
        lua_pop(L, 1);
    }
    OUT_LIT(L, "\"-\" \"-\"");
}

/* core.http_log_line(req, status, bytes, remote_addr) -> the line (no newline) */
static int l_log_line(lua_State *L)
{
    format_log(L);
    lua_pushlstring(L, obuf, olen);
    return 1;
}

/* How much stderr takes without blocking: for a pipe, its wholly free pages (a slow
 * reader of our stderr must never stall the hub; a pipe holds whole pages, so queued bytes
 * are rounded up); everything for files and terminals. */
static size_t stderr_room(void)
{
    int cap = fcntl(2, F_GETPIPE_SZ), queued = 0;
    if (cap <= 0 || ioctl(2, FIONREAD, &queued) != 0)
        return SIZE_MAX;
    long page = sysconf(_SC_PAGESIZE);
    size_t used = page > 0 ? ((size_t)queued + (size_t)page - 1) / (size_t)page * (size_t)page
                           : (size_t)queued;
    return (size_t)cap > used ? (size_t)cap - used : 0;
}

/* Writes what stderr takes now; keeps the rest for the next flush. 1 when some is left. */
static int log_flush(void)
{
    size_t room = stderr_room(), off = 0;
    size_t want = loglen < room ? loglen : room;
    while (off < want) {
        ssize_t n = write(2, logbuf + off, want - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) { /* stderr is gone: drop the log rather than spin */
            loglen = 0;
            return 0;
        }
        off += (size_t)n;
    }
    memmove(logbuf, logbuf + off, loglen - off);
    loglen -= off;
    return loglen > 0;
}

/* core.http_log_write(req, status, bytes, remote_addr) -> true when the buffer was empty (the
 * caller schedules a flush). Lines are written to stderr in batches. */
static int l_log_write(lua_State *L)
{
    format_log(L);
    OUT_LIT(L, "\n");
    int was_empty = loglen == 0;
    if (loglen + olen > logcap && loglen)
        log_flush();
    if (loglen + olen > logcap) {
        size_t cap = logcap ? logcap : 32768;
        while (cap < loglen + olen)
            cap *= 2;
        if (cap > LOG_MAX) { /* stderr has not kept up for long: drop this line */
            lua_pushboolean(L, was_empty);
            return 1;
        }
        char *p = realloc(logbuf, cap);
        if (!p)
            return luaL_error(L, "gl.http: out of memory");
        logbuf = p;
        logcap = cap;
    }
    memcpy(logbuf + loglen, obuf, olen);
    loglen += olen;
    lua_pushboolean(L, was_empty);
    return 1;
}

/* core.http_log_flush() -> true when lines are left for a later flush */
static int l_log_flush(lua_State *L)
{
    lua_pushboolean(L, log_flush());
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

/* core.http_date() -> the current Date header value */
static int l_date(lua_State *L)
{
    date_update();
    lua_pushlstring(L, date_buf + 6, date_len - 8);
    return 1;
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

int gl_open_http(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"http_read_request", l_read_request},
        {"http_read_response", l_read_response},
        {"http_body_read", l_body_read},
        {"http_body_done", l_body_done},
        {"http_body", l_body},
        {"http_respond", l_respond},
        {"http_log_line", l_log_line},
        {"http_log_write", l_log_write},
        {"http_log_flush", l_log_flush},
        {"http_alive", l_alive},
        {"http_date", l_date},
        {NULL, NULL},
    };
    luaL_newmetatable(L, BODY_MT);
    lua_pop(L, 1);
    /* stack: core */
    lua_createtable(L, 0, 3); /* the headers metatable */
    lua_pushcfunction(L, headers_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, headers_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "gl.http.headers");
    lua_setfield(L, -2, "__name");
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "http_headers_mt");
    luaL_getmetatable(L, GL_SOCK_MT);
    for (int i = 0; i < (int)(sizeof upvalue_strings / sizeof *upvalue_strings); i++)
        lua_pushstring(L, upvalue_strings[i]);
    /* stack: core, headers_mt, sock_mt, strings... */
    luaL_setfuncs(L, funcs, U_COUNT);
    return 0;
}
