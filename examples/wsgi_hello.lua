-- The Eventlet wsgi "hello world", in gl: an HTTP/1.1 server answering every request with
-- a plain-text greeting (keep-alive, pipelining, one access-log line per request on stderr).
-- usage: gl examples/wsgi_hello.lua [port=8080]    (port 0: any free port)
local gl = require "gl"

local port = tonumber(arg[1]) or 8080
local sock = assert(gl.listen("127.0.0.1", port))
print(("serving on http://127.0.0.1:%d/ (port %d)"):format(select(2, sock:getsockname()),
    select(2, sock:getsockname())))
io.stdout:flush()

local function hello_world(req)
    return 200, { ["Content-Type"] = "text/plain" }, "Hello, World!\n"
end

gl.http.server(sock, hello_world)
