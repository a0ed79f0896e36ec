-- gl.compat.ngx beyond the TCP cosocket: timers (every, premature at worker exit),
-- settimeouts, ngx.semaphore, digests, ngx.socket.udp, sslhandshake over gl.tls with
-- session reuse, table.new/clear and the bit shim; real peers on loopback throughout.
local helper = require "helper"
local proc = require "proc"
local gl = require "gl"
local green = helper.green
local compat = require "gl.compat.ngx"
local ngx = compat.install()

local function server(handler)
    local srv = assert(gl.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local th = gl.spawn(function() gl.serve(srv, handler) end)
    return port, function() th:kill(); srv:close() end
end

describe("gl.compat.ngx timers", function()
    after_each(function() compat.reset_worker() end)

    it("timer.every runs its callback every delay until the worker exits (then premature)",
        green(function()
            local calls, prem = {}, {}
            assert.is_true(ngx.timer.every(0.02, function(premature, tag)
                if premature then prem[#prem + 1] = tag else calls[#calls + 1] = tag end
            end, "t"))
            assert.is_true(helper.wait_until(function() return #calls >= 3 end, 2))
            assert.equal("t", calls[1])
            local hit = false
            assert.is_true(ngx.timer.at(10, function(premature) hit = premature end))
            assert.equal(1, ngx.timer.pending_count())
            compat.exit_worker()
            assert.same({ "t" }, prem)          -- once, with premature = true
            assert.is_true(hit)                  -- the pending one-shot ran early, premature
            assert.is_true(ngx.worker.exiting())
            assert.same({ nil, "process exiting" }, { ngx.timer.at(0, function() end) })
            local n = #calls
            gl.sleep(0.06)
            assert.equal(n, #calls)              -- stopped for good
        end))

    it("timer.every rejects a zero delay and a non-function; a callback error is logged only",
        green(function()
            assert.matches("delay cannot be zero", helper.raises(ngx.timer.every, 0, function() end))
            assert.matches("function expected", helper.raises(ngx.timer.at, 0, 42))
            local ev = gl.Event()
            local log = compat.log_level
            compat.log_level = -1 -- quiet: the error line is not the point here
            assert.is_true(ngx.timer.at(0, function() error("boom") end))
            assert.is_true(ngx.timer.at(0.01, function() ev:send(true) end))
            assert.is_true(ev:wait(2))
            compat.log_level = log
            assert.equal(0, ngx.timer.running_count())
        end))
end)

describe("gl.compat.ngx cosocket timeouts", function()
    it("settimeouts(connect, send, read) in ms: the read one applies to receive", green(function()
        local done = gl.Event()
        local port, stop = server(function(c) c:read("a"); done:send(true) end)
        local s = ngx.socket.tcp()
        s:settimeouts(1000, 1000, 120)
        assert.equal(1, s:connect("127.0.0.1", port))
        assert.equal(4, s:send("ping"))
        local t0 = gl.clock()
        assert.same({ nil, "timeout", "" }, { s:receive("*l") })
        local dt = gl.clock() - t0
        assert.is_true(dt >= 0.11 and dt < 1, "dt " .. dt)
        -- a read timeout leaves the connection usable, as in lua-nginx-module
        assert.equal(3, s:send("!!!"))
        s:close(); assert.is_true(done:wait(2)); stop()
    end))

    it("a send timeout in ms fires when the peer does not read", green(function()
        local release = gl.Event()
        local port, stop = server(function(c) release:wait(5); c:close() end)
        local s = ngx.socket.tcp()
        s:settimeouts(1000, 100, 1000)
        assert(s:connect("127.0.0.1", port))
        local chunk = string.rep("x", 1 << 20)
        local ok, err
        for _ = 1, 64 do
            ok, err = s:send(chunk)
            if not ok then break end
        end
        assert.is_nil(ok); assert.equal("timeout", err)
        s:close(); release:send(true); stop()
    end))
end)

describe("ngx.semaphore", function()
    it("post/wait hand units to waiters first come first served; count shows waiters",
        green(function()
            local semaphore = require "ngx.semaphore"
            local sema = semaphore.new(0)
            assert.equal(0, sema:count())
            assert.same({ nil, "timeout" }, { sema:wait(0) })
            local order = {}
            local ths = {}
            for i = 1, 3 do
                ths[i] = gl.spawn(function() assert(sema:wait(2)); order[#order + 1] = i end)
            end
            assert.is_true(helper.wait_until(function() return sema:count() == -3 end, 2))
            assert.is_true(sema:post(2))
            assert.is_true(helper.wait_until(function() return #order == 2 end, 2))
            assert.same({ 1, 2 }, order)
            sema:post()
            for i = 1, 3 do ths[i]:wait() end
            assert.same({ 1, 2, 3 }, order)
            assert.is_true(sema:post(1))
            assert.equal(1, sema:count())
            assert.is_true(sema:wait(0))
        end))

    it("wait(timeout) is in seconds and returns nil, 'timeout'", green(function()
        local sema = require("ngx.semaphore").new()
        local t0 = gl.clock()
        assert.same({ nil, "timeout" }, { sema:wait(0.1) })
        local dt = gl.clock() - t0
        assert.is_true(dt >= 0.09 and dt < 1, "dt " .. dt)
        assert.equal(0, sema:count())
        assert.matches("timeout", helper.raises(sema.wait, sema, -1))
        assert.matches("positive integer", helper.raises(sema.post, sema, 0))
    end))
end)

describe("gl.compat.ngx digests", function()
    it("md5, md5_bin, sha1_bin, hmac_sha1, crc32 match the openssl command and RFC vectors",
        green(function()
            assert.equal("d41d8cd98f00b204e9800998ecf8427e", ngx.md5(""))
            assert.equal("5d41402abc4b2a76b9719d911017c592", ngx.md5("hello"))
            assert.equal(16, #ngx.md5_bin("hello"))
            local hex = ngx.md5_bin("hello"):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
            assert.equal(ngx.md5("hello"), hex)
            local sha = ngx.sha1_bin("abc"):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
            assert.equal("a9993e364706816aba3e25717850c26c9cd0d89d", sha)
            local file = proc.tempfile("some bytes\0\1\2 for openssl")
            local ok, out = proc.run("openssl dgst -sha1 -r " .. proc.quote(file))
            os.remove(file)
            assert(ok, out)
            local want = out:match("^(%x+)")
            sha = ngx.sha1_bin("some bytes\0\1\2 for openssl"):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
            assert.equal(want, sha)
            -- RFC 2202 test case 2
            local mac = ngx.hmac_sha1("Jefe", "what do ya want for nothing?")
            assert.equal("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
                (mac:gsub(".", function(c) return ("%02x"):format(c:byte()) end)))
            assert.equal(0xCBF43926, ngx.crc32_long("123456789"))
            assert.matches("string expected", helper.raises(ngx.md5, {}))
        end))
end)

describe("ngx.socket.udp", function()
    it("setpeername, send (nested tables), receive, close against a real UDP echo", green(function()
        local srv = gl.socket.udp()
        assert(srv:bind("127.0.0.1", 0))
        local _, port = srv:getsockname()
        local echo = gl.spawn(function()
            while true do
                local d, host, p = srv:recvfrom(65536)
                if not d then return end
                srv:sendto("echo:" .. d, host, p)
            end
        end)
        local u = ngx.socket.udp()
        assert.same({ nil, "closed" }, { u:send("x") })
        assert.equal(1, u:setpeername("127.0.0.1", port))
        u:settimeout(1000)
        assert.equal(1, u:send({ "a", { "b", 1 } }))
        assert.equal("echo:ab1", u:receive())
        assert.equal(1, u:send("0123456789"))
        assert.equal("echo:", u:receive(5))          -- a datagram is cut at size
        assert.equal(1, u:close())
        assert.same({ nil, "closed" }, { u:close() })
        echo:kill(); srv:close()
    end))

    it("receive times out in ms; a closed port gives 'connection refused'", green(function()
        local srv = gl.socket.udp()
        assert(srv:bind("127.0.0.1", 0))
        local _, port = srv:getsockname()
        local u = ngx.socket.udp()
        assert(u:setpeername("127.0.0.1", port))
        u:settimeout(100)
        local t0 = gl.clock()
        assert.same({ nil, "timeout" }, { u:receive() })
        assert.is_true(gl.clock() - t0 >= 0.09)
        srv:close() -- now nothing listens: the kernel answers with ICMP port unreachable
        assert.equal(1, u:send("anyone?"))
        local d, err = u:receive()
        assert.is_nil(d); assert.equal("connection refused", err)
        u:close()
    end))
end)

describe("gl.compat.ngx sslhandshake", function()
    local dir
    local function path(n) return dir .. "/" .. n end
    setup(function()
        dir = os.tmpname(); os.remove(dir)
        assert(os.execute("mkdir -p " .. dir))
        local ok, out = proc.run(([[
set -e
cd %s
EC="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $EC -keyout ca.key -out ca.pem -days 3 -subj "/CN=gl ngx test CA" 2>/dev/null
openssl req $EC -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
    -days 2 -extfile ext.cnf 2>/dev/null
]]):format(proc.quote(dir)), 30)
        assert(ok, out)
    end)
    teardown(function() os.execute("rm -rf " .. proc.quote(dir)) end)
    after_each(function() compat.config.ssl_trusted_certificate = nil end)

    local function tls_server(extra)
        local l = assert(gl.listen("127.0.0.1", 0))
        local _, port = l:getsockname()
        local o = { server_side = true, certfile = path("server.pem"), keyfile = path("server.key") }
        for k, v in pairs(extra or {}) do o[k] = v end
        local tl = assert(gl.wrap_ssl(l, o))
        local active = 0
        local th = gl.spawn(gl.serve, tl, function(c)
            active = active + 1
            pcall(function() for line in c:lines() do c:write("tls:", line, "\n") end end)
            active = active - 1
        end)
        return port, function()
            tl:close(); th:wait()
            assert(helper.wait_until(function() return active == 0 end, 3), "handlers still running")
        end
    end

    for _, v in ipairs({ "TLSv1.2", "TLSv1.3" }) do
        it("verifies the server and resumes the session on the next connection (" .. v .. ")",
            green(function()
                local port, stop = tls_server({ max_version = v })
                compat.config.ssl_trusted_certificate = path("ca.pem")
                local s = ngx.socket.tcp(); s:settimeout(2000)
                assert(s:connect("127.0.0.1", port))
                local sess, err = s:sslhandshake(nil, "localhost", true)
                assert.is_truthy(sess, err)
                assert.equal("ngx.ssl.session", getmetatable(sess).__name)
                assert.is_false(s.sock:session_reused())
                assert.equal(6, s:send("hello\n"))
                assert.equal("tls:hello", s:receive())
                s:close()
                local s2 = ngx.socket.tcp(); s2:settimeout(2000)
                assert(s2:connect("127.0.0.1", port))
                assert.is_true(s2:sslhandshake(sess, "localhost", true) ~= nil)
                assert.is_true(s2.sock:session_reused())
                s2:send("again\n")
                assert.equal("tls:again", s2:receive())
                -- reused_session == false: true instead of a session
                local s3 = ngx.socket.tcp(); s3:settimeout(2000)
                assert(s3:connect("127.0.0.1", port))
                assert.is_true(s3:sslhandshake(false, "localhost", true))
                s3:send("third\n"); assert.equal("tls:third", s3:receive())
                -- kept alive: the pooled connection is still TLS, no second handshake
                assert.equal(1, s3:setkeepalive(10000, 2))
                local s4 = ngx.socket.tcp(); s4:settimeout(2000)
                assert(s4:connect("127.0.0.1", port))
                assert.equal(1, s4:getreusedtimes())
                assert.is_true(s4:sslhandshake(false, "localhost", true))
                s4:send("pooled\n"); assert.equal("tls:pooled", s4:receive())
                s2:close(); s4:close()
                stop()
            end, 10))
    end

    it("verification failures read as lua-nginx-module's; ssl_verify off accepts", green(function()
        local port, stop = tls_server()
        local s = ngx.socket.tcp(); s:settimeout(2000)
        assert(s:connect("127.0.0.1", port))
        local ok, err = s:sslhandshake(nil, "localhost", true) -- system CAs: unknown issuer
        assert.is_nil(ok)
        assert.equal("20: unable to get local issuer certificate", err)
        assert.same({ nil, "closed" }, { s:send("x") })
        compat.config.ssl_trusted_certificate = path("ca.pem")
        local s2 = ngx.socket.tcp(); s2:settimeout(2000)
        assert(s2:connect("127.0.0.1", port))
        ok, err = s2:sslhandshake(nil, "wrong.example", true)
        assert.is_nil(ok); assert.equal("62: hostname mismatch", err)
        compat.config.ssl_trusted_certificate = nil
        local s3 = ngx.socket.tcp(); s3:settimeout(2000)
        assert(s3:connect("127.0.0.1", port))
        assert.is_truthy(s3:sslhandshake(nil, "wrong.example", false))
        s3:send("unverified\n"); assert.equal("tls:unverified", s3:receive())
        s3:close()
        stop()
    end))

    it("a plain server gives 'handshake failed'", green(function()
        local port, stop = server(function(c) c:sendall("HTTP/1.0 400 nope\r\n\r\n"); c:close() end)
        local s = ngx.socket.tcp(); s:settimeout(2000)
        assert(s:connect("127.0.0.1", port))
        assert.same({ nil, "handshake failed" }, { s:sslhandshake(false, "localhost", false) })
        stop()
    end))
end)

describe("gl.compat.ngx shims", function()
    it("table.new and table.clear", function()
        local t = table.new(10, 5)
        assert.same({}, t)
        t[1], t.x = 1, 2
        table.clear(t)
        assert.is_nil(next(t))
    end)

    it("bit is LuaBitOp's: 32-bit signed results", function()
        local bit = require "bit"
        assert.equal(bit, package.loaded.bit)
        assert.equal(-1, bit.tobit(0xffffffff))
        assert.equal(0, bit.tobit(2 ^ 32))
        assert.equal(1, bit.band(0x12345671, 0xf, 0x3))
        assert.equal(0x7, bit.bor(1, 2, 4))
        assert.equal(0, bit.bxor(0x55, 0x55))
        assert.equal(-1, bit.bnot(0))
        assert.equal(-2147483648, bit.lshift(1, 31))
        assert.equal(1, bit.lshift(1, 32))  -- the shift count is taken mod 32
        assert.equal(2147483647, bit.rshift(-1, 1))
        assert.equal(-1, bit.arshift(-1, 1))
        assert.equal(-8, bit.arshift(-256, 5))
        assert.equal(0x23456781, bit.rol(0x12345678, 4))
        assert.equal(-2128394905, bit.ror(0x12345678, 4)) -- 0x81234567
        assert.equal(0x78563412, bit.bswap(0x12345678))
        assert.equal("ffffffff", bit.tohex(-1))
        assert.equal("FF", bit.tohex(255, -2))
        assert.equal("0000002a", bit.tohex(42))
        assert.equal("2a", bit.tohex(42, 2))
    end)
    it("URI escaping and args as nginx does them", function()
        assert.equal("a%20b%2Fc%3F~-._", ngx.escape_uri("a b/c?~-._"))
        assert.equal("a b/c?+", ngx.unescape_uri("a+b%2fc%3F%2B"))
        local q = ngx.encode_args({ a = "x y", b = true, c = false, d = { 1, 2 } })
        local parts = {}
        for p in q:gmatch("[^&]+") do parts[#parts + 1] = p end
        table.sort(parts)
        assert.same({ "a=x%20y", "b", "d=1", "d=2" }, parts)
        assert.same({ a = "x y", b = true, d = { "1", "2" }, e = "" }, ngx.decode_args("a=x+y&b&d=1&d=2&e="))
        assert.same({ a = "1" }, ngx.decode_args("a=1&b=2", 1))
    end)

    it("there is no request: ngx.req raises, ngx.var reads nil, the phase is timer", function()
        assert.matches("no request", helper.raises(ngx.req.get_headers))
        assert.is_nil(ngx.var.http_host)
        assert.equal("timer", ngx.get_phase())
        assert.equal(table.unpack, _G.unpack)
    end)

    it("resty.string, resty.sha1/sha256/md5 (lua-resty-string's API) where none is installed", function()
        local str = require "resty.string"
        assert.equal("00ff41", str.to_hex("\0\255A"))
        local sha256 = require "resty.sha256"
        local h = sha256:new()
        assert.is_true(h:update("ab")); assert.is_true(h:update("c"))
        assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", str.to_hex(h:final()))
        -- final resets: the same object hashes again from scratch (lua-resty-mysql relies on it)
        h:update("abc")
        assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", str.to_hex(h:final()))
        local s1 = require("resty.sha1"):new(); s1:update("abc")
        assert.equal(ngx.sha1_bin("abc"), s1:final())
        local m = require("resty.md5"):new(); m:update("hello")
        assert.equal(ngx.md5("hello"), str.to_hex(m:final()))
    end)

    it("the ffi stand-in gives byte buffers and ffi.string; anything else raises clearly", function()
        local ffi = require "ffi"
        local buf = ffi.new(ffi.typeof("char[?]"), 5)
        assert.equal(0, buf[4])
        buf[0], buf[1], buf[2] = 104, 105, 0x100 + 33 -- stored mod 256, as a C char
        assert.equal("hi!", ffi.string(buf, 3))
        assert.equal(5, #ffi.string(buf, 5))
        local big = ffi.new("unsigned char[?]", 10000)
        for i = 0, 9999 do big[i] = 65 + i % 26 end
        assert.equal(string.rep("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 385):sub(1, 10000), ffi.string(big, 10000))
        assert.matches("out of range", helper.raises(function() buf[5] = 1 end))
        assert.matches("not available", helper.raises(ffi.cast, "int*", nil))
        assert.matches("ffi.C.SHA1 is not available", helper.raises(function() return ffi.C.SHA1 end))
        assert.matches("not available", helper.raises(ffi.new, "struct foo"))
    end)
end)
