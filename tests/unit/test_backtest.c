/* The rule backtest's simulation (src/analytics/backtest.c) without PostgreSQL: generated
 * stored events through it, its answer against a brute-force recomputation over the same events
 * (tumbling count with a condition, grouped; hopping mean; unique users; sessions; sliding
 * "N within T" summaries), the lead-in (windows and sessions that began before from are left
 * out, whole windows from from on), emit "changes" (the latest revision of each window), a
 * disabled rule, closing past many empty windows, both limits (events: reached is the first event
 * not fed; results: those ending before the first left out) and the refusals. backtest.c and the
 * engine are pure: both are included here (as test_engine does). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../src/analytics/engine.c"

#include "../../src/analytics/backtest.c"

#define TENANT "00000000-0000-4000-8000-000000000001"
#define OTHER "00000000-0000-4000-8000-000000000002"
#define RULE "00000000-0000-4000-8000-0000000000aa"
#define T0 (INT64_C(1704067200) * 1000000) /* 2024-01-01T00:00:00Z */
#define SEC INT64_C(1000000)
#define MIN (60 * SEC)
#define MAXEV 4000

typedef struct {
    int64_t t;
    const char *type;
    char user[16];
    double amount;
    bool has_amount;
    const char *plan;
} ev_t;

static ev_t evs[MAXEV];
static size_t nev;
static uint64_t rng = 88172645463325252ULL;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int ev_cmp(const void *a, const void *b)
{
    const ev_t *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t;
}

/* n events of type "signup" (every fifth "login") at random times in [T0, T0 + span), sorted;
 * users u0..u6, an amount (absent on every seventh), plans pro/free. */
static void gen(size_t n, int64_t span)
{
    nev = n;
    for (size_t i = 0; i < n; i++) {
        ev_t *e = &evs[i];
        e->t = T0 + (int64_t)(next_rand() % (uint64_t)span);
        e->type = i % 5 == 4 ? "login" : "signup";
        snprintf(e->user, sizeof e->user, "u%d", (int)(next_rand() % 7));
        e->amount = (double)(next_rand() % 1000) / 8.0;
        e->has_amount = i % 7 != 3;
        e->plan = next_rand() % 3 ? "pro" : "free";
    }
    qsort(evs, nev, sizeof *evs, ev_cmp);
}

static eo_engine_rule_t make_rule(eo_win_type_t win, int64_t size, int64_t slide, eo_agg_fn_t fn)
{
    eo_engine_rule_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.tenant_id, sizeof r.tenant_id, "%s", TENANT);
    snprintf(r.rule_id, sizeof r.rule_id, "%s", RULE);
    r.version = 3;
    snprintf(r.def.name, sizeof r.def.name, "backtest rule");
    snprintf(r.def.event_type, sizeof r.def.event_type, "signup");
    snprintf(r.def.zone, sizeof r.def.zone, "UTC");
    r.def.win = win;
    r.def.size_us = win == EO_WIN_SESSION ? 0 : size;
    r.def.slide_us = win == EO_WIN_SESSION || win == EO_WIN_SLIDING ? 0 : slide;
    r.def.gap_us = win == EO_WIN_SESSION ? size : 0;
    r.def.fn = fn;
    r.def.emit = EO_EMIT_FINAL;
    r.def.grace_us = 10 * SEC;
    r.def.horizon_us = 10 * MIN;
    r.def.max_groups = 1000;
    r.def.buckets = 1;
    r.def.enabled = true;
    return r;
}

static void set_path(eo_path_t *p, const char *key)
{
    memset(p, 0, sizeof *p);
    p->root = EO_PATH_PROPERTIES;
    snprintf(p->text, sizeof p->text, "properties.%s", key);
    p->nkeys = 1;
    p->key_off[0] = strlen("properties.");
    p->key_len[0] = strlen(key);
}

static void set_condition(eo_engine_rule_t *r, eo_cmp_t op, double value)
{
    r->def.cond.present = true;
    r->def.cond.op = op;
    r->def.cond.value = value;
}

