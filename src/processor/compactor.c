/* The compactor of the user sets and the timelines (see compactor.h). */
#include "processor/compactor.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/hmap.h"
#include "core/log.h"
#include "core/pg.h"
#include "core/ticker.h"
#include "domain/buckets.h"
#include "domain/rfc3339.h"
#include "domain/timeline.h"
#include "domain/userset.h"

#define LOCK_KEY EO_COMPACTOR_LOCK_KEY
#define MAX_PASSES_PER_TICK 50
#define MAX_BACKFILL_DAYS_PER_TICK 10

static const char take_sql[] =
    "WITH d AS (DELETE FROM user_set_deltas WHERE id IN"
    " (SELECT id FROM user_set_deltas ORDER BY id LIMIT $1::bigint)"
    " RETURNING tenant_id, event_type, bucket_start, users)"
    " SELECT tenant_id::text, event_type, (extract(epoch FROM bucket_start) * 1000000)::bigint,"
    " users FROM d";

static const char old_sql[] =
    "SELECT k.i, s.users FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])"
    " WITH ORDINALITY AS k(tenant_id, granularity, event_type, bucket_start, i)"
    " JOIN user_sets AS s USING (tenant_id, granularity, event_type, bucket_start)";

static const char put_sql[] =
    "INSERT INTO user_sets (tenant_id, granularity, event_type, bucket_start, users)"
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::bytea[])"
    " ORDER BY 1, 2, 3, 4"
    " ON CONFLICT (tenant_id, granularity, event_type, bucket_start)"
    " DO UPDATE SET users = EXCLUDED.users";

static const struct {
    const char *name;
    int64_t us;
} grans[] = {{"quarter", EO_US_PER_QUARTER}, {"hour", EO_US_PER_HOUR}, {"day", EO_US_PER_DAY}};

/* One compacted row being built. */
typedef struct {
    char tenant[37];
    const char *gran;
    char *type;
    int64_t bucket;
    eo_userset_t *set;    /* the user sets' rows */
    eo_timeline_vec_t tl; /* the timelines' rows */
    int part;             /* the timelines' first part written (the hour's last one read) */
} merged_t;

typedef struct {
    eo_hmap_t index; /* key -> position + 1 in rows */
    merged_t *rows;
    size_t n, cap;
    bool timelines;      /* rows of timelines (else of user sets) */
    int64_t part_events; /* the timelines: events per part at most */
} merge_t;

static void merge_done(merge_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->rows[i].type);
        eo_userset_free(m->rows[i].set);
        eo_timeline_vec_done(&m->rows[i].tl);
    }
    free(m->rows);
    eo_hmap_done(&m->index, NULL);
}

/* The row of (tenant, gran, type, bucket), made when new; NULL when out of memory. */
static merged_t *merge_row(merge_t *m, const char *tenant, const char *gran, const char *type,
                           int64_t bucket, eo_buf_t *key)
{
    eo_buf_reset(key);
    eo_buf_putf(key, "%s|%s|%lld|%s", tenant, gran, (long long)bucket, type);
    if (eo_buf_error(key))
        return NULL;
    uintptr_t at = (uintptr_t)eo_hmap_get(&m->index, key->data, key->len);
    if (at)
        return &m->rows[at - 1];
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 64;
        merged_t *rows = realloc(m->rows, cap * sizeof *rows);
        if (!rows)
            return NULL;
        m->rows = rows;
        m->cap = cap;
    }
    merged_t *row = &m->rows[m->n];
    *row = (merged_t){.gran = gran, .bucket = bucket};
    snprintf(row->tenant, sizeof row->tenant, "%s", tenant);
    row->type = strdup(type);
    row->set = m->timelines ? NULL : eo_userset_new();
    void *old;
    if (!row->type || (!m->timelines && !row->set) ||
        eo_hmap_put(&m->index, key->data, key->len, (void *)(uintptr_t)(m->n + 1), &old) < 0) {
        free(row->type);
        eo_userset_free(row->set);
        return NULL;
    }
    m->n++;
    return row;
}

static int64_t floor_us(int64_t t, int64_t g)
{
    return eo_floor_to(t, g);
}

static void put_time(eo_buf_t *b, int64_t us)
{
    char t[EO_RFC3339_MAX];
    eo_pg_array_elem(b, t, eo_rfc3339_format(us, t));
}

static void put_str(eo_buf_t *b, const char *s)
{
    eo_pg_array_str(b, s, strlen(s));
}

