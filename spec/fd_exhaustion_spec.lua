-- fd exhaustion (issue 14): under `ulimit -n 256`, 500 clients that connect and hold on.
-- The accept loop neither spins nor dies: it serves those it can, reports running out of
-- descriptors once per interval, and serves again when descriptors come free.
local gl = require "gl"
local helper = require "helper"
local proc = require "proc"
local green = helper.green

local SERVER = [[
local gl = require "gl"
io.stdout:setvbuf("line")
local l = assert(gl.listen("127.0.0.1", 0, { backlog = 1024 }))
print("port " .. select(2, l:getsockname()))
gl.http.server(l, function() return 200, {}, "ok" end, { log = false })
]]

-- user + system CPU seconds a process has used so far
local function cpu_seconds(pid)
    local f = io.open("/proc/" .. pid .. "/stat")
    if not f then return nil end
    local stat = f:read("a")
    f:close()
    local fields = {}
    for x in stat:match("%) (.*)"):gmatch("%S+") do fields[#fields + 1] = x end
    return (tonumber(fields[12]) + tonumber(fields[13])) / 100 -- utime, stime in ticks
end

local function get(port)
    local c = gl.connect("127.0.0.1", port)
    if not c then return nil end
    c:settimeout(2)
    c:sendall("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    local out = c:read("a")
    c:close()
    return out
end

describe("an HTTP server out of file descriptors", function()
    it("backs off without spinning, reports it once, and recovers", green(function()
        local script = proc.tempfile(SERVER, ".lua")
        local h = proc.start(("sh -c 'ulimit -n 256 && exec %s %s'"):format(proc.GL, script))
        local port = tonumber(proc.wait_for(h, "port (%d+)", 10))
        local holders = {}
        for i = 1, 500 do
            holders[i] = gl.connect("127.0.0.1", port) -- queued in the backlog past the limit
        end
        proc.wait_for(h, "too many open files", 10)
        -- over a second at the limit, the server sleeps rather than spins
        local c0 = cpu_seconds(h.pid)
        gl.sleep(1)
        local used = cpu_seconds(h.pid) - c0
        assert.is_true(used < 0.3, ("the accept loop used %.2f s of CPU in 1 s"):format(used))
        local _, reports = proc.output(h):gsub("too many open files", "")
        assert.are.equal(1, reports)
        for _, c in ipairs(holders) do if c then c:close() end end
        -- descriptors free again: new clients are served
        local out
        assert.is_true(helper.wait_until(function()
            out = get(port)
            return out and out:match("^HTTP/1.1 200 ") ~= nil
        end, 10, 0.05), tostring(out) .. "\n" .. proc.output(h))
        assert.is_true(proc.alive(h))
        proc.stop(h)
        os.remove(script)
    end, 40))
end)
