/* The event streams' reader thread (see stream.h, stream_internal.h): the one Kafka client that
 * tails the windows and summaries topics into the buffer, and the catch-up consumers of resumes
 * older than the buffer.
 *
 * The tail is assigned every partition of both topics (no consumer group, nothing committed),
 * read_committed, at the end at start-up: librdkafka resolves the end under read_committed to
 * the last stable offset, and the partition's end-of-partition event (or its first record)
 * gives the buffer its starting position. A tail librdkafka made unusable is rebuilt at the
 * positions read so far.
 *
 * A catch-up is a consumer of the same kind assigned the partitions where its stream's position
 * is outside the buffer, at that position. It hands the stream, in order: its records, the
 * positions of the records that are not its (coalesced) and of each partition's end, and DONE
 * once every partition it reads is at or past the buffer's base (known from Kafka, not from the
 * resume). It reads while its stream's queue holds less than the backlog bound, so it goes at
 * the client's pace. A position Kafka does not have (older than the retention, or past the end
 * of a topic made again; found from the partition's offsets before the catch-up is assigned, or
 * later by an offset-out-of-range) starts that partition again from its earliest record, and the
 * stream says ": reset". At most MAX_CATCHUPS run at once; the others
 * wait (their streams send keep-alives meanwhile).
 *
 * Everything is polled without blocking but the tail's poll (100 ms, 5 ms while catch-ups
 * run), which is also the keep-alive clock. Threads: this thread owns the Kafka clients and
 * the list of catch-ups; what it shares with the streams is behind hub->lock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/stream_internal.h"
#include "core/clock.h"
#include "core/kafka.h"
#include "core/log.h"
#include "domain/analytics_row.h"

#define MAX_CATCHUPS 16
#define POLL_BATCH 500
#define RETRY_US 1000000 /* a tail or a catch-up that could not be made is tried again after */
#define WARN_EVERY_US 10000000
#define WATERMARK_TIMEOUT_MS                                                                       \
    1000 /* one partition's first and end offsets, asked before a catch-up */

/* A consumer assigned by hand (core/kafka.h's reader). auto.offset.reset: what an offset Kafka
 * does not have does ("error" for a catch-up, which says so to its stream). NULL with the
 * reason in err. */
static rd_kafka_t *consumer_new(const struct eo_analytics_streams *h, const char *client_id,
                                const char *reset, const char *queued_kbytes, char *err,
                                size_t errlen)
{
    return eo_kafka_reader_new(h->brokers, "eventops-analytics-stream", client_id, reset,
                               queued_kbytes, err, errlen);
}

