/* libFuzzer harness of eo_analytics_row_append on raw bytes: what the analytics sink reads from
 * the summaries and windows topics. Each input is decoded as read from a summaries topic, a
 * windows topic and a topic carrying both. Invariants checked (abort on violation), beyond "no
 * crash, no leak":
 *  - a refusal is EO_EPARSE with a reason, and leaves the rows buffer as it was;
 *  - an accepted record appends one JSON object holding exactly its kind's columns and "body";
 *    the body is the record; the kind is one the topic carries; ids are canonical UUIDs and
 *    times are UTC RFC 3339 with microseconds, so PostgreSQL reads every column as its type. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/analytics_row.h"
#include "domain/record.h"
#include "domain/rfc3339.h"
#include "fuzz_check.h"

static const char *const summary_columns[] = {
    "tenant_id",    "event_id",   "rule_id", "rule_version", "status",     "group_key",
    "window_start", "window_end", "value",   "threshold",    "emitted_at", "body"};
static const char *const window_columns[] = {
    "tenant_id", "rule_id", "rule_version", "group_key", "window_start", "window_end",
    "revision",  "final",   "value",        "count",     "body"};

static void check_uuid(json_t *row, const char *column)
{
    json_t *v = json_object_get(row, column);
    CHECK(json_is_string(v) && eo_uuid_valid(json_string_value(v), json_string_length(v)), "%s",
          column);
}

static void check_time(json_t *row, const char *column)
{
    json_t *v = json_object_get(row, column);
    int64_t us;
    CHECK(json_is_string(v) &&
              eo_rfc3339_parse(json_string_value(v), json_string_length(v), &us) == 0,
          "%s", column);
    char again[EO_RFC3339_MAX];
    size_t n = eo_rfc3339_format(us, again);
    CHECK(n == json_string_length(v) && !memcmp(again, json_string_value(v), n),
          "%s not in UTC form", column);
}

static void check_int(json_t *row, const char *column, json_int_t max)
{
    json_t *v = json_object_get(row, column);
    CHECK(json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= max, "%s",
          column);
}

static void check_number(json_t *row, const char *column)
{
    json_t *v = json_object_get(row, column);
    CHECK(json_is_null(v) || json_is_real(v), "%s", column);
}

static void check_row(const uint8_t *data, size_t size, const char *text, size_t len,
                      eo_analytics_row_kind_t kind)
{
    json_error_t jerr;
    json_t *row = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    CHECK(json_is_object(row), "the row is not a JSON object: %s", jerr.text);
    const char *const *columns =
        kind == EO_ANALYTICS_ROW_SUMMARY ? summary_columns : window_columns;
    size_t n = kind == EO_ANALYTICS_ROW_SUMMARY ? sizeof summary_columns / sizeof *summary_columns
                                                : sizeof window_columns / sizeof *window_columns;
    CHECK(json_object_size(row) == n, "%zu columns", json_object_size(row));
    for (size_t i = 0; i < n; i++)
        CHECK(json_object_get(row, columns[i]), "no %s", columns[i]);
    json_t *record = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    CHECK(record && json_equal(record, json_object_get(row, "body")), "body is not the record");
    json_decref(record);
    check_uuid(row, "tenant_id");
    check_uuid(row, "rule_id");
    check_int(row, "rule_version", INT32_MAX);
    check_time(row, "window_start");
    check_time(row, "window_end");
    check_number(row, "value");
    CHECK(json_is_string(json_object_get(row, "group_key")), "group_key");
    if (kind == EO_ANALYTICS_ROW_SUMMARY) {
        check_uuid(row, "event_id");
        CHECK(json_is_string(json_object_get(row, "status")), "status");
        check_number(row, "threshold");
        check_time(row, "emitted_at");
    } else {
        check_int(row, "revision", INT32_MAX);
        check_int(row, "count", INT64_MAX);
        CHECK(json_is_boolean(json_object_get(row, "final")), "final");
    }
    json_decref(row);
}

static void decode_on(const uint8_t *data, size_t size, bool on_summaries, bool on_windows)
{
    static const char prefix[] = "[{\"earlier\":1},";
    eo_buf_t rows;
    eo_buf_init(&rows, (size_t)64 << 20);
    eo_buf_puts(&rows, prefix);
    CHECK(eo_buf_error(&rows) == 0, "prefix");
    eo_analytics_row_kind_t kind;
    char why[256] = "";
    int r = eo_analytics_row_append(&rows, data, size, on_summaries, on_windows, &kind, why,
                                    sizeof why);
    if (r == EO_EPARSE) {
        CHECK(why[0] != '\0', "no reason");
        CHECK(rows.len == sizeof prefix - 1 && !memcmp(rows.data, prefix, rows.len),
              "a refused record left bytes behind");
    } else {
        CHECK(r == 0, "eo_analytics_row_append: %d", r);
        CHECK(kind == EO_ANALYTICS_ROW_SUMMARY ? on_summaries : on_windows,
              "kind %d not carried by the topic", (int)kind);
        CHECK(rows.len > sizeof prefix - 1 && !memcmp(rows.data, prefix, sizeof prefix - 1),
              "the row did not append");
        check_row(data, size, rows.data + sizeof prefix - 1, rows.len - (sizeof prefix - 1), kind);
    }
    eo_buf_done(&rows);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_on(data, size, true, false);
    decode_on(data, size, false, true);
    decode_on(data, size, true, true);
    return 0;
}
