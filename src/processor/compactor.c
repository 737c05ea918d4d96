/* The user-set compactor (see compactor.h). */
#include "processor/compactor.h"

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
#include "domain/userset.h"

#define LOCK_KEY "7465417420001" /* pg_advisory_xact_lock key of the compaction */
#define MAX_PASSES_PER_TICK 50

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
    eo_userset_t *set;
} merged_t;

typedef struct {
    eo_hmap_t index; /* key -> position + 1 in rows */
    merged_t *rows;
    size_t n, cap;
} merge_t;

static void merge_done(merge_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->rows[i].type);
        eo_userset_free(m->rows[i].set);
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
    row->set = eo_userset_new();
    void *old;
    if (!row->type || !row->set ||
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

/* An array literal's element separator. */
static void next(eo_buf_t *b)
{
    eo_buf_putc(b, b->len ? ',' : '{');
}

static void put_quoted(eo_buf_t *b, const char *s)
{
    next(b);
    eo_buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            eo_buf_putc(b, '\\');
        eo_buf_putc(b, *s);
    }
    eo_buf_putc(b, '"');
}

static void put_time(eo_buf_t *b, int64_t us)
{
    char t[EO_RFC3339_MAX];
    eo_rfc3339_format(us, t);
    next(b);
    eo_buf_puts(b, t);
}

static void put_bytea(eo_buf_t *b, const char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    next(b);
    eo_buf_puts(b, "\"\\\\x");
    for (size_t i = 0; i < n; i++) {
        char two[2] = {digits[(unsigned char)p[i] >> 4], digits[(unsigned char)p[i] & 15]};
        eo_buf_put(b, two, 2);
    }
    eo_buf_putc(b, '"');
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

static int rollback(PGconn *conn, int r)
{
    char ignored[128];
    if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE)
        eo_ignore(eo_pg_exec(conn, "ROLLBACK", ignored, sizeof ignored));
    return r;
}

long eo_compactor_pass(PGconn *conn, int64_t rows, char *err, size_t errlen)
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
    char limit[24];
    snprintf(limit, sizeof limit, "%lld", (long long)rows);
    const char *lp[] = {limit};
    if ((r = eo_pg_query(conn, take_sql, 1, lp, &res, err, errlen)) < 0)
        return rollback(conn, r);
    int taken = PQntuples(res);
    if (taken == 0) {
        PQclear(res);
        return rollback(conn, 0);
    }
    merge_t m = {0};
    eo_hmap_init(&m.index);
    eo_buf_t key, a[5];
    eo_buf_init(&key, 1 << 20);
    for (int i = 0; i < 5; i++)
        eo_buf_init(&a[i], (size_t)1 << 30);
    /* the deltas, each into its quarter, hour and day */
    for (int i = 0; r == 0 && i < taken; i++) {
        const char *tenant = PQgetvalue(res, i, 0), *type = PQgetvalue(res, i, 1);
        int64_t q = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        eo_userset_t *delta = eo_userset_new();
        r = delta ? add_cell(delta, res, i, 3) : EO_ENOMEM;
        for (size_t g = 0; r == 0 && g < sizeof grans / sizeof grans[0]; g++) {
            merged_t *row =
                merge_row(&m, tenant, grans[g].name, type, floor_us(q, grans[g].us), &key);
            if (!row)
                r = EO_ENOMEM;
            else
                eo_userset_add_set(row->set, delta);
        }
        eo_userset_free(delta);
    }
    PQclear(res);
    res = NULL;
    /* the compacted rows they go into, as they are */
    for (size_t i = 0; r == 0 && i < m.n; i++) {
        next(&a[0]);
        eo_buf_puts(&a[0], m.rows[i].tenant);
        put_quoted(&a[1], m.rows[i].gran);
        put_quoted(&a[2], m.rows[i].type);
        put_time(&a[3], m.rows[i].bucket);
    }
    const char *p[5];
    for (int i = 0; i < 5; i++) {
        if (i < 4)
            eo_buf_puts(&a[i], "}");
        p[i] = a[i].data;
    }
    for (int i = 0; r == 0 && i < 4; i++)
        r = eo_buf_error(&a[i]);
    if (r == 0 && (r = eo_pg_query(conn, old_sql, 4, p, &res, err, errlen)) == 0) {
        for (int i = 0; r == 0 && i < PQntuples(res); i++) {
            long long at = strtoll(PQgetvalue(res, i, 0), NULL, 10);
            if (at >= 1 && (size_t)at <= m.n)
                r = add_cell(m.rows[at - 1].set, res, i, 1);
        }
        PQclear(res);
        res = NULL;
    }
    /* written back */
    eo_buf_t bytes;
    eo_buf_init(&bytes, (size_t)1 << 30);
    for (size_t i = 0; r == 0 && i < m.n; i++) {
        eo_buf_reset(&bytes);
        r = eo_userset_serialize(m.rows[i].set, &bytes);
        if (r == 0)
            put_bytea(&a[4], bytes.data, bytes.len);
    }
    eo_buf_done(&bytes);
    eo_buf_puts(&a[4], "}");
    r = r ? r : eo_buf_error(&a[4]);
    p[4] = a[4].data;
    if (r == 0 && (r = eo_pg_query(conn, put_sql, 5, p, &res, err, errlen)) == 0)
        PQclear(res);
    if (r == 0)
        r = eo_pg_exec(conn, "COMMIT", err, errlen);
    else if (r == EO_EDATA || r == EO_ENOMEM)
        snprintf(err, errlen, "cannot merge user-set deltas: %s", eo_strerror(r));
    merge_done(&m);
    eo_buf_done(&key);
    for (int i = 0; i < 5; i++)
        eo_buf_done(&a[i]);
    return r < 0 ? rollback(conn, r) : taken;
}

/* ---- the thread ---- */

struct eo_compactor {
    char *dsn;
    int64_t rows;
    PGconn *conn;
    eo_ticker_t *ticker;
    eo_counter_t *merged, *failed;
};

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
    for (int i = 0; i < MAX_PASSES_PER_TICK; i++) {
        long n = eo_compactor_pass(c->conn, c->rows, err, sizeof err);
        if (n < 0) {
            eo_counter_add(c->failed, 1);
            eo_log_warn("user-set compaction failed", "error", err, NULL);
            return;
        }
        eo_counter_add(c->merged, (uint64_t)n);
        if (n < c->rows)
            return;
    }
}

int eo_compactor_start(const char *dsn, int64_t interval_ms, int64_t rows, eo_metrics_t *metrics,
                       eo_compactor_t **out, char *err, size_t errlen)
{
    eo_compactor_t *c = calloc(1, sizeof *c);
    if (!c || !(c->dsn = strdup(dsn))) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return EO_ENOMEM;
    }
    c->rows = rows;
    if (metrics) {
        c->merged = eo_metrics_counter(metrics, "eventops_user_set_deltas_merged_total",
                                       "User-set deltas merged into the compacted sets.",
                                       "role=\"processor\"");
        c->failed = eo_metrics_counter(metrics, "eventops_user_set_compactions_failed_total",
                                       "User-set compaction passes that failed (retried at the "
                                       "next interval).",
                                       "role=\"processor\"");
    }
    int r = eo_ticker_start(interval_ms, tick, c, &c->ticker);
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
