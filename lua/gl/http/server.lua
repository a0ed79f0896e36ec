-- gl.http.server: the policy of the HTTP/1.x server: connections and their limit,
-- keep-alive and pipelining, 100-continue, limits, errors, the access log, shutdown.
-- Reading heads and bodies and writing responses is src/http.c (core.http_*).
local core = require "gl.core"

local read_request = core.http_read_request
local serve = core.http_serve
local limits_of = core.http_limits
local respond = core.http_respond
local body_read = core.http_body_read
local body_rest = core.http_body_rest
local body_done = core.http_body_done
local log_write = core.http_log_write
local log_line = core.http_log_line
local log_flush = core.http_log_flush
local concat = table.concat
local type, xpcall, pcall, tostring = type, xpcall, pcall, tostring

local F_KEEP, F_HEAD, F_EXPECT, F_BODY, F_REJECT = 1, 2, 8, 16, 32
local SERVE_READ, SERVE_APP, SERVE_SENT, SERVE_LOGGED = 1, 2, 3, 4 -- see core.http_serve
local DRAIN_MAX = 1024 * 1024 -- unread body bytes drained to keep a connection; more: close
-- closing with unread input makes the kernel reset the connection, which can destroy the
-- answer before the client reads it; so, as nginx's lingering close, gl shuts down its
-- side and discards input for at most this long and this much before closing
local LINGER_SEC, LINGER_BYTES = 2, 1024 * 1024

local M = {}

local function sentinel(name)
    return setmetatable({}, { __tostring = function() return name end, __name = name })
end
-- raised by req:read when the body passes max_body_bytes (-> 413) or is malformed (-> 400)
M.PayloadTooLarge = sentinel("gl.http: request body too large")
local BadBody = sentinel("gl.http: malformed request body")

-- ---- the request object ----

-- Methods; each connection has a metatable whose __index holds its remote_addr,
-- remote_port, scheme and _sock and falls back to these.
local Request = {}
local RequestBase = { __index = Request }

local CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n"

