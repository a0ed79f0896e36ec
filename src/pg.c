/* gl.pg's C part: the gl.pg.conn userdata over a non-blocking libpq PGconn, one step of
 * connecting or of reading a query's results at a time, and result conversion. It never
 * waits itself: lua/gl/pg.lua waits on the socket between steps (and owns cancel policy). */
#include "pg.h"
#include "hub.h"

#include <lauxlib.h>
#include <libpq-fe.h>
#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PG_MT "gl.pg.conn"
#define CANCEL_MT "gl.pg.cancel"

/* type OIDs (server/catalog/pg_type_d.h is not in libpq-dev) */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_OID 26
#define OID_FLOAT4 700
#define OID_FLOAT8 701

static char null_key; /* registry: the gl.pg.null sentinel */

typedef struct notice {
    struct notice *next;
    char msg[];
} notice;

typedef struct pg_conn {
    PGconn *pg;
    gl_hub *hub;
    notice *nhead, *ntail; /* notices libpq reported, until Lua drains them */
    int nnotices;
    int inflight;            /* pipelined queries sent whose sync point is not read yet */
    int nulls;               /* PQgetResult's NULLs in a row while stepping a pipeline */
    int nstmts;              /* statements this connection prepared on the server */
    unsigned stmt_seq;       /* names them: gl_1, gl_2, ... */
    unsigned no_prepare : 1; /* never prepare (a pooler in transaction mode, say) */
    unsigned no_cork : 1;    /* not a TCP socket */
    unsigned char corked;    /* until this hub pass ends (gl_hub_cork) */
    unsigned busy : 1;       /* a simple-protocol query was sent and its results are not all read */
    unsigned copy_out : 1;   /* draining a COPY TO STDOUT nobody asked for */
    unsigned ready : 1;      /* connected and set non-blocking */
} pg_conn;

static pg_conn *conn_check(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, PG_MT);
}

static pg_conn *conn_check_open(lua_State *L, int idx)
{
    pg_conn *c = conn_check(L, idx);
    if (!c->pg)
        luaL_error(L, "gl.pg: attempt to use a closed connection");
    return c;
}

/* [-0, +2] nil and libpq's last message (its trailing newline dropped) */
static int push_pg_error(lua_State *L, const char *msg)
{
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    lua_pushnil(L);
    if (n == 0)
        lua_pushliteral(L, "closed");
    else
        lua_pushlstring(L, msg, n);
    return 2;
}

/* libpq calls this from inside PQconsumeInput/PQgetResult: no Lua here, just keep it (a
 * bounded number: a server flooding notices cannot grow memory without limit). */
static void notice_cb(void *arg, const PGresult *res)
{
    pg_conn *c = arg;
    const char *m = PQresultErrorMessage(res);
    size_t n = strlen(m);
    while (n > 0 && m[n - 1] == '\n')
        n--;
    if (c->nnotices >= 1000)
        return;
    notice *nt = malloc(sizeof *nt + n + 1);
    if (!nt)
        return;
    memcpy(nt->msg, m, n);
    nt->msg[n] = '\0';
    nt->next = NULL;
    if (c->ntail)
        c->ntail->next = nt;
    else
        c->nhead = nt;
    c->ntail = nt;
    c->nnotices++;
}

static void free_notices(pg_conn *c)
{
    while (c->nhead) {
        notice *n = c->nhead;
        c->nhead = n->next;
        free(n);
    }
    c->ntail = NULL;
    c->nnotices = 0;
}

/* close(), __gc and __close: idempotent; PQfinish on a non-blocking connection does not
 * wait (its Terminate message is sent if the socket takes it at once). */
static int conn_close(lua_State *L)
{
    pg_conn *c = conn_check(L, 1);
    if (c->corked)
        gl_hub_uncork(c->hub, PQsocket(c->pg));
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    free_notices(c);
    c->busy = 0;
    c->inflight = 0;
    return 0;
}

/* core.pg_conninfo_parse(conninfo) -> {keyword = value} | nil, err (URI or key=value) */
static int l_conninfo_parse(lua_State *L)
{
    const char *info = luaL_checkstring(L, 1);
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(info, &err);
    if (!opts) {
        lua_pushnil(L);
        lua_pushstring(L, err ? err : "gl.pg: cannot parse conninfo");
        if (err)
            PQfreemem(err);
        return 2;
    }
    lua_newtable(L);
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (o->val) {
            lua_pushstring(L, o->val);
            lua_setfield(L, -2, o->keyword);
        }
    }
    PQconninfoFree(opts);
    return 1;
}

