/* libFuzzer target for src/http_parser.c: arbitrary bytes as request heads, response heads and a
 * chunked body. Checks bounds (every slice inside the consumed head), the grammar of what was
 * accepted, prefix consistency (a prefix parses as "more" or the same result) and that the
 * chunked decoder gives the same body however the input is split. Aborts on any violation. */
#include "http_parser.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSERT(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static gl_http_request req, req2;
static gl_http_response res, res2;

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* s lies within [lo, hi) (an empty slice may sit at hi) */
static void check_in(gl_http_slice s, const char *lo, const char *hi)
{
    ASSERT(s.p != NULL);
    ASSERT(s.p >= lo && s.p <= hi && s.len <= (size_t)(hi - s.p));
}

static void check_headers(const gl_http_header *h, size_t n, const char *lo, const char *hi,
                          size_t max)
{
    ASSERT(n <= max && n <= GL_HTTP_MAX_HEADERS);
    for (size_t i = 0; i < n; i++) {
        check_in(h[i].name, lo, hi);
        check_in(h[i].value, lo, hi);
        ASSERT(h[i].name.len > 0);
        for (size_t j = 0; j < h[i].name.len; j++)
            ASSERT(is_tchar((unsigned char)h[i].name.p[j]));
        ASSERT(h[i].name.p[h[i].name.len] == ':');
        for (size_t j = 0; j < h[i].value.len; j++) {
            unsigned char c = (unsigned char)h[i].value.p[j];
            ASSERT(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        if (h[i].value.len) {
            ASSERT(!is_ws(h[i].value.p[0]));
            ASSERT(!is_ws(h[i].value.p[h[i].value.len - 1]));
        }
        ASSERT(gl_http_find_header(h, n, "x", &h[i]) == NULL ||
               gl_http_find_header(h, n, "x", &h[i]) > &h[i]);
    }
}

static int is_error(int r)
{
    return r == GL_HTTP_BAD_REQUEST || r == GL_HTTP_URI_TOO_LONG ||
           r == GL_HTTP_HEADERS_TOO_LARGE || r == GL_HTTP_NOT_IMPLEMENTED ||
           r == GL_HTTP_VERSION_NOT_SUPPORTED;
}

static void check_request(const char *buf, size_t len, const gl_http_limits *lim)
{
    size_t max_head = lim && lim->max_head ? lim->max_head : GL_HTTP_DEFAULT_MAX_HEAD;
    size_t max_target = lim && lim->max_target ? lim->max_target : GL_HTTP_DEFAULT_MAX_TARGET;
    size_t max_headers = lim && lim->max_headers ? lim->max_headers : GL_HTTP_MAX_HEADERS;
    int r = gl_http_parse_request(buf, len, &req, lim);
    ASSERT(r == 0 || is_error(r) || (r > 0 && (size_t)r <= len && (size_t)r <= max_head));
    if (r > 0) {
        const char *hi = buf + r;
        ASSERT(r >= 4 && memcmp(hi - 4, "\r\n\r\n", 4) == 0);
        check_in(req.method, buf, hi);
        check_in(req.target, buf, hi);
        check_in(req.path, buf, hi);
        check_in(req.query, buf, hi);
        ASSERT(req.method.len > 0 && req.target.len > 0 && req.target.len <= max_target);
        ASSERT(req.method.p[req.method.len] == ' ' &&
               req.target.p == req.method.p + req.method.len + 1);
        ASSERT(req.target.p[req.target.len] == ' ');
        for (size_t j = 0; j < req.method.len; j++)
            ASSERT(is_tchar((unsigned char)req.method.p[j]));
        for (size_t j = 0; j < req.target.len; j++) {
            unsigned char c = (unsigned char)req.target.p[j];
            ASSERT(c > 0x20 && c != 0x7f);
        }
        ASSERT(req.path.p == req.target.p && req.path.len <= req.target.len);
        ASSERT(!memchr(req.path.p, '?', req.path.len));
        if (req.path.len < req.target.len) {
            ASSERT(req.target.p[req.path.len] == '?');
            ASSERT(req.query.p == req.path.p + req.path.len + 1);
            ASSERT(req.path.len + 1 + req.query.len == req.target.len);
        } else {
            ASSERT(req.query.len == 0);
        }
        ASSERT(req.minor == 0 || req.minor == 1);
        ASSERT(req.content_length >= -1);
        ASSERT(!req.chunked || req.content_length == -1);
        ASSERT(!req.chunked || req.minor == 1);
        ASSERT(!req.expect_continue || req.minor == 1);
        check_headers(req.headers, req.nheaders, buf, hi, max_headers);
        const gl_http_header *host = gl_http_find_header(req.headers, req.nheaders, "host", NULL);
        ASSERT(req.minor == 0 || host != NULL);
        ASSERT(!host || !gl_http_find_header(req.headers, req.nheaders, "host", host));
        const gl_http_header *cl =
            gl_http_find_header(req.headers, req.nheaders, "content-length", NULL);
        ASSERT(!cl || !gl_http_find_header(req.headers, req.nheaders, "content-length", cl));
        ASSERT(!cl == (req.content_length == -1));
        ASSERT(!req.chunked || !cl);
    }
    /* prefixes, each in an exactly-sized copy so ASan catches reads past len */
    size_t step = len <= 256 ? 1 : len / 64;
    for (size_t k = 0; k < len; k += step) {
        char *pre = malloc(k ? k : 1);
        ASSERT(pre);
        memcpy(pre, buf, k);
        int rk = gl_http_parse_request(pre, k, &req2, lim);
        free(pre);
        if (r > 0 && (size_t)r > k)
            ASSERT(rk == 0);
        else
            ASSERT(rk == 0 || rk == r);
    }
}

static void check_response(const char *buf, size_t len, const gl_http_limits *lim)
{
    size_t max_head = lim && lim->max_head ? lim->max_head : GL_HTTP_DEFAULT_MAX_HEAD;
    int r = gl_http_parse_response(buf, len, &res, lim);
    ASSERT(r == 0 || is_error(r) || (r > 0 && (size_t)r <= len && (size_t)r <= max_head));
    if (r > 0) {
        const char *hi = buf + r;
        ASSERT(r >= 4 && memcmp(hi - 4, "\r\n\r\n", 4) == 0);
        ASSERT(res.status >= 100 && res.status <= 999);
        ASSERT(res.minor == 0 || res.minor == 1);
        check_in(res.reason, buf, hi);
        for (size_t j = 0; j < res.reason.len; j++) {
            unsigned char c = (unsigned char)res.reason.p[j];
            ASSERT(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        ASSERT(res.content_length >= -1 && (!res.chunked || res.content_length == -1));
        check_headers(res.headers, res.nheaders, buf, hi, GL_HTTP_MAX_HEADERS);
        gl_http_body b = gl_http_response_body(&res, false);
        ASSERT(gl_http_response_body(&res, true) == GL_HTTP_BODY_NONE);
        ASSERT(b != GL_HTTP_BODY_CHUNKED || res.chunked);
        ASSERT(b != GL_HTTP_BODY_LENGTH || res.content_length >= 0);
    }
    size_t step = len <= 256 ? 1 : len / 64;
    for (size_t k = 0; k < len; k += step) {
        char *pre = malloc(k ? k : 1);
        ASSERT(pre);
        memcpy(pre, buf, k);
        int rk = gl_http_parse_response(pre, k, &res2, lim);
        free(pre);
        if (r > 0 && (size_t)r > k)
            ASSERT(rk == 0);
        else
            ASSERT(rk == 0 || rk == r);
    }
}

/* Decodes buf as a chunked body, offering at most `step` new bytes at a time (step 0: all);
 * returns the final status and fills out/out_len/used. */
static int decode(const char *buf, size_t len, size_t step, uint32_t seed, char *out,
                  size_t *out_len, size_t *used)
{
    gl_http_chunked st;
    gl_http_chunked_init(&st, 64);
    size_t off = 0, avail = 0;
    *out_len = 0;
    for (;;) {
        size_t add = step;
        if (seed) { /* random split points */
            seed = seed * 1103515245u + 12345u;
            add = 1 + (seed >> 16) % 16;
        }
        avail = step == 0 || avail + add > len ? len : avail + add;
        for (;;) {
            size_t n = avail - off, consumed = (size_t)-1, dlen = 0;
            const char *data = NULL;
            char *piece = malloc(n ? n : 1);
            ASSERT(piece);
            memcpy(piece, buf + off, n);
            int r = gl_http_chunked_decode(&st, piece, n, &consumed, &data, &dlen);
            ASSERT(consumed <= n);
            ASSERT(r == GL_HTTP_CHUNK_MORE || r == GL_HTTP_CHUNK_DATA || r == GL_HTTP_CHUNK_DONE ||
                   r == GL_HTTP_BAD_REQUEST || r == GL_HTTP_HEADERS_TOO_LARGE);
            if (r == GL_HTTP_CHUNK_DATA) {
                ASSERT(dlen > 0 && data >= piece && data + dlen == piece + consumed);
                memcpy(out + *out_len, data, dlen);
                *out_len += dlen;
            } else {
                ASSERT(data == NULL && dlen == 0);
            }
            if (r == GL_HTTP_CHUNK_MORE)
                ASSERT(consumed == n);
            free(piece);
            off += consumed;
            if (r < 0 || r == GL_HTTP_CHUNK_DONE) {
                *used = off;
                ASSERT(*out_len <= off);
                return r;
            }
            if (r == GL_HTTP_CHUNK_MORE || off == avail)
                break;
        }
        if (avail == len) {
            *used = off;
            ASSERT(off == len && *out_len <= len);
            return GL_HTTP_CHUNK_MORE;
        }
    }
}

static void check_chunked(const char *buf, size_t len, uint32_t seed)
{
    char *a = malloc(len + 1), *b = malloc(len + 1);
    ASSERT(a && b);
    size_t alen, blen, aused, bused;
    int ra = decode(buf, len, 0, 0, a, &alen, &aused);
    int rb = decode(buf, len, 1, 0, b, &blen, &bused);
    /* where the error is found may differ by a byte; that there is one may not */
    ASSERT(ra == rb);
    if (ra >= 0)
        ASSERT(alen == blen && aused == bused && memcmp(a, b, alen) == 0);
    rb = decode(buf, len, 1, seed | 1, b, &blen, &bused);
    ASSERT(ra == rb);
    if (ra >= 0)
        ASSERT(alen == blen && aused == bused && memcmp(a, b, alen) == 0);
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    static const gl_http_limits tight = {.max_target = 16, .max_head = 200, .max_headers = 4};
    if (size == 0)
        return 0;
    check_request(buf, size, NULL);
    check_request(buf, size, &tight);
    check_response(buf, size, NULL);
    check_response(buf, size, &tight);
    /* pipelining: heads one after another, skipping declared bodies when present */
    size_t off = 0;
    for (int i = 0; i < 8 && off < size; i++) {
        int r = gl_http_parse_request(buf + off, size - off, &req, NULL);
        if (r <= 0)
            break;
        off += (size_t)r;
        if (req.content_length > 0)
            off +=
                (uint64_t)req.content_length > size - off ? size - off : (size_t)req.content_length;
    }
    uint32_t seed = 0;
    for (size_t i = 0; i < size && i < 4; i++)
        seed = seed << 8 | data[i];
    check_chunked(buf, size, seed);
    /* a head followed by a chunked body, as the server would see it */
    int r = gl_http_parse_request(buf, size, &req, NULL);
    if (r > 0 && req.chunked)
        check_chunked(buf + r, size - (size_t)r, seed);
    return 0;
}
