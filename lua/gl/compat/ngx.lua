-- gl.compat.ngx: a partial OpenResty cosocket face (lua-nginx-module units: ms; its error strings).
-- Done: ngx.socket.tcp (connect host/port and unix:, pool option, settimeout(ms), settimeouts,
-- send of strings and nested tables, receive "*l"/"*a"/count, receiveany, receiveuntil (iterator,
-- inclusive), setkeepalive with per-pool idle connections watched for peer close, getreusedtimes,
-- close), ngx.sleep, ngx.thread.spawn/wait/kill, ngx.timer.at/every, ngx.null, ngx.now/time/
-- update_time, ngx.log and levels, ngx.encode_base64/decode_base64, table.new/table.clear shims.
-- Not done yet: sslhandshake, ngx.socket.udp, ngx.semaphore, ngx.re, ngx.md5/sha1_bin, bit.
local gl = require "gl"

local M = {}
local ngx = {}
M.ngx = ngx

ngx.null = setmetatable({}, { __tostring = function() return "null" end, __name = "ngx.null" })

-- log levels, as lua-nginx-module numbers them
ngx.STDERR, ngx.EMERG, ngx.ALERT, ngx.CRIT, ngx.ERR, ngx.WARN, ngx.NOTICE, ngx.INFO, ngx.DEBUG =
    0, 1, 2, 3, 4, 5, 6, 7, 8
local level_names = { [0] = "stderr", "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug" }
M.log_level = ngx.DEBUG
function ngx.log(level, ...)
    if type(level) ~= "number" then error("bad argument #1 to 'log' (number expected)", 2) end
    if level > M.log_level then return end
    local parts = table.pack(...)
    for i = 1, parts.n do
        local v = parts[i]
        if v == nil then parts[i] = "nil"
        elseif v == ngx.null then parts[i] = "null"
        else parts[i] = tostring(v) end
    end
    io.stderr:write("[", level_names[level] or tostring(level), "] ", table.concat(parts, "", 1, parts.n), "\n")
end

local core = require "gl.core"
local wall_offset = os.time() - core.clock() -- wall time from the monotonic clock (second-aligned)
local cached_now = math.floor((wall_offset + core.clock()) * 1000) / 1000
function ngx.update_time() cached_now = math.floor((wall_offset + core.clock()) * 1000) / 1000 end
function ngx.now() return cached_now end
function ngx.time() return os.time() end

function ngx.sleep(sec)
    ngx.update_time()
    if type(sec) ~= "number" or sec < 0 then error("bad argument #1 to 'sleep'", 2) end
    gl.sleep(sec)
    ngx.update_time()
end

-- ngx.thread
ngx.thread = {}
local thread_mt = { __name = "ngx.thread" }
function ngx.thread.spawn(fn, ...)
    local t = setmetatable({}, thread_mt)
    local args = table.pack(...)
    t.gt = gl.spawn(function()
        local r = table.pack(pcall(fn, table.unpack(args, 1, args.n)))
        t.result = r
        return true
    end)
    return t
end
function ngx.thread.wait(...)
    local n = select("#", ...)
    if n == 0 then error("at least one coroutine should be specified", 2) end
    local ths = { ... }
    while true do
        for i = 1, n do
            local t = ths[i]
            if t.result and not t.waited then
                t.waited = true
                local r = t.result
                if r[1] then return true, table.unpack(r, 2, r.n) end
                return false, r[2]
            end
        end
        local ev = gl.Event()
        local fired = false
        for i = 1, n do
            ths[i].gt:link(function() if not fired then fired = true; ev:send(true) end end)
        end
        ev:wait()
    end
end
function ngx.thread.kill(t)
    if t.result or t.killed then return nil, "already terminated" end
    t.killed = true
    t.gt:kill()
    return true
end

