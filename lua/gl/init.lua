-- gl: Eventlet for Lua. The public facade: green threads, timeouts and synchronisation
-- from the C core, plus the Lua modules, loaded on first use.
local core = require "gl.core"

local gl = {
    spawn = core.spawn,
    spawn_n = core.spawn_n,
    spawn_after = core.spawn_after,
    sleep = core.sleep,
    getcurrent = core.getcurrent,
    kill = core.kill,
    run = core.run,
    clock = core.clock,
    GreenletExit = core.GreenletExit,
    Interrupt = core.Interrupt,
    Timeout = core.Timeout,
    is_timeout = core.is_timeout,
    version = core.versions().gl,
}

function gl.with_timeout(sec, fn, ...)
    local t <close> = core.Timeout(sec)
    return fn(...)
end

function gl.trampoline(fd, opts)
    opts = opts or {}
    return core.wait_fd(fd, opts.read, opts.write, opts.timeout)
end

-- Makes require "socket" (LuaSocket's API), io.popen and os.execute green.
function gl.monkey_patch()
    require("gl.compat.socket").install()
    require("gl.subprocess").patch_os()
end

gl.hub = {
    backend = core.backend,
    use = core.use,
}

-- Modules and classes that live in their own files load on first use.
local lazy = {
    Event = { "gl.event", "Event" },
    Semaphore = { "gl.semaphore", "Semaphore" },
    BoundedSemaphore = { "gl.semaphore", "BoundedSemaphore" },
    Queue = { "gl.queue", "Queue" },
    LightQueue = { "gl.queue", "LightQueue" },
    PriorityQueue = { "gl.queue", "PriorityQueue" },
    LifoQueue = { "gl.queue", "LifoQueue" },
    queue = { "gl.queue" },
    GreenPool = { "gl.greenpool", "GreenPool" },
    GreenPile = { "gl.greenpool", "GreenPile" },
    TaskGroup = { "gl.taskgroup", "TaskGroup" },
    pools = { "gl.pools" },
    debug = { "gl.debug" },
    dns = { "gl.dns" },
    http = { "gl.http" },
    listen = { "gl.socket", "listen" },
    connect = { "gl.socket", "connect" },
    serve = { "gl.socket", "serve" },
    socket = { "gl.socket", "socket" },
    StopServe = { "gl.socket", "StopServe" },
    wrap_ssl = { "gl.tls", "wrap_ssl" },
    tls = { "gl.tls" },
    websocket = { "gl.websocket" },
    backdoor = { "gl.backdoor" },
    tpool = { "gl.tpool" },
    subprocess = { "gl.subprocess" },
}

setmetatable(gl, {
    __index = function(t, k)
        local where = lazy[k]
        if not where then return nil end
        local mod = require(where[1])
        local v = where[2] and mod[where[2]] or mod
        rawset(t, k, v)
        return v
    end,
})

return gl
