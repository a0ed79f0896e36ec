-- The chat server of Eventlet's first example: every line a participant sends reaches
-- every other participant. Talk to it with `nc localhost 3000` from several terminals.
-- usage: gl examples/chatserver.lua [port] [host]
local gl = require "gl"

local port = tonumber(arg[1]) or 3000
local host = arg[2] or "0.0.0.0"
local participants = {}

-- Each participant has an outbox and a writer thread, so a slow reader never stalls the
-- others and no two threads ever write to one socket at once.
local function read_chat_forever(conn)
    local outbox = gl.Queue()
    participants[conn] = outbox
    local writer = gl.spawn(function()
        while true do
            local line = outbox:get()
            if line == nil or not conn:sendall(line) then break end
        end
    end)
    for line in conn:lines("L") do
        print("Chat: " .. line:gsub("%s+$", ""))
        for other, box in pairs(participants) do
            if other ~= conn then box:put(line) end -- Don't echo
        end
    end
    participants[conn] = nil
    outbox:put(nil)
    writer:wait()
    conn:close()
    print("Participant left chat.")
end

local server = assert(gl.listen(host, port))
print(("ChatServer starting up on port %d"):format(select(2, server:getsockname())))
io.stdout:setvbuf("line")
local ok, err = pcall(function()
    while true do
        local conn = server:accept()
        print("Participant joined chat.")
        gl.spawn_n(read_chat_forever, conn)
    end
end)
if not ok and err ~= gl.Interrupt then error(err, 0) end
print("\nChatServer exiting.")
os.exit(0)
