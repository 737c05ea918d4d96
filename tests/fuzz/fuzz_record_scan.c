/* libFuzzer harness of eo_record_scan on raw bytes, differential against eo_record_decode (the
 * processor's full parse) with the widest limits the configuration allows. Invariants checked
 * (abort on violation), beyond "no crash, no leak, no read past size" (libFuzzer's buffer is
 * exactly size bytes):
 *  - a refusal is EO_EPARSE;
 *  - a record eo_record_decode accepts scans, to the same tenant, times, eventType, ids,
 *    messageId, and (after eo_record_from_scan) the same properties and context;
 *  - a record the scan accepts is JSON for jansson but for what the scan documents it does not
 *    look at (duplicate keys it skips, reals beyond double), and when it is, eo_record_decode
 *    refuses it only for a limit (record.h and record_scan.h: the scan applies none). */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/event.h"
#include "domain/record.h"
#include "domain/record_scan.h"
#include "fuzz_check.h"

/* The largest limits config.c allows, and a timestamp window wider than any. */
static void wide_limits(eo_event_limits_t *lim)
{
    eo_event_limits_default(lim);
    lim->max_event_bytes = 16777216;
    lim->max_depth = 1000;
    lim->max_properties = 100000;
    lim->max_string_bytes = 16777216;
    lim->max_id_bytes = 4096;
    lim->max_event_type_bytes = 4096;
    lim->max_future_us = INT64_C(1) << 62;
    lim->max_past_us = INT64_C(1) << 62;
}

/* Both absent, or equal. */
static bool same_json(json_t *a, json_t *b)
{
    if (!a || !b)
        return a == b;
    return json_equal(a, b);
}

/* p (n bytes) lies within [lo, lo + size). */
static bool inside(const void *p, size_t n, const void *lo, size_t size)
{
    const char *c = p, *l = lo;
    return c >= l && c + n <= l + size;
}

static void check_strings(const eo_record_scan_t *s, const uint8_t *data, size_t size)
{
    const eo_str_t strs[] = {s->event_type, s->user_id, s->anonymous_id, s->message_id};
    for (size_t i = 0; i < 4; i++)
        if (strs[i].s)
            CHECK(inside(strs[i].s, strs[i].len, data, size) ||
                      inside(strs[i].s, strs[i].len, s, sizeof *s),
                  "string %zu points outside the record and the scan", i);
    CHECK(s->event_type.s && s->message_id.s && (s->user_id.s || s->anonymous_id.s),
          "a required string is absent");
    CHECK(!s->properties || inside(s->properties, s->properties_len, data, size), "properties");
    CHECK(!s->context || inside(s->context, s->context_len, data, size), "context");
    CHECK(s->tenant_id[36] == '\0' && eo_uuid_valid(s->tenant_id, 36), "tenant");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eo_event_limits_t lim;
    wide_limits(&lim);
    eo_record_t dec;
    eo_event_error_t err;
    memset(&err, 0, sizeof err);
    int rd = eo_record_decode(data, size, &lim, &dec, &err);

    eo_record_scan_t *s = malloc(sizeof *s);
    if (!s)
        abort();
    int rs = eo_record_scan(data, size, s);
    CHECK(rs == 0 || rs == EO_EPARSE || rs == EO_ENOMEM, "eo_record_scan: %d", rs);
    if (rd == 0) {
        CHECK(rs == 0, "decoded but not scanned (%d)", rs);
        CHECK(strcmp(s->tenant_id, dec.tenant_id) == 0, "tenant");
        CHECK(s->received_at_us == dec.received_at_us, "receivedAt");
        CHECK(s->occurred_at_us == dec.ev.occurred_at_us, "timestamp");
        CHECK(s->original_timestamp_us == dec.ev.original_timestamp_us, "originalTimestamp");
        CHECK(s->sent_at_us == dec.ev.sent_at_us, "sentAt");
        CHECK(same_str(s->event_type, dec.ev.event_type), "eventType");
        CHECK(same_str(s->user_id, dec.ev.user_id), "userId");
        CHECK(same_str(s->anonymous_id, dec.ev.anonymous_id), "anonymousId");
        CHECK(same_str(s->message_id, dec.ev.message_id), "messageId");
    }
    if (rs == 0) {
        check_strings(s, data, size);
        eo_record_t rec;
        int rf = eo_record_from_scan(s, true, true, &rec);
        CHECK(rf == 0 || rf == EO_EPARSE || rf == EO_ENOMEM, "eo_record_from_scan: %d", rf);
        if (rd == 0) {
            CHECK(rf == 0, "properties/context of a decoded record do not parse (%d)", rf);
            CHECK(same_json(rec.ev.properties, dec.ev.properties), "properties");
            CHECK(same_json(rec.ev.context, dec.ev.context), "context");
            CHECK(same_str(rec.ev.event_type, dec.ev.event_type), "rec eventType");
            CHECK(rec.ev.occurred_at_us == dec.ev.occurred_at_us, "rec timestamp");
        }
        eo_record_done(&rec);

        json_error_t jerr;
        json_t *all = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
        enum json_error_code code = json_error_code(&jerr);
        CHECK(all || code == json_error_duplicate_key || code == json_error_numeric_overflow ||
                  code == json_error_out_of_memory,
              "scanned but jansson refuses it: %s", jerr.text);
        if (all && rd != 0)
            CHECK(rd == EO_EINVAL &&
                      (strcmp(err.code, "too_deep") == 0 ||
                       strcmp(err.code, "too_many_properties") == 0 ||
                       strcmp(err.code, "too_large") == 0 || strcmp(err.code, "too_long") == 0),
                  "scanned but refused by eo_record_decode for more than a limit: %d %s %s", rd,
                  err.code, err.field);
        json_decref(all);
    }
    eo_record_done(&dec);
    free(s);
    return 0;
}
