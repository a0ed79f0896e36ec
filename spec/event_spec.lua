-- gl.Event (API.md section 4).
local gl = require "gl"
local helper = require "helper"
local green = helper.green

describe("gl.Event", function()
    it("wakes every waiter with the values sent", green(function()
        local ev = gl.Event()
        assert.is_false(ev:ready())
        local ws = {}
        for i = 1, 3 do ws[i] = gl.spawn(function() return ev:wait() end) end
        gl.sleep(0)
        ev:send(1, nil, "three")
        assert.is_true(ev:ready())
        for i = 1, 3 do
            local r = table.pack(ws[i]:wait())
            assert.are.equal(3, r.n)
            assert.are.equal(1, r[1]); assert.is_nil(r[2]); assert.are.equal("three", r[3])
        end
    end))

    it("returns at once once sent", green(function()
        local ev = gl.Event()
        ev:send("v")
        assert.are.equal("v", ev:wait())
        assert.are.equal("v", ev:wait(0))
    end))

    it("send with no values makes wait return nothing but ready() true", green(function()
        local ev = gl.Event()
        ev:send()
        assert.is_true(ev:ready())
        assert.are.equal(0, select("#", ev:wait()))
    end))

    it("wait with a timeout returns nothing on expiry", green(function()
        local ev = gl.Event()
        local t0 = gl.clock()
        local r = table.pack(ev:wait(0.02))
        assert.are.equal(0, r.n)
        assert.is_true(gl.clock() - t0 >= 0.018)
        assert.are.equal(0, #ev._waiters)
    end))

    it("send_error raises the error value in every waiter", green(function()
        local ev = gl.Event()
        local e = { "err" }
        local w = gl.spawn(function() return ev:wait() end)
        gl.sleep(0)
        ev:send_error(e)
        assert.are.equal(e, helper.raises(w.wait, w))
        assert.are.equal(e, helper.raises(ev.wait, ev))
    end))

    it("raises when sent twice without reset", green(function()
        local ev = gl.Event()
        ev:send(1)
        assert.has_error(function() ev:send(2) end)
        assert.has_error(function() ev:send_error("x") end)
        ev:reset()
        assert.is_false(ev:ready())
        ev:send(2)
        assert.are.equal(2, ev:wait())
    end))

    it("a reset right after send still delivers to the threads already waiting", green(function()
        local ev = gl.Event()
        local w = gl.spawn(function() return ev:wait() end)
        gl.sleep(0)
        ev:send("x")
        ev:reset()
        assert.are.equal("x", w:wait())
        assert.is_false(ev:ready())
    end))

    it("a waiter killed while waiting leaves the others waiting", green(function()
        local ev = gl.Event()
        local a = gl.spawn(function() return ev:wait() end)
        local b = gl.spawn(function() return ev:wait() end)
        gl.sleep(0)
        a:kill()
        ev:send("ok")
        assert.are.equal("ok", b:wait())
    end))

    it("a Timeout raises through wait", green(function()
        local ev = gl.Event()
        local t <close> = gl.Timeout(0.01)
        assert.are.equal(t, helper.raises(ev.wait, ev))
    end))
end)
