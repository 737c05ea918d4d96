/* The collector's gRPC service eventops.v1.Ingest (proto/eventops/v1/ingest.proto,
 * docs/grpc.md) on gRPC's C core: Send (one event) and SendBatch, on its own port, with the
 * credentials of the HTTP routes (the `authorization` metadata), their validation and limits
 * (collector_internal.h), and their durability: OK only after Kafka acknowledged every accepted
 * event. Calls are served by EVENTOPS_GRPC_THREADS threads on one completion queue; each call
 * waits for Kafka without holding a thread. */
#ifndef EO_COLLECTOR_GRPC_INGEST_H
#define EO_COLLECTOR_GRPC_INGEST_H

#include "access/access.h"
#include "collector/collector.h"
#include "core/config.h"
#include "core/error.h"
#include "core/metrics.h"

typedef struct eo_grpc eo_grpc_t;

/* Starts the service on cfg->collector_addr:cfg->grpc_port (0: any free port) for collector c,
 * admitting calls by pol (borrowed, as c). Returns 0 or an error (err says why). */
int eo_grpc_start(eo_collector_t *c, const eo_config_t *cfg, const eo_access_policy_t *pol,
                  eo_metrics_t *m, eo_grpc_t **out, char *err, size_t errlen) EO_MUST_CHECK;

int eo_grpc_port(const eo_grpc_t *g);

/* Stops taking calls and waits up to timeout_ms for the calls in flight (those waiting for
 * Kafka included). Returns the number of calls still in flight then (0: all answered). */
int eo_grpc_drain(eo_grpc_t *g, int64_t timeout_ms);

/* Cancels what is left, stops the threads and frees. NULL accepted. */
void eo_grpc_free(eo_grpc_t *g);

#endif
