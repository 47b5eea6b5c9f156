/* live_ring.h — each organisation's window of recent live events: what a
 * Server-Sent Events client reconnecting with Last-Event-ID is sent again.
 *
 * An org's events carry ids that increase by one (its `seq`), written to
 * clients as "<epoch>-<seq>": the epoch is random per window, so an id of
 * a window gone (a restart, a window dropped after its last listener)
 * never passes for one of the window now. An id is within the window when
 * every event after it is still held: a client that sends it misses
 * nothing. Appending never evicts: the caller lets its listeners take the
 * new events first, then trims (live_ring_trim) to the limits, so a
 * listener that keeps up never loses events to one large batch.
 *
 * Limits: events and bytes per org, bytes in all (the oldest event of any
 * org goes first). Loop thread only; nothing here blocks. */
#ifndef SS_HTTP_LIVE_RING_H
#define SS_HTTP_LIVE_RING_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/limits.h"
#include "core/list.h"

/* 16 hex digits: 64 random bits. */
#define LIVE_EPOCH_LEN 16u
/* "<epoch>-<seq>" and its NUL. */
#define LIVE_ID_MAX (LIVE_EPOCH_LEN + 1u + 20u + 1u)

typedef struct live_org live_org;

typedef struct live_event {
    uint64_t seq;
    live_org *org;
    ss_list age;                    /* private: every org's events, oldest first */
    size_t len;                     /* bytes of frame */
    char device_id[SS_ID_LEN + 1];
    char frame[];                   /* "id: <id>\ndata: <json>\n\n" */
} live_event;

struct live_org {
    char id[SS_ID_LEN + 1];
    char epoch[LIVE_EPOCH_LEN + 1];
    uint64_t first_seq;             /* the oldest event held; == next_seq when none */
    uint64_t next_seq;              /* the next event's; the first is 1 */
    size_t bytes;                   /* held by its events */
    /* The listeners' (the stream layer's): the ring only counts on
     * listener_count to keep the window while anyone listens. */
    ss_list listeners;
    size_t listener_count;
    uint64_t idle_since;            /* loop ms the last listener left */
    /* Private. */
    live_event **slots;             /* circular: slot of seq is (head + seq - first_seq) % cap */
    size_t cap, head;
    ss_list bucket;
};

typedef struct live_ring_limits {
    size_t org_events;              /* 0: SS_LIVE_ORG_EVENTS_MAX */
    size_t org_bytes;               /* 0: SS_LIVE_ORG_BYTES_MAX */
    size_t total_bytes;             /* 0: SS_LIVE_RING_BYTES_MAX */
} live_ring_limits;

typedef struct live_ring live_ring;

/* lim may be NULL (the defaults). 0 or SS_NOMEM. */
int live_ring_new(const live_ring_limits *lim, live_ring **out);
/* Every org's window and events go. */
void live_ring_free(live_ring *r);

/* The org's window, or NULL when it has none. */
live_org *live_ring_find(live_ring *r, const char *org_id);
/* The org's window, made (empty, a new epoch) when it has none.
 * 0 or SS_NOMEM. */
int live_ring_open(live_ring *r, const char *org_id, live_org **out);
/* Drops the windows without listeners idle since before `before` (loop
 * ms); their listeners' ids no longer resume. */
void live_ring_drop_idle(live_ring *r, uint64_t before);

/* Appends the next event of the org: device_id and its JSON (one line,
 * no newline) are made into its frame. May pass the limits until the
 * next live_ring_trim. 0 or SS_NOMEM (nothing appended). */
int live_ring_append(live_ring *r, live_org *o, const char *device_id, const char *json,
                     size_t len);
/* Evicts the oldest events until the org and the whole are within limits. */
void live_ring_trim(live_ring *r, live_org *o);
/* The org's event seq, or NULL when it is not held (evicted, or not yet). */
const live_event *live_org_event(const live_org *o, uint64_t seq);

/* The event's frame with the values of the n channels named only (a
 * stream's channel filter), into out (reset first); out->len 0 when the
 * event holds none of them: nothing to send. 0 or SS_NOMEM. */
int live_event_filter(const live_event *e, const char *const *channels, size_t n, ss_buf *out);

/* The id text of the org's event seq (seq 0: "before the first"). */
void live_org_id(const live_org *o, uint64_t seq, char out[LIVE_ID_MAX]);
/* Reads a Last-Event-ID: OUT last, the seq of the last event the client
 * has. 0 when every event after it is held; SS_NOT_FOUND when it is
 * well-formed but of another window or outside this one (the client must
 * reload); SS_INVAL when it is not an id of this form. */
int live_org_parse_id(const live_org *o, const char *text, uint64_t *last);

/* Bytes held by every event of every org. */
size_t live_ring_bytes(const live_ring *r);

#endif
