/* A rule backtest: stored events through a fresh engine, the results in range kept (see
 * backtest.h). One owner: the thread running the backtest. */
#include "analytics/backtest.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/array.h"
#include "core/hmap.h"
#include "domain/rfc3339.h"

#define BT_NONE INT64_MIN
#define BT_SEC INT64_C(1000000)
#define BT_TIME_MIN (EO_RFC3339_MIN_S * BT_SEC)
#define BT_TIME_MAX (EO_RFC3339_MAX_S * BT_SEC)

/* A window result or summary kept for the answer. */
typedef struct {
    char *text; /* the output's JSON as the engine wrote it (owned) */
    size_t len;
    char *group; /* its groupKey (owned) */
    int64_t start, end;
    uint64_t seq; /* emission order */
} bt_item_t;

typedef struct {
    bt_item_t *items;
    size_t n, cap;
} bt_list_t;

struct eo_backtest {
    eo_backtest_options_t opt;
    eo_engine_rule_t rule;
    eo_engine_t *engine;
    bool fine;    /* ticks paced by event time (changes, early) */
    bool sliding; /* windows (end - T, end]: the end is inclusive */
    int64_t read_from_us;
    int64_t close_us; /* the longest window (size, or the gap) */
    int64_t last_us;  /* the newest event fed, BT_NONE before any */
    int64_t last_tick_us;
    int64_t since_tick; /* events fed since the last tick */
    int64_t events;
    bool stopped, truncated, full, closing;
    int64_t cut_us; /* truncated by a limit: the first event not fed */
    int64_t close_wall_us, close_ticks;
    int64_t ticks;
    bt_list_t wins, sums;
    eo_hmap_t win_index; /* "<groupKey>\n<start>" -> index in wins + 1 */
    uint64_t seq;
};

/* ---- set-up ---- */

static int64_t bt_max(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* How far before from the engine starts (backtest.h): the window part and the condition's. */
static int64_t lead_of(const eo_rule_t *d, int64_t max_cond_us)
{
    int64_t w = d->win == EO_WIN_SESSION ? d->gap_us : d->size_us;
    int64_t slide = d->slide_us > 0 ? d->slide_us : d->size_us;
    if (d->fn == EO_AGG_ROLLING_MEAN || d->fn == EO_AGG_ROLLING_SUM)
        w += (d->buckets - 1) * slide;
    else if (d->fn == EO_AGG_EWMA)
        w += d->span * slide;
    int64_t c = 0;
    if (d->cond.present)
        c = bt_max(bt_max(d->cond.for_us, d->cond.keep_firing_for_us), d->cooldown_us);
    return w + (c < max_cond_us ? c : max_cond_us);
}

int eo_backtest_new(const eo_backtest_options_t *opt, const eo_engine_rule_t *rule,
                    eo_backtest_t **out)
{
    *out = NULL;
    if (opt->from_us >= opt->to_us || opt->max_events < 1 || opt->max_results < 1 ||
        opt->tick_us < 1 || opt->max_lead_us < 0)
        return EO_EINVAL;
    eo_backtest_t *bt = calloc(1, sizeof *bt);
    if (!bt)
        return EO_ENOMEM;
    bt->opt = *opt;
    bt->rule = *rule;
    bt->rule.def.enabled = true;
    const eo_rule_t *d = &bt->rule.def;
    bt->fine = d->emit == EO_EMIT_CHANGES || (d->cond.present && d->cond.early);
    bt->sliding = d->win == EO_WIN_SLIDING;
    bt->close_us = d->win == EO_WIN_SESSION ? d->gap_us : d->size_us;
    int64_t lead = lead_of(d, opt->max_lead_us);
    bt->read_from_us = opt->from_us - BT_TIME_MIN > lead ? opt->from_us - lead : BT_TIME_MIN;
    bt->last_us = bt->last_tick_us = bt->cut_us = BT_NONE;
    eo_hmap_init(&bt->win_index);
    /* one partition, bound 0; idle after 1 us of simulated time without an event, which only
     * the closing ticks reach (the others happen at the newest event's time) */
    eo_engine_options_t eo = {.partitions = 1,
                              .bound_us = 0,
                              .idle_us = 1,
                              .changes_interval_us = opt->changes_interval_us,
                              .max_state_bytes_per_tenant = opt->max_state_bytes_per_tenant};
    int r = eo_engine_new(&eo, &bt->engine);
    if (r == 0)
        r = eo_engine_set_rules(bt->engine, &bt->rule, 1);
    if (r < 0) {
        eo_backtest_free(bt);
        return r;
    }
    eo_engine_outputs_clear(bt->engine);
    *out = bt;
    return 0;
}

static void list_done(bt_list_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].text);
        free(l->items[i].group);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

