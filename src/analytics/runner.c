/* PLACEHOLDER while the engine is built (issue 12): starts nothing and reports ready, so that
 * the role's HTTP API can be built against runner.h in parallel. Replaced by the engine. */
#include "analytics/runner.h"

#include <stdlib.h>

struct eo_analytics_runner {
    int unused;
};

int eo_analytics_runner_start(const eo_config_t *cfg, eo_metrics_t *m, eo_analytics_runner_t **out,
                              char *err, size_t errlen)
{
    (void)cfg;
    (void)m;
    (void)err;
    (void)errlen;
    *out = calloc(1, sizeof **out);
    return *out ? 0 : EO_ENOMEM;
}

bool eo_analytics_runner_ready(const eo_analytics_runner_t *r)
{
    return r != NULL;
}

void eo_analytics_runner_stop(eo_analytics_runner_t *r)
{
    free(r);
}
