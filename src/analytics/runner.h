/* The analytics engine's stream side (issue 12; docs/analytics.md): the thread that consumes
 * the events topic in its own group (read_committed), keeps the rules' windows, and commits
 * window results, summaries, late events, its state changelog and the consumed offsets in one
 * Kafka transaction per tick; and the sink that writes summaries and window results into
 * PostgreSQL. The role (analytics.c) starts it next to its HTTP API. */
#ifndef EO_ANALYTICS_RUNNER_H
#define EO_ANALYTICS_RUNNER_H

#include <stdbool.h>
#include <stddef.h>

#include "analytics/zones.h"
#include "core/config.h"
#include "core/error.h"
#include "core/metrics.h"

typedef struct eo_analytics_runner eo_analytics_runner_t;

/* Starts the engine's threads; its metrics go into m, its rules' zones come from zones (both
 * borrowed; they must outlive the runner). Returns 0, or an EO_E* code with the reason in err. */
int eo_analytics_runner_start(const eo_config_t *cfg, eo_metrics_t *m, eo_zones_t *zones,
                              eo_analytics_runner_t **out, char *err, size_t errlen) EO_MUST_CHECK;

/* True while the engine's Kafka clients and PostgreSQL are usable and its state is restored.
 * Any thread. */
bool eo_analytics_runner_ready(const eo_analytics_runner_t *r);

/* Stops: finishes the tick in hand (committed or dropped, never half), leaves the group and
 * frees everything. NULL accepted. */
void eo_analytics_runner_stop(eo_analytics_runner_t *r);

#endif
