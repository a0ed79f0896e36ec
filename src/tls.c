/* TLS for green sockets on OpenSSL 3: SSL_CTX userdata (gl.tlscontext), a TLS transport
 * behind socket.c's gl_sock_io so every socket method works unchanged, and the TLS-only
 * methods (handshake, getpeercert, cipher, version, alpn_selected). Which options mean
 * what, defaults and context caching are lua/gl/tls.lua's business, not this file's. */
#include "tls.h"
#include "socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define CTX_MT "gl.tlscontext"

/* One wrapped socket's TLS state: a connection (ssl) or a listener (ctx). */
typedef struct gl_tls {
    SSL *ssl;     /* a connection; NULL for a listener */
    SSL_CTX *ctx; /* a listener's context (one reference held); NULL for a connection */
    int fd;       /* the fd the BIO reads and writes */
    char *pre;    /* bytes the plain socket had read ahead, fed to OpenSSL first */
    size_t prepos, prelen;
    int bio_errno;       /* errno of the last failed recv/send in the BIO, 0 for EOF */
    unsigned char fatal; /* an SSL_ERROR_SSL/SYSCALL happened: no close_notify, no retry */
    char msg[256];       /* s->err_msg points here */
} gl_tls;

/* What a context owns beyond OpenSSL's own state: ALPN list, SNI certificates. Freed with
 * the SSL_CTX (ex data), so connections that outlive their listener keep it. */
typedef struct sni_cert {
    char *name; /* lower case; "*.example.com" matches one label */
    X509 *cert;
    EVP_PKEY *key;
    STACK_OF(X509) * chain;
} sni_cert;

typedef struct ctx_extra {
    unsigned char *alpn; /* wire format: length-prefixed names */
    unsigned int alpn_len;
    sni_cert *sni;
    int n_sni;
} ctx_extra;

static CRYPTO_ONCE once = CRYPTO_ONCE_STATIC_INIT;
static int extra_index = -1;
static BIO_METHOD *bio_method;

/* ---- the BIO: recv/send on the socket's fd, never SIGPIPE ---- */

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int bio_destroy(BIO *b)
{
    BIO_set_data(b, NULL);
    return 1;
}

static int bio_read(BIO *b, char *buf, int len)
{
    gl_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!t || len <= 0)
        return 0;
    if (t->prelen) {
        size_t n = (size_t)len < t->prelen ? (size_t)len : t->prelen;
        memcpy(buf, t->pre + t->prepos, n);
        t->prepos += n;
        t->prelen -= n;
        if (!t->prelen) {
            free(t->pre);
            t->pre = NULL;
            t->prepos = 0;
        }
        return (int)n;
    }
    for (;;) {
        ssize_t n = recv(t->fd, buf, (size_t)len, 0);
        if (n >= 0) {
            if (n == 0)
                t->bio_errno = 0;
            return (int)n;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            BIO_set_retry_read(b);
            return -1;
        }
        t->bio_errno = errno;
        return -1;
    }
}

static int bio_write(BIO *b, const char *buf, int len)
{
    gl_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!t || len <= 0)
        return 0;
    for (;;) {
        ssize_t n = send(t->fd, buf, (size_t)len, MSG_NOSIGNAL);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            BIO_set_retry_write(b);
            return -1;
        }
        t->bio_errno = errno;
        return -1;
    }
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    gl_tls *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return t ? (long)t->prelen : 0;
    case BIO_C_GET_FD:
        if (ptr && t)
            *(int *)ptr = t->fd;
        return t ? t->fd : -1;
    default:
        return 0;
    }
}

static void extra_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    ctx_extra *x = ptr;
    if (!x)
        return;
    for (int i = 0; i < x->n_sni; i++) {
        free(x->sni[i].name);
        X509_free(x->sni[i].cert);
        EVP_PKEY_free(x->sni[i].key);
        sk_X509_pop_free(x->sni[i].chain, X509_free);
    }
    free(x->sni);
    free(x->alpn);
    free(x);
}

static void init_once(void)
{
    extra_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, extra_free);
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "gl socket");
    if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
        BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create) &&
        BIO_meth_set_destroy(m, bio_destroy))
        bio_method = m;
    else
        BIO_meth_free(m);
}

/* ---- errors ---- */

