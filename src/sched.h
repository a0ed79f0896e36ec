/* Green threads: Lua coroutines with a scheduler state, parked on waits and woken by
 * the hub. Owns spawn/park/wake/kill, wait queues and the hub-aware coroutine library. */
#ifndef GL_SCHED_H
#define GL_SCHED_H

#include "hub.h"

#include <stdint.h>
#include <sys/time.h>

enum { GL_T_READY, GL_T_RUNNING, GL_T_PARKED, GL_T_DEAD };
enum { GL_WAKE_OK, GL_WAKE_TIMEOUT, GL_WAKE_RAISE, GL_WAKE_DEADLOCK };

/* an intrusive FIFO of parked threads */
struct gl_waitq {
    gl_thread *head, *tail;
    int n;
};

struct gl_thread {
    lua_State *co;
    gl_hub *hub;
    struct event *ev; /* the thread's own timer / fd wait, made on first use */
    gl_waitq *wq;     /* the queue it is parked on, if any */
    gl_thread *wq_next, *wq_prev;
    void (*unwait)(gl_thread *t); /* cancels a wait armed elsewhere (a socket's event) */
    void *wait_data;              /* for unwait; a waitq park keeps the call's name here */
    lua_Integer id;
    double deadline; /* the end of its deadline wait, or of the last one (gl_hub_now) */
    int slot;        /* anchor slot while alive */
    /* bit fields: a parked thread's memory is what 100,000 idle waiters cost. Rarely used
     * state (links, joiners, a deferred kill or Timeout) lives in sched.c's extras table. */
    unsigned state : 2, wake_kind : 2, nwake : 1, started : 1, hub_yield : 1, failed : 1;
    unsigned queued : 1, ev_armed : 1, is_main : 1, no_report : 1, finished : 1, counted : 1;
    unsigned pending_err : 1; /* a kill deferred to the next blocking point ("kill") */
    unsigned pending_to : 1;  /* a Timeout fired while READY ("timeout") */
    unsigned timer_ok : 1;    /* the armed event is a plain delay: expiry is success */
    unsigned yielded : 1;     /* queued by sleep(0): runs after the hub has polled */
    unsigned has_trace : 1;   /* the registry holds the traceback of its error, by t */
    unsigned ev_deadline : 1; /* the armed timer is a deadline (gl_sched_arm_deadline) */
    unsigned ev_stale : 1;    /* that timer is still pending, though its wait has ended */
};

#define GL_THREAD_MT "gl.GreenThread"

/* sec >= 0 as a timeval; math.huge and anything past 31 years is 31 years (a wait that
 * never ends in practice: converting infinity to time_t would be undefined) */
static inline struct timeval gl_timeval(double sec)
{
    if (!(sec < 1e9))
        sec = 1e9;
    struct timeval tv;
    tv.tv_sec = (time_t)sec;
    tv.tv_usec = (suseconds_t)((sec - (double)tv.tv_sec) * 1e6);
    return tv;
}

/* The green thread L runs in (L may be a user coroutine inside it), or NULL. Each
 * coroutine's extra space holds its green thread; bit 0 marks a user coroutine that is
 * suspended in a hub wait (so nobody else may resume it). */
static inline gl_thread *gl_current(lua_State *L)
{
    return (gl_thread *)(*(uintptr_t *)lua_getextraspace(L) & ~(uintptr_t)1);
}
static inline void gl_set_owner(lua_State *co, gl_thread *t, int in_hub_wait)
{
    *(uintptr_t *)lua_getextraspace(co) = (uintptr_t)t | (uintptr_t)(in_hub_wait != 0);
}
static inline int gl_in_hub_wait(lua_State *co)
{
    return (int)(*(uintptr_t *)lua_getextraspace(co) & 1);
}
/* Raises a clear error unless L can block here; `what` names the call. Returns t. */
gl_thread *gl_check_blocking(lua_State *L, const char *what);
/* [-0, +1] Pushes the GreenThread userdata of live (or just-ended) t. */
void gl_push_thread(lua_State *L, gl_thread *t);
/* [-(n+1), +1] Spawns the function below the n arguments on top of L; pushes the handle. */
gl_thread *gl_spawn(lua_State *L, int n);
/* Resumes t with its wake value (the hub and callbacks call this). */
void gl_sched_resume(gl_thread *t);
/* Wakes a PARKED t: cancels its wait and queues it; kind says how it resumes. The value on
 * top of L (if push) is delivered to it. */
