/* A query API request from its parameters (see query_request.h). */
#include "domain/query_request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/rfc3339.h"

bool eo_qreq_takes(const char *params, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = params; *p;) {
        size_t w = strcspn(p, " ");
        if (w == n && memcmp(p, name, n) == 0)
            return true;
        p += w;
        while (*p == ' ')
            p++;
    }
    return false;
}

void eo_qargs_init(eo_qargs_t *a, const eo_qreq_spec_t *spec)
{
    memset(a, 0, sizeof *a);
    a->params = spec->params;
}

__attribute__((format(printf, 2, 3))) static bool refuse(eo_qargs_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->error.message, sizeof a->error.message, fmt, ap);
    va_end(ap);
    a->refused = true;
    return false;
}

bool eo_qargs_add(eo_qargs_t *a, const char *name, const char *value, size_t value_len)
{
    if (a->refused)
        return false;
    snprintf(a->error.field, sizeof a->error.field, "%.64s", name);
    for (char *p = a->error.field; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    if (!eo_qreq_takes(a->params, name))
        return refuse(a, "unknown parameter; this endpoint takes: %s", a->params);
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->name[i], name) == 0)
            return refuse(a, "the parameter is given more than once");
    if (!value)
        return refuse(a, "the parameter has no value");
    if (strlen(value) != value_len || !eo_q_text_ok(value, value_len))
        return refuse(a, "the value holds a control character or is not UTF-8");
    if (a->n == EO_QREQ_MAX_ARGS)
        return refuse(a, "too many parameters");
    a->name[a->n] = name;
    a->value[a->n] = value;
    a->len[a->n] = value_len;
    a->n++;
    a->error.field[0] = '\0';
    return true;
}

static const char *arg(const eo_qargs_t *a, const char *name, size_t *len)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->name[i], name) == 0) {
            *len = a->len[i];
            return a->value[i];
        }
    return NULL;
}

/* EO_EINVAL with "<field> <detail>" in error. */
__attribute__((format(printf, 3, 4))) static int bad(eo_qreq_error_t *error, const char *field,
                                                     const char *fmt, ...)
{
    char detail[224];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(error->field, sizeof error->field, "%s", field);
    snprintf(error->message, sizeof error->message, "%s %s", field, detail);
    return EO_EINVAL;
}

/* An event-type-like text parameter: 1..max bytes. */
static int text_param(const eo_qargs_t *a, const char *name, int64_t max, bool required,
                      const char **out, eo_qreq_error_t *error)
{
    size_t len = 0;
    const char *v = arg(a, name, &len);
    *out = v;
    if (!v && required)
        return bad(error, name, "is required");
    if (v && (len == 0 || len > (size_t)max))
        return bad(error, name, "must be 1 to %lld bytes", (long long)max);
    return 0;
}

static int cmp_zone(const void *key, const void *zone)
{
    return strcmp(key, *(const char *const *)zone);
}

/* from, to and their defaults. */
static int parse_range(const eo_qreq_spec_t *spec, const eo_qargs_t *a, const eo_qreq_env_t *env,
                       eo_qreq_t *r, eo_qreq_error_t *error)
{
    size_t len = 0;
    const char *v;
    bool has_from = false, has_to = false;
    if ((v = arg(a, "from", &len))) {
        if (eo_rfc3339_parse(v, len, &r->from_us) < 0)
            return bad(error, "from", "%s", "must be an RFC 3339 time, e.g. 2026-03-29T00:00:00Z");
        has_from = true;
    }
    if ((v = arg(a, "to", &len))) {
        if (eo_rfc3339_parse(v, len, &r->to_us) < 0)
            return bad(error, "to", "%s", "must be an RFC 3339 time, e.g. 2026-03-30T00:00:00Z");
        has_to = true;
    }
    r->ranged = eo_qreq_takes(spec->params, "to");
    if (!has_to) {
        r->to_us = (env->now_us / 1000000 + 1) * 1000000; /* the next whole second */
        if (has_from && r->from_us >= r->to_us)
            return bad(error, "from", "%s", "must be before to (default: now)");
    }
    if (!has_from)
        r->from_us = r->to_us - EO_QREQ_DEFAULT_RANGE_US;
    if (r->from_us >= r->to_us)
        return bad(error, "from", "%s", "must be before to");
    return 0;
}

