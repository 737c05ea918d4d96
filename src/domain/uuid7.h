/* UUIDv7 (RFC 9562) message ids: 48-bit Unix milliseconds, a 12-bit counter that keeps ids
 * from one generator strictly increasing within a millisecond, and 62 random bits. Pure: the
 * caller passes the time and the random bytes, and owns the generator state (one per thread). */
#ifndef EO_DOMAIN_UUID7_H
#define EO_DOMAIN_UUID7_H

#include <stdint.h>

#define EO_UUID_STR 37 /* 36 characters and NUL */

typedef struct {
    int64_t last_ms;
    uint16_t seq;
} eo_uuid7_gen_t;

/* Writes the next id, lower-case canonical text, into out. rnd: 10 random bytes. */
void eo_uuid7_next(eo_uuid7_gen_t *gen, int64_t now_ms, const uint8_t rnd[10],
                   char out[EO_UUID_STR]);

/* The 16 bytes of a UUID in its 8-4-4-4-12 text form (36 characters, either case). Returns 0, or
 * -1 when text is not that form. */
int eo_uuid_parse(const char *text, uint8_t out[16]);

#endif
