/* api_dashboards.c — an organisation's dashboards over REST: the requests
 * are read here; the JSON is checked, stored and audited in
 * aaa/dashboards.
 *
 * Who reads is decided in one place, dashboard_read_role: every read of a
 * dashboard (the list, one, the devices it may show) asks it. */
#include "aaa/dashboards.h"
#include "core/err.h"
#include "http/api_call.h"
#include "http/api_page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The least role that reads an org's dashboards (SPEC §2). */
static store_role dashboard_read_role(void)
{
    return STORE_ROLE_DASHBOARD;
}

/* The one who writes: an editor (a manage key). */
#define DASHBOARD_WRITE_ROLE STORE_ROLE_EDITOR

static store_dashboard *dashboard_alloc(api_call *call)
{
    store_dashboard *d = calloc(1, sizeof *d);
    if (!d)
        api_reply_error(call, 503, "overloaded", "out of memory");
    return d;
}

/* Signs the caller in, loads the dashboard of the first path parameter and
 * checks the caller's role in its org; answers and returns nonzero when
 * any fails (404 for another org's, as for an unknown one). */
static int load_dashboard(api_call *call, store_role min, store_dashboard *d)
{
    if (api_authenticate(call))
        return 1;
    int rc = aaa_dashboard_access(call->db, &call->who, call->params[0], min, d);
    if (rc) {
        api_reply_err(call, rc, NULL);
        return 1;
    }
    return api_enter_org(call, d->org_id);
}

/* The body of a write, parsed once its size is known to be a dashboard's;
 * NULL when answered. */
static json_t *dashboard_body(api_call *call)
{
    if (call->req->body.len > SS_DASHBOARD_BODY_MAX) {
        char msg[96];
        snprintf(msg, sizeof msg, "a dashboard is at most %u bytes of JSON",
                 SS_DASHBOARD_BODY_MAX);
        api_reply_error(call, 413, "too_large", msg);
        return NULL;
    }
    return api_body_object(call);
}

/* Checks the body into d; answers 400 / 404 naming what is wrong. */
static int parse_body(api_call *call, const char *org_id, store_dashboard *d)
{
    json_t *body = dashboard_body(call);
    if (!body)
        return 1;
    char why[AAA_DASHBOARD_WHY_MAX];
    int rc = aaa_dashboard_parse(call->db, org_id, body, d, why);
    json_decref(body);
    if (rc == SS_NOT_FOUND)
        api_reply_error(call, 404, "not_found", why);
    else if (rc)
        api_reply_err(call, rc, why);
    return rc != 0;
}

static void reply_written(api_call *call, int rc, int status, const store_dashboard *d)
{
    if (rc == SS_CONFLICT) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "the organisation has %u dashboards, as many as it may keep: delete one first",
                 SS_DASHBOARDS_PER_ORG_MAX);
        api_reply_error(call, 409, "conflict", msg);
        return;
    }
    api_reply_result(call, rc, status, rc ? NULL : aaa_dashboard_json(d));
}

/* ---- an org's dashboards --------------------------------------------------- */

typedef struct dashboard_page {
    api_page page;
    size_t bytes;   /* the layouts taken so far */
} dashboard_page;

/* A page ends at its limit, or before the layout that would take it past
 * SS_DASHBOARD_PAGE_BYTES_MAX (never before its first). */
static int append_dashboard(void *ctx, const store_dashboard *d)
{
    dashboard_page *dp = ctx;
    size_t len = strlen(d->spec);
    if (json_array_size(dp->page.items) > 0 && dp->bytes + len > SS_DASHBOARD_PAGE_BYTES_MAX) {
        dp->page.more = 1;
        return 1;
    }
    dp->bytes += len;
    return api_page_add(&dp->page, aaa_dashboard_json(d), json_pack("[s,s]", d->name, d->id));
}

void api_dashboards_list(api_call *call)
{
    dashboard_page dp = {0};
    if (api_require_org_role(call, dashboard_read_role(), NULL) ||
        api_page_begin(call, SS_DASHBOARD_PAGE_LIMIT_MAX, SS_DASHBOARD_PAGE_LIMIT_MAX, "ss",
                       &dp.page))
        return;
    int rc = store_dashboard_list(call->db, call->params[0], api_page_after_text(&dp.page, 0),
                                  api_page_after_text(&dp.page, 1), append_dashboard, &dp);
    api_page_reply(call, rc, &dp.page);
}

