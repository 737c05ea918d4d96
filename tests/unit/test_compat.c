/* Unit tests of src/domain/compat.h: Segment's and PostHog's bodies, the event object each
 * message becomes (compared whole, as JSON), the write key a body carries, and every refusal
 * with its code and field. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/compat.h"
#include "domain/record.h"

#define RECEIVED_AT INT64_C(1704067200000000) /* 2024-01-01T00:00:00Z */

/* Default limits, but 3 messages per batch. */
static eo_event_limits_t test_limits(void)
{
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    lim.max_batch_events = 3;
    return lim;
}

/* text with ' turned into " (on the heap). */
static char *quoted(const char *text)
{
    size_t n = strlen(text);
    char *s = malloc(n + 1);
    assert_non_null(s);
    for (size_t i = 0; i <= n; i++)
        s[i] = text[i] == '\'' ? '"' : text[i];
    return s;
}

typedef struct {
    eo_compat_kind_t kind;
    const char *body;
    size_t index;     /* the message converted */
    int want;         /* of eo_compat_event (the body parses) */
    const char *out;  /* the event object, when accepted */
    const char *code; /* the refusal's, otherwise */
    const char *field;
} row_t;

static const row_t rows[] = {
    /* Segment, one message per route: the route gives the type */
    {EO_COMPAT_TRACK,
     "{'event':'Order','userId':'u','messageId':'m','properties':{'a':1},'timestamp':'t',"
     "'sentAt':'s','context':{'ip':'x'},'integrations':{'All':true},'type':'track'}",
     0, 0,
     "{'event':'Order','userId':'u','messageId':'m','properties':{'a':1},'timestamp':'t',"
     "'sentAt':'s','context':{'ip':'x'}}",
     NULL, NULL},
    {EO_COMPAT_TRACK, "{'event':'o','anonymousId':'a','originalTimestamp':'ot'}", 0, 0,
     "{'event':'o','anonymousId':'a','timestamp':'ot'}", NULL, NULL},
    {EO_COMPAT_TRACK, "{'userId':'u'}", 0, EO_EINVAL, NULL, "missing_field", "event"},
    {EO_COMPAT_IDENTIFY, "{'userId':'u','traits':{'email':'e'}}", 0, 0,
     "{'userId':'u','eventType':'$identify','properties':{'$set':{'email':'e'}}}", NULL, NULL},
    {EO_COMPAT_IDENTIFY, "{'anonymousId':'a'}", 0, 0,
     "{'anonymousId':'a','eventType':'$identify','properties':{'$set':{}}}", NULL, NULL},
    {EO_COMPAT_IDENTIFY, "{'userId':'u','traits':[1]}", 0, EO_EINVAL, NULL, "invalid_type",
     "traits"},
    {EO_COMPAT_PAGE, "{'userId':'u','name':'Home','category':'Docs','properties':{'url':'x'}}", 0,
     0,
     "{'userId':'u','eventType':'$pageview','properties':{'url':'x','name':'Home',"
     "'category':'Docs'}}",
     NULL, NULL},
    {EO_COMPAT_PAGE, "{'userId':'u','name':'Home','properties':{'name':'Mine'}}", 0, 0,
     "{'userId':'u','eventType':'$pageview','properties':{'name':'Mine'}}", NULL, NULL},
    {EO_COMPAT_PAGE, "{'userId':'u'}", 0, 0, "{'userId':'u','eventType':'$pageview'}", NULL, NULL},
    {EO_COMPAT_SCREEN, "{'userId':'u','name':'Cart'}", 0, 0,
     "{'userId':'u','eventType':'$screen','properties':{'name':'Cart'}}", NULL, NULL},
    /* a properties of the wrong type is passed on for eo_event_normalize to refuse */
    {EO_COMPAT_SCREEN, "{'userId':'u','name':'Cart','properties':3}", 0, 0,
     "{'userId':'u','eventType':'$screen','properties':3}", NULL, NULL},
    {EO_COMPAT_GROUP, "{'userId':'u','groupId':42,'traits':{'plan':'pro'}}", 0, 0,
     "{'userId':'u','eventType':'$groupidentify','properties':{'$group_type':'group',"
     "'$group_key':'42','$group_set':{'plan':'pro'}}}",
     NULL, NULL},
    {EO_COMPAT_GROUP, "{'userId':'u'}", 0, EO_EINVAL, NULL, "missing_field", "groupId"},
    {EO_COMPAT_GROUP, "{'userId':'u','groupId':''}", 0, EO_EINVAL, NULL, "empty_value", "groupId"},
    {EO_COMPAT_GROUP, "{'userId':'u','groupId':[1]}", 0, EO_EINVAL, NULL, "invalid_type",
     "groupId"},
    {EO_COMPAT_ALIAS, "{'userId':'u','previousId':'anon'}", 0, 0,
     "{'userId':'u','eventType':'$create_alias','properties':{'alias':'anon'}}", NULL, NULL},
    {EO_COMPAT_ALIAS, "{'userId':'u'}", 0, EO_EINVAL, NULL, "missing_field", "previousId"},
    /* Segment batches: each message typed; the batch's sentAt and context fill in */
    {EO_COMPAT_SEGMENT_BATCH,
     "{'batch':[{'type':'track','event':'a','userId':'u'},{'type':'alias','userId':'u',"
     "'previousId':'p','sentAt':'own','context':{'c':2}}],'sentAt':'s','context':{'c':1},"
     "'writeKey':'k'}",
     0, 0, "{'event':'a','userId':'u','sentAt':'s','context':{'c':1}}", NULL, NULL},
    {EO_COMPAT_SEGMENT_BATCH,
     "{'batch':[{'type':'track','event':'a','userId':'u'},{'type':'alias','userId':'u',"
     "'previousId':'p','sentAt':'own','context':{'c':2}}],'sentAt':'s','context':{'c':1}}",
     1, 0,
     "{'userId':'u','sentAt':'own','context':{'c':2},'eventType':'$create_alias',"
     "'properties':{'alias':'p'}}",
     NULL, NULL},
    {EO_COMPAT_SEGMENT_BATCH, "{'batch':[{'event':'a','userId':'u'}]}", 0, EO_EINVAL, NULL,
     "missing_field", "type"},
    {EO_COMPAT_SEGMENT_BATCH, "{'batch':[{'type':'Track','event':'a','userId':'u'}]}", 0, EO_EINVAL,
     NULL, "invalid_value", "type"},
    {EO_COMPAT_SEGMENT_BATCH, "{'batch':[{'type':7}]}", 0, EO_EINVAL, NULL, "invalid_type", "type"},
    {EO_COMPAT_SEGMENT_BATCH, "{'batch':[3]}", 0, EO_EINVAL, NULL, "invalid_type", ""},
    /* PostHog */
    {EO_COMPAT_POSTHOG,
     "{'api_key':'k','batch':[{'event':'e','distinct_id':'d','uuid':'m','timestamp':'t',"
     "'properties':{'a':1,'token':'k'}}],'sent_at':'s'}",
     0, 0,
     "{'event':'e','userId':'d','messageId':'m','timestamp':'t','sentAt':'s',"
     "'properties':{'a':1}}",
     NULL, NULL},
    {EO_COMPAT_POSTHOG, "{'event':'$set','distinct_id':7,'$set':{'n':'B'},'$set_once':{'f':1}}", 0,
     0, "{'event':'$set','userId':7,'properties':{'$set':{'n':'B'},'$set_once':{'f':1}}}", NULL,
     NULL},
    {EO_COMPAT_POSTHOG,
     "[{'event':'e','properties':{'distinct_id':'d','token':'k'},'offset':1500}]", 0, 0,
     "{'event':'e','userId':'d','timestamp':'2023-12-31T23:59:58.500000Z',"
     "'properties':{'distinct_id':'d'}}",
     NULL, NULL},
    {EO_COMPAT_POSTHOG, "[{'event':'e'}]", 0, EO_EINVAL, NULL, "missing_field", "distinct_id"},
    {EO_COMPAT_POSTHOG, "[{'distinct_id':'d'}]", 0, EO_EINVAL, NULL, "missing_field", "event"},
    {EO_COMPAT_POSTHOG, "[{'event':'e','distinct_id':'d','offset':-1}]", 0, EO_EINVAL, NULL,
     "invalid_type", "offset"},
    {EO_COMPAT_POSTHOG, "[{'event':'e','distinct_id':'d','offset':99999999999999}]", 0, EO_EINVAL,
     NULL, "timestamp_out_of_range", "offset"},
    {EO_COMPAT_POSTHOG,
     "{'api_key':'k','batch':[{'event':'e','distinct_id':'d','properties':{'token':'other'}}]}", 0,
     EO_EINVAL, NULL, "invalid_value", "api_key"},
};

