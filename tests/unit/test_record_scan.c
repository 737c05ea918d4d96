/* Unit tests of src/domain/record_scan.h: records written by eo_record_encode from many events,
 * and hand-written ones (escapes, unicode, integer ids, aliases, absent members, every order of
 * keys, unknown members, the nesting limit) scan to exactly what eo_record_decode gives;
 * malformed ones, and every prefix of a good one, are EO_EPARSE. Every input is scanned from a
 * heap copy of exactly its length, so that AddressSanitizer catches a read past len. */
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
#include "domain/record_scan.h"

#define RECV INT64_C(1704067200123456) /* 2024-01-01T00:00:00.123456Z */
#define TENANT "0190a5b6-1234-7abc-8def-0123456789ab"
#define HEAD "{'v':1,'tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00.123456Z',"

/* Replaces ' with " (test texts are written with ' for readability); the copy is exactly as
 * long as the text, without its NUL, so that reading past the end is caught. */
static char *exact(const char *text, size_t len)
{
    char *s = malloc(len ? len : 1);
    assert_non_null(s);
    for (size_t i = 0; i < len; i++)
        s[i] = text[i] == '\'' ? '"' : text[i];
    return s;
}

/* The widest limits config.c allows (and a timestamp window wider than any): what the
 * collector may have written under any configuration. */
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

static bool same_str(eo_str_t a, eo_str_t b)
{
    if (!a.s || !b.s)
        return a.s == b.s;
    return a.len == b.len && memcmp(a.s, b.s, a.len) == 0;
}

/* Both absent, or equal objects. */
static bool same_json(json_t *a, json_t *b)
{
    if (!a || !b)
        return a == b;
    return json_equal(a, b);
}

/* The record (len bytes, ' for ") decodes, and scans to the same values. */
static void assert_scans_as_decoded(const char *text, size_t len)
{
    char *bytes = exact(text, len);
    eo_event_limits_t lim;
    wide_limits(&lim);
    eo_record_t dec, rec;
    eo_event_error_t err;
    if (eo_record_decode(bytes, len, &lim, &dec, &err) != 0)
        fail_msg("row does not decode (%s %s: %s): %.*s", err.code, err.field, err.message,
                 (int)len, text);
    eo_record_scan_t *s = malloc(sizeof *s);
    assert_non_null(s);
    int r = eo_record_scan(bytes, len, s);
    if (r != 0)
        fail_msg("scan refused (%d): %.*s", r, (int)len, text);
    assert_string_equal(s->tenant_id, dec.tenant_id);
    assert_true(s->received_at_us == dec.received_at_us);
    assert_true(s->occurred_at_us == dec.ev.occurred_at_us);
    assert_true(s->original_timestamp_us == dec.ev.original_timestamp_us);
    assert_true(s->sent_at_us == dec.ev.sent_at_us);
    if (!same_str(s->event_type, dec.ev.event_type) || !same_str(s->user_id, dec.ev.user_id) ||
        !same_str(s->anonymous_id, dec.ev.anonymous_id) ||
        !same_str(s->message_id, dec.ev.message_id))
        fail_msg("strings differ: %.*s", (int)len, text);
    assert_int_equal(eo_record_from_scan(s, true, true, &rec), 0);
    assert_true(same_json(rec.ev.properties, dec.ev.properties));
    assert_true(same_json(rec.ev.context, dec.ev.context));
    assert_string_equal(rec.tenant_id, dec.tenant_id);
    assert_true(rec.received_at_us == dec.received_at_us);
    assert_true(same_str(rec.ev.event_type, dec.ev.event_type));
    assert_true(same_str(rec.ev.user_id, dec.ev.user_id));
    assert_true(same_str(rec.ev.anonymous_id, dec.ev.anonymous_id));
    assert_true(same_str(rec.ev.message_id, dec.ev.message_id));
    assert_true(rec.ev.occurred_at_us == dec.ev.occurred_at_us);
    eo_record_done(&rec);
    for (int want = 0; want < 3; want++) { /* only what is asked for is parsed */
        assert_int_equal(eo_record_from_scan(s, want == 1, want == 2, &rec), 0);
        assert_true(want == 1 ? same_json(rec.ev.properties, dec.ev.properties)
                              : rec.ev.properties == NULL);
        assert_true(want == 2 ? same_json(rec.ev.context, dec.ev.context) : rec.ev.context == NULL);
        eo_record_done(&rec);
    }
    eo_record_done(&dec);
    free(s);
    free(bytes);
}

