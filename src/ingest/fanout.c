/* fanout.c — the commit hook's subscribers.
 *
 * Delivery walks the list with a cursor the fan-out knows of, so an
 * unsubscribe inside a callback moves the cursor past the node it removes
 * instead of leaving it on freed memory. Cursors stack: a callback that
 * stops the queue delivers the remaining commits from inside this one. A
 * number per offered item (one commit of one sender), given to each of its
 * batches, keeps a subscriber added during it out of the rest of it. */
#include "ingest/fanout.h"

#include <stdlib.h>

#include "core/err.h"

typedef struct fanout_cursor {
    ss_list *next;
    struct fanout_cursor *outer;
} fanout_cursor;

struct fanout {
    ss_list subs;
    size_t count;
    uint64_t seq;             /* items offered so far */
    fanout_cursor *cursors;   /* deliveries under way, innermost first */
};

int fanout_new(fanout **out)
{
    fanout *f = calloc(1, sizeof *f);
    if (!f)
        return SS_NOMEM;
    ss_list_init(&f->subs);
    *out = f;
    return SS_OK;
}

void fanout_free(fanout *f)
{
    if (!f)
        return;
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &f->subs)
        ss_list_init(it);
    free(f);
}

/* A zeroed sub, or one unsubscribed, is in no list. */
static int sub_linked(const fanout_sub *sub)
{
    return sub->link.next && ss_list_linked(&sub->link);
}

void fanout_subscribe(fanout *f, fanout_sub *sub)
{
    if (sub_linked(sub))
        return;
    sub->since = f->seq;
    ss_list_insert_tail(&f->subs, &sub->link);
    f->count++;
}

void fanout_unsubscribe(fanout *f, fanout_sub *sub)
{
    if (!sub_linked(sub))
        return;
    for (fanout_cursor *c = f->cursors; c; c = c->outer) {
        if (c->next == &sub->link)
            c->next = sub->link.next;
    }
    ss_list_remove(&sub->link);
    f->count--;
}

size_t fanout_subscribers(const fanout *f)
{
    return f->count;
}

static void fanout_deliver(fanout *f, const fanout_batch *b, uint64_t seq)
{
    fanout_cursor cur = {f->subs.next, f->cursors};
    f->cursors = &cur;
    while (cur.next != &f->subs) {
        fanout_sub *sub = ss_list_entry(cur.next, fanout_sub, link);
        cur.next = cur.next->next;
        if (sub->since < seq)
            sub->on_batch(sub, b);
    }
    f->cursors = cur.outer;
}

/* The readings [from, to) of the item, number seq, as one batch. */
static void fanout_run(fanout *f, const ingest_item *it, uint64_t seq, size_t from, size_t to)
{
    if (to <= from)
        return;
    fanout_batch b = {
        .device_id = it->device_id,
        .org_id = it->org_id,
        .protocol = it->protocol,
        .received_at = it->received_at,
        .readings = it->readings.items + from,
        .len = to - from,
    };
    fanout_deliver(f, &b, seq);
}

/* Runs of stored groups go as one batch each: a refused group splits. */
static void fanout_groups(fanout *f, const ingest_item *it, uint64_t seq)
{
    size_t run_from = 0, from = 0;
    for (size_t g = 0; g < it->n_groups; g++) {
        size_t end = it->group_ends[g];
        if (it->group_refused[g]) {
            fanout_run(f, it, seq, run_from, from);
            run_from = end;
        }
        from = end;
    }
    fanout_run(f, it, seq, run_from, from);
}

void fanout_offer(void *ctx, const ingest_item *item)
{
    fanout *f = ctx;
    if (f->count == 0 || item->history || item->readings_refused == item->readings.len)
        return;
    uint64_t seq = ++f->seq;
    if (item->group_ends && item->readings_refused > 0)
        fanout_groups(f, item, seq);
    else
        fanout_run(f, item, seq, 0, item->readings.len);
}