void api_dashboards_create(api_call *call)
{
    if (api_require_org_role(call, DASHBOARD_WRITE_ROLE, NULL))
        return;
    store_dashboard *d = dashboard_alloc(call);
    if (!d)
        return;
    snprintf(d->org_id, sizeof d->org_id, "%s", call->params[0]);
    if (!parse_body(call, d->org_id, d))
        reply_written(call, aaa_dashboard_create(api_aaa(call), d), 201, d);
    free(d);
}

/* ---- one dashboard ------------------------------------------------------------ */

void api_dashboard_get(api_call *call)
{
    store_dashboard *d = dashboard_alloc(call);
    if (d && !load_dashboard(call, dashboard_read_role(), d))
        api_reply_json(call, 200, aaa_dashboard_json(d));
    free(d);
}

void api_dashboard_put(api_call *call)
{
    store_dashboard *d = dashboard_alloc(call);
    if (d && !load_dashboard(call, DASHBOARD_WRITE_ROLE, d) && !parse_body(call, d->org_id, d))
        reply_written(call, aaa_dashboard_update(api_aaa(call), d), 200, d);
    free(d);
}

void api_dashboard_delete(api_call *call)
{
    store_dashboard *d = dashboard_alloc(call);
    if (d && !load_dashboard(call, DASHBOARD_WRITE_ROLE, d)) {
        int rc = aaa_dashboard_delete(api_aaa(call), d);
        if (rc)
            api_reply_err(call, rc, NULL);
        else
            api_reply_empty(call);
    }
    free(d);
}

/* ---- the devices a dashboard may show ------------------------------------------
 *
 * A dynamic dashboard's picker (the org's devices its filter matches), a
 * static one's devices, a map's locations: the org's devices by name then
 * id, those the dashboard shows kept. */

typedef struct shown_list {
    api_call *call;
    const store_dashboard *dash;
    json_t *spec;
    api_page page;
} shown_list;

static json_t *shown_json(api_call *call, store_device *dev)
{
    last_seen_apply(call->app->seen, dev);
    json_error_t jerr;
    json_t *attrs = json_loads(dev->attributes[0] ? dev->attributes : "{}", 0, &jerr);
    if (!json_is_object(attrs)) {
        json_decref(attrs);
        attrs = json_object();
    }
    return json_pack("{s:s,s:s,s:o,s:I}", "id", dev->id, "name", dev->name, "attributes", attrs,
                     "last_seen", (json_int_t)dev->last_seen);
}

static int append_shown(void *ctx, const store_device *dev)
{
    shown_list *sl = ctx;
    if (!aaa_dashboard_shows_device(sl->dash, sl->spec, dev))
        return 0;
    store_device copy = *dev;
    return api_page_add(&sl->page, shown_json(sl->call, &copy),
                        json_pack("[s,s]", dev->name, dev->id));
}

static void list_shown(api_call *call, shown_list *sl)
{
    if (api_page_begin(call, SS_PAGE_LIMIT_DEFAULT, SS_PAGE_LIMIT_MAX, "ss", &sl->page))
        return;
    sl->spec = aaa_dashboard_spec(sl->dash);
    int rc;
    if (sl->page.after)
        rc = store_device_list_after(call->db, sl->dash->org_id,
                                     api_page_after_text(&sl->page, 0),
                                     api_page_after_text(&sl->page, 1), append_shown, sl);
    else
        rc = store_device_list(call->db, sl->dash->org_id, append_shown, sl);
    json_decref(sl->spec);
    api_page_reply(call, rc, &sl->page);
}

void api_dashboard_devices(api_call *call)
{
    store_dashboard *d = dashboard_alloc(call);
    shown_list *sl = d ? calloc(1, sizeof *sl) : NULL;
    if (d && !sl)
        api_reply_error(call, 503, "overloaded", "out of memory");
    if (sl && !load_dashboard(call, dashboard_read_role(), d)) {
        sl->call = call;
        sl->dash = d;
        list_shown(call, sl);
    }
    free(sl);
    free(d);
}
