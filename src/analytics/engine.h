/* The analytics engine's state machine (issue 12; docs/analytics.md): rules' windows per
 * group, lateness, emission, the condition's alerts, and the changelog of its state. No I/O and
 * no clock: the runner (runner.c) feeds it decoded records and the time, and turns its outputs
 * into Kafka records produced in the tick's transaction. Unit-tested without Kafka
 * (tests/unit/test_engine.c).
 *
 * Per (rule, group) it keeps:
 *  - tumbling/hopping: panes of gcd(size, slide) with count, the property's compensated
 *    aggregate and (unique_users) the set of 64-bit user hashes; a window is combined from its
 *    panes when emitted; the windows already emitted (revision, final) until end + horizon;
 *  - sliding "N within T": the event times within T + grace of the watermark;
 *  - session: the open and recently closed sessions;
 *  - the alert state machine, the rolling buckets and the EWMA.
 * Events are classified per rule: in a window (on time, or late within grace: counted before the
 * window's final result), a correction (late within the horizon: a new revision), or late
 * (beyond the horizon: an EO_OUT_LATE output, counted by reason). Nothing is dropped silently.
 *
 * Exactly once: the engine is deterministic given the records of each tick, the watermark its
 * records were classified against, the tick's watermark and its wall time. The runner commits,
 * with each tick's outputs and offsets, a log of those (the tick record), and every so often a
 * checkpoint (eo_engine_checkpoint: the changelog of the state changed since the last one: one
 * record per changed group, chunks of new user hashes, tombstones, the watermark). A restore
 * (eo_engine_restore of the changelog's records, then a replay of the logged ticks with
 * eo_engine_set_watermark / eo_engine_event / eo_engine_tick_replay, outputs discarded)
 * rebuilds exactly the state of the last committed tick.
 *
 * Threads: one owner (the runner's thread). */
#ifndef EO_ANALYTICS_ENGINE_H
#define EO_ANALYTICS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "domain/record.h"
#include "domain/rule.h"
#include "domain/tz.h"

typedef struct eo_engine eo_engine_t;

typedef struct {
    char tenant_id[37];
    char rule_id[37];
    int64_t version;
    eo_rule_t def;
    const eo_tz_t *tz; /* def.zone, loaded (borrowed; NULL: UTC) */
} eo_engine_rule_t;

typedef struct {
    size_t partitions;           /* of the events topic (watermark parts) */
    int64_t bound_us;            /* watermark = highest event time - bound */
    int64_t idle_us;             /* a partition without records this long is idle */
    int64_t changes_interval_us; /* emit "changes": at most one update per window per this */
    int64_t max_state_bytes_per_tenant;
} eo_engine_options_t;

typedef enum {
    EO_OUT_WINDOW,    /* a window result: key "<tenant>:<rule>", JSON value */
    EO_OUT_SUMMARY,   /* a summary event: key "<tenant>:<rule>", JSON value */
    EO_OUT_LATE,      /* an event beyond the horizon: the record's key and bytes unchanged */
    EO_OUT_CHANGELOG, /* state: key, JSON value, or a tombstone (empty value) */
} eo_out_kind_t;

typedef struct {
    eo_out_kind_t kind;
    eo_buf_t key, value;
    bool tombstone;
    char rule_id[37]; /* EO_OUT_LATE: the rule it is late for */
    char reason[24];  /* EO_OUT_LATE: "beyond_horizon" */
    char status[12];  /* EO_OUT_SUMMARY: "firing" / "resolved" */
} eo_out_t;

/* Counters since the engine was made (read by the runner for its metrics). */
typedef struct {
    uint64_t events;      /* records given to eo_engine_event */
    uint64_t matched;     /* (event, rule) pairs counted in a window */
    uint64_t corrections; /* (event, rule) pairs that made a new revision */
    uint64_t late;        /* (event, rule) pairs beyond the horizon */
    uint64_t overflow;    /* (event, rule) pairs counted in a rule's overflow group */
    uint64_t windows, summaries_firing, summaries_resolved;
} eo_engine_stats_t;

