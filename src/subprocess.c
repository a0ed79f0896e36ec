/* gl.subprocess's C part: posix_spawn with the child's stdio on socketpairs that become
 * green sockets, and one libevent SIGCHLD event that reaps gl's own children only
 * (waitpid on each pid gl started, never waitpid(-1)), so a host's children are left to
 * the host. Each live child counts as a wait that ends by itself, so gl does not exit (or
 * call a waiter deadlocked) while a child runs. lua/gl/subprocess.lua builds the API. */
#include "core.h"
#include "hub.h"
#include "socket.h"
#include "subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_CHILDREN 4096

typedef struct child {
    pid_t pid;
    gl_hub *hub;
} child;

static child children[MAX_CHILDREN];
static int n_children;
static struct event *sigchld_ev;
static gl_hub *owner;
static int on_exit_ref = LUA_NOREF; /* Lua function(pid, code, signal) */

static void sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    gl_hub *h = arg;
    lua_State *L = h->L;
    for (int i = 0; i < n_children;) {
        int status;
        pid_t r = waitpid(children[i].pid, &status, WNOHANG);
        if (r == 0 || (r < 0 && errno == EINTR)) {
            i++;
            continue;
        }
        pid_t pid = children[i].pid;
        children[i] = children[--n_children];
        h->n_waits--;
        int code = -1, signo = 0;
        if (r > 0 && WIFEXITED(status))
            code = WEXITSTATUS(status);
        else if (r > 0 && WIFSIGNALED(status))
            signo = WTERMSIG(status);
        if (on_exit_ref != LUA_NOREF) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, on_exit_ref);
            lua_pushinteger(L, pid);
            lua_pushinteger(L, code);
            lua_pushinteger(L, signo);
            if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
                fprintf(stderr, "gl.subprocess: %s\n", lua_tostring(L, -1));
                lua_pop(L, 1);
            }
        }
    }
}

/* Lua state closing (gl_close): drop the SIGCHLD event before the hub's base goes, so a
 * later gl state can spawn again (children still alive are no longer reaped by gl). */
static int guard_gc(lua_State *L)
{
    (void)L;
    if (sigchld_ev) {
        event_free(sigchld_ev);
        sigchld_ev = NULL;
    }
    owner = NULL;
    n_children = 0;
    on_exit_ref = LUA_NOREF;
    return 0;
}

static void ensure_guard(lua_State *L)
{
    static const char key = 0;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &key) == LUA_TNIL) {
        lua_newuserdatauv(L, 1, 0);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, guard_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &key);
    }
    lua_pop(L, 1);
}

/* a NULL-terminated copy of the strings in table idx (freed by free_vec) */
static char **string_vec(lua_State *L, int idx, const char *what)
{
    lua_Integer n = luaL_len(L, idx);
    char **v = calloc((size_t)n + 1, sizeof *v);
    if (!v) {
        luaL_error(L, "gl.subprocess: out of memory");
        return NULL;
    }
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        const char *s = lua_tostring(L, -1);
        char *copy = s ? strdup(s) : NULL;
        if (!copy) {
            for (lua_Integer k = 0; k < i - 1; k++)
                free(v[k]);
            free(v);
            if (s)
                luaL_error(L, "gl.subprocess: out of memory");
            else
                luaL_error(L, "gl.subprocess: %s[%d] must be a string", what, (int)i);
            return NULL; /* not reached: luaL_error does not return */
        }
        v[i - 1] = copy;
        lua_pop(L, 1);
    }
    return v;
}

