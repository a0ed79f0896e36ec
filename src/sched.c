/* Green threads: spawn, park and wake, kill, wait queues, and the GreenThread handle.
 * A thread is a coroutine plus a gl_thread userdata; the userdata is anchored in the
 * hub's anchor table from spawn until it has ended and left the run queue. */
#include "sched.h"
#include "gl.h" /* gives the public gl_wait_timer, gl_wake_ready... default visibility */
#include "compat.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char sentinels_key;

void gl_push_sentinel(lua_State *L, const char *name)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &sentinels_key);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
}

/* ---- anchoring ---- */

static void anchor(lua_State *L, gl_hub *h, gl_thread *t, int ud)
{
    int slot;
    ud = lua_absindex(L, ud);
    if (h->n_free)
        slot = h->free_slots[--h->n_free];
    else
        slot = ++h->max_slot;
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->anchors_ref);
    lua_pushvalue(L, ud);
    lua_rawseti(L, -2, slot);
    lua_pop(L, 1);
    t->slot = slot;
}

static void unanchor(lua_State *L, gl_thread *t)
{
    gl_hub *h = t->hub;
    if (!t->slot)
        return;
    if (h->n_free == h->cap_free) {
        int cap = h->cap_free ? h->cap_free * 2 : 256;
        int *p = realloc(h->free_slots, (size_t)cap * sizeof *p);
        if (!p) {
            /* keep the slot taken rather than fail: a leak of one slot, not a crash */
            t->slot = 0;
            return;
        }
        h->free_slots = p;
        h->cap_free = cap;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->anchors_ref);
    lua_pushnil(L);
    lua_rawseti(L, -2, t->slot);
    lua_pop(L, 1);
    h->free_slots[h->n_free++] = t->slot;
    t->slot = 0;
}

void gl_push_thread(lua_State *L, gl_thread *t)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->hub->anchors_ref);
    lua_rawgeti(L, -1, t->slot);
    lua_remove(L, -2);
}

/* ---- blocking ---- */

gl_thread *gl_check_blocking(lua_State *L, const char *what)
{
    gl_thread *t = gl_current(L);
    if (!t)
        luaL_error(L,
                   "%s: not in a green thread (run the code with gl.spawn or the gl "
                   "interpreter)",
                   what);
    if (!lua_isyieldable(L) || gl_in_hub_wait(L))
        luaL_error(L,
                   "%s: cannot block here (inside a metamethod, an iterator or a C "
                   "callback that cannot yield)",
                   what);
    return t;
}

/* registry: thread userdata -> its table of rarely used things, weak keys: its links in
 * the array part, "kill" (a deferred kill), "timeout" (a Timeout that fired while it was
 * READY), "joiners" (a wait queue of threads in :wait()). Kept out of the userdata so a
 * parked thread costs less memory. */
static char extras_key;

/* [-0, +1] pushes the extras table of the thread userdata at ud (made when create), or
 * nil; returns whether it is a table. */
static int push_extras(lua_State *L, int ud, int create)
{
    ud = lua_absindex(L, ud);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &extras_key);
    lua_pushvalue(L, ud);
    if (lua_rawget(L, -2) == LUA_TNIL && create) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, ud);
        lua_pushvalue(L, -2);
        lua_rawset(L, -4);
    }
    lua_remove(L, -2);
    return lua_type(L, -1) == LUA_TTABLE;
}

void gl_sched_set_pending_timeout(lua_State *L, gl_thread *t)
{
    int to = lua_gettop(L);
    gl_push_thread(L, t);
    push_extras(L, -1, 1);
    lua_pushvalue(L, to);
    lua_setfield(L, -2, "timeout");
    lua_settop(L, to - 1);
    t->pending_to = 1;
}

void *gl_sched_take_pending_timeout(lua_State *L, gl_thread *t, void *only)
{
    if (!t->pending_to)
        return NULL;
    int top = lua_gettop(L);
    void *to = NULL;
    gl_push_thread(L, t);
    if (push_extras(L, -1, 0)) {
        lua_getfield(L, -1, "timeout");
        to = lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (only && to != only)
            to = NULL;
        else {
            lua_pushnil(L);
            lua_setfield(L, -2, "timeout");
            t->pending_to = 0;
        }
    }
    lua_settop(L, top);
    return to;
}

