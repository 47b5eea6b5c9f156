/* api_orgs.c — organisations over REST: the tree of customers, renames,
 * deletion (the lifecycle runs in aaa/orgs). */
#include "aaa/orgs.h"
#include "aaa/secret.h"
#include "core/err.h"
#include "http/api_call.h"
#include "http/api_page.h"

#include <stdio.h>
#include <string.h>

/* Orgs come by name, then id (store_org_list). */
static int append_org(void *ctx, const store_org *org)
{
    api_page *page = ctx;
    json_t *key = json_pack("[s,s]", org->name, org->id);
    if (!api_page_after(page, key, "++")) {
        json_decref(key);
        return 0;
    }
    return api_page_add(page, api_org_json(org), key);
}

void api_orgs_list(api_call *call)
{
    api_page page;
    if (api_authenticate(call) ||
        api_page_begin(call, SS_PAGE_LIMIT_DEFAULT, SS_PAGE_LIMIT_MAX, "ss", &page))
        return;
    int rc = aaa_list_orgs(call->db, &call->who, append_org, &page);
    api_page_reply(call, rc, &page);
}

void api_orgs_create(api_call *call)
{
    if (api_authenticate(call))
        return;
    json_t *body = api_body_object(call);
    if (!body)
        return;
    int bad = 0;
    const char *name = api_json_string(body, "name", SS_NAME_MAX, &bad);
    const char *parent = api_json_string(body, "parent_id", SS_ID_LEN, &bad);
    /* Who may, before what: a stranger learns nothing from our validation
     * (a malformed parent_id is only a bad request). */
    if (parent || !bad) {
        const char *why = NULL;
        int rc = aaa_may_create_org(call->db, &call->who, parent, &why);
        if (rc)
            api_reply_err(call, rc, why);
        if (rc || (parent && api_enter_org(call, parent))) {
            json_decref(body);
            return;
        }
    }
    if (bad || !api_name_valid(name)) {
        api_reply_bad_body(call, body, "name (1-200 characters) is required");
        return;
    }
    store_org org;
    int rc = aaa_org_create(api_aaa(call), name, parent, &org);
    json_decref(body);
    api_reply_result(call, rc, 201, rc ? NULL : api_org_json(&org));
}

void api_org_get(api_call *call)
{
    /* A dashboard user picks the org by its name too. */
    if (api_require_org_role(call, STORE_ROLE_DASHBOARD, NULL))
        return;
    store_org org;
    int rc = store_org_get(call->db, call->params[0], &org);
    api_reply_result(call, rc, 200, rc ? NULL : api_org_json(&org));
}

void api_org_patch(api_call *call)
{
    json_t *body = api_org_body(call, STORE_ROLE_ADMIN, NULL);
    if (!body)
        return;
    int bad = 0;
    const char *name = api_json_string(body, "name", SS_NAME_MAX, &bad);
    if (bad || (name && !api_name_valid(name))) {
        api_reply_bad_body(call, body, "name must be 1-200 characters");
        return;
    }
    store_org org;
    int rc = aaa_org_rename(api_aaa(call), call->params[0], name, &org);
    json_decref(body);
    api_reply_result(call, rc, 200, rc ? NULL : api_org_json(&org));
}

/* Owner only. Devices, their readings, memberships and API keys go with
 * the org; an org with child orgs is refused (delete those first), so no
 * customer disappears by accident. */
void api_org_delete(api_call *call)
{
    if (api_require_org_role(call, STORE_ROLE_OWNER, NULL))
        return;
    int rc = aaa_org_delete(api_aaa(call), call->params[0]);
    if (rc == SS_CONFLICT) {
        api_reply_error(call, 409, "org_has_children",
                        "delete the organisation's child organisations first");
        return;
    }
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    api_reply_empty(call);
}
