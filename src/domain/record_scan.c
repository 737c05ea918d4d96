/* The record scanner (see record_scan.h). One pass over the bytes with a cursor that never reads
 * past its end: JSON values are validated as jansson's parser would, the members the engine
 * needs are kept as spans of the input, and each object's members are checked once it closes
 * (so that key order does not matter). The lexing is json_lex.c's. Pure; the caller owns every
 * struct. */
#include "domain/record_scan.h"

#include <jansson.h>
#include <string.h>

#include "domain/json_lex.h"
#include "domain/json_norm.h"
#include "domain/rfc3339.h"

/* The string v as an eo_str_t: into the input, or unescaped into the scan's scratch. */
static int take_str(eo_record_scan_t *out, const eo_jspan_t *v, eo_str_t *dst)
{
    if (!v->esc) {
        dst->s = (const char *)v->s;
        dst->len = v->len;
        return 0;
    }
    char *at = out->scratch + out->scratch_used;
    size_t n = eo_jlex_unescape(v, at, sizeof out->scratch - out->scratch_used);
    if (n == SIZE_MAX)
        return EO_EPARSE;
    out->scratch_used += n;
    dst->s = at;
    dst->len = n;
    return 0;
}

bool eo_scan_usable_text(eo_str_t v, size_t max)
{
    if (v.len == 0 || v.len > max)
        return false;
    bool blank = true;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
        blank = blank && c == ' ';
    }
    return !blank;
}

int eo_scan_time(const eo_jspan_t *v, bool optional, int64_t *us)
{
    *us = EO_NO_TIME;
    if (v->kind == EO_JV_NONE || v->kind == EO_JV_NULL)
        return optional ? 0 : EO_EPARSE;
    if (v->kind != EO_JV_STRING)
        return EO_EPARSE;
    char text[48]; /* longer than any timestamp eo_rfc3339_parse accepts (44) */
    const char *s = (const char *)v->s;
    size_t n = v->len;
    if (v->esc) {
        n = eo_jlex_unescape(v, text, sizeof text);
        if (n == SIZE_MAX)
            return EO_EPARSE;
        s = text;
    }
    return eo_rfc3339_parse(s, n, us) < 0 ? EO_EPARSE : 0;
}

/* userId / anonymousId: a usable string, an integer (its decimal text: the token, which has no
 * leading zeros, except that -0 is 0), or null/absent. */
static int take_id(eo_record_scan_t *out, const eo_jspan_t *v, char text[24], eo_str_t *dst)
{
    dst->s = NULL;
    dst->len = 0;
    if (v->kind == EO_JV_NONE || v->kind == EO_JV_NULL)
        return 0;
    if (v->kind == EO_JV_INTEGER) { /* at most 20 bytes: scan_number refused more than int64 */
        bool minus_zero = v->len == 2 && v->s[0] == '-' && v->s[1] == '0';
        memcpy(text, minus_zero ? v->s + 1 : v->s, minus_zero ? 1 : v->len);
        dst->s = text;
        dst->len = minus_zero ? 1 : v->len;
        return 0;
    }
    if (v->kind != EO_JV_STRING || take_str(out, v, dst) < 0 ||
        !eo_scan_usable_text(*dst, SIZE_MAX))
        return EO_EPARSE;
    return 0;
}

/* Parses the raw text of an object with jansson (duplicates refused); EO_ENOMEM or EO_EPARSE. */
static int load_object(const char *text, size_t len, json_t **out)
{
    json_error_t jerr;
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (*out)
        return 0;
    return json_error_code(&jerr) == json_error_out_of_memory ? EO_ENOMEM : EO_EPARSE;
}

/* json_equal of two objects given as raw text: 1, 0 or EO_ENOMEM. */
static int same_json(const eo_jspan_t *a, const eo_jspan_t *b)
{
    if (a->len == b->len && memcmp(a->s, b->s, a->len) == 0)
        return 1;
    json_t *x = NULL, *y = NULL;
    int r = load_object((const char *)a->s, a->len, &x);
    if (r == 0)
        r = load_object((const char *)b->s, b->len, &y);
    if (r == 0)
        r = json_equal(x, y) ? 1 : 0;
    json_decref(x);
    json_decref(y);
    return r == EO_ENOMEM ? r : r == 1;
}

/* The members of "event" the scan reads, in the order of eo_event_normalize's lookups. */
enum {
    M_MESSAGE_ID,
    M_EVENT_TYPE,
    M_EVENT, /* alias of eventType */
    M_NAME,  /* alias of eventType */
    M_USER_ID,
    M_ANONYMOUS_ID,
    M_TIMESTAMP,
    M_ORIGINAL_TIMESTAMP,
    M_SENT_AT,
    M_PROPERTIES,
    M_METADATA, /* alias of properties */
    M_CONTEXT,
    M_COUNT
};