void gl_sched_check_pending(lua_State *L, gl_thread *t)
{
    if (t->pending_err) {
        t->pending_err = 0;
        gl_push_thread(L, t);
        push_extras(L, -1, 1);
        lua_getfield(L, -1, "kill");
        lua_pushnil(L);
        lua_setfield(L, -3, "kill");
        lua_error(L);
    }
    if (t->pending_to) {
        void *to = gl_sched_take_pending_timeout(L, t, NULL);
        if (to) {
            gl_timeout_push_error(L, to);
            lua_error(L);
        }
    }
}

/* ---- deadline timers ----
 * A socket wait with a timeout arms a deadline. When the wait ends early (the usual case:
 * data came), its timer is left pending ("stale") rather than deleted, and a next deadline
 * no earlier than the last one only moves t->deadline: the pending timer fires at or before
 * the last deadline, so never late. A keep-alive connection so costs no event_add/event_del
 * per request; a timer that fires before its deadline arms itself again for the rest. */

/* Forgets t's stale timer, if it has one; 1 when it had. */
static int take_stale(gl_thread *t)
{
    if (!t->ev_stale)
        return 0;
    t->ev_stale = 0;
    t->hub->n_stale--;
    return 1;
}

static void unstale(gl_thread *t)
{
    if (take_stale(t))
        event_del(t->ev);
}

static int add_timer(gl_thread *t, double sec)
{
    /* libevent measures from the time cached at the start of this loop pass, and a
     * green thread may have run long since: without this, timers fire early */
    event_base_update_cache_time(t->hub->base);
    struct timeval tv = gl_timeval(sec);
    return event_add(t->ev, &tv);
}

static void thread_ev_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    gl_thread *t = arg;
    if (take_stale(t)) /* no wait holds it any more */
        return;
    if (t->ev_deadline && t->ev_armed) {
        double left = t->deadline - gl_hub_now();
        if (left > 0 && add_timer(t, left) == 0) /* moved on by a later wait */
            return;
    }
    t->ev_armed = 0;
    if (t->state == GL_T_READY && !t->started) { /* spawn_after's delay is over */
        gl_sched_uncount(t);
        gl_hub_enqueue(t->hub, t);
        return;
    }
    gl_sched_wake_now(t, (what & EV_TIMEOUT) && !t->timer_ok ? GL_WAKE_TIMEOUT : GL_WAKE_OK);
}

int gl_sched_arm(gl_thread *t, int fd, short what, double sec)
{
    t->timer_ok = 0;
    t->ev_deadline = 0;
    if (!t->ev)
        t->ev = event_new(t->hub->base, fd, what, thread_ev_cb, t);
    else {
        unstale(t); /* a pending event cannot be assigned */
        if (event_get_fd(t->ev) != fd || event_get_events(t->ev) != what) /* else: as it is */
            event_assign(t->ev, t->hub->base, fd, what, thread_ev_cb, t);
    }
    if (!t->ev || (sec >= 0 ? add_timer(t, sec) : event_add(t->ev, NULL)) != 0)
        return -1;
    t->ev_armed = 1;
    return 0;
}

int gl_sched_arm_deadline(gl_thread *t, double sec)
{
    double deadline = gl_hub_now() + (sec < 1e9 ? sec : 1e9);
    if (t->ev_stale && t->ev_deadline && t->deadline <= deadline) {
        take_stale(t); /* its timer_ok is 0: gl_sched_arm cleared it with ev_deadline */
    } else {
        if (gl_sched_arm(t, -1, 0, sec) != 0)
            return -1;
        t->ev_deadline = 1;
    }
    t->deadline = deadline;
    t->ev_armed = 1;
    return 0;
}

void gl_sched_drop_stale(gl_hub *h)
{
    if (!h->n_stale)
        return;
    lua_State *L = h->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->anchors_ref);
    for (int i = 1; i <= h->max_slot && h->n_stale; i++) {
        lua_rawgeti(L, -1, i);
        gl_thread *t = luaL_testudata(L, -1, GL_THREAD_MT);
        lua_pop(L, 1);
        if (t)
            unstale(t);
    }
    lua_pop(L, 1);
}

