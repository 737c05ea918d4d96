/* Unit tests of src/domain/ingest_scan.h and json_norm.h: the shapes clients send (the three
 * body shapes, every event field, escapes, integers and reals of every form, unicode, integer
 * ids, aliases) are accepted by the scan itself, not left to the jansson path, and written as
 * byte for byte the record eo_record_encode writes; what the scan leaves to the jansson path
 * (refusals, limits, conflicting aliases, a record too large) is left, never accepted. The
 * records written read back through eo_record_fast_decode, the processor's path. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/batch.h"
#include "domain/ingest_scan.h"
#include "domain/json_norm.h"
#include "domain/json_out.h"
#include "domain/record_scan.h"
#include "domain/record.h"

#define TENANT "0190a5b6-1234-7abc-8def-0123456789ab"
#define RECV INT64_C(1704067200123456) /* 2024-01-01T00:00:00.123456Z */

/* Copies text to the heap with ' turned into " (exact lengths: no NUL passed). */
static char *body_of(const char *text, size_t *len)
{
    *len = strlen(text);
    char *s = malloc(*len + 1);
    assert_non_null(s);
    for (size_t i = 0; i <= *len; i++)
        s[i] = text[i] == '\'' ? '"' : text[i];
    return s;
}

/* Scans body and checks that every event takes the scan's path with jansson's record. */
static void expect_fast(const char *text, bool single, size_t events)
{
    size_t len;
    char *body = body_of(text, &len);
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    eo_json_keys_t keys;
    eo_body_scan_t scan;
    eo_json_keys_init(&keys);
    eo_body_scan_init(&scan);
    assert_int_equal(eo_body_scan(body, len, single, &lim, &keys, &scan), 0);
    assert_int_equal(scan.count, events);
    eo_batch_t batch;
    eo_event_error_t err;
    assert_int_equal(eo_batch_parse(body, len, single, &lim, &batch, &err), 0);
    eo_event_scan_t *ev = malloc(sizeof *ev);
    eo_record_scan_t *rscan = malloc(sizeof *rscan);
    assert_non_null(ev);
    assert_non_null(rscan);
    eo_buf_t mine, theirs, norm_buf;
    eo_buf_init(&norm_buf, 1 << 20);
    eo_buf_init(&mine, 1 << 20);
    eo_buf_init(&theirs, 1 << 20);
    for (size_t i = 0; i < scan.count; i++) {
        if (eo_event_scan(&scan.items[i], &lim, RECV, ev) != 0)
            fail_msg("event %zu of %s left to jansson", i, text);
        eo_buf_reset(&mine);
        eo_buf_reset(&theirs);
        assert_int_equal(eo_event_scan_record(TENANT, RECV, ev, (eo_str_t){"m", 1}, &lim, &mine),
                         0);
        eo_event_t norm;
        assert_int_equal(eo_event_normalize(eo_batch_item(&batch, i), &lim, RECV, 0, &norm, &err),
                         0);
        assert_int_equal(
            eo_record_encode(TENANT, RECV, &norm, (eo_str_t){"m", 1}, &lim, &theirs, &err), 0);
        if (mine.len != theirs.len || memcmp(mine.data, theirs.data, mine.len) != 0)
            fail_msg("records differ:\n scan %.*s\n json %.*s", (int)mine.len, mine.data,
                     (int)theirs.len, theirs.data);
        /* the processor reads the record back without a tree, to what eo_record_decode gives */
        eo_record_t fast, dec;
        if (eo_record_fast_decode(mine.data, mine.len, &lim, &keys, rscan, &norm_buf, &fast) != 0)
            fail_msg("record left to eo_record_decode: %.*s", (int)mine.len, mine.data);
        assert_int_equal(eo_record_decode(mine.data, mine.len, &lim, &dec, &err), 0);
        assert_true(fast.ev.message_id.len == dec.ev.message_id.len &&
                    fast.ev.occurred_at_us == dec.ev.occurred_at_us);
        eo_buf_reset(&norm_buf);
        if (dec.ev.properties)
            assert_int_equal(eo_json_append(&norm_buf, dec.ev.properties), 0);
        assert_int_equal(fast.ev.properties_text.len, norm_buf.len);
        eo_record_done(&fast);
        eo_record_done(&dec);
    }
    eo_buf_done(&mine);
    eo_buf_done(&theirs);
    eo_buf_done(&norm_buf);
    free(ev);
    free(rscan);
    eo_batch_done(&batch);
    eo_body_scan_done(&scan);
    eo_json_keys_done(&keys);
    free(body);
}

