/* The query endpoints: SQL and JSON answers (docs/query.md says which table answers what), and
 * the table of endpoints (eo_q_endpoints, at the end). Every statement is parameterised and
 * filters on the tenant first. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pg.h"
#include "domain/buckets.h"
#include "domain/json_out.h"
#include "domain/rfc3339.h"
#include "domain/timeline.h"
#include "domain/userset.h"
#include "query/query_internal.h"

/* ---- helpers ---- */

const char *eo_q_source_name(eo_q_source_t s)
{
    static const char *const names[EO_Q_SOURCES] = {"rollups", "events", "user_sets", "timelines",
                                                    "property_rollups"};
    return s < EO_Q_SOURCES ? names[s] : "";
}

static int query(PGconn *conn, const char *sql, int n, const char *const *params, PGresult **res,
                 char *err, size_t errlen)
{
    int r = eo_pg_query(conn, sql, n, params, res, err, errlen);
    if (r < 0 && strncmp(err, "57014", 5) == 0) /* query_canceled: the statement timeout */
        return EO_ETIMEOUT;
    return r;
}

/* query() with binary results. */
static int query_binary(PGconn *conn, const char *sql, int n, const char *const *params,
                        PGresult **res, char *err, size_t errlen)
{
    int r = eo_pg_query_binary(conn, sql, n, params, res, err, errlen);
    if (r < 0 && strncmp(err, "57014", 5) == 0)
        return EO_ETIMEOUT;
    return r;
}

/* An int4 column of a binary result (0 when NULL). */
static int64_t int4_bin(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 4)
        return 0;
    const unsigned char *p = (const unsigned char *)PQgetvalue(res, row, col);
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

