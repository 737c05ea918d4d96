/* Growing arrays by doubling: one helper instead of a realloc ladder per array. */
#ifndef EO_CORE_ARRAY_H
#define EO_CORE_ARRAY_H

#include <stddef.h>

#include "core/error.h"

/* Makes room for at least `need` elements of `size` bytes in *items (capacity *cap), doubling
 * from `first` (or more when need is larger). On failure (EO_ENOMEM, also on size overflow)
 * *items and *cap are unchanged. */
int eo_array_reserve(void *items, size_t *cap, size_t need, size_t size,
                     size_t first) EO_MUST_CHECK;

/* eo_array_reserve for a typed pointer: EO_ARRAY_RESERVE(p->items, p->cap, p->n + 1, 64). */
#define EO_ARRAY_RESERVE(ptr, cap, need, first)                                                    \
    eo_array_reserve(&(ptr), &(cap), (need), sizeof *(ptr), (first))

#endif
