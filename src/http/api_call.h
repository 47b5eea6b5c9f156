/* api_call.h — one REST request being served on the worker pool, and the
 * helpers every resource file uses. Private to src/http. */
#ifndef SS_HTTP_API_CALL_H
#define SS_HTTP_API_CALL_H

#include <jansson.h>
#include <stdint.h>

#include "aaa/access.h"
#include "aaa/audit_detail.h"
#include "aaa/service.h"
#include "core/buf.h"
#include "http/api.h"
#include "http/api_gate.h"
#include "store/store.h"

#define API_PARAMS_MAX 2
#define API_EXTRA_HEADERS_MAX 512

/* How a route shares the worker pool (api_gate.h). */
typedef enum {
    API_LIGHT = 0,   /* a few indexed reads or writes */
    API_HEAVY,       /* scans readings, usage, audit: gated per credential and org */
    API_SIGN_IN,     /* Argon2: gated per client address, and all together
                      * as one org (API_GATE_SIGN_IN) */
} api_weight;

typedef struct api_call {
    uv_work_t work;
    api_ctx *app;
    api_weight weight;
    int gated_principal;   /* holds a credential share (loop thread) */
    uint8_t gate_key[API_GATE_KEY_BYTES];
    char gated_org[SS_ID_LEN + 1];  /* holds this org's share ("" none) */
    int freed_share;       /* gave an org's share back (worker to loop) */
    int waiting;           /* found no share free: to wait on the loop */
    char wait_org[SS_ID_LEN + 1];   /* the org whose share it waits for */
    uint64_t waiting_since;         /* loop time (ms) it began to wait */
    struct api_call *next_waiting;
    http_request *req;
    char params[API_PARAMS_MAX][SS_ID_LEN + 1];  /* path parameters, in order */
    store_conn *db;
    int64_t now_ms;
    /* Who is asking (after api_authenticate or api_require_user): a
     * person with their session, or an app with its API key. */
    aaa_principal who;
    int via_cookie;
    /* The registry's revocations before `who` was read from the store
     * (conn_registry_mark): a stream registered later asks whether one of
     * its keys was revoked since. */
    uint64_t reg_mark;
    aaa_ctx aaa;            /* what aaa/ services are given (api_aaa) */
    /* The answer, sent by the loop once the worker is done. */
    int status;
    const char *content_type;
    ss_buf body;
    char extra_headers[API_EXTRA_HEADERS_MAX];
    char acct_org[SS_ID_LEN + 1];  /* the org the request acted in (accounting) */
    int signed_out;         /* the person's login session ended here */
    char ended_login[SS_ID_LEN + 1];  /* another login session ended here */
    char ended_user[SS_ID_LEN + 1];   /* every login of this user ended here ... */
    int ended_user_keeps_own;         /* ... but the caller's own */
    /* Set by a handler that streams its answer (api_hand_over). */
    const struct api_handoff *handoff;
    void *handoff_arg;
} api_call;

typedef void (*api_worker_fn)(api_call *call);

/* ---- answers streamed from the loop (an export, the live stream) -------
 *
 * Such a route is an ordinary heavy route whose worker function checks the
 * caller and the request like any other (answering an error the usual
 * way), then, instead of answering, hands the request over: once the
 * worker is done the router runs `run` on the loop in place of sending an
 * answer, and the request is run's from then on (http_stream_*, or
 * http_respond for an error found later). Accounting has been told who
 * the request is from already. */

/* The credential's share of heavy requests (api_gate.h) that the call
 * held, handed over with the request: an answer streamed for minutes
 * stays in flight for its credential, so one credential streams only so
 * many at once. */
typedef struct api_share {
    int held;
    uint8_t key[API_GATE_KEY_BYTES];
} api_share;

typedef struct api_handoff {
    /* On the loop, in place of the answer. The share is run's to give
     * back (api_share_release) when the answer ends. */
    void (*run)(api_ctx *app, http_request *req, void *arg, const api_share *share);
    /* When the request cannot be handed over after all (the worker's job
     * was cancelled; the router then answers 500): frees arg. */
    void (*drop)(void *arg);
} api_handoff;

/* From the worker function, as its last act and in place of an answer:
 * h (static) and arg are taken over; nothing else may be answered. */
void api_hand_over(api_call *call, const api_handoff *h, void *arg);
/* Gives back a handed-over share (once; held 0: nothing). Loop thread. */
void api_share_release(api_ctx *app, const api_share *share);
/* After api_gate_leave_org outside a call (a streamed answer's work on
 * the pool): runs a heavy call that waited for that share. Loop thread. */
