-- Connection churn against a running server (issue 14's soak): opens and closes `count`
-- connections, `conc` at a time, mixing clean closes, resets (SO_LINGER 0), half-closes,
-- garbage, and clients that go silent until the server drops them.
-- usage: gl tools/churn.lua http|chat PORT COUNT [CONC]
local gl = require "gl"

local kind, port = arg[1], tonumber(arg[2])
local count, conc = tonumber(arg[3]) or 1000, tonumber(arg[4]) or 50
assert((kind == "http" or kind == "chat") and port, "usage: churn.lua http|chat PORT COUNT [CONC]")

local REQUEST = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
local GARBAGE = ("\0\255garbage\r\n"):rep(50)
local message = kind == "http" and REQUEST or "hello from churn\n"

local function session(c, mode)
    c:settimeout(5)
    if mode == 0 then -- clean: one exchange, then close
        c:sendall(message)
        if kind == "http" then c:read("l") end
    elseif mode == 1 then -- reset: half a message, then RST
        c:sendall(message:sub(1, 5))
        c:setoption("linger", 0)
    elseif mode == 2 then -- half-close: send, shut our side, read to the end
        c:sendall(message)
        c:shutdown("w")
        c:read("a")
    elseif mode == 3 then -- garbage: the server answers or drops it
        c:sendall(GARBAGE)
        if kind == "http" then c:read("a") end
    else -- silent: say nothing; an HTTP server drops us at its timeout
        if kind == "http" then c:read("a") else gl.sleep(0.01) end
    end
end

local done, failed, next_i = 0, 0, 0
local pool = gl.GreenPool(conc)
local t0 = gl.clock()
for _ = 1, conc do
    pool:spawn(function()
        while next_i < count do
            next_i = next_i + 1
            local mode = tonumber(os.getenv("CHURN_MODE") or "") or next_i % 5
            local c = gl.connect("127.0.0.1", port)
            if c then
                pcall(session, c, mode)
                c:close()
                done = done + 1
            else
                failed = failed + 1
            end
        end
    end)
end
pool:waitall()
print(("churn %s: %d connections, %d failed to connect, %.1f s"):format(kind, done, failed,
    gl.clock() - t0))
