/* PostgreSQL event store (see pg_store.h). A store is used by one thread at a time: the storage
 * worker that owns it, or the processor loop while the workers wait. */
#include "processor/pg_store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/buf.h"
#include "core/pg.h"
#include "domain/json_out.h"
#include "domain/rfc3339.h"

#define STORE_COPY_MAX ((size_t)1 << 30)

/* A set of 36-character tenant ids (open addressing, grows at half load). */
typedef struct {
    char (*ids)[37];
    size_t cap, count;
} tenant_set_t;

typedef struct {
    eo_store_t base; /* first: the port's functions cast back */
    char *dsn;
    PGconn *conn;
    bool ok;
    tenant_set_t tenants;
    int64_t *days; /* days (since epoch) whose partition exists, sorted */
    size_t ndays, days_cap;
    eo_buf_t copy;
    eo_buf_t scratch;
} pg_store_t;

static const char setup_sql[] =
    "SET TimeZone = 'UTC';"
    "SET client_min_messages = warning;"
    "CREATE TEMP TABLE IF NOT EXISTS eo_stage ("
    " tenant_id uuid, message_id text, event_type text, user_id text, anonymous_id text,"
    " occurred_at timestamptz, received_at timestamptz, sent_at timestamptz,"
    " properties jsonb, context jsonb, seq integer) ON COMMIT DELETE ROWS";

static const char copy_sql[] =
    "COPY eo_stage (tenant_id, message_id, event_type, user_id, anonymous_id, occurred_at,"
    " received_at, sent_at, properties, context, seq) FROM STDIN";

/* Rows already stored (same tenant and messageId) are skipped by the event_ids insert; a
 * messageId repeated inside the batch keeps its first occurrence; rollups add only the rows
 * the events insert returned (counted per minute once, quarter hours, hours and days summed
 * from those, each also for all event types together under event_type ''), in key order so that
 * concurrent transactions cannot deadlock. The session's TimeZone is UTC. */
static const char store_sql[] =
    "WITH staged AS ("
    "  SELECT DISTINCT ON (tenant_id, message_id) * FROM eo_stage"
    "  ORDER BY tenant_id, message_id, seq),"
    " new_ids AS ("
    "  INSERT INTO event_ids (tenant_id, message_id, occurred_at)"
    "  SELECT tenant_id, message_id, occurred_at FROM staged"
    "  ON CONFLICT DO NOTHING RETURNING tenant_id, message_id),"
    " new_events AS ("
    "  INSERT INTO events (tenant_id, message_id, event_type, user_id, anonymous_id,"
    "   occurred_at, received_at, sent_at, properties, context)"
    "  SELECT s.tenant_id, s.message_id, s.event_type, s.user_id, s.anonymous_id,"
    "   s.occurred_at, s.received_at, s.sent_at, s.properties, s.context"
    "  FROM staged s JOIN new_ids USING (tenant_id, message_id)"
    "  RETURNING tenant_id, event_type, occurred_at),"
    " per_minute AS ("
    "  SELECT tenant_id, event_type, date_trunc('minute', occurred_at) AS minute, count(*) AS n"
    "  FROM new_events GROUP BY 1, 2, 3),"
    " typed AS ("
    "  SELECT tenant_id, 'minute' AS granularity, event_type, minute AS bucket_start, n"
    "  FROM per_minute"
    "  UNION ALL"
    "  SELECT tenant_id, 'quarter', event_type,"
    "   date_bin('15 minutes', minute, TIMESTAMPTZ '2000-01-01 00:00:00+00'), sum(n)::bigint"
    "  FROM per_minute GROUP BY tenant_id, event_type,"
    "   date_bin('15 minutes', minute, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
    "  UNION ALL"
    "  SELECT tenant_id, 'hour', event_type, date_trunc('hour', minute), sum(n)::bigint"
    "  FROM per_minute GROUP BY tenant_id, event_type, date_trunc('hour', minute)"
    "  UNION ALL"
    "  SELECT tenant_id, 'day', event_type, date_trunc('day', minute), sum(n)::bigint"
    "  FROM per_minute GROUP BY tenant_id, event_type, date_trunc('day', minute)),"
    " counted AS ("
    "  SELECT * FROM typed"
    "  UNION ALL"
    "  SELECT tenant_id, granularity, '', bucket_start, sum(n)::bigint"
    "  FROM typed GROUP BY tenant_id, granularity, bucket_start),"
    " rolled AS ("
    "  INSERT INTO rollups AS r (tenant_id, granularity, event_type, bucket_start, count)"
    "  SELECT tenant_id, granularity, event_type, bucket_start, n FROM counted"
    "  ORDER BY tenant_id, granularity, event_type, bucket_start"
    "  ON CONFLICT (tenant_id, granularity, event_type, bucket_start)"
    "  DO UPDATE SET count = r.count + EXCLUDED.count RETURNING 1)"
    "SELECT (SELECT count(*) FROM new_ids), (SELECT count(*) FROM rolled)";

