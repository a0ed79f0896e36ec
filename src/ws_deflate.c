/* permessage-deflate (RFC 7692) for gl.websocket: one zlib deflater and inflater per
 * connection, messages compressed with a sync flush and the 00 00 ff ff tail stripped,
 * inflation stopped at a size limit (a small message must not inflate into a huge one).
 * Negotiation is lua/gl/websocket.lua. */
#include "ws.h"

#include <lauxlib.h>
#include <string.h>
#include <zlib.h>

#define DEFLATE_MT "gl.websocket.deflate"
#define CHUNK 16384

typedef struct ws_deflate {
    z_stream out, in;
    int out_ok, in_ok;
    int reset_out, reset_in; /* no_context_takeover: a fresh window per message */
} ws_deflate;

static ws_deflate *check(lua_State *L)
{
    ws_deflate *d = luaL_checkudata(L, 1, DEFLATE_MT);
    if (!d->out_ok || !d->in_ok)
        luaL_error(L, "gl.websocket: the compressor is freed");
    return d;
}

static int zfail(lua_State *L, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg ? msg : "zlib error");
    return 2;
}

/* d:deflate(data) -> the compressed payload (without the 00 00 ff ff tail) */
static int d_deflate(lua_State *L)
{
    ws_deflate *d = check(L);
    size_t n;
    const char *data = luaL_checklstring(L, 2, &n);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    d->out.next_in = (Bytef *)data;
    d->out.avail_in = (uInt)n;
    do {
        unsigned char *p = (unsigned char *)luaL_prepbuffsize(&b, CHUNK);
        d->out.next_out = p;
        d->out.avail_out = CHUNK;
        int rc = deflate(&d->out, Z_SYNC_FLUSH);
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return luaL_error(L, "gl.websocket: deflate failed: %s", d->out.msg ? d->out.msg : "?");
        luaL_addsize(&b, CHUNK - d->out.avail_out);
    } while (d->out.avail_out == 0);
    if (d->reset_out)
        deflateReset(&d->out);
    luaL_pushresult(&b);
    /* stack: self, data, compressed; drop the sync flush's empty stored block tail */
    size_t m;
    const char *c = lua_tolstring(L, -1, &m);
    if (m >= 4 && memcmp(c + m - 4, "\0\0\xff\xff", 4) == 0)
        lua_pushlstring(L, c, m - 4);
    return 1;
}

/* d:inflate(data, max) -> the message | nil, "too big" | nil, zlib's message */
static int d_inflate(lua_State *L)
{
    ws_deflate *d = check(L);
    size_t n;
    const char *data = luaL_checklstring(L, 2, &n);
    lua_Integer max = luaL_checkinteger(L, 3);
    static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t total = 0;
    const char *err = NULL;
    for (int part = 0; part < 2 && !err; part++) {
        d->in.next_in = part ? (Bytef *)tail : (Bytef *)data;
        d->in.avail_in = part ? 4 : (uInt)n;
        while (d->in.avail_in > 0 || d->in.avail_out == 0) {
            unsigned char *p = (unsigned char *)luaL_prepbuffsize(&b, CHUNK);
            d->in.next_out = p;
            d->in.avail_out = CHUNK;
            uInt before = d->in.avail_in;
            int rc = inflate(&d->in, Z_SYNC_FLUSH);
            size_t got = CHUNK - d->in.avail_out;
            luaL_addsize(&b, got);
            total += got;
            if (max >= 0 && total > (size_t)max) {
                err = "too big";
                break;
            }
            if (rc == Z_STREAM_END) { /* a final block: the next message starts afresh */
                inflateReset(&d->in);
                break;
            }
            if (rc == Z_BUF_ERROR && got == 0)
                break; /* needs input it will not get: the tail ends it */
            if (rc == Z_OK && got == 0 && d->in.avail_in == before) {
                err = "inflate made no progress"; /* never spin */
                break;
            }
            if (rc != Z_OK && rc != Z_BUF_ERROR) {
                err = d->in.msg ? d->in.msg : "bad compressed data";
                break;
            }
        }
    }
    if (err || d->reset_in)
        inflateReset(&d->in);
    if (err) {
        luaL_pushresult(&b);
        return zfail(L, err);
    }
    luaL_pushresult(&b);
    return 1;
}

static int d_free(lua_State *L)
{
    ws_deflate *d = luaL_checkudata(L, 1, DEFLATE_MT);
    if (d->out_ok)
        deflateEnd(&d->out);
    if (d->in_ok)
        inflateEnd(&d->in);
    d->out_ok = d->in_ok = 0;
    return 0;
}

/* core.ws_deflate_new(out_window_bits, level, reset_out, reset_in) -> compressor */
static int l_deflate_new(lua_State *L)
{
    int wbits = (int)luaL_checkinteger(L, 1);
    int level = (int)luaL_optinteger(L, 2, Z_DEFAULT_COMPRESSION);
    luaL_argcheck(L, wbits >= 9 && wbits <= 15, 1, "window bits 9..15 expected");
    luaL_argcheck(L, level >= -1 && level <= 9, 2, "level -1..9 expected");
    ws_deflate *d = lua_newuserdatauv(L, sizeof *d, 0);
    memset(d, 0, sizeof *d);
    luaL_setmetatable(L, DEFLATE_MT);
    d->reset_out = lua_toboolean(L, 3);
    d->reset_in = lua_toboolean(L, 4);
    if (deflateInit2(&d->out, level, Z_DEFLATED, -wbits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return luaL_error(L, "gl.websocket: deflateInit2 failed");
    d->out_ok = 1;
    if (inflateInit2(&d->in, -15) != Z_OK)
        return luaL_error(L, "gl.websocket: inflateInit2 failed");
    d->in_ok = 1;
    return 1;
}

void gl_ws_open_deflate(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"deflate", d_deflate}, {"inflate", d_inflate}, {"free", d_free}, {NULL, NULL}};
    luaL_newmetatable(L, DEFLATE_MT);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, d_free);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_deflate_new);
    lua_setfield(L, -2, "ws_deflate_new");
}
