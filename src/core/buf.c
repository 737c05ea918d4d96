/* Growable, capped byte buffers (see buf.h). */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void eo_buf_init(eo_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->err = 0;
}

void eo_buf_done(eo_buf_t *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->err = 0;
}

void eo_buf_reset(eo_buf_t *b)
{
    eo_buf_truncate(b, 0);
}

void eo_buf_truncate(eo_buf_t *b, size_t len)
{
    if (len < b->len) {
        b->len = len;
        b->data[len] = '\0';
    }
    b->err = 0;
}

char *eo_buf_steal(eo_buf_t *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    b->err = 0;
    return p;
}

static int reserve(eo_buf_t *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return EO_ELIMIT;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (!p)
        return EO_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

static int append(eo_buf_t *b, const void *p, size_t n)
{
    int r = reserve(b, n);
    if (r < 0)
        return r;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

__attribute__((format(printf, 2, 0))) static int vprintf_(eo_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return EO_EINVAL;
    int r = reserve(b, (size_t)n);
    if (r < 0)
        return r;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

static int json_str(eo_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int r = reserve(b, n + 2);
    if (r < 0)
        return r;
    b->data[b->len++] = '"';
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if ((r = append(b, s + start, i - start)) < 0)
            return r;
        char esc[7] = {'\\', 0};
        size_t elen = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        if ((r = append(b, esc, elen)) < 0)
            return r;
        start = i + 1;
    }
    if ((r = append(b, s + start, n - start)) < 0)
        return r;
    return append(b, "\"", 1);
}

static int copy_text(eo_buf_t *b, const char *s, size_t n)
{
    int r = reserve(b, n);
    if (r < 0)
        return r;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i], e;
        switch (c) {
        case '\\':
            e = '\\';
            break;
        case '\t':
            e = 't';
            break;
        case '\n':
            e = 'n';
            break;
        case '\r':
            e = 'r';
            break;
        default:
            continue;
        }
        if ((r = append(b, s + start, i - start)) < 0)
            return r;
        char esc[2] = {'\\', e};
        if ((r = append(b, esc, 2)) < 0)
            return r;
        start = i + 1;
    }
    return append(b, s + start, n - start);
}

/* Every public appender records its first failure in b->err; the eo_buf_put* ones also do
 * nothing once it is set, so a sequence of them is checked once with eo_buf_error(). */
static int note(eo_buf_t *b, int r)
{
    if (r < 0 && !b->err)
        b->err = r;
    return r;
}

int eo_buf_reserve(eo_buf_t *b, size_t extra)
{
    return note(b, reserve(b, extra));
}

int eo_buf_append(eo_buf_t *b, const void *p, size_t n)
{
    return note(b, append(b, p, n));
}

int eo_buf_append_str(eo_buf_t *b, const char *s)
{
    return note(b, append(b, s, strlen(s)));
}

int eo_buf_append_char(eo_buf_t *b, char c)
{
    return note(b, append(b, &c, 1));
}

int eo_buf_printf(eo_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vprintf_(b, fmt, ap);
    va_end(ap);
    return note(b, r);
}

int eo_buf_append_json_str(eo_buf_t *b, const char *s, size_t n)
{
    return note(b, json_str(b, s, n));
}

int eo_buf_append_copy_text(eo_buf_t *b, const char *s, size_t n)
{
    return note(b, copy_text(b, s, n));
}

void eo_buf_put(eo_buf_t *b, const void *p, size_t n)
{
    if (!b->err)
        note(b, append(b, p, n));
}

void eo_buf_puts(eo_buf_t *b, const char *s)
{
    if (!b->err)
        note(b, append(b, s, strlen(s)));
}

void eo_buf_putc(eo_buf_t *b, char c)
{
    if (!b->err)
        note(b, append(b, &c, 1));
}

void eo_buf_putf(eo_buf_t *b, const char *fmt, ...)
{
    if (b->err)
        return;
    va_list ap;
    va_start(ap, fmt);
    note(b, vprintf_(b, fmt, ap));
    va_end(ap);
}

void eo_buf_put_json_str(eo_buf_t *b, const char *s, size_t n)
{
    if (!b->err)
        note(b, json_str(b, s, n));
}

void eo_buf_put_copy_text(eo_buf_t *b, const char *s, size_t n)
{
    if (!b->err)
        note(b, copy_text(b, s, n));
}

size_t eo_fmt_i64(char out[EO_I64_TEXT], int64_t v)
{
    char tmp[EO_I64_TEXT];
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v; /* INT64_MIN too */
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0)
        out[len++] = '-';
    while (n)
        out[len++] = tmp[--n];
    out[len] = '\0';
    return len;
}

void eo_buf_put_i64(eo_buf_t *b, int64_t v)
{
    char t[EO_I64_TEXT];
    size_t n = eo_fmt_i64(t, v);
    eo_buf_put(b, t, n);
}