/* core.pg_connect_start(params) -> conn (connecting) | nil, err; params is a table of
 * libpq keywords (as pg_conninfo_parse gives) */
static int l_connect_start(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "gl.pg: connection parameters must be strings");
        n++;
        lua_pop(L, 1);
    }
    const char **kv = lua_newuserdatauv(L, sizeof *kv * 2 * ((size_t)n + 1), 0);
    int i = 0;
    lua_pushnil(L); /* stack: params, kv, key */
    while (lua_next(L, 1)) {
        kv[i] = lua_tostring(L, -2); /* both strings, anchored by params */
        kv[n + 1 + i] = lua_tostring(L, -1);
        lua_pop(L, 1);
        i++;
    }
    kv[n] = NULL;
    kv[2 * n + 1] = NULL;
    pg_conn *c = lua_newuserdatauv(L, sizeof *c, 1);
    memset(c, 0, sizeof *c);
    c->hub = gl_hub_get(L);
    luaL_setmetatable(L, PG_MT);
    lua_newtable(L); /* the statement cache: sql -> name of its prepared statement */
    lua_setiuservalue(L, -2, 1);
    c->pg = PQconnectStartParams(kv, kv + n + 1, 0);
    if (!c->pg)
        return luaL_error(L, "gl.pg: out of memory");
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        push_pg_error(L, PQerrorMessage(c->pg));
        PQfinish(c->pg);
        c->pg = NULL;
        return 2;
    }
    return 1;
}

/* conn:_poll() -> "read" | "write" (wait, then call again) | "ok" | nil, err */
static int conn_poll(lua_State *L)
{
    pg_conn *c = conn_check_open(L, 1);
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        lua_pushliteral(L, "read");
        return 1;
    case PGRES_POLLING_WRITING:
        lua_pushliteral(L, "write");
        return 1;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(c->pg, 1) != 0)
            return push_pg_error(L, PQerrorMessage(c->pg));
        PQsetNoticeReceiver(c->pg, notice_cb, c);
        c->ready = 1;
        lua_pushliteral(L, "ok");
        return 1;
    default:
        return push_pg_error(L, PQerrorMessage(c->pg));
    }
}

/* conn:socket() -> the fd to wait on (it may change while connecting) */
static int conn_socket(lua_State *L)
{
    pg_conn *c = conn_check_open(L, 1);
    lua_pushinteger(L, PQsocket(c->pg));
    return 1;
}

static int has_nul(const char *s, size_t n)
{
    return memchr(s, '\0', n) != NULL;
}

/* Converts the values at first..top into libpq parameters and sends sql with them: as the
 * prepared statement stmt (PQsendQueryPrepared; prepared first when `prepare`), else
 * PQsendQueryParams, or without any parameters through the simple protocol (PQsendQuery).
 * Returns libpq's 0/1; raises, having sent nothing, for values that cannot be sent. Strings go as
 * text (binary when they hold a NUL, so bytea gets every byte and text refuses them), numbers and
 * booleans as their text, nil and gl.pg.null as NULL. */
