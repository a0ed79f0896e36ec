-- gl.wrap_ssl (API.md section 6): gl TLS servers and clients against each other, against
-- openssl s_client/s_server and Python's ssl module; verification, host names, ALPN,
-- SNI, peer certificates, lazy server handshakes, hostile clients, fds and timeouts.
-- Certificates are made with the openssl command into a temp dir when the spec starts.
local helper = require "helper"
local proc = require "proc"
local gl = require "gl"
local green = helper.green

local stop_proc, run_bg = proc.finish, proc.run_bg

local dir -- temp dir with ca.pem, server.pem/.key (localhost, 127.0.0.1), self.pem/.key
local function path(name) return dir .. "/" .. name end

local function make_certs()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local script = ([[
set -e
cd %s
EC="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $EC -keyout ca.key -out ca.pem -days 3 -subj "/CN=gl test CA"
openssl req $EC -keyout server.key -out server.csr -subj "/O=gl/CN=localhost"
printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
    -days 2 -extfile ext.cnf
openssl req -x509 $EC -keyout self.key -out self.pem -days 2 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,DNS:other.test"
]]):format(proc.quote(dir))
    local ok, out = proc.run(script, 30)
    assert(ok, "cannot make test certificates:\n" .. tostring(out))
end

local function server_opts(extra)
    local o = { server_side = true, certfile = path("server.pem"), keyfile = path("server.key") }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
end

-- A gl TLS server on a free loopback port running handler(conn) per connection.
-- Returns port and stop(), which closes the listener and waits for serve to end.
local function tls_server(opts, handler)
    local l = assert(gl.listen("127.0.0.1", 0))
    local _, port = l:getsockname()
    local tl = assert(gl.wrap_ssl(l, opts or server_opts()))
    handler = handler or function(conn)
        for line in conn:lines() do
            if not conn:write("echo: ", line, "\n") then break end
        end
    end
    local active = 0
    local server = gl.spawn(gl.serve, tl, function(conn, ...)
        active = active + 1
        local ok, err = pcall(handler, conn, ...)
        active = active - 1
        if not ok then error(err, 0) end
    end)
    return port, function()
        tl:close()
        server:wait()
        assert(helper.wait_until(function() return active == 0 end, 3),
            active .. " handler(s) still running")
    end
end

local function python(code, args, within)
    local file = proc.tempfile(code, ".py")
    local out = run_bg("python3 " .. file .. " " .. (args or ""), nil, within)
    os.remove(file)
    return out
end

local free_port = proc.free_port

local function open_fds()
    local f = assert(io.open("/proc/self/stat"))
    local pid = f:read("n")
    f:close()
    local p = io.popen("ls /proc/" .. pid .. "/fd | wc -l")
    local n = tonumber(p:read("l"))
    p:close()
    return n
end

-- a client TLS connection to localhost:port, verified against our CA
local function client(port, extra)
    local s = assert(gl.connect("localhost", port))
    local o = { cafile = path("ca.pem") }
    for k, v in pairs(extra or {}) do o[k] = v end
    return gl.wrap_ssl(s, o)
end

