/* queue.c — the ingest queue: loop thread in, store thread commits, loop
 * thread out.
 *
 * Shares. Every organisation and device with items queued has a share
 * record: readings and bytes it has queued (submitted, not yet delivered),
 * kept by the loop thread, which alone admits and delivers; a record lives
 * while it has items and is freed with its last delivery.
 *
 * Sub-queues. Under one mutex, each organisation's share also holds its
 * pending items (submitted, not yet taken by the store thread), and the
 * organisations with pending items form a ring. The store thread takes a
 * run for one transaction by walking the ring from its cursor, a slice
 * from each organisation, and leaves the cursor at the first one it did not
 * serve: round robin across commits. Committed items go to the `done` list
 * and the loop is woken with uv_async_send; libuv may fold several sends
 * into one callback, so the callback drains the whole list each time. One
 * store thread and FIFO lists keep completions in submission order within
 * each organisation.
 *
 * An organisation's share is freed only once all its items are delivered:
 * then none is pending, so it is not in the ring and the store thread holds
 * no pointer to it. */
#include "ingest/queue.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/hash.h"
#include "core/log.h"

/* Buckets of each share table (a power of two). A share exists only while
 * it has items queued, so the tables hold at most the active senders. */
#define QUEUE_SHARE_BUCKETS 1024u

_Static_assert((QUEUE_SHARE_BUCKETS & (QUEUE_SHARE_BUCKETS - 1)) == 0, "a power of two");

typedef struct queue_list {
    ingest_item *head;
    ingest_item *tail;
} queue_list;

struct queue_share {
    char id[SS_ID_LEN + 1];
    queue_share *chain;      /* loop thread: the next in its bucket */
    size_t items;            /* loop thread: submitted, not yet delivered */
    size_t readings;
    size_t bytes;
    /* Organisations only, under mu. */
    queue_list pending;
    size_t credit;           /* readings it may still take (deficit round robin) */
    queue_share *ring_prev, *ring_next;  /* in the ring while pending is not empty */
    /* Organisations only, loop thread: senders of it refused for room,
     * woken by its next delivery. */
    ss_list waiters;
};

/* Shares by id (organisations, or devices). */
typedef struct share_table {
    queue_share *buckets[QUEUE_SHARE_BUCKETS];
} share_table;

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
    queue_share *ring;    /* the organisation the next commit serves first */
    size_t ring_len;      /* organisations in the ring */
    queue_list done;
    int stopping;

    /* The store thread's, and after the join the stopping loop thread's. */
    store_conn *conn;
    store_batch *batches;
    size_t batches_cap;

    /* Loop thread only. */
    size_t depth;
    size_t readings;      /* queued in all */
    size_t bytes;
    share_table orgs;
    share_table devices;
    /* Waiters of organisations with nothing queued (refused by the whole
     * queue's bound), woken by any delivery. */
    ss_list waiters;
    int closing;
};

/* ---- lists and the ring (under mu) -------------------------------------------- */

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

/* A newly busy organisation joins the ring last: just before the cursor. */
static void ring_insert(ingest_queue *q, queue_share *org)
{
    q->ring_len++;
    if (!q->ring) {
        org->ring_prev = org->ring_next = org;
        q->ring = org;
        return;
    }
    org->ring_next = q->ring;
    org->ring_prev = q->ring->ring_prev;
    org->ring_prev->ring_next = org;
    q->ring->ring_prev = org;
}

/* Takes an organisation whose pending list emptied out of the ring; the
 * cursor moves on to the next one. */
static void ring_remove(ingest_queue *q, queue_share *org)
{
    q->ring_len--;
    if (org->ring_next == org) {
        q->ring = NULL;
    } else {
        org->ring_prev->ring_next = org->ring_next;
        org->ring_next->ring_prev = org->ring_prev;
        if (q->ring == org)
            q->ring = org->ring_next;
    }
    org->ring_prev = org->ring_next = NULL;
}

/* ---- the run of one commit (store thread, under mu) -------------------------- */

/* The run being taken for one transaction. */
typedef struct queue_run {
    queue_list list;
    size_t readings;
    size_t items;
} queue_run;

