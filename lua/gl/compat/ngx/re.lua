-- ngx.re for gl.compat.ngx: match, find, gmatch, sub, gsub with lua-nginx-module's
-- results and error strings, on the PCRE2 binding in src/ngx_re.c. Positions are 1-based
-- and inclusive as in OpenResty; ctx.pos is where the next search starts. The "o" option
-- caches the compiled pattern (up to 1024 of them, lua_regex_cache_max_entries' default).
local core = require "gl.core"

local compile, exec, caps = core.re_compile, core.re_exec, core.re_caps
local tostring, type, sub, find = tostring, type, string.sub, string.find

local re = {}

local MAX_CACHE = 1024
local cache, cached = {}, 0

local valid = {}
for c in ("imsxuUaDJdjo"):gmatch(".") do valid[c] = true end

-- [compiled, err]; raises on an unknown option letter, as OpenResty does
local function get(regex, opts, level)
    if type(regex) ~= "string" then
        error(("bad argument #2 (string expected, got %s)"):format(type(regex)), level + 1)
    end
    opts = opts or ""
    if type(opts) ~= "string" then
        error(("bad argument #3 (string expected, got %s)"):format(type(opts)), level + 1)
    end
    for i = 1, #opts do
        local c = sub(opts, i, i)
        if not valid[c] then error(('unknown flag "%s" (flags "%s")'):format(c, opts), level + 1) end
    end
    local once = find(opts, "o", 1, true)
    local key
    if once then
        key = regex .. "\0" .. opts
        local r = cache[key]
        if r then return r end
    end
    local r, err = compile(regex, opts)
    if not r then return nil, err end
    if once and cached < MAX_CACHE then
        cache[key] = r
        cached = cached + 1
    end
    return r
end

local function start_of(ctx)
    if not ctx then return 0 end
    local pos = ctx.pos
    if not pos or pos <= 0 then return 0 end
    return pos - 1
end

-- ngx.re.match(subject, regex, options?, ctx?, res_table?) -> captures | nil | nil, err
function re.match(subj, regex, opts, ctx, res)
    subj = tostring(subj)
    local r, err = get(regex, opts, 2)
    if not r then return nil, err end
    local from, to = exec(r, subj, start_of(ctx))
    if not from then return nil, to end
    if ctx then ctx.pos = to + 1 end
    return caps(r, subj, res)
end

-- ngx.re.find(subject, regex, options?, ctx?, nth?) -> from, to | nil | nil, nil, err
function re.find(subj, regex, opts, ctx, nth)
    subj = tostring(subj)
    local r, err = get(regex, opts, 2)
    if not r then return nil, nil, err end
    local from, to = exec(r, subj, start_of(ctx))
    if not from then return nil, nil, to end
    if ctx then ctx.pos = to + 1 end
    if not nth or nth == 0 then return from + 1, to end
    return caps(r, subj, nth)
end

-- ngx.re.gmatch(subject, regex, options?) -> iterator | nil, err; the iterator returns
-- each match's captures, then nil (or nil, err)
function re.gmatch(subj, regex, opts)
    subj = tostring(subj)
    local r, err = get(regex, opts, 2)
    if not r then return nil, err end
    local pos, len = 0, #subj
    return function()
        if not pos then return nil end
        local from, to = exec(r, subj, pos)
        if not from then
            pos = nil
            return nil, to
        end
        local res = caps(r, subj)
        if to == from then
            to = to + 1 -- an empty match: step one byte on
            if to > len then pos = nil; return res end
        end
        pos = to
        return res
    end
end

-- a replacement template: "$0", "$1", "${12}", "$$" -> list of literals and numbers
local function template(s)
    local parts, i, n = {}, 1, #s
    local lit = {}
    while i <= n do
        local c = sub(s, i, i)
        if c ~= "$" then
            local j = find(s, "$", i, true) or n + 1
            lit[#lit + 1] = sub(s, i, j - 1)
            i = j
        else
            local nx = sub(s, i + 1, i + 1)
            if nx == "$" then
                lit[#lit + 1] = "$"; i = i + 2
            elseif nx == "{" then
                local d, j = s:match("^(%d+)}()", i + 2)
                if not d then return nil end
                if #lit > 0 then parts[#parts + 1] = table.concat(lit); lit = {} end
                parts[#parts + 1] = tonumber(d); i = j
            else
                local d, j = s:match("^(%d+)()", i + 1)
                if not d then return nil end
                if #lit > 0 then parts[#parts + 1] = table.concat(lit); lit = {} end
                parts[#parts + 1] = tonumber(d); i = j
            end
        end
    end
    if #lit > 0 then parts[#parts + 1] = table.concat(lit) end
    return parts
end

local function sub_helper(subj, regex, replace, opts, global)
    subj = tostring(subj)
    local r, err = get(regex, opts, 3)
    if not r then return nil, nil, err end
    local fn, parts
    if type(replace) == "function" then
        fn = replace
    else
        replace = tostring(replace)
        parts = template(replace)
        if not parts then return nil, nil, "failed to compile the replacement template" end
    end
    local out, count, pos, cp, len = {}, 0, 0, 0, #subj
    while true do
        local from, to = exec(r, subj, pos)
        if not from then
            if to then return nil, nil, to end
            break
        end
        count = count + 1
        out[#out + 1] = sub(subj, cp + 1, from)
        local m = caps(r, subj)
        if fn then
            out[#out + 1] = tostring(fn(m))
        else
            for k = 1, #parts do
                local p = parts[k]
                if type(p) == "number" then
                    local v = m[p]
                    if v then out[#out + 1] = v end
                else
                    out[#out + 1] = p
                end
            end
        end
        cp, pos = to, to
        if to == from then
            pos = pos + 1
            if pos > len then break end
        end
        if not global then break end
    end
    if count == 0 then return subj, 0 end
    out[#out + 1] = sub(subj, cp + 1)
    return table.concat(out), count
end

-- ngx.re.sub(subject, regex, replace, options?) -> newstr, n | nil, nil, err
function re.sub(subj, regex, replace, opts) return sub_helper(subj, regex, replace, opts, false) end
-- ngx.re.gsub(subject, regex, replace, options?) -> newstr, n | nil, nil, err
function re.gsub(subj, regex, replace, opts) return sub_helper(subj, regex, replace, opts, true) end

return re
