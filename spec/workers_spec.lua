-- gl --workers N: N copies of a script sharing a port through SO_REUSEPORT, restarted
-- when they die, stopped together on SIGTERM.
local helper = require "helper"
local proc = require "proc"
local gl = require "gl"
local green = helper.green

local WORKER = [[
local gl = require "gl"
local id = os.getenv("GL_WORKER_ID")
local srv = assert(gl.listen("127.0.0.1", tonumber(arg[1]), { reuse_port = true }))
io.stdout:setvbuf("line")
print("worker " .. id .. " ready pid " .. require("gl.core").getpid())
gl.serve(srv, function(c) c:sendall(id .. "\n") end)
]]

local free_port = proc.free_port

local function count(s, pattern)
    local n = 0
    for _ in s:gmatch(pattern) do n = n + 1 end
    return n
end

describe("gl --workers", function()
    it("runs N workers on one port, restarts a killed one, stops all on SIGTERM",
        green(function()
            local script = proc.tempfile(WORKER, ".lua")
            local port = free_port()
            local h = proc.start(("%s --workers 2 %s %d"):format(proc.GL, script, port))
            assert.is_true(helper.wait_until(function()
                local out = proc.output(h)
                return out:find("worker 1 ready") and out:find("worker 2 ready")
            end, 10, 0.05), proc.output(h))
            local seen = {}
            for _ = 1, 40 do
                local c = assert(gl.connect("127.0.0.1", port))
                local id = c:read()
                c:close()
                if id then seen[id] = true end
            end
            assert.is_true(seen["1"] or seen["2"])
            -- kill worker 1 by signal: the supervisor starts it again
            local pid1 = tonumber(proc.output(h):match("worker 1 ready pid (%d+)"))
            assert.is_number(pid1)
            os.execute("kill -KILL " .. pid1)
            assert.is_true(helper.wait_until(function()
                return count(proc.output(h), "worker 1 ready") >= 2
            end, 10, 0.05))
            assert.matches("restarting", proc.output(h))
            -- SIGTERM reaches every worker and the supervisor exits
            os.execute("kill -TERM " .. h.pid)
            assert.is_true(helper.wait_until(function() return not proc.alive(h) end, 10, 0.05))
            local c = gl.connect("127.0.0.1", port)
            assert.is_nil(c)
            proc.stop(h)
            os.remove(script)
        end, 30))

    -- a worker killed from outside comes back and serves, with one worker as with two
    for _, n in ipairs({ 1, 2 }) do
        it(("restarts a SIGKILLed worker that then serves (--workers %d)"):format(n),
            green(function()
                local script = proc.tempfile(WORKER, ".lua")
                local port = free_port()
                local h = proc.start(("%s --workers %d %s %d"):format(proc.GL, n, script, port))
                assert.is_true(helper.wait_until(function()
                    return count(proc.output(h), "worker %d ready") >= n
                end, 10, 0.05), proc.output(h))
                local pid = tonumber(proc.output(h):match("worker 1 ready pid (%d+)"))
                os.execute("kill -KILL " .. pid)
                assert.is_true(helper.wait_until(function()
                    return count(proc.output(h), "worker 1 ready") >= 2
                end, 10, 0.05), proc.output(h))
                local pids = {}
                for p in proc.output(h):gmatch("worker 1 ready pid (%d+)") do
                    pids[#pids + 1] = tonumber(p)
                end
                assert.are_not.equal(pid, pids[#pids])
                assert.is_true(proc.alive(h))
                -- the restarted worker 1 answers (with two, some connection reaches it)
                local seen = {}
                assert.is_true(helper.wait_until(function()
                    local c = gl.connect("127.0.0.1", port)
                    if c then
                        local id = c:read()
                        c:close()
                        if id then seen[id] = true end
                    end
                    return seen["1"]
                end, 10, 0.02), proc.output(h))
                os.execute("kill -TERM " .. h.pid)
                assert.is_true(helper.wait_until(function() return not proc.alive(h) end, 10, 0.05))
                proc.stop(h)
                os.remove(script)
            end, 30))
    end

    it("exits 0 when every worker exits 0", green(function()
        local script = proc.tempfile([[print("worker " .. os.getenv("GL_WORKER_ID"))]], ".lua")
        local ok, out = proc.run(("%s --workers 3 %s"):format(proc.GL, script), 20)
        os.remove(script)
        assert.is_true(ok, out)
        assert.equal(3, count(out, "worker %d"))
    end, 30))
end)
