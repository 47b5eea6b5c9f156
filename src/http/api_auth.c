/* api_auth.c — sign in, sign out, who am I. */
#include "aaa/secret.h"
#include "aaa/sessions.h"
#include "aaa/users.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "http/api_call.h"
#include "http/api_page.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define CSRF_HEADER "X-CSRF-Token"

/* Answers 429 saying how long the attempt must wait. */
static void reply_throttled(api_call *call, int64_t wait)
{
    long long secs = (long long)((wait + 999) / 1000);
    char msg[128];
    snprintf(msg, sizeof msg, "too many failed sign-ins; try again in %lld second%s", secs,
             secs == 1 ? "" : "s");
    api_reply_error(call, 429, "too_many_attempts", msg);
    snprintf(call->extra_headers, sizeof call->extra_headers, "Retry-After: %lld\r\n", secs);
}

static json_t *login_answer(const aaa_principal *me, const char *token)
{
    return json_pack("{s:s,s:I,s:s,s:s,s:o}", "token", token, "expires_at",
                     (json_int_t)me->session.expires_at, "csrf", me->session.csrf,
                     "csrf_header", CSRF_HEADER, "user", api_user_json(&me->user));
}

static void reply_signed_in(api_call *call, const aaa_principal *me, const char *token)
{
    int64_t ttl = me->session.expires_at - me->session.created_at;
    api_reply_json(call, 200, login_answer(me, token));
    snprintf(call->extra_headers, sizeof call->extra_headers,
             "Set-Cookie: ss_session=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s\r\n"
             "Cache-Control: no-store\r\n",
             token, (long long)(ttl / 1000), call->req->tls ? "; Secure" : "");
}

/* The person signing in is not the caller of this request: call->who stays
 * NONE, so the request is accounted to no one, as before the session. */
void api_login(api_call *call)
{
    json_t *body = api_body_object(call);
    if (!body)
        return;
    int bad = 0;
    const char *email = api_json_string(body, "email", SS_EMAIL_MAX, &bad);
    const char *password = api_json_string(body, "password", SS_PASSWORD_MAX, &bad);
    if (bad || !email || !password) {
        json_decref(body);
        api_reply_error(call, 400, "bad_request", "email and password are required strings");
        return;
    }
    aaa_sign_in_req in = {email, password, call->req->peer, call->app->session_ttl_ms,
                          call->now_ms};
    aaa_principal me;
    char token[SECRET_TEXT_MAX];
    int64_t wait = 0;
    int rc = aaa_sign_in(call->db, call->app->logins, &in, &me, token, &wait);
    json_decref(body);
    if (rc == SS_BUSY)
        reply_throttled(call, wait);
    else if (rc == SS_AUTH)
        api_reply_error(call, 401, "invalid_credentials", "wrong email or password");
    else if (rc)
        api_reply_store_error(call, rc);
    else
        reply_signed_in(call, &me, token);
    sodium_memzero(token, sizeof token);
}

/* A session delete the full disk had no room for (SS_FULL, store.h) is in
 * force on this server but not saved: a restart before space returns
 * would bring the sessions back, so it is not acknowledged as done. */
static void reply_end_unsaved(api_call *call, const char *what)
{
    char msg[320];
    snprintf(msg, sizeof msg,
             "the disk is full: %s ended on this server now, but this could not be saved; it is "
             "saved once space is freed, and if the server restarts before then it may work "
             "again: end it again after such a restart",
             what);
    api_reply_error(call, 503, "store_unavailable", msg);
}

/* A new password the full disk had no room for: nothing changed, and the
 * answer must not read as if it had (the old password still signs in). */
static void reply_password_unchanged(api_call *call)
{
    api_reply_error(call, 503, "store_unavailable",
                    "the disk is full: the password is not changed and no session was ended; "
                    "change it again once space is freed");
}

void api_logout(api_call *call)
{
    if (api_require_user(call))
        return;
    int rc = aaa_sign_out(call->db, &call->who);
    if (rc == 0 || rc == SS_FULL)
        aaa_revoke(api_aaa(call), call->who.session.id);  /* its live streams end */
    if (rc == SS_FULL) {
        call->signed_out = 1;
        reply_end_unsaved(call, "the session is");
        return;
    }
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    call->signed_out = 1;
    api_reply_empty(call);
    snprintf(call->extra_headers, sizeof call->extra_headers,
             "Set-Cookie: ss_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0\r\n");
}