/* Adds the hex/escaped bytea text of a result cell to set. */
static int add_cell(eo_userset_t *set, const PGresult *res, int row, int col)
{
    size_t n = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col), &n);
    if (!bytes)
        return EO_ENOMEM;
    int r = eo_userset_add_serialized(set, bytes, n);
    PQfreemem(bytes);
    return r;
}

/* Writes the rows of m into user_sets; with_old: united with the rows there first (else they
 * replace them). */
static int write_rows(PGconn *conn, merge_t *m, bool with_old, char *err, size_t errlen)
{
    eo_buf_t a[5];
    for (int i = 0; i < 5; i++)
        eo_buf_init(&a[i], (size_t)1 << 30);
    int r = 0;
    for (size_t i = 0; i < m->n; i++) {
        eo_pg_array_elem(&a[0], m->rows[i].tenant, strlen(m->rows[i].tenant));
        put_str(&a[1], m->rows[i].gran);
        put_str(&a[2], m->rows[i].type);
        put_time(&a[3], m->rows[i].bucket);
    }
    const char *p[5];
    for (int i = 0; i < 4; i++) {
        eo_pg_array_close(&a[i]);
        r = r ? r : eo_buf_error(&a[i]);
        p[i] = a[i].data;
    }
    PGresult *res = NULL;
    if (r == 0 && with_old && (r = eo_pg_query(conn, old_sql, 4, p, &res, err, errlen)) == 0) {
        for (int i = 0; r == 0 && i < PQntuples(res); i++) {
            long long at = strtoll(PQgetvalue(res, i, 0), NULL, 10);
            if (at >= 1 && (size_t)at <= m->n)
                r = add_cell(m->rows[at - 1].set, res, i, 1);
        }
        PQclear(res);
    }
    eo_buf_t bytes;
    eo_buf_init(&bytes, (size_t)1 << 30);
    for (size_t i = 0; r == 0 && i < m->n; i++) {
        eo_buf_reset(&bytes);
        r = eo_userset_serialize(m->rows[i].set, &bytes);
        if (r == 0)
            eo_pg_array_bytea(&a[4], bytes.data, bytes.len);
    }
    eo_buf_done(&bytes);
    eo_pg_array_close(&a[4]);
    r = r ? r : eo_buf_error(&a[4]);
    p[4] = a[4].data;
    if (r == 0 && m->n > 0 && (r = eo_pg_query(conn, put_sql, 5, p, &res, err, errlen)) == 0)
        PQclear(res);
    for (int i = 0; i < 5; i++)
        eo_buf_done(&a[i]);
    return r;
}

int eo_compactor_rollback(PGconn *conn, int r)
{
    char ignored[128];
    if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE)
        eo_ignore(eo_pg_exec(conn, "ROLLBACK", ignored, sizeof ignored));
    return r;
}

static int rollback(PGconn *conn, int r)
{
    return eo_compactor_rollback(conn, r);
}

int eo_compactor_begin(PGconn *conn, char *err, size_t errlen)
{
    int r = eo_pg_exec(conn, "BEGIN", err, errlen);
    if (r < 0)
        return r;
    PGresult *res = NULL;
    r = eo_pg_query(conn, "SELECT pg_try_advisory_xact_lock(" LOCK_KEY ")", 0, NULL, &res, err,
                    errlen);
    bool locked = r == 0 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (r < 0 || !locked)
        return rollback(conn, r < 0 ? r : 0);
    return 1;
}

/* One user-set delta (take_sql's row i) into its quarter, hour and day. */
static int add_set_delta(merge_t *m, const PGresult *res, int i, eo_buf_t *key)
{
    const char *tenant = PQgetvalue(res, i, 0), *type = PQgetvalue(res, i, 1);
    int64_t q = strtoll(PQgetvalue(res, i, 2), NULL, 10);
    eo_userset_t *delta = eo_userset_new();
    int r = delta ? add_cell(delta, res, i, 3) : EO_ENOMEM;
    for (size_t g = 0; r == 0 && g < sizeof grans / sizeof grans[0]; g++) {
        merged_t *row = merge_row(m, tenant, grans[g].name, type, floor_us(q, grans[g].us), key);
        if (!row)
            r = EO_ENOMEM;
        else
            eo_userset_add_set(row->set, delta);
    }
    eo_userset_free(delta);
    return r;
}

/* ---- the timelines' compaction ---- */

static const char take_timelines_sql[] =
    "WITH d AS (DELETE FROM timeline_deltas WHERE id IN"
    " (SELECT id FROM timeline_deltas ORDER BY id LIMIT $1::bigint)"
    " RETURNING tenant_id, event_type, bucket_start, events)"
    " SELECT tenant_id::text, event_type, (extract(epoch FROM bucket_start) * 1000000)::bigint,"
    " events FROM d";

