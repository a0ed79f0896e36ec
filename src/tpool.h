/* gl.tpool's C part: worker OS threads with their own Lua states. */
#ifndef GL_TPOOL_H
#define GL_TPOOL_H

#include <lua.h>

/* Adds tpool_submit / tpool_setsize / tpool_size to the gl.core table on top. */
void gl_open_tpool(lua_State *L);

#endif
