/* devices.c — a device's lifecycle, in the order that keeps ingest right:
 * the token cache follows every change of the store, and a revoked token
 * is refused before its connections are told to close. */
#include "aaa/devices.h"

#include "aaa/audit_detail.h"
#include "core/err.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

static void audit_device(aaa_ctx *cx, const store_device *d, const char *action,
                         json_t *detail)
{
    char target[64];
    snprintf(target, sizeof target, "device:%s", d->id);
    aaa_audit(cx, d->org_id, action, target, detail);
}

int aaa_device_create(aaa_ctx *cx, const char *org_id, const char *name, const char *description,
                      const char *attributes, store_device *d, char token[SECRET_TEXT_MAX])
{
    memset(d, 0, sizeof *d);
    secret_new_id(d->id);
    snprintf(d->org_id, sizeof d->org_id, "%s", org_id);
    snprintf(d->name, sizeof d->name, "%s", name);
    snprintf(d->description, sizeof d->description, "%s", description ? description : "");
    snprintf(d->attributes, sizeof d->attributes, "%s", attributes ? attributes : "{}");
    d->created_at = cx->now_ms;
    secret_new(SECRET_PREFIX_DEVICE, token, d->token_hash);
    int rc = store_device_create(cx->db, d);
    if (rc == 0)
        rc = device_cache_put(cx->devices, d->id, d->org_id, d->token_hash, 0);
    if (rc) {
        sodium_memzero(token, SECRET_TEXT_MAX);
        return rc;
    }
    json_t *detail = json_pack("{s:s,s:s}", "name", d->name, "description", d->description);
    if (strcmp(d->attributes, "{}") != 0)
        json_object_set_new(detail, "attributes", json_string(d->attributes));
    audit_device(cx, d, "device.create", detail);
    return 0;
}

/* The fields a change set, with their new values. */
static json_t *patch_detail(const aaa_device_patch *patch)
{
    json_t *detail = json_object();
    if (patch->name)
        json_object_set_new(detail, "name", json_string(patch->name));
    if (patch->description)
        json_object_set_new(detail, "description", json_string(patch->description));
    if (patch->attributes)
        json_object_set_new(detail, "attributes", json_string(patch->attributes));
    if (patch->set_disabled)
        json_object_set_new(detail, "disabled", json_boolean(patch->disabled));
    return detail;
}

int aaa_device_update(aaa_ctx *cx, store_device *d, const aaa_device_patch *patch)
{
    if (patch->name)
        snprintf(d->name, sizeof d->name, "%s", patch->name);
    if (patch->description)
        snprintf(d->description, sizeof d->description, "%s", patch->description);
    if (patch->attributes)
        snprintf(d->attributes, sizeof d->attributes, "%s", patch->attributes);
    if (patch->set_disabled)
        d->disabled = patch->disabled ? 1 : 0;
    int rc = store_device_update(cx->db, d);
    if (rc)
        return rc;
    device_cache_set_disabled(cx->devices, d->id, d->disabled);
    if (d->disabled)
        aaa_revoke(cx, d->id);
    if (patch->attributes)
        aaa_revoke_shown(cx, d->org_id);  /* a dynamic dashboard may no longer show it */
    audit_device(cx, d, "device.update", patch_detail(patch));
    return 0;
}

int aaa_device_delete(aaa_ctx *cx, const store_device *d)
{
    /* Refuse the token first: no reading may land after the answer. */
    device_cache_remove(cx->devices, d->id);
    int rc = store_device_delete(cx->db, d->id);
    if (rc) {
        device_cache_put(cx->devices, d->id, d->org_id, d->token_hash, d->disabled);
        return rc;
    }
    aaa_revoke(cx, d->id);
    store_maint_kick(cx->maint);  /* its readings: purged in the background */
    audit_device(cx, d, "device.delete", json_pack("{s:s}", "name", d->name));
    return 0;
}

int aaa_device_rotate(aaa_ctx *cx, const store_device *d, char token[SECRET_TEXT_MAX])
{
    uint8_t hash[SS_SECRET_HASH_BYTES];
    secret_new(SECRET_PREFIX_DEVICE, token, hash);
    int rc = store_device_set_token(cx->db, d->id, hash);
    if (rc == 0)
        rc = device_cache_set_token(cx->devices, d->id, hash);
    if (rc) {
        sodium_memzero(token, SECRET_TEXT_MAX);
        return rc;
    }
    aaa_revoke(cx, d->id);
    audit_device(cx, d, "device.rotate_token",
                 json_pack("{s:s,s:s}", "name", d->name, "token", AUDIT_SECRET_CHANGED));
    return 0;
}
