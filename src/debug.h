/* gl.debug's C part: hub listeners, blocking detection, the SIGUSR1 dump. */
#ifndef GL_DEBUG_H
#define GL_DEBUG_H

#include <lua.h>

/* Adds hub_listeners / hub_blocking_detection / debug_on_sigusr1 to gl.core on top. */
void gl_open_debug(lua_State *L);

#endif
