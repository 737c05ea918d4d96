/* Unit tests of src/domain/userset.h: no events give no rows; a batch gives one row per
 * (tenant, type, UTC quarter hour) and per (tenant, "", quarter hour), sorted, each holding
 * exactly the users of its events (read back from the portable bytes); times before 1970 floor
 * downwards; garbage, truncated and empty bytes are refused without changing the set; union,
 * difference and intersection count as sets do, checked against a brute-force bit array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/rfc3339.h"
#include "domain/userset.h"

#define TA "0b6f0c1e-0000-4000-8000-00000000000a"
#define TB "0b6f0c1e-0000-4000-8000-00000000000b"

static int64_t T(const char *s)
{
    int64_t us = 0;
    if (eo_rfc3339_parse(s, strlen(s), &us) < 0)
        fail_msg("bad time in the test: %s", s);
    return us;
}

static eo_userset_event_t E(const char *tenant, const char *type, const char *when, uint32_t u)
{
    return (eo_userset_event_t){tenant, {type, strlen(type)}, T(when), u};
}

/* The members of a row's bytes, as a set. */
static eo_userset_t *read_row(const eo_buf_t *blob, const eo_userset_row_t *row)
{
    eo_userset_t *s = eo_userset_new();
    assert_non_null(s);
    assert_int_equal(eo_userset_add_serialized(s, blob->data + row->off, row->len), 0);
    return s;
}

static void test_no_events(void **state)
{
    (void)state;
    eo_buf_t blob;
    eo_buf_init(&blob, 1 << 20);
    eo_userset_row_t *rows = (void *)1;
    size_t n = 7;
    assert_int_equal(eo_userset_delta(NULL, 0, &rows, &n, &blob), 0);
    assert_null(rows);
    assert_int_equal(n, 0);
    eo_buf_done(&blob);
}

static void test_rows(void **state)
{
    (void)state;
    eo_userset_event_t ev[] = {
        E(TB, "signup", "2026-03-01T10:14:59.999999Z", 5),
        E(TA, "signup", "2026-03-01T10:00:00Z", 7),
        E(TA, "signup", "2026-03-01T10:14:00Z", 7), /* same user, same quarter: once */
        E(TA, "order", "2026-03-01T10:15:00Z", 70000),
        E(TA, "signup", "2026-03-01T10:15:00Z", 3),
        E(TA, "order", "1969-12-31T23:59:59Z", 1), /* floors to 23:45 on 1969-12-31 */
    };
    eo_buf_t blob;
    eo_buf_init(&blob, 1 << 20);
    eo_userset_row_t *rows;
    size_t n;
    assert_int_equal(eo_userset_delta(ev, sizeof ev / sizeof ev[0], &rows, &n, &blob), 0);
    struct {
        const char *tenant, *type, *bucket;
        uint32_t users[3];
        size_t nusers;
    } want[] = {
        {TA, "", "1969-12-31T23:45:00Z", {1}, 1},
        {TA, "", "2026-03-01T10:00:00Z", {7}, 1},
        {TA, "", "2026-03-01T10:15:00Z", {3, 70000}, 2},
        {TA, "order", "1969-12-31T23:45:00Z", {1}, 1},
        {TA, "order", "2026-03-01T10:15:00Z", {70000}, 1},
        {TA, "signup", "2026-03-01T10:00:00Z", {7}, 1},
        {TA, "signup", "2026-03-01T10:15:00Z", {3}, 1},
        {TB, "", "2026-03-01T10:00:00Z", {5}, 1},
        {TB, "signup", "2026-03-01T10:00:00Z", {5}, 1},
    };
    assert_int_equal(n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < n; i++) {
        assert_memory_equal(rows[i].tenant_id, want[i].tenant, 36);
        assert_int_equal(rows[i].event_type.len, strlen(want[i].type));
        assert_memory_equal(rows[i].event_type.s, want[i].type, strlen(want[i].type));
        assert_int_equal(rows[i].bucket_start_us, T(want[i].bucket));
        eo_userset_t *s = read_row(&blob, &rows[i]);
        assert_int_equal(eo_userset_count(s), want[i].nusers);
        eo_userset_t *w = eo_userset_new();
        for (size_t k = 0; k < want[i].nusers; k++)
            eo_userset_add(w, want[i].users[k]);
        assert_int_equal(eo_userset_and_count(s, w), want[i].nusers);
        eo_userset_free(w);
        eo_userset_free(s);
    }
    free(rows);
    eo_buf_done(&blob);
}

/* eo_delta_rank: equal groups share a rank, ranks are 0 .. groups-1 without gaps, and their
 * order is eo_delta_group_cmp's; tenants compare by content, not by pointer. */
