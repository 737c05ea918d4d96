/* Prometheus metrics: a registry of counters, gauges and histograms, written in the text
 * exposition format (version 0.0.4) with the process metrics (memory, CPU, file descriptors,
 * start time).
 *
 * Series are registered at start-up (a mutex guards the registry) with fixed label sets, and
 * updated on the hot path with relaxed atomics only: no lock and no allocation per event.
 * Families are written in registration order, each with its HELP and TYPE once. Label values
 * are the caller's and must have bounded cardinality (never user or message ids). */
#ifndef EO_CORE_METRICS_H
#define EO_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

typedef struct eo_metrics eo_metrics_t;
typedef struct eo_counter eo_counter_t;
typedef struct eo_gauge eo_gauge_t;
typedef struct eo_histogram eo_histogram_t;

eo_metrics_t *eo_metrics_new(void);
void eo_metrics_free(eo_metrics_t *m); /* NULL accepted */

/* Registers (or finds) the series name{labels}. labels: "" or `a="x",b="y"` (values escaped by
 * the caller). Returns NULL when out of memory or when name is already another type; every
 * update function accepts NULL and does nothing. */
eo_counter_t *eo_metrics_counter(eo_metrics_t *m, const char *name, const char *help,
                                 const char *labels);
eo_gauge_t *eo_metrics_gauge(eo_metrics_t *m, const char *name, const char *help,
                             const char *labels);
/* One counter per value of a label: out[i] is name{role="ROLE",LABEL="values[i]"}. */
void eo_metrics_counters(eo_metrics_t *m, const char *name, const char *help, const char *role,
                         const char *label, const char *const *values, size_t n,
                         eo_counter_t **out);
/* bounds: ascending upper bounds (the +Inf bucket is added). */
eo_histogram_t *eo_metrics_histogram(eo_metrics_t *m, const char *name, const char *help,
                                     const char *labels, const double *bounds, size_t nbounds);

void eo_counter_add(eo_counter_t *c, uint64_t n);
void eo_gauge_set(eo_gauge_t *g, double v);
void eo_gauge_add(eo_gauge_t *g, double delta);
void eo_histogram_observe(eo_histogram_t *h, double v);

/* Registers a callback gauge name{labels}: read(ud) is called at each write (under the
 * registry's lock, so it must not register metrics) for values that are state rather than
 * events, e.g. "is PostgreSQL up". EO_ENOMEM, or EO_EINVAL when m is NULL. */
int eo_metrics_gauge_fn(eo_metrics_t *m, const char *name, const char *help, const char *labels,
                        double (*read)(void *ud), void *ud) EO_MUST_CHECK;

/* Adds a callback run at each write, after the registered families: it appends whole lines
 * (HELP, TYPE and samples) for values known only then (e.g. consumer lag per partition). */
int eo_metrics_add_collector(eo_metrics_t *m, int (*collect)(eo_buf_t *out, void *ud),
                             void *ud) EO_MUST_CHECK;

/* Registers eventops_build_info{role, version} = 1. */
void eo_metrics_build_info(eo_metrics_t *m, const char *role);

/* Appends every family, the collectors' output and the process metrics. */
int eo_metrics_write(eo_metrics_t *m, eo_buf_t *out) EO_MUST_CHECK;

/* Latency buckets in seconds (0.5 ms .. 10 s) and size buckets (1 .. 10,000). */
extern const double eo_metrics_latency_buckets[];
extern const size_t eo_metrics_latency_nbuckets;
extern const double eo_metrics_size_buckets[];
extern const size_t eo_metrics_size_nbuckets;

#endif
