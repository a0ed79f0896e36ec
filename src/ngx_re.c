/* ngx.re's engine: PCRE2 patterns compiled with OpenResty's option letters, one match at a
 * time into the pattern's own match data, and the captures table built from it. Caching,
 * gmatch/sub/gsub loops and replacement templates are lua/gl/compat/ngx/re.lua's. */
#include "ngx.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#define RE_MT "gl.ngx.regex"
#define DFA_WORKSPACE 100

enum { RE_DFA = 1, RE_NO_UTF_CHECK = 2, RE_DUPNAMES = 4 };

typedef struct {
    pcre2_code *code;
    pcre2_match_data *md;
    uint32_t ncap; /* capture groups, [0] not counted */
    int flags;     /* RE_* */
    int rc;        /* of the last match: pairs set (DFA: 1), 0 before any */
} gl_re;

static gl_re *re_check(lua_State *L, int idx)
{
    gl_re *re = luaL_checkudata(L, idx, RE_MT);
    if (!re->code)
        luaL_error(L, "ngx.re: the regex is freed");
    return re;
}

static int re_gc(lua_State *L)
{
    gl_re *re = luaL_checkudata(L, 1, RE_MT);
    if (re->md)
        pcre2_match_data_free(re->md);
    if (re->code)
        pcre2_code_free(re->code);
    re->md = NULL;
    re->code = NULL;
    return 0;
}

/* core.re_compile(pattern, opts) -> regex | nil, err. opts: OpenResty's letters; an
 * unknown one raises. The name table goes in the regex's user value as {name, n, ...}. */
static int re_compile(lua_State *L)
{
    size_t plen, olen;
    const char *pat = luaL_checklstring(L, 1, &plen);
    const char *opts = luaL_optlstring(L, 2, "", &olen);
    uint32_t copts = 0;
    int flags = 0, jit = 0;
    for (size_t i = 0; i < olen; i++) {
        switch (opts[i]) {
        case 'i':
            copts |= PCRE2_CASELESS;
            break;
        case 'm':
            copts |= PCRE2_MULTILINE;
            break;
        case 's':
            copts |= PCRE2_DOTALL;
            break;
        case 'x':
            copts |= PCRE2_EXTENDED;
            break;
        case 'u':
            copts |= PCRE2_UTF;
            break;
        case 'U':
            copts |= PCRE2_UTF;
            flags |= RE_NO_UTF_CHECK;
            break;
        case 'a':
            copts |= PCRE2_ANCHORED;
            break;
        case 'D':
            copts |= PCRE2_DUPNAMES;
            flags |= RE_DUPNAMES;
            break;
        /* PCRE2 has no JAVASCRIPT_COMPAT; these are what it split into */
        case 'J':
            copts |= PCRE2_ALT_BSUX | PCRE2_ALLOW_EMPTY_CLASS | PCRE2_MATCH_UNSET_BACKREF;
            break;
        case 'd':
            flags |= RE_DFA;
            break;
        case 'j':
            jit = 1;
            break;
        case 'o':
            break; /* compile once: the Lua side caches */
        default:
            return luaL_error(L, "unknown flag \"%c\" (flags \"%s\")", opts[i], opts);
        }
    }
    gl_re *re = lua_newuserdatauv(L, sizeof *re, 1); /* stack: pat, opts, re */
    memset(re, 0, sizeof *re);
    luaL_setmetatable(L, RE_MT);
    int err;
    PCRE2_SIZE off;
    re->code = pcre2_compile((PCRE2_SPTR)pat, plen, copts, &err, &off, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(err, msg, sizeof msg) < 0)
            snprintf((char *)msg, sizeof msg, "error %d", err);
        lua_pushnil(L);
        lua_pushfstring(L, "pcre2_compile() failed: %s in \"%s\" at \"%s\"", (char *)msg, pat,
                        off <= plen ? pat + off : "");
        return 2;
    }
    if (jit && !(flags & RE_DFA))
        (void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    re->md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!re->md)
        return luaL_error(L, "ngx.re: out of memory");
    re->flags = flags;
    (void)pcre2_pattern_info(re->code, PCRE2_INFO_CAPTURECOUNT, &re->ncap);
    uint32_t count = 0, esize = 0;
    PCRE2_SPTR table = NULL;
    (void)pcre2_pattern_info(re->code, PCRE2_INFO_NAMECOUNT, &count);
    lua_createtable(L, (int)count * 2, 0);
    if (count > 0) {
        (void)pcre2_pattern_info(re->code, PCRE2_INFO_NAMEENTRYSIZE, &esize);
        (void)pcre2_pattern_info(re->code, PCRE2_INFO_NAMETABLE, &table);
        for (uint32_t i = 0; i < count; i++) {
            PCRE2_SPTR e = table + (size_t)i * esize;
            lua_pushstring(L, (const char *)e + 2);
            lua_rawseti(L, -2, (lua_Integer)i * 2 + 1);
            lua_pushinteger(L, (e[0] << 8) | e[1]);
            lua_rawseti(L, -2, (lua_Integer)i * 2 + 2);
        }
    }
    lua_setiuservalue(L, -2, 1);
    return 1;
}

/* core.re_exec(regex, subject, pos) -> from, to | nil | nil, err. pos and the results
 * are 0-based byte offsets, to exclusive: the Lua side adds one where OpenResty does. */
