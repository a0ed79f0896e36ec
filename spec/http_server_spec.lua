-- gl.http.server (API.md section 8) against real clients: curl, Python's http.client and
-- raw sockets for malformed input.
local gl = require "gl"
local helper = require "helper"
local U = require "http_util"
local green = helper.green

local function hello(req)
    return 200, { ["Content-Type"] = "text/plain" }, "Hello, World!\n"
end

local sleeping = 0 -- requests that entered /sleep
local function echo_app(req)
    if req.path == "/echo" then
        local body = assert(req:body())
        return 200, { ["Content-Type"] = "text/plain", ["X-Len"] = #body }, body
    elseif req.path == "/info" then
        return 200, {}, table.concat({ req.method, req.target, req.path, req.query, req.version,
            req.headers["X-Test"] or "-", req.headers.host or "-", req.remote_addr,
            tostring(req.remote_port), req.scheme }, "|")
    elseif req.path == "/stream" then
        local i = 0
        return 200, { ["Content-Type"] = "text/plain" }, function()
            i = i + 1
            if i <= 3 then return "part" .. i .. "\n" end
        end
    elseif req.path == "/list" then
        return 201, { ["Set-Cookie"] = { "a=1", "b=2" } }, { "x", "y", "z" }
    elseif req.path == "/error" then
        error("app exploded")
    elseif req.path == "/sleep" then
        sleeping = sleeping + 1
        gl.sleep(0.2)
        return 200, {}, "slept"
    end
    return 404, {}, "not found\n"
end

describe("gl.http.server", function()
    it("says clearly when it is given no listening socket", green(function()
        local busy = assert(gl.listen("127.0.0.1", 0))
        local _, port = busy:getsockname()
        local sock, why = gl.listen("127.0.0.1", port) -- taken: nil, message
        assert.is_nil(sock)
        assert.is_string(why)
        local ok, err = pcall(gl.http.server, sock, hello)
        assert.is_false(ok)
        assert.matches("expected a listening socket, got nil", err, 1, true)
        busy:close()
    end))

    it("answers curl with status, headers and body", green(function()
        local srv, port = U.serve(echo_app)
        local rc, out = U.run(("curl -s -i http://127.0.0.1:%d/info?x=1 -H 'X-Test: yes'"):format(port))
        srv:stop(1)
        assert.are.equal(0, rc)
        assert.matches("^HTTP/1.1 200 OK\r\n", out)
        assert.matches("\r\nDate: %a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT\r\n", out)
        assert.matches("\r\nContent%-Length: %d+\r\n", out)
        assert.matches(("GET|/info%%?x=1|/info|x=1|1.1|yes|127.0.0.1:%d|127.0.0.1|%%d+|http$"):format(port), out)
    end))

    it("reuses one connection for two URLs in one curl (keep-alive)", green(function()
        local srv, port = U.serve(echo_app)
        local url = ("http://127.0.0.1:%d/info"):format(port)
        local rc, out, err = U.run(("curl -sv %s %s"):format(url, url))
        srv:stop(1)
        assert.are.equal(0, rc)
        local _, n = out:gsub("GET|/info", "")
        assert.are.equal(2, n)
        assert.matches("Re%-using existing connection", err)
    end))

    it("sends list bodies, list headers and status codes", green(function()
        local srv, port = U.serve(echo_app)
        local rc, out = U.run(("curl -s -i http://127.0.0.1:%d/list"):format(port))
        local _, out404 = U.run(("curl -s -i http://127.0.0.1:%d/nothing"):format(port))
        srv:stop(1)
        assert.are.equal(0, rc)
        assert.matches("^HTTP/1.1 201 Created\r\n", out)
        assert.matches("\r\nSet%-Cookie: a=1\r\n", out)
        assert.matches("\r\nSet%-Cookie: b=2\r\n", out)
        assert.matches("\r\n\r\nxyz$", out)
        assert.matches("^HTTP/1.1 404 Not Found\r\n", out404)
    end))

    it("answers 500 for a response it cannot send, and no body for 204 and HEAD", green(function()
        local srv, port = U.serve(function(req)
            if req.path == "/badlist" then return 200, {}, { "a", {}, "c" } end
            if req.path == "/badname" then return 200, { ["Bad Name"] = "x" }, "body" end
            local bad = { -- each is caught before a byte of it is sent
                ["/status"] = { 42 }, ["/status-text"] = { "abc" }, ["/status-table"] = { {} },
                ["/crlf"] = { 200, { ["X-A"] = "a\r\nX-Injected: 1" } },
                ["/value-type"] = { 200, { ["X-A"] = print } },
                ["/headers-type"] = { 200, "Content-Type: text/plain" },
                ["/body-type"] = { 200, {}, true }, ["/reason"] = { "200 O\nK" },
            }
            if bad[req.path] then return table.unpack(bad[req.path], 1, 3) end
            if req.path == "/204" then
                return 204, {}, function() error("a 204 body must not be read") end
            end
            return 200, {}, { "o", "k", 1 }
        end)
        local function get(path, method)
            return U.raw(port, (method or "GET") .. " " .. path .. " HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        end
        local badlist, badname, nocontent, head, fine = get("/badlist"), get("/badname"), get("/204"),
            get("/", "HEAD"), get("/")
        for _, path in ipairs({ "/status", "/status-text", "/status-table", "/crlf", "/value-type",
                                "/headers-type", "/body-type", "/reason" }) do
            local out = get(path)
            assert.matches("^HTTP/1.1 500 Internal Server Error\r\n", out, nil, path)
            assert.not_matches("Injected", out)
        end
        srv:stop(1)
        assert.matches("^HTTP/1.1 500 ", badlist)
        assert.matches("^HTTP/1.1 500 ", badname)
        assert.matches("^HTTP/1.1 204 No Content\r\n.-\r\n\r\n$", nocontent)
        assert.not_matches("Content%-Length", nocontent)
        assert.matches("^HTTP/1.1 200 OK\r\n.-Content%-Length: 3\r\n.-\r\n\r\n$", head)
        assert.matches("\r\n\r\nok1$", fine)
    end))

    it("streams an iterator body chunked", green(function()
        local srv, port = U.serve(echo_app)
        local rc, out = U.run(("curl -s -i http://127.0.0.1:%d/stream"):format(port))
        local _, raw = U.run(("curl -s --raw http://127.0.0.1:%d/stream"):format(port))
        srv:stop(1)
        assert.are.equal(0, rc)
        assert.matches("\r\nTransfer%-Encoding: chunked\r\n", out)
        assert.matches("part1\npart2\npart3\n$", out)
        assert.are.equal("6\r\npart1\n\r\n6\r\npart2\n\r\n6\r\npart3\n\r\n0\r\n\r\n", raw)
    end))

    it("reads a chunked upload from curl", green(function()
        local srv, port = U.serve(echo_app)
        local path = os.tmpname()
        local f = assert(io.open(path, "wb"))
        local data = string.rep("0123456789", 10000)
        f:write(data)
        f:close()
        local rc, out = U.run(("curl -s -H 'Transfer-Encoding: chunked' --data-binary @%s http://127.0.0.1:%d/echo"):format(path, port))
        os.remove(path)
        srv:stop(1)
        assert.are.equal(0, rc)
        assert.are.equal(#data, #out)
        assert.are.equal(data, out)
    end))

    it("answers HEAD with headers and no body", green(function()
        local srv, port = U.serve(hello)
        local rc, out = U.run(("curl -s -I http://127.0.0.1:%d/"):format(port))
        srv:stop(1)
        assert.are.equal(0, rc)
        assert.matches("^HTTP/1.1 200 OK\r\n", out)
        assert.matches("\r\nContent%-Length: 14\r\n", out)
        assert.matches("\r\n\r\n$", out)
    end))

    it("sends 100 Continue when the app reads the body", green(function()
        local srv, port = U.serve(echo_app)
        local rc, out, err = U.run(("curl -sv -H 'Expect: 100-continue' --expect100-timeout 5 -d hello-there http://127.0.0.1:%d/echo"):format(port))
        srv:stop(1)
        assert.are.equal(0, rc)
        assert.are.equal("hello-there", out)
        assert.matches("HTTP/1.1 100 Continue", err)
    end))

    it("serves pipelined requests from Python in order", green(function()
        local srv, port = U.serve(echo_app)
        local rc, out = U.python([[
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /info?n=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /info?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
          b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
          b"GET /info?n=4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = b""
s.settimeout(5)
while True:
    d = s.recv(65536)
    if not d: break
    data += d
sys.stdout.write(data.decode())
]], tostring(port))
        srv:stop(1)
        assert.are.equal(0, rc)
        local _, n = out:gsub("HTTP/1.1 200 OK", "")
        assert.are.equal(4, n)
        local a, b, c, d = out:find("n=1", 1, true), out:find("n=2", 1, true), out:find("abc", 1, true), out:find("n=4", 1, true)
        assert.truthy(a and b and c and d and a < b and b < c and c < d)
        assert.matches("Connection: close\r\n", out)
    end))

    -- the headers table fills in lazily (src/http.c); to the app it is a plain table
    it("gives the request headers case-insensitively, repeats joined, every one to pairs()",
        green(function()
        local seen
        local srv, port = U.serve(function(req)
            local h = req.headers
            seen = { type = type(h), accept = h.Accept, multi = h["x-multi"], none = h["x-none"],
                     number = h[1], raw_before = rawget(h, "accept") }
            h["X-Added"] = "yes" -- a write before any pairs() keeps the fields not read yet
            seen.host, seen.added = h.HOST, h["x-added"]
            local all, n = {}, 0
            for k, v in pairs(h) do all[k], n = v, n + 1 end
            seen.all, seen.n, seen.raw_after = all, n, rawget(h, "x-multi")
            h.accept = nil
            seen.deleted = h.Accept
            if req.path == "/mirror" then return 200, req.headers, "ok" end
            return 200, {}, "ok"
        end)
        local head = "Host: h\r\nAccept: a/b\r\nX-Multi: 1\r\nx-multi:  2 \r\nConnection: close\r\n\r\n"
        local out = U.raw(port, "GET / HTTP/1.1\r\n" .. head)
        assert.matches("^HTTP/1.1 200 OK", out)
        assert.are.same({ type = "table", accept = "a/b", multi = "1, 2", host = "h", added = "yes",
            n = 5, raw_after = "1, 2", all = { host = "h", accept = "a/b", ["x-multi"] = "1, 2",
            connection = "close", ["x-added"] = "yes" } }, seen)
        -- answering with req.headers sends every field, read or not
        out = U.raw(port, "GET /mirror HTTP/1.1\r\n" .. head)
        srv:stop(1)
        assert.matches("\r\nx%-multi: 1, 2\r\n", out)
        assert.matches("\r\nhost: h\r\n", out)
        assert.not_matches("\r\naccept:", out)
    end))

    -- every unread headers table shares one metatable; its __index must trust only gl's bytes
    it("looks headers up only in the bytes gl stored, whatever table __index is given",
        green(function()
        local seen
        local srv, port = U.serve(function(req)
            local h = req.headers
            local index = getmetatable(h).__index
            local key, bytes = next(h) -- the private entry an unread table holds
            seen = { own = index(h, "host"), empty = index({}, "host"),
                     forged = index({ [key] = io.stdout }, "host"),
                     stolen = index({ [key] = bytes }, "x-n"), not_table = index(bytes, "host") }
            for _ in pairs(h) do end
            seen.after = next(h, nil) ~= key and rawget(h, key) == nil
            return 200, {}, "ok"
        end)
        local out = U.raw(port, "GET / HTTP/1.1\r\nHost: h\r\nX-N: 7\r\nConnection: close\r\n\r\n")
        srv:stop(1)
        assert.matches("^HTTP/1.1 200 OK", out)
        assert.are.same({ own = "h", stolen = "7", after = true }, seen)
    end))

    it("reads header values past 64 KB, with tabs and obs-text, from the lazy table", green(function()
        local srv, port = U.serve(function(req)
            local h = req.headers
            return 200, {}, table.concat({ #h["x-big"], h["x-tab"], h["x-obs"], h["x-after"] }, "|")
        end, { max_header_bytes = 300000 })
        local big = ("a"):rep(100000)
        local out = U.raw(port, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " .. big ..
            "\r\nX-Tab: one\ttwo  \r\nX-Obs: caf\xc3\xa9\r\nX-After: end\r\nConnection: close\r\n\r\n")
        srv:stop(1)
        assert.matches("\r\n\r\n100000|one\ttwo|caf\xc3\xa9|end$", out)
    end))

    it("keeps each request's headers its own, after later requests and a vanished client",
        green(function()
        local kept = {}
        local srv, port = U.serve(function(req)
            kept[#kept + 1] = req.headers
            if req.path == "/slow" then gl.sleep(0.1) end -- the client is gone by then
            return 200, {}, tostring(#kept)
        end)
        local c = assert(gl.connect("127.0.0.1", port))
        assert(c:sendall("GET / HTTP/1.1\r\nHost: h\r\nX-N: one\r\n\r\n" ..
            "GET / HTTP/1.1\r\nHost: h\r\nX-N: two\r\n\r\nGET /slow HTTP/1.1\r\nHost: h\r\nX-N: three\r\n\r\n"))
        local got = ""
        while select(2, got:gsub("HTTP/1.1 200", "")) < 2 do got = got .. assert(c:recv(4096)) end
        c:close() -- before /slow is answered
        assert.matches("^HTTP/1.1 200 OK", U.raw(port,
            "GET / HTTP/1.1\r\nHost: h\r\nX-N: four\r\nConnection: close\r\n\r\n\x00\xff garbage"))
        local deadline = gl.clock() + 5
        while #kept < 4 and gl.clock() < deadline do gl.sleep(0.01) end
        srv:stop(1)
        local seen = {}
        for i, h in ipairs(kept) do seen[i] = h["x-n"] end
        table.sort(seen)
        assert.are.same({ "four", "one", "three", "two" }, seen)
    end))

    it("copies unread request headers whole to gl.tpool", green(function()
        local srv, port = U.serve(function(req)
            return 200, {}, gl.tpool.execute(function(t)
                local n = 0
                for _ in pairs(t) do n = n + 1 end
                return t["x-multi"] .. "|" .. n
            end, req.headers)
        end)
        local out = U.raw(port, "GET / HTTP/1.1\r\nHost: h\r\nX-Multi: 1\r\nX-Multi: 2\r\nConnection: close\r\n\r\n")
        srv:stop(1)
        assert.matches("\r\n\r\n1, 2|3$", out)
    end))

    it("serves many requests on one Python http.client connection", green(function()
        local srv, port = U.serve(echo_app)
        local rc, out, err = U.python([[
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
ok = 0
for i in range(200):
    body = "x" * i
    c.request("POST", "/echo", body=body)
    r = c.getresponse()
    if r.read().decode() == body and r.status == 200: ok += 1
c.request("HEAD", "/echo")
r = c.getresponse(); r.read()
print(ok, r.status, c.sock is not None)
]], tostring(port))
        srv:stop(1)
        assert.are.equal(0, rc, err)
        assert.are.equal("200 200 True\n", out)
    end))

    it("answers pipelined requests in order, and none waits for a later one's handler", green(function()
        local release = gl.Event()
        local srv, port = U.serve(function(req)
            if req.path == "/hold" then release:wait() end
            return 200, { ["Content-Type"] = "text/plain" }, req.path .. "\n"
        end)
        local s = assert(gl.connect("127.0.0.1", port))
        s:settimeout(3)
        local reqs = {}
        for i = 1, 16 do reqs[i] = ("GET /r%d HTTP/1.1\r\nHost: x\r\n\r\n"):format(i) end
        s:sendall(table.concat(reqs))
        local function answer()
            local head = assert(s:read("L"))
            assert.are.equal("HTTP/1.1 200 OK\r\n", head)
            local len
            repeat
                local l = assert(s:read("L"))
                len = len or tonumber(l:match("^Content%-Length: (%d+)"))
            until l == "\r\n"
            return s:read(len)
        end
        for i = 1, 16 do assert.are.equal(("/r%d\n"):format(i), answer()) end
        -- the answer to /first is written while /hold is still buffered behind it (held
        -- for one segment); it must leave when the handler of /hold blocks, not after it
        s:sendall("GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        s:settimeout(0.15) -- well under the kernel's 200 ms hold of a corked segment
        assert.are.equal("/first\n", answer())
        s:settimeout(3)
        release:send(true)
        assert.are.equal("/hold\n", answer())
        s:close()
        srv:stop(1)
    end))

    it("closes HTTP/1.0 connections unless keep-alive is asked", green(function()
        local srv, port = U.serve(hello)
        local out = U.raw(port, "GET / HTTP/1.0\r\n\r\n")
        assert.matches("^HTTP/1.0 200 OK\r\n", out)
        assert.not_matches("Connection: keep%-alive", out)
        local s = assert(gl.connect("127.0.0.1", port))
        s:settimeout(3)
        s:sendall("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        local head = s:read("L")
        assert.are.equal("HTTP/1.0 200 OK\r\n", head)
        local rest = {}
        repeat
            local l = s:read("L")
            rest[#rest + 1] = l
        until l == "\r\n" or not l
        assert.matches("Connection: keep%-alive\r\n", table.concat(rest))
        assert.are.equal("Hello, World!\n", s:read(14))
        s:sendall("GET / HTTP/1.0\r\n\r\n") -- still open: a second answer comes
        assert.matches("HTTP/1.0 200 OK", s:read("a"))
        s:close()
        srv:stop(1)
    end))

    it("answers malformed requests with 400 and closes", green(function()
        local srv, port = U.serve(hello)
        local cases = {
            "GARBAGE\r\n\r\n",
            "GET / HTTP/1.1\nHost: x\n\n",                     -- bare LF
            "GET / HTTP/1.1\r\n\r\n",                          -- no Host in 1.1
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n Folded: yes\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        }
        for _, c in ipairs(cases) do
            local out = U.raw(port, c)
            assert.matches("^HTTP/1.1 400 Bad Request\r\n", out, c)
            assert.matches("Connection: close\r\n", out)
        end
        local te = U.raw(port, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
        assert.matches("^HTTP/1.1 501 ", te)
        -- the server still serves
        assert.matches("^HTTP/1.1 200 OK", U.raw(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        srv:stop(1)
    end))

    it("rejects a bad chunked body with 400", green(function()
        local srv, port = U.serve(echo_app)
        local out = U.raw(port, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
        srv:stop(1)
        assert.matches("^HTTP/1.1 400 ", out)
    end))

    it("enforces header, URL and body limits", green(function()
        local srv, port = U.serve(echo_app, { max_header_bytes = 1024, url_length_limit = 100,
            max_body_bytes = 10 })
        local big = U.raw(port, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " .. ("a"):rep(2000) .. "\r\n\r\n")
        assert.matches("^HTTP/1.1 431 ", big)
        local long = U.raw(port, "GET /" .. ("a"):rep(200) .. " HTTP/1.1\r\nHost: x\r\n\r\n")
        assert.matches("^HTTP/1.1 414 ", long)
        local body = U.raw(port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world")
        assert.matches("^HTTP/1.1 413 ", body)
        local chunked = U.raw(port, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n")
        assert.matches("^HTTP/1.1 413 ", chunked)
        local ok = U.raw(port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        assert.matches("^HTTP/1.1 200 .*hello$", ok)
        srv:stop(1)
    end))

    it("answers 414 for a long URL even when the header block is large too", green(function()
        local big_headers = "X-Big: " .. ("b"):rep(70000) .. "\r\n"
        for _, o in ipairs({ {}, { max_header_bytes = 1024, url_length_limit = 2000 } }) do
            local srv, port = U.serve(hello, o)
            local url = "/" .. ("a"):rep((o.url_length_limit or 8192) + 10)
            local out = U.raw(port, "GET " .. url .. " HTTP/1.1\r\nHost: x\r\n" .. big_headers .. "\r\n")
            assert.matches("^HTTP/1.1 414 ", out)
            -- a long URL within its limit, past the header limit, is 431
            if o.max_header_bytes then
                out = U.raw(port, "GET /" .. ("a"):rep(1500) .. " HTTP/1.1\r\nHost: x\r\n\r\n")
                assert.matches("^HTTP/1.1 431 ", out)
            end
            srv:stop(1)
        end
    end))

    -- An error answered before the request was read in full: gl closes the way nginx does
    -- (shut down its side, discard input for a while), so the client reads the answer
    -- instead of a connection reset.
    it("lets Python's http.client read 431, 414, 413 and 400 sent before the request ends",
        green(function()
            local srv, port = U.serve(echo_app, { max_body_bytes = 10 })
            local rc, out, err = U.python([[
import http.client, socket, sys
port = int(sys.argv[1])
def ask(method, url, headers={}, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.putrequest(method, url)
    for k, v in headers.items():
        c.putheader(k, v)
    c.endheaders(body)
    r = c.getresponse()
    print(r.status, r.read().decode().strip())
    c.close()
ask("GET", "/", {"X-Big": "a" * 300000})
ask("GET", "/" + "u" * 20000, {"X-Big": "a" * 300000})
ask("POST", "/echo", {"Content-Length": "500000"}, b"x" * 500000)  # within the 1 MiB drained
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n" + b"g" * 500000)
print(s.recv(100).split(b"\r\n")[0].decode())
s.close()
]], tostring(port), 30)
            assert.are.equal(0, rc, err)
            assert.are.equal(table.concat({ "431 Request Header Fields Too Large",
                "414 URI Too Long", "413 Content Too Large", "HTTP/1.1 400 Bad Request" }, "\n"),
                out:gsub("%s+$", ""))
            -- and the server goes on
            assert.matches("^HTTP/1.1 200 ", U.raw(port, "GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
            srv:stop(1)
        end, 30))

    it("answers an app error with 500, logs the traceback and keeps serving", green(function()
        local srv, port = U.serve(echo_app)
        local rc, out, err = U.run(("curl -s -i http://127.0.0.1:%d/error http://127.0.0.1:%d/info"):format(port, port))
        srv:stop(1)
        assert.are.equal(0, rc, err)
        assert.matches("^HTTP/1.1 500 Internal Server Error\r\n", out)
        assert.matches("HTTP/1.1 200 OK", out)
    end))

    it("survives gl.Timeout in the app and clients vanishing mid-request", green(function()
        local srv, port = U.serve(function(req)
            if req.path == "/timeout" then
                gl.with_timeout(0.01, gl.sleep, 1)
            end
            if req.path == "/slow" then gl.sleep(0.1) end
            return 200, {}, "fine"
        end)
        assert.matches("^HTTP/1.1 500", U.raw(port, "GET /timeout HTTP/1.1\r\nHost: x\r\n\r\n"))
        -- half a request, then gone
        local s = assert(gl.connect("127.0.0.1", port))
        s:sendall("GET / HTTP/1.1\r\nHo")
        s:close()
        -- a request whose client leaves before the answer
        s = assert(gl.connect("127.0.0.1", port))
        s:sendall("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        s:close()
        -- a body that never comes
        s = assert(gl.connect("127.0.0.1", port))
        s:sendall("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        s:close()
        gl.sleep(0.2)
        assert.matches("^HTTP/1.1 200 OK.*fine$", U.raw(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        srv:stop(1)
    end))

    it("logs an Apache combined line per request to a log function", green(function()
        local lines = {}
        local srv, port = U.serve(hello, { log = function(l) lines[#lines + 1] = l end })
        U.run(("curl -s -A 'test-agent' -e 'http://ref/' http://127.0.0.1:%d/path?q=1"):format(port))
        srv:stop(1)
        assert.are.equal(1, #lines)
        assert.matches('^127%.0%.0%.1 %- %- %[%d%d/%a%a%a/%d%d%d%d:%d%d:%d%d:%d%d [%+%-]%d%d%d%d%] "GET /path%?q=1 HTTP/1%.1" 200 14 "http://ref/" "test%-agent"$', lines[1])
    end))

    it("closes idle keep-alive connections after keepalive_timeout", green(function()
        local srv, port = U.serve(hello, { keepalive_timeout = 0.1 })
        local s = assert(gl.connect("127.0.0.1", port))
        s:settimeout(2)
        s:sendall("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        local t0 = gl.clock()
        local all = s:read("a")
        assert.matches("^HTTP/1.1 200 OK", all)
        assert.is_true(gl.clock() - t0 < 1)
        s:close()
        srv:stop(1)
    end))

    it("serves 200 concurrent clients", green(function()
        local srv, port = U.serve(function(req)
            gl.sleep(0.01)
            return 200, {}, req.query
        end)
        local pool = gl.GreenPool(200)
        local ok = 0
        for i = 1, 200 do
            pool:spawn(function()
                local out = U.raw(port, ("GET /?%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):format(i), 5)
                if out and out:match("^HTTP/1.1 200 OK") and out:sub(-#tostring(i)) == tostring(i) then
                    ok = ok + 1
                end
            end)
        end
        pool:waitall()
        srv:stop(1)
        assert.are.equal(200, ok)
    end, 20))

    it("limits concurrent connections to max_size", green(function()
        local active, peak = 0, 0
        local srv, port = U.serve(function()
            active = active + 1
            peak = math.max(peak, active)
            gl.sleep(0.05)
            active = active - 1
            return 200, {}, "ok"
        end, { max_size = 3 })
        local pool = gl.GreenPool(10)
        for _ = 1, 10 do
            pool:spawn(U.raw, port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        end
        pool:waitall()
        srv:stop(1)
        assert.are.equal(3, peak)
    end, 10))

    it("stops gracefully: in-flight requests finish, new ones are refused", green(function()
        local srv, port = U.serve(echo_app)
        local idle = assert(gl.connect("127.0.0.1", port)) -- a keep-alive connection, idle
        idle:sendall("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert.matches("404", idle:recv(4096))
        local result
        local before = sleeping
        local t = gl.spawn(function() result = U.raw(port, "GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n") end)
        assert.is_true(helper.wait_until(function() return sleeping > before end, 2))
        assert.is_true(srv:stop(2))
        t:wait()
        assert.matches("^HTTP/1.1 200 OK.*Connection: close.*slept$", result)
        assert.are.same({ nil, "closed" }, { idle:recv(10) })
        idle:close()
        assert.is_nil(gl.connect("127.0.0.1", port))
    end))

    it("cuts requests that outlive the grace period", green(function()
        local entered = false
        local srv, port = U.serve(function() entered = true; gl.sleep(10) return 200, {}, "late" end)
        local t = gl.spawn(U.raw, port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert.is_true(helper.wait_until(function() return entered end, 2))
        local t0 = gl.clock()
        assert.is_false(srv:stop(0.1))
        assert.is_true(gl.clock() - t0 < 1)
        assert.are.equal("", t:wait())
    end))
    -- Without an access log the keep-alive loop runs in C (core.http_serve) and hands
    -- requests back to Lua at the point they need its policy; with one, all of it is Lua.
    -- Both must answer every kind of request byte for byte alike.
    it("answers alike with the C request loop (no log) and the Lua one (a log)", green(function()
        local big = ("0123456789abcdef"):rep(256 * 1024) -- 4 MB: more than a socket takes at once
        local function app(req)
            local p = req.path
            if p == "/yield" then gl.sleep(0.01) return 200, { ["X-P"] = "y" }, "after a sleep" end
            if p == "/yield-error" then gl.sleep(0.01) error("failed after a sleep") end
            if p == "/big" then return 200, {}, big end
            if p == "/bad" then return "not a status", {}, "x" end
            if p == "/echo" then return 200, {}, assert(req:body()) end
            if p == "/stream" then
                local i = 0
                return 200, {}, function() i = i + 1 if i <= 2 then return "s" .. i end end
            end
            return 200, { ["Content-Type"] = "text/plain" }, "hello " .. req.method .. " " .. req.target
        end
        local get = function(path, extra) return "GET " .. path .. " HTTP/1.1\r\nHost: x\r\n" .. (extra or "") .. "\r\n" end
        local batches = {
            get("/a?q=1") .. get("/yield") .. get("/stream") .. "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"
                .. "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
                .. "POST /unread HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n12345"
                .. get("/after-unread")
                .. get("/big") .. get("/after-big") .. get("/bad"),
            get("/yield-error") .. get("/never"),
            "GET /old HTTP/1.0\r\n\r\n",
            get("/last", "Connection: close\r\n"),
            "NOT A REQUEST\r\n\r\n",
        }
        local function answers(opts)
            local srv, port = U.serve(app, opts)
            local out = {}
            for i, b in ipairs(batches) do
                out[i] = U.raw(port, b, 5):gsub("Date: [^\r]*\r\n", "")
            end
            srv:stop(1)
            return out
        end
        local in_c = answers({ log = false })
        local lines = {}
        local in_lua = answers({ log = function(l) lines[#lines + 1] = l end })
        assert.are.equal(#batches, #in_c)
        for i = 1, #batches do assert.are.equal(in_lua[i], in_c[i]) end
        local first = in_c[1]
        assert.matches("hello GET /a%?q=1", first)
        assert.matches("X%-P: y\r\n.-after a sleep", first)
        assert.matches("s1.-s2", first)
        assert.truthy(first:find("\r\n\r\nbody", 1, true))
        assert.matches("hello POST /unread", first)
        assert.matches("hello GET /after%-unread", first) -- the unread body was drained
        assert.truthy(first:find(big, 1, true))
        assert.matches("hello GET /after%-big", first)
        assert.matches("HTTP/1.1 500 Internal Server Error\r\n", first)
        assert.matches("^HTTP/1.1 500", in_c[2])
        assert.falsy(in_c[2]:find("never", 1, true)) -- the connection closed after the 500
        assert.matches("^HTTP/1.0 200 OK\r\n.-hello GET /old$", in_c[3])
        assert.matches("Connection: close\r\n", in_c[4])
        assert.matches("^HTTP/1.1 400", in_c[5])
        assert.are.equal(14, #lines) -- every answer was logged on the Lua path, the 400 too
    end))
    -- req:body() takes a Content-Length body in one piece when it came with its head
    -- (core.http_body_rest) and reads on when it did not; both give the whole body, the same
    -- string on a second call
    it("reads a body that came with its head and one that comes later alike", green(function()
        local entered = gl.Event()
        local function app(req)
            if req.path == "/split" then entered:send(true) end
            local a = assert(req:body())
            assert(rawequal(a, req:body()))
            return 200, {}, ("%s:%d:%s"):format(req.path, #a, a:sub(1, 3) .. a:sub(-3))
        end
        local srv, port = U.serve(app)
        local body = ("0123456789"):rep(30) -- 300 bytes
        local head = "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n"
        local s = assert(gl.connect("127.0.0.1", port))
        s:settimeout(5)
        s:sendall(head:format("/whole") .. body)
        s:sendall(head:format("/split") .. body:sub(1, 100))
        assert.is_true(entered:wait(5)) -- the app runs with two thirds of its body not sent yet
        s:sendall(body:sub(101))
        s:sendall("GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        local out = s:read("a")
        s:close()
        srv:stop(1)
        assert.matches("/whole:300:012789", out, 1, true)
        assert.matches("/split:300:012789", out, 1, true)
        assert.matches("/after:0:", out, 1, true)
    end))
end)
