/* The bodies other analytics SDKs send, read as EventOps events (issue 15): Segment's HTTP
 * Tracking API (/v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias,
 * /v1/batch, /v1/import) and PostHog's capture API (/batch/, /capture/, /e/, /i/v0/e/).
 *
 * Each message becomes an event object of EventOps's own API (event.h), which the caller then
 * validates with eo_event_normalize and stores like any other event: one set of rules, limits,
 * records and storage for every protocol. The mapping (docs/compat.md):
 *   Segment track      eventType = event, properties
 *           page       eventType "$pageview", properties (+ name, category when given)
 *           screen     eventType "$screen",   properties (+ name, category when given)
 *           identify   eventType "$identify", properties {"$set": traits}
 *           group      eventType "$groupidentify",
 *                      properties {"$group_type": "group", "$group_key": groupId,
 *                                  "$group_set": traits}
 *           alias      eventType "$create_alias", properties {"alias": previousId}
 *     all: messageId, userId, anonymousId, timestamp (else originalTimestamp), sentAt (else the
 *     batch's), context (else the batch's); type, integrations, _metadata, writeKey dropped.
 *   PostHog  eventType = event, userId = distinct_id, messageId = uuid, timestamp (else
 *     received time - offset ms), sentAt = sent_at (else the body's), properties with a
 *     top-level $set / $set_once moved in and token / api_key taken out.
 *
 * Pure. A parsed body owns its JSON tree; the event objects hold references into it. */
#ifndef EO_DOMAIN_COMPAT_H
#define EO_DOMAIN_COMPAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "domain/event.h"
#include "domain/ingest_scan.h"
#include "domain/json_lex.h"

typedef enum {
    EO_COMPAT_TRACK, /* Segment's single-message routes: the route says the type */
    EO_COMPAT_IDENTIFY,
    EO_COMPAT_PAGE,
    EO_COMPAT_SCREEN,
    EO_COMPAT_GROUP,
    EO_COMPAT_ALIAS,
    EO_COMPAT_SEGMENT_BATCH, /* /v1/batch, /v1/import: {"batch": [...]}, each message typed */
    EO_COMPAT_POSTHOG,       /* one event, an array of events, or {"batch": [...]} */
} eo_compat_kind_t;

typedef struct {
    eo_compat_kind_t kind;
    const eo_event_limits_t *lim; /* borrowed: the limits it was parsed with */
    json_t *root;                 /* owned: release with eo_compat_done() */
    json_t *messages;             /* borrowed: the array of messages, or the single message */
    size_t count;
    bool single;
    eo_str_t key;    /* the write key the body carries (writeKey, api_key, token); .s NULL */
    json_t *sent_at; /* borrowed: the body's sentAt / sent_at, or NULL */
    json_t *context; /* borrowed: Segment's body-level context, or NULL */
} eo_compat_body_t;

/* Parses body (len bytes, not NUL-terminated) strictly (UTF-8, no NUL, no duplicate keys) as
 * kind. Returns 0, or EO_EPARSE / EO_EINVAL / EO_ELIMIT (more than max_batch_events messages)
 * with err naming the problem; a refused body owns nothing. */
int eo_compat_parse(const char *body, size_t len, eo_compat_kind_t kind,
                    const eo_event_limits_t *lim, eo_compat_body_t *out,
                    eo_event_error_t *err) EO_MUST_CHECK;

/* Message i as an event object for eo_event_normalize: *out is a new reference (release it),
 * *message_id the message's id when it has a string one (for a refusal's report; borrowed).
 * Returns 0, EO_EINVAL with err naming the problem in the SDK's words, or EO_ENOMEM. */
int eo_compat_event(const eo_compat_body_t *b, size_t i, int64_t received_at_us, json_t **out,
                    eo_str_t *message_id, eo_event_error_t *err) EO_MUST_CHECK;

/* Renames err->field from EventOps's name to the SDK's (PostHog: userId -> distinct_id,
 * messageId -> uuid, sentAt -> sent_at), for refusals of eo_event_normalize. */
void eo_compat_name_field(eo_compat_kind_t kind, eo_event_error_t *err);

void eo_compat_done(eo_compat_body_t *b);

/* ---- Messages without a tree ----
 * A Segment track message is an EventOps event but for a few members, and a PostHog event one
 * whose members have other names, so the ingest scan (ingest_scan.h) can read them where they
 * lie: when eo_compat_scan_takes says that nothing in one reads differently,
 * eo_event_scan_as (with the form's names) and eo_compat_scan_defaults give exactly the event
 * eo_compat_event + eo_event_normalize give (tests/fuzz/fuzz_compat.c checks the records are
 * equal byte for byte). Anything else goes the jansson way above. */

/* The body-level members of a scanned body. */
typedef struct {
    eo_compat_kind_t kind;
    const eo_scan_names_t *names; /* the messages' member names, for eo_event_scan_as */
    bool single;                  /* the body is one message */
    eo_jspan_t write_key; /* writeKey / api_key / token: a string, or EO_JV_NONE (absent, null) */
    eo_jspan_t sent_at;   /* a batch's sentAt (sent_at) and context, or EO_JV_NONE */
    eo_jspan_t context;
} eo_compat_scan_t;

/* Lists the messages of body for kind EO_COMPAT_TRACK, EO_COMPAT_SEGMENT_BATCH or
 * EO_COMPAT_POSTHOG into scan (as eo_body_scan does) and reads its body-level members. Returns
 * 0, EO_EPARSE for anything the caller must ask eo_compat_parse about (another kind, a body it
 * refuses, a key that is not a string), or EO_ENOMEM. */
int eo_compat_scan(const char *body, size_t len, eo_compat_kind_t kind,
                   const eo_event_limits_t *lim, eo_json_keys_t *keys, eo_body_scan_t *scan,
                   eo_compat_scan_t *out) EO_MUST_CHECK;

/* True when the message ev (read by eo_event_scan_as with info->names) reads the same as its
 * eo_compat_event object reads to eo_event_normalize, once eo_compat_scan_defaults gave it the
 * batch's stand-ins. Segment: a track message ("type" "track" in a batch) without members that
 * are aliases only in EventOps's API (eventType, name, metadata), with its own timestamp when it
 * has an originalTimestamp. PostHog: an event without a top-level $set / $set_once, without a
 * key of its own (api_key, token, properties.token / api_key), and with its own timestamp when it
 * has an offset (its distinct_id is its own: the scan reads no other). */
bool eo_compat_scan_takes(const eo_compat_scan_t *info, const eo_event_scan_t *ev);

/* Gives a message that eo_event_scan_as read what the batch gives the messages without their
 * own: its sentAt (with the clock-skew correction that comes with it) and its context. Returns
 * 0, or EO_EINVAL when the message must go the jansson way (the batch's sentAt is not a time or
 * the corrected timestamp is out of range; the batch's context is not an object). */
int eo_compat_scan_defaults(const eo_compat_scan_t *info, const eo_event_limits_t *lim,
                            int64_t received_at_us, eo_event_scan_t *ev) EO_MUST_CHECK;

#endif
