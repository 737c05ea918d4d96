/* Segment and PostHog bodies read as EventOps events (see compat.h). */
#include "domain/compat.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "domain/batch.h"
#include "domain/record_scan.h"
#include "domain/rfc3339.h"

/* A member that is present and not null, or NULL. */
static json_t *member(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    return v && !json_is_null(v) ? v : NULL;
}

static bool is_segment(eo_compat_kind_t kind)
{
    return kind != EO_COMPAT_POSTHOG;
}

/* Takes the string member name of obj as *key when *key is still unset; a member of another
 * type is refused either way. */
static int take_key(json_t *obj, const char *name, eo_str_t *key, eo_event_error_t *err)
{
    json_t *v = member(obj, name);
    if (!v)
        return 0;
    if (!json_is_string(v)) {
        eo_event_error_set(err, "invalid_type", name, "'%s' must be a string", name);
        return EO_EINVAL;
    }
    if (key->s)
        return 0;
    key->s = json_string_value(v);
    key->len = json_string_length(v);
    return 0;
}

/* PostHog's SDKs put the project key in the body, or (posthog-js) in each event's properties:
 * the first message that carries one gives the request's. */
static void posthog_message_key(json_t *m, eo_str_t *key)
{
    json_t *props = member(m, "properties");
    json_t *v = member(m, "api_key");
    v = v ? v : member(m, "token");
    v = v ? v : json_is_object(props) ? member(props, "token") : NULL;
    if (json_is_string(v)) {
        key->s = json_string_value(v);
        key->len = json_string_length(v);
    }
}

static json_t *message(const eo_compat_body_t *b, size_t i)
{
    return b->single ? b->messages : json_array_get(b->messages, i);
}

/* The list of messages of a batch body, its count checked against the limits. */
static int list_messages(eo_compat_body_t *out, json_t *list, const eo_event_limits_t *lim,
                         eo_event_error_t *err)
{
    if (!json_is_array(list)) {
        eo_event_error_set(err, "invalid_type", "batch", "'batch' must be an array");
        return EO_EINVAL;
    }
    out->messages = list;
    out->count = json_array_size(list);
    if (out->count == 0) {
        eo_event_error_set(err, "empty_batch", "batch", "the batch holds no messages");
        return EO_EINVAL;
    }
    if (out->count > lim->max_batch_events) {
        eo_event_error_set(err, "too_many_events", "batch",
                           "the batch holds %zu messages; the limit is %zu", out->count,
                           lim->max_batch_events);
        return EO_ELIMIT;
    }
    return 0;
}

int eo_compat_parse(const char *body, size_t len, eo_compat_kind_t kind,
                    const eo_event_limits_t *lim, eo_compat_body_t *out, eo_event_error_t *err)
{
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->lim = lim;
    json_t *root = eo_body_load(body, len, err);
    if (!root)
        return EO_EPARSE;
    out->root = root;
    int r = 0;
    json_t *list = NULL;
    if (kind == EO_COMPAT_POSTHOG) {
        if (json_is_array(root)) {
            list = root;
        } else if (!json_is_object(root)) {
            eo_event_error_set(err, "invalid_type", "",
                               "the body must be an event object, an array of events or "
                               "{\"batch\": [...]}");
            r = EO_EINVAL;
        } else {
            list = member(root, "batch");
        }
    } else if (!json_is_object(root)) {
        eo_event_error_set(err, "invalid_type", "",
                           kind == EO_COMPAT_SEGMENT_BATCH
                               ? "the body must be {\"batch\": [...]}"
                               : "the body must be one JSON message object");
        r = EO_EINVAL;
    } else if (kind == EO_COMPAT_SEGMENT_BATCH && !(list = member(root, "batch"))) {
        eo_event_error_set(err, "missing_field", "batch", "'batch' is required");
        r = EO_EINVAL;
    }
    if (r == 0 && list) {
        r = list_messages(out, list, lim, err);
    } else if (r == 0) {
        out->messages = root;
        out->count = 1;
        out->single = true;
    }
    /* the body's key, time and context (a single message's own are read with it) */
    if (r == 0 && json_is_object(root)) {
        if (is_segment(kind))
            r = take_key(root, "writeKey", &out->key, err);
        else if ((r = take_key(root, "api_key", &out->key, err)) == 0)
            r = take_key(root, "token", &out->key, err);
        if (!out->single) {
            out->sent_at = member(root, is_segment(kind) ? "sentAt" : "sent_at");
            out->context = is_segment(kind) ? member(root, "context") : NULL;
        }
    }
    for (size_t i = 0; r == 0 && kind == EO_COMPAT_POSTHOG && !out->key.s && i < out->count; i++)
        posthog_message_key(message(out, i), &out->key);
    if (r < 0)
        eo_compat_done(out);
    return r;
}