/* tz, interval, and period with periods. */
static int parse_units(const eo_qreq_spec_t *spec, const eo_qargs_t *a, const eo_qreq_env_t *env,
                       eo_qreq_t *r, eo_qreq_error_t *error)
{
    size_t len = 0;
    const char *v;
    r->tz = "UTC";
    if ((v = arg(a, "tz", &len))) {
        const char *const *hit =
            eo_q_zone_shape_ok(v, len) && env->nzones
                ? bsearch(v, env->zones, env->nzones, sizeof *env->zones, cmp_zone)
                : NULL;
        if (!hit)
            return bad(error, "tz", "%s", "must be an IANA time zone name, e.g. Europe/Berlin");
        r->tz = *hit;
    }
    r->unit_field = "interval";
    if ((v = arg(a, "interval", &len))) {
        if (eo_q_interval(v, len, &r->unit) < 0)
            return bad(error, "interval", "%s",
                       "must be minute, hour, day, week or month (or hourly, daily, weekly, "
                       "monthly)");
        r->has_unit = true;
    } else if (spec->has_default_interval) {
        r->unit = spec->default_interval;
        r->has_unit = true;
    }
    if (!eo_qreq_takes(spec->params, "period"))
        return 0;
    r->unit_field = "period";
    r->unit = EO_Q_DAY;
    if ((v = arg(a, "period", &len)) && eo_q_period(v, len, &r->unit) < 0)
        return bad(error, "period", "%s", "must be day or week (or daily, weekly)");
    r->has_unit = true;
    r->periods = EO_QREQ_DEFAULT_PERIODS;
    if ((v = arg(a, "periods", &len)) && eo_q_int(v, len, 1, env->max_periods, &r->periods) < 0)
        return bad(error, "periods", "must be an integer from 1 to %lld",
                   (long long)env->max_periods);
    return 0;
}

/* steps and within. */
static int parse_funnel(const eo_qargs_t *a, const eo_qreq_env_t *env, eo_qreq_t *r,
                        eo_qreq_error_t *error)
{
    size_t len = 0;
    const char *v;
    size_t max_steps = env->max_funnel_steps < EO_QREQ_MAX_STEPS ? (size_t)env->max_funnel_steps
                                                                 : (size_t)EO_QREQ_MAX_STEPS;
    if (!(v = arg(a, "steps", &len)) ||
        eo_q_list(v, len, max_steps, (size_t)env->max_event_type_bytes, r->steps, r->step_len,
                  &r->nsteps) < 0 ||
        r->nsteps < 2)
        return bad(error, "steps", "must list 2 to %lld event types, comma-separated",
                   (long long)env->max_funnel_steps);
    r->within_s = EO_QREQ_DEFAULT_WITHIN_S;
    if ((v = arg(a, "within", &len)) && eo_q_within(v, len, env->max_within_s, &r->within_s) < 0)
        return bad(error, "within",
                   "must be a number and a unit s, m, h, d or w (e.g. 1d), from 1 s to %lld s",
                   (long long)env->max_within_s);
    return 0;
}

int eo_qreq_parse(const eo_qreq_spec_t *spec, const eo_qargs_t *a, const eo_qreq_env_t *env,
                  eo_qreq_t *r, eo_qreq_error_t *error)
{
    memset(error, 0, sizeof *error);
    if (a->refused) {
        *error = a->error;
        return EO_EINVAL;
    }
    memset(r, 0, sizeof *r);
    r->max_buckets = env->max_buckets;
    r->max_funnel_events = env->max_funnel_events;
    int rc = text_param(a, "eventType", env->max_event_type_bytes, false, &r->event_type, error);
    rc = rc ? rc : parse_range(spec, a, env, r, error);
    rc = rc ? rc : parse_units(spec, a, env, r, error);
    if (rc == 0 && eo_qreq_takes(spec->params, "startEvent"))
        rc = text_param(a, "startEvent", env->max_event_type_bytes, true, &r->start_event, error);
    if (rc == 0 && eo_qreq_takes(spec->params, "returnEvent"))
        rc = text_param(a, "returnEvent", env->max_event_type_bytes, true, &r->return_event, error);
    if (rc)
        return rc;
    size_t len = 0;
    const char *v;
    r->limit = spec->default_limit ? spec->default_limit : EO_QREQ_DEFAULT_LIMIT;
    if ((v = arg(a, "limit", &len)) && eo_q_int(v, len, 1, env->max_limit, &r->limit) < 0)
        return bad(error, "limit", "must be an integer from 1 to %lld", (long long)env->max_limit);
    if (eo_qreq_takes(spec->params, "property")) {
        if (!(v = arg(a, "property", &len)))
            return bad(error, "property", "%s", "is required (a path such as plan)");
        if (eo_q_property(v, len, r->property_path, sizeof r->property_path) < 0)
            return bad(error, "property", "%s",
                       "must be 1 to 4 names joined by '.', each 1 to 64 of A-Z a-z 0-9 _ $ -");
        r->property = v;
    }
    if (eo_qreq_takes(spec->params, "steps") && (rc = parse_funnel(a, env, r, error)) < 0)
        return rc;
    if ((rc = text_param(a, "userId", env->max_id_bytes, false, &r->user_id, error)) < 0)
        return rc;
    if ((v = arg(a, "cursor", &len))) {
        if (eo_q_cursor_decode(v, len, &r->cursor_us, r->cursor_id, sizeof r->cursor_id) < 0)
            return bad(error, "cursor", "%s",
                       "is not a cursor this API gave (pass nextCursor back unchanged)");
        r->has_cursor = true;
    }
    return 0;
}
