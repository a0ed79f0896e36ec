-- gl.GreenPool and gl.GreenPile (API.md section 5).
local gl = require "gl"
local helper = require "helper"
local green = helper.green

describe("gl.GreenPool", function()
    it("never runs more than size threads at once", green(function()
        local pool = gl.GreenPool(3)
        local running, max = 0, 0
        for i = 1, 20 do
            pool:spawn(function()
                running = running + 1
                max = math.max(max, running)
                gl.sleep(0.001 * (i % 3))
                running = running - 1
            end)
            assert.is_true(pool:running() <= 3)
        end
        pool:waitall()
        assert.are.equal(3, max)
        assert.are.equal(0, pool:running())
        assert.are.equal(3, pool:free())
    end))

    it("spawn waits while the pool is full and returns a GreenThread", green(function()
        local pool = gl.GreenPool(1)
        local ev = gl.Event()
        local a = pool:spawn(function() ev:wait(); return "a" end)
        assert.are.equal(0, pool:free())
        assert.are.equal(1, pool:running())
        local spawned_b = false
        local feeder = gl.spawn(function()
            local b = pool:spawn(function() return "b" end)
            spawned_b = true
            return b:wait()
        end)
        gl.sleep(0)
        assert.is_false(spawned_b)
        assert.are.equal(1, pool:waiting())
        ev:send()
        assert.are.equal("a", a:wait())
        assert.are.equal("b", feeder:wait())
        assert.are.equal(0, pool:waiting())
    end))

    it("spawn_n runs the function", green(function()
        local pool = gl.GreenPool(2)
        local n = 0
        for _ = 1, 5 do pool:spawn_n(function() gl.sleep(0); n = n + 1 end) end
        pool:waitall()
        assert.are.equal(5, n)
    end))

    it("waitall returns at once on an idle pool", green(function()
        gl.GreenPool():waitall()
    end))

    it("a failing thread frees its slot", green(function()
        local pool = gl.GreenPool(1)
        local gt = pool:spawn(function() error("x", 0) end)
        assert.are.equal("x", helper.raises(gt.wait, gt))
        pool:waitall()
        assert.are.equal(1, pool:free())
        assert.are.equal(0, pool:running())
    end))

    it("imap yields results in input order whatever the finishing order", green(function()
        local pool = gl.GreenPool(4)
        local delays = { 0.02, 0.001, 0.01, 0, 0.005 }
        local finished = {}
        local out = {}
        for r in pool:imap(function(i, d)
            gl.sleep(d)
            finished[#finished + 1] = i
            return i * 10
        end, { 1, 2, 3, 4, 5 }, delays) do
            out[#out + 1] = r
        end
        assert.are.same({ 10, 20, 30, 40, 50 }, out)
        assert.are_not.same({ 1, 2, 3, 4, 5 }, finished) -- they did finish out of order
        pool:waitall()
    end))

    it("imap stops at the shortest list and handles empty input", green(function()
        local pool = gl.GreenPool(2)
        local out = {}
        for r in pool:imap(function(a, b) return a + b end, { 1, 2, 3 }, { 10, 20 }) do
            out[#out + 1] = r
        end
        assert.are.same({ 11, 22 }, out)
        local n = 0
        for _ in pool:imap(function() end, {}) do n = n + 1 end
        assert.are.equal(0, n)
        pool:waitall()
    end))

    it("imap raises an error where its result would be and ends there", green(function()
        local pool = gl.GreenPool(2)
        local it = pool:imap(function(i)
            if i == 3 then error({ bad = i }) end
            return i
        end, { 1, 2, 3, 4, 5 })
        assert.are.equal(1, it())
        assert.are.equal(2, it())
        local err = helper.raises(it)
        assert.are.same({ bad = 3 }, err)
        assert.is_nil(it())
        pool:waitall()
    end))

    it("starmap unpacks argument tables", green(function()
        local pool = gl.GreenPool(2)
        local out = {}
        for r in pool:starmap(function(a, b) gl.sleep(0.001 * a); return a .. b end,
                              { { 3, "x" }, { 1, "y" }, { 2, "z" } }) do
            out[#out + 1] = r
        end
        assert.are.same({ "3x", "1y", "2z" }, out)
        pool:waitall()
    end))

    it("resize changes the limit", green(function()
        local pool = gl.GreenPool(1)
        local ev = gl.Event()
        local running, max = 0, 0
        local function job()
            running = running + 1
            max = math.max(max, running)
            ev:wait()
            running = running - 1
        end
        pool:spawn(job)
        pool:resize(3)
        assert.are.equal(3, pool.size)
        assert.are.equal(2, pool:free())
        pool:spawn(job); pool:spawn(job)
        assert.are.equal(0, pool:free())
        gl.sleep(0)
        assert.are.equal(3, max)
        pool:resize(1)
        ev:send()
        pool:waitall()
        assert.are.equal(1, pool:free())
        assert.has_error(function() pool:resize(-1) end)
    end))

    it("free, running and waiting report the pool's state", green(function()
        local pool = gl.GreenPool(2)
        assert.are.equal(2, pool:free())
        assert.are.equal(0, pool:running())
        assert.are.equal(0, pool:waiting())
        local ev = gl.Event()
        pool:spawn(ev.wait, ev)
        assert.are.equal(1, pool:free())
        assert.are.equal(1, pool:running())
        ev:send()
        pool:waitall()
    end))
end)

describe("gl.GreenPile", function()
    it("gives results in spawn order", green(function()
        local pile = gl.GreenPile(5)
        for i, d in ipairs({ 0.01, 0, 0.005 }) do
            pile:spawn(function() gl.sleep(d); return i end)
        end
        local out = {}
        for r in pile:results() do out[#out + 1] = r end
        assert.are.same({ 1, 2, 3 }, out)
    end))

    it("uses a given pool", green(function()
        local pool = gl.GreenPool(1)
        local pile = gl.GreenPile(pool)
        local running, max = 0, 0
        for i = 1, 4 do
            pile:spawn(function()
                running = running + 1; max = math.max(max, running)
                gl.sleep(0.001)
                running = running - 1
                return i
            end)
        end
        local out = {}
        for r in pile:results() do out[#out + 1] = r end
        assert.are.same({ 1, 2, 3, 4 }, out)
        assert.are.equal(1, max)
    end))

    it("raises a thread's error from results()", green(function()
        local pile = gl.GreenPile()
        pile:spawn(function() return 1 end)
        pile:spawn(function() error("pile", 0) end)
        local it = pile:results()
        assert.are.equal(1, it())
        assert.are.equal("pile", helper.raises(it))
    end))
end)
