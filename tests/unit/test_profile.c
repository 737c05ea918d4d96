/* Unit tests of src/domain/profile.h: which events may change a profile; the trait rules of one
 * batch ($set latest wins, $set_once earliest wins and loses to any $set, $unset removes); the
 * links (first by time, self-links ignored) and groups; the order of ranks; and, over random
 * events split into random batches merged in random orders (as the store merges them), the same
 * traits as one batch of all of them and as a brute-force choice of each trait's winner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/profile.h"

#define TA "0b6f0c1e-0000-4000-8000-00000000000a"
#define TB "0b6f0c1e-0000-4000-8000-00000000000b"

static eo_str_t S(const char *s)
{
    return s ? (eo_str_t){s, strlen(s)} : (eo_str_t){NULL, 0};
}

static json_t *J(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    if (!v)
        fail_msg("bad JSON in the test: %s (%s)", text, je.text);
    return v;
}

/* Adds one event to b. */
static void add(eo_profile_batch_t *b, const char *tenant, const char *type, const char *user,
                const char *anon, const char *mid, int64_t t, const char *props)
{
    json_t *p = props ? J(props) : NULL;
    eo_profile_event_t ev = {tenant, S(type), S(user), S(anon), S(mid), t, p};
    assert_int_equal(eo_profile_batch_add(b, &ev), 0);
    json_decref(p);
}

/* The batch as a parsed document. */
static json_t *doc(const eo_profile_batch_t *b)
{
    eo_buf_t out;
    eo_buf_init(&out, 1 << 20);
    assert_int_equal(eo_profile_batch_json(b, &out), 0);
    json_error_t je;
    json_t *d = json_loadb(out.data, out.len, 0, &je);
    if (!d)
        fail_msg("the batch's JSON does not parse: %s: %.*s", je.text, (int)out.len, out.data);
    eo_buf_done(&out);
    return d;
}

/* The entry of array name in d whose member kname is k. */
static json_t *find(json_t *d, const char *name, const char *kname, const char *k)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(d, name), i, e)
    {
        if (!strcmp(json_string_value(json_object_get(e, kname)), k))
            return e;
    }
    return NULL;
}

static void assert_json(const json_t *v, const char *want)
{
    json_t *w = J(want);
    if (!json_equal(v, w)) {
        char *got = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
        fail_msg("got %s, expected %s", got ? got : "(null)", want);
    }
    json_decref(w);
}

static void test_touches(void **state)
{
    (void)state;
    json_t *none = J("{\"a\":1}"), *set = J("{\"$set\":{}}"), *unset = J("{\"$unset\":[]}");
    assert_false(eo_profile_touches(S("page"), none, S(NULL)));
    assert_false(eo_profile_touches(S("page"), NULL, S(NULL)));
    assert_true(eo_profile_touches(S("page"), set, S(NULL)));
    assert_true(eo_profile_touches(S("page"), unset, S(NULL)));
    assert_true(eo_profile_touches(S("$identify"), NULL, S(NULL)));
    assert_true(eo_profile_touches(S("$create_alias"), none, S(NULL)));
    assert_true(eo_profile_touches(S("$groupidentify"), none, S(NULL)));
    assert_false(eo_profile_touches(S("$pageview"), none, S(NULL)));
    assert_true(eo_profile_touches(S("page"), NULL, S("{\"$set_once\":{\"a\":1}}")));
    assert_true(eo_profile_touches(S("page"), NULL, S("{\"x\":1,\"$unset\":[\"a\"]}")));
    assert_false(eo_profile_touches(S("page"), NULL, S("{\"set\":1,\"$se\":2}")));
    json_decref(none);
    json_decref(set);
    json_decref(unset);
}

