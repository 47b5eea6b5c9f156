#include "aaa/secret.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/api.h"
#include "http/api_call.h"
#include "http/web.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


typedef struct route {
    int method;
    const char *pattern;  /* "{}" stands for an ID segment */
    api_worker_fn fn;
    api_weight weight;
    /* The query parameters the route reads, comma-separated ("" none);
     * "attr.*" admits every name starting "attr.". Any other name is
     * refused before the route runs (check_query). */
    const char *query;
} route;

/* The parameters of every list (api_page.h). */
#define PAGED "limit,cursor"

static const route routes[] = {
    {HTTP_GET, "/healthz", api_healthz, API_LIGHT, ""},
    {HTTP_GET, "/metrics", api_metrics, API_LIGHT, ""},
    {HTTP_POST, "/api/v1/auth/login", api_login, API_SIGN_IN, ""},
    {HTTP_POST, "/api/v1/auth/logout", api_logout, API_LIGHT, ""},
    {HTTP_GET, "/api/v1/me", api_me, API_LIGHT, ""},
    {HTTP_PUT, "/api/v1/me/password", api_me_password, API_LIGHT, ""},
    {HTTP_GET, "/api/v1/me/sessions", api_me_sessions, API_LIGHT, PAGED},
    {HTTP_DELETE, "/api/v1/me/sessions/{}", api_me_session_delete, API_LIGHT, ""},
    {HTTP_PATCH, "/api/v1/users/{}", api_user_patch, API_LIGHT, ""},
    {HTTP_PUT, "/api/v1/users/{}/password", api_user_password, API_LIGHT, ""},
    {HTTP_POST, "/api/v1/users/{}/unlock", api_user_unlock, API_LIGHT, ""},
    {HTTP_GET, "/api/v1/audit", api_audit_list_all, API_HEAVY, "from,to," PAGED},
    {HTTP_GET, "/api/v1/orgs", api_orgs_list, API_LIGHT, PAGED},
    {HTTP_POST, "/api/v1/orgs", api_orgs_create, API_LIGHT, ""},
    {HTTP_GET, "/api/v1/orgs/{}", api_org_get, API_LIGHT, ""},
    {HTTP_PATCH, "/api/v1/orgs/{}", api_org_patch, API_LIGHT, ""},
    {HTTP_DELETE, "/api/v1/orgs/{}", api_org_delete, API_LIGHT, ""},
    {HTTP_PATCH, "/api/v1/orgs/{}/members/{}", api_member_patch, API_LIGHT, ""},
    {HTTP_DELETE, "/api/v1/orgs/{}/members/{}", api_member_delete, API_LIGHT, ""},
    {HTTP_GET, "/api/v1/orgs/{}/apikeys", api_apikeys_list, API_LIGHT, PAGED},
    {HTTP_POST, "/api/v1/orgs/{}/apikeys", api_apikeys_create, API_LIGHT, ""},
    {HTTP_DELETE, "/api/v1/apikeys/{}", api_apikey_delete, API_LIGHT, ""},
    {HTTP_GET, "/api/v1/orgs/{}/audit", api_audit_list, API_HEAVY, "from,to," PAGED},
    /* Usage is a range, not a list: from/to/every bound it (docs/api.md). */
    {HTTP_GET, "/api/v1/orgs/{}/usage", api_usage, API_HEAVY,
     "from,to,every,format,include_children"},
    {HTTP_GET, "/api/v1/orgs/{}/sessions", api_sessions, API_HEAVY, "kind,active," PAGED},
    {HTTP_GET, "/api/v1/orgs/{}/quota", api_quota_get, API_LIGHT, ""},
    {HTTP_PUT, "/api/v1/orgs/{}/quota", api_quota_put, API_LIGHT, ""},
    {HTTP_GET, "/api/v1/orgs/{}/members", api_members_list, API_LIGHT, PAGED},
    {HTTP_POST, "/api/v1/orgs/{}/members", api_members_add, API_LIGHT, ""},
    {HTTP_GET, "/api/v1/orgs/{}/invitations", api_org_invitations_list, API_LIGHT, PAGED},
    {HTTP_DELETE, "/api/v1/orgs/{}/invitations/{}", api_org_invitation_delete, API_LIGHT, ""},
    {HTTP_GET, "/api/v1/me/invitations", api_me_invitations, API_LIGHT, PAGED},
    {HTTP_POST, "/api/v1/invitations/{}/accept", api_invitation_accept, API_LIGHT, ""},
    {HTTP_POST, "/api/v1/invitations/{}/decline", api_invitation_decline, API_LIGHT, ""},
    {HTTP_GET, "/api/v1/orgs/{}/devices", api_devices_list, API_LIGHT, "attr.*," PAGED},
    {HTTP_POST, "/api/v1/orgs/{}/devices", api_devices_create, API_LIGHT, ""},
    {HTTP_GET, "/api/v1/orgs/{}/dashboards", api_dashboards_list, API_LIGHT, PAGED},
    {HTTP_POST, "/api/v1/orgs/{}/dashboards", api_dashboards_create, API_LIGHT, ""},
    {HTTP_GET, "/api/v1/dashboards/{}", api_dashboard_get, API_LIGHT, ""},
    {HTTP_PUT, "/api/v1/dashboards/{}", api_dashboard_put, API_LIGHT, ""},
    {HTTP_DELETE, "/api/v1/dashboards/{}", api_dashboard_delete, API_LIGHT, ""},
    {HTTP_GET, "/api/v1/dashboards/{}/devices", api_dashboard_devices, API_LIGHT, PAGED},
    {HTTP_GET, "/api/v1/devices/{}", api_device_get, API_LIGHT, ""},
    {HTTP_PATCH, "/api/v1/devices/{}", api_device_patch, API_LIGHT, ""},
    {HTTP_DELETE, "/api/v1/devices/{}", api_device_delete, API_LIGHT, ""},
    {HTTP_POST, "/api/v1/devices/{}/token", api_device_rotate, API_LIGHT, ""},
    {HTTP_GET, "/api/v1/devices/{}/channels", api_device_channels, API_HEAVY, PAGED},
    /* One row per channel (the series keeps its newest reading). */
    {HTTP_GET, "/api/v1/devices/{}/latest", api_device_latest, API_LIGHT, ""},
    {HTTP_GET, "/api/v1/devices/{}/data", api_device_data, API_HEAVY,
     "channel,from,to,limit,order,every,fn,cursor"},
    {HTTP_DELETE, "/api/v1/devices/{}/data", api_device_data_delete, API_HEAVY,
     "channel,from,to,all"},
    /* Streamed from the loop once checked (api_hand_over). */
    {HTTP_GET, "/api/v1/orgs/{}/export", api_export, API_HEAVY, "from,to,format,device,channel"},
    {HTTP_GET, "/api/v1/orgs/{}/live", api_live_get, API_LIGHT, "device,channel"},
};
#define ROUTES (sizeof routes / sizeof routes[0])
/* Room for an Allow list: a path has at most a handful of methods. */
#define ROUTE_ALLOW_MAX 64u

