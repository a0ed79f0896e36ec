-- A UDP echo server: each datagram goes back to its sender.
-- usage: gl examples/udp_echo.lua [port] [host]    (then: nc -u localhost 7000)
local gl = require "gl"

local port = tonumber(arg[1]) or 7000
local sock = gl.socket.udp()
assert(sock:bind(arg[2] or "0.0.0.0", port))
io.stdout:setvbuf("line")
print(("UDP echo listening on port %d"):format(select(2, sock:getsockname())))
while true do
    local data, host, from_port = sock:recvfrom(65536)
    if data then sock:sendto(data, host, from_port) end
end
