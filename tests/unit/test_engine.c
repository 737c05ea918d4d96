/* The analytics engine (src/analytics/engine.c) without Kafka: windows against a brute force,
 * lateness (within grace, within the horizon, beyond it), summaries, idle partitions, group
 * overflow, sliding "N within T", and a restore from its own changelog that continues exactly
 * as the engine that wrote it. The engine is pure (records in, outputs out): it is included
 * here, as test_batch_store does with its module. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../src/analytics/engine.c"

#define TENANT "00000000-0000-4000-8000-000000000001"
#define OTHER "00000000-0000-4000-8000-000000000002"
#define RULE "00000000-0000-4000-8000-0000000000aa"
#define T0 (INT64_C(1704067200) * 1000000) /* 2024-01-01T00:00:00Z */
#define SEC INT64_C(1000000)
#define MIN (60 * SEC)

static eo_event_limits_t lim;

static eo_engine_rule_t base_rule(eo_win_type_t win, int64_t size, int64_t slide, eo_agg_fn_t fn)
{
    eo_engine_rule_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.tenant_id, sizeof r.tenant_id, "%s", TENANT);
    snprintf(r.rule_id, sizeof r.rule_id, "%s", RULE);
    r.version = 1;
    snprintf(r.def.name, sizeof r.def.name, "test rule");
    snprintf(r.def.event_type, sizeof r.def.event_type, "signup");
    snprintf(r.def.zone, sizeof r.def.zone, "UTC");
    r.def.win = win;
    r.def.size_us = size;
    r.def.slide_us = slide;
    r.def.fn = fn;
    r.def.emit = EO_EMIT_FINAL;
    r.def.grace_us = 10 * SEC;
    r.def.horizon_us = 10 * MIN;
    r.def.max_groups = 1000;
    r.def.buckets = 1;
    r.def.enabled = true;
    return r;
}

static void set_property(eo_engine_rule_t *r, const char *path)
{
    r->def.has_property = true;
    r->def.property.root = EO_PATH_PROPERTIES;
    snprintf(r->def.property.text, sizeof r->def.property.text, "properties.%s", path);
    r->def.property.nkeys = 1;
    r->def.property.key_off[0] = strlen("properties.");
    r->def.property.key_len[0] = strlen(path);
}

typedef struct {
    eo_engine_t *e;
    int64_t mono;
    int n; /* messages sent */
} fx_t;

static void fx_init(fx_t *f, size_t partitions, const eo_engine_rule_t *rules, size_t n)
{
    eo_engine_options_t opt = {.partitions = partitions,
                               .bound_us = 0,
                               .idle_us = 5 * SEC,
                               .changes_interval_us = SEC,
                               .max_state_bytes_per_tenant = 0};
    assert_int_equal(eo_engine_new(&opt, &f->e), 0);
    assert_int_equal(eo_engine_set_rules(f->e, rules, n), 0);
    f->mono = 1000 * SEC;
    f->n = 0;
}

/* One event at t for tenant (user, type, amount property). */
static void send_ev(fx_t *f, size_t part, const char *tenant, const char *type, const char *user,
                    int64_t t, double amount)
{
    char ts[EO_RFC3339_MAX], body[1024];
    ts[eo_rfc3339_format(t, ts)] = '\0';
    int n = snprintf(body, sizeof body,
                     "{\"v\":1,\"tenantId\":\"%s\",\"receivedAt\":\"%s\",\"event\":{"
                     "\"messageId\":\"m%d\",\"eventType\":\"%s\",\"userId\":\"%s\","
                     "\"timestamp\":\"%s\",\"properties\":{\"amount\":%.17g,\"plan\":\"%s\"}}}",
                     tenant, ts, f->n++, type, user, ts, amount, user[0] == 'p' ? "pro" : "free");
    eo_record_t rec;
    eo_event_error_t err;
    assert_int_equal(eo_record_decode(body, (size_t)n, &lim, &rec, &err), 0);
    assert_int_equal(eo_engine_event(f->e, part, &rec, body, (size_t)n, "k", 1, f->mono), 0);
    eo_record_done(&rec);
}

/* A tick with every partition idle: the watermark follows wall (bound 0). */
static void tick_wall(fx_t *f, int64_t wall)
{
    f->mono += 10 * SEC;
    assert_int_equal(eo_engine_tick(f->e, f->mono, wall), 0);
}

/* Outputs of a kind, as parsed JSON objects (window results, summaries). */
static size_t take(fx_t *f, eo_out_kind_t kind, json_t **out, size_t cap)
{
    size_t n, k = 0;
    const eo_out_t *o = eo_engine_outputs(f->e, &n);
    for (size_t i = 0; i < n; i++) {
        if (o[i].kind != kind)
            continue;
        assert_true(k < cap);
        if (kind == EO_OUT_LATE) {
            out[k++] = json_string(o[i].reason);
            continue;
        }
        json_error_t je;
        out[k] = json_loadb(o[i].value.data, o[i].value.len, 0, &je);
        assert_non_null(out[k]);
        k++;
    }
    return k;
}

static void drop_all(json_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(v[i]);
}

static const char *wstart(json_t *o)
{
    return json_string_value(json_object_get(json_object_get(o, "window"), "start"));
}

static void assert_start(json_t *o, int64_t t)
{
    char ts[EO_RFC3339_MAX];
    ts[eo_rfc3339_format(t, ts)] = '\0';
    assert_string_equal(wstart(o), ts);
}

