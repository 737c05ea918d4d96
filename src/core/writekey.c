/* Write key generation and hashing (see writekey.h). */
#include "core/writekey.h"

#include <openssl/evp.h>
#include <string.h>

#include "core/random.h"

int eo_write_key_generate(char key_id[EO_WRITE_KEY_ID_LEN + 1], char key[EO_WRITE_KEY_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t id[6], secret[32];
    int r = eo_random_bytes(id, sizeof id);
    if (r < 0 || (r = eo_random_bytes(secret, sizeof secret)) < 0)
        return r;
    memcpy(key_id, "wk_", 3);
    for (int i = 0; i < 6; i++) {
        key_id[3 + 2 * i] = hex[id[i] >> 4];
        key_id[4 + 2 * i] = hex[id[i] & 15];
    }
    key_id[EO_WRITE_KEY_ID_LEN] = '\0';
    memcpy(key, key_id, EO_WRITE_KEY_ID_LEN);
    size_t o = EO_WRITE_KEY_ID_LEN;
    key[o++] = '.';
    /* 32 bytes -> 43 base64url characters, no padding */
    uint32_t acc = 0;
    int bits = 0;
    for (int i = 0; i < 32; i++) {
        acc = (acc << 8) | secret[i];
        bits += 8;
        while (bits >= 6) {
            key[o++] = b64[(acc >> (bits - 6)) & 63];
            bits -= 6;
        }
    }
    if (bits > 0)
        key[o++] = b64[(acc << (6 - bits)) & 63];
    key[o] = '\0';
    return 0;
}

void eo_write_key_hash(const char *key, size_t len, uint8_t out[32])
{
    unsigned int n = 32;
    EVP_Digest(key, len, out, &n, EVP_sha256(), NULL);
}
