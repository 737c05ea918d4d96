/* Cryptographically strong random bytes (getrandom). Thread-safe. */
#ifndef EO_CORE_RANDOM_H
#define EO_CORE_RANDOM_H

#include <stddef.h>

#include "core/error.h"

/* Straight from the kernel: for secrets (keys, salts, write keys). */
int eo_random_bytes(void *out, size_t n) EO_MUST_CHECK;

/* The same kernel bytes, handed out from a small per-thread block (one getrandom per 512 bytes,
 * each byte used once; the block is dropped in a forked child): for identifiers made per
 * request or event (request, trace and message ids), where a system call each is the cost. */
int eo_random_id_bytes(void *out, size_t n) EO_MUST_CHECK;

#endif