static void test_client_shapes(void **state)
{
    (void)state;
    expect_fast("[{'eventType':'e','userId':'u'}]", false, 1);
    expect_fast("{'events':[{'eventType':'e','userId':'u'},{'event':'f','anonymousId':'a'}]}",
                false, 2);
    expect_fast("{'batch':[{'name':'n','userId':42}],'sentAt':'2024-01-01T00:00:00Z'}", false, 1);
    expect_fast(" { 'eventType' : 'e' , 'userId' : -7 } ", true, 1);
    /* every field, the shape of bench/loadgen and of the Segment/PostHog libraries */
    expect_fast("{'messageId':'0b1c2d3e-0000-4000-8000-000000000001','eventType':'page_viewed',"
                "'userId':'user-42','anonymousId':'anon','timestamp':'2023-12-31T23:59:00.5Z',"
                "'sentAt':'2024-01-01T00:00:01+01:00','properties':{'path':'/home','price':12.5,"
                "'qty':3,'ok':true,'no':false,'nil':null,'tags':['a','b',[1,{}]]},"
                "'context':{'library':{'name':'x','version':'1.0'},'ip':'10.0.0.1'},"
                "'type':'track','integrations':{'All':true}}",
                true, 1);
    /* aliases given twice with the same value */
    expect_fast("{'eventType':'e','event':'e','name':null,'userId':'u','properties':{'a':1},"
                "'metadata':{'a':1}}",
                true, 1);
    expect_fast(
        "{'eventType':'e','userId':'u','properties':null,'metadata':{'a':1},'context':null}", true,
        1);
}

static void test_escapes_and_numbers(void **state)
{
    (void)state;
    expect_fast("{'\\u0065ventType':'caf\\u00e9','userId':'\\u0075','properties':{'s':'a\\'b"
                "\\\\c\\/d\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f','\\ud83d\\ude00':'\\u2028',"
                "'raw':'\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f'}}",
                true, 1);
    expect_fast(
        "{'eventType':'e','userId':'u','properties':{'i':0,'n':-0,'big':9223372036854775807,"
        "'small':-9223372036854775808,'r1':0.1,'r2':100.0,'r3':1E2,'r4':1e-7,"
        "'r5':1.5e300,'r6':-0.0,'r7':0e5,'r8':123456789012345.0,'r9':1234567890123456.0,"
        "'r10':0.30000000000000004,'r11':1797693134862315807e290,'r12':5e-324,"
        "'r13':1e-320,'r14':2.5E+15,'r15':1e15,'r16':1e14,'r17':0.0001,'r18':0.00001,"
        "'r19':12.50,'r20':-3.0e-3,'r21':1.00000000000000000000001,'r22':4.35}}",
        true, 1);
}

