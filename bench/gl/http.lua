-- gl HTTP server for bench/run's http suite: HTTP/1.1 keep-alive.
--   GET /      200, Content-Type text/plain, "Hello, World!\n" (hello and
--              pipelined cases)
--   GET /json  200, Content-Type application/json, the fixed document in
--              bench/peers/http_body.json (about 1 KB), and the request's
--              X-Request-Id echoed, so a request header reaches the app
-- usage: build/gl bench/gl/http.lua PORT
local gl = require "gl"

local port = assert(tonumber(arg[1]), "usage: http.lua PORT")
local hello_headers = { ["Content-Type"] = "text/plain" }
local hello = "Hello, World!\n"

local here = arg[0]:match("^(.*)/") or "."
local f = assert(io.open(here .. "/../peers/http_body.json", "rb"))
local json = f:read("a")
f:close()

local function app(req)
  if req.path == "/json" then
    return 200, { ["Content-Type"] = "application/json",
                  ["X-Request-Id"] = req.headers["x-request-id"] }, json
  end
  return 200, hello_headers, hello
end

-- no access log, as the nginx peers run with `access_log off`
-- under `gl --workers N` every worker listens on the port (bench/workers_run)
local reuse = os.getenv("GL_WORKER_ID") ~= nil
gl.http.server(assert(gl.listen("127.0.0.1", port, { reuse_port = reuse })), app, { log = false })
