/* Analytics rules, the definition (see rule.h): a posted rule parsed and checked into
 * eo_rule_t, its canonical JSON, and rule equality. What the engine does with a rule at run time
 * (paths in events, the condition's state machine, the summary eventId) is in rule_eval.c. Pure
 * and stateless: every function works on the caller's storage only, so any thread may call any
 * of them.
 *
 * Parsing goes member by member in the order of the canonical JSON, each object's unknown
 * members first, so that the first error found is the same for the same input. */
#include "domain/rule.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "domain/qparams.h"
#include "domain/window.h"

#define MS_US INT64_C(1000)
#define S_US INT64_C(1000000)
#define DAY_US (INT64_C(86400) * S_US)
#define WEEK_US (7 * DAY_US)
#define DEFAULT_GRACE_US (60 * S_US)
#define DURATION_TEXT_MAX 24 /* "315360000000ms" and a NUL, with room */

void eo_rule_limits_default(eo_rule_limits_t *lim)
{
    *lim = (eo_rule_limits_t){
        .max_window_us = 31 * DAY_US,
        .min_window_us = S_US,
        .max_panes = 1440,
        .max_groups = 10000,
        .max_horizon_us = 7 * DAY_US,
        .max_buckets = 1000,
        .max_rule_bytes = 16384,
    };
}

/* ---- durations ---- */

/* Units from the largest down: the canonical form takes the first that divides exactly. */
static const struct {
    const char *name;
    int64_t us;
} units[] = {
    {"w", WEEK_US}, {"d", DAY_US}, {"h", 3600 * S_US}, {"m", 60 * S_US}, {"s", S_US}, {"ms", MS_US},
};
#define NUNITS (sizeof units / sizeof units[0])

/* "<digits><unit>" (n bytes): no sign, no space, no leading zero (a zero is one "0"); zero only
 * when allow_zero; at most EO_DURATION_MAX_US. */
static int duration_parse_n(const char *s, size_t n, bool allow_zero, int64_t *us)
{
    size_t i = 0;
    int64_t v = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (i == 15) /* past 10 years in any unit; keeps v far from overflow */
            return EO_EINVAL;
        v = v * 10 + (s[i] - '0');
        i++;
    }
    if (i == 0 || (s[0] == '0' && i > 1))
        return EO_EINVAL;
    for (size_t u = 0; u < NUNITS; u++) {
        size_t ul = strlen(units[u].name);
        if (n - i != ul || memcmp(s + i, units[u].name, ul) != 0)
            continue;
        if ((v == 0 && !allow_zero) || v > EO_DURATION_MAX_US / units[u].us)
            return EO_EINVAL;
        *us = v * units[u].us;
        return 0;
    }
    return EO_EINVAL;
}

int eo_duration_parse(const char *s, int64_t *us)
{
    return duration_parse_n(s, strlen(s), false, us);
}

/* The canonical text of us: the largest unit dividing it, "0s" for zero. False when us is
 * negative or not a whole number of milliseconds (no duration text says it). */
static bool duration_format(int64_t us, char out[DURATION_TEXT_MAX])
{
    if (us == 0) {
        snprintf(out, DURATION_TEXT_MAX, "0s");
        return true;
    }
    if (us < 0)
        return false;
    for (size_t u = 0; u < NUNITS; u++)
        if (us % units[u].us == 0) {
            snprintf(out, DURATION_TEXT_MAX, "%" PRId64 "%s", us / units[u].us, units[u].name);
            return true;
        }
    return false;
}

/* ---- errors and members ---- */

