-- gl.compat.socket: LuaSocket's API (what its C module socket.core gives) on green
-- sockets, so LuaSocket's own Lua modules (socket.lua, socket.http, ltn12, ...) run green
-- when gl.monkey_patch() installs this as package.loaded["socket.core"].
-- Units and errors are LuaSocket's: seconds, "timeout", "closed", "connection refused".
local gl = require "gl"
local gsock = require "gl.socket"

local M = { _VERSION = "LuaSocket 3.0 (gl)", _SETSIZE = 1024, _DEBUG = false, BLOCKSIZE = 2048 }

local wall0 = os.time() - gl.clock()
function M.gettime() return wall0 + gl.clock() end
function M.sleep(sec) if sec and sec > 0 then gl.sleep(sec) else gl.sleep(0) end end
function M.skip(d, ...) return select(d + 1, ...) end

-- try/protect: errors thrown by try are caught by protect and become nil, err
local TryError = { __tostring = function(e) return tostring(e[1]) end }
function M.newtry(finalizer)
    return function(...)
        local ok = ...
        if ok then return ... end
        if finalizer then pcall(finalizer) end
        error(setmetatable({ (select(2, ...)) }, TryError), 0)
    end
end
function M.protect(fn)
    return function(...)
        local r = table.pack(pcall(fn, ...))
        if r[1] then return table.unpack(r, 2, r.n) end
        local e = r[2]
        if getmetatable(e) == TryError then return nil, e[1] end
        error(e, 0)
    end
end

-- ---- TCP ----
local tcp = {}
tcp.__index = tcp

local function wrap(s, class, family)
    return setmetatable({ _s = s, _buf = "", _class = class, _family = family or "inet",
        _block = nil, _total = nil, _rx = 0, _tx = 0, _t0 = gl.clock() }, tcp)
end

function tcp:__tostring() return ("%s: %s"):format(self._class, tostring(self._s):match("0x%x+") or "?") end
tcp.__close = function(self) self:close() end
tcp.__gc = nil

function tcp:settimeout(v, mode)
    if v ~= nil and v < 0 then v = nil end
    if mode == "t" or mode == "r" then self._total = v else self._block = v end
    return 1
end
function tcp:gettimeout() return self._block, self._total end

-- the per-operation timeout a call uses, nil for none
local function op_timeout(self)
    local b, t = self._block, self._total
    if b and t then return math.min(b, t) end
    return b or t
end

function tcp:getfd() return self._s:closed() and -1 or self._s:fileno() end
function tcp:setfd() end
function tcp:dirty() return #self._buf > 0 end
function tcp:getstats() return self._rx, self._tx, gl.clock() - self._t0 end
function tcp:setstats(rx, tx, age) self._rx, self._tx = rx, tx; self._t0 = gl.clock() - age; return 1 end
function tcp:getfamily() return self._family end

function tcp:setoption(name, value)
    local map = { ["tcp-nodelay"] = "nodelay", keepalive = "keepalive", reuseaddr = "reuseaddr",
        reuseport = "reuseport", linger = "linger" }
    local gname = map[name]
    if not gname then return nil, "unsupported option" end
    if gname == "linger" and type(value) == "table" then value = value.on and value.timeout or false end
    local ok, err = pcall(self._s.setoption, self._s, gname, value)
    if not ok then return nil, tostring(err) end
    return 1
end

function tcp:bind(host, port)
    if host == "*" then host = "0.0.0.0" end
    local ok, err = self._s:bind(host, port)
    if not ok then return nil, err end
    return 1
end

function tcp:listen(backlog)
    local ok, err = self._s:listen(backlog or 32)
    if not ok then return nil, err end
    self._class = "tcp{server}"
    return 1
end

function tcp:connect(host, port)
    if host == "*" then host = "0.0.0.0" end
    local s = self._s
    s:settimeout(op_timeout(self))
    local ok, err = s:connect(host, port)
    if not ok then return nil, err end
    self._class = "tcp{client}"
    return 1
end

function tcp:accept()
    self._s:settimeout(op_timeout(self))
    local c, err = self._s:accept()
    if not c then return nil, err end
    return wrap(c, "tcp{client}", self._family)
