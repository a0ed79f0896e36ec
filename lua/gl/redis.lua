-- gl.redis: a green Redis client on gl's own sockets: RESP2 and RESP3 replies, commands as
-- methods, pipelines (one write each), pub/sub as a green iterator that reconnects, and a
-- pool. The bytes are read through the C socket's buffer (sock:read); parsing is Lua.
local core = require "gl.core"
local gl = require "gl"
local socket = require "gl.socket"
local pools = require "gl.pools"

local byte, sub, find, concat = string.byte, string.sub, string.find, table.concat
local tointeger, mtype = math.tointeger, math.type
local pack, unpack = table.pack, table.unpack

local M = {}

local function sentinel(name)
    return setmetatable({}, { __tostring = function() return name end, __name = name })
end

-- A nil reply inside an array, map or pipeline (a Lua table cannot hold nil and keep its
-- length); a nil reply to a single call is plain nil.
M.null = sentinel("redis.null")
local null = M.null

-- Error replies inside arrays and pipelines: {err = "WRONGTYPE ..."} with this metatable.
local Err = { __name = "gl.redis.error" }
Err.__index = Err
Err.__tostring = function(e) return e.err end
function M.is_error(v) return getmetatable(v) == Err end

-- RESP3 push frames (pub/sub messages, invalidations) are lists with this metatable.
local Push = { __name = "gl.redis.push" }

-- Options and URLs -----------------------------------------------------------------

local function unescape(s)
    return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parse_query(q, o)
    for k, v in q:gmatch("([^&=]+)=([^&]*)") do
        k, v = unescape(k), unescape(v)
        if k == "db" then o.db = tonumber(v)
        elseif k == "password" then o.password = v
        elseif k == "username" or k == "user" then o.username = v
        elseif k == "timeout" then o.timeout = tonumber(v)
        elseif k == "resp" or k == "protocol" then o.resp = tonumber(v)
        end
    end
end

-- redis://[user:pass@]host[:port][/db][?k=v], rediss://..., unix:///path[?db=n&password=p]
local function parse_url(url)
    local o = {}
    local path = url:match("^unix://(/[^?]*)") or url:match("^unix:(/[^?]*)")
    if path then
        o.path = unescape(path)
        local q = url:match("%?(.*)$")
        if q then parse_query(q, o) end
        return o
    end
    local scheme, rest = url:match("^(rediss?)://(.*)$")
    if not scheme then return nil, "gl.redis: not a redis URL: " .. url end
    if scheme == "rediss" then o.tls = {} end
    local q
    rest, q = rest:match("^([^?]*)%??(.*)$")
    local auth, hostpart = rest:match("^(.*)@(.*)$")
    if not auth then hostpart = rest end
    if auth then
        local u, p = auth:match("^([^:]*):(.*)$")
        if u then
            if u ~= "" then o.username = unescape(u) end
            o.password = unescape(p)
        elseif auth ~= "" then
            o.password = unescape(auth) -- redis://secret@host, as some clients accept
        end
    end
    local hp, db = hostpart:match("^([^/]*)/?(.*)$")
    local host, port = hp:match("^%[(.+)%]:?(%d*)$") -- [::1]:6379
    if not host then host, port = hp:match("^([^:]*):?(%d*)$") end
    if host and host ~= "" then o.host = host end
    if port and port ~= "" then o.port = tonumber(port) end
    if db and db ~= "" then
        o.db = tonumber(db)
        if not o.db then return nil, "gl.redis: bad database number in " .. url end
    end
    if q and q ~= "" then parse_query(q, o) end
    return o
end

local function options(spec, fname)
    local o
    if type(spec) == "string" then
        local err
        o, err = parse_url(spec)
        if not o then return nil, err end
    elseif type(spec) == "table" then
        o = {}
        if spec.url then
            local u, err = parse_url(spec.url)
            if not u then return nil, err end
            for k, v in pairs(u) do o[k] = v end
        end
        for k, v in pairs(spec) do
            if k ~= "url" then o[k] = v end
        end
    elseif spec == nil then
        o = {}
    else
        error(fname .. ": a URL string or an options table expected", 3)
    end
    o.host = o.host or "127.0.0.1"
    o.port = o.port or 6379
    o.db = o.db or 0
    o.resp = o.resp or 2
    if o.resp ~= 2 and o.resp ~= 3 then error(fname .. ": resp must be 2 or 3", 3) end
    if o.tls == true then o.tls = {} end
    return o
