/* libFuzzer harness of the analytics rule parser (src/domain/rule.h) on raw bytes: the input is
 * the posted body, parsed under the default limits and under small ones. Invariants checked
 * (abort on violation), beyond "no crash, no leak, no read past the input":
 *  - the result is 0, EO_EINVAL, EO_EPARSE or EO_ELIMIT, and the same on a second parse; a body
 *    over the size limit (never below EO_RULE_JSON_MAX) is too_large, others are not;
 *  - a refusal has one of the documented codes, a field of printable ASCII and a non-empty
 *    message, both NUL-terminated within their buffers;
 *  - an accepted rule keeps every limit (name and eventType lengths and text, window sizes,
 *    panes, zone only on day/week tumbling windows, 0..2 distinct paths, buckets and span,
 *    grace <= horizon <= the limit, maxGroups, a finite condition);
 *  - the round trip: eo_rule_to_json succeeds, its text parses again to an eo_rule_equal rule,
 *    and writing that rule gives the same text;
 *  - the rule's paths read from a fixed event give NUL-terminated text within the cap, and the
 *    summary eventId of its name as group text is a version 5 UUID. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/rule.h"
#include "fuzz_check.h"

static const char *const codes[] = {"too_large",     "malformed_json", "invalid_type",
                                    "unknown_field", "missing_field",  "invalid_rule"};

static void check_refusal(int rc, const eo_event_error_t *err)
{
    CHECK(rc == EO_EINVAL || rc == EO_EPARSE || rc == EO_ELIMIT, "rc %d", rc);
    size_t cl = strnlen(err->code, sizeof err->code);
    CHECK(cl < sizeof err->code, "code not NUL-terminated");
    bool known = false;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        known |= strcmp(err->code, codes[i]) == 0;
    CHECK(known, "unknown code '%s'", err->code);
    CHECK((rc == EO_ELIMIT) == (strcmp(err->code, "too_large") == 0), "too_large with rc %d", rc);
    CHECK((rc == EO_EPARSE) == (strcmp(err->code, "malformed_json") == 0),
          "malformed_json with rc %d", rc);
    size_t ml = strnlen(err->message, sizeof err->message);
    CHECK(ml < sizeof err->message && ml > 0, "message missing or not NUL-terminated");
    size_t fl = strnlen(err->field, sizeof err->field);
    CHECK(fl < sizeof err->field, "field not NUL-terminated");
    for (size_t i = 0; i < fl; i++)
        CHECK(err->field[i] >= 0x20 && err->field[i] < 0x7f, "field byte 0x%02x",
              (unsigned char)err->field[i]);
}

static void check_path(const eo_path_t *p, bool property)
{
    size_t n = strnlen(p->text, sizeof p->text);
    CHECK(n >= 1 && n <= EO_RULE_PATH_MAX, "path of %zu bytes", n);
    if (p->root == EO_PATH_PROPERTIES || p->root == EO_PATH_CONTEXT) {
        CHECK(p->nkeys >= 1 && p->nkeys <= 4, "%zu keys", p->nkeys);
        for (size_t i = 0; i < p->nkeys; i++)
            CHECK(p->key_len[i] >= 1 && p->key_off[i] + p->key_len[i] <= n, "key %zu", i);
    } else {
        CHECK(!property, "property path with root %d", (int)p->root);
        CHECK(p->nkeys == 0, "keys under a top-level path");
    }
}

static bool clean_text(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    return n >= 1 && n <= max && clean_utf8((const uint8_t *)s, n);
}

static void check_rule(const eo_rule_t *r, const eo_rule_limits_t *lim)
{
    CHECK(clean_text(r->name, EO_RULE_NAME_MAX), "name");
    CHECK(clean_text(r->event_type, 128), "eventType");
    switch (r->win) {
    case EO_WIN_TUMBLING:
    case EO_WIN_HOPPING:
    case EO_WIN_SLIDING:
        CHECK(r->size_us >= lim->min_window_us && r->size_us <= lim->max_window_us, "size");
        CHECK(r->gap_us == 0, "gap without session");
        break;
    case EO_WIN_SESSION:
        CHECK(r->gap_us >= lim->min_window_us && r->gap_us <= lim->max_window_us, "gap");
        CHECK(r->size_us == 0 && r->slide_us == 0, "size or slide on a session");
        break;
    default:
        CHECK(false, "window type %d", (int)r->win);
    }
    if (r->win == EO_WIN_TUMBLING)
        CHECK(r->slide_us == r->size_us, "tumbling slide");
    if (r->win == EO_WIN_HOPPING) {
        CHECK(r->slide_us > 0 && r->slide_us < r->size_us, "hopping slide");
        int64_t a = r->size_us, b = r->slide_us;
        while (b) {
            int64_t t = a % b;
            a = b;
            b = t;
        }
        CHECK(r->size_us / a <= lim->max_panes, "panes");
    }
    if (r->win == EO_WIN_SLIDING)
        CHECK(r->slide_us == 0 && (r->fn == EO_AGG_COUNT || r->fn == EO_AGG_UNIQUE_USERS),
              "sliding");
    bool day = r->win == EO_WIN_TUMBLING &&
               (r->size_us == INT64_C(86400000000) || r->size_us == INT64_C(604800000000));
    CHECK(day || strcmp(r->zone, "UTC") == 0, "zone '%s' on a window other than 1d/1w", r->zone);
    CHECK(r->ngroup <= EO_RULE_MAX_GROUP_BY, "%zu groups", r->ngroup);
    for (size_t i = 0; i < r->ngroup; i++) {
        check_path(&r->group_by[i], false);
        for (size_t k = 0; k < i; k++)
            CHECK(strcmp(r->group_by[i].text, r->group_by[k].text) != 0, "repeated group");
    }
    if (r->has_property)
        check_path(&r->property, true);
    bool rolling = r->fn == EO_AGG_ROLLING_MEAN || r->fn == EO_AGG_ROLLING_SUM;
    CHECK(rolling ? r->buckets >= 1 && r->buckets <= lim->max_buckets : r->buckets == 0, "buckets");
    CHECK(r->fn == EO_AGG_EWMA ? r->span >= 1 && r->span <= lim->max_buckets : r->span == 0,
          "span");
    CHECK(r->grace_us >= 0 && r->grace_us <= r->horizon_us && r->horizon_us <= lim->max_horizon_us,
          "grace %lld, horizon %lld", (long long)r->grace_us, (long long)r->horizon_us);
    CHECK(r->max_groups >= 1 && r->max_groups <= lim->max_groups, "maxGroups");
    CHECK(r->cooldown_us >= 0 && r->cooldown_us <= EO_DURATION_MAX_US, "cooldown");
    const eo_condition_t *c = &r->cond;
    if (c->present) {
        CHECK(isfinite(c->value) && (!c->has_clear || isfinite(c->clear_value)), "not finite");
        CHECK(c->for_us >= 0 && c->keep_firing_for_us >= 0, "negative durations");
        CHECK(!c->early || c->op == EO_CMP_GE || c->op == EO_CMP_GT, "early with op %d",
              (int)c->op);
    }
}

/* parse(to_json(r)) == r, and the text is stable. */
static void check_round_trip(const eo_rule_t *r, const eo_rule_limits_t *lim)
{
    static eo_rule_t again;
    eo_buf_t out, out2;
    eo_buf_init(&out, 1 << 20);
    eo_buf_init(&out2, 1 << 20);
    CHECK(eo_rule_to_json(r, &out) == 0, "to_json failed");
    eo_event_error_t err;
    int rc = eo_rule_parse(out.data, out.len, lim, &again, &err);
    CHECK(rc == 0, "canonical text refused (%s at %s: %s): %s", err.code, err.field, err.message,
          out.data);
    CHECK(eo_rule_equal(r, &again), "round trip changed the rule: %s", out.data);
    CHECK(eo_rule_to_json(&again, &out2) == 0, "second to_json failed");
    CHECK(out.len == out2.len && memcmp(out.data, out2.data, out.len) == 0,
          "canonical text not stable:\n%s\n%s", out.data, out2.data);
    eo_buf_done(&out);
    eo_buf_done(&out2);
}

