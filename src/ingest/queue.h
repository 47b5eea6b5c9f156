/* queue.h — the one ingest queue every protocol hands its readings to.
 *
 * The I/O thread submits items; the store thread takes everything pending
 * (up to SS_COMMIT_READINGS_MAX readings), commits it in one transaction
 * (group commit), then hands the items back to the loop, where each item's
 * `done` callback runs with the commit's result. A sender acknowledges in
 * `done` and only there: acknowledgement follows the commit, never precedes
 * it. */
#ifndef SS_INGEST_QUEUE_H
#define SS_INGEST_QUEUE_H

#include <stddef.h>
#include <uv.h>

#include "core/limits.h"
#include "core/metrics.h"
#include "ingest/reading.h"
#include "store/store.h"

typedef struct ingest_item ingest_item;

/* Runs on the loop thread once the item's readings are committed (status 0)
 * or refused by the store (SS_STORE, SS_FULL, SS_NOMEM, or SS_NOT_FOUND when
 * the device was deleted meanwhile; only that device's items fail then). The item belongs to
 * the submitter again from this call on. */
typedef void (*ingest_done_cb)(ingest_item *item, int status);

struct ingest_item {
    char device_id[SS_ID_LEN + 1];
    char org_id[SS_ID_LEN + 1];
    ss_readings readings;   /* owned by the submitter; the queue never frees it */
    const char *protocol;   /* "http", "https", "tcp", "udp": a static string */
    int64_t received_at;    /* ms; usage is counted in this hour (UTC) */
    /* The session record it came by, or NULL: committed with the readings
     * when the store has none of that id yet (store_batch.session). Valid
     * until `done`. */
    const store_acct_session *session;
    ingest_done_cb done;    /* required */
    void *data;             /* the submitter's */
    /* Private to the queue. */
    int status;
    ingest_item *next;
};

typedef struct ingest_queue ingest_queue;

/* Called on the loop thread after each commit with the committed items, in
 * submission order, before their `done` callbacks: the one place fan-out
 * (SSE, MQTT `readings/…`) and accounting hook in, for every protocol. */
typedef void (*ingest_commit_cb)(void *ctx, const ingest_item *item);

/* Starts the store thread with a connection of its own.
 * IN loop: the I/O loop; `done` and `on_commit` run on it.
 * IN s: the store. IN on_commit, ctx: optional hook (may be NULL).
 * OUT out: the queue. Returns 0, SS_NOMEM or SS_STORE. */
int ingest_queue_start(uv_loop_t *loop, store *s, ingest_commit_cb on_commit, void *ctx,
                       ingest_queue **out);

/* Hands an item to the store thread. Loop thread only. The item must stay
 * valid until its `done` runs. Items with no readings complete with 0. */
void ingest_queue_submit(ingest_queue *q, ingest_item *item);

/* Items submitted and not yet completed (the ingest queue depth). */
size_t ingest_queue_depth(const ingest_queue *q);

/* Reports the queue depth, each commit's size and time, store errors and
 * readings stored per protocol to m (NULL: nothing). Loop thread, before
 * the first submit. */
void ingest_queue_set_metrics(ingest_queue *q, metrics *m);

/* Commits everything already submitted, runs every `done`, stops and joins
 * the store thread, and frees the queue. Loop thread only, inside or
 * outside uv_run: the completions are delivered synchronously before it
 * returns. Its uv_async handle is closed and the queue freed in the close
 * callback, so run the loop once more before uv_loop_close, as for any
 * handle. */
void ingest_queue_stop(ingest_queue *q);

#endif
