/* password.h — password hashing with Argon2id (libsodium crypto_pwhash).
 *
 * Both calls take tens of milliseconds and much memory on purpose: call them
 * on the worker pool, never on the I/O thread. */
#ifndef SS_PASSWORD_H
#define SS_PASSWORD_H

#include <stddef.h>

#include "store/store.h"

/* Hashes a password into the encoded Argon2id form (STORE_PW_HASH_MAX bytes).
 * 0, SS_INVAL (length outside [SS_PASSWORD_MIN, SS_PASSWORD_MAX]), SS_NOMEM. */
int password_hash(const char *password, char out[STORE_PW_HASH_MAX]);

/* 1 when password matches the encoded hash, else 0. */
int password_verify(const char *password, const char *encoded);

/* An encoded hash, with the parameters password_hash uses, of a random
 * password nobody knows: verify against it when the user is unknown, so an
 * unknown user costs the same Argon2 time as a wrong password. */
const char *password_dummy_hash(void);

/* A new random password of `len` characters from an unambiguous alphabet
 * into out (len + 1 bytes). */
void password_generate(char *out, size_t len);

#endif
