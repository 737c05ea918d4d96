/* Unit tests of src/domain/analytics_row.h: a record of the summaries or windows topic becomes
 * one row, {"<column>":<value>,...,"body":<the record>}, or is refused as undecodable with the
 * field that is wrong, leaving nothing behind. A passing and a failing row for every rule: each
 * column's type and range, the record's kind (by "type", which must agree with the topic, or by
 * the topic alone), JSON that is not one object, empty and oversized records; and rows appended
 * one after another. */
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
#include "domain/analytics_row.h"

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

/* ---- decoding one record ---- */

/* Where a record is read from: the summaries topic, the windows topic, another topic, or a
 * topic carrying both kinds. */
typedef enum { ON_SUMMARIES, ON_WINDOWS, ON_OTHER, ON_BOTH } topic_t;

static eo_buf_t rows; /* the rows appended by the test at hand */

static int setup(void **state)
{
    eo_buf_init(&rows, (size_t)16 << 20);
    return 0;
}

static int teardown(void **state)
{
    eo_buf_done(&rows);
    return 0;
}

/* Decodes value (len bytes) read from topic into the emptied rows buffer; why gets the
 * reason. */
static int decode(topic_t topic, const char *value, size_t len, eo_analytics_row_kind_t *kind,
                  char *why, size_t whylen)
{
    eo_buf_reset(&rows);
    why[0] = '\0';
    return eo_analytics_row_append(&rows, value, len, topic == ON_SUMMARIES || topic == ON_BOTH,
                                   topic == ON_WINDOWS || topic == ON_BOTH, kind, why, whylen);
}

/* The row of a record that decodes: the columns, then the record itself as body. */
static void expect_row(topic_t topic, const char *value, eo_analytics_row_kind_t want_kind,
                       const char *columns)
{
    eo_analytics_row_kind_t kind;
    char why[256];
    int r = decode(topic, value, strlen(value), &kind, why, sizeof why);
    if (r != 0)
        fail_msg("%s: %s", value, why);
    assert_int_equal(kind, want_kind);
    char want[4096];
    snprintf(want, sizeof want, "%s%s}", columns, value);
    assert_int_equal(rows.len, strlen(want));
    assert_string_equal(rows.data, want);
}

/* A record that is refused, with a reason that contains needle, leaving nothing behind. */
static void expect_skip(topic_t topic, const char *value, const char *needle)
{
    eo_analytics_row_kind_t kind;
    char why[256];
    eo_buf_reset(&rows);
    eo_buf_puts(&rows, "[previous row]");
    why[0] = '\0';
    int r = eo_analytics_row_append(
        &rows, value, strlen(value), topic == ON_SUMMARIES || topic == ON_BOTH,
        topic == ON_WINDOWS || topic == ON_BOTH, &kind, why, sizeof why);
    if (r != EO_EPARSE)
        fail_msg("%s: decoded (%d), expected a refusal naming %s", value, r, needle);
    if (!strstr(why, needle))
        fail_msg("%s: reason '%s' does not name %s", value, why, needle);
    assert_string_equal(rows.data, "[previous row]");
}

/* ---- rows ---- */

static void test_summary_row(void **state)
{
    expect_row(ON_SUMMARIES, SUMMARY(""), EO_ANALYTICS_ROW_SUMMARY, summary_row_columns);
    /* value and threshold may be null or absent */
    expect_row(ON_SUMMARIES,
               "{\"eventId\":\"" E "\",\"status\":\"resolved\"," SUMMARY_FIELDS
               ",\"value\":null,\"emittedAt\":\"2024-05-01T10:05:00Z\"}",
               EO_ANALYTICS_ROW_SUMMARY,
               "{\"tenant_id\":\"" T "\",\"event_id\":\"" E "\",\"rule_id\":\"" R "\","
               "\"rule_version\":2,\"status\":\"resolved\",\"group_key\":\"pro\","
               "\"window_start\":\"2024-05-01T10:00:00.000000Z\","
               "\"window_end\":\"2024-05-01T10:05:00.000000Z\",\"value\":null,\"threshold\":null,"
               "\"emitted_at\":\"2024-05-01T10:05:00.000000Z\",\"body\":");
}

