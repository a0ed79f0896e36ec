-- gl.pg: a green PostgreSQL client. src/pg.c steps libpq's non-blocking API; this file
-- waits on the connection's socket between steps, cancels a query that a kill or a
-- Timeout interrupts, and builds the pool and transactions on gl.pools.Pool.
local core = require "gl.core"

if not core.pg_connect_start then
    error("gl.pg: gl was built without libpq (install libpq-dev and rebuild gl)", 2)
end

local gl = require "gl"
local pools = require "gl.pools"
local dns = require "gl.dns"

local wait_fd = core.wait_fd
local pack, unpack = table.pack, table.unpack

local M = {}
M.null = core.pg_null
M.libpq_version = core.pg_libpq_version()
-- how long an interrupted query may take to stop after its cancel before the connection
-- is dropped instead
M.cancel_timeout = 5

local Conn = core.pg_methods
local on_notice = setmetatable({}, { __mode = "k" })

local function deliver_notices(c)
    local list = c:_notices()
    if not list then return end
    local fn = on_notice[c]
    if not fn then return end
    for _, msg in ipairs(list) do fn(msg, c) end
end

-- gl.pg.connect(conninfo [, opts]) -> conn | nil, err. conninfo is a URI or key=value
-- string; opts.on_notice(msg, conn) receives the server's notices.
function M.connect(conninfo, opts)
    if type(conninfo) ~= "string" then
        error("gl.pg.connect: conninfo must be a string", 2)
    end
    local params, perr0 = core.pg_conninfo_parse(conninfo)
    if not params then return nil, perr0 end
    -- libpq would look a host name up with a blocking getaddrinfo: resolve it green and
    -- hand libpq the address (hostaddr), keeping host for TLS and .pgpass
    local host = params.host
    if host and not params.hostaddr and not host:find("[,/]") and host:sub(1, 1) ~= "@" then
        local addrs, derr = dns.resolve(host)
        if not addrs then return nil, ("%s: %s"):format(host, derr) end
        if not addrs[1] then return nil, host .. ": no address" end
        params.hostaddr = addrs[1]
    end
    local c, err = core.pg_connect_start(params)
    if not c then return nil, err end
    local ok, res, perr = pcall(function()
        local want = "write" -- libpq: behave as if the first poll said "writing"
        while want ~= "ok" do
            wait_fd(c:socket(), want == "read", want == "write")
            local w, e = c:_poll()
            if not w then return nil, e end
            want = w
        end
        return true
    end)
    if not ok then
        c:close()
        error(res, 0) -- a kill or a Timeout
    end
    if not res then
        c:close()
        return nil, perr
    end
    if opts and opts.on_notice then on_notice[c] = opts.on_notice end
    return c
end

-- Reads results until the query is complete; waits only this green thread.
local function drain(c, acc)
    while true do
        local st, err = c:_step(acc)
        if st == "done" then return true end
        if not st then return nil, err end
        wait_fd(c:socket(), true, st == "rw")
    end
end

-- After a kill or Timeout interrupted a query: ask the server to cancel it (from an OS
-- thread, as PQcancel blocks), then read the query's end so the connection is usable.
-- Anything going wrong (or taking more than cancel_timeout) closes the connection.
local function abort(c)
    local ok, done = pcall(function()
        local t <close> = gl.Timeout(M.cancel_timeout)
        local h <close> = c:_cancel_start()
        if h then wait_fd(h:fileno(), true, false) end
        return drain(c, {})
    end)
    if not (ok and done) then c:close() end
end

-- the first wait right after sending: nothing can have come back yet
local function first_wait(c, want, acc)
    wait_fd(c:socket(), true, want == "rw")
    return drain(c, acc)
end

local function run_query(c, ...)
    local want, err = c:_send(...)
    if not want then return nil, err end
    local acc = { n = 0 }
    local ok, done, derr = pcall(first_wait, c, want, acc)
    if not ok then
        abort(c)
        deliver_notices(c)
        error(done, 0)
    end
    deliver_notices(c)
    if not done then return nil, derr end
    if acc.err then return nil, acc.err, acc.sqlstate end
    return unpack(acc, 1, acc.n)
end

-- conn:query(sql, ...) -> rows (one per statement) | nil, err [, sqlstate]
function Conn:query(sql, ...)
    if type(sql) ~= "string" then error("gl.pg: query: sql must be a string", 2) end
    return run_query(self, sql, ...)
end

-- conn:on_notice(fn): fn(msg, conn) for each notice (nil: drop them)
function Conn:on_notice(fn)
    on_notice[self] = fn
end

