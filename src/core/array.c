/* Growing arrays by doubling (see array.h). */
#include "core/array.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int eo_array_reserve(void *items, size_t *cap, size_t need, size_t size, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : (first ? first : 1);
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return EO_ENOMEM;
        n *= 2;
    }
    if (size && n > SIZE_MAX / size)
        return EO_ENOMEM;
    void *old;
    memcpy(&old, items, sizeof old);
    void *p = realloc(old, n * size);
    if (!p)
        return EO_ENOMEM;
    memcpy(items, &p, sizeof p);
    *cap = n;
    return 0;
}