/* Cancels whatever t waits on. */
void gl_sched_uncount(gl_thread *t)
{
    if (t->counted) {
        t->counted = 0;
        t->hub->n_waits--;
    }
}

static void unpark(gl_thread *t)
{
    gl_sched_uncount(t);
    gl_waitq_remove(t);
    if (t->ev_armed) {
        if (t->ev_deadline) { /* left pending for the next deadline wait */
            t->ev_stale = 1;
            t->hub->n_stale++;
        } else {
            event_del(t->ev);
        }
        t->ev_armed = 0;
    }
    if (t->unwait) {
        t->unwait(t);
        t->unwait = NULL;
    }
}

void gl_sched_wake_now(gl_thread *t, int kind)
{
    if (t->state != GL_T_PARKED)
        return;
    unpark(t);
    t->wake_kind = (unsigned char)kind;
    t->nwake = 0;
    t->state = GL_T_READY;
    gl_sched_resume(t);
}

int gl_sched_park(lua_State *L, gl_thread *t, lua_KFunction k, lua_KContext ctx)
{
    if (t->ev_armed || t->unwait) { /* a wait that can end without another thread */
        t->counted = 1;
        t->hub->n_waits++;
    }
    t->state = GL_T_PARKED;
    t->hub_yield = 1;
    t->wake_kind = GL_WAKE_OK;
    t->nwake = 0;
    return lua_yieldk(L, 0, ctx, k);
}

static int requeue(lua_State *L, gl_thread *t, lua_KFunction k, lua_KContext ctx, int after_poll)
{
    t->state = GL_T_READY;
    t->hub_yield = 1;
    t->wake_kind = GL_WAKE_OK;
    t->nwake = 0;
    t->yielded = (unsigned)after_poll;
    gl_hub_enqueue(t->hub, t);
    return lua_yieldk(L, 0, ctx, k);
}

int gl_sched_yield_ready(lua_State *L, gl_thread *t, lua_KFunction k, lua_KContext ctx)
{
    return requeue(L, t, k, ctx, 1);
}

int gl_sched_yield_behind(lua_State *L, gl_thread *t, lua_KFunction k, lua_KContext ctx)
{
    return requeue(L, t, k, ctx, 0);
}

void gl_sched_wake(lua_State *L, gl_thread *t, int kind, int push)
{
    unpark(t);
    if (push) {
        lua_checkstack(t->co, 2);
        lua_xmove(L, t->co, 1);
    }
    t->nwake = (unsigned char)(push != 0);
    t->wake_kind = (unsigned char)kind;
    t->state = GL_T_READY;
    if (!t->queued)
        gl_hub_enqueue(t->hub, t);
}

int gl_sched_wake_check(lua_State *L, gl_thread *t)
{
    switch (t->wake_kind) {
    case GL_WAKE_RAISE:
        lua_error(L); /* the wake value is the error */
        break;
    case GL_WAKE_DEADLOCK:
        lua_pop(L, 1);
        lua_pushfstring(L, "deadlock: %s would wait forever",
                        t->wait_data ? (const char *)t->wait_data : "wait");
        lua_error(L);
        break;
    default:
        lua_pop(L, 1);
        break;
    }
    return t->wake_kind;
}

int gl_wake_ready(lua_State *L)
{
    gl_thread *t = gl_current(L);
    if (!t) {
        lua_pop(L, 1);
        return 1;
    }
    return gl_sched_wake_check(L, t) == GL_WAKE_OK;
}

