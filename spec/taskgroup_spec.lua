-- gl.TaskGroup (API.md section 2): structured concurrency, no child outlives its block.
local gl = require "gl"
local helper = require "helper"
local green = helper.green

describe("gl.TaskGroup", function()
    it("waits for every child and returns first results in spawn order", green(function()
        local tg <close> = gl.TaskGroup()
        local order = {}
        for i, delay in ipairs({ 0.03, 0.01, 0.02 }) do
            tg:spawn(function()
                gl.sleep(delay)
                order[#order + 1] = i
                return i * 10, "second result dropped"
            end)
        end
        local results = tg:wait()
        assert.are.same({ 2, 3, 1 }, order)
        assert.are.same({ 10, 20, 30 }, { results[1], results[2], results[3] })
        assert.are.equal(3, results.n)
    end))

    it("keeps nil results in their place", green(function()
        local tg <close> = gl.TaskGroup()
        tg:spawn(function() return nil end)
        tg:spawn(function() return "b" end)
        local results = tg:wait()
        assert.is_nil(results[1])
        assert.are.equal("b", results[2])
        assert.are.equal(2, results.n)
    end))

    it("returns GreenThreads from spawn", green(function()
        local tg <close> = gl.TaskGroup()
        local gt = tg:spawn(function(a, b) return a + b end, 2, 3)
        assert.are.equal(5, gt:wait())
        tg:wait()
    end))

    it("kills the siblings when a child raises and wait re-raises the error", green(function()
        local cleaned = 0
        local err = helper.raises(function()
            local tg <close> = gl.TaskGroup()
            for _ = 1, 3 do
                tg:spawn(function()
                    local _ <close> = setmetatable({}, { __close = function() cleaned = cleaned + 1 end })
                    gl.sleep(10)
                end)
            end
            tg:spawn(function() gl.sleep(0.01); error({ code = 42 }) end)
            tg:wait()
        end)
        assert.are.same({ code = 42 }, err)
        assert.are.equal(3, cleaned) -- every sibling was killed and unwound
    end, 2))

    it("re-raises a child's error when the scope is left without wait", green(function()
        local sibling
        local err = helper.raises(function()
            local tg <close> = gl.TaskGroup()
            sibling = tg:spawn(gl.sleep, 10)
            tg:spawn(function() error("boom", 0) end)
            gl.sleep(0.01)
        end)
        assert.are.equal("boom", err)
        assert.is_true(sibling:dead())
    end, 2))

    it("raises the child's error once: wait raises, the close does not", green(function()
        local tg = gl.TaskGroup()
        tg:spawn(function() error("once", 0) end)
        assert.are.equal("once", helper.raises(tg.wait, tg))
        assert.are.equal("once", helper.raises(tg.wait, tg)) -- wait again: same error
        tg:close() -- already raised: closing is quiet
        assert.matches("closed", helper.raises(tg.spawn, tg, print))
    end))

    it("refuses new children once one has failed", green(function()
        local tg <close> = gl.TaskGroup()
        tg:spawn(function() error("first", 0) end)
        gl.sleep(0)
        assert.matches("failed", helper.raises(tg.spawn, tg, print))
        assert.are.equal("first", helper.raises(tg.wait, tg))
    end))

    local function leave_scope_by(how)
        local children = {}
        local ok, err = pcall(function()
            local tg <close> = gl.TaskGroup()
            for i = 1, 3 do children[i] = tg:spawn(gl.sleep, 10) end
            gl.sleep(0) -- started: each is blocked in its sleep
            children[4] = tg:spawn(gl.sleep, 10) -- not started yet
            how()
        end)
        for _, child in ipairs(children) do assert.is_true(child:dead()) end
        return ok, err
    end

    it("kills unfinished children when the scope returns", green(function()
        assert.is_true((leave_scope_by(function() end)))
    end, 2))

    it("kills unfinished children when the scope raises, and keeps that error", green(function()
        local ok, err = leave_scope_by(function() error("own error", 0) end)
        assert.is_false(ok)
        assert.are.equal("own error", err)
    end, 2))

    it("kills unfinished children when a Timeout leaves the scope", green(function()
        local t
        local ok, err = leave_scope_by(function()
            t = gl.Timeout(0.02)
            gl.sleep(1)
        end)
        assert.is_false(ok)
        assert.are.equal(t, err)
    end, 2))

    it("kills its children when the thread holding the group is killed", green(function()
        local children = {}
        local holder = gl.spawn(function()
            local tg <close> = gl.TaskGroup()
            for i = 1, 3 do children[i] = tg:spawn(gl.sleep, 10) end
            gl.sleep(10)
        end)
        gl.sleep(0.01)
        holder:kill() -- returns once the holder blocks again: in its group's close
        assert.are.equal(gl.GreenletExit, helper.raises(holder.wait, holder))
        for _, child in ipairs(children) do assert.is_true(child:dead()) end
    end, 2))

    it("waits for children that take time to unwind", green(function()
        local unwound = false
        do
            local tg <close> = gl.TaskGroup()
            tg:spawn(function()
                local _ <close> = setmetatable({}, { __close = function()
                    gl.sleep(0.02)
                    unwound = true
                end })
                gl.sleep(10)
            end)
            gl.sleep(0)
        end
        assert.is_true(unwound)
    end, 2))

    it("runs the doc's crawler: one failing fetch stops the others", green(function()
        local fetched, stopped = {}, 0
        local function fetch(url)
            local _ <close> = setmetatable({}, { __close = function() stopped = stopped + 1 end })
            if url == "bad" then gl.sleep(0.01); error("cannot fetch " .. url, 0) end
            gl.sleep(url == "fast" and 0 or 5)
            fetched[#fetched + 1] = url
            return #url
        end
        local err = helper.raises(function()
            local tg <close> = gl.TaskGroup()
            for _, url in ipairs({ "fast", "slow1", "bad", "slow2" }) do tg:spawn(fetch, url) end
            return tg:wait()
        end)
        assert.are.equal("cannot fetch bad", err)
        assert.are.same({ "fast" }, fetched)
        assert.are.equal(4, stopped)
    end, 2))
end)