/* Sets ev[name] to v (a borrowed reference) when v is not NULL. */
static int put(json_t *ev, const char *name, json_t *v)
{
    return v && json_object_set(ev, name, v) < 0 ? EO_ENOMEM : 0;
}

/* Sets ev[name] to v, taking v's reference (NULL: out of memory). */
static int put_new(json_t *ev, const char *name, json_t *v)
{
    return !v || json_object_set_new(ev, name, v) < 0 ? EO_ENOMEM : 0;
}

/* An identifier an SDK sends as a string or an integer (groupId, previousId), as a new string
 * of at most max_id_bytes. */
static int id_text(json_t *m, const char *name, const eo_event_limits_t *lim, json_t **out,
                   eo_event_error_t *err)
{
    *out = NULL;
    json_t *v = member(m, name);
    if (!v) {
        eo_event_error_set(err, "missing_field", name, "'%s' is required", name);
        return EO_EINVAL;
    }
    char digits[24];
    const char *s;
    size_t n;
    if (json_is_integer(v)) {
        n = (size_t)snprintf(digits, sizeof digits, "%" PRId64, (int64_t)json_integer_value(v));
        s = digits;
    } else if (json_is_string(v)) {
        s = json_string_value(v);
        n = json_string_length(v);
    } else {
        eo_event_error_set(err, "invalid_type", name, "'%s' must be a string or an integer", name);
        return EO_EINVAL;
    }
    if (n == 0) {
        eo_event_error_set(err, "empty_value", name, "'%s' must not be empty", name);
        return EO_EINVAL;
    }
    if (n > lim->max_id_bytes) {
        eo_event_error_set(err, "too_long", name, "'%s' is longer than %zu bytes", name,
                           lim->max_id_bytes);
        return EO_EINVAL;
    }
    return (*out = json_stringn(s, n)) ? 0 : EO_ENOMEM;
}

/* traits: an object, or absent ({}). A new reference in *out. */
static int traits_of(json_t *m, json_t **out, eo_event_error_t *err)
{
    json_t *t = member(m, "traits");
    if (t && !json_is_object(t)) {
        *out = NULL;
        eo_event_error_set(err, "invalid_type", "traits", "'traits' must be an object");
        return EO_EINVAL;
    }
    *out = t ? json_incref(t) : json_object();
    return *out ? 0 : EO_ENOMEM;
}

/* page and screen: properties, with the message's name and category added where properties
 * does not hold them already. */
static int page_properties(json_t *m, json_t *ev)
{
    json_t *props = member(m, "properties");
    json_t *name = member(m, "name"), *category = member(m, "category");
    if ((!name && !category) || (props && !json_is_object(props)))
        return put(ev, "properties", props); /* a wrong type is normalize's refusal */
    json_t *p = props ? json_copy(props) : json_object();
    if (!p)
        return EO_ENOMEM;
    if ((name && !json_object_get(p, "name") && json_object_set(p, "name", name) < 0) ||
        (category && !json_object_get(p, "category") &&
         json_object_set(p, "category", category) < 0)) {
        json_decref(p);
        return EO_ENOMEM;
    }
    return put_new(ev, "properties", p);
}