static size_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < 36; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211ULL;
    return (size_t)h;
}

static bool tenant_known(const tenant_set_t *s, const char *id)
{
    if (!s->cap)
        return false;
    for (size_t i = hash_id(id) & (s->cap - 1); s->ids[i][0]; i = (i + 1) & (s->cap - 1))
        if (!memcmp(s->ids[i], id, 36))
            return true;
    return false;
}

static int tenant_add(tenant_set_t *s, const char *id)
{
    if ((s->count + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char(*ids)[37] = calloc(cap, 37);
        if (!ids)
            return EO_ENOMEM;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->ids[i][0])
                continue;
            size_t j = hash_id(s->ids[i]) & (cap - 1);
            while (ids[j][0])
                j = (j + 1) & (cap - 1);
            memcpy(ids[j], s->ids[i], 37);
        }
        free(s->ids);
        s->ids = ids;
        s->cap = cap;
    }
    size_t j = hash_id(id) & (s->cap - 1);
    while (s->ids[j][0]) {
        if (!memcmp(s->ids[j], id, 36))
            return 0;
        j = (j + 1) & (s->cap - 1);
    }
    memcpy(s->ids[j], id, 36);
    s->ids[j][36] = '\0';
    s->count++;
    return 0;
}

static const eo_store_ops_t pg_ops;

int eo_pg_store_new(const char *dsn, eo_store_t **out)
{
    pg_store_t *st = calloc(1, sizeof *st);
    if (!st || !(st->dsn = strdup(dsn))) {
        free(st);
        return EO_ENOMEM;
    }
    st->base.ops = &pg_ops;
    eo_buf_init(&st->copy, STORE_COPY_MAX);
    eo_buf_init(&st->scratch, STORE_COPY_MAX);
    *out = &st->base;
    return 0;
}

static void pg_free(eo_store_t *base)
{
    pg_store_t *st = (pg_store_t *)base;
    PQfinish(st->conn);
    free(st->tenants.ids);
    free(st->days);
    eo_buf_done(&st->copy);
    eo_buf_done(&st->scratch);
    free(st->dsn);
    free(st);
}

static bool pg_ok(const eo_store_t *base)
{
    return ((const pg_store_t *)base)->ok;
}

/* Connects (again) when needed. */
static int ensure_conn(pg_store_t *st, char *err, size_t errlen)
{
    if (st->conn && PQstatus(st->conn) == CONNECTION_OK)
        return 0;
    PQfinish(st->conn);
    st->conn = NULL;
    int r = eo_pg_connect(st->dsn, &st->conn, err, errlen);
    if (r < 0)
        return st->ok = false, r;
    if ((r = eo_pg_exec(st->conn, setup_sql, err, errlen)) < 0) {
        PQfinish(st->conn);
        st->conn = NULL;
        return st->ok = false, r;
    }
    return 0;
}

static int finish_call(pg_store_t *st, int r)
{
    st->ok = r == 0 || r == EO_EDATA;
    if (r < 0 && st->conn && PQstatus(st->conn) == CONNECTION_OK &&
        PQtransactionStatus(st->conn) != PQTRANS_IDLE) {
        char ignored[128];
        eo_ignore(eo_pg_exec(st->conn, "ROLLBACK", ignored, sizeof ignored));
    }
    return r;
}

