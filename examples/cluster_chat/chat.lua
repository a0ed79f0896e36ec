-- The seed chat server as one of several gl processes: every line a participant sends
-- reaches every other participant, whichever process (or machine) they are connected to.
-- Put the processes behind HAProxy (TCP mode) and point them all at one Redis.
--
-- usage: gl examples/cluster_chat/chat.lua [--port 3000] [--host 0.0.0.0]
--            [--redis redis://127.0.0.1:6379] [--node name] [--channel chat] [--quiet]
-- or the environment: CHAT_PORT, CHAT_HOST, REDIS_URL, CHAT_NODE, CHAT_CHANNEL.
--
-- Delivery, exactly once: a local line goes straight to this process's other
-- participants and is published to Redis as "<node> <line>"; each process relays only
-- what other nodes published. Per sender the order holds on both paths: one green
-- thread reads a participant and queues its lines in order, one publisher thread sends
-- them to Redis in that order (pipelined), and Redis hands them to each subscriber in
-- the order they were published.
local gl = require "gl"
local redis = require "gl.redis"

local function options()
    local o = {
        port = tonumber(os.getenv("CHAT_PORT")) or 3000,
        host = os.getenv("CHAT_HOST") or "0.0.0.0",
        redis = os.getenv("REDIS_URL") or "redis://127.0.0.1:6379",
        node = os.getenv("CHAT_NODE"),
        channel = os.getenv("CHAT_CHANNEL") or "chat",
        quiet = false,
    }
    local i = 1
    while arg[i] do
        local a = arg[i]
        if a == "--quiet" then
            o.quiet = true
            i = i + 1
        else
            local k = a:match("^%-%-(%w+)$")
            if not k or o[k] == nil and k ~= "node" or arg[i + 1] == nil then
                io.stderr:write("usage: chat.lua [--port N] [--host H] [--redis URL] ",
                    "[--node NAME] [--channel NAME] [--quiet]\n")
                os.exit(2)
            end
            o[k] = k == "port" and tonumber(arg[i + 1]) or arg[i + 1]
            i = i + 2
        end
    end
    if not o.node then
        -- unique enough across machines: host name and a random tag
        local h = io.open("/proc/sys/kernel/hostname")
        local name = h and h:read("l") or "node"
        if h then h:close() end
        math.randomseed(os.time(), gl.clock() * 1e6)
        o.node = ("%s-%06x"):format(name, math.random(0, 0xffffff))
    end
    if o.node:find("%s") then error("--node: no spaces in a node name", 0) end
    return o
end

local o = options()
io.stdout:setvbuf("line")
local function log(...)
    if not o.quiet then print(...) end
end

local participants = {} -- conn -> outbox
local count, seq = 0, 0

local function broadcast(line, except)
    for conn, box in pairs(participants) do
        if conn ~= except then box:put(line) end
    end
end

-- Lines for Redis, in the order they were read; one thread publishes them, as many as
-- are waiting in one pipeline.
local outgoing = gl.Queue()
local pub = assert(redis.connect(o.redis))
gl.spawn(function()
    while true do
        local first = outgoing:get()
        local p = pub:pipeline()
        p:publish(o.channel, first)
        while outgoing:qsize() > 0 and p:count() < 512 do
            p:publish(o.channel, outgoing:get())
        end
        local ok, err = p:execute()
        if not ok then
            -- lines of this batch reach only local participants; the next batch retries
            io.stderr:write("chat: publish failed (", tostring(err), "); reconnecting\n")
            pub:close()
            repeat
                pub, err = redis.connect(o.redis)
                if not pub then gl.sleep(0.5) end
            until pub
        end
    end
end)

-- What other nodes published, relayed to this node's participants.
local sub = assert(redis.subscribe(o.redis, { o.channel }))
local prefix = o.node .. " "
gl.spawn(function()
    for msg in sub:messages() do
        if msg.kind == "reconnect" then
            io.stderr:write("chat: Redis subscription re-established; lines may have been lost\n")
        elseif msg.data:sub(1, #prefix) ~= prefix then
            local line = msg.data:match("^%S+ (.*)$")
            if line then broadcast(line) end
        end
    end
end)

-- Each participant has an outbox and a writer thread, so a slow reader never stalls the
-- others and no two threads ever write to one socket at once.
local function read_chat_forever(conn)
    seq = seq + 1
    local id = o.node .. "/" .. seq
    local outbox = gl.Queue()
    local writer = gl.spawn(function()
        while true do
            local line = outbox:get()
            if line == nil or not conn:sendall(line) then break end
        end
    end)
    participants[conn] = outbox
    count = count + 1
    outbox:put(("* welcome to %s, you are %s\n"):format(o.node, id))
    log("Participant joined chat: " .. id)
    for line in conn:lines("L") do
        if line:sub(-1) ~= "\n" then line = line .. "\n" end -- a last line without newline
        log("Chat: " .. line:gsub("%s+$", ""))
        broadcast(line, conn)
        outgoing:put(prefix .. line)
    end
    participants[conn] = nil
    count = count - 1
    outbox:put(nil)
    writer:wait()
    conn:close()
    log("Participant left chat: " .. id)
end

local server = assert(gl.listen(o.host, o.port))
print(("ChatServer %s listening on port %d (redis %s, channel %s)"):format(o.node,
    select(2, server:getsockname()), o.redis:gsub("//[^@/]*@", "//***@"), o.channel))
local ok, err = pcall(gl.serve, server, read_chat_forever, { concurrency = 100000 })
if not ok and err ~= gl.Interrupt then error(err, 0) end
print("\nChatServer exiting.")
os.exit(0)
