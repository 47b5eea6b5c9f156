/* api_live.h — the live stream, GET /api/v1/orgs/{org}/live (SPEC §2):
 * every stored batch of the org, whatever protocol brought it, as
 * Server-Sent Events.
 *
 * One subscriber of the commit fan-out serves every stream: each batch
 * becomes one event per distinct ts (as MQTT's readings/<device> does),
 * appended once to the org's window (http/live_ring.h) and written to each
 * of the org's streams from there. A stream that falls behind the window
 * gets `event: overflow` and is closed; a revocation of the credential,
 * session or org it was opened with closes it, and a change of its
 * person's memberships has its access checked again at once. Loop thread
 * only, except where said. */
#ifndef SS_HTTP_API_LIVE_H
#define SS_HTTP_API_LIVE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "aaa/conn_registry.h"
#include "ingest/fanout.h"
#include "store/store.h"

typedef struct api_live api_live;

typedef struct api_live_options {
    uv_loop_t *loop;
    store *store;            /* access rechecks, on the worker pool */
    fanout *fanout;          /* subscribed to until api_live_stop */
    conn_registry *conns;    /* may be NULL: streams outlive revocations */
    uint64_t heartbeat_ms;   /* 0: SS_LIVE_HEARTBEAT_MS, never more */
} api_live_options;

/* Subscribes to the fan-out and starts the heartbeat timer. 0 or
 * SS_NOMEM. */
int api_live_new(const api_live_options *opt, api_live **out);
/* After the HTTP listeners have stopped (their streams are gone):
 * unsubscribes and closes the timer; run the loop once more before
 * api_live_free. Harmless twice. */
void api_live_stop(api_live *l);
void api_live_free(api_live *l);

/* Streams open now. */
size_t api_live_streams(const api_live *l);

#endif
