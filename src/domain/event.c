/* Event validation, normalisation and encoding (see event.h). */
#include "domain/event.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "domain/json_out.h"
#include "domain/rfc3339.h"

int eo_str_cmp(eo_str_t a, eo_str_t b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.s, b.s, n) : 0;
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

void eo_event_limits_default(eo_event_limits_t *lim)
{
    lim->max_event_bytes = 32768;
    lim->max_batch_events = 1000;
    lim->max_depth = 32;
    lim->max_properties = 512;
    lim->max_string_bytes = 8192;
    lim->max_id_bytes = 255;
    lim->max_event_type_bytes = 200;
    lim->max_future_us = INT64_C(86400) * 1000000;
    lim->max_past_us = INT64_C(3650) * 86400 * 1000000;
}

void eo_event_limits_from_config(eo_event_limits_t *lim, const eo_config_t *cfg)
{
    *lim = (eo_event_limits_t){
        .max_event_bytes = (size_t)cfg->max_event_bytes,
        .max_batch_events = (size_t)cfg->max_batch_events,
        .max_depth = (size_t)cfg->max_nesting_depth,
        .max_properties = (size_t)cfg->max_properties,
        .max_string_bytes = (size_t)cfg->max_string_bytes,
        .max_id_bytes = (size_t)cfg->max_id_bytes,
        .max_event_type_bytes = (size_t)cfg->max_event_type_bytes,
        .max_future_us = cfg->max_future_s * 1000000,
        .max_past_us = cfg->max_past_days * 86400 * INT64_C(1000000),
    };
}

void eo_event_error_set(eo_event_error_t *err, const char *code, const char *field, const char *fmt,
                        ...)
{
    snprintf(err->code, sizeof err->code, "%s", code);
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

static bool has_control_chars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

static bool all_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ')
            return false;
    return true;
}

/* Looks up the first present (non-null) of up to three aliases. Two present aliases with
 * different values are a conflict. Returns 0 with *out (NULL when absent) and *used_name. */
static int lookup_alias(json_t *obj, const char *const names[], size_t count, json_t **out,
                        const char **used_name, eo_event_error_t *err)
{
    *out = NULL;
    *used_name = names[0];
    for (size_t i = 0; i < count; i++) {
        json_t *v = json_object_get(obj, names[i]);
        if (!v || json_is_null(v))
            continue;
        if (*out && !json_equal(*out, v)) {
            eo_event_error_set(err, "conflicting_fields", names[i],
                               "'%s' and '%s' are aliases but hold different values", *used_name,
                               names[i]);
            return EO_EINVAL;
        }
        if (!*out) {
            *out = v;
            *used_name = names[i];
        }
    }
    return 0;
}

/* A printable identifier: a string, or an integer turned into its decimal text. */
static int get_id(json_t *obj, const char *name, size_t max, bool allow_int, char storage[24],
                  eo_str_t *out, eo_event_error_t *err)
{
    out->s = NULL;
    out->len = 0;
    json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v))
        return 0;
    if (allow_int && json_is_integer(v)) {
        int n = snprintf(storage, 24, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        out->s = storage;
        out->len = (size_t)n;
        if (out->len > max) {
            eo_event_error_set(err, "too_long", name, "'%s' is longer than %zu bytes", name, max);
            return EO_EINVAL;
        }
        return 0;
    }
    if (!json_is_string(v)) {
        eo_event_error_set(err, "invalid_type", name, "'%s' must be a string%s", name,
                           allow_int ? " or an integer" : "");
        return EO_EINVAL;
    }
    out->s = json_string_value(v);
    out->len = json_string_length(v);
    if (out->len == 0 || all_blank(out->s, out->len)) {
        eo_event_error_set(err, "empty_value", name, "'%s' must not be empty", name);
        return EO_EINVAL;
    }
    if (out->len > max) {
        eo_event_error_set(err, "too_long", name, "'%s' is longer than %zu bytes", name, max);
        return EO_EINVAL;
    }
    if (has_control_chars(out->s, out->len)) {
        eo_event_error_set(err, "invalid_value", name, "'%s' must not contain control characters",
                           name);
        return EO_EINVAL;
    }
    return 0;
}

static int get_time(json_t *obj, const char *name, int64_t *us, eo_event_error_t *err)
{
    *us = EO_NO_TIME;
    json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        eo_event_error_set(err, "invalid_type", name, "'%s' must be an RFC 3339 string", name);
        return EO_EINVAL;
    }
    int r = eo_rfc3339_parse(json_string_value(v), json_string_length(v), us);
    if (r < 0) {
        eo_event_error_set(err, "invalid_timestamp", name,
                           r == EO_EINVAL ? "'%s' has a field out of range"
                                          : "'%s' is not an RFC 3339 timestamp",
                           name);
        return EO_EINVAL;
    }
    return 0;
}

