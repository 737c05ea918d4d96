/* A hash map from byte-string keys to pointers, open addressing with linear probing and
 * backward-shift deletion (no tombstones), growing by doubling. For the analytics engine's
 * state (groups per rule, records of a changelog restore). The map copies keys; values are the
 * caller's. Not thread-safe: one owner. */
#ifndef EO_CORE_HMAP_H
#define EO_CORE_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct {
    uint64_t hash;
    char *key; /* owned, NUL-terminated copy (keys may hold NULs: len counts) */
    size_t len;
    void *value;
} eo_hmap_slot_t;

typedef struct {
    eo_hmap_slot_t *slots; /* cap entries; key == NULL marks a free slot */
    size_t cap, count;
} eo_hmap_t;

/* 64-bit hash of n bytes (FNV-1a with a final avalanche). Deterministic across runs and
 * versions: the analytics engine keeps such hashes of users in its checkpoints. */
uint64_t eo_hash64(const void *p, size_t n);

/* 64-bit hash of n bytes, eight at a time (a multiply-xorshift per word and murmur3's
 * finaliser): several times faster than eo_hash64 on keys of tens of bytes. For tables in
 * memory only: its values may change between versions. */
uint64_t eo_hash_mem(const void *p, size_t n);

void eo_hmap_init(eo_hmap_t *m);
/* Frees the keys and the table; calls free_value on each value when not NULL. */
void eo_hmap_done(eo_hmap_t *m, void (*free_value)(void *));

/* The value of key, or NULL. */
void *eo_hmap_get(const eo_hmap_t *m, const void *key, size_t len);

/* Sets key to value. *old receives the value it replaces (NULL when the key is new). Returns 0
 * or EO_ENOMEM (the map is unchanged). */
int eo_hmap_put(eo_hmap_t *m, const void *key, size_t len, void *value, void **old) EO_MUST_CHECK;

/* Removes key; returns its value (NULL when absent). */
void *eo_hmap_del(eo_hmap_t *m, const void *key, size_t len);

/* Iteration: for (size_t i = 0; eo_hmap_next(m, &i, &slot);) ... ; no insertion meanwhile
 * (a deletion of the current slot moves later ones back: use eo_hmap_del_at). */
bool eo_hmap_next(const eo_hmap_t *m, size_t *i, eo_hmap_slot_t **slot);

/* Deletes the slot eo_hmap_next just returned (at index *i - 1) and steps *i back so that the
 * slot shifted into its place is visited; returns its value. Iteration may then revisit a slot
 * that wrapped around from the table's start; callers make their per-slot work idempotent. */
void *eo_hmap_del_at(eo_hmap_t *m, size_t *i);

#endif