/* SPEC §2: a credential in the URL is refused before anything else. */
static const char *const url_credential_names[] = {
    "token", "auth_token", "access_token", "api_key", "apikey", "key",
};

/* Names compare ignoring case, percent-decoded and trimmed: "?TOKEN=",
 * "?Key%20=" are credentials as much as "?token=". */
static int query_has_credential(const http_request *req)
{
    return req->query[0] &&
           http_query_has_name(req, url_credential_names,
                               sizeof url_credential_names / sizeof url_credential_names[0]);
}

static void refuse_credential_in_url(http_request *req)
{
    http_respond_error(req, 400, "token_in_url",
                       "credentials belong in a header (X-Auth-Token or Authorization), "
                       "never in the URL", NULL);
}

/* RFC 9110 §9.3.2: HEAD is answered wherever GET is, without the body
 * (the HTTP server drops it). */
static int method_matches(int route_method, int method)
{
    return route_method == method || (route_method == HTTP_GET && method == HTTP_HEAD);
}

/* Matches path against pattern, copying ID segments into params. */
static int route_match(const char *pattern, const char *path,
                       char params[API_PARAMS_MAX][SS_ID_LEN + 1])
{
    size_t nparams = 0;
    while (*pattern && *path) {
        if (pattern[0] == '{' && pattern[1] == '}') {
            const char *end = strchr(path, '/');
            size_t len = end ? (size_t)(end - path) : strlen(path);
            if (len == 0 || len > SS_ID_LEN || nparams >= API_PARAMS_MAX)
                return 0;
            memcpy(params[nparams], path, len);
            params[nparams][len] = '\0';
            nparams++;
            pattern += 2;
            path += len;
            continue;
        }
        if (*pattern != *path)
            return 0;
        pattern++;
        path++;
    }
    /* A trailing slash is the same resource. */
    if (*path == '/' && path[1] == '\0')
        path++;
    return *pattern == '\0' && *path == '\0';
}