typedef struct {
    const char *name;
    size_t len;
} name_t;

#define NAME(s)                                                                                    \
    {                                                                                              \
        s, sizeof s - 1                                                                            \
    }
static const name_t event_names[M_COUNT] = {
    NAME("messageId"), NAME("eventType"),   NAME("event"),     NAME("name"),
    NAME("userId"),    NAME("anonymousId"), NAME("timestamp"), NAME("originalTimestamp"),
    NAME("sentAt"),    NAME("properties"),  NAME("metadata"),  NAME("context")};

enum { R_V, R_TENANT_ID, R_RECEIVED_AT, R_EVENT, R_COUNT };
static const name_t record_names[R_COUNT] = {NAME("v"), NAME("tenantId"), NAME("receivedAt"),
                                             NAME("event")};
#undef NAME

/* The index of key in names, or -1. */
static int key_index(const eo_jspan_t *key, const name_t *names, int count)
{
    for (int i = 0; i < count; i++) {
        if (!key->esc && key->len != names[i].len)
            continue;
        eo_jspan_t name = {EO_JV_STRING, (const unsigned char *)names[i].name, names[i].len, false};
        if (eo_jlex_same_text(key, &name))
            return i;
    }
    return -1;
}

/* The first non-null of aliases first..last, all other non-null ones equal to it (strings by
 * content, objects as json_equal; values of other kinds are never equal, which refuses them
 * either way). Returns the index, -1 when all are absent, or EO_EPARSE / EO_ENOMEM. */
static int pick_alias(const eo_jspan_t *m, int first, int last, eo_jkind_t kind)
{
    int chosen = -1;
    for (int i = first; i <= last; i++) {
        if (m[i].kind == EO_JV_NONE || m[i].kind == EO_JV_NULL)
            continue;
        if (m[i].kind != kind)
            return EO_EPARSE;
        if (chosen < 0) {
            chosen = i;
            continue;
        }
        int eq = kind == EO_JV_STRING ? eo_jlex_same_text(&m[chosen], &m[i])
                                      : same_json(&m[chosen], &m[i]);
        if (eq != 1)
            return eq < 0 ? eq : EO_EPARSE;
    }
    return chosen;
}

/* Checks the members of "event" as eo_event_normalize(EO_EVENT_FROM_RECORD) does, but for its
 * limits, and fills out. */
static int take_event(eo_record_scan_t *out, const eo_jspan_t *m)
{
    int r;
    if (m[M_MESSAGE_ID].kind != EO_JV_STRING ||
        take_str(out, &m[M_MESSAGE_ID], &out->message_id) < 0 ||
        !eo_scan_usable_text(out->message_id, SIZE_MAX))
        return EO_EPARSE;
    int type = pick_alias(m, M_EVENT_TYPE, M_NAME, EO_JV_STRING);
    if (type < 0)
        return type == -1 ? EO_EPARSE : type;
    if (take_str(out, &m[type], &out->event_type) < 0 ||
        !eo_scan_usable_text(out->event_type, SIZE_MAX))
        return EO_EPARSE;
    if ((r = take_id(out, &m[M_USER_ID], out->id_text[0], &out->user_id)) < 0 ||
        (r = take_id(out, &m[M_ANONYMOUS_ID], out->id_text[1], &out->anonymous_id)) < 0)
        return r;
    if (!out->user_id.s && !out->anonymous_id.s)
        return EO_EPARSE;
    if ((r = eo_scan_time(&m[M_TIMESTAMP], false, &out->occurred_at_us)) < 0 ||
        (r = eo_scan_time(&m[M_ORIGINAL_TIMESTAMP], true, &out->original_timestamp_us)) < 0 ||
        (r = eo_scan_time(&m[M_SENT_AT], true, &out->sent_at_us)) < 0)
        return r;
    int props = pick_alias(m, M_PROPERTIES, M_METADATA, EO_JV_OBJECT);
    if (props < -1)
        return props;
    if (props >= 0) {
        out->properties = (const char *)m[props].s;
        out->properties_len = m[props].len;
    }
    int context = pick_alias(m, M_CONTEXT, M_CONTEXT, EO_JV_OBJECT);
    if (context < -1)
        return context;
    if (context >= 0) {
        out->context = (const char *)m[context].s;
        out->context_len = m[context].len;
    }
    return 0;
}

