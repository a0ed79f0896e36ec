-- A narrow stand-in for LuaJIT's `ffi`, loaded by gl.compat.ngx only where no real one is
-- installed: byte buffers (ffi.new("char[?]", n) / "uint8_t[?]" / "unsigned char[?]",
-- indexed from 0, values kept mod 256) and ffi.string(buf, len), which is what
-- lua-resty-websocket's framing needs. Everything else (cdef'd C functions, casts, gc,
-- structs) raises a clear error when used, never silently misbehaves.
local ffi = {}

local buffer_types = { ["char[?]"] = true, ["uint8_t[?]"] = true, ["unsigned char[?]"] = true,
    ["int8_t[?]"] = true }

local buf_mt = {
    __name = "gl.ffi.buffer",
    __index = function(b, i)
        if math.type(i) == "integer" and i >= 0 and i < b.n then return 0 end
        return nil
    end,
    __newindex = function(b, i, v)
        if math.type(i) ~= "integer" or i < 0 or i >= rawget(b, "n") then
            error("gl ffi shim: buffer index out of range: " .. tostring(i), 2)
        end
        rawset(b, i, math.tointeger(v) & 0xff)
    end,
    __len = function(b) return b.n end,
}

local function unsupported(what)
    return function()
        error("gl ffi shim: " .. what .. " is not available (gl runs Lua 5.4, not LuaJIT)", 2)
    end
end

function ffi.typeof(ct)
    if type(ct) ~= "string" then unsupported("ffi.typeof of a non-string")() end
    return ct
end

function ffi.new(ct, n)
    ct = type(ct) == "string" and ct:gsub("%s+", " ") or ct
    if not buffer_types[ct] then unsupported("ffi.new(" .. tostring(ct) .. ")")() end
    n = math.tointeger(n)
    if not n or n < 0 then error("gl ffi shim: bad buffer size", 2) end
    return setmetatable({ n = n }, buf_mt)
end

function ffi.string(b, len)
    if type(b) == "string" then return len and b:sub(1, len) or b end
    if getmetatable(b) ~= buf_mt then unsupported("ffi.string of a C pointer")() end
    len = len or b.n
    local out, char = {}, string.char
    local i = 0
    while i < len do
        local j = math.min(len, i + 4096) - 1
        local chunk = {}
        for k = i, j do chunk[#chunk + 1] = rawget(b, k) or 0 end
        out[#out + 1] = char(table.unpack(chunk))
        i = j + 1
    end
    return table.concat(out)
end

function ffi.sizeof(b)
    if getmetatable(b) == buf_mt then return b.n end
    unsupported("ffi.sizeof")()
end

ffi.cdef = function() end -- declarations alone are harmless; using them is not
ffi.C = setmetatable({}, { __index = function(_, name) unsupported("ffi.C." .. tostring(name))() end })
ffi.cast = unsupported("ffi.cast")
ffi.gc = unsupported("ffi.gc")
ffi.copy = unsupported("ffi.copy")
ffi.fill = unsupported("ffi.fill")
ffi.load = unsupported("ffi.load")
ffi.metatype = unsupported("ffi.metatype")
ffi.null = setmetatable({}, { __name = "gl.ffi.null" })
ffi.os, ffi.arch = "Linux", "x64"
ffi.gl_shim = true

return ffi
