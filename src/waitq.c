/* Wait queues: intrusive FIFOs of parked green threads, the one building block of Event,
 * Semaphore, Queue and the pools (their policy is Lua), and Event:wait itself. */
#include "sched.h"

#include <lauxlib.h>

#define WAITQ_MT "gl.waitq"

/* ---- wait queues ---- */

void gl_waitq_push(gl_waitq *q, gl_thread *t)
{
    t->wq = q;
    t->wq_next = NULL;
    t->wq_prev = q->tail;
    if (q->tail)
        q->tail->wq_next = t;
    else
        q->head = t;
    q->tail = t;
    q->n++;
}

void gl_waitq_remove(gl_thread *t)
{
    gl_waitq *q = t->wq;
    if (!q)
        return;
    if (t->wq_prev)
        t->wq_prev->wq_next = t->wq_next;
    else
        q->head = t->wq_next;
    if (t->wq_next)
        t->wq_next->wq_prev = t->wq_prev;
    else
        q->tail = t->wq_prev;
    q->n--;
    t->wq = NULL;
    t->wq_next = t->wq_prev = NULL;
}

gl_thread *gl_waitq_pop(gl_waitq *q)
{
    gl_thread *t = q->head;
    if (t)
        gl_waitq_remove(t);
    return t;
}

int gl_waitq_new(lua_State *L)
{
    /* the user value: a table of the offers parked putters hold, made on first use */
    gl_waitq *q = lua_newuserdatauv(L, sizeof *q, 1);
    q->head = q->tail = NULL;
    q->n = 0;
    luaL_setmetatable(L, WAITQ_MT);
    return 1;
}

static int deliver_record(lua_State *L, int rec);

#define PARK_EVENT 1 /* park_event: the value is an Event's result record */
#define PARK_OFFER 2 /* the waiter holds an offer in the queue's table */

/* [-0, +1] pushes the queue's offer table at idx, making it when make is set (else nil) */
static int offers(lua_State *L, int idx, int make)
{
    if (lua_getiuservalue(L, idx, 1) == LUA_TTABLE || !make)
        return lua_type(L, -1);
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, idx, 1);
    return LUA_TTABLE;
}

static void drop_offer(lua_State *L, int idx, gl_thread *t)
{
    if (offers(L, idx, 0) == LUA_TTABLE) {
        lua_pushnil(L);
        lua_rawsetp(L, -2, t);
    }
    lua_pop(L, 1);
}

static int wq_park_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    gl_thread *t = gl_current(L);
    if (ctx & PARK_OFFER) /* taken or not, the offer is this call's no longer */
        drop_offer(L, 1, t);
    switch (t->wake_kind) {
    case GL_WAKE_OK:
        if (ctx & PARK_EVENT)
            return deliver_record(L, lua_gettop(L));
        lua_pushboolean(L, 1);
        lua_insert(L, -2);
        return 2; /* true, the value handed over */
    case GL_WAKE_TIMEOUT:
        lua_pop(L, 1);
        if (ctx & PARK_EVENT)
            return 0;
        lua_pushboolean(L, 0);
        return 1;
    default:
        gl_sched_wake_check(L, t);
        return 0;
    }
}

/* q:park(name [, timeout [, offer]]) -> true, value | false on timeout. An offer is what
 * the waiter holds for whoever takes it with q:take (a channel's item). */
static int park(lua_State *L, lua_KContext mode)
{
    gl_waitq *q = luaL_checkudata(L, 1, WAITQ_MT);
    const char *name = luaL_optstring(L, 2, "wait");
    double sec = luaL_optnumber(L, 3, -1);
    gl_thread *t = gl_check_blocking(L, name);
    gl_sched_check_pending(L, t);
    if (lua_gettop(L) >= 4 && !lua_isnil(L, 4)) {
        offers(L, 1, 1);
        lua_pushvalue(L, 4);
        lua_rawsetp(L, -2, t);
        lua_pop(L, 1);
        mode |= PARK_OFFER;
    }
    gl_waitq_push(q, t);
    t->wait_data = (void *)name; /* stays on this call's stack while parked */
    if (sec >= 0 && gl_sched_arm(t, -1, 0, sec) != 0) {
        gl_waitq_remove(t);
        if (mode & PARK_OFFER)
            drop_offer(L, 1, t);
        return luaL_error(L, "%s: cannot arm the timer", name);
    }
    return gl_sched_park(L, t, wq_park_k, mode);
}

