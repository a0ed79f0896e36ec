-- gl.websocket: RFC 6455 connections over green sockets. The policy lives here: the
-- opening handshake (server upgrade inside a gl.http app, client connect for ws and wss),
-- messages from fragments, automatic pongs, UTF-8 and size limits, the close handshake.
-- Frames are read and built in C (src/ws.c, src/ws_frame.c).
local core = require "gl.core"

local ws_read, ws_frame, ws_utf8 = core.ws_read, core.ws_frame, core.ws_utf8
local close_code_ok = core.ws_close_code_ok
local concat, pack, unpack = table.concat, string.pack, string.unpack
local type, pcall, error, tostring = type, pcall, error, tostring

local M = {}

local OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
local DEFAULT_MAX = 16 * 1024 * 1024
local kinds = { [OP_TEXT] = "text", [OP_BINARY] = "binary" }

M.DEFAULT_MAX_MESSAGE_BYTES = DEFAULT_MAX

local WS = {}
WS.__index = WS
WS.__name = "gl.websocket"


local function new(sock, client, o, extra)
    local self = setmetatable({
        sock = sock, client = client, state = "open",
        max = o.max_message_bytes or DEFAULT_MAX,
        close_timeout = o.close_timeout or 5,
        rsv_ok = 0, nbuf = 0, kind = nil, parts = nil, utf8 = 0,
    }, WS)
    for k, v in pairs(extra or {}) do self[k] = v end
    if self.deflate then self.rsv_ok = 4 end
    return self
end

function WS:__tostring()
    return ("gl.websocket (%s, %s)"):format(self.client and "client" or "server", self.state)
end

-- Closes the TCP connection at once; the connection counts as closed with code.
local function drop(self, code, reason)
    if self.state ~= "closed" then
        self.state = "closed"
        if self.code == nil then self.code, self.reason = code, reason end
    end
    self.sock:close()
    if self.deflate then self.deflate:free() end
    local ev = self.closed_ev
    if ev and not ev:ready() then ev:send(true) end
end

