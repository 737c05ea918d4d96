/* A fast scanner of the Kafka record of an event (record.h), for the analytics engine: it reads
 * the fields the engine needs in one pass over the bytes, without building a json_t tree and
 * without allocating, and hands properties/context over as raw JSON text, parsed only when a
 * rule reads them (eo_record_from_scan). Pure; the caller owns every struct (no shared state).
 *
 * What it accepts. The records were written and validated by the collector (eo_record_encode),
 * so the scan trusts their limits, not their bytes: on any input it returns without reading past
 * len, without recursion and in time linear in len. It checks:
 *  - the whole input is one JSON object as jansson reads it (RFC 8259 grammar, UTF-8 without
 *    overlongs or surrogates, escapes, no \u0000, leading zeros refused, integers within
 *    int64, nesting at most JSON_PARSER_MAX_DEPTH, only whitespace after it);
 *  - the rules of eo_record_decode for every field it returns: "v":1 (an integer), "tenantId" a
 *    canonical UUID, "receivedAt" and "event"."timestamp" RFC 3339 strings, "originalTimestamp"
 *    and "sentAt" RFC 3339 or null/absent, "messageId" a string, the eventType aliases
 *    "eventType" / "event" / "name" (the first non-null; others non-null must be equal), ids
 *    non-empty, not all blank and without control characters, "userId" / "anonymousId" a string
 *    or an integer (its decimal text, as eo_event_normalize writes it) or null, not both absent,
 *    "properties" (alias "metadata", compared as json_equal) and "context" objects or null;
 *  - keys in any order, spelled with escapes or not; a key it reads given twice -> EO_EPARSE.
 * So every record eo_record_decode accepts scans to the same values (tests/fuzz/
 * fuzz_record_scan.c checks it). The converse does not hold: the scan does not apply
 * eo_event_limits_t (lengths, depth and key count of properties/context, the timestamp window
 * around receivedAt, the record size), does not look for duplicates among keys it skips or
 * inside values it skips. The collector
 * never writes such records; eo_record_from_scan parses properties/context with jansson and
 * refuses what it does.
 *
 * The one allocating path: when both "properties" and "metadata" are non-null objects with
 * different bytes, both are parsed with jansson to compare them (the collector never writes
 * "metadata").
 *
 * A scan's strings point into the record bytes, or into the scan's own storage when they held
 * escapes or were integers: keep both alive and never copy a scan by value. */
#ifndef EO_DOMAIN_RECORD_SCAN_H
#define EO_DOMAIN_RECORD_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "domain/event.h"
#include "domain/json_lex.h"
#include "domain/record.h"

/* Room for the unescaped copies of eventType, messageId, userId and anonymousId: at most the
 * largest limits config.c allows (EVENTOPS_MAX_EVENT_TYPE_BYTES and EVENTOPS_MAX_ID_BYTES,
 * 4096 each), so that no record the collector can write is refused for scratch space. A record
 * whose unescaped strings do not fit is EO_EPARSE. */
#define EO_RECORD_SCAN_SCRATCH (4 * 4096)

typedef struct {
    char tenant_id[37];
    int64_t received_at_us;
    int64_t occurred_at_us;        /* event.timestamp (already corrected by the collector) */
    int64_t original_timestamp_us; /* event.originalTimestamp, or EO_NO_TIME */
    int64_t sent_at_us;            /* event.sentAt, or EO_NO_TIME */
    eo_str_t event_type;           /* never absent after a successful scan */
    eo_str_t user_id;              /* NULL .s when absent (null) */
    eo_str_t anonymous_id;         /* NULL .s when absent (null); not both absent */
    eo_str_t message_id;           /* never absent after a successful scan */
    const char *properties;        /* raw JSON text of the object, or NULL when absent/null */
    size_t properties_len;
    const char *context; /* raw JSON text of the object, or NULL when absent/null */
    size_t context_len;
    char id_text[2][24]; /* decimal text of an integer userId / anonymousId */
    size_t scratch_used;
    char scratch[EO_RECORD_SCAN_SCRATCH]; /* unescaped copies of strings that had escapes */
} eo_record_scan_t;

/* Scans a record value (len bytes, not NUL-terminated) into out (see above for what is
 * checked). Returns 0, or EO_EPARSE for anything eo_record_decode would refuse as undecodable
 * or invalid in a field the scan returns, or EO_ENOMEM (only on the "metadata" path above).
 * out is unspecified after a failure. */
int eo_record_scan(const void *bytes, size_t len, eo_record_scan_t *out) EO_MUST_CHECK;

/* Fills rec from a successful scan, as eo_record_decode would: tenant_id, received_at_us and
 * ev (strings borrowed from s and the record bytes, times, no id_storage used). ev.properties
 * and ev.context are parsed from their raw text (jansson, duplicates refused) only when
 * want_properties / want_context, and are NULL otherwise, as when the record has none: ask for
 * what the rules read. rec->root then owns what was parsed. Returns 0, or EO_EPARSE (the raw
 * text is not JSON jansson accepts) / EO_ENOMEM. rec must be released with eo_record_done() in
 * every case. */
int eo_record_from_scan(const eo_record_scan_t *s, bool want_properties, bool want_context,
                        eo_record_t *rec) EO_MUST_CHECK;

/* eo_record_decode without a tree, for records as the collector writes them: the same checks
 * and limits (whole-record JSON with duplicate keys refused, the record size, every field's
 * rule and length, the timestamp window, the limits inside properties and context), and rec
 * filled as eo_record_decode fills it, except that properties and context are left as their
 * text (ev.properties_text / ev.context_text, NULL .s when absent; ev.properties and ev.context
 * NULL) and rec->root is NULL. Returns 0, EO_ENOMEM, or EO_EPARSE for any record it leaves to
 * eo_record_decode: one that eo_record_decode refuses, and also one whose strings hold escapes
 * or whose properties/context are not in the normal form the collector writes (json_norm.h),
 * so that every string and text borrows from bytes and is stored as eo_record_decode's tree
 * would be. keys, scan and scratch are the caller's (reused between records); keep bytes alive
 * while rec is used. tests/fuzz/fuzz_record_fast.c checks it against eo_record_decode. */
int eo_record_fast_decode(const void *bytes, size_t len, const eo_event_limits_t *lim,
                          eo_json_keys_t *keys, eo_record_scan_t *scan, eo_buf_t *scratch,
                          eo_record_t *rec) EO_MUST_CHECK;

/* Shared with ingest_scan.c: eo_event_normalize's rule for eventType and ids (not empty, not
 * all blank, no control characters, at most max bytes). */
bool eo_scan_usable_text(eo_str_t v, size_t max);

/* An RFC 3339 string (its content, escapes resolved) into *us; null or absent is EO_NO_TIME
 * when optional. 0 or EO_EPARSE. */
int eo_scan_time(const eo_jspan_t *v, bool optional, int64_t *us) EO_MUST_CHECK;

#endif
