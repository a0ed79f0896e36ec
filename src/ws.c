/* gl.websocket's C half: core.ws_read takes whole frames out of a green socket's
 * read-ahead buffer (unmasking in place), core.ws_frame builds one for sending, plus the
 * UTF-8 check and the handshake's SHA-1/base64. Messages, control frames and the close
 * handshake are lua/gl/websocket.lua; the byte rules are ws_frame.c. */
#include "ws.h"

#include "socket.h"
#include "ws_frame.h"

#include <lauxlib.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <string.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* [-0, +3] nil, msg, close code */
static int fail_code(lua_State *L, const char *msg, int code)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushinteger(L, code);
    return 3;
}

static void consume(gl_sock *s, size_t n)
{
    s->rpos += n;
    s->rlen -= n;
    if (!s->rlen)
        s->rpos = 0;
}

/* core.ws_read(sock, need_mask, max_len, rsv_ok, in_message) -> fin, opcode, payload, rsv
 * | nil, err [, close code]. A frame is taken only once it is whole, so a timeout or a
 * kill part way through loses nothing. */
static int ws_read_k(lua_State *L, int status, lua_KContext ctx)
{
    gl_sock *s = gl_sock_check(L, 1);
    int r = gl_sock_after_wait(L, s, status);
    if (r < 0)
        return -r;
    int need_mask = lua_toboolean(L, 2);
    lua_Integer max = luaL_checkinteger(L, 3);
    unsigned rsv_ok = (unsigned)luaL_optinteger(L, 4, 0);
    int in_message = lua_toboolean(L, 5);
    if (s->fd < 0)
        return gl_sock_fail_closed(L);
    if (s->reader && s->reader != gl_current(L))
        return luaL_error(L, "another green thread is already reading this socket");
    for (;;) {
        if (s->rlen >= 2) {
            unsigned char *p = (unsigned char *)s->rbuf + s->rpos;
            gl_ws_head h;
            int hs = gl_ws_parse_head(p, s->rlen, &h);
            if (hs < 0)
                return fail_code(L, "protocol error: frame length over 2^63", 1002);
            if (hs > 0) {
                const char *why = NULL;
                int code = gl_ws_check_head(&h, need_mask, rsv_ok, in_message, &why);
                if (code) {
                    lua_pushnil(L);
                    lua_pushfstring(L, "protocol error: %s", why);
                    lua_pushinteger(L, code);
                    return 3;
                }
                if (h.opcode < 8 && (max < 0 || h.len > (uint64_t)max))
                    return fail_code(L, "message too big", 1009);
                if (s->rlen - (size_t)hs >= h.len) {
                    size_t len = (size_t)h.len;
                    unsigned char *data = p + hs;
                    if (h.masked)
                        gl_ws_mask(data, len, h.key, 0);
                    lua_pushboolean(L, (int)h.fin);
                    lua_pushinteger(L, (lua_Integer)h.opcode);
                    lua_pushlstring(L, (const char *)data, len);
                    lua_pushinteger(L, (lua_Integer)h.rsv);
                    consume(s, (size_t)hs + len);
                    return 4;
                }
            }
        }
        if (s->eof)
            return gl_sock_fail_closed(L);
        ssize_t got = gl_sock_fill(s);
        if (got >= 0)
            continue;
        if (got == GL_IO_WAIT_READ || got == GL_IO_WAIT_WRITE)
            return gl_sock_wait(L, s, (int)got, ws_read_k, ctx);
        return gl_sock_fail(L, s, 0);
    }
}

static int l_ws_read(lua_State *L)
{
    gl_sock_check_open(L, 1);
    lua_settop(L, 5);
    return ws_read_k(L, LUA_OK, 0);
}

/* core.ws_frame(opcode, payload, fin, mask, rsv) -> the frame's bytes; mask = true picks
 * a fresh random key (a client's frames). */
