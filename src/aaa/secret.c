#include "aaa/secret.h"
#include "core/err.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

int secret_init(void)
{
    return sodium_init() < 0 ? SS_INVAL : SS_OK;
}

void secret_random_hex(char *out, size_t nbytes)
{
    uint8_t raw[64];
    if (nbytes > sizeof raw)
        nbytes = sizeof raw;
    randombytes_buf(raw, nbytes);
    sodium_bin2hex(out, 2 * nbytes + 1, raw, nbytes);
    sodium_memzero(raw, sizeof raw);
}

void secret_new(const char *prefix, char out[SECRET_TEXT_MAX], uint8_t hash[SS_SECRET_HASH_BYTES])
{
    size_t plen = strnlen(prefix, SECRET_PREFIX_MAX);
    memcpy(out, prefix, plen);
    out[plen] = '_';
    secret_random_hex(out + plen + 1, SS_SECRET_BYTES);
    if (hash)
        secret_hash(out, strlen(out), hash);
}

void secret_hash(const char *text, size_t len, uint8_t out[SS_SECRET_HASH_BYTES])
{
    crypto_generichash(out, SS_SECRET_HASH_BYTES, (const unsigned char *)text, len, NULL, 0);
}

int secret_hash_equal(const uint8_t a[SS_SECRET_HASH_BYTES], const uint8_t b[SS_SECRET_HASH_BYTES])
{
    return sodium_memcmp(a, b, SS_SECRET_HASH_BYTES) == 0;
}

void secret_new_id(char out[SS_ID_LEN + 1])
{
    secret_random_hex(out, SS_ID_BYTES);
}

int secret_id_valid(const char *text)
{
    size_t i;
    for (i = 0; text[i] && i <= SS_ID_LEN; i++) {
        char c = text[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return i == SS_ID_LEN && text[i] == '\0';
}
