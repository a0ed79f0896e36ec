/* Time: gl.sleep, the monotonic clock, gl.Timeout, and the C API's gl_wait_timer and
 * gl_wait_fd. Parking and waking themselves belong to sched.c. */
#include "hub.h"
#include "sched.h"
#include "gl.h" /* gives the public gl_wait_timer, gl_wake_ready... default visibility */

#include <lauxlib.h>
#include <string.h>
#include <time.h>

#define TIMEOUT_MT "gl.Timeout"

typedef struct gl_timeout {
    struct event *ev;
    gl_thread *t; /* kept alive: the thread's userdata is uservalue 2 */
    double sec;
    int ref; /* registry anchor while armed or while its error is pending */
    int pending;
} gl_timeout;

static int sleep_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    gl_sched_wake_check(L, gl_current(L));
    return 0;
}

/* core.yield_behind(): lets the threads made ready so far run, then goes on in the same
 * pass; a blocking point like sleep(0), for a hand-off that must run the taker first. */
static int l_yield_behind(lua_State *L)
{
    lua_settop(L, 0);
    gl_thread *t = gl_check_blocking(L, "yield");
    gl_sched_check_pending(L, t);
    return gl_sched_yield_behind(L, t, sleep_k, 0);
}

static int l_sleep(lua_State *L)
{
    double sec = luaL_optnumber(L, 1, 0);
    lua_settop(L, 0);
    gl_thread *t = gl_check_blocking(L, "gl.sleep");
    gl_sched_check_pending(L, t);
    if (sec <= 0)
        return gl_sched_yield_ready(L, t, sleep_k, 0);
    if (gl_sched_arm(t, -1, 0, sec) != 0)
        return luaL_error(L, "gl.sleep: cannot arm the timer");
    t->wait_data = "gl.sleep";
    return gl_sched_park(L, t, sleep_k, 0);
}

int gl_wait_timer(lua_State *L, double sec, lua_KFunction k, lua_KContext ctx)
{
    gl_thread *t = gl_check_blocking(L, "gl_wait_timer");
    gl_sched_check_pending(L, t);
    if (gl_sched_arm(t, -1, 0, sec < 0 ? 0 : sec) != 0)
        return luaL_error(L, "gl_wait_timer: cannot arm the timer");
    t->timer_ok = 1; /* the delay running out is what k waits for: gl_wake_ready gives 1 */
    return gl_sched_park(L, t, k, ctx);
}

int gl_wait_fd(lua_State *L, int fd, int what, double timeout, lua_KFunction k, lua_KContext ctx)
{
    gl_thread *t = gl_check_blocking(L, "gl_wait_fd");
    gl_sched_check_pending(L, t);
    short ev = (short)(what & (EV_READ | EV_WRITE));
    if (fd < 0 || !ev)
        return luaL_error(L, "gl_wait_fd: bad fd or event mask");
    if (gl_sched_arm(t, fd, ev, timeout) != 0)
        return luaL_error(L, "gl_wait_fd: cannot watch fd %d", fd);
    return gl_sched_park(L, t, k, ctx);
}

static int l_clock(lua_State *L)
{
    lua_pushnumber(L, gl_hub_now());
    return 1;
}

/* ---- gl.Timeout ---- */

static void release(lua_State *L, gl_timeout *to)
{
    if (to->ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, to->ref);
        to->ref = LUA_NOREF;
    }
}

/* [-0, +1] the value a fired Timeout raises: its own err, or the Timeout itself */
static void push_error(lua_State *L, gl_timeout *to)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, to->ref);
    if (lua_getiuservalue(L, -1, 1) == LUA_TNIL)
        lua_pop(L, 1);
    else
        lua_remove(L, -2);
}

void gl_timeout_push_error(lua_State *L, void *timeout)
{
    gl_timeout *to = timeout;
    push_error(L, to);
    release(L, to);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gl_timeout *to = arg;
    gl_thread *t = to->t;
    lua_State *L = t->hub->L;
    to->pending = 0;
    t->hub->n_waits--;
    if (t->state == GL_T_READY && t->started && t->nwake) {
        /* it was woken with a value (a queue item): keep it, raise at the next block */
        lua_rawgeti(L, LUA_REGISTRYINDEX, to->ref);
        gl_sched_set_pending_timeout(L, t);
    } else if (t->state == GL_T_PARKED || (t->state == GL_T_READY && t->started)) {
        push_error(L, to); /* raised where the thread waits (a READY one: in sleep(0)) */
        release(L, to);
        gl_sched_throw(L, t);
    } else {
        release(L, to);
    }
}