/* The "event" object at c->p (depth 2). With keys (the fast decoder's strict scan), the
 * members' objects and arrays are checked for duplicate keys, and a member the scan does not
 * read is refused (its duplicates at this level would go unseen: the decoder then leaves the
 * record to eo_record_decode). */
static int scan_event(eo_jcur_t *c, eo_record_scan_t *out, eo_json_keys_t *keys)
{
    eo_jspan_t m[M_COUNT], key, skipped;
    for (int i = 0; i < M_COUNT; i++)
        m[i].kind = EO_JV_NONE;
    if (c->p >= c->end || *c->p != '{')
        return EO_EPARSE;
    c->p++;
    unsigned seen = 0;
    int r;
    for (bool first = true; (r = eo_jlex_next_member(c, first, &key)) == 1; first = false) {
        int i = key_index(&key, event_names, M_COUNT);
        if (i >= 0 && (seen & 1u << i))
            return EO_EPARSE; /* a duplicate key */
        if (i >= 0)
            seen |= 1u << i;
        else if (keys)
            return EO_EPARSE;
        if ((r = eo_jlex_value(c, 3, keys, i >= 0 ? &m[i] : &skipped)) < 0)
            return r;
    }
    return r < 0 ? r : take_event(out, m);
}

/* "tenantId": a string whose content is a canonical lower-case UUID. */
static int take_tenant(eo_record_scan_t *out, const eo_jspan_t *v)
{
    char t[36];
    size_t n = v->kind == EO_JV_STRING ? eo_jlex_unescape(v, t, sizeof t) : SIZE_MAX;
    if (n != 36 || !eo_uuid_valid(t, n))
        return EO_EPARSE;
    memcpy(out->tenant_id, t, 36);
    out->tenant_id[36] = '\0';
    return 0;
}

/* eo_record_scan; with keys, the strict scan of scan_event at both levels. */
static int scan_record(const void *bytes, size_t len, eo_record_scan_t *out, eo_json_keys_t *keys)
{
    out->tenant_id[0] = '\0';
    out->received_at_us = out->occurred_at_us = EO_NO_TIME;
    out->original_timestamp_us = out->sent_at_us = EO_NO_TIME;
    out->event_type = out->user_id = out->anonymous_id = out->message_id = (eo_str_t){NULL, 0};
    out->properties = out->context = NULL;
    out->properties_len = out->context_len = 0;
    out->scratch_used = 0;
    if (!bytes || len == 0)
        return EO_EPARSE;
    eo_jcur_t c = {bytes, (const unsigned char *)bytes + len};
    eo_jlex_skip_ws(&c);
    if (c.p >= c.end || *c.p != '{')
        return EO_EPARSE;
    c.p++;
    eo_jspan_t key, v;
    unsigned seen = 0;
    int r;
    for (bool first = true; (r = eo_jlex_next_member(&c, first, &key)) == 1; first = false) {
        int i = key_index(&key, record_names, R_COUNT);
        if (i >= 0 && (seen & 1u << i))
            return EO_EPARSE; /* a duplicate key */
        if (i >= 0)
            seen |= 1u << i;
        else if (keys)
            return EO_EPARSE;
        if (i == R_EVENT) {
            r = scan_event(&c, out, keys);
        } else {
            r = eo_jlex_value(&c, 2, NULL, &v);
            if (r == 0 && i == R_V)
                r = v.kind == EO_JV_INTEGER && v.len == 1 && v.s[0] == '1' ? 0 : EO_EPARSE;
            else if (r == 0 && i == R_TENANT_ID)
                r = take_tenant(out, &v);
            else if (r == 0 && i == R_RECEIVED_AT)
                r = eo_scan_time(&v, false, &out->received_at_us);
        }
        if (r < 0)
            return r;
    }
    if (r < 0)
        return r;
    eo_jlex_skip_ws(&c);
    if (c.p != c.end || seen != (1u << R_COUNT) - 1)
        return EO_EPARSE;
    return 0;
}

int eo_record_scan(const void *bytes, size_t len, eo_record_scan_t *out)
{
    return scan_record(bytes, len, out, NULL);
}

/* The fields of rec that come from the scan as they are: tenant, receivedAt, the event's
 * strings and times (properties and context are the caller's). */
