/* Consume-transform-produce over Kafka: a consumer-group member and a transactional producer
 * whose transactions carry the consumed offsets (exactly once for read_committed readers). What
 * a consuming role (the processor; the analytics role next) needs from Kafka, and nothing of
 * what it does with the records.
 *
 * - Polling: eo_kafka_consumer_poll() returns one message; messages fetched while the owner
 *   served the group with its partitions paused (eo_kafka_consumer_serve_paused) are held and
 *   returned first by eo_kafka_consumer_take_held().
 * - Rebalance: an assignment is taken and its partitions resumed (librdkafka keeps a pause
 *   across a revocation); a revocation drops the held messages and, unless a batch is in hand
 *   (eo_kafka_consumer_batch_begin), calls the owner's on_revoke to drop what it polled; a
 *   revocation while a batch is in hand marks the batch lost (eo_kafka_consumer_batch_lost).
 * - Transactions: begin, record the consumed messages, produce (dead letters or results), send
 *   the offsets and commit. No call blocks longer than call_timeout_ms
 *   (EVENTOPS_KAFKA_CALL_TIMEOUT_MS); a retriable failure is retried while the group is served,
 *   up to txn_timeout_ms (EVENTOPS_KAFKA_TXN_TIMEOUT_MS). A failed transaction is aborted and
 *   the consumer goes back to the committed offsets at the next eo_kafka_consumer_heal().
 * - Rebuilds (ADR-16): a client librdkafka made unusable, or a transaction of unknown outcome,
 *   is rebuilt by eo_kafka_consumer_heal(): the producer first (a new one with the same
 *   transactional.id; init_transactions settles the old transaction), then the consumer seeks
 *   to the committed offsets; a new consumer (a new group member) starts from them by itself.
 *   When a client cannot be built, or the new producer is fenced, the owner's stop flag is set
 *   and the process is asked to stop with a failure.
 *
 * Threads: everything here runs on the owner's loop thread (callbacks included: they run inside
 * the poll), except eo_kafka_consumer_usable(), an atomic read for any thread. Both clients are
 * used by that one thread only, so a rebuild swaps them without a lock. */
#ifndef EO_STREAM_KAFKA_CONSUMER_H
#define EO_STREAM_KAFKA_CONSUMER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "core/error.h"
#include "core/metrics.h"
#include "stream/kafka_lag.h"

typedef struct eo_kafka_consumer eo_kafka_consumer_t;

/* The counters of the module, registered by eo_kafka_consumer_register_metrics() into a
 * registry the owner keeps: eventops_kafka_client_rebuilds_total{role, client} and
 * eventops_<role>_transactions_aborted_total{role}. */
typedef struct {
    eo_counter_t *rebuilds[2]; /* consumer, producer */
    eo_counter_t *aborts;
} eo_kafka_consumer_metrics_t;

typedef struct {
    const char *brokers;
    const char *group; /* group.id */
    const char *topic; /* the subscribed topic */
    const char *consumer_client_id;
    const char *producer_client_id;
    const char *transactional_id;
    int64_t session_timeout_ms;
    int64_t fetch_min_bytes;    /* fetch.min.bytes (0: librdkafka's 1) */
    int64_t prefetch_kbytes;    /* queued.max.messages.kbytes (0: librdkafka's default) */
    int64_t call_timeout_ms;    /* bound of each transaction call and of a rewind */
    int64_t txn_timeout_ms;     /* bound of a whole transaction; also transaction.timeout.ms */
    const char *consumer_fault; /* core/fault.h names that make a client fail fatally */
    const char *producer_fault;
    eo_kafka_lag_t *lag;                        /* told of each assignment (borrowed) */
    const eo_kafka_consumer_metrics_t *metrics; /* borrowed; counters may be NULL */
    atomic_bool *stopping; /* the owner's stop flag: read, and set when the process must stop */
    /* Called on a revocation while no batch is in hand: drop what was polled (it was not
     * committed; the partitions' next owner reads it again). */
    void (*on_revoke)(void *ud);
    void *ud;
} eo_kafka_consumer_options_t;

/* Registers the module's counters for role into m (out keeps them). */
void eo_kafka_consumer_register_metrics(eo_metrics_t *m, const char *role,
                                        eo_kafka_consumer_metrics_t *out);

/* Builds the consumer (subscribed to opt->topic) and the producer, and initialises its
 * transactions (30 s). The option strings are copied; lag, metrics, stopping and ud are
 * borrowed. Returns 0, EO_EIO (a client could not be built), EO_EUNAVAIL (init_transactions
 * failed) or EO_ENOMEM, with the reason in err. The caller owns *out. */
