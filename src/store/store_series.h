/* store_series.h — series and readings: batches of readings written in
 * group commits, the latest reading per channel, queries of points and
 * buckets, and the purge of deleted devices' readings.
 *
 * The store_* functions below hand each call to the series table of the
 * engine chosen at open (store_series_table, at the end). Conventions:
 * store_base.h. */
#ifndef SS_STORE_SERIES_H
#define SS_STORE_SERIES_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/reading.h"
#include "store/store_base.h"
#include "store/store_usage.h"

/* ---- purge of deleted devices' readings -------------------------------- */

/* Deletes at most max_rows readings of deleted devices (oldest purge first)
 * in one transaction, so the purge interleaves with ingest commits instead
 * of holding the write lock for seconds. OUT deleted: readings deleted;
 * more: 0 once the purge list is empty (nothing left to call for). */
int store_purge_step(store_conn *c, size_t max_rows, size_t *deleted, int *more);
/* Series of deleted devices whose readings are still to be purged: a read,
 * no write lock taken. */
int store_purge_pending(store_conn *c, int64_t *series);

/* ---- readings and series ---------------------------------------------- */

typedef struct store_batch {
    const char *device_id;
    const char *org_id;
    const ss_reading *readings;
    size_t len;
    const char *protocol;   /* that brought the readings; NULL counts as "http" */
    int64_t received_at;    /* ms; its UTC hour is the usage bucket */
    /* The session record the batch came by, as it stands before this
     * batch, or NULL: when the batch stores any reading, the batch's one
     * message and the readings it stored are counted into the record in
     * the same transaction (as the usage counts them): written with them
     * when the store has no record of that id yet, added to the record
     * already there otherwise. So a record that stored readings survives
     * a crash (and is ended "crash" at the next start) counting every
     * reading acknowledged. */
    const store_acct_session *session;
    /* Optional: the batch in groups, each stored whole or refused whole
     * (TCP: one per line). Group g is readings [end of g-1, group_ends[g]),
     * the first starts at 0, the last ends at len. NULL: one group, the
     * whole batch. */
    const uint32_t *group_ends;
    size_t n_groups;
    /* OUT: one flag per group (one when group_ends is NULL), set to 1 for
     * a group refused because it would give the device more than
     * SS_DEVICE_CHANNELS_MAX channels, else 0. NULL: such a group fails the
     * whole call with SS_TOO_LARGE instead. */
    uint8_t *refused;
    /* 1: a bulk write (an import's history, sorted so that each channel's
     * readings come together): the readings go to SQLite many rows a
     * statement, and a run of one channel has its series found once. The
     * same outcome as 0, at less cost a reading. */
    int bulk;
} store_batch;

/* Stores every reading of every batch in one transaction: all or nothing,
 * but for the groups refused for the channel limit: such a group writes
 * nothing and is flagged in its batch's `refused`, and the rest of the call
 * is stored. The check costs nothing while every reading's channel is in
 * the writer's cache of series; a new channel costs one count of the
 * device's series.
 * A reading with the same device, channel and ts as a stored one replaces
 * its value (writes are idempotent, so a retried batch does not double).
 * In the same transaction, each batch that stores any reading adds 1
 * message and the readings it stored to the usage of (org, hour of
 * received_at, protocol): after any crash the usage equals what is stored,
 * no more and no less.
 * Returns 0 only once the commit is as durable as the store's durability
 * setting promises. SS_FULL when the disk is full. */
int store_write_batches(store_conn *c, const store_batch *batches, size_t n);

typedef struct store_channel {
    char name[SS_CHANNEL_MAX + 1];
    int64_t count;      /* readings stored */
    int64_t last_ts;    /* the newest reading's ts */
    double last_value;  /* and its value */
} store_channel;

typedef int (*store_channel_cb)(void *ctx, const store_channel *ch);
/* The device's channels, by name. Counting readings walks each series:
 * for names alone use store_channel_names. */
int store_channel_list(store_conn *c, const char *device_id, store_channel_cb cb, void *ctx);
/* The same without the count (0): each series keeps its newest reading,
 * so this reads one row per channel and never the readings. */
int store_channel_latest(store_conn *c, const char *device_id, store_channel_cb cb, void *ctx);
/* The names of the device's channels, by name, without touching readings. */
int store_channel_names(store_conn *c, const char *device_id,
                        int (*cb)(void *ctx, const char *name), void *ctx);

