-- Green threads in a few lines: three workers share a queue, the main thread waits.
local gl = require "gl"

local jobs = gl.Queue()
local pool = gl.GreenPool(3)
for worker = 1, 3 do
    pool:spawn(function()
        while true do
            local job = jobs:get()
            if job == nil then return end
            gl.sleep(0.01 * job)
            print(("worker %d finished job %d"):format(worker, job))
        end
    end)
end
for job = 1, 6 do jobs:put(job) end
for _ = 1, 3 do jobs:put(nil) end
pool:waitall()
print("all done")
