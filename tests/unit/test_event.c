/* Unit tests of src/domain/event.h: every validation rule of eo_event_normalize with a passing
 * and a failing row (code and field checked), the normalised values (aliases, integer ids,
 * clock-skew correction, record mode), the limits at their exact edges, and eo_event_encode
 * round-tripping through eo_event_normalize(..., EO_EVENT_FROM_RECORD, ...). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/event.h"
#include "domain/rfc3339.h"

#define S_US INT64_C(1000000)
#define RECV INT64_C(1704067200000000) /* 2024-01-01T00:00:00Z */

/* Small limits, so that rows stay short and every edge is visible in the table. */
static eo_event_limits_t small_limits(void)
{
    return (eo_event_limits_t){
        .max_event_bytes = 4096,
        .max_batch_events = 10,
        .max_depth = 3,
        .max_properties = 3,
        .max_string_bytes = 16,
        .max_id_bytes = 8,
        .max_event_type_bytes = 10,
        .max_future_us = 60 * S_US,
        .max_past_us = 86400 * S_US,
    };
}

/* Parses a row's JSON, written with ' for " to keep the table readable. */
static json_t *load(const char *text)
{
    char *s = strdup(text);
    assert_non_null(s);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_error_t jerr;
    json_t *root = json_loads(s, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root)
        fail_msg("test JSON does not parse: %s: %s", s, jerr.text);
    free(s);
    return root;
}

static bool str_is(eo_str_t v, const char *want)
{
    if (!want)
        return v.s == NULL;
    return v.s && v.len == strlen(want) && memcmp(v.s, want, v.len) == 0;
}

typedef struct {
    const char *json;
    unsigned flags;
    const char *code;  /* NULL: must be accepted */
    const char *field; /* expected err->field when rejected */
} row_t;

#define REC EO_EVENT_FROM_RECORD

