-- gl.dns: name lookup on libevent's evdns (API.md section 7). The work is in src/dns.c;
-- this module only names it.
local core = require "gl.core"

return {
    -- getaddrinfo(host [, port [, family]]) -> {{family = "inet"|"inet6", addr, port}, ...}
    -- or nil, err; family is "inet", "inet6" or nil for both
    getaddrinfo = core.dns_getaddrinfo,
    -- resolve(host) -> {"addr", ...} or nil, err
    resolve = core.dns_resolve,
    -- configure{nameservers = {"ip[:port]", ...}, timeout = sec, attempts = n,
    --           resolv_conf = path, hosts = path}; configure() restores the defaults
    configure = core.dns_configure,
}
