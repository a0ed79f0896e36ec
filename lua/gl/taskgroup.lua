-- gl.TaskGroup: structured concurrency. No child outlives the block that holds the group:
--   local tg <close> = gl.TaskGroup()
--   tg:spawn(fetch, url1); tg:spawn(fetch, url2)
--   local first_results = tg:wait()
-- The first child error kills its siblings and is re-raised by wait (or by the close).
local core = require "gl.core"

local GreenletExit = core.GreenletExit
local pack = table.pack

local TaskGroup = {}
TaskGroup.__index = TaskGroup
TaskGroup.__name = "gl.TaskGroup"

local function kill_all(tg)
    local me = core.getcurrent()
    local my_id = me and me.id
    for _, child in ipairs(tg._children) do
        if child.id ~= my_id and not child:dead() then child:kill() end
    end
end

-- Runs in the child: its error belongs to the group, which re-raises it in the parent, so
-- the child ends quietly; a kill (GreenletExit) stays a kill.
local function run_child(tg, index, fn, ...)
    local r = pack(pcall(fn, ...))
    if r[1] then
        tg._results[index] = r[2]
        return table.unpack(r, 2, r.n)
    end
    local err = r[2]
    if err == GreenletExit then error(err, 0) end
    if not tg._failed then
        tg._failed, tg._error = true, err
        kill_all(tg)
    end
end

local function new()
    local tg = setmetatable({ _children = {}, _results = {}, _running = 0, _failed = false,
        _raised = false, _closed = false, _idle = core.waitq() }, TaskGroup)
    tg._on_end = function()
        tg._running = tg._running - 1
        if tg._running == 0 then tg._idle:wake_all() end
    end
    return tg
end

function TaskGroup:spawn(fn, ...)
    if self._closed then error("TaskGroup:spawn: the group is closed", 2) end
    if self._failed then error("TaskGroup:spawn: a child of the group has failed", 2) end
    local children = self._children
    local index = #children + 1
    local child = core.spawn(run_child, self, index, fn, ...)
    children[index] = child
    self._running = self._running + 1
    child:link(self._on_end)
    return child
end

local function settle(tg)
    while tg._running > 0 do tg._idle:park("TaskGroup:wait") end
end

local function raise_failure(tg)
    tg._raised = true
    error(tg._error, 0)
end

-- tg:wait() -> the list of each child's first result, in spawn order (with .n)
function TaskGroup:wait()
    settle(self)
    if self._failed then raise_failure(self) end
    local results = self._results
    results.n = #self._children
    return results
end

-- Leaving the scope by any path: kill the children still running, wait for all of them,
-- and re-raise a child's error that nobody has seen yet (unless the block is already
-- ending with an error of its own, which goes on).
function TaskGroup:__close(err)
    self._closed = true
    kill_all(self)
    settle(self)
    if self._failed and not self._raised and err == nil then raise_failure(self) end
end

TaskGroup.close = TaskGroup.__close

return { TaskGroup = new }
