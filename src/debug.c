/* gl.debug's C part: the hub's listeners, hub blocking detection and the SIGUSR1 dump.
 * Blocking detection: a libevent timer on the hub stamps a heartbeat; a watchdog pthread
 * that sees no beat for `sec` only sets a Lua count hook on the running green thread (as
 * lua.c does from a signal handler); the hook, on the hub thread, prints that thread's
 * traceback (file and line) and removes itself. SIGUSR1 is a libevent signal event: its
 * callback (on the hub, not in the handler) calls gl.debug's dump function. */
#include "core.h"
#include "debug.h"
#include "hub.h"
#include "sched.h"
#include "socket.h"

#include <lauxlib.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- hub_listeners ---- */

typedef struct listeners_ctx {
    lua_State *L;
    int out, threads, k;
} listeners_ctx;

static int each_event(const struct event_base *base, const struct event *ev, void *arg)
{
    (void)base;
    listeners_ctx *c = arg;
    evutil_socket_t fd = event_get_fd(ev);
    short what = event_get_events(ev);
    if (fd < 0 || !(what & (EV_READ | EV_WRITE)))
        return 0;
    lua_State *L = c->L;
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, fd);
    lua_setfield(L, -2, "fd");
    lua_pushstring(L, (what & EV_READ) && (what & EV_WRITE) ? "rw" : (what & EV_READ) ? "r" : "w");
    lua_setfield(L, -2, "events");
    lua_pushboolean(L, (what & EV_PERSIST) != 0);
    lua_setfield(L, -2, "persist");
    /* a socket's events: its parked reader or writer. Every callback argument in the
     * base (gl's or libevent's own) is NULL or points to an object larger than the magic
     * word, so reading it is safe; the rev/wev match confirms a socket. */
    const gl_sock *so = event_get_callback_arg(ev);
    if (so && so->magic == GL_SOCK_MAGIC && (so->rev == ev || so->wev == ev)) {
        lua_pushliteral(L, "socket");
        lua_setfield(L, -2, "kind");
        const gl_thread *w = so->rev == ev ? so->reader : so->writer;
        if (w) {
            lua_pushinteger(L, w->id);
            lua_setfield(L, -2, "thread");
        }
    }
    /* a green thread's own fd wait (gl.trampoline, gl_wait_fd, the tpool) names it */
    lua_Integer n = luaL_len(L, c->threads);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, c->threads, i);
        gl_thread *t = lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (t && t->ev == ev && !t->ev_stale && t->state == GL_T_PARKED) {
            lua_pushinteger(L, t->id);
            lua_setfield(L, -2, "thread");
        }
    }
    lua_rawseti(L, c->out, ++c->k);
    return 0;
}

/* core.hub_listeners(threads) -> list of {fd, events, persist, thread = id?} */
static int l_listeners(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    gl_hub *h = gl_hub_get(L);
    lua_newtable(L);
    listeners_ctx c = {L, lua_gettop(L), 1, 0};
    event_base_foreach_event(h->base, each_event, &c);
    return 1;
}

/* ---- hub blocking detection ---- */

static struct {
    gl_hub *hub;
    struct event *beat_ev;
    pthread_t watchdog;
    int running;
    _Atomic double last_beat;
    _Atomic int stop;
    double limit;
    _Atomic(lua_State *) hooked;
    double held_since;
} bd;

static void beat_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    atomic_store(&bd.last_beat, gl_hub_now());
}

static void report_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    atomic_store(&bd.hooked, NULL);
    gl_thread *t = gl_current(L);
    double held = gl_hub_now() - atomic_load(&bd.last_beat);
    luaL_traceback(L, L, NULL, 0);
    fprintf(stderr, "gl: green thread %lld has held the hub for %.2f s (limit %.2f s)\n%s\n",
            t ? (long long)t->id : -1LL, held, bd.limit, lua_tostring(L, -1));
    fflush(stderr);
    lua_pop(L, 1);
    /* one report per blocking stretch: the next starts from now */
    atomic_store(&bd.last_beat, gl_hub_now());
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&bd.stop)) {
        double step = bd.limit / 4;
        struct timespec ts = {(time_t)step, (long)((step - (double)(time_t)step) * 1e9)};
        nanosleep(&ts, NULL);
        if (atomic_load(&bd.stop))
            break;
        if (gl_hub_now() - atomic_load(&bd.last_beat) > bd.limit && !atomic_load(&bd.hooked)) {
            gl_thread *t = bd.hub->current; /* racy read, as a signal handler's would be */
            if (t && t->co) {
                atomic_store(&bd.hooked, t->co);
                lua_sethook(t->co, report_hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
            }
        }
    }
    return NULL;
}

