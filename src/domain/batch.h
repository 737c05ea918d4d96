/* Request bodies of the ingest API: one event object, or a batch given as a JSON array or as
 * {"events": [...]} ("batch" is accepted as an alias, as Segment's batch API names it). */
#ifndef EO_DOMAIN_BATCH_H
#define EO_DOMAIN_BATCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "domain/event.h"

typedef struct {
    json_t *root;  /* owned: release with eo_batch_done() */
    json_t *items; /* borrowed: the array of events, or the single event object */
    size_t count;  /* events in items */
    bool single;
} eo_batch_t;

/* The JSON value of a request body (len bytes, not NUL-terminated), read strictly: UTF-8, no
 * NUL, no duplicate keys, no trailing data; a new reference, or NULL with err naming the
 * problem (empty_body, invalid_json). Every ingest body is read this way (compat.h too). */
json_t *eo_body_load(const char *body, size_t len, eo_event_error_t *err);

/* Parses body (len bytes, not NUL-terminated) strictly: UTF-8, no NUL, no duplicate keys, no
 * trailing data. single: the body is one event object. Returns 0, or EO_EPARSE / EO_EINVAL /
 * EO_ELIMIT with err naming the problem. */
int eo_batch_parse(const char *body, size_t len, bool single, const eo_event_limits_t *lim,
                   eo_batch_t *batch, eo_event_error_t *err) EO_MUST_CHECK;

/* Returns event i (borrowed). */
json_t *eo_batch_item(const eo_batch_t *batch, size_t i);

void eo_batch_done(eo_batch_t *batch);

#endif