static void consumer_free(rd_kafka_t *rk)
{
    if (rk) /* assigned by hand: nothing to leave or commit */
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

/* The partition count of topic, 1 .. EO_SSE_MAX_PARTITIONS. */
static int topic_partitions(rd_kafka_t *rk, const char *topic, uint16_t *n, char *err,
                            size_t errlen)
{
    int count = 0;
    int r = eo_kafka_topic_partitions(rk, topic, 2000, &count, err, errlen);
    if (r == 0 && count > EO_SSE_MAX_PARTITIONS) {
        snprintf(err, errlen, "topic %s has %d partitions; event streams read at most %d", topic,
                 count, EO_SSE_MAX_PARTITIONS);
        r = EO_ELIMIT;
    }
    if (r == 0)
        *n = (uint16_t)count;
    return r;
}

/* Which topic a message is of (-1: neither). */
static int topic_of(const struct eo_analytics_streams *h, const rd_kafka_message_t *m)
{
    const char *name = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
    for (int t = 0; t < EO_SSE_TOPICS; t++)
        if (strcmp(name, h->topics[t]) == 0)
            return t;
    return -1;
}

/* Logs a consume error now and then (Kafka away makes one per poll). */
static void warn_consume(int64_t *last_us, const char *who, const rd_kafka_message_t *m)
{
    int64_t now = eo_clock_mono_us();
    if (now - *last_us < WARN_EVERY_US)
        return;
    *last_us = now;
    eo_log_warn("event streams: kafka consume error", "client", who, "error",
                rd_kafka_message_errstr(m), "code", rd_kafka_err2name(m->err), NULL);
}

/* Logs a warning now and then. */
static void warn_text(int64_t *last_us, const char *msg, const char *err)
{
    int64_t now = eo_clock_mono_us();
    if (now - *last_us < WARN_EVERY_US)
        return;
    *last_us = now;
    eo_log_warn("event streams: kafka", "error", msg, "detail", err, NULL);
}

/* ---- the tail ---- */

/* Makes the tail and assigns it every partition: at the end the first time, at the positions
 * read so far after a rebuild. */
static int tail_start(struct eo_analytics_streams *h, char *err, size_t errlen)
{
    rd_kafka_t *rk = consumer_new(h, "eventops-analytics-stream", "earliest", "16384", err, errlen);
    if (!rk)
        return EO_EIO;
    uint16_t n[EO_SSE_TOPICS];
    for (int t = 0; t < EO_SSE_TOPICS; t++) {
        int r = topic_partitions(rk, h->topics[t], &n[t], err, errlen);
        if (r < 0) {
            consumer_free(rk);
            return r;
        }
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new((int)(n[0] + n[1]));
    pthread_mutex_lock(&h->lock);
    if (h->head.n[0] == 0 && h->head.n[1] == 0) {
        eo_sse_pos_init(&h->head, n[0], n[1]);
        eo_sse_pos_init(&h->base, n[0], n[1]);
    } else if (n[0] != h->head.n[0] || n[1] != h->head.n[1]) {
        eo_log_warn("event streams: the topics' partition counts changed; new partitions are "
                    "read after a restart",
                    NULL);
    }
    for (int t = 0; t < EO_SSE_TOPICS; t++)
        for (uint16_t i = 0; i < h->head.n[t] && i < n[t]; i++)
            rd_kafka_topic_partition_list_add(parts, h->topics[t], i)->offset =
                h->known[t][i] ? h->head.next[t][i] : RD_KAFKA_OFFSET_END;
    pthread_mutex_unlock(&h->lock);
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (e) {
        snprintf(err, errlen, "kafka assign: %s", rd_kafka_err2str(e));
        consumer_free(rk);
        return EO_EIO;
    }
    h->tail = rk;
    return 0;
}

/* Reads what the tail has (waiting up to timeout_ms for the first message) into the buffer. */
static void poll_tail(struct eo_analytics_streams *h, int timeout_ms, int64_t *last_warn)
{
    for (int i = 0; i < POLL_BATCH; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(h->tail, i == 0 ? timeout_ms : 0);
        if (!m)
            return;
        int t = topic_of(h, m);
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (t >= 0)
                eo_streams_at_end(h, (eo_sse_topic_t)t, m->partition, m->offset);
        } else if (m->err) {
            warn_consume(last_warn, "tail", m);
        } else if (t >= 0) {
            eo_streams_append(h, (eo_sse_topic_t)t, m->partition, m->offset, m->key, m->key_len,
                              m->payload, m->len);
        }
        rd_kafka_message_destroy(m);
        if (rd_kafka_fatal_error(h->tail, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            char why[512] = "";
            rd_kafka_fatal_error(h->tail, why, sizeof why);
            eo_log_warn("event streams: rebuilding the kafka reader", "reason", why, NULL);
            consumer_free(h->tail);
            h->tail = NULL;
            return;
        }
    }
}

/* ---- catch-ups ---- */

void eo_streams_catchup_free(catchup_t *cu)
{
    if (!cu)
        return;
    consumer_free(cu->rk);
    free(cu);
}

/* (Re)assigns the catch-up's partitions at its positions; from_start ones at their earliest. */
static int catchup_assign(struct eo_analytics_streams *h, catchup_t *cu,
                          bool from_start[EO_SSE_TOPICS][EO_SSE_MAX_PARTITIONS])
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(16);
    for (int t = 0; t < EO_SSE_TOPICS; t++)
        for (uint16_t i = 0; i < cu->at.n[t]; i++)
            if (cu->assigned[t][i])
                rd_kafka_topic_partition_list_add(parts, h->topics[t], i)->offset =
                    from_start[t][i] ? RD_KAFKA_OFFSET_BEGINNING : cu->at.next[t][i];
    rd_kafka_resp_err_t e = rd_kafka_assign(cu->rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    return e ? EO_EIO : 0;
}

/* A position Kafka does not have: the partition starts again from its earliest record, and the
 * stream says so. Returns whether it was not reset already (and not read since). */
static bool catchup_reset(struct eo_analytics_streams *h, catchup_t *cu, int t, int32_t p,
                          int64_t bad)
{
    if (p < 0 || p >= cu->at.n[t] || !cu->assigned[t][p] ||
        (cu->reset[t][p] && !cu->confirmed[t][p]))
        return false; /* not ours, or reset already and not read since */
    cu->reset[t][p] = true;
    cu->confirmed[t][p] = false;
    cu->at.next[t][p] = 0;
    pthread_mutex_lock(&h->lock);
    if (cu->stream)
        eo_ignore(eo_streams_enqueue(cu->stream, ITEM_RESET, (eo_sse_topic_t)t, p, 0, NULL, 0));
    pthread_mutex_unlock(&h->lock);
    eo_counter_add(h->resets, 1);
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", (int)p);
    snprintf(off, sizeof off, "%lld", (long long)bad);
    eo_log_info("event stream resume: a position the topic does not have; from its earliest "
                "record",
                "topic", h->topics[t], "partition", part, "offset", off, NULL);
    return true;
}

/* Before a catch-up's consumer is assigned: the positions outside what Kafka has (below the
 * partition's first offset, or past its end) are reset now, so that a resume from positions
 * Kafka does not have costs no error per partition, each of which needs a new consumer. A
 * position that leaves the range after this check (retention) still fails with an
 * offset-out-of-range and is reset then. Kafka not answering ends the check: the error path
 * remains. */
static void catchup_precheck(struct eo_analytics_streams *h, catchup_t *cu)
{
    for (int t = 0; t < EO_SSE_TOPICS; t++)
        for (uint16_t i = 0; i < cu->at.n[t]; i++) {
            if (!cu->assigned[t][i] || (cu->reset[t][i] && !cu->confirmed[t][i]))
                continue;
            int64_t lo = 0, hi = 0, at = cu->at.next[t][i];
            if (rd_kafka_query_watermark_offsets(cu->rk, h->topics[t], i, &lo, &hi,
                                                 WATERMARK_TIMEOUT_MS))
                return;
            if (at < lo || at > hi)
                eo_ignore(catchup_reset(h, cu, t, i, at));
        }
}

/* Makes the catch-up's consumer (again) and assigns its partitions: at its positions, the
 * partitions reset and not read since at their earliest. Returns 0 or EO_EIO (reason in err). */
static int catchup_connect(struct eo_analytics_streams *h, catchup_t *cu, char *err, size_t errlen)
{
    consumer_free(cu->rk);
    cu->rk = consumer_new(h, "eventops-analytics-stream-catchup", "error", "1024", err, errlen);
    if (!cu->rk)
        return EO_EIO;
    catchup_precheck(h, cu);
    bool from_start[EO_SSE_TOPICS][EO_SSE_MAX_PARTITIONS];
    for (int t = 0; t < EO_SSE_TOPICS; t++)
        for (int i = 0; i < EO_SSE_MAX_PARTITIONS; i++)
            from_start[t][i] = cu->reset[t][i] && !cu->confirmed[t][i];
    if (catchup_assign(h, cu, from_start) < 0) {
        snprintf(err, errlen, "kafka assign failed");
        return EO_EIO;
    }
    cu->rebuild = false;
    return 0;
}

/* One message of a catch-up: into its stream's queue. */
static void catchup_take(struct eo_analytics_streams *h, catchup_t *cu, rd_kafka_message_t *m,
                         int64_t *last_warn)
{
    int t = topic_of(h, m);
    int32_t p = m->partition;
    if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
        m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
        /* The consumer is made again after the batch (librdkafka 2.0 asserts when it is
         * reassigned while a partition it stopped on the error is still stopping). */
        if (t >= 0 && catchup_reset(h, cu, t, p, m->offset))
            cu->rebuild = true;
        return;
    }
    if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        warn_consume(last_warn, "catch-up", m);
        return;
    }
    if (t < 0 || p < 0 || p >= cu->at.n[t] || !cu->assigned[t][p] || m->offset < 0)
        return;
    bool eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
    int64_t next = eof ? m->offset : m->offset + 1;
    if (next > cu->at.next[t][p] || !cu->confirmed[t][p])
        cu->at.next[t][p] = next;
    cu->confirmed[t][p] = true;
    char tenant[37], rule[37];
    pthread_mutex_lock(&h->lock);
    stream_t *s = cu->stream;
    int r = 0;
    if (s && !eof && m->len > 0 && m->len <= EO_ANALYTICS_ROW_RECORD_MAX &&
        eo_sse_key_parse(m->key, m->key_len, tenant, rule) == 0 &&
        eo_streams_match(s, tenant, rule))
        r = eo_streams_enqueue(s, ITEM_RECORD, (eo_sse_topic_t)t, p, m->offset, m->payload, m->len);
    else if (s)
        r = eo_streams_enqueue(s, ITEM_POSITION, (eo_sse_topic_t)t, p, next, NULL, 0);
    if (r < 0 && s)
        s->dead = true; /* out of memory: it ends (the next tick wakes it) and resumes */
    pthread_mutex_unlock(&h->lock);
}

