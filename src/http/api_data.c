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

static void on_committed(ingest_item *item, int status)
{
    http_request *req = item->data;
    if (status == 0) {
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
    free(item);
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
    if (authenticate_device(req, app, &dev))
        return;
    ingest_item *item = calloc(1, sizeof *item);
    if (!item) {
        http_respond_error(req, 503, "overloaded", "the server is out of memory", NULL);
        return;
    }
    body_format fmt = detect_format(req);
    ss_parse_error err = {0};
    const char *body = req->body.data ? req->body.data : "";
    int64_t now = clock_now_ms();
    int rc = fmt == BODY_JSON ? parse_json_readings(body, req->body.len, now,
                                                    SS_INGEST_READINGS_MAX, &item->readings, &err)
                              : parse_line_readings(body, req->body.len, now,
                                                    SS_INGEST_READINGS_MAX, &item->readings, &err);
    if (rc) {
        readings_free(&item->readings);
        free(item);
        refuse_parse(req, rc, &err, fmt);
        return;
    }
    memcpy(item->device_id, dev.device_id, sizeof item->device_id);
    memcpy(item->org_id, dev.org_id, sizeof item->org_id);
    item->done = on_committed;
    item->data = req;
    ingest_queue_submit(app->queue, item);
}
