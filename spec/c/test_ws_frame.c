/* src/ws_frame.c alone: frame heads (every length form, byte-by-byte feeding, the 2^63
 * length), the RFC's frame rules, masking, and UTF-8 validation split at every byte. */
#include "ws_frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static void head_roundtrip(uint64_t len, int masked)
{
    unsigned char buf[GL_WS_MAX_HEAD], key[4] = {1, 2, 3, 4};
    size_t n = gl_ws_write_head(buf, 1, 0, GL_WS_BINARY, len, masked ? key : NULL);
    gl_ws_head h;
    for (size_t i = 0; i < n; i++) /* every prefix asks for more */
        CHECK(gl_ws_parse_head(buf, i, &h) == 0);
    CHECK(gl_ws_parse_head(buf, n, &h) == (int)n);
    CHECK(h.len == len && h.fin == 1 && h.opcode == GL_WS_BINARY && h.masked == (unsigned)masked);
    CHECK(h.size == n);
    if (masked)
        CHECK(memcmp(h.key, key, 4) == 0);
    CHECK(n == (len < 126 ? 2u : len <= 0xffff ? 4u : 10u) + (masked ? 4u : 0u));
}

static unsigned utf8_whole(const char *s, size_t n)
{
    return gl_ws_utf8(GL_WS_UTF8_OK, (const unsigned char *)s, n);
}

/* the same verdict whatever the split */
static void utf8_case(const char *s, size_t n, int valid)
{
    unsigned whole = utf8_whole(s, n);
    CHECK((whole == GL_WS_UTF8_OK) == valid);
    for (size_t cut = 0; cut <= n; cut++) {
        unsigned st = gl_ws_utf8(GL_WS_UTF8_OK, (const unsigned char *)s, cut);
        st = gl_ws_utf8(st, (const unsigned char *)s + cut, n - cut);
        CHECK((st == GL_WS_UTF8_OK) == valid);
    }
}

