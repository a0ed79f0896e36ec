/* gl.Queue and its kin in C: a hand-off between two green threads is the hot path of
 * every producer/consumer program, and a Lua implementation spent most of its time in
 * method calls around two wait queues. The Lua object is a table {core, maxsize = n}
 * (so `.maxsize` reads as a field and classes can be copied); these functions take it
 * as self. A put to a waiting getter hands the item over directly; a full queue parks
 * putters, who re-check on wake-up. maxsize 0 makes a channel: a put returns once a
 * getter has the item (a parked putter holds it as its offer, which the getter takes). */
#include "sched.h"

#include <lauxlib.h>

#define QUEUE_MAGIC 0x676c7175u /* "glqu" */

enum { Q_FIFO, Q_LIFO, Q_HEAP };

/* user values of the core userdata */
#define UV_ITEMS 1  /* the items: fifo items[head .. head+n-1], lifo and heap items[1 .. n] */
#define UV_CMP 2    /* a PriorityQueue's cmp, or nil for `a < b` */
#define UV_OFFERS 3 /* parked putter -> its item, made on first use */

typedef struct {
    unsigned magic;
    int kind;
    lua_Integer maxsize; /* < 0: unbounded */
    lua_Integer head, n;
    lua_Integer reserved;   /* room promised to putters woken but not yet run */
    lua_Integer unfinished; /* items put and not yet task_done */
    gl_waitq getters, putters, joiners;
} gl_queue;

static char full_key, empty_key;
/* what a channel's getter hands the putter whose item it took, telling it apart from a
 * putter woken because room was made (which gets true) */
static char taken_key;

static int raise_sentinel(lua_State *L, void *key)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    return lua_error(L);
}

/* Returns the queue of self (index 1) and pushes its core userdata at index `at`, after
 * cutting the arguments to at - 1. */
static gl_queue *check_queue(lua_State *L, int at)
{
    lua_settop(L, at - 1);
    gl_queue *q = NULL;
    if (lua_type(L, 1) == LUA_TTABLE && lua_rawgeti(L, 1, 1) == LUA_TUSERDATA &&
        lua_rawlen(L, -1) == sizeof *q)
        q = lua_touserdata(L, -1);
    if (!q || q->magic != QUEUE_MAGIC)
        luaL_typeerror(L, 1, "gl.Queue");
    return q;
}

static int is_channel(const gl_queue *q)
{
    return q->maxsize == 0;
}

static int has_room(const gl_queue *q)
{
    return q->maxsize < 0 || q->n + q->reserved < q->maxsize;
}

/* ---- storage: items at UV_ITEMS of the core at index c ---- */

/* true when the item at i comes out before the one at j (heap indices) */
static int before(lua_State *L, int items, int c, lua_Integer i, lua_Integer j)
{
    if (lua_getiuservalue(L, c, UV_CMP) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_rawgeti(L, items, i);
        lua_rawgeti(L, items, j);
        int r = lua_compare(L, -2, -1, LUA_OPLT);
        lua_pop(L, 2);
        return r;
    }
    lua_rawgeti(L, items, i);
    lua_rawgeti(L, items, j);
    lua_call(L, 2, 1);
    int r = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return r;
}

static void swap(lua_State *L, int items, lua_Integer i, lua_Integer j)
{
    lua_rawgeti(L, items, i);
    lua_rawgeti(L, items, j);
    lua_rawseti(L, items, i);
    lua_rawseti(L, items, j);
}

/* [-0, +0] stores the value at idx */
static void store_push(lua_State *L, gl_queue *q, int c, int idx)
{
    lua_getiuservalue(L, c, UV_ITEMS);
    int items = lua_gettop(L);
    lua_pushvalue(L, idx);
    if (q->kind == Q_FIFO) {
        lua_rawseti(L, items, q->head + q->n);
        q->n++;
    } else {
        lua_rawseti(L, items, ++q->n);
        for (lua_Integer k = q->n; q->kind == Q_HEAP && k > 1 && before(L, items, c, k, k / 2);
             k /= 2)
            swap(L, items, k, k / 2);
    }
    lua_pop(L, 1);
}

