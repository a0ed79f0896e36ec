-- gl.debug: what the hub and its green threads are doing.
local core = require "gl.core"

local M = {}

-- A list of {id, status, traceback} for every live green thread.
function M.threads()
    local out = {}
    for _, gt in ipairs(core.threads()) do
        if not gt:dead() then
            out[#out + 1] = { id = gt.id, status = gt:status(), traceback = core.traceback(gt) }
        end
    end
    return out
end

-- A list of {fd, events = "r"|"w"|"rw", persist, kind, thread = id} for every fd the
-- hub watches; `thread` names the green thread waiting on it (a socket's reader or
-- writer, or a thread's own wait: gl.trampoline, gl_wait_fd, gl.tpool); kind "socket"
-- marks a socket's events.
function M.hub_listeners()
    return core.hub_listeners(core.threads())
end

-- hub_blocking_detection(on [, sec=1]): while on, a green thread that holds the hub
-- (runs without yielding) longer than sec has its traceback printed to stderr.
function M.hub_blocking_detection(on, sec)
    core.hub_blocking_detection(on, sec)
end

-- Prints every live green thread's traceback to stderr (what SIGUSR1 does).
function M.dump(out)
    out = out or io.stderr
    local list = M.threads()
    out:write(("gl: %d green thread(s)\n"):format(#list))
    for _, t in ipairs(list) do
        out:write(("green thread %d (%s)\n%s\n"):format(t.id, t.status, t.traceback))
    end
    out:flush()
end

-- SIGUSR1 dumps every green thread once gl.debug is loaded
core.debug_on_sigusr1(function() M.dump() end)

return M
