/* The event streams' shared state (see stream.h), for its two halves only: stream.c (the
 * buffer of recent records, the streams and their HTTP side) and stream_kafka.c (the reader
 * thread: the tail of both topics, and the catch-up consumers of resumes older than the
 * buffer).
 *
 * Locking: hub->lock guards everything below that is not marked otherwise: the buffer, the
 * positions, the list of streams and every stream's fields, each catch-up's `stream` link. It
 * is taken before a request's lock in http.c (eo_http_stream_wake), never after. The reader
 * thread alone owns the Kafka clients and the list of catch-ups. */
#ifndef EO_ANALYTICS_STREAM_INTERNAL_H
#define EO_ANALYTICS_STREAM_INTERNAL_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "analytics/stream.h"
#include "core/buf.h"
#include "core/metrics.h"
#include "domain/sse.h"

/* A record of the buffer, or of a catch-up's queue. */
typedef struct {
    eo_sse_topic_t topic;
    int32_t partition;
    int64_t offset;
    char tenant_id[37], rule_id[37];
    char *data; /* the record's value as the engine wrote it, owned */
    size_t len;
} stream_entry_t;

/* What a catch-up hands its stream, in the order it read them. */
typedef enum {
    ITEM_RECORD,   /* a record of the stream's: send it */
    ITEM_POSITION, /* the partition's next offset (records that are not the stream's, an end) */
    ITEM_RESET,    /* the partition starts again from its earliest record (": reset") */
    ITEM_DONE,     /* the catch-up reached the buffer: go on from it */
} item_kind_t;

typedef struct stream_item {
    struct stream_item *next;
    item_kind_t kind;
    eo_sse_topic_t topic;
    int32_t partition;
    int64_t offset; /* RECORD: its offset; POSITION: the next offset */
    size_t len;
    char data[]; /* RECORD: the value */
} stream_item_t;

/* Bytes a queued item counts for beyond its value. */
#define STREAM_ITEM_OVERHEAD 64

typedef enum {
    MODE_BUFFER,   /* reads the buffer from cursor on */
    MODE_CATCH_UP, /* reads its catch-up's queue */
} stream_mode_t;

typedef struct catchup catchup_t;

/* One open stream (one GET /analytics/stream), from eo_analytics_streams_open until its request
 * ends (stream_free). */
typedef struct stream {
    struct eo_analytics_streams *hub;
    eo_http_req_t *req;
    struct stream *prev, *next;
    char tenant_id[37];
    char (*rules)[37]; /* sorted; nrules 0: every rule of the tenant */
    size_t nrules;
    eo_sse_pos_t pos; /* after the last record passed: the id of the next event */
    stream_mode_t mode;
    uint64_t cursor;       /* MODE_BUFFER: the next record's sequence number */
    uint64_t counted_from; /* MODE_BUFFER: records from here on count in pending */
    size_t pending; /* bytes of its records the buffer took since counting began (MODE_BUFFER:
                       those after cursor; MODE_CATCH_UP: those since done_queued) */
    int64_t over_since_us; /* pending + q_bytes passed the backlog bound then (0: it is not) */
    int64_t progress_us;   /* when its client last took bytes */
    catchup_t *cu;         /* MODE_CATCH_UP: the running catch-up, NULL when none (yet, or done) */
    bool cu_wanted;        /* MODE_CATCH_UP: the reader is to start a catch-up */
    bool done_queued; /* MODE_CATCH_UP: its DONE is in the queue (the buffer's records count) */
    stream_item_t *q_head, *q_tail; /* the catch-up's queue */
    size_t q_bytes;
    int64_t full_since_us; /* the queue reached the backlog bound then (0: it is under it) */
    bool reset_notice;     /* a ": reset" is due before the next event */
    eo_buf_t out;          /* formatted bytes not yet handed to the HTTP layer */
    size_t out_sent;
    char *id; /* EO_SSE_ID_MAX bytes: the id text being written */
    bool greeted;
    bool dead;  /* end at the next read (a slow client) */
    bool woken; /* a wake is on its way to the HTTP layer */
    int64_t next_keepalive_us;
} stream_t;