/* Sets the event's type and properties (taking props' reference). */
static int named(json_t *ev, const char *event_type, json_t *props)
{
    int r = put_new(ev, "properties", props);
    return r < 0 ? r : put_new(ev, "eventType", json_string(event_type));
}

static const char *const segment_types[] = {"track",  "identify", "page",
                                            "screen", "group",    "alias"};

static int segment_event(const eo_compat_body_t *b, json_t *m, json_t *ev, eo_event_error_t *err)
{
    eo_compat_kind_t type = b->kind;
    if (type == EO_COMPAT_SEGMENT_BATCH) {
        json_t *t = member(m, "type");
        if (!t) {
            eo_event_error_set(err, "missing_field", "type",
                               "'type' is required in a batch message");
            return EO_EINVAL;
        }
        if (!json_is_string(t)) {
            eo_event_error_set(err, "invalid_type", "type", "'type' must be a string");
            return EO_EINVAL;
        }
        size_t k = 0;
        while (k < sizeof segment_types / sizeof segment_types[0] &&
               strcmp(json_string_value(t), segment_types[k]) != 0)
            k++;
        if (k == sizeof segment_types / sizeof segment_types[0]) {
            eo_event_error_set(err, "invalid_value", "type",
                               "'type' must be track, identify, page, screen, group or alias");
            return EO_EINVAL;
        }
        type = (eo_compat_kind_t)k; /* the order of segment_types is the enum's */
    }
    json_t *ts = member(m, "timestamp");
    json_t *sent = member(m, "sentAt"), *ctx = member(m, "context");
    int r = put(ev, "messageId", member(m, "messageId"));
    r = r ? r : put(ev, "userId", member(m, "userId"));
    r = r ? r : put(ev, "anonymousId", member(m, "anonymousId"));
    r = r ? r : put(ev, "timestamp", ts ? ts : member(m, "originalTimestamp"));
    r = r ? r : put(ev, "sentAt", sent ? sent : b->sent_at);
    r = r ? r : put(ev, "context", ctx ? ctx : b->context);
    if (r < 0)
        return r;
    json_t *v, *props;
    switch (type) {
    case EO_COMPAT_TRACK:
        if (!member(m, "event")) {
            eo_event_error_set(err, "missing_field", "event",
                               "'event' is required in a track message");
            return EO_EINVAL;
        }
        if ((r = put(ev, "event", member(m, "event"))) < 0)
            return r;
        return put(ev, "properties", member(m, "properties"));
    case EO_COMPAT_PAGE:
    case EO_COMPAT_SCREEN:
        if ((r = put_new(ev, "eventType",
                         json_string(type == EO_COMPAT_PAGE ? "$pageview" : "$screen"))) < 0)
            return r;
        return page_properties(m, ev);
    case EO_COMPAT_IDENTIFY:
        if ((r = traits_of(m, &v, err)) < 0)
            return r;
        if (!(props = json_object()) || json_object_set_new(props, "$set", v) < 0) {
            json_decref(props);
            return EO_ENOMEM;
        }
        return named(ev, "$identify", props);
    case EO_COMPAT_GROUP:
        if ((r = id_text(m, "groupId", b->lim, &v, err)) < 0)
            return r;
        props = json_object();
        if (!props || json_object_set_new(props, "$group_type", json_string("group")) < 0 ||
            json_object_set_new(props, "$group_key", v) < 0) {
            json_decref(props);
            return EO_ENOMEM;
        }
        if ((r = traits_of(m, &v, err)) < 0 || json_object_set_new(props, "$group_set", v) < 0) {
            json_decref(props);
            return r < 0 ? r : EO_ENOMEM;
        }
        return named(ev, "$groupidentify", props);
    case EO_COMPAT_ALIAS:
        if ((r = id_text(m, "previousId", b->lim, &v, err)) < 0)
            return r;
        if (!(props = json_object()) || json_object_set_new(props, "alias", v) < 0) {
            json_decref(props);
            return EO_ENOMEM;
        }
        return named(ev, "$create_alias", props);
    default:
        return EO_EINVAL; /* not reached: the kind is a Segment one */
    }
}

