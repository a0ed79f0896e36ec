/* C tests for src/http_parser.c: good and hostile request heads, responses, the chunked decoder.
 * Every head is also fed as each of its prefixes (in exactly-sized heap copies, so ASan sees
 * over-reads): a prefix must parse as "more" or as the same error as the whole. */
#include "http_parser.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_int(long long got, long long want, int line, const char *what)
{
    if (got == want) {
        passed++;
    } else {
        failed++;
        printf("FAIL line %d: %s: got %lld, want %lld\n", line, what, got, want);
    }
}

static void check_str(gl_http_slice got, const char *want, int line, const char *what)
{
    if (got.len == strlen(want) && memcmp(got.p, want, got.len) == 0) {
        passed++;
    } else {
        failed++;
        printf("FAIL line %d: %s: got \"%.*s\", want \"%s\"\n", line, what, (int)got.len,
               got.p ? got.p : "", want);
    }
}

#define EQ(a, b) check_int((long long)(a), (long long)(b), __LINE__, #a)
#define STR(s, w) check_str((s), (w), __LINE__, #s)

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    if (!p) {
        perror("malloc");
        exit(2);
    }
    memcpy(p, s, n);
    return p;
}

static gl_http_request req; /* large: keep them off the stack */
static gl_http_request req2;
static gl_http_response res;
static gl_http_response res2;

/* Parses s[0..n) as a request after checking that every prefix gives 0 or the same result. */
static int parse_req_n(const char *s, size_t n, const gl_http_limits *lim, int line)
{
    char *copy = dup_n(s, n);
    int whole = gl_http_parse_request(copy, n, &req, lim);
    free(copy);
    for (size_t k = 0; k < n; k++) {
        char *pre = dup_n(s, k);
        int r = gl_http_parse_request(pre, k, &req2, lim);
        free(pre);
        int want = whole > 0 && (size_t)whole > k ? 0 : whole;
        if (r != want && r != 0) {
            failed++;
            printf("FAIL line %d: prefix %zu of %zu gave %d, whole gave %d\n", line, k, n, r,
                   whole);
            break;
        }
        if (whole > 0 && k < (size_t)whole && r != 0) {
            failed++;
            printf("FAIL line %d: prefix %zu of a good head gave %d\n", line, k, r);
            break;
        }
    }
    /* parse again in place so the slices in req point into s, which the caller keeps */
    return gl_http_parse_request(s, n, &req, lim);
}

#define REQ(s) parse_req_n((s), strlen(s), NULL, __LINE__)
#define REQ_BIN(lit) parse_req_n((lit), sizeof(lit) - 1, NULL, __LINE__)
#define REQ_LIM(s, lim) parse_req_n((s), strlen(s), (lim), __LINE__)
#define HOST "Host: example.com\r\n"

static int parse_res_n(const char *s, size_t n, int line)
{
    int whole = gl_http_parse_response(s, n, &res, NULL);
    for (size_t k = 0; k < n; k++) {
        char *pre = dup_n(s, k);
        int r = gl_http_parse_response(pre, k, &res2, NULL);
        free(pre);
        int want = whole > 0 && (size_t)whole > k ? 0 : whole;
        if (r != 0 && r != want) {
            failed++;
            printf("FAIL line %d: response prefix %zu of %zu gave %d, whole gave %d\n", line, k, n,
                   r, whole);
            break;
        }
    }
    return gl_http_parse_response(s, n, &res, NULL);
}

#define RES(s) parse_res_n((s), strlen(s), __LINE__)

