/* A host program that owns its libevent loop and embeds gl: green threads run inside the
 * host's event_base next to the host's own events, and event_base_dispatch returns once
 * both are idle. Also shows a C function that waits with gl_wait_timer.
 * Build: cc host.c $(pkg-config --cflags --libs gl lua5.4 libevent_core) */
#include <gl.h>

#include <event2/event.h>
#include <lauxlib.h>
#include <stdio.h>

static int host_ticks;

/* the host's own periodic work: three ticks, then it stops re-arming */
static void host_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct event *ev = *(struct event **)arg;
    printf("host: tick %d\n", ++host_ticks);
    if (host_ticks < 3) {
        struct timeval tv = {0, 10000};
        event_add(ev, &tv);
    }
}

/* host_sleep(sec) -> "slept": a C function that waits without blocking the hub */
static int host_sleep_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    if (!gl_wake_ready(L)) /* pops the wake value; raises for a kill or a gl.Timeout */
        return luaL_error(L, "host_sleep: unexpected timeout");
    lua_pushliteral(L, "slept");
    return 1;
}

static int host_sleep(lua_State *L)
{
    double sec = luaL_checknumber(L, 1);
    return gl_wait_timer(L, sec, host_sleep_k, 0);
}

static const char *script =
    "done = 0\n"
    "for i = 1, 3 do\n"
    "    gl.spawn(function()\n"
    "        gl.sleep(0.01 * i)\n"
    "        print('gl: thread ' .. i .. ' ' .. host_sleep(0.005))\n"
    "        done = done + 1\n"
    "    end)\n"
    "end\n"
    "gl.sleep(0.001)\n" /* gl_dostring returns here, at the chunk's first wait */
    "print('gl: main chunk resumed')\n";

int main(void)
{
    struct event_base *base = event_base_new();
    if (!base)
        return 1;
    gl_State *G = gl_open(base);
    if (!G) {
        fprintf(stderr, "host: gl_open failed\n");
        return 1;
    }
    lua_State *L = gl_lua(G);
    lua_register(L, "host_sleep", host_sleep);
    if (gl_dostring(G, script) != 0) {
        fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
        return 1;
    }
    struct event *tick = NULL;
    tick = evtimer_new(base, host_tick_cb, &tick);
    struct timeval tv = {0, 10000};
    event_add(tick, &tv);

    event_base_dispatch(base); /* returns when neither the host nor gl has work left */

    lua_getglobal(L, "done");
    int done = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    printf("host: dispatch returned; %d green threads done, %d host ticks\n", done, host_ticks);
    gl_close(G);
    event_free(tick);
    event_base_free(base);
    return done == 3 && host_ticks == 3 ? 0 : 1;
}
