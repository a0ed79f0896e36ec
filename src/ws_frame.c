/* RFC 6455 framing, masking and UTF-8 checks on plain byte buffers. The policy of a
 * connection (messages, control frames, the close handshake) is lua/gl/websocket.lua; the
 * socket side is ws.c. */
#include "ws_frame.h"

#include <string.h>

int gl_ws_parse_head(const unsigned char *p, size_t n, gl_ws_head *h)
{
    if (n < 2)
        return 0;
    h->fin = p[0] >> 7;
    h->rsv = (p[0] >> 4) & 7;
    h->opcode = p[0] & 0x0f;
    h->masked = p[1] >> 7;
    uint64_t len = p[1] & 0x7f;
    size_t size = 2;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = ((uint64_t)p[2] << 8) | p[3];
        size = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        if (p[2] & 0x80)
            return -1;
        len = 0;
        for (int i = 2; i < 10; i++)
            len = (len << 8) | p[i];
        size = 10;
    }
    if (h->masked) {
        if (n < size + 4)
            return 0;
        memcpy(h->key, p + size, 4);
        size += 4;
    }
    h->len = len;
    h->size = size;
    return (int)size;
}

static int broken(const char **why, const char *rule)
{
    *why = rule;
    return 1002;
}

int gl_ws_check_head(const gl_ws_head *h, int need_mask, unsigned rsv_ok, int in_message,
                     const char **why)
{
    if ((int)h->masked != (need_mask != 0))
        return broken(why,
                      need_mask ? "unmasked frame from a client" : "masked frame from a server");
    unsigned op = h->opcode;
    if (op >= 8) { /* control: short, never fragmented, no extension bits */
        if (op != GL_WS_CLOSE && op != GL_WS_PING && op != GL_WS_PONG)
            return broken(why, "unknown opcode");
        if (!h->fin)
            return broken(why, "fragmented control frame");
        if (h->len > 125)
            return broken(why, "control frame over 125 bytes");
        if (h->rsv)
            return broken(why, "reserved bits set");
        return 0;
    }
    if (op != GL_WS_CONT && op != GL_WS_TEXT && op != GL_WS_BINARY)
        return broken(why, "unknown opcode");
    if (op == GL_WS_CONT && !in_message)
        return broken(why, "continuation frame outside a message");
    if (op != GL_WS_CONT && in_message)
        return broken(why, "new message inside a fragmented one");
    /* an extension's bit belongs on a message's first frame only */
    if (h->rsv & ~rsv_ok || (op == GL_WS_CONT && h->rsv))
        return broken(why, "reserved bits set");
    return 0;
}

size_t gl_ws_write_head(unsigned char *out, int fin, unsigned rsv, unsigned opcode, uint64_t len,
                        const unsigned char *key)
{
    out[0] = (unsigned char)((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f));
    unsigned char m = key ? 0x80 : 0;
    size_t size;
    if (len < 126) {
        out[1] = (unsigned char)(m | len);
        size = 2;
    } else if (len <= 0xffff) {
        out[1] = m | 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        size = 4;
    } else {
        out[1] = m | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
        size = 10;
    }
    if (key) {
        memcpy(out + size, key, 4);
        size += 4;
    }
    return size;
}

void gl_ws_mask(unsigned char *p, size_t n, const unsigned char key[4], size_t offset)
{
    unsigned char k[8];
    for (int i = 0; i < 8; i++)
        k[i] = key[(offset + (size_t)i) & 3];
    size_t i = 0;
    if (n >= 8) { /* eight bytes at a time; memcpy keeps it alignment-safe */
        uint64_t k64;
        memcpy(&k64, k, 8);
        for (; i + 8 <= n; i += 8) {
            uint64_t v;
            memcpy(&v, p + i, 8);
            v ^= k64;
            memcpy(p + i, &v, 8);
        }
    }
    for (; i < n; i++)
        p[i] ^= k[i & 7];
}

/* A state in the middle of a character: (bytes still needed << 16) | (lo << 8) | hi, the
 * range the next byte must fall in. Never 0 or 1, since need >= 1. */
#define MID(need, lo, hi) (((unsigned)(need) << 16) | ((unsigned)(lo) << 8) | (unsigned)(hi))

unsigned gl_ws_utf8(unsigned state, const unsigned char *p, size_t n)
{
    size_t i = 0;
    if (state == GL_WS_UTF8_BAD)
        return state;
    while (i < n) {
        if (state == GL_WS_UTF8_OK) {
            while (i + 8 <= n) { /* ASCII runs, eight bytes at a time */
                uint64_t v;
                memcpy(&v, p + i, 8);
                if (v & 0x8080808080808080ull)
                    break;
                i += 8;
            }
            if (i == n)
                break;
            unsigned char c = p[i++];
            if (c < 0x80)
                continue;
            if (c >= 0xc2 && c <= 0xdf)
                state = MID(1, 0x80, 0xbf);
            else if (c == 0xe0)
                state = MID(2, 0xa0, 0xbf);
            else if (c == 0xed)
                state = MID(2, 0x80, 0x9f); /* no UTF-16 surrogates */
            else if (c >= 0xe1 && c <= 0xef)
                state = MID(2, 0x80, 0xbf);
            else if (c == 0xf0)
                state = MID(3, 0x90, 0xbf);
            else if (c >= 0xf1 && c <= 0xf3)
                state = MID(3, 0x80, 0xbf);
            else if (c == 0xf4)
                state = MID(3, 0x80, 0x8f); /* nothing above U+10FFFF */
            else
                return GL_WS_UTF8_BAD;
        } else {
            unsigned char c = p[i++];
            unsigned need = state >> 16, lo = (state >> 8) & 0xff, hi = state & 0xff;
            if (c < lo || c > hi)
                return GL_WS_UTF8_BAD;
            state = need == 1 ? GL_WS_UTF8_OK : MID(need - 1, 0x80, 0xbf);
        }
    }
    return state;
}

int gl_ws_close_code_ok(unsigned code)
{
    if (code >= 3000 && code <= 4999)
        return 1;
    switch (code) {
    case 1000:
    case 1001:
    case 1002:
    case 1003:
    case 1007:
    case 1008:
    case 1009:
    case 1010:
    case 1011:
    case 1012:
    case 1013:
    case 1014:
        return 1;
    default:
        return 0;
    }
}