static int send_with_params(lua_State *L, pg_conn *c, const char *sql, const char *stmt,
                            int prepare, int first)
{
    int n = lua_gettop(L) - first + 1;
    if (n == 0)
        return PQsendQuery(c->pg, sql);
    if (n > 65535)
        return luaL_error(L, "gl.pg: too many parameters");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &null_key);
    int nullidx = lua_gettop(L);
    const char **vals = lua_newuserdatauv(L, (sizeof *vals + 2 * sizeof(int)) * (size_t)n, 0);
    int *lens = (int *)(vals + n), *fmts = lens + n;
    for (int i = 0; i < n; i++) {
        int idx = i + first;
        size_t len = 0;
        fmts[i] = 0;
        switch (lua_type(L, idx)) {
        case LUA_TNIL:
            vals[i] = NULL;
            break;
        case LUA_TBOOLEAN:
            vals[i] = lua_toboolean(L, idx) ? "true" : "false";
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, idx)) {
                vals[i] = lua_tolstring(L, idx, &len); /* converts in place: fine */
            } else {
                lua_Number d = lua_tonumber(L, idx);
                char buf[64];
                if (d != d)
                    snprintf(buf, sizeof buf, "NaN");
                else if (d > DBL_MAX)
                    snprintf(buf, sizeof buf, "Infinity");
                else if (d < -DBL_MAX)
                    snprintf(buf, sizeof buf, "-Infinity");
                else
                    snprintf(buf, sizeof buf, "%.17g", (double)d);
                lua_pushstring(L, buf);
                lua_replace(L, idx);
                vals[i] = lua_tolstring(L, idx, &len);
            }
            break;
        case LUA_TSTRING:
            vals[i] = lua_tolstring(L, idx, &len);
            if (has_nul(vals[i], len))
                fmts[i] = 1;
            break;
        default:
            if (lua_rawequal(L, idx, nullidx)) {
                vals[i] = NULL;
                break;
            }
            return luaL_error(L, "gl.pg: parameter $%d: cannot send a %s", i + 1,
                              luaL_typename(L, idx));
        }
        if (len > (size_t)0x7fffffff)
            return luaL_error(L, "gl.pg: parameter $%d too long", i + 1);
        lens[i] = (int)len;
    }
    if (prepare && !PQsendPrepare(c->pg, stmt, sql, n, NULL))
        return 0;
    if (stmt)
        return PQsendQueryPrepared(c->pg, stmt, n, vals, lens, fmts, 0);
    return PQsendQueryParams(c->pg, sql, n, NULL, vals, lens, fmts, 0);
}

/* [-0, +1] what to wait for next: "rw" while libpq still holds output (PQflush said 1) */
static int push_wait(lua_State *L, int fl)
{
    if (fl == 1)
        lua_pushliteral(L, "rw");
    else
        lua_pushliteral(L, "read");
    return 1;
}

/* [-0, +1] what to wait for after a send: the answer cannot be there yet, so say it without
 * reading the socket; "rw" while libpq still holds output. -1 when the flush failed. */
static int push_after_send(lua_State *L, pg_conn *c)
{
    int fl = PQflush(c->pg);
    if (fl < 0)
        return -1;
    return push_wait(L, fl);
}

/* conn:_send(sql, ...) -> "read" | "rw" (what to wait for) | nil, err: one query on the simple
 * protocol (several statements when there are no parameters), read with _step. Leaves
 * pipeline mode first, which needs every pipelined query read (pg.lua sees to it). */
