-- gl TLS echo server (bench/run's tls suite): a TLS listening socket made by
-- gl.wrap_ssl, an accept loop in the main green thread and one green thread
-- per connection echoing what it receives.
-- usage: build/gl bench/gl/tls_echo.lua PORT CERTFILE KEYFILE
local gl = require "gl"

local port = assert(tonumber(arg[1]), "usage: tls_echo.lua PORT CERTFILE KEYFILE")
local certfile, keyfile = assert(arg[2], "no certfile"), assert(arg[3], "no keyfile")
local listener = gl.wrap_ssl(gl.listen("127.0.0.1", port),
                             { server_side = true, certfile = certfile, keyfile = keyfile })

local function echo(conn)
  while true do
    local data = conn:recv(65536)
    if not data then break end
    conn:sendall(data)
  end
end

local function serve(conn)
  local ok, err = pcall(echo, conn)   -- a failed handshake or reset ends only this thread
  pcall(conn.close, conn)
  if not ok and os.getenv("BENCH_VERBOSE") then io.stderr:write("tls_echo: ", tostring(err), "\n") end
end

local failures = 0
while true do
  local ok, conn = pcall(listener.accept, listener)  -- accept may run the handshake
  if ok then
    failures = 0
    gl.spawn_n(serve, conn)
  else
    failures = failures + 1
    if failures > 1000 then error("tls_echo: accept keeps failing: " .. tostring(conn)) end
    if os.getenv("BENCH_VERBOSE") then io.stderr:write("tls_echo accept: ", tostring(conn), "\n") end
  end
end