static int add_membership(void *ctx, const char *org_id, store_role role)
{
    json_array_append_new(ctx, json_pack("{s:s,s:s}", "org_id", org_id, "role",
                                         aaa_role_name(role)));
    return 0;
}

void api_me(api_call *call)
{
    if (api_require_user(call))
        return;
    json_t *memberships = json_array();
    int rc = store_membership_list(call->db, call->who.user.id, add_membership, memberships);
    if (rc) {
        json_decref(memberships);
        api_reply_store_error(call, rc);
        return;
    }
    json_t *me = api_user_json(&call->who.user);
    json_object_set_new(me, "memberships", memberships);
    json_object_set_new(me, "user", api_user_json(&call->who.user));
    /* The web app signed in by its cookie finds its CSRF token here after
     * a reload: only a page of our own origin can read this answer. */
    if (call->via_cookie)
        json_object_set_new(me, "csrf", json_string(call->who.session.csrf));
    api_reply_json(call, 200, me);
}

static void reply_weak_password(api_call *call)
{
    api_reply_error(call, 400, "weak_password",
                    "new_password is required and has 12 to 1024 characters");
}

/* The answer to a password set by its owner or the superadmin: rc from
 * aaa/users, `ended` when sessions were ended, `what` what the 503 says is
 * in force though not saved. */
static void reply_password_set(api_call *call, int rc, int ended, const char *what)
{
    if (rc == SS_INVAL)
        reply_weak_password(call);
    else if (rc == SS_FULL && ended)
        reply_end_unsaved(call, what);
    else if (rc == SS_FULL)
        reply_password_unchanged(call);
    else if (rc)
        api_reply_store_error(call, rc);
    else
        api_reply_empty(call);
}

void api_me_password(api_call *call)
{
    if (api_require_user(call))
        return;
    json_t *body = api_body_object(call);
    if (!body)
        return;
    int bad = 0, bad_new = 0;
    const char *current = api_json_string(body, "current_password", SS_PASSWORD_MAX, &bad);
    const char *fresh = api_json_string(body, "new_password", SS_PASSWORD_MAX, &bad_new);
    int others_ended = 0;
    int rc = aaa_user_change_password(api_aaa(call), bad ? NULL : current,
                                      bad_new ? NULL : fresh, &others_ended);
    json_decref(body);
    if (others_ended) {
        memcpy(call->ended_user, call->who.user.id, sizeof call->ended_user);
        call->ended_user_keeps_own = 1;
    }
    if (rc == SS_FORBIDDEN)
        api_reply_error(call, 403, "wrong_password", "current_password is not right");
    else
        reply_password_set(call, rc, others_ended,
                           "the password is changed and the other sessions are");
}

typedef struct session_list {
    api_call *call;
    api_page page;
} session_list;

/* Sessions come newest first, then by id descending
 * (store_session_list_user). */
static int append_session(void *ctx, const store_session *s)
{
    session_list *sl = ctx;
    json_t *key = json_pack("[I,s]", (json_int_t)s->created_at, s->id);
    if (!api_page_after(&sl->page, key, "--")) {
        json_decref(key);
        return 0;
    }
    int current = strcmp(s->id, sl->call->who.session.id) == 0;
    return api_page_add(&sl->page, json_pack("{s:s,s:s,s:I,s:I,s:I,s:b}", "id", s->id, "address",
                                              s->peer, "created_at", (json_int_t)s->created_at,
                                              "last_seen_at", (json_int_t)s->last_seen_at,
                                              "expires_at", (json_int_t)s->expires_at, "current",
                                              current), key);
}

void api_me_sessions(api_call *call)
{
    session_list sl = {call};
    if (api_require_user(call) ||
        api_page_begin(call, SS_PAGE_LIMIT_DEFAULT, SS_PAGE_LIMIT_MAX, "is", &sl.page))
        return;
    int rc =
        store_session_list_user(call->db, call->who.user.id, call->now_ms, append_session, &sl);
    api_page_reply(call, rc, &sl.page);
}

