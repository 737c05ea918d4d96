/* A background thread that calls a function every interval until stopped (reloads of caches
 * and key sets). The function runs on the ticker's thread; stopping waits for a call in
 * progress to end. */
#ifndef EO_CORE_TICKER_H
#define EO_CORE_TICKER_H

#include <stdint.h>

#include "core/error.h"

typedef struct eo_ticker eo_ticker_t;

/* Starts calling fn(ud) every interval_ms (the first call one interval from now) on a thread
 * named `name` (its first 15 bytes: what `top -H`, perf and /proc/PID/task/TID/comm show). */
int eo_ticker_start(const char *name, int64_t interval_ms, void (*fn)(void *ud), void *ud,
                    eo_ticker_t **out) EO_MUST_CHECK;

/* Stops the thread and frees the ticker. NULL accepted. */
void eo_ticker_stop(eo_ticker_t *t);

#endif
