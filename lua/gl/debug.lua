-- gl.debug: what the hub and its green threads are doing.
local core = require "gl.core"

local M = {}

-- A list of {id, status, traceback} for every live green thread.
function M.threads()
    local out = {}
    for _, gt in ipairs(core.threads()) do
        if not gt:dead() then
            out[#out + 1] = { id = gt.id, status = gt:status(), traceback = core.traceback(gt) }
        end
    end
    return out
end

return M
