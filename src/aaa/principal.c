/* principal.c — credentials into principals. */
#include "aaa/principal.h"

#include "aaa/secret.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>

int aaa_credential_is_key(const char *text, size_t len, int via_cookie)
{
    size_t plen = strlen(SECRET_PREFIX_APIKEY);
    return !via_cookie && len > plen && strncmp(text, SECRET_PREFIX_APIKEY, plen) == 0 &&
           text[plen] == '_';
}

static int64_t idle_ms(const aaa_session_policy *policy)
{
    return policy && policy->idle_ms ? policy->idle_ms : SS_SESSION_IDLE_MS;
}

/* Loads the session and its person; ends a session that sat idle too long. */
static int load_session(store_conn *db, const aaa_session_policy *policy,
                        const uint8_t hash[SS_SECRET_HASH_BYTES], int64_t now_ms, aaa_principal *p)
{
    int64_t idle = idle_ms(policy);
    int rc = store_session_get(db, hash, now_ms, &p->session);
    if (rc == 0 && now_ms - p->session.last_seen_at > idle) {
        store_session_delete(db, hash);
        rc = SS_NOT_FOUND;
    }
    if (rc == 0)
        rc = store_user_get(db, p->session.user_id, &p->user);
    if (rc == 0 && p->user.disabled)
        rc = SS_NOT_FOUND;
    /* Touch often enough that a session in use never looks idle. */
    int64_t touch_every = idle / 4;
    if (touch_every > SS_SESSION_TOUCH_MS)
        touch_every = SS_SESSION_TOUCH_MS;
    if (rc == 0 && now_ms - p->session.last_seen_at > touch_every)
        store_session_touch(db, hash, now_ms);
    return rc;
}

int aaa_authenticate(store_conn *db, const aaa_session_policy *policy, const char *text,
                     size_t len, int via_cookie, int64_t now_ms, aaa_principal *out)
{
    int is_key = text && aaa_credential_is_key(text, len, via_cookie);
    out->kind = is_key ? AAA_PRINCIPAL_KEY : AAA_PRINCIPAL_PERSON;
    if (!text || len == 0 || len >= SECRET_TEXT_MAX)
        return SS_AUTH;
    uint8_t hash[SS_SECRET_HASH_BYTES];
    secret_hash(text, len, hash);
    int rc = is_key ? store_apikey_get_by_hash(db, hash, &out->key)
                    : load_session(db, policy, hash, now_ms, out);
    return rc == SS_NOT_FOUND ? SS_AUTH : rc;
}

void aaa_principal_device(aaa_principal *p, const char *device_id, const char *org_id,
                          int disabled)
{
    memset(p, 0, sizeof *p);
    p->kind = AAA_PRINCIPAL_DEVICE;
    snprintf(p->device.device_id, sizeof p->device.device_id, "%s", device_id);
    snprintf(p->device.org_id, sizeof p->device.org_id, "%s", org_id);
    p->device.disabled = disabled;
}

const char *aaa_principal_id(const aaa_principal *p)
{
    switch (p->kind) {
    case AAA_PRINCIPAL_PERSON:
        return p->user.id;
    case AAA_PRINCIPAL_KEY:
        return p->key.id;
    case AAA_PRINCIPAL_DEVICE:
        return p->device.device_id;
    default:
        return "";
    }
}

const char *aaa_principal_org(const aaa_principal *p)
{
    if (p->kind == AAA_PRINCIPAL_KEY)
        return p->key.org_id;
    if (p->kind == AAA_PRINCIPAL_DEVICE)
        return p->device.org_id;
    return "";
}

unsigned aaa_principal_scopes(const aaa_principal *p)
{
    if (p->kind == AAA_PRINCIPAL_KEY)
        return p->key.scopes;
    if (p->kind == AAA_PRINCIPAL_DEVICE)
        return STORE_SCOPE_DATA_WRITE;
    return 0;
}

int aaa_principal_superadmin(const aaa_principal *p)
{
    return p->kind == AAA_PRINCIPAL_PERSON && p->user.superadmin;
}

void aaa_principal_actor(const aaa_principal *p, char *out, size_t cap)
{
    static const char *const kinds[] = {"", "user", "apikey", "device"};
    if (p->kind == AAA_PRINCIPAL_NONE) {
        snprintf(out, cap, "%s", "");
        return;
    }
    snprintf(out, cap, "%s:%s", kinds[p->kind], aaa_principal_id(p));
}

const char *aaa_principal_name(const aaa_principal *p)
{
    switch (p->kind) {
    case AAA_PRINCIPAL_PERSON:
        return p->user.email;
    case AAA_PRINCIPAL_KEY:
        return p->key.name;
    default:
        return "";
    }
}
