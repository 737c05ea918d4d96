/* Growable byte buffer with a hard cap, plus JSON and COPY-text escaping appenders.
 * A buffer is owned by whoever called eo_buf_init(); not thread-safe.
 *
 * Two ways to append. The eo_buf_append* functions return their own result and may be retried
 * after a failure (a smaller append can still fit). The eo_buf_put* functions return nothing:
 * the buffer remembers its first error (as sqlite's string accumulator does), every put after
 * it does nothing, and the sequence is checked once with eo_buf_error(). Both kinds record the
 * first error; eo_buf_reset() and eo_buf_truncate() clear it. */
#ifndef EO_CORE_BUF_H
#define EO_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct {
    char *data; /* always NUL-terminated when len > 0 or after any append */
    size_t len;
    size_t cap;
    size_t max; /* appends that would grow len past max fail with EO_ELIMIT */
    int err;    /* first failed append since init/reset/truncate (0: none) */
} eo_buf_t;

void eo_buf_init(eo_buf_t *b, size_t max);
void eo_buf_done(eo_buf_t *b);
void eo_buf_reset(eo_buf_t *b);
/* Drops everything from len on (no-op if len >= b->len) and clears the remembered error. */
void eo_buf_truncate(eo_buf_t *b, size_t len);
/* The first error of any append since init/reset/truncate, or 0. */
static inline int eo_buf_error(const eo_buf_t *b)
{
    return b->err;
}
/* Transfers ownership of the data to the caller (free()); the buffer is left empty. */
char *eo_buf_steal(eo_buf_t *b, size_t *len);

int eo_buf_reserve(eo_buf_t *b, size_t extra) EO_MUST_CHECK;
int eo_buf_append(eo_buf_t *b, const void *p, size_t n) EO_MUST_CHECK;
int eo_buf_append_str(eo_buf_t *b, const char *s) EO_MUST_CHECK;
int eo_buf_append_char(eo_buf_t *b, char c) EO_MUST_CHECK;
int eo_buf_printf(eo_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))) EO_MUST_CHECK;
/* Appends s (n bytes, valid UTF-8 expected) as a quoted JSON string. */
int eo_buf_append_json_str(eo_buf_t *b, const char *s, size_t n) EO_MUST_CHECK;
/* Appends s escaped for PostgreSQL COPY text format (backslash, tab, newline, CR). */
int eo_buf_append_copy_text(eo_buf_t *b, const char *s, size_t n) EO_MUST_CHECK;

/* Sticky appends: no-ops once an append failed; check eo_buf_error() at the end. */
void eo_buf_put(eo_buf_t *b, const void *p, size_t n);
void eo_buf_puts(eo_buf_t *b, const char *s);
void eo_buf_putc(eo_buf_t *b, char c);
void eo_buf_putf(eo_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void eo_buf_put_json_str(eo_buf_t *b, const char *s, size_t n);
void eo_buf_put_copy_text(eo_buf_t *b, const char *s, size_t n);
/* Appends v in decimal. */
void eo_buf_put_i64(eo_buf_t *b, int64_t v);

/* Writes v in decimal and a NUL into out (EO_I64_TEXT bytes: the longest is
 * "-9223372036854775808"); returns the length. printf's cost without its parsing, for numbers
 * written per request. */
#define EO_I64_TEXT 21
size_t eo_fmt_i64(char out[EO_I64_TEXT], int64_t v);

#endif
