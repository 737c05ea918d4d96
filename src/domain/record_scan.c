/* The record scanner (see record_scan.h). One pass over the bytes with a cursor that never reads
 * past its end: JSON values are validated as jansson's parser would, the members the engine
 * needs are kept as spans of the input, and each object's members are checked once it closes
 * (so that key order does not matter). Values are skipped without recursion: a bit per open
 * container says whether it is an object. Pure; the caller owns every struct. */
#include "domain/record_scan.h"

#include <jansson.h>
#include <string.h>

#include "domain/rfc3339.h"

typedef struct {
    const unsigned char *p, *end;
} cur_t;

typedef enum { V_NONE, V_NULL, V_STRING, V_INTEGER, V_REAL, V_BOOL, V_OBJECT, V_ARRAY } vkind_t;

/* A value as it lies in the input: a string's content between its quotes (esc: it holds
 * backslash escapes), a number's token, a literal's word, a container's whole text. */
typedef struct {
    vkind_t kind;
    const unsigned char *s;
    size_t len;
    bool esc;
} span_t;

/* True for '0'..'9'. */
static bool is_digit(unsigned c)
{
    return c >= '0' && c <= '9';
}

/* Skips the whitespace jansson skips (not \v or \f). */
static void skip_ws(cur_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
        c->p++;
}

