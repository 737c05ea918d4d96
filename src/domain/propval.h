/* The value of a property path in an event's properties, as the text a breakdown reports
 * (docs/query.md): exactly what PostgreSQL's `eventops_property_text(properties #> path)`
 * (sql/migrations/0009_property_rollups.sql) gives for the same properties stored as jsonb, so
 * that counts the processor writes agree byte for byte with the raw-events breakdown:
 *  - missing, or JSON null: no value;
 *  - a string: its characters as they are (no quotes, no escapes);
 *  - a number: numeric's text of the number's JSON text as the processor stores it (integers in
 *    decimal, reals in eo_json_format_real's form): 1.0 stays "1.0", 1e+20 is
 *    "100000000000000000000", 1.5e-07 is "0.00000015", -0.0 is "0.0";
 *  - true/false; an object or array as jsonb's text: keys ordered by length then bytes,
 *    ", " and ": " between items, strings escaped as PostgreSQL's escape_json does.
 * A path step into an array is an index as `#>` reads it (a decimal integer, negative from the
 * end). Pure. */
#ifndef EO_DOMAIN_PROPVAL_H
#define EO_DOMAIN_PROPVAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"

#define EO_PROPPATH_MAX_NAMES 4
#define EO_PROPPATH_MAX_NAME 64
#define EO_PROPPATH_MAX 259 /* 4 names of 64 and 3 dots */

/* A property path split into its names (NUL-terminated copies). */
typedef struct {
    char name[EO_PROPPATH_MAX_NAMES][EO_PROPPATH_MAX_NAME + 1];
    size_t n;
} eo_proppath_t;

/* Splits s (n bytes): 1..4 names joined by '.', each 1..64 of [A-Za-z0-9_$-]. Returns 0 or
 * EO_EINVAL. */
int eo_proppath_parse(const char *s, size_t n, eo_proppath_t *out) EO_MUST_CHECK;

/* Appends the breakdown text of props #> path to out. props is a JSON object (NULL: {}).
 * Returns 1 (a value appended), 0 (missing or null: nothing appended), or out's error
 * (EO_ELIMIT, EO_ENOMEM) / EO_EINVAL (a number jsonb could not hold, NaN). */
int eo_propval_text(const json_t *props, const eo_proppath_t *path, eo_buf_t *out) EO_MUST_CHECK;

/* Appends PostgreSQL numeric's output text of the JSON number literal s (n bytes): the
 * normalisation numeric_in + numeric_out make. Returns 0, EO_EINVAL (not a JSON number, or an
 * exponent beyond +-1000), or out's error. */
int eo_propval_numeric(const char *s, size_t n, eo_buf_t *out) EO_MUST_CHECK;

/* Appends v as jsonb's text output (jsonb::text). Returns 0 or an error as above. */
int eo_propval_jsonb(const json_t *v, eo_buf_t *out) EO_MUST_CHECK;

#endif
