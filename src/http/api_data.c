/* api_data.c — device ingest over HTTP(S): POST /api/v1/data.
 *
 * Runs on the loop thread: framing and answers only. The ingest gateway
 * authenticates the token, parses the body whole, checks room and quota,
 * submits, and settles the commit; the answer goes out only from its
 * acknowledgement, after the commit. */
#include "aaa/secret.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "http/api_call.h"
#include "ingest/gateway.h"

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
static void on_committed(gateway_msg *msg, const gateway_result *r)
{
    http_request *req = msg->data;
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

int api_data_head(api_ctx *app, http_request *req)
{
    gateway_sender from;
    /* Only a device token is taken here (api_data_post judges nothing
     * else): without a valid one the body is never worth reading. */
    return authenticate_device(req, app, &from);
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

void api_data_post(api_ctx *app, http_request *req)
{
    gateway_sender from;
    if (identify_sender(req, app, &from))
        return;
    /* The body stays in memory until the answer. */
    gateway_request rq = {.body = {.format = detect_format(req), .data = req->body.data,
                                   .len = req->body.len},
                          .ack = on_committed, .data = req, .held_bytes = req->body.len};
    gateway_msg *msg;
    gateway_refusal why;
    int rc = gateway_ingest(app->gateway, &from, &rq, clock_now_ms(), &msg, &why);
    if (rc == SS_OK)
        api_conn_hold_record(req, &msg->session);
    else
        refuse(req, rc, &why, rq.body.format);
}