static void assert_scan_refuses(const char *text, size_t len)
{
    char *bytes = exact(text, len);
    eo_record_scan_t *s = malloc(sizeof *s);
    assert_non_null(s);
    int r = eo_record_scan(bytes, len, s);
    if (r != EO_EPARSE)
        fail_msg("scan gave %d, not EO_EPARSE: %.*s", r, (int)len, text);
    free(s);
    free(bytes);
}

/* Client events (as the collector receives them), encoded into records as the collector does:
 * every one scans to what eo_record_decode gives. */
static void test_encoded(void **state)
{
    (void)state;
    static const char *const events[] = {
        "{'eventType':'e','userId':'u'}",
        "{'eventType':'e','anonymousId':7}",
        "{'eventType':'e','userId':42,'anonymousId':-9223372036854775808}",
        "{'eventType':'e','userId':-0}",
        "{'event':'Order Completed','userId':'user-1','anonymousId':'anon-1',"
        "'messageId':'client-msg-1','timestamp':'2023-12-31T23:00:00.5Z',"
        "'sentAt':'2023-12-31T23:30:00Z','properties':{'total':12.5,"
        "'items':[{'sku':'a'}]},'context':{'ip':'10.0.0.1'}}",
        "{'name':'n','userId':'u','metadata':{'m':[1,2.5e10,-0.0,true,false,null,{}]}}",
        "{'eventType':'quote \\\" backslash \\\\ slash \\/','userId':'new\\u00e9line',"
        "'properties':{'tab':'\\t','cr':'\\r','ff':'\\f','bs':'\\b'}}",
        "{'eventType':'caf\\u00e9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \\ud83d\\ude00',"
        "'userId':'\xc3\xa9','anonymousId':'\\u007e'}",
        "{'eventType':'e','userId':'u','properties':{'text':'line\\nbreak \\u0001 \\u001f',"
        "'k\\u00e9y':'\\\"','nested':{'a':{'b':{'c':[[[]]]}}}},'context':{'locale':'fr'}}",
        "{'eventType':'e','userId':'u','timestamp':'2024-01-01T01:00:00+01:00',"
        "'sentAt':'2024-01-01T00:00:01Z','originalTimestamp':'ignored on input'}",
        "{'eventType':'e','userId':'u','properties':{},'context':{}}",
        "{'eventType':'e','userId':'u','properties':null,'context':null,'anonymousId':null}",
        "{'eventType':'e','userId':'u','properties':{'big':123456789012345678,'neg':-1e-300,"
        "'exp':1E+300,'zero':0,'frac':0.1}}",
    };
    eo_event_limits_t lim;
    wide_limits(&lim);
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        char *text = exact(events[i], strlen(events[i]) + 1);
        json_error_t jerr;
        json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
            fail_msg("row %zu is not JSON: %s", i, jerr.text);
        eo_event_t ev;
        eo_event_error_t err;
        int r = eo_event_normalize(root, &lim, RECV, 0, &ev, &err);
        if (r != 0)
            fail_msg("row %zu refused: %s %s", i, err.code, err.field);
        eo_buf_t buf;
        eo_buf_init(&buf, 1 << 20);
        const char *mid = "0190a5b6-0000-7000-8000-000000000001";
        assert_int_equal(
            eo_record_encode(TENANT, RECV, &ev, (eo_str_t){mid, strlen(mid)}, &lim, &buf, &err), 0);
        assert_scans_as_decoded(buf.data, buf.len);
        eo_buf_done(&buf);
        json_decref(root);
        free(text);
    }
}