static void test_messages(void **state)
{
    (void)state;
    eo_event_limits_t lim = test_limits();
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        const row_t *row = &rows[k];
        char *body = quoted(row->body);
        eo_compat_body_t b;
        eo_event_error_t err;
        memset(&err, 0, sizeof err);
        int r = eo_compat_parse(body, strlen(body), row->kind, &lim, &b, &err);
        if (r != 0)
            fail_msg("row %zu: body refused: %s %s", k, err.code, err.message);
        json_t *ev = NULL;
        eo_str_t mid;
        r = eo_compat_event(&b, row->index, RECEIVED_AT, &ev, &mid, &err);
        if (r != row->want)
            fail_msg("row %zu: got %d (%s %s), want %d", k, r, err.code, err.field, row->want);
        if (r == 0) {
            char *want_text = quoted(row->out);
            json_t *want = json_loads(want_text, 0, NULL);
            assert_non_null(want);
            if (!json_equal(ev, want)) {
                char *got = json_dumps(ev, JSON_SORT_KEYS);
                fail_msg("row %zu: got %s, want %s", k, got, want_text);
            }
            json_decref(want);
            json_decref(ev);
            free(want_text);
        } else {
            assert_null(ev);
            if (strcmp(err.code, row->code) != 0 || strcmp(err.field, row->field) != 0)
                fail_msg("row %zu: refused %s/%s, want %s/%s", k, err.code, err.field, row->code,
                         row->field);
        }
        eo_compat_done(&b);
        free(body);
    }
}

