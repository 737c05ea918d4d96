/* libFuzzer harness of eo_record_decode on raw bytes: what the processor reads from Kafka.
 * Invariants checked (abort on violation), beyond "no crash, no leak":
 *  - a refusal is EO_EPARSE with code "undecodable", or EO_EINVAL with a validation code;
 *  - an accepted record has a canonical tenant id, a messageId and an in-window timestamp;
 *  - re-encoding an accepted record (when it fits max_event_bytes) decodes to the same values,
 *    so a record the processor accepts is never changed by passing through the encoder. */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/event.h"
#include "domain/record.h"
#include "fuzz_check.h"

static void check_reencode(const eo_record_t *rec, const eo_event_limits_t *lim)
{
    eo_event_error_t err;
    eo_buf_t value;
    eo_buf_init(&value, lim->max_event_bytes + EO_RECORD_ENVELOPE_MAX);
    int r = eo_record_encode(rec->tenant_id, rec->received_at_us, &rec->ev, (eo_str_t){NULL, 0},
                             lim, &value, &err);
    if (r == EO_ELIMIT) { /* the decoder allows the envelope's slack; null members add bytes */
        CHECK(strcmp(err.code, "too_large") == 0, "code %s", err.code);
        eo_buf_done(&value);
        return;
    }
    CHECK(r == 0, "eo_record_encode: %d", r);
    eo_record_t again;
    r = eo_record_decode(value.data, value.len, lim, &again, &err);
    CHECK(r == 0, "re-encoded record does not decode (%d %s %s: %s): %s", r, err.code, err.field,
          err.message, value.data);
    const eo_event_t *a = &rec->ev, *b = &again.ev;
    CHECK(strcmp(again.tenant_id, rec->tenant_id) == 0, "tenant changed");
    CHECK(again.received_at_us == rec->received_at_us, "receivedAt changed: %s", value.data);
    CHECK(same_str(a->message_id, b->message_id), "messageId changed: %s", value.data);
    CHECK(same_str(a->event_type, b->event_type), "eventType changed: %s", value.data);
    CHECK(same_str(a->user_id, b->user_id), "userId changed: %s", value.data);
    CHECK(same_str(a->anonymous_id, b->anonymous_id), "anonymousId changed: %s", value.data);
    CHECK(a->occurred_at_us == b->occurred_at_us, "timestamp changed: %s", value.data);
    CHECK(a->original_timestamp_us == b->original_timestamp_us, "originalTimestamp changed: %s",
          value.data);
    CHECK(a->sent_at_us == b->sent_at_us, "sentAt changed: %s", value.data);
    CHECK(same_object(a->properties, b->properties), "properties changed: %s", value.data);
    CHECK(same_object(a->context, b->context), "context changed: %s", value.data);
    eo_record_done(&again);
    eo_buf_done(&value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    eo_record_t rec;
    eo_event_error_t err;
    memset(&err, 0, sizeof err);
    int r = eo_record_decode(data, size, &lim, &rec, &err);
    if (r == EO_EPARSE) {
        CHECK(strcmp(err.code, "undecodable") == 0, "EO_EPARSE with code %s", err.code);
    } else if (r == EO_EINVAL) {
        CHECK(err.code[0] != '\0' && strcmp(err.code, "undecodable") != 0, "EO_EINVAL code %s",
              err.code);
    } else {
        CHECK(r == 0, "eo_record_decode: %d", r);
        CHECK(eo_uuid_valid(rec.tenant_id, strlen(rec.tenant_id)), "tenant %s", rec.tenant_id);
        CHECK(rec.ev.message_id.s && rec.ev.message_id.len <= lim.max_id_bytes, "messageId");
        CHECK(rec.ev.event_type.s && rec.ev.event_type.len <= lim.max_event_type_bytes,
              "eventType");
        CHECK(rec.ev.user_id.s || rec.ev.anonymous_id.s, "no user id");
        CHECK(rec.ev.occurred_at_us <= rec.received_at_us + lim.max_future_us &&
                  rec.ev.occurred_at_us >= rec.received_at_us - lim.max_past_us,
              "timestamp out of window");
        check_reencode(&rec, &lim);
    }
    eo_record_done(&rec);
    return 0;
}
