-- Test helper: runs a spec body as a green thread under a deadline, fails with that
-- thread's traceback, and checks afterwards that the body left nothing behind (no live
-- green thread but the runner, no libevent event still added). Specs use it as
--   local helper = require "helper"
--   it("does a thing", helper.green(function() ... end [, timeout]))
package.path = "spec/?.lua;" .. package.path

local gl = require "gl"
local core = require "gl.core"

local M = {}

M.DEFAULT_TIMEOUT = 5

-- Live green threads other than the running one, as gl.debug.threads() lists them.
local function others()
    local me = gl.getcurrent()
    local out = {}
    for _, t in ipairs(gl.debug.threads()) do
        if not me or t.id ~= me.id then out[#out + 1] = t end
    end
    return out
end
M.others = others

local function describe_threads(list)
    local lines = {}
    for _, t in ipairs(list) do
        lines[#lines + 1] = ("  thread %d (%s)\n%s"):format(t.id, t.status, t.traceback)
    end
    return table.concat(lines, "\n")
end

-- Kills every thread in list (by id) and lets them finish.
local function kill_all(list)
    local by_id = {}
    for _, gt in ipairs(core.threads()) do by_id[gt.id] = gt end
    for _, t in ipairs(list) do
        local gt = by_id[t.id]
        if gt and not gt:dead() then pcall(gl.kill, gt) end
    end
end

-- Lets threads that have ended leave the run queue.
local function settle()
    for _ = 1, 3 do gl.sleep(0) end
end

-- Runs fn(...) in its own green thread; waits at most `timeout` seconds for it
-- (false: no deadline, for specs that need the hub to go idle, deadlock detection).
-- Returns fn's results or raises: fn's error with its traceback, or a timeout naming
-- where the thread was stuck. Then checks that nothing was left behind.
function M.run(fn, timeout, ...)
    if timeout == nil then timeout = M.DEFAULT_TIMEOUT end
    local before_waits = core.stats().waits
    local failure, tb
    local gt = gl.spawn(function(...)
        return xpcall(fn, function(e)
            failure = e
            tb = debug.traceback(tostring(e), 2)
            return e
        end, ...)
    end, ...)
    local ok, res = pcall(function()
        if timeout == false then return table.pack(gt:wait()) end
        return table.pack(gl.with_timeout(timeout, gt.wait, gt))
    end)
    if not ok then
        if gl.is_timeout(res) then
            local stuck = describe_threads(others())
            kill_all(others())
            settle()
            error(("spec did not finish within %g s; live threads:\n%s"):format(timeout, stuck), 0)
        end
        error(res, 0)
    end
    if not res[1] then
        kill_all(others())
        settle()
        -- busted's assertion failures are tables: keep them so busted prints them well
        if type(failure) == "table" then error(failure, 0) end
        error(tb or tostring(failure), 0)
    end
    settle()
    local left = others()
    if #left > 0 then
        local msg = describe_threads(left)
        kill_all(left)
        settle()
        error("spec left green threads behind:\n" .. msg, 0)
    end
    local after_waits = core.stats().waits
    if after_waits ~= before_waits then
        error(("spec left %d wait(s) armed (timers, Timeouts or fd waits)"):format(
            after_waits - before_waits), 0)
    end
    return table.unpack(res, 2, res.n)
end

-- A function for busted's `it` that runs body through M.run.
function M.green(body, timeout)
    return function() M.run(body, timeout) end
end

-- Polls cond() every `step` seconds until it is true or `within` seconds pass.
function M.wait_until(cond, within, step)
    local deadline = gl.clock() + (within or 2)
    while not cond() do
        if gl.clock() > deadline then return false end
        gl.sleep(step or 0.001)
    end
    return true
end

-- Runs fn and returns the error it raises (fails when it does not raise).
function M.raises(fn, ...)
    local ok, err = pcall(fn, ...)
    assert(not ok, "expected an error, got none")
    return err
end

package.loaded.helper = M
return M
