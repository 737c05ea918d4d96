/* Unit tests of src/processor/batch_store.h with a fake store behind the port (store.h): a
 * refused record isolated by splitting wherever it sits (first, last, middle, several, all),
 * records of unknown tenants and undecodable records dead with their reasons, inserted counts
 * (duplicates not counted), a store unavailable while writing or checking tenants (the failed
 * share alone is retried after the wait; a wait that gives up drops the batch), and the cutting
 * into shares.
 *
 * The module's .c is included (as h2o's tests do): it uses only the port and the domain, so the
 * test links the domain library alone, no database or Kafka client. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "processor/batch_store.c"

#define T_KNOWN "0190a5b6-1234-7abc-8def-0123456789ab"
#define T_OTHER "0190a5b6-1234-7abc-8def-0123456789ac"
#define MAX_ITEMS 64

/* The fake store: knows one tenant, refuses the records whose messageId starts with "bad"
 * (EO_EDATA, naming the first of them), keeps the messageIds it stored (a second write of one
 * inserts nothing), and fails the next `down_writes` writes, the write numbered `down_at` and
 * the next `down_checks` tenant checks with EO_EUNAVAIL. */
typedef struct {
    eo_store_t base;
    int down_writes, down_checks;
    int down_at;        /* the write of this number (from 1) fails with EO_EUNAVAIL (0: none) */
    int writes, checks; /* calls */
    char stored[MAX_ITEMS][32];
    size_t nstored;
    bool ok;
} fake_store_t;

static bool is_stored(const fake_store_t *f, eo_str_t id)
{
    for (size_t i = 0; i < f->nstored; i++)
        if (strlen(f->stored[i]) == id.len && !memcmp(f->stored[i], id.s, id.len))
            return true;
    return false;
}

static int fake_check_tenants(eo_store_t *st, eo_record_t *const *recs, size_t n, bool *known,
                              char *err, size_t errlen)
{
    fake_store_t *f = (fake_store_t *)st;
    f->checks++;
    if (f->down_checks > 0) {
        f->down_checks--;
        snprintf(err, errlen, "connection refused");
        return f->ok = false, EO_EUNAVAIL;
    }
    for (size_t i = 0; i < n; i++)
        known[i] = !strcmp(recs[i]->tenant_id, T_KNOWN);
    return f->ok = true, 0;
}

static int fake_write(eo_store_t *st, eo_record_t *const *recs, size_t n, size_t *inserted,
                      char *err, size_t errlen)
{
    fake_store_t *f = (fake_store_t *)st;
    f->writes++;
    *inserted = 0;
    if (f->down_writes > 0 || f->writes == f->down_at) {
        if (f->down_writes > 0)
            f->down_writes--;
        snprintf(err, errlen, "connection refused");
        return f->ok = false, EO_EUNAVAIL;
    }
    for (size_t i = 0; i < n; i++) {
        eo_str_t id = recs[i]->ev.message_id;
        if (id.len >= 3 && !memcmp(id.s, "bad", 3)) {
            snprintf(err, errlen, "value refused: %.*s", (int)id.len, id.s);
            return f->ok = true, EO_EDATA;
        }
    }
    for (size_t i = 0; i < n; i++) {
        eo_str_t id = recs[i]->ev.message_id;
        if (is_stored(f, id))
            continue;
        assert_true(f->nstored < MAX_ITEMS && id.len < 32);
        memcpy(f->stored[f->nstored], id.s, id.len);
        f->stored[f->nstored++][id.len] = '\0';
        (*inserted)++;
    }
    return f->ok = true, 0;
}

static int fake_ping(eo_store_t *st, char *err, size_t errlen)
{
    return 0;
}

static bool fake_ok(const eo_store_t *st)
{
    return ((const fake_store_t *)st)->ok;
}

static int fake_ensure_ahead(eo_store_t *st, int64_t now_us, int64_t ahead_days, char *err,
                             size_t errlen)
{
    return 0;
}

static void fake_free(eo_store_t *st) {}

static const eo_store_ops_t fake_ops = {fake_check_tenants, fake_write, fake_ping, fake_ok,
                                        fake_ensure_ahead,  fake_free};

static void fake_init(fake_store_t *f)
{
    memset(f, 0, sizeof *f);
    f->base.ops = &fake_ops;
}

/* A batch of items over payloads it owns. */
typedef struct {
    eo_batch_item_t items[MAX_ITEMS];
    char payload[MAX_ITEMS][512];
    size_t n;
    eo_event_limits_t lim;
} batch_t;

static void batch_init(batch_t *b)
{
    memset(b, 0, sizeof *b);
    eo_event_limits_default(&b->lim);
}

