-- The gl interpreter as a child process (API.md section 1).
local gl = require "gl"
local helper = require "helper"
local green = helper.green

local GL = os.getenv("GL_BIN") or "build/gl"
local MODULE_DIR = os.getenv("GL_MODULE_DIR") or "build/src/module"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function tmpdir()
    local p = os.tmpname()
    os.remove(p)
    assert(os.execute("mkdir -p " .. q(p)))
    return p
end

local function slurp(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("a")
    f:close()
    return s
end

local function write(path, s)
    local f = assert(io.open(path, "wb"))
    f:write(s)
    f:close()
end

-- Runs `cmd` (a shell command line; the script file is $dir/s.lua) bounded by timeout 10.
-- Returns {code = exit status, out = stdout, err = stderr, dir = dir}.
local function run(cmd, script, opts)
    opts = opts or {}
    local dir = tmpdir()
    if script then write(dir .. "/s.lua", script) end
    local line = ("cd %s && %s timeout 10 %s >%s 2>%s"):format(
        q(os.getenv("PWD") or "."), opts.env or "", cmd:gsub("%$dir", dir), q(dir .. "/out"), q(dir .. "/err"))
    if opts.stdin then
        write(dir .. "/in", opts.stdin)
        line = line .. " <" .. q(dir .. "/in")
    end
    local _, _, code = os.execute(line)
    local r = { code = code, out = slurp(dir .. "/out"), err = slurp(dir .. "/err"), dir = dir }
    os.execute("rm -rf " .. q(dir))
    return r
end

describe("the gl interpreter", function()
    it("runs a script with its arguments in arg[] and ...", green(function()
        local r = run(GL .. " $dir/s.lua one 'two words' 3", [[
            print(arg[0]:match("s%.lua$") ~= nil, arg[1], arg[2], arg[3], #arg, select("#", ...))
            print(arg[-1] ~= nil)
        ]])
        assert.are.equal(0, r.code, r.err)
        assert.are.equal("true\tone\ttwo words\t3\t3\t3\ntrue\n", r.out)
    end))

    it("preloads gl as a global and as require 'gl'", green(function()
        local r = run(GL .. " $dir/s.lua", [[print(gl == require("gl"), type(gl.spawn))]])
        assert.are.equal(0, r.code, r.err)
        assert.are.equal("true\tfunction\n", r.out)
    end))

    it("runs -e code", green(function()
        local r = run(GL .. [[ -e 'print(1 + 1)' -e 'x = 5' -e 'print(x)']])
        assert.are.equal(0, r.code, r.err)
        assert.are.equal("2\n5\n", r.out)
    end))

    it("requires -l modules into globals", green(function()
        local dir = tmpdir()
        write(dir .. "/mymod.lua", "return { answer = 42 }")
        local r = run(GL .. " -l mymod -e 'print(mymod.answer)'", nil,
            { env = "LUA_PATH=" .. q(dir .. "/?.lua") })
        os.execute("rm -rf " .. q(dir))
        assert.are.equal(0, r.code, r.err)
        assert.are.equal("42\n", r.out)
    end))

    it("prints the versions with -v and --version", green(function()
        for _, flag in ipairs({ "-v", "--version" }) do
            local r = run(GL .. " " .. flag)
            assert.are.equal(0, r.code, r.err)
            assert.matches("^gl %d+%.%d+%.%d+", r.out)
            assert.matches("Lua 5%.4", r.out)
            assert.matches("libevent", r.out)
            assert.matches("OpenSSL", r.out)
        end
    end))

    it("reads the script from stdin with -", green(function()
        local r = run(GL .. " - a b", nil, { stdin = "print('stdin', ...)\n" })
        assert.are.equal(0, r.code, r.err)
        assert.are.equal("stdin\ta\tb\n", r.out)
    end))

    it("rejects an unknown option", green(function()
        local r = run(GL .. " --bogus")
        assert.are.equal(1, r.code)
        assert.matches("unrecognized option", r.err)
    end))

    it("keeps running after the main chunk returns until spawned threads finish", green(function()
        local r = run(GL .. " $dir/s.lua", [[
            gl.spawn(function() gl.sleep(0.05); print("late") end)
            gl.spawn_after(0.02, function() print("after") end)
            print("main done")
        ]])
        assert.are.equal(0, r.code, r.err)
        assert.are.equal("main done\nafter\nlate\n", r.out)
    end))

    it("os.exit exits at once", green(function()
        local r = run(GL .. " $dir/s.lua", [[
            gl.spawn(function() gl.sleep(5); print("never") end)
            io.stdout:write("bye\n")
            os.exit(3)
        ]])
        assert.are.equal(3, r.code)
        assert.are.equal("bye\n", r.out)
    end))

    it("exits 1 with a traceback for an uncaught error in the main thread", green(function()
        local r = run(GL .. " $dir/s.lua", [[
            local function f() error("main failed") end
            f()
        ]])
        assert.are.equal(1, r.code)
        assert.matches("main failed", r.err)
        assert.matches("stack traceback", r.err)
        assert.matches("s%.lua:1", r.err)
        -- reported once
        local _, n = r.err:gsub("main failed", "")
        assert.are.equal(1, n)
    end))

    it("exits 1 for a syntax error in the script", green(function()
        local r = run(GL .. " $dir/s.lua", "this is not lua")
        assert.are.equal(1, r.code)
        assert.matches("s%.lua:1:", r.err)
    end))

    it("prints a non-main thread's error with its id and keeps the others running", green(function()
        local r = run(GL .. " $dir/s.lua", [[
            local bad = gl.spawn(function() gl.sleep(0.01); error("thread failed") end)
            gl.spawn(function() gl.sleep(0.05); print("still running") end)
            print("bad id", bad.id)
        ]])
        assert.are.equal(0, r.code, r.err)
        local id = r.out:match("bad id\t(%d+)")
        assert.is_not_nil(id)
        assert.matches("green thread " .. id, r.err)
        assert.matches("thread failed", r.err)
        assert.matches("stack traceback", r.err)
        assert.matches("still running\n", r.out)
    end))

    describe("SIGINT", function()
        -- starts the child in the background; returns its pid, the dir, and a function
        -- that waits for the exit status
        local function start(script)
            local dir = tmpdir()
            write(dir .. "/s.lua", script)
            local cmd = ("(timeout 10 %s %s >%s 2>%s; echo $? >%s) &"):format(
                GL, q(dir .. "/s.lua"), q(dir .. "/out"), q(dir .. "/err"), q(dir .. "/rc"))
            assert(os.execute(cmd))
            local function ready()
                return (slurp(dir .. "/out") or ""):find("ready %d+\n") ~= nil
            end
            assert(helper.wait_until(ready, 5, 0.005), "the child did not start")
            return dir
        end
        local function finish(dir)
            assert(helper.wait_until(function() return slurp(dir .. "/rc") ~= nil end, 5, 0.005))
            local r = { code = tonumber(slurp(dir .. "/rc")), out = slurp(dir .. "/out"), err = slurp(dir .. "/err") }
            os.execute("rm -rf " .. q(dir))
            return r
        end
        -- the child announces "ready <its pid>" (read from /proc/self/stat)
        local function interrupt(dir)
            local pid = assert(tonumber(slurp(dir .. "/out"):match("ready (%d+)")))
            assert(os.execute(("kill -INT %d"):format(pid)))
        end
        local READY = [[io.stdout:write("ready ", io.open("/proc/self/stat"):read("n"), "\n")
                io.stdout:flush()]]

        it("raises gl.Interrupt in the main thread, which can catch it", green(function()
            local dir = start([[
                local ok, err = pcall(function()
                    ]] .. READY .. [[
                    gl.sleep(5)
                end)
                print("caught", err == gl.Interrupt)
            ]])
            interrupt(dir)
            local r = finish(dir)
            assert.are.equal(0, r.code, r.err)
            assert.matches("caught\ttrue", r.out)
        end))

        it("uncaught, exits 130", green(function()
            local dir = start([[
                ]] .. READY .. [[
                local q = gl.Queue()
                gl.spawn(function() gl.sleep(5) end)
                q:get(true, 5)
            ]])
            interrupt(dir)
            local r = finish(dir)
            assert.are.equal(130, r.code)
        end))

        it("after the main thread has ended, exits 130", green(function()
            local dir = start([[
                gl.spawn(function()
                    ]] .. READY .. [[
                    gl.sleep(5)
                end)
            ]])
            interrupt(dir)
            local r = finish(dir)
            assert.are.equal(130, r.code)
        end))
    end)

    it("gl -i reads lines through the hub while green threads run", green(function()
        local dir = tmpdir()
        local feed = table.concat({
            "(echo 'gl.spawn(function() for i = 1, 3 do print(\"tick \" .. i); io.stdout:flush(); gl.sleep(0.01) end end)'",
            ("for i in $(seq 200); do grep -q 'tick 3' %s && break; sleep 0.02; done"):format(q(dir .. "/out")),
            "echo '1 + 1'",
            "echo 'for i = 1, 2 do'", "echo '  print(\"loop\", i)'", "echo 'end'",
            "echo 'error(\"oops\")') | timeout 10 " .. GL .. " -i >" .. q(dir .. "/out") .. " 2>" .. q(dir .. "/err"),
        }, "; ")
        local _, _, code = os.execute(feed)
        local out, err = slurp(dir .. "/out"), slurp(dir .. "/err")
        os.execute("rm -rf " .. q(dir))
        assert.are.equal(0, code, err)
        -- the ticks came out while the REPL waited for the next line
        local t3, two = out:find("tick 3", 1, true), out:find("\n2\n", 1, true) or out:find("> 2\n", 1, true)
        assert.is_not_nil(t3, out)
        assert.is_not_nil(two, out)
        assert.is_true(t3 < two, out)
        assert.matches("loop\t1\n.*loop\t2\n", out)
        assert.matches("oops", err)
    end))

    it("require 'gl' works from the stock lua5.4 with gl.run", green(function()
        local r = run(("lua5.4 -e %s $dir/s.lua"):format(
            q("package.cpath = '" .. MODULE_DIR .. "/?.so;' .. package.cpath")), [[
            local gl = require "gl"
            local r = table.pack(gl.run(function(a, b)
                local t = gl.spawn(function() gl.sleep(0.01); return "child" end)
                return a + b, t:wait()
            end, 2, 3))
            print(r.n, r[1], r[2])
            print(pcall(gl.run, function() error("inner", 0) end))
            print(pcall(gl.sleep, 0))
        ]])
        assert.are.equal(0, r.code, r.err)
        local lines = {}
        for l in r.out:gmatch("[^\n]+") do lines[#lines + 1] = l end
        assert.are.equal("2\t5\tchild", lines[1])
        assert.are.equal("false\tinner", lines[2])
        assert.matches("^false\tgl.sleep: not in a green thread", lines[3])
    end))
end)
