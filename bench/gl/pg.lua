-- bench/pg's gl side: N `SELECT $1::int` from T green threads through a pool of P.
-- usage: gl bench/gl/pg.lua CONNINFO [N=10000] [T=50] [P=4]
local gl = require "gl"
local pg = require "gl.pg"

local conninfo = assert(arg[1], "usage: pg.lua CONNINFO [N] [T] [P]")
local n, threads, size = tonumber(arg[2] or 10000), tonumber(arg[3] or 50), tonumber(arg[4] or 4)
local pool = pg.pool(conninfo, { max_size = size, prepare = os.getenv("GL_PG_PREPARE") ~= "0" })
assert(pool:query("select 1")) -- one connection up before the clock starts

local next_i, gts = 0, {}
local t0 = gl.clock()
for t = 1, threads do
    gts[t] = gl.spawn(function()
        while next_i < n do
            next_i = next_i + 1
            local i = next_i
            local rows = assert(pool:query("select $1::int as v", i))
            assert(rows[1].v == i)
        end
    end)
end
for t = 1, threads do gts[t]:wait() end
local dt = gl.clock() - t0
print(("gl.pg: %d queries, %d green threads, pool %d: %.3f s, %.0f queries/s"):format(
    n, threads, size, dt, n / dt))
pool:close()