static void on_work(uv_work_t *w)
{
    api_call *call = w->data;
    call->now_ms = clock_now_ms();
    /* Argon2 holds a worker as long as a heavy query: sign-ins share the
     * pool as one org does, whatever addresses they come from. */
    if (call->weight == API_SIGN_IN && api_gate_org(call, API_GATE_SIGN_IN))
        return;
    int rc = store_conn_acquire(call->app->store, &call->db);
    if (rc) {
        api_reply_error(call, 503, "store_unavailable", "the store cannot be reached");
        return;
    }
    const route *r = call->req->data;
    r->fn(call);
    if (call->gated_org[0]) {
        api_gate_leave_org(call->app->gate, call->gated_org);
        call->gated_org[0] = '\0';
        call->freed_share = 1;
    }
    store_conn_release(call->app->store, call->db);
    call->db = NULL;
}

/* Tells accounting who the request was from (api_account), and the
 * transport whose answer it sends. */
static void note_principal(api_call *call)
{
    if (call->who.kind == AAA_PRINCIPAL_KEY) {
        api_note_who(call->req, API_WHO_APIKEY, aaa_principal_id(&call->who),
                     aaa_principal_org(&call->who));
        return;
    }
    if (call->who.kind != AAA_PRINCIPAL_PERSON)
        return;
    api_req_acct *p = api_note_who(call->req, API_WHO_PERSON, call->who.user.id, call->acct_org);
    if (!p)
        return;
    snprintf(p->login_id, sizeof p->login_id, "%s", call->who.session.id);
    p->session_ended = call->signed_out;
    memcpy(p->ended_login, call->ended_login, sizeof p->ended_login);
    memcpy(p->ended_user, call->ended_user, sizeof p->ended_user);
    p->ended_user_keeps_own = call->ended_user_keeps_own;
}

void api_hand_over(api_call *call, const api_handoff *h, void *arg)
{
    call->handoff = h;
    call->handoff_arg = arg;
}

void api_share_release(api_ctx *app, const api_share *share)
{
    if (share->held)
        api_gate_leave_principal(app->gate, share->key);
}

/* The request goes to the handler's loop side with the credential's
 * share, in place of an answer. */
static void hand_over(api_call *call)
{
    api_share share = {.held = call->gated_principal};
    memcpy(share.key, call->gate_key, sizeof share.key);
    call->req->data = NULL;
    if (call->aaa.revoked_self)
        http_request_close(call->req);
    call->handoff->run(call->app, call->req, call->handoff_arg, &share);
    buf_free(&call->body);
    free(call);
}

/* Sends the answer and ends the call (status: the worker's, 0 on the loop). */
static void finish(api_call *call, int status)
{
    note_principal(call);
    call->app->requests_in_flight--;
    if (call->handoff && status == 0 && call->status == 0) {
        hand_over(call);
        return;
    }
    if (call->handoff)
        call->handoff->drop(call->handoff_arg);
    if (call->gated_principal)
        api_gate_leave_principal(call->app->gate, call->gate_key);
    if (status != 0 || call->status == 0)
        api_reply_error(call, 500, "internal", "the request could not be served");
    call->req->data = NULL;
    if (call->aaa.revoked_self)  /* it revoked its own credential */
        http_request_close(call->req);
    http_respond(call->req, call->status, call->content_type, call->body.data, call->body.len,
                 call->extra_headers[0] ? call->extra_headers : NULL);
    buf_free(&call->body);
    free(call);
}

