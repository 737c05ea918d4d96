/* Form-urlencoded parsing (see form.h). */
#include "domain/form.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "domain/hex.h"

/* True when s (n bytes) is valid UTF-8 (no overlongs, no surrogates). */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

int eo_form_unescape(const char *in, size_t n, char *out, size_t cap)
{
    if (cap == 0)
        return EO_ELIMIT; /* not even room for the NUL */
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return EO_EPARSE; /* '%' needs two hex digits */
            int hi = eo_hex_digit(in[i + 1]);
            int lo = eo_hex_digit(in[i + 2]);
            if (hi < 0 || lo < 0)
                return EO_EPARSE;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if ((unsigned char)c < 0x20 || c == 0x7f)
            return EO_EPARSE;
        if (o + 1 >= cap)
            return EO_ELIMIT;
        out[o++] = c;
    }
    out[o] = '\0';
    if (!utf8_valid((const unsigned char *)out, o))
        return EO_EPARSE;
    return (int)o;
}

void eo_form_done(eo_form_t *form)
{
    for (size_t i = 0; i < form->count; i++) {
        free(form->pairs[i].name);
        free(form->pairs[i].value);
    }
    free(form->pairs);
    form->pairs = NULL;
    form->count = 0;
}

/* Decodes in (n bytes) into a new string, or NULL (*r says why). */
static char *decoded(const char *in, size_t n, int *r)
{
    char *out = malloc(n + 1);
    if (!out) {
        *r = EO_ENOMEM;
        return NULL;
    }
    int d = eo_form_unescape(in, n, out, n + 1);
    if (d < 0) {
        free(out);
        *r = d;
        return NULL;
    }
    return out;
}

int eo_form_parse(const char *body, size_t len, size_t max_pairs, eo_form_t *form, char *err,
                  size_t errlen)
{
    form->pairs = NULL;
    form->count = 0;
    size_t cap = 0;
    int r = 0;
    for (size_t pos = 0; pos < len && r == 0;) {
        const char *start = body + pos;
        const char *amp = memchr(start, '&', len - pos);
        size_t n = amp ? (size_t)(amp - start) : len - pos;
        pos += n + 1;
        if (n == 0)
            continue;
        if (form->count == max_pairs) {
            snprintf(err, errlen, "more than %zu form parameters", max_pairs);
            r = EO_ELIMIT;
            break;
        }
        const char *eq = memchr(start, '=', n);
        size_t nlen = eq ? (size_t)(eq - start) : n;
        if (nlen == 0) {
            snprintf(err, errlen, "a form parameter has no name");
            r = EO_EPARSE;
            break;
        }
        if ((r = EO_ARRAY_RESERVE(form->pairs, cap, form->count + 1, 8)) < 0)
            break;
        eo_form_pair_t *pair = &form->pairs[form->count];
        pair->name = decoded(start, nlen, &r);
        pair->value =
            pair->name ? decoded(eq ? eq + 1 : start + n, eq ? n - nlen - 1 : 0, &r) : NULL;
        if (!pair->value) {
            free(pair->name);
            if (r != EO_ENOMEM)
                snprintf(err, errlen, "a form parameter is not valid percent-encoded UTF-8");
            if (r == EO_ELIMIT)
                r = EO_EPARSE;
            break;
        }
        form->count++;
    }
    if (r < 0)
        eo_form_done(form);
    return r;
}

const char *eo_form_get(const eo_form_t *form, const char *name, size_t *count)
{
    const char *value = NULL;
    size_t seen = 0;
    for (size_t i = 0; i < form->count; i++) {
        if (strcmp(form->pairs[i].name, name) == 0) {
            if (!value)
                value = form->pairs[i].value;
            seen++;
        }
    }
    if (count)
        *count = seen;
    return value;
}
