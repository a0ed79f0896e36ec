/* gl.dns on libevent's evdns: getaddrinfo, resolve, configure and the C entry point
 * gl_dns_lookup. Owns the hub's resolver (made on first use) and the requests libevent
 * still holds; parking and waking belong to sched.c. Never calls the blocking resolver. */
#include "dns.h"
#include "hub.h"
#include "sched.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <lauxlib.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define DNS_TIMEOUT 5.0 /* seconds per attempt, as glibc */
#define DNS_ATTEMPTS 2

static char dns_key; /* registry: light userdata key -> the gl_dns userdata */

/* One evdns_base. A base that has sent a query is freed once nothing is in flight: evdns
 * may leave events added (nameserver probes) that would keep the hub from going idle.
 * One that only answered from the hosts file holds no event and is kept. */
typedef struct dns_base {
    struct evdns_base *evb;
    struct dns_base *next; /* in the list of retired bases */
    int n_inflight;        /* requests libevent still holds, cancelled ones included */
    int used_network;
} dns_base;

typedef struct dns_req dns_req;

typedef struct gl_dns {
    gl_hub *hub;
    dns_base *cur;        /* the base new lookups use, or NULL */
    dns_base *retired;    /* bases replaced by gl.dns.configure, freed when idle */
    dns_req *reqs;        /* every request libevent still holds */
    struct event *reaper; /* 0 s timer: frees idle bases a pass after their last answer */
    int reaper_armed;
    double timeout;
    int attempts;
} gl_dns;

/* A lookup in flight. Freed by lookup_cb, which libevent calls exactly once per request,
 * cancelled ones included (with EVUTIL_EAI_CANCEL, from a later loop pass). */
struct dns_req {
    gl_dns *dns; /* NULL once the resolver is gone (lua_close): the callback only frees */
    dns_base *base;
    gl_thread *t; /* the parked thread; NULL once it stopped waiting (kill, Timeout) */
    struct evdns_getaddrinfo_request *r;
    dns_req *next, *prev;
    double start;
    int port, family;
    int in_call; /* inside evdns_getaddrinfo: an immediate answer is stashed here */
    int done, err;
    struct evutil_addrinfo *res;
};

/* the caller's continuation, kept on its stack while it is parked */
typedef struct dns_cont {
    lua_KFunction k;
    lua_KContext ctx;
} dns_cont;

/* ---- names ---- */

/* True when host is `name` or ends in "." name (case-insensitive, one trailing dot). */
static int in_domain(const char *host, const char *name)
{
    size_t n = strlen(host), m = strlen(name);
    if (n && host[n - 1] == '.')
        n--;
    if (n < m || strncasecmp(host + n - m, name, m) != 0)
        return 0;
    return n == m || host[n - m - 1] == '.';
}

static const char *gai_text(int err, double elapsed, double budget)
{
    if (err == EVUTIL_EAI_NONAME)
        return "no such host";
    if (err == EVUTIL_EAI_NODATA)
        return "no address associated with hostname";
    if (err == EVUTIL_EAI_FAIL) /* evdns reports a timeout as a plain failure */
        return elapsed >= 0.9 * budget ? "timeout" : "name server failure";
    if (err == EVUTIL_EAI_AGAIN)
        return "temporary failure in name resolution";
    if (err == EVUTIL_EAI_MEMORY)
        return "out of memory";
    if (err == EVUTIL_EAI_CANCEL)
        return "cancelled";
    return NULL;
}

/* [-0, +2] pushes nil and the text of getaddrinfo error err */
static void push_gai_error(lua_State *L, int err, double elapsed, double budget)
{
    lua_pushnil(L);
    const char *s = gai_text(err, elapsed, budget);
    if (s) {
        lua_pushstring(L, s);
        return;
    }
    char buf[128];
    snprintf(buf, sizeof buf, "%s", evutil_gai_strerror(err));
    buf[0] = (char)tolower((unsigned char)buf[0]);
    lua_pushstring(L, buf);
}

/* [-0, +0] appends {family, addr, port} to the list at index list unless seen (a set at
 * index seen) already has it */
