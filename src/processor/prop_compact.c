/* Property rollups in the compactor thread (ADR-24, see compactor.h): the merge of
 * property_rollup_deltas into property_rollups, and the backfill of a newly tracked path. Both
 * run under the compaction's advisory lock, on the compactor's connection. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/pg.h"
#include "processor/compactor.h"

/* The oldest deltas, deleted and added to their rollup rows in one statement; deltas of a path
 * no longer tracked (written by a transaction that began before the untracking) are dropped. */
static const char merge_sql[] =
    "WITH d AS (DELETE FROM property_rollup_deltas WHERE id IN"
    " (SELECT id FROM property_rollup_deltas ORDER BY id LIMIT $1::bigint)"
    " RETURNING tenant_id, path, event_type, bucket_start, overflow, value, count),"
    " s AS (SELECT d.tenant_id, d.path, d.event_type, d.bucket_start, d.overflow, d.value,"
    "  sum(d.count)::bigint AS n FROM d WHERE EXISTS (SELECT 1 FROM tracked_properties AS tp"
    "  WHERE tp.tenant_id = d.tenant_id AND tp.path = d.path) GROUP BY 1, 2, 3, 4, 5, 6),"
    " ins AS (INSERT INTO property_rollups AS r (tenant_id, path, event_type, bucket_start,"
    "  overflow, value, count) SELECT * FROM s ORDER BY 1, 2, 3, 4, 5, 6"
    "  ON CONFLICT (tenant_id, path, event_type, bucket_start, overflow, value)"
    "  DO UPDATE SET count = r.count + EXCLUDED.count RETURNING 1)"
    " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM ins)";

static int rollback(PGconn *conn, int r)
{
    return eo_compactor_rollback(conn, r);
}

long eo_property_compact_pass(PGconn *conn, int64_t rows, char *err, size_t errlen)
{
    int r = eo_compactor_begin(conn, err, errlen);
    if (r <= 0)
        return r;
    PGresult *res = NULL;
    char limit[24];
    snprintf(limit, sizeof limit, "%lld", (long long)rows);
    const char *p[] = {limit};
    if ((r = eo_pg_query(conn, merge_sql, 1, p, &res, err, errlen)) < 0)
        return rollback(conn, r);
    long taken = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if ((r = eo_pg_exec(conn, "COMMIT", err, errlen)) < 0)
        return rollback(conn, r);
    return taken;
}

/* ---- the backfill of a tracked path ---- */

#define DAY_RANGE                                                                                  \
    " tenant_id = $1::uuid AND occurred_at >= ($3::date::timestamp AT TIME ZONE 'UTC')"            \
    " AND occurred_at < (($3::date + 1)::timestamp AT TIME ZONE 'UTC')"
#define PATH_TEXT " eventops_property_text(properties #> string_to_array($2, '.'))"

/* The day's values enter the dictionary while it has room, most frequent first (autocommitted,
 * before the day's snapshot: so every value of an event the snapshot sees is either in the
 * dictionary the snapshot sees or met when the dictionary was full). */
static const char fill_sql[] =
    "SELECT count(*) FROM (SELECT array_agg($1::uuid ORDER BY n DESC, v COLLATE \"C\") AS t,"
    " array_agg($2::text ORDER BY n DESC, v COLLATE \"C\") AS p,"
    " array_agg(v ORDER BY n DESC, v COLLATE \"C\") AS v FROM (SELECT v, n FROM"
    " (SELECT" PATH_TEXT " AS v, count(*) AS n FROM events WHERE" DAY_RANGE " GROUP BY 1) AS x"
    " WHERE v IS NOT NULL ORDER BY n DESC, v COLLATE \"C\" LIMIT $4::bigint) AS y) AS a,"
    " eventops_property_values(a.t, a.p, a.v)";

/* The day's counts of the path replace what the snapshot sees of its deltas and rollups. */
static const char clear_sql[] =
    "WITH d AS (DELETE FROM property_rollup_deltas WHERE tenant_id = $1::uuid AND path = $2"
    " AND bucket_start >= ($3::date::timestamp AT TIME ZONE 'UTC')"
    " AND bucket_start < (($3::date + 1)::timestamp AT TIME ZONE 'UTC') RETURNING 1),"
    " r AS (DELETE FROM property_rollups WHERE tenant_id = $1::uuid AND path = $2"
    " AND bucket_start >= ($3::date::timestamp AT TIME ZONE 'UTC')"
    " AND bucket_start < (($3::date + 1)::timestamp AT TIME ZONE 'UTC') RETURNING 1)"
    " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM r)";

static const char recount_sql[] =
    "INSERT INTO property_rollups (tenant_id, path, event_type, bucket_start, overflow, value,"
    " count)"
    " SELECT $1::uuid, $2, ty.t, x.h, pv.value IS NULL, coalesce(pv.value, ''), sum(x.n)"
    " FROM (SELECT event_type, date_bin('1 hour', occurred_at, TIMESTAMPTZ '2000-01-01 "
    "00:00:00+00')"
    "  AS h," PATH_TEXT " AS v, count(*) AS n FROM events WHERE" DAY_RANGE " GROUP BY 1, 2, 3) AS x"
    " LEFT JOIN property_values AS pv ON pv.tenant_id = $1::uuid AND pv.path = $2"
    "  AND pv.value = x.v"
    " CROSS JOIN LATERAL (VALUES (x.event_type), ('')) AS ty(t)"
    " WHERE x.v IS NOT NULL GROUP BY 3, 4, 5, 6";