void gl_sched_throw(lua_State *L, gl_thread *t)
{
    switch (t->state) {
    case GL_T_DEAD:
        lua_pop(L, 1);
        return;
    case GL_T_PARKED:
        gl_sched_wake(L, t, GL_WAKE_RAISE, 1);
        return;
    case GL_T_READY:
        if (!t->started) { /* it never starts: it ends with err as its error */
            gl_sched_uncount(t);
            if (t->ev_armed) {
                event_del(t->ev);
                t->ev_armed = 0;
            }
            lua_settop(t->co, 0);
            lua_xmove(L, t->co, 1);
            t->state = GL_T_DEAD;
            t->failed = 1;
            gl_sched_finish(L, t);
            return;
        }
        if (t->nwake) { /* keep the value handed over: raise at the next blocking point */
            if (!t->pending_err) {
                gl_push_thread(L, t);
                push_extras(L, -1, 1);
                lua_rotate(L, -3, -1); /* stack: ud, extras, err */
                lua_setfield(L, -2, "kill");
                t->pending_err = 1;
                lua_pop(L, 2);
                return;
            }
            lua_pop(L, 1);
            return;
        }
        lua_checkstack(t->co, 2);
        lua_xmove(L, t->co, 1);
        t->nwake = 1;
        t->wake_kind = GL_WAKE_RAISE;
        return;
    default: /* RUNNING: the caller raises it itself */
        lua_error(L);
    }
}

/* ---- life cycle ---- */

static int is_sentinel(lua_State *L, int idx, const char *name)
{
    idx = lua_absindex(L, idx);
    gl_push_sentinel(L, name);
    int eq = lua_rawequal(L, idx, -1);
    lua_pop(L, 1);
    return eq;
}

/* A thread's body runs under a protected call inside its own coroutine, so that an error
 * (a kill included) unwinds there, where <close> handlers may block: a TaskGroup closed by
 * an error still kills and waits for its children. The message handler keeps the
 * traceback, which the unwinding destroys, for the report. */
static int thread_msgh(lua_State *L)
{
    gl_thread *t = gl_current(L);
    if (t && !t->no_report && !is_sentinel(L, 1, "GreenletExit")) {
        const char *msg;
        if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER ||
            luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) {
            lua_settop(L, 1);
            msg = luaL_tolstring(L, 1, NULL);
        } else {
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
        }
        luaL_traceback(L, L, msg, 1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, t);
        t->has_trace = 1;
    }
    lua_settop(L, 1);
    return 1;
}

static int thread_body_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)ctx;
    if (status != LUA_OK && status != LUA_YIELD)
        return lua_error(L);
    return lua_gettop(L) - 1; /* the results, above the message handler */
}

static int thread_body(lua_State *L)
{
    lua_pushcfunction(L, thread_msgh);
    lua_insert(L, 1);
    return thread_body_k(L, lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 1, 0, thread_body_k), 0);
}

/* [-0, +1] pushes the traceback kept for t's error (and forgets it), or nil */
void gl_sched_push_trace(lua_State *L, gl_thread *t)
{
    if (!t->has_trace) {
        lua_pushnil(L);
        return;
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, t);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, t);
    t->has_trace = 0;
}

