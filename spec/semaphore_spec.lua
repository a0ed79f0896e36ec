-- gl.Semaphore and gl.BoundedSemaphore (API.md section 4).
local gl = require "gl"
local helper = require "helper"
local green = helper.green

describe("gl.Semaphore", function()
    it("counts down and up; locked() when none is left", green(function()
        local s = gl.Semaphore(2)
        assert.are.equal(2, s.balance)
        assert.is_false(s:locked())
        assert.is_true(s:acquire())
        assert.is_true(s:acquire())
        assert.is_true(s:locked())
        assert.are.equal(0, s.balance)
        s:release()
        assert.are.equal(1, s.balance)
        s:release()
    end))

    it("defaults to 1 and rejects bad values", green(function()
        local s = gl.Semaphore()
        assert.are.equal(1, s.balance)
        assert.has_error(function() gl.Semaphore(-1) end)
        assert.has_error(function() gl.Semaphore(1.5) end)
    end))

    it("serves waiters first come, first served", green(function()
        local s = gl.Semaphore(0)
        local order = {}
        local gts = {}
        for i = 1, 5 do
            gts[i] = gl.spawn(function() s:acquire(); order[#order + 1] = i end)
        end
        gl.sleep(0)
        assert.are.equal(-5, s.balance) -- negative when threads wait
        for _ = 1, 5 do s:release() end
        for i = 1, 5 do gts[i]:wait() end
        assert.are.same({ 1, 2, 3, 4, 5 }, order)
        assert.are.equal(0, s.balance)
    end))

    it("a release goes to a waiter, not to a newcomer that did not wait", green(function()
        local s = gl.Semaphore(0)
        local got = {}
        local w = gl.spawn(function() s:acquire(); got[#got + 1] = "waiter" end)
        gl.sleep(0)
        s:release()
        -- the waiter has not run yet: a non-blocking acquire must not steal its unit
        assert.is_false(s:acquire(false))
        w:wait()
        assert.are.same({ "waiter" }, got)
    end))

    it("non-blocking acquire returns false at once", green(function()
        local s = gl.Semaphore(0)
        assert.is_false(s:acquire(false))
        assert.are.equal(0, s.balance)
    end))

    it("acquire with a timeout returns false on expiry and leaves no waiter", green(function()
        local s = gl.Semaphore(0)
        local t0 = gl.clock()
        assert.is_false(s:acquire(true, 0.02))
        assert.is_true(gl.clock() - t0 >= 0.018)
        assert.are.equal(0, s.balance)
        s:release()
        assert.is_true(s:acquire(true, 0.02))
    end))

    it("hold() returns a to-be-closed handle that releases", green(function()
        local s = gl.Semaphore(1)
        do
            local h <close> = s:hold()
            assert.is_true(s:locked())
        end
        assert.is_false(s:locked())
        local ok = pcall(function()
            local h <close> = s:hold()
            error("inside")
        end)
        assert.is_false(ok)
        assert.are.equal(1, s.balance)
        local h = s:hold()
        h:release()
        h:release() -- idempotent
        assert.are.equal(1, s.balance)
    end))

    it("hold(false) on a locked semaphore returns nil", green(function()
        local s = gl.Semaphore(0)
        assert.is_nil(s:hold(false))
    end))

    it("a killed waiter gives up its place", green(function()
        local s = gl.Semaphore(0)
        local a = gl.spawn(function() s:acquire() end)
        local b = gl.spawn(function() s:acquire(); return "b" end)
        gl.sleep(0)
        a:kill()
        assert.are.equal(-1, s.balance)
        s:release()
        assert.are.equal("b", b:wait())
        assert.are.equal(0, s.balance)
    end))

    it("acts as a mutex", green(function()
        local s = gl.Semaphore(1)
        local inside, max = 0, 0
        local gts = {}
        for i = 1, 10 do
            gts[i] = gl.spawn(function()
                local _ <close> = s:hold()
                inside = inside + 1
                max = math.max(max, inside)
                gl.sleep(0.001)
                inside = inside - 1
            end)
        end
        for i = 1, 10 do gts[i]:wait() end
        assert.are.equal(1, max)
    end))
end)

describe("gl.BoundedSemaphore", function()
    it("raises on a release beyond its start value", green(function()
        local s = gl.BoundedSemaphore(2)
        assert.has_error(function() s:release() end)
        s:acquire()
        s:release()
        assert.has_error(function() s:release() end)
        assert.are.equal(2, s.balance)
    end))

    it("release hands a unit to a waiter even at the bound", green(function()
        local s = gl.BoundedSemaphore(1)
        s:acquire()
        local w = gl.spawn(function() return s:acquire() end)
        gl.sleep(0)
        s:release()
        assert.is_true(w:wait())
        s:release()
        assert.has_error(function() s:release() end)
    end))
end)