static void add_raw(batch_t *b, const char *text)
{
    assert_true(b->n < MAX_ITEMS);
    snprintf(b->payload[b->n], sizeof b->payload[b->n], "%s", text);
    eo_batch_item_init(&b->items[b->n], b->payload[b->n], strlen(b->payload[b->n]), NULL);
    b->n++;
}

/* A record of tenant with messageId message_id, as the collector writes it. */
static void add(batch_t *b, const char *tenant, const char *message_id)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"v\":1,\"tenantId\":\"%s\",\"receivedAt\":\"2024-01-01T10:00:00.000000Z\","
             "\"event\":{\"messageId\":\"%s\",\"eventType\":\"signup\",\"userId\":\"u-1\","
             "\"timestamp\":\"2024-01-01T09:59:58.000000Z\"}}",
             tenant, message_id);
    add_raw(b, text);
}

static void batch_done(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        eo_batch_item_done(&b->items[i]);
}

/* Copies s into out (cap bytes), cut if longer. */
static void copy_text(char *out, size_t cap, const char *s)
{
    size_t n = strnlen(s, cap - 1);
    memcpy(out, s, n);
    out[n] = '\0';
}

static int refusals; /* calls of on_refused */
static char last_refusal[512];

static void on_refused(const char *err)
{
    refusals++;
    copy_text(last_refusal, sizeof last_refusal, err);
}

/* Stores the whole batch as one share through store. */
static int store_all(batch_t *b, fake_store_t *store, size_t *inserted)
{
    size_t idx[MAX_ITEMS];
    for (size_t i = 0; i < b->n; i++)
        idx[i] = i;
    eo_batch_share_t sh = {.store = &store->base, .idx = idx, .n = b->n};
    int r = eo_batch_store_share(&sh, b->items, &b->lim, on_refused);
    *inserted = sh.inserted;
    assert_int_equal(sh.result, r);
    return r;
}

static void assert_alive(const batch_t *b, size_t i)
{
    if (b->items[i].dead)
        fail_msg("item %zu is dead: %s (%s)", i, b->items[i].why.code, b->items[i].why.message);
}

static void assert_dead(const batch_t *b, size_t i, const char *code, const char *field,
                        const char *message)
{
    const eo_batch_item_t *it = &b->items[i];
    if (!it->dead)
        fail_msg("item %zu is not dead", i);
    assert_string_equal(it->why.code, code);
    assert_string_equal(it->why.field, field);
    if (message)
        assert_string_equal(it->why.message, message);
}

static void test_all_stored(void **state)
{
    batch_t b;
    batch_init(&b);
    for (int i = 0; i < 5; i++) {
        char id[32];
        snprintf(id, sizeof id, "m%d", i);
        add(&b, T_KNOWN, id);
    }
    fake_store_t f;
    fake_init(&f);
    refusals = 0;
    size_t inserted;
    assert_int_equal(store_all(&b, &f, &inserted), 0);
    assert_int_equal(inserted, 5);
    assert_int_equal(f.writes, 1); /* one transaction for the whole share */
    assert_int_equal(refusals, 0);
    for (size_t i = 0; i < b.n; i++) {
        assert_alive(&b, i);
        assert_true(b.items[i].decoded);
    }
    /* written again (a redelivery): nothing is inserted twice */
    assert_int_equal(store_all(&b, &f, &inserted), 0);
    assert_int_equal(inserted, 0);
    batch_done(&b);
}

/* Rows of the split table: the batch size and which positions the store refuses. */
static const struct {
    const char *name;
    size_t n;
    size_t bad[8];
    size_t nbad;
} split_cases[] = {
    {"first", 8, {0}, 1},
    {"last", 8, {7}, 1},
    {"middle", 8, {3}, 1},
    {"middle of odd", 7, {3}, 1},
    {"several", 9, {1, 4, 8}, 3},
    {"adjacent", 6, {2, 3}, 2},
    {"first and last", 5, {0, 4}, 2},
    {"all", 4, {0, 1, 2, 3}, 4},
    {"one alone", 1, {0}, 1},
};

static bool is_bad(size_t c, size_t i)
{
    for (size_t k = 0; k < split_cases[c].nbad; k++)
        if (split_cases[c].bad[k] == i)
            return true;
    return false;
}

