/* The rows of the analytics sink (see analytics_row.h). */
#include "domain/analytics_row.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "domain/json_out.h"
#include "domain/record.h"
#include "domain/rfc3339.h"

static const char *const kind_types[EO_ANALYTICS_ROW_KINDS] = {"analytics.summary",
                                                               "analytics.window"};

/* The column types a record's fields are decoded into. */
typedef enum {
    COL_UUID,   /* a canonical lower-case UUID string */
    COL_TEXT,   /* a string */
    COL_INT32,  /* an integer 0 .. 2^31-1 */
    COL_INT64,  /* an integer >= 0 */
    COL_BOOL,   /* true or false */
    COL_TIME,   /* an RFC 3339 string, written back in UTC */
    COL_NUMBER, /* a number, or null or absent (SQL NULL) */
} col_type_t;

/* One column: the table's name for it, and where the record holds it (object.key, or key at
 * the top when object is NULL). */
typedef struct {
    const char *column, *object, *key;
    col_type_t type;
} column_t;

/* In the order of the rows' columns (and of the column lists of the sink's INSERTs). */
static const column_t summary_columns[] = {
    {"tenant_id", NULL, "tenantId", COL_UUID},     {"event_id", NULL, "eventId", COL_UUID},
    {"rule_id", "rule", "id", COL_UUID},           {"rule_version", "rule", "version", COL_INT32},
    {"status", NULL, "status", COL_TEXT},          {"group_key", NULL, "groupKey", COL_TEXT},
    {"window_start", "window", "start", COL_TIME}, {"window_end", "window", "end", COL_TIME},
    {"value", NULL, "value", COL_NUMBER},          {"threshold", NULL, "threshold", COL_NUMBER},
    {"emitted_at", NULL, "emittedAt", COL_TIME},
};

static const column_t window_columns[] = {
    {"tenant_id", NULL, "tenantId", COL_UUID},      {"rule_id", "rule", "id", COL_UUID},
    {"rule_version", "rule", "version", COL_INT32}, {"group_key", NULL, "groupKey", COL_TEXT},
    {"window_start", "window", "start", COL_TIME},  {"window_end", "window", "end", COL_TIME},
    {"revision", NULL, "revision", COL_INT32},      {"final", NULL, "final", COL_BOOL},
    {"value", NULL, "value", COL_NUMBER},           {"count", NULL, "count", COL_INT64},
};

static const struct {
    const column_t *columns;
    size_t n;
} kind_columns[EO_ANALYTICS_ROW_KINDS] = {
    {summary_columns, sizeof summary_columns / sizeof summary_columns[0]},
    {window_columns, sizeof window_columns / sizeof window_columns[0]},
};

/* Appends the column's value from v (NULL when absent) as `"column":value`, after a comma
 * unless first. Returns 0, or EO_EPARSE with the reason in why. */
static int put_column(eo_buf_t *b, const column_t *c, bool first, const json_t *v, char *why,
                      size_t whylen)
{
    char text[EO_RFC3339_MAX > 32 ? EO_RFC3339_MAX : 32];
    eo_buf_putf(b, "%s\"%s\":", first ? "" : ",", c->column);
    switch (c->type) {
    case COL_UUID:
        if (!json_is_string(v) || !eo_uuid_valid(json_string_value(v), json_string_length(v)))
            break;
        eo_buf_put_json_str(b, json_string_value(v), json_string_length(v));
        return 0;
    case COL_TEXT:
        if (!json_is_string(v))
            break;
        eo_buf_put_json_str(b, json_string_value(v), json_string_length(v));
        return 0;
    case COL_INT32:
    case COL_INT64:
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (c->type == COL_INT32 && json_integer_value(v) > INT32_MAX))
            break;
        eo_buf_putf(b, "%lld", (long long)json_integer_value(v));
        return 0;
    case COL_BOOL:
        if (!json_is_boolean(v))
            break;
        eo_buf_puts(b, json_is_true(v) ? "true" : "false");
        return 0;
    case COL_TIME: {
        int64_t us;
        if (!json_is_string(v) ||
            eo_rfc3339_parse(json_string_value(v), json_string_length(v), &us) < 0)
            break;
        eo_buf_putc(b, '"');
        eo_buf_put(b, text, eo_rfc3339_format(us, text));
        eo_buf_putc(b, '"');
        return 0;
    }
    case COL_NUMBER:
        if (!v || json_is_null(v)) {
            eo_buf_puts(b, "null");
            return 0;
        }
        if (!json_is_number(v))
            break;
        eo_buf_put(b, text, eo_json_format_real(json_number_value(v), text, sizeof text));
        return 0;
    }
    static const char *const wants[] = {
        [COL_UUID] = "a lower-case UUID",
        [COL_TEXT] = "a string",
        [COL_INT32] = "an integer 0..2147483647",
        [COL_INT64] = "an integer >= 0",
        [COL_BOOL] = "a boolean",
        [COL_TIME] = "an RFC 3339 timestamp",
        [COL_NUMBER] = "a number or null",
    };
    snprintf(why, whylen, "'%s%s%s' must be %s", c->object ? c->object : "", c->object ? "." : "",
             c->key, wants[c->type]);
    return EO_EPARSE;
}

