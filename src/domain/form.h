/* application/x-www-form-urlencoded bodies (the OAuth token endpoint's requests): strict
 * parsing into decoded name/value pairs. Pure functions. */
#ifndef EO_DOMAIN_FORM_H
#define EO_DOMAIN_FORM_H

#include <stddef.h>

#include "core/error.h"

typedef struct {
    char *name;  /* decoded, NUL-terminated */
    char *value; /* decoded, NUL-terminated */
} eo_form_pair_t;

typedef struct {
    eo_form_pair_t *pairs;
    size_t count;
} eo_form_t;

/* Parses body (len bytes). '+' is a space; %XX must be two hex digits; decoded names and values
 * may not hold control characters (NUL included) and must be valid UTF-8; empty pieces between
 * '&' are skipped. Returns 0, EO_EPARSE (the first problem in err), EO_ELIMIT (more than
 * max_pairs pairs) or EO_ENOMEM. On failure form is empty. */
int eo_form_parse(const char *body, size_t len, size_t max_pairs, eo_form_t *form, char *err,
                  size_t errlen) EO_MUST_CHECK;

/* The value of name, or NULL; *count (when not NULL) is how many times name appears. */
const char *eo_form_get(const eo_form_t *form, const char *name, size_t *count);

void eo_form_done(eo_form_t *form);

/* Percent-decodes in (n bytes) into out (cap bytes, NUL-terminated) with the same rules.
 * Returns the decoded length, EO_EPARSE or EO_ELIMIT. */
int eo_form_unescape(const char *in, size_t n, char *out, size_t cap) EO_MUST_CHECK;

#endif