static void test_split_isolates_refused_records(void **state)
{
    for (size_t c = 0; c < sizeof split_cases / sizeof split_cases[0]; c++) {
        batch_t b;
        batch_init(&b);
        for (size_t i = 0; i < split_cases[c].n; i++) {
            char id[32];
            snprintf(id, sizeof id, "%s%zu", is_bad(c, i) ? "bad" : "ok", i);
            add(&b, T_KNOWN, id);
        }
        fake_store_t f;
        fake_init(&f);
        refusals = 0;
        size_t inserted;
        if (store_all(&b, &f, &inserted) != 0)
            fail_msg("%s: the share failed", split_cases[c].name);
        if (inserted != split_cases[c].n - split_cases[c].nbad)
            fail_msg("%s: %zu inserted", split_cases[c].name, inserted);
        assert_int_equal(refusals, split_cases[c].nbad);
        for (size_t i = 0; i < b.n; i++) {
            if (!is_bad(c, i)) {
                assert_alive(&b, i);
                continue;
            }
            char message[64];
            snprintf(message, sizeof message, "value refused: bad%zu", i);
            assert_dead(&b, i, "storage_rejected", "", message);
        }
        assert_int_equal(f.nstored, split_cases[c].n - split_cases[c].nbad);
        batch_done(&b);
    }
}

static void test_unknown_tenants_and_undecodable(void **state)
{
    batch_t b;
    batch_init(&b);
    add(&b, T_KNOWN, "m0");
    add(&b, T_OTHER, "m1");
    add_raw(&b, "not a record");
    add(&b, T_KNOWN, "bad3");
    add(&b, T_OTHER, "m4");
    add(&b, T_KNOWN, "m5");
    fake_store_t f;
    fake_init(&f);
    refusals = 0;
    size_t inserted;
    assert_int_equal(store_all(&b, &f, &inserted), 0);
    assert_int_equal(inserted, 2);
    assert_alive(&b, 0);
    assert_alive(&b, 5);
    assert_dead(&b, 1, "unknown_tenant", "tenantId", "no tenant " T_OTHER);
    assert_dead(&b, 4, "unknown_tenant", "tenantId", "no tenant " T_OTHER);
    assert_dead(&b, 2, "undecodable", "", NULL);
    assert_false(b.items[2].decoded);
    assert_dead(&b, 3, "storage_rejected", "", "value refused: bad3");
    assert_int_equal(f.checks, 1);
    assert_int_equal(refusals, 1);
    assert_string_equal(last_refusal, "value refused: bad3");
    batch_done(&b);
}

static void test_every_tenant_unknown(void **state)
{
    batch_t b;
    batch_init(&b);
    add(&b, T_OTHER, "m0");
    add(&b, T_OTHER, "m1");
    fake_store_t f;
    fake_init(&f);
    size_t inserted;
    assert_int_equal(store_all(&b, &f, &inserted), 0);
    assert_int_equal(inserted, 0);
    assert_int_equal(f.writes, 0); /* nothing left to write */
    assert_dead(&b, 0, "unknown_tenant", "tenantId", NULL);
    assert_dead(&b, 1, "unknown_tenant", "tenantId", NULL);
    batch_done(&b);
}

static void test_unavailable_share_fails(void **state)
{
    batch_t b;
    batch_init(&b);
    add(&b, T_KNOWN, "m0");
    add(&b, T_KNOWN, "m1");
    fake_store_t f;
    fake_init(&f);
    size_t inserted;
    f.down_checks = 1;
    assert_int_equal(store_all(&b, &f, &inserted), EO_EUNAVAIL);
    assert_int_equal(f.writes, 0);
    f.down_writes = 1;
    assert_int_equal(store_all(&b, &f, &inserted), EO_EUNAVAIL);
    assert_int_equal(inserted, 0);
    assert_false(fake_ok(&f.base));
    for (size_t i = 0; i < b.n; i++) /* nothing is dead for an unavailable store */
        assert_alive(&b, i);
    assert_int_equal(store_all(&b, &f, &inserted), 0);
    assert_int_equal(inserted, 2);
    batch_done(&b);
}

/* The store goes away in the middle of a split: the refused record found before stays dead
 * (and is reported once), the share is retried whole and the rest is stored. */
static void test_unavailable_during_split(void **state)
{
    batch_t b;
    batch_init(&b);
    add(&b, T_KNOWN, "bad0");
    add(&b, T_KNOWN, "m1");
    add(&b, T_KNOWN, "m2");
    add(&b, T_KNOWN, "m3");
    fake_store_t f;
    fake_init(&f);
    refusals = 0;
    /* writes: [bad0 m1 m2 m3] refused, [bad0 m1] refused, [bad0] refused, [m1] stored, then
     * [m2 m3] finds the store down */
    f.down_at = 5;
    size_t inserted;
    assert_int_equal(store_all(&b, &f, &inserted), EO_EUNAVAIL);
    assert_int_equal(f.writes, 5);
    assert_int_equal(refusals, 1);
    assert_dead(&b, 0, "storage_rejected", "", "value refused: bad0");
    /* the retry writes the living records; m1 is already stored */
    assert_int_equal(store_all(&b, &f, &inserted), 0);
    assert_int_equal(f.writes, 6);
    assert_int_equal(inserted, 2);
    assert_int_equal(refusals, 1);
    assert_dead(&b, 0, "storage_rejected", "", "value refused: bad0");
    for (size_t i = 1; i < b.n; i++)
        assert_alive(&b, i);
    batch_done(&b);
}