/* The latest events partition not yet backfilled for the path. */
static const char next_day_sql[] =
    "SELECT to_char(d, 'YYYY-MM-DD') FROM (SELECT to_date(substr(c.relname, 8), 'YYYYMMDD') AS d"
    " FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
    " WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_[0-9]{8}$') AS p"
    " WHERE NOT EXISTS (SELECT 1 FROM property_backfill AS b WHERE b.tenant_id = $1::uuid"
    " AND b.path = $2 AND b.day = p.d) ORDER BY d DESC LIMIT 1";

static int day_step(PGconn *conn, const char *const p[4], char *err, size_t errlen)
{
    PGresult *res = NULL;
    int r = eo_pg_query(conn, fill_sql, 4, p, &res, err, errlen);
    PQclear(res);
    if (r < 0)
        return r;
    /* the compaction lock for the session, before the snapshot (a transaction-scoped one would be
     * taken after it, and a pass committing meanwhile would make the snapshot stale) */
    if ((r = eo_pg_query(conn, "SELECT pg_advisory_lock(" EO_COMPACTOR_LOCK_KEY ")", 0, NULL, &res,
                         err, errlen)) < 0)
        return r;
    PQclear(res);
    bool go = false;
    r = eo_pg_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ", err, errlen);
    if (r == 0 && (r = eo_pg_query(conn,
                                   "SELECT 1 FROM tracked_properties WHERE tenant_id = $1::uuid"
                                   " AND path = $2 AND state = 'backfilling' AND NOT EXISTS"
                                   " (SELECT 1 FROM property_backfill WHERE tenant_id = $1::uuid"
                                   " AND path = $2 AND day = $3::date)",
                                   3, p, &res, err, errlen)) == 0) {
        go = PQntuples(res) == 1;
        PQclear(res);
    }
    if (r == 0 && go && (r = eo_pg_query(conn, clear_sql, 3, p, &res, err, errlen)) == 0)
        PQclear(res);
    if (r == 0 && go && (r = eo_pg_query(conn, recount_sql, 3, p, &res, err, errlen)) == 0)
        PQclear(res);
    if (r == 0 && go &&
        (r = eo_pg_query(conn,
                         "INSERT INTO property_backfill (tenant_id, path, day)"
                         " VALUES ($1::uuid, $2, $3::date)",
                         3, p, &res, err, errlen)) == 0)
        PQclear(res);
    r = r ? r : eo_pg_exec(conn, "COMMIT", err, errlen);
    if (r < 0)
        rollback(conn, r);
    char ignored[128];
    if (PQstatus(conn) == CONNECTION_OK &&
        eo_pg_query(conn, "SELECT pg_advisory_unlock(" EO_COMPACTOR_LOCK_KEY ")", 0, NULL, &res,
                    ignored, sizeof ignored) == 0)
        PQclear(res);
    return r;
}

int eo_property_backfill_step(PGconn *conn, char *err, size_t errlen)
{
    PGresult *res;
    int r = eo_pg_query(conn,
                        "SELECT tenant_id::text, path, value_cap::text, tracked_xid,"
                        " txid_snapshot_xmin(txid_current_snapshot()) FROM tracked_properties"
                        " WHERE state = 'backfilling' ORDER BY id",
                        0, NULL, &res, err, errlen);
    if (r < 0)
        return r;
    int did = 0;
    for (int i = 0; r == 0 && !did && i < PQntuples(res); i++) {
        char tenant[40], path[300], cap[24];
        snprintf(tenant, sizeof tenant, "%s", PQgetvalue(res, i, 0));
        snprintf(path, sizeof path, "%s", PQgetvalue(res, i, 1));
        snprintf(cap, sizeof cap, "%s", PQgetvalue(res, i, 2));
        const char *p[4] = {tenant, path, NULL, cap};
        PGresult *q = NULL;
        if (PQgetisnull(res, i, 3)) {
            /* a transaction that begins after the tracking committed: the transactions older than
             * it are those that may have stored events without this path's deltas */
            r = eo_pg_query(conn,
                            "UPDATE tracked_properties SET tracked_xid = txid_current()"
                            " WHERE tenant_id = $1::uuid AND path = $2 AND tracked_xid IS NULL",
                            2, p, &q, err, errlen);
            PQclear(q);
            continue;
        }
        long long xid = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        long long xmin = strtoll(PQgetvalue(res, i, 4), NULL, 10);
        if (xmin <= xid)
            continue; /* a transaction older than the tracking is still running */
        if ((r = eo_pg_query(conn, next_day_sql, 2, p, &q, err, errlen)) < 0)
            break;
        if (PQntuples(q) == 1) {
            char day[16];
            snprintf(day, sizeof day, "%s", PQgetvalue(q, 0, 0));
            PQclear(q);
            p[2] = day;
            if ((r = day_step(conn, p, err, errlen)) == 0)
                did = 1;
            continue;
        }
        PQclear(q);
        /* every day is done: the query role may answer from the rollups of this path */
        r = eo_pg_query(conn,
                        "UPDATE tracked_properties SET state = 'complete'"
                        " WHERE tenant_id = $1::uuid AND path = $2 AND state = 'backfilling'"
                        " RETURNING 1",
                        2, p, &q, err, errlen);
        if (r == 0 && PQntuples(q) > 0) {
            eo_log_info("tracked property complete: breakdowns are answered from its rollups",
                        "tenant_id", tenant, "path", path, NULL);
            did = 1;
        }
        PQclear(q);
    }
    PQclear(res);
    return r < 0 ? r : did;
}