/* Formats "tls: <what>" from OpenSSL's error queue (or `fallback`) into buf, then
 * empties the queue so no stale entry is left for the next call. */
static void tls_reason(char *buf, size_t size, SSL *ssl, const char *prefix, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    char tmp[160];
    if (e && !reason) {
        ERR_error_string_n(e, tmp, sizeof tmp);
        reason = tmp;
    }
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (e && ERR_GET_LIB(e) == ERR_LIB_SSL &&
        ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK)
        snprintf(buf, size, "tls: %scertificate verify failed: %s", prefix,
                 X509_verify_cert_error_string(vr));
    else
        snprintf(buf, size, "tls: %s%s", prefix, reason ? reason : fallback);
    ERR_clear_error();
}

/* Maps a failed SSL_* call to a GL_IO_* code (or 0 for a clean close_notify EOF). */
static ssize_t tls_io_fail(gl_sock *s, gl_tls *t, int rc)
{
    int e = SSL_get_error(t->ssl, rc);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        ERR_clear_error();
        return GL_IO_WAIT_READ;
    case SSL_ERROR_WANT_WRITE:
        ERR_clear_error();
        return GL_IO_WAIT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return 0;
    case SSL_ERROR_SYSCALL:
        t->fatal = 1;
        if (t->bio_errno && ERR_peek_error() == 0) {
            s->err_no = t->bio_errno;
            s->err_msg = NULL;
            return GL_IO_ERROR;
        }
        tls_reason(t->msg, sizeof t->msg, t->ssl, "", "unexpected eof while reading");
        break;
    default:
        t->fatal = 1;
        tls_reason(t->msg, sizeof t->msg, t->ssl, "", "protocol error");
    }
    s->err_no = 0;
    s->err_msg = t->msg;
    return GL_IO_ERROR;
}

/* ---- the transport ---- */

/* The connection of s ready for one SSL call (errors cleared), or NULL with ENOTCONN. */
static gl_tls *tls_begin(gl_sock *s)
{
    gl_tls *t = s->tls;
    if (!t || !t->ssl) {
        s->err_no = ENOTCONN;
        s->err_msg = NULL;
        return NULL;
    }
    ERR_clear_error();
    t->bio_errno = 0;
    return t;
}

static ssize_t tls_recv(gl_sock *s, char *buf, size_t len)
{
    gl_tls *t = tls_begin(s);
    if (!t)
        return GL_IO_ERROR;
    size_t n = 0;
    int rc = SSL_read_ex(t->ssl, buf, len > INT_MAX ? INT_MAX : len, &n);
    if (rc > 0)
        return (ssize_t)n;
    return tls_io_fail(s, t, rc);
}

static ssize_t tls_send(gl_sock *s, const char *buf, size_t len)
{
    gl_tls *t = tls_begin(s);
    if (!t)
        return GL_IO_ERROR;
    size_t n = 0;
    int rc = SSL_write_ex(t->ssl, buf, len > INT_MAX ? INT_MAX : len, &n);
    if (rc > 0)
        return (ssize_t)n;
    ssize_t r = tls_io_fail(s, t, rc);
    if (r == 0) { /* the peer's close_notify came while we wrote */
        s->err_no = EPIPE;
        s->err_msg = NULL;
        return GL_IO_ERROR;
    }
    return r;
}

static size_t tls_pending(gl_sock *s)
{
    gl_tls *t = s->tls;
    return t && t->ssl ? (size_t)SSL_pending(t->ssl) : 0;
}

/* Sends close_notify once without waiting for the peer's, then frees everything. */
static void tls_close(gl_sock *s)
{
    gl_tls *t = s->tls;
    if (!t)
        return;
    if (t->ssl) {
        if (!t->fatal && SSL_is_init_finished(t->ssl)) {
            ERR_clear_error();
            SSL_shutdown(t->ssl);
        }
        ERR_clear_error();
        SSL_free(t->ssl);
    }
    SSL_CTX_free(t->ctx);
    free(t->pre);
    free(t);
    s->tls = NULL;
    s->err_msg = NULL;
}

static const gl_sock_io tls_io = {tls_recv, tls_send, tls_pending, tls_close};

/* ---- contexts ---- */

