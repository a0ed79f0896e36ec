/* gl.tpool's C part: a pool of worker OS threads (pthreads), each with its own Lua state.
 * A job carries a dumped function and its copied arguments; a worker loads and runs it and
 * copies the results back. Completion is signalled on the job's eventfd, which the waiting
 * green thread watches through the hub (lua/gl/tpool.lua). A job is shared by the waiter and
 * the worker and freed by whichever lets go last, so a waiter that is killed or times out
 * leaves the worker to finish and the result is dropped. */
#include "core.h"
#include "http.h"
#include "tpool.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define TPOOL_JOB_MT "gl.tpool.job"
#define COPY_MAX_DEPTH 100

/* ---- copying values between Lua states: a flat byte encoding ---- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static int buf_put(buf *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

/* Encodes the value at idx; on failure returns -1 with a message in err. */
static int encode(lua_State *L, int idx, buf *b, int depth, char *err, size_t errlen)
{
    idx = lua_absindex(L, idx);
    char tag;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        tag = 'n';
        return buf_put(b, &tag, 1);
    case LUA_TBOOLEAN:
        tag = lua_toboolean(L, idx) ? 't' : 'f';
        return buf_put(b, &tag, 1);
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            lua_Integer i = lua_tointeger(L, idx);
            tag = 'i';
            return buf_put(b, &tag, 1) || buf_put(b, &i, sizeof i) ? -1 : 0;
        } else {
            lua_Number d = lua_tonumber(L, idx);
            tag = 'd';
            return buf_put(b, &tag, 1) || buf_put(b, &d, sizeof d) ? -1 : 0;
        }
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        tag = 's';
        return buf_put(b, &tag, 1) || buf_put(b, &n, sizeof n) || buf_put(b, s, n) ? -1 : 0;
    }
    case LUA_TTABLE:
        if (depth >= COPY_MAX_DEPTH) {
            snprintf(err, errlen, "tables nested too deep (a cycle?)");
            return -1;
        }
        if (!lua_checkstack(L, 4)) {
            snprintf(err, errlen, "stack overflow");
            return -1;
        }
        tag = 'T';
        if (buf_put(b, &tag, 1))
            return -1;
        gl_http_headers_fill(L, idx); /* a request's headers, so that lua_next sees them */
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (encode(L, -2, b, depth + 1, err, errlen) ||
                encode(L, -1, b, depth + 1, err, errlen)) {
                lua_pop(L, 2);
                return -1;
            }
            lua_pop(L, 1);
        }
        tag = 'E';
        return buf_put(b, &tag, 1);
    default:
        snprintf(err, errlen, "cannot copy a %s", luaL_typename(L, idx));
        return -1;
    }
}

/* Decodes one value at *pos and pushes it. The encoding was made by encode(), so it is
 * trusted; only the stack is checked. */
static void decode(lua_State *L, const char *p, size_t *pos)
{
    luaL_checkstack(L, 3, "gl.tpool: nesting too deep");
    char tag = p[(*pos)++];
    switch (tag) {
    case 'n':
        lua_pushnil(L);
        break;
    case 't':
    case 'f':
        lua_pushboolean(L, tag == 't');
        break;
    case 'i': {
        lua_Integer i;
        memcpy(&i, p + *pos, sizeof i);
        *pos += sizeof i;
        lua_pushinteger(L, i);
        break;
    }
    case 'd': {
        lua_Number d;
        memcpy(&d, p + *pos, sizeof d);
        *pos += sizeof d;
        lua_pushnumber(L, d);
        break;
    }
    case 's': {
        size_t n;
        memcpy(&n, p + *pos, sizeof n);
        *pos += sizeof n;
        lua_pushlstring(L, p + *pos, n);
        *pos += n;
        break;
    }
    case 'T':
        lua_newtable(L);
        while (p[*pos] != 'E') {
            decode(L, p, pos);
            decode(L, p, pos);
            lua_rawset(L, -3);
        }
        (*pos)++;
        break;
    default:
        lua_pushnil(L);
        break;
    }
}

