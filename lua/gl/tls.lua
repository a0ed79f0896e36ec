-- gl.wrap_ssl: the policy around src/tls.c. Checks and defaults the options, caches one
-- OpenSSL context per distinct option set (weakly, so unused ones are freed), wraps
-- listeners so that accept() hands out TLS sockets, and runs a client's handshake.
local core = require "gl.core"
local socket = require "gl.socket"

local M = {}

local methods = core.tls_methods
-- Lua-side socket methods (write, lines, connect, sendto) are shared with plain sockets.
setmetatable(methods, { __index = core.socket_methods })

local plain_accept = core.socket_methods.accept

-- listener:accept() -> tlssocket, host, port. No handshake here: it runs in the thread
-- that first reads or writes (or calls :handshake()), never in the accept loop.
function methods:accept()
    local conn, host, port = plain_accept(self)
    if not conn then return nil, host, port end
    local tconn, err = self:_wrap_accepted(conn)
    if not tconn then return nil, err end
    return tconn, host, port
end

local versions = {
    ["TLSv1"] = "TLSv1", ["TLSv1.0"] = "TLSv1", ["TLSv1.1"] = "TLSv1.1",
    ["TLSv1.2"] = "TLSv1.2", ["TLSv1.3"] = "TLSv1.3",
    [1.0] = "TLSv1", [1.1] = "TLSv1.1", [1.2] = "TLSv1.2", [1.3] = "TLSv1.3",
}

local function version_opt(v, name)
    if v == nil then return nil end
    local n = versions[v] or (type(v) == "string" and versions[v:gsub("^tls", "TLS")])
    if not n then error(("gl.wrap_ssl: option %s: unknown TLS version %s"):format(name, tostring(v)), 3) end
    return n
end

local known = {
    server_side = "boolean", certfile = "string", keyfile = "string", cafile = "string",
    capath = "string", verify = "boolean", hostname = "string|boolean", alpn = "table",
    ciphers = "string", ciphersuites = "string", min_version = "string|number",
    max_version = "string|number", sni = "table", session = "userdata",
}

local function check_opts(opts)
    if opts == nil then return {} end
    if type(opts) ~= "table" then error("gl.wrap_ssl: options must be a table", 3) end
    for k, v in pairs(opts) do
        local want = known[k]
        if not want then error("gl.wrap_ssl: unknown option " .. tostring(k), 3) end
        if not want:find(type(v), 1, true) then
            error(("gl.wrap_ssl: option %s: %s expected, got %s"):format(k, want, type(v)), 3)
        end
    end
    if opts.hostname == true then error("gl.wrap_ssl: option hostname: a name or false", 3) end
    return opts
end

-- The context options (hostname is per connection) and a key naming them exactly.
local function context_opts(opts, server)
    local verify = opts.verify
    if verify == nil then verify = not server end
    local c = {
        server_side = server, verify = verify, certfile = opts.certfile,
        keyfile = opts.keyfile, cafile = opts.cafile, capath = opts.capath,
        ciphers = opts.ciphers, ciphersuites = opts.ciphersuites,
        min_version = version_opt(opts.min_version, "min_version") or "TLSv1.2",
        max_version = version_opt(opts.max_version, "max_version"),
        alpn = opts.alpn, sni = opts.sni,
    }
    local parts = {}
    for _, k in ipairs({ "server_side", "verify", "certfile", "keyfile", "cafile", "capath",
        "ciphers", "ciphersuites", "min_version", "max_version" }) do
        parts[#parts + 1] = k .. "=" .. tostring(c[k])
    end
    if c.alpn then
        for i, p in ipairs(c.alpn) do
            if type(p) ~= "string" then
                error(("gl.wrap_ssl: option alpn: entry %d is not a string"):format(i), 3)
            end
        end
        parts[#parts + 1] = "alpn=" .. table.concat(c.alpn, "\0")
    end
    if c.sni then
        local names = {}
        for name, e in pairs(c.sni) do
            if type(name) ~= "string" or type(e) ~= "table" or type(e.certfile) ~= "string" then
                error("gl.wrap_ssl: option sni: {[name] = {certfile = ..., keyfile = ...}}", 3)
            end
            names[#names + 1] = name .. "\0" .. e.certfile .. "\0" .. tostring(e.keyfile)
        end
        table.sort(names)
        parts[#parts + 1] = "sni=" .. table.concat(names, "\1")
    end
    return c, table.concat(parts, "\n")
end

-- One context per option set, shared by every wrap that uses it while any socket made
-- with it is alive (each TLS socket holds its context); the last few used are also kept,
-- so a client that connects again and again does not reload the CA store each time.
local contexts = setmetatable({}, { __mode = "v" })
local recent, RECENT = {}, 8

local function context(c, key)
    local ctx = contexts[key]
    if not ctx then
        local err
        ctx, err = core.tls_context(c)
        if not ctx then return nil, err end
        contexts[key] = ctx
    end
    for i = 1, #recent do
        if recent[i] == ctx then table.remove(recent, i); break end
    end
    table.insert(recent, 1, ctx)
    recent[RECENT + 1] = nil
    return ctx
end

-- The contexts' cache, for tests: how many distinct contexts are alive.
function M.context_count()
    local n = 0
    for _ in pairs(contexts) do n = n + 1 end
    return n
end

--- gl.wrap_ssl(sock, opts) -> tlssocket | nil, "tls: <reason>"
function M.wrap_ssl(sock, opts)
    opts = check_opts(opts)
    local server = opts.server_side and true or false
    if server and not opts.certfile then
        error("gl.wrap_ssl: server_side needs certfile (and keyfile)", 2)
    end
    local c, key = context_opts(opts, server)
    local hostname, check_host
    if not server then
        hostname = opts.hostname
        if hostname == nil then hostname = socket.peer_hosts[sock] end
        if hostname == false then
            hostname = nil
        elseif c.verify and hostname == nil then
            error("gl.wrap_ssl: no host name to verify: pass hostname (or hostname = false "
                .. "to check the chain only)", 2)
        end
        check_host = c.verify and hostname ~= nil
    end
    local ctx, err = context(c, key)
    if not ctx then return nil, err end
    local tsock, werr = core.tls_wrap(sock, ctx, server, hostname, check_host)
    if not tsock then return nil, werr end
    if hostname then socket.peer_hosts[tsock] = hostname end
    if server then return tsock end
    -- a kill or gl.Timeout raised through the handshake closes the half-made connection
    local done = false
    local _ <close> = setmetatable({}, { __close = function()
        if not done then tsock:close() end
    end })
    if opts.session then tsock:_set_session(opts.session) end -- resumption offered
    local ok, herr, code = tsock:handshake()
    if not ok then return nil, herr, code end
    done = true
    return tsock
end

return M