/* The kind of a record: by its "type" when it has one (which its topic must carry), else by
 * the topic. -1 (why filled) when neither tells. */
static int kind_of(const json_t *root, const bool on[EO_ANALYTICS_ROW_KINDS], char *why,
                   size_t whylen)
{
    const json_t *type = json_object_get(root, "type");
    if (type) {
        for (int k = 0; k < EO_ANALYTICS_ROW_KINDS; k++) {
            if (!json_is_string(type) || strcmp(json_string_value(type), kind_types[k]) != 0)
                continue;
            if (on[k])
                return k;
            snprintf(why, whylen, "'type' %s does not belong on this topic", kind_types[k]);
            return -1;
        }
        snprintf(why, whylen, "'type' must be analytics.summary or analytics.window");
        return -1;
    }
    if (on[EO_ANALYTICS_ROW_SUMMARY] != on[EO_ANALYTICS_ROW_WINDOW])
        return on[EO_ANALYTICS_ROW_SUMMARY] ? EO_ANALYTICS_ROW_SUMMARY : EO_ANALYTICS_ROW_WINDOW;
    snprintf(why, whylen, "no 'type' and the topic does not tell");
    return -1;
}

int eo_analytics_row_append(eo_buf_t *rows, const void *record, size_t len, bool on_summaries,
                            bool on_windows, eo_analytics_row_kind_t *kind, char *why,
                            size_t whylen)
{
    if (!record || len == 0) {
        snprintf(why, whylen, "empty record");
        return EO_EPARSE;
    }
    if (len > EO_ANALYTICS_ROW_RECORD_MAX) {
        snprintf(why, whylen, "record of %zu bytes, larger than %zu", len,
                 EO_ANALYTICS_ROW_RECORD_MAX);
        return EO_EPARSE;
    }
    json_error_t jerr;
    json_t *root = json_loadb(record, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        snprintf(why, whylen, "not a JSON object: %s", root ? "another JSON value" : jerr.text);
        json_decref(root);
        return EO_EPARSE;
    }
    const bool on[EO_ANALYTICS_ROW_KINDS] = {on_summaries, on_windows};
    int k = kind_of(root, on, why, whylen), r = 0;
    if (k < 0) {
        json_decref(root);
        return EO_EPARSE;
    }
    size_t start = rows->len;
    eo_buf_putc(rows, '{');
    for (size_t i = 0; r == 0 && i < kind_columns[k].n; i++) {
        const column_t *c = &kind_columns[k].columns[i];
        const json_t *obj = c->object ? json_object_get(root, c->object) : root;
        r = put_column(rows, c, i == 0, json_object_get(obj, c->key), why, whylen);
    }
    json_decref(root);
    if (r == 0) {
        eo_buf_puts(rows, ",\"body\":");
        eo_buf_put(rows, record, len); /* one JSON object: jansson read it whole */
        eo_buf_putc(rows, '}');
        r = eo_buf_error(rows);
    }
    if (r < 0) {
        eo_buf_truncate(rows, start);
        return r;
    }
    *kind = (eo_analytics_row_kind_t)k;
    return 0;
}