static int64_t num(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static void put_str_or_null(eo_buf_t *b, const char *key, const char *s)
{
    eo_buf_putf(b, "\"%s\":", key);
    if (s)
        eo_buf_put_json_str(b, s, strlen(s));
    else
        eo_buf_puts(b, "null");
}

/* {["eventType":..,]"from":..,"to":.. (no closing brace) */
static void put_open(eo_buf_t *b, const qreq_t *r, bool event_type)
{
    eo_buf_putc(b, '{');
    if (event_type) {
        put_str_or_null(b, "eventType", r->event_type);
        eo_buf_putc(b, ',');
    }
    eo_json_put_time(b, "from", r->from_us);
    eo_buf_putc(b, ',');
    eo_json_put_time(b, "to", r->to_us);
}

static void put_interval_tz(eo_buf_t *b, const qreq_t *r)
{
    eo_buf_putf(b, ",\"interval\":\"%s\",\"tz\":", eo_q_unit_name(r->unit));
    eo_buf_put_json_str(b, r->tz, strlen(r->tz));
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

/* The buckets of [from, to) in the request's zone: their local starts come from PostgreSQL
 * (eventops_buckets, exact across DST changes); the first starts at or before from. */
static int fetch_buckets(PGconn *conn, const qreq_t *r, eo_q_unit_t unit, buckets_t *bk,
                         const char **field, char *err, size_t errlen)
{
    memset(bk, 0, sizeof *bk);
    int64_t max = r->max_buckets;
    if (eo_buckets_too_many(r->from_us, r->to_us, unit, max)) {
        *field = r->unit_field;
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
        *field = r->unit_field;
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
    bk->n = eo_buckets_anchor(bk->start, bk->offset, bk->n, r->from_us);
    return 0;
}

/* A PostgreSQL array literal of times: {"t1","t2",...}. */
static void put_time_array(eo_buf_t *b, const int64_t *us, size_t n)
{
    eo_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        char t[EO_RFC3339_MAX];
        eo_rfc3339_format(us[i], t);
        eo_buf_putf(b, "%s\"%s\"", i ? "," : "", t);
    }
    eo_buf_putc(b, '}');
}

/* ---- count and trend: rollups ---- */

/* The rollup pieces as three array literals: granularity, start, end. */
static void put_pieces(eo_buf_t *g, eo_buf_t *s, eo_buf_t *e, const eo_pieces_t *pc)
{
    eo_buf_putc(g, '{');
    eo_buf_putc(s, '{');
    eo_buf_putc(e, '{');
    for (size_t i = 0; i < pc->n; i++) {
        char ts[EO_RFC3339_MAX], te[EO_RFC3339_MAX];
        eo_rfc3339_format(pc->rollup[i].start_us, ts);
        eo_rfc3339_format(pc->rollup[i].end_us, te);
        const char *sep = i ? "," : "";
        eo_buf_putf(g, "%s%s", sep, eo_level_name(pc->rollup[i].level));
        eo_buf_putf(s, "%s\"%s\"", sep, ts);
        eo_buf_putf(e, "%s\"%s\"", sep, te);
    }
    eo_buf_t *arrays[] = {g, s, e};
    for (int i = 0; i < 3; i++) {
        eo_buf_putc(arrays[i], '}');
        eo_buf_putc(arrays[i], '\0');
    }
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
 * to [from, to). Each bucket is cut on its own (domain/buckets.h): a UTC day's rollup row may
 * straddle a local midnight, so it is used only where the whole day lies inside one bucket. */
static int bucket_counts(PGconn *conn, const qreq_t *r, const int64_t *starts, size_t n,
                         int64_t *counts, char *err, size_t errlen)
{
    eo_pieces_t pc;
    eo_pieces_init(&pc);
    int rc = eo_pieces_cut(&pc, starts, n, r->from_us, r->to_us);
    eo_buf_t g, s, e, bounds, sql;
    eo_buf_init(&g, 64 << 20);
    eo_buf_init(&s, 64 << 20);
    eo_buf_init(&e, 64 << 20);
    eo_buf_init(&bounds, 64 << 20);
    eo_buf_init(&sql, 1 << 20);
    char raw_times[2 * EO_PIECES_MAX_RAW][EO_RFC3339_MAX];
    const char *params[6 + 2 * EO_PIECES_MAX_RAW] = {r->tenant_id, NULL, NULL, NULL, r->event_type};
    if (rc == 0) {
        put_pieces(&g, &s, &e, &pc);
        put_time_array(&bounds, starts, n);
        eo_buf_putc(&bounds, '\0');
        eo_buf_puts(&sql, counts_sql);
        for (size_t k = 0; k < pc.nraw; k++) {
            eo_rfc3339_format(pc.raw_start[k], raw_times[2 * k]);
            eo_rfc3339_format(pc.raw_end[k], raw_times[2 * k + 1]);
            params[6 + 2 * k] = raw_times[2 * k];
            params[7 + 2 * k] = raw_times[2 * k + 1];
            eo_buf_putf(&sql, counts_raw_sql, 7 + 2 * k, 7 + 2 * k, 8 + 2 * k);
        }
        eo_buf_puts(&sql, ") AS x GROUP BY 1");
        eo_buf_putc(&sql, '\0');
        eo_buf_t *bufs[] = {&g, &s, &e, &bounds, &sql};
        for (size_t i = 0; rc == 0 && i < sizeof bufs / sizeof bufs[0]; i++)
            rc = eo_buf_error(bufs[i]);
    }
    params[1] = g.data, params[2] = s.data, params[3] = e.data, params[5] = bounds.data;
    PGresult *res = NULL;
    if (rc == 0) {
        rc = query(conn, sql.data, (int)(6 + 2 * pc.nraw), params, &res, err, errlen);
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
    eo_pieces_done(&pc);
    eo_buf_done(&g);
    eo_buf_done(&s);
    eo_buf_done(&e);
    eo_buf_done(&bounds);
    eo_buf_done(&sql);
    return rc;
}

static int answer_count(PGconn *conn, const qreq_t *r, eo_buf_t *out, eo_q_source_t *source,
                        const char **field, char *err, size_t errlen)
{
    *source = EO_Q_SRC_ROLLUPS;
    int64_t start = r->from_us, count = 0;
    int rc = bucket_counts(conn, r, &start, 1, &count, err, errlen);
    if (rc < 0)
        return rc;
    put_open(out, r, true);
    eo_buf_putf(out, ",\"count\":%lld}", (long long)count);
    return eo_buf_error(out);
}

static void put_series(eo_buf_t *out, const buckets_t *bk, const int64_t *values, const char *name)
{
    eo_buf_puts(out, ",\"series\":[");
    for (size_t i = 0; i < bk->n; i++) {
        char t[EO_RFC3339_MAX];
        eo_rfc3339_format_local(bk->start[i], bk->offset[i], t);
        eo_buf_putf(out, "%s{\"start\":\"%s\",\"%s\":%lld}", i ? "," : "", t, name,
                    (long long)values[i]);
    }
    eo_buf_putc(out, ']');
}

static int answer_trend(PGconn *conn, const qreq_t *r, eo_buf_t *out, eo_q_source_t *source,
                        const char **field, char *err, size_t errlen)
{
    *source = EO_Q_SRC_ROLLUPS;
    buckets_t bk;
    int rc = fetch_buckets(conn, r, r->unit, &bk, field, err, errlen);
    if (rc < 0)
        return rc;
    int64_t *counts = calloc(bk.n, sizeof *counts);
    rc = counts ? bucket_counts(conn, r, bk.start, bk.n, counts, err, errlen) : EO_ENOMEM;
    if (rc == 0) {
        int64_t total = 0;
        for (size_t i = 0; i < bk.n; i++)
            total += counts[i];
        put_open(out, r, true);
        put_interval_tz(out, r);
        eo_buf_putf(out, ",\"total\":%lld", (long long)total);
        put_series(out, &bk, counts, "count");
        eo_buf_putc(out, '}');
        rc = eo_buf_error(out);
    }
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

/* ---- unique users: user sets (ADR-22), raw events at the edges ---- */

static atomic_bool user_sets_complete, timelines_complete; /* once the database says so, for
                                                             good */

/* Whether the derived structure `name` describes every stored event (derived_structures). */
static int structure_ready(PGconn *conn, const char *name, atomic_bool *known, bool *ready,
                           char *err, size_t errlen)
{
    *ready = atomic_load(known);
    if (*ready)
        return 0;
    PGresult *res;
    const char *p[] = {name};
    int rc = query(conn, "SELECT complete FROM derived_structures WHERE name = $1", 1, p, &res, err,
                   errlen);
    if (rc < 0)
        return rc;
    *ready = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (*ready)
        atomic_store(known, true);
    return 0;
}

static int user_sets_ready(PGconn *conn, bool *ready, char *err, size_t errlen)
{
    return structure_ready(conn, "user_sets", &user_sets_complete, ready, err, errlen);
}

/* The users of each slot (a time range and an event type, '' for all types): the compacted sets
 * of every whole UTC day, hour and quarter hour in it, the deltas not yet compacted there (the
 * same snapshot: each stored event's user is in one of the two), and the user numbers of the
 * raw events of the edges (whole minutes and sub-minute rests). */
static const char slot_sets_sql[] =
    "WITH p AS MATERIALIZED (SELECT * FROM unnest($2::int[], $3::text[], $4::text[],"
    "  $5::timestamptz[], $6::timestamptz[]) AS p(b, t, g, s, e)),"
    " r AS MATERIALIZED (SELECT * FROM unnest($7::int[], $8::text[], $9::timestamptz[],"
    "  $10::timestamptz[]) AS r(b, t, s, e))"
    " SELECT p.b, x.users, NULL::int FROM p CROSS JOIN LATERAL (SELECT users FROM user_sets"
    "  WHERE tenant_id = $1::uuid AND granularity = p.g AND event_type = p.t"
    "  AND bucket_start >= p.s AND bucket_start < p.e) AS x"
    " UNION ALL SELECT p.b, d.users, NULL FROM p CROSS JOIN LATERAL (SELECT users"
    "  FROM user_set_deltas WHERE tenant_id = $1::uuid AND event_type = p.t"
    "  AND bucket_start >= p.s AND bucket_start < p.e) AS d"
    " UNION ALL SELECT r.b, NULL, u.user_no FROM r CROSS JOIN LATERAL (SELECT DISTINCT"
    "  coalesce(user_id, anonymous_id) AS k FROM events WHERE tenant_id = $1::uuid"
    "  AND occurred_at >= r.s AND occurred_at < r.e AND (r.t = '' OR event_type = r.t))"
    "  AS ev JOIN user_ids AS u ON u.tenant_id = $1::uuid AND u.user_key = ev.k";

/* One question to the sets: the users with an event of type (NULL: any) in [lo, hi). */
typedef struct {
    const char *type;
    int64_t lo, hi;
} slot_t;

typedef struct {
    eo_buf_t set_b, set_t, set_g, set_s, set_e; /* set pieces: slot (1-based), type, granularity,
                                                   range */
    eo_buf_t raw_b, raw_t, raw_s, raw_e;        /* raw ranges: slot, type, range */
} set_pieces_t;

static void array_eo_json_put_time(eo_buf_t *b, int64_t us)
{
    char t[EO_RFC3339_MAX];
    eo_pg_array_elem(b, t, eo_rfc3339_format(us, t));
}

static void array_put_int(eo_buf_t *b, int64_t v)
{
    char t[EO_I64_TEXT];
    eo_pg_array_elem(b, t, eo_fmt_i64(t, v));
}

static void array_put_str(eo_buf_t *b, const char *s)
{
    eo_pg_array_str(b, s, strlen(s));
}

static void put_raw(set_pieces_t *sp, size_t b, const char *type, int64_t lo, int64_t hi)
{
    array_put_int(&sp->raw_b, (int64_t)b);
    array_put_str(&sp->raw_t, type);
    array_eo_json_put_time(&sp->raw_s, lo);
    array_eo_json_put_time(&sp->raw_e, hi);
}

/* Cuts slot b (1-based) into set pieces and raw ranges (eo_pieces_cut, as counts are cut). */
static int cut_for_sets(set_pieces_t *sp, size_t b, const slot_t *slot)
{
    const char *type = slot->type ? slot->type : "";
    int64_t lo = slot->lo;
    eo_pieces_t pc;
    eo_pieces_init(&pc);
    int rc = eo_pieces_cut(&pc, &lo, 1, slot->lo, slot->hi);
    for (size_t k = 0; rc == 0 && k < pc.n; k++) {
        const eo_piece_t *piece = &pc.rollup[k];
        if (piece->level == EO_LEVEL_MINUTE) { /* no sets per minute: raw events */
            put_raw(sp, b, type, piece->start_us, piece->end_us);
            continue;
        }
        array_put_int(&sp->set_b, (int64_t)b);
        array_put_str(&sp->set_t, type);
        array_put_str(&sp->set_g, eo_level_name(piece->level));
        array_eo_json_put_time(&sp->set_s, piece->start_us);
        array_eo_json_put_time(&sp->set_e, piece->end_us);
    }
    for (size_t k = 0; rc == 0 && k < pc.nraw; k++)
        put_raw(sp, b, type, pc.raw_start[k], pc.raw_end[k]);
    eo_pieces_done(&pc);
    return rc;
}

static void free_sets(eo_userset_t **sets, size_t n)
{
    for (size_t i = 0; sets && i < n; i++)
        eo_userset_free(sets[i]);
    free(sets);
}

/* The users of each of n slots, in one statement: *out (free_sets) gets n sets. */
static int slot_sets(PGconn *conn, const char *tenant_id, const slot_t *slots, size_t n,
                     eo_userset_t ***out, char *err, size_t errlen)
{
    *out = NULL;
    set_pieces_t sp;
    eo_buf_t *bufs[] = {&sp.set_b, &sp.set_t, &sp.set_g, &sp.set_s, &sp.set_e,
                        &sp.raw_b, &sp.raw_t, &sp.raw_s, &sp.raw_e};
    const size_t nbufs = sizeof bufs / sizeof bufs[0];
    for (size_t k = 0; k < nbufs; k++)
        eo_buf_init(bufs[k], 64 << 20);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (slots[i].lo < slots[i].hi)
            rc = cut_for_sets(&sp, i + 1, &slots[i]);
    const char *p[1 + sizeof bufs / sizeof bufs[0]] = {tenant_id};
    for (size_t k = 0; k < nbufs; k++) {
        eo_pg_array_close(bufs[k]);
        rc = rc ? rc : eo_buf_error(bufs[k]);
        p[1 + k] = bufs[k]->data;
    }
    eo_userset_t **sets = calloc(n ? n : 1, sizeof *sets);
    if (rc == 0 && !sets)
        rc = EO_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!(sets[i] = eo_userset_new()))
            rc = EO_ENOMEM;
    PGresult *res = NULL;
    if (rc == 0)
        rc = query_binary(conn, slot_sets_sql, (int)(1 + nbufs), p, &res, err, errlen);
    else if (rc != EO_ELIMIT)
        snprintf(err, errlen, "cannot build the user-set query: %s", eo_strerror(rc));
    for (int row = 0; rc == 0 && row < PQntuples(res); row++) {
        int64_t b = int4_bin(res, row, 0);
        if (b < 1 || (size_t)b > n)
            continue;
        if (PQgetisnull(res, row, 1)) {
            eo_userset_add(sets[b - 1], (uint32_t)int4_bin(res, row, 2));
            continue;
        }
        rc = eo_userset_add_serialized(sets[b - 1], PQgetvalue(res, row, 1),
                                       (size_t)PQgetlength(res, row, 1));
        if (rc == EO_EDATA) {
            snprintf(err, errlen, "a stored user set is not a roaring bitmap");
            rc = EO_EIO;
        }
    }
    PQclear(res);
    for (size_t k = 0; k < nbufs; k++)
        eo_buf_done(bufs[k]);
    if (rc < 0) {
        free_sets(sets, n);
        return rc;
    }
    *out = sets;
    return 0;
}

/* Distinct users per bucket (users[i]) and over the range (*total) from the user sets. */
static int unique_from_sets(PGconn *conn, const qreq_t *r, const int64_t *starts, size_t n,
                            int64_t *users, int64_t *total, char *err, size_t errlen)
{
    slot_t *slots = calloc(n ? n : 1, sizeof *slots);
    if (!slots)
        return EO_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int64_t lo = starts[i] > r->from_us ? starts[i] : r->from_us;
        int64_t hi = i + 1 < n && starts[i + 1] < r->to_us ? starts[i + 1] : r->to_us;
        slots[i] = (slot_t){r->event_type, lo, hi};
    }
    eo_userset_t **sets;
    int rc = slot_sets(conn, r->tenant_id, slots, n, &sets, err, errlen);
    free(slots);
    if (rc < 0)
        return rc;
    eo_userset_t *all = eo_userset_new();
    rc = all ? 0 : EO_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        users[i] = (int64_t)eo_userset_count(sets[i]);
        eo_userset_add_set(all, sets[i]);
    }
    if (rc == 0)
        *total = (int64_t)eo_userset_count(all);
    eo_userset_free(all);
    free_sets(sets, n);
    return rc;
}

static int answer_unique_users(PGconn *conn, const qreq_t *r, eo_buf_t *out, eo_q_source_t *source,
                               const char **field, char *err, size_t errlen)
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
    put_time_array(&bounds, starts, n);
    eo_buf_putc(&bounds, '\0');
    rc = eo_buf_error(&bounds);
    char from[EO_RFC3339_MAX], to[EO_RFC3339_MAX];
    eo_rfc3339_format(r->from_us, from);
    eo_rfc3339_format(r->to_us, to);
    const char *p[] = {r->tenant_id, from, to, r->event_type, bounds.data};
    PGresult *res = NULL;
    int64_t total = 0, *users = calloc(n, sizeof *users);
    if (rc == 0 && !users)
        rc = EO_ENOMEM;
    bool sets = false; /* the sets answer unless per minute (no sets that fine) */
    if (rc == 0 && (!r->has_unit || r->unit != EO_Q_MINUTE))
        rc = user_sets_ready(conn, &sets, err, errlen);
    if (rc == 0 && sets) {
        *source = EO_Q_SRC_USER_SETS;
        rc = unique_from_sets(conn, r, starts, n, users, &total, err, errlen);
    } else if (rc == 0) {
        rc = query(conn, r->has_unit ? unique_series_sql : unique_total_sql, 5, p, &res, err,
                   errlen);
    }
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
    if (rc == 0) {
        put_open(out, r, true);
        if (r->has_unit)
            put_interval_tz(out, r);
        eo_buf_putf(out, ",\"users\":%lld", (long long)total);
        if (r->has_unit)
            put_series(out, &bk, users, "users");
        eo_buf_putc(out, '}');
        rc = eo_buf_error(out);
    }
    free(users);
    eo_buf_done(&bounds);
    buckets_free(&bk);
    return rc;
}

/* ---- breakdown: property rollups (ADR-24), else events ---- */

/* When the path is tracked and complete for the tenant: per named value its count (k 0), the
 * overflow count (k 1) and the number of events (k 2) of the range: the whole UTC hours
 * [$5, $6) from property_rollups plus the deltas not yet merged (and the hour rollups for the
 * events), the edges [$7, $5) and [$6, $8) from the events through their primary key, their
 * values mapped through the dictionary as the processor maps them. One statement: one snapshot,
 * in which every stored event is counted once. No rows at all when the path is not usable. */
static const char breakdown_rollups_sql[] =
    "WITH ok AS MATERIALIZED (SELECT value_cap FROM tracked_properties WHERE tenant_id = $1::uuid"
    "  AND path = $2 AND state = 'complete'),"
    " edge AS MATERIALIZED (SELECT eventops_property_text(properties #> $3::text[]) AS v"
    "  FROM events WHERE tenant_id = $1::uuid AND occurred_at >= $7::timestamptz"
    "  AND occurred_at < $5::timestamptz AND ($4::text IS NULL OR event_type = $4)"
    "  AND EXISTS (SELECT 1 FROM ok)"
    "  UNION ALL SELECT eventops_property_text(properties #> $3::text[]) FROM events"
    "  WHERE tenant_id = $1::uuid AND occurred_at >= $6::timestamptz"
    "  AND occurred_at < $8::timestamptz AND ($4::text IS NULL OR event_type = $4)"
    "  AND EXISTS (SELECT 1 FROM ok)),"
    " c AS (SELECT overflow, value, count FROM property_rollups WHERE tenant_id = $1::uuid"
    "  AND path = $2 AND event_type = coalesce($4, '') AND bucket_start >= $5::timestamptz"
    "  AND bucket_start < $6::timestamptz"
    "  UNION ALL SELECT overflow, value, count FROM property_rollup_deltas"
    "  WHERE tenant_id = $1::uuid AND path = $2 AND event_type = coalesce($4, '')"
    "  AND bucket_start >= $5::timestamptz AND bucket_start < $6::timestamptz"
    "  UNION ALL SELECT pv.value IS NULL, coalesce(pv.value, ''), 1 FROM edge"
    "  LEFT JOIN property_values AS pv ON pv.tenant_id = $1::uuid AND pv.path = $2"
    "  AND pv.value = edge.v WHERE edge.v IS NOT NULL)"
    " SELECT 0, value, sum(count)::bigint FROM c WHERE NOT overflow AND EXISTS (SELECT 1 FROM ok)"
    "  GROUP BY value"
    " UNION ALL SELECT 1, NULL, (SELECT coalesce(sum(count), 0) FROM c WHERE overflow)::bigint"
    "  FROM ok"
    " UNION ALL SELECT 2, NULL, ((SELECT coalesce(sum(count), 0) FROM rollups"
    "  WHERE tenant_id = $1::uuid AND granularity = 'hour' AND event_type = coalesce($4, '')"
    "  AND bucket_start >= $5::timestamptz AND bucket_start < $6::timestamptz)"
    "  + (SELECT count(*) FROM edge))::bigint FROM ok"
    " UNION ALL SELECT 3, value_cap::text, 0 FROM ok";

static const char breakdown_events_sql[] =
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
    " AS x ORDER BY k, n DESC, val COLLATE \"C\"";

/* One named value's count (borrowed from the result). */
typedef struct {
    const char *value;
    int64_t count;
} value_count_t;

/* By count descending, then value ascending bytewise (as ORDER BY n DESC, val COLLATE "C"). */
static int cmp_value_count(const void *a, const void *b)
{
    const value_count_t *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->value, y->value);
}

