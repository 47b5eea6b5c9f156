/* api_import_commit.c — the commit phase of a bulk import (api_import.c):
 * each device's channels checked against the store, the org's quota
 * reserved for all of it, then the spool read back on the worker pool in
 * steps, sorted by device and channel, and handed to the ingest queue as
 * prepaid history items a few at a time, so that the import's commits take
 * their turn with everyone's (the queue's deficit round robin per org). */
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "http/api_import_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IMPORT_PROTOCOL "import"

/* ---- commit: steps on the worker pool --------------------------------------- */

void import_items_free(import_item *it)
{
    while (it) {
        import_item *next = it->next;
        readings_free(&it->msg.item.readings);
        free(it);
        it = next;
    }
}

static import_item *item_new(api_import *imp, uint32_t device)
{
    import_item *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    it->imp = imp;
    it->device = device;
    return it;
}

static int step_read(api_import *imp, import_rec *recs, size_t n)
{
    size_t want = n * sizeof *recs;
    off_t at = (off_t)(imp->read_pos * sizeof *recs);
    size_t got = 0;
    while (got < want) {
        ssize_t k = pread(imp->spool_fd, (char *)recs + got, want - got, at + (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return SS_IO;
        got += (size_t)k;
    }
    return SS_OK;
}

/* Stable counting sort of in[0..n) into out by key (device or channel
 * index below nkeys). counts: nkeys + 1 zeroed slots. */
static void sort_by(const import_rec *in, import_rec *out, size_t n, size_t nkeys, size_t *counts,
                    int by_device)
{
    for (size_t i = 0; i < n; i++)
        counts[(by_device ? in[i].device : in[i].channel) + 1]++;
    for (size_t k = 1; k <= nkeys; k++)
        counts[k] += counts[k - 1];
    for (size_t i = 0; i < n; i++)
        out[counts[by_device ? in[i].device : in[i].channel]++] = in[i];
}

/* The step's readings by device, and within a device by channel, each
 * series in the order of the body (a later reading of the same ts still
 * replaces an earlier one): each item then writes a few runs of
 * consecutive keys instead of hopping between series at every reading. */
static int step_sort(const api_import *imp, import_rec *recs, import_rec *tmp, size_t n)
{
    size_t nkeys = imp->n_channels > imp->n_devices ? imp->n_channels : imp->n_devices;
    size_t *counts = calloc(nkeys + 1, sizeof *counts);
    if (!counts)
        return SS_NOMEM;
    sort_by(recs, tmp, n, imp->n_channels, counts, 0);
    memset(counts, 0, (nkeys + 1) * sizeof *counts);
    sort_by(tmp, recs, n, imp->n_devices, counts, 1);
    free(counts);
    return SS_OK;
}

/* Cuts the sorted readings into items of one device each, at most
 * SS_IMPORT_ITEM_READINGS long, in order. */
static int step_items(api_import *imp, const import_rec *recs, size_t n, import_item **out)
{
    import_item *head = NULL, **tail = &head, *it = NULL;
    int rc = SS_OK;
    for (size_t i = 0; i < n && rc == SS_OK; i++) {
        const import_rec *r = &recs[i];
        if (!it || it->device != r->device ||
            it->msg.item.readings.len == SS_IMPORT_ITEM_READINGS) {
            if (!(it = item_new(imp, r->device))) {
                rc = SS_NOMEM;
                break;
            }
            *tail = it;
            tail = &it->next;
        }
        const import_channel *c = &imp->channels[r->channel];
        rc = readings_push(&it->msg.item.readings, c->name, c->len, r->ts, r->value);
    }
    if (rc) {
        import_items_free(head);
        head = NULL;
    }
    *out = head;
    return rc;
}

static void on_step_work(uv_work_t *w)
{
    api_import *imp = w->data;
    uint64_t left = imp->written - imp->read_pos;
    size_t n = left < SS_IMPORT_STEP_READINGS ? (size_t)left : SS_IMPORT_STEP_READINGS;
    import_rec *recs = malloc(n * sizeof *recs);
    import_rec *tmp = malloc(n * sizeof *tmp);
    int rc = recs && tmp ? step_read(imp, recs, n) : SS_NOMEM;
    if (!rc)
        rc = step_sort(imp, recs, tmp, n);
    imp->step_out = NULL;
    if (!rc)
        rc = step_items(imp, recs, n, &imp->step_out);
    if (!rc)
        imp->read_pos += n;
    imp->step_err = rc;
    free(recs);
    free(tmp);
}

static void submit_more(api_import *imp);

static void on_step_done(uv_work_t *w, int status)
{
    api_import *imp = w->data;
    imp->stepping = 0;
    if (status != 0 && !imp->step_err)
        imp->step_err = SS_STORE;
    if (imp->step_err && !imp->commit_err)
        imp->commit_err = imp->step_err;
    import_item *it = imp->step_out;
    imp->step_out = NULL;
    if (it) {
        if (imp->pending_tail)
            imp->pending_tail->next = it;
        else
            imp->pending = it;
        while (it->next)
            it = it->next;
        imp->pending_tail = it;
    }
    submit_more(imp);
}

static void start_step(api_import *imp)
{
    if (imp->stepping || imp->commit_err || imp->read_pos == imp->written)
        return;
    imp->step_work.data = imp;
    imp->stepping = 1;
    if (uv_queue_work(imp->app->loop, &imp->step_work, on_step_work, on_step_done)) {
        imp->stepping = 0;
        imp->commit_err = SS_NOMEM;
    }
}

/* ---- commit: the ingest queue ----------------------------------------------- */

static void finish_commit(api_import *imp)
{
    /* Readings reserved and never handed over go back to the quota. */
    uint64_t never = imp->written - imp->submitted;
    gateway_release(imp->app->gateway, imp->org_id, (size_t)never, clock_now_ms(), &imp->quota);
    int64_t now = clock_mono_ms();
    log_info("import", "org %s: %llu readings of %zu devices: body read and spooled in %lld ms, "
             "committed in %lld ms%s", imp->org_id, (unsigned long long)imp->submitted,
             imp->n_devices, (long long)(imp->commit_started_ms - imp->started_ms),
             (long long)(now - imp->commit_started_ms), imp->commit_err ? " (failed)" : "");
    if (!imp->commit_err) {
        import_answer_done(imp);
    } else if (imp->commit_err == SS_NOT_FOUND) {
        char text[160];
        snprintf(text, sizeof text,
                 "device \"%s\" was deleted during the import; what came before it is stored",
                 imp->devices[imp->err_device].id);
        import_answer_error(imp, 404, "not_found", text, 0);
    } else if (imp->commit_err == SS_TOO_LARGE) {
        char text[200];
        snprintf(text, sizeof text,
                 "readings would give device \"%s\" more than %u channels; what came before "
                 "them is stored",
                 imp->devices[imp->err_device].id, SS_DEVICE_CHANNELS_MAX);
        import_answer_error(imp, 400, "too_many_channels", text, 0);
    } else {
        import_answer_error(imp, 503, "store_unavailable",
                     imp->commit_err == SS_FULL
                         ? "the store is full; part of the import may be stored: send it again "
                           "once there is room (same readings replace)"
                         : "the store failed; part of the import may be stored: send it again "
                           "(same readings replace)",
                     0);
    }
    import_maybe_free(imp);
}

static void on_item_committed(gateway_msg *msg, const gateway_result *r)
{
    import_item *it = (import_item *)msg;
    api_import *imp = it->imp;
    imp->in_flight--;
    imp->queued_readings -= it->msg.item.readings.len;
    if (r->status != SS_OK && !imp->commit_err) {
        imp->commit_err = r->status;
        imp->err_device = it->device;
    } else if (r->refused && !imp->commit_err) {
        imp->commit_err = SS_TOO_LARGE;
        imp->err_device = it->device;
    }
    it->next = NULL;
    import_items_free(it);
    submit_more(imp);
}

static void on_room(ingest_waiter *w)
{
    api_import *imp = (api_import *)((char *)w - offsetof(api_import, waiter));
    submit_more(imp);
}

/* Hands the next pending item to the queue. 0: submitted; SS_BUSY: the
 * queue (or the import's own bound) has no room now; else the error that
 * ends the commit. */
static int submit_one(api_import *imp)
{
    import_item *it = imp->pending;
    size_t n = it->msg.item.readings.len;
    if (imp->in_flight && imp->queued_readings + n > SS_IMPORT_QUEUED_READINGS_MAX)
        return SS_BUSY;
    gateway_sender from = {.protocol = IMPORT_PROTOCOL, .quota = &imp->quota,
                           .gone = METRICS_REFUSED_STORE_UNAVAILABLE};
    if (device_cache_find(imp->app->devices, imp->devices[it->device].id, &from.dev) != SS_OK) {
        imp->err_device = it->device;
        return SS_NOT_FOUND;
    }
    it->msg.ack = on_item_committed;
    it->msg.data = it;
    it->msg.prepaid = 1;
    it->msg.item.history = 1;
    it->msg.item.held_bytes = sizeof *it - sizeof it->msg.item;
    int rc = gateway_submit(imp->app->gateway, &from, &it->msg, clock_now_ms());
    if (rc == SS_BUSY && !imp->in_flight) {
        gateway_wait(imp->app->gateway, &imp->waiter, &from);
        return SS_BUSY;
    }
    if (rc)
        return rc;
    imp->pending = it->next;
    if (!imp->pending)
        imp->pending_tail = NULL;
    it->next = NULL;
    imp->in_flight++;
    imp->queued_readings += n;
    imp->submitted += n;
    return SS_OK;
}

static void submit_more(api_import *imp)
{
    while (imp->pending && !imp->commit_err) {
        int rc = submit_one(imp);
        if (rc == SS_BUSY)
            break;
        if (rc)
            imp->commit_err = rc;
    }
    if (imp->commit_err) {
        import_items_free(imp->pending);
        imp->pending = imp->pending_tail = NULL;
    }
    /* Read ahead while the queue works on what it has. */
    if (!imp->commit_err && (!imp->pending || !imp->pending->next))
        start_step(imp);
    if (!imp->pending && !imp->stepping && !imp->in_flight &&
        (imp->commit_err || imp->read_pos == imp->written))
        finish_commit(imp);
}

/* ---- commit: the channel check -------------------------------------------- */

typedef struct check_ctx {
    const api_import *imp;
    uint32_t dev;
    size_t total;               /* the device's channels, stored and imported */
} check_ctx;

/* A stored channel the import does not bring adds one to the device. */
static int check_stored_name(void *ctx, const char *name)
{
    check_ctx *cx = ctx;
    const api_import *imp = cx->imp;
    const import_table *t = &imp->channel_table;
    for (uint32_t i = import_name_hash(name, strlen(name)) & t->mask; t->slots[i];
         i = (i + 1) & t->mask) {
        uint32_t ch = t->slots[i] - 1;
        if (strcmp(imp->channels[ch].name, name) == 0) {
            if (imp->series[import_series_slot(imp, import_series_key(cx->dev, ch))])
                return 0;
            break;
        }
    }
    cx->total++;
    return 0;
}

/* Each device's stored channels and those the import brings together must
 * stay within SS_DEVICE_CHANNELS_MAX, or the store would refuse part of the
 * import half way: refused now, before anything is stored. */
static void on_check_work(uv_work_t *w)
{
    api_import *imp = w->data;
    store_conn *db = NULL;
    imp->check_rc = store_conn_acquire(imp->app->store, &db);
    for (uint32_t d = 0; d < imp->n_devices && imp->check_rc == SS_OK; d++) {
        check_ctx cx = {imp, d, imp->devices[d].channels};
        imp->check_rc = store_channel_names(db, imp->devices[d].id, check_stored_name, &cx);
        if (imp->check_rc == SS_NOT_FOUND)
            imp->check_rc = SS_OK;  /* no series yet */
        if (imp->check_rc == SS_OK && cx.total > SS_DEVICE_CHANNELS_MAX) {
            imp->check_rc = SS_TOO_LARGE;
            imp->check_device = d;
        }
    }
    if (db)
        store_conn_release(imp->app->store, db);
}

static void reserve_and_submit(api_import *imp);

static void on_check_done(uv_work_t *w, int status)
{
    api_import *imp = w->data;
    imp->checking = 0;
    if (status != 0 && imp->check_rc == SS_OK)
        imp->check_rc = SS_STORE;
    if (imp->check_rc == SS_TOO_LARGE) {
        char text[200];
        snprintf(text, sizeof text,
                 "device \"%s\" would have more than %u channels with those it has; nothing "
                 "was stored",
                 imp->devices[imp->check_device].id, SS_DEVICE_CHANNELS_MAX);
        import_answer_error(imp, 400, "too_many_channels", text, 0);
    } else if (imp->check_rc != SS_OK) {
        import_answer_error(imp, 503, "store_unavailable",
                     "the store cannot be read now; nothing was stored", 0);
    }
    if (imp->check_rc != SS_OK) {
        import_maybe_free(imp);
        return;
    }
    reserve_and_submit(imp);
}

void import_commit_begin(api_import *imp)
{
    if (imp->written == 0) {
        import_answer_error(imp, 400, "bad_reading", "no readings in the body", 0);
        import_maybe_free(imp);
        return;
    }
    imp->phase = IMPORT_COMMIT;
    imp->commit_started_ms = clock_mono_ms();
    imp->check_work.data = imp;
    imp->checking = 1;
    if (uv_queue_work(imp->app->loop, &imp->check_work, on_check_work, on_check_done)) {
        imp->checking = 0;
        import_answer_error(imp, 503, "overloaded", "the server cannot take the request now", 0);
        import_maybe_free(imp);
    }
}

static void reserve_and_submit(api_import *imp)
{
    if (gateway_reserve(imp->app->gateway, imp->org_id, IMPORT_PROTOCOL, (size_t)imp->written,
                        clock_now_ms(), &imp->quota) != SS_OK) {
        imp->submitted = imp->written;  /* nothing reserved: nothing to give back */
        import_answer_error(imp, 429, "quota_exceeded",
                     "the import would take the organisation over its readings quota for "
                     "today; nothing was stored",
                     0);
        import_maybe_free(imp);
        return;
    }
    imp->waiter.ready = on_room;
    submit_more(imp);
}