static void test_good_requests(void)
{
    const char *s = "GET / HTTP/1.1\r\n" HOST "\r\n";
    EQ(REQ(s), strlen(s));
    STR(req.method, "GET");
    STR(req.target, "/");
    STR(req.path, "/");
    STR(req.query, "");
    EQ(req.minor, 1);
    EQ(req.nheaders, 1);
    STR(req.headers[0].name, "Host");
    STR(req.headers[0].value, "example.com");
    EQ(req.content_length, -1);
    CHECK(!req.chunked && req.keep_alive && !req.expect_continue && !req.upgrade);

    s = "GET /a/b?x=1&y=?2 HTTP/1.0\r\n\r\n"; /* 1.0 needs no Host */
    EQ(REQ(s), strlen(s));
    STR(req.path, "/a/b");
    STR(req.query, "x=1&y=?2");
    EQ(req.minor, 0);
    CHECK(!req.keep_alive);

    s = "GET /? HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    EQ(REQ(s), strlen(s));
    STR(req.path, "/");
    STR(req.query, "");
    CHECK(req.keep_alive);

    s = "GET / HTTP/1.1\r\n" HOST "Connection: Keep-Alive , CLOSE\r\n\r\n";
    EQ(REQ(s), strlen(s));
    CHECK(!req.keep_alive);

    s = "GET /chat HTTP/1.1\r\n" HOST
        "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n";
    EQ(REQ(s), strlen(s));
    CHECK(req.upgrade && req.keep_alive);
    s = "GET /chat HTTP/1.1\r\n" HOST "Upgrade: websocket\r\n\r\n";
    EQ(REQ(s), strlen(s));
    CHECK(!req.upgrade);

    s = "POST /form HTTP/1.1\r\n" HOST "Content-Length: 5\r\n\r\nhello";
    EQ(REQ(s), strlen(s) - 5);
    EQ(req.content_length, 5);
    CHECK(!req.chunked);
    CHECK(memcmp(s + strlen(s) - 5, "hello", 5) == 0);

    s = "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: ChunKed\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    EQ(REQ(s), strstr(s, "\r\n\r\n") - s + 4);
    CHECK(req.chunked);
    EQ(req.content_length, -1);

    s = "PUT /x HTTP/1.1\r\n" HOST "Expect: 100-Continue\r\nContent-Length: 0\r\n\r\n";
    EQ(REQ(s), strlen(s));
    CHECK(req.expect_continue);
    EQ(req.content_length, 0);
    s = "PUT /x HTTP/1.0\r\nExpect: 100-continue\r\n\r\n";
    EQ(REQ(s), strlen(s));
    CHECK(!req.expect_continue);

    s = "\r\n\r\nGET / HTTP/1.1\r\n" HOST "\r\n"; /* leading empty lines count as consumed */
    EQ(REQ(s), strlen(s));
    STR(req.method, "GET");

    s = "GET / HTTP/1.1\r\n" HOST
        "X-A:  a b \t\r\nX-Empty:\r\nX-Ws: \t \r\nX-8: caf\xc3\xa9\r\n\r\n";
    EQ(REQ(s), strlen(s));
    EQ(req.nheaders, 5);
    STR(req.headers[1].value, "a b");
    STR(req.headers[2].value, "");
    STR(req.headers[3].value, "");
    STR(req.headers[4].value, "caf\xc3\xa9");

    s = "OPTIONS * HTTP/1.1\r\n" HOST "\r\n";
    EQ(REQ(s), strlen(s));
    STR(req.target, "*");
    s = "GET http://example.com/p?q HTTP/1.1\r\n" HOST "\r\n";
    EQ(REQ(s), strlen(s));
    STR(req.path, "http://example.com/p");
    STR(req.query, "q");
    s = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    EQ(REQ(s), strlen(s));
    s = "GET / HTTP/1.2\r\n" HOST "\r\n"; /* a later 1.x is treated as 1.1 */
    EQ(REQ(s), strlen(s));
    EQ(req.minor, 1);
    s = "GET / HTTP/1.1\r\nHost:\r\n\r\n"; /* empty Host is allowed */
    EQ(REQ(s), strlen(s));
    s = "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n";
    EQ(REQ(s), strlen(s));
    s = "M-SEARCH * HTTP/1.1\r\n" HOST "\r\n";
    EQ(REQ(s), strlen(s));
    STR(req.method, "M-SEARCH");

    s = "POST / HTTP/1.1\r\n" HOST "Content-Length: 007\r\n\r\n";
    EQ(REQ(s), strlen(s));
    EQ(req.content_length, 7);
    s = "POST / HTTP/1.1\r\n" HOST "Content-Length:9223372036854775807\r\n\r\n";
    EQ(REQ(s), strlen(s));
    EQ(req.content_length, 9223372036854775807LL);
}

static void test_pipelined(void)
{
    const char *s = "GET /a HTTP/1.1\r\n" HOST "\r\n"
                    "POST /b HTTP/1.1\r\n" HOST "Content-Length: 2\r\n\r\nhi"
                    "GET /c HTTP/1.1\r\n" HOST "Connection: close\r\n\r\n"
                    "GET /d HT";
    size_t len = strlen(s), off = 0;
    int n = gl_http_parse_request(s, len, &req, NULL);
    CHECK(n > 0);
    STR(req.target, "/a");
    off += (size_t)n;
    n = gl_http_parse_request(s + off, len - off, &req, NULL);
    CHECK(n > 0);
    STR(req.target, "/b");
    EQ(req.content_length, 2);
    off += (size_t)n;
    CHECK(memcmp(s + off, "hi", 2) == 0);
    off += 2;
    n = gl_http_parse_request(s + off, len - off, &req, NULL);
    CHECK(n > 0);
    STR(req.target, "/c");
    CHECK(!req.keep_alive);
    off += (size_t)n;
    EQ(gl_http_parse_request(s + off, len - off, &req, NULL), 0);
    EQ(gl_http_parse_request(s, 0, &req, NULL), 0);
}

