/* service.c — the audit entry and revocation every lifecycle change shares. */
#include "aaa/service.h"

#include "aaa/audit_detail.h"
#include "core/err.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>

void aaa_revoke(aaa_ctx *cx, const char *principal_id)
{
    if (cx->conns)
        conn_registry_revoke(cx->conns, principal_id);
    const char *self = cx->who ? aaa_principal_id(cx->who) : "";
    if (self[0] && strcmp(self, principal_id) == 0)
        cx->revoked_self = 1;
}

void aaa_access_key(const char *user_id, char out[CONN_REG_KEY_MAX + 1])
{
    snprintf(out, CONN_REG_KEY_MAX + 1, "a:%s", user_id);
}

void aaa_revoke_access(aaa_ctx *cx, const char *user_id)
{
    char key[CONN_REG_KEY_MAX + 1];
    aaa_access_key(user_id, key);
    if (cx->conns)
        conn_registry_revoke(cx->conns, key);
}

void aaa_shown_key(const char *org_id, char out[CONN_REG_KEY_MAX + 1])
{
    snprintf(out, CONN_REG_KEY_MAX + 1, "v:%s", org_id);
}

void aaa_revoke_shown(aaa_ctx *cx, const char *org_id)
{
    char key[CONN_REG_KEY_MAX + 1];
    aaa_shown_key(org_id, key);
    if (cx->conns)
        conn_registry_revoke(cx->conns, key);
}

void aaa_audit(aaa_ctx *cx, const char *org_id, const char *action, const char *target,
               json_t *detail)
{
    store_audit a = {0};
    a.ts = cx->now_ms;
    snprintf(a.org_id, sizeof a.org_id, "%s", org_id ? org_id : "");
    if (cx->who) {
        aaa_principal_actor(cx->who, a.actor, sizeof a.actor);
        snprintf(a.actor_name, sizeof a.actor_name, "%s", aaa_principal_name(cx->who));
    }
    snprintf(a.action, sizeof a.action, "%s", action);
    snprintf(a.target, sizeof a.target, "%s", target);
    snprintf(a.addr, sizeof a.addr, "%s", cx->addr ? cx->addr : "");
    if (!detail)
        detail = json_object();
    audit_detail_text(detail, a.detail, sizeof a.detail);
    json_decref(detail);
    int rc = store_audit_append(cx->db, &a);
    if (rc)
        log_error("audit", "cannot record %s on %s: %s", action, target, ss_strerror(rc));
}
