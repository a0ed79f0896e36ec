/* Module assembly: the embedded Lua modules and the gl.core entry points. */
#ifndef GL_CORE_H
#define GL_CORE_H

#include "include/gl.h"
#include <lua.h>
#include <stddef.h>

typedef struct gl_lua_module {
    const char *name;      /* "gl.queue" */
    const char *chunkname; /* "@gl/queue.lua" */
    const unsigned char *code;
    size_t len;
} gl_lua_module;

/* generated at build time from lua/gl/ (each .lua file); ends with a NULL name */
extern const gl_lua_module gl_lua_modules[];

GL_API int luaopen_gl_core(lua_State *L);
GL_API int luaopen_gl(lua_State *L);
/* Registers package.preload entries for gl.core and every embedded module. */
void gl_preload(lua_State *L);
/* Further C parts of gl.core (sockets, dns, ...); each adds its functions to the table on top. */
void gl_open_extras(lua_State *L);

#endif