/* Each hour's last part (migration 0012), its events only while it has room for more. */
static const char old_timelines_sql[] =
    "SELECT k.i, s.part, CASE WHEN s.n_events < $4::int THEN s.events END"
    " FROM unnest($1::uuid[], $2::text[], $3::timestamptz[])"
    " WITH ORDINALITY AS k(tenant_id, event_type, bucket_start, i)"
    " CROSS JOIN LATERAL (SELECT t.part, t.n_events, t.events FROM timelines AS t"
    " WHERE t.tenant_id = k.tenant_id AND t.event_type = k.event_type"
    " AND t.bucket_start = k.bucket_start ORDER BY t.part DESC LIMIT 1) AS s";

static const char put_timelines_sql[] =
    "INSERT INTO timelines (tenant_id, event_type, bucket_start, part, n_events, events)"
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::int[], $5::int[],"
    " $6::bytea[]) ORDER BY 1, 2, 3, 4 ON CONFLICT (tenant_id, event_type, bucket_start, part)"
    " DO UPDATE SET n_events = EXCLUDED.n_events, events = EXCLUDED.events";

/* Appends the entries of the escaped bytea text of a result cell to v. */
static int add_timeline_cell(eo_timeline_vec_t *v, int64_t bucket, const PGresult *res, int row,
                             int col)
{
    size_t n = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col), &n);
    if (!bytes)
        return EO_ENOMEM;
    int r = eo_timeline_decode(bytes, n, bucket, v);
    PQfreemem(bytes);
    return r;
}

/* Adds the parts of one row of m, sorted (ADR-23, migration 0012): at most m->part_events
 * events each, numbered from row->part, to the arrays a[0, 6) of put_timelines_sql. */
static int put_timeline_parts(const merge_t *m, merged_t *row, eo_buf_t a[6], eo_buf_t *bytes)
{
    eo_timeline_sort_unique(row->tl.e, &row->tl.n);
    size_t cap = (size_t)m->part_events, part = (size_t)row->part;
    for (size_t off = 0; off < row->tl.n; off += cap, part++) {
        size_t n = row->tl.n - off < cap ? row->tl.n - off : cap;
        eo_buf_reset(bytes);
        int r = eo_timeline_encode(row->tl.e + off, n, row->bucket, bytes);
        if (r < 0)
            return r == EO_EINVAL ? EO_EDATA : r;
        eo_pg_array_elem(&a[0], row->tenant, strlen(row->tenant));
        put_str(&a[1], row->type);
        put_time(&a[2], row->bucket);
        char num[24];
        eo_pg_array_elem(&a[3], num, (size_t)snprintf(num, sizeof num, "%zu", part));
        eo_pg_array_elem(&a[4], num, (size_t)snprintf(num, sizeof num, "%zu", n));
        eo_pg_array_bytea(&a[5], bytes->data, bytes->len);
    }
    return 0;
}

/* Writes the rows of m into timelines; with_old: merged with each hour's last part when it has
 * room, else from the part after it (without: from part 0, the hour's rows deleted before). */
static int write_timeline_rows(PGconn *conn, merge_t *m, bool with_old, char *err, size_t errlen)
{
    eo_buf_t a[6], bytes;
    for (int i = 0; i < 6; i++)
        eo_buf_init(&a[i], (size_t)1 << 30);
    eo_buf_init(&bytes, (size_t)1 << 30);
    const char *p[6];
    char cap[24];
    snprintf(cap, sizeof cap, "%lld", (long long)m->part_events);
    int r = 0;
    if (with_old && m->n > 0) { /* the keys, then each hour's last part */
        for (size_t i = 0; i < m->n; i++) {
            eo_pg_array_elem(&a[0], m->rows[i].tenant, strlen(m->rows[i].tenant));
            put_str(&a[1], m->rows[i].type);
            put_time(&a[2], m->rows[i].bucket);
        }
        for (int i = 0; i < 3; i++) {
            eo_pg_array_close(&a[i]);
            r = r ? r : eo_buf_error(&a[i]);
            p[i] = a[i].data;
        }
        p[3] = cap;
        PGresult *res = NULL;
        if (r == 0 && (r = eo_pg_query(conn, old_timelines_sql, 4, p, &res, err, errlen)) == 0) {
            for (int i = 0; r == 0 && i < PQntuples(res); i++) {
                long long at = strtoll(PQgetvalue(res, i, 0), NULL, 10);
                if (at < 1 || (size_t)at > m->n)
                    continue;
                merged_t *row = &m->rows[at - 1];
                row->part = (int)strtol(PQgetvalue(res, i, 1), NULL, 10);
                if (PQgetisnull(res, i, 2)) /* full: the next part */
                    row->part++;
                else
                    r = add_timeline_cell(&row->tl, row->bucket, res, i, 2);
            }
            PQclear(res);
        }
        for (int i = 0; i < 3; i++)
            eo_buf_reset(&a[i]);
    }
    for (size_t i = 0; r == 0 && i < m->n; i++)
        r = put_timeline_parts(m, &m->rows[i], a, &bytes);
    for (int i = 0; i < 6; i++) {
        eo_pg_array_close(&a[i]);
        r = r ? r : eo_buf_error(&a[i]);
        p[i] = a[i].data;
    }
    PGresult *res = NULL;
    if (r == 0 && m->n > 0 &&
        (r = eo_pg_query(conn, put_timelines_sql, 6, p, &res, err, errlen)) == 0)
        PQclear(res);
    eo_buf_done(&bytes);
    for (int i = 0; i < 6; i++)
        eo_buf_done(&a[i]);
    return r;
}

