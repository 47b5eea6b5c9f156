/* api_metrics.c — GET /metrics (SPEC §2: superadmin, or anyone on
 * loopback), the Prometheus text format of core/metrics.
 *
 * From loopback the router calls api_metrics_local on the loop thread: no
 * credential, no store, so a local scraper or exporter works even when the
 * store does not. From anywhere else the request takes the worker path like
 * every other endpoint and needs the superadmin's session. */
#include "core/err.h"
#include "core/metrics.h"
#include "http/api_call.h"

void api_metrics_local(api_ctx *app, http_request *req)
{
    if (!app->metrics) {
        http_respond_error(req, 404, "not_found", "no such resource", NULL);
        return;
    }
    ss_buf out = SS_BUF_INIT;
    if (metrics_render(app->metrics, &out) == SS_OK)
        http_respond(req, 200, METRICS_CONTENT_TYPE, out.data, out.len, NULL);
    else
        http_respond_error(req, 503, "overloaded", "the server is out of memory", NULL);
    buf_free(&out);
}

void api_metrics(api_call *call)
{
    if (api_require_user(call))
        return;
    if (aaa_require_superadmin(&call->who)) {
        api_reply_error(call, 403, "forbidden", "only the superadmin reads the metrics");
        return;
    }
    if (!call->app->metrics) {
        api_reply_error(call, 404, "not_found", "no such resource");
        return;
    }
    buf_free(&call->body);
    if (metrics_render(call->app->metrics, &call->body) != SS_OK) {
        api_reply_error(call, 503, "overloaded", "the server is out of memory");
        return;
    }
    call->status = 200;
    call->content_type = METRICS_CONTENT_TYPE;
}