/* One visit of the cursor's organisation, deficit round robin: it gains
 * SS_COMMIT_ORG_QUANTUM readings of credit and moves its items to the run
 * while the credit covers them and the commit's budget
 * (SS_COMMIT_READINGS_MAX; the run's first item goes whatever its size)
 * has room. An org whose next item is bigger than its credit keeps the
 * credit for its next visit, so large items wait a few rounds while small
 * ones of other orgs go at once. Returns 0 when the budget stopped it (the
 * cursor stays on it: it is served first next time), else 1. */
static int take_slice(ingest_queue *q, queue_share *org, queue_run *run)
{
    ingest_item *it;
    org->credit += SS_COMMIT_ORG_QUANTUM;
    while ((it = org->pending.head) != NULL) {
        size_t n = it->readings.len;
        if (run->items > 0 && run->readings + n > SS_COMMIT_READINGS_MAX)
            return 0;
        if (n > org->credit)
            break;
        queue_list_pop(&org->pending);
        queue_list_append(&run->list, it, it);
        org->credit -= n;
        run->readings += n;
        run->items++;
    }
    if (!org->pending.head) {
        org->credit = 0;
        ring_remove(q, org);
    } else {
        q->ring = org->ring_next;
    }
    return 1;
}

/* Detaches the run for one transaction: organisations in ring order, one
 * round when several have work (a bigger commit would only make the next
 * sender wait longer for the one running), more rounds until something is
 * taken; one org alone takes round after round up to the budget (group
 * commit at full size for a bulk load). Caller holds mu. */
static ingest_item *queue_take_run(ingest_queue *q, size_t *n_items)
{
    queue_run run = {0};
    size_t visits = q->ring_len > 1 ? q->ring_len : SIZE_MAX;
    while (q->ring && (visits > 0 || run.items == 0) && take_slice(q, q->ring, &run))
        visits -= visits > 0;
    *n_items = run.items;
    return run.list.head;
}

/* ---- commits (store thread) --------------------------------------------------- */

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

static store_batch batch_of(ingest_item *it)
{
    it->refused_whole = 0;
    return (store_batch){
        .device_id = it->device_id,
        .org_id = it->org_id,
        .readings = it->readings.items,
        .len = it->readings.len,
        .protocol = it->protocol,
        .received_at = it->received_at,
        .session = it->session,
        .group_ends = it->group_ends,
        .n_groups = it->group_ends ? it->n_groups : 0,
        .refused = it->group_ends ? it->group_refused : &it->refused_whole,
        .bulk = it->history,
    };
}

/* Counts the readings of the item's refused groups (status 0 only). */
static void item_note_refused(ingest_item *it)
{
    it->readings_refused = 0;
    if (it->status != SS_OK || it->readings.len == 0)
        return;
    if (!it->group_ends) {
        it->readings_refused = it->refused_whole ? it->readings.len : 0;
        return;
    }
    uint32_t from = 0;
    for (size_t g = 0; g < it->n_groups; g++) {
        if (it->group_refused[g])
            it->readings_refused += it->group_ends[g] - from;
        from = it->group_ends[g];
    }
}

/* A device deleted while its readings waited in the queue fails the whole
 * group commit (SS_NOT_FOUND). Rare; so then each item is committed on its
 * own, and only the deleted device's items fail. */
static void queue_commit_each(ingest_queue *q, ingest_item *run)
{
    for (ingest_item *it = run; it; it = it->next) {
        store_batch b = batch_of(it);
        it->status = it->readings.len ? store_write_batches(q->conn, &b, 1) : SS_OK;
        item_note_refused(it);
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
        if (it->readings.len > 0)
            q->batches[nb++] = batch_of(it);
    }
    if (rc == SS_OK && nb > 0)
        rc = store_write_batches(q->conn, q->batches, nb);
    if (rc == SS_NOT_FOUND && nb > 1) {
        queue_commit_each(q, run);
        return;
    }
    if (rc != SS_OK)
        log_warn("ingest", "commit of %zu items failed: %s", n_items, ss_strerror(rc));
    for (ingest_item *it = run; it; it = it->next) {
        it->status = it->readings.len ? rc : SS_OK;
        item_note_refused(it);
    }
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
        while (!q->ring && !q->stopping)
            uv_cond_wait(&q->cond, &q->mu);
        if (!q->ring)
            break;
        queue_process_run(q);
        uv_async_send(&q->async);
    }
    uv_mutex_unlock(&q->mu);
}

/* ---- shares (loop thread) ----------------------------------------------------- */

