-- permessage-deflate (RFC 7692) in gl.websocket: negotiated with Python's websockets on
-- both sides, checked on the wire with a raw socket, and bounded when inflating.
local gl = require "gl"
local core = require "gl.core"
local helper = require "helper"
local U = require "http_util"
local green = helper.green
local ws = gl.websocket

local PY = "/usr/bin/python3"
local PEER = "spec/websocket_peer.py"

local last = {}
local function app(req)
    local opts = { deflate = true }
    if req.path == "/small" then opts.max_message_bytes = 10000 end
    if req.path == "/bomb" then opts.deflate = { max_inflated_bytes = 5000 } end
    if req.path == "/nct" then opts.deflate = { no_context_takeover = true } end
    local c = ws.upgrade(req, opts)
    if not c then return end
    last.extensions = c.extensions
    while true do
        local m, kind, code = c:recv()
        if not m then
            last.code = code
            return
        end
        c:send(m, kind)
    end
end

local PY_CLIENT = [[
import asyncio, os, sys, websockets
async def main(port):
    async with websockets.connect(f"ws://127.0.0.1:{port}/echo", max_size=2**22) as ws:
        print("ext=" + ",".join(type(e).__name__ for e in ws.extensions))
        await ws.send("hello")
        print("text=" + await ws.recv())
        big = "abc" * 400000
        await ws.send(big)
        print("big=" + str((await ws.recv()) == big))
        rnd = os.urandom(100000)
        await ws.send(rnd)
        print("random=" + str((await ws.recv()) == rnd))
        for i in range(50):
            await ws.send(f"message {i} " * 10)
        ok = all([(await ws.recv()) == f"message {i} " * 10 for i in range(50)])
        print("order=" + str(ok))
        await ws.send(["frag", "mented"])
        print("frag=" + await ws.recv())
asyncio.run(main(int(sys.argv[1])))
]]

local function handshake(port, path, ext)
    local s = assert(gl.connect("127.0.0.1", port))
    s:settimeout(3)
    s:sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" ..
        "Sec-WebSocket-Extensions: %s\r\n\r\n"):format(path, ext))
    local head = {}
    while true do
        local line = assert(s:read("l")):gsub("\r$", "")
        if line == "" then break end
        head[#head + 1] = line
    end
    return s, table.concat(head, "\n")
end

local function read_frame(s)
    local h = assert(s:read(2))
    local b0, b1 = h:byte(1, 2)
    local len = b1 & 0x7f
    if len == 126 then len = string.unpack(">I2", s:read(2))
    elseif len == 127 then len = string.unpack(">I8", s:read(8)) end
    return b0, len > 0 and s:read(len) or ""
end

describe("gl.websocket permessage-deflate", function()
    it("is negotiated with Python's websockets client and carries every kind of message",
        green(function()
            local srv, port = U.serve(app)
            local path = os.tmpname() .. ".py"
            local f = assert(io.open(path, "w"))
            f:write(PY_CLIENT)
            f:close()
            local rc, out, err = U.run(("%s %s %d"):format(PY, path, port), 30)
            os.remove(path)
            srv:stop(1)
            assert.are.equal(0, rc, tostring(out) .. tostring(err))
            assert.matches("ext=PerMessageDeflate\n", out)
            assert.matches("text=hello\n", out)
            assert.matches("big=True\n", out)
            assert.matches("random=True\n", out)
            assert.matches("order=True\n", out)
            assert.matches("frag=fragmented\n", out)
            assert.matches("^permessage%-deflate", last.extensions)
        end, 40))

    it("is negotiated by gl's client with Python's websockets server", green(function()
        local h = U.spawn(("%s -u %s server"):format(PY, PEER))
        local port
        assert(helper.wait_until(function()
            local f = io.open(h.base .. ".out")
            local s = f and f:read("a") or ""
            if f then f:close() end
            port = tonumber(s:match("PORT (%d+)"))
            return port ~= nil
        end, 10), "python server did not start")
        local ok, err = pcall(function()
            local c = assert(ws.connect("ws://127.0.0.1:" .. port .. "/echo", { deflate = true }))
            assert.matches("^permessage%-deflate", c.extensions)
            local big = ("compress me "):rep(100000)
            for i = 1, 20 do
                assert(c:send(i % 2 == 0 and big or "small " .. i))
                assert.is_true((c:recv()) == (i % 2 == 0 and big or "small " .. i))
            end
            assert(c:send("\0\1\2\3", "binary"))
            assert.are.same({ "\0\1\2\3", "binary" }, { c:recv() })
            c:close()
            local plain = assert(ws.connect("ws://127.0.0.1:" .. port .. "/echo"))
            assert.is_nil(plain.extensions) -- not asked for, not used
            plain:close()
        end)
        U.stop(h)
        assert(ok, err)
    end, 30))

    it("compresses on the wire, honours no_context_takeover, and fails bad data with 1007",
        green(function()
            local srv, port = U.serve(app)
            local s, head = handshake(port, "/echo", "permessage-deflate; client_max_window_bits")
            assert.matches("Sec%-WebSocket%-Extensions: permessage%-deflate", head)
            local z = core.ws_deflate_new(15)
            local msg = ("x"):rep(100000)
            local payload = z:deflate(msg)
            assert.is_true(#payload < 1000)
            s:sendall(core.ws_frame(1, payload, true, true, 4))
            local b0, echo = read_frame(s)
            assert.are.equal(0xC1, b0) -- FIN, RSV1 (compressed), text
            assert.is_true(#echo < 1000, "the echo was not compressed: " .. #echo)
            assert.are.equal(msg, z:inflate(echo, -1))
            -- a second message uses the window of the first (context takeover): tiny
            s:sendall(core.ws_frame(1, z:deflate(msg), true, true, 4))
            b0, echo = read_frame(s)
            assert.are.equal(msg, z:inflate(echo, -1))
            -- garbage in a compressed frame
            s:sendall(core.ws_frame(1, "\xff\xff\xff\xff", true, true, 4))
            b0, echo = read_frame(s)
            assert.are.equal(0x88, b0)
            assert.are.equal(1007, string.unpack(">I2", echo))
            s:close()
            -- server_no_context_takeover: each message decodes with a fresh inflater
            s, head = handshake(port, "/nct", "permessage-deflate")
            assert.matches("server_no_context_takeover", head)
            for _ = 1, 2 do
                s:sendall(core.ws_frame(1, core.ws_deflate_new(15):deflate(msg), true, true, 4))
                b0, echo = read_frame(s)
                assert.are.equal(msg, core.ws_deflate_new(15):inflate(echo, -1))
            end
            s:close()
            -- an offer with an unknown parameter is declined; the connection goes on plain
            s, head = handshake(port, "/echo", "permessage-deflate; foo=1")
            assert.is_nil(head:find("Extensions", 1, true))
            s:sendall(core.ws_frame(1, "plain", true, true))
            b0, echo = read_frame(s)
            assert.are.same({ 0x81, "plain" }, { b0, echo })
            s:close()
            srv:stop(1)
        end))

    it("stops inflating at the limit: a small frame cannot become a huge message (1009)",
        green(function()
            local srv, port = U.serve(app)
            for _, path in ipairs({ "/small", "/bomb" }) do
                local c = assert(ws.connect("ws://127.0.0.1:" .. port .. path, { deflate = true }))
                assert(c:send(("y"):rep(4000)))
                assert.are.equal(4000, #c:recv())
                assert(c:send(("\0"):rep(1000000), "binary")) -- about 1 KB on the wire
                assert.are.same({ nil, "closed", 1009, "message too big" }, { c:recv() })
            end
            srv:stop(1)
        end))
end)