static eo_backtest_options_t options(int64_t from, int64_t to)
{
    return (eo_backtest_options_t){.from_us = from,
                                   .to_us = to,
                                   .max_events = 1000000,
                                   .max_results = 100000,
                                   .max_lead_us = 31 * 24 * 60 * MIN,
                                   .tick_us = 200000,
                                   .changes_interval_us = SEC,
                                   .max_state_bytes_per_tenant = 0};
}

/* Feeds the generated events in the backtest's read range and of its type (as the SQL
 * selects them), closes, and returns the answer parsed. */
static json_t *run(eo_backtest_t *bt, eo_backtest_result_t *res)
{
    int64_t from, to;
    eo_backtest_read_range(bt, &from, &to);
    const char *type = eo_backtest_event_type(bt);
    for (size_t i = 0; i < nev; i++) {
        const ev_t *e = &evs[i];
        if (e->t < from || e->t >= to || (strcmp(type, "*") && strcmp(type, e->type)))
            continue;
        char props[128], mid[32];
        if (e->has_amount)
            snprintf(props, sizeof props, "{\"amount\": %.17g, \"plan\": \"%s\"}", e->amount,
                     e->plan);
        else
            snprintf(props, sizeof props, "{\"plan\": \"%s\"}", e->plan);
        snprintf(mid, sizeof mid, "m%05zu", i);
        eo_stored_event_t row = {.tenant_id = TENANT,
                                 .message_id = mid,
                                 .event_type = e->type,
                                 .user_id = e->user,
                                 .occurred_at_us = e->t,
                                 .received_at_us = e->t,
                                 .sent_at_us = EO_NO_TIME,
                                 .properties = props};
        eo_record_t rec;
        eo_event_error_t err;
        assert_int_equal(eo_record_from_stored(&row, &rec, &err), 0);
        int r = eo_backtest_event(bt, &rec);
        eo_record_done(&rec);
        assert_true(r == 0 || r == 1);
        if (r == 1)
            break;
    }
    int r, ticks = 0;
    while ((r = eo_backtest_close(bt)) == 1)
        ticks++;
    assert_int_equal(r, 0);
    assert_true(ticks < EO_BACKTEST_MAX_CLOSE_TICKS);
    eo_buf_t out;
    eo_buf_init(&out, 64 << 20);
    assert_int_equal(eo_backtest_write(bt, "{\"id\":\"" RULE "\",\"version\":3}", &out, res), 0);
    json_error_t je;
    json_t *ans = json_loadb(out.data, out.len, 0, &je);
    if (!ans)
        fail_msg("the answer is not JSON: %s", je.text);
    eo_buf_done(&out);
    return ans;
}

static int64_t time_of(json_t *item, const char *which)
{
    json_t *s = json_object_get(json_object_get(item, "window"), which);
    int64_t us;
    assert_true(json_is_string(s));
    assert_int_equal(eo_rfc3339_parse(json_string_value(s), json_string_length(s), &us), 0);
    return us;
}

static json_t *list(json_t *ans, const char *name)
{
    json_t *l = json_object_get(ans, name);
    assert_true(json_is_array(l));
    return l;
}

static bool in(const ev_t *e, const char *type, int64_t lo, int64_t hi)
{
    return !strcmp(e->type, type) && e->t >= lo && e->t < hi;
}

/* The window starts k * slide within [from, to) whose window [s, s + size) lies within. */
static size_t starts_in(int64_t from, int64_t to, int64_t size, int64_t slide, int64_t *out,
                        size_t cap)
{
    size_t n = 0;
    int64_t s = from % slide ? from - from % slide + slide : from;
    for (; s + size <= to && n < cap; s += slide)
        out[n++] = s;
    return n;
}

/* ---- results against brute force ---- */

