-- gl.Event: a one-shot result many green threads can wait for.
local core = require "gl.core"

local Event = {}
Event.__index = Event
Event.__name = "gl.Event"

local function new()
    return setmetatable({ _waiters = core.waitq(), _result = nil }, Event)
end

function Event:ready()
    return self._result ~= nil
end

function Event:has_error()
    return self._result ~= nil and self._result.error ~= nil
end

local function deliver(r)
    if r.error ~= nil then error(r.error, 0) end
    return table.unpack(r, 1, r.n)
end

-- Event:wait([timeout]) -> the values sent (raises an error sent with send_error;
-- returns nothing on timeout). In C: a blocked waiter keeps no Lua frame.
Event.wait = core.event_wait

-- The result record goes to every waiter with its wake-up, so a reset() right after
-- send() cannot take it away from threads that were already waiting.
local function fire(self, r)
    if self._result then error("Event: already sent (call reset() first)", 3) end
    self._result = r
    self._waiters:wake_all(r)
end

function Event:send(...)
    fire(self, table.pack(...))
end

function Event:send_error(e)
    fire(self, { n = 0, error = e == nil and "gl.Event error" or e })
end

function Event:reset()
    self._result = nil
end

return { Event = new }