/* Hand-written records eo_record_decode accepts, beyond what the encoder writes. */
static void test_accepted(void **state)
{
    (void)state;
    static const char *const rows[] = {
        /* ids as integers, -0 as 0, the extremes of int64 */
        HEAD "'event':{'messageId':'m','eventType':'e','userId':42,'anonymousId':-0,"
             "'timestamp':'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'e','userId':9223372036854775807,"
             "'anonymousId':-9223372036854775808,'timestamp':'2024-01-01T00:00:00Z'}}",
        /* absent and null optional members */
        HEAD "'event':{'messageId':'m','eventType':'e','anonymousId':'a',"
             "'timestamp':'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'e','userId':null,'anonymousId':'a',"
             "'timestamp':'2024-01-01T00:00:00Z','originalTimestamp':null,'sentAt':null,"
             "'properties':null,'metadata':null,'context':null,'event':null,'name':null}}",
        /* escapes in keys and values: tenantId, times, ids, eventType (surrogate pairs) */
        "{'\\u0076':1,'tenant\\u0049d':'0190a5b6-1234-7abc-8def-0123456789\\u0061b',"
        "'receivedAt':'2024-01-01\\u005400:00:00.123456Z','\\u0065vent':{"
        "'message\\u0049d':'m\\u0031','eventType':'e','userId':'u','timestamp':"
        "'2024-01-01T00:00:00Z'}}",
        "{'v':1,'tenantId':'" TENANT "','receivedAt':'2024-01-01\\u005400:00:00.123456\\u005a',"
        "'event':{'messageId':'\\u006d\\/','eventType':'\\ud83d\\ude00 \\u00e9\\u65e5',"
        "'userId':'\\\"q\\\\','anonymousId':'\\u0020x','timestamp':'2024-01-01T00:00:00\\u002b"
        "01:00','sentAt':'2024-01-01T00:00:00Z','originalTimestamp':'2024-01-01T00:00:00.5Z'}}",
        /* aliases of eventType equal to it (spelled differently), metadata equal to properties */
        HEAD "'event':{'messageId':'m','eventType':'\\u00e9','event':'\xc3\xa9','name':null,"
             "'userId':'u','timestamp':'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','name':'n','event':null,'userId':'u',"
             "'timestamp':'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'e','userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z','properties':{'a':1,'b':[1,{'c':'\\u00e9'}]},"
             "'metadata':{ 'b' : [ 1 , { 'c' : '\xc3\xa9' } ] , 'a' : 1 }}}",
        HEAD "'event':{'messageId':'m','eventType':'e','userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z','properties':null,'metadata':{'only':'metadata'}}}",
        /* unknown members, with values of every kind, at both levels; whitespace everywhere */
        " \t\r\n{ 'x' : [ 1 , -2.5e-3 , true , false , null , 'str\\u00e9' , { 'y' : { } } ] ,"
        " 'v' : 1 , 'tenantId' : '" TENANT "' , 'receivedAt' : '2024-01-01T00:00:00Z' ,"
        " 'event' : { 'unknown' : { 'messageId' : 5 } , 'messageId' : 'm' , 'eventType' : 'e' ,"
        " 'userId' : 'u' , 'timestamp' : '2024-01-01T00:00:00Z' , 'v' : [ ] , 'x' : 1 ,"
        " 'y' : 'dup keys of unknown members are not read' } , 'z' : 0 } \n\t ",
        /* a 0x7f inside properties (it is refused only in ids and eventType) */
        HEAD "'event':{'messageId':'m','eventType':'e','userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z','properties':{'del':'\x7f'}}}",
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        assert_scans_as_decoded(rows[i], strlen(rows[i]));
    }
}

