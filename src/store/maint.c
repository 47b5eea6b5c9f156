/* maint.c — the store's housekeeping thread (maint.h). */
#include "store/maint.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <uv.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"

#define LOG_MOD "store"
#define NS_PER_MS 1000000ull

struct store_maint {
    store *store;
    size_t chunk_rows;
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;
    int stop;          /* under mu */
    int kicked;        /* under mu */
    atomic_int healthy;
    atomic_int_fast64_t pinged_at;  /* ms of the last successful ping */
    metrics *metrics;             /* may be NULL */
};

static void ping(store_maint *m, store_conn *c)
{
    int ok = store_ping(c) == SS_OK;
    atomic_store(&m->healthy, ok);
    if (ok)
        atomic_store(&m->pinged_at, clock_now_ms());
}

/* Waits up to ms, or until stopped, or (when idle) kicked. A kick does
 * not cut the pause between two purge chunks short: that pause is what
 * lets ingest commit. Returns 1 when stopping. */
static int wait_ms(store_maint *m, uint64_t ms, int idle)
{
    uv_mutex_lock(&m->mu);
    if (!m->stop && !(idle && m->kicked))
        uv_cond_timedwait(&m->cond, &m->mu, ms * NS_PER_MS);
    m->kicked = 0;
    int stop = m->stop;
    uv_mutex_unlock(&m->mu);
    return stop;
}

/* 1 when the purge has work and room to do it. The look is a read: the
 * idle thread takes no write lock, and commits no empty transaction.
 * Deleting readings writes pages to the log like ingest does, so while the
 * disk is full, or a checkpoint would not fit, the purge waits rather than
 * grow the log with space ingest needs. */
static int purge_due(store_maint *m, store_conn *c)
{
    int64_t pending = 0;
    if (store_purge_pending(c, &pending) != SS_OK)
        return 0;
    metrics_purge_pending(m->metrics, (uint64_t)pending);
    return pending > 0 && store_room_to_write(m->store);
}

/* The backlog the metrics show, once a chunk has emptied the list. */
static void purge_recount(store_maint *m, store_conn *c)
{
    int64_t pending = 0;
    if (store_purge_pending(c, &pending) == SS_OK)
        metrics_purge_pending(m->metrics, (uint64_t)pending);
}

/* One chunk of the purge. Returns 1 while more remains. */
static int purge_chunk(store_maint *m, store_conn *c)
{
    size_t deleted = 0;
    int more = 0;
    if (!purge_due(m, c))
        return 0;
    int err = store_purge_step(c, m->chunk_rows, &deleted, &more);
    if (err) {
        log_warn(LOG_MOD, "purge of deleted readings: %s; retrying", ss_strerror(err));
        return 0;
    }
    metrics_readings_purged(m->metrics, deleted);
    if (!more)
        purge_recount(m, c);
    return more;
}

/* Between two chunks the thread sleeps at least as long as the chunk held
 * the write lock: ingest commits, waiting on the busy timeout, get at least
 * half of the writer's time while a large purge runs. */
static uint64_t pause_after(int64_t took_ms)
{
    return took_ms > (int64_t)SS_PURGE_PAUSE_MS ? (uint64_t)took_ms : SS_PURGE_PAUSE_MS;
}

static void maint_main(void *arg)
{
    store_maint *m = arg;
    store_conn *c = NULL;
    int64_t next_ping = 0;
    for (;;) {
        if (!c && store_conn_acquire(m->store, &c) != SS_OK) {
            atomic_store(&m->healthy, 0);
            c = NULL;
        }
        int64_t now = clock_now_ms();
        if (c && now >= next_ping) {
            ping(m, c);
            next_ping = now + SS_HEALTH_PING_MS;
        }
        if (c && store_full(m->store))
            store_probe_room(c);
        int more = c ? purge_chunk(m, c) : 0;
        uint64_t wait = more ? pause_after(clock_now_ms() - now) : SS_HEALTH_PING_MS;
        if (wait_ms(m, wait, !more))
            break;
    }
    if (c)
        store_conn_release(m->store, c);
}

int store_maint_start(store *s, const store_maint_options *opt, store_maint **out)
{
    store_maint *m = calloc(1, sizeof *m);
    if (!m)
        return SS_NOMEM;
    m->store = s;
    m->chunk_rows = opt && opt->purge_chunk_rows ? opt->purge_chunk_rows : SS_PURGE_CHUNK_ROWS;
    if (m->chunk_rows > SS_PURGE_CHUNK_ROWS)
        m->chunk_rows = SS_PURGE_CHUNK_ROWS;
    m->metrics = opt ? opt->metrics : NULL;
    atomic_init(&m->healthy, 0);
    atomic_init(&m->pinged_at, 0);
    store_conn *c = NULL;
    if (store_conn_acquire(s, &c) == SS_OK) {
        ping(m, c);
        store_conn_release(s, c);
    }
    if (uv_mutex_init(&m->mu) != 0) {
        free(m);
        return SS_NOMEM;
    }
    if (uv_cond_init(&m->cond) != 0) {
        uv_mutex_destroy(&m->mu);
        free(m);
        return SS_NOMEM;
    }
    if (uv_thread_create(&m->thread, maint_main, m) != 0) {
        uv_cond_destroy(&m->cond);
        uv_mutex_destroy(&m->mu);
        free(m);
        return SS_NOMEM;
    }
    *out = m;
    return SS_OK;
}

void store_maint_kick(store_maint *m)
{
    if (!m)
        return;
    uv_mutex_lock(&m->mu);
    m->kicked = 1;
    uv_cond_signal(&m->cond);
    uv_mutex_unlock(&m->mu);
}

int store_maint_healthy(store_maint *m, int64_t now_ms)
{
    return atomic_load(&m->healthy) &&
           now_ms - atomic_load(&m->pinged_at) < (int64_t)SS_HEALTH_STALE_MS;
}

void store_maint_stop(store_maint *m)
{
    if (!m)
        return;
    uv_mutex_lock(&m->mu);
    m->stop = 1;
    uv_cond_signal(&m->cond);
    uv_mutex_unlock(&m->mu);
    uv_thread_join(&m->thread);
    uv_cond_destroy(&m->cond);
    uv_mutex_destroy(&m->mu);
    free(m);
}
