-- Shared by the HTTP specs: a gl server on a free 127.0.0.1 port, external commands (curl,
-- python3) run without blocking the hub and stopped by PID, and a raw-socket exchange.
local gl = require "gl"
local proc = require "proc"

local U = {}

local quote = proc.quote
U.quote = quote

U.free_port = proc.free_port

-- Starts gl.http.server in the background on a free port; returns srv, port.
function U.serve(app, opts)
    local l = assert(gl.listen("127.0.0.1", 0))
    local _, port = l:getsockname()
    local o = { background = true, log = false }
    for k, v in pairs(opts or {}) do o[k] = v end
    return gl.http.server(l, app, o), port
end

local function slurp(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("a")
    f:close()
    return s
end

local function cleanup(h)
    for _, ext in ipairs({ "", ".out", ".err", ".rc" }) do os.remove(h.base .. ext) end
end

-- Starts a shell command in its own session; returns a handle {pid = n, base = path}.
function U.spawn(cmd)
    local base = os.tmpname()
    local script = ("(%s) >%s.out 2>%s.err; echo $? >%s.rc.tmp; mv %s.rc.tmp %s.rc"):format(
        cmd, base, base, base, base, base)
    local p = assert(io.popen("setsid sh -c " .. quote(script) .. " </dev/null >/dev/null 2>&1 & echo $!"))
    local pid = tonumber(p:read("l"))
    p:close()
    return { pid = pid, base = base }
end

-- Stops a spawned command (its whole session) by PID.
function U.kill(h)
    os.execute(("kill -TERM -%d 2>/dev/null; kill -TERM %d 2>/dev/null"):format(h.pid, h.pid))
end

-- Stops a spawned server by PID and removes its files.
function U.stop(h)
    U.kill(h)
    cleanup(h)
end

-- Waits (green) for a spawned command; returns rc, stdout, stderr or nil, "timeout".
function U.wait(h, timeout)
    local deadline = gl.clock() + (timeout or 10)
    while true do
        local rc = slurp(h.base .. ".rc")
        if rc and rc:match("%d") then
            local out, err = slurp(h.base .. ".out"), slurp(h.base .. ".err")
            cleanup(h)
            return tonumber(rc:match("%d+")), out, err
        end
        if gl.clock() > deadline then
            U.kill(h)
            cleanup(h)
            return nil, "timeout"
        end
        gl.sleep(0.01)
    end
end

-- Runs a command to its end (bounded); returns rc, stdout, stderr.
function U.run(cmd, timeout)
    return U.wait(U.spawn(cmd), timeout)
end

-- Runs python3 code (a string) with args; returns rc, stdout, stderr.
function U.python(code, args, timeout)
    local path = os.tmpname() .. ".py"
    local f = assert(io.open(path, "w"))
    f:write(code)
    f:close()
    local rc, out, err = U.run("python3 " .. path .. " " .. (args or ""), timeout)
    os.remove(path)
    return rc, out, err
end

-- Sends raw bytes on a new connection and reads until the server closes (or timeout).
function U.raw(port, data, timeout)
    local s = assert(gl.connect("127.0.0.1", port))
    s:settimeout(timeout or 3)
    if data and #data > 0 then s:sendall(data) end
    local out = s:read("a")
    s:close()
    return out
end

-- Waits until a TCP port accepts connections.
function U.wait_port(port, within)
    local deadline = gl.clock() + (within or 5)
    while gl.clock() < deadline do
        local s = gl.connect("127.0.0.1", port)
        if s then
            s:close()
            return true
        end
        gl.sleep(0.05)
    end
    return false
end

return U
