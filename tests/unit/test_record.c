/* Unit tests of src/domain/record.h: the Kafka record of an event (encode, decode, key), the
 * size limit, every way a record is undecodable, re-validation of the event inside it, a stored
 * event read back as the record it came from (eo_record_from_stored) and eo_uuid_valid. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/event.h"
#include "domain/record.h"
#include "domain/rule.h"

#define S_US INT64_C(1000000)
#define RECV INT64_C(1704067200123456) /* 2024-01-01T00:00:00.123456Z */
#define TENANT "0190a5b6-1234-7abc-8def-0123456789ab"

/* Replaces ' with " in place (test texts are written with ' for readability). */
static char *quotes(const char *text)
{
    char *s = strdup(text);
    assert_non_null(s);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    return s;
}

/* A normalised event; *root keeps its strings alive. */
static eo_event_t event_of(const char *text, const eo_event_limits_t *lim, json_t **root)
{
    char *s = quotes(text);
    json_error_t jerr;
    *root = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
    if (!*root)
        fail_msg("test JSON does not parse: %s: %s", s, jerr.text);
    free(s);
    eo_event_t ev;
    eo_event_error_t err;
    if (eo_event_normalize(*root, lim, RECV, 0, &ev, &err) != 0)
        fail_msg("%s: rejected: %s %s", text, err.code, err.field);
    return ev;
}

static bool same_str(eo_str_t a, eo_str_t b)
{
    if (!a.s || !b.s)
        return a.s == b.s;
    return a.len == b.len && memcmp(a.s, b.s, a.len) == 0;
}

static bool str_is(eo_str_t v, const char *want)
{
    return same_str(v, (eo_str_t){want, want ? strlen(want) : 0});
}

static void test_round_trip(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    json_t *root;
    eo_event_t ev = event_of("{'event':'Order Completed','userId':'user-1','anonymousId':'anon-1',"
                             "'messageId':'client-msg-1','timestamp':'2023-12-31T23:00:00.5Z',"
                             "'sentAt':'2023-12-31T23:30:00Z','properties':{'total':12.5,"
                             "'items':[{'sku':'a'}]},'context':{'ip':'10.0.0.1'}}",
                             &lim, &root);
    eo_buf_t buf;
    eo_event_error_t err;
    eo_buf_init(&buf, 1 << 16);
    assert_int_equal(eo_record_encode(TENANT, RECV, &ev, (eo_str_t){"unused", 6}, &lim, &buf, &err),
                     0);
    assert_int_equal(strncmp(buf.data,
                             "{\"v\":1,\"tenantId\":\"" TENANT "\",\"receivedAt\":\"2024-01-01T00:"
                             "00:00.123456Z\",\"event\":{\"messageId\":\"client-msg-1\",",
                             strlen("{\"v\":1,\"tenantId\":\"" TENANT "\",\"receivedAt\":\"2024-"
                                    "01-01T00:00:00.123456Z\",\"event\":{\"messageId\":\"client-"
                                    "msg-1\",")),
                     0);
    assert_int_equal(buf.data[buf.len - 1], '}');

    eo_record_t rec;
    assert_int_equal(eo_record_decode(buf.data, buf.len, &lim, &rec, &err), 0);
    assert_string_equal(rec.tenant_id, TENANT);
    assert_true(rec.received_at_us == RECV);
    assert_true(same_str(rec.ev.event_type, ev.event_type));
    assert_true(str_is(rec.ev.event_type, "Order Completed"));
    assert_true(same_str(rec.ev.user_id, ev.user_id));
    assert_true(same_str(rec.ev.anonymous_id, ev.anonymous_id));
    assert_true(str_is(rec.ev.message_id, "client-msg-1"));
    assert_true(rec.ev.occurred_at_us == ev.occurred_at_us);
    assert_true(rec.ev.occurred_at_us == RECV - 1800 * S_US + 500000);
    assert_true(rec.ev.original_timestamp_us == ev.original_timestamp_us);
    assert_true(rec.ev.sent_at_us == ev.sent_at_us);
    assert_true(json_equal(rec.ev.properties, ev.properties));
    assert_true(json_equal(rec.ev.context, ev.context));
    eo_record_done(&rec);
    eo_record_done(&rec); /* idempotent */
    eo_record_done(NULL);
    eo_buf_done(&buf);
    json_decref(root);
}