/* Tumbling count by group with ">= 3": every window result and every summary. */
static void tumbling_count_grouped(void **state)
{
    (void)state;
    gen(1500, 60 * MIN);
    eo_engine_rule_t r = make_rule(EO_WIN_TUMBLING, MIN, MIN, EO_AGG_COUNT);
    r.def.ngroup = 1;
    set_path(&r.def.group_by[0], "plan");
    set_condition(&r, EO_CMP_GE, 16);
    int64_t from = T0 + 10 * MIN + 30 * SEC, to = T0 + 50 * MIN + 20 * SEC;
    eo_backtest_options_t o = options(from, to);
    eo_backtest_t *bt;
    assert_int_equal(eo_backtest_new(&o, &r, &bt), 0);
    int64_t rf, rt;
    eo_backtest_read_range(bt, &rf, &rt);
    assert_true(rf == from - MIN && rt == to);
    eo_backtest_result_t res;
    json_t *ans = run(bt, &res);
    static const char *const plans[] = {"free", "pro"};
    int64_t starts[64];
    size_t ns = starts_in(from, to, MIN, MIN, starts, 64);
    assert_int_equal(ns, 39); /* 10:30 -> 11:00 .. 49:00 -> 50:00 */
    json_t *wins = list(ans, "windows"), *sums = list(ans, "summaries");
    size_t k = 0, nsum = 0;
    for (size_t i = 0; i < ns; i++) {
        for (size_t p = 0; p < 2; p++) { /* sorted by end, start, group key: ["free"] < ["pro"] */
            int64_t c = 0;
            for (size_t j = 0; j < nev; j++)
                c += in(&evs[j], "signup", starts[i], starts[i] + MIN) &&
                     !strcmp(evs[j].plan, plans[p]);
            if (!c)
                continue;
            json_t *w = json_array_get(wins, k++);
            assert_non_null(w);
            assert_true(time_of(w, "start") == starts[i]);
            assert_int_equal(json_integer_value(json_object_get(w, "count")), c);
            assert_int_equal(json_integer_value(json_object_get(w, "value")), c);
            assert_true(json_is_true(json_object_get(w, "final")));
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(w, "group"), "properties.plan")),
                plans[p]);
        }
    }
    assert_int_equal(json_array_size(wins), k);
    /* summaries: the state machine per plan over every window since the lead-in began */
    for (size_t p = 0; p < 2; p++) {
        bool firing = false;
        for (int64_t s = rf - rf % MIN; s + MIN <= to; s += MIN) {
            int64_t c = 0;
            for (size_t j = 0; j < nev; j++)
                c += in(&evs[j], "signup", s, s + MIN) && !strcmp(evs[j].plan, plans[p]) &&
                     evs[j].t >= rf;
            bool holds = c >= 16;
            if (holds == firing)
                continue;
            firing = holds;
            if (s < from)
                continue;
            bool found = false;
            for (size_t i = 0; i < json_array_size(sums); i++) {
                json_t *x = json_array_get(sums, i);
                found |= time_of(x, "start") == s &&
                         !strcmp(json_string_value(json_object_get(x, "status")),
                                 holds ? "firing" : "resolved") &&
                         !strcmp(json_string_value(json_object_get(json_object_get(x, "group"),
                                                                   "properties.plan")),
                                 plans[p]);
            }
            if (!found)
                fail_msg("no %s summary of plan %s at window %lld", holds ? "firing" : "resolved",
                         plans[p], (long long)((s - T0) / MIN));
            nsum++;
        }
    }
    assert_true(nsum > 2);
    assert_int_equal(json_array_size(sums), nsum);
    assert_false(json_is_true(json_object_get(ans, "truncated")));
    assert_int_equal(json_integer_value(json_object_get(ans, "late")), 0);
    assert_string_equal(json_string_value(json_object_get(ans, "reached")),
                        json_string_value(json_object_get(ans, "to")));
    assert_string_equal(json_string_value(json_object_get(ans, "from")),
                        "2024-01-01T00:10:30.000000Z");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(ans, "rule"), "version")),
                     3);
    int64_t fed = 0;
    for (size_t j = 0; j < nev; j++)
        fed += in(&evs[j], "signup", rf, rt);
    assert_true(res.events == fed && json_integer_value(json_object_get(ans, "events")) == fed);
    assert_true(res.windows == (int64_t)k && !res.truncated && res.reached_us == to);
    json_decref(ans);
    eo_backtest_free(bt);
}

