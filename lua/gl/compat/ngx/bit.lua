-- The `bit` module (LuaBitOp, as LuaJIT ships it) on Lua 5.4 integers: every result is a
-- signed 32-bit number, shift counts are taken mod 32, tohex gives n hex digits (default
-- 8; a negative n gives upper case).
local floor, mtype, tointeger = math.floor, math.type, math.tointeger

local function tobit(x)
    if mtype(x) ~= "integer" then
        if type(x) ~= "number" then
            error(("bad argument #1 to 'tobit' (number expected, got %s)"):format(type(x)), 2)
        end
        x = tointeger(x) or floor(x + 0.5)
    end
    x = x & 0xffffffff
    if x >= 0x80000000 then x = x - 0x100000000 end
    return x
end

local function u32(x) return tobit(x) & 0xffffffff end

local bit = { tobit = tobit }

function bit.bnot(x) return tobit(~u32(x)) end

function bit.band(x, ...)
    local r = u32(x)
    for i = 1, select("#", ...) do r = r & u32((select(i, ...))) end
    return tobit(r)
end

function bit.bor(x, ...)
    local r = u32(x)
    for i = 1, select("#", ...) do r = r | u32((select(i, ...))) end
    return tobit(r)
end

function bit.bxor(x, ...)
    local r = u32(x)
    for i = 1, select("#", ...) do r = r ~ u32((select(i, ...))) end
    return tobit(r)
end

function bit.lshift(x, n) return tobit(u32(x) << (u32(n) & 31)) end
function bit.rshift(x, n) return tobit(u32(x) >> (u32(n) & 31)) end
function bit.arshift(x, n) return tobit(tobit(x) // (1 << (u32(n) & 31))) end

function bit.rol(x, n)
    n = u32(n) & 31
    x = u32(x)
    return tobit((x << n) | (x >> (32 - n)))
end

function bit.ror(x, n)
    n = u32(n) & 31
    x = u32(x)
    return tobit((x >> n) | (x << (32 - n)))
end

function bit.bswap(x)
    x = u32(x)
    return tobit(((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >> 8) & 0xff00) | (x >> 24))
end

function bit.tohex(x, n)
    n = n == nil and 8 or tobit(n)
    local fmt = "%0" .. (n < 0 and -n or n) .. (n < 0 and "X" or "x")
    if n < 0 then n = -n end
    if n > 8 then n = 8 end
    local v = u32(x)
    if n < 8 then v = v & ((1 << (4 * n)) - 1) end
    return fmt:format(v):sub(-n)
end

return bit
