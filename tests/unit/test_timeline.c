/* Unit tests of src/domain/timeline.h: an hour's entries survive encode and decode exactly
 * (sorted, repeats dropped); every truncation and a set of corruptions of an encoding are
 * refused without changing the vector; entries outside the hour or out of order are refused by
 * the encoder; a batch gives one delta row per (tenant, type, UTC hour), sorted, holding exactly
 * its events (times before 1970 floor downwards); and funnels over random timelines equal a
 * brute-force evaluation of the documented model (same-type steps, the window, the range's
 * edges, steps sharing a type). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "domain/rfc3339.h"
#include "domain/timeline.h"

#define TA "0b6f0c1e-0000-4000-8000-00000000000a"
#define TB "0b6f0c1e-0000-4000-8000-00000000000b"
#define HOUR EO_TIMELINE_BUCKET_US

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int64_t T(const char *s)
{
    int64_t us = 0;
    if (eo_rfc3339_parse(s, strlen(s), &us) < 0)
        fail_msg("bad time in the test: %s", s);
    return us;
}

static void test_round_trip(void **state)
{
    (void)state;
    const int64_t start = T("2026-03-29T01:00:00Z");
    for (int round = 0; round < 200; round++) {
        size_t n = next() % 300;
        eo_timeline_entry_t *e = malloc((n + 1) * sizeof *e);
        for (size_t i = 0; i < n; i++) {
            uint32_t user = (uint32_t)(round % 3 == 0 ? next() : next() % 40);
            int64_t off = round % 2 ? (int64_t)(next() % (uint64_t)HOUR) : (int64_t)(next() % 50);
            e[i] = (eo_timeline_entry_t){user, start + off};
        }
        if (n > 2)
            e[n - 1] = e[0]; /* a repeat */
        if (n > 0 && round % 5 == 0)
            e[0] = (eo_timeline_entry_t){UINT32_MAX, start + HOUR - 1}; /* the extremes */
        size_t m = n;
        eo_timeline_sort_unique(e, &m);
        for (size_t i = 1; i < m; i++)
            assert_true(e[i - 1].user_no < e[i].user_no ||
                        (e[i - 1].user_no == e[i].user_no && e[i - 1].t_us < e[i].t_us));
        eo_buf_t b;
        eo_buf_init(&b, 1 << 20);
        assert_int_equal(eo_timeline_encode(e, m, start, &b), 0);
        eo_timeline_vec_t v = {0};
        assert_int_equal(eo_timeline_decode(b.data, b.len, start, &v), 0);
        assert_int_equal(v.n, m);
        for (size_t i = 0; i < m; i++) {
            assert_int_equal(v.e[i].user_no, e[i].user_no);
            assert_int_equal(v.e[i].t_us, e[i].t_us);
        }
        /* every truncation is refused and leaves the vector as it was */
        for (size_t cut = 0; cut < b.len; cut++) {
            size_t before = v.n;
            assert_int_equal(eo_timeline_decode(b.data, cut, start, &v), EO_EDATA);
            assert_int_equal(v.n, before);
        }
        eo_timeline_vec_done(&v);
        eo_buf_done(&b);
        free(e);
    }
}

