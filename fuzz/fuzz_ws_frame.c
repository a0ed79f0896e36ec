/* libFuzzer target for src/ws_frame.c: arbitrary bytes as frame heads (a parse agrees with
 * every prefix and re-serialises to the same bytes when minimal) and as UTF-8 (the verdict
 * matches a plain reference decoder and does not depend on where the input is split).
 * Aborts on any violation. */
#include "ws_frame.h"

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

/* reference: decode code points one at a time, the RFC 3629 way */
static int utf8_ref(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = p[i];
        size_t k;
        uint32_t min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, c &= 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, c &= 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, c &= 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (i + k >= n)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return 0;
            c = (c << 6) | (p[i + j] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gl_ws_head h, h2;
    int r = gl_ws_parse_head(data, size, &h);
    ASSERT(r >= -1 && r <= GL_WS_MAX_HEAD);
    for (size_t i = 0; i < size && i < GL_WS_MAX_HEAD; i++) {
        int rp = gl_ws_parse_head(data, i, &h2);
        ASSERT(rp == 0 || rp == r); /* a prefix asks for more or agrees */
    }
    if (r > 0) {
        ASSERT(h.size == (size_t)r && h.opcode < 16 && h.rsv < 8);
        ASSERT(h.len < (1ull << 63));
        const char *why = NULL;
        int code = gl_ws_check_head(&h, data[0] & 1, GL_WS_RSV1, data[0] & 2, &why);
        ASSERT(code == 0 || (code == 1002 && why));
        unsigned char out[GL_WS_MAX_HEAD];
        size_t n =
            gl_ws_write_head(out, (int)h.fin, h.rsv, h.opcode, h.len, h.masked ? h.key : NULL);
        int minimal = (h.size - (h.masked ? 4 : 0)) == (h.len < 126       ? 2u
                                                        : h.len <= 0xffff ? 4u
                                                                          : 10u);
        if (minimal)
            ASSERT(n == h.size && memcmp(out, data, n) == 0);
    }
    int ref = utf8_ref(data, size);
    unsigned whole = gl_ws_utf8(GL_WS_UTF8_OK, data, size);
    ASSERT((whole == GL_WS_UTF8_OK) == ref);
    size_t cut = size ? data[0] % (size + 1) : 0;
    unsigned st = gl_ws_utf8(GL_WS_UTF8_OK, data, cut);
    st = gl_ws_utf8(st, data + cut, size - cut);
    ASSERT(st == whole || (st != GL_WS_UTF8_OK && whole != GL_WS_UTF8_OK));
    if (size >= 4) {
        uint8_t *copy = malloc(size);
        ASSERT(copy);
        memcpy(copy, data, size);
        gl_ws_mask(copy + 4, size - 4, data, 0);
        gl_ws_mask(copy + 4, cut > 4 ? cut - 4 : 0, data, 0);
        gl_ws_mask(copy + 4 + (cut > 4 ? cut - 4 : 0), size - 4 - (cut > 4 ? cut - 4 : 0), data,
                   cut > 4 ? cut - 4 : 0);
        ASSERT(memcmp(copy, data, size) == 0); /* masked whole, unmasked in two parts */
        free(copy);
    }
    return 0;
}