/* The message id assigned by the collector is used when the client sent none; absent ids
 * and times are written as null and read back as absent. */
static void test_round_trip_minimal(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    json_t *root;
    eo_event_t ev = event_of("{'eventType':'e','anonymousId':7}", &lim, &root);
    eo_buf_t buf;
    eo_event_error_t err;
    eo_buf_init(&buf, 4096);
    const char *mid = "0190a5b6-0000-7000-8000-000000000001";
    assert_int_equal(
        eo_record_encode(TENANT, RECV, &ev, (eo_str_t){mid, strlen(mid)}, &lim, &buf, &err), 0);
    eo_record_t rec;
    assert_int_equal(eo_record_decode(buf.data, buf.len, &lim, &rec, &err), 0);
    assert_true(str_is(rec.ev.message_id, mid));
    assert_true(str_is(rec.ev.anonymous_id, "7"));
    assert_null(rec.ev.user_id.s);
    assert_true(rec.ev.occurred_at_us == RECV);
    assert_true(rec.ev.original_timestamp_us == EO_NO_TIME);
    assert_true(rec.ev.sent_at_us == EO_NO_TIME);
    assert_int_equal(json_object_size(rec.ev.properties), 0);
    assert_int_equal(json_object_size(rec.ev.context), 0);
    eo_record_done(&rec);
    eo_buf_done(&buf);
    json_decref(root);
}

static void test_key(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    static const struct {
        const char *event;
        const char *key;
    } cases[] = {
        {"{'eventType':'e','userId':'user-1'}", TENANT ":user-1"},
        {"{'eventType':'e','anonymousId':'anon-1'}", TENANT ":anon-1"},
        {"{'eventType':'e','userId':'user-1','anonymousId':'anon-1'}", TENANT ":user-1"},
        {"{'eventType':'e','userId':null,'anonymousId':'anon-1'}", TENANT ":anon-1"},
        {"{'eventType':'e','userId':42}", TENANT ":42"},
        {"{'eventType':'e','userId':'a:b \\u00e9'}", TENANT ":a:b \xc3\xa9"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *root;
        eo_event_t ev = event_of(cases[i].event, &lim, &root);
        eo_buf_t buf;
        eo_buf_init(&buf, 1024);
        assert_int_equal(eo_record_key(TENANT, &ev, &buf), 0);
        assert_int_equal(buf.len, strlen(cases[i].key));
        assert_string_equal(buf.data, cases[i].key);
        eo_buf_done(&buf);
        json_decref(root);
    }
}

/* too_large: the encoded event (not the envelope) is limited to max_event_bytes. */
static void test_too_large(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    json_t *root;
    eo_event_t ev =
        event_of("{'eventType':'e','userId':'u','properties':{'s':'0123456789'}}", &lim, &root);
    eo_buf_t ebuf;
    eo_buf_init(&ebuf, 4096);
    assert_int_equal(eo_event_encode(&ev, (eo_str_t){"m", 1}, &ebuf), 0);
    const size_t event_len = ebuf.len;
    eo_buf_done(&ebuf);

    for (size_t max = event_len - 2; max <= event_len + 1; max++) {
        lim.max_event_bytes = max;
        eo_buf_t buf;
        eo_event_error_t err;
        memset(&err, 0, sizeof err);
        eo_buf_init(&buf, 1 << 16);
        int r = eo_record_encode(TENANT, RECV, &ev, (eo_str_t){"m", 1}, &lim, &buf, &err);
        if (max >= event_len) {
            assert_int_equal(r, 0);
            eo_record_t rec;
            assert_int_equal(eo_record_decode(buf.data, buf.len, &lim, &rec, &err), 0);
            eo_record_done(&rec);
        } else {
            assert_int_equal(r, EO_ELIMIT);
            assert_string_equal(err.code, "too_large");
        }
        eo_buf_done(&buf);
    }
    json_decref(root);

    /* a record longer than max_event_bytes + the envelope allowance is refused unread */
    eo_event_limits_default(&lim);
    lim.max_event_bytes = 256;
    size_t len = 256 + EO_RECORD_ENVELOPE_MAX + 1;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, ' ', len);
    big[0] = '{';
    big[len - 1] = '}';
    eo_record_t rec;
    eo_event_error_t err;
    assert_int_equal(eo_record_decode(big, len, &lim, &rec, &err), EO_EINVAL);
    assert_string_equal(err.code, "too_large");
    eo_record_done(&rec);
    /* one byte less: read (and refused for other reasons) */
    assert_int_equal(eo_record_decode(big, len - 1, &lim, &rec, &err), EO_EPARSE);
    eo_record_done(&rec);
    free(big);
}