typedef struct store_query {
    const char *device_id;
    const char *channel;
    int64_t from;   /* inclusive, ms */
    int64_t to;     /* exclusive, ms */
    size_t limit;   /* at most this many points or buckets (>= 1) */
    int desc;       /* 1: newest first */
} store_query;

typedef int (*store_point_cb)(void *ctx, int64_t ts, double value);
/* Raw points of one channel in [from, to), ordered by ts. */
int store_query_points(store_conn *c, const store_query *q, store_point_cb cb, void *ctx);

typedef enum {
    STORE_AGG_AVG, STORE_AGG_MIN, STORE_AGG_MAX, STORE_AGG_SUM,
    STORE_AGG_COUNT, STORE_AGG_FIRST, STORE_AGG_LAST,
} store_agg;

/* One point per non-empty bucket of `every_ms` in [from, to); a bucket
 * starts at a multiple of every_ms since the epoch and its start is the
 * point's ts. first/last are by ts within the bucket. Ordered as q->desc. */
int store_query_buckets(store_conn *c, const store_query *q, int64_t every_ms, store_agg fn,
                        store_point_cb cb, void *ctx);

/* ---- export: every reading of many devices, a page at a time ---------- */

/* Where an export stands between two pages: the next reading is the first
 * at or after (device_id, channel, ts) in (device, channel, ts) order.
 * Zeroed: from the start. The caller keeps it between pages; nothing of
 * the store is held between two calls. */
typedef struct store_export_cursor {
    char device_id[SS_ID_LEN + 1];
    char channel[SS_CHANNEL_MAX + 1];
    int64_t ts;
    int done;  /* OUT: 1 once nothing is left after the cursor */
} store_export_cursor;

typedef struct store_export_scan {
    /* The devices, sorted by strcmp, without repeats (n_devices >= 1). A
     * device with no series (or none any more) is no error. */
    const char *const *device_ids;
    size_t n_devices;
    /* The channels, sorted by strcmp, without repeats; n_channels 0: every
     * channel. */
    const char *const *channels;
    size_t n_channels;
    int64_t from;       /* inclusive, ms */
    int64_t to;         /* exclusive, ms */
    size_t max_rows;    /* a page holds at most this many readings (>= 1) */
    size_t max_series;  /* and looks into at most this many series (>= 1),
                           so a page over many empty series stays short */
} store_export_scan;

typedef struct store_export_row {
    size_t device;        /* its index in device_ids */
    const char *channel;  /* valid during the callback only */
    int64_t ts;
    double value;
} store_export_row;

/* 0 to go on; anything else ends the page with that value returned. */
typedef int (*store_export_cb)(void *ctx, const store_export_row *row);

/* One page of an export: the readings of s's devices and channels in
 * [from, to), in (device id, channel, ts) order, from the cursor on, to cb;
 * at most max_rows of them, and at most max_series series looked into.
 * IN/OUT cur: where the page starts, then where the next one does (done
 * set once nothing is left). A page is one short read: nothing is held
 * between pages, and a reading stored or deleted meanwhile appears or
 * not according to where the cursor stands. 0, SS_INVAL (bad scan), a
 * store error or cb's nonzero value (the cursor then is unspecified). */
int store_export_page(store_conn *c, const store_export_scan *s, store_export_cursor *cur,
                      store_export_cb cb, void *ctx);

/* ---- deletion of readings ---------------------------------------------- */

typedef struct store_range {
    const char *device_id;
    const char *channel;    /* NULL: every channel of the device */
    int64_t from;           /* inclusive, ms */
    int64_t to;             /* exclusive, ms */
} store_range;

/* Deletes at most max_rows readings of the range in one transaction (series
 * by series in channel order, oldest first), so that a delete of millions
 * runs as many short steps between which ingest commits take the writer.
 * Each series a step deleted from keeps its newest remaining reading as its
 * latest; a series left with no reading leaves every answer (channels,
 * latest), and a later write starts it anew. Usage already counted stays:
 * it is history. OUT deleted: readings this step deleted; more: 1 while
 * readings of the range may remain (call again), 0 once none does. A
 * device or channel with no series deletes nothing and is no error.
 * SS_INVAL when max_rows is 0 or from >= to. */
