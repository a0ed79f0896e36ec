-- Micro benchmarks on the smallest bare-Lua scheduler that runs the four
-- phases: the 30 lines between the rulers.  Threads are waited on by one
-- waiter, queues hold one item and one waiting putter and getter, nothing
-- is checked.  What a hand-written scheduler for exactly this job costs:
-- the floor for queue hand-offs (issue 10 asks gl for 1.2x its rate).
-- usage: lua5.4 micro_sched30.lua [N_SPAWN] [N_SWITCH] [N_MEM] [PHASE]
-- PHASE and the GC treatment as in bench/gl/micro.lua.
local N_SPAWN = tonumber(arg[1]) or 100000
local N_SWITCH = tonumber(arg[2]) or 1000000
local N_MEM = tonumber(arg[3]) or 100000
local PHASE = arg[4] or "all"

---------------------------------------------------------------- scheduler
local create, resume, yield, running = coroutine.create, coroutine.resume, coroutine.yield, coroutine.running
local ready, head, tail = {}, 1, 0
local function wake(co) tail = tail + 1; ready[tail] = co end
local function loop()
  while head <= tail do
    local co = ready[head]; ready[head] = nil; head = head + 1
    if head > tail then head, tail = 1, 0 end
    local ok, err = resume(co); if not ok then error(err, 0) end
  end
end
local function spawn(fn, a)
  local th = {}
  wake(create(function() fn(a); th.done = true; if th.waiter then wake(th.waiter) end end))
  return th
end
local function wait(th) if not th.done then th.waiter = running(); yield() end end
local function sleep0() wake(running()); yield() end
local function put(q, v)
  if q.full then q.putter = running(); yield() end
  q.v, q.full = v, true
  local g = q.getter; if g then q.getter = nil; wake(g) end
end
local function get(q)
  if not q.full then q.getter = running(); yield() end
  local v = q.v; q.v, q.full = nil, false
  local p = q.putter; if p then q.putter = nil; wake(p) end
  return v
end
local function send(ev) ev.fired = true; for i = 1, #ev do wake(ev[i]); ev[i] = nil end end
local function ewait(ev) if not ev.fired then ev[#ev + 1] = running(); yield() end end
----------------------------------------------------------------

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
  if all or PHASE == "memory" then
    local ev, started = {}, 0
    local function blocked() started = started + 1; ewait(ev) end
    collectgarbage(); collectgarbage()
    local before = rss_bytes()
    local threads = {}
    for i = 1, N_MEM do threads[i] = spawn(blocked) end
    while started < N_MEM do sleep0() end
    collectgarbage(); collectgarbage()
    local after = rss_bytes()
    send(ev)
    for i = 1, N_MEM do wait(threads[i]) end
    print("bytes_per_blocked", string.format("%.0f", (after - before) / N_MEM))
  end
  if all or PHASE == "spawn" then
    local function trivial() end
    print("spawn_wait_s", string.format("%.4f", timed(function()
      local threads = {}
      for i = 1, N_SPAWN do threads[i] = spawn(trivial) end
      for i = 1, N_SPAWN do wait(threads[i]) end
    end)))
  end
  if all or PHASE == "handoff" then
    local ping, pong, rounds = {}, {}, N_SWITCH // 2
    print("handoffs_per_s", string.format("%.0f", N_SWITCH / timed(function()
      local a = spawn(function() for i = 1, rounds do put(ping, i); get(pong) end end)
      local b = spawn(function() for _ = 1, rounds do put(pong, get(ping)) end end)
      wait(a); wait(b)
    end)))
  end
  if all or PHASE == "yield" then
    local function yielder(k) for _ = 1, k do sleep0() end end
    print("yields_per_s", string.format("%.0f", N_SWITCH / timed(function()
      local a, b = spawn(yielder, N_SWITCH // 2), spawn(yielder, N_SWITCH - N_SWITCH // 2)
      wait(a); wait(b)
    end)))
  end
  print("n_spawn", N_SPAWN)
  print("n_switch", N_SWITCH)
  print("n_mem", N_MEM)
end

spawn(main)
loop()
