/* The ingest path without a tree: a request body (batch.h's shapes) is checked once as jansson
 * would parse it, its events are read where they lie, and each accepted event's Kafka record
 * (record.h) is written straight into the caller's buffer, byte for byte what
 * eo_batch_parse + eo_event_normalize + eo_record_encode write for it.
 *
 * The scan decides only "accepted, and here is the record". Anything else (a body or an event
 * it refuses, a limit, a record too large) sends the caller to the jansson path for that body
 * or that event, which gives the answer and the error that names the problem: so errors stay
 * exactly as they were, and a scan stricter than jansson costs speed, never a wrong answer.
 * tests/fuzz/fuzz_ingest_scan.c checks that whatever the scan accepts, the jansson path accepts
 * with the same record.
 *
 * Pure. A scan borrows the body: keep it alive. */
#ifndef EO_DOMAIN_INGEST_SCAN_H
#define EO_DOMAIN_INGEST_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "domain/event.h"
#include "domain/json_lex.h"

/* How many extra members an event form may name (eo_scan_names_t). */
#define EO_SCAN_EXTRA 5

/* The events of a body. */
typedef struct {
    eo_jspan_t *items; /* each event's text (any kind of value); grown and kept between bodies */
    size_t count, cap;
} eo_body_scan_t;

void eo_body_scan_init(eo_body_scan_t *b);
void eo_body_scan_done(eo_body_scan_t *b);

/* Checks body (len bytes) as eo_batch_parse does and lists its events. Returns 0 when
 * eo_batch_parse accepts it (1 to max_batch_events events), EO_EPARSE for anything the caller
 * must ask eo_batch_parse about, or EO_ENOMEM. keys: the caller's scratch. */
int eo_body_scan(const char *body, size_t len, bool single, const eo_event_limits_t *lim,
                 eo_json_keys_t *keys, eo_body_scan_t *b) EO_MUST_CHECK;

/* eo_body_scan of a body eo_json_check already accepted, whose root value is checked. */
int eo_body_list(const eo_jspan_t *checked, bool single, const eo_event_limits_t *lim,
                 eo_body_scan_t *b) EO_MUST_CHECK;

/* Lists the elements of the checked array at c->p (its '[') into b, as eo_body_scan lists a
 * batch's, and leaves c after its ']'. 0, EO_EPARSE (empty, or more than max_batch_events
 * elements) or EO_ENOMEM. */
int eo_body_list_at(eo_jcur_t *c, const eo_event_limits_t *lim, eo_body_scan_t *b) EO_MUST_CHECK;

/* Room for unescaped copies of messageId, eventType and the ids at the largest limits config.c
 * allows (4096 each). */
#define EO_EVENT_SCAN_SCRATCH (4 * 4096)

/* One event, as eo_event_normalize would fill eo_event_t from it. */
typedef struct {
    eo_str_t message_id;   /* NULL .s when the client sent none */
    eo_str_t event_type;   /* from eventType, event or name */
    eo_str_t user_id;      /* NULL .s when absent */
    eo_str_t anonymous_id; /* NULL .s when absent */
    int64_t occurred_at_us, original_timestamp_us, sent_at_us;
    eo_jspan_t properties;           /* an object, or kind EO_JV_NONE */
    eo_jspan_t context;              /* an object, or kind EO_JV_NONE */
    eo_jspan_t extra[EO_SCAN_EXTRA]; /* the names' extra members (a scalar, or a container's
                                      * text as EO_JV_OBJECT / EO_JV_ARRAY; EO_JV_NONE: absent) */
    char id_text[2][24];
    size_t scratch_used;
    char scratch[EO_EVENT_SCAN_SCRATCH];
} eo_event_scan_t;

/* Reads event item (one of a scan's items) as eo_event_normalize(flags 0) with the same
 * received_at_us. Returns 0 when it accepts it (but for the limits inside properties and
 * context, which eo_event_scan_record checks), or EO_EINVAL for anything the caller must ask
 * eo_event_normalize about. The strings point into the body or into ev. */
int eo_event_scan(const eo_jspan_t *item, const eo_event_limits_t *lim, int64_t received_at_us,
                  eo_event_scan_t *ev) EO_MUST_CHECK;

/* The member names eo_event_scan reads, by role: messageId, eventType and its aliases event and
 * name, userId, anonymousId, timestamp, sentAt, properties and its alias metadata, context
 * (in this order; NULL: a member this form has not). Another API's form of an event names them
 * differently (PostHog's: uuid, event, distinct_id, sent_at; compat.h). extra: members the scan
 * does not read but whose values it reports (eo_event_scan_t.extra), so that a caller can tell
 * whether the event reads the same in its form without a second pass. */
typedef struct {
    struct {
        const char *s; /* NULL: absent */
        size_t len;
    } name[11], extra[EO_SCAN_EXTRA];
} eo_scan_names_t;
#define EO_SCAN_NAME(text)                                                                         \
    {                                                                                              \
        text, sizeof text - 1                                                                      \
    }
#define EO_SCAN_NO_NAME                                                                            \
    {                                                                                              \
        NULL, 0                                                                                    \
    }

/* EventOps's own names, which eo_event_scan reads. */
const eo_scan_names_t *eo_scan_names_eventops(void);

/* eo_event_scan for an event whose members are named by names; the same rules otherwise. */
int eo_event_scan_as(const eo_jspan_t *item, const eo_scan_names_t *names,
                     const eo_event_limits_t *lim, int64_t received_at_us,
                     eo_event_scan_t *ev) EO_MUST_CHECK;

/* Appends the Kafka record of ev to out, as eo_record_encode(tenant_id, received_at_us, ...,
 * message_id, ...) does. Returns 0; EO_EINVAL (a limit inside properties or context) or
 * EO_ELIMIT (larger than max_event_bytes, or out is full): ask the jansson path; EO_ENOMEM.
 * On failure out holds a partial record: truncate it. */
int eo_event_scan_record(const char *tenant_id, int64_t received_at_us, const eo_event_scan_t *ev,
                         eo_str_t message_id, const eo_event_limits_t *lim,
                         eo_buf_t *out) EO_MUST_CHECK;

/* Fills the fields of an eo_event_t that eo_record_key reads (the user and anonymous ids). */
void eo_event_scan_ids(const eo_event_scan_t *ev, eo_event_t *out);

#endif
