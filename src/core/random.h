/* Cryptographically strong random bytes (getrandom). Thread-safe. */
#ifndef EO_CORE_RANDOM_H
#define EO_CORE_RANDOM_H

#include <stddef.h>

#include "core/error.h"

int eo_random_bytes(void *out, size_t n) EO_MUST_CHECK;

#endif
