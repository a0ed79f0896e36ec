-- wrk script for bench/run's http "pipelined" case: each write carries 16
-- GET / requests back to back (HTTP/1.1 pipelining); wrk counts every
-- response, so Requests/sec is responses per second.
local DEPTH = 16

init = function(_args)
  local r = {}
  for i = 1, DEPTH do r[i] = wrk.format("GET", "/") end
  req = table.concat(r)
end

request = function()
  return req
end