typedef struct {
    eo_compat_kind_t kind;
    const char *body;
    int want;
    const char *code;
    const char *field;
    size_t count;
    const char *key; /* the body's write key, NULL when none */
} body_row_t;

static const body_row_t body_rows[] = {
    {EO_COMPAT_TRACK, "{'event':'e','writeKey':'wk'}", 0, NULL, NULL, 1, "wk"},
    {EO_COMPAT_TRACK, "{'event':'e'}", 0, NULL, NULL, 1, NULL},
    {EO_COMPAT_TRACK, "{'event':'e','writeKey':5}", EO_EINVAL, "invalid_type", "writeKey", 0, NULL},
    {EO_COMPAT_TRACK, "[]", EO_EINVAL, "invalid_type", "", 0, NULL},
    {EO_COMPAT_TRACK, "", EO_EPARSE, "empty_body", "", 0, NULL},
    {EO_COMPAT_TRACK, "{'a':1,'a':2}", EO_EPARSE, "invalid_json", "", 0, NULL},
    {EO_COMPAT_SEGMENT_BATCH, "{'batch':[{},{}],'writeKey':'wk'}", 0, NULL, NULL, 2, "wk"},
    {EO_COMPAT_SEGMENT_BATCH, "{'events':[{}]}", EO_EINVAL, "missing_field", "batch", 0, NULL},
    {EO_COMPAT_SEGMENT_BATCH, "{'batch':{}}", EO_EINVAL, "invalid_type", "batch", 0, NULL},
    {EO_COMPAT_SEGMENT_BATCH, "{'batch':[]}", EO_EINVAL, "empty_batch", "batch", 0, NULL},
    {EO_COMPAT_SEGMENT_BATCH, "{'batch':[{},{},{},{}]}", EO_ELIMIT, "too_many_events", "batch", 0,
     NULL},
    {EO_COMPAT_SEGMENT_BATCH, "[{}]", EO_EINVAL, "invalid_type", "", 0, NULL},
    {EO_COMPAT_POSTHOG, "{'api_key':'k','batch':[{}]}", 0, NULL, NULL, 1, "k"},
    {EO_COMPAT_POSTHOG, "{'token':'t','event':'e'}", 0, NULL, NULL, 1, "t"},
    {EO_COMPAT_POSTHOG, "[{'event':'e'},{'api_key':'k2'},{'properties':{'token':'k3'}}]", 0, NULL,
     NULL, 3, "k2"},
    {EO_COMPAT_POSTHOG, "[{'properties':{'token':'k3'}}]", 0, NULL, NULL, 1, "k3"},
    {EO_COMPAT_POSTHOG, "'text'", EO_EINVAL, "invalid_type", "", 0, NULL},
    {EO_COMPAT_POSTHOG, "{'api_key':[]}", EO_EINVAL, "invalid_type", "api_key", 0, NULL},
    {EO_COMPAT_POSTHOG, "{'api_key':'k','token':0}", EO_EINVAL, "invalid_type", "token", 0, NULL},
    {EO_COMPAT_POSTHOG, "{'api_key':'k','token':null,'event':'e'}", 0, NULL, NULL, 1, "k"},
    {EO_COMPAT_POSTHOG, "[{},{},{},{}]", EO_ELIMIT, "too_many_events", "batch", 0, NULL},
};

