/* The analytics engine's state machine (see engine.h; semantics in docs/analytics.md). */
#include "analytics/engine.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/array.h"
#include "core/hmap.h"
#include "domain/aggregate.h"
#include "domain/json_out.h"
#include "domain/rfc3339.h"
#include "domain/tz.h"
#include "domain/window.h"

#define NONE INT64_MIN
#define CHUNK_USERS 4096 /* user hashes per changelog record */
#define MAX_STEPS 10000  /* windows a group finalises per tick (the rest in the next ticks) */
#define OVERFLOW_KEY "$overflow"

/* ---- sets of 64-bit user hashes, with their insertion order (for changelog chunks) ---- */
typedef struct {
    uint64_t *slots; /* open addressing; 0 = free (hash 0 is stored as 1) */
    size_t cap, n;
    uint64_t *order; /* the values in insertion order */
    size_t ocap;
    size_t flushed; /* order[0..flushed) are in the changelog */
} uset_t;

static void uset_done(uset_t *s)
{
    free(s->slots);
    free(s->order);
    memset(s, 0, sizeof *s);
}

/* Frees a pane's set (NULL accepted). */
static void pane_users_free(uset_t **u)
{
    if (*u) {
        uset_done(*u);
        free(*u);
        *u = NULL;
    }
}

/* The pane's set, made on first use; NULL when out of memory. */
static uset_t *pane_users(uset_t **u)
{
    if (!*u)
        *u = calloc(1, sizeof **u);
    return *u;
}

static int uset_add(uset_t *s, uint64_t v, bool *added)
{
    *added = false;
    v = v ? v : 1;
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        uint64_t *slots = calloc(cap, sizeof *slots);
        if (!slots)
            return EO_ENOMEM;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slots[i])
                continue;
            size_t j = (size_t)s->slots[i] & (cap - 1);
            while (slots[j])
                j = (j + 1) & (cap - 1);
            slots[j] = s->slots[i];
        }
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    size_t j = (size_t)v & (s->cap - 1);
    for (; s->slots[j]; j = (j + 1) & (s->cap - 1))
        if (s->slots[j] == v)
            return 0;
    if (EO_ARRAY_RESERVE(s->order, s->ocap, s->n + 1, 16) < 0)
        return EO_ENOMEM;
    s->slots[j] = v;
    s->order[s->n++] = v;
    *added = true;
    return 0;
}

/* ---- state ---- */
typedef struct {
    int64_t start;
    int64_t count;    /* matching events */
    eo_agg_t agg;     /* the property's values */
    uset_t *users;    /* unique_users rules only (NULL until the first user) */
    uint32_t nchunks; /* changelog chunks of users written */
} pane_t;

typedef struct {
    int64_t start;
    int32_t revision;
    bool final, need_rev, pending_change, has_last;
    double last; /* the value last emitted */
    int64_t last_count;
    int64_t last_emit_us;
} win_t;

typedef struct {
    int64_t start, last; /* the first and the last event's times; the window ends at last + gap */
    int64_t count;
    eo_agg_t agg;
    int32_t revision;
    bool final, need_rev, pending_change;
    bool has_last;
    double last_value;
    int64_t last_count, last_emit_us;
} sess_t;

typedef struct {
    char *key;     /* the group's values as a JSON array ("[]" without groupBy) */
    char *json;    /* {"path":value,...} */
    pane_t *panes; /* sorted by start */
    size_t np, pcap;
    win_t *wins; /* sorted by start: windows with an emission state */
    size_t nw, wcap;
    int64_t next_start; /* the next window to finalise; NONE when nothing is pending */
    int64_t final_upto; /* windows starting before this are final; NONE before any */
    eo_alert_state_t alert;
    double *roll;  /* the last `buckets` bucket values (ring) */
    int64_t nroll; /* buckets seen, capped at `buckets` */
    int64_t roll_pos;
    double ewma;
    bool has_ewma;
    int64_t *ts; /* sliding: event times, sorted */
    size_t nts, tcap;
    int64_t eval_upto; /* sliding: points up to here are evaluated */
    sess_t *sess;      /* session: sorted by start, disjoint (gaps >= gap between them) */
    size_t ns, scap;
    bool dirty, pending_changes;
    size_t bytes;
} group_t;

typedef struct {
    eo_engine_rule_t r;
    eo_window_t win;
    eo_hmap_t groups;   /* key -> group_t */
    size_t tenant_slot; /* index into tenants */
    int zone_days;      /* 1 or 7: tumbling days / weeks of r.tz (local calendar); else 0 */
    bool count_like;    /* count, unique_users, sum: only grow */
    bool holds_at_zero; /* the condition holds for an empty window */
} rule_t;

typedef struct {
    char tenant_id[37];
    int64_t bytes;
    size_t *rules; /* indexes into eo_engine.rules of the tenant's rules */
    size_t nrules;
} tenant_t;

/* ---- the windows of a rule: fixed (epoch-aligned panes) or local days/weeks of a zone ---- */
static int64_t zone_start(const rule_t *r, int64_t t)
{
    return r->zone_days == 7 ? eo_tz_week_start(r->r.tz, t) : eo_tz_day_start(r->r.tz, t);
}

/* The pane holding t (a zoned window is its own pane). */
static int64_t pane_of(const rule_t *r, int64_t t)
{
    return r->zone_days ? zone_start(r, t) : eo_window_pane_of(&r->win, t);
}

/* The starts of the first and last windows holding t. */
static void span(const rule_t *r, int64_t t, int64_t *first, int64_t *last)
{
    if (r->zone_days)
        *first = *last = zone_start(r, t);
    else
        eo_window_span(&r->win, t, first, last);
}

static int64_t win_end(const rule_t *r, int64_t start)
{
    if (!r->zone_days)
        return start + r->r.def.size_us;
    return r->zone_days == 7 ? eo_tz_week_end(r->r.tz, start) : eo_tz_day_end(r->r.tz, start);
}

/* The start of the window after the one starting at start. */
static int64_t win_next(const rule_t *r, int64_t start)
{
    return r->zone_days ? win_end(r, start) : start + r->win.slide_us;
}

struct eo_engine {
    eo_engine_options_t opt;
    rule_t *rules;
    size_t nrules;
    tenant_t *tenants;
    size_t ntenants;
    eo_hmap_t by_tenant; /* tenant id -> tenant_t * (into tenants) */
    eo_watermark_part_t *parts;
    eo_watermark_t wm;
    eo_out_t *outs;
    size_t nouts, ocap;
    eo_out_t *deferred; /* tombstones of state gone since the last checkpoint */
    size_t ndeferred, dcap;
    bool changed;          /* state changed since eo_engine_tick began (or by events before it) */
    uint64_t open_windows; /* counted by the last tick */
    uset_t scratch;        /* unions of panes' users */
    eo_engine_stats_t stats;
    char nowbuf[EO_RFC3339_MAX];
};

static void group_free(void *p)
{
    group_t *g = p;
    if (!g)
        return;
    for (size_t i = 0; i < g->np; i++)
        pane_users_free(&g->panes[i].users);
    free(g->panes);
    free(g->wins);
    free(g->roll);
    free(g->ts);
    free(g->sess);
    free(g->key);
    free(g->json);
    free(g);
}

/* ---- outputs ---- */
static eo_out_t *out_new(eo_engine_t *e, eo_out_kind_t kind)
{
    if (EO_ARRAY_RESERVE(e->outs, e->ocap, e->nouts + 1, 64) < 0)
        return NULL;
    eo_out_t *o = &e->outs[e->nouts++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    eo_buf_init(&o->key, 4096);
    eo_buf_init(&o->value, SIZE_MAX / 2);
    return o;
}

const eo_out_t *eo_engine_outputs(const eo_engine_t *e, size_t *n)
{
    *n = e->nouts;
    return e->outs;
}

void eo_engine_outputs_clear(eo_engine_t *e)
{
    for (size_t i = 0; i < e->nouts; i++) {
        eo_buf_done(&e->outs[i].key);
        eo_buf_done(&e->outs[i].value);
    }
    e->nouts = 0;
}

/* The changelog key of a group record: "g\n<tenant>\n<rule>\n<version>\n<group key>". */
static void group_clkey(eo_buf_t *b, const rule_t *r, const group_t *g)
{
    eo_buf_putf(b, "g\n%s\n%s\n%" PRId64 "\n%s", r->r.tenant_id, r->r.rule_id, r->r.version,
                g->key);
}

/* "u\n<tenant>\n<rule>\n<version>\n<pane start>\n<chunk>\n<group key>". */
static void users_clkey(eo_buf_t *b, const rule_t *r, const group_t *g, int64_t pane,
                        uint32_t chunk)
{
    eo_buf_putf(b, "u\n%s\n%s\n%" PRId64 "\n%" PRId64 "\n%" PRIu32 "\n%s", r->r.tenant_id,
                r->r.rule_id, r->r.version, pane, chunk, g->key);
}

/* A tombstone for the next checkpoint: between checkpoints the changelog must keep the state of
 * the last one (a restore replays the ticks after it). */
static eo_out_t *deferred_new(eo_engine_t *e)
{
    if (EO_ARRAY_RESERVE(e->deferred, e->dcap, e->ndeferred + 1, 64) < 0)
        return NULL;
    eo_out_t *o = &e->deferred[e->ndeferred++];
    memset(o, 0, sizeof *o);
    o->kind = EO_OUT_CHANGELOG;
    o->tombstone = true;
    eo_buf_init(&o->key, 4096);
    eo_buf_init(&o->value, 0);
    return o;
}

static void deferred_clear(eo_engine_t *e)
{
    for (size_t i = 0; i < e->ndeferred; i++)
        eo_buf_done(&e->deferred[i].key);
    e->ndeferred = 0;
}

static int tombstone_pane_users(eo_engine_t *e, const rule_t *r, const group_t *g, const pane_t *p)
{
    for (uint32_t c = 0; c < p->nchunks; c++) {
        eo_out_t *o = deferred_new(e);
        if (!o)
            return EO_ENOMEM;
        users_clkey(&o->key, r, g, p->start, c);
        o->tombstone = true;
        if (eo_buf_error(&o->key))
            return EO_ENOMEM;
    }
    return 0;
}

static int tombstone_group(eo_engine_t *e, const rule_t *r, const group_t *g)
{
    for (size_t i = 0; i < g->np; i++)
        if (tombstone_pane_users(e, r, g, &g->panes[i]) < 0)
            return EO_ENOMEM;
    eo_out_t *o = deferred_new(e);
    if (!o)
        return EO_ENOMEM;
    group_clkey(&o->key, r, g);
    return eo_buf_error(&o->key);
}

/* ---- engine ---- */
int eo_engine_new(const eo_engine_options_t *opt, eo_engine_t **out)
{
    *out = NULL;
    eo_engine_t *e = calloc(1, sizeof *e);
    if (!e)
        return EO_ENOMEM;
    e->opt = *opt;
    size_t n = opt->partitions ? opt->partitions : 1;
    if (!(e->parts = calloc(n, sizeof *e->parts))) {
        free(e);
        return EO_ENOMEM;
    }
    eo_watermark_init(&e->wm, e->parts, n, opt->bound_us, opt->idle_us);
    *out = e;
    return 0;
}

static void drop_rule_state(rule_t *r)
{
    eo_hmap_done(&r->groups, group_free);
}

/* Frees a rule set's tenants (their rule indexes) and its index. */
static void tenants_free(tenant_t *t, size_t n, eo_hmap_t *by_tenant)
{
    for (size_t i = 0; t && i < n; i++)
        free(t[i].rules);
    free(t);
    eo_hmap_done(by_tenant, NULL);
}

void eo_engine_free(eo_engine_t *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->nrules; i++)
        drop_rule_state(&e->rules[i]);
    free(e->rules);
    tenants_free(e->tenants, e->ntenants, &e->by_tenant);
    eo_engine_outputs_clear(e);
    free(e->outs);
    deferred_clear(e);
    free(e->deferred);
    uset_done(&e->scratch);
    free(e->parts);
    free(e);
}