int store_delete_readings(store_conn *c, const store_range *r, size_t max_rows, size_t *deleted,
                          int *more);

/* ---- the engine's table ------------------------------------------------ */

/* What an engine that keeps readings provides: one entry per store_*
 * function above, named without the prefix, same arguments (its own
 * connection first). Besides what each function above says, an engine
 * keeps these duties, and the contract suite (tests/unit/
 * test_store_contract.c) holds every engine to them:
 * - Usage of stored readings is committed with them: write_batches adds
 *   each batch's message and stored readings to its usage row (org, hour
 *   of received_at, protocol) and writes its new session record in the
 *   same transaction as the readings, so after any crash the usage equals
 *   what is stored; a call that fails adds no usage.
 * - Acknowledged is durable: write_batches returns 0 only once the commit
 *   is as durable as the store's durability setting promises; a failed
 *   call stores nothing of any of its batches (bar the groups it flags as
 *   refused).
 * - Group commit: one write_batches call is one transaction for all its
 *   batches, whatever their devices; batches commit in the order of the
 *   calls, and within a call in array order, so the newest reading of a
 *   channel (latest) is the one with the highest ts, and a reading with a
 *   stored (device, channel, ts) replaces its value.
 * - Order: points and buckets come ordered by ts (desc when asked), at most
 *   limit of them, from inclusive, to exclusive; a range that is paged by
 *   moving `from` past the last ts seen returns every point once. Export
 *   pages come in (device, channel, ts) order and, followed cursor to
 *   cursor, return every reading of the range once.
 * - Full disk: a write that meets no room fails with SS_FULL and leaves
 *   nothing behind, reads go on being served, and the engine's `full`
 *   state (store_full) stays set until a write succeeds.
 * - Deletion of a range: each delete_readings step is one transaction of at
 *   most max_rows readings; what a step deleted leaves every answer at
 *   once, latest included (the newest remaining reading, or no channel).
 * - Purge resumable: deleted devices' series vanish from every answer at
 *   once; their readings go in bounded purge_step chunks, each its own
 *   transaction, so a purge cut by a crash or a restart resumes where it
 *   stopped and never holds the writer for long.
 * - Usage goes with the series: the engine that keeps the series keeps the
 *   usage too (store_engine.h), since the first duty above is one
 *   transaction; an engine could hand the usage apart only by keeping, in
 *   its own commit, a log of usage deltas that the usage engine applies
 *   once each (not built).
 *
 * One entry has no store_* function: drop_devices, which store.c calls
 * after the accounts engine deleted a device or an org
 * (store_device_delete, store_org_delete) when that engine is not this
 * one. It drops every series of the n devices: durable once it returns 0,
 * one transaction; the series leave every answer at once, and a later
 * write for such a device starts a new series; their readings go on the
 * durable purge list, emptied by purge_step in the background, resumably.
 * Ids with no series are no error, so a drop repeated after a failure
 * finishes what the first began. */
typedef struct store_series_table {
    int (*purge_step)(store_engine_conn *c, size_t max_rows, size_t *deleted, int *more);
    int (*purge_pending)(store_engine_conn *c, int64_t *series);
    int (*drop_devices)(store_engine_conn *c, const char *const *device_ids, size_t n);
    int (*write_batches)(store_engine_conn *c, const store_batch *batches, size_t n);
    int (*channel_list)(store_engine_conn *c, const char *device_id, store_channel_cb cb,
                        void *ctx);
    int (*channel_latest)(store_engine_conn *c, const char *device_id, store_channel_cb cb,
                          void *ctx);
    int (*channel_names)(store_engine_conn *c, const char *device_id,
                         int (*cb)(void *ctx, const char *name), void *ctx);
    int (*query_points)(store_engine_conn *c, const store_query *q, store_point_cb cb, void *ctx);
    int (*query_buckets)(store_engine_conn *c, const store_query *q, int64_t every_ms, store_agg fn,
                         store_point_cb cb, void *ctx);
    int (*export_page)(store_engine_conn *c, const store_export_scan *s, store_export_cursor *cur,
                       store_export_cb cb, void *ctx);
    int (*delete_readings)(store_engine_conn *c, const store_range *r, size_t max_rows,
                           size_t *deleted, int *more);
} store_series_table;

#endif