int eo_kafka_consumer_new(const eo_kafka_consumer_options_t *opt, eo_kafka_consumer_t **out,
                          char *err, size_t errlen) EO_MUST_CHECK;

/* Leaves the group unless the consumer failed (the last poll is done). */
void eo_kafka_consumer_close(eo_kafka_consumer_t *kc);

/* Destroys the clients (flushing the producer for up to 5 s) and the held messages. NULL
 * accepted. */
void eo_kafka_consumer_free(eo_kafka_consumer_t *kc);

/* One message, owned by the caller (rd_kafka_message_destroy); NULL on timeout, on an error
 * (logged, except end-of-partition), and once the consumer failed fatally (it is then marked
 * for a rebuild and not polled again). */
rd_kafka_message_t *eo_kafka_consumer_poll(eo_kafka_consumer_t *kc, int timeout_ms);

/* The oldest message held by serve_paused, owned by the caller; NULL when none is held. */
rd_kafka_message_t *eo_kafka_consumer_take_held(eo_kafka_consumer_t *kc);

/* Serves the group protocol for up to ms with the assigned partitions paused: rebalance
 * callbacks run, and messages fetched before the pause are held for the next batch. Returns
 * early on a revocation of the batch in hand, a consumer failure, or a stop after a failure. */
void eo_kafka_consumer_serve_paused(eo_kafka_consumer_t *kc, int64_t ms);

/* A batch is in hand from begin to end: a revocation meanwhile marks it lost instead of
 * calling on_revoke. end clears the mark. */
void eo_kafka_consumer_batch_begin(eo_kafka_consumer_t *kc);
void eo_kafka_consumer_batch_end(eo_kafka_consumer_t *kc);

/* True when the batch in hand must be dropped uncommitted: its partitions were revoked or the
 * consumer failed. */
bool eo_kafka_consumer_batch_lost(const eo_kafka_consumer_t *kc);

/* For each partition p < n of the topic: whether it is assigned to this consumer and read up to
 * the high watermark last reported by the brokers (no broker call). The position is the
 * consumer's, or next[p] when the owner knows better (the offset after the last record it
 * committed: the consumer has no position before its first record; -1 when unknown). A
 * partition that is not assigned, or not caught up, or whose high watermark is not known yet,
 * is false. */
void eo_kafka_consumer_caught_up(eo_kafka_consumer_t *kc, const int64_t *next, bool *out, size_t n);

/* True when the consumer failed fatally and waits for a rebuild. */
bool eo_kafka_consumer_failed(const eo_kafka_consumer_t *kc);

/* Before a batch: rebuilds failed clients and rewinds to the committed offsets when needed
 * (fault injection points first). Returns true when both clients are usable and positioned. */
bool eo_kafka_consumer_heal(eo_kafka_consumer_t *kc);

/* True while both clients are usable and no transaction is stuck. Any thread. */
bool eo_kafka_consumer_usable(const eo_kafka_consumer_t *kc);

/* Transactions. Each call returns 0, or EO_EIO when the transaction failed: it was then aborted
 * (or the producer marked for a rebuild) and the consumer will be rewound; the caller drops the
 * batch uncommitted and stops calling until the next eo_kafka_consumer_txn_begin(). */
int eo_kafka_consumer_txn_begin(eo_kafka_consumer_t *kc) EO_MUST_CHECK;

/* Records that m was consumed: the commit moves its partition's offset past it. */
void eo_kafka_consumer_txn_consumed(eo_kafka_consumer_t *kc, const rd_kafka_message_t *m);

/* Produces value (len bytes, copied) with key to topic in the transaction. headers, when not
 * NULL, is owned by the transaction afterwards (destroyed on failure). */
int eo_kafka_consumer_txn_produce(eo_kafka_consumer_t *kc, const char *topic, const void *key,
                                  size_t key_len, const void *value, size_t len,
                                  rd_kafka_headers_t *headers) EO_MUST_CHECK;

/* Produces the consumed message m unchanged (key and bytes) to the dead-letter topic, with the
 * headers eventops-error-code, -message, -field, eventops-source-topic, -partition, -offset. */
int eo_kafka_consumer_txn_dead_letter(eo_kafka_consumer_t *kc, const char *topic,
                                      const rd_kafka_message_t *m, const char *code,
                                      const char *message, const char *field) EO_MUST_CHECK;

/* Sends the recorded offsets (if any) with the group's metadata and commits. */
int eo_kafka_consumer_txn_commit(eo_kafka_consumer_t *kc) EO_MUST_CHECK;

#endif
