-- gl.pools.Pool: a bounded pool of reusable items (connections, say), created on demand.
local core = require "gl.core"

local Pool = {}
local RETRY = {} -- handed to a waiter by discard: try get again
Pool.__index = Pool
Pool.__name = "gl.pools.Pool"

local function new(opts)
    opts = opts or {}
    local create = opts.create
    if type(create) ~= "function" then error("pools.Pool: create must be a function", 2) end
    local p = setmetatable({
        create = create,
        min_size = opts.min_size or 0,
        max_size = opts.max_size or 4,
        current_size = 0,
        _free = {},
        _waiters = core.waitq(),
    }, Pool)
    if p.min_size > p.max_size then error("pools.Pool: min_size exceeds max_size", 2) end
    for _ = 1, p.min_size do
        p.current_size = p.current_size + 1
        p._free[#p._free + 1] = create()
    end
    return p
end

function Pool:get()
    local free = self._free
    if #free > 0 then return table.remove(free, 1) end
    if self.current_size < self.max_size then
        self.current_size = self.current_size + 1
        local ok, item = pcall(self.create)
        if not ok then
            self.current_size = self.current_size - 1
            error(item, 0)
        end
        return item
    end
    local _, item = self._waiters:park("Pool:get")
    if item == RETRY then return self:get() end
    return item
end

function Pool:put(item)
    if self._waiters:wake_one(item) then return end
    self._free[#self._free + 1] = item
end

-- Drops an item taken with get (broken, say) instead of putting it back: its place is
-- free again, and a thread waiting in get makes a new one.
function Pool:discard(_)
    self.current_size = self.current_size - 1
    self._waiters:wake_one(RETRY)
end

function Pool:free()
    return #self._free + self.max_size - self.current_size
end

function Pool:waiting()
    return #self._waiters
end

local Handle = {
    __close = function(h)
        if h.pool then
            local pool = h.pool
            h.pool = nil
            pool:put(h.value)
        end
    end,
}
Handle.__index = Handle

function Pool:item()
    return setmetatable({ value = self:get(), pool = self }, Handle)
end

return { Pool = new }