void api_org_share_freed(api_ctx *app);

/* The services' context for this call (aaa/service.h): the caller as
 * actor, the store handle, caches, registry, quotas. */
aaa_ctx *api_aaa(api_call *call);

/* Answers with a JSON value (reference stolen). */
void api_reply_json(api_call *call, int status, json_t *value);
/* Answers with the JSON error of SPEC §2. */
void api_reply_error(api_call *call, int status, const char *code, const char *message);
/* Answers 204 with no body. */
void api_reply_empty(api_call *call);
/* Maps a store error to its answer (404, 409, 503 …). */
void api_reply_store_error(api_call *call, int err);
/* Maps an aaa/ answer (an SS code) to HTTP in one place: SS_AUTH 401,
 * SS_FORBIDDEN 403 (forbidden: `why`, or the caller's kind of refusal when
 * NULL), SS_QUOTA 429, SS_INVAL 400 (bad_request: `why`), else as
 * api_reply_store_error. */
void api_reply_err(api_call *call, int err, const char *why);
/* The end of every list handler: 200 with value (reference stolen) when
 * the store answered rc == 0, else the store error (value freed). */
void api_reply_list(api_call *call, int rc, json_t *value);

/* The request body as a JSON object; answers 400 and returns NULL when it
 * is not one. */
json_t *api_body_object(api_call *call);
/* Answers 400 bad_request with `message` for a body that does not
 * validate, and frees the body. */
void api_reply_bad_body(api_call *call, json_t *body, const char *message);
/* The end of a handler that made or changed something: `status` with
 * value (reference stolen; built only when rc == 0, NULL otherwise) when
 * rc == 0, else the store error of rc. */
void api_reply_result(api_call *call, int rc, int status, json_t *value);
/* The one answer that shows a new secret (a device token, an API key):
 * obj (reference stolen) with the secret as `field`, never cached. The
 * secret (SECRET_TEXT_MAX bytes) is wiped once copied into the answer. */
void api_reply_secret(api_call *call, int status, json_t *obj, const char *field, char *secret);

/* Authenticates a person or an app: "Authorization: Bearer" with a session
 * token or an API key ("ssk_…"), or the ss_session cookie (a mutating
 * request by cookie must carry a matching X-CSRF-Token). Sessions past
 * their idle or absolute expiry end here. Answers 401/403 and returns
 * nonzero when that fails. */
int api_authenticate(api_call *call);

/* The same, for endpoints that only a person may use (an API key gets 403). */
int api_require_user(api_call *call);

/* Checks the caller holds at least `min` in the org. A user: the superadmin,
 * or a role in the org or an ancestor. An API key: its org is the org or an
 * ancestor, and its scopes cover `min` (viewer: data:read or manage;
 * editor, admin: manage; owner: never). Answers 404 when the org does not
 * exist or the caller has no role in it (never revealing that it exists),
 * 403 when the role or scope is too low, and returns nonzero then.
 * OUT role (may be NULL): the effective role (STORE_ROLE_OWNER for the
 * superadmin, STORE_ROLE_ADMIN for a manage key). */
int api_require_role(api_call *call, const char *org_id, store_role min, store_role *role);
/* api_authenticate, then api_require_role in the org the path names first
 * (params[0]): the start of every handler of an org's resources. */
int api_require_org_role(api_call *call, store_role min, store_role *role);
/* api_require_org_role, then api_body_object: the start of a handler
 * that changes something in the org of the path. NULL when either
 * answered. */
json_t *api_org_body(api_call *call, store_role min, store_role *role);

/* Appends to the audit log with the caller as actor (aaa_audit). */
void api_audit(api_call *call, const char *org_id, const char *action, const char *target,
               json_t *detail);

/* 1 when name is a usable name: present and not only white space (the
 * length was checked by api_json_string). */
int api_name_valid(const char *name);

/* Lowercases ASCII in place (emails are kept lowercase). */
void api_lowercase(char *s);

/* The credential a request carries: the token of "Authorization: Bearer"
 * or of the ss_session cookie (*via_cookie tells which); NULL when none. */
const char *api_find_credential(const http_request *req, size_t *len, int *via_cookie);

/* Answers 429 too_many_requests with Retry-After: a call, or (on the loop)
 * a request no call was made for. */
void api_reply_busy(api_call *call, const char *message);
void api_respond_busy(http_request *req, const char *message);

