-- gl.compat.ngx: enough of OpenResty's Lua API (lua-nginx-module's units: ms; its error
-- strings) for cosocket libraries written for it to run on gl: ngx.socket.tcp/udp with the
-- keepalive pool and sslhandshake, ngx.sleep/thread/timer, ngx.re (gl.compat.ngx.re on
-- PCRE2), ngx.semaphore, digests, base64, time and log; bit, table.new and table.clear shims.
-- install() sets the global ngx and the package.loaded entries. Docs: doc/ngx.md.
local gl = require "gl"

local M = {}
local ngx = {}
M.ngx = ngx

ngx.OK, ngx.ERROR, ngx.AGAIN, ngx.DONE, ngx.DECLINED = 0, -1, -2, -4, -5
ngx.config = { subsystem = "http", debug = false, ngx_lua_version = 10026,
    nginx_version = 1025003, prefix = function() return "./" end }

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

-- ngx.thread: light threads as green threads. Each record wakes the waiters registered in
-- it when its thread ends (killed included).
ngx.thread = {}
local thread_mt = { __name = "ngx.thread" }

function ngx.thread.spawn(fn, ...)
    if type(fn) ~= "function" then
        error("bad argument #1 to 'spawn' (function expected, got " .. type(fn) .. ")", 2)
    end
    local t = setmetatable({ waiters = {} }, thread_mt)
    local args = table.pack(...)
    t.gt = gl.spawn(function()
        t.result = table.pack(pcall(fn, table.unpack(args, 1, args.n)))
    end)
    t.gt:link(function()
        t.ended = true
        for ev in pairs(t.waiters) do if not ev:ready() then ev:send(true) end end
    end)
    return t
end

-- ngx.thread.wait(t1, ...) -> true, results... | false, err: the first of them to end
function ngx.thread.wait(...)
    local n = select("#", ...)
    if n == 0 then error("at least one coroutine should be specified", 2) end
    local ths = { ... }
    for i = 1, n do
        if getmetatable(ths[i]) ~= thread_mt then
            error(("bad argument #%d to 'wait' (ngx.thread expected)"):format(i), 2)
        end
    end
    while true do
        for i = 1, n do
            local t = ths[i]
            if t.waited or t.killed then return false, "already waited or killed" end
            if t.ended then
                t.waited = true
                local r = t.result
                if not r then return false, "killed" end
                if r[1] then return true, table.unpack(r, 2, r.n) end
                return false, r[2]
            end
        end
        local ev = gl.Event()
        for i = 1, n do ths[i].waiters[ev] = true end
        ev:wait()
        for i = 1, n do ths[i].waiters[ev] = nil end
    end
end

-- ngx.thread.kill(t) -> true | nil, "already terminated"
function ngx.thread.kill(t)
    if getmetatable(t) ~= thread_mt then error("bad argument #1 to 'kill' (ngx.thread expected)", 2) end
    if t.ended or t.killed then return nil, "already terminated" end
    t.killed = true
    t.gt:kill()
    return true
end

-- ngx.timer: each timer is a record in `timers` until it has run (at) or the worker exits
-- (every); M.exit_worker() runs what is left with premature = true, as nginx does.
ngx.timer = {}
local timers = {}
local running_timers = 0
local exiting = false

local function run_timer(rec, premature)
    running_timers = running_timers + 1
    local ok, err = pcall(rec.fn, premature, table.unpack(rec.args, 1, rec.args.n))
    running_timers = running_timers - 1
    if not ok then ngx.log(ngx.ERR, "lua entry thread aborted: runtime error: ", tostring(err)) end
end

local function check_timer(delay, fn, name)
    if type(delay) ~= "number" or delay < 0 then
        error(("bad argument #1 to '%s' (delay must be a non-negative number)"):format(name), 3)
    end
    if type(fn) ~= "function" then
        error(("bad argument #2 to '%s' (function expected, got %s)"):format(name, type(fn)), 3)
    end
end