/* Replaces every byte outside printable ASCII by '?' (a field may hold an unknown key). */
static void sanitize(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

/* Fills err and returns EO_EINVAL. */
__attribute__((format(printf, 4, 5))) static int fail(eo_event_error_t *err, const char *code,
                                                      const char *field, const char *fmt, ...)
{
    snprintf(err->code, sizeof err->code, "%s", code);
    snprintf(err->field, sizeof err->field, "%s", field);
    sanitize(err->field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    sanitize(err->message);
    return EO_EINVAL;
}

/* "prefix.name", or name at the top level. */
static void field_name(char *out, size_t cap, const char *prefix, const char *name)
{
    snprintf(out, cap, "%s%s%s", prefix, *prefix ? "." : "", name);
}

/* Refuses the first member of obj not in names (NULL-terminated); what lists them. */
static int check_members(json_t *obj, const char *prefix, const char *const *names,
                         const char *what, eo_event_error_t *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool known = false;
        for (size_t i = 0; names[i] && !known; i++)
            known = strcmp(key, names[i]) == 0;
        if (!known) {
            char field[sizeof err->field];
            field_name(field, sizeof field, prefix, key);
            sanitize(field);
            return fail(err, "unknown_field", field, "'%s' is unknown; %s takes %s.", field,
                        *prefix ? prefix : "a rule", what);
        }
    }
    return 0;
}

/* A string member (v present); its bytes and length. */
static int want_string(json_t *v, const char *field, const char **s, size_t *n,
                       eo_event_error_t *err)
{
    if (!json_is_string(v))
        return fail(err, "invalid_type", field, "'%s' must be a string.", field);
    *s = json_string_value(v);
    *n = json_string_length(v);
    return 0;
}

/* One of names (count of them) as an index; missing_field when absent and required. */
static int get_enum(json_t *obj, const char *name, const char *field, const char *const *names,
                    size_t count, bool required, int *out, eo_event_error_t *err)
{
    json_t *v = json_object_get(obj, name);
    if (!v)
        return required ? fail(err, "missing_field", field, "'%s' is required.", field) : 0;
    const char *s = NULL;
    size_t n = 0;
    int r = want_string(v, field, &s, &n, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < count; i++)
        if (strlen(names[i]) == n && memcmp(s, names[i], n) == 0) {
            *out = (int)i;
            return 0;
        }
    char list[160] = "";
    for (size_t i = 0; i < count; i++) {
        size_t at = strlen(list);
        snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", names[i]);
    }
    return fail(err, "invalid_rule", field, "'%s' must be one of %s.", field, list);
}

/* A duration member: *present tells whether it was there (*us untouched when not). Zero is
 * accepted when min is 0. */
static int get_duration(json_t *obj, const char *name, const char *field, int64_t min, int64_t max,
                        bool *present, int64_t *us, eo_event_error_t *err)
{
    json_t *v = json_object_get(obj, name);
    *present = v != NULL;
    if (!v)
        return 0;
    if (json_is_number(v))
        return fail(err, "invalid_type", field,
                    "'%s' must be a duration string such as \"5m\"; numbers are not accepted as "
                    "durations.",
                    field);
    if (!json_is_string(v))
        return fail(err, "invalid_type", field, "'%s' must be a duration string such as \"5m\".",
                    field);
    int64_t d;
    if (duration_parse_n(json_string_value(v), json_string_length(v), true, &d) < 0)
        return fail(err, "invalid_rule", field,
                    "'%s' must be a whole number and a unit (ms, s, m, h, d or w) without sign, "
                    "space or leading zero, at most 10 years, such as \"5m\".",
                    field);
    if (d < min || d > max) {
        char lo[DURATION_TEXT_MAX], hi[DURATION_TEXT_MAX];
        if (!duration_format(min, lo))
            snprintf(lo, sizeof lo, "%" PRId64 "us", min);
        if (!duration_format(max, hi))
            snprintf(hi, sizeof hi, "%" PRId64 "us", max);
        return fail(err, "invalid_rule", field, "'%s' must be from %s to %s.", field, lo, hi);
    }
    *us = d;
    return 0;
}

/* An integer member in [min, max]; *present as for get_duration. */
static int get_int(json_t *obj, const char *name, const char *field, int64_t min, int64_t max,
                   bool *present, int64_t *out, eo_event_error_t *err)
{
    json_t *v = json_object_get(obj, name);
    *present = v != NULL;
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return fail(err, "invalid_type", field, "'%s' must be an integer.", field);
    json_int_t i = json_integer_value(v);
    if (i < min || i > max)
        return fail(err, "invalid_rule", field, "'%s' must be from %" PRId64 " to %" PRId64 ".",
                    field, min, max);
    *out = (int64_t)i;
    return 0;
}

/* A finite number member (integer or real); -0 is read as 0 so that it writes back as is. */
static int get_number(json_t *obj, const char *name, const char *field, bool *present, double *out,
                      eo_event_error_t *err)
{
    json_t *v = json_object_get(obj, name);
    *present = v != NULL;
    if (!v)
        return 0;
    if (!json_is_number(v))
        return fail(err, "invalid_type", field, "'%s' must be a number.", field);
    double d = json_number_value(v);
    if (!isfinite(d))
        return fail(err, "invalid_rule", field, "'%s' must be a finite number.", field);
    *out = d == 0 ? 0.0 : d;
    return 0;
}

static int get_bool(json_t *obj, const char *name, const char *field, bool *out,
                    eo_event_error_t *err)
{
    json_t *v = json_object_get(obj, name);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return fail(err, "invalid_type", field, "'%s' must be true or false.", field);
    *out = json_is_true(v);
    return 0;
}

/* ---- paths ---- */

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || c == '-';
}

