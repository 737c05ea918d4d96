/* The query endpoints: SQL and JSON answers (docs/query.md says which table answers what).
 * Every statement is parameterised and filters on the tenant first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pg.h"
#include "domain/rfc3339.h"
#include "query/query_internal.h"

#define US_PER_MIN INT64_C(60000000)
#define US_PER_QUARTER (15 * US_PER_MIN)
#define US_PER_HOUR (60 * US_PER_MIN)
#define US_PER_DAY (24 * US_PER_HOUR)

/* ---- helpers ---- */

static int query(PGconn *conn, const char *sql, int n, const char *const *params, PGresult **res,
                 char *err, size_t errlen)
{
    int r = eo_pg_query(conn, sql, n, params, res, err, errlen);
    if (r < 0 && strncmp(err, "57014", 5) == 0) /* query_canceled: the statement timeout */
        return EO_ETIMEOUT;
    return r;
}

static int64_t num(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Appends "key":"<UTC time>" (RFC 3339). */
static int put_time(eo_buf_t *b, const char *key, int64_t us)
{
    char t[EO_RFC3339_MAX];
    eo_rfc3339_format(us, t);
    return eo_buf_printf(b, "\"%s\":\"%s\"", key, t);
}

static int put_str_or_null(eo_buf_t *b, const char *key, const char *s)
{
    int r = eo_buf_printf(b, "\"%s\":", key);
    if (r == 0)
        r = s ? eo_buf_append_json_str(b, s, strlen(s)) : eo_buf_append_str(b, "null");
    return r;
}

/* {["eventType":..,]"from":..,"to":.. (no closing brace) */
static int put_open(eo_buf_t *b, const qreq_t *r, bool event_type)
{
    int rc = eo_buf_append_char(b, '{');
    if (event_type) {
        rc = rc ? rc : put_str_or_null(b, "eventType", r->event_type);
        rc = rc ? rc : eo_buf_append_char(b, ',');
    }
    rc = rc ? rc : put_time(b, "from", r->from_us);
    rc = rc ? rc : eo_buf_append_char(b, ',');
    rc = rc ? rc : put_time(b, "to", r->to_us);
    return rc;
}

static int put_interval_tz(eo_buf_t *b, const qreq_t *r)
{
    int rc = eo_buf_printf(b, ",\"interval\":\"%s\",\"tz\":", eo_q_unit_name(r->unit));
    return rc ? rc : eo_buf_append_json_str(b, r->tz, strlen(r->tz));
}

/* Bucket starts (UTC microseconds) and the zone's offset at each (seconds). */
typedef struct {
    int64_t *start;
    int64_t *offset;
    size_t n;
} buckets_t;

static void buckets_free(buckets_t *bk)
{
    free(bk->start);
    free(bk->offset);
}

static int fetch_buckets(PGconn *conn, const qreq_t *r, eo_q_unit_t unit, buckets_t *bk,
                         const char **field, char *err, size_t errlen)
{
    memset(bk, 0, sizeof *bk);
    int64_t max = r->cfg->query_max_buckets;
    int64_t estimate = (r->to_us - r->from_us) / (eo_q_unit_min_s(unit) * 1000000) + 2;
    if (estimate > 4 * max + 8) {
        *field = r->ep == EP_RETENTION ? "period" : "interval";
        snprintf(err, errlen, "the range holds far more than %lld %s buckets", (long long)max,
                 eo_q_unit_name(unit));
        return EO_ELIMIT;
    }
    char from[EO_RFC3339_MAX], to[EO_RFC3339_MAX];
    eo_rfc3339_format(r->from_us, from);
    eo_rfc3339_format(r->to_us, to);
    const char *p[] = {from, to, eo_q_unit_name(unit), r->tz};
    PGresult *res;
    int rc = query(conn,
                   "SELECT (extract(epoch FROM b) * 1000000)::bigint,"
                   " (extract(epoch FROM b AT TIME ZONE $4) - extract(epoch FROM b))::bigint"
                   " FROM eventops_buckets($1::timestamptz, $2::timestamptz, $3, $4) AS b",
                   4, p, &res, err, errlen);
    if (rc < 0)
        return rc;
    int n = PQntuples(res);
    if (n > max) {
        PQclear(res);
        *field = r->ep == EP_RETENTION ? "period" : "interval";
        snprintf(err, errlen, "the range holds %d %s buckets; at most %lld are allowed", n,
                 eo_q_unit_name(unit), (long long)max);
        return EO_ELIMIT;
    }
    bk->start = calloc((size_t)n + 1, sizeof *bk->start);
    bk->offset = calloc((size_t)n + 1, sizeof *bk->offset);
    if (!bk->start || !bk->offset) {
        PQclear(res);
        buckets_free(bk);
        return EO_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        bk->start[bk->n] = num(res, i, 0);
        bk->offset[bk->n] = num(res, i, 1);
        bk->n++;
    }
    PQclear(res);
    if (bk->n == 0 || bk->start[0] > r->from_us) { /* no boundary at or before from */
        memmove(bk->start + 1, bk->start, bk->n * sizeof *bk->start);
        memmove(bk->offset + 1, bk->offset, bk->n * sizeof *bk->offset);
        bk->start[0] = r->from_us;
        bk->offset[0] = bk->n ? bk->offset[1] : 0;
        bk->n++;
    }
    return 0;
}

/* A PostgreSQL array literal of times: {"t1","t2",...}. */
static int put_time_array(eo_buf_t *b, const int64_t *us, size_t n)
{
    int rc = eo_buf_append_char(b, '{');
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char t[EO_RFC3339_MAX];
        eo_rfc3339_format(us[i], t);
        rc = eo_buf_printf(b, "%s\"%s\"", i ? "," : "", t);
    }
    return rc ? rc : eo_buf_append_char(b, '}');
}