/* [-0, +1] takes the next item out */
static void store_pop(lua_State *L, gl_queue *q, int c)
{
    lua_getiuservalue(L, c, UV_ITEMS);
    int items = lua_gettop(L);
    if (q->kind == Q_FIFO) {
        lua_rawgeti(L, items, q->head);
        lua_pushnil(L);
        lua_rawseti(L, items, q->head);
        q->head++;
        if (--q->n == 0)
            q->head = 1;
    } else if (q->kind == Q_LIFO) {
        lua_rawgeti(L, items, q->n);
        lua_pushnil(L);
        lua_rawseti(L, items, q->n--);
    } else {
        lua_rawgeti(L, items, 1);
        lua_rawgeti(L, items, q->n);
        lua_rawseti(L, items, 1);
        lua_pushnil(L);
        lua_rawseti(L, items, q->n--);
        lua_Integer i = 1;
        for (;;) {
            lua_Integer l = 2 * i, r = l + 1, best = i;
            if (l <= q->n && before(L, items, c, l, best))
                best = l;
            if (r <= q->n && before(L, items, c, r, best))
                best = r;
            if (best == i)
                break;
            swap(L, items, i, best);
            i = best;
        }
    }
    lua_remove(L, items);
}

/* ---- offers: a parked putter's item, for a channel's getter to take ---- */

static void set_offer(lua_State *L, int c, gl_thread *t, int idx)
{
    if (lua_getiuservalue(L, c, UV_OFFERS) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, c, UV_OFFERS);
    }
    lua_pushvalue(L, idx);
    lua_rawsetp(L, -2, t);
    lua_pop(L, 1);
}

/* [-0, +1] pushes t's offer (nil if none) and forgets it */
static void take_offer(lua_State *L, int c, gl_thread *t)
{
    if (lua_getiuservalue(L, c, UV_OFFERS) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return;
    }
    lua_rawgetp(L, -1, t);
    lua_pushnil(L);
    lua_rawsetp(L, -3, t);
    lua_remove(L, -2);
}

/* ---- waking ---- */

/* wakes the first waiter of wq with the value on top (popped) */
static void wake_first(lua_State *L, gl_waitq *wq)
{
    gl_sched_wake(L, gl_waitq_pop(wq), GL_WAKE_OK, 1);
}

/* wakes putters while there is room for them, promising each its place */
static void admit_putters(lua_State *L, gl_queue *q)
{
    while (q->putters.n > 0 && has_room(q)) {
        q->reserved++;
        lua_pushboolean(L, 1);
        wake_first(L, &q->putters);
    }
}

/* Parks the running thread on wq (raising outside a green thread or with a kill
 * pending); sec < 0 waits for ever. The offer at index offer (0: none) is kept for a
 * channel's getter. */
static int park(lua_State *L, gl_waitq *wq, const char *name, double sec, int c, int offer,
                lua_KFunction k)
{
    gl_thread *t = gl_check_blocking(L, name);
    gl_sched_check_pending(L, t);
    if (offer)
        set_offer(L, c, t, offer);
    gl_waitq_push(wq, t);
    t->wait_data = (void *)name;
    if (sec >= 0 && gl_sched_arm(t, -1, 0, sec) != 0) {
        gl_waitq_remove(t);
        if (offer) {
            take_offer(L, c, t);
            lua_pop(L, 1);
        }
        return luaL_error(L, "%s: cannot arm the timer", name);
    }
    return gl_sched_park(L, t, k, 0);
}

/* after a park: pops the wake value for a timeout (returning 0) or raises for a kill,
 * and leaves the handed value on top (returning 1) */
static int woken(lua_State *L)
{
    gl_thread *t = gl_current(L);
    switch (t->wake_kind) {
    case GL_WAKE_OK:
        return 1;
    case GL_WAKE_TIMEOUT:
        lua_pop(L, 1);
        return 0;
    default:
        gl_sched_wake_check(L, t); /* raises */
        return 0;
    }
}

static int nonblocking(lua_State *L, int idx)
{
    return lua_isboolean(L, idx) && !lua_toboolean(L, idx);
}

/* ---- put ---- */

#define PUT_CORE 5 /* stack: self, v, block, timeout, core */

