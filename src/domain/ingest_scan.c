/* The tree-less ingest path (see ingest_scan.h). */
#include "domain/ingest_scan.h"

#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "domain/json_norm.h"
#include "domain/record.h"
#include "domain/record_scan.h"
#include "domain/rfc3339.h"

void eo_body_scan_init(eo_body_scan_t *b)
{
    memset(b, 0, sizeof *b);
}

void eo_body_scan_done(eo_body_scan_t *b)
{
    if (!b)
        return;
    free(b->items);
    memset(b, 0, sizeof *b);
}

/* The elements of the checked array at c->p + 1 (after its '['), appended to b->items; c after
 * its ']'. EO_EPARSE past max of them (an array of a million tiny values is not listed before it
 * is refused). */
static int list_from(eo_jcur_t *cur, size_t max, eo_body_scan_t *b)
{
    eo_jcur_t c = *cur;
    int r;
    for (bool first = true; (r = eo_jlex_next_element(&c, first)) == 1; first = false) {
        if (b->count == max)
            return EO_EPARSE;
        if (EO_ARRAY_RESERVE(b->items, b->cap, b->count + 1, 64) < 0)
            return EO_ENOMEM;
        eo_jspan_t *v = &b->items[b->count++];
        v->kind = *c.p == '{' ? EO_JV_OBJECT : EO_JV_NONE; /* only objects are read */
        v->s = c.p;
        v->esc = false;
        eo_jlex_skip_valid(&c);
        v->len = (size_t)(c.p - v->s);
    }
    *cur = c;
    return r;
}

/* The elements of the checked array arr (see list_from). */
static int list_elements(const eo_jspan_t *arr, size_t max, eo_body_scan_t *b)
{
    eo_jcur_t c = {arr->s + 1, arr->s + arr->len};
    return list_from(&c, max, b);
}

int eo_body_list_at(eo_jcur_t *c, const eo_event_limits_t *lim, eo_body_scan_t *b)
{
    b->count = 0;
    c->p++; /* the '[' */
    int r = list_from(c, lim->max_batch_events, b);
    return r < 0 ? r : b->count == 0 ? EO_EPARSE : 0;
}

/* True when the validated key has the content name. */
static bool key_is(const eo_jspan_t *key, const char *name, size_t len)
{
    if (!key->esc)
        return key->len == len && memcmp(key->s, name, len) == 0;
    eo_jspan_t n = {EO_JV_STRING, (const unsigned char *)name, len, false};
    return eo_jlex_same_text(key, &n);
}

int eo_body_scan(const char *body, size_t len, bool single, const eo_event_limits_t *lim,
                 eo_json_keys_t *keys, eo_body_scan_t *b)
{
    b->count = 0;
    eo_jspan_t root;
    int r = eo_json_check(body, len, keys, &root);
    return r < 0 ? r : eo_body_list(&root, single, lim, b);
}

int eo_body_list(const eo_jspan_t *checked, bool single, const eo_event_limits_t *lim,
                 eo_body_scan_t *b)
{
    b->count = 0;
    eo_jspan_t root = *checked;
    int r;
    if (single) {
        if (root.kind != EO_JV_OBJECT)
            return EO_EPARSE;
        if (EO_ARRAY_RESERVE(b->items, b->cap, 1, 64) < 0)
            return EO_ENOMEM;
        b->items[0] = root;
        b->count = 1;
        return 0;
    }
    eo_jspan_t arr = root;
    if (root.kind == EO_JV_OBJECT) { /* {"events": [...]}, or "batch" when there is no "events" */
        eo_jspan_t key, events = {EO_JV_NONE, NULL, 0, false}, batch = events;
        eo_jcur_t c = {root.s + 1, root.s + root.len};
        for (bool first = true; (r = eo_jlex_next_member(&c, first, &key)) == 1; first = false) {
            eo_jspan_t *slot = key_is(&key, "events", 6)  ? &events
                               : key_is(&key, "batch", 5) ? &batch
                                                          : NULL;
            const unsigned char *at = c.p;
            eo_jlex_skip_valid(&c);
            if (slot)
                *slot = (eo_jspan_t){*at == '[' ? EO_JV_ARRAY : EO_JV_NONE, at, (size_t)(c.p - at),
                                     false};
        }
        if (r < 0)
            return r;
        arr = events.s ? events : batch;
    }
    if (arr.kind != EO_JV_ARRAY)
        return EO_EPARSE;
    if ((r = list_elements(&arr, lim->max_batch_events, b)) < 0)
        return r;
    return b->count == 0 ? EO_EPARSE : 0;
}

