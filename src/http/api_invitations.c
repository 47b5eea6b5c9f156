/* api_invitations.c — joining an organisation with one's own consent.
 *
 * An admin's POST /orgs/{org}/members invites anyone not already within
 * their reach (api_members.c); the invitee sees the invitation under
 * /me/invitations and accepts or declines it. Until accepted the person is
 * no member. The org's admins list and withdraw pending invitations; they
 * never see the invitee's user id, which would tell a known account from a
 * new one. The changes themselves run in aaa/members. */
#include "aaa/members.h"
#include "core/err.h"
#include "http/api_call.h"

#include <stdio.h>
#include <string.h>

static json_t *org_invitation_json(const store_invitation *inv)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "id", inv->id, "org_id", inv->org_id, "email",
                     inv->email, "role", aaa_role_name(inv->role), "invited_by", inv->invited_by,
                     "created_at", (json_int_t)inv->created_at);
}

static int append_org_invitation(void *ctx, const store_invitation *inv)
{
    json_array_append_new(ctx, org_invitation_json(inv));
    return 0;
}

void api_org_invitations_list(api_call *call)
{
    if (api_require_org_role(call, STORE_ROLE_ADMIN, NULL))
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
    int rc = aaa_invitation_load(api_aaa(call), call->params[which], org_id,
                                 user_only ? call->who.user.id : NULL, inv);
    if (rc)
        api_reply_store_error(call, rc);
    return rc;
}

void api_org_invitation_delete(api_call *call)
{
    store_invitation inv;
    if (api_authenticate(call) ||
        api_require_role(call, call->params[0], STORE_ROLE_ADMIN, NULL) ||
        load_invitation(call, 1, call->params[0], 0, &inv))
        return;
    int rc = aaa_invitation_withdraw(api_aaa(call), &inv);
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
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
                                    "org_name", org.name, "role", aaa_role_name(inv->role),
                                    "created_at", (json_int_t)inv->created_at));
    return 0;
}

void api_me_invitations(api_call *call)
{
    if (api_require_user(call))
        return;
    my_list ml = {call, json_array()};
    int rc = store_invitation_list_user(call->db, call->who.user.id, append_my_invitation, &ml);
    api_reply_list(call, rc, ml.list);
}

/* An invitation whose inviter no longer holds the authority to give it is
 * void (aaa_invitation_accept): it goes, and the answer says why. */
void api_invitation_accept(api_call *call)
{
    store_invitation inv;
    if (api_require_user(call) || load_invitation(call, 0, NULL, 1, &inv))
        return;
    int rc = aaa_invitation_accept(api_aaa(call), &inv);
    if (rc == SS_CONFLICT) {
        api_reply_error(call, 409, "invitation_void",
                        "whoever invited you can no longer grant this role; ask an admin of the "
                        "organisation to invite you again");
        return;
    }
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    snprintf(call->acct_org, sizeof call->acct_org, "%s", inv.org_id);
    api_reply_json(call, 200, json_pack("{s:s,s:s}", "org_id", inv.org_id, "role",
                                        aaa_role_name(inv.role)));
}

void api_invitation_decline(api_call *call)
{
    store_invitation inv;
    if (api_require_user(call) || load_invitation(call, 0, NULL, 1, &inv))
        return;
    int rc = aaa_invitation_decline(api_aaa(call), &inv);
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    api_reply_empty(call);
}