/* The value of 4 hex digits at p (4 readable bytes), or -1. */
static int32_t hex4(const unsigned char *p)
{
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        v <<= 4;
        if (is_digit(c))
            v += (int32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v += (int32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v += (int32_t)(c - 'A' + 10);
        else
            return -1;
    }
    return v;
}

/* The length of the valid UTF-8 sequence of 2..4 bytes at p (before end), or 0: no overlong
 * forms, surrogates or code points past U+10FFFF (jansson's utf8_check_first/full). */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* The number of plain bytes (printable ASCII but '"' and '\\') that start the n bytes at p, or
 * n. Eight bytes at a time on little-endian machines: a byte below 0x80 minus 0x20, or xor'ed
 * with '"' or '\\' and minus 1, borrows into its high bit exactly when it is not plain; a borrow
 * carried into a later byte only follows a byte that is not, so the first flagged byte is
 * exact. */
static size_t plain_run(const unsigned char *p, size_t n)
{
    size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
        uint64_t flagged = ((w - ones * 0x20) | (quote - ones) | (backslash - ones) | w) & highs;
        if (flagged)
            return i + (size_t)__builtin_ctzll(flagged) / 8;
    }
#endif
    while (i < n && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\')
        i++;
    return i;
}

/* A string at c->p (its opening quote): raw control characters, bad escapes, \u0000, lone or
 * unpaired surrogates and bad UTF-8 are refused. Leaves c after the closing quote. */
static int scan_string(cur_t *c, span_t *v)
{
    const unsigned char *p = c->p + 1, *end = c->end;
    bool esc = false;
    v->kind = V_STRING;
    v->s = p;
    for (;;) {
        p += plain_run(p, (size_t)(end - p));
        if (p >= end)
            return EO_EPARSE;
        unsigned ch = *p;
        if (ch == '"')
            break;
        if (ch < 0x20)
            return EO_EPARSE;
        if (ch >= 0x80) {
            size_t n = utf8_seq(p, end);
            if (!n)
                return EO_EPARSE;
            p += n;
            continue;
        }
        esc = true;
        if (end - p < 2)
            return EO_EPARSE;
        ch = p[1];
        if (ch != 'u') {
            if (!memchr("\"\\/bfnrt", (int)ch, 8))
                return EO_EPARSE;
            p += 2;
            continue;
        }
        int32_t u = end - p >= 6 ? hex4(p + 2) : -1;
        if (u <= 0 || (u >= 0xdc00 && u <= 0xdfff)) /* \u0000: jansson refuses NUL */
            return EO_EPARSE;
        p += 6;
        if (u >= 0xd800 && u <= 0xdbff) {
            int32_t lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
            if (lo < 0xdc00 || lo > 0xdfff)
                return EO_EPARSE;
            p += 6;
        }
    }
    v->len = (size_t)(p - v->s);
    v->esc = esc;
    c->p = p + 1;
    return 0;
}

/* A number at c->p, in jansson's grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; an
 * integer (no fraction, no exponent) beyond int64 is refused as jansson refuses it. */
static int scan_number(cur_t *c, span_t *v)
{
    const unsigned char *p = c->p, *end = c->end;
    v->s = p;
    v->esc = false;
    bool neg = p < end && *p == '-';
    if (neg)
        p++;
    const unsigned char *digits = p;
    if (p >= end)
        return EO_EPARSE;
    if (*p == '0') {
        if (++p < end && is_digit(*p))
            return EO_EPARSE;
    } else if (is_digit(*p)) {
        while (p < end && is_digit(*p))
            p++;
    } else {
        return EO_EPARSE;
    }
    size_t ndigits = (size_t)(p - digits);
    v->kind = V_INTEGER;
    if (p < end && *p == '.') {
        if (++p >= end || !is_digit(*p))
            return EO_EPARSE;
        while (p < end && is_digit(*p))
            p++;
        v->kind = V_REAL;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        if (++p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return EO_EPARSE;
        while (p < end && is_digit(*p))
            p++;
        v->kind = V_REAL;
    }
    if (v->kind == V_INTEGER && ndigits >= 19 &&
        (ndigits > 19 ||
         memcmp(digits, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0))
        return EO_EPARSE;
    v->len = (size_t)(p - v->s);
    c->p = p;
    return 0;
}

/* The literal word (true, false, null) at c->p. */
static int scan_word(cur_t *c, const char *word, size_t n, vkind_t kind, span_t *v)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return EO_EPARSE;
    v->kind = kind;
    v->s = c->p;
    v->len = n;
    v->esc = false;
    c->p += n;
    return 0;
}

/* A string, number or literal at c->p (not at the end). */
static int scan_scalar(cur_t *c, span_t *v)
{
    switch (*c->p) {
    case '"':
        return scan_string(c, v);
    case 't':
        return scan_word(c, "true", 4, V_BOOL, v);
    case 'f':
        return scan_word(c, "false", 5, V_BOOL, v);
    case 'n':
        return scan_word(c, "null", 4, V_NULL, v);
    default:
        return *c->p == '-' || is_digit(*c->p) ? scan_number(c, v) : EO_EPARSE;
    }
}

/* Inside an object, at a member: its key string, ':' and the whitespace up to its value. */
static int scan_key(cur_t *c, span_t *key)
{
    if (c->p >= c->end || *c->p != '"')
        return EO_EPARSE;
    int r = scan_string(c, key);
    if (r < 0)
        return r;
    skip_ws(c);
    if (c->p >= c->end || *c->p != ':')
        return EO_EPARSE;
    c->p++;
    skip_ws(c);
    return 0;
}

/* The object or array at c->p, whose depth (jansson's count: the record is 1) is depth. */
static int skip_container(cur_t *c, size_t depth)
{
    uint64_t objects[(JSON_PARSER_MAX_DEPTH + 63) / 64]; /* bit i: the i-th open one is {} */
    size_t open = 0; /* containers open; a value read now is at depth + open */
    span_t v;
    int r;
    for (;;) {
        if (c->p >= c->end || depth + open > JSON_PARSER_MAX_DEPTH)
            return EO_EPARSE;
        unsigned ch = *c->p;
        if (ch == '{' || ch == '[') {
            uint64_t bit = UINT64_C(1) << (open % 64);
            objects[open / 64] = ch == '{' ? objects[open / 64] | bit : objects[open / 64] & ~bit;
            open++;
            c->p++;
            skip_ws(c);
            if (c->p >= c->end || *c->p != (ch == '{' ? '}' : ']')) {
                if (ch == '{' && (r = scan_key(c, &v)) < 0)
                    return r;
                continue; /* to its first value */
            }
            c->p++;
            open--;
        } else if ((r = scan_scalar(c, &v)) < 0) {
            return r;
        }
        /* a value ended: close the containers that end with it, up to the next value */
        for (;;) {
            if (open == 0)
                return 0;
            skip_ws(c);
            if (c->p >= c->end)
                return EO_EPARSE;
            bool object = objects[(open - 1) / 64] >> ((open - 1) % 64) & 1;
            if (*c->p == ',') {
                c->p++;
                skip_ws(c);
                if (object && (r = scan_key(c, &v)) < 0)
                    return r;
                break;
            }
            if (*c->p != (object ? '}' : ']'))
                return EO_EPARSE;
            c->p++;
            open--;
        }
    }
}

/* Any value at c->p at depth; v spans it (a string: its content). */
static int scan_value(cur_t *c, size_t depth, span_t *v)
{
    if (c->p >= c->end || depth > JSON_PARSER_MAX_DEPTH)
        return EO_EPARSE;
    if (*c->p != '{' && *c->p != '[')
        return scan_scalar(c, v);
    v->kind = *c->p == '{' ? V_OBJECT : V_ARRAY;
    v->s = c->p;
    v->esc = false;
    int r = skip_container(c, depth);
    v->len = (size_t)(c->p - v->s);
    return r;
}

/* The next member of the object being read, after its '{' (first) or a member's value: 1 with
 * *key and c at the value, 0 after the closing '}', or EO_EPARSE. */
static int next_member(cur_t *c, bool first, span_t *key)
{
    skip_ws(c);
    if (c->p >= c->end)
        return EO_EPARSE;
    if (*c->p == '}') {
        c->p++;
        return 0;
    }
    if (!first) {
        if (*c->p != ',')
            return EO_EPARSE;
        c->p++;
        skip_ws(c);
    }
    int r = scan_key(c, key);
    return r < 0 ? r : 1;
}

/* The next code point of a validated string's content at *pp, which it advances. */
static uint32_t next_cp(const unsigned char **pp)
{
    const unsigned char *p = *pp;
    if (*p == '\\') {
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        if (p[1] != 'u') {
            *pp = p + 2;
            return (unsigned char)to[(const char *)memchr(from, p[1], 8) - from];
        }
        uint32_t cp = (uint32_t)hex4(p + 2);
        p += 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)hex4(p + 2) - 0xdc00);
            p += 6;
        }
        *pp = p;
        return cp;
    }
    if (*p < 0x80) {
        *pp = p + 1;
        return *p;
    }
    size_t n = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;
    uint32_t cp = *p & (0x7fu >> n);
    for (size_t i = 1; i < n; i++)
        cp = cp << 6 | (p[i] & 0x3f);
    *pp = p + n;
    return cp;
}

