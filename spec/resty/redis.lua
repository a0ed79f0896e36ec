-- A RESP (Redis protocol) client written the way lua-resty-redis is, on nothing but the
-- cosocket API (ngx.socket.tcp, send of nested tables, receive "*l" and counts,
-- setkeepalive, getreusedtimes). It is a test vehicle for gl.compat.ngx, not gl's Redis
-- client: commands are methods made on first use, pipelines queue requests and read the
-- replies in order, and replies map as in lua-resty-redis (status -> string, error ->
-- false + message, integer -> number, nil bulk/multi-bulk -> ngx.null).
local sub = string.sub
local byte = string.byte
local tostring = tostring
local tonumber = tonumber
local type = type
local rawget = rawget
local setmetatable = setmetatable
local unpack = table.unpack

local ok, new_tab = pcall(require, "table.new")
if not ok or type(new_tab) ~= "function" then
    new_tab = function() return {} end
end

local tcp = ngx.socket.tcp
local null = ngx.null

local _M = new_tab(0, 54)
_M._VERSION = "0.30-gl"

local mt = { __index = _M }

function _M.new(self)
    local sock, err = tcp()
    if not sock then
        return nil, err
    end
    return setmetatable({ _sock = sock }, mt)
end

function _M.set_timeout(self, timeout)
    local sock = rawget(self, "_sock")
    if not sock then
        return nil, "not initialized"
    end
    sock:settimeout(timeout)
    return 1
end

function _M.set_timeouts(self, connect_timeout, send_timeout, read_timeout)
    local sock = rawget(self, "_sock")
    if not sock then
        return nil, "not initialized"
    end
    sock:settimeouts(connect_timeout, send_timeout, read_timeout)
    return 1
end

function _M.connect(self, host, port_or_opts, opts)
    local sock = rawget(self, "_sock")
    if not sock then
        return nil, "not initialized"
    end
    local unix
    do
        local typ = type(host)
        if typ ~= "string" then
            error("bad argument #1 host: string expected, got " .. typ, 2)
        end
        if sub(host, 1, 5) == "unix:" then
            unix = true
        end
        if unix then
            local typ2 = type(port_or_opts)
            if port_or_opts ~= nil and typ2 ~= "table" then
                error("bad argument #2 opts: nil or table expected, got " .. typ2, 2)
            end
        end
    end
    self._subscribed = false
    local ok, err
    if unix then
        ok, err = sock:connect(host, port_or_opts)
    else
        ok, err = sock:connect(host, port_or_opts, opts)
    end
    if not ok then
        return ok, err
    end
    return ok, err
end

function _M.set_keepalive(self, ...)
    local sock = rawget(self, "_sock")
    if not sock then
        return nil, "not initialized"
    end
    if rawget(self, "_subscribed") then
        return nil, "subscribed state"
    end
    return sock:setkeepalive(...)
end

function _M.get_reused_times(self)
    local sock = rawget(self, "_sock")
    if not sock then
        return nil, "not initialized"
    end
    return sock:getreusedtimes()
end

local function close(self)
    local sock = rawget(self, "_sock")
    if not sock then
        return nil, "not initialized"
    end
    return sock:close()
end
_M.close = close

local function _read_reply(self, sock)
    local line, err = sock:receive()
    if not line then
        if err == "timeout" and not rawget(self, "_subscribed") then
            sock:close()
        end
        return nil, err
    end

    local prefix = byte(line)

    if prefix == 36 then -- char '$'
        local size = tonumber(sub(line, 2))
        if size < 0 then
            return null
        end
        local data, err = sock:receive(size)
        if not data then
            if err == "timeout" then
                sock:close()
            end
            return nil, err
        end
        local dummy, err = sock:receive(2) -- ignore CRLF
        if not dummy then
            if err == "timeout" then
                sock:close()
            end
            return nil, err
        end
        return data

    elseif prefix == 43 then -- char '+'
        return sub(line, 2)

    elseif prefix == 42 then -- char '*'
        local n = tonumber(sub(line, 2))
        if n < 0 then
            return null
        end
        local vals = new_tab(n, 0)
        local nvals = 0
        for _ = 1, n do
            local res, err = _read_reply(self, sock)
            if res then
                nvals = nvals + 1
                vals[nvals] = res
            elseif res == nil then
                return nil, err
            else
                -- be a valid redis error value
                nvals = nvals + 1
                vals[nvals] = { false, err }
            end
        end
        return vals

    elseif prefix == 58 then -- char ':'
        return tonumber(sub(line, 2))

    elseif prefix == 45 then -- char '-'
        return false, sub(line, 2)

    else
        -- when `line` is an empty string, `prefix` will be equal to nil.
        return nil, 'unknown prefix: "' .. tostring(prefix) .. '"'
    end