static void tumbling_counts_and_closes(void **state)
{
    eo_engine_rule_t r = base_rule(EO_WIN_TUMBLING, MIN, MIN, EO_AGG_COUNT);
    fx_t f;
    fx_init(&f, 1, &r, 1);
    send_ev(&f, 0, TENANT, "signup", "u1", T0 + 5 * SEC, 1);
    send_ev(&f, 0, TENANT, "signup", "u2", T0 + 59 * SEC, 1);
    send_ev(&f, 0, TENANT, "signup", "u1", T0 + 60 * SEC, 1);
    send_ev(&f, 0, TENANT, "login", "u1", T0 + 61 * SEC, 1); /* another type */
    send_ev(&f, 0, OTHER, "signup", "u1", T0 + 62 * SEC, 1); /* another tenant */
    json_t *w[8];
    tick_wall(&f, T0 + 69 * SEC); /* end + grace of the first window is 70 s: not yet */
    assert_int_equal(take(&f, EO_OUT_WINDOW, w, 8), 0);
    eo_engine_outputs_clear(f.e);
    tick_wall(&f, T0 + 70 * SEC);
    assert_int_equal(take(&f, EO_OUT_WINDOW, w, 8), 1);
    assert_start(w[0], T0);
    assert_int_equal(json_integer_value(json_object_get(w[0], "count")), 2);
    assert_true(json_is_true(json_object_get(w[0], "final")));
    assert_int_equal(json_integer_value(json_object_get(w[0], "revision")), 1);
    assert_string_equal(json_string_value(json_object_get(w[0], "groupKey")), "[]");
    drop_all(w, 1);
    eo_engine_outputs_clear(f.e);
    tick_wall(&f, T0 + 200 * SEC);
    assert_int_equal(take(&f, EO_OUT_WINDOW, w, 8), 1);
    assert_start(w[0], T0 + MIN);
    assert_int_equal(json_integer_value(json_object_get(w[0], "count")), 1);
    drop_all(w, 1);
    eo_engine_outputs_clear(f.e);
    tick_wall(&f, T0 + 300 * SEC); /* nothing is emitted twice */
    assert_int_equal(take(&f, EO_OUT_WINDOW, w, 8), 0);
    eo_engine_free(f.e);
}

static void late_within_grace_horizon_and_beyond(void **state)
{
    eo_engine_rule_t r = base_rule(EO_WIN_TUMBLING, MIN, MIN, EO_AGG_COUNT);
    fx_t f;
    fx_init(&f, 1, &r, 1);
    send_ev(&f, 0, TENANT, "signup", "u1", T0 + 5 * SEC, 1);
    tick_wall(&f, T0 + 65 * SEC); /* past the window's end, within grace */
    send_ev(&f, 0, TENANT, "signup", "u2", T0 + 50 * SEC, 1);
    json_t *w[8];
    eo_engine_outputs_clear(f.e);
    tick_wall(&f, T0 + 71 * SEC);
    assert_int_equal(take(&f, EO_OUT_WINDOW, w, 8), 1);
    assert_int_equal(json_integer_value(json_object_get(w[0], "count")), 2); /* in the first */
    drop_all(w, 1);
    eo_engine_outputs_clear(f.e);
    send_ev(&f, 0, TENANT, "signup", "u3", T0 + 30 * SEC, 1); /* after final, within horizon */
    tick_wall(&f, T0 + 5 * MIN);
    assert_int_equal(take(&f, EO_OUT_WINDOW, w, 8), 1);
    assert_int_equal(json_integer_value(json_object_get(w[0], "count")), 3);
    assert_int_equal(json_integer_value(json_object_get(w[0], "revision")), 2);
    assert_true(json_is_true(json_object_get(w[0], "final")));
    drop_all(w, 1);
    eo_engine_outputs_clear(f.e);
    tick_wall(&f, T0 + 6 * MIN); /* exactly one new revision */
    assert_int_equal(take(&f, EO_OUT_WINDOW, w, 8), 0);
    tick_wall(&f, T0 + 12 * MIN); /* the horizon (10 min after the end) has passed */
    eo_engine_outputs_clear(f.e);
    send_ev(&f, 0, TENANT, "signup", "u4", T0 + 20 * SEC, 1);
    assert_int_equal(take(&f, EO_OUT_LATE, w, 8), 1);
    assert_string_equal(json_string_value(w[0]), "beyond_horizon");
    drop_all(w, 1);
    eo_engine_stats_t st;
    eo_engine_stats(f.e, &st);
    assert_int_equal(st.events, 4);
    assert_int_equal(st.matched, 3);
    assert_int_equal(st.corrections, 1);
    assert_int_equal(st.late, 1);
    eo_engine_free(f.e);
}

