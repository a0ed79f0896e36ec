/* The C parts of gl.compat.ngx: ngx.re on PCRE2 (ngx_re.c) and the digests behind
 * ngx.md5 / ngx.sha1_bin / ngx.hmac_sha1 (digest.c). The OpenResty API is in Lua. */
#ifndef GL_NGX_H
#define GL_NGX_H

#include <lua.h>

/* Adds re_compile, re_exec, re_caps and re_info to the gl.core table on top of L. */
int gl_open_ngx_re(lua_State *L);

/* Adds digest and hmac to the gl.core table on top of L. */
int gl_open_digest(lua_State *L);

#endif
