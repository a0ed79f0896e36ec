-- gl micro benchmarks (bench/run's micro suite).  The same four phases and
-- `key value` output as bench/peers/micro_coroutine.lua, micro_cqueues.lua
-- and micro_green.py.  Times are process CPU time (os.clock).  The script
-- runs as gl's main green thread, so it may block in :wait(), :get() etc.
-- usage: build/gl bench/gl/micro.lua [N_SPAWN] [N_SWITCH] [N_MEM] [PHASE]
-- PHASE: memory, spawn, handoff, yield or all (the default); bench/run runs
-- each phase in a fresh process.  GC treatment is the same in every peer:
-- a full collection before a timed phase (not timed), then the timed work
-- and a full collection of the garbage that work made (timed).
local gl = require "gl"

local N_SPAWN = tonumber(arg[1]) or 100000
local N_SWITCH = tonumber(arg[2]) or 1000000
local N_MEM = tonumber(arg[3]) or 100000
local PHASE = arg[4] or "all"
local clock = os.clock

-- CPU seconds of work() plus the full collection of what it left behind
local function timed(work)
  collectgarbage(); collectgarbage()
  local t0 = clock()
  work()
  collectgarbage()
  return clock() - t0
end

local function rss_bytes()
  local f = io.open("/proc/self/status")
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)")) * 1024
end

-- bytes of RSS per green thread blocked on one Event (measured first, before
-- the other phases leave freed heap behind that would absorb the growth)
local function bench_memory(n)
  local ev, started = gl.Event(), 0
  local function blocked() started = started + 1; ev:wait() end
  collectgarbage(); collectgarbage()
  local before = rss_bytes()
  local threads = {}
  for i = 1, n do threads[i] = gl.spawn(blocked) end
  local spins = 0
  while started < n do          -- let every thread run up to its ev:wait()
    gl.sleep(0)
    spins = spins + 1
    if spins > 1000000 then error("spawned threads do not start") end
  end
  collectgarbage(); collectgarbage()
  local after = rss_bytes()
  ev:send(true)
  for i = 1, n do threads[i]:wait() end
  return (after - before) / n
end

-- spawn N trivial threads, then wait for each
local function bench_spawn(n)
  local function trivial() end
  return timed(function()
    local threads = {}
    for i = 1, n do threads[i] = gl.spawn(trivial) end
    for i = 1, n do threads[i]:wait() end
  end)
end

-- n one-way hand-offs between two threads through two queues of size 1
local function bench_handoff(n)
  local ping, pong = gl.Queue(1), gl.Queue(1)
  local rounds = n // 2
  return timed(function()
    local a = gl.spawn(function() for i = 1, rounds do ping:put(i); pong:get() end end)
    local b = gl.spawn(function() for _ = 1, rounds do pong:put(ping:get()) end end)
    a:wait(); b:wait()
  end)
end

-- n sleep(0) yields, split over two threads so that each yield switches
local function bench_yield(n)
  local function yielder(k) for _ = 1, k do gl.sleep(0) end end
  return timed(function()
    local a, b = gl.spawn(yielder, n // 2), gl.spawn(yielder, n - n // 2)
    a:wait(); b:wait()
  end)
end

local all = PHASE == "all"
if all or PHASE == "memory" then
  print("bytes_per_blocked", string.format("%.0f", bench_memory(N_MEM)))
end
if all or PHASE == "spawn" then
  print("spawn_wait_s", string.format("%.4f", bench_spawn(N_SPAWN)))
end
if all or PHASE == "handoff" then
  print("handoffs_per_s", string.format("%.0f", N_SWITCH / bench_handoff(N_SWITCH)))
end
if all or PHASE == "yield" then
  print("yields_per_s", string.format("%.0f", N_SWITCH / bench_yield(N_SWITCH)))
end
print("n_spawn", N_SPAWN)
print("n_switch", N_SWITCH)
print("n_mem", N_MEM)
