/* api_common.c — answers, authentication and role checks shared by every
 * resource handler on the worker pool. */
#include "aaa/principal.h"
#include "aaa/secret.h"
#include "core/err.h"
#include "core/json_out.h"
#include "core/log.h"
#include "http/api_call.h"

#include <ctype.h>
#include <http_parser.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SESSION_COOKIE "ss_session"
#define BEARER_PREFIX "Bearer "

void api_reply_json(api_call *call, int status, json_t *value)
{
    buf_free(&call->body);
    int rc = json_out_value(&call->body, value);
    json_decref(value);
    if (rc) {
        buf_free(&call->body);
        call->status = 500;
        return;
    }
    call->status = status;
    call->content_type = "application/json";
}

static json_t *error_json(const char *code, const char *message)
{
    return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
}

void api_reply_error(api_call *call, int status, const char *code, const char *message)
{
    api_reply_json(call, status, error_json(code, message));
    if (status == 401)
        snprintf(call->extra_headers, sizeof call->extra_headers, "WWW-Authenticate: Bearer\r\n");
}

void api_reply_empty(api_call *call)
{
    buf_free(&call->body);
    call->status = 204;
    call->content_type = NULL;
}

void api_reply_store_error(api_call *call, int err)
{
    switch (err) {
    case SS_NOT_FOUND:
        api_reply_error(call, 404, "not_found", "no such resource");
        break;
    case SS_EXISTS:
        api_reply_error(call, 409, "conflict", "it exists already");
        break;
    case SS_FULL:
        api_reply_error(call, 503, "store_unavailable", "the store is full; reads still work");
        break;
    default:
        api_reply_error(call, 503, "store_unavailable", "the store cannot serve the request now");
        break;
    }
}

void api_reply_err(api_call *call, int err, const char *why)
{
    switch (err) {
    case SS_AUTH:
        api_reply_error(call, 401, "unauthenticated", why ? why : "sign in first");
        break;
    case SS_FORBIDDEN:
        if (!why)
            why = call->who.kind == AAA_PRINCIPAL_KEY ? "the API key's scopes do not allow this"
                                                      : "your role does not allow this";
        api_reply_error(call, 403, "forbidden", why);
        break;
    case SS_QUOTA:
        api_reply_error(call, 429, "quota_exceeded", why ? why : "over the organisation's quota");
        break;
    case SS_INVAL:
        api_reply_error(call, 400, "bad_request", why ? why : "the request is not valid");
        break;
    default:
        api_reply_store_error(call, err);
        break;
    }
}

void api_reply_result(api_call *call, int rc, int status, json_t *value)
{
    if (rc) {
        json_decref(value);
        api_reply_store_error(call, rc);
        return;
    }
    api_reply_json(call, status, value);
}

void api_reply_list(api_call *call, int rc, json_t *value)
{
    api_reply_result(call, rc, 200, value);
}

void api_reply_secret(api_call *call, int status, json_t *obj, const char *field, char *secret)
{
    json_object_set_new(obj, field, json_string(secret));
    sodium_memzero(secret, SECRET_TEXT_MAX);
    api_reply_json(call, status, obj);
    snprintf(call->extra_headers, sizeof call->extra_headers, "Cache-Control: no-store\r\n");
}

void api_reply_bad_body(api_call *call, json_t *body, const char *message)
{
    json_decref(body);
    api_reply_error(call, 400, "bad_request", message);
}

json_t *api_body_object(api_call *call)
{
    json_error_t jerr;
    const ss_buf *b = &call->req->body;
    json_t *v = json_loadb(b->data ? b->data : "", b->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v || !json_is_object(v)) {
        json_decref(v);
        api_reply_error(call, 400, "bad_request", "the body must be a JSON object");
        return NULL;
    }
    return v;
}

const char *api_json_string(json_t *obj, const char *key, size_t max, int *bad)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v) || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}

