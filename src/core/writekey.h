/* Write keys: "wk_<12 hex>.<43 base64url>" — a public key id and 256 random bits. Only the
 * SHA-256 of the whole key is stored; a high-entropy secret needs no slow hash. */
#ifndef EO_CORE_WRITEKEY_H
#define EO_CORE_WRITEKEY_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define EO_WRITE_KEY_ID_LEN 15 /* "wk_" + 12 hex */
#define EO_WRITE_KEY_LEN 59    /* id + '.' + 43 */

/* Creates a new key: key_id (16 bytes with NUL) and key (60 bytes with NUL). */
int eo_write_key_generate(char key_id[EO_WRITE_KEY_ID_LEN + 1],
                          char key[EO_WRITE_KEY_LEN + 1]) EO_MUST_CHECK;

/* SHA-256 of key (len bytes). */
void eo_write_key_hash(const char *key, size_t len, uint8_t out[32]);

#endif
