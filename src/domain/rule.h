/* Analytics rules (issue 12; docs/analytics.md): the definition a tenant posts, parsed and
 * validated into eo_rule_t, written back as canonical JSON; the condition's state machine; the
 * summary eventId. Pure: no I/O, no clock (times are passed in, microseconds since the epoch).
 *
 * A rule, as posted (every member but name, eventType, window and aggregate is optional):
 *   {"name":"signup burst",                        1..128 bytes
 *    "eventType":"signup",                          an event type, or "*" for every type
 *    "window":{"type":"tumbling"|"hopping"|"sliding"|"session",
 *              "size":"5m", "slide":"1m" (hopping only), "gap":"30m" (session only),
 *              "zone":"Europe/Berlin" (tumbling "1d"/"1w" only; default "UTC")},
 *    "groupBy":["properties.plan","context.country"],   0..2 paths
 *    "aggregate":{"fn":"count"|"unique_users"|"sum"|"mean"|"min"|"max"|"rate_per_minute"|
 *                       "rolling_mean"|"rolling_sum"|"ewma",
 *                 "property":"properties.amount"  (sum, mean, min, max; and rolling_*/ewma of
 *                                                  a sum: then "of":"sum", else "of":"count"),
 *                 "of":"count"|"sum", "buckets":5 (rolling_*), "span":10 (ewma)},
 *    "emit":"final"|"changes",                      default "final"
 *    "grace":"60s",                                 default 60 s
 *    "horizon":"1h",                                correction horizon, >= grace; default grace
 *    "maxGroups":1000,                              default and cap from eo_rule_limits_t
 *    "condition":{"op":">="|">"|"<="|"<"|"==", "value":100,
 *                 "for":"0s", "keepFiringFor":"10m", "clearBelow":80, "early":true},
 *    "cooldown":"15m",
 *    "enabled":true}
 * Durations are a positive integer and a unit: ms, s, m, h, d, w ("90s", "5m", "1d").
 * Paths are "type", "userId", "anonymousId", or "properties.<key>[.<key>...]" /
 * "context.<key>[...]" (keys of [A-Za-z0-9_$-], at most 4 levels, 128 bytes).
 * Rules on sliding windows ("N within T": size is T) take count (or unique_users) only.
 * Unknown members are refused (a typo must not silently change a rule). */
#ifndef EO_DOMAIN_RULE_H
#define EO_DOMAIN_RULE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "domain/event.h"

#define EO_RULE_NAME_MAX 128
#define EO_RULE_PATH_MAX 128
#define EO_RULE_ZONE_MAX 64
#define EO_RULE_MAX_GROUP_BY 2

typedef enum { EO_WIN_TUMBLING, EO_WIN_HOPPING, EO_WIN_SLIDING, EO_WIN_SESSION } eo_win_type_t;

typedef enum {
    EO_AGG_COUNT,
    EO_AGG_UNIQUE_USERS,
    EO_AGG_SUM,
    EO_AGG_MEAN,
    EO_AGG_MIN,
    EO_AGG_MAX,
    EO_AGG_RATE_PER_MINUTE,
    EO_AGG_ROLLING_MEAN,
    EO_AGG_ROLLING_SUM,
    EO_AGG_EWMA
} eo_agg_fn_t;

typedef enum { EO_CMP_GE, EO_CMP_GT, EO_CMP_LE, EO_CMP_LT, EO_CMP_EQ } eo_cmp_t;

typedef enum { EO_EMIT_FINAL, EO_EMIT_CHANGES } eo_emit_t;

/* A field of an event: a top-level member or a path into properties/context. */
typedef enum {
    EO_PATH_TYPE,
    EO_PATH_USER_ID,
    EO_PATH_ANONYMOUS_ID,
    EO_PATH_PROPERTIES,
    EO_PATH_CONTEXT
} eo_path_root_t;

typedef struct {
    eo_path_root_t root;
    char text[EO_RULE_PATH_MAX + 1]; /* the path as written, e.g. "properties.plan" */
    size_t nkeys;                    /* keys below root (PROPERTIES/CONTEXT), 1..4 */
    size_t key_off[4], key_len[4];   /* each key within text */
} eo_path_t;

typedef struct {
    bool present;
    eo_cmp_t op;
    double value;
    int64_t for_us;             /* the condition must hold this long (window time) to fire */
    int64_t keep_firing_for_us; /* stays firing this long after it stops holding */
    bool has_clear;             /* hysteresis: resolves only below (or above, for < / <=) */
    double clear_value;
    bool early; /* count-like aggregates: fire on the crossing, before the window closes */
} eo_condition_t;