/* Checks depth, string and key lengths of a value inside properties or context. */
static int check_value(json_t *v, size_t depth, const eo_event_limits_t *lim, const char *field,
                       eo_event_error_t *err)
{
    if (json_is_string(v)) {
        if (json_string_length(v) > lim->max_string_bytes) {
            eo_event_error_set(err, "too_long", field, "a string in '%s' is longer than %zu bytes",
                               field, lim->max_string_bytes);
            return EO_EINVAL;
        }
        return 0;
    }
    if (!json_is_object(v) && !json_is_array(v))
        return 0;
    if (depth > lim->max_depth) {
        eo_event_error_set(err, "too_deep", field, "'%s' is nested deeper than %zu levels", field,
                           lim->max_depth);
        return EO_EINVAL;
    }
    if (json_is_object(v)) {
        const char *key;
        json_t *child;
        json_object_foreach(v, key, child)
        {
            if (strlen(key) > lim->max_string_bytes) {
                eo_event_error_set(err, "too_long", field, "a key in '%s' is longer than %zu bytes",
                                   field, lim->max_string_bytes);
                return EO_EINVAL;
            }
            int r = check_value(child, depth + 1, lim, field, err);
            if (r < 0)
                return r;
        }
    } else {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
        {
            int r = check_value(child, depth + 1, lim, field, err);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

static int get_object(json_t *obj, const char *const names[], size_t count,
                      const eo_event_limits_t *lim, json_t **out, eo_event_error_t *err)
{
    const char *name;
    int r = lookup_alias(obj, names, count, out, &name, err);
    if (r < 0 || !*out)
        return r;
    if (!json_is_object(*out)) {
        eo_event_error_set(err, "invalid_type", name, "'%s' must be an object", name);
        return EO_EINVAL;
    }
    if (json_object_size(*out) > lim->max_properties) {
        eo_event_error_set(err, "too_many_properties", name, "'%s' has more than %zu keys", name,
                           lim->max_properties);
        return EO_EINVAL;
    }
    return check_value(*out, 1, lim, name, err);
}

static int finish(json_t *obj, const eo_event_limits_t *lim, int64_t received_at_us,
                  int64_t occurred, eo_event_t *ev, eo_event_error_t *err);

int eo_event_normalize(json_t *obj, const eo_event_limits_t *lim, int64_t received_at_us,
                       unsigned flags, eo_event_t *ev, eo_event_error_t *err)
{
    static const char *const type_names[] = {"eventType", "event", "name"};
    memset(ev, 0, sizeof *ev);
    if (!json_is_object(obj)) {
        eo_event_error_set(err, "invalid_type", "", "an event must be a JSON object");
        return EO_EINVAL;
    }

    /* messageId first, so that an error about any other field can still name the event */
    int r = get_id(obj, "messageId", lim->max_id_bytes, false, NULL, &ev->message_id, err);
    if (r < 0)
        return r;
    json_t *type;
    const char *type_name;
    if ((r = lookup_alias(obj, type_names, 3, &type, &type_name, err)) < 0)
        return r;
    if (!type) {
        eo_event_error_set(err, "missing_field", "eventType", "'eventType' is required");
        return EO_EINVAL;
    }
    if (!json_is_string(type)) {
        eo_event_error_set(err, "invalid_type", type_name, "'%s' must be a string", type_name);
        return EO_EINVAL;
    }
    ev->event_type.s = json_string_value(type);
    ev->event_type.len = json_string_length(type);
    if (ev->event_type.len == 0 || all_blank(ev->event_type.s, ev->event_type.len)) {
        eo_event_error_set(err, "empty_value", type_name, "'%s' must not be empty", type_name);
        return EO_EINVAL;
    }
    if (ev->event_type.len > lim->max_event_type_bytes) {
        eo_event_error_set(err, "too_long", type_name, "'%s' is longer than %zu bytes", type_name,
                           lim->max_event_type_bytes);
        return EO_EINVAL;
    }
    if (has_control_chars(ev->event_type.s, ev->event_type.len)) {
        eo_event_error_set(err, "invalid_value", type_name,
                           "'%s' must not contain control characters", type_name);
        return EO_EINVAL;
    }

    if ((r = get_id(obj, "userId", lim->max_id_bytes, true, ev->id_storage[0], &ev->user_id, err)) <
            0 ||
        (r = get_id(obj, "anonymousId", lim->max_id_bytes, true, ev->id_storage[1],
                    &ev->anonymous_id, err)) < 0)
        return r;
    if (!ev->user_id.s && !ev->anonymous_id.s) {
        eo_event_error_set(err, "missing_field", "userId", "'userId' or 'anonymousId' is required");
        return EO_EINVAL;
    }

    if (flags & EO_EVENT_FROM_RECORD) {
        if (!ev->message_id.s) {
            eo_event_error_set(err, "missing_field", "messageId", "'messageId' is required");
            return EO_EINVAL;
        }
        int64_t stored;
        if ((r = get_time(obj, "timestamp", &stored, err)) < 0 ||
            (r = get_time(obj, "originalTimestamp", &ev->original_timestamp_us, err)) < 0 ||
            (r = get_time(obj, "sentAt", &ev->sent_at_us, err)) < 0)
            return r;
        if (stored == EO_NO_TIME) {
            eo_event_error_set(err, "missing_field", "timestamp", "'timestamp' is required");
            return EO_EINVAL;
        }
        return finish(obj, lim, received_at_us, stored, ev, err);
    }
    if ((r = get_time(obj, "timestamp", &ev->original_timestamp_us, err)) < 0 ||
        (r = get_time(obj, "sentAt", &ev->sent_at_us, err)) < 0)
        return r;
    /* Clock-skew correction as Segment does: the device's clock is off by (sentAt - receivedAt),
     * so timestamp + (receivedAt - sentAt) is the event's time on the server's clock. */
    int64_t occurred =
        ev->original_timestamp_us != EO_NO_TIME ? ev->original_timestamp_us : received_at_us;
    if (ev->sent_at_us != EO_NO_TIME && ev->original_timestamp_us != EO_NO_TIME)
        occurred += received_at_us - ev->sent_at_us;
    return finish(obj, lim, received_at_us, occurred, ev, err);
}

/* The checks shared by both entry modes: time window, then properties and context. */
static int finish(json_t *obj, const eo_event_limits_t *lim, int64_t received_at_us,
                  int64_t occurred, eo_event_t *ev, eo_event_error_t *err)
{
    static const char *const props_names[] = {"properties", "metadata"};
    static const char *const context_names[] = {"context"};
    int r;
    if (occurred > received_at_us + lim->max_future_us ||
        occurred < received_at_us - lim->max_past_us) {
        eo_event_error_set(err, "timestamp_out_of_range", "timestamp",
                           "'timestamp' (after clock-skew correction) is more than %lld s in the "
                           "future or %lld days in the past",
                           (long long)(lim->max_future_us / 1000000),
                           (long long)(lim->max_past_us / 86400000000LL));
        return EO_EINVAL;
    }
    ev->occurred_at_us = occurred;

    if ((r = get_object(obj, props_names, 2, lim, &ev->properties, err)) < 0 ||
        (r = get_object(obj, context_names, 1, lim, &ev->context, err)) < 0)
        return r;
    return 0;
}

static int append_member_str(eo_buf_t *out, const char *name, eo_str_t v)
{
    int r = eo_buf_append_str(out, name);
    if (r < 0)
        return r;
    return v.s ? eo_buf_append_json_str(out, v.s, v.len) : eo_buf_append_str(out, "null");
}

static int append_member_time(eo_buf_t *out, const char *name, int64_t us)
{
    int r = eo_buf_append_str(out, name);
    if (r < 0)
        return r;
    if (us == EO_NO_TIME)
        return eo_buf_append_str(out, "null");
    char t[EO_RFC3339_MAX];
    size_t n = eo_rfc3339_format(us, t);
    return eo_buf_append_json_str(out, t, n);
}

static int append_member_object(eo_buf_t *out, const char *name, json_t *obj)
{
    int r = eo_buf_append_str(out, name);
    if (r < 0)
        return r;
    if (!obj)
        return eo_buf_append_str(out, "{}");
    return eo_json_append(out, obj);
}

int eo_event_encode(const eo_event_t *ev, eo_str_t message_id, eo_buf_t *out)
{
    int r;
    if ((r = append_member_str(
             out, "{\"messageId\":", ev->message_id.s ? ev->message_id : message_id)) < 0 ||
        (r = append_member_str(out, ",\"eventType\":", ev->event_type)) < 0 ||
        (r = append_member_str(out, ",\"userId\":", ev->user_id)) < 0 ||
        (r = append_member_str(out, ",\"anonymousId\":", ev->anonymous_id)) < 0 ||
        (r = append_member_time(out, ",\"timestamp\":", ev->occurred_at_us)) < 0 ||
        (r = append_member_time(out, ",\"originalTimestamp\":", ev->original_timestamp_us)) < 0 ||
        (r = append_member_time(out, ",\"sentAt\":", ev->sent_at_us)) < 0 ||
        (r = append_member_object(out, ",\"properties\":", ev->properties)) < 0 ||
        (r = append_member_object(out, ",\"context\":", ev->context)) < 0)
        return r;
    return eo_buf_append_char(out, '}');
}
