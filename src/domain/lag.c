/* Lag and progress per partition (see lag.h). */
#include "domain/lag.h"

int64_t eo_lag_of(const eo_lag_partition_t *p)
{
    return p->end > p->committed ? p->end - p->committed : 0;
}

static const eo_lag_partition_t *find(const eo_lag_partition_t *parts, size_t n, int32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (parts[i].partition == id)
            return &parts[i];
    return NULL;
}

void eo_lag_track(const eo_lag_partition_t *prev, size_t nprev, eo_lag_partition_t *fresh,
                  size_t nfresh, int64_t now_us)
{
    for (size_t i = 0; i < nfresh; i++) {
        eo_lag_partition_t *f = &fresh[i];
        const eo_lag_partition_t *old = find(prev, nprev, f->partition);
        bool moved = !old || old->committed != f->committed;
        f->progress_us = moved || eo_lag_of(f) == 0 ? now_us : old->progress_us;
    }
}

static bool is_assigned(const int32_t *assigned, size_t n, int32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (assigned[i] == id)
            return true;
    return false;
}

bool eo_lag_stalled(const eo_lag_partition_t *parts, size_t n, const int32_t *assigned,
                    size_t nassigned, int64_t now_us, int64_t stall_us)
{
    for (size_t i = 0; i < n; i++) {
        const eo_lag_partition_t *p = &parts[i];
        if (nassigned && !is_assigned(assigned, nassigned, p->partition))
            continue;
        if (eo_lag_of(p) > 0 && now_us - p->progress_us >= stall_us)
            return true;
    }
    return false;
}
