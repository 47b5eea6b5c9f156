/* api_invitations.c — joining an organisation with one's own consent.
 *
 * An admin's POST /orgs/{org}/members invites anyone not already within
 * their reach (api_members.c); the invitee sees the invitation under
 * /me/invitations and accepts or declines it. Until accepted the person is
 * no member. The org's admins list and withdraw pending invitations; they
 * never see the invitee's user id, which would tell a known account from a
 * new one. */
#include "aaa/secret.h"
#include "core/err.h"
#include "http/api_call.h"

#include <stdio.h>
#include <string.h>

static json_t *org_invitation_json(const store_invitation *inv)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "id", inv->id, "org_id", inv->org_id, "email",
                     inv->email, "role", api_role_name(inv->role), "invited_by", inv->invited_by,
                     "created_at", (json_int_t)inv->created_at);
}

static int append_org_invitation(void *ctx, const store_invitation *inv)
{
    json_array_append_new(ctx, org_invitation_json(inv));
    return 0;
}

void api_org_invitations_list(api_call *call)
{
    if (api_authenticate(call) || api_require_role(call, call->params[0], STORE_ROLE_ADMIN, NULL))
        return;
    json_t *list = json_array();
    int rc = store_invitation_list_org(call->db, call->params[0], append_org_invitation, list);
    api_reply_list(call, rc, list);
}

/* Loads the invitation named by path parameter `which`: 404 unless it is
 * of org_id (NULL: any org) or of the signed-in user (user_only). */
static int load_invitation(api_call *call, int which, const char *org_id, int user_only,
                           store_invitation *inv)
{
    const char *id = call->params[which];
    int rc = secret_id_valid(id) ? store_invitation_get(call->db, id, inv) : SS_NOT_FOUND;
    if (rc == 0 && org_id && strcmp(inv->org_id, org_id) != 0)
        rc = SS_NOT_FOUND;
    if (rc == 0 && user_only && strcmp(inv->user_id, call->user.id) != 0)
        rc = SS_NOT_FOUND;
    if (rc)
        api_reply_store_error(call, rc);
    return rc;
}

static void audit_invitation(api_call *call, const char *action, const store_invitation *inv)
{
    char target[64];
    snprintf(target, sizeof target, "invitation:%s", inv->id);
    api_audit(call, inv->org_id, action, target,
              json_pack("{s:s,s:s}", "email", inv->email, "role", api_role_name(inv->role)));
}

void api_org_invitation_delete(api_call *call)
{
    store_invitation inv;
    if (api_authenticate(call) ||
        api_require_role(call, call->params[0], STORE_ROLE_ADMIN, NULL) ||
        load_invitation(call, 1, call->params[0], 0, &inv))
        return;
    int rc = store_invitation_delete(call->db, inv.id);
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    audit_invitation(call, "member.uninvite", &inv);
    api_reply_empty(call);
}

typedef struct my_list {
    api_call *call;
    json_t *list;
} my_list;

static int append_my_invitation(void *ctx, const store_invitation *inv)
{
    my_list *ml = ctx;
    store_org org;
    if (store_org_get(ml->call->db, inv->org_id, &org))
        snprintf(org.name, sizeof org.name, "%s", "");
    json_array_append_new(ml->list,
                          json_pack("{s:s,s:s,s:s,s:s,s:I}", "id", inv->id, "org_id", inv->org_id,
                                    "org_name", org.name, "role", api_role_name(inv->role),
                                    "created_at", (json_int_t)inv->created_at));
    return 0;
}

void api_me_invitations(api_call *call)
{
    if (api_require_user(call))
        return;
    my_list ml = {call, json_array()};
    int rc = store_invitation_list_user(call->db, call->user.id, append_my_invitation, &ml);
    api_reply_list(call, rc, ml.list);
}

/* An invitation carries its inviter's authority only while they hold it
 * (SPEC §2: a revocation takes effect on the very next request): once the
 * inviter could no longer invite to that role in that org (removed,
 * demoted, disabled, their key revoked), it is void and goes. Returns
 * nonzero when it answered. */
static int check_inviter(api_call *call, const store_invitation *inv)
{
    store_role mine = STORE_ROLE_NONE;
    int rc = api_actor_role(call, inv->invited_by, inv->org_id, &mine);
    if (rc) {
        api_reply_store_error(call, rc);
        return 1;
    }
    if (mine >= STORE_ROLE_ADMIN && !api_grant_refusal(mine, STORE_ROLE_NONE, inv->role))
        return 0;
    rc = store_invitation_delete(call->db, inv->id);
    if (rc && rc != SS_NOT_FOUND) {
        api_reply_store_error(call, rc);
        return 1;
    }
    audit_invitation(call, "member.invite_void", inv);
    api_reply_error(call, 409, "invitation_void",
                    "whoever invited you can no longer grant this role; ask an admin of the "
                    "organisation to invite you again");
    return 1;
}

void api_invitation_accept(api_call *call)
{
    store_invitation inv;
    if (api_require_user(call) || load_invitation(call, 0, NULL, 1, &inv) ||
        check_inviter(call, &inv))
        return;
    int rc = store_invitation_accept(call->db, inv.id, call->user.id, &inv);
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    char target[64];
    snprintf(target, sizeof target, "user:%s", call->user.id);
    api_audit(call, inv.org_id, "member.join", target,
              json_pack("{s:s,s:s,s:s}", "email", call->user.email, "role",
                        api_role_name(inv.role), "invitation", inv.id));
    snprintf(call->acct_org, sizeof call->acct_org, "%s", inv.org_id);
    api_reply_json(call, 200, json_pack("{s:s,s:s}", "org_id", inv.org_id, "role",
                                        api_role_name(inv.role)));
}

void api_invitation_decline(api_call *call)
{
    store_invitation inv;
    if (api_require_user(call) || load_invitation(call, 0, NULL, 1, &inv))
        return;
    int rc = store_invitation_delete(call->db, inv.id);
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    audit_invitation(call, "member.decline", &inv);
    api_reply_empty(call);
}
