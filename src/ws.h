/* gl.websocket's C half: frames read straight from a green socket's read-ahead buffer,
 * frames built for sending, UTF-8 checks and the handshake's key math. */
#ifndef GL_WS_H
#define GL_WS_H

#include <lua.h>

/* Adds the ws_* functions to the gl.core table on top. */
int gl_open_ws(lua_State *L);
/* ws_deflate.c: adds core.ws_deflate_new (permessage-deflate) to the table on top. */
void gl_ws_open_deflate(lua_State *L);

#endif