static void test_delta_rank(void **state)
{
    (void)state;
    enum { N = 3000 };
    static char tenants[N][48];
    static const char *const types[] = {"signup", "page_view", "", "a", "ab", "b"};
    eo_delta_group_t *g = calloc(N, sizeof *g);
    uint32_t *rank = calloc(N, sizeof *rank);
    assert_non_null(g);
    assert_non_null(rank);
    srand(7);
    for (size_t i = 0; i < N; i++) {
        /* three tenants, each text in its own buffer (as each record holds its own) */
        snprintf(tenants[i], sizeof tenants[i], "%08x-0000-4000-8000-00000000000%d", 0x1234,
                 rand() % 3);
        const char *t = types[rand() % 6];
        g[i] = (eo_delta_group_t){tenants[i], {t, strlen(t)}, (int64_t)(rand() % 5 - 2) * 900};
    }
    long groups = eo_delta_rank(g, N, rank);
    assert_true(groups > 1 && groups <= 3 * 6 * 5);
    bool *seen = calloc((size_t)groups, sizeof *seen);
    assert_non_null(seen);
    for (size_t i = 0; i < N; i++) {
        assert_true(rank[i] < (uint32_t)groups);
        seen[rank[i]] = true;
        for (size_t j = i + 1; j < N && j < i + 200; j++) {
            int c = eo_delta_group_cmp(g[i].tenant_id, g[i].event_type, g[i].bucket, g[j].tenant_id,
                                       g[j].event_type, g[j].bucket);
            if (c == 0)
                assert_int_equal(rank[i], rank[j]);
            else
                assert_true((c < 0) == (rank[i] < rank[j]) && rank[i] != rank[j]);
        }
    }
    for (long k = 0; k < groups; k++)
        assert_true(seen[k]);
    assert_int_equal(eo_delta_rank(g, 0, rank), 0);
    free(seen);
    free(g);
    free(rank);
}

static void test_refuses_garbage(void **state)
{
    (void)state;
    eo_userset_t *s = eo_userset_new(), *x = eo_userset_new();
    eo_userset_add(s, 43); /* not a multiple of 3: not in x */
    for (uint32_t u = 0; u < 100000; u += 3)
        eo_userset_add(x, u);
    eo_buf_t b;
    eo_buf_init(&b, 1 << 20);
    assert_int_equal(eo_userset_serialize(x, &b), 0);
    assert_int_equal(eo_userset_add_serialized(s, b.data, 0), EO_EDATA);
    for (size_t cut = 1; cut < b.len; cut += b.len / 17 + 1)
        assert_int_equal(eo_userset_add_serialized(s, b.data, cut), EO_EDATA);
    const char junk[] = "\xff\xff\xff\xff\xff\xff\xff\xff not a bitmap";
    assert_int_equal(eo_userset_add_serialized(s, junk, sizeof junk), EO_EDATA);
    assert_int_equal(eo_userset_count(s), 1);
    assert_int_equal(eo_userset_add_serialized(s, b.data, b.len), 0);
    assert_int_equal(eo_userset_count(s), eo_userset_count(x) + 1);
    eo_buf_done(&b);
    eo_userset_free(s);
    eo_userset_free(x);
}

/* Union, difference and intersection against bit arrays, over random members. */
static void test_set_algebra(void **state)
{
    (void)state;
    enum { N = 300000 };
    unsigned char *in_a = calloc(N, 1), *in_b = calloc(N, 1);
    assert_non_null(in_a);
    assert_non_null(in_b);
    eo_userset_t *a = eo_userset_new(), *b = eo_userset_new();
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint32_t u = (uint32_t)(x % N);
        if (x & (1ULL << 40)) {
            in_a[u] = 1;
            eo_userset_add(a, u);
        } else {
            in_b[u] = 1;
            eo_userset_add(b, u);
        }
    }
    uint64_t na = 0, nb = 0, nand = 0, nor = 0, nminus = 0;
    for (int u = 0; u < N; u++) {
        na += in_a[u], nb += in_b[u], nand += in_a[u] && in_b[u];
        nor += in_a[u] || in_b[u], nminus += in_a[u] && !in_b[u];
    }
    assert_int_equal(eo_userset_count(a), na);
    assert_int_equal(eo_userset_count(b), nb);
    assert_int_equal(eo_userset_and_count(a, b), nand);
    eo_userset_t *both = eo_userset_and(a, b);
    assert_int_equal(eo_userset_count(both), nand);
    eo_buf_t buf;
    eo_buf_init(&buf, 16 << 20);
    assert_int_equal(eo_userset_serialize(b, &buf), 0);
    eo_userset_t *u = eo_userset_new();
    eo_userset_add_set(u, a);
    assert_int_equal(eo_userset_add_serialized(u, buf.data, buf.len), 0);
    assert_int_equal(eo_userset_count(u), nor);
    eo_userset_remove_set(a, b);
    assert_int_equal(eo_userset_count(a), nminus);
    eo_buf_done(&buf);
    eo_userset_free(a);
    eo_userset_free(b);
    eo_userset_free(both);
    eo_userset_free(u);
    free(in_a);
    free(in_b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_events),   cmocka_unit_test(test_rows),
        cmocka_unit_test(test_delta_rank),  cmocka_unit_test(test_refuses_garbage),
        cmocka_unit_test(test_set_algebra),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