static void on_work_done(uv_work_t *w, int status);
static void arm_wait_timer(api_ctx *app);

static uint64_t heavy_wait_ms(const api_ctx *app)
{
    return app->heavy_wait_ms ? app->heavy_wait_ms : SS_API_HEAVY_WAIT_MS;
}

/* A heavy call whose org (or the pool) had no share free waits on the loop,
 * in arrival order, and runs again from the start when a share frees. It
 * keeps its credential's share meanwhile, so the wait is bounded in count
 * (SS_API_HEAVY_QUEUED_MAX, and per credential) and, by heavy_wait_ms
 * (a timer), in time. */
static void park(api_ctx *app, api_call *call)
{
    if (call->handoff)  /* a handler hands over only as its last act: never here */
        call->handoff->drop(call->handoff_arg);
    call->handoff = NULL;
    buf_free(&call->body);
    call->status = 0;
    call->content_type = NULL;
    call->extra_headers[0] = '\0';
    call->who.kind = AAA_PRINCIPAL_NONE;
    call->acct_org[0] = '\0';
    call->waiting = 0;
    if (!call->waiting_since)  /* waits again after losing a race: keeps its age */
        call->waiting_since = uv_now(app->loop);
    call->next_waiting = NULL;
    if (app->waiting_tail)
        app->waiting_tail->next_waiting = call;
    else
        app->waiting_head = call;
    app->waiting_tail = call;
    arm_wait_timer(app);
}

static void unlink_waiting(api_ctx *app, api_call *prev, api_call *call)
{
    if (prev)
        prev->next_waiting = call->next_waiting;
    else
        app->waiting_head = call->next_waiting;
    if (app->waiting_tail == call)
        app->waiting_tail = prev;
    call->next_waiting = NULL;
}

/* Answers 429 to the calls that waited too long. */
static void expire_waiting(api_ctx *app)
{
    uint64_t now = uv_now(app->loop);
    api_call *prev = NULL, *call = app->waiting_head;
    while (call) {
        api_call *next = call->next_waiting;
        if (now - call->waiting_since >= heavy_wait_ms(app)) {
            unlink_waiting(app, prev, call);
            api_reply_busy(call, call->weight == API_SIGN_IN
                                     ? "the server runs as many sign-ins as it may, and this "
                                       "one waited too long; retry shortly"
                                     : "the organisation runs as many heavy requests as it "
                                       "may, and this one waited too long; retry shortly");
            finish(call, 0);
        } else {
            prev = call;
        }
        call = next;
    }
}

/* Runs the first waiting call whose org has a share free. */
static void run_one_waiting(api_ctx *app)
{
    api_call *prev = NULL;
    for (api_call *call = app->waiting_head; call; prev = call, call = call->next_waiting) {
        if (!api_gate_has_room(app->gate, call->wait_org))
            continue;
        unlink_waiting(app, prev, call);
        if (uv_queue_work(app->loop, &call->work, on_work, on_work_done)) {
            api_reply_error(call, 503, "overloaded", "the server cannot take the request now");
            finish(call, 0);
        }
        return;
    }
}

static void wake_one(api_ctx *app)
{
    expire_waiting(app);
    run_one_waiting(app);
    arm_wait_timer(app);
}

static void on_wait_timer(uv_timer_t *t)
{
    wake_one(t->data);
}

void api_org_share_freed(api_ctx *app)
{
    wake_one(app);
}

static void on_wait_timer_closed(uv_handle_t *h)
{
    free(h);
}

/* While calls wait, one timer is set for the oldest wait's end, so a wait
 * ends on time even when no other heavy call finishes meanwhile; with none
 * waiting it is closed and the loop may end. Without memory for it, the
 * next call to finish ends the waits instead. */
