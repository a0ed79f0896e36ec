-- A chat room with two doors: a web page talking WebSocket (http://host:PORT/) and a plain
-- TCP line listener (nc host TCP_PORT). Every line anyone sends reaches every other
-- participant, whichever door they came in by.
-- usage: gl examples/websocket_chat/chat.lua [http_port=8080] [tcp_port=3000] [host=127.0.0.1]
local gl = require "gl"

local http_port = tonumber(arg[1]) or 8080
local tcp_port = tonumber(arg[2]) or 3000
local host = arg[3] or "127.0.0.1"

local PAGE = [[<!doctype html>
<html><head><meta charset="utf-8"><title>gl chat</title>
<style>body{font-family:sans-serif;margin:2em}#log{border:1px solid #999;height:20em;
overflow:auto;padding:.5em;white-space:pre-wrap}#msg{width:30em}</style></head>
<body><h1>gl chat</h1><div id="log"></div>
<form id="f"><input id="msg" autocomplete="off" autofocus> <button>Send</button></form>
<script>
const log = document.getElementById("log"), msg = document.getElementById("msg");
function show(line) {
  const div = document.createElement("div");
  div.className = "line";
  div.textContent = line;
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
}
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
ws.onopen = () => { document.title = "gl chat (connected)"; show("* connected"); };
ws.onmessage = (ev) => show(ev.data);
ws.onclose = (ev) => show("* closed (" + ev.code + ")");
document.getElementById("f").onsubmit = (ev) => {
  ev.preventDefault();
  if (msg.value && ws.readyState === WebSocket.OPEN) {
    ws.send(msg.value);
    show("me: " + msg.value);
    msg.value = "";
  }
};
</script></body></html>
]]

local participants = {} -- outbox (a gl.Queue) -> name
local count = 0

local function broadcast(from, line)
    local text = ("[%s] %s"):format(participants[from], line)
    print(text)
    for box in pairs(participants) do
        if box ~= from then box:put(text) end
    end
end

-- Runs one participant: send(line) writes to it, lines() yields what it says. An outbox
-- and a writer thread per participant, so a slow one never stalls the others.
local function participate(kind, send, lines)
    count = count + 1
    local box = gl.Queue()
    participants[box] = kind .. " " .. count
    local writer = gl.spawn(function()
        while true do
            local line = box:get()
            if line == nil or not send(line) then break end
        end
    end)
    broadcast(box, "joined")
    for line in lines do broadcast(box, line) end
    broadcast(box, "left")
    participants[box] = nil
    box:put(nil)
    writer:wait()
end

local function app(req)
    if req.path == "/" then
        return 200, { ["Content-Type"] = "text/html; charset=utf-8" }, PAGE
    elseif req.path == "/ws" then
        local ws, err = gl.websocket.upgrade(req)
        if not ws then return end -- a 400 went out already
        participate("web", function(line) return ws:send(line) end, function()
            local m = ws:recv()
            return m and (m:gsub("[\r\n]+", " "))
        end)
        return
    end
    return 404, { ["Content-Type"] = "text/plain" }, "not found\n"
end

local web = assert(gl.listen(host, http_port))
local tcp = assert(gl.listen(host, tcp_port))
io.stdout:setvbuf("line")
print(("chat: http on port %d, tcp on port %d"):format(select(2, web:getsockname()),
    select(2, tcp:getsockname())))
local srv = gl.http.server(web, app, { background = true, log = false })
gl.spawn(gl.serve, tcp, function(conn)
    local lines = conn:lines("l")
    participate("tcp", function(line) return conn:sendall(line .. "\n") end, function()
        local line = lines()
        return line and (line:gsub("\r$", ""))
    end)
end)
local ok, err = pcall(function()
    while true do gl.sleep(3600) end
end)
if not ok and err ~= gl.Interrupt then error(err, 0) end
srv:stop(1)
os.exit(0)