static void test_bodies(void **state)
{
    (void)state;
    eo_event_limits_t lim = test_limits();
    for (size_t k = 0; k < sizeof body_rows / sizeof body_rows[0]; k++) {
        const body_row_t *row = &body_rows[k];
        char *body = quoted(row->body);
        eo_compat_body_t b;
        eo_event_error_t err;
        memset(&err, 0, sizeof err);
        int r = eo_compat_parse(body, strlen(body), row->kind, &lim, &b, &err);
        if (r != row->want)
            fail_msg("row %zu: got %d (%s), want %d", k, r, err.code, row->want);
        if (r == 0) {
            assert_int_equal(b.count, row->count);
            if (!row->key)
                assert_null(b.key.s);
            else if (!b.key.s || b.key.len != strlen(row->key) ||
                     memcmp(b.key.s, row->key, b.key.len) != 0)
                fail_msg("row %zu: key %.*s, want %s", k, (int)b.key.len, b.key.s ? b.key.s : "",
                         row->key);
        } else {
            assert_null(b.root);
            assert_int_equal(b.count, 0);
            if (strcmp(err.code, row->code) != 0 || strcmp(err.field, row->field) != 0)
                fail_msg("row %zu: refused %s/%s, want %s/%s", k, err.code, err.field, row->code,
                         row->field);
        }
        eo_compat_done(&b);
        free(body);
    }
}

/* What eo_event_normalize says about a converted PostHog event names PostHog's fields. */
static void test_field_names(void **state)
{
    (void)state;
    eo_event_error_t err = {.field = "userId"};
    eo_compat_name_field(EO_COMPAT_POSTHOG, &err);
    assert_string_equal(err.field, "distinct_id");
    snprintf(err.field, sizeof err.field, "messageId");
    eo_compat_name_field(EO_COMPAT_POSTHOG, &err);
    assert_string_equal(err.field, "uuid");
    snprintf(err.field, sizeof err.field, "properties");
    eo_compat_name_field(EO_COMPAT_POSTHOG, &err);
    assert_string_equal(err.field, "properties");
    snprintf(err.field, sizeof err.field, "userId");
    eo_compat_name_field(EO_COMPAT_SEGMENT_BATCH, &err);
    assert_string_equal(err.field, "userId");
}

/* The scan of Segment bodies: which messages it takes, and that their records are the jansson
 * way's byte for byte (the fuzz harness checks the same on any input). */
typedef struct {
    eo_compat_kind_t kind;
    const char *body;
    int scan;       /* eo_compat_scan's result */
    size_t scanned; /* messages whose record the scan wrote */
} scan_row_t;

static const scan_row_t scan_rows[] = {
    /* what the SDKs send: the batch's sentAt and context stand in for the messages' */
    {EO_COMPAT_SEGMENT_BATCH,
     "{'batch':[{'type':'track','event':'a','userId':'u','timestamp':'2023-12-31T23:59:00Z',"
     "'messageId':'m1','context':{'library':{'name':'x'}},'integrations':{},'_metadata':{}},"
     "{'type':'track','event':'b','anonymousId':'a','messageId':'m2'},"
     "{'type':'identify','userId':'u','traits':{'x':1}},"
     "{'type':'track','event':'c','userId':'u','originalTimestamp':'2023-12-31T23:00:00Z'},"
     "{'type':'track','event':'d','userId':'u','name':'n'}],"
     "'sentAt':'2024-01-01T00:00:01Z','context':{'ip':'1.2.3.4'},'writeKey':'wk'}",
     0, 2},
    {EO_COMPAT_TRACK, "{'event':'e','userId':'u','type':'anything','properties':{'a':[1]}}", 0, 1},
    {EO_COMPAT_TRACK, "{'event':'e','userId':'u','metadata':{'a':1}}", 0, 0},
    {EO_COMPAT_TRACK, "{'userId':'u'}", 0, 0},
    /* the batch's sentAt not a time: the messages without their own go the jansson way */
    {EO_COMPAT_SEGMENT_BATCH,
     "{'batch':[{'type':'track','event':'a','userId':'u','timestamp':'2024-01-01T00:00:00Z'},"
     "{'type':'track','event':'a','userId':'u','sentAt':'2024-01-01T00:00:00Z'}],'sentAt':'x'}",
     0, 1},
    {EO_COMPAT_SEGMENT_BATCH, "{'events':[{'type':'track','event':'a','userId':'u'}]}", EO_EPARSE,
     0},
    {EO_COMPAT_SEGMENT_BATCH, "{'batch':[{'type':'track','event':'a','userId':'u'}],'writeKey':1}",
     EO_EPARSE, 0},
    {EO_COMPAT_IDENTIFY, "{'userId':'u'}", EO_EPARSE, 0},
    /* PostHog: what posthog-node and posthog-python send; the body's sent_at stands in */
    {EO_COMPAT_POSTHOG,
     "{'api_key':'k','batch':[{'event':'signup','distinct_id':'d','uuid':'m1',"
     "'timestamp':'2023-12-31T23:59:00Z','properties':{'$lib':'posthog-node','plan':'free'},"
     "'type':'capture','library':'posthog-node'},"
     "{'event':'e','distinct_id':7,'properties':{'a':1}},"
     "{'event':'$set','distinct_id':'d','$set':{'n':1}},"
     "{'event':'e','properties':{'distinct_id':'d'}},"
     "{'event':'e','distinct_id':'d','properties':{'token':'k'}},"
     "{'event':'e','distinct_id':'d','offset':5},"
     "{'event':'e','distinct_id':'d','api_key':'k'}],'sent_at':'2024-01-01T00:00:01Z'}",
     0, 2},
    {EO_COMPAT_POSTHOG, "[{'event':'e','distinct_id':'d','context':{'x':1}}]", 0, 1},
    {EO_COMPAT_POSTHOG,
     "{'event':'e','distinct_id':'d','events':[1],'sent_at':'2024-01-01T00:00:00Z'}", 0, 1},
    {EO_COMPAT_POSTHOG, "{'events':[{'event':'e','distinct_id':'d'}],'batch':[]}", EO_EPARSE, 0},
    {EO_COMPAT_POSTHOG, "{'batch':[{'event':'e','distinct_id':'d'}],'token':5}", EO_EPARSE, 0},
};