end

-- fills the buffer once; nil, err on timeout / EOF
local function fill(self)
    local data, err = self._s:recv(65536)
    if not data then return nil, err end
    self._rx = self._rx + #data
    self._buf = self._buf .. data
    return true
end

function tcp:receive(pattern, prefix)
    if self._s:closed() then return nil, "closed" end
    pattern = pattern or "*l"
    prefix = prefix or ""
    self._s:settimeout(op_timeout(self))
    if type(pattern) == "string" then pattern = pattern:gsub("^%*", "") end
    if pattern == "l" then
        while true do
            local i = self._buf:find("\n", 1, true)
            if i then
                local line = self._buf:sub(1, i - 1):gsub("\r", "")
                self._buf = self._buf:sub(i + 1)
                return prefix .. line
            end
            local ok, err = fill(self)
            if not ok then
                local partial = prefix .. self._buf:gsub("\r", "")
                self._buf = ""
                return nil, err, partial
            end
        end
    elseif pattern == "a" then
        while true do
            local ok, err = fill(self)
            if not ok then
                local data = prefix .. self._buf
                self._buf = ""
                if err == "closed" then return data end
                return nil, err, data
            end
        end
    elseif math.type(tonumber(pattern)) == "integer" or type(pattern) == "number" then
        local n = math.tointeger(tonumber(pattern)) or error("bad argument #1 to 'receive' (invalid pattern)", 2)
        while #self._buf < n do
            local ok, err = fill(self)
            if not ok then
                local partial = prefix .. self._buf
                self._buf = ""
                return nil, err, partial
            end
        end
        local out = self._buf:sub(1, n)
        self._buf = self._buf:sub(n + 1)
        return prefix .. out
    end
    error("bad argument #1 to 'receive' (invalid pattern)", 2)
end

function tcp:send(data, i, j)
    if self._s:closed() then return nil, "closed", 0 end
    data = tostring(data)
    i = i or 1
    j = j or #data
    if i < 0 then i = #data + i + 1 end
    if j < 0 then j = #data + j + 1 end
    if i < 1 then i = 1 end
    if j > #data then j = #data end
    local sent = i - 1
    self._s:settimeout(op_timeout(self))
    while sent < j do
        local n, err = self._s:send(data:sub(sent + 1, j))
        if not n then
            if err == "broken pipe" or err == "connection reset by peer" then err = "closed" end
            return nil, err, sent
        end
        sent = sent + n
        self._tx = self._tx + n
    end
    return j
end

function tcp:shutdown(how)
    local map = { both = "rw", send = "w", receive = "r" }
    self._s:shutdown(map[how or "both"] or "rw")
    return 1
end

function tcp:getpeername()
    local h, p = self._s:getpeername()
    if not h then return nil, p end
    return h, p, self._family
end

function tcp:getsockname()
    local h, p = self._s:getsockname()
    if not h then return nil, p end
    return h, p, self._family
end

function tcp:close()
    self._s:close()
    return 1
end

function tcp:class() return self._class end

local function new_tcp(family)
    local ok, s = pcall(gsock.socket.tcp, family)
    if not ok then return nil, tostring(s) end
    return wrap(s, "tcp{master}", family)
end
function M.tcp() return new_tcp("inet") end
M.tcp4 = M.tcp
function M.tcp6() return new_tcp("inet6") end

function M.connect(host, port, lhost, lport, family)
    local s, err = new_tcp(family == "inet6" and "inet6" or "inet")
    if not s then return nil, err end
    if lhost or lport then
        local ok, e = s:bind(lhost or "0.0.0.0", lport or 0)
        if not ok then s:close(); return nil, e end
    end
    local ok, e = s:connect(host, port)
    if not ok then s:close(); return nil, e end
    return s
end