/* PostHog's properties: a top-level $set / $set_once moved in (where properties does not hold
 * one), the project key taken out (it is a credential, not event data). */
static int posthog_properties(json_t *m, json_t *ev)
{
    json_t *props = member(m, "properties");
    json_t *set = member(m, "$set"), *once = member(m, "$set_once");
    if (props && !json_is_object(props))
        return put(ev, "properties", props); /* normalize's refusal */
    bool has_key = props && (json_object_get(props, "token") || json_object_get(props, "api_key"));
    if (!set && !once && !has_key)
        return put(ev, "properties", props);
    json_t *p = props ? json_copy(props) : json_object();
    if (!p)
        return EO_ENOMEM;
    (void)json_object_del(p, "token");
    (void)json_object_del(p, "api_key");
    if ((set && !json_object_get(p, "$set") && json_object_set(p, "$set", set) < 0) ||
        (once && !json_object_get(p, "$set_once") && json_object_set(p, "$set_once", once) < 0)) {
        json_decref(p);
        return EO_ENOMEM;
    }
    return put_new(ev, "properties", p);
}

static int posthog_event(const eo_compat_body_t *b, json_t *m, int64_t received_at_us, json_t *ev,
                         eo_event_error_t *err)
{
    json_t *props = member(m, "properties");
    json_t *did = member(m, "distinct_id");
    if (!did && json_is_object(props))
        did = member(props, "distinct_id");
    if (!member(m, "event")) {
        eo_event_error_set(err, "missing_field", "event", "'event' is required");
        return EO_EINVAL;
    }
    if (!did) {
        eo_event_error_set(err, "missing_field", "distinct_id", "'distinct_id' is required");
        return EO_EINVAL;
    }
    eo_str_t key = {NULL, 0};
    posthog_message_key(m, &key);
    if (key.s && b->key.s && (key.len != b->key.len || memcmp(key.s, b->key.s, key.len) != 0)) {
        eo_event_error_set(err, "invalid_value", "api_key",
                           "the event's api_key differs from the request's");
        return EO_EINVAL;
    }
    json_t *ts = member(m, "timestamp"), *offset = member(m, "offset");
    json_t *sent = member(m, "sent_at");
    int r = put(ev, "event", member(m, "event"));
    r = r ? r : put(ev, "userId", did);
    r = r ? r : put(ev, "messageId", member(m, "uuid"));
    r = r ? r : put(ev, "sentAt", sent ? sent : b->sent_at);
    if (r < 0)
        return r;
    if (!ts && offset) { /* posthog-js: milliseconds before it was sent */
        if (!json_is_integer(offset) || json_integer_value(offset) < 0) {
            eo_event_error_set(err, "invalid_type", "offset",
                               "'offset' must be a non-negative integer (milliseconds)");
            return EO_EINVAL;
        }
        if (json_integer_value(offset) > b->lim->max_past_us / 1000) {
            eo_event_error_set(err, "timestamp_out_of_range", "offset",
                               "'offset' is more than %lld days",
                               (long long)(b->lim->max_past_us / 86400000000LL));
            return EO_EINVAL;
        }
        char text[EO_RFC3339_MAX];
        eo_rfc3339_format(received_at_us - (int64_t)json_integer_value(offset) * 1000, text);
        if ((r = put_new(ev, "timestamp", json_string(text))) < 0)
            return r;
    } else if ((r = put(ev, "timestamp", ts)) < 0) {
        return r;
    }
    return posthog_properties(m, ev);
}

