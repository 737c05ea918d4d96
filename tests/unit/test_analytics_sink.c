/* Unit tests of the analytics sink's decoding (src/analytics/sink.c): a record of the summaries
 * or windows topic becomes one row, {"<column>":<value>,...,"body":<the record>}, or is
 * skipped as undecodable with the field that is wrong. A passing and a failing row for every
 * rule: each column's type and range, the record's kind (by "type", which must agree with the
 * topic, or by the topic alone), JSON that is not one object, empty and oversized records;
 * then the JSON arrays of rows the statements take (one kind; one row alone).
 *
 * The module's .c is included (as h2o's tests do), so its static functions are tested
 * directly; no broker or database is needed (the topic handles come from a client that never
 * connects). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/sink.c"
#include "core/metrics.h" /* named here so that tests/CMakeLists.txt links eo_core */

#define T "7a1d0c52-3b7e-4c0e-9f4e-2d1b6c8a0001"
#define E "7a1d0c52-3b7e-5c0e-9f4e-2d1b6c8a0002"
#define R "7a1d0c52-3b7e-4c0e-9f4e-2d1b6c8a00ff"

#define SUMMARY_FIELDS                                                                             \
    "\"tenantId\":\"" T "\",\"rule\":{\"id\":\"" R "\",\"version\":2,\"name\":\"burst\"},"         \
    "\"groupKey\":\"pro\",\"window\":{\"start\":\"2024-05-01T10:00:00Z\","                         \
    "\"end\":\"2024-05-01T12:05:00+02:00\"}"

/* A valid summary with its eventId, status and the rest after `more`. */
#define SUMMARY(more)                                                                              \
    "{\"eventId\":\"" E "\",\"type\":\"analytics.summary\",\"status\":\"firing\","                 \
    "\"group\":{\"properties.plan\":\"pro\"}," SUMMARY_FIELDS ",\"value\":104,"                    \
    "\"threshold\":100.5,\"message\":\"m\",\"revision\":1,\"final\":false,"                        \
    "\"emittedAt\":\"2024-05-01T10:05:00.25Z\"" more "}"

#define WINDOW(more)                                                                               \
    "{\"type\":\"analytics.window\",\"tenantId\":\"" T "\",\"rule\":{\"id\":\"" R "\","            \
    "\"version\":2},\"groupKey\":\"g\",\"window\":{\"start\":\"2024-05-01T10:00:00Z\","            \
    "\"end\":\"2024-05-01T10:01:00Z\"},\"aggregate\":\"count\",\"value\":null,\"count\":5,"        \
    "\"revision\":3,\"final\":true,\"emittedAt\":\"2024-05-01T10:01:02Z\"" more "}"

static const char summary_row_columns[] =
    "{\"tenant_id\":\"" T "\",\"event_id\":\"" E "\",\"rule_id\":\"" R "\",\"rule_version\":2,"
    "\"status\":\"firing\",\"group_key\":\"pro\",\"window_start\":\"2024-05-01T10:00:00.000000Z\","
    "\"window_end\":\"2024-05-01T10:05:00.000000Z\",\"value\":104.0,\"threshold\":100.5,"
    "\"emitted_at\":\"2024-05-01T10:05:00.250000Z\",\"body\":";

static const char window_row_columns[] =
    "{\"tenant_id\":\"" T "\",\"rule_id\":\"" R "\",\"rule_version\":2,\"group_key\":\"g\","
    "\"window_start\":\"2024-05-01T10:00:00.000000Z\","
    "\"window_end\":\"2024-05-01T10:01:00.000000Z\",\"revision\":3,\"final\":true,"
    "\"value\":null,\"count\":5,\"body\":";

/* ---- fixture: a sink struct with its topics, and topic handles of a client never connected */

static struct {
    eo_analytics_sink_t s;
    rd_kafka_t *rk;
    rd_kafka_topic_t *summaries, *windows, *other;
} fx;

