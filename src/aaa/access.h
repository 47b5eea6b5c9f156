/* access.h — what a principal may do in an organisation (SPEC §2).
 *
 * Roles, each including the ones below it, hold in the org they are
 * granted in and all its descendants; the superadmin holds owner
 * everywhere. An API key acts within its org and the orgs below it with
 * its scopes (data:read ≈ viewer on data, data:write posts and publishes
 * data, manage ≈ admin). A device acts on its own data only.
 *
 * Every check answers SS codes, never a protocol's reply:
 *   SS_NOT_FOUND  the org (or the thing in it) does not exist, or the
 *                 principal has no standing there: answer as if nothing
 *                 were there, revealing nothing;
 *   SS_FORBIDDEN  the principal stands in the org but its role or scopes
 *                 do not allow this;
 *   or a store error. */
#ifndef SS_AAA_ACCESS_H
#define SS_AAA_ACCESS_H

#include "aaa/principal.h"
#include "aaa/quota.h"
#include "store/store.h"

/* The role a key's scopes give: admin for manage, viewer for data:read,
 * else none (data:write alone reads and manages nothing). */
store_role aaa_key_role(unsigned scopes);

/* *within = 1 when org_id is `ancestor` or one of its descendants. 0 or a
 * store error (SS_NOT_FOUND when org_id names no org). */
int aaa_org_within(store_conn *db, const char *org_id, const char *ancestor, int *within);

/* The principal's role in the org, through its ancestors. 0 with *role
 * (STORE_ROLE_NONE for a key without a role-giving scope, or a device, in
 * an org they stand in); SS_NOT_FOUND when the org does not exist or the
 * principal has no standing in it; or a store error. */
int aaa_role_in(store_conn *db, const aaa_principal *p, const char *org_id, store_role *role);

/* Checks the principal holds at least `min` in the org. 0 with *role (may
 * be NULL: STORE_ROLE_OWNER for the superadmin, STORE_ROLE_ADMIN for a
 * manage key), SS_NOT_FOUND, SS_FORBIDDEN or a store error. */
int aaa_require_role(store_conn *db, const aaa_principal *p, const char *org_id, store_role min,
                     store_role *role);

/* The role the audit actor ("user:<id>", "apikey:<id>") holds in the org
 * now, as a request of theirs would get it: STORE_ROLE_NONE once the
 * person is deleted, disabled or without a role there, or the key
 * revoked. 0 or a store error. */
int aaa_actor_role(store_conn *db, const char *actor, const char *org_id, store_role *out);

/* Why a holder of `mine` may not move a member from `from` to `to`
 * (nobody grants above their own role; only owners manage owners), or
 * NULL when they may. */
const char *aaa_grant_refusal(store_role mine, store_role from, store_role to);

/* Readings in an org's tree: reading them (a query, a live stream, the
 * readings/<device> topic), subscribing to topics under a device
 * (devices/<id>/…, MQTT) or writing them (posting, publishing). */
typedef enum {
    AAA_DATA_READ = 0,
    AAA_DATA_SUBSCRIBE,
    AAA_DATA_WRITE,
} aaa_data_op;

/* May the principal read or write data of the org, and of device_id in it
 * when not NULL (the caller has found the device to be of org_id)? This
 * is the question of an MQTT ACL ("may P publish / subscribe on org O's
 * topic T") and of a live stream:
 *   - a device: reads nothing (SS_FORBIDDEN); subscribes and writes under
 *     its own id only (device_id must be its id, org its org);
 *   - a key: read and subscribe with data:read or manage, write with
 *     data:write, in its org's tree (aaa_key_may_write);
 *   - a person: read as a viewer (a dashboard user reads only what a
 *     dashboard shows: aaa_check_dashboard_data); readings are written
 *     by devices and keys.
 * 0, SS_NOT_FOUND, SS_FORBIDDEN or a store error. */
int aaa_check_data(store_conn *db, const aaa_principal *p, const char *org_id,
                   const char *device_id, aaa_data_op op);

/* The same question, answered without the store for a principal in its
 * own org: a device in its org, a key in its org (not the orgs below:
 * those need the store), the superadmin anywhere (reads, never writes, as
 * a person). Any other person: SS_NOT_FOUND (their roles are in the
 * store: ask aaa_check_data). The MQTT broker's ACL, on the loop thread,
 * where every client acts in its own org's tree. 0, SS_NOT_FOUND,
 * SS_FORBIDDEN, or SS_AUTH for a disabled device. */
