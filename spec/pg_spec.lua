-- gl.pg against a real PostgreSQL server the spec starts itself (spec/pg_util.lua).
local gl = require "gl"
local helper = require "helper"
local pgu = require "pg_util"
local pg = require "gl.pg"

local green = helper.green

describe("gl.pg", function()
    local server

    setup(function() server = pgu.start() end)
    teardown(function() if server then server:stop() end end)

    local function connect(extra)
        return assert(pg.connect(server.conninfo .. (extra or "")))
    end

    -- rows of pg_stat_activity running `pattern` (other than the asking backend)
    local function running(c, pattern)
        local r = assert(c:query([[select count(*) as n from pg_stat_activity
            where state = 'active' and query like $1 and pid <> pg_backend_pid()]], pattern))
        return r[1].n
    end

    it("connects over TCP (key=value), a URI and the Unix socket", green(function()
        local a <close> = connect()
        local b <close> = assert(pg.connect(("postgresql://postgres@127.0.0.1:%d/postgres")
            :format(server.port)))
        local c <close> = assert(pg.connect(server.socket_conninfo))
        -- a host name is looked up green (gl.dns), not by libpq's blocking getaddrinfo
        local d <close> = assert(pg.connect(("host=localhost port=%d user=postgres"):format(server.port)))
        for _, conn in ipairs { a, b, c, d } do
            assert.equal(42, conn:query("select 42 as v")[1].v)
            assert.equal("ok", conn:status())
        end
        assert.is_true(a:backend_pid() ~= b:backend_pid())
    end, 20))

    it("returns nil and a message when it cannot connect", green(function()
        local s = assert(gl.listen("127.0.0.1", 0))
        local _, port = s:getsockname()
        s:close()
        local c, err = pg.connect(("host=127.0.0.1 port=%d user=postgres"):format(port))
        assert.is_nil(c)
        assert.matches("refused", err)
        local c3, err3 = pg.connect("host=no-such-host.invalid user=postgres")
        assert.is_nil(c3)
        assert.matches("no%-such%-host", err3)
        local c2, err2 = pg.connect("this is not a conninfo")
        assert.is_nil(c2)
        assert.is_string(err2)
        assert.has_error(function() pg.connect(42) end)
    end))

    it("converts ints, floats, numeric, bool, text, bytea, json and NULL", green(function()
        local c <close> = connect()
        local rows = assert(c:query([[select 1::int2 as i2, 2147483647::int4 as i4,
            9007199254740993::int8 as i8, 1.5::float4 as f4, 0.1::float8 as f8,
            'Infinity'::float8 as inf, 12.30::numeric as num, true as t, false as f,
            'héllo'::text as txt, 'v'::varchar(3) as vc, '\x00ff41'::bytea as bin,
            '{"a": [1, 2]}'::json as js, '{"b":1}'::jsonb as jsb, null::int as nothing]]))
        assert.equal(1, #rows)
        local r = rows[1]
        assert.equal(math.type(r.i2), "integer")
        assert.equal(1, r.i2)
        assert.equal(2147483647, r.i4)
        assert.equal(9007199254740993, r.i8)
        assert.equal(1.5, r.f4)
        assert.equal(0.1, r.f8)
        assert.equal(math.huge, r.inf)
        assert.equal("12.30", r.num)
        assert.is_true(r.t)
        assert.is_false(r.f)
        assert.equal("héllo", r.txt)
        assert.equal("v", r.vc)
        assert.equal("\0\255A", r.bin)
        assert.equal('{"a": [1, 2]}', r.js)
        assert.equal('{"b": 1}', r.jsb)
        assert.equal(pg.null, r.nothing)
        assert.equal("gl.pg.null", tostring(pg.null))
        assert.same({ "i2", "i4", "i8", "f4", "f8", "inf", "num", "t", "f", "txt", "vc", "bin",
            "js", "jsb", "nothing" }, rows.columns)
        assert.equal("SELECT 1", rows.command)
    end))

    it("returns rows for many rows and the affected count for commands", green(function()
        local c <close> = connect()
        assert(c:query("create temp table t (id int primary key, name text)"))
        local ins = assert(c:query("insert into t select g, 'n' || g from generate_series(1, 500) g"))
        assert.equal(500, ins.affected)
        assert.equal(0, #ins)
        local up = assert(c:query("update t set name = 'x' where id <= $1", 7))
        assert.equal(7, up.affected)
        assert.equal("UPDATE 7", up.command)
        local rows = assert(c:query("select id, name from t order by id"))
        assert.equal(500, #rows)
        assert.equal(500, rows.affected)
        assert.same({ id = 8, name = "n8" }, rows[8])
        assert.same({ "id", "name" }, rows.columns)
    end))

    it("sends parameters apart from the SQL: quotes and NULs are data", green(function()
        local c <close> = connect()
        local evil = "'); drop table x; -- \"quoted\" \\ $1"
        assert.equal(evil, c:query("select $1::text as s", evil)[1].s)
        local bin = "a\0b\0\0\255c"
        local r = assert(c:query("select $1::bytea as b, length($1::bytea) as n", bin))[1]
        assert.equal(bin, r.b)
        assert.equal(#bin, r.n)
        -- text cannot hold NUL: the server refuses it rather than truncating
        local ok, err = c:query("select $1::text as s", "a\0b")
        assert.is_nil(ok)
        assert.is_string(err)
        local q = assert(c:query("select $1::int as i, $2::float8 as f, $3::bool as b, $4::text as n, $5::text as m",
            7, 2.25, true, nil, pg.null))[1]
        assert.same({ i = 7, f = 2.25, b = true, n = pg.null, m = pg.null }, q)
        assert.has_error(function() c:query("select $1", {}) end)
        assert.equal(1, c:query("select 1 as one")[1].one) -- still usable
    end))

    it("returns nil, message, sqlstate for an SQL error and stays usable", green(function()
        local c <close> = connect()
        local ok, err, state = c:query("select * from no_such_table")
        assert.is_nil(ok)
        assert.matches("no_such_table", err)
        assert.equal("42P01", state)
        local _, _, st2 = c:query("select 1/0")
        assert.equal("22012", st2)
        assert.equal("idle", c:txstatus())
        assert.equal(3, c:query("select 3 as v")[1].v)
    end))

    it("runs several statements in one string, one rows per statement", green(function()
        local c <close> = connect()
        local a, b, d = c:query("select 1 as x; select 'two' as y; create temp table m (i int)")
        assert.equal(1, a[1].x)
        assert.equal("two", b[1].y)
        assert.equal("CREATE TABLE", d.command)
        local ok, err = c:query("select 1; select nonsense; select 3")
        assert.is_nil(ok)
        assert.matches("nonsense", err)
    end))

    it("passes notices to a callback", green(function()
        local got = {}
        local c <close> = assert(pg.connect(server.conninfo, {
            on_notice = function(msg) got[#got + 1] = msg end,
        }))
        assert(c:query("do $$ begin raise notice 'hello %', 42; raise warning 'careful'; end $$"))
        assert.equal(2, #got)
        assert.matches("hello 42", got[1])
        assert.matches("careful", got[2])
        c:on_notice(nil)
        assert(c:query("do $$ begin raise notice 'dropped'; end $$"))
        assert.equal(2, #got)
    end))

    it("closes: close is idempotent and a closed conn raises on use", green(function()
        local c = connect()
        do
            local d <close> = connect()
            assert(d:query("select 1"))
        end
        c:close()
        c:close()
        assert.equal("closed", c:status())
        assert.has_error(function() c:query("select 1") end, "gl.pg: attempt to use a closed connection")
        assert.matches("closed", tostring(c))
    end))

    it("a pg_sleep(2) blocks only its green thread: a 10 ms ticker runs throughout", green(function()
        local c <close> = connect()
        local ticks, max_gap, last, stop = 0, 0, gl.clock(), false
        local ticker = gl.spawn(function()
            while not stop do
                gl.sleep(0.01)
                local now = gl.clock()
                max_gap = math.max(max_gap, now - last)
                last = now
                ticks = ticks + 1
            end
        end)
        local t0 = gl.clock()
        assert(c:query("select pg_sleep(2)"))
        local took = gl.clock() - t0
        stop = true
        ticker:wait()
        assert.is_true(took >= 1.9, "query took " .. took)
        -- 200 ticks without load; a shared machine may drop some, but the hub never stops
        assert.is_true(ticks >= 100, "only " .. ticks .. " ticks")
        assert.is_true(max_gap < 0.25, "ticker stalled for " .. max_gap .. " s")
    end, 15))

    it("a Timeout on pg_sleep(5) returns in time and cancels it on the server", green(function()
        local c <close> = connect()
        local watch <close> = connect()
        local t0 = gl.clock()
        local ok, err = pcall(gl.with_timeout, 0.2, c.query, c, "select pg_sleep(5) -- timeout case")
        local took = gl.clock() - t0
        assert.is_false(ok)
        assert.is_true(gl.is_timeout(err))
        assert.is_true(took < 1.5, "took " .. took)
        assert.equal(0, running(watch, "%pg_sleep(5) -- timeout case%"))
        assert.equal("ok", c:status())
        assert.equal(9, c:query("select 9 as v")[1].v)
    end))

    it("a kill during a query cancels it and the connection stays usable", green(function()
        local c <close> = connect()
        local watch <close> = connect()
        local started = gl.Event()
        local gt = gl.spawn(function()
            started:send()
            return c:query("select pg_sleep(5) -- kill case")
        end)
        started:wait()
        assert(helper.wait_until(function()
            return running(watch, "%pg_sleep(5) -- kill case%") == 1
        end, 3, 0.02), "the query never ran")
        local t0 = gl.clock()
        gt:kill()
        -- the killed thread cancels its query before it ends
        local ok = pcall(gt.wait, gt)
        assert.is_false(ok)
        assert.is_true(gt:dead())
        assert.is_true(gl.clock() - t0 < 1.5)
        assert.equal(0, running(watch, "%pg_sleep(5) -- kill case%"))
        assert.equal(10, c:query("select 10 as v")[1].v)
    end))

    it("listens and iterates NOTIFY messages green", green(function()
        local l <close> = connect()
        local n <close> = connect()
        assert(l:listen("chan one"))
        local got = {}
        local reader = gl.spawn(function()
            for ch, payload, pid in l:notifications() do
                got[#got + 1] = { ch, payload, pid }
                if #got == 3 then break end
            end
        end)
        gl.sleep(0)
        for i = 1, 3 do
            assert(n:query("select pg_notify($1, $2)", "chan one", "msg " .. i))
        end
        reader:wait()
        assert.same({ "chan one", "msg 2", n:backend_pid() }, got[2])
        assert.equal("msg 3", got[3][2])
        assert(l:unlisten("chan one"))
    end))

    it("pipelines concurrent queries on one connection: each thread gets its own result", green(function()
        local c <close> = connect()
        local gts, sent = {}, 0
        for i = 1, 40 do
            gts[i] = gl.spawn(function()
                sent = sent + 1
                local r = assert(c:query("select $1::int as i, $2::text as s", i, "t" .. i))
                return r[1].i, r[1].s
            end)
        end
        gl.sleep(0)
        assert.equal(40, sent)
        assert.is_true(c:busy()) -- all 40 are in flight at once
        for i = 1, 40 do
            local v, s = gts[i]:wait()
            assert.equal(i, v)
            assert.equal("t" .. i, s)
        end
        assert.is_false(c:busy())
        -- a query without parameters (simple protocol) waits for the pipeline, then runs
        local a, b = c:query("select 1 as x; select 2 as y")
        assert.equal(1, a[1].x)
        assert.equal(2, b[1].y)
        assert.equal(3, c:query("select $1::int as v", 3)[1].v)
    end))

    it("an error in one pipelined query leaves the others' results correct", green(function()
        local c <close> = connect()
        local gts = {}
        for i = 1, 9 do
            gts[i] = gl.spawn(function()
                if i % 3 == 0 then return c:query("select $1::int / 0 as v", i) end
                return c:query("select $1::int as v", i)
            end)
        end
        for i = 1, 9 do
            local r, err, st = gts[i]:wait()
            if i % 3 == 0 then
                assert.is_nil(r)
                assert.matches("division by zero", err)
                assert.equal("22012", st)
            else
                assert.equal(i, r[1].v)
            end
        end
        assert.equal("idle", c:txstatus())
        assert.equal(10, c:query("select $1::int as v", 10)[1].v)
    end))

    -- the statements this connection has prepared, by their SQL
    local function prepared(c)
        local names = {}
        for _, row in ipairs(assert(c:query("select name, statement from pg_prepared_statements"))) do
            names[row.statement] = row.name
        end
        return names
    end

    it("prepares a query with parameters once per connection and reuses the statement", green(function()
        local c <close> = connect()
        local sql = "select $1::int + 1 as v"
        for i = 1, 5 do assert.equal(i + 1, c:query(sql, i)[1].v) end
        local names = prepared(c)
        assert.is_string(names[sql])
        local n = 0
        for _ in pairs(names) do n = n + 1 end
        assert.equal(1, n)
        -- a Parse error is the query's error, and nothing is cached for it
        for _ = 1, 2 do
            local ok, err, state = c:query("select $1::int from from", 1)
            assert.is_nil(ok)
            assert.matches("syntax error", err)
            assert.equal("42601", state)
        end
        assert.is_nil(prepared(c)["select $1::int from from"])
        assert.equal(3, c:query(sql, 2)[1].v)
    end))

    it("prepares again when statements vanish or a plan's result type changes", green(function()
        local c <close> = connect()
        local sql = "select $1::int * 2 as v"
        assert.equal(4, c:query(sql, 2)[1].v)
        assert(c:query("deallocate all"))
        assert.equal(6, c:query(sql, 3)[1].v)
        -- dropped where gl cannot see it: the next use fails with 26000, is prepared again
        -- and sent again, outside a transaction, without the caller seeing the error
        assert(c:query("do $$ begin execute 'dealloc' || 'ate all'; end $$"))
        assert.is_nil(prepared(c)[sql])
        assert.equal(8, c:query(sql, 4)[1].v)
        assert.is_string(prepared(c)[sql])
        assert(c:query("create temp table widen (a int); insert into widen values (1)"))
        local q = "select * from widen where a = $1"
        assert.same({ a = 1 }, c:query(q, 1)[1])
        assert(c:query("alter table widen add column b int default 7"))
        assert.same({ a = 1, b = 7 }, c:query(q, 1)[1])
        -- in a transaction the error is the caller's: the transaction is aborted by then
        assert(c:query("begin"))
        assert.same({ a = 1, b = 7 }, c:query(q, 1)[1])
        assert(c:query("alter table widen drop column b"))
        local ok, _, state = c:query(q, 1)
        assert.is_nil(ok)
        assert.equal("0A000", state)
        assert(c:query("rollback"))
        assert.same({ a = 1, b = 7 }, c:query(q, 1)[1])
    end))

    it("prepares nothing with prepare = false (for a pooler in transaction mode)", green(function()
        local c <close> = assert(pg.connect(server.conninfo, { prepare = false }))
        for i = 1, 3 do assert.equal(i, c:query("select $1::int as v", i)[1].v) end
        assert.is_nil(next(prepared(c)))
        local p = pg.pool(server.conninfo, { max_size = 1, prepare = false })
        assert.equal(5, p:query("select $1::int as v", 5)[1].v)
        assert.equal(0, #p:query("select name from pg_prepared_statements"))
        p:close()
    end))

    it("a Timeout mid-pipeline abandons that query only; the last one out cancels on the server", green(function()
        local c <close> = connect()
        local watch <close> = connect()
        local before = gl.spawn(function() return c:query("select $1::int as v, pg_sleep(0.3)", 1) end)
        local victim = gl.spawn(function()
            return pcall(gl.with_timeout, 0.1, c.query, c, "select $1::int as v, pg_sleep(0.3)", 2)
        end)
        local after = gl.spawn(function() return c:query("select $1::int as v", 3) end)
        local ok, e = victim:wait()
        assert.is_false(ok)
        assert.is_true(gl.is_timeout(e))
        assert.equal(1, assert(before:wait())[1].v)
        assert.equal(3, assert(after:wait())[1].v)
        assert.is_false(c:busy())
        assert.equal(4, c:query("select $1::int as v", 4)[1].v)
        -- alone on the connection, a timed-out query is cancelled on the server at once
        local t0 = gl.clock()
        local ok2, e2 = pcall(gl.with_timeout, 0.2, c.query, c,
            "select pg_sleep($1) -- pipelined timeout case", 5)
        assert.is_false(ok2)
        assert.is_true(gl.is_timeout(e2))
        assert.is_true(gl.clock() - t0 < 1.5)
        assert.equal(0, running(watch, "%pipelined timeout case%"))
        assert.equal(6, c:query("select $1::int as v", 6)[1].v)
    end, 15))

    it("gl.pools.Pool:discard frees a place and lets a waiter make a new item", green(function()
        local made = 0
        local p = gl.pools.Pool { max_size = 1, create = function() made = made + 1; return made end }
        local first = p:get()
        local waiter = gl.spawn(function() return p:get() end)
        gl.sleep(0)
        assert.equal(1, p:waiting())
        p:discard(first)
        assert.equal(2, waiter:wait())
        assert.equal(2, made)
        assert.equal(1, p.current_size)
        p:put(2)
        assert.equal(1, p:free())
    end))

    describe("pool", function()
        it("serves 50 green threads through 4 connections, never more backends", green(function()
            local app = "glpool" .. math.random(1e6)
            local p = pg.pool(server.conninfo .. " application_name=" .. app, { max_size = 4 })
            local watch <close> = connect()
            local max_seen, done = 0, false
            local monitor = gl.spawn(function()
                while not done do
                    local r = assert(watch:query(
                        "select count(*) as n from pg_stat_activity where application_name = $1", app))
                    max_seen = math.max(max_seen, r[1].n)
                    gl.sleep(0.005)
                end
            end)
            local gts, res = {}, {}
            for i = 1, 50 do
                gts[i] = gl.spawn(function()
                    local r = assert(p:query("select $1::int as i, pg_sleep(0.02)", i))
                    return r[1].i
                end)
            end
            for i = 1, 50 do res[i] = gts[i]:wait() end
            done = true
            monitor:wait()
            for i = 1, 50 do assert.equal(i, res[i]) end
            assert.is_true(max_seen >= 2, "max_seen " .. max_seen)
            assert.is_true(max_seen <= 4, "max_seen " .. max_seen)
            assert.equal(4, p:size())
            p:close()
            assert.equal(0, p:size())
        end, 20))

        it("returns the connection on SQL errors and raises through on Timeout", green(function()
            local p = pg.pool(server.conninfo, { max_size = 1 })
            for _ = 1, 3 do
                local ok, _, st = p:query("select nonsense")
                assert.is_nil(ok)
                assert.equal("42703", st)
            end
            local ok, e = pcall(gl.with_timeout, 0.1, p.query, p, "select pg_sleep(3)")
            assert.is_false(ok)
            assert.is_true(gl.is_timeout(e))
            assert.equal(5, p:query("select 5 as v")[1].v) -- one connection, still working
            assert.equal(1, p:size())
            p:close()
        end, 10))

        it("runs transactions: COMMIT on success, ROLLBACK when fn raises", green(function()
            local p = pg.pool(server.conninfo, { max_size = 2 })
            assert(p:query("create table if not exists tx (v text)"))
            assert(p:query("truncate tx"))
            local a, b = p:transaction(function(c, v)
                assert(c:query("insert into tx values ($1)", v))
                return "done", 2
            end, "kept")
            assert.equal("done", a)
            assert.equal(2, b)
            local err = helper.raises(p.transaction, p, function(c)
                assert(c:query("insert into tx values ('lost')"))
                error("boom")
            end)
            assert.matches("boom", err)
            local ok, msg, st = p:transaction(function(c)
                c:query("insert into tx values ('lost too')")
                c:query("select nonsense") -- aborts the transaction; fn ignores it
            end)
            assert.is_nil(ok)
            assert.matches("rolled back", msg)
            assert.equal("25P02", st)
            local rows = assert(p:query("select v from tx order by v"))
            assert.equal(1, #rows)
            assert.equal("kept", rows[1].v)
            assert(p:query("drop table tx"))
            p:close()
        end, 10))

        it("gives a transaction a connection of its own while pipelined queries run", green(function()
            local p = pg.pool(server.conninfo, { max_size = 2 })
            local stop, n = false, 0
            local gts = {}
            for i = 1, 20 do
                gts[i] = gl.spawn(function()
                    while not stop do
                        assert.equal(i, assert(p:query("select $1::int as v", i))[1].v)
                        n = n + 1
                    end
                end)
            end
            gl.sleep(0.05)
            for _ = 1, 3 do
                local pid = p:transaction(function(c)
                    assert.equal("intrans", c:txstatus())
                    assert(c:query("select pg_sleep(0.02)"))
                    assert.equal("intrans", c:txstatus())
                    return c:backend_pid()
                end)
                assert.is_number(pid)
            end
            stop = true
            for i = 1, 20 do gts[i]:wait() end
            assert.is_true(n > 20)
            assert.is_true(p:size() <= 2)
            p:close()
        end, 20))

        it("reports a server it cannot reach as nil, err", green(function()
            local s = assert(gl.listen("127.0.0.1", 0))
            local _, port = s:getsockname()
            s:close()
            local p = pg.pool(("host=127.0.0.1 port=%d user=postgres"):format(port), { max_size = 2 })
            local ok, err = p:query("select 1")
            assert.is_nil(ok)
            assert.matches("refused", err)
            assert.equal(0, p:size())
        end))

        it("recovers after a server restart: broken connections are replaced", green(function()
            local p = pg.pool(server.conninfo, { max_size = 3 })
            local gts = {}
            for i = 1, 3 do gts[i] = gl.spawn(function() return assert(p:query("select pg_sleep(0.05)")) end) end
            for i = 1, 3 do gts[i]:wait() end
            assert.equal(3, p:size())
            local before = {}
            for _, r in ipairs(assert(p:query("select pid from pg_stat_activity where backend_type = 'client backend'"))) do
                before[r.pid] = true
            end
            -- a query running while the server goes down ends with an error, not a hang
            local inflight = gl.spawn(function() return p:query("select pg_sleep(10)") end)
            gl.sleep(0.1)
            server:restart()
            local r1, e1 = inflight:wait()
            assert.is_nil(r1)
            assert.is_string(e1)
            for i = 1, 10 do
                local rows = assert(p:query("select $1::int as i, pg_backend_pid() as pid", i))
                assert.equal(i, rows[1].i)
                assert.is_nil(before[rows[1].pid])
            end
            assert.is_true(p:size() <= 3)
            p:close()
        end, 60))
    end)
end)
