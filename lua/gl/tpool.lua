-- gl.tpool: run a function on a worker OS thread with its own Lua state, the calling
-- green thread waiting (on an eventfd watched by the hub) and every other one running.
local core = require "gl.core"

local M = {}

-- execute(fn, ...) -> fn's results; fn's error is raised here. fn must have no upvalue
-- but _ENV; arguments and results are copied (nil, booleans, numbers, strings, tables).
function M.execute(fn, ...)
    if type(fn) ~= "function" then
        error("gl.tpool.execute: function expected, got " .. type(fn), 2)
    end
    local ok, j = pcall(core.tpool_submit, fn, ...)
    if not ok then error(j, 2) end
    local job <close> = j
    local fd = job:fd()
    while not job:done() do
        core.wait_fd(fd, true, false)
    end
    return (function(ok, ...)
        if not ok then error((...), 0) end
        return ...
    end)(job:results())
end

-- setsize(n): at most n worker threads (surplus idle ones exit).
function M.setsize(n)
    core.tpool_setsize(n)
end

-- size() -> the limit, the threads alive now, the jobs running or queued
M.size = core.tpool_size

return M
