/* Analytics rules (issue 12; docs/analytics.md): the definition a tenant posts, parsed and
 * validated into eo_rule_t, written back as canonical JSON; the condition's state machine; the
 * summary eventId (rule.c: the definition; rule_eval.c: paths, the condition, the eventId).
 * Pure: no I/O, no clock (times are passed in, microseconds since the epoch).
 *
 * A rule, as posted (every member but name, eventType, window and aggregate is optional):
 *   {"name":"signup burst",                        1..128 bytes of text, not only spaces
 *    "eventType":"signup",                          an event type (1..128 bytes, the collector's
 *                                                   charset), or "*" for every type
 *    "window":{"type":"tumbling"|"hopping"|"sliding"|"session",
 *              "size":"5m", "slide":"1m" (hopping only), "gap":"30m" (session only),
 *              "zone":"Europe/Berlin" (tumbling "1d"/"1w" only; default "UTC")},
 *    "groupBy":["properties.plan","context.country"],   0..2 paths
 *    "aggregate":{"fn":"count"|"unique_users"|"sum"|"mean"|"min"|"max"|"rate_per_minute"|
 *                       "rolling_mean"|"rolling_sum"|"ewma",
 *                 "property":"properties.amount"  (sum, mean, min, max; and rolling_* and ewma of
 *                                                  a sum: then "of":"sum", else "of":"count"),
 *                 "of":"count"|"sum", "buckets":5 (rolling_*), "span":10 (ewma)},
 *    "emit":"final"|"changes",                      default "final"
 *    "grace":"60s",                                 default 60 s; "0s" allowed
 *    "horizon":"1h",                                correction horizon, >= grace, <= the limit;
 *                                                   default grace
 *    "maxGroups":1000,                              default and cap from eo_rule_limits_t
 *    "condition":{"op":">="|">"|"<="|"<"|"==", "value":100,
 *                 "for":"0s", "keepFiringFor":"10m", "clearBelow":80, "early":true},
 *    "cooldown":"15m",                              default "0s"
 *    "enabled":true}                                default true
 * Durations are strings (a JSON number is refused): an integer and a unit, ms, s, m, h, d or w
 * ("90s", "5m", "1d"), without sign, space or leading zero, at most 10 years (of 365 days).
 * Zero ("0s", also "0m", ...) is allowed for grace, horizon, for, keepFiringFor and cooldown
 * only. Paths are "type", "userId", "anonymousId", or "properties.<key>[.<key>...]" /
 * "context.<key>[...]" (keys of [A-Za-z0-9_$-], at most 4 levels, 128 bytes in all);
 * aggregate.property must be a properties/context path.
 * Windows: tumbling takes size (slide is size; a "slide" member is refused); hopping takes size
 * and slide (0 < slide < size, at most max_panes panes of gcd(size, slide)); sliding ("N within
 * T": size is T, slide_us and gap_us are 0) takes count only; session takes gap only (size_us
 * and slide_us are 0) and no unique_users. size and gap lie in [min_window_us, max_window_us].
 * rolling_* and ewma run over the rule's consecutive windows: tumbling or hopping only.
 * condition: op and value required; clearBelow is on the side where the condition does not hold
 * (<= value for >= and >, >= value for <= and <, where it means "clear above"; refused for ==);
 * early: true only with count, unique_users or sum, a tumbling/hopping/sliding window and
 * >= or > (false anywhere).
 * Unknown members are refused (a typo must not silently change a rule); so is null for any
 * member (leave an optional member out instead). */
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
/* The longest canonical JSON of any rule (eo_rule_to_json; about 1.5 KiB at worst). A size
 * limit below it counts as it, so that every canonical text parses again. */
#define EO_RULE_JSON_MAX 2048
#define EO_DURATION_MAX_US (INT64_C(3650) * 86400 * 1000000) /* 10 years of 365 days */

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
    int64_t size_us, slide_us, gap_us; /* slide = size for tumbling; sliding: size only;
                                        * session: gap only (the others 0) */
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
    size_t max_rule_bytes;  /* the posted JSON; 16 KiB; at least EO_RULE_JSON_MAX is applied */
} eo_rule_limits_t;

void eo_rule_limits_default(eo_rule_limits_t *lim);

/* Parses and validates a rule definition (the JSON object as posted; len bytes, at most
 * lim->max_rule_bytes). Returns 0 with every default filled in, or:
 *  - EO_ELIMIT, code "too_large" (field ""): longer than lim->max_rule_bytes (or than
 *    EO_RULE_JSON_MAX when the limit is below it);
 *  - EO_EPARSE, code "malformed_json" (field ""): not JSON (duplicate keys included);
 *  - EO_EINVAL with code "invalid_type" (field "" when the body is not an object),
 *    "unknown_field", "missing_field" or "invalid_rule", and err->field naming the member as a
 *    dotted path ("window.size", "condition.op", "groupBy[1]", an unknown "window.sise").
 * err->field is printable ASCII (other bytes of an unknown key become '?'); err->message is one
 * sentence. The first error in the order of the canonical JSON is reported. *rule is zeroed
 * first and unspecified after a failure. */
int eo_rule_parse(const char *json, size_t len, const eo_rule_limits_t *lim, eo_rule_t *rule,
                  eo_event_error_t *err) EO_MUST_CHECK;

