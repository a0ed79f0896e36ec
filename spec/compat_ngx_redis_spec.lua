-- gl.compat.ngx against a real redis-server, driven by a RESP client written as
-- lua-resty-redis is (spec/resty/redis.lua): nested-table sends, "*l" and counted receives,
-- pipelining, the keepalive pool and its survival of the server closing idle connections.
local helper = require "helper"
local gl = require "gl"
local green = helper.green
local compat = require "gl.compat.ngx"
local ngx = compat.install()
local redis_util = require "redis_util"
package.loaded["resty.redis"] = nil
local redis = require "resty.redis"

local R -- the server for most specs (no idle timeout)

local function client(opts)
    local red = assert(redis:new())
    red:set_timeout(2000)
    assert(red:connect("127.0.0.1", R.port, opts))
    return red
end

describe("gl.compat.ngx with redis-server and a lua-resty-redis style client", function()
    setup(function() R = helper.run(redis_util.start, 15) end)
    teardown(function() if R then helper.run(redis_util.stop, 15, R) end end)

    it("runs commands: status, bulk, integer, nil, error and multi-bulk replies", green(function()
        local red = client()
        assert.equal("PONG", red:ping())
        assert.equal("OK", red:set("k1", "a\r\nb"))          -- CRLF inside: counted receive
        assert.equal("a\r\nb", red:get("k1"))
        assert.equal(ngx.null, red:get("no-such-key"))
        assert.equal(1, red:incr("n1"))
        assert.equal(5, red:incrby("n1", 4))
        local res, err = red:hget("k1", "f")                 -- WRONGTYPE
        assert.is_false(res); assert.matches("^WRONGTYPE", err)
        assert.equal(3, red:rpush("l1", "x", "y", "z"))
        assert.same({ "x", "y", "z" }, red:lrange("l1", 0, -1))
        assert.equal("OK", red:hmset("h1", { f1 = "v1", f2 = 2 }))
        assert.same({ f1 = "v1", f2 = "2" }, red:array_to_hash(red:hgetall("h1")))
        assert.equal(ngx.null, red:blpop("no-such-list", "0.01"))   -- nil multi-bulk
        local big = string.rep("0123456789", 100000)                -- 1 MB: many reads
        assert.equal("OK", red:set("big", big))
        assert.equal(big, red:get("big"))
        assert.equal(4, red:del("k1", "n1", "l1", "h1"))
        red:del("big")
        assert.equal(1, red:close())
    end, 10))

    it("connects over the Unix socket with a unix: host", green(function()
        local red = assert(redis:new())
        assert.equal(1, red:connect("unix:" .. R.unix))
        assert.equal("OK", red:set("via-unix", "yes"))
        assert.equal("yes", red:get("via-unix"))
        red:del("via-unix")
        red:close()
        local bad = assert(redis:new())
        local ok, err = bad:connect("unix:" .. R.dir .. "/nope.sock")
        assert.is_nil(ok); assert.is_string(err)
    end))

    it("pipelines: queued requests go in one send, replies come back in order", green(function()
        local red = client()
        red:init_pipeline()
        for i = 1, 200 do red:rpush("pl", i) end
        red:lrange("pl", 0, 2)
        red:get("pl")   -- an error reply in the middle of the batch
        red:del("pl")
        local results = assert(red:commit_pipeline())
        assert.equal(203, #results)
        for i = 1, 200 do assert.equal(i, results[i]) end
        assert.same({ "1", "2", "3" }, results[201])
        assert.is_false(results[202][1]); assert.matches("^WRONGTYPE", results[202][2])
        assert.equal(1, results[203])
        assert.same({ nil, "no pipeline" }, { red:commit_pipeline() })
        red:close()
    end))

    it("setkeepalive pools the connection: the next connect reuses it (same client id)", green(function()
        local red = client()
        assert.equal(0, red:get_reused_times())
        local id = red:client("id")
        assert.is_number(id)
        assert.equal(1, red:set_keepalive(10000, 10))
        assert.equal(1, compat.pool_size("127.0.0.1:" .. R.port))
        -- closed while pooled: no longer usable through the old object
        assert.same({ nil, "closed" }, { red:ping() })
        local red2 = client()
        assert.equal(1, red2:get_reused_times())
        assert.equal(id, red2:client("id"))
        assert.equal(1, red2:set_keepalive(10000, 10))
        local red3 = client()
        assert.equal(2, red3:get_reused_times())
        assert.equal(id, red3:client("id"))
        -- a named pool is a different pool
        local other = client({ pool = "other-pool" })
        assert.equal(0, other:get_reused_times())
        assert.are_not.equal(id, other:client("id"))
        other:close()
        red3:close()
        assert.equal(0, compat.pool_size("127.0.0.1:" .. R.port))
    end))

    it("many green threads share a bounded pool; the counter is exact", green(function()
        local before = compat.pool_size("127.0.0.1:" .. R.port)
        assert.equal(0, before)
        local function conns_received()
            local red = client()
            local info = red:info("stats")
            red:close()
            return tonumber(info:match("total_connections_received:(%d+)"))
        end
        local c0 = conns_received()
        local ths = {}
        for t = 1, 20 do
            ths[t] = gl.spawn(function()
                for _ = 1, 10 do
                    local red = client()
                    assert(red:incr("shared-counter"))
                    assert(red:set_keepalive(10000, 4))
                end
            end)
        end
        for t = 1, 20 do ths[t]:wait() end
        local red = client()
        assert.equal("200", red:get("shared-counter"))
        red:del("shared-counter")
        red:set_keepalive(10000, 4)
        assert.equal(4, compat.pool_size("127.0.0.1:" .. R.port))
        -- 200 commands over far fewer than 200 connections (+1 for conns_received itself)
        local used = conns_received() - c0
        assert.is_true(used <= 22, "connections made: " .. used)
        -- drain the pool
        for _ = 1, 4 do local r = client(); r:close() end
        assert.equal(0, compat.pool_size("127.0.0.1:" .. R.port))
    end, 10))

    it("a read timeout in ms returns 'timeout' and closes the connection", green(function()
        local red = client()
        red:set_timeouts(1000, 1000, 150)
        local t0 = gl.clock()
        local res, err = red:blpop("empty-list", 0)
        local dt = gl.clock() - t0
        assert.is_nil(res); assert.equal("timeout", err)
        assert.is_true(dt >= 0.14 and dt < 1.5, "dt " .. dt)
        assert.same({ nil, "closed" }, { red:ping() })
    end))

    it("a connection the server kills while pooled is dropped; the next connect is fresh",
        green(function()
            local red = client()
            local id = red:client("id")
            assert.equal(1, red:set_keepalive(10000, 10))
            local killer = client({ pool = "killer" })
            assert.equal(1, killer:client("kill", "id", id))
            killer:close()
            assert.is_true(helper.wait_until(function()
                return compat.pool_size("127.0.0.1:" .. R.port) == 0
            end, 3))
            local red2 = client()
            assert.equal(0, red2:get_reused_times())
            assert.are_not.equal(id, red2:client("id"))
            red2:close()
        end))

    it("the pool survives the server's idle timeout (redis 'timeout 1')", green(function()
        local R2 = redis_util.start({ timeout = 1 })
        local ok, err = pcall(function()
            local key = "127.0.0.1:" .. R2.port
            local red = assert(redis:new()); red:set_timeout(2000)
            assert(red:connect("127.0.0.1", R2.port))
            local id = red:client("id")
            assert.equal(1, red:set_keepalive(30000, 10))
            assert.equal(1, compat.pool_size(key))
            -- redis closes the idle client after ~1 s; the pool notices the EOF and drops it
            assert.is_true(helper.wait_until(function() return compat.pool_size(key) == 0 end, 5, 0.02))
            local red2 = assert(redis:new()); red2:set_timeout(2000)
            assert(red2:connect("127.0.0.1", R2.port))
            assert.equal(0, red2:get_reused_times())
            assert.are_not.equal(id, red2:client("id"))
            assert.equal("PONG", red2:ping())
            -- reused within the timeout it stays the same connection
            assert.equal(1, red2:set_keepalive(30000, 10))
            local red3 = assert(redis:new()); red3:set_timeout(2000)
            assert(red3:connect("127.0.0.1", R2.port))
            assert.equal(1, red3:get_reused_times())
            assert.equal("PONG", red3:ping())
            red3:close()
        end)
        redis_util.stop(R2)
        assert(ok, err)
    end, 12))

    it("the pool's idle timeout (ms) closes pooled connections on the client side", green(function()
        local red = client({ pool = "short-idle" })
        assert.equal(1, red:set_keepalive(100, 10))
        assert.equal(1, compat.pool_size("short-idle"))
        local t0 = gl.clock()
        assert.is_true(helper.wait_until(function() return compat.pool_size("short-idle") == 0 end, 2))
        assert.is_true(gl.clock() - t0 >= 0.08)
    end))
    it("a pipeline of 20000 commands runs in one round trip, bounded in time", green(function()
        local red = client()
        red:init_pipeline(20000)
        for i = 1, 10000 do red:set("pk" .. i, i) end
        for i = 1, 10000 do red:get("pk" .. i) end
        local t0 = gl.clock()
        local res = assert(red:commit_pipeline())
        local dt = gl.clock() - t0
        assert.equal(20000, #res)
        for i = 1, 10000 do assert.equal("OK", res[i]); assert.equal(tostring(i), res[10000 + i]) end
        assert.is_true(dt < 5, "pipeline took " .. dt .. " s")
        red:init_pipeline()
        for i = 1, 10000 do red:del("pk" .. i) end
        assert.equal(10000, #assert(red:commit_pipeline()))
        red:close()
    end, 15))
end)
