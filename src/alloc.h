/* The Lua allocator of a gl state (alloc.c). */
#ifndef GL_ALLOC_H
#define GL_ALLOC_H

#include <lua.h>
#include <stddef.h>

typedef struct gl_heap gl_heap;

/* A new Lua state on a gl_heap, with luaL_newstate's panic and warning behaviour; NULL when
 * out of memory. */
lua_State *gl_heap_newstate(gl_heap **out);
/* Bytes waiting in the free lists (for tests). */
size_t gl_heap_cached(const gl_heap *H);
/* lua_close(L), then frees the heap's cached blocks and the heap. */
void gl_heap_close(lua_State *L, gl_heap *H);

#endif
