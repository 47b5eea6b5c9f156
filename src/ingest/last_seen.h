/* last_seen.h — when each device's newest batch was stored, and by which
 * protocol, kept in memory on the commit path and written to the store
 * now and then (SPEC §2: devices report `last_seen` and the protocol).
 *
 * Ingest stays as fast as it was: a committed batch costs one table
 * update under a mutex here (the fan-out calls it on the loop), never a
 * store write. last_seen_flush writes what changed since the last flush
 * in one transaction (the server calls it every SS_LAST_SEEN_FLUSH_MS
 * off the loop, and once more at a clean stop), then forgets it: the
 * table holds only the devices seen since the last flush, so a device
 * answer takes the newer of the store's value and this one
 * (last_seen_get). A crash loses at most one flush interval of it.
 * Thread-safe: one mutex, held only for a table operation. */
#ifndef SS_INGEST_LAST_SEEN_H
#define SS_INGEST_LAST_SEEN_H

#include <stdint.h>

#include "ingest/fanout.h"
#include "store/store.h"

typedef struct last_seen last_seen;

/* 0 or SS_NOMEM. */
int last_seen_new(last_seen **out);
void last_seen_free(last_seen *ls);

/* The fan-out subscriber that notes every stored batch (fanout_subscribe
 * it; loop thread). */
fanout_sub *last_seen_sub(last_seen *ls);

/* Notes a stored batch of the device (any thread). SS_NOMEM when the
 * table could not grow (the note is lost, ingest goes on). */
int last_seen_note(last_seen *ls, const char *device_id, int64_t at, const char *protocol);

/* Makes d's last_seen and last_protocol the newer of the store's (as
 * loaded into d) and the one noted here since the last flush. */
void last_seen_apply(last_seen *ls, store_device *d);

/* Writes what was noted since the last flush to the store, in one
 * transaction, and forgets what it wrote (a device noted again meanwhile
 * stays for the next flush). 0, or the store's error (all kept for the
 * next flush). */
int last_seen_flush(last_seen *ls, store_conn *c);

#endif