void gl_sched_resume(gl_thread *t)
{
    gl_hub *h = t->hub;
    lua_State *co = t->co;
    int nargs;
    if (!t->started) {
        t->started = 1;
        lua_pushcfunction(co, thread_body);
        lua_insert(co, 1);
        nargs = lua_gettop(co) - 1;
    } else {
        if (!t->nwake)
            lua_pushboolean(co, t->wake_kind != GL_WAKE_TIMEOUT);
        nargs = 1;
    }
    t->nwake = 0;
    t->state = GL_T_RUNNING;
    t->hub_yield = 0;
    gl_thread *prev = h->current;
    h->current = t;
    int nres;
    int st = lua_resume(co, h->L, nargs, &nres);
    h->current = prev;
    if (st == LUA_YIELD) {
        if (!t->hub_yield) { /* a bare lua_yield from some C library: treat as sleep(0) */
            lua_pop(co, nres);
            t->state = GL_T_READY;
            gl_hub_enqueue(h, t);
        } else if (h->quiesce && gl_hub_idle(h)) {
            /* it parked on a wait no event ends (a queue, an Event): a host's loop must
             * not keep running for gl's persistent socket events and stale timers */
            h->quiesce(h);
        }
        return;
    }
    t->state = GL_T_DEAD;
    if (st != LUA_OK) {
        t->failed = 1;
        int quiet = is_sentinel(co, -1, "GreenletExit") || t->no_report;
        if (t->is_main) {
            int interrupted = is_sentinel(co, -1, "Interrupt");
            if (interrupted)
                fprintf(stderr, "gl: interrupted\n");
            else
                gl_hub_report(h, t);
            h->exit_code = interrupted ? 130 : 1;
            h->stop = 1;
            event_base_loopbreak(h->base);
        } else if (!quiet) {
            gl_hub_report(h, t);
        }
        /* run the thread's <close> variables; the error object stays at index 1. The
         * close returns the thread's own error status too, so report only a new error
         * (one a __close raised). */
        lua_pushvalue(co, -1);
        lua_xmove(co, h->L, 1); /* L: the error before closing */
        int cst = gl_closethread(co, h->L);
        lua_xmove(h->L, co, 1); /* co: the error after closing, the one before */
        int same = lua_rawequal(co, 1, -1);
        lua_pop(co, 1);
        if (cst != LUA_OK && !quiet && !same)
            gl_hub_report(h, t);
        lua_settop(co, 1);
        if (t->has_trace) { /* not reported (a quiet end): forget it */
            gl_sched_push_trace(h->L, t);
            lua_pop(h->L, 1);
        }
    } else if (lua_gettop(co) > nres) { /* keep exactly the results: see th_results */
        int extra = lua_gettop(co) - nres;
        lua_rotate(co, 1, -extra);
        lua_settop(co, nres);
    }
    gl_sched_finish(h->L, t);
    if (h->quiesce && gl_hub_idle(h))
        h->quiesce(h);
}

static void run_links(lua_State *L, gl_thread *t)
{
    int top = lua_gettop(L);
    gl_push_thread(L, t);
    if (push_extras(L, -1, 0)) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, top + 2, i) != LUA_TTABLE) {
                lua_pop(L, 1);
                continue;
            }
            int entry = lua_gettop(L);
            lua_Integer nargs = luaL_len(L, entry);
            lua_rawgeti(L, entry, 1);  /* fn */
            lua_pushvalue(L, top + 1); /* gt */
            for (lua_Integer a = 2; a <= nargs; a++)
                lua_rawgeti(L, entry, a);
            if (lua_pcall(L, (int)nargs, 0, 0) != LUA_OK) {
                fprintf(stderr, "gl: error in a link of green thread %lld: %s\n", (long long)t->id,
                        luaL_tolstring(L, -1, NULL));
                lua_pop(L, 1);
            }
            lua_settop(L, entry - 1);
        }
    }
    lua_settop(L, top);
}

void gl_sched_finish(lua_State *L, gl_thread *t)
{
    if (t->ev)
        unstale(t);
    if (!t->finished) {
        t->finished = 1;
        void *to = gl_sched_take_pending_timeout(L, t, NULL);
        if (to) { /* it ended before the Timeout could raise */
            gl_timeout_push_error(L, to);
            lua_pop(L, 1);
        }
        int top = lua_gettop(L);
        gl_push_thread(L, t);
        if (push_extras(L, -1, 0) && lua_getfield(L, -1, "joiners") == LUA_TUSERDATA) {
            gl_waitq *q = lua_touserdata(L, -1);
            gl_thread *j;
            while ((j = gl_waitq_pop(q)) != NULL)
                gl_sched_wake(L, j, GL_WAKE_OK, 0);
        }
        lua_settop(L, top);
        run_links(L, t);
    }
    if (!t->queued)
        unanchor(L, t);
}

gl_thread *gl_spawn(lua_State *L, int n)
{
    gl_hub *h = gl_hub_get(L);
    luaL_checktype(L, -(n + 1), LUA_TFUNCTION);
    gl_thread *t = lua_newuserdatauv(L, sizeof *t, 1); /* the coroutine */
    memset(t, 0, sizeof *t);
    luaL_setmetatable(L, GL_THREAD_MT);
    t->hub = h;
    t->id = ++h->next_id;
    t->co = lua_newthread(L);
    lua_setiuservalue(L, -2, 1);
    gl_set_owner(t->co, t, 0);
    /* stack: fn, args..., ud */
    lua_insert(L, -(n + 2));
    lua_xmove(L, t->co, n + 1);
    anchor(L, h, t, -1);
    t->state = GL_T_READY;
    return t;
}

