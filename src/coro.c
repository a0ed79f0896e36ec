/* The hub-aware coroutine library. A gl wait inside a user's own coroutine yields with
 * the thread's hub-yield flag set; resume/wrap pass such a yield up to their own resumer
 * and, when the hub wakes the green thread, resume the coroutine with the wake value, so
 * user code never sees the hub's yields. */
#include "sched.h"
#include "compat.h"

#include <lauxlib.h>

enum { MODE_RESUME, MODE_WRAP };

static int resume_k(lua_State *L, int status, lua_KContext ctx);

/* Resumes co with the narg values on top of L and returns what resume/wrap return. */
static int do_resume(lua_State *L, lua_State *co, int narg, lua_KContext mode)
{
    gl_thread *t = gl_current(L);
    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        goto failed;
    }
    lua_xmove(L, co, narg);
    gl_set_owner(co, t, 0);
    int nres;
    int st = lua_resume(co, L, narg, &nres);
    if (st == LUA_YIELD && t && t->hub_yield) {
        /* a gl wait inside co: pass it up, and come back to resume co with the wake value */
        lua_pop(co, nres);
        gl_set_owner(co, t, 1);
        return lua_yieldk(L, 0, mode, resume_k);
    }
    if (st == LUA_OK || st == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            goto failed;
        }
        if (mode == MODE_RESUME)
            lua_pushboolean(L, 1);
        lua_xmove(co, L, nres);
        return mode == MODE_RESUME ? nres + 1 : nres;
    }
    lua_xmove(co, L, 1); /* the error object */
    if (mode == MODE_WRAP) {
        int stat = lua_status(co);
        if (stat != LUA_OK && stat != LUA_YIELD) { /* error inside co: close it */
            lua_pop(L, 1);
            gl_closethread(co, L);
            lua_xmove(co, L, 1);
        }
        if (lua_type(L, -1) == LUA_TSTRING) {
            luaL_where(L, 1);
            lua_insert(L, -2);
            lua_concat(L, 2);
        }
        return lua_error(L);
    }
failed:
    if (mode == MODE_WRAP)
        return lua_error(L);
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

static lua_State *target(lua_State *L, lua_KContext mode)
{
    return mode == MODE_RESUME ? lua_tothread(L, 1) : lua_tothread(L, lua_upvalueindex(1));
}

static int resume_k(lua_State *L, int status, lua_KContext mode)
{
    (void)status;
    /* stack: [co] for resume (nothing for wrap), then the wake value from the hub */
    int base = mode == MODE_RESUME ? 1 : 0;
    return do_resume(L, target(L, mode), lua_gettop(L) - base, mode);
}

static int check_resumable(lua_State *L, lua_State *co)
{
    if (gl_in_hub_wait(co)) {
        lua_pushliteral(L, "cannot resume non-suspended coroutine");
        return 0;
    }
    if (lua_status(co) == LUA_OK && lua_gettop(co) == 0) {
        lua_pushliteral(L, "cannot resume dead coroutine");
        return 0;
    }
    return 1;
}

static int co_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    if (!check_resumable(L, co)) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    return do_resume(L, co, lua_gettop(L) - 1, MODE_RESUME);
}

static int wrap_call(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    if (!check_resumable(L, co)) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
        return lua_error(L);
    }
    return do_resume(L, co, lua_gettop(L), MODE_WRAP);
}

static int co_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, wrap_call, 1);
    return 1;
}

static int is_green_top(lua_State *L, lua_State *co)
{
    gl_thread *t = gl_current(L);
    return t && t->co == co;
}

static int co_yield (lua_State *L)
{
    if (is_green_top(L, L))
        return luaL_error(L, "attempt to yield from outside a coroutine");
    return lua_yield(L, lua_gettop(L));
}

static int co_isyieldable(lua_State *L)
{
    lua_State *co = lua_isnone(L, 1) ? L : lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    lua_pushboolean(L, lua_isyieldable(co) && !is_green_top(L, co));
    return 1;
}

static int co_status(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    const char *s;
    if (L == co)
        s = "running";
    else if (gl_in_hub_wait(co))
        s = "normal";
    else {
        lua_Debug ar;
        switch (lua_status(co)) {
        case LUA_YIELD:
            s = "suspended";
            break;
        case LUA_OK:
            if (lua_getstack(co, 0, &ar))
                s = "normal";
            else
                s = lua_gettop(co) == 0 ? "dead" : "suspended";
            break;
        default:
            s = "dead";
            break;
        }
    }
    lua_pushstring(L, s);
    return 1;
}

static int co_close(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    if (gl_in_hub_wait(co) || is_green_top(L, co))
        return luaL_error(L, "cannot close a %s coroutine", co == L ? "running" : "normal");
    /* the stock close handles every other case */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

int gl_open_coroutine(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"resume", co_resume}, {"wrap", co_wrap},
                                     {"yield", co_yield },  {"isyieldable", co_isyieldable},
                                     {"status", co_status}, {NULL, NULL}};
    if (lua_getglobal(L, "coroutine") != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    lua_getfield(L, -1, "close");
    lua_pushcclosure(L, co_close, 1);
    lua_setfield(L, -2, "close");
    luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 1);
    return 0;
}
