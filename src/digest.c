/* One-shot digests and HMACs on OpenSSL's EVP for gl.compat.ngx (ngx.md5, ngx.md5_bin,
 * ngx.sha1_bin, ngx.hmac_sha1). Binary results; hex encoding is the Lua side's. */
#include "ngx.h"

#include <lauxlib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static const EVP_MD *md_check(lua_State *L, int idx)
{
    static const char *const names[] = {"md5", "sha1", "sha256", "sha512", NULL};
    switch (luaL_checkoption(L, idx, NULL, names)) {
    case 0:
        return EVP_md5();
    case 1:
        return EVP_sha1();
    case 2:
        return EVP_sha256();
    default:
        return EVP_sha512();
    }
}

/* core.digest(alg, data) -> binary digest */
static int l_digest(lua_State *L)
{
    const EVP_MD *md = md_check(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(s, len, out, &n, md, NULL) != 1)
        return luaL_error(L, "digest: OpenSSL failed");
    lua_pushlstring(L, (const char *)out, n);
    return 1;
}

/* core.hmac(alg, key, data) -> binary MAC */
static int l_hmac(lua_State *L)
{
    const EVP_MD *md = md_check(L, 1);
    size_t klen, len;
    const char *k = luaL_checklstring(L, 2, &klen);
    const char *s = luaL_checklstring(L, 3, &len);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!HMAC(md, k, (int)klen, (const unsigned char *)s, len, out, &n))
        return luaL_error(L, "hmac: OpenSSL failed");
    lua_pushlstring(L, (const char *)out, n);
    return 1;
}

int gl_open_digest(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"digest", l_digest}, {"hmac", l_hmac}, {NULL, NULL}};
    luaL_setfuncs(L, funcs, 0);
    return 0;
}