/* DONE once every partition the catch-up reads is confirmed at or past the buffer's base. */
static void catchup_check(struct eo_analytics_streams *h, catchup_t *cu)
{
    pthread_mutex_lock(&h->lock);
    stream_t *s = cu->stream;
    bool done = s != NULL;
    for (int t = 0; done && t < EO_SSE_TOPICS; t++)
        for (uint16_t i = 0; done && i < cu->at.n[t]; i++)
            if (cu->assigned[t][i])
                done = cu->confirmed[t][i] && cu->at.next[t][i] >= h->base.next[t][i];
    if (done && eo_streams_enqueue(s, ITEM_DONE, EO_SSE_WINDOWS, 0, 0, NULL, 0) == 0) {
        s->cu = NULL;
        cu->stream = NULL;
        cu->done = true;
    }
    pthread_mutex_unlock(&h->lock);
}

/* Reads each catch-up while its stream has room; destroys those that are done or orphaned. */
static void poll_catchups(struct eo_analytics_streams *h, int64_t *last_warn)
{
    catchup_t **link = &h->catchups;
    while (*link) {
        catchup_t *cu = *link;
        pthread_mutex_lock(&h->lock);
        bool gone = cu->stream == NULL;
        pthread_mutex_unlock(&h->lock);
        if (gone) {
            *link = cu->next;
            h->ncatchups--;
            eo_streams_catchup_free(cu);
            continue;
        }
        for (int i = 0; cu->rk && !cu->rebuild && i < POLL_BATCH; i++) {
            pthread_mutex_lock(&h->lock);
            bool room = cu->stream && !cu->stream->dead && cu->stream->q_bytes < h->max_backlog;
            pthread_mutex_unlock(&h->lock);
            if (!room)
                break;
            rd_kafka_message_t *m = rd_kafka_consumer_poll(cu->rk, 0);
            if (!m)
                break;
            catchup_take(h, cu, m, last_warn);
            rd_kafka_message_destroy(m);
        }
        char err[512];
        if ((cu->rebuild || !cu->rk) && catchup_connect(h, cu, err, sizeof err) < 0) {
            consumer_free(cu->rk); /* tried again on the next round */
            cu->rk = NULL;
            warn_text(last_warn, "a catch-up consumer could not be made again", err);
        }
        catchup_check(h, cu);
        link = &cu->next;
    }
}

