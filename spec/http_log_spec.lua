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

describe("gl.http access log", function()
    it("does not block the hub when stderr is a full pipe", green(function()
        local script = proc.tempfile(SERVER, ".lua")
        local portfile = os.tmpname()
        -- stderr goes into a pipe whose reader only sleeps: it fills after 64 KiB
        local h = proc.start(("sh -c %s"):format(proc.quote(
            ("%s %s 2>&1 >%s | sleep 60"):format(proc.GL, script, portfile))))
        local port
        helper.wait_until(function()
            port = tonumber(proc.read_file(portfile):match("port (%d+)"))
            return port ~= nil
        end, 5, 0.02)
        assert.is_number(port)
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
end)