/* ---- count and trend: rollups ---- */

#define MAX_RAW 8 /* sub-minute pieces: only at a from or to that is not a whole minute */

typedef struct {
    eo_buf_t g, s, e;                 /* rollup pieces: granularity, start, end (array literals) */
    int64_t rs[MAX_RAW], re[MAX_RAW]; /* raw pieces (under a minute each) */
    size_t n, nraw;
    int level; /* the pending rollup piece, merged with its neighbour of the same granularity */
    int64_t ps, pe;
    int rc;
} pieces_t;

#define LEVELS 4 /* rollup granularities, largest first; LEVELS itself stands for raw events */
static const int64_t level_us[LEVELS] = {US_PER_DAY, US_PER_HOUR, US_PER_QUARTER, US_PER_MIN};
static const char *const level_name[LEVELS] = {"day", "hour", "quarter", "minute"};

static int64_t floor_to(int64_t t, int64_t g)
{
    int64_t q = t / g;
    if (t % g != 0 && t < 0)
        q--;
    return q * g;
}

static int64_t ceil_to(int64_t t, int64_t g)
{
    int64_t f = floor_to(t, g);
    return f == t ? t : f + g;
}

static void flush(pieces_t *p)
{
    if (p->rc || p->level < 0)
        return;
    char ts[EO_RFC3339_MAX], te[EO_RFC3339_MAX];
    eo_rfc3339_format(p->ps, ts);
    eo_rfc3339_format(p->pe, te);
    const char *sep = p->n ? "," : "";
    p->rc = eo_buf_printf(&p->g, "%s%s", sep, level_name[p->level]);
    p->rc = p->rc ? p->rc : eo_buf_printf(&p->s, "%s\"%s\"", sep, ts);
    p->rc = p->rc ? p->rc : eo_buf_printf(&p->e, "%s\"%s\"", sep, te);
    p->n++;
    p->level = -1;
}

static void piece(pieces_t *p, int level, int64_t s, int64_t e)
{
    if (level == LEVELS) { /* raw: never merged (its start names its bucket) */
        if (p->nraw == MAX_RAW) {
            p->rc = EO_ELIMIT;
            return;
        }
        p->rs[p->nraw] = s;
        p->re[p->nraw] = e;
        p->nraw++;
        return;
    }
    if (p->level == level && p->pe == s) { /* rollup rows in it still lie in one bucket each */
        p->pe = e;
        return;
    }
    flush(p);
    p->level = level;
    p->ps = s;
    p->pe = e;
}

/* Cuts [s, e) into whole UTC days, then hours, quarter hours and minutes, then the sub-minute
 * rest, in time order. */
static void split(pieces_t *p, int64_t s, int64_t e, int level)
{
    if (s >= e)
        return;
    if (level == LEVELS) {
        piece(p, LEVELS, s, e);
        return;
    }
    int64_t cs = ceil_to(s, level_us[level]), fe = floor_to(e, level_us[level]);
    if (cs >= fe) {
        split(p, s, e, level + 1);
        return;
    }
    split(p, s, cs, level + 1);
    piece(p, level, cs, fe);
    split(p, fe, e, level + 1);
}

/* Rollup rows of every piece, each named by its start, and the events of each sub-minute piece
 * (appended per piece with its bounds as parameters, so that PostgreSQL plans only the one
 * partition it lies in); summed per bucket. */
static const char counts_sql[] =
    "SELECT width_bucket(x.t, $6::timestamptz[]), sum(x.n)::bigint FROM ("
    " SELECT r.bucket_start AS t, r.count AS n"
    " FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[]) AS p(g, s, e)"
    " CROSS JOIN LATERAL (SELECT bucket_start, count FROM rollups"
    "  WHERE tenant_id = $1::uuid AND granularity = p.g AND event_type = coalesce($5, '')"
    "  AND bucket_start >= p.s AND bucket_start < p.e OFFSET 0) AS r";
