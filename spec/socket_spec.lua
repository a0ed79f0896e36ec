-- gl sockets: listen/connect/serve, every socket method, TCP/UDP/Unix, errors.
local helper = require "helper"
local gl = require "gl"
local green = helper.green

-- a listening socket on a free loopback port, and that port
local function listener(host)
    local srv = assert(gl.listen(host or "127.0.0.1", 0))
    local _, port = srv:getsockname()
    return srv, port
end

-- a UDP socket bound to a free loopback port, and that port
local function udp_bound()
    local u = gl.socket.udp()
    assert.is_true(u:bind("127.0.0.1", 0))
    local _, port = u:getsockname()
    return u, port
end

-- a connected pair: client and the server's end
local function pair()
    local srv, port = listener()
    local accepted = gl.spawn(function() return srv:accept() end)
    local c = assert(gl.connect("127.0.0.1", port))
    local s = accepted:wait()
    srv:close()
    return c, s
end

describe("gl sockets", function()
    it("listens, accepts and connects with peer and local addresses", green(function()
        local srv, port = listener()
        local got = gl.spawn(function()
            local conn, host, cport = srv:accept()
            return conn, host, cport
        end)
        local c = assert(gl.connect("127.0.0.1", port))
        local conn, host, cport = got:wait()
        assert.equal("127.0.0.1", host)
        local lh, lp = c:getsockname()
        assert.equal("127.0.0.1", lh)
        assert.equal(lp, cport)
        local ph, pp = c:getpeername()
        assert.equal("127.0.0.1", ph)
        assert.equal(port, pp)
        assert.is_number(c:fileno())
        conn:close(); c:close(); srv:close()
    end))

    it("sends and receives with send, sendall and recv", green(function()
        local c, s = pair()
        assert.equal(5, c:send("hello"))
        assert.equal("hello", s:recv(100))
        assert.is_true(s:sendall("world"))
        assert.equal("wor", c:recv(3))
        assert.equal("ld", c:recv(100))
        c:close(); s:close()
    end))

    it("returns nil, 'closed' at EOF and after the peer closes", green(function()
        local c, s = pair()
        s:close()
        local data, err = c:recv(10)
        assert.is_nil(data)
        assert.equal("closed", err)
        c:close()
    end))

    it("reads lines, byte counts and everything like file:read", green(function()
        local c, s = pair()
        s:sendall("one\ntwo\r\nthree\n12345rest")
        s:close()
        assert.equal("one", c:read())
        assert.equal("two\r\n", c:read("L"))
        local a, b = c:read("l", 5)
        assert.equal("three", a)
        assert.equal("12345", b)
        assert.equal("", c:read(0)) -- more to come: an empty string
        assert.equal("rest", c:read("a"))
        assert.equal("", c:read("a"))
        assert.is_nil(c:read("l"))
        assert.is_nil(c:read(0)) -- at EOF: nil, as file:read(0)
        c:close()
    end))

    it("read(0) waits for data or EOF without taking any", green(function()
        local c, s = pair()
        local reader = gl.spawn(function() return c:read(0) end)
        gl.sleep(0) -- the reader has run up to its wait
        assert.is_false(reader:dead())
        s:sendall("x")
        assert.equal("", reader:wait())
        assert.equal("x", c:read(1))
        c:close(); s:close()
    end))

    it("iterates lines with lines() and writes with write()", green(function()
        local c, s = pair()
        assert.equal(s, s:write("a\n", 2, "\n", "c\n"))
        s:close()
        local got = {}
        for line in c:lines() do got[#got + 1] = line end
        assert.same({ "a", "2", "c" }, got)
        c:close()
    end))

    it("moves 10 MB through sendall in both directions at once", green(function()
        local c, s = pair()
        local size = 10 * 1024 * 1024
        local blob = string.rep("0123456789abcdef", size // 16)
        local function drain(sock)
            local n = 0
            while n < size do
                local d = assert(sock:recv(65536))
                n = n + #d
            end
            return n
        end
        local r1 = gl.spawn(drain, s)
        local r2 = gl.spawn(drain, c)
        local w1 = gl.spawn(function() return c:sendall(blob) end)
        assert.is_true(s:sendall(blob))
        assert.is_true(w1:wait())
        assert.equal(size, r1:wait())
        assert.equal(size, r2:wait())
        c:close(); s:close()
    end, 30))

    it("times out per operation with settimeout and stays usable", green(function()
        local c, s = pair()
        assert.equal(c, c:settimeout(0.05))
        assert.equal(0.05, c:gettimeout())
        local t0 = gl.clock()
        local data, err = c:recv(10)
        assert.is_nil(data)
        assert.equal("timeout", err)
        assert.is_true(gl.clock() - t0 >= 0.04)
        s:sendall("late")
        assert.equal("late", c:recv(10))
        c:settimeout(nil)
        assert.is_nil(c:gettimeout())
        c:close(); s:close()
    end))

    -- a wait that data ends early leaves its timer pending for the next one (socket.c,
    -- gl_sched_arm_deadline): each later wait must still end at its own timeout
    it("ends each wait at its own timeout, longer or shorter than the one before", green(function()
        local c, s = pair()
        local stage = 0
        local function timed_recv(sec, at)
            c:settimeout(sec)
            stage = at
            local t0 = gl.clock()
            local data, err = c:recv(10)
            return { data = data, err = err, took = gl.clock() - t0 }
        end
        local released = gl.Event()
        local reader = gl.spawn(function()
            local r = {}
            r[1] = timed_recv(5, 1)    -- data: its 5 s timer stays pending
            r[2] = timed_recv(0.1, 2)  -- nothing: a shorter timeout than that timer
            r[3] = timed_recv(0.05, 3) -- data: a 50 ms timer stays pending
            r[4] = timed_recv(0.4, 4)  -- nothing: that timer fires first and must not end it
            r[5] = timed_recv(0.05, 5) -- data
            local t0 = gl.clock()
            gl.sleep(0.2)
            r.slept = gl.clock() - t0
            stage = 6
            r.released = released:wait()
            return r
        end)
        for _, at in ipairs({ 1, 3, 5 }) do
            assert.is_true(helper.wait_until(function() return stage == at end, 3))
            s:sendall("data" .. at)
        end
        assert.is_true(helper.wait_until(function() return stage == 6 end, 3))
        gl.sleep(0.1) -- past the last recv's 50 ms timer: the Event wait must outlast it
        assert.is_false(reader:dead())
        released:send("go")
        local r = reader:wait()
        assert.equal("data1", r[1].data)
        assert.equal("data3", r[3].data)
        assert.equal("data5", r[5].data)
        assert.same({ nil, "timeout" }, { r[2].data, r[2].err })
        assert.is_true(r[2].took >= 0.09 and r[2].took < 2, "took " .. r[2].took)
        assert.same({ nil, "timeout" }, { r[4].data, r[4].err })
        assert.is_true(r[4].took >= 0.39 and r[4].took < 2, "took " .. r[4].took)
        assert.is_true(r.slept >= 0.19, "slept " .. r.slept)
        assert.equal("go", r.released)
        c:close(); s:close()
    end))

    it("lets gl.Timeout raise through a blocked recv and keeps the socket usable", green(function()
        local c, s = pair()
        local ok, e = pcall(gl.with_timeout, 0.05, c.recv, c, 10)
        assert.is_false(ok)
        assert.is_true(gl.is_timeout(e))
        s:sendall("after")
        assert.equal("after", c:recv(10))
        c:close(); s:close()
    end))

    it("refuses a second concurrent reader with a clear error", green(function()
        local c, s = pair()
        local first = gl.spawn(function() return c:recv(10) end)
        gl.sleep(0)
        local ok, err = pcall(c.recv, c, 10)
        assert.is_false(ok)
        assert.matches("another green thread is already reading this socket", err)
        s:sendall("x")
        assert.equal("x", first:wait())
        c:close(); s:close()
    end))

    it("wakes every blocked thread with nil, 'closed' when the socket closes", green(function()
        local c, s = pair()
        local reader = gl.spawn(function() return c:recv(10) end)
        gl.sleep(0)
        c:close()
        local data, err = reader:wait()
        assert.is_nil(data)
        assert.equal("closed", err)
        assert.is_true(c:closed())
        assert.has_error(function() c:recv(1) end, "attempt to use a closed socket")
        c:close() -- twice is harmless
        s:close()
    end))

    it("closes with <close> and kills a blocked reader cleanly", green(function()
        local c, s = pair()
        do
            local tbc <close> = s
        end
        assert.is_true(s:closed())
        local reader = gl.spawn(function() return c:recv(1) end)
        gl.sleep(0)
        gl.kill(reader)
        assert.is_true(reader:dead())
        c:close()
    end))

    it("half-closes with shutdown", green(function()
        local c, s = pair()
        assert.is_true(c:shutdown("w"))
        local data, err = s:recv(10)
        assert.is_nil(data)
        assert.equal("closed", err)
        s:sendall("still open")
        assert.equal("still open", c:recv(100))
        c:close(); s:close()
    end))

    it("sets options", green(function()
        local c, s = pair()
        for _, opt in ipairs({ "nodelay", "keepalive", "reuseaddr", "reuseport" }) do
            assert.is_true(c:setoption(opt, true))
        end
        assert.is_true(c:setoption("rcvbuf", 65536))
        assert.is_true(c:setoption("sndbuf", 65536))
        assert.is_true(c:setoption("linger", 0))
        assert.is_true(c:setoption("linger", false))
        assert.has_error(function() c:setoption("bogus", 1) end)
        c:close(); s:close()
    end))

    it("returns nil, err for a refused connection and an unknown host", green(function()
        local srv, port = listener()
        srv:close()
        local sock, err = gl.connect("127.0.0.1", port)
        assert.is_nil(sock)
        assert.equal("connection refused", err)
        local sock2, err2 = gl.connect("no-such-host.invalid", 80)
        assert.is_nil(sock2)
        assert.is_string(err2)
    end, 15))

    it("raises for a port outside 0-65535 instead of wrapping it", green(function()
        -- the kernel takes a port modulo 65536: 65536 + 80 would have bound port 80
        local srv, port = listener()
        local tcp, udp = gl.socket.tcp(), gl.socket.udp()
        for _, call in ipairs({
            function() return gl.listen("127.0.0.1", 65536 + port) end,
            function() return gl.connect("127.0.0.1", 65536 + port) end,
            function() return gl.connect("localhost", -1) end,
            function() return tcp:connect("127.0.0.1", 65536 + port) end,
            function() return udp:sendto("x", "127.0.0.1", 70000) end,
            function() return gl.connect("127.0.0.1", 1.5) end,
        }) do
            local err = helper.raises(call)
            assert.matches("port out of range", tostring(err))
        end
        local c = assert(gl.connect("127.0.0.1", tostring(port))) -- a numeric string still works
        c:close(); tcp:close(); udp:close(); srv:close()
    end))

    it("connects with a timeout option", green(function()
        local srv, port = listener()
        local c = assert(gl.connect("127.0.0.1", port, { timeout = 1 }))
        assert.is_nil(c:gettimeout()) -- the connect timeout does not stick
        c:close(); srv:close()
    end))

    it("connects from a bound local port with opts.bind", green(function()
        local srv, port = listener()
        local probe = assert(gl.listen("127.0.0.1", 0))
        local _, lport = probe:getsockname()
        probe:close()
        local c = assert(gl.connect("127.0.0.1", port, { bind = { "127.0.0.1", lport } }))
        local _, got = c:getsockname()
        assert.equal(lport, got)
        c:close(); srv:close()
    end))

    it("serves IPv6 on ::1 when the machine has it", green(function()
        local srv = gl.listen("::1", 0)
        if not srv then return end -- no IPv6 loopback here
        local _, port = srv:getsockname()
        local t = gl.spawn(function()
            local conn = srv:accept()
            conn:sendall("v6")
            conn:close()
        end)
        local c = assert(gl.connect("::1", port))
        assert.equal("v6", c:read("a"))
        t:wait()
        c:close(); srv:close()
    end))

    it("speaks UDP with sendto and recvfrom", green(function()
        local a, aport = udp_bound()
        local b, bport = udp_bound()
        assert.equal(4, b:sendto("ping", "127.0.0.1", aport))
        local data, host, port = a:recvfrom(100)
        assert.equal("ping", data)
        assert.equal("127.0.0.1", host)
        assert.equal(bport, port)
        a:close(); b:close()
    end))

    -- a short datagram says nothing about the queue behind it: a reply sent in between
    -- must not make the next recv wait for an edge that the queued datagram never makes
    it("reads every queued datagram of a connected UDP socket across replies", green(function()
        local a, aport = udp_bound()
        local b, bport = udp_bound()
        assert(a:connect("127.0.0.1", bport))
        a:settimeout(2)
        local first = gl.spawn(a.recv, a, 100)
        gl.sleep(0) -- the reader waits: its edge-triggered event is armed
        assert.equal(4, b:sendto("zero", "127.0.0.1", aport))
        assert.equal("zero", first:wait())
        -- two datagrams in one edge
        assert.equal(3, b:sendto("one", "127.0.0.1", aport))
        assert.equal(3, b:sendto("two", "127.0.0.1", aport))
        -- loopback sendto has queued both already; one hub pass polls and takes the edge
        gl.sleep(0)
        assert.equal("one", a:recv(100))
        assert(a:send("ack"))
        assert.equal("two", a:recv(100))
        assert.equal("ack", (b:recvfrom(100)))
        a:close(); b:close()
    end))

    it("speaks over Unix sockets", green(function()
        local path = os.tmpname()
        os.remove(path)
        local srv = assert(gl.listen("unix:" .. path))
        local t = gl.spawn(function()
            local conn = srv:accept()
            conn:sendall(conn:recv(100):upper())
            conn:close()
        end)
        local c = assert(gl.connect("unix:" .. path))
        c:sendall("hi")
        assert.equal("HI", c:read("a"))
        t:wait()
        c:close(); srv:close()
        os.remove(path)
    end))

    it("makes unconnected sockets with gl.socket.tcp", green(function()
        local srv, port = listener()
        local sock = gl.socket.tcp()
        assert.is_true(sock:connect("127.0.0.1", port))
        local conn = srv:accept()
        sock:sendall("x")
        assert.equal("x", conn:recv(1))
        sock:close(); conn:close(); srv:close()
    end))

    it("waits for readiness with gl.trampoline, raising a Timeout on expiry", green(function()
        local c, s = pair()
        local ok, e = pcall(gl.trampoline, c, { read = true, timeout = 0.02 })
        assert.is_false(ok)
        assert.is_true(gl.is_timeout(e))
        s:sendall("r")
        gl.trampoline(c:fileno(), { read = true, timeout = 1 })
        assert.equal("r", c:recv(1))
        gl.trampoline(c, { write = true })
        c:close(); s:close()
    end))

    -- A reset that arrives with the last data is told only by the recv after the data;
    -- no later edge comes, so a reader that stopped at the short read would wait forever.
    it("sees a reset that came right behind partial data", green(function()
        local c, s = pair()
        s:settimeout(2)
        local reader = gl.spawn(function() return s:read("l") end)
        gl.sleep(0) -- the reader waits: its edge-triggered event is armed
        -- data and reset in one batch, before the hub polls: one edge for both
        c:sendall("hello") -- no newline: the reader wants more
        c:setoption("linger", 0)
        c:close()
        local line, err = reader:wait()
        assert.is_nil(line)
        assert.are_not.equal("timeout", err)
        s:close()
    end))

    -- A reply sent after a short read lets the next read skip the recv that would only say
    -- EAGAIN (a pending reset fails every send); a FIN in the same edge as the data must
    -- still be seen, and a reset still fails the reply.
    local function answer_once(s)
        return gl.spawn(function()
            local line = assert(s:read("l"))
            local sent, serr = s:sendall(line .. "!\n")
            return sent, serr, s:read("l")
        end)
    end

    it("sees a FIN that came with the request after answering it", green(function()
        local c, s = pair()
        s:settimeout(2)
        local server = answer_once(s)
        gl.sleep(0) -- the server waits: its edge-triggered event is armed
        c:sendall("ping\n")
        c:shutdown("w") -- data and FIN in one edge
        local sent, _, line, err = server:wait()
        assert.is_truthy(sent)
        assert.is_nil(line) -- EOF, not the 2 s timeout
        assert.are_not.equal("timeout", err)
        assert.equal("ping!", c:read("l"))
        c:close(); s:close()
    end))

    it("fails the reply to a request that came with a reset", green(function()
        local c, s = pair()
        s:settimeout(2)
        local server = answer_once(s)
        gl.sleep(0)
        c:sendall("ping\n")
        c:setoption("linger", 0)
        c:close()
        local sent, serr, line, err = server:wait()
        assert.is_nil(sent)
        assert.is_string(serr)
        assert.is_nil(line)
        assert.are_not.equal("timeout", err)
        s:close()
    end))

    it("sees a Unix peer that closed right after its request", green(function()
        local path = os.tmpname()
        os.remove(path)
        local srv = assert(gl.listen("unix:" .. path))
        local accepted = gl.spawn(srv.accept, srv)
        local c = assert(gl.connect("unix:" .. path))
        local s = assert(accepted:wait())
        srv:close()
        os.remove(path)
        s:settimeout(2)
        local server = answer_once(s)
        gl.sleep(0)
        c:sendall("ping\n")
        c:close() -- data and hang-up in one edge (EPOLLHUP: no EV_CLOSED)
        local _, _, line, err = server:wait()
        assert.is_nil(line)
        assert.are_not.equal("timeout", err)
        s:close()
    end))

    it("still reads the next request after answering one", green(function()
        local c, s = pair()
        s:settimeout(2)
        local server = gl.spawn(function()
            for _ = 1, 3 do
                local line = assert(s:read("l"))
                assert(s:sendall(line .. "!\n"))
            end
        end)
        for i = 1, 3 do
            c:sendall("req" .. i .. "\n")
            assert.equal("req" .. i .. "!", c:read("l"))
        end
        server:wait()
        c:close(); s:close()
    end))

    it("leaks no fd after resets, refusals, timeouts and abandoned sockets", green(function()
        local function nfds() -- the listing's own pipe is closed before the next count
            local p = io.popen("ls /proc/" .. require("gl.core").getpid() .. "/fd")
            local n = 0
            for _ in p:lines() do n = n + 1 end
            p:close()
            return n - 1
        end
        local before = nfds()
        local srv, port = listener()
        local server = gl.spawn(gl.serve, srv, function(conn)
            conn:settimeout(0.05)
            while conn:recv(100) do end
        end)
        for i = 1, 200 do
            local c = assert(gl.connect("127.0.0.1", port))
            if i % 3 == 0 then
                c:setoption("linger", 0) -- close with a reset
            elseif i % 3 == 1 then
                c:sendall("partial")
            end
            c:close()
        end
        local idle = assert(gl.connect("127.0.0.1", port)) -- the server times it out
        assert.equal("", idle:read("a"))
        idle:close()
        srv:close()
        gl.kill(server)
        for _ = 1, 20 do
            local refused = gl.connect("127.0.0.1", port)
            assert.is_nil(refused)
        end
        do local abandoned = gl.socket.tcp() end -- closed by __gc
        collectgarbage()
        collectgarbage()
        assert.is_true(helper.wait_until(function() return nfds() <= before end, 3, 0.01),
            ("fds before %d, after %d"):format(before, nfds()))
    end, 20))

    describe("gl.serve", function()
        it("runs a handler per connection and closes the connection after it", green(function()
            local srv, port = listener()
            local server = gl.spawn(gl.serve, srv, function(conn, host)
                conn:sendall("hello " .. host .. "\n")
            end)
            for _ = 1, 3 do
                local c = assert(gl.connect("127.0.0.1", port))
                assert.equal("hello 127.0.0.1", c:read())
                assert.is_nil(c:read()) -- the server closed it
                c:close()
            end
            gl.kill(server)
            srv:close()
        end))

        it("prints a handler error and goes on serving", green(function()
            local srv, port = listener()
            local calls = 0
            local server = gl.spawn(gl.serve, srv, function(conn)
                calls = calls + 1
                if calls == 1 then error("boom in handler") end
                conn:sendall("ok\n")
            end)
            local c1 = assert(gl.connect("127.0.0.1", port))
            assert.is_nil(c1:read())
            c1:close()
            local c2 = assert(gl.connect("127.0.0.1", port))
            assert.equal("ok", c2:read())
            c2:close()
            gl.kill(server)
            srv:close()
        end))

        it("returns when its listening socket is closed", green(function()
            local srv, port = listener()
            local release, started = gl.Event(), false
            local server = gl.spawn(gl.serve, srv, function()
                started = true
                release:wait()
            end, 1)
            local c = assert(gl.connect("127.0.0.1", port)) -- takes the only slot
            assert.is_true(helper.wait_until(function() return started end, 2))
            srv:close() -- serve waits for a slot, then finds the socket closed
            release:send()
            assert.equal(nil, (server:wait()))
            c:close()
        end))

        it("returns when a handler raises gl.StopServe", green(function()
            local srv, port = listener()
            local server = gl.spawn(gl.serve, srv, function() error(gl.StopServe) end)
            local c = assert(gl.connect("127.0.0.1", port))
            assert.equal(nil, (server:wait()))
            c:close(); srv:close()
        end))

        it("re-raises a handler error with raise_errors", green(function()
            local srv, port = listener()
            local server = gl.spawn(gl.serve, srv, function() error({ code = 7 }) end,
                { raise_errors = true })
            local c = assert(gl.connect("127.0.0.1", port))
            local ok, e = pcall(server.wait, server)
            assert.is_false(ok)
            assert.same({ code = 7 }, e)
            c:close(); srv:close()
        end))

        it("stops accepting at the concurrency limit until a handler ends", green(function()
            local srv, port = listener()
            local release = gl.Event()
            local active, peak = 0, 0
            local server = gl.spawn(gl.serve, srv, function(conn)
                active = active + 1
                peak = math.max(peak, active)
                conn:sendall("in\n")
                release:wait()
                active = active - 1
            end, 2)
            local clients = {}
            for i = 1, 4 do clients[i] = assert(gl.connect("127.0.0.1", port)) end
            assert.equal("in", clients[1]:read())
            assert.equal("in", clients[2]:read())
            clients[3]:settimeout(0.1)
            local none, why = clients[3]:read()
            assert.is_nil(none)
            assert.equal("timeout", why)
            release:send()
            clients[3]:settimeout(2)
            assert.equal("in", clients[3]:read())
            assert.equal(2, peak)
            for _, c in ipairs(clients) do c:close() end
            gl.kill(server)
            srv:close()
        end))
    end)
end)