static void put_breakdown_open(eo_buf_t *out, const qreq_t *r, int64_t total)
{
    put_open(out, r, true);
    eo_buf_puts(out, ",\"property\":");
    eo_buf_put_json_str(out, r->property, strlen(r->property));
    eo_buf_putf(out, ",\"total\":%lld,\"values\":[", (long long)total);
}

static void put_value(eo_buf_t *out, bool first, const char *value, int64_t count)
{
    eo_buf_puts(out, first ? "{\"value\":" : ",{\"value\":");
    eo_buf_put_json_str(out, value, strlen(value));
    eo_buf_putf(out, ",\"count\":%lld}", (long long)count);
}

/* The answer from property rollups; *used false (nothing written) when the path is not tracked
 * and complete for the tenant. */
static int breakdown_from_rollups(PGconn *conn, const qreq_t *r, eo_buf_t *out, bool *used,
                                  char *err, size_t errlen)
{
    *used = false;
    int64_t lo = eo_floor_to(r->from_us + EO_US_PER_HOUR - 1, EO_US_PER_HOUR);
    int64_t hi = eo_floor_to(r->to_us, EO_US_PER_HOUR);
    if (lo >= hi) /* no whole hour inside: all of it is an edge */
        lo = hi = r->to_us;
    char from[EO_RFC3339_MAX], to[EO_RFC3339_MAX], tlo[EO_RFC3339_MAX], thi[EO_RFC3339_MAX];
    eo_rfc3339_format(r->from_us, from);
    eo_rfc3339_format(r->to_us, to);
    eo_rfc3339_format(lo, tlo);
    eo_rfc3339_format(hi, thi);
    const char *p[] = {r->tenant_id, r->property, r->property_path, r->event_type, tlo, thi,
                       from,         to};
    PGresult *res;
    int rc = query(conn, breakdown_rollups_sql, 8, p, &res, err, errlen);
    if (rc < 0)
        return rc;
    int rows = PQntuples(res);
    value_count_t *vals = calloc(rows ? (size_t)rows : 1, sizeof *vals);
    if (!vals) {
        PQclear(res);
        return EO_ENOMEM;
    }
    size_t nvals = 0;
    int64_t overflow = 0, events = 0, named = 0;
    for (int i = 0; i < rows; i++) {
        int k = (int)num(res, i, 0);
        if (k == 0) {
            vals[nvals++] = (value_count_t){PQgetvalue(res, i, 1), num(res, i, 2)};
            named += num(res, i, 2);
        } else if (k == 1) {
            overflow = num(res, i, 2);
        } else if (k == 2) {
            events = num(res, i, 2);
        } else if (k == 3) {
            *used = true;
        }
    }
    if (*used) {
        qsort(vals, nvals, sizeof *vals, cmp_value_count);
        size_t ntop = nvals < (size_t)r->limit ? nvals : (size_t)r->limit;
        int64_t in_top = 0;
        for (size_t i = 0; i < ntop; i++)
            in_top += vals[i].count;
        put_breakdown_open(out, r, events);
        for (size_t i = 0; i < ntop; i++)
            put_value(out, i == 0, vals[i].value, vals[i].count);
        put_value(out, ntop == 0, "(other)", named - in_top + overflow);
        put_value(out, false, "(none)", events - named - overflow);
        eo_buf_putc(out, ']');
        if (overflow > 0) {
            /* a value counted as overflow could belong in the list when the list is not full or
             * the overflow is as large as its last count */
            bool exact = ntop == (size_t)r->limit && overflow < vals[ntop - 1].count;
            eo_buf_putf(out, ",\"overflow\":{\"count\":%lld,\"topExact\":%s}", (long long)overflow,
                        exact ? "true" : "false");
        }
        eo_buf_putc(out, '}');
        rc = eo_buf_error(out);
    }
    free(vals);
    PQclear(res);
    return rc;
}