static SSL_CTX *ctx_check(lua_State *L, int idx)
{
    SSL_CTX **p = luaL_checkudata(L, idx, CTX_MT);
    if (!*p)
        luaL_argerror(L, idx, "a released TLS context");
    return *p;
}

static int ctx_gc(lua_State *L)
{
    SSL_CTX **p = luaL_checkudata(L, 1, CTX_MT);
    SSL_CTX_free(*p);
    *p = NULL;
    return 0;
}

static const char *opt_string(lua_State *L, int idx, const char *key)
{
    lua_getfield(L, idx, key);
    const char *v = lua_isnil(L, -1) ? NULL : lua_tostring(L, -1);
    if (!v && !lua_isnil(L, -1))
        luaL_error(L, "gl.wrap_ssl: option %s: string expected", key);
    lua_pop(L, 1); /* the string stays alive in the options table */
    return v;
}

static int opt_bool(lua_State *L, int idx, const char *key)
{
    lua_getfield(L, idx, key);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static int proto_version(lua_State *L, const char *name, const char *key)
{
    static const char *const names[] = {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", NULL};
    static const int values[] = {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION};
    for (int i = 0; names[i]; i++)
        if (strcmp(name, names[i]) == 0)
            return values[i];
    return luaL_error(L, "gl.wrap_ssl: option %s: unknown TLS version %s", key, name);
}

/* [-0, +2] nil, "tls: <what>: <openssl reason>" */
static int ctx_fail(lua_State *L, const char *what, const char *path)
{
    char buf[256];
    char prefix[160];
    if (path)
        snprintf(prefix, sizeof prefix, "%s %s: ", what, path);
    else
        snprintf(prefix, sizeof prefix, "%s: ", what);
    tls_reason(buf, sizeof buf, NULL, prefix, "failed");
    lua_pushnil(L);
    lua_pushstring(L, buf);
    return 2;
}

/* Reads a PEM certificate chain and a key for one SNI name; 0 or -1 (queue has why). */
static int load_sni(sni_cert *c, const char *certfile, const char *keyfile)
{
    BIO *b = BIO_new_file(certfile, "r");
    if (!b)
        return -1;
    c->cert = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
    c->chain = sk_X509_new_null();
    X509 *x;
    while (c->cert && c->chain && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
        if (!sk_X509_push(c->chain, x))
            X509_free(x);
    BIO_free(b);
    if (!c->cert || !c->chain)
        return -1;
    ERR_clear_error(); /* the end of the file reads as "no start line" */
    b = BIO_new_file(keyfile ? keyfile : certfile, "r");
    if (!b)
        return -1;
    c->key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!c->key)
        return -1;
    if (X509_check_private_key(c->cert, c->key) != 1)
        return -1;
    return 0;
}

static int sni_match(const char *pattern, const char *name)
{
    if (strcasecmp(pattern, name) == 0)
        return 1;
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(name, '.');
        return dot && dot != name && strcasecmp(pattern + 1, dot) == 0;
    }
    return 0;
}

static int servername_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    ctx_extra *x = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name || !x)
        return SSL_TLSEXT_ERR_OK;
    for (int i = 0; i < x->n_sni; i++) {
        sni_cert *c = &x->sni[i];
        if (sni_match(c->name, name)) {
            if (SSL_use_cert_and_key(ssl, c->cert, c->key, c->chain, 1) != 1) {
                *alert = SSL_AD_INTERNAL_ERROR;
                return SSL_TLSEXT_ERR_ALERT_FATAL;
            }
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    ctx_extra *x = arg;
    unsigned char *sel = NULL;
    if (!x || !x->alpn)
        return SSL_TLSEXT_ERR_NOACK;
    if (SSL_select_next_proto(&sel, outlen, x->alpn, x->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no common protocol: go on without ALPN */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* Builds the wire-format ALPN list from the list at idx; raises on a bad entry. */
static void alpn_wire(lua_State *L, int idx, ctx_extra *x)
{
    luaL_Buffer b;
    idx = lua_absindex(L, idx);
    luaL_buffinit(L, &b);
    lua_Integer n = luaL_len(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        size_t len;
        const char *p = lua_tolstring(L, -1, &len);
        if (!p || len == 0 || len > 255)
            luaL_error(L, "gl.wrap_ssl: option alpn: entry %d is not a protocol name", (int)i);
        lua_pop(L, 1);
        luaL_addchar(&b, (char)len);
        luaL_addlstring(&b, p, len);
    }
    luaL_pushresult(&b);
    size_t len;
    const char *w = lua_tolstring(L, -1, &len);
    if (len) {
        x->alpn = malloc(len);
        if (!x->alpn)
            luaL_error(L, "out of memory");
        memcpy(x->alpn, w, len);
        x->alpn_len = (unsigned int)len;
    }
    lua_pop(L, 1);
}

/* core.tls_context(opts) -> context | nil, err. opts has been normalised by tls.lua:
 * server_side, certfile, keyfile, cafile, capath, verify, alpn (list), ciphers,
 * ciphersuites, min_version, max_version, sni = {name = {certfile=, keyfile=}}. */
static int l_context(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    CRYPTO_THREAD_run_once(&once, init_once);
    if (extra_index < 0 || !bio_method)
        return luaL_error(L, "gl.wrap_ssl: cannot initialise OpenSSL");
    int server = opt_bool(L, 1, "server_side");
    int verify = opt_bool(L, 1, "verify");
    const char *certfile = opt_string(L, 1, "certfile");
    const char *keyfile = opt_string(L, 1, "keyfile");
    const char *cafile = opt_string(L, 1, "cafile");
    const char *capath = opt_string(L, 1, "capath");
    const char *ciphers = opt_string(L, 1, "ciphers");
    const char *suites = opt_string(L, 1, "ciphersuites");
    const char *minv = opt_string(L, 1, "min_version");
    const char *maxv = opt_string(L, 1, "max_version");
    int min_proto = proto_version(L, minv ? minv : "TLSv1.2", "min_version");
    int max_proto = maxv ? proto_version(L, maxv, "max_version") : 0;

    SSL_CTX **ud = lua_newuserdatauv(L, sizeof *ud, 0); /* stack: opts, ud */
    *ud = NULL;
    luaL_setmetatable(L, CTX_MT);
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx)
        return ctx_fail(L, "cannot make a context", NULL);
    *ud = ctx; /* from here __gc frees it */
    ctx_extra *x = calloc(1, sizeof *x);
    if (!x || !SSL_CTX_set_ex_data(ctx, extra_index, x)) {
        free(x);
        return luaL_error(L, "out of memory");
    }
    SSL_CTX_set_min_proto_version(ctx, min_proto);
    SSL_CTX_set_max_proto_version(ctx, max_proto);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    if (ciphers && SSL_CTX_set_cipher_list(ctx, ciphers) != 1)
        return ctx_fail(L, "ciphers", ciphers);
    if (suites && SSL_CTX_set_ciphersuites(ctx, suites) != 1)
        return ctx_fail(L, "ciphersuites", suites);
    if (certfile) {
        if (SSL_CTX_use_certificate_chain_file(ctx, certfile) != 1)
            return ctx_fail(L, "cannot load certfile", certfile);
        const char *k = keyfile ? keyfile : certfile;
        if (SSL_CTX_use_PrivateKey_file(ctx, k, SSL_FILETYPE_PEM) != 1)
            return ctx_fail(L, "cannot load keyfile", k);
        if (SSL_CTX_check_private_key(ctx) != 1)
            return ctx_fail(L, "keyfile does not match certfile", k);
    }
    if (verify) {
        if (cafile || capath) {
            if (SSL_CTX_load_verify_locations(ctx, cafile, capath) != 1)
                return ctx_fail(L, "cannot load CA certificates from", cafile ? cafile : capath);
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            return ctx_fail(L, "cannot load the system CA store", NULL);
        }
        if (server && cafile) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cafile);
            if (names)
                SSL_CTX_set_client_CA_list(ctx, names);
        }
        SSL_CTX_set_verify(
            ctx, server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
            NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (server) {
        static const unsigned char sid[] = "gl";
        SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
    }
    if (lua_getfield(L, 1, "alpn") == LUA_TTABLE) {
        alpn_wire(L, -1, x);
        if (x->alpn) {
            if (server)
                SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, x);
            else if (SSL_CTX_set_alpn_protos(ctx, x->alpn, x->alpn_len) != 0)
                return ctx_fail(L, "alpn", NULL);
        }
    }
    lua_pop(L, 1);
    if (server && lua_getfield(L, 1, "sni") == LUA_TTABLE) { /* stack: opts, ud, sni */
        int n = 0;
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            n++;
            lua_pop(L, 1);
        }
        x->sni = calloc((size_t)(n ? n : 1), sizeof *x->sni);
        if (!x->sni)
            return luaL_error(L, "out of memory");
        lua_pushnil(L);
        while (lua_next(L, -2)) { /* stack: opts, ud, sni, name, entry */
            const char *name = lua_tostring(L, -2);
            if (lua_type(L, -2) != LUA_TSTRING || !lua_istable(L, -1))
                return luaL_error(L, "gl.wrap_ssl: option sni: name = {certfile=, keyfile=}");
            const char *cf = opt_string(L, -1, "certfile");
            const char *kf = opt_string(L, -1, "keyfile");
            if (!cf)
                return luaL_error(L, "gl.wrap_ssl: option sni[%s]: certfile missing", name);
            sni_cert *c = &x->sni[x->n_sni++];
            c->name = strdup(name);
            if (!c->name)
                return luaL_error(L, "out of memory");
            if (load_sni(c, cf, kf) != 0)
                return ctx_fail(L, "cannot load the sni certificate", cf);
            lua_pop(L, 1);
        }
        if (x->n_sni) {
            SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
            SSL_CTX_set_tlsext_servername_arg(ctx, x);
        }
    }
    lua_settop(L, 2);
    ERR_clear_error();
    return 1;
}

/* ---- wrapping ---- */

static gl_sock *tls_check(lua_State *L, int idx)
{
    gl_sock *s = luaL_checkudata(L, idx, GL_TLS_MT);
    if (s->fd < 0)
        luaL_error(L, "attempt to use a closed socket");
    return s;
}

static SSL *conn_ssl(lua_State *L, gl_sock *s)
{
    gl_tls *t = s->tls;
    if (!t || !t->ssl)
        luaL_error(L, "gl.tlssocket: not a connection (a listening socket)");
    return t->ssl;
}

/* Moves the fd of plain socket p (index idx) into a new TLS socket; [-0, +1]. The old
 * object ends closed; bytes it had read ahead are handed to the TLS state. */
static gl_sock *take_over(lua_State *L, int idx, gl_tls **tp)
{
    gl_sock *p = gl_sock_check_open(L, idx);
    if (p->tls || p->io != &gl_plain_io)
        luaL_argerror(L, idx, "the socket is already wrapped");
    if (p->type != SOCK_STREAM)
        luaL_argerror(L, idx, "TLS needs a stream socket");
    if (p->reader || p->writer)
        luaL_argerror(L, idx, "a green thread is waiting on this socket");
    gl_tls *t = calloc(1, sizeof *t);
    if (!t)
        luaL_error(L, "out of memory");
    if (p->rlen) { /* STARTTLS: whatever was read ahead belongs to the handshake */
        t->pre = malloc(p->rlen);
        if (!t->pre) {
            free(t);
            luaL_error(L, "out of memory");
            return NULL;
        }
        memcpy(t->pre, p->rbuf + p->rpos, p->rlen);
        t->prelen = p->rlen;
    }
    free(p->rbuf);
    p->rbuf = NULL;
    p->rcap = p->rpos = p->rlen = 0;
    int family = p->family, type = p->type, listening = p->listening;
    double timeout = p->timeout;
    int fd = gl_sock_detach(L, p);
    t->fd = fd;
    if (type == SOCK_STREAM && family != AF_UNIX) {
        /* a handshake flight goes out in several writes: with Nagle the next one waits for
         * the peer's delayed ACK (40 ms a handshake); accepted sockets inherit it */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    /* if gl_sock_push raises (fcntl), it has closed fd; t would leak, which is all */
    gl_sock *s = gl_sock_push(L, fd, family, type, GL_TLS_MT);
    s->timeout = timeout;
    s->listening = (unsigned char)listening;
    s->tls = t;
    s->io = &tls_io;
    *tp = t;
    return s;
}

/* Gives t a new SSL from ctx bound to its fd; 0, or -1 with nil, err pushed. */
static int new_ssl(lua_State *L, gl_tls *t, SSL_CTX *ctx, int server)
{
    ERR_clear_error();
    t->ssl = SSL_new(ctx);
    BIO *b = t->ssl ? BIO_new(bio_method) : NULL;
    if (!b) {
        ctx_fail(L, "cannot make a connection", NULL);
        return -1;
    }
    BIO_set_data(b, t);
    SSL_set_bio(t->ssl, b, b);
    if (server)
        SSL_set_accept_state(t->ssl);
    else
        SSL_set_connect_state(t->ssl);
    return 0;
}

/* core.tls_wrap(sock, ctx, server_side [, hostname [, check_host]]) -> tlssocket | nil, err.
 * A listening sock becomes a TLS listener; a connected one gets an SSL (no handshake yet).
 * hostname: SNI (unless it is an IP address) and, with check_host, the name verified. */
static int l_wrap(lua_State *L)
{
    SSL_CTX *ctx = ctx_check(L, 2);
    int server = lua_toboolean(L, 3);
    const char *host = luaL_optstring(L, 4, NULL);
    int check_host = lua_toboolean(L, 5);
    gl_tls *t;
    gl_sock *s = take_over(L, 1, &t); /* stack: ..., tlssocket */
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1); /* the socket keeps its context (and its cache entry) */
    if (s->listening) {
        SSL_CTX_up_ref(ctx);
        t->ctx = ctx;
        return 1;
    }
    if (new_ssl(L, t, ctx, server) != 0) {
        gl_sock_close(L, s);
        return 2;
    }
    if (!server && host && *host) {
        unsigned char ip[16];
        int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
        X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
        int ok = 1;
        if (!is_ip)
            ok = SSL_set_tlsext_host_name(t->ssl, host) == 1;
        if (ok && check_host) {
            X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) == 1
                       : X509_VERIFY_PARAM_set1_host(vp, host, 0) == 1;
        }
        if (!ok) {
            gl_sock_close(L, s);
            return ctx_fail(L, "bad hostname", host);
        }
    }
    return 1;
}

