/* api_common.c — answers, authentication and role checks shared by every
 * resource handler on the worker pool. */
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
/* The org tree is shallow; a walk longer than this is a broken tree. */
#define API_ORG_WALK_MAX 64

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

void api_reply_list(api_call *call, int rc, json_t *value)
{
    if (rc) {
        json_decref(value);
        api_reply_store_error(call, rc);
        return;
    }
    api_reply_json(call, 200, value);
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
    size_t len = strlen(call->session.csrf);
    return csrf && strlen(csrf) == len && sodium_memcmp(csrf, call->session.csrf, len) == 0;
}

static int64_t session_idle_ms(const api_call *call)
{
    return call->app->session_idle_ms ? call->app->session_idle_ms : SS_SESSION_IDLE_MS;
}

/* Loads the session and its user; ends a session that sat idle too long. */
static int load_session(api_call *call, const uint8_t hash[SS_SECRET_HASH_BYTES])
{
    int rc = store_session_get(call->db, hash, call->now_ms, &call->session);
    if (rc == 0 && call->now_ms - call->session.last_seen_at > session_idle_ms(call)) {
        store_session_delete(call->db, hash);
        rc = SS_NOT_FOUND;
    }
    if (rc == 0)
        rc = store_user_get(call->db, call->session.user_id, &call->user);
    if (rc == 0 && call->user.disabled)
        rc = SS_NOT_FOUND;
    /* Touch often enough that a session in use never looks idle. */
    int64_t touch_every = session_idle_ms(call) / 4;
    if (touch_every > SS_SESSION_TOUCH_MS)
        touch_every = SS_SESSION_TOUCH_MS;
    if (rc == 0 && call->now_ms - call->session.last_seen_at > touch_every)
        store_session_touch(call->db, hash, call->now_ms);
    return rc;
}

static int load_key(api_call *call, const uint8_t hash[SS_SECRET_HASH_BYTES])
{
    return store_apikey_get_by_hash(call->db, hash, &call->key);
}

int api_authenticate(api_call *call)
{
    size_t len = 0;
    const char *token = api_find_credential(call->req, &len, &call->via_cookie);
    if (!token || len == 0 || len >= SECRET_TEXT_MAX) {
        api_reply_error(call, 401, "unauthenticated", "sign in first (Authorization: Bearer)");
        return 1;
    }
    uint8_t hash[SS_SECRET_HASH_BYTES];
    secret_hash(token, len, hash);
    size_t plen = strlen(SECRET_PREFIX_APIKEY);
    int is_key = !call->via_cookie && len > plen && strncmp(token, SECRET_PREFIX_APIKEY, plen) == 0 &&
                 token[plen] == '_';
    int rc = is_key ? load_key(call, hash) : load_session(call, hash);
    if (rc == SS_NOT_FOUND) {
        api_reply_error(call, 401, "unauthenticated",
                        is_key ? "the API key is not valid" : "the session has ended; sign in again");
        return 1;
    }
    if (rc) {
        api_reply_store_error(call, rc);
        return 1;
    }
    call->principal = is_key ? API_PRINCIPAL_KEY : API_PRINCIPAL_USER;
    if (!csrf_ok(call)) {
        api_reply_error(call, 403, "csrf_failed", "the X-CSRF-Token header is missing or wrong");
        return 1;
    }
    return 0;
}

void api_revoke(api_call *call, const char *principal_id)
{
    if (call->app->conns)
        conn_registry_revoke(call->app->conns, principal_id);
    const char *self = call->principal == API_PRINCIPAL_KEY    ? call->key.id
                       : call->principal == API_PRINCIPAL_USER ? call->user.id
                                                               : "";
    if (self[0] && strcmp(self, principal_id) == 0)
        call->closes_connection = 1;
}

int api_require_user(api_call *call)
{
    if (api_authenticate(call))
        return 1;
    if (call->principal == API_PRINCIPAL_USER)
        return 0;
    api_reply_error(call, 403, "forbidden", "this endpoint is for people signed in, not API keys");
    return 1;
}

/* Key org scope: 1 when org_id is the key's org or one of its descendants. */
static int org_within(api_call *call, const char *org_id, const char *ancestor, int *err)
{
    char id[SS_ID_LEN + 1];
    snprintf(id, sizeof id, "%s", org_id);
    for (int depth = 0; depth < API_ORG_WALK_MAX && id[0]; depth++) {
        if (strcmp(id, ancestor) == 0)
            return 1;
        store_org org;
        *err = store_org_get(call->db, id, &org);
        if (*err)
            return 0;
        memcpy(id, org.parent_id, sizeof id);
    }
    return 0;
}

static store_role key_role(unsigned scopes)
{
    if (scopes & STORE_SCOPE_MANAGE)
        return STORE_ROLE_ADMIN;
    if (scopes & STORE_SCOPE_DATA_READ)
        return STORE_ROLE_VIEWER;
    return STORE_ROLE_NONE;
}

/* The key's role in the org: none outside the org it belongs to and that
 * org's descendants. */
static int key_role_in(api_call *call, const store_apikey *key, const char *org_id, store_role *r,
                       int *member)
{
    int rc = 0;
    *member = org_within(call, org_id, key->org_id, &rc);
    *r = *member ? key_role(key->scopes) : STORE_ROLE_NONE;
    return rc;
}

