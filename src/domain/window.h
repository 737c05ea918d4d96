/* Event-time windows of the analytics engine (issue 12; docs/analytics.md): hopping and
 * tumbling windows cut into panes, and the watermark over partitions. Pure: the caller passes
 * every time in (microseconds; event and wall times since the Unix epoch, monotonic times from
 * any origin).
 *
 * Windows are aligned to the epoch: [k*slide, k*slide + size) for every integer k. Tumbling is
 * slide == size. State is kept per pane of gcd(size, slide), so that an event updates one pane
 * and a window is the combination of its size/pane panes (never a copy per window). */
#ifndef EO_DOMAIN_WINDOW_H
#define EO_DOMAIN_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct {
    int64_t size_us, slide_us, pane_us;
} eo_window_t;

/* EO_EINVAL unless 0 < slide <= size and size / gcd(size, slide) <= max_panes. */
int eo_window_init(eo_window_t *w, int64_t size_us, int64_t slide_us,
                   int64_t max_panes) EO_MUST_CHECK;

/* The start of the pane holding t (floor to the pane, also for times before the epoch). */
int64_t eo_window_pane_of(const eo_window_t *w, int64_t t);

/* The starts of the first and the last window holding t (the windows between them step by
 * slide): last = floor(t, slide), first = floor(t - size, slide) + slide. */
void eo_window_span(const eo_window_t *w, int64_t t, int64_t *first_start, int64_t *last_start);

/* Panes per window (size / pane). */
int64_t eo_window_panes(const eo_window_t *w);

/* One input partition's part of the watermark. */
typedef struct {
    int64_t max_event_us; /* the highest event time seen */
    int64_t seen_mono_us; /* when the last record arrived */
    bool seen;
    bool held; /* set by the owner: may not count as idle (a backlog not read yet, or not
                * assigned): it holds the watermark at its highest event time, and before its
                * first record the watermark does not move */
} eo_watermark_part_t;

/* The global watermark: the minimum over the partitions that are not idle of (highest event
 * time seen - bound); a partition is idle when it has had no record for idle_us (or none yet),
 * unless it is held (eo_watermark_part_t.held).
 * With every partition idle it follows the wall clock (now - bound), so windows close without
 * traffic. It never goes back. */
typedef struct {
    eo_watermark_part_t *parts; /* the caller's storage, n entries */
    size_t n;
    int64_t bound_us, idle_us;
    int64_t value_us; /* INT64_MIN until the first advance */
} eo_watermark_t;

void eo_watermark_init(eo_watermark_t *wm, eo_watermark_part_t *parts, size_t n, int64_t bound_us,
                       int64_t idle_us);
/* A record of partition i (< n) with event time event_us arrived at now_mono_us. */
void eo_watermark_observe(eo_watermark_t *wm, size_t i, int64_t event_us, int64_t now_mono_us);
/* Recomputes and returns the watermark. */
int64_t eo_watermark_advance(eo_watermark_t *wm, int64_t now_mono_us, int64_t now_wall_us);

#endif
