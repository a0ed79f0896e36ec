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

return M
