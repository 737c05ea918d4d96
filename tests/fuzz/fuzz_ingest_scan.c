/* libFuzzer harness of the tree-less ingest path (src/domain/ingest_scan.h), differential
 * against the jansson path it replaces (eo_batch_parse -> eo_event_normalize ->
 * eo_record_encode), which stays the collector's answer for anything the scan refuses.
 * Input: byte 0 chooses the mode (bit 0: single event, else batch; bit 1: tight limits, so
 * that every limit is reached by small inputs), the rest is the body. Invariants (abort):
 *  - a body the scan accepts is accepted by eo_batch_parse, with the same number of events;
 *  - an event the scan accepts is accepted by eo_event_normalize, but for a limit inside
 *    properties or context, which the scan's record write then refuses; a record the scan
 *    writes is byte for byte the record eo_record_encode writes;
 *  - for an event both accept, the scan writes the record or finds it too large exactly when
 *    eo_record_encode does (limits inside properties and context decide alike).
 * The converse (the jansson path accepts, the scan refuses) is allowed by design (it only costs
 * speed) and counted in tests/unit/test_ingest_scan.c for the shapes clients send. */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/batch.h"
#include "domain/event.h"
#include "domain/ingest_scan.h"
#include "domain/record.h"
#include "fuzz_check.h"

#define TENANT "0190a5b6-1234-7abc-8def-0123456789ab"
#define ASSIGNED_ID "0190a5b6-0000-7000-8000-000000000001"
#define RECEIVED_AT INT64_C(1704067200123456) /* 2024-01-01T00:00:00.123456Z */

static eo_json_keys_t keys;
static eo_body_scan_t scan;

static void tight_limits(eo_event_limits_t *lim)
{
    lim->max_event_bytes = 400;
    lim->max_batch_events = 4;
    lim->max_depth = 3;
    lim->max_properties = 3;
    lim->max_string_bytes = 8;
    lim->max_id_bytes = 8;
    lim->max_event_type_bytes = 6;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const bool single = data[0] & 1;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    if (data[0] & 2)
        tight_limits(&lim);
    const char *body = (const char *)data + 1;
    size_t len = size - 1;

    int rs = eo_body_scan(body, len, single, &lim, &keys, &scan);
    CHECK(rs == 0 || rs == EO_EPARSE, "eo_body_scan: %d", rs);
    if (rs < 0)
        return 0;
    eo_batch_t batch;
    eo_event_error_t err;
    int rb = eo_batch_parse(body, len, single, &lim, &batch, &err);
    CHECK(rb == 0, "scan accepted a body eo_batch_parse refuses (%s: %s)", err.code, err.message);
    CHECK(batch.count == scan.count, "%zu events, scan %zu", batch.count, scan.count);

    eo_event_scan_t *ev = malloc(sizeof *ev);
    CHECK(ev != NULL, "out of memory");
    eo_buf_t mine, theirs;
    eo_buf_init(&mine, 1 << 22);
    eo_buf_init(&theirs, 1 << 22);
    const eo_str_t assigned = {ASSIGNED_ID, sizeof ASSIGNED_ID - 1};
    for (size_t i = 0; i < scan.count; i++) {
        if (eo_event_scan(&scan.items[i], &lim, RECEIVED_AT, ev) != 0)
            continue;
        eo_event_t norm;
        int rn = eo_event_normalize(eo_batch_item(&batch, i), &lim, RECEIVED_AT, 0, &norm, &err);
        if (rn != 0) { /* only a limit inside properties or context, found by the record write */
            CHECK(!strcmp(err.field, "properties") || !strcmp(err.field, "metadata") ||
                      !strcmp(err.field, "context"),
                  "event %zu: scanned, refused by eo_event_normalize (%s %s: %s)", i, err.code,
                  err.field, err.message);
            eo_buf_reset(&mine);
            int rm = eo_event_scan_record(TENANT, RECEIVED_AT, ev, assigned, &lim, &mine);
            CHECK(rm == EO_EINVAL, "event %zu: the scan wrote a record past a limit (%s): %d", i,
                  err.code, rm);
            continue;
        }
        eo_buf_reset(&mine);
        eo_buf_reset(&theirs);
        int rm = eo_event_scan_record(TENANT, RECEIVED_AT, ev, assigned, &lim, &mine);
        int rt = eo_record_encode(TENANT, RECEIVED_AT, &norm, assigned, &lim, &theirs, &err);
        if (rm == 0) {
            CHECK(rt == 0, "event %zu: scan wrote a record, eo_record_encode refused (%s)", i,
                  err.code);
            CHECK(mine.len == theirs.len && memcmp(mine.data, theirs.data, mine.len) == 0,
                  "event %zu: records differ:\n scan: %.*s\n json: %.*s", i, (int)mine.len,
                  mine.data, (int)theirs.len, theirs.data);
            eo_event_t ids = {0};
            eo_event_scan_ids(ev, &ids);
            eo_buf_reset(&mine);
            eo_buf_reset(&theirs);
            CHECK(eo_record_key(TENANT, &ids, &mine) == 0 &&
                      eo_record_key(TENANT, &norm, &theirs) == 0 && mine.len == theirs.len &&
                      memcmp(mine.data, theirs.data, mine.len) == 0,
                  "event %zu: keys differ", i);
        } else {
            CHECK(rm == EO_ELIMIT && rt == EO_ELIMIT,
                  "event %zu: scan %d (limits inside properties/context are eo_event_normalize's), "
                  "eo_record_encode %d",
                  i, rm, rt);
        }
    }
    eo_buf_done(&mine);
    eo_buf_done(&theirs);
    free(ev);
    eo_batch_done(&batch);
    return 0;
}
