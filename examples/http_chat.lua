-- A long-poll ("Comet") chat over HTTP: the Eventlet case of one parked request per user.
--   POST /send          the body is one message; answers its number
--   GET /poll?since=N   blocks until there is a message numbered above N (or 30 s pass),
--                       then answers "number<TAB>text" lines; "" after a timeout
-- usage: gl examples/http_chat.lua [port=8080]    (port 0: any free port)
local gl = require "gl"

local port = tonumber(arg[1]) or 8080
local POLL_TIMEOUT = tonumber(os.getenv("CHAT_POLL_TIMEOUT")) or 30
local messages = {}        -- messages[n] = text
local arrived = gl.Event() -- sent (and replaced) whenever a message comes

local function since(n)
    local out = {}
    for i = n + 1, #messages do out[#out + 1] = i .. "\t" .. messages[i] .. "\n" end
    return table.concat(out)
end

local function app(req)
    if req.method == "POST" and req.path == "/send" then
        local text = req:body():gsub("[\r\n]", " ")
        messages[#messages + 1] = text
        local ev = arrived
        arrived = gl.Event()
        ev:send(#messages)
        return 200, { ["Content-Type"] = "text/plain" }, tostring(#messages)
    elseif req.method == "GET" and req.path == "/poll" then
        local n = tonumber(req.query:match("since=(%d+)")) or 0
        if #messages <= n then arrived:wait(POLL_TIMEOUT) end
        return 200, { ["Content-Type"] = "text/plain", ["Cache-Control"] = "no-cache" }, since(n)
    end
    return 404, { ["Content-Type"] = "text/plain" }, "POST /send or GET /poll?since=N\n"
end

local sock = assert(gl.listen("127.0.0.1", port))
print(("chat on http://127.0.0.1:%d/ (port %d)"):format(select(2, sock:getsockname()),
    select(2, sock:getsockname())))
io.stdout:flush()
gl.http.server(sock, app, { log = false })
