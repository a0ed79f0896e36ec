/* The hub: one libevent event_base per Lua state, the run queue, and what an
 * uncaught green-thread error prints. Green threads themselves live in sched.h. */
#ifndef GL_HUB_H
#define GL_HUB_H

#include <lua.h>
#include <event2/event.h>

typedef struct gl_hub gl_hub;
typedef struct gl_thread gl_thread;
typedef struct gl_waitq gl_waitq;

/* Work put off until the end of the hub's current pass over the run queue, when every
 * thread made ready has run: coalescing what they did (one flush for many writes, say).
 * Embedded in its owner, which unlinks it (gl_hub_undefer) before it goes away. */
typedef struct gl_deferred gl_deferred;
struct gl_deferred {
    gl_deferred *next, **pprev; /* pprev is NULL while not deferred */
    void (*fn)(gl_deferred *d);
};

struct gl_hub {
    lua_State *L; /* the main state: runs callbacks, owns the registry */
    struct event_base *base;
    int own_base;
    struct event *runq_ev; /* made active while the run queue is not empty */
    int in_runq;           /* runq_ev's callback is draining the queue */
    gl_thread **runq;      /* ring of READY threads */
    size_t rq_head, rq_len, rq_cap;
    int anchors_ref; /* registry table: slot -> thread userdata, for live threads */
    int *free_slots; /* recycled anchor slots */
    int n_free, cap_free, max_slot;
    lua_Integer next_id;
    gl_thread *current;         /* the running green thread, or NULL in the hub */
    gl_thread *main;            /* the interpreter's main green thread, or NULL */
    int n_internal;             /* events the interpreter itself keeps added (SIGINT, REPL) */
    int n_waits;                /* waits that end by themselves: parked threads on an fd, a
                                   timer or a lookup, armed Timeouts, spawn_after delays */
    void *socks;                /* sockets whose persistent events are added (socket.c) */
    void (*quiesce)(gl_hub *h); /* drops those events once gl is idle (socket.c) */
    struct gl_cork *corked;     /* TCP sockets corked until this pass ends (gl_hub_cork) */
    int ncorked, cap_corked;
    gl_deferred uncork;    /* uncorks them */
    int exit_code;         /* set when the main thread fails: 1, or 130 for gl.Interrupt */
    int stop;              /* the hub loop should return */
    gl_deferred *deferred; /* to run once the current run-queue pass is over */
    /* 4 KB read buffers that sockets gave up when they went idle, for the next one to read
     * (socket.c): keep-alive connections take one per request, and malloc/free of that size
     * is off glibc's fast path */
    void *spare_rbufs[8];
    int n_spare_rbufs;
    int n_stale; /* threads whose deadline timer is still pending after its wait ended */
};

/* CLOCK_MONOTONIC in seconds. */
double gl_hub_now(void);

/* Returns the hub of L's Lua state, or raises when gl is not loaded. */
gl_hub *gl_hub_get(lua_State *L);
/* True when the hub of main state L exists. */
int gl_hub_exists(lua_State *L);
/* Creates the hub for the main state L on base (NULL: make one). */
gl_hub *gl_hub_new(lua_State *L, struct event_base *base);
void gl_hub_free(gl_hub *h);
/* Appends t to the run queue; the hub resumes it on its next pass. */
void gl_hub_enqueue(gl_hub *h, gl_thread *t);
/* Runs d->fn once after the current pass over the run queue (after the next one when
 * none is running); a no-op while d is already deferred. */
void gl_hub_defer(gl_hub *h, gl_deferred *d);
/* Takes d off the list when it is on it. */
void gl_hub_undefer(gl_deferred *d);
/* Holds the small writes of TCP socket fd (TCP_CORK) until the current pass over the run
 * queue ends, so that what the threads of one pass send on it leaves in full segments and
 * one wake-up of the peer; *flag is 1 meanwhile (the owner's "already corked"). Returns 0,
 * doing nothing, when fd is not a TCP socket. */
int gl_hub_cork(gl_hub *h, int fd, unsigned char *flag);
/* Uncorks fd now (sending what it holds) and forgets it: before its owner closes it. */
void gl_hub_uncork(gl_hub *h, int fd);
/* Events added or active in the base, not counting the run queue's own. */
int gl_hub_nevents(gl_hub *h);
/* True when nothing is queued and no wait can end by itself: gl has nothing to do. */
int gl_hub_idle(gl_hub *h);
/* Drives the loop until idle (raising deadlock errors into forgotten waiters) or stopped.
 * Returns h->exit_code. */
int gl_hub_run(gl_hub *h);
/* One pass of the loop; returns 1 while work is left. */
int gl_hub_step(gl_hub *h, int nonblock);
/* Prints an uncaught error of green thread t (error object on top of t's stack). */
void gl_hub_report(gl_hub *h, gl_thread *t);
/* Backend choice before the hub starts: "epoll", "poll", "select" or NULL. */
void gl_hub_use(const char *name);

#endif