static const row_t rows[] = {
    /* the event must be an object */
    {"{'eventType':'e','userId':'u'}", 0, NULL, NULL},
    {"['eventType','e']", 0, "invalid_type", ""},
    {"'e'", 0, "invalid_type", ""},

    /* eventType: required, aliases event and name */
    {"{'eventType':'click','userId':'u'}", 0, NULL, NULL},
    {"{'event':'click','userId':'u'}", 0, NULL, NULL},
    {"{'name':'click','userId':'u'}", 0, NULL, NULL},
    {"{'userId':'u'}", 0, "missing_field", "eventType"},
    {"{'eventType':null,'event':null,'name':null,'userId':'u'}", 0, "missing_field", "eventType"},
    {"{'eventType':null,'event':'click','userId':'u'}", 0, NULL, NULL},
    /* aliases: the same value is allowed, different values conflict */
    {"{'eventType':'a','event':'a','name':'a','userId':'u'}", 0, NULL, NULL},
    {"{'eventType':'a','event':'b','userId':'u'}", 0, "conflicting_fields", "event"},
    {"{'eventType':'a','name':'b','userId':'u'}", 0, "conflicting_fields", "name"},
    {"{'event':'a','name':'b','userId':'u'}", 0, "conflicting_fields", "name"},
    {"{'eventType':'a','event':'a','name':'b','userId':'u'}", 0, "conflicting_fields", "name"},
    {"{'eventType':'1','event':1,'userId':'u'}", 0, "conflicting_fields", "event"},
    /* must be a string */
    {"{'eventType':'e','userId':'u'}", 0, NULL, NULL},
    {"{'eventType':5,'userId':'u'}", 0, "invalid_type", "eventType"},
    {"{'event':true,'userId':'u'}", 0, "invalid_type", "event"},
    {"{'name':{},'userId':'u'}", 0, "invalid_type", "name"},
    {"{'eventType':['e'],'userId':'u'}", 0, "invalid_type", "eventType"},
    /* not empty, not blank */
    {"{'eventType':' e ','userId':'u'}", 0, NULL, NULL},
    {"{'eventType':'','userId':'u'}", 0, "empty_value", "eventType"},
    {"{'eventType':'   ','userId':'u'}", 0, "empty_value", "eventType"},
    {"{'name':' ','userId':'u'}", 0, "empty_value", "name"},
    /* at most max_event_type_bytes (10) bytes, counted in bytes not characters */
    {"{'eventType':'0123456789','userId':'u'}", 0, NULL, NULL},
    {"{'eventType':'0123456789a','userId':'u'}", 0, "too_long", "eventType"},
    {"{'event':'\u00e9\u00e9\u00e9\u00e9\u00e9','userId':'u'}", 0, NULL, NULL},
    {"{'event':'\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9','userId':'u'}", 0, "too_long", "event"},
    {"{'eventType':'\u2615\u2615\u2615','userId':'u'}", 0, NULL, NULL},
    {"{'eventType':'\u2615\u2615\u2615\u2615','userId':'u'}", 0, "too_long", "eventType"},
    /* no control characters */
    {"{'eventType':'a b~','userId':'u'}", 0, NULL, NULL},
    {"{'eventType':'a\\tb','userId':'u'}", 0, "invalid_value", "eventType"},
    {"{'eventType':'a\\nb','userId':'u'}", 0, "invalid_value", "eventType"},
    {"{'eventType':'a\\u0001','userId':'u'}", 0, "invalid_value", "eventType"},
    {"{'name':'a\\u007f','userId':'u'}", 0, "invalid_value", "name"},
    {"{'eventType':'\\u001f','userId':'u'}", 0, "invalid_value", "eventType"},

    /* userId or anonymousId required */
    {"{'eventType':'e','userId':'u'}", 0, NULL, NULL},
    {"{'eventType':'e','anonymousId':'a'}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','anonymousId':'a'}", 0, NULL, NULL},
    {"{'eventType':'e'}", 0, "missing_field", "userId"},
    {"{'eventType':'e','userId':null,'anonymousId':null}", 0, "missing_field", "userId"},
    /* string or integer */
    {"{'eventType':'e','userId':42}", 0, NULL, NULL},
    {"{'eventType':'e','anonymousId':-7}", 0, NULL, NULL},
    {"{'eventType':'e','userId':1.5}", 0, "invalid_type", "userId"},
    {"{'eventType':'e','userId':1.0}", 0, "invalid_type", "userId"},
    {"{'eventType':'e','userId':true}", 0, "invalid_type", "userId"},
    {"{'eventType':'e','userId':{}}", 0, "invalid_type", "userId"},
    {"{'eventType':'e','userId':['u']}", 0, "invalid_type", "userId"},
    {"{'eventType':'e','anonymousId':2.5}", 0, "invalid_type", "anonymousId"},
    {"{'eventType':'e','userId':'u','anonymousId':false}", 0, "invalid_type", "anonymousId"},
    /* not empty or blank */
    {"{'eventType':'e','userId':'0'}", 0, NULL, NULL},
    {"{'eventType':'e','userId':''}", 0, "empty_value", "userId"},
    {"{'eventType':'e','userId':'  '}", 0, "empty_value", "userId"},
    {"{'eventType':'e','anonymousId':''}", 0, "empty_value", "anonymousId"},
    {"{'eventType':'e','userId':'u','anonymousId':' '}", 0, "empty_value", "anonymousId"},
    /* at most max_id_bytes (8) */
    {"{'eventType':'e','userId':'12345678'}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'123456789'}", 0, "too_long", "userId"},
    {"{'eventType':'e','anonymousId':'abcdefgh'}", 0, NULL, NULL},
    {"{'eventType':'e','anonymousId':'abcdefghi'}", 0, "too_long", "anonymousId"},
    /* no control characters */
    {"{'eventType':'e','userId':'u-1@x.y'}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'a\\nb'}", 0, "invalid_value", "userId"},
    {"{'eventType':'e','anonymousId':'\\tab'}", 0, "invalid_value", "anonymousId"},

    /* messageId: optional string */
    {"{'eventType':'e','userId':'u'}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','messageId':'m-1'}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','messageId':null}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','messageId':42}", 0, "invalid_type", "messageId"},
    {"{'eventType':'e','userId':'u','messageId':{}}", 0, "invalid_type", "messageId"},
    {"{'eventType':'e','userId':'u','messageId':''}", 0, "empty_value", "messageId"},
    {"{'eventType':'e','userId':'u','messageId':'12345678'}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','messageId':'123456789'}", 0, "too_long", "messageId"},
    {"{'eventType':'e','userId':'u','messageId':'m\\u001b'}", 0, "invalid_value", "messageId"},

    /* timestamp: RFC 3339 string */
    {"{'eventType':'e','userId':'u','timestamp':'2023-12-31T23:59:00Z'}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','timestamp':null}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','timestamp':'yesterday'}", 0, "invalid_timestamp", "timestamp"},
    {"{'eventType':'e','userId':'u','timestamp':'2023-12-31 23:59:00Z'}", 0, "invalid_timestamp",
     "timestamp"},
    {"{'eventType':'e','userId':'u','timestamp':'2023-12-32T23:59:00Z'}", 0, "invalid_timestamp",
     "timestamp"},
    {"{'eventType':'e','userId':'u','timestamp':1704067200}", 0, "invalid_type", "timestamp"},
    {"{'eventType':'e','userId':'u','sentAt':'2024-01-01T00:00:00Z'}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','sentAt':'now'}", 0, "invalid_timestamp", "sentAt"},
    {"{'eventType':'e','userId':'u','sentAt':'2024-01-01T24:00:00Z'}", 0, "invalid_timestamp",
     "sentAt"},
    {"{'eventType':'e','userId':'u','sentAt':true}", 0, "invalid_type", "sentAt"},
    /* in client mode originalTimestamp is not read */
    {"{'eventType':'e','userId':'u','originalTimestamp':'garbage'}", 0, NULL, NULL},
    /* corrected timestamp within [received - 1 day, received + 60 s] */
    {"{'eventType':'e','userId':'u','timestamp':'2024-01-01T00:01:00Z'}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','timestamp':'2024-01-01T00:01:00.000001Z'}", 0,
     "timestamp_out_of_range", "timestamp"},
    {"{'eventType':'e','userId':'u','timestamp':'2023-12-31T00:00:00Z'}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','timestamp':'2023-12-30T23:59:59.999999Z'}", 0,
     "timestamp_out_of_range", "timestamp"},
    {"{'eventType':'e','userId':'u','timestamp':'1970-01-01T00:00:00Z'}", 0,
     "timestamp_out_of_range", "timestamp"},
    /* skew correction can bring a timestamp into the window, or push it out */
    {"{'eventType':'e','userId':'u','timestamp':'2024-01-01T10:00:00Z',"
     "'sentAt':'2024-01-01T10:00:30Z'}",
     0, NULL, NULL},
    {"{'eventType':'e','userId':'u','timestamp':'2023-12-31T23:59:50Z',"
     "'sentAt':'2023-12-30T00:00:00Z'}",
     0, "timestamp_out_of_range", "timestamp"},
    /* sentAt alone: occurred = received, always in the window */
    {"{'eventType':'e','userId':'u','sentAt':'2000-01-01T00:00:00Z'}", 0, NULL, NULL},

    /* properties: an object (alias metadata) */
    {"{'eventType':'e','userId':'u','properties':{'a':1}}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','properties':null}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','properties':{}}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','properties':[]}", 0, "invalid_type", "properties"},
    {"{'eventType':'e','userId':'u','properties':'x'}", 0, "invalid_type", "properties"},
    {"{'eventType':'e','userId':'u','properties':3}", 0, "invalid_type", "properties"},
    {"{'eventType':'e','userId':'u','metadata':{'a':1}}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','metadata':[1]}", 0, "invalid_type", "metadata"},
    {"{'eventType':'e','userId':'u','properties':{'a':1},'metadata':{'a':1}}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','properties':{'a':1},'metadata':{'a':2}}", 0,
     "conflicting_fields", "metadata"},
    /* at most max_properties (3) top-level keys; nested objects are not counted */
    {"{'eventType':'e','userId':'u','properties':{'a':1,'b':2,'c':3}}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','properties':{'a':1,'b':2,'c':3,'d':4}}", 0,
     "too_many_properties", "properties"},
    {"{'eventType':'e','userId':'u','metadata':{'a':1,'b':2,'c':3,'d':4}}", 0,
     "too_many_properties", "metadata"},
    {"{'eventType':'e','userId':'u','properties':{'a':{'k1':1,'k2':2,'k3':3,'k4':4}}}", 0, NULL,
     NULL},
    /* nesting: properties itself is level 1; max_depth (3) levels of containers */
    {"{'eventType':'e','userId':'u','properties':{'a':{'b':{'c':1}}}}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','properties':{'a':{'b':{'c':{}}}}}", 0, "too_deep",
     "properties"},
    {"{'eventType':'e','userId':'u','properties':{'a':[[1,'x',null]]}}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','properties':{'a':[[[1]]]}}", 0, "too_deep", "properties"},
    {"{'eventType':'e','userId':'u','metadata':{'a':[{'b':[]}]}}", 0, "too_deep", "metadata"},
    /* strings and keys at most max_string_bytes (16), at any depth */
    {"{'eventType':'e','userId':'u','properties':{'s':'0123456789abcdef'}}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','properties':{'s':'0123456789abcdefg'}}", 0, "too_long",
     "properties"},
    {"{'eventType':'e','userId':'u','properties':{'a':{'b':['0123456789abcdefg']}}}", 0, "too_long",
     "properties"},
    {"{'eventType':'e','userId':'u','properties':{'0123456789abcdef':1}}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','properties':{'0123456789abcdefg':1}}", 0, "too_long",
     "properties"},
    {"{'eventType':'e','userId':'u','properties':{'a':{'0123456789abcdefg':1}}}", 0, "too_long",
     "properties"},
    /* control characters inside property values are data, not an error */
    {"{'eventType':'e','userId':'u','properties':{'s':'a\\tb\\n'}}", 0, NULL, NULL},

    /* context: the same rules */
    {"{'eventType':'e','userId':'u','context':{'ip':'10.0.0.1'}}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','context':null}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','context':[]}", 0, "invalid_type", "context"},
    {"{'eventType':'e','userId':'u','context':'x'}", 0, "invalid_type", "context"},
    {"{'eventType':'e','userId':'u','context':{'a':1,'b':2,'c':3}}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','context':{'a':1,'b':2,'c':3,'d':4}}", 0, "too_many_properties",
     "context"},
    {"{'eventType':'e','userId':'u','context':{'a':{'b':{'c':1}}}}", 0, NULL, NULL},
    {"{'eventType':'e','userId':'u','context':{'a':{'b':{'c':[]}}}}", 0, "too_deep", "context"},
    {"{'eventType':'e','userId':'u','context':{'k':'0123456789abcdefg'}}", 0, "too_long",
     "context"},
    {"{'eventType':'e','userId':'u','context':{'0123456789abcdefg':0}}", 0, "too_long", "context"},
    {"{'eventType':'e','userId':'u','properties':{},'context':{'a':[[[1]]]}}", 0, "too_deep",
     "context"},

    /* record mode: messageId and timestamp required */
    {"{'messageId':'m','eventType':'e','userId':'u','timestamp':'2024-01-01T00:00:00Z'}", REC, NULL,
     NULL},
    {"{'eventType':'e','userId':'u','timestamp':'2024-01-01T00:00:00Z'}", REC, "missing_field",
     "messageId"},
    {"{'messageId':null,'eventType':'e','userId':'u','timestamp':'2024-01-01T00:00:00Z'}", REC,
     "missing_field", "messageId"},
    {"{'messageId':7,'eventType':'e','userId':'u','timestamp':'2024-01-01T00:00:00Z'}", REC,
     "invalid_type", "messageId"},
    {"{'messageId':'m','eventType':'e','userId':'u'}", REC, "missing_field", "timestamp"},
    {"{'messageId':'m','eventType':'e','userId':'u','timestamp':null}", REC, "missing_field",
     "timestamp"},
    {"{'messageId':'m','eventType':'e','userId':'u','timestamp':'x'}", REC, "invalid_timestamp",
     "timestamp"},
    {"{'messageId':'m','eventType':'e','userId':'u','timestamp':'2024-01-01T00:00:00Z',"
     "'originalTimestamp':'2023-06-01T00:00:00Z'}",
     REC, NULL, NULL},
    {"{'messageId':'m','eventType':'e','userId':'u','timestamp':'2024-01-01T00:00:00Z',"
     "'originalTimestamp':'x'}",
     REC, "invalid_timestamp", "originalTimestamp"},
    {"{'messageId':'m','eventType':'e','userId':'u','timestamp':'2024-01-01T00:00:00Z',"
     "'originalTimestamp':1}",
     REC, "invalid_type", "originalTimestamp"},
    {"{'messageId':'m','eventType':'e','userId':'u','timestamp':'2024-01-01T00:00:00Z',"
     "'sentAt':'x'}",
     REC, "invalid_timestamp", "sentAt"},
    /* the stored timestamp is checked against the window, without a second correction */
    {"{'messageId':'m','eventType':'e','userId':'u','timestamp':'2024-01-01T00:01:01Z'}", REC,
     "timestamp_out_of_range", "timestamp"},
    {"{'messageId':'m','eventType':'e','userId':'u','timestamp':'2024-01-01T00:00:00Z',"
     "'sentAt':'2023-12-20T00:00:00Z'}",
     REC, NULL, NULL},
    /* and every other rule still applies */
    {"{'messageId':'m','event':'e','anonymousId':'a','timestamp':'2024-01-01T00:00:00Z'}", REC,
     NULL, NULL},
    {"{'messageId':'m','userId':'u','timestamp':'2024-01-01T00:00:00Z'}", REC, "missing_field",
     "eventType"},
    {"{'messageId':'m','eventType':'e','timestamp':'2024-01-01T00:00:00Z'}", REC, "missing_field",
     "userId"},
    {"{'messageId':'m','eventType':'e','userId':'u','timestamp':'2024-01-01T00:00:00Z',"
     "'properties':[]}",
     REC, "invalid_type", "properties"},
};