int aaa_check_data_own(const aaa_principal *p, const char *org_id, const char *device_id,
                       aaa_data_op op);

/* May an API key of key_org_id with `scopes` write readings of a device of
 * org_id? The rule aaa_check_data applies to a key, answered from the org
 * tree the quotas keep in memory, so that the loop thread asks it without
 * the store. 0; SS_NOT_FOUND when org_id is outside the key's org and the
 * orgs below it; else SS_FORBIDDEN without data:write. orgs NULL: the
 * key's own org only. */
int aaa_key_may_write(quota *orgs, const char *key_org_id, unsigned scopes, const char *org_id);

/* May the principal read the data of these n channels of device d (as
 * loaded; n 0: every channel of it)? The one rule of the data a device's
 * readings routes answer (its series, its latest values, the live stream
 * of it): a viewer or above, or a data:read key, reads every channel in
 * its orgs (aaa_check_data); a dashboard user only channels a dashboard
 * of d's org shows (aaa_dashboard_covers), each named (n 0 is refused);
 * anyone else nothing. 0, SS_NOT_FOUND (no standing in d's org),
 * SS_FORBIDDEN or a store error. */
int aaa_check_dashboard_data(store_conn *db, const aaa_principal *p, const store_device *d,
                             const char *const *channels, size_t n);

/* Loads the device and checks the principal holds at least `min` in its
 * org. 0; SS_NOT_FOUND for a malformed id, no such device or a device of
 * an org the principal does not stand in; SS_FORBIDDEN; or a store error. */
int aaa_device_access(store_conn *db, const aaa_principal *p, const char *device_id,
                      store_role min, store_device *out);

/* Loads the API key key_id and checks the principal holds at least `min`
 * in its org; the same answers as aaa_device_access. */
int aaa_key_access(store_conn *db, const aaa_principal *p, const char *key_id, store_role min,
                   store_apikey *out);

/* Role names ("dashboard", "viewer" …), and the name into the role (SS_INVAL when it
 * names none; "none" is no role one can grant). */
const char *aaa_role_name(store_role role);
int aaa_role_parse(const char *name, store_role *out);

/* Scope names ("data:read", "data:write", "manage"): the bit of a name (0
 * when unknown), and the name of the i-th scope (NULL past the last). */
unsigned aaa_scope_parse(const char *name);
const char *aaa_scope_name(size_t i, unsigned *bit);

/* Named rules of who may do what beyond one role in one org. Each
 * answers as the checks above; `why` (may be NULL) is set to the refusal
 * a person reads when the rule itself refuses, NULL when a role check
 * did (the protocol's usual words for that). */

/* Only the superadmin: managing users, the audit log outside any org,
 * the metrics. 0 or SS_FORBIDDEN. */
int aaa_require_superadmin(const aaa_principal *p);

/* May the principal create an org under parent_id (NULL: a top-level
 * org)? Only the superadmin creates top-level orgs; an admin of the
 * parent creates orgs below it. 0, SS_NOT_FOUND, SS_FORBIDDEN or a store
 * error. */
int aaa_may_create_org(store_conn *db, const aaa_principal *p, const char *parent_id,
                       const char **why);

/* A quota is set from above: by the superadmin, or by an admin of the
 * org's parent who stands in the org, never by the org's own admins; a
 * top-level org's only by the superadmin. OUT acting_in (SS_ID_LEN + 1
 * bytes): the org the principal was last found to stand in as the checks
 * went ("" for the superadmin, or none), the one the request acts in.
 * 0, SS_NOT_FOUND, SS_FORBIDDEN or a store error. */
int aaa_may_set_quota(store_conn *db, const aaa_principal *p, const store_org *org,
                      char *acting_in, const char **why);

/* Lists the orgs the principal sees: a person their memberships' orgs
 * (the superadmin every org), a key its org and the orgs below it. cb
 * as store_org_list. 0, SS_FORBIDDEN for a device, or a store error. */
int aaa_list_orgs(store_conn *db, const aaa_principal *p, store_org_cb cb, void *ctx);

#endif