static void add_entry(lua_State *L, int list, int seen, int af, const void *addr, int port)
{
    char text[INET6_ADDRSTRLEN];
    if (!inet_ntop(af, addr, text, sizeof text))
        return;
    if (lua_getfield(L, seen, text) != LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
    lua_setfield(L, seen, text);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, af == AF_INET ? "inet" : "inet6");
    lua_setfield(L, -2, "family");
    lua_pushstring(L, text);
    lua_setfield(L, -2, "addr");
    lua_pushinteger(L, port);
    lua_setfield(L, -2, "port");
    lua_rawseti(L, list, (lua_Integer)lua_rawlen(L, list) + 1);
}

/* [-0, +2] pushes (list, nil) for the addresses of res that match family, or
 * (nil, "no address associated with hostname") when none does */
static void push_list(lua_State *L, const struct evutil_addrinfo *res, int family, int port)
{
    lua_newtable(L);
    int list = lua_gettop(L);
    lua_newtable(L);
    int seen = list + 1;
    for (const struct evutil_addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (!ai->ai_addr || (family != AF_UNSPEC && ai->ai_family != family))
            continue;
        if (ai->ai_family == AF_INET)
            add_entry(L, list, seen, AF_INET,
                      &((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr, port);
        else if (ai->ai_family == AF_INET6)
            add_entry(L, list, seen, AF_INET6,
                      &((const struct sockaddr_in6 *)(const void *)ai->ai_addr)->sin6_addr, port);
    }
    lua_pop(L, 1); /* seen */
    if (lua_rawlen(L, list) > 0) {
        lua_pushnil(L);
        return;
    }
    lua_pop(L, 1);
    push_gai_error(L, EVUTIL_EAI_NODATA, 0, 1);
}

/* [-0, +2] pushes the answer for a numeric host and returns 1; 0 (nothing pushed) when
 * host is no IPv4 or IPv6 address */
static int push_numeric(lua_State *L, const char *host, int family, int port)
{
    struct in6_addr a6;
    struct in_addr a4;
    int af;
    if (inet_pton(AF_INET, host, &a4) == 1)
        af = AF_INET;
    else if (inet_pton(AF_INET6, host, &a6) == 1)
        af = AF_INET6;
    else
        return 0;
    if (family != AF_UNSPEC && family != af) {
        push_gai_error(L, EVUTIL_EAI_NODATA, 0, 1);
        return 1;
    }
    lua_newtable(L);
    lua_newtable(L);
    int seen = lua_gettop(L);
    add_entry(L, seen - 1, seen, af, af == AF_INET ? (void *)&a4 : (void *)&a6, port);
    lua_pop(L, 1);
    lua_pushnil(L);
    return 1;
}

/* [-0, +2] the loopback answer for a localhost name (RFC 6761) missing from the hosts
 * file */
static void push_loopback(lua_State *L, int family, int port)
{
    struct in_addr a4;
    a4.s_addr = htonl(INADDR_LOOPBACK);
    lua_newtable(L);
    lua_newtable(L);
    int seen = lua_gettop(L);
    if (family != AF_INET6)
        add_entry(L, seen - 1, seen, AF_INET, &a4, port);
    if (family != AF_INET)
        add_entry(L, seen - 1, seen, AF_INET6, &in6addr_loopback, port);
    lua_pop(L, 1);
    lua_pushnil(L);
}

/* ---- the resolver ---- */

static void base_free(dns_base *b, int fail_requests)
{
    if (b->evb)
        evdns_base_free(b->evb, fail_requests);
    free(b);
}

static void reaper_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gl_dns *dns = arg;
    dns->reaper_armed = 0;
    dns->hub->n_waits--;
    for (dns_base **p = &dns->retired; *p;) {
        dns_base *b = *p;
        if (b->n_inflight == 0) {
            *p = b->next;
            base_free(b, 0);
        } else {
            p = &b->next;
        }
    }
    if (dns->cur && dns->cur->used_network && dns->cur->n_inflight == 0) {
        base_free(dns->cur, 0);
        dns->cur = NULL;
    }
}

/* Frees idle bases from a later loop pass, never from inside an evdns callback: evdns
 * may still run deferred callbacks of its own (a sub-request it cancelled itself) that
 * read the base; those were queued before this timer and run first. Counted as a wait
 * so that gl does not exit with the base still open. */
static void arm_reaper(gl_dns *dns)
{
    struct timeval tv = {0, 0};
    if (dns->reaper && !dns->reaper_armed && evtimer_add(dns->reaper, &tv) == 0) {
        dns->reaper_armed = 1;
        dns->hub->n_waits++;
    }
}

/* Forgets a request whose callback has come. */
static void req_detach(dns_req *req)
{
    gl_dns *dns = req->dns;
    if (!dns)
        return;
    if (req->prev)
        req->prev->next = req->next;
    else
        dns->reqs = req->next;
    if (req->next)
        req->next->prev = req->prev;
    dns->hub->n_waits--;
    dns_base *b = req->base;
    if (--b->n_inflight == 0 && (b != dns->cur || b->used_network))
        arm_reaper(dns);
    req->dns = NULL;
}

static int dns_gc(lua_State *L)
{
    gl_dns *dns = lua_touserdata(L, 1);
    /* requests still held are orphaned: if libevent ever calls back, it only frees them */
    for (dns_req *req = dns->reqs; req; req = req->next) {
        if (req->t && req->t->wait_data == req) {
            req->t->unwait = NULL;
            req->t->wait_data = NULL;
        }
        req->t = NULL;
        req->dns = NULL;
        dns->hub->n_waits--;
    }
    dns->reqs = NULL;
    while (dns->retired) {
        dns_base *b = dns->retired;
        dns->retired = b->next;
        base_free(b, 1);
    }
    if (dns->cur) {
        base_free(dns->cur, 1);
        dns->cur = NULL;
    }
    if (dns->reaper_armed) {
        dns->reaper_armed = 0;
        dns->hub->n_waits--;
    }
    if (dns->reaper) {
        event_free(dns->reaper);
        dns->reaper = NULL;
    }
    return 0;
}

/* evdns logs to stderr by default; gl stays quiet unless GL_DNS_DEBUG is set */
static void log_cb(int is_warn, const char *msg)
{
    static int debug = -1;
    if (debug < 0)
        debug = getenv("GL_DNS_DEBUG") != NULL;
    if (debug)
        fprintf(stderr, "gl.dns: %s%s\n", is_warn ? "warning: " : "", msg);
}

/* [-0, +1] pushes the hub's resolver state, making it on first use */
static gl_dns *dns_push(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &dns_key) != LUA_TNIL)
        return lua_touserdata(L, -1);
    lua_pop(L, 1);
    gl_hub *h = gl_hub_get(L);
    gl_dns *dns = lua_newuserdatauv(L, sizeof *dns, 1);
    memset(dns, 0, sizeof *dns);
    dns->hub = h;
    dns->timeout = DNS_TIMEOUT;
    dns->attempts = DNS_ATTEMPTS;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, dns_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    evdns_set_log_fn(log_cb);
    dns->reaper = evtimer_new(h->base, reaper_cb, dns);
    if (!dns->reaper)
        luaL_error(L, "gl.dns: cannot create a timer");
    lua_newtable(L); /* the configuration */
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &dns_key);
    return dns;
}

