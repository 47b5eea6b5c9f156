/* api_members.c — who belongs to an organisation, with which role, over
 * REST. The rules (SPEC §2) and the changes are aaa/members'; here the
 * requests are parsed and the answers given. */
#include "aaa/members.h"
#include "core/err.h"
#include "http/api_call.h"
#include "http/api_page.h"

#include <stdio.h>
#include <string.h>

static json_t *member_json(const store_user *u, store_role role)
{
    return json_pack("{s:s,s:s,s:s,s:b}", "user_id", u->id, "email", u->email, "role",
                     aaa_role_name(role), "disabled", u->disabled);
}

/* Members come by email, which is unique (store_member_list). */
static int append_member(void *ctx, const store_user *u, store_role role)
{
    api_page *page = ctx;
    json_t *key = json_pack("[s]", u->email);
    if (!api_page_after(page, key, "+")) {
        json_decref(key);
        return 0;
    }
    return api_page_add(page, member_json(u, role), key);
}

void api_members_list(api_call *call)
{
    api_page page;
    if (api_require_org_role(call, STORE_ROLE_ADMIN, NULL) ||
        api_page_begin(call, SS_PAGE_LIMIT_DEFAULT, SS_PAGE_LIMIT_MAX, "s", &page))
        return;
    int rc = store_member_list(call->db, call->params[0], append_member, &page);
    api_page_reply(call, rc, &page);
}

/* The answer to a change refused or failed: the grant rule (403), the
 * org's last owner (409, also when the store's own check inside the
 * change found it), else the store's. */
static void reply_change_error(api_call *call, int rc, store_role mine, store_role from,
                               store_role to)
{
    if (rc == SS_FORBIDDEN)
        api_reply_error(call, 403, "forbidden", aaa_grant_refusal(mine, from, to));
    else if (rc == SS_CONFLICT)
        api_reply_error(call, 409, "last_owner", "an organisation keeps at least one owner");
    else
        api_reply_store_error(call, rc);
}

static void reply_add_error(api_call *call, int rc, store_role mine, store_role role,
                            const aaa_member_added *out)
{
    if (rc != SS_INVAL)
        reply_change_error(call, rc, mine, out->invited ? STORE_ROLE_NONE : out->previous, role);
    else if (out->invited)
        api_reply_error(call, 400, "weak_password",
                        "password (12 to 1024 characters) is required: it becomes the "
                        "password of a new account");
    else if (out->password_missing)
        api_reply_error(call, 400, "bad_request", "a new user needs a password");
    else
        api_reply_error(call, 400, "weak_password", "a password has 12 to 1024 characters");
}

static void reply_added(api_call *call, const char *email, store_role role,
                        const aaa_member_added *out)
{
    if (!out->invited) {
        api_reply_json(call, 201, member_json(&out->user, role));
        return;
    }
    const store_invitation *inv = &out->invitation;
    api_reply_json(call, 202,
                   json_pack("{s:s,s:{s:s,s:s,s:s,s:s,s:I}}", "status", "invited", "invitation",
                             "id", inv->id, "org_id", inv->org_id, "email", email, "role",
                             aaa_role_name(role), "created_at", (json_int_t)inv->created_at));
}

void api_members_add(api_call *call)
{
    store_role mine;
    json_t *body = api_org_body(call, STORE_ROLE_ADMIN, &mine);
    if (!body)
        return;
    int bad = 0;
    const char *email_in = api_json_string(body, "email", SS_EMAIL_MAX, &bad);
    const char *role_name = api_json_string(body, "role", 16, &bad);
    const char *password = api_json_string(body, "password", SS_PASSWORD_MAX, &bad);
    store_role role;
    if (bad || !email_in || !strchr(email_in, '@') || !role_name ||
        aaa_role_parse(role_name, &role)) {
        api_reply_bad_body(call, body, "email and role (viewer, editor, admin, owner) are required");
        return;
    }
    char email[SS_EMAIL_MAX + 1];
    snprintf(email, sizeof email, "%s", email_in);
    api_lowercase(email);
    aaa_member_added out;
    int rc = aaa_member_add(api_aaa(call), call->params[0], mine, email, password, role, &out);
    json_decref(body);
    if (rc)
        reply_add_error(call, rc, mine, role, &out);
    else
        reply_added(call, email, role, &out);
}

/* Loads the member named in the path: 404 when not a direct member. */
static int load_member(api_call *call, store_user *u, store_role *role)
{
    int rc = aaa_member_load(api_aaa(call), call->params[0], call->params[1], u, role);
    if (rc)
        api_reply_store_error(call, rc);
    return rc;
}

void api_member_patch(api_call *call)
{
    store_role mine, current, role;
    store_user u;
    if (api_require_org_role(call, STORE_ROLE_ADMIN, &mine) ||
        load_member(call, &u, &current))
        return;
    json_t *body = api_body_object(call);
    if (!body)
        return;
    int bad = 0;
    const char *role_name = api_json_string(body, "role", 16, &bad);
    int ok = !bad && role_name && aaa_role_parse(role_name, &role) == 0;
    json_decref(body);
    if (!ok) {
        api_reply_error(call, 400, "bad_request", "role is viewer, editor, admin or owner");
        return;
    }
    int rc = aaa_member_set_role(api_aaa(call), call->params[0], mine, &u, current, role);
    if (rc) {
        reply_change_error(call, rc, mine, current, role);
        return;
    }
    api_reply_json(call, 200, member_json(&u, role));
}

void api_member_delete(api_call *call)
{
    store_role mine, current;
    store_user u;
    if (api_require_org_role(call, STORE_ROLE_ADMIN, &mine) ||
        load_member(call, &u, &current))
        return;
    int rc = aaa_member_set_role(api_aaa(call), call->params[0], mine, &u, current,
                                 STORE_ROLE_NONE);
    if (rc) {
        reply_change_error(call, rc, mine, current, STORE_ROLE_NONE);
        return;
    }
    api_reply_empty(call);
}