/* ---- Lua functions ---- */

static gl_thread *check_thread(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, GL_THREAD_MT);
}

static int l_spawn(lua_State *L)
{
    gl_thread *t = gl_spawn(L, lua_gettop(L) - 1);
    gl_hub_enqueue(t->hub, t);
    return 1;
}

static int l_spawn_n(lua_State *L)
{
    gl_thread *t = gl_spawn(L, lua_gettop(L) - 1);
    gl_hub_enqueue(t->hub, t);
    return 0;
}

static int l_spawn_after(lua_State *L)
{
    double sec = luaL_checknumber(L, 1);
    gl_thread *t = gl_spawn(L, lua_gettop(L) - 2);
    if (gl_sched_arm(t, -1, 0, sec < 0 ? 0 : sec) != 0)
        return luaL_error(L, "gl.spawn_after: cannot arm the timer");
    t->counted = 1; /* the delay keeps the hub busy like any timer */
    t->hub->n_waits++;
    return 1;
}

static int l_getcurrent(lua_State *L)
{
    gl_thread *t = gl_current(L);
    if (!t)
        return 0;
    gl_push_thread(L, t);
    return 1;
}

static int kill_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    gl_sched_wake_check(L, gl_current(L));
    return 0;
}

static int l_kill(lua_State *L)
{
    gl_thread *t = check_thread(L, 1);
    lua_settop(L, 2);
    if (lua_isnil(L, 2)) {
        lua_pop(L, 1);
        gl_push_sentinel(L, "GreenletExit");
    }
    gl_thread *me = gl_current(L);
    if (t->state == GL_T_DEAD)
        return 0;
    if (t == me)
        return lua_error(L);
    int started = t->started;
    gl_sched_throw(L, t);
    /* the killer yields so the victim runs until it blocks again or ends */
    if (me && started && lua_isyieldable(L) && !gl_in_hub_wait(L))
        return gl_sched_yield_ready(L, me, kill_k, 0);
    return 0;
}

static int th_results(lua_State *L, gl_thread *t)
{
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

static int th_wait_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    gl_sched_wake_check(L, gl_current(L));
    return th_results(L, check_thread(L, 1));
}

static int th_wait(lua_State *L)
{
    gl_thread *t = check_thread(L, 1);
    lua_settop(L, 1);
    if (t->state != GL_T_DEAD) {
        gl_thread *me = gl_check_blocking(L, "GreenThread:wait");
        if (me == t)
            return luaL_error(L, "GreenThread:wait: a green thread cannot wait for itself");
        gl_sched_check_pending(L, me);
        push_extras(L, 1, 1);
        if (lua_getfield(L, -1, "joiners") != LUA_TUSERDATA) {
            lua_pop(L, 1);
            gl_waitq_new(L);
            lua_pushvalue(L, -1);
            lua_setfield(L, -3, "joiners");
        }
        gl_waitq_push(lua_touserdata(L, -1), me);
        lua_settop(L, 1); /* the queue stays reachable through the extras table */
        me->wait_data = "GreenThread:wait";
        return gl_sched_park(L, me, th_wait_k, 0);
    }
    return th_results(L, t);
}

static int th_cancel(lua_State *L)
{
    gl_thread *t = check_thread(L, 1);
    if (!t->started && t->state != GL_T_DEAD) {
        lua_settop(L, 2);
        if (lua_isnil(L, 2)) {
            lua_pop(L, 1);
            gl_push_sentinel(L, "GreenletExit");
        }
        gl_sched_throw(L, t);
    }
    return 0;
}

