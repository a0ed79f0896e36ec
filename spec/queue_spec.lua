-- gl.Queue, gl.LightQueue, gl.PriorityQueue, gl.LifoQueue (API.md section 4).
local gl = require "gl"
local helper = require "helper"
local green = helper.green

local Full, Empty = gl.queue.Full, gl.queue.Empty

local classes = {
    Queue = gl.Queue, LightQueue = gl.LightQueue,
    PriorityQueue = gl.PriorityQueue, LifoQueue = gl.LifoQueue,
}

describe("gl.queue", function()
    for name, make in pairs(classes) do
        describe(name, function()
            it("is unbounded with maxsize nil", green(function()
                local q = make()
                assert.is_nil(q.maxsize)
                for i = 1, 1000 do q:put(i) end
                assert.are.equal(1000, q:qsize())
                assert.is_false(q:full())
                assert.is_false(q:empty())
                local sum = 0
                for _ = 1, 1000 do sum = sum + q:get() end
                assert.are.equal(500500, sum)
                assert.is_true(q:empty())
            end))

            it("raises Full and Empty as values", green(function()
                local q = make(1)
                q:put_nowait(1)
                assert.is_true(q:full())
                assert.are.equal(Full, helper.raises(q.put_nowait, q, 2))
                assert.are.equal(Full, helper.raises(q.put, q, 2, false))
                assert.are.equal(1, q:get_nowait())
                assert.are.equal(Empty, helper.raises(q.get_nowait, q))
                assert.are.equal(Empty, helper.raises(q.get, q, false))
                assert.are.equal("gl.queue.Full", tostring(Full))
            end))

            it("times out put and get with Full / Empty", green(function()
                local q = make(1)
                q:put(1)
                local t0 = gl.clock()
                assert.are.equal(Full, helper.raises(q.put, q, 2, true, 0.02))
                assert.is_true(gl.clock() - t0 >= 0.018)
                assert.are.equal(0, q:putting())
                q:get()
                assert.are.equal(Empty, helper.raises(q.get, q, true, 0.02))
                assert.are.equal(0, q:getting())
            end))

            it("a bounded put waits until a get makes room", green(function()
                local q = make(2)
                q:put(1); q:put(2)
                local done = false
                local p = gl.spawn(function() q:put(3); done = true end)
                gl.sleep(0)
                assert.is_false(done)
                assert.are.equal(1, q:putting())
                q:get()
                p:wait()
                assert.is_true(done)
                assert.are.equal(2, q:qsize())
            end))

            it("queues nil values", green(function()
                local q = make()
                if name == "PriorityQueue" then return end -- nil has no order
                q:put(nil)
                assert.are.equal(1, q:qsize())
                local r = table.pack(q:get())
                assert.are.equal(1, r.n)
                assert.is_nil(r[1])
            end))

            it("a get waiter receives an item put later", green(function()
                local q = make()
                local g = gl.spawn(function() return q:get() end)
                gl.sleep(0)
                assert.are.equal(1, q:getting())
                q:put("x")
                assert.are.equal("x", g:wait())
            end))

            it("serves getters first come, first served", green(function()
                local q = make()
                local got = {}
                local gs = {}
                for i = 1, 4 do gs[i] = gl.spawn(function() got[i] = q:get() end) end
                gl.sleep(0)
                for i = 1, 4 do q:put(i * 10) end
                for i = 1, 4 do gs[i]:wait() end
                assert.are.same({ 10, 20, 30, 40 }, got)
            end))

            it("serves putters first come, first served", green(function()
                local q = make(1)
                q:put(0)
                local ps = {}
                for i = 1, 3 do ps[i] = gl.spawn(function() q:put(i) end) end
                gl.sleep(0)
                assert.are.equal(3, q:putting())
                local got = {}
                for _ = 1, 4 do got[#got + 1] = q:get() end
                for i = 1, 3 do ps[i]:wait() end
                if name == "PriorityQueue" or name == "LifoQueue" then
                    table.sort(got)
                end
                assert.are.same({ 0, 1, 2, 3 }, got)
            end))

            it("resize admits waiting putters", green(function()
                local q = make(1)
                q:put(1)
                local ps = {}
                for i = 1, 2 do ps[i] = gl.spawn(function() q:put(i + 1) end) end
                gl.sleep(0)
                assert.are.equal(2, q:putting())
                q:resize(3)
                assert.are.equal(3, q.maxsize)
                for i = 1, 2 do ps[i]:wait() end
                assert.are.equal(3, q:qsize())
                q:resize(nil)
                assert.is_false(q:full())
                assert.has_error(function() q:resize(-1) end)
            end))

            it("rejects a bad maxsize", green(function()
                assert.has_error(function() make(-1) end)
                assert.has_error(function() make(1.5) end)
            end))

            describe("as a channel (maxsize 0)", function()
                it("put waits for a get and hands the item over", green(function()
                    local q = make(0)
                    assert.are.equal(0, q.maxsize)
                    assert.is_true(q:full())   -- no getter waits
                    assert.is_true(q:empty())  -- no putter waits
                    local done = false
                    local p = gl.spawn(function() q:put("v"); done = true end)
                    gl.sleep(0)
                    assert.is_false(done)
                    assert.is_false(q:empty()) -- a putter waits
                    assert.are.equal(0, q:qsize())
                    assert.are.equal("v", q:get())
                    p:wait()
                    assert.is_true(done)
                end))

                it("get waits for a put; full() is false while a getter waits", green(function()
                    local q = make(0)
                    local g = gl.spawn(function() return q:get() end)
                    gl.sleep(0)
                    assert.is_false(q:full())
                    q:put_nowait("w") -- a getter waits: no need to block
                    assert.are.equal("w", g:wait())
                end))

                it("put_nowait and get_nowait fail with no partner", green(function()
                    local q = make(0)
                    assert.are.equal(Full, helper.raises(q.put_nowait, q, 1))
                    assert.are.equal(Empty, helper.raises(q.get_nowait, q))
                    assert.are.equal(Full, helper.raises(q.put, q, 1, true, 0.01))
                    assert.are.equal(0, q:putting())
                end))

                -- Eventlet's channel example: put returns only after the getter has
                -- run with the item, so the log interleaves one by one.
                it("put returns after the getter took the item", green(function()
                    local q = make(0)
                    local log = {}
                    local sender = gl.spawn(function()
                        for _, word in ipairs({ "hello", "world" }) do
                            log[#log + 1] = "sending"
                            q:put(word)
                            log[#log + 1] = "sent " .. word
                        end
                    end)
                    local receiver = gl.spawn(function()
                        for _ = 1, 2 do
                            local word = q:get()
                            log[#log + 1] = word
                        end
                    end)
                    sender:wait()
                    receiver:wait()
                    assert.are.same({ "sending", "hello", "sent hello", "sending", "world",
                        "sent world" }, log)
                end))

                it("a put to a waiting getter lets the getter run first", green(function()
                    local q = make(0)
                    local log = {}
                    local getter = gl.spawn(function()
                        local v = q:get()
                        log[#log + 1] = "got " .. v
                    end)
                    gl.sleep(0)
                    q:put("x")
                    log[#log + 1] = "put returned"
                    getter:wait()
                    assert.are.same({ "got x", "put returned" }, log)
                end))

                it("get_nowait takes a blocked putter's item and wakes it", green(function()
                    local q = make(0)
                    local returned = false
                    local putter = gl.spawn(function() q:put("item"); returned = true end)
                    gl.sleep(0)
                    assert.are.equal(1, q:putting())
                    assert.are.equal("item", q:get_nowait())
                    assert.are.equal(0, q:putting())
                    putter:wait()
                    assert.is_true(returned)
                    assert.are.equal(Empty, helper.raises(q.get_nowait, q))
                end))

                it("put_nowait hands over to a blocked getter", green(function()
                    local q = make(0)
                    local getter = gl.spawn(function() return q:get() end)
                    gl.sleep(0)
                    q:put_nowait("direct")
                    assert.are.equal(0, q:getting())
                    assert.are.equal("direct", getter:wait())
                    assert.are.equal(Full, helper.raises(q.put_nowait, q, 1))
                end))

                it("a putter that times out takes its item back", green(function()
                    local q = make(0)
                    assert.are.equal(Full, helper.raises(q.put, q, "late", true, 0.01))
                    local getter = gl.spawn(function() return q:get(true, 0.01) end)
                    assert.are.equal(Empty, helper.raises(getter.wait, getter))
                end))

                it("keeps FIFO order with several putters", green(function()
                    local q = make(0)
                    local ps = {}
                    for i = 1, 3 do ps[i] = gl.spawn(function() q:put(i) end) end
                    gl.sleep(0)
                    local got = {}
                    for _ = 1, 3 do got[#got + 1] = q:get() end
                    for i = 1, 3 do ps[i]:wait() end
                    assert.are.same({ 1, 2, 3 }, got)
                end))
            end)
        end)
    end

    describe("Queue task_done / join", function()
        it("join waits until every item is done", green(function()
            local q = gl.Queue()
            assert.is_true(q:join())
            for i = 1, 3 do q:put(i) end
            local worker = gl.spawn(function()
                for _ = 1, 3 do q:get(); gl.sleep(0.001); q:task_done() end
            end)
            local joined = false
            local j = gl.spawn(function() q:join(); joined = true end)
            gl.sleep(0)
            assert.is_false(joined)
            worker:wait()
            j:wait()
            assert.is_true(joined)
            assert.has_error(function() q:task_done() end)
        end))

        it("join with a timeout returns false", green(function()
            local q = gl.Queue()
            q:put(1)
            assert.is_false(q:join(0.01))
        end))

        it("LightQueue has no task_done / join", green(function()
            local q = gl.LightQueue()
            assert.is_nil(q.task_done)
            assert.is_nil(q.join)
        end))
    end)

    describe("order", function()
        it("Queue is FIFO", green(function()
            local q = gl.Queue()
            for _, v in ipairs({ 3, 1, 2 }) do q:put(v) end
            assert.are.same({ 3, 1, 2 }, { q:get(), q:get(), q:get() })
        end))

        it("LifoQueue is LIFO", green(function()
            local q = gl.LifoQueue()
            for _, v in ipairs({ 3, 1, 2 }) do q:put(v) end
            assert.are.same({ 2, 1, 3 }, { q:get(), q:get(), q:get() })
        end))

        it("PriorityQueue gives the smallest first by default", green(function()
            local q = gl.PriorityQueue()
            local input = { 5, 3, 9, 1, 7, 2, 8, 6, 4, 0 }
            for _, v in ipairs(input) do q:put(v) end
            local out = {}
            while not q:empty() do out[#out + 1] = q:get() end
            assert.are.same({ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 }, out)
        end))

        it("PriorityQueue takes a cmp like table.sort's", green(function()
            local q = gl.PriorityQueue(nil, function(a, b) return a.p > b.p end)
            for _, p in ipairs({ 2, 9, 4, 7 }) do q:put({ p = p }) end
            local out = {}
            for _ = 1, 4 do out[#out + 1] = q:get().p end
            assert.are.same({ 9, 7, 4, 2 }, out)
        end))

        it("PriorityQueue with a bound", green(function()
            local q = gl.PriorityQueue(2)
            q:put(5); q:put(1)
            assert.is_true(q:full())
            assert.are.equal(1, q:get())
        end))
    end)
end)
