-- gl.http.request / gl.http.get (API.md section 8) against Python's http.server and the gl
-- server: bodies in every framing, keep-alive reuse, redirects, failures in bounded time.
local gl = require "gl"
local helper = require "helper"
local U = require "http_util"
local green = helper.green

local function app(req)
    local p = req.path
    if p == "/hello" then
        return 200, { ["Content-Type"] = "text/plain", ["Set-Cookie"] = { "a=1", "b=2" },
            ["X-Mixed-Case"] = "yes" }, "hello"
    elseif p == "/chunked" then
        local i = 0
        return 200, {}, function()
            i = i + 1
            if i <= 100 then return ("line %d\n"):format(i) end
        end
    elseif p == "/echo" then
        return 200, { ["X-Method"] = req.method }, req.method .. ":" .. req:body()
    elseif p == "/port" then
        return 200, {}, tostring(req.remote_port)
    elseif p == "/redirect" then
        return 302, { Location = "/hello" }, ""
    elseif p == "/redirect-abs" then
        return 301, { Location = ("http://127.0.0.1:%s/redirect"):format(req.query) }, ""
    elseif p == "/see-other" then
        return 303, { Location = "echo" }, ""
    elseif p == "/loop" then
        return 302, { Location = "/loop" }, ""
    elseif p == "/big" then
        return 200, {}, ("x"):rep(1000000)
    elseif p == "/empty" then
        return 204, {}, nil
    end
    return 404, {}, "no"
end

