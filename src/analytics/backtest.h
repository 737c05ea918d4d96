/* A rule backtest (issue 12, item 9; docs/analytics.md, "Backtest"): what one rule would have
 * emitted over stored history. Pure: the caller (backtest_pool.c) reads the tenant's stored
 * events in (occurred_at, message_id) order and gives them here one by one; this module runs
 * them through a fresh engine (engine.h) of its own and keeps the window results and summary
 * events that lie within the range asked. No I/O, no clock, no threads.
 *
 * The simulation: one partition, watermark bound 0, so the watermark is the newest event time
 * seen at the last tick and no stored event is ever late (they come in time order). Simulated
 * time is event time: a tick's now_wall is the newest event fed (the engine paces "changes"
 * updates by EVENTOPS_ANALYTICS_CHANGES_INTERVAL_MS of it), and now_mono runs with it.
 * Rules whose answer depends on when ticks happen ("emit":"changes", or an early condition) are
 * ticked every tick_us of event time, as the live engine ticks every EVENTOPS_ANALYTICS_TICK_MS;
 * the others every EO_BACKTEST_TICK_EVENTS events, which changes no result. A tick is taken only
 * before an event later than every event fed, so a tick never splits events of one time. At the
 * end (eo_backtest_close) every partition is idle and the watermark follows now_wall past
 * end + grace + size, so every window that ends by the end closes. The engine's checkpoints
 * (every EO_BACKTEST_CHECKPOINT_TICKS ticks) are taken only to free what it keeps for the
 * changelog; their records are dropped with the late events.
 *
 * The engine starts without state `lead` before from (eo_backtest_read_range): the window's size
 * (the session gap), for rolling_* the buckets before it and for ewma span windows, and the
 * condition's longest duration (for, keepFiringFor, cooldown; at most the range limit), so the
 * windows starting at from are whole and the condition's state at from is what history made it.
 *
 * In range: a window [start, end) (a sliding rule's (end - T, end]) lies within [from, reached):
 * start >= from and end <= reached (a sliding window: end < reached when a limit cut the
 * events at reached, since its end is inclusive). reached is to, unless a limit stopped the
 * backtest: max_events events read, or more than max_results results kept; reached is then the
 * time of the first event not fed (every event before it was fed), and when the results still
 * exceed max_results the answer keeps those ending before the window end E of the first left
 * out (reached = E). Window results: the latest revision of each (group, window) emitted (as
 * GET .../windows shows them); summaries: each one emitted. Both sorted by window end, start,
 * group key, then emission. */
#ifndef EO_ANALYTICS_BACKTEST_H
#define EO_ANALYTICS_BACKTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "analytics/engine.h"
#include "core/buf.h"
#include "core/error.h"
#include "domain/record.h"

#define EO_BACKTEST_TICK_EVENTS 1000 /* events between ticks of a rule without changes/early */
#define EO_BACKTEST_MAX_CLOSE_TICKS 100000 /* ticks eo_backtest_close takes at most */
#define EO_BACKTEST_CHECKPOINT_TICKS 16    /* ticks between checkpoints (their changelog dropped) */

typedef struct {
    int64_t from_us, to_us; /* the range asked, from < to */
    int64_t max_events;     /* events fed at most */
    int64_t max_results;    /* window results + summaries in the answer at most */
    int64_t max_lead_us;    /* the condition's part of the lead-in at most (the range limit) */
    int64_t tick_us;        /* simulated tick of changes/early rules (EVENTOPS_ANALYTICS_TICK_MS) */
    int64_t changes_interval_us;        /* EVENTOPS_ANALYTICS_CHANGES_INTERVAL_MS */
    int64_t max_state_bytes_per_tenant; /* EVENTOPS_ANALYTICS_MAX_STATE_BYTES_PER_TENANT */
} eo_backtest_options_t;

typedef struct eo_backtest eo_backtest_t;

/* A backtest of rule (copied; its tz stays borrowed: it must outlive the backtest), which runs
 * as if enabled (a backtest is how a rule is tried before it is enabled). Returns 0, EO_EINVAL
 * (from >= to, a limit below 1) or EO_ENOMEM. */
int eo_backtest_new(const eo_backtest_options_t *opt, const eo_engine_rule_t *rule,
                    eo_backtest_t **out) EO_MUST_CHECK;
void eo_backtest_free(eo_backtest_t *bt); /* NULL accepted */

/* The stored events to read: occurred_at in [*from_us, *to_us) (from - lead, to), and the
 * event type ("*": every type). */
void eo_backtest_read_range(const eo_backtest_t *bt, int64_t *from_us, int64_t *to_us);
const char *eo_backtest_event_type(const eo_backtest_t *bt);

/* Feeds one stored event of the rule's tenant, in (occurred_at, message_id) order. Returns 0
 * when fed, 1 when a limit stops the backtest before this event (it is not fed: read no more),
 * EO_EINVAL for an event out of order, outside the read range or of another tenant (nothing
 * is fed), or EO_ENOMEM (then call no more but eo_backtest_free). After 1, close and write. */
int eo_backtest_event(eo_backtest_t *bt, const eo_record_t *rec) EO_MUST_CHECK;

/* Ends the events: one closing tick per call. Returns 1 while more ticks are needed (call again;
 * the caller checks its deadline between calls), 0 when done, or EO_ENOMEM. */
int eo_backtest_close(eo_backtest_t *bt) EO_MUST_CHECK;

typedef struct {
    int64_t events;  /* fed */
    int64_t windows; /* window results in the answer */
    int64_t summaries;
    int64_t late;   /* (event, rule) pairs the engine found late (0 with ordered input) */
    bool truncated; /* a limit stopped it */
    int64_t reached_us;
} eo_backtest_result_t;

/* After close: appends the answer {"rule":<rule_json>,"from","to","events","windows":[...],
 * "summaries":[...],"late","truncated","reached"}; rule_json is JSON text put in as is. Fills
 * *res (NULL accepted). Returns 0 or the buffer's error. */
int eo_backtest_write(eo_backtest_t *bt, const char *rule_json, eo_buf_t *out,
                      eo_backtest_result_t *res) EO_MUST_CHECK;

#endif
