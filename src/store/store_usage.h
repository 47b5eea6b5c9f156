/* store_usage.h — usage and session records (accounting): usage per org,
 * hour and protocol, and the record of each session by which a device, a
 * person or an API key came in.
 *
 * The store_* functions below hand each call to the usage table of the
 * engine chosen at open (store_usage_table, at the end). The usage of
 * stored readings is not added here: store_write_batches commits it with
 * the readings (store_series.h). Conventions: store_base.h. */
#ifndef SS_STORE_USAGE_H
#define SS_STORE_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "store/store_base.h"

/* ---- usage and quotas (accounting) ---------------------------------- */

#define STORE_HOUR_MS 3600000LL
#define STORE_DAY_MS 86400000LL

typedef struct store_usage {
    char org_id[SS_ID_LEN + 1];
    int64_t bucket;            /* ms: start of the hour (or day, in queries) */
    char protocol[STORE_PROTOCOL_MAX + 1];
    int64_t bytes_in;
    int64_t bytes_out;
    int64_t messages;
    int64_t readings;
    int64_t rejected;
    int64_t api_requests;
} store_usage;

/* Adds each delta to its (org_id, hour bucket, protocol) row, creating the
 * row when needed, in one transaction. bucket must be an hour start. */
int store_usage_add(store_conn *c, const store_usage *deltas, size_t n);

typedef int (*store_usage_cb)(void *ctx, const store_usage *u);
/* Usage summed over the given orgs, per bucket of `every_ms` (an hour or a
 * day: STORE_HOUR_MS or STORE_DAY_MS) and protocol, for hours in
 * [from, to), ordered by bucket then protocol. org_id of each row is the
 * first of org_ids. */
int store_usage_query(store_conn *c, const char *const *org_ids, size_t n_orgs, int64_t from,
                      int64_t to, int64_t every_ms, store_usage_cb cb, void *ctx);
/* Per org, the sums of readings and of bytes (in + out) over all protocols
 * for the hours in [day_start, day_start + STORE_DAY_MS): for the quota
 * state at start-up. Rows carry org_id, readings, bytes_in (the sum). */
int store_usage_day(store_conn *c, int64_t day_start, store_usage_cb cb, void *ctx);

/* ---- session records (accounting) --------------------------------------- */

typedef struct store_acct_session {
    char id[SS_ID_LEN + 1];
    char kind[8];                  /* "device", "user", "apikey" */
    char principal_id[SS_ID_LEN + 1];
    char org_id[SS_ID_LEN + 1];    /* "" for a user without one org */
    char protocol[STORE_PROTOCOL_MAX + 1];
    char addr[46];
    int64_t started_at;
    int64_t ended_at;              /* 0 while active */
    char end_reason[16];           /* closed, timeout, revoked, quota, error, shutdown, crash */
    int64_t bytes_in;
    int64_t bytes_out;
    int64_t messages;
    int64_t readings;
    int64_t refused;
    int64_t api_requests;
} store_acct_session;

/* Writes each record whole (insert or replace by id), in one transaction:
 * the meter flushes live sessions' running counts and ended ones. Its
 * messages and readings never go below those in the store: the commits
 * that store readings count them into the record too (store_batch.session),
 * and a snapshot taken before such a commit may be written after it. */
int store_acct_session_put(store_conn *c, const store_acct_session *s, size_t n);
typedef int (*store_acct_session_cb)(void *ctx, const store_acct_session *s);
/* The org's session records, newest first, at most limit; kind NULL for
 * every kind; active_only: ended_at = 0 only. */
int store_acct_session_list(store_conn *c, const char *org_id, const char *kind, int active_only,
                            size_t limit, store_acct_session_cb cb, void *ctx);
/* The same, from the record after (started_at, id) = (before_started,
 * before_id) in that order on (keyset paging). */
int store_acct_session_list_before(store_conn *c, const char *org_id, const char *kind,
                                   int active_only, int64_t before_started,
                                   const char *before_id, size_t limit,
                                   store_acct_session_cb cb, void *ctx);
/* At start-up: records left active by a crash (started before now_ms)
 * get ended_at = now and end_reason "crash". */
int store_acct_session_close_stale(store_conn *c, int64_t now_ms);

/* ---- the engine's table ------------------------------------------------ */

/* What an engine that keeps usage provides: one entry per store_* function
 * above, named without the prefix, same arguments (its own connection
 * first), same contract. Its queries see the usage store_write_batches
 * committed with the readings: the usage engine is the series engine, or
 * reads the rows the series engine commits. */
typedef struct store_usage_table {
    int (*usage_add)(store_engine_conn *c, const store_usage *deltas, size_t n);
    int (*usage_query)(store_engine_conn *c, const char *const *org_ids, size_t n_orgs,
                       int64_t from, int64_t to, int64_t every_ms, store_usage_cb cb, void *ctx);
    int (*usage_day)(store_engine_conn *c, int64_t day_start, store_usage_cb cb, void *ctx);
    int (*acct_session_put)(store_engine_conn *c, const store_acct_session *s, size_t n);
    /* store_acct_session_list_before; store_acct_session_list is it from
     * the start. */
    int (*acct_session_list)(store_engine_conn *c, const char *org_id, const char *kind,
                             int active_only, int64_t before_started, const char *before_id,
                             size_t limit, store_acct_session_cb cb, void *ctx);
    int (*acct_session_close_stale)(store_engine_conn *c, int64_t now_ms);
} store_usage_table;

#endif