static void test_rules_table(void **state)
{
    (void)state;
    const eo_event_limits_t lim = small_limits();
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const row_t *row = &rows[i];
        json_t *obj = load(row->json);
        eo_event_t ev;
        eo_event_error_t err;
        memset(&err, 0, sizeof err);
        int r = eo_event_normalize(obj, &lim, RECV, row->flags, &ev, &err);
        if (!row->code) {
            if (r != 0)
                fail_msg("row %zu %s: rejected (%d %s %s: %s)", i, row->json, r, err.code,
                         err.field, err.message);
        } else {
            if (r != EO_EINVAL || strcmp(err.code, row->code) != 0 ||
                strcmp(err.field, row->field) != 0)
                fail_msg("row %zu %s: r=%d code='%s' field='%s', want %s/%s", i, row->json, r,
                         err.code, err.field, row->code, row->field);
            if (err.message[0] == '\0')
                fail_msg("row %zu %s: no message", i, row->json);
        }
        json_decref(obj);
    }
}

/* Normalises text (quotes as '), asserting success; *root must be released by the caller. */
/* Normalises text into *ev, which must stay where it is: an eo_event_t points into itself
 * (the decimal text of an integer id), so it is filled in place, never returned by value. */
static void accept(const char *text, unsigned flags, const eo_event_limits_t *lim, json_t **root,
                   eo_event_t *ev)
{
    *root = load(text);
    eo_event_error_t err;
    int r = eo_event_normalize(*root, lim, RECV, flags, ev, &err);
    if (r != 0)
        fail_msg("%s: rejected: %s %s %s", text, err.code, err.field, err.message);
}

