/* api_orgs.c — organisations and their members. */
#include "aaa/password.h"
#include "aaa/secret.h"
#include "core/err.h"
#include "http/api_call.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static int append_org(void *ctx, const store_org *org)
{
    json_array_append_new(ctx, api_org_json(org));
    return 0;
}

void api_orgs_list(api_call *call)
{
    if (api_require_user(call))
        return;
    json_t *list = json_array();
    int rc = store_org_list(call->db, call->user.superadmin ? NULL : call->user.id, append_org,
                            list);
    if (rc) {
        json_decref(list);
        api_reply_store_error(call, rc);
        return;
    }
    api_reply_json(call, 200, list);
}
void api_orgs_create(api_call *call)
{
    if (api_require_user(call))
        return;
    json_t *body = api_body_object(call);
    if (!body)
        return;
    int bad = 0;
    const char *name = api_json_string(body, "name", SS_NAME_MAX, &bad);
    const char *parent = api_json_string(body, "parent_id", SS_ID_LEN, &bad);
    if (bad || !api_name_valid(name)) {
        json_decref(body);
        api_reply_error(call, 400, "bad_request", "name (1-200 characters) is required");
        return;
    }
    if (!parent && !call->user.superadmin) {
        json_decref(body);
        api_reply_error(call, 403, "forbidden", "only the superadmin creates top-level organisations");
        return;
    }
    if (parent && api_require_role(call, parent, STORE_ROLE_ADMIN, NULL)) {
        json_decref(body);
        return;
    }
    store_org org = {0};
    secret_new_id(org.id);
    snprintf(org.name, sizeof org.name, "%s", name);
    snprintf(org.parent_id, sizeof org.parent_id, "%s", parent ? parent : "");
    org.created_at = call->now_ms;
    json_decref(body);
    int rc = store_org_create(call->db, &org);
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    api_reply_json(call, 201, api_org_json(&org));
}

void api_org_get(api_call *call)
{
    if (api_require_user(call) || api_require_role(call, call->params[0], STORE_ROLE_VIEWER, NULL))
        return;
    store_org org;
    int rc = store_org_get(call->db, call->params[0], &org);
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    api_reply_json(call, 200, api_org_json(&org));
}

void api_org_patch(api_call *call)
{
    if (api_require_user(call) || api_require_role(call, call->params[0], STORE_ROLE_ADMIN, NULL))
        return;
    json_t *body = api_body_object(call);
    if (!body)
        return;
    int bad = 0;
    const char *name = api_json_string(body, "name", SS_NAME_MAX, &bad);
    store_org org;
    int rc = store_org_get(call->db, call->params[0], &org);
    if (rc == 0 && (bad || (name && !api_name_valid(name)))) {
        json_decref(body);
        api_reply_error(call, 400, "bad_request", "name must be 1-200 characters");
        return;
    }
    if (rc == 0 && name) {
        snprintf(org.name, sizeof org.name, "%s", name);
        rc = store_org_rename(call->db, org.id, org.name);
    }
    json_decref(body);
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    api_reply_json(call, 200, api_org_json(&org));
}

typedef struct member_list {
    api_call *call;
    json_t *list;
} member_list;

static int append_member(void *ctx, const store_user *u, store_role role)
{
    member_list *ml = ctx;
    json_t *m = api_user_json(u);
    json_object_set_new(m, "role", json_string(api_role_name(role)));
    json_object_set_new(m, "user_id", json_string(u->id));
    json_array_append_new(ml->list, m);
    return 0;
}

void api_members_list(api_call *call)
{
    if (api_require_user(call) || api_require_role(call, call->params[0], STORE_ROLE_ADMIN, NULL))
        return;
    member_list ml = {call, json_array()};
    int rc = store_member_list(call->db, call->params[0], append_member, &ml);
    if (rc) {
        json_decref(ml.list);
        api_reply_store_error(call, rc);
        return;
    }
    api_reply_json(call, 200, ml.list);
}

/* Creates the user with the given password, or finds the existing one. */
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

void api_members_add(api_call *call)
{
    store_role mine;
    if (api_require_user(call) || api_require_role(call, call->params[0], STORE_ROLE_ADMIN, &mine))
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
    if (role > mine) {
        json_decref(body);
        api_reply_error(call, 403, "forbidden", "you cannot grant a role above your own");
        return;
    }
    char email[SS_EMAIL_MAX + 1];
    snprintf(email, sizeof email, "%s", email_in);
    api_lowercase(email);
    store_user u;
    int rc = find_or_create_user(call, email, password, &u);
    json_decref(body);
    if (rc == 1)
        return;
    if (rc == 0)
        rc = store_membership_set(call->db, call->params[0], u.id, role);
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    json_t *m = api_user_json(&u);
    json_object_set_new(m, "user_id", json_string(u.id));
    json_object_set_new(m, "role", json_string(api_role_name(role)));
    api_reply_json(call, 201, m);
}