/* ---- jobs and the pool ---- */

typedef struct job {
    struct job *next; /* in the pool's queue */
    int refs;         /* waiter + worker; under pool.mu */
    int done;         /* results are in `out` */
    int failed;       /* `out` holds the error value, not results */
    int efd;          /* eventfd written once when done */
    char *code;       /* the dumped function */
    size_t code_len;
    buf in;  /* nargs (int) then the encoded arguments */
    buf out; /* nresults (int) then the encoded results / error */
    char *path, *cpath;
} job;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    int size;    /* most threads */
    int threads; /* threads alive */
    int idle;    /* threads waiting for a job */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0, 0};

static void job_free(job *j)
{
    if (j->efd >= 0)
        close(j->efd);
    free(j->code);
    free(j->in.p);
    free(j->out.p);
    free(j->path);
    free(j->cpath);
    free(j);
}

static void job_release(job *j)
{
    pthread_mutex_lock(&pool.mu);
    int left = --j->refs;
    pthread_mutex_unlock(&pool.mu);
    if (left == 0)
        job_free(j);
}

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud)
{
    (void)L;
    return buf_put(ud, p, sz);
}

static void set_path(lua_State *L, const char *field, const char *value)
{
    if (!value)
        return;
    lua_getglobal(L, "package");
    if (lua_istable(L, -1)) {
        lua_pushstring(L, value);
        lua_setfield(L, -2, field);
    }
    lua_pop(L, 1);
}

/* Runs job j in the worker's state W and fills j->out. */
static void job_run(lua_State *W, job *j)
{
    char err[160] = "";
    int base = lua_gettop(W);
    set_path(W, "path", j->path);
    set_path(W, "cpath", j->cpath);
    int st = luaL_loadbufferx(W, j->code, j->code_len, "=gl.tpool", "b");
    if (st == LUA_OK) {
        int nargs;
        size_t pos = sizeof nargs;
        memcpy(&nargs, j->in.p, sizeof nargs);
        if (!lua_checkstack(W, nargs + 8)) {
            lua_settop(W, base);
            lua_pushliteral(W, "gl.tpool.execute: too many arguments");
            st = LUA_ERRRUN;
        } else {
            for (int i = 0; i < nargs; i++)
                decode(W, j->in.p, &pos);
            st = lua_pcall(W, nargs, LUA_MULTRET, 0);
        }
    }
    int n = lua_gettop(W) - base;
    j->failed = st != LUA_OK;
    j->out.len = 0;
    if (buf_put(&j->out, &n, sizeof n) == 0) {
        for (int i = 1; i <= n; i++) {
            if (encode(W, base + i, &j->out, 0, err, sizeof err)) {
                j->out.len = 0;
                j->failed = 1;
                char msg[256];
                snprintf(msg, sizeof msg, "gl.tpool.execute: %s %d: %s",
                         st == LUA_OK ? "cannot copy result" : "cannot copy error", i, err);
                int one = 1;
                size_t ml = strlen(msg);
                char tag = 's';
                buf_put(&j->out, &one, sizeof one);
                buf_put(&j->out, &tag, 1);
                buf_put(&j->out, &ml, sizeof ml);
                buf_put(&j->out, msg, ml);
                break;
            }
        }
    }
    lua_settop(W, base);
    lua_gc(W, LUA_GCSTEP, 0);
}

