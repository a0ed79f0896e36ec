/* The C parts of gl.core beyond the scheduler: each concern's gl_open_*() adds its
 * functions to the gl.core table on top of the stack. */
#include "core.h"
#include "socket.h"
#include "dns.h"
#include "http.h"
#include "tls.h"
#include "tpool.h"
#include "subprocess.h"
#include "debug.h"

void gl_open_extras(lua_State *L)
{
    gl_open_socket(L);
    gl_open_dns(L);
    gl_open_http(L);
    gl_open_tls(L);
    gl_open_tpool(L);
    gl_open_subprocess(L);
    gl_open_debug(L);
}
