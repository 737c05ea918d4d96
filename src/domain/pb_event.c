/* gRPC ingest's messages (see pb_event.h). */
#include "domain/pb_event.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Sets member name of obj to s when s is not empty. */
static int put_str(json_t *obj, const char *name, const char *s, eo_event_error_t *err)
{
    if (!s || !*s)
        return 0;
    json_t *v = json_string(s); /* NULL for text that is not UTF-8 */
    if (!v) {
        eo_event_error_set(err, "invalid_value", name, "%s is not UTF-8 text", name);
        return EO_EINVAL;
    }
    return json_object_set_new(obj, name, v) < 0 ? EO_ENOMEM : 0;
}

/* Sets member name of obj to the JSON object text s when s is not empty. */
static int put_object(json_t *obj, const char *name, const char *pbname, const char *s,
                      eo_event_error_t *err)
{
    if (!s || !*s)
        return 0;
    json_error_t je;
    json_t *v = json_loads(s, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(v)) {
        json_decref(v);
        eo_event_error_set(err, "invalid_json", name, "%s is not one JSON object%s%s", pbname,
                           v ? "" : ": ", v ? "" : je.text);
        return EO_EINVAL;
    }
    return json_object_set_new(obj, name, v) < 0 ? EO_ENOMEM : 0;
}

int eo_pb_event_json(const Eventops__V1__Event *e, json_t **out, eo_event_error_t *err)
{
    *out = NULL;
    json_t *obj = json_object();
    if (!obj)
        return EO_ENOMEM;
    int r = put_str(obj, "eventType", e->event_type, err);
    if (r == 0)
        r = put_str(obj, "userId", e->user_id, err);
    if (r == 0)
        r = put_str(obj, "anonymousId", e->anonymous_id, err);
    if (r == 0)
        r = put_str(obj, "messageId", e->message_id, err);
    if (r == 0)
        r = put_str(obj, "timestamp", e->timestamp, err);
    if (r == 0)
        r = put_str(obj, "sentAt", e->sent_at, err);
    if (r == 0)
        r = put_object(obj, "properties", "properties_json", e->properties_json, err);
    if (r == 0)
        r = put_object(obj, "context", "context_json", e->context_json, err);
    if (r < 0) {
        json_decref(obj);
        return r;
    }
    *out = obj;
    return 0;
}