static void *worker_main(void *arg)
{
    (void)arg;
    lua_State *W = luaL_newstate();
    if (W)
        luaL_openlibs(W);
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (!pool.head && pool.threads <= pool.size) {
            pool.idle++;
            pthread_cond_wait(&pool.cv, &pool.mu);
            pool.idle--;
        }
        if (!pool.head || pool.threads > pool.size) /* the pool shrank */
            break;
        job *j = pool.head;
        pool.head = j->next;
        if (!pool.head)
            pool.tail = NULL;
        int abandoned = j->refs == 1;
        pthread_mutex_unlock(&pool.mu);
        if (!abandoned && W)
            job_run(W, j);
        else if (!W)
            j->failed = 1, j->out.len = 0;
        pthread_mutex_lock(&pool.mu);
        j->done = 1;
        int left = --j->refs;
        if (left > 0) {
            uint64_t one = 1;
            ssize_t r = write(j->efd, &one, sizeof one);
            (void)r;
        }
        pthread_mutex_unlock(&pool.mu);
        if (left == 0)
            job_free(j);
        pthread_mutex_lock(&pool.mu);
    }
    pool.threads--;
    pthread_mutex_unlock(&pool.mu);
    if (W)
        lua_close(W);
    return NULL;
}

static void pool_init_size(void)
{
    if (pool.size == 0) {
        const char *e = getenv("GL_THREADPOOL_SIZE");
        int n = e ? atoi(e) : 0;
        pool.size = n > 0 ? n : 20;
    }
}

/* Queues j (its refs already 2); starts a thread when none is idle. Under no lock. */
static int pool_submit(job *j)
{
    pthread_mutex_lock(&pool.mu);
    pool_init_size();
    j->next = NULL;
    if (pool.tail)
        pool.tail->next = j;
    else
        pool.head = j;
    pool.tail = j;
    int queued = 0;
    for (job *q = pool.head; q; q = q->next)
        queued++;
    int rc = 0;
    if (pool.idle < queued && pool.threads < pool.size) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &attr, worker_main, NULL) == 0)
            pool.threads++;
        else if (pool.threads == 0)
            rc = -1;
        pthread_attr_destroy(&attr);
    }
    if (rc == 0)
        pthread_cond_signal(&pool.cv);
    else { /* no thread can run it: take it back */
        pool.head = pool.tail = NULL;
    }
    pthread_mutex_unlock(&pool.mu);
    return rc;
}

/* ---- the Lua face (gl.core.tpool_*) ---- */

typedef struct jobref {
    job *j;
} jobref;

static job *check_job(lua_State *L)
{
    jobref *r = luaL_checkudata(L, 1, TPOOL_JOB_MT);
    if (!r->j)
        luaL_error(L, "gl.tpool: job already collected");
    return r->j;
}

static char *dup_field(lua_State *L, const char *field)
{
    char *out = NULL;
    lua_getglobal(L, "package");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, field);
        const char *s = lua_tostring(L, -1);
        if (s)
            out = strdup(s);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return out;
}

/* core.tpool_submit(fn, ...) -> job */
/* raises a message without a position: tpool.lua adds the caller's */
static int raw_error(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return lua_error(L);
}

static int l_submit(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (lua_iscfunction(L, 1))
        return luaL_argerror(L, 1, "a Lua function expected (a C function cannot be dumped)");
    const char *up;
    for (int i = 1; (up = lua_getupvalue(L, 1, i)) != NULL; i++) {
        lua_pop(L, 1);
        if (strcmp(up, "_ENV") != 0)
            return raw_error(L,
                             "gl.tpool.execute: the function has an upvalue '%s' (only globals "
                             "and its arguments reach the worker thread)",
                             *up ? up : "?");
    }
    int nargs = lua_gettop(L) - 1;
    jobref *r = lua_newuserdatauv(L, sizeof *r, 0);
    r->j = NULL;
    luaL_setmetatable(L, TPOOL_JOB_MT);
    job *j = calloc(1, sizeof *j);
    if (!j)
        return raw_error(L, "gl.tpool.execute: out of memory");
    j->efd = -1;
    r->j = j; /* from here __gc frees it */
    j->refs = 1;
    buf code = {0};
    lua_pushvalue(L, 1);
    int dst = lua_dump(L, dump_writer, &code, 0);
    lua_pop(L, 1);
    j->code = code.p;
    j->code_len = code.len;
    if (dst != 0 || !code.p)
        return raw_error(L, "gl.tpool.execute: cannot dump the function");
    char err[160];
    if (buf_put(&j->in, &nargs, sizeof nargs))
        return raw_error(L, "gl.tpool.execute: out of memory");
    for (int i = 0; i < nargs; i++)
        if (encode(L, 2 + i, &j->in, 0, err, sizeof err))
            return raw_error(L, "gl.tpool.execute: argument %d: %s", i + 1, err);
    j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (j->efd < 0)
        return raw_error(L, "gl.tpool.execute: eventfd: %s", strerror(errno));
    j->path = dup_field(L, "path");
    j->cpath = dup_field(L, "cpath");
    j->refs = 2;
    if (pool_submit(j)) {
        j->refs = 1;
        return raw_error(L, "gl.tpool.execute: cannot start a worker thread");
    }
    return 1;
}