typedef struct {
    const char *record;
    const char *field;
} undecodable_row_t;

#define GOOD_EVENT                                                                                 \
    "{'messageId':'m','eventType':'e','userId':'u','timestamp':'2024-01-01T00:00:00Z'}"
#define GOOD_HEAD "'v':1,'tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00Z'"

static const undecodable_row_t undecodable[] = {
    {"not json", ""},
    {"{" GOOD_HEAD ",'event':" GOOD_EVENT "", ""},
    {"{" GOOD_HEAD ",'event':" GOOD_EVENT "} trailing", ""},
    {"{" GOOD_HEAD ",'v':1,'event':" GOOD_EVENT "}", ""},
    {"{'v':1,'tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00Z','event':"
     "{'messageId':'m','eventType':'e','eventType':'e','userId':'u'}}",
     ""},
    {"{'v':1,'event':\"\xff\"}", ""},
    {"[]", "v"},
    {"{}", "v"},
    {"{'tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00Z','event':" GOOD_EVENT "}", "v"},
    {"{'v':2,'tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00Z','event':" GOOD_EVENT "}",
     "v"},
    {"{'v':0,'tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00Z','event':" GOOD_EVENT "}",
     "v"},
    {"{'v':'1','tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00Z','event':" GOOD_EVENT "}",
     "v"},
    {"{'v':1.0,'tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00Z','event':" GOOD_EVENT "}",
     "v"},
    {"{'v':1,'receivedAt':'2024-01-01T00:00:00Z','event':" GOOD_EVENT "}", "tenantId"},
    {"{'v':1,'tenantId':null,'receivedAt':'2024-01-01T00:00:00Z','event':" GOOD_EVENT "}",
     "tenantId"},
    {"{'v':1,'tenantId':42,'receivedAt':'2024-01-01T00:00:00Z','event':" GOOD_EVENT "}",
     "tenantId"},
    {"{'v':1,'tenantId':'0190A5B6-1234-7ABC-8DEF-0123456789AB','receivedAt':'2024-01-01T00:00:"
     "00Z','event':" GOOD_EVENT "}",
     "tenantId"},
    {"{'v':1,'tenantId':'0190a5b61234-7abc-8def-0123456789ab','receivedAt':'2024-01-01T00:00:"
     "00Z','event':" GOOD_EVENT "}",
     "tenantId"},
    {"{'v':1,'tenantId':'{0190a5b6-1234-7abc-8def-0123456789ab}','receivedAt':'2024-01-01T00:"
     "00:00Z','event':" GOOD_EVENT "}",
     "tenantId"},
    {"{'v':1,'tenantId':'acme','receivedAt':'2024-01-01T00:00:00Z','event':" GOOD_EVENT "}",
     "tenantId"},
    {"{'v':1,'tenantId':'" TENANT "','event':" GOOD_EVENT "}", "receivedAt"},
    {"{'v':1,'tenantId':'" TENANT "','receivedAt':'yesterday','event':" GOOD_EVENT "}",
     "receivedAt"},
    {"{'v':1,'tenantId':'" TENANT "','receivedAt':'2024-02-30T00:00:00Z','event':" GOOD_EVENT "}",
     "receivedAt"},
    {"{'v':1,'tenantId':'" TENANT "','receivedAt':1704067200,'event':" GOOD_EVENT "}",
     "receivedAt"},
    {"{'v':1,'tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00Z'}", "event"},
    {"{" GOOD_HEAD ",'event':null}", "event"},
    {"{" GOOD_HEAD ",'event':[" GOOD_EVENT "]}", "event"},
    {"{" GOOD_HEAD ",'event':'e'}", "event"},
    {"{" GOOD_HEAD ",'event':42}", "event"},
};

