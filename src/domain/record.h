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

/* True when s (n bytes) is a canonical lower-case UUID. */
int eo_uuid_valid(const char *s, size_t n);

#endif