/* True when two validated strings have the same content (whatever escapes spell it). */
static bool same_text(const span_t *a, const span_t *b)
{
    if (!a->esc && !b->esc)
        return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    const unsigned char *p = a->s, *pe = a->s + a->len, *q = b->s, *qe = b->s + b->len;
    while (p < pe && q < qe)
        if (next_cp(&p) != next_cp(&q))
            return false;
    return p == pe && q == qe;
}

/* Writes the content of a validated string into out (cap bytes): its length, or SIZE_MAX when
 * it does not fit. */
static size_t unescape(const span_t *v, char *out, size_t cap)
{
    const unsigned char *p = v->s, *end = v->s + v->len;
    size_t n = 0;
    while (p < end) {
        const unsigned char *bs = memchr(p, '\\', (size_t)(end - p));
        size_t run = (size_t)((bs ? bs : end) - p);
        if (run > cap - n)
            return SIZE_MAX;
        memcpy(out + n, p, run);
        n += run;
        p += run;
        if (!bs)
            break;
        uint32_t cp = next_cp(&p);
        unsigned char u[4];
        size_t k;
        if (cp < 0x80) {
            u[0] = (unsigned char)cp, k = 1;
        } else if (cp < 0x800) {
            u[0] = (unsigned char)(0xc0 | cp >> 6), u[1] = (unsigned char)(0x80 | (cp & 0x3f));
            k = 2;
        } else if (cp < 0x10000) {
            u[0] = (unsigned char)(0xe0 | cp >> 12);
            u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
            u[2] = (unsigned char)(0x80 | (cp & 0x3f));
            k = 3;
        } else {
            u[0] = (unsigned char)(0xf0 | cp >> 18);
            u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
            u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
            u[3] = (unsigned char)(0x80 | (cp & 0x3f));
            k = 4;
        }
        if (k > cap - n)
            return SIZE_MAX;
        memcpy(out + n, u, k);
        n += k;
    }
    return n;
}