static int setup(void **state)
{
    memset(&fx, 0, sizeof fx);
    fx.s.opt.summaries_topic = "t.summaries";
    fx.s.opt.windows_topic = "t.windows";
    eo_buf_init(&fx.s.rows, ROWS_MAX);
    eo_buf_init(&fx.s.param, ROWS_MAX);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    if (rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err) != RD_KAFKA_CONF_OK)
        return -1;
    if (!(fx.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err))) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    fx.summaries = rd_kafka_topic_new(fx.rk, "t.summaries", NULL);
    fx.windows = rd_kafka_topic_new(fx.rk, "t.windows", NULL);
    fx.other = rd_kafka_topic_new(fx.rk, "t.other", NULL);
    return fx.summaries && fx.windows && fx.other ? 0 : -1;
}

static int teardown(void **state)
{
    rd_kafka_topic_destroy(fx.summaries);
    rd_kafka_topic_destroy(fx.windows);
    rd_kafka_topic_destroy(fx.other);
    rd_kafka_destroy(fx.rk);
    eo_buf_done(&fx.s.rows);
    eo_buf_done(&fx.s.param);
    return 0;
}

/* Decodes value as a record of topic into a fresh rows buffer; why gets the reason. */
static int decode(rd_kafka_topic_t *topic, const char *value, size_t len, item_t *it, char *why,
                  size_t whylen)
{
    static rd_kafka_message_t msg;
    memset(&msg, 0, sizeof msg);
    msg.rkt = topic;
    msg.payload = (void *)value;
    msg.len = len;
    *it = (item_t){.msg = &msg, .kind = -1, .skipped = -1};
    eo_buf_reset(&fx.s.rows);
    why[0] = '\0';
    return decode_row(&fx.s, it, why, whylen);
}

/* The row of a record that decodes: the columns, then the record itself as body. */
static void expect_row(rd_kafka_topic_t *topic, const char *value, int kind, const char *columns)
{
    item_t it;
    char why[256];
    int r = decode(topic, value, strlen(value), &it, why, sizeof why);
    if (r != 0)
        fail_msg("%s: %s", value, why);
    assert_int_equal(it.kind, kind);
    char want[4096];
    snprintf(want, sizeof want, "%s%s}", columns, value);
    assert_int_equal(it.off, 0);
    assert_int_equal(it.len, strlen(want));
    assert_string_equal(fx.s.rows.data, want);
}

/* A record that is skipped, with a reason that contains needle. */
static void expect_skip(rd_kafka_topic_t *topic, const char *value, const char *needle)
{
    item_t it;
    char why[256];
    int r = decode(topic, value, strlen(value), &it, why, sizeof why);
    if (r != EO_EPARSE)
        fail_msg("%s: decoded (%d), expected a refusal naming %s", value, r, needle);
    if (!strstr(why, needle))
        fail_msg("%s: reason '%s' does not name %s", value, why, needle);
    assert_int_equal(it.kind, -1);
    assert_int_equal(fx.s.rows.len, 0); /* nothing of it left behind */
}

/* ---- rows ---- */

static void test_summary_row(void **state)
{
    expect_row(fx.summaries, SUMMARY(""), KIND_SUMMARY, summary_row_columns);
    /* value and threshold may be null or absent */
    expect_row(fx.summaries,
               "{\"eventId\":\"" E "\",\"status\":\"resolved\"," SUMMARY_FIELDS
               ",\"value\":null,\"emittedAt\":\"2024-05-01T10:05:00Z\"}",
               KIND_SUMMARY,
               "{\"tenant_id\":\"" T "\",\"event_id\":\"" E "\",\"rule_id\":\"" R "\","
               "\"rule_version\":2,\"status\":\"resolved\",\"group_key\":\"pro\","
               "\"window_start\":\"2024-05-01T10:00:00.000000Z\","
               "\"window_end\":\"2024-05-01T10:05:00.000000Z\",\"value\":null,\"threshold\":null,"
               "\"emitted_at\":\"2024-05-01T10:05:00.000000Z\",\"body\":");
}

static void test_window_row(void **state)
{
    expect_row(fx.windows, WINDOW(""), KIND_WINDOW, window_row_columns);
    expect_row(fx.windows,
               "{\"tenantId\":\"" T "\",\"rule\":{\"id\":\"" R "\",\"version\":0},"
               "\"groupKey\":\"\",\"window\":{\"start\":\"2024-05-01T10:00:00Z\","
               "\"end\":\"2024-05-01T10:01:00Z\"},\"value\":2.5,\"count\":0,"
               "\"revision\":2147483647,\"final\":false}",
               KIND_WINDOW,
               "{\"tenant_id\":\"" T "\",\"rule_id\":\"" R "\",\"rule_version\":0,"
               "\"group_key\":\"\",\"window_start\":\"2024-05-01T10:00:00.000000Z\","
               "\"window_end\":\"2024-05-01T10:01:00.000000Z\",\"revision\":2147483647,"
               "\"final\":false,\"value\":2.5,\"count\":0,\"body\":");
}

