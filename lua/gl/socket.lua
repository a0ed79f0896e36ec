-- gl.listen, gl.connect, gl.serve and gl.socket: the policy around the C sockets
-- (name lookup, options, the accept loop). The byte paths are all in src/socket.c.
local core = require "gl.core"

local methods = core.socket_methods
local M = {}

local function sentinel(name)
    return setmetatable({}, { __tostring = function() return name end, __name = name })
end

M.StopServe = sentinel("gl.StopServe")

local function is_ipv4(host)
    return host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil
end

-- A list of {family, addr} for host; numeric hosts skip the resolver.
local function addresses(host, port, family)
    if is_ipv4(host) then return { { family = "inet", addr = host } } end
    if host:find(":", 1, true) then return { { family = "inet6", addr = host } } end
    local dns_ok, dns = pcall(require, "gl.dns")
    if not dns_ok then
        if host == "localhost" then return { { family = "inet", addr = "127.0.0.1" } } end
        return nil, "cannot resolve " .. host .. ": gl.dns is not available"
    end
    return dns.getaddrinfo(host, port, family)
end
M.addresses = addresses

-- The host name each connected socket was given (gl.connect, sock:connect): wrap_ssl's
-- default hostname for SNI and certificate checks. Weak keys: it never keeps a socket.
M.peer_hosts = setmetatable({}, { __mode = "k" })

local function unix_path(host)
    return type(host) == "string" and host:match("^unix:(.+)$")
end

-- sock:connect(host, port): names are looked up first; each address is tried in turn.
function methods:connect(host, port)
    local fam = self:family()
    if fam == "unix" then return self:_connect(unix_path(host) or host) end
    local list, err = addresses(host, port, fam)
    if not list then return nil, err end
    for _, a in ipairs(list) do
        if a.family == fam then
            local ok, cerr, code = self:_connect(a.addr, port)
            if ok then M.peer_hosts[self] = host end
            return ok, cerr, code
        end
    end
    return nil, "no " .. fam .. " address for " .. host
end

function methods:sendto(data, host, port)
    local list, err = addresses(host, port, (self:family()))
    if not list then return nil, err end
    return self:_sendto(data, list[1].addr, port)
end

-- As file:write: each argument (string or number) in turn; returns the socket.
function methods:write(...)
    for i = 1, select("#", ...) do
        local v = select(i, ...)
        local ok, err, code = self:sendall(type(v) == "number" and tostring(v) or v)
        if not ok then return nil, err, code end
    end
    return self
end

function methods:lines(...)
    local formats = table.pack(...)
    if formats.n == 0 then formats = { "l", n = 1 } end
    return function()
        return self:read(table.unpack(formats, 1, formats.n))
    end
end

local function family_for_bind(host)
    if host == "" or host == "*" then return "inet", "0.0.0.0" end
    if host == "::" or host:find(":", 1, true) then return "inet6", host end
    return nil
end

function M.listen(host, port, opts)
    opts = opts or {}
    host = host or "0.0.0.0"
    local path = unix_path(host)
    local sock, err, code
    if path then
        sock, err, code = core.socket("unix", "stream")
        if not sock then return nil, err, code end
        os.remove(path) -- a stale socket file from an earlier run
        local ok, e2, c2 = sock:bind(path)
        if not ok then sock:close(); return nil, e2, c2 end
    else
        local fam, addr = family_for_bind(host)
        if not fam then
            local list, lerr = addresses(host, port)
            if not list or #list == 0 then
                error("gl.listen: cannot resolve " .. tostring(host) .. ": " .. tostring(lerr), 2)
            end
            fam, addr = list[1].family, list[1].addr
        end
        sock, err, code = core.socket(fam, "stream")
        if not sock then return nil, err, code end
        if opts.reuse_addr ~= false then sock:setoption("reuseaddr", true) end
        if opts.reuse_port then sock:setoption("reuseport", true) end
        local ok, e2, c2 = sock:bind(addr, port or 0)
        if not ok then sock:close(); return nil, e2, c2 end
    end
    local ok, e3, c3 = sock:listen(opts.backlog)
    if not ok then sock:close(); return nil, e3, c3 end
    return sock