/* Hopping 3 min / 1 min mean of properties.amount: Σsum / Σcount of the events that have it. */
static void hopping_mean(void **state)
{
    (void)state;
    gen(1200, 40 * MIN);
    eo_engine_rule_t r = make_rule(EO_WIN_HOPPING, 3 * MIN, MIN, EO_AGG_MEAN);
    r.def.has_property = true;
    set_path(&r.def.property, "amount");
    int64_t from = T0 + 5 * MIN, to = T0 + 35 * MIN;
    eo_backtest_options_t o = options(from, to);
    eo_backtest_t *bt;
    assert_int_equal(eo_backtest_new(&o, &r, &bt), 0);
    json_t *ans = run(bt, NULL);
    json_t *wins = list(ans, "windows");
    int64_t starts[64];
    size_t ns = starts_in(from, to, 3 * MIN, MIN, starts, 64);
    assert_int_equal(ns, 28);
    assert_int_equal(json_array_size(wins), ns);
    for (size_t i = 0; i < ns; i++) {
        json_t *w = json_array_get(wins, i);
        double sum = 0;
        int64_t c = 0, with = 0;
        for (size_t j = 0; j < nev; j++)
            if (in(&evs[j], "signup", starts[i], starts[i] + 3 * MIN)) {
                c++;
                if (evs[j].has_amount) {
                    with++;
                    sum += evs[j].amount;
                }
            }
        assert_true(time_of(w, "start") == starts[i]);
        assert_true(time_of(w, "end") == starts[i] + 3 * MIN);
        assert_int_equal(json_integer_value(json_object_get(w, "count")), c);
        double v = json_number_value(json_object_get(w, "value"));
        if (fabs(v - sum / (double)with) > 1e-9 * fabs(v))
            fail_msg("window %zu: mean %.17g, expected %.17g", i, v, sum / (double)with);
    }
    json_decref(ans);
    eo_backtest_free(bt);
}

/* Tumbling 5 min unique users over every type ("*"). */
static void unique_users_all_types(void **state)
{
    (void)state;
    gen(600, 30 * MIN);
    eo_engine_rule_t r = make_rule(EO_WIN_TUMBLING, 5 * MIN, 5 * MIN, EO_AGG_UNIQUE_USERS);
    snprintf(r.def.event_type, sizeof r.def.event_type, "*");
    int64_t from = T0, to = T0 + 30 * MIN;
    eo_backtest_options_t o = options(from, to);
    eo_backtest_t *bt;
    assert_int_equal(eo_backtest_new(&o, &r, &bt), 0);
    json_t *ans = run(bt, NULL);
    json_t *wins = list(ans, "windows");
    assert_int_equal(json_array_size(wins), 6);
    for (size_t i = 0; i < 6; i++) {
        int64_t s = T0 + (int64_t)i * 5 * MIN;
        bool seen[7] = {false};
        int64_t users = 0, c = 0;
        for (size_t j = 0; j < nev; j++)
            if (evs[j].t >= s && evs[j].t < s + 5 * MIN) {
                c++;
                int u = evs[j].user[1] - '0';
                users += !seen[u];
                seen[u] = true;
            }
        json_t *w = json_array_get(wins, i);
        assert_true(time_of(w, "start") == s);
        assert_int_equal(json_integer_value(json_object_get(w, "value")), users);
        assert_int_equal(json_integer_value(json_object_get(w, "count")), c);
    }
    json_decref(ans);
    eo_backtest_free(bt);
}

/* Sessions with a 2 min gap, sum of amount: those starting at or after from and ending by to;
 * a session that began in the lead-in is left out (not cut at from). */