static queue_share **share_slot(share_table *t, const char *id)
{
    queue_share **p = &t->buckets[hash_id(id) & (QUEUE_SHARE_BUCKETS - 1)];
    while (*p && strcmp((*p)->id, id) != 0)
        p = &(*p)->chain;
    return p;
}

static queue_share *share_find(const share_table *t, const char *id)
{
    return *share_slot((share_table *)t, id);
}

static queue_share *share_get(share_table *t, const char *id)
{
    queue_share **p = share_slot(t, id);
    if (*p)
        return *p;
    queue_share *sh = calloc(1, sizeof *sh);
    if (!sh)
        return NULL;
    memcpy(sh->id, id, sizeof sh->id);
    sh->id[SS_ID_LEN] = '\0';
    ss_list_init(&sh->waiters);
    *p = sh;
    return sh;
}

/* Frees a share that holds no item (NULL: nothing). An organisation's then
 * has nothing pending: the store thread has taken and committed every item
 * of it, or it never had one (made for an item then refused). */
static void share_drop_unused(share_table *t, queue_share *sh)
{
    if (!sh || sh->items > 0)
        return;
    queue_share **p = share_slot(t, sh->id);
    *p = sh->chain;
    free(sh);
}

/* Gives back an item's readings and bytes; the share goes with its last
 * item. */
static void share_release(share_table *t, queue_share *sh, const ingest_item *it)
{
    sh->items--;
    sh->readings -= it->readings.len;
    sh->bytes -= it->cost_bytes;
    share_drop_unused(t, sh);
}

static void share_add(queue_share *sh, const ingest_item *it)
{
    sh->items++;
    sh->readings += it->readings.len;
    sh->bytes += it->cost_bytes;
}

static int share_fits(const queue_share *sh, size_t n, size_t bytes, size_t max_n,
                      size_t max_bytes)
{
    return !sh || (sh->readings + n <= max_n && sh->bytes + bytes <= max_bytes);
}

/* The admission rule of queue.h. An org (device) with nothing queued has
 * no share yet: it fits its own bound whatever the item's size. */
static int queue_admits(const ingest_queue *q, const queue_share *org, const queue_share *dev,
                        size_t n, size_t bytes)
{
    if (!org)
        return q->readings + n <= SS_INGEST_QUEUE_READINGS_MAX + SS_INGEST_QUEUE_RESERVE_READINGS &&
               q->bytes + bytes <= SS_INGEST_QUEUE_BYTES_MAX + SS_INGEST_QUEUE_RESERVE_BYTES;
    return share_fits(org, n, bytes, SS_INGEST_ORG_READINGS_MAX, SS_INGEST_ORG_BYTES_MAX) &&
           share_fits(dev, n, bytes, SS_INGEST_DEVICE_READINGS_MAX, SS_INGEST_DEVICE_BYTES_MAX) &&
           q->readings + n <= SS_INGEST_QUEUE_READINGS_MAX &&
           q->bytes + bytes <= SS_INGEST_QUEUE_BYTES_MAX;
}

/* What an item holds in memory while queued. */
static size_t item_cost(const ingest_item *it)
{
    return sizeof *it + it->readings.cap * sizeof(ss_reading) + it->held_bytes;
}

/* ---- delivery (loop thread) --------------------------------------------------- */

static void waiter_unlink(ingest_waiter *w)
{
    w->waiting = 0;
    ss_list_remove(&w->link);
}

/* Wakes each waiter of the list once, in order; one refused again waits
 * again in a list of its org, never this one, so this ends. A ready
 * callback may cancel any waiter, this list's too. */
static void waiters_wake(ss_list *list)
{
    ss_list *node;
    while ((node = ss_list_first(list)) != NULL) {
        ingest_waiter *w = ss_list_entry(node, ingest_waiter, link);
        waiter_unlink(w);
        w->ready(w);
    }
}

/* Wakes the waiters of orgs that had nothing queued. */
static void queue_wake_waiters(ingest_queue *q)
{
    ss_list woken;
    ss_list_move_all(&q->waiters, &woken);
    waiters_wake(&woken);
}

/* Hands one completed item back: the commit hook first, then its owner.
 * The item may be freed or resubmitted inside `done`, so nothing reads it
 * after that call. */