-- ngx.timer.at(delay_sec, fn, ...) -> true | nil, "process exiting"; fn(premature, ...)
function ngx.timer.at(delay, fn, ...)
    check_timer(delay, fn, "at")
    if exiting then return nil, "process exiting" end
    local rec = { fn = fn, args = table.pack(...) }
    timers[rec] = true
    rec.gt = gl.spawn_after(delay, function()
        timers[rec] = nil
        run_timer(rec, false)
    end)
    return true
end

-- ngx.timer.every(delay_sec, fn, ...) -> true | nil, err: fn(premature, ...) every delay
function ngx.timer.every(delay, fn, ...)
    check_timer(delay, fn, "every")
    if delay == 0 then error("bad argument #1 to 'every' (delay cannot be zero)", 2) end
    if exiting then return nil, "process exiting" end
    local rec = { fn = fn, args = table.pack(...), every = true }
    timers[rec] = true
    rec.gt = gl.spawn(function()
        while not rec.stopped do
            rec.sleeping = true
            gl.sleep(delay)
            rec.sleeping = false
            if rec.stopped then break end
            run_timer(rec, false)
        end
    end)
    return true
end

function ngx.timer.pending_count()
    local n = 0
    for rec in pairs(timers) do if not rec.every then n = n + 1 end end
    return n
end
function ngx.timer.running_count() return running_timers end

ngx.worker = {}
function ngx.worker.exiting() return exiting end
function ngx.worker.pid() return require("gl.core").getpid() end
function ngx.worker.id() return 0 end
function ngx.worker.count() return 1 end