/* The string v as an eo_str_t: into the input, or unescaped into the scan's scratch. */
static int take_str(eo_record_scan_t *out, const span_t *v, eo_str_t *dst)
{
    if (!v->esc) {
        dst->s = (const char *)v->s;
        dst->len = v->len;
        return 0;
    }
    char *at = out->scratch + out->scratch_used;
    size_t n = unescape(v, at, sizeof out->scratch - out->scratch_used);
    if (n == SIZE_MAX)
        return EO_EPARSE;
    out->scratch_used += n;
    dst->s = at;
    dst->len = n;
    return 0;
}

/* eo_event_normalize's rule for eventType and ids: not empty, not all blank, no control
 * characters. */
static bool usable_text(eo_str_t v)
{
    bool blank = true;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
        blank = blank && c == ' ';
    }
    return !blank;
}

/* An RFC 3339 string (null or absent allowed when optional: EO_NO_TIME). */
static int take_time(const span_t *v, bool optional, int64_t *us)
{
    *us = EO_NO_TIME;
    if (v->kind == V_NONE || v->kind == V_NULL)
        return optional ? 0 : EO_EPARSE;
    if (v->kind != V_STRING)
        return EO_EPARSE;
    char text[48]; /* longer than any timestamp eo_rfc3339_parse accepts (44) */
    const char *s = (const char *)v->s;
    size_t n = v->len;
    if (v->esc) {
        n = unescape(v, text, sizeof text);
        if (n == SIZE_MAX)
            return EO_EPARSE;
        s = text;
    }
    return eo_rfc3339_parse(s, n, us) < 0 ? EO_EPARSE : 0;
}

/* userId / anonymousId: a usable string, an integer (its decimal text: the token, which has no
 * leading zeros, except that -0 is 0), or null/absent. */
static int take_id(eo_record_scan_t *out, const span_t *v, char text[24], eo_str_t *dst)
{
    dst->s = NULL;
    dst->len = 0;
    if (v->kind == V_NONE || v->kind == V_NULL)
        return 0;
    if (v->kind == V_INTEGER) { /* at most 20 bytes: scan_number refused more than int64 */
        bool minus_zero = v->len == 2 && v->s[0] == '-' && v->s[1] == '0';
        memcpy(text, minus_zero ? v->s + 1 : v->s, minus_zero ? 1 : v->len);
        dst->s = text;
        dst->len = minus_zero ? 1 : v->len;
        return 0;
    }
    if (v->kind != V_STRING || take_str(out, v, dst) < 0 || !usable_text(*dst))
        return EO_EPARSE;
    return 0;
}

/* Parses the raw text of an object with jansson (duplicates refused); EO_ENOMEM or EO_EPARSE. */
static int load_object(const char *text, size_t len, json_t **out)
{
    json_error_t jerr;
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (*out)
        return 0;
    return json_error_code(&jerr) == json_error_out_of_memory ? EO_ENOMEM : EO_EPARSE;
}

/* json_equal of two objects given as raw text: 1, 0 or EO_ENOMEM. */
static int same_json(const span_t *a, const span_t *b)
{
    if (a->len == b->len && memcmp(a->s, b->s, a->len) == 0)
        return 1;
    json_t *x = NULL, *y = NULL;
    int r = load_object((const char *)a->s, a->len, &x);
    if (r == 0)
        r = load_object((const char *)b->s, b->len, &y);
    if (r == 0)
        r = json_equal(x, y) ? 1 : 0;
    json_decref(x);
    json_decref(y);
    return r == EO_ENOMEM ? r : r == 1;
}

/* The members of "event" the scan reads, in the order of eo_event_normalize's lookups. */
enum {
    M_MESSAGE_ID,
    M_EVENT_TYPE,
    M_EVENT, /* alias of eventType */
    M_NAME,  /* alias of eventType */
    M_USER_ID,
    M_ANONYMOUS_ID,
    M_TIMESTAMP,
    M_ORIGINAL_TIMESTAMP,
    M_SENT_AT,
    M_PROPERTIES,
    M_METADATA, /* alias of properties */
    M_CONTEXT,
    M_COUNT
};

typedef struct {
    const char *name;
    size_t len;
} name_t;

#define NAME(s)                                                                                    \
    {                                                                                              \
        s, sizeof s - 1                                                                            \
    }