void eo_engine_reset(eo_engine_t *e)
{
    for (size_t i = 0; i < e->nrules; i++) {
        drop_rule_state(&e->rules[i]);
        eo_hmap_init(&e->rules[i].groups);
    }
    for (size_t i = 0; i < e->ntenants; i++)
        e->tenants[i].bytes = 0;
    eo_engine_outputs_clear(e);
    deferred_clear(e);
    e->changed = false;
    memset(e->parts, 0, e->wm.n * sizeof *e->parts);
    eo_watermark_init(&e->wm, e->parts, e->wm.n, e->opt.bound_us, e->opt.idle_us);
}

static bool same_rule(const eo_engine_rule_t *a, const eo_engine_rule_t *b)
{
    return !strcmp(a->tenant_id, b->tenant_id) && !strcmp(a->rule_id, b->rule_id) &&
           a->version == b->version;
}

/* The derived fields of a rule: its windows, zone mode and condition facts. */
static void rule_prepare(rule_t *r)
{
    const eo_rule_t *d = &r->r.def;
    int64_t slide = d->win == EO_WIN_HOPPING ? d->slide_us : d->size_us;
    if ((d->win != EO_WIN_TUMBLING && d->win != EO_WIN_HOPPING) ||
        eo_window_init(&r->win, d->size_us, slide, INT64_MAX) < 0)
        r->win = (eo_window_t){d->size_us, d->size_us, d->size_us};
    bool utc = !strcmp(d->zone, "UTC");
    if (d->win == EO_WIN_TUMBLING && d->size_us == 7 * INT64_C(86400000000))
        r->zone_days = 7; /* weeks start on Monday, in UTC too */
    else if (d->win == EO_WIN_TUMBLING && d->size_us == INT64_C(86400000000) && !utc)
        r->zone_days = 1;
    r->count_like = d->fn == EO_AGG_COUNT || d->fn == EO_AGG_UNIQUE_USERS || d->fn == EO_AGG_SUM ||
                    d->fn == EO_AGG_RATE_PER_MINUTE;
    r->holds_at_zero = d->cond.present && eo_condition_holds(&d->cond, 0);
    eo_hmap_init(&r->groups);
}

int eo_engine_set_rules(eo_engine_t *e, const eo_engine_rule_t *rules, size_t n)
{
    /* the new set and its tenant index are built whole first: out of memory leaves the old */
    rule_t *nr = calloc(n ? n : 1, sizeof *nr);
    tenant_t *nt = calloc(n ? n : 1, sizeof *nt); /* at most one per rule: never moves */
    eo_hmap_t by_tenant;
    eo_hmap_init(&by_tenant);
    size_t ntenants = 0;
    if (!nr || !nt)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        rule_t *r = &nr[i];
        r->r = rules[i];
        rule_prepare(r);
        const char *tid = r->r.tenant_id;
        tenant_t *t = eo_hmap_get(&by_tenant, tid, strlen(tid));
        if (!t) {
            t = &nt[ntenants++];
            snprintf(t->tenant_id, sizeof t->tenant_id, "%s", tid);
            void *old;
            if (eo_hmap_put(&by_tenant, tid, strlen(tid), t, &old) < 0)
                goto oom;
        }
        r->tenant_slot = (size_t)(t - nt);
        size_t *idx = realloc(t->rules, (t->nrules + 1) * sizeof *idx);
        if (!idx)
            goto oom;
        t->rules = idx;
        t->rules[t->nrules++] = i;
    }
    for (size_t i = 0; i < n; i++) /* the state of a rule that stays is kept */
        for (size_t k = 0; k < e->nrules; k++)
            if (same_rule(&e->rules[k].r, &nr[i].r)) {
                nr[i].groups = e->rules[k].groups;
                eo_hmap_init(&e->rules[k].groups);
                break;
            }
    for (size_t k = 0; k < e->nrules; k++) { /* rules gone: their state and changelog */
        rule_t *old = &e->rules[k];
        size_t i = 0;
        eo_hmap_slot_t *s;
        while (eo_hmap_next(&old->groups, &i, &s))
            if (tombstone_group(e, old, s->value) < 0)
                break; /* a restore tombstones what it does not know */
        drop_rule_state(old);
    }
    free(e->rules);
    tenants_free(e->tenants, e->ntenants, &e->by_tenant);
    e->changed = true;
    e->rules = nr;
    e->nrules = n;
    e->tenants = nt;
    e->ntenants = ntenants;
    e->by_tenant = by_tenant;
    for (size_t i = 0; i < n; i++) { /* recount state bytes per tenant */
        size_t j = 0;
        eo_hmap_slot_t *s;
        while (eo_hmap_next(&nr[i].groups, &j, &s))
            nt[nr[i].tenant_slot].bytes += (int64_t)((group_t *)s->value)->bytes;
    }
    return 0;
oom:
    free(nr);
    tenants_free(nt, ntenants, &by_tenant);
    return EO_ENOMEM;
}

/* ---- groups ---- */
static size_t group_bytes(const group_t *g)
{
    size_t b = sizeof *g + strlen(g->key) + strlen(g->json) + g->pcap * sizeof(pane_t) +
               g->wcap * sizeof(win_t) + g->tcap * sizeof(int64_t) + g->scap * sizeof(sess_t);
    for (size_t i = 0; i < g->np; i++)
        if (g->panes[i].users)
            b += sizeof(uset_t) + g->panes[i].users->cap * 8 + g->panes[i].users->ocap * 8;
    return b;
}

static void account(eo_engine_t *e, rule_t *r, group_t *g)
{
    size_t b = group_bytes(g);
    e->tenants[r->tenant_slot].bytes += (int64_t)b - (int64_t)g->bytes;
    g->bytes = b;
}

/* Builds the group key and object of an event's values. */
static int group_of(const rule_t *r, const eo_event_t *ev, eo_buf_t *key, eo_buf_t *obj)
{
    eo_buf_putc(key, '[');
    eo_buf_putc(obj, '{');
    for (size_t i = 0; i < r->r.def.ngroup; i++) {
        char v[256];
        bool present = eo_rule_path_text(&r->r.def.group_by[i], ev, v, sizeof v);
        if (i) {
            eo_buf_putc(key, ',');
            eo_buf_putc(obj, ',');
        }
        const char *path = r->r.def.group_by[i].text;
        eo_buf_put_json_str(obj, path, strlen(path));
        eo_buf_putc(obj, ':');
        if (present) {
            eo_buf_put_json_str(key, v, strlen(v));
            eo_buf_put_json_str(obj, v, strlen(v));
        } else {
            eo_buf_puts(key, "null");
            eo_buf_puts(obj, "null");
        }
    }
    eo_buf_putc(key, ']');
    eo_buf_putc(obj, '}');
    return eo_buf_error(key) < 0 ? EO_ENOMEM : eo_buf_error(obj);
}

static group_t *group_new(const rule_t *r, const char *key, size_t klen, const char *json,
                          size_t jlen)
{
    group_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->key = strndup(key, klen);
    g->json = strndup(json, jlen);
    int64_t nb = r->r.def.buckets > 0 ? r->r.def.buckets : 1;
    g->roll = calloc((size_t)nb, sizeof *g->roll);
    if (!g->key || !g->json || !g->roll) {
        group_free(g);
        return NULL;
    }
    g->next_start = g->final_upto = NONE;
    g->eval_upto = NONE;
    eo_alert_init(&g->alert);
    return g;
}