/* Hopping 5 min / 1 min: every window's count, sum and mean equal a brute force. */
static void hopping_matches_brute_force(void **state)
{
    eo_engine_rule_t rc = base_rule(EO_WIN_HOPPING, 5 * MIN, MIN, EO_AGG_COUNT);
    eo_engine_rule_t rm = base_rule(EO_WIN_HOPPING, 5 * MIN, MIN, EO_AGG_MEAN);
    snprintf(rm.rule_id, sizeof rm.rule_id, "00000000-0000-4000-8000-0000000000bb");
    set_property(&rm, "amount");
    eo_engine_rule_t rules[2] = {rc, rm};
    fx_t f;
    fx_init(&f, 1, rules, 2);
    int64_t ts[200];
    double amt[200];
    uint64_t x = 42;
    for (int i = 0; i < 200; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        ts[i] = T0 + (int64_t)((x >> 33) % (20 * 60)) * SEC;
        amt[i] = (double)((x >> 20) % 1000) / 10.0;
        send_ev(&f, 0, TENANT, "signup", "u1", ts[i], amt[i]);
    }
    tick_wall(&f, T0 + 60 * MIN);
    json_t *w[64];
    size_t n = take(&f, EO_OUT_WINDOW, w, 64);
    assert_true(n > 20);
    for (size_t k = 0; k < n; k++) {
        int64_t s;
        const char *st = wstart(w[k]);
        assert_int_equal(eo_rfc3339_parse(st, strlen(st), &s), 0);
        int64_t cnt = 0;
        double sum = 0;
        for (int i = 0; i < 200; i++)
            if (ts[i] >= s && ts[i] < s + 5 * MIN) {
                cnt++;
                sum += amt[i];
            }
        assert_int_equal(json_integer_value(json_object_get(w[k], "count")), cnt);
        const char *agg = json_string_value(json_object_get(w[k], "aggregate"));
        double v = json_number_value(json_object_get(w[k], "value"));
        if (!strcmp(agg, "count"))
            assert_true(v == (double)cnt);
        else
            assert_true(fabs(v - sum / (double)cnt) < 1e-9);
    }
    drop_all(w, n);
    eo_engine_free(f.e);
}

static void unique_users_union_panes(void **state)
{
    eo_engine_rule_t r = base_rule(EO_WIN_HOPPING, 2 * MIN, MIN, EO_AGG_UNIQUE_USERS);
    fx_t f;
    fx_init(&f, 1, &r, 1);
    send_ev(&f, 0, TENANT, "signup", "u1", T0 + 10 * SEC, 1);
    send_ev(&f, 0, TENANT, "signup", "u2", T0 + 20 * SEC, 1);
    send_ev(&f, 0, TENANT, "signup", "u1", T0 + 70 * SEC, 1);
    send_ev(&f, 0, TENANT, "signup", "u3", T0 + 80 * SEC, 1);
    tick_wall(&f, T0 + 10 * MIN);
    json_t *w[8];
    size_t n = take(&f, EO_OUT_WINDOW, w, 8);
    assert_int_equal(n, 3); /* [-1m,1m) [0,2m) [1m,3m) */
    assert_start(w[1], T0);
    assert_true(json_number_value(json_object_get(w[1], "value")) == 3);
    assert_true(json_number_value(json_object_get(w[2], "value")) == 2);
    drop_all(w, n);
    eo_engine_free(f.e);
}

static void summaries_fire_and_resolve_once(void **state)
{
    eo_engine_rule_t r = base_rule(EO_WIN_TUMBLING, MIN, MIN, EO_AGG_COUNT);
    r.def.cond = (eo_condition_t){.present = true, .op = EO_CMP_GE, .value = 3};
    fx_t f;
    fx_init(&f, 1, &r, 1);
    for (int i = 0; i < 4; i++)
        send_ev(&f, 0, TENANT, "signup", "u1", T0 + i * SEC, 1);
    tick_wall(&f, T0 + 2 * MIN);
    json_t *s[8];
    size_t n = take(&f, EO_OUT_SUMMARY, s, 8);
    assert_int_equal(n, 1);
    assert_string_equal(json_string_value(json_object_get(s[0], "status")), "firing");
    assert_true(json_number_value(json_object_get(s[0], "value")) == 4);
    assert_string_equal(json_string_value(json_object_get(s[0], "message")),
                        "4 signup events in 1 min");
    char id[37];
    assert_int_equal(eo_summary_event_id(TENANT, RULE, 1, "[]", T0, "firing", id), 0);
    assert_string_equal(json_string_value(json_object_get(s[0], "eventId")), id);
    drop_all(s, n);
    eo_engine_outputs_clear(f.e);
    tick_wall(&f, T0 + 3 * MIN); /* the next window is empty: 0 < 3 resolves */
    n = take(&f, EO_OUT_SUMMARY, s, 8);
    assert_int_equal(n, 1);
    assert_string_equal(json_string_value(json_object_get(s[0], "status")), "resolved");
    drop_all(s, n);
    eo_engine_outputs_clear(f.e);
    tick_wall(&f, T0 + 30 * MIN);
    assert_int_equal(take(&f, EO_OUT_SUMMARY, s, 8), 0);
    eo_engine_free(f.e);
}

static void idle_partition_does_not_hold_the_watermark(void **state)
{
    eo_engine_rule_t r = base_rule(EO_WIN_TUMBLING, MIN, MIN, EO_AGG_COUNT);
    fx_t f;
    fx_init(&f, 2, &r, 1);
    send_ev(&f, 1, TENANT, "signup", "u1", T0, 1); /* partition 1, then silent */
    for (int i = 0; i < 10; i++) {
        f.mono += SEC;
        send_ev(&f, 0, TENANT, "signup", "u1", T0 + 10 * SEC * i, 1);
        assert_int_equal(eo_engine_tick(f.e, f.mono, T0 - 100 * MIN), 0);
    }
    /* 10 s after partition 1's record it is idle; partition 0 alone is at 90 s */
    assert_true(eo_engine_watermark(f.e) == T0 + 90 * SEC);
    json_t *w[8];
    size_t n = take(&f, EO_OUT_WINDOW, w, 8);
    assert_int_equal(n, 1); /* [0, 60 s) closed at 70 s */
    drop_all(w, n);
    eo_engine_free(f.e);
}

/* A hopping event within the horizon of its newer window but past the older one's: only the
 * newer window is corrected. Before the fix the older window, whose state and first pane had
 * expired, was made again and emitted as revision 1 a second time, with a count missing the
 * expired pane's events (2 instead of 3). */
