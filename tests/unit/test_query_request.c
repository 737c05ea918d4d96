/* Unit tests of src/domain/query_request.h: the query API's parameter contract without a
 * server. Tables of requests (as query strings, percent-decoded here as the HTTP layer does)
 * against the endpoints' specs as eo_q_endpoints declares them, with the exact status of each:
 * 0, or the 400's field and message. Every rule has a passing and a failing row: unknown,
 * repeated, bare and unclean arguments (and the field's sanitising), eventType length, from/to
 * (RFC 3339, order, defaults from the passed time), tz (shape and the zone list), interval
 * (names, aliases, the trend default), period and periods, startEvent/returnEvent, limit (and
 * each endpoint's default), property (and its text[] literal), steps and within, userId and
 * cursor; which error wins when several parameters are bad; and what a valid request holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/query_request.h"
#include "domain/rfc3339.h"

/* The specs of eo_q_endpoints (src/query/endpoints.c). */
enum { COUNT, TREND, UNIQUE, BREAKDOWN, FUNNEL, RETENTION, TYPES, EVENTS };
static const eo_qreq_spec_t specs[] = {
    [COUNT] = {.params = "eventType from to"},
    [TREND] = {.params = "eventType interval from to tz",
               .has_default_interval = true,
               .default_interval = EO_Q_DAY},
    [UNIQUE] = {.params = "eventType from to interval tz"},
    [BREAKDOWN] = {.params = "eventType property from to limit", .default_limit = 10},
    [FUNNEL] = {.params = "steps within from to"},
    [RETENTION] = {.params = "startEvent returnEvent period periods from to tz"},
    [TYPES] = {.params = ""},
    [EVENTS] = {.params = "eventType userId from to limit cursor"},
};

static const char *const zones[] = {"America/New_York", "Asia/Kolkata", "Australia/Lord_Howe",
                                    "Europe/Berlin", "UTC"};

#define NOW_US INT64_C(1774872000500000) /* 2026-03-30T12:00:00.5Z */
#define NEXT_S INT64_C(1774872001000000) /* the next whole second */
#define WEEK_US (INT64_C(7) * 86400 * 1000000)
#define CURSOR_US INT64_C(1774872000123456) /* 2026-03-30T12:00:00.123456Z */

static eo_qreq_env_t env(void)
{
    return (eo_qreq_env_t){
        .now_us = NOW_US,
        .max_event_type_bytes = 200,
        .max_id_bytes = 255,
        .max_periods = 90,
        .max_limit = 1000,
        .max_funnel_steps = 10,
        .max_within_s = 7776000,
        .max_buckets = 5000,
        .zones = zones,
        .nzones = sizeof zones / sizeof zones[0],
    };
}

/* A decoded query string: names and values in one arena. */
typedef struct {
    char text[8192];
    const char *name[64];
    const char *value[64];
    size_t len[64];
    size_t n;
} qs_t;

static int hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c - 'a' + 10;
}

