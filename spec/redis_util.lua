-- A real redis-server for specs: a free loopback port, its own config and data in a temp
-- dir (no persistence), a Unix socket beside it; started in the background and stopped by
-- PID. tools/install-deps installs redis-server; a missing one fails the spec.
local gl = require "gl"
local proc = require "proc"

local M = {}

M.BIN = os.getenv("REDIS_SERVER") or "/usr/bin/redis-server"

local free_port = proc.free_port

-- Starts redis-server; opts.timeout is its idle-client timeout in seconds (0 = never),
-- opts.port a port to reuse (a restart), opts.requirepass a password, opts.tls
-- {cert, key, ca} PEM paths for a TLS port beside the plain one (handle.tls_port),
-- opts.conf more config lines. Returns a handle {port, unix, dir, h}; stop it with
-- M.stop(handle).
function M.start(opts)
    opts = opts or {}
    local f = io.open(M.BIN)
    assert(f, M.BIN .. " is missing: run tools/install-deps (redis-server)")
    f:close()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -m 700 " .. proc.quote(dir)))
    local port = opts.port or free_port()
    local unix = dir .. "/redis.sock"
    local conf = table.concat({
        "bind 127.0.0.1",
        "port " .. port,
        "unixsocket " .. unix,
        "unixsocketperm 700",
        "dir " .. dir,
        "save \"\"",
        "appendonly no",
        "daemonize no",
        "protected-mode yes",
        "timeout " .. (opts.timeout or 0),
        "hz 50",
        "loglevel notice",
        "logfile \"\"",
    }, "\n")
    local extra = {}
    if opts.requirepass then extra[#extra + 1] = "requirepass " .. opts.requirepass end
    local tls_port
    if opts.tls then
        tls_port = opts.tls.port or free_port()
        extra[#extra + 1] = "tls-port " .. tls_port
        extra[#extra + 1] = "tls-cert-file " .. opts.tls.cert
        extra[#extra + 1] = "tls-key-file " .. opts.tls.key
        extra[#extra + 1] = "tls-ca-cert-file " .. opts.tls.ca
        extra[#extra + 1] = "tls-auth-clients no"
    end
    for _, l in ipairs(opts.conf or {}) do extra[#extra + 1] = l end
    conf = conf .. "\n" .. table.concat(extra, "\n") .. "\n"
    local cf = assert(io.open(dir .. "/redis.conf", "w"))
    cf:write(conf)
    cf:close()
    local h = proc.start(proc.quote(M.BIN) .. " " .. proc.quote(dir .. "/redis.conf"))
    local ok, err = pcall(proc.wait_for, h, "[Rr]eady to accept connections", 10)
    if not ok then
        proc.stop(h)
        os.execute("rm -rf " .. proc.quote(dir))
        error(err, 2)
    end
    return { port = port, unix = unix, dir = dir, h = h, tls_port = tls_port }
end

function M.stop(r)
    local out = proc.stop(r.h)
    os.execute("rm -rf " .. proc.quote(r.dir))
    return out
end

return M
