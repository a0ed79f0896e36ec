-- bench: gl's WebSocket echo server (a gl.http app upgrading every request).
-- usage: gl bench/ws_echo.lua [port=0]; prints "listening on port N"
local gl = require "gl"
local sock = assert(gl.listen("127.0.0.1", tonumber(arg[1]) or 0))
io.stdout:setvbuf("line")
print(("listening on port %d"):format(select(2, sock:getsockname())))
gl.http.server(sock, function(req)
    local ws = gl.websocket.upgrade(req)
    if not ws then return end
    while true do
        local m, kind = ws:recv()
        if not m then return end
        ws:send(m, kind)
    end
end, { log = false })