/* listener:_wrap_accepted(conn) -> tlssocket: conn served with the listener's context;
 * the handshake waits for the first I/O (or :handshake()) in the caller's thread. */
static int tls_wrap_accepted(lua_State *L)
{
    gl_sock *l = tls_check(L, 1);
    gl_tls *lt = l->tls;
    if (!lt || !lt->ctx)
        return luaL_error(L, "gl.tlssocket: not a listening socket");
    gl_tls *t;
    gl_sock *s = take_over(L, 2, &t); /* stack: listener, conn, tlssocket */
    lua_getiuservalue(L, 1, 1);
    lua_setiuservalue(L, -2, 1);
    if (new_ssl(L, t, lt->ctx, 1) != 0) {
        gl_sock_close(L, s);
        return 2;
    }
    return 1;
}

/* ---- methods ---- */

static int tls_handshake_k(lua_State *L, int status, lua_KContext ctx)
{
    gl_sock *s = luaL_checkudata(L, 1, GL_TLS_MT);
    int waited = gl_sock_after_wait(L, s, status);
    if (waited < 0)
        return -waited;
    if (s->fd < 0)
        return gl_sock_fail_closed(L);
    SSL *ssl = conn_ssl(L, s);
    gl_tls *t = s->tls;
    ERR_clear_error();
    t->bio_errno = 0;
    int rc = SSL_do_handshake(ssl);
    if (rc == 1) {
        ERR_clear_error();
        lua_pushboolean(L, 1);
        return 1;
    }
    ssize_t r = tls_io_fail(s, t, rc);
    if (r == GL_IO_WAIT_READ || r == GL_IO_WAIT_WRITE)
        return gl_sock_wait(L, s, (int)r, tls_handshake_k, ctx);
    if (r == 0) {
        t->fatal = 1;
        s->err_msg = "tls: connection closed during the handshake";
    }
    return gl_sock_fail(L, s, 0);
}

