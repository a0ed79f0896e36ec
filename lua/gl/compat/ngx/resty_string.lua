-- lua-resty-string's Lua API without its FFI: resty.string (to_hex, atoi) and the digest
-- objects resty.md5, resty.sha1, resty.sha256, resty.sha512 (new, update,
-- final, reset; final also resets, so an object can hash again) on OpenSSL (src/digest.c).
-- gl.compat.ngx preloads these only where no real lua-resty-string is on package.path.
local core = require "gl.core"

local M = {}

M.string = { _VERSION = "gl" }
function M.string.to_hex(s)
    return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end
function M.string.atoi(s) return tonumber(s) end

local function digest_class(alg, size)
    local class = { _VERSION = "gl", digest_len = size }
    local mt = { __index = class, __name = "resty." .. alg }
    function class.new(_) return setmetatable({ parts = {} }, mt) end
    function class.update(self, s)
        if type(s) ~= "string" then return false end
        self.parts[#self.parts + 1] = s
        return true
    end
    function class.final(self)
        local d = core.digest(alg, table.concat(self.parts))
        self.parts = {}
        return d
    end
    function class.reset(self) self.parts = {}; return true end
    return class
end

M.md5 = digest_class("md5", 16)
M.sha1 = digest_class("sha1", 20)
M.sha256 = digest_class("sha256", 32)
M.sha512 = digest_class("sha512", 64)

return M