/* ---- the kind of a record ---- */

static void test_kind(void **state)
{
    /* no "type": the topic tells */
    expect_row(fx.windows,
               "{\"tenantId\":\"" T "\",\"rule\":{\"id\":\"" R "\",\"version\":2},"
               "\"groupKey\":\"g\",\"window\":{\"start\":\"2024-05-01T10:00:00Z\","
               "\"end\":\"2024-05-01T10:01:00Z\"},\"value\":null,\"count\":5,"
               "\"revision\":3,\"final\":true}",
               KIND_WINDOW,
               "{\"tenant_id\":\"" T "\",\"rule_id\":\"" R "\",\"rule_version\":2,"
               "\"group_key\":\"g\",\"window_start\":\"2024-05-01T10:00:00.000000Z\","
               "\"window_end\":\"2024-05-01T10:01:00.000000Z\",\"revision\":3,\"final\":true,"
               "\"value\":null,\"count\":5,\"body\":");
    expect_skip(fx.summaries, WINDOW(""), "does not belong on this topic");
    expect_skip(fx.windows, SUMMARY(""), "does not belong on this topic");
    expect_skip(fx.other, SUMMARY(""), "does not belong on this topic");
    expect_skip(fx.summaries, "{\"type\":\"analytics.late\"}", "'type' must be");
    expect_skip(fx.summaries, "{\"type\":7}", "'type' must be");
    expect_skip(fx.other, "{\"tenantId\":\"" T "\"}", "the topic does not tell");

    /* both kinds on one topic: "type" tells */
    fx.s.opt.windows_topic = "t.summaries";
    expect_row(fx.summaries, WINDOW(""), KIND_WINDOW, window_row_columns);
    expect_row(fx.summaries, SUMMARY(""), KIND_SUMMARY, summary_row_columns);
    expect_skip(fx.summaries, "{\"tenantId\":\"" T "\"}", "the topic does not tell");
    fx.s.opt.windows_topic = "t.windows";
}

/* ---- records that are not JSON objects, or too large ---- */

static void test_not_a_record(void **state)
{
    expect_skip(fx.summaries, "not json", "not a JSON object");
    expect_skip(fx.summaries, "[1,2]", "another JSON value");
    expect_skip(fx.summaries, "\"text\"", "not a JSON object");
    expect_skip(fx.summaries, SUMMARY("} trailing"), "not a JSON object");
    expect_skip(fx.summaries, SUMMARY(",\"status\":\"again\""), "not a JSON object");
    expect_skip(fx.summaries, "{\"eventId\":\"\\u0000\"}", "not a JSON object");
    expect_skip(fx.summaries, "{\"bad\":\"\xff\"}", "not a JSON object");

    item_t it;
    char why[256];
    assert_int_equal(decode(fx.summaries, NULL, 0, &it, why, sizeof why), EO_EPARSE);
    assert_non_null(strstr(why, "empty record"));
    assert_int_equal(decode(fx.summaries, "", 0, &it, why, sizeof why), EO_EPARSE);

    /* the size limit: a record at the limit is read, one byte more is refused unread */
    size_t max = EO_ANALYTICS_SINK_RECORD_MAX;
    char *big = malloc(max + 2);
    assert_non_null(big);
    static const char record[] = SUMMARY(""), pad[] = ",\"pad\":\"";
    size_t hl = sizeof record - 2; /* without the closing brace */
    memcpy(big, record, hl);
    memcpy(big + hl, pad, sizeof pad - 1);
    hl += sizeof pad - 1;
    memset(big + hl, 'x', max - hl - 2);
    memcpy(big + max - 2, "\"}", 2);
    big[max] = '\0';
    assert_int_equal(decode(fx.summaries, big, max, &it, why, sizeof why), 0);
    assert_int_equal(it.kind, KIND_SUMMARY);
    memcpy(big + max - 2, "x\"}", 3);
    big[max + 1] = '\0';
    assert_int_equal(decode(fx.summaries, big, max + 1, &it, why, sizeof why), EO_EPARSE);
    assert_non_null(strstr(why, "larger than"));
    free(big);
}

