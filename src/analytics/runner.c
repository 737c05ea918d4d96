/* The analytics engine's stream side (see runner.h; semantics in docs/analytics.md).
 *
 * One tick (EVENTOPS_ANALYTICS_TICK_MS):
 *   1. poll the events topic (group EVENTOPS_ANALYTICS_GROUP, read_committed) for the tick's
 *      length; each record is decoded and given to the engine, and its offset recorded in the
 *      tick's Kafka transaction (begun at the first record or output);
 *   2. advance the watermark (eo_engine_tick): window results, summaries, late events and the
 *      changelog of the state changed;
 *   3. produce those to their topics and commit the transaction with the consumed offsets.
 * A tick that cannot commit (a failed transaction, partitions revoked, a consumer rebuilt) is
 * dropped whole: the engine's state is thrown away and restored from the changelog (read
 * committed, to its end), which matches the committed offsets, and the records are read again.
 * So a SIGKILL at any point leaves the outputs of whole ticks only, each once.
 *
 * One engine instance per deployment: the state is global (a rule's group gets records from
 * every partition). A second instance's producer would fence this one (same transactional.id);
 * scale-out needs the repartition stage of docs/analytics.md.
 *
 * Threads: the runner thread owns the engine, the consumer, the PostgreSQL connection for
 * rules; the HTTP and metrics threads read the atomics only. The sink (sink.h) has its own. */
#include "analytics/runner.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "analytics/engine.h"
#include "analytics/limits.h"
#include "analytics/sink.h"
#include "analytics/zones.h"
#include "core/clock.h"
#include "core/hmap.h"
#include "core/kafka.h"
#include "core/log.h"
#include "core/pg.h"
#include "core/signals.h"
#include "domain/record.h"
#include "domain/record_scan.h"
#include "domain/rule.h"
#include "stream/kafka_consumer.h"
#include "stream/kafka_lag.h"

#define MAX_PARTS 1024

struct eo_analytics_runner {
    eo_config_t cfg;
    eo_rule_limits_t rlim;
    eo_engine_t *engine;
    eo_kafka_consumer_t *kc;
    eo_kafka_lag_t *lag;
    eo_analytics_sink_t *sink;
    eo_zones_t *zones;                  /* the role's (borrowed) */
    eo_record_scan_t *scan;             /* the scanner's state (16 KiB: not on the stack) */
    bool want_properties, want_context; /* some rule reads a path into them */
    PGconn *pg;
    pthread_t thread;
    bool started;
    atomic_bool stopping, restored, pg_ok;
    bool need_restore;
    int64_t next_rules_us;
    /* the tick log (docs/analytics.md, "Exactly once") */
    int64_t *next_off;      /* per partition: the next offset after the last committed tick; -1 */
    int64_t *tick_off;      /* the same during the tick in hand */
    bool *caught_up;        /* per partition, at the tick's end */
    int64_t seq;            /* of the last committed tick */
    int64_t checkpoint_seq; /* of the last checkpoint (its manifest) */
    int64_t last_checkpoint_us;
    bool force_checkpoint, changed_since_checkpoint;
    eo_engine_rule_t *rules;
    size_t nrules;
    size_t partitions;
    eo_engine_stats_t seen; /* the stats already counted into the metrics */
    atomic_uint_fast64_t groups, bytes, open_windows;
    eo_counter_t *late_reasons[2]; /* beyond_horizon, beyond_grace */
    _Atomic int64_t delay_us[MAX_PARTS];
    atomic_int_fast64_t watermark_us;
    eo_kafka_consumer_metrics_t kafka_metrics;
    eo_counter_t *events, *matched, *corrections, *late, *overflow, *undecodable, *windows, *firing,
        *resolved, *commits, *restores, *checkpoints;
};

