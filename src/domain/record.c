/* Kafka record encoding and decoding (see record.h). */
#include "domain/record.h"

#include <string.h>

#include "domain/rfc3339.h"

int eo_uuid_valid(const char *s, size_t n)
{
    if (n != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

int eo_record_encode(const char *tenant_id, int64_t received_at_us, const eo_event_t *ev,
                     eo_str_t message_id, const eo_event_limits_t *lim, eo_buf_t *out,
                     eo_event_error_t *err)
{
    char t[EO_RFC3339_MAX];
    eo_rfc3339_format(received_at_us, t);
    int r = eo_buf_printf(out, "{\"v\":%d,\"tenantId\":\"%s\",\"receivedAt\":\"%s\",\"event\":",
                          EO_RECORD_VERSION, tenant_id, t);
    if (r < 0)
        return r;
    size_t start = out->len;
    r = eo_event_encode(ev, message_id, out);
    if (r == EO_ELIMIT || (r == 0 && out->len - start > lim->max_event_bytes)) {
        eo_event_error_set(err, "too_large", "", "the event is larger than %zu bytes",
                           lim->max_event_bytes);
        return EO_ELIMIT;
    }
    if (r < 0)
        return r;
    return eo_buf_append_char(out, '}');
}

int eo_record_key(const char *tenant_id, const eo_event_t *ev, eo_buf_t *out)
{
    eo_str_t who = ev->user_id.s ? ev->user_id : ev->anonymous_id;
    eo_buf_puts(out, tenant_id);
    eo_buf_putc(out, ':');
    eo_buf_put(out, who.s, who.len);
    return eo_buf_error(out);
}

int eo_record_decode(const void *bytes, size_t len, const eo_event_limits_t *lim, eo_record_t *rec,
                     eo_event_error_t *err)
{
    memset(rec, 0, sizeof *rec);
    if (len > lim->max_event_bytes + EO_RECORD_ENVELOPE_MAX) {
        eo_event_error_set(err, "too_large", "", "the record is larger than %zu bytes",
                           lim->max_event_bytes + EO_RECORD_ENVELOPE_MAX);
        return EO_EINVAL;
    }
    if (len == 0 || memchr(bytes, '\0', len)) {
        eo_event_error_set(err, "undecodable", "", "the record is empty or holds a NUL byte");
        return EO_EPARSE;
    }
    json_error_t jerr;
    rec->root = json_loadb(bytes, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!rec->root) {
        eo_event_error_set(err, "undecodable", "", "invalid JSON at line %d column %d: %s",
                           jerr.line, jerr.column, jerr.text);
        return EO_EPARSE;
    }
    json_t *v = json_object_get(rec->root, "v");
    json_t *tenant = json_object_get(rec->root, "tenantId");
    json_t *received = json_object_get(rec->root, "receivedAt");
    json_t *event = json_object_get(rec->root, "event");
    if (!json_is_integer(v) || json_integer_value(v) != EO_RECORD_VERSION) {
        eo_event_error_set(err, "undecodable", "v", "unknown record version");
        return EO_EPARSE;
    }
    if (!json_is_string(tenant) ||
        !eo_uuid_valid(json_string_value(tenant), json_string_length(tenant))) {
        eo_event_error_set(err, "undecodable", "tenantId", "'tenantId' must be a UUID");
        return EO_EPARSE;
    }
    memcpy(rec->tenant_id, json_string_value(tenant), 37);
    if (!json_is_string(received) ||
        eo_rfc3339_parse(json_string_value(received), json_string_length(received),
                         &rec->received_at_us) < 0) {
        eo_event_error_set(err, "undecodable", "receivedAt",
                           "'receivedAt' must be an RFC 3339 timestamp");
        return EO_EPARSE;
    }
    if (!json_is_object(event)) {
        eo_event_error_set(err, "undecodable", "event", "'event' must be an object");
        return EO_EPARSE;
    }
    return eo_event_normalize(event, lim, rec->received_at_us, EO_EVENT_FROM_RECORD, &rec->ev, err);
}

void eo_record_done(eo_record_t *rec)
{
    if (!rec)
        return;
    json_decref(rec->root);
    rec->root = NULL;
}

/* ---- stored events ---- */

static int stored_fail(eo_event_error_t *err, const char *field, const char *message)
{
    eo_event_error_set(err, "undecodable", field, "%s", message);
    return EO_EPARSE;
}

/* Puts the text s (of column `column`) as member name of rec->root and points *out at the copy;
 * absent (NULL) leaves *out empty. EO_EPARSE when s is not UTF-8 (jansson refuses it),
 * EO_ENOMEM. */
static int stored_str(eo_record_t *rec, const char *name, const char *column, const char *s,
                      eo_str_t *out, eo_event_error_t *err)
{
    *out = (eo_str_t){NULL, 0};
    if (!s)
        return 0;
    json_t *v = json_string(s);
    if (!v)
        return stored_fail(err, column, "the stored text is not UTF-8");
    if (json_object_set_new(rec->root, name, v) < 0)
        return EO_ENOMEM;
    *out = (eo_str_t){json_string_value(v), json_string_length(v)};
    return 0;
}

/* Parses a stored JSON object (jsonb's text) into member name of rec->root: *out is the object,
 * or NULL for NULL text. Integers too large for jansson are read as reals (see record.h). */
static int stored_object(eo_record_t *rec, const char *name, const char *text, json_t **out,
                         eo_event_error_t *err)
{
    *out = NULL;
    if (!text)
        return 0;
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        v = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!json_is_object(v)) {
        json_decref(v);
        return stored_fail(err, name, "the stored value is not a JSON object");
    }
    if (json_object_set_new(rec->root, name, v) < 0)
        return EO_ENOMEM;
    *out = v;
    return 0;
}

int eo_record_from_stored(const eo_stored_event_t *row, eo_record_t *rec, eo_event_error_t *err)
{
    memset(rec, 0, sizeof *rec);
    if (!row->tenant_id || !eo_uuid_valid(row->tenant_id, strlen(row->tenant_id)))
        return stored_fail(err, "tenant_id", "the tenant is not a UUID");
    if (!row->message_id || !row->message_id[0])
        return stored_fail(err, "message_id", "the message id is empty");
    if (!row->event_type || !row->event_type[0])
        return stored_fail(err, "event_type", "the event type is empty");
    if (!row->user_id && !row->anonymous_id)
        return stored_fail(err, "user_id", "neither user_id nor anonymous_id is set");
    if (!(rec->root = json_object()))
        return EO_ENOMEM;
    memcpy(rec->tenant_id, row->tenant_id, 37);
    rec->received_at_us = row->received_at_us;
    eo_event_t *ev = &rec->ev;
    int r;
    if ((r = stored_str(rec, "messageId", "message_id", row->message_id, &ev->message_id, err)) <
            0 ||
        (r = stored_str(rec, "eventType", "event_type", row->event_type, &ev->event_type, err)) <
            0 ||
        (r = stored_str(rec, "userId", "user_id", row->user_id, &ev->user_id, err)) < 0 ||
        (r = stored_str(rec, "anonymousId", "anonymous_id", row->anonymous_id, &ev->anonymous_id,
                        err)) < 0 ||
        (r = stored_object(rec, "properties", row->properties, &ev->properties, err)) < 0 ||
        (r = stored_object(rec, "context", row->context, &ev->context, err)) < 0)
        return r;
    ev->occurred_at_us = row->occurred_at_us;
    ev->original_timestamp_us = EO_NO_TIME;
    ev->sent_at_us = row->sent_at_us;
    return 0;
}