/* One timeline delta (take_timelines_sql's row i) into its hour. */
static int add_timeline_delta(merge_t *m, const PGresult *res, int i, eo_buf_t *key)
{
    int64_t h = strtoll(PQgetvalue(res, i, 2), NULL, 10);
    merged_t *row = merge_row(m, PQgetvalue(res, i, 0), "hour", PQgetvalue(res, i, 1), h, key);
    return row ? add_timeline_cell(&row->tl, h, res, i, 3) : EO_ENOMEM;
}

/* What a compaction pass moves: deltas taken (tenant, type, bucket µs, bytes) by take_sql, each
 * added to the rows it belongs to, which are then written merged with the stored ones. */
typedef struct {
    const char *take_sql;
    bool timelines;
    int (*add)(merge_t *m, const PGresult *res, int row, eo_buf_t *key);
    int (*write)(PGconn *conn, merge_t *m, bool with_old, char *err, size_t errlen);
    const char *what; /* in messages */
} pass_kind_t;

static long pass(PGconn *conn, const pass_kind_t *kind, int64_t rows, int64_t part_events,
                 char *err, size_t errlen)
{
    int r = eo_compactor_begin(conn, err, errlen);
    if (r <= 0)
        return r;
    PGresult *res = NULL;
    char limit[24];
    snprintf(limit, sizeof limit, "%lld", (long long)rows);
    const char *lp[] = {limit};
    if ((r = eo_pg_query(conn, kind->take_sql, 1, lp, &res, err, errlen)) < 0)
        return rollback(conn, r);
    int taken = PQntuples(res);
    if (taken == 0) {
        PQclear(res);
        return rollback(conn, 0);
    }
    merge_t m = {.timelines = kind->timelines, .part_events = part_events};
    eo_hmap_init(&m.index);
    eo_buf_t key;
    eo_buf_init(&key, 1 << 20);
    for (int i = 0; r == 0 && i < taken; i++)
        r = kind->add(&m, res, i, &key);
    PQclear(res);
    if (r == 0)
        r = kind->write(conn, &m, true, err, errlen);
    if (r == 0)
        r = eo_pg_exec(conn, "COMMIT", err, errlen);
    else if (r == EO_EDATA || r == EO_ENOMEM)
        snprintf(err, errlen, "cannot merge %s deltas: %s", kind->what, eo_strerror(r));
    merge_done(&m);
    eo_buf_done(&key);
    return r < 0 ? rollback(conn, r) : taken;
}

long eo_compactor_pass(PGconn *conn, int64_t rows, char *err, size_t errlen)
{
    static const pass_kind_t sets = {take_sql, false, add_set_delta, write_rows, "user-set"};
    return pass(conn, &sets, rows, 0, err, errlen);
}

long eo_timeline_compactor_pass(PGconn *conn, int64_t rows, int64_t part_events, char *err,
                                size_t errlen)
{
    static const pass_kind_t tl = {take_timelines_sql, true, add_timeline_delta,
                                   write_timeline_rows, "timeline"};
    return pass(conn, &tl, rows, part_events, err, errlen);
}

/* ---- the backfill: one UTC day of a structure recomputed from the events ---- */

#define DAY_RANGE                                                                                  \
    " occurred_at >= ($1::date::timestamp AT TIME ZONE 'UTC')"                                     \
    " AND occurred_at < (($1::date + 1)::timestamp AT TIME ZONE 'UTC')"
#define BUCKET_RANGE                                                                               \
    " bucket_start >= ($1::date::timestamp AT TIME ZONE 'UTC')"                                    \
    " AND bucket_start < (($1::date + 1)::timestamp AT TIME ZONE 'UTC')"

