/* Rule backtests for the HTTP API: slots, workers, reading PostgreSQL, answers (see
 * backtest_pool.h). */
#include "analytics/backtest_pool.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "analytics/backtest.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/pg.h"
#include "core/tconn.h"
#include "domain/record.h"
#include "domain/rfc3339.h"

#define MAX_ANSWER_BYTES (256 << 20) /* max_results window results of a few KiB each */
#define CURSOR "eo_backtest"

enum { OUT_COMPLETED, OUT_TRUNCATED, OUT_BUSY, OUT_FAILED, OUT_N };

typedef struct {
    char tenant_id[37];
    int running;
} tenant_slot_t;

/* One worker thread. */
typedef struct {
    struct eo_backtest_pool *pool;
    pthread_t thread;
    PGcancel *cancel; /* while it reads: cancels its statement on stop (under the pool's lock) */
} worker_t;

struct eo_backtest_pool {
    const eo_config_t *cfg;
    pthread_mutex_t lock;   /* guards everything below but the threads and metrics */
    pthread_cond_t wake;    /* a job is queued, or stopping */
    tenant_slot_t *tenants; /* max_concurrent entries; running 0 = free */
    int running;
    eo_backtest_job_t **queue; /* max_concurrent entries, FIFO */
    size_t qhead, qlen;
    bool stopping;
    atomic_bool abort; /* set once stopping: running backtests end at their next fetch */
    worker_t *workers;
    size_t nthreads; /* workers started */
    size_t slots;    /* backtests at once: as many as workers */
    eo_tconn_t conn; /* one PostgreSQL connection per worker */
    bool conn_made;
    char retry_after[24];
    eo_counter_t *outcomes[OUT_N]; /* eventops_analytics_backtests_total{outcome} */
};

/* ---- connections ---- */

