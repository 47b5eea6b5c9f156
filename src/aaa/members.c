/* members.c — members and invitations of an organisation. */
#include "aaa/members.h"

#include "aaa/access.h"
#include "aaa/password.h"
#include "aaa/secret.h"
#include "core/err.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* SPEC §2: the superadmin adds directly, and so does an admin adding
 * someone already a member within their reach (their existence is known to
 * that admin); everyone else is invited. */
static int adds_directly(aaa_ctx *cx, const char *email, int *direct)
{
    store_user u;
    int rc = store_user_get_by_email(cx->db, email, &u);
    *direct = aaa_principal_superadmin(cx->who);
    if (*direct || (rc && rc != SS_NOT_FOUND))
        return rc == SS_NOT_FOUND ? 0 : rc;
    /* asked for an unknown email too (of nobody), so both take one query */
    int key = cx->who->kind == AAA_PRINCIPAL_KEY;
    int known = 0;
    int err = store_user_in_reach(cx->db, key ? NULL : cx->who->user.id,
                                  key ? cx->who->key.org_id : NULL, rc ? "" : u.id, &known);
    *direct = rc == 0 && known;
    return err;
}

/* Finds the account, or creates it with the password given. */
static int find_or_create_user(aaa_ctx *cx, const char *email, const char *password,
                               aaa_member_added *out)
{
    store_user *u = &out->user;
    int rc = store_user_get_by_email(cx->db, email, u);
    if (rc != SS_NOT_FOUND)
        return rc;
    if (!password) {
        out->password_missing = 1;
        return SS_INVAL;
    }
    memset(u, 0, sizeof *u);
    secret_new_id(u->id);
    snprintf(u->email, sizeof u->email, "%s", email);
    u->created_at = cx->now_ms;
    if (password_hash(password, u->pw_hash))
        return SS_INVAL;
    return store_user_create(cx->db, u);
}

/* Refuses (SS_CONFLICT) to take the owner role from the org's last owner.
 * The store checks it again inside the change itself, so a change racing
 * another one's demotion is answered alike. */
static int check_last_owner(aaa_ctx *cx, const char *org_id, store_role from, store_role to)
{
    if (from != STORE_ROLE_OWNER || to == STORE_ROLE_OWNER)
        return 0;
    int64_t owners = 0;
    int rc = store_member_count(cx->db, org_id, STORE_ROLE_OWNER, &owners);
    return rc ? rc : owners <= 1 ? SS_CONFLICT : 0;
}

static int change_role(aaa_ctx *cx, const char *org_id, store_role mine, const store_user *u,
                       store_role from, store_role to, const char *action)
{
    if (aaa_grant_refusal(mine, from, to))
        return SS_FORBIDDEN;
    int rc = check_last_owner(cx, org_id, from, to);
    if (rc == 0)
        rc = store_membership_change(cx->db, org_id, u->id, to);
    if (rc)
        return rc;
    /* A live stream held by the role (here or in an org below) ends now
     * if the role no longer lets it read. */
    aaa_revoke_access(cx, u->id);
    char target[64];
    snprintf(target, sizeof target, "user:%s", u->id);
    aaa_audit(cx, org_id, action, target,
              json_pack("{s:s,s:s,s:s}", "email", u->email, "role", aaa_role_name(to),
                        "previous_role", aaa_role_name(from)));
    return 0;
}

static int add_directly(aaa_ctx *cx, const char *org_id, store_role mine, const char *email,
                        const char *password, store_role role, aaa_member_added *out)
{
    out->previous = STORE_ROLE_NONE;
    int rc = find_or_create_user(cx, email, password, out);
    if (rc == 0)
        rc = store_membership_get(cx->db, org_id, out->user.id, &out->previous);
    if (rc == 0)
        rc = change_role(cx, org_id, mine, &out->user, out->previous, role, "member.add");
    return rc;
}

/* Every step here runs alike whether or not the email has an account: the
 * same checks, one Argon2 hash of the password given (kept only for a new
 * account), one transaction that invites. What differs is one row insert
 * inside that transaction. */
static int invite(aaa_ctx *cx, const char *org_id, store_role mine, const char *email,
                  const char *password, store_role role, aaa_member_added *out)
{
    char hash[STORE_PW_HASH_MAX];
    out->invited = 1;
    if (aaa_grant_refusal(mine, STORE_ROLE_NONE, role))
        return SS_FORBIDDEN;
    if (!password || password_hash(password, hash))
        return SS_INVAL;
    store_user fresh = {.created_at = cx->now_ms};
    secret_new_id(fresh.id);
    snprintf(fresh.email, sizeof fresh.email, "%s", email);
    snprintf(fresh.pw_hash, sizeof fresh.pw_hash, "%s", hash);
    sodium_memzero(hash, sizeof hash);
    store_invitation *inv = &out->invitation;
    memset(inv, 0, sizeof *inv);
    inv->role = role;
    inv->created_at = cx->now_ms;
    secret_new_id(inv->id);
    snprintf(inv->org_id, sizeof inv->org_id, "%s", org_id);
    aaa_principal_actor(cx->who, inv->invited_by, sizeof inv->invited_by);
    int rc = store_invitation_invite(cx->db, &fresh, inv);
    sodium_memzero(fresh.pw_hash, sizeof fresh.pw_hash);
    if (rc)
        return rc;
    snprintf(inv->email, sizeof inv->email, "%s", email);
    char target[64];
    snprintf(target, sizeof target, "invitation:%s", inv->id);
    aaa_audit(cx, org_id, "member.invite", target,
              json_pack("{s:s,s:s}", "email", email, "role", aaa_role_name(role)));
    return 0;
}

