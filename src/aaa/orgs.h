/* orgs.h — the lifecycle of an organisation: store, quota tree, its
 * devices' tokens and connections, purge, audit (aaa/service.h).
 *
 * The caller checks access first: admin in the parent to create a child
 * (the superadmin for a top-level org), admin to rename, owner to delete,
 * admin in the parent to set a quota (the superadmin for a top-level org:
 * a quota is set from above, never by the org's own admins). */
#ifndef SS_AAA_ORGS_H
#define SS_AAA_ORGS_H

#include "aaa/service.h"

/* Creates an org under parent_id (NULL or "": top level) and makes it
 * known to the quota tree. OUT org. 0, SS_NOT_FOUND (no such parent) or a
 * store error. */
int aaa_org_create(aaa_ctx *cx, const char *name, const char *parent_id, store_org *org);

/* Renames the org (name NULL: unchanged). OUT org: as it is now. 0,
 * SS_NOT_FOUND or a store error. */
int aaa_org_rename(aaa_ctx *cx, const char *org_id, const char *name, store_org *org);

/* Deletes the org with its devices, memberships and API keys. Its devices'
 * tokens are refused and their connections closed at once; their
 * readings are purged in the background. 0, SS_CONFLICT (it has child
 * orgs: delete those first), SS_NOT_FOUND or a store error. */
int aaa_org_delete(aaa_ctx *cx, const char *org_id);

/* Sets the org's quota (q->org_id; all zero: none), in the store and in
 * the quota tree every protocol checks. 0 or a store error. */
int aaa_org_set_quota(aaa_ctx *cx, const store_quota *q);

#endif
