/* Hash map (see hmap.h). Load factor at most 1/2; capacity a power of two. */
#include "core/hmap.h"

#include <stdlib.h>
#include <string.h>

uint64_t eo_hash64(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= UINT64_C(1099511628211);
    }
    h ^= h >> 33; /* murmur3's finaliser: FNV's low bits are weak for short keys */
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

uint64_t eo_hash_mem(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = UINT64_C(0x9E3779B97F4A7C15) ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * UINT64_C(0xff51afd7ed558ccd);
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * UINT64_C(0xff51afd7ed558ccd);
        h ^= h >> 32;
    }
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

void eo_hmap_init(eo_hmap_t *m)
{
    m->slots = NULL;
    m->cap = m->count = 0;
}

void eo_hmap_done(eo_hmap_t *m, void (*free_value)(void *))
{
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        free(m->slots[i].key);
        if (free_value)
            free_value(m->slots[i].value);
    }
    free(m->slots);
    eo_hmap_init(m);
}

static size_t find(const eo_hmap_t *m, uint64_t h, const void *key, size_t len, bool *found)
{
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    for (;; i = (i + 1) & mask) {
        const eo_hmap_slot_t *s = &m->slots[i];
        if (!s->key) {
            *found = false;
            return i;
        }
        if (s->hash == h && s->len == len && !memcmp(s->key, key, len)) {
            *found = true;
            return i;
        }
    }
}

void *eo_hmap_get(const eo_hmap_t *m, const void *key, size_t len)
{
    if (!m->count)
        return NULL;
    bool found;
    size_t i = find(m, eo_hash_mem(key, len), key, len, &found);
    return found ? m->slots[i].value : NULL;
}

static int grow(eo_hmap_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    eo_hmap_slot_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return EO_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        eo_hmap_slot_t *s = &m->slots[i];
        if (!s->key)
            continue;
        size_t j = (size_t)s->hash & (cap - 1);
        while (slots[j].key)
            j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int eo_hmap_put(eo_hmap_t *m, const void *key, size_t len, void *value, void **old)
{
    *old = NULL;
    if ((m->count + 1) * 2 > m->cap && grow(m) < 0)
        return EO_ENOMEM;
    uint64_t h = eo_hash_mem(key, len);
    bool found;
    size_t i = find(m, h, key, len, &found);
    if (found) {
        *old = m->slots[i].value;
        m->slots[i].value = value;
        return 0;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return EO_ENOMEM;
    memcpy(copy, key, len);
    copy[len] = '\0';
    m->slots[i] = (eo_hmap_slot_t){h, copy, len, value};
    m->count++;
    return 0;
}

/* Empties slot i and shifts the following run back so that every key stays reachable. */
static void remove_at(eo_hmap_t *m, size_t i)
{
    size_t mask = m->cap - 1;
    free(m->slots[i].key);
    m->slots[i].key = NULL;
    m->count--;
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = (size_t)m->slots[j].hash & mask;
        /* the entry at j may move to i when its home is not in (i, j] (cyclically) */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        m->slots[i] = m->slots[j];
        m->slots[j].key = NULL;
        i = j;
    }
}

void *eo_hmap_del(eo_hmap_t *m, const void *key, size_t len)
{
    if (!m->count)
        return NULL;
    bool found;
    size_t i = find(m, eo_hash_mem(key, len), key, len, &found);
    if (!found)
        return NULL;
    void *v = m->slots[i].value;
    remove_at(m, i);
    return v;
}

bool eo_hmap_next(const eo_hmap_t *m, size_t *i, eo_hmap_slot_t **slot)
{
    for (; *i < m->cap; (*i)++)
        if (m->slots[*i].key) {
            *slot = &m->slots[(*i)++];
            return true;
        }
    return false;
}

void *eo_hmap_del_at(eo_hmap_t *m, size_t *i)
{
    size_t at = *i - 1;
    void *v = m->slots[at].value;
    remove_at(m, at);
    *i = at;
    return v;
}
