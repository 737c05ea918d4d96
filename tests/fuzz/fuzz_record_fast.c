/* libFuzzer harness of eo_record_fast_decode (src/domain/record_scan.h) on raw bytes,
 * differential against eo_record_decode, which the processor uses for every record the fast
 * decoder leaves to it. Invariants (abort): a record the fast decoder accepts is accepted by
 * eo_record_decode with the same tenant, receivedAt, messageId, eventType, ids and times, and
 * with properties and context whose normal form (eo_json_append of the tree, what the processor
 * stores) is byte for byte the text the fast decoder kept; every string borrows from the
 * record. Byte 0 chooses the limits (bit 0: tight ones, reached by small inputs). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/json_out.h"
#include "domain/record.h"
#include "domain/record_scan.h"
#include "fuzz_check.h"

static eo_json_keys_t keys;
static eo_record_scan_t scan;

static bool same(eo_str_t a, eo_str_t b)
{
    return (!a.s && !b.s) || (a.s && b.s && a.len == b.len && !memcmp(a.s, b.s, a.len));
}

/* The normal form of obj (NULL: none) equals text (NULL .s: none). */
static bool same_text(json_t *obj, eo_str_t text, eo_buf_t *b)
{
    if (!obj || !text.s)
        return !obj && !text.s;
    eo_buf_reset(b);
    return eo_json_append(b, obj) == 0 && b->len == text.len && !memcmp(b->data, text.s, b->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    if (data[0] & 1) {
        lim.max_event_bytes = 300;
        lim.max_depth = 3;
        lim.max_properties = 3;
        lim.max_string_bytes = 8;
        lim.max_id_bytes = 8;
        lim.max_event_type_bytes = 6;
    }
    /* a copy of exactly the bytes, so that reading past them is caught */
    size_t len = size - 1;
    uint8_t *bytes = malloc(len ? len : 1);
    CHECK(bytes != NULL, "out of memory");
    memcpy(bytes, data + 1, len);
    eo_buf_t scratch, b;
    eo_buf_init(&scratch, 1 << 20);
    eo_buf_init(&b, 1 << 20);
    eo_record_t fast, dec;
    eo_event_error_t err;
    int rf = eo_record_fast_decode(bytes, len, &lim, &keys, &scan, &scratch, &fast);
    CHECK(rf == 0 || rf == EO_EPARSE, "eo_record_fast_decode: %d", rf);
    if (rf == 0) {
        int rd = eo_record_decode(bytes, len, &lim, &dec, &err);
        CHECK(rd == 0, "fast-decoded, refused by eo_record_decode: %d %s %s: %s", rd, err.code,
              err.field, err.message);
        const eo_event_t *f = &fast.ev, *d = &dec.ev;
        CHECK(!strcmp(fast.tenant_id, dec.tenant_id), "tenant");
        CHECK(fast.received_at_us == dec.received_at_us, "receivedAt");
        CHECK(same(f->message_id, d->message_id), "messageId");
        CHECK(same(f->event_type, d->event_type), "eventType");
        CHECK(same(f->user_id, d->user_id), "userId");
        CHECK(same(f->anonymous_id, d->anonymous_id), "anonymousId");
        CHECK(f->occurred_at_us == d->occurred_at_us, "timestamp");
        CHECK(f->original_timestamp_us == d->original_timestamp_us, "originalTimestamp");
        CHECK(f->sent_at_us == d->sent_at_us, "sentAt");
        CHECK(!f->properties && !f->context && !fast.root, "a tree was built");
        CHECK(same_text(d->properties, f->properties_text, &b), "properties text");
        CHECK(same_text(d->context, f->context_text, &b), "context text");
        eo_str_t all[] = {f->message_id,   f->event_type,      f->user_id,
                          f->anonymous_id, f->properties_text, f->context_text};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            CHECK(!all[i].s || ((const uint8_t *)all[i].s >= bytes &&
                                (const uint8_t *)all[i].s + all[i].len <= bytes + len),
                  "string %zu does not borrow from the record", i);
        eo_record_done(&dec);
    }
    eo_record_done(&fast);
    eo_buf_done(&scratch);
    eo_buf_done(&b);
    free(bytes);
    return 0;
}