/* The session token from "Authorization: Bearer …" or the ss_session cookie.
 * Two ss_session cookies (one may have been planted by a sibling domain)
 * are no credential: neither is taken first. */
const char *api_find_credential(const http_request *req, size_t *len, int *via_cookie)
{
    const char *auth = http_request_header(req, "authorization");
    if (auth && strncasecmp(auth, BEARER_PREFIX, strlen(BEARER_PREFIX)) == 0) {
        const char *t = auth + strlen(BEARER_PREFIX);
        *len = strlen(t);
        *via_cookie = 0;
        return t;
    }
    const char *cookie = http_request_header(req, "cookie");
    const char *found = NULL;
    for (const char *p = cookie; p && *p;) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ';');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        size_t nlen = strlen(SESSION_COOKIE);
        if (plen > nlen && strncmp(p, SESSION_COOKIE, nlen) == 0 && p[nlen] == '=') {
            if (found)
                return NULL;
            found = p + nlen + 1;
            *len = plen - nlen - 1;
            *via_cookie = 1;
        }
        p = end ? end + 1 : NULL;
    }
    return found;
}

static int method_mutates(int method)
{
    return method != HTTP_GET && method != HTTP_HEAD && method != HTTP_OPTIONS;
}

static int csrf_ok(api_call *call)
{
    if (!call->via_cookie || !method_mutates(call->req->method))
        return 1;
    const char *csrf = http_request_header(call->req, "x-csrf-token");
    size_t len = strlen(call->who.session.csrf);
    return csrf && strlen(csrf) == len && sodium_memcmp(csrf, call->who.session.csrf, len) == 0;
}

aaa_ctx *api_aaa(api_call *call)
{
    aaa_ctx *cx = &call->aaa;
    cx->db = call->db;
    cx->devices = call->app->devices;
    cx->conns = call->app->conns;
    cx->quotas = call->app->quotas;
    cx->maint = call->app->maint;
    cx->who = &call->who;
    cx->addr = call->req->peer;
    cx->now_ms = call->now_ms;
    return cx;
}

int api_authenticate(api_call *call)
{
    size_t len = 0;
    const char *token = api_find_credential(call->req, &len, &call->via_cookie);
    if (!token || len == 0 || len >= SECRET_TEXT_MAX) {
        api_reply_error(call, 401, "unauthenticated", "sign in first (Authorization: Bearer)");
        return 1;
    }
    aaa_session_policy policy = {call->app->session_idle_ms};
    if (call->app->conns)
        call->reg_mark = conn_registry_mark(call->app->conns);
    int rc = aaa_authenticate(call->db, &policy, token, len, call->via_cookie, call->now_ms,
                              &call->who);
    if (rc) {
        int is_key = call->who.kind == AAA_PRINCIPAL_KEY;
        call->who.kind = AAA_PRINCIPAL_NONE;
        api_reply_err(call, rc,
                      is_key ? "the API key is not valid" : "the session has ended; sign in again");
        return 1;
    }
    if (!csrf_ok(call)) {
        api_reply_error(call, 403, "csrf_failed", "the X-CSRF-Token header is missing or wrong");
        return 1;
    }
    return 0;
}

int api_require_user(api_call *call)
{
    if (api_authenticate(call))
        return 1;
    if (call->who.kind == AAA_PRINCIPAL_PERSON)
        return 0;
    api_reply_error(call, 403, "forbidden", "this endpoint is for people signed in, not API keys");
    return 1;
}

int api_enter_org(api_call *call, const char *org_id)
{
    snprintf(call->acct_org, sizeof call->acct_org, "%s", org_id);
    return api_gate_org(call, org_id);
}

int api_require_role(api_call *call, const char *org_id, store_role min, store_role *role)
{
    int rc = aaa_require_role(call->db, &call->who, org_id, min, role);
    if (rc) {
        api_reply_err(call, rc, NULL);
        return 1;
    }
    return api_enter_org(call, org_id);
}

