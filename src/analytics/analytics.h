/* The analytics role (`eventops analytics`, docs/analytics.md): the real-time engine
 * (runner.h: consumes the events topic, keeps the rules' windows, emits window results and
 * summary events exactly once) and its HTTP API (api.h: rules and their versions, summaries and
 * window results, for the tenant of a bearer token), with /healthz, /readyz, /metrics and
 * /openapi.json. Threads: the engine's own, and libmicrohttpd's pool threads for HTTP. */
#ifndef EO_ANALYTICS_ANALYTICS_H
#define EO_ANALYTICS_ANALYTICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"

typedef struct eo_analytics eo_analytics_t;

/* Starts the engine and the HTTP API. Needs a token key source (EVENTOPS_AUTH_KEY_DIR or
 * EVENTOPS_AUTH_JWKS_URL). Returns 0, or an EO_E* code with the reason in err. */
int eo_analytics_start(const eo_config_t *cfg, eo_analytics_t **out, char *err,
                       size_t errlen) EO_MUST_CHECK;
uint16_t eo_analytics_port(const eo_analytics_t *a);
/* Stops accepting, drains for up to the shutdown timeout, stops the engine (the tick in hand
 * is committed or dropped, never half) and frees (NULL accepted). */
void eo_analytics_stop(eo_analytics_t *a);

#endif