/* ---- one event ---- */

enum {
    M_MESSAGE_ID,
    M_EVENT_TYPE,
    M_EVENT, /* alias of eventType */
    M_NAME,  /* alias of eventType */
    M_USER_ID,
    M_ANONYMOUS_ID,
    M_TIMESTAMP,
    M_SENT_AT,
    M_PROPERTIES,
    M_METADATA, /* alias of properties */
    M_CONTEXT,
    M_COUNT
};

/* The member names of EventOps's own API, in the order above. */
static const eo_scan_names_t eventops_names = {
    {
        EO_SCAN_NAME("messageId"),
        EO_SCAN_NAME("eventType"),
        EO_SCAN_NAME("event"),
        EO_SCAN_NAME("name"),
        EO_SCAN_NAME("userId"),
        EO_SCAN_NAME("anonymousId"),
        EO_SCAN_NAME("timestamp"),
        EO_SCAN_NAME("sentAt"),
        EO_SCAN_NAME("properties"),
        EO_SCAN_NAME("metadata"),
        EO_SCAN_NAME("context"),
    },
    {EO_SCAN_NO_NAME, EO_SCAN_NO_NAME, EO_SCAN_NO_NAME, EO_SCAN_NO_NAME, EO_SCAN_NO_NAME}};

_Static_assert(sizeof eventops_names.name / sizeof eventops_names.name[0] == M_COUNT,
               "a name for every member");

const eo_scan_names_t *eo_scan_names_eventops(void)
{
    return &eventops_names;
}

/* The index of key among names (NULL entries match nothing): a role, M_COUNT + k for extra k,
 * or -1. */
static int member_index(const eo_scan_names_t *names, const eo_jspan_t *key)
{
    for (int i = 0; i < M_COUNT + EO_SCAN_EXTRA; i++) {
        const char *name = i < M_COUNT ? names->name[i].s : names->extra[i - M_COUNT].s;
        size_t len = i < M_COUNT ? names->name[i].len : names->extra[i - M_COUNT].len;
        if (name && (key->esc || key->len == len) && key_is(key, name, len))
            return i;
    }
    return -1;
}

/* A string's content: in the body, or unescaped into ev's scratch. */
static int take_str(eo_event_scan_t *ev, const eo_jspan_t *v, eo_str_t *dst)
{
    if (!v->esc) {
        *dst = (eo_str_t){(const char *)v->s, v->len};
        return 0;
    }
    char *at = ev->scratch + ev->scratch_used;
    size_t n = eo_jlex_unescape(v, at, sizeof ev->scratch - ev->scratch_used);
    if (n == SIZE_MAX)
        return EO_EINVAL;
    ev->scratch_used += n;
    *dst = (eo_str_t){at, n};
    return 0;
}

/* userId / anonymousId: a usable string, an integer (its decimal text), or null/absent. */
static int take_id(eo_event_scan_t *ev, const eo_jspan_t *v, size_t max, char text[24],
                   eo_str_t *dst)
{
    *dst = (eo_str_t){NULL, 0};
    if (v->kind == EO_JV_NONE || v->kind == EO_JV_NULL)
        return 0;
    if (v->kind == EO_JV_INTEGER) { /* at most 20 bytes: the lexer refused more than int64 */
        bool minus_zero = v->len == 2 && v->s[0] == '-' && v->s[1] == '0';
        size_t n = minus_zero ? 1 : v->len;
        memcpy(text, minus_zero ? v->s + 1 : v->s, n);
        *dst = (eo_str_t){text, n};
        return n <= max ? 0 : EO_EINVAL;
    }
    if (v->kind != EO_JV_STRING || take_str(ev, v, dst) < 0 || !eo_scan_usable_text(*dst, max))
        return EO_EINVAL;
    return 0;
}

/* The first non-null of aliases first..last when every other non-null one is the same text
 * (same kind and bytes; the jansson path settles anything else). -1: all absent. */
static int pick_alias(const eo_jspan_t *m, int first, int last)
{
    int chosen = -1;
    for (int i = first; i <= last; i++) {
        if (m[i].kind == EO_JV_NONE || m[i].kind == EO_JV_NULL)
            continue;
        if (chosen < 0) {
            chosen = i;
            continue;
        }
        const eo_jspan_t *a = &m[chosen], *b = &m[i];
        bool same = a->kind == b->kind &&
                    (a->kind == EO_JV_STRING ? eo_jlex_same_text(a, b)
                                             : a->len == b->len && !memcmp(a->s, b->s, a->len));
        if (!same)
            return -2;
    }
    return chosen;
}

