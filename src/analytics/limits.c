/* The limits of analytics rules from the settings (see limits.h). */
#include "analytics/limits.h"

#define US_PER_S INT64_C(1000000)

void eo_analytics_rule_limits(eo_rule_limits_t *lim, const eo_config_t *cfg)
{
    *lim = (eo_rule_limits_t){
        .max_window_us = cfg->analytics_max_window_s * US_PER_S,
        .min_window_us = cfg->analytics_min_window_s * US_PER_S,
        .max_panes = cfg->analytics_max_panes,
        .max_groups = cfg->analytics_max_groups,
        .max_horizon_us = cfg->analytics_max_horizon_s * US_PER_S,
        .max_buckets = cfg->analytics_max_buckets,
        .max_rule_bytes = (size_t)cfg->analytics_max_rule_bytes,
    };
}
