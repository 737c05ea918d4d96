/* Invariant checks shared by the fuzz harnesses: CHECK aborts (a finding for libFuzzer) with
 * the failed condition and a message; comparisons of normalised event parts. */
#ifndef EO_TESTS_FUZZ_CHECK_H
#define EO_TESTS_FUZZ_CHECK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
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

/* True when s (n bytes) is UTF-8 without overlongs, surrogates, code points past U+10FFFF,
 * U+0000..U+001F or U+007F (written here again, independently of the code under test). */
static inline bool clean_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
        if (len == 0 || c > 0xf4 || i + len > n)
            return false;
        uint32_t cp = c & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

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