/* For a heavy call: takes the org's share of the worker pool (once per
 * call; the router gives it back when the handler returns). When the org
 * or the pool is at its limit it marks the call to wait (the router runs
 * it again once a share frees) and returns nonzero: the handler returns
 * at once, answering nothing.
 * api_require_role calls it; a heavy handler that acts in an org without
 * api_require_role calls it itself; the router calls it for sign-in, with
 * API_GATE_SIGN_IN, before api_login runs. */
int api_gate_org(api_call *call, const char *org_id);

/* The request acts in the org, whose access the caller checked: it is
 * accounted there, and a heavy call takes the org's share (api_gate_org;
 * nonzero: it waits, answering nothing). */
int api_enter_org(api_call *call, const char *org_id);

/* Signs the user in, loads the device named by the first path parameter and
 * checks the user holds at least `min` in its org. Answers (401, 404 for
 * another org's device, 403) and returns nonzero on failure. */
int api_load_device(api_call *call, store_role min, store_device *d);

/* JSON of records. */
json_t *api_user_json(const store_user *u);
json_t *api_org_json(const store_org *o);
json_t *api_device_json(const store_device *d);

/* A string member of an object: NULL when absent; *bad set when present but
 * not a string or longer than max (the caller answers 400). */
const char *api_json_string(json_t *obj, const char *key, size_t max, int *bad);

/* Resource handlers, one file per resource. */
void api_login(api_call *call);
void api_logout(api_call *call);
void api_me(api_call *call);
void api_orgs_list(api_call *call);
void api_orgs_create(api_call *call);
void api_org_get(api_call *call);
void api_org_patch(api_call *call);
void api_members_list(api_call *call);
void api_members_add(api_call *call);
void api_org_invitations_list(api_call *call);
void api_org_invitation_delete(api_call *call);
void api_me_invitations(api_call *call);
void api_invitation_accept(api_call *call);
void api_invitation_decline(api_call *call);
void api_devices_list(api_call *call);
void api_devices_create(api_call *call);
void api_device_get(api_call *call);
void api_device_patch(api_call *call);
void api_device_delete(api_call *call);
void api_device_rotate(api_call *call);
void api_device_channels(api_call *call);
void api_device_latest(api_call *call);
void api_device_data(api_call *call);
void api_device_data_delete(api_call *call);
void api_dashboards_list(api_call *call);
void api_dashboards_create(api_call *call);
void api_dashboard_get(api_call *call);
void api_dashboard_put(api_call *call);
void api_dashboard_delete(api_call *call);
void api_dashboard_devices(api_call *call);
void api_healthz(api_call *call);
void api_me_password(api_call *call);
void api_me_sessions(api_call *call);
void api_me_session_delete(api_call *call);
void api_user_patch(api_call *call);
void api_user_password(api_call *call);
void api_user_unlock(api_call *call);
void api_org_delete(api_call *call);
void api_member_patch(api_call *call);
void api_member_delete(api_call *call);
void api_apikeys_list(api_call *call);
void api_apikeys_create(api_call *call);
void api_apikey_delete(api_call *call);
void api_audit_list(api_call *call);
void api_audit_list_all(api_call *call);
/* GET /metrics from a non-loopback peer: the superadmin only. */
void api_metrics(api_call *call);
void api_usage(api_call *call);
void api_sessions(api_call *call);
void api_quota_get(api_call *call);
void api_quota_put(api_call *call);
/* GET /api/v1/orgs/{org}/export: checks, then streams (api_export.c). */
void api_export(api_call *call);

/* GET /api/v1/orgs/{org}/live: access and the device on the worker, then
 * handed over to stream on the loop (api_live.h). */
void api_live_get(api_call *call);

/* GET /healthz, on the loop thread: from the store's health state. */
void api_healthz_local(api_ctx *app, http_request *req);

/* Bulk import (POST /api/v1/orgs/{org}/import), on the loop thread: the
 * head takes the body as a stream (0), or answers (1), or is no import's
 * (0: path not an import path, api_import_path says which). */
int api_import_head(api_ctx *app, http_request *req);
void api_import_request(api_ctx *app, http_request *req);
int api_import_path(const char *path);

/* Device ingest, on the loop thread. */
void api_data_post(api_ctx *app, http_request *req);
/* POST /api/v1/data, its head only: 0 when the X-Auth-Token is a valid
 * device's; else (a bad, missing or other credential) answers 401
 * invalid_token and returns 1, so a body is never read for it. */
int api_data_head(api_ctx *app, http_request *req);
/* GET /metrics from a loopback peer, on the loop thread: no credential. */
void api_metrics_local(api_ctx *app, http_request *req);

#endif
