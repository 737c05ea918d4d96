/* libFuzzer harness of the Segment and PostHog bodies (domain/compat.h): body -> eo_compat_parse
 * -> eo_compat_event per message -> eo_event_normalize -> eo_record_encode -> eo_record_decode.
 * Input: byte 0 chooses the kind (its value modulo 8, in eo_compat_kind_t's order), the rest is
 * the body. Invariants checked (abort on violation), beyond "no crash, no leak":
 *  - every refusal carries an error code; a refused body owns nothing and yields no event;
 *  - an accepted body holds 1 to max_batch_events messages, and a key it carries is a string;
 *  - an event object holds only members of EventOps's event API;
 *  - a Segment message of a typed route becomes the event type that route names, and a PostHog
 *    one has its distinct_id as userId;
 *  - an event that eo_event_normalize accepts and that fits max_event_bytes encodes to a record
 *    that decodes again with the same type and ids;
 *  - differential, for Segment's track and batch bodies and PostHog's: a body eo_compat_scan
 *    lists is one
 *    eo_compat_parse accepts, with the same messages and write key, and every message that
 *    the ingest scan accepts, eo_compat_scan_takes takes and eo_compat_scan_defaults completes
 *    has byte for byte the record
 *    the jansson way (eo_compat_event, eo_event_normalize, eo_record_encode) writes. */

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/compat.h"
#include "domain/event.h"
#include "domain/ingest_scan.h"
#include "domain/record.h"
#include "fuzz_check.h"

#define TENANT "0190a5b6-1234-7abc-8def-0123456789ab"
#define ASSIGNED_ID "0190a5b6-0000-7000-8000-000000000001"
#define RECEIVED_AT INT64_C(1704067200123456) /* 2024-01-01T00:00:00.123456Z */

static bool api_member(const char *key)
{
    static const char *const names[] = {"messageId", "userId", "anonymousId", "timestamp", "sentAt",
                                        "context",   "event",  "eventType",   "properties"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(key, names[i]) == 0)
            return true;
    return false;
}

/* The event type a typed Segment route gives, or NULL (track, batches, PostHog). */
static const char *fixed_type(eo_compat_kind_t kind)
{
    switch (kind) {
    case EO_COMPAT_IDENTIFY:
        return "$identify";
    case EO_COMPAT_PAGE:
        return "$pageview";
    case EO_COMPAT_SCREEN:
        return "$screen";
    case EO_COMPAT_GROUP:
        return "$groupidentify";
    case EO_COMPAT_ALIAS:
        return "$create_alias";
    default:
        return NULL;
    }
}

static void check_record(const eo_event_t *ev, const eo_event_limits_t *lim)
{
    eo_str_t assigned = {ASSIGNED_ID, sizeof ASSIGNED_ID - 1};
    eo_str_t mid = ev->message_id.s ? ev->message_id : assigned;
    eo_event_error_t err;
    eo_buf_t value;
    eo_buf_init(&value, lim->max_event_bytes + EO_RECORD_ENVELOPE_MAX);
    int r = eo_record_encode(TENANT, RECEIVED_AT, ev, assigned, lim, &value, &err);
    if (r == EO_ELIMIT) {
        CHECK(strcmp(err.code, "too_large") == 0, "code %s", err.code);
        eo_buf_done(&value);
        return;
    }
    CHECK(r == 0, "eo_record_encode: %d", r);
    eo_record_t rec;
    r = eo_record_decode(value.data, value.len, lim, &rec, &err);
    CHECK(r == 0, "record does not decode (%s: %s): %s", err.code, err.message, value.data);
    CHECK(same_str(rec.ev.message_id, mid), "messageId changed: %s", value.data);
    CHECK(same_str(rec.ev.event_type, ev->event_type), "eventType changed: %s", value.data);
    CHECK(same_str(rec.ev.user_id, ev->user_id), "userId changed: %s", value.data);
    CHECK(same_str(rec.ev.anonymous_id, ev->anonymous_id), "anonymousId changed: %s", value.data);
    CHECK(same_object(rec.ev.properties, ev->properties), "properties changed: %s", value.data);
    eo_record_done(&rec);
    eo_buf_done(&value);
}

static void check_event(eo_compat_kind_t kind, json_t *obj, const eo_event_limits_t *lim)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        CHECK(api_member(key), "member '%s' is not of the event API", key);
    }
    eo_event_t ev;
    eo_event_error_t err;
    memset(&err, 0, sizeof err);
    int r = eo_event_normalize(obj, lim, RECEIVED_AT, 0, &ev, &err);
    if (r < 0) {
        CHECK(r == EO_EINVAL && err.code[0] != '\0', "normalize: %d without a code", r);
        return;
    }
    const char *type = fixed_type(kind);
    CHECK(!type || (ev.event_type.len == strlen(type) &&
                    memcmp(ev.event_type.s, type, ev.event_type.len) == 0),
          "event type %.*s for a %s message", (int)ev.event_type.len, ev.event_type.s, type);
    CHECK(kind != EO_COMPAT_POSTHOG || ev.user_id.s, "a PostHog event without userId");
    check_record(&ev, lim);
}