static const char counts_raw_sql[] =
    " UNION ALL SELECT $%zu::timestamptz, (SELECT count(*) FROM events"
    "  WHERE tenant_id = $1::uuid AND occurred_at >= $%zu::timestamptz"
    "  AND occurred_at < $%zu::timestamptz AND ($5::text IS NULL OR event_type = $5))";

/* Counts per bucket: counts[i] for [starts[i], starts[i+1]) (the last ends at to), all clipped
 * to [from, to). Each bucket is cut on its own: a UTC day's rollup row may straddle a local
 * midnight, so it is used only where the whole day lies inside one bucket. */
static int bucket_counts(PGconn *conn, const qreq_t *r, const int64_t *starts, size_t n,
                         int64_t *counts, char *err, size_t errlen)
{
    pieces_t p = {.level = -1};
    eo_buf_t *arrays[] = {&p.g, &p.s, &p.e};
    for (int i = 0; i < 3; i++) {
        eo_buf_init(arrays[i], 64 << 20);
        if (!p.rc)
            p.rc = eo_buf_append_char(arrays[i], '{');
    }
    for (size_t i = 0; i < n; i++) {
        int64_t s = starts[i] > r->from_us ? starts[i] : r->from_us;
        int64_t e = i + 1 < n && starts[i + 1] < r->to_us ? starts[i + 1] : r->to_us;
        split(&p, s, e, 0);
    }
    flush(&p);
    int rc = p.rc;
    for (int i = 0; rc == 0 && i < 3; i++) {
        rc = eo_buf_append_char(arrays[i], '}');
        rc = rc ? rc : eo_buf_append_char(arrays[i], '\0');
    }
    eo_buf_t bounds, sql;
    eo_buf_init(&bounds, 64 << 20);
    eo_buf_init(&sql, 1 << 20);
    rc = rc ? rc : put_time_array(&bounds, starts, n);
    rc = rc ? rc : eo_buf_append_char(&bounds, '\0');
    rc = rc ? rc : eo_buf_append_str(&sql, counts_sql);
    char raw_times[2 * MAX_RAW][EO_RFC3339_MAX];
    const char *params[6 + 2 * MAX_RAW] = {r->tenant_id, p.g.data,      p.s.data,
                                           p.e.data,     r->event_type, bounds.data};
    for (size_t k = 0; rc == 0 && k < p.nraw; k++) {
        eo_rfc3339_format(p.rs[k], raw_times[2 * k]);
        eo_rfc3339_format(p.re[k], raw_times[2 * k + 1]);
        params[6 + 2 * k] = raw_times[2 * k];
        params[7 + 2 * k] = raw_times[2 * k + 1];
        rc = eo_buf_printf(&sql, counts_raw_sql, 7 + 2 * k, 7 + 2 * k, 8 + 2 * k);
    }
    rc = rc ? rc : eo_buf_append_str(&sql, ") AS x GROUP BY 1");
    rc = rc ? rc : eo_buf_append_char(&sql, '\0');
    PGresult *res = NULL;
    if (rc == 0) {
        rc = query(conn, sql.data, (int)(6 + 2 * p.nraw), params, &res, err, errlen);
    } else {
        snprintf(err, errlen, "cannot build the counting query: %s", eo_strerror(rc));
    }
    memset(counts, 0, n * sizeof *counts);
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        int64_t b = num(res, i, 0);
        if (b >= 1 && (size_t)b <= n)
            counts[b - 1] += num(res, i, 1);
    }
    PQclear(res);
    for (int i = 0; i < 3; i++)
        eo_buf_done(arrays[i]);
    eo_buf_done(&bounds);
    eo_buf_done(&sql);
    return rc;
}

int eo_q_count(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field, char *err,
               size_t errlen)
{
    int64_t start = r->from_us, count = 0;
    int rc = bucket_counts(conn, r, &start, 1, &count, err, errlen);
    if (rc < 0)
        return rc;
    rc = put_open(out, r, true);
    return rc ? rc : eo_buf_printf(out, ",\"count\":%lld}", (long long)count);
}

static int put_series(eo_buf_t *out, const buckets_t *bk, const int64_t *values, const char *name)
{
    int rc = eo_buf_append_str(out, ",\"series\":[");
    for (size_t i = 0; rc == 0 && i < bk->n; i++) {
        char t[EO_RFC3339_MAX];
        eo_rfc3339_format_local(bk->start[i], bk->offset[i], t);
        rc = eo_buf_printf(out, "%s{\"start\":\"%s\",\"%s\":%lld}", i ? "," : "", t, name,
                           (long long)values[i]);
    }
    return rc ? rc : eo_buf_append_char(out, ']');
}

