-- A throwaway PostgreSQL server for specs: initdb into a temp dir, pg_ctl start on a Unix
-- socket in that dir and a free 127.0.0.1 port, stopped by its postmaster PID. As root
-- the server runs as the `postgres` user (runuser), which owns the temp dir.
local gl = require "gl"
local proc = require "proc"

local M = {}

local BIN = os.getenv("GL_PG_BIN") or "/usr/lib/postgresql/15/bin"
local q = proc.quote

local function as_pg(cmd)
    local uid = io.popen("id -u"):read("l")
    if uid == "0" then return "runuser -u postgres -- " .. cmd end
    return cmd
end

local free_port = proc.free_port

local function sh(cmd, within)
    local out = proc.run_bg(cmd .. " 2>&1", nil, within or 60)
    local code = tonumber(out:match("__EXIT=(%d+)"))
    return code == 0, out
end

local Server = {}
Server.__index = Server

-- M.start() -> server with .dir, .port, .pid, .conninfo (TCP) and .socket_conninfo
function M.start()
    local dir = io.popen("mktemp -d /tmp/glpg.XXXXXX"):read("l")
    assert(dir and dir ~= "", "mktemp failed")
    local uid = io.popen("id -u"):read("l")
    if uid == "0" then assert(os.execute("chown postgres " .. q(dir))) end
    local ok, out = sh(as_pg(("%s/initdb -D %s -A trust -U postgres -E UTF8 --no-sync"):format(
        BIN, q(dir .. "/data"))), 90)
    if not ok then
        os.execute("rm -rf " .. q(dir))
        error("initdb failed:\n" .. out)
    end
    local s = setmetatable({ dir = dir, port = free_port() }, Server)
    s.conninfo = ("host=127.0.0.1 port=%d user=postgres dbname=postgres"):format(s.port)
    s.socket_conninfo = ("host=%s port=%d user=postgres dbname=postgres"):format(dir, s.port)
    s:start_server()
    return s
end

function Server:start_server()
    local opts = ("-k %s -p %d -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40")
        :format(self.dir, self.port)
    local ok, out = sh(as_pg(("%s/pg_ctl -D %s -l %s -w -t 60 -o %s start"):format(
        BIN, q(self.dir .. "/data"), q(self.dir .. "/log"), q(opts))), 90)
    if not ok then
        error("pg_ctl start failed:\n" .. out .. "\n" .. proc.read_file(self.dir .. "/log"))
    end
    self.pid = tonumber(proc.read_file(self.dir .. "/data/postmaster.pid"):match("^(%d+)"))
    assert(self.pid, "no postmaster.pid")
end

local function alive(pid)
    return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

-- Fast shutdown by PID (SIGINT: roll back, disconnect clients), waiting for it to end.
function Server:stop_server()
    if not self.pid then return end
    os.execute("kill -INT " .. self.pid)
    local deadline = gl.clock() + 20
    while alive(self.pid) and gl.clock() < deadline do gl.sleep(0.05) end
    if alive(self.pid) then os.execute("kill -KILL " .. self.pid) end
    self.pid = nil
end

function Server:restart()
    self:stop_server()
    self:start_server()
end

function Server:stop()
    self:stop_server()
    if self.dir then os.execute("rm -rf " .. q(self.dir)) end
    self.dir = nil
end

return M