int main(void)
{
    const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 1u << 31, (1ull << 63) - 1};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        head_roundtrip(lens[i], 0);
        head_roundtrip(lens[i], 1);
    }

    gl_ws_head h;
    const unsigned char huge[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0};
    CHECK(gl_ws_parse_head(huge, sizeof huge, &h) == -1);

    const char *why = NULL;
    unsigned char buf[GL_WS_MAX_HEAD], key[4] = {9, 9, 9, 9};
    gl_ws_write_head(buf, 1, 0, GL_WS_TEXT, 5, NULL);
    gl_ws_parse_head(buf, sizeof buf, &h);
    CHECK(gl_ws_check_head(&h, 1, 0, 0, &why) == 1002); /* a client must mask */
    CHECK(gl_ws_check_head(&h, 0, 0, 0, &why) == 0);    /* a server must not */
    CHECK(gl_ws_check_head(&h, 0, 0, 1, &why) == 1002); /* new message inside one */
    gl_ws_write_head(buf, 1, 0, GL_WS_CONT, 5, key);
    gl_ws_parse_head(buf, sizeof buf, &h);
    CHECK(gl_ws_check_head(&h, 1, 0, 0, &why) == 1002); /* continuation of nothing */
    CHECK(gl_ws_check_head(&h, 1, 0, 1, &why) == 0);
    gl_ws_write_head(buf, 1, 0, GL_WS_PING, 126, key);
    gl_ws_parse_head(buf, sizeof buf, &h);
    CHECK(gl_ws_check_head(&h, 1, 0, 1, &why) == 1002); /* control over 125 */
    gl_ws_write_head(buf, 0, 0, GL_WS_PING, 1, key);
    gl_ws_parse_head(buf, sizeof buf, &h);
    CHECK(gl_ws_check_head(&h, 1, 0, 0, &why) == 1002); /* fragmented control */
    gl_ws_write_head(buf, 1, 0, GL_WS_PING, 125, key);
    gl_ws_parse_head(buf, sizeof buf, &h);
    CHECK(gl_ws_check_head(&h, 1, 0, 1, &why) == 0); /* between fragments is fine */
    for (unsigned op = 0; op < 16; op++) {
        gl_ws_write_head(buf, 1, 0, op, 1, key);
        gl_ws_parse_head(buf, sizeof buf, &h);
        int known = op <= 2 || (op >= 8 && op <= 10);
        int r = gl_ws_check_head(&h, 1, 0, op == 0, &why);
        CHECK((r == 0) == known);
    }
    for (unsigned rsv = 1; rsv < 8; rsv++) {
        gl_ws_write_head(buf, 1, rsv, GL_WS_TEXT, 1, key);
        gl_ws_parse_head(buf, sizeof buf, &h);
        CHECK(gl_ws_check_head(&h, 1, 0, 0, &why) == 1002);
        CHECK((gl_ws_check_head(&h, 1, GL_WS_RSV1, 0, &why) == 0) == (rsv == GL_WS_RSV1));
    }
    gl_ws_write_head(buf, 1, GL_WS_RSV1, GL_WS_CONT, 1, key);
    gl_ws_parse_head(buf, sizeof buf, &h);
    CHECK(gl_ws_check_head(&h, 1, GL_WS_RSV1, 1, &why) == 1002); /* RSV1 on a continuation */

    /* masking: the RFC's example, any offset, twice is identity */
    unsigned char hello[] = "Hello";
    const unsigned char k[4] = {0x37, 0xfa, 0x21, 0x3d};
    gl_ws_mask(hello, 5, k, 0);
    CHECK(memcmp(hello, "\x7f\x9f\x4d\x51\x58", 5) == 0);
    unsigned char data[1000], copy[1000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7);
    memcpy(copy, data, sizeof data);
    gl_ws_mask(data, 13, k, 0);
    gl_ws_mask(data + 13, sizeof data - 13, k, 13); /* split masking = whole masking */
    gl_ws_mask(copy, sizeof copy, k, 0);
    CHECK(memcmp(data, copy, sizeof data) == 0);
    gl_ws_mask(copy, sizeof copy, k, 0);
    for (size_t i = 0; i < sizeof copy; i++)
        CHECK(copy[i] == (unsigned char)(i * 7));

    utf8_case("", 0, 1);
    utf8_case("plain ascii text, longer than eight bytes", 41, 1);
    utf8_case("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11, 1); /* κόσμε */
    utf8_case("\xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf", 9, 1);             /* U+1F600, U+10FFFF */
    utf8_case("\xef\xbf\xbf", 3, 1);                                  /* U+FFFF */
    utf8_case("\xc0\xaf", 2, 0);                                      /* overlong / */
    utf8_case("\xe0\x80\xaf", 3, 0);                                  /* overlong */
    utf8_case("\xf0\x80\x80\xaf", 4, 0);                              /* overlong */
    utf8_case("\xed\xa0\x80", 3, 0);                                  /* surrogate */
    utf8_case("\xf4\x90\x80\x80", 4, 0);                              /* above U+10FFFF */
    utf8_case("\xf5\x80\x80\x80", 4, 0);
    utf8_case("\xff", 1, 0);
    utf8_case("\x80", 1, 0);
    utf8_case("abc\xe2\x82", 5, 0);                       /* unfinished */
    CHECK(utf8_whole("abc\xe2\x82", 5) > GL_WS_UTF8_BAD); /* mid-character, not yet bad */
    CHECK(gl_ws_utf8(GL_WS_UTF8_BAD, (const unsigned char *)"a", 1) == GL_WS_UTF8_BAD);

    CHECK(gl_ws_close_code_ok(1000) && gl_ws_close_code_ok(4999) && gl_ws_close_code_ok(3000));
    CHECK(!gl_ws_close_code_ok(1005) && !gl_ws_close_code_ok(1006) && !gl_ws_close_code_ok(999));
    CHECK(!gl_ws_close_code_ok(1015) && !gl_ws_close_code_ok(1004) && !gl_ws_close_code_ok(5000));

    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    else
        printf("ws_frame: all checks passed\n");
    return failures ? 1 : 0;
}