/* Decodes one piece (%XX, + as space) into the arena; its length. */
static size_t decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n) {
            out[o++] = (char)(hex(s[i + 1]) * 16 + hex(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    out[o] = '\0';
    return o;
}

static void qs_parse(qs_t *q, const char *s)
{
    memset(q, 0, sizeof *q);
    size_t at = 0;
    while (*s) {
        size_t w = strcspn(s, "&");
        const char *eq = memchr(s, '=', w);
        char *name = q->text + at;
        at += decode(s, eq ? (size_t)(eq - s) : w, name) + 1;
        q->name[q->n] = name;
        if (eq) {
            char *value = q->text + at;
            q->len[q->n] = decode(eq + 1, w - (size_t)(eq - s) - 1, value);
            at += q->len[q->n] + 1;
            q->value[q->n] = value;
        }
        q->n++;
        s += w;
        if (*s == '&')
            s++;
    }
}

/* Parses query string qs for endpoint ep; the result, with *r and *error filled. */
static int parse(int ep, const char *qs, eo_qreq_t *r, eo_qreq_error_t *error)
{
    static qs_t q; /* the request's strings must outlive *r */
    qs_parse(&q, qs);
    eo_qargs_t a;
    eo_qargs_init(&a, &specs[ep]);
    for (size_t i = 0; i < q.n; i++)
        if (!eo_qargs_add(&a, q.name[i], q.value[i], q.len[i]))
            break;
    eo_qreq_env_t e = env();
    return eo_qreq_parse(&specs[ep], &a, &e, r, error);
}

typedef struct {
    int ep;
    const char *qs;
    const char *field;   /* NULL: the request is valid */
    const char *message; /* the 400's message */
} row_t;

#define R "from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z"
#define RET "startEvent=signup&returnEvent=visit&"

static const row_t rows[] = {
    /* arguments */
    {COUNT, R, NULL, NULL},
    {COUNT, "foo=1", "foo", "unknown parameter; this endpoint takes: eventType from to"},
    {COUNT, "eventtype=a", "eventtype",
     "unknown parameter; this endpoint takes: eventType from to"},
    {COUNT, "bogus=", "bogus", "unknown parameter; this endpoint takes: eventType from to"},
    {TYPES, "", NULL, NULL},
    {TYPES, "from=2026-03-01T00:00:00Z", "from", "unknown parameter; this endpoint takes: "},
    {RETENTION, "x=1", "x",
     "unknown parameter; this endpoint takes: startEvent returnEvent period periods from to tz"},
    {COUNT, "f%01o%FF=1", "f?o?", "unknown parameter; this endpoint takes: eventType from to"},
    {COUNT,
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1",
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "unknown parameter; this endpoint takes: eventType from to"},
    {COUNT, "eventType=a&eventType=a", "eventType", "the parameter is given more than once"},
    {COUNT, "eventType", "eventType", "the parameter has no value"},
    {COUNT, "eventType=a%00b", "eventType", "the value holds a control character or is not UTF-8"},
    {COUNT, "eventType=a%1Fb", "eventType", "the value holds a control character or is not UTF-8"},
    {COUNT, "eventType=a%7F", "eventType", "the value holds a control character or is not UTF-8"},
    {COUNT, "eventType=%C3%28", "eventType", "the value holds a control character or is not UTF-8"},
    {COUNT, "eventType=caf%C3%A9", NULL, NULL},
    /* the first refused argument ends the collection */
    {COUNT, "foo=1&eventType", "foo", "unknown parameter; this endpoint takes: eventType from to"},
    /* eventType */
    {COUNT, "eventType=", "eventType", "eventType must be 1 to 200 bytes"},
    /* from and to */
    {COUNT, "from=yesterday", "from", "from must be an RFC 3339 time, e.g. 2026-03-29T00:00:00Z"},
    {COUNT, "to=2026-13-01T00:00:00Z", "to",
     "to must be an RFC 3339 time, e.g. 2026-03-30T00:00:00Z"},
    {COUNT, "from=2026-03-02T00:00:00Z&to=2026-03-02T00:00:00Z", "from", "from must be before to"},
    {COUNT, "from=2026-03-03T00:00:00Z&to=2026-03-02T00:00:00Z", "from", "from must be before to"},
    {COUNT, "from=2026-03-30T12:00:01Z", "from", "from must be before to (default: now)"},
    {COUNT, "from=2026-03-30T12:00:00.9Z", NULL, NULL},
    {COUNT, "to=2026-01-01T00:00:00Z", NULL, NULL},
    /* tz */
    {TREND, R "&tz=Europe/Berlin", NULL, NULL},
    {TREND, R "&tz=Mars/Olympus", "tz", "tz must be an IANA time zone name, e.g. Europe/Berlin"},
    {TREND, R "&tz=europe/berlin", "tz", "tz must be an IANA time zone name, e.g. Europe/Berlin"},
    {TREND, R "&tz=/UTC", "tz", "tz must be an IANA time zone name, e.g. Europe/Berlin"},
    {TREND, R "&tz=", "tz", "tz must be an IANA time zone name, e.g. Europe/Berlin"},
    /* interval */
    {TREND, R "&interval=hourly", NULL, NULL},
    {TREND, R "&interval=fortnight", "interval",
     "interval must be minute, hour, day, week or month (or hourly, daily, weekly, monthly)"},
    {UNIQUE, R "&interval=minute", NULL, NULL},
    {UNIQUE, R "&interval=Day", "interval",
     "interval must be minute, hour, day, week or month (or hourly, daily, weekly, monthly)"},
    /* period, periods, startEvent, returnEvent */
    {RETENTION, RET R, NULL, NULL},
    {RETENTION, RET "period=weekly&periods=90", NULL, NULL},
    {RETENTION, RET "period=month", "period", "period must be day or week (or daily, weekly)"},
    {RETENTION, RET "periods=0", "periods", "periods must be an integer from 1 to 90"},
    {RETENTION, RET "periods=91", "periods", "periods must be an integer from 1 to 90"},
    {RETENTION, "returnEvent=visit", "startEvent", "startEvent is required"},
    {RETENTION, "startEvent=signup", "returnEvent", "returnEvent is required"},
    {RETENTION, "startEvent=&returnEvent=visit", "startEvent", "startEvent must be 1 to 200 bytes"},
    /* limit */
    {BREAKDOWN, "property=plan&limit=1000", NULL, NULL},
    {BREAKDOWN, "property=plan&limit=0", "limit", "limit must be an integer from 1 to 1000"},
    {EVENTS, "limit=1001", "limit", "limit must be an integer from 1 to 1000"},
    {EVENTS, "limit=-1", "limit", "limit must be an integer from 1 to 1000"},
    /* property */
    {BREAKDOWN, "property=plan.tier", NULL, NULL},
    {BREAKDOWN, "eventType=a", "property", "property is required (a path such as plan)"},
    {BREAKDOWN, "property=a..b", "property",
     "property must be 1 to 4 names joined by '.', each 1 to 64 of A-Z a-z 0-9 _ $ -"},
    {BREAKDOWN, "property=a.b.c.d.e", "property",
     "property must be 1 to 4 names joined by '.', each 1 to 64 of A-Z a-z 0-9 _ $ -"},
    /* steps and within */
    {FUNNEL, "steps=a,b,c", NULL, NULL},
    {FUNNEL, "within=1d", "steps", "steps must list 2 to 10 event types, comma-separated"},
    {FUNNEL, "steps=a", "steps", "steps must list 2 to 10 event types, comma-separated"},
    {FUNNEL, "steps=a,,b", "steps", "steps must list 2 to 10 event types, comma-separated"},
    {FUNNEL, "steps=1,2,3,4,5,6,7,8,9,10", NULL, NULL},
    {FUNNEL, "steps=1,2,3,4,5,6,7,8,9,10,11", "steps",
     "steps must list 2 to 10 event types, comma-separated"},
    {FUNNEL, "steps=a,b&within=90d", NULL, NULL},
    {FUNNEL, "steps=a,b&within=91d", "within",
     "within must be a number and a unit s, m, h, d or w (e.g. 1d), from 1 s to 7776000 s"},
    {FUNNEL, "steps=a,b&within=1y", "within",
     "within must be a number and a unit s, m, h, d or w (e.g. 1d), from 1 s to 7776000 s"},
    /* userId and cursor */
    {EVENTS, "userId=u1", NULL, NULL},
    {EVENTS, "userId=", "userId", "userId must be 1 to 255 bytes"},
    {EVENTS, "cursor=abc", "cursor",
     "cursor is not a cursor this API gave (pass nextCursor back unchanged)"},
    {EVENTS, "cursor=", "cursor",
     "cursor is not a cursor this API gave (pass nextCursor back unchanged)"},
    /* which error wins: the fixed order, not the order given */
    {TREND, "tz=Nowhere&from=bad", "from",
     "from must be an RFC 3339 time, e.g. 2026-03-29T00:00:00Z"},
    {TREND, "interval=x&tz=Nowhere", "tz", "tz must be an IANA time zone name, e.g. Europe/Berlin"},
    {RETENTION, "periods=0&period=x&startEvent=a&returnEvent=b", "period",
     "period must be day or week (or daily, weekly)"},
    {FUNNEL, "within=0s&steps=a", "steps", "steps must list 2 to 10 event types, comma-separated"},
    {COUNT, "eventType=&from=bad", "eventType", "eventType must be 1 to 200 bytes"},
};

static void test_rows(void **state)
{
    (void)state;
    static eo_qreq_t r;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        eo_qreq_error_t error;
        int rc = parse(rows[i].ep, rows[i].qs, &r, &error);
        if (!rows[i].field) {
            if (rc != 0)
                fail_msg("row %zu (%s): refused: %s (%s)", i, rows[i].qs, error.message,
                         error.field);
            continue;
        }
        if (rc != EO_EINVAL)
            fail_msg("row %zu (%s): %d, want EO_EINVAL", i, rows[i].qs, rc);
        if (strcmp(error.field, rows[i].field) != 0 || strcmp(error.message, rows[i].message) != 0)
            fail_msg("row %zu (%s): field '%s' message '%s'; want '%s' '%s'", i, rows[i].qs,
                     error.field, error.message, rows[i].field, rows[i].message);
    }
}

static void test_defaults(void **state)
{
    (void)state;
    static eo_qreq_t r;
    eo_qreq_error_t error;
    /* count: the range defaults from the passed time; limit 100 (part of the cache key) */
    assert_int_equal(parse(COUNT, "", &r, &error), 0);
    assert_true(r.ranged);
    assert_int_equal(r.to_us, NEXT_S);
    assert_int_equal(r.from_us, NEXT_S - WEEK_US);
    assert_null(r.event_type);
    assert_string_equal(r.tz, "UTC");
    assert_false(r.has_unit);
    assert_int_equal(r.limit, 100);
    assert_int_equal(r.periods, 0);
    assert_int_equal(r.within_s, 0);
    assert_int_equal(r.max_buckets, 5000);
    assert_string_equal(r.tenant_id, "");
    /* from alone: to is now; to alone: from is a week before */
    assert_int_equal(parse(COUNT, "from=2026-03-01T00:00:00Z", &r, &error), 0);
    assert_int_equal(r.to_us, NEXT_S);
    assert_int_equal(parse(COUNT, "to=2026-03-01T00:00:00Z", &r, &error), 0);
    assert_int_equal(r.to_us - r.from_us, WEEK_US);
    /* trend: interval day; unique users: no interval */
    assert_int_equal(parse(TREND, R, &r, &error), 0);
    assert_true(r.has_unit);
    assert_int_equal(r.unit, EO_Q_DAY);
    assert_string_equal(r.unit_field, "interval");
    assert_int_equal(parse(UNIQUE, R, &r, &error), 0);
    assert_false(r.has_unit);
    /* a zone is the list's own string */
    assert_int_equal(parse(TREND, R "&tz=Asia/Kolkata&interval=hourly", &r, &error), 0);
    assert_ptr_equal(r.tz, zones[1]);
    assert_int_equal(r.unit, EO_Q_HOUR);
    /* retention */
    assert_int_equal(parse(RETENTION, RET R, &r, &error), 0);
    assert_true(r.has_unit);
    assert_int_equal(r.unit, EO_Q_DAY);
    assert_int_equal(r.periods, 7);
    assert_string_equal(r.unit_field, "period");
    assert_string_equal(r.start_event, "signup");
    assert_string_equal(r.return_event, "visit");
    assert_int_equal(parse(RETENTION, RET "period=weekly&periods=12", &r, &error), 0);
    assert_int_equal(r.unit, EO_Q_WEEK);
    assert_int_equal(r.periods, 12);
    /* breakdown: limit 10, the path literal */
    assert_int_equal(parse(BREAKDOWN, "property=plan.tier", &r, &error), 0);
    assert_int_equal(r.limit, 10);
    assert_string_equal(r.property, "plan.tier");
    assert_string_equal(r.property_path, "{\"plan\",\"tier\"}");
    assert_int_equal(parse(BREAKDOWN, "property=plan&limit=25", &r, &error), 0);
    assert_int_equal(r.limit, 25);
    /* funnel: steps point into the value, within 1 day */
    assert_int_equal(parse(FUNNEL, "steps=signup,pay,signup", &r, &error), 0);
    assert_int_equal(r.nsteps, 3);
    assert_int_equal(r.step_len[1], 3);
    assert_memory_equal(r.steps[1], "pay", 3);
    assert_int_equal(r.within_s, 86400);
    assert_int_equal(parse(FUNNEL, "steps=a,b&within=2h", &r, &error), 0);
    assert_int_equal(r.within_s, 7200);
    /* types: all-time */
    assert_int_equal(parse(TYPES, "", &r, &error), 0);
    assert_false(r.ranged);
    /* events: limit 100, a cursor round trip */
    char c[EO_Q_CURSOR_MAX], qs[EO_Q_CURSOR_MAX + 32];
    assert_int_equal(eo_q_cursor_encode(CURSOR_US, "msg-1", 5, c), 0);
    snprintf(qs, sizeof qs, "cursor=%s&userId=u1", c);
    assert_int_equal(parse(EVENTS, qs, &r, &error), 0);
    assert_int_equal(r.limit, 100);
    assert_true(r.has_cursor);
    assert_int_equal(r.cursor_us, CURSOR_US);
    assert_string_equal(r.cursor_id, "msg-1");
    assert_string_equal(r.user_id, "u1");
}

/* Text parameters: 1..max bytes, at the edges. */
static void test_lengths(void **state)
{
    (void)state;
    static eo_qreq_t r;
    static char qs[512];
    eo_qreq_error_t error;
    static const struct {
        int ep;
        const char *name;
        size_t len;
        bool ok;
    } cases[] = {
        {COUNT, "eventType", 200, true},      {COUNT, "eventType", 201, false},
        {EVENTS, "userId", 255, true},        {EVENTS, "userId", 256, false},
        {RETENTION, "startEvent", 200, true}, {RETENTION, "startEvent", 201, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = snprintf(qs, sizeof qs, "%s%s=", cases[i].ep == RETENTION ? "returnEvent=b&" : "",
                         cases[i].name);
        memset(qs + n, 'x', cases[i].len);
        qs[(size_t)n + cases[i].len] = '\0';
        int rc = parse(cases[i].ep, qs, &r, &error);
        assert_int_equal(rc, cases[i].ok ? 0 : EO_EINVAL);
        if (!cases[i].ok) {
            assert_string_equal(error.field, cases[i].name);
            char want[64];
            snprintf(want, sizeof want, "%s must be 1 to %d bytes", cases[i].name,
                     cases[i].ep == EVENTS ? 255 : 200);
            assert_string_equal(error.message, want);
        }
    }
}

/* A request never has more arguments than EO_QREQ_MAX_ARGS. */
static void test_max_args(void **state)
{
    (void)state;
    static const eo_qreq_spec_t many = {.params = "a b c d e f g h i j k l m n o p q"};
    static const char *const names[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i",
                                        "j", "k", "l", "m", "n", "o", "p", "q"};
    eo_qargs_t a;
    eo_qargs_init(&a, &many);
    for (size_t i = 0; i < EO_QREQ_MAX_ARGS; i++)
        assert_true(eo_qargs_add(&a, names[i], "1", 1));
    assert_false(eo_qargs_add(&a, "q", "1", 1));
    assert_string_equal(a.error.message, "too many parameters");
    assert_string_equal(a.error.field, "q");
    assert_false(eo_qargs_add(&a, "p", "1", 1)); /* refused from then on */
    assert_string_equal(a.error.field, "q");
}

static void test_takes(void **state)
{
    (void)state;
    assert_true(eo_qreq_takes("eventType from to", "from"));
    assert_true(eo_qreq_takes("eventType from to", "to"));
    assert_false(eo_qreq_takes("eventType from to", "fro"));
    assert_false(eo_qreq_takes("eventType from to", "t"));
    assert_false(eo_qreq_takes("eventType from to", ""));
    assert_false(eo_qreq_takes("", "from"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),    cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_lengths), cmocka_unit_test(test_max_args),
        cmocka_unit_test(test_takes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
