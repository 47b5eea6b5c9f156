/* api_members.c — who belongs to an organisation, with which role.
 *
 * Rules (SPEC §2): admins manage members; nobody grants a role above their
 * own; only owners grant, change or remove the owner role; the last owner
 * of an org cannot be removed or lowered. A person joins only with their
 * own consent (an invitation they accept, api_invitations.c) or by the
 * superadmin's act, and adding a person never reveals whether their email
 * has an account outside the caller's reach. A change takes effect on the
 * very next request, since every request reads roles from the store. */
#include "aaa/password.h"
#include "aaa/secret.h"
#include "core/err.h"
#include "http/api_call.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

static json_t *member_json(const store_user *u, store_role role)
{
    return json_pack("{s:s,s:s,s:s,s:b}", "user_id", u->id, "email", u->email, "role",
                     api_role_name(role), "disabled", u->disabled);
}

static int append_member(void *ctx, const store_user *u, store_role role)
{
    json_array_append_new(ctx, member_json(u, role));
    return 0;
}

void api_members_list(api_call *call)
{
    if (api_authenticate(call) || api_require_role(call, call->params[0], STORE_ROLE_ADMIN, NULL))
        return;
    json_t *list = json_array();
    int rc = store_member_list(call->db, call->params[0], append_member, list);
    api_reply_list(call, rc, list);
}

/* Creates the user with the given password, or finds the existing one.
 * Returns 0, a store error, or 1 when it answered already. */
static int find_or_create_user(api_call *call, const char *email, const char *password,
                               store_user *u)
{
    int rc = store_user_get_by_email(call->db, email, u);
    if (rc != SS_NOT_FOUND)
        return rc;
    if (!password) {
        api_reply_error(call, 400, "bad_request", "a new user needs a password");
        return 1;
    }
    memset(u, 0, sizeof *u);
    secret_new_id(u->id);
    snprintf(u->email, sizeof u->email, "%s", email);
    u->created_at = call->now_ms;
    if (password_hash(password, u->pw_hash)) {
        api_reply_error(call, 400, "weak_password", "a password has 12 to 1024 characters");
        return 1;
    }
    return store_user_create(call->db, u);
}

/* May a caller holding `mine` move a member from `from` to `to`? Answers
 * 403 and returns nonzero when not. */
static int check_grant(api_call *call, store_role mine, store_role from, store_role to)
{
    const char *refusal = api_grant_refusal(mine, from, to);
    if (refusal)
        api_reply_error(call, 403, "forbidden", refusal);
    return refusal != NULL;
}

/* Refuses (409) to take the owner role from the org's last owner. */
static int check_last_owner(api_call *call, const char *org_id, store_role from, store_role to)
{
    if (from != STORE_ROLE_OWNER || to == STORE_ROLE_OWNER)
        return 0;
    int64_t owners = 0;
    int rc = store_member_count(call->db, org_id, STORE_ROLE_OWNER, &owners);
    if (rc) {
        api_reply_store_error(call, rc);
        return 1;
    }
    if (owners <= 1) {
        api_reply_error(call, 409, "last_owner", "an organisation keeps at least one owner");
        return 1;
    }
    return 0;
}

/* The store re-checks the last owner inside the change itself: a request
 * racing another one's demotion is answered like the early check would. */
static int reply_change_error(api_call *call, int rc)
{
    if (rc == SS_CONFLICT)
        api_reply_error(call, 409, "last_owner", "an organisation keeps at least one owner");
    else if (rc)
        api_reply_store_error(call, rc);
    return rc;
}

static void audit_member(api_call *call, const char *action, const store_user *u,
                         store_role role, store_role before)
{
    char target[64];
    snprintf(target, sizeof target, "user:%s", u->id);
    api_audit(call, call->params[0], action, target,
              json_pack("{s:s,s:s,s:s}", "email", u->email, "role", api_role_name(role),
                        "previous_role", api_role_name(before)));
}

/* SPEC §2: a person who has an account joins only with their consent or
 * the superadmin's act, and the answer never reveals whether an email has
 * an account outside the caller's reach. So the superadmin adds directly,
 * and so does an admin adding someone already a member within their reach
 * (their existence is known to that admin); everyone else is invited. */
static int adds_directly(api_call *call, const char *email, store_user *u, int *direct)
{
    int rc = store_user_get_by_email(call->db, email, u);
    *direct = call->principal == API_PRINCIPAL_USER && call->user.superadmin;
    if (*direct || (rc && rc != SS_NOT_FOUND))
        return rc == SS_NOT_FOUND ? 0 : rc;
    /* asked for an unknown email too (of nobody), so both take one query */
    int key = call->principal == API_PRINCIPAL_KEY;
    int known = 0;
    int err = store_user_in_reach(call->db, key ? NULL : call->user.id,
                                  key ? call->key.org_id : NULL, rc ? "" : u->id, &known);
    *direct = rc == 0 && known;
    return err;
}

static void add_directly(api_call *call, store_role mine, const char *email, const char *password,
                         store_role role)
{
    store_user u;
    store_role current = STORE_ROLE_NONE;
    int rc = find_or_create_user(call, email, password, &u);
    if (rc == 1)
        return;
    if (rc == 0)
        rc = store_membership_get(call->db, call->params[0], u.id, &current);
    if (rc == 0 && (check_grant(call, mine, current, role) ||
                    check_last_owner(call, call->params[0], current, role)))
        return;
    if (rc == 0)
        rc = store_membership_change(call->db, call->params[0], u.id, role);
    if (reply_change_error(call, rc))
        return;
    audit_member(call, "member.add", &u, role, current);
    api_reply_json(call, 201, member_json(&u, role));
}

