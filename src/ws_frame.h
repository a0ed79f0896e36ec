/* RFC 6455 framing: frame heads parsed and written, payload masking, incremental UTF-8
 * validation and the frame-level protocol checks. Pure: no Lua, no libevent, no I/O. */
#ifndef GL_WS_FRAME_H
#define GL_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
    GL_WS_CONT = 0x0,
    GL_WS_TEXT = 0x1,
    GL_WS_BINARY = 0x2,
    GL_WS_CLOSE = 0x8,
    GL_WS_PING = 0x9,
    GL_WS_PONG = 0xA
};

#define GL_WS_RSV1 0x4 /* permessage-deflate's "compressed" bit, as (byte0 >> 4) & 7 */
#define GL_WS_MAX_HEAD 14

typedef struct gl_ws_head {
    unsigned fin;    /* 1 on the last frame of a message */
    unsigned rsv;    /* RSV1..3 as a 3-bit number (RSV1 = 4) */
    unsigned opcode; /* GL_WS_* */
    unsigned masked;
    unsigned char key[4]; /* the masking key when masked */
    uint64_t len;         /* payload length */
    size_t size;          /* bytes of the head itself (2..14) */
} gl_ws_head;

/* Parses a frame head from p[0..n): returns its size (> 0) and fills h, 0 when more bytes
 * are needed, or -1 when the 64-bit length has its top bit set (close 1002). */
int gl_ws_parse_head(const unsigned char *p, size_t n, gl_ws_head *h);

/* The RFC's frame rules for one received frame: 0 when it is acceptable, else the close
 * code (1002). `need_mask`: a server requires masked frames, a client unmasked ones;
 * `rsv_ok`: the RSV bits an extension negotiated; `in_message`: a fragmented data
 * message is open, so only continuations (and control frames) may come. On failure *why
 * names the broken rule. */
int gl_ws_check_head(const gl_ws_head *h, int need_mask, unsigned rsv_ok, int in_message,
                     const char **why);

/* Writes a frame head into out (GL_WS_MAX_HEAD bytes); key is NULL for an unmasked
 * frame. Returns the head's size. */
size_t gl_ws_write_head(unsigned char *out, int fin, unsigned rsv, unsigned opcode, uint64_t len,
                        const unsigned char *key);

/* XORs p[0..n) in place with key, starting at byte `offset` of the payload. */
void gl_ws_mask(unsigned char *p, size_t n, const unsigned char key[4], size_t offset);

/* Incremental UTF-8 validation: feed chunks with the state the last call returned (start
 * with GL_WS_UTF8_OK). Returns GL_WS_UTF8_OK at a character boundary, GL_WS_UTF8_BAD once the
 * input cannot be UTF-8 (sticky), or another value in the middle of a character. Overlong
 * forms, surrogates and code points above U+10FFFF are rejected. */
#define GL_WS_UTF8_OK 0u
#define GL_WS_UTF8_BAD 1u
unsigned gl_ws_utf8(unsigned state, const unsigned char *p, size_t n);

/* Whether a close code received from a peer is one the RFC allows on the wire. */
int gl_ws_close_code_ok(unsigned code);

#endif
