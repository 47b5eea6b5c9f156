#include "aaa/password.h"
#include "core/err.h"
#include "core/limits.h"

#include <sodium.h>
#include <string.h>

/* Interactive limits: ~50 ms and 64 MiB per hash on a current core, which
 * makes a stolen hash expensive to attack and a login still quick. */
#define PASSWORD_OPSLIMIT crypto_pwhash_OPSLIMIT_INTERACTIVE
#define PASSWORD_MEMLIMIT crypto_pwhash_MEMLIMIT_INTERACTIVE

_Static_assert(crypto_pwhash_STRBYTES <= STORE_PW_HASH_MAX, "hash does not fit the store");

int password_hash(const char *password, char out[STORE_PW_HASH_MAX])
{
    size_t len = strnlen(password, SS_PASSWORD_MAX + 1);
    if (len < SS_PASSWORD_MIN || len > SS_PASSWORD_MAX)
        return SS_INVAL;
    if (crypto_pwhash_str_alg(out, password, len, PASSWORD_OPSLIMIT, PASSWORD_MEMLIMIT,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        return SS_NOMEM;
    return SS_OK;
}

int password_verify(const char *password, const char *encoded)
{
    size_t len = strnlen(password, SS_PASSWORD_MAX + 1);
    if (len > SS_PASSWORD_MAX)
        return 0;
    return crypto_pwhash_str_verify(encoded, password, len) == 0;
}

const char *password_dummy_hash(void)
{
    /* Made once with crypto_pwhash_str_alg at PASSWORD_OPSLIMIT and
     * PASSWORD_MEMLIMIT from 32 random bytes that were then thrown away.
     * Change it together with those limits. */
    return "$argon2id$v=19$m=65536,t=2,p=1$wwyp5NVeLUv7O0GRu4ns7A$"
           "vdBytU/f554IxiAeROMi+itOcIts/Uv1CTY6c1VAp1o";
}

void password_generate(char *out, size_t len)
{
    /* No 0/O, 1/l/I: a generated password is read off a terminal. */
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
    out[len] = '\0';
}
