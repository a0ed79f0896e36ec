/* The hub: owns the event_base, the run queue and the loop that drives green threads
 * until nothing is left; decides what an uncaught green-thread error prints.
 * It knows threads only through sched.h: parking and waking live there. */
#include "hub.h"
#include "sched.h"
#include "compat.h"

#include <lauxlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <time.h>

static const char *requested_backend;
static char hub_key; /* registry: light userdata key -> hub box */

#define RUNQ_BUDGET 1024     /* resumes per pass */
#define POLL_EVERY_SEC 50e-6 /* longest run of passes between two polls of fds and timers */

void gl_hub_use(const char *name)
{
    requested_backend = name;
}

static struct event_base *make_base(void)
{
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return NULL;
    /* one thread per hub: no locks; changelist folds a del+add within one pass */
    /* a precise clock: the coarse one (jiffies) lets timers fire up to 4 ms early */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST |
                                   EVENT_BASE_FLAG_PRECISE_TIMER);
    const char *want = requested_backend ? requested_backend : getenv("GL_HUB");
    if (want && *want) {
        static const char *const all[] = {"epoll", "poll", "select", "kqueue", "devpoll"};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++)
            if (strcmp(all[i], want) != 0)
                event_config_avoid_method(cfg, all[i]);
    }
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

double gl_hub_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void run_deferred(gl_hub *h)
{
    while (h->deferred) {
        gl_deferred *d = h->deferred;
        gl_hub_undefer(d);
        d->fn(d);
    }
}

/* One pass over the threads that were READY when it began (and any they wake). */
static void runq_pass(gl_hub *h)
{
    /* A thread that yields with sleep(0) during this pass waits for the next one; threads
     * woken by others run in this pass, for fast hand-offs. */
    size_t at_start = h->rq_len;
    for (int budget = RUNQ_BUDGET; h->rq_len && budget > 0; budget--) {
        gl_thread *t = h->runq[h->rq_head];
        if (t->yielded && at_start == 0)
            break;
        if (at_start)
            at_start--;
        h->rq_head = (h->rq_head + 1) % h->rq_cap;
        h->rq_len--;
        t->queued = 0;
        t->yielded = 0;
        if (t->state == GL_T_READY)
            gl_sched_resume(t);
        else if (t->state == GL_T_DEAD)
            gl_sched_finish(h->L, t); /* killed before it started: unanchor now */
    }
    run_deferred(h);
}

static void runq_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gl_hub *h = arg;
    h->in_runq = 1;
    /* Passes follow one another without a poll for up to POLL_EVERY_SEC: a poll (a zero
     * timer, epoll_wait and a timerfd re-arm) costs more than a pass of a few threads, and
     * sleep(0) loops would spend most of their time there. After that, libevent polls fds
     * and fires due timers (a Timeout that expired during busy work must reach the thread at
     * its next sleep(0), as in Eventlet) before the next pass. */
    double until = gl_hub_now() + POLL_EVERY_SEC;
    do
        runq_pass(h);
    while (h->rq_len && !h->stop && gl_hub_now() < until);
    h->in_runq = 0;
    /* threads still queued run on the next pass, after libevent has polled: as a zero timer,
     * not an active event, which libevent would run again in this same sweep, starving every
     * fd and timer. The clock is read anew so that timers that fell due during this pass
     * sort before the zero timer. */
    if (h->rq_len) {
        static const struct timeval now = {0, 0};
        event_base_update_cache_time(h->base);
        event_add(h->runq_ev, &now);
    }
}

void gl_hub_enqueue(gl_hub *h, gl_thread *t)
{
    if (h->rq_len == h->rq_cap) {
        size_t cap = h->rq_cap ? h->rq_cap * 2 : 64;
        gl_thread **q = malloc(cap * sizeof *q);
        if (!q) {
            fprintf(stderr, "gl: out of memory growing the run queue\n");
            abort();
        }
        for (size_t i = 0; i < h->rq_len; i++)
            q[i] = h->runq[(h->rq_head + i) % h->rq_cap];
        free(h->runq);
        h->runq = q;
        h->rq_cap = cap;
        h->rq_head = 0;
    }
    h->runq[(h->rq_head + h->rq_len) % h->rq_cap] = t;
    if (h->rq_len++ == 0 && !h->in_runq)
        event_active(h->runq_ev, EV_READ, 0);
    t->queued = 1;
}