/* Numbers the users of the day's events (autocommitted, before the day's snapshot). */
static const char number_day_sql[] =
    "SELECT count(*) FROM (SELECT array_agg(tenant_id) AS t, array_agg(k) AS k FROM"
    " (SELECT DISTINCT tenant_id, coalesce(user_id, anonymous_id) AS k FROM events"
    "  WHERE" DAY_RANGE ") AS s) AS a, eventops_user_numbers(a.t, a.k)";

/* A structure derived from the events, as the backfill sees it. */
typedef struct {
    const char *name;    /* derived_structures.name, also in messages */
    const char *table;   /* its backfill bookkeeping: the days done */
    const char *day_sql; /* the day's rows: tenant, type, time (µs), user number (or NULL) */
    const char *clear_sql;
    bool timelines;
    int (*write)(PGconn *conn, merge_t *m, bool with_old, char *err, size_t errlen);
} structure_t;

/* The user sets: the day's (tenant, type, quarter, user number) once each; a NULL number is an
 * event whose user has no number (stored by a processor older than the user sets). */
static const structure_t user_sets = {
    "user_sets",
    "user_sets_backfill",
    "SELECT e.tenant_id::text, e.event_type, (extract(epoch FROM date_bin('15 minutes',"
    " e.occurred_at, TIMESTAMPTZ '2000-01-01 00:00:00+00')) * 1000000)::bigint, u.user_no"
    " FROM events AS e LEFT JOIN user_ids AS u ON u.tenant_id = e.tenant_id"
    " AND u.user_key = coalesce(e.user_id, e.anonymous_id) WHERE" DAY_RANGE " GROUP BY 1, 2, 3, 4",
    "WITH d AS (DELETE FROM user_set_deltas WHERE" BUCKET_RANGE " RETURNING 1),"
    " s AS (DELETE FROM user_sets WHERE" BUCKET_RANGE " RETURNING 1)"
    " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM s)",
    false,
    write_rows,
};

/* The timelines: every event's (tenant, type, time, user number). */
static const structure_t timelines = {
    "timelines",
    "timelines_backfill",
    "SELECT e.tenant_id::text, e.event_type,"
    " (extract(epoch FROM e.occurred_at) * 1000000)::bigint, u.user_no"
    " FROM events AS e LEFT JOIN user_ids AS u ON u.tenant_id = e.tenant_id"
    " AND u.user_key = coalesce(e.user_id, e.anonymous_id) WHERE" DAY_RANGE,
    "WITH d AS (DELETE FROM timeline_deltas WHERE" BUCKET_RANGE " RETURNING 1),"
    " s AS (DELETE FROM timelines WHERE" BUCKET_RANGE " RETURNING 1)"
    " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM s)",
    true,
    write_timeline_rows,
};

static const structure_t *const structures[] = {&user_sets, &timelines};

/* Adds one row of a day's events (day_sql) to m. */
static int add_day_row(merge_t *m, const structure_t *s, const PGresult *res, int i, eo_buf_t *key)
{
    const char *tenant = PQgetvalue(res, i, 0), *type = PQgetvalue(res, i, 1);
    int64_t t = strtoll(PQgetvalue(res, i, 2), NULL, 10);
    uint32_t user = (uint32_t)strtoul(PQgetvalue(res, i, 3), NULL, 10);
    if (s->timelines) {
        int64_t h = floor_us(t, EO_TIMELINE_BUCKET_US);
        merged_t *row = merge_row(m, tenant, "hour", type, h, key);
        if (!row)
            return EO_ENOMEM;
        eo_timeline_vec_t *v = &row->tl;
        if (v->n == v->cap) {
            size_t cap = v->cap ? 2 * v->cap : 64;
            eo_timeline_entry_t *e = realloc(v->e, cap * sizeof *e);
            if (!e)
                return EO_ENOMEM;
            v->e = e;
            v->cap = cap;
        }
        v->e[v->n++] = (eo_timeline_entry_t){user, t};
        return 0;
    }
    for (int all = 0; all < 2; all++)
        for (size_t g = 0; g < sizeof grans / sizeof grans[0]; g++) {
            merged_t *row =
                merge_row(m, tenant, grans[g].name, all ? "" : type, floor_us(t, grans[g].us), key);
            if (!row)
                return EO_ENOMEM;
            eo_userset_add(row->set, user);
        }
    return 0;
}