-- conn:listen(channel) -> true | nil, err, sqlstate
function Conn:listen(channel)
    local ok, err, st = self:query("LISTEN " .. self:escape_identifier(channel))
    if not ok then return nil, err, st end
    return true
end

function Conn:unlisten(channel)
    local ok, err, st = self:query("UNLISTEN " ..
        (channel and self:escape_identifier(channel) or "*"))
    if not ok then return nil, err, st end
    return true
end

-- conn:notifications() -> a green iterator of channel, payload, pid; it blocks this
-- green thread until a NOTIFY arrives and ends when the connection breaks or closes.
function Conn:notifications()
    return function()
        while self:status() == "ok" do
            local ch, payload, pid = self:_notify()
            if ch then return ch, payload, pid end
            if not self:busy() then
                wait_fd(self:socket(), true, false)
                if self:status() ~= "ok" or not self:_consume() then break end
                deliver_notices(self)
            else
                gl.sleep(0.01) -- a query of another thread reads the socket meanwhile
            end
        end
        return nil
    end
end

-- Pool ---------------------------------------------------------------------------

local Pool = {}
Pool.__index = Pool
Pool.__name = "gl.pg.pool"

local ConnectError = {}
ConnectError.__index = ConnectError
ConnectError.__tostring = function(e) return e.msg end

-- gl.pg.pool(conninfo, {max_size = 4, min_size = 0, on_notice = fn}) -> pool
function M.pool(conninfo, opts)
    if type(conninfo) ~= "string" then error("gl.pg.pool: conninfo must be a string", 2) end
    opts = opts or {}
    local p = setmetatable({ conninfo = conninfo }, Pool)
    p.pool = pools.Pool {
        max_size = opts.max_size or 4,
        create = function()
            local c, err = M.connect(conninfo, { on_notice = opts.on_notice })
            if not c then error(setmetatable({ msg = err }, ConnectError), 0) end
            return c
        end,
    }
    for _ = 1, opts.min_size or 0 do
        local c = p:acquire()
        if c then p:release(c) end
    end
    return p
end

-- pool:acquire() -> conn | nil, err: a live connection (made lazily; broken ones met on
-- the way are dropped)
function Pool:acquire()
    while true do
        local ok, c = pcall(self.pool.get, self.pool)
        if not ok then
            if getmetatable(c) == ConnectError then return nil, c.msg end
            error(c, 0)
        end
        if c:alive() then return c end
        c:close()
        self.pool:discard(c)
    end
end

-- pool:release(conn): back to the pool, or dropped when broken or mid-transaction
function Pool:release(c)
    if c:status() == "ok" and not c:busy() and c:txstatus() ~= "idle" then
        if not pcall(c.query, c, "ROLLBACK") then c:close() end
    end
    if self.closed or c:status() ~= "ok" or c:busy() or c:txstatus() ~= "idle" then
        c:close()
        self.pool:discard(c)
    else
        self.pool:put(c)
    end
end

-- pool:query(sql, ...): conn:query on a borrowed connection
function Pool:query(sql, ...)
    local c, err = self:acquire()
    if not c then return nil, err end
    local r = pack(pcall(c.query, c, sql, ...))
    self:release(c)
    if not r[1] then error(r[2], 0) end
    return unpack(r, 2, r.n)
end

-- pool:transaction(fn, ...) -> fn(conn, ...)'s results after COMMIT; ROLLBACK and
-- re-raise when fn raises; nil, err, sqlstate when BEGIN or COMMIT fails
function Pool:transaction(fn, ...)
    local c, err = self:acquire()
    if not c then return nil, err end
    local ok, berr, bst = c:query("BEGIN")
    if not ok then
        self:release(c)
        return nil, berr, bst
    end
    local r = pack(pcall(fn, c, ...))
    if not r[1] then
        if c:status() == "ok" and not c:busy() then pcall(c.query, c, "ROLLBACK") end
        self:release(c)
        error(r[2], 0)
    end
    local rows, cerr, cst = c:query("COMMIT")
    self:release(c)
    if not rows then return nil, cerr, cst end
    if rows.command == "ROLLBACK" then
        return nil, "gl.pg: the transaction failed and was rolled back", "25P02"
    end
    return unpack(r, 2, r.n)
end

-- pool:close(): closes the idle connections (borrowed ones close when released to a
-- closed pool)
function Pool:close()
    self.closed = true
    while self.pool:free() > 0 and #self.pool._free > 0 do
        local c = self.pool:get()
        c:close()
        self.pool:discard(c)
    end
end

function Pool:size()
    return self.pool.current_size
end

return M
