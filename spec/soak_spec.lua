-- Churn soak at CI size (issue 14): tools/soak opens and closes connections against the
-- HTTP server and the chat server example, mixing clean closes, resets, half-closes,
-- garbage and silent clients. No descriptor may stay behind, and memory must settle: at
-- this size RSS can still reach a new high-water mark, so the bound is looser than the
-- 2 % of the 100,000-connection run (`tools/soak`, figures in doc/reliability.md).
local helper = require "helper"
local proc = require "proc"
local green = helper.green

local function soak(count, warmup, kind)
    local out = proc.run_bg(("GL_BIN=%s tools/soak %d %d %s"):format(proc.GL, count, warmup, kind),
        nil, 120)
    local fds0, fds1, rss0, rss1 = out:match("fds (%d+) %-> (%d+), rss (%d+) kB %-> (%d+) kB")
    assert(fds0, out)
    return tonumber(fds0), tonumber(fds1), tonumber(rss0), tonumber(rss1), out
end

describe("churn soak", function()
    for _, case in ipairs({ { "http", 10000, 5000 }, { "chat", 30000, 30000 } }) do
        local kind, count, warmup = case[1], case[2], case[3]
        it(("leaves no fd behind and settles in memory: %s, %d connections"):format(kind, count),
            green(function()
                local fds0, fds1, rss0, rss1, out = soak(count, warmup, kind)
                assert.are.equal(fds0, fds1, out)
                assert.matches(("churn %s: %d connections, 0 failed"):format(kind, count), out)
                -- under AddressSanitizer freed memory waits in quarantine: RSS says nothing
                if not os.getenv("ASAN_OPTIONS") then
                    assert.is_true((rss1 - rss0) / rss0 < 0.25, out)
                end
            end, 150))
    end
end)