int eo_event_scan(const eo_jspan_t *item, const eo_event_limits_t *lim, int64_t received_at_us,
                  eo_event_scan_t *ev)
{
    return eo_event_scan_as(item, &eventops_names, lim, received_at_us, ev);
}

int eo_event_scan_as(const eo_jspan_t *item, const eo_scan_names_t *names,
                     const eo_event_limits_t *lim, int64_t received_at_us, eo_event_scan_t *ev)
{
    ev->scratch_used = 0;
    if (item->kind != EO_JV_OBJECT)
        return EO_EINVAL;
    eo_jspan_t m[M_COUNT + EO_SCAN_EXTRA], key;
    for (int i = 0; i < M_COUNT + EO_SCAN_EXTRA; i++)
        m[i].kind = EO_JV_NONE;
    eo_jcur_t c = {item->s + 1, item->s + item->len};
    int r;
    for (bool first = true; (r = eo_jlex_next_member(&c, first, &key)) == 1; first = false) {
        int i = member_index(names, &key);
        if (i >= M_COUNT && (c.p[0] == '{' || c.p[0] == '[')) { /* an extra: its text */
            const unsigned char *at = c.p;
            eo_jlex_skip_valid(&c);
            m[i] = (eo_jspan_t){*at == '{' ? EO_JV_OBJECT : EO_JV_ARRAY, at, (size_t)(c.p - at),
                                false};
        } else if (i < 0 || i == M_PROPERTIES || i == M_METADATA || i == M_CONTEXT) {
            const unsigned char *at = c.p; /* skipped, or kept whole: checked later */
            eo_jlex_skip_valid(&c);
            if (i >= 0)
                m[i] = (eo_jspan_t){*at == '{'   ? EO_JV_OBJECT
                                    : *at == 'n' ? EO_JV_NULL
                                                 : EO_JV_ARRAY, /* any other kind: refused */
                                    at, (size_t)(c.p - at), false};
        } else if (eo_jlex_scalar(&c, &m[i]) < 0) {
            if (c.p >= c.end || (*c.p != '{' && *c.p != '['))
                return EO_EINVAL;
            /* a container where a scalar is read: refused below, its text kept whole (two
             * aliases holding containers are compared by pick_alias) */
            const unsigned char *at = c.p;
            eo_jlex_skip_valid(&c);
            m[i] = (eo_jspan_t){EO_JV_ARRAY, at, (size_t)(c.p - at), false};
        }
    }
    if (r < 0)
        return EO_EINVAL;
    if (m[M_MESSAGE_ID].kind == EO_JV_NONE || m[M_MESSAGE_ID].kind == EO_JV_NULL) {
        ev->message_id = (eo_str_t){NULL, 0};
    } else if (m[M_MESSAGE_ID].kind != EO_JV_STRING ||
               take_str(ev, &m[M_MESSAGE_ID], &ev->message_id) < 0 ||
               !eo_scan_usable_text(ev->message_id, lim->max_id_bytes)) {
        return EO_EINVAL;
    }
    int type = pick_alias(m, M_EVENT_TYPE, M_NAME);
    if (type < 0 || m[type].kind != EO_JV_STRING || take_str(ev, &m[type], &ev->event_type) < 0 ||
        !eo_scan_usable_text(ev->event_type, lim->max_event_type_bytes))
        return EO_EINVAL;
    if (take_id(ev, &m[M_USER_ID], lim->max_id_bytes, ev->id_text[0], &ev->user_id) < 0 ||
        take_id(ev, &m[M_ANONYMOUS_ID], lim->max_id_bytes, ev->id_text[1], &ev->anonymous_id) < 0 ||
        (!ev->user_id.s && !ev->anonymous_id.s))
        return EO_EINVAL;
    if (eo_scan_time(&m[M_TIMESTAMP], true, &ev->original_timestamp_us) < 0 ||
        eo_scan_time(&m[M_SENT_AT], true, &ev->sent_at_us) < 0)
        return EO_EINVAL;
    /* the clock-skew correction of eo_event_normalize */
    int64_t occurred =
        ev->original_timestamp_us != EO_NO_TIME ? ev->original_timestamp_us : received_at_us;
    if (ev->sent_at_us != EO_NO_TIME && ev->original_timestamp_us != EO_NO_TIME)
        occurred += received_at_us - ev->sent_at_us;
    if (occurred > received_at_us + lim->max_future_us ||
        occurred < received_at_us - lim->max_past_us)
        return EO_EINVAL;
    ev->occurred_at_us = occurred;
    int props = pick_alias(m, M_PROPERTIES, M_METADATA);
    if (props < -1 || (props >= 0 && m[props].kind != EO_JV_OBJECT))
        return EO_EINVAL;
    ev->properties = props >= 0 ? m[props] : (eo_jspan_t){EO_JV_NONE, NULL, 0, false};
    if (m[M_CONTEXT].kind != EO_JV_NONE && m[M_CONTEXT].kind != EO_JV_NULL &&
        m[M_CONTEXT].kind != EO_JV_OBJECT)
        return EO_EINVAL;
    ev->context =
        m[M_CONTEXT].kind == EO_JV_OBJECT ? m[M_CONTEXT] : (eo_jspan_t){EO_JV_NONE, NULL, 0, false};
    memcpy(ev->extra, m + M_COUNT, sizeof ev->extra);
    return 0;
}