/* The backfill of one day of s (see compactor.h). */
static int backfill_day(PGconn *conn, const structure_t *s, const char *day, int64_t part_events,
                        char *err, size_t errlen)
{
    const char *p[] = {day};
    PGresult *res = NULL;
    int r = eo_pg_query(conn, number_day_sql, 1, p, &res, err, errlen);
    PQclear(res);
    if (r < 0)
        return r;
    /* the compactor's lock for the session (a transaction-scoped one would be taken after the
     * repeatable-read snapshot, which a pass committing meanwhile would make stale) */
    if ((r = eo_pg_query(conn, "SELECT pg_advisory_lock(" LOCK_KEY ")", 0, NULL, &res, err,
                         errlen)) < 0)
        return r;
    PQclear(res);
    merge_t m = {.timelines = s->timelines, .part_events = part_events};
    eo_hmap_init(&m.index);
    eo_buf_t key, sql;
    eo_buf_init(&key, 1 << 20);
    eo_buf_init(&sql, 1 << 16);
    bool done_before = false;
    r = eo_pg_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ", err, errlen);
    eo_buf_putf(&sql, "SELECT 1 FROM %s WHERE day = $1::date", s->table);
    if (r == 0 && (r = eo_buf_error(&sql)) == 0 &&
        (r = eo_pg_query(conn, sql.data, 1, p, &res, err, errlen)) == 0) {
        done_before = PQntuples(res) > 0;
        PQclear(res);
    }
    if (r == 0 && !done_before &&
        (r = eo_pg_query(conn, s->day_sql, 1, p, &res, err, errlen)) == 0) {
        for (int i = 0; r == 0 && i < PQntuples(res); i++) {
            if (PQgetisnull(res, i, 3)) {
                snprintf(err, errlen,
                         "events of %s have users without a number: a processor older than "
                         "migration 0007 is still storing events; retried later",
                         day);
                r = EO_EUNAVAIL;
                break;
            }
            r = add_day_row(&m, s, res, i, &key);
        }
        PQclear(res);
        res = NULL;
    }
    if (r == 0 && !done_before &&
        (r = eo_pg_query(conn, s->clear_sql, 1, p, &res, err, errlen)) == 0)
        PQclear(res);
    if (r == 0 && !done_before)
        r = s->write(conn, &m, false, err, errlen);
    eo_buf_reset(&sql);
    eo_buf_putf(&sql, "INSERT INTO %s (day) VALUES ($1::date)", s->table);
    if (r == 0 && !done_before && (r = eo_buf_error(&sql)) == 0 &&
        (r = eo_pg_query(conn, sql.data, 1, p, &res, err, errlen)) == 0)
        PQclear(res);
    if (r == 0)
        r = eo_pg_exec(conn, "COMMIT", err, errlen);
    else if (r == EO_ENOMEM || r == EO_EDATA)
        snprintf(err, errlen, "cannot backfill the %s of %s: %s", s->name, day, eo_strerror(r));
    if (r < 0)
        rollback(conn, r);
    merge_done(&m);
    eo_buf_done(&key);
    eo_buf_done(&sql);
    char ignored[128];
    if (PQstatus(conn) == CONNECTION_OK &&
        eo_pg_query(conn, "SELECT pg_advisory_unlock(" LOCK_KEY ")", 0, NULL, &res, ignored,
                    sizeof ignored) == 0)
        PQclear(res);
    return r < 0 ? r : done_before ? 0 : 1;
}

int eo_user_sets_backfill_day(PGconn *conn, const char *day, char *err, size_t errlen)
{
    return backfill_day(conn, &user_sets, day, 0, err, errlen);
}

int eo_timelines_backfill_day(PGconn *conn, const char *day, int64_t part_events, char *err,
                              size_t errlen)
{
    return backfill_day(conn, &timelines, day, part_events, err, errlen);
}

