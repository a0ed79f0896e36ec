/* C tests for src/alloc.c: blocks keep their bytes across every kind of resize, freed blocks
 * are reused by their size class, a Lua program that churns through every size runs right,
 * and warnings behave as luaL_newstate's. */
#include "alloc.h"
#include "check.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int has_bytes(const unsigned char *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i))
            return 0;
    return 1;
}

static void fill(unsigned char *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i);
}

static void test_resizes(lua_State *L)
{
    void *ud;
    lua_Alloc f = lua_getallocf(L, &ud);
    /* sizes around the class edges (24, 40, ...) and the small limit (1032) */
    static const size_t sizes[] = {1, 8, 24, 25, 40, 41, 200, 1000, 1032, 1033, 5000, 70000};
    size_t n = sizeof sizes / sizeof *sizes;
    int kept = 1;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            unsigned char *p = f(ud, NULL, LUA_TSTRING, sizes[i]);
            fill(p, sizes[i], (unsigned char)i);
            unsigned char *q = f(ud, p, sizes[i], sizes[j]);
            size_t common = sizes[i] < sizes[j] ? sizes[i] : sizes[j];
            if (!q || !has_bytes(q, common, (unsigned char)i))
                kept = 0;
            fill(q, sizes[j], 7); /* the whole new size is writable (ASan checks) */
            CHECK(f(ud, q, sizes[j], 0) == NULL);
        }
    }
    CHECK(kept);
}

static void test_reuse(lua_State *L)
{
#if !defined(__SANITIZE_ADDRESS__)
    void *ud;
    lua_Alloc f = lua_getallocf(L, &ud);
    void *a = f(ud, NULL, 0, 33);
    f(ud, a, 33, 0);
    void *b = f(ud, NULL, 0, 40); /* the same class as 33: the freed block comes back */
    CHECK(a == b);
    void *c = f(ud, b, 40, 26); /* still that class: resized in place */
    CHECK(c == b);
    f(ud, c, 26, 0);
#else
    (void)L;
#endif
}

/* A burst of blocks freed at once: the lists keep no more than the heap in use (and 256 KB),
 * so a shrinking heap hands the rest back to glibc. */
static void test_bounded(lua_State *L, gl_heap *H)
{
    enum { N = 40000 };
    static void *blocks[N];
    void *ud;
    lua_Alloc f = lua_getallocf(L, &ud);
    lua_gc(L, LUA_GCCOLLECT);
    size_t before = (size_t)lua_gc(L, LUA_GCCOUNT) * 1024;
    for (int i = 0; i < N; i++)
        blocks[i] = f(ud, NULL, 0, 40);
    for (int i = 0; i < N; i++)
        f(ud, blocks[i], 40, 0);
    size_t cached = gl_heap_cached(H);
#if !defined(__SANITIZE_ADDRESS__)
    CHECK(cached > 0);
#endif
    /* N x 40 B is 1.6 MB; what stays is bounded by what Lua still holds */
    if (cached > before + 2 * 256 * 1024)
        printf("cached %zu, heap before %zu\n", cached, before);
    CHECK(cached <= before + 2 * 256 * 1024);
}

static const char churn[] =
    "local parts, t = {}, {}\n"
    "for n = 0, 2100 do parts[#parts + 1] = string.rep('x', n) .. n end\n"
    "for i = 1, 6000 do t[i] = i end\n"
    "for i = 1, 6000, 2 do t[i] = nil end\n"
    "collectgarbage()\n"
    "local sum = 0\n"
    "for i = 2, 6000, 2 do sum = sum + t[i] end\n"
    "for n = 0, 2100 do assert(parts[n + 1] == string.rep('x', n) .. n) end\n"
    "local h = {}\n"
    "for i = 1, 3000 do h['k' .. i] = {i} end\n"
    "for i = 1, 3000 do assert(h['k' .. i][1] == i) end\n"
    "return sum\n";

static void test_lua_program(lua_State *L)
{
    int st = luaL_loadstring(L, churn) || lua_pcall(L, 0, 1, 0);
    if (st)
        printf("churn: %s\n", lua_tostring(L, -1));
    CHECK(st == LUA_OK && lua_tointeger(L, -1) == 9003000);
    lua_pop(L, 1);
}

static void test_warnings(lua_State *L)
{
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    dup2(fileno(tmp), 2);
    lua_warning(L, "hidden: warnings start off", 0);
    lua_warning(L, "@on", 0);
    lua_warning(L, "one ", 1);
    lua_warning(L, "@piece", 1); /* a piece of a message, not a control message */
    lua_warning(L, "", 0);
    lua_warning(L, "@off", 0);
    lua_warning(L, "hidden again", 0);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[256] = {0};
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    fclose(tmp);
    buf[n] = 0;
    CHECK(strcmp(buf, "Lua warning: one @piece\n") == 0);
}

int main(void)
{
    gl_heap *H;
    lua_State *L = gl_heap_newstate(&H);
    CHECK(L != NULL);
    luaL_openlibs(L);
    test_resizes(L);
    test_reuse(L);
    test_lua_program(L);
    test_bounded(L, H);
    test_warnings(L);
    gl_heap_close(L, H);
    printf("alloc: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
