/* libFuzzer target for the socket read-ahead buffer (gl_sock_fill and the read formats of
 * socket.c), run for real: gl embedded, a connected pair of kernel sockets per input, a
 * writer green thread sending the data in chunks the input chooses, and a reader using the
 * reads the input chooses ("l", "L", counts, "a", several formats in one call, recv).
 * Every result is checked against a model of the format on the original bytes, in Lua; a
 * difference raises, and the harness aborts.
 *
 * Speed (about 1,000 inputs/s before): the gl state and the Lua driver are made once per
 * process and each input only spawns the prepared function. The pair is a socketpair, not
 * a loopback TCP connection: an accept and a connect per input cost most of the time, and
 * a long run filled the ephemeral ports with TIME_WAIT. Each input still gets fresh gl
 * socket objects (so a fresh read-ahead) on fresh descriptors, and a full GC afterwards
 * frees all it made, which keeps libFuzzer's per-input leak check meaningful. */
#include "gl.h"
#include "hub.h"
#include "socket.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const char harness[] =
    "local gl = require 'gl'\n"
    "local socketpair = ...\n"
    /* the model: what fmt must return at pos of data, and the position after it */
    "local function model(data, fmt, pos)\n"
    "  if fmt == 'a' then return data:sub(pos), #data + 1 end\n"
    "  if pos > #data then return nil, pos end\n"
    "  if type(fmt) == 'number' then\n"
    "    local w = data:sub(pos, pos + fmt - 1)\n"
    "    return w, pos + #w\n"
    "  end\n"
    "  local nl = data:find('\\n', pos, true)\n"
    "  if not nl then return data:sub(pos), #data + 1 end\n"
    "  return data:sub(pos, fmt == 'l' and nl - 1 or nl), nl + 1\n"
    "end\n"
    /* a failed check: the values (got, then want) quoted; built only on failure */
    "local function bad(what, ...)\n"
    "  local t = table.pack(...)\n"
    "  for i = 1, t.n do t[i] = ('%q'):format(tostring(t[i])) end\n"
    "  error(what .. ': ' .. table.concat(t, ', ', 1, t.n), 2)\n"
    "end\n"
    "local function format(b)\n"
    "  local k = b % 4\n"
    "  if k == 0 then return 'l' elseif k == 1 then return 'L' elseif k == 3 then return 'a' end\n"
    "  return (b // 4) % 2 == 0 and (b // 8 + 1) or (b * 300 + 1)\n"
    "end\n"
    /* plan bytes: chunk sizes for the writer (from the front), reads (from the back) */
    "local function fuzz_one(data, plan)\n"
    /* inputs are short (-max_len): repeat some so that the read-ahead outgrows its first
     * 4 KiB and is compacted and grown */
    "  if #plan > 0 and plan:byte(1) % 4 == 1 then data = data:rep(40) end\n"
    "  local s, c = socketpair()\n"
    "  local writer = gl.spawn(function()\n"
    "    local pos, i = 1, 1\n"
    "    while pos <= #data do\n"
    "      local b = plan:byte(i) or 255\n"
    "      i = i + 1\n"
    "      local n = (b % 8 == 0) and 70000 or (b % 64 + 1)\n"
    "      assert(c:sendall(data:sub(pos, pos + n - 1)))\n"
    "      pos = pos + n\n"
    "      if b % 3 == 0 then gl.sleep(0) end\n"
    "    end\n"
    "    c:close()\n"
    "  end)\n"
    "  local pos = 1\n"
    "  for i = #plan, 1, -1 do\n"
    "    local b = plan:byte(i)\n"
    "    local kind = b % 8\n"
    "    if kind == 4 then\n" /* recv: up to n bytes, the read-ahead first */
    "      local n = (b // 8) % 2 == 0 and (b // 16 + 1) or (b * 300 + 1)\n"
    "      local got, err = s:recv(n)\n"
    "      if pos > #data then\n"
    "        if got ~= nil or err ~= 'closed' then bad('recv after EOF', got, err) end\n"
    "      else\n"
    "        if type(got) ~= 'string' or #got < 1 or #got > n or #got > 65536\n"
    "           or got ~= data:sub(pos, pos + #got - 1) then\n"
    "          bad(('recv(%d) at %d'):format(n, pos), got, err)\n"
    "        end\n"
    "        pos = pos + #got\n"
    "      end\n"
    "    elseif kind == 5 and i > 1 then\n" /* two formats in one call, as file:read */
    "      local f1, f2 = format(b // 8), format(plan:byte(i - 1) // 8)\n"
    "      local got = table.pack(s:read(f1, f2))\n"
    "      local w1, p1 = model(data, f1, pos)\n"
    "      local w2, p2 = model(data, f2, p1)\n"
    "      local n = w1 == nil and 1 or 2\n"
    "      if got.n ~= n or got[1] ~= w1 or (n == 2 and got[2] ~= w2) then\n"
    "        bad(('read(%s, %s): %d results'):format(f1, f2, got.n), got[1], got[2], w1, w2)\n"
    "      end\n"
    "      pos = n == 1 and p1 or p2\n"
    "    else\n"
    "      local fmt = format(b)\n"
    "      local got = s:read(fmt)\n"
    "      local want, nextpos = model(data, fmt, pos)\n"
    "      if got ~= want then bad(('read(%s)'):format(fmt), got, want) end\n"
    "      pos = nextpos\n"
    "    end\n"
    "  end\n"
    "  local rest = s:read('a')\n"
    "  if rest ~= data:sub(pos) then bad('final read(a)', rest, data:sub(pos)) end\n"
    "  s:close()\n"
    "  writer:wait()\n"
    "end\n"
    /* run in a green thread by the C side: returns nothing, a failure is kept in FAILED */
    "return function(data, plan)\n"
    "  local ok, err = pcall(fuzz_one, data, plan)\n"
    "  if not ok then FAILED = tostring(err) end\n"
    "end\n";