static int after_yield_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    gl_sched_wake_check(L, gl_current(L));
    return 0;
}

static int put_k(lua_State *L, int status, lua_KContext ctx);

static int put_step(lua_State *L, gl_queue *q, int reserved)
{
    if (q->getters.n > 0) {
        q->unfinished++;
        lua_pushvalue(L, 2);
        wake_first(L, &q->getters);
        if (reserved) { /* the room kept for us stays free: it goes to the next putter */
            q->reserved--;
            admit_putters(L, q);
        }
        /* a channel's put returns once the getter has run with the item */
        if (is_channel(q) && !nonblocking(L, 3)) {
            gl_thread *t = gl_check_blocking(L, "Queue:put");
            gl_sched_check_pending(L, t);
            return gl_sched_yield_behind(L, t, after_yield_k, 0);
        }
        return 0;
    }
    if (reserved)
        q->reserved--;
    if (has_room(q)) {
        q->unfinished++;
        store_push(L, q, PUT_CORE, 2);
        return 0;
    }
    if (nonblocking(L, 3))
        return raise_sentinel(L, &full_key);
    return park(L, &q->putters, "Queue:put", luaL_optnumber(L, 4, -1), PUT_CORE, 2, put_k);
}

static int put_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    gl_queue *q = lua_touserdata(L, PUT_CORE);
    gl_thread *t = gl_current(L);
    take_offer(L, PUT_CORE, t); /* taken or not, the offer is this call's no longer */
    lua_pop(L, 1);
    if (!woken(L))
        return raise_sentinel(L, &full_key);
    int taken = lua_touserdata(L, -1) == &taken_key;
    lua_settop(L, PUT_CORE);
    if (taken)
        return 0;
    return put_step(L, q, !is_channel(q));
}

/* q:put(v [, block [, timeout]]) */
static int q_put(lua_State *L)
{
    return put_step(L, check_queue(L, PUT_CORE), 0);
}

static int q_put_nowait(lua_State *L)
{
    lua_settop(L, 2);
    gl_queue *q = check_queue(L, PUT_CORE);
    lua_pushboolean(L, 0); /* stack: self, v, false, nil, core */
    lua_replace(L, 3);
    return put_step(L, q, 0);
}

/* ---- get ---- */

static int get_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    if (!woken(L))
        return raise_sentinel(L, &empty_key);
    return 1;
}

static int get_step(lua_State *L, gl_queue *q, int c, int block, double sec)
{
    if (q->n > 0) {
        store_pop(L, q, c);
        admit_putters(L, q);
        return 1;
    }
    if (is_channel(q) && q->putters.n > 0) { /* take the first putter's item; it returns */
        gl_thread *t = gl_waitq_pop(&q->putters);
        lua_pushlightuserdata(L, &taken_key);
        gl_sched_wake(L, t, GL_WAKE_OK, 1);
        take_offer(L, c, t);
        q->unfinished++;
        return 1;
    }
    if (!block)
        return raise_sentinel(L, &empty_key);
    return park(L, &q->getters, "Queue:get", sec, c, 0, get_k);
}

/* q:get([block [, timeout]]) */
static int q_get(lua_State *L)
{
    gl_queue *q = check_queue(L, 4); /* self, block, timeout, core */
    return get_step(L, q, 4, !nonblocking(L, 2), luaL_optnumber(L, 3, -1));
}

static int q_get_nowait(lua_State *L)
{
    return get_step(L, check_queue(L, 2), 2, 0, -1);
}

/* ---- the rest ---- */

static int q_qsize(lua_State *L)
{
    lua_pushinteger(L, check_queue(L, 2)->n);
    return 1;
}

static int q_empty(lua_State *L)
{
    gl_queue *q = check_queue(L, 2);
    lua_pushboolean(L, is_channel(q) ? q->putters.n == 0 : q->n == 0);
    return 1;
}

static int q_full(lua_State *L)
{
    gl_queue *q = check_queue(L, 2);
    lua_pushboolean(L, is_channel(q) ? q->getters.n == 0 : q->maxsize > 0 && q->n >= q->maxsize);
    return 1;
}

static int q_getting(lua_State *L)
{
    lua_pushinteger(L, check_queue(L, 2)->getters.n);
    return 1;
}

