/* api_data.c — device ingest over HTTP(S): POST /api/v1/data.
 *
 * Runs on the loop thread: the token is looked up in the in-memory cache,
 * the body parsed and validated whole, then handed to the ingest queue. The
 * answer goes out only from the queue's completion, after the commit. */
#include "aaa/device_cache.h"
#include "aaa/secret.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "http/api_call.h"
#include "ingest/parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { BODY_JSON, BODY_LINES } body_format;

/* application/json and text/plain decide; with any other type or none, a
 * body whose first non-blank byte is '{' or '[' is JSON, else line format,
 * so `curl -d` works without a header. */
static body_format detect_format(const http_request *req)
{
    const char *ct = http_request_header(req, "content-type");
    if (ct && strncasecmp(ct, "application/json", 16) == 0)
        return BODY_JSON;
    if (ct && strncasecmp(ct, "text/plain", 10) == 0)
        return BODY_LINES;
    for (size_t i = 0; i < req->body.len; i++) {
        char c = req->body.data[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        return c == '{' || c == '[' ? BODY_JSON : BODY_LINES;
    }
    return BODY_LINES;
}

/* An HTTP ingest in flight: the queue item, and where to report. */
typedef struct http_ingest {
    ingest_item item;   /* first: the queue hands this pointer back */
    api_ctx *app;
    http_request *req;
    quota_ref quota;    /* found at the reservation, used again at its end */
    store_acct_session session;  /* the connection's record as this request leaves it */
} http_ingest;

/* Reserves the message's readings. The connection's ref spares the lookup
 * by org id on a keep-alive connection; the message keeps its own copy for
 * the end of the reservation. */
static int reserve_quota(api_ctx *app, http_request *req, http_ingest *hi, const char *org_id,
                         int64_t now)
{
    quota_ref *conn = api_conn_quota_ref(req);
    if (conn)
        hi->quota = *conn;
    int rc = quota_reserve_readings(app->quotas, org_id, (int64_t)hi->item.readings.len, now,
                                    &hi->quota);
    if (conn)
        *conn = hi->quota;
    return rc;
}

/* 503 ingest_busy (SPEC §4): the device's or its organisation's share of
 * the ingest queue is full; nothing was stored. Retry-After tells the
 * device when to come back. */
static void refuse_ingest_busy(http_request *req, api_ctx *app, size_t readings)
{
    static const char body[] =
        "{\"error\":{\"code\":\"ingest_busy\",\"message\":\"the ingest queue holds as much "
        "of this device's or organisation's data as it may; nothing was stored, retry later\"}}";
    char retry[48];
    snprintf(retry, sizeof retry, "Retry-After: %u\r\n", SS_INGEST_RETRY_AFTER_S);
    metrics_readings_refused(app->metrics, METRICS_REFUSED_INGEST_BUSY, readings ? readings : 1);
    req->principal.refused = 1;
    req->principal.readings_refused = readings;
    http_respond(req, 503, "application/json", body, sizeof body - 1, retry);
}

static void on_committed(ingest_item *item, int status)
{
    http_ingest *hi = (http_ingest *)item;
    http_request *req = hi->req;
    /* The store refuses a request whole when it would create a channel past
     * the device's limit (one group: all or nothing). */
    int too_many_channels = status == SS_OK && item->readings_refused > 0;
    int stored = status == SS_OK && !too_many_channels;
    req->principal.refused = !stored;
    if (stored)
        req->principal.readings_stored = item->readings.len;
    else
        req->principal.readings_refused = item->readings.len;
    if (hi->app->quotas)
        quota_finish_readings(hi->app->quotas, item->org_id, (int64_t)item->readings.len,
                              stored, clock_now_ms(), &hi->quota);
    if (status != SS_OK)
        metrics_readings_refused(hi->app->metrics,
                                 status == SS_NOT_FOUND ? METRICS_REFUSED_INVALID_TOKEN
                                                        : METRICS_REFUSED_STORE_UNAVAILABLE,
                                 item->readings.len);
    if (too_many_channels) {
        char msg[160];
        metrics_readings_refused(hi->app->metrics, METRICS_REFUSED_BAD_READING, 1);
        snprintf(msg, sizeof msg,
                 "a reading would give the device more than %u channels; nothing was stored",
                 SS_DEVICE_CHANNELS_MAX);
        http_respond_error(req, 400, "too_many_channels", msg, NULL);
    } else if (status == 0) {
        char body[64];
        int n = snprintf(body, sizeof body, "{\"stored\":%zu}", item->readings.len);
        http_respond(req, 200, "application/json", body, (size_t)n, NULL);
    } else if (status == SS_NOT_FOUND) {
        http_respond_error(req, 401, "invalid_token", "the device no longer exists", NULL);
    } else if (status == SS_FULL) {
        http_respond_error(req, 503, "store_unavailable", "the store is full; nothing was stored",
                           NULL);
    } else {
        http_respond_error(req, 503, "store_unavailable", "the store failed; nothing was stored",
                           NULL);
    }
    readings_free(&item->readings);
    free(hi);
}

/* An HTTP device record is written with the readings it brings, as a TCP
 * connection's is at its first flush: a kill -9 a moment after the answer
 * leaves it in the store, ended "crash" at the next start. The snapshot is
 * the record before this request; the store adds what it stored. */
static void note_session(api_ctx *app, http_request *req, http_ingest *hi)
{
    meter_session *rec = api_conn_device_record(app, req);
    if (!rec)
        return;
    hi->session = rec->rec;
    hi->item.session = &hi->session;
}

/* Finds the device by token. Answers 401 and returns nonzero when unknown. */
static int authenticate_device(http_request *req, api_ctx *app, device_cache_entry *dev)
{
    const char *token = http_request_header(req, "x-auth-token");
    size_t len = token ? strlen(token) : 0;
    if (len == 0 || len >= SECRET_TEXT_MAX) {
        http_respond_error(req, 401, "invalid_token", "a valid X-Auth-Token header is required",
                           NULL);
        return 1;
    }
    uint8_t hash[SS_SECRET_HASH_BYTES];
    secret_hash(token, len, hash);
    if (device_cache_lookup(app->devices, hash, dev) || dev->disabled) {
        http_respond_error(req, 401, "invalid_token", "the device token is not valid", NULL);
        return 1;
    }
    return 0;
}

int api_data_head(api_ctx *app, http_request *req)
{
    device_cache_entry dev;
    /* Only a device token is taken here (api_data_post judges nothing
     * else): without a valid one the body is never worth reading. */
    if (authenticate_device(req, app, &dev) == 0)
        return 0;
    metrics_readings_refused(app->metrics, METRICS_REFUSED_INVALID_TOKEN, 1);
    return 1;
}

/* The metrics reason of a body refused before the queue. */
static metrics_reason refusal_reason(int rc)
{
    switch (rc) {
    case SS_QUOTA: return METRICS_REFUSED_QUOTA_EXCEEDED;
    case SS_TOO_LARGE: return METRICS_REFUSED_TOO_LARGE;
    case SS_NOMEM: return METRICS_REFUSED_STORE_UNAVAILABLE;
    default: return METRICS_REFUSED_BAD_READING;
    }
}

static void refuse_parse(http_request *req, int rc, const ss_parse_error *err, body_format fmt)
{
    if (rc == SS_NOMEM) {
        http_respond_error(req, 503, "overloaded", "the server is out of memory", NULL);
        return;
    }
    char extra[64];
    snprintf(extra, sizeof extra, "\"%s\":%zu", fmt == BODY_JSON ? "index" : "line",
             err->position);
    if (rc == SS_TOO_LARGE)
        http_respond_error(req, 413, "too_large", err->message, extra);
    else
        http_respond_error(req, 400, "bad_reading", err->message, extra);
}

void api_data_post(api_ctx *app, http_request *req)
{
    device_cache_entry dev;
    if (authenticate_device(req, app, &dev)) {
        metrics_readings_refused(app->metrics, METRICS_REFUSED_INVALID_TOKEN, 1);
        return;
    }
    req->principal.kind = HTTP_PRINCIPAL_DEVICE;
    memcpy(req->principal.id, dev.device_id, sizeof req->principal.id);
    memcpy(req->principal.org_id, dev.org_id, sizeof req->principal.org_id);
    /* A flooding device is refused before its body costs a parse. */
    if (!ingest_queue_has_room(app->queue, dev.org_id, dev.device_id)) {
        refuse_ingest_busy(req, app, 0);
        return;
    }
    http_ingest *hi = calloc(1, sizeof *hi);
    if (!hi) {
        http_respond_error(req, 503, "overloaded", "the server is out of memory", NULL);
        return;
    }
    body_format fmt = detect_format(req);
    ss_parse_error err = {0};
    const char *body = req->body.data ? req->body.data : "";
    int64_t now = clock_now_ms();
    ingest_item *item = &hi->item;
    int rc = fmt == BODY_JSON ? parse_json_readings(body, req->body.len, now,
                                                    SS_INGEST_READINGS_MAX, &item->readings, &err)
                              : parse_line_readings(body, req->body.len, now,
                                                    SS_INGEST_READINGS_MAX, &item->readings, &err);
    if (rc == 0 && app->quotas &&
        reserve_quota(app, req, hi, dev.org_id, now))
        rc = SS_QUOTA;
    if (rc) {
        /* Over quota the readings are parsed and counted; otherwise the
         * request counts as one. */
        metrics_readings_refused(app->metrics, refusal_reason(rc),
                                 rc == SS_QUOTA ? item->readings.len : 1);
        req->principal.refused = 1;
        req->principal.readings_refused = rc == SS_QUOTA ? item->readings.len : 0;
        readings_free(&item->readings);
        free(hi);
        if (rc == SS_QUOTA)
            http_respond_error(req, 429, "quota_exceeded",
                               "the organisation is over its quota for today", NULL);
        else
            refuse_parse(req, rc, &err, fmt);
        return;
    }
    hi->app = app;
    hi->req = req;
    memcpy(item->device_id, dev.device_id, sizeof item->device_id);
    memcpy(item->org_id, dev.org_id, sizeof item->org_id);
    item->protocol = req->tls ? "https" : "http";
    item->received_at = now;
    note_session(app, req, hi);
    item->done = on_committed;
    /* The body stays in memory until the answer. */
    item->held_bytes = sizeof *hi - sizeof *item + req->body.len;
    if (ingest_queue_submit(app->queue, item) != SS_OK) {
        if (app->quotas)
            quota_finish_readings(app->quotas, item->org_id, (int64_t)item->readings.len, 0, now,
                                  &hi->quota);
        refuse_ingest_busy(req, app, item->readings.len);
        readings_free(&item->readings);
        free(hi);
    }
}
