/* libFuzzer target for the socket read-ahead buffer (gl_sock_fill and the read formats of
 * socket.c), run for real: gl embedded, a loopback connection per input, a writer thread
 * sending the data in chunks the input chooses, and a reader using the formats the input
 * chooses ("l", "L", counts, "a"). Every result is checked against a model of the format
 * on the original bytes, in Lua; a difference raises, and the harness aborts. */
#include "gl.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static const char harness[] =
    "local gl = require 'gl'\n"
    "local listener = assert(gl.listen('127.0.0.1', 0))\n"
    "local port = select(2, listener:getsockname())\n"
    /* plan bytes: chunk sizes for the writer, formats for the reader */
    "function fuzz_one(data, plan)\n"
    "  local accepted = gl.spawn(listener.accept, listener)\n"
    "  local c = assert(gl.connect('127.0.0.1', port))\n"
    "  local s = assert(accepted:wait())\n"
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
    "  local pos, i = 1, #plan\n"
    "  while true do\n"
    "    local b = i >= 1 and plan:byte(i) or 3\n"
    "    i = i - 1\n"
    "    local kind = b % 4\n"
    "    if kind == 0 or kind == 1 then\n"
    "      local fmt = kind == 0 and 'l' or 'L'\n"
    "      local got = s:read(fmt)\n"
    "      if pos > #data then assert(got == nil, 'line after EOF')\n"
    "      else\n"
    "        local nl = data:find('\\n', pos, true)\n"
    "        local want = nl and data:sub(pos, fmt == 'l' and nl - 1 or nl) or data:sub(pos)\n"
    "        assert(got == want, ('%s read: %q, want %q'):format(fmt, tostring(got), want))\n"
    "        pos = nl and nl + 1 or #data + 1\n"
    "      end\n"
    "    elseif kind == 2 then\n"
    "      local n = (b // 4) % 2 == 0 and (b // 8 + 1) or (b * 300 + 1)\n"
    "      local got = s:read(n)\n"
    "      if pos > #data then assert(got == nil, 'count after EOF')\n"
    "      else\n"
    "        local want = data:sub(pos, pos + n - 1)\n"
    "        assert(got == want, ('read(%d): %q, want %q'):format(n, tostring(got), want))\n"
    "        pos = pos + #want\n"
    "      end\n"
    "    else\n"
    "      local got = s:read('a')\n"
    "      assert(got == data:sub(pos), 'read(a) differs')\n"
    "      break\n"
    "    end\n"
    "    if pos > #data and i < 1 then break end\n"
    "  end\n"
    "  s:close()\n"
    "  writer:wait()\n"
    "end\n";

static gl_State *G;

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t len)
{
    if (!G) {
        G = gl_open(NULL);
        if (!G || gl_dostring(G, harness) != 0 || gl_run(G) != 0) {
            fprintf(stderr, "fuzz_line_reader: harness: %s\n",
                    G ? lua_tostring(gl_lua(G), -1) : "gl_open failed");
            abort();
        }
    }
    /* input: plan length (first byte, capped by the input), the plan, then the data */
    size_t plan_len = len ? in[0] : 0;
    if (plan_len > len - (len ? 1 : 0))
        plan_len = len ? len - 1 : 0;
    lua_State *L = gl_lua(G);
    const char *p = (const char *)in + (len ? 1 : 0);
    lua_pushlstring(L, p + plan_len, len - (len ? 1 : 0) - plan_len);
    lua_setglobal(L, "DATA");
    lua_pushlstring(L, p, plan_len);
    lua_setglobal(L, "PLAN");
    if (gl_dostring(G, "local t = gl.spawn(fuzz_one, DATA, PLAN)\n"
                       "RESULT = nil\n"
                       "t:link(function(gt) RESULT = { pcall(gt.wait, gt) } end)") != 0 ||
        gl_run(G) != 0) {
        fprintf(stderr, "fuzz_line_reader: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_getglobal(L, "RESULT");
    lua_rawgeti(L, -1, 1);
    if (!lua_toboolean(L, -1)) {
        lua_rawgeti(L, -2, 2);
        fprintf(stderr, "fuzz_line_reader: %s\n", luaL_tolstring(L, -1, NULL));
        abort();
    }
    lua_settop(L, 0);
    return 0;
}