int eo_q_trend(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field, char *err,
               size_t errlen)
{
    buckets_t bk;
    int rc = fetch_buckets(conn, r, r->unit, &bk, field, err, errlen);
    if (rc < 0)
        return rc;
    int64_t *counts = calloc(bk.n, sizeof *counts);
    rc = counts ? bucket_counts(conn, r, bk.start, bk.n, counts, err, errlen) : EO_ENOMEM;
    int64_t total = 0;
    for (size_t i = 0; rc == 0 && i < bk.n; i++)
        total += counts[i];
    rc = rc ? rc : put_open(out, r, true);
    rc = rc ? rc : put_interval_tz(out, r);
    rc = rc ? rc : eo_buf_printf(out, ",\"total\":%lld", (long long)total);
    rc = rc ? rc : put_series(out, &bk, counts, "count");
    rc = rc ? rc : eo_buf_append_char(out, '}');
    free(counts);
    buckets_free(&bk);
    return rc;
}

/* ---- unique users: events ---- */

/* Distinct users as a hashed DISTINCT (count(DISTINCT ...) always sorts): the total over the
 * range (bucket NULL), and with an interval the distinct (bucket, user) pairs counted per
 * bucket. */
#define UNIQUE_FROM                                                                                \
    " FROM events WHERE tenant_id = $1::uuid AND occurred_at >= $2::timestamptz"                   \
    " AND occurred_at < $3::timestamptz AND ($4::text IS NULL OR event_type = $4)"
static const char unique_total_sql[] =
    "SELECT NULL::int, count(*) FROM (SELECT DISTINCT coalesce(user_id, anonymous_id)" UNIQUE_FROM
    ") AS t WHERE $5::text IS NOT NULL";
static const char unique_series_sql[] =
    "SELECT NULL::int, count(*) FROM (SELECT DISTINCT coalesce(user_id, anonymous_id)" UNIQUE_FROM
    ") AS t UNION ALL SELECT b, count(*) FROM (SELECT DISTINCT"
    " width_bucket(occurred_at, $5::timestamptz[]) AS b, coalesce(user_id, "
    "anonymous_id)" UNIQUE_FROM ") AS s GROUP BY b";

int eo_q_unique_users(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field, char *err,
                      size_t errlen)
{
    buckets_t bk = {0};
    int rc = 0;
    if (r->has_unit)
        rc = fetch_buckets(conn, r, r->unit, &bk, field, err, errlen);
    if (rc < 0)
        return rc;
    int64_t one = r->from_us;
    const int64_t *starts = r->has_unit ? bk.start : &one;
    size_t n = r->has_unit ? bk.n : 1;
    eo_buf_t bounds;
    eo_buf_init(&bounds, 64 << 20);
    rc = put_time_array(&bounds, starts, n);
    rc = rc ? rc : eo_buf_append_char(&bounds, '\0');
    char from[EO_RFC3339_MAX], to[EO_RFC3339_MAX];
    eo_rfc3339_format(r->from_us, from);
    eo_rfc3339_format(r->to_us, to);
    const char *p[] = {r->tenant_id, from, to, r->event_type, bounds.data};
    PGresult *res = NULL;
    if (rc == 0)
        rc = query(conn, r->has_unit ? unique_series_sql : unique_total_sql, 5, p, &res, err,
                   errlen);
    int64_t total = 0, *users = calloc(n, sizeof *users);
    if (rc == 0 && !users)
        rc = EO_ENOMEM;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        if (PQgetisnull(res, i, 0)) {
            total = num(res, i, 1);
            continue;
        }
        int64_t b = num(res, i, 0);
        if (b >= 1 && (size_t)b <= n)
            users[b - 1] = num(res, i, 1);
    }
    PQclear(res);
    rc = rc ? rc : put_open(out, r, true);
    if (r->has_unit) {
        rc = rc ? rc : put_interval_tz(out, r);
        rc = rc ? rc : eo_buf_printf(out, ",\"users\":%lld", (long long)total);
        rc = rc ? rc : put_series(out, &bk, users, "users");
    } else {
        rc = rc ? rc : eo_buf_printf(out, ",\"users\":%lld", (long long)total);
    }
    rc = rc ? rc : eo_buf_append_char(out, '}');
    free(users);
    eo_buf_done(&bounds);
    buckets_free(&bk);
    return rc;
}

/* ---- breakdown: events ---- */

