/* Integration test: Debian's librdkafka (2.0.2) against the stack's Kafka (4.1.1).
 *
 * librdkafka before 2.11.1 enables a protocol feature only when the broker still accepts the
 * oldest request version the feature was introduced with (librdkafka issue #4948); Kafka 4.0
 * removed many old versions (KIP-896), so an old client can silently lose the idempotent
 * producer, v2 message batches, consumer groups or transactions. This test proves that each
 * of them really works here: it checks librdkafka's own feature decisions in its debug log
 * (debug=feature,eos,cgrp) and exercises every feature end to end on fresh topics.
 *
 * The tests run in order and share the topics created by the group setup:
 *   1. idempotent producer: 1000 messages, acks=all, all persisted, no fatal error, PID set;
 *   2. consumer group: all 1000 read, synchronous commit, committed offsets, a second member
 *      resumes at the committed offsets;
 *   3. transactions: consume-transform-produce with send_offsets_to_transaction; an aborted
 *      transaction is invisible to read_committed, committed ones are visible. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define MSG_COUNT 1000
#define PARTITIONS 3
#define TXN_MSGS 10
#define LOG_MAX ((size_t)64 << 20)

/* ---- librdkafka's log, captured from every client (log_cb runs on librdkafka threads) ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_text; /* guarded by log_lock */
static size_t log_len, log_cap;

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    const char *name = rk ? rd_kafka_name(rk) : "-";
    size_t need = strlen(name) + strlen(fac) + strlen(buf) + 8;
    pthread_mutex_lock(&log_lock);
    if (log_len + need + 1 > log_cap && log_cap < LOG_MAX) {
        size_t cap = log_cap ? log_cap * 2 : (size_t)1 << 20;
        while (cap < log_len + need + 1)
            cap *= 2;
        char *p = realloc(log_text, cap);
        if (p) {
            log_text = p;
            log_cap = cap;
        }
    }
    if (log_len + need + 1 <= log_cap) {
        int n =
            snprintf(log_text + log_len, log_cap - log_len, "%s|%d|%s|%s\n", name, level, fac, buf);
        if (n > 0)
            log_len += (size_t)n;
    }
    pthread_mutex_unlock(&log_lock);
}

/* True when a captured line of client `client` (rd_kafka_name, or NULL for any) contains
 * every one of the NULL-terminated needles. */
static bool log_has(const char *client, ...)
{
    const char *needles[8];
    size_t nn = 0;
    va_list ap;
    va_start(ap, client);
    for (const char *s; nn < 8 && (s = va_arg(ap, const char *));)
        needles[nn++] = s;
    va_end(ap);
    bool found = false;
    pthread_mutex_lock(&log_lock);
    for (char *line = log_text; line && line < log_text + log_len && !found;) {
        char *end = memchr(line, '\n', (size_t)(log_text + log_len - line));
        if (!end)
            break;
        *end = '\0';
        bool all =
            !client || (!strncmp(line, client, strlen(client)) && line[strlen(client)] == '|');
        for (size_t i = 0; all && i < nn; i++)
            all = strstr(line, needles[i]) != NULL;
        *end = '\n';
        found = all;
        line = end + 1;
    }
    pthread_mutex_unlock(&log_lock);
    return found;
}

/* Prints the captured lines containing needle (at most max of them), for diagnosis. */
static void log_print_matching(const char *needle, int max)
{
    pthread_mutex_lock(&log_lock);
    int shown = 0;
    for (char *line = log_text; line && line < log_text + log_len && shown < max;) {
        char *end = memchr(line, '\n', (size_t)(log_text + log_len - line));
        if (!end)
            break;
        *end = '\0';
        if (strstr(line, needle)) {
            fprintf(stderr, "  log: %s\n", line);
            shown++;
        }
        *end = '\n';
        line = end + 1;
    }
    pthread_mutex_unlock(&log_lock);
}

/* ---- shared state ---- */

