-- gl.compat.ngx: the cosocket face against real gl servers on loopback (ms units, OpenResty errors).
local helper = require "helper"
local gl = require "gl"
local green = helper.green
local compat = require "gl.compat.ngx"
local ngx = compat.install()

local function server(handler)
    local srv = assert(gl.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local th = gl.spawn(function() gl.serve(srv, handler) end)
    return port, function() th:kill(); srv:close() end
end

describe("gl.compat.ngx", function()
    it("install sets the global and package.loaded", function()
        assert.equal(ngx, _G.ngx)
        assert.equal(ngx, require "ngx")
        local t = require "table.new"(4, 0)
        t.a = 1; require "table.clear"(t)
        assert.is_nil(next(t))
    end)

    it("connect refused gives 'connection refused'", green(function()
        local srv = assert(gl.listen("127.0.0.1", 0)); local _, port = srv:getsockname(); srv:close()
        local s = ngx.socket.tcp()
        local ok, err = s:connect("127.0.0.1", port)
        assert.is_nil(ok); assert.equal("connection refused", err)
    end))

    it("sends nested tables, receives *l, counts, *a", green(function()
        local port, stop = server(function(c)
            local l = c:read("l"); c:sendall(l .. "\r\nabcdef" .. "tail"); c:close()
        end)
        local s = ngx.socket.tcp()
        assert.equal(1, s:connect("127.0.0.1", port))
        assert.equal(7, s:send({ "he", { "ll", { "o" } }, 1, "\n" }))
        assert.equal("hello1", s:receive("*l"))
        assert.equal("abc", s:receive(3))
        assert.equal("def", s:receive(3))
        assert.equal("tail", s:receive("*a"))
        assert.same({ nil, "closed" }, { s:receive("*l") })
        stop()
    end))

    it("settimeout is in ms and times out with 'timeout'", green(function()
        local done = gl.Event()
        local port, stop = server(function(c) c:read("a"); done:send(true) end)
        local s = ngx.socket.tcp()
        assert(s:connect("127.0.0.1", port))
        s:settimeout(100)
        local t0 = require("gl.core").clock()
        local ok, err = s:receive(1)
        local dt = require("gl.core").clock() - t0
        assert.is_nil(ok); assert.equal("timeout", err)
        assert.is_true(dt >= 0.09 and dt < 1.0, "dt " .. dt)
        s:close(); assert.is_true(done:wait(2)); stop()
    end))

    it("receiveuntil iterates, with inclusive", green(function()
        local port, stop = server(function(c) c:sendall("a--b--c"); c:close() end)
        local s = ngx.socket.tcp(); assert(s:connect("127.0.0.1", port))
        local r = s:receiveuntil("--")
        assert.equal("a", r()); assert.equal("b", r())
        local d, err, partial = r()
        assert.is_nil(d); assert.equal("closed", err); assert.equal("c", partial)
        stop()
        local port2, stop2 = server(function(c) c:sendall("x--y"); c:close() end)
        local s2 = ngx.socket.tcp(); assert(s2:connect("127.0.0.1", port2))
        assert.equal("x--", s2:receiveuntil("--", { inclusive = true })())
        assert.equal("y", s2:receiveany(10))
        stop2()
    end))

    it("setkeepalive reuses pooled connections; getreusedtimes counts; a peer close drops it", green(function()
        local conns, live = 0, 0
        local port, stop = server(function(c)
            conns = conns + 1
            live = live + 1
            while true do
                local l = c:read("l"); if not l then live = live - 1; return end
                if l == "bye" then c:close(); live = live - 1; return end
                c:sendall(l .. "\n")
            end
        end)
        local s = ngx.socket.tcp(); assert(s:connect("127.0.0.1", port))
        assert.equal(0, s:getreusedtimes())
        s:send("x\n"); assert.equal("x", s:receive())
        assert.equal(1, s:setkeepalive(10000, 5))
        local s2 = ngx.socket.tcp(); assert(s2:connect("127.0.0.1", port))
        assert.equal(1, s2:getreusedtimes())
        s2:send("y\n"); assert.equal("y", s2:receive())
        assert.equal(1, conns)
        s2:send("bye\n")
        assert.equal(1, s2:setkeepalive(10000, 5))
        -- the server closed it while idle: bounded poll until the pool dropped it
        for _ = 1, 200 do if compat.pool_size("127.0.0.1:" .. port) == 0 then break end gl.sleep(0.01) end
        assert.equal(0, compat.pool_size("127.0.0.1:" .. port))
        local s3 = ngx.socket.tcp(); assert(s3:connect("127.0.0.1", port))
        assert.equal(0, s3:getreusedtimes())
        s3:send("z\n"); assert.equal("z", s3:receive())
        s3:close()
        for _ = 1, 200 do if live == 0 then break end gl.sleep(0.01) end
        assert.equal(0, live)
        stop()
    end))

    it("sleep, thread.spawn/wait/kill, timer.at, base64, now", green(function()
        local t = ngx.thread.spawn(function(a) ngx.sleep(0.01); return a * 2 end, 21)
        assert.same({ true, 42 }, { ngx.thread.wait(t) })
        local t2 = ngx.thread.spawn(function() error("boom", 0) end)
        assert.same({ false, "boom" }, { ngx.thread.wait(t2) })
        local t3 = ngx.thread.spawn(function() ngx.sleep(10) end)
        assert.is_true(ngx.thread.kill(t3))
        local ev = gl.Event()
        assert.is_true(ngx.timer.at(0.01, function(premature, v) ev:send(v, premature) end, "v"))
        assert.same({ "v", false }, { ev:wait(2) })
        assert.equal("aGVsbG8=", ngx.encode_base64("hello"))
        assert.equal("aGVsbG8", ngx.encode_base64("hello", true))
        assert.equal("hello", ngx.decode_base64("aGVsbG8="))
        assert.is_nil(ngx.decode_base64("a$=="))
        local n0 = ngx.now(); ngx.sleep(0.05)
        assert.is_true(ngx.now() - n0 >= 0.04 and math.abs(ngx.now() - os.time()) < 2)
        assert.equal("null", tostring(ngx.null))
    end))
    it("receiveuntil with a size hands out chunks, then nil at the boundary (multipart style)",
        green(function()
            local body = "preamble\r\n--abcedhb\r\npart one data\r\n--abcedhb--"
            local port, stop = server(function(c)
                -- dribble the body out in small writes so the boundary straddles reads
                for i = 1, #body, 5 do c:sendall(body:sub(i, i + 4)); gl.sleep(0.002) end
                c:close()
            end)
            local s = ngx.socket.tcp(); assert(s:connect("127.0.0.1", port))
            local reader = s:receiveuntil("\r\n--abcedhb")
            local chunks = {}
            while true do
                local data, err = reader(4)
                if not data then assert.is_nil(err); break end
                assert.is_true(#data <= 4)
                chunks[#chunks + 1] = data
            end
            assert.equal("preamble", table.concat(chunks))
            assert.equal("\r\n", s:receive(2))
            chunks = {}
            while true do
                local data, err = reader(4)
                if not data then assert.is_nil(err); break end
                chunks[#chunks + 1] = data
            end
            assert.equal("part one data", table.concat(chunks))
            assert.equal("--", s:receive("*a"))
            stop()
        end))

    it("reads across chunk boundaries: CRLF split, a big count with bytes left over", green(function()
        local big = string.rep("z", 300000)
        local port, stop = server(function(c)
            c:sendall("line one\r"); gl.sleep(0.01); c:sendall("\nline\rtwo\n")
            c:sendall(big .. "after\n")
            c:close()
        end)
        local s = ngx.socket.tcp(); assert(s:connect("127.0.0.1", port))
        assert.equal("line one", s:receive())
        assert.equal("linetwo", s:receive()) -- every CR is dropped from a *l line
        assert.equal(big, s:receive(#big))
        assert.equal("after", s:receive("*l"))
        assert.same({ nil, "closed", "" }, { s:receive(1) })
        stop()
    end))

    it("a peer reset reads as 'connection reset by peer' and closes the cosocket", green(function()
        local port, stop = server(function(c)
            c:read("l")
            c:setoption("linger", 0) -- close with RST
            c:close()
        end)
        local s = ngx.socket.tcp(); assert(s:connect("127.0.0.1", port))
        s:send("go\n")
        local d, err = s:receive()
        assert.is_nil(d); assert.equal("connection reset by peer", err)
        assert.same({ nil, "closed" }, { s:send("x") })
        stop()
    end))
    it("thread.wait returns the first of several to end; killed and waited ones say so", green(function()
        local slow = ngx.thread.spawn(function() ngx.sleep(0.2); return "slow" end)
        local fast = ngx.thread.spawn(function() ngx.sleep(0.01); return "fast", 2 end)
        assert.same({ true, "fast", 2 }, { ngx.thread.wait(slow, fast) })
        assert.same({ false, "already waited or killed" }, { ngx.thread.wait(fast) })
        assert.is_true(ngx.thread.kill(slow))
        assert.same({ nil, "already terminated" }, { ngx.thread.kill(slow) })
        assert.same({ false, "already waited or killed" }, { ngx.thread.wait(slow) })
        local done = ngx.thread.spawn(function() return 1 end)
        assert.same({ true, 1 }, { ngx.thread.wait(done) })
        assert.same({ nil, "already terminated" }, { ngx.thread.kill(done) })
        assert.matches("ngx.thread expected", helper.raises(ngx.thread.wait, {}))
    end))
end)
