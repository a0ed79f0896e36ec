-- The access log never blocks the hub: with stderr a pipe nobody reads, the server goes on.
local helper = require "helper"
local proc = require "proc"
local gl = require "gl"
local green = helper.green

local SERVER = [[
local gl = require "gl"
local srv = assert(gl.listen("127.0.0.1", 0))
io.stdout:setvbuf("line")
print("port " .. select(2, srv:getsockname()))
gl.http.server(srv, function() return 200, {}, "ok" end) -- the default log: stderr
]]

-- The port the server script printed to portfile, once it has.
local function wait_port(portfile)
    local port
    helper.wait_until(function()
        port = tonumber(proc.read_file(portfile):match("port (%d+)"))
        return port ~= nil
    end, 5, 0.02)
    assert.is_number(port)
    return port
end

describe("gl.http access log", function()
    it("does not block the hub when stderr is a full pipe", green(function()
        local script = proc.tempfile(SERVER, ".lua")
        local portfile = os.tmpname()
        -- stderr goes into a pipe whose reader only sleeps: it fills after 64 KiB
        local h = proc.start(("sh -c %s"):format(proc.quote(
            ("%s %s 2>&1 >%s | sleep 60"):format(proc.GL, script, portfile))))
        local port = wait_port(portfile)
        local url = ("http://127.0.0.1:%d/a-path-that-makes-each-log-line-longer"):format(port)
        local answered = 0
        for _ = 1, 2000 do -- about 200 KB of log lines
            local res = gl.http.get(url, { timeout = 5 })
            if not res then break end
            answered = answered + 1
        end
        gl.http.close_idle()
        proc.stop(h)
        os.remove(script)
        os.remove(portfile)
        assert.equal(2000, answered)
    end, 60))
    -- the default log is written from the C request loop (core.http_serve) and from the Lua
    -- path alike, one line per answer in order, whatever kind of answer it was
    it("logs every kind of answer once, in order, with its status and body bytes", green(function()
        local script = proc.tempfile([[
local gl = require "gl"
local srv = assert(gl.listen("127.0.0.1", 0))
io.stdout:setvbuf("line")
print("port " .. select(2, srv:getsockname()))
local big = ("x"):rep(4 * 1024 * 1024) -- more than the socket takes at once
gl.http.server(srv, function(req)
    if req.path == "/missing" then return "404 Not Found", {}, "nope" end
    if req.path == "/big" then return 200, {}, big end
    if req.path == "/post" then return 201, {}, req:body() end
    return 200, {}, "ok"
end)
]], ".lua")
        local portfile, logfile = os.tmpname(), os.tmpname()
        local h = proc.start(("%s %s >%s 2>%s"):format(proc.GL, script, portfile, logfile))
        local port = wait_port(portfile)
        local s = assert(gl.connect("127.0.0.1", port))
        s:settimeout(10)
        s:sendall("GET /a HTTP/1.1\r\nHost: x\r\nUser-Agent: spec\r\n\r\n"
            .. "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"
            .. "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
            .. "POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            .. "GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        local answers = s:read("a")
        s:close()
        local bad = assert(gl.connect("127.0.0.1", port))
        bad:settimeout(5)
        bad:sendall("NOT HTTP\r\n\r\n")
        local refused = bad:read("a")
        bad:close()
        local log
        helper.wait_until(function()
            log = proc.read_file(logfile)
            local _, n = log:gsub("\n", "")
            return n >= 6
        end, 5, 0.02)
        proc.stop(h)
        for _, f in ipairs({ script, portfile, logfile }) do os.remove(f) end
        local _, n200 = answers:gsub("HTTP/1.1 20%d", "")
        assert.are.equal(4, n200)
        assert.matches("HTTP/1.1 404 Not Found", answers)
        assert.matches("^HTTP/1.1 400", refused)
        local want = {
            '"GET /a HTTP/1.1" 200 2 "-" "spec"',
            '"GET /missing HTTP/1.1" 404 4 ',
            '"GET /big HTTP/1.1" 200 4194304 ',
            '"POST /post HTTP/1.1" 201 3 ',
            '"GET /b HTTP/1.1" 200 2 ',
            '"-" 400 ',
        }
        local lines = {}
        for line in log:gmatch("[^\n]+") do lines[#lines + 1] = line end
        assert.are.equal(#want, #lines, log) -- and no "connection ... ended" report
        for i, pat in ipairs(want) do -- plain substrings
            assert.truthy(lines[i]:find(pat, 1, true), lines[i])
            assert.matches("^127%.0%.0%.1 %- %- %[", lines[i])
        end
    end, 30))
end)