int eo_compat_event(const eo_compat_body_t *b, size_t i, int64_t received_at_us, json_t **out,
                    eo_str_t *message_id, eo_event_error_t *err)
{
    *out = NULL;
    message_id->s = NULL;
    message_id->len = 0;
    json_t *m = message(b, i);
    if (!json_is_object(m)) {
        eo_event_error_set(err, "invalid_type", "", "a message must be a JSON object");
        return EO_EINVAL;
    }
    json_t *id = member(m, is_segment(b->kind) ? "messageId" : "uuid");
    if (json_is_string(id)) {
        message_id->s = json_string_value(id);
        message_id->len = json_string_length(id);
    }
    json_t *ev = json_object();
    if (!ev)
        return EO_ENOMEM;
    int r = is_segment(b->kind) ? segment_event(b, m, ev, err)
                                : posthog_event(b, m, received_at_us, ev, err);
    if (r < 0) {
        if (r == EO_ENOMEM)
            eo_event_error_set(err, "other", "", "out of memory");
        json_decref(ev);
        return r;
    }
    *out = ev;
    return 0;
}

void eo_compat_name_field(eo_compat_kind_t kind, eo_event_error_t *err)
{
    static const char *const posthog[][2] = {{"userId", "distinct_id"},
                                             {"messageId", "uuid"},
                                             {"sentAt", "sent_at"},
                                             {"eventType", "event"}};
    if (kind != EO_COMPAT_POSTHOG)
        return;
    for (size_t k = 0; k < sizeof posthog / sizeof posthog[0]; k++)
        if (strcmp(err->field, posthog[k][0]) == 0) {
            snprintf(err->field, sizeof err->field, "%s", posthog[k][1]);
            return;
        }
}

/* ---- Segment track messages without a tree ---- */

/* True when the validated key has the content name. */
static bool key_is(const eo_jspan_t *key, const char *name)
{
    eo_jspan_t n = {EO_JV_STRING, (const unsigned char *)name, strlen(name), false};
    if (!key->esc)
        return key->len == n.len && memcmp(key->s, name, n.len) == 0;
    return eo_jlex_same_text(key, &n);
}

/* The value at c (already checked) as a span of its kind (a string: its content); c after it. */
static eo_jspan_t value_at(eo_jcur_t *c)
{
    eo_jspan_t v = {EO_JV_NONE, NULL, 0, false};
    const unsigned char *at = c->p;
    if (*at == '"') {
        eo_jcur_t s = *c;
        if (eo_jlex_string(&s, &v) == 0) {
            *c = s;
            return v;
        }
    }
    eo_jlex_skip_valid(c);
    v.s = at;
    v.len = (size_t)(c->p - at);
    v.kind = *at == '{'   ? EO_JV_OBJECT
             : *at == '[' ? EO_JV_ARRAY
             : *at == 'n' ? EO_JV_NULL
                          : EO_JV_INTEGER;
    return v;
}

/* Segment's member names: EventOps's, but eventType, name and metadata are no aliases there
 * (extras 2-4: a message holding one is not taken); extras 0-1: type, originalTimestamp. */
enum { SEG_TYPE, SEG_ORIGINAL_TIMESTAMP, SEG_EVENT_TYPE, SEG_NAME, SEG_METADATA };
static const eo_scan_names_t segment_names = {{
                                                  EO_SCAN_NAME("messageId"),
                                                  EO_SCAN_NO_NAME,
                                                  EO_SCAN_NAME("event"),
                                                  EO_SCAN_NO_NAME,
                                                  EO_SCAN_NAME("userId"),
                                                  EO_SCAN_NAME("anonymousId"),
                                                  EO_SCAN_NAME("timestamp"),
                                                  EO_SCAN_NAME("sentAt"),
                                                  EO_SCAN_NAME("properties"),
                                                  EO_SCAN_NO_NAME,
                                                  EO_SCAN_NAME("context"),
                                              },
                                              {
                                                  EO_SCAN_NAME("type"),
                                                  EO_SCAN_NAME("originalTimestamp"),
                                                  EO_SCAN_NAME("eventType"),
                                                  EO_SCAN_NAME("name"),
                                                  EO_SCAN_NAME("metadata"),
                                              }};

/* PostHog's member names: no aliases, no anonymousId, no context; extras: offset, and the
 * members a taken event must not have. */