static void sessions(void **state)
{
    (void)state;
    gen(60, 120 * MIN);
    eo_engine_rule_t r = make_rule(EO_WIN_SESSION, 2 * MIN, 0, EO_AGG_SUM);
    r.def.has_property = true;
    set_path(&r.def.property, "amount");
    int64_t from = T0 + 20 * MIN, to = T0 + 100 * MIN;
    eo_backtest_options_t o = options(from, to);
    eo_backtest_t *bt;
    assert_int_equal(eo_backtest_new(&o, &r, &bt), 0);
    int64_t rf, rt;
    eo_backtest_read_range(bt, &rf, &rt);
    assert_true(rf == from - 2 * MIN);
    json_t *ans = run(bt, NULL);
    json_t *wins = list(ans, "windows");
    size_t k = 0;
    int64_t first = INT64_MIN, last = 0, c = 0;
    double sum = 0;
    for (size_t j = 0; j <= nev; j++) {
        bool more = j < nev;
        if (more && !in(&evs[j], "signup", rf, rt))
            continue;
        if (first != INT64_MIN && (!more || evs[j].t >= last + 2 * MIN)) {
            if (first >= from && last + 2 * MIN <= to) {
                json_t *w = json_array_get(wins, k++);
                assert_non_null(w);
                assert_true(time_of(w, "start") == first);
                assert_true(time_of(w, "end") == last + 2 * MIN);
                assert_int_equal(json_integer_value(json_object_get(w, "count")), c);
                assert_true(fabs(json_number_value(json_object_get(w, "value")) - sum) < 1e-6);
            }
            first = INT64_MIN;
        }
        if (!more)
            break;
        if (first == INT64_MIN) {
            first = evs[j].t;
            c = 0;
            sum = 0;
        }
        last = evs[j].t;
        c++;
        sum += evs[j].has_amount ? evs[j].amount : 0;
    }
    assert_true(k > 3);
    assert_int_equal(json_array_size(wins), k);
    json_decref(ans);
    eo_backtest_free(bt);
}

/* Sliding "N within 1 min" >= 4: summaries at every point where the count crosses. */
static void sliding_summaries(void **state)
{
    (void)state;
    gen(400, 60 * MIN);
    eo_engine_rule_t r = make_rule(EO_WIN_SLIDING, MIN, 0, EO_AGG_COUNT);
    set_condition(&r, EO_CMP_GE, 4);
    r.def.grace_us = 0;
    r.def.horizon_us = 0;
    int64_t from = T0 + 10 * MIN, to = T0 + 50 * MIN;
    eo_backtest_options_t o = options(from, to);
    eo_backtest_t *bt;
    assert_int_equal(eo_backtest_new(&o, &r, &bt), 0);
    int64_t rf, rt;
    eo_backtest_read_range(bt, &rf, &rt);
    json_t *ans = run(bt, NULL);
    json_t *sums = list(ans, "summaries");
    assert_int_equal(json_array_size(list(ans, "windows")), 0); /* final mode: none */
    /* the points: every event time and every time an event leaves, in order */
    static int64_t pts[2 * MAXEV];
    size_t np = 0;
    for (size_t j = 0; j < nev; j++)
        if (in(&evs[j], "signup", rf, rt)) {
            pts[np++] = evs[j].t;
            pts[np++] = evs[j].t + MIN;
        }
    qsort(pts, np, sizeof *pts, int64_cmp);
    bool firing = false;
    size_t k = 0;
    for (size_t i = 0; i < np; i++) {
        if (i && pts[i] == pts[i - 1])
            continue;
        int64_t x = pts[i], c = 0;
        for (size_t j = 0; j < nev; j++)
            c += in(&evs[j], "signup", rf, rt) && evs[j].t > x - MIN && evs[j].t <= x;
        bool holds = c >= 4;
        if (holds == firing)
            continue;
        firing = holds;
        if (x - MIN < from || x > to)
            continue;
        json_t *s = json_array_get(sums, k++);
        assert_non_null(s);
        assert_true(time_of(s, "end") == x);
        assert_true(time_of(s, "start") == x - MIN);
        assert_string_equal(json_string_value(json_object_get(s, "status")),
                            holds ? "firing" : "resolved");
        assert_int_equal(json_integer_value(json_object_get(s, "value")), c);
    }
    assert_true(k > 2);
    assert_int_equal(json_array_size(sums), k);
    json_decref(ans);
    eo_backtest_free(bt);
}