static void free_vec(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

/* core.proc_spawn(argv, cwd|nil, env_list|nil, modes) -> pid, in, out, err
 * modes: a string of 3 letters for stdin/stdout/stderr: 'p' pipe, 'i' inherit, 'n' /dev/null.
 * Pipes are socketpairs: the parent's end comes back as a green socket, else false.
 * Failure: nil, err, errno. */
static int l_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *cwd = luaL_optstring(L, 2, NULL);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    const char *modes = luaL_optstring(L, 4, "ppp");
    luaL_argcheck(L, strlen(modes) == 3, 4, "three stdio modes expected");
    if (luaL_len(L, 1) < 1)
        return luaL_argerror(L, 1, "argv must hold at least the program");
    gl_hub *h = gl_hub_get(L);
    if (owner && owner != h)
        return luaL_error(L, "gl.subprocess: only one gl state per process can spawn");
    owner = h;
    if (n_children >= MAX_CHILDREN)
        return luaL_error(L, "gl.subprocess: too many live children");
    if (!sigchld_ev) {
        ensure_guard(L);
        sigchld_ev = evsignal_new(h->base, SIGCHLD, sigchld_cb, h);
        if (!sigchld_ev || evsignal_add(sigchld_ev, NULL) < 0)
            return luaL_error(L, "gl.subprocess: cannot watch SIGCHLD");
    }
    char **argv = string_vec(L, 1, "argv");
    char **envp = lua_istable(L, 3) ? string_vec(L, 3, "env") : NULL;
    int pairs[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    int devnull = -1, e = 0;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    for (int i = 0; i < 3 && !e; i++) {
        if (modes[i] == 'p') {
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pairs[i]) < 0)
                e = errno;
            else
                posix_spawn_file_actions_adddup2(&fa, pairs[i][1], i);
        } else if (modes[i] == 'n') {
            if (devnull < 0 && (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
                e = errno;
            else
                posix_spawn_file_actions_adddup2(&fa, devnull, i);
        }
    }
    if (!e && cwd)
        e = posix_spawn_file_actions_addchdir_np(&fa, cwd);
    /* the child starts with default signal dispositions and an empty mask */
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    pid_t pid = -1;
    if (!e)
        e = posix_spawnp(&pid, argv[0], &fa, &attr, argv, envp ? envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free_vec(argv);
    free_vec(envp);
    if (devnull >= 0)
        close(devnull);
    for (int i = 0; i < 3; i++)
        if (pairs[i][1] >= 0)
            close(pairs[i][1]);
    if (e) {
        for (int i = 0; i < 3; i++)
            if (pairs[i][0] >= 0)
                close(pairs[i][0]);
        lua_pushnil(L);
        lua_pushstring(L, strerror(e));
        lua_pushinteger(L, e);
        return 3;
    }
    children[n_children].pid = pid;
    children[n_children].hub = h;
    n_children++;
    h->n_waits++;
    lua_pushinteger(L, pid);
    for (int i = 0; i < 3; i++) {
        if (pairs[i][0] >= 0)
            gl_sock_push(L, pairs[i][0], AF_UNIX, SOCK_STREAM, GL_SOCK_MT);
        else
            lua_pushboolean(L, 0);
    }
    /* a child that exited before the event was added is reaped on the next SIGCHLD or
     * here: check once at the hub's next pass */
    event_active(sigchld_ev, EV_SIGNAL, 1);
    return 4;
}

/* core.proc_kill(pid, sig) -> true | nil, err; only for a pid gl still owns */
static int l_kill(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    int sig = (int)luaL_optinteger(L, 2, SIGTERM);
    for (int i = 0; i < n_children; i++) {
        if (children[i].pid == pid) {
            if (kill(pid, sig) < 0) {
                lua_pushnil(L);
                lua_pushstring(L, strerror(errno));
                return 2;
            }
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    lua_pushnil(L);
    lua_pushliteral(L, "process already exited");
    return 2;
}

/* core.proc_on_exit(fn): fn(pid, code, signal) runs on the hub when a child is reaped */
static int l_on_exit(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    gl_hub_get(L); /* the guard must be finalized before the hub */
    ensure_guard(L);
    lua_settop(L, 1);
    if (on_exit_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, on_exit_ref);
    on_exit_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

void gl_open_subprocess(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"proc_spawn", l_spawn}, {"proc_kill", l_kill}, {"proc_on_exit", l_on_exit}, {NULL, NULL}};
    luaL_setfuncs(L, funcs, 0);
}