static void hopping_correction_skips_windows_past_their_horizon(void **state)
{
    eo_engine_rule_t r = base_rule(EO_WIN_HOPPING, 2 * MIN, MIN, EO_AGG_COUNT);
    r.def.horizon_us = MIN;
    fx_t f;
    fx_init(&f, 1, &r, 1);
    send_ev(&f, 0, TENANT, "signup", "u1", T0 + 30 * SEC, 1);
    send_ev(&f, 0, TENANT, "signup", "u2", T0 + 90 * SEC, 1);
    tick_wall(&f, T0 + 3 * MIN + 10 * SEC); /* all final; [T0, T0 + 2 min) past its horizon */
    json_t *w[8];
    assert_int_equal(take(&f, EO_OUT_WINDOW, w, 8), 3);
    drop_all(w, 3);
    eo_engine_outputs_clear(f.e);
    /* in [T0, T0 + 2 min) (past its horizon) and [T0 + 1 min, T0 + 3 min) (within it) */
    send_ev(&f, 0, TENANT, "signup", "u3", T0 + 70 * SEC, 1);
    assert_int_equal(take(&f, EO_OUT_LATE, w, 8), 0);
    tick_wall(&f, T0 + 3 * MIN + 11 * SEC);
    size_t n = take(&f, EO_OUT_WINDOW, w, 8);
    assert_int_equal(n, 1);
    json_t *win = json_object_get(w[0], "window");
    assert_string_equal(json_string_value(json_object_get(win, "start")),
                        "2024-01-01T00:01:00.000000Z");
    assert_int_equal(json_integer_value(json_object_get(w[0], "revision")), 2);
    assert_int_equal(json_integer_value(json_object_get(w[0], "count")), 2);
    drop_all(w, n);
    eo_engine_free(f.e);
}

static void groups_overflow_is_explicit(void **state)
{
    eo_engine_rule_t r = base_rule(EO_WIN_TUMBLING, MIN, MIN, EO_AGG_COUNT);
    r.def.ngroup = 1;
    r.def.group_by[0].root = EO_PATH_USER_ID;
    snprintf(r.def.group_by[0].text, sizeof r.def.group_by[0].text, "userId");
    r.def.max_groups = 2;
    fx_t f;
    fx_init(&f, 1, &r, 1);
    const char *users[] = {"a", "b", "c", "d", "a"};
    for (int i = 0; i < 5; i++)
        send_ev(&f, 0, TENANT, "signup", users[i], T0 + i * SEC, 1);
    tick_wall(&f, T0 + 5 * MIN);
    json_t *w[8];
    size_t n = take(&f, EO_OUT_WINDOW, w, 8);
    assert_int_equal(n, 3);
    int64_t total = 0, over = 0;
    for (size_t k = 0; k < n; k++) {
        total += json_integer_value(json_object_get(w[k], "count"));
        if (json_is_true(json_object_get(json_object_get(w[k], "group"), "$overflow")))
            over = json_integer_value(json_object_get(w[k], "count"));
    }
    assert_int_equal(total, 5);
    assert_int_equal(over, 2); /* c and d */
    eo_engine_stats_t st;
    eo_engine_stats(f.e, &st);
    assert_int_equal(st.overflow, 2);
    drop_all(w, n);
    eo_engine_free(f.e);
}

static void sliding_n_within_t(void **state)
{
    eo_engine_rule_t r = base_rule(EO_WIN_SLIDING, MIN, MIN, EO_AGG_COUNT);
    r.def.cond = (eo_condition_t){.present = true, .op = EO_CMP_GE, .value = 3};
    fx_t f;
    fx_init(&f, 1, &r, 1);
    /* 3 events, but never 3 within one minute: 0, 40, 90 s */
    send_ev(&f, 0, TENANT, "signup", "u", T0, 1);
    send_ev(&f, 0, TENANT, "signup", "u", T0 + 40 * SEC, 1);
    send_ev(&f, 0, TENANT, "signup", "u", T0 + 90 * SEC, 1);
    tick_wall(&f, T0 + 5 * MIN);
    json_t *s[8];
    assert_int_equal(take(&f, EO_OUT_SUMMARY, s, 8), 0);
    eo_engine_outputs_clear(f.e);
    /* now 3 within 60 s: 300, 330, 359 s */
    send_ev(&f, 0, TENANT, "signup", "u", T0 + 300 * SEC, 1);
    send_ev(&f, 0, TENANT, "signup", "u", T0 + 330 * SEC, 1);
    send_ev(&f, 0, TENANT, "signup", "u", T0 + 359 * SEC, 1);
    tick_wall(&f, T0 + 10 * MIN);
    size_t n = take(&f, EO_OUT_SUMMARY, s, 8);
    assert_int_equal(n, 2); /* firing at 359 s, resolved when the first leaves at 360 s */
    assert_string_equal(json_string_value(json_object_get(s[0], "status")), "firing");
    assert_true(json_number_value(json_object_get(s[0], "value")) == 3);
    assert_string_equal(json_string_value(json_object_get(s[1], "status")), "resolved");
    drop_all(s, n);
    eo_engine_free(f.e);
}

/* The changelog as a compacted topic would keep it: the newest value per key. */
typedef struct {
    eo_hmap_t m;
} changelog_t;

