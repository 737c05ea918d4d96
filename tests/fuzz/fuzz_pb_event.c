/* libFuzzer harness of gRPC ingest's conversion (domain/pb_event.h): bytes -> SendBatchRequest
 * (protobuf-c) -> eo_pb_event_json per event -> eo_event_normalize -> eo_record_encode ->
 * eo_record_decode. Invariants checked (abort on violation), beyond "no crash, no leak":
 *  - a refusal carries an error code and names properties or context for invalid_json;
 *  - a converted event is a JSON object holding only members of the event API;
 *  - an event eo_event_normalize accepts encodes to a record that decodes with the same type;
 *  - a SendResponse built from the accepted ids packs and unpacks with the same ids. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/event.h"
#include "domain/pb_event.h"
#include "domain/record.h"
#include "fuzz_check.h"

#define TENANT "0190a5b6-1234-7abc-8def-0123456789ab"
#define RECEIVED_AT INT64_C(1704067200123456)

static bool api_member(const char *key)
{
    static const char *const names[] = {"messageId", "userId",  "anonymousId", "timestamp",
                                        "sentAt",    "context", "eventType",   "properties"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(key, names[i]) == 0)
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Eventops__V1__SendBatchRequest *req =
        eventops__v1__send_batch_request__unpack(NULL, size, data);
    if (!req)
        return 0;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    eo_buf_t ids;
    eo_buf_init(&ids, (size_t)1 << 24);
    size_t accepted = 0;
    for (size_t i = 0; i < req->n_events && i < 64; i++) {
        json_t *obj;
        eo_event_error_t err;
        int r = eo_pb_event_json(req->events[i], &obj, &err);
        if (r == EO_EINVAL) {
            CHECK(err.code[0], "a refusal without a code");
            if (!strcmp(err.code, "invalid_json"))
                CHECK(!strcmp(err.field, "properties") || !strcmp(err.field, "context"),
                      "invalid_json names %s", err.field);
            continue;
        }
        CHECK(r == 0 && json_is_object(obj), "conversion failed: %d", r);
        const char *k;
        json_t *v;
        json_object_foreach(obj, k, v)
        {
            CHECK(api_member(k), "member %s is not of the event API", k);
        }
        eo_event_t ev;
        if (eo_event_normalize(obj, &lim, RECEIVED_AT, 0, &ev, &err) == 0) {
            eo_buf_t rec;
            eo_buf_init(&rec, (size_t)1 << 24);
            eo_str_t mid = ev.message_id.s ? ev.message_id : (eo_str_t){"m", 1};
            if (eo_record_encode(TENANT, RECEIVED_AT, &ev, mid, &lim, &rec, &err) == 0) {
                eo_record_t back;
                CHECK(eo_record_decode(rec.data, rec.len, &lim, &back, &err) == 0,
                      "the record does not decode: %s", err.message);
                CHECK(back.ev.event_type.len == ev.event_type.len &&
                          !memcmp(back.ev.event_type.s, ev.event_type.s, ev.event_type.len),
                      "the event type changed");
                eo_record_done(&back);
                eo_buf_puts(&ids, accepted ? "," : "");
                eo_buf_put_json_str(&ids, mid.s, mid.len);
                accepted++;
            }
            eo_buf_done(&rec);
        }
        json_decref(obj);
    }
    eo_buf_t out;
    eo_buf_init(&out, (size_t)1 << 24);
    CHECK(eo_pb_send_response(accepted, ids.data ? ids.data : "", ids.len, "", 0, &out) == 0,
          "the response does not build");
    Eventops__V1__SendResponse *resp =
        eventops__v1__send_response__unpack(NULL, out.len, (const uint8_t *)out.data);
    CHECK(resp && resp->accepted == accepted && resp->n_message_ids == accepted,
          "the response does not read back");
    eventops__v1__send_response__free_unpacked(resp, NULL);
    eo_buf_done(&out);
    eo_buf_done(&ids);
    eventops__v1__send_batch_request__free_unpacked(req, NULL);
    return 0;
}
