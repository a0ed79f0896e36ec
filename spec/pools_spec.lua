-- gl.pools.Pool (API.md section 5).
local gl = require "gl"
local helper = require "helper"
local green = helper.green

local function counter()
    local n = 0
    return function() n = n + 1; return { id = n } end, function() return n end
end

describe("gl.pools.Pool", function()
    it("creates min_size items at once and at most max_size", green(function()
        local create, created = counter()
        local pool = gl.pools.Pool{ create = create, min_size = 2, max_size = 3 }
        assert.are.equal(2, created())
        assert.are.equal(3, pool:free())
        local a, b, c = pool:get(), pool:get(), pool:get()
        assert.are.equal(3, created())
        assert.are.equal(0, pool:free())
        assert.are_not.equal(a, b); assert.are_not.equal(b, c)
        pool:put(a); pool:put(b); pool:put(c)
        assert.are.equal(3, pool:free())
    end))

    it("defaults to min 0, max 4", green(function()
        local create, created = counter()
        local pool = gl.pools.Pool{ create = create }
        assert.are.equal(0, created())
        assert.are.equal(4, pool:free())
    end))

    it("reuses items that were put back", green(function()
        local create, created = counter()
        local pool = gl.pools.Pool{ create = create, max_size = 2 }
        local a = pool:get()
        pool:put(a)
        assert.are.equal(a, pool:get())
        assert.are.equal(1, created())
    end))

    it("get waits when all items are out, and put hands one over", green(function()
        local create = counter()
        local pool = gl.pools.Pool{ create = create, max_size = 1 }
        local a = pool:get()
        local got
        local w = gl.spawn(function() got = pool:get() end)
        gl.sleep(0)
        assert.is_nil(got)
        assert.are.equal(1, pool:waiting())
        pool:put(a)
        w:wait()
        assert.are.equal(a, got)
        assert.are.equal(0, pool:free())
        pool:put(got)
    end))

    it("serves waiters in order", green(function()
        local pool = gl.pools.Pool{ create = counter(), max_size = 1 }
        local item = pool:get()
        local order = {}
        local ws = {}
        for i = 1, 3 do
            ws[i] = gl.spawn(function()
                local x = pool:get()
                order[#order + 1] = i
                gl.sleep(0)
                pool:put(x)
            end)
        end
        gl.sleep(0)
        pool:put(item)
        for i = 1, 3 do ws[i]:wait() end
        assert.are.same({ 1, 2, 3 }, order)
    end))

    it("item() is a to-be-closed handle that puts the item back", green(function()
        local pool = gl.pools.Pool{ create = counter(), max_size = 1 }
        local seen
        do
            local h <close> = pool:item()
            seen = h.value
            assert.is_table(seen)
            assert.are.equal(0, pool:free())
        end
        assert.are.equal(1, pool:free())
        pcall(function()
            local h <close> = pool:item()
            error("x")
        end)
        assert.are.equal(1, pool:free())
        assert.are.equal(seen, pool:get())
    end))

    it("a failing create does not use up a slot", green(function()
        local fail = true
        local pool = gl.pools.Pool{ max_size = 1, create = function()
            if fail then error("cannot create", 0) end
            return "ok"
        end }
        assert.are.equal("cannot create", helper.raises(pool.get, pool))
        assert.are.equal(1, pool:free())
        fail = false
        assert.are.equal("ok", pool:get())
    end))

    it("rejects bad options", green(function()
        assert.has_error(function() gl.pools.Pool{} end)
        assert.has_error(function() gl.pools.Pool{ create = counter(), min_size = 5, max_size = 2 } end)
    end))
end)
