-- gl -i: a Lua REPL that reads stdin through the hub, so green threads keep running
-- while it waits for a line. Expressions print their values; incomplete input continues.
local gl = require "gl"
local core = require "gl.core"

local M = {}

local function compile(src)
    local fn, err = load("return " .. src, "=stdin")
    if fn then return fn end
    fn, err = load(src, "=stdin")
    if fn then return fn end
    if err:find("<eof>", 1, true) then return nil, "incomplete" end
    return nil, err
end

local function show(ok, ...)
    if not ok then
        io.stderr:write(tostring((...)), "\n")
    elseif select("#", ...) > 0 then
        print(...)
    end
end

-- Reads a line from fd 0 without blocking the hub; nil at end of input.
local pending = ""
local function read_line()
    while true do
        local nl = pending:find("\n", 1, true)
        if nl then
            local line = pending:sub(1, nl - 1)
            pending = pending:sub(nl + 1)
            return line
        end
        core.wait_fd(0, true, false)
        local data = core.read_fd(0)
        if data == "" or data == nil then
            if pending ~= "" then
                local line = pending
                pending = ""
                return line
            end
            return nil
        end
        pending = pending .. data
    end
end

function M.run()
    local buffer
    while true do
        io.stdout:write(buffer and ">> " or "> ")
        io.stdout:flush()
        local ok, line = pcall(read_line)
        if not ok then
            if line == gl.Interrupt then
                io.stdout:write("\n")
                buffer = nil
            else
                error(line, 0)
            end
        elseif line == nil then
            io.stdout:write("\n")
            return
        else
            local src = buffer and (buffer .. "\n" .. line) or line
            local fn, err = compile(src)
            if fn then
                buffer = nil
                show(xpcall(fn, function(e)
                    if e == gl.Interrupt then return "interrupted" end
                    return debug.traceback(tostring(e), 2)
                end))
            elseif err == "incomplete" then
                buffer = src
            else
                buffer = nil
                io.stderr:write(err, "\n")
            end
        end
    end
end

return M