end

function M.connect(host, port, opts)
    opts = opts or {}
    local path = unix_path(host)
    if path then
        local sock = core.socket("unix", "stream")
        if opts.timeout then sock:settimeout(opts.timeout) end
        local ok, err, code = sock:_connect(path)
        if not ok then sock:close(); return nil, err, code end
        sock:settimeout(nil)
        return sock
    end
    local list, err = addresses(host, port)
    if not list then return nil, err end
    local last_err, last_code = "no address for " .. tostring(host), nil
    for _, a in ipairs(list) do
        local sock, serr, scode = core.socket(a.family, "stream")
        if not sock then return nil, serr, scode end
        local ok = true
        if opts.bind then
            ok, last_err, last_code = sock:bind(opts.bind[1] or opts.bind.host, opts.bind[2] or opts.bind.port or 0)
        end
        if ok then
            if opts.timeout then sock:settimeout(opts.timeout) end
            ok, last_err, last_code = sock:_connect(a.addr, port)
        end
        if ok then
            sock:settimeout(nil)
            sock:setoption("nodelay", true)
            M.peer_hosts[sock] = host
            return sock
        end
        sock:close()
    end
    return nil, last_err, last_code
end

M.socket = {
    tcp = function(family) return core.socket(family or "inet", "stream") end,
    udp = function(family) return core.socket(family or "inet", "dgram") end,
    unix = function() return core.socket("unix", "stream") end,
}

local function report(err)
    io.stderr:write("gl: error in a gl.serve handler: ", err, "\n")
end

-- Accept errors that mean "out of descriptors or memory for now": back off, keep serving.
local transient = { ["too many open files"] = true, ["too many open files in system"] = true,
    ["cannot allocate memory"] = true, ["no buffer space available"] = true }

function M.serve(sock, handler, opts)
    local concurrency, raise_errors = 1000, false
    if type(opts) == "number" then
        concurrency = opts
    elseif type(opts) == "table" then
        concurrency = opts.concurrency or concurrency
        raise_errors = opts.raise_errors and true or false
    end
    local slots = require("gl.semaphore").Semaphore(concurrency)
    local server = core.getcurrent()
    local stop -- {err} once a handler asks serve to end
    local next_warning = 0 -- running out of descriptors is reported once per interval

    local function run(conn, host, port)
        local c <close> = conn
        local ok, err = xpcall(handler, function(e)
            if e == M.StopServe or e == core.GreenletExit then return e end
            return { e, debug.traceback(tostring(e), 2) }
        end, conn, host, port)
        slots:release()
        if ok or err == core.GreenletExit then return end
        if err == M.StopServe then
            stop = stop or { M.StopServe }
        elseif raise_errors then
            stop = stop or { err[1] }
        else
            report(err[2])
            return
        end
        if server:status() ~= "dead" then core.kill(server, M.StopServe) end
    end

    local ok, err = pcall(function()
        while true do
            slots:acquire()
            if sock:closed() then return end -- closed while we waited for a free slot
            local conn, host, port = sock:accept()
            if conn then
                core.spawn_n(run, conn, host, port)
            else
                slots:release()
                if host == "closed" or sock:closed() then return end
                if transient[host] then
                    if core.clock() >= next_warning then
                        io.stderr:write("gl.serve: accept failed (", host, "); backing off\n")
                        next_warning = core.clock() + 10
                    end
                    core.sleep(0.1)
                else
                    error("gl.serve: accept failed: " .. tostring(host), 0)
                end
            end
        end
    end)
    if ok then return end
    if err == M.StopServe and stop then
        if stop[1] == M.StopServe then return end
        error(stop[1], 0)
    end
    error(err, 0)
end

return M