static void test_window_row(void **state)
{
    expect_row(ON_WINDOWS, WINDOW(""), EO_ANALYTICS_ROW_WINDOW, window_row_columns);
    expect_row(ON_WINDOWS,
               "{\"tenantId\":\"" T "\",\"rule\":{\"id\":\"" R "\",\"version\":0},"
               "\"groupKey\":\"\",\"window\":{\"start\":\"2024-05-01T10:00:00Z\","
               "\"end\":\"2024-05-01T10:01:00Z\"},\"value\":2.5,\"count\":0,"
               "\"revision\":2147483647,\"final\":false}",
               EO_ANALYTICS_ROW_WINDOW,
               "{\"tenant_id\":\"" T "\",\"rule_id\":\"" R "\",\"rule_version\":0,"
               "\"group_key\":\"\",\"window_start\":\"2024-05-01T10:00:00.000000Z\","
               "\"window_end\":\"2024-05-01T10:01:00.000000Z\",\"revision\":2147483647,"
               "\"final\":false,\"value\":2.5,\"count\":0,\"body\":");
}

/* ---- the kind of a record ---- */

static void test_kind(void **state)
{
    /* no "type": the topic tells */
    expect_row(ON_WINDOWS,
               "{\"tenantId\":\"" T "\",\"rule\":{\"id\":\"" R "\",\"version\":2},"
               "\"groupKey\":\"g\",\"window\":{\"start\":\"2024-05-01T10:00:00Z\","
               "\"end\":\"2024-05-01T10:01:00Z\"},\"value\":null,\"count\":5,"
               "\"revision\":3,\"final\":true}",
               EO_ANALYTICS_ROW_WINDOW,
               "{\"tenant_id\":\"" T "\",\"rule_id\":\"" R "\",\"rule_version\":2,"
               "\"group_key\":\"g\",\"window_start\":\"2024-05-01T10:00:00.000000Z\","
               "\"window_end\":\"2024-05-01T10:01:00.000000Z\",\"revision\":3,\"final\":true,"
               "\"value\":null,\"count\":5,\"body\":");
    expect_skip(ON_SUMMARIES, WINDOW(""), "does not belong on this topic");
    expect_skip(ON_WINDOWS, SUMMARY(""), "does not belong on this topic");
    expect_skip(ON_OTHER, SUMMARY(""), "does not belong on this topic");
    expect_skip(ON_SUMMARIES, "{\"type\":\"analytics.late\"}", "'type' must be");
    expect_skip(ON_SUMMARIES, "{\"type\":7}", "'type' must be");
    expect_skip(ON_OTHER, "{\"tenantId\":\"" T "\"}", "the topic does not tell");

    /* both kinds on one topic: "type" tells */
    expect_row(ON_BOTH, WINDOW(""), EO_ANALYTICS_ROW_WINDOW, window_row_columns);
    expect_row(ON_BOTH, SUMMARY(""), EO_ANALYTICS_ROW_SUMMARY, summary_row_columns);
    expect_skip(ON_BOTH, "{\"tenantId\":\"" T "\"}", "the topic does not tell");
}

/* ---- records that are not JSON objects, or too large ---- */

static void test_not_a_record(void **state)
{
    expect_skip(ON_SUMMARIES, "not json", "not a JSON object");
    expect_skip(ON_SUMMARIES, "[1,2]", "another JSON value");
    expect_skip(ON_SUMMARIES, "\"text\"", "not a JSON object");
    expect_skip(ON_SUMMARIES, SUMMARY("} trailing"), "not a JSON object");
    expect_skip(ON_SUMMARIES, SUMMARY(",\"status\":\"again\""), "not a JSON object");
    expect_skip(ON_SUMMARIES, "{\"eventId\":\"\\u0000\"}", "not a JSON object");
    expect_skip(ON_SUMMARIES, "{\"bad\":\"\xff\"}", "not a JSON object");

    eo_analytics_row_kind_t kind;
    char why[256];
    assert_int_equal(decode(ON_SUMMARIES, NULL, 0, &kind, why, sizeof why), EO_EPARSE);
    assert_non_null(strstr(why, "empty record"));
    assert_int_equal(decode(ON_SUMMARIES, "", 0, &kind, why, sizeof why), EO_EPARSE);
    assert_int_equal(rows.len, 0);

    /* the size limit: a record at the limit is read, one byte more is refused unread */
    size_t max = EO_ANALYTICS_ROW_RECORD_MAX;
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
    assert_int_equal(decode(ON_SUMMARIES, big, max, &kind, why, sizeof why), 0);
    assert_int_equal(kind, EO_ANALYTICS_ROW_SUMMARY);
    memcpy(big + max - 2, "x\"}", 3);
    big[max + 1] = '\0';
    assert_int_equal(decode(ON_SUMMARIES, big, max + 1, &kind, why, sizeof why), EO_EPARSE);
    assert_non_null(strstr(why, "larger than"));
    free(big);
}