/* The group of ev in rule r, made when new: a rule past its maxGroups (or a tenant past its
 * state budget: its bytes as the last tick counted them, so that no event pays for the count)
 * counts new groups in the overflow group. */
static group_t *find_group(eo_engine_t *e, rule_t *r, const eo_event_t *ev, bool create,
                           bool *overflow)
{
    char kb[1024], jb[1536];
    eo_buf_t key, obj;
    eo_buf_init(&key, sizeof kb);
    eo_buf_init(&obj, sizeof jb);
    *overflow = false;
    group_t *g = NULL;
    if (group_of(r, ev, &key, &obj) < 0) { /* values too long for a key: overflow */
        eo_buf_reset(&key);
        eo_buf_reset(&obj);
    } else if ((g = eo_hmap_get(&r->groups, key.data, key.len)) || !create) {
        goto done;
    }
    size_t real = r->groups.count - (eo_hmap_get(&r->groups, "\"" OVERFLOW_KEY "\"",
                                                 strlen(OVERFLOW_KEY) + 2) != NULL);
    bool full = (int64_t)real >= r->r.def.max_groups ||
                (e->opt.max_state_bytes_per_tenant > 0 &&
                 e->tenants[r->tenant_slot].bytes >= e->opt.max_state_bytes_per_tenant);
    if (full || !key.len) {
        *overflow = true;
        eo_buf_reset(&key);
        eo_buf_reset(&obj);
        eo_buf_puts(&key, "\"" OVERFLOW_KEY "\"");
        eo_buf_puts(&obj, "{\"" OVERFLOW_KEY "\":true}");
        if ((g = eo_hmap_get(&r->groups, key.data, key.len)))
            goto done;
    }
    if (eo_buf_error(&key) < 0 || eo_buf_error(&obj) < 0)
        goto done;
    if (!(g = group_new(r, key.data, key.len, obj.data, obj.len)))
        goto done;
    void *old;
    if (eo_hmap_put(&r->groups, key.data, key.len, g, &old) < 0) {
        group_free(g);
        g = NULL;
    }
done:
    eo_buf_done(&key);
    eo_buf_done(&obj);
    return g;
}

/* The element with start time `start` in an array sorted by it (panes, window states), made
 * zeroed in its place when absent and make is set: a binary search over the int64_t at
 * offsetof(type, start), which both element types put first. NULL when absent (or no memory). */
