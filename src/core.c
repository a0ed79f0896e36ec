/* luaopen_gl_core builds the private gl.core table from each gl_open_*(), and luaopen_gl
 * registers the Lua modules compiled into the library (lua/gl/ (each .lua file)) as preloads. */
#include "core.h"
#include "sched.h"
#include "compat.h"

#include <event2/event.h>
#include <lauxlib.h>
#include <lualib.h>
#include <openssl/opensslv.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char coroutine_patched_key;

/* gl.run(fn, ...): fn runs as the main green thread; the hub runs until idle. */
static int l_run(lua_State *L)
{
    gl_hub *h = gl_hub_get(L);
    if (gl_current(L) || h->main)
        return luaL_error(L, "gl.run: call it from outside any green thread");
    luaL_checktype(L, 1, LUA_TFUNCTION);
    gl_thread *t = gl_spawn(L, lua_gettop(L) - 1);
    t->is_main = 1;
    t->no_report = 1; /* gl.run re-raises the error itself */
    h->main = t;
    gl_hub_enqueue(h, t);
    gl_hub_run(h);
    h->main = NULL;
    h->exit_code = 0;
    h->stop = 0;
    /* stack: ud */
    if (t->state != GL_T_DEAD)
        return luaL_error(L, "gl.run: the main green thread was stopped before it ended");
    lua_State *co = t->co;
    if (t->failed) {
        lua_pushvalue(co, 1);
        lua_xmove(co, L, 1);
        return lua_error(L);
    }
    int n = lua_gettop(co); /* a dead thread's stack holds its results only */
    luaL_checkstack(L, n, "too many results");
    int base = lua_gettop(co) - n;
    for (int i = 1; i <= n; i++) {
        lua_pushvalue(co, base + i);
        lua_xmove(co, L, 1);
    }
    return n;
}

/* [-0, +1] the backend's name: libevent says "epoll (with changelist)", gl says "epoll" */
static const char *push_backend(lua_State *L, gl_hub *h)
{
    const char *m = event_base_get_method(h->base);
    size_t n = strcspn(m, " ");
    return lua_pushlstring(L, m, n);
}

static int l_backend(lua_State *L)
{
    push_backend(L, gl_hub_get(L));
    return 1;
}

static int l_use(lua_State *L)
{
    static const char *const names[] = {"epoll", "poll", "select", NULL};
    int i = luaL_checkoption(L, 1, NULL, names);
    const char *running = push_backend(L, gl_hub_get(L));
    if (strcmp(running, names[i]) != 0)
        return luaL_error(L,
                          "gl.hub.use: the hub already runs on %s (choose the backend "
                          "with gl --hub=NAME or GL_HUB before gl starts)",
                          running);
    return 0;
}

static int fd_of(lua_State *L, int idx)
{
    if (lua_isinteger(L, idx))
        return (int)lua_tointeger(L, idx);
    if (luaL_getmetafield(L, idx, "__index") != LUA_TNIL) {
        lua_pop(L, 1);
        lua_getfield(L, idx, "fileno");
        if (lua_isfunction(L, -1)) {
            lua_pushvalue(L, idx);
            lua_call(L, 1, 1);
            int fd = (int)luaL_checkinteger(L, -1);
            lua_pop(L, 1);
            return fd;
        }
        lua_pop(L, 1);
    }
    return (int)luaL_argerror(L, idx, "fd or object with :fileno() expected");
}

static int trampoline_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    if (!gl_wake_ready(L)) {
        gl_push_expired_timeout(L, (double)ctx / 1e6);
        return lua_error(L);
    }
    return 0;
}

/* core.wait_fd(fd_or_obj, read, write, timeout): wait for readiness; raises a
 * gl.Timeout object on expiry. */
static int l_wait_fd(lua_State *L)
{
    int fd = fd_of(L, 1);
    int what = (lua_toboolean(L, 2) ? GL_WAIT_READ : 0) | (lua_toboolean(L, 3) ? GL_WAIT_WRITE : 0);
    double timeout = luaL_optnumber(L, 4, -1);
    if (!what)
        return luaL_error(L, "gl.trampoline: give read = true or write = true");
    lua_settop(L, 0);
    return gl_wait_fd(L, fd, what, timeout, trampoline_k,
                      (lua_KContext)(timeout > 0 ? timeout * 1e6 : 0));
}

/* core.read_fd(fd, n) -> bytes | "" at EOF | nil, err (non-blocking read, for the REPL) */
static int l_read_fd(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
        int e = errno;
        lua_pushnil(L);
        lua_pushstring(L, strerror(e));
        lua_pushinteger(L, e);
        return 3;
    }
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

