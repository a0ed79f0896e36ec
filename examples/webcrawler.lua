-- The Eventlet web crawler, in gl: fetch every URL given on the command line at once
-- through a GreenPool, printing each body's size in input order.
-- usage: gl examples/webcrawler.lua URL...
local gl = require "gl"

local urls = { ... }
if #urls == 0 then
    urls = { "http://www.google.com/intl/en_ALL/images/logo.gif",
             "https://www.python.org/static/img/python-logo.png",
             "http://us.i1.yimg.com/us.yimg.com/i/ww/beta/y3.gif" }
end

local function fetch(url)
    local res, err = gl.http.get(url, { timeout = 10 })
    if not res then return url, nil, err end
    return url, #res.body, res.status
end

local pool = gl.GreenPool(200)
for url, size, status in pool:imap(fetch, urls) do
    if size then
        print(("%s: %d bytes (status %d)"):format(url, size, status))
    else
        print(("%s: failed: %s"):format(url, status))
    end
end