static int conn_send(lua_State *L)
{
    pg_conn *c = conn_check_open(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    if (!c->ready)
        return luaL_error(L, "gl.pg: connection not established");
    if (c->busy || c->inflight > 0)
        return luaL_error(L, "gl.pg: connection busy (one query at a time per connection)");
    if (PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF && !PQexitPipelineMode(c->pg))
        return push_pg_error(L, PQerrorMessage(c->pg));
    if (!send_with_params(L, c, sql, NULL, 0, 3))
        return push_pg_error(L, PQerrorMessage(c->pg));
    c->busy = 1;
    if (push_after_send(L, c) < 0) {
        c->busy = 0;
        return push_pg_error(L, PQerrorMessage(c->pg));
    }
    return 1;
}

/* Every sync point makes libpq send at once, a send that wakes the backend for each query.
 * Corked, the queries that the green threads of one hub pass send go out together when the
 * pass is over: one segment, one wake-up of the backend (which still answers each query at
 * its own sync point). */
static void cork(pg_conn *c)
{
    if (!c->corked && !c->no_cork && !gl_hub_cork(c->hub, PQsocket(c->pg), &c->corked))
        c->no_cork = 1; /* a Unix socket */
}

/* A connection prepares at most this many statements; later new queries go unprepared. */
#define MAX_STATEMENTS 256

/* conn:_psend(acc, sql, ...) -> "read" | "rw" | nil, err: one query with its parameters in
 * pipeline mode, followed by its own sync point, so that an error in it aborts nothing
 * queued behind it. Results come back in order; _pstep reads them into acc one query at a
 * time. A query is prepared (a named statement, parsed and planned once) the first time its
 * sql is sent on this connection, and executed as that statement from then on: the Parse's
 * result is the first of the query's, which _pstep recognises by acc.prep. */
static int conn_psend(lua_State *L)
{
    pg_conn *c = conn_check_open(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *sql = luaL_checkstring(L, 3);
    if (!c->ready)
        return luaL_error(L, "gl.pg: connection not established");
    if (c->busy)
        return luaL_error(L, "gl.pg: connection busy (one query at a time per connection)");
    if (lua_gettop(L) < 4)
        return luaL_error(L, "gl.pg: a pipelined query needs parameters");
    if (PQpipelineStatus(c->pg) == PQ_PIPELINE_OFF && !PQenterPipelineMode(c->pg))
        return push_pg_error(L, PQerrorMessage(c->pg));
    cork(c);
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, 3);
    const char *stmt = lua_rawget(L, -2) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_rotate(L, 4, 2); /* cache and name below the parameters, which stay at the top */
    int ok;
    if (stmt || c->no_prepare || c->nstmts >= MAX_STATEMENTS) {
        ok = send_with_params(L, c, sql, stmt, 0, 6);
    } else {
        char name[24];
        snprintf(name, sizeof name, "gl_%u", ++c->stmt_seq);
        ok = send_with_params(L, c, sql, name, 1, 6);
        if (ok) {
            c->nstmts++;
            lua_pushstring(L, name);
            lua_setfield(L, 2, "prep");
            lua_pushvalue(L, 3);
            lua_setfield(L, 2, "sql");
        }
    }
    if (!ok || !PQpipelineSync(c->pg))
        return push_pg_error(L, PQerrorMessage(c->pg));
    c->inflight++;
    if (push_after_send(L, c) < 0)
        return push_pg_error(L, PQerrorMessage(c->pg));
    return 1;
}

/* conn:_forget(sql): its statement is no more (DEALLOCATE, or a plan whose result type
 * changed): prepare it again next time. conn:_forget(): all of them are gone (DISCARD). */
static int conn_forget(lua_State *L)
{
    pg_conn *c = conn_check(L, 1);
    if (lua_isnoneornil(L, 2)) {
        lua_newtable(L);
        lua_setiuservalue(L, 1, 1);
        c->nstmts = 0;
        return 0;
    }
    luaL_checkstring(L, 2);
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, 2);
    lua_pushnil(L);
    lua_rawset(L, -3);
    return 0;
}

/* conn:_prepare(on): whether to prepare pipelined queries (on by default) */
static int conn_prepare(lua_State *L)
{
    conn_check(L, 1)->no_prepare = !lua_toboolean(L, 2);
    return 0;
}

/* The first result of a query sent with a Parse (acc.prep, at index 2): on success the
 * statement goes into the cache under acc.sql and the result is dropped (returns 1); a
 * failed Parse is the query's error (returns 0: take_result keeps it). */
static int took_prepare(lua_State *L, pg_conn *c, PGresult *r)
{
    if (lua_getfield(L, 2, "prep") != LUA_TSTRING) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushnil(L);
    lua_setfield(L, 2, "prep"); /* stack: name */
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        lua_pop(L, 1);
        c->nstmts--;
        return 0;
    }
    lua_getiuservalue(L, 1, 1);
    lua_getfield(L, 2, "sql");
    if (lua_type(L, -1) == LUA_TSTRING) {
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TNIL) { /* two first uses at once: the first one wins */
            lua_pop(L, 1);
            lua_pushvalue(L, -3);
            lua_rawset(L, -3);
        } else {
            lua_pop(L, 2);
        }
    } else {
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return 1;
}

/* [-0, +1] one field converted by its type; NULL is gl.pg.null */
static void push_value(lua_State *L, const PGresult *r, int row, int col, Oid type, int nullidx)
{
    if (PQgetisnull(r, row, col)) {
        lua_pushvalue(L, nullidx);
        return;
    }
    const char *v = PQgetvalue(r, row, col);
    size_t len = (size_t)PQgetlength(r, row, col);
    switch (type) {
    case OID_BOOL:
        lua_pushboolean(L, v[0] == 't');
        return;
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        lua_pushinteger(L, (lua_Integer)strtoll(v, NULL, 10));
        return;
    case OID_FLOAT4:
    case OID_FLOAT8:
        lua_pushnumber(L, (lua_Number)strtod(v, NULL)); /* NaN, Infinity too */
        return;
    case OID_BYTEA: {
        size_t n = 0;
        unsigned char *b = PQunescapeBytea((const unsigned char *)v, &n);
        if (!b) {
            lua_pushlstring(L, v, len);
            return;
        }
        lua_pushlstring(L, (const char *)b, n);
        PQfreemem(b);
        return;
    }
    default: /* text, varchar, numeric (exact: a string), json, dates, ... */
        lua_pushlstring(L, v, len);
    }
}