/* Parses s (n bytes) into p; false when it is not a path of the grammar in rule.h. */
static bool path_parse(const char *s, size_t n, eo_path_t *p)
{
    static const struct {
        const char *text;
        eo_path_root_t root;
    } fixed[] = {
        {"type", EO_PATH_TYPE}, {"userId", EO_PATH_USER_ID}, {"anonymousId", EO_PATH_ANONYMOUS_ID}};
    memset(p, 0, sizeof *p);
    if (n == 0 || n > EO_RULE_PATH_MAX)
        return false;
    memcpy(p->text, s, n);
    p->text[n] = '\0';
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strlen(fixed[i].text) == n && memcmp(s, fixed[i].text, n) == 0) {
            p->root = fixed[i].root;
            return true;
        }
    size_t at;
    if (n > 11 && memcmp(s, "properties.", 11) == 0) {
        p->root = EO_PATH_PROPERTIES;
        at = 11;
    } else if (n > 8 && memcmp(s, "context.", 8) == 0) {
        p->root = EO_PATH_CONTEXT;
        at = 8;
    } else {
        return false;
    }
    size_t start = at;
    for (size_t i = at; i <= n; i++) {
        if (i < n && s[i] != '.') {
            if (!key_char(s[i]))
                return false;
            continue;
        }
        if (i == start || p->nkeys == 4)
            return false;
        p->key_off[p->nkeys] = start;
        p->key_len[p->nkeys++] = i - start;
        start = i + 1;
    }
    return true;
}

/* A path member (v present). */
static int want_path(json_t *v, const char *field, eo_path_t *p, eo_event_error_t *err)
{
    const char *s = NULL;
    size_t n = 0;
    int r = want_string(v, field, &s, &n, err);
    if (r < 0)
        return r;
    if (!path_parse(s, n, p))
        return fail(err, "invalid_rule", field,
                    "'%s' must be type, userId, anonymousId, or properties.<key> or context.<key> "
                    "with 1 to 4 keys of [A-Za-z0-9_$-] joined by '.', at most %d bytes.",
                    field, EO_RULE_PATH_MAX);
    return 0;
}

/* ---- the sections of a rule ---- */

static const char *const win_names[] = {"tumbling", "hopping", "sliding", "session"};
static const char *const fn_names[] = {
    "count", "unique_users",    "sum",          "mean",        "min",
    "max",   "rate_per_minute", "rolling_mean", "rolling_sum", "ewma"};
static const char *const op_names[] = {">=", ">", "<=", "<", "=="};
static const char *const emit_names[] = {"final", "changes"};
static const char *const of_names[] = {"count", "sum"};