static void actor_id(const api_call *call, char *out, size_t cap)
{
    if (call->principal == API_PRINCIPAL_KEY)
        snprintf(out, cap, "apikey:%s", call->key.id);
    else
        snprintf(out, cap, "user:%s", call->user.id);
}

/* Every step here runs alike whether or not the email has an account: the
 * same checks, one Argon2 hash of the password given (kept only for a new
 * account), one transaction that invites, one answer. What differs is one
 * row insert inside that transaction. */
static void invite(api_call *call, store_role mine, const char *email, const char *password,
                   store_role role)
{
    char hash[STORE_PW_HASH_MAX];
    if (check_grant(call, mine, STORE_ROLE_NONE, role))
        return;
    if (!password || password_hash(password, hash)) {
        api_reply_error(call, 400, "weak_password",
                        "password (12 to 1024 characters) is required: it becomes the "
                        "password of a new account");
        return;
    }
    store_user fresh = {.created_at = call->now_ms};
    secret_new_id(fresh.id);
    snprintf(fresh.email, sizeof fresh.email, "%s", email);
    snprintf(fresh.pw_hash, sizeof fresh.pw_hash, "%s", hash);
    sodium_memzero(hash, sizeof hash);
    store_invitation inv = {.role = role, .created_at = call->now_ms};
    secret_new_id(inv.id);
    snprintf(inv.org_id, sizeof inv.org_id, "%s", call->params[0]);
    actor_id(call, inv.invited_by, sizeof inv.invited_by);
    int rc = store_invitation_invite(call->db, &fresh, &inv);
    sodium_memzero(fresh.pw_hash, sizeof fresh.pw_hash);
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    char target[64];
    snprintf(target, sizeof target, "invitation:%s", inv.id);
    api_audit(call, call->params[0], "member.invite", target,
              json_pack("{s:s,s:s}", "email", email, "role", api_role_name(role)));
    api_reply_json(call, 202,
                   json_pack("{s:s,s:{s:s,s:s,s:s,s:s,s:I}}", "status", "invited", "invitation",
                             "id", inv.id, "org_id", inv.org_id, "email", email, "role",
                             api_role_name(role), "created_at", (json_int_t)inv.created_at));
}

void api_members_add(api_call *call)
{
    store_role mine;
    if (api_authenticate(call) || api_require_role(call, call->params[0], STORE_ROLE_ADMIN, &mine))
        return;
    json_t *body = api_body_object(call);
    if (!body)
        return;
    int bad = 0;
    const char *email_in = api_json_string(body, "email", SS_EMAIL_MAX, &bad);
    const char *role_name = api_json_string(body, "role", 16, &bad);
    const char *password = api_json_string(body, "password", SS_PASSWORD_MAX, &bad);
    store_role role;
    if (bad || !email_in || !strchr(email_in, '@') || !role_name ||
        api_role_parse(role_name, &role)) {
        json_decref(body);
        api_reply_error(call, 400, "bad_request",
                        "email and role (viewer, editor, admin, owner) are required");
        return;
    }
    char email[SS_EMAIL_MAX + 1];
    snprintf(email, sizeof email, "%s", email_in);
    api_lowercase(email);
    store_user u;
    int direct = 0;
    int rc = adds_directly(call, email, &u, &direct);
    if (rc)
        api_reply_store_error(call, rc);
    else if (direct)
        add_directly(call, mine, email, password, role);
    else
        invite(call, mine, email, password, role);
    json_decref(body);
}

/* Loads the member named in the path: 404 when not a direct member. */
static int load_member(api_call *call, store_user *u, store_role *role)
{
    int rc = secret_id_valid(call->params[1]) ? store_user_get(call->db, call->params[1], u)
                                              : SS_NOT_FOUND;
    if (rc == 0)
        rc = store_membership_get(call->db, call->params[0], u->id, role);
    if (rc == 0 && *role == STORE_ROLE_NONE)
        rc = SS_NOT_FOUND;
    if (rc)
        api_reply_store_error(call, rc);
    return rc;
}

void api_member_patch(api_call *call)
{
    store_role mine, current, role;
    store_user u;
    if (api_authenticate(call) || api_require_role(call, call->params[0], STORE_ROLE_ADMIN, &mine) ||
        load_member(call, &u, &current))
        return;
    json_t *body = api_body_object(call);
    if (!body)
        return;
    int bad = 0;
    const char *role_name = api_json_string(body, "role", 16, &bad);
    int ok = !bad && role_name && api_role_parse(role_name, &role) == 0;
    json_decref(body);
    if (!ok) {
        api_reply_error(call, 400, "bad_request", "role is viewer, editor, admin or owner");
        return;
    }
    if (check_grant(call, mine, current, role) ||
        check_last_owner(call, call->params[0], current, role))
        return;
    int rc = store_membership_change(call->db, call->params[0], u.id, role);
    if (reply_change_error(call, rc))
        return;
    audit_member(call, "member.role", &u, role, current);
    api_reply_json(call, 200, member_json(&u, role));
}

void api_member_delete(api_call *call)
{
    store_role mine, current;
    store_user u;
    if (api_authenticate(call) || api_require_role(call, call->params[0], STORE_ROLE_ADMIN, &mine) ||
        load_member(call, &u, &current))
        return;
    if (check_grant(call, mine, current, STORE_ROLE_NONE) ||
        check_last_owner(call, call->params[0], current, STORE_ROLE_NONE))
        return;
    int rc = store_membership_change(call->db, call->params[0], u.id, STORE_ROLE_NONE);
    if (reply_change_error(call, rc))
        return;
    audit_member(call, "member.remove", &u, STORE_ROLE_NONE, current);
    api_reply_empty(call);
}
