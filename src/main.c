/* The gl interpreter: parses the command line, runs the script as the main green
 * thread (through lua/gl/main.lua), turns SIGINT into gl.Interrupt and decides the exit
 * status. --workers N supervises N copies of itself. Nothing else in gl calls exit. */
#include "core.h"
#include "sched.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <openssl/opensslv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *progname = "gl";

static void usage(void)
{
    fprintf(stderr,
            "usage: %s [options] [script [args]]\n"
            "  -e stat          run the string 'stat'\n"
            "  -l mod           require 'mod' into the global 'mod' (-l g=mod: into 'g')\n"
            "  -i               interactive mode after running the script\n"
            "  -v, --version    show the versions of gl, Lua, libevent and OpenSSL\n"
            "  --hub=NAME       hub backend: epoll, poll or select (also env GL_HUB)\n"
            "  --workers N      run N copies of the script as worker processes\n"
            "  --               stop handling options\n"
            "  -                run stdin as the script and stop handling options\n",
            progname);
}

static void print_version(void)
{
    printf("gl %s (%s, libevent %s, %s)\n", GL_VERSION, LUA_RELEASE, event_get_version(),
           OPENSSL_VERSION_TEXT);
}

typedef struct {
    int script; /* index in argv of the script, or 0 */
    int interactive;
    int version;
    int workers;
    const char *hub;
} options;

/* First pass: validate options and find the script. -1 on a bad command line. */
static int parse(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-')
            break;
        if (strcmp(a, "-") == 0)
            break;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "-i") == 0)
            o->interactive = 1;
        else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0)
            o->version = 1;
        else if (strncmp(a, "--hub=", 6) == 0)
            o->hub = a + 6;
        else if (strcmp(a, "--workers") == 0 || strncmp(a, "--workers=", 10) == 0) {
            const char *n = a[9] == '=' ? a + 10 : (++i < argc ? argv[i] : NULL);
            if (!n || atoi(n) < 1) {
                fprintf(stderr, "%s: --workers needs a positive number\n", progname);
                return -1;
            }
            o->workers = atoi(n);
        } else if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) {
            if (++i >= argc) {
                fprintf(stderr, "%s: '%s' needs an argument\n", progname, a);
                return -1;
            }
        } else if ((a[1] == 'e' || a[1] == 'l') && a[2]) {
            /* -estat, -lmod */
        } else {
            fprintf(stderr, "%s: unrecognized option '%s'\n", progname, a);
            return -1;
        }
    }
    o->script = i < argc ? i : 0;
    if (o->hub && strcmp(o->hub, "epoll") != 0 && strcmp(o->hub, "poll") != 0 &&
        strcmp(o->hub, "select") != 0) {
        fprintf(stderr, "%s: unknown hub '%s' (epoll, poll or select)\n", progname, o->hub);
        return -1;
    }
    return 0;
}

/* [-0, +1] the list of actions for lua/gl/main.lua: {"e", code}, {"l", name}, ... */
static void push_actions(lua_State *L, int argc, char **argv, const options *o)
{
    lua_newtable(L);
    int n = 0;
    int end = o->script ? o->script : argc;
    for (int i = 1; i < end; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        const char *kind = NULL, *val = NULL;
        if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) {
            kind = a + 1;
            val = argv[++i];
        } else if ((a[1] == 'e' || a[1] == 'l') && a[2]) {
            kind = a[1] == 'e' ? "e" : "l";
            val = a + 2;
        } else if (strcmp(a, "--workers") == 0) {
            i++;
        }
        if (kind) {
            lua_createtable(L, 2, 0);
            lua_pushstring(L, kind);
            lua_rawseti(L, -2, 1);
            lua_pushstring(L, val);
            lua_rawseti(L, -2, 2);
            lua_rawseti(L, -2, ++n);
        }
    }
    if (o->script) {
        lua_createtable(L, 2, 0);
        lua_pushliteral(L, "script");
        lua_rawseti(L, -2, 1);
        lua_pushstring(L, argv[o->script]);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, ++n);
    }
    if (o->interactive || (!o->script && n == 0 && !o->version && isatty(0))) {
        lua_createtable(L, 1, 0);
        lua_pushliteral(L, "repl");
        lua_rawseti(L, -2, 1);
        lua_rawseti(L, -2, ++n);
    } else if (!o->script && n == 0 && !o->version) {
        lua_createtable(L, 2, 0);
        lua_pushliteral(L, "script");
        lua_rawseti(L, -2, 1);
        lua_pushliteral(L, "-");
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, ++n);
    }
}

/* the global `arg`, as lua.c makes it: arg[0] the script, negatives before it */
static void make_arg(lua_State *L, int argc, char **argv, int script)
{
    int base = script ? script : argc;
    lua_createtable(L, argc - base, base + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - base);
    }
    lua_setglobal(L, "arg");
}

