/* Aggregates of the analytics engine (issue 12; docs/analytics.md), kept per pane and
 * combined per window: count, sum, min, max and mean of a numeric property. Pure.
 *
 * A window's mean is the sum of its panes' sums over the sum of their counts (never a mean of
 * means). Sums are compensated (Neumaier), so that combining panes in any order gives the same
 * result as adding every value once to within one rounding, which keeps a window's value equal
 * to a recomputation over the stored events. */
#ifndef EO_DOMAIN_AGGREGATE_H
#define EO_DOMAIN_AGGREGATE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t count;   /* values added (an event without the property adds none) */
    double sum, c;   /* compensated sum: sum + c */
    double min, max; /* meaningful when count > 0 */
} eo_agg_t;

void eo_agg_init(eo_agg_t *a);
/* Adds one value (finite; the caller refuses NaN and infinities). */
void eo_agg_add(eo_agg_t *a, double v);
/* a += b (panes into a window, or partials of partitions into one). */
void eo_agg_merge(eo_agg_t *a, const eo_agg_t *b);

double eo_agg_sum(const eo_agg_t *a);
/* False (and *out untouched) when count is 0: no mean, min or max of nothing. */
bool eo_agg_mean(const eo_agg_t *a, double *out);
bool eo_agg_min(const eo_agg_t *a, double *out);
bool eo_agg_max(const eo_agg_t *a, double *out);

/* The mean of the last n bucket values up to and including values[i] (the current, possibly
 * unfinished bucket), over the buckets that exist: min(n, i + 1) of them (not floored to whole
 * windows); empty buckets are values of 0, as in a rate per minute. */
double eo_rolling_mean(const double *values, int64_t i, int64_t n);

#endif