static void keep_changelog(changelog_t *cl, eo_engine_t *e)
{
    size_t n;
    const eo_out_t *o = eo_engine_outputs(e, &n);
    for (size_t i = 0; i < n; i++) {
        if (o[i].kind != EO_OUT_CHANGELOG)
            continue;
        if (o[i].tombstone) {
            free(eo_hmap_del(&cl->m, o[i].key.data, o[i].key.len));
            continue;
        }
        eo_buf_t *copy = malloc(sizeof *copy);
        assert_non_null(copy);
        eo_buf_init(copy, SIZE_MAX / 2);
        assert_int_equal(eo_buf_append(copy, o[i].value.data, o[i].value.len), 0);
        void *old;
        assert_int_equal(eo_hmap_put(&cl->m, o[i].key.data, o[i].key.len, copy, &old), 0);
        if (old) {
            eo_buf_done(old);
            free(old);
        }
    }
}

static void free_buf(void *p)
{
    eo_buf_done(p);
    free(p);
}

/* Window results without emittedAt, sorted, as one string. */
static char *results(eo_engine_t *e)
{
    size_t n;
    const eo_out_t *o = eo_engine_outputs(e, &n);
    eo_buf_t all;
    eo_buf_init(&all, SIZE_MAX / 2);
    for (size_t i = 0; i < n; i++) {
        if (o[i].kind != EO_OUT_WINDOW && o[i].kind != EO_OUT_SUMMARY)
            continue;
        json_error_t je;
        json_t *v = json_loadb(o[i].value.data, o[i].value.len, 0, &je);
        json_object_del(v, "emittedAt");
        char *s = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT);
        eo_buf_puts(&all, s);
        eo_buf_putc(&all, '\n');
        free(s);
        json_decref(v);
    }
    size_t len;
    char *text = eo_buf_steal(&all, &len);
    return text ? text : strdup("");
}

/* One logged tick: the records it took, the watermark they were classified against, the
 * tick's watermark and wall time (what the runner writes as a tick record). */
typedef struct {
    int first, last; /* records [first, last) of the run */
    int64_t start_wm, wm, wall;
} logged_t;

static void send_nth(fx_t *f, int k)
{
    char user[16];
    snprintf(user, sizeof user, "%s%d", k % 3 ? "f" : "p", k % 17);
    send_ev(f, 0, TENANT, "signup", user, T0 + k * 2 * SEC, 1);
}

/* Engine a runs ticks, checkpointing every 4th and logging every tick; b restores from the
 * changelog as compacted at the last checkpoint, replays the ticks logged after it with the
 * same records (outputs discarded), and from there on both must emit exactly the same. */
static void restore_continues_exactly(void **state)
{
    eo_engine_rule_t rules[3] = {base_rule(EO_WIN_HOPPING, 3 * MIN, MIN, EO_AGG_UNIQUE_USERS),
                                 base_rule(EO_WIN_TUMBLING, MIN, MIN, EO_AGG_COUNT),
                                 base_rule(EO_WIN_SESSION, 0, 0, EO_AGG_COUNT)};
    snprintf(rules[1].rule_id, sizeof rules[1].rule_id, "00000000-0000-4000-8000-0000000000cc");
    rules[1].def.cond = (eo_condition_t){.present = true, .op = EO_CMP_GE, .value = 5};
    rules[1].def.ngroup = 1;
    rules[1].def.group_by[0].root = EO_PATH_PROPERTIES;
    snprintf(rules[1].def.group_by[0].text, sizeof rules[1].def.group_by[0].text,
             "properties.plan");
    rules[1].def.group_by[0].nkeys = 1;
    rules[1].def.group_by[0].key_off[0] = strlen("properties.");
    rules[1].def.group_by[0].key_len[0] = strlen("plan");
    snprintf(rules[2].rule_id, sizeof rules[2].rule_id, "00000000-0000-4000-8000-0000000000dd");
    rules[2].def.gap_us = 5 * SEC;
    fx_t a, b;
    fx_init(&a, 1, rules, 3);
    changelog_t cl;
    eo_hmap_init(&cl.m);
    logged_t log[64];
    int nlog = 0, k = 0;
    for (int t = 0; t < 30; t++) { /* a first run: 10 records a tick */
        logged_t *l = &log[nlog++];
        l->start_wm = eo_engine_watermark(a.e);
        l->first = k;
        for (; k < l->first + 10; k++)
            send_nth(&a, k);
        l->last = k;
        l->wall = T0 + k * 2 * SEC - 30 * SEC;
        tick_wall(&a, l->wall);
        l->wm = eo_engine_watermark(a.e);
        if (t % 4 == 3) { /* a checkpoint: the log starts again after it */
            assert_int_equal(eo_engine_checkpoint(a.e), 0);
            keep_changelog(&cl, a.e);
            nlog = 0;
        }
        eo_engine_outputs_clear(a.e);
    }
    assert_true(nlog > 0); /* ticks after the last checkpoint, to replay */
    fx_init(&b, 1, rules, 3);
    size_t i = 0;
    eo_hmap_slot_t *s;
    while (eo_hmap_next(&cl.m, &i, &s)) {
        eo_buf_t *v = s->value;
        assert_int_equal(eo_engine_restore(b.e, s->key, s->len, v->data, v->len), 0);
    }
    b.mono = a.mono;
    for (int t = 0; t < nlog; t++) {
        eo_engine_set_watermark(b.e, log[t].start_wm);
        b.n = a.n - (k - log[t].first); /* the same messageIds */
        for (int j = log[t].first; j < log[t].last; j++)
            send_nth(&b, j);
        assert_int_equal(eo_engine_tick_replay(b.e, log[t].wm, log[t].wall), 0);
        eo_engine_outputs_clear(b.e);
    }
    assert_true(eo_engine_watermark(a.e) == eo_engine_watermark(b.e));
    b.n = a.n;
    for (; k < 400; k++) {
        send_nth(&a, k);
        send_nth(&b, k);
        if (k % 10 == 9) {
            tick_wall(&a, T0 + k * 2 * SEC - 30 * SEC);
            tick_wall(&b, T0 + k * 2 * SEC - 30 * SEC);
            char *ra = results(a.e), *rb = results(b.e);
            assert_string_equal(ra, rb);
            free(ra);
            free(rb);
            eo_engine_outputs_clear(a.e);
            eo_engine_outputs_clear(b.e);
        }
    }
    tick_wall(&a, T0 + 100 * MIN);
    tick_wall(&b, T0 + 100 * MIN);
    char *ra = results(a.e), *rb = results(b.e);
    assert_true(strlen(ra) > 0);
    assert_string_equal(ra, rb);
    free(ra);
    free(rb);
    /* both hold the same state: their checkpoints agree record by record */
    assert_int_equal(eo_engine_checkpoint(a.e), 0);
    assert_int_equal(eo_engine_checkpoint(b.e), 0);
    eo_hmap_done(&cl.m, free_buf);
    eo_engine_free(a.e);
    eo_engine_free(b.e);
}