/* The members of the record and of its event, in many orders. */
static void test_key_orders(void **state)
{
    (void)state;
    const char *top[] = {"'v':1", "'tenantId':'" TENANT "'",
                         "'receivedAt':'2024-01-01T00:00:00.123456Z'", NULL};
    const char *members[] = {"'messageId':'m'",
                             "'eventType':'e'",
                             "'userId':'u'",
                             "'anonymousId':42",
                             "'timestamp':'2024-01-01T00:00:00Z'",
                             "'originalTimestamp':'2023-12-31T00:00:00Z'",
                             "'sentAt':null",
                             "'properties':{'plan':'pro','amount':12.5}",
                             "'context':{'ip':'10.0.0.1'}"};
    const size_t nm = sizeof members / sizeof members[0];
    char event[1024], record[2048];
    for (int perm = 0; perm < 24; perm++) {
        /* the perm-th permutation of the 4 top-level members, the event in an order of its
         * own (a rotation, reversed for odd permutations) */
        size_t order[4] = {0, 1, 2, 3}, rest = (size_t)perm;
        for (size_t k = 0; k < 4; k++) {
            size_t pick = k + rest % (4 - k);
            rest /= 4 - k;
            size_t t = order[k];
            order[k] = order[pick];
            order[pick] = t;
        }
        size_t n = 0;
        n += (size_t)snprintf(event + n, sizeof event - n, "'event':{");
        for (size_t k = 0; k < nm; k++) {
            size_t m = (perm % 2 ? nm - 1 - k : k + (size_t)perm) % nm;
            n += (size_t)snprintf(event + n, sizeof event - n, "%s%s", k ? "," : "", members[m]);
        }
        snprintf(event + n, sizeof event - n, "}");
        top[3] = event;
        n = 0;
        n += (size_t)snprintf(record + n, sizeof record - n, "{");
        for (size_t k = 0; k < 4; k++)
            n += (size_t)snprintf(record + n, sizeof record - n, "%s%s", k ? "," : "",
                                  top[order[k]]);
        n += (size_t)snprintf(record + n, sizeof record - n, "}");
        assert_true(n < sizeof record);
        assert_scans_as_decoded(record, n);
    }
}