/* ---- every column: a passing row above, a failing row here ---- */

static void test_summary_columns_refused(void **state)
{
    static const struct {
        const char *value, *field;
    } cases[] = {
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
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_skip(ON_SUMMARIES, cases[i].value, cases[i].field);
}

static void test_window_columns_refused(void **state)
{
    static const char head[] = "{\"tenantId\":\"" T "\",\"rule\":{\"id\":\"" R "\",\"version\":2},"
                               "\"groupKey\":\"g\",\"window\":{\"start\":\"2024-05-01T10:00:00Z\","
                               "\"end\":\"2024-05-01T10:01:00Z\"}";
    static const struct {
        const char *rest, *field;
    } cases[] = {
        {",\"final\":true,\"count\":1}", "'revision'"},
        {",\"revision\":-2,\"final\":true,\"count\":1}", "'revision'"},
        {",\"revision\":1}", "'final'"},
        {",\"revision\":1,\"final\":1}", "'final'"},
        {",\"revision\":1,\"final\":true,\"value\":[1]}", "'value'"},
        {",\"revision\":1,\"final\":true}", "'count'"},
        {",\"revision\":1,\"final\":true,\"count\":-1}", "'count'"},
        {",\"revision\":1,\"final\":true,\"count\":1.5}", "'count'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char value[1024];
        snprintf(value, sizeof value, "%s%s", head, cases[i].rest);
        expect_skip(ON_WINDOWS, value, cases[i].field);
    }
    /* and the passing row of the same shape */
    char value[1024];
    snprintf(value, sizeof value, "%s%s", head, ",\"revision\":1,\"final\":true,\"count\":1}");
    eo_analytics_row_kind_t kind;
    char why[256];
    assert_int_equal(decode(ON_WINDOWS, value, strlen(value), &kind, why, sizeof why), 0);
}

/* ---- rows one after another ---- */

static void test_rows_appended(void **state)
{
    eo_buf_reset(&rows);
    eo_analytics_row_kind_t kind;
    char why[256];
    assert_int_equal(eo_analytics_row_append(&rows, SUMMARY(""), strlen(SUMMARY("")), true, false,
                                             &kind, why, sizeof why),
                     0);
    size_t first = rows.len;
    assert_int_equal(eo_analytics_row_append(&rows, "junk", 4, true, false, &kind, why, sizeof why),
                     EO_EPARSE);
    assert_int_equal(rows.len, first);
    assert_int_equal(eo_analytics_row_append(&rows, WINDOW(""), strlen(WINDOW("")), false, true,
                                             &kind, why, sizeof why),
                     0);
    assert_int_equal(kind, EO_ANALYTICS_ROW_WINDOW);
    char want[8192];
    snprintf(want, sizeof want, "%s%s}%s%s}", summary_row_columns, SUMMARY(""), window_row_columns,
             WINDOW(""));
    assert_string_equal(rows.data, want);

    /* a full buffer: EO_ELIMIT, and nothing of the row is left */
    eo_buf_t small;
    eo_buf_init(&small, 64);
    assert_int_equal(eo_analytics_row_append(&small, SUMMARY(""), strlen(SUMMARY("")), true, false,
                                             &kind, why, sizeof why),
                     EO_ELIMIT);
    assert_int_equal(small.len, 0);
    eo_buf_done(&small);
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
        cmocka_unit_test(test_rows_appended),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
