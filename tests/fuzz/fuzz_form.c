/* libFuzzer harness of eo_form_parse (at most 16 pairs) and eo_form_unescape on raw bytes:
 * the body of a request to the OAuth token endpoint. Invariants checked (abort on violation),
 * beyond "no crash, no leak":
 *  - eo_form_parse gives 0, EO_EPARSE or EO_ELIMIT (with a reason and an empty form);
 *  - accepted pairs number at most 16, have non-empty names, and names and values are valid
 *    UTF-8 without control characters; eo_form_get finds each name;
 *  - eo_form_unescape gives a NUL-terminated text of the returned length within its cap, under
 *    the same rules, and agrees with eo_form_parse on a body of one bare name. */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/form.h"
#include "fuzz_check.h"

#define MAX_PAIRS 16

static void check_unescape(const char *in, size_t n, size_t cap)
{
    char *out = malloc(cap ? cap : 1);
    CHECK(out != NULL, "no memory");
    int r = eo_form_unescape(in, n, out, cap);
    if (r >= 0) {
        CHECK((size_t)r < cap && (size_t)r <= n, "length %d, cap %zu, input %zu", r, cap, n);
        CHECK(out[r] == '\0' && strlen(out) == (size_t)r, "not NUL-terminated at %d", r);
        CHECK(clean_utf8((const unsigned char *)out, (size_t)r), "unclean output");
    } else {
        CHECK(r == EO_EPARSE || r == EO_ELIMIT, "eo_form_unescape: %d", r);
        CHECK(r == EO_EPARSE || cap <= n, "EO_ELIMIT with room for the whole input");
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    eo_form_t form;
    char err[160] = "";
    int r = eo_form_parse(body, size, MAX_PAIRS, &form, err, sizeof err);
    if (r < 0) {
        CHECK(r == EO_EPARSE || r == EO_ELIMIT, "eo_form_parse: %d", r);
        CHECK(form.count == 0 && form.pairs == NULL, "pairs after a refusal");
        CHECK(err[0] != '\0', "refused without a reason");
    } else {
        CHECK(r == 0, "eo_form_parse: %d", r);
        CHECK(form.count <= MAX_PAIRS, "%zu pairs", form.count);
        for (size_t i = 0; i < form.count; i++) {
            const char *name = form.pairs[i].name, *value = form.pairs[i].value;
            CHECK(name[0] != '\0', "pair %zu has an empty name", i);
            CHECK(clean_utf8((const unsigned char *)name, strlen(name)), "name %zu", i);
            CHECK(clean_utf8((const unsigned char *)value, strlen(value)), "value %zu", i);
            size_t count = 0;
            const char *first = eo_form_get(&form, name, &count);
            CHECK(first != NULL && count >= 1 && count <= form.count, "eo_form_get(%s)", name);
        }
        eo_form_done(&form);
    }

    /* room for everything, one byte short of it, and half of it */
    check_unescape(body, size, size + 1);
    check_unescape(body, size, size);
    check_unescape(body, size, size / 2);

    /* one bare name: parsing and unescaping agree */
    if (size > 0 && !memchr(body, '&', size) && !memchr(body, '=', size)) {
        char *out = malloc(size + 1);
        CHECK(out != NULL, "no memory");
        int u = eo_form_unescape(body, size, out, size + 1);
        r = eo_form_parse(body, size, MAX_PAIRS, &form, err, sizeof err);
        CHECK((u >= 0) == (r == 0), "unescape %d, parse %d", u, r);
        if (r == 0) {
            CHECK(form.count == 1 && strcmp(form.pairs[0].name, out) == 0 &&
                      form.pairs[0].value[0] == '\0',
                  "bare name parsed differently");
            eo_form_done(&form);
        }
        free(out);
    }
    return 0;
}
