/* gl_wait_fd from a C function: a green thread reads a pipe through it while another
 * green thread writes the pipe later; a wait with a timeout expires; a gl.Timeout raises
 * through it; a kill reaches it; the hub never blocks meanwhile. */
#include <gl.h>

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* c_read(fd [, timeout]) -> bytes | nil, "timeout"; waits with gl_wait_fd on EAGAIN */
static int c_read_k(lua_State *L, int status, lua_KContext ctx)
{
    int fd = (int)ctx;
    if (status == LUA_YIELD && !gl_wake_ready(L)) {
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        return 2;
    }
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n >= 0) {
        lua_pushlstring(L, buf, (size_t)n);
        return 1;
    }
    if (errno == EAGAIN)
        return gl_wait_fd(L, fd, GL_WAIT_READ, luaL_optnumber(L, 2, -1), c_read_k, ctx);
    return luaL_error(L, "read: %s", strerror(errno));
}

static int c_read(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    return c_read_k(L, LUA_OK, (lua_KContext)fd);
}

/* c_write(fd, s): pipes this small never block */
static int c_write(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    lua_pushinteger(L, write((int)luaL_checkinteger(L, 1), s, len));
    return 1;
}

static const char *SCRIPT = "local rfd, wfd = ...\n"
                            "local order = {}\n"
                            "local reader = gl.spawn(function() local d = c_read(rfd); "
                            "order[#order+1] = 'read ' .. d end)\n"
                            "gl.spawn(function() order[#order+1] = 'writer ran'; gl.sleep(0.02); "
                            "c_write(wfd, 'hello') end)\n"
                            "reader:wait()\n"
                            "result1 = table.concat(order, ',')\n"
                            "local d, err = c_read(rfd, 0.02)\n"
                            "result2 = tostring(d) .. ' ' .. tostring(err)\n"
                            "local ok, e = pcall(gl.with_timeout, 0.02, c_read, rfd)\n"
                            "result3 = tostring(gl.is_timeout(e))\n"
                            "local victim = gl.spawn(c_read, rfd)\n"
                            "gl.sleep(0)\n"
                            "gl.kill(victim)\n"
                            "local ok2, e2 = pcall(victim.wait, victim)\n"
                            "result4 = tostring(e2 == gl.GreenletExit)\n";

static const char *global(lua_State *L, const char *name)
{
    lua_getglobal(L, name);
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s ? s : "(nil)";
}

int main(void)
{
    int fds[2];
    if (pipe(fds) != 0)
        return 1;
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    gl_State *G = gl_open(NULL);
    lua_State *L = gl_lua(G);
    lua_register(L, "c_read", c_read);
    lua_register(L, "c_write", c_write);
    CHECK(luaL_loadstring(L, SCRIPT) == LUA_OK);
    lua_setglobal(L, "script");
    char code[128];
    snprintf(code, sizeof code, "script(%d, %d)", fds[0], fds[1]);
    CHECK(gl_dostring(G, code) == 0);
    CHECK(gl_run(G) == 0);
    CHECK(strcmp(global(L, "result1"), "writer ran,read hello") == 0);
    CHECK(strcmp(global(L, "result2"), "nil timeout") == 0);
    CHECK(strcmp(global(L, "result3"), "true") == 0);
    CHECK(strcmp(global(L, "result4"), "true") == 0);
    fprintf(stderr, "result1=%s result2=%s result3=%s result4=%s\n", global(L, "result1"),
            global(L, "result2"), global(L, "result3"), global(L, "result4"));
    gl_close(G);
    close(fds[0]);
    close(fds[1]);
    printf("test_wait_fd: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