/* Starts catch-ups for the streams that want one, up to MAX_CATCHUPS at once. */
static void start_catchups(struct eo_analytics_streams *h, int64_t now, int64_t *next_try)
{
    if (h->ncatchups >= MAX_CATCHUPS || now < *next_try)
        return;
    catchup_t *made[MAX_CATCHUPS];
    size_t nmade = 0;
    pthread_mutex_lock(&h->lock);
    for (stream_t *s = h->streams; s && h->ncatchups + nmade < MAX_CATCHUPS; s = s->next) {
        if (s->mode != MODE_CATCH_UP || !s->cu_wanted || s->dead)
            continue;
        catchup_t *cu = calloc(1, sizeof *cu);
        if (!cu)
            break;
        s->cu_wanted = false;
        cu->at = s->pos;
        size_t n = eo_sse_pos_outside(&s->pos, &h->base, &h->head, cu->assigned);
        if (n == 0) { /* the buffer holds it after all */
            free(cu);
            eo_ignore(eo_streams_enqueue(s, ITEM_DONE, EO_SSE_WINDOWS, 0, 0, NULL, 0));
            continue;
        }
        cu->stream = s;
        s->cu = cu;
        made[nmade++] = cu;
    }
    pthread_mutex_unlock(&h->lock);
    for (size_t i = 0; i < nmade; i++) {
        catchup_t *cu = made[i];
        char err[512];
        if (catchup_connect(h, cu, err, sizeof err) < 0) {
            eo_log_warn("event streams: a catch-up consumer could not be made; retrying", "error",
                        err, NULL);
            pthread_mutex_lock(&h->lock);
            if (cu->stream) {
                cu->stream->cu = NULL;
                cu->stream->cu_wanted = true;
            }
            pthread_mutex_unlock(&h->lock);
            eo_streams_catchup_free(cu);
            *next_try = now + RETRY_US;
            continue;
        }
        cu->next = h->catchups;
        h->catchups = cu;
        h->ncatchups++;
    }
}