/* Malformed records, and records eo_record_decode refuses in a field the scan returns. */
static void test_refused(void **state)
{
    (void)state;
#define EV "'messageId':'m','eventType':'e','userId':'u','timestamp':'2024-01-01T00:00:00Z'"
    static const char *const rows[] = {
        "",
        " ",
        "[]",
        "null",
        "1",
        "'v'",
        "{",
        "{}",
        HEAD "'event':{" EV "}",                              /* unterminated */
        HEAD "'event':{" EV "}}x",                            /* trailing garbage */
        HEAD "'event':{" EV "}}{}",                           /* a second value */
        HEAD "'event':{" EV ",}}",                            /* trailing comma */
        HEAD "'event':{" EV "},}",                            /* trailing comma */
        HEAD "'event':{" EV " 'x':1}}",                       /* a missing comma */
        HEAD "'event':{" EV ",'x' 1}}",                       /* a missing colon */
        HEAD "'event':{" EV ",'x':}}",                        /* a missing value */
        HEAD "'event':{" EV ",'x':01}}",                      /* a leading zero */
        HEAD "'x':1e400,'event':{" EV "}}",                   /* a real beyond double */
        HEAD "'event':{" EV ",'properties':{'a':-1e400}}}",   /* a real beyond double */
        HEAD "'event':{" EV ",'x':1797693134862315808e290}}", /* just past DBL_MAX */
        HEAD "'event':{" EV ",'x':-01}}",                     /* a leading zero */
        HEAD "'event':{" EV ",'x':1.}}",                      /* no fraction digit */
        HEAD "'event':{" EV ",'x':.5}}",                      /* no integer digit */
        HEAD "'event':{" EV ",'x':-}}",                       /* a lone minus */
        HEAD "'event':{" EV ",'x':+1}}",                      /* a plus */
        HEAD "'event':{" EV ",'x':1e}}",                      /* no exponent digit */
        HEAD "'event':{" EV ",'x':1e+}}",                     /* no exponent digit */
        HEAD "'event':{" EV ",'x':9223372036854775808}}",     /* beyond int64 */
        HEAD "'event':{" EV ",'x':-9223372036854775809}}",    /* beyond int64 */
        HEAD "'event':{" EV ",'x':12345678901234567890}}",    /* beyond int64 */
        HEAD "'event':{" EV ",'x':tru}}",                     /* a bad literal */
        HEAD "'event':{" EV ",'x':nul}}",                     /* a bad literal */
        HEAD "'event':{" EV ",'x':True}}",                    /* a bad literal */
        HEAD "'event':{" EV ",'x':[1,]}}",                    /* a trailing comma in an array */
        HEAD "'event':{" EV ",'x':[1}}",                      /* mismatched brackets */
        HEAD "'event':{" EV ",'x':{'a':1]}}",                 /* mismatched brackets */
        HEAD "'event':{" EV ",'x':{1:1}}}",                   /* a key that is not a string */
        HEAD "'event':{" EV ",'x':'\\x'}}",                   /* a bad escape */
        HEAD "'event':{" EV ",'x':'\\u12'}}",                 /* a short \u */
        HEAD "'event':{" EV ",'x':'\\u12g4'}}",               /* a bad hex digit */
        HEAD "'event':{" EV ",'x':'\\u0000'}}",               /* NUL */
        HEAD "'event':{" EV ",'\\u0000':1}}",                 /* NUL in a key */
        HEAD "'event':{" EV ",'x':'\\ud800'}}",               /* a lone high surrogate */
        HEAD "'event':{" EV ",'x':'\\ud800x'}}",              /* a lone high surrogate */
        HEAD "'event':{" EV ",'x':'\\udc00'}}",               /* a lone low surrogate */
        HEAD "'event':{" EV ",'x':'\\ud800\\u0041'}}",        /* not a low surrogate */
        HEAD "'event':{" EV ",'x':'\\ud800\\n'}}",            /* not a low surrogate */
        HEAD "'event':{" EV ",'x':'\xc0\x80'}}",              /* an overlong NUL */
        HEAD "'event':{" EV ",'x':'\xe0\x80\xaf'}}",          /* an overlong '/' */
        HEAD "'event':{" EV ",'x':'\xed\xa0\x80'}}",          /* a surrogate in UTF-8 */
        HEAD "'event':{" EV ",'x':'\xf4\x90\x80\x80'}}",      /* past U+10FFFF */
        HEAD "'event':{" EV ",'x':'\xf5\x80\x80\x80'}}",      /* F5 */
        HEAD "'event':{" EV ",'x':'\x80'}}",                  /* a lone continuation byte */
        HEAD "'event':{" EV ",'x':'\xc3'}}",                  /* a truncated sequence */
        HEAD "'event':{" EV ",'x':'\xe6\x97'}}",              /* a truncated sequence */
        HEAD "'event':{" EV ",'x':'a\tb'}}",                  /* a raw control character */
        HEAD "'event':{" EV ",'x':'a\nb'}}",                  /* a raw newline */
        HEAD "'event':{" EV ",'x':\xc3\xa9}}",                /* UTF-8 outside a string */
        "\xef\xbb\xbf" HEAD "'event':{" EV "}}",              /* a byte order mark */
        HEAD "'event':{" EV "}}\x0b",                         /* whitespace jansson does not skip */
        /* the record's members */
        "{'tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00Z','event':{" EV "}}",
        "{'v':2,'tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00Z','event':{" EV "}}",
        "{'v':'1','tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00Z','event':{" EV "}}",
        "{'v':1.0,'tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00Z','event':{" EV "}}",
        "{'v':1e0,'tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00Z','event':{" EV "}}",
        "{'v':null,'tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00Z','event':{" EV "}}",
        "{'v':1,'v':1,'tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00Z','event':{" EV
        "}}",
        "{'v':1,'\\u0076':1,'tenantId':'" TENANT "','receivedAt':'2024-01-01T00:00:00Z',"
        "'event':{" EV "}}",
        HEAD "'event':{" EV "},'event':{" EV "}}",
        HEAD "'tenantId':'" TENANT "','event':{" EV "}}",
        "{'v':1,'receivedAt':'2024-01-01T00:00:00Z','event':{" EV "}}",
        "{'v':1,'tenantId':'0190A5B6-1234-7abc-8def-0123456789ab','receivedAt':"
        "'2024-01-01T00:00:00Z','event':{" EV "}}",
        "{'v':1,'tenantId':'0190a5b6-1234-7abc-8def-0123456789a','receivedAt':"
        "'2024-01-01T00:00:00Z','event':{" EV "}}",
        "{'v':1,'tenantId':'0190a5b6-1234-7abc-8def-0123456789abc','receivedAt':"
        "'2024-01-01T00:00:00Z','event':{" EV "}}",
        "{'v':1,'tenantId':null,'receivedAt':'2024-01-01T00:00:00Z','event':{" EV "}}",
        "{'v':1,'tenantId':'" TENANT "','event':{" EV "}}",
        "{'v':1,'tenantId':'" TENANT "','receivedAt':'2024-13-01T00:00:00Z','event':{" EV "}}",
        "{'v':1,'tenantId':'" TENANT "','receivedAt':'yesterday','event':{" EV "}}",
        "{'v':1,'tenantId':'" TENANT "','receivedAt':1704067200,'event':{" EV "}}",
        HEAD "'event':null}",
        HEAD "'event':[]}",
        HEAD "'event':'e'}",
        HEAD "'x':1}",
        /* the event's members */
        HEAD "'event':{}}",
        HEAD "'event':{'eventType':'e','userId':'u','timestamp':'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':null,'eventType':'e','userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':5,'eventType':'e','userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'','eventType':'e','userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'  ','eventType':'e','userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'\\u0020','eventType':'e','userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'a\\nb','eventType':'e','userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'a\x7f','eventType':'e','userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'a\\u007f','eventType':'e','userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','messageId':'m','eventType':'e','userId':'u',"
             "'timestamp':'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{" EV ",'user\\u0049d':'u'}}",
        HEAD "'event':{" EV ",'timestamp':null}}",
        HEAD "'event':{'messageId':'m','userId':'u','timestamp':'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':null,'event':null,'userId':'u',"
             "'timestamp':'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'a','event':'b','userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'a','name':'a ','userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'a','name':5,'userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':5,'userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','event':5,'name':5,'userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':' ','userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'\\t','userId':'u','timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'e','timestamp':'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'e','userId':null,'anonymousId':null,"
             "'timestamp':'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'e','userId':1.5,'timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'e','userId':1e3,'timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'e','userId':true,'timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'e','userId':['u'],'timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'e','userId':'','timestamp':"
             "'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'e','userId':'u','anonymousId':'',"
             "'timestamp':'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'e','userId':9223372036854775808,"
             "'timestamp':'2024-01-01T00:00:00Z'}}",
        HEAD "'event':{'messageId':'m','eventType':'e','userId':'u','timestamp':5}}",
        HEAD "'event':{'messageId':'m','eventType':'e','userId':'u','timestamp':"
             "'2024-01-01 00:00:00Z'}}",
        HEAD "'event':{" EV ",'originalTimestamp':'2024-02-30T00:00:00Z'}}",
        HEAD "'event':{" EV ",'originalTimestamp':0}}",
        HEAD "'event':{" EV ",'sentAt':'now'}}",
        HEAD "'event':{" EV ",'sentAt':{}}}",
        HEAD "'event':{" EV ",'properties':[]}}",
        HEAD "'event':{" EV ",'properties':'p'}}",
        HEAD "'event':{" EV ",'properties':null,'metadata':[]}}",
        HEAD "'event':{" EV ",'properties':{'a':1},'metadata':{'a':2}}}",
        HEAD "'event':{" EV ",'properties':{'a':1},'metadata':{'a':1.0}}}",
        HEAD "'event':{" EV ",'properties':{'a':1},'metadata':{'a':1,'b':2}}}",
        HEAD "'event':{" EV ",'properties':{'a':1},'metadata':'x'}}",
        HEAD "'event':{" EV ",'properties':'x','metadata':'x'}}",
        HEAD "'event':{" EV ",'context':[]}}",
        HEAD "'event':{" EV ",'context':true}}",
        HEAD "'event':{" EV ",'context':{},'context':{}}}",
    };
#undef EV
    eo_event_limits_t lim;
    wide_limits(&lim);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t len = strlen(rows[i]);
        char *bytes = exact(rows[i], len);
        eo_record_t dec;
        eo_event_error_t err;
        if (eo_record_decode(bytes, len, &lim, &dec, &err) == 0) /* keeps the rows honest */
            fail_msg("row %zu decodes: %s", i, rows[i]);
        eo_record_done(&dec);
        free(bytes);
        assert_scan_refuses(rows[i], len);
    }
    /* a NUL byte, inside a string and outside */
    static const char nul_in[] = HEAD "'event':{'messageId':'m\0','eventType':'e','userId':'u',"
                                      "'timestamp':'2024-01-01T00:00:00Z'}}";
    assert_scan_refuses(nul_in, sizeof nul_in - 1);
    static const char nul_out[] = HEAD "'event':{'messageId':'m','eventType':'e','userId':'u',"
                                       "'timestamp':'2024-01-01T00:00:00Z'}}\0";
    assert_scan_refuses(nul_out, sizeof nul_out - 1);
    /* no bytes at all */
    eo_record_scan_t *s = malloc(sizeof *s);
    assert_non_null(s);
    assert_int_equal(eo_record_scan(NULL, 0, s), EO_EPARSE);
    free(s);
}