static int answer_breakdown(PGconn *conn, const qreq_t *r, eo_buf_t *out, eo_q_source_t *source,
                            const char **field, char *err, size_t errlen)
{
    bool used;
    int rc = breakdown_from_rollups(conn, r, out, &used, err, errlen);
    if (rc < 0 || used) {
        *source = EO_Q_SRC_PROPERTY_ROLLUPS;
        return rc;
    }
    char from[EO_RFC3339_MAX], to[EO_RFC3339_MAX], limit[24];
    eo_rfc3339_format(r->from_us, from);
    eo_rfc3339_format(r->to_us, to);
    snprintf(limit, sizeof limit, "%lld", (long long)r->limit);
    const char *p[] = {r->tenant_id, from, to, r->event_type, r->property_path, limit};
    PGresult *res;
    rc = query(conn, breakdown_events_sql, 6, p, &res, err, errlen);
    if (rc < 0)
        return rc;
    int64_t total = 0;
    for (int i = 0; i < PQntuples(res); i++)
        total += num(res, i, 2);
    put_breakdown_open(out, r, total);
    for (int i = 0; i < PQntuples(res); i++) {
        int k = (int)num(res, i, 0);
        const char *val = k == 0 ? PQgetvalue(res, i, 1) : k == 1 ? "(other)" : "(none)";
        put_value(out, i == 0, val, num(res, i, 2));
    }
    PQclear(res);
    eo_buf_puts(out, "]}");
    return eo_buf_error(out);
}