static void *sorted_at(void *items, size_t *n, size_t *cap, size_t size, int64_t start, bool make)
{
    char **base = items;
    size_t lo = 0, hi = *n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int64_t t;
        memcpy(&t, *base + mid * size, sizeof t);
        if (t < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    int64_t t = 0;
    if (lo < *n)
        memcpy(&t, *base + lo * size, sizeof t);
    if (lo < *n && t == start)
        return *base + lo * size;
    if (!make || eo_array_reserve(items, cap, *n + 1, size, 4) < 0)
        return NULL;
    memmove(*base + (lo + 1) * size, *base + lo * size, (*n - lo) * size);
    (*n)++;
    char *e = *base + lo * size;
    memset(e, 0, size);
    memcpy(e, &start, sizeof start);
    return e;
}

_Static_assert(offsetof(pane_t, start) == 0 && offsetof(win_t, start) == 0,
               "sorted_at reads the start first");

static pane_t *pane_at(group_t *g, int64_t start, bool make)
{
    size_t before = g->np;
    pane_t *p = sorted_at(&g->panes, &g->np, &g->pcap, sizeof *g->panes, start, make);
    if (p && g->np != before)
        eo_agg_init(&p->agg);
    return p;
}

static win_t *win_at(group_t *g, int64_t start, bool make)
{
    return sorted_at(&g->wins, &g->nw, &g->wcap, sizeof *g->wins, start, make);
}

static uint64_t user_hash(const eo_event_t *ev)
{
    eo_str_t u = ev->user_id.s ? ev->user_id : ev->anonymous_id;
    /* userId and anonymousId are distinct spaces: "u:" / "a:" */
    char prefix = ev->user_id.s ? 'u' : 'a';
    uint64_t h = eo_hash64(&prefix, 1);
    return h ^ eo_hash64(u.s ? u.s : "", u.len);
}

static void *sorted_insert_ts(group_t *g, int64_t t)
{
    if (EO_ARRAY_RESERVE(g->ts, g->tcap, g->nts + 1, 16) < 0)
        return NULL;
    size_t i = g->nts;
    while (i > 0 && g->ts[i - 1] > t) {
        g->ts[i] = g->ts[i - 1];
        i--;
    }
    g->ts[i] = t;
    g->nts++;
    return g->ts;
}

/* ---- events ---- */
static bool type_matches(const rule_t *r, const eo_event_t *ev)
{
    const char *t = r->r.def.event_type;
    if (t[0] == '*' && t[1] == '\0')
        return true;
    return strlen(t) == ev->event_type.len && !memcmp(t, ev->event_type.s, ev->event_type.len);
}

static int late_out(eo_engine_t *e, const rule_t *r, const char *reason, const void *raw,
                    size_t raw_len, const void *key, size_t key_len)
{
    eo_out_t *o = out_new(e, EO_OUT_LATE);
    if (!o)
        return EO_ENOMEM;
    eo_buf_put(&o->key, key, key_len);
    eo_buf_put(&o->value, raw, raw_len);
    snprintf(o->rule_id, sizeof o->rule_id, "%s", r->r.rule_id);
    snprintf(o->reason, sizeof o->reason, "%s", reason);
    e->stats.late++;
    return eo_buf_error(&o->key) < 0 ? EO_ENOMEM : eo_buf_error(&o->value);
}

/* k windows without events went by unseen (the group slept): rolling buckets of 0 and the
 * EWMA's decay, as if each had been finalised. */
static void skip_empty_buckets(const rule_t *r, group_t *g, int64_t k)
{
    const eo_rule_t *d = &r->r.def;
    if (d->fn == EO_AGG_EWMA && g->has_ewma)
        g->ewma *= pow(1 - 2.0 / ((double)d->span + 1), (double)k);
    if (d->fn != EO_AGG_ROLLING_MEAN && d->fn != EO_AGG_ROLLING_SUM)
        return;
    int64_t nb = d->buckets;
    for (int64_t i = 0; i < k && i < nb; i++) {
        g->roll[g->roll_pos] = 0;
        g->roll_pos = (g->roll_pos + 1) % nb;
        if (g->nroll < nb)
            g->nroll++;
    }
}

/* Windows from a (final_upto) up to b (a window start), at most cap. */
static int64_t windows_between(const rule_t *r, int64_t a, int64_t b, int64_t cap)
{
    if (!r->zone_days)
        return b > a ? (b - a) / r->win.slide_us : 0;
    int64_t k = 0;
    for (int64_t s = a; s < b && k < cap; s = win_next(r, s))
        k++;
    return k;
}

/* One event into a tumbling or hopping rule's pane. wm: the watermark it was classified
 * against; a final window it falls into gets a new revision unless wm is past that window's
 * end + horizon (a hopping event can be within the horizon of its newer windows only: the older
 * ones, whose state and panes may be gone, are not revised). */
static int add_to_pane(eo_engine_t *e, rule_t *r, group_t *g, const eo_event_t *ev, int64_t t,
                       int64_t wm)
{
    const eo_rule_t *d = &r->r.def;
    int64_t pstart = pane_of(r, t);
    pane_t *p = pane_at(g, pstart, true);
    if (!p)
        return EO_ENOMEM;
    p->count++;
    double v;
    if (d->has_property && eo_rule_path_number(&d->property, ev, &v))
        eo_agg_add(&p->agg, v);
    if (d->fn == EO_AGG_UNIQUE_USERS) {
        bool added;
        uset_t *u = pane_users(&p->users);
        if (!u || uset_add(u, user_hash(ev), &added) < 0)
            return EO_ENOMEM;
    }
    int64_t first, last;
    span(r, t, &first, &last);
    if (g->next_start == NONE) { /* the first window of the pane not yet final */
        if (g->final_upto != NONE && first > g->final_upto)
            skip_empty_buckets(r, g, windows_between(r, g->final_upto, first, d->buckets + 1));
        g->next_start = g->final_upto != NONE && g->final_upto > first ? g->final_upto : first;
    } else if (first < g->next_start && (g->final_upto == NONE || first >= g->final_upto))
        g->next_start = first;
    if (g->final_upto != NONE && first < g->final_upto) { /* corrections of final windows */
        for (int64_t s = first; s < g->final_upto && s <= last; s = win_next(r, s)) {
            if (wm != NONE && win_end(r, s) + d->horizon_us <= wm)
                continue; /* past its horizon: no correction (and maybe no panes) any more */
            win_t *w = win_at(g, s, true); /* also a window that was final while empty */
            if (!w)
                return EO_ENOMEM;
            w->final = w->need_rev = true;
        }
    }
    g->pending_changes = true;
    g->dirty = true;
    return 0;
}

/* ---- sessions ---- */
static void sess_merge_into(sess_t *a, const sess_t *b)
{
    a->start = a->start < b->start ? a->start : b->start;
    a->last = a->last > b->last ? a->last : b->last;
    a->count += b->count;
    eo_agg_merge(&a->agg, &b->agg);
    a->revision = a->revision > b->revision ? a->revision : b->revision;
    a->final = a->final && b->final; /* a merge of final sessions is a correction */
    a->need_rev = a->final;
    a->pending_change = true;
}

/* The session that t joins (a gap shorter than `gap` to it), or -1. */
static ptrdiff_t sess_find(const group_t *g, int64_t t, int64_t gap)
{
    for (size_t i = 0; i < g->ns; i++)
        if (g->sess[i].start - gap < t && t < g->sess[i].last + gap)
            return (ptrdiff_t)i;
    return -1;
}

/* One event into a session rule. Returns 1 when it was a correction of a final session, 0, or
 * an error. */
static int add_to_session(rule_t *r, group_t *g, const eo_event_t *ev, int64_t t)
{
    const eo_rule_t *d = &r->r.def;
    ptrdiff_t i = sess_find(g, t, d->gap_us);
    if (i < 0) {
        if (EO_ARRAY_RESERVE(g->sess, g->scap, g->ns + 1, 2) < 0)
            return EO_ENOMEM;
        size_t k = g->ns;
        while (k > 0 && g->sess[k - 1].start > t) {
            g->sess[k] = g->sess[k - 1];
            k--;
        }
        memset(&g->sess[k], 0, sizeof g->sess[k]);
        g->sess[k].start = g->sess[k].last = t;
        eo_agg_init(&g->sess[k].agg);
        g->ns++;
        i = (ptrdiff_t)k;
    }
    sess_t *s = &g->sess[i];
    bool correction = s->final;
    s->count++;
    double v;
    if (d->has_property && eo_rule_path_number(&d->property, ev, &v))
        eo_agg_add(&s->agg, v);
    if (t < s->start)
        s->start = t;
    if (t > s->last)
        s->last = t;
    if (s->final)
        s->need_rev = true;
    s->pending_change = true;
    /* the event may bridge its neighbours */
    while ((size_t)i + 1 < g->ns && g->sess[i + 1].start - d->gap_us < g->sess[i].last) {
        sess_merge_into(&g->sess[i], &g->sess[i + 1]);
        memmove(&g->sess[i + 1], &g->sess[i + 2], (g->ns - (size_t)i - 2) * sizeof *g->sess);
        g->ns--;
    }
    while (i > 0 && g->sess[i].start - d->gap_us < g->sess[i - 1].last) {
        sess_merge_into(&g->sess[i - 1], &g->sess[i]);
        memmove(&g->sess[i], &g->sess[i + 1], (g->ns - (size_t)i - 1) * sizeof *g->sess);
        g->ns--;
        i--;
    }
    g->dirty = g->pending_changes = true;
    return correction ? 1 : 0;
}

int eo_engine_event(eo_engine_t *e, size_t partition, const eo_record_t *rec, const void *raw,
                    size_t raw_len, const void *key, size_t key_len, int64_t now_mono_us)
{
    e->stats.events++;
    e->changed = true;
    const eo_event_t *ev = &rec->ev;
    int64_t t = ev->occurred_at_us;
    if (partition < e->wm.n) {
        eo_watermark_observe(&e->wm, partition, t, now_mono_us);
    }
    int64_t wm = e->wm.value_us;
    const tenant_t *ten = eo_hmap_get(&e->by_tenant, rec->tenant_id, strlen(rec->tenant_id));
    for (size_t i = 0; ten && i < ten->nrules; i++) {
        rule_t *r = &e->rules[ten->rules[i]];
        if (!type_matches(r, ev) || !r->r.def.enabled)
            continue;
        const eo_rule_t *d = &r->r.def;
        int r2;
        if (d->win == EO_WIN_SESSION) {
            /* beyond the horizon: no session it could join or start is kept any more */
            bool joins = false;
            group_t *peek = NULL;
            bool ovf;
            if (wm != NONE && t + d->gap_us + d->horizon_us <= wm) {
                peek = find_group(e, r, ev, false, &ovf);
                joins = peek && sess_find(peek, t, d->gap_us) >= 0;
                if (!joins) {
                    if ((r2 = late_out(e, r, "beyond_horizon", raw, raw_len, key, key_len)) < 0)
                        return r2;
                    continue;
                }
            }
        } else if (d->win == EO_WIN_SLIDING) {
            if (wm != NONE && t <= wm - d->grace_us) {
                if ((r2 = late_out(e, r, "beyond_grace", raw, raw_len, key, key_len)) < 0)
                    return r2;
                continue;
            }
        } else {
            int64_t first, last;
            span(r, t, &first, &last);
            if (wm != NONE && win_end(r, last) + d->horizon_us <= wm) {
                if ((r2 = late_out(e, r, "beyond_horizon", raw, raw_len, key, key_len)) < 0)
                    return r2;
                continue;
            }
        }
        bool overflow;
        group_t *g = find_group(e, r, ev, true, &overflow);
        if (!g)
            return EO_ENOMEM;
        if (overflow)
            e->stats.overflow++;
        if (d->win == EO_WIN_SESSION) {
            if ((r2 = add_to_session(r, g, ev, t)) < 0)
                return r2;
            if (r2 == 1)
                e->stats.corrections++;
        } else if (d->win == EO_WIN_SLIDING) {
            if (!sorted_insert_ts(g, t))
                return EO_ENOMEM;
            if (g->eval_upto == NONE)
                g->eval_upto = t - 1;
            g->dirty = g->pending_changes = true;
        } else {
            int64_t first, last;
            span(r, t, &first, &last);
            bool correction = g->final_upto != NONE && first < g->final_upto;
            if ((r2 = add_to_pane(e, r, g, ev, t, wm)) < 0)
                return r2;
            if (correction)
                e->stats.corrections++;
        }
        e->stats.matched++;
    }
    return 0;
}

/* ---- window values ---- */
typedef struct {
    int64_t count;
    eo_agg_t agg;
    int64_t users;
} wval_t;

static int window_combine(eo_engine_t *e, const rule_t *r, const group_t *g, int64_t start,
                          wval_t *out)
{
    out->count = 0;
    out->users = 0;
    eo_agg_init(&out->agg);
    bool uniq = r->r.def.fn == EO_AGG_UNIQUE_USERS;
    if (uniq) {
        e->scratch.n = 0;
        if (e->scratch.slots)
            memset(e->scratch.slots, 0, e->scratch.cap * sizeof *e->scratch.slots);
    }
    int64_t end = win_end(r, start);
    for (size_t i = 0; i < g->np; i++) {
        const pane_t *p = &g->panes[i];
        if (p->start < start)
            continue;
        if (p->start >= end)
            break;
        out->count += p->count;
        eo_agg_merge(&out->agg, &p->agg);
        for (size_t k = 0; uniq && p->users && k < p->users->n; k++) {
            bool added;
            if (uset_add(&e->scratch, p->users->order[k], &added) < 0)
                return EO_ENOMEM;
        }
    }
    out->users = (int64_t)e->scratch.n;
    return 0;
}

/* The bucket value of rolling/ewma rules: the window's count or its property's sum. */
static double bucket_value(const rule_t *r, const wval_t *v)
{
    return r->r.def.of_sum ? eo_agg_sum(&v->agg) : (double)v->count;
}

/* The value of a window; false when it has none (mean, min or max of nothing). With push, the
 * window is a new bucket of the rolling state (final windows in order). */
static bool window_value(const rule_t *r, group_t *g, const wval_t *v, int64_t len_us, bool push,
                         double *out)
{
    const eo_rule_t *d = &r->r.def;
    switch (d->fn) {
    case EO_AGG_COUNT:
        *out = (double)v->count;
        return true;
    case EO_AGG_UNIQUE_USERS:
        *out = (double)v->users;
        return true;
    case EO_AGG_SUM:
        *out = eo_agg_sum(&v->agg);
        return true;
    case EO_AGG_MEAN:
        return eo_agg_mean(&v->agg, out);
    case EO_AGG_MIN:
        return eo_agg_min(&v->agg, out);
    case EO_AGG_MAX:
        return eo_agg_max(&v->agg, out);
    case EO_AGG_RATE_PER_MINUTE:
        *out = (double)v->count * 60e6 / (double)(len_us > 0 ? len_us : d->size_us);
        return true;
    case EO_AGG_ROLLING_MEAN:
    case EO_AGG_ROLLING_SUM: {
        int64_t nb = d->buckets, have = g->nroll < nb ? g->nroll : nb - 1;
        double x = bucket_value(r, v), s = x;
        for (int64_t k = 1; k <= have && k < nb; k++) /* the previous buckets, newest first */
            s += g->roll[(g->roll_pos - k + nb) % nb];
        int64_t n = (have < nb - 1 ? have : nb - 1) + 1;
        *out = d->fn == EO_AGG_ROLLING_SUM ? s : s / (double)n;
        if (push) {
            g->roll[g->roll_pos] = x;
            g->roll_pos = (g->roll_pos + 1) % nb;
            if (g->nroll < nb)
                g->nroll++;
        }
        return true;
    }
    case EO_AGG_EWMA: {
        double alpha = 2.0 / ((double)d->span + 1), x = bucket_value(r, v);
        double y = g->has_ewma ? alpha * x + (1 - alpha) * g->ewma : x;
        *out = y;
        if (push) {
            g->ewma = y;
            g->has_ewma = true;
        }
        return true;
    }
    }
    return false;
}

static const char *fn_name(eo_agg_fn_t fn)
{
    static const char *const names[] = {
        "count", "unique_users",    "sum",          "mean",        "min",
        "max",   "rate_per_minute", "rolling_mean", "rolling_sum", "ewma"};
    return (size_t)fn < sizeof names / sizeof names[0] ? names[fn] : "count";
}

static void put_duration(eo_buf_t *b, int64_t us)
{
    static const struct {
        int64_t us;
        const char *unit;
    } units[] = {{INT64_C(604800000000), "w"}, {INT64_C(86400000000), "d"},
                 {INT64_C(3600000000), "h"},   {INT64_C(60000000), "min"},
                 {INT64_C(1000000), "s"},      {INT64_C(1000), "ms"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (us >= units[i].us && us % units[i].us == 0) {
            eo_buf_putf(b, "%" PRId64 " %s", us / units[i].us, units[i].unit);
            return;
        }
    eo_buf_putf(b, "%" PRId64 " us", us);
}

static void put_time(eo_buf_t *b, int64_t us)
{
    char t[EO_RFC3339_MAX];
    size_t n = eo_rfc3339_format(us, t);
    eo_buf_putc(b, '"');
    eo_buf_put(b, t, n);
    eo_buf_putc(b, '"');
}

/* A number as JSON: whole values as integers ("4", not "4.0"). */
static size_t format_number(double v, char *out, size_t cap)
{
    if (v == floor(v) && fabs(v) < 9e15) {
        int n = snprintf(out, cap, "%lld", (long long)v);
        return n > 0 && (size_t)n < cap ? (size_t)n : 0;
    }
    return eo_json_format_real(v, out, cap);
}

static void put_number(eo_buf_t *b, double v)
{
    char t[40];
    size_t n = format_number(v, t, sizeof t);
    eo_buf_put(b, t, n);
}

static void put_rule(eo_buf_t *b, const rule_t *r)
{
    eo_buf_puts(b, "\"rule\":{\"id\":");
    eo_buf_put_json_str(b, r->r.rule_id, strlen(r->r.rule_id));
    eo_buf_putf(b, ",\"version\":%" PRId64 ",\"name\":", r->r.version);
    eo_buf_put_json_str(b, r->r.def.name, strlen(r->r.def.name));
    eo_buf_putc(b, '}');
}

static void put_key(eo_buf_t *b, const rule_t *r)
{
    eo_buf_putf(b, "%s:%s", r->r.tenant_id, r->r.rule_id);
}

/* A window result. */
static int emit_window(eo_engine_t *e, const rule_t *r, const group_t *g, int64_t start,
                       int64_t end, const wval_t *v, bool has, double value, int32_t revision,
                       bool final)
{
    eo_out_t *o = out_new(e, EO_OUT_WINDOW);
    if (!o)
        return EO_ENOMEM;
    put_key(&o->key, r);
    eo_buf_t *b = &o->value;
    eo_buf_puts(b, "{\"type\":\"analytics.window\",\"tenantId\":");
    eo_buf_put_json_str(b, r->r.tenant_id, strlen(r->r.tenant_id));
    eo_buf_putc(b, ',');
    put_rule(b, r);
    eo_buf_putf(b, ",\"group\":%s,\"groupKey\":", g->json);
    eo_buf_put_json_str(b, g->key, strlen(g->key));
    eo_buf_puts(b, ",\"window\":{\"start\":");
    put_time(b, start);
    eo_buf_puts(b, ",\"end\":");
    put_time(b, end);
    eo_buf_putf(b, "},\"aggregate\":\"%s\",\"value\":", fn_name(r->r.def.fn));
    if (has)
        put_number(b, value);
    else
        eo_buf_puts(b, "null");
    eo_buf_putf(b, ",\"count\":%" PRId64 ",\"revision\":%" PRId32 ",\"final\":%s,\"emittedAt\":",
                v->count, revision, final ? "true" : "false");
    eo_buf_puts(b, e->nowbuf);
    eo_buf_putc(b, '}');
    e->stats.windows++;
    return eo_buf_error(&o->key) < 0 ? EO_ENOMEM : eo_buf_error(b);
}

static void put_message(eo_buf_t *b, const rule_t *r, int status, double value)
{
    const eo_rule_t *d = &r->r.def;
    char num[40];
    num[format_number(value, num, sizeof num)] = '\0';
    if (status == EO_ALERT_RESOLVED)
        eo_buf_puts(b, "resolved: ");
    switch (d->fn) {
    case EO_AGG_COUNT:
        eo_buf_putf(b, "%s %s events in ", num, d->event_type);
        break;
    case EO_AGG_UNIQUE_USERS:
        eo_buf_putf(b, "%s unique users with %s events in ", num, d->event_type);
        break;
    default:
        eo_buf_putf(b, "%s of %s = %s for %s events in ", fn_name(d->fn),
                    d->has_property ? d->property.text : (d->of_sum ? "sum" : "count"), num,
                    d->event_type);
        break;
    }
    put_duration(b, d->size_us);
}

static int emit_summary(eo_engine_t *e, const rule_t *r, const group_t *g, int status,
                        int64_t start, int64_t end, double value, int32_t revision, bool final)
{
    eo_out_t *o = out_new(e, EO_OUT_SUMMARY);
    if (!o)
        return EO_ENOMEM;
    const char *st = eo_alert_name((eo_alert_t)status);
    snprintf(o->status, sizeof o->status, "%s", st);
    char id[37];
    if (eo_summary_event_id(r->r.tenant_id, r->r.rule_id, r->r.version, g->key, start, st, id) < 0)
        return EO_ENOMEM;
    put_key(&o->key, r);
    eo_buf_t *b = &o->value;
    eo_buf_putf(b, "{\"eventId\":\"%s\",\"type\":\"analytics.summary\",\"tenantId\":", id);
    eo_buf_put_json_str(b, r->r.tenant_id, strlen(r->r.tenant_id));
    eo_buf_putf(b, ",\"status\":\"%s\",", st);
    put_rule(b, r);
    eo_buf_putf(b, ",\"group\":%s,\"groupKey\":", g->json);
    eo_buf_put_json_str(b, g->key, strlen(g->key));
    eo_buf_puts(b, ",\"window\":{\"start\":");
    put_time(b, start);
    eo_buf_puts(b, ",\"end\":");
    put_time(b, end);
    eo_buf_puts(b, "},\"value\":");
    put_number(b, value);
    eo_buf_puts(b, ",\"threshold\":");
    put_number(b, r->r.def.cond.value);
    eo_buf_puts(b, ",\"message\":\"");
    put_message(b, r, status, value);
    eo_buf_putf(b, "\",\"revision\":%" PRId32 ",\"final\":%s,\"emittedAt\":", revision,
                final ? "true" : "false");
    eo_buf_puts(b, e->nowbuf);
    eo_buf_putc(b, '}');
    if (status == EO_ALERT_FIRING)
        e->stats.summaries_firing++;
    else
        e->stats.summaries_resolved++;
    return eo_buf_error(&o->key) < 0 ? EO_ENOMEM : eo_buf_error(b);
}

/* Feeds the alert with a window's value at its end; emits a summary on a transition. */
static int alert_step(eo_engine_t *e, const rule_t *r, group_t *g, int64_t start, int64_t end,
                      double value, int32_t revision, bool final)
{
    if (!r->r.def.cond.present)
        return 0;
    int t = eo_alert_step(&r->r.def.cond, r->r.def.cooldown_us, &g->alert, value, end);
    g->dirty = true;
    if (t != EO_ALERT_FIRING && t != EO_ALERT_RESOLVED)
        return 0;
    return emit_summary(e, r, g, t, start, end, value, revision, final);
}

/* ---- tick: tumbling and hopping ---- */
static bool pane_after(const group_t *g, int64_t t)
{
    return g->np && g->panes[g->np - 1].start >= t;
}

/* Finalises the windows that watermark closes, in order of their ends. */
static int finalize(eo_engine_t *e, rule_t *r, group_t *g, int64_t wm)
{
    const eo_rule_t *d = &r->r.def;
    for (int steps = 0; g->next_start != NONE && steps < MAX_STEPS; steps++) {
        int64_t s = g->next_start, end = win_end(r, s);
        if (end + d->grace_us > wm)
            break;
        wval_t v;
        int rc = window_combine(e, r, g, s, &v);
        if (rc < 0)
            return rc;
        double value = 0;
        bool has = window_value(r, g, &v, end - s, true, &value);
        win_t *w = win_at(g, s, v.count > 0);
        if (v.count > 0) {
            if (!w)
                return EO_ENOMEM;
            w->revision++;
            w->final = true;
            w->need_rev = w->pending_change = false;
            w->has_last = has;
            w->last = value;
            w->last_count = v.count;
            if ((rc = emit_window(e, r, g, s, end, &v, has, value, w->revision, true)) < 0)
                return rc;
        } else if (w) {
            w->final = true;
        }
        if (has && (rc = alert_step(e, r, g, s, end, value, w ? w->revision : 0, true)) < 0)
            return rc;
        g->final_upto = win_next(r, s);
        g->next_start = g->final_upto;
        g->dirty = true;
        /* nothing pending and nothing to watch: wait for the next event */
        bool quiet = !r->holds_at_zero && g->alert.state != EO_ALERT_FIRING &&
                     g->alert.state != EO_ALERT_PENDING;
        if (v.count == 0 && !pane_after(g, g->next_start) && quiet) {
            g->next_start = NONE;
            break;
        }
    }
    return 0;
}

/* New revisions of final windows that late events changed. */
static int revise(eo_engine_t *e, rule_t *r, group_t *g)
{
    for (size_t i = 0; i < g->nw; i++) {
        win_t *w = &g->wins[i];
        if (!w->need_rev)
            continue;
        w->need_rev = false;
        wval_t v;
        int rc = window_combine(e, r, g, w->start, &v);
        if (rc < 0)
            return rc;
        double value = 0;
        int64_t end = win_end(r, w->start);
        bool has = window_value(r, g, &v, end - w->start, false, &value);
        if (r->r.def.fn == EO_AGG_ROLLING_MEAN || r->r.def.fn == EO_AGG_ROLLING_SUM ||
            r->r.def.fn == EO_AGG_EWMA)
            has = false; /* a past bucket's rolling value is not recomputed */
        w->revision++;
        w->has_last = has;
        w->last = value;
        w->last_count = v.count;
        if ((rc = emit_window(e, r, g, w->start, end, &v, has, value, w->revision, true)) < 0)
            return rc;
        g->dirty = true;
    }
    return 0;
}

/* "changes" updates and early firing for the windows not yet final. */
static int open_windows(eo_engine_t *e, rule_t *r, group_t *g, int64_t now_us)
{
    const eo_rule_t *d = &r->r.def;
    bool changes = d->emit == EO_EMIT_CHANGES, early = d->cond.present && d->cond.early;
    if ((!changes && !early) || !g->pending_changes || !g->np)
        return 0;
    int64_t first, last, unused;
    span(r, g->panes[0].start, &first, &unused);
    span(r, g->panes[g->np - 1].start, &unused, &last);
    if (g->final_upto != NONE && first < g->final_upto)
        first = g->final_upto;
    bool waiting = false;
    for (int64_t s = first; s <= last; s = win_next(r, s)) {
        int64_t end = win_end(r, s);
        wval_t v;
        int rc = window_combine(e, r, g, s, &v);
        if (rc < 0)
            return rc;
        if (v.count == 0)
            continue;
        double value = 0;
        bool has = window_value(r, g, &v, end - s, false, &value);
        if (early && has && r->count_like && eo_condition_holds(&d->cond, value) &&
            g->alert.state != EO_ALERT_FIRING &&
            (rc = alert_step(e, r, g, s, end, value, 1, false)) < 0)
            return rc;
        if (!changes)
            continue;
        win_t *w = win_at(g, s, true);
        if (!w)
            return EO_ENOMEM;
        if (w->has_last == has && (!has || w->last == value) && w->last_count == v.count)
            continue;
        if (w->last_emit_us && now_us - w->last_emit_us < e->opt.changes_interval_us) {
            waiting = true;
            continue;
        }
        w->revision++;
        w->has_last = has;
        w->last = value;
        w->last_count = v.count;
        w->last_emit_us = now_us;
        g->dirty = true;
        if ((rc = emit_window(e, r, g, s, end, &v, has, value, w->revision, false)) < 0)
            return rc;
    }
    g->pending_changes = waiting;
    return 0;
}

/* Drops panes and window states past end + horizon. Returns true when the group holds
 * nothing any more and can go. */
static int expire(eo_engine_t *e, rule_t *r, group_t *g, int64_t wm, bool *empty)
{
    const eo_rule_t *d = &r->r.def;
    size_t keep = 0;
    for (size_t i = 0; i < g->np; i++) {
        pane_t *p = &g->panes[i];
        int64_t first, last;
        span(r, p->start, &first, &last);
        if (win_end(r, last) + d->horizon_us <= wm &&
            (g->final_upto != NONE && last < g->final_upto)) {
            if (tombstone_pane_users(e, r, g, p) < 0)
                return EO_ENOMEM;
            pane_users_free(&p->users);
            g->dirty = true;
            continue;
        }
        g->panes[keep++] = *p;
    }
    g->np = keep;
    keep = 0;
    for (size_t i = 0; i < g->nw; i++) {
        win_t *w = &g->wins[i];
        if (w->final && win_end(r, w->start) + d->horizon_us <= wm) {
            g->dirty = true;
            continue;
        }
        g->wins[keep++] = *w;
    }
    g->nw = keep;
    bool rolling_quiet = true;
    for (int64_t k = 0; k < g->nroll && k < d->buckets; k++)
        rolling_quiet &= g->roll[k] == 0;
    bool alert_quiet =
        g->alert.state == EO_ALERT_NORMAL ||
        (g->alert.state == EO_ALERT_RESOLVED && g->alert.resolved_at_us + d->cooldown_us <= wm);
    *empty = !g->np && !g->nw && !g->nts && g->next_start == NONE && alert_quiet && rolling_quiet &&
             (!g->has_ewma || fabs(g->ewma) < 1e-12);
    return 0;
}

/* ---- tick: sliding "N within T" ---- */
/* Times <= t in the sorted ts. */
static size_t count_upto(const int64_t *ts, size_t n, int64_t t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ts[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Times in (lo_excl, hi_incl] of the sorted ts: two binary searches, so that evaluating every
 * point of a busy sliding group is not quadratic. */
static size_t count_in(const int64_t *ts, size_t n, int64_t lo_excl, int64_t hi_incl)
{
    size_t hi = count_upto(ts, n, hi_incl), lo = count_upto(ts, n, lo_excl);
    return hi > lo ? hi - lo : 0;
}

static int slide_eval(eo_engine_t *e, rule_t *r, group_t *g, int64_t wm, int64_t now_us)
{
    const eo_rule_t *d = &r->r.def;
    if (g->eval_upto == NONE || wm == NONE)
        return 0;
    int64_t upto = wm - d->grace_us, T = d->size_us;
    /* the points where the count changes: each event time and each time an event leaves */
    size_t i = 0, j = 0;
    int64_t prev = g->eval_upto;
    for (;;) {
        while (i < g->nts && g->ts[i] <= prev)
            i++;
        while (j < g->nts && g->ts[j] + T <= prev)
            j++;
        int64_t x = INT64_MAX;
        if (i < g->nts)
            x = g->ts[i];
        if (j < g->nts && g->ts[j] + T < x)
            x = g->ts[j] + T;
        if (x == INT64_MAX || x > upto)
            break;
        double value = (double)count_in(g->ts, g->nts, x - T, x);
        int rc = alert_step(e, r, g, x - T, x, value, 1, true);
        if (rc < 0)
            return rc;
        prev = x;
    }
    if (upto > g->eval_upto) {
        g->eval_upto = upto;
        g->dirty = true;
    }
    /* times that no later point can count */
    size_t keep = 0;
    for (size_t k = 0; k < g->nts; k++)
        if (g->ts[k] > g->eval_upto - T)
            g->ts[keep++] = g->ts[k];
    if (keep != g->nts)
        g->dirty = true;
    g->nts = keep;
    if (d->emit == EO_EMIT_CHANGES && g->pending_changes && g->nts) {
        win_t *w = win_at(g, 0, true);
        if (!w)
            return EO_ENOMEM;
        int64_t x = g->ts[g->nts - 1];
        double value = (double)count_in(g->ts, g->nts, x - T, x);
        if (!w->has_last || w->last != value) {
            if (w->last_emit_us && now_us - w->last_emit_us < e->opt.changes_interval_us)
                return 0;
            w->revision++;
            w->has_last = true;
            w->last = value;
            w->last_emit_us = now_us;
            wval_t v = {.count = (int64_t)value};
            eo_agg_init(&v.agg);
            int rc = emit_window(e, r, g, x - T, x, &v, true, value, w->revision, false);
            if (rc < 0)
                return rc;
        }
        g->pending_changes = false;
    }
    return 0;
}

/* ---- tick: sessions ---- */
static int sess_emit(eo_engine_t *e, rule_t *r, group_t *g, sess_t *s, bool final, bool step)
{
    wval_t v = {.count = s->count, .agg = s->agg, .users = 0};
    int64_t end = s->last + r->r.def.gap_us;
    double value = 0;
    bool has = window_value(r, g, &v, end - s->start, false, &value);
    s->revision++;
    s->has_last = has;
    s->last_value = value;
    s->last_count = s->count;
    int rc = emit_window(e, r, g, s->start, end, &v, has, value, s->revision, final);
    if (rc == 0 && step && has)
        rc = alert_step(e, r, g, s->start, end, value, s->revision, final);
    g->dirty = true;
    return rc;
}

static int sessions_tick(eo_engine_t *e, rule_t *r, group_t *g, int64_t wm, int64_t now_us,
                         bool *empty)
{
    const eo_rule_t *d = &r->r.def;
    int rc;
    bool waiting = false;
    for (size_t i = 0; i < g->ns; i++) {
        sess_t *s = &g->sess[i];
        int64_t end = s->last + d->gap_us;
        if (s->final && s->need_rev) {
            s->need_rev = s->pending_change = false;
            if ((rc = sess_emit(e, r, g, s, true, false)) < 0)
                return rc;
        } else if (!s->final && end + d->grace_us <= wm) {
            s->final = true;
            s->need_rev = s->pending_change = false;
            if ((rc = sess_emit(e, r, g, s, true, true)) < 0)
                return rc;
        } else if (!s->final && s->pending_change && d->emit == EO_EMIT_CHANGES) {
            if (s->last_emit_us && now_us - s->last_emit_us < e->opt.changes_interval_us) {
                waiting = true;
                continue;
            }
            s->pending_change = false;
            s->last_emit_us = now_us;
            if ((rc = sess_emit(e, r, g, s, false, false)) < 0)
                return rc;
        }
    }
    g->pending_changes = waiting;
    size_t keep = 0;
    for (size_t i = 0; i < g->ns; i++) {
        sess_t *s = &g->sess[i];
        if (s->final && s->last + d->gap_us + d->horizon_us <= wm) {
            g->dirty = true;
            continue;
        }
        g->sess[keep++] = *s;
    }
    g->ns = keep;
    bool alert_quiet =
        g->alert.state == EO_ALERT_NORMAL ||
        (g->alert.state == EO_ALERT_RESOLVED && g->alert.resolved_at_us + d->cooldown_us <= wm);
    *empty = !g->ns && alert_quiet;
    return 0;
}

/* ---- changelog ---- */
static json_t *real_or_null(bool has, double v)
{
    return has ? json_real(v) : json_null();
}

/* The users each pane gained since the last record, in chunks (before the group record,
 * which counts the chunks). */
static int user_chunks(eo_engine_t *e, const rule_t *r, group_t *g)
{
    for (size_t i = 0; i < g->np; i++) {
        pane_t *p = &g->panes[i];
        while (p->users && p->users->flushed < p->users->n) {
            size_t n = p->users->n - p->users->flushed;
            n = n > CHUNK_USERS ? CHUNK_USERS : n;
            eo_out_t *u = out_new(e, EO_OUT_CHANGELOG);
            if (!u)
                return EO_ENOMEM;
            users_clkey(&u->key, r, g, p->start, p->nchunks++);
            for (size_t k = 0; k < n; k++)
                eo_buf_putf(&u->value, "%016" PRIx64, p->users->order[p->users->flushed + k]);
            p->users->flushed += n;
            if (eo_buf_error(&u->key) < 0 || eo_buf_error(&u->value) < 0)
                return EO_ENOMEM;
        }
    }
    return 0;
}

static int group_record(eo_engine_t *e, const rule_t *r, group_t *g)
{
    if (user_chunks(e, r, g) < 0)
        return EO_ENOMEM;
    json_t *o = json_object(), *panes = json_array(), *wins = json_array(), *roll = json_array(),
           *ts = json_array();
    if (!o || !panes || !wins || !roll || !ts)
        goto oom;
    for (size_t i = 0; i < g->np; i++) {
        const pane_t *p = &g->panes[i];
        json_array_append_new(panes,
                              json_pack("[IIIffffI]", (json_int_t)p->start, (json_int_t)p->count,
                                        (json_int_t)p->agg.count, p->agg.sum, p->agg.c,
                                        p->agg.count ? p->agg.min : 0.0,
                                        p->agg.count ? p->agg.max : 0.0, (json_int_t)p->nchunks));
    }
    for (size_t i = 0; i < g->nw; i++) {
        const win_t *w = &g->wins[i];
        json_array_append_new(
            wins, json_pack("[IibboI]", (json_int_t)w->start, w->revision, w->final, w->need_rev,
                            real_or_null(w->has_last, w->last), (json_int_t)w->last_count));
    }
    for (int64_t k = 0; k < g->nroll && k < r->r.def.buckets; k++)
        json_array_append_new(roll, json_real(g->roll[k]));
    for (size_t k = 0; k < g->nts; k++)
        json_array_append_new(ts, json_integer(g->ts[k]));
    json_t *sess = json_array();
    for (size_t k = 0; sess && k < g->ns; k++) {
        const sess_t *x = &g->sess[k];
        json_array_append_new(
            sess, json_pack("[IIIIffffibbbo]", (json_int_t)x->start, (json_int_t)x->last,
                            (json_int_t)x->count, (json_int_t)x->agg.count, x->agg.sum, x->agg.c,
                            x->agg.count ? x->agg.min : 0.0, x->agg.count ? x->agg.max : 0.0,
                            x->revision, x->final, x->need_rev, x->has_last,
                            real_or_null(x->has_last, x->last_value)));
    }
    json_object_set_new(o, "sess", sess ? sess : json_array());
    json_object_set_new(o, "v", json_integer(1));
    json_object_set_new(o, "json", json_string(g->json));
    json_object_set_new(o, "next",
                        g->next_start == NONE ? json_null() : json_integer(g->next_start));
    json_object_set_new(o, "fin",
                        g->final_upto == NONE ? json_null() : json_integer(g->final_upto));
    json_object_set_new(o, "alert",
                        json_pack("[iIIb]", (int)g->alert.state, (json_int_t)g->alert.since_us,
                                  (json_int_t)g->alert.resolved_at_us, g->alert.holding));
    json_object_set_new(o, "panes", panes);
    json_object_set_new(o, "wins", wins);
    json_object_set_new(o, "roll", roll);
    json_object_set_new(o, "rpos", json_integer(g->roll_pos));
    json_object_set_new(o, "ewma", real_or_null(g->has_ewma, g->ewma));
    json_object_set_new(o, "ts", ts);
    json_object_set_new(o, "eval", g->eval_upto == NONE ? json_null() : json_integer(g->eval_upto));
    panes = wins = roll = ts = NULL;
    eo_out_t *out = out_new(e, EO_OUT_CHANGELOG);
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!out || !text) {
        free(text);
        return EO_ENOMEM;
    }
    group_clkey(&out->key, r, g);
    eo_buf_puts(&out->value, text);
    free(text);
    return eo_buf_error(&out->key) < 0 ? EO_ENOMEM : eo_buf_error(&out->value);
oom:
    json_decref(o);
    json_decref(panes);
    json_decref(wins);
    json_decref(roll);
    json_decref(ts);
    return EO_ENOMEM;
}

static int watermark_record(eo_engine_t *e)
{
    json_t *parts = json_array();
    for (size_t i = 0; parts && i < e->wm.n; i++)
        json_array_append_new(parts, e->parts[i].seen ? json_integer(e->parts[i].max_event_us)
                                                      : json_null());
    json_t *o = json_pack("{s:o,s:o}", "wm",
                          e->wm.value_us == NONE ? json_null() : json_integer(e->wm.value_us),
                          "parts", parts);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    eo_out_t *out = text ? out_new(e, EO_OUT_CHANGELOG) : NULL;
    if (!out) {
        free(text);
        return EO_ENOMEM;
    }
    eo_buf_puts(&out->key, "w");
    eo_buf_puts(&out->value, text);
    free(text);
    return eo_buf_error(&out->value);
}

/* Windows of g not final yet. */
static uint64_t open_of(const rule_t *r, const group_t *g)
{
    if (r->r.def.win == EO_WIN_SESSION) {
        uint64_t n = 0;
        for (size_t i = 0; i < g->ns; i++)
            n += !g->sess[i].final;
        return n;
    }
    if (r->r.def.win == EO_WIN_SLIDING)
        return g->nts > 0;
    if (g->next_start == NONE || !g->np)
        return 0;
    int64_t first, last;
    span(r, g->panes[g->np - 1].start, &first, &last);
    return last >= g->next_start ? (uint64_t)windows_between(r, g->next_start, last, 100000) + 1
                                 : 0;
}

/* The tick's work with the watermark wm (see eo_engine_tick). */
static int tick_at(eo_engine_t *e, int64_t wm, int64_t now_wall_us)
{
    e->open_windows = 0;
    char t[EO_RFC3339_MAX];
    size_t tn = eo_rfc3339_format(now_wall_us, t);
    snprintf(e->nowbuf, sizeof e->nowbuf, "\"%.*s\"", (int)tn, t);
    for (size_t i = 0; i < e->nrules; i++) {
        rule_t *r = &e->rules[i];
        size_t k = 0;
        eo_hmap_slot_t *s;
        while (eo_hmap_next(&r->groups, &k, &s)) {
            group_t *g = s->value;
            bool was_dirty = g->dirty, empty = false;
            g->dirty = false;
            int rc;
            if (r->r.def.win == EO_WIN_SESSION) {
                if ((rc = sessions_tick(e, r, g, wm, now_wall_us, &empty)) < 0)
                    return rc;
            } else if (r->r.def.win == EO_WIN_SLIDING) {
                if ((rc = slide_eval(e, r, g, wm, now_wall_us)) < 0)
                    return rc;
                empty = !g->nts && (g->alert.state == EO_ALERT_NORMAL ||
                                    (g->alert.state == EO_ALERT_RESOLVED &&
                                     g->alert.resolved_at_us + r->r.def.cooldown_us <= wm));
            } else {
                if ((rc = revise(e, r, g)) < 0 || (rc = finalize(e, r, g, wm)) < 0 ||
                    (rc = open_windows(e, r, g, now_wall_us)) < 0 ||
                    (rc = expire(e, r, g, wm, &empty)) < 0)
                    return rc;
            }
            if (g->dirty || empty)
                e->changed = true;
            g->dirty |= was_dirty; /* written at the next checkpoint */
            if (empty) {
                if ((rc = tombstone_group(e, r, g)) < 0)
                    return rc;
                e->tenants[r->tenant_slot].bytes -= (int64_t)g->bytes;
                group_free(eo_hmap_del_at(&r->groups, &k));
                continue;
            }
            if (g->dirty)
                account(e, r, g);
            e->open_windows += open_of(r, g);
        }
    }
    return 0;
}

int eo_engine_tick(eo_engine_t *e, int64_t now_mono_us, int64_t now_wall_us)
{
    return tick_at(e, eo_watermark_advance(&e->wm, now_mono_us, now_wall_us), now_wall_us);
}

int eo_engine_tick_replay(eo_engine_t *e, int64_t wm, int64_t now_wall_us)
{
    eo_engine_set_watermark(e, wm);
    return tick_at(e, e->wm.value_us, now_wall_us);
}

void eo_engine_set_watermark(eo_engine_t *e, int64_t wm)
{
    if (wm != NONE && (e->wm.value_us == NONE || wm > e->wm.value_us))
        e->wm.value_us = wm;
}

bool eo_engine_changed(eo_engine_t *e)
{
    bool c = e->changed;
    e->changed = false;
    return c;
}

int eo_engine_checkpoint(eo_engine_t *e)
{
    for (size_t i = 0; i < e->ndeferred; i++) { /* moved into the outputs */
        if (EO_ARRAY_RESERVE(e->outs, e->ocap, e->nouts + 1, 64) < 0)
            return EO_ENOMEM;
        e->outs[e->nouts++] = e->deferred[i];
    }
    e->ndeferred = 0;
    for (size_t i = 0; i < e->nrules; i++) {
        rule_t *r = &e->rules[i];
        size_t k = 0;
        eo_hmap_slot_t *s;
        while (eo_hmap_next(&r->groups, &k, &s)) {
            group_t *g = s->value;
            if (!g->dirty)
                continue;
            int rc = group_record(e, r, g);
            if (rc < 0)
                return rc;
            g->dirty = false;
        }
    }
    return watermark_record(e);
}

/* ---- restore ---- */
static rule_t *rule_of(eo_engine_t *e, const char *tenant, const char *rule, int64_t version)
{
    for (size_t i = 0; i < e->nrules; i++) {
        rule_t *r = &e->rules[i];
        if (!strcmp(r->r.tenant_id, tenant) && !strcmp(r->r.rule_id, rule) &&
            r->r.version == version)
            return r;
    }
    return NULL;
}

/* Splits "kind\nf1\nf2..." into at most n fields (the last takes the rest). */
static size_t split(char *s, char **f, size_t n)
{
    size_t k = 0;
    f[k++] = s;
    for (char *p = s; *p && k < n; p++)
        if (*p == '\n') {
            *p = '\0';
            f[k++] = p + 1;
        }
    return k;
}

static bool parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end)
        return false;
    *out = v;
    return true;
}

static int64_t jint(json_t *v)
{
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : NONE;
}

static int restore_group(eo_engine_t *e, rule_t *r, group_t *g, json_t *o)
{
    g->next_start = jint(json_object_get(o, "next"));
    g->final_upto = jint(json_object_get(o, "fin"));
    g->eval_upto = jint(json_object_get(o, "eval"));
    json_t *a = json_object_get(o, "alert");
    if (json_array_size(a) == 4) {
        g->alert.state = (eo_alert_t)json_integer_value(json_array_get(a, 0));
        g->alert.since_us = json_integer_value(json_array_get(a, 1));
        g->alert.resolved_at_us = json_integer_value(json_array_get(a, 2));
        g->alert.holding = json_is_true(json_array_get(a, 3));
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o, "panes"), i, v)
    {
        pane_t *p = pane_at(g, json_integer_value(json_array_get(v, 0)), true);
        if (!p)
            return EO_ENOMEM;
        p->count = json_integer_value(json_array_get(v, 1));
        p->agg.count = json_integer_value(json_array_get(v, 2));
        p->agg.sum = json_number_value(json_array_get(v, 3));
        p->agg.c = json_number_value(json_array_get(v, 4));
        p->agg.min = json_number_value(json_array_get(v, 5));
        p->agg.max = json_number_value(json_array_get(v, 6));
        uint32_t chunks = (uint32_t)json_integer_value(json_array_get(v, 7));
        if (chunks > p->nchunks)
            p->nchunks = chunks;
    }
    json_array_foreach(json_object_get(o, "wins"), i, v)
    {
        win_t *w = win_at(g, json_integer_value(json_array_get(v, 0)), true);
        if (!w)
            return EO_ENOMEM;
        w->revision = (int32_t)json_integer_value(json_array_get(v, 1));
        w->final = json_is_true(json_array_get(v, 2));
        w->need_rev = json_is_true(json_array_get(v, 3));
        w->has_last = json_is_number(json_array_get(v, 4));
        w->last = w->has_last ? json_number_value(json_array_get(v, 4)) : 0;
        w->last_count = json_integer_value(json_array_get(v, 5));
        w->pending_change = false;
    }
    int64_t nb = r->r.def.buckets > 0 ? r->r.def.buckets : 1;
    json_array_foreach(json_object_get(o, "roll"), i, v)
    {
        if ((int64_t)i < nb)
            g->roll[i] = json_number_value(v);
        g->nroll = (int64_t)i + 1 < nb ? (int64_t)i + 1 : nb;
    }
    g->roll_pos = json_integer_value(json_object_get(o, "rpos")) % nb;
    json_t *ew = json_object_get(o, "ewma");
    g->has_ewma = json_is_number(ew);
    g->ewma = g->has_ewma ? json_number_value(ew) : 0;
    json_array_foreach(json_object_get(o, "ts"), i, v)
    {
        if (!sorted_insert_ts(g, json_integer_value(v)))
            return EO_ENOMEM;
    }
    json_array_foreach(json_object_get(o, "sess"), i, v)
    {
        if (EO_ARRAY_RESERVE(g->sess, g->scap, g->ns + 1, 2) < 0)
            return EO_ENOMEM;
        sess_t *x = &g->sess[g->ns++];
        memset(x, 0, sizeof *x);
        x->start = json_integer_value(json_array_get(v, 0));
        x->last = json_integer_value(json_array_get(v, 1));
        x->count = json_integer_value(json_array_get(v, 2));
        x->agg.count = json_integer_value(json_array_get(v, 3));
        x->agg.sum = json_number_value(json_array_get(v, 4));
        x->agg.c = json_number_value(json_array_get(v, 5));
        x->agg.min = json_number_value(json_array_get(v, 6));
        x->agg.max = json_number_value(json_array_get(v, 7));
        x->revision = (int32_t)json_integer_value(json_array_get(v, 8));
        x->final = json_is_true(json_array_get(v, 9));
        x->need_rev = json_is_true(json_array_get(v, 10));
        x->has_last = json_is_true(json_array_get(v, 11));
        x->last_value = json_number_value(json_array_get(v, 12));
    }
    account(e, r, g);
    return 0;
}

static group_t *restore_find(rule_t *r, const char *key, const char *json)
{
    size_t klen = strlen(key);
    group_t *g = eo_hmap_get(&r->groups, key, klen);
    if (g)
        return g;
    if (!(g = group_new(r, key, klen, json ? json : "{}", json ? strlen(json) : 2)))
        return NULL;
    void *old;
    if (eo_hmap_put(&r->groups, key, klen, g, &old) < 0) {
        group_free(g);
        return NULL;
    }
    return g;
}

static int forget(eo_engine_t *e, const void *key, size_t key_len)
{
    eo_out_t *o = deferred_new(e);
    if (!o)
        return EO_ENOMEM;
    eo_buf_put(&o->key, key, key_len);
    return eo_buf_error(&o->key);
}

int eo_engine_restore(eo_engine_t *e, const void *key, size_t key_len, const void *value,
                      size_t len)
{
    if (key_len == 0 || key_len > 4096)
        return EO_EPARSE;
    char kb[4097];
    memcpy(kb, key, key_len);
    kb[key_len] = '\0';
    if (!strcmp(kb, "w")) {
        json_error_t je;
        json_t *o = json_loadb(value, len, 0, &je);
        if (!o)
            return EO_EPARSE;
        int64_t wm = jint(json_object_get(o, "wm"));
        if (wm != NONE && (e->wm.value_us == NONE || wm > e->wm.value_us))
            e->wm.value_us = wm;
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(o, "parts"), i, v)
        {
            if (i < e->wm.n && json_is_integer(v)) {
                e->parts[i].max_event_us = json_integer_value(v);
                e->parts[i].seen = false; /* idle until its next record */
            }
        }
        json_decref(o);
        return 0;
    }
    char *f[7];
    size_t n = split(kb, f, kb[0] == 'u' ? 7 : 5);
    int64_t version, pane, chunk;
    if ((kb[0] != 'g' && kb[0] != 'u') || kb[1] != '\0' || (kb[0] == 'g' && n != 5) ||
        (kb[0] == 'u' && n != 7) || !parse_i64(f[3], &version))
        return EO_EPARSE;
    rule_t *r = rule_of(e, f[1], f[2], version);
    if (!r)
        return forget(e, key, key_len);
    if (kb[0] == 'u') {
        if (!parse_i64(f[4], &pane) || !parse_i64(f[5], &chunk) || len % 16)
            return EO_EPARSE;
        group_t *g = restore_find(r, f[6], NULL);
        pane_t *p = g ? pane_at(g, pane, true) : NULL;
        if (!p)
            return EO_ENOMEM;
        const char *h = value;
        for (size_t k = 0; k + 16 <= len; k += 16) {
            char hex[17];
            memcpy(hex, h + k, 16);
            hex[16] = '\0';
            bool added;
            uset_t *us = pane_users(&p->users);
            if (!us || uset_add(us, strtoull(hex, NULL, 16), &added) < 0)
                return EO_ENOMEM;
        }
        if (p->users)
            p->users->flushed = p->users->n;
        if ((uint32_t)chunk + 1 > p->nchunks)
            p->nchunks = (uint32_t)chunk + 1;
        account(e, r, g);
        return 0;
    }
    json_error_t je;
    json_t *o = json_loadb(value, len, 0, &je);
    if (!o)
        return EO_EPARSE;
    group_t *g = restore_find(r, f[4], json_string_value(json_object_get(o, "json")));
    int rc = g ? 0 : EO_ENOMEM;
    if (g && json_is_string(json_object_get(o, "json"))) {
        char *j = strdup(json_string_value(json_object_get(o, "json")));
        if (j) {
            free(g->json);
            g->json = j;
        }
    }
    if (g)
        rc = restore_group(e, r, g, o);
    json_decref(o);
    return rc;
}