static void test_refuses(void **state)
{
    (void)state;
    const int64_t start = T("2026-01-01T00:00:00Z");
    eo_buf_t b;
    eo_buf_init(&b, 1 << 20);
    eo_timeline_entry_t late[] = {{1, start + HOUR}}, early[] = {{1, start - 1}},
                        order[] = {{2, start}, {1, start}}, twice[] = {{1, start}, {1, start}};
    assert_int_equal(eo_timeline_encode(late, 1, start, &b), EO_EINVAL);
    assert_int_equal(eo_timeline_encode(early, 1, start, &b), EO_EINVAL);
    assert_int_equal(eo_timeline_encode(order, 2, start, &b), EO_EINVAL);
    assert_int_equal(eo_timeline_encode(twice, 2, start, &b), EO_EINVAL);
    eo_timeline_vec_t v = {0};
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"", 0},
        {"\x02\x00", 2},                             /* unknown version */
        {"\x01\x01\x00\x00\x00", 5},                 /* a count of 0 */
        {"\x01\x01\x00\x02\x00\x00", 6},             /* an increment of 0 */
        {"\x01\x02\x05\x01\x00\x00\x01\x00", 8},     /* a second user with a gap of 0 */
        {"\x01\x01\x00\x01\x80\xc8\xce\xb4\x0d", 9}, /* a time of one hour */
        {"\x01\x01\x00\x01\x00\x00", 6},             /* a byte left over */
        {"\x01\x01\x80\x80\x80\x80\x10\x01\x00", 9}, /* a user number past 32 bits */
        {"\x01\x05\x00\x01\x00", 5},                 /* more users than bytes */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(eo_timeline_decode(bad[i].bytes, bad[i].len, start, &v), EO_EDATA);
    assert_int_equal(v.n, 0);
    assert_int_equal(eo_timeline_decode("\x01\x00", 2, start, &v), 0); /* an empty hour */
    assert_int_equal(v.n, 0);
    eo_timeline_vec_done(&v);
    eo_buf_done(&b);
}

static eo_userset_event_t E(const char *tenant, const char *type, const char *when, uint32_t u)
{
    return (eo_userset_event_t){tenant, {type, strlen(type)}, T(when), u};
}

static void test_delta_rows(void **state)
{
    (void)state;
    eo_userset_event_t ev[] = {
        E(TB, "signup", "2026-03-01T10:59:59.999999Z", 4),
        E(TA, "signup", "2026-03-01T10:00:00Z", 7),
        E(TA, "signup", "2026-03-01T10:30:00Z", 7),
        E(TA, "signup", "2026-03-01T10:30:00Z", 7), /* the same pair again */
        E(TA, "signup", "2026-03-01T11:00:00Z", 1),
        E(TA, "order", "2026-03-01T10:15:00Z", 2),
        E(TA, "signup", "1969-12-31T23:59:59Z", 3),
    };
    eo_buf_t blob;
    eo_buf_init(&blob, 1 << 20);
    eo_timeline_row_t *rows;
    size_t n;
    assert_int_equal(eo_timeline_delta(ev, sizeof ev / sizeof ev[0], &rows, &n, &blob), 0);
    assert_int_equal(n, 5);
    static const struct {
        const char *tenant, *type, *bucket;
        size_t entries;
    } want[] = {
        {TA, "order", "2026-03-01T10:00:00Z", 1},  {TA, "signup", "1969-12-31T23:00:00Z", 1},
        {TA, "signup", "2026-03-01T10:00:00Z", 2}, {TA, "signup", "2026-03-01T11:00:00Z", 1},
        {TB, "signup", "2026-03-01T10:00:00Z", 1},
    };
    for (size_t i = 0; i < n; i++) {
        assert_memory_equal(rows[i].tenant_id, want[i].tenant, 36);
        assert_int_equal(rows[i].event_type.len, strlen(want[i].type));
        assert_memory_equal(rows[i].event_type.s, want[i].type, rows[i].event_type.len);
        assert_int_equal(rows[i].bucket_start_us, T(want[i].bucket));
        eo_timeline_vec_t v = {0};
        assert_int_equal(
            eo_timeline_decode(blob.data + rows[i].off, rows[i].len, rows[i].bucket_start_us, &v),
            0);
        assert_int_equal(v.n, want[i].entries);
        eo_timeline_vec_done(&v);
    }
    eo_timeline_vec_t v = {0};
    assert_int_equal(
        eo_timeline_decode(blob.data + rows[2].off, rows[2].len, rows[2].bucket_start_us, &v), 0);
    assert_int_equal(v.e[0].user_no, 7);
    assert_int_equal(v.e[0].t_us, T("2026-03-01T10:00:00Z"));
    assert_int_equal(v.e[1].t_us, T("2026-03-01T10:30:00Z"));
    eo_timeline_vec_done(&v);
    free(rows);
    rows = (void *)1;
    assert_int_equal(eo_timeline_delta(NULL, 0, &rows, &n, &blob), 0);
    assert_null(rows);
    assert_int_equal(n, 0);
    eo_buf_done(&blob);
}

