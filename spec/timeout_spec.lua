-- gl.Timeout, gl.with_timeout, gl.is_timeout (API.md section 3).
local gl = require "gl"
local helper = require "helper"
local green = helper.green

describe("gl.Timeout", function()
    it("raises itself at the blocking point by default", green(function()
        local t = gl.Timeout(0.01)
        assert.is_true(t.pending)
        local err = helper.raises(gl.sleep, 1)
        assert.are.equal(t, err)
        assert.is_true(gl.is_timeout(err))
        assert.is_false(t.pending)
        assert.matches("gl.Timeout", tostring(t))
    end))

    it("raises a custom string error as is, without a position", green(function()
        local _ <close> = gl.Timeout(0.01, "too slow")
        local q = gl.Queue()
        local err = helper.raises(q.get, q)
        assert.are.equal("too slow", err)
    end))

    it("raises a custom table error as is", green(function()
        local e = { reason = "x" }
        local _ <close> = gl.Timeout(0.01, e)
        assert.are.equal(e, helper.raises(gl.sleep, 1))
    end))

    it("does not fire after cancel", green(function()
        local t = gl.Timeout(0.01)
        t:cancel()
        assert.is_false(t.pending)
        gl.sleep(0.03) -- would have raised
        t:cancel()     -- twice is harmless
    end))

    it("treats math.huge as never, for Timeout and sleep alike", green(function()
        local t <close> = gl.Timeout(math.huge)
        assert.is_true(t.pending)
        local sleeper = gl.spawn(gl.sleep, math.huge)
        gl.sleep(0.02) -- neither may fire at once (infinity once became an instant)
        assert.are.equal("suspended", sleeper:status())
        sleeper:kill()
        assert.is_true(t.pending)
    end))

    it("never fires with sec == nil", green(function()
        local t <close> = gl.Timeout(nil)
        assert.is_false(t.pending)
        gl.sleep(0.01)
    end))

    it("is cancelled when a <close> variable goes out of scope", green(function()
        local t
        do
            local tt <close> = gl.Timeout(0.01)
            t = tt
            assert.is_true(t.pending)
        end
        assert.is_false(t.pending)
        gl.sleep(0.03)
    end))

    it("is cancelled by <close> when the block raises", green(function()
        local t
        local ok = pcall(function()
            local tt <close> = gl.Timeout(0.01)
            t = tt
            error("x")
        end)
        assert.is_false(ok)
        assert.is_false(t.pending)
        gl.sleep(0.03)
    end))

    it("fires at the next blocking point when the thread was running", green(function()
        local t <close> = gl.Timeout(0.005)
        local t0 = gl.clock()
        while gl.clock() - t0 < 0.02 do end -- busy: the Timeout expires meanwhile
        assert.is_true(t.pending) -- the hub has not run yet
        assert.are.equal(t, helper.raises(gl.sleep, 0.001))
    end))

    -- Eventlet's hub fires due timers before it resumes yielders: a deadline that passed
    -- during busy work is raised by the next sleep(0), alone or among other runners.
    local function busy(sec)
        local t0 = gl.clock()
        while gl.clock() - t0 < sec do end
    end

    it("fires at sleep(0) after busy work past its deadline", green(function()
        local t <close> = gl.Timeout(0.05)
        busy(0.1)
        assert.are.equal(t, helper.raises(gl.sleep, 0))
    end))

    it("fires at sleep(0) after busy work while other threads yield too", green(function()
        local stop = false
        local spinner = gl.spawn(function()
            while not stop do gl.sleep(0) end
        end)
        gl.sleep(0)
        local t <close> = gl.Timeout(0.05)
        busy(0.1)
        local err = helper.raises(gl.sleep, 0)
        stop = true
        spinner:wait()
        assert.are.equal(t, err)
    end))

    it("fires at every blocking point reached after its deadline", green(function()
        local q, ev = gl.Queue(), gl.Event()
        local srv = assert(gl.listen("127.0.0.1", 0))
        local accepted = gl.spawn(srv.accept, srv)
        local a = assert(gl.connect("127.0.0.1", select(2, srv:getsockname())))
        local b = accepted:wait()
        srv:close()
        for _, block in ipairs({
            function() q:get() end,
            function() ev:wait() end,
            function() a:recv(1) end,
            function()
                local sleeper = gl.spawn(gl.sleep, 1)
                local ok, err = pcall(sleeper.wait, sleeper)
                sleeper:kill()
                if not ok then error(err, 0) end
            end,
        }) do
            local t <close> = gl.Timeout(0.02)
            busy(0.04)
            assert.are.equal(t, helper.raises(block))
        end
        a:close()
        b:close()
    end))

    it("reaches a thread that only ever calls sleep(0)", green(function()
        local t <close> = gl.Timeout(0.005)
        local n = 0
        local err = helper.raises(function()
            while true do
                n = n + 1
                gl.sleep(0)
            end
        end)
        assert.are.equal(t, err)
        assert.is_true(n > 1)
    end))

    it("nested: the inner one fires first and is told apart from the outer", green(function()
        local outer <close> = gl.Timeout(0.2)
        local inner = gl.Timeout(0.01)
        local err = helper.raises(gl.sleep, 1)
        assert.are.equal(inner, err)
        assert.is_true(outer.pending)
        inner:cancel()
    end))

    it("nested: the outer one fires through an inner one's block", green(function()
        local outer <close> = gl.Timeout(0.01)
        local err = helper.raises(function()
            local inner <close> = gl.Timeout(1)
            gl.sleep(1)
        end)
        assert.are.equal(outer, err)
    end))

    it("belongs to the thread that created it", green(function()
        local t = gl.Timeout(0.01)
        local other = gl.spawn(function() gl.sleep(0.03); return "untouched" end)
        assert.are.equal(t, helper.raises(gl.sleep, 1))
        assert.are.equal("untouched", other:wait())
    end))

    it("fires through GreenThread:wait and Event:wait", green(function()
        local ev = gl.Event()
        local gt = gl.spawn(function() ev:wait() end)
        do
            local t <close> = gl.Timeout(0.01)
            assert.are.equal(t, helper.raises(gt.wait, gt))
        end
        ev:send()
        gt:wait()
    end))

    it("a thread woken with a queue item keeps it when a Timeout fires meanwhile", green(function()
        local q = gl.Queue()
        local got, err
        local getter = gl.spawn(function()
            local t <close> = gl.Timeout(0.01)
            got = q:get()
            local ok, e = pcall(gl.sleep, 0.001) -- the Timeout surfaces here
            err = e
            assert(not ok, "the Timeout was lost")
        end)
        local putter = gl.spawn(function() gl.sleep(0.005); q:put("item") end)
        gl.sleep(0)
        assert.are.equal(1, q:getting())
        -- both deadlines pass before the hub runs again: in the same pass the putter hands
        -- the item over (the getter is READY) and then the Timeout fires
        local t0 = gl.clock()
        while gl.clock() - t0 < 0.03 do end
        getter:wait()
        putter:wait()
        assert.are.equal("item", got)
        assert.is_true(gl.is_timeout(err))
        assert.are.equal(0, q:qsize())
    end))

    it("a thread woken with a queue item keeps it when killed before it runs", green(function()
        local q = gl.Queue()
        local got
        local getter = gl.spawn(function()
            got = q:get()
            gl.sleep(1) -- the kill surfaces here
            got = "not killed"
        end)
        gl.sleep(0)
        q:put("item")
        assert.are.equal("suspended", getter:status()) -- READY, holding the item
        getter:kill()
        assert.is_true(getter:dead())
        assert.are.equal("item", got)
        assert.are.equal(gl.GreenletExit, helper.raises(getter.wait, getter))
    end))

end)

describe("gl.with_timeout", function()
    it("returns the function's results", green(function()
        local a, b, c = gl.with_timeout(1, function(x, y) gl.sleep(0.001); return x, nil, y end, 1, 2)
        assert.are.equal(1, a); assert.is_nil(b); assert.are.equal(2, c)
    end))

    it("raises the timeout when the function takes too long", green(function()
        local err = helper.raises(gl.with_timeout, 0.01, gl.sleep, 1)
        assert.is_true(gl.is_timeout(err))
    end))

    it("cancels its timer when the function raises", green(function()
        local err = helper.raises(gl.with_timeout, 0.01, error, "inner", 0)
        assert.are.equal("inner", err)
        gl.sleep(0.03)
    end))
end)

describe("gl.is_timeout", function()
    it("is true only for Timeout objects", green(function()
        local t = gl.Timeout(nil)
        assert.is_true(gl.is_timeout(t))
        assert.is_false(gl.is_timeout("timeout"))
        assert.is_false(gl.is_timeout(nil))
        assert.is_false(gl.is_timeout({}))
        assert.is_false(gl.is_timeout(gl.GreenletExit))
    end))
end)
