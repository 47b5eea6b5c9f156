/* api_data.c — device ingest over HTTP(S): POST /api/v1/data.
 *
 * Runs on the loop thread: framing and answers only. The ingest gateway
 * authenticates the token, parses the body whole, checks room and quota,
 * submits, and settles the commit; the answer goes out only from its
 * acknowledgement, after the commit.
 *
 * An API key with data:write posts as any device of its org (SPEC §2),
 * naming it with ?device_id=: the key is looked up in the store on the
 * worker pool, as every REST credential is, and the rest is the device's
 * own path (gateway_auth_key, then the same ingest), counted under the
 * device; the connection is watched under the key, so revoking the key
 * closes it. */
#include "aaa/principal.h"
#include "aaa/secret.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "http/api_call.h"
#include "ingest/gateway.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* application/json and text/plain decide; with any other type or none, a
 * body whose first non-blank byte is '{' or '[' is JSON, else line format,
 * so `curl -d` works without a header. */
static gateway_format detect_format(const http_request *req)
{
    const char *ct = http_request_header(req, "content-type");
    if (ct && strncasecmp(ct, "application/json", 16) == 0)
        return GATEWAY_JSON;
    if (ct && strncasecmp(ct, "text/plain", 10) == 0)
        return GATEWAY_LINES;
    for (size_t i = 0; i < req->body.len; i++) {
        char c = req->body.data[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        return c == '{' || c == '[' ? GATEWAY_JSON : GATEWAY_LINES;
    }
    return GATEWAY_LINES;
}

/* 503 ingest_busy (SPEC §4): the device's or its organisation's share of
 * the ingest queue is full; nothing was stored. Retry-After tells the
 * device when to come back. */
static void refuse_ingest_busy(http_request *req)
{
    static const char body[] =
        "{\"error\":{\"code\":\"ingest_busy\",\"message\":\"the ingest queue holds as much "
        "of this device's or organisation's data as it may; nothing was stored, retry later\"}}";
    char retry[48];
    snprintf(retry, sizeof retry, "Retry-After: %u\r\n", SS_INGEST_RETRY_AFTER_S);
    http_respond(req, 503, "application/json", body, sizeof body - 1, retry);
}

/* The gateway has settled the commit: the answer in HTTP's terms. */
static void answer_committed(http_request *req, const gateway_result *r)
{
    /* The store refuses a request whole when it would create a channel past
     * the device's limit (one group: all or nothing). */
    int too_many_channels = r->status == SS_OK && r->refused > 0;
    api_conn_hold_record(req, NULL);
    if (too_many_channels) {
        char text[160];
        snprintf(text, sizeof text,
                 "a reading would give the device more than %u channels; nothing was stored",
                 SS_DEVICE_CHANNELS_MAX);
        http_respond_error(req, 400, "too_many_channels", text, NULL);
    } else if (r->status == SS_OK) {
        char body[64];
        int n = snprintf(body, sizeof body, "{\"stored\":%zu}", r->stored);
        http_respond(req, 200, "application/json", body, (size_t)n, NULL);
    } else if (r->status == SS_NOT_FOUND) {
        http_respond_error(req, 401, "invalid_token", "the device no longer exists", NULL);
    } else if (r->status == SS_FULL) {
        http_respond_error(req, 503, "store_unavailable", "the store is full; nothing was stored",
                           NULL);
    } else {
        http_respond_error(req, 503, "store_unavailable", "the store failed; nothing was stored",
                           NULL);
    }
}

static void on_committed(gateway_msg *msg, const gateway_result *r)
{
    answer_committed(msg->data, r);
}

/* For a key, a device deleted while its readings waited is a device that
 * no longer exists, not a bad credential. */
static void on_key_committed(gateway_msg *msg, const gateway_result *r)
{
    http_request *req = msg->data;
    if (r->status != SS_NOT_FOUND) {
        answer_committed(req, r);
        return;
    }
    api_conn_hold_record(req, NULL);
    http_respond_error(req, 404, "not_found", "the device no longer exists; nothing was stored",
                       NULL);
}

/* Finds the device by token. Answers 401 and returns nonzero when unknown. */
static int authenticate_device(http_request *req, api_ctx *app, gateway_sender *from)
{
    const char *token = http_request_header(req, "x-auth-token");
    if (gateway_auth_token(app->gateway, token, token ? strlen(token) : 0, from) == SS_OK)
        return 0;
    if (!token || !token[0] || strlen(token) >= SECRET_TEXT_MAX)
        http_respond_error(req, 401, "invalid_token", "a valid X-Auth-Token header is required",
                           NULL);
    else
        http_respond_error(req, 401, "invalid_token", "the device token is not valid", NULL);
    return 1;
}

/* The API key of "Authorization: Bearer", when the request carries no
 * device token and the bearer has a key's shape; NULL else. */
static const char *bearer_key(const http_request *req, size_t *len)
{
    int via_cookie = 0;
    if (http_request_header(req, "x-auth-token"))
        return NULL;
    const char *key = api_find_credential(req, len, &via_cookie);
    if (!key || via_cookie || *len == 0 || *len >= SECRET_TEXT_MAX ||
        !aaa_credential_is_key(key, *len, 0))
        return NULL;
    return key;
}

/* The device a key posts as: ?device_id=, the one parameter this endpoint
 * takes. Answers 400 naming it and returns nonzero when it is missing,
 * empty or not alone. An id too long to be any device's is left empty:
 * once the key is known, it is a device not found, as any unknown id. */
static int key_device_param(http_request *req, char id[SS_ID_LEN + 1])
{
    static const char *const name = "device_id=";
    int rc = http_query_get(req, "device_id", id, SS_ID_LEN + 1);
    if (rc == SS_TOO_LARGE)
        id[0] = '\0';
    int alone = strncmp(req->query, name, strlen(name)) == 0 && !strchr(req->query, '&');
    if (!alone || (rc != SS_TOO_LARGE && (rc <= 0 || !id[0]))) {
        http_respond_error(req, 400, "bad_parameter",
                           "device_id is required: an API key posts as the device of its "
                           "organisation that ?device_id= names, and no other parameter is "
                           "taken", NULL);
        return 1;
    }
    return 0;
}

int api_data_head(api_ctx *app, http_request *req)
{
    size_t len = 0;
    char id[SS_ID_LEN + 1];
    /* A key is judged on the worker pool (api_data_post); its request is
     * refused here only when it names no device. */
    if (bearer_key(req, &len))
        return key_device_param(req, id);
    gateway_sender from;
    /* Else only a device token is taken here: without a valid one the body
     * is never worth reading. */
    if (authenticate_device(req, app, &from))
        return 1;
    /* A device posts as itself: ?device_id= naming another is refused, not
     * silently ignored. */
    int rc = http_query_get(req, "device_id", id, sizeof id);
    if (rc == 0 || (rc > 0 && strcmp(id, from.dev.device_id) == 0))
        return 0;
    http_respond_error(req, 400, "bad_parameter",
                       "device_id names another device: a device token posts as its own "
                       "device", NULL);
    return 1;
}

/* The device this request comes from, with the connection's record and
 * quota ref, so that the gateway counts into them. */
static int identify_sender(http_request *req, api_ctx *app, gateway_sender *from)
{
    if (authenticate_device(req, app, from))
        return 1;
    api_note_who(req, API_WHO_DEVICE, from->dev.device_id, from->dev.org_id);
    from->protocol = req->tls ? "https" : "http";
    from->gone = METRICS_REFUSED_INVALID_TOKEN;  /* 401 invalid_token */
    from->session = api_conn_device_record(app, req);
    from->quota = api_conn_quota_ref(req);
    return 0;
}

/* A message the gateway refused (and counted), in HTTP's terms. */
static void refuse(http_request *req, int rc, const gateway_refusal *why, gateway_format fmt)
{
    if (rc == SS_BUSY) {
        refuse_ingest_busy(req);
        return;
    }
    if (rc == SS_QUOTA) {
        http_respond_error(req, 429, "quota_exceeded",
                           "the organisation is over its quota for today", NULL);
        return;
    }
    if (rc == SS_NOMEM) {
        http_respond_error(req, 503, "overloaded", "the server is out of memory", NULL);
        return;
    }
    char extra[64];
    snprintf(extra, sizeof extra, "\"%s\":%zu", fmt == GATEWAY_JSON ? "index" : "line",
             why->err.position);
    if (rc == SS_TOO_LARGE)
        http_respond_error(req, 413, "too_large", why->err.message, extra);
    else
        http_respond_error(req, 400, "bad_reading", why->err.message, extra);
}

/* Parses and submits the body as `from`; the answer goes from `ack`. */
static void ingest(api_ctx *app, http_request *req, const gateway_sender *from,
                   gateway_ack_cb ack)
{
    /* The body stays in memory until the answer. */
    gateway_request rq = {.body = {.format = detect_format(req), .data = req->body.data,
                                   .len = req->body.len},
                          .ack = ack, .data = req, .held_bytes = req->body.len};
    gateway_msg *msg;
    gateway_refusal why;
    int rc = gateway_ingest(app->gateway, from, &rq, clock_now_ms(), &msg, &why);
    if (rc == SS_OK)
        api_conn_hold_record(req, &msg->session);
    else
        refuse(req, rc, &why, rq.body.format);
}

/* ---- an API key posting as a device ------------------------------------------- */

typedef struct key_post {
    uv_work_t work;
    api_ctx *app;
    http_request *req;
    char key[SECRET_TEXT_MAX];
    size_t len;
    char device_id[SS_ID_LEN + 1];
    aaa_principal who;
    int status;
} key_post;

static void on_key_work(uv_work_t *w)
{
    key_post *kp = w->data;
    store_conn *db;
    kp->status = store_conn_acquire(kp->app->store, &db);
    if (kp->status != SS_OK)
        return;
    aaa_session_policy policy = {kp->app->session_idle_ms};
    kp->status = aaa_authenticate(db, &policy, kp->key, kp->len, 0, clock_now_ms(), &kp->who);
    store_conn_release(kp->app->store, db);
    if (kp->status == SS_OK && kp->who.kind != AAA_PRINCIPAL_KEY)
        kp->status = SS_AUTH;
}

/* The key acting as the device it names: SS_OK with `from` filled, or
 * answered. */
static int key_sender(key_post *kp, gateway_sender *from)
{
    http_request *req = kp->req;
    const store_apikey *k = &kp->who.key;
    gateway_key key = {.scopes = k->scopes};
    snprintf(key.org_id, sizeof key.org_id, "%s", k->org_id);
    int rc = gateway_auth_key(kp->app->gateway, &key, kp->device_id, from);
    if (rc == SS_NOT_FOUND) {
        api_note_who(req, API_WHO_APIKEY, k->id, k->org_id);
        http_respond_error(req, 404, "not_found", "no such device", NULL);
    } else if (rc == SS_FORBIDDEN) {
        api_note_who(req, API_WHO_APIKEY, k->id, k->org_id);
        http_respond_error(req, 403, "forbidden",
                           "the API key's scopes do not allow posting data (data:write)", NULL);
    } else if (rc == SS_CONFLICT) {
        api_note_who(req, API_WHO_APIKEY, k->id, k->org_id);
        http_respond_error(req, 403, "device_disabled",
                           "the device is disabled; nothing was stored", NULL);
    }
    return rc;
}

static void on_key_done(uv_work_t *w, int status)
{
    key_post *kp = w->data;
    http_request *req = kp->req;
    api_ctx *app = kp->app;
    int rc = status == 0 ? kp->status : SS_STORE;
    sodium_memzero(kp->key, sizeof kp->key);
    gateway_sender from;
    if (rc == SS_AUTH)
        http_respond_error(req, 401, "invalid_token", "the API key is not valid", NULL);
    else if (rc != SS_OK)
        http_respond_error(req, 503, "store_unavailable", "the store cannot be reached", NULL);
    else if (key_sender(kp, &from) == SS_OK) {
        api_req_acct *p = api_note_who(req, API_WHO_DEVICE, from.dev.device_id, from.dev.org_id);
        if (p)
            snprintf(p->via_key, sizeof p->via_key, "%s", kp->who.key.id);
        from.protocol = req->tls ? "https" : "http";
        from.gone = METRICS_REFUSED_STORE_UNAVAILABLE;  /* 404: the device went */
        from.session = api_conn_device_record(app, req);
        from.quota = api_conn_quota_ref(req);
        ingest(app, req, &from, on_key_committed);
    }
    sodium_memzero(&kp->who, sizeof kp->who);
    free(kp);
}

static void post_as_key(api_ctx *app, http_request *req, const char *key, size_t len)
{
    key_post *kp = calloc(1, sizeof *kp);
    if (!kp) {
        http_respond_error(req, 503, "overloaded", "the server is out of memory", NULL);
        return;
    }
    kp->app = app;
    kp->req = req;
    memcpy(kp->key, key, len);
    kp->len = len;
    kp->work.data = kp;
    int answered = key_device_param(req, kp->device_id);
    if (!answered && uv_queue_work(app->loop, &kp->work, on_key_work, on_key_done) == 0)
        return;
    if (!answered)
        http_respond_error(req, 503, "overloaded", "the server cannot take the request now",
                           NULL);
    sodium_memzero(kp->key, sizeof kp->key);
    free(kp);
}

void api_data_post(api_ctx *app, http_request *req)
{
    size_t len = 0;
    const char *key = bearer_key(req, &len);
    if (key) {
        post_as_key(app, req, key, len);
        return;
    }
    gateway_sender from;
    if (identify_sender(req, app, &from))
        return;
    ingest(app, req, &from, on_committed);
}