/* A text member of 1..128 bytes: clean UTF-8 (no control characters), not only spaces. */
static int get_text(json_t *obj, const char *name, char *out, eo_event_error_t *err)
{
    json_t *v = json_object_get(obj, name);
    if (!v)
        return fail(err, "missing_field", name, "'%s' is required.", name);
    const char *s = NULL;
    size_t n = 0;
    int r = want_string(v, name, &s, &n, err);
    if (r < 0)
        return r;
    if (n == 0 || n > EO_RULE_NAME_MAX || strspn(s, " ") == n || !eo_q_text_ok(s, n))
        return fail(err, "invalid_rule", name,
                    "'%s' must be 1 to %d bytes of text without control characters, not only "
                    "spaces.",
                    name, EO_RULE_NAME_MAX);
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* A member a window of this type does not take. */
static int not_taken(const char *field, eo_win_type_t win, const char *why, eo_event_error_t *err)
{
    return fail(err, "invalid_rule", field, "'%s' is not taken by a %s window (%s).", field,
                win_names[win], why);
}

static int parse_window(json_t *w, const eo_rule_limits_t *lim, eo_rule_t *rule,
                        eo_event_error_t *err)
{
    static const char *const members[] = {"type", "size", "slide", "gap", "zone", NULL};
    if (!w)
        return fail(err, "missing_field", "window", "'window' is required.");
    if (!json_is_object(w))
        return fail(err, "invalid_type", "window", "'window' must be an object.");
    int r, type = 0;
    bool has;
    if ((r = check_members(w, "window", members, "type, size, slide, gap and zone", err)) < 0 ||
        (r = get_enum(w, "type", "window.type", win_names, 4, true, &type, err)) < 0)
        return r;
    rule->win = (eo_win_type_t)type;
    int64_t lo = lim->min_window_us, hi = lim->max_window_us;
    if (rule->win == EO_WIN_SESSION) {
        if (json_object_get(w, "size"))
            return not_taken("window.size", rule->win, "a session takes gap", err);
        if (json_object_get(w, "slide"))
            return not_taken("window.slide", rule->win, "a session takes gap", err);
        if ((r = get_duration(w, "gap", "window.gap", lo, hi, &has, &rule->gap_us, err)) < 0)
            return r;
        if (!has)
            return fail(err, "missing_field", "window.gap", "'window.gap' is required.");
    } else {
        if (json_object_get(w, "gap"))
            return not_taken("window.gap", rule->win, "gap is for session windows", err);
        if ((r = get_duration(w, "size", "window.size", lo, hi, &has, &rule->size_us, err)) < 0)
            return r;
        if (!has)
            return fail(err, "missing_field", "window.size", "'window.size' is required.");
    }
    if (rule->win == EO_WIN_HOPPING) {
        if ((r = get_duration(w, "slide", "window.slide", MS_US, EO_DURATION_MAX_US, &has,
                              &rule->slide_us, err)) < 0)
            return r;
        if (!has)
            return fail(err, "missing_field", "window.slide", "'window.slide' is required.");
        if (rule->slide_us >= rule->size_us)
            return fail(err, "invalid_rule", "window.slide",
                        "'window.slide' must be shorter than window.size (a window sliding by "
                        "its size is tumbling).");
        eo_window_t check;
        if (eo_window_init(&check, rule->size_us, rule->slide_us, lim->max_panes) < 0)
            return fail(err, "invalid_rule", "window.slide",
                        "'window.slide' cuts window.size into more than %" PRId64
                        " panes (size / gcd(size, slide)).",
                        lim->max_panes);
    } else if (rule->win != EO_WIN_SESSION && json_object_get(w, "slide")) {
        return not_taken(
            "window.slide", rule->win,
            rule->win == EO_WIN_TUMBLING ? "it slides by its size" : "size is its span", err);
    }
    if (rule->win == EO_WIN_TUMBLING)
        rule->slide_us = rule->size_us;

    snprintf(rule->zone, sizeof rule->zone, "UTC");
    json_t *zone = json_object_get(w, "zone");
    if (!zone)
        return 0;
    const char *s = NULL;
    size_t n = 0;
    if ((r = want_string(zone, "window.zone", &s, &n, err)) < 0)
        return r;
    if (rule->win != EO_WIN_TUMBLING || (rule->size_us != DAY_US && rule->size_us != WEEK_US))
        return fail(err, "invalid_rule", "window.zone",
                    "'window.zone' is taken only by tumbling windows of 1d or 1w.");
    /* the shape has no '.', so neither ".." */
    if (n > EO_RULE_ZONE_MAX || !eo_q_zone_shape_ok(s, n))
        return fail(err, "invalid_rule", "window.zone",
                    "'window.zone' must be an IANA time zone name such as Europe/Berlin (1 to %d "
                    "of [A-Za-z0-9_+/-], not starting with '/').",
                    EO_RULE_ZONE_MAX);
    memcpy(rule->zone, s, n);
    rule->zone[n] = '\0';
    return 0;
}

static int parse_group_by(json_t *g, eo_rule_t *rule, eo_event_error_t *err)
{
    if (!g)
        return 0;
    if (!json_is_array(g))
        return fail(err, "invalid_type", "groupBy", "'groupBy' must be an array of paths.");
    if (json_array_size(g) > EO_RULE_MAX_GROUP_BY)
        return fail(err, "invalid_rule", "groupBy", "'groupBy' takes at most %d paths.",
                    EO_RULE_MAX_GROUP_BY);
    for (size_t i = 0; i < json_array_size(g); i++) {
        char field[32];
        snprintf(field, sizeof field, "groupBy[%zu]", i);
        int r = want_path(json_array_get(g, i), field, &rule->group_by[i], err);
        if (r < 0)
            return r;
        for (size_t k = 0; k < i; k++)
            if (strcmp(rule->group_by[k].text, rule->group_by[i].text) == 0)
                return fail(err, "invalid_rule", field, "'%s' repeats groupBy[%zu].", field, k);
        rule->ngroup = i + 1;
    }
    return 0;
}

static bool fn_rolling(eo_agg_fn_t fn)
{
    return fn == EO_AGG_ROLLING_MEAN || fn == EO_AGG_ROLLING_SUM;
}

/* rolling_mean, rolling_sum and ewma: over the rule's consecutive windows. */
static bool fn_series(eo_agg_fn_t fn)
{
    return fn_rolling(fn) || fn == EO_AGG_EWMA;
}

static int parse_aggregate(json_t *a, const eo_rule_limits_t *lim, eo_rule_t *rule,
                           eo_event_error_t *err)
{
    static const char *const members[] = {"fn", "property", "of", "buckets", "span", NULL};
    if (!a)
        return fail(err, "missing_field", "aggregate", "'aggregate' is required.");
    if (!json_is_object(a))
        return fail(err, "invalid_type", "aggregate", "'aggregate' must be an object.");
    int r, fn = 0, of = 0;
    bool has;
    if ((r = check_members(a, "aggregate", members, "fn, property, of, buckets and span", err)) <
            0 ||
        (r = get_enum(a, "fn", "aggregate.fn", fn_names, 10, true, &fn, err)) < 0)
        return r;
    rule->fn = (eo_agg_fn_t)fn;
    const char *name = fn_names[fn];
    bool series = fn_series(rule->fn), rolling = fn_rolling(rule->fn);

    if (json_object_get(a, "of") && !series)
        return fail(err, "invalid_rule", "aggregate.of",
                    "'aggregate.of' is taken only by rolling_mean, rolling_sum and ewma.");
    if ((r = get_enum(a, "of", "aggregate.of", of_names, 2, false, &of, err)) < 0)
        return r;
    rule->of_sum = of == 1;

    bool needs_property = rule->fn == EO_AGG_SUM || rule->fn == EO_AGG_MEAN ||
                          rule->fn == EO_AGG_MIN || rule->fn == EO_AGG_MAX || rule->of_sum;
    json_t *property = json_object_get(a, "property");
    if (property && !needs_property)
        return fail(err, "invalid_rule", "aggregate.property",
                    series ? "'aggregate.property' is taken only with \"of\":\"sum\"."
                           : "'aggregate.property' is not taken by %s.",
                    name);
    if (!property && needs_property)
        return fail(err, "missing_field", "aggregate.property",
                    "'aggregate.property' is required by %s%s.", name, series ? " of a sum" : "");
    if (property) {
        if ((r = want_path(property, "aggregate.property", &rule->property, err)) < 0)
            return r;
        if (rule->property.root != EO_PATH_PROPERTIES && rule->property.root != EO_PATH_CONTEXT)
            return fail(err, "invalid_rule", "aggregate.property",
                        "'aggregate.property' must be a path into properties or context.");
        rule->has_property = true;
    }

    if (json_object_get(a, "buckets") && !rolling)
        return fail(err, "invalid_rule", "aggregate.buckets",
                    "'aggregate.buckets' is taken only by rolling_mean and rolling_sum.");
    if ((r = get_int(a, "buckets", "aggregate.buckets", 1, lim->max_buckets, &has, &rule->buckets,
                     err)) < 0)
        return r;
    if (rolling && !has)
        return fail(err, "missing_field", "aggregate.buckets",
                    "'aggregate.buckets' is required by %s.", name);
    if (json_object_get(a, "span") && rule->fn != EO_AGG_EWMA)
        return fail(err, "invalid_rule", "aggregate.span",
                    "'aggregate.span' is taken only by ewma.");
    if ((r = get_int(a, "span", "aggregate.span", 1, lim->max_buckets, &has, &rule->span, err)) < 0)
        return r;
    if (rule->fn == EO_AGG_EWMA && !has)
        return fail(err, "missing_field", "aggregate.span",
                    "'aggregate.span' is required by ewma.");

    if (rule->win == EO_WIN_SLIDING && rule->fn != EO_AGG_COUNT)
        return fail(err, "invalid_rule", "aggregate.fn",
                    "A sliding window counts events ('N within T'), not %s.", name);
    if (rule->win == EO_WIN_SESSION && rule->fn == EO_AGG_UNIQUE_USERS)
        return fail(err, "invalid_rule", "aggregate.fn",
                    "A session window takes no unique_users; group it by userId instead.");
    if (series && rule->win != EO_WIN_TUMBLING && rule->win != EO_WIN_HOPPING)
        return fail(err, "invalid_rule", "aggregate.fn",
                    "%s runs over consecutive windows, so it needs a tumbling or hopping window.",
                    name);
    return 0;
}

static int parse_condition(json_t *c, eo_rule_t *rule, eo_event_error_t *err)
{
    static const char *const members[] = {"op",         "value", "for", "keepFiringFor",
                                          "clearBelow", "early", NULL};
    if (!c)
        return 0;
    if (!json_is_object(c))
        return fail(err, "invalid_type", "condition", "'condition' must be an object.");
    eo_condition_t *cond = &rule->cond;
    cond->present = true;
    int r, op = 0;
    bool has;
    if ((r = check_members(c, "condition", members,
                           "op, value, for, keepFiringFor, clearBelow and early", err)) < 0 ||
        (r = get_enum(c, "op", "condition.op", op_names, 5, true, &op, err)) < 0 ||
        (r = get_number(c, "value", "condition.value", &has, &cond->value, err)) < 0)
        return r;
    cond->op = (eo_cmp_t)op;
    if (!has)
        return fail(err, "missing_field", "condition.value", "'condition.value' is required.");
    if ((r = get_duration(c, "for", "condition.for", 0, EO_DURATION_MAX_US, &has, &cond->for_us,
                          err)) < 0 ||
        (r = get_duration(c, "keepFiringFor", "condition.keepFiringFor", 0, EO_DURATION_MAX_US,
                          &has, &cond->keep_firing_for_us, err)) < 0 ||
        (r = get_number(c, "clearBelow", "condition.clearBelow", &cond->has_clear,
                        &cond->clear_value, err)) < 0)
        return r;
    if (cond->has_clear) {
        if (cond->op == EO_CMP_EQ)
            return fail(err, "invalid_rule", "condition.clearBelow",
                        "'condition.clearBelow' is not taken with \"==\".");
        bool above = cond->op == EO_CMP_LE || cond->op == EO_CMP_LT;
        if (above ? cond->clear_value < cond->value : cond->clear_value > cond->value)
            return fail(err, "invalid_rule", "condition.clearBelow",
                        above ? "'condition.clearBelow' must be at least condition.value with <= "
                                "and < (it clears above it then)."
                              : "'condition.clearBelow' must be at most condition.value with >= "
                                "and >.");
    }
    if ((r = get_bool(c, "early", "condition.early", &cond->early, err)) < 0)
        return r;
    if (cond->early) {
        if (rule->fn != EO_AGG_COUNT && rule->fn != EO_AGG_UNIQUE_USERS && rule->fn != EO_AGG_SUM)
            return fail(err, "invalid_rule", "condition.early",
                        "'condition.early' needs count, unique_users or sum, which only grow "
                        "within a window.");
        if (rule->win == EO_WIN_SESSION)
            return fail(err, "invalid_rule", "condition.early",
                        "'condition.early' needs a tumbling, hopping or sliding window.");
        if (cond->op != EO_CMP_GE && cond->op != EO_CMP_GT)
            return fail(err, "invalid_rule", "condition.early",
                        "'condition.early' needs >= or >, which a growing value can cross.");
    }
    return 0;
}

/* The members after aggregate: emit, grace, horizon, maxGroups, condition, cooldown, enabled. */
static int parse_rest(json_t *root, const eo_rule_limits_t *lim, eo_rule_t *rule,
                      eo_event_error_t *err)
{
    int r, emit = 0;
    bool has_grace, has_horizon, has;
    rule->grace_us = DEFAULT_GRACE_US;
    if ((r = get_enum(root, "emit", "emit", emit_names, 2, false, &emit, err)) < 0 ||
        (r = get_duration(root, "grace", "grace", 0, lim->max_horizon_us, &has_grace,
                          &rule->grace_us, err)) < 0 ||
        (r = get_duration(root, "horizon", "horizon", 0, lim->max_horizon_us, &has_horizon,
                          &rule->horizon_us, err)) < 0)
        return r;
    rule->emit = (eo_emit_t)emit;
    if (!has_horizon) {
        rule->horizon_us = rule->grace_us;
        if (rule->horizon_us > lim->max_horizon_us) /* only with a limit below the default */
            return fail(err, "invalid_rule", "grace",
                        "'grace' is longer than the longest horizon.");
    } else if (rule->horizon_us < rule->grace_us) {
        return fail(err, "invalid_rule", "horizon", "'horizon' must be at least grace.");
    }
    rule->max_groups = lim->max_groups;
    rule->enabled = true;
    if ((r = get_int(root, "maxGroups", "maxGroups", 1, lim->max_groups, &has, &rule->max_groups,
                     err)) < 0 ||
        (r = parse_condition(json_object_get(root, "condition"), rule, err)) < 0 ||
        (r = get_duration(root, "cooldown", "cooldown", 0, EO_DURATION_MAX_US, &has,
                          &rule->cooldown_us, err)) < 0 ||
        (r = get_bool(root, "enabled", "enabled", &rule->enabled, err)) < 0)
        return r;
    return 0;
}

static int parse_root(json_t *root, const eo_rule_limits_t *lim, eo_rule_t *rule,
                      eo_event_error_t *err)
{
    static const char *const members[] = {
        "name",    "eventType", "window",    "groupBy",  "aggregate", "emit", "grace",
        "horizon", "maxGroups", "condition", "cooldown", "enabled",   NULL};
    if (!json_is_object(root))
        return fail(err, "invalid_type", "", "A rule must be a JSON object.");
    int r;
    if ((r = check_members(root, "", members,
                           "name, eventType, window, groupBy, aggregate, emit, grace, horizon, "
                           "maxGroups, condition, cooldown and enabled",
                           err)) < 0 ||
        (r = get_text(root, "name", rule->name, err)) < 0)
        return r;
    json_t *type = json_object_get(root, "eventType");
    if (type && json_is_string(type) && strcmp(json_string_value(type), "*") == 0)
        snprintf(rule->event_type, sizeof rule->event_type, "*");
    else if ((r = get_text(root, "eventType", rule->event_type, err)) < 0)
        return r;
    if ((r = parse_window(json_object_get(root, "window"), lim, rule, err)) < 0 ||
        (r = parse_group_by(json_object_get(root, "groupBy"), rule, err)) < 0 ||
        (r = parse_aggregate(json_object_get(root, "aggregate"), lim, rule, err)) < 0)
        return r;
    return parse_rest(root, lim, rule, err);
}

int eo_rule_parse(const char *json, size_t len, const eo_rule_limits_t *lim, eo_rule_t *rule,
                  eo_event_error_t *err)
{
    memset(rule, 0, sizeof *rule);
    size_t max = lim->max_rule_bytes > EO_RULE_JSON_MAX ? lim->max_rule_bytes : EO_RULE_JSON_MAX;
    if (len > max) {
        fail(err, "too_large", "", "The rule is larger than %zu bytes.", max);
        return EO_ELIMIT;
    }
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root) {
        fail(err, "malformed_json", "", "The rule is not valid JSON: %s at byte %d.", je.text,
             je.position);
        return EO_EPARSE;
    }
    int r = parse_root(root, lim, rule, err);
    json_decref(root);
    return r;
}