/* [-0, +1] a rows table from a tuples or command result */
static void push_rows(lua_State *L, const PGresult *r, int nullidx)
{
    int nrows = PQntuples(r), ncols = PQnfields(r);
    lua_createtable(L, nrows, 3);
    int rows = lua_gettop(L);
    lua_createtable(L, ncols, 0);
    for (int j = 0; j < ncols; j++) {
        lua_pushstring(L, PQfname(r, j));
        lua_rawseti(L, -2, j + 1);
    }
    lua_setfield(L, rows, "columns");
    const char *cmd = PQcmdStatus((PGresult *)r);
    lua_pushstring(L, cmd);
    lua_setfield(L, rows, "command");
    const char *aff = PQcmdTuples((PGresult *)r);
    if (aff && aff[0]) {
        lua_pushinteger(L, (lua_Integer)strtoll(aff, NULL, 10));
        lua_setfield(L, rows, "affected");
    }
    lua_getfield(L, rows, "columns"); /* stack: rows, columns */
    int cols = lua_gettop(L);
    for (int i = 0; i < nrows; i++) {
        lua_createtable(L, 0, ncols);
        for (int j = 0; j < ncols; j++) {
            lua_rawgeti(L, cols, j + 1);
            push_value(L, r, i, j, PQftype(r, j), nullidx);
            lua_rawset(L, -3);
        }
        lua_rawseti(L, rows, i + 1);
    }
    lua_pop(L, 1);
}

/* One result into acc (the table at index 2): rows appended (acc.n counts them), the
 * first error kept as acc.err / acc.sqlstate. */
static void take_result(lua_State *L, pg_conn *c, PGresult *r, int nullidx)
{
    switch (PQresultStatus(r)) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
    case PGRES_EMPTY_QUERY: {
        lua_getfield(L, 2, "n");
        lua_Integer n = lua_tointeger(L, -1) + 1;
        lua_pop(L, 1);
        push_rows(L, r, nullidx);
        lua_rawseti(L, 2, n);
        lua_pushinteger(L, n);
        lua_setfield(L, 2, "n");
        return;
    }
    case PGRES_COPY_IN:
        PQputCopyEnd(c->pg, "COPY FROM STDIN is not supported by gl.pg");
        return; /* the server answers with an error result */
    case PGRES_COPY_OUT:
        c->copy_out = 1;
        if (lua_getfield(L, 2, "err") == LUA_TNIL) {
            lua_pushliteral(L, "gl.pg: COPY TO STDOUT is not supported");
            lua_setfield(L, 2, "err");
        }
        lua_pop(L, 1);
        return;
    default: {
        if (lua_getfield(L, 2, "err") == LUA_TNIL) {
            const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
            if (!m)
                m = PQresultErrorMessage(r);
            size_t n = strlen(m);
            while (n > 0 && m[n - 1] == '\n')
                n--;
            lua_pushlstring(L, m, n);
            lua_setfield(L, 2, "err");
            const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            if (st) {
                lua_pushstring(L, st);
                lua_setfield(L, 2, "sqlstate");
            }
        }
        lua_pop(L, 1);
    }
    }
}

/* conn:_step(acc) -> "done" | "read" | "rw" (wait for readable, or also writable, and
 * call again) | nil, err when the connection broke. Reads what arrived and converts every
 * complete result into acc; never waits. */
