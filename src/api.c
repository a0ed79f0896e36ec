/* The embedding API: the only implementation of include/gl.h's gl_State functions.
 * A host either lets gl own its event_base or passes its own and keeps its own loop. */
#include "alloc.h"
#include "core.h"
#include "sched.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>

struct gl_State {
    lua_State *L;
    gl_heap *heap;
    gl_hub *hub;
};

gl_State *gl_open(struct event_base *base)
{
    gl_State *G = calloc(1, sizeof *G);
    if (!G)
        return NULL;
    G->L = gl_heap_newstate(&G->heap);
    if (!G->L) {
        free(G);
        return NULL;
    }
    *(void **)lua_getextraspace(G->L) = NULL; /* before any coroutine copies it */
    luaL_openlibs(G->L);
    if (base)
        G->hub = gl_hub_new(G->L, base);
    gl_preload(G->L);
    lua_getglobal(G->L, "require");
    lua_pushliteral(G->L, "gl");
    if (lua_pcall(G->L, 1, 1, 0) != LUA_OK) {
        gl_heap_close(G->L, G->heap);
        free(G);
        return NULL;
    }
    lua_setglobal(G->L, "gl");
    G->hub = gl_hub_get(G->L);
    return G;
}

lua_State *gl_lua(gl_State *G)
{
    return G->L;
}

/* Runs the chunk on top of G's stack as a green thread up to its end or first wait. */
static int run_chunk(gl_State *G)
{
    lua_State *L = G->L;
    gl_thread *t = gl_spawn(L, 0);
    t->no_report = 1; /* an error before the first wait goes back to the caller */
    gl_sched_resume(t);
    t->no_report = 0;
    if (t->state == GL_T_DEAD && t->failed) {
        lua_pop(L, 1);
        lua_pushvalue(t->co, 1);
        lua_xmove(t->co, L, 1);
        if (!lua_isstring(L, -1)) {
            const char *msg = luaL_tolstring(L, -1, NULL);
            lua_remove(L, -2);
            (void)msg;
        }
        return LUA_ERRRUN;
    }
    lua_pop(L, 1);
    return LUA_OK;
}

int gl_dofile(gl_State *G, const char *path)
{
    int st = luaL_loadfile(G->L, path);
    return st != LUA_OK ? st : run_chunk(G);
}

int gl_dostring(gl_State *G, const char *code)
{
    int st = luaL_loadstring(G->L, code);
    return st != LUA_OK ? st : run_chunk(G);
}

int gl_run(gl_State *G)
{
    return gl_hub_run(G->hub);
}

int gl_step(gl_State *G, int nonblock)
{
    return gl_hub_step(G->hub, nonblock);
}

void gl_close(gl_State *G)
{
    if (!G)
        return;
    gl_heap_close(G->L, G->heap);
    free(G);
}
