/* The Lua allocator of a gl state: glibc malloc behind per-size free lists.
 *
 * Why: a request or a message makes and drops a handful of small objects (tables, strings,
 * a userdata), and the collector frees them in batches. glibc keeps only 7 freed blocks
 * per size in its thread cache, so most of a batch went down its slow path (_int_free,
 * _int_malloc), which cost about 8% of the instructions of an HTTP request. Lua tells the
 * allocator the old size of every block, so a block needs no header of ours: freed blocks
 * of up to MAX_SMALL bytes wait in a list for their size class, capped in bytes, and the
 * next allocation of that class pops one.
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
/* each list keeps at most this many bytes, so the lists hold at most NCLASS x 128 KB,
 * and only while a burst's blocks wait for the next one */
#define LIST_BYTES (128 * 1024)

typedef struct free_block {
    struct free_block *next;
} free_block;

struct gl_heap {
    free_block *list[NCLASS + 1];
    unsigned short len[NCLASS + 1], cap[NCLASS + 1];
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

static void heap_free(gl_heap *H, void *p, size_t osize)
{
    if (GL_ALLOC_CACHE && osize <= MAX_SMALL) {
        size_t k = class_of(osize);
        if (H->len[k] < H->cap[k]) {
            free_block *b = p;
            b->next = H->list[k];
            H->list[k] = b;
            H->len[k]++;
            return;
        }
    }
    free(p);
}

static void *heap_malloc(gl_heap *H, size_t n)
{
    if (GL_ALLOC_CACHE && n <= MAX_SMALL) {
        size_t k = class_of(n);
        free_block *b = H->list[k];
        if (b) {
            H->list[k] = b->next;
            H->len[k]--;
            return b;
        }
        return malloc(class_size(k));
    }
    return malloc(n);
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
    if (!GL_ALLOC_CACHE || (osize > MAX_SMALL && nsize > MAX_SMALL))
        return realloc(p, nsize);
    if (osize <= MAX_SMALL && nsize <= MAX_SMALL && class_of(osize) == class_of(nsize))
        return p;
    void *q = heap_malloc(H, nsize);
    if (!q)
        return NULL; /* Lua keeps p */
    memcpy(q, p, osize < nsize ? osize : nsize);
    heap_free(H, p, osize);
    return q;
}

static int panic(lua_State *L)
{
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error object is not a string";
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
    for (size_t k = 1; k <= NCLASS; k++)
        H->cap[k] = (unsigned short)(LIST_BYTES / class_size(k));
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
