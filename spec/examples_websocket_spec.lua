-- examples/websocket_chat/chat.lua run as its own gl process, with Python's websockets
-- and plain TCP clients as participants.
local gl = require "gl"
local helper = require "helper"
local proc = require "proc"
local U = require "http_util"
local green = helper.green

local PY_CLIENT = [[
import asyncio, sys, websockets
async def main(port):
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
        while True:
            m = await asyncio.wait_for(ws.recv(), 10)
            if "from tcp" in m:
                print("GOT " + m, flush=True)
                break
        await ws.send("from python")
        while True:
            m = await asyncio.wait_for(ws.recv(), 10)
            if "from gl" in m:
                print("GOT " + m, flush=True)
                break
asyncio.run(main(int(sys.argv[1])))
]]

-- Reads lines from sock until one contains text; returns it.
local function until_line(sock, text)
    while true do
        local line = assert(sock:read("l"))
        if line:find(text, 1, true) then return line end
    end
end

describe("examples/websocket_chat", function()
    it("chat.lua: lines from web and TCP participants reach everyone on both sides",
        green(function()
            local h = proc.start(proc.GL .. " examples/websocket_chat/chat.lua 0 0")
            local ok, err = pcall(function()
                local hp, tp = proc.wait_for(h, "http on port (%d+), tcp on port (%d+)")
                hp, tp = tonumber(hp), tonumber(tp)
                local page = assert(gl.http.get(("http://127.0.0.1:%d/"):format(hp)))
                assert.are.equal(200, page.status)
                assert.matches("new WebSocket", page.body)
                assert.matches("^text/html", page.headers["content-type"])
                local plain = assert(gl.http.get(("http://127.0.0.1:%d/ws"):format(hp)))
                assert.are.equal(400, plain.status)

                local t1 = assert(gl.connect("127.0.0.1", tp))
                local t2 = assert(gl.connect("127.0.0.1", tp))
                t1:settimeout(10)
                t2:settimeout(10)
                until_line(t1, "] joined") -- t2
                local path = proc.tempfile(PY_CLIENT, ".py")
                local py = U.spawn(("/usr/bin/python3 %s %d"):format(path, hp))
                local web = until_line(t1, "joined")
                assert.matches("^%[web %d+%] joined$", web)
                until_line(t2, "[web")
                local g = assert(gl.websocket.connect(("ws://127.0.0.1:%d/ws"):format(hp)))
                until_line(t1, "joined")
                t1:sendall("from tcp\n")
                assert.matches("^%[tcp %d+%] from tcp$", until_line(t2, "from tcp"))
                local m
                repeat m = assert(g:recv()) until m:find("from tcp", 1, true)
                assert.matches("^%[web %d+%] from python$", until_line(t1, "from python"))
                until_line(t2, "from python")
                repeat m = assert(g:recv()) until m:find("from python", 1, true)
                g:send("from gl")
                until_line(t1, "from gl")
                until_line(t2, "from gl")
                local rc, out = U.wait(py, 15)
                os.remove(path)
                assert.are.equal(0, rc, tostring(out))
                assert.matches("GOT %[tcp %d+%] from tcp", out)
                assert.matches("GOT %[web %d+%] from gl", out)
                g:close()
                t1:close()
                until_line(t2, "left")
                t2:close()
            end)
            proc.stop(h)
            assert(ok, err)
        end, 30))
end)
