/* The JSON lexer of the tree-less scanners (see json_lex.h). */
#include "domain/json_lex.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"

void eo_json_keys_init(eo_json_keys_t *k)
{
    memset(k, 0, sizeof *k);
}

void eo_json_keys_done(eo_json_keys_t *k)
{
    if (!k)
        return;
    free(k->keys);
    free(k->starts);
    memset(k, 0, sizeof *k);
}

/* True for '0'..'9'. */
static bool is_digit(unsigned c)
{
    return c >= '0' && c <= '9';
}

/* Skips the whitespace jansson skips (not \v or \f). */
void eo_jlex_skip_ws(eo_jcur_t *c)
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
int eo_jlex_string(eo_jcur_t *c, eo_jspan_t *v)
{
    const unsigned char *p = c->p + 1, *end = c->end;
    bool esc = false;
    v->kind = EO_JV_STRING;
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

void eo_jlex_real_parts(const unsigned char *s, size_t len, eo_jreal_t *out)
{
    const unsigned char *p = s, *end = s + len;
    out->neg = *p == '-';
    if (out->neg)
        p++;
    out->nd = 0;
    out->more = false;
    int64_t point = 0, first = -1, i = 0; /* digits before the point; first significant digit */
    bool fraction = false;
    for (; p < end && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.') {
            fraction = true;
            continue;
        }
        if (first < 0 && *p != '0')
            first = i;
        if (first >= 0) {
            if (out->nd < sizeof out->digits)
                out->digits[out->nd++] = (char)*p;
            else if (*p != '0')
                out->more = true;
        }
        i++;
        if (!fraction)
            point = i;
    }
    while (out->nd > 0 && out->digits[out->nd - 1] == '0') /* trailing zeros: not significant */
        out->nd--;
    out->zero = first < 0;
    int64_t exp = 0;
    if (p < end) {
        p++;
        bool minus = *p == '-';
        if (*p == '-' || *p == '+')
            p++;
        for (; p < end; p++)
            if ((exp = exp * 10 + (*p - '0')) > 1000000)
                exp = 1000000;
        exp = minus ? -exp : exp;
    }
    int64_t x = out->zero ? 0 : point - first - 1 + exp;
    out->exp10 = (int32_t)(x > 100000 ? 100000 : x < -100000 ? -100000 : x);
}

/* False when the real token (len bytes) overflows a double, as jansson refuses it ("real number
 * overflow"); underflow to zero or a subnormal is accepted, as jansson accepts it. Near the edge
 * the token is rewritten as 0.<digits>e<x+1> for strtod, its digits cut at 400 with a sticky 1
 * when a non-zero digit was cut: the edge (2^1024 - 2^970) has 309 digits, so the rounding is
 * the same. */