int api_require_org_role(api_call *call, store_role min, store_role *role)
{
    return api_authenticate(call) || api_require_role(call, call->params[0], min, role);
}

json_t *api_org_body(api_call *call, store_role min, store_role *role)
{
    return api_require_org_role(call, min, role) ? NULL : api_body_object(call);
}

/* Every 429 too_many_requests says when to try again. */
static void busy_retry_after(char *out, size_t cap)
{
    snprintf(out, cap, "Retry-After: %d\r\n", API_GATE_RETRY_AFTER_S);
}

void api_reply_busy(api_call *call, const char *message)
{
    api_reply_error(call, 429, "too_many_requests", message);
    busy_retry_after(call->extra_headers, sizeof call->extra_headers);
}

void api_respond_busy(http_request *req, const char *message)
{
    char headers[64];
    busy_retry_after(headers, sizeof headers);
    ss_buf body = SS_BUF_INIT;
    json_t *err = error_json("too_many_requests", message);
    if (json_out_value(&body, err) == 0)
        http_respond(req, 429, "application/json", body.data, body.len, headers);
    else
        http_respond(req, 429, NULL, NULL, 0, headers);
    json_decref(err);
    buf_free(&body);
}

int api_gate_org(api_call *call, const char *org_id)
{
    if (call->weight == API_LIGHT || call->gated_org[0] || !call->app->gate)
        return 0;
    if (api_gate_enter_org(call->app->gate, org_id)) {
        call->waiting = 1;
        snprintf(call->wait_org, sizeof call->wait_org, "%s", org_id);
        return 1;
    }
    snprintf(call->gated_org, sizeof call->gated_org, "%s", org_id);
    return 0;
}

void api_audit(api_call *call, const char *org_id, const char *action, const char *target,
               json_t *detail)
{
    aaa_audit(api_aaa(call), org_id, action, target, detail);
}

int api_name_valid(const char *name)
{
    if (!name)
        return 0;
    for (const char *p = name; *p; p++)
        if (!isspace((unsigned char)*p))
            return 1;
    return 0;
}

void api_lowercase(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

int api_load_device(api_call *call, store_role min, store_device *d)
{
    if (api_authenticate(call))
        return 1;
    int rc = aaa_device_access(call->db, &call->who, call->params[0], min, d);
    if (rc) {
        api_reply_err(call, rc, NULL);
        return 1;
    }
    return api_enter_org(call, d->org_id);
}

json_t *api_user_json(const store_user *u)
{
    return json_pack("{s:s,s:s,s:b,s:b,s:I}", "id", u->id, "email", u->email, "superadmin",
                     u->superadmin, "disabled", u->disabled, "created_at",
                     (json_int_t)u->created_at);
}

json_t *api_org_json(const store_org *o)
{
    return json_pack("{s:s,s:s,s:o,s:I}", "id", o->id, "name", o->name, "parent_id",
                     o->parent_id[0] ? json_string(o->parent_id) : json_null(), "created_at",
                     (json_int_t)o->created_at);
}

json_t *api_device_json(const store_device *d)
{
    json_error_t jerr;
    json_t *attrs = json_loads(d->attributes[0] ? d->attributes : "{}", 0, &jerr);
    if (!json_is_object(attrs)) {  /* never written so; shown empty rather than failing */
        json_decref(attrs);
        attrs = json_object();
    }
    return json_pack("{s:s,s:s,s:s,s:s,s:b,s:I,s:o,s:o,s:o}", "id", d->id, "org_id", d->org_id,
                     "name", d->name, "description", d->description, "disabled", d->disabled,
                     "created_at", (json_int_t)d->created_at, "attributes", attrs, "last_seen",
                     d->last_seen ? json_integer(d->last_seen) : json_null(), "last_protocol",
                     d->last_protocol[0] ? json_string(d->last_protocol) : json_null());
}