static void sigint_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gl_hub *h = arg;
    gl_thread *m = h->main;
    if (m && m->state != GL_T_DEAD && m->state != GL_T_RUNNING) {
        gl_push_sentinel(h->L, "Interrupt");
        gl_sched_throw(h->L, m);
        return;
    }
    h->exit_code = 130;
    h->stop = 1;
    event_base_loopbreak(h->base);
}

/* ---- --workers ---- */

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

static pid_t start_worker(char **argv, int id)
{
    pid_t pid = fork();
    if (pid == 0) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", id);
        setenv("GL_WORKER_ID", buf, 1);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        execv("/proc/self/exe", argv);
        execvp(argv[0], argv);
        fprintf(stderr, "%s: cannot start a worker: %s\n", progname, strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Runs n workers (argv without --workers) until all have exited. */
static int supervise(int n, char **argv)
{
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    double *delay = calloc((size_t)n, sizeof *delay);
    if (!pids || !delay)
        return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    for (int i = 0; i < n; i++) {
        pids[i] = start_worker(argv, i + 1);
        delay[i] = 0.1;
    }
    int alive = n, status_out = 0, forwarded = 0;
    while (alive > 0) {
        if (stop_signal && !forwarded) {
            for (int i = 0; i < n; i++)
                if (pids[i] > 0)
                    kill(pids[i], stop_signal);
            forwarded = 1;
        }
        int st;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < n; i++) {
            if (pids[i] != pid)
                continue;
            int failed = WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0);
            if (failed)
                status_out = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
            if (failed && !stop_signal) {
                fprintf(stderr, "%s: worker %d (pid %d) failed; restarting in %.1f s\n", progname,
                        i + 1, (int)pid, delay[i]);
                struct timespec ts = {(time_t)delay[i],
                                      (long)((delay[i] - (double)(time_t)delay[i]) * 1e9)};
                nanosleep(&ts, NULL);
                delay[i] = delay[i] * 2 > 5 ? 5 : delay[i] * 2;
                if (!stop_signal) {
                    pids[i] = start_worker(argv, i + 1);
                    break;
                }
            }
            pids[i] = 0;
            alive--;
        }
    }
    free(pids);
    free(delay);
    return status_out;
}

/* argv without the --workers option, for the children */
static char **without_workers(int argc, char **argv)
{
    char **out = calloc((size_t)argc + 1, sizeof *out);
    int k = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--workers") == 0) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--workers=", 10) == 0)
            continue;
        out[k++] = argv[i];
    }
    out[k] = NULL;
    return out;
}

int main(int argc, char **argv)
{
    if (argv[0] && argv[0][0])
        progname = argv[0];
    options o;
    if (parse(argc, argv, &o) != 0) {
        usage();
        return 1;
    }
    if (o.workers) {
        char **child_argv = without_workers(argc, argv);
        if (!child_argv)
            return 1;
        int status = supervise(o.workers, child_argv);
        free(child_argv);
        return status;
    }
    if (o.hub)
        gl_hub_use(o.hub);
    signal(SIGPIPE, SIG_IGN); /* a peer that goes away is an I/O error, not death */
    gl_State *G = gl_open(NULL);
    if (!G) {
        fprintf(stderr, "%s: cannot start (out of memory or no event backend)\n", progname);
        return 1;
    }
    lua_State *L = gl_lua(G);
    gl_hub *h = gl_hub_get(L);
    if (o.version) {
        print_version();
        if (!o.script && !o.interactive) {
            int only_v = 1;
            for (int i = 1; i < argc; i++)
                if (argv[i][0] == '-' && argv[i][1] != 'v' && strcmp(argv[i], "--version"))
                    only_v = 0;
            if (only_v) {
                gl_close(G);
                return 0;
            }
        }
    }
    make_arg(L, argc, argv, o.script);
    struct event *sigint = evsignal_new(h->base, SIGINT, sigint_cb, h);
    if (sigint && event_add(sigint, NULL) == 0)
        h->n_internal++;

    int top = lua_gettop(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "gl.main");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
        return 1;
    }
    push_actions(L, argc, argv, &o);
    int nscript = o.script ? argc - o.script - 1 : 0;
    for (int i = 0; i < nscript; i++)
        lua_pushstring(L, argv[o.script + 1 + i]);
    gl_thread *m = gl_spawn(L, 1 + nscript);
    m->is_main = 1;
    h->main = m;
    gl_hub_enqueue(h, m);
    int code = gl_run(G);
    lua_settop(L, top);
    if (sigint) {
        event_free(sigint);
        h->n_internal--;
    }
    gl_close(G);
    return code;
}