/* A resume's reader from Kafka up to the buffer: owned by the reader thread. */
struct catchup {
    catchup_t *next;
    stream_t *stream; /* NULL once the stream ended (under hub->lock) */
    rd_kafka_t *rk;
    eo_sse_pos_t at;                                      /* its next offset per partition */
    bool assigned[EO_SSE_TOPICS][EO_SSE_MAX_PARTITIONS];  /* the partitions it reads */
    bool confirmed[EO_SSE_TOPICS][EO_SSE_MAX_PARTITIONS]; /* `at` came from Kafka */
    bool reset[EO_SSE_TOPICS][EO_SSE_MAX_PARTITIONS];     /* started again from the earliest */
    bool rebuild; /* a reset came: a new consumer reads from the positions (and the earliest) */
    bool done;
};

enum { REFUSED_MAX_STREAMS, REFUSED_MAX_STREAMS_PER_TENANT, REFUSED_UNAVAILABLE, NREFUSED };

struct eo_analytics_streams {
    /* settings (read-only) */
    char *brokers, *topics[EO_SSE_TOPICS];
    size_t max_streams, max_per_tenant, max_backlog;
    int64_t keepalive_us;
    char retry_after[24];
    pthread_mutex_t lock;
    /* the buffer: records with sequence numbers [first, next), at ring[seq % cap] */
    stream_entry_t *ring;
    size_t cap, max_bytes, bytes;
    uint64_t first, next;
    eo_sse_pos_t base; /* per partition: the buffer holds every record from here on */
    eo_sse_pos_t head; /* per partition: the reader's next offset */
    bool known[EO_SSE_TOPICS][EO_SSE_MAX_PARTITIONS]; /* head (and base) are known */
    atomic_bool ready;                                /* every partition is known */
    bool closing;                                     /* no new streams */
    /* the streams */
    stream_t *streams;
    size_t nstreams;
    /* the reader thread */
    pthread_t thread;
    bool thread_started;
    atomic_bool stopping;
    rd_kafka_t *tail;    /* reader thread */
    catchup_t *catchups; /* reader thread */
    size_t ncatchups;    /* reader thread */
    /* metrics */
    eo_gauge_t *open;
    eo_counter_t *events[EO_SSE_TOPICS], *refused[NREFUSED], *slow, *resets, *catchups_total;
};

/* stream.c, for the reader: each takes hub->lock. */
/* A record read from the tail (key and value as in the topic). */
void eo_streams_append(struct eo_analytics_streams *h, eo_sse_topic_t t, int32_t partition,
                       int64_t offset, const void *key, size_t key_len, const void *value,
                       size_t len);
/* The tail reached the end of a partition at offset. */
void eo_streams_at_end(struct eo_analytics_streams *h, eo_sse_topic_t t, int32_t partition,
                       int64_t offset);
/* Wakes the streams whose keep-alive is due. */
void eo_streams_tick(struct eo_analytics_streams *h, int64_t now_us);
/* True when the stream matches the record's tenant and rule (hub->lock held). */
bool eo_streams_match(const stream_t *s, const char *tenant_id, const char *rule_id);
/* Appends an item to s's queue and wakes it (hub->lock held). Returns 0 or EO_ENOMEM. */
int eo_streams_enqueue(stream_t *s, item_kind_t kind, eo_sse_topic_t t, int32_t partition,
                       int64_t offset, const void *data, size_t len);

/* stream_kafka.c: the reader thread. */
void *eo_streams_reader(void *arg);
/* Destroys a catch-up (its consumer too); the caller unlinked it. */
void eo_streams_catchup_free(catchup_t *cu);

#endif
