/* device_cache.h — device token hash → device, in memory.
 *
 * Every ingest request looks its token up here, on the I/O thread, without
 * touching the store. The cache is filled from the store at start and kept
 * current by whoever changes a device (create, rotate, disable, delete), on
 * any thread: it is guarded by one mutex held only for a table operation. */
#ifndef SS_DEVICE_CACHE_H
#define SS_DEVICE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

typedef struct device_cache device_cache;

typedef struct device_cache_entry {
    char device_id[SS_ID_LEN + 1];
    char org_id[SS_ID_LEN + 1];
    int disabled;
} device_cache_entry;

/* 0 or SS_NOMEM. */
int device_cache_new(device_cache **out);
void device_cache_free(device_cache *c);

/* Adds the device, or replaces its entry (token hash, org, disabled) when the
 * device id is already known. 0 or SS_NOMEM. */
int device_cache_put(device_cache *c, const char *device_id, const char *org_id,
                     const uint8_t hash[SS_SECRET_HASH_BYTES], int disabled);
/* Changes only the token hash (a rotation), keeping the disabled flag the
 * cache holds: a rotation racing a disable cannot enable the device again,
 * nor bring back a deleted one. 0 or SS_NOT_FOUND. */
int device_cache_set_token(device_cache *c, const char *device_id,
                           const uint8_t hash[SS_SECRET_HASH_BYTES]);
/* Changes only the disabled flag. 0 or SS_NOT_FOUND. */
int device_cache_set_disabled(device_cache *c, const char *device_id, int disabled);
/* Forgets the device (deleted). 0 or SS_NOT_FOUND. */
int device_cache_remove(device_cache *c, const char *device_id);
/* Copies the entry whose token hash equals `hash` (constant-time compare)
 * into out. 0 or SS_NOT_FOUND. Disabled devices are found; the caller
 * refuses them. */
int device_cache_lookup(device_cache *c, const uint8_t hash[SS_SECRET_HASH_BYTES],
                        device_cache_entry *out);
/* Copies the entry of the device with this id into out: for a caller that
 * authenticated otherwise (an API key acting as one of its org's devices).
 * 0 or SS_NOT_FOUND. */
int device_cache_find(device_cache *c, const char *device_id, device_cache_entry *out);
/* How many devices are cached. */
size_t device_cache_count(device_cache *c);

#endif