/* job:fd() -> the eventfd to wait on */
static int l_job_fd(lua_State *L)
{
    lua_pushinteger(L, check_job(L)->efd);
    return 1;
}

/* job:done() -> bool */
static int l_job_done(lua_State *L)
{
    job *j = check_job(L);
    pthread_mutex_lock(&pool.mu);
    int done = j->done;
    pthread_mutex_unlock(&pool.mu);
    lua_pushboolean(L, done);
    return 1;
}

/* job:results() -> true, results... | false, err (only once done) */
static int l_job_results(lua_State *L)
{
    job *j = check_job(L);
    pthread_mutex_lock(&pool.mu);
    int done = j->done;
    pthread_mutex_unlock(&pool.mu);
    if (!done)
        return luaL_error(L, "gl.tpool: job not finished");
    if (j->out.len < sizeof(int)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "gl.tpool.execute: the worker thread could not run the function");
        return 2;
    }
    int n;
    memcpy(&n, j->out.p, sizeof n);
    luaL_checkstack(L, n + 2, "gl.tpool.execute: too many results");
    lua_pushboolean(L, !j->failed);
    size_t pos = sizeof n;
    for (int i = 0; i < n; i++)
        decode(L, j->out.p, &pos);
    return n + 1;
}

static int l_job_gc(lua_State *L)
{
    jobref *r = luaL_checkudata(L, 1, TPOOL_JOB_MT);
    if (r->j) {
        job_release(r->j);
        r->j = NULL;
    }
    return 0;
}

/* core.tpool_setsize(n) / core.tpool_size() -> size, threads alive, jobs running or queued */
static int l_setsize(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 1 && n <= 10000, 1, "size must be 1..10000");
    pthread_mutex_lock(&pool.mu);
    pool.size = (int)n;
    pthread_cond_broadcast(&pool.cv); /* surplus idle threads exit */
    pthread_mutex_unlock(&pool.mu);
    return 0;
}

static int l_size(lua_State *L)
{
    pthread_mutex_lock(&pool.mu);
    pool_init_size();
    int size = pool.size, threads = pool.threads, busy = pool.threads - pool.idle;
    for (job *q = pool.head; q; q = q->next)
        busy++;
    pthread_mutex_unlock(&pool.mu);
    lua_pushinteger(L, size);
    lua_pushinteger(L, threads);
    lua_pushinteger(L, busy);
    return 3;
}

void gl_open_tpool(lua_State *L)
{
    static const luaL_Reg job_methods[] = {
        {"fd", l_job_fd}, {"done", l_job_done}, {"results", l_job_results}, {NULL, NULL}};
    if (luaL_newmetatable(L, TPOOL_JOB_MT)) {
        luaL_newlib(L, job_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_job_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_job_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    static const luaL_Reg funcs[] = {{"tpool_submit", l_submit},
                                     {"tpool_setsize", l_setsize},
                                     {"tpool_size", l_size},
                                     {NULL, NULL}};
    luaL_setfuncs(L, funcs, 0);
}
