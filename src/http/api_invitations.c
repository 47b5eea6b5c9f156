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
#include "http/api_page.h"

#include <stdio.h>
#include <string.h>

static json_t *org_invitation_json(const store_invitation *inv)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "id", inv->id, "org_id", inv->org_id, "email",
                     inv->email, "role", aaa_role_name(inv->role), "invited_by", inv->invited_by,
                     "created_at", (json_int_t)inv->created_at);
}

/* Invitations come newest first, then by id ascending
 * (store_invitation_list_org, _user). NULL: before the cursor. */
static json_t *invitation_key(const api_page *page, const store_invitation *inv)
{
    json_t *key = json_pack("[I,s]", (json_int_t)inv->created_at, inv->id);
    if (api_page_after(page, key, "-+"))
        return key;
    json_decref(key);
    return NULL;
}

static int append_org_invitation(void *ctx, const store_invitation *inv)
{
    api_page *page = ctx;
    json_t *key = invitation_key(page, inv);
    return key ? api_page_add(page, org_invitation_json(inv), key) : 0;
}

void api_org_invitations_list(api_call *call)
{
    api_page page;
    if (api_require_org_role(call, STORE_ROLE_ADMIN, NULL) ||
        api_page_begin(call, SS_PAGE_LIMIT_DEFAULT, SS_PAGE_LIMIT_MAX, "is", &page))
        return;
    int rc = store_invitation_list_org(call->db, call->params[0], append_org_invitation, &page);
    api_page_reply(call, rc, &page);
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
    api_page page;
} my_list;

static int append_my_invitation(void *ctx, const store_invitation *inv)
{
    my_list *ml = ctx;
    json_t *key = invitation_key(&ml->page, inv);
    if (!key)
        return 0;
    store_org org;
    if (store_org_get(ml->call->db, inv->org_id, &org))
        snprintf(org.name, sizeof org.name, "%s", "");
    return api_page_add(&ml->page,
                        json_pack("{s:s,s:s,s:s,s:s,s:I}", "id", inv->id, "org_id", inv->org_id,
                                  "org_name", org.name, "role", aaa_role_name(inv->role),
                                  "created_at", (json_int_t)inv->created_at),
                        key);
}

void api_me_invitations(api_call *call)
{
    my_list ml = {call};
    if (api_require_user(call) ||
        api_page_begin(call, SS_PAGE_LIMIT_DEFAULT, SS_PAGE_LIMIT_MAX, "is", &ml.page))
        return;
    int rc = store_invitation_list_user(call->db, call->who.user.id, append_my_invitation, &ml);
    api_page_reply(call, rc, &ml.page);
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