/* What eo_batch_store calls between attempts: shares run one after the other. */
typedef struct {
    eo_batch_share_t *shares;
    size_t k;
    batch_t *b;
    int waits, give_up_at; /* wait() returns false on the give_up_at-th call (0: never) */
    char last_err[512];
} runner_t;

static void run_serially(void *ud)
{
    runner_t *rn = ud;
    for (size_t i = 0; i < rn->k; i++)
        if (rn->shares[i].n)
            eo_ignore(eo_batch_store_share(&rn->shares[i], rn->b->items, &rn->b->lim, on_refused));
}

static bool count_wait(void *ud, const char *err)
{
    runner_t *rn = ud;
    rn->waits++;
    copy_text(rn->last_err, sizeof rn->last_err, err);
    return rn->give_up_at == 0 || rn->waits < rn->give_up_at;
}

static void test_retry_runs_failed_shares_only(void **state)
{
    batch_t b;
    batch_init(&b);
    for (int i = 0; i < 6; i++) {
        char id[32];
        snprintf(id, sizeof id, "m%d", i);
        add(&b, T_KNOWN, id);
    }
    fake_store_t f[2];
    fake_init(&f[0]);
    fake_init(&f[1]);
    f[1].down_writes = 2;
    eo_batch_share_t shares[2] = {{.store = &f[0].base}, {.store = &f[1].base}};
    runner_t rn = {shares, 2, &b, 0, 0, ""};
    size_t inserted;
    assert_int_equal(eo_batch_store(shares, 2, b.n, run_serially, count_wait, &rn, &inserted), 0);
    assert_int_equal(inserted, 6);
    assert_int_equal(rn.waits, 2);
    assert_string_equal(rn.last_err, "connection refused");
    assert_int_equal(f[0].writes, 1); /* stored at once, not run again */
    assert_int_equal(f[1].writes, 3);
    assert_int_equal(f[0].nstored, 3);
    assert_int_equal(f[1].nstored, 3);
    for (size_t i = 0; i < b.n; i++)
        assert_alive(&b, i);
    free(shares[0].idx);
    free(shares[1].idx);
    batch_done(&b);
}

static void test_retry_gives_up(void **state)
{
    batch_t b;
    batch_init(&b);
    add(&b, T_KNOWN, "m0");
    add(&b, T_KNOWN, "m1");
    fake_store_t f;
    fake_init(&f);
    f.down_writes = 100;
    eo_batch_share_t shares[1] = {{.store = &f.base}};
    runner_t rn = {shares, 1, &b, 0, 3, ""};
    size_t inserted;
    assert_int_equal(eo_batch_store(shares, 1, b.n, run_serially, count_wait, &rn, &inserted),
                     EO_ETIMEOUT);
    assert_int_equal(rn.waits, 3);
    assert_int_equal(f.writes, 3);
    assert_int_equal(inserted, 0);
    free(shares[0].idx);
    batch_done(&b);
}

static void test_share_out(void **state)
{
    eo_batch_share_t shares[3] = {{0}};
    assert_int_equal(eo_batch_share_out(shares, 3, 10), 0);
    size_t want_n[3] = {3, 3, 4}, want_first[3] = {0, 3, 6};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(shares[i].n, want_n[i]);
        for (size_t j = 0; j < shares[i].n; j++)
            assert_int_equal(shares[i].idx[j], want_first[i] + j);
    }
    assert_int_equal(eo_batch_share_out(shares, 3, 2), 0); /* fewer items than shares */
    assert_int_equal(shares[0].n + shares[1].n + shares[2].n, 2);
    assert_int_equal(eo_batch_share_out(shares, 3, 0), 0);
    assert_int_equal(shares[0].n + shares[1].n + shares[2].n, 0);
    for (size_t i = 0; i < 3; i++)
        free(shares[i].idx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_stored),
        cmocka_unit_test(test_split_isolates_refused_records),
        cmocka_unit_test(test_unknown_tenants_and_undecodable),
        cmocka_unit_test(test_every_tenant_unknown),
        cmocka_unit_test(test_unavailable_share_fails),
        cmocka_unit_test(test_unavailable_during_split),
        cmocka_unit_test(test_retry_runs_failed_shares_only),
        cmocka_unit_test(test_retry_gives_up),
        cmocka_unit_test(test_share_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