/* ---- rules ---- */
static int load_rules(eo_analytics_runner_t *rn)
{
    char err[512];
    if (!rn->pg && eo_pg_connect(rn->cfg.pg_dsn, &rn->pg, err, sizeof err) < 0) {
        atomic_store(&rn->pg_ok, false);
        eo_log_warn("analytics: postgres unavailable", "error", err, NULL);
        return EO_EUNAVAIL;
    }
    PGresult *res = NULL;
    int r = eo_pg_query(rn->pg,
                        "SELECT tenant_id::text, rule_id::text, version, definition::text "
                        "FROM analytics_rules_current WHERE NOT deleted "
                        "ORDER BY tenant_id, rule_id",
                        0, NULL, &res, err, sizeof err);
    if (r < 0) {
        atomic_store(&rn->pg_ok, false);
        eo_log_warn("analytics: loading rules failed", "error", err, NULL);
        if (PQstatus(rn->pg) != CONNECTION_OK) {
            PQfinish(rn->pg);
            rn->pg = NULL;
        }
        return r;
    }
    atomic_store(&rn->pg_ok, true);
    int n = PQntuples(res);
    eo_engine_rule_t *rules = calloc((size_t)(n ? n : 1), sizeof *rules);
    if (!rules) {
        PQclear(res);
        return EO_ENOMEM;
    }
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        eo_engine_rule_t *er = &rules[k];
        snprintf(er->tenant_id, sizeof er->tenant_id, "%s", PQgetvalue(res, i, 0));
        snprintf(er->rule_id, sizeof er->rule_id, "%s", PQgetvalue(res, i, 1));
        er->version = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        eo_event_error_t why;
        const char *def = PQgetvalue(res, i, 3);
        if (eo_rule_parse(def, strlen(def), &rn->rlim, &er->def, &why) < 0) {
            eo_log_warn("analytics: a stored rule no longer parses; skipped", "tenant_id",
                        er->tenant_id, "rule_id", er->rule_id, "error", why.message, NULL);
            continue;
        }
        char zerr[256] = "";
        er->tz = eo_zones_get(rn->zones, er->def.zone, zerr, sizeof zerr);
        if (!er->tz && zerr[0]) {
            eo_log_warn("analytics: a rule's zone cannot be loaded; skipped", "tenant_id",
                        er->tenant_id, "rule_id", er->rule_id, "error", zerr, NULL);
            continue;
        }
        k++;
    }
    PQclear(res);
    bool same = k == rn->nrules;
    for (size_t i = 0; same && i < k; i++)
        same = !strcmp(rules[i].tenant_id, rn->rules[i].tenant_id) &&
               !strcmp(rules[i].rule_id, rn->rules[i].rule_id) &&
               rules[i].version == rn->rules[i].version &&
               rules[i].def.enabled == rn->rules[i].def.enabled;
    if (same) {
        free(rules);
        return 0;
    }
    if ((r = eo_engine_set_rules(rn->engine, rules, k)) < 0) {
        free(rules);
        return r;
    }
    free(rn->rules);
    rn->want_properties = rn->want_context = false;
    for (size_t i = 0; i < k; i++)
        eo_rule_reads(&rules[i].def, &rn->want_properties, &rn->want_context);
    rn->force_checkpoint = true; /* a replay never crosses a change of the rules */
    rn->rules = rules;
    rn->nrules = k;
    char cnt[16];
    snprintf(cnt, sizeof cnt, "%zu", k);
    eo_log_info("analytics rules loaded", "rules", cnt, NULL);
    return 0;
}

/* ---- restore ---- */
typedef struct {
    void *value;
    size_t len;
} clrec_t;

static void clrec_free(void *p)
{
    clrec_t *c = p;
    if (c)
        free(c->value);
    free(c);
}

/* The partition count of topic (a metadata request of up to 10 s). */
static int topic_partitions(rd_kafka_t *rk, const char *topic, size_t *n, char *err, size_t errlen)
{
    int count = 0;
    int r = eo_kafka_topic_partitions(rk, topic, 10000, &count, err, errlen);
    *n = r == 0 ? (size_t)count : 0;
    return r;
}

/* A reader of the changelog or, for a replay, of the events topic. */
static rd_kafka_t *reader_new(const eo_analytics_runner_t *rn, char *err, size_t errlen)
{
    return eo_kafka_reader_new(rn->cfg.kafka_brokers, "eventops-analytics-restore",
                               "eventops-analytics-restore", "earliest", NULL, err, errlen);
}

/* Reads the changelog to its end into a map of the newest value per key. */
static int read_changelog(eo_analytics_runner_t *rn, eo_hmap_t *recs, char *err, size_t errlen)
{
    rd_kafka_t *rk = reader_new(rn, err, errlen);
    if (!rk)
        return EO_EIO;
    size_t nparts;
    int r = topic_partitions(rk, rn->cfg.analytics_changelog_topic, &nparts, err, errlen);
    if (r < 0)
        goto done;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new((int)nparts);
    for (size_t i = 0; i < nparts; i++)
        rd_kafka_topic_partition_list_add(parts, rn->cfg.analytics_changelog_topic, (int32_t)i)
            ->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    size_t eofs = 0;
    bool *at_end = calloc(nparts, sizeof *at_end);
    int64_t deadline = eo_clock_mono_us() + 120 * INT64_C(1000000);
    r = at_end ? 0 : EO_ENOMEM;
    while (r == 0 && eofs < nparts) {
        if (atomic_load(&rn->stopping)) {
            r = EO_ETIMEOUT;
            break;
        }
        if (eo_clock_mono_us() > deadline) {
            snprintf(err, errlen, "reading the changelog took longer than 120 s");
            r = EO_ETIMEOUT;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (m->partition >= 0 && (size_t)m->partition < nparts && !at_end[m->partition]) {
                at_end[m->partition] = true;
                eofs++;
            }
        } else if (m->err) {
            eo_log_warn("analytics: changelog read error", "error", rd_kafka_message_errstr(m),
                        NULL);
        } else if (m->key_len) {
            if (!m->payload) {
                clrec_free(eo_hmap_del(recs, m->key, m->key_len));
            } else {
                clrec_t *c = malloc(sizeof *c);
                void *v = c ? malloc(m->len ? m->len : 1) : NULL;
                void *old = NULL;
                if (!v || eo_hmap_put(recs, m->key, m->key_len, c, &old) < 0) {
                    free(v);
                    free(c);
                    r = EO_ENOMEM;
                } else {
                    memcpy(v, m->payload, m->len);
                    c->value = v;
                    c->len = m->len;
                    clrec_free(old);
                }
            }
        }
        rd_kafka_message_destroy(m);
    }
    free(at_end);
done:
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return r;
}

