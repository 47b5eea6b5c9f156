/* maint.h — the store's housekeeping thread: the health state /healthz
 * answers from, and the background purge of deleted devices' readings.
 *
 * One thread with a store connection of its own pings the store every
 * SS_HEALTH_PING_MS and publishes the outcome (read by any thread without a
 * lock), and empties the purge list (store_purge_step) in chunks of at most
 * SS_PURGE_CHUNK_ROWS readings, pausing between chunks so that ingest
 * commits take the write lock in between. It looks for purge work with a
 * read, and purges only while the disk has room (store_room_to_write). A
 * purge left by a restart resumes at start. */
#ifndef SS_STORE_MAINT_H
#define SS_STORE_MAINT_H

#include <stddef.h>
#include <stdint.h>

#include "core/metrics.h"
#include "store/store.h"

typedef struct store_maint store_maint;

typedef struct store_maint_options {
    size_t purge_chunk_rows;  /* 0: SS_PURGE_CHUNK_ROWS; clamped to it */
    /* The purge's backlog (series waiting, at the thread's last look: at
     * most SS_HEALTH_PING_MS old while idle) and progress; may be NULL. */
    metrics *metrics;
} store_maint_options;

/* Pings the store once (so the health state is known at once), then starts
 * the thread. opt may be NULL. 0, SS_NOMEM or SS_STORE. */
int store_maint_start(store *s, const store_maint_options *opt, store_maint **out);

/* Wakes the thread: a delete has put readings on the purge list. Any
 * thread. */
void store_maint_kick(store_maint *m);

/* 1 when the last ping succeeded and is younger than SS_HEALTH_STALE_MS.
 * Any thread; never waits. */
int store_maint_healthy(store_maint *m, int64_t now_ms);

/* Stops the thread after the chunk in progress (the rest of the purge
 * resumes at the next start) and frees m. NULL is a no-op. */
void store_maint_stop(store_maint *m);

#endif