/* ---- emission, the rule's state, the lead-in ---- */

/* emit "changes": updates while open, but the answer holds the latest (final) revision of each
 * window once. A disabled rule is backtested all the same. */
static void changes_latest_revision_and_disabled(void **state)
{
    (void)state;
    gen(800, 20 * MIN);
    eo_engine_rule_t r = make_rule(EO_WIN_TUMBLING, 5 * MIN, 5 * MIN, EO_AGG_COUNT);
    r.def.emit = EO_EMIT_CHANGES;
    r.def.enabled = false;
    int64_t from = T0, to = T0 + 20 * MIN;
    eo_backtest_options_t o = options(from, to);
    eo_backtest_t *bt;
    assert_int_equal(eo_backtest_new(&o, &r, &bt), 0);
    json_t *ans = run(bt, NULL);
    json_t *wins = list(ans, "windows");
    assert_int_equal(json_array_size(wins), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *w = json_array_get(wins, i);
        int64_t s = T0 + (int64_t)i * 5 * MIN, c = 0;
        for (size_t j = 0; j < nev; j++)
            c += in(&evs[j], "signup", s, s + 5 * MIN);
        assert_true(time_of(w, "start") == s);
        assert_int_equal(json_integer_value(json_object_get(w, "count")), c);
        assert_true(json_is_true(json_object_get(w, "final")));
        assert_true(json_integer_value(json_object_get(w, "revision")) > 1); /* after updates */
    }
    json_decref(ans);
    eo_backtest_free(bt);
}

/* The lead-in holds the condition's longest duration (capped): a rule pending for 3 windows
 * fires at the right window although from cuts the pending time. */
static void lead_in_condition(void **state)
{
    (void)state;
    nev = 0;
    for (int m = 0; m < 10; m++) /* 5 events a minute for 10 minutes */
        for (int k = 0; k < 5; k++) {
            ev_t *e = &evs[nev++];
            memset(e, 0, sizeof *e);
            e->t = T0 + m * MIN + k * 10 * SEC;
            e->type = "signup";
            snprintf(e->user, sizeof e->user, "u1");
            e->plan = "pro";
        }
    eo_engine_rule_t r = make_rule(EO_WIN_TUMBLING, MIN, MIN, EO_AGG_COUNT);
    set_condition(&r, EO_CMP_GE, 5);
    r.def.cond.for_us = 3 * MIN; /* holds from the end of minute 0: fires at minute 3's end */
    int64_t from = T0 + 2 * MIN, to = T0 + 10 * MIN;
    eo_backtest_options_t o = options(from, to);
    eo_backtest_t *bt;
    assert_int_equal(eo_backtest_new(&o, &r, &bt), 0);
    int64_t rf, rt;
    eo_backtest_read_range(bt, &rf, &rt);
    assert_true(rf == T0 - 2 * MIN); /* the size and for */
    json_t *ans = run(bt, NULL);
    json_t *sums = list(ans, "summaries");
    assert_int_equal(json_array_size(sums), 1);
    json_t *s = json_array_get(sums, 0);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "firing");
    assert_true(time_of(s, "end") == T0 + 4 * MIN);
    json_decref(ans);
    eo_backtest_free(bt);
    /* the condition's part is capped by max_lead_us */
    o.max_lead_us = MIN;
    assert_int_equal(eo_backtest_new(&o, &r, &bt), 0);
    eo_backtest_read_range(bt, &rf, &rt);
    assert_true(rf == from - 2 * MIN);
    eo_backtest_free(bt);
}

/* A "< 1" condition steps every empty window: six hours of 1 s windows are far more than the
 * engine steps in one tick, and closing ticks until nothing changes reaches the last. */