/* What the scan leaves to the jansson path: never accepted by it. */
static void test_left_to_jansson(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    lim.max_batch_events = 2;
    lim.max_properties = 2;
    lim.max_depth = 2;
    eo_json_keys_t keys;
    eo_body_scan_t scan;
    eo_json_keys_init(&keys);
    eo_body_scan_init(&scan);
    static const char *const bodies[] = {
        "",
        "[]",
        "{}",
        "{'events':{}}",
        "[1]x",
        "{'a':1,'a':2}",
        "[{'e':{'a':1,'a':2}}]",
        "[{},{},{}]",
        "[1e400]",
        "{'events':null,'batch':[{}]}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        size_t len;
        char *body = body_of(bodies[i], &len);
        assert_int_equal(eo_body_scan(body, len, false, &lim, &keys, &scan), EO_EPARSE);
        free(body);
    }
    static const char *const events[] = {
        "1",
        "{'userId':'u'}",
        "{'eventType':'','userId':'u'}",
        "{'eventType':'   ','userId':'u'}",
        "{'eventType':'a\\u0001','userId':'u'}",
        "{'eventType':'e','event':'f','userId':'u'}",
        "{'eventType':'e'}",
        "{'eventType':'e','userId':1.5}",
        "{'eventType':'e','userId':'u','timestamp':'yesterday'}",
        "{'eventType':'e','userId':'u','timestamp':'1970-01-01T00:00:00Z'}",
        "{'eventType':'e','userId':'u','properties':[]}",
        "{'eventType':'e','userId':'u','properties':{'a':1},'metadata':{'a':2}}",
        "{'eventType':'e','userId':'u','context':'x'}",
        "{'eventType':'e','userId':'u','messageId':5}",
    };
    eo_event_scan_t *ev = malloc(sizeof *ev);
    assert_non_null(ev);
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        size_t len;
        char *body = body_of(events[i], &len);
        eo_jspan_t item;
        assert_int_equal(eo_json_check(body, len, &keys, &item), 0);
        if (eo_event_scan(&item, &lim, RECV, ev) == 0)
            fail_msg("scanned: %s", events[i]);
        free(body);
    }
    /* limits inside properties: left by the record write */
    static const char *const limited[] = {
        "{'eventType':'e','userId':'u','properties':{'a':1,'b':2,'c':3}}",
        "{'eventType':'e','userId':'u','properties':{'a':{'b':{}}}}",
        "{'eventType':'e','userId':'u','context':{'a':[[]]}}",
    };
    eo_buf_t out;
    eo_buf_init(&out, 1 << 20);
    for (size_t i = 0; i < sizeof limited / sizeof limited[0]; i++) {
        size_t len;
        char *body = body_of(limited[i], &len);
        eo_jspan_t item;
        assert_int_equal(eo_json_check(body, len, &keys, &item), 0);
        assert_int_equal(eo_event_scan(&item, &lim, RECV, ev), 0);
        eo_buf_reset(&out);
        assert_int_equal(eo_event_scan_record(TENANT, RECV, ev, (eo_str_t){"m", 1}, &lim, &out),
                         EO_EINVAL);
        free(body);
    }
    lim.max_event_bytes = 150; /* the record's event is larger */
    size_t len;
    char *body =
        body_of("{'eventType':'e','userId':'u','properties':{'a':'0123456789abcdef'}}", &len);
    eo_jspan_t item;
    assert_int_equal(eo_json_check(body, len, &keys, &item), 0);
    assert_int_equal(eo_event_scan(&item, &lim, RECV, ev), 0);
    eo_buf_reset(&out);
    assert_int_equal(eo_event_scan_record(TENANT, RECV, ev, (eo_str_t){"m", 1}, &lim, &out),
                     EO_ELIMIT);
    free(body);
    eo_buf_done(&out);
    free(ev);
    eo_body_scan_done(&scan);
    eo_json_keys_done(&keys);
}

/* Duplicate keys are found in objects of every size (pairwise and sorted), under escapes. */
static void test_duplicate_keys(void **state)
{
    (void)state;
    eo_json_keys_t keys;
    eo_json_keys_init(&keys);
    eo_buf_t b;
    eo_buf_init(&b, 1 << 20);
    for (int n = 1; n <= 40; n++) {
        for (int dup = -1; dup < n; dup++) {
            eo_buf_reset(&b);
            eo_buf_puts(&b, "{\"x\":{");
            for (int k = 0; k < n; k++)
                eo_buf_putf(&b, "%s\"k%d\":[{\"k%d\":1}]", k ? "," : "", k, k);
            if (dup >= 0) /* the same key as k<dup>, spelled with an escape */
                eo_buf_putf(&b, ",\"\\u006b%d\":2", dup);
            eo_buf_puts(&b, "},\"k0\":0}");
            eo_jspan_t v;
            assert_int_equal(eo_json_check(b.data, b.len, &keys, &v), dup >= 0 ? EO_EPARSE : 0);
        }
    }
    eo_buf_done(&b);
    eo_json_keys_done(&keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_shapes),
        cmocka_unit_test(test_escapes_and_numbers),
        cmocka_unit_test(test_left_to_jansson),
        cmocka_unit_test(test_duplicate_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
