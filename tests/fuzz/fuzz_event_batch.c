/* libFuzzer harness of the ingest path: request body -> eo_batch_parse -> eo_event_normalize
 * -> eo_record_encode -> eo_record_decode (what the processor reads back).
 * Input: byte 0 chooses the mode (bit 0 set: single event, else batch), the rest is the body.
 * Invariants checked (abort on violation), beyond "no crash, no leak":
 *  - every refusal carries an error code, and a refused batch owns nothing;
 *  - an accepted event respects the limits it was validated against;
 *  - an accepted event that fits max_event_bytes encodes to a record that decodes again, with
 *    the same tenant, messageId, eventType, ids, times, properties and context. */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/batch.h"
#include "domain/event.h"
#include "domain/record.h"
#include "fuzz_check.h"

#define TENANT "0190a5b6-1234-7abc-8def-0123456789ab"
#define ASSIGNED_ID "0190a5b6-0000-7000-8000-000000000001"
#define RECEIVED_AT INT64_C(1704067200123456) /* 2024-01-01T00:00:00.123456Z */

static void check_limits(const eo_event_t *ev, const eo_event_limits_t *lim)
{
    CHECK(ev->event_type.s && ev->event_type.len > 0 &&
              ev->event_type.len <= lim->max_event_type_bytes,
          "eventType length %zu", ev->event_type.len);
    CHECK(ev->user_id.s || ev->anonymous_id.s, "no user id");
    CHECK(!ev->message_id.s || ev->message_id.len <= lim->max_id_bytes, "messageId length %zu",
          ev->message_id.len);
    CHECK(ev->occurred_at_us <= RECEIVED_AT + lim->max_future_us &&
              ev->occurred_at_us >= RECEIVED_AT - lim->max_past_us,
          "occurred_at %lld", (long long)ev->occurred_at_us);
    CHECK(!ev->properties || json_is_object(ev->properties), "properties not an object");
    CHECK(!ev->context || json_is_object(ev->context), "context not an object");
}

static void check_record(const eo_event_t *ev, const eo_event_limits_t *lim)
{
    eo_str_t assigned = {ASSIGNED_ID, sizeof ASSIGNED_ID - 1};
    eo_str_t mid = ev->message_id.s ? ev->message_id : assigned;
    eo_event_error_t err;
    eo_buf_t value, key;
    eo_buf_init(&value, lim->max_event_bytes + EO_RECORD_ENVELOPE_MAX);
    eo_buf_init(&key, 4096);

    int r = eo_record_encode(TENANT, RECEIVED_AT, ev, assigned, lim, &value, &err);
    if (r == EO_ELIMIT) {
        CHECK(strcmp(err.code, "too_large") == 0, "code %s", err.code);
        goto done;
    }
    CHECK(r == 0, "eo_record_encode: %d", r);
    CHECK(value.len <= lim->max_event_bytes + EO_RECORD_ENVELOPE_MAX, "record of %zu bytes",
          value.len);
    CHECK(eo_record_key(TENANT, ev, &key) == 0, "eo_record_key");
    CHECK(key.len > 37 && memcmp(key.data, TENANT ":", 37) == 0, "key %s", key.data);

    eo_record_t rec;
    r = eo_record_decode(value.data, value.len, lim, &rec, &err);
    CHECK(r == 0, "record does not decode (%d %s %s: %s): %s", r, err.code, err.field, err.message,
          value.data);
    CHECK(strcmp(rec.tenant_id, TENANT) == 0, "tenant %s", rec.tenant_id);
    CHECK(rec.received_at_us == RECEIVED_AT, "receivedAt %lld", (long long)rec.received_at_us);
    CHECK(same_str(rec.ev.message_id, mid), "messageId changed: %s", value.data);
    CHECK(same_str(rec.ev.event_type, ev->event_type), "eventType changed: %s", value.data);
    CHECK(same_str(rec.ev.user_id, ev->user_id), "userId changed: %s", value.data);
    CHECK(same_str(rec.ev.anonymous_id, ev->anonymous_id), "anonymousId changed: %s", value.data);
    CHECK(rec.ev.occurred_at_us == ev->occurred_at_us, "timestamp changed: %s", value.data);
    CHECK(rec.ev.original_timestamp_us == ev->original_timestamp_us,
          "originalTimestamp changed: %s", value.data);
    CHECK(rec.ev.sent_at_us == ev->sent_at_us, "sentAt changed: %s", value.data);
    CHECK(same_object(rec.ev.properties, ev->properties), "properties changed: %s", value.data);
    CHECK(same_object(rec.ev.context, ev->context), "context changed: %s", value.data);
    eo_record_done(&rec);
done:
    eo_buf_done(&value);
    eo_buf_done(&key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const bool single = data[0] & 1;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);

    eo_batch_t batch;
    eo_event_error_t err;
    memset(&err, 0, sizeof err);
    int r = eo_batch_parse((const char *)data + 1, size - 1, single, &lim, &batch, &err);
    if (r < 0) {
        CHECK(r == EO_EPARSE || r == EO_EINVAL || r == EO_ELIMIT, "eo_batch_parse: %d", r);
        CHECK(err.code[0] != '\0', "refusal without a code");
        CHECK(batch.root == NULL && batch.count == 0, "refused batch still owns JSON");
        eo_batch_done(&batch);
        return 0;
    }
    CHECK(batch.count >= 1 && batch.count <= lim.max_batch_events, "count %zu", batch.count);
    CHECK(!single || batch.count == 1, "single with count %zu", batch.count);

    for (size_t i = 0; i < batch.count; i++) {
        json_t *item = eo_batch_item(&batch, i);
        CHECK(item != NULL, "item %zu missing", i);
        eo_event_t ev;
        memset(&err, 0, sizeof err);
        r = eo_event_normalize(item, &lim, RECEIVED_AT, 0, &ev, &err);
        if (r < 0) {
            CHECK(r == EO_EINVAL, "eo_event_normalize: %d", r);
            CHECK(err.code[0] != '\0', "refusal without a code");
            continue;
        }
        check_limits(&ev, &lim);
        check_record(&ev, &lim);
    }
    eo_batch_done(&batch);
    return 0;
}