static bool day_known(const pg_store_t *st, int64_t day)
{
    size_t lo = 0, hi = st->ndays;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (st->days[mid] == day)
            return true;
        if (st->days[mid] < day)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static int day_add(pg_store_t *st, int64_t day)
{
    if (day_known(st, day))
        return 0;
    if (EO_ARRAY_RESERVE(st->days, st->days_cap, st->ndays + 1, 64) < 0)
        return EO_ENOMEM;
    size_t i = st->ndays;
    while (i > 0 && st->days[i - 1] > day) {
        st->days[i] = st->days[i - 1];
        i--;
    }
    st->days[i] = day;
    st->ndays++;
    return 0;
}

static int64_t day_of(int64_t us)
{
    int64_t d = us / 86400000000LL;
    return (us < 0 && us % 86400000000LL) ? d - 1 : d;
}

static int ensure_day(pg_store_t *st, int64_t day, char *err, size_t errlen)
{
    if (day_known(st, day))
        return 0;
    int64_t y;
    unsigned m, d;
    eo_civil_from_days(day, &y, &m, &d);
    char date[16];
    snprintf(date, sizeof date, "%04lld-%02u-%02u", (long long)y, m, d);
    const char *params[] = {date};
    PGresult *res;
    int r = eo_pg_query(st->conn, "SELECT eventops_ensure_partition($1::date)", 1, params, &res,
                        err, errlen);
    PQclear(res);
    return r < 0 ? r : day_add(st, day);
}

static int pg_ping(eo_store_t *base, char *err, size_t errlen)
{
    pg_store_t *st = (pg_store_t *)base;
    int r = ensure_conn(st, err, errlen);
    if (r == 0)
        r = eo_pg_exec(st->conn, "SELECT 1", err, errlen);
    return finish_call(st, r);
}

static int pg_ensure_ahead(eo_store_t *base, int64_t now_us, int64_t ahead_days, char *err,
                           size_t errlen)
{
    pg_store_t *st = (pg_store_t *)base;
    int r = ensure_conn(st, err, errlen);
    int64_t today = day_of(now_us);
    for (int64_t day = today - 1; r == 0 && day <= today + ahead_days; day++)
        r = ensure_day(st, day, err, errlen);
    return finish_call(st, r);
}

static int pg_check_tenants(eo_store_t *base, eo_record_t *const *recs, size_t n, bool *known,
                            char *err, size_t errlen)
{
    pg_store_t *st = (pg_store_t *)base;
    eo_buf_t missing;
    eo_buf_init(&missing, (size_t)1 << 26);
    tenant_set_t asked = {NULL, 0, 0}; /* each unknown tenant goes into the query once */
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        known[i] = tenant_known(&st->tenants, recs[i]->tenant_id);
        if (known[i] || tenant_known(&asked, recs[i]->tenant_id))
            continue;
        r = tenant_add(&asked, recs[i]->tenant_id);
        eo_buf_putf(&missing, "%s%s", missing.len ? "," : "{", recs[i]->tenant_id);
        r = r ? r : eo_buf_error(&missing);
    }
    free(asked.ids);
    if (r == 0 && missing.len > 0) {
        eo_buf_putc(&missing, '}');
        if ((r = eo_buf_error(&missing)) == 0)
            r = ensure_conn(st, err, errlen);
        PGresult *res = NULL;
        const char *params[] = {missing.data};
        if (r == 0)
            r = eo_pg_query(st->conn,
                            "SELECT tenant_id::text FROM tenants WHERE tenant_id = ANY($1::uuid[])",
                            1, params, &res, err, errlen);
        for (int row = 0; r == 0 && row < PQntuples(res); row++)
            r = tenant_add(&st->tenants, PQgetvalue(res, row, 0));
        PQclear(res);
        for (size_t i = 0; i < n && r == 0; i++)
            known[i] = tenant_known(&st->tenants, recs[i]->tenant_id);
        r = finish_call(st, r);
    }
    eo_buf_done(&missing);
    return r;
}

static void copy_str(eo_buf_t *b, eo_str_t s)
{
    if (s.s)
        eo_buf_put_copy_text(b, s.s, s.len);
    else
        eo_buf_puts(b, "\\N");
}