static void set_seconds(struct evdns_base *evb, const char *opt, double sec)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.3f", sec);
    evdns_base_set_option(evb, opt, buf);
}

/* The base new lookups use: made from the configuration (the gl_dns userdata is on top
 * of L) on first use. resolv.conf gives name servers, search list and ndots; timeout and
 * attempts are gl's. */
static dns_base *dns_current(lua_State *L, gl_dns *dns)
{
    if (dns->cur)
        return dns->cur;
    dns_base *b = calloc(1, sizeof *b);
    if (!b)
        luaL_error(L, "gl.dns: out of memory");
    /* no EVDNS_BASE_INITIALIZE_NAMESERVERS: evdns_base_new would set the flag that keeps
     * a name server's socket unwatched while idle only after adding the servers, and
     * fails outright when resolv.conf lists none */
    b->evb = evdns_base_new(dns->hub->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!b->evb) {
        free(b);
        luaL_error(L, "gl.dns: cannot create the resolver");
    }
    lua_getiuservalue(L, -1, 1);
    int conf = lua_gettop(L);
    int has_ns = lua_getfield(L, conf, "nameservers") == LUA_TTABLE;
    lua_getfield(L, conf, "resolv_conf");
    const char *resolv = luaL_optstring(L, -1, "/etc/resolv.conf");
    int flags = DNS_OPTION_SEARCH | DNS_OPTION_MISC | DNS_OPTION_NAMESERVERS_NO_DEFAULT;
    if (!has_ns)
        flags |= DNS_OPTION_NAMESERVERS;
    evdns_base_resolv_conf_parse(b->evb, flags, resolv); /* a missing file is no error */
    lua_getfield(L, conf, "hosts");
    /* given NULL, evdns loads no file, only its own localhost entries */
    evdns_base_load_hosts(b->evb, luaL_optstring(L, -1, "/etc/hosts"));
    if (has_ns) {
        lua_Integer n = luaL_len(L, conf + 1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, conf + 1, i);
            if (lua_isstring(L, -1))
                evdns_base_nameserver_ip_add(b->evb, lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_settop(L, conf - 1);
    set_seconds(b->evb, "timeout:", dns->timeout);
    char buf[16];
    snprintf(buf, sizeof buf, "%d", dns->attempts);
    evdns_base_set_option(b->evb, "attempts:", buf);
    /* 0x20 case randomisation trips up some forwarders (and glibc does not do it) */
    evdns_base_set_option(b->evb, "randomize-case:", "0");
    /* a failed server is probed from a timer that evdns leaves added even with nothing in
     * flight; this base is freed after its last answer long before such a probe */
    evdns_base_set_option(b->evb, "initial-probe-timeout:", "3600");
    dns->cur = b;
    return b;
}

/* ---- lookups ---- */

static void lookup_cb(int err, struct evutil_addrinfo *res, void *arg)
{
    dns_req *req = arg;
    if (req->in_call) { /* answered at once: gl_dns_lookup takes it from here */
        req->done = 1;
        req->err = err;
        req->res = res;
        return;
    }
    gl_dns *dns = req->dns;
    gl_thread *t = req->t;
    req_detach(req);
    if (t && dns) {
        lua_State *L = t->hub->L;
        t->unwait = NULL; /* nothing to cancel any more */
        t->wait_data = NULL;
        double budget = dns->timeout * dns->attempts;
        if (err == 0)
            push_list(L, res, req->family, req->port);
        else
            push_gai_error(L, err, gl_hub_now() - req->start, budget);
        /* deliver one value: the list, or the error text */
        if (lua_isnil(L, -1))
            lua_pop(L, 1);
        else
            lua_remove(L, -2);
        gl_sched_wake(L, t, GL_WAKE_OK, 1);
    }
    if (res)
        evutil_freeaddrinfo(res);
    free(req);
}

/* t->unwait: a kill, a Timeout or the lookup's deadline ends the wait */
static void lookup_unwait(gl_thread *t)
{
    dns_req *req = t->wait_data;
    t->wait_data = NULL;
    if (!req)
        return;
    req->t = NULL;
    if (req->r)
        evdns_getaddrinfo_cancel(req->r); /* lookup_cb still comes, and frees req */
}

static int lookup_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    gl_thread *t = gl_current(L);
    /* stack: ..., cont, wake */
    switch (t->wake_kind) {
    case GL_WAKE_OK:
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_pushnil(L);
        } else if (lua_type(L, -1) == LUA_TSTRING) {
            lua_pushnil(L);
            lua_insert(L, -2);
        } else {
            lua_pop(L, 1);
            lua_pushnil(L);
            lua_pushliteral(L, "lookup interrupted");
        }
        break;
    case GL_WAKE_TIMEOUT: /* the lookup's own deadline */
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        break;
    default:
        gl_sched_wake_check(L, t); /* raises the kill, the Timeout */
        return 0;
    }
    /* stack: ..., cont, v1, v2 */
    dns_cont c = *(dns_cont *)lua_touserdata(L, -3);
    lua_remove(L, -3);
    return c.k(L, LUA_YIELD, c.ctx);
}

