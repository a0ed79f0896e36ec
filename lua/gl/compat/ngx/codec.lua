-- gl.compat.ngx's encodings: base64, the OpenSSL digests (src/digest.c), crc32, URI escaping
-- and query args, as lua-nginx-module has them. Called with the ngx table to fill.
local core = require "gl.core"

return function(ngx)

    -- base64
    local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    local b64rev = {}
    for i = 1, 64 do b64rev[b64:byte(i)] = i - 1 end
    function ngx.encode_base64(s, no_padding)
        if type(s) ~= "string" then s = s == nil and "" or tostring(s) end
        local out = {}
        for i = 1, #s, 3 do
            local a, b, c = s:byte(i, i + 2)
            local n = (a << 16) | ((b or 0) << 8) | (c or 0)
            local q = {
                b64:sub((n >> 18) + 1, (n >> 18) + 1), b64:sub(((n >> 12) & 63) + 1, ((n >> 12) & 63) + 1),
                b and b64:sub(((n >> 6) & 63) + 1, ((n >> 6) & 63) + 1) or (no_padding and "" or "="),
                c and b64:sub((n & 63) + 1, (n & 63) + 1) or (no_padding and "" or "="),
            }
            out[#out + 1] = table.concat(q)
        end
        return table.concat(out)
    end
    function ngx.decode_base64(s)
        if type(s) ~= "string" then error("string argument only", 2) end
        s = s:gsub("=+$", "")
        if #s % 4 == 1 then return nil end
        local out, bits, nbits = {}, 0, 0
        for i = 1, #s do
            local v = b64rev[s:byte(i)]
            if not v then return nil end
            bits = (bits << 6) | v
            nbits = nbits + 6
            if nbits >= 8 then
                nbits = nbits - 8
                out[#out + 1] = string.char((bits >> nbits) & 255)
            end
        end
        return table.concat(out)
    end

    -- digests (OpenSSL, src/digest.c)
    local digest, hmac = core.digest, core.hmac
    local function tohex(b) return (b:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
    local function str_arg(s, name)
        if type(s) == "string" then return s end
        if s == nil then return "" end
        if type(s) == "number" then return tostring(s) end
        error(("bad argument #1 to '%s' (string expected, got %s)"):format(name, type(s)), 3)
    end
    function ngx.md5_bin(s) return digest("md5", str_arg(s, "md5_bin")) end
    function ngx.md5(s) return tohex(digest("md5", str_arg(s, "md5"))) end
    function ngx.sha1_bin(s) return digest("sha1", str_arg(s, "sha1_bin")) end
    function ngx.hmac_sha1(key, s) return hmac("sha1", str_arg(key, "hmac_sha1"), str_arg(s, "hmac_sha1")) end

    local crc_table = {}
    for i = 0, 255 do
        local c = i
        for _ = 1, 8 do c = (c & 1 == 1) and (0xEDB88320 ~ (c >> 1)) or (c >> 1) end
        crc_table[i] = c
    end
    function ngx.crc32_long(s)
        s = str_arg(s, "crc32_long")
        local c = 0xffffffff
        for i = 1, #s do c = crc_table[(c ~ s:byte(i)) & 0xff] ~ (c >> 8) end
        return c ~ 0xffffffff
    end
    ngx.crc32_short = ngx.crc32_long

    -- URI escaping as nginx's component escaping: all but A-Z a-z 0-9 - . _ ~ becomes %XX
    function ngx.escape_uri(s)
        s = str_arg(s, "escape_uri")
        return (s:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
    end
    function ngx.unescape_uri(s)
        s = str_arg(s, "unescape_uri")
        return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
    end

    -- ngx.encode_args(t): "k=v&k2" (true -> the bare key, false left out, lists repeat the key)
    function ngx.encode_args(t)
        if type(t) ~= "table" then error("bad argument #1 to 'encode_args' (table expected)", 2) end
        local out = {}
        local function one(k, v)
            if v == true then out[#out + 1] = ngx.escape_uri(k)
            elseif v ~= false then out[#out + 1] = ngx.escape_uri(k) .. "=" .. ngx.escape_uri(tostring(v)) end
        end
        for k, v in pairs(t) do
            k = tostring(k)
            if type(v) == "table" then
                for _, item in ipairs(v) do one(k, item) end
            else
                one(k, v)
            end
        end
        return table.concat(out, "&")
    end

    -- ngx.decode_args(s [, max_args = 100]) -> table (repeated keys become lists)
    function ngx.decode_args(s, max)
        s = str_arg(s, "decode_args")
        max = max or 100
        local t, n = {}, 0
        for part in s:gmatch("[^&]+") do
            if max > 0 and n >= max then break end
            n = n + 1
            local k, v = part:match("^([^=]*)=(.*)$")
            if k then v = ngx.unescape_uri(v) else k, v = part, true end
            k = ngx.unescape_uri(k)
            local old = t[k]
            if old == nil then t[k] = v
            elseif type(old) == "table" then old[#old + 1] = v
            else t[k] = { old, v } end
        end
        return t
    end

end
