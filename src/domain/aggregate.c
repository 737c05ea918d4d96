/* Aggregates (see aggregate.h). */
#include "domain/aggregate.h"

#include <math.h>

void eo_agg_init(eo_agg_t *a)
{
    *a = (eo_agg_t){0};
}

/* Neumaier's step: s + c holds the exact running sum to within one rounding. */
static void add_compensated(double *s, double *c, double v)
{
    double t = *s + v;
    if (fabs(*s) >= fabs(v))
        *c += (*s - t) + v;
    else
        *c += (v - t) + *s;
    *s = t;
}

void eo_agg_add(eo_agg_t *a, double v)
{
    if (a->count == 0 || v < a->min)
        a->min = v;
    if (a->count == 0 || v > a->max)
        a->max = v;
    add_compensated(&a->sum, &a->c, v);
    a->count++;
}

void eo_agg_merge(eo_agg_t *a, const eo_agg_t *b)
{
    if (b->count == 0)
        return;
    if (a->count == 0 || b->min < a->min)
        a->min = b->min;
    if (a->count == 0 || b->max > a->max)
        a->max = b->max;
    add_compensated(&a->sum, &a->c, b->sum);
    add_compensated(&a->sum, &a->c, b->c);
    a->count += b->count;
}

double eo_agg_sum(const eo_agg_t *a)
{
    return a->sum + a->c;
}

bool eo_agg_mean(const eo_agg_t *a, double *out)
{
    if (a->count == 0)
        return false;
    *out = eo_agg_sum(a) / (double)a->count;
    return true;
}

bool eo_agg_min(const eo_agg_t *a, double *out)
{
    if (a->count == 0)
        return false;
    *out = a->min;
    return true;
}

bool eo_agg_max(const eo_agg_t *a, double *out)
{
    if (a->count == 0)
        return false;
    *out = a->max;
    return true;
}

double eo_rolling_mean(const double *values, int64_t i, int64_t n)
{
    if (i < 0 || n <= 0)
        return 0;
    int64_t from = i - n + 1 < 0 ? 0 : i - n + 1;
    double s = 0, c = 0;
    for (int64_t k = from; k <= i; k++)
        add_compensated(&s, &c, values[k]);
    return (s + c) / (double)(i - from + 1);
}