/* ---- funnel: timelines (ADR-23), else events ---- */

_Static_assert(EO_FUNNEL_MAX_STEPS >= EO_QREQ_MAX_STEPS, "a funnel takes every step allowed");

/* The step types' timelines from the hour holding from to the hour holding to + within, and
 * the deltas not yet merged there (the same snapshot: each stored event is in one of the two). */
static const char funnel_timelines_sql[] =
    "SELECT event_type, (extract(epoch FROM bucket_start) * 1000000)::bigint, events"
    " FROM timelines WHERE tenant_id = $1::uuid AND event_type = ANY($2::text[])"
    " AND bucket_start >= $3::timestamptz AND bucket_start < $4::timestamptz"
    " UNION ALL SELECT event_type, (extract(epoch FROM bucket_start) * 1000000)::bigint, events"
    " FROM timeline_deltas WHERE tenant_id = $1::uuid AND event_type = ANY($2::text[])"
    " AND bucket_start >= $3::timestamptz AND bucket_start < $4::timestamptz";

/* An int8 column of a binary result. */
static int64_t int8_bin(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 8)
        return 0;
    const unsigned char *p = (const unsigned char *)PQgetvalue(res, row, col);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return (int64_t)v;
}

static bool same_step(const qreq_t *r, size_t a, size_t b)
{
    return r->step_len[a] == r->step_len[b] &&
           memcmp(r->steps[a], r->steps[b], r->step_len[a]) == 0;
}

/* users[k] per step from the timelines. The decoded events take 16 bytes each: more than
 * r->max_funnel_events of them is EO_ELIMIT (field "from"). */
static int funnel_from_timelines(PGconn *conn, const qreq_t *r, uint64_t *users, const char **field,
                                 char *err, size_t errlen)
{
    /* the distinct step types: type_of[k] indexes vecs */
    size_t type_of[EO_QREQ_MAX_STEPS], ntypes = 0;
    size_t first_step[EO_QREQ_MAX_STEPS];
    eo_buf_t types;
    eo_buf_init(&types, 1 << 20);
    for (size_t k = 0; k < r->nsteps; k++) {
        size_t t = 0;
        while (t < ntypes && !same_step(r, first_step[t], k))
            t++;
        if (t == ntypes) {
            first_step[ntypes++] = k;
            eo_pg_array_str(&types, r->steps[k], r->step_len[k]);
        }
        type_of[k] = t;
    }
    eo_pg_array_close(&types);
    char lo[EO_RFC3339_MAX], hi[EO_RFC3339_MAX];
    eo_rfc3339_format(eo_floor_to(r->from_us, EO_TIMELINE_BUCKET_US), lo);
    eo_rfc3339_format(r->to_us + r->within_s * 1000000, hi);
    const char *p[] = {r->tenant_id, types.data, lo, hi};
    eo_timeline_vec_t *vecs = calloc(ntypes, sizeof *vecs);
    PGresult *res = NULL;
    int rc = eo_buf_error(&types);
    if (rc == 0 && !vecs)
        rc = EO_ENOMEM;
    if (rc == 0)
        rc = query_binary(conn, funnel_timelines_sql, 4, p, &res, err, errlen);
    else
        snprintf(err, errlen, "cannot build the timeline query: %s", eo_strerror(rc));
    for (int row = 0; rc == 0 && row < PQntuples(res); row++) {
        const char *type = PQgetvalue(res, row, 0);
        size_t len = (size_t)PQgetlength(res, row, 0), t = 0;
        while (t < ntypes && !(r->step_len[first_step[t]] == len &&
                               memcmp(r->steps[first_step[t]], type, len) == 0))
            t++;
        if (t == ntypes)
            continue;
        rc = eo_timeline_decode(PQgetvalue(res, row, 2), (size_t)PQgetlength(res, row, 2),
                                int8_bin(res, row, 1), &vecs[t]);
        if (rc == EO_EDATA) {
            snprintf(err, errlen, "a stored timeline is not in the timeline encoding");
            rc = EO_EIO;
        }
        size_t decoded = 0;
        for (size_t k = 0; rc == 0 && k < ntypes; k++)
            decoded += vecs[k].n;
        if (rc == 0 && decoded > (uint64_t)r->max_funnel_events) {
            *field = "from";
            snprintf(
                err, errlen,
                "the steps' event types have more than %lld events in the hours from `from` to "
                "`to` plus `within` (EVENTOPS_QUERY_MAX_FUNNEL_EVENTS); narrow the range",
                (long long)r->max_funnel_events);
            rc = EO_ELIMIT;
        }
    }
    PQclear(res);
    if (rc == 0) {
        eo_funnel_t f = {.nsteps = r->nsteps,
                         .from_us = r->from_us,
                         .to_us = r->to_us,
                         .within_us = r->within_s * 1000000};
        for (size_t k = 0; k < r->nsteps; k++) {
            f.steps[k] = &vecs[type_of[k]];
            f.same_type[k] = k > 0 && type_of[k] == type_of[k - 1];
        }
        rc = eo_funnel_eval(&f, users);
        if (rc < 0)
            snprintf(err, errlen, "cannot evaluate the funnel: %s", eo_strerror(rc));
    }
    for (size_t t = 0; vecs && t < ntypes; t++)
        eo_timeline_vec_done(&vecs[t]);
    free(vecs);
    eo_buf_done(&types);
    return rc;
}