/* tlssocket:handshake() -> true | nil, err (a no-op once done). */
static int tls_handshake(lua_State *L)
{
    gl_sock *s = tls_check(L, 1);
    conn_ssl(L, s);
    lua_settop(L, 1);
    return tls_handshake_k(L, LUA_OK, 0);
}

static SSL *done_ssl(lua_State *L)
{
    gl_sock *s = tls_check(L, 1);
    SSL *ssl = conn_ssl(L, s);
    return SSL_is_init_finished(ssl) ? ssl : NULL;
}

static int tls_version(lua_State *L)
{
    SSL *ssl = done_ssl(L);
    if (ssl)
        lua_pushstring(L, SSL_get_version(ssl));
    else
        lua_pushnil(L);
    return 1;
}

/* tlssocket:cipher() -> name, protocol, secret bits (nil before the handshake) */
static int tls_cipher(lua_State *L)
{
    SSL *ssl = done_ssl(L);
    const SSL_CIPHER *c = ssl ? SSL_get_current_cipher(ssl) : NULL;
    if (!c) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, SSL_CIPHER_get_name(c));
    lua_pushstring(L, SSL_get_version(ssl));
    lua_pushinteger(L, SSL_CIPHER_get_bits(c, NULL));
    return 3;
}

static int tls_alpn_selected(lua_State *L)
{
    SSL *ssl = done_ssl(L);
    const unsigned char *p = NULL;
    unsigned int len = 0;
    if (ssl)
        SSL_get0_alpn_selected(ssl, &p, &len);
    if (p && len)
        lua_pushlstring(L, (const char *)p, len);
    else
        lua_pushnil(L);
    return 1;
}