-- ---- UDP ----
local udp = {}
udp.__index = udp
function udp:__tostring() return "udp{" .. (self._peer and "connected" or "unconnected") .. "}" end
udp.settimeout = function(self, v) if v and v < 0 then v = nil end; self._block = v; return 1 end
udp.getfd, udp.close, udp.getsockname = tcp.getfd, tcp.close, tcp.getsockname
function udp:setsockname(host, port) return tcp.bind(self, host, port) end
function udp:setpeername(host, port)
    if host == "*" then self._peer = nil; return 1 end
    local ok, err = self._s:connect(host, port)
    if not ok then return nil, err end
    self._peer = { host, port }
    return 1
end
function udp:getpeername()
    if not self._peer then return nil, "not connected" end
    return self._peer[1], self._peer[2], "inet"
end
function udp:sendto(data, host, port)
    local n, err = self._s:sendto(data, host, port)
    if not n then return nil, err end
    return #data
end
function udp:send(data)
    local n, err = self._s:send(data)
    if not n then return nil, err end
    return n
end
function udp:receivefrom(size)
    self._s:settimeout(self._block)
    return self._s:recvfrom(size or 8192)
end
function udp:receive(size)
    local data, err = udp.receivefrom(self, size)
    if not data then return nil, err end
    return data
end
function udp:setoption(name, value) return tcp.setoption(self, name, value) end

function M.udp(family)
    local ok, s = pcall(gsock.socket.udp, family or "inet")
    if not ok then return nil, tostring(s) end
    return setmetatable({ _s = s, _family = family or "inet" }, udp)
end
M.udp4 = M.udp
function M.udp6() return M.udp("inet6") end

-- ---- select over green sockets ----
-- select(recvt, sendt [, timeout]) -> readable, writable | {}, {}, "timeout"
function M.select(recvt, sendt, timeout)
    recvt, sendt = recvt or {}, sendt or {}
    local r, w = {}, {}
    local function mark(list, out, s) if not out[s] then out[#out + 1] = s; out[s] = true end end
    for _, s in ipairs(recvt) do if s.dirty and s:dirty() then mark(recvt, r, s) end end
    if #r > 0 then return r, w end
    local ev = gl.Event()
    local waiters = {}
    local function watch(s, out, write)
        if s.getfd and s:getfd() >= 0 then
            waiters[#waiters + 1] = gl.spawn(function()
                gl.trampoline(s:getfd(), { read = not write, write = write })
                mark(nil, out, s)
                if not ev:ready() then ev:send() end
            end)
        end
    end
    for _, s in ipairs(recvt) do watch(s, r, false) end
    for _, s in ipairs(sendt) do watch(s, w, true) end
    if #waiters == 0 and not timeout then return nil, nil, "select failed" end
    ev:wait(timeout and timeout >= 0 and timeout or nil)
    gl.sleep(0) -- others ready at the same moment mark themselves too
    for _, t in ipairs(waiters) do t:kill() end
    if #r == 0 and #w == 0 then return r, w, "timeout" end
    return r, w
end

-- ---- names ----
M.dns = {}
function M.dns.getaddrinfo(host)
    local list, err = gl.dns.getaddrinfo(host)
    if not list then return nil, err end
    local out = {}
    for i, a in ipairs(list) do out[i] = { family = a.family, addr = a.addr } end
    return out
end
function M.dns.toip(host)
    local list, err = gl.dns.resolve(host)
    if not list or not list[1] then return nil, err or "host not found" end
    return list[1], { name = host, alias = {}, ip = list }
end
function M.dns.tohostname(addr) return nil, "host not found" end
function M.dns.gethostname()
    local f = io.open("/proc/sys/kernel/hostname")
    local name = f and f:read("l") or "localhost"
    if f then f:close() end
    return name
end
M.dns.getnameinfo = function() return nil, "not supported" end

-- install(): require "socket" / "socket.core" give this module (LuaSocket's own socket.lua
-- runs on top of it when installed; otherwise "socket" is this module alone).
function M.install()
    package.loaded["socket.core"] = M
    if package.loaded.socket ~= M then package.loaded.socket = nil end
    for _, name in ipairs { "socket.http", "socket.ftp", "socket.smtp", "socket.tp" } do
        package.loaded[name] = nil -- reload on top of the green core
    end
    if not package.searchpath("socket", package.path) then
        package.preload.socket = function() return M end
    end
end

return M
