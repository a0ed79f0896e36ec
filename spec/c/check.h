/* The C tests' shared counters and CHECK: each test is its own program, so static. */
#ifndef GL_SPEC_CHECK_H
#define GL_SPEC_CHECK_H

#include <stdio.h>

static int passed, failed;

static void check(int ok, int line, const char *what)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL line %d: %s\n", line, what);
    }
}

#define CHECK(c) check((c) != 0, __LINE__, #c)

#endif