void gl_sched_wake(lua_State *L, gl_thread *t, int kind, int push);
/* Drops t's share of hub->n_waits (taken when it parked on a wait that ends by itself). */
void gl_sched_uncount(gl_thread *t);
/* Wakes a PARKED t whose wait was armed elsewhere (t->unwait already cleared) and
 * resumes it at once, from a libevent callback. */
void gl_sched_wake_now(gl_thread *t, int kind);
/* Parks the current thread: marks it, sets the hub-yield flag and yields to k. */
int gl_sched_park(lua_State *L, gl_thread *t, lua_KFunction k, lua_KContext ctx);
/* Arms t's own event for fd/what (fd < 0: a timer) with timeout sec (< 0: none). */
int gl_sched_arm(gl_thread *t, int fd, short what, double sec);
/* Arms t's timer to end the coming wait after sec >= 0, as a deadline: a timer left pending
 * by an earlier wait is reused when it fires no later (see sched.c). */
int gl_sched_arm_deadline(gl_thread *t, double sec);
/* Deletes the deadline timers that no wait holds any more (the hub is going idle). */
void gl_sched_drop_stale(gl_hub *h);
/* Raises a deferred kill or a pending Timeout of the running thread t (one that came
 * while it was READY with a value handed to it), if any. */
void gl_sched_check_pending(lua_State *L, gl_thread *t);
/* Links t to the tail of q / removes it. */
void gl_waitq_push(gl_waitq *q, gl_thread *t);
void gl_waitq_remove(gl_thread *t);
gl_thread *gl_waitq_pop(gl_waitq *q);
/* [-0, +1] Pushes one of gl's error sentinels ("GreenletExit", "Interrupt"). */
void gl_push_sentinel(lua_State *L, const char *name);
/* Pops the wake value and raises for a kill, a Timeout or a deadlock; returns the kind. */
int gl_sched_wake_check(lua_State *L, gl_thread *t);
/* Makes the running t READY again (sleep(0)) and yields to k; t runs after the hub has
 * polled fds and timers. */
int gl_sched_yield_ready(lua_State *L, gl_thread *t, lua_KFunction k, lua_KContext ctx);
/* The same, but t runs again in this pass, behind the threads made ready before it: a
 * channel's putter lets the getter it just woke go first. */
int gl_sched_yield_behind(lua_State *L, gl_thread *t, lua_KFunction k, lua_KContext ctx);
/* [-0, +1] Pushes the traceback kept for t's error (forgetting it), or nil. */
void gl_sched_push_trace(lua_State *L, gl_thread *t);
/* timer.c: [-0, +1] pushes the error of a fired Timeout and releases its anchor. */
void gl_timeout_push_error(lua_State *L, void *timeout);
/* [-1, +0] Records the Timeout on top of L as fired while t was READY: raised at t's next
 * blocking point. */
void gl_sched_set_pending_timeout(lua_State *L, gl_thread *t);
/* Takes t's pending Timeout (only if it is `only`, unless only is NULL); NULL if none. */
void *gl_sched_take_pending_timeout(lua_State *L, gl_thread *t, void *only);
/* timer.c: [-0, +1] pushes a Timeout object that has already expired (for trampoline). */
void gl_push_expired_timeout(lua_State *L, double sec);
/* Finishes a dead thread's bookkeeping: wakes joiners, runs links, unanchors. */
void gl_sched_finish(lua_State *L, gl_thread *t);
/* Raises err (on top of L, popped) in t at its blocking point; the caller does not yield.
 * A READY t that has a value handed to it (a queue item) keeps it: err is raised at its
 * next blocking point instead. */
void gl_sched_throw(lua_State *L, gl_thread *t);

/* waitq.c: [-0, +1] pushes a new wait queue (gl.waitq userdata) and returns 1. */
int gl_waitq_new(lua_State *L);
/* waitq.c: adds core.waitq and core.event_wait to the table on top. */
int gl_open_waitq(lua_State *L);

/* queue.c: adds core.queue and the queue methods to the table on top. */
int gl_open_queue(lua_State *L);

int gl_open_sched(lua_State *L);
int gl_open_timer(lua_State *L);
int gl_open_coroutine(lua_State *L);

#endif
