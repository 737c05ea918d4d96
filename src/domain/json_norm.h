/* The normal form of properties and context without a tree: what eo_json_append writes for
 * the object jansson would parse from the same text (compact, keys in their order, strings
 * escaped as eo_buf_append_json_str escapes them, integers in decimal, reals in their
 * shortest text that reads back to the same double), with the limits eo_event_normalize checks
 * inside them (nesting depth, top-level keys, the length of every key and string). So a
 * scanner's output is byte for byte the collector's output through jansson (the differential
 * fuzzers check it). Pure. */
#ifndef EO_DOMAIN_JSON_NORM_H
#define EO_DOMAIN_JSON_NORM_H

#include <stddef.h>

#include "core/buf.h"
#include "domain/event.h"
#include "domain/json_lex.h"

/* Appends the normal form of obj, an object whose text eo_json_check (or eo_jlex_value with
 * keys) accepted, to out. Returns 0; EO_EINVAL when obj breaks a limit of lim (the caller asks
 * eo_event_normalize for the error that names it); or out's error (EO_ELIMIT, EO_ENOMEM), which
 * is reported only once the whole object was checked against lim. */
int eo_json_norm_object(const eo_jspan_t *obj, const eo_event_limits_t *lim,
                        eo_buf_t *out) EO_MUST_CHECK;

/* Appends the normal form of a validated string's content (eo_buf_append_json_str of it). */
void eo_json_norm_string(const eo_jspan_t *v, eo_buf_t *out);

/* Writes the normal form of a validated real token (eo_json_format_real of its double) into
 * out (at least 40 bytes). Returns its length. */
size_t eo_json_norm_real(const eo_jspan_t *v, char *out);

#endif
