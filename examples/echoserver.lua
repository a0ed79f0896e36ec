-- The echo server of Eventlet's "Basic Usage": each client gets its bytes back.
-- usage: gl examples/echoserver.lua [port] [host]     (then: nc localhost 6000)
local gl = require "gl"

local port = tonumber(arg[1]) or 6000
local host = arg[2] or "0.0.0.0"

local function handle(client)
    while true do
        local data = client:recv(4096)
        if not data then break end
        client:sendall(data)
    end
end

local server = assert(gl.listen(host, port))
io.stdout:setvbuf("line")
print(("Echo server listening on port %d"):format(select(2, server:getsockname())))
gl.serve(server, handle, 10000)