static void copy_time(eo_buf_t *b, int64_t us)
{
    if (us == EO_NO_TIME) {
        eo_buf_puts(b, "\\N");
        return;
    }
    char t[EO_RFC3339_MAX];
    eo_buf_put(b, t, eo_rfc3339_format(us, t));
}

/* JSON text of obj (or text, when set), escaped for COPY; scratch holds the unescaped text.
 * Returns 0, or the error of the JSON text (an append to b is checked with eo_buf_error). */
static int copy_json(eo_buf_t *b, eo_buf_t *scratch, json_t *obj, eo_str_t text)
{
    if (text.s) { /* the decoder kept the normal-form text */
        eo_buf_put_copy_text(b, text.s, text.len);
        return 0;
    }
    if (!obj) {
        eo_buf_puts(b, "{}");
        return 0;
    }
    eo_buf_reset(scratch);
    int r = eo_json_append(scratch, obj);
    if (r == 0)
        eo_buf_put_copy_text(b, scratch->data, scratch->len);
    return r;
}

/* Appends one COPY line. Returns 0 or the first error. */
static int append_row(eo_buf_t *b, eo_buf_t *scratch, const eo_record_t *rec, size_t seq)
{
    const eo_event_t *ev = &rec->ev;
    eo_buf_put(b, rec->tenant_id, 36);
    eo_buf_putc(b, '\t');
    copy_str(b, ev->message_id);
    eo_buf_putc(b, '\t');
    copy_str(b, ev->event_type);
    eo_buf_putc(b, '\t');
    copy_str(b, ev->user_id);
    eo_buf_putc(b, '\t');
    copy_str(b, ev->anonymous_id);
    eo_buf_putc(b, '\t');
    copy_time(b, ev->occurred_at_us);
    eo_buf_putc(b, '\t');
    copy_time(b, rec->received_at_us);
    eo_buf_putc(b, '\t');
    copy_time(b, ev->sent_at_us);
    eo_buf_putc(b, '\t');
    int r = copy_json(b, scratch, ev->properties, ev->properties_text);
    eo_buf_putc(b, '\t');
    r = r ? r : copy_json(b, scratch, ev->context, ev->context_text);
    eo_buf_putf(b, "\t%zu\n", seq);
    return r ? r : eo_buf_error(b);
}

static int pg_write(eo_store_t *base, eo_record_t *const *recs, size_t n, size_t *inserted,
                    char *err, size_t errlen)
{
    pg_store_t *st = (pg_store_t *)base;
    *inserted = 0;
    int r = ensure_conn(st, err, errlen);
    for (size_t i = 0; r == 0 && i < n; i++)
        r = ensure_day(st, day_of(recs[i]->ev.occurred_at_us), err, errlen);
    if (r < 0)
        return finish_call(st, r);
    eo_buf_reset(&st->copy);
    for (size_t i = 0; i < n; i++) {
        if ((r = append_row(&st->copy, &st->scratch, recs[i], i)) < 0) {
            snprintf(err, errlen, "cannot build the COPY data: %s", eo_strerror(r));
            return finish_call(st, r == EO_ELIMIT ? EO_EDATA : r);
        }
    }
    if ((r = eo_pg_exec(st->conn, "BEGIN", err, errlen)) < 0 ||
        (r = eo_pg_copy_in(st->conn, copy_sql, st->copy.data, st->copy.len, err, errlen)) < 0)
        return finish_call(st, r);
    PGresult *res;
    if ((r = eo_pg_query(st->conn, store_sql, 0, NULL, &res, err, errlen)) < 0)
        return finish_call(st, r);
    *inserted = (size_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if ((r = eo_pg_exec(st->conn, "COMMIT", err, errlen)) < 0)
        *inserted = 0;
    return finish_call(st, r);
}

static const eo_store_ops_t pg_ops = {
    .check_tenants = pg_check_tenants,
    .write = pg_write,
    .ping = pg_ping,
    .ok = pg_ok,
    .ensure_ahead = pg_ensure_ahead,
    .free = pg_free,
};
