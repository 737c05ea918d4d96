/* Consumer-group lag and progress per partition, from periodic samples of the broker's end
 * offsets (high watermarks) and the group's committed offsets. Pure: the caller measures and
 * passes the time in. Used by the lag monitor (core/kafka_lag.c) for the lag gauge and for
 * the readiness rule "backlog and no progress". */
#ifndef EO_DOMAIN_LAG_H
#define EO_DOMAIN_LAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int32_t partition;
    int64_t end;         /* the high watermark: the next offset to be written */
    int64_t committed;   /* the group's committed offset; without one, the low watermark */
    int64_t progress_us; /* when the partition last had no backlog or its commit moved */
} eo_lag_partition_t;

/* The backlog of one partition: end - committed, never negative. */
int64_t eo_lag_of(const eo_lag_partition_t *p);

/* Sets progress_us of each fresh sample from the previous table: now_us when the partition has
 * no backlog, is new, or its committed offset differs from the previous sample's; else the
 * previous progress_us. prev and fresh may be in any order (partitions are unique in each). */
void eo_lag_track(const eo_lag_partition_t *prev, size_t nprev, eo_lag_partition_t *fresh,
                  size_t nfresh, int64_t now_us);

/* True when a partition of interest has a backlog and no progress for at least stall_us.
 * Partitions of interest: those in assigned[0..nassigned), or every partition when nassigned
 * is 0 (an instance with no assignment answers for the whole group). */
bool eo_lag_stalled(const eo_lag_partition_t *parts, size_t n, const int32_t *assigned,
                    size_t nassigned, int64_t now_us, int64_t stall_us);

#endif
