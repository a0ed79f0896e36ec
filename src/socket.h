/* Green sockets: the gl.socket userdata, its buffered reads and its waits. The byte
 * transport is pluggable (gl_sock_io) so TLS (tls.c) keeps every method of a plain socket. */
#ifndef GL_SOCKET_H
#define GL_SOCKET_H

#include "sched.h"

#include <sys/types.h>

#define GL_SOCK_MT "gl.socket"
#define GL_TLS_MT "gl.tlssocket"

typedef struct gl_sock gl_sock;

/* What a transport call did: >= 0 bytes (0 = EOF for recv), or one of these. */
#define GL_IO_WAIT_READ (-1)  /* try again when the fd is readable */
#define GL_IO_WAIT_WRITE (-2) /* ... writable */
#define GL_IO_ERROR (-3)      /* s->err_no / s->err_msg say what */

typedef struct gl_sock_io {
    ssize_t (*recv)(gl_sock *s, char *buf, size_t len);
    ssize_t (*send)(gl_sock *s, const char *buf, size_t len);
    /* bytes the transport already holds decrypted (TLS), so a read needs no wait */
    size_t (*pending)(gl_sock *s);
    /* frees transport state; the fd is closed by socket.c afterwards */
    void (*close)(gl_sock *s);
} gl_sock_io;

#define GL_SOCK_MAGIC 0x676c736bu /* "glsk": a cheap type check on the hot path */

struct gl_sock {
    unsigned magic;
    int fd;
    int family;              /* AF_INET, AF_INET6, AF_UNIX */
    int type;                /* SOCK_STREAM, SOCK_DGRAM */
    double timeout;          /* per operation, < 0: none */
    struct event *rev, *wev; /* made on first wait, reused after */
    gl_thread *reader, *writer;
    char *rbuf; /* read-ahead for read("l") & co; freed when drained */
    size_t rcap, rpos, rlen;
    const gl_sock_io *io;
    void *tls;            /* transport state (tls.c) */
    const char *err_msg;  /* for GL_IO_ERROR: a message, or NULL to use strerror */
    gl_hub *hub;          /* set once its events exist */
    gl_sock *next, *prev; /* in hub->socks while a persistent event is added */
    int err_no;           /* beside the flags: one idle connection's size counts */
    unsigned char listening, eof, radded, wadded, linked;
    unsigned char rready;   /* 0: the last recv drained the socket; wait for an edge */
    unsigned char rshort;   /* the last recv was short and no edge or send came since */
    unsigned char fin_seen; /* an edge said the peer sent FIN (EV_CLOSED) */
    unsigned char corked;   /* TCP_CORK is on until the hub's pass ends (gl_sock_cork) */
};

/* Returns the socket at idx (plain or TLS); raises if it is not one. */
gl_sock *gl_sock_check(lua_State *L, int idx);
/* Same, and raises "attempt to use a closed socket" when closed. */
gl_sock *gl_sock_check_open(lua_State *L, int idx);
/* [-0, +1] Pushes a new socket owning fd (made non-blocking) with metatable mt. */
gl_sock *gl_sock_push(lua_State *L, int fd, int family, int type, const char *mt);
/* Parks the running thread until s is ready for `want` (GL_IO_WAIT_*) or the socket
 * timeout passes; k then receives one wake value (pass it to gl_sock_resumed). */
int gl_sock_wait(lua_State *L, gl_sock *s, int want, lua_KFunction k, lua_KContext ctx);
/* In a continuation after gl_sock_wait: pops the wake value; returns 1 ready, 0 on
 * timeout (socket timeout), -1 when the socket was closed meanwhile; raises on kill. */
int gl_sock_resumed(lua_State *L, gl_sock *s);
/* [-0, +2 or +3] nil, message[, errno] for s's last error (or errno e when e != 0). */
int gl_sock_fail(lua_State *L, gl_sock *s, int e);
/* Reads more into s's read-ahead buffer (rbuf, made or grown as needed): > 0 bytes, 0 at
 * EOF (s->eof is set), or a GL_IO_* code. */
ssize_t gl_sock_fill(gl_sock *s);
/* Holds a TCP socket's small writes (TCP_CORK) until the hub's current pass over the run
 * queue ends, so that what its threads send in that pass leaves in full segments: for
 * answers to pipelined requests, which would otherwise go out one tiny segment (and one
 * wake-up of the peer) each. No-op for other sockets. */
void gl_sock_cork(lua_State *L, gl_sock *s);
/* Closes s: wakes its waiters with "closed", frees buffers and events, closes the fd. */
void gl_sock_close(lua_State *L, gl_sock *s);
/* Detaches the fd from s without closing it (for wrap_ssl); returns it. */
int gl_sock_detach(lua_State *L, gl_sock *s);

/* recv(n) lands here before it becomes a Lua string: no allocation per message */
#define GL_SOCK_SCRATCH 65536
extern _Thread_local char gl_sock_scratch[GL_SOCK_SCRATCH];

/* Parks the running thread as s's reader (writing = 0) or writer until s is ready for
 * `want`; a reader that must wait for writability (TLS) uses the thread's own event. */
int gl_sock_wait_role(lua_State *L, gl_sock *s, int writing, int want, lua_KFunction k,
                      lua_KContext ctx);
#define WAIT_READER(L, s, want, k, ctx) gl_sock_wait_role(L, s, 0, want, k, ctx)
#define WAIT_WRITER(L, s, want, k, ctx) gl_sock_wait_role(L, s, 1, want, k, ctx)
/* In a continuation: 1 to retry the call; otherwise pushes nil, "closed" / nil,
 * "timeout", errno and returns minus the number of values pushed. */
int gl_sock_after_wait(lua_State *L, gl_sock *s, int status);
/* [-0, +2] nil, "closed"  /  [-0, +3] nil, "timeout", ETIMEDOUT */
int gl_sock_fail_closed(lua_State *L);
int gl_sock_fail_timeout(lua_State *L);

/* sockctl.c: core.socket(family, type) and the methods that make, connect and configure
 * sockets, added to the methods table on top (below it: the metatable). */
int gl_sockctl_new(lua_State *L);
void gl_sockctl_setfuncs(lua_State *L);

/* The plain transport: recv(2)/send(2). */
extern const gl_sock_io gl_plain_io;

/* Registers gl.socket's methods in mt (plain and TLS metatables share them). */
void gl_sock_setup_metatable(lua_State *L, const char *mt);
int gl_open_socket(lua_State *L);

#endif
