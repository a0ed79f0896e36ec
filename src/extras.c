/* The C parts of gl.core beyond the scheduler: each concern's gl_open_*() adds its
 * functions to the gl.core table on top of the stack. */
#include "core.h"
#include "socket.h"
#include "dns.h"
#include "http.h"
#include "tls.h"
#include "ngx.h"
#include "ws.h"
#ifdef GL_HAVE_LIBPQ
#include "pg.h"
#endif
#include "tpool.h"
#include "subprocess.h"
#include "debug.h"

void gl_open_extras(lua_State *L)
{
    gl_open_socket(L);
    gl_open_dns(L);
    gl_open_http(L);
    gl_open_tls(L);
    gl_open_ngx_re(L);
    gl_open_digest(L);
    gl_open_ws(L);
#ifdef GL_HAVE_LIBPQ
    gl_open_pg(L);
#endif
    gl_open_tpool(L);
    gl_open_subprocess(L);
    gl_open_debug(L);
}
