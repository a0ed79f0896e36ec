-- gl.Semaphore and gl.BoundedSemaphore: counters that green threads wait on in
-- first-come, first-served order. A release hands the unit straight to the oldest waiter.
local core = require "gl.core"

local Semaphore = {}
Semaphore.__name = "gl.Semaphore"
Semaphore.__index = function(self, k)
    if k == "balance" then return self.counter - #self._waiters end
    return Semaphore[k]
end

local function new(n, bound)
    n = n == nil and 1 or n
    if math.type(n) ~= "integer" or n < 0 then
        error("Semaphore: the initial value must be a non-negative integer", 3)
    end
    return setmetatable({ counter = n, _waiters = core.waitq(), _bound = bound and n }, Semaphore)
end

function Semaphore:locked()
    return self.counter <= 0
end

function Semaphore:acquire(blocking, timeout)
    if self.counter > 0 and #self._waiters == 0 then
        self.counter = self.counter - 1
        return true
    end
    if blocking == false then return false end
    return (self._waiters:park("Semaphore:acquire", timeout))
end

function Semaphore:release()
    if self._waiters:wake_one(true) then return true end
    if self._bound and self.counter >= self._bound then
        error("BoundedSemaphore: released more often than acquired", 2)
    end
    self.counter = self.counter + 1
    return true
end

local Hold = {
    __close = function(h)
        if not h.released then
            h.released = true
            h.sem:release()
        end
    end,
}
Hold.__index = { release = Hold.__close }

function Semaphore:hold(blocking, timeout)
    if not self:acquire(blocking, timeout) then return nil end
    return setmetatable({ sem = self }, Hold)
end

return {
    Semaphore = function(n) return new(n, false) end,
    BoundedSemaphore = function(n) return new(n, true) end,
}
