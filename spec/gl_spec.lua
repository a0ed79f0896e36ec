-- gl: green threads, the hub, kill/wait/link, deadlock detection, blocking where it
-- cannot, and the hub-aware coroutine library (API.md section 2).
local gl = require "gl"
local helper = require "helper"
local green = helper.green

describe("gl", function()
    it("is the global gl and require 'gl'", function()
        assert.are.equal(gl, _G.gl)
        assert.is_string(gl.version)
    end)

    it("runs busted in the main green thread, whose id is 1", function()
        local me = gl.getcurrent()
        assert.is_not_nil(me)
        assert.are.equal(1, me.id)
        assert.are.equal("running", me:status())
    end)

    describe("spawn", function()
        it("starts the function later with its arguments and returns a handle", green(function()
            local log = {}
            local gt = gl.spawn(function(a, b) log[#log + 1] = a + b; return a * b, "x" end, 3, 4)
            assert.are.same({}, log) -- the caller continues at once
            assert.are.equal("pending", gt:status())
            assert.is_false(gt:dead())
            local r1, r2 = gt:wait()
            assert.are.same({ 7 }, log)
            assert.are.equal(12, r1)
            assert.are.equal("x", r2)
            assert.is_true(gt:dead())
            assert.are.equal("dead", gt:status())
        end))

        it("passes nil arguments and returns every result, nils included", green(function()
            local gt = gl.spawn(function(...) return select("#", ...), ... end, nil, 2, nil)
            local n, a, b, c = gt:wait()
            assert.are.equal(3, n)
            assert.is_nil(a); assert.are.equal(2, b); assert.is_nil(c)
        end))

        it("gives each thread a unique integer id", green(function()
            local seen = {}
            local gts = {}
            for i = 1, 50 do
                gts[i] = gl.spawn(function() return gl.getcurrent().id end)
            end
            for i = 1, 50 do
                local id = gts[i]:wait()
                assert.are.equal(gts[i].id, id)
                assert.are.equal("integer", math.type(id))
                assert.is_nil(seen[id])
                seen[id] = true
            end
        end))

        it("runs spawned threads in spawn order", green(function()
            local order = {}
            local gts = {}
            for i = 1, 5 do gts[i] = gl.spawn(function() order[#order + 1] = i end) end
            for i = 1, 5 do gts[i]:wait() end
            assert.are.same({ 1, 2, 3, 4, 5 }, order)
        end))

        it("raises for a non-function", green(function()
            assert.has_error(function() gl.spawn(42) end)
        end))

        it("spawn_n runs the function without returning a handle", green(function()
            local ev = gl.Event()
            local r = table.pack(gl.spawn_n(function(v) ev:send(v) end, "hi"))
            assert.are.equal(0, r.n)
            assert.are.equal("hi", ev:wait(1))
        end))
    end)

    describe("spawn_after", function()
        it("starts the function after the delay", green(function()
            local t0 = gl.clock()
            local gt = gl.spawn_after(0.05, function(x) return gl.clock() - t0, x end, "v")
            assert.are.equal("pending", gt:status())
            local elapsed, x = gt:wait()
            assert.is_true(elapsed >= 0.045, "ran after " .. elapsed)
            assert.are.equal("v", x)
        end))

        it("cancel before the delay prevents it and wait raises GreenletExit", green(function()
            local ran = false
            local gt = gl.spawn_after(0.02, function() ran = true end)
            gt:cancel()
            assert.is_true(gt:dead())
            gl.sleep(0.05)
            assert.is_false(ran)
            local err = helper.raises(gt.wait, gt)
            assert.are.equal(gl.GreenletExit, err)
        end))

        it("cancel after it started does nothing", green(function()
            local ev = gl.Event()
            local gt = gl.spawn_after(0, function() ev:wait() return "done" end)
            gl.sleep(0.01)
            assert.are.equal("suspended", gt:status())
            gt:cancel()
            assert.is_false(gt:dead())
            ev:send()
            assert.are.equal("done", gt:wait())
        end))
    end)

    describe("sleep", function()
        it("never returns early by the monotonic clock", green(function()
            for _ = 1, 25 do
                local t0 = gl.clock()
                gl.sleep(0.007)
                local took = gl.clock() - t0
                assert.is_true(took >= 0.007, ("slept %.6f s of 0.007"):format(took))
            end
        end))

        it("wakes threads in the order of their deadlines", green(function()
            local order = {}
            local gts = {}
            for _, d in ipairs({ 0.03, 0.01, 0.02 }) do
                gts[#gts + 1] = gl.spawn(function() gl.sleep(d); order[#order + 1] = d end)
            end
            for _, gt in ipairs(gts) do gt:wait() end
            assert.are.same({ 0.01, 0.02, 0.03 }, order)
        end))

        it("sleeps at least the time asked", green(function()
            local t0 = gl.clock()
            gl.sleep(0.03)
            assert.is_true(gl.clock() - t0 >= 0.028)
        end))

        it("sleep(0) lets every other runnable thread run once, round robin", green(function()
            local log = {}
            local gts = {}
            for i = 1, 3 do
                gts[i] = gl.spawn(function()
                    for round = 1, 3 do
                        log[#log + 1] = i .. ":" .. round
                        gl.sleep(0)
                    end
                end)
            end
            for i = 1, 3 do gts[i]:wait() end
            assert.are.same({ "1:1", "2:1", "3:1", "1:2", "2:2", "3:2", "1:3", "2:3", "3:3" }, log)
        end))

        it("a sleep(0) loop still lets sockets in (passes run back to back only briefly)",
            green(function()
            local srv = assert(gl.listen("127.0.0.1", 0))
            local _, port = srv:getsockname()
            local got
            local reader = gl.spawn(function()
                local conn = srv:accept()
                got = conn:recv(100)
                conn:close()
            end)
            local c = assert(gl.connect("127.0.0.1", port))
            assert(c:sendall("ping"))
            local t0 = gl.clock()
            while not got and gl.clock() - t0 < 5 do gl.sleep(0) end
            reader:wait()
            c:close()
            srv:close()
            assert.are.equal("ping", got)
            assert.is_true(gl.clock() - t0 < 0.5, "the reader waited " .. (gl.clock() - t0) .. " s")
        end))

        it("sleep(0) runs threads spawned just before it", green(function()
            local ran = 0
            for _ = 1, 10 do gl.spawn_n(function() ran = ran + 1 end) end
            gl.sleep(0)
            assert.are.equal(10, ran)
            gl.spawn_n(function() ran = ran + 1 end)
            gl.sleep()
            assert.are.equal(11, ran)
        end))
    end)

    describe("getcurrent", function()
        it("returns the running thread's handle", green(function()
            local gt
            gt = gl.spawn(function() return gl.getcurrent() end)
            assert.are.equal(gt, gt:wait())
            local me = gl.getcurrent()
            assert.are.equal("running", me:status())
            assert.are_not.equal(1, me.id)
        end))
    end)

    describe("kill", function()
        it("a thread that has not started never starts", green(function()
            local ran = false
            local gt = gl.spawn(function() ran = true end)
            gl.kill(gt)
            assert.is_true(gt:dead())
            gl.sleep(0); gl.sleep(0)
            assert.is_false(ran)
            assert.are.equal(gl.GreenletExit, helper.raises(gt.wait, gt))
        end))

        it("raises at the blocking point and the victim runs before kill returns", green(function()
            local log = {}
            local gt = gl.spawn(function()
                local ok, err = pcall(gl.sleep, 10)
                log[#log + 1] = ok
                log[#log + 1] = err
                return "caught"
            end)
            gl.sleep(0)
            assert.are.equal("suspended", gt:status())
            gl.kill(gt)
            assert.are.same({ false, gl.GreenletExit }, log) -- ran before kill returned
            assert.is_true(gt:dead())
            assert.are.equal("caught", gt:wait())
        end))

        it("raises a custom error value as is", green(function()
            local e = { "custom" }
            local q = gl.Queue()
            local gt = gl.spawn(function() q:get() end)
            gl.sleep(0)
            gt:kill(e)
            assert.are.equal(e, helper.raises(gt.wait, gt))
        end))

        it("an uncaught GreenletExit makes wait raise GreenletExit", green(function()
            local gt = gl.spawn(function() gl.sleep(10) end)
            gl.sleep(0)
            gl.kill(gt)
            assert.are.equal(gl.GreenletExit, helper.raises(gt.wait, gt))
        end))

        it("runs the victim's <close> variables", green(function()
            local closed = false
            local gt = gl.spawn(function()
                local _ <close> = setmetatable({}, { __close = function() closed = true end })
                gl.sleep(10)
            end)
            gl.sleep(0)
            gl.kill(gt)
            assert.is_true(closed)
        end))

        it("of a dead thread does nothing", green(function()
            local gt = gl.spawn(function() return 1 end)
            assert.are.equal(1, gt:wait())
            gl.kill(gt)
            gt:kill("x")
            assert.are.equal(1, gt:wait())
        end))

        it("of the current thread raises in it", green(function()
            local gt = gl.spawn(function() gl.kill(gl.getcurrent(), "self") ; return "not here" end)
            assert.are.equal("self", helper.raises(gt.wait, gt))
        end))

        it("raises in a thread that is runnable in sleep(0)", green(function()
            local n = 0
            local gt = gl.spawn(function() while true do n = n + 1; gl.sleep(0) end end)
            gl.sleep(0)
            gl.sleep(0)
            assert.is_true(n >= 1)
            gl.kill(gt, "stop")
            assert.is_true(gt:dead())
            assert.are.equal("stop", helper.raises(gt.wait, gt))
        end))

        it("a killed waiter is removed from the wait queue", green(function()
            local q = gl.Queue()
            local a = gl.spawn(function() return q:get() end)
            local b = gl.spawn(function() return q:get() end)
            gl.sleep(0)
            assert.are.equal(2, q:getting())
            a:kill()
            assert.are.equal(1, q:getting())
            q:put("x")
            assert.are.equal("x", b:wait())
        end))
    end)

    describe("wait", function()
        it("re-raises the thread's original error value", green(function()
            local gt = gl.spawn(function() error("boom", 0) end)
            assert.are.equal("boom", helper.raises(gt.wait, gt))
            local t = { code = 7 }
            local gt2 = gl.spawn(function() error(t) end)
            assert.are.equal(t, helper.raises(gt2.wait, gt2))
            -- and again: the result stays
            assert.are.equal(t, helper.raises(gt2.wait, gt2))
        end))

        it("keeps the position prefix of a string error", green(function()
            local gt = gl.spawn(function() error("located") end)
            local err = helper.raises(gt.wait, gt)
            assert.matches("gl_spec.lua:%d+: located", err)
        end))

        it("can be called by many waiters", green(function()
            local ev = gl.Event()
            local gt = gl.spawn(function() ev:wait() return "r" end)
            local ws = {}
            for i = 1, 3 do ws[i] = gl.spawn(function() return gt:wait() end) end
            gl.sleep(0)
            ev:send()
            for i = 1, 3 do assert.are.equal("r", ws[i]:wait()) end
        end))

        it("a thread cannot wait for itself", green(function()
            local err = helper.raises(function() gl.getcurrent():wait() end)
            assert.matches("itself", err)
        end))
    end)

    describe("link", function()
        it("calls the function with the thread and extra args when it ends", green(function()
            local got = {}
            local ev = gl.Event()
            local gt = gl.spawn(function() ev:wait() return 5 end)
            gt:link(function(g, a, b) got[#got + 1] = { g, a, b, g:dead() } end, "a", "b")
            gl.sleep(0)
            assert.are.same({}, got)
            ev:send()
            gt:wait()
            assert.are.equal(1, #got)
            assert.are.equal(gt, got[1][1])
            assert.are.equal("a", got[1][2])
            assert.are.equal("b", got[1][3])
            assert.is_true(got[1][4])
        end))

        it("calls at once when the thread has already ended", green(function()
            local gt = gl.spawn(function() end)
            gt:wait()
            local called = false
            gt:link(function(g) called = g == gt end)
            assert.is_true(called)
        end))

        it("also runs for threads that failed or were killed", green(function()
            local n = 0
            local a = gl.spawn(function() error("x") end)
            local b = gl.spawn(function() gl.sleep(10) end)
            a:link(function() n = n + 1 end)
            b:link(function() n = n + 1 end)
            gl.sleep(0)
            b:kill()
            pcall(a.wait, a)
            assert.are.equal(2, n)
        end))

        it("unlink removes a link", green(function()
            local calls = {}
            local f1 = function() calls[#calls + 1] = 1 end
            local f2 = function() calls[#calls + 1] = 2 end
            local gt = gl.spawn(function() end)
            gt:link(f1)
            gt:link(f2)
            gt:unlink(f1)
            gt:wait()
            assert.are.same({ 2 }, calls)
        end))
    end)

    describe("status", function()
        it("goes pending -> suspended -> running -> dead", green(function()
            local ev = gl.Event()
            local inside
            local gt = gl.spawn(function() inside = gl.getcurrent():status(); ev:wait() end)
            assert.are.equal("pending", gt:status())
            gl.sleep(0)
            assert.are.equal("running", inside)
            assert.are.equal("suspended", gt:status())
            ev:send()
            gt:wait()
            assert.are.equal("dead", gt:status())
            assert.matches("gl.GreenThread", tostring(gt))
        end))
    end)

    describe("deadlock detection", function()
        it("names Queue:get", green(function()
            local q = gl.Queue()
            local err = helper.raises(q.get, q)
            assert.are.equal("deadlock: Queue:get would wait forever", err)
        end, false))

        it("names Event:wait", green(function()
            local ev = gl.Event()
            local err = helper.raises(ev.wait, ev)
            assert.matches("^deadlock: Event:wait", err)
        end, false))

        it("names Semaphore:acquire and GreenThread:wait", green(function()
            local s = gl.Semaphore(0)
            assert.matches("^deadlock: Semaphore:acquire", helper.raises(s.acquire, s))
            local q = gl.Queue()
            local gt = gl.spawn(function() q:get() end)
            gl.sleep(0)
            local err = helper.raises(gt.wait, gt)
            -- gt is the older waiter: it gets the deadlock error first, then wait re-raises it
            assert.matches("^deadlock: Queue:get", err)
        end, false))

        it("does not fire while a timer can still wake the waiter", green(function()
            local q = gl.Queue()
            gl.spawn_after(0.05, function() q:put("late") end)
            assert.are.equal("late", q:get())
        end, false))
    end)

    describe("blocking where it cannot yield", function()
        it("raises a clear error in a __gc metamethod", green(function()
            local err
            do
                setmetatable({}, { __gc = function()
                    local ok, e = pcall(gl.sleep, 0.01)
                    if not ok then err = e end
                end })
            end
            collectgarbage(); collectgarbage()
            assert.matches("gl.sleep: cannot block here", err)
        end))

        it("raises in a table.sort comparator", green(function()
            local err = helper.raises(table.sort, { 3, 1, 2 }, function(a, b)
                gl.sleep(0)
                return a < b
            end)
            assert.matches("gl.sleep: cannot block here", err)
        end))

        it("raises in a string.gsub callback", green(function()
            local q = gl.Queue()
            q:put(1)
            local err = helper.raises(string.gsub, "abc", "%w", function() q:get(); q:get() end)
            -- the first get does not block; the second would
            assert.matches("Queue:get: cannot block here", err)
        end))

        it("raises outside any green thread (a link run by the hub)", green(function()
            local res = {}
            local gt = gl.spawn(function() end)
            gt:link(function()
                res.cur = gl.getcurrent()
                res.ok, res.err = pcall(gl.sleep, 0)
                res.tok, res.terr = pcall(gl.Timeout, 1)
            end)
            gt:wait()
            assert.is_nil(res.cur)
            assert.is_false(res.ok)
            assert.matches("gl.sleep: not in a green thread", res.err)
            assert.is_false(res.tok)
            assert.matches("not in a green thread", res.terr)
        end))
    end)

    describe("the hub-aware coroutine library", function()
        it("lets a coroutine.wrap generator block on gl calls", green(function()
            local q = gl.Queue()
            local producer = gl.spawn(function()
                for i = 1, 3 do gl.sleep(0.001); q:put(i) end
                q:put(nil)
                q:put("end")
            end)
            local gen = coroutine.wrap(function()
                while true do
                    local v = q:get()
                    if v == "end" then return end
                    coroutine.yield(v == nil and "nil" or v)
                end
            end)
            local got = {}
            for v in gen do got[#got + 1] = v end
            assert.are.same({ 1, 2, 3, "nil" }, got)
            producer:wait()
        end))

        it("lets coroutine.resume bodies sleep; the caller sees only real yields", green(function()
            local co = coroutine.create(function(a)
                gl.sleep(0.001)
                local b = coroutine.yield(a + 1)
                gl.sleep(0)
                return b * 2
            end)
            local ok, v = coroutine.resume(co, 1)
            assert.is_true(ok)
            assert.are.equal(2, v)
            assert.are.equal("suspended", coroutine.status(co))
            ok, v = coroutine.resume(co, 10)
            assert.is_true(ok)
            assert.are.equal(20, v)
            assert.are.equal("dead", coroutine.status(co))
            ok, v = coroutine.resume(co)
            assert.is_false(ok)
            assert.matches("dead coroutine", v)
        end))

        it("works in nested coroutines", green(function()
            local outer = coroutine.wrap(function()
                local inner = coroutine.wrap(function()
                    gl.sleep(0.001)
                    coroutine.yield("inner")
                end)
                coroutine.yield(inner())
                gl.sleep(0)
                coroutine.yield("outer")
            end)
            assert.are.equal("inner", outer())
            assert.are.equal("outer", outer())
        end))

        it("reports errors inside coroutines as resume does", green(function()
            local co = coroutine.create(function() gl.sleep(0); error("inside", 0) end)
            local ok, err = coroutine.resume(co)
            assert.is_false(ok)
            assert.are.equal("inside", err)
            local w = coroutine.wrap(function() gl.sleep(0); error({ "t" }) end)
            local e = helper.raises(w)
            assert.are.same({ "t" }, e)
        end))

        it("keeps other threads running while a coroutine blocks", green(function()
            local ticks = 0
            local ticker = gl.spawn(function() for _ = 1, 5 do ticks = ticks + 1; gl.sleep(0) end end)
            local co = coroutine.wrap(function() gl.sleep(0.02); return ticks end)
            assert.are.equal(5, co())
            ticker:wait()
        end))

        it("a Timeout raised in a coroutine reaches the green thread", green(function()
            local co = coroutine.wrap(function() gl.sleep(1) end)
            local t <close> = gl.Timeout(0.01)
            local err = helper.raises(co)
            assert.are.equal(t, err)
        end))

        it("status/isyieldable/running see the green thread as the main coroutine", green(function()
            assert.is_false(coroutine.isyieldable())
            local main, ismain = coroutine.running()
            assert.is_true(ismain == true or ismain == false) -- stock shape: thread, boolean
            assert.are.equal("thread", type(main))
            assert.has_error(function() coroutine.yield(1) end)
            local co
            co = coroutine.create(function()
                assert.is_true(coroutine.isyieldable())
                assert.are.equal("running", coroutine.status(co))
                gl.sleep(0)
                assert.are.equal("running", coroutine.status(co))
                coroutine.yield()
            end)
            assert.are.equal("suspended", coroutine.status(co))
            assert.is_true(coroutine.resume(co))
            assert.are.equal("suspended", coroutine.status(co))
            assert.is_true(coroutine.close(co))
            assert.are.equal("dead", coroutine.status(co))
        end))

        it("a coroutine suspended in a hub wait is 'normal' and cannot be resumed", green(function()
            local co
            local seen = {}
            co = coroutine.create(function() gl.sleep(0.02); return "done" end)
            local watcher = gl.spawn(function()
                gl.sleep(0.005)
                seen.status = coroutine.status(co)
                seen.ok, seen.err = coroutine.resume(co)
                seen.cok, seen.cerr = pcall(coroutine.close, co)
            end)
            local ok, v = coroutine.resume(co)
            assert.is_true(ok)
            assert.are.equal("done", v)
            watcher:wait()
            assert.are.equal("normal", seen.status)
            assert.is_false(seen.ok)
            assert.matches("non%-suspended", seen.err)
            assert.is_false(seen.cok)
        end))

        it("coroutine.close runs <close> variables of a suspended coroutine", green(function()
            local closed = false
            local co = coroutine.create(function()
                local _ <close> = setmetatable({}, { __close = function() closed = true end })
                gl.sleep(0)
                coroutine.yield()
            end)
            coroutine.resume(co)
            assert.is_true(coroutine.close(co))
            assert.is_true(closed)
        end))
    end)
end)
