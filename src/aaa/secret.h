/* secret.h — random secrets, their stored hashes, and opaque IDs.
 *
 * A secret (device token, session token, API key) is SS_SECRET_BYTES random
 * bytes, shown once as "<prefix>_<hex>" (the prefix tells a secret scanner
 * and a person what it is). Only its BLAKE2b-256 hash is ever stored; a
 * presented secret is found by hashing it and looking the hash up, and the
 * hashes are compared in constant time. */
#ifndef SS_SECRET_H
#define SS_SECRET_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

#define SECRET_PREFIX_MAX 8u
/* "<prefix>_" + hex of the random bytes + NUL */
#define SECRET_TEXT_MAX (SECRET_PREFIX_MAX + 1u + 2u * SS_SECRET_BYTES + 1u)

#define SECRET_PREFIX_DEVICE "ssd"
#define SECRET_PREFIX_SESSION "sss"
#define SECRET_PREFIX_APIKEY "ssk"

/* Must be called once before any other function (sodium_init). 0 or SS_INVAL. */
int secret_init(void);

/* A new secret "<prefix>_<64 hex>" into out (SECRET_TEXT_MAX bytes), and
 * its hash into hash (may be NULL). */
void secret_new(const char *prefix, char out[SECRET_TEXT_MAX],
                uint8_t hash[SS_SECRET_HASH_BYTES]);

/* The stored form of a presented secret. */
void secret_hash(const char *text, size_t len, uint8_t out[SS_SECRET_HASH_BYTES]);

/* 1 when the two hashes are equal, compared in constant time. */
int secret_hash_equal(const uint8_t a[SS_SECRET_HASH_BYTES], const uint8_t b[SS_SECRET_HASH_BYTES]);

/* A new opaque ID: SS_ID_LEN lowercase hex characters + NUL. */
void secret_new_id(char out[SS_ID_LEN + 1]);

/* 1 when text is an ID's shape (SS_ID_LEN lowercase hex). */
int secret_id_valid(const char *text);

/* Random lowercase hex of nbytes random bytes into out (2*nbytes+1). */
void secret_random_hex(char *out, size_t nbytes);

#endif
