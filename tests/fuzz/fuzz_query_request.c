/* libFuzzer harness of the query API's request parser (src/domain/query_request.h) on raw
 * bytes: the first byte picks the endpoint (the specs of eo_q_endpoints) and a variant of the
 * limits, the rest is a query string split on '&' and '=' (no '=' is a bare name; bytes are
 * taken as they come, NULs included, as the HTTP layer hands decoded values over). Invariants
 * checked (abort on violation), beyond "no crash, no leak, no read past the input":
 *  - the result is 0 or EO_EINVAL; parsing the same arguments twice gives the same result;
 *  - a refusal has a non-empty message and a field of printable ASCII, both NUL-terminated
 *    within their buffers;
 *  - a request with a name the endpoint does not take, a name given twice, a bare name, a value
 *    with a NUL, or more than EO_QREQ_MAX_ARGS arguments is refused;
 *  - an accepted request keeps every limit: from < to, text parameters of 1..max bytes pointing
 *    into the given values, tz one of the zone list (or "UTC"), 2..max steps, limit, periods and
 *    within in range, a property literal of the path, a cursor id that is clean text. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/query_request.h"
#include "fuzz_check.h"

static const eo_qreq_spec_t specs[] = {
    {.params = "eventType from to"},
    {.params = "eventType interval from to tz",
     .has_default_interval = true,
     .default_interval = EO_Q_DAY},
    {.params = "eventType from to interval tz"},
    {.params = "eventType property from to limit", .default_limit = 10},
    {.params = "steps within from to"},
    {.params = "startEvent returnEvent period periods from to tz"},
    {.params = ""},
    {.params = "eventType userId from to limit cursor"},
};
#define NSPECS (sizeof specs / sizeof specs[0])

static const char *const zones[] = {"America/New_York", "Asia/Kolkata", "Europe/Berlin", "UTC"};

#define MAX_PIECES 64

typedef struct {
    char *name[MAX_PIECES], *value[MAX_PIECES];
    size_t name_len[MAX_PIECES], len[MAX_PIECES];
    size_t n;
} pieces_t;

static char *copy(const uint8_t *s, size_t n)
{
    char *c = malloc(n + 1);
    CHECK(c != NULL, "no memory");
    memcpy(c, s, n);
    c[n] = '\0';
    return c;
}

static void split(const uint8_t *s, size_t n, pieces_t *p)
{
    memset(p, 0, sizeof *p);
    size_t i = 0;
    while (i < n && p->n < MAX_PIECES) {
        const uint8_t *amp = memchr(s + i, '&', n - i);
        size_t w = amp ? (size_t)(amp - (s + i)) : n - i;
        const uint8_t *eq = memchr(s + i, '=', w);
        size_t nl = eq ? (size_t)(eq - (s + i)) : w;
        p->name[p->n] = copy(s + i, nl);
        p->name_len[p->n] = nl;
        if (eq) {
            p->len[p->n] = w - nl - 1;
            p->value[p->n] = copy(eq + 1, p->len[p->n]);
        }
        p->n++;
        i += w + 1;
    }
}

static void pieces_free(pieces_t *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->name[i]);
        free(p->value[i]);
    }
}

/* True when s lies inside one of the values. */
static bool in_values(const pieces_t *p, const char *s, size_t len)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->value[i] && s >= p->value[i] && s + len <= p->value[i] + p->len[i])
            return true;
    return false;
}

static void check_text(const pieces_t *p, const char *s, int64_t max, const char *what)
{
    if (!s)
        return;
    size_t len = strlen(s);
    CHECK(len >= 1 && len <= (size_t)max, "%s of %zu bytes", what, len);
    CHECK(in_values(p, s, len), "%s does not point into a value", what);
}