/* A logged tick (the changelog's "t\n<seq>" records, and "m" for a checkpoint's manifest). */
typedef struct {
    int64_t seq, start_wm, wm, wall;
    int64_t *off; /* per partition: the next offset after the tick; -1 for none yet */
} logged_t;

static int64_t json_i64(json_t *o, const char *k, int64_t dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

/* Parses a tick record or a manifest. */
static int logged_parse(const clrec_t *c, size_t nparts, logged_t *l)
{
    l->off = NULL;
    json_error_t je;
    json_t *o = json_loadb(c->value, c->len, 0, &je);
    if (!o)
        return EO_EPARSE;
    l->seq = json_i64(o, "seq", -1);
    l->start_wm = json_i64(o, "startWatermark", INT64_MIN);
    l->wm = json_i64(o, "watermark", INT64_MIN);
    l->wall = json_i64(o, "wall", 0);
    l->off = malloc(nparts * sizeof *l->off);
    json_t *offs = json_object_get(o, "offsets");
    for (size_t p = 0; l->off && p < nparts; p++) {
        json_t *v = json_array_get(offs, p);
        l->off[p] = json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
    }
    json_decref(o);
    if (!l->off)
        return EO_ENOMEM;
    return l->seq < 0 ? EO_EPARSE : 0;
}

static int cmp_logged(const void *a, const void *b)
{
    const logged_t *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Gives one record of the events topic to the engine. The record was written by the collector
 * (validated), so the scanner reads the fields the engine needs without building a tree
 * (domain/record_scan.h); properties and context are parsed only when a rule reads them. A
 * record it cannot read is counted (the processor dead-letters it). */
static int feed(eo_analytics_runner_t *rn, const rd_kafka_message_t *m)
{
    eo_record_t rec;
    int r = eo_record_scan(m->payload, m->len, rn->scan);
    if (r == 0)
        r = eo_record_from_scan(rn->scan, rn->want_properties, rn->want_context, &rec);
    if (r == EO_ENOMEM)
        return r;
    if (r < 0) {
        eo_counter_add(rn->undecodable, 1);
        return 0;
    }
    r = eo_engine_event(rn->engine, (size_t)m->partition, &rec, m->payload, m->len, m->key,
                        m->key_len, eo_clock_mono_us());
    eo_record_done(&rec);
    return r;
}

/* Replays the logged ticks after the checkpoint whose offsets are from: each tick's records
 * (per partition up to its offsets) after setting the watermark they were classified against,
 * then the tick with its watermark and wall time. Outputs are dropped: they were committed. */
static int replay(eo_analytics_runner_t *rn, const int64_t *from, const logged_t *ticks, size_t n,
                  size_t *records, char *err, size_t errlen)
{
    *records = 0;
    if (!n)
        return 0;
    size_t np = rn->partitions;
    rd_kafka_t *rk = reader_new(rn, err, errlen);
    if (!rk)
        return EO_EIO;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new((int)np);
    for (size_t p = 0; p < np; p++)
        rd_kafka_topic_partition_list_add(parts, rn->cfg.events_topic, (int32_t)p)->offset =
            from[p] >= 0 ? from[p] : RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    int64_t *pos = malloc(np * sizeof *pos);
    bool *eof = calloc(np, sizeof *eof);
    rd_kafka_message_t **held = calloc(np, sizeof *held); /* one record past a tick's end */
    int r = pos && eof && held ? 0 : EO_ENOMEM;
    for (size_t p = 0; r == 0 && p < np; p++)
        pos[p] = from[p];
    int64_t deadline = eo_clock_mono_us() + 300 * INT64_C(1000000);
    for (size_t t = 0; r == 0 && t < n; t++) {
        const logged_t *l = &ticks[t];
        eo_engine_set_watermark(rn->engine, l->start_wm);
        for (size_t p = 0; r == 0 && p < np; p++) /* held records now inside this tick */
            if (held[p] && held[p]->offset < l->off[p]) {
                r = feed(rn, held[p]);
                (*records)++;
                pos[p] = held[p]->offset + 1;
                rd_kafka_message_destroy(held[p]);
                held[p] = NULL;
                rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
                rd_kafka_topic_partition_list_add(one, rn->cfg.events_topic, (int32_t)p);
                rd_kafka_resume_partitions(rk, one); /* paused when it was held */
                rd_kafka_topic_partition_list_destroy(one);
            }
        for (;;) {
            bool done = true;
            for (size_t p = 0; p < np; p++)
                if (l->off[p] >= 0 && pos[p] < l->off[p] && !eof[p] && !held[p])
                    done = false;
            if (done || r < 0)
                break;
            if (atomic_load(&rn->stopping) || eo_clock_mono_us() > deadline) {
                snprintf(err, errlen, "replaying the logged ticks did not finish");
                r = EO_ETIMEOUT;
                break;
            }
            rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
            if (!m)
                continue;
            size_t p = (size_t)m->partition;
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (p < np)
                    eof[p] = true;
                rd_kafka_message_destroy(m);
                continue;
            }
            if (m->err || p >= np) {
                rd_kafka_message_destroy(m);
                continue;
            }
            eof[p] = false;
            if (m->offset >= l->off[p]) { /* a later tick's: keep it, fetch no more of p */
                held[p] = m;
                rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
                rd_kafka_topic_partition_list_add(one, rn->cfg.events_topic, (int32_t)p);
                rd_kafka_pause_partitions(rk, one);
                rd_kafka_topic_partition_list_destroy(one);
                continue;
            }
            r = feed(rn, m);
            (*records)++;
            pos[p] = m->offset + 1;
            rd_kafka_message_destroy(m);
        }
        if (r == 0)
            r = eo_engine_tick_replay(rn->engine, l->wm, l->wall);
        eo_engine_outputs_clear(rn->engine);
    }
    for (size_t p = 0; held && p < np; p++)
        if (held[p])
            rd_kafka_message_destroy(held[p]);
    free(held);
    free(eof);
    free(pos);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return r;
}

/* Rebuilds the engine's state: the last checkpoint from the changelog, then the ticks logged
 * after it replayed; the result is the state of the last committed tick. */
static int restore(eo_analytics_runner_t *rn)
{
    int64_t t0 = eo_clock_mono_us();
    atomic_store(&rn->restored, false);
    eo_engine_reset(rn->engine);
    eo_engine_stats_t stats;
    eo_engine_stats(rn->engine, &stats);
    eo_hmap_t recs;
    eo_hmap_init(&recs);
    char err[512] = "";
    size_t np = rn->partitions, nticks = 0, bad = 0, replayed = 0;
    logged_t manifest = {.seq = 0, .off = NULL}, *ticks = NULL;
    int r = read_changelog(rn, &recs, err, sizeof err);
    clrec_t *m = r == 0 ? eo_hmap_get(&recs, "m", 1) : NULL;
    if (m && (r = logged_parse(m, np, &manifest)) < 0)
        snprintf(err, sizeof err, "the checkpoint's manifest is unreadable");
    if (r == 0 && !manifest.off && !(manifest.off = malloc(np * sizeof *manifest.off)))
        r = EO_ENOMEM;
    for (size_t p = 0; r == 0 && !m && p < np; p++)
        manifest.off[p] = -1;
    if (r == 0 && !(ticks = calloc(recs.count + 1, sizeof *ticks)))
        r = EO_ENOMEM;
    size_t i = 0;
    eo_hmap_slot_t *s;
    while (r == 0 && eo_hmap_next(&recs, &i, &s)) {
        clrec_t *c = s->value;
        if (s->len == 1 && s->key[0] == 'm')
            continue;
        if (s->len > 2 && s->key[0] == 't' && s->key[1] == '\n') {
            r = logged_parse(c, np, &ticks[nticks]);
            if (r == 0 && ticks[nticks].seq > manifest.seq) {
                nticks++;
                continue;
            }
            free(ticks[nticks].off); /* older than the checkpoint, or unreadable */
            ticks[nticks].off = NULL;
            if (r == EO_EPARSE) { /* its records replay with the next tick: counted, logged */
                bad++;
                r = 0;
            }
            continue;
        }
        int rc = eo_engine_restore(rn->engine, s->key, s->len, c->value, c->len);
        if (rc == EO_ENOMEM)
            r = rc;
        else if (rc < 0)
            bad++;
    }
    size_t keys = recs.count;
    eo_hmap_done(&recs, clrec_free);
    if (r == 0) {
        qsort(ticks, nticks, sizeof *ticks, cmp_logged);
        r = replay(rn, manifest.off, ticks, nticks, &replayed, err, sizeof err);
    }
    if (r == 0) { /* the log continues from the last committed tick */
        const logged_t *last = nticks ? &ticks[nticks - 1] : &manifest;
        rn->seq = last->seq;
        rn->checkpoint_seq = manifest.seq;
        memcpy(rn->next_off, last->off, np * sizeof *rn->next_off);
        rn->force_checkpoint = true; /* and the next tick starts a short log */
    }
    for (size_t k = 0; ticks && k < nticks; k++)
        free(ticks[k].off);
    free(ticks);
    free(manifest.off);
    eo_engine_stats_set(rn->engine, &stats); /* replayed records were counted before */
    eo_engine_outputs_clear(rn->engine);
    if (r < 0) {
        eo_log_warn("analytics: restoring the state failed; trying again", "error",
                    err[0] ? err : eo_strerror(r), NULL);
        eo_engine_reset(rn->engine);
        return r;
    }
    char nk[24], nb[24], nt[24], nr[24], ms[24];
    snprintf(nk, sizeof nk, "%zu", keys);
    snprintf(nb, sizeof nb, "%zu", bad);
    snprintf(nt, sizeof nt, "%zu", nticks);
    snprintf(nr, sizeof nr, "%zu", replayed);
    snprintf(ms, sizeof ms, "%.1f", (double)(eo_clock_mono_us() - t0) / 1000);
    eo_log_info("analytics state restored: the last checkpoint and the ticks after it", "keys", nk,
                "unreadable", nb, "ticks_replayed", nt, "records_replayed", nr, "ms", ms, NULL);
    eo_counter_add(rn->restores, 1);
    rn->need_restore = false;
    atomic_store(&rn->restored, true);
    return 0;
}

/* ---- ticks ---- */
static void on_revoke(void *ud)
{
    eo_analytics_runner_t *rn = ud;
    rn->need_restore = true;
}

static int produce_outputs(eo_analytics_runner_t *rn)
{
    size_t n;
    const eo_out_t *outs = eo_engine_outputs(rn->engine, &n);
    for (size_t i = 0; i < n; i++) {
        const eo_out_t *o = &outs[i];
        const char *topic = NULL;
        rd_kafka_headers_t *h = NULL;
        switch (o->kind) {
        case EO_OUT_WINDOW:
            topic = rn->cfg.analytics_windows_topic;
            break;
        case EO_OUT_SUMMARY:
            topic = rn->cfg.analytics_summaries_topic;
            break;
        case EO_OUT_LATE:
            topic = rn->cfg.analytics_late_topic;
            eo_counter_add(rn->late_reasons[strcmp(o->reason, "beyond_horizon") ? 1 : 0], 1);
            h = rd_kafka_headers_new(2);
            rd_kafka_header_add(h, "eventops-late-reason", -1, o->reason, -1);
            rd_kafka_header_add(h, "eventops-rule-id", -1, o->rule_id, -1);
            break;
        case EO_OUT_CHANGELOG:
            topic = rn->cfg.analytics_changelog_topic;
            break;
        }
        int r = eo_kafka_consumer_txn_produce(rn->kc, topic, o->key.data, o->key.len,
                                              o->tombstone ? NULL : o->value.data,
                                              o->tombstone ? 0 : o->value.len, h);
        if (r < 0)
            return r;
    }
    return 0;
}

static void count_stats(eo_analytics_runner_t *rn)
{
    eo_engine_stats_t st;
    eo_engine_stats(rn->engine, &st);
    eo_counter_add(rn->events, st.events - rn->seen.events);
    eo_counter_add(rn->matched, st.matched - rn->seen.matched);
    eo_counter_add(rn->corrections, st.corrections - rn->seen.corrections);
    eo_counter_add(rn->late, st.late - rn->seen.late);
    eo_counter_add(rn->overflow, st.overflow - rn->seen.overflow);
    eo_counter_add(rn->windows, st.windows - rn->seen.windows);
    eo_counter_add(rn->firing, st.summaries_firing - rn->seen.summaries_firing);
    eo_counter_add(rn->resolved, st.summaries_resolved - rn->seen.summaries_resolved);
    uint64_t groups, bytes;
    eo_engine_state_size(rn->engine, &groups, &bytes);
    atomic_store(&rn->groups, groups);
    atomic_store(&rn->open_windows, eo_engine_open_windows(rn->engine));
    atomic_store(&rn->bytes, bytes);
    atomic_store(&rn->watermark_us, eo_engine_watermark(rn->engine));
    int64_t now = eo_clock_now_us();
    for (size_t i = 0; i < rn->partitions && i < MAX_PARTS; i++)
        atomic_store(&rn->delay_us[i], eo_engine_partition_delay_us(rn->engine, i, now));
}

/* The stats of a dropped tick are not counted: they are counted when its records come again. */
static void drop_tick(eo_analytics_runner_t *rn)
{
    eo_engine_outputs_clear(rn->engine);
    eo_engine_stats_set(rn->engine, &rn->seen);
    rn->need_restore = true;
    atomic_store(&rn->restored, false);
}

/* Adds a changelog record (key, JSON text; NULL: a tombstone) to the transaction. */
static int produce_changelog(eo_analytics_runner_t *rn, const char *key, const char *value)
{
    return eo_kafka_consumer_txn_produce(rn->kc, rn->cfg.analytics_changelog_topic, key,
                                         strlen(key), value, value ? strlen(value) : 0, NULL);
}

/* The tick's log record, or at a checkpoint the manifest and tombstones for the tick records
 * it makes useless. */
static int produce_log(eo_analytics_runner_t *rn, bool checkpoint, int64_t seq, int64_t start_wm,
                       int64_t wall)
{
    json_t *offs = json_array();
    for (size_t p = 0; offs && p < rn->partitions; p++)
        json_array_append_new(offs, json_integer(rn->tick_off[p]));
    json_t *o =
        json_pack("{s:I,s:I,s:I,s:I,s:o}", "seq", (json_int_t)seq, "startWatermark",
                  (json_int_t)start_wm, "watermark", (json_int_t)eo_engine_watermark(rn->engine),
                  "wall", (json_int_t)wall, "offsets", offs);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return EO_ENOMEM;
    int r = 0;
    char key[32];
    if (checkpoint) {
        r = produce_changelog(rn, "m", text);
        for (int64_t k = rn->checkpoint_seq + 1; r == 0 && k < seq; k++) {
            snprintf(key, sizeof key, "t\n%" PRId64, k);
            r = produce_changelog(rn, key, NULL);
        }
    } else {
        snprintf(key, sizeof key, "t\n%" PRId64, seq);
        r = produce_changelog(rn, key, text);
    }
    free(text);
    return r;
}

static void tick(eo_analytics_runner_t *rn)
{
    eo_kafka_consumer_t *kc = rn->kc;
    bool in_txn = false, consumed = false;
    int r = 0;
    int64_t start_wm = eo_engine_watermark(rn->engine);
    memcpy(rn->tick_off, rn->next_off, rn->partitions * sizeof *rn->tick_off);
    eo_kafka_consumer_batch_begin(kc);
    int64_t deadline = eo_clock_mono_us() + rn->cfg.analytics_tick_ms * 1000;
    rd_kafka_message_t *m;
    while (r == 0 && !atomic_load(&rn->stopping) && !eo_kafka_consumer_failed(kc)) {
        int64_t left = (deadline - eo_clock_mono_us()) / 1000;
        if (left <= 0)
            break;
        if (!(m = eo_kafka_consumer_take_held(kc)) && !(m = eo_kafka_consumer_poll(kc, (int)left)))
            continue;
        if (!in_txn && (r = eo_kafka_consumer_txn_begin(kc)) == 0)
            in_txn = true;
        if (r == 0) {
            eo_kafka_consumer_txn_consumed(kc, m);
            consumed = true;
            if (m->partition >= 0 && (size_t)m->partition < rn->partitions &&
                m->offset + 1 > rn->tick_off[m->partition])
                rn->tick_off[m->partition] = m->offset + 1;
            r = feed(rn, m);
        }
        rd_kafka_message_destroy(m);
    }
    int64_t wall = eo_clock_now_us();
    /* a partition not assigned here or with a backlog holds the watermark: its records are
     * not late for having been read later */
    eo_kafka_consumer_caught_up(kc, rn->tick_off, rn->caught_up, rn->partitions);
    for (size_t p = 0; p < rn->partitions; p++)
        eo_engine_hold(rn->engine, p, !rn->caught_up[p]);
    if (r == 0 && !eo_kafka_consumer_batch_lost(kc) && !eo_kafka_consumer_failed(kc) &&
        !(atomic_load(&rn->stopping) && eo_signals_failed()))
        r = eo_engine_tick(rn->engine, eo_clock_mono_us(), wall);
    else if (r == 0)
        r = EO_EIO;
    /* what the tick commits: its outputs, offsets and log when anything changed, and the
     * changed state when a checkpoint is due */
    bool changed = eo_engine_changed(rn->engine) || consumed;
    int64_t now = eo_clock_mono_us();
    bool checkpoint = rn->force_checkpoint ||
                      ((rn->changed_since_checkpoint || changed) &&
                       now - rn->last_checkpoint_us >= rn->cfg.analytics_checkpoint_ms * 1000);
    if (r == 0 && checkpoint)
        r = eo_engine_checkpoint(rn->engine);
    size_t nout;
    eo_engine_outputs(rn->engine, &nout);
    bool commit = changed || checkpoint || nout;
    int64_t seq = rn->seq + 1;
    if (r == 0 && commit && !in_txn && (r = eo_kafka_consumer_txn_begin(kc)) == 0)
        in_txn = true;
    if (r == 0 && in_txn)
        r = produce_outputs(rn);
    if (r == 0 && in_txn)
        r = produce_log(rn, checkpoint, seq, start_wm, wall);
    if (r == 0 && in_txn && eo_kafka_consumer_batch_lost(kc))
        r = EO_EIO;
    if (r == 0 && in_txn)
        r = eo_kafka_consumer_txn_commit(kc);
    eo_kafka_consumer_batch_end(kc);
    if (r < 0) {
        if (r == EO_ENOMEM)
            eo_log_error("analytics: out of memory in a tick; its state is restored", NULL);
        drop_tick(rn);
        return;
    }
    eo_engine_outputs_clear(rn->engine);
    if (in_txn) {
        eo_counter_add(rn->commits, 1);
        rn->seq = seq;
        memcpy(rn->next_off, rn->tick_off, rn->partitions * sizeof *rn->next_off);
        rn->changed_since_checkpoint |= changed;
        if (checkpoint) {
            rn->checkpoint_seq = seq;
            rn->last_checkpoint_us = now;
            rn->force_checkpoint = rn->changed_since_checkpoint = false;
            eo_counter_add(rn->checkpoints, 1);
        }
    }
    count_stats(rn);
    eo_engine_stats(rn->engine, &rn->seen); /* counted: the new base */
}

static void *run(void *arg)
{
    eo_log_thread_role("analytics");
    eo_analytics_runner_t *rn = arg;
    while (!atomic_load(&rn->stopping)) {
        int64_t now = eo_clock_mono_us();
        if (now >= rn->next_rules_us || !rn->rules) {
            if (load_rules(rn) < 0 && !rn->rules && !atomic_load(&rn->restored)) {
                rn->next_rules_us = now + 1000000;
                eo_kafka_consumer_serve_paused(rn->kc, 500);
                continue;
            }
            rn->next_rules_us = now + rn->cfg.analytics_rules_refresh_ms * 1000;
        }
        if (!eo_kafka_consumer_heal(rn->kc)) {
            rn->need_restore = true;
            continue;
        }
        if (rn->need_restore && restore(rn) < 0) {
            eo_kafka_consumer_serve_paused(rn->kc, 1000);
            continue;
        }
        tick(rn);
    }
    eo_kafka_consumer_close(rn->kc);
    return NULL;
}

/* ---- metrics ---- */
static double read_groups(void *ud)
{
    return (double)atomic_load(&((eo_analytics_runner_t *)ud)->groups);
}

static double read_open_windows(void *ud)
{
    return (double)atomic_load(&((eo_analytics_runner_t *)ud)->open_windows);
}

static double read_bytes(void *ud)
{
    return (double)atomic_load(&((eo_analytics_runner_t *)ud)->bytes);
}

static double read_restored(void *ud)
{
    return atomic_load(&((eo_analytics_runner_t *)ud)->restored);
}

static int write_delays(eo_buf_t *out, void *ud)
{
    eo_analytics_runner_t *rn = ud;
    int r = eo_buf_printf(out, "# HELP eventops_analytics_watermark_delay_seconds Wall clock minus "
                               "the highest event time seen, per partition of the events topic "
                               "(-1: none seen).\n"
                               "# TYPE eventops_analytics_watermark_delay_seconds gauge\n");
    for (size_t i = 0; r == 0 && i < rn->partitions && i < MAX_PARTS; i++) {
        int64_t d = atomic_load(&rn->delay_us[i]);
        r = eo_buf_printf(out,
                          "eventops_analytics_watermark_delay_seconds{role=\"analytics\","
                          "partition=\"%zu\"} %.3f\n",
                          i, d < 0 ? -1.0 : (double)d / 1e6);
    }
    int64_t wm = atomic_load(&rn->watermark_us);
    if (r == 0)
        r = eo_buf_printf(out,
                          "# HELP eventops_analytics_watermark_seconds The engine's watermark "
                          "(event time, Unix seconds; 0 before any).\n"
                          "# TYPE eventops_analytics_watermark_seconds gauge\n"
                          "eventops_analytics_watermark_seconds{role=\"analytics\"} %.3f\n",
                          wm == INT64_MIN ? 0.0 : (double)wm / 1e6);
    return r;
}

static int register_metrics(eo_analytics_runner_t *rn, eo_metrics_t *m)
{
    const char *role = "role=\"analytics\"";
    static const char *const outcomes[] = {"received", "counted",  "correction",
                                           "late",     "overflow", "undecodable"};
    eo_counter_t *o[6];
    eo_metrics_counters(m, "eventops_analytics_events_total",
                        "Records read by the engine (received, undecodable) and (event, rule) "
                        "pairs by outcome: counted in a window, a correction of a final window, "
                        "late beyond the horizon (on the late topic), counted in an overflow "
                        "group.",
                        "analytics", "outcome", outcomes, 6, o);
    rn->events = o[0];
    rn->matched = o[1];
    rn->corrections = o[2];
    rn->late = o[3];
    rn->overflow = o[4];
    rn->undecodable = o[5];
    static const char *const statuses[] = {"firing", "resolved"};
    eo_counter_t *s[2];
    eo_metrics_counters(m, "eventops_analytics_summaries_total",
                        "Summary events emitted, by status.", "analytics", "status", statuses, 2,
                        s);
    rn->firing = s[0];
    rn->resolved = s[1];
    static const char *const reasons[] = {"beyond_horizon", "beyond_grace"};
    eo_metrics_counters(m, "eventops_analytics_late_events_total",
                        "(event, rule) pairs written to the late topic, by reason.", "analytics",
                        "reason", reasons, 2, rn->late_reasons);
    rn->windows = eo_metrics_counter(m, "eventops_analytics_window_results_total",
                                     "Window results emitted (revisions included).", role);
    rn->commits = eo_metrics_counter(m, "eventops_analytics_transactions_committed_total",
                                     "Ticks committed as one Kafka transaction.", role);
    rn->restores = eo_metrics_counter(m, "eventops_analytics_state_restores_total",
                                      "Times the state was rebuilt from the changelog.", role);
    rn->checkpoints =
        eo_metrics_counter(m, "eventops_analytics_checkpoints_total",
                           "Checkpoints of the engine's state into the changelog.", role);
    eo_kafka_consumer_register_metrics(m, "analytics", &rn->kafka_metrics);
    int r = eo_metrics_gauge_fn(m, "eventops_analytics_state_groups",
                                "(rule, group) keys held by the engine.", role, read_groups, rn);
    r = r < 0 ? r
              : eo_metrics_gauge_fn(m, "eventops_analytics_open_windows",
                                    "Windows not final yet over all rules and groups.", role,
                                    read_open_windows, rn);
    r = r < 0
            ? r
            : eo_metrics_gauge_fn(m, "eventops_analytics_state_bytes",
                                  "Approximate bytes of the engine's state.", role, read_bytes, rn);
    r = r < 0 ? r
              : eo_metrics_gauge_fn(m, "eventops_analytics_state_restored",
                                    "1 once the state is restored and ticks run.", role,
                                    read_restored, rn);
    r = r < 0 ? r : eo_metrics_add_collector(m, write_delays, rn);
    return r < 0 ? r : eo_metrics_add_collector(m, eo_kafka_lag_write_metrics, rn->lag);
}

/* ---- start and stop ---- */
static void destroy(eo_analytics_runner_t *rn)
{
    eo_analytics_sink_stop(rn->sink);
    eo_kafka_consumer_free(rn->kc);
    eo_kafka_lag_free(rn->lag);
    eo_engine_free(rn->engine);
    if (rn->pg)
        PQfinish(rn->pg);
    free(rn->rules);
    free(rn->next_off);
    free(rn->tick_off);
    free(rn->caught_up);
    free(rn->scan);
    free(rn);
}

/* The partition count of the events topic. A topic just made may take the brokers a moment to
 * announce: asked again for up to 30 s. */
static int events_partitions(const eo_config_t *cfg, size_t *n, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = eo_kafka_conf_new(cfg->kafka_brokers, err, errlen);
    if (!conf)
        return EO_EIO;
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return EO_EIO;
    }
    int64_t until = eo_clock_mono_us() + 30 * INT64_C(1000000);
    int r;
    while ((r = topic_partitions(rk, cfg->events_topic, n, err, errlen)) < 0 &&
           eo_clock_mono_us() < until)
        rd_kafka_poll(rk, 500);
    rd_kafka_destroy(rk);
    return r;
}