-- ngx.timer
ngx.timer = {}
local pending_timers = 0
function ngx.timer.at(delay, fn, ...)
    if type(fn) ~= "function" then error("bad argument #2 to 'at' (function expected)", 2) end
    local args = table.pack(...)
    pending_timers = pending_timers + 1
    gl.spawn_after(delay, function()
        pending_timers = pending_timers - 1
        local ok, err = pcall(fn, false, table.unpack(args, 1, args.n))
        if not ok then ngx.log(ngx.ERR, "lua entry thread aborted: runtime error: ", err) end
    end)
    return true
end
function ngx.timer.every(delay, fn, ...)
    if type(delay) ~= "number" or delay <= 0 then return nil, "bad argument #1 to 'every' (delay must be > 0)" end
    local args = table.pack(...)
    gl.spawn(function()
        while true do
            gl.sleep(delay)
            local ok, err = pcall(fn, false, table.unpack(args, 1, args.n))
            if not ok then ngx.log(ngx.ERR, "lua entry thread aborted: runtime error: ", err) end
        end
    end)
    return true
end
function ngx.timer.pending_count() return pending_timers end

-- base64
local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local b64rev = {}
for i = 1, 64 do b64rev[b64:byte(i)] = i - 1 end
function ngx.encode_base64(s, no_padding)
    if type(s) ~= "string" then s = s == nil and "" or tostring(s) end
    local out = {}
    for i = 1, #s, 3 do
        local a, b, c = s:byte(i, i + 2)
        local n = (a << 16) | ((b or 0) << 8) | (c or 0)
        local q = {
            b64:sub((n >> 18) + 1, (n >> 18) + 1), b64:sub(((n >> 12) & 63) + 1, ((n >> 12) & 63) + 1),
            b and b64:sub(((n >> 6) & 63) + 1, ((n >> 6) & 63) + 1) or (no_padding and "" or "="),
            c and b64:sub((n & 63) + 1, (n & 63) + 1) or (no_padding and "" or "="),
        }
        out[#out + 1] = table.concat(q)
    end
    return table.concat(out)
end
function ngx.decode_base64(s)
    if type(s) ~= "string" then error("string argument only", 2) end
    s = s:gsub("=+$", "")
    if #s % 4 == 1 then return nil end
    local out, bits, nbits = {}, 0, 0
    for i = 1, #s do
        local v = b64rev[s:byte(i)]
        if not v then return nil end
        bits = (bits << 6) | v
        nbits = nbits + 6
        if nbits >= 8 then
            nbits = nbits - 8
            out[#out + 1] = string.char((bits >> nbits) & 255)
        end
    end
    return table.concat(out)
end

-- the cosocket
local pools = {}          -- name -> list of idle {sock, watcher, reused}
local tcp = {}
tcp.__index = tcp
tcp.__name = "ngx.socket.tcp"

local function flatten(t, out)
    for i = 1, #t do
        local v = t[i]
        local ty = type(v)
        if ty == "table" then flatten(v, out)
        elseif ty == "string" or ty == "number" then out[#out + 1] = tostring(v)
        elseif ty == "boolean" then out[#out + 1] = tostring(v)
        elseif v == nil then out[#out + 1] = "nil"
        else error("bad argument #1 to 'send' (bad data type " .. ty .. " found)", 3) end
    end
end

local function err_map(err)
    if err == nil then return "closed" end
    local e = tostring(err)
    if e:find("refused", 1, true) then return "connection refused" end
    if e:find("timeout", 1, true) or e:find("timed out", 1, true) then return "timeout" end
    if e:find("closed", 1, true) or e:find("reset", 1, true) or e:find("EPIPE") or e:find("pipe", 1, true) then return "closed" end
    return e
end

ngx.socket = {}
function ngx.socket.tcp()
    return setmetatable({ connect_timeout = 60, send_timeout = 60, read_timeout = 60, reused = 0 }, tcp)
end
ngx.socket.stream = ngx.socket.tcp

function tcp:settimeout(ms)
    local s = (ms or 0) / 1000
    if ms == nil or ms == 0 then s = 60 end -- 0 means the config default in lua-nginx-module
    self.connect_timeout, self.send_timeout, self.read_timeout = s, s, s
end
function tcp:settimeouts(c, s, r)
    self.connect_timeout = (c and c > 0) and c / 1000 or 60
    self.send_timeout = (s and s > 0) and s / 1000 or 60
    self.read_timeout = (r and r > 0) and r / 1000 or 60
end

function tcp:connect(host, port, opts)
    if type(port) == "table" then opts, port = port, nil end
    if type(host) ~= "string" then error("bad argument #1 to 'connect' (string expected)", 2) end
    local unix = host:match("^unix:(.+)$")
    if not unix and type(port) ~= "number" and not tonumber(port) then
        error("bad argument #2 to 'connect' (number expected, got " .. type(port) .. ")", 2)
    end
    local name = opts and opts.pool or (unix and host or (host .. ":" .. tostring(port)))
    if self.sock then self:close() end
    self.pool = name
    local list = pools[name]
    if list and #list > 0 then
        local item = table.remove(list)
        item.taken = true
        self.sock = item.sock
        self.reused = item.reused + 1
        self.buf = ""
        -- kill yields: the pool is consistent before it does
        if item.watcher then item.watcher:kill() end
        return 1
    end
    local sock, err
    if unix then
        sock, err = gl.connect(host, nil, { timeout = self.connect_timeout })
    else
        sock, err = gl.connect(host, tonumber(port), { timeout = self.connect_timeout })
    end
    if not sock then return nil, err_map(err) end
    self.sock, self.reused, self.buf = sock, 0, ""
    return 1
end

function tcp:getreusedtimes()
    if not self.sock then return nil, "closed" end
    return self.reused
end

function tcp:send(data)
    local sock = self.sock
    if not sock then return nil, "closed" end
    local ty = type(data)
    if ty == "table" then
        local out = {}
        flatten(data, out)
        data = table.concat(out)
    elseif ty == "number" or ty == "boolean" then data = tostring(data)
    elseif data == nil then data = "nil"
    elseif ty ~= "string" then error("bad argument #1 to 'send' (bad data type " .. ty .. " found)", 2) end
    sock:settimeout(self.send_timeout)
    local ok, err = sock:sendall(data)
    if not ok then
        err = err_map(err)
        if err ~= "timeout" then self:_drop() end
        return nil, err
    end
    return #data
end

function tcp:_drop()
    if self.sock then self.sock:close(); self.sock = nil end
end

-- fill the buffer with one more chunk; returns true or nil, err
function tcp:_fill()
    self.sock:settimeout(self.read_timeout)
    local d, err = self.sock:recv(65536)
    if not d or d == "" then return nil, err_map(err) end
    self.buf = self.buf .. d
    return true
end

function tcp:receive(pat)
    if not self.sock then return nil, "closed" end
    pat = pat or "*l"
    if type(pat) == "number" or tonumber(pat) then
        local n = math.tointeger(tonumber(pat))
        if not n or n < 0 then error("bad argument #1 to 'receive' (bad pattern argument)", 2) end
        while #self.buf < n do
            local ok, err = self:_fill()
            if not ok then
                local partial = self.buf
                if err ~= "timeout" then self.buf = ""; self:_drop() else self.buf = "" end
                return nil, err, partial
            end
        end
        local r = self.buf:sub(1, n)
        self.buf = self.buf:sub(n + 1)
        return r
    elseif pat == "*l" or pat == "l" then
        while true do
            local i = self.buf:find("\n", 1, true)
            if i then
                local line = self.buf:sub(1, i - 1):gsub("\r", "")
                self.buf = self.buf:sub(i + 1)
                return line
            end
            local ok, err = self:_fill()
            if not ok then
                local partial = self.buf
                self.buf = ""
                if err ~= "timeout" then self:_drop() end
                return nil, err, partial
            end
        end
    elseif pat == "*a" or pat == "a" then
        while true do
            local ok, err = self:_fill()
            if not ok then
                local all = self.buf
                self.buf = ""
                if err == "closed" then self:_drop(); return all end
                return nil, err, all
            end
        end
    end
    error("bad argument #1 to 'receive' (bad pattern argument)", 2)
end

function tcp:receiveany(max)
    if not self.sock then return nil, "closed" end
    max = math.tointeger(tonumber(max))
    if not max or max <= 0 then error("bad argument #1 to 'receiveany' (bad max argument)", 2) end
    if #self.buf == 0 then
        local ok, err = self:_fill()
        if not ok then
            if err ~= "timeout" then self:_drop() end
            return nil, err
        end
    end
    local r = self.buf:sub(1, max)
    self.buf = self.buf:sub(max + 1)
    return r
end

function tcp:receiveuntil(pattern, opts)
    if type(pattern) ~= "string" or pattern == "" then error("bad argument #1 to 'receiveuntil' (pattern is empty)", 2) end
    local inclusive = opts and opts.inclusive
    local done = false
    return function(size)
        if done then done = false end
        if not self.sock then return nil, "closed" end
        while true do
            local i, j = self.buf:find(pattern, 1, true)
            if i then
                if size and i - 1 > size then
                    local r = self.buf:sub(1, size)
                    self.buf = self.buf:sub(size + 1)
                    return r
                end
                local r = inclusive and self.buf:sub(1, j) or self.buf:sub(1, i - 1)
                self.buf = self.buf:sub(j + 1)
                if size then
                    if r == "" or (inclusive and false) then return nil, nil, nil end
                    done = true
                end
                return r
            end
            if size and #self.buf > size + #pattern then
                local r = self.buf:sub(1, size)
                self.buf = self.buf:sub(size + 1)
                return r
            end
            local ok, err = self:_fill()
            if not ok then
                local partial = self.buf
                self.buf = ""
                if err ~= "timeout" then self:_drop() end
                return nil, err, partial
            end
        end
    end
end

function tcp:close()
    if not self.sock then return nil, "closed" end
    self:_drop()
    self.buf = ""
    return 1
end

function tcp:setkeepalive(timeout, size)
    local sock = self.sock
    if not sock then return nil, "closed" end
    if #self.buf > 0 then self:close(); return nil, "unread data in buffer" end
    local name = self.pool
    size = size or 30
    if timeout == nil or timeout == 0 then timeout = 60000 end -- lua_socket_keepalive_timeout
    local list = pools[name]
    if not list then list = {}; pools[name] = list end
    self.sock = nil
    local old
    if #list >= size then
        -- lua-nginx-module closes the least recently used one
        old = table.remove(list, 1)
        old.taken = true
    end
    local item = { sock = sock, reused = self.reused }
    list[#list + 1] = item
    item.watcher = gl.spawn(function()
        -- any byte or EOF from an idle peer, or the idle timeout: drop the connection
        sock:settimeout(timeout / 1000)
        local ok = pcall(sock.recv, sock, 1)
        if item.taken then return end
        for i = 1, #list do
            if list[i] == item then table.remove(list, i); break end
        end
        sock:close()
        return ok
    end)
    if old then
        -- kill yields: the pool is consistent before it does
        if old.watcher then old.watcher:kill() end
        old.sock:close()
    end
    return 1
end

function tcp:getfd() return self.sock and self.sock:fileno() or nil end

function M.pool_size(name) return pools[name] and #pools[name] or 0 end

-- shims
local function table_new() return {} end
local function table_clear(t) for k in pairs(t) do t[k] = nil end end

function M.install()
    _G.ngx = ngx
    package.loaded.ngx = ngx
    package.loaded["table.new"] = table_new
    package.loaded["table.clear"] = table_clear
    if not table.new then table.new = table_new end
    if not table.clear then table.clear = table_clear end
    return ngx
end

return M