static const name_t event_names[M_COUNT] = {
    NAME("messageId"), NAME("eventType"),   NAME("event"),     NAME("name"),
    NAME("userId"),    NAME("anonymousId"), NAME("timestamp"), NAME("originalTimestamp"),
    NAME("sentAt"),    NAME("properties"),  NAME("metadata"),  NAME("context")};

enum { R_V, R_TENANT_ID, R_RECEIVED_AT, R_EVENT, R_COUNT };
static const name_t record_names[R_COUNT] = {NAME("v"), NAME("tenantId"), NAME("receivedAt"),
                                             NAME("event")};
#undef NAME

/* The index of key in names, or -1. */
static int key_index(const span_t *key, const name_t *names, int count)
{
    for (int i = 0; i < count; i++) {
        if (!key->esc && key->len != names[i].len)
            continue;
        span_t name = {V_STRING, (const unsigned char *)names[i].name, names[i].len, false};
        if (same_text(key, &name))
            return i;
    }
    return -1;
}

/* The first non-null of aliases first..last, all other non-null ones equal to it (strings by
 * content, objects as json_equal; values of other kinds are never equal, which refuses them
 * either way). Returns the index, -1 when all are absent, or EO_EPARSE / EO_ENOMEM. */
static int pick_alias(const span_t *m, int first, int last, vkind_t kind)
{
    int chosen = -1;
    for (int i = first; i <= last; i++) {
        if (m[i].kind == V_NONE || m[i].kind == V_NULL)
            continue;
        if (m[i].kind != kind)
            return EO_EPARSE;
        if (chosen < 0) {
            chosen = i;
            continue;
        }
        int eq = kind == V_STRING ? same_text(&m[chosen], &m[i]) : same_json(&m[chosen], &m[i]);
        if (eq != 1)
            return eq < 0 ? eq : EO_EPARSE;
    }
    return chosen;
}

/* Checks the members of "event" as eo_event_normalize(EO_EVENT_FROM_RECORD) does, but for its
 * limits, and fills out. */
static int take_event(eo_record_scan_t *out, const span_t *m)
{
    int r;
    if (m[M_MESSAGE_ID].kind != V_STRING || take_str(out, &m[M_MESSAGE_ID], &out->message_id) < 0 ||
        !usable_text(out->message_id))
        return EO_EPARSE;
    int type = pick_alias(m, M_EVENT_TYPE, M_NAME, V_STRING);
    if (type < 0)
        return type == -1 ? EO_EPARSE : type;
    if (take_str(out, &m[type], &out->event_type) < 0 || !usable_text(out->event_type))
        return EO_EPARSE;
    if ((r = take_id(out, &m[M_USER_ID], out->id_text[0], &out->user_id)) < 0 ||
        (r = take_id(out, &m[M_ANONYMOUS_ID], out->id_text[1], &out->anonymous_id)) < 0)
        return r;
    if (!out->user_id.s && !out->anonymous_id.s)
        return EO_EPARSE;
    if ((r = take_time(&m[M_TIMESTAMP], false, &out->occurred_at_us)) < 0 ||
        (r = take_time(&m[M_ORIGINAL_TIMESTAMP], true, &out->original_timestamp_us)) < 0 ||
        (r = take_time(&m[M_SENT_AT], true, &out->sent_at_us)) < 0)
        return r;
    int props = pick_alias(m, M_PROPERTIES, M_METADATA, V_OBJECT);
    if (props < -1)
        return props;
    if (props >= 0) {
        out->properties = (const char *)m[props].s;
        out->properties_len = m[props].len;
    }
    int context = pick_alias(m, M_CONTEXT, M_CONTEXT, V_OBJECT);
    if (context < -1)
        return context;
    if (context >= 0) {
        out->context = (const char *)m[context].s;
        out->context_len = m[context].len;
    }
    return 0;
}

/* The "event" object at c->p (depth 2). */
static int scan_event(cur_t *c, eo_record_scan_t *out)
{
    span_t m[M_COUNT], key, skipped;
    for (int i = 0; i < M_COUNT; i++)
        m[i].kind = V_NONE;
    if (c->p >= c->end || *c->p != '{')
        return EO_EPARSE;
    c->p++;
    unsigned seen = 0;
    int r;
    for (bool first = true; (r = next_member(c, first, &key)) == 1; first = false) {
        int i = key_index(&key, event_names, M_COUNT);
        if (i >= 0 && (seen & 1u << i))
            return EO_EPARSE; /* a duplicate key */
        if (i >= 0)
            seen |= 1u << i;
        if ((r = scan_value(c, 3, i >= 0 ? &m[i] : &skipped)) < 0)
            return r;
    }
    return r < 0 ? r : take_event(out, m);
}

