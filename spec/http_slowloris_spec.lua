-- Slowloris (issue 14): clients that trickle a request head byte by byte are dropped at the
-- header timeout, however often a byte comes, while normal clients are served meanwhile.
local gl = require "gl"
local helper = require "helper"
local U = require "http_util"
local green = helper.green

describe("gl.http.server under slowloris", function()
    it("drops trickling clients at header_timeout and serves the others", green(function()
        local srv, port = U.serve(function() return 200, {}, "ok" end,
            { header_timeout = 1, socket_timeout = 10 })
        local head = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " .. ("s"):rep(200) .. "\r\n\r\n"
        local N = 300
        local dropped, answers = 0, {}
        local tricklers = {}
        for i = 1, N do
            tricklers[i] = gl.spawn(function()
                local c = assert(gl.connect("127.0.0.1", port))
                local t0 = gl.clock()
                for k = 1, #head do
                    -- each byte well within socket_timeout: only the head's deadline can stop it
                    if not c:sendall(head:sub(k, k)) then break end
                    gl.sleep(0.1)
                    if gl.clock() - t0 > 5 then break end
                end
                c:settimeout(3)
                local out = c:read("a") or ""
                c:close()
                answers[#answers + 1] = out:match("^HTTP/1.1 (%d+)") or "none"
                if gl.clock() - t0 < 3 then dropped = dropped + 1 end
            end)
        end
        gl.sleep(0.3) -- every trickler has begun its head
        -- meanwhile, normal clients get their answers
        for _ = 1, 50 do
            local out = U.raw(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 3)
            assert.matches("^HTTP/1.1 200 ", out)
        end
        for _, t in ipairs(tricklers) do t:wait() end
        assert.are.equal(N, dropped)
        for _, code in ipairs(answers) do assert.are.equal("408", code) end
        assert.is_true(helper.wait_until(function() return srv.nconns == 0 end, 3, 0.01))
        srv:stop(1)
    end, 20))

    it("closes a client silent mid-head at socket_timeout without a bogus answer", green(function()
        local srv, port = U.serve(function() return 200, {}, "ok" end,
            { header_timeout = 30, socket_timeout = 0.2 })
        local out = U.raw(port, "GET / HTTP/1.1\r\nHo", 3)
        assert.are.equal("", out)
        srv:stop(1)
    end))
end)