static int re_exec(lua_State *L)
{
    gl_re *re = re_check(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    lua_Integer pos = luaL_optinteger(L, 3, 0);
    if (pos < 0 || (size_t)pos > len) {
        lua_pushnil(L);
        return 1;
    }
    uint32_t mopts = (re->flags & RE_NO_UTF_CHECK) ? PCRE2_NO_UTF_CHECK : 0;
    int rc;
    re->rc = 0;
    if (re->flags & RE_DFA) {
        int ws[DFA_WORKSPACE];
        rc = pcre2_dfa_match(re->code, (PCRE2_SPTR)s, len, (PCRE2_SIZE)pos, mopts, re->md, NULL, ws,
                             DFA_WORKSPACE);
        if (rc >= 0)
            rc = 1; /* the longest match only; 0 = more matches than slots */
    } else {
        rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, (PCRE2_SIZE)pos, mopts, re->md, NULL);
    }
    if (rc == PCRE2_ERROR_NOMATCH) {
        lua_pushnil(L);
        return 1;
    }
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "pcre_exec() failed: %d", rc);
        return 2;
    }
    if (rc == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "capture size too small");
        return 2;
    }
    re->rc = rc;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
    lua_pushinteger(L, (lua_Integer)ov[0]);
    lua_pushinteger(L, (lua_Integer)ov[1]);
    return 2;
}

/* core.re_caps(regex, subject [, res [, nth]]) -> res: the last match's captures, [0] the
 * whole match, unset groups false, named groups by name too (lists with the D option).
 * With nth (a number) instead: from, to (1-based, inclusive) of that group, or nil. */
static int re_caps(lua_State *L)
{
    gl_re *re = re_check(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    if (re->rc <= 0)
        return luaL_error(L, "ngx.re: no match to take captures from");
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
    uint32_t ncap = (re->flags & RE_DFA) ? 0 : re->ncap;
    if (lua_type(L, 3) == LUA_TNUMBER) {
        lua_Integer nth = lua_tointeger(L, 3);
        if (nth < 0)
            nth = 0;
        if (nth > (lua_Integer)re->ncap) {
            lua_pushnil(L);
            lua_pushnil(L);
            lua_pushliteral(L, "nth out of bound");
            return 3;
        }
        if (nth >= re->rc || ov[2 * nth] == PCRE2_UNSET) {
            lua_pushnil(L);
            return 1;
        }
        lua_pushinteger(L, (lua_Integer)ov[2 * nth] + 1);
        lua_pushinteger(L, (lua_Integer)ov[2 * nth + 1]);
        return 2;
    }
    if (lua_istable(L, 3))
        lua_settop(L, 3);
    else {
        lua_settop(L, 2);
        lua_createtable(L, (int)ncap, 0);
    }
    /* stack: re, subject, res */
    for (uint32_t i = 0; i <= ncap; i++) {
        if ((int)i < re->rc && ov[2 * i] != PCRE2_UNSET && ov[2 * i] <= len &&
            ov[2 * i + 1] <= len && ov[2 * i] <= ov[2 * i + 1])
            lua_pushlstring(L, s + ov[2 * i], ov[2 * i + 1] - ov[2 * i]);
        else
            lua_pushboolean(L, 0);
        lua_rawseti(L, 3, i);
    }
    if (ncap > 0) {
        lua_getiuservalue(L, 1, 1); /* stack: re, subject, res, names */
        lua_Integer nn = (lua_Integer)lua_rawlen(L, 4);
        for (lua_Integer k = 1; k < nn; k += 2) {
            lua_rawgeti(L, 4, k);     /* name */
            lua_rawgeti(L, 4, k + 1); /* number */
            lua_Integer n = lua_tointeger(L, -1);
            lua_pop(L, 1);
            lua_rawgeti(L, 3, n); /* stack: ..., names, name, value */
            if (re->flags & RE_DUPNAMES) {
                if (!lua_toboolean(L, -1)) {
                    lua_pop(L, 2); /* unmatched groups are not collected */
                    continue;
                }
                lua_pushvalue(L, -2);
                if (lua_rawget(L, 3) != LUA_TTABLE) { /* stack: ..., name, value, list? */
                    lua_pop(L, 1);
                    lua_newtable(L);
                    lua_pushvalue(L, -3);
                    lua_pushvalue(L, -2); /* stack: ..., name, value, list, name, list */
                    lua_rawset(L, 3);
                }
                lua_rotate(L, -2, 1); /* stack: ..., name, list, value */
                lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
                lua_pop(L, 2);
            } else {
                lua_rawset(L, 3);
            }
        }
        lua_pop(L, 1);
    }
    return 1;
}

/* core.re_info(regex) -> number of capture groups, is_dfa */
static int re_info(lua_State *L)
{
    gl_re *re = re_check(L, 1);
    lua_pushinteger(L, re->ncap);
    lua_pushboolean(L, re->flags & RE_DFA);
    return 2;
}

int gl_open_ngx_re(lua_State *L)
{
    static const luaL_Reg meta[] = {{"__gc", re_gc}, {"__close", re_gc}, {NULL, NULL}};
    if (luaL_newmetatable(L, RE_MT))
        luaL_setfuncs(L, meta, 0);
    lua_pop(L, 1);
    static const luaL_Reg funcs[] = {{"re_compile", re_compile},
                                     {"re_exec", re_exec},
                                     {"re_caps", re_caps},
                                     {"re_info", re_info},
                                     {NULL, NULL}};
    luaL_setfuncs(L, funcs, 0);
    return 0;
}