/* A member whose value is a string's content, or null. */
static void put_member_str(eo_buf_t *out, const char *name, size_t name_len, eo_str_t v)
{
    eo_buf_put(out, name, name_len);
    if (v.s)
        eo_buf_put_json_str(out, v.s, v.len);
    else
        eo_buf_put(out, "null", 4);
}

/* A member whose value is a time, or null. */
static void put_member_time(eo_buf_t *out, const char *name, size_t name_len, int64_t us)
{
    eo_buf_put(out, name, name_len);
    if (us == EO_NO_TIME) {
        eo_buf_put(out, "null", 4);
        return;
    }
    char t[EO_RFC3339_MAX];
    size_t n = eo_rfc3339_format(us, t);
    eo_buf_putc(out, '"');
    eo_buf_put(out, t, n);
    eo_buf_putc(out, '"');
}

#define PUT_NAME(s) s, sizeof s - 1

int eo_event_scan_record(const char *tenant_id, int64_t received_at_us, const eo_event_scan_t *ev,
                         eo_str_t message_id, const eo_event_limits_t *lim, eo_buf_t *out)
{
    char t[EO_RFC3339_MAX];
    size_t tn = eo_rfc3339_format(received_at_us, t);
    eo_buf_put(out, PUT_NAME("{\"v\":1,\"tenantId\":\""));
    eo_buf_put(out, tenant_id, strlen(tenant_id));
    eo_buf_put(out, PUT_NAME("\",\"receivedAt\":\""));
    eo_buf_put(out, t, tn);
    eo_buf_put(out, PUT_NAME("\",\"event\":"));
    size_t start = out->len;
    put_member_str(out, PUT_NAME("{\"messageId\":"),
                   ev->message_id.s ? ev->message_id : message_id);
    put_member_str(out, PUT_NAME(",\"eventType\":"), ev->event_type);
    put_member_str(out, PUT_NAME(",\"userId\":"), ev->user_id);
    put_member_str(out, PUT_NAME(",\"anonymousId\":"), ev->anonymous_id);
    put_member_time(out, PUT_NAME(",\"timestamp\":"), ev->occurred_at_us);
    put_member_time(out, PUT_NAME(",\"originalTimestamp\":"), ev->original_timestamp_us);
    put_member_time(out, PUT_NAME(",\"sentAt\":"), ev->sent_at_us);
    eo_buf_put(out, PUT_NAME(",\"properties\":"));
    int r = 0;
    if (ev->properties.kind == EO_JV_OBJECT)
        r = eo_json_norm_object(&ev->properties, lim, out);
    else
        eo_buf_put(out, "{}", 2);
    if (r == EO_EINVAL || r == EO_ENOMEM)
        return r;
    eo_buf_put(out, PUT_NAME(",\"context\":"));
    if (ev->context.kind == EO_JV_OBJECT)
        r = eo_json_norm_object(&ev->context, lim, out);
    else
        eo_buf_put(out, "{}", 2);
    if (r == EO_EINVAL || r == EO_ENOMEM)
        return r;
    eo_buf_putc(out, '}');
    if ((r = eo_buf_error(out)) < 0)
        return r;
    if (out->len - start > lim->max_event_bytes)
        return EO_ELIMIT;
    eo_buf_putc(out, '}');
    return eo_buf_error(out);
}

void eo_event_scan_ids(const eo_event_scan_t *ev, eo_event_t *out)
{
    out->user_id = ev->user_id;
    out->anonymous_id = ev->anonymous_id;
}
