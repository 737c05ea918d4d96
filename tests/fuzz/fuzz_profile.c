/* libFuzzer harness of the profile rules (domain/profile.h): outside properties -> profile,
 * link and group changes. Input: up to 16 events separated by byte 0xff; in each, byte 0 picks
 * the event type, byte 1 the user (or an anonymous id), byte 2 the time, and the rest is the
 * properties object as JSON (an event whose rest is not an object has no properties).
 * Invariants checked (abort on violation), beyond "no crash, no leak":
 *  - an event that eo_profile_touches calls untouched (from its tree, or from its text) changes
 *    nothing: a batch of it alone stays empty;
 *  - the batch's document is JSON; each profile's and group's traits are a subset of its ranks,
 *    and every rank is a valid one;
 *  - differential: one batch of all events has the same traits and ranks per profile as the
 *    events added one batch each, in reverse order, merged with eo_profile_merge (what the store
 *    does across transactions). */

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/profile.h"
#include "fuzz_check.h"

#define TENANT "0190a5b6-1234-7abc-8def-0123456789ab"
#define MAX_EVENTS 16

typedef struct {
    const char *type;
    const char *user, *anon;
    char mid[8];
    int64_t t;
    json_t *props; /* NULL: none */
    eo_buf_t text; /* props as JSON text */
} fev_t;

static eo_str_t S(const char *s)
{
    return s ? (eo_str_t){s, strlen(s)} : (eo_str_t){NULL, 0};
}

static void add(eo_profile_batch_t *b, const fev_t *e)
{
    eo_profile_event_t ev = {TENANT, S(e->type), S(e->user), S(e->anon), S(e->mid), e->t, e->props};
    CHECK(eo_profile_batch_add(b, &ev) == 0, "add failed");
}

static json_t *doc(const eo_profile_batch_t *b)
{
    eo_buf_t out;
    eo_buf_init(&out, (size_t)64 << 20);
    CHECK(eo_profile_batch_json(b, &out) == 0, "json failed");
    json_error_t je;
    json_t *d = json_loadb(out.data, out.len, 0, &je);
    CHECK(d, "the batch's document is not JSON: %s: %.*s", je.text, (int)out.len, out.data);
    eo_buf_done(&out);
    return d;
}

static void check_entries(const json_t *arr)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const json_t *traits = json_object_get(e, "traits"), *ranks = json_object_get(e, "ranks");
        CHECK(json_is_object(traits) && json_is_object(ranks), "traits or ranks missing");
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)traits, k, v)
        {
            CHECK(json_object_get(ranks, k), "trait %s has no rank", k);
        }
        json_object_foreach((json_t *)ranks, k, v)
        {
            json_t *none = json_array();
            CHECK(eo_profile_rank_cmp(v, none) > 0, "rank of %s is not valid", k);
            json_decref(none);
        }
    }
}

/* The profiles of d by key: {key: [traits, ranks]}. */
static json_t *by_key(const json_t *d)
{
    json_t *m = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(d, "profiles"), i, e)
    {
        json_object_set_new(
            m, json_string_value(json_object_get(e, "k")),
            json_pack("[OO]", json_object_get(e, "traits"), json_object_get(e, "ranks")));
    }
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const types[] = {"$identify", "$create_alias", "$groupidentify",
                                        "page",      "$set",          "$pageview"};
    static const char *const users[] = {"u0", "u1", "u2", NULL};
    fev_t ev[MAX_EVENTS];
    size_t n = 0, pos = 0;
    while (pos < size && n < MAX_EVENTS) {
        const uint8_t *end = memchr(data + pos, 0xff, size - pos);
        size_t len = end ? (size_t)(end - (data + pos)) : size - pos;
        const uint8_t *p = data + pos;
        fev_t *e = &ev[n];
        memset(e, 0, sizeof *e);
        e->type = types[(len > 0 ? p[0] : 0) % 6];
        e->user = users[(len > 1 ? p[1] : 0) % 4];
        e->anon = (len > 1 && (p[1] & 4)) || !e->user ? "anon" : NULL;
        e->t = len > 2 ? (int64_t)p[2] - 128 : 0;
        snprintf(e->mid, sizeof e->mid, "m%02zu", n);
        eo_buf_init(&e->text, (size_t)1 << 20);
        if (len > 3) {
            json_t *v = json_loadb((const char *)p + 3, len - 3, JSON_REJECT_DUPLICATES, NULL);
            if (json_is_object(v)) {
                e->props = v;
                char *t = json_dumps(v, JSON_COMPACT);
                if (t)
                    eo_buf_puts(&e->text, t);
                free(t);
            } else
                json_decref(v);
        }
        n++;
        pos += len + 1;
    }
    eo_profile_batch_t *all, *one;
    CHECK(eo_profile_batch_new(&all) == 0 && eo_profile_batch_new(&one) == 0, "new failed");
    json_t *stored = json_object(); /* key -> [traits, ranks], merged batch by batch */
    for (size_t i = n; i-- > 0;) {
        eo_profile_batch_reset(one);
        add(one, &ev[i]);
        eo_str_t text = {ev[i].text.data, ev[i].text.len};
        if (!eo_profile_touches(S(ev[i].type), ev[i].props, (eo_str_t){NULL, 0}) ||
            !eo_profile_touches(S(ev[i].type), NULL, ev[i].props ? text : (eo_str_t){NULL, 0}))
            CHECK(eo_profile_batch_empty(one), "an untouched event %zu changed a profile", i);
        json_t *d = doc(one);
        check_entries(json_object_get(d, "profiles"));
        check_entries(json_object_get(d, "groups"));
        json_t *m = by_key(d);
        const char *k;
        json_t *v;
        json_object_foreach(m, k, v)
        {
            json_t *s = json_object_get(stored, k);
            if (!s) {
                json_object_set_new(stored, k, json_pack("[oo]", json_object(), json_object()));
                s = json_object_get(stored, k);
            }
            CHECK(eo_profile_merge(json_array_get(s, 0), json_array_get(s, 1), json_array_get(v, 0),
                                   json_array_get(v, 1)) == 0,
                  "merge failed");
        }
        json_decref(m);
        json_decref(d);
    }
    for (size_t i = 0; i < n; i++)
        add(all, &ev[i]);
    json_t *d = doc(all);
    check_entries(json_object_get(d, "profiles"));
    check_entries(json_object_get(d, "groups"));
    json_t *m = by_key(d);
    CHECK(json_equal(m, stored), "one batch and batch-by-batch merging differ");
    json_decref(m);
    json_decref(d);
    json_decref(stored);
    eo_profile_batch_free(all);
    eo_profile_batch_free(one);
    for (size_t i = 0; i < n; i++) {
        json_decref(ev[i].props);
        eo_buf_done(&ev[i].text);
    }
    return 0;
}