/* "tenantId": a string whose content is a canonical lower-case UUID. */
static int take_tenant(eo_record_scan_t *out, const span_t *v)
{
    char t[36];
    size_t n = v->kind == V_STRING ? unescape(v, t, sizeof t) : SIZE_MAX;
    if (n != 36 || !eo_uuid_valid(t, n))
        return EO_EPARSE;
    memcpy(out->tenant_id, t, 36);
    out->tenant_id[36] = '\0';
    return 0;
}

int eo_record_scan(const void *bytes, size_t len, eo_record_scan_t *out)
{
    out->tenant_id[0] = '\0';
    out->received_at_us = out->occurred_at_us = EO_NO_TIME;
    out->original_timestamp_us = out->sent_at_us = EO_NO_TIME;
    out->event_type = out->user_id = out->anonymous_id = out->message_id = (eo_str_t){NULL, 0};
    out->properties = out->context = NULL;
    out->properties_len = out->context_len = 0;
    out->scratch_used = 0;
    if (!bytes || len == 0)
        return EO_EPARSE;
    cur_t c = {bytes, (const unsigned char *)bytes + len};
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{')
        return EO_EPARSE;
    c.p++;
    span_t key, v;
    unsigned seen = 0;
    int r;
    for (bool first = true; (r = next_member(&c, first, &key)) == 1; first = false) {
        int i = key_index(&key, record_names, R_COUNT);
        if (i >= 0 && (seen & 1u << i))
            return EO_EPARSE; /* a duplicate key */
        if (i >= 0)
            seen |= 1u << i;
        if (i == R_EVENT) {
            r = scan_event(&c, out);
        } else {
            r = scan_value(&c, 2, &v);
            if (r == 0 && i == R_V)
                r = v.kind == V_INTEGER && v.len == 1 && v.s[0] == '1' ? 0 : EO_EPARSE;
            else if (r == 0 && i == R_TENANT_ID)
                r = take_tenant(out, &v);
            else if (r == 0 && i == R_RECEIVED_AT)
                r = take_time(&v, false, &out->received_at_us);
        }
        if (r < 0)
            return r;
    }
    if (r < 0)
        return r;
    skip_ws(&c);
    if (c.p != c.end || seen != (1u << R_COUNT) - 1)
        return EO_EPARSE;
    return 0;
}

int eo_record_from_scan(const eo_record_scan_t *s, bool want_properties, bool want_context,
                        eo_record_t *rec)
{
    memset(rec, 0, sizeof *rec);
    memcpy(rec->tenant_id, s->tenant_id, sizeof rec->tenant_id);
    rec->received_at_us = s->received_at_us;
    eo_event_t *ev = &rec->ev;
    ev->event_type = s->event_type;
    ev->user_id = s->user_id;
    ev->anonymous_id = s->anonymous_id;
    ev->message_id = s->message_id;
    ev->occurred_at_us = s->occurred_at_us;
    ev->original_timestamp_us = s->original_timestamp_us;
    ev->sent_at_us = s->sent_at_us;
    json_t *props = NULL, *context = NULL;
    int r = 0;
    if (want_properties && s->properties)
        r = load_object(s->properties, s->properties_len, &props);
    if (r == 0 && want_context && s->context)
        r = load_object(s->context, s->context_len, &context);
    if (r < 0) {
        json_decref(props);
        json_decref(context);
        return r;
    }
    /* root owns what was parsed: one object, or both in an array (an append takes its value's
     * reference even when it fails) */
    if (props && context) {
        rec->root = json_array();
        if (!rec->root) {
            json_decref(props);
            json_decref(context);
            return EO_ENOMEM;
        }
        if (json_array_append_new(rec->root, props) < 0) {
            json_decref(context);
            return EO_ENOMEM;
        }
        if (json_array_append_new(rec->root, context) < 0)
            return EO_ENOMEM;
    } else {
        rec->root = props ? props : context;
    }
    ev->properties = props;
    ev->context = context;
    return 0;
}