describe("gl.wrap_ssl", function()
    lazy_setup(make_certs)
    lazy_teardown(function() if dir then os.execute("rm -rf " .. proc.quote(dir)) end end)

    describe("gl server and gl client", function()
        it("talk, with every socket method on the TLS socket", green(function()
            local port, stop = tls_server()
            local c = assert(client(port))
            assert.equal("gl.tlssocket", getmetatable(c).__name)
            assert.is_true(c:sendall("one\n"))
            assert.equal(c, c:write("two\n", 3, "\n"))
            assert.equal("echo: one", c:read("l"))
            assert.equal("echo: two\n", c:read("L"))
            local it = c:lines()
            assert.equal("echo: 3", it())
            assert.equal("TLSv1.3", c:version())
            assert.matches("^TLS_", (c:cipher()))
            local h, p = c:getpeername()
            assert.equal("127.0.0.1", h)
            assert.equal(port, p)
            c:settimeout(0.1)
            local d, e = c:recv(10)
            assert.same({ nil, "timeout" }, { d, e })
            c:settimeout(nil)
            c:close()
            assert.is_true(c:closed())
            c:close() -- harmless twice
            stop()
        end))

        it("takes the fd over: the plain socket ends closed", green(function()
            local port, stop = tls_server()
            local s = assert(gl.connect("localhost", port))
            local c = assert(gl.wrap_ssl(s, { cafile = path("ca.pem") }))
            assert.is_true(s:closed())
            assert.has_error(function() s:recv(1) end)
            c:close()
            stop()
        end))

        it("moves large data both ways with sendall and read(n)", green(function()
            local port, stop = tls_server(nil, function(conn)
                local data = conn:read(1000000)
                conn:sendall(data:reverse())
            end)
            local c = assert(client(port))
            local blob = {}
            for i = 1, 1000000 // 16 do blob[i] = ("%015d\n"):format(i) end
            blob = table.concat(blob)
            local sender = gl.spawn(function() return c:sendall(blob) end)
            local back = c:read(#blob)
            assert.is_true(sender:wait())
            assert.equal(#blob, #back)
            assert.equal(blob:reverse(), back)
            c:close()
            stop()
        end, 20))

        it("sees the peer's close_notify as a clean EOF", green(function()
            local port, stop = tls_server(nil, function(conn)
                conn:sendall("bye\n")
                conn:close()
            end)
            local c = assert(client(port))
            assert.equal("bye", c:read("l"))
            assert.same({ nil, "closed" }, { c:recv(10) })
            assert.equal("", c:read("a"))
            c:close()
            stop()
        end))

        it("hands over bytes read ahead before wrapping (STARTTLS)", green(function()
            local l = assert(gl.listen("127.0.0.1", 0))
            local _, port = l:getsockname()
            local srv = gl.spawn(function()
                local conn = l:accept()
                l:close()
                assert.equal("STARTTLS", conn:read("l"))
                local t = assert(gl.wrap_ssl(conn, server_opts()))
                local line = t:read("l")
                t:sendall("secure " .. line .. "\n")
                t:close()
            end)
            local s = assert(gl.connect("localhost", port))
            s:sendall("STARTTLS\n")
            local c = assert(gl.wrap_ssl(s, { cafile = path("ca.pem") }))
            c:sendall("hi\n")
            assert.equal("secure hi", c:read("l"))
            c:close()
            srv:wait()
        end))

        it("shares one context among listeners wrapped with the same options", green(function()
            local tls = require "gl.tls"
            local ls = {}
            local before
            for i = 1, 3 do
                local l = assert(gl.listen("127.0.0.1", 0))
                ls[i] = assert(gl.wrap_ssl(l, server_opts({ alpn = { "x-cache-test" } })))
                if i == 1 then before = tls.context_count() end
            end
            assert.equal(before, tls.context_count())
            for _, l in ipairs(ls) do l:close() end
        end))
    end)

    describe("against OpenSSL and Python", function()
        it("serves openssl s_client", green(function()
            local port, stop = tls_server(nil, function(conn)
                conn:write("echo: ", conn:read("l"), "\n")
            end)
            local input = proc.tempfile("hello s_client\n")
            local out = run_bg(("openssl s_client -connect 127.0.0.1:%d -servername localhost "
                .. "-CAfile %s -verify_return_error -brief -ign_eof"):format(port,
                proc.quote(path("ca.pem"))), { stdin = input })
            os.remove(input)
            assert.matches("Verification: OK", out, 1, true)
            assert.matches("echo: hello s_client", out, 1, true)
            stop()
        end, 15))

        -- OpenSSL 3 refuses client-initiated renegotiation: the attempt ends that one
        -- connection (the client sees "no renegotiation"), and the server goes on.
        it("refuses a client's renegotiation and keeps serving", green(function()
            local port, stop = tls_server()
            -- s_client renegotiates on a line "R" read on its own, hence the pauses
            local out = run_bg(("(sleep 0.3; printf 'before\\n'; sleep 0.3; printf 'R\\n'; "
                .. "sleep 0.5; printf 'after\\n'; sleep 0.3) | openssl s_client -connect "
                .. "127.0.0.1:%d -tls1_2 -CAfile %s 2>&1"):format(port, proc.quote(path("ca.pem"))),
                nil, 10)
            assert.matches("echo: before", out, 1, true)
            assert.matches("RENEGOTIATING", out, 1, true)
            assert.matches("no renegotiation", out, 1, true)
            assert.is_nil(out:find("echo: after", 1, true))
            local c = client(port)
            assert.is_truthy(c:write("still here\n"))
            assert.are.equal("echo: still here", c:read("l"))
            c:close()
            stop()
        end, 15))

        it("serves Python's ssl module with ALPN", green(function()
            local port, stop = tls_server(server_opts({ alpn = { "h2", "http/1.1" } }))
            local out = python([[
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.set_alpn_protocols(["http/1.1"])
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"hello python\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(100)
            if not chunk:
                break
            data += chunk
        print("GOT", data.decode().strip(), s.version(), s.selected_alpn_protocol())
]], port .. " " .. proc.quote(path("ca.pem")))
            assert.matches("GOT echo: hello python TLSv1.3 http/1.1", out, 1, true)
            stop()
        end, 15))

        it("connects to openssl s_server", green(function()
            local port = free_port()
            local h = proc.start(("openssl s_server -accept 127.0.0.1:%d -cert %s -key %s -www")
                :format(port, proc.quote(path("server.pem")), proc.quote(path("server.key"))))
            proc.wait_for(h, "ACCEPT")
            local c, err = client(port)
            assert.is_not_nil(c, err)
            assert.equal("TLSv1.3", c:version())
            c:sendall("GET / HTTP/1.0\r\n\r\n")
            local status = c:read("l")
            assert.matches("^HTTP/1.0 200", status)
            local rest = c:read("a")
            assert.matches("TLSv1.3", rest, 1, true)
            c:close()
            stop_proc(h)
        end, 15))

        it("connects to a Python TLS server, negotiating ALPN", green(function()
            local code = proc.tempfile([[
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ctx.set_alpn_protocols(["h2", "http/1.1"])
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
srv.settimeout(10)
print("PORT", srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
conn.settimeout(10)
with ctx.wrap_socket(conn, server_side=True) as s:
    data = b""
    while not data.endswith(b"\n"):
        data += s.recv(100)
    s.sendall(b"py: " + data + s.selected_alpn_protocol().encode() + b"\n")
    s.unwrap()
]], ".py")
            local h = proc.start(("python3 %s %s %s"):format(code, proc.quote(path("server.pem")),
                proc.quote(path("server.key"))))
            local port = tonumber(proc.wait_for(h, "PORT (%d+)"))
            local c = assert(client(port, { alpn = { "x-none", "http/1.1" } }))
            assert.equal("http/1.1", c:alpn_selected())
            c:sendall("hi\n")
            assert.equal("py: hi", c:read("l"))
            assert.equal("http/1.1", c:read("l"))
            c:close()
            stop_proc(h)
            os.remove(code)
        end, 15))

        it("gives nil, err when the peer drops the connection mid-record", green(function()
            local code = proc.tempfile([[
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
srv.settimeout(10)
print("PORT", srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
conn.settimeout(10)
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(inc, out, server_side=True)
while True:
    try:
        obj.do_handshake()
        break
    except ssl.SSLWantReadError:
        conn.sendall(out.read())
        d = conn.recv(65536)
        if not d:
            sys.exit(1)
        inc.write(d)
conn.sendall(out.read())
obj.write(b"x" * 1000)
rec = out.read()
conn.sendall(rec[: len(rec) // 2])
conn.close()
print("DONE", flush=True)
]], ".py")
            local h = proc.start(("python3 %s %s %s"):format(code, proc.quote(path("server.pem")),
                proc.quote(path("server.key"))))
            local port = tonumber(proc.wait_for(h, "PORT (%d+)"))
            local c = assert(client(port))
            local data, err = c:read(1000)
            assert.is_nil(data)
            assert.matches("^tls: ", err)
            c:close()
            stop_proc(h)
            os.remove(code)
        end, 15))
    end)

    describe("verification", function()
        it("fails on a self-signed certificate without cafile, passes with it", green(function()
            local port, stop = tls_server(server_opts({ certfile = path("self.pem"),
                keyfile = path("self.key") }))
            local s = assert(gl.connect("localhost", port))
            local c, err = gl.wrap_ssl(s)
            assert.is_nil(c)
            assert.equal("tls: certificate verify failed: self-signed certificate", err)
            assert.is_true(s:closed())
            c = assert(gl.wrap_ssl(assert(gl.connect("localhost", port)),
                { cafile = path("self.pem") }))
            assert.is_true(c:sendall("ok\n"))
            assert.equal("echo: ok", c:read("l"))
            c:close()
            stop()
        end))

        it("fails on a wrong host name and checks IP addresses as IPs", green(function()
            local port, stop = tls_server()
            local c, err = client(port, { hostname = "example.com" })
            assert.is_nil(c)
            assert.equal("tls: certificate verify failed: hostname mismatch", err)
            local s = assert(gl.connect("127.0.0.1", port)) -- the IP is in the SAN
            c = assert(gl.wrap_ssl(s, { cafile = path("ca.pem") }))
            c:close()
            s = assert(gl.connect("127.0.0.1", port))
            c, err = gl.wrap_ssl(s, { cafile = path("ca.pem"), hostname = "127.0.0.2" })
            assert.is_nil(c)
            assert.equal("tls: certificate verify failed: IP address mismatch", err)
            stop()
        end))

        it("checks only the chain with hostname = false", green(function()
            local port, stop = tls_server()
            local s = assert(gl.connect("localhost", port))
            local c = assert(gl.wrap_ssl(s, { cafile = path("ca.pem"), hostname = false }))
            c:close()
            local port2, stop2 = tls_server(server_opts({ certfile = path("self.pem"),
                keyfile = path("self.key") }))
            s = assert(gl.connect("localhost", port2))
            local err
            c, err = gl.wrap_ssl(s, { cafile = path("ca.pem"), hostname = false })
            assert.is_nil(c)
            assert.matches("^tls: certificate verify failed", err)
            stop(); stop2()
        end))

        it("needs a host name (or hostname = false) for a socket with none", green(function()
            local port, stop = tls_server()
            local s = gl.socket.tcp()
            assert(s:_connect("127.0.0.1", port))
            assert.matches("hostname", helper.raises(gl.wrap_ssl, s, { cafile = path("ca.pem") }))
            local c = assert(gl.wrap_ssl(s, { cafile = path("ca.pem"), hostname = "localhost" }))
            c:close()
            stop()
        end))

        it("connects without checks when verify = false", green(function()
            local port, stop = tls_server(server_opts({ certfile = path("self.pem"),
                keyfile = path("self.key") }))
            local c = assert(gl.wrap_ssl(assert(gl.connect("localhost", port)), { verify = false }))
            assert.is_table(c:getpeercert())
            c:close()
            stop()
        end))

        it("raises on bad options and returns nil, err for unreadable files", green(function()
            local l = assert(gl.listen("127.0.0.1", 0))
            assert.matches("unknown option", helper.raises(gl.wrap_ssl, l, { bogus = 1 }))
            assert.matches("certfile", helper.raises(gl.wrap_ssl, l, { server_side = true }))
            local t, err = gl.wrap_ssl(l, server_opts({ certfile = path("missing.pem") }))
            assert.is_nil(t)
            assert.matches("^tls: cannot load certfile", err)
            l:close()
        end))
    end)

    describe("ALPN, SNI and certificates", function()
        it("negotiates ALPN, and none when nothing matches", green(function()
            local seen = {}
            local port, stop = tls_server(server_opts({ alpn = { "h2", "http/1.1" } }),
                function(conn)
                    conn:handshake()
                    seen[#seen + 1] = conn:alpn_selected() or "none"
                    conn:sendall("x")
                end)
            local c = assert(client(port, { alpn = { "http/1.1", "h2" } }))
            assert.equal("h2", c:alpn_selected()) -- the server's preference wins
            assert.equal("x", c:recv(1))
            c:close()
            c = assert(client(port, { alpn = { "spdy/1" } }))
            assert.is_nil(c:alpn_selected())
            assert.equal("x", c:recv(1))
            c:close()
            c = assert(client(port))
            assert.is_nil(c:alpn_selected())
            c:close()
            stop()
            assert.same({ "h2", "none" }, { seen[1], seen[2] })
        end))

        it("returns the peer certificate's fields", green(function()
            local port, stop = tls_server()
            local c = assert(client(port))
            local cert = c:getpeercert()
            assert.equal("CN=localhost,O=gl", cert.subject)
            assert.equal("CN=gl test CA", cert.issuer)
            assert.same({ "localhost", "127.0.0.1" }, cert.san)
            local now = os.time()
            assert.is_true(cert.not_before <= now + 60 and cert.not_before > now - 3600)
            assert.is_true(math.abs(cert.not_after - cert.not_before - 2 * 86400) < 120)
            local ok, out = proc.run(("openssl x509 -in %s -noout -fingerprint -sha256")
                :format(proc.quote(path("server.pem"))))
            assert(ok, out)
            local want = out:match("=([%x:]+)"):gsub(":", ""):lower()
            assert.equal(want, cert.fingerprint)
            c:close()
            stop()
        end))

        it("has no peer certificate on a server without client auth", green(function()
            local got
            local port, stop = tls_server(nil, function(conn)
                assert(conn:handshake())
                got = { conn:getpeercert(), conn:version() }
                conn:sendall("x")
            end)
            local c = assert(client(port))
            assert.equal("x", c:recv(1))
            c:close()
            stop()
            assert.is_nil(got[1])
            assert.equal("TLSv1.3", got[2])
        end))

        it("verifies client certificates when the server asks (verify = true)", green(function()
            local port, stop = tls_server(server_opts({ verify = true, cafile = path("ca.pem") }),
                function(conn)
                    local ok = conn:handshake()
                    if ok then conn:sendall(conn:getpeercert().subject .. "\n") end
                end)
            local c = assert(client(port, { certfile = path("server.pem"),
                keyfile = path("server.key") }))
            assert.equal("CN=localhost,O=gl", c:read("l"))
            c:close()
            c = client(port) -- TLS 1.3: the rejection comes with the first read
            local data = c and c:read("l")
            assert.is_nil(data)
            if c then c:close() end
            stop()
        end))

        it("chooses the certificate by SNI", green(function()
            local names = {}
            local port, stop = tls_server(server_opts({
                sni = { ["other.test"] = { certfile = path("self.pem"), keyfile = path("self.key") } },
            }), function(conn)
                conn:handshake()
                names[#names + 1] = conn:servername()
                conn:sendall("x")
            end)
            local c = assert(client(port, { cafile = path("self.pem"), hostname = "other.test" }))
            assert.equal("CN=localhost", c:getpeercert().subject)
            c:close()
            c = assert(client(port))
            assert.equal("CN=localhost,O=gl", c:getpeercert().subject)
            assert.equal("x", c:recv(1))
            c:close()
            stop()
            assert.equal("other.test", names[1])
        end))
    end)

    describe("server behaviour", function()
        it("serves 200 concurrent TLS connections", green(function()
            local port, stop = tls_server()
            local threads = {}
            for i = 1, 200 do
                threads[i] = gl.spawn(function()
                    local c = assert(client(port))
                    c:sendall("n" .. i .. "\n")
                    local r = c:read("l")
                    c:close()
                    return r
                end)
            end
            for i = 1, 200 do assert.equal("echo: n" .. i, threads[i]:wait()) end
            stop()
        end, 30))

        it("does not let a silent client delay other handshakes", green(function()
            local port, stop = tls_server()
            local silent = {}
            for i = 1, 5 do silent[i] = assert(gl.connect("127.0.0.1", port)) end
            gl.sleep(0.05)
            local t0 = gl.clock()
            local c = assert(client(port))
            c:sendall("quick\n")
            assert.equal("echo: quick", c:read("l"))
            assert.is_true(gl.clock() - t0 < 1)
            c:close()
            for _, s in ipairs(silent) do s:close() end
            stop()
        end))

        it("survives truncated handshakes and garbage, leaking no fd", green(function()
            gl.sleep(0.05)
            local before = open_fds()
            local ended, errors = 0, {}
            local port, stop = tls_server(nil, function(conn)
                local line, err = conn:read("l")
                if line then conn:sendall("echo: " .. line .. "\n") else errors[#errors + 1] = err end
                ended = ended + 1
            end)
            -- a ClientHello record header promising 512 bytes, then nothing but a close
            local s = assert(gl.connect("127.0.0.1", port))
            s:sendall("\22\3\1\2\0\1\0\1\252\3\3")
            s:close()
            -- plain HTTP on the TLS port
            s = assert(gl.connect("127.0.0.1", port))
            s:sendall("GET / HTTP/1.0\r\n\r\n")
            s:read("a") -- an alert, nothing, or a reset: the server must just go on
            s:close()
            -- random bytes
            s = assert(gl.connect("127.0.0.1", port))
            local junk = {}
            for i = 1, 300 do junk[i] = string.char((i * 7919) % 256) end
            s:sendall(table.concat(junk))
            s:read("a")
            s:close()
            -- a TLS client that goes away in the middle of its handshake
            local raw = assert(gl.connect("127.0.0.1", port))
            local half = gl.spawn(function()
                local c = gl.wrap_ssl(raw, { cafile = path("ca.pem"), hostname = "localhost" })
                if c then c:close() end
            end)
            gl.sleep(0)
            gl.kill(half)
            raw:close() -- already closed if the handshake took it over; else ours to close
            assert.is_true(helper.wait_until(function() return ended == 4 end, 3))
            local c = assert(client(port))
            c:sendall("still here\n")
            assert.equal("echo: still here", c:read("l"))
            c:close()
            assert.is_true(helper.wait_until(function() return ended == 5 end, 3))
            stop()
            for _, e in ipairs(errors) do assert.is_string(e) end
            assert.is_true(helper.wait_until(function()
                collectgarbage(); collectgarbage()
                return open_fds() <= before
            end, 3, 0.02), ("fds before %d, after %d"):format(before, open_fds()))
        end, 10))

        it("runs the handshake lazily, or explicitly with :handshake()", green(function()
            local l = assert(gl.listen("127.0.0.1", 0))
            local _, port = l:getsockname()
            local tl = assert(gl.wrap_ssl(l, server_opts()))
            local srv = gl.spawn(function()
                local conn = tl:accept() -- returns before any TLS byte is read
                assert.is_nil(conn:version())
                assert.is_true(conn:handshake())
                assert.equal("TLSv1.3", conn:version())
                assert.is_true(conn:handshake()) -- a no-op once done
                conn:close()
            end)
            local c = assert(client(port))
            srv:wait()
            c:close()
            tl:close()
        end))
    end)

    describe("waits", function()
        -- a plain server that accepts and never answers
        local function mute_server()
            local l = assert(gl.listen("127.0.0.1", 0))
            local _, port = l:getsockname()
            local conns = {}
            local gt = gl.spawn(function()
                while true do
                    local c = l:accept()
                    if not c then return end
                    conns[#conns + 1] = c
                end
            end)
            return port, function()
                l:close(); gt:wait()
                for _, c in ipairs(conns) do c:close() end
            end
        end

        it("applies the socket timeout to the client handshake", green(function()
            local port, stop = mute_server()
            local s = assert(gl.connect("localhost", port))
            s:settimeout(0.1)
            local t0 = gl.clock()
            local c, err = gl.wrap_ssl(s, { cafile = path("ca.pem") })
            assert.is_nil(c)
            assert.equal("timeout", err)
            assert.is_true(gl.clock() - t0 < 1)
            stop()
        end))

        it("raises a gl.Timeout through the handshake", green(function()
            local port, stop = mute_server()
            local s = assert(gl.connect("localhost", port))
            local ok, e = pcall(gl.with_timeout, 0.1, gl.wrap_ssl, s, { cafile = path("ca.pem") })
            assert.is_false(ok)
            assert.is_true(gl.is_timeout(e))
            stop()
        end))

        it("applies the socket timeout to a lazy server handshake", green(function()
            local result
            local port, stop = tls_server(nil, function(conn)
                conn:settimeout(0.1)
                result = { conn:read("l") }
            end)
            local s = assert(gl.connect("127.0.0.1", port))
            assert.is_true(helper.wait_until(function() return result ~= nil end, 2))
            assert.same({ nil, "timeout" }, { result[1], result[2] })
            s:close()
            stop()
        end))
    end)
end)
