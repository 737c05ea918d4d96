/* Analytics rules at run time (see rule.h): the value of a rule's path in a decoded event, the
 * condition and its state machine per (rule, group), and the summary eventId. The definition
 * (parsing, canonical JSON) is in rule.c. Pure and stateless: every function works on the
 * caller's storage only (an eo_alert_state_t belongs to whoever steps it), so any thread may
 * call any of them. */
#include "domain/rule.h"

#include <inttypes.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* ---- paths in events ---- */

/* The JSON value under a properties/context path, or NULL when absent. */
static json_t *path_walk(const eo_path_t *p, const eo_event_t *ev)
{
    json_t *v = p->root == EO_PATH_PROPERTIES ? ev->properties
                : p->root == EO_PATH_CONTEXT  ? ev->context
                                              : NULL;
    if (p->nkeys == 0 || p->nkeys > 4)
        return NULL;
    for (size_t i = 0; i < p->nkeys && v; i++) {
        if (!json_is_object(v) || p->key_off[i] + p->key_len[i] > EO_RULE_PATH_MAX)
            return NULL;
        v = json_object_getn(v, p->text + p->key_off[i], p->key_len[i]);
    }
    return v;
}

/* Copies s (n bytes) into out (cap bytes), cut before a character that does not fit. */
static void copy_cut(char *out, size_t cap, const char *s, size_t n)
{
    if (cap == 0)
        return;
    if (n > cap - 1) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

bool eo_rule_path_text(const eo_path_t *path, const eo_event_t *ev, char *out, size_t cap)
{
    eo_str_t text = {NULL, 0};
    char num[40];
    switch (path->root) {
    case EO_PATH_TYPE:
        text = ev->event_type;
        break;
    case EO_PATH_USER_ID:
        text = ev->user_id;
        break;
    case EO_PATH_ANONYMOUS_ID:
        text = ev->anonymous_id;
        break;
    case EO_PATH_PROPERTIES:
    case EO_PATH_CONTEXT: {
        json_t *v = path_walk(path, ev);
        if (!v)
            break;
        int n;
        if (json_is_string(v)) {
            text = (eo_str_t){json_string_value(v), json_string_length(v)};
            break;
        }
        if (json_is_integer(v))
            n = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else if (json_is_real(v))
            n = snprintf(num, sizeof num, "%.17g", json_real_value(v));
        else if (json_is_boolean(v))
            n = snprintf(num, sizeof num, "%s", json_is_true(v) ? "true" : "false");
        else /* null, object, array */
            n = snprintf(num, sizeof num, "null");
        text = (eo_str_t){num, (size_t)n};
        break;
    }
    }
    if (!text.s) {
        copy_cut(out, cap, "null", 4);
        return false;
    }
    copy_cut(out, cap, text.s, text.len);
    return true;
}

bool eo_rule_path_number(const eo_path_t *path, const eo_event_t *ev, double *out)
{
    if (path->root != EO_PATH_PROPERTIES && path->root != EO_PATH_CONTEXT)
        return false;
    json_t *v = path_walk(path, ev);
    if (!json_is_number(v))
        return false;
    double d = json_number_value(v);
    if (!isfinite(d))
        return false;
    *out = d;
    return true;
}

/* ---- the condition ---- */

bool eo_condition_holds(const eo_condition_t *c, double value)
{
    switch (c->op) {
    case EO_CMP_GE:
        return value >= c->value;
    case EO_CMP_GT:
        return value > c->value;
    case EO_CMP_LE:
        return value <= c->value;
    case EO_CMP_LT:
        return value < c->value;
    case EO_CMP_EQ:
        return value == c->value;
    }
    return false;
}

/* Whether a firing rule counts value as "stopped holding": beyond clearBelow (strictly below
 * it for >= and >, strictly above it for <= and <) when set, else not holding. */
static bool cleared(const eo_condition_t *c, double value)
{
    if (!c->has_clear)
        return !eo_condition_holds(c, value);
    if (c->op == EO_CMP_LE || c->op == EO_CMP_LT)
        return value > c->clear_value;
    return value < c->clear_value;
}

void eo_alert_init(eo_alert_state_t *s)
{
    *s = (eo_alert_state_t){
        .state = EO_ALERT_NORMAL, .since_us = 0, .resolved_at_us = INT64_MIN, .holding = false};
}

static int fire(eo_alert_state_t *s, int64_t at_us)
{
    s->state = EO_ALERT_FIRING;
    s->since_us = at_us;
    s->holding = true;
    return EO_ALERT_FIRING;
}

int eo_alert_step(const eo_condition_t *c, int64_t cooldown_us, eo_alert_state_t *s, double value,
                  int64_t at_us)
{
    if (!c->present)
        return -1;
    bool holds = eo_condition_holds(c, value);
    if (s->state == EO_ALERT_RESOLVED)
        s->state = EO_ALERT_NORMAL; /* resolved is normal for the next step */
    switch (s->state) {
    case EO_ALERT_RESOLVED:
    case EO_ALERT_NORMAL:
        if (!holds)
            return -1;
        if (s->resolved_at_us != INT64_MIN && at_us < s->resolved_at_us + cooldown_us)
            return -1; /* within cooldown: stays normal, no pending either */
        if (c->for_us == 0)
            return fire(s, at_us);
        s->state = EO_ALERT_PENDING;
        s->since_us = at_us;
        return -1;
    case EO_ALERT_PENDING:
        if (!holds) {
            s->state = EO_ALERT_NORMAL;
            return -1;
        }
        return at_us - s->since_us >= c->for_us ? fire(s, at_us) : -1;
    case EO_ALERT_FIRING:
        if (!cleared(c, value)) {
            s->holding = true;
            return -1;
        }
        if (s->holding) { /* stopped holding now: keepFiringFor counts from here */
            s->holding = false;
            s->since_us = at_us;
        }
        if (at_us - s->since_us < c->keep_firing_for_us)
            return -1;
        s->state = EO_ALERT_RESOLVED;
        s->resolved_at_us = at_us;
        return EO_ALERT_RESOLVED;
    }
    return -1;
}

const char *eo_alert_name(eo_alert_t s)
{
    switch (s) {
    case EO_ALERT_NORMAL:
        return "normal";
    case EO_ALERT_PENDING:
        return "pending";
    case EO_ALERT_FIRING:
        return "firing";
    case EO_ALERT_RESOLVED:
        return "resolved";
    }
    return "unknown";
}

/* ---- the summary eventId ---- */

/* The namespace of summary eventIds: a random (version 4) UUID drawn once for this purpose,
 * 90c16b62-0678-4ae8-b236-1e7d1878eab2. Never change it: ids already stored would not match. */
static const unsigned char summary_ns[16] = {0x90, 0xc1, 0x6b, 0x62, 0x06, 0x78, 0x4a, 0xe8,
                                             0xb2, 0x36, 0x1e, 0x7d, 0x18, 0x78, 0xea, 0xb2};

int eo_summary_event_id(const char *tenant_id, const char *rule_id, int64_t version,
                        const char *group, int64_t window_start_us, const char *status,
                        char out[37])
{
    char nums[2][24];
    snprintf(nums[0], sizeof nums[0], "%" PRId64, version);
    snprintf(nums[1], sizeof nums[1], "%" PRId64, window_start_us);
    const char *parts[] = {tenant_id, rule_id, nums[0], group ? group : "", nums[1], status};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
             EVP_DigestUpdate(ctx, summary_ns, sizeof summary_ns);
    for (size_t i = 0; ok && i < sizeof parts / sizeof parts[0]; i++)
        ok = (i == 0 || EVP_DigestUpdate(ctx, "\n", 1)) &&
             EVP_DigestUpdate(ctx, parts[i], strlen(parts[i]));
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen >= 16;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        out[0] = '\0';
        return EO_ENOMEM;
    }
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50); /* version 5 */
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80); /* variant 10 (RFC 9562) */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[md[i] >> 4];
        out[o++] = hex[md[i] & 15];
    }
    out[o] = '\0';
    return 0;
}

void eo_rule_reads(const eo_rule_t *rule, bool *properties, bool *context)
{
    for (size_t g = 0; g <= rule->ngroup; g++) {
        const eo_path_t *p = g < rule->ngroup ? &rule->group_by[g] : &rule->property;
        if (g == rule->ngroup && !rule->has_property)
            continue;
        *properties = *properties || p->root == EO_PATH_PROPERTIES;
        *context = *context || p->root == EO_PATH_CONTEXT;
    }
}