void gl_hub_defer(gl_hub *h, gl_deferred *d)
{
    if (d->pprev)
        return;
    d->next = h->deferred;
    if (d->next)
        d->next->pprev = &d->next;
    d->pprev = &h->deferred;
    h->deferred = d;
    if (!h->in_runq && h->rq_len == 0)
        event_active(h->runq_ev, EV_READ, 0);
}

void gl_hub_undefer(gl_deferred *d)
{
    if (!d->pprev)
        return;
    *d->pprev = d->next;
    if (d->next)
        d->next->pprev = d->pprev;
    d->next = NULL;
    d->pprev = NULL;
}

struct gl_cork {
    int fd;
    unsigned char *flag;
};

static int set_cork(int fd, int on)
{
    return setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

static void uncork_all(gl_deferred *d)
{
    gl_hub *h = (gl_hub *)((char *)d - offsetof(gl_hub, uncork));
    for (int i = 0; i < h->ncorked; i++) {
        *h->corked[i].flag = 0;
        set_cork(h->corked[i].fd, 0);
    }
    h->ncorked = 0;
}

int gl_hub_cork(gl_hub *h, int fd, unsigned char *flag)
{
    if (h->ncorked == h->cap_corked) {
        int cap = h->cap_corked ? h->cap_corked * 2 : 16;
        struct gl_cork *list = realloc(h->corked, (size_t)cap * sizeof *list);
        if (!list)
            return 0; /* only a missed optimisation */
        h->corked = list;
        h->cap_corked = cap;
    }
    if (set_cork(fd, 1) < 0)
        return 0; /* not TCP */
    h->corked[h->ncorked].fd = fd;
    h->corked[h->ncorked].flag = flag;
    h->ncorked++;
    *flag = 1;
    h->uncork.fn = uncork_all;
    gl_hub_defer(h, &h->uncork);
    return 1;
}

void gl_hub_uncork(gl_hub *h, int fd)
{
    for (int i = 0; i < h->ncorked; i++) {
        if (h->corked[i].fd == fd) {
            *h->corked[i].flag = 0;
            h->corked[i] = h->corked[--h->ncorked];
            set_cork(fd, 0);
            return;
        }
    }
}

static int hub_gc(lua_State *L)
{
    gl_hub **box = lua_touserdata(L, 1);
    if (*box) {
        gl_hub_free(*box);
        *box = NULL;
    }
    return 0;
}

gl_hub *gl_hub_new(lua_State *L, struct event_base *base)
{
    /* Lua leaves the main thread's extra space uninitialised, and every coroutine made
     * later copies it: NULL means "not a green thread" */
    *(void **)lua_getextraspace(L) = NULL;
    gl_hub **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    lua_newtable(L);
    lua_pushcfunction(L, hub_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    gl_hub *h = calloc(1, sizeof *h);
    if (!h)
        luaL_error(L, "gl: out of memory");
    *box = h;
    h->L = L;
    /* Lua leaves the main thread's extra space uninitialised (new threads copy it), and
     * gl keeps each coroutine's green thread there: start from "no thread" */
    gl_set_owner(L, NULL, 0);
    h->base = base;
    if (!base) {
        h->base = make_base();
        h->own_base = 1;
        if (!h->base)
            luaL_error(L, "gl: cannot create the event base");
    }
    h->runq_ev = event_new(h->base, -1, 0, runq_cb, h);
    h->next_id = 0; /* the first thread spawned (the main one) is 1 */
    lua_newtable(L);
    h->anchors_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &hub_key); /* the box: collected with the state */
    return h;
}

void gl_hub_free(gl_hub *h)
{
    run_deferred(h); /* their owners may outlive the hub as garbage: finish, unlink */
    if (h->runq_ev)
        event_free(h->runq_ev);
    if (h->own_base)
        event_base_free(h->base);
    free(h->runq);
    free(h->free_slots);
    free(h->corked);
    while (h->n_spare_rbufs)
        free(h->spare_rbufs[--h->n_spare_rbufs]);
    free(h);
}

gl_hub *gl_hub_get(lua_State *L)
{
    gl_thread *t = gl_current(L);
    if (t)
        return t->hub;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &hub_key);
    gl_hub **box = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!box || !*box)
        luaL_error(L, "gl: the hub is not open in this Lua state");
    return *box;
}

