-- Micro benchmarks on cqueues: the same four phases as bench/gl/micro.lua.
-- cqueues has coroutines (cq:wrap), condition variables and cqueues.sleep,
-- but no thread handle, queue or event: the thin ones below are built on
-- cqueues.condition, as an application on cqueues would build them.
-- usage: lua5.4 micro_cqueues.lua [N_SPAWN] [N_SWITCH] [N_MEM] [PHASE]
-- PHASE and the GC treatment as in bench/gl/micro.lua.
local cqueues = require "cqueues"
local condition = require "cqueues.condition"

local N_SPAWN = tonumber(arg[1]) or 100000
local N_SWITCH = tonumber(arg[2]) or 1000000
local N_MEM = tonumber(arg[3]) or 100000
local PHASE = arg[4] or "all"

local cq = cqueues.new()

-- thread handle: the condition is made only if someone waits before the end
local Thread = {}
Thread.__index = Thread
local function spawn(fn, ...)
  local th = setmetatable({ done = false }, Thread)
  local n, args = select("#", ...), { ... }
  cq:wrap(function()
    th.result = fn(table.unpack(args, 1, n))
    th.done = true
    if th.cv then th.cv:signal() end
  end)
  return th
end
function Thread:wait()
  while not self.done do
    if not self.cv then self.cv = condition.new() end
    self.cv:wait()
  end
  return self.result
end

local Queue = {}
Queue.__index = Queue
local function new_queue(size)
  return setmetatable({ size = size, items = {}, h = 1, t = 0,
                        not_empty = condition.new(), not_full = condition.new() }, Queue)
end
function Queue:put(v)
  while self.t - self.h + 1 >= self.size do self.not_full:wait() end
  self.t = self.t + 1
  self.items[self.t] = v
  self.not_empty:signal(1)
end
function Queue:get()
  while self.t < self.h do self.not_empty:wait() end
  local v = self.items[self.h]
  self.items[self.h] = nil
  self.h = self.h + 1
  self.not_full:signal(1)
  return v
end

local function new_event()
  local ev = { fired = false, cv = condition.new() }
  function ev:send(v) self.fired, self.value = true, v; self.cv:signal() end
  function ev:wait()
    while not self.fired do self.cv:wait() end
    return self.value
  end
  return ev
end

local function sleep0() cqueues.sleep(0) end

local function rss_bytes()
  local f = io.open("/proc/self/status")
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)")) * 1024
end

local clock = os.clock

-- CPU seconds of work() plus the full collection of what it left behind
local function timed(work)
  collectgarbage(); collectgarbage()
  local t0 = clock()
  work()
  collectgarbage()
  return clock() - t0
end

local function main()
  local all = PHASE == "all"
  if all or PHASE == "memory" then   -- bytes per blocked thread
    local ev, started = new_event(), 0
    local function blocked() started = started + 1; ev:wait() end
    collectgarbage(); collectgarbage()
    local before = rss_bytes()
    local threads = {}
    for i = 1, N_MEM do threads[i] = spawn(blocked) end
    while started < N_MEM do sleep0() end
    collectgarbage(); collectgarbage()
    local after = rss_bytes()
    ev:send(true)
    for i = 1, N_MEM do threads[i]:wait() end
    print("bytes_per_blocked", string.format("%.0f", (after - before) / N_MEM))
  end

  if all or PHASE == "spawn" then   -- spawn + wait
    local function trivial() end
    local t = timed(function()
      local threads = {}
      for i = 1, N_SPAWN do threads[i] = spawn(trivial) end
      for i = 1, N_SPAWN do threads[i]:wait() end
    end)
    print("spawn_wait_s", string.format("%.4f", t))
  end

  if all or PHASE == "handoff" then   -- hand-offs through two queues of size 1
    local ping, pong = new_queue(1), new_queue(1)
    local rounds = N_SWITCH // 2
    local t = timed(function()
      local a = spawn(function() for i = 1, rounds do ping:put(i); pong:get() end end)
      local b = spawn(function() for _ = 1, rounds do pong:put(ping:get()) end end)
      a:wait(); b:wait()
    end)
    print("handoffs_per_s", string.format("%.0f", N_SWITCH / t))
  end

  if all or PHASE == "yield" then   -- sleep(0) yields over two threads
    local function yielder(k) for _ = 1, k do sleep0() end end
    local t = timed(function()
      local a, b = spawn(yielder, N_SWITCH // 2), spawn(yielder, N_SWITCH - N_SWITCH // 2)
      a:wait(); b:wait()
    end)
    print("yields_per_s", string.format("%.0f", N_SWITCH / t))
  end
  print("n_spawn", N_SPAWN)
  print("n_switch", N_SWITCH)
  print("n_mem", N_MEM)
end

cq:wrap(main)
local ok, err = cq:loop()
if not ok then io.stderr:write(tostring(err), "\n"); os.exit(1) end
