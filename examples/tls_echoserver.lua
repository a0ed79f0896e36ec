-- A TLS echo server: each client gets its lines back, encrypted. The handshake runs in
-- each client's own green thread, so a slow or silent client holds up no one else.
-- usage: gl examples/tls_echoserver.lua [port=6443] [certfile] [keyfile] [idle_sec=60]
-- A certificate for localhost (self-signed) to try it with:
--   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
--     -keyout server.key -out server.pem -days 30 -subj /CN=localhost \
--     -addext subjectAltName=DNS:localhost,IP:127.0.0.1
-- then: openssl s_client -connect localhost:6443 -CAfile server.pem
--   or: gl examples/tls_client.lua localhost 6443 / server.pem
local gl = require "gl"

local port = tonumber(arg[1]) or 6443
local certfile = arg[2] or "server.pem"
local keyfile = arg[3] or "server.key"
local idle = tonumber(arg[4]) or 60

local listener = assert(gl.listen("0.0.0.0", port))
local server, err = gl.wrap_ssl(listener, {
    server_side = true, certfile = certfile, keyfile = keyfile,
})
if not server then
    io.stderr:write(err, "\n(make a certificate as the comment at the top of ",
        arg[0], " shows)\n")
    os.exit(1)
end

local function handle(conn, host, cport)
    conn:settimeout(idle) -- the handshake included: a silent client is dropped
    while true do
        local line, lerr = conn:read("L")
        if not line then
            if lerr and lerr ~= "closed" then -- "timeout", or a failed handshake
                io.stderr:write(("%s:%d: %s\n"):format(host, cport, lerr))
            end
            return
        end
        if not conn:sendall(line) then return end
    end
end

io.stdout:setvbuf("line")
print(("TLS echo server listening on port %d"):format(select(2, server:getsockname())))
gl.serve(server, handle, 10000)