static void test_trait_rules(void **state)
{
    (void)state;
    eo_profile_batch_t *b;
    assert_int_equal(eo_profile_batch_new(&b), 0);
    assert_true(eo_profile_batch_empty(b));
    add(b, TA, "page", "u", NULL, "m1", 100, "{\"path\":\"/\"}"); /* nothing */
    assert_true(eo_profile_batch_empty(b));
    add(b, TA, "$identify", "u", NULL, "m2", 1000, "{\"$set\":{\"plan\":\"pro\",\"n\":1}}");
    add(b, TA, "x", "u", NULL, "m3", 500, "{\"$set\":{\"plan\":\"free\"},\"$set_once\":{\"c\":1}}");
    add(b, TA, "x", "u", NULL, "m4", 300, "{\"$set_once\":{\"c\":2,\"plan\":\"trial\"}}");
    add(b, TA, "x", "u", NULL, "m5", 1500, "{\"$unset\":[\"n\",7]}");
    add(b, TA, "x", "u", NULL, "m6", 1200, "{\"$set\":{\"n\":2}}");          /* before the unset */
    add(b, TB, "x", "u", NULL, "m7", 50, "{\"$set\":{\"plan\":\"other\"}}"); /* another tenant */
    add(b, TA, "x", NULL, "anon", "m8", 70, "{\"$set\":{\"a\":true}}");      /* anonymous key */
    add(b, TA, "$identify", "w", NULL, "m9", 90, NULL); /* a profile without traits */
    assert_false(eo_profile_batch_empty(b));
    json_t *d = doc(b);
    assert_int_equal(json_array_size(json_object_get(d, "profiles")), 4);
    json_t *u = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(d, "profiles"), i, e)
    {
        const char *t = json_string_value(json_object_get(e, "t"));
        const char *k = json_string_value(json_object_get(e, "k"));
        if (!strcmp(t, TA) && !strcmp(k, "u"))
            u = e;
        if (!strcmp(t, TB))
            assert_json(json_object_get(e, "traits"), "{\"plan\":\"other\"}");
        if (!strcmp(k, "anon"))
            assert_json(json_object_get(e, "traits"), "{\"a\":true}");
        if (!strcmp(k, "w"))
            assert_json(json_object_get(e, "traits"), "{}");
    }
    assert_non_null(u);
    assert_json(json_object_get(u, "traits"), "{\"plan\":\"pro\",\"c\":2}");
    assert_json(json_object_get(u, "ranks"),
                "{\"plan\":[1,1000,\"m2\"],\"c\":[0,-300,\"m4\"],\"n\":[1,1500,\"m5\"]}");
    assert_string_equal(json_string_value(json_object_get(u, "f")), "1970-01-01T00:00:00.000300Z");
    assert_string_equal(json_string_value(json_object_get(u, "l")), "1970-01-01T00:00:00.001500Z");
    json_decref(d);
    eo_profile_batch_reset(b);
    assert_true(eo_profile_batch_empty(b));
    eo_profile_batch_free(b);
}

static void test_links_and_groups(void **state)
{
    (void)state;
    eo_profile_batch_t *b;
    assert_int_equal(eo_profile_batch_new(&b), 0);
    add(b, TA, "$create_alias", "ada", NULL, "m1", 200, "{\"alias\":\"anon-1\"}");
    add(b, TA, "$create_alias", "bob", NULL, "m2", 100, "{\"alias\":\"anon-1\"}"); /* first */
    add(b, TA, "$create_alias", "bob", NULL, "m0", 100, "{\"alias\":\"anon-1\"}"); /* tie: m0 */
    add(b, TA, "$create_alias", "ada", NULL, "m3", 100, "{\"alias\":\"ada\"}");    /* self */
    add(b, TA, "$create_alias", "ada", NULL, "m3b", 100, "{\"alias\":3}");         /* no string */
    add(b, TA, "$identify", "ada", NULL, "m4", 300, "{\"$anon_distinct_id\":\"ph-2\"}");
    add(b, TA, "$identify", "ada", "seg-3", "m5", 400, "{}");
    add(b, TA, "$identify", NULL, "only-anon", "m6", 400, "{}"); /* no user id: no link */
    add(b, TA, "$groupidentify", "ada", NULL, "g1", 10,
        "{\"$group_type\":\"company\",\"$group_key\":\"acme\",\"$group_set\":{\"n\":1,\"x\":1}}");
    add(b, TA, "$groupidentify", "ada", NULL, "g2", 20,
        "{\"$group_type\":\"company\",\"$group_key\":\"acme\",\"$group_set\":{\"n\":2}}");
    add(b, TA, "$groupidentify", "ada", NULL, "g3", 5,
        "{\"$group_type\":\"team\",\"$group_key\":\"acme\"}");
    add(b, TA, "$groupidentify", "ada", NULL, "g4", 5, "{\"$group_key\":\"acme\"}"); /* no type */
    json_t *d = doc(b);
    assert_int_equal(json_array_size(json_object_get(d, "aliases")), 3);
    json_t *l = find(d, "aliases", "a", "anon-1");
    assert_non_null(l);
    assert_string_equal(json_string_value(json_object_get(l, "u")), "bob");
    assert_string_equal(json_string_value(json_object_get(l, "m")), "m0");
    assert_string_equal(json_string_value(json_object_get(find(d, "aliases", "a", "ph-2"), "u")),
                        "ada");
    assert_string_equal(json_string_value(json_object_get(find(d, "aliases", "a", "seg-3"), "u")),
                        "ada");
    assert_int_equal(json_array_size(json_object_get(d, "groups")), 2);
    json_t *g;
    size_t i;
    json_array_foreach(json_object_get(d, "groups"), i, g)
    {
        const char *type = json_string_value(json_object_get(g, "gt"));
        assert_string_equal(json_string_value(json_object_get(g, "gk")), "acme");
        assert_json(json_object_get(g, "traits"),
                    !strcmp(type, "company") ? "{\"n\":2,\"x\":1}" : "{}");
    }
    json_decref(d);
    eo_profile_batch_free(b);
}

