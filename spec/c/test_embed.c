/* The embedding API (gl.h): gl_open, gl_dostring/gl_dofile, gl_run, gl_step, gl_close,
 * gl_wait_timer from a C function, and a host-owned event_base. */
#include <gl.h>

#include <event2/event.h>
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static lua_Integer global_int(gl_State *G, const char *name)
{
    lua_State *L = gl_lua(G);
    lua_getglobal(L, name);
    lua_Integer v = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

static const char *global_str(gl_State *G, const char *name, char *buf, size_t n)
{
    lua_State *L = gl_lua(G);
    lua_getglobal(L, name);
    const char *s = lua_tostring(L, -1);
    snprintf(buf, n, "%s", s ? s : "(nil)");
    lua_pop(L, 1);
    return buf;
}

/* c_sleep(sec) -> "ok" | "timeout"; counts its continuations */
static int c_sleep_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)ctx;
    if (status != LUA_YIELD)
        return luaL_error(L, "c_sleep: continuation called with status %d", status);
    int top = lua_gettop(L);
    int ready = gl_wake_ready(L);
    if (lua_gettop(L) != top - 1) /* the wake value is popped */
        return luaL_error(L, "c_sleep: the wake value was not popped");
    lua_pushstring(L, ready ? "ok" : "timeout");
    return 1;
}

static int c_sleep(lua_State *L)
{
    double sec = luaL_checknumber(L, 1);
    lua_settop(L, 0);
    return gl_wait_timer(L, sec, c_sleep_k, 0);
}

static void test_open_close(void)
{
    gl_State *G = gl_open(NULL);
    CHECK(G != NULL);
    lua_State *L = gl_lua(G);
    CHECK(L != NULL);
    lua_getglobal(L, "gl");
    CHECK(lua_istable(L, -1));
    lua_pop(L, 1);
    CHECK(gl_run(G) == 0); /* nothing to do: returns at once */
    CHECK(gl_step(G, 1) == 0);
    gl_close(G);
    gl_close(NULL); /* harmless */
}

static void test_dostring_errors(void)
{
    gl_State *G = gl_open(NULL);
    lua_State *L = gl_lua(G);
    int top = lua_gettop(L);

    CHECK(gl_dostring(G, "x = 1 +") != 0); /* syntax error */
    CHECK(lua_gettop(L) == top + 1);
    CHECK(lua_isstring(L, -1) && strstr(lua_tostring(L, -1), "unexpected") != NULL);
    lua_settop(L, top);

    CHECK(gl_dostring(G, "error('boom')") != 0); /* runtime error before any wait */
    CHECK(lua_gettop(L) == top + 1);
    CHECK(lua_isstring(L, -1) && strstr(lua_tostring(L, -1), "boom") != NULL);
    lua_settop(L, top);

    CHECK(gl_dostring(G, "error(setmetatable({}, {__tostring = function() return 'tbl' end}))") !=
          0);
    CHECK(lua_gettop(L) == top + 1);
    CHECK(lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "tbl") == 0);
    lua_settop(L, top);

    CHECK(gl_dofile(G, "/nonexistent/gl-test.lua") != 0);
    CHECK(lua_gettop(L) == top + 1);
    CHECK(lua_isstring(L, -1) && strstr(lua_tostring(L, -1), "nonexistent") != NULL);
    lua_settop(L, top);

    CHECK(gl_dostring(G, "ok = 42") == 0);
    CHECK(lua_gettop(L) == top);
    CHECK(global_int(G, "ok") == 42);
    CHECK(gl_run(G) == 0);
    gl_close(G);
}

static void test_run(void)
{
    gl_State *G = gl_open(NULL);
    /* returns at the chunk's first wait; gl_run drives the rest */
    CHECK(gl_dostring(
              G, "n = 0\n"
                 "for i = 1, 5 do gl.spawn(function() gl.sleep(0.001 * i); n = n + 1 end) end\n"
                 "stage = 'before'\n"
                 "gl.sleep(0.01)\n"
                 "stage = 'after'\n") == 0);
    char buf[64];
    CHECK(strcmp(global_str(G, "stage", buf, sizeof buf), "before") == 0);
    CHECK(global_int(G, "n") == 0);
    CHECK(gl_run(G) == 0);
    CHECK(strcmp(global_str(G, "stage", buf, sizeof buf), "after") == 0);
    CHECK(global_int(G, "n") == 5);
    /* a later error in the chunk's thread is reported, not returned */
    CHECK(gl_dostring(G, "gl.sleep(0); error('late error (expected in this test)')") == 0);
    CHECK(gl_run(G) == 0);
    gl_close(G);
}

static void test_step(void)
{
    gl_State *G = gl_open(NULL);
    CHECK(
        gl_dostring(
            G,
            "ticks = 0\n"
            "gl.spawn(function() for i = 1, 3 do gl.sleep(0.005); ticks = ticks + 1 end end)\n") ==
        0);
    int steps = 0;
    while (gl_step(G, 0) && steps < 1000)
        steps++;
    CHECK(steps > 0 && steps < 1000);
    CHECK(global_int(G, "ticks") == 3);
    CHECK(gl_step(G, 1) == 0);

    /* nonblocking steps never wait: a pending sleep keeps it returning 1 */
    CHECK(gl_dostring(G, "gl.spawn(function() gl.sleep(0.05); late = 1 end)") == 0);
    double t0 = now();
    int busy = 0;
    for (int i = 0; i < 10; i++)
        busy += gl_step(G, 1);
    CHECK(now() - t0 < 0.04);
    CHECK(busy == 10);
    CHECK(global_int(G, "late") == 0);
    CHECK(gl_run(G) == 0);
    CHECK(global_int(G, "late") == 1);
    gl_close(G);
}