static bool real_in_range(const unsigned char *s, size_t len)
{
    eo_jreal_t parts;
    eo_jlex_real_parts(s, len, &parts);
    int32_t x = parts.exp10;
    if (parts.zero || x <= 307) /* below 10^308 < DBL_MAX */
        return true;
    if (x >= 309) /* at least 10^309 */
        return false;
    char text[440];
    size_t n = 0;
    if (*s == '-')
        text[n++] = '-';
    text[n++] = '0';
    text[n++] = '.';
    size_t digits = 0;
    bool started = false, cut = false;
    for (size_t i = 0; i < len && s[i] != 'e' && s[i] != 'E'; i++) {
        if (s[i] == '-' || s[i] == '.' || (!started && s[i] == '0'))
            continue;
        started = true;
        if (digits < 400)
            text[n++] = (char)s[i], digits++;
        else if (s[i] != '0')
            cut = true;
    }
    if (cut)
        text[n++] = '1';
    snprintf(text + n, sizeof text - n, "e%d", (int)x + 1);
    errno = 0;
    double d = strtod(text, NULL);
    return !((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE);
}

/* A number at c->p, in jansson's grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; an
 * integer (no fraction, no exponent) beyond int64 is refused as jansson refuses it. */
static int scan_number(eo_jcur_t *c, eo_jspan_t *v)
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
    v->kind = EO_JV_INTEGER;
    if (p < end && *p == '.') {
        if (++p >= end || !is_digit(*p))
            return EO_EPARSE;
        while (p < end && is_digit(*p))
            p++;
        v->kind = EO_JV_REAL;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        if (++p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return EO_EPARSE;
        while (p < end && is_digit(*p))
            p++;
        v->kind = EO_JV_REAL;
    }
    if (v->kind == EO_JV_INTEGER && ndigits >= 19 &&
        (ndigits > 19 ||
         memcmp(digits, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0))
        return EO_EPARSE;
    v->len = (size_t)(p - v->s);
    if (v->kind == EO_JV_REAL && !real_in_range(v->s, v->len))
        return EO_EPARSE;
    c->p = p;
    return 0;
}

/* The literal word (true, false, null) at c->p. */
static int scan_word(eo_jcur_t *c, const char *word, size_t n, eo_jkind_t kind, eo_jspan_t *v)
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
int eo_jlex_scalar(eo_jcur_t *c, eo_jspan_t *v)
{
    switch (*c->p) {
    case '"':
        return eo_jlex_string(c, v);
    case 't':
        return scan_word(c, "true", 4, EO_JV_BOOL, v);
    case 'f':
        return scan_word(c, "false", 5, EO_JV_BOOL, v);
    case 'n':
        return scan_word(c, "null", 4, EO_JV_NULL, v);
    default:
        return *c->p == '-' || is_digit(*c->p) ? scan_number(c, v) : EO_EPARSE;
    }
}

/* Inside an object, at a member: its key string, ':' and the whitespace up to its value. */
int eo_jlex_key(eo_jcur_t *c, eo_jspan_t *key)
{
    if (c->p >= c->end || *c->p != '"')
        return EO_EPARSE;
    int r = eo_jlex_string(c, key);
    if (r < 0)
        return r;
    eo_jlex_skip_ws(c);
    if (c->p >= c->end || *c->p != ':')
        return EO_EPARSE;
    c->p++;
    eo_jlex_skip_ws(c);
    return 0;
}

/* Orders two validated strings by content (code points); 0 when equal. */
static int compare_text(const eo_jspan_t *a, const eo_jspan_t *b)
{
    if (!a->esc && !b->esc) { /* UTF-8 byte order is code point order */
        int r = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
        return r ? r : (a->len > b->len) - (a->len < b->len);
    }
    const unsigned char *p = a->s, *pe = a->s + a->len, *q = b->s, *qe = b->s + b->len;
    while (p < pe && q < qe) {
        uint32_t x = eo_jlex_next_cp(&p), y = eo_jlex_next_cp(&q);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return (p < pe) - (q < qe);
}

static int compare_keys(const void *a, const void *b)
{
    return compare_text(a, b);
}

/* False when two of the n keys are the same: pairwise for a few, sorted for many (the keys are
 * the closing object's own, about to be dropped, so their order does not matter). */
static bool keys_unique(eo_jspan_t *keys, size_t n)
{
    if (n <= 16) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if ((keys[i].esc || keys[j].esc || keys[i].len == keys[j].len) &&
                    eo_jlex_same_text(&keys[i], &keys[j]))
                    return false;
        return true;
    }
    qsort(keys, n, sizeof *keys, compare_keys);
    for (size_t i = 1; i < n; i++)
        if (compare_text(&keys[i - 1], &keys[i]) == 0)
            return false;
    return true;
}

/* Records a key of the innermost open object (keys: NULL when not checking). */
static int push_key(eo_json_keys_t *keys, const eo_jspan_t *key)
{
    if (!keys)
        return 0;
    if (EO_ARRAY_RESERVE(keys->keys, keys->cap, keys->nkeys + 1, 64) < 0)
        return EO_ENOMEM;
    keys->keys[keys->nkeys++] = *key;
    return 0;
}

/* The object or array at c->p, whose depth (jansson's count: the outermost value is 1) is
 * depth; its objects' keys checked for duplicates when keys is not NULL. */
static int skip_container(eo_jcur_t *c, size_t depth, eo_json_keys_t *keys)
{
    uint64_t objects[(JSON_PARSER_MAX_DEPTH + 63) / 64]; /* bit i: the i-th open one is {} */
    size_t open = 0; /* containers open; a value read now is at depth + open */
    eo_jspan_t v;
    int r;
    size_t base = keys ? keys->nkeys : 0;
    for (;;) {
        if (c->p >= c->end || depth + open > JSON_PARSER_MAX_DEPTH)
            goto fail;
        unsigned ch = *c->p;
        if (ch == '{' || ch == '[') {
            uint64_t bit = UINT64_C(1) << (open % 64);
            objects[open / 64] = ch == '{' ? objects[open / 64] | bit : objects[open / 64] & ~bit;
            if (keys) {
                if (EO_ARRAY_RESERVE(keys->starts, keys->starts_cap, open + 1, 16) < 0) {
                    r = EO_ENOMEM;
                    goto fail_r;
                }
                keys->starts[open] = keys->nkeys;
            }
            open++;
            c->p++;
            eo_jlex_skip_ws(c);
            if (c->p >= c->end || *c->p != (ch == '{' ? '}' : ']')) {
                if (ch == '{' && ((r = eo_jlex_key(c, &v)) < 0 || (r = push_key(keys, &v)) < 0))
                    goto fail_r;
                continue; /* to its first value */
            }
            c->p++;
            open--;
        } else if ((r = eo_jlex_scalar(c, &v)) < 0) {
            goto fail_r;
        }
        /* a value ended: close the containers that end with it, up to the next value */
        for (;;) {
            if (open == 0) {
                if (keys)
                    keys->nkeys = base;
                return 0;
            }
            eo_jlex_skip_ws(c);
            if (c->p >= c->end)
                goto fail;
            bool object = objects[(open - 1) / 64] >> ((open - 1) % 64) & 1;
            if (*c->p == ',') {
                c->p++;
                eo_jlex_skip_ws(c);
                if (object && ((r = eo_jlex_key(c, &v)) < 0 || (r = push_key(keys, &v)) < 0))
                    goto fail_r;
                break;
            }
            if (*c->p != (object ? '}' : ']'))
                goto fail;
            c->p++;
            open--;
            if (object && keys) {
                size_t start = keys->starts[open];
                if (!keys_unique(keys->keys + start, keys->nkeys - start))
                    goto fail;
                keys->nkeys = start;
            }
        }
    }
fail:
    r = EO_EPARSE;
fail_r:
    if (keys)
        keys->nkeys = base;
    return r;
}

int eo_jlex_value(eo_jcur_t *c, size_t depth, eo_json_keys_t *keys, eo_jspan_t *v)
{
    if (c->p >= c->end || depth > JSON_PARSER_MAX_DEPTH)
        return EO_EPARSE;
    if (*c->p != '{' && *c->p != '[')
        return eo_jlex_scalar(c, v);
    v->kind = *c->p == '{' ? EO_JV_OBJECT : EO_JV_ARRAY;
    v->s = c->p;
    v->esc = false;
    int r = skip_container(c, depth, keys);
    v->len = (size_t)(c->p - v->s);
    return r;
}

/* The next item of the container being read, after its opening bracket (first) or an item: 1
 * with c at the item, 0 after the closing bracket close, or EO_EPARSE. */
static int next_item(eo_jcur_t *c, bool first, unsigned char close)
{
    eo_jlex_skip_ws(c);
    if (c->p >= c->end)
        return EO_EPARSE;
    if (*c->p == close) {
        c->p++;
        return 0;
    }
    if (!first) {
        if (*c->p != ',')
            return EO_EPARSE;
        c->p++;
        eo_jlex_skip_ws(c);
    }
    return 1;
}

int eo_jlex_next_element(eo_jcur_t *c, bool first)
{
    return next_item(c, first, ']');
}

int eo_json_check(const void *bytes, size_t len, eo_json_keys_t *keys, eo_jspan_t *v)
{
    if (!bytes || len == 0)
        return EO_EPARSE;
    eo_jcur_t c = {bytes, (const unsigned char *)bytes + len};
    eo_jlex_skip_ws(&c);
    int r = eo_jlex_value(&c, 1, keys, v);
    if (r < 0)
        return r;
    eo_jlex_skip_ws(&c);
    return c.p == c.end ? 0 : EO_EPARSE;
}

/* The next member of the object being read, after its '{' (first) or a member's value: 1 with
 * *key and c at the value, 0 after the closing '}', or EO_EPARSE. */
int eo_jlex_next_member(eo_jcur_t *c, bool first, eo_jspan_t *key)
{
    int r = next_item(c, first, '}');
    if (r <= 0)
        return r;
    r = eo_jlex_key(c, key);
    return r < 0 ? r : 1;
}

/* The next code point of a validated string's content at *pp, which it advances. */
uint32_t eo_jlex_next_cp(const unsigned char **pp)
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
bool eo_jlex_same_text(const eo_jspan_t *a, const eo_jspan_t *b)
{
    if (!a->esc && !b->esc)
        return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    const unsigned char *p = a->s, *pe = a->s + a->len, *q = b->s, *qe = b->s + b->len;
    while (p < pe && q < qe)
        if (eo_jlex_next_cp(&p) != eo_jlex_next_cp(&q))
            return false;
    return p == pe && q == qe;
}

/* Writes the content of a validated string into out (cap bytes): its length, or SIZE_MAX when
 * it does not fit. */
size_t eo_jlex_unescape(const eo_jspan_t *v, char *out, size_t cap)
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
        uint32_t cp = eo_jlex_next_cp(&p);
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

size_t eo_jlex_text_len(const eo_jspan_t *v)
{
    if (!v->esc)
        return v->len;
    size_t n = 0;
    const unsigned char *p = v->s, *end = v->s + v->len;
    while (p < end) {
        uint32_t cp = eo_jlex_next_cp(&p);
        n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    }
    return n;
}

/* After the opening quote of a validated string: the byte after its closing quote. */
static const unsigned char *after_string(const unsigned char *p, const unsigned char *end)
{
    for (;;) {
        const unsigned char *q = memchr(p, '"', (size_t)(end - p));
        if (!q)
            return end;
        size_t backslashes = 0;
        while (q - backslashes > p && q[-1 - (ptrdiff_t)backslashes] == '\\')
            backslashes++;
        if (backslashes % 2 == 0)
            return q + 1;
        p = q + 1;
    }
}

void eo_jlex_skip_valid(eo_jcur_t *c)
{
    const unsigned char *p = c->p, *end = c->end;
    if (p >= end)
        return;
    if (*p == '"') {
        c->p = after_string(p + 1, end);
        return;
    }
    if (*p != '{' && *p != '[') {
        /* A validated scalar ends at the first of these (a lookup: memchr per byte cost the
         * collector 9 % of its CPU, docs/benchmarks.md). */
        static const bool ends_scalar[256] = {
            [','] = true,  ['}'] = true,  [']'] = true,  [' '] = true,
            ['\t'] = true, ['\n'] = true, ['\r'] = true, [':'] = true};
        while (p < end && !ends_scalar[*p])
            p++;
        c->p = p;
        return;
    }
    size_t depth = 0;
    while (p < end) {
        unsigned ch = *p++;
        if (ch == '"') {
            p = after_string(p, end);
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if ((ch == '}' || ch == ']') && --depth == 0) {
            break;
        }
    }
    c->p = p;
}
