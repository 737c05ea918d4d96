/* The limits of analytics rules (domain/rule.h) from the role's settings (EVENTOPS_ANALYTICS_*),
 * for the HTTP API and the engine alike. */
#ifndef EO_ANALYTICS_LIMITS_H
#define EO_ANALYTICS_LIMITS_H

#include "core/config.h"
#include "domain/rule.h"

/* Fills lim from cfg: window sizes and the horizon in microseconds from their seconds, panes,
 * groups, buckets and the rule's bytes as configured. */
void eo_analytics_rule_limits(eo_rule_limits_t *lim, const eo_config_t *cfg);

#endif