/* ---- the thread ---- */

void *eo_streams_reader(void *arg)
{
    struct eo_analytics_streams *h = arg;
    eo_log_thread_role("analytics");
    int64_t next_tail_try = 0, next_cu_try = 0, last_warn = 0, last_tail_warn = 0;
    char last_err[512] = "";
    while (!atomic_load(&h->stopping)) {
        int64_t now = eo_clock_mono_us();
        if (!h->tail && now >= next_tail_try) {
            char err[512] = "";
            if (tail_start(h, err, sizeof err) < 0) {
                if (strcmp(err, last_err) != 0 || now - last_tail_warn >= WARN_EVERY_US) {
                    eo_log_warn("event streams: cannot read the windows and summaries topics yet",
                                "error", err, NULL);
                    last_tail_warn = now;
                    snprintf(last_err, sizeof last_err, "%s", err);
                }
                next_tail_try = now + RETRY_US;
            }
        }
        if (h->tail)
            poll_tail(h, h->ncatchups ? 5 : 100, &last_warn);
        else
            eo_clock_sleep_ms(100);
        if (atomic_load(&h->ready)) {
            poll_catchups(h, &last_warn);
            start_catchups(h, eo_clock_mono_us(), &next_cu_try);
        }
        eo_streams_tick(h, eo_clock_mono_us());
    }
    while (h->catchups) {
        catchup_t *cu = h->catchups;
        h->catchups = cu->next;
        eo_streams_catchup_free(cu);
    }
    h->ncatchups = 0;
    consumer_free(h->tail);
    h->tail = NULL;
    return NULL;
}
