/* quota.h — per-organisation quotas, enforced in memory on every protocol.
 *
 * Each org has limits (devices, readings per UTC day, bytes per UTC day;
 * 0 = unlimited) and today's counts. A count made in an org is also made in
 * each of its ancestors, since a child's usage counts toward every
 * ancestor's quota. Readings are reserved before they are queued and
 * committed (or released) when the store answers, so concurrent batches
 * cannot together cross a limit: a batch that would cross it is refused
 * whole. Thread-safe: REST handlers change limits and the tree on the
 * worker pool while the loop checks and counts. */
#ifndef SS_QUOTA_H
#define SS_QUOTA_H

#include <stddef.h>
#include <stdint.h>

typedef struct quota quota;

/* What a caller may keep between calls (a connection's, a message's), so
 * that the next call for the same org skips the lookup by id. Zero it
 * before first use; it stays safe across org deletions and when the next
 * call names another org (both are checked). */
typedef struct quota_ref {
    const void *org;
    uint64_t gen;
} quota_ref;

typedef struct quota_limits {
    int64_t max_devices;
    int64_t max_readings_per_day;
    int64_t max_bytes_per_day;
} quota_limits;

int quota_new(quota **out);
void quota_free(quota *q);

/* Makes the org known with its parent ("" for none). 0 or SS_NOMEM. */
int quota_set_org(quota *q, const char *org_id, const char *parent_id);
/* 1 when org_id is `ancestor` or one of its descendants, as far as the
 * orgs made known here tell; 0 otherwise (an unknown org is within
 * nothing). The org tree in memory, for checks on the loop thread. */
int quota_org_within(quota *q, const char *org_id, const char *ancestor);
/* Forgets a deleted org. */
void quota_remove_org(quota *q, const char *org_id);
/* Sets the org's limits (the org must be known). 0 or SS_NOT_FOUND. */
int quota_set_limits(quota *q, const char *org_id, const quota_limits *l);
/* Adds usage counted before start-up (today's, from the store) to the org
 * and its ancestors, as of now_ms. */
void quota_load_usage(quota *q, const char *org_id, int64_t readings, int64_t bytes,
                      int64_t now_ms);

/* Reserves n readings in the org and its ancestors. SS_QUOTA (nothing
 * reserved) when any of them would cross its readings limit or has used up
 * its bytes for today: the one check a message needs. ref may be NULL. */
int quota_reserve_readings(quota *q, const char *org_id, int64_t n, int64_t now_ms,
                           quota_ref *ref);
/* Ends a reservation: stored readings count for today, refused ones are
 * released. */
void quota_finish_readings(quota *q, const char *org_id, int64_t n, int stored, int64_t now_ms,
                           quota_ref *ref);
/* Counts bytes on the wire for the org and its ancestors. */
void quota_add_bytes(quota *q, const char *org_id, int64_t bytes, int64_t now_ms);

#endif