/* The SNI name a client asked for (server side), or the one sent (client side). */
static int tls_servername(lua_State *L)
{
    SSL *ssl = conn_ssl(L, tls_check(L, 1));
    const char *n = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (n)
        lua_pushstring(L, n);
    else
        lua_pushnil(L);
    return 1;
}

/* [-0, +1] a name as RFC 2253 text ("CN=localhost,O=gl") */
static void push_name(lua_State *L, const X509_NAME *name)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p = NULL;
    long len = 0;
    if (b && X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0)
        len = BIO_get_mem_data(b, &p);
    lua_pushlstring(L, p ? p : "", p ? (size_t)len : 0);
    BIO_free(b);
}

/* [-0, +1] an ASN1_TIME as Unix time (nil if unreadable) */
static void push_time(lua_State *L, const ASN1_TIME *at)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (at && ASN1_TIME_to_tm(at, &tm) == 1)
        lua_pushinteger(L, (lua_Integer)timegm(&tm));
    else
        lua_pushnil(L);
}

static void push_san(lua_State *L, X509 *cert)
{
    lua_newtable(L);
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (!names)
        return;
    int n = sk_GENERAL_NAME_num(names);
    lua_Integer k = 0;
    for (int i = 0; i < n; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_DNS) {
            const ASN1_IA5STRING *d = g->d.dNSName;
            lua_pushlstring(L, (const char *)ASN1_STRING_get0_data(d),
                            (size_t)ASN1_STRING_length(d));
        } else if (g->type == GEN_IPADD) {
            const ASN1_OCTET_STRING *o = g->d.iPAddress;
            char buf[INET6_ADDRSTRLEN];
            int len = ASN1_STRING_length(o);
            int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
            if (!af || !inet_ntop(af, ASN1_STRING_get0_data(o), buf, sizeof buf))
                continue;
            lua_pushstring(L, buf);
        } else {
            continue;
        }
        lua_rawseti(L, -2, ++k);
    }
    GENERAL_NAMES_free(names);
}

