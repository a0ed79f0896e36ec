-- Micro benchmarks on bare Lua 5.4 coroutines with the smallest scheduler
-- that offers what bench/gl/micro.lua uses: spawn -> thread with :wait(),
-- bounded Queue(n) with :put/:get, Event with :send/:wait, sleep(0).
-- No I/O, no timers, no error handling beyond propagating: this is the floor
-- a green-thread runtime for Lua is measured against.
-- usage: lua5.4 micro_coroutine.lua [N_SPAWN] [N_SWITCH] [N_MEM] [PHASE]
-- prints `key value` lines (see bench/README.md); PHASE and the GC
-- treatment as in bench/gl/micro.lua.
local N_SPAWN = tonumber(arg[1]) or 100000
local N_SWITCH = tonumber(arg[2]) or 1000000
local N_MEM = tonumber(arg[3]) or 100000
local PHASE = arg[4] or "all"

local co_create, co_resume, co_yield, co_running =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.running

---------------------------------------------------------------- scheduler
-- run queue: a FIFO of coroutines, as a table with two cursors
local ready, first, last = {}, 1, 0
local function wake(co) last = last + 1; ready[last] = co end

local Thread = {}
Thread.__index = Thread

local function finish(th, result)
  th.result, th.done = result, true
  local j = th.joiners
  if j then for i = 1, #j do wake(j[i]) end end
end

local function spawn(fn, ...)
  local th = setmetatable({ done = false }, Thread)
  local co
  if select("#", ...) == 0 then
    co = co_create(function() finish(th, fn()) end)
  else
    local n, args = select("#", ...), { ... }
    co = co_create(function() finish(th, fn(table.unpack(args, 1, n))) end)
  end
  wake(co)
  return th
end

function Thread:wait()
  while not self.done do
    local j = self.joiners
    if not j then j = {}; self.joiners = j end
    j[#j + 1] = co_running()
    co_yield()
  end
  return self.result
end

local function sleep0()
  wake(co_running())
  co_yield()
end

local function loop()
  while first <= last do
    local co = ready[first]
    ready[first] = nil
    first = first + 1
    if first > last then first, last = 1, 0 end  -- empty: rewind, keep indices small
    local ok, err = co_resume(co)
    if not ok then error(err, 0) end
  end
end

-- bounded FIFO queue with waiting getters and putters
local Queue = {}
Queue.__index = Queue
local function new_queue(size)
  return setmetatable({ size = size, items = {}, h = 1, t = 0, getters = {}, putters = {} }, Queue)
end
local function pop_waiter(list)
  local co = list[1]
  if co then table.remove(list, 1) end
  return co
end
function Queue:put(v)
  while self.t - self.h + 1 >= self.size do
    self.putters[#self.putters + 1] = co_running()
    co_yield()
  end
  self.t = self.t + 1
  self.items[self.t] = v
  local g = pop_waiter(self.getters)
  if g then wake(g) end
end
function Queue:get()
  while self.t < self.h do
    self.getters[#self.getters + 1] = co_running()
    co_yield()
  end
  local v = self.items[self.h]
  self.items[self.h] = nil
  self.h = self.h + 1
  local p = pop_waiter(self.putters)
  if p then wake(p) end
  return v
end

local Event = {}
Event.__index = Event
local function new_event() return setmetatable({ waiters = {}, fired = false }, Event) end
function Event:wait()
  if not self.fired then
    self.waiters[#self.waiters + 1] = co_running()
    co_yield()
  end
  return self.value
end
function Event:send(v)
  self.fired, self.value = true, v
  local w = self.waiters
  self.waiters = {}
  for i = 1, #w do wake(w[i]) end
end

---------------------------------------------------------------- benchmarks
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

local function bench_memory(n)
  local ev, started = new_event(), 0
  local function blocked() started = started + 1; ev:wait() end
  collectgarbage(); collectgarbage()
  local before = rss_bytes()
  local threads = {}
  for i = 1, n do threads[i] = spawn(blocked) end
  while started < n do sleep0() end
  collectgarbage(); collectgarbage()
  local after = rss_bytes()
  ev:send(true)
  for i = 1, n do threads[i]:wait() end
  return (after - before) / n
end

local function bench_spawn(n)
  local function trivial() end
  return timed(function()
    local threads = {}
    for i = 1, n do threads[i] = spawn(trivial) end
    for i = 1, n do threads[i]:wait() end
  end)
end

local function bench_handoff(n)
  local ping, pong = new_queue(1), new_queue(1)
  local rounds = n // 2
  return timed(function()
    local a = spawn(function()
      for i = 1, rounds do ping:put(i); pong:get() end
    end)
    local b = spawn(function()
      for _ = 1, rounds do pong:put(ping:get()) end
    end)
    a:wait(); b:wait()
  end)
end

local function bench_yield(n)
  local function yielder(k) for _ = 1, k do sleep0() end end
  return timed(function()
    local a, b = spawn(yielder, n // 2), spawn(yielder, n - n // 2)
    a:wait(); b:wait()
  end)
end

local function main()
  local all = PHASE == "all"
  -- memory first, before other phases leave freed heap behind
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
end

spawn(main)
loop()
