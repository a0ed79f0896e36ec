/* What http.c (reading heads and bodies) and http_out.c (responses, the access log)
 * share: the upvalues of every core.http_* function, request flags, the socket check. */
#ifndef GL_HTTP_INT_H
#define GL_HTTP_INT_H

#include "socket.h"

#include <lauxlib.h>

/* request flags, req._f */
#define F_KEEP 1
#define F_HEAD 2
#define F_V10 4
#define F_EXPECT 8
#define F_BODY 16   /* _body is set */
#define F_REJECT 32 /* Content-Length over max_body: answer 413 */

/* Upvalues of every http_* function: metatables, then interned strings, so the hot path builds
 * tables with lua_rawset and never looks a C string up. */
enum {
    U_HEADERS_MT = 1,
    U_LAZY_MT, /* of a request's headers table before it fills in (http.c) */
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
    U_BUSY, /* the names core.http_serve reads and sets in the server's tables */
    U_STOPPING,
    U_HIJACKED,
    U_COUNT = U_HIJACKED
};
#define UV(k) lua_upvalueindex(k)
#define UV_HEADERS_MT UV(U_HEADERS_MT)

/* The socket at index 1 (gl_sock_check's magic number costs less than comparing metatables:
 * lua_rawequal with an upvalue is about 75 instructions) */
static inline gl_sock *check_sock(lua_State *L)
{
    return gl_sock_check(L, 1);
}

/* http_out.c: core.http_respond, http_log_line, http_log_write, http_log_flush, http_date */
int gl_http_respond(lua_State *L);
/* the same with its five arguments at base..base+4 instead of 1..5 */
int gl_http_respond_at(lua_State *L, int base);
int gl_http_log_line(lua_State *L);
int gl_http_log_write(lua_State *L);
/* the same with its four arguments at base..base+3 */
int gl_http_log_write_at(lua_State *L, int base);
int gl_http_log_flush(lua_State *L);
int gl_http_date(lua_State *L);

#endif
