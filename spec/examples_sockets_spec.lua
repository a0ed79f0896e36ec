-- The socket examples run for real: each is started as its own gl process and driven by
-- real clients (Python sockets, nc) from this one.
local helper = require "helper"
local proc = require "proc"
local green = helper.green

local GL = proc.GL

local function start_example(name, args, pattern)
    local h = proc.start(("%s examples/%s %s"):format(GL, name, args or ""))
    local port = tonumber(proc.wait_for(h, pattern or "port (%d+)"))
    return h, port
end

local function python(code, timeout)
    local path = proc.tempfile(code, ".py")
    local ok, out = proc.run("python3 " .. path, timeout or 30)
    os.remove(path)
    return ok, out
end

describe("examples", function()
    it("chatserver.lua: each line reaches every other participant, never the sender",
        green(function()
            local h, port = start_example("chatserver.lua", "0 127.0.0.1")
            local ok, out = python(([[
import socket, time
def client():
    s = socket.create_connection(("127.0.0.1", %d), timeout=5)
    return s, s.makefile("r")
a, b, c = client(), client(), client()
time.sleep(0.2)  # let the server register all three
a[0].sendall(b"hello from a\n")
assert b[1].readline() == "hello from a\n"
assert c[1].readline() == "hello from a\n"
b[0].sendall(b"b here\n")
assert a[1].readline() == "b here\n"
assert c[1].readline() == "b here\n"
c[0].close()      # a leaver is dropped; the others go on
time.sleep(0.2)
a[0].sendall(b"still here\n")
assert b[1].readline() == "still here\n"
a[0].settimeout(0.3)
try:
    extra = a[1].readline()
    raise SystemExit("the sender got its own line back: %%r" %% extra)
except socket.timeout:
    pass
print("CHAT OK")
]]):format(port))
            pcall(proc.wait_for, h, "Participant left chat%.", 10) -- the server sees the close
            local log = proc.stop(h)
            assert.is_true(ok, out)
            assert.matches("CHAT OK", out)
            assert.matches("ChatServer starting up on port", log)
            assert.matches("Participant joined chat%.", log)
            assert.matches("Chat: hello from a", log)
            assert.matches("Participant left chat%.", log)
        end, 30))

    it("echoserver.lua answers nc and a Python client", green(function()
        local h, port = start_example("echoserver.lua", "0 127.0.0.1")
        local ok, out = proc.run(("printf 'ping over nc\\n' | nc -q 1 -w 3 127.0.0.1 %d"):format(port))
        assert.matches("ping over nc", out)
        local pok, pout = python(([[
import socket
s = socket.create_connection(("127.0.0.1", %d), timeout=5)
s.sendall(b"x" * 100000)
got = b""
while len(got) < 100000:
    got += s.recv(65536)
assert got == b"x" * 100000
print("ECHO OK")
]]):format(port))
        proc.stop(h)
        assert.is_true(pok, pout)
        assert.matches("ECHO OK", pout)
        assert.is_true(ok ~= nil)
    end, 30))

    it("echoserver.lua holds 2,000 concurrent connections from another process",
        green(function()
            local h, port = start_example("echoserver.lua", "0 127.0.0.1")
            local ok, out = python(([[
import socket, selectors, resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
N = 2000
socks = [socket.create_connection(("127.0.0.1", %d), timeout=10) for _ in range(N)]
for i, s in enumerate(socks):
    s.sendall(b"conn %%d\n" %% i)
ok = 0
for i, s in enumerate(socks):
    want = b"conn %%d\n" %% i
    got = b""
    while len(got) < len(want):
        got += s.recv(100)
    ok += got == want
print("ECHOED", ok)
]]):format(port), 60)
            proc.stop(h)
            assert.is_true(ok, out)
            assert.matches("ECHOED 2000", out)
        end, 90))

    it("echoserver.lua survives running out of file descriptors (EMFILE)", green(function()
        local h = proc.start(("sh -c 'ulimit -n 40; exec %s examples/echoserver.lua 0 127.0.0.1'"):format(GL))
        local port = tonumber(proc.wait_for(h, "port (%d+)"))
        local ok, out = python(([[
import socket, time
held = []
for _ in range(60):   # more than the server can accept
    try:
        held.append(socket.create_connection(("127.0.0.1", %d), timeout=2))
    except OSError:
        break
time.sleep(0.5)
for s in held:
    s.close()
time.sleep(0.3)
s = socket.create_connection(("127.0.0.1", %d), timeout=5)
s.settimeout(5)
s.sendall(b"alive\n")
print("GOT", s.recv(100).decode().strip())
]]):format(port, port), 30)
        local log = proc.stop(h)
        assert.is_true(ok, out)
        assert.matches("GOT alive", out)
        assert.matches("backing off", log)
    end, 40))

    it("forwarder.lua pipes a connection both ways to its target", green(function()
        local echo, eport = start_example("echoserver.lua", "0 127.0.0.1")
        local fwd, fport = start_example("forwarder.lua",
            ("0 127.0.0.1 %d 127.0.0.1"):format(eport), "Forwarding port (%d+)")
        local ok, out = python(([[
import socket
s = socket.create_connection(("127.0.0.1", %d), timeout=5)
s.sendall(b"through the forwarder\n")
print("GOT", s.makefile("r").readline().strip())
]]):format(fport))
        proc.stop(fwd)
        proc.stop(echo)
        assert.is_true(ok, out)
        assert.matches("GOT through the forwarder", out)
    end, 30))

    it("udp_echo.lua sends datagrams back", green(function()
        local h, port = start_example("udp_echo.lua", "0 127.0.0.1")
        local ok, out = python(([[
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"datagram", ("127.0.0.1", %d))
print("GOT", s.recvfrom(100)[0].decode())
]]):format(port))
        proc.stop(h)
        assert.is_true(ok, out)
        assert.matches("GOT datagram", out)
    end, 30))

    it("green_threads.lua finishes every job", green(function()
        local ok, out = proc.run(GL .. " examples/green_threads.lua")
        assert.is_true(ok, out)
        for job = 1, 6 do assert.matches("finished job " .. job, out) end
        assert.matches("all done", out)
    end, 30))
end)