void eo_backtest_free(eo_backtest_t *bt)
{
    if (!bt)
        return;
    eo_engine_free(bt->engine);
    list_done(&bt->wins);
    list_done(&bt->sums);
    eo_hmap_done(&bt->win_index, NULL);
    free(bt);
}

void eo_backtest_read_range(const eo_backtest_t *bt, int64_t *from_us, int64_t *to_us)
{
    *from_us = bt->read_from_us;
    *to_us = bt->opt.to_us;
}

const char *eo_backtest_event_type(const eo_backtest_t *bt)
{
    return bt->rule.def.event_type;
}

/* ---- outputs ---- */

/* Simulated monotonic time: event time since the first instant read, plus a second (the
 * engine takes 0 as "never"). */
static int64_t mono_of(const eo_backtest_t *bt, int64_t t)
{
    return t - bt->read_from_us + BT_SEC;
}

static bool time_member(json_t *obj, const char *name, int64_t *us)
{
    json_t *v = json_object_get(obj, name);
    return json_is_string(v) &&
           eo_rfc3339_parse(json_string_value(v), json_string_length(v), us) == 0;
}

/* Keeps one window result or summary when its window lies within [from, to) (the end is
 * checked again against reached when the answer is written). */
static int keep(eo_backtest_t *bt, const eo_out_t *o)
{
    json_error_t je;
    json_t *v = json_loadb(o->value.data, o->value.len, 0, &je);
    json_t *w = json_object_get(v, "window"), *g = json_object_get(v, "groupKey");
    int64_t start, end;
    if (!v || !time_member(w, "start", &start) || !time_member(w, "end", &end) ||
        !json_is_string(g)) {
        json_decref(v);
        return v ? EO_EIO : EO_ENOMEM; /* the engine wrote it: only memory can fail */
    }
    int r = 0;
    if (start < bt->opt.from_us || end > bt->opt.to_us)
        goto done;
    bt_list_t *l = o->kind == EO_OUT_WINDOW ? &bt->wins : &bt->sums;
    bt_item_t item = {.start = start, .end = end, .seq = bt->seq++, .len = o->value.len};
    char key[1100];
    int kn = snprintf(key, sizeof key, "%s\n%" PRId64, json_string_value(g), start);
    bool indexed = o->kind == EO_OUT_WINDOW && kn > 0 && (size_t)kn < sizeof key;
    uintptr_t at = indexed ? (uintptr_t)eo_hmap_get(&bt->win_index, key, (size_t)kn) : 0;
    if (!(item.text = malloc(o->value.len + 1)) || !(item.group = strdup(json_string_value(g)))) {
        free(item.text);
        r = EO_ENOMEM;
        goto done;
    }
    memcpy(item.text, o->value.data, o->value.len);
    item.text[o->value.len] = '\0';
    if (at) { /* a later revision of a window kept: it replaces the earlier one */
        bt_item_t *old = &l->items[at - 1];
        free(old->text);
        free(old->group);
        *old = item;
        goto done;
    }
    void *prev;
    if (EO_ARRAY_RESERVE(l->items, l->cap, l->n + 1, 64) < 0 ||
        (indexed &&
         eo_hmap_put(&bt->win_index, key, (size_t)kn, (void *)(uintptr_t)(l->n + 1), &prev) < 0)) {
        free(item.text);
        free(item.group);
        r = EO_ENOMEM;
        goto done;
    }
    l->items[l->n++] = item;
done:
    json_decref(v);
    return r;
}