int gl_dns_lookup(lua_State *L, const char *host, int port, int family, lua_KFunction k,
                  lua_KContext ctx)
{
    if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
        return luaL_error(L, "gl.dns: bad address family %d", family);
    if (port < 0 || port > 65535)
        return luaL_error(L, "gl.dns: port %d out of range", port);
    luaL_checkstack(L, 8, "gl.dns");
    if (push_numeric(L, host, family, port))
        return k(L, LUA_OK, ctx);
    if (*host == '\0' || in_domain(host, "invalid")) { /* RFC 6761: never looked up */
        push_gai_error(L, EVUTIL_EAI_NONAME, 0, 1);
        return k(L, LUA_OK, ctx);
    }
    int localhost = in_domain(host, "localhost");
    int top = lua_gettop(L);
    gl_dns *dns = dns_push(L);
    dns_base *b = dns_current(L, dns);
    lua_settop(L, top);

    dns_req *req = calloc(1, sizeof *req);
    if (!req)
        return luaL_error(L, "gl.dns: out of memory");
    req->dns = dns;
    req->base = b;
    req->port = port;
    req->family = family;
    req->start = gl_hub_now();
    req->next = dns->reqs;
    if (dns->reqs)
        dns->reqs->prev = req;
    dns->reqs = req;
    b->n_inflight++;
    dns->hub->n_waits++; /* until lookup_cb, cancelled or not: gl does not exit before */

    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM; /* one entry per address, not one per socket type */
    hints.ai_protocol = IPPROTO_TCP;
    req->in_call = 1;
    req->r = evdns_getaddrinfo(b->evb, host, NULL, &hints, lookup_cb, req);
    req->in_call = 0;

    if (req->done || !req->r) { /* numeric, hosts file, or failed to start */
        int err = req->done ? req->err : EVUTIL_EAI_FAIL;
        struct evutil_addrinfo *res = req->res;
        req_detach(req);
        free(req);
        if (err == 0)
            push_list(L, res, family, port);
        else
            push_gai_error(L, err, 0, 1);
        if (res)
            evutil_freeaddrinfo(res);
        if (localhost && lua_isnil(L, -2)) {
            lua_pop(L, 2);
            push_loopback(L, family, port);
        }
        return k(L, LUA_OK, ctx);
    }
    b->used_network = 1;
    gl_thread *t = gl_current(L);
    if (localhost || evdns_base_count_nameservers(b->evb) == 0 || !t || !lua_isyieldable(L) ||
        gl_in_hub_wait(L) || t->pending_to) {
        evdns_getaddrinfo_cancel(req->r); /* req stays until its callback */
        if (localhost)
            push_loopback(L, family, port);
        else if (evdns_base_count_nameservers(b->evb) == 0)
            push_gai_error(L, EVUTIL_EAI_NONAME, 0, 1);
        else {
            gl_check_blocking(L, "gl.dns lookup"); /* raises */
            gl_sched_check_pending(L, t);          /* raises */
        }
        return k(L, LUA_OK, ctx);
    }
    dns_cont *c = lua_newuserdatauv(L, sizeof *c, 0);
    c->k = k;
    c->ctx = ctx;
    if (gl_sched_arm(t, -1, 0, dns->timeout * dns->attempts) != 0) {
        evdns_getaddrinfo_cancel(req->r);
        return luaL_error(L, "gl.dns: cannot arm the timer");
    }
    req->t = t;
    t->unwait = lookup_unwait;
    t->wait_data = req;
    return gl_sched_park(L, t, lookup_k, 0);
}

