/* sessions.c — sign in (throttle, password, new session), sign out. */
#include "aaa/sessions.h"

#include "aaa/password.h"
#include "core/err.h"
#include "core/limits.h"
#include "core/log.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* Loads the account signing in: 1 found, 0 no such email, or a store
 * error. The throttle needs its last lift before any password is checked. */
static int load_person(store_conn *db, const char *email, aaa_principal *out)
{
    memset(out, 0, sizeof *out);
    int rc = store_user_get_by_email(db, email, &out->user);
    if (rc == SS_NOT_FOUND)
        memset(&out->user, 0, sizeof out->user);
    if (rc == 0)
        out->kind = AAA_PRINCIPAL_PERSON;
    return rc == SS_NOT_FOUND ? 0 : rc == 0 ? 1 : rc;
}

/* Checks the password, spending the same Argon2 time whether or not the
 * person exists. 1 when they may sign in. */
static int check_credentials(const aaa_principal *p, int found, const char *password)
{
    if (!found) {
        password_verify(password, password_dummy_hash());
        return 0;
    }
    int ok = password_verify(password, p->user.pw_hash);
    return ok && !p->user.disabled;
}

static int start_session(store_conn *db, const aaa_sign_in_req *in, aaa_principal *p,
                         char token[SECRET_TEXT_MAX])
{
    store_session *s = &p->session;
    int64_t ttl = in->ttl_ms ? in->ttl_ms : SS_SESSION_TTL_MS;
    memset(s, 0, sizeof *s);
    secret_new(SECRET_PREFIX_SESSION, token, s->token_hash);
    secret_new_id(s->id);
    memcpy(s->user_id, p->user.id, sizeof s->user_id);
    secret_random_hex(s->csrf, SS_SECRET_BYTES);
    snprintf(s->peer, sizeof s->peer, "%s", in->addr);
    s->created_at = in->now_ms;
    s->last_seen_at = in->now_ms;
    s->expires_at = in->now_ms + ttl;
    int rc = store_session_create(db, s);
    if (rc)
        sodium_memzero(token, SECRET_TEXT_MAX);
    return rc;
}

int aaa_sign_in(store_conn *db, throttle *logins, const aaa_sign_in_req *in, aaa_principal *out,
                char token[SECRET_TEXT_MAX], int64_t *retry_ms)
{
    char email[SS_EMAIL_MAX + 1];
    snprintf(email, sizeof email, "%s", in->email);
    for (char *c = email; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    *retry_ms = 0;
    int found = load_person(db, email, out);
    if (found < 0)
        return found;
    *retry_ms = throttle_login_wait(logins, email, in->addr, out->user.login_unlocked_at,
                                    in->now_ms);
    if (*retry_ms > 0)
        return SS_BUSY;
    *retry_ms = 0;
    if (!check_credentials(out, found, in->password)) {
        throttle_login_failed(logins, email, in->addr, in->now_ms);
        log_info("auth", "failed sign-in from %s", in->addr);
        return SS_AUTH;
    }
    throttle_login_ok(logins, email);
    return start_session(db, in, out, token);
}

int aaa_sign_out(store_conn *db, const aaa_principal *p)
{
    if (p->kind != AAA_PRINCIPAL_PERSON)
        return SS_FORBIDDEN;
    int rc = store_session_delete(db, p->session.token_hash);
    return rc == SS_NOT_FOUND ? 0 : rc;
}

int aaa_session_end(store_conn *db, const aaa_principal *p, const char *session_id)
{
    if (p->kind != AAA_PRINCIPAL_PERSON)
        return SS_FORBIDDEN;
    if (!secret_id_valid(session_id))
        return SS_NOT_FOUND;
    return store_session_delete_id(db, p->user.id, session_id);
}