static int l_threads(lua_State *L)
{
    gl_hub *h = gl_hub_get(L);
    lua_newtable(L);
    int out = lua_gettop(L);
    int k = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->anchors_ref);
    for (int i = 1; i <= h->max_slot; i++) {
        if (lua_rawgeti(L, -1, i) != LUA_TNIL)
            lua_rawseti(L, out, ++k);
        else
            lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 1;
}

/* core.traceback(gt) -> the traceback of a live green thread's coroutine */
static int l_traceback(lua_State *L)
{
    gl_thread *t = luaL_checkudata(L, 1, GL_THREAD_MT);
    if (t->state == GL_T_DEAD || !t->started) {
        lua_pushfstring(L, "green thread %I (%s)", (LUAI_UACINT)t->id,
                        t->state == GL_T_DEAD ? "dead" : "not started");
        return 1;
    }
    luaL_traceback(L, t->co, NULL, 0);
    return 1;
}

/* core.stats() -> {events = added libevent events, waits = waits that end by themselves
 * (timers, fds, armed Timeouts), internal = the interpreter's own events, runq = queued
 * threads}: what a leak check compares before and after a test */
static int l_stats(lua_State *L)
{
    gl_hub *h = gl_hub_get(L);
    if (lua_toboolean(L, 1)) /* core.stats(true) also dumps the base's events */
        event_base_dump_events(h->base, stderr);
    lua_settop(L, 0);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, gl_hub_nevents(h));
    lua_setfield(L, -2, "events");
    lua_pushinteger(L, event_base_get_num_events(h->base, EVENT_BASE_COUNT_ACTIVE));
    lua_setfield(L, -2, "active");
    lua_pushinteger(L, event_base_get_num_events(h->base, EVENT_BASE_COUNT_VIRTUAL));
    lua_setfield(L, -2, "virtual");
    lua_pushinteger(L, h->n_waits);
    lua_setfield(L, -2, "waits");
    lua_pushinteger(L, h->n_internal);
    lua_setfield(L, -2, "internal");
    lua_pushinteger(L, (lua_Integer)h->rq_len);
    lua_setfield(L, -2, "runq");
    return 1;
}

static int l_getpid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

static int l_versions(lua_State *L)
{
    lua_newtable(L);
    lua_pushliteral(L, GL_VERSION);
    lua_setfield(L, -2, "gl");
    lua_pushliteral(L, LUA_RELEASE);
    lua_setfield(L, -2, "lua");
    lua_pushstring(L, event_get_version());
    lua_setfield(L, -2, "libevent");
    lua_pushliteral(L, OPENSSL_VERSION_TEXT);
    lua_setfield(L, -2, "openssl");
    return 1;
}

int luaopen_gl_core(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    lua_State *main = lua_tothread(L, -1);
    lua_pop(L, 1);
    if (!gl_hub_exists(main))
        gl_hub_new(main, NULL);
    static const luaL_Reg funcs[] = {{"run", l_run},
                                     {"backend", l_backend},
                                     {"use", l_use},
                                     {"wait_fd", l_wait_fd},
                                     {"read_fd", l_read_fd},
                                     {"threads", l_threads},
                                     {"versions", l_versions},
                                     {"getpid", l_getpid},
                                     {"traceback", l_traceback},
                                     {"stats", l_stats},
                                     {NULL, NULL}};
    luaL_newlib(L, funcs);
    gl_open_sched(L);
    gl_open_timer(L);
    gl_open_queue(L);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &coroutine_patched_key) == LUA_TNIL) {
        gl_open_coroutine(L);
        lua_pushboolean(L, 1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &coroutine_patched_key);
    }
    lua_pop(L, 1);
    gl_open_extras(L);
    return 1;
}

static int load_embedded(lua_State *L)
{
    const gl_lua_module *m = lua_touserdata(L, lua_upvalueindex(1));
    if (luaL_loadbuffer(L, (const char *)m->code, m->len, m->chunkname) != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, m->name);
    lua_call(L, 1, 1);
    return 1;
}

void gl_preload(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_gl_core);
    lua_setfield(L, -2, "gl.core");
    for (const gl_lua_module *m = gl_lua_modules; m->name; m++) {
        lua_pushlightuserdata(L, (void *)m);
        lua_pushcclosure(L, load_embedded, 1);
        lua_setfield(L, -2, m->name);
    }
    lua_pop(L, 1);
}

/* require "gl" from a stock lua5.4: gl.so registers the preloads and loads gl. */
int luaopen_gl(lua_State *L)
{
    gl_preload(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_getfield(L, -1, "gl");
    lua_remove(L, -2);
    lua_pushliteral(L, "gl");
    lua_call(L, 1, 1);
    return 1;
}
