-- gl.websocket (API.md section 9) against Python's websockets on both sides, gl against
-- itself, and hostile frames written on a raw socket.
local gl = require "gl"
local core = require "gl.core"
local helper = require "helper"
local U = require "http_util"
local green = helper.green
local ws = gl.websocket

local PY = "/usr/bin/python3"
local PEER = "spec/websocket_peer.py"

local seen = {} -- path -> {code, reason} the server's recv saw at the end

local function echo(c, path)
    while true do
        local m, kind, code, reason = c:recv()
        if not m then
            seen[path] = { kind, code, reason }
            return
        end
        c:send(m, kind)
    end
end

local function app(req)
    local p = req.path
    if p == "/reject" then return 403, {}, "no" end
    local opts = {}
    if p == "/small" then opts.max_message_bytes = 1000 end
    local c, err = ws.upgrade(req, opts)
    if not c then
        seen[p] = { "upgrade failed", err }
        return 200, {}, "this must never reach the wire"
    end
    if p == "/close" then
        c:close(4002, "server bye")
    elseif p == "/return" then
        return 200, {}, "ignored"
    elseif p == "/error" then
        error("app failed after the upgrade")
    else
        echo(c, p)
    end
    return 200, {}, "ignored too"
end

local function serve()
    return U.serve(app, { log = false })
end

-- ---- raw frames ----