/* A decoded event with nested properties and context, built once. */
static const eo_event_t *fixed_event(void)
{
    static json_t *json;
    static eo_event_t ev;
    if (json)
        return &ev;
    const char *text =
        "{\"eventType\":\"checkout\",\"userId\":\"u1\",\"properties\":{\"plan\":\"pro\","
        "\"amount\":12.5,\"n\":3,\"a\":{\"b\":{\"c\":{\"d\":\"deep\"}}},\"flag\":true,"
        "\"utf\":\"\\u00e9\\u00e9\\u00e9\\u00e9\"},\"context\":{\"country\":\"DE\"}}";
    json = json_loads(text, 0, NULL);
    CHECK(json != NULL, "fixed event");
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    eo_event_error_t err;
    CHECK(eo_event_normalize(json, &lim, INT64_C(1774872000000000), 0, &ev, &err) == 0,
          "fixed event: %s", err.message);
    return &ev; /* json stays alive for the process */
}

static void check_read(const eo_path_t *p)
{
    const eo_event_t *ev = fixed_event();
    for (size_t cap = 1; cap <= 8; cap += 7) {
        char out[9];
        memset(out, 'x', sizeof out);
        (void)eo_rule_path_text(p, ev, out, cap);
        CHECK(strnlen(out, cap) < cap, "path text of cap %zu not NUL-terminated", cap);
    }
    double d;
    if (eo_rule_path_number(p, ev, &d))
        CHECK(isfinite(d), "path number not finite");
}

