/* keys.c — an API key's lifecycle. */
#include "aaa/keys.h"

#include "aaa/access.h"
#include "core/err.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

json_t *aaa_scopes_json(unsigned scopes)
{
    json_t *list = json_array();
    unsigned bit = 0;
    const char *name;
    for (size_t i = 0; (name = aaa_scope_name(i, &bit)) != NULL; i++)
        if (scopes & bit)
            json_array_append_new(list, json_string(name));
    return list;
}

static void audit_key(aaa_ctx *cx, const store_apikey *k, const char *action, json_t *detail)
{
    char target[64];
    snprintf(target, sizeof target, "apikey:%s", k->id);
    aaa_audit(cx, k->org_id, action, target, detail);
}

int aaa_key_create(aaa_ctx *cx, const char *org_id, const char *name, unsigned scopes,
                   store_apikey *k, char key[SECRET_TEXT_MAX])
{
    memset(k, 0, sizeof *k);
    secret_new_id(k->id);
    snprintf(k->org_id, sizeof k->org_id, "%s", org_id);
    snprintf(k->name, sizeof k->name, "%s", name);
    k->scopes = scopes;
    snprintf(k->created_by, sizeof k->created_by, "%s", cx->who ? aaa_principal_id(cx->who) : "");
    k->created_at = cx->now_ms;
    secret_new(SECRET_PREFIX_APIKEY, key, k->key_hash);
    int rc = store_apikey_create(cx->db, k);
    if (rc) {
        sodium_memzero(key, SECRET_TEXT_MAX);
        return rc;
    }
    audit_key(cx, k, "apikey.create",
              json_pack("{s:s,s:o}", "name", k->name, "scopes", aaa_scopes_json(k->scopes)));
    return 0;
}

int aaa_key_revoke(aaa_ctx *cx, const store_apikey *k)
{
    int rc = store_apikey_delete(cx->db, k->id);
    if (rc)
        return rc;
    aaa_revoke(cx, k->id);
    audit_key(cx, k, "apikey.revoke", json_pack("{s:s}", "name", k->name));
    return 0;
}
