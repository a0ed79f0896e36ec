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
gl.http.server(gl.listen("127.0.0.1", port), app, { log = false })
