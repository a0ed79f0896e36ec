-- gl.GreenPool: at most `size` green threads at once; gl.GreenPile: results in spawn order.
local core = require "gl.core"
local Semaphore = require("gl.semaphore").Semaphore
local Queue = require("gl.queue").Queue

local GreenPool = {}
GreenPool.__index = GreenPool
GreenPool.__name = "gl.GreenPool"

local function new_pool(size)
    size = size == nil and 1000 or size
    if math.type(size) ~= "integer" or size < 0 then
        error("GreenPool: size must be a non-negative integer", 2)
    end
    local pool = setmetatable({ size = size, _running = 0, _idle = core.waitq() }, GreenPool)
    pool._sem = Semaphore(size)
    pool._done = function()
        pool._running = pool._running - 1
        pool._sem:release()
        if pool._running == 0 then pool._idle:wake_all() end
    end
    return pool
end

function GreenPool:spawn(fn, ...)
    self._sem:acquire()
    self._running = self._running + 1
    local gt = core.spawn(fn, ...)
    gt:link(self._done)
    return gt
end

function GreenPool:spawn_n(fn, ...)
    self:spawn(fn, ...)
end

function GreenPool:waitall()
    while self._running > 0 do
        self._idle:park("GreenPool:waitall")
    end
end

function GreenPool:running()
    return self._running
end

function GreenPool:free()
    return self._sem.counter
end

function GreenPool:waiting()
    return #self._sem._waiters
end

function GreenPool:resize(n)
    if math.type(n) ~= "integer" or n < 0 then
        error("GreenPool:resize: size must be a non-negative integer", 2)
    end
    local delta = n - self.size
    self.size = n
    local sem = self._sem
    for _ = 1, delta do sem:release() end
    sem.counter = sem.counter + math.min(delta, 0) -- may go negative until threads end
end

-- Feeds arg tuples into the pool from a helper thread and yields results in input order.
local function ordered_results(pool, nargs, args_of)
    local started = Queue()
    local feeder = core.spawn(function()
        for i = 1, nargs do
            started:put(pool:spawn(function() return args_of(i)() end))
        end
    end)
    local i, finished = 0, false
    return function()
        if finished or i >= nargs then
            finished = true
            return nil
        end
        i = i + 1
        local gt = started:get()
        -- gt:wait re-raises the thread's error; catch it to end the iteration first
        local r = table.pack(pcall(gt.wait, gt))
        if not r[1] then
            finished = true
            feeder:kill()
            error(r[2], 0)
        end
        return table.unpack(r, 2, r.n)
    end
end

function GreenPool:imap(fn, ...)
    local lists = table.pack(...)
    local n = math.huge
    for k = 1, lists.n do n = math.min(n, #lists[k]) end
    if lists.n == 0 then n = 0 end
    return ordered_results(self, n, function(i)
        local args = {}
        for k = 1, lists.n do args[k] = lists[k][i] end
        return function() return fn(table.unpack(args, 1, lists.n)) end
    end)
end

function GreenPool:starmap(fn, arg_tables)
    return ordered_results(self, #arg_tables, function(i)
        local a = arg_tables[i]
        return function() return fn(table.unpack(a, 1, a.n or #a)) end
    end)
end

local GreenPile = {}
GreenPile.__index = GreenPile
GreenPile.__name = "gl.GreenPile"

local function new_pile(pool_or_size)
    local pool = pool_or_size
    if getmetatable(pool) ~= GreenPool then pool = new_pool(pool_or_size) end
    return setmetatable({ pool = pool, _threads = {}, _next = 1 }, GreenPile)
end

function GreenPile:spawn(fn, ...)
    local gt = self.pool:spawn(fn, ...)
    self._threads[#self._threads + 1] = gt
    return gt
end

function GreenPile:results()
    return function()
        local gt = self._threads[self._next]
        if not gt then return nil end
        self._threads[self._next] = nil
        self._next = self._next + 1
        return gt:wait()
    end
end

return { GreenPool = new_pool, GreenPile = new_pile }