static int conn_step(lua_State *L)
{
    pg_conn *c = conn_check_open(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &null_key);
    int nullidx = 3;
    if (!c->busy) {
        lua_pushliteral(L, "done");
        return 1;
    }
    int fl = PQflush(c->pg);
    if (fl < 0)
        goto broken;
    if (!PQconsumeInput(c->pg))
        goto broken;
    for (;;) {
        if (c->copy_out) {
            char *buf = NULL;
            int n = PQgetCopyData(c->pg, &buf, 1);
            if (buf)
                PQfreemem(buf);
            if (n > 0)
                continue;
            if (n == 0)
                break; /* wait for more */
            if (n == -2)
                goto broken;
            c->copy_out = 0; /* -1: copy done, its final result follows */
        }
        if (PQisBusy(c->pg))
            break;
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            c->busy = 0;
            lua_pushliteral(L, "done");
            return 1;
        }
        take_result(L, c, r, nullidx);
        PQclear(r);
        if (PQstatus(c->pg) == CONNECTION_BAD)
            goto broken;
    }
    return push_wait(L, fl);
broken:
    c->busy = 0;
    return push_pg_error(L, PQerrorMessage(c->pg));
}

/* conn:_pstep(acc, consume) -> "done" | "read" | "rw" | nil, err: the results of the oldest
 * pipelined query into acc, up to its sync point ("done": the next call reads the next
 * query's). consume: read the socket first (it was readable); without it only what libpq
 * already holds is converted, so a query whose results came in with an earlier one's costs
 * no syscall. Never waits. */
static int conn_pstep(lua_State *L)
{
    pg_conn *c = conn_check_open(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int consume = lua_toboolean(L, 3);
    lua_settop(L, 2);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &null_key);
    int nullidx = 3;
    if (c->inflight == 0)
        return luaL_error(L, "gl.pg: no pipelined query to read");
    int fl = PQflush(c->pg);
    if (fl < 0)
        goto broken;
    if (consume && !PQconsumeInput(c->pg))
        goto broken;
    while (!PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            /* the end of one query's results; its sync point follows. Twice in a row means
             * libpq has nothing queued: wait rather than spin */
            if (++c->nulls > 1)
                break;
            continue;
        }
        c->nulls = 0;
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            c->inflight--;
            lua_pushliteral(L, "done");
            return 1;
        }
        if (took_prepare(L, c, r)) {
            PQclear(r);
            continue;
        }
        take_result(L, c, r, nullidx);
        PQclear(r);
        if (PQstatus(c->pg) == CONNECTION_BAD)
            goto broken;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD)
        goto broken;
    return push_wait(L, fl);
broken:
    c->inflight = 0;
    return push_pg_error(L, PQerrorMessage(c->pg));
}

/* conn:_consume() -> true | nil, err: read what the socket holds (notifications) */
static int conn_consume(lua_State *L)
{
    pg_conn *c = conn_check_open(L, 1);
    if (!PQconsumeInput(c->pg))
        return push_pg_error(L, PQerrorMessage(c->pg));
    lua_pushboolean(L, 1);
    return 1;
}

/* conn:alive() -> true unless the server is known to have dropped us: reads what the
 * socket holds (a FATAL message, say) and peeks for its end, never waits. A pool asks this
 * before lending an idle connection. */
static int conn_alive(lua_State *L)
{
    pg_conn *c = conn_check(L, 1);
    int ok = c->pg && c->ready && !c->busy && c->inflight == 0 && PQstatus(c->pg) == CONNECTION_OK;
    for (int i = 0; ok && i < 8; i++) {
        char b;
        ssize_t n = recv(PQsocket(c->pg), &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break; /* nothing came: the usual case costs this one syscall */
        if (n <= 0) {
            ok = 0; /* the peer's end, or a reset: the next query would fail */
            break;
        }
        /* something came while idle (a FATAL message, a notification): let libpq read it */
        if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK)
            ok = 0;
    }
    lua_pushboolean(L, ok);
    return 1;
}

/* conn:_notify() -> channel, payload, pid | nil: one notification libpq holds */
static int conn_notify(lua_State *L)
{
    pg_conn *c = conn_check_open(L, 1);
    PGnotify *n = PQnotifies(c->pg);
    if (!n)
        return 0;
    lua_pushstring(L, n->relname);
    lua_pushstring(L, n->extra);
    lua_pushinteger(L, n->be_pid);
    PQfreemem(n);
    return 3;
}

