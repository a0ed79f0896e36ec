-- gl echo server (bench/run's echo and c10k suites): an accept loop in the
-- main green thread and one green thread per connection that receives up to
-- 64 KiB and sends it all back, until EOF, with TCP_NODELAY as the peers.
-- usage: build/gl bench/gl/echo.lua PORT
local gl = require "gl"

local port = assert(tonumber(arg[1]), "usage: echo.lua PORT")
local listener = gl.listen("127.0.0.1", port)

local function echo(conn)
  while true do
    local data = conn:recv(65536)
    if not data then break end
    conn:sendall(data)
  end
end

local function serve(conn)
  conn:setoption("nodelay", true)     -- as every echo peer does (bench/peers/echo_*)
  local ok, err = pcall(echo, conn)   -- a reset connection ends only its own thread
  pcall(conn.close, conn)
  if not ok and os.getenv("BENCH_VERBOSE") then io.stderr:write("echo: ", tostring(err), "\n") end
end

while true do
  local conn = listener:accept()
  gl.spawn_n(serve, conn)
end