/* ---- canonical JSON ---- */

static void put_duration(eo_buf_t *out, const char *member, int64_t us, bool *ok)
{
    char text[DURATION_TEXT_MAX];
    *ok = *ok && duration_format(us, text);
    eo_buf_putf(out, ",\"%s\":\"%s\"", member, text);
}

static void put_path(eo_buf_t *out, const eo_path_t *p)
{
    eo_buf_put_json_str(out, p->text, strnlen(p->text, sizeof p->text));
}

int eo_rule_to_json(const eo_rule_t *rule, eo_buf_t *out)
{
    if ((unsigned)rule->win > EO_WIN_SESSION || (unsigned)rule->fn > EO_AGG_EWMA ||
        (unsigned)rule->emit > EO_EMIT_CHANGES || (unsigned)rule->cond.op > EO_CMP_EQ ||
        rule->ngroup > EO_RULE_MAX_GROUP_BY)
        return EO_EINVAL;
    bool ok = true;
    eo_buf_puts(out, "{\"name\":");
    eo_buf_put_json_str(out, rule->name, strnlen(rule->name, sizeof rule->name));
    eo_buf_puts(out, ",\"eventType\":");
    eo_buf_put_json_str(out, rule->event_type, strnlen(rule->event_type, sizeof rule->event_type));
    eo_buf_putf(out, ",\"window\":{\"type\":\"%s\"", win_names[rule->win]);
    if (rule->win == EO_WIN_SESSION)
        put_duration(out, "gap", rule->gap_us, &ok);
    else
        put_duration(out, "size", rule->size_us, &ok);
    if (rule->win == EO_WIN_HOPPING)
        put_duration(out, "slide", rule->slide_us, &ok);
    if (rule->win == EO_WIN_TUMBLING && (rule->size_us == DAY_US || rule->size_us == WEEK_US)) {
        eo_buf_puts(out, ",\"zone\":");
        eo_buf_put_json_str(out, rule->zone, strnlen(rule->zone, sizeof rule->zone));
    }
    eo_buf_puts(out, "},\"groupBy\":[");
    for (size_t i = 0; i < rule->ngroup; i++) {
        if (i)
            eo_buf_putc(out, ',');
        put_path(out, &rule->group_by[i]);
    }
    eo_buf_putf(out, "],\"aggregate\":{\"fn\":\"%s\"", fn_names[rule->fn]);
    if (rule->has_property) {
        eo_buf_puts(out, ",\"property\":");
        put_path(out, &rule->property);
    }
    if (fn_series(rule->fn))
        eo_buf_putf(out, ",\"of\":\"%s\"", rule->of_sum ? "sum" : "count");
    if (fn_rolling(rule->fn))
        eo_buf_putf(out, ",\"buckets\":%" PRId64, rule->buckets);
    if (rule->fn == EO_AGG_EWMA)
        eo_buf_putf(out, ",\"span\":%" PRId64, rule->span);
    eo_buf_putf(out, "},\"emit\":\"%s\"", emit_names[rule->emit]);
    put_duration(out, "grace", rule->grace_us, &ok);
    put_duration(out, "horizon", rule->horizon_us, &ok);
    eo_buf_putf(out, ",\"maxGroups\":%" PRId64, rule->max_groups);
    const eo_condition_t *c = &rule->cond;
    if (c->present) {
        /* %.17g reads back as the same double (finite values only; parse refuses others) */
        ok = ok && isfinite(c->value) && (!c->has_clear || isfinite(c->clear_value));
        eo_buf_putf(out, ",\"condition\":{\"op\":\"%s\",\"value\":%.17g", op_names[c->op],
                    c->value);
        put_duration(out, "for", c->for_us, &ok);
        put_duration(out, "keepFiringFor", c->keep_firing_for_us, &ok);
        if (c->has_clear)
            eo_buf_putf(out, ",\"clearBelow\":%.17g", c->clear_value);
        eo_buf_putf(out, ",\"early\":%s}", c->early ? "true" : "false");
    }
    put_duration(out, "cooldown", rule->cooldown_us, &ok);
    eo_buf_putf(out, ",\"enabled\":%s}", rule->enabled ? "true" : "false");
    if (!ok)
        return EO_EINVAL;
    return eo_buf_error(out);
}

