-- Broadcast fan-out latency of examples/cluster_chat/chat.lua: N participants connect to
-- host:port (one chat process, or HAProxy in front of several), one of them sends M
-- timestamped lines, and every other participant records how long each took to arrive
-- (gl.clock is CLOCK_MONOTONIC, the same clock in every process of the machine).
-- usage: gl bench/cluster_fanout.lua port [participants=1000] [messages=20] [gap=0.05]
local gl = require "gl"

local port = assert(tonumber(arg[1]), "usage: cluster_fanout.lua port [n] [m] [gap]")
local N = tonumber(arg[2]) or 1000
local M = tonumber(arg[3]) or 20
local GAP = tonumber(arg[4]) or 0.05

local socks, got, samples = {}, {}, {}
for i = 1, N do
    local s = assert(gl.connect("127.0.0.1", port))
    s:settimeout(10)
    local welcome = assert(s:read("l"))
    assert(welcome:match("^%* welcome"), welcome)
    socks[i], got[i] = s, 0
end
local done = gl.Event()
local complete = 0
for i = 2, N do
    local s = socks[i]
    gl.spawn_n(function()
        s:settimeout(nil)
        for line in s:lines("l") do
            local t = tonumber(line:match("^t (%S+)"))
            if t then
                samples[#samples + 1] = gl.clock() - t
                got[i] = got[i] + 1
                if got[i] == M then
                    complete = complete + 1
                    if complete == N - 1 then done:send() end
                end
            end
        end
    end)
end
gl.sleep(0.2) -- let every participant's reader start before the first line
for k = 1, M do
    assert(socks[1]:sendall(("t %.9f %d\n"):format(gl.clock(), k)))
    gl.sleep(GAP)
end
local ok = gl.with_timeout(20, function() done:wait(); return true end)
table.sort(samples)
local function pct(p) return samples[math.max(1, math.ceil(#samples * p))] * 1000 end
print(("participants %d, lines %d, deliveries %d of %d: p50 %.2f ms, p99 %.2f ms, max %.2f ms")
    :format(N, M, #samples, (N - 1) * M, pct(0.5), pct(0.99), samples[#samples] * 1000))
for _, s in ipairs(socks) do s:close() end
os.exit(ok and #samples == (N - 1) * M and 0 or 1)
