-- The TLS examples run for real: tls_echoserver.lua as its own gl process with a test
-- certificate, driven by tls_client.lua and by openssl s_client.
local helper = require "helper"
local proc = require "proc"
local green = helper.green

local stop_proc, run_bg = proc.finish, proc.run_bg

local GL = proc.GL
local dir

describe("TLS examples", function()
    lazy_setup(function()
        dir = os.tmpname()
        os.remove(dir)
        local ok, out = proc.run(([[
set -e
mkdir -p %s && cd %s
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout server.key -out server.pem -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1
]]):format(proc.quote(dir), proc.quote(dir)), 30)
        assert(ok, out)
    end)
    lazy_teardown(function() if dir then os.execute("rm -rf " .. proc.quote(dir)) end end)

    local function start_server(idle)
        local h = proc.start(("%s examples/tls_echoserver.lua 0 %s %s %s"):format(GL,
            proc.quote(dir .. "/server.pem"), proc.quote(dir .. "/server.key"), idle or 60))
        local port = tonumber(proc.wait_for(h, "port (%d+)"))
        return h, port
    end

    it("tls_client.lua fetches from tls_echoserver.lua, verifying its certificate",
        green(function()
            local h, port = start_server(0.5 * proc.SLOWDOWN)
            local out = run_bg(("%s examples/tls_client.lua localhost %d /hello %s"):format(GL,
                port, proc.quote(dir .. "/server.pem")))
            assert.matches("connected: TLSv1.3", out, 1, true)
            assert.matches("certificate for CN=localhost", out, 1, true)
            assert.matches("GET /hello HTTP/1.0\r\nHost: localhost\r\n", out, 1, true)
            stop_proc(h)
        end, 20))

    it("tls_client.lua refuses the server without its CA", green(function()
        local h, port = start_server()
        local out = run_bg(("%s examples/tls_client.lua localhost %d /"):format(GL, port))
        assert.matches("tls: certificate verify failed: self-signed certificate", out, 1, true)
        stop_proc(h)
    end, 20))

    it("tls_echoserver.lua echoes for openssl s_client", green(function()
        local h, port = start_server(0.5 * proc.SLOWDOWN)
        local input = proc.tempfile("line one\nline two\n")
        local out = run_bg(("openssl s_client -connect 127.0.0.1:%d -CAfile %s -brief -ign_eof")
            :format(port, proc.quote(dir .. "/server.pem")), { stdin = input })
        os.remove(input)
        assert.matches("Verification: OK", out, 1, true)
        assert.matches("line one\nline two\n", out, 1, true)
        stop_proc(h)
    end, 20))
end)
