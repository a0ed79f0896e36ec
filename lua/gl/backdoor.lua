-- gl.backdoor: an interactive Lua REPL per TCP connection, served by green threads, so a
-- running program can be inspected live (Eventlet's backdoor). Expressions print their
-- values, incomplete chunks continue on the next line, print writes to the connection.
-- Loopback only unless told otherwise: whoever connects runs arbitrary code.
local gl = require "gl"

local M = {}

local function compile(src, env)
    local fn = load("return " .. src, "=backdoor", "t", env)
    if fn then return fn end
    local err
    fn, err = load(src, "=backdoor", "t", env)
    if fn then return fn end
    if err:find("<eof>", 1, true) then return nil, "incomplete" end
    return nil, err
end

local function format_values(n, ...)
    local parts = {}
    for i = 1, n do parts[i] = tostring((select(i, ...))) end
    return table.concat(parts, "\t")
end

-- One connection's session; returns when the client goes away. Everything it made (the
-- pending chunk, the environment proxy) is garbage once it returns.
local function session(conn, env)
    local function out(s)
        return conn:sendall(s)
    end
    local function cprint(...)
        out(format_values(select("#", ...), ...) .. "\n")
    end
    -- print always reaches this connection; other names read and write through to env
    local scope = setmetatable({}, {
        __index = function(_, k)
            if k == "print" then return cprint end
            return env[k]
        end,
        __newindex = env,
    })
    out(("gl %s backdoor (Lua %s); end of input or Ctrl-D leaves\n"):format(gl.version,
        _VERSION:match("%d.*")))
    local buffer
    while true do
        if not out(buffer and ">> " or "> ") then return end
        local line = conn:read("l")
        if not line then return end -- gone, perhaps in the middle of a chunk: drop it
        line = line:gsub("\r$", "")
        local src = buffer and (buffer .. "\n" .. line) or line
        local fn, err = compile(src, scope)
        if fn then
            buffer = nil
            local res = table.pack(xpcall(fn, function(e)
                if e == gl.GreenletExit then return e end
                return debug.traceback(tostring(e), 2)
            end))
            if not res[1] then
                if res[2] == gl.GreenletExit then error(res[2], 0) end
                out(tostring(res[2]) .. "\n")
            elseif res.n > 1 then
                out(format_values(res.n - 1, table.unpack(res, 2, res.n)) .. "\n")
            end
        elseif err == "incomplete" then
            buffer = src
        else
            buffer = nil
            out(err .. "\n")
        end
    end
end

-- gl.backdoor.serve(host, port [, env]): serves a REPL per connection until the listening
-- socket closes (it blocks: spawn it). host defaults to 127.0.0.1; a listening socket may
-- stand in for host and port. Chunks see env (default: a fresh table per connection that
-- reads through to _G); their global assignments land in it.
function M.serve(host, port, env)
    if env ~= nil and type(env) ~= "table" then error("gl.backdoor.serve: env must be a table", 2) end
    local sock
    if type(host) == "userdata" then
        sock = host
    else
        if host ~= nil and type(host) ~= "string" then error("gl.backdoor.serve: host must be a string", 2) end
        if math.type(port) ~= "integer" then error("gl.backdoor.serve: port must be an integer", 2) end
        local err
        sock, err = gl.listen(host or "127.0.0.1", port)
        if not sock then return nil, err end
    end
    gl.serve(sock, function(conn)
        session(conn, env or setmetatable({}, { __index = _G }))
    end)
    return true
end

return M
