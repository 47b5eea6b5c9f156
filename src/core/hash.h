/* hash.h — hashing of the short ids the server makes itself (orgs,
 * devices: random hex), for in-memory hash tables on the hot path.
 *
 * Word at a time: a 24-character id costs three multiplies instead of
 * FNV's twenty-four. Not for keys an adversary chooses (no seed, no
 * flooding resistance): those go through a keyed hash. */
#ifndef SS_HASH_H
#define SS_HASH_H

#include <stdint.h>

/* The hash of a NUL-terminated id; equal ids hash equal. */
uint64_t hash_id(const char *id);

#endif
