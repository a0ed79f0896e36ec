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

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64decode(s)
    local val = {}
    for i = 1, 64 do val[B64:byte(i)] = i - 1 end
    s = s:gsub("[^%w+/]", "")
    local out = {}
    for i = 1, #s, 4 do
        local a, b, c, d = s:byte(i, i + 3)
        local n = (val[a] << 18) | (val[b] << 12) | ((c and val[c] or 0) << 6) | (d and val[d] or 0)
        local chunk = string.char(n >> 16, (n >> 8) & 255, n & 255)
        out[#out + 1] = chunk:sub(1, (d and 3) or (c and 2) or 1)
    end
    return table.concat(out)
end

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

    it("chat.lua in headless Chromium (DevTools protocol over gl.websocket): the page talks to a TCP client",
        green(function()
            local chromium = io.popen("command -v chromium chromium-browser 2>/dev/null"):read("l")
            if not chromium then
                pending("chromium is not installed (tools/install-deps installs it)")
                return
            end
            local json = require "dkjson"
            local h = proc.start(proc.GL .. " examples/websocket_chat/chat.lua 0 0")
            local profile = os.tmpname()
            os.remove(profile)
            local browser
            local ok, err = pcall(function()
                local hp, tp = proc.wait_for(h, "http on port (%d+), tcp on port (%d+)")
                hp, tp = tonumber(hp), tonumber(tp)
                local t = assert(gl.connect("127.0.0.1", tp))
                t:settimeout(15)
                local page_url = ("http://127.0.0.1:%d/"):format(hp)
                browser = proc.start(("%s --headless=new --no-sandbox --disable-gpu " ..
                    "--disable-dev-shm-usage --no-first-run --user-data-dir=%s " ..
                    "--remote-debugging-port=0 --window-size=800,600 %s"):format(chromium, profile, page_url))
                local dport = tonumber(proc.wait_for(browser,
                    "DevTools listening on ws://127%.0%.0%.1:(%d+)/", 30))
                local list = assert(gl.http.get(("http://127.0.0.1:%d/json/list"):format(dport)))
                local target
                for _, tg in ipairs(json.decode(list.body)) do
                    if tg.type == "page" and tg.url:find(page_url, 1, true) then target = tg end
                end
                assert(target, "no page target for the chat page: " .. list.body)
                local cdp = assert(gl.websocket.connect(target.webSocketDebuggerUrl))
                local id = 0
                local function call(method, params)
                    id = id + 1
                    assert(cdp:send(json.encode({ id = id, method = method, params = params or {} })))
                    while true do -- events come in between; the answer carries our id
                        local raw = assert(cdp:recv())
                        local m = json.decode(raw)
                        if m.id == id then
                            assert(not m.error, m.error and m.error.message)
                            return m.result
                        end
                    end
                end
                local function eval(js)
                    local r = call("Runtime.evaluate", { expression = js, returnByValue = true })
                    return r.result.value
                end
                assert(helper.wait_until(function()
                    return eval("document.title") == "gl chat (connected)"
                end, 15, 0.05), "the page never connected its WebSocket")
                assert.matches("^%[web %d+%] joined$", until_line(t, "joined"))
                eval([[document.getElementById("msg").value = "hello from chromium";
                    document.getElementById("f").requestSubmit(); true]])
                assert.matches("^%[web %d+%] hello from chromium$", until_line(t, "hello from chromium"))
                t:sendall("hi browser\n")
                assert(helper.wait_until(function()
                    local text = eval('document.getElementById("log").textContent')
                    return text:find("hi browser", 1, true) ~= nil
                end, 10, 0.05), "the page never showed the TCP client's line")
                local lines = eval([[Array.from(document.querySelectorAll("#log .line"),
                    (d) => d.textContent).join("\n")]])
                assert.matches("me: hello from chromium", lines)
                assert.matches("%[tcp %d+%] hi browser", lines)
                local shot = call("Page.captureScreenshot", { format = "png" })
                local png = b64decode(shot.data)
                assert.are.equal("\137PNG\r\n\26\n", png:sub(1, 8))
                os.execute("mkdir -p build")
                local f = assert(io.open("build/websocket_chat.png", "wb"))
                f:write(png)
                f:close()
                cdp:close()
                t:close()
            end)
            if browser then proc.stop(browser) end
            proc.stop(h)
            os.execute("rm -rf " .. proc.quote(profile))
            assert(ok, err)
        end, 60))
end)