int eo_q_breakdown(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field, char *err,
                   size_t errlen)
{
    char from[EO_RFC3339_MAX], to[EO_RFC3339_MAX], limit[24];
    eo_rfc3339_format(r->from_us, from);
    eo_rfc3339_format(r->to_us, to);
    snprintf(limit, sizeof limit, "%lld", (long long)r->limit);
    const char *p[] = {r->tenant_id, from, to, r->event_type, r->property_path, limit};
    PGresult *res;
    int rc =
        query(conn,
              "WITH v AS (SELECT properties #> $5::text[] AS j FROM events"
              "  WHERE tenant_id = $1::uuid AND occurred_at >= $2::timestamptz"
              "  AND occurred_at < $3::timestamptz AND ($4::text IS NULL OR event_type = $4)),"
              " c AS (SELECT CASE WHEN j IS NULL OR jsonb_typeof(j) = 'null' THEN NULL"
              "  WHEN jsonb_typeof(j) = 'string' THEN j #>> '{}' ELSE j::text END AS val,"
              "  count(*) AS n FROM v GROUP BY 1),"
              " top AS (SELECT val, n FROM c WHERE val IS NOT NULL"
              "  ORDER BY n DESC, val COLLATE \"C\" LIMIT $6::bigint)"
              " SELECT k, val, n FROM (SELECT 0 AS k, val, n FROM top"
              " UNION ALL SELECT 1, NULL, (SELECT coalesce(sum(n), 0) FROM c WHERE val IS NOT NULL)"
              "  - (SELECT coalesce(sum(n), 0) FROM top)"
              " UNION ALL SELECT 2, NULL, (SELECT coalesce(sum(n), 0) FROM c WHERE val IS NULL))"
              " AS x ORDER BY k, n DESC, val COLLATE \"C\"",
              6, p, &res, err, errlen);
    if (rc < 0)
        return rc;
    int64_t total = 0;
    for (int i = 0; i < PQntuples(res); i++)
        total += num(res, i, 2);
    rc = put_open(out, r, true);
    rc = rc ? rc : eo_buf_append_str(out, ",\"property\":");
    rc = rc ? rc : eo_buf_append_json_str(out, r->property, strlen(r->property));
    rc = rc ? rc : eo_buf_printf(out, ",\"total\":%lld,\"values\":[", (long long)total);
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        int k = (int)num(res, i, 0);
        const char *val = k == 0 ? PQgetvalue(res, i, 1) : k == 1 ? "(other)" : "(none)";
        rc = eo_buf_append_str(out, i ? ",{\"value\":" : "{\"value\":");
        rc = rc ? rc : eo_buf_append_json_str(out, val, strlen(val));
        rc = rc ? rc : eo_buf_printf(out, ",\"count\":%lld}", (long long)num(res, i, 2));
    }
    PQclear(res);
    return rc ? rc : eo_buf_append_str(out, "]}");
}

/* ---- funnel: events ---- */

