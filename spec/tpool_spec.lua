-- gl.tpool (API.md section 10): worker OS threads with their own Lua states.
local gl = require "gl"
local helper = require "helper"
local green = helper.green

describe("gl.tpool.execute", function()
    it("copies arguments and results, integers and floats apart, NULs kept", green(function()
        local r = table.pack(gl.tpool.execute(function(a, b, s, t, f)
            return a + 1, math.type(a), math.type(b), s, #s, t.list[2].deep, t[true], f, nil
        end, 41, 2.0, "a\0b\0", { list = { 1, { deep = "x" } }, [true] = false }, false))
        assert.are.equal(9, r.n)
        assert.are.equal(42, r[1]); assert.are.equal("integer", math.type(r[1]))
        assert.are.equal("integer", r[2]); assert.are.equal("float", r[3])
        assert.are.equal("a\0b\0", r[4]); assert.are.equal(4, r[5])
        assert.are.equal("x", r[6]); assert.is_false(r[7]); assert.is_false(r[8])
        assert.is_nil(r[9])
        local t = gl.tpool.execute(function() return { 1.5, n = 3, sub = { "z" } } end)
        assert.are.equal(1.5, t[1]); assert.are.equal("float", math.type(t[1]))
        assert.are.equal(3, t.n); assert.are.equal("z", t.sub[1])
    end))

    it("runs with the standard libraries and the caller's package.path", green(function()
        local path = gl.tpool.execute(function()
            return package.path, string.format("%d", 7), table.concat({ "a", "b" }), type(io.open)
        end)
        assert.are.equal(package.path, path)
    end))

    it("raises fn's error in the caller with its message", green(function()
        local err = helper.raises(gl.tpool.execute, function(x) error("bad " .. x, 0) end, "input")
        assert.are.equal("bad input", err)
        err = helper.raises(gl.tpool.execute, function() error({ code = 7 }) end)
        assert.are.equal(7, err.code)
        err = helper.raises(gl.tpool.execute, function() local x = nil; return x.y end)
        assert.matches("attempt to index", err)
    end))

    it("refuses functions with upvalues, C functions and values it cannot copy", green(function()
        local up = 1
        assert.matches("upvalue 'up'", helper.raises(gl.tpool.execute, function() return up end))
        assert.matches("C function", helper.raises(gl.tpool.execute, print))
        assert.matches("argument 2: cannot copy a function",
            helper.raises(gl.tpool.execute, function() end, 1, print))
        assert.matches("argument 1: cannot copy a thread",
            helper.raises(gl.tpool.execute, function() end, coroutine.create(print)))
        assert.matches("cannot copy result 1: cannot copy a userdata",
            helper.raises(gl.tpool.execute, function() return io.stdout end))
        local cyc = {}; cyc.self = cyc
        assert.matches("nested too deep", helper.raises(gl.tpool.execute, function() end, cyc))
        assert.matches("function expected", helper.raises(gl.tpool.execute, 42))
    end))

    it("keeps a 10 ms ticker on time while a 1 s CPU loop runs in a worker", green(function()
        local ticks, worst, stop = 0, 0, false
        local ticker = gl.spawn(function()
            local last = gl.clock()
            while not stop do
                gl.sleep(0.01)
                local now = gl.clock()
                worst = math.max(worst, now - last)
                last = now
                ticks = ticks + 1
            end
        end)
        local t0 = gl.clock()
        local n = gl.tpool.execute(function(sec)
            local t0 = os.clock()
            local n = 0
            while os.clock() - t0 < sec do n = n + 1 end
            return n
        end, 1.0)
        local took = gl.clock() - t0
        stop = true
        ticker:wait()
        assert.is_true(n > 0)
        assert.is_true(took >= 0.95, "the loop ran " .. took .. " s")
        assert.is_true(ticks >= 40, "only " .. ticks .. " ticks")
        assert.is_true(worst < 0.05, ("a gap of %.3f s"):format(worst))
    end, 10))

    it("overlaps 4 executes from 4 green threads: 4 x 0.3 s well under 1.2 s", green(function()
        local ths = {}
        local t0 = gl.clock()
        for i = 1, 4 do
            ths[i] = gl.spawn(gl.tpool.execute, function(i)
                -- a blocking OS-level wait in the worker (no gl there)
                os.execute("sleep 0.3")
                return i
            end, i)
        end
        for i = 1, 4 do assert.are.equal(i, ths[i]:wait()) end
        local took = gl.clock() - t0
        assert.is_true(took < 0.8, ("took %.2f s"):format(took))
    end, 10))

    it("a waiter that times out leaves the worker to finish and drops its result", green(function()
        local err = helper.raises(gl.with_timeout, 0.05, gl.tpool.execute, function()
            local t0 = os.time(); os.execute("sleep 0.3"); return "late"
        end)
        assert.is_true(gl.is_timeout(err))
        -- the pool still works; the abandoned job finishes on its own
        assert.are.equal("next", gl.tpool.execute(function() return "next" end))
        local victim = gl.spawn(gl.tpool.execute, function() os.execute("sleep 0.2") end)
        gl.sleep(0.02)
        gl.kill(victim)
        assert.is_true(victim:dead())
        -- the abandoned jobs still run, then the pool is idle again
        assert.is_true(select(3, gl.tpool.size()) >= 1)
        assert.is_true(helper.wait_until(function() return select(3, gl.tpool.size()) == 0 end, 3))
    end))

    it("setsize limits the worker threads", green(function()
        local size0 = gl.tpool.size()
        gl.tpool.setsize(1)
        local ths = {}
        local t0 = gl.clock()
        for i = 1, 3 do
            ths[i] = gl.spawn(gl.tpool.execute, function() os.execute("sleep 0.1") return true end)
        end
        for i = 1, 3 do assert.is_true(ths[i]:wait()) end
        local took = gl.clock() - t0
        assert.is_true(took >= 0.28, ("one thread ran 3 x 0.1 s jobs in %.2f s"):format(took))
        local _, alive = gl.tpool.size()
        assert.are.equal(1, alive)
        gl.tpool.setsize(size0)
        assert.are.equal(size0, (gl.tpool.size()))
        assert.has_error(function() gl.tpool.setsize(0) end)
    end))
end)

describe("GL_THREADPOOL_SIZE", function()
    it("sets the default size", function()
        local proc = require "proc"
        local _, out = proc.run("GL_THREADPOOL_SIZE=3 " .. proc.GL .. " -e 'print(gl.tpool.size())'")
        assert.matches("^3", out)
        _, out = proc.run("env -u GL_THREADPOOL_SIZE " .. proc.GL .. " -e 'print(gl.tpool.size())'")
        assert.matches("^20", out)
    end)
end)