/* ---- every column: a passing row above, a failing row here ---- */

static void test_summary_columns_refused(void **state)
{
    static const struct {
        const char *value, *field;
    } rows[] = {
        /* UUIDs: canonical lower case, present, strings */
        {"{\"eventId\":\"" E "\",\"tenantId\":\"7A1D0C52-3B7E-4C0E-9F4E-2D1B6C8A0001\"}",
         "'tenantId'"},
        {"{\"eventId\":\"" E "\",\"tenantId\":\"" T "x\"}", "'tenantId'"},
        {"{\"tenantId\":\"" T "\"}", "'eventId'"},
        {"{\"tenantId\":\"" T "\",\"eventId\":42}", "'eventId'"},
        {"{\"tenantId\":\"" T "\",\"eventId\":\"" E "\",\"rule\":{\"id\":\"nope\"}}", "'rule.id'"},
        {"{\"tenantId\":\"" T "\",\"eventId\":\"" E "\",\"rule\":\"" R "\"}", "'rule.id'"},
        /* rule.version: an integer 0..2^31-1 */
        {"{\"tenantId\":\"" T "\",\"eventId\":\"" E "\",\"rule\":{\"id\":\"" R "\"}}",
         "'rule.version'"},
        {"{\"tenantId\":\"" T "\",\"eventId\":\"" E "\",\"rule\":{\"id\":\"" R "\","
         "\"version\":-1}}",
         "'rule.version'"},
        {"{\"tenantId\":\"" T "\",\"eventId\":\"" E "\",\"rule\":{\"id\":\"" R "\","
         "\"version\":2147483648}}",
         "'rule.version'"},
        {"{\"tenantId\":\"" T "\",\"eventId\":\"" E "\",\"rule\":{\"id\":\"" R "\","
         "\"version\":1.0}}",
         "'rule.version'"},
        {"{\"tenantId\":\"" T "\",\"eventId\":\"" E "\",\"rule\":{\"id\":\"" R "\","
         "\"version\":\"1\"}}",
         "'rule.version'"},
        /* status and groupKey: strings */
        {"{\"tenantId\":\"" T "\",\"eventId\":\"" E "\",\"rule\":{\"id\":\"" R "\","
         "\"version\":1}}",
         "'status'"},
        {"{\"tenantId\":\"" T "\",\"eventId\":\"" E "\",\"rule\":{\"id\":\"" R "\","
         "\"version\":1},\"status\":null}",
         "'status'"},
        {"{\"tenantId\":\"" T "\",\"eventId\":\"" E "\",\"rule\":{\"id\":\"" R "\","
         "\"version\":1},\"status\":\"firing\",\"groupKey\":{}}",
         "'groupKey'"},
        /* window bounds: RFC 3339 */
        {"{\"eventId\":\"" E "\",\"status\":\"firing\",\"tenantId\":\"" T "\","
         "\"rule\":{\"id\":\"" R "\",\"version\":1},\"groupKey\":\"\"}",
         "'window.start'"},
        {"{\"eventId\":\"" E "\",\"status\":\"firing\",\"tenantId\":\"" T "\","
         "\"rule\":{\"id\":\"" R "\",\"version\":1},\"groupKey\":\"\","
         "\"window\":{\"start\":\"2024-05-01 10:00:00\"}}",
         "'window.start'"},
        {"{\"eventId\":\"" E "\",\"status\":\"firing\",\"tenantId\":\"" T "\","
         "\"rule\":{\"id\":\"" R "\",\"version\":1},\"groupKey\":\"\","
         "\"window\":{\"start\":\"2024-05-01T10:00:00Z\",\"end\":\"2024-13-01T10:00:00Z\"}}",
         "'window.end'"},
        /* value and threshold: numbers or null */
        {"{\"eventId\":\"" E "\",\"status\":\"firing\"," SUMMARY_FIELDS ",\"value\":\"104\"}",
         "'value'"},
        {"{\"eventId\":\"" E "\",\"status\":\"firing\"," SUMMARY_FIELDS ",\"threshold\":true}",
         "'threshold'"},
        /* emittedAt: RFC 3339, present */
        {"{\"eventId\":\"" E "\",\"status\":\"firing\"," SUMMARY_FIELDS "}", "'emittedAt'"},
        {"{\"eventId\":\"" E "\",\"status\":\"firing\"," SUMMARY_FIELDS
         ",\"emittedAt\":1714557900}",
         "'emittedAt'"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        expect_skip(fx.summaries, rows[i].value, rows[i].field);
}

static void test_window_columns_refused(void **state)
{
    static const char head[] = "{\"tenantId\":\"" T "\",\"rule\":{\"id\":\"" R "\",\"version\":2},"
                               "\"groupKey\":\"g\",\"window\":{\"start\":\"2024-05-01T10:00:00Z\","
                               "\"end\":\"2024-05-01T10:01:00Z\"}";
    static const struct {
        const char *rest, *field;
    } rows[] = {
        {",\"final\":true,\"count\":1}", "'revision'"},
        {",\"revision\":-2,\"final\":true,\"count\":1}", "'revision'"},
        {",\"revision\":1}", "'final'"},
        {",\"revision\":1,\"final\":1}", "'final'"},
        {",\"revision\":1,\"final\":true,\"value\":[1]}", "'value'"},
        {",\"revision\":1,\"final\":true}", "'count'"},
        {",\"revision\":1,\"final\":true,\"count\":-1}", "'count'"},
        {",\"revision\":1,\"final\":true,\"count\":1.5}", "'count'"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char value[1024];
        snprintf(value, sizeof value, "%s%s", head, rows[i].rest);
        expect_skip(fx.windows, value, rows[i].field);
    }
    /* and the passing row of the same shape */
    char value[1024];
    snprintf(value, sizeof value, "%s%s", head, ",\"revision\":1,\"final\":true,\"count\":1}");
    item_t it;
    char why[256];
    assert_int_equal(decode(fx.windows, value, strlen(value), &it, why, sizeof why), 0);
}

/* ---- the statements' parameters ---- */

static void test_param_arrays(void **state)
{
    static const char *const values[] = {SUMMARY(""), WINDOW(""), "junk", SUMMARY(""), WINDOW("")};
    rd_kafka_topic_t *topics[] = {fx.summaries, fx.windows, fx.summaries, fx.summaries, fx.windows};
    rd_kafka_message_t msgs[5];
    item_t items[5];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < 5; i++) {
        msgs[i].rkt = topics[i];
        msgs[i].payload = (void *)values[i];
        msgs[i].len = strlen(values[i]);
        items[i] = (item_t){.msg = &msgs[i], .kind = -1, .skipped = -1};
    }
    fx.s.items = items;
    fx.s.nitems = fx.s.nbatch = 5;
    assert_int_equal(decode_batch(&fx.s), 0);
    assert_int_equal(items[2].kind, -1);
    assert_int_equal(items[2].skipped, SKIP_UNDECODABLE);

    size_t n;
    char row[4096];
    assert_int_equal(build_param(&fx.s, KIND_SUMMARY, NULL, &n), 0);
    assert_int_equal(n, 2);
    snprintf(row, sizeof row, "%s%s}", summary_row_columns, SUMMARY(""));
    char want[2 * sizeof row + 4];
    snprintf(want, sizeof want, "[%s,%s]", row, row);
    assert_string_equal(fx.s.param.data, want);

    assert_int_equal(build_param(&fx.s, KIND_WINDOW, &items[4], &n), 0);
    assert_int_equal(n, 1);
    snprintf(row, sizeof row, "%s%s}", window_row_columns, WINDOW(""));
    snprintf(want, sizeof want, "[%s]", row);
    assert_string_equal(fx.s.param.data, want);

    assert_int_equal(build_param(&fx.s, KIND_WINDOW, &items[0], &n), 0); /* not a window */
    assert_int_equal(n, 0);
    assert_string_equal(fx.s.param.data, "[]");
    fx.s.items = NULL;
    fx.s.nitems = fx.s.nbatch = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_row),
        cmocka_unit_test(test_window_row),
        cmocka_unit_test(test_kind),
        cmocka_unit_test(test_not_a_record),
        cmocka_unit_test(test_summary_columns_refused),
        cmocka_unit_test(test_window_columns_refused),
        cmocka_unit_test(test_param_arrays),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