/* The person's role in the org: SS_NOT_FOUND when the org does not exist. */
static int user_role_in(api_call *call, const store_user *user, const char *org_id, store_role *r,
                        int *member)
{
    store_org org;
    *member = 1;
    if (user->superadmin) {
        *r = STORE_ROLE_OWNER;
        return store_org_get(call->db, org_id, &org);
    }
    int rc = store_role_effective(call->db, user->id, org_id, r);
    *member = *r != STORE_ROLE_NONE;
    return rc;
}

/* The caller's role in the org: SS_NOT_FOUND when the org does not exist. */
static int effective_role(api_call *call, const char *org_id, store_role *r, int *member)
{
    if (call->principal == API_PRINCIPAL_KEY)
        return key_role_in(call, &call->key, org_id, r, member);
    return user_role_in(call, &call->user, org_id, r, member);
}

int api_actor_role(api_call *call, const char *actor, const char *org_id, store_role *out)
{
    static const char user_kind[] = "user:", key_kind[] = "apikey:";
    int member = 0, rc = SS_NOT_FOUND;
    *out = STORE_ROLE_NONE;
    if (strncmp(actor, user_kind, sizeof user_kind - 1) == 0) {
        store_user u;
        rc = store_user_get(call->db, actor + sizeof user_kind - 1, &u);
        if (rc == 0 && !u.disabled)
            rc = user_role_in(call, &u, org_id, out, &member);
    } else if (strncmp(actor, key_kind, sizeof key_kind - 1) == 0) {
        store_apikey k;
        rc = store_apikey_get(call->db, actor + sizeof key_kind - 1, &k);
        if (rc == 0)
            rc = key_role_in(call, &k, org_id, out, &member);
    }
    if (rc == 0 && !member)
        *out = STORE_ROLE_NONE;
    return rc == SS_NOT_FOUND ? 0 : rc;
}

const char *api_grant_refusal(store_role mine, store_role from, store_role to)
{
    if (to > mine)
        return "you cannot grant a role above your own";
    if ((from == STORE_ROLE_OWNER || to == STORE_ROLE_OWNER) && mine < STORE_ROLE_OWNER)
        return "only an owner manages owners";
    return NULL;
}

int api_require_role(api_call *call, const char *org_id, store_role min, store_role *role)
{
    store_role r = STORE_ROLE_NONE;
    int member = 0;
    int rc = secret_id_valid(org_id) ? effective_role(call, org_id, &r, &member) : SS_NOT_FOUND;
    if (rc == SS_NOT_FOUND || (rc == 0 && !member)) {
        api_reply_error(call, 404, "not_found", "no such resource");
        return 1;
    }
    if (rc) {
        api_reply_store_error(call, rc);
        return 1;
    }
    if (r < min) {
        api_reply_error(call, 403, "forbidden",
                        call->principal == API_PRINCIPAL_KEY ? "the API key's scopes do not allow this"
                                                             : "your role does not allow this");
        return 1;
    }
    if (role)
        *role = r;
    snprintf(call->acct_org, sizeof call->acct_org, "%s", org_id);
    return api_gate_org(call, org_id);
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
    store_audit a = {0};
    a.ts = call->now_ms;
    snprintf(a.org_id, sizeof a.org_id, "%s", org_id ? org_id : "");
    if (call->principal == API_PRINCIPAL_KEY) {
        snprintf(a.actor, sizeof a.actor, "apikey:%s", call->key.id);
        snprintf(a.actor_name, sizeof a.actor_name, "%s", call->key.name);
    } else {
        snprintf(a.actor, sizeof a.actor, "user:%s", call->user.id);
        snprintf(a.actor_name, sizeof a.actor_name, "%s", call->user.email);
    }
    snprintf(a.action, sizeof a.action, "%s", action);
    snprintf(a.target, sizeof a.target, "%s", target);
    snprintf(a.addr, sizeof a.addr, "%s", call->req->peer);
    if (!detail)
        detail = json_object();
    audit_detail_text(detail, a.detail, sizeof a.detail);
    json_decref(detail);
    int rc = store_audit_append(call->db, &a);
    if (rc)
        log_error("audit", "cannot record %s on %s: %s", action, target, ss_strerror(rc));
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
    int rc = secret_id_valid(call->params[0]) ? store_device_get(call->db, call->params[0], d)
                                              : SS_NOT_FOUND;
    if (rc) {
        api_reply_store_error(call, rc);
        return 1;
    }
    return api_require_role(call, d->org_id, min, NULL);
}

static const char *const role_names[] = {"none", "viewer", "editor", "admin", "owner"};

const char *api_role_name(store_role role)
{
    return role >= STORE_ROLE_NONE && role <= STORE_ROLE_OWNER ? role_names[role] : "none";
}

int api_role_parse(const char *name, store_role *out)
{
    for (int i = STORE_ROLE_VIEWER; i <= STORE_ROLE_OWNER; i++) {
        if (strcmp(name, role_names[i]) == 0) {
            *out = (store_role)i;
            return SS_OK;
        }
    }
    return SS_INVAL;
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
    return json_pack("{s:s,s:s,s:s,s:s,s:b,s:I}", "id", d->id, "org_id", d->org_id, "name",
                     d->name, "description", d->description, "disabled", d->disabled,
                     "created_at", (json_int_t)d->created_at);
}