/* One engine tick at simulated time wall; keeps the window results and summaries in range and
 * drops the rest (late events; the changelog of a checkpoint every EO_BACKTEST_CHECKPOINT_TICKS
 * ticks, which only frees what the engine keeps for its next checkpoint). *changed: whether the
 * tick changed the state or emitted anything. */
static int bt_tick(eo_backtest_t *bt, int64_t wall, int64_t mono, bool *changed)
{
    int r = eo_engine_tick(bt->engine, mono, wall);
    bool c = eo_engine_changed(bt->engine);
    if (r == 0 && ++bt->ticks % EO_BACKTEST_CHECKPOINT_TICKS == 0)
        r = eo_engine_checkpoint(bt->engine);
    size_t n;
    const eo_out_t *outs = eo_engine_outputs(bt->engine, &n);
    for (size_t i = 0; r == 0 && i < n; i++)
        if (outs[i].kind == EO_OUT_WINDOW || outs[i].kind == EO_OUT_SUMMARY)
            r = keep(bt, &outs[i]);
    if (changed)
        *changed = c || n > 0;
    eo_engine_outputs_clear(bt->engine);
    bt->last_tick_us = wall;
    bt->since_tick = 0;
    bt->full = bt->wins.n + bt->sums.n > (size_t)bt->opt.max_results;
    return r;
}

/* ---- events ---- */

int eo_backtest_event(eo_backtest_t *bt, const eo_record_t *rec)
{
    if (bt->stopped || bt->closing)
        return 1;
    int64_t t = rec->ev.occurred_at_us;
    if (strcmp(rec->tenant_id, bt->rule.tenant_id) != 0 || t < bt->read_from_us ||
        t >= bt->opt.to_us || (bt->last_us != BT_NONE && t < bt->last_us))
        return EO_EINVAL;
    int r;
    if (bt->last_us != BT_NONE && t > bt->last_us) { /* a tick never splits one time */
        bool due = bt->fine ? t - bt->last_tick_us >= bt->opt.tick_us
                            : bt->since_tick >= EO_BACKTEST_TICK_EVENTS;
        if (due && (r = bt_tick(bt, bt->last_us, mono_of(bt, bt->last_us), NULL)) < 0)
            return r;
    }
    if (bt->events >= bt->opt.max_events || bt->full) {
        bt->stopped = bt->truncated = true;
        bt->cut_us = t;
        return 1;
    }
    if (bt->last_tick_us == BT_NONE)
        bt->last_tick_us = t;
    r = eo_engine_event(bt->engine, 0, rec, "", 0, "", 0, mono_of(bt, t));
    if (r < 0)
        return r;
    bt->events++;
    bt->since_tick++;
    bt->last_us = t;
    return 0;
}

int eo_backtest_close(eo_backtest_t *bt)
{
    if (!bt->closing) {
        bt->closing = true;
        int64_t end = bt->truncated ? bt->cut_us : bt->opt.to_us;
        int64_t grace = bt->rule.def.grace_us;
        /* every partition idle: the watermark follows now_wall, past every window ending by
         * end (kept within the instants RFC 3339 can write) */
        bt->close_wall_us =
            BT_TIME_MAX - end > grace + bt->close_us ? end + grace + bt->close_us : BT_TIME_MAX;
    }
    bool changed = false;
    int r = bt_tick(bt, bt->close_wall_us, mono_of(bt, bt->close_wall_us), &changed);
    if (r < 0)
        return r;
    return changed && ++bt->close_ticks < EO_BACKTEST_MAX_CLOSE_TICKS ? 1 : 0;
}

/* ---- the answer ---- */

