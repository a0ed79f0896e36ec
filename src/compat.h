/* The few Lua 5.4.x differences gl cares about; version checks live here only. */
#ifndef GL_COMPAT_H
#define GL_COMPAT_H

#include <lua.h>

#if LUA_VERSION_NUM != 504
#error "gl needs Lua 5.4"
#endif

/* lua_closethread replaced lua_resetthread in 5.4.6 */
#if LUA_VERSION_RELEASE_NUM >= 50406
#define gl_closethread(co, from) lua_closethread((co), (from))
#else
#define gl_closethread(co, from) ((void)(from), lua_resetthread(co))
#endif

#endif