static void test_alias_values(void **state)
{
    (void)state;
    const eo_event_limits_t lim = small_limits();
    static const char *const texts[] = {
        "{'eventType':'click','userId':'u'}",
        "{'event':'click','userId':'u'}",
        "{'name':'click','userId':'u'}",
        "{'eventType':null,'name':'click','userId':'u'}",
        "{'eventType':'click','event':'click','userId':'u'}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_t *root;
        eo_event_t ev;
        accept(texts[i], 0, &lim, &root, &ev);
        assert_true(str_is(ev.event_type, "click"));
        json_decref(root);
    }
    json_t *root;
    eo_event_t ev;
    accept("{'event':'e','userId':'u','metadata':{'plan':'pro'}}", 0, &lim, &root, &ev);
    assert_non_null(ev.properties);
    assert_string_equal(json_string_value(json_object_get(ev.properties, "plan")), "pro");
    assert_null(ev.context);
    json_decref(root);
}

static void test_integer_ids(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    static const struct {
        const char *json;
        const char *user, *anon;
    } cases[] = {
        {"{'eventType':'e','userId':42}", "42", NULL},
        {"{'eventType':'e','userId':0}", "0", NULL},
        {"{'eventType':'e','anonymousId':-7}", NULL, "-7"},
        {"{'eventType':'e','userId':9223372036854775807,'anonymousId':-9223372036854775808}",
         "9223372036854775807", "-9223372036854775808"},
        {"{'eventType':'e','userId':'42','anonymousId':43}", "42", "43"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *root;
        eo_event_t ev;
        accept(cases[i].json, 0, &lim, &root, &ev);
        if (!str_is(ev.user_id, cases[i].user) || !str_is(ev.anonymous_id, cases[i].anon))
            fail_msg("%s: ids '%.*s' '%.*s'", cases[i].json, (int)ev.user_id.len,
                     ev.user_id.s ? ev.user_id.s : "", (int)ev.anonymous_id.len,
                     ev.anonymous_id.s ? ev.anonymous_id.s : "");
        json_decref(root);
    }
}

static void test_time_values(void **state)
{
    (void)state;
    const eo_event_limits_t lim = small_limits();
    json_t *root;
    eo_event_t ev;

    /* no timestamp: occurred = received */
    accept("{'eventType':'e','userId':'u'}", 0, &lim, &root, &ev);
    assert_true(ev.occurred_at_us == RECV);
    assert_true(ev.original_timestamp_us == EO_NO_TIME);
    assert_true(ev.sent_at_us == EO_NO_TIME);
    assert_null(ev.message_id.s);
    json_decref(root);

    /* timestamp without sentAt: kept as sent */
    accept("{'eventType':'e','userId':'u','timestamp':'2023-12-31T23:59:00.25+00:00'}", 0, &lim,
           &root, &ev);
    assert_true(ev.occurred_at_us == RECV - 60 * S_US + 250000);
    assert_true(ev.original_timestamp_us == RECV - 60 * S_US + 250000);
    json_decref(root);

    /* device clock 30 min behind: occurred = timestamp + (received - sentAt) */
    accept("{'eventType':'e','userId':'u','timestamp':'2023-12-31T23:00:00Z',"
           "'sentAt':'2023-12-31T23:30:00Z'}",
           0, &lim, &root, &ev);
    assert_true(ev.original_timestamp_us == RECV - 3600 * S_US);
    assert_true(ev.sent_at_us == RECV - 1800 * S_US);
    assert_true(ev.occurred_at_us == RECV - 1800 * S_US);
    json_decref(root);

    /* device clock 10 h ahead, in another zone */
    accept("{'eventType':'e','userId':'u','timestamp':'2024-01-01T15:29:40.5+05:30',"
           "'sentAt':'2024-01-01T10:00:30Z'}",
           0, &lim, &root, &ev);
    assert_true(ev.occurred_at_us == RECV - 49500000);
    json_decref(root);

    /* sentAt without timestamp: occurred = received, sentAt kept */
    accept("{'eventType':'e','userId':'u','sentAt':'2023-12-01T00:00:00Z'}", 0, &lim, &root, &ev);
    assert_true(ev.occurred_at_us == RECV);
    assert_true(ev.original_timestamp_us == EO_NO_TIME);
    assert_true(ev.sent_at_us == RECV - 31 * 86400 * S_US);
    json_decref(root);

    /* record mode: the stored timestamp is used as is, originalTimestamp is read */
    accept("{'messageId':'m','eventType':'e','userId':'u','timestamp':'2023-12-31T23:59:50Z',"
           "'originalTimestamp':'2020-01-01T00:00:00Z','sentAt':'2019-12-31T00:00:00Z'}",
           EO_EVENT_FROM_RECORD, &lim, &root, &ev);
    assert_true(ev.occurred_at_us == RECV - 10 * S_US);
    assert_true(ev.original_timestamp_us == INT64_C(1577836800000000));
    assert_true(ev.sent_at_us == INT64_C(1577836800000000) - 86400 * S_US);
    assert_true(str_is(ev.message_id, "m"));
    json_decref(root);
}

/* Null members are the same as absent ones. */
static void test_nulls_are_absent(void **state)
{
    (void)state;
    const eo_event_limits_t lim = small_limits();
    json_t *root;
    eo_event_t ev;
    accept("{'eventType':'e','event':null,'name':null,'userId':'u',"
           "'anonymousId':null,'messageId':null,'timestamp':null,'sentAt':null,"
           "'properties':null,'metadata':null,'context':null}",
           0, &lim, &root, &ev);
    assert_true(str_is(ev.event_type, "e"));
    assert_true(str_is(ev.user_id, "u"));
    assert_null(ev.anonymous_id.s);
    assert_null(ev.message_id.s);
    assert_true(ev.occurred_at_us == RECV);
    assert_true(ev.original_timestamp_us == EO_NO_TIME);
    assert_true(ev.sent_at_us == EO_NO_TIME);
    assert_null(ev.properties);
    assert_null(ev.context);
    json_decref(root);
}

/* --- the default limits at their exact edges ------------------------------------------ */

static json_t *base_event(void)
{
    json_t *obj = json_object();
    json_object_set_new(obj, "eventType", json_string("e"));
    json_object_set_new(obj, "userId", json_string("u"));
    return obj;
}

static json_t *string_of(size_t n, char c)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    json_t *v = json_string(s);
    free(s);
    return v;
}