static void test_rejections(void)
{
    /* line endings: CRLF only */
    EQ(REQ("GET / HTTP/1.1\n" HOST "\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\nHost: a\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\nHost: a\r\n\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\nX: a\rb\r\n" HOST "\r\n"), -400);
    EQ(REQ("\nGET / HTTP/1.1\r\n" HOST "\r\n"), -400);
    EQ(REQ("\r\rGET / HTTP/1.1\r\n" HOST "\r\n"), -400);
    /* header field syntax */
    EQ(REQ("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\n" HOST "X: a\r\n b\r\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\n" HOST "X: a\r\n\tb\r\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\n " HOST "\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\n" HOST ": a\r\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\n" HOST "X(y): a\r\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\n" HOST "X\xc3\xa9: a\r\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\n" HOST "No colon\r\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\n" HOST "NoColon\r\n\r\n"), -400);
    EQ(REQ_BIN("GET / HTTP/1.1\r\n" HOST "X: a\0b\r\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\n" HOST "X: a\x7f\r\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\n" HOST "X: a\x01\r\n\r\n"), -400);
    /* request line */
    EQ(REQ("GET  / HTTP/1.1\r\n" HOST "\r\n"), -400);
    EQ(REQ("GET /  HTTP/1.1\r\n" HOST "\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1 \r\n" HOST "\r\n"), -400);
    EQ(REQ(" GET / HTTP/1.1\r\n" HOST "\r\n"), -400);
    EQ(REQ("GET\t/ HTTP/1.1\r\n" HOST "\r\n"), -400);
    EQ(REQ("GET /\tx HTTP/1.1\r\n" HOST "\r\n"), -400);
    EQ(REQ("GET / http/1.1\r\n" HOST "\r\n"), -400);
    EQ(REQ("GET /\r\n" HOST "\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1x\r\n" HOST "\r\n"), -400);
    EQ(REQ("GET / HTTP/1.\r\n" HOST "\r\n"), -400);
    EQ(REQ("GET / HTTP/1.10\r\n" HOST "\r\n"), -400);
    EQ(REQ("G(T / HTTP/1.1\r\n" HOST "\r\n"), -400);
    EQ(REQ("G\xc3\x89T / HTTP/1.1\r\n" HOST "\r\n"), -400);
    EQ(REQ("GET /\x01 HTTP/1.1\r\n" HOST "\r\n"), -400);
    EQ(REQ("GET /\x7f HTTP/1.1\r\n" HOST "\r\n"), -400);
    EQ(REQ_BIN("GET /\0 HTTP/1.1\r\n" HOST "\r\n"), -400);
    EQ(REQ("GET HTTP/1.1\r\n" HOST "\r\n"), -400);
    EQ(REQ("GET / HTTP/2.0\r\n" HOST "\r\n"), -505);
    EQ(REQ("GET / HTTP/0.9\r\n" HOST "\r\n"), -505);
    EQ(REQ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), -505);
    /* Content-Length */
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\ncontent-length: 6\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Content-Length: 5, 5\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Content-Length: +5\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Content-Length: -1\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Content-Length: 5a\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Content-Length: 0x5\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Content-Length: 1 2\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Content-Length:\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Content-Length: 9223372036854775808\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Content-Length: 99999999999999999999999\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Content-Length : 5\r\n\r\n"), -400);
    /* Transfer-Encoding */
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
       -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
       -400);
    /* chunked not last: the end is unknowable, 400 (RFC 9112 6.3); a coding before it: 501 */
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked, gzip\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip, chunked\r\n\r\n"), -501);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked, chunked\r\n\r\n"), -501);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\nTransfer-Encoding: "
           "chunked\r\n\r\n"),
       -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: xchunked\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding:\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding : chunked\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding:\x0b"
           "chunked\r\n\r\n"),
       -400);
    /* Host */
    EQ(REQ("GET / HTTP/1.1\r\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\n" HOST HOST "\r\n"), -400);
    EQ(REQ("GET / HTTP/1.0\r\n" HOST "Host: b\r\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n"), -400);
}

