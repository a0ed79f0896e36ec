-- gl.dns: numeric hosts, the hosts file, localhost, the resolver over the network (a
-- fake name server on 127.0.0.1 run by the spec itself), timeouts, cancellation by kill
-- and gl.Timeout, concurrency, and a process that exits after lookups (API.md section 7).
-- Nothing here depends on the machine's own DNS.
local gl = require "gl"
local helper = require "helper"
local green = helper.green

local GL = os.getenv("GL_BIN") or "build/gl"

-- Lets cancelled requests call back and the idle resolver close (one or two loop passes).
local function settle()
    gl.sleep(0.02)
end

local function addrs(list)
    local out = {}
    for i, e in ipairs(list) do out[i] = e.family .. " " .. e.addr .. " " .. e.port end
    return out
end

-- A fake name server: answers A/AAAA questions from `zone` (name -> {"1.2.3.4", "::1"}),
-- NXDOMAIN for names it does not know, nothing at all for names in `silent`. Returns its
-- "ip:port" and a function that stops it.
local function fake_server(zone, silent)
    local sock = assert(gl.socket.udp())
    assert(sock:bind("127.0.0.1", 0))
    local _, port = sock:getsockname()
    local seen = { n = 0 }
    local function answer(q)
        local id, _, qd = string.unpack(">I2I2I2", q)
        assert(qd == 1)
        local labels, pos = {}, 13
        while true do
            local len = q:byte(pos)
            if len == 0 then break end
            labels[#labels + 1] = q:sub(pos + 1, pos + len)
            pos = pos + len + 1
        end
        local question = q:sub(13, pos + 4)
        local qtype = string.unpack(">I2", q, pos + 1)
        local name = table.concat(labels, "."):lower()
        seen.n = seen.n + 1
        if silent and silent[name] then return nil end
        local records = zone[name]
        local rr = {}
        for _, a in ipairs(records or {}) do
            local v4 = a:match("^%d+%.%d+%.%d+%.%d+$")
            if v4 and qtype == 1 then
                local b = {}
                for x in a:gmatch("%d+") do b[#b + 1] = string.char(tonumber(x)) end
                rr[#rr + 1] = string.pack(">I2I2I2I4s2", 0xC00C, 1, 1, 60, table.concat(b))
            elseif not v4 and qtype == 28 then
                -- only the forms the spec uses: "::N" and "fd00::N"
                local prefix, n = a:match("^(%x*)::(%x+)$")
                local bytes = (prefix ~= "" and string.pack(">I2", tonumber(prefix, 16)) or "\0\0")
                    .. string.rep("\0", 12) .. string.pack(">I2", tonumber(n, 16))
                rr[#rr + 1] = string.pack(">I2I2I2I4s2", 0xC00C, 28, 1, 60, bytes)
            end
        end
        local flags = records and 0x8180 or 0x8183
        return string.pack(">I2I2I2I2I2I2", id, flags, 1, #rr, 0, 0) .. question
            .. table.concat(rr)
    end
    local server = gl.spawn(function()
        while true do
            local q, host, qport = sock:recvfrom(512)
            if not q then return end
            local r = answer(q)
            if r then sock:sendto(r, host, qport) end
        end
    end)
    return "127.0.0.1:" .. port, function()
        server:kill()
        sock:close()
    end, seen
end

describe("gl.dns", function()
    after_each(function() gl.dns.configure() end)

    describe("numeric hosts", function()
        it("answers IPv4 and IPv6 addresses without a lookup", function()
            assert.are.same({ "inet 127.0.0.1 80" }, addrs(assert(gl.dns.getaddrinfo("127.0.0.1", 80))))
            assert.are.same({ "inet6 ::1 443" }, addrs(assert(gl.dns.getaddrinfo("::1", 443))))
            assert.are.same({ "inet6 2001:db8::1 0" },
                addrs(assert(gl.dns.getaddrinfo("2001:0db8:0:0::1"))))
            assert.are.same({ "10.1.2.3" }, assert(gl.dns.resolve("10.1.2.3")))
        end)

        it("works even where a green thread cannot block", function()
            local ok, r = pcall(function()
                local res
                table.sort({ 2, 1 }, function(a, b)
                    res = res or gl.dns.getaddrinfo("192.0.2.1", 7)
                    return a < b
                end)
                return res
            end)
            assert.is_true(ok)
            assert.are.same({ "inet 192.0.2.1 7" }, addrs(r))
        end)

        it("applies the family filter", function()
            local r, err = gl.dns.getaddrinfo("127.0.0.1", 80, "inet6")
            assert.is_nil(r)
            assert.are.equal("no address associated with hostname", err)
            assert.is_nil((gl.dns.getaddrinfo("::1", 80, "inet")))
            assert.are.equal(1, #gl.dns.getaddrinfo("::1", 80, "inet6"))
        end)

        it("rejects bad arguments", function()
            assert.has_error(function() gl.dns.getaddrinfo() end)
            assert.has_error(function() gl.dns.getaddrinfo("127.0.0.1", 70000) end)
            assert.has_error(function() gl.dns.getaddrinfo("127.0.0.1", 80, "ipx") end)
            assert.has_error(function() gl.dns.configure { timeout = -1 } end)
            assert.has_error(function() gl.dns.configure { nameservers = { "not an address" } } end)
            assert.has_error(function() gl.dns.configure { colour = "blue" } end)
        end)
    end)

    describe("the hosts file", function()
        it("resolves localhost", green(function()
            local r = assert(gl.dns.getaddrinfo("localhost", 8080, "inet"))
            assert.are.same({ "inet 127.0.0.1 8080" }, addrs(r))
            local all = assert(gl.dns.resolve("localhost"))
            assert.is_true(#all >= 1)
            assert.is_true(all[1] == "127.0.0.1" or all[1] == "::1")
        end))

        it("resolves a name listed in /etc/hosts", green(function()
            local f = io.open("/etc/hosts")
            local name, addr
            for line in f:lines() do
                local a, rest = line:match("^%s*([%x:%.]+)%s+([^#]+)")
                if a and a:match("^%d+%.%d+%.%d+%.%d+$") then
                    for n in rest:gmatch("%S+") do
                        if n ~= "localhost" and not n:match("%.localhost$") then name, addr = n, a end
                    end
                end
                if name then break end
            end
            f:close()
            if not name then return end -- nothing but localhost there
            local r = assert(gl.dns.getaddrinfo(name, 1, "inet"))
            assert.are.equal(addr, r[1].addr)
            assert.are.equal("inet", r[1].family)
            assert.are.equal(1, r[1].port)
        end))

        it("takes a hosts file of its own, with both families and no duplicates", green(function()
            local path = os.tmpname()
            local f = assert(io.open(path, "w"))
            f:write("# test hosts\n192.0.2.7 alpha.test alpha\n2001:db8::7 alpha.test\n",
                "192.0.2.7 alpha.test\n192.0.2.8 beta.test # comment\n")
            f:close()
            gl.dns.configure { hosts = path, resolv_conf = "/dev/null" }
            assert.are.same({ "inet 192.0.2.7 5", "inet6 2001:db8::7 5" },
                addrs(assert(gl.dns.getaddrinfo("alpha.test", 5))))
            assert.are.same({ "192.0.2.7" }, assert(gl.dns.resolve("ALPHA")))
            assert.are.same({ "inet6 2001:db8::7 0" },
                addrs(assert(gl.dns.getaddrinfo("alpha.test", nil, "inet6"))))
            local r, err = gl.dns.getaddrinfo("beta.test", 0, "inet6")
            assert.is_nil(r)
            assert.are.equal("no address associated with hostname", err)
            -- localhost still works with a hosts file that does not list it (RFC 6761)
            assert.are.same({ "::1" }, (function()
                local l = assert(gl.dns.getaddrinfo("localhost", 0, "inet6"))
                return { l[1].addr }
            end)())
            os.remove(path)
            settle()
        end))

        it("still answers from the hosts file when resolv.conf lists no name server",
            green(function()
                gl.dns.configure { resolv_conf = "/dev/null" }
                assert.are.equal("127.0.0.1", assert(gl.dns.getaddrinfo("localhost", 0, "inet"))[1].addr)
                local t0 = gl.clock()
                local r, err = gl.dns.getaddrinfo("nowhere.example")
                assert.is_nil(r)
                assert.are.equal("no such host", err)
                assert.is_true(gl.clock() - t0 < 1)
                settle()
            end))
    end)

    it("answers names under .invalid with no such host at once", green(function()
        local t0 = gl.clock()
        local r, err = gl.dns.getaddrinfo("no-such-host.invalid", 80)
        assert.is_nil(r)
        assert.are.equal("no such host", err)
        local r2, err2 = gl.dns.resolve("x.y.INVALID.")
        assert.is_nil(r2)
        assert.are.equal("no such host", err2)
        assert.is_true(gl.clock() - t0 < 0.5)
    end))

    describe("over the network", function()
        local zone = {
            ["www.gl.test"] = { "192.0.2.10", "192.0.2.11", "fd00::10" },
            ["v4.gl.test"] = { "192.0.2.20" },
            ["v6.gl.test"] = { "fd00::20" },
        }

        it("resolves A and AAAA records from the configured server", green(function()
            local ns, stop, seen = fake_server(zone)
            gl.dns.configure { nameservers = { ns }, resolv_conf = "/dev/null", timeout = 2 }
            local r = assert(gl.dns.getaddrinfo("www.gl.test", 443))
            table.sort(r, function(a, b) return a.addr < b.addr end)
            assert.are.same({ "inet 192.0.2.10 443", "inet 192.0.2.11 443", "inet6 fd00::10 443" },
                addrs(r))
            assert.are.same({ "inet 192.0.2.20 0" }, addrs(assert(gl.dns.getaddrinfo("v4.gl.test", 0, "inet"))))
            assert.are.same({ "fd00::20" }, assert(gl.dns.resolve("v6.gl.test")))
            assert.is_true(seen.n >= 4)
            stop()
            settle()
        end))

        it("returns nil and 'no such host' for a name the server does not know", green(function()
            local ns, stop = fake_server(zone)
            gl.dns.configure { nameservers = { ns }, resolv_conf = "/dev/null", timeout = 2 }
            local r, err = gl.dns.getaddrinfo("missing.gl.test")
            assert.is_nil(r)
            assert.are.equal("no such host", err)
            stop()
            settle()
        end))

        it("serves many green threads looking up at once", green(function()
            local ns, stop = fake_server(zone)
            gl.dns.configure { nameservers = { ns }, resolv_conf = "/dev/null", timeout = 2 }
            local names = { "www.gl.test", "v4.gl.test", "v6.gl.test", "missing.gl.test", "localhost",
                "127.0.0.1" }
            local threads = {}
            for i = 1, 120 do
                local name = names[i % #names + 1]
                threads[i] = gl.spawn(function() return name, gl.dns.getaddrinfo(name, i) end)
            end
            for i = 1, 120 do
                local name, r, err = threads[i]:wait()
                if name == "missing.gl.test" then
                    assert.are.equal("no such host", err)
                else
                    assert(r, err)
                    for _, e in ipairs(r) do assert.are.equal(i, e.port) end
                end
            end
            stop()
            settle()
        end))

        it("times out with nil and 'timeout' when the server does not answer", green(function()
            local ns, stop = fake_server(zone, { ["slow.gl.test"] = true })
            gl.dns.configure { nameservers = { ns }, resolv_conf = "/dev/null", timeout = 0.2,
                attempts = 2 }
            local t0 = gl.clock()
            local r, err = gl.dns.getaddrinfo("slow.gl.test")
            local dt = gl.clock() - t0
            assert.is_nil(r)
            assert.are.equal("timeout", err)
            assert.is_true(dt >= 0.3 and dt < 2, "took " .. dt)
            stop()
            settle()
        end))
    end)

    describe("cancellation", function()
        -- a server that never answers: nothing listens on 127.0.0.1:1
        local function blackhole() gl.dns.configure { nameservers = { "127.0.0.1:1" },
            resolv_conf = "/dev/null", timeout = 5 } end

        it("a gl.Timeout cancels a lookup and raises through it", green(function()
            blackhole()
            local t0 = gl.clock()
            local ok, e = pcall(gl.with_timeout, 0.1, gl.dns.getaddrinfo, "stuck.example", 80)
            assert.is_false(ok)
            assert.is_true(gl.is_timeout(e))
            assert.is_true(gl.clock() - t0 < 1)
            settle()
        end))

        it("kill cancels a lookup", green(function()
            blackhole()
            local g = gl.spawn(gl.dns.resolve, "stuck.example")
            gl.sleep(0.02)
            assert.are.equal("suspended", g:status())
            gl.kill(g)
            assert.is_true(g:dead())
            assert.has_error(function() g:wait() end)
            settle()
        end))

        it("many cancelled lookups leave nothing behind", green(function()
            blackhole()
            local threads = {}
            for i = 1, 50 do
                threads[i] = gl.spawn(function()
                    return pcall(gl.with_timeout, 0.01 + (i % 5) * 0.01, gl.dns.getaddrinfo,
                        "stuck" .. i .. ".example")
                end)
            end
            for i = 1, 50 do
                local ok, okf, e = pcall(threads[i].wait, threads[i])
                assert.is_true(ok)
                assert.is_false(okf)
                assert.is_true(gl.is_timeout(e))
            end
            settle()
        end))
    end)

    describe("the process", function()
        local function run(script)
            local path = os.tmpname()
            local f = assert(io.open(path, "w"))
            f:write(script)
            f:close()
            local t0 = os.time()
            local p = io.popen("timeout 20 " .. GL .. " " .. path .. " 2>&1; echo rc=$?")
            local out = p:read("a")
            p:close()
            os.remove(path)
            return out, os.time() - t0
        end

        it("exits once its lookups are done", function()
            local out, dt = run([[
                print(gl.dns.getaddrinfo("localhost", 1, "inet")[1].addr)
                print(gl.dns.getaddrinfo("::1", 1)[1].addr)
                print(select(2, gl.dns.getaddrinfo("a.invalid")))
                -- through the machine's resolver, whatever it answers (or not)
                print(pcall(gl.with_timeout, 3, gl.dns.resolve, "gl-test.example.com") ~= nil)
            ]])
            assert.are.equal("127.0.0.1\n::1\nno such host\ntrue\nrc=0\n", out)
            assert.is_true(dt <= 6)
        end)

        it("exits after a lookup that timed out or was cancelled", function()
            local out, dt = run([[
                gl.dns.configure { nameservers = { "127.0.0.1:1" }, resolv_conf = "/dev/null",
                    timeout = 0.2, attempts = 1 }
                print(gl.dns.getaddrinfo("stuck.example"))
                local g = gl.spawn(gl.dns.resolve, "stuck2.example")
                gl.sleep(0.01)
                g:kill()
            ]])
            assert.are.equal("nil\ttimeout\nrc=0\n", out)
            assert.is_true(dt <= 3)
        end)
    end)
end)
