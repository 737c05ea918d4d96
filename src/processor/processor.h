/* The processor role: a Kafka consumer group member that stores batches of events in
 * PostgreSQL (pg_store) and then, in one Kafka transaction, writes dead letters and commits
 * the consumed offsets. Runs on its own thread; also serves /healthz and /readyz. */
#ifndef EO_PROCESSOR_PROCESSOR_H
#define EO_PROCESSOR_PROCESSOR_H

#include <stdint.h>

#include "core/config.h"
#include "core/error.h"

typedef struct eo_processor eo_processor_t;

int eo_processor_start(const eo_config_t *cfg, eo_processor_t **out, char *err,
                       size_t errlen) EO_MUST_CHECK;
/* Finishes the batch in hand (bounded by cfg->shutdown_timeout_ms), commits, stops. */
void eo_processor_stop(eo_processor_t *p);

#endif