static void queue_deliver_one(ingest_queue *q, ingest_item *it)
{
    int status = it->status;
    /* Taken now: the org's share may go with this item. */
    ss_list woken;
    ss_list_move_all(&it->org->waiters, &woken);
    q->depth--;
    q->readings -= it->readings.len;
    q->bytes -= it->cost_bytes;
    share_release(&q->devices, it->device, it);
    share_release(&q->orgs, it->org, it);
    it->org = it->device = NULL;
    metrics_queue_depth(q->metrics, q->depth);
    if (status == SS_OK && q->on_commit)
        q->on_commit(q->ctx, it);
    /* The org's waiters first: the room is theirs before this item's
     * sender, which may submit again from `done`, takes it back. */
    waiters_wake(&woken);
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
    int delivered = 0;
    while (!q->closing && (it = queue_pop_done(q))) {
        queue_deliver_one(q, it);
        delivered = 1;
    }
    if (delivered && !q->closing)
        queue_wake_waiters(q);
}

/* ---- start, submit, stop ------------------------------------------------------ */

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
    q->loop = loop;
    q->s = s;
    q->on_commit = on_commit;
    q->ctx = ctx;
    ss_list_init(&q->waiters);
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

/* Files the admitted item under its organisation; a newly busy one joins
 * the ring. */
static void queue_enqueue(ingest_queue *q, ingest_item *item)
{
    uv_mutex_lock(&q->mu);
    queue_share *org = item->org;
    if (!org->pending.head)
        ring_insert(q, org);
    queue_list_append(&org->pending, item, item);
    uv_cond_signal(&q->cond);
    uv_mutex_unlock(&q->mu);
}

int ingest_queue_submit(ingest_queue *q, ingest_item *item)
{
    size_t cost = item_cost(item);
    queue_share *org = share_find(&q->orgs, item->org_id);
    queue_share *dev = share_find(&q->devices, item->device_id);
    if (!queue_admits(q, org, dev, item->readings.len, cost))
        return SS_BUSY;
    org = org ? org : share_get(&q->orgs, item->org_id);
    dev = dev ? dev : share_get(&q->devices, item->device_id);
    if (!org || !dev) {
        /* Out of memory for a share: refused like a full queue. */
        share_drop_unused(&q->orgs, org);
        share_drop_unused(&q->devices, dev);
        return SS_BUSY;
    }
    item->status = SS_OK;
    item->readings_refused = 0;
    item->cost_bytes = cost;
    item->org = org;
    item->device = dev;
    share_add(org, item);
    share_add(dev, item);
    q->readings += item->readings.len;
    q->bytes += cost;
    q->depth++;
    metrics_queue_depth(q->metrics, q->depth);
    queue_enqueue(q, item);
    return SS_OK;
}

int ingest_queue_has_room(const ingest_queue *q, const char *org_id, const char *device_id)
{
    return queue_admits(q, share_find(&q->orgs, org_id), share_find(&q->devices, device_id), 1,
                        sizeof(ingest_item));
}

/* An org with items queued has a delivery to come, which wakes its
 * waiters; one with none was refused by the whole queue's bound, and any
 * delivery may make room for it. */
void ingest_queue_wait(ingest_queue *q, ingest_waiter *w, const char *org_id)
{
    if (w->waiting)
        return;
    queue_share *org = share_find(&q->orgs, org_id);
    w->waiting = 1;
    ss_list_insert_tail(org ? &org->waiters : &q->waiters, &w->link);
}

void ingest_queue_cancel_wait(ingest_queue *q, ingest_waiter *w)
{
    (void)q;
    if (w->waiting)
        waiter_unlink(w);
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
 * left itself: items submitted by a `done` callback or a waiter during the
 * stop are committed too, and every item completes. */
static void queue_drain_here(ingest_queue *q)
{
    int delivered = 0;
    for (;;) {
        uv_mutex_lock(&q->mu);
        if (q->ring)
            queue_process_run(q);
        ingest_item *it = queue_list_pop(&q->done);
        int more = q->ring != NULL || q->done.head != NULL;
        uv_mutex_unlock(&q->mu);
        if (it) {
            queue_deliver_one(q, it);
            delivered = 1;
        } else if (delivered && !ss_list_empty(&q->waiters)) {
            /* Only after a delivery: a waiter refused again then waits for
             * one, and the loop ends instead of spinning. */
            delivered = 0;
            queue_wake_waiters(q);
        } else if (!more) {
            return;
        }
    }
}

void ingest_queue_stop(ingest_queue *q)
{
    queue_join(q);
    queue_drain_here(q);
    q->closing = 1;
    uv_close((uv_handle_t *)&q->async, queue_close_cb);
}