static void fill_record(const eo_record_scan_t *s, eo_record_t *rec)
{
    memcpy(rec->tenant_id, s->tenant_id, sizeof rec->tenant_id);
    rec->received_at_us = s->received_at_us;
    eo_event_t *ev = &rec->ev;
    ev->event_type = s->event_type;
    ev->user_id = s->user_id;
    ev->anonymous_id = s->anonymous_id;
    ev->message_id = s->message_id;
    ev->occurred_at_us = s->occurred_at_us;
    ev->original_timestamp_us = s->original_timestamp_us;
    ev->sent_at_us = s->sent_at_us;
}

int eo_record_from_scan(const eo_record_scan_t *s, bool want_properties, bool want_context,
                        eo_record_t *rec)
{
    memset(rec, 0, sizeof *rec);
    fill_record(s, rec);
    eo_event_t *ev = &rec->ev;
    json_t *props = NULL, *context = NULL;
    int r = 0;
    if (want_properties && s->properties)
        r = load_object(s->properties, s->properties_len, &props);
    if (r == 0 && want_context && s->context)
        r = load_object(s->context, s->context_len, &context);
    if (r < 0) {
        json_decref(props);
        json_decref(context);
        return r;
    }
    /* root owns what was parsed: one object, or both in an array (an append takes its value's
     * reference even when it fails) */
    if (props && context) {
        rec->root = json_array();
        if (!rec->root) {
            json_decref(props);
            json_decref(context);
            return EO_ENOMEM;
        }
        if (json_array_append_new(rec->root, props) < 0) {
            json_decref(context);
            return EO_ENOMEM;
        }
        if (json_array_append_new(rec->root, context) < 0)
            return EO_ENOMEM;
    } else {
        rec->root = props ? props : context;
    }
    ev->properties = props;
    ev->context = context;
    return 0;
}

/* True when s lies inside [base, base + len). */
static bool borrows(eo_str_t s, const void *base, size_t len)
{
    const char *b = base;
    return s.s >= b && s.s + s.len <= b + len;
}

/* Properties or context: absent, or an object within the limits whose text is its normal form
 * (then *text spans it). */
static int normal_object(const char *obj, size_t len, const eo_event_limits_t *lim,
                         eo_buf_t *scratch, eo_str_t *text)
{
    *text = (eo_str_t){NULL, 0};
    if (!obj)
        return 0;
    eo_jspan_t span = {EO_JV_OBJECT, (const unsigned char *)obj, len, false};
    eo_buf_reset(scratch);
    int r = eo_json_norm_object(&span, lim, scratch);
    if (r == EO_ENOMEM)
        return r;
    if (r < 0 || scratch->len != len || memcmp(scratch->data, obj, len) != 0)
        return EO_EPARSE;
    *text = (eo_str_t){obj, len};
    return 0;
}

int eo_record_fast_decode(const void *bytes, size_t len, const eo_event_limits_t *lim,
                          eo_json_keys_t *keys, eo_record_scan_t *scan, eo_buf_t *scratch,
                          eo_record_t *rec)
{
    memset(rec, 0, sizeof *rec);
    if (len > lim->max_event_bytes + EO_RECORD_ENVELOPE_MAX)
        return EO_EPARSE;
    /* One pass checks the whole record: the scan validates every token and the structure,
     * the keys table the duplicates inside the members' values; unknown members are left to
     * eo_record_decode. (A separate eo_json_check pass before it cost 11 % of the processor's
     * CPU, docs/benchmarks.md.) */
    keys->nkeys = 0;
    int r = scan_record(bytes, len, scan, keys);
    if (r < 0)
        return r == EO_ENOMEM ? r : EO_EPARSE;
    if (!borrows(scan->message_id, bytes, len) || !borrows(scan->event_type, bytes, len) ||
        (scan->user_id.s && !borrows(scan->user_id, bytes, len)) ||
        (scan->anonymous_id.s && !borrows(scan->anonymous_id, bytes, len)))
        return EO_EPARSE; /* escaped or integer: eo_record_decode's tree holds the text */
    if (scan->message_id.len > lim->max_id_bytes ||
        scan->event_type.len > lim->max_event_type_bytes || scan->user_id.len > lim->max_id_bytes ||
        scan->anonymous_id.len > lim->max_id_bytes)
        return EO_EPARSE;
    if (scan->occurred_at_us > scan->received_at_us + lim->max_future_us ||
        scan->occurred_at_us < scan->received_at_us - lim->max_past_us)
        return EO_EPARSE;
    eo_event_t *ev = &rec->ev;
    if ((r = normal_object(scan->properties, scan->properties_len, lim, scratch,
                           &ev->properties_text)) < 0 ||
        (r = normal_object(scan->context, scan->context_len, lim, scratch, &ev->context_text)) < 0)
        return r;
    fill_record(scan, rec);
    return 0;
}
