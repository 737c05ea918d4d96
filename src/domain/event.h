/* The event model: validation and normalisation of one event object received from a client
 * (or decoded again from Kafka by the processor). Pure: time comes in as received_at_us.
 *
 * A normalised event borrows its strings from the json_t it came from: keep the json_t alive
 * while the eo_event_t is used. */
#ifndef EO_DOMAIN_EVENT_H
#define EO_DOMAIN_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/error.h"

#define EO_NO_TIME INT64_MIN

/* Every quantity an outsider controls in an event has a limit here. */
typedef struct {
    size_t max_event_bytes;      /* the normalised event, encoded */
    size_t max_batch_events;     /* events per batch */
    size_t max_depth;            /* nesting of objects/arrays inside properties or context */
    size_t max_properties;       /* top-level keys of properties, and of context */
    size_t max_string_bytes;     /* any key or string value inside properties/context */
    size_t max_id_bytes;         /* userId, anonymousId, messageId */
    size_t max_event_type_bytes; /* eventType */
    int64_t max_future_us;       /* corrected timestamp at most received_at + this */
    int64_t max_past_us;         /* corrected timestamp at least received_at - this */
} eo_event_limits_t;

/* Defaults as documented in the README (the same as config.c). */
void eo_event_limits_default(eo_event_limits_t *lim);

/* The limits configured by EVENTOPS_MAX_* (collector and processor apply the same ones). */
void eo_event_limits_from_config(eo_event_limits_t *lim, const eo_config_t *cfg);

/* A validation failure: a stable machine code, the offending field and a sentence. */
typedef struct {
    char code[40];
    char field[48];
    char message[200];
} eo_event_error_t;

typedef struct {
    const char *s; /* not NUL-terminated in general; NULL when absent */
    size_t len;
} eo_str_t;

/* Bytewise order of two strings (a prefix first); <0, 0 or >0. */
int eo_str_cmp(eo_str_t a, eo_str_t b);

typedef struct {
    eo_str_t event_type;
    eo_str_t user_id;              /* may be absent, but not together with anonymous_id */
    eo_str_t anonymous_id;         /* may be absent */
    eo_str_t message_id;           /* absent when the client sent none (caller assigns one) */
    int64_t occurred_at_us;        /* timestamp, corrected for clock skew */
    int64_t original_timestamp_us; /* as the client sent it, or EO_NO_TIME */
    int64_t sent_at_us;            /* or EO_NO_TIME */
    json_t *properties;            /* borrowed object, or NULL for {} */
    json_t *context;               /* borrowed object, or NULL for {} */
    eo_str_t properties_text;      /* instead of properties (NULL): its normal-form JSON text */
    eo_str_t context_text;         /* instead of context (NULL): likewise (record_scan.h) */
    char id_storage[2][24];        /* decimal text of integer userId / anonymousId */
} eo_event_t; /* user_id and anonymous_id may point into id_storage: never copy a normalised
               * event by value (fill it where it stays; a copy's ids would dangle) */

/* Flags of eo_event_normalize. */
enum {
    /* obj is the "event" member of a Kafka record written by eo_event_encode: "timestamp" is
     * already corrected (required, no second correction), "originalTimestamp" is read, and
     * "messageId" is required. The same rules and limits apply otherwise. */
    EO_EVENT_FROM_RECORD = 1,
};

/* Validates one event object and fills ev. Returns 0, or EO_EINVAL with err filled. */
int eo_event_normalize(json_t *obj, const eo_event_limits_t *lim, int64_t received_at_us,
                       unsigned flags, eo_event_t *ev, eo_event_error_t *err) EO_MUST_CHECK;

/* Sets err (printf-style message). Used by every validator of outside input. */
void eo_event_error_set(eo_event_error_t *err, const char *code, const char *field, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

/* Appends the normalised event as a JSON object (the "event" member of a Kafka record):
 * {"messageId","eventType","userId","anonymousId","timestamp","originalTimestamp","sentAt",
 *  "properties","context"}. message_id overrides ev->message_id when ev has none. */
int eo_event_encode(const eo_event_t *ev, eo_str_t message_id, eo_buf_t *out) EO_MUST_CHECK;

#endif