/* The documented model, per user, straight from the events of every type. */
typedef struct {
    int type;
    uint32_t user;
    int64_t t;
} ev_t;

static void brute(const ev_t *ev, size_t n, const int *steps, size_t nsteps, int64_t from,
                  int64_t to, int64_t within, uint32_t nusers, uint64_t *users)
{
    memset(users, 0, nsteps * sizeof *users);
    for (uint32_t u = 0; u < nusers; u++) {
        int64_t t1 = INT64_MAX;
        for (size_t i = 0; i < n; i++)
            if (ev[i].user == u && ev[i].type == steps[0] && ev[i].t >= from && ev[i].t < to &&
                ev[i].t < t1)
                t1 = ev[i].t;
        if (t1 == INT64_MAX)
            continue;
        users[0]++;
        int64_t prev = t1;
        for (size_t k = 1; k < nsteps; k++) {
            int64_t best = INT64_MAX;
            bool same = steps[k] == steps[k - 1];
            for (size_t i = 0; i < n; i++)
                if (ev[i].user == u && ev[i].type == steps[k] &&
                    (same ? ev[i].t > prev : ev[i].t >= prev) && ev[i].t < t1 + within &&
                    ev[i].t < best)
                    best = ev[i].t;
            if (best == INT64_MAX)
                break;
            users[k]++;
            prev = best;
        }
    }
}

static void test_funnel_matches_brute_force(void **state)
{
    (void)state;
    enum { TYPES = 4, USERS = 60 };
    for (int round = 0; round < 300; round++) {
        size_t n = next() % 400;
        ev_t *ev = malloc((n + 1) * sizeof *ev);
        eo_timeline_vec_t by_type[TYPES] = {{0}};
        for (size_t i = 0; i < n; i++) {
            /* coarse times so that ties (same time, several types) are common */
            ev[i] = (ev_t){(int)(next() % TYPES), (uint32_t)(next() % USERS),
                           (int64_t)(next() % 100) * 1000};
            eo_timeline_vec_t *v = &by_type[ev[i].type];
            if (v->n == v->cap) {
                v->cap = v->cap ? 2 * v->cap : 16;
                v->e = realloc(v->e, v->cap * sizeof *v->e);
            }
            v->e[v->n++] = (eo_timeline_entry_t){ev[i].user, ev[i].t};
        }
        eo_funnel_t f = {.nsteps = 2 + next() % 4,
                         .from_us = (int64_t)(next() % 50) * 1000,
                         .within_us = (int64_t)(1 + next() % 60) * 1000};
        f.to_us = f.from_us + (int64_t)(next() % 60) * 1000;
        int steps[EO_FUNNEL_MAX_STEPS];
        for (size_t k = 0; k < f.nsteps; k++) {
            steps[k] = (int)(next() % TYPES);
            f.steps[k] = &by_type[steps[k]];
            f.same_type[k] = k > 0 && steps[k] == steps[k - 1];
        }
        uint64_t got[EO_FUNNEL_MAX_STEPS], want[EO_FUNNEL_MAX_STEPS];
        assert_int_equal(eo_funnel_eval(&f, got), 0);
        brute(ev, n, steps, f.nsteps, f.from_us, f.to_us, f.within_us, USERS, want);
        for (size_t k = 0; k < f.nsteps; k++)
            if (got[k] != want[k])
                fail_msg("round %d step %zu: %llu users, want %llu", round, k,
                         (unsigned long long)got[k], (unsigned long long)want[k]);
        for (int t = 0; t < TYPES; t++)
            eo_timeline_vec_done(&by_type[t]);
        free(ev);
    }
    eo_funnel_t bad = {.nsteps = 1};
    uint64_t users[EO_FUNNEL_MAX_STEPS];
    assert_int_equal(eo_funnel_eval(&bad, users), EO_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_delta_rows),
        cmocka_unit_test(test_funnel_matches_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