static int th_link(lua_State *L)
{
    gl_thread *t = check_thread(L, 1);
    luaL_checkany(L, 2);
    int n = lua_gettop(L);
    if (t->finished) { /* already ended: call at once */
        lua_pushvalue(L, 2);
        lua_pushvalue(L, 1);
        for (int i = 3; i <= n; i++)
            lua_pushvalue(L, i);
        lua_call(L, n - 1, 0);
        return 0;
    }
    push_extras(L, 1, 1);
    lua_createtable(L, n - 1, 0);
    for (int i = 2; i <= n; i++) {
        lua_pushvalue(L, i);
        lua_rawseti(L, -2, i - 1);
    }
    lua_rawseti(L, -2, luaL_len(L, -2) + 1);
    return 0;
}

static int th_unlink(lua_State *L)
{
    check_thread(L, 1);
    if (!push_extras(L, 1, 0))
        return 0;
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_rawgeti(L, -1, 1);
        int same = lua_rawequal(L, -1, 2);
        lua_pop(L, 2);
        if (same) {
            for (lua_Integer j = i; j < n; j++) {
                lua_rawgeti(L, -1, j + 1);
                lua_rawseti(L, -2, j);
            }
            lua_pushnil(L);
            lua_rawseti(L, -2, n);
            break;
        }
    }
    return 0;
}

static int th_dead(lua_State *L)
{
    lua_pushboolean(L, check_thread(L, 1)->state == GL_T_DEAD);
    return 1;
}

static const char *status_name(gl_thread *t)
{
    switch (t->state) {
    case GL_T_DEAD:
        return "dead";
    case GL_T_RUNNING:
        return "running";
    default:
        return t->started ? "suspended" : "pending";
    }
}

static int th_status(lua_State *L)
{
    lua_pushstring(L, status_name(check_thread(L, 1)));
    return 1;
}

static int th_tostring(lua_State *L)
{
    gl_thread *t = check_thread(L, 1);
    lua_pushfstring(L, "gl.GreenThread %I (%s)", (LUAI_UACINT)t->id, status_name(t));
    return 1;
}

static int th_index(lua_State *L)
{
    gl_thread *t = check_thread(L, 1);
    const char *k = lua_tostring(L, 2);
    if (k && strcmp(k, "id") == 0) {
        lua_pushinteger(L, t->id);
        return 1;
    }
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

static int th_gc(lua_State *L)
{
    gl_thread *t = check_thread(L, 1);
    if (t->ev) {
        event_free(t->ev);
        t->ev = NULL;
    }
    return 0;
}

static int l_sentinel_tostring(lua_State *L)
{
    lua_getfield(L, 1, "name");
    return 1;
}

static void make_sentinel(lua_State *L, const char *name)
{
    lua_newtable(L);
    lua_pushfstring(L, "gl.%s", name);
    lua_setfield(L, -2, "name");
    lua_newtable(L);
    lua_pushcfunction(L, l_sentinel_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushfstring(L, "gl.%s", name);
    lua_setfield(L, -2, "__name");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, name);
}

int gl_open_sched(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"wait", th_wait},     {"kill", l_kill},  {"cancel", th_cancel}, {"link", th_link},
        {"unlink", th_unlink}, {"dead", th_dead}, {"status", th_status}, {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__index", th_index}, {"__gc", th_gc}, {"__tostring", th_tostring}, {NULL, NULL}};
    static const luaL_Reg funcs[] = {
        {"spawn", l_spawn},           {"spawn_n", l_spawn_n}, {"spawn_after", l_spawn_after},
        {"getcurrent", l_getcurrent}, {"kill", l_kill},       {NULL, NULL}};

    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &extras_key) == LUA_TNIL) {
        lua_newtable(L);
        lua_newtable(L);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &extras_key);
    }
    lua_pop(L, 1);

    luaL_newmetatable(L, GL_THREAD_MT);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);

    lua_rawgetp(L, LUA_REGISTRYINDEX, &sentinels_key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        make_sentinel(L, "GreenletExit");
        make_sentinel(L, "Interrupt");
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &sentinels_key);
    }
    lua_getfield(L, -1, "GreenletExit");
    lua_setfield(L, -3, "GreenletExit");
    lua_getfield(L, -1, "Interrupt");
    lua_setfield(L, -3, "Interrupt");
    lua_pop(L, 1);
    luaL_setfuncs(L, funcs, 0);
    gl_open_waitq(L);
    return 0;
}