end

-- Encoding -------------------------------------------------------------------------

local function arg_string(v)
    local t = type(v)
    if t == "string" then return v end
    if t == "number" then
        if mtype(v) == "integer" then return tostring(v) end
        local i = tointeger(v)
        if i then return tostring(i) end
        return ("%.17g"):format(v)
    end
    error("gl.redis: command arguments must be strings or numbers (got " .. t .. ")", 4)
end

-- Appends one command in RESP (an array of bulk strings) to buf; list tables among the
-- arguments are spread (c:del(keys), c:rpush("l", items)).
local function encode(buf, ...)
    local n = select("#", ...)
    local head = #buf + 1
    buf[head] = false -- the array header, once the count is known
    local count = 0
    for i = 1, n do
        local v = select(i, ...)
        if type(v) == "table" then
            for j = 1, #v do
                local s = arg_string(v[j])
                buf[#buf + 1] = "$" .. #s .. "\r\n"
                buf[#buf + 1] = s
                buf[#buf + 1] = "\r\n"
                count = count + 1
            end
        else
            local s = arg_string(v)
            buf[#buf + 1] = "$" .. #s .. "\r\n"
            buf[#buf + 1] = s
            buf[#buf + 1] = "\r\n"
            count = count + 1
        end
    end
    buf[head] = "*" .. count .. "\r\n"
    return buf
end
M._encode = encode

-- Decoding -------------------------------------------------------------------------

local read_reply

local function proto_error(what)
    return nil, "gl.redis: protocol error: " .. what
end

local function read_bulk(sock, n)
    if n == 0 then
        local crlf, err = sock:read("l")
        if crlf == nil then return nil, err or "closed" end
        if crlf ~= "\r" then return proto_error("bad bulk end") end
        return ""
    end
    local data, crlf = sock:read(n, "l")
    if not data then return nil, crlf or "closed" end
    if #data ~= n or crlf ~= "\r" then
        if crlf == nil and #data == n then return nil, "closed" end
        return nil, #data < n and "closed" or "gl.redis: protocol error: bad bulk end"
    end
    return data
end

local function read_list(sock, n)
    local t = {}
    for i = 1, n do
        local v, err = read_reply(sock)
        if v == nil then return nil, err end
        t[i] = v
    end
    return t
end

local doubles = { inf = math.huge, ["+inf"] = math.huge, ["-inf"] = -math.huge }

-- parse(sock, line) -> the reply that starts with line (its first line, read already).
local function parse(sock, line)
    local len = #line
    if byte(line, len) ~= 13 then return nil, "closed" end -- cut short by EOF
    local t = byte(line)
    local rest = sub(line, 2, len - 1)
    if t == 43 then -- + simple string
        return rest
    elseif t == 36 then -- $ bulk
        local n = tointeger(tonumber(rest))
        if not n or n < -1 then return proto_error("bad bulk length") end
        if n == -1 then return null end
        return read_bulk(sock, n)
    elseif t == 58 then -- : integer
        local n = tointeger(tonumber(rest))
        if not n then return proto_error("bad integer") end
        return n
    elseif t == 42 or t == 126 or t == 62 then -- * array, ~ set, > push
        local n = tointeger(tonumber(rest))
        if not n or n < -1 then return proto_error("bad array length") end
        if n == -1 then return null end
        local list, lerr = read_list(sock, n)
        if not list then return nil, lerr end
        if t == 62 then setmetatable(list, Push) end
        return list
    elseif t == 45 then -- - error
        return setmetatable({ err = rest }, Err)
    elseif t == 37 then -- % map
        local n = tointeger(tonumber(rest))
        if not n or n < 0 then return proto_error("bad map length") end
        local map = {}
        for _ = 1, n do
            local k, kerr = read_reply(sock)
            if k == nil then return nil, kerr end
            local v, verr = read_reply(sock)
            if v == nil then return nil, verr end
            if k ~= null then map[k] = v end
        end
        return map
    elseif t == 95 then -- _ null
        return null
    elseif t == 44 then -- , double
        local d = doubles[rest] or tonumber(rest)
        if d == nil then
            if rest == "nan" then return 0 / 0 end
            return proto_error("bad double")
        end
        return d + 0.0
    elseif t == 35 then -- # boolean
        return rest == "t"
    elseif t == 40 then -- ( big number, kept exact as a string
        return rest
    elseif t == 61 or t == 33 then -- = verbatim "txt:...", ! blob error
        local n = tointeger(tonumber(rest))
        if not n then return proto_error("bad length") end
        local data, derr = read_bulk(sock, n)
        if not data then return nil, derr end
        if t == 33 then return setmetatable({ err = data }, Err) end
        return sub(data, 5)
    elseif t == 124 then -- | attributes: read and dropped; the reply follows
        local n = tointeger(tonumber(rest))
        if not n then return proto_error("bad attribute length") end
        for _ = 1, 2 * n do
            local v, verr = read_reply(sock)
            if v == nil then return nil, verr end
        end
        return read_reply(sock)
    end
    return proto_error("unknown reply type " .. string.format("%q", sub(line, 1, 1)))
end

-- read_reply(sock) -> value | nil, network or protocol error. Null replies are M.null,
-- error replies Err tables, push frames Push lists.
function read_reply(sock)
    local line, err = sock:read("l")
    if not line then return nil, err or "closed" end
    return parse(sock, line)
end
M._read_reply = read_reply

-- Client ---------------------------------------------------------------------------

local Client = {}
local commands = {} -- name -> method, made once per name

local client_mt = {
    __name = "gl.redis.client",
    __index = function(_, k)
        local m = Client[k]
        if m ~= nil then return m end
        m = commands[k]
        if m then return m end
        if type(k) ~= "string" or not find(k, "^[%a][%w_]*$") then return nil end
        m = function(self, ...) return self:call(k, ...) end
        commands[k] = m
        return m
    end,
    __tostring = function(c)
        return ("gl.redis.client (%s)"):format(c.sock and c.addr or "closed")
    end,
}

-- The lock that keeps one request-reply exchange per connection at a time, and the
-- guard that closes the connection when a kill or Timeout interrupts one: the replies
-- still in flight would otherwise be read by the next caller.
local function acquire(c)
    if c._busy then
        c._waiters:park("gl.redis: waiting for the connection")
    else
        c._busy = true
    end
end

local function release(c)
    if not c._waiters:wake_one(true) then c._busy = false end
end

local Guard = {
    __close = function(g)
        local c = g.c
        if c._inflight then
            c._inflight = false
            c:close()
        end
        release(c)
    end,
}

local function fail(c, err)
    c._inflight = false
    c:close()
    return nil, err
end

-- Sends what buf holds and reads n replies (n = 1: one reply, returned as it is).
local function exchange(c, buf, n)
    acquire(c)
    local _ <close> = c._guard
    local sock = c.sock
    if not sock then return nil, "closed" end
    c._inflight = true
    local ok, err = sock:sendall(concat(buf))
    if not ok then return fail(c, err) end
    local v
    local on_push = c._on_push
    local list = n > 1 and { n = n } or nil
    for i = 1, n do
        while true do
            v, err = read_reply(sock)
            if v == nil then return fail(c, err) end
            if getmetatable(v) ~= Push then break end
            if on_push then on_push(v) end -- RESP3 out-of-band data: not a reply
        end
        if list then list[i] = v end
    end
    if list then v = list end
    c._inflight = false
    return v
end

local forbidden = {
    subscribe = true, psubscribe = true, ssubscribe = true, monitor = true,
    SUBSCRIBE = true, PSUBSCRIBE = true, SSUBSCRIBE = true, MONITOR = true,
}

-- c:call(cmd, ...) -> reply | nil (a nil reply) | nil, msg (Redis's error or a network
-- error; after a network error the connection is closed).
function Client:call(cmd, ...)
    if forbidden[cmd] then
        error("gl.redis: " .. cmd .. " needs a connection of its own: use redis.subscribe", 2)
    end
    local v, err = exchange(self, encode({}, cmd, ...), 1)
    if v == nil then return nil, err end
    if v == null then return nil end
    if getmetatable(v) == Err then return nil, v.err end
    return v
end

function Client:close()
    local sock = self.sock
    if sock then
        self.sock = false
        sock:close()
    end
    return true
end
client_mt.__close = Client.close

function Client:closed()
    return not self.sock
end

-- The socket, for gl.trampoline and tests.
function Client:socket()
    return self.sock
end

-- Pipelines ------------------------------------------------------------------------

local Pipeline = {}
local pipe_commands = {}
local pipe_mt = {
    __name = "gl.redis.pipeline",
    __index = function(_, k)
        local m = Pipeline[k]
        if m ~= nil then return m end
        m = pipe_commands[k]
        if m then return m end
        if type(k) ~= "string" or not find(k, "^[%a][%w_]*$") then return nil end
        m = function(self, ...) return self:call(k, ...) end
        pipe_commands[k] = m
        return m
    end,
}

-- p:call(cmd, ...) queues a command; returns p, so calls can be chained.
function Pipeline:call(cmd, ...)
    if forbidden[cmd] then error("gl.redis: " .. cmd .. " cannot be pipelined", 2) end
    encode(self._buf, cmd, ...)
    self._n = self._n + 1
    return self
end

-- p:execute() -> list of replies in order (n = count; nil replies are redis.null, error
-- replies {err = msg}) | nil, network error. The pipeline is empty again afterwards.
function Pipeline:execute()
    local n, buf = self._n, self._buf
    self._n, self._buf = 0, {}
    if n == 0 then return { n = 0 } end
    local v, err = exchange(self._c, buf, n)
    if not v then return nil, err end
    if n == 1 then v = { v, n = 1 } end
    return v
end

function Pipeline:count()
    return self._n
end

-- c:pipeline([fn]) -> a pipeline; with fn, fn(p) queues commands and the replies are
-- returned at once.
function Client:pipeline(fn)
    local p = setmetatable({ _c = self, _buf = {}, _n = 0 }, pipe_mt)
    if fn == nil then return p end
    fn(p)
    return p:execute()
end

-- Connecting -----------------------------------------------------------------------

local function open_socket(o)
    local sock, err
    local ctimeout = o.connect_timeout or o.timeout or 10
    if o.path then
        sock, err = socket.connect("unix:" .. o.path, nil, { timeout = ctimeout })
    else
        sock, err = socket.connect(o.host, o.port, { timeout = ctimeout })
    end
    if not sock then return nil, err end
    if o.tls then
        local topts = {}
        for k, v in pairs(o.tls) do topts[k] = v end
        local tsock, terr = require("gl.tls").wrap_ssl(sock, topts)
        if not tsock then
            sock:close()
            return nil, terr
        end
        sock = tsock
    end
    if o.timeout then sock:settimeout(o.timeout) end
    return sock
end

local function handshake(c, o)
    if o.resp == 3 then
        local args = { "HELLO", "3" }
        if o.password then
            args[#args + 1] = "AUTH"
            args[#args + 1] = o.username or "default"
            args[#args + 1] = o.password
        end
        if o.name then
            args[#args + 1] = "SETNAME"
            args[#args + 1] = o.name
        end
        local v, err = c:call(unpack(args))
        if not v then return nil, err end
        c.server = v -- HELLO's map: version, proto, id, mode, role, modules
    else
        if o.password then
            local ok, err
            if o.username then
                ok, err = c:call("AUTH", o.username, o.password)
            else
                ok, err = c:call("AUTH", o.password)
            end
            if not ok then return nil, err end
        end
        if o.name then
            local ok, err = c:call("CLIENT", "SETNAME", o.name)
            if not ok then return nil, err end
        end
    end
    if o.db and o.db ~= 0 then
        local ok, err = c:call("SELECT", o.db)
        if not ok then return nil, err end
    end
    return true
end

local function new_client(sock, o)
    local c = setmetatable({
        sock = sock,
        resp = o.resp,
        db = o.db,
        addr = o.path and ("unix:" .. o.path) or (o.host .. ":" .. o.port),
        _busy = false,
        _inflight = false,
        _waiters = core.waitq(),
        _on_push = o.on_push,
        server = false,
    }, client_mt)
    c._guard = setmetatable({ c = c }, Guard)
    return c
end

-- redis.connect(url_or_opts) -> client | nil, msg
function M.connect(spec)
    local o, oerr = options(spec, "gl.redis.connect")
    if not o then return nil, oerr end
    local sock, err = open_socket(o)
    if not sock then return nil, err end
    local c = new_client(sock, o)
    local ok, herr = handshake(c, o)
    if not ok then
        c:close()
        return nil, herr
    end
    return c
end

-- Pub/sub --------------------------------------------------------------------------

local Sub = {}
Sub.__index = Sub
Sub.__name = "gl.redis.subscription"

local function queue_push(s, m)
    s._qt = s._qt + 1
    s._q[s._qt] = m
end

local function queue_pop(s)
    if s._qh > s._qt then return nil end
    local m = s._q[s._qh]
    s._q[s._qh] = nil
    s._qh = s._qh + 1
    return m
end

local function send(s, ...)
    local sock = s.sock
    if not sock then return nil, "closed" end
    return sock:sendall(concat(encode({}, ...)))
end

-- Handles one frame from the subscribed connection.
local function handle(s, f)
    if type(f) ~= "table" or getmetatable(f) == Err then
        if getmetatable(f) == Err then s.last_error = f.err end
        s._ping_out = false -- RESP3 PONG, or RESP2's PONG once no longer subscribed
        return
    end
    local kind = f[1]
    if kind == "message" then
        if s.channels[f[2]] then
            queue_push(s, { kind = "message", channel = f[2], data = f[3] })
        end
    elseif kind == "pmessage" then
        if s.patterns[f[2]] then
            queue_push(s, { kind = "message", pattern = f[2], channel = f[3], data = f[4] })
        end
    elseif kind == "subscribe" then
        s._confirmed[f[2]] = true
    elseif kind == "psubscribe" then
        s._pconfirmed[f[2]] = true
    elseif kind == "unsubscribe" then
        if f[2] ~= null then s._confirmed[f[2]] = nil end
    elseif kind == "punsubscribe" then
        if f[2] ~= null then s._pconfirmed[f[2]] = nil end
    elseif kind == "pong" then
        s._ping_out = false
    end
end

local function all_confirmed(s)
    for ch in pairs(s.channels) do
        if not s._confirmed[ch] then return false end
    end
    for p in pairs(s.patterns) do
        if not s._pconfirmed[p] then return false end
    end
    return true
end

local function sorted_keys(t)
    local l = {}
    for k in pairs(t) do l[#l + 1] = k end
    table.sort(l)
    return l
end

-- Connects, subscribes to every channel and pattern in the set and reads until Redis
-- confirmed them all (messages that arrive meanwhile are queued).
local function sub_connect(s)
    local c, err = M.connect(s._opts)
    if not c then return nil, err end
    local sock = c.sock
    c.sock = false -- the socket is the subscription's now
    s._confirmed, s._pconfirmed, s._ping_out = {}, {}, false
    local buf = {}
    local chans, pats = sorted_keys(s.channels), sorted_keys(s.patterns)
    if #chans > 0 then encode(buf, "SUBSCRIBE", chans) end
    if #pats > 0 then encode(buf, "PSUBSCRIBE", pats) end
    if #buf > 0 then
        local ok, serr = sock:sendall(concat(buf))
        if not ok then sock:close(); return nil, serr end
    end
    while not all_confirmed(s) do
        local f, rerr = read_reply(sock)
        if f == nil then sock:close(); return nil, rerr end
        handle(s, f)
    end
    sock:settimeout(s._ping_interval)
    s.sock = sock
    return true
end

-- Reads and handles one frame; on a broken connection reconnects (with backoff) when
-- the subscription does, else closes it. Returns false once the subscription is closed.
local function pump(s)
    if s._closed then return false end
    local sock, err = s.sock, s.error
    if sock then
        -- a wait for a frame's first line consumes nothing when it ends early (a socket
        -- timeout, or a gl.Timeout of sub:next): only a frame cut in half breaks the stream
        local line, lerr = sock:read("l")
        if line then
            s._midframe = true
            local f, perr = parse(sock, line)
            s._midframe = false
            if f ~= nil then
                handle(s, f)
                return true
            end
            err = perr
        else
            err = lerr or "closed"
            if s._closed then return false end
            if err == "timeout" and not s._ping_out then
                -- idle for ping_interval: a PING tells a quiet channel from a dead connection
                s._ping_out = true
                if send(s, "PING") then return true end
            end
        end
        if s._closed then return false end
        sock:close()
        s.sock = nil
    end
    s.error = err
    if not s.reconnect then
        s:close()
        return false
    end
    local delay = s._backoff_min
    while not s._closed do
        local at = s._qt + 1
        local ok, cerr = sub_connect(s)
        if ok then
            -- the event goes before whatever arrived while re-subscribing
            local q = s._q
            at = math.max(at, s._qh)
            for i = s._qt, at, -1 do q[i + 1] = q[i] end
            q[at] = { kind = "reconnect", error = err }
            s._qt = s._qt + 1
            s.reconnects = s.reconnects + 1
            return true
        end
        s.error = cerr
        if s._closed then break end
        s._sleepq:park("gl.redis: reconnect backoff", delay) -- close() wakes it
        delay = math.min(delay * 2, s._backoff_max)
    end
    return false
end

-- Runs pump in whichever green thread needs a frame; other threads wait for it. Returns
-- false once the subscription is closed.
local function step(s)
    if s._reading then
        s._waiters:park("gl.redis: subscription")
        return not s._closed
    end
    s._reading = true
    local ok, more = pcall(pump, s)
    s._reading = false
    if not ok and (s._midframe or not s.sock) then
        -- interrupted inside a frame, or while reconnecting: the next pump reconnects
        s._midframe = false
        if s.sock then s.sock:close(); s.sock = nil end
        s.error = "interrupted"
    end
    s._waiters:wake_all()
    if not ok then error(more, 0) end
    return more
end

-- sub:messages() -> green iterator of {kind = "message", channel, data, pattern} and,
-- after a reconnect, one {kind = "reconnect"}; it ends when the subscription closes.
function Sub:messages()
    return function()
        while true do
            local m = queue_pop(self)
            if m then return m end
            if self._closed or not step(self) then
                return queue_pop(self)
            end
        end
    end
end

-- sub:next([timeout]) -> the next message | nil, "timeout" | nil, "closed"
function Sub:next(timeout)
    local m = queue_pop(self)
    if m then return m end
    if self._closed then return nil, "closed" end
    local it = self:messages()
    if not timeout then
        m = it()
        if m then return m end
        return nil, "closed"
    end
    local ok, r = pcall(gl.with_timeout, timeout, it)
    if ok then
        if r then return r end
        return nil, "closed"
    end
    if gl.is_timeout(r) then return nil, "timeout" end
    error(r, 0)
end

local function names(...)
    local l = {}
    for i = 1, select("#", ...) do
        local v = select(i, ...)
        if type(v) == "table" then
            for _, x in ipairs(v) do l[#l + 1] = x end
        else
            l[#l + 1] = v
        end
    end
    return l
end

local function add_and_wait(s, cmd, set, confirmed_name, list)
    if #list == 0 then return true end
    for _, ch in ipairs(list) do set[ch] = true end
    local ok, err = send(s, cmd, list)
    if not ok and not s.reconnect then return nil, err end
    -- confirmed by this connection or, after a reconnect, by the next one
    while not s._closed do
        local done = true
        for _, ch in ipairs(list) do
            if set[ch] and not s[confirmed_name][ch] then done = false; break end
        end
        if done then return true end
        step(s)
    end
    return nil, "closed"
end

-- sub:subscribe(ch, ...) -> true once Redis confirmed | nil, err
function Sub:subscribe(...)
    return add_and_wait(self, "SUBSCRIBE", self.channels, "_confirmed", names(...))
end

function Sub:psubscribe(...)
    return add_and_wait(self, "PSUBSCRIBE", self.patterns, "_pconfirmed", names(...))
end

-- sub:unsubscribe([ch, ...]) (none: every channel); messages on them stop at once.
function Sub:unsubscribe(...)
    local list = names(...)
    if #list == 0 then
        if next(self.channels) == nil then return true end
        self.channels = {}
        return send(self, "UNSUBSCRIBE")
    end
    for _, ch in ipairs(list) do self.channels[ch] = nil end
    return send(self, "UNSUBSCRIBE", list)
end

function Sub:punsubscribe(...)
    local list = names(...)
    if #list == 0 then
        if next(self.patterns) == nil then return true end
        self.patterns = {}
        return send(self, "PUNSUBSCRIBE")
    end
    for _, p in ipairs(list) do self.patterns[p] = nil end
    return send(self, "PUNSUBSCRIBE", list)
end

-- sub:close(): ends every iterator at once (messages not yet taken are dropped).
function Sub:close()
    if self._closed then return true end
    self._closed = true
    if self.sock then
        self.sock:close()
        self.sock = nil
    end
    self._q, self._qh, self._qt = {}, 1, 0
    self._sleepq:wake_all()
    self._waiters:wake_all()
    return true
end
Sub.__close = Sub.close

function Sub:closed()
    return self._closed
end

-- redis.subscribe(url_or_opts, channels [, opts]) -> subscription | nil, err. opts:
-- patterns, reconnect (true), backoff_min (0.05 s), backoff_max (2 s), ping_interval
-- (30 s: an idle connection is PINGed, and one that does not answer is reconnected).
function M.subscribe(spec, channels, opts)
    local o, oerr = options(spec, "gl.redis.subscribe")
    if not o then return nil, oerr end
    opts = opts or {}
    if type(channels) == "string" then channels = { channels } end
    local s = setmetatable({
        channels = {}, patterns = {},
        reconnect = opts.reconnect ~= false,
        reconnects = 0,
        _opts = o,
        _q = {}, _qh = 1, _qt = 0,
        _waiters = core.waitq(),
        _sleepq = core.waitq(),
        _reading = false, _closed = false,
        _confirmed = {}, _pconfirmed = {},
        _backoff_min = opts.backoff_min or 0.05,
        _backoff_max = opts.backoff_max or 2,
        _ping_interval = opts.ping_interval or 30,
    }, Sub)
    for _, ch in ipairs(channels or {}) do s.channels[ch] = true end
    for _, p in ipairs(opts.patterns or {}) do s.patterns[p] = true end
    local ok, err = sub_connect(s)
    if not ok then return nil, err end
    return s
end

-- Pool -----------------------------------------------------------------------------

local Pool = {}
local pool_commands = {}
local pool_mt = {
    __name = "gl.redis.pool",
    __index = function(_, k)
        local m = Pool[k]
        if m ~= nil then return m end
        m = pool_commands[k]
        if m then return m end
        if type(k) ~= "string" or not find(k, "^[%a][%w_]*$") then return nil end
        m = function(self, ...) return self:call(k, ...) end
        pool_commands[k] = m
        return m
    end,
}

local ConnectError = { __tostring = function(e) return e.msg end }

-- redis.pool(url_or_opts, {size = 10}) -> pool
function M.pool(spec, popts)
    local o, oerr = options(spec, "gl.redis.pool")
    if not o then error(oerr, 2) end
    popts = popts or {}
    local p = setmetatable({ opts = o }, pool_mt)
    p.pool = pools.Pool {
        max_size = popts.size or popts.max_size or 10,
        create = function()
            local c, err = M.connect(o)
            if not c then error(setmetatable({ msg = err }, ConnectError), 0) end
            return c
        end,
    }
    return p
end

-- pool:acquire() -> client | nil, err (a connection is made when none is free)
function Pool:acquire()
    local ok, c = pcall(self.pool.get, self.pool)
    if not ok then
        if getmetatable(c) == ConnectError then return nil, c.msg end
        error(c, 0)
    end
    return c
end

-- pool:release(c): back to the pool, or dropped when it broke (a network error closes a
-- client) or the pool is closed.
function Pool:release(c)
    if self.closed or not c.sock then
        c:close()
        self.pool:discard(c)
    else
        self.pool:put(c)
    end
end

-- pool:with(fn, ...) -> fn(client, ...)'s results; fn's error is re-raised after the
-- client went back (or was dropped).
function Pool:with(fn, ...)
    local c, err = self:acquire()
    if not c then return nil, err end
    local r = pack(pcall(fn, c, ...))
    self:release(c)
    if not r[1] then error(r[2], 0) end
    return unpack(r, 2, r.n)
end

function Pool:call(...)
    local c, err = self:acquire()
    if not c then return nil, err end
    local r = pack(pcall(c.call, c, ...))
    self:release(c)
    if not r[1] then error(r[2], 0) end
    return unpack(r, 2, r.n)
end

function Pool:pipeline(fn)
    return self:with(function(c) return c:pipeline(fn) end)
end

-- How many connections are open (idle or lent out).
function Pool:size()
    return self.pool.current_size
end

-- pool:close(): closes the idle connections; lent ones close when released.
function Pool:close()
    self.closed = true
    local free = self.pool._free
    while #free > 0 do
        local c = table.remove(free)
        c:close()
        self.pool.current_size = self.pool.current_size - 1
    end
end
pool_mt.__close = Pool.close

M.parse_url = parse_url

return M
