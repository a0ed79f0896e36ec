/* The Lua allocator of a gl state: glibc malloc behind per-size free lists.
 *
 * Why: a request or a message makes and drops a handful of small objects (tables, strings,
 * a userdata), and the collector frees them in batches. glibc keeps only 7 freed blocks
 * per size in its thread cache, so most of a batch went down its slow path (_int_free,
 * _int_malloc), which cost about 8% of the instructions of an HTTP request. Lua tells the
 * allocator the old size of every block, so a block needs no header of ours: freed blocks
 * of up to MAX_SMALL bytes wait in a list for their size class, and the next allocation of
 * that class pops one.
 *
 * The classes are glibc's own usable sizes (16k + 8 bytes), so a block takes exactly the
 * memory a plain malloc of its size would. Under AddressSanitizer the lists are off: the
 * sanitizer must see every free to catch a use after it. */
#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define GL_ALLOC_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GL_ALLOC_CACHE 0
#endif
#endif
#ifndef GL_ALLOC_CACHE
#define GL_ALLOC_CACHE 1
#endif

/* class k (1..NCLASS) holds blocks of 16k + 8 usable bytes */
#define NCLASS 64
#define MAX_SMALL (16 * NCLASS + 8)
/* The lists together hold at most as many bytes as Lua has in use (at least CACHE_MIN): a
 * collection cycle frees about that much (the default pause starts one when the heap has
 * doubled), and the next cycle's allocations take it back. glibc would keep those blocks
 * too, in its bins; what the lists cost is only that one class cannot lend to another. */
#define CACHE_MIN (256 * 1024)

typedef struct free_block {
    struct free_block *next;
} free_block;

struct gl_heap {
    free_block *list[NCLASS + 1];
    size_t in_use, cached;  /* bytes Lua holds; bytes waiting in the lists */
    size_t trim_next;       /* the list trim() takes from next */
    int warn_on, warn_cont; /* the warning function's state (lua_setwarnf) */
};

static size_t class_of(size_t n)
{
    return n <= 24 ? 1 : (n + 7) / 16;
}

static size_t class_size(size_t k)
{
    return 16 * k + 8;
}

/* Gives a few cached blocks back to glibc, from the lists in turn: after the heap shrank,
 * the blocks of classes no longer used would otherwise wait forever. */
static void trim(gl_heap *H)
{
    for (int given = 0, looked = 0; given < 2 && looked < NCLASS; looked++) {
        size_t k = H->trim_next;
        H->trim_next = k == NCLASS ? 1 : k + 1;
        free_block *b = H->list[k];
        if (!b)
            continue;
        H->list[k] = b->next;
        H->cached -= class_size(k);
        free(b);
        given++;
    }
}

static void heap_free(gl_heap *H, void *p, size_t osize)
{
    H->in_use -= osize;
    if (GL_ALLOC_CACHE && osize <= MAX_SMALL) {
        if (H->cached < CACHE_MIN || H->cached < H->in_use) {
            size_t k = class_of(osize);
            free_block *b = p;
            b->next = H->list[k];
            H->list[k] = b;
            H->cached += class_size(k);
            return;
        }
        if (H->cached > H->in_use + CACHE_MIN) /* the heap shrank */
            trim(H);
    }
    free(p);
}

static void *heap_malloc(gl_heap *H, size_t n)
{
    void *p;
    if (GL_ALLOC_CACHE && n <= MAX_SMALL) {
        size_t k = class_of(n);
        free_block *b = H->list[k];
        if (b) {
            /* the blocks waited since a sweep freed them, out of cache: fetch the next one
             * now, so the next pop does not stall on reading its link */
            __builtin_prefetch(b->next);
            H->list[k] = b->next;
            H->cached -= class_size(k);
            H->in_use += n;
            return b;
        }
        p = malloc(class_size(k));
    } else {
        p = malloc(n);
    }
    if (p)
        H->in_use += n;
    return p;
}

static void *heap_alloc(void *ud, void *p, size_t osize, size_t nsize)
{
    gl_heap *H = ud;
    if (nsize == 0) {
        if (p)
            heap_free(H, p, osize);
        return NULL;
    }
    if (!p) /* osize is the kind of object, not a size */
        return heap_malloc(H, nsize);
    if (!GL_ALLOC_CACHE || (osize > MAX_SMALL && nsize > MAX_SMALL)) {
        void *q = realloc(p, nsize);
        if (q)
            H->in_use = H->in_use - osize + nsize;
        return q;
    }
    if (osize <= MAX_SMALL && nsize <= MAX_SMALL && class_of(osize) == class_of(nsize)) {
        H->in_use = H->in_use - osize + nsize;
        return p;
    }
    void *q = heap_malloc(H, nsize);
    if (!q)
        return NULL; /* Lua keeps p */
    memcpy(q, p, osize < nsize ? osize : nsize);
    heap_free(H, p, osize);
    return q;
}

static int panic(lua_State *L)
{
    const char *msg =
        lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error object is not a string";
    fprintf(stderr, "gl: PANIC: unprotected error in call to Lua API (%s)\n", msg);
    return 0; /* Lua aborts */
}

/* As luaL_newstate's: warnings start off; "@on" and "@off" switch them. */
static void warn(void *ud, const char *msg, int tocont)
{
    gl_heap *H = ud;
    if (!H->warn_cont && !tocont && msg[0] == '@') {
        if (strcmp(msg, "@on") == 0)
            H->warn_on = 1;
        else if (strcmp(msg, "@off") == 0)
            H->warn_on = 0;
        return;
    }
    if (H->warn_on) {
        if (!H->warn_cont)
            fputs("Lua warning: ", stderr);
        fputs(msg, stderr);
        if (!tocont)
            fputc('\n', stderr);
    }
    H->warn_cont = tocont;
}

lua_State *gl_heap_newstate(gl_heap **out)
{
    gl_heap *H = calloc(1, sizeof *H);
    if (!H)
        return NULL;
    H->trim_next = 1;
    lua_State *L = lua_newstate(heap_alloc, H);
    if (!L) {
        free(H);
        return NULL;
    }
    lua_atpanic(L, panic);
    lua_setwarnf(L, warn, H);
    *out = H;
    return L;
}

size_t gl_heap_cached(const gl_heap *H)
{
    return H->cached;
}

void gl_heap_close(lua_State *L, gl_heap *H)
{
    lua_close(L);
    for (size_t k = 1; k <= NCLASS; k++) {
        free_block *b = H->list[k];
        while (b) {
            free_block *next = b->next;
            free(b);
            b = next;
        }
    }
    free(H);
}
