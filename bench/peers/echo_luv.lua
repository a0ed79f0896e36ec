-- Echo server on luv (libuv for Lua): callbacks, no green threads.
-- usage: lua5.4 echo_luv.lua PORT      (binds 127.0.0.1:PORT)
local uv = require "luv"

local port = assert(tonumber(arg[1]), "usage: echo_luv.lua PORT")
local server = uv.new_tcp()
assert(server:bind("127.0.0.1", port))
assert(server:listen(4096, function(err)
  if err then return end
  local conn = uv.new_tcp()
  if not server:accept(conn) then conn:close(); return end
  conn:nodelay(true)
  conn:read_start(function(rerr, chunk)
    if rerr or not chunk then
      conn:close()
    else
      conn:write(chunk)
    end
  end)
end))
uv.run()