static int q_putting(lua_State *L)
{
    lua_pushinteger(L, check_queue(L, 2)->putters.n);
    return 1;
}

/* maxsize at idx: nil -> -1, a non-negative integer -> itself; anything else raises */
static lua_Integer check_maxsize(lua_State *L, int idx, const char *what)
{
    if (lua_isnil(L, idx))
        return -1;
    if (!lua_isinteger(L, idx) || lua_tointeger(L, idx) < 0)
        luaL_error(L, "%s must be nil or a non-negative integer", what);
    return lua_tointeger(L, idx);
}

/* q:resize(n): also sets the self.maxsize field */
static int q_resize(lua_State *L)
{
    gl_queue *q = check_queue(L, 3);
    q->maxsize = check_maxsize(L, 2, "Queue:resize: size");
    lua_pushvalue(L, 2);
    lua_setfield(L, 1, "maxsize");
    admit_putters(L, q);
    return 0;
}

static int q_task_done(lua_State *L)
{
    gl_queue *q = check_queue(L, 2);
    if (q->unfinished <= 0)
        return luaL_error(L, "Queue:task_done called too many times");
    if (--q->unfinished == 0)
        while (q->joiners.n > 0) {
            lua_pushnil(L);
            wake_first(L, &q->joiners);
        }
    return 0;
}

static int join_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    int ok = woken(L);
    if (ok)
        lua_pop(L, 1);
    lua_pushboolean(L, ok);
    return 1;
}

/* q:join([timeout]) -> true once every item put is done, false on timeout */
static int q_join(lua_State *L)
{
    gl_queue *q = check_queue(L, 3); /* self, timeout, core */
    if (q->unfinished == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    return park(L, &q->joiners, "Queue:join", luaL_optnumber(L, 2, -1), 3, 0, join_k);
}

/* core.queue(kind, maxsize [, cmp]) -> the core of a queue; kind "fifo", "lifo", "heap" */
static int l_queue(lua_State *L)
{
    static const char *const kinds[] = {"fifo", "lifo", "heap", NULL};
    int kind = luaL_checkoption(L, 1, NULL, kinds);
    lua_Integer maxsize = check_maxsize(L, 2, "Queue: maxsize");
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TFUNCTION);
    gl_queue *q = lua_newuserdatauv(L, sizeof *q, 3);
    *q = (gl_queue){.magic = QUEUE_MAGIC, .kind = kind, .maxsize = maxsize, .head = 1};
    lua_newtable(L);
    lua_setiuservalue(L, -2, UV_ITEMS);
    lua_pushvalue(L, 3);
    lua_setiuservalue(L, -2, UV_CMP);
    return 1;
}

static int sentinel_tostring(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    return 1;
}

static void make_sentinel(lua_State *L, void *key, const char *name)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_createtable(L, 0, 2);
        lua_pushstring(L, name);
        lua_pushcclosure(L, sentinel_tostring, 1);
        lua_setfield(L, -2, "__tostring");
        lua_pushstring(L, name);
        lua_setfield(L, -2, "__name");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, key);
    }
}

/* adds core.queue, core.queue_methods, core.queue_Full and core.queue_Empty to the table
 * on top */
int gl_open_queue(lua_State *L)
{
    static const luaL_Reg methods[] = {{"put", q_put},
                                       {"get", q_get},
                                       {"put_nowait", q_put_nowait},
                                       {"get_nowait", q_get_nowait},
                                       {"qsize", q_qsize},
                                       {"empty", q_empty},
                                       {"full", q_full},
                                       {"getting", q_getting},
                                       {"putting", q_putting},
                                       {"resize", q_resize},
                                       {"task_done", q_task_done},
                                       {"join", q_join},
                                       {NULL, NULL}};
    lua_pushcfunction(L, l_queue);
    lua_setfield(L, -2, "queue");
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "queue_methods");
    make_sentinel(L, &full_key, "gl.queue.Full");
    lua_setfield(L, -2, "queue_Full");
    make_sentinel(L, &empty_key, "gl.queue.Empty");
    lua_setfield(L, -2, "queue_Empty");
    return 0;
}
