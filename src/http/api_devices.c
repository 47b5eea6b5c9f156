/* api_devices.c — devices and their tokens. Every change also updates the
 * in-memory token cache, so ingest sees it on the very next request. */
#include "aaa/secret.h"
#include "core/err.h"
#include "http/api_call.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static int append_device(void *ctx, const store_device *d)
{
    json_array_append_new(ctx, api_device_json(d));
    return 0;
}

static void audit_device(api_call *call, const store_device *d, const char *action,
                         json_t *detail)
{
    char target[64];
    snprintf(target, sizeof target, "device:%s", d->id);
    api_audit(call, d->org_id, action, target, detail);
}

/* The fields a PATCH set, with their new values. */
static json_t *patch_detail(json_t *body)
{
    static const char *const fields[] = {"name", "description", "disabled"};
    json_t *detail = json_object();
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        json_t *v = json_object_get(body, fields[i]);
        if (v && !json_is_null(v))
            json_object_set(detail, fields[i], v);
    }
    return detail;
}

void api_devices_list(api_call *call)
{
    if (api_authenticate(call) || api_require_role(call, call->params[0], STORE_ROLE_VIEWER, NULL))
        return;
    json_t *list = json_array();
    int rc = store_device_list(call->db, call->params[0], append_device, list);
    api_reply_list(call, rc, list);
}

/* The answer that carries a token: the one time it is shown. */
static void reply_with_token(api_call *call, int status, json_t *obj, char *token)
{
    json_object_set_new(obj, "token", json_string(token));
    sodium_memzero(token, SECRET_TEXT_MAX);
    api_reply_json(call, status, obj);
    snprintf(call->extra_headers, sizeof call->extra_headers, "Cache-Control: no-store\r\n");
}

void api_devices_create(api_call *call)
{
    if (api_authenticate(call) || api_require_role(call, call->params[0], STORE_ROLE_EDITOR, NULL))
        return;
    json_t *body = api_body_object(call);
    if (!body)
        return;
    int bad = 0;
    const char *name = api_json_string(body, "name", SS_NAME_MAX, &bad);
    const char *desc = api_json_string(body, "description", SS_DESCRIPTION_MAX, &bad);
    if (bad || !api_name_valid(name)) {
        json_decref(body);
        api_reply_error(call, 400, "bad_request",
                        "name (1-200 characters) is required; description is a string");
        return;
    }
    store_device d = {0};
    char token[SECRET_TEXT_MAX];
    secret_new_id(d.id);
    snprintf(d.org_id, sizeof d.org_id, "%s", call->params[0]);
    snprintf(d.name, sizeof d.name, "%s", name);
    snprintf(d.description, sizeof d.description, "%s", desc ? desc : "");
    d.created_at = call->now_ms;
    secret_new(SECRET_PREFIX_DEVICE, token, d.token_hash);
    json_decref(body);
    int rc = store_device_create(call->db, &d);
    if (rc == 0)
        rc = device_cache_put(call->app->devices, d.id, d.org_id, d.token_hash, 0);
    if (rc) {
        sodium_memzero(token, sizeof token);
        if (rc == SS_QUOTA)
            api_reply_error(call, 429, "quota_exceeded",
                            "the organisation has as many devices as its quota allows");
        else
            api_reply_store_error(call, rc);
        return;
    }
    audit_device(call, &d, "device.create",
                 json_pack("{s:s,s:s}", "name", d.name, "description", d.description));
    reply_with_token(call, 201, api_device_json(&d), token);
}
void api_device_get(api_call *call)
{
    store_device d;
    if (api_load_device(call, STORE_ROLE_VIEWER, &d))
        return;
    api_reply_json(call, 200, api_device_json(&d));
}

static int apply_patch(api_call *call, json_t *body, store_device *d)
{
    int bad = 0;
    const char *name = api_json_string(body, "name", SS_NAME_MAX, &bad);
    const char *desc = api_json_string(body, "description", SS_DESCRIPTION_MAX, &bad);
    json_t *disabled = json_object_get(body, "disabled");
    if (bad || (name && !api_name_valid(name)) || (disabled && !json_is_boolean(disabled))) {
        api_reply_error(call, 400, "bad_request",
                        "name is 1-200 characters, description a string, disabled a boolean");
        return 1;
    }
    if (name)
        snprintf(d->name, sizeof d->name, "%s", name);
    if (desc)
        snprintf(d->description, sizeof d->description, "%s", desc);
    if (disabled)
        d->disabled = json_is_true(disabled);
    return 0;
}

void api_device_patch(api_call *call)
{
    store_device d;
    if (api_load_device(call, STORE_ROLE_EDITOR, &d))
        return;
    json_t *body = api_body_object(call);
    if (!body)
        return;
    int bad = apply_patch(call, body, &d);
    json_t *detail = bad ? NULL : patch_detail(body);
    json_decref(body);
    if (bad)
        return;
    int rc = store_device_update(call->db, &d);
    if (rc) {
        json_decref(detail);
        api_reply_store_error(call, rc);
        return;
    }
    device_cache_set_disabled(call->app->devices, d.id, d.disabled);
    if (d.disabled)
        api_revoke(call, d.id);
    audit_device(call, &d, "device.update", detail);
    api_reply_json(call, 200, api_device_json(&d));
}

void api_device_delete(api_call *call)
{
    store_device d;
    if (api_load_device(call, STORE_ROLE_EDITOR, &d))
        return;
    /* Refuse the token first: no reading may land after the answer. */
    device_cache_remove(call->app->devices, d.id);
    int rc = store_device_delete(call->db, d.id);
    if (rc) {
        device_cache_put(call->app->devices, d.id, d.org_id, d.token_hash, d.disabled);
        api_reply_store_error(call, rc);
        return;
    }
    api_revoke(call, d.id);
    store_maint_kick(call->app->maint);  /* its readings: purged in the background */
    audit_device(call, &d, "device.delete", json_pack("{s:s}", "name", d.name));
    api_reply_empty(call);
}

void api_device_rotate(api_call *call)
{
    store_device d;
    if (api_load_device(call, STORE_ROLE_EDITOR, &d))
        return;
    char token[SECRET_TEXT_MAX];
    uint8_t hash[SS_SECRET_HASH_BYTES];
    secret_new(SECRET_PREFIX_DEVICE, token, hash);
    int rc = store_device_set_token(call->db, d.id, hash);
    if (rc == 0)
        rc = device_cache_set_token(call->app->devices, d.id, hash);
    if (rc) {
        sodium_memzero(token, sizeof token);
        api_reply_store_error(call, rc);
        return;
    }
    api_revoke(call, d.id);
    audit_device(call, &d, "device.rotate_token",
                 json_pack("{s:s,s:s}", "name", d.name, "token", AUDIT_SECRET_CHANGED));
    reply_with_token(call, 200, json_pack("{s:s}", "id", d.id), token);
}