static int l_ws_frame(lua_State *L)
{
    lua_Integer op = luaL_checkinteger(L, 1);
    size_t len;
    const char *data = luaL_optlstring(L, 2, "", &len);
    int fin = lua_isnoneornil(L, 3) || lua_toboolean(L, 3);
    int mask = lua_toboolean(L, 4);
    lua_Integer rsv = luaL_optinteger(L, 5, 0);
    luaL_argcheck(L, op >= 0 && op <= 15, 1, "opcode 0..15 expected");
    luaL_argcheck(L, rsv >= 0 && rsv <= 7, 5, "rsv 0..7 expected");
    unsigned char key[4];
    if (mask && RAND_bytes(key, 4) != 1)
        return luaL_error(L, "gl.websocket: no random bytes for a masking key");
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, GL_WS_MAX_HEAD + len);
    size_t hs = gl_ws_write_head(out, fin, (unsigned)rsv, (unsigned)op, len, mask ? key : NULL);
    memcpy(out + hs, data, len);
    if (mask)
        gl_ws_mask(out + hs, len, key, 0);
    luaL_pushresultsize(&b, hs + len);
    return 1;
}

/* core.ws_utf8(state, s) -> the new state: 0 complete, 1 invalid, else mid-character */
static int l_ws_utf8(lua_State *L)
{
    lua_Integer st = luaL_checkinteger(L, 1);
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    lua_pushinteger(L, (lua_Integer)gl_ws_utf8((unsigned)st, (const unsigned char *)p, n));
    return 1;
}

/* core.ws_accept(key) -> base64(SHA-1(key .. GUID)), the Sec-WebSocket-Accept value */
static int l_ws_accept(lua_State *L)
{
    size_t n;
    const char *key = luaL_checklstring(L, 1, &n);
    unsigned char md[SHA_DIGEST_LENGTH];
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestInit_ex(c, EVP_sha1(), NULL) == 1 && EVP_DigestUpdate(c, key, n) == 1 &&
             EVP_DigestUpdate(c, ws_guid, sizeof ws_guid - 1) == 1 &&
             EVP_DigestFinal_ex(c, md, NULL) == 1;
    EVP_MD_CTX_free(c);
    if (!ok)
        return luaL_error(L, "gl.websocket: SHA-1 failed");
    unsigned char out[32];
    int k = EVP_EncodeBlock(out, md, SHA_DIGEST_LENGTH);
    lua_pushlstring(L, (const char *)out, (size_t)k);
    return 1;
}

/* core.ws_key() -> a fresh Sec-WebSocket-Key: 16 random bytes in base64 */
static int l_ws_key(lua_State *L)
{
    unsigned char raw[16], out[32];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return luaL_error(L, "gl.websocket: no random bytes for a key");
    int k = EVP_EncodeBlock(out, raw, sizeof raw);
    lua_pushlstring(L, (const char *)out, (size_t)k);
    return 1;
}

/* core.ws_key_ok(key) -> whether key is base64 of exactly 16 bytes */
static int l_ws_key_ok(lua_State *L)
{
    size_t n;
    const char *key = luaL_checklstring(L, 1, &n);
    unsigned char out[24];
    int ok = n == 24 && key[22] == '=' && key[23] == '=' &&
             EVP_DecodeBlock(out, (const unsigned char *)key, 24) == 18;
    lua_pushboolean(L, ok);
    return 1;
}

/* core.ws_close_code_ok(code) -> whether a peer may send this close code */
static int l_ws_close_code_ok(lua_State *L)
{
    lua_Integer c = luaL_checkinteger(L, 1);
    lua_pushboolean(L, c > 0 && c < 65536 && gl_ws_close_code_ok((unsigned)c));
    return 1;
}

int gl_open_ws(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"ws_read", l_ws_read},
        {"ws_frame", l_ws_frame},
        {"ws_utf8", l_ws_utf8},
        {"ws_accept", l_ws_accept},
        {"ws_key", l_ws_key},
        {"ws_key_ok", l_ws_key_ok},
        {"ws_close_code_ok", l_ws_close_code_ok},
        {NULL, NULL},
    };
    luaL_setfuncs(L, funcs, 0);
    gl_ws_open_deflate(L);
    return 0;
}
