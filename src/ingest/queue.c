/* queue.c — the ingest queue: loop thread in, store thread commits, loop
 * thread out.
 *
 * Two lists under one mutex: `pending` (submitted, not yet taken by the
 * store thread) and `done` (committed or refused, not yet delivered). The
 * store thread takes a run of pending items, writes them in one
 * store_write_batches call (group commit), moves them to `done` and wakes
 * the loop with uv_async_send. libuv may fold several sends into one
 * callback, so the callback drains the whole `done` list each time. One
 * store thread and FIFO lists keep completions in submission order. */
#include "ingest/queue.h"

#include <stdlib.h>

#include "core/err.h"
#include "core/log.h"

typedef struct queue_list {
    ingest_item *head;
    ingest_item *tail;
} queue_list;

struct ingest_queue {
    uv_loop_t *loop;
    store *s;
    ingest_commit_cb on_commit;
    void *ctx;
    metrics *metrics;     /* set before the first submit; may be NULL */

    uv_async_t async;     /* loop side; the queue is freed in its close_cb */
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;
    /* Under mu. */
    queue_list pending;
    queue_list done;
    int stopping;

    /* The store thread's, and after the join the stopping loop thread's. */
    store_conn *conn;
    store_batch *batches;
    size_t batches_cap;

    /* Loop thread only. */
    size_t depth;
    int closing;
};

static void queue_list_append(queue_list *l, ingest_item *first, ingest_item *last)
{
    last->next = NULL;
    if (l->tail)
        l->tail->next = first;
    else
        l->head = first;
    l->tail = last;
}

static ingest_item *queue_list_pop(queue_list *l)
{
    ingest_item *it = l->head;
    if (!it)
        return NULL;
    l->head = it->next;
    if (!l->head)
        l->tail = NULL;
    it->next = NULL;
    return it;
}

/* Detaches the run of pending items for one transaction: at least one item
 * (a single item above the cap still has to be stored), then more while the
 * total stays within SS_COMMIT_READINGS_MAX. Caller holds mu. */
static ingest_item *queue_take_run(ingest_queue *q, size_t *n_items)
{
    ingest_item *first = q->pending.head;
    ingest_item *last = first;
    size_t readings = first->readings.len;
    size_t n = 1;
    while (last->next && readings + last->next->readings.len <= SS_COMMIT_READINGS_MAX) {
        last = last->next;
        readings += last->readings.len;
        n++;
    }
    q->pending.head = last->next;
    if (!q->pending.head)
        q->pending.tail = NULL;
    last->next = NULL;
    *n_items = n;
    return first;
}

static int queue_reserve_batches(ingest_queue *q, size_t n)
{
    if (n <= q->batches_cap)
        return SS_OK;
    store_batch *b = realloc(q->batches, n * sizeof *b);
    if (!b)
        return SS_NOMEM;
    q->batches = b;
    q->batches_cap = n;
    return SS_OK;
}

/* A device deleted while its readings waited in the queue fails the whole
 * group commit (SS_NOT_FOUND). Rare; so then each item is committed on its
 * own, and only the deleted device's items fail. */
static void queue_commit_each(ingest_queue *q, ingest_item *run)
{
    for (ingest_item *it = run; it; it = it->next) {
        store_batch b = {
            .device_id = it->device_id,
            .org_id = it->org_id,
            .readings = it->readings.items,
            .len = it->readings.len,
            .protocol = it->protocol,
            .received_at = it->received_at,
            .session = it->session,
        };
        it->status = it->readings.len ? store_write_batches(q->conn, &b, 1) : SS_OK;
    }
}

/* One transaction for the run; sets every item's status. Items without
 * readings take no part in the write and complete with 0 whatever it gave
 * (queue.h), keeping their place in the order. */
static void queue_commit_run(ingest_queue *q, ingest_item *run, size_t n_items)
{
    int rc = queue_reserve_batches(q, n_items);
    size_t nb = 0;
    for (ingest_item *it = run; rc == SS_OK && it; it = it->next) {
        if (it->readings.len == 0)
            continue;
        q->batches[nb++] = (store_batch){
            .device_id = it->device_id,
            .org_id = it->org_id,
            .readings = it->readings.items,
            .len = it->readings.len,
            .protocol = it->protocol,
            .received_at = it->received_at,
            .session = it->session,
        };
    }
    if (rc == SS_OK && nb > 0)
        rc = store_write_batches(q->conn, q->batches, nb);
    if (rc == SS_NOT_FOUND && nb > 1) {
        queue_commit_each(q, run);
        return;
    }
    if (rc != SS_OK)
        log_warn("ingest", "commit of %zu items failed: %s", n_items, ss_strerror(rc));
    for (ingest_item *it = run; it; it = it->next)
        it->status = it->readings.len ? rc : SS_OK;
}

/* Reports one run's commit: its readings and time, and a store failure
 * (a deleted device's refusal is not one). */
static void queue_observe(ingest_queue *q, const ingest_item *run, uint64_t ns)
{
    uint64_t readings = 0;
    int failed = 0;
    for (const ingest_item *it = run; it; it = it->next) {
        readings += it->readings.len;
        failed |= it->status != SS_OK && it->status != SS_NOT_FOUND;
    }
    if (readings > 0)
        metrics_commit(q->metrics, readings, ns);
    if (failed)
        metrics_store_error(q->metrics);
}

/* Takes one run, commits it outside the lock, and files it under `done`.
 * Called with mu held; returns with mu held. */