-- req:read([n]) -> up to n bytes of the body, nil at its end; without n, the rest of it
-- ("" when nothing is left).
function Request:read(n)
    if n == nil then
        local b = self._body
        local rest = b and body_rest(self._sock, b) -- all of it buffered: one string at once
        if rest then return rest end
        local parts = {}
        while true do
            local data, err = self:read(65536)
            if not data then
                if err then return nil, err end
                break
            end
            parts[#parts + 1] = data
        end
        return concat(parts)
    end
    local b = self._body
    if not b then return nil end
    if self._f & F_EXPECT ~= 0 and not self._continued then
        self._continued = true
        local ok, err = self._sock:sendall(CONTINUE)
        if not ok then return nil, err end
    end
    local data, err = body_read(self._sock, b, n)
    if err == "body too large" then error(M.PayloadTooLarge, 0) end
    if err == "bad chunked body" then error(BadBody, 0) end
    return data, err
end

-- req:body() -> the whole body as a string ("" when there is none); the same string on
-- later calls.
function Request:body()
    local text = self._text
    if text then return text end
    local err
    text, err = self:read()
    if not text then return nil, err end
    self._text = text
    return text
end

-- req:hijack([after]) -> the connection's socket; the server sends nothing more on it and
-- closes it when the app returns, after calling after(ok, err) with how the app ended
-- (what gl.websocket.upgrade uses).
function Request:hijack(after)
    local ci = getmetatable(self).__index
    ci._hijacked = true
    ci._after_hijack = after
    return self._sock
end

-- ---- options ----

local defaults = {
    max_size = 1024,
    keepalive_timeout = 75,
    socket_timeout = 60,
    max_header_bytes = 65536,
    header_timeout = 60,
    url_length_limit = 8192,
    max_body_bytes = false,
    log = true,
    background = false,
}

local function options(opts)
    if opts ~= nil and type(opts) ~= "table" then error("gl.http.server: options must be a table", 3) end
    local o = {}
    for k, v in pairs(defaults) do o[k] = v end
    for k, v in pairs(opts or {}) do
        if defaults[k] == nil then error("gl.http.server: unknown option " .. tostring(k), 3) end
        o[k] = v
    end
    if o.log ~= true and o.log ~= false and type(o.log) ~= "function" then
        error("gl.http.server: option log: true, false or a function", 3)
    end
    return o
end

-- ---- logging ----

local flush_pending = false
local function flush()
    flush_pending = false
    if log_flush() then -- stderr is a pipe that is full for now: try again later
        flush_pending = true
        core.spawn_after(0.05, flush)
    end
end

local function flush_soon()
    if not flush_pending then
        flush_pending = true
        core.spawn_after(0.05, flush)
    end
end

local function log_request(o, req, status, nbytes, host)
    local log = o.log
    if log == true then
        if log_write(req, status, nbytes, host) then flush_soon() end
    elseif log then
        pcall(log, log_line(req, status, nbytes, host))
    end
end

local function report(msg)
    io.stderr:write(msg, "\n")
end

local function on_error(e)
    if e == M.PayloadTooLarge or e == BadBody or e == core.GreenletExit then return e end
    report("gl.http: error in the app: " .. debug.traceback(tostring(e), 2))
    return e
end

-- ---- one connection ----

local plain_headers = { ["Content-Type"] = "text/plain" }
local reasons = { [400] = "Bad Request\n", [408] = "Request Timeout\n", [413] = "Content Too Large\n",
    [414] = "URI Too Long\n", [431] = "Request Header Fields Too Large\n",
    [500] = "Internal Server Error\n", [501] = "Not Implemented\n",
    [505] = "HTTP Version Not Supported\n" }

-- Sends a chunked or raw stream body from the iterator fn; returns bytes or nil.
local function stream(conn, fn, chunked)
    local n = 0
    while true do
        local ok, chunk = xpcall(fn, on_error)
        if not ok then return nil end
        if chunk == nil then break end
        chunk = tostring(chunk)
        if #chunk > 0 then
            local sent
            if chunked then
                sent = conn:sendall(("%x\r\n"):format(#chunk) .. chunk .. "\r\n")
            else
                sent = conn:sendall(chunk)
            end
            if not sent then return nil end
            n = n + #chunk
        end
    end
    if chunked and not conn:sendall("0\r\n\r\n") then return nil end
    return n
end

local function linger(conn)
    if not conn:shutdown("w") then return end
    local deadline, left = core.clock() + LINGER_SEC, LINGER_BYTES
    while left > 0 do
        local wait = deadline - core.clock()
        if wait <= 0 then return end
        conn:settimeout(wait)
        local data = conn:recv(65536)
        if not data then return end
        left = left - #data
    end
end

-- The rest of one request after its app ran (or the 413 that replaces it): the answer, the
-- log line, the unread body. Returns nothing to go on to the next request, or true and
-- whether the connection ends with input unread.
local function finish(srv, conn, host, cinfo, req, f, ok, status, headers, body)
    local o = srv.opts
    if cinfo._hijacked then
        if cinfo._after_hijack then pcall(cinfo._after_hijack, ok, status) end
        return true
    end
    if not ok then
        local e = status
        if e == core.GreenletExit then error(e, 0) end
        status = e == M.PayloadTooLarge and 413 or e == BadBody and 400 or 500
        headers, body, f = plain_headers, reasons[status], f & ~F_KEEP
    end
    local b = f & F_BODY ~= 0 and req._body
    local drain = false
    if b and f & F_KEEP ~= 0 and not body_done(b) then
        if f & F_EXPECT ~= 0 and not req._continued then
            f = f & ~F_KEEP -- the client waits for a 100 that never came: close
        else
            drain = true
        end
    end
    if srv.stopping then f = f & ~F_KEEP end
    -- respond checks the app's answer before it sends a byte: nil, why, true when it cannot
    local keep, rest1, rest2, chunked, nbytes = respond(conn, f, status, headers, body)
    if keep == nil and rest2 == true then
        report("gl.http: bad response from the app: " .. tostring(rest1))
        status, body = 500, reasons[500]
        keep, rest1, rest2, chunked, nbytes =
            respond(conn, f & ~F_KEEP, 500, plain_headers, body)
    end
    if keep == nil then return true end -- the client went away
    if rest1 and not conn:sendall(rest1) then return true end
    if rest2 and not conn:sendall(rest2) then return true end
    if not nbytes then -- a function body: stream it
        nbytes = stream(conn, body, chunked)
        if not nbytes then return true end
    end
    if o.log then log_request(o, req, status, nbytes, host) end
    if not keep then return true, f & F_REJECT ~= 0 or (b and not body_done(b)) end
    if drain then
        local left = DRAIN_MAX
        while true do
            local data = body_read(conn, b, 65536)
            if not data then break end
            left = left - #data
            if left < 0 then return true, true end
        end
        if not body_done(b) then return true end
    end
end

-- One request as read_request returned it (the head, or nil, why, status): as finish.
local function serve_request(srv, conn, host, cinfo, req, err, code)
    if not req then
        if code then -- malformed: answer and close
            local o = srv.opts
            respond(conn, 0, code, plain_headers, reasons[code] or reasons[400])
            if o.log then log_request(o, nil, code, #(reasons[code] or reasons[400]), host) end
            return true, code ~= 408 -- a client too slow to send its head is not waited for
        end
        return true
    end
    local f = req._f
    if f & F_REJECT ~= 0 then
        return finish(srv, conn, host, cinfo, req, f & ~F_KEEP, true, 413, plain_headers, reasons[413])
    end
    return finish(srv, conn, host, cinfo, req, f, xpcall(srv.app, on_error, req))
end

-- Serves one connection's requests; returns true when it ends with input unread.
local function handle(srv, conn, host, port, state)
    local o, app = srv.opts, srv.app
    local st = o.socket_timeout
    local limits = limits_of(o.max_header_bytes, o.url_length_limit, o.keepalive_timeout, st,
        o.max_body_bytes or nil, o.header_timeout)
    local cinfo = setmetatable({
        remote_addr = host, remote_port = port, _sock = conn, _hijacked = false,
        scheme = getmetatable(conn).__name == "gl.tlssocket" and "https" or "http",
    }, RequestBase)
    local mt = { __name = "gl.http.request", __index = cinfo }
    -- as nginx's tcp_nodelay: pipelined responses are separate sends, and Nagle would hold
    -- each one after the first until the client's delayed ACK (40 ms)
    conn:setoption("nodelay", true)
    conn:settimeout(st)
    -- core.http_serve runs the loop in C for requests without a body and hands each other
    -- case back here at the point it reached; a log function is called from this Lua path.
    local log = o.log
    local in_c = type(log) ~= "function"
    while not srv.stopping do
        local done, unread
        if in_c then
            local phase, a, b, c, d, e, g =
                serve(conn, mt, limits, app, on_error, state, srv, cinfo, log, host)
            if phase == SERVE_READ then
                done, unread = serve_request(srv, conn, host, cinfo, a, b, c)
            elseif phase == SERVE_APP then
                done, unread = finish(srv, conn, host, cinfo, a, a._f, b, c, d, e)
            elseif phase == SERVE_LOGGED then
                flush_soon()
                done = not a
            elseif phase == SERVE_SENT then -- the socket took part of the answer: send the rest
                if b and not conn:sendall(b) then return end
                if c and not conn:sendall(c) then return end
                if log then log_request(o, d, e, g, host) end
                done = not a
            else
                return -- the client left, no keep-alive, or stopping
            end
        else
            state.busy = false
            local req, err, code = read_request(conn, mt, limits)
            state.busy = true
            done, unread = serve_request(srv, conn, host, cinfo, req, err, code)
        end
        if done then return unread end
    end
end

local function run_conn(srv, conn, host, port)
    local state = { busy = false, thread = core.getcurrent() }
    srv.conns[conn] = state
    local ok, err = pcall(handle, srv, conn, host, port, state)
    if ok and err == true then ok, err = pcall(linger, conn) end
    srv.conns[conn] = nil
    conn:close()
    srv.nconns = srv.nconns - 1
    srv.slots:release()
    if not ok and err ~= core.GreenletExit and not core.is_timeout(err) then
        report("gl.http: connection from " .. tostring(host) .. " ended: " .. tostring(err))
    end
    if srv.stopping and srv.nconns == 0 and srv.idle_ev and not srv.idle_ev:ready() then
        srv.idle_ev:send(true)
    end
end

local transient = { ["too many open files"] = true, ["too many open files in system"] = true,
    ["cannot allocate memory"] = true, ["no buffer space available"] = true }

local ACCEPT_LOG_INTERVAL = 10 -- seconds between two reports of running out of descriptors

local function accept_loop(srv)
    local sock, slots = srv.sock, srv.slots
    local next_report = 0
    while not srv.stopping do
        slots:acquire()
        if srv.stopping then slots:release(); break end
        local conn, host, port = sock:accept()
        if conn then
            srv.nconns = srv.nconns + 1
            core.spawn_n(run_conn, srv, conn, host, port)
        else
            slots:release()
            if host == "closed" or sock:closed() then break end
            if not transient[host] then
                report("gl.http: accept failed: " .. tostring(host))
            elseif core.clock() >= next_report then
                report("gl.http: accept failed (" .. host .. "); backing off, still serving")
                next_report = core.clock() + ACCEPT_LOG_INTERVAL
            end
            core.sleep(0.1) -- out of descriptors or memory for now: back off, keep serving
        end
    end
    srv.accepting = false
    if srv.accept_done then srv.accept_done:send(true) end
end

-- ---- the server object ----

local Server = {}
Server.__index = Server
Server.__name = "gl.http.Server"

-- srv:stop([grace]): stop accepting, close idle keep-alive connections, let requests in
-- flight finish for up to grace seconds (default 10), then cut the rest. Returns true when
-- every connection ended by itself.
function Server:stop(grace)
    if self.stopped then return true end
    self.stopped = true
    self.stopping = true
    local Event = require("gl.event").Event
    self.idle_ev = Event()
    self.sock:close()
    self.slots:release() -- wakes an accept loop waiting for a free slot
    for conn, st in pairs(self.conns) do
        if not st.busy then conn:close() end
    end
    local clean = true
    if self.nconns > 0 then
        clean = self.idle_ev:wait(grace or 10) == true
        if not clean then
            local threads = {}
            for conn, st in pairs(self.conns) do
                threads[#threads + 1] = st.thread
                conn:close()
            end
            for _, t in ipairs(threads) do
                if not t:dead() then pcall(core.kill, t) end
            end
        end
    end
    if self.accepting and self.thread and self.thread ~= core.getcurrent() then
        self.accept_done = self.accept_done or Event()
        if self.accepting then self.accept_done:wait(1) end
    end
    return clean
end

-- srv:connections() -> how many connections are open
function Server:connections()
    return self.nconns
end

function M.server(sock, app, opts)
    if type(sock) ~= "userdata" or not sock.accept then -- e.g. gl.listen's nil, err
        error("gl.http.server: expected a listening socket, got " .. tostring(sock), 2)
    end
    if type(app) ~= "function" and not (getmetatable(app) or {}).__call then
        error("gl.http.server: app must be a function", 2)
    end
    local o = options(opts)
    local srv = setmetatable({
        sock = sock, app = app, opts = o, conns = {}, nconns = 0, stopping = false,
        slots = require("gl.semaphore").Semaphore(o.max_size), accepting = true,
    }, Server)
    if o.background then
        srv.thread = core.spawn(accept_loop, srv)
        return srv
    end
    srv.thread = core.getcurrent()
    accept_loop(srv)
    return srv
end

return M
