/* api_orgs.c — organisations: the tree of customers, renames, deletion. */
#include "aaa/secret.h"
#include "core/err.h"
#include "http/api_call.h"

#include <stdio.h>
#include <string.h>

/* The org tree is shallow; a walk longer than this is a broken tree. */
#define API_ORG_DEPTH_MAX 64

typedef struct org_list {
    api_call *call;
    json_t *list;
} org_list;

static int append_org(void *ctx, const store_org *org)
{
    org_list *ol = ctx;
    json_array_append_new(ol->list, api_org_json(org));
    return 0;
}

/* An API key sees its own org and the orgs below it. */
static int append_org_of_key(void *ctx, const store_org *org)
{
    org_list *ol = ctx;
    api_call *call = ol->call;
    char id[SS_ID_LEN + 1];
    memcpy(id, org->id, sizeof id);
    for (int depth = 0; id[0] && depth < API_ORG_DEPTH_MAX; depth++) {
        store_org up;
        if (strcmp(id, call->key.org_id) == 0) {
            json_array_append_new(ol->list, api_org_json(org));
            return 0;
        }
        if (store_org_get(call->db, id, &up))
            return 0;
        memcpy(id, up.parent_id, sizeof id);
    }
    return 0;
}

void api_orgs_list(api_call *call)
{
    if (api_authenticate(call))
        return;
    org_list ol = {call, json_array()};
    int rc;
    if (call->principal == API_PRINCIPAL_KEY)
        rc = store_org_list(call->db, NULL, append_org_of_key, &ol);
    else
        rc = store_org_list(call->db, call->user.superadmin ? NULL : call->user.id, append_org,
                            &ol);
    api_reply_list(call, rc, ol.list);
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
    int superadmin = call->principal == API_PRINCIPAL_USER && call->user.superadmin;
    /* Who may, before what: a stranger learns nothing from our validation. */
    if (!parent && !bad && !superadmin) {
        json_decref(body);
        api_reply_error(call, 403, "forbidden", "only the superadmin creates top-level organisations");
        return;
    }
    if (parent && api_require_role(call, parent, STORE_ROLE_ADMIN, NULL)) {
        json_decref(body);
        return;
    }
    if (bad || !api_name_valid(name)) {
        json_decref(body);
        api_reply_error(call, 400, "bad_request", "name (1-200 characters) is required");
        return;
    }
    store_org org = {0};
    secret_new_id(org.id);
    snprintf(org.name, sizeof org.name, "%s", name);
    snprintf(org.parent_id, sizeof org.parent_id, "%s", parent ? parent : "");
    org.created_at = call->now_ms;
    json_decref(body);
    int rc = store_org_create(call->db, &org);
    if (rc == 0 && call->app->quotas)
        rc = quota_set_org(call->app->quotas, org.id, org.parent_id);
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    char target[64];
    snprintf(target, sizeof target, "org:%s", org.id);
    api_audit(call, org.parent_id[0] ? org.parent_id : org.id, "org.create", target,
              json_pack("{s:s,s:o}", "name", org.name, "parent_id",
                        org.parent_id[0] ? json_string(org.parent_id) : json_null()));
    api_reply_json(call, 201, api_org_json(&org));
}

void api_org_get(api_call *call)
{
    if (api_authenticate(call) || api_require_role(call, call->params[0], STORE_ROLE_VIEWER, NULL))
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
    if (api_authenticate(call) || api_require_role(call, call->params[0], STORE_ROLE_ADMIN, NULL))
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
    char target[64];
    snprintf(target, sizeof target, "org:%s", org.id);
    api_audit(call, org.id, "org.rename", target, json_pack("{s:s}", "name", org.name));
    api_reply_json(call, 200, api_org_json(&org));
}

static int collect_device(void *ctx, const char *device_id)
{
    return json_array_append_new(ctx, json_string(device_id)) ? 1 : 0;
}

/* Owner only. Devices, their readings, memberships and API keys go with
 * the org; an org with child orgs is refused (delete those first), so no
 * customer disappears by accident. */
void api_org_delete(api_call *call)
{
    if (api_authenticate(call) || api_require_role(call, call->params[0], STORE_ROLE_OWNER, NULL))
        return;
    const char *id = call->params[0];
    json_t *devices = json_array();
    int rc = store_org_device_ids(call->db, id, collect_device, devices);
    json_int_t n_devices = (json_int_t)json_array_size(devices);
    if (rc == 0)
        rc = store_org_delete(call->db, id);
    if (rc == 0) {
        /* A reading already queued for one of them fails alone in the store
         * (its device is gone); the next ones are refused here. */
        size_t i;
        json_t *dev;
        json_array_foreach(devices, i, dev) {
            device_cache_remove(call->app->devices, json_string_value(dev));
            if (call->app->conns)
                conn_registry_revoke(call->app->conns, json_string_value(dev));
        }
        if (call->app->quotas)
            quota_remove_org(call->app->quotas, id);
        store_maint_kick(call->app->maint);  /* the devices' readings: in the background */
    }
    json_decref(devices);
    if (rc == SS_CONFLICT) {
        api_reply_error(call, 409, "org_has_children",
                        "delete the organisation's child organisations first");
        return;
    }
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    char target[64];
    snprintf(target, sizeof target, "org:%s", id);
    api_audit(call, id, "org.delete", target, json_pack("{s:I}", "devices_deleted", n_devices));
    api_reply_empty(call);
}