static char topic_in[IT_NAME_MAX];  /* the 1000 messages */
static char topic_out[IT_NAME_MAX]; /* transactional output */
static char group_main[IT_NAME_MAX];
static char group_txn[IT_NAME_MAX];
static int64_t produced_end[PARTITIONS]; /* next offset per partition after the 1000 messages */
static bool produced_ok;

static int group_setup(void **state)
{
    fprintf(stderr, "librdkafka %s (0x%08x)\n", rd_kafka_version_str(), rd_kafka_version());
    it_unique_name("eo_it_group", group_main, sizeof group_main);
    it_unique_name("eo_it_txgroup", group_txn, sizeof group_txn);
    if (it_topic_create("eo_it_compat_in", PARTITIONS, topic_in, sizeof topic_in) < 0 ||
        it_topic_create("eo_it_compat_out", PARTITIONS, topic_out, sizeof topic_out) < 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    it_topic_delete(topic_in);
    it_topic_delete(topic_out);
    pthread_mutex_lock(&log_lock);
    free(log_text);
    log_text = NULL;
    log_len = log_cap = 0;
    pthread_mutex_unlock(&log_lock);
    return 0;
}

/* A configuration with the brokers, the log callback and debug contexts, plus kv pairs. */
static rd_kafka_conf_t *conf_new(const char *const *kv)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *base[] = {"bootstrap.servers", it_kafka_brokers(), "debug", "feature,eos,cgrp",
                          NULL};
    for (const char *const *p = base; *p; p += 2)
        assert_int_equal(rd_kafka_conf_set(conf, p[0], p[1], err, sizeof err), RD_KAFKA_CONF_OK);
    for (const char *const *p = kv; p && *p; p += 2) {
        if (rd_kafka_conf_set(conf, p[0], p[1], err, sizeof err) != RD_KAFKA_CONF_OK)
            fail_msg("%s=%s: %s", p[0], p[1], err);
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    return conf;
}

static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (!rk)
        fail_msg("rd_kafka_new: %s", err);
    return rk; /* conf is now owned by rk */
}

/* ---- 1. idempotent producer ---- */

typedef struct {
    int delivered, failed, not_persisted;
    int64_t next_offset[PARTITIONS];
    rd_kafka_resp_err_t first_err;
} dr_stats_t;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    dr_stats_t *st = opaque;
    if (m->err) {
        if (!st->failed++)
            st->first_err = m->err;
        return;
    }
    st->delivered++;
    if (rd_kafka_message_status(m) != RD_KAFKA_MSG_STATUS_PERSISTED)
        st->not_persisted++;
    if (m->partition >= 0 && m->partition < PARTITIONS &&
        m->offset + 1 > st->next_offset[m->partition])
        st->next_offset[m->partition] = m->offset + 1;
}

/* Prints the broker's ApiVersion answer for the APIs whose old versions matter here. */
static void print_api_summary(void)
{
    static const char *const apis[] = {"ApiKey Produce ",         "ApiKey Fetch ",
                                       "ApiKey ListOffsets ",     "ApiKey Metadata ",
                                       "ApiKey OffsetCommit ",    "ApiKey OffsetFetch ",
                                       "ApiKey FindCoordinator ", "ApiKey JoinGroup ",
                                       "ApiKey SyncGroup ",       "ApiKey Heartbeat ",
                                       "ApiKey LeaveGroup ",      "ApiKey ApiVersion ",
                                       "ApiKey InitProducerId ",  "ApiKey AddPartitionsToTxn ",
                                       "ApiKey AddOffsetsToTxn ", "ApiKey EndTxn ",
                                       "ApiKey TxnOffsetCommit ", NULL};
    fprintf(stderr, "librdkafka %s against the broker at %s\n", rd_kafka_version_str(),
            it_kafka_brokers());
    fprintf(stderr, "broker version: not carried by the Kafka protocol; ApiVersion ranges:\n");
    for (const char *const *a = apis; *a; a++)
        log_print_matching(*a, 1);
    fprintf(stderr, "feature decisions of the producer:\n");
    log_print_matching("feature ", 14);
    fprintf(stderr, "producer id:\n");
    log_print_matching("PID{Id:", 3);
}