static void *pg_open(void *ud, char *err, size_t errlen)
{
    const eo_backtest_pool_t *p = ud;
    PGconn *c;
    if (eo_pg_connect(p->cfg->pg_dsn, &c, err, errlen) < 0)
        return NULL;
    char setup[160];
    snprintf(setup, sizeof setup,
             "SET statement_timeout = %lld; SET TimeZone = 'UTC'; SET jit = off",
             (long long)p->cfg->analytics_backtest_timeout_ms);
    if (eo_pg_exec(c, setup, err, errlen) < 0) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

static bool pg_usable(const void *c)
{
    return PQstatus(c) == CONNECTION_OK;
}

static void pg_close(void *c)
{
    PQfinish(c);
}

/* ---- slots ---- */

int eo_backtest_pool_acquire(eo_backtest_pool_t *p, const char *tenant_id)
{
    int r = EO_ELIMIT;
    pthread_mutex_lock(&p->lock);
    tenant_slot_t *mine = NULL, *free_slot = NULL;
    for (size_t i = 0; i < p->slots; i++) {
        tenant_slot_t *t = &p->tenants[i];
        if (t->running && !strcmp(t->tenant_id, tenant_id))
            mine = t;
        else if (!t->running && !free_slot)
            free_slot = t;
    }
    if (p->stopping) {
        r = EO_EUNAVAIL;
    } else if (p->running < (int)p->slots &&
               (!mine || mine->running < p->cfg->analytics_backtest_max_concurrent_per_tenant)) {
        if (!mine) { /* a free entry exists: fewer tenants than running backtests */
            mine = free_slot;
            memcpy(mine->tenant_id, tenant_id, sizeof mine->tenant_id);
            mine->tenant_id[36] = '\0';
        }
        mine->running++;
        p->running++;
        r = 0;
    }
    pthread_mutex_unlock(&p->lock);
    if (r == EO_ELIMIT)
        eo_counter_add(p->outcomes[OUT_BUSY], 1);
    return r;
}

void eo_backtest_pool_release(eo_backtest_pool_t *p, const char *tenant_id)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->slots; i++) {
        tenant_slot_t *t = &p->tenants[i];
        if (t->running && !strcmp(t->tenant_id, tenant_id)) {
            t->running--;
            p->running--;
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
}

/* ---- reading ---- */

static int64_t column_us(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? EO_NO_TIME : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static const char *column_text(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* eo_pg_query, with the statement timeout (SQLSTATE 57014) as EO_ETIMEOUT. */
static int query(PGconn *conn, const char *sql, int n, const char *const *params, PGresult **res,
                 char *err, size_t errlen)
{
    int r = eo_pg_query(conn, sql, n, params, res, err, errlen);
    if (r < 0 && strncmp(err, "57014", 5) == 0)
        return EO_ETIMEOUT;
    return r;
}

/* Feeds the rows of one FETCH; *done when the backtest stopped taking events. Rows that cannot
 * be read back as events are counted in *skipped. */
static int feed_rows(eo_backtest_t *bt, const char *tenant_id, const PGresult *res, bool *done,
                     int64_t *skipped)
{
    for (int i = 0; i < PQntuples(res); i++) {
        eo_stored_event_t row = {.tenant_id = tenant_id,
                                 .message_id = column_text(res, i, 0),
                                 .event_type = column_text(res, i, 1),
                                 .user_id = column_text(res, i, 2),
                                 .anonymous_id = column_text(res, i, 3),
                                 .occurred_at_us = column_us(res, i, 4),
                                 .received_at_us = column_us(res, i, 5),
                                 .sent_at_us = column_us(res, i, 6),
                                 .properties = column_text(res, i, 7),
                                 .context = column_text(res, i, 8)};
        eo_record_t rec;
        eo_event_error_t why;
        int r = eo_record_from_stored(&row, &rec, &why);
        if (r == 0)
            r = eo_backtest_event(bt, &rec);
        eo_record_done(&rec);
        if (r == EO_EPARSE || r == EO_EINVAL) { /* not an event of this backtest: skipped */
            (*skipped)++;
            continue;
        }
        if (r < 0)
            return r;
        if (r == 1) {
            *done = true;
            break;
        }
    }
    return 0;
}

/* Sets (or with NULL clears and frees) the worker's cancel handle. */
static void set_cancel(worker_t *w, PGcancel *c)
{
    pthread_mutex_lock(&w->pool->lock);
    PGcancel *old = w->cancel;
    w->cancel = c;
    pthread_mutex_unlock(&w->pool->lock);
    if (old)
        PQfreeCancel(old);
}

/* Reads the job's events into bt within the deadline (see backtest_pool.h); stop cancels the
 * statement in flight. Returns 0, EO_ETIMEOUT (also for a cancelled statement: the caller
 * tells the two apart by the pool's abort flag), EO_EUNAVAIL when stopping, or a database
 * error with err. */
static int read_events(worker_t *w, PGconn *conn, const eo_backtest_job_t *job, eo_backtest_t *bt,
                       int64_t deadline, int64_t *skipped, char *err, size_t errlen)
{
    eo_backtest_pool_t *p = w->pool;
    int64_t from_us, to_us;
    eo_backtest_read_range(bt, &from_us, &to_us);
    char from[EO_RFC3339_MAX], to[EO_RFC3339_MAX];
    from[eo_rfc3339_format(from_us, from)] = '\0';
    to[eo_rfc3339_format(to_us, to)] = '\0';
    const char *type = eo_backtest_event_type(bt);
    const char *params[] = {job->tenant_id, from, to, strcmp(type, "*") ? type : NULL};
    set_cancel(w, PQgetCancel(conn)); /* NULL when out of memory: then not cancellable */
    int r = atomic_load(&p->abort) ? EO_EUNAVAIL : eo_pg_exec(conn, "BEGIN READ ONLY", err, errlen);
    PGresult *res = NULL;
    if (r == 0)
        r = query(conn,
                  "DECLARE " CURSOR " NO SCROLL CURSOR FOR "
                  "SELECT message_id, event_type, user_id, anonymous_id, "
                  " (extract(epoch FROM occurred_at) * 1000000)::bigint, "
                  " (extract(epoch FROM received_at) * 1000000)::bigint, "
                  " (extract(epoch FROM sent_at) * 1000000)::bigint, "
                  " properties::text, context::text "
                  "FROM events WHERE tenant_id = $1::uuid AND occurred_at >= $2::timestamptz "
                  " AND occurred_at < $3::timestamptz "
                  " AND ($4::text IS NULL OR event_type = $4::text) "
                  "ORDER BY occurred_at, message_id",
                  4, params, &res, err, errlen);
    if (r == 0)
        PQclear(res);
    char fetch[64];
    snprintf(fetch, sizeof fetch, "FETCH %d FROM " CURSOR, EO_BACKTEST_FETCH_ROWS);
    for (bool done = false; r == 0 && !done;) {
        if (atomic_load(&p->abort)) {
            r = EO_EUNAVAIL;
            break;
        }
        if (eo_clock_mono_us() >= deadline) {
            r = EO_ETIMEOUT;
            break;
        }
        if ((r = query(conn, fetch, 0, NULL, &res, err, errlen)) < 0)
            break;
        if (PQntuples(res) == 0)
            done = true;
        else
            r = feed_rows(bt, job->tenant_id, res, &done, skipped);
        PQclear(res);
    }
    set_cancel(w, NULL);
    char ignored[128];
    if (PQstatus(conn) == CONNECTION_OK) /* read only: nothing to commit */
        eo_ignore(eo_pg_exec(conn, "ROLLBACK", ignored, sizeof ignored));
    return r;
}

/* ---- a job ---- */

static void answer_error(eo_backtest_pool_t *p, eo_http_req_t *req, int r, bool stopping)
{
    const char *h[] = {"Retry-After", p->retry_after, NULL};
    if (stopping)
        eo_http_respond_error(req, 503, "shutting_down",
                              "the server is shutting down; retry the backtest later", NULL, h);
    else if (r == EO_ETIMEOUT)
        eo_http_respond_error(req, 503, "query_timeout",
                              "the backtest took longer than the configured limit "
                              "(EVENTOPS_ANALYTICS_BACKTEST_TIMEOUT_MS); narrow the range",
                              NULL, h);
    else if (r == EO_ENOMEM || r == EO_ELIMIT) /* EO_ELIMIT: the answer's buffer is full */
        eo_http_respond_error(req, 503, "overloaded",
                              "out of memory for the backtest or its answer; narrow the range",
                              NULL, h);
    else
        eo_http_respond_error(req, 503, "database_unavailable",
                              "the database could not answer; retry later", NULL, h);
}

static void log_done(const eo_backtest_job_t *job, const eo_backtest_result_t *res, int64_t ms,
                     int64_t skipped)
{
    char ev[24], win[24], sum[24], took[24], sk[24];
    snprintf(ev, sizeof ev, "%" PRId64, res->events);
    snprintf(win, sizeof win, "%" PRId64, res->windows);
    snprintf(sum, sizeof sum, "%" PRId64, res->summaries);
    snprintf(took, sizeof took, "%" PRId64, ms);
    snprintf(sk, sizeof sk, "%" PRId64, skipped);
    eo_log_info("rule backtest", "tenant_id", job->tenant_id, "rule_id", job->rule.rule_id,
                "events", ev, "windows", win, "summaries", sum, "truncated",
                res->truncated ? "true" : "false", "skipped", sk, "ms", took, NULL);
}

static void job_free(eo_backtest_job_t *job)
{
    if (!job)
        return;
    free(job->rule_json);
    free(job);
}

/* Runs one job and answers its request; gives its slot back before answering (a client that
 * sends the next backtest on the answer finds its slot free). */
static void run_job(worker_t *w, eo_backtest_job_t *job)
{
    eo_backtest_pool_t *p = w->pool;
    const eo_config_t *cfg = p->cfg;
    int64_t started = eo_clock_mono_us();
    int64_t deadline = started + cfg->analytics_backtest_timeout_ms * 1000;
    eo_backtest_options_t o = {
        .from_us = job->from_us,
        .to_us = job->to_us,
        .max_events = cfg->analytics_backtest_max_events,
        .max_results = cfg->analytics_backtest_max_results,
        .max_lead_us = cfg->analytics_backtest_max_range_s * 1000000,
        .tick_us = cfg->analytics_tick_ms * 1000,
        .changes_interval_us = cfg->analytics_changes_interval_ms * 1000,
        .max_state_bytes_per_tenant = cfg->analytics_max_state_bytes_per_tenant,
    };
    eo_backtest_t *bt = NULL;
    eo_buf_t out;
    eo_buf_init(&out, MAX_ANSWER_BYTES);
    eo_backtest_result_t res = {0};
    int64_t skipped = 0;
    char err[512] = "";
    int r = atomic_load(&p->abort) ? EO_EUNAVAIL : eo_backtest_new(&o, &job->rule, &bt);
    PGconn *conn = NULL;
    if (r == 0 && !(conn = eo_tconn_get(&p->conn, err, sizeof err)))
        r = EO_EUNAVAIL;
    if (r == 0) {
        r = read_events(w, conn, job, bt, deadline, &skipped, err, sizeof err);
        eo_tconn_check(&p->conn);
    }
    while (r == 0) { /* closing ticks, within the deadline */
        int more = eo_backtest_close(bt);
        if (more <= 0) {
            r = more;
            break;
        }
        if (eo_clock_mono_us() >= deadline)
            r = EO_ETIMEOUT;
        else if (atomic_load(&p->abort))
            r = EO_EUNAVAIL;
    }
    if (r == 0)
        r = eo_backtest_write(bt, job->rule_json, &out, &res);
    bool stopping = atomic_load(&p->abort);
    eo_backtest_pool_release(p, job->tenant_id);
    if (r == 0) {
        const char *h[] = {"RateLimit-Limit",
                           job->rl.limit,
                           "RateLimit-Remaining",
                           job->rl.remaining,
                           "RateLimit-Reset",
                           job->rl.reset,
                           NULL};
        eo_http_respond(job->req, 200, out.data, out.len, h);
        eo_counter_add(p->outcomes[res.truncated ? OUT_TRUNCATED : OUT_COMPLETED], 1);
        log_done(job, &res, (eo_clock_mono_us() - started) / 1000, skipped);
    } else {
        answer_error(p, job->req, r, stopping); /* a cancelled statement too */
        eo_counter_add(p->outcomes[OUT_FAILED], 1);
        eo_log_warn("rule backtest failed", "tenant_id", job->tenant_id, "rule_id",
                    job->rule.rule_id, "error", err[0] ? err : eo_strerror(r), NULL);
    }
    eo_buf_done(&out);
    eo_backtest_free(bt);
    job_free(job);
}

static void *worker_main(void *arg)
{
    eo_log_thread_role("analytics");
    worker_t *w = arg;
    eo_backtest_pool_t *p = w->pool;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stopping && p->qlen == 0)
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->qlen == 0) /* stopping, and nothing left to answer */
            break;
        eo_backtest_job_t *job = p->queue[p->qhead];
        p->qhead = (p->qhead + 1) % p->slots;
        p->qlen--;
        pthread_mutex_unlock(&p->lock);
        run_job(w, job);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

void eo_backtest_pool_submit(eo_backtest_pool_t *p, eo_backtest_job_t *job)
{
    pthread_mutex_lock(&p->lock);
    bool stopping = p->stopping; /* the workers may be gone: answered here */
    if (!stopping) {
        /* a job holds a slot, and there are as many queue entries as slots: it always fits */
        p->queue[(p->qhead + p->qlen) % p->slots] = job;
        p->qlen++;
        pthread_cond_signal(&p->wake);
    }
    pthread_mutex_unlock(&p->lock);
    if (stopping) {
        eo_backtest_pool_release(p, job->tenant_id);
        answer_error(p, job->req, EO_EUNAVAIL, true);
        eo_counter_add(p->outcomes[OUT_FAILED], 1);
        job_free(job);
    }
}

/* ---- start and stop ---- */

int eo_backtest_pool_new(const eo_config_t *cfg, eo_metrics_t *m, eo_backtest_pool_t **out)
{
    *out = NULL;
    eo_backtest_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return EO_ENOMEM;
    p->cfg = cfg;
    size_t n = (size_t)cfg->analytics_backtest_max_concurrent;
    snprintf(p->retry_after, sizeof p->retry_after, "%lld", (long long)cfg->retry_after_s);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    static const char *const names[OUT_N] = {"completed", "truncated", "busy", "failed"};
    eo_metrics_counters(m, "eventops_analytics_backtests_total",
                        "Rule backtests by outcome: completed, truncated by a limit, refused "
                        "while the most were running (429), failed (503).",
                        "analytics", "outcome", names, OUT_N, p->outcomes);
    eo_tconn_ops_t ops = {.open = pg_open, .usable = pg_usable, .close = pg_close, .ud = p};
    int r = EO_ENOMEM;
    if (!(p->tenants = calloc(n, sizeof *p->tenants)) ||
        !(p->queue = calloc(n, sizeof *p->queue)) ||
        !(p->workers = calloc(n, sizeof *p->workers)) || eo_tconn_init(&p->conn, &ops) < 0)
        goto fail;
    p->conn_made = true;
    p->slots = n;
    for (; p->nthreads < n; p->nthreads++) {
        worker_t *w = &p->workers[p->nthreads];
        w->pool = p;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            r = EO_EIO;
            goto fail;
        }
    }
    *out = p;
    return 0;
fail:
    eo_backtest_pool_free(p);
    return r;
}

void eo_backtest_pool_stop(eo_backtest_pool_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    bool joined = p->stopping;
    p->stopping = true;
    atomic_store(&p->abort, true);
    pthread_cond_broadcast(&p->wake);
    for (size_t i = 0; i < p->nthreads; i++) { /* a statement in flight ends now */
        char ignored[256];
        if (p->workers[i].cancel && !PQcancel(p->workers[i].cancel, ignored, sizeof ignored))
            eo_log_warn("backtest: cannot cancel a statement", "error", ignored, NULL);
    }
    pthread_mutex_unlock(&p->lock);
    if (joined)
        return;
    for (size_t i = 0; i < p->nthreads; i++)
        pthread_join(p->workers[i].thread, NULL);
}

void eo_backtest_pool_free(eo_backtest_pool_t *p)
{
    if (!p)
        return;
    eo_backtest_pool_stop(p);
    if (p->conn_made)
        eo_tconn_done(&p->conn);
    free(p->workers);
    free(p->queue);
    free(p->tenants);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