static void session_windows(void **state)
{
    eo_engine_rule_t r = base_rule(EO_WIN_SESSION, 0, 0, EO_AGG_SUM);
    r.def.gap_us = 30 * SEC;
    set_property(&r, "amount");
    fx_t f;
    fx_init(&f, 1, &r, 1);
    send_ev(&f, 0, TENANT, "signup", "u", T0, 1);
    send_ev(&f, 0, TENANT, "signup", "u", T0 + 20 * SEC, 2);
    send_ev(&f, 0, TENANT, "signup", "u", T0 + 10 * SEC, 4);
    send_ev(&f, 0, TENANT, "signup", "u", T0 + 100 * SEC, 8); /* a second session */
    tick_wall(&f, T0 + 59 * SEC); /* the first ends at 50 s, grace 10 s: not yet */
    json_t *w[8];
    assert_int_equal(take(&f, EO_OUT_WINDOW, w, 8), 0);
    tick_wall(&f, T0 + 60 * SEC);
    size_t n = take(&f, EO_OUT_WINDOW, w, 8);
    assert_int_equal(n, 1);
    assert_start(w[0], T0);
    assert_true(json_number_value(json_object_get(w[0], "value")) == 7);
    assert_int_equal(json_integer_value(json_object_get(w[0], "count")), 3);
    drop_all(w, n);
    eo_engine_outputs_clear(f.e);
    /* 45 s is within 30 s of 20 s: a correction of the first session */
    send_ev(&f, 0, TENANT, "signup", "u", T0 + 45 * SEC, 16);
    tick_wall(&f, T0 + 61 * SEC);
    n = take(&f, EO_OUT_WINDOW, w, 8);
    assert_int_equal(n, 1);
    assert_true(json_number_value(json_object_get(w[0], "value")) == 23);
    assert_int_equal(json_integer_value(json_object_get(w[0], "revision")), 2);
    drop_all(w, n);
    eo_engine_outputs_clear(f.e);
    /* 72 s bridges [0, 45] and [100]: one session of 5 events, not final yet */
    send_ev(&f, 0, TENANT, "signup", "u", T0 + 72 * SEC, 32);
    tick_wall(&f, T0 + 139 * SEC);
    assert_int_equal(take(&f, EO_OUT_WINDOW, w, 8), 0);
    tick_wall(&f, T0 + 140 * SEC);
    n = take(&f, EO_OUT_WINDOW, w, 8);
    assert_int_equal(n, 1);
    assert_start(w[0], T0);
    assert_true(json_number_value(json_object_get(w[0], "value")) == 63);
    assert_int_equal(json_integer_value(json_object_get(w[0], "count")), 6);
    drop_all(w, n);
    eo_engine_free(f.e);
}

static double value_of(json_t *w)
{
    return json_number_value(json_object_get(w, "value"));
}

