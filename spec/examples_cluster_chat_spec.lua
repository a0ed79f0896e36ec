-- examples/cluster_chat/chat.lua as three gl processes behind HAProxy (TCP mode, round
-- robin) sharing one redis-server: 30 clients get every other client's lines in each
-- sender's order, and a SIGKILLed process drops only its own participants.
local helper = require "helper"
local gl = require "gl"
local proc = require "proc"
local redis_util = require "redis_util"

local HAPROXY = os.getenv("HAPROXY") or "/usr/sbin/haproxy"

local free_port = proc.free_port

-- redis-server, three chat nodes and HAProxy in front of them; stop with env.stop().
local function start_cluster(n)
    local env = { nodes = {} }
    function env.stop()
        if env.haproxy then proc.stop(env.haproxy) end
        -- SIGTERM ends a gl node at once; polling its PID would wait out the zombie it leaves
        for _, nd in ipairs(env.nodes) do proc.finish(nd.h) end
        if env.redis then redis_util.stop(env.redis) end
        if env.dir then os.execute("rm -rf " .. proc.quote(env.dir)) end
    end
    local ok, err = pcall(function()
        assert(io.open(HAPROXY), HAPROXY .. " is missing: run tools/install-deps (haproxy)"):close()
        env.redis = redis_util.start()
        local url = "redis://127.0.0.1:" .. env.redis.port
        local servers = {}
        for i = 1, n do
            local port = free_port()
            local h = proc.start(("%s examples/cluster_chat/chat.lua --quiet --host 127.0.0.1 "
                .. "--port %d --redis %s --node n%d"):format(proc.GL, port, url, i))
            env.nodes[i] = { name = "n" .. i, port = port, h = h }
            servers[#servers + 1] = ("    server n%d 127.0.0.1:%d"):format(i, port)
        end
        for _, nd in ipairs(env.nodes) do proc.wait_for(nd.h, "listening on port", 10) end
        env.dir = os.tmpname(); os.remove(env.dir)
        assert(os.execute("mkdir -m 700 " .. proc.quote(env.dir)))
        env.port = free_port()
        local cfg = table.concat({
            "global", "    maxconn 2000",
            "defaults", "    mode tcp", "    timeout connect 2s",
            "    timeout client 60s", "    timeout server 60s",
            "frontend chat", "    bind 127.0.0.1:" .. env.port, "    default_backend nodes",
            "backend nodes", "    balance roundrobin", table.concat(servers, "\n"), "",
        }, "\n")
        local path = env.dir .. "/haproxy.cfg"
        local f = assert(io.open(path, "w")); f:write(cfg); f:close()
        env.haproxy = proc.start(HAPROXY .. " -db -f " .. proc.quote(path))
        -- up once it accepts (bounded poll; this probe is a participant that leaves at once)
        assert(helper.wait_until(function()
            local s = gl.connect("127.0.0.1", env.port)
            if s then s:close() end
            return s ~= nil
        end, 10, 0.02), "haproxy did not start:\n" .. proc.output(env.haproxy))
    end)
    if not ok then
        env.stop()
        error(err, 0)
    end
    return env
end

-- A client through HAProxy: reads the welcome line (which names its node), then collects
-- every line in a reader thread until the connection closes.
local function client(env, i)
    local s = assert(gl.connect("127.0.0.1", env.port))
    s:settimeout(10)
    local welcome = assert(s:read("l"))
    local node = assert(welcome:match("^%* welcome to (%S+),"), welcome)
    s:settimeout(nil)
    local c = { i = i, s = s, node = node, lines = {}, open = true }
    c.reader = gl.spawn(function()
        for line in s:lines("l") do c.lines[#c.lines + 1] = line end
        c.open = false
    end)
    return c
end

-- Lines client c got from round `tag`, per sender: {[sender] = {k1, k2, ...}}
local function by_sender(c, tag)
    local t, total = {}, 0
    for _, line in ipairs(c.lines) do
        local r, from, k = line:match("^(%S+) (%d+) (%d+)$")
        if r == tag then
            from, k = tonumber(from), tonumber(k)
            t[from] = t[from] or {}
            table.insert(t[from], k)
            total = total + 1
        end
    end
    return t, total
end

describe("examples/cluster_chat/chat.lua behind HAProxy with Redis", function()
    it("relays every line to every other participant across three processes, and survives "
        .. "one being killed", helper.green(function()
            local env = start_cluster(3)
            local clients = {}
            local ok, err = pcall(function()
                local N, K = 30, 5
                for i = 1, N do clients[i] = client(env, i) end
                local per_node = {}
                for _, c in ipairs(clients) do per_node[c.node] = (per_node[c.node] or 0) + 1 end
                for _, nd in ipairs(env.nodes) do
                    assert.is_true((per_node[nd.name] or 0) >= 9, "round robin: " .. nd.name)
                end
                for k = 1, K do
                    for _, c in ipairs(clients) do assert(c.s:sendall(("r1 %d %d\n"):format(c.i, k))) end
                end
                local want = (N - 1) * K
                assert.is_true(helper.wait_until(function()
                    for _, c in ipairs(clients) do
                        local _, total = by_sender(c, "r1")
                        if total < want then return false end
                    end
                    return true
                end, 15, 0.01), "not every client got every line")
                for _, c in ipairs(clients) do
                    local t, total = by_sender(c, "r1")
                    assert.equal(want, total)         -- exactly once
                    assert.is_nil(t[c.i])             -- no echo
                    for j = 1, N do
                        if j ~= c.i then assert.same({ 1, 2, 3, 4, 5 }, t[j]) end -- sender order
                    end
                end

                -- SIGKILL the node of client 1: only its participants are dropped
                local victim = clients[1].node
                local vnode
                for _, nd in ipairs(env.nodes) do if nd.name == victim then vnode = nd end end
                os.execute("kill -KILL " .. vnode.h.pid)
                vnode.killed = true
                local gone, alive = {}, {}
                for _, c in ipairs(clients) do
                    if c.node == victim then gone[#gone + 1] = c else alive[#alive + 1] = c end
                end
                assert.is_true(helper.wait_until(function()
                    for _, c in ipairs(gone) do if c.open then return false end end
                    return true
                end, 10, 0.01), "the killed node's participants were not dropped")
                for _, c in ipairs(alive) do assert.is_true(c.open) end
                for k = 1, 3 do
                    for _, c in ipairs(alive) do assert(c.s:sendall(("r2 %d %d\n"):format(c.i, k))) end
                end
                local want2 = (#alive - 1) * 3
                assert.is_true(helper.wait_until(function()
                    for _, c in ipairs(alive) do
                        local _, total = by_sender(c, "r2")
                        if total < want2 then return false end
                    end
                    return true
                end, 15, 0.01), "the others stopped chatting")
                for _, c in ipairs(alive) do
                    local t, total = by_sender(c, "r2")
                    assert.equal(want2, total)
                    for _, o in ipairs(alive) do
                        if o ~= c then assert.same({ 1, 2, 3 }, t[o.i]) end
                    end
                    assert.is_true(c.open)
                end
            end)
            for _, c in ipairs(clients) do c.s:close() end
            for _, c in ipairs(clients) do c.reader:wait() end
            env.stop()
            assert(ok, err)
        end, 60))
end)
