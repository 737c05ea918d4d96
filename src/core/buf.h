/* Growable byte buffer with a hard cap, plus JSON and COPY-text escaping appenders.
 * A buffer is owned by whoever called eo_buf_init(); not thread-safe. */
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
} eo_buf_t;

void eo_buf_init(eo_buf_t *b, size_t max);
void eo_buf_done(eo_buf_t *b);
void eo_buf_reset(eo_buf_t *b);
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

#endif
