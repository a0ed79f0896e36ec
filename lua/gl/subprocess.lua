-- gl.subprocess: child processes with green stdin/stdout/stderr (socketpairs the hub
-- watches), reaped by one SIGCHLD event that only waits for gl's own pids.
local core = require "gl.core"
local Event = require("gl.event").Event

local M = {
    PIPE = setmetatable({}, { __name = "gl.subprocess.PIPE" }),
    INHERIT = setmetatable({}, { __name = "gl.subprocess.INHERIT" }),
    DEVNULL = setmetatable({}, { __name = "gl.subprocess.DEVNULL" }),
}

local live = {} -- pid -> proc, until reaped

core.proc_on_exit(function(pid, code, signo)
    local p = live[pid]
    if not p then return end
    live[pid] = nil
    if signo ~= 0 then
        p.result = { nil, "signal", signo }
    else
        p.result = { code == 0 or nil, "exit", code }
    end
    p._exited:send()
end)

local Proc = {}
Proc.__index = Proc
Proc.__name = "gl.subprocess.proc"

-- proc:wait([sec]) -> ok, "exit"|"signal", n (as os.execute) | nil, "timeout"
function Proc:wait(sec)
    if not self.result then
        self._exited:wait(sec)
        if not self.result then return nil, "timeout" end
    end
    local r = self.result
    return r[1], r[2], r[3]
end

-- proc:kill([sig=SIGTERM]) -> true | nil, err
function Proc:kill(sig)
    if sig ~= nil and math.type(sig) ~= "integer" then
        error("proc:kill: signal number expected, got " .. type(sig), 2)
    end
    if self.result then return nil, "process already exited" end
    return core.proc_kill(self.pid, sig or 15)
end

-- proc:close(): closes the pipes gl still holds (the child is reaped all the same)
function Proc:close()
    for _, k in ipairs { "stdin", "stdout", "stderr" } do
        local s = self[k]
        if s then s:close() end
    end
end
Proc.__close = Proc.close

function Proc:__tostring()
    return ("gl.subprocess.proc (pid %d)"):format(self.pid)
end

local function mode(v, name)
    if v == nil or v == M.PIPE then return "p" end
    if v == M.INHERIT then return "i" end
    if v == M.DEVNULL then return "n" end
    if name == "stdin" and type(v) == "string" then return "p" end
    error(("gl.subprocess: opts.%s must be PIPE, INHERIT or DEVNULL%s"):format(name,
        name == "stdin" and " or a string" or ""), 3)
end

local function check_argv(argv)
    if type(argv) ~= "table" then
        error("gl.subprocess: argv must be a list of strings, got " .. type(argv), 3)
    end
    if #argv == 0 then error("gl.subprocess: argv is empty", 3) end
    for i = 1, #argv do
        if type(argv[i]) ~= "string" and type(argv[i]) ~= "number" then
            error(("gl.subprocess: argv[%d] must be a string, got %s"):format(i, type(argv[i])), 3)
        end
    end
end

