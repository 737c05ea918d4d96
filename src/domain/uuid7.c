/* UUIDv7 generation (see uuid7.h). */
#include "domain/uuid7.h"

#include <stddef.h>

#include "domain/hex.h"

void eo_uuid7_next(eo_uuid7_gen_t *gen, int64_t now_ms, const uint8_t rnd[10],
                   char out[EO_UUID_STR])
{
    if (now_ms > gen->last_ms) {
        gen->last_ms = now_ms;
        gen->seq = (uint16_t)(((rnd[0] << 8) | rnd[1]) & 0x3ff); /* leave room to count up */
    } else if (gen->seq < 0xfff) {
        gen->seq++;
    } else { /* counter exhausted: borrow the next millisecond */
        gen->last_ms++;
        gen->seq = 0;
    }
    uint64_t ms = (uint64_t)gen->last_ms;
    uint8_t b[16];
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | (gen->seq >> 8));
    b[7] = (uint8_t)(gen->seq & 0xff);
    b[8] = (uint8_t)(0x80 | (rnd[2] & 0x3f));
    for (int i = 9; i < 16; i++)
        b[i] = rnd[i - 6];
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

int eo_uuid_parse(const char *text, uint8_t out[16])
{
    size_t k = 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-')
                return -1;
            continue;
        }
        int hi = eo_hex_digit(text[i]), lo = hi < 0 ? -1 : eo_hex_digit(text[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[k++] = (uint8_t)(hi << 4 | lo);
        i++;
    }
    return 0;
}
