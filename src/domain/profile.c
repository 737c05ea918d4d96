/* Profiles of a batch (see profile.h). */
#include "domain/profile.h"

#include <stdlib.h>
#include <string.h>

#include "core/hmap.h"
#include "domain/json_out.h"

/* A profile or a group of the batch. */
typedef struct {
    char tenant[37];
    json_t *type; /* groups: the group type (a string); profiles: NULL */
    json_t *key;  /* the user key or group key (a string) */
    json_t *traits, *ranks;
    int64_t first, last;
} entry_t;

/* A link of the batch: the first by (at, message id). */
typedef struct {
    char tenant[37];
    json_t *alias, *user, *msg;
    int64_t at;
} link_t;

struct eo_profile_batch {
    eo_hmap_t profiles, groups, links;
    eo_buf_t key; /* scratch: a map key */
};

static bool str_is(eo_str_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.s && s.len == n && memcmp(s.s, lit, n) == 0;
}

bool eo_profile_touches(eo_str_t event_type, const json_t *properties, eo_str_t properties_text)
{
    if (event_type.len > 1 && event_type.s[0] == '$' &&
        (str_is(event_type, "$identify") || str_is(event_type, "$create_alias") ||
         str_is(event_type, "$groupidentify")))
        return true;
    if (properties)
        return json_object_get(properties, "$set") || json_object_get(properties, "$set_once") ||
               json_object_get(properties, "$unset");
    return properties_text.s && properties_text.len > 6 &&
           (memmem(properties_text.s, properties_text.len, "\"$set", 5) ||
            memmem(properties_text.s, properties_text.len, "\"$unset", 7));
}

static void entry_free(void *p)
{
    entry_t *e = p;
    if (!e)
        return;
    json_decref(e->type);
    json_decref(e->key);
    json_decref(e->traits);
    json_decref(e->ranks);
    free(e);
}

static void link_free(void *p)
{
    link_t *l = p;
    if (!l)
        return;
    json_decref(l->alias);
    json_decref(l->user);
    json_decref(l->msg);
    free(l);
}

int eo_profile_batch_new(eo_profile_batch_t **out)
{
    eo_profile_batch_t *b = calloc(1, sizeof *b);
    if (!b)
        return EO_ENOMEM;
    eo_hmap_init(&b->profiles);
    eo_hmap_init(&b->groups);
    eo_hmap_init(&b->links);
    eo_buf_init(&b->key, (size_t)1 << 20);
    *out = b;
    return 0;
}

void eo_profile_batch_reset(eo_profile_batch_t *b)
{
    eo_hmap_done(&b->profiles, entry_free);
    eo_hmap_done(&b->groups, entry_free);
    eo_hmap_done(&b->links, link_free);
    eo_hmap_init(&b->profiles);
    eo_hmap_init(&b->groups);
    eo_hmap_init(&b->links);
}

void eo_profile_batch_free(eo_profile_batch_t *b)
{
    if (!b)
        return;
    eo_profile_batch_reset(b);
    eo_buf_done(&b->key);
    free(b);
}

bool eo_profile_batch_empty(const eo_profile_batch_t *b)
{
    return b->profiles.count == 0 && b->groups.count == 0 && b->links.count == 0;
}

/* ---- ranks and merging ---- */

/* The parts of a rank; false when it is not [number, number, string]. */
static bool rank_parts(const json_t *r, double *kind, double *time, const char **msg,
                       size_t *msglen)
{
    if (!json_is_array(r) || json_array_size(r) != 3 || !json_is_number(json_array_get(r, 0)) ||
        !json_is_number(json_array_get(r, 1)) || !json_is_string(json_array_get(r, 2)))
        return false;
    *kind = json_number_value(json_array_get(r, 0));
    *time = json_number_value(json_array_get(r, 1));
    *msg = json_string_value(json_array_get(r, 2));
    *msglen = json_string_length(json_array_get(r, 2));
    return true;
}