/* users[k] per step from the raw events. */
static int funnel_from_events(PGconn *conn, const qreq_t *r, uint64_t *users, char *err,
                              size_t errlen)
{
    char from[EO_RFC3339_MAX], to[EO_RFC3339_MAX], within[24];
    eo_rfc3339_format(r->from_us, from);
    eo_rfc3339_format(r->to_us, to);
    snprintf(within, sizeof within, "%lld", (long long)r->within_s);
    const char *p[4 + EO_QREQ_MAX_STEPS];
    char *steps[EO_QREQ_MAX_STEPS] = {0};
    p[0] = r->tenant_id, p[1] = from, p[2] = to, p[3] = within;
    eo_buf_t sql;
    eo_buf_init(&sql, 1 << 20);
    eo_buf_puts(&sql,
                "WITH s1 AS (SELECT coalesce(user_id, anonymous_id) AS u, min(occurred_at) AS t1,"
                " min(occurred_at) AS t FROM events WHERE tenant_id = $1::uuid"
                " AND event_type = $5 AND occurred_at >= $2::timestamptz"
                " AND occurred_at < $3::timestamptz GROUP BY 1)");
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < r->nsteps; k++) {
        steps[k] = strndup(r->steps[k], r->step_len[k]);
        if (!steps[k])
            rc = EO_ENOMEM;
        p[4 + k] = steps[k];
    }
    for (size_t k = 1; k < r->nsteps; k++)
        eo_buf_putf(&sql,
                    ", s%zu AS (SELECT s.u, s.t1, min(e.occurred_at) AS t FROM s%zu AS s"
                    " JOIN events AS e ON e.tenant_id = $1::uuid AND e.event_type = $%zu"
                    " AND coalesce(e.user_id, e.anonymous_id) = s.u AND e.occurred_at %s s.t"
                    " AND e.occurred_at < s.t1 + make_interval(secs => $4::bigint)"
                    " AND e.occurred_at >= $2::timestamptz"
                    " AND e.occurred_at < $3::timestamptz + make_interval(secs => $4::bigint)"
                    " GROUP BY s.u, s.t1)",
                    k + 1, k, k + 5, same_step(r, k, k - 1) ? ">" : ">=");
    eo_buf_puts(&sql, " SELECT ");
    for (size_t k = 0; k < r->nsteps; k++)
        eo_buf_putf(&sql, "%s(SELECT count(*) FROM s%zu)", k ? ", " : "", k + 1);
    eo_buf_putc(&sql, '\0');
    rc = rc ? rc : eo_buf_error(&sql);
    PGresult *res = NULL;
    if (rc == 0)
        rc = query(conn, sql.data, (int)(4 + r->nsteps), p, &res, err, errlen);
    else
        snprintf(err, errlen, "out of memory");
    for (size_t k = 0; rc == 0 && k < r->nsteps; k++)
        users[k] = (uint64_t)num(res, 0, (int)k);
    PQclear(res);
    for (size_t k = 0; k < r->nsteps; k++)
        free(steps[k]);
    eo_buf_done(&sql);
    return rc;
}

static int answer_funnel(PGconn *conn, const qreq_t *r, eo_buf_t *out, eo_q_source_t *source,
                         const char **field, char *err, size_t errlen)
{
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
    uint64_t users[EO_QREQ_MAX_STEPS];
    bool timelines;
    int rc = structure_ready(conn, "timelines", &timelines_complete, &timelines, err, errlen);
    if (rc < 0)
        return rc;
    if (timelines) {
        *source = EO_Q_SRC_TIMELINES;
        rc = funnel_from_timelines(conn, r, users, field, err, errlen);
    } else {
        rc = funnel_from_events(conn, r, users, err, errlen);
    }
    if (rc < 0)
        return rc;
    put_open(out, r, false);
    eo_buf_putf(out, ",\"within\":\"%s\",\"withinSeconds\":%lld,\"steps\":[", within_text,
                (long long)r->within_s);
    uint64_t first = users[0], prev = users[0];
    for (size_t k = 0; k < r->nsteps; k++) {
        eo_buf_puts(out, k ? ",{\"eventType\":" : "{\"eventType\":");
        eo_buf_put_json_str(out, r->steps[k], r->step_len[k]);
        eo_buf_putf(out, ",\"users\":%llu,\"conversionRate\":%.6g,\"stepConversionRate\":%.6g}",
                    (unsigned long long)users[k], first ? (double)users[k] / (double)first : 0.0,
                    prev ? (double)users[k] / (double)prev : 0.0);
        prev = users[k];
    }
    eo_buf_puts(out, "]}");
    return eo_buf_error(out);
}

/* ---- retention: user sets (ADR-22) ---- */

/* {"from",...,"tz":..,"cohorts":[ (no closing) */
static void put_retention_open(eo_buf_t *out, const qreq_t *r)
{
    put_open(out, r, false);
    eo_buf_puts(out, ",\"startEvent\":");
    eo_buf_put_json_str(out, r->start_event, strlen(r->start_event));
    eo_buf_puts(out, ",\"returnEvent\":");
    eo_buf_put_json_str(out, r->return_event, strlen(r->return_event));
    eo_buf_putf(out, ",\"period\":\"%s\",\"periods\":%lld,\"tz\":", eo_q_unit_name(r->unit),
                (long long)r->periods);
    eo_buf_put_json_str(out, r->tz, strlen(r->tz));
    eo_buf_puts(out, ",\"cohorts\":[");
}

