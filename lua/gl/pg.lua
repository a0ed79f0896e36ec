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
    if opts and opts.prepare == false then c:_prepare(false) end
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

-- Pipelining -----------------------------------------------------------------------
-- A query with parameters goes out at once in libpq's pipeline mode, each with its own sync
-- point (so an error in one aborts nothing behind it), however many other green threads'
-- queries are in flight on the connection. Results come back in order. One thread at a time
-- reads the socket: the owner of the oldest live query (st.reader). It reads until its own
-- query is complete, converting on the way (and discarding) the results of abandoned ones
-- ahead of it, then hands the socket to the next live query's thread, which usually finds
-- its results already read. Parked threads wait in st.waiters in the order of their
-- queries, so waking the first one always wakes the new reader.
-- A query without parameters may hold several statements: it needs the simple protocol,
-- outside pipeline mode, so it waits until the pipeline is empty and holds the connection
-- alone meanwhile (st.excl); pipelined queries wait in st.gate while it runs or waits.
-- A Timeout or kill of a thread whose query is in flight abandons the query: its result is
-- discarded when it arrives and the others' results are not touched. It is cancelled on
-- the server only when no live query is left on the connection (a cancel hits whatever the
-- backend runs at that moment, which could be a neighbour's query): the last thread to
-- leave cancels what abandoned queries are left and reads their ends, with new queries held
-- back in st.gate until it is done.

local pstates = setmetatable({}, { __mode = "k" })

local function pstate(c)
    local st = pstates[c]
    if not st then
        st = { q = {}, head = 1, tail = 0, live = 0, reader = nil, excl = false,
            excl_waiting = 0, waiters = core.waitq(), gate = core.waitq() }
        pstates[c] = st
    end
    return st
end

-- every query in flight ends with err (the connection broke); all their threads wake
local function fail_all(st, err)
    for i = st.head, st.tail do
        local e = st.q[i]
        e.done, e.ferr = true, err
        st.q[i] = nil
    end
    st.head, st.tail, st.live, st.reader = 1, 0, 0, nil
    st.waiters:wake_all(true)
    st.gate:wake_all(true)
end

local function pop(st)
    local e = st.q[st.head]
    st.q[st.head] = nil
    st.head = st.head + 1
    if st.head > st.tail then st.head, st.tail = 1, 0 end
    return e
end

-- reads (and discards) every query left in the pipeline
local function drain_pipeline(c, st)
    local consume = false
    while st.head <= st.tail do
        local r, err = c:_pstep(st.q[st.head].acc, consume)
        if r == "done" then
            pop(st).done = true
            consume = false
        elseif not r then
            return nil, err
        else
            wait_fd(c:socket(), true, r == "rw")
            consume = true
        end
    end
    return true
end

local function wake_gate(st)
    if #st.gate > 0 then st.gate:wake_all(true) end
end

-- Only abandoned queries are left: cancel them on the server (no live query can be hit,
-- and new ones wait until this is done) and read their ends; on failure close.
local function pabort(c, st)
    st.excl = true
    local ok, done, err = pcall(function()
        local t <close> = gl.Timeout(M.cancel_timeout)
        local h <close> = c:_cancel_start()
        if h then wait_fd(h:fileno(), true, false) end
        return drain_pipeline(c, st)
    end)
    st.excl = false
    if not (ok and done) then
        c:close()
        fail_all(st, ok and err or "closed")
    end
    wake_gate(st)
end

-- SQL that drops prepared statements behind the connection's back
local function drops_statements(sql)
    local s = sql:lower()
    return s:find("deallocate", 1, true) or s:find("discard", 1, true)
end

-- a cached statement that is gone (26000) or whose plan changed its result type (0A000)
-- failed before it ran; outside a transaction it can simply be prepared and sent again
local STALE = { ["26000"] = true, ["0A000"] = true }

-- the reader is leaving (its query is done or abandoned): pass the socket on
local function hand_over(c, st)
    st.reader = nil
    if st.live > 0 then
        for i = st.head, st.tail do
            local e = st.q[i]
            if not e.abandoned then
                st.reader = e
                st.waiters:wake_one(true)
                return
            end
        end
    end
    if st.head <= st.tail then
        pabort(c, st)
    else
        wake_gate(st)
    end
end

-- this thread's turn: read results in order until e's are complete
local function read_until(c, st, e)
    local consume = false
    while not e.done do
        local r, err = c:_pstep(st.q[st.head].acc, consume)
        if r == "done" then
            local d = pop(st)
            d.done = true
            if not d.abandoned then st.live = st.live - 1 end
            consume = false
        elseif not r then
            fail_all(st, err)
            return
        else
            wait_fd(c:socket(), true, r == "rw")
            consume = true
        end
    end
    hand_over(c, st)
end

local function await(c, st, e)
    if st.reader then
        st.waiters:park("gl.pg: query") -- woken when e's turn to read comes (or all failed)
        if e.done then return end
    else
        st.reader = e
    end
    read_until(c, st, e)
end

local function pipelined(c, st, ...)
    while st.excl or st.excl_waiting > 0 do st.gate:park("gl.pg: query") end
    local e = { acc = { n = 0 } }
    local want, err = c:_psend(e.acc, ...)
    if not want then return nil, err end
    st.tail = st.tail + 1
    st.q[st.tail] = e
    st.live = st.live + 1
    local ok, perr = pcall(await, c, st, e)
    if not ok then
        if not e.done then
            e.abandoned = true
            st.live = st.live - 1
            if st.reader == e then hand_over(c, st) end
        end
        deliver_notices(c)
        error(perr, 0)
    end
    deliver_notices(c)
    if e.ferr then return nil, e.ferr end
    local acc = e.acc
    if acc.err then return nil, acc.err, acc.sqlstate end
    return unpack(acc, 1, acc.n)
end

-- the simple protocol, alone on the connection
local function exclusive(c, st, sql)
    if st.excl or st.head <= st.tail then
        st.excl_waiting = st.excl_waiting + 1
        local ok, err = pcall(function()
            repeat st.gate:park("gl.pg: query") until not st.excl and st.head > st.tail
        end)
        st.excl_waiting = st.excl_waiting - 1
        if not ok then
            wake_gate(st)
            error(err, 0)
        end
    end
    st.excl = true
    local r = pack(pcall(run_query, c, sql))
    st.excl = false
    if drops_statements(sql) then c:_forget() end
    wake_gate(st)
    if not r[1] then error(r[2], 0) end
    return unpack(r, 2, r.n)
end

-- conn:query(sql, ...) -> rows (one per statement) | nil, err [, sqlstate]. Several green
-- threads may query one connection at once: queries with parameters are pipelined.
function Conn:query(sql, ...)
    if type(sql) ~= "string" then error("gl.pg: query: sql must be a string", 2) end
    local st = pstate(self)
    if select("#", ...) == 0 then return exclusive(self, st, sql) end
    -- one statement at most with parameters: rows, or nil, err [, sqlstate]
    local rows, err, sqlstate = pipelined(self, st, sql, ...)
    if rows then return rows end
    if STALE[sqlstate] then
        self:_forget(sql)
        if self:txstatus() == "idle" then return pipelined(self, st, sql, ...) end
    end
    return nil, err, sqlstate
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
    local p = setmetatable({ conninfo = conninfo, load = {}, connecting = 0, excl_waiting = 0,
        share_wait = core.waitq() }, Pool)
    p.pool = pools.Pool {
        max_size = opts.max_size or 4,
        create = function()
            local c, err = M.connect(conninfo,
                { on_notice = opts.on_notice, prepare = opts.prepare })
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

-- pool:acquire() -> conn | nil, err: a live connection of this thread's own (made lazily;
-- broken ones met on the way are dropped)
function Pool:acquire(exclusive)
    -- a thread that will wait for a connection of its own holds back queries from joining
    -- shared connections (pool:query's own share() calls it with free() > 0: no wait)
    local waits = exclusive ~= false and self.pool:free() == 0
    if waits then self.excl_waiting = self.excl_waiting + 1 end
    while true do
        local ok, c = pcall(self.pool.get, self.pool)
        if not ok then
            if waits then self.excl_waiting = self.excl_waiting - 1 end
            if getmetatable(c) == ConnectError then return nil, c.msg end
            error(c, 0)
        end
        if c:alive() then
            if waits then self.excl_waiting = self.excl_waiting - 1 end
            return c
        end
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

-- Pipelined queries share connections: a connection taken from gl.pools.Pool for them is
-- in self.load (connection -> threads using it) until the last of them leaves, and then
-- goes back, so a transaction or acquire still gets a connection to itself. A query joins
-- the least loaded shared connection, or takes a new one while the pool has room, so that
-- at most max_size backends serve any number of threads. While a thread waits for a
-- connection of its own, queries stop joining shared ones, so these drain and it gets one.
local function share(self)
    while true do
        local best, bl
        for c, n in pairs(self.load) do
            if c:status() == "ok" and (not best or n < bl) then best, bl = c, n end
        end
        local free = self.pool:free()
        if best and self.excl_waiting == 0 and (bl == 0 or free == 0 or self.connecting > 0) then
            return best
        end
        if free > 0 or self.excl_waiting > 0 or not (best or self.connecting > 0) then
            self.connecting = self.connecting + 1
            local ok, c, err = pcall(self.acquire, self, false)
            self.connecting = self.connecting - 1
            if #self.share_wait > 0 then self.share_wait:wake_all(true) end
            if not ok then error(c, 0) end
            if not c then return nil, err end
            self.load[c] = 0
            return c
        end
        self.share_wait:park("gl.pg.pool: query") -- a connection is being made
    end
end

-- pool:query(sql, ...): conn:query on a borrowed connection (one shared by pipelined
-- queries when there are parameters)
function Pool:query(sql, ...)
    if select("#", ...) == 0 then
        local c, err = self:acquire(true)
        if not c then return nil, err end
        local r = pack(pcall(c.query, c, sql))
        self:release(c)
        if not r[1] then error(r[2], 0) end
        return unpack(r, 2, r.n)
    end
    local c, err = share(self)
    if not c then return nil, err end
    local load = self.load
    load[c] = load[c] + 1
    local r = pack(pcall(c.query, c, sql, ...))
    local n = load[c] - 1
    if n == 0 then
        load[c] = nil
        self:release(c)
    else
        load[c] = n
    end
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