local function env_list(env)
    if env == nil then return nil end
    if type(env) ~= "table" then error("gl.subprocess: opts.env must be a table", 3) end
    local list = {}
    for k, v in pairs(env) do
        if type(k) == "number" then list[#list + 1] = tostring(v)
        else list[#list + 1] = tostring(k) .. "=" .. tostring(v) end
    end
    table.sort(list)
    return list
end

-- popen(argv [, opts]) -> proc | nil, err. opts: cwd, env (a table name -> value that
-- replaces the environment), stdin (PIPE, INHERIT, DEVNULL or a string to feed, then
-- close), stdout, stderr (PIPE, INHERIT or DEVNULL); PIPE is the default.
function M.popen(argv, opts)
    check_argv(argv)
    opts = opts or {}
    if opts.cwd ~= nil and type(opts.cwd) ~= "string" then
        error("gl.subprocess: opts.cwd must be a string", 2)
    end
    local modes = mode(opts.stdin, "stdin") .. mode(opts.stdout, "stdout") .. mode(opts.stderr, "stderr")
    local pid, i, o, e = core.proc_spawn(argv, opts.cwd, env_list(opts.env), modes)
    if not pid then return nil, i, o end
    local p = setmetatable({ pid = pid, stdin = i or nil, stdout = o or nil, stderr = e or nil,
        _exited = Event() }, Proc)
    live[pid] = p
    if type(opts.stdin) == "string" then
        local data, sock = opts.stdin, p.stdin
        p.stdin = nil
        core.spawn_n(function()
            sock:sendall(data)
            sock:close()
        end)
    end
    return p
end

local function read_all(sock)
    if not sock then return nil end
    local data = sock:read("a")
    sock:close()
    return data
end

-- run(argv [, opts]) -> {status = n, signal = n|nil, stdout = s, stderr = s}
-- (status 128+signal for a killed process); stdin defaults to DEVNULL; nil, err when
-- the program cannot be started.
function M.run(argv, opts)
    check_argv(argv)
    opts = opts or {}
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    if o.stdin == nil then o.stdin = M.DEVNULL end
    local p, err, errno = M.popen(argv, o)
    if not p then return nil, err, errno end
    local errt = p.stderr and core.spawn(read_all, p.stderr)
    local ok_out, out = pcall(read_all, p.stdout)
    local ok_err, errout = true, nil
    if errt then ok_err, errout = pcall(errt.wait, errt) end
    if not ok_out or not ok_err then -- killed or timed out while reading: do not leak
        p:close()
        if errt then errt:kill() end
        p:kill(9)
        error(not ok_out and out or errout, 0)
    end
    local _, how, n = p:wait()
    return {
        status = how == "signal" and 128 + n or n,
        signal = how == "signal" and n or nil,
        stdout = out,
        stderr = errout,
    }
end

-- ---- green io.popen and os.execute (gl.monkey_patch) ----
local File = {}
File.__index = File
File.__name = "gl.subprocess.file"

local function fmt(f)
    if type(f) == "string" then return (f:gsub("^%*", "")) end
    return f
end

function File:read(...)
    if not self._out then return nil, "file not readable" end
    local n = select("#", ...)
    if n == 0 then return self._out:read("l") end
    local args = table.pack(...)
    for i = 1, n do args[i] = fmt(args[i]) end
    return self._out:read(table.unpack(args, 1, n))
end
function File:lines(...)
    local args = table.pack(...)
    if args.n == 0 then args = { "l", n = 1 } end
    return function() return self:read(table.unpack(args, 1, args.n)) end
end
function File:write(...)
    if not self._in then return nil, "file not writable" end
    for i = 1, select("#", ...) do
        local ok, err = self._in:sendall(tostring((select(i, ...))))
        if not ok then return nil, err end
    end
    return self
end
function File:flush() return self end
function File:setvbuf() return true end
function File:seek() return nil, "illegal seek", 29 end
-- close() -> as os.execute: ok, "exit"|"signal", n
function File:close()
    if self._closed then error("attempt to use a closed file", 2) end
    self._closed = true
    if self._in then self._in:close() end
    if self._out then self._out:close() end
    return self._p:wait()
end
File.__close = function(self) if not self._closed then self:close() end end
function File:__tostring() return self._closed and "file (closed)" or ("file (%p)"):format(self) end

local orig_popen, orig_execute = io.popen, os.execute

-- a green thread can wait; elsewhere (outside gl's threads) the originals run
local function green_ok() return coroutine.isyieldable() and core.getcurrent() ~= nil end

function M.io_popen(cmd, mode)
    if not green_ok() then return orig_popen(cmd, mode) end
    if type(cmd) ~= "string" then error("bad argument #1 to 'popen' (string expected)", 2) end
    mode = mode or "r"
    if mode ~= "r" and mode ~= "w" then error("bad argument #2 to 'popen' (invalid mode)", 2) end
    local p, err, errno = M.popen({ "/bin/sh", "-c", cmd }, {
        stdin = mode == "w" and M.PIPE or M.INHERIT,
        stdout = mode == "r" and M.PIPE or M.INHERIT,
        stderr = M.INHERIT,
    })
    if not p then return nil, err, errno end
    return setmetatable({ _p = p, _in = p.stdin, _out = p.stdout }, File)
end

function M.os_execute(cmd)
    if cmd == nil then return true end
    if not green_ok() then return orig_execute(cmd) end
    local p, err = M.popen({ "/bin/sh", "-c", cmd }, { stdin = M.INHERIT, stdout = M.INHERIT, stderr = M.INHERIT })
    if not p then return nil, "exit", 127 end
    return p:wait()
end

function M.patch_os()
    io.popen = M.io_popen
    os.execute = M.os_execute
end

return M
