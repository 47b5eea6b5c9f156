/* fanout.h — every stored batch, whatever protocol brought it, offered to
 * whoever listens on the loop: the seam of live readings (MQTT
 * `readings/<device>`, a server-sent event stream).
 *
 * The ingest queue calls fanout_offer after each commit, for each
 * committed item in commit order (within an organisation, submission
 * order), before the item's sender is acknowledged. A subscriber sees the
 * readings actually stored: groups the store refused (the channel limit)
 * are left out, so one item may be offered as several batches, in order.
 * A batch and its readings are valid during the callback only: a
 * subscriber copies what it keeps.
 *
 * A subscriber may subscribe or unsubscribe anyone, itself included,
 * inside its callback: one subscribed during a batch sees the next item
 * on (none of the rest of the item it joined in), one unsubscribed is not
 * called again. Loop thread only. */
#ifndef SS_INGEST_FANOUT_H
#define SS_INGEST_FANOUT_H

#include <stddef.h>
#include <stdint.h>

#include "core/list.h"
#include "core/reading.h"
#include "ingest/queue.h"

typedef struct fanout fanout;

typedef struct fanout_batch {
    const char *device_id;
    const char *org_id;
    const char *protocol;        /* "http", "https", "tcp", "udp" */
    int64_t received_at;         /* ms */
    const ss_reading *readings;  /* stored, in the order they came */
    size_t len;                  /* > 0 */
} fanout_batch;

typedef struct fanout_sub fanout_sub;
struct fanout_sub {
    void (*on_batch)(fanout_sub *sub, const fanout_batch *b);  /* required */
    void *data;                  /* the subscriber's */
    /* Private to the fan-out. */
    ss_list link;
    uint64_t since;
};

/* 0 or SS_NOMEM. */
int fanout_new(fanout **out);
/* Subscribers still registered are forgotten, not called. */
void fanout_free(fanout *f);

/* Registers sub (on_batch set) for the items committed from now on. */
void fanout_subscribe(fanout *f, fanout_sub *sub);
/* Forgets sub; harmless when it is not subscribed. */
void fanout_unsubscribe(fanout *f, fanout_sub *sub);
size_t fanout_subscribers(const fanout *f);

/* The ingest queue's commit hook (ingest_commit_cb): ctx is the fan-out. */
void fanout_offer(void *ctx, const ingest_item *item);

#endif
