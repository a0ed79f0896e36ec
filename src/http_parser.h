/* Pure HTTP/1.x parsing: request and response heads into slices of the caller's buffer, and an
 * incremental chunked-body decoder. No allocation, no Lua, no libevent, no I/O. */
#ifndef GL_HTTP_PARSER_H
#define GL_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Results of the parse functions: bytes of the complete head (> 0), need more (0), or the
 * negated HTTP status the peer deserves. */
#define GL_HTTP_MORE 0
#define GL_HTTP_BAD_REQUEST (-400)
#define GL_HTTP_URI_TOO_LONG (-414)
#define GL_HTTP_HEADERS_TOO_LARGE (-431)
#define GL_HTTP_NOT_IMPLEMENTED (-501) /* a transfer-coding other than "chunked" */
#define GL_HTTP_VERSION_NOT_SUPPORTED (-505)

#define GL_HTTP_MAX_HEADERS 100 /* capacity of the headers arrays */
#define GL_HTTP_DEFAULT_MAX_TARGET 8192
#define GL_HTTP_DEFAULT_MAX_HEAD 65536
#define GL_HTTP_DEFAULT_MAX_TRAILER 16384

typedef struct gl_http_slice {
    const char *p; /* points into the parsed buffer; not NUL-terminated */
    size_t len;
} gl_http_slice;

typedef struct gl_http_header {
    gl_http_slice name;  /* a token, as sent (compare with gl_http_name_eq) */
    gl_http_slice value; /* leading and trailing SP/HTAB trimmed; may be empty */
} gl_http_header;

/* Zero fields (or a NULL pointer) mean the defaults above. */
typedef struct gl_http_limits {
    size_t max_target;  /* request-target bytes, beyond -> 414 */
    size_t max_head;    /* whole head incl. start line and blank line, beyond -> 431 */
    size_t max_headers; /* header lines, at most GL_HTTP_MAX_HEADERS, beyond -> 431 */
} gl_http_limits;

typedef struct gl_http_request {
    gl_http_slice method;   /* a token, case-sensitive */
    gl_http_slice target;   /* as sent: origin-form, absolute-form, authority-form or "*" */
    gl_http_slice path;     /* target before the first '?' */
    gl_http_slice query;    /* after the first '?' (len 0 when there is none) */
    int minor;              /* 0 or 1 (HTTP/1.2..1.9 parse as 1) */
    int64_t content_length; /* -1 when absent; no body when absent and not chunked */
    bool chunked;           /* Transfer-Encoding: chunked (then content_length is -1) */
    bool keep_alive;        /* from the version and Connection: close / keep-alive */
    bool expect_continue;   /* HTTP/1.1 and Expect: 100-continue */
    bool upgrade;           /* an Upgrade header and the "upgrade" Connection option */
    size_t nheaders;
    gl_http_header headers[GL_HTTP_MAX_HEADERS];
} gl_http_request;

typedef struct gl_http_response {
    int status;           /* 100..999 */
    gl_http_slice reason; /* may be empty */
    int minor;
    int64_t content_length; /* -1 when absent */
    bool chunked;
    bool keep_alive; /* what the server allows; see gl_http_response_body for close-delimited */
    bool upgrade;
    size_t nheaders;
    gl_http_header headers[GL_HTTP_MAX_HEADERS];
} gl_http_response;

/* How a response body is delimited. */
typedef enum gl_http_body {
    GL_HTTP_BODY_NONE,    /* 1xx, 204, 304, or a response to HEAD */
    GL_HTTP_BODY_LENGTH,  /* content_length bytes */
    GL_HTTP_BODY_CHUNKED, /* feed gl_http_chunked_decode */
    GL_HTTP_BODY_CLOSE,   /* until the server closes; the connection can't be reused */
} gl_http_body;

/* Incremental chunked-body decoder state; set up with gl_http_chunked_init, no cleanup. */
typedef struct gl_http_chunked {
    int state;
    uint64_t remaining; /* chunk size being read, then data bytes left in the chunk */
    size_t line;        /* bytes of the current chunk-size line */
    size_t trailer;     /* bytes of trailer section so far */
    size_t max_trailer;
} gl_http_chunked;

#define GL_HTTP_CHUNK_MORE 0 /* all input consumed, need more */
#define GL_HTTP_CHUNK_DATA 1 /* *data, *data_len is a piece of the body */
#define GL_HTTP_CHUNK_DONE 2 /* last chunk and trailers read; later bytes are the next message */

/* Parses a request head from buf[0..len): returns its byte count (leading empty lines included)
 * when complete, 0 when the bytes so far are a valid prefix, or a negative GL_HTTP_* error;
 * req is filled only on success (its slices then point into buf, which must outlive them).
 * Linear in len; a caller re-parsing from the start after each read should do so only when the
 * new bytes contain '\n' (or len passed the limit), so a trickling client can't make it
 * quadratic. */
int gl_http_parse_request(const char *buf, size_t len, gl_http_request *req,
                          const gl_http_limits *lim);

/* Parses a response head like gl_http_parse_request (max_target is unused); a 1xx other than
 * 101 is complete by itself and the caller parses the next head after it. */
int gl_http_parse_response(const char *buf, size_t len, gl_http_response *res,
                           const gl_http_limits *lim);

/* Says how the body of a parsed response is delimited, given whether the request was HEAD. */
gl_http_body gl_http_response_body(const gl_http_response *res, bool head_request);

/* Compares two byte strings, ignoring ASCII case. */
bool gl_http_ieq(const char *a, size_t alen, const char *b, size_t blen);
/* Whether the bytes are a token (RFC 9110 5.6.2): what a field name must be. */
bool gl_http_is_token(const char *p, size_t len);
/* Compares a header name slice with a NUL-terminated name, ignoring ASCII case. */
bool gl_http_name_eq(gl_http_slice name, const char *want);

/* Returns the first header named name (any case) after `after` (NULL: from the start), or NULL. */
const gl_http_header *gl_http_find_header(const gl_http_header *hdrs, size_t n, const char *name,
                                          const gl_http_header *after);

/* Prepares st to decode one chunked body, allowing max_trailer trailer bytes (0: default). */
void gl_http_chunked_init(gl_http_chunked *st, size_t max_trailer);

/* Decodes from in[0..len): sets *consumed to the bytes used and returns GL_HTTP_CHUNK_DATA with
 * *data pointing into in (no copy), GL_HTTP_CHUNK_MORE, GL_HTTP_CHUNK_DONE, or -400 (-431 for
 * oversized trailers); call again with the unconsumed rest. After an error st stays failed. */
int gl_http_chunked_decode(gl_http_chunked *st, const char *in, size_t len, size_t *consumed,
                           const char **data, size_t *data_len);

#endif
