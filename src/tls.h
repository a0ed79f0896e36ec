/* TLS on OpenSSL 3 for green sockets: contexts, the TLS transport (gl_sock_io) and the
 * gl.tlssocket methods. Option policy and context caching live in lua/gl/tls.lua. */
#ifndef GL_TLS_H
#define GL_TLS_H

#include <lua.h>

/* Adds tls_context, tls_wrap and tls_methods to the gl.core table on top of L. */
int gl_open_tls(lua_State *L);

#endif
