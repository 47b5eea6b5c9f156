/* queue.h — the one ingest queue every protocol hands its readings to.
 *
 * The I/O thread submits items; the store thread commits them in group
 * commits (many items per transaction), then hands the items back to the
 * loop, where each item's `done` callback runs with the commit's result. A
 * sender acknowledges in `done` and only there: acknowledgement follows the
 * commit, never precedes it.
 *
 * Tenants are isolated (SPEC §4). Each organisation has a queue of its own
 * inside this one, and every commit takes a slice from each organisation
 * with work, deficit round robin (SS_COMMIT_ORG_QUANTUM readings of credit
 * a round, up to SS_COMMIT_READINGS_MAX in all): an org's backlog never delays
 * another's next commit. Submitting is bounded, in readings and in bytes
 * held, for the queue, each organisation and each device (limits.h,
 * SS_INGEST_*): a submit past a bound is refused, and the sender refuses
 * its client in its protocol's terms. Items complete in submission order
 * within an organisation (so per device and per connection too). */
#ifndef SS_INGEST_QUEUE_H
#define SS_INGEST_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/limits.h"
#include "core/list.h"
#include "core/metrics.h"
#include "core/reading.h"
#include "store/store.h"

typedef struct ingest_item ingest_item;
typedef struct queue_share queue_share;

/* Runs on the loop thread once the item's readings are committed (status 0)
 * or refused by the store (SS_STORE, SS_FULL, SS_NOMEM, or SS_NOT_FOUND when
 * the device was deleted meanwhile; only that device's items fail then).
 * With status 0, `readings_refused` says how many readings were refused for
 * the channel limit (their groups stored nothing). The item belongs to the
 * submitter again from this call on. */
typedef void (*ingest_done_cb)(ingest_item *item, int status);

struct ingest_item {
    char device_id[SS_ID_LEN + 1];
    char org_id[SS_ID_LEN + 1];
    ss_readings readings;   /* owned by the submitter; the queue never frees it */
    const char *protocol;   /* "http", "https", "tcp", "udp": a static string */
    int64_t received_at;    /* ms; usage is counted in this hour (UTC) */
    /* The session record it came by, or NULL: the commit counts the
     * item's message and readings into it (store_batch.session). Valid
     * until `done`. */
    const store_acct_session *session;
    ingest_done_cb done;    /* required */
    void *data;             /* the submitter's */
    /* Memory the submitter holds for the item besides its readings (a
     * request body, line numbers): counted against the byte bounds. */
    size_t held_bytes;
    /* Optional: the readings in groups, each stored or refused whole
     * (store_batch.group_ends; TCP: its lines), and one flag per group,
     * the submitter's, set before `done` with status 0: 1 for a group
     * refused for the channel limit. NULL: one group, the whole item. */
    const uint32_t *group_ends;
    uint8_t *group_refused;
    size_t n_groups;
    /* Set before `done` with status 0: readings refused for the channel
     * limit (SS_DEVICE_CHANNELS_MAX); the others are stored. */
    size_t readings_refused;
    /* History brought by a bulk import: stored and counted as any item,
     * not offered to live subscribers (the commit hook's fan-out), and
     * written as a bulk write (store_batch.bulk: its readings sorted by
     * channel, many rows a statement). */
    int history;
    /* Private to the queue. */
    int status;
    uint8_t refused_whole;
    size_t cost_bytes;
    queue_share *org;
    queue_share *device;
    ingest_item *next;
};

typedef struct ingest_queue ingest_queue;

/* Called on the loop thread after each commit with the committed items, in
 * submission order within each organisation, before their `done`
 * callbacks: the one place fan-out (SSE, MQTT `readings/…`) and accounting
 * hook in, for every protocol. Readings of refused groups are in the item
 * too: skip them by its group flags. */
typedef void (*ingest_commit_cb)(void *ctx, const ingest_item *item);

/* A sender waiting for room in the queue (TCP: a connection that stopped
 * reading its socket). Embedded in the sender; all fields but `ready` the
 * queue's. */
typedef struct ingest_waiter ingest_waiter;
struct ingest_waiter {
    /* Runs on the loop once, after a commit that may have made room; the
     * sender then submits again (and waits again if refused again). */
    void (*ready)(ingest_waiter *w);
    ss_list link;           /* in the list it waits in */
    int waiting;
};

/* Starts the store thread with a connection of its own.
 * IN loop: the I/O loop; `done` and `on_commit` run on it.
 * IN s: the store. IN on_commit, ctx: optional hook (may be NULL).
 * OUT out: the queue. Returns 0, SS_NOMEM or SS_STORE. */
int ingest_queue_start(uv_loop_t *loop, store *s, ingest_commit_cb on_commit, void *ctx,
                       ingest_queue **out);

/* Hands an item to the store thread, when the queue, the item's
 * organisation and its device all have room for its readings and bytes.
 * An organisation (or device) with nothing queued always has room for one
 * item of any size (items are bounded by their protocols), the queue for
 * such an org within a reserve kept for it (SS_INGEST_QUEUE_RESERVE_*).
 * Loop thread only. Returns 0: queued, the item must stay valid until its
 * `done` runs, and items with no readings complete with 0; or SS_BUSY:
 * refused, nothing queued, `done` will not run. */
int ingest_queue_submit(ingest_queue *q, ingest_item *item);

/* 1 when the org and device could have one more reading queued now, 0 when
 * a submit would surely be refused: lets a sender refuse before it parses. */
int ingest_queue_has_room(const ingest_queue *q, const char *org_id, const char *device_id);

/* Calls w->ready once when room may have come for a submit of the org's
 * refused a moment ago: at the next delivery of one of the org's items
 * (before that item's own `done`, so a waiter gets the room before the
 * sender whose item completed submits again), or, when the org has
 * nothing queued, at the next delivery of any. Waiters of other orgs are
 * not woken. Loop thread only; a waiting waiter is left as it is. */
void ingest_queue_wait(ingest_queue *q, ingest_waiter *w, const char *org_id);
/* Forgets a waiter (its sender is closing); ready will not run. */
void ingest_queue_cancel_wait(ingest_queue *q, ingest_waiter *w);

/* Items submitted and not yet completed (the ingest queue depth). */
size_t ingest_queue_depth(const ingest_queue *q);

/* Reports the queue depth, each commit's size and time and store errors
 * to m (NULL: nothing); what was stored is counted by whoever settles the
 * commit (the gateway). Loop thread, before
 * the first submit. */
void ingest_queue_set_metrics(ingest_queue *q, metrics *m);

/* Commits everything already submitted, runs every `done`, stops and joins
 * the store thread, and frees the queue. Loop thread only, inside or
 * outside uv_run: the completions are delivered synchronously before it
 * returns. Waiters still waiting are woken as commits are delivered. Its
 * uv_async handle is closed and the queue freed in the close callback, so
 * run the loop once more before uv_loop_close, as for any handle. */
void ingest_queue_stop(ingest_queue *q);

#endif
