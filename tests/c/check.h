/* The C test VMMs' checks: CHECK(cond, fmt, ...) counts a failure and says where and why, and
 * checks_done() reports them at the end (exit status 1, or "all checks passed" and 0). One
 * translation unit per test program includes it. */
#pragma once

#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                                             \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            ++failures;                                                              \
        }                                                                            \
    } while (0)

static inline int checks_done(void) {
    if (failures != 0) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