static void close_steps_empty_windows(void **state)
{
    (void)state;
    nev = 0;
    static const int64_t at[] = {0, 6 * 60 * MIN - 10 * SEC};
    for (size_t i = 0; i < 2; i++) {
        ev_t *e = &evs[nev++];
        memset(e, 0, sizeof *e);
        e->t = T0 + at[i];
        e->type = "signup";
        snprintf(e->user, sizeof e->user, "u1");
        e->plan = "pro";
    }
    eo_engine_rule_t r = make_rule(EO_WIN_TUMBLING, SEC, SEC, EO_AGG_COUNT);
    set_condition(&r, EO_CMP_LT, 1);
    eo_backtest_options_t o = options(T0, T0 + 6 * 60 * MIN);
    eo_backtest_t *bt;
    assert_int_equal(eo_backtest_new(&o, &r, &bt), 0);
    json_t *ans = run(bt, NULL);
    json_t *sums = list(ans, "summaries");
    assert_int_equal(json_array_size(sums), 3);
    static const struct {
        const char *status;
        int64_t start;
    } want[] = {{"firing", T0 + SEC},
                {"resolved", T0 + 6 * 60 * MIN - 10 * SEC},
                {"firing", T0 + 6 * 60 * MIN - 9 * SEC}};
    for (size_t i = 0; i < 3; i++) {
        json_t *x = json_array_get(sums, i);
        assert_string_equal(json_string_value(json_object_get(x, "status")), want[i].status);
        assert_true(time_of(x, "start") == want[i].start);
    }
    assert_int_equal(json_array_size(list(ans, "windows")), 2);
    json_decref(ans);
    eo_backtest_free(bt);
}

/* ---- limits ---- */

/* max_events: stops before the first event past it; reached is that event's time and the
 * windows ending by then are complete. */
static void truncated_by_events(void **state)
{
    (void)state;
    gen(900, 30 * MIN);
    eo_engine_rule_t r = make_rule(EO_WIN_TUMBLING, MIN, MIN, EO_AGG_COUNT);
    int64_t from = T0, to = T0 + 30 * MIN;
    eo_backtest_options_t o = options(from, to);
    o.max_events = 300;
    eo_backtest_t *bt;
    assert_int_equal(eo_backtest_new(&o, &r, &bt), 0);
    eo_backtest_result_t res;
    json_t *ans = run(bt, &res);
    size_t seen = 0, j = 0;
    for (; j < nev && seen < 300; j++)
        seen += in(&evs[j], "signup", from, to);
    while (j < nev && !in(&evs[j], "signup", from, to))
        j++;
    int64_t cut = evs[j].t; /* the first signup not fed */
    assert_true(json_is_true(json_object_get(ans, "truncated")));
    assert_true(res.truncated && res.events == 300 && res.reached_us == cut);
    json_t *wins = list(ans, "windows");
    size_t k = 0;
    for (int64_t s = T0; s + MIN <= cut; s += MIN) {
        int64_t c = 0;
        for (size_t i = 0; i < nev; i++)
            c += in(&evs[i], "signup", s, s + MIN);
        if (!c)
            continue;
        json_t *w = json_array_get(wins, k++);
        assert_non_null(w);
        assert_true(time_of(w, "start") == s);
        assert_int_equal(json_integer_value(json_object_get(w, "count")), c);
    }
    assert_int_equal(json_array_size(wins), k);
    char want[EO_RFC3339_MAX];
    want[eo_rfc3339_format(cut, want)] = '\0';
    assert_string_equal(json_string_value(json_object_get(ans, "reached")), want);
    json_decref(ans);
    eo_backtest_free(bt);
}

/* max_results: at most that many, those ending before the first left out; reached is its end.
 */
