/* gl.subprocess's C part: spawning children on green socketpairs, reaping via SIGCHLD. */
#ifndef GL_SUBPROCESS_H
#define GL_SUBPROCESS_H

#include <lua.h>

/* Adds proc_spawn / proc_kill / proc_on_exit to the gl.core table on top. */
void gl_open_subprocess(lua_State *L);

#endif