static gl_State *G;
static int run_ref;
static int fds[2];

/* socketpair() -> two connected gl sockets on fresh AF_UNIX stream descriptors */
static int l_socketpair(lua_State *L)
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        return luaL_error(L, "socketpair: %s", strerror(errno));
    gl_sock_push(L, fds[0], AF_UNIX, SOCK_STREAM, GL_SOCK_MT);
    gl_sock_push(L, fds[1], AF_UNIX, SOCK_STREAM, GL_SOCK_MT);
    return 2;
}

static void fail(const char *what, lua_State *L)
{
    fprintf(stderr, "fuzz_line_reader: %s: %s\n", what, L ? lua_tostring(L, -1) : "");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t len)
{
    if (!G) {
        G = gl_open(NULL);
        if (!G)
            fail("gl_open failed", NULL);
        lua_State *L = gl_lua(G);
        if (luaL_loadbuffer(L, harness, sizeof harness - 1, "=harness") != LUA_OK)
            fail("harness", L);
        lua_pushcfunction(L, l_socketpair);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK)
            fail("harness", L);
        run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_State *L = gl_lua(G);
    /* input: plan length (first byte, capped by the input), the plan, then the data */
    size_t plan_len = len ? in[0] : 0;
    if (plan_len > len - (len ? 1 : 0))
        plan_len = len ? len - 1 : 0;
    const char *p = (const char *)in + (len ? 1 : 0);
    fds[0] = fds[1] = -1;
    lua_rawgeti(L, LUA_REGISTRYINDEX, run_ref);
    lua_pushlstring(L, p + plan_len, len - (len ? 1 : 0) - plan_len);
    lua_pushlstring(L, p, plan_len);
    gl_thread *t = gl_spawn(L, 2);
    gl_hub_enqueue(t->hub, t);
    lua_pop(L, 1); /* the thread's handle */
    if (gl_run(G) != 0)
        fail("gl_run", L);
    if (lua_getglobal(L, "FAILED") != LUA_TNIL)
        fail("invariant", L);
    lua_pop(L, 1);
    /* both ends were closed by the driver (the reader explicitly, the writer's by close) */
    for (int i = 0; i < 2; i++)
        if (fds[i] < 0 || (fcntl(fds[i], F_GETFD) != -1 || errno != EBADF)) {
            lua_pushfstring(L, "descriptor %d still open", fds[i]);
            fail("invariant", L);
        }
    /* free everything this input made, so that libFuzzer sees as many frees as mallocs */
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