-- Ends every pending timer as nginx does at worker exit: each callback runs once more with
-- premature = true (in its own green thread), and this waits for them. New timers are refused.
function M.exit_worker()
    exiting = true
    local list = {}
    for rec in pairs(timers) do list[#list + 1] = rec end
    timers = {}
    local done = {}
    for _, rec in ipairs(list) do
        rec.stopped = true
        if not rec.every then rec.gt:cancel() elseif rec.sleeping then rec.gt:kill() end
        done[#done + 1] = gl.spawn(run_timer, rec, true)
    end
    for _, gt in ipairs(done) do gt:wait() end
end

-- for specs and for a host that wants timers again after exit_worker
function M.reset_worker() exiting = false end

require("gl.compat.ngx.codec")(ngx) -- base64, digests, crc32, URI escaping, args

ngx.re = require "gl.compat.ngx.re"

-- there is no nginx request: ngx.req's functions raise, ngx.var reads nil, phase "timer"
ngx.req = setmetatable({}, { __index = function(_, k)
    return function() error("ngx.req." .. tostring(k) .. ": no request (gl.compat.ngx runs outside nginx)", 2) end
end })
ngx.var = {}
ngx.ctx = {}
function ngx.get_phase() return "timer" end

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

-- gl's error text as lua-nginx-module words it: "closed", "timeout", else the lower-case
-- strerror text ("connection refused", "connection reset by peer", "broken pipe")
local errno_words = { [104] = "connection reset by peer", [32] = "broken pipe" } -- Linux
local function err_map(err, code)
    if code and errno_words[code] then return errno_words[code] end
    if err == nil then return "closed" end
    local e = tostring(err)
    if e == "closed" or e == "timeout" then return e end
    if e:find("timed out", 1, true) then return "timeout" end
    return (e:gsub("^tls: ", ""):lower())
end

-- The read buffer: self.buf holds bytes read ahead, unread from index self.bpos on (so a
-- run of small reads costs no copying of the rest). Count and "*a" reads collect chunks in
-- a list and join them once.
local function avail(self) return #self.buf - self.bpos + 1 end

local function take(self, n)
    local b, p = self.buf, self.bpos
    local r = b:sub(p, p + n - 1)
    p = p + n
    if p > #b then self.buf, self.bpos = "", 1 else self.bpos = p end
    return r
end

local function take_all(self)
    local r = self.buf:sub(self.bpos)
    self.buf, self.bpos = "", 1
    return r
end

ngx.socket = {}
function ngx.socket.tcp()
    return setmetatable({ connect_timeout = 60, send_timeout = 60, read_timeout = 60, reused = 0,
        buf = "", bpos = 1 }, tcp)
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
        self.ssl, self.session = item.ssl, item.session
        self.buf, self.bpos = "", 1
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
    self.sock, self.reused, self.buf, self.bpos, self.ssl, self.session = sock, 0, "", 1, nil, nil
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
    local ok, err, code = sock:sendall(data)
    if not ok then
        err = err_map(err, code)
        if err ~= "timeout" then self:_drop() end
        return nil, err
    end
    return #data
end

function tcp:_drop()
    if self.sock then
        if self.session then self.session:_refresh() end
        self.sock:close()
        self.sock = nil
    end
end

-- TLS sessions for sslhandshake(reused_session): the OpenSSL session, taken again from the
-- connection while it is open (a TLS 1.3 ticket arrives after the handshake)
local session_mt = { __name = "ngx.ssl.session" }
session_mt.__index = session_mt
function session_mt:_refresh()
    local s = self.sock
    if s then
        local ok, sess = pcall(s._session, s)
        if ok and sess then self.sess = sess end
    end
end

-- verification failures as lua-nginx-module words them: "<X509 code>: <reason>"
local x509_codes = {
    ["unable to get local issuer certificate"] = 20,
    ["self-signed certificate"] = 18, ["self signed certificate"] = 18,
    ["self-signed certificate in certificate chain"] = 19,
    ["self signed certificate in certificate chain"] = 19,
    ["certificate has expired"] = 10, ["certificate is not yet valid"] = 9,
    ["hostname mismatch"] = 62, ["unable to get issuer certificate"] = 2,
    ["unable to verify the first certificate"] = 21,
}

M.config = { ssl_trusted_certificate = nil } -- lua_ssl_trusted_certificate: a CA file

-- sock:sslhandshake(reused_session?, server_name?, ssl_verify?, send_status_req?)
--   -> session | true (reused_session == false) | nil, err
function tcp:sslhandshake(reused_session, server_name, ssl_verify, send_status_req)
    local sock = self.sock
    if not sock then return nil, "closed" end
    if server_name ~= nil and type(server_name) ~= "string" then
        error("bad argument #2 to 'sslhandshake' (string expected, got " .. type(server_name) .. ")", 2)
    end
    if send_status_req then
        error("sslhandshake: send_status_req (OCSP stapling requests) is not supported by gl", 2)
    end
    if self.ssl then -- a TLS connection from the pool: no new handshake
        if reused_session == false then return true end
        return self.session or true
    end
    if avail(self) > 0 then return nil, "unread data in buffer" end
    local opts = { verify = ssl_verify == true, hostname = server_name or false,
        cafile = M.config.ssl_trusted_certificate }
    if reused_session and getmetatable(reused_session) == session_mt then
        reused_session:_refresh()
        opts.session = reused_session.sess
    end
    sock:settimeout(self.connect_timeout)
    self.sock = nil
    local tsock, err = gl.wrap_ssl(sock, opts)
    if not tsock then
        err = tostring(err)
        local reason = err:match("certificate verify failed: (.+)$")
        if reason then
            local code = x509_codes[reason]
            return nil, code and (code .. ": " .. reason) or reason
        end
        local e = err_map(err)
        if e == "timeout" or e == "closed" then return nil, e end
        return nil, "handshake failed"
    end
    self.sock, self.ssl = tsock, true
    if reused_session == false then return true end
    local sess = setmetatable({ sock = tsock, sess = tsock:_session() }, session_mt)
    self.session = sess
    return sess
end

-- one recv of up to n bytes into the buffer; true or nil, err
function tcp:_fill(n)
    self.sock:settimeout(self.read_timeout)
    local d, err, code = self.sock:recv(n or 65536)
    if not d or d == "" then return nil, err_map(err, code) end
    if self.bpos > #self.buf then
        self.buf, self.bpos = d, 1
    elseif self.bpos > 1 then
        self.buf, self.bpos = self.buf:sub(self.bpos) .. d, 1
    else
        self.buf = self.buf .. d
    end
    return true
end

-- a failed read: the partial data goes back to the caller; only a timeout keeps the socket
function tcp:_fail(err, partial)
    if err ~= "timeout" then self:_drop() end
    return nil, err, partial
end

local function receive_count(self, n)
    local have = avail(self)
    if have >= n then return take(self, n) end
    local parts = { take_all(self) }
    local sock = self.sock
    sock:settimeout(self.read_timeout)
    while have < n do
        local want = n - have
        local d, err, code = sock:recv(want < 65536 and 65536 or (want < 1048576 and want or 1048576))
        if not d or d == "" then return self:_fail(err_map(err, code), table.concat(parts)) end
        if #d > want then
            parts[#parts + 1] = d:sub(1, want)
            self.buf, self.bpos = d, want + 1
        else
            parts[#parts + 1] = d
        end
        have = have + #d
    end
    return table.concat(parts)
end

-- sock:receive("*l" | "*a" | n) -> data | nil, err, partial
function tcp:receive(pat)
    if not self.sock then return nil, "closed" end
    pat = pat or "*l"
    if type(pat) == "number" or tonumber(pat) then
        local n = math.tointeger(tonumber(pat))
        if not n or n < 0 then error("bad argument #1 to 'receive' (bad pattern argument)", 2) end
        return receive_count(self, n)
    elseif pat == "*l" or pat == "l" then
        local from = self.bpos
        while true do
            local i = self.buf:find("\n", from, true)
            if i then
                local line = self.buf:sub(self.bpos, i - 1)
                if self.buf:byte(i - 1) == 13 or line:find("\r", 1, true) then
                    line = line:gsub("\r", "") -- every CR is dropped, as lua-nginx-module does
                end
                take(self, i - self.bpos + 1)
                return line
            end
            local seen = avail(self)
            local ok, err = self:_fill()
            if not ok then return self:_fail(err, take_all(self)) end
            from = self.bpos + seen
        end
    elseif pat == "*a" or pat == "a" then
        local parts = { take_all(self) }
        local sock = self.sock
        sock:settimeout(self.read_timeout)
        while true do
            local d, err, code = sock:recv(65536)
            if not d or d == "" then
                err = err_map(err, code)
                if err == "closed" then self:_drop(); return table.concat(parts) end
                return self:_fail(err, table.concat(parts))
            end
            parts[#parts + 1] = d
        end
    end
    error("bad argument #1 to 'receive' (bad pattern argument)", 2)
end

-- sock:receiveany(max) -> what is there (at most max bytes) | nil, err
function tcp:receiveany(max)
    if not self.sock then return nil, "closed" end
    max = math.tointeger(tonumber(max))
    if not max or max <= 0 then error("bad argument #1 to 'receiveany' (bad max argument)", 2) end
    if avail(self) == 0 then
        local ok, err = self:_fill(max < 65536 and max or 65536)
        if not ok then
            if err ~= "timeout" then self:_drop() end
            return nil, err
        end
    end
    return take(self, math.min(max, avail(self)))
end

-- sock:receiveuntil(pattern [, {inclusive = true}]) -> reader; reader([size]) returns the
-- data before the pattern (consuming the pattern). With size, it returns at most size bytes
-- per call and then nil once the pattern was reached; the next call starts over.
function tcp:receiveuntil(pattern, opts)
    if type(pattern) ~= "string" or pattern == "" then
        error("bad argument #1 to 'receiveuntil' (pattern is empty)", 2)
    end
    local inclusive = opts and opts.inclusive
    local done = false
    return function(size)
        if done then done = false; return nil end
        if not self.sock then return nil, "closed" end
        if size ~= nil then
            size = math.tointeger(size)
            if not size or size <= 0 then error("bad argument #1 to 'reader' (bad size)", 2) end
        end
        local from = self.bpos
        while true do
            local i, j = self.buf:find(pattern, from, true)
            if i then
                local before = i - self.bpos
                if size and before > size then return take(self, size) end
                local r = take(self, before)
                local pat = take(self, j - i + 1)
                if inclusive then r = r .. pat end
                if size then
                    if r == "" then return nil end
                    done = true
                end
                return r
            end
            -- bytes that cannot start the pattern may go out already when a size is given
            local safe = avail(self) - (#pattern - 1)
            if size and safe >= size then return take(self, size) end
            local seen = avail(self)
            local ok, err = self:_fill()
            if not ok then return self:_fail(err, take_all(self)) end
            from = self.bpos + math.max(0, seen - (#pattern - 1))
        end
    end
end

function tcp:close()
    if not self.sock then return nil, "closed" end
    self:_drop()
    self.buf, self.bpos = "", 1
    return 1
end

function tcp:setkeepalive(timeout, size)
    local sock = self.sock
    if not sock then return nil, "closed" end
    if avail(self) > 0 then self:close(); return nil, "unread data in buffer" end
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
    local item = { sock = sock, reused = self.reused, ssl = self.ssl, session = self.session }
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

-- ngx.socket.udp: a connected datagram socket (setpeername, send, receive, close)
local udp = {}
udp.__index = udp
udp.__name = "ngx.socket.udp"

function ngx.socket.udp() return setmetatable({ timeout = 60 }, udp) end

function udp:settimeout(ms)
    if ms == nil or ms == 0 then self.timeout = 60 else self.timeout = ms / 1000 end
end

-- udp:setpeername(host, port) or ("unix:/path") -> 1 | nil, err
function udp:setpeername(host, port)
    if type(host) ~= "string" then error("bad argument #1 to 'setpeername' (string expected)", 2) end
    if self.sock then self.sock:close(); self.sock = nil end
    local unix = host:match("^unix:(.+)$")
    local s
    if unix then
        s = gl.socket.udp("unix")
    else
        port = tonumber(port)
        if not port then error("bad argument #2 to 'setpeername' (number expected)", 2) end
        s = gl.socket.udp(host:find(":", 1, true) and "inet6" or "inet")
    end
    local ok, err = s:connect(host, port)
    if not ok then s:close(); return nil, err_map(err) end
    self.sock = s
    return 1
end

-- udp:send(data) -> 1 | nil, err: one datagram; data as for tcp:send
function udp:send(data)
    local sock = self.sock
    if not sock then return nil, "closed" end
    if type(data) == "table" then
        local out = {}
        flatten(data, out)
        data = table.concat(out)
    elseif type(data) ~= "string" then data = tostring(data) end
    sock:settimeout(self.timeout)
    local n, err, code = sock:send(data)
    if not n then return nil, err_map(err, code) end
    return 1
end

-- udp:receive(size?) -> datagram | nil, err; size defaults to 8192 (at most 65536)
function udp:receive(size)
    local sock = self.sock
    if not sock then return nil, "closed" end
    size = size and math.tointeger(size) or 8192
    if size <= 0 then error("bad argument #1 to 'receive' (size must be positive)", 2) end
    if size > 65536 then size = 65536 end
    sock:settimeout(self.timeout)
    local d, err, code = sock:recv(size)
    if not d then return nil, err_map(err, code) end
    return d
end

function udp:close()
    if not self.sock then return nil, "closed" end
    self.sock:close()
    self.sock = nil
    return 1
end

-- shims
local function table_new() return {} end
local function table_clear(t) for k in pairs(t) do t[k] = nil end end

function M.install()
    _G.ngx = ngx
    package.loaded.ngx = ngx
    if _G.unpack == nil then _G.unpack = table.unpack end -- Lua 5.1's, which resty code uses
    -- LuaJIT-only modules: narrow stand-ins, only where no real one can be found
    local function missing(name)
        return not package.loaded[name] and not package.preload[name]
            and not package.searchpath(name, package.path) and not package.searchpath(name, package.cpath)
    end
    if missing("ffi") then package.preload.ffi = function() return require "gl.compat.ngx.ffi" end end
    for _, name in ipairs({ "string", "md5", "sha1", "sha256", "sha512" }) do
        if missing("resty." .. name) then
            package.preload["resty." .. name] = function() return require("gl.compat.ngx.resty_string")[name] end
        end
    end
    package.loaded["ngx.semaphore"] = require "gl.compat.ngx.semaphore"
    package.loaded.bit = package.loaded.bit or require "gl.compat.ngx.bit"
    package.loaded["table.new"] = table_new
    package.loaded["table.clear"] = table_clear
    if not table.new then table.new = table_new end
    if not table.clear then table.clear = table_clear end
    return ngx
end

return M
