-- gl.redis against a real redis-server (spec/redis_util.lua): replies of each RESP2 and
-- RESP3 type, Redis's error messages, pipelines, pub/sub with reconnect, the pool, AUTH,
-- SELECT, the Unix socket and TLS with a CA made by openssl for the spec.
local helper = require "helper"
local gl = require "gl"
local green = helper.green
local proc = require "proc"
local redis_util = require "redis_util"
local redis = require "gl.redis"

local R

local function url(db) return ("redis://127.0.0.1:%d/%d"):format(R.port, db or 0) end

describe("gl.redis", function()
    setup(function() R = helper.run(redis_util.start, 15) end)
    teardown(function() if R then helper.run(redis_util.stop, 15, R) end end)

    it("parses URLs", function()
        local o = redis.parse_url("redis://bob:s%40cret@example.com:6380/3")
        assert.same({ username = "bob", password = "s@cret", host = "example.com", port = 6380, db = 3 }, o)
        assert.same({ password = "pw", host = "h" }, redis.parse_url("redis://:pw@h"))
        assert.same({ tls = {}, host = "h", port = 1 }, redis.parse_url("rediss://h:1"))
        assert.same({ path = "/tmp/r.sock", db = 2 }, redis.parse_url("unix:///tmp/r.sock?db=2"))
        assert.is_nil((redis.parse_url("http://x")))
    end)

    it("returns RESP2 replies of each type", green(function()
        local c <close> = assert(redis.connect(url()))
        assert.equal("PONG", c:ping())                          -- simple string
        assert.equal("OK", c:set("s", "a\r\nb\0c"))
        assert.equal("a\r\nb\0c", c:get("s"))                   -- bulk with CRLF and NUL
        assert.equal("", (c:set("e", "") and c:get("e")))       -- empty bulk
        assert.is_nil(c:get("no-such-key"))                     -- nil bulk
        assert.equal(1, c:incr("n")); assert.equal(-5, c:decrby("n", 6))
        assert.equal(math.type(c:incr("n")), "integer")
        assert.equal(3, c:rpush("l", { "x", "y" }, "z"))      -- list arguments are spread
        assert.same({ "x", "y", "z" }, c:lrange("l", 0, -1))  -- array
        local mg = c:mget("s", "no-such", "e")
        assert.equal(3, #mg); assert.equal(redis.null, mg[2])
        assert.equal("OK", c:set("f", 1.5)); assert.equal("1.5", c:get("f"))
        assert.is_nil(c:blpop("no-such-list", "0.01"))          -- nil array
        local big = string.rep("0123456789", 100000)
        assert.equal("OK", c:set("big", big)); assert.equal(big, c:get("big"))
        assert.equal(6, c:del("s", "e", "n", "l", "f", "big"))
    end, 10))

    it("passes Redis's own error messages through", green(function()
        local c <close> = assert(redis.connect(url()))
        local v, err = c:call("NOSUCHCMD", "x")
        assert.is_nil(v); assert.matches("^ERR unknown command", err)
        c:set("str", "x")
        v, err = c:lpush("str", "y")
        assert.is_nil(v); assert.matches("^WRONGTYPE", err)
        assert.equal("PONG", c:ping()) -- still usable
        local e = c:eval("return {1, redis.error_reply('MYERR inside')}", 0)
        assert.is_true(redis.is_error(e[2])); assert.equal("MYERR inside", e[2].err)
        c:del("str")
        assert.matches("redis.subscribe", helper.raises(c.subscribe, c, "x"))
    end))

    it("returns RESP3 replies: maps, sets, doubles, booleans, big numbers, verbatim", green(function()
        local c <close> = assert(redis.connect({ port = R.port, resp = 3 }))
        assert.equal(3, c.server.proto)
        c:hset("h3", "a", "1", "b", "2")
        assert.same({ a = "1", b = "2" }, c:hgetall("h3"))             -- map
        c:sadd("s3", "x", "y")
        local set = c:smembers("s3"); table.sort(set)
        assert.same({ "x", "y" }, set)                                 -- set
        c:zadd("z3", 1.5, "m")
        assert.equal(1.5, c:zscore("z3", "m"))                         -- double
        assert.equal("float", math.type(c:zscore("z3", "m")))
        c:zadd("z3", "inf", "top")
        assert.equal(math.huge, c:zscore("z3", "top"))
        assert.is_nil(c:zscore("z3", "nobody"))                        -- null
        assert.is_true(c:eval("redis.setresp(3); return true", 0))     -- boolean #t
        assert.is_false(c:eval("redis.setresp(3); return false", 0))   -- boolean #f
        assert.equal("1234567999999999999999999",
            c:eval("redis.setresp(3); return {big_number = '1234567999999999999999999'}", 0))
        assert.equal(3.25, c:eval("redis.setresp(3); return {double = 3.25}", 0))
        local info = c:call("LOLWUT") -- verbatim string ("txt:" prefix dropped)
        assert.is_string(info); assert.is_nil(info:match("^txt:"))
        local v, err = c:call("NOSUCHCMD")
        assert.is_nil(v); assert.matches("^ERR unknown command", err)
        c:del("h3", "s3", "z3")
    end))

    it("pipelines 1000 commands in one write, errors as entries", green(function()
        local c <close> = assert(redis.connect(url()))
        local p = c:pipeline()
        for i = 1, 1000 do p:rpush("pl", i) end
        p:get("pl"); p:get("no-such"); p:del("pl")
        assert.equal(1003, p:count())
        local r = assert(p:execute())
        assert.equal(1003, r.n)
        for i = 1, 1000 do assert.equal(i, r[i]) end
        assert.is_true(redis.is_error(r[1001])); assert.matches("^WRONGTYPE", r[1001].err)
        assert.equal(redis.null, r[1002]); assert.equal(1, r[1003])
        local r2 = c:pipeline(function(q) q:set("a", "1"); q:multi(); q:incr("a"); q:incr("a"); q:exec() end)
        assert.same({ "OK", "OK", "QUEUED", "QUEUED", { 2, 3 }, n = 5 }, r2)
        c:del("a")
    end, 10))

    it("serialises green threads sharing one client", green(function()
        local c <close> = assert(redis.connect(url()))
        local ths = {}
        for t = 1, 20 do
            ths[t] = gl.spawn(function()
                for _ = 1, 20 do assert.equal("v" .. t, (c:set("k" .. t, "v" .. t) and c:get("k" .. t))) end
            end)
        end
        for t = 1, 20 do ths[t]:wait() end
        for t = 1, 20 do c:del("k" .. t) end
    end, 10))

    it("closes the connection when a Timeout interrupts a call", green(function()
        local c = assert(redis.connect(url()))
        local ok, e = pcall(gl.with_timeout, 0.1, c.blpop, c, "empty-list", 0)
        assert.is_false(ok); assert.is_true(gl.is_timeout(e))
        assert.is_true(c:closed())
        assert.same({ nil, "closed" }, { c:ping() })
        -- a read timeout returns nil, "timeout" and closes too
        local c2 = assert(redis.connect({ port = R.port, timeout = 0.1 }))
        assert.same({ nil, "timeout" }, { c2:blpop("empty-list", 0) })
        assert.is_true(c2:closed())
    end))

    it("SELECTs the database of the URL", green(function()
        local c2 <close> = assert(redis.connect(url(2)))
        local c0 <close> = assert(redis.connect(url(0)))
        c2:set("dbkey", "two")
        assert.is_nil(c0:get("dbkey"))
        assert.equal("two", c2:get("dbkey"))
        local c3 <close> = assert(redis.connect({ port = R.port, db = 2, resp = 3 }))
        assert.equal("two", c3:get("dbkey"))
        c2:del("dbkey")
        local v, err = redis.connect(url(99))
        assert.is_nil(v); assert.matches("ERR", err)
    end))

    it("connects over the Unix socket", green(function()
        local c <close> = assert(redis.connect("unix://" .. R.unix .. "?db=1"))
        assert.equal("OK", c:set("u", "1"))
        assert.equal("1", c:get("u"))
        c:del("u")
        local v, err = redis.connect({ path = R.dir .. "/nope.sock" })
        assert.is_nil(v); assert.is_string(err)
    end))

    it("reports a refused connection as nil, msg", green(function()
        local s = assert(gl.listen("127.0.0.1", 0))
        local _, port = s:getsockname()
        s:close()
        local v, err = redis.connect({ port = port })
        assert.is_nil(v); assert.equal("connection refused", err)
    end))

    -- a server that answers garbage, vanishes mid-reply or stalls: nil, msg, the client
    -- closed (a later call says "closed"), and nothing left in flight
    it("reports garbage, a vanished server and a stalled reply as nil, msg", green(function()
        local cases = {
            { "?garbage\r\n", "protocol error: unknown reply type" },
            { "\0\1\2\3\r\n", "protocol error: unknown reply type" },
            { ":notanumber\r\n", "protocol error: bad integer" },
            { "$-7\r\n", "protocol error: bad bulk length" },
            { "*-2\r\n", "protocol error: bad array length" },
            { "$99999999999999999999\r\n", "protocol error: bad bulk length" },
            { "$10\r\nabc", "closed" },
            { "*2\r\n:1\r\n", "closed" },
            { "$5\r\nab", "timeout", true },
        }
        for _, case in ipairs(cases) do
            local srv = assert(gl.listen("127.0.0.1", 0))
            local _, port = srv:getsockname()
            local done = gl.Event()
            gl.spawn(function()
                local c = srv:accept()
                c:recv(100)
                c:sendall(case[1])
                if case[3] then done:wait() end
                c:close(); srv:close()
            end)
            local c = assert(redis.connect({ host = "127.0.0.1", port = port, timeout = 0.3 }))
            local v, err = c:get("k")
            assert.is_nil(v)
            assert.matches(case[2], err, 1, true)
            assert.same({ nil, "closed" }, { c:get("k") })
            done:send()
        end
    end))

    describe("pub/sub", function()
        it("delivers messages in order, on channels and patterns", green(function()
            local pub <close> = assert(redis.connect(url()))
            local sub <close> = assert(redis.subscribe(url(), { "c1", "c2" }, { patterns = { "p.*" } }))
            for i = 1, 200 do pub:publish(i % 2 == 0 and "c1" or "c2", tostring(i)) end
            pub:publish("p.x", "pat")
            local got = {}
            for m in sub:messages() do
                assert.equal("message", m.kind)
                got[#got + 1] = m
                if #got == 201 then break end
            end
            for i = 1, 200 do
                assert.equal(tostring(i), got[i].data)
                assert.equal(i % 2 == 0 and "c1" or "c2", got[i].channel)
            end
            assert.same({ kind = "message", pattern = "p.*", channel = "p.x", data = "pat" }, got[201])
        end, 10))

        it("subscribes and unsubscribes while another thread iterates; close ends it", green(function()
            local pub <close> = assert(redis.connect(url()))
            local sub = assert(redis.subscribe(url(), { "a" }))
            local got = {}
            local reader = gl.spawn(function()
                for m in sub:messages() do got[#got + 1] = m.channel .. "=" .. m.data end
                return "ended"
            end)
            assert(sub:subscribe("b"))  -- returns once confirmed: a publish now reaches it
            assert.equal(1, pub:publish("b", "1"))
            pub:publish("a", "2")
            assert.is_true(helper.wait_until(function() return #got == 2 end, 3))
            sub:unsubscribe("a")
            pub:publish("a", "lost"); pub:publish("b", "3")
            assert.is_true(helper.wait_until(function() return #got == 3 end, 3))
            assert.same({ "b=1", "a=2", "b=3" }, got)
            sub:close()
            assert.equal("ended", reader:wait())
            assert.is_true(sub:closed())
        end))

        for _, resp in ipairs({ 2, 3 }) do
            it("reconnects after CLIENT KILL TYPE pubsub and re-subscribes (RESP" .. resp .. ")",
                green(function()
                    local pub <close> = assert(redis.connect(url()))
                    local sub <close> = assert(redis.subscribe({ port = R.port, resp = resp },
                        { "rc" }, { patterns = { "rp*" } }))
                    pub:publish("rc", "before")
                    assert.equal("before", sub:next(2).data)
                    assert.is_true(pub:client("kill", "type", "pubsub") >= 1)
                    local m = assert(sub:next(5))
                    assert.equal("reconnect", m.kind)
                    assert.equal(1, sub.reconnects)
                    -- re-subscribed before the event was handed out
                    assert.equal(2, pub:publish("rc", "after") + pub:publish("rpx", "p"))
                    assert.equal("after", sub:next(2).data)
                    local pm = sub:next(2)
                    assert.equal("rp*", pm.pattern); assert.equal("p", pm.data)
                end))
        end

        it("reconnects after the server is killed and restarted on the same port", green(function()
            local R2 = redis_util.start()
            local port = R2.port
            local ok, err = pcall(function()
                local sub <close> = assert(redis.subscribe({ port = port }, { "x" },
                    { backoff_min = 0.02, backoff_max = 0.2 }))
                os.execute("kill -KILL " .. R2.h.pid)
                redis_util.stop(R2)
                -- the iterator notices, backs off while the port refuses, then reconnects
                R2 = redis_util.start({ port = port })
                local m = assert(sub:next(10))
                assert.equal("reconnect", m.kind)
                local pub <close> = assert(redis.connect({ port = port }))
                assert.equal(1, pub:publish("x", "back"))
                assert.equal("back", sub:next(2).data)
            end)
            redis_util.stop(R2)
            assert(ok, err)
        end, 30))

        it("next(timeout) times out without breaking the subscription", green(function()
            local pub <close> = assert(redis.connect(url()))
            local sub <close> = assert(redis.subscribe(url(), { "nt" }))
            for _ = 1, 3 do assert.same({ nil, "timeout" }, { sub:next(0.05) }) end
            pub:publish("nt", "still here")
            local m = sub:next(2)
            assert.equal("message", m.kind); assert.equal("still here", m.data)
            assert.equal(0, sub.reconnects)
        end))

        it("PINGs an idle connection and reconnects when the PING goes unanswered", green(function()
            local pub <close> = assert(redis.connect(url()))
            local sub <close> = assert(redis.subscribe(url(), { "pi" }, { ping_interval = 0.1 }))
            assert.same({ nil, "timeout" }, { sub:next(0.35) }) -- PINGed and answered meanwhile
            assert.equal(0, sub.reconnects)
            -- a server that stops answering: CLIENT PAUSE holds the PING's reply
            pub:client("pause", 600, "all")
            local m = assert(sub:next(3))
            assert.equal("reconnect", m.kind)
            pub:client("unpause")
        end))

        it("without reconnect, a dropped connection ends the iterator", green(function()
            local pub <close> = assert(redis.connect(url()))
            local sub = assert(redis.subscribe(url(), { "nr" }, { reconnect = false }))
            pub:client("kill", "type", "pubsub")
            assert.same({ nil, "closed" }, { sub:next(3) })
            assert.is_true(sub:closed())
        end))
    end)

    it("pools connections for 50 concurrent green threads", green(function()
        local pool = redis.pool(url(), { size = 8 })
        local ths = {}
        for t = 1, 50 do
            ths[t] = gl.spawn(function()
                for _ = 1, 20 do assert(pool:incr("pool-counter")) end
                pool:with(function(c)
                    c:set("t" .. t, t)
                    assert.equal(tostring(t), c:get("t" .. t))
                    c:del("t" .. t)
                end)
            end)
        end
        for t = 1, 50 do ths[t]:wait() end
        assert.equal("1000", pool:get("pool-counter"))
        assert.is_true(pool:size() <= 8)
        -- a connection that broke is dropped, not handed out again
        local id = pool:with(function(c)
            local killer <close> = assert(redis.connect(url()))
            local myid = c:client("id")
            killer:client("kill", "id", myid)
            assert.is_nil(c:ping())
            assert.is_true(c:closed())
            return myid
        end)
        for _ = 1, 10 do assert.are_not.equal(id, pool:client("id")) end
        assert.equal(1, pool:del("pool-counter"))
        local r = pool:pipeline(function(p) p:set("pp", 1); p:get("pp"); p:del("pp") end)
        assert.same({ "OK", "1", 1, n = 3 }, r)
        pool:close()
    end, 15))

    it("authenticates with requirepass (RESP2 AUTH and RESP3 HELLO)", green(function()
        local RA = redis_util.start({ requirepass = "s3cr3t" })
        local ok, err = pcall(function()
            local v, e = redis.connect({ port = RA.port })
            assert.is_truthy(v) -- the connection itself is made; commands are refused
            local _, perr = v:ping()
            assert.matches("^NOAUTH", perr)
            v:close()
            v, e = redis.connect(("redis://:wrong@127.0.0.1:%d"):format(RA.port))
            assert.is_nil(v); assert.matches("WRONGPASS", e)
            local c <close> = assert(redis.connect(("redis://:s3cr3t@127.0.0.1:%d/1"):format(RA.port)))
            assert.equal("PONG", c:ping())
            local c3 <close> = assert(redis.connect({ port = RA.port, resp = 3, password = "s3cr3t" }))
            assert.equal("PONG", c3:ping())
            local c4 <close> = assert(redis.connect(("redis://default:s3cr3t@127.0.0.1:%d"):format(RA.port)))
            assert.equal("PONG", c4:ping())
            v, e = redis.connect({ port = RA.port, resp = 3, password = "nope" })
            assert.is_nil(v); assert.matches("WRONGPASS", e)
        end)
        redis_util.stop(RA)
        assert(ok, err)
    end, 20))

    describe("over TLS", function()
        local dir, RT
        local function path(n) return dir .. "/" .. n end
        setup(function()
            dir = os.tmpname(); os.remove(dir)
            assert(os.execute("mkdir -m 700 " .. proc.quote(dir)))
            local ok, out = proc.run(("cd %s && EC='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
                .. "openssl req -x509 $EC -keyout ca.key -out ca.pem -days 3 -subj '/CN=gl redis CA' && "
                .. "openssl req $EC -keyout server.key -out server.csr -subj '/CN=localhost' && "
                .. "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf && "
                .. "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                .. "-out server.pem -days 3 -extfile ext.cnf"):format(proc.quote(dir)), 30)
            assert(ok, out)
            -- Debian's redis-server is built with TLS; one built without fails here, loudly
            RT = helper.run(redis_util.start, 15, {
                tls = { cert = path("server.pem"), key = path("server.key"), ca = path("ca.pem") } })
        end)
        teardown(function()
            if RT then helper.run(redis_util.stop, 15, RT) end
            os.execute("rm -rf " .. proc.quote(dir))
        end)

        it("connects with rediss:// and verifies against the CA", green(function()
            local u = ("rediss://127.0.0.1:%d/1"):format(RT.tls_port)
            local c <close> = assert(redis.connect({ url = u, tls = { cafile = path("ca.pem") } }))
            assert.equal("OK", c:set("t", "tls")); assert.equal("tls", c:get("t"))
            assert.equal("TLSv1.3", c:socket():version())
            local c2 <close> = assert(redis.connect({ url = ("rediss://localhost:%d"):format(RT.tls_port),
                resp = 3, tls = { cafile = path("ca.pem") } }))
            assert.equal("tls", (c2:select(1) and c2:get("t")))
            c:del("t")
            -- verification is on by default: the system store does not know the test CA
            local v, err = redis.connect(u)
            assert.is_nil(v); assert.matches("^tls:", err)
            -- and the name is checked
            v, err = redis.connect({ url = ("rediss://127.0.0.1:%d"):format(RT.tls_port),
                tls = { cafile = path("ca.pem"), hostname = "other.test" } })
            assert.is_nil(v); assert.matches("^tls:", err)
            -- pub/sub over TLS
            local sub <close> = assert(redis.subscribe({ url = u, tls = { cafile = path("ca.pem") } }, { "tc" }))
            local pub <close> = assert(redis.connect({ url = u, tls = { cafile = path("ca.pem") } }))
            pub:publish("tc", "secure")
            assert.equal("secure", sub:next(2).data)
        end))
    end)
end)