/* Returns the err code of normalising obj (consumed), or "" when it is accepted. */
static const char *verdict(json_t *obj, const eo_event_limits_t *lim, eo_event_error_t *err)
{
    eo_event_t ev;
    memset(err, 0, sizeof *err);
    int r = eo_event_normalize(obj, lim, RECV, 0, &ev, err);
    json_decref(obj);
    return r == 0 ? "" : err->code;
}

/* properties whose innermost object sits at depth (properties itself = 1) */
static json_t *nested_properties(size_t depth)
{
    json_t *inner = json_object();
    for (size_t i = 1; i < depth; i++) {
        json_t *outer = json_object();
        json_object_set_new(outer, "k", inner);
        inner = outer;
    }
    return inner;
}

static void test_default_limits_edges(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    eo_event_error_t err;
    json_t *obj;

    assert_int_equal(lim.max_event_type_bytes, 200);
    obj = base_event();
    json_object_set_new(obj, "eventType", string_of(200, 'e'));
    assert_string_equal(verdict(obj, &lim, &err), "");
    obj = base_event();
    json_object_set_new(obj, "eventType", string_of(201, 'e'));
    assert_string_equal(verdict(obj, &lim, &err), "too_long");
    assert_string_equal(err.field, "eventType");

    assert_int_equal(lim.max_id_bytes, 255);
    static const char *const ids[] = {"userId", "anonymousId", "messageId"};
    for (size_t i = 0; i < 3; i++) {
        obj = base_event();
        json_object_set_new(obj, ids[i], string_of(255, 'i'));
        assert_string_equal(verdict(obj, &lim, &err), "");
        obj = base_event();
        json_object_set_new(obj, ids[i], string_of(256, 'i'));
        assert_string_equal(verdict(obj, &lim, &err), "too_long");
        assert_string_equal(err.field, ids[i]);
    }

    assert_int_equal(lim.max_depth, 32);
    obj = base_event();
    json_object_set_new(obj, "properties", nested_properties(32));
    assert_string_equal(verdict(obj, &lim, &err), "");
    obj = base_event();
    json_object_set_new(obj, "properties", nested_properties(33));
    assert_string_equal(verdict(obj, &lim, &err), "too_deep");
    assert_string_equal(err.field, "properties");
    obj = base_event();
    json_object_set_new(obj, "context", nested_properties(33));
    assert_string_equal(verdict(obj, &lim, &err), "too_deep");
    assert_string_equal(err.field, "context");

    assert_int_equal(lim.max_properties, 512);
    for (size_t n = 512; n <= 513; n++) {
        json_t *props = json_object();
        for (size_t i = 0; i < n; i++) {
            char key[16];
            snprintf(key, sizeof key, "p%zu", i);
            json_object_set_new(props, key, json_integer((json_int_t)i));
        }
        obj = base_event();
        json_object_set_new(obj, "properties", props);
        assert_string_equal(verdict(obj, &lim, &err), n == 512 ? "" : "too_many_properties");
    }

    assert_int_equal(lim.max_string_bytes, 8192);
    for (size_t n = 8192; n <= 8193; n++) {
        obj = base_event();
        json_t *props = json_object();
        json_object_set_new(props, "s", string_of(n, 's'));
        json_object_set_new(obj, "properties", props);
        assert_string_equal(verdict(obj, &lim, &err), n == 8192 ? "" : "too_long");

        obj = base_event();
        props = json_object();
        json_t *key = string_of(n, 'k');
        json_object_set_new(props, json_string_value(key), json_true());
        json_decref(key);
        json_object_set_new(obj, "context", props);
        assert_string_equal(verdict(obj, &lim, &err), n == 8192 ? "" : "too_long");
    }

    /* 86400 s into the future, 3650 days into the past */
    char t[EO_RFC3339_MAX];
    static const struct {
        int64_t at;
        const char *want;
    } times[] = {
        {RECV + 86400 * S_US, ""},
        {RECV + 86400 * S_US + 1, "timestamp_out_of_range"},
        {RECV - INT64_C(3650) * 86400 * S_US, ""},
        {RECV - INT64_C(3650) * 86400 * S_US - 1, "timestamp_out_of_range"},
    };
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        eo_rfc3339_format(times[i].at, t);
        obj = base_event();
        json_object_set_new(obj, "timestamp", json_string(t));
        assert_string_equal(verdict(obj, &lim, &err), times[i].want);
    }
}