/* ---- Lua functions ---- */

static int family_arg(lua_State *L, int idx)
{
    static const char *const names[] = {"inet", "inet6", NULL};
    if (lua_isnoneornil(L, idx))
        return AF_UNSPEC;
    return luaL_checkoption(L, idx, NULL, names) == 0 ? AF_INET : AF_INET6;
}

static int port_arg(lua_State *L, int idx)
{
    lua_Integer port = luaL_optinteger(L, idx, 0);
    luaL_argcheck(L, port >= 0 && port <= 65535, idx, "port out of range");
    return (int)port;
}

/* results on top: (list, nil) -> list; (nil, err) -> nil, err */
static int getaddrinfo_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    if (lua_isnil(L, -2))
        return 2;
    lua_pop(L, 1);
    return 1;
}

/* gl.dns.getaddrinfo(host [, port [, family]]) -> {{family, addr, port}, ...} | nil, err */
static int l_getaddrinfo(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    int port = port_arg(L, 2);
    int family = family_arg(L, 3);
    lua_settop(L, 1); /* keeps host alive */
    return gl_dns_lookup(L, host, port, family, getaddrinfo_k, 0);
}

static int resolve_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    if (lua_isnil(L, -2))
        return 2;
    lua_pop(L, 1);
    /* stack: ..., list */
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        lua_getfield(L, -1, "addr");
        lua_rawseti(L, -3, i);
        lua_pop(L, 1);
    }
    return 1;
}