enum { PH_OFFSET, PH_SET, PH_SET_ONCE, PH_API_KEY, PH_TOKEN };
static const eo_scan_names_t posthog_names = {{
                                                  EO_SCAN_NAME("uuid"),
                                                  EO_SCAN_NO_NAME,
                                                  EO_SCAN_NAME("event"),
                                                  EO_SCAN_NO_NAME,
                                                  EO_SCAN_NAME("distinct_id"),
                                                  EO_SCAN_NO_NAME,
                                                  EO_SCAN_NAME("timestamp"),
                                                  EO_SCAN_NAME("sent_at"),
                                                  EO_SCAN_NAME("properties"),
                                                  EO_SCAN_NO_NAME,
                                                  EO_SCAN_NO_NAME,
                                              },
                                              {
                                                  EO_SCAN_NAME("offset"),
                                                  EO_SCAN_NAME("$set"),
                                                  EO_SCAN_NAME("$set_once"),
                                                  EO_SCAN_NAME("api_key"),
                                                  EO_SCAN_NAME("token"),
                                              }};

/* A member given and not null. */
static bool given(const eo_jspan_t *v)
{
    return v->kind != EO_JV_NONE && v->kind != EO_JV_NULL;
}

/* Reads the members of the body's root object (c after its '{') into out, listing a "batch"
 * array into scan where the form has one (*listed: it did). 0, EO_EPARSE or EO_ENOMEM. */
static int scan_root(eo_jcur_t *c, const eo_event_limits_t *lim, eo_body_scan_t *scan,
                     eo_compat_scan_t *out, bool *listed)
{
    bool segment = is_segment(out->kind);
    bool batches = out->kind != EO_COMPAT_TRACK; /* the forms with a "batch" list */
    eo_jspan_t key, other_key = {EO_JV_NONE, NULL, 0, false};
    int r;
    *listed = false;
    for (bool first = true; (r = eo_jlex_next_member(c, first, &key)) == 1; first = false) {
        if (batches && key_is(&key, "batch")) {
            if (*c->p != '[')
                return EO_EPARSE; /* not a list: eo_compat_parse's refusal */
            if ((r = eo_body_list_at(c, lim, scan)) < 0)
                return r;
            *listed = true;
            continue;
        }
        eo_jspan_t v = value_at(c);
        if (v.kind == EO_JV_NULL)
            v.kind = EO_JV_NONE; /* null counts as absent */
        bool is_key = segment ? key_is(&key, "writeKey") : key_is(&key, "api_key");
        bool is_token = !segment && key_is(&key, "token");
        if (is_key || is_token) {
            if (v.kind != EO_JV_STRING && v.kind != EO_JV_NONE)
                return EO_EPARSE;
            *(is_key ? &out->write_key : &other_key) = v;
        } else if (key_is(&key, segment ? "sentAt" : "sent_at")) {
            out->sent_at = v;
        } else if (segment && key_is(&key, "context")) {
            out->context = v;
        }
    }
    if (out->write_key.kind == EO_JV_NONE)
        out->write_key = other_key; /* PostHog: api_key, else token */
    return r < 0 ? EO_EPARSE : 0;
}