static void test_undecodable(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    for (size_t i = 0; i < sizeof undecodable / sizeof undecodable[0]; i++) {
        char *s = quotes(undecodable[i].record);
        eo_record_t rec;
        eo_event_error_t err;
        memset(&err, 0, sizeof err);
        int r = eo_record_decode(s, strlen(s), &lim, &rec, &err);
        if (r != EO_EPARSE || strcmp(err.code, "undecodable") != 0 ||
            strcmp(err.field, undecodable[i].field) != 0)
            fail_msg("row %zu %s: r=%d code '%s' field '%s', want undecodable '%s'", i, s, r,
                     err.code, err.field, undecodable[i].field);
        eo_record_done(&rec);
        free(s);
    }
    /* empty, and NUL bytes */
    static const struct {
        const char *bytes;
        size_t len;
    } raw[] = {{"", 0}, {"\0", 1}, {"{}\0", 3}, {"{\"v\":1\0}", 8}};
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        eo_record_t rec;
        eo_event_error_t err;
        assert_int_equal(eo_record_decode(raw[i].bytes, raw[i].len, &lim, &rec, &err), EO_EPARSE);
        assert_string_equal(err.code, "undecodable");
        eo_record_done(&rec);
    }
}

/* The good record of the table above decodes; the same with each event rule broken returns
 * EO_EINVAL and the validation code. */
static void test_event_revalidated(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    static const struct {
        const char *event;
        const char *code, *field;
    } cases[] = {
        {GOOD_EVENT, NULL, NULL},
        {"{'eventType':'e','userId':'u','timestamp':'2024-01-01T00:00:00Z'}", "missing_field",
         "messageId"},
        {"{'messageId':'m','eventType':'e','userId':'u'}", "missing_field", "timestamp"},
        {"{'messageId':'m','userId':'u','timestamp':'2024-01-01T00:00:00Z'}", "missing_field",
         "eventType"},
        {"{'messageId':'m','eventType':'e','timestamp':'2024-01-01T00:00:00Z'}", "missing_field",
         "userId"},
        {"{'messageId':'m','eventType':'','userId':'u','timestamp':'2024-01-01T00:00:00Z'}",
         "empty_value", "eventType"},
        {"{'messageId':'m','eventType':'e','userId':1.5,'timestamp':'2024-01-01T00:00:00Z'}",
         "invalid_type", "userId"},
        /* receivedAt 2024-01-01: more than 86400 s ahead, more than 3650 days back */
        {"{'messageId':'m','eventType':'e','userId':'u','timestamp':'2024-01-02T00:00:01Z'}",
         "timestamp_out_of_range", "timestamp"},
        {"{'messageId':'m','eventType':'e','userId':'u','timestamp':'2000-01-01T00:00:00Z'}",
         "timestamp_out_of_range", "timestamp"},
        {"{'messageId':'m','eventType':'e','userId':'u','timestamp':'2024-01-01T00:00:00Z',"
         "'properties':[1]}",
         "invalid_type", "properties"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "{" GOOD_HEAD ",'event':%s}", cases[i].event);
        char *s = quotes(text);
        eo_record_t rec;
        eo_event_error_t err;
        memset(&err, 0, sizeof err);
        int r = eo_record_decode(s, strlen(s), &lim, &rec, &err);
        if (!cases[i].code) {
            if (r != 0)
                fail_msg("%s: r=%d %s %s", s, r, err.code, err.field);
            assert_string_equal(rec.tenant_id, TENANT);
        } else if (r != EO_EINVAL || strcmp(err.code, cases[i].code) != 0 ||
                   strcmp(err.field, cases[i].field) != 0) {
            fail_msg("%s: r=%d code '%s' field '%s', want %s %s", s, r, err.code, err.field,
                     cases[i].code, cases[i].field);
        }
        eo_record_done(&rec);
        free(s);
    }
}