static int wq_park(lua_State *L)
{
    return park(L, 0);
}

/* [-0, +n] pushes the values of an Event result record at idx, or raises its error */
static int deliver_record(lua_State *L, int rec)
{
    if (lua_getfield(L, rec, "error") != LUA_TNIL)
        return lua_error(L);
    lua_pop(L, 1);
    lua_getfield(L, rec, "n");
    int n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n, "too many values");
    for (int i = 1; i <= n; i++)
        lua_rawgeti(L, rec, i);
    return n;
}

/* Event:wait([timeout]) in C, so that a blocked waiter keeps no Lua frame: the memory
 * of a parked green thread is what 100,000 idle waiters cost. */
static int l_event_wait(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    if (lua_getfield(L, 1, "_result") != LUA_TNIL)
        return deliver_record(L, 3);
    lua_pop(L, 1);
    lua_getfield(L, 1, "_waiters"); /* stack: ev, timeout, waitq */
    lua_replace(L, 1);
    lua_pushliteral(L, "Event:wait");
    lua_insert(L, 2); /* stack: waitq, name, timeout */
    return park(L, PARK_EVENT);
}

/* q:park_event(name [, timeout]) -> the values of the Event result record handed over
 * (raising its error), or nothing on timeout. Called in tail position by Event:wait, so
 * a blocked waiter keeps no Lua frame of its own. */
static int wq_park_event(lua_State *L)
{
    lua_settop(L, 3); /* no offer */
    return park(L, PARK_EVENT);
}

/* q:wake_one([v]) -> true when a waiter was woken (and handed v) */
static int wq_wake_one(lua_State *L)
{
    gl_waitq *q = luaL_checkudata(L, 1, WAITQ_MT);
    gl_thread *t = gl_waitq_pop(q);
    if (!t) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_settop(L, 2);
    gl_sched_wake(L, t, GL_WAKE_OK, 1);
    lua_pushboolean(L, 1);
    return 1;
}

/* q:take([v]) -> true, offer when the first waiter was woken (and handed v) | false */
static int wq_take(lua_State *L)
{
    gl_waitq *q = luaL_checkudata(L, 1, WAITQ_MT);
    gl_thread *t = gl_waitq_pop(q);
    if (!t) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_settop(L, 2);
    gl_sched_wake(L, t, GL_WAKE_OK, 1);
    lua_pushboolean(L, 1);
    if (offers(L, 1, 0) == LUA_TTABLE) {
        lua_rawgetp(L, -1, t);
        lua_pushnil(L);
        lua_rawsetp(L, -3, t);
        lua_remove(L, -2);
    }
    return 2;
}

static int wq_wake_all(lua_State *L)
{
    gl_waitq *q = luaL_checkudata(L, 1, WAITQ_MT);
    lua_settop(L, 2);
    int n = 0;
    gl_thread *t;
    while ((t = gl_waitq_pop(q)) != NULL) {
        lua_pushvalue(L, 2);
        gl_sched_wake(L, t, GL_WAKE_OK, 1);
        n++;
    }
    lua_pushinteger(L, n);
    return 1;
}

static int wq_len(lua_State *L)
{
    gl_waitq *q = luaL_checkudata(L, 1, WAITQ_MT);
    lua_pushinteger(L, q->n);
    return 1;
}

int gl_open_waitq(lua_State *L)
{
    static const luaL_Reg methods[] = {{"park", wq_park},         {"park_event", wq_park_event},
                                       {"wake_one", wq_wake_one}, {"take", wq_take},
                                       {"wake_all", wq_wake_all}, {NULL, NULL}};
    luaL_newmetatable(L, WAITQ_MT);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, wq_len);
    lua_setfield(L, -2, "__len");
    lua_pop(L, 1);
    lua_pushcfunction(L, gl_waitq_new);
    lua_setfield(L, -2, "waitq");
    lua_pushcfunction(L, l_event_wait);
    lua_setfield(L, -2, "event_wait");
    return 0;
}