static void test_idempotent_producer(void **state)
{
    const char *kv[] = {"enable.idempotence", "true", "acks", "all", "linger.ms", "5", NULL};
    rd_kafka_conf_t *conf = conf_new(kv);
    dr_stats_t st = {0};
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, &st);
    char name[64];
    rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, conf);
    snprintf(name, sizeof name, "%s", rd_kafka_name(rk));

    for (int i = 0; i < MSG_COUNT; i++) {
        char key[16], val[32];
        snprintf(key, sizeof key, "k%04d", i);
        snprintf(val, sizeof val, "message %d", i);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic_in), RD_KAFKA_V_PARTITION(i % PARTITIONS),
                    RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(val, strlen(val)),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 100);
        assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_poll(rk, 0);
    }
    assert_int_equal(rd_kafka_flush(rk, 60000), RD_KAFKA_RESP_ERR_NO_ERROR);
    char fatal[512] = "";
    rd_kafka_resp_err_t fe = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
    print_api_summary();
    if (st.failed)
        fprintf(stderr, "first delivery error: %s\n", rd_kafka_err2str(st.first_err));
    if (fe)
        fprintf(stderr, "fatal error: %s\n", fatal);

    assert_int_equal(st.failed, 0);
    assert_int_equal(st.delivered, MSG_COUNT);
    assert_int_equal(st.not_persisted, 0);
    assert_int_equal(fe, RD_KAFKA_RESP_ERR_NO_ERROR);
    int64_t total = 0;
    for (int p = 0; p < PARTITIONS; p++) {
        produced_end[p] = st.next_offset[p];
        total += st.next_offset[p];
    }
    /* fresh topic: offsets start at 0, so the end offsets add up to the count (no duplicates) */
    assert_int_equal(total, MSG_COUNT);

    /* librdkafka's own decisions, from its debug log */
    assert_true(log_has(name, "Enabling feature IdempotentProducer", NULL));
    assert_false(log_has(name, "Disabling feature IdempotentProducer", NULL));
    assert_true(log_has(name, "Enabling feature MsgVer2", NULL));
    assert_false(log_has(name, "Disabling feature MsgVer2", NULL));
    if (!log_has(name, "Acquired PID{Id:", NULL)) {
        log_print_matching("PID", 20);
        fail_msg("the idempotent producer did not log an acquired PID");
    }
    assert_false(log_has(name, "PID{Invalid}", "Acquired", NULL));
    rd_kafka_destroy(rk);
    produced_ok = true;
}

/* ---- 2. consumer group ---- */

typedef struct {
    int messages, eofs, errors;
    bool seen[MSG_COUNT];
    int dup;
    int64_t next_offset[PARTITIONS];
    int64_t eof_offset[PARTITIONS];
    int64_t min_offset[PARTITIONS];
} consumed_t;

static void consumed_init(consumed_t *c)
{
    memset(c, 0, sizeof *c);
    for (int p = 0; p < PARTITIONS; p++) {
        c->eof_offset[p] = -1;
        c->min_offset[p] = INT64_MAX;
    }
}

/* Polls until every partition reached EOF after want messages (want < 0: until all EOFs) or the
 * deadline passes. */
static void consume_until(rd_kafka_t *rk, consumed_t *c, int want, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    bool eof[PARTITIONS] = {false};
    while (it_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (m->partition >= 0 && m->partition < PARTITIONS) {
                eof[m->partition] = true;
                c->eof_offset[m->partition] = m->offset;
            }
            c->eofs++;
        } else if (m->err) {
            fprintf(stderr, "consumer error: %s\n", rd_kafka_message_errstr(m));
            c->errors++;
        } else {
            c->messages++;
            int k;
            if (m->key_len == 5 && sscanf((const char *)m->key, "k%4d", &k) == 1 && k >= 0 &&
                k < MSG_COUNT) {
                c->dup += c->seen[k];
                c->seen[k] = true;
            }
            if (m->partition >= 0 && m->partition < PARTITIONS) {
                if (m->offset + 1 > c->next_offset[m->partition])
                    c->next_offset[m->partition] = m->offset + 1;
                if (m->offset < c->min_offset[m->partition])
                    c->min_offset[m->partition] = m->offset;
                eof[m->partition] = false;
            }
        }
        rd_kafka_message_destroy(m);
        bool all = true;
        for (int p = 0; p < PARTITIONS; p++)
            all = all && eof[p];
        if (all && (want < 0 || c->messages >= want))
            return;
    }
}

