-- gl.http: an HTTP/1.1 server (gl/http/server.lua) and client (gl/http/client.lua). The
-- byte paths (heads, bodies, responses, log lines) are in src/http.c.
local server = require "gl.http.server"
local client = require "gl.http.client"

return {
    server = server.server,
    request = client.request,
    get = client.get,
    close_idle = client.close_idle,
    PayloadTooLarge = server.PayloadTooLarge,
}
