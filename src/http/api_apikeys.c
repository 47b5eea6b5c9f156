/* api_apikeys.c — API keys for apps over REST: created with scopes, shown
 * once, revoked at once (the lifecycle runs in aaa/keys). */
#include "aaa/keys.h"
#include "aaa/secret.h"
#include "core/err.h"
#include "http/api_call.h"
#include "http/api_page.h"

#include <string.h>

/* A non-empty array of known scope names; 0 when it is not one. */
static unsigned parse_scopes(json_t *array)
{
    unsigned scopes = 0;
    size_t i;
    json_t *v;
    if (!json_is_array(array) || json_array_size(array) == 0)
        return 0;
    json_array_foreach(array, i, v) {
        unsigned bit = json_is_string(v) ? aaa_scope_parse(json_string_value(v)) : 0;
        if (!bit)
            return 0;
        scopes |= bit;
    }
    return scopes;
}

static json_t *apikey_json(const store_apikey *k)
{
    return json_pack("{s:s,s:s,s:s,s:o,s:s,s:I}", "id", k->id, "org_id", k->org_id, "name",
                     k->name, "scopes", aaa_scopes_json(k->scopes), "created_by", k->created_by,
                     "created_at", (json_int_t)k->created_at);
}

/* Keys come newest first, then by id descending (store_apikey_list). */
static int append_key(void *ctx, const store_apikey *k)
{
    api_page *page = ctx;
    json_t *key = json_pack("[I,s]", (json_int_t)k->created_at, k->id);
    if (!api_page_after(page, key, "--")) {
        json_decref(key);
        return 0;
    }
    return api_page_add(page, apikey_json(k), key);
}

void api_apikeys_list(api_call *call)
{
    api_page page;
    if (api_require_org_role(call, STORE_ROLE_ADMIN, NULL) ||
        api_page_begin(call, SS_PAGE_LIMIT_DEFAULT, SS_PAGE_LIMIT_MAX, "is", &page))
        return;
    int rc = store_apikey_list(call->db, call->params[0], append_key, &page);
    api_page_reply(call, rc, &page);
}

void api_apikeys_create(api_call *call)
{
    json_t *body = api_org_body(call, STORE_ROLE_ADMIN, NULL);
    if (!body)
        return;
    int bad = 0;
    const char *name = api_json_string(body, "name", SS_NAME_MAX, &bad);
    unsigned scopes = parse_scopes(json_object_get(body, "scopes"));
    if (bad || !api_name_valid(name) || !scopes) {
        api_reply_bad_body(call, body,
                           "name (1-200 characters) and scopes (a non-empty list of data:read, "
                           "data:write, manage) are required");
        return;
    }
    store_apikey k;
    char key[SECRET_TEXT_MAX];
    int rc = aaa_key_create(api_aaa(call), call->params[0], name, scopes, &k, key);
    json_decref(body);
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    api_reply_secret(call, 201, apikey_json(&k), "key", key);
}

void api_apikey_delete(api_call *call)
{
    if (api_authenticate(call))
        return;
    store_apikey k;
    int rc = aaa_key_access(call->db, &call->who, call->params[0], STORE_ROLE_ADMIN, &k);
    if (rc) {
        api_reply_err(call, rc, NULL);
        return;
    }
    if (api_enter_org(call, k.org_id))
        return;
    rc = aaa_key_revoke(api_aaa(call), &k);
    if (rc) {
        api_reply_store_error(call, rc);
        return;
    }
    api_reply_empty(call);
}
