-- gl.backdoor (API.md section 10) over a plain TCP socket.
local gl = require "gl"
local helper = require "helper"
local green = helper.green

-- Reads until the received text ends with `tail`; returns what came before it.
local function upto(s, tail)
    local got = ""
    while got:sub(-#tail) ~= tail do
        local data, err = s:recv(4096)
        assert(data, debug.traceback(("connection %s; got so far: %q"):format(err, got)))
        got = got .. data
    end
    return got:sub(1, -#tail - 1)
end

-- How many backdoor sessions are running (threads inside backdoor.lua's session).
local function sessions()
    local n = 0
    for _, t in ipairs(helper.others()) do
        if t.traceback:find("in upvalue 'session'", 1, true) then n = n + 1 end
    end
    return n
end

local function start(env)
    local l = assert(gl.listen("127.0.0.1", 0))
    local _, port = l:getsockname()
    local t = gl.spawn(gl.backdoor.serve, l, nil, env)
    return l, t, port
end

local function stop(l, t)
    l:close()
    helper.wait_until(function() return t:dead() and sessions() == 0 end, 1)
    if not t:dead() then gl.kill(t) end
end

local function client(port)
    local s = assert(gl.connect("127.0.0.1", port))
    s:settimeout(3)
    assert.matches("backdoor", upto(s, "> "))
    return s
end

describe("gl.backdoor", function()
    it("prints expression values, continues multi-line chunks and sends print to the connection",
        green(function()
            local l, t, port = start()
            local s = client(port)
            s:sendall("1+1\n")
            assert.are.equal("2\n", upto(s, "> "))
            s:sendall("function f(x)\n")
            assert.are.equal("", upto(s, ">> "))
            s:sendall("  local y = x * 2\n")
            assert.are.equal("", upto(s, ">> "))
            s:sendall("  return y, 'ok'\n")
            assert.are.equal("", upto(s, ">> "))
            s:sendall("end\n")
            assert.are.equal("", upto(s, "> "))
            s:sendall("f(21)\n")
            assert.are.equal("42\tok\n", upto(s, "> "))
            s:sendall("print('hello', 1, nil)\n")
            assert.are.equal("hello\t1\tnil\n", upto(s, "> "))
            s:sendall("error('boom')\n")
            assert.matches("boom", upto(s, "> "))
            s:sendall("local = 1\n")
            assert.matches("expected near", upto(s, "> "))
            s:sendall("x = 5\r\n")
            assert.are.equal("", upto(s, "> "))
            s:sendall("x\n")
            assert.are.equal("5\n", upto(s, "> "))
            assert.is_nil(rawget(_G, "x"), "globals of a session stay in its own environment")
            s:close()
            stop(l, t)
        end))

    it("keeps other green threads running, serves several clients, and uses the env given",
        green(function()
            local env = setmetatable({ answer = 42 }, { __index = _G })
            local l, t, port = start(env)
            local ticks = 0
            local ticker = gl.spawn(function()
                while true do
                    ticks = ticks + 1
                    gl.sleep(0.01)
                end
            end)
            local a, b = client(port), client(port)
            local before = ticks
            a:sendall("gl.sleep(0.2); return answer\n")
            b:sendall("answer + 1\n")
            assert.are.equal("43\n", upto(b, "> ")) -- b is served while a sleeps
            assert.are.equal("42\n", upto(a, "> "))
            assert.is_true(ticks > before + 5, "the ticker did not run while the REPL slept")
            b:sendall("saved = 'kept'\n")
            upto(b, "> ")
            b:sendall("print(answer)\n")
            assert.are.equal("42\n", upto(b, "> ")) -- print went to b, whatever env is
            assert.are.equal("kept", env.saved)
            a:close()
            b:close()
            gl.kill(ticker)
            stop(l, t)
        end))

    it("frees a session whose client leaves in the middle of a chunk", green(function()
        local l, t, port = start()
        local s = client(port)
        s:sendall("function g()\n")
        upto(s, ">> ")
        s:sendall("  return 1\n")
        upto(s, ">> ")
        assert.are.equal(1, sessions())
        s:close()
        assert(helper.wait_until(function() return sessions() == 0 end, 2),
            "the session's thread is still alive")
        local s2 = client(port)
        s2:sendall("g == nil\n")
        assert.are.equal("true\n", upto(s2, "> "))
        s2:close()
        stop(l, t)
    end))

    it("listens on 127.0.0.1 by default and checks its arguments", green(function()
        local port = (function()
            local l = assert(gl.listen("127.0.0.1", 0))
            local _, p = l:getsockname()
            l:close()
            return p
        end)()
        local t = gl.spawn(gl.backdoor.serve, nil, port)
        gl.sleep(0)
        local s = client(port)
        local _, peer_port = s:getsockname()
        assert.is_number(peer_port)
        s:sendall("1\n")
        assert.are.equal("1\n", upto(s, "> "))
        s:close()
        assert(helper.wait_until(function() return sessions() == 0 end, 2))
        gl.kill(t)
        assert.matches("env must be a table", helper.raises(gl.backdoor.serve, nil, 1, 5))
        assert.matches("port must be", helper.raises(gl.backdoor.serve, "127.0.0.1", "x"))
    end))
end)