static void rolling_ewma_and_rate(void **state)
{
    eo_engine_rule_t rules[3] = {
        base_rule(EO_WIN_TUMBLING, MIN, MIN, EO_AGG_ROLLING_MEAN),
        base_rule(EO_WIN_TUMBLING, MIN, MIN, EO_AGG_EWMA),
        base_rule(EO_WIN_TUMBLING, 2 * MIN, 2 * MIN, EO_AGG_RATE_PER_MINUTE)};
    rules[0].def.buckets = 3;
    rules[1].def.span = 3; /* alpha 0.5 */
    snprintf(rules[1].rule_id, sizeof rules[1].rule_id, "00000000-0000-4000-8000-0000000000b1");
    snprintf(rules[2].rule_id, sizeof rules[2].rule_id, "00000000-0000-4000-8000-0000000000b2");
    fx_t f;
    fx_init(&f, 1, rules, 3);
    /* minute 0: 4 events; minute 1: none; minute 2: 8 events; then a sleep; minute 9: 2 */
    for (int i = 0; i < 4; i++)
        send_ev(&f, 0, TENANT, "signup", "u", T0 + i * SEC, 1);
    tick_wall(&f, T0 + 71 * SEC); /* minute 0 final; the group sleeps through minute 1 */
    eo_engine_outputs_clear(f.e);
    for (int i = 0; i < 8; i++)
        send_ev(&f, 0, TENANT, "signup", "u", T0 + 2 * MIN + i * SEC, 1);
    tick_wall(&f, T0 + 3 * MIN + 10 * SEC);
    eo_engine_outputs_clear(f.e);
    for (int i = 0; i < 2; i++)
        send_ev(&f, 0, TENANT, "signup", "u", T0 + 9 * MIN + i * SEC, 1);
    tick_wall(&f, T0 + 10 * MIN + 10 * SEC);
    json_t *w[16];
    size_t n = take(&f, EO_OUT_WINDOW, w, 16);
    for (size_t k = 0; k < n; k++) {
        const char *agg = json_string_value(json_object_get(w[k], "aggregate"));
        if (!strcmp(agg, "rolling_mean")) /* buckets 8, 0 x 5 (slept), 2: (0 + 0 + 2) / 3 */
            assert_true(fabs(value_of(w[k]) - 2.0 / 3) < 1e-12);
        else if (!strcmp(agg, "ewma")) /* 4, 0 -> 2, 8 -> 5, 6 x 0 -> 5/64, 2 -> 1 + 5/128 */
            assert_true(fabs(value_of(w[k]) - (1 + 5.0 / 128)) < 1e-12);
        else if (!strcmp(agg, "rate_per_minute")) { /* 8 in [2m, 4m), 2 in [8m, 10m) */
            char t8[EO_RFC3339_MAX];
            t8[eo_rfc3339_format(T0 + 8 * MIN, t8)] = '\0';
            assert_true(value_of(w[k]) == (strcmp(wstart(w[k]), t8) ? 4 : 1));
        }
    }
    assert_int_equal(n, 4);
    drop_all(w, n);
    eo_engine_free(f.e);
}

static void changes_are_throttled_then_final(void **state)
{
    eo_engine_rule_t r = base_rule(EO_WIN_TUMBLING, MIN, MIN, EO_AGG_COUNT);
    r.def.emit = EO_EMIT_CHANGES;
    fx_t f;
    fx_init(&f, 1, &r, 1);
    send_ev(&f, 0, TENANT, "signup", "u", T0 + SEC, 1);
    /* a partition is live, so the watermark follows it; the interval counts in wall time */
    int64_t wall = T0 + 2 * SEC;
    f.mono += SEC;
    assert_int_equal(eo_engine_tick(f.e, f.mono, wall), 0);
    json_t *w[8];
    size_t n = take(&f, EO_OUT_WINDOW, w, 8);
    assert_int_equal(n, 1);
    assert_false(json_is_true(json_object_get(w[0], "final")));
    assert_int_equal(json_integer_value(json_object_get(w[0], "revision")), 1);
    drop_all(w, n);
    eo_engine_outputs_clear(f.e);
    send_ev(&f, 0, TENANT, "signup", "u", T0 + 2 * SEC, 1);
    f.mono += 200000; /* 0.2 s: within the interval, held back */
    wall += 200000;
    assert_int_equal(eo_engine_tick(f.e, f.mono, wall), 0);
    assert_int_equal(take(&f, EO_OUT_WINDOW, w, 8), 0);
    f.mono += SEC; /* the held change goes out without a new event */
    wall += SEC;
    assert_int_equal(eo_engine_tick(f.e, f.mono, wall), 0);
    n = take(&f, EO_OUT_WINDOW, w, 8);
    assert_int_equal(n, 1);
    assert_int_equal(json_integer_value(json_object_get(w[0], "count")), 2);
    assert_int_equal(json_integer_value(json_object_get(w[0], "revision")), 2);
    drop_all(w, n);
    eo_engine_outputs_clear(f.e);
    f.mono += 2 * SEC; /* no change: nothing */
    wall += 2 * SEC;
    assert_int_equal(eo_engine_tick(f.e, f.mono, wall), 0);
    assert_int_equal(take(&f, EO_OUT_WINDOW, w, 8), 0);
    tick_wall(&f, T0 + 2 * MIN);
    n = take(&f, EO_OUT_WINDOW, w, 8);
    assert_int_equal(n, 1);
    assert_true(json_is_true(json_object_get(w[0], "final")));
    assert_int_equal(json_integer_value(json_object_get(w[0], "revision")), 3);
    drop_all(w, n);
    eo_engine_free(f.e);
}

static void weeks_start_on_monday(void **state)
{
    eo_engine_rule_t r = base_rule(EO_WIN_TUMBLING, 7 * 1440 * MIN, 7 * 1440 * MIN, EO_AGG_COUNT);
    fx_t f;
    fx_init(&f, 1, &r, 1);
    /* 2024-01-01 is a Monday; 2024-01-07 23:59 is in its week, 2024-01-08 00:00 in the next */
    send_ev(&f, 0, TENANT, "signup", "u", T0 + 6 * 1440 * MIN + 1439 * MIN, 1);
    send_ev(&f, 0, TENANT, "signup", "u", T0 + 7 * 1440 * MIN, 1);
    tick_wall(&f, T0 + 20 * 1440 * MIN);
    json_t *w[8];
    size_t n = take(&f, EO_OUT_WINDOW, w, 8);
    assert_int_equal(n, 2);
    assert_start(w[0], T0);
    assert_start(w[1], T0 + 7 * 1440 * MIN);
    drop_all(w, n);
    eo_engine_free(f.e);
}

