/* service.h — what every lifecycle change of aaa/ is given, and the two
 * side effects they share: the audit entry and revocation.
 *
 * The lifecycle of devices (aaa/devices.h), orgs (aaa/orgs.h), members and
 * invitations (aaa/members.h) and API keys (aaa/keys.h) is sequenced here,
 * once, for every caller: the REST handlers today, MQTT and the web app
 * next. A caller first checks access (aaa/access.h) and validates its
 * input, answering in its own protocol; each change then runs its store,
 * cache, revocation, quota and audit steps in the one right order and
 * answers an SS code. */
#ifndef SS_AAA_SERVICE_H
#define SS_AAA_SERVICE_H

#include <jansson.h>
#include <stdint.h>

#include "aaa/conn_registry.h"
#include "aaa/device_cache.h"
#include "aaa/principal.h"
#include "aaa/quota.h"
#include "store/maint.h"
#include "store/store.h"

typedef struct aaa_ctx {
    store_conn *db;             /* the caller's store handle (a worker's) */
    device_cache *devices;      /* device tokens for ingest */
    conn_registry *conns;       /* live connections; NULL: none to close */
    quota *quotas;              /* the quota tree; NULL: no quotas */
    store_maint *maint;         /* wakes the purge of deleted readings; may be NULL */
    const aaa_principal *who;   /* who acts: the audit actor */
    const char *addr;           /* their address, for the audit log */
    int64_t now_ms;
    int revoked_self;           /* OUT: a change revoked the actor's own credential */
} aaa_ctx;

/* Closes every live connection of principal_id (a device, key or person
 * just revoked). Sets cx->revoked_self when that is the actor: its own
 * connection must close too, registered or not. */
void aaa_revoke(aaa_ctx *cx, const char *principal_id);

/* The registry key of a person's standing in orgs: "a:<user id>".
 * What holds access by a role rather than by a credential (a live stream)
 * registers under it and checks its access again when it is revoked. */
void aaa_access_key(const char *user_id, char out[CONN_REG_KEY_MAX + 1]);
/* A person's memberships changed (added, role changed, removed): what
 * registered under their access key checks again, at once. */
void aaa_revoke_access(aaa_ctx *cx, const char *user_id);

/* The registry key of what an org's dashboards show: "v:<org id>". A
 * person's stream of one device of the org registers under it and checks
 * its access again when it is revoked (a dashboard user reads only what a
 * dashboard shows). */
void aaa_shown_key(const char *org_id, char out[CONN_REG_KEY_MAX + 1]);
/* What the org's dashboards show may have narrowed (a dashboard changed or
 * deleted, a device's attributes changed): what registered under the
 * org's shown key checks again, at once. */
void aaa_revoke_shown(aaa_ctx *cx, const char *org_id);

/* Appends to the audit log: the actor (its id, and its email or the key's
 * name), its address, now. target is "<kind>:<id>"; detail (reference
 * stolen; NULL for none) is an object of the fields changed and their new
 * values, never a secret (audit_detail.h). A failure to write is logged,
 * never answered: the change is made. */
void aaa_audit(aaa_ctx *cx, const char *org_id, const char *action, const char *target,
               json_t *detail);

#endif