describe("gl.http client", function()
    it("gets from Python's http.server and closes its HTTP/1.0 connection", green(function()
        local dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir -p " .. dir))
        local f = assert(io.open(dir .. "/file.txt", "w"))
        f:write(("python says hi\n"):rep(1000))
        f:close()
        local port = U.free_port()
        local h = U.spawn(("exec python3 -m http.server %d --bind 127.0.0.1 --directory %s"):format(port, dir))
        assert.is_true(U.wait_port(port, 10))
        local res, err = gl.http.get(("http://127.0.0.1:%d/file.txt"):format(port))
        local missing = gl.http.get(("http://127.0.0.1:%d/missing"):format(port))
        local head = gl.http.request(("http://127.0.0.1:%d/file.txt"):format(port), { method = "HEAD" })
        U.stop(h)
        os.execute("rm -rf " .. dir)
        assert.is_table(res, err)
        assert.are.equal(200, res.status)
        assert.are.equal(("python says hi\n"):rep(1000), res.body)
        assert.are.equal("15000", res.headers["Content-Length"])
        assert.are.equal(404, missing.status)
        assert.are.equal(200, head.status)
        assert.are.equal("", head.body)
    end, 20))

    it("reads headers case-insensitively, set-cookie as a list", green(function()
        local srv, port = U.serve(app)
        local res = assert(gl.http.get(("http://127.0.0.1:%d/hello"):format(port)))
        srv:stop(1)
        assert.are.equal(200, res.status)
        assert.are.equal("hello", res.body)
        assert.are.equal("yes", res.headers["x-mixed-case"])
        assert.are.equal("yes", res.headers["X-MIXED-CASE"])
        assert.are.same({ "a=1", "b=2" }, res.headers["set-cookie"])
        assert.are.equal("text/plain", res.headers["Content-Type"])
    end))

    it("reads chunked, large and empty responses", green(function()
        local srv, port = U.serve(app)
        local base = ("http://127.0.0.1:%d"):format(port)
        local c = assert(gl.http.get(base .. "/chunked"))
        local big = assert(gl.http.get(base .. "/big"))
        local empty = assert(gl.http.get(base .. "/empty"))
        srv:stop(1)
        assert.are.equal("chunked", c.headers["transfer-encoding"])
        local lines = {}
        for i = 1, 100 do lines[i] = ("line %d\n"):format(i) end
        assert.are.equal(table.concat(lines), c.body)
        assert.are.equal(1000000, #big.body)
        assert.are.equal(204, empty.status)
        assert.are.equal("", empty.body)
    end))

    it("reads a close-delimited response", green(function()
        local l = assert(gl.listen("127.0.0.1", 0))
        local _, port = l:getsockname()
        local t = gl.spawn(function()
            local c = l:accept()
            c:read("l")
            c:sendall("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
            c:close()
            l:close()
        end)
        local res = assert(gl.http.get(("http://127.0.0.1:%d/"):format(port)))
        t:wait()
        assert.are.equal("until the end", res.body)
    end))

    it("sends bodies: strings and chunked iterators", green(function()
        local srv, port = U.serve(app)
        local url = ("http://127.0.0.1:%d/echo"):format(port)
        local r1 = assert(gl.http.request(url, { method = "POST", body = "payload",
            headers = { ["Content-Type"] = "text/plain" } }))
        local parts = { "a", "bb", "ccc" }
        local i = 0
        local r2 = assert(gl.http.request(url, { method = "PUT", body = function()
            i = i + 1
            return parts[i]
        end }))
        srv:stop(1)
        assert.are.equal("POST:payload", r1.body)
        assert.are.equal("PUT:abbccc", r2.body)
    end))

    it("reuses a pooled connection per host and port", green(function()
        local srv, port = U.serve(app)
        local url = ("http://127.0.0.1:%d/port"):format(port)
        local a = assert(gl.http.get(url)).body
        local b = assert(gl.http.get(url)).body
        local c = assert(gl.http.get(url)).body
        assert.are.equal(a, b)
        assert.are.equal(b, c)
        srv:stop(1) -- closes the idle connection: the next request needs a new one
        local srv2
        srv2, port = U.serve(app)
        local d = assert(gl.http.get(("http://127.0.0.1:%d/port"):format(port))).body
        assert.are_not.equal(a, d)
        srv2:stop(1)
    end))

    it("drops a pooled connection the server has closed", green(function()
        local srv, port = U.serve(app, { keepalive_timeout = 0.05 })
        local url = ("http://127.0.0.1:%d/port"):format(port)
        local a = assert(gl.http.get(url)).body
        gl.sleep(0.2) -- the server has closed the idle connection by now
        local b = assert(gl.http.get(url)).body
        srv:stop(1)
        assert.are_not.equal(a, b)
    end))

    it("follows redirects: relative, absolute, 303 turning POST into GET", green(function()
        local srv, port = U.serve(app)
        local base = ("http://127.0.0.1:%d"):format(port)
        local r1 = assert(gl.http.get(base .. "/redirect"))
        local r2 = assert(gl.http.get(base .. "/redirect-abs?" .. port))
        local r3 = assert(gl.http.request(base .. "/see-other", { method = "POST", body = "x" }))
        local r4 = assert(gl.http.get(base .. "/redirect", { redirects = 0 }))
        srv:stop(1)
        assert.are.equal("hello", r1.body)
        assert.are.equal(base .. "/hello", r1.url)
        assert.are.equal("hello", r2.body)
        assert.are.equal("GET:", r3.body)
        assert.are.equal(302, r4.status)
        assert.are.equal("/hello", r4.headers.location)
    end))

    it("gives up on a redirect loop", green(function()
        local srv, port = U.serve(app)
        local res, err = gl.http.get(("http://127.0.0.1:%d/loop"):format(port))
        srv:stop(1)
        assert.is_nil(res)
        assert.are.equal("too many redirects", err)
    end))

    it("returns nil, err for a dead server in bounded time", green(function()
        local port = U.free_port()
        local t0 = gl.clock()
        local res, err = gl.http.get(("http://127.0.0.1:%d/"):format(port))
        assert.is_nil(res)
        assert.are.equal("connection refused", err)
        assert.is_true(gl.clock() - t0 < 1)
    end))

    it("times out on a server that never answers", green(function()
        local l = assert(gl.listen("127.0.0.1", 0))
        local _, port = l:getsockname()
        local conns = {}
        local t = gl.spawn(function()
            while true do
                local c = l:accept()
                if not c then return end
                conns[#conns + 1] = c
            end
        end)
        local t0 = gl.clock()
        local res, err = gl.http.get(("http://127.0.0.1:%d/"):format(port), { timeout = 0.2 })
        assert.is_nil(res)
        assert.are.equal("timeout", err)
        assert.is_true(gl.clock() - t0 < 1)
        l:close()
        t:wait()
        for _, c in ipairs(conns) do c:close() end
    end))

    it("returns nil, err for a server that closes mid-response", green(function()
        local l = assert(gl.listen("127.0.0.1", 0))
        local _, port = l:getsockname()
        local t = gl.spawn(function()
            local c = l:accept()
            c:read("l")
            c:sendall("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
            c:close()
            l:close()
        end)
        local res, err = gl.http.get(("http://127.0.0.1:%d/"):format(port))
        t:wait()
        assert.is_nil(res)
        assert.are.equal("closed", err)
    end))

    it("rejects bad URLs with nil, err", green(function()
        assert.are.same({ nil, "bad url: nonsense" }, { gl.http.get("nonsense") })
        assert.are.same({ nil, "unsupported scheme: ftp" }, { gl.http.get("ftp://x/") })
    end))

    it("speaks https through gl.wrap_ssl", green(function()
        local dir = os.tmpname()
        os.remove(dir)
        os.execute("mkdir -p " .. dir)
        local rc = U.run(("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
            .. "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout %s/key.pem -out %s/cert.pem"):format(dir, dir), 30)
        assert.are.equal(0, rc)
        local l = assert(gl.listen("127.0.0.1", 0))
        local _, port = l:getsockname()
        local tl = assert(gl.wrap_ssl(l, { server_side = true, certfile = dir .. "/cert.pem",
            keyfile = dir .. "/key.pem" }))
        local srv = gl.http.server(tl, function(req)
            return 200, {}, req.scheme .. " ok"
        end, { background = true, log = false })
        local url = ("https://127.0.0.1:%d/"):format(port)
        local r1 = assert(gl.http.get(url, { cafile = dir .. "/cert.pem" }))
        local r2 = assert(gl.http.get(url, { verify = false }))
        local r3, err = gl.http.get(url) -- self-signed: not in the system store
        srv:stop(1)
        gl.http.close_idle()
        os.execute("rm -rf " .. dir)
        assert.are.equal("https ok", r1.body)
        assert.are.equal("https ok", r2.body)
        assert.is_nil(r3)
        assert.matches("^tls: ", err)
    end, 30))
end)