/* A local day of Europe/Berlin when DST starts: 23 hours, from 23:00Z to 22:00Z. */
static void zoned_days_follow_dst(void **state)
{
    FILE *fp = fopen("/usr/share/zoneinfo/Europe/Berlin", "rb");
    assert_non_null(fp);
    char buf[65536];
    size_t len = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    eo_tz_t *tz = NULL;
    char err[128];
    assert_int_equal(eo_tz_parse(buf, len, &tz, err, sizeof err), 0);
    eo_engine_rule_t r = base_rule(EO_WIN_TUMBLING, 1440 * MIN, 1440 * MIN, EO_AGG_COUNT);
    snprintf(r.def.zone, sizeof r.def.zone, "Europe/Berlin");
    r.tz = tz;
    fx_t f;
    fx_init(&f, 1, &r, 1);
    int64_t day = INT64_C(1711839600) * 1000000; /* 2024-03-30T23:00:00Z = 03-31 00:00 CET */
    send_ev(&f, 0, TENANT, "signup", "u", day - SEC, 1);
    send_ev(&f, 0, TENANT, "signup", "u", day, 1);
    send_ev(&f, 0, TENANT, "signup", "u", day + 23 * 60 * MIN - SEC, 1);
    send_ev(&f, 0, TENANT, "signup", "u", day + 23 * 60 * MIN, 1); /* 04-01 00:00 CEST */
    tick_wall(&f, day + 3 * 1440 * MIN);
    json_t *w[8];
    size_t n = take(&f, EO_OUT_WINDOW, w, 8);
    assert_int_equal(n, 3);
    assert_start(w[1], day);
    char end[EO_RFC3339_MAX];
    end[eo_rfc3339_format(day + 23 * 60 * MIN, end)] = '\0';
    assert_string_equal(json_string_value(json_object_get(json_object_get(w[1], "window"), "end")),
                        end);
    assert_int_equal(json_integer_value(json_object_get(w[1], "count")), 2);
    drop_all(w, n);
    eo_engine_free(f.e);
    eo_tz_free(tz);
}

/* A new rule set keeps the state of the rules that stay, drops (and tombstones at the next
 * checkpoint) that of the rules gone, and starts a new version from nothing. */
static void rule_changes_keep_and_drop_state(void **state)
{
    eo_engine_rule_t a = base_rule(EO_WIN_TUMBLING, MIN, MIN, EO_AGG_COUNT);
    eo_engine_rule_t b = a;
    snprintf(b.rule_id, sizeof b.rule_id, "00000000-0000-4000-8000-0000000000b9");
    eo_engine_rule_t both[2] = {a, b};
    fx_t f;
    fx_init(&f, 1, both, 2);
    send_ev(&f, 0, TENANT, "signup", "u1", T0 + SEC, 1);
    send_ev(&f, 0, TENANT, "signup", "u2", T0 + 2 * SEC, 1);
    assert_int_equal(eo_engine_checkpoint(f.e), 0); /* both groups in the changelog */
    eo_engine_outputs_clear(f.e);
    eo_engine_rule_t a2 = a;
    a2.version = 2;
    eo_engine_rule_t next[2] = {a, a2}; /* a stays, b goes, a's version 2 is new */
    assert_int_equal(eo_engine_set_rules(f.e, next, 2), 0);
    send_ev(&f, 0, TENANT, "signup", "u3", T0 + 3 * SEC, 1);
    tick_wall(&f, T0 + 2 * MIN);
    json_t *w[8];
    size_t n = take(&f, EO_OUT_WINDOW, w, 8);
    assert_int_equal(n, 2);
    int64_t counts[3] = {0};
    for (size_t k = 0; k < n; k++) {
        json_t *rule = json_object_get(w[k], "rule");
        assert_string_equal(json_string_value(json_object_get(rule, "id")), a.rule_id);
        counts[json_integer_value(json_object_get(rule, "version"))] =
            json_integer_value(json_object_get(w[k], "count"));
    }
    assert_int_equal(counts[1], 3); /* kept: two before the change, one after */
    assert_int_equal(counts[2], 1); /* new version: only what came after */
    drop_all(w, n);
    eo_engine_outputs_clear(f.e);
    assert_int_equal(eo_engine_checkpoint(f.e), 0);
    size_t no, tomb_b = 0;
    const eo_out_t *o = eo_engine_outputs(f.e, &no);
    for (size_t k = 0; k < no; k++)
        if (o[k].kind == EO_OUT_CHANGELOG && o[k].tombstone && strstr(o[k].key.data, b.rule_id))
            tomb_b++;
    assert_int_equal(tomb_b, 1); /* b's group */
    eo_engine_free(f.e);
}

int main(void)
{
    eo_event_limits_default(&lim);
    lim.max_past_us = INT64_C(100) * 365 * 86400 * 1000000;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tumbling_counts_and_closes),
        cmocka_unit_test(late_within_grace_horizon_and_beyond),
        cmocka_unit_test(hopping_matches_brute_force),
        cmocka_unit_test(hopping_correction_skips_windows_past_their_horizon),
        cmocka_unit_test(unique_users_union_panes),
        cmocka_unit_test(summaries_fire_and_resolve_once),
        cmocka_unit_test(idle_partition_does_not_hold_the_watermark),
        cmocka_unit_test(groups_overflow_is_explicit),
        cmocka_unit_test(sliding_n_within_t),
        cmocka_unit_test(restore_continues_exactly),
        cmocka_unit_test(session_windows),
        cmocka_unit_test(rolling_ewma_and_rate),
        cmocka_unit_test(changes_are_throttled_then_final),
        cmocka_unit_test(weeks_start_on_monday),
        cmocka_unit_test(zoned_days_follow_dst),
        cmocka_unit_test(rule_changes_keep_and_drop_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
