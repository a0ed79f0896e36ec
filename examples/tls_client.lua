-- Fetches a page over TLS (HTTP/1.0, so the server closes when it is done) and prints
-- the response. The certificate is checked against cafile, or the system CA store.
-- usage: gl examples/tls_client.lua [host=example.com] [port=443] [path=/] [cafile]
local gl = require "gl"

local host = arg[1] or "example.com"
local port = tonumber(arg[2]) or 443
local path = arg[3] or "/"
local cafile = arg[4]

local function fail(...)
    io.stderr:write(...)
    io.stderr:write("\n")
    os.exit(1)
end

local sock, err = gl.connect(host, port, { timeout = 10 })
if not sock then fail("connect ", host, ":", port, ": ", err) end
sock:settimeout(10)
-- the host name given to gl.connect is the name sent (SNI) and verified
local tls, terr = gl.wrap_ssl(sock, { cafile = cafile, alpn = { "http/1.1" } })
if not tls then fail(terr) end
io.stderr:write(("connected: %s %s, certificate for %s\n"):format(tls:version(),
    tls:cipher(), tls:getpeercert().subject))

assert(tls:sendall(("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: gl-tls-client\r\n"
    .. "Connection: close\r\n\r\n"):format(path, host)))
while true do
    local data, rerr = tls:recv(16384)
    if not data then
        if rerr ~= "closed" then fail("read: ", rerr) end
        break
    end
    io.stdout:write(data)
end
tls:close()