static gl_timeout *check_timeout(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, TIMEOUT_MT);
}

static int timeout_cancel(lua_State *L)
{
    gl_timeout *to = check_timeout(L, 1);
    if (to->pending) {
        event_del(to->ev);
        to->pending = 0;
        to->t->hub->n_waits--;
    }
    if (to->t)
        gl_sched_take_pending_timeout(L, to->t, to);
    release(L, to);
    return 0;
}

static int timeout_new(lua_State *L)
{
    lua_Number sec = luaL_opt(L, luaL_checknumber, 1, -1);
    lua_settop(L, 2);
    gl_thread *t = gl_current(L);
    if (!t)
        return luaL_error(L, "gl.Timeout: not in a green thread");
    gl_timeout *to = lua_newuserdatauv(L, sizeof *to, 2);
    to->ev = NULL;
    to->t = t;
    to->sec = sec;
    to->ref = LUA_NOREF;
    to->pending = 0;
    luaL_setmetatable(L, TIMEOUT_MT);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1);
    gl_push_thread(L, t);
    lua_setiuservalue(L, -2, 2);
    if (sec >= 0) {
        to->ev = evtimer_new(t->hub->base, timeout_cb, to);
        event_base_update_cache_time(t->hub->base); /* see gl_sched_arm */
        struct timeval tv = gl_timeval(sec);
        if (!to->ev || evtimer_add(to->ev, &tv) != 0)
            return luaL_error(L, "gl.Timeout: cannot arm the timer");
        to->pending = 1;
        t->hub->n_waits++;
        lua_pushvalue(L, -1);
        to->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return 1;
}

static int timeout_gc(lua_State *L)
{
    gl_timeout *to = check_timeout(L, 1);
    if (to->ev) {
        event_free(to->ev);
        to->ev = NULL;
    }
    return 0;
}

static int timeout_index(lua_State *L)
{
    gl_timeout *to = check_timeout(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "pending") == 0) {
        lua_pushboolean(L, to->pending);
        return 1;
    }
    if (strcmp(k, "seconds") == 0) {
        if (to->sec < 0)
            lua_pushnil(L);
        else
            lua_pushnumber(L, to->sec);
        return 1;
    }
    if (strcmp(k, "cancel") == 0) {
        lua_pushcfunction(L, timeout_cancel);
        return 1;
    }
    return 0;
}

static int timeout_tostring(lua_State *L)
{
    gl_timeout *to = check_timeout(L, 1);
    if (to->sec < 0)
        lua_pushliteral(L, "gl.Timeout (never)");
    else
        lua_pushfstring(L, "gl.Timeout: %f seconds", (LUAI_UACNUMBER)to->sec);
    return 1;
}

void gl_push_expired_timeout(lua_State *L, double sec)
{
    gl_timeout *to = lua_newuserdatauv(L, sizeof *to, 2);
    to->ev = NULL;
    to->t = NULL;
    to->sec = sec;
    to->ref = LUA_NOREF;
    to->pending = 0;
    luaL_setmetatable(L, TIMEOUT_MT);
}

static int l_is_timeout(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, TIMEOUT_MT) != NULL);
    return 1;
}

int gl_open_timer(lua_State *L)
{
    static const luaL_Reg meta[] = {{"__index", timeout_index},
                                    {"__gc", timeout_gc},
                                    {"__close", timeout_cancel},
                                    {"__tostring", timeout_tostring},
                                    {NULL, NULL}};
    static const luaL_Reg funcs[] = {{"sleep", l_sleep},           {"yield_behind", l_yield_behind},
                                     {"clock", l_clock},           {"Timeout", timeout_new},
                                     {"is_timeout", l_is_timeout}, {NULL, NULL}};
    luaL_newmetatable(L, TIMEOUT_MT);
    luaL_setfuncs(L, meta, 0);
    lua_pop(L, 1);
    luaL_setfuncs(L, funcs, 0);
    return 0;
}
