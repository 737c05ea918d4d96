/* The Kafka record of an accepted event, written by the collector and read by the processor:
 *   {"v":1,"tenantId":"<uuid>","receivedAt":"<RFC 3339>","event":{...eo_event_encode...}}
 * The record key is "<tenantId>:<userId or anonymousId>", so one user's events stay in order. */
#ifndef EO_DOMAIN_RECORD_H
#define EO_DOMAIN_RECORD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "domain/event.h"

#define EO_RECORD_VERSION 1
#define EO_RECORD_ENVELOPE_MAX 256 /* bytes a record may add to its encoded event */

/* Appends the record value for ev. Fails with EO_ELIMIT (err: too_large) when the encoded
 * event exceeds lim->max_event_bytes. */
int eo_record_encode(const char *tenant_id, int64_t received_at_us, const eo_event_t *ev,
                     eo_str_t message_id, const eo_event_limits_t *lim, eo_buf_t *out,
                     eo_event_error_t *err) EO_MUST_CHECK;

/* Appends the record key. */
int eo_record_key(const char *tenant_id, const eo_event_t *ev, eo_buf_t *out) EO_MUST_CHECK;

typedef struct {
    json_t *root; /* owned */
    char tenant_id[37];
    int64_t received_at_us;
    eo_event_t ev; /* borrows from root */
} eo_record_t;

/* Decodes and validates a record value with the same rules the collector applied. Returns 0,
 * or EO_EPARSE (err code "undecodable") / EO_EINVAL (err code from validation). rec must be
 * released with eo_record_done() in both cases. */
int eo_record_decode(const void *bytes, size_t len, const eo_event_limits_t *lim, eo_record_t *rec,
                     eo_event_error_t *err) EO_MUST_CHECK;
void eo_record_done(eo_record_t *rec);

/* A stored event: one row of the events table (sql/migrations/0002_events.sql), as read back for
 * a replay of history (the analytics backtest). The strings are NUL-terminated text and
 * borrowed for the call only. */
typedef struct {
    const char *tenant_id;    /* a canonical lower-case UUID */
    const char *message_id;   /* non-empty */
    const char *event_type;   /* non-empty */
    const char *user_id;      /* NULL when absent; user_id and anonymous_id are not both NULL */
    const char *anonymous_id; /* NULL when absent */
    int64_t occurred_at_us;   /* the corrected timestamp */
    int64_t received_at_us;
    int64_t sent_at_us;     /* or EO_NO_TIME */
    const char *properties; /* a JSON object as text (jsonb's output), or NULL for {} */
    const char *context;    /* likewise */
} eo_stored_event_t;

/* Fills rec from a stored event, as eo_record_decode fills it from the record the collector
 * wrote for that event: tenant, type, ids, timestamps (originalTimestamp is not stored:
 * EO_NO_TIME), properties and context, without building the record's JSON text. The event was
 * validated before it was stored, so only the shape is checked here, not the limits. jsonb
 * writes numbers in plain notation: an integer too large for 64 bits (1e20 sent as a real) is
 * read back as a real, with every other integer of that object (the values compare as before;
 * an integer beyond 2^53 next to one loses precision). The strings are copied into rec->root.
 * Returns 0, EO_ENOMEM, or EO_EPARSE with err code "undecodable" and the field naming the
 * column (a tenant that is not a UUID; an empty message id or type; neither user id; text that
 * is not UTF-8; properties or context that are not a JSON object). rec must be released with
 * eo_record_done() in every case. */
int eo_record_from_stored(const eo_stored_event_t *row, eo_record_t *rec,
                          eo_event_error_t *err) EO_MUST_CHECK;

/* True when s (n bytes) is a canonical lower-case UUID. */
int eo_uuid_valid(const char *s, size_t n);

#endif
