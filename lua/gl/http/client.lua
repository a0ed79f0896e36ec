-- gl.http.request / gl.http.get: an HTTP/1.1 client over green sockets, http and https
-- (gl.wrap_ssl), with a small idle-connection pool per scheme, host and port, redirects and
-- an overall timeout. Response heads and bodies are read by src/http.c (core.http_*).
local core = require "gl.core"

local read_response = core.http_read_response
local body_read = core.http_body_read
local alive = core.http_alive
local concat = table.concat

local M = {}

local POOL_MAX = 8 -- idle connections kept per scheme://host:port
local DEFAULT_TIMEOUT = 30
local pool = {}

local function pool_get(key)
    local list = pool[key]
    while list and #list > 0 do
        local c = table.remove(list)
        if alive(c) then return c end
        c:close() -- the server closed it (or sent something unasked): drop it
    end
    return nil
end

local function pool_put(key, c)
    local list = pool[key]
    if not list then
        list = {}
        pool[key] = list
    end
    if #list >= POOL_MAX then c:close() else list[#list + 1] = c end
end

-- gl.http.close_idle(): closes every pooled idle connection.
function M.close_idle()
    for key, list in pairs(pool) do
        for _, c in ipairs(list) do c:close() end
        pool[key] = nil
    end
end

local function parse_url(url)
    if type(url) ~= "string" then return nil, "bad url: " .. tostring(url) end
    local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
    if not scheme then return nil, "bad url: " .. url end
    scheme = scheme:lower()
    if scheme ~= "http" and scheme ~= "https" then return nil, "unsupported scheme: " .. scheme end
    local authority, path = rest:match("^([^/?#]*)(.*)$")
    path = path:gsub("#.*$", "")
    if path == "" or path:sub(1, 1) == "?" then path = "/" .. path end
    authority = authority:gsub("^.*@", "")
    local host, port
    if authority:sub(1, 1) == "[" then
        host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
    else
        host, port = authority:match("^([^:]+):?(%d*)$")
    end
    if not host or host == "" then return nil, "bad url: " .. url end
    local default = scheme == "https" and 443 or 80
    port = tonumber(port) or default
    local hostport = host:find(":", 1, true) and "[" .. host .. "]" or host
    if port ~= default then hostport = hostport .. ":" .. port end
    return { scheme = scheme, host = host, port = port, path = path, hostport = hostport }
end
M.parse_url = parse_url

local function resolve(base, loc)
    if loc:match("^%a[%w+.-]*://") then return loc end
    if loc:sub(1, 2) == "//" then return base.scheme .. ":" .. loc end
    local origin = base.scheme .. "://" .. base.hostport
    if loc:sub(1, 1) == "/" then return origin .. loc end
    local dir = base.path:gsub("%?.*$", ""):match("^(.*/)") or "/"
    if loc:sub(1, 1) == "?" then return origin .. base.path:gsub("%?.*$", "") .. loc end
    return origin .. dir .. loc
end

local function has_header(headers, name)
    if not headers then return false end
    for k in pairs(headers) do
        if type(k) == "string" and k:lower() == name then return true end
    end
    return false
end

