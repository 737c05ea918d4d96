/* Shared by the collector's HTTP routes (collector.c) and its gRPC service (grpc_ingest.c): one
 * way to validate events, encode their Kafka records and wait for Kafka, whatever the protocol.
 * A request builds its events (eo_ingest_build_*), then produces them (eo_ingest_produce) and
 * answers from its waiter's finish once Kafka acknowledged or failed every record. */
#ifndef EO_COLLECTOR_COLLECTOR_INTERNAL_H
#define EO_COLLECTOR_COLLECTOR_INTERNAL_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "collector/collector.h"
#include "domain/event.h"

/* What a request waits for: the first member of the request's state, which is the Kafka
 * sink's opaque. */
typedef struct eo_ingest_waiter eo_ingest_waiter_t;
struct eo_ingest_waiter {
    atomic_int pending; /* holds: one per record in flight, one of the producing thread */
    atomic_int failed;  /* 0, or the first EO_E* delivery error */
    /* Called once, by the thread that released the last hold (the producing thread, or the
     * sink's delivery thread); nothing may touch the waiter's owner after it answered. */
    void (*finish)(eo_ingest_waiter_t *w);
};

typedef struct eo_ingest_build eo_ingest_build_t;

/* A build for count events of tenant_id (36 characters, kept by the caller until the build is
 * freed) that arrived in about bytes bytes. Returns 0 or EO_ENOMEM. */
int eo_ingest_build_new(eo_collector_t *c, const char *tenant_id, size_t count, size_t bytes,
                        eo_ingest_build_t **out) EO_MUST_CHECK;
/* Validates event i (a JSON object of the event API, borrowed) as POST /events/batch does: its
 * record, or its refusal. Returns 0, or a failure that fails the request (EO_ENOMEM). */
int eo_ingest_build_add(eo_collector_t *c, eo_ingest_build_t *b, size_t i, json_t *event,
                        int64_t received_at) EO_MUST_CHECK;
/* Records the refusal of event i (message_id: the one it had, or {NULL, 0}). */
int eo_ingest_build_refuse(eo_collector_t *c, eo_ingest_build_t *b, size_t i, eo_str_t message_id,
                           const eo_event_error_t *e) EO_MUST_CHECK;
size_t eo_ingest_build_accepted(const eo_ingest_build_t *b);
/* The accepted events' messageIds as JSON strings joined by ',' and the refusals as JSON
 * objects {"index","messageId","error":{"code","message","field"}} joined by ','. */
void eo_ingest_build_texts(const eo_ingest_build_t *b, const char **ids, size_t *ids_len,
                           const char **errors, size_t *errors_len);
/* The last refusal and its HTTP status (400, or 413 for an event too large). */
const eo_event_error_t *eo_ingest_build_last_error(const eo_ingest_build_t *b, unsigned *status);
/* NULL accepted. */
void eo_ingest_build_free(eo_ingest_build_t *b);

/* Counts n events acknowledged by Kafka and answered (eventops_events_accepted_total), and a
 * request of n events (eventops_batch_size_events). */
void eo_ingest_count_accepted(eo_collector_t *c, size_t n);
void eo_ingest_observe_batch(eo_collector_t *c, size_t n);

/* Produces b's accepted records (at least one) and calls w->finish once Kafka acknowledged or
 * failed each (possibly before returning). request_id and traceparent become record headers
 * (either may be NULL). */
void eo_ingest_produce(eo_collector_t *c, const eo_ingest_build_t *b, eo_ingest_waiter_t *w,
                       const char *request_id, const char *traceparent);

#endif
