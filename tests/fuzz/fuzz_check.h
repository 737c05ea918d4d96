/* Invariant checks shared by the fuzz harnesses: CHECK aborts (a finding for libFuzzer) with
 * the failed condition and a message; comparisons of normalised event parts. */
#ifndef EO_TESTS_FUZZ_CHECK_H
#define EO_TESTS_FUZZ_CHECK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/event.h"

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s: ", #cond);                                      \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Equal texts, or both absent. */
static inline bool same_str(eo_str_t a, eo_str_t b)
{
    if (!a.s || !b.s)
        return a.s == b.s;
    return a.len == b.len && memcmp(a.s, b.s, a.len) == 0;
}

/* Equal JSON objects, an absent one counting as {}. */
static inline bool same_object(json_t *a, json_t *b)
{
    json_t *empty = json_object();
    bool eq = json_equal(a ? a : empty, b ? b : empty);
    json_decref(empty);
    return eq;
}

#endif