static int item_cmp(const void *pa, const void *pb)
{
    const bt_item_t *a = pa, *b = pb;
    if (a->end != b->end)
        return a->end < b->end ? -1 : 1;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    int c = strcmp(a->group, b->group);
    if (c)
        return c;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int int64_cmp(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return a < b ? -1 : a > b;
}

/* Drops the items of l that do not end within reached (see backtest.h); a sliding window's
 * end is inclusive, so with inclusive false one ending at reached goes too. */
static void cut_list(bt_list_t *l, int64_t reached, bool inclusive)
{
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        bt_item_t *it = &l->items[i];
        if (it->end < reached || (inclusive && it->end == reached)) {
            l->items[k++] = *it;
            continue;
        }
        free(it->text);
        free(it->group);
    }
    l->n = k;
}

/* The window end of the first result past max_results (all lists in end order), or BT_NONE
 * when they fit. */
static int64_t overflow_end(const eo_backtest_t *bt, int *err)
{
    size_t n = bt->wins.n + bt->sums.n, max = (size_t)bt->opt.max_results;
    *err = 0;
    if (n <= max)
        return BT_NONE;
    int64_t *ends = malloc(n * sizeof *ends);
    if (!ends) {
        *err = EO_ENOMEM;
        return BT_NONE;
    }
    for (size_t i = 0; i < bt->wins.n; i++)
        ends[i] = bt->wins.items[i].end;
    for (size_t i = 0; i < bt->sums.n; i++)
        ends[bt->wins.n + i] = bt->sums.items[i].end;
    qsort(ends, n, sizeof *ends, int64_cmp);
    int64_t e = ends[max];
    free(ends);
    return e;
}

static void put_list(eo_buf_t *out, const char *name, const bt_list_t *l)
{
    eo_buf_putf(out, ",\"%s\":[", name);
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            eo_buf_putc(out, ',');
        eo_buf_put(out, l->items[i].text, l->items[i].len);
    }
    eo_buf_putc(out, ']');
}

static void put_time_member(eo_buf_t *out, const char *name, int64_t us)
{
    char t[EO_RFC3339_MAX];
    size_t n = eo_rfc3339_format(us, t);
    eo_buf_putf(out, ",\"%s\":\"%.*s\"", name, (int)n, t);
}

int eo_backtest_write(eo_backtest_t *bt, const char *rule_json, eo_buf_t *out,
                      eo_backtest_result_t *res)
{
    int64_t reached = bt->truncated ? bt->cut_us : bt->opt.to_us;
    cut_list(&bt->wins, reached, !(bt->sliding && bt->truncated));
    cut_list(&bt->sums, reached, !(bt->sliding && bt->truncated));
    int err;
    int64_t e = overflow_end(bt, &err);
    if (err < 0)
        return err;
    if (e != BT_NONE) { /* too many: those ending before the first left out */
        cut_list(&bt->wins, e, false);
        cut_list(&bt->sums, e, false);
        reached = e;
        bt->truncated = true;
    }
    if (bt->wins.n > 1)
        qsort(bt->wins.items, bt->wins.n, sizeof *bt->wins.items, item_cmp);
    if (bt->sums.n > 1)
        qsort(bt->sums.items, bt->sums.n, sizeof *bt->sums.items, item_cmp);
    eo_engine_stats_t st;
    eo_engine_stats(bt->engine, &st);
    eo_buf_puts(out, "{\"rule\":");
    eo_buf_puts(out, rule_json);
    put_time_member(out, "from", bt->opt.from_us);
    put_time_member(out, "to", bt->opt.to_us);
    eo_buf_putf(out, ",\"events\":%" PRId64, bt->events);
    put_list(out, "windows", &bt->wins);
    put_list(out, "summaries", &bt->sums);
    eo_buf_putf(out, ",\"late\":%" PRIu64 ",\"truncated\":%s", st.late,
                bt->truncated ? "true" : "false");
    put_time_member(out, "reached", reached);
    eo_buf_putc(out, '}');
    if (res)
        *res = (eo_backtest_result_t){.events = bt->events,
                                      .windows = (int64_t)bt->wins.n,
                                      .summaries = (int64_t)bt->sums.n,
                                      .late = (int64_t)st.late,
                                      .truncated = bt->truncated,
                                      .reached_us = reached};
    return eo_buf_error(out);
}