/* The record of message i the jansson way, into out; false when that way refuses it. */
static bool jansson_record(const eo_compat_body_t *b, size_t i, const eo_event_limits_t *lim,
                           eo_buf_t *out)
{
    json_t *obj;
    eo_str_t mid;
    eo_event_error_t err;
    if (eo_compat_event(b, i, RECEIVED_AT, &obj, &mid, &err) < 0)
        return false;
    eo_event_t ev;
    bool ok = eo_event_normalize(obj, lim, RECEIVED_AT, 0, &ev, &err) == 0;
    eo_str_t assigned = {ASSIGNED_ID, sizeof ASSIGNED_ID - 1};
    ok = ok && eo_record_encode(TENANT, RECEIVED_AT, &ev, assigned, lim, out, &err) == 0;
    json_decref(obj);
    return ok;
}

/* The scan of Segment bodies against the jansson way (see the opening comment). */
static void check_scan(eo_compat_kind_t kind, const char *body, size_t len,
                       const eo_event_limits_t *lim)
{
    eo_json_keys_t keys;
    eo_body_scan_t scan;
    eo_compat_scan_t info;
    eo_json_keys_init(&keys);
    eo_body_scan_init(&scan);
    int r = eo_compat_scan(body, len, kind, lim, &keys, &scan, &info);
    CHECK(r == 0 || r == EO_EPARSE || r == EO_ENOMEM, "eo_compat_scan: %d", r);
    if (r == 0) {
        eo_compat_body_t b;
        eo_event_error_t err;
        r = eo_compat_parse(body, len, kind, lim, &b, &err);
        CHECK(r == 0, "scanned, but eo_compat_parse refuses: %s %s", err.code, err.message);
        CHECK(b.count == scan.count, "%zu messages scanned, %zu parsed", scan.count, b.count);
        if (info.write_key.kind == EO_JV_STRING && !info.write_key.esc)
            CHECK(b.key.s && b.key.len == info.write_key.len &&
                      memcmp(b.key.s, info.write_key.s, b.key.len) == 0,
                  "write keys differ");
        else if (info.write_key.kind == EO_JV_NONE && kind != EO_COMPAT_POSTHOG)
            CHECK(!b.key.s, "a write key only the parse found"); /* PostHog: also the events' */
        CHECK(info.single == b.single, "single %d, parsed single %d", info.single, b.single);
        eo_event_scan_t *ev = malloc(sizeof *ev);
        CHECK(ev != NULL, "out of memory");
        eo_buf_t scanned, expected;
        eo_str_t assigned = {ASSIGNED_ID, sizeof ASSIGNED_ID - 1};
        for (size_t i = 0; i < scan.count; i++) {
            if (eo_event_scan_as(&scan.items[i], info.names, lim, RECEIVED_AT, ev) != 0 ||
                !eo_compat_scan_takes(&info, ev) ||
                eo_compat_scan_defaults(&info, lim, RECEIVED_AT, ev) != 0)
                continue;
            eo_buf_init(&scanned, lim->max_event_bytes + EO_RECORD_ENVELOPE_MAX);
            eo_buf_init(&expected, lim->max_event_bytes + EO_RECORD_ENVELOPE_MAX);
            if (eo_event_scan_record(TENANT, RECEIVED_AT, ev, assigned, lim, &scanned) == 0) {
                bool ok = jansson_record(&b, i, lim, &expected);
                CHECK(ok, "message %zu: scanned, but the jansson way refuses it", i);
                CHECK(scanned.len == expected.len &&
                          memcmp(scanned.data, expected.data, scanned.len) == 0,
                      "message %zu: records differ:\n scan    %.*s\n jansson %.*s", i,
                      (int)scanned.len, scanned.data, (int)expected.len, expected.data);
            }
            eo_buf_done(&scanned);
            eo_buf_done(&expected);
        }
        free(ev);
        eo_compat_done(&b);
    }
    eo_body_scan_done(&scan);
    eo_json_keys_done(&keys);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    eo_compat_kind_t kind = (eo_compat_kind_t)(data[0] % 8);
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    lim.max_batch_events = 64;
    if (kind == EO_COMPAT_TRACK || kind == EO_COMPAT_SEGMENT_BATCH || kind == EO_COMPAT_POSTHOG)
        check_scan(kind, (const char *)data + 1, size - 1, &lim);
    eo_compat_body_t b;
    eo_event_error_t err;
    memset(&err, 0, sizeof err);
    int r = eo_compat_parse((const char *)data + 1, size - 1, kind, &lim, &b, &err);
    if (r < 0) {
        CHECK(r == EO_EPARSE || r == EO_EINVAL || r == EO_ELIMIT, "eo_compat_parse: %d", r);
        CHECK(err.code[0] != '\0', "refusal without a code");
        CHECK(b.root == NULL && b.count == 0, "refused body still owns JSON");
        eo_compat_done(&b);
        return 0;
    }
    CHECK(b.count >= 1 && b.count <= lim.max_batch_events, "count %zu", b.count);
    CHECK(!b.key.s || b.key.len == strlen(b.key.s), "key with a NUL");
    for (size_t i = 0; i < b.count; i++) {
        json_t *obj = NULL;
        eo_str_t mid;
        memset(&err, 0, sizeof err);
        r = eo_compat_event(&b, i, RECEIVED_AT, &obj, &mid, &err);
        if (r < 0) {
            CHECK(r == EO_EINVAL && err.code[0] != '\0', "eo_compat_event: %d (%s)", r, err.code);
            CHECK(obj == NULL, "a refused message with an event");
            continue;
        }
        CHECK(json_is_object(obj), "no event object");
        check_event(kind, obj, &lim);
        json_decref(obj);
    }
    eo_compat_done(&b);
    return 0;
}
