-- gl.Queue, gl.LightQueue, gl.PriorityQueue, gl.LifoQueue. A put to a waiting getter
-- hands the item over directly; a full queue parks putters, who re-check on wake-up.
-- maxsize nil = unbounded, 0 = a channel: a put returns once a getter has the item (a
-- parked putter holds it as its offer, which the getter takes).
local core = require "gl.core"

local function sentinel(name)
    return setmetatable({}, { __tostring = function() return name end, __name = name })
end

local Full = sentinel("gl.queue.Full")
local Empty = sentinel("gl.queue.Empty")

-- storage strategies: FIFO ring, LIFO stack, binary heap
local fifo = {
    init = function(q) q._head, q._tail = 1, 0 end,
    size = function(q) return q._tail - q._head + 1 end,
    push = function(q, v) q._tail = q._tail + 1; q._items[q._tail] = v end,
    pop = function(q)
        local h = q._head
        local v = q._items[h]
        q._items[h] = nil
        q._head = h + 1
        if q._head > q._tail then q._head, q._tail = 1, 0 end
        return v
    end,
}

local lifo = {
    init = function(q) q._n = 0 end,
    size = function(q) return q._n end,
    push = function(q, v) q._n = q._n + 1; q._items[q._n] = v end,
    pop = function(q)
        local v = q._items[q._n]
        q._items[q._n] = nil
        q._n = q._n - 1
        return v
    end,
}

local heap = {
    init = function(q) q._n = 0 end,
    size = function(q) return q._n end,
    push = function(q, v)
        local items, before = q._items, q._before
        local n = q._n + 1
        q._n = n
        items[n] = v
        while n > 1 do
            local parent = n // 2
            if not before(items[n], items[parent]) then break end
            items[n], items[parent] = items[parent], items[n]
            n = parent
        end
    end,
    pop = function(q)
        local items, before, n = q._items, q._before, q._n
        local top = items[1]
        items[1] = items[n]
        items[n] = nil
        n = n - 1
        q._n = n
        local i = 1
        while true do
            local l, r, best = 2 * i, 2 * i + 1, i
            if l <= n and before(items[l], items[best]) then best = l end
            if r <= n and before(items[r], items[best]) then best = r end
            if best == i then break end
            items[i], items[best] = items[best], items[i]
            i = best
        end
        return top
    end,
}

local Queue = {}
Queue.__index = Queue
Queue.__name = "gl.Queue"

local function new(mt, store, maxsize, cmp)
    if maxsize ~= nil and (math.type(maxsize) ~= "integer" or maxsize < 0) then
        error("Queue: maxsize must be nil or a non-negative integer", 3)
    end
    local q = setmetatable({
        maxsize = maxsize,
        _items = {},
        _store = store,
        _getters = core.waitq(),
        _putters = core.waitq(),
        _reserved = 0, -- room promised to putters that were woken but have not run yet
        _unfinished = 0,
        _before = cmp or function(a, b) return a < b end,
    }, mt)
    store.init(q)
    return q
end

function Queue:qsize()
    return self._store.size(self)
end

function Queue:empty()
    if self.maxsize == 0 then return #self._putters == 0 end
    return self._store.size(self) == 0
end

local function has_room(self)
    local max = self.maxsize
    return max == nil or self._store.size(self) + self._reserved < max
end

function Queue:full()
    if self.maxsize == 0 then return #self._getters == 0 end
    return self.maxsize ~= nil and self._store.size(self) >= self.maxsize
end

function Queue:getting()
    return #self._getters
end

function Queue:putting()
    return #self._putters
end

-- wake putters while there is room for them
local function admit_putters(self)
    while #self._putters > 0 and has_room(self) do
        self._reserved = self._reserved + 1
        self._putters:wake_one(true)
    end
end

-- what a channel's getter hands a putter whose item it took, telling it apart from a
-- putter woken because room was made
local TAKEN = sentinel("gl.queue.taken")

function Queue:put(v, block, timeout)
    local reserved = false
    while true do
        if #self._getters > 0 then
            self._unfinished = self._unfinished + 1
            self._getters:wake_one(v)
            if reserved then
                -- the room kept for us stays free: it goes to the next putter
                self._reserved = self._reserved - 1
                admit_putters(self)
            end
            -- a channel's put returns once the getter has run with the item
            if self.maxsize == 0 and block ~= false then core.yield_behind() end
            return
        end
        if reserved then
            self._reserved = self._reserved - 1
            reserved = false
        end
        if has_room(self) then
            self._unfinished = self._unfinished + 1
            self._store.push(self, v)
            return
        end
        if block == false then error(Full) end
        local woken, how = self._putters:park("Queue:put", timeout, v)
        if not woken then error(Full) end
        if how == TAKEN then return end
        reserved = self.maxsize ~= 0
    end
end

function Queue:put_nowait(v)
    return self:put(v, false)
end

function Queue:get(block, timeout)
    local store = self._store
    if store.size(self) > 0 then
        local v = store.pop(self)
        admit_putters(self)
        return v
    end
    if self.maxsize == 0 and #self._putters > 0 then
        -- a channel: take the first putter's item and let it return
        local _, v = self._putters:take(TAKEN)
        self._unfinished = self._unfinished + 1
        return v
    end
    if block == false then error(Empty) end
    local woken, v = self._getters:park("Queue:get", timeout)
    if not woken then error(Empty) end
    return v
end

function Queue:get_nowait()
    return self:get(false)
end

function Queue:resize(n)
    if n ~= nil and (math.type(n) ~= "integer" or n < 0) then
        error("Queue:resize: size must be nil or a non-negative integer", 2)
    end
    self.maxsize = n
    admit_putters(self)
end

function Queue:task_done()
    if self._unfinished <= 0 then error("Queue:task_done called too many times", 2) end
    self._unfinished = self._unfinished - 1
    if self._unfinished == 0 and self._joiners then
        self._joiners:wake_all()
    end
end

function Queue:join(timeout)
    if self._unfinished == 0 then return true end
    self._joiners = self._joiners or core.waitq()
    return (self._joiners:park("Queue:join", timeout))
end

local function subclass(name)
    local mt = {}
    for k, v in pairs(Queue) do mt[k] = v end
    mt.__index = mt
    mt.__name = name
    return mt
end

local LightQueue = subclass("gl.LightQueue")
LightQueue.task_done, LightQueue.join = nil, nil
local PriorityQueue = subclass("gl.PriorityQueue")
local LifoQueue = subclass("gl.LifoQueue")

return {
    Full = Full,
    Empty = Empty,
    Queue = function(maxsize) return new(Queue, fifo, maxsize) end,
    LightQueue = function(maxsize) return new(LightQueue, fifo, maxsize) end,
    PriorityQueue = function(maxsize, cmp) return new(PriorityQueue, heap, maxsize, cmp) end,
    LifoQueue = function(maxsize) return new(LifoQueue, lifo, maxsize) end,
}