/* A copy of a JSON string member's text (NULL for another type); free(). */
static char *dup_str(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

static void free_response(Eventops__V1__SendResponse *r)
{
    for (size_t i = 0; i < r->n_message_ids; i++)
        free(r->message_ids[i]);
    free(r->message_ids);
    for (size_t i = 0; i < r->n_errors; i++) {
        Eventops__V1__EventError *e = r->errors[i];
        if (!e)
            continue;
        if (e->message_id != protobuf_c_empty_string)
            free(e->message_id);
        free(e->code);
        free(e->message);
        free(e->field);
        free(e);
    }
    free(r->errors);
}

/* The JSON array of text (elements joined by ','), or NULL. */
static json_t *load_list(const char *text, size_t len)
{
    size_t n = len + 3;
    char *s = malloc(n);
    if (!s)
        return NULL;
    s[0] = '[';
    memcpy(s + 1, text, len);
    s[len + 1] = ']';
    s[len + 2] = '\0';
    json_t *v = json_loadb(s, len + 2, 0, NULL);
    free(s);
    if (!json_is_array(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* Fills the refusal of r->errors[i] from e; false when e is not of the build's shape. */
static bool fill_error(Eventops__V1__EventError *pe, const json_t *e)
{
    const json_t *err = json_object_get(e, "error");
    const json_t *index = json_object_get(e, "index");
    if (!json_is_integer(index) || !json_is_object(err))
        return false;
    pe->index = (uint32_t)json_integer_value(index);
    pe->message_id = dup_str(e, "messageId");
    if (!pe->message_id)
        pe->message_id = (char *)protobuf_c_empty_string;
    pe->code = dup_str(err, "code");
    pe->message = dup_str(err, "message");
    pe->field = dup_str(err, "field");
    return pe->code && pe->message && pe->field;
}

int eo_pb_send_response(size_t accepted, const char *ids, size_t ids_len, const char *errors,
                        size_t errors_len, eo_buf_t *out)
{
    Eventops__V1__SendResponse resp = EVENTOPS__V1__SEND_RESPONSE__INIT;
    resp.accepted = (uint32_t)accepted;
    json_t *idl = load_list(ids, ids_len), *errl = load_list(errors, errors_len);
    int r = idl && errl ? 0 : EO_EPARSE;
    size_t nid = r == 0 ? json_array_size(idl) : 0, nerr = r == 0 ? json_array_size(errl) : 0;
    if (r == 0 && ((nid && !(resp.message_ids = calloc(nid, sizeof *resp.message_ids))) ||
                   (nerr && !(resp.errors = calloc(nerr, sizeof *resp.errors)))))
        r = EO_ENOMEM;
    for (size_t i = 0; r == 0 && i < nid; i++) {
        const json_t *v = json_array_get(idl, i);
        if (!json_is_string(v))
            r = EO_EPARSE;
        else if (!(resp.message_ids[resp.n_message_ids++] = strdup(json_string_value(v))))
            r = EO_ENOMEM;
    }
    for (size_t i = 0; r == 0 && i < nerr; i++) {
        Eventops__V1__EventError *pe = malloc(sizeof *pe);
        if (!pe) {
            r = EO_ENOMEM;
            break;
        }
        eventops__v1__event_error__init(pe);
        resp.errors[resp.n_errors++] = pe;
        if (!fill_error(pe, json_array_get(errl, i)))
            r = EO_EPARSE;
    }
    json_decref(idl);
    json_decref(errl);
    if (r == 0) {
        size_t n = eventops__v1__send_response__get_packed_size(&resp);
        if ((r = eo_buf_reserve(out, n)) == 0) {
            eventops__v1__send_response__pack(&resp, (uint8_t *)out->data + out->len);
            out->len += n;
        }
    }
    free_response(&resp);
    return r;
}

/* ---- google.rpc.Status, by hand: three small messages ---- */

static void put_varint(eo_buf_t *b, uint64_t v)
{
    while (v >= 0x80) {
        eo_buf_putc(b, (char)(v | 0x80));
        v >>= 7;
    }
    eo_buf_putc(b, (char)v);
}

/* A length-delimited field: tag (field number << 3 | 2), length, bytes. */
static void put_bytes(eo_buf_t *b, unsigned field, const void *p, size_t n)
{
    put_varint(b, (uint64_t)field << 3 | 2);
    put_varint(b, n);
    eo_buf_put(b, p, n);
}

int eo_pb_retry_status(int code, const char *message, int64_t retry_s, eo_buf_t *out)
{
    static const char type_url[] = "type.googleapis.com/google.rpc.RetryInfo";
    eo_buf_t duration, retry, any;
    eo_buf_init(&duration, 64);
    eo_buf_init(&retry, 64);
    eo_buf_init(&any, 256);
    put_varint(&duration, 1 << 3 | 0); /* seconds */
    put_varint(&duration, (uint64_t)(retry_s > 0 ? retry_s : 0));
    put_bytes(&retry, 1, duration.data, duration.len); /* retry_delay */
    put_bytes(&any, 1, type_url, sizeof type_url - 1);
    put_bytes(&any, 2, retry.data, retry.len);
    int r = eo_buf_error(&duration) ? eo_buf_error(&duration)
            : eo_buf_error(&retry)  ? eo_buf_error(&retry)
                                    : eo_buf_error(&any);
    if (r == 0) {
        put_varint(out, 1 << 3 | 0); /* code */
        put_varint(out, (uint64_t)(uint32_t)code);
        put_bytes(out, 2, message, strlen(message));
        put_bytes(out, 3, any.data, any.len); /* details */
        r = eo_buf_error(out);
    }
    eo_buf_done(&duration);
    eo_buf_done(&retry);
    eo_buf_done(&any);
    return r;
}