void eo_engine_hold(eo_engine_t *e, size_t partition, bool held)
{
    if (partition < e->wm.n)
        e->parts[partition].held = held;
}

/* ---- reading ---- */
int64_t eo_engine_watermark(const eo_engine_t *e)
{
    return e->wm.value_us;
}

int64_t eo_engine_partition_delay_us(const eo_engine_t *e, size_t partition, int64_t now_wall_us)
{
    if (partition >= e->wm.n || e->parts[partition].max_event_us == INT64_MIN)
        return -1;
    return now_wall_us - e->parts[partition].max_event_us;
}

void eo_engine_stats(const eo_engine_t *e, eo_engine_stats_t *out)
{
    *out = e->stats;
}

void eo_engine_stats_set(eo_engine_t *e, const eo_engine_stats_t *st)
{
    e->stats = *st;
}

uint64_t eo_engine_open_windows(const eo_engine_t *e)
{
    return e->open_windows;
}

void eo_engine_state_size(const eo_engine_t *e, uint64_t *groups, uint64_t *bytes)
{
    *groups = *bytes = 0;
    for (size_t i = 0; i < e->nrules; i++)
        *groups += e->rules[i].groups.count;
    for (size_t i = 0; i < e->ntenants; i++)
        *bytes += (uint64_t)(e->tenants[i].bytes > 0 ? e->tenants[i].bytes : 0);
}
