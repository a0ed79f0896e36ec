/* HTTP/1.x heads and chunked bodies (RFC 9112), parsed strictly enough that gl and a proxy in
 * front of it can't disagree about where a message ends. Bytes in, slices out: no allocation,
 * no I/O; what to answer, and reading the body bytes, belong to the server and client. */
#include "http_parser.h"

#include <limits.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define BAD GL_HTTP_BAD_REQUEST

enum {
    C_TOKEN = 1,  /* tchar */
    C_VALUE = 2,  /* field-vchar, SP, HTAB: a header value or reason phrase */
    C_TARGET = 4, /* a request-target byte: visible ASCII or obs-text, no space */
    C_HOST = 8,   /* uri-host ":" port: unreserved, pct-encoded, sub-delims, ":[]" */
    C_HEX = 16,
};

/* clang-format off */
static const unsigned char ctype[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0,  /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    2,  15, 6,  7,  15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15, 6,  /* 0x20  !"#$%&'()*+,-./ */
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 14, 14, 6,  14, 6,  6,  /* 0x30 0-9:;<=>? */
    6,  31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 0x40 @A-O */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 6,  14, 7,  15, /* 0x50 P-Z[\]^_ */
    7,  31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 0x60 `a-o */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6,  7,  6,  15, 0,  /* 0x70 p-z{|}~DEL */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  /* 0x80.. obs-text */
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,
    6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,
};
/* clang-format on */

#define IS(c, cls) (ctype[(unsigned char)(c)] & (cls))

typedef struct limits {
    size_t target, head, headers;
} limits;

static limits limits_get(const gl_http_limits *lim)
{
    limits l = {GL_HTTP_DEFAULT_MAX_TARGET, GL_HTTP_DEFAULT_MAX_HEAD, GL_HTTP_MAX_HEADERS};
    if (lim) {
        if (lim->max_target)
            l.target = lim->max_target;
        if (lim->max_head)
            l.head = lim->max_head;
        if (lim->max_headers && lim->max_headers < l.headers)
            l.headers = lim->max_headers;
    }
    if (l.head > INT_MAX) /* the head length is returned as an int */
        l.head = INT_MAX;
    return l;
}

/* Returns the first byte in [p, end) not in class cls, or end. The hot loop of the parser. */
static const char *skip(const char *p, const char *end, int cls)
{
    while (end - p >= 4) {
        if (!IS(p[0], cls))
            return p;
        if (!IS(p[1], cls))
            return p + 1;
        if (!IS(p[2], cls))
            return p + 2;
        if (!IS(p[3], cls))
            return p + 3;
        p += 4;
    }
    while (p < end && IS(*p, cls))
        p++;
    return p;
}

/* skip(p, end, C_VALUE), 16 bytes at a time where SSE2 is there: values are most of a head's
 * bytes. A field-vchar is any byte but a CTL (below 0x20, and DEL); HTAB, the one CTL a value
 * may hold, stops the vector scan and is stepped over one byte at a time. */
static const char *skip_value(const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i ctl = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i stop =
            _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v), _mm_cmpeq_epi8(v, del));
        int mask = _mm_movemask_epi8(stop);
        if (!mask) {
            p += 16;
            continue;
        }
        p += __builtin_ctz((unsigned)mask);
        if (*p != '\t')
            return p;
        p++;
    }
#endif
    return skip(p, end, C_VALUE);
}

/* skip(p, end, C_TOKEN) for a field name, 16 bytes at a time where SSE2 is there: names are
 * letters, digits and '-' but for the rare other tchar ("X_Id"), which the scalar check steps
 * over. */
/* inlined: the call cost about 20 instructions a field name, 450 of a json request's 17,400 */
static inline __attribute__((always_inline)) const char *skip_name(const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i case_bit = _mm_set1_epi8(0x20), a = _mm_set1_epi8('a'), zero = _mm_set1_epi8('0');
    const __m128i letters = _mm_set1_epi8(25), digits = _mm_set1_epi8(9), dash = _mm_set1_epi8('-');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i l = _mm_sub_epi8(_mm_or_si128(v, case_bit), a); /* a letter: 0..25 */
        __m128i d = _mm_sub_epi8(v, zero);                      /* a digit: 0..9 */
        __m128i ok = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(l, letters), l),
                                  _mm_cmpeq_epi8(_mm_min_epu8(d, digits), d));
        ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, dash));
        int stop = _mm_movemask_epi8(ok) ^ 0xffff;
        if (!stop) {
            p += 16;
            continue;
        }
        p += __builtin_ctz((unsigned)stop);
        if (!IS(*p, C_TOKEN))
            return p;
        p++;
    }
#endif
    return skip(p, end, C_TOKEN);
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

bool gl_http_ieq(const char *p, size_t len, const char *want, size_t wlen)
{
    if (len != wlen)
        return false;
    for (size_t i = 0; i < len; i++)
        if (lower((unsigned char)p[i]) != lower((unsigned char)want[i]))
            return false;
    return true;
}

/* lit is lowercase; its length and first byte settle most compares without a call */
#define IEQ(s, lit)                                                                                \
    ((s).len == sizeof(lit) - 1 && lower((unsigned char)(s).p[0]) == (lit)[0] &&                   \
     gl_http_ieq((s).p, (s).len, lit, sizeof(lit) - 1))

bool gl_http_is_token(const char *p, size_t len)
{
    return len > 0 && skip_name(p, p + len) == p + len;
}

bool gl_http_name_eq(gl_http_slice name, const char *want)
{
    return gl_http_ieq(name.p, name.len, want, strlen(want));
}

const gl_http_header *gl_http_find_header(const gl_http_header *hdrs, size_t n, const char *name,
                                          const gl_http_header *after)
{
    size_t wlen = strlen(name);
    for (size_t i = after ? (size_t)(after - hdrs) + 1 : 0; i < n; i++)
        if (gl_http_ieq(hdrs[i].name.p, hdrs[i].name.len, name, wlen))
            return &hdrs[i];
    return NULL;
}

/* Matches "HTTP/d.d" at p: returns 8, 0 for a valid prefix, or an error. */
static int parse_version(const char *p, const char *end, int *minor)
{
    static const char pat[] = "HTTP/0.0"; /* '0' stands for any digit */
    size_t n = (size_t)(end - p) < 8 ? (size_t)(end - p) : 8;
    for (size_t i = 0; i < n; i++) {
        bool ok = pat[i] == '0' ? p[i] >= '0' && p[i] <= '9' : p[i] == pat[i];
        if (!ok)
            return BAD;
    }
    if (n < 8)
        return GL_HTTP_MORE;
    if (p[5] != '1')
        return GL_HTTP_VERSION_NOT_SUPPORTED;
    *minor = p[7] == '0' ? 0 : 1; /* 1.2+ are 1.1-compatible (RFC 9110 2.5) */
    return 8;
}

/* Expects CRLF at p: returns 2, 0 for a valid prefix, or an error (a bare LF is one). */
static int parse_crlf(const char *p, const char *end)
{
    if (p == end)
        return GL_HTTP_MORE;
    if (*p != '\r')
        return BAD;
    if (end - p < 2)
        return GL_HTTP_MORE;
    return p[1] == '\n' ? 2 : BAD;
}

/* Parses field lines from *pp through the blank line into h[*n..max): returns 1 with *pp past
 * the blank line, 0 for a valid prefix, or an error. */
static int parse_fields(const char **pp, const char *end, gl_http_header *h, size_t *n, size_t max)
{
    const char *p = *pp;
    size_t k = *n; /* a local count: the stores into h could alias *n */
    for (;;) {
        if (p == end)
            return GL_HTTP_MORE;
        if (*p == '\r') {
            int r = parse_crlf(p, end);
            if (r <= 0)
                return r;
            *pp = p + 2;
            *n = k;
            return 1;
        }
        if (k == max)
            return GL_HTTP_HEADERS_TOO_LARGE;
        const char *name = p;
        p = skip_name(p, end);
        if (p == end)
            return GL_HTTP_MORE;
        /* catches obs-fold (a line starting with SP/HTAB), space before the colon, bare LF */
        if (*p != ':' || p == name)
            return BAD;
        const char *name_end = p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *v = p;
        p = skip_value(p, end);
        int r = parse_crlf(p, end); /* anything else here is a CTL: NUL, bare CR or LF, DEL */
        if (r <= 0)
            return r;
        const char *v_end = p;
        while (v_end > v && (v_end[-1] == ' ' || v_end[-1] == '\t'))
            v_end--;
        h[k].name = (gl_http_slice){name, (size_t)(name_end - name)};
        h[k].value = (gl_http_slice){v, (size_t)(v_end - v)};
        k++;
        p += 2;
    }
}

/* What the header fields say about framing and the connection. */
typedef struct facts {
    int64_t content_length;
    bool chunked, transfer_encoding, close, keep_alive, upgrade_option, upgrade, expect_continue;
    int hosts;
    gl_http_slice host;
} facts;

static bool parse_length(gl_http_slice v, int64_t *out)
{
    int64_t n = 0;
    if (v.len == 0)
        return false;
    for (size_t i = 0; i < v.len; i++) {
        int d = (unsigned char)v.p[i] - '0';
        if (d < 0 || d > 9 || n > (INT64_MAX - d) / 10)
            return false;
        n = n * 10 + d;
    }
    *out = n;
    return true;
}

/* Reads the comma-separated options of a Connection header. */
static void connection_options(gl_http_slice v, facts *f)
{
    const char *p = v.p, *end = v.p + v.len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        while (p < e && (*p == ' ' || *p == '\t'))
            p++;
        const char *te = e;
        while (te > p && (te[-1] == ' ' || te[-1] == '\t'))
            te--;
        gl_http_slice opt = {p, (size_t)(te - p)};
        if (IEQ(opt, "close"))
            f->close = true;
        else if (IEQ(opt, "keep-alive"))
            f->keep_alive = true;
        else if (IEQ(opt, "upgrade"))
            f->upgrade_option = true;
        p = comma ? comma + 1 : end;
    }
}

/* Whether the last coding of a Transfer-Encoding list is chunked (RFC 9112 6.3). */
static bool ends_in_chunked(gl_http_slice v)
{
    const char *end = v.p + v.len;
    while (end > v.p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    const char *p = end;
    while (p > v.p && p[-1] != ',')
        p--;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return gl_http_ieq(p, (size_t)(end - p), "chunked", 7);
}

/* Derives framing from the fields: returns 0, or an error for ambiguous or unsupported framing
 * (the request-smuggling rules of RFC 9112 6). */
static int head_facts(const gl_http_header *h, size_t n, int minor, facts *f)
{
    bool has_length = false;
    memset(f, 0, sizeof *f);
    f->content_length = -1;
    for (size_t i = 0; i < n; i++) {
        gl_http_slice name = h[i].name, v = h[i].value;
        switch (name.len) { /* the length picks at most one candidate name */
        case 4:
            if (IEQ(name, "host")) {
                f->hosts++;
                f->host = v;
            }
            break;
        case 6:
            if (IEQ(name, "expect") && IEQ(v, "100-continue"))
                f->expect_continue = true;
            break;
        case 7:
            if (IEQ(name, "upgrade"))
                f->upgrade = true;
            break;
        case 10:
            if (IEQ(name, "connection"))
                connection_options(v, f);
            break;
        case 14:
            if (IEQ(name, "content-length")) {
                if (has_length || !parse_length(v, &f->content_length))
                    return BAD; /* even an identical duplicate: one framing, no guessing */
                has_length = true;
            }
            break;
        case 17:
            if (IEQ(name, "transfer-encoding")) {
                if (f->transfer_encoding || v.len == 0)
                    return BAD;
                f->transfer_encoding = true;
                if (!IEQ(v, "chunked")) /* chunked must come last, or the end is unknowable */
                    return ends_in_chunked(v) ? GL_HTTP_NOT_IMPLEMENTED : BAD;
                f->chunked = true;
            }
            break;
        default:
            break;
        }
    }
    /* both at once is the classic smuggling vector; HTTP/1.0 has no Transfer-Encoding, so a
     * 1.0 message carrying one was mangled on the way (RFC 9112 6.1) */
    if (f->transfer_encoding && (has_length || minor == 0))
        return BAD;
    return 0;
}

int gl_http_parse_request(const char *buf, size_t len, gl_http_request *req,
                          const gl_http_limits *lim)
{
    limits l = limits_get(lim);
    int more = len > l.head ? GL_HTTP_HEADERS_TOO_LARGE : GL_HTTP_MORE;
    int r, minor = 1;
    req->nheaders = 0;
    if (len == 0)
        return GL_HTTP_MORE;
    const char *p = buf, *end = buf + (len > l.head ? l.head : len);

    while (p < end && *p == '\r') { /* empty lines before the request-line (RFC 9112 2.2) */
        if ((r = parse_crlf(p, end)) <= 0)
            return r ? r : more;
        p += 2;
    }
    const char *m = p;
    p = skip(p, end, C_TOKEN);
    if (p == end)
        return more;
    if (*p != ' ' || p == m)
        return BAD;
    const char *t = ++p;
    /* The target is measured against its own limit even past the head limit, so that a
     * too-long target is 414 whatever follows it; scan no further than one byte past that
     * limit, so a huge target fails fast. */
    const char *all = buf + len;
    const char *t_end = (size_t)(all - t) > l.target ? t + l.target + 1 : all;
    p = skip(t, t_end, C_TARGET);
    if ((size_t)(p - t) > l.target)
        return GL_HTTP_URI_TOO_LONG;
    if (p == all)
        return GL_HTTP_MORE; /* still within its limit: read on to tell 414 from 431 */
    if (p >= end)
        return more;
    if (*p != ' ' || p == t)
        return BAD;
    const char *target_end = p;
    if ((r = parse_version(++p, end, &minor)) <= 0)
        return r ? r : more;
    p += r;
    if ((r = parse_crlf(p, end)) <= 0)
        return r ? r : more;
    p += r;
    if ((r = parse_fields(&p, end, req->headers, &req->nheaders, l.headers)) <= 0)
        return r ? r : more;

    facts f;
    if ((r = head_facts(req->headers, req->nheaders, minor, &f)) < 0)
        return r;
    if (f.hosts > 1 || (minor == 1 && f.hosts == 0)) /* RFC 9112 3.2 */
        return BAD;
    if (f.hosts && skip(f.host.p, f.host.p + f.host.len, C_HOST) != f.host.p + f.host.len)
        return BAD;
    size_t tlen = (size_t)(target_end - t);
    const char *q = memchr(t, '?', tlen);
    req->method = (gl_http_slice){m, (size_t)(t - 1 - m)};
    req->target = (gl_http_slice){t, tlen};
    req->path = (gl_http_slice){t, q ? (size_t)(q - t) : tlen};
    req->query =
        q ? (gl_http_slice){q + 1, (size_t)(target_end - q - 1)} : (gl_http_slice){target_end, 0};
    req->minor = minor;
    req->content_length = f.content_length;
    req->chunked = f.chunked;
    req->keep_alive = minor ? !f.close : f.keep_alive && !f.close;
    req->expect_continue = minor && f.expect_continue; /* 1.0 clients can't expect (RFC 9110) */
    req->upgrade = f.upgrade && f.upgrade_option;
    return (int)(p - buf);
}

int gl_http_parse_response(const char *buf, size_t len, gl_http_response *res,
                           const gl_http_limits *lim)
{
    limits l = limits_get(lim);
    int more = len > l.head ? GL_HTTP_HEADERS_TOO_LARGE : GL_HTTP_MORE;
    int r, minor = 1;
    res->nheaders = 0;
    if (len == 0)
        return GL_HTTP_MORE;
    const char *p = buf, *end = buf + (len > l.head ? l.head : len);

    if ((r = parse_version(p, end, &minor)) <= 0)
        return r ? r : more;
    p += r;
    /* " ddd" then " reason" or nothing (a missing reason's SP is a common slip; allow it) */
    static const char pat[] = " 000";
    for (size_t i = 0; i < 4; i++) {
        if (p + i == end)
            return more;
        if (pat[i] == '0' ? p[i] < '0' || p[i] > '9' : p[i] != pat[i])
            return BAD;
    }
    int status = (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
    if (status < 100)
        return BAD;
    p += 4;
    const char *reason = p;
    if (p < end && *p == ' ') {
        reason = ++p;
        p = skip(p, end, C_VALUE);
    }
    if ((r = parse_crlf(p, end)) <= 0)
        return r ? r : more;
    const char *reason_end = p;
    p += r;
    if ((r = parse_fields(&p, end, res->headers, &res->nheaders, l.headers)) <= 0)
        return r ? r : more;

    facts f;
    if ((r = head_facts(res->headers, res->nheaders, minor, &f)) < 0)
        return r;
    res->status = status;
    res->reason = (gl_http_slice){reason, (size_t)(reason_end - reason)};
    res->minor = minor;
    res->content_length = f.content_length;
    res->chunked = f.chunked;
    res->keep_alive = minor ? !f.close : f.keep_alive && !f.close;
    res->upgrade = f.upgrade && f.upgrade_option;
    return (int)(p - buf);
}

gl_http_body gl_http_response_body(const gl_http_response *res, bool head_request)
{
    if (head_request || res->status < 200 || res->status == 204 || res->status == 304)
        return GL_HTTP_BODY_NONE;
    if (res->chunked)
        return GL_HTTP_BODY_CHUNKED;
    return res->content_length >= 0 ? GL_HTTP_BODY_LENGTH : GL_HTTP_BODY_CLOSE;
}

/* Chunked decoder states (RFC 9112 7.1). */
enum {
    S_SIZE,      /* first hex digit of a chunk-size */
    S_SIZE_MORE, /* more hex digits, or what follows them */
    S_SIZE_WS,   /* BWS after the size: only a ';' may follow */
    S_EXT,       /* chunk extensions, ignored up to CR */
    S_SIZE_LF,   /* LF ending the chunk-size line */
    S_DATA,      /* remaining data bytes */
    S_DATA_CR,   /* CRLF after the data */
    S_DATA_LF,
    S_TRAILER,  /* start of a trailer line, or of the final CRLF */
    S_TR_NAME,  /* trailer field name */
    S_TR_VALUE, /* trailer field value up to CR */
    S_TR_LF,    /* LF ending a trailer line */
    S_END_LF,   /* LF of the final CRLF */
    S_DONE,
    S_FAILED,
};

#define CHUNK_LINE_MAX 4096 /* a chunk-size line with its extensions */

void gl_http_chunked_init(gl_http_chunked *st, size_t max_trailer)
{
    memset(st, 0, sizeof *st);
    st->state = S_SIZE;
    st->max_trailer = max_trailer ? max_trailer : GL_HTTP_DEFAULT_MAX_TRAILER;
}

/* Advances st by one byte c outside the data: returns 0, or an error. */
static int chunked_byte(gl_http_chunked *st, unsigned char c)
{
    if (st->state <= S_SIZE_LF && ++st->line > CHUNK_LINE_MAX)
        return BAD;
    if (st->state >= S_TRAILER && ++st->trailer > st->max_trailer)
        return GL_HTTP_HEADERS_TOO_LARGE;
    switch (st->state) {
    case S_SIZE:
    case S_SIZE_MORE:
        if (IS(c, C_HEX)) {
            if (st->remaining >> 56) /* one more digit could pass 2^60: no such body */
                return BAD;
            st->remaining =
                st->remaining << 4 | (uint64_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
            st->state = S_SIZE_MORE;
            return 0;
        }
        if (st->state == S_SIZE)
            return BAD;
        /* fallthrough */
    case S_SIZE_WS:
        if (c == ' ' || c == '\t')
            st->state = S_SIZE_WS;
        else if (c == ';')
            st->state = S_EXT;
        else if (c == '\r' && st->state == S_SIZE_MORE)
            st->state = S_SIZE_LF;
        else
            return BAD;
        return 0;
    case S_EXT:
        if (c == '\r')
            st->state = S_SIZE_LF;
        else if (!IS(c, C_VALUE))
            return BAD;
        return 0;
    case S_SIZE_LF:
        if (c != '\n')
            return BAD;
        st->line = 0;
        st->state = st->remaining ? S_DATA : S_TRAILER;
        return 0;
    case S_DATA_CR:
        if (c != '\r')
            return BAD;
        st->state = S_DATA_LF;
        return 0;
    case S_DATA_LF:
        if (c != '\n')
            return BAD;
        st->state = S_SIZE;
        return 0;
    case S_TRAILER:
        if (c == '\r')
            st->state = S_END_LF;
        else if (IS(c, C_TOKEN))
            st->state = S_TR_NAME;
        else
            return BAD; /* obs-fold, bare LF, junk */
        return 0;
    case S_TR_NAME:
        if (c == ':')
            st->state = S_TR_VALUE;
        else if (!IS(c, C_TOKEN))
            return BAD;
        return 0;
    case S_TR_VALUE:
        if (c == '\r')
            st->state = S_TR_LF;
        else if (!IS(c, C_VALUE))
            return BAD;
        return 0;
    case S_TR_LF:
    case S_END_LF:
        if (c != '\n')
            return BAD;
        st->state = st->state == S_TR_LF ? S_TRAILER : S_DONE;
        return 0;
    default:
        return BAD;
    }
}

int gl_http_chunked_decode(gl_http_chunked *st, const char *in, size_t len, size_t *consumed,
                           const char **data, size_t *data_len)
{
    size_t i = 0;
    *data = NULL;
    *data_len = 0;
    while (i < len && st->state != S_DONE && st->state != S_FAILED) {
        if (st->state == S_DATA) {
            size_t n = len - i;
            if ((uint64_t)n > st->remaining)
                n = (size_t)st->remaining;
            st->remaining -= n;
            if (st->remaining == 0)
                st->state = S_DATA_CR;
            *data = in + i;
            *data_len = n;
            *consumed = i + n;
            return GL_HTTP_CHUNK_DATA;
        }
        int r = chunked_byte(st, (unsigned char)in[i++]);
        if (r < 0) {
            st->state = S_FAILED;
            *consumed = i;
            return r;
        }
    }
    *consumed = i;
    if (st->state == S_FAILED)
        return BAD;
    return st->state == S_DONE ? GL_HTTP_CHUNK_DONE : GL_HTTP_CHUNK_MORE;
}
