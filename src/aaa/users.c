/* users.c — a person's account: disabled, passwords, sign-in throttle. */
#include "aaa/users.h"

#include "aaa/audit_detail.h"
#include "aaa/password.h"
#include "core/err.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

static void audit_user(aaa_ctx *cx, const char *action, const store_user *u, json_t *detail)
{
    char target[64];
    snprintf(target, sizeof target, "user:%s", u->id);
    aaa_audit(cx, "", action, target, detail);
}

/* Ends every session and live connection of the person. */
static int end_sessions(aaa_ctx *cx, const char *user_id, int *sessions_ended)
{
    int rc = store_session_delete_user(cx->db, user_id, NULL);
    if (rc == 0 || rc == SS_FULL) {
        aaa_revoke(cx, user_id);
        *sessions_ended = 1;
    }
    return rc;
}

int aaa_user_set_disabled(aaa_ctx *cx, store_user *u, int disabled, int *sessions_ended)
{
    *sessions_ended = 0;
    if (disabled && strcmp(u->id, aaa_principal_id(cx->who)) == 0)
        return SS_CONFLICT;
    int rc = store_user_set_disabled(cx->db, u->id, disabled);
    if (rc == 0 && disabled)
        rc = end_sessions(cx, u->id, sessions_ended);
    if (rc)
        return rc;
    u->disabled = disabled;
    audit_user(cx, disabled ? "user.disable" : "user.enable", u,
               json_pack("{s:s,s:b}", "email", u->email, "disabled", disabled));
    return 0;
}

int aaa_user_reset_password(aaa_ctx *cx, const store_user *u, const char *password,
                            int *sessions_ended)
{
    char hash[STORE_PW_HASH_MAX];
    *sessions_ended = 0;
    if (!password || password_hash(password, hash))
        return SS_INVAL;
    int rc = store_user_set_password(cx->db, u->id, hash);
    sodium_memzero(hash, sizeof hash);
    if (rc == 0)
        rc = end_sessions(cx, u->id, sessions_ended);
    if (rc == 0)
        rc = store_user_unlock_login(cx->db, u->id, cx->now_ms);
    if (rc)
        return rc;
    audit_user(cx, "user.password_reset", u,
               json_pack("{s:s,s:s,s:b,s:b}", "email", u->email, "password", AUDIT_SECRET_CHANGED,
                         "sessions_ended", 1, "login_throttle_lifted", 1));
    return 0;
}

int aaa_user_unlock(aaa_ctx *cx, const store_user *u)
{
    int rc = store_user_unlock_login(cx->db, u->id, cx->now_ms);
    if (rc)
        return rc;
    audit_user(cx, "user.unlock", u,
               json_pack("{s:s,s:b}", "email", u->email, "login_throttle_lifted", 1));
    return 0;
}

int aaa_user_change_password(aaa_ctx *cx, const char *current, const char *password,
                             int *others_ended)
{
    char hash[STORE_PW_HASH_MAX];
    *others_ended = 0;
    /* Only a person has a password: the union holds a user for no other kind. */
    if (cx->who->kind != AAA_PRINCIPAL_PERSON)
        return SS_FORBIDDEN;
    const store_user *me = &cx->who->user;
    if (!current || !password_verify(current, me->pw_hash))
        return SS_FORBIDDEN;
    if (!password || password_hash(password, hash))
        return SS_INVAL;
    int rc = store_user_set_password(cx->db, me->id, hash);
    sodium_memzero(hash, sizeof hash);
    if (rc)
        return rc;  /* not written (SS_FULL too): nothing changed, nothing ended */
    rc = store_session_delete_user(cx->db, me->id, cx->who->session.token_hash);
    /* SS_FULL: the delete is in force on this server, only not saved. */
    *others_ended = rc == 0 || rc == SS_FULL;
    /* Live connections signed in with the old password (an MQTT one)
     * close too; this request's own keep-alive with them. */
    if (*others_ended)
        aaa_revoke(cx, me->id);
    if (rc)
        return rc;
    audit_user(cx, "user.password", me,
               json_pack("{s:s,s:s,s:b}", "email", me->email, "password", AUDIT_SECRET_CHANGED,
                         "other_sessions_ended", 1));
    return 0;
}