static void test_scan_same_records(void **state)
{
    (void)state;
    eo_event_limits_t lim = test_limits();
    lim.max_batch_events = 10;
    eo_event_scan_t *ev = malloc(sizeof *ev);
    assert_non_null(ev);
    for (size_t k = 0; k < sizeof scan_rows / sizeof scan_rows[0]; k++) {
        const scan_row_t *row = &scan_rows[k];
        char *body = quoted(row->body);
        size_t len = strlen(body);
        eo_json_keys_t keys;
        eo_body_scan_t scan;
        eo_compat_scan_t info;
        eo_json_keys_init(&keys);
        eo_body_scan_init(&scan);
        int r = eo_compat_scan(body, len, row->kind, &lim, &keys, &scan, &info);
        if (r != row->scan)
            fail_msg("row %zu: eo_compat_scan %d, want %d", k, r, row->scan);
        size_t scanned = 0;
        eo_compat_body_t b;
        eo_event_error_t err;
        if (r == 0 && eo_compat_parse(body, len, row->kind, &lim, &b, &err) != 0)
            fail_msg("row %zu: the parse refuses a scanned body: %s", k, err.message);
        for (size_t i = 0; r == 0 && i < scan.count; i++) {
            if (eo_event_scan_as(&scan.items[i], info.names, &lim, RECEIVED_AT, ev) != 0 ||
                !eo_compat_scan_takes(&info, ev) ||
                eo_compat_scan_defaults(&info, &lim, RECEIVED_AT, ev) != 0)
                continue;
            eo_str_t id = {"assigned", 8};
            eo_buf_t got, want;
            eo_buf_init(&got, 1 << 20);
            eo_buf_init(&want, 1 << 20);
            assert_int_equal(eo_event_scan_record("t", RECEIVED_AT, ev, id, &lim, &got), 0);
            json_t *obj;
            eo_str_t mid;
            assert_int_equal(eo_compat_event(&b, i, RECEIVED_AT, &obj, &mid, &err), 0);
            eo_event_t norm;
            assert_int_equal(eo_event_normalize(obj, &lim, RECEIVED_AT, 0, &norm, &err), 0);
            assert_int_equal(eo_record_encode("t", RECEIVED_AT, &norm, id, &lim, &want, &err), 0);
            if (got.len != want.len || memcmp(got.data, want.data, got.len) != 0)
                fail_msg("row %zu message %zu:\n scan    %.*s\n jansson %.*s", k, i, (int)got.len,
                         got.data, (int)want.len, want.data);
            json_decref(obj);
            eo_buf_done(&got);
            eo_buf_done(&want);
            scanned++;
        }
        if (scanned != row->scanned)
            fail_msg("row %zu: %zu messages scanned, want %zu", k, scanned, row->scanned);
        if (r == 0)
            eo_compat_done(&b);
        eo_body_scan_done(&scan);
        eo_json_keys_done(&keys);
        free(body);
    }
    free(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_field_names),
        cmocka_unit_test(test_scan_same_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