/* gl.dns.resolve(host) -> {"addr", ...} | nil, err */
static int l_resolve(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    return gl_dns_lookup(L, host, 0, AF_UNSPEC, resolve_k, 0);
}

/* gl.dns.configure([opts]): opts = {nameservers = {"ip[:port]", ...}, timeout = sec,
 * attempts = n, resolv_conf = path, hosts = path}; no opts restores the defaults.
 * Lookups already in flight finish on the old settings. */
static int l_configure(lua_State *L)
{
    static const char *const keys[] = {"nameservers", "timeout", "attempts",
                                       "resolv_conf", "hosts",   NULL};
    lua_settop(L, 1);
    if (!lua_isnil(L, 1))
        luaL_checktype(L, 1, LUA_TTABLE);
    double timeout = DNS_TIMEOUT;
    int attempts = DNS_ATTEMPTS;
    lua_newtable(L); /* 2: the new configuration */
    if (lua_istable(L, 1)) {
        lua_pushnil(L);
        while (lua_next(L, 1)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                return luaL_error(L, "gl.dns.configure: option names are strings");
            const char *name = lua_tostring(L, -2);
            int opt = 0;
            while (keys[opt] && strcmp(keys[opt], name) != 0)
                opt++;
            if (!keys[opt])
                return luaL_error(L, "gl.dns.configure: unknown option '%s'", name);
            switch (opt) {
            case 0: {
                if (!lua_istable(L, -1))
                    return luaL_error(L, "gl.dns.configure: nameservers must be a list");
                lua_Integer n = luaL_len(L, -1);
                lua_createtable(L, (int)n, 0);
                for (lua_Integer i = 1; i <= n; i++) {
                    lua_rawgeti(L, -2, i);
                    struct sockaddr_storage ss;
                    int len = (int)sizeof ss;
                    const char *s = lua_tostring(L, -1);
                    if (!s || evutil_parse_sockaddr_port(s, (struct sockaddr *)&ss, &len) != 0)
                        return luaL_error(L, "gl.dns.configure: bad name server %s",
                                          s ? s : luaL_typename(L, -1));
                    lua_rawseti(L, -2, i);
                }
                lua_setfield(L, 2, "nameservers");
                break;
            }
            case 1:
                timeout = lua_tonumber(L, -1);
                if (!lua_isnumber(L, -1) || !(timeout > 0 && timeout <= 3600))
                    return luaL_error(L, "gl.dns.configure: timeout must be in (0, 3600]");
                break;
            case 2: {
                int isint;
                lua_Integer a = lua_tointegerx(L, -1, &isint);
                if (!isint || a < 1 || a > 255)
                    return luaL_error(L, "gl.dns.configure: attempts must be in 1..255");
                attempts = (int)a;
                break;
            }
            default:
                if (lua_type(L, -1) != LUA_TSTRING)
                    return luaL_error(L, "gl.dns.configure: %s must be a path", name);
                lua_pushvalue(L, -2);
                lua_pushvalue(L, -2);
                lua_settable(L, 2);
                break;
            }
            lua_pop(L, 1);
        }
    }
    gl_dns *dns = dns_push(L); /* 3 */
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 3, 1);
    dns->timeout = timeout;
    dns->attempts = attempts;
    dns_base *b = dns->cur;
    if (b) { /* the next lookup makes a new base */
        dns->cur = NULL;
        if (b->n_inflight == 0 && !b->used_network) {
            base_free(b, 0); /* has never called back: nothing of evdns can still run */
        } else {
            b->next = dns->retired;
            dns->retired = b;
            if (b->n_inflight == 0)
                arm_reaper(dns);
        }
    }
    return 0;
}

int gl_open_dns(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"dns_getaddrinfo", l_getaddrinfo},
                                     {"dns_resolve", l_resolve},
                                     {"dns_configure", l_configure},
                                     {NULL, NULL}};
    luaL_setfuncs(L, funcs, 0);
    return 0;
}