/* conn:_notices() -> list of notice messages since the last call, or nil */
static int conn_notices(lua_State *L)
{
    pg_conn *c = conn_check(L, 1);
    if (!c->nhead)
        return 0;
    lua_createtable(L, c->nnotices, 0);
    int i = 0;
    for (notice *n = c->nhead; n; n = n->next) {
        lua_pushstring(L, n->msg);
        lua_rawseti(L, -2, ++i);
    }
    free_notices(c);
    return 1;
}

/* conn:status() -> "ok" | "bad" | "connecting" | "closed" */
static int conn_status(lua_State *L)
{
    pg_conn *c = conn_check(L, 1);
    if (!c->pg)
        lua_pushliteral(L, "closed");
    else if (PQstatus(c->pg) == CONNECTION_BAD)
        lua_pushliteral(L, "bad");
    else if (!c->ready)
        lua_pushliteral(L, "connecting");
    else
        lua_pushliteral(L, "ok");
    return 1;
}

/* conn:txstatus() -> "idle" | "active" | "intrans" | "inerror" | "unknown" */
static int conn_txstatus(lua_State *L)
{
    pg_conn *c = conn_check(L, 1);
    static const char *const names[] = {"idle", "active", "intrans", "inerror", "unknown"};
    PGTransactionStatusType t = c->pg ? PQtransactionStatus(c->pg) : PQTRANS_UNKNOWN;
    lua_pushstring(L, names[t <= PQTRANS_UNKNOWN ? t : PQTRANS_UNKNOWN]);
    return 1;
}

static int conn_backend_pid(lua_State *L)
{
    pg_conn *c = conn_check_open(L, 1);
    lua_pushinteger(L, PQbackendPID(c->pg));
    return 1;
}

static int conn_busy(lua_State *L)
{
    pg_conn *c = conn_check(L, 1);
    lua_pushboolean(L, c->busy || c->inflight > 0);
    return 1;
}

static int conn_server_version(lua_State *L)
{
    pg_conn *c = conn_check_open(L, 1);
    lua_pushinteger(L, PQserverVersion(c->pg));
    return 1;
}

static int escape(lua_State *L, int ident)
{
    pg_conn *c = conn_check_open(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    char *e = ident ? PQescapeIdentifier(c->pg, s, n) : PQescapeLiteral(c->pg, s, n);
    if (!e)
        return luaL_error(L, "gl.pg: %s", PQerrorMessage(c->pg));
    lua_pushstring(L, e);
    PQfreemem(e);
    return 1;
}

static int conn_escape_identifier(lua_State *L)
{
    return escape(L, 1);
}

static int conn_escape_literal(lua_State *L)
{
    return escape(L, 0);
}

static int conn_tostring(lua_State *L)
{
    pg_conn *c = conn_check(L, 1);
    if (!c->pg)
        lua_pushliteral(L, "gl.pg.conn (closed)");
    else
        lua_pushfstring(L, "gl.pg.conn (backend %d)", PQbackendPID(c->pg));
    return 1;
}

/* Cancelling: PQcancel connects to the server and waits for it, so it runs in a detached
 * OS thread that owns its PGcancel; it reports on a socketpair the green thread waits on
 * (send with MSG_NOSIGNAL: a reader that is gone makes it fail, never SIGPIPE). */
typedef struct cancel_job {
    PGcancel *cancel;
    int fd;
} cancel_job;

static void *cancel_main(void *arg)
{
    cancel_job *j = arg;
    char msg[256];
    msg[0] = '1';
    if (!PQcancel(j->cancel, msg + 1, (int)sizeof msg - 1))
        msg[0] = '0';
    else
        msg[1] = '\0';
    ssize_t r = send(j->fd, msg, strlen(msg), MSG_NOSIGNAL);
    (void)r;
    close(j->fd);
    PQfreeCancel(j->cancel);
    free(j);
    return NULL;
}

typedef struct cancel_ud {
    int fd;
} cancel_ud;

static int cancel_close(lua_State *L)
{
    cancel_ud *u = luaL_checkudata(L, 1, CANCEL_MT);
    if (u->fd >= 0) {
        close(u->fd);
        u->fd = -1;
    }
    return 0;
}

static int cancel_fileno(lua_State *L)
{
    cancel_ud *u = luaL_checkudata(L, 1, CANCEL_MT);
    lua_pushinteger(L, u->fd);
    return 1;
}

/* cancel:result() -> true | nil, err (after the fd became readable) */
static int cancel_result(lua_State *L)
{
    cancel_ud *u = luaL_checkudata(L, 1, CANCEL_MT);
    char buf[256];
    ssize_t n = u->fd >= 0 ? recv(u->fd, buf, sizeof buf - 1, MSG_DONTWAIT) : -1;
    if (n <= 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "cancel: no answer");
        return 2;
    }
    buf[n] = '\0';
    if (buf[0] == '1') {
        lua_pushboolean(L, 1);
        return 1;
    }
    return push_pg_error(L, buf + 1);
}

