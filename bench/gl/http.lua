-- gl HTTP hello-world (bench/run's http suite): HTTP/1.1 keep-alive, every
-- request answered 200, Content-Type text/plain, "Hello, World!\n".
-- usage: build/gl bench/gl/http.lua PORT
local gl = require "gl"

local port = assert(tonumber(arg[1]), "usage: http.lua PORT")
local headers = { ["Content-Type"] = "text/plain" }
local body = "Hello, World!\n"

local function app(_req)
  return 200, headers, body
end

-- no access log, as the nginx peers run with `access_log off`
-- under `gl --workers N` every worker listens on the port (bench/workers_run)
local reuse = os.getenv("GL_WORKER_ID") ~= nil
gl.http.server(assert(gl.listen("127.0.0.1", port, { reuse_port = reuse })), app, { log = false })