int eo_compat_scan(const char *body, size_t len, eo_compat_kind_t kind,
                   const eo_event_limits_t *lim, eo_json_keys_t *keys, eo_body_scan_t *scan,
                   eo_compat_scan_t *out)
{
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->names = kind == EO_COMPAT_POSTHOG ? &posthog_names : &segment_names;
    if (kind != EO_COMPAT_TRACK && kind != EO_COMPAT_SEGMENT_BATCH && kind != EO_COMPAT_POSTHOG)
        return EO_EPARSE;
    eo_jspan_t root;
    int r = eo_json_check(body, len, keys, &root);
    if (r < 0)
        return r == EO_ENOMEM ? r : EO_EPARSE;
    bool listed = false;
    scan->count = 0;
    if (root.kind == EO_JV_OBJECT) {
        eo_jcur_t c = {root.s + 1, root.s + root.len};
        if ((r = scan_root(&c, lim, scan, out, &listed)) < 0)
            return r == EO_ENOMEM ? r : EO_EPARSE;
    } else if (root.kind != EO_JV_ARRAY || kind != EO_COMPAT_POSTHOG) {
        return EO_EPARSE; /* Segment: an object; PostHog: an object or an array */
    }
    if (root.kind == EO_JV_ARRAY)
        return eo_body_list(&root, false, lim, scan);
    if (kind == EO_COMPAT_SEGMENT_BATCH && !listed)
        return EO_EPARSE; /* no "batch": eo_compat_parse's refusal */
    /* one message: Segment's routes of one type, a PostHog object without "batch" */
    out->single = !listed;
    if (out->single) {
        out->sent_at = out->context = (eo_jspan_t){EO_JV_NONE, NULL, 0, false};
        return eo_body_list(&root, true, lim, scan);
    }
    return 0;
}

bool eo_compat_scan_takes(const eo_compat_scan_t *info, const eo_event_scan_t *ev)
{
    const eo_jspan_t *x = ev->extra;
    bool own_timestamp = ev->original_timestamp_us != EO_NO_TIME;
    if (info->kind != EO_COMPAT_POSTHOG) {
        eo_jspan_t track = {EO_JV_STRING, (const unsigned char *)"track", 5, false};
        bool typed = info->kind != EO_COMPAT_SEGMENT_BATCH || /* else the route says track */
                     (x[SEG_TYPE].kind == EO_JV_STRING && eo_jlex_same_text(&x[SEG_TYPE], &track));
        return typed && !given(&x[SEG_EVENT_TYPE]) && !given(&x[SEG_NAME]) &&
               !given(&x[SEG_METADATA]) && (own_timestamp || !given(&x[SEG_ORIGINAL_TIMESTAMP]));
    }
    if (given(&x[PH_SET]) || given(&x[PH_SET_ONCE]) || given(&x[PH_API_KEY]) ||
        given(&x[PH_TOKEN]) || (!own_timestamp && given(&x[PH_OFFSET])))
        return false;
    if (ev->properties.kind != EO_JV_OBJECT)
        return true;
    eo_jcur_t p = {ev->properties.s + 1, ev->properties.s + ev->properties.len};
    eo_jspan_t key;
    int r;
    for (bool first = true; (r = eo_jlex_next_member(&p, first, &key)) == 1; first = false) {
        if (key_is(&key, "token") || key_is(&key, "api_key"))
            return false;
        eo_jlex_skip_valid(&p);
    }
    return r == 0;
}

int eo_compat_scan_defaults(const eo_compat_scan_t *info, const eo_event_limits_t *lim,
                            int64_t received_at_us, eo_event_scan_t *ev)
{
    if (ev->context.kind == EO_JV_NONE && info->context.kind != EO_JV_NONE) {
        if (info->context.kind != EO_JV_OBJECT)
            return EO_EINVAL;
        ev->context = info->context;
    }
    if (ev->sent_at_us != EO_NO_TIME || info->sent_at.kind == EO_JV_NONE)
        return 0;
    int64_t sent;
    if (info->sent_at.kind != EO_JV_STRING || eo_scan_time(&info->sent_at, false, &sent) < 0)
        return EO_EINVAL;
    ev->sent_at_us = sent;
    if (ev->original_timestamp_us == EO_NO_TIME)
        return 0; /* no timestamp: the time received, uncorrected (eo_event_normalize's rule) */
    int64_t occurred = ev->original_timestamp_us + (received_at_us - sent);
    if (occurred > received_at_us + lim->max_future_us ||
        occurred < received_at_us - lim->max_past_us)
        return EO_EINVAL;
    ev->occurred_at_us = occurred;
    return 0;
}

void eo_compat_done(eo_compat_body_t *b)
{
    if (!b)
        return;
    json_decref(b->root);
    b->root = b->messages = NULL;
    b->count = 0;
}
