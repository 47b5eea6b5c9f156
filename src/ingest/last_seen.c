/* last_seen.c — devices' newest stored batch, in memory until written.
 *
 * A chained hash table keyed by device id (hash_id: ids are the server's
 * own). Each note stamps its entry with a rising sequence number; a flush
 * copies the entries out, writes them without holding the lock, and then
 * drops those not noted again since the copy. */
#include "ingest/last_seen.h"

#include "core/err.h"
#include "core/hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Buckets at first; the table doubles when it holds more entries than
 * buckets. */
#define LAST_SEEN_BUCKETS_MIN 64u

typedef struct seen_entry {
    struct seen_entry *next;
    uint64_t seq;
    store_device_seen v;
} seen_entry;

struct last_seen {
    uv_mutex_t mu;
    seen_entry **buckets;
    size_t nbuckets;   /* a power of two */
    size_t count;
    uint64_t seq;
    fanout_sub sub;
};

static void on_batch(fanout_sub *sub, const fanout_batch *b)
{
    last_seen *ls = sub->data;
    last_seen_note(ls, b->device_id, b->received_at, b->protocol);
}

int last_seen_new(last_seen **out)
{
    last_seen *ls = calloc(1, sizeof *ls);
    if (!ls)
        return SS_NOMEM;
    ls->buckets = calloc(LAST_SEEN_BUCKETS_MIN, sizeof *ls->buckets);
    if (!ls->buckets || uv_mutex_init(&ls->mu) != 0) {
        free(ls->buckets);
        free(ls);
        return SS_NOMEM;
    }
    ls->nbuckets = LAST_SEEN_BUCKETS_MIN;
    ls->sub.on_batch = on_batch;
    ls->sub.data = ls;
    *out = ls;
    return SS_OK;
}

void last_seen_free(last_seen *ls)
{
    if (!ls)
        return;
    for (size_t i = 0; i < ls->nbuckets; i++) {
        seen_entry *e = ls->buckets[i];
        while (e) {
            seen_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(ls->buckets);
    uv_mutex_destroy(&ls->mu);
    free(ls);
}

fanout_sub *last_seen_sub(last_seen *ls)
{
    return &ls->sub;
}

/* Caller holds mu. */
static seen_entry **slot_of(last_seen *ls, const char *device_id)
{
    seen_entry **p = &ls->buckets[hash_id(device_id) & (ls->nbuckets - 1)];
    while (*p && strcmp((*p)->v.id, device_id) != 0)
        p = &(*p)->next;
    return p;
}

/* Doubles the buckets; without memory the table stays as it is (longer
 * chains, still right). Caller holds mu. */
static void grow(last_seen *ls)
{
    size_t n = ls->nbuckets * 2;
    seen_entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < ls->nbuckets; i++) {
        seen_entry *e = ls->buckets[i];
        while (e) {
            seen_entry *next = e->next;
            size_t at = hash_id(e->v.id) & (n - 1);
            e->next = b[at];
            b[at] = e;
            e = next;
        }
    }
    free(ls->buckets);
    ls->buckets = b;
    ls->nbuckets = n;
}

int last_seen_note(last_seen *ls, const char *device_id, int64_t at, const char *protocol)
{
    int rc = SS_OK;
    uv_mutex_lock(&ls->mu);
    seen_entry **p = slot_of(ls, device_id);
    seen_entry *e = *p;
    if (!e && (e = calloc(1, sizeof *e)) != NULL) {
        snprintf(e->v.id, sizeof e->v.id, "%s", device_id);
        *p = e;
        if (++ls->count > ls->nbuckets)
            grow(ls);
    }
    if (!e) {
        rc = SS_NOMEM;
    } else if (at >= e->v.at) {
        e->v.at = at;
        snprintf(e->v.protocol, sizeof e->v.protocol, "%s", protocol ? protocol : "");
        e->seq = ++ls->seq;
    }
    uv_mutex_unlock(&ls->mu);
    return rc;
}

void last_seen_apply(last_seen *ls, store_device *d)
{
    if (!ls)
        return;
    uv_mutex_lock(&ls->mu);
    seen_entry *e = *slot_of(ls, d->id);
    if (e && e->v.at >= d->last_seen) {
        d->last_seen = e->v.at;
        snprintf(d->last_protocol, sizeof d->last_protocol, "%s", e->v.protocol);
    }
    uv_mutex_unlock(&ls->mu);
}

/* Copies every entry out; *upto is the sequence number they were noted by.
 * NULL with *n 0 when there are none or no memory. Caller holds mu. */
static store_device_seen *copy_out(last_seen *ls, size_t *n, uint64_t *upto)
{
    *n = 0;
    *upto = ls->seq;
    store_device_seen *rows = ls->count ? malloc(ls->count * sizeof *rows) : NULL;
    if (!rows)
        return NULL;
    for (size_t i = 0; i < ls->nbuckets; i++)
        for (seen_entry *e = ls->buckets[i]; e; e = e->next)
            rows[(*n)++] = e->v;
    return rows;
}

/* Drops the entries written and not noted since. Caller holds mu. */
static void forget_written(last_seen *ls, uint64_t upto)
{
    for (size_t i = 0; i < ls->nbuckets; i++) {
        seen_entry **p = &ls->buckets[i];
        while (*p) {
            seen_entry *e = *p;
            if (e->seq > upto) {
                p = &e->next;
                continue;
            }
            *p = e->next;
            free(e);
            ls->count--;
        }
    }
}

int last_seen_flush(last_seen *ls, store_conn *c)
{
    size_t n;
    uint64_t upto;
    if (!ls)
        return SS_OK;
    uv_mutex_lock(&ls->mu);
    store_device_seen *rows = copy_out(ls, &n, &upto);
    int unwritten = n == 0 && ls->count > 0;
    uv_mutex_unlock(&ls->mu);
    if (n == 0)
        return unwritten ? SS_NOMEM : SS_OK;
    int rc = store_device_set_seen(c, rows, n);
    free(rows);
    if (rc)
        return rc;
    uv_mutex_lock(&ls->mu);
    forget_written(ls, upto);
    uv_mutex_unlock(&ls->mu);
    return SS_OK;
}
