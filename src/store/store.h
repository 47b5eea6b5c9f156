/* store.h — the whole surface of the store.
 *
 * The store speaks users, sessions, organisations, devices, readings and
 * series, never rows or SQL. Its functions are split by concern into three
 * interfaces, each a table of functions an engine provides:
 *   store_accounts.h  accounts and metadata (users, sessions, orgs, devices,
 *                     API keys, invitations, audit, quota settings);
 *   store_series.h    series and readings (group commits, latest, queries,
 *                     purge), with the duties a readings engine keeps;
 *   store_usage.h     usage and session records (accounting);
 *   store_broker.h    the MQTT broker's durable state (sessions, queued
 *                     messages, retained messages), kept by the engine of
 *                     the accounts;
 *   store_dashboards.h  organisations' dashboards, kept by the engine of
 *                     the accounts too.
 * The store_* functions callers use hand each call to the table of the
 * engine serving that concern (store.c), chosen by the store URL at open:
 * SQLite today (sqlite_*.c) serves all three; a time-series engine can take
 * the series alone, and PostgreSQL all three, behind these same headers.
 * How an engine plugs in: store_engine.h.
 *
 * Threads, returns, lists and strings: store_base.h. */
#ifndef SS_STORE_H
#define SS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/reading.h"
#include "store/store_accounts.h"
#include "store/store_base.h"
#include "store/store_broker.h"
#include "store/store_dashboards.h"
#include "store/store_series.h"
#include "store/store_usage.h"

typedef enum {
    /* Each commit reaches the disk before it is acknowledged: survives a
     * power loss. Costs one fsync per group commit. */
    STORE_DURABILITY_FULL = 0,
    /* Each commit reaches the OS before it is acknowledged: survives a killed
     * process, not a power loss. */
    STORE_DURABILITY_NORMAL = 1,
} store_durability;

typedef struct store_options {
    /* Chooses the engine by its scheme: "sqlite:" (file in data_dir) or
     * "sqlite:/path/file.db"; any other scheme fails the open (SS_INVAL). */
    const char *url;
    /* NULL (or the same as url): the engine of url serves everything. Else
     * the engine this URL names keeps the series and the usage, and the
     * engine of url the accounts (store_engine.h). */
    const char *series_url;
    const char *data_dir;  /* existing directory */
    store_durability durability;
} store_options;

/* Opens the store and brings its schema to the newest version (versioned
 * migrations, each in its own transaction). OUT out; errbuf gets a reason a
 * person can act on. Returns 0, SS_INVAL (bad url), SS_STORE. */
int store_open(const store_options *opt, store **out, char *errbuf, size_t errlen);
/* Closes every connection; all must have been released. */
void store_close(store *s);

/* Takes an idle connection, opening one if none is idle. 0, SS_STORE. */
int store_conn_acquire(store *s, store_conn **out);
void store_conn_release(store *s, store_conn *c);

/* Answers 0 when the store can serve a trivial read (for /healthz). */
int store_ping(store_conn *c);

/* Moves committed data from the write-ahead log into the database without
 * waiting for, or blocking, the writer (a passive checkpoint). Call it
 * often from off the commit path, so that the commit that crosses the
 * automatic checkpoint size rarely has to do this work itself. 0,
 * SS_FULL or SS_STORE; a checkpoint that could not finish is not an error.
 *
 * Disk space: a checkpoint runs (this one, the automatic one, the one at
 * close) only when the disk has room for every page the log holds, since
 * one that runs out of room half-way frees nothing and keeps the space it
 * took; until then new data goes on into the log. After a write met a
 * full disk, the first checkpoint that fits folds the whole log and
 * truncates it, giving its space back. */
int store_checkpoint(store_conn *c);

/* 1 while the disk is full: the last write met no room (a commit that
 * succeeds clears it). Any thread. */
int store_full(store *s);
/* 1 when a write that only tidies up (the purge) may run: the disk is not
 * full and a checkpoint of the log would fit. Such a write grows the log
 * with pages no checkpoint can fold meanwhile, taking the space ingest
 * needs. Any thread. */
int store_room_to_write(store *s);
/* While store_full, and a checkpoint would fit again, writes one page that
 * changes nothing: when it commits the disk has room and store_full is
 * cleared, even when nothing else writes. SS_OK when not full (or no
 * longer), SS_FULL while still full. Call it now and then. */
int store_probe_room(store_conn *c);

#endif
