/* The normal form of properties and context without a tree (see json_norm.h). */
#include "domain/json_norm.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "domain/json_out.h"

void eo_json_norm_string(const eo_jspan_t *v, eo_buf_t *out)
{
    static const char hex[] = "0123456789abcdef";
    eo_buf_putc(out, '"');
    if (!v->esc) { /* nothing in it needs an escape: the lexer refused raw controls */
        eo_buf_put(out, v->s, v->len);
        eo_buf_putc(out, '"');
        return;
    }
    const unsigned char *p = v->s, *end = v->s + v->len;
    while (p < end) {
        const unsigned char *bs = memchr(p, '\\', (size_t)(end - p));
        const unsigned char *stop = bs ? bs : end;
        eo_buf_put(out, p, (size_t)(stop - p));
        p = stop;
        if (!bs)
            break;
        uint32_t cp = eo_jlex_next_cp(&p);
        char u[6];
        size_t k = 0;
        if (cp == '"' || cp == '\\') {
            u[k++] = '\\', u[k++] = (char)cp;
        } else if (cp == '\n') {
            u[k++] = '\\', u[k++] = 'n';
        } else if (cp == '\r') {
            u[k++] = '\\', u[k++] = 'r';
        } else if (cp == '\t') {
            u[k++] = '\\', u[k++] = 't';
        } else if (cp < 0x20) {
            memcpy(u, "\\u00", 4);
            u[4] = hex[cp >> 4], u[5] = hex[cp & 15];
            k = 6;
        } else if (cp < 0x80) {
            u[k++] = (char)cp;
        } else if (cp < 0x800) {
            u[k++] = (char)(0xc0 | cp >> 6), u[k++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            u[k++] = (char)(0xe0 | cp >> 12), u[k++] = (char)(0x80 | (cp >> 6 & 0x3f));
            u[k++] = (char)(0x80 | (cp & 0x3f));
        } else {
            u[k++] = (char)(0xf0 | cp >> 18), u[k++] = (char)(0x80 | (cp >> 12 & 0x3f));
            u[k++] = (char)(0x80 | (cp >> 6 & 0x3f)), u[k++] = (char)(0x80 | (cp & 0x3f));
        }
        eo_buf_put(out, u, k);
    }
    eo_buf_putc(out, '"');
}

/* A real token with at most 15 significant digits and a modest exponent is printed by %.15g as
 * those digits (DBL_DIG = 15: they survive the round trip through the double), which is then
 * eo_json_format_real's answer; this writes %.15g's text straight from the digits. Others go
 * through strtod and eo_json_format_real. */
size_t eo_json_norm_real(const eo_jspan_t *v, char *out)
{
    eo_jreal_t parts;
    eo_jlex_real_parts(v->s, v->len, &parts);
    const char *digits = parts.digits;
    size_t nd = parts.nd, n = 0;
    if (parts.zero) { /* %.15g gives "0" or "-0" */
        if (parts.neg)
            out[n++] = '-';
        memcpy(out + n, "0.0", 4);
        return n + 3;
    }
    int64_t x = parts.exp10;
    if (parts.more || nd > 15 || x < -300 || x > 300) {
        char text[64], *heap = NULL, *t = text;
        if (v->len >= sizeof text && !(t = heap = malloc(v->len + 1)))
            return 0;
        memcpy(t, v->s, v->len);
        t[v->len] = '\0';
        double d = strtod(t, NULL);
        free(heap);
        return eo_json_format_real(d, out, 40);
    }
    if (parts.neg)
        out[n++] = '-';
    if (x < -4 || x >= 15) { /* d.ddde+XX */
        out[n++] = digits[0];
        if (nd > 1) {
            out[n++] = '.';
            memcpy(out + n, digits + 1, nd - 1);
            n += nd - 1;
        }
        out[n++] = 'e';
        out[n++] = x < 0 ? '-' : '+';
        int64_t ax = x < 0 ? -x : x;
        if (ax >= 100)
            out[n++] = (char)('0' + ax / 100);
        out[n++] = (char)('0' + ax / 10 % 10);
        out[n++] = (char)('0' + ax % 10);
        out[n] = '\0';
        return n;
    }
    if (x < 0) { /* 0.000ddd */
        out[n++] = '0';
        out[n++] = '.';
        for (int64_t k = -1; k > x; k--)
            out[n++] = '0';
        memcpy(out + n, digits, nd);
        n += nd;
        out[n] = '\0';
        return n;
    }
    for (int64_t k = 0; k <= x; k++) /* ddd[.ddd], then ".0" when whole */
        out[n++] = (size_t)k < nd ? digits[k] : '0';
    out[n++] = '.';
    if ((size_t)x + 1 < nd) {
        memcpy(out + n, digits + x + 1, nd - (size_t)x - 1);
        n += nd - (size_t)x - 1;
    } else {
        out[n++] = '0';
    }
    out[n] = '\0';
    return n;
}

/* A key or string: its length limit, then its normal form. */
static int put_text(const eo_jspan_t *v, const eo_event_limits_t *lim, eo_buf_t *out)
{
    if (eo_jlex_text_len(v) > lim->max_string_bytes)
        return EO_EINVAL;
    eo_json_norm_string(v, out);
    return 0;
}

/* The normal form of a scalar. */
static int put_scalar(const eo_jspan_t *v, const eo_event_limits_t *lim, eo_buf_t *out)
{
    if (v->kind == EO_JV_STRING)
        return put_text(v, lim, out);
    if (v->kind == EO_JV_INTEGER && v->len == 2 && v->s[0] == '-' && v->s[1] == '0') {
        eo_buf_putc(out, '0');
    } else if (v->kind == EO_JV_REAL) {
        char text[48];
        size_t n = eo_json_norm_real(v, text);
        if (!n)
            return EO_ENOMEM;
        eo_buf_put(out, text, n);
    } else {
        eo_buf_put(out, v->s, v->len);
    }
    return 0;
}

/* A member's key at c, its limits (length; the object's key count when top), then its normal
 * form and ':'. */
static int put_key(eo_jcur_t *c, bool top, size_t *top_keys, const eo_event_limits_t *lim,
                   eo_buf_t *out)
{
    eo_jspan_t key;
    if (eo_jlex_key(c, &key) < 0 || (top && ++*top_keys > lim->max_properties))
        return EO_EINVAL;
    int r = put_text(&key, lim, out);
    if (r < 0)
        return r;
    eo_buf_putc(out, ':');
    return 0;
}

int eo_json_norm_object(const eo_jspan_t *obj, const eo_event_limits_t *lim, eo_buf_t *out)
{
    uint64_t objects[(JSON_PARSER_MAX_DEPTH + 63) / 64]; /* bit i: the i-th open one is {} */
    eo_jcur_t c = {obj->s, obj->s + obj->len};
    size_t open = 0, top_keys = 0;
    eo_jspan_t v;
    int r;
    for (;;) {
        if (c.p >= c.end)
            return EO_EINVAL; /* not reached on checked text */
        unsigned ch = *c.p;
        if (ch == '{' || ch == '[') {
            if (open + 1 > lim->max_depth || open + 1 > JSON_PARSER_MAX_DEPTH)
                return EO_EINVAL;
            uint64_t bit = UINT64_C(1) << (open % 64);
            objects[open / 64] = ch == '{' ? objects[open / 64] | bit : objects[open / 64] & ~bit;
            open++;
            eo_buf_putc(out, (char)ch);
            c.p++;
            eo_jlex_skip_ws(&c);
            if (c.p < c.end && *c.p != (ch == '{' ? '}' : ']')) {
                if (ch == '{' && (r = put_key(&c, open == 1, &top_keys, lim, out)) < 0)
                    return r;
                continue; /* to its first value */
            }
            eo_buf_putc(out, (char)(ch == '{' ? '}' : ']'));
            c.p++;
            open--;
        } else {
            if (eo_jlex_scalar(&c, &v) < 0)
                return EO_EINVAL;
            if ((r = put_scalar(&v, lim, out)) < 0)
                return r;
        }
        /* a value ended: close the containers that end with it, up to the next value */
        for (;;) {
            if (open == 0)
                return eo_buf_error(out);
            eo_jlex_skip_ws(&c);
            if (c.p >= c.end)
                return EO_EINVAL;
            bool object = objects[(open - 1) / 64] >> ((open - 1) % 64) & 1;
            if (*c.p == ',') {
                c.p++;
                eo_jlex_skip_ws(&c);
                eo_buf_putc(out, ',');
                if (object && (r = put_key(&c, open == 1, &top_keys, lim, out)) < 0)
                    return r;
                break;
            }
            eo_buf_putc(out, (char)*c.p);
            c.p++;
            open--;
        }
    }
}
