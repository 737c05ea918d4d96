/* The JSON lexer under every scanner of outside JSON that builds no tree (record_scan.c,
 * ingest_scan.c): values are read where they lie, as spans of the input, and validated as
 * jansson's parser validates them (RFC 8259 grammar, UTF-8 without overlongs or surrogates,
 * escapes, no \u0000, leading zeros refused, integers within int64, reals within double,
 * nesting at most JSON_PARSER_MAX_DEPTH), so that a scanner accepts exactly what
 * json_loadb(..., JSON_REJECT_DUPLICATES) accepts. No cursor ever reads past its end; nothing
 * recurses; time is linear in the input (the duplicate check: n log n in an object's keys).
 *
 * Pure. A cursor and its spans borrow the input: keep it alive. eo_json_keys_t is scratch that
 * the caller owns and reuses (one per thread). */
#ifndef EO_DOMAIN_JSON_LEX_H
#define EO_DOMAIN_JSON_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct {
    const unsigned char *p, *end;
} eo_jcur_t;

typedef enum {
    EO_JV_NONE, /* absent (a member not given) */
    EO_JV_NULL,
    EO_JV_STRING,
    EO_JV_INTEGER,
    EO_JV_REAL,
    EO_JV_BOOL,
    EO_JV_OBJECT,
    EO_JV_ARRAY
} eo_jkind_t;

/* A value as it lies in the input: a string's content between its quotes (esc: it holds
 * backslash escapes), a number's token, a literal's word, a container's whole text. */
typedef struct {
    eo_jkind_t kind;
    const unsigned char *s;
    size_t len;
    bool esc;
} eo_jspan_t;

/* The keys of the open objects while a value is checked for duplicate keys; reused between
 * calls (its arrays grow to the largest input seen and stay). */
typedef struct {
    eo_jspan_t *keys; /* of the open objects, innermost last */
    size_t nkeys, cap;
    size_t *starts; /* per open container: the index of its first key in keys */
    size_t starts_cap;
} eo_json_keys_t;

void eo_json_keys_init(eo_json_keys_t *k);
void eo_json_keys_done(eo_json_keys_t *k);

/* Skips the whitespace jansson skips (not \v or \f). */
void eo_jlex_skip_ws(eo_jcur_t *c);

/* A string at c->p (its opening quote) into v; c after its closing quote. 0 or EO_EPARSE. */
int eo_jlex_string(eo_jcur_t *c, eo_jspan_t *v);

/* A string, number or literal at c->p (not at the end). 0 or EO_EPARSE. */
int eo_jlex_scalar(eo_jcur_t *c, eo_jspan_t *v);

/* Inside an object, at a member: its key string, ':' and the whitespace up to its value. */
int eo_jlex_key(eo_jcur_t *c, eo_jspan_t *key);

/* Any value at c->p whose depth (jansson's count: the outermost value is 1) is depth; v spans
 * it (a string: its content). keys: check every object inside for duplicate keys (jansson's
 * JSON_REJECT_DUPLICATES), or NULL not to. 0, EO_EPARSE, or EO_ENOMEM (keys could not grow). */
int eo_jlex_value(eo_jcur_t *c, size_t depth, eo_json_keys_t *keys, eo_jspan_t *v);

/* Skips the value at c->p, which eo_json_check (or eo_jlex_value) already accepted: only
 * quotes, backslashes and brackets are looked at. */
void eo_jlex_skip_valid(eo_jcur_t *c);

/* The next member of the object being read, after its '{' (first) or a member's value: 1 with
 * *key and c at the value, 0 after the closing '}', or EO_EPARSE. */
int eo_jlex_next_member(eo_jcur_t *c, bool first, eo_jspan_t *key);

/* The next element of the array being read, after its '[' (first) or an element: 1 with c at
 * the element, 0 after the closing ']', or EO_EPARSE. */
int eo_jlex_next_element(eo_jcur_t *c, bool first);

/* The whole input as one JSON value and nothing after it but whitespace, as
 * json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY) reads it; v spans it. 0, EO_EPARSE or
 * EO_ENOMEM. */
int eo_json_check(const void *bytes, size_t len, eo_json_keys_t *keys, eo_jspan_t *v);

/* The decimal parts of a validated number token: its sign, its first 16 significant digits
 * without trailing zeros (more: a non-zero digit came after them), and the decimal exponent of
 * its first significant digit (1.5e3: 3, 0.015: -2), clamped to +-100000; zero: no significant
 * digit (then nd is 0 and exp10 0). */
typedef struct {
    bool neg, zero, more;
    char digits[16];
    size_t nd;
    int32_t exp10;
} eo_jreal_t;

void eo_jlex_real_parts(const unsigned char *s, size_t len, eo_jreal_t *out);

/* The next code point of a validated string's content at *pp, which it advances. */
uint32_t eo_jlex_next_cp(const unsigned char **pp);

/* True when two validated strings have the same content (whatever escapes spell it). */
bool eo_jlex_same_text(const eo_jspan_t *a, const eo_jspan_t *b);

/* Writes the content of a validated string into out (cap bytes): its length, or SIZE_MAX when
 * it does not fit. */
size_t eo_jlex_unescape(const eo_jspan_t *v, char *out, size_t cap);

/* The length in bytes of the content of a validated string (jansson's json_string_length). */
size_t eo_jlex_text_len(const eo_jspan_t *v);

#endif