int aaa_member_add(aaa_ctx *cx, const char *org_id, store_role mine, const char *email,
                   const char *password, store_role role, aaa_member_added *out)
{
    memset(out, 0, sizeof *out);
    int direct = 0;
    int rc = adds_directly(cx, email, &direct);
    if (rc)
        return rc;
    return direct ? add_directly(cx, org_id, mine, email, password, role, out)
                  : invite(cx, org_id, mine, email, password, role, out);
}

int aaa_member_load(aaa_ctx *cx, const char *org_id, const char *user_id, store_user *u,
                    store_role *role)
{
    int rc = secret_id_valid(user_id) ? store_user_get(cx->db, user_id, u) : SS_NOT_FOUND;
    if (rc == 0)
        rc = store_membership_get(cx->db, org_id, u->id, role);
    if (rc == 0 && *role == STORE_ROLE_NONE)
        rc = SS_NOT_FOUND;
    return rc;
}

int aaa_member_set_role(aaa_ctx *cx, const char *org_id, store_role mine, const store_user *u,
                        store_role from, store_role to)
{
    return change_role(cx, org_id, mine, u, from, to,
                       to == STORE_ROLE_NONE ? "member.remove" : "member.role");
}

int aaa_invitation_load(aaa_ctx *cx, const char *id, const char *org_id, const char *user_id,
                        store_invitation *inv)
{
    int rc = secret_id_valid(id) ? store_invitation_get(cx->db, id, inv) : SS_NOT_FOUND;
    if (rc == 0 && org_id && strcmp(inv->org_id, org_id) != 0)
        rc = SS_NOT_FOUND;
    if (rc == 0 && user_id && strcmp(inv->user_id, user_id) != 0)
        rc = SS_NOT_FOUND;
    return rc;
}

static void audit_invitation(aaa_ctx *cx, const char *action, const store_invitation *inv)
{
    char target[64];
    snprintf(target, sizeof target, "invitation:%s", inv->id);
    aaa_audit(cx, inv->org_id, action, target,
              json_pack("{s:s,s:s}", "email", inv->email, "role", aaa_role_name(inv->role)));
}

static int drop_invitation(aaa_ctx *cx, const store_invitation *inv, const char *action)
{
    int rc = store_invitation_delete(cx->db, inv->id);
    if (rc)
        return rc;
    audit_invitation(cx, action, inv);
    return 0;
}

int aaa_invitation_withdraw(aaa_ctx *cx, const store_invitation *inv)
{
    return drop_invitation(cx, inv, "member.uninvite");
}

int aaa_invitation_decline(aaa_ctx *cx, const store_invitation *inv)
{
    return drop_invitation(cx, inv, "member.decline");
}

/* 0 while the inviter could still invite to this role in this org; else
 * the invitation goes and the answer is SS_CONFLICT. */
static int check_inviter(aaa_ctx *cx, const store_invitation *inv)
{
    store_role mine = STORE_ROLE_NONE;
    int rc = aaa_actor_role(cx->db, inv->invited_by, inv->org_id, &mine);
    if (rc)
        return rc;
    if (mine >= STORE_ROLE_ADMIN && !aaa_grant_refusal(mine, STORE_ROLE_NONE, inv->role))
        return 0;
    rc = store_invitation_delete(cx->db, inv->id);
    if (rc && rc != SS_NOT_FOUND)
        return rc;
    audit_invitation(cx, "member.invite_void", inv);
    return SS_CONFLICT;
}

int aaa_invitation_accept(aaa_ctx *cx, store_invitation *inv)
{
    if (cx->who->kind != AAA_PRINCIPAL_PERSON)
        return SS_FORBIDDEN;
    const store_user *me = &cx->who->user;
    int rc = check_inviter(cx, inv);
    if (rc == 0)
        rc = store_invitation_accept(cx->db, inv->id, me->id, inv);
    if (rc)
        return rc;
    char target[64];
    snprintf(target, sizeof target, "user:%s", me->id);
    aaa_audit(cx, inv->org_id, "member.join", target,
              json_pack("{s:s,s:s,s:s}", "email", me->email, "role", aaa_role_name(inv->role),
                        "invitation", inv->id));
    return 0;
}