int eo_analytics_runner_start(const eo_config_t *cfg, eo_metrics_t *m, eo_zones_t *zones,
                              eo_analytics_runner_t **out, char *err, size_t errlen)
{
    *out = NULL;
    eo_analytics_runner_t *rn = calloc(1, sizeof *rn);
    if (!rn)
        return EO_ENOMEM;
    rn->cfg = *cfg;
    eo_analytics_rule_limits(&rn->rlim, cfg);
    rn->need_restore = true;
    atomic_store(&rn->watermark_us, INT64_MIN);
    rn->zones = zones;
    int r;
    if ((r = events_partitions(cfg, &rn->partitions, err, errlen)) < 0)
        goto fail;
    for (size_t i = 0; i < MAX_PARTS; i++)
        atomic_store(&rn->delay_us[i], -1);
    rn->next_off = malloc(rn->partitions * sizeof *rn->next_off);
    rn->tick_off = malloc(rn->partitions * sizeof *rn->tick_off);
    rn->caught_up = calloc(rn->partitions, sizeof *rn->caught_up);
    rn->scan = malloc(sizeof *rn->scan);
    if (!rn->next_off || !rn->tick_off || !rn->caught_up || !rn->scan) {
        snprintf(err, errlen, "out of memory");
        r = EO_ENOMEM;
        goto fail;
    }
    for (size_t p = 0; p < rn->partitions; p++)
        rn->next_off[p] = -1;
    eo_engine_options_t eopt = {
        .partitions = rn->partitions,
        .bound_us = cfg->analytics_watermark_bound_ms * 1000,
        .idle_us = cfg->analytics_idle_ms * 1000,
        .changes_interval_us = cfg->analytics_changes_interval_ms * 1000,
        .max_state_bytes_per_tenant = cfg->analytics_max_state_bytes_per_tenant,
    };
    if ((r = eo_engine_new(&eopt, &rn->engine)) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    eo_kafka_lag_options_t lag_opt = {
        .brokers = cfg->kafka_brokers,
        .group = cfg->analytics_group,
        .topic = cfg->events_topic,
        .role = "analytics",
        .interval_ms = cfg->kafka_lag_interval_ms,
    };
    if ((r = eo_kafka_lag_new(&lag_opt, &rn->lag, err, errlen)) < 0)
        goto fail;
    if ((r = register_metrics(rn, m)) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    char txn_id[160];
    snprintf(txn_id, sizeof txn_id, "eventops-analytics-%s", cfg->analytics_id);
    eo_kafka_consumer_options_t kopt = {
        .brokers = cfg->kafka_brokers,
        .group = cfg->analytics_group,
        .topic = cfg->events_topic,
        .consumer_client_id = "eventops-analytics",
        .producer_client_id = "eventops-analytics-out",
        .transactional_id = txn_id,
        .session_timeout_ms = cfg->kafka_session_timeout_ms,
        .fetch_min_bytes = cfg->kafka_fetch_min_bytes,
        .call_timeout_ms = cfg->kafka_call_timeout_ms,
        .txn_timeout_ms = cfg->kafka_txn_timeout_ms,
        .consumer_fault = "analytics-consumer-fatal",
        .producer_fault = "analytics-producer-fatal",
        .lag = rn->lag,
        .metrics = &rn->kafka_metrics,
        .stopping = &rn->stopping,
        .on_revoke = on_revoke,
        .ud = rn,
    };
    if ((r = eo_kafka_consumer_new(&kopt, &rn->kc, err, errlen)) < 0)
        goto fail;
    eo_analytics_sink_options_t sopt = {
        .brokers = cfg->kafka_brokers,
        .group = cfg->analytics_sink_group,
        .summaries_topic = cfg->analytics_summaries_topic,
        .windows_topic = cfg->analytics_windows_topic,
        .pg_dsn = cfg->pg_dsn,
        .session_timeout_ms = cfg->kafka_session_timeout_ms,
        .batch_max = 1000,
        .batch_wait_ms = 100,
    };
    if ((r = eo_analytics_sink_start(&sopt, m, &rn->sink, err, errlen)) < 0)
        goto fail;
    if (pthread_create(&rn->thread, NULL, run, rn) != 0) {
        snprintf(err, errlen, "cannot start the analytics thread");
        r = EO_ENOMEM;
        goto fail;
    }
    rn->started = true;
    *out = rn;
    return 0;
fail:
    destroy(rn);
    return r;
}

bool eo_analytics_runner_ready(const eo_analytics_runner_t *r)
{
    return r && atomic_load(&r->restored) && atomic_load(&r->pg_ok) &&
           eo_kafka_consumer_usable(r->kc) && eo_analytics_sink_ready(r->sink);
}

void eo_analytics_runner_stop(eo_analytics_runner_t *rn)
{
    if (!rn)
        return;
    atomic_store(&rn->stopping, true);
    if (rn->started)
        pthread_join(rn->thread, NULL);
    destroy(rn);
}