/* conn:_cancel_start() -> a gl.pg.cancel handle to wait on | nil, err */
static int conn_cancel_start(lua_State *L)
{
    pg_conn *c = conn_check_open(L, 1);
    cancel_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->fd = -1;
    luaL_setmetatable(L, CANCEL_MT);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        int e = errno;
        lua_pushnil(L);
        lua_pushstring(L, strerror(e));
        return 2;
    }
    u->fd = sv[0];
    cancel_job *j = malloc(sizeof *j);
    PGcancel *pc = PQgetCancel(c->pg);
    if (!j || !pc) {
        free(j);
        if (pc)
            PQfreeCancel(pc);
        close(sv[1]);
        lua_pushnil(L);
        lua_pushliteral(L, "cancel: cannot make a cancel request");
        return 2;
    }
    j->cancel = pc;
    j->fd = sv[1];
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&th, &attr, cancel_main, j);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        PQfreeCancel(pc);
        close(sv[1]);
        free(j);
        lua_pushnil(L);
        lua_pushstring(L, strerror(e));
        return 2;
    }
    return 1;
}

static int l_libpq_version(lua_State *L)
{
    lua_pushinteger(L, PQlibVersion());
    return 1;
}

static int null_tostring(lua_State *L)
{
    lua_pushliteral(L, "gl.pg.null");
    return 1;
}

int gl_open_pg(lua_State *L)
{
    static const luaL_Reg methods[] = {{"_poll", conn_poll},
                                       {"socket", conn_socket},
                                       {"_send", conn_send},
                                       {"_step", conn_step},
                                       {"_psend", conn_psend},
                                       {"_pstep", conn_pstep},
                                       {"_forget", conn_forget},
                                       {"_prepare", conn_prepare},
                                       {"_consume", conn_consume},
                                       {"_notify", conn_notify},
                                       {"alive", conn_alive},
                                       {"_notices", conn_notices},
                                       {"_cancel_start", conn_cancel_start},
                                       {"status", conn_status},
                                       {"txstatus", conn_txstatus},
                                       {"backend_pid", conn_backend_pid},
                                       {"busy", conn_busy},
                                       {"server_version", conn_server_version},
                                       {"escape_identifier", conn_escape_identifier},
                                       {"escape_literal", conn_escape_literal},
                                       {"close", conn_close},
                                       {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", conn_close}, {"__close", conn_close}, {"__tostring", conn_tostring}, {NULL, NULL}};
    static const luaL_Reg cancel_meta[] = {
        {"__gc", cancel_close}, {"__close", cancel_close}, {NULL, NULL}};
    static const luaL_Reg cancel_methods[] = {{"fileno", cancel_fileno},
                                              {"result", cancel_result},
                                              {"close", cancel_close},
                                              {NULL, NULL}};
    static const luaL_Reg funcs[] = {{"pg_connect_start", l_connect_start},
                                     {"pg_conninfo_parse", l_conninfo_parse},
                                     {"pg_libpq_version", l_libpq_version},
                                     {NULL, NULL}};

    luaL_newmetatable(L, PG_MT); /* stack: core, mt */
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
    lua_setfield(L, -3, "pg_methods"); /* pg.lua adds query, listen & co here */
    lua_pop(L, 1);

    luaL_newmetatable(L, CANCEL_MT);
    luaL_setfuncs(L, cancel_meta, 0);
    luaL_newlib(L, cancel_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &null_key) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newuserdatauv(L, 0, 0);
        lua_createtable(L, 0, 2);
        lua_pushcfunction(L, null_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "gl.pg.null");
        lua_setfield(L, -2, "__name");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &null_key);
    }
    lua_setfield(L, -2, "pg_null");
    luaL_setfuncs(L, funcs, 0);
    return 0;
}