static void queue_process_run(ingest_queue *q)
{
    size_t n_items;
    ingest_item *run = queue_take_run(q, &n_items);
    uv_mutex_unlock(&q->mu);
    uint64_t started = uv_hrtime();
    queue_commit_run(q, run, n_items);
    queue_observe(q, run, uv_hrtime() - started);
    ingest_item *last = run;
    while (last->next)
        last = last->next;
    uv_mutex_lock(&q->mu);
    queue_list_append(&q->done, run, last);
}

static void queue_thread_main(void *arg)
{
    ingest_queue *q = arg;
    uv_mutex_lock(&q->mu);
    for (;;) {
        while (!q->pending.head && !q->stopping)
            uv_cond_wait(&q->cond, &q->mu);
        if (!q->pending.head)
            break;
        queue_process_run(q);
        uv_async_send(&q->async);
    }
    uv_mutex_unlock(&q->mu);
}

/* Hands one completed item back: the commit hook first, then its owner.
 * The item may be freed or resubmitted inside `done`, so nothing reads it
 * after that call. */
static void queue_deliver_one(ingest_queue *q, ingest_item *it)
{
    int status = it->status;
    q->depth--;
    metrics_queue_depth(q->metrics, q->depth);
    if (status == SS_OK)
        metrics_readings_stored(q->metrics, metrics_protocol_parse(it->protocol),
                                it->readings.len);
    if (status == SS_OK && q->on_commit)
        q->on_commit(q->ctx, it);
    it->done(it, status);
}

static ingest_item *queue_pop_done(ingest_queue *q)
{
    uv_mutex_lock(&q->mu);
    ingest_item *it = queue_list_pop(&q->done);
    uv_mutex_unlock(&q->mu);
    return it;
}

/* A callback may call ingest_queue_stop, which delivers the rest and
 * starts closing; from then on the mutex is gone, so check `closing` before
 * touching it. The queue itself lives until the close callback. */
static void queue_async_cb(uv_async_t *handle)
{
    ingest_queue *q = handle->data;
    ingest_item *it;
    while (!q->closing && (it = queue_pop_done(q)))
        queue_deliver_one(q, it);
}

static void queue_free(ingest_queue *q)
{
    if (q->conn)
        store_conn_release(q->s, q->conn);
    uv_cond_destroy(&q->cond);
    uv_mutex_destroy(&q->mu);
    free(q->batches);
    free(q);
}

static void queue_close_cb(uv_handle_t *handle)
{
    queue_free(handle->data);
}

static void queue_join(ingest_queue *q)
{
    uv_mutex_lock(&q->mu);
    q->stopping = 1;
    uv_cond_signal(&q->cond);
    uv_mutex_unlock(&q->mu);
    uv_thread_join(&q->thread);
}

static int queue_init_sync(ingest_queue *q)
{
    if (uv_mutex_init(&q->mu) != 0)
        return SS_NOMEM;
    if (uv_cond_init(&q->cond) != 0) {
        uv_mutex_destroy(&q->mu);
        return SS_NOMEM;
    }
    return SS_OK;
}

/* The thread starts before the async handle exists; that is safe because
 * it only sends after committing an item, and none can be submitted before
 * start returns. */
static int queue_start_thread(uv_loop_t *loop, ingest_queue *q)
{
    if (uv_thread_create(&q->thread, queue_thread_main, q) != 0)
        return SS_NOMEM;
    if (uv_async_init(loop, &q->async, queue_async_cb) != 0) {
        queue_join(q);
        return SS_NOMEM;
    }
    q->async.data = q;
    return SS_OK;
}

int ingest_queue_start(uv_loop_t *loop, store *s, ingest_commit_cb on_commit, void *ctx,
                       ingest_queue **out)
{
    ingest_queue *q = calloc(1, sizeof *q);
    if (!q)
        return SS_NOMEM;
    *q = (ingest_queue){.loop = loop, .s = s, .on_commit = on_commit, .ctx = ctx};
    int rc = queue_init_sync(q);
    if (rc != SS_OK) {
        free(q);
        return rc;
    }
    rc = store_conn_acquire(s, &q->conn);
    if (rc == SS_OK)
        rc = queue_start_thread(loop, q);
    if (rc != SS_OK) {
        queue_free(q);
        return rc;
    }
    *out = q;
    return SS_OK;
}

void ingest_queue_submit(ingest_queue *q, ingest_item *item)
{
    item->status = SS_OK;
    q->depth++;
    metrics_queue_depth(q->metrics, q->depth);
    uv_mutex_lock(&q->mu);
    queue_list_append(&q->pending, item, item);
    uv_cond_signal(&q->cond);
    uv_mutex_unlock(&q->mu);
}

size_t ingest_queue_depth(const ingest_queue *q)
{
    return q->depth;
}

void ingest_queue_set_metrics(ingest_queue *q, metrics *m)
{
    q->metrics = m;
}

/* After the join the store thread is gone, so this thread commits what is
 * left itself: items submitted by a `done` callback during the stop are
 * committed too, and every item completes. */
static void queue_drain_here(ingest_queue *q)
{
    for (;;) {
        uv_mutex_lock(&q->mu);
        if (q->pending.head)
            queue_process_run(q);
        ingest_item *it = queue_list_pop(&q->done);
        int more = q->pending.head != NULL;
        uv_mutex_unlock(&q->mu);
        if (it)
            queue_deliver_one(q, it);
        else if (!more)
            return;
    }
}

void ingest_queue_stop(ingest_queue *q)
{
    queue_join(q);
    queue_drain_here(q);
    q->closing = 1;
    uv_close((uv_handle_t *)&q->async, queue_close_cb);
}
