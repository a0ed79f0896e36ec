-- Echo server on cqueues: an accept loop and one coroutine per connection
-- that reads whatever is there (up to 64 KiB) and writes it back.
-- usage: lua5.4 echo_cqueues.lua PORT      (binds 127.0.0.1:PORT)
local cqueues = require "cqueues"
local socket = require "cqueues.socket"

local port = assert(tonumber(arg[1]), "usage: echo_cqueues.lua PORT")
local loop = cqueues.new()
local listener = assert(socket.listen { host = "127.0.0.1", port = port, reuseaddr = true,
                                        backlog = 4096, nodelay = true })

local function echo(conn)
  conn:setmode("b", "bn")                 -- binary; writes not buffered
  conn:onerror(function(_, _, code) return code end)  -- report errors, don't raise
  while true do
    local data = conn:read(-65536)        -- negative: up to that many, what is there
    if not data or not conn:write(data) then break end
  end
  conn:close()
end

loop:wrap(function()
  for conn in listener:clients() do loop:wrap(echo, conn) end
end)

while true do
  local ok, err = loop:loop()
  if ok then break end
  io.stderr:write("echo_cqueues: ", tostring(err), "\n")  -- one connection failed: go on
end
