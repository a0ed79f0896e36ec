/* gl.http's C half: HTTP heads read straight from a green socket's read-ahead buffer into
 * Lua tables, body readers on the same buffer, and a one-write response formatter. */
#ifndef GL_HTTP_H
#define GL_HTTP_H

#include <lua.h>

/* Adds the http_* functions and metatables to the gl.core table on top. */
int gl_open_http(lua_State *L);
/* A request's headers table fills in lazily; this fills in the table at idx at once (so that
 * lua_next sees every field). Does nothing to any other value. */
void gl_http_headers_fill(lua_State *L, int idx);

#endif