static void test_limits(void)
{
    static char buf[200000];
    gl_http_limits lim = {0};
    /* default target limit 8192 */
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', 8191);
    strcpy(buf + 5 + 8191, " HTTP/1.1\r\n" HOST "\r\n");
    EQ(gl_http_parse_request(buf, strlen(buf), &req, NULL), strlen(buf));
    EQ(req.target.len, 8192);
    memset(buf + 5, 'a', 8192);
    strcpy(buf + 5 + 8192, " HTTP/1.1\r\n" HOST "\r\n");
    EQ(gl_http_parse_request(buf, strlen(buf), &req, NULL), -414);
    EQ(gl_http_parse_request(buf, 5 + 8193, &req, NULL), -414); /* before the line ends */
    EQ(gl_http_parse_request(buf, 5 + 8191, &req, NULL), 0);

    lim.max_target = 4;
    EQ(REQ_LIM("GET /abc HTTP/1.1\r\n" HOST "\r\n", &lim),
       strlen("GET /abc HTTP/1.1\r\n" HOST "\r\n"));
    EQ(REQ_LIM("GET /abcd HTTP/1.1\r\n" HOST "\r\n", &lim), -414);

    /* head size: exactly at the limit passes, one byte less fails, even before it completes */
    const char *s = "GET / HTTP/1.1\r\n" HOST "X: 12345\r\n\r\n";
    lim = (gl_http_limits){.max_head = strlen(s)};
    EQ(REQ_LIM(s, &lim), strlen(s));
    lim.max_head--;
    EQ(REQ_LIM(s, &lim), -431);
    lim.max_head = 20;
    EQ(gl_http_parse_request(s, 21, &req, &lim), -431);
    EQ(gl_http_parse_request(s, 20, &req, &lim), 0);
    /* a target over its limit is 414 even when it also runs past the head limit; one still
     * within its limit past the head limit needs more bytes to tell 414 from 431 */
    lim = (gl_http_limits){.max_head = 64, .max_target = 100};
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', 150);
    EQ(gl_http_parse_request(buf, 5 + 150, &req, &lim), -414);
    EQ(gl_http_parse_request(buf, 5 + 90, &req, &lim), 0);
    strcpy(buf + 5 + 90, " HTTP/1.1\r\n" HOST "\r\n");
    EQ(gl_http_parse_request(buf, strlen(buf), &req, &lim), -431);
    /* the default head limit, with a long value */
    size_t off = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n" HOST "X: ");
    memset(buf + off, 'v', 70000);
    strcpy(buf + off + 70000, "\r\n\r\n");
    EQ(gl_http_parse_request(buf, strlen(buf), &req, NULL), -431);
    EQ(gl_http_parse_request(buf, 65536, &req, NULL), 0);
    EQ(gl_http_parse_request(buf, 65537, &req, NULL), -431);
    /* endless empty lines are bounded by the head limit too */
    for (size_t i = 0; i < 70000; i += 2)
        memcpy(buf + i, "\r\n", 2);
    EQ(gl_http_parse_request(buf, 70000, &req, NULL), -431);

    /* header count: 100 by default */
    off = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n" HOST);
    for (int i = 1; i < GL_HTTP_MAX_HEADERS; i++)
        off += (size_t)sprintf(buf + off, "X-%d: %d\r\n", i, i);
    strcpy(buf + off, "\r\n");
    EQ(gl_http_parse_request(buf, strlen(buf), &req, NULL), strlen(buf));
    EQ(req.nheaders, GL_HTTP_MAX_HEADERS);
    STR(req.headers[99].name, "X-99");
    strcpy(buf + off, "X-100: 100\r\n\r\n");
    EQ(gl_http_parse_request(buf, strlen(buf), &req, NULL), -431);
    lim = (gl_http_limits){.max_headers = 2};
    EQ(REQ_LIM("GET / HTTP/1.1\r\n" HOST "A: 1\r\n\r\n", &lim), 43);
    EQ(REQ_LIM("GET / HTTP/1.1\r\n" HOST "A: 1\r\nB: 2\r\n\r\n", &lim), -431);
    lim = (gl_http_limits){.max_headers = 1000}; /* capped at the array size */
    EQ(gl_http_parse_request(buf, strlen(buf), &req, &lim), -431);
}