static void arm_wait_timer(api_ctx *app)
{
    if (!app->waiting_head) {
        if (app->wait_timer)
            uv_close((uv_handle_t *)app->wait_timer, on_wait_timer_closed);
        app->wait_timer = NULL;
        return;
    }
    if (!app->wait_timer) {
        uv_timer_t *t = malloc(sizeof *t);
        if (!t || uv_timer_init(app->loop, t) != 0) {
            free(t);
            return;
        }
        t->data = app;
        app->wait_timer = t;
    }
    /* A call that lost a race waits again at the tail with its old age:
     * the oldest is not always first. */
    uint64_t oldest = UINT64_MAX;
    for (api_call *call = app->waiting_head; call; call = call->next_waiting)
        if (call->waiting_since < oldest)
            oldest = call->waiting_since;
    uint64_t end = oldest + heavy_wait_ms(app), now = uv_now(app->loop);
    uv_timer_start(app->wait_timer, on_wait_timer, end > now ? end - now : 0, 0);
}

static void on_work_done(uv_work_t *w, int status)
{
    api_call *call = w->data;
    api_ctx *app = call->app;
    int freed = call->freed_share;
    call->freed_share = 0;
    if (status == 0 && call->waiting)
        park(app, call);
    else
        finish(call, status);
    /* A parked call may have missed the share freed while it was on its
     * way back here: look again. */
    if (freed || app->waiting_head)
        wake_one(app);
}

/* A refusal by the loop-side gate, answered after SS_API_BUSY_DELAY_MS. */
typedef struct busy_answer {
    uv_timer_t timer;
    http_request *req;
} busy_answer;

static void respond_over_share(http_request *req)
{
    api_respond_busy(req, "too many heavy requests in flight from this client at once; "
                          "wait for an answer before sending more");
}

static void on_busy_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_busy_timer(uv_timer_t *t)
{
    busy_answer *b = t->data;
    respond_over_share(b->req);
    uv_close((uv_handle_t *)&b->timer, on_busy_closed);
}

/* A client that resends at once after each 429 would otherwise keep the
 * loop busy answering it; held back a little, it costs the loop no more
 * than one refusal per connection per delay. Without memory for the
 * timer, the answer goes at once. */
static void refuse_over_share(api_ctx *app, http_request *req)
{
    busy_answer *b = calloc(1, sizeof *b);
    if (!b || uv_timer_init(app->loop, &b->timer) != 0) {
        free(b);
        respond_over_share(req);
        return;
    }
    b->req = req;
    b->timer.data = b;
    uv_timer_start(&b->timer, on_busy_timer, SS_API_BUSY_DELAY_MS, 0);
}

/* The loop-side gate of a heavy request (api_gate.h): its credential, or
 * for sign-in and a request without one its client address, may have only
 * so many in flight. Answers 429 and returns nonzero when over. */
static int gate_principal(api_ctx *app, http_request *req, api_call *call)
{
    if (call->weight == API_LIGHT || !app->gate)
        return 0;
    size_t len = 0;
    int via_cookie = 0;
    const char *who = call->weight == API_HEAVY ? api_find_credential(req, &len, &via_cookie)
                                                : NULL;
    if (!who || len == 0) {
        who = req->peer;
        len = strlen(req->peer);
    }
    api_gate_key(app->gate, who, len, call->gate_key);
    if (api_gate_enter_principal(app->gate, call->gate_key) == 0) {
        call->gated_principal = 1;
        return 0;
    }
    refuse_over_share(app, req);
    return 1;
}

static void dispatch_worker(api_ctx *app, http_request *req, const route *r,
                            char params[API_PARAMS_MAX][SS_ID_LEN + 1])
{
    api_call *call = calloc(1, sizeof *call);
    if (!call) {
        http_respond_error(req, 503, "overloaded", "the server is out of memory", NULL);
        return;
    }
    call->weight = r->weight;
    if (gate_principal(app, req, call)) {
        free(call);
        return;
    }
    call->app = app;
    call->req = req;
    memcpy(call->params, params, sizeof call->params);
    call->work.data = call;
    req->data = (void *)r;
    app->requests_in_flight++;
    if (uv_queue_work(app->loop, &call->work, on_work, on_work_done)) {
        app->requests_in_flight--;
        if (call->gated_principal)
            api_gate_leave_principal(app->gate, call->gate_key);
        free(call);
        http_respond_error(req, 503, "overloaded", "the server cannot take the request now", NULL);
    }
}