local function handshake(port, path)
    local s = assert(gl.connect("127.0.0.1", port))
    s:settimeout(3)
    s:sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"):format(path or "/echo"))
    local head = {}
    while true do
        local line = assert(s:read("l")):gsub("\r$", "")
        if line == "" then break end
        head[#head + 1] = line
    end
    assert.are.equal("HTTP/1.1 101 Switching Protocols", head[1])
    local all = table.concat(head, "\n")
    assert.matches("Sec%-WebSocket%-Accept: s3pPLMBiTxaQ9kYGzzhZRbK%+xOo=", all)
    return s
end

-- Reads one (unmasked) server frame: fin, opcode, payload; nil at EOF.
local function read_frame(s)
    local h = s:read(2)
    if not h or #h < 2 then return nil end
    local b0, b1 = h:byte(1, 2)
    assert.are.equal(0, b1 & 0x80, "server frames are never masked")
    local len = b1 & 0x7f
    if len == 126 then len = string.unpack(">I2", s:read(2))
    elseif len == 127 then len = string.unpack(">I8", s:read(8)) end
    local payload = len > 0 and s:read(len) or ""
    return b0 & 0x80 ~= 0, b0 & 0x0f, payload
end

local function frame(op, payload, fin, rsv)
    return core.ws_frame(op, payload, fin ~= false, true, rsv)
end

-- Sends bytes, then expects a close frame with code and the server closing the TCP
-- connection.
local function expect_close(s, bytes, code)
    s:sendall(bytes)
    local fin, op, payload
    repeat
        fin, op, payload = read_frame(s)
        assert.is_not_nil(fin, "connection ended without a close frame")
    until op == 8
    assert.is_true(fin)
    assert.are.equal(code, string.unpack(">I2", payload))
    assert.is_nil(s:read(1), "the server keeps the connection after failing it")
    s:close()
end

local function still_serves(port)
    local c = assert(ws.connect("ws://127.0.0.1:" .. port .. "/echo"))
    assert(c:send("still here"))
    assert.are.equal("still here", (c:recv()))
    c:close()
end

describe("gl.websocket", function()
    it("serves Python's websockets client: text, binary, 1 MB, order, fragments, ping, close codes, 30 clients",
        green(function()
            local srv, port = serve()
            local rc, out, err = U.run(("%s %s client %d"):format(PY, PEER, port), 40)
            srv:stop(1)
            assert.are.equal(0, rc, tostring(out) .. tostring(err))
            local r = {}
            for k, v in out:gmatch("(%S+)=([^\n]*)") do r[k] = v end
            assert.are.equal("'héllo'", r.text)
            assert.are.equal("'0001ff'", r.binary)
            assert.are.equal("True", r.big)
            assert.are.equal("True", r.order)
            assert.are.equal("'fragmented €'", r.frag)
            assert.are.equal("'61626364'", r.fragbin)
            assert.are.equal("True", r.pong)
            assert.are.equal("4001", r.close_code)
            assert.are.equal("[4002, 'server bye']", r["/close"])
            assert.are.equal("[1000, '']", r["/return"])
            assert.are.equal("[1011, 'internal error']", r["/error"])
            assert.are.equal("True", r.concurrent)
            assert.are.equal("403", r.reject)
            assert.are.same({ "closed", 4001, "client bye" }, seen["/first"])
        end, 45))

    it("answers a plain GET to a websocket endpoint with 400, and the app's return never reaches the wire",
        green(function()
            local srv, port = serve()
            local out = U.raw(port, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            srv:stop(1)
            assert.matches("^HTTP/1.1 400 Bad Request\r\n", out)
            assert.is_nil(out:find("never reach", 1, true))
            assert.are.equal("upgrade failed", seen["/echo"][1])
        end))

    it("connects to Python's websockets server: echo, fragments, auto pong, ping, close codes",
        green(function()
            local h = U.spawn(("%s -u %s server"):format(PY, PEER))
            local port
            assert(helper.wait_until(function()
                local f = io.open(h.base .. ".out")
                local s = f and f:read("a") or ""
                if f then f:close() end
                port = tonumber(s:match("PORT (%d+)"))
                return port ~= nil
            end, 10), "python server did not start")
            local base = "ws://127.0.0.1:" .. port
            local ok, err = pcall(function()
                local c = assert(ws.connect(base .. "/echo"))
                assert(c:send("grüß"))
                assert.are.same({ "grüß", "text" }, { c:recv() })
                local big = ("0123456789abcdef"):rep(65536) -- 1 MiB
                assert(c:send(big, "binary"))
                local m, kind = c:recv()
                assert.are.equal("binary", kind)
                assert.is_true(m == big)
                for i = 1, 100 do c:send("n" .. i) end
                for i = 1, 100 do assert.are.equal("n" .. i, (c:recv())) end
                assert(c:ping("hi"))
                assert(c:send("after ping"))
                assert.are.equal("after ping", (c:recv()))
                assert.are.equal("hi", c.last_pong)
                assert.is_true(c:close())
                assert.are.same({ nil, "closed", 1000, "" }, { c:recv() })

                c = assert(ws.connect(base .. "/frag"))
                assert.are.same({ ("a"):rep(10) .. ("b"):rep(10) .. "c €", "text" }, { c:recv() })
                assert.are.same({ "\1\2", "binary" }, { c:recv() })
                c:close()

                c = assert(ws.connect(base .. "/ping"))
                assert.are.same({ "ponged", "text" }, { c:recv() }) -- the server got our pong
                c:close()

                c = assert(ws.connect(base .. "/close"))
                assert.are.same({ nil, "closed", 4003, "server bye" }, { c:recv() })
                assert.is_true(c:closed())

                c = assert(ws.connect(base .. "/record"))
                c:close(4321, "gl says bye")
                assert(helper.wait_until(function()
                    local f = io.open(h.base .. ".out")
                    local s = f and f:read("a") or ""
                    if f then f:close() end
                    return s:find("CLOSED 4321 gl says bye", 1, true) ~= nil
                end, 5), "python did not see gl's close code")
            end)
            U.stop(h)
            assert(ok, err)
        end, 30))

    it("talks to itself over wss with certificate checks on", green(function()
        local dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir -p " .. dir))
        local key, crt = dir .. "/key.pem", dir .. "/crt.pem"
        local rc = U.run(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 1 " ..
            "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1"):format(key, crt), 20)
        assert.are.equal(0, rc)
        local l = assert(gl.listen("127.0.0.1", 0))
        local _, port = l:getsockname()
        local tl = gl.wrap_ssl(l, { server_side = true, certfile = crt, keyfile = key })
        local srv = gl.http.server(tl, app, { background = true, log = false })
        local c, err = ws.connect("wss://127.0.0.1:" .. port .. "/echo", { cafile = crt })
        assert(c, err)
        assert(c:send("secret"))
        assert.are.same({ "secret", "text" }, { c:recv() })
        c:close()
        local bad, berr = ws.connect("wss://127.0.0.1:" .. port .. "/echo")
        assert.is_nil(bad)
        assert.matches("^tls: ", berr)
        srv:stop(1)
        os.execute("rm -rf " .. dir)
    end, 20))

    it("gives the peer's close code, and 1005 when it sent none", green(function()
        local srv, port = serve()
        local s = handshake(port, "/echo")
        s:sendall(frame(8, ""))
        local fin, op, payload = read_frame(s)
        assert.are.equal(8, op)
        assert.are.equal("", payload) -- answered with no code either
        assert.is_nil(s:read(1))
        s:close()
        assert(helper.wait_until(function() return seen["/echo"] and seen["/echo"][2] == 1005 end))
        -- gl's client against a bare server that closes with no code
        local l = assert(gl.listen("127.0.0.1", 0))
        local _, p2 = l:getsockname()
        local t = gl.spawn(function()
            local conn = l:accept()
            local key
            while true do
                local line = conn:read("l"):gsub("\r$", "")
                if line == "" then break end
                key = line:match("^Sec%-WebSocket%-Key: (%S+)") or key
            end
            conn:sendall("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" ..
                "Connection: Upgrade\r\nSec-WebSocket-Accept: " .. core.ws_accept(key) .. "\r\n\r\n")
            conn:sendall("\x88\x00")
            local h = conn:read(2) -- the client's answer: masked, no payload
            conn:close()
            l:close()
            return h
        end)
        local c = assert(ws.connect("ws://127.0.0.1:" .. p2 .. "/"))
        assert.are.same({ nil, "closed", 1005, "" }, { c:recv() })
        assert.are.equal("\x88\x80", t:wait())
        srv:stop(1)
    end))

    it("fails hostile frames with the right close code and goes on serving", green(function()
        local srv, port = serve()
        local big = "\x82\xff\x80\0\0\0\0\0\0\0" .. "abcd" -- length 2^63, masked
        local cases = {
            { "unmasked client frame", core.ws_frame(1, "hi", true, false), 1002 },
            { "length 2^63", big, 1002 },
            { "bad UTF-8", frame(1, "ok\xff"), 1007 },
            { "overlong UTF-8", frame(1, "\xc0\xaf"), 1007 },
            { "surrogate", frame(1, "\xed\xa0\x80"), 1007 },
            { "bad UTF-8 across fragments", frame(1, "ok\xe2\x82", false) .. frame(0, "\x28"), 1007 },
            { "unfinished UTF-8 at the end", frame(1, "ok\xe2\x82", false) .. frame(0, ""), 1007 },
            { "ping over 125 bytes", frame(9, ("p"):rep(126)), 1002 },
            { "fragmented ping", frame(9, "p", false), 1002 },
            { "unknown data opcode", frame(3, "x"), 1002 },
            { "unknown control opcode", frame(0xB, "x"), 1002 },
            { "reserved bit 1", frame(1, "x", true, 4), 1002 },
            { "reserved bit 3", frame(2, "x", true, 1), 1002 },
            { "continuation with no message", frame(0, "x"), 1002 },
            { "new message inside a fragmented one", frame(1, "a", false) .. frame(1, "b"), 1002 },
            { "close of one byte", frame(8, "\3"), 1002 },
            { "close code 1005 on the wire", frame(8, "\x03\xed"), 1002 },
            { "close code 999", frame(8, "\x03\xe7"), 1002 },
            { "close reason not UTF-8", frame(8, "\x03\xe8\xff"), 1007 },
        }
        for _, case in ipairs(cases) do
            local s = handshake(port, "/echo")
            local ok, err = pcall(expect_close, s, case[2], case[3])
            s:close()
            assert(ok, case[1] .. ": " .. tostring(err))
        end
        -- size limit (max_message_bytes = 1000): one frame, and fragments adding up
        local s = handshake(port, "/small")
        expect_close(s, frame(2, ("x"):rep(1001)), 1009)
        s = handshake(port, "/small")
        expect_close(s, frame(2, ("x"):rep(600), false) .. frame(0, ("x"):rep(600)), 1009)
        s = handshake(port, "/small")
        s:sendall(frame(2, ("x"):rep(1000)))
        local _, op, payload = read_frame(s)
        assert.are.equal(2, op)
        assert.are.equal(1000, #payload)
        s:close()
        still_serves(port)
        srv:stop(1)
    end, 20))

    it("handles control frames between fragments, a close mid-message and a TCP close mid-frame",
        green(function()
            local srv, port = serve()
            local s = handshake(port, "/echo")
            s:sendall(frame(1, "he\xe2\x82", false) .. frame(9, "pi") .. frame(0, "\xac llo"))
            local _, op, payload = read_frame(s)
            assert.are.same({ 10, "pi" }, { op, payload }) -- the pong comes first
            _, op, payload = read_frame(s)
            assert.are.same({ 1, "he€ llo" }, { op, payload })
            -- a close frame in the middle of a fragmented message ends it cleanly
            expect_close(s, frame(1, "half", false) .. frame(8, "\x0f\xa0bye"), 4000)
            assert(helper.wait_until(function() return seen["/echo"][2] == 4000 end))
            assert.are.equal("bye", seen["/echo"][3])
            -- the peer vanishes half way through a frame
            s = handshake(port, "/echo")
            s:sendall(frame(2, ("z"):rep(100)):sub(1, 50))
            s:close()
            assert(helper.wait_until(function() return seen["/echo"][2] == 1006 end))
            still_serves(port)
            srv:stop(1)
        end))

    it("checks its arguments", green(function()
        local srv, port = serve()
        local c = assert(ws.connect("ws://127.0.0.1:" .. port .. "/echo"))
        assert.matches("not valid UTF%-8", helper.raises(c.send, c, "\xff"))
        assert.matches("kind must be", helper.raises(c.send, c, "x", "json"))
        assert.matches("125 bytes", helper.raises(c.ping, c, ("x"):rep(126)))
        assert.matches("bad close code", helper.raises(c.close, c, 1005))
        assert.matches("not a ws", helper.raises(ws.connect, "http://x/"))
        assert(c:send(""))
        assert.are.same({ "", "text" }, { c:recv() })
        c:close()
        assert.are.same({ nil, "closed" }, { c:send("late") })
        local bad, err = ws.connect("ws://127.0.0.1:" .. port .. "/reject")
        assert.is_nil(bad)
        assert.matches("HTTP 403", err)
        srv:stop(1)
    end))

    it("times out a recv and stays usable; close from another thread while one receives",
        green(function()
            local srv, port = serve()
            local c = assert(ws.connect("ws://127.0.0.1:" .. port .. "/echo"))
            c:settimeout(0.05)
            assert.are.same({ nil, "timeout" }, { c:recv() })
            c:settimeout(nil)
            assert(c:send("later"))
            assert.are.equal("later", (c:recv()))
            local got = {}
            local reader = gl.spawn(function()
                while true do
                    local m, kind, code, reason = c:recv()
                    if not m then
                        got = { kind, code, reason }
                        return
                    end
                end
            end)
            gl.sleep(0.01)
            assert.matches("already receiving", helper.raises(c.recv, c))
            assert.is_true(c:close(4005, "done"))
            reader:wait()
            assert.is_true(c:closed())
            assert.are.same({ "closed", 4005, "" }, got) -- the server's answer
            assert(helper.wait_until(function() return seen["/echo"][2] == 4005 end))
            do
                local c2 <close> = assert(ws.connect("ws://127.0.0.1:" .. port .. "/scoped"))
                assert(c2:send("x"))
            end
            assert(helper.wait_until(function() return seen["/scoped"] ~= nil end))
            assert.are.same({ "closed", 1000, "" }, seen["/scoped"])
            srv:stop(1)
        end))

    it("keeps frames whole when several green threads send at once", green(function()
        local srv, port = serve()
        local c = assert(ws.connect("ws://127.0.0.1:" .. port .. "/echo"))
        local big = {}
        for t = 1, 5 do big[t] = ("%d"):format(t):rep(100000) end -- sendall must wait
        local senders = {}
        for t = 1, 5 do
            senders[t] = gl.spawn(function()
                for _ = 1, 10 do assert(c:send(big[t], "binary")) end
            end)
        end
        local counts = {}
        for _ = 1, 50 do
            local m, kind = c:recv()
            assert.are.equal("binary", kind)
            local t = tonumber(m:sub(1, 1))
            assert.is_true(m == big[t], "a message was mixed up")
            counts[t] = (counts[t] or 0) + 1
        end
        for t = 1, 5 do
            senders[t]:wait()
            assert.are.equal(10, counts[t])
        end
        c:close()
        srv:stop(1)
    end, 20))

    it("a sender killed while it waits for its turn lets the next one send", green(function()
        local srv, port = serve()
        local c = assert(ws.connect("ws://127.0.0.1:" .. port .. "/echo"))
        local big = ("x"):rep(4 * 1024 * 1024) -- the first sendall must wait for the peer
        local first = gl.spawn(function() return c:send(big, "binary") end)
        local doomed = gl.spawn(function() return c:send("never", "binary") end)
        local last = gl.spawn(function() return c:send("last", "binary") end)
        gl.sleep(0) -- all three started: the first is sending, the others wait their turn
        doomed:kill()
        assert.are.equal(big, (c:recv()))
        assert.are.equal("last", (c:recv()))
        assert.is_true(first:wait())
        assert.is_true(last:wait())
        c:close()
        srv:stop(1)
    end, 20))

    it("closes 1009 from the frame header alone for a frame over the 16 MiB default", green(function()
        local srv, port = serve()
        local s = handshake(port, "/echo")
        local header = string.pack(">BBI8", 0x82, 0xff, 16 * 1024 * 1024 + 1) .. "abcd"
        expect_close(s, header .. "only a few payload bytes", 1009)
        s = handshake(port, "/echo")
        header = string.pack(">BBI8", 0x81, 0xff, 16 * 1024 * 1024) .. "abcd"
        s:sendall(header .. "not all of it") -- exactly the limit: accepted, waits for the rest
        s:settimeout(0.2)
        local data, err = s:recv(10)
        assert.are.same({ nil, "timeout" }, { data, err })
        s:close()
        still_serves(port)
        srv:stop(1)
    end))

    it("bounds the close handshake when the peer never answers, and survives a server stop",
        green(function()
            local l = assert(gl.listen("127.0.0.1", 0))
            local _, p2 = l:getsockname()
            local t = gl.spawn(function()
                local conn = l:accept()
                local key
                while true do
                    local line = conn:read("l"):gsub("\r$", "")
                    if line == "" then break end
                    key = line:match("^Sec%-WebSocket%-Key: (%S+)") or key
                end
                conn:sendall("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" ..
                    "Connection: Upgrade\r\nSec-WebSocket-Accept: " .. core.ws_accept(key) .. "\r\n\r\n")
                while conn:recv(100) do end -- reads, never answers
                conn:close()
                l:close()
            end)
            local c = assert(ws.connect("ws://127.0.0.1:" .. p2 .. "/", { close_timeout = 0.2 }))
            local t0 = gl.clock()
            assert.is_true(c:close())
            assert.is_true(gl.clock() - t0 < 1)
            assert.are.same({ nil, "closed", 1006, "" }, { c:recv() })
            t:wait()

            local srv, port = serve()
            local c2 = assert(ws.connect("ws://127.0.0.1:" .. port .. "/echo"))
            assert(c2:send("x"))
            assert.are.equal("x", (c2:recv()))
            srv:stop(0.1) -- cuts the connection under the app
            local m, err = c2:recv()
            assert.is_nil(m)
            assert.are.equal("closed", err)
            assert.are.same({ nil, "closed" }, { c2:send("late") })
        end))
end)