static int parse(const eo_qreq_spec_t *spec, const pieces_t *p, const eo_qreq_env_t *env,
                 eo_qreq_t *r, eo_qreq_error_t *error)
{
    eo_qargs_t a;
    eo_qargs_init(&a, spec);
    for (size_t i = 0; i < p->n; i++)
        if (!eo_qargs_add(&a, p->name[i], p->value[i], p->len[i]))
            break;
    return eo_qreq_parse(spec, &a, env, r, error);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const eo_qreq_spec_t *spec = &specs[data[0] % NSPECS];
    bool small = data[0] & 0x80;
    eo_qreq_env_t env = {
        .now_us = small ? 0 : INT64_C(1774872000500000),
        .max_event_type_bytes = small ? 3 : 200,
        .max_id_bytes = small ? 8 : 255,
        .max_periods = small ? 2 : 90,
        .max_limit = small ? 5 : 1000,
        .max_funnel_steps = small ? 2 : 100,
        .max_within_s = small ? 60 : 7776000,
        .max_buckets = 5000,
        .zones = zones,
        .nzones = sizeof zones / sizeof zones[0],
    };
    pieces_t p;
    split(data + 1, size - 1, &p);

    static eo_qreq_t r, r2;
    eo_qreq_error_t error, error2;
    int rc = parse(spec, &p, &env, &r, &error);
    CHECK(rc == 0 || rc == EO_EINVAL, "eo_qreq_parse: %d", rc);
    int rc2 = parse(spec, &p, &env, &r2, &error2);
    CHECK(rc2 == rc, "two parses disagree: %d, %d", rc, rc2);

    /* what must be refused */
    bool must_refuse = p.n > EO_QREQ_MAX_ARGS;
    for (size_t i = 0; i < p.n; i++) {
        must_refuse |=
            strlen(p.name[i]) == p.name_len[i] && !eo_qreq_takes(spec->params, p.name[i]);
        must_refuse |= !p.value[i] || strlen(p.value[i]) != p.len[i];
        for (size_t k = 0; k < i; k++)
            must_refuse |= strcmp(p.name[k], p.name[i]) == 0;
    }
    CHECK(!must_refuse || rc == EO_EINVAL, "a request that must be refused was accepted");

    if (rc != 0) {
        CHECK(strnlen(error.message, sizeof error.message) < sizeof error.message &&
                  error.message[0],
              "refusal without a message");
        CHECK(strcmp(error.message, error2.message) == 0 && strcmp(error.field, error2.field) == 0,
              "two refusals differ");
        size_t fl = strnlen(error.field, sizeof error.field);
        CHECK(fl < sizeof error.field, "field not NUL-terminated");
        for (size_t i = 0; i < fl; i++)
            CHECK(error.field[i] >= 0x20 && error.field[i] < 0x7f, "field byte 0x%02x",
                  (unsigned char)error.field[i]);
        pieces_free(&p);
        return 0;
    }

    CHECK(r.from_us < r.to_us, "from %lld >= to %lld", (long long)r.from_us, (long long)r.to_us);
    CHECK(r.ranged == eo_qreq_takes(spec->params, "to"), "ranged");
    check_text(&p, r.event_type, env.max_event_type_bytes, "eventType");
    check_text(&p, r.start_event, env.max_event_type_bytes, "startEvent");
    check_text(&p, r.return_event, env.max_event_type_bytes, "returnEvent");
    check_text(&p, r.user_id, env.max_id_bytes, "userId");
    CHECK(eo_qreq_takes(spec->params, "startEvent") == (r.start_event != NULL), "startEvent");
    bool zone = strcmp(r.tz, "UTC") == 0;
    for (size_t i = 0; i < env.nzones; i++)
        zone |= r.tz == zones[i];
    CHECK(zone, "tz '%s' is not of the list", r.tz);
    CHECK(r.limit >= 1 && (r.limit <= env.max_limit || r.limit == EO_QREQ_DEFAULT_LIMIT ||
                           r.limit == spec->default_limit),
          "limit %lld", (long long)r.limit);
    if (eo_qreq_takes(spec->params, "period")) {
        CHECK(r.has_unit && (r.unit == EO_Q_DAY || r.unit == EO_Q_WEEK), "period");
        CHECK(r.periods >= 1 && (r.periods <= env.max_periods || r.periods == 7), "periods");
    }
    if (eo_qreq_takes(spec->params, "steps")) {
        CHECK(r.nsteps >= 2 && r.nsteps <= (size_t)env.max_funnel_steps, "%zu steps", r.nsteps);
        for (size_t k = 0; k < r.nsteps; k++)
            CHECK(r.step_len[k] >= 1 && r.step_len[k] <= (size_t)env.max_event_type_bytes &&
                      in_values(&p, r.steps[k], r.step_len[k]),
                  "step %zu", k);
        CHECK(r.within_s >= 1 && (r.within_s <= env.max_within_s || r.within_s == 86400),
              "within %lld", (long long)r.within_s);
    } else {
        CHECK(r.nsteps == 0, "steps without steps");
    }
    if (eo_qreq_takes(spec->params, "property")) {
        CHECK(r.property && r.property_path[0] == '{', "property");
        size_t lit = strnlen(r.property_path, sizeof r.property_path);
        CHECK(lit < sizeof r.property_path && r.property_path[lit - 1] == '}', "literal");
    }
    if (r.has_cursor) {
        size_t idl = strnlen(r.cursor_id, sizeof r.cursor_id);
        CHECK(idl >= 1 && idl < sizeof r.cursor_id && clean_utf8((const uint8_t *)r.cursor_id, idl),
              "cursor id");
    }
    CHECK(memcmp(&r, &r2, sizeof r) == 0, "two parses of one request differ");
    pieces_free(&p);
    return 0;
}