/* One backfill step of s (see eo_derived_backfill_step). */
static int backfill_step(PGconn *conn, const structure_t *s, int64_t part_events, char *err,
                         size_t errlen)
{
    const char *name[] = {s->name};
    PGresult *res;
    int r = eo_pg_query(conn, "SELECT complete FROM derived_structures WHERE name = $1", 1, name,
                        &res, err, errlen);
    if (r < 0)
        return r;
    bool complete = PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (complete)
        return 0;
    /* the latest day (events partition) not backfilled yet */
    eo_buf_t sql;
    eo_buf_init(&sql, 1 << 16);
    eo_buf_putf(&sql,
                "SELECT to_char(d, 'YYYY-MM-DD') FROM (SELECT to_date(substr(c.relname, 8),"
                " 'YYYYMMDD') AS d FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_[0-9]{8}$')"
                " AS p WHERE NOT EXISTS (SELECT 1 FROM %s AS b WHERE b.day = p.d)"
                " ORDER BY d DESC LIMIT 1",
                s->table);
    r = eo_buf_error(&sql);
    if (r == 0)
        r = eo_pg_query(conn, sql.data, 0, NULL, &res, err, errlen);
    eo_buf_done(&sql);
    if (r < 0)
        return r;
    if (PQntuples(res) == 1) {
        char day[16];
        snprintf(day, sizeof day, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        r = backfill_day(conn, s, day, part_events, err, errlen);
        if (r >= 0)
            eo_log_info("derived structure backfilled", "structure", s->name, "day", day, NULL);
        return r < 0 ? r : 1;
    }
    PQclear(res);
    /* every partition is done: from now on the structure describes every stored event */
    if ((r = eo_pg_query(conn,
                         "UPDATE derived_structures SET complete = true, changed_at = now()"
                         " WHERE name = $1 AND NOT complete RETURNING 1",
                         1, name, &res, err, errlen)) < 0)
        return r;
    if (PQntuples(res) > 0)
        eo_log_info("derived structure complete: the query role answers from it", "structure",
                    s->name, NULL);
    PQclear(res);
    return 0;
}

int eo_derived_backfill_step(PGconn *conn, int64_t part_events, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof structures / sizeof structures[0]; i++) {
        int r = backfill_step(conn, structures[i], part_events, err, errlen);
        if (r != 0)
            return r;
    }
    return 0;
}

/* ---- `eventops admin backfill` ---- */

int eo_derived_backfill_run(const char *dsn, bool all_days, int64_t part_events, FILE *progress)
{
    PGconn *conn;
    char err[512];
    if (eo_pg_connect(dsn, &conn, err, sizeof err) < 0) {
        fprintf(stderr, "eventops admin: backfill: %s\n", err);
        return 1;
    }
    int r = 0;
    if (all_days) /* data loaded behind the processor's back: every day recomputed */
        r = eo_pg_exec(conn,
                       "BEGIN; DELETE FROM user_sets_backfill; DELETE FROM timelines_backfill;"
                       " UPDATE derived_structures SET complete = false, changed_at = now()"
                       " WHERE name IN ('user_sets', 'timelines'); COMMIT",
                       err, sizeof err);
    int days = 0;
    while (r == 0 && (r = eo_derived_backfill_step(conn, part_events, err, sizeof err)) == 1) {
        days++;
        r = 0;
        if (progress && days % 10 == 0)
            fprintf(progress, "backfill: %d days\n", days);
    }
    /* then the tracked properties still backfilling (ADR-24), as far as they can go now (a
     * first step may only record the transaction a path waits for: one more try after it) */
    for (int idle = 0; r == 0 && idle < 2;) {
        if ((r = eo_property_backfill_step(conn, err, sizeof err)) == 1) {
            days++;
            r = idle = 0;
            if (progress && days % 10 == 0)
                fprintf(progress, "backfill: %d days\n", days);
        } else if (r == 0) {
            idle++;
        }
    }
    PQfinish(conn);
    if (r < 0) {
        fprintf(stderr, "eventops admin: backfill: %s\n", err);
        return 1;
    }
    if (progress)
        fprintf(progress,
                "backfill: %d days recomputed; the user sets and timelines are complete, and "
                "every tracked property that could be backfilled now is\n",
                days);
    return 0;
}

/* ---- the thread ---- */

struct eo_compactor {
    char *dsn;
    int64_t rows;
    int64_t part_events; /* of the timelines */
    PGconn *conn;
    eo_ticker_t *ticker;
    eo_counter_t *merged, *merged_timelines, *failed, *backfilled;
    eo_counter_t *prop_merged, *prop_backfilled, *prop_failed; /* property rollups (ADR-24) */
    bool complete; /* every derived structure is complete: no backfill step needed */
};

/* Passes of one structure until a pass merges less than a whole block (at most
 * MAX_PASSES_PER_TICK). false when a pass failed. */
static bool passes(eo_compactor_t *c, bool of_timelines, eo_counter_t *merged, const char *what)
{
    char err[512];
    for (int i = 0; i < MAX_PASSES_PER_TICK; i++) {
        long n = of_timelines
                     ? eo_timeline_compactor_pass(c->conn, c->rows, c->part_events, err, sizeof err)
                     : eo_compactor_pass(c->conn, c->rows, err, sizeof err);
        if (n < 0) {
            eo_counter_add(c->failed, 1);
            eo_log_warn("compaction failed", "structure", what, "error", err, NULL);
            return false;
        }
        eo_counter_add(merged, (uint64_t)n);
        if (n < c->rows)
            break;
    }
    return true;
}