static rd_kafka_t *group_consumer(const char *group, const char *isolation)
{
    const char *kv[] = {"group.id",
                        group,
                        "enable.auto.commit",
                        "false",
                        "auto.offset.reset",
                        "earliest",
                        "enable.partition.eof",
                        "true",
                        "isolation.level",
                        isolation,
                        "session.timeout.ms",
                        "10000",
                        NULL};
    rd_kafka_t *rk = client_new(RD_KAFKA_CONSUMER, conf_new(kv));
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static void subscribe(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(t, topic, RD_KAFKA_PARTITION_UA);
    assert_int_equal(rd_kafka_subscribe(rk, t), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(t);
}

static rd_kafka_topic_partition_list_t *all_partitions(const char *topic)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(l, topic, p);
    return l;
}

static void test_consumer_group(void **state)
{
    assert_true(produced_ok);
    rd_kafka_t *c1 = group_consumer(group_main, "read_committed");
    char name[64];
    snprintf(name, sizeof name, "%s", rd_kafka_name(c1));
    subscribe(c1, topic_in);
    consumed_t got;
    consumed_init(&got);
    consume_until(c1, &got, MSG_COUNT, 90000);
    if (got.messages != MSG_COUNT)
        log_print_matching("feature BrokerBalancedConsumer", 4);
    assert_int_equal(got.errors, 0);
    assert_int_equal(got.messages, MSG_COUNT);
    assert_int_equal(got.dup, 0);
    for (int i = 0; i < MSG_COUNT; i++)
        assert_true(got.seen[i]);
    for (int p = 0; p < PARTITIONS; p++)
        assert_int_equal(got.next_offset[p], produced_end[p]);

    /* synchronous commit of the current positions */
    assert_int_equal(rd_kafka_commit(c1, NULL, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_t *committed = all_partitions(topic_in);
    assert_int_equal(rd_kafka_committed(c1, committed, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int i = 0; i < committed->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &committed->elems[i];
        assert_int_equal(tp->err, RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal(tp->offset, produced_end[tp->partition]);
        int64_t lo = -1, hi = -1;
        assert_int_equal(
            rd_kafka_query_watermark_offsets(c1, topic_in, tp->partition, &lo, &hi, 10000),
            RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal(tp->offset, hi);
    }
    rd_kafka_topic_partition_list_destroy(committed);
    assert_true(log_has(name, "Enabling feature BrokerBalancedConsumer", NULL));
    assert_false(log_has(name, "Disabling feature BrokerBalancedConsumer", NULL));
    assert_true(log_has(name, "CGRP", NULL));
    assert_int_equal(rd_kafka_consumer_close(c1), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(c1);

    /* a new member of the same group starts at the committed offsets: nothing old */
    rd_kafka_t *c2 = group_consumer(group_main, "read_committed");
    subscribe(c2, topic_in);
    consumed_t again;
    consumed_init(&again);
    consume_until(c2, &again, -1, 60000);
    assert_int_equal(again.errors, 0);
    assert_int_equal(again.messages, 0);
    for (int p = 0; p < PARTITIONS; p++)
        assert_int_equal(again.eof_offset[p], produced_end[p]);

    /* and it does consume: five new messages arrive, at offsets past the committed ones */
    rd_kafka_t *prod = client_new(RD_KAFKA_PRODUCER,
                                  conf_new((const char *[]){"enable.idempotence", "true", NULL}));
    for (int i = 0; i < 5; i++) {
        char val[16];
        snprintf(val, sizeof val, "late %d", i);
        assert_int_equal(rd_kafka_producev(
                             prod, RD_KAFKA_V_TOPIC(topic_in), RD_KAFKA_V_PARTITION(i % PARTITIONS),
                             RD_KAFKA_V_VALUE(val, strlen(val)),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    assert_int_equal(rd_kafka_flush(prod, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(prod);
    consumed_t late;
    consumed_init(&late);
    consume_until(c2, &late, 5, 60000);
    assert_int_equal(late.messages, 5);
    for (int p = 0; p < PARTITIONS; p++)
        if (late.min_offset[p] != INT64_MAX)
            assert_true(late.min_offset[p] >= produced_end[p]);
    assert_int_equal(rd_kafka_commit(c2, NULL, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_consumer_close(c2), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(c2);
}

/* ---- 3. transactions ---- */

static void txn_ok(rd_kafka_error_t *e, const char *what)
{
    if (e) {
        fprintf(stderr, "%s: %s (fatal %d, retriable %d, abortable %d)\n", what,
                rd_kafka_error_string(e), rd_kafka_error_is_fatal(e),
                rd_kafka_error_is_retriable(e), rd_kafka_error_txn_requires_abort(e));
        rd_kafka_error_destroy(e);
        fail_msg("%s failed", what);
    }
}

static void produce_values(rd_kafka_t *rk, const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        char val[32];
        snprintf(val, sizeof val, "%s-%d", prefix, i);
        assert_int_equal(
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic_out), RD_KAFKA_V_PARTITION(i % PARTITIONS),
                              RD_KAFKA_V_VALUE(val, strlen(val)),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
            RD_KAFKA_RESP_ERR_NO_ERROR);
    }
}

/* Reads topic_out from the beginning with the given isolation level (no group); counts the
 * values starting with "commit-" and "abort-". */
static void read_out(const char *isolation, int *committed, int *aborted, int *other)
{
    char group[IT_NAME_MAX];
    it_unique_name("eo_it_reader", group, sizeof group); /* required by librdkafka, never joined */
    const char *kv[] = {"group.id",
                        group,
                        "enable.auto.commit",
                        "false",
                        "enable.partition.eof",
                        "true",
                        "isolation.level",
                        isolation,
                        NULL};
    rd_kafka_t *rk = client_new(RD_KAFKA_CONSUMER, conf_new(kv));
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = all_partitions(topic_out);
    for (int i = 0; i < l->cnt; i++)
        l->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, l), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(l);
    *committed = *aborted = *other = 0;
    int64_t deadline = it_now_ms() + 60000;
    bool eof[PARTITIONS] = {false};
    int eofs = 0;
    while (eofs < PARTITIONS && it_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (m->partition >= 0 && m->partition < PARTITIONS && !eof[m->partition]) {
                eof[m->partition] = true;
                eofs++;
            }
        } else if (m->err) {
            fprintf(stderr, "read_out: %s\n", rd_kafka_message_errstr(m));
            (*other)++;
        } else if (m->len >= 7 && !memcmp(m->payload, "commit-", 7)) {
            (*committed)++;
        } else if (m->len >= 6 && !memcmp(m->payload, "abort-", 6)) {
            (*aborted)++;
        } else {
            (*other)++;
        }
        rd_kafka_message_destroy(m);
    }
    assert_int_equal(eofs, PARTITIONS);
    rd_kafka_destroy(rk);
}

static void test_transactions(void **state)
{
    assert_true(produced_ok);
    char txn_id[IT_NAME_MAX];
    it_unique_name("eo_it_txn", txn_id, sizeof txn_id);
    const char *pkv[] = {"transactional.id", txn_id, "transaction.timeout.ms", "60000", NULL};
    rd_kafka_t *prod = client_new(RD_KAFKA_PRODUCER, conf_new(pkv));
    char pname[64];
    snprintf(pname, sizeof pname, "%s", rd_kafka_name(prod));
    txn_ok(rd_kafka_init_transactions(prod, 60000), "init_transactions");
    assert_true(log_has(pname, "Enabling feature IdempotentProducer", NULL));
    assert_false(log_has(pname, "Disabling feature IdempotentProducer", NULL));
    assert_true(log_has(pname, "Acquired PID{Id:", NULL));

    /* the input side: a group member reading topic_in, whose offsets go into the transaction */
    rd_kafka_t *cons = group_consumer(group_txn, "read_committed");
    subscribe(cons, topic_in);
    consumed_t in;
    consumed_init(&in);
    consume_until(cons, &in, MSG_COUNT + 5, 90000);
    assert_int_equal(in.errors, 0);
    assert_int_equal(in.messages, MSG_COUNT + 5);

    /* committed transaction with the consumer's offsets */
    txn_ok(rd_kafka_begin_transaction(prod), "begin_transaction 1");
    produce_values(prod, "commit-a", TXN_MSGS);
    rd_kafka_topic_partition_list_t *pos = all_partitions(topic_in);
    assert_int_equal(rd_kafka_position(cons, pos), RD_KAFKA_RESP_ERR_NO_ERROR);
    int64_t sent[PARTITIONS];
    for (int i = 0; i < pos->cnt; i++) {
        assert_true(pos->elems[i].offset >= 0);
        sent[pos->elems[i].partition] = pos->elems[i].offset;
    }
    rd_kafka_consumer_group_metadata_t *cgmd = rd_kafka_consumer_group_metadata(cons);
    assert_non_null(cgmd);
    txn_ok(rd_kafka_send_offsets_to_transaction(prod, pos, cgmd, 30000),
           "send_offsets_to_transaction");
    rd_kafka_consumer_group_metadata_destroy(cgmd);
    rd_kafka_topic_partition_list_destroy(pos);
    txn_ok(rd_kafka_commit_transaction(prod, 60000), "commit_transaction 1");

    /* aborted transaction */
    txn_ok(rd_kafka_begin_transaction(prod), "begin_transaction 2");
    produce_values(prod, "abort", TXN_MSGS);
    assert_int_equal(rd_kafka_flush(prod, 30000), RD_KAFKA_RESP_ERR_NO_ERROR); /* on the log */
    txn_ok(rd_kafka_abort_transaction(prod, 60000), "abort_transaction");

    /* another committed transaction after the abort */
    txn_ok(rd_kafka_begin_transaction(prod), "begin_transaction 3");
    produce_values(prod, "commit-b", TXN_MSGS);
    txn_ok(rd_kafka_commit_transaction(prod, 60000), "commit_transaction 3");
    char fatal[512] = "";
    assert_int_equal(rd_kafka_fatal_error(prod, fatal, sizeof fatal), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(prod);

    /* the offsets sent in transaction 1 are the group's committed offsets */
    rd_kafka_topic_partition_list_t *committed = all_partitions(topic_in);
    assert_int_equal(rd_kafka_committed(cons, committed, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int i = 0; i < committed->cnt; i++) {
        assert_int_equal(committed->elems[i].err, RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal(committed->elems[i].offset, sent[committed->elems[i].partition]);
    }
    rd_kafka_topic_partition_list_destroy(committed);
    assert_int_equal(rd_kafka_consumer_close(cons), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(cons);

    int c, a, o;
    read_out("read_committed", &c, &a, &o);
    fprintf(stderr, "read_committed: %d committed, %d aborted, %d other\n", c, a, o);
    assert_int_equal(c, 2 * TXN_MSGS);
    assert_int_equal(a, 0);
    assert_int_equal(o, 0);
    /* the aborted records did reach the log: read_uncommitted sees them */
    read_out("read_uncommitted", &c, &a, &o);
    fprintf(stderr, "read_uncommitted: %d committed, %d aborted, %d other\n", c, a, o);
    assert_int_equal(c, 2 * TXN_MSGS);
    assert_int_equal(a, TXN_MSGS);
    assert_int_equal(o, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idempotent_producer),
        cmocka_unit_test(test_consumer_group),
        cmocka_unit_test(test_transactions),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
