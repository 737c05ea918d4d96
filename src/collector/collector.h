/* The collector role: HTTP ingest API (POST /events, POST /events/batch) that validates,
 * authenticates with write keys and answers 202 only after Kafka acknowledged every accepted
 * event. */
#ifndef EO_COLLECTOR_COLLECTOR_H
#define EO_COLLECTOR_COLLECTOR_H

#include <stdint.h>

#include "core/config.h"
#include "core/error.h"

typedef struct eo_collector eo_collector_t;

int eo_collector_start(const eo_config_t *cfg, eo_collector_t **out, char *err,
                       size_t errlen) EO_MUST_CHECK;
uint16_t eo_collector_port(const eo_collector_t *c);
/* Stops accepting, lets requests in flight finish (bounded by cfg->shutdown_timeout_ms). */
void eo_collector_stop(eo_collector_t *c);

#endif