static bool path_equal(const eo_path_t *a, const eo_path_t *b)
{
    if (a->root != b->root || strcmp(a->text, b->text) != 0 || a->nkeys != b->nkeys)
        return false;
    for (size_t i = 0; i < 4; i++)
        if (a->key_off[i] != b->key_off[i] || a->key_len[i] != b->key_len[i])
            return false;
    return true;
}

bool eo_rule_equal(const eo_rule_t *a, const eo_rule_t *b)
{
    const eo_condition_t *x = &a->cond, *y = &b->cond;
    if (strcmp(a->name, b->name) != 0 || strcmp(a->event_type, b->event_type) != 0 ||
        a->win != b->win || a->size_us != b->size_us || a->slide_us != b->slide_us ||
        a->gap_us != b->gap_us || strcmp(a->zone, b->zone) != 0 || a->ngroup != b->ngroup ||
        a->fn != b->fn || a->of_sum != b->of_sum || a->has_property != b->has_property ||
        !path_equal(&a->property, &b->property) || a->buckets != b->buckets || a->span != b->span ||
        a->emit != b->emit || a->grace_us != b->grace_us || a->horizon_us != b->horizon_us ||
        a->max_groups != b->max_groups || a->cooldown_us != b->cooldown_us ||
        a->enabled != b->enabled)
        return false;
    for (size_t i = 0; i < EO_RULE_MAX_GROUP_BY; i++)
        if (!path_equal(&a->group_by[i], &b->group_by[i]))
            return false;
    return x->present == y->present && x->op == y->op && x->value == y->value &&
           x->for_us == y->for_us && x->keep_firing_for_us == y->keep_firing_for_us &&
           x->has_clear == y->has_clear && x->clear_value == y->clear_value && x->early == y->early;
}
