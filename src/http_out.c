/* gl.http's output: responses formatted into one buffer and sent in one write when small,
 * the Date header and the access log (Apache combined format, batched to stderr without
 * ever blocking the hub). Reading heads and bodies is http.c. */
#include "http.h"
#include "http_int.h"
#include "http_parser.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ONE_WRITE_MAX 65536 /* a response up to this size goes out in one send */

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

/* The checks of the app's answer push a message and return -1 instead of raising: the
 * server then answers 500 without a pcall around every response (about 400 instructions). */
static int check_field(lua_State *L, const char *p, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0') {
            lua_pushfstring(L, "gl.http: invalid character in a response header %s", what);
            return -1;
        }
    return 0;
}

/* A field name is a token: a space or colon in it would make another field or a malformed
 * head. */
static int check_name(lua_State *L, const char *p, size_t n)
{
    if (gl_http_is_token(p, n))
        return 0;
    lua_pushlstring(L, p, n);
    lua_pushfstring(L, "gl.http: response header name \"%s\" is not a token", lua_tostring(L, -1));
    return -1;
}

static int out_header(lua_State *L, const char *k, size_t klen, int vidx)
{
    size_t vlen;
    const char *v = lua_tolstring(L, vidx, &vlen);
    if (!v) {
        lua_pushfstring(L, "gl.http: header %s: string or number expected, got %s", k,
                        luaL_typename(L, vidx));
        return -1;
    }
    if (check_field(L, v, vlen, "value") != 0)
        return -1;
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
    return 0;
}

