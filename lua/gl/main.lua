-- The interpreter's main green thread: runs -e, -l, the script and the REPL in order.
-- Internal to the gl interpreter (src/main.c).
local function run_script(path, ...)
    local chunk, err
    if path == "-" then
        chunk, err = load(io.stdin:read("a"):gsub("^#![^\n]*", ""), "=stdin")
    else
        chunk, err = loadfile(path)
    end
    if not chunk then error(err, 0) end
    return chunk(...)
end

return function(actions, ...)
local script_args = table.pack(...)
for _, a in ipairs(actions) do
    local kind, value = a[1], a[2]
    if kind == "e" then
        local chunk, err = load(value, "=(command line)")
        if not chunk then error(err, 0) end
        chunk()
    elseif kind == "l" then
        local global, mod = value:match("^([^=]+)=(.+)$")
        global, mod = global or value, mod or value
        _G[global] = require(mod)
    elseif kind == "script" then
        run_script(value, table.unpack(script_args, 1, script_args.n))
    elseif kind == "repl" then
        require("gl.repl").run()
    end
end
end