static void truncated_by_results(void **state)
{
    (void)state;
    gen(3000, 30 * MIN); /* about 2400 signups: a tick after 1000 finds the results full */
    eo_engine_rule_t r = make_rule(EO_WIN_TUMBLING, MIN, MIN, EO_AGG_COUNT);
    int64_t from = T0, to = T0 + 30 * MIN;
    eo_backtest_options_t o = options(from, to);
    o.max_results = 7;
    eo_backtest_t *bt;
    assert_int_equal(eo_backtest_new(&o, &r, &bt), 0);
    eo_backtest_result_t res;
    json_t *ans = run(bt, &res);
    json_t *wins = list(ans, "windows");
    assert_int_equal(json_array_size(wins), 7); /* one window a minute, all with events */
    assert_true(res.truncated && res.reached_us == T0 + 8 * MIN);
    assert_true(time_of(json_array_get(wins, 6), "end") == T0 + 7 * MIN);
    assert_true(res.events == EO_BACKTEST_TICK_EVENTS); /* it stopped reading early */
    json_decref(ans);
    eo_backtest_free(bt);
}

static void refusals(void **state)
{
    (void)state;
    eo_engine_rule_t r = make_rule(EO_WIN_TUMBLING, MIN, MIN, EO_AGG_COUNT);
    eo_backtest_options_t o = options(T0, T0);
    eo_backtest_t *bt = (eo_backtest_t *)1;
    assert_int_equal(eo_backtest_new(&o, &r, &bt), EO_EINVAL); /* from == to */
    assert_null(bt);
    o = options(T0, T0 + MIN);
    o.max_results = 0;
    assert_int_equal(eo_backtest_new(&o, &r, &bt), EO_EINVAL);
    o = options(T0, T0 + 10 * MIN);
    assert_int_equal(eo_backtest_new(&o, &r, &bt), 0);
    static const struct {
        const char *tenant;
        int64_t t;
        int want;
    } rows[] = {
        {TENANT, T0 + MIN, 0},              /* in range */
        {TENANT, T0 + MIN, 0},              /* the same time again */
        {TENANT, T0 + 30 * SEC, EO_EINVAL}, /* out of order */
        {OTHER, T0 + 2 * MIN, EO_EINVAL},   /* another tenant */
        {TENANT, T0 + 10 * MIN, EO_EINVAL}, /* at to */
        {TENANT, T0 - 2 * MIN, EO_EINVAL},  /* before the lead-in */
        {TENANT, T0 + 2 * MIN, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        eo_stored_event_t row = {.tenant_id = rows[i].tenant,
                                 .message_id = "m",
                                 .event_type = "signup",
                                 .user_id = "u",
                                 .occurred_at_us = rows[i].t,
                                 .received_at_us = rows[i].t,
                                 .sent_at_us = EO_NO_TIME};
        eo_record_t rec;
        eo_event_error_t err;
        assert_int_equal(eo_record_from_stored(&row, &rec, &err), 0);
        int r2 = eo_backtest_event(bt, &rec);
        eo_record_done(&rec);
        if (r2 != rows[i].want)
            fail_msg("row %zu: %d, expected %d", i, r2, rows[i].want);
    }
    while (eo_backtest_close(bt) == 1)
        ;
    eo_buf_t out;
    eo_buf_init(&out, 1 << 20);
    eo_backtest_result_t res;
    assert_int_equal(eo_backtest_write(bt, "{}", &out, &res), 0);
    assert_true(res.events == 3 && res.windows == 2 && !res.truncated);
    eo_buf_done(&out);
    eo_backtest_free(bt);
    eo_backtest_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tumbling_count_grouped),
        cmocka_unit_test(hopping_mean),
        cmocka_unit_test(unique_users_all_types),
        cmocka_unit_test(sessions),
        cmocka_unit_test(sliding_summaries),
        cmocka_unit_test(changes_latest_revision_and_disabled),
        cmocka_unit_test(lead_in_condition),
        cmocka_unit_test(close_steps_empty_windows),
        cmocka_unit_test(truncated_by_events),
        cmocka_unit_test(truncated_by_results),
        cmocka_unit_test(refusals),
    };
    return cmocka_run_group_tests_name("backtest", tests, NULL, NULL);
}