int gl_hub_exists(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &hub_key);
    gl_hub **box = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return box && *box;
}

int gl_hub_nevents(gl_hub *h)
{
    /* libevent's "added" count takes in active events too (an event both inserted and
     * active counts twice); the run queue's own event may still be active with the queue
     * already drained */
    int n = event_base_get_num_events(h->base, EVENT_BASE_COUNT_ADDED);
    if (event_pending(h->runq_ev, EV_READ | EV_TIMEOUT, NULL))
        n--;
    return n;
}

int gl_hub_idle(gl_hub *h)
{
    /* counted by gl itself, not from libevent: sockets keep persistent events added
     * while nobody waits on them (no epoll_ctl per wait), and those are no work */
    return !h->rq_len && !h->n_waits && !h->deferred;
}

/* A thread parked on nothing but a wait queue when nothing can run: the main thread
 * first, else the oldest. A thread joining another (GreenThread:wait) comes last: the
 * thread it waits for is stuck too, and its deadlock error reaches the joiner anyway. */
static gl_thread *forgotten_waiter(gl_hub *h)
{
    lua_State *L = h->L;
    gl_thread *best = NULL;
    int best_rank = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->anchors_ref);
    for (int i = 1; i <= h->max_slot; i++) {
        lua_rawgeti(L, -1, i);
        gl_thread *t = luaL_testudata(L, -1, GL_THREAD_MT);
        lua_pop(L, 1);
        if (!t || t->state != GL_T_PARKED || t->ev_armed || t->unwait)
            continue;
        int joining = t->wait_data && strcmp(t->wait_data, "GreenThread:wait") == 0;
        /* rank: 3 main, 2 other, 1 a joiner (main or not) */
        int rank = joining ? 1 : t->is_main ? 3 : 2;
        if (!best || rank > best_rank || (rank == best_rank && t->id < best->id)) {
            best = t;
            best_rank = rank;
        }
    }
    lua_pop(L, 1);
    return best;
}

int gl_hub_step(gl_hub *h, int nonblock)
{
    if (gl_hub_idle(h))
        return 0;
    event_base_loop(h->base, EVLOOP_ONCE | (nonblock ? EVLOOP_NONBLOCK : 0));
    return !gl_hub_idle(h);
}

int gl_hub_run(gl_hub *h)
{
    h->stop = 0;
    while (!h->stop) {
        if (gl_hub_idle(h)) {
            gl_thread *t = forgotten_waiter(h);
            if (!t) {
                if (h->quiesce)
                    h->quiesce(h);
                break;
            }
            lua_pushnil(h->L);
            gl_sched_wake(h->L, t, GL_WAKE_DEADLOCK, 1);
            continue;
        }
        event_base_loop(h->base, EVLOOP_ONCE);
    }
    return h->exit_code;
}

void gl_hub_report(gl_hub *h, gl_thread *t)
{
    lua_State *L = h->L;
    lua_State *co = t->co;
    int top = lua_gettop(L);
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);
    const char *msg;
    if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER ||
        luaL_getmetafield(L, -1, "__tostring") != LUA_TNIL) {
        lua_settop(L, top + 1);
        msg = luaL_tolstring(L, -1, NULL);
    } else {
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, -1));
    }
    gl_sched_push_trace(L, t); /* made where the error was raised, before unwinding */
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        luaL_traceback(L, co, msg, 0);
    }
    if (t->is_main)
        fprintf(stderr, "gl: %s\n", lua_tostring(L, -1));
    else
        fprintf(stderr, "gl: uncaught error in green thread %lld: %s\n", (long long)t->id,
                lua_tostring(L, -1));
    fflush(stderr);
    lua_settop(L, top);
}