/* What the scan documents it does not check (record_scan.h): records eo_record_decode refuses
 * that scan; eo_record_from_scan still refuses properties/context jansson refuses. */
static void test_not_checked(void **state)
{
    (void)state;
#define EV "'messageId':'m','eventType':'e','userId':'u','timestamp':'2024-01-01T00:00:00Z'"
    static const struct {
        const char *text;
        int from_scan; /* eo_record_from_scan with properties and context */
    } rows[] = {
        /* duplicates among keys it skips, and inside values it skips */
        {HEAD "'x':1,'x':2,'event':{" EV "}}", 0},
        {HEAD "'event':{" EV ",'x':1,'x':2}}", 0},
        {HEAD "'event':{" EV ",'properties':{'a':1,'a':2}}}", EO_EPARSE},
        {HEAD "'event':{" EV ",'context':{'a':{'b':1,'b':1}}}}", EO_EPARSE},
        /* a limit: the timestamp window around receivedAt */
        {HEAD "'event':{'messageId':'m','eventType':'e','userId':'u','timestamp':"
              "'0001-01-01T00:00:00Z'}}",
         0},
    };
#undef EV
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t len = strlen(rows[i].text);
        char *bytes = exact(rows[i].text, len);
        eo_record_t dec;
        eo_event_error_t err;
        assert_int_not_equal(eo_record_decode(bytes, len, &lim, &dec, &err), 0);
        eo_record_done(&dec);
        eo_record_scan_t *s = malloc(sizeof *s);
        assert_non_null(s);
        assert_int_equal(eo_record_scan(bytes, len, s), 0);
        eo_record_t rec;
        assert_int_equal(eo_record_from_scan(s, true, true, &rec), rows[i].from_scan);
        eo_record_done(&rec);
        assert_int_equal(eo_record_from_scan(s, false, false, &rec), 0);
        eo_record_done(&rec);
        free(s);
        free(bytes);
    }
    /* a limit: an eventType of 5000 bytes, longer than any configuration allows (without
     * escapes it is not copied into the scratch) */
    eo_buf_t b;
    eo_buf_init(&b, 1 << 16);
    eo_buf_puts(&b, "{\"v\":1,\"tenantId\":\"" TENANT "\",\"receivedAt\":\"2024-01-01T00:00:00Z\","
                    "\"event\":{\"messageId\":\"m\",\"userId\":\"u\",\"timestamp\":"
                    "\"2024-01-01T00:00:00Z\",\"eventType\":\"");
    for (int k = 0; k < 5000; k++)
        eo_buf_putc(&b, 'e');
    eo_buf_puts(&b, "\"}}");
    assert_int_equal(eo_buf_error(&b), 0);
    eo_record_scan_t *s = malloc(sizeof *s);
    assert_non_null(s);
    assert_int_equal(eo_record_scan(b.data, b.len, s), 0);
    assert_int_equal(s->event_type.len, 5000);
    free(s);
    eo_buf_done(&b);
}