static void test_wait_timer(void)
{
    gl_State *G = gl_open(NULL);
    lua_State *L = gl_lua(G);
    lua_register(L, "c_sleep", c_sleep);
    CHECK(gl_dostring(G, "order = ''\n"
                         "local a = gl.spawn(function() local r = c_sleep(0.02); order = order .. "
                         "'a' .. r end)\n"
                         "local b = gl.spawn(function() local r = c_sleep(0.005); order = order .. "
                         "'b' .. r end)\n"
                         "t0 = gl.clock()\n"
                         "a:wait(); b:wait()\n"
                         "elapsed = gl.clock() - t0\n"
                         /* a gl.Timeout raises through the C wait */
                         "local t = gl.Timeout(0.005)\n"
                         "local ok, e = pcall(c_sleep, 1)\n"
                         "timeout_raised = (not ok and e == t) and 1 or 0\n"
                         /* and outside any green thread it raises a clear error */
                         "") == 0);
    CHECK(gl_run(G) == 0);
    char buf[64];
    CHECK(strcmp(global_str(G, "order", buf, sizeof buf), "bokaok") == 0);
    lua_getglobal(L, "elapsed");
    double el = lua_tonumber(L, -1);
    lua_pop(L, 1);
    CHECK(el >= 0.018 && el < 0.5);
    CHECK(global_int(G, "timeout_raised") == 1);

    /* called outside any green thread (directly from C): an error, no crash */
    lua_getglobal(L, "c_sleep");
    lua_pushnumber(L, 0.01);
    CHECK(lua_pcall(L, 1, 1, 0) != LUA_OK);
    CHECK(strstr(lua_tostring(L, -1), "not in a green thread") != NULL);
    lua_pop(L, 1);
    gl_close(G);
}

static int host_fired;
static void host_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    host_fired++;
}

static void test_host_base(void)
{
    struct event_base *base = event_base_new();
    CHECK(base != NULL);
    gl_State *G = gl_open(base);
    CHECK(G != NULL);
    CHECK(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED) == 0); /* nothing of gl's */
    CHECK(gl_dostring(G, "finished = 0\n"
                         "for i = 1, 3 do gl.spawn(function() gl.sleep(0.005 * i); finished = "
                         "finished + 1 end) end\n"
                         "gl.sleep(0.001)\n"
                         "main_resumed = 1\n") == 0);
    struct event *ev = evtimer_new(base, host_cb, NULL);
    struct timeval tv = {0, 30000};
    event_add(ev, &tv);
    double t0 = now();
    CHECK(event_base_dispatch(base) == 1); /* 1: it ran out of events */
    double el = now() - t0;
    CHECK(host_fired == 1);
    CHECK(global_int(G, "finished") == 3);
    CHECK(global_int(G, "main_resumed") == 1);
    CHECK(el >= 0.025 && el < 1.0);
    CHECK(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE) == 0);
    gl_close(G);
    /* the base is still the host's and still works */
    event_add(ev, &tv);
    CHECK(event_base_dispatch(base) == 1);
    CHECK(host_fired == 2);
    event_free(ev);
    event_base_free(base);
}

/* A socket wait with a long timeout that data ended early leaves its timer for the next
 * wait to reuse; once gl goes idle that timer must not hold the host's loop for 30 s. */
static void test_host_base_socket_timeout(void)
{
    struct event_base *base = event_base_new();
    CHECK(base != NULL);
    gl_State *G = gl_open(base);
    CHECK(G != NULL);
    CHECK(gl_dostring(G, "local srv = assert(gl.listen('127.0.0.1', 0))\n"
                         "local _, port = srv:getsockname()\n"
                         "local accepted = gl.spawn(function() return srv:accept() end)\n"
                         "client = assert(gl.connect('127.0.0.1', port))\n"
                         "server_end = accepted:wait()\n"
                         "srv:close()\n"
                         "parked = gl.Event()\n"
                         "gl.spawn(function()\n"
                         "  server_end:settimeout(30)\n"
                         "  got = server_end:recv(10)\n"
                         "  parked:wait()\n" /* alive, on a wait that ends by no timer */
                         "end)\n"
                         "gl.spawn(function() gl.sleep(0.01); client:sendall('ping') end)\n") == 0);
    double t0 = now();
    CHECK(event_base_dispatch(base) == 1);
    double el = now() - t0;
    CHECK(el < 5.0);
    char buf[16];
    CHECK(strcmp(global_str(G, "got", buf, sizeof buf), "ping") == 0);
    CHECK(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE) == 0);
    gl_close(G);
    event_base_free(base);
}

int main(void)
{
    test_open_close();
    test_dostring_errors();
    test_run();
    test_step();
    test_wait_timer();
    test_host_base();
    test_host_base_socket_timeout();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_embed: all checks passed\n");
    return 0;
}
