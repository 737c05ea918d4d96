/* The rollup rows a batch of newly stored events adds (docs/schema.md, "rollups"): per tenant,
 * granularity (minute, quarter hour, hour, day; UTC), event type and bucket, how many events
 * began in it, each also under event type "" for all types together. The processor merges a
 * batch here and upserts the result, so that PostgreSQL adds counts rather than aggregating
 * the rows again. Pure: no I/O. */
#ifndef EO_DOMAIN_ROLLUP_DELTA_H
#define EO_DOMAIN_ROLLUP_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "domain/event.h"

typedef enum {
    EO_ROLLUP_MINUTE,
    EO_ROLLUP_QUARTER,
    EO_ROLLUP_HOUR,
    EO_ROLLUP_DAY,
    EO_ROLLUP_GRANULARITIES
} eo_rollup_granularity_t;

/* One stored event: its tenant (36 characters, canonical lower case), type and time. */
typedef struct {
    const char *tenant_id;
    eo_str_t event_type;
    int64_t occurred_at_us;
} eo_rollup_event_t;

/* One rollup row to add. event_type borrows from the events ({"", 0}: all types). */
typedef struct {
    const char *tenant_id;
    eo_str_t event_type;
    eo_rollup_granularity_t granularity;
    int64_t bucket_start_us;
    int64_t count;
} eo_rollup_row_t;

/* The granularity's name in the rollups table: "minute", "quarter", "hour" or "day". */
const char *eo_rollup_granularity_name(eo_rollup_granularity_t g);

/* The rows that n events add, one per (tenant, granularity, type, bucket), sorted by tenant,
 * granularity name, type and bucket (the order the store locks them in). *rows (free()) and
 * *nrows are set; n = 0 gives no rows. Returns 0 or EO_ENOMEM. */
int eo_rollup_delta(const eo_rollup_event_t *events, size_t n, eo_rollup_row_t **rows,
                    size_t *nrows) EO_MUST_CHECK;

#endif