void api_me_session_delete(api_call *call)
{
    if (api_require_user(call))
        return;
    int rc = aaa_session_end(call->db, &call->who, call->params[0]);
    if (rc == 0 || rc == SS_FULL) {
        snprintf(call->ended_login, sizeof call->ended_login, "%s", call->params[0]);
        aaa_revoke(api_aaa(call), call->params[0]);  /* its live streams end */
    }
    if (rc == SS_FULL) {
        reply_end_unsaved(call, "the session is");
        return;
    }
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    api_reply_empty(call);
}

/* Superadmin acting on a user named in the path; answers on failure. */
static int load_user_as_superadmin(api_call *call, store_user *u)
{
    if (api_require_user(call))
        return 1;
    if (aaa_require_superadmin(&call->who)) {
        api_reply_error(call, 403, "forbidden", "only the superadmin manages users");
        return 1;
    }
    int rc = secret_id_valid(call->params[0]) ? store_user_get(call->db, call->params[0], u)
                                              : SS_NOT_FOUND;
    if (rc)
        api_reply_store_error(call, rc);
    return rc;
}

/* The sessions the change ended are the accounting's to close. */
static void note_ended_user(api_call *call, const store_user *u, int sessions_ended)
{
    if (sessions_ended)
        snprintf(call->ended_user, sizeof call->ended_user, "%s", u->id);
}

void api_user_patch(api_call *call)
{
    store_user u;
    if (load_user_as_superadmin(call, &u))
        return;
    json_t *body = api_body_object(call);
    if (!body)
        return;
    json_t *disabled = json_object_get(body, "disabled");
    int ok = json_is_boolean(disabled);
    int value = json_is_true(disabled);
    json_decref(body);
    if (!ok) {
        api_reply_error(call, 400, "bad_request", "disabled (a boolean) is required");
        return;
    }
    int ended = 0;
    int rc = aaa_user_set_disabled(api_aaa(call), &u, value, &ended);
    note_ended_user(call, &u, ended);
    if (rc == SS_CONFLICT)
        api_reply_error(call, 409, "conflict", "the superadmin cannot disable itself");
    else if (rc == SS_FULL && ended)
        reply_end_unsaved(call, "the user is disabled and its sessions are");
    else if (rc)
        api_reply_store_error(call, rc);
    else
        api_reply_json(call, 200, api_user_json(&u));
}

void api_user_password(api_call *call)
{
    store_user u;
    if (load_user_as_superadmin(call, &u))
        return;
    json_t *body = api_body_object(call);
    if (!body)
        return;
    int bad = 0;
    const char *fresh = api_json_string(body, "new_password", SS_PASSWORD_MAX, &bad);
    int ended = 0;
    int rc = aaa_user_reset_password(api_aaa(call), &u, bad ? NULL : fresh, &ended);
    json_decref(body);
    note_ended_user(call, &u, ended);
    reply_password_set(call, rc, ended, "the password is changed and the user's sessions are");
}

/* Lifts the account's sign-in throttle (docs/operations.md) without
 * touching its password: for the person a guesser keeps waiting. */
void api_user_unlock(api_call *call)
{
    store_user u;
    if (load_user_as_superadmin(call, &u))
        return;
    int rc = aaa_user_unlock(api_aaa(call), &u);
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    api_reply_empty(call);
}

#define HEALTH_CONTENT_TYPE "text/plain; charset=utf-8"
#define HEALTH_DOWN "the store does not answer"

/* The body of a healthy /healthz: still 200 on a full disk, since reads
 * and sign-in are served (SPEC §4). */
static const char *health_text(store *st)
{
    return store_full(st) ? "ok: store full, new data refused\n" : "ok\n";
}

/* Without the housekeeping thread's state (a server without it): a ping
 * on a worker. */
void api_healthz(api_call *call)
{
    if (store_ping(call->db)) {
        api_reply_error(call, 503, "store_unavailable", HEALTH_DOWN);
        return;
    }
    buf_free(&call->body);
    buf_append_str(&call->body, health_text(call->app->store));
    call->status = 200;
    call->content_type = HEALTH_CONTENT_TYPE;
}

void api_healthz_local(api_ctx *app, http_request *req)
{
    if (!store_maint_healthy(app->maint, clock_now_ms())) {
        http_respond_error(req, 503, "store_unavailable", HEALTH_DOWN, NULL);
        return;
    }
    const char *text = health_text(app->store);
    http_respond(req, 200, HEALTH_CONTENT_TYPE, text, strlen(text), NULL);
}
