/* Name lookup on libevent's evdns: one resolver per hub, made on first use. gl.dns and
 * the sockets code (gl.connect) go through gl_dns_lookup; nothing here ever calls the
 * blocking getaddrinfo. */
#ifndef GL_DNS_H
#define GL_DNS_H

#include <lua.h>

/* Looks host up and continues in k with the result; host may be numeric (IPv4 or IPv6,
 * answered without any lookup), a name from the hosts file, or a name for the resolver.
 * family is AF_UNSPEC (0), AF_INET or AF_INET6; port (0..65535) goes into the results.
 * The name is copied: host need only live for the call.
 *
 * The calling C function must `return gl_dns_lookup(...)`: it may yield. When k runs,
 * the stack is what it was at the call plus exactly two values:
 *   (list, nil)  list = {{family = "inet"|"inet6", addr = "...", port = n}, ...}, never
 *                empty, no duplicate addresses, in resolver order
 *   (nil, err)   err = "no such host", "no address associated with hostname", "timeout",
 *                "name server failure", or another short lowercase text
 * k gets status LUA_OK when the answer was immediate (numeric, hosts file: no yield), or
 * LUA_YIELD after the thread parked, and ctx unchanged. A kill or an expiring gl.Timeout
 * of the waiting thread cancels the request and raises from here; k then never runs.
 * Parking needs a green thread that can yield ("cannot block here" otherwise); immediate
 * answers work anywhere. Raises on bad arguments and out of memory only. */
int gl_dns_lookup(lua_State *L, const char *host, int port, int family, lua_KFunction k,
                  lua_KContext ctx);

/* Adds dns_getaddrinfo, dns_resolve and dns_configure to the gl.core table on top. */
int gl_open_dns(lua_State *L);

#endif