/* Appends the canonical JSON of rule: members in the order of the comment above, every
 * default filled in (condition only when present; window.zone only for tumbling 1d/1w windows;
 * "of" only for rolling_* and ewma), durations in the largest unit dividing them ("300s" is "5m",
 * "90s" stays, zero is "0s"), numbers as %.17g. eo_rule_parse of the output (with the same
 * limits) gives an eo_rule_equal rule. EO_EINVAL for a rule no definition gives (an enum out
 * of range, a duration that is negative or not whole milliseconds, a value not finite); else
 * the buffer's error (EO_ELIMIT, EO_ENOMEM) or 0. */
int eo_rule_to_json(const eo_rule_t *rule, eo_buf_t *out) EO_MUST_CHECK;

/* True when a and b are the same rule, field by field (unused paths and texts are compared as
 * eo_rule_parse leaves them: zeroed). */
bool eo_rule_equal(const eo_rule_t *a, const eo_rule_t *b);

/* The value of path in a decoded event, as text for grouping: a string as is, an integer as
 * %lld, a real as %.17g, a bool as true/false, null/absent/object/array as "null"; returns
 * false when absent (a NULL userId/anonymousId, a missing key, a key below a non-object), else
 * true. Writes at most cap - 1 bytes and a NUL (nothing when cap is 0); a longer value is cut
 * before the first UTF-8 character that does not fit (grouping uses the cut text). */
bool eo_rule_path_text(const eo_path_t *path, const eo_event_t *ev, char *out, size_t cap);

/* The numeric value of path in ev (integer or real JSON numbers): false when absent, not a
 * number (a string "12" is not), not finite, or the path is not into properties/context. */
bool eo_rule_path_number(const eo_path_t *path, const eo_event_t *ev, double *out);

/* Sets *properties / *context when the rule reads a path into an event's properties / context
 * (groupBy or aggregate.property); leaves them alone otherwise (OR over several rules). */
void eo_rule_reads(const eo_rule_t *rule, bool *properties, bool *context);

/* True when the rule's condition holds for value. */
bool eo_condition_holds(const eo_condition_t *c, double value);

/* The condition's state machine per (rule, group). */
typedef enum { EO_ALERT_NORMAL, EO_ALERT_PENDING, EO_ALERT_FIRING, EO_ALERT_RESOLVED } eo_alert_t;

typedef struct {
    eo_alert_t state;
    int64_t since_us;       /* when the condition started (pending) or stopped (firing) holding */
    int64_t resolved_at_us; /* the last resolve, for the cooldown; INT64_MIN: never */
    bool holding;           /* firing: whether the last step was not "cleared" (see below) */
} eo_alert_state_t;

/* Normal, never resolved. */
void eo_alert_init(eo_alert_state_t *s);

/* One observation of the window value at time at_us (steps come in time order; a step may
 * repeat the last time, e.g. an early crossing and then the window's final value). Returns the
 * new state when the step is a transition that emits a summary (EO_ALERT_FIRING or
 * EO_ALERT_RESOLVED), else -1; without a condition (c->present false) always -1. "holds" is
 * eo_condition_holds; "cleared" is value < clearBelow for >= and >, value > clearBelow for <=
 * and < (strictly), and "does not hold" without clearBelow. Rules:
 *  - resolved: becomes normal, then the step is taken as from normal;
 *  - normal: holds -> firing when for == 0, else pending (since = at). Not while within
 *    cooldown: at < last resolve + cooldown (then it stays normal, not even pending);
 *  - pending: does not hold -> normal; holds and at - since >= for -> firing; else pending;
 *  - firing: not cleared -> stays firing (holding; a later clear restarts keepFiringFor);
 *    cleared -> since = the first cleared step's time, and when at - since >= keepFiringFor
 *    -> resolved (at once with keepFiringFor 0); between clearBelow and value it stays firing.
 * Times are window ends (event time), so a replay gives the same transitions. */
int eo_alert_step(const eo_condition_t *c, int64_t cooldown_us, eo_alert_state_t *s, double value,
                  int64_t at_us);

/* "normal", "pending", "firing", "resolved". */
const char *eo_alert_name(eo_alert_t s);

/* The summary's eventId: a name-based UUID (RFC 9562 version 5: SHA-1, version and variant
 * bits set) in the namespace 90c16b62-0678-4ae8-b236-1e7d1878eab2 of the name
 * tenant "\n" rule id "\n" version "\n" group "\n" window start "\n" status (version and
 * start in decimal, start in microseconds; group NULL counts as ""), as 36 lower-case
 * characters and a NUL. The same inputs always give the same id; only group may hold '\n'
 * (ids and status do not), so the name is unambiguous. Returns 0, or EO_ENOMEM when OpenSSL
 * could not digest (out is then ""). */
int eo_summary_event_id(const char *tenant_id, const char *rule_id, int64_t version,
                        const char *group, int64_t window_start_us, const char *status,
                        char out[37]) EO_MUST_CHECK;

/* Parses a duration ("90s", "5m", ...; NUL-terminated) into microseconds; EO_EINVAL when
 * malformed, zero, negative or over EO_DURATION_MAX_US. */
int eo_duration_parse(const char *s, int64_t *us) EO_MUST_CHECK;

#endif
