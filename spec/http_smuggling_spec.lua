-- Request smuggling (issue 14): every message two HTTP parsers could read differently is
-- rejected with 400 and the connection closed, as nginx does; the HTTP client rejects the
-- same in responses. Raw sockets on both sides, so the bytes are exactly these.
local gl = require "gl"
local helper = require "helper"
local U = require "http_util"
local green = helper.green

local function hello() return 200, { ["Content-Type"] = "text/plain" }, "hello\n" end

local H = "Host: x\r\n"
local requests = {
    cl_te = "POST / HTTP/1.1\r\n" .. H .. "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    te_cl = "POST / HTTP/1.1\r\n" .. H .. "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    two_lengths = "POST / HTTP/1.1\r\n" .. H .. "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    length_list = "POST / HTTP/1.1\r\n" .. H .. "Content-Length: 3, 4\r\n\r\nabcd",
    length_sign = "POST / HTTP/1.1\r\n" .. H .. "Content-Length: +3\r\n\r\nabc",
    length_hex = "POST / HTTP/1.1\r\n" .. H .. "Content-Length: 0x3\r\n\r\nabc",
    te_not_last = "POST / HTTP/1.1\r\n" .. H .. "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    te_twice = "POST / HTTP/1.1\r\n" .. H .. "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    te_in_10 = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    obs_fold = "GET / HTTP/1.1\r\n" .. H .. "X-A: 1\r\n  folded\r\n\r\n",
    bare_lf_line = "GET / HTTP/1.1\n" .. H .. "\r\n",
    bare_lf_header = "GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n",
    bare_cr = "GET / HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n",
    nul_in_name = "GET / HTTP/1.1\r\n" .. H .. "X-\0A: 1\r\n\r\n",
    nul_in_value = "GET / HTTP/1.1\r\n" .. H .. "X-A: 1\0 2\r\n\r\n",
    ctl_in_value = "GET / HTTP/1.1\r\n" .. H .. "X-A: 1\1 2\r\n\r\n",
    ctl_in_name = "GET / HTTP/1.1\r\n" .. H .. "X\tA: 1\r\n\r\n",
    space_before_colon = "GET / HTTP/1.1\r\n" .. H .. "Content-Length : 0\r\n\r\n",
    tab_before_colon = "GET / HTTP/1.1\r\n" .. H .. "Content-Length\t: 0\r\n\r\n",
    empty_name = "GET / HTTP/1.1\r\n" .. H .. ": x\r\n\r\n",
    two_hosts = "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    chunk_overflow = "POST / HTTP/1.1\r\n" .. H .. "Transfer-Encoding: chunked\r\n\r\n"
        .. "10000000000000001\r\nx\r\n0\r\n\r\n",
    chunk_size_sign = "POST / HTTP/1.1\r\n" .. H .. "Transfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n",
    chunk_bare_lf = "POST / HTTP/1.1\r\n" .. H .. "Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
    chunk_no_crlf = "POST / HTTP/1.1\r\n" .. H .. "Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
    huge_trailer = "POST / HTTP/1.1\r\n" .. H .. "Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: "
        .. ("t"):rep(100000) .. "\r\n\r\n",
    space_in_target = "GET /a b HTTP/1.1\r\n" .. H .. "\r\n",
    lowercase_version = "GET / http/1.1\r\n" .. H .. "\r\n",
}

-- the app reads the body, so errors found in it (chunked framing) are found too
local function reader(req)
    if req.method == "POST" then
        local body, err = req:body()
        if not body then error(err) end
    end
    return hello()
end

describe("request smuggling", function()
    it("rejects each ambiguous request with 400, closes, and goes on serving", green(function()
        local srv, port = U.serve(reader)
        local names = {}
        for name in pairs(requests) do names[#names + 1] = name end
        table.sort(names)
        for _, name in ipairs(names) do
            -- followed by a second request: a server that mis-framed the first would answer it
            local out = U.raw(port, requests[name] .. "GET /smuggled HTTP/1.1\r\n" .. H .. "\r\n")
            assert.is_string(out, name)
            assert.matches("^HTTP/1.1 400 ", out, name)
            assert.matches("Connection: close\r\n", out, name)
            local _, answers = out:gsub("HTTP/1.1 %d%d%d ", "")
            assert.are.equal(1, answers, name .. ": one answer, then the close")
        end
        assert.matches("^HTTP/1.1 200 ", U.raw(port, "GET / HTTP/1.1\r\n" .. H .. "Connection: close\r\n\r\n"))
        srv:stop(1)
    end, 20))

    local responses = {
        cl_te = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        two_lengths = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        length_list = "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd",
        obs_fold = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n  folded\r\n\r\nok",
        bare_lf = "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
        nul_in_value = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\0 2\r\n\r\nok",
        space_before_colon = "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
        chunk_overflow = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000001\r\nx\r\n0\r\n\r\n",
        huge_trailer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: "
            .. ("t"):rep(100000) .. "\r\n\r\n",
        bad_status = "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
    }

    it("makes the HTTP client reject the same in responses", green(function()
        local l = assert(gl.listen("127.0.0.1", 0))
        local _, port = l:getsockname()
        local answer
        local server = gl.spawn(function()
            while true do
                local ok, c = pcall(l.accept, l)
                if not ok or not c then return end
                c:read("l")
                c:sendall(answer)
                c:shutdown("w")
                c:settimeout(1)
                c:read("a")
                c:close()
            end
        end)
        for name, r in pairs(responses) do
            answer = r
            local res, err = gl.http.get(("http://127.0.0.1:%d/"):format(port), { timeout = 3 })
            assert.is_nil(res, name)
            assert.is_string(err, name)
        end
        l:close()
        server:wait()
    end, 20))
end)
