-- A TCP port forwarder: every connection to the local port is piped both ways to the
-- target. usage: gl examples/forwarder.lua LOCAL_PORT TARGET_HOST TARGET_PORT [BIND_HOST]
local gl = require "gl"

local local_port, target_host, target_port = tonumber(arg[1]), arg[2], tonumber(arg[3])
if not (local_port and target_host and target_port) then
    io.stderr:write("usage: gl forwarder.lua LOCAL_PORT TARGET_HOST TARGET_PORT [BIND_HOST]\n")
    os.exit(2)
end

-- Copies from one socket to the other until EOF, then half-closes the other side.
local function pipe(from, to)
    while true do
        local data = from:recv(65536)
        if not data or not to:sendall(data) then break end
    end
    if not to:closed() then to:shutdown("w") end
end

local function forward(client)
    local upstream, err = gl.connect(target_host, target_port, { timeout = 10 })
    if not upstream then
        io.stderr:write("forwarder: cannot reach target: ", err, "\n")
        return
    end
    local back = gl.spawn(pipe, upstream, client)
    pipe(client, upstream)
    back:wait()
    upstream:close()
end

local server = assert(gl.listen(arg[4] or "0.0.0.0", local_port))
io.stdout:setvbuf("line")
print(("Forwarding port %d to %s:%d"):format(select(2, server:getsockname()), target_host, target_port))
gl.serve(server, forward)