/* Appends ", NAME" (or "NAME") to the Allow list unless it is there. */
static void allow_add(char *allow, size_t cap, const char *method)
{
    if (strstr(allow, method))
        return;
    size_t n = strlen(allow);
    snprintf(allow + n, cap - n, "%s%s", n ? ", " : "", method);
}

/* RFC 9110 §15.5.6: a 405 names the methods the resource has. */
static void refuse_method(http_request *req)
{
    char params[API_PARAMS_MAX][SS_ID_LEN + 1];
    char allow[ROUTE_ALLOW_MAX] = "";
    if (strcmp(req->path, "/api/v1/data") == 0 || api_import_path(req->path))
        allow_add(allow, sizeof allow, "POST");
    for (size_t i = 0; i < ROUTES; i++) {
        if (!route_match(routes[i].pattern, req->path, params))
            continue;
        allow_add(allow, sizeof allow, http_method_str(routes[i].method));
        if (routes[i].method == HTTP_GET)
            allow_add(allow, sizeof allow, "HEAD");
    }
    char extra[ROUTE_ALLOW_MAX + 16];
    snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
    static const char body[] = "{\"error\":{\"code\":\"method_not_allowed\","
                               "\"message\":\"this method is not allowed here\"}}";
    http_respond(req, 405, "application/json", body, sizeof body - 1, extra);
}

/* ---- query parameters: SPEC §2, unknown or malformed is a 400 naming it ---- */

/* 1 when name is one of the comma-separated names of `declared`, or has
 * something after the prefix of one of its "prefix.*" entries. */
static int query_name_declared(const char *declared, const char *name)
{
    size_t nlen = strlen(name);
    for (const char *p = declared; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 1 && p[len - 1] == '*') {
            if (nlen > len - 1 && strncmp(name, p, len - 1) == 0)
                return 1;
        } else if (len == nlen && memcmp(p, name, len) == 0) {
            return 1;
        }
        p += len + (end ? 1 : 0);
    }
    return 0;
}

/* A name is echoed in the error only when it is plain printable ASCII and
 * does not look like one of our secrets (a token pasted as a name). */
static int query_name_showable(const char *name)
{
    static const char *const secret_prefixes[] = {"ssd_", "ssk_", "sss_"};
    for (size_t i = 0; i < sizeof secret_prefixes / sizeof secret_prefixes[0]; i++)
        if (strncasecmp(name, secret_prefixes[i], 4) == 0)
            return 0;
    for (const char *c = name; *c; c++)
        if (*c < 0x20 || *c > 0x7e || *c == '"' || *c == '\\')
            return 0;
    return name[0] != '\0';
}

static void refuse_parameter(http_request *req, const char *code, const char *name,
                             const char *what)
{
    char msg[HTTP_QUERY_NAME_MAX + 96], extra[HTTP_QUERY_NAME_MAX + 32];
    int show = name && query_name_showable(name);
    if (show) {
        snprintf(msg, sizeof msg, what, name);
        snprintf(extra, sizeof extra, "\"parameter\":\"%s\"", name);
    } else {
        snprintf(msg, sizeof msg, what, "(a name not shown)");
    }
    http_respond_error(req, 400, code, msg, show ? extra : NULL);
}

/* Every parameter of the query must be one the route declares, its name
 * and value well %-encoded, and given once. Answers 400 and returns 1
 * when not. */
