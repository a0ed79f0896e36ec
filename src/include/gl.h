/* gl: Eventlet for Lua. The one public header: embed gl in a C program, or write C
 * functions that wait without blocking the hub. */
#ifndef GL_H
#define GL_H

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(GL_BUILDING)
#define GL_API __attribute__((visibility("default")))
#else
#define GL_API
#endif

#define GL_VERSION_MAJOR 0
#define GL_VERSION_MINOR 1
#define GL_VERSION_PATCH 0
#define GL_VERSION "0.1.0"

/* what gl_wait_fd waits for (same values as libevent's EV_READ and EV_WRITE) */
#define GL_WAIT_READ 0x02
#define GL_WAIT_WRITE 0x04

struct event_base;
typedef struct gl_State gl_State;

/* Opens a Lua state with the standard libraries and gl loaded (also as the global `gl`).
 * base NULL: gl makes and owns its own event_base; otherwise the host keeps owning it. */
GL_API gl_State *gl_open(struct event_base *base);
/* The Lua state of G (owned by G). */
GL_API lua_State *gl_lua(gl_State *G);
/* Runs a file / string as a new green thread up to its end or its first wait.
 * 0 on success; otherwise non-zero with the message on the Lua stack. */
GL_API int gl_dofile(gl_State *G, const char *path);
GL_API int gl_dostring(gl_State *G, const char *code);
/* Drives the hub until no green thread, timer or watched fd is left. 0 when idle. */
GL_API int gl_run(gl_State *G);
/* One pass of the hub for a host's own loop; nonblock: do not wait for events.
 * Returns 1 while gl still has work (threads, timers or fds), 0 when idle. */
GL_API int gl_step(gl_State *G, int nonblock);
/* Closes the Lua state and, if gl made it, the event_base. */
GL_API void gl_close(gl_State *G);

/* For C functions running in a green thread: wait until fd is ready for `what`
 * (GL_WAIT_READ|GL_WAIT_WRITE) or `timeout` seconds pass (timeout < 0: no limit),
 * without blocking the hub. Never returns: yields, and later calls k(L, LUA_YIELD, ctx)
 * with one wake value on top of the stack, which k passes to gl_wake_ready. */
GL_API int gl_wait_fd(lua_State *L, int fd, int what, double timeout, lua_KFunction k,
                      lua_KContext ctx);
/* The same for a plain delay of `sec` seconds. */
GL_API int gl_wait_timer(lua_State *L, double sec, lua_KFunction k, lua_KContext ctx);
/* In a continuation: pops the wake value; 1 when ready, 0 on timeout; raises the error
 * of a kill or an expired gl.Timeout. */
GL_API int gl_wake_ready(lua_State *L);

#ifdef __cplusplus
}
#endif
#endif