int eo_q_funnel(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field, char *err,
                size_t errlen)
{
    char from[EO_RFC3339_MAX], to[EO_RFC3339_MAX], within[24];
    eo_rfc3339_format(r->from_us, from);
    eo_rfc3339_format(r->to_us, to);
    snprintf(within, sizeof within, "%lld", (long long)r->within_s);
    /* the window in its largest whole unit, so 24h and 1d answer (and cache) alike */
    static const struct {
        int64_t s;
        char unit;
    } units[] = {{7 * 86400, 'w'}, {86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
    size_t u = 0;
    while (r->within_s % units[u].s != 0)
        u++;
    char within_text[32];
    snprintf(within_text, sizeof within_text, "%lld%c", (long long)(r->within_s / units[u].s),
             units[u].unit);
    const char *p[4 + MAX_STEPS];
    char *steps[MAX_STEPS] = {0};
    p[0] = r->tenant_id, p[1] = from, p[2] = to, p[3] = within;
    eo_buf_t sql;
    eo_buf_init(&sql, 1 << 20);
    int rc = eo_buf_append_str(
        &sql, "WITH s1 AS (SELECT coalesce(user_id, anonymous_id) AS u, min(occurred_at) AS t1,"
              " min(occurred_at) AS t FROM events WHERE tenant_id = $1::uuid"
              " AND event_type = $5 AND occurred_at >= $2::timestamptz"
              " AND occurred_at < $3::timestamptz GROUP BY 1)");
    for (size_t k = 0; rc == 0 && k < r->nsteps; k++) {
        steps[k] = strndup(r->steps[k], r->step_len[k]);
        if (!steps[k])
            rc = EO_ENOMEM;
        p[4 + k] = steps[k];
    }
    for (size_t k = 1; rc == 0 && k < r->nsteps; k++) {
        bool same = r->step_len[k] == r->step_len[k - 1] &&
                    memcmp(r->steps[k], r->steps[k - 1], r->step_len[k]) == 0;
        rc =
            eo_buf_printf(&sql,
                          ", s%zu AS (SELECT s.u, s.t1, min(e.occurred_at) AS t FROM s%zu AS s"
                          " JOIN events AS e ON e.tenant_id = $1::uuid AND e.event_type = $%zu"
                          " AND coalesce(e.user_id, e.anonymous_id) = s.u AND e.occurred_at %s s.t"
                          " AND e.occurred_at < s.t1 + make_interval(secs => $4::bigint)"
                          " AND e.occurred_at >= $2::timestamptz"
                          " AND e.occurred_at < $3::timestamptz + make_interval(secs => $4::bigint)"
                          " GROUP BY s.u, s.t1)",
                          k + 1, k, k + 5, same ? ">" : ">=");
    }
    rc = rc ? rc : eo_buf_append_str(&sql, " SELECT ");
    for (size_t k = 0; rc == 0 && k < r->nsteps; k++)
        rc = eo_buf_printf(&sql, "%s(SELECT count(*) FROM s%zu)", k ? ", " : "", k + 1);
    rc = rc ? rc : eo_buf_append_char(&sql, '\0');
    PGresult *res = NULL;
    if (rc == 0)
        rc = query(conn, sql.data, (int)(4 + r->nsteps), p, &res, err, errlen);
    else
        snprintf(err, errlen, "out of memory");
    rc = rc ? rc : put_open(out, r, false);
    rc = rc ? rc
            : eo_buf_printf(out, ",\"within\":\"%s\",\"withinSeconds\":%lld,\"steps\":[",
                            within_text, (long long)r->within_s);
    int64_t first = 0, prev = 0;
    for (size_t k = 0; rc == 0 && k < r->nsteps; k++) {
        int64_t users = num(res, 0, (int)k);
        if (k == 0)
            first = prev = users;
        rc = eo_buf_append_str(out, k ? ",{\"eventType\":" : "{\"eventType\":");
        rc = rc ? rc : eo_buf_append_json_str(out, r->steps[k], r->step_len[k]);
        rc = rc ? rc
                : eo_buf_printf(out,
                                ",\"users\":%lld,\"conversionRate\":%.6g,"
                                "\"stepConversionRate\":%.6g}",
                                (long long)users, first ? (double)users / (double)first : 0.0,
                                prev ? (double)users / (double)prev : 0.0);
        prev = users;
    }
    rc = rc ? rc : eo_buf_append_str(out, "]}");
    PQclear(res);
    for (size_t k = 0; k < r->nsteps; k++)
        free(steps[k]);
    eo_buf_done(&sql);
    return rc;
}

/* ---- retention: events ---- */

int eo_q_retention(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field, char *err,
                   size_t errlen)
{
    buckets_t cohorts; /* the cohorts the range can hold count against the bucket limit */
    int rc = fetch_buckets(conn, r, r->unit, &cohorts, field, err, errlen);
    if (rc < 0)
        return rc;
    buckets_free(&cohorts);
    char from[EO_RFC3339_MAX], to[EO_RFC3339_MAX], periods[24];
    eo_rfc3339_format(r->from_us, from);
    eo_rfc3339_format(r->to_us, to);
    snprintf(periods, sizeof periods, "%lld", (long long)r->periods);
    const char *unit = eo_q_unit_name(r->unit);
    const char *p[] = {r->tenant_id,    from,   to, r->tz, unit, r->start_event,
                       r->return_event, periods};
    PGresult *res;
    rc = query(
        conn,
        "WITH c AS (SELECT coalesce(user_id, anonymous_id) AS u, min(occurred_at) AS t"
        "  FROM events WHERE tenant_id = $1::uuid AND event_type = $6"
        "  AND occurred_at >= $2::timestamptz AND occurred_at < $3::timestamptz GROUP BY 1),"
        " cp AS (SELECT u, date_trunc($5, t AT TIME ZONE $4) AS p FROM c),"
        " r AS (SELECT DISTINCT coalesce(user_id, anonymous_id) AS u,"
        "  date_trunc($5, occurred_at AT TIME ZONE $4) AS p FROM events"
        "  WHERE tenant_id = $1::uuid AND event_type = $7"
        "  AND occurred_at >= $2::timestamptz - interval '8 days'"
        "  AND occurred_at < $3::timestamptz + ($8::int + 1) * ('1 ' || $5)::interval"
        "   + interval '8 days'),"
        " j AS (SELECT cp.p, (r.p::date - cp.p::date) / (CASE WHEN $5 = 'week' THEN 7 ELSE 1 END)"
        "  AS k FROM cp JOIN r ON r.u = cp.u AND r.p >= cp.p)"
        " SELECT (extract(epoch FROM eventops_local_start(p, $4)) * 1000000)::bigint,"
        "  (extract(epoch FROM eventops_local_start(p, $4) AT TIME ZONE $4)"
        "   - extract(epoch FROM eventops_local_start(p, $4)))::bigint, k, n FROM ("
        "  SELECT p, -1 AS k, count(*) AS n FROM cp GROUP BY p"
        "  UNION ALL SELECT p, k, count(*) FROM j WHERE k <= $8::int GROUP BY p, k) AS x"
        " ORDER BY p, k",
        8, p, &res, err, errlen);
    if (rc < 0)
        return rc;
    rc = put_open(out, r, false);
    rc = rc ? rc : eo_buf_append_str(out, ",\"startEvent\":");
    rc = rc ? rc : eo_buf_append_json_str(out, r->start_event, strlen(r->start_event));
    rc = rc ? rc : eo_buf_append_str(out, ",\"returnEvent\":");
    rc = rc ? rc : eo_buf_append_json_str(out, r->return_event, strlen(r->return_event));
    rc = rc ? rc
            : eo_buf_printf(out, ",\"period\":\"%s\",\"periods\":%lld,\"tz\":", unit,
                            (long long)r->periods);
    rc = rc ? rc : eo_buf_append_json_str(out, r->tz, strlen(r->tz));
    rc = rc ? rc : eo_buf_append_str(out, ",\"cohorts\":[");
    size_t np = (size_t)r->periods + 1;
    int64_t *kept = calloc(np, sizeof *kept);
    if (!kept)
        rc = EO_ENOMEM;
    int rows = PQntuples(res);
    bool first = true;
    for (int i = 0; rc == 0 && i < rows;) {
        int64_t start = num(res, i, 0), offset = num(res, i, 1), size = 0;
        memset(kept, 0, np * sizeof *kept);
        for (; i < rows && num(res, i, 0) == start; i++) {
            int64_t k = num(res, i, 2);
            if (k < 0)
                size = num(res, i, 3);
            else if ((size_t)k < np)
                kept[k] = num(res, i, 3);
        }
        char t[EO_RFC3339_MAX];
        eo_rfc3339_format_local(start, offset, t);
        rc = eo_buf_printf(out, "%s{\"start\":\"%s\",\"users\":%lld,\"retained\":[",
                           first ? "" : ",", t, (long long)size);
        first = false;
        for (size_t k = 0; rc == 0 && k < np; k++)
            rc = eo_buf_printf(out, "%s%lld", k ? "," : "", (long long)kept[k]);
        rc = rc ? rc : eo_buf_append_str(out, "],\"rates\":[");
        for (size_t k = 0; rc == 0 && k < np; k++)
            rc = eo_buf_printf(out, "%s%.6g", k ? "," : "",
                               size ? (double)kept[k] / (double)size : 0.0);
        rc = rc ? rc : eo_buf_append_str(out, "]}");
    }
    free(kept);
    PQclear(res);
    return rc ? rc : eo_buf_append_str(out, "]}");
}

/* ---- types: rollups, then one minute of events per end ---- */

int eo_q_types(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field, char *err,
               size_t errlen)
{
    const char *p[] = {r->tenant_id};
    PGresult *res;
    int rc = query(conn,
                   "SELECT t.event_type, t.n, (extract(epoch FROM f.v) * 1000000)::bigint,"
                   " (extract(epoch FROM l.v) * 1000000)::bigint"
                   " FROM (SELECT event_type, sum(count)::bigint AS n FROM rollups"
                   "  WHERE tenant_id = $1::uuid AND granularity = 'day' AND event_type <> ''"
                   "  GROUP BY 1) AS t"
                   " CROSS JOIN LATERAL (SELECT min(bucket_start) AS m FROM rollups"
                   "  WHERE tenant_id = $1::uuid AND granularity = 'minute'"
                   "  AND event_type = t.event_type) AS fm"
                   " CROSS JOIN LATERAL (SELECT max(bucket_start) AS m FROM rollups"
                   "  WHERE tenant_id = $1::uuid AND granularity = 'minute'"
                   "  AND event_type = t.event_type) AS lm"
                   " CROSS JOIN LATERAL (SELECT min(occurred_at) AS v FROM events"
                   "  WHERE tenant_id = $1::uuid AND event_type = t.event_type"
                   "  AND occurred_at >= fm.m AND occurred_at < fm.m + interval '1 minute') AS f"
                   " CROSS JOIN LATERAL (SELECT max(occurred_at) AS v FROM events"
                   "  WHERE tenant_id = $1::uuid AND event_type = t.event_type"
                   "  AND occurred_at >= lm.m AND occurred_at < lm.m + interval '1 minute') AS l"
                   " ORDER BY t.n DESC, t.event_type COLLATE \"C\"",
                   1, p, &res, err, errlen);
    if (rc < 0)
        return rc;
    rc = eo_buf_append_str(out, "{\"types\":[");
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        const char *type = PQgetvalue(res, i, 0);
        rc = eo_buf_append_str(out, i ? ",{\"eventType\":" : "{\"eventType\":");
        rc = rc ? rc : eo_buf_append_json_str(out, type, strlen(type));
        rc = rc ? rc : eo_buf_printf(out, ",\"count\":%lld,", (long long)num(res, i, 1));
        rc = rc ? rc : put_time(out, "firstSeen", num(res, i, 2));
        rc = rc ? rc : eo_buf_append_char(out, ',');
        rc = rc ? rc : put_time(out, "lastSeen", num(res, i, 3));
        rc = rc ? rc : eo_buf_append_char(out, '}');
    }
    PQclear(res);
    return rc ? rc : eo_buf_append_str(out, "]}");
}

/* ---- raw events: the events primary key (or the user index) ---- */

int eo_q_events(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field, char *err,
                size_t errlen)
{
    char from[EO_RFC3339_MAX], to[EO_RFC3339_MAX], cur[EO_RFC3339_MAX], limit[24];
    eo_rfc3339_format(r->from_us, from);
    eo_rfc3339_format(r->to_us, to);
    if (r->has_cursor)
        eo_rfc3339_format(r->cursor_us, cur);
    snprintf(limit, sizeof limit, "%lld", (long long)r->limit);
    const char *p[] = {r->tenant_id,
                       from,
                       to,
                       r->event_type,
                       r->user_id,
                       r->has_cursor ? cur : NULL,
                       r->has_cursor ? r->cursor_id : NULL,
                       limit};
    PGresult *res;
    int rc = query(conn,
                   "SELECT message_id, event_type, user_id, anonymous_id,"
                   " (extract(epoch FROM occurred_at) * 1000000)::bigint,"
                   " (extract(epoch FROM received_at) * 1000000)::bigint,"
                   " (extract(epoch FROM sent_at) * 1000000)::bigint, properties, context"
                   " FROM events WHERE tenant_id = $1::uuid AND occurred_at >= $2::timestamptz"
                   " AND occurred_at < $3::timestamptz AND ($4::text IS NULL OR event_type = $4)"
                   " AND ($5::text IS NULL OR user_id = $5)"
                   " AND ($6::timestamptz IS NULL OR occurred_at < $6 OR (occurred_at = $6"
                   " AND message_id COLLATE \"C\" < $7::text COLLATE \"C\"))"
                   " ORDER BY occurred_at DESC, message_id COLLATE \"C\" DESC LIMIT $8::bigint",
                   8, p, &res, err, errlen);
    if (rc < 0)
        return rc;
    int rows = PQntuples(res);
    rc = eo_buf_append_str(out, "{\"events\":[");
    for (int i = 0; rc == 0 && i < rows; i++) {
        const char *mid = PQgetvalue(res, i, 0), *type = PQgetvalue(res, i, 1);
        rc = eo_buf_append_str(out, i ? ",{\"messageId\":" : "{\"messageId\":");
        rc = rc ? rc : eo_buf_append_json_str(out, mid, strlen(mid));
        rc = rc ? rc : eo_buf_append_str(out, ",\"eventType\":");
        rc = rc ? rc : eo_buf_append_json_str(out, type, strlen(type));
        rc = rc ? rc : eo_buf_append_char(out, ',');
        rc = rc ? rc
                : put_str_or_null(out, "userId",
                                  PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2));
        rc = rc ? rc : eo_buf_append_char(out, ',');
        rc = rc ? rc
                : put_str_or_null(out, "anonymousId",
                                  PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3));
        rc = rc ? rc : eo_buf_append_char(out, ',');
        rc = rc ? rc : put_time(out, "timestamp", num(res, i, 4));
        rc = rc ? rc : eo_buf_append_char(out, ',');
        rc = rc ? rc : put_time(out, "receivedAt", num(res, i, 5));
        if (PQgetisnull(res, i, 6)) {
            rc = rc ? rc : eo_buf_append_str(out, ",\"sentAt\":null");
        } else {
            rc = rc ? rc : eo_buf_append_char(out, ',');
            rc = rc ? rc : put_time(out, "sentAt", num(res, i, 6));
        }
        rc = rc ? rc : eo_buf_printf(out, ",\"properties\":%s", PQgetvalue(res, i, 7));
        rc = rc ? rc : eo_buf_printf(out, ",\"context\":%s}", PQgetvalue(res, i, 8));
    }
    rc = rc ? rc : eo_buf_append_str(out, "],\"nextCursor\":");
    if (rc == 0 && rows > 0 && rows == r->limit) {
        char c[EO_Q_CURSOR_MAX];
        const char *mid = PQgetvalue(res, rows - 1, 0);
        if (eo_q_cursor_encode(num(res, rows - 1, 4), mid, strlen(mid), c) == 0)
            rc = eo_buf_printf(out, "\"%s\"}", c);
        else
            rc = eo_buf_append_str(out, "null}");
    } else {
        rc = rc ? rc : eo_buf_append_str(out, "null}");
    }
    PQclear(res);
    return rc;
}