local function format_request(u, method, headers, body)
    local out = { method, " ", u.path, " HTTP/1.1\r\n" }
    local function add(k, v)
        out[#out + 1] = k
        out[#out + 1] = ": "
        out[#out + 1] = tostring(v)
        out[#out + 1] = "\r\n"
    end
    if not has_header(headers, "host") then add("Host", u.hostport) end
    if not has_header(headers, "user-agent") then add("User-Agent", "gl.http") end
    if not has_header(headers, "content-length") and not has_header(headers, "transfer-encoding") then
        if type(body) == "function" then
            add("Transfer-Encoding", "chunked")
        elseif body or method == "POST" or method == "PUT" or method == "PATCH" then
            add("Content-Length", body and #body or 0)
        end
    end
    if headers then
        for k, v in pairs(headers) do
            if type(v) == "table" then
                for _, item in ipairs(v) do add(k, item) end
            else
                add(k, v)
            end
        end
    end
    out[#out + 1] = "\r\n"
    if type(body) == "string" then out[#out + 1] = body end
    return concat(out)
end

local function connect(u, opts)
    local gl = require "gl"
    local conn, err = gl.connect(u.host, u.port, { timeout = opts.timeout or DEFAULT_TIMEOUT })
    if not conn then return nil, err end
    if u.scheme == "https" then
        local tconn, terr = gl.wrap_ssl(conn, {
            hostname = u.host, verify = opts.verify ~= false, cafile = opts.cafile })
        if not tconn then
            conn:close()
            return nil, terr
        end
        conn = tconn
    end
    return conn
end

-- One exchange on conn: nil, err, retryable (nothing came back) on failure.
local function exchange(conn, text, method, body)
    local ok, err = conn:sendall(text)
    if not ok then return nil, err, true end
    if type(body) == "function" then
        while true do
            local chunk = body()
            if chunk == nil then break end
            chunk = tostring(chunk)
            if #chunk > 0 then
                ok, err = conn:sendall(("%x\r\n"):format(#chunk) .. chunk .. "\r\n")
                if not ok then return nil, err end
            end
        end
        ok, err = conn:sendall("0\r\n\r\n")
        if not ok then return nil, err end
    end
    local res, b, keep = read_response(conn, method == "HEAD")
    if not res then return nil, b, b == "closed" end
    if b then
        local parts = {}
        while true do
            local data, derr = body_read(conn, b, 65536)
            if not data then
                if derr then return nil, derr end
                break
            end
            parts[#parts + 1] = data
        end
        res.body = concat(parts)
    else
        res.body = ""
    end
    return res, keep
end

-- One request, no redirects. cur.conn is the connection in use (closed by the caller
-- when this raises).
local function once(u, method, headers, body, opts, cur)
    local key = u.scheme .. "://" .. u.host .. ":" .. u.port
    if u.scheme == "https" then -- a connection is only as trusted as its checks were
        key = key .. "|" .. tostring(opts.verify ~= false) .. "|" .. tostring(opts.cafile)
    end
    local text = format_request(u, method, headers, body)
    for attempt = 1, 2 do
        local conn = pool_get(key)
        local reused = conn ~= nil
        if not conn then
            local err
            conn, err = connect(u, opts)
            if not conn then return nil, err end
        end
        cur.conn = conn
        local res, keep, retry = exchange(conn, text, method, body)
        if res then
            cur.conn = nil
            if keep then pool_put(key, conn) else conn:close() end
            return res
        end
        cur.conn = nil
        conn:close()
        -- a pooled connection the server had closed: try once more on a fresh one
        if not (reused and retry and attempt == 1 and type(body) ~= "function") then
            return nil, keep
        end
    end
end

local redirect_codes = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }
local TIMEOUT = setmetatable({}, { __tostring = function() return "gl.http: request timeout" end })

-- gl.http.request(url [, opts]) -> {status, headers, body, reason, version, url}
-- | nil, err
function M.request(url, opts)
    opts = opts or {}
    if type(opts) ~= "table" then error("gl.http.request: options must be a table", 2) end
    local body = opts.body
    if body ~= nil and type(body) ~= "string" and type(body) ~= "function" then
        error("gl.http.request: body must be a string or a function", 2)
    end
    local method = (opts.method or (body and "POST" or "GET")):upper()
    local headers = opts.headers
    local redirects = opts.redirects == nil and 5 or opts.redirects
    local timeout = opts.timeout or DEFAULT_TIMEOUT
    local cur = {}
    local t <close> = core.Timeout(timeout, TIMEOUT)
    local ok, res, err = pcall(function()
        local hops = 0
        while true do
            local u, uerr = parse_url(url)
            if not u then return nil, uerr end
            local r, rerr = once(u, method, headers, body, opts, cur)
            if not r then return nil, rerr end
            local loc = r.headers.location
            if not (redirect_codes[r.status] and loc and redirects > 0) then
                r.url = url
                return r
            end
            if hops >= redirects then return nil, "too many redirects" end
            hops = hops + 1
            url = resolve(u, loc)
            if r.status == 303 or ((r.status == 301 or r.status == 302) and method == "POST") then
                if method ~= "HEAD" then method = "GET" end
                body = nil
                if headers then
                    local h = {}
                    for k, v in pairs(headers) do
                        local lk = type(k) == "string" and k:lower()
                        if lk ~= "content-length" and lk ~= "content-type"
                            and lk ~= "transfer-encoding" then h[k] = v end
                    end
                    headers = h
                end
            end
        end
    end)
    if cur.conn then
        cur.conn:close()
        cur.conn = nil
    end
    if ok then return res, err end
    if res == TIMEOUT then return nil, "timeout" end
    error(res, 0)
end

-- gl.http.get(url [, opts]) -> the response table, or nil, err
function M.get(url, opts)
    return M.request(url, opts)
end

return M
