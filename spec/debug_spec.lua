-- gl.debug (API.md section 10): threads, hub listeners, blocking detection, SIGUSR1 dump.
local gl = require "gl"
local helper = require "helper"
local green = helper.green
local proc = require "proc"

local function run_script(text)
    local path = proc.tempfile(text, ".lua")
    local out = proc.run_bg(("%s %s 2>&1"):format(proc.GL, path), nil, 15)
    os.remove(path)
    return out
end

describe("gl.debug", function()
    it("threads() lists every live green thread with its traceback", green(function()
        local a = gl.spawn(function() gl.sleep(5) end)
        gl.sleep(0)
        local found
        for _, t in ipairs(gl.debug.threads()) do
            if t.id == a.id then found = t end
        end
        assert.is_table(found)
        assert.are.equal("suspended", found.status)
        assert.matches("debug_spec.lua:16", found.traceback)
        a:kill()
    end))

    it("hub_listeners() names the fd and the green thread waiting on it", green(function()
        local s = gl.listen("127.0.0.1", 0)
        local c = gl.connect("127.0.0.1", select(2, s:getsockname()))
        local t = gl.spawn(function() gl.trampoline(c:fileno(), { read = true }) end)
        gl.sleep(0)
        local mine
        for _, l in ipairs(gl.debug.hub_listeners()) do
            if l.fd == c:fileno() and l.thread == t.id then mine = l end
        end
        assert.is_table(mine)
        assert.are.equal("r", mine.events)
        -- a socket read parked in C: the socket's event names its reader
        local r = gl.spawn(function() return c:recv(10) end)
        gl.sleep(0)
        local sock_l
        for _, l in ipairs(gl.debug.hub_listeners()) do
            if l.fd == c:fileno() and l.thread == r.id then sock_l = l end
        end
        assert.is_table(sock_l)
        assert.are.equal("socket", sock_l.kind)
        t:kill(); r:kill()
        c:close(); s:close()
        for _, l in ipairs(gl.debug.hub_listeners()) do assert.is_not.equal(t.id, l.thread) end
    end))

    it("hub_blocking_detection catches a busy loop and names its line", green(function()
        local out = run_script([[
gl.debug.hub_blocking_detection(true, 0.1)
gl.sleep(0.3) -- an idle hub is not blocked
io.stderr:write("idle done\n")
local function busy()
    local t0 = os.clock()
    while os.clock() - t0 < 0.4 do end -- line 6
end
gl.spawn(busy):wait()
gl.debug.hub_blocking_detection(false)
local t0 = os.clock()
while os.clock() - t0 < 0.3 do end -- line 11: off, so not reported
print("end")
]])
        assert.matches("idle done\n", out)
        assert.is_nil(out:match("^gl: green thread")) -- nothing before the busy loop
        assert.matches("gl: green thread %d+ has held the hub for [%d.]+ s", out)
        assert.matches("%.lua:6: in", out)
        assert.is_nil(out:match("%.lua:11:"))
        assert.matches("end\n", out)
        assert.matches("seconds must be", helper.raises(gl.debug.hub_blocking_detection, true, 0))
    end, 20))

    it("SIGUSR1 dumps every green thread's traceback to stderr", green(function()
        local out = run_script([[
local ths = {}
for i = 1, 3 do ths[i] = gl.spawn(function() gl.sleep(10) end) end
local q = gl.Queue()
ths[4] = gl.spawn(function() q:get() end)
require "gl.debug"
gl.sleep(0.05)
gl.spawn(function()
    os.execute("kill -USR1 " .. require("gl.core").getpid())
end)
gl.sleep(0.2)
for _, t in ipairs(ths) do print("id " .. t.id) end
os.exit(0)
]])
        assert.matches("gl: %d green thread%(s%)", out)
        local n = 0
        for id in out:gmatch("id (%d+)\n") do
            n = n + 1
            assert.matches("green thread " .. id .. " %(suspended%)\nstack traceback:", out)
        end
        assert.are.equal(4, n)
        assert.matches("green thread 1 %(suspended%)", out)
        assert.matches("in method 'get'", out)
    end, 20))
end)
