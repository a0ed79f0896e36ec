-- Child processes for specs: start a command in the background (its own process group),
-- wait for a line in its output by bounded polling, and stop it by PID.
local gl = require "gl"

local M = {}

M.GL = os.getenv("GL_BIN") or "build/gl"
-- How much slower than native the children run (GL_BIN under valgrind: about 5), for
-- the few timings that are part of what a spec drives, such as a server's idle timeout.
M.SLOWDOWN = tonumber(os.getenv("GL_TEST_SLOWDOWN") or "") or 1

local function shell_quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = shell_quote

-- A loopback port free at the time of asking, for a child server to bind.
function M.free_port()
    local s = assert(gl.listen("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    return port
end

local function read_file(path)
    local f = io.open(path)
    if not f then return "" end
    local s = f:read("a")
    f:close()
    return s
end
M.read_file = read_file

-- Starts `cmd` (a shell string) in the background; returns a handle with pid and log.
function M.start(cmd, opts)
    opts = opts or {}
    local log = os.tmpname()
    local stdin = opts.stdin or "/dev/null"
    local p = io.popen(("setsid sh -c %s < %s > %s 2>&1 & echo $!"):format(
        shell_quote("exec " .. cmd), shell_quote(stdin), shell_quote(log)))
    local pid = tonumber(p:read("l"))
    p:close()
    assert(pid, "could not start: " .. cmd)
    return { pid = pid, log = log, cmd = cmd }
end

function M.output(h)
    return read_file(h.log)
end

-- Waits until the child's output matches pattern; returns the captures, or fails with
-- the output so far after `within` seconds.
function M.wait_for(h, pattern, within)
    local deadline = gl.clock() + (within or 5)
    while true do
        local out = read_file(h.log)
        local caps = table.pack(out:match(pattern))
        if caps[1] ~= nil then return table.unpack(caps, 1, caps.n) end
        if gl.clock() > deadline then
            error(("%q did not print %q within %gs; output:\n%s"):format(h.cmd, pattern,
                within or 5, out), 2)
        end
        gl.sleep(0.02)
    end
end

function M.alive(h)
    return os.execute("kill -0 " .. h.pid .. " 2>/dev/null") == true
end

-- Stops the child (SIGTERM to its process group, then SIGKILL) and removes its log.
function M.stop(h)
    os.execute(("kill -TERM -%d 2>/dev/null"):format(h.pid))
    local deadline = gl.clock() + 2
    while M.alive(h) and gl.clock() < deadline do gl.sleep(0.02) end
    os.execute(("kill -KILL -%d 2>/dev/null"):format(h.pid))
    local out = read_file(h.log)
    os.remove(h.log)
    return out
end

-- Stops a child started with M.start and returns its output. Unlike M.stop it does not
-- poll for the PID to go away: an exited child may linger as a zombie for a while.
function M.finish(h)
    os.execute(("kill -TERM -%d 2>/dev/null"):format(h.pid))
    local out = read_file(h.log)
    os.remove(h.log)
    return out
end

-- Runs a shell command in the background to its end (bounded) without blocking the hub;
-- returns its output. The end is seen by a marker line, not by polling the PID.
function M.run_bg(cmd, opts, within)
    local h = M.start("sh -c " .. shell_quote(cmd .. "; echo __EXIT=$?"), opts)
    local ok, err = pcall(M.wait_for, h, "__EXIT=%d+", within or 10)
    local out = M.finish(h)
    assert(ok, err)
    return out
end

-- Runs a command to completion (bounded by `timeout` seconds); returns ok, output.
function M.run(cmd, timeout)
    local p = io.popen(("timeout %d sh -c %s 2>&1"):format(timeout or 20, shell_quote(cmd)))
    local out = p:read("a")
    local ok, _, code = p:close()
    return ok, out, code
end

-- Writes a temporary file with `text`; returns its path.
function M.tempfile(text, suffix)
    local path = os.tmpname() .. (suffix or "")
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    return path
end

return M