/* Every prefix of a good record is refused, and nothing past len is read (ASan): the bytes
 * after len would complete the record. */
static void test_prefixes(void **state)
{
    (void)state;
    static const char text[] =
        HEAD "'event':{'messageId':'m\\u00e9','eventType':'\\ud83d\\ude00','userId':-12,"
             "'anonymousId':'a\xc3\xa9','timestamp':'2024-01-01T00:00:00Z','originalTimestamp':"
             "null,'sentAt':'2024-01-01T00:00:00Z','properties':{'a':[1.5e3,true,false,null,"
             "{'b':'\\\"'}],'n':-0},'context':{}},'x':[[{}]]}";
    const size_t len = sizeof text - 1;
    assert_scans_as_decoded(text, len);
    for (size_t n = 0; n < len; n++)
        assert_scan_refuses(text, n);
}

/* Nesting: jansson reads at most JSON_PARSER_MAX_DEPTH levels (the record is level 1), and so
 * does the scan, in values it skips too: an unknown member 'deep' (level 2) holds containers
 * down to the last level, then either nothing more (accepted) or a scalar (refused). */
static void test_depth(void **state)
{
    (void)state;
    for (int object = 0; object < 2; object++) {
        for (int extra = 0; extra < 2; extra++) {
            eo_buf_t b;
            eo_buf_init(&b, 1 << 20);
            eo_buf_puts(&b, HEAD "'event':{'messageId':'m','eventType':'e','userId':'u',"
                                 "'timestamp':'2024-01-01T00:00:00Z'},'deep':");
            for (int level = 2; level <= JSON_PARSER_MAX_DEPTH; level++)
                eo_buf_puts(&b, object && level < JSON_PARSER_MAX_DEPTH ? "{'k':" : "[");
            if (extra)
                eo_buf_puts(&b, "0");
            for (int level = JSON_PARSER_MAX_DEPTH; level >= 2; level--)
                eo_buf_puts(&b, object && level < JSON_PARSER_MAX_DEPTH ? "}" : "]");
            eo_buf_puts(&b, "}");
            assert_int_equal(eo_buf_error(&b), 0);
            if (extra) {
                eo_event_limits_t lim;
                wide_limits(&lim);
                char *bytes = exact(b.data, b.len);
                eo_record_t dec;
                eo_event_error_t err;
                assert_int_equal(eo_record_decode(bytes, b.len, &lim, &dec, &err), EO_EPARSE);
                eo_record_done(&dec);
                free(bytes);
                assert_scan_refuses(b.data, b.len);
            } else {
                assert_scans_as_decoded(b.data, b.len);
            }
            eo_buf_done(&b);
        }
    }
}