end

local function _gen_req(args)
    local nargs = #args
    local req = new_tab(nargs * 5 + 1, 0)
    req[1] = "*" .. nargs .. "\r\n"
    local nbits = 2
    for i = 1, nargs do
        local arg = args[i]
        if type(arg) ~= "string" then
            arg = tostring(arg)
        end
        req[nbits] = "$"
        req[nbits + 1] = #arg
        req[nbits + 2] = "\r\n"
        req[nbits + 3] = arg
        req[nbits + 4] = "\r\n"
        nbits = nbits + 5
    end
    -- it is much faster to do string concatenation on the C land
    -- in real world (large number of strings in the Lua table)
    return req
end

local function _do_cmd(self, ...)
    local args = { ... }
    local sock = rawget(self, "_sock")
    if not sock then
        return nil, "not initialized"
    end
    local req = _gen_req(args)
    local reqs = rawget(self, "_reqs")
    if reqs then
        reqs[#reqs + 1] = req
        return
    end
    local bytes, err = sock:send(req)
    if not bytes then
        return nil, err
    end
    return _read_reply(self, sock)
end

function _M.read_reply(self)
    local sock = rawget(self, "_sock")
    if not sock then
        return nil, "not initialized"
    end
    local res, err = _read_reply(self, sock)
    return res, err
end

function _M.array_to_hash(self, t)
    local n = #t
    local h = new_tab(0, n / 2)
    for i = 1, n, 2 do
        h[t[i]] = t[i + 1]
    end
    return h
end

function _M.init_pipeline(self, n)
    self._reqs = new_tab(n or 4, 0)
end

function _M.cancel_pipeline(self)
    self._reqs = nil
end

function _M.commit_pipeline(self)
    local reqs = rawget(self, "_reqs")
    if not reqs then
        return nil, "no pipeline"
    end
    self._reqs = nil
    local sock = rawget(self, "_sock")
    if not sock then
        return nil, "not initialized"
    end
    local bytes, err = sock:send(reqs)
    if not bytes then
        return nil, err
    end
    local nvals = 0
    local nreqs = #reqs
    local vals = new_tab(nreqs, 0)
    for _ = 1, nreqs do
        local res, err = _read_reply(self, sock)
        if res then
            nvals = nvals + 1
            vals[nvals] = res
        elseif res == nil then
            if err == "timeout" then
                close(self)
            end
            return nil, err
        else
            -- be a valid redis error value
            nvals = nvals + 1
            vals[nvals] = { false, err }
        end
    end
    return vals
end

function _M.hmset(self, hashname, ...)
    if select("#", ...) == 1 then
        local t = select(1, ...)
        local n = 0
        for _ in pairs(t) do n = n + 2 end
        local array = new_tab(n, 0)
        local i = 0
        for k, v in pairs(t) do
            array[i + 1] = k
            array[i + 2] = v
            i = i + 2
        end
        return _do_cmd(self, "hmset", hashname, unpack(array))
    end
    -- backwards compatibility
    return _do_cmd(self, "hmset", hashname, ...)
end

-- every other command is a method made on first use, as lua-resty-redis does
setmetatable(_M, { __index = function(self, cmd)
    local method = function(self, ...)
        return _do_cmd(self, cmd, ...)
    end
    -- cache the lazily generated method in our module table
    _M[cmd] = method
    return method
end })

return _M