static void test_rank_order(void **state)
{
    (void)state;
    json_t *a = J("[1,5,\"b\"]"), *b = J("[1,5,\"ab\"]"), *c = J("[0,-1,\"z\"]"),
           *d = J("[1,6,\"a\"]"), *bad = J("[1,5]"), *pre = J("[1,5,\"a\"]");
    assert_true(eo_profile_rank_cmp(a, b) > 0);
    assert_true(eo_profile_rank_cmp(b, pre) > 0); /* a prefix first */
    assert_true(eo_profile_rank_cmp(c, a) < 0);   /* a $set_once loses to a $set */
    assert_true(eo_profile_rank_cmp(d, a) > 0);
    assert_true(eo_profile_rank_cmp(bad, c) < 0);
    assert_int_equal(eo_profile_rank_cmp(bad, bad), 0);
    assert_int_equal(eo_profile_rank_cmp(a, a), 0);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(d);
    json_decref(bad);
    json_decref(pre);
}

/* ---- random batches merged in random orders ---- */

#define NEV 400
#define NTRAITS 6

typedef struct {
    int kind; /* 0 $set_once, 1 $set, 2 $unset */
    int trait;
    int value;
    int64_t t;
    char mid[16];
} rev_t;

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) & 0xffffff;
}

static void add_rev(eo_profile_batch_t *b, const rev_t *r)
{
    char props[96];
    if (r->kind == 2)
        snprintf(props, sizeof props, "{\"$unset\":[\"t%d\"]}", r->trait);
    else
        snprintf(props, sizeof props, "{\"%s\":{\"t%d\":%d}}", r->kind ? "$set" : "$set_once",
                 r->trait, r->value);
    add(b, TA, "x", "u", NULL, r->mid, r->t, props);
}

/* The profile entry of a one-profile batch: (traits, ranks), references the caller owns. */
static void batch_traits(const eo_profile_batch_t *b, json_t **traits, json_t **ranks)
{
    json_t *d = doc(b);
    json_t *e = json_array_get(json_object_get(d, "profiles"), 0);
    assert_non_null(e);
    *traits = json_incref(json_object_get(e, "traits"));
    *ranks = json_incref(json_object_get(e, "ranks"));
    json_decref(d);
}

static void test_random_orders(void **state)
{
    (void)state;
    unsigned seed = 12345;
    rev_t ev[NEV];
    for (int i = 0; i < NEV; i++) {
        ev[i].kind = (int)(rnd(&seed) % 3);
        ev[i].trait = (int)(rnd(&seed) % NTRAITS);
        ev[i].value = (int)(rnd(&seed) % 1000);
        ev[i].t = (int64_t)(rnd(&seed) % 50); /* many equal times: the message id decides */
        snprintf(ev[i].mid, sizeof ev[i].mid, "m%03d", i);
    }
    /* brute force: each trait's winner (max rank), then its value or absence */
    json_t *want = json_object();
    for (int k = 0; k < NTRAITS; k++) {
        int best = -1;
        json_t *br = NULL;
        for (int i = 0; i < NEV; i++) {
            if (ev[i].trait != k)
                continue;
            json_t *r = json_pack("[i,I,s]", ev[i].kind ? 1 : 0,
                                  (json_int_t)(ev[i].kind ? ev[i].t : -ev[i].t), ev[i].mid);
            if (!br || eo_profile_rank_cmp(r, br) > 0) {
                json_decref(br);
                br = r;
                best = i;
            } else
                json_decref(r);
        }
        json_decref(br);
        char name[8];
        snprintf(name, sizeof name, "t%d", k);
        if (best >= 0 && ev[best].kind != 2)
            json_object_set_new(want, name, json_integer(ev[best].value));
    }
    /* one batch of all */
    eo_profile_batch_t *b;
    assert_int_equal(eo_profile_batch_new(&b), 0);
    for (int i = 0; i < NEV; i++)
        add_rev(b, &ev[i]);
    json_t *all_t, *all_r;
    batch_traits(b, &all_t, &all_r);
    assert_true(json_equal(all_t, want));
    /* random orders, random batch sizes, merged into a "stored" profile */
    for (int round = 0; round < 20; round++) {
        int order[NEV];
        for (int i = 0; i < NEV; i++)
            order[i] = i;
        for (int i = NEV - 1; i > 0; i--) {
            int j = (int)(rnd(&seed) % (unsigned)(i + 1)), x = order[i];
            order[i] = order[j];
            order[j] = x;
        }
        json_t *st = json_object(), *sr = json_object();
        for (int i = 0; i < NEV;) {
            int n = 1 + (int)(rnd(&seed) % 40);
            eo_profile_batch_reset(b);
            for (int k = 0; k < n && i < NEV; k++, i++)
                add_rev(b, &ev[order[i]]);
            json_t *bt, *br;
            batch_traits(b, &bt, &br);
            assert_int_equal(eo_profile_merge(st, sr, bt, br), 0);
            json_decref(bt);
            json_decref(br);
        }
        assert_true(json_equal(st, want));
        assert_true(json_equal(sr, all_r));
        json_decref(st);
        json_decref(sr);
    }
    json_decref(all_t);
    json_decref(all_r);
    json_decref(want);
    eo_profile_batch_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_touches),          cmocka_unit_test(test_trait_rules),
        cmocka_unit_test(test_links_and_groups), cmocka_unit_test(test_rank_order),
        cmocka_unit_test(test_random_orders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