static void test_uuid_valid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int valid;
    } rows[] = {
        {TENANT, 1},
        {"00000000-0000-0000-0000-000000000000", 1},
        {"ffffffff-ffff-ffff-ffff-ffffffffffff", 1},
        {"0190A5B6-1234-7abc-8def-0123456789ab", 0},
        {"0190a5b6-1234-7abc-8def-0123456789aB", 0},
        {"0190a5b6-1234-7abc-8def-0123456789a", 0},
        {"0190a5b6-1234-7abc-8def-0123456789abc", 0},
        {"0190a5b6-1234-7abc-8def_0123456789ab", 0},
        {"0190a5b61-234-7abc-8def-0123456789ab", 0},
        {"0190a5b6-1234-7abc-8def-0123456789ag", 0},
        {"0190a5b6123447abc48def40123456789ab0", 0},
        {"0190a5b612347abc8def0123456789ab", 0},
        {"{0190a5b6-1234-7abc-8def-0123456789a}", 0},
        {"0190a5b6-1234-7abc-8def-0123456789 b", 0},
        {"------------------------------------", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (eo_uuid_valid(rows[i].s, strlen(rows[i].s)) != rows[i].valid)
            fail_msg("'%s': want %d", rows[i].s, rows[i].valid);
    /* only n bytes are looked at */
    assert_int_equal(eo_uuid_valid(TENANT "trailing", 36), 1);
    assert_int_equal(eo_uuid_valid(TENANT, 35), 0);
}

/* A path of the engine's kind ("properties.<key>" or "context.<key>", one level). */
static eo_path_t one_key_path(eo_path_root_t root, const char *key)
{
    eo_path_t p;
    memset(&p, 0, sizeof p);
    p.root = root;
    const char *prefix = root == EO_PATH_PROPERTIES ? "properties." : "context.";
    snprintf(p.text, sizeof p.text, "%s%s", prefix, key);
    p.nkeys = 1;
    p.key_off[0] = strlen(prefix);
    p.key_len[0] = strlen(key);
    return p;
}

/* A stored event gives the record the collector wrote for it, as the engine reads it: the
 * same type, ids and times, and the same value (as text and as a number) under every path,
 * although jsonb rewrote the numbers (1e20 in plain notation, 2.50 kept, key order). */
static void test_from_stored(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    json_t *root;
    eo_event_t ev = event_of("{'eventType':'order','userId':'u-1','messageId':'m-1',"
                             "'timestamp':'2024-01-01T00:00:00.123456Z','properties':{'plan':"
                             "'pro','n':3,'big':1e20,'price':2.50,'ok':true,'none':null,"
                             "'nested':{'a':1}},'context':{'country':'DE'}}",
                             &lim, &root);
    eo_buf_t buf;
    eo_event_error_t err;
    eo_buf_init(&buf, 1 << 16);
    assert_int_equal(eo_record_encode(TENANT, RECV, &ev, (eo_str_t){NULL, 0}, &lim, &buf, &err), 0);
    eo_record_t live, stored;
    assert_int_equal(eo_record_decode(buf.data, buf.len, &lim, &live, &err), 0);
    /* what `properties::text` gives back for these properties */
    eo_stored_event_t row = {
        .tenant_id = TENANT,
        .message_id = "m-1",
        .event_type = "order",
        .user_id = "u-1",
        .occurred_at_us = live.ev.occurred_at_us,
        .received_at_us = RECV,
        .sent_at_us = EO_NO_TIME,
        .properties = "{\"n\": 3, \"ok\": true, \"big\": 100000000000000000000, \"none\": "
                      "null, \"plan\": \"pro\", \"price\": 2.50, \"nested\": {\"a\": 1}}",
        .context = "{\"country\": \"DE\"}",
    };
    assert_int_equal(eo_record_from_stored(&row, &stored, &err), 0);
    assert_string_equal(stored.tenant_id, TENANT);
    assert_true(stored.received_at_us == RECV);
    assert_true(same_str(stored.ev.event_type, live.ev.event_type));
    assert_true(same_str(stored.ev.user_id, live.ev.user_id));
    assert_true(same_str(stored.ev.anonymous_id, live.ev.anonymous_id));
    assert_null(stored.ev.anonymous_id.s);
    assert_true(same_str(stored.ev.message_id, live.ev.message_id));
    assert_true(stored.ev.occurred_at_us == live.ev.occurred_at_us);
    assert_true(stored.ev.original_timestamp_us == EO_NO_TIME);
    assert_true(stored.ev.sent_at_us == EO_NO_TIME);
    static const char *const keys[] = {"plan", "n", "big", "price", "ok", "none", "nested", "x"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        eo_path_t p = one_key_path(EO_PATH_PROPERTIES, keys[i]);
        char a[64], b[64];
        bool ha = eo_rule_path_text(&p, &live.ev, a, sizeof a);
        bool hb = eo_rule_path_text(&p, &stored.ev, b, sizeof b);
        if (ha != hb || strcmp(a, b) != 0)
            fail_msg("%s: the record gives %d '%s', the stored event %d '%s'", p.text, ha, a, hb,
                     b);
        double x = 0, y = 0;
        ha = eo_rule_path_number(&p, &live.ev, &x);
        hb = eo_rule_path_number(&p, &stored.ev, &y);
        if (ha != hb || x != y)
            fail_msg("%s: the record's number %d %g, the stored event's %d %g", p.text, ha, x, hb,
                     y);
    }
    eo_path_t country = one_key_path(EO_PATH_CONTEXT, "country");
    char c[16];
    assert_true(eo_rule_path_text(&country, &stored.ev, c, sizeof c));
    assert_string_equal(c, "DE");
    eo_record_done(&stored);
    eo_record_done(&live);
    /* properties and context absent: {} as in a record */
    eo_stored_event_t bare = {.tenant_id = TENANT,
                              .message_id = "m",
                              .event_type = "e",
                              .anonymous_id = "7",
                              .sent_at_us = EO_NO_TIME};
    assert_int_equal(eo_record_from_stored(&bare, &stored, &err), 0);
    assert_null(stored.ev.user_id.s);
    assert_true(str_is(stored.ev.anonymous_id, "7"));
    assert_int_equal(json_object_size(stored.ev.properties), 0);
    assert_int_equal(json_object_size(stored.ev.context), 0);
    eo_record_done(&stored);
    eo_buf_done(&buf);
    json_decref(root);
}

/* Every refusal of eo_record_from_stored names its column; a passing row for comparison. */
static void test_from_stored_refused(void **state)
{
    (void)state;
    static const struct {
        const char *tenant, *mid, *type, *user, *anon, *props, *ctx;
        const char *field; /* NULL: accepted */
    } rows[] = {
        {TENANT, "m", "e", "u", NULL, "{}", "{}", NULL},
        {"0190A5B6-1234-7ABC-8DEF-0123456789AB", "m", "e", "u", NULL, NULL, NULL, "tenant_id"},
        {"not-a-uuid", "m", "e", "u", NULL, NULL, NULL, "tenant_id"},
        {NULL, "m", "e", "u", NULL, NULL, NULL, "tenant_id"},
        {TENANT, "", "e", "u", NULL, NULL, NULL, "message_id"},
        {TENANT, NULL, "e", "u", NULL, NULL, NULL, "message_id"},
        {TENANT, "m", "", "u", NULL, NULL, NULL, "event_type"},
        {TENANT, "m", NULL, "u", NULL, NULL, NULL, "event_type"},
        {TENANT, "m", "e", NULL, NULL, NULL, NULL, "user_id"},
        {TENANT, "m", "e", "\xff\xfe", NULL, NULL, NULL, "user_id"},
        {TENANT, "m", "e\xc3", "u", NULL, NULL, NULL, "event_type"},
        {TENANT, "m", "e", "u", NULL, "[]", NULL, "properties"},
        {TENANT, "m", "e", "u", NULL, "{", NULL, "properties"},
        {TENANT, "m", "e", "u", NULL, "{\"a\":1,\"a\":2}", NULL, "properties"},
        {TENANT, "m", "e", "u", NULL, NULL, "null", "context"},
        {TENANT, "m", "e", "u", NULL, NULL, "{} x", "context"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        eo_stored_event_t row = {.tenant_id = rows[i].tenant,
                                 .message_id = rows[i].mid,
                                 .event_type = rows[i].type,
                                 .user_id = rows[i].user,
                                 .anonymous_id = rows[i].anon,
                                 .sent_at_us = EO_NO_TIME,
                                 .properties = rows[i].props,
                                 .context = rows[i].ctx};
        eo_record_t rec;
        eo_event_error_t err;
        memset(&err, 0, sizeof err);
        int r = eo_record_from_stored(&row, &rec, &err);
        eo_record_done(&rec);
        if (!rows[i].field) {
            if (r != 0)
                fail_msg("row %zu refused: %s %s", i, err.field, err.message);
            continue;
        }
        if (r != EO_EPARSE || strcmp(err.code, "undecodable") || strcmp(err.field, rows[i].field))
            fail_msg("row %zu: r=%d code '%s' field '%s', want EO_EPARSE undecodable '%s'", i, r,
                     err.code, err.field, rows[i].field);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_minimal),
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_undecodable),
        cmocka_unit_test(test_event_revalidated),
        cmocka_unit_test(test_uuid_valid),
        cmocka_unit_test(test_from_stored),
        cmocka_unit_test(test_from_stored_refused),
    };
    return cmocka_run_group_tests_name("record", tests, NULL, NULL);
}