int eo_engine_new(const eo_engine_options_t *opt, eo_engine_t **out) EO_MUST_CHECK;
void eo_engine_free(eo_engine_t *e);

/* Replaces the rule set (copied). State of rules (or versions) no longer present is dropped,
 * with changelog tombstones among the outputs. */
int eo_engine_set_rules(eo_engine_t *e, const eo_engine_rule_t *rules, size_t n) EO_MUST_CHECK;

/* One decoded record of partition (< partitions); raw/key are its Kafka value and key (copied
 * into an EO_OUT_LATE output when late). now_mono_us for idleness. */
int eo_engine_event(eo_engine_t *e, size_t partition, const eo_record_t *rec, const void *raw,
                    size_t raw_len, const void *key, size_t key_len,
                    int64_t now_mono_us) EO_MUST_CHECK;

/* Advances the watermark and emits what it closes, revisions, changes and alerts. The state it
 * changes goes into the changelog at the next eo_engine_checkpoint(). */
int eo_engine_tick(eo_engine_t *e, int64_t now_mono_us, int64_t now_wall_us) EO_MUST_CHECK;

/* A tick of a replay after a restore: the watermark is the logged one (never back), not
 * recomputed; now_wall_us is the logged wall time (the "changes" interval counts in it). */
int eo_engine_tick_replay(eo_engine_t *e, int64_t wm, int64_t now_wall_us) EO_MUST_CHECK;

/* Sets the watermark to wm unless it is higher already (a replay sets the watermark a tick's
 * records were classified against before giving them). */
void eo_engine_set_watermark(eo_engine_t *e, int64_t wm);

/* True when the state changed (records given, windows closed, state expired, rules set) since
 * the last call; clears the flag. A tick that changed nothing need not be logged. */
bool eo_engine_changed(eo_engine_t *e);

/* Adds to the outputs the changelog of everything changed since the last checkpoint: the
 * tombstones of state gone, a record per changed group, chunks of new user hashes, the
 * watermark. The changelog then holds the state as of this point. */
int eo_engine_checkpoint(eo_engine_t *e) EO_MUST_CHECK;

/* The outputs gathered since the last clear (owned by the engine). */
const eo_out_t *eo_engine_outputs(const eo_engine_t *e, size_t *n);
void eo_engine_outputs_clear(eo_engine_t *e);

/* Drops all state and outputs (before a restore). Rules are kept. */
void eo_engine_reset(eo_engine_t *e);

/* Applies one changelog record (the newest value of its key; any order across keys). Records
 * of rules not in the set are ignored, and get tombstones among the outputs. Returns 0, or
 * EO_EPARSE for a record it cannot read (skipped). */
int eo_engine_restore(eo_engine_t *e, const void *key, size_t key_len, const void *value,
                      size_t len) EO_MUST_CHECK;

/* Marks a partition that may not count as idle: the runner holds a partition that is not
 * assigned to it or still has a backlog, so that its unread records do not become late. */
void eo_engine_hold(eo_engine_t *e, size_t partition, bool held);

/* The current watermark (INT64_MIN before any). */
int64_t eo_engine_watermark(const eo_engine_t *e);

/* Per partition: the watermark delay (now_wall - its highest event time), or -1 if none yet. */
int64_t eo_engine_partition_delay_us(const eo_engine_t *e, size_t partition, int64_t now_wall_us);

void eo_engine_stats(const eo_engine_t *e, eo_engine_stats_t *out);
/* Sets the counters back (a dropped tick's records are counted again when they come again). */
void eo_engine_stats_set(eo_engine_t *e, const eo_engine_stats_t *st);

/* Windows not final yet over all groups, as counted by the last tick. */
uint64_t eo_engine_open_windows(const eo_engine_t *e);

/* Groups kept and approximate state bytes over all rules. */
void eo_engine_state_size(const eo_engine_t *e, uint64_t *groups, uint64_t *bytes);

#endif