static int cmp_i64(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

/* Bytewise order of two byte strings (a prefix first), as PostgreSQL's COLLATE "C". */
static int cmp_bytes(const char *a, size_t al, const char *b, size_t bl)
{
    int m = memcmp(a, b, al < bl ? al : bl);
    return m ? (m > 0) - (m < 0) : (al > bl) - (al < bl);
}

static int cmp_str(const json_t *a, const json_t *b)
{
    return cmp_bytes(json_string_value(a), json_string_length(a), json_string_value(b),
                     json_string_length(b));
}

/* Integers as written by rank_new compare exactly; a stored rank read back as a real (never
 * written so) compares by its value. */
static int cmp_num(const json_t *a, const json_t *b, double da, double db)
{
    if (json_is_integer(a) && json_is_integer(b))
        return cmp_i64(json_integer_value(a), json_integer_value(b));
    return (da > db) - (da < db);
}

int eo_profile_rank_cmp(const json_t *a, const json_t *b)
{
    double ak, at, bk, bt;
    const char *am, *bm;
    size_t al, bl;
    bool va = rank_parts(a, &ak, &at, &am, &al), vb = rank_parts(b, &bk, &bt, &bm, &bl);
    if (!va || !vb)
        return (int)va - (int)vb;
    int c = cmp_num(json_array_get(a, 0), json_array_get(b, 0), ak, bk);
    if (c == 0)
        c = cmp_num(json_array_get(a, 1), json_array_get(b, 1), at, bt);
    return c ? c : cmp_bytes(am, al, bm, bl);
}

/* Writes trait k with value v (NULL: removes it) at rank r when r beats the trait's rank.
 * Takes a reference to r. */
static int put_trait(json_t *traits, json_t *ranks, const char *k, json_t *v, json_t *r)
{
    const json_t *old = json_object_get(ranks, k);
    if (old && eo_profile_rank_cmp(r, old) <= 0) {
        json_decref(r);
        return 0;
    }
    if (json_object_set_new(ranks, k, r) < 0 || (v && json_object_set(traits, k, v) < 0))
        return EO_ENOMEM;
    if (!v)
        json_object_del(traits, k);
    return 0;
}

int eo_profile_merge(json_t *traits, json_t *ranks, const json_t *from_traits,
                     const json_t *from_ranks)
{
    const char *k;
    json_t *r;
    json_object_foreach((json_t *)from_ranks, k, r)
    {
        json_incref(r);
        int rc = put_trait(traits, ranks, k, json_object_get(from_traits, k), r);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- one event ---- */

static json_t *str_json(eo_str_t s)
{
    return json_stringn(s.s ? s.s : "", s.s ? s.len : 0);
}

/* The rank of a write at time us: [kind, +-us, messageId]. */
static json_t *rank_new(int kind, int64_t us, eo_str_t msg)
{
    json_t *r = json_array();
    if (!r || json_array_append_new(r, json_integer(kind)) < 0 ||
        json_array_append_new(r, json_integer(kind ? us : -us)) < 0 ||
        json_array_append_new(r, str_json(msg)) < 0) {
        json_decref(r);
        return NULL;
    }
    return r;
}

/* The map key: tenant, then each part's length and bytes. */
static void map_key(eo_buf_t *k, const char *tenant, const char *a, size_t alen, const char *b,
                    size_t blen)
{
    eo_buf_reset(k);
    eo_buf_put(k, tenant, 36);
    eo_buf_put(k, &alen, sizeof alen);
    eo_buf_put(k, a, alen);
    eo_buf_put(k, b, blen);
}

/* The entry of map under (tenant, type, key), made when new; NULL when out of memory. */
static entry_t *entry_get(eo_profile_batch_t *b, eo_hmap_t *map, const char *tenant, json_t *type,
                          json_t *key, int64_t us)
{
    const char *ts = type ? json_string_value(type) : "";
    size_t tl = type ? json_string_length(type) : 0;
    map_key(&b->key, tenant, ts, tl, json_string_value(key), json_string_length(key));
    if (eo_buf_error(&b->key))
        return NULL;
    entry_t *e = eo_hmap_get(map, b->key.data, b->key.len);
    if (e) {
        e->first = us < e->first ? us : e->first;
        e->last = us > e->last ? us : e->last;
        return e;
    }
    if (!(e = calloc(1, sizeof *e)))
        return NULL;
    memcpy(e->tenant, tenant, 36);
    e->type = json_incref(type);
    e->key = json_incref(key);
    e->traits = json_object();
    e->ranks = json_object();
    e->first = e->last = us;
    void *old;
    if (!e->traits || !e->ranks || eo_hmap_put(map, b->key.data, b->key.len, e, &old) < 0) {
        entry_free(e);
        return NULL;
    }
    return e;
}

/* Writes each member of obj (when an object) as a trait of e at rank (kind, us, msg). */
static int put_object(entry_t *e, const json_t *obj, int kind, int64_t us, eo_str_t msg)
{
    if (!json_is_object(obj))
        return 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        json_t *r = rank_new(kind, us, msg);
        if (!r || put_trait(e->traits, e->ranks, k, v, r) < 0)
            return EO_ENOMEM;
    }
    return 0;
}

/* Removes each trait a $unset names (an array of strings). */
static int put_unset(entry_t *e, const json_t *arr, int64_t us, eo_str_t msg)
{
    size_t i;
    json_t *k;
    json_array_foreach(arr, i, k)
    {
        if (!json_is_string(k))
            continue;
        json_t *r = rank_new(1, us, msg);
        if (!r || put_trait(e->traits, e->ranks, json_string_value(k), NULL, r) < 0)
            return EO_ENOMEM;
    }
    return 0;
}

/* The link alias -> user at (us, msg), kept when it is the first of the batch. */
static int put_link(eo_profile_batch_t *b, const char *tenant, json_t *alias, json_t *user,
                    int64_t us, eo_str_t msg)
{
    if (json_equal(alias, user) || json_string_length(alias) == 0)
        return 0;
    map_key(&b->key, tenant, json_string_value(alias), json_string_length(alias), "", 0);
    if (eo_buf_error(&b->key))
        return EO_ENOMEM;
    link_t *l = eo_hmap_get(&b->links, b->key.data, b->key.len);
    json_t *m = str_json(msg);
    if (!m)
        return EO_ENOMEM;
    if (l) {
        int c = cmp_i64(us, l->at);
        if (c == 0)
            c = cmp_str(m, l->msg);
        if (c >= 0) {
            json_decref(m);
            return 0;
        }
        json_decref(l->user);
        json_decref(l->msg);
        l->user = json_incref(user);
        l->msg = m;
        l->at = us;
        return 0;
    }
    if (!(l = calloc(1, sizeof *l))) {
        json_decref(m);
        return EO_ENOMEM;
    }
    memcpy(l->tenant, tenant, 36);
    l->alias = json_incref(alias);
    l->user = json_incref(user);
    l->msg = m;
    l->at = us;
    void *old;
    if (eo_hmap_put(&b->links, b->key.data, b->key.len, l, &old) < 0) {
        link_free(l);
        return EO_ENOMEM;
    }
    return 0;
}

static int add_profile(eo_profile_batch_t *b, const eo_profile_event_t *ev, json_t *user)
{
    const json_t *p = ev->properties;
    const json_t *set = json_object_get(p, "$set"), *once = json_object_get(p, "$set_once"),
                 *unset = json_object_get(p, "$unset");
    bool named = str_is(ev->event_type, "$identify") || str_is(ev->event_type, "$create_alias");
    if (!named && !json_is_object(set) && !json_is_object(once) && !json_is_array(unset))
        return 0;
    int64_t us = ev->occurred_at_us;
    entry_t *e = entry_get(b, &b->profiles, ev->tenant_id, NULL, user, us);
    if (!e)
        return EO_ENOMEM;
    int r = put_object(e, once, 0, us, ev->message_id);
    if (r == 0)
        r = put_object(e, set, 1, us, ev->message_id);
    if (r == 0 && json_is_array(unset))
        r = put_unset(e, unset, us, ev->message_id);
    return r;
}

static int add_links(eo_profile_batch_t *b, const eo_profile_event_t *ev, json_t *user)
{
    const json_t *p = ev->properties;
    const json_t *alias = NULL;
    if (str_is(ev->event_type, "$create_alias"))
        alias = json_object_get(p, "alias");
    else if (str_is(ev->event_type, "$identify"))
        alias = json_object_get(p, "$anon_distinct_id");
    else
        return 0;
    json_t *a = json_is_string(alias) ? json_incref((json_t *)alias) : NULL;
    if (!a && str_is(ev->event_type, "$identify") && ev->user_id.s && ev->anonymous_id.s &&
        !(a = str_json(ev->anonymous_id)))
        return EO_ENOMEM;
    int r = a ? put_link(b, ev->tenant_id, a, user, ev->occurred_at_us, ev->message_id) : 0;
    json_decref(a);
    return r;
}

static int add_group(eo_profile_batch_t *b, const eo_profile_event_t *ev)
{
    if (!str_is(ev->event_type, "$groupidentify"))
        return 0;
    json_t *type = json_object_get(ev->properties, "$group_type");
    json_t *key = json_object_get(ev->properties, "$group_key");
    if (!json_is_string(type) || !json_is_string(key) || json_string_length(key) == 0)
        return 0;
    entry_t *e = entry_get(b, &b->groups, ev->tenant_id, type, key, ev->occurred_at_us);
    if (!e)
        return EO_ENOMEM;
    return put_object(e, json_object_get(ev->properties, "$group_set"), 1, ev->occurred_at_us,
                      ev->message_id);
}

int eo_profile_batch_add(eo_profile_batch_t *b, const eo_profile_event_t *ev)
{
    eo_str_t k = ev->user_id.s ? ev->user_id : ev->anonymous_id;
    if (!k.s || strlen(ev->tenant_id) != 36)
        return 0;
    json_t *user = str_json(k);
    if (!user)
        return EO_ENOMEM;
    int r = add_profile(b, ev, user);
    if (r == 0)
        r = add_links(b, ev, user);
    if (r == 0)
        r = add_group(b, ev);
    json_decref(user);
    return r;
}

/* ---- the batch as JSON ---- */

static void put_time(eo_buf_t *out, const char *name, int64_t us)
{
    eo_buf_putc(out, ',');
    eo_json_put_time(out, name, us);
}

static void put_json(eo_buf_t *out, const char *name, const json_t *v)
{
    eo_buf_putf(out, ",\"%s\":", name);
    eo_ignore(eo_json_append(out, v)); /* its failure is the buffer's (eo_buf_error) */
}

static void put_entries(eo_buf_t *out, const eo_hmap_t *map, bool groups)
{
    bool comma = false;
    for (size_t i = 0; i < map->cap; i++) {
        const entry_t *e = map->slots[i].key ? map->slots[i].value : NULL;
        if (!e)
            continue;
        eo_buf_puts(out, comma ? ",{\"t\":\"" : "{\"t\":\"");
        comma = true;
        eo_buf_put(out, e->tenant, 36);
        eo_buf_putc(out, '"');
        if (groups)
            put_json(out, "gt", e->type);
        put_json(out, groups ? "gk" : "k", e->key);
        put_json(out, "traits", e->traits);
        put_json(out, "ranks", e->ranks);
        put_time(out, "f", e->first);
        put_time(out, "l", e->last);
        eo_buf_putc(out, '}');
    }
}

int eo_profile_batch_json(const eo_profile_batch_t *b, eo_buf_t *out)
{
    eo_buf_puts(out, "{\"profiles\":[");
    put_entries(out, &b->profiles, false);
    eo_buf_puts(out, "],\"aliases\":[");
    bool comma = false;
    for (size_t i = 0; i < b->links.cap; i++) {
        const link_t *l = b->links.slots[i].key ? b->links.slots[i].value : NULL;
        if (!l)
            continue;
        eo_buf_puts(out, comma ? ",{\"t\":\"" : "{\"t\":\"");
        comma = true;
        eo_buf_put(out, l->tenant, 36);
        eo_buf_putc(out, '"');
        put_json(out, "a", l->alias);
        put_json(out, "u", l->user);
        put_time(out, "at", l->at);
        put_json(out, "m", l->msg);
        eo_buf_putc(out, '}');
    }
    eo_buf_puts(out, "],\"groups\":[");
    put_entries(out, &b->groups, true);
    eo_buf_puts(out, "]}");
    return eo_buf_error(out) ? EO_ENOMEM : 0;
}