/* Strings with escapes are copied into the scan's scratch: the largest ids and eventType the
 * configuration allows fit; a record whose unescaped strings do not fit is refused. */
static void test_scratch(void **state)
{
    (void)state;
    for (int over = 0; over < 2; over++) {
        size_t type_chars = 4096 + (over ? 1 : 0);
        eo_buf_t b;
        eo_buf_init(&b, 1 << 20);
        eo_buf_puts(&b, "{\"v\":1,\"tenantId\":\"" TENANT "\",\"receivedAt\":"
                        "\"2024-01-01T00:00:00Z\",\"event\":{\"timestamp\":"
                        "\"2024-01-01T00:00:00Z\"");
        static const char *const fields[] = {"messageId", "userId", "anonymousId", "eventType"};
        for (size_t f = 0; f < 4; f++) {
            eo_buf_putf(&b, ",\"%s\":\"", fields[f]);
            for (size_t k = 0; k < (f == 3 ? type_chars : 4096); k++)
                eo_buf_puts(&b, "\\u0041");
            eo_buf_putc(&b, '"');
        }
        eo_buf_puts(&b, "}}");
        assert_int_equal(eo_buf_error(&b), 0);
        if (over)
            assert_scan_refuses(b.data, b.len);
        else
            assert_scans_as_decoded(b.data, b.len);
        eo_buf_done(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoded),     cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_key_orders),  cmocka_unit_test(test_refused),
        cmocka_unit_test(test_not_checked), cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_depth),       cmocka_unit_test(test_scratch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
