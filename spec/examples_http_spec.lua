-- The HTTP examples run for real, each as its own gl process, driven by curl, wrk-like
-- Python clients and (for the crawler) a gl server in this process.
local gl = require "gl"
local helper = require "helper"
local proc = require "proc"
local U = require "http_util"
local green = helper.green

local GL = proc.GL

describe("HTTP examples", function()
    it("wsgi_hello.lua answers hello world with keep-alive and logs each request", green(function()
        local h = proc.start(GL .. " examples/wsgi_hello.lua 0")
        local port = tonumber(proc.wait_for(h, "port (%d+)"))
        local url = ("http://127.0.0.1:%d/"):format(port)
        local rc, out, err = U.run(("curl -sv %s %s"):format(url, url))
        local res = assert(gl.http.get(url))
        -- the access log is flushed in batches: wait (bounded) for the three lines
        helper.wait_until(function()
            local _, lines = proc.output(h):gsub('"GET / HTTP/1.1" 200 14', "")
            return lines >= 3
        end, 3, 0.02)
        local log = proc.stop(h)
        gl.http.close_idle()
        assert.are.equal(0, rc)
        assert.are.equal("Hello, World!\nHello, World!\n", out)
        assert.matches("Re%-using existing connection", err)
        assert.are.equal("Hello, World!\n", res.body)
        local _, n = log:gsub('"GET / HTTP/1.1" 200 14', "")
        assert.are.equal(3, n)
    end, 15))

    it("webcrawler.lua fetches every URL through a GreenPool, in order", green(function()
        local srv, port = U.serve(function(req)
            local n = tonumber(req.path:match("%d+")) or 0
            gl.sleep(0.05 * (5 - n % 5)) -- later URLs answer sooner: order must still hold
            return 200, {}, ("x"):rep(n * 100)
        end)
        local urls = {}
        for i = 1, 8 do urls[i] = ("http://127.0.0.1:%d/%d"):format(port, i) end
        urls[#urls + 1] = ("http://127.0.0.1:%d/"):format(U.free_port()) -- nobody there
        local rc, out, err = U.run(GL .. " examples/webcrawler.lua " .. table.concat(urls, " "), 20)
        srv:stop(1)
        assert.are.equal(0, rc, err)
        local lines = {}
        for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
        assert.are.equal(9, #lines)
        for i = 1, 8 do
            assert.are.equal(("%s: %d bytes (status 200)"):format(urls[i], i * 100), lines[i])
        end
        assert.matches("failed: connection refused$", lines[9])
    end, 30))

    it("http_chat.lua: a long poll waits for the next message, or times out", green(function()
        local h = proc.start("env CHAT_POLL_TIMEOUT=0.5 " .. GL .. " examples/http_chat.lua 0")
        local port = tonumber(proc.wait_for(h, "port (%d+)"))
        local base = ("http://127.0.0.1:%d"):format(port)
        -- two pollers park before anything is sent
        local p1 = gl.spawn(gl.http.get, base .. "/poll?since=0")
        local p2 = gl.spawn(U.run, ("curl -s '%s/poll?since=0'"):format(base))
        gl.sleep(0.1)
        local sent = assert(gl.http.request(base .. "/send", { method = "POST", body = "hello all" }))
        assert.are.equal("1", sent.body)
        assert.are.equal("1\thello all\n", p1:wait().body)
        local rc, out = p2:wait()
        assert.are.equal(0, rc)
        assert.are.equal("1\thello all\n", out)
        -- nothing newer than 1: the poll times out empty
        local t0 = gl.clock()
        local empty = assert(gl.http.get(base .. "/poll?since=1"))
        assert.are.equal("", empty.body)
        assert.is_true(gl.clock() - t0 >= 0.4)
        -- catching up returns everything newer at once
        assert(gl.http.request(base .. "/send", { method = "POST", body = "second" }))
        assert.are.equal("1\thello all\n2\tsecond\n", assert(gl.http.get(base .. "/poll?since=0")).body)
        gl.http.close_idle()
        proc.stop(h)
    end, 15))
end)
