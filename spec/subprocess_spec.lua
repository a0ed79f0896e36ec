-- gl.subprocess (API.md section 10): children on green pipes, reaped through SIGCHLD.
local gl = require "gl"
local helper = require "helper"
local green = helper.green
local sp = gl.subprocess

describe("gl.subprocess.run", function()
    it("reports exit codes, output and stderr", green(function()
        local r = sp.run { "sh", "-c", "echo out; echo err >&2; exit 3" }
        assert.are.equal(3, r.status)
        assert.is_nil(r.signal)
        assert.are.equal("out\n", r.stdout)
        assert.are.equal("err\n", r.stderr)
        assert.are.equal(0, sp.run({ "true" }).status)
    end))

    it("reports 128+signal for a killed process", green(function()
        local r = sp.run { "sh", "-c", "kill -9 $$" }
        assert.are.equal(137, r.status)
        assert.are.equal(9, r.signal)
        r = sp.run { "sh", "-c", "kill -TERM $$" }
        assert.are.equal(143, r.status)
    end))

    it("takes cwd, env and a stdin string", green(function()
        assert.are.equal("/tmp\n", sp.run({ "pwd" }, { cwd = "/tmp" }).stdout)
        assert.are.equal("A=1\nB=two\n", sp.run({ "env" }, { env = { A = 1, B = "two" } }).stdout)
        assert.are.equal("fed\0in", sp.run({ "cat" }, { stdin = "fed\0in" }).stdout)
        assert.are.equal("", sp.run({ "cat" }).stdout) -- stdin is /dev/null by default
    end))

    it("returns nil, err for a program that cannot start", green(function()
        local r, err, errno = sp.run { "/nonexistent/program" }
        assert.is_nil(r)
        assert.matches("no such file", err:lower())
        assert.are.equal(2, errno)
        assert.is_nil((sp.run({ "pwd" }, { cwd = "/nonexistent/dir" })))
    end))

    it("raises on bad arguments", green(function()
        assert.matches("argv must be a list", helper.raises(sp.run, "ls"))
        assert.matches("argv is empty", helper.raises(sp.run, {}))
        assert.matches("argv%[2%] must be a string", helper.raises(sp.run, { "ls", {} }))
        assert.matches("opts.stdout must be", helper.raises(sp.popen, { "ls" }, { stdout = "x" }))
    end))

    it("gives the child no fd but its stdio (O_CLOEXEC everywhere)", green(function()
        -- the tpool's eventfds, the hub's own fds, the sockets: none leaks into the child
        local s = gl.listen("127.0.0.1", 0)
        gl.tpool.execute(function() return 1 end)
        local r = sp.run { "sh", "-c", "for f in /proc/$$/fd/*; do echo ${f##*/} $(readlink $f); done" }
        s:close()
        local sockets = 0
        for fd, target in r.stdout:gmatch("(%d+) (%S+)") do
            -- gl's own kinds of fd: epoll/eventfd (hub, tpool) and sockets; only the
            -- child's stdout and stderr may be sockets
            assert.is_nil(target:match("anon_inode"), "fd " .. fd .. " leaked: " .. target)
            if target:match("^socket:") then
                sockets = sockets + 1
                assert.is_true(fd == "1" or fd == "2", "socket fd " .. fd .. " leaked")
            end
        end
        assert.are.equal(2, sockets, r.stdout)
    end))
end)

describe("gl.subprocess.popen", function()
    it("moves 1 MB through stdin and stdout both ways while other threads run", green(function()
        local ticks, stop = 0, false
        local ticker = gl.spawn(function()
            while not stop do gl.sleep(0.005); ticks = ticks + 1 end
        end)
        local p = sp.popen { "cat" }
        local chunk = {}
        for i = 1, 1024 do chunk[i] = string.format("%07d\n", i) end
        local data = string.rep(table.concat(chunk), 128) -- 1 MB
        assert.are.equal(1024 * 1024, #data)
        local writer = gl.spawn(function()
            assert(p.stdin:sendall(data))
            p.stdin:close()
        end)
        local got = p.stdout:read("a")
        writer:wait()
        assert.are.equal(#data, #got)
        assert.is_true(got == data)
        local ok, how, code = p:wait()
        assert.is_true(ok); assert.are.equal("exit", how); assert.are.equal(0, code)
        stop = true
        ticker:wait()
        assert.is_true(ticks > 0)
        p:close()
    end, 10))

    it("wait with a timeout, kill, and wait after the exit", green(function()
        local p = sp.popen({ "sleep", "10" }, { stdin = sp.DEVNULL, stdout = sp.DEVNULL, stderr = sp.DEVNULL })
        assert.is_nil(p.stdout)
        local ok, err = p:wait(0.05)
        assert.is_nil(ok); assert.are.equal("timeout", err)
        assert.is_true(p:kill())
        local ok2, how, n = p:wait(2)
        assert.is_nil(ok2); assert.are.equal("signal", how); assert.are.equal(15, n)
        -- again: the same result; kill after the exit says so
        assert.are.equal("signal", select(2, p:wait()))
        assert.are.equal("process already exited", select(2, p:kill()))
        local q = sp.popen({ "sleep", "10" }, { stdout = sp.DEVNULL, stderr = sp.DEVNULL, stdin = sp.DEVNULL })
        q:kill(9)
        assert.are.equal(9, select(3, q:wait()))
        assert.matches("signal number", helper.raises(q.kill, q, "TERM"))
    end))

    it("many green threads wait for their own children at once", green(function()
        local ths = {}
        for i = 1, 10 do
            ths[i] = gl.spawn(function()
                return sp.run({ "sh", "-c", "sleep 0.1; exit " .. i }).status
            end)
        end
        local t0 = gl.clock()
        for i = 1, 10 do assert.are.equal(i, ths[i]:wait()) end
        assert.is_true(gl.clock() - t0 < 0.9)
    end, 10))

    it("never reaps children that gl did not start", green(function()
        -- a child of Lua's own io.popen (the host's): its status must reach pclose
        local host = io.popen("sleep 0.2; exit 5")
        assert.are.equal(0, sp.run({ "true" }).status)
        gl.sleep(0.4) -- the host child has exited: a stray waitpid(-1) would have taken it
        local ok, how, code = host:close()
        assert.is_nil(ok); assert.are.equal("exit", how); assert.are.equal(5, code)
    end))
end)