static void check_uses(const eo_rule_t *r)
{
    for (size_t i = 0; i < r->ngroup; i++)
        check_read(&r->group_by[i]);
    if (r->has_property)
        check_read(&r->property);
    char id[37];
    CHECK(eo_summary_event_id("tenant", "rule", 1, r->name, 0, "firing", id) == 0, "event id");
    CHECK(strlen(id) == 36 && id[14] == '5' && strchr("89ab", id[19]), "event id %s", id);
    eo_alert_state_t s;
    eo_alert_init(&s);
    static const double values[] = {0, 1e9, -1e9, 0, 1e9};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        int t = eo_alert_step(&r->cond, r->cooldown_us, &s, values[i], (int64_t)i * 60000000);
        CHECK(t == -1 || t == EO_ALERT_FIRING || t == EO_ALERT_RESOLVED, "alert step %d", t);
    }
}

static void run(const uint8_t *data, size_t size, const eo_rule_limits_t *lim)
{
    static eo_rule_t r, r2;
    eo_event_error_t err, err2;
    size_t max = lim->max_rule_bytes > EO_RULE_JSON_MAX ? lim->max_rule_bytes : EO_RULE_JSON_MAX;
    int rc = eo_rule_parse((const char *)data, size, lim, &r, &err);
    int rc2 = eo_rule_parse((const char *)data, size, lim, &r2, &err2);
    CHECK(rc == rc2, "two parses disagree: %d, %d", rc, rc2);
    if (rc != 0) {
        check_refusal(rc, &err);
        CHECK(strcmp(err.code, err2.code) == 0 && strcmp(err.field, err2.field) == 0 &&
                  strcmp(err.message, err2.message) == 0,
              "two refusals differ");
        CHECK((rc == EO_ELIMIT) == (size > max), "too_large for %zu bytes: %d", size, rc);
        return;
    }
    CHECK(size <= max, "oversized body accepted");
    CHECK(eo_rule_equal(&r, &r2), "two parses of one rule differ");
    check_rule(&r, lim);
    check_round_trip(&r, lim);
    check_uses(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eo_rule_limits_t lim;
    eo_rule_limits_default(&lim);
    run(data, size, &lim);
    eo_rule_limits_t small = {
        .max_window_us = INT64_C(3600000000),
        .min_window_us = INT64_C(60000000),
        .max_panes = 5,
        .max_groups = 3,
        .max_horizon_us = INT64_C(600000000),
        .max_buckets = 4,
        .max_rule_bytes = 512, /* applied as EO_RULE_JSON_MAX */
    };
    run(data, size, &small);
    return 0;
}