/* Replaces the list of strings at idx with their concatenation (table.concat's rules). */
static int concat_list(lua_State *L, int idx)
{
    luaL_Buffer b;
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    luaL_buffinit(L, &b);
    for (lua_Integer i = 1; i <= n; i++) {
        int t = lua_rawgeti(L, idx, i);
        if (t != LUA_TSTRING && t != LUA_TNUMBER) {
            lua_pushfstring(L, "gl.http: a list body holds strings, not %s (at %d)",
                            lua_typename(L, t), (int)i);
            return -1; /* the buffer's box stays below it on the stack, unused */
        }
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_replace(L, idx);
    return 0;
}

/* What the app's headers said. */
enum { H_LENGTH = 1, H_TE = 2, H_CONNECTION = 4, H_DATE = 8, H_CLOSE = 16 };

/* Appends the app's headers (table at idx) to the output; returns H_* bits, or -1 with a
 * message pushed. */
static int out_headers(lua_State *L, int idx)
{
    int seen = 0;
    if (lua_isnoneornil(L, idx))
        return 0;
    if (!lua_istable(L, idx)) {
        lua_pushfstring(L, "gl.http: headers must be a table, not %s", luaL_typename(L, idx));
        return -1;
    }
    gl_http_headers_fill(L, idx); /* an app may answer with (a copy of) req.headers */
    lua_pushnil(L);
    while (lua_next(L, idx)) { /* stack: key, value */
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pushliteral(L, "gl.http: header names must be strings");
            return -1;
        }
        size_t klen;
        const char *k = lua_tolstring(L, -2, &klen);
        if (check_name(L, k, klen) != 0)
            return -1;
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
                if (out_header(L, k, klen, lua_gettop(L)) != 0)
                    return -1;
                lua_pop(L, 1);
            }
        } else if ((lua_type(L, -1) != LUA_TBOOLEAN || lua_toboolean(L, -1)) &&
                   out_header(L, k, klen, lua_gettop(L)) != 0) {
            return -1;
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

/* [-0, +3] nil, the message on top, true: what respond returns for an answer it cannot send */
static int bad_answer(lua_State *L)
{
    lua_pushnil(L);
    lua_insert(L, -2);
    lua_pushboolean(L, 1);
    return 3;
}

/* core.http_respond(sock, flags, status, headers, body) -> keep, rest1, rest2, chunked,
 * nbytes | nil, err (the socket failed) | nil, msg, true (the app's status, headers or body
 * cannot be sent; nothing was). Formats the status line, the app's headers, Date, Content-Length or
 * Transfer-Encoding and Connection as needed, and (unless HEAD or a stream) the body, and
 * sends it at once: one write when it fits ONE_WRITE_MAX. What the socket would not take
 * now comes back as rest1 (and rest2) for sock:sendall. body: nil, a string, a list of
 * strings, or a function (a stream: only the head is sent; chunked says how the caller
 * frames the chunks). nbytes: the body bytes for the access log, nil for a stream. */
int gl_http_respond_at(lua_State *L, int base)
{
    gl_sock *s = gl_sock_check(L, base);
    if (s->fd < 0)
        return luaL_error(L, "attempt to use a closed socket");
    int flags = (int)luaL_checkinteger(L, base + 1);
    int status;
    size_t rlen = 0;
    const char *reason = NULL;
    if (lua_type(L, base + 2) == LUA_TSTRING) { /* "404 Not Found" */
        const char *st = lua_tolstring(L, base + 2, &rlen);
        char *end;
        status = (int)strtol(st, &end, 10);
        reason = end;
        while (*reason == ' ')
            reason++;
        rlen -= (size_t)(reason - st);
        if (check_field(L, reason, rlen, "reason") != 0)
            return bad_answer(L);
    } else {
        int isint;
        lua_Integer n = lua_tointegerx(L, base + 2, &isint);
        status = isint && n >= 0 && n < 1000 ? (int)n : -1;
    }
    if (status < 100 || status > 999) {
        if (lua_type(L, base + 2) == LUA_TNUMBER || lua_type(L, base + 2) == LUA_TSTRING)
            lua_pushfstring(L, "gl.http: bad status %s", lua_tostring(L, base + 2));
        else
            lua_pushfstring(L, "gl.http: bad status (a %s)", luaL_typename(L, base + 2));
        return bad_answer(L);
    }
    if (!reason || !rlen) {
        reason = reason_of(status);
        rlen = strlen(reason);
    }
    int btype = lua_type(L, base + 4);
    if (btype == LUA_TTABLE) {
        if (concat_list(L, base + 4) != 0)
            return bad_answer(L);
        btype = LUA_TSTRING;
    }
    size_t blen = 0;
    const char *body = NULL;
    if (btype == LUA_TSTRING || btype == LUA_TNUMBER)
        body = lua_tolstring(L, base + 4, &blen);
    else if (btype != LUA_TNIL && btype != LUA_TNONE && btype != LUA_TFUNCTION) {
        lua_pushliteral(L, "gl.http: body must be a string, a list or a function");
        return bad_answer(L);
    }

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
    int seen = out_headers(L, base + 3);
    if (seen < 0)
        return bad_answer(L);
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
    if ((flags & F_HEAD) || no_body) {
        blen = 0;
        btype = LUA_TNIL; /* nothing to stream either */
    }
    size_t nbytes = blen;
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
    if (btype == LUA_TFUNCTION)
        lua_pushnil(L);
    else
        lua_pushinteger(L, (lua_Integer)nbytes);
    return 5;
}

int gl_http_respond(lua_State *L)
{
    return gl_http_respond_at(L, 1);
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

/* Appends t[upvalue k], escaped, or "-" when absent or empty. */
static void out_field(lua_State *L, int t, int k, int quoted)
{
    size_t n;
    lua_pushvalue(L, UV(k));
    lua_gettable(L, t); /* not raw: request headers fill in lazily */
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
/* The line for the request at base, the status and body bytes at base + 1 and + 2, and the
 * client's address at base + 3, into the out buffer. */
static void format_log(lua_State *L, int base)
{
    olen = 0;
    int t = lua_istable(L, base) ? base : 0;
    size_t n;
    const char *addr = lua_tolstring(L, base + 3, &n);
    if (addr)
        out_escaped(L, addr, n);
    else
        OUT_LIT(L, "-");
    OUT_LIT(L, " - - ");
    log_time_update();
    out_put(L, log_time_buf, log_time_len);
    OUT_LIT(L, " \"");
    if (t) {
        out_field(L, t, U_METHOD, 0);
        OUT_LIT(L, " ");
        out_field(L, t, U_TARGET, 0);
        OUT_LIT(L, " HTTP/");
        out_field(L, t, U_VERSION, 0);
    } else {
        OUT_LIT(L, "-");
    }
    char num[64], *e = num;
    lua_Integer status, bytes = luaL_optinteger(L, base + 2, 0);
    if (lua_type(L, base + 1) == LUA_TSTRING) /* "404 Not Found", as respond takes it */
        status = strtol(lua_tostring(L, base + 1), NULL, 10);
    else
        status = luaL_checkinteger(L, base + 1);
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
        if (lua_rawget(L, t) == LUA_TTABLE) {
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
int gl_http_log_line(lua_State *L)
{
    format_log(L, 1);
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
int gl_http_log_write(lua_State *L)
{
    return gl_http_log_write_at(L, 1);
}

int gl_http_log_write_at(lua_State *L, int base)
{
    format_log(L, base);
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
int gl_http_log_flush(lua_State *L)
{
    lua_pushboolean(L, log_flush());
    return 1;
}

/* core.http_date() -> the current Date header value */
int gl_http_date(lua_State *L)
{
    date_update();
    lua_pushlstring(L, date_buf + 6, date_len - 8);
    return 1;
}