-- Sends one frame whole; frames from several green threads never interleave: a second
-- writer waits for the first (rare, so its wait queue is made only then). A send cut
-- short by a Timeout or a kill leaves the stream unusable: the connection is dropped.
local function write(self, frame)
    while self.writing do
        local q = self.wwait
        if not q then
            q = core.waitq()
            self.wwait = q
        end
        local ok, err = pcall(q.park, q, "gl.websocket: send")
        if not ok then -- killed while waiting: a wake meant for it goes to the next writer
            if not self.writing and #q > 0 then q:wake_one(true) end
            error(err, 0)
        end
    end
    local sock = self.sock
    if sock:fileno() < 0 then -- closed under us (a server's stop, a failed send)
        drop(self, 1006, "")
        return nil, "closed"
    end
    self.writing = true
    local ok, sent, err = pcall(sock.sendall, sock, frame)
    self.writing = false
    local q = self.wwait
    if q and #q > 0 then q:wake_one(true) end
    if not ok then
        drop(self, 1006, "")
        error(sent, 0)
    end
    if not sent then return nil, err end
    return true
end

-- Reads and discards what the peer still sends, until it closes or `sec` seconds pass in
-- all. A kill or Timeout still goes through (after the socket is closed).
local function drain(self, sec)
    local sock = self.sock
    if sock:fileno() < 0 then return end
    local deadline = core.clock() + sec
    local ok, err = pcall(function()
        while true do
            local left = deadline - core.clock()
            if left <= 0 then return end
            sock:settimeout(left)
            if not sock:recv(65536) then return end
        end
    end)
    if not ok then
        drop(self, 1006, "")
        error(err, 0)
    end
end

-- After both close frames: a server closes the TCP connection; a client lets the server
-- close it first (briefly), so the server does not keep TIME_WAIT.
local function finish(self)
    if self.client then drain(self, self.close_timeout) end
    drop(self)
end

-- Fails the connection: a close frame with code, then the TCP connection goes (after a
-- short drain, so that the close frame is not lost to a reset).
local function fail(self, code, msg)
    if self.state == "open" then
        self.state = "closing"
        write(self, ws_frame(OP_CLOSE, pack(">I2", code) .. msg:sub(1, 123), true, self.client))
    end
    self.code, self.reason = code, msg
    if self.sock:fileno() >= 0 then
        self.sock:shutdown("w")
        drain(self, math.min(self.close_timeout, 1))
    end
    drop(self)
    return nil, "closed", code, msg
end

local function on_close(self, payload)
    local code, reason
    local n = #payload
    if n == 0 then
        code, reason = 1005, ""
    elseif n == 1 then
        return fail(self, 1002, "protocol error: close frame of one byte")
    else
        code, reason = unpack(">I2", payload), payload:sub(3)
        if not close_code_ok(code) then
            return fail(self, 1002, "protocol error: close code " .. code)
        end
        if ws_utf8(0, reason) ~= 0 then
            return fail(self, 1007, "invalid UTF-8 in the close reason")
        end
    end
    self.code, self.reason = code, reason
    if self.state == "open" then -- the peer began: answer with its code
        self.state = "closing"
        write(self, ws_frame(OP_CLOSE, code == 1005 and "" or pack(">I2", code), true, self.client))
    end
    finish(self)
    return nil, "closed", code, reason
end

local function recv_message(self)
    local sock, need_mask = self.sock, not self.client
    while true do
        if sock:fileno() < 0 then
            drop(self, 1006, "")
            return nil, "closed", self.code, self.reason
        end
        local fin, op, data, rsv = ws_read(sock, need_mask, self.max - self.nbuf, self.rsv_ok,
            self.parts ~= nil)
        if fin == nil then
            local err, code = op, data -- a close code (>= 1000), or a socket error's errno
            if err == "timeout" then return nil, "timeout" end
            if code and code >= 1000 then return fail(self, code, err) end
            drop(self, 1006, "")
            return nil, "closed", self.code, self.reason
        end
        if op >= 8 then
            if op == OP_PING then
                if self.state == "open" then
                    write(self, ws_frame(OP_PONG, data, true, self.client))
                end
            elseif op == OP_CLOSE then
                return on_close(self, data)
            else
                self.last_pong = data -- a pong needs no answer
            end
        elseif fin and op ~= OP_CONT and rsv == 0 then -- a whole message in one frame
            if op == OP_TEXT and ws_utf8(0, data) ~= 0 then
                return fail(self, 1007, "invalid UTF-8 in a text message")
            end
            return data, kinds[op]
        else
            local parts = self.parts
            if op ~= OP_CONT then
                parts = {}
                self.parts, self.kind, self.utf8, self.nbuf = parts, op, 0, 0
                self.compressed = rsv & 4 ~= 0
            end
            local text = self.kind == OP_TEXT
            if text and not self.compressed then
                local st = ws_utf8(self.utf8, data)
                if st == 1 then
                    return fail(self, 1007, "invalid UTF-8 in a text message")
                end
                self.utf8 = st
            end
            parts[#parts + 1] = data
            self.nbuf = self.nbuf + #data
            if fin then
                local msg = #parts == 1 and parts[1] or concat(parts)
                self.parts, self.nbuf = nil, 0
                if self.compressed then
                    local out, err = self.deflate:inflate(msg, self.zmax or self.max)
                    if not out then
                        if err == "too big" then return fail(self, 1009, "message too big") end
                        return fail(self, 1007, "bad compressed data: " .. tostring(err))
                    end
                    msg = out
                    if text and ws_utf8(0, msg) ~= 0 then
                        return fail(self, 1007, "invalid UTF-8 in a text message")
                    end
                elseif text and self.utf8 ~= 0 then
                    return fail(self, 1007, "invalid UTF-8 in a text message")
                end
                return msg, kinds[self.kind]
            end
        end
    end
end

-- ws:recv() -> message, "text"|"binary" | nil, "closed", code, reason | nil, "timeout"
function WS:recv()
    if self.state == "closed" then return nil, "closed", self.code, self.reason end
    if self.reading then error("gl.websocket: another green thread is already receiving", 2) end
    self.reading = true
    local ok, a, b, c, d = pcall(recv_message, self)
    self.reading = false
    if not ok then error(a, 0) end
    return a, b, c, d
end

-- ws:send(data [, "text"|"binary"]) -> true | nil, err
function WS:send(data, kind)
    local tp = type(data)
    if tp == "number" then
        data = tostring(data)
    elseif tp ~= "string" then
        error("gl.websocket: send: string expected, got " .. tp, 2)
    end
    local op
    if kind == nil or kind == "text" then
        op = OP_TEXT
        if ws_utf8(0, data) ~= 0 then error("gl.websocket: send: text is not valid UTF-8", 2) end
    elseif kind == "binary" then
        op = OP_BINARY
    else
        error("gl.websocket: send: kind must be \"text\" or \"binary\"", 2)
    end
    if self.state ~= "open" then return nil, "closed" end
    local rsv = 0
    local d = self.deflate
    if d and #data >= self.zthreshold then
        data, rsv = d:deflate(data), 4
    end
    return write(self, ws_frame(op, data, true, self.client, rsv))
end

-- ws:ping([data]) -> true | nil, err
function WS:ping(data)
    data = data == nil and "" or data
    if type(data) ~= "string" then error("gl.websocket: ping: string expected", 2) end
    if #data > 125 then error("gl.websocket: ping: at most 125 bytes", 2) end
    if self.state ~= "open" then return nil, "closed" end
    return write(self, ws_frame(OP_PING, data, true, self.client))
end

-- ws:close([code [, reason]]): the close handshake (bounded by close_timeout); true.
function WS:close(code, reason)
    code = code == nil and 1000 or code
    reason = reason == nil and "" or reason
    if math.type(code) ~= "integer" or not close_code_ok(code) then
        error("gl.websocket: close: bad close code " .. tostring(code), 2)
    end
    if type(reason) ~= "string" or #reason > 123 or ws_utf8(0, reason) ~= 0 then
        error("gl.websocket: close: reason must be UTF-8 text of at most 123 bytes", 2)
    end
    if self.state == "closed" then return true end
    if self.state == "open" then
        self.state = "closing"
        if not write(self, ws_frame(OP_CLOSE, pack(">I2", code) .. reason, true, self.client)) then
            drop(self, 1006, "")
            return true
        end
    end
    if self.reading then -- the receiving thread will see the peer's close frame
        local Event = require("gl.event").Event
        self.closed_ev = self.closed_ev or Event()
        if self.state ~= "closed" and not self.closed_ev:wait(self.close_timeout) then
            drop(self, 1006, "")
        end
        return true
    end
    -- read on (data still in flight is dropped) until the peer's close frame, in bounded time
    local deadline = core.clock() + self.close_timeout
    while self.state ~= "closed" do
        local left = deadline - core.clock()
        if left <= 0 then
            drop(self, 1006, "")
            break
        end
        self.sock:settimeout(left)
        local msg, err = self:recv()
        if not msg and err == "timeout" then drop(self, 1006, "") end
    end
    return true
end

WS.__close = function(self) self:close() end

-- ws:settimeout(sec|nil): per-operation timeout for recv and send (recv returns
-- nil, "timeout"); none by default.
function WS:settimeout(sec)
    self.sock:settimeout(sec)
end

function WS:closed()
    return self.state == "closed"
end

-- ---- permessage-deflate (RFC 7692) ----

-- Parses a Sec-WebSocket-Extensions value into {name = ..., params = {k = v|true}} offers.
local function parse_extensions(value)
    local offers = {}
    for offer in value:gmatch("[^,]+") do
        local name, params = nil, {}
        for part in offer:gmatch("[^;]+") do
            part = part:match("^%s*(.-)%s*$")
            if not name then
                name = part:lower()
            else
                local k, v = part:match("^([%w_]+)%s*=%s*\"?([^\"]*)\"?$")
                if k then params[k:lower()] = v else params[part:lower()] = true end
            end
        end
        if name then offers[#offers + 1] = { name = name, params = params } end
    end
    return offers
end

local function window_bits(v)
    local n = tonumber(v)
    if math.type(n) == "integer" and n >= 9 and n <= 15 then return n end
    return nil -- zlib cannot make raw deflate streams with an 8-bit window
end

local function deflate_opts(d)
    if d == true then return {} end
    if type(d) ~= "table" then error("gl.websocket: option deflate: true or a table", 4) end
    return d
end

local known_params = { server_no_context_takeover = true, client_no_context_takeover = true,
    server_max_window_bits = true, client_max_window_bits = true }

-- Server side: the first acceptable offer -> extra fields for the connection, response
local function server_negotiate(header, dopt)
    local d = deflate_opts(dopt)
    for _, offer in ipairs(parse_extensions(header)) do
        local p = offer.params
        local ok = offer.name == "permessage-deflate"
        for k in pairs(p) do if not known_params[k] then ok = false end end
        local bits = 15
        if ok and p.server_max_window_bits then
            bits = window_bits(p.server_max_window_bits)
            ok = bits ~= nil
        end
        if ok and p.client_max_window_bits and p.client_max_window_bits ~= true then
            ok = tonumber(p.client_max_window_bits) ~= nil
        end
        if ok then
            local reset_out = p.server_no_context_takeover or d.no_context_takeover or false
            local resp = { "permessage-deflate" }
            if reset_out then resp[#resp + 1] = "server_no_context_takeover" end
            if p.server_max_window_bits then resp[#resp + 1] = "server_max_window_bits=" .. bits end
            if p.client_no_context_takeover then resp[#resp + 1] = "client_no_context_takeover" end
            return core.ws_deflate_new(bits, d.level, reset_out and true, p.client_no_context_takeover and true),
                concat(resp, "; "), d
        end
    end
    return nil
end

local function client_offer(dopt)
    local d = deflate_opts(dopt)
    local offer = "permessage-deflate; client_max_window_bits"
    if d.no_context_takeover then offer = offer .. "; client_no_context_takeover" end
    return offer
end

local function client_accept(header, dopt)
    local d = deflate_opts(dopt)
    local offers = parse_extensions(header)
    if #offers ~= 1 or offers[1].name ~= "permessage-deflate" then
        return nil, "unsupported extension " .. header
    end
    local p = offers[1].params
    for k in pairs(p) do
        if not known_params[k] then return nil, "unknown permessage-deflate parameter " .. k end
    end
    local bits = 15
    if p.client_max_window_bits then
        bits = window_bits(p.client_max_window_bits)
        if not bits then return nil, "unusable client_max_window_bits" end
    end
    local reset_out = (p.client_no_context_takeover or d.no_context_takeover) and true or false
    return core.ws_deflate_new(bits, d.level, reset_out, p.server_no_context_takeover and true), d
end

-- ---- handshakes ----

local function has_token(value, token)
    if type(value) ~= "string" then return false end
    for t in value:gmatch("[^,%s]+") do
        if t:lower() == token then return true end
    end
    return false
end

local function check_opts(opts, fname)
    if opts == nil then return {} end
    if type(opts) ~= "table" then error(fname .. ": options must be a table", 3) end
    local m = opts.max_message_bytes
    if m ~= nil and (math.type(m) ~= "integer" or m < 1) then
        error(fname .. ": max_message_bytes must be a positive integer", 3)
    end
    return opts
end

local function bad_request(req, msg, extra)
    local sock = req:hijack()
    local body = "Bad Request: " .. msg .. "\n"
    sock:sendall(("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n" ..
        "Connection: close\r\n%s\r\n%s"):format(#body, extra or "", body))
    return nil, msg
end

local function pick_protocol(offered, mine)
    if not offered or not mine then return nil end
    for p in offered:gmatch("[^,%s]+") do
        for _, q in ipairs(mine) do
            if p == q then return p end
        end
    end
    return nil
end

-- gl.websocket.upgrade(req [, opts]) -> ws | nil, err (a 400 already sent). opts:
-- max_message_bytes, protocols (a list, the first the client offers wins), timeout,
-- close_timeout, deflate (true or a table: permessage-deflate when the client offers it).
function M.upgrade(req, opts)
    local o = check_opts(opts, "gl.websocket.upgrade")
    if type(req) ~= "table" or type(req.hijack) ~= "function" then
        error("gl.websocket.upgrade: a gl.http request expected", 2)
    end
    local h = req.headers
    if req.method ~= "GET" then return bad_request(req, "websocket handshake must be a GET") end
    if not has_token(h.upgrade, "websocket") then
        return bad_request(req, "not a websocket handshake (no Upgrade: websocket)")
    end
    if not has_token(h.connection, "upgrade") then
        return bad_request(req, "not a websocket handshake (no Connection: Upgrade)")
    end
    if h["sec-websocket-version"] ~= "13" then
        return bad_request(req, "unsupported websocket version", "Sec-WebSocket-Version: 13\r\n")
    end
    local key = h["sec-websocket-key"]
    if not key or not core.ws_key_ok(key) then
        return bad_request(req, "bad Sec-WebSocket-Key")
    end
    local lines = { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" ..
        "Connection: Upgrade\r\nSec-WebSocket-Accept: " .. core.ws_accept(key) .. "\r\n" }
    local protocol = pick_protocol(h["sec-websocket-protocol"], o.protocols)
    if protocol then lines[#lines + 1] = "Sec-WebSocket-Protocol: " .. protocol .. "\r\n" end
    local extra = { protocol = protocol, remote_addr = req.remote_addr, remote_port = req.remote_port }
    if o.deflate and h["sec-websocket-extensions"] then
        local d, resp, dopt = server_negotiate(h["sec-websocket-extensions"], o.deflate)
        if d then
            extra.deflate, extra.extensions = d, resp
            extra.zthreshold, extra.zmax = dopt.threshold or 32, dopt.max_inflated_bytes
            lines[#lines + 1] = "Sec-WebSocket-Extensions: " .. resp .. "\r\n"
        end
    end
    lines[#lines + 1] = "\r\n"
    local ws
    local sock = req:hijack(function(ok, err)
        if ws.state == "closed" then return end
        if ok then
            ws:close(1000)
        elseif err == core.GreenletExit then
            drop(ws, 1006, "")
        else
            ws:close(1011, "internal error")
        end
    end)
    ws = new(sock, false, o, extra)
    sock:settimeout(o.timeout)
    local ok, err = sock:sendall(concat(lines))
    if not ok then
        drop(ws, 1006, "")
        return nil, err
    end
    return ws
end

local function parse_url(url)
    local scheme, rest = url:match("^(wss?)://(.+)$")
    if not scheme then return nil end
    local authority, path = rest:match("^([^/?#]*)(.*)$")
    path = path:gsub("#.*$", "")
    if path == "" then path = "/" elseif path:sub(1, 1) == "?" then path = "/" .. path end
    local host, port = authority:match("^%[(.+)%]:?(%d*)$")
    if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
    if not host or host == "" then return nil end
    local default = scheme == "wss" and 443 or 80
    port = port ~= "" and tonumber(port) or default
    local hostport = authority:find(":%d+$") and authority or (authority:find(":") and
        "[" .. host .. "]" or host)
    if port ~= default and not authority:find(":%d+$") then hostport = hostport .. ":" .. port end
    return scheme, host, port, path, hostport
end

-- gl.websocket.connect(url [, opts]) -> ws | nil, err. opts: timeout (connect and
-- handshake, default 10 s), headers, origin, protocols (a list), max_message_bytes,
-- close_timeout, verify (wss; default true), cafile, hostname, deflate.
function M.connect(url, opts)
    local o = check_opts(opts, "gl.websocket.connect")
    if type(url) ~= "string" then error("gl.websocket.connect: url must be a string", 2) end
    local scheme, host, port, path, hostport = parse_url(url)
    if not scheme then error("gl.websocket.connect: not a ws:// or wss:// URL: " .. url, 2) end
    local gl = require "gl"
    local timeout = o.timeout or 10
    local conn, err = gl.connect(host, port, { timeout = timeout })
    if not conn then return nil, err end
    if scheme == "wss" then
        local tconn, terr = gl.wrap_ssl(conn, {
            hostname = o.hostname == nil and host or o.hostname,
            verify = o.verify ~= false, cafile = o.cafile })
        if not tconn then
            conn:close()
            return nil, terr
        end
        conn = tconn
    end
    local key = core.ws_key()
    local lines = { "GET " .. path .. " HTTP/1.1\r\nHost: " .. hostport .. "\r\n" ..
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " .. key .. "\r\n" ..
        "Sec-WebSocket-Version: 13\r\n" }
    local function add(k, v) lines[#lines + 1] = k .. ": " .. tostring(v) .. "\r\n" end
    if o.origin then add("Origin", o.origin) end
    if o.protocols then add("Sec-WebSocket-Protocol", concat(o.protocols, ", ")) end
    if o.deflate then add("Sec-WebSocket-Extensions", client_offer(o.deflate)) end
    for k, v in pairs(o.headers or {}) do add(k, v) end
    lines[#lines + 1] = "\r\n"
    conn:settimeout(timeout)
    local function failed(msg)
        conn:close()
        return nil, msg
    end
    local ok
    ok, err = conn:sendall(concat(lines))
    if not ok then return failed(err) end
    local res, rerr = core.http_read_response(conn, false)
    if not res then return failed(rerr) end
    local h = res.headers
    if res.status ~= 101 then
        return failed("websocket: handshake failed: HTTP " .. tostring(res.status))
    end
    if not has_token(h.upgrade, "websocket") or not has_token(h.connection, "upgrade") then
        return failed("websocket: handshake failed: no Upgrade: websocket in the response")
    end
    if h["sec-websocket-accept"] ~= core.ws_accept(key) then
        return failed("websocket: handshake failed: wrong Sec-WebSocket-Accept")
    end
    local protocol = h["sec-websocket-protocol"]
    if protocol and not pick_protocol(protocol, o.protocols) then
        return failed("websocket: handshake failed: server chose protocol " .. protocol)
    end
    local extra = { protocol = protocol }
    local ext = h["sec-websocket-extensions"]
    if ext then
        if not o.deflate then return failed("websocket: handshake failed: unrequested extension") end
        local d, dopt = client_accept(ext, o.deflate)
        if not d then return failed("websocket: handshake failed: " .. dopt) end
        extra.deflate, extra.extensions = d, ext
        extra.zthreshold, extra.zmax = dopt.threshold or 32, dopt.max_inflated_bytes
    end
    conn:settimeout(nil)
    return new(conn, true, o, extra)
end

return M