/* tlssocket:getpeercert() -> {subject, issuer, san, not_before, not_after, fingerprint}
 * or nil when the peer sent none (or before the handshake). */
static int tls_getpeercert(lua_State *L)
{
    SSL *ssl = done_ssl(L);
    X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    if (!cert) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 6);
    push_name(L, X509_get_subject_name(cert));
    lua_setfield(L, -2, "subject");
    push_name(L, X509_get_issuer_name(cert));
    lua_setfield(L, -2, "issuer");
    push_san(L, cert);
    lua_setfield(L, -2, "san");
    push_time(L, X509_get0_notBefore(cert));
    lua_setfield(L, -2, "not_before");
    push_time(L, X509_get0_notAfter(cert));
    lua_setfield(L, -2, "not_after");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) == 1) {
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        for (unsigned int i = 0; i < mdlen; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        lua_pushlstring(L, hex, 2 * (size_t)mdlen);
        lua_setfield(L, -2, "fingerprint");
    }
    ERR_clear_error();
    return 1;
}

/* tlssocket:shutdown(how): for "w" and "rw", close_notify first (once, not waiting). */
static int tls_shutdown(lua_State *L)
{
    gl_sock *s = tls_check(L, 1);
    static const char *const hows[] = {"r", "w", "rw", NULL};
    static const int values[] = {SHUT_RD, SHUT_WR, SHUT_RDWR};
    int how = values[luaL_checkoption(L, 2, "rw", hows)];
    gl_tls *t = s->tls;
    if (how != SHUT_RD && t && t->ssl && !t->fatal && SSL_is_init_finished(t->ssl) &&
        !(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN)) {
        ERR_clear_error();
        SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
    if (shutdown(s->fd, how) != 0)
        return gl_sock_fail(L, s, errno);
    lua_pushboolean(L, 1);
    return 1;
}

static int tls_tostring(lua_State *L)
{
    gl_sock *s = luaL_checkudata(L, 1, GL_TLS_MT);
    if (s->fd < 0)
        lua_pushliteral(L, "gl.tlssocket (closed)");
    else
        lua_pushfstring(L, "gl.tlssocket (fd %d)", s->fd);
    return 1;
}

/* ---- sessions (resumption for clients: gl.compat.ngx's sslhandshake) ---- */

#define SESS_MT "gl.tlssession"

static int sess_gc(lua_State *L)
{
    SSL_SESSION **p = luaL_checkudata(L, 1, SESS_MT);
    if (*p)
        SSL_SESSION_free(*p);
    *p = NULL;
    return 0;
}

/* tsock:_session() -> session | nil: the connection's current session (its own reference) */
static int tls_session(lua_State *L)
{
    SSL *ssl = conn_ssl(L, tls_check(L, 1));
    SSL_SESSION *sess = SSL_get1_session(ssl);
    if (!sess || !SSL_SESSION_is_resumable(sess)) {
        if (sess)
            SSL_SESSION_free(sess);
        lua_pushnil(L);
        return 1;
    }
    SSL_SESSION **p = lua_newuserdatauv(L, sizeof *p, 0);
    *p = sess;
    luaL_setmetatable(L, SESS_MT);
    return 1;
}

/* tsock:_set_session(session) -> true: offer session for resumption (before the handshake) */
static int tls_set_session(lua_State *L)
{
    SSL *ssl = conn_ssl(L, tls_check(L, 1));
    SSL_SESSION **p = luaL_checkudata(L, 2, SESS_MT);
    lua_pushboolean(L, *p && SSL_set_session(ssl, *p) == 1);
    return 1;
}

/* tsock:session_reused() -> whether the handshake resumed an offered session */
static int tls_session_reused(lua_State *L)
{
    lua_pushboolean(L, SSL_session_reused(conn_ssl(L, tls_check(L, 1))) == 1);
    return 1;
}

int gl_open_tls(lua_State *L)
{
    static const luaL_Reg methods[] = {{"handshake", tls_handshake},
                                       {"getpeercert", tls_getpeercert},
                                       {"cipher", tls_cipher},
                                       {"version", tls_version},
                                       {"alpn_selected", tls_alpn_selected},
                                       {"servername", tls_servername},
                                       {"shutdown", tls_shutdown},
                                       {"_wrap_accepted", tls_wrap_accepted},
                                       {"_session", tls_session},
                                       {"_set_session", tls_set_session},
                                       {"session_reused", tls_session_reused},
                                       {NULL, NULL}};
    static const luaL_Reg ctx_meta[] = {{"__gc", ctx_gc}, {NULL, NULL}};
    static const luaL_Reg funcs[] = {
        {"tls_context", l_context}, {"tls_wrap", l_wrap}, {NULL, NULL}};
    luaL_newmetatable(L, CTX_MT);
    luaL_setfuncs(L, ctx_meta, 0);
    lua_pop(L, 1);
    luaL_newmetatable(L, SESS_MT);
    lua_pushcfunction(L, sess_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    gl_sock_setup_metatable(L, GL_TLS_MT);
    luaL_getmetatable(L, GL_TLS_MT); /* stack: core, mt */
    lua_pushcfunction(L, tls_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_getfield(L, -1, "__index"); /* stack: core, mt, methods */
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -3, "tls_methods"); /* tls.lua adds accept and the Lua methods */
    lua_pop(L, 1);
    luaL_setfuncs(L, funcs, 0);
    return 0;
}
