-- ngx.semaphore (lua-resty-core's API) on gl.Semaphore: new(n), post(n), wait(timeout)
-- with the timeout in seconds as OpenResty has it (0 = do not wait), count().
local gl = require "gl"

local semaphore = { version = "gl" }
local mt = { __name = "ngx.semaphore" }
mt.__index = mt

function semaphore.new(n)
    n = n or 0
    if math.type(n) ~= "integer" or n < 0 then
        error("bad argument #1 to 'new' (non-negative integer expected)", 2)
    end
    return setmetatable({ sem = gl.Semaphore(n) }, mt)
end

-- sema:wait(timeout) -> true | nil, "timeout"
function mt:wait(timeout)
    if type(timeout) ~= "number" or timeout < 0 then
        error("bad argument #1 to 'wait' (the timeout argument must be a number not less than 0)", 2)
    end
    local ok
    if timeout == 0 then ok = self.sem:acquire(false) else ok = self.sem:acquire(true, timeout) end
    if ok then return true end
    return nil, "timeout"
end

-- sema:post(n) -> true: release n units (waking up to n waiters)
function mt:post(n)
    n = n or 1
    if math.type(n) ~= "integer" or n < 1 then
        error("bad argument #1 to 'post' (positive integer expected)", 2)
    end
    for _ = 1, n do self.sem:release() end
    return true
end

-- sema:count() -> free units, or minus the number of waiters
function mt:count() return self.sem.balance end

return semaphore
