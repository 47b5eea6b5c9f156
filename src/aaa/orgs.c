/* orgs.c — an organisation's lifecycle. */
#include "aaa/orgs.h"

#include "aaa/secret.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>

static void audit_org(aaa_ctx *cx, const char *in_org, const char *action, const char *org_id,
                      json_t *detail)
{
    char target[64];
    snprintf(target, sizeof target, "org:%s", org_id);
    aaa_audit(cx, in_org, action, target, detail);
}

int aaa_org_create(aaa_ctx *cx, const char *name, const char *parent_id, store_org *org)
{
    memset(org, 0, sizeof *org);
    secret_new_id(org->id);
    snprintf(org->name, sizeof org->name, "%s", name);
    snprintf(org->parent_id, sizeof org->parent_id, "%s", parent_id ? parent_id : "");
    org->created_at = cx->now_ms;
    int rc = store_org_create(cx->db, org);
    if (rc == 0 && cx->quotas)
        rc = quota_set_org(cx->quotas, org->id, org->parent_id);
    if (rc)
        return rc;
    /* Recorded in the parent's log, where its admins look. */
    audit_org(cx, org->parent_id[0] ? org->parent_id : org->id, "org.create", org->id,
              json_pack("{s:s,s:o}", "name", org->name, "parent_id",
                        org->parent_id[0] ? json_string(org->parent_id) : json_null()));
    return 0;
}

int aaa_org_rename(aaa_ctx *cx, const char *org_id, const char *name, store_org *org)
{
    int rc = store_org_get(cx->db, org_id, org);
    if (rc == 0 && name) {
        snprintf(org->name, sizeof org->name, "%s", name);
        rc = store_org_rename(cx->db, org->id, org->name);
    }
    if (rc)
        return rc;
    audit_org(cx, org->id, "org.rename", org->id, json_pack("{s:s}", "name", org->name));
    return 0;
}

static int collect_device(void *ctx, const char *device_id)
{
    return json_array_append_new(ctx, json_string(device_id)) ? 1 : 0;
}

static int collect_key(void *ctx, const store_apikey *k)
{
    return json_array_append_new(ctx, json_string(k->id)) ? 1 : 0;
}

/* A reading already queued for one of them fails alone in the store (its
 * device is gone); the next ones are refused here. */
static void forget_devices(aaa_ctx *cx, json_t *devices)
{
    size_t i;
    json_t *dev;
    json_array_foreach(devices, i, dev) {
        device_cache_remove(cx->devices, json_string_value(dev));
        aaa_revoke(cx, json_string_value(dev));
    }
}

/* The org's keys go with it: their live connections (MQTT clients, HTTP
 * keep-alive) close as a revoked key's do. */
static void revoke_keys(aaa_ctx *cx, json_t *keys)
{
    size_t i;
    json_t *key;
    json_array_foreach(keys, i, key) {
        aaa_revoke(cx, json_string_value(key));
    }
}

int aaa_org_delete(aaa_ctx *cx, const char *org_id)
{
    json_t *devices = json_array();
    json_t *keys = json_array();
    int rc = store_org_device_ids(cx->db, org_id, collect_device, devices);
    json_int_t n_devices = (json_int_t)json_array_size(devices);
    if (rc == 0)
        rc = store_apikey_list(cx->db, org_id, collect_key, keys);
    if (rc == 0)
        rc = store_org_delete(cx->db, org_id);
    if (rc == 0) {
        forget_devices(cx, devices);
        revoke_keys(cx, keys);
        /* The org's own id too: what is kept of its tree rather than of
         * one principal (the broker's retained messages) goes at once. */
        aaa_revoke(cx, org_id);
        if (cx->quotas)
            quota_remove_org(cx->quotas, org_id);
        store_maint_kick(cx->maint);  /* the devices' readings: in the background */
    }
    json_decref(devices);
    json_decref(keys);
    if (rc)
        return rc;
    audit_org(cx, org_id, "org.delete", org_id, json_pack("{s:I}", "devices_deleted", n_devices));
    return 0;
}

int aaa_org_set_quota(aaa_ctx *cx, const store_quota *q)
{
    int rc = store_quota_set(cx->db, q);
    if (rc)
        return rc;
    quota_limits l = {q->max_devices, q->max_readings_per_day, q->max_bytes_per_day};
    if (cx->quotas)
        quota_set_limits(cx->quotas, q->org_id, &l);
    audit_org(cx, q->org_id, "org.quota", q->org_id,
              json_pack("{s:I,s:I,s:I}", "max_devices", (json_int_t)q->max_devices,
                        "max_readings_per_day", (json_int_t)q->max_readings_per_day,
                        "max_bytes_per_day", (json_int_t)q->max_bytes_per_day));
    return 0;
}
