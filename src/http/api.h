/* api.h — the REST API of SPEC §2 on top of the HTTP server.
 *
 * api_handle is the server's request callback. Device ingest runs on the
 * loop thread (token from the in-memory cache, parse, ingest queue); every
 * request that needs the store runs on the libuv worker pool with a store
 * connection of its own, so the loop never waits on disk or Argon2. */
#ifndef SS_HTTP_API_H
#define SS_HTTP_API_H

#include <uv.h>

#include "aaa/conn_registry.h"
#include "aaa/device_cache.h"
#include "aaa/meter.h"
#include "aaa/quota.h"
#include "aaa/throttle.h"
#include "http/server.h"
#include "ingest/gateway.h"
#include "ingest/last_seen.h"
#include "ingest/queue.h"
#include "store/maint.h"
#include "store/store.h"

/* Fair shares of the worker pool for heavy requests (api_gate.h). */
typedef struct api_gate api_gate;
int api_gate_new(api_gate **out);
void api_gate_free(api_gate *g);

typedef struct api_ctx {
    uv_loop_t *loop;
    store *store;
    ingest_queue *queue;
    device_cache *devices;
    gateway *gateway;           /* device ingest: every protocol's one path */
    throttle *logins;
    conn_registry *conns;       /* live connections by principal, for revocation */
    quota *quotas;              /* per-org limits, enforced on every protocol */
    meter *meter;               /* accounting: usage and session records */
    metrics *metrics;           /* GET /metrics and ingest refusals; may be NULL */
    int64_t session_ttl_ms;     /* absolute session expiry; 0: SS_SESSION_TTL_MS */
    int64_t session_idle_ms;    /* idle session expiry; 0: SS_SESSION_IDLE_MS */
    size_t requests_in_flight;  /* loop thread only */
    api_gate *gate;             /* heavy requests' shares; NULL: no limit */
    store_maint *maint;         /* /healthz state, purge wake-up; may be NULL */
    last_seen *seen;            /* devices' newest batches not yet written; may be NULL */
    /* Heavy calls waiting for their org's share of the pool, oldest first
     * (loop thread only). */
    struct api_call *waiting_head, *waiting_tail;
    uv_timer_t *wait_timer;     /* set for the oldest wait's end; NULL: none waits */
    uint64_t heavy_wait_ms;     /* longest wait; 0: SS_API_HEAVY_WAIT_MS */
    const char *data_dir;       /* where imports spool; NULL: the working directory */
    size_t import_readings_max; /* one import's readings; 0: SS_IMPORT_READINGS_MAX */
    struct api_import *imports; /* running imports (loop thread only) */
} api_ctx;

/* The http_request_cb of every HTTP(S) listener; ctx is an api_ctx. */
void api_handle(void *ctx, http_request *req);
/* The http_head_cb of every HTTP(S) listener, which api_handle relies on:
 * refuses from the head alone a credential in the URL, and a bad device
 * token on ingest. */
int api_head(void *ctx, http_request *req);

/* The http_account_cb of every HTTP(S) listener: bytes, requests and
 * session records to the meter (SPEC §5). */
void api_account(void *ctx, http_request *req, uint64_t bytes_in, uint64_t bytes_out,
                 int closing);
/* The connection's quota ref (kept in its accounting state, which
 * api_account frees at close); NULL when out of memory. */
quota_ref *api_conn_quota_ref(http_request *req);
/* Who a request turned out to be from, and the login sessions it ended:
 * what the accounting of its answer needs. The API keeps it in the
 * connection's state (req->conn_data), not the transport, which learns
 * only whose answer it holds (req->principal_id). A connection serves one
 * request at a time (pipelined ones wait, and the accounting of an answer
 * runs before the next is parsed), so one per connection, emptied after
 * each answer's accounting, is the request's own. */
typedef enum {
    API_WHO_NONE = 0,
    API_WHO_DEVICE,
    API_WHO_PERSON,
    API_WHO_APIKEY,
} api_who_kind;

typedef struct api_req_acct {
    api_who_kind kind;
    char id[SS_ID_LEN + 1];        /* device, user or API key */
    char org_id[SS_ID_LEN + 1];    /* the org the request acted in, "" if none */
    char login_id[SS_ID_LEN + 1];  /* a person's login session */
    int session_ended;             /* a person signed out with this request */
    /* Login sessions this request ended besides its own sign-out: one by
     * id, or every one of a user (but the request's own when it stays). */
    char ended_login[SS_ID_LEN + 1];
    char ended_user[SS_ID_LEN + 1];
    int ended_user_keeps_own;
    /* An API key posting as the device `id` (POST /api/v1/data): the
     * readings count under the device, the connection is watched under
     * the key, whose revocation closes it. "" for none. */
    char via_key[SS_ID_LEN + 1];
} api_req_acct;

/* Makes the connection's API state when a request that will note who it is
 * from is taken (api_handle calls it, before any handler runs; not for the
 * loop's own /healthz and local /metrics answers, so an idle connection
 * that only asked those holds none), so that what a handler notes later
 * never allocates: a handler finishing after its connection closed finds
 * none. */
void api_conn_open(http_request *req);
/* Notes who the request is from: its id in req->principal_id for the
 * transport, and who in the connection's accounting state. Returns that
 * state, for the rest of what the request did, or NULL when there is none
 * (out of memory, or the connection closed and its accounting is done). */
api_req_acct *api_note_who(http_request *req, api_who_kind kind, const char *id,
                           const char *org_id);
/* The connection's record of the device of this request (api_note_who),
 * opened now when not open for that device, so that the ingest commit can
 * write it with the readings; the request's accounting later counts into
 * the same record. NULL without a meter or memory. */
meter_session *api_conn_device_record(api_ctx *app, http_request *req);
/* Sets *slot to NULL should the connection close (and its records go)
 * before the request is answered: the ingest in flight then counts into
 * no record. NULL: the request is answered, nothing to forget. */
void api_conn_hold_record(http_request *req, meter_session **slot);

#endif