typedef struct {
    char name[EO_RULE_NAME_MAX + 1];
    char event_type[129]; /* "*" = every type */
    eo_win_type_t win;
    int64_t size_us, slide_us, gap_us; /* slide = size for tumbling; gap for session */
    char zone[EO_RULE_ZONE_MAX + 1];   /* "UTC" unless a day/week tumbling window names one */
    size_t ngroup;
    eo_path_t group_by[EO_RULE_MAX_GROUP_BY];
    eo_agg_fn_t fn;
    bool of_sum;       /* rolling_* / ewma over the bucket sums of property (else counts) */
    bool has_property; /* sum, mean, min, max; rolling/ewma of sum */
    eo_path_t property;
    int64_t buckets; /* rolling_mean / rolling_sum: N >= 1 */
    int64_t span;    /* ewma: alpha = 2 / (span + 1) */
    eo_emit_t emit;
    int64_t grace_us, horizon_us;
    int64_t max_groups;
    eo_condition_t cond;
    int64_t cooldown_us;
    bool enabled;
} eo_rule_t;

/* What a tenant may ask for; every value configurable (EVENTOPS_ANALYTICS_*). */
typedef struct {
    int64_t max_window_us;  /* size and gap; 31 days by default */
    int64_t min_window_us;  /* 1 s */
    int64_t max_panes;      /* size / gcd(size, slide); 1440 */
    int64_t max_groups;     /* maxGroups cap and default; 10000 */
    int64_t max_horizon_us; /* 7 days */
    int64_t max_buckets;    /* rolling buckets and ewma span; 1000 */
    size_t max_rule_bytes;  /* the posted JSON; 16 KiB */
} eo_rule_limits_t;

void eo_rule_limits_default(eo_rule_limits_t *lim);

/* Parses and validates a rule definition (the JSON object as posted). Returns 0, or EO_EINVAL
 * / EO_EPARSE / EO_ELIMIT with err naming the field ("window.size", "condition.op", ...), a
 * stable code ("invalid_rule", "unknown_field", "too_large", ...) and a sentence. */
int eo_rule_parse(const char *json, size_t len, const eo_rule_limits_t *lim, eo_rule_t *rule,
                  eo_event_error_t *err) EO_MUST_CHECK;

/* Appends the canonical JSON of rule (every member, defaults filled in, durations in the
 * largest whole unit). eo_rule_parse of the output gives the same rule. */
int eo_rule_to_json(const eo_rule_t *rule, eo_buf_t *out) EO_MUST_CHECK;

/* The value of path in a decoded event, as text for grouping: a string as is, a number or
 * bool as its JSON text, null/absent/object/array as "null" (absent = false). Writes at most
 * cap - 1 bytes and a NUL; longer values are cut (grouping uses the cut text). */
bool eo_rule_path_text(const eo_path_t *path, const eo_event_t *ev, char *out, size_t cap);

/* The numeric value of path in ev: false when absent, not a number, or not finite. */
bool eo_rule_path_number(const eo_path_t *path, const eo_event_t *ev, double *out);

/* True when the rule's condition holds for value. */
bool eo_condition_holds(const eo_condition_t *c, double value);

/* The condition's state machine per (rule, group). Times are window ends (event time), so a
 * replay gives the same transitions. */
typedef enum { EO_ALERT_NORMAL, EO_ALERT_PENDING, EO_ALERT_FIRING, EO_ALERT_RESOLVED } eo_alert_t;

typedef struct {
    eo_alert_t state;
    int64_t since_us;         /* when the condition started (pending) or stopped (firing) holding */
    int64_t resolved_at_us;   /* for the cooldown */
    bool holding;             /* firing: whether the condition held at the last step */
} eo_alert_state_t;

void eo_alert_init(eo_alert_state_t *s);

/* One observation of the window value at time at_us. Returns the new state when the step is a
 * transition that emits a summary (EO_ALERT_FIRING or EO_ALERT_RESOLVED), else -1. Rules:
 *  - normal: holds -> pending (for > 0) or firing (for == 0), unless within cooldown after the
 *    last resolve (then it stays normal);
 *  - pending: holds for >= for since it started -> firing; stops holding -> normal;
 *  - firing: stops holding (below clearBelow when set) for >= keepFiringFor -> resolved;
 *  - resolved: the next step is treated as from normal. */
int eo_alert_step(const eo_condition_t *c, int64_t cooldown_us, eo_alert_state_t *s, double value,
                  int64_t at_us);

/* "normal", "pending", "firing", "resolved". */
const char *eo_alert_name(eo_alert_t s);

/* The summary's eventId: a name-based UUID (version 5 layout, SHA-1) of
 * tenant, rule id, rule version, group text, window start and status, as 36 lower-case
 * characters and a NUL. The same inputs always give the same id. */
void eo_summary_event_id(const char *tenant_id, const char *rule_id, int64_t version,
                         const char *group, int64_t window_start_us, const char *status,
                         char out[37]);

/* Parses a duration ("90s", "5m", ...) into microseconds; EO_EINVAL when malformed, zero,
 * negative or over 10 years. */
int eo_duration_parse(const char *s, int64_t *us) EO_MUST_CHECK;

#endif