static void tick(void *ud)
{
    eo_compactor_t *c = ud;
    char err[512];
    if (!c->conn || PQstatus(c->conn) != CONNECTION_OK) {
        PQfinish(c->conn);
        c->conn = NULL;
        if (eo_pg_connect(c->dsn, &c->conn, err, sizeof err) < 0) {
            eo_counter_add(c->failed, 1);
            return; /* the next tick tries again */
        }
    }
    if (!c->complete) { /* one day per tick until every day is recomputed */
        int b = eo_derived_backfill_step(c->conn, c->part_events, err, sizeof err);
        if (b < 0) {
            eo_counter_add(c->failed, 1);
            eo_log_warn("backfill failed", "error", err, NULL);
        } else if (b == 0) {
            c->complete = true;
        } else {
            eo_counter_add(c->backfilled, 1);
        }
    }
    /* property rollups: backfill days (at most MAX_BACKFILL_DAYS_PER_TICK), then merges */
    for (int i = 0; i < MAX_BACKFILL_DAYS_PER_TICK; i++) {
        int b = eo_property_backfill_step(c->conn, err, sizeof err);
        if (b < 0) {
            eo_counter_add(c->prop_failed, 1);
            eo_log_warn("property rollup backfill failed", "error", err, NULL);
        }
        if (b <= 0)
            break;
        eo_counter_add(c->prop_backfilled, 1);
    }
    for (int i = 0; i < MAX_PASSES_PER_TICK; i++) {
        long n = eo_property_compact_pass(c->conn, c->rows, err, sizeof err);
        if (n < 0) {
            eo_counter_add(c->prop_failed, 1);
            eo_log_warn("property rollup compaction failed", "error", err, NULL);
            break;
        }
        eo_counter_add(c->prop_merged, (uint64_t)n);
        if (n < c->rows)
            break;
    }
    if (passes(c, false, c->merged, "user_sets"))
        passes(c, true, c->merged_timelines, "timelines");
}

int eo_compactor_start(const char *dsn, int64_t interval_ms, int64_t rows, int64_t part_events,
                       eo_metrics_t *metrics, eo_compactor_t **out, char *err, size_t errlen)
{
    eo_compactor_t *c = calloc(1, sizeof *c);
    if (!c || !(c->dsn = strdup(dsn))) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return EO_ENOMEM;
    }
    c->rows = rows;
    c->part_events = part_events;
    if (metrics) {
        c->merged = eo_metrics_counter(metrics, "eventops_user_set_deltas_merged_total",
                                       "User-set deltas merged into the compacted sets.",
                                       "role=\"processor\"");
        c->merged_timelines = eo_metrics_counter(
            metrics, "eventops_timeline_deltas_merged_total",
            "Timeline deltas merged into the hours' timelines.", "role=\"processor\"");
        c->failed = eo_metrics_counter(metrics, "eventops_derived_compactions_failed_total",
                                       "Compaction or backfill steps of the user sets or the "
                                       "timelines that failed (retried at the next interval).",
                                       "role=\"processor\"");
        c->prop_merged = eo_metrics_counter(metrics, "eventops_property_deltas_merged_total",
                                            "Property rollup deltas merged into property_rollups.",
                                            "role=\"processor\"");
        c->prop_failed =
            eo_metrics_counter(metrics, "eventops_property_rollup_compactions_failed_total",
                               "Property rollup compaction or backfill steps that failed "
                               "(retried at the next interval).",
                               "role=\"processor\"");
        c->prop_backfilled =
            eo_metrics_counter(metrics, "eventops_property_backfill_steps_total",
                               "Days of tracked properties recomputed from the events, and "
                               "tracked properties completed, by the backfill (ADR-24).",
                               "role=\"processor\"");
        c->backfilled = eo_metrics_counter(metrics, "eventops_derived_backfilled_partitions_total",
                                           "UTC days of a derived structure (user sets, timelines) "
                                           "recomputed from the events (the backfill of a database "
                                           "that had events before the structure's migration).",
                                           "role=\"processor\"");
    }
    int r = eo_ticker_start("eo-compactor", interval_ms, tick, c, &c->ticker);
    if (r < 0) {
        free(c->dsn);
        free(c);
        snprintf(err, errlen, "cannot start the user-set compactor");
        return r;
    }
    *out = c;
    return 0;
}

void eo_compactor_stop(eo_compactor_t *c)
{
    if (!c)
        return;
    eo_ticker_stop(c->ticker);
    PQfinish(c->conn);
    free(c->dsn);
    free(c);
}
