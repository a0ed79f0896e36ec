-- ngx.re on PCRE2: the examples of lua-nginx-module's documentation, each option letter,
-- errors as OpenResty reports them, and gsub/match cross-checked against perl.
local helper = require "helper"
local proc = require "proc"
local compat = require "gl.compat.ngx"
local ngx = compat.install()
local re = ngx.re

describe("ngx.re.match", function()
    it("returns the captures table with [0], unmatched groups false, named groups", function()
        local m = re.match("hello, 1234", "[0-9]+")
        assert.equal("1234", m[0])
        m = re.match("hello, 1234", "([0-9])[0-9]+")
        assert.equal("1234", m[0]); assert.equal("1", m[1])
        m = re.match("hello, 1234", "([0-9])(?<remaining>[0-9]+)")
        assert.equal("1234", m[0]); assert.equal("1", m[1]); assert.equal("234", m[2])
        assert.equal("234", m.remaining)
        m = re.match("hello, world", "(world)|(hello)|(?<named>howdy)")
        assert.equal("hello", m[0]); assert.is_false(m[1]); assert.equal("hello", m[2])
        assert.is_false(m[3]); assert.is_false(m.named)
        assert.is_nil(re.match("hello", "[0-9]"))
    end)

    it("ctx.pos is where matching starts and is moved past the match", function()
        local ctx = {}
        local m = re.match("1234, hello", "[0-9]+", "", ctx)
        assert.equal("1234", m[0]); assert.equal(5, ctx.pos)
        ctx = { pos = 2 }
        m = re.match("1234, hello", "[0-9]+", "", ctx)
        assert.equal("234", m[0]); assert.equal(5, ctx.pos)
        ctx = { pos = 5 }
        assert.is_nil(re.match("1234, hello", "[0-9]+", "", ctx))
        assert.equal(5, ctx.pos)
    end)

    it("fills a given res table", function()
        local res = { "stale" }
        local m = re.match("ab", "(a)(b)", "", nil, res)
        assert.equal(res, m)
        assert.same({ [0] = "ab", "a", "b" }, res)
    end)

    it("honours the option letters i x u U a s m D J d j o", function()
        assert.equal("hello", re.match("hello, world", "HEL LO", "ix")[0])
        assert.equal("美好", re.match("hello, 美好生活", "HELLO, (.{2})", "iu")[1])
        assert.equal("美好", re.match("hello, 美好生活", "HELLO, (.{2})", "iU")[1])
        assert.equal(6, #re.match("hello, 美好生活", "HELLO, (.{6})", "i")[1]) -- bytes without u
        assert.is_nil(re.match("hello 123", "\\d+", "a"))
        assert.equal("123", re.match("123 hello", "\\d+", "a")[0])
        assert.is_nil(re.match("a\nb", "a.b"))
        assert.equal("a\nb", re.match("a\nb", "a.b", "s")[0])
        assert.is_nil(re.match("a\nb", "^b"))
        assert.equal("b", re.match("a\nb", "^b", "m")[0])
        local m = re.match("hello, world", "(?<named>\\w+), (?<named>\\w+)", "D")
        assert.same({ "hello", "world" }, m.named)
        m = re.match("hello", "(?<n>x)?(?<n>hello)", "D")
        assert.same({ "hello" }, m.n) -- an unmatched duplicate is left out
        assert.equal("A", re.match("A", "\\u0041", "J")[0])
        assert.equal("he", re.match("hello", "he|hello")[0])
        assert.equal("hello", re.match("hello", "he|hello", "d")[0]) -- DFA: the longest
        for _ = 1, 3 do assert.equal("42", re.match("x42", "\\d+", "jo")[0]) end
    end)

    it("an unknown option raises; a bad pattern or subject returns nil, err", function()
        local err = helper.raises(re.match, "a", "a", "k")
        assert.matches('unknown flag "k" %(flags "k"%)', err)
        local m, cerr = re.match("a", "(abc")
        assert.is_nil(m)
        assert.equal('pcre2_compile() failed: missing closing parenthesis in "(abc" at ""', cerr)
        local bad, eerr = re.match("\xff\xfe", ".", "u")
        assert.is_nil(bad); assert.matches("^pcre_exec%(%) failed: %-%d+$", eerr)
        assert.matches("string expected", helper.raises(re.match, "a", nil))
    end)
end)

describe("ngx.re.find", function()
    it("returns from, to (inclusive), the nth group's, nil on no match", function()
        assert.same({ 8, 11 }, { re.find("hello, 1234", "([0-9]+)", "jo") })
        assert.same({ 9, 11 }, { re.find("hello, 1234", "([0-9])([0-9]+)", "jo", nil, 2) })
        assert.same({ 8, 8 }, { re.find("hello, 1234", "([0-9])([0-9]+)", "", nil, 1) })
        assert.same({ nil, nil, "nth out of bound" }, { re.find("hello, 1234", "([0-9])", "", nil, 3) })
        assert.is_nil(re.find("hello", "[0-9]"))
        local ctx = { pos = 9 }
        assert.same({ 9, 11 }, { re.find("hello, 1234", "[0-9]+", "", ctx) })
        assert.equal(12, ctx.pos)
        assert.same({ 1, 0 }, { re.find("abc", "") }) -- an empty match at the start
    end)
end)

describe("ngx.re.gmatch", function()
    it("iterates over every match, empty ones included", function()
        local got = {}
        for m in re.gmatch("hello, world!", "([a-z]+)", "i") do got[#got + 1] = m[0] end
        assert.same({ "hello", "world" }, got)
        local it = assert(re.gmatch("hello, world!", "([a-z]+)", "i"))
        assert.equal("hello", it()[1]); assert.equal("world", it()[1]); assert.is_nil(it())
        assert.is_nil(it())
        local n = 0
        for m in re.gmatch("abc", "") do assert.equal("", m[0]); n = n + 1 end
        assert.equal(4, n)
        local names = {}
        for m in re.gmatch("k1=v1;k2=v2", "(?<k>\\w+)=(?<v>\\w+)") do names[m.k] = m.v end
        assert.same({ k1 = "v1", k2 = "v2" }, names)
        assert.same({ nil, 'pcre2_compile() failed: missing closing parenthesis in "(" at ""' },
            { re.gmatch("x", "(") })
    end)
end)

describe("ngx.re.sub and gsub", function()
    it("substitute templates with $0, $1, ${N} and $$", function()
        assert.same({ "hello, [12][1]34", 1 }, { re.sub("hello, 1234", "([0-9])[0-9]", "[$0][$1]") })
        assert.same({ "hello, 100234", 1 }, { re.sub("hello, 1234", "[0-9]", "${0}00") })
        assert.same({ "hello, $234", 1 }, { re.sub("hello, 1234", "[0-9]", "$$") })
        assert.same({ "hello, x1234", 1 }, { re.sub("hello, 1234", "([a-z])?([0-9])", "x$1$2") })
        assert.same({ "[hello,h], [world,w]", 2 }, { re.gsub("hello, world", "([a-z])[a-z]+", "[$0,$1]", "i") })
        assert.same({ "no digits", 0 }, { re.gsub("no digits", "[0-9]", "x") })
        assert.same({ "-a-b-c-", 4 }, { re.gsub("abc", "", "-") })
        assert.same({ nil, nil, "failed to compile the replacement template" },
            { re.sub("abc", "b", "$x") })
        assert.same({ nil, nil, "failed to compile the replacement template" },
            { re.sub("abc", "b", "${1") })
    end)

    it("call a function with the captures", function()
        assert.same({ "hello, [12][1]34", 1 }, { re.sub("hello, 1234", "([0-9])[0-9]", function(m)
            return "[" .. m[0] .. "][" .. m[1] .. "]"
        end) })
        assert.same({ "[hello,h], [world,w]", 2 }, { re.gsub("hello, world", "([a-z])[a-z]+", function(m)
            return "[" .. m[0] .. "," .. m[1] .. "]"
        end, "i") })
        assert.same({ "a1b1", 2 }, { re.gsub("a b ", " ", function() return 1 end) })
    end)

    it("agree with perl on a set of patterns", function()
        local cases = {
            { "x*", "axbxxc" }, { "[aeiou]", "the quick brown fox" }, { "(\\w+)@(\\w+)", "a@b c@d" },
            { "\\s+", "  lots   of\tspace " }, { "(?i)FOX", "fox Fox FOX" }, { "b|", "abc" },
            { "\\d{2,3}", "1 12 123 1234 12345" }, { "^", "line1\nline2" }, { "$", "end" },
        }
        local lines = {}
        for i, c in ipairs(cases) do
            local got = re.gsub(c[2], c[1], "<$0>")
            local hex = c[2]:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end)
            lines[#lines + 1] = ("%d\t%s\t%s\t%s"):format(i, c[1], hex, got:gsub("\n", "\\n"))
        end
        local input = proc.tempfile(table.concat(lines, "\n") .. "\n")
        local script = proc.tempfile([[
while (my $l = <STDIN>) {
    chomp $l;
    my ($i, $pat, $hex, $got) = split /\t/, $l, 4;
    $got = "" unless defined $got;
    my $s = pack("H*", $hex);
    (my $want = $s) =~ s/$pat/<$&>/g;
    $want =~ s/\n/\\n/g;
    print(($want eq $got ? "ok" : "MISMATCH"), " $i $want | $got\n");
}
]], ".pl")
        local ok, out = proc.run("perl " .. proc.quote(script) .. " < " .. proc.quote(input), 20)
        os.remove(input); os.remove(script)
        assert(ok, out)
        local n = 0
        for line in out:gmatch("[^\n]+") do
            n = n + 1
            assert.equal("ok", line:match("^(%S+)"), line)
        end
        assert.equal(#cases, n)
    end)
end)
