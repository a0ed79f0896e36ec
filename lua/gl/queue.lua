-- gl.Queue, gl.LightQueue, gl.PriorityQueue, gl.LifoQueue. The queues themselves are C
-- (src/queue.c): a queue is a table {core, maxsize = n} whose methods take it as self.
-- maxsize nil = unbounded, 0 = a channel: a put returns once a getter has the item.
local core = require "gl.core"

local function class(name, omit)
    local mt = { __name = name }
    for k, f in pairs(core.queue_methods) do
        if not omit or not omit[k] then mt[k] = f end
    end
    mt.__index = mt
    return mt
end

local Queue = class("gl.Queue")
local LightQueue = class("gl.LightQueue", { task_done = true, join = true })
local PriorityQueue = class("gl.PriorityQueue")
local LifoQueue = class("gl.LifoQueue")

local function new(mt, kind, maxsize, cmp)
    if maxsize ~= nil and (math.type(maxsize) ~= "integer" or maxsize < 0) then
        error("Queue: maxsize must be nil or a non-negative integer", 3)
    end
    if cmp ~= nil and type(cmp) ~= "function" then
        error("PriorityQueue: cmp must be a function", 3)
    end
    return setmetatable({ core.queue(kind, maxsize, cmp), maxsize = maxsize }, mt)
end

return {
    Full = core.queue_Full,
    Empty = core.queue_Empty,
    Queue = function(maxsize) return new(Queue, "fifo", maxsize) end,
    LightQueue = function(maxsize) return new(LightQueue, "fifo", maxsize) end,
    PriorityQueue = function(maxsize, cmp) return new(PriorityQueue, "heap", maxsize, cmp) end,
    LifoQueue = function(maxsize) return new(LifoQueue, "lifo", maxsize) end,
}