/* Retention from the user sets: per local period j of [from, to) the users whose first
 * startEvent of the range falls in it (the startEvent set of j less those of earlier periods),
 * and per k the size of their intersection with the returnEvent set of the whole period j + k.
 * Returns 1 (and answers nothing) when the periods cannot be laid out, so that raw events
 * answer. */
static int retention_from_sets(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field,
                               char *err, size_t errlen)
{
    int64_t unit_days = r->unit == EO_Q_WEEK ? 7 : 1;
    qreq_t ext = *r; /* the periods up to the last cohort's last return period */
    ext.to_us = r->to_us + (r->periods + 2) * unit_days * EO_US_PER_DAY;
    ext.max_buckets = r->max_buckets + r->periods + 16;
    buckets_t bk;
    int rc = fetch_buckets(conn, &ext, r->unit, &bk, field, err, errlen);
    if (rc < 0)
        return rc;
    size_t ncoh = 0;
    while (ncoh < bk.n && bk.start[ncoh] < r->to_us)
        ncoh++;
    size_t nret = ncoh + (size_t)r->periods;
    if (nret + 1 > bk.n) { /* not enough periods laid out: raw events answer */
        buckets_free(&bk);
        return 1;
    }
    slot_t *slots = calloc(ncoh + nret + 1, sizeof *slots);
    if (!slots) {
        buckets_free(&bk);
        return EO_ENOMEM;
    }
    for (size_t j = 0; j < ncoh; j++) {
        int64_t lo = bk.start[j] > r->from_us ? bk.start[j] : r->from_us;
        int64_t hi = bk.start[j + 1] < r->to_us ? bk.start[j + 1] : r->to_us;
        slots[j] = (slot_t){r->start_event, lo, hi};
    }
    for (size_t t = 0; t < nret; t++)
        slots[ncoh + t] = (slot_t){r->return_event, bk.start[t], bk.start[t + 1]};
    eo_userset_t **sets;
    rc = slot_sets(conn, r->tenant_id, slots, ncoh + nret, &sets, err, errlen);
    free(slots);
    if (rc < 0) {
        buckets_free(&bk);
        return rc;
    }
    put_retention_open(out, r);
    eo_userset_t *seen = eo_userset_new();
    rc = seen ? 0 : EO_ENOMEM;
    bool first = true;
    for (size_t j = 0; rc == 0 && j < ncoh; j++) {
        eo_userset_t *cohort = sets[j]; /* first startEvent in period j: less the earlier ones */
        eo_userset_remove_set(cohort, seen);
        eo_userset_add_set(seen, sets[j]);
        uint64_t size = eo_userset_count(cohort);
        if (size == 0)
            continue;
        char t[EO_RFC3339_MAX];
        eo_rfc3339_format_local(bk.start[j], bk.offset[j], t);
        eo_buf_putf(out, "%s{\"start\":\"%s\",\"users\":%llu,\"retained\":[", first ? "" : ",", t,
                    (unsigned long long)size);
        first = false;
        for (size_t k = 0; k <= (size_t)r->periods; k++)
            eo_buf_putf(out, "%s%llu", k ? "," : "",
                        (unsigned long long)eo_userset_and_count(cohort, sets[ncoh + j + k]));
        eo_buf_puts(out, "],\"rates\":[");
        for (size_t k = 0; k <= (size_t)r->periods; k++)
            eo_buf_putf(out, "%s%.6g", k ? "," : "",
                        (double)eo_userset_and_count(cohort, sets[ncoh + j + k]) / (double)size);
        eo_buf_puts(out, "]}");
        rc = eo_buf_error(out);
    }
    eo_buf_puts(out, "]}");
    eo_userset_free(seen);
    free_sets(sets, ncoh + nret);
    buckets_free(&bk);
    return rc ? rc : eo_buf_error(out);
}

/* ---- retention: events ---- */

static int answer_retention(PGconn *conn, const qreq_t *r, eo_buf_t *out, eo_q_source_t *source,
                            const char **field, char *err, size_t errlen)
{
    buckets_t cohorts; /* the cohorts the range can hold count against the bucket limit */
    int rc = fetch_buckets(conn, r, r->unit, &cohorts, field, err, errlen);
    if (rc < 0)
        return rc;
    buckets_free(&cohorts);
    bool sets = false;
    if ((rc = user_sets_ready(conn, &sets, err, errlen)) < 0)
        return rc;
    if (sets) {
        size_t mark = out->len;
        rc = retention_from_sets(conn, r, out, field, err, errlen);
        if (rc <= 0) {
            *source = EO_Q_SRC_USER_SETS;
            return rc;
        }
        eo_buf_truncate(out, mark); /* laid out no periods: raw events answer */
    }
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
    put_retention_open(out, r);
    size_t np = (size_t)r->periods + 1;
    int64_t *kept = calloc(np, sizeof *kept);
    rc = kept ? 0 : EO_ENOMEM;
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
        eo_buf_putf(out, "%s{\"start\":\"%s\",\"users\":%lld,\"retained\":[", first ? "" : ",", t,
                    (long long)size);
        first = false;
        for (size_t k = 0; k < np; k++)
            eo_buf_putf(out, "%s%lld", k ? "," : "", (long long)kept[k]);
        eo_buf_puts(out, "],\"rates\":[");
        for (size_t k = 0; k < np; k++)
            eo_buf_putf(out, "%s%.6g", k ? "," : "", size ? (double)kept[k] / (double)size : 0.0);
        eo_buf_puts(out, "]}");
        rc = eo_buf_error(out);
    }
    free(kept);
    PQclear(res);
    eo_buf_puts(out, "]}");
    return rc ? rc : eo_buf_error(out);
}

/* ---- types: rollups, then one minute of events per end ---- */

static int answer_types(PGconn *conn, const qreq_t *r, eo_buf_t *out, eo_q_source_t *source,
                        const char **field, char *err, size_t errlen)
{
    *source = EO_Q_SRC_ROLLUPS;
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
    eo_buf_puts(out, "{\"types\":[");
    for (int i = 0; i < PQntuples(res); i++) {
        const char *type = PQgetvalue(res, i, 0);
        eo_buf_puts(out, i ? ",{\"eventType\":" : "{\"eventType\":");
        eo_buf_put_json_str(out, type, strlen(type));
        eo_buf_putf(out, ",\"count\":%lld,", (long long)num(res, i, 1));
        eo_json_put_time(out, "firstSeen", num(res, i, 2));
        eo_buf_putc(out, ',');
        eo_json_put_time(out, "lastSeen", num(res, i, 3));
        eo_buf_putc(out, '}');
    }
    PQclear(res);
    eo_buf_puts(out, "]}");
    return eo_buf_error(out);
}