static int check_query(http_request *req, const char *declared)
{
    char seen[SS_QUERY_PARAMS_MAX][HTTP_QUERY_NAME_MAX + 1];
    size_t n = 0, pos = 0;
    http_query_param p;
    while (http_query_next(req, &pos, &p)) {
        if (n >= SS_QUERY_PARAMS_MAX) {
            char msg[64];
            snprintf(msg, sizeof msg, "more than %u query parameters", SS_QUERY_PARAMS_MAX);
            http_respond_error(req, 400, "bad_parameter", msg, NULL);
            return 1;
        }
        if (p.name_bad || !p.name[0]) {
            refuse_parameter(req, "bad_parameter", NULL,
                             "a query parameter name is empty, over 63 bytes or badly "
                             "%%-encoded");
            return 1;
        }
        if (!query_name_declared(declared, p.name)) {
            refuse_parameter(req, "unknown_parameter", p.name, "unknown query parameter '%s'");
            return 1;
        }
        if (p.value_bad) {
            refuse_parameter(req, "bad_parameter", p.name,
                             "query parameter '%s' has a bad %%-escape in its value");
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            if (strcmp(seen[i], p.name) == 0) {
                refuse_parameter(req, "bad_parameter", p.name,
                                 "query parameter '%s' is given more than once");
                return 1;
            }
        }
        memcpy(seen[n++], p.name, sizeof p.name);
    }
    return 0;
}

/* The parameters the route of this path and method declares; NULL when no
 * route has both (api_handle answers 404 or 405). */
static const char *declared_query(const http_request *req)
{
    char params[API_PARAMS_MAX][SS_ID_LEN + 1];
    /* device_id: the device an API key with data:write posts as. */
    if (req->method == HTTP_POST && strcmp(req->path, "/api/v1/data") == 0)
        return "device_id";
    if (req->method == HTTP_POST && api_import_path(req->path))
        return "format";
    for (size_t i = 0; i < ROUTES; i++)
        if (method_matches(routes[i].method, req->method) &&
            route_match(routes[i].pattern, req->path, params))
            return routes[i].query;
    return NULL;
}

int api_head(void *ctx, http_request *req)
{
    api_ctx *app = ctx;
    if (query_has_credential(req)) {
        refuse_credential_in_url(req);
        return 1;
    }
    const char *declared = req->query[0] ? declared_query(req) : NULL;
    if (declared && check_query(req, declared))
        return 1;
    if (req->method == HTTP_POST && strcmp(req->path, "/api/v1/data") == 0)
        return api_data_head(app, req);
    if (req->method == HTTP_POST && api_import_path(req->path))
        return api_import_head(app, req);
    return 0;
}

void api_handle(void *ctx, http_request *req)
{
    api_ctx *app = ctx;
    /* A credential in the URL was refused by api_head already. */
    if (req->method == HTTP_POST && strcmp(req->path, "/api/v1/data") == 0) {
        api_conn_open(req);
        api_data_post(app, req);
        return;
    }
    if (req->method == HTTP_POST && api_import_path(req->path)) {
        api_import_request(app, req);
        return;
    }
    char params[API_PARAMS_MAX][SS_ID_LEN + 1] = {{0}};
    /* SPEC §2: anyone on loopback reads the metrics; others take the
     * worker route below, which wants the superadmin. */
    if (method_matches(HTTP_GET, req->method) && route_match("/metrics", req->path, params) &&
        metrics_peer_is_local(req->peer)) {
        api_metrics_local(app, req);
        return;
    }
    if (method_matches(HTTP_GET, req->method) && app->maint &&
        route_match("/healthz", req->path, params)) {
        api_healthz_local(app, req);
        return;
    }
    /* The web app's files are the same for everyone: no principal, no
     * worker. */
    if (web_serve(req))
        return;
    /* The accounting state is made only for requests that note who they
     * are from: an idle connection that asked /healthz holds none. */
    api_conn_open(req);
    int path_known = 0;
    for (size_t i = 0; i < ROUTES; i++) {
        if (!route_match(routes[i].pattern, req->path, params))
            continue;
        path_known = 1;
        if (method_matches(routes[i].method, req->method)) {
            dispatch_worker(app, req, &routes[i], params);
            return;
        }
    }
    if (path_known || strcmp(req->path, "/api/v1/data") == 0 || api_import_path(req->path))
        refuse_method(req);
    else
        http_respond_error(req, 404, "not_found", "no such resource", NULL);
}
