-- gl.hub: the backend's name, choosing it with --hub and GL_HUB, and gl.hub.use.
local proc = require "proc"
local gl = require "gl"

local function backend_of(cmd)
    local ok, out = proc.run(cmd .. [[ -e 'io.write(gl.hub.backend())']], 10)
    assert(ok, out)
    return out
end

describe("gl.hub", function()
    it("names the backend with one word", function()
        local name = gl.hub.backend()
        assert.is_truthy(({ epoll = true, poll = true, select = true })[name], name)
    end)

    it("is chosen with --hub or GL_HUB", function()
        assert.equal("poll", backend_of(proc.GL .. " --hub=poll"))
        assert.equal("select", backend_of(proc.GL .. " --hub=select"))
        assert.equal("poll", backend_of("GL_HUB=poll " .. proc.GL))
        assert.equal("epoll", backend_of(proc.GL .. " --hub=epoll"))
    end)

    it("rejects an unknown backend on the command line", function()
        local ok, out = proc.run(proc.GL .. " --hub=kqueue -e 'print(1)'", 10)
        assert.is_falsy(ok)
        assert.matches("unknown hub 'kqueue'", out)
    end)

    it("accepts gl.hub.use of the running backend and refuses to switch later", function()
        gl.hub.use(gl.hub.backend())
        local other = gl.hub.backend() == "poll" and "select" or "poll"
        assert.has_error(function() gl.hub.use(other) end)
        assert.has_error(function() gl.hub.use("bogus") end)
    end)
end)