/* ---- raw events: the events primary key (or the user index) ---- */

/* The lower end of a raw page's scan with an event type and no user, from the hour rollups of
 * the type (exact, written with the events): the start of the latest whole UTC hour H such that
 * the hours from H up to the hour holding the page's upper end ($3: the cursor, else `to`) hold
 * at least `limit` ($5) events, when H is after `from` ($2; those hours' events all lie in the
 * page's range, so the newest `limit` are at or after H); when no such hour exists, the first
 * hour from the one holding `from` that holds any event of the type (none: the upper end, an
 * empty scan). So the primary key is scanned from there rather than from `from` (rare types
 * over long ranges; there is no (tenant, type, time) index, ADR-25). Asked before the page, as a
 * constant for the page's statement (partitions pruned when planning); the page's snapshot is
 * later, and rollups and events are committed together, so it sees at least those events. */
#define RAW_HOURS                                                                                  \
    " FROM rollups WHERE tenant_id = $1::uuid AND granularity = 'hour' AND event_type = $4"
static const char raw_lower_sql[] =
    "SELECT (extract(epoch FROM greatest($2::timestamptz, coalesce((SELECT max(x.b) FROM"
    " (SELECT bucket_start AS b, sum(count) OVER (ORDER BY bucket_start DESC) AS c" RAW_HOURS
    " AND bucket_start >= $2::timestamptz AND bucket_start < date_bin('1 hour', $3::timestamptz,"
    " TIMESTAMPTZ '2000-01-01 00:00:00+00')) AS x WHERE x.c >= $5::bigint),"
    " (SELECT min(bucket_start)" RAW_HOURS " AND count > 0 AND bucket_start >= date_bin('1 hour',"
    " $2::timestamptz, TIMESTAMPTZ '2000-01-01 00:00:00+00') AND bucket_start < $3::timestamptz),"
    " $3::timestamptz))) * 1000000)::bigint";

static int answer_events(PGconn *conn, const qreq_t *r, eo_buf_t *out, eo_q_source_t *source,
                         const char **field, char *err, size_t errlen)
{
    char from[EO_RFC3339_MAX], to[EO_RFC3339_MAX], cur[EO_RFC3339_MAX], limit[24];
    eo_rfc3339_format(r->from_us, from);
    eo_rfc3339_format(r->to_us, to);
    if (r->has_cursor)
        eo_rfc3339_format(r->cursor_us, cur);
    snprintf(limit, sizeof limit, "%lld", (long long)r->limit);
    PGresult *res;
    if (r->event_type && !r->user_id) {
        const char *lp[] = {r->tenant_id, from, r->has_cursor ? cur : to, r->event_type, limit};
        int rc = query(conn, raw_lower_sql, 5, lp, &res, err, errlen);
        if (rc < 0)
            return rc;
        if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
            eo_rfc3339_format(num(res, 0, 0), from);
        PQclear(res);
    }
    const char *p[] = {r->tenant_id,
                       from,
                       to,
                       r->event_type,
                       r->user_id,
                       r->has_cursor ? cur : NULL,
                       r->has_cursor ? r->cursor_id : NULL,
                       limit};
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
    eo_buf_puts(out, "{\"events\":[");
    for (int i = 0; i < rows; i++) {
        const char *mid = PQgetvalue(res, i, 0), *type = PQgetvalue(res, i, 1);
        eo_buf_puts(out, i ? ",{\"messageId\":" : "{\"messageId\":");
        eo_buf_put_json_str(out, mid, strlen(mid));
        eo_buf_puts(out, ",\"eventType\":");
        eo_buf_put_json_str(out, type, strlen(type));
        eo_buf_putc(out, ',');
        put_str_or_null(out, "userId", PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2));
        eo_buf_putc(out, ',');
        put_str_or_null(out, "anonymousId", PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3));
        eo_buf_putc(out, ',');
        eo_json_put_time(out, "timestamp", num(res, i, 4));
        eo_buf_putc(out, ',');
        eo_json_put_time(out, "receivedAt", num(res, i, 5));
        if (PQgetisnull(res, i, 6)) {
            eo_buf_puts(out, ",\"sentAt\":null");
        } else {
            eo_buf_putc(out, ',');
            eo_json_put_time(out, "sentAt", num(res, i, 6));
        }
        eo_buf_putf(out, ",\"properties\":%s", PQgetvalue(res, i, 7));
        eo_buf_putf(out, ",\"context\":%s}", PQgetvalue(res, i, 8));
    }
    eo_buf_puts(out, "],\"nextCursor\":");
    char c[EO_Q_CURSOR_MAX];
    const char *last = rows > 0 ? PQgetvalue(res, rows - 1, 0) : NULL;
    if (rows > 0 && rows == r->limit &&
        eo_q_cursor_encode(num(res, rows - 1, 4), last, strlen(last), c) == 0)
        eo_buf_putf(out, "\"%s\"}", c);
    else
        eo_buf_puts(out, "null}");
    PQclear(res);
    return eo_buf_error(out);
}

/* ---- the table: one row per endpoint (and its operation in docs/openapi.json) ---- */

const eo_q_endpoint_t eo_q_endpoints[] = {
    {"/events/count", "count", {.params = "eventType from to"}, answer_count, true},
    {"/events/trend",
     "trend",
     {.params = "eventType interval from to tz",
      .has_default_interval = true,
      .default_interval = EO_Q_DAY},
     answer_trend,
     true},
    {"/events/unique-users",
     "unique_users",
     {.params = "eventType from to interval tz"},
     answer_unique_users,
     true},
    {"/events/breakdown",
     "breakdown",
     {.params = "eventType property from to limit", .default_limit = 10},
     answer_breakdown,
     true},
    {"/events/funnel", "funnel", {.params = "steps within from to"}, answer_funnel, true},
    {"/events/retention",
     "retention",
     {.params = "startEvent returnEvent period periods from to tz"},
     answer_retention,
     true},
    {"/events/types", "types", {.params = ""}, answer_types, true},
    {"/events",
     "events",
     {.params = "eventType userId from to limit cursor"},
     answer_events,
     false},
};
const size_t eo_q_nendpoints = sizeof eo_q_endpoints / sizeof eo_q_endpoints[0];
_Static_assert(sizeof eo_q_endpoints / sizeof eo_q_endpoints[0] <= EO_Q_MAX_ENDPOINTS,
               "query.c keeps metrics for at most EO_Q_MAX_ENDPOINTS endpoints");
