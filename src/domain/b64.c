/* Base64 encoders and decoders (see b64.h). */
#include "domain/b64.h"

static const char url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t eo_b64url_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = url_alphabet[v >> 18];
        out[o++] = url_alphabet[(v >> 12) & 63];
        out[o++] = url_alphabet[(v >> 6) & 63];
        out[o++] = url_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = url_alphabet[v >> 18];
        out[o++] = url_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = url_alphabet[v >> 18];
        out[o++] = url_alphabet[(v >> 12) & 63];
        out[o++] = url_alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* Value of c in the chosen alphabets, or -1. */
static int value_of(unsigned char c, int url, int std)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if ((url && c == '-') || (std && c == '+'))
        return 62;
    if ((url && c == '_') || (std && c == '/'))
        return 63;
    return -1;
}

/* Decodes n characters without padding; strict demands zero unused bits. */
static int decode(const char *in, size_t n, uint8_t *out, size_t cap, int url, int std, int strict)
{
    if (n % 4 == 1)
        return EO_EPARSE;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = value_of((unsigned char)in[i], url, std);
        if (v < 0)
            return EO_EPARSE;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return EO_ELIMIT;
            out[o++] = (uint8_t)((acc >> bits) & 0xff);
        }
        acc &= 0xff; /* only the pending bits matter */
    }
    if (strict && bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return EO_EPARSE;
    return (int)o;
}

int eo_b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    return decode(in, n, out, cap, 1, 0, 1);
}

int eo_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    size_t pad = 0;
    while (n > 0 && in[n - 1] == '=' && pad < 2) {
        n--;
        pad++;
    }
    if (pad && (n + pad) % 4 != 0)
        return EO_EPARSE;
    return decode(in, n, out, cap, 1, 1, 0);
}
