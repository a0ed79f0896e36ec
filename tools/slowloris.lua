-- Slowloris measurement (issue 14): p50/p99 latency of normal HTTP requests to a gl server,
-- unloaded and while N clients trickle one header byte a second; the tricklers run in a
-- process of their own, the server in a third.
-- usage: gl tools/slowloris.lua [N=1000] [REQUESTS=2000] [HEADER_TIMEOUT=10]
--        (internal roles: gl tools/slowloris.lua serve T | trickle PORT N)
local gl = require "gl"
local core = require "gl.core"

if arg[1] == "serve" then
    local l = assert(gl.listen("127.0.0.1", 0, { backlog = 4096 }))
    io.stdout:setvbuf("line")
    print("port " .. select(2, l:getsockname()))
    gl.http.server(l, function() return 200, {}, "ok" end,
        { log = false, max_size = 4096, header_timeout = tonumber(arg[2]) })
    return
elseif arg[1] == "trickle" then
    local port, n = tonumber(arg[2]), tonumber(arg[3])
    local head = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " .. ("s"):rep(100) .. "\r\n\r\n"
    local dropped = 0
    io.stdout:setvbuf("line")
    for _ = 1, n do
        gl.spawn(function()
            local c = gl.connect("127.0.0.1", port)
            if not c then return end
            for k = 1, #head do
                if not c:sendall(head:sub(k, k)) then break end
                gl.sleep(1)
            end
            c:close()
            dropped = dropped + 1
        end)
        gl.sleep(0.001)
    end
    print("trickling " .. n)
    while dropped < n do gl.sleep(0.5) end
    print("all dropped")
    return
end

local n, requests, header_timeout = tonumber(arg[1]) or 1000, tonumber(arg[2]) or 2000,
    tonumber(arg[3]) or 10
local self = arg[0]
local gl_bin = os.getenv("GL_BIN") or "build/gl"

local server = io.popen(("%s %s serve %d"):format(gl_bin, self, header_timeout))
local port = tonumber(server:read("l"):match("port (%d+)"))

local function measure()
    local times = {}
    for i = 1, requests do
        local t0 = core.clock()
        local c = assert(gl.connect("127.0.0.1", port))
        c:sendall("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert(c:read("a"):match("^HTTP/1.1 200"))
        c:close()
        times[i] = core.clock() - t0
    end
    table.sort(times)
    return times[requests // 2] * 1e3, times[math.ceil(requests * 0.99)] * 1e3
end

local p50a, p99a = measure()
local trickler = io.popen(("%s %s trickle %d %d"):format(gl_bin, self, port, n))
assert(trickler:read("l"):match("trickling"))
local p50b, p99b = measure()
print(("unloaded: p50 %.3f ms, p99 %.3f ms"):format(p50a, p99a))
print(("with %d trickling clients: p50 %.3f ms, p99 %.3f ms (p99 %.2fx)"):format(n, p50b, p99b,
    p99b / p99a))
local t0 = core.clock()
print(trickler:read("l") or "trickler ended", ("after %.1f s more"):format(core.clock() - t0))
os.execute("pkill -f '" .. self .. " serve'")