/* --- encoding ---------------------------------------------------------------------------- */

static bool same_object(json_t *a, json_t *b)
{
    json_t *empty = json_object();
    bool eq = json_equal(a ? a : empty, b ? b : empty);
    json_decref(empty);
    return eq;
}

static bool same_str(eo_str_t a, eo_str_t b)
{
    if (!a.s || !b.s)
        return a.s == b.s;
    return a.len == b.len && memcmp(a.s, b.s, a.len) == 0;
}

/* Encodes ev, checks the output is one JSON object, decodes it in record mode and compares
 * every field. message_id is what the caller assigns when the client sent none. */
static void check_round_trip(const char *text, const eo_event_t *ev, const char *message_id,
                             const eo_event_limits_t *lim)
{
    eo_buf_t buf;
    eo_buf_init(&buf, 1 << 20);
    eo_str_t mid = {message_id, message_id ? strlen(message_id) : 0};
    assert_int_equal(eo_event_encode(ev, mid, &buf), 0);

    json_error_t jerr;
    json_t *root = json_loadb(buf.data, buf.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        fail_msg("%s: encoded text is not JSON (%s): %s", text, jerr.text, buf.data);
    assert_true(json_is_object(root));
    eo_event_t back;
    eo_event_error_t err;
    int r = eo_event_normalize(root, lim, RECV, EO_EVENT_FROM_RECORD, &back, &err);
    if (r != 0)
        fail_msg("%s: encoded as %s, which is rejected: %s %s %s", text, buf.data, err.code,
                 err.field, err.message);
    eo_str_t want_mid = ev->message_id.s ? ev->message_id : mid;
    if (!same_str(back.event_type, ev->event_type) || !same_str(back.user_id, ev->user_id) ||
        !same_str(back.anonymous_id, ev->anonymous_id) || !same_str(back.message_id, want_mid) ||
        back.occurred_at_us != ev->occurred_at_us ||
        back.original_timestamp_us != ev->original_timestamp_us ||
        back.sent_at_us != ev->sent_at_us || !same_object(back.properties, ev->properties) ||
        !same_object(back.context, ev->context))
        fail_msg("%s: round trip through %s changed a value", text, buf.data);
    json_decref(root);
    eo_buf_done(&buf);
}

static void test_encode_round_trip(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    static const char *const texts[] = {
        "{'eventType':'e','userId':'u'}",
        "{'event':'Order Completed','anonymousId':'anon-1','messageId':'m-1'}",
        "{'name':'x','userId':42,'anonymousId':-1}",
        "{'eventType':'q\\\"uo\\\\te','userId':'\\u00e9\\u2615\\ud83d\\ude00','anonymousId':'a/b'}",
        ("{'eventType':'e','userId':'u','timestamp':'2023-12-31T23:00:00.123456789+01:00',"
         "'sentAt':'2024-01-01T00:00:05Z'}"),
        "{'eventType':'e','userId':'u','sentAt':'2023-06-01T00:00:00-03:30'}",
        ("{'eventType':'e','userId':'u','timestamp':'2016-12-31T23:59:60Z',"
         "'sentAt':'2017-01-01T00:00:00Z'}"),
        ("{'eventType':'e','userId':'u','properties':{'n':1,'f':0.1,'neg':-1e-300,'big':1e300,"
         "'b':true,'z':null,'s':'tab\\there \\u0001 \\\"q\\\" \\u2028','a':[1,[2,{'x':[]}]],"
         "'o':{}},'context':{'ip':'10.0.0.1','library':{'name':'analytics.js','version':'2'}}}"),
        "{'eventType':'e','userId':'u','metadata':{'plan':'pro','\\u00fcml\\u00e4ut':1}}",
        ("{'eventType':'e','userId':'u','properties':{'i':-9223372036854775808,"
         "'j':9223372036854775807,'r':-0.0,'e':5e-324}}"),
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_t *root;
        eo_event_t ev;
        accept(texts[i], 0, &lim, &root, &ev);
        check_round_trip(texts[i], &ev, "0190a5b6-0000-7000-8000-000000000001", &lim);
        json_decref(root);
    }
}

/* The encoded member list and order is part of the record format. */
static void test_encode_exact_text(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    json_t *root;
    eo_event_t ev;
    accept("{'event':'Signed Up','userId':7,'timestamp':'2024-01-01T00:00:00Z',"
           "'properties':{'plan':'pro'}}",
           0, &lim, &root, &ev);
    eo_buf_t buf;
    eo_buf_init(&buf, 4096);
    eo_str_t mid = {"m-1", 3};
    assert_int_equal(eo_event_encode(&ev, mid, &buf), 0);
    assert_string_equal(buf.data,
                        "{\"messageId\":\"m-1\",\"eventType\":\"Signed Up\",\"userId\":\"7\","
                        "\"anonymousId\":null,\"timestamp\":\"2024-01-01T00:00:00.000000Z\","
                        "\"originalTimestamp\":\"2024-01-01T00:00:00.000000Z\",\"sentAt\":null,"
                        "\"properties\":{\"plan\":\"pro\"},\"context\":{}}");
    eo_buf_done(&buf);
    json_decref(root);
}

/* A messageId sent by the client wins over the one passed to eo_event_encode. */
static void test_encode_message_id(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    json_t *root;
    eo_event_t ev;
    accept("{'eventType':'e','userId':'u','messageId':'client-id'}", 0, &lim, &root, &ev);
    eo_buf_t buf;
    eo_buf_init(&buf, 4096);
    assert_int_equal(eo_event_encode(&ev, (eo_str_t){"server-id", 9}, &buf), 0);
    assert_non_null(strstr(buf.data, "\"messageId\":\"client-id\""));
    assert_null(strstr(buf.data, "server-id"));
    json_decref(root);

    eo_buf_reset(&buf);
    accept("{'eventType':'e','userId':'u'}", 0, &lim, &root, &ev);
    assert_int_equal(eo_event_encode(&ev, (eo_str_t){"server-id", 9}, &buf), 0);
    assert_non_null(strstr(buf.data, "\"messageId\":\"server-id\""));
    json_decref(root);
    eo_buf_done(&buf);
}

/* A buffer too small for the event: EO_ELIMIT, whether it runs out in a string or in the
 * properties (dumped by jansson). */
static void test_encode_buffer_cap(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    json_t *root;
    eo_event_t ev;
    accept("{'eventType':'e','userId':'u','properties':{'long':'0123456789012345678901234567"
           "890123456789'}}",
           0, &lim, &root, &ev);
    eo_buf_t buf;
    size_t full;
    eo_buf_init(&buf, 4096);
    assert_int_equal(eo_event_encode(&ev, (eo_str_t){"m", 1}, &buf), 0);
    full = buf.len;
    eo_buf_done(&buf);
    for (size_t max = 0; max < full; max += 7) {
        eo_buf_init(&buf, max);
        int r = eo_event_encode(&ev, (eo_str_t){"m", 1}, &buf);
        if (r != EO_ELIMIT)
            fail_msg("max %zu of %zu: r=%d", max, full, r);
        assert_true(buf.len <= max);
        eo_buf_done(&buf);
    }
    eo_buf_init(&buf, full);
    assert_int_equal(eo_event_encode(&ev, (eo_str_t){"m", 1}, &buf), 0);
    eo_buf_done(&buf);
    json_decref(root);
}

static void test_error_set(void **state)
{
    (void)state;
    eo_event_error_t err;
    eo_event_error_set(&err, "too_long", "userId", "'%s' is longer than %d bytes", "userId", 8);
    assert_string_equal(err.code, "too_long");
    assert_string_equal(err.field, "userId");
    assert_string_equal(err.message, "'userId' is longer than 8 bytes");
    eo_event_error_set(&err, "x", NULL, "%s", "m");
    assert_string_equal(err.field, "");
    char longtext[400];
    memset(longtext, 'a', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    eo_event_error_set(&err, longtext, longtext, "%s", longtext);
    assert_int_equal(strlen(err.code), sizeof err.code - 1);
    assert_int_equal(strlen(err.field), sizeof err.field - 1);
    assert_int_equal(strlen(err.message), sizeof err.message - 1);
}

/* --- accepted events must survive their own record ----------------------------------------
 * The processor re-validates every record with the collector's rules (record.h): whatever
 * eo_event_normalize accepts, eo_event_encode must write in a form that is accepted again. */

/* An originalTimestamp or sentAt whose UTC time falls outside years 0000..9999 once its
 * offset is applied (or through a leap second) is accepted, then encoded as "-001-..." or
 * "10000-..." which eo_rfc3339_parse rejects. */
static void test_regression_time_outside_years_round_trip(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    static const char *const texts[] = {
        ("{'eventType':'e','userId':'u','timestamp':'0000-01-01T00:00:00+01:00',"
         "'sentAt':'0000-01-01T00:00:00+01:00'}"),
        "{'eventType':'e','userId':'u','sentAt':'9999-12-31T23:30:00-01:00'}",
        "{'eventType':'e','userId':'u','sentAt':'9999-12-31T23:59:60Z'}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_t *root = load(texts[i]);
        eo_event_t ev;
        eo_event_error_t err;
        if (eo_event_normalize(root, &lim, RECV, 0, &ev, &err) == 0)
            check_round_trip(texts[i], &ev, "m", &lim); /* else: rejected up front, fine */
        json_decref(root);
    }
}

/* An integer userId is turned into up to 20 digits without the max_id_bytes check applied
 * to strings; the processor then sees a string longer than max_id_bytes and rejects it. */
static void test_regression_integer_id_over_max_id_bytes(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    lim.max_id_bytes = 8; /* EVENTOPS_MAX_ID_BYTES allows 8..4096 */
    static const char *const texts[] = {
        "{'eventType':'e','userId':1234567890}",
        "{'eventType':'e','anonymousId':-12345678}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_t *root = load(texts[i]);
        eo_event_t ev;
        eo_event_error_t err;
        if (eo_event_normalize(root, &lim, RECV, 0, &ev, &err) == 0)
            check_round_trip(texts[i], &ev, "m", &lim);
        else
            assert_string_equal(err.code, "too_long");
        json_decref(root);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_table),
        cmocka_unit_test(test_alias_values),
        cmocka_unit_test(test_integer_ids),
        cmocka_unit_test(test_time_values),
        cmocka_unit_test(test_nulls_are_absent),
        cmocka_unit_test(test_default_limits_edges),
        cmocka_unit_test(test_encode_round_trip),
        cmocka_unit_test(test_encode_exact_text),
        cmocka_unit_test(test_encode_message_id),
        cmocka_unit_test(test_encode_buffer_cap),
        cmocka_unit_test(test_error_set),
        cmocka_unit_test(test_regression_time_outside_years_round_trip),
        cmocka_unit_test(test_regression_integer_id_over_max_id_bytes),
    };
    return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
