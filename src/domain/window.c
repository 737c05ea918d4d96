/* Event-time windows and the watermark (see window.h). */
#include "domain/window.h"

static int64_t gcd(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* floor(t / g) * g, also for negative t (C division truncates toward zero). */
static int64_t floor_to(int64_t t, int64_t g)
{
    int64_t q = t / g;
    if (t % g != 0 && t < 0)
        q--;
    return q * g;
}

int eo_window_init(eo_window_t *w, int64_t size_us, int64_t slide_us, int64_t max_panes)
{
    if (size_us <= 0 || slide_us <= 0 || slide_us > size_us)
        return EO_EINVAL;
    int64_t pane = gcd(size_us, slide_us);
    if (size_us / pane > max_panes)
        return EO_EINVAL;
    w->size_us = size_us;
    w->slide_us = slide_us;
    w->pane_us = pane;
    return 0;
}

int64_t eo_window_pane_of(const eo_window_t *w, int64_t t)
{
    return floor_to(t, w->pane_us);
}

void eo_window_span(const eo_window_t *w, int64_t t, int64_t *first_start, int64_t *last_start)
{
    *last_start = floor_to(t, w->slide_us);
    *first_start = floor_to(t - w->size_us, w->slide_us) + w->slide_us;
}

int64_t eo_window_panes(const eo_window_t *w)
{
    return w->size_us / w->pane_us;
}

void eo_watermark_init(eo_watermark_t *wm, eo_watermark_part_t *parts, size_t n, int64_t bound_us,
                       int64_t idle_us)
{
    wm->parts = parts;
    wm->n = n;
    wm->bound_us = bound_us;
    wm->idle_us = idle_us;
    wm->value_us = INT64_MIN;
    for (size_t i = 0; i < n; i++)
        parts[i] = (eo_watermark_part_t){.max_event_us = INT64_MIN, .seen = false, .held = false};
}

void eo_watermark_observe(eo_watermark_t *wm, size_t i, int64_t event_us, int64_t now_mono_us)
{
    eo_watermark_part_t *p = &wm->parts[i];
    if (!p->seen || event_us > p->max_event_us)
        p->max_event_us = event_us;
    p->seen = true;
    p->seen_mono_us = now_mono_us;
}

int64_t eo_watermark_advance(eo_watermark_t *wm, int64_t now_mono_us, int64_t now_wall_us)
{
    bool any = false;
    int64_t low = INT64_MAX;
    for (size_t i = 0; i < wm->n; i++) {
        const eo_watermark_part_t *p = &wm->parts[i];
        if (p->held && !p->seen && p->max_event_us == INT64_MIN)
            return wm->value_us; /* a backlog of unknown times: wait for it */
        if (!p->held && (!p->seen || now_mono_us - p->seen_mono_us >= wm->idle_us))
            continue; /* idle: does not hold the watermark back */
        any = true;
        if (p->max_event_us < low)
            low = p->max_event_us;
    }
    int64_t candidate = (any ? low : now_wall_us) - wm->bound_us;
    if (candidate > wm->value_us)
        wm->value_us = candidate;
    return wm->value_us;
}