static void bd_stop(void)
{
    if (!bd.running)
        return;
    atomic_store(&bd.stop, 1);
    pthread_join(bd.watchdog, NULL);
    event_free(bd.beat_ev);
    bd.beat_ev = NULL;
    lua_State *co = atomic_load(&bd.hooked);
    if (co)
        lua_sethook(co, NULL, 0, 0);
    atomic_store(&bd.hooked, NULL);
    bd.running = 0;
}

/* Lua state closing (gl_close): stop the watchdog and drop the events before the hub's
 * base goes (finalizers run newest first, and this guard is made after the hub). */
static struct event *usr1_ev;
static int usr1_ref = LUA_NOREF;

static int guard_gc(lua_State *L)
{
    (void)L;
    bd_stop();
    if (usr1_ev) {
        event_free(usr1_ev);
        usr1_ev = NULL;
    }
    usr1_ref = LUA_NOREF;
    return 0;
}

static void ensure_guard(lua_State *L)
{
    static const char key = 0;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &key) == LUA_TNIL) {
        lua_newuserdatauv(L, 1, 0);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, guard_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &key);
    }
    lua_pop(L, 1);
}

/* core.hub_blocking_detection(on, sec) */
static int l_blocking(lua_State *L)
{
    int on = lua_toboolean(L, 1);
    double sec = luaL_optnumber(L, 2, 1.0);
    luaL_argcheck(L, sec >= 0.01, 2, "seconds must be >= 0.01");
    gl_hub *h = gl_hub_get(L);
    bd_stop();
    if (!on)
        return 0;
    ensure_guard(L);
    bd.hub = h;
    bd.limit = sec;
    atomic_store(&bd.stop, 0);
    atomic_store(&bd.last_beat, gl_hub_now());
    bd.beat_ev = event_new(h->base, -1, EV_PERSIST, beat_cb, NULL);
    double step = sec / 4;
    struct timeval tv = {(time_t)step, (suseconds_t)((step - (double)(time_t)step) * 1e6)};
    if (!bd.beat_ev || event_add(bd.beat_ev, &tv) < 0)
        return luaL_error(L, "gl.debug: cannot arm the heartbeat");
    if (pthread_create(&bd.watchdog, NULL, watchdog_main, NULL) != 0) {
        event_free(bd.beat_ev);
        bd.beat_ev = NULL;
        return luaL_error(L, "gl.debug: cannot start the watchdog thread");
    }
    bd.running = 1;
    return 0;
}

/* ---- SIGUSR1 ---- */

static void usr1_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    gl_hub *h = arg;
    lua_State *L = h->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, usr1_ref);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        fprintf(stderr, "gl.debug: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
}

/* core.debug_on_sigusr1(fn): fn() runs on the hub at each SIGUSR1 */
static int l_on_usr1(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    gl_hub *h = gl_hub_get(L);
    ensure_guard(L);
    lua_settop(L, 1);
    if (usr1_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, usr1_ref);
    usr1_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (!usr1_ev) {
        usr1_ev = evsignal_new(h->base, SIGUSR1, usr1_cb, h);
        if (!usr1_ev || evsignal_add(usr1_ev, NULL) < 0)
            return luaL_error(L, "gl.debug: cannot watch SIGUSR1");
    }
    return 0;
}

void gl_open_debug(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"hub_listeners", l_listeners},
                                     {"hub_blocking_detection", l_blocking},
                                     {"debug_on_sigusr1", l_on_usr1},
                                     {NULL, NULL}};
    luaL_setfuncs(L, funcs, 0);
}