static void test_hostile(void)
{
    EQ(REQ("\r\n"), 0);
    EQ(REQ("\r"), 0);
    EQ(REQ("\r\r"), -400);
    EQ(REQ_BIN("\0"), -400);
    EQ(REQ_BIN("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), -400); /* a TLS ClientHello */
    EQ(REQ("GET / HTTP/1.1\r\n" HOST ":::::\r\n\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\n" HOST "X:::: :\r\n\r\n"),
       strlen("GET / HTTP/1.1\r\n" HOST "X:::: :\r\n\r\n"));
    STR(req.headers[1].value, "::: :");
    EQ(REQ("GET / HTTP/1.1\r\r\n" HOST "\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\n" HOST "\r\r\n"), -400);
    EQ(REQ("GET / HTTP/1.1\r\n" HOST "\n"), -400);
    /* a smuggling attempt: a second request hidden behind an obs-fold and a bare LF */
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Content-Length: 0\r\n Transfer-Encoding: chunked\r\n\r\n"),
       -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "X: y\nContent-Length: 44\r\n\r\n"), -400);
    EQ(REQ("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n"),
       -400);

    /* every single byte, and every pair, as a head: must not crash, must stay within bounds */
    char b[2];
    for (int c = 0; c < 256; c++) {
        b[0] = (char)c;
        int r = gl_http_parse_request(b, 1, &req, NULL);
        CHECK(r == 0 || r == -400);
        for (int d = 0; d < 256; d++) {
            b[1] = (char)d;
            r = gl_http_parse_request(b, 2, &req, NULL);
            if (r != 0 && r != -400)
                CHECK(r == 0 || r == -400);
            r = gl_http_parse_response(b, 2, &res, NULL);
            if (r != 0 && r != -400)
                CHECK(r == 0 || r == -400);
        }
    }
    /* pseudo-random bytes from a fixed seed */
    unsigned x = 12345;
    static char junk[4096];
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof junk; i++) {
            x = x * 1103515245u + 12345u;
            junk[i] = (char)(x >> 16);
        }
        int r = gl_http_parse_request(junk, sizeof junk, &req, NULL);
        if (r > 0)
            CHECK(r <= (int)sizeof junk);
        r = gl_http_parse_response(junk, sizeof junk, &res, NULL);
        if (r > 0)
            CHECK(r <= (int)sizeof junk);
    }
    CHECK(1);
}

static void test_lookup(void)
{
    const char *s = "GET / HTTP/1.1\r\n" HOST "Set-Cookie: a=1\r\nX: y\r\nset-COOKIE: b=2\r\n\r\n";
    EQ(REQ(s), strlen(s));
    const gl_http_header *h = gl_http_find_header(req.headers, req.nheaders, "set-cookie", NULL);
    CHECK(h == &req.headers[1]);
    STR(h->value, "a=1");
    h = gl_http_find_header(req.headers, req.nheaders, "Set-Cookie", h);
    CHECK(h == &req.headers[3]);
    STR(h->value, "b=2");
    CHECK(gl_http_find_header(req.headers, req.nheaders, "set-cookie", h) == NULL);
    CHECK(gl_http_find_header(req.headers, req.nheaders, "HOST", NULL) == &req.headers[0]);
    CHECK(gl_http_find_header(req.headers, req.nheaders, "Hos", NULL) == NULL);
    CHECK(gl_http_find_header(req.headers, 0, "host", NULL) == NULL);
    CHECK(gl_http_name_eq(req.headers[0].name, "hOsT"));
    CHECK(!gl_http_name_eq(req.headers[0].name, "hosts"));
    CHECK(!gl_http_name_eq((gl_http_slice){"a[", 2}, "a{")); /* no case folding beyond letters */
    CHECK(gl_http_ieq("X-Id", 4, "x-iD", 4) && !gl_http_ieq("X-Id", 4, "x-i", 3));
    CHECK(gl_http_ieq("", 0, "", 0) && gl_http_ieq("X-Request-Id", 12, "x-REQUEST-id", 12));
    CHECK(gl_http_ieq("Content-LengthAZaz09", 20, "cONTENT-lENGTHazAZ09", 20));
    CHECK(!gl_http_ieq("X-Request-Id", 12, "X-Request-Ix", 12)); /* in the tail */
    CHECK(!gl_http_ieq("X-Request-Id", 12, "Y-Request-Id", 12)); /* in the first 8 */
    /* only letters fold: each pair differs in bit 5 alone, and none is a letter pair */
    CHECK(!gl_http_ieq("@[\\]^_", 6, "`{|}~\x7f", 6) && !gl_http_ieq("a-b", 3, "a\rb", 3));
    CHECK(!gl_http_ieq("\xc1", 1, "\xe1", 1) && gl_http_ieq("\xc1\x80", 2, "\xc1\x80", 2));
    for (int c = 0; c < 256; c++) { /* every byte: its ASCII fold matches, bit 5 only for letters */
        int folded = c >= 'A' && c <= 'Z' ? c + 32 : c;
        int letter = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
        char x = (char)c, y = (char)folded, z = (char)(c ^ 0x20);
        CHECK(gl_http_ieq(&x, 1, &y, 1) && gl_http_ieq(&y, 1, &x, 1));
        CHECK(gl_http_ieq(&x, 1, &z, 1) == letter);
    }
    CHECK(gl_http_is_token("X-Request_Id.~!#$%&'*+^`|", 25));
    CHECK(!gl_http_is_token("Bad Name", 8) && !gl_http_is_token("a:b", 3));
    CHECK(!gl_http_is_token("", 0) && !gl_http_is_token("a\0b", 3) && !gl_http_is_token("\x80", 1));
}

static void test_responses(void)
{
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    EQ(RES(s), strlen(s) - 3);
    EQ(res.status, 200);
    STR(res.reason, "OK");
    EQ(res.minor, 1);
    EQ(res.content_length, 3);
    CHECK(res.keep_alive);
    EQ(gl_http_response_body(&res, false), GL_HTTP_BODY_LENGTH);
    EQ(gl_http_response_body(&res, true), GL_HTTP_BODY_NONE);

    s = "HTTP/1.1 404 Not  Found \r\nTransfer-Encoding: chunked\r\n\r\n";
    EQ(RES(s), strlen(s));
    STR(res.reason, "Not  Found ");
    CHECK(res.chunked);
    EQ(gl_http_response_body(&res, false), GL_HTTP_BODY_CHUNKED);

    s = "HTTP/1.1 204 No Content\r\n\r\n";
    EQ(RES(s), strlen(s));
    EQ(gl_http_response_body(&res, false), GL_HTTP_BODY_NONE);
    s = "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n";
    EQ(RES(s), strlen(s));
    EQ(gl_http_response_body(&res, false), GL_HTTP_BODY_NONE);
    s = "HTTP/1.0 200 OK\r\n\r\nbody until close";
    EQ(RES(s), 19);
    CHECK(!res.keep_alive);
    EQ(gl_http_response_body(&res, false), GL_HTTP_BODY_CLOSE);
    s = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
    EQ(RES(s), strlen(s));
    CHECK(res.keep_alive);
    s = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
    EQ(RES(s), strlen(s));
    CHECK(!res.keep_alive);
    s = "HTTP/1.1 200\r\n\r\n";
    EQ(RES(s), strlen(s));
    EQ(res.status, 200);
    STR(res.reason, "");
    s = "HTTP/1.1 200 \r\n\r\n";
    EQ(RES(s), strlen(s));
    STR(res.reason, "");
    s = "HTTP/1.1 999 Custom\r\n\r\n";
    EQ(RES(s), strlen(s));
    EQ(res.status, 999);

    /* 100 Continue, then the real response, in one buffer */
    s = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    int n = gl_http_parse_response(s, strlen(s), &res, NULL);
    EQ(n, 25);
    EQ(res.status, 100);
    EQ(gl_http_response_body(&res, false), GL_HTTP_BODY_NONE);
    EQ(gl_http_parse_response(s + n, strlen(s) - (size_t)n, &res, NULL), strlen(s) - (size_t)n);
    EQ(res.status, 201);
    s = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    EQ(RES(s), strlen(s));
    CHECK(res.upgrade);
    EQ(gl_http_response_body(&res, false), GL_HTTP_BODY_NONE);

    EQ(RES("HTTP/1.1 099 Low\r\n\r\n"), -400);
    EQ(RES("HTTP/1.1 20 OK\r\n\r\n"), -400);
    EQ(RES("HTTP/1.1 2000 OK\r\n\r\n"), -400);
    EQ(RES("HTTP/1.1  200 OK\r\n\r\n"), -400);
    EQ(RES("HTTP/2 200 OK\r\n\r\n"), -400);
    EQ(RES("HTTP/2.0 200 OK\r\n\r\n"), -505);
    EQ(RES("HTTP/1.1 200 OK\n\r\n"), -400);
    EQ(RES("HTTP/1.1 200 OK\r\nX: 1\n\r\n"), -400);
    EQ(RES("HTTP/1.1 200 O\x01K\r\n\r\n"), -400);
    EQ(RES("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), -400);
    EQ(RES("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"), -400);
    EQ(RES("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), -400);
    EQ(RES("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), -501);
    EQ(RES("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), -400);
    EQ(RES("HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n"), -400);
    EQ(RES("\r\nHTTP/1.1 200 OK\r\n\r\n"), -400);
    EQ(RES("ICY 200 OK\r\n\r\n"), -400);
    EQ(RES("HTTP/1.1 200 OK\r\n"), 0);
    gl_http_limits lim = {.max_head = 10};
    EQ(gl_http_parse_response("HTTP/1.1 200 OK\r\n\r\n", 19, &res, &lim), -431);
}

/* Decodes all of in, fed in pieces of at most `step` bytes; collects the body into out. */
static int chunked_run(const char *in, size_t len, size_t step, size_t max_trailer, char *out,
                       size_t *out_len, size_t *used)
{
    gl_http_chunked st;
    gl_http_chunked_init(&st, max_trailer);
    size_t off = 0, avail = 0;
    *out_len = 0;
    *used = 0;
    for (;;) {
        avail = avail + step > len ? len : avail + step; /* bytes "received" so far */
        for (;;) {
            size_t consumed;
            const char *data;
            size_t dlen;
            char *piece = dup_n(in + off, avail - off); /* exact size: ASan sees over-reads */
            int r = gl_http_chunked_decode(&st, piece, avail - off, &consumed, &data, &dlen);
            if (consumed > avail - off ||
                (r == GL_HTTP_CHUNK_DATA && (data < piece || data + dlen > piece + consumed))) {
                free(piece);
                return -1000;
            }
            if (r == GL_HTTP_CHUNK_DATA) {
                memcpy(out + *out_len, data, dlen);
                *out_len += dlen;
            }
            free(piece);
            off += consumed;
            if (r < 0 || r == GL_HTTP_CHUNK_DONE) {
                *used = off;
                return r;
            }
            if (r == GL_HTTP_CHUNK_MORE || off == avail)
                break;
        }
        if (avail == len) {
            *used = off;
            return GL_HTTP_CHUNK_MORE;
        }
    }
}

/* Checks that in decodes to the body want with result want_r, in one piece and byte by byte. */
static void chunked_case(const char *in, size_t len, int want_r, const char *want, size_t max_tr,
                         int line)
{
    static char out[70000];
    size_t steps[] = {len ? len : 1, 1, 2, 7};
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        size_t out_len, used;
        int r = chunked_run(in, len, steps[i], max_tr, out, &out_len, &used);
        check_int(r, want_r, line, "chunked result");
        if (want && want_r >= 0)
            check(out_len == strlen(want) && memcmp(out, want, out_len) == 0, line, "chunked body");
        if (want_r == GL_HTTP_CHUNK_DONE) /* stops right after the final CRLF */
            check(len - used == strlen("NEXT") && memcmp(in + used, "NEXT", 4) == 0, line,
                  "chunked consumed");
    }
}

#define CHUNKED(in, r, body) chunked_case((in), strlen(in), (r), (body), 0, __LINE__)

static void test_chunked(void)
{
    CHUNKED("5\r\nhello\r\n0\r\n\r\nNEXT", GL_HTTP_CHUNK_DONE, "hello");
    CHUNKED("5;foo=bar\r\nhello\r\n6 ; x=\"a b\"\r\n world\r\n0;last\r\n\r\nNEXT",
            GL_HTTP_CHUNK_DONE, "hello world");
    CHUNKED("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\nNEXT", GL_HTTP_CHUNK_DONE,
            "0123456789abcdefghij");
    CHUNKED("0\r\nX-Sum: abc\r\nY:\r\n\r\nNEXT", GL_HTTP_CHUNK_DONE, "");
    CHUNKED("000000000000000000000003\r\nabc\r\n000\r\n\r\nNEXT", GL_HTTP_CHUNK_DONE, "abc");
    CHUNKED("3\r\na\r\n\r\n0\r\n\r\nNEXT", GL_HTTP_CHUNK_DONE, "a\r\n"); /* CRLF is data */
    CHUNKED("5\r\nhel", GL_HTTP_CHUNK_MORE, "hel");
    CHUNKED("5\r\nhello\r\n0\r\n", GL_HTTP_CHUNK_MORE, "hello");
    CHUNKED("", GL_HTTP_CHUNK_MORE, "");

    CHUNKED("x\r\n", -400, NULL);
    CHUNKED("\r\n", -400, NULL);
    CHUNKED(" 5\r\nhello\r\n0\r\n\r\n", -400, NULL);
    CHUNKED("5 \r\nhello\r\n0\r\n\r\n", -400, NULL);
    CHUNKED("+5\r\nhello\r\n0\r\n\r\n", -400, NULL);
    CHUNKED("-5\r\nhello\r\n0\r\n\r\n", -400, NULL);
    CHUNKED("0x5\r\nhello\r\n0\r\n\r\n", -400, NULL);
    CHUNKED("5\nhello\r\n0\r\n\r\n", -400, NULL);
    CHUNKED("5\rhello\r\n0\r\n\r\n", -400, NULL);
    CHUNKED("5\r\nhelloX\r\n0\r\n\r\n", -400, NULL);
    CHUNKED("5\r\nhello\n0\r\n\r\n", -400, NULL);
    CHUNKED("5\r\nhello\r0\r\n\r\n", -400, NULL);
    CHUNKED("5;a\x01\r\nhello\r\n0\r\n\r\n", -400, NULL);
    CHUNKED("5;a\nb\r\nhello\r\n0\r\n\r\n", -400, NULL);
    CHUNKED("0\r\n\n", -400, NULL);
    CHUNKED("0\r\nX: y\n\r\n", -400, NULL);
    CHUNKED("0\r\nX: y\r\n z\r\n\r\n", -400, NULL);
    CHUNKED("0\r\nX y\r\n\r\n", -400, NULL);
    CHUNKED("0\r\n: y\r\n\r\n", -400, NULL);
    CHUNKED("0\r\nX: a\x7f\r\n\r\n", -400, NULL);
    CHUNKED("0\r\n\rX", -400, NULL);
    /* the largest size is 15 hex digits; 16 significant digits overflow */
    CHUNKED("fffffffffffffff\r\nabc", GL_HTTP_CHUNK_MORE, "abc");
    CHUNKED("1000000000000000\r\n", -400, NULL);
    CHUNKED("ffffffffffffffffffffffff\r\n", -400, NULL);
    /* bounded chunk-size line and trailers */
    static char big[6000];
    memset(big, 0, sizeof big);
    memcpy(big, "1;", 2);
    memset(big + 2, 'e', 5000);
    memcpy(big + 5002, "\r\na\r\n0\r\n\r\n", 10);
    CHUNKED(big, -400, NULL);
    memset(big + 2, 'e', 4000);
    memcpy(big + 4002, "\r\na\r\n0\r\n\r\nNEXT", 15);
    CHUNKED(big, GL_HTTP_CHUNK_DONE, "a");
    const char *tr = "0\r\nX-Long-Trailer: 0123456789\r\n\r\nNEXT";
    chunked_case(tr, strlen(tr), -431, NULL, 16, __LINE__);
    chunked_case(tr, strlen(tr), GL_HTTP_CHUNK_DONE, "", 32, __LINE__);

    /* zero copy: data points into the input; done and failed states stick */
    gl_http_chunked st;
    const char *in = "3\r\nabc\r\n0\r\n\r\n";
    size_t consumed, dlen;
    const char *data;
    gl_http_chunked_init(&st, 0);
    EQ(gl_http_chunked_decode(&st, in, strlen(in), &consumed, &data, &dlen), GL_HTTP_CHUNK_DATA);
    CHECK(data == in + 3 && dlen == 3 && consumed == 6);
    EQ(gl_http_chunked_decode(&st, in + 6, strlen(in) - 6, &consumed, &data, &dlen),
       GL_HTTP_CHUNK_DONE);
    EQ(consumed, strlen(in) - 6);
    EQ(gl_http_chunked_decode(&st, "5\r\n", 3, &consumed, &data, &dlen), GL_HTTP_CHUNK_DONE);
    EQ(consumed, 0);
    gl_http_chunked_init(&st, 0);
    EQ(gl_http_chunked_decode(&st, "z", 1, &consumed, &data, &dlen), -400);
    EQ(gl_http_chunked_decode(&st, "5\r\n", 3, &consumed, &data, &dlen), -400);
    /* a large chunk arriving in pieces */
    gl_http_chunked_init(&st, 0);
    EQ(gl_http_chunked_decode(&st, "10000\r\n", 7, &consumed, &data, &dlen), GL_HTTP_CHUNK_MORE);
    EQ(consumed, 7);
    EQ(gl_http_chunked_decode(&st, big, 4096, &consumed, &data, &dlen), GL_HTTP_CHUNK_DATA);
    CHECK(data == big && dlen == 4096 && consumed == 4096);
    EQ(st.remaining, 65536 - 4096);
}

/* Every byte at every place of a field name as long as two vector steps: a tchar keeps the name
 * whole, ':' ends it early, anything else is a 400 (the SSE2 scan and the scalar tail agree). */
static void test_name_bytes(void)
{
    static const char tchars[] = "!#$%&'*+-.^_`|~";
    int wrong = 0;
    for (int b = 0; b < 256; b++) {
        int tchar = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
                    (b && strchr(tchars, b));
        for (size_t at = 0; at < 34; at++) {
            char name[35];
            memset(name, 'n', 34);
            name[34] = 0;
            name[at] = (char)b;
            char head[160];
            int n =
                snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: a\r\n%.34s: v\r\n\r\n", name);
            memcpy(head + 25, name, 34); /* the byte may be NUL */
            int r = gl_http_parse_request(head, (size_t)n, &req, NULL);
            int ok;
            if (tchar)
                ok = r == n && req.nheaders == 2 && req.headers[1].name.len == 34 &&
                     req.headers[1].value.len == 1;
            else if (b == ':' && at > 0)
                ok = r == n && req.nheaders == 2 && req.headers[1].name.len == at;
            else
                ok = r == -400;
            if (!ok && wrong++ < 5)
                printf("FAIL: byte 0x%02x at %zu of a name gave %d\n", b, at, r);
        }
    }
    EQ(wrong, 0);
}

int main(void)
{
    test_good_requests();
    test_pipelined();
    test_rejections();
    test_limits();
    test_hostile();
    test_name_bytes();
    test_lookup();
    test_responses();
    test_chunked();
    printf("http_parser: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
