/* sqlite_accounts.c — store_accounts.h on SQLite: users, organisations and
 * roles, memberships, API keys, invitations, the audit log, devices, the
 * org tree and quota settings (the sessions are in sqlite_sessions.c). */
#include "store/sqlite_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#define LOG_MOD SQ_LOG_MOD

/* Used by entries defined before them. */
static int sq_membership_get(store_engine_conn *ec, const char *org_id, const char *user_id,
                             store_role *out);
static int sq_member_count(store_engine_conn *ec, const char *org_id, store_role role,
                           int64_t *out);

/* ---- users --------------------------------------------------------------------- */

static int sq_user_count(store_engine_conn *ec, int64_t *out)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_USER_COUNT, &st);
    if (err)
        return err;
    err = sq_step_int64(c, STMT_USER_COUNT, out);
    return err == SS_NOT_FOUND ? SS_STORE : err;
}

static int sq_user_create(store_engine_conn *ec, const store_user *u)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_USER_INSERT, &st);
    if (err)
        return err;
    err = sq_bind_check(
        c, STMT_USER_INSERT,
        sq_bind_text(st, 1, u->id) | sq_bind_text(st, 2, u->email) |
            sq_bind_text(st, 3, u->pw_hash) | sqlite3_bind_int(st, 4, u->superadmin != 0) |
            sqlite3_bind_int(st, 5, u->disabled != 0) | sqlite3_bind_int64(st, 6, u->created_at));
    return err ? err : sq_step_done(c, STMT_USER_INSERT);
}

static void user_from_row(sqlite3_stmt *st, store_user *u)
{
    sq_col_text(st, 0, u->id, sizeof u->id);
    sq_col_text(st, 1, u->email, sizeof u->email);
    sq_col_text(st, 2, u->pw_hash, sizeof u->pw_hash);
    u->superadmin = sqlite3_column_int(st, 3);
    u->disabled = sqlite3_column_int(st, 4);
    u->created_at = sqlite3_column_int64(st, 5);
    u->login_unlocked_at = 0; /* read only by store_user_get*, column 6 */
}

static int user_get_by(sq_conn *c, stmt_id id, const char *key, store_user *out)
{
    sqlite3_stmt *st = NULL;
    int err = sq_row_by_key(c, id, key, &st);
    if (!err) {
        user_from_row(st, out);
        out->login_unlocked_at = sqlite3_column_int64(st, 6);
    }
    sqlite3_reset(st);
    return err;
}

static int sq_user_get(store_engine_conn *ec, const char *id, store_user *out)
{
    sq_conn *c = sq_conn_of(ec);
    return user_get_by(c, STMT_USER_GET, id, out);
}

static int sq_user_get_by_email(store_engine_conn *ec, const char *email, store_user *out)
{
    sq_conn *c = sq_conn_of(ec);
    return user_get_by(c, STMT_USER_GET_EMAIL, email, out);
}

static int sq_user_set_password(store_engine_conn *ec, const char *id, const char *pw_hash)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key2(c, STMT_USER_SET_PW, id, pw_hash, &st);
    return err ? err : sq_step_changed(c, STMT_USER_SET_PW);
}

static int sq_user_set_disabled(store_engine_conn *ec, const char *id, int disabled)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_USER_SET_DISABLED, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_USER_SET_DISABLED,
                        sq_bind_text(st, 1, id) | sqlite3_bind_int(st, 2, disabled != 0));
    return err ? err : sq_step_changed(c, STMT_USER_SET_DISABLED);
}

static int sq_user_unlock_login(store_engine_conn *ec, const char *id, int64_t now_ms)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_USER_UNLOCK, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_USER_UNLOCK,
                        sq_bind_text(st, 1, id) | sqlite3_bind_int64(st, 2, now_ms));
    return err ? err : sq_step_changed(c, STMT_USER_UNLOCK);
}

/* USER_IN_REACH names admin by its stored number. */
_Static_assert(STORE_ROLE_ADMIN == 4, "USER_IN_REACH's `role >= 4` must name admin");

static int sq_user_in_reach(store_engine_conn *ec, const char *admin_id, const char *key_org_id,
                            const char *user_id, int *out)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_USER_IN_REACH, &st);
    if (err)
        return err;
    err = sq_bind_check(
        c, STMT_USER_IN_REACH,
        (admin_id ? sq_bind_text(st, 1, admin_id) : sqlite3_bind_null(st, 1)) |
            (key_org_id ? sq_bind_text(st, 2, key_org_id) : sqlite3_bind_null(st, 2)) |
            sq_bind_text(st, 3, user_id));
    if (err)
        return err;
    err = sq_step_row(c, STMT_USER_IN_REACH);
    if (!err)
        *out = sqlite3_column_int(st, 0) != 0;
    sqlite3_reset(st);
    return err == SS_NOT_FOUND ? SS_STORE : err;
}

/* ---- organisations and roles ------------------------------------------------ */

static int sq_org_create(store_engine_conn *ec, const store_org *org)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_ORG_INSERT, &st);
    if (err)
        return err;
    int rc = sq_bind_text(st, 1, org->id) | sq_bind_text(st, 2, org->name);
    rc |= org->parent_id[0] ? sq_bind_text(st, 3, org->parent_id) : sqlite3_bind_null(st, 3);
    rc |= sqlite3_bind_int64(st, 4, org->created_at);
    err = sq_bind_check(c, STMT_ORG_INSERT, rc);
    return err ? err : sq_step_done(c, STMT_ORG_INSERT);
}

static void org_from_row(sqlite3_stmt *st, store_org *org)
{
    sq_col_text(st, 0, org->id, sizeof org->id);
    sq_col_text(st, 1, org->name, sizeof org->name);
    sq_col_text(st, 2, org->parent_id, sizeof org->parent_id);
    org->created_at = sqlite3_column_int64(st, 3);
}

static int sq_org_get(store_engine_conn *ec, const char *id, store_org *out)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_row_by_key(c, STMT_ORG_GET, id, &st);
    if (!err)
        org_from_row(st, out);
    sqlite3_reset(st);
    return err;
}

static int sq_org_list(store_engine_conn *ec, const char *user_id, store_org_cb cb, void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    stmt_id id = user_id ? STMT_ORG_LIST_USER : STMT_ORG_LIST_ALL;
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, id, &st);
    if (err)
        return err;
    if (user_id) {
        err = sq_bind_check(c, id, sq_bind_text(st, 1, user_id));
        if (err)
            return err;
    }
    int rc;
    store_org org;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        org_from_row(st, &org);
        if (cb(ctx, &org) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return sq_rows_end(c, id, rc);
}

static int membership_delete(sq_conn *c, const char *org_id, const char *user_id)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key2(c, STMT_MEMBER_DELETE, org_id, user_id, &st);
    return err ? err : sq_step_changed(c, STMT_MEMBER_DELETE);
}

/* SS_NOT_FOUND for an unknown org or user (foreign keys), or when removing
 * a membership that does not exist. */
static int sq_membership_set(store_engine_conn *ec, const char *org_id, const char *user_id,
                             store_role role)
{
    sq_conn *c = sq_conn_of(ec);
    if ((int)role < (int)STORE_ROLE_NONE || (int)role > (int)STORE_ROLE_OWNER)
        return SS_INVAL;
    if (role == STORE_ROLE_NONE)
        return membership_delete(c, org_id, user_id);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_MEMBER_UPSERT, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_MEMBER_UPSERT,
                        sq_bind_text(st, 1, org_id) | sq_bind_text(st, 2, user_id) |
                            sqlite3_bind_int(st, 3, (int)role));
    return err ? err : sq_step_done(c, STMT_MEMBER_UPSERT);
}

static int sq_membership_change(store_engine_conn *ec, const char *org_id, const char *user_id,
                                store_role role)
{
    sq_conn *c = sq_conn_of(ec);
    int err = sq_tx_begin(c);
    if (err)
        return err;
    store_role current = STORE_ROLE_NONE;
    int64_t owners = 0;
    err = sq_membership_get(sq_ec(c), org_id, user_id, &current);
    if (!err && current == STORE_ROLE_OWNER && role != STORE_ROLE_OWNER) {
        err = sq_member_count(sq_ec(c), org_id, STORE_ROLE_OWNER, &owners);
        if (!err && owners <= 1)
            err = SS_CONFLICT;
    }
    if (!err)
        err = sq_membership_set(sq_ec(c), org_id, user_id, role);
    return sq_tx_end(c, err);
}

/* One statement: the walk up from the org (at most STORE_ORG_DEPTH_MAX
 * steps) counts the orgs found (0: no such org) and takes the user's
 * highest role among them. */
static int sq_role_effective(store_engine_conn *ec, const char *user_id, const char *org_id,
                             store_role *out)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key2(c, STMT_ROLE_EFFECTIVE, user_id, org_id, &st);
    if (err)
        return err;
    err = sq_step_row(c, STMT_ROLE_EFFECTIVE);
    if (!err && sqlite3_column_int64(st, 0) == 0)
        err = SS_NOT_FOUND;
    if (!err) {
        int role = sqlite3_column_int(st, 1);
        *out = role > STORE_ROLE_OWNER ? STORE_ROLE_OWNER : (store_role)role;
    }
    sqlite3_reset(st);
    return err;
}

static int sq_org_rename(store_engine_conn *ec, const char *id, const char *name)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key2(c, STMT_ORG_RENAME, id, name, &st);
    return err ? err : sq_step_changed(c, STMT_ORG_RENAME);
}

static int sq_member_list(store_engine_conn *ec, const char *org_id, store_member_cb cb, void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key(c, STMT_ORG_MEMBERS, org_id, &st);
    if (err)
        return err;
    int rc;
    store_user u;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        user_from_row(st, &u);
        if (cb(ctx, &u, (store_role)sqlite3_column_int(st, 6)) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return sq_rows_end(c, STMT_ORG_MEMBERS, rc);
}

static int sq_membership_list(store_engine_conn *ec, const char *user_id, store_membership_cb cb,
                              void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key(c, STMT_MEMBER_LIST, user_id, &st);
    if (err)
        return err;
    int rc;
    char org_id[SS_ID_LEN + 1];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sq_col_text(st, 0, org_id, sizeof org_id);
        if (cb(ctx, org_id, (store_role)sqlite3_column_int(st, 1)) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return sq_rows_end(c, STMT_MEMBER_LIST, rc);
}

/* Under the write lock, so no child can appear between the check and the
 * delete. The parent_id foreign key would refuse the delete anyway, but as
 * a constraint error that reads as "not found". */
static int org_delete_check(sq_conn *c, const char *id)
{
    sqlite3_stmt *st = NULL;
    int err = sq_row_by_key(c, STMT_ORG_DELETE_CHECK, id, &st);
    if (!err && sqlite3_column_int64(st, 0) == 0)
        err = SS_NOT_FOUND;
    else if (!err && sqlite3_column_int(st, 1) != 0)
        err = SS_CONFLICT;
    sqlite3_reset(st);
    return err;
}

/* Children before parents: the series go to the purge list (their readings
 * are deleted later, in bounded chunks: store_purge_step), then series,
 * devices, API keys, memberships, the quota, then the org; then its MQTT
 * broker state (sq_org_delete). Audit rows, usage and session records
 * stay: they are history (and billing). */
static int org_delete_rows(sq_conn *c, const char *id)
{
    static const stmt_id steps[] = {
        STMT_ORG_PURGE_SERIES, STMT_ORG_DEL_SERIES, STMT_ORG_DEL_DEVICES, STMT_ORG_DEL_APIKEYS,
        STMT_ORG_DEL_MEMBERS,  STMT_ORG_DEL_QUOTA,  STMT_ORG_DEL_INVITES, STMT_ORG_DELETE};
    int err = SS_OK;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0] && !err; i++) {
        sqlite3_stmt *st = NULL;
        err = sq_stmt_get(c, steps[i], &st);
        if (!err)
            err = sq_bind_check(c, steps[i], sq_bind_text(st, 1, id));
        if (!err)
            err = steps[i] == STMT_ORG_DELETE ? sq_step_changed(c, steps[i])
                                              : sq_step_done(c, steps[i]);
    }
    return err;
}

static int sq_org_delete(store_engine_conn *ec, const char *id)
{
    sq_conn *c = sq_conn_of(ec);
    int err = sq_tx_begin(c);
    if (err)
        return err;
    err = org_delete_check(c, id);
    if (!err) {
        /* Inside the write lock: see store.device_generation. */
        atomic_fetch_add(&c->owner->device_generation, 1);
        err = org_delete_rows(c, id);
    }
    if (!err)
        err = sq_broker_drop_org(c, id);
    return sq_tx_end(c, err);
}

static int sq_org_device_ids(store_engine_conn *ec, const char *org_id,
                             int (*cb)(void *ctx, const char *device_id), void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key(c, STMT_ORG_DEVICE_IDS, org_id, &st);
    if (err)
        return err;
    int rc;
    char id[SS_ID_LEN + 1];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sq_col_text(st, 0, id, sizeof id);
        if (cb(ctx, id) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return sq_rows_end(c, STMT_ORG_DEVICE_IDS, rc);
}

static int sq_membership_get(store_engine_conn *ec, const char *org_id, const char *user_id,
                             store_role *out)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key2(c, STMT_MEMBER_GET, org_id, user_id, &st);
    if (err)
        return err;
    err = sq_step_row(c, STMT_MEMBER_GET);
    if (!err) {
        int role = sqlite3_column_int(st, 0);
        *out = role > STORE_ROLE_OWNER ? STORE_ROLE_OWNER : (store_role)role;
    } else if (err == SS_NOT_FOUND) {
        *out = STORE_ROLE_NONE;
        err = SS_OK;
    }
    sqlite3_reset(st);
    return err;
}

/* SS_INVAL for a role no membership can hold (STORE_ROLE_NONE included:
 * non-members have no row to count). */
static int sq_member_count(store_engine_conn *ec, const char *org_id, store_role role, int64_t *out)
{
    sq_conn *c = sq_conn_of(ec);
    if ((int)role < (int)STORE_ROLE_DASHBOARD || (int)role > (int)STORE_ROLE_OWNER)
        return SS_INVAL;
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_MEMBER_COUNT, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_MEMBER_COUNT,
                        sq_bind_text(st, 1, org_id) | sqlite3_bind_int(st, 2, (int)role));
    if (err)
        return err;
    err = sq_step_int64(c, STMT_MEMBER_COUNT, out);
    return err == SS_NOT_FOUND ? SS_STORE : err;
}

/* ---- API keys ------------------------------------------------------------------ */

/* Every scope bit store.h defines; a key with any other bit is refused so
 * an unknown scope can never be granted by accident. */
#define STORE_SCOPES_ALL (STORE_SCOPE_DATA_READ | STORE_SCOPE_DATA_WRITE | STORE_SCOPE_MANAGE)

/* SS_INVAL for unknown scope bits. */
static int sq_apikey_create(store_engine_conn *ec, const store_apikey *k)
{
    sq_conn *c = sq_conn_of(ec);
    if ((k->scopes & ~STORE_SCOPES_ALL) != 0)
        return SS_INVAL;
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_APIKEY_INSERT, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_APIKEY_INSERT,
                        sq_bind_text(st, 1, k->id) | sq_bind_text(st, 2, k->org_id) |
                            sq_bind_text(st, 3, k->name) | sqlite3_bind_int64(st, 4, k->scopes) |
                            sq_bind_blob(st, 5, k->key_hash, sizeof k->key_hash) |
                            sq_bind_text(st, 6, k->created_by) |
                            sqlite3_bind_int64(st, 7, k->created_at));
    return err ? err : sq_step_done(c, STMT_APIKEY_INSERT);
}

static void apikey_from_row(sqlite3_stmt *st, store_apikey *k)
{
    sq_col_text(st, 0, k->id, sizeof k->id);
    sq_col_text(st, 1, k->org_id, sizeof k->org_id);
    sq_col_text(st, 2, k->name, sizeof k->name);
    k->scopes = (unsigned)sqlite3_column_int64(st, 3) & STORE_SCOPES_ALL;
    sq_col_blob(st, 4, k->key_hash, sizeof k->key_hash);
    sq_col_text(st, 5, k->created_by, sizeof k->created_by);
    k->created_at = sqlite3_column_int64(st, 6);
}

/* Runs a one-row lookup whose ?1 is already bound. */
static int apikey_get_row(sq_conn *c, stmt_id id, store_apikey *out)
{
    int err = sq_step_row(c, id);
    if (!err)
        apikey_from_row(c->stmts[id], out);
    sqlite3_reset(c->stmts[id]);
    return err;
}

static int sq_apikey_get(store_engine_conn *ec, const char *id, store_apikey *out)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key(c, STMT_APIKEY_GET, id, &st);
    return err ? err : apikey_get_row(c, STMT_APIKEY_GET, out);
}

static int sq_apikey_get_by_hash(store_engine_conn *ec, const uint8_t hash[SS_SECRET_HASH_BYTES],
                                 store_apikey *out)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_APIKEY_GET_HASH, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_APIKEY_GET_HASH, sq_bind_blob(st, 1, hash, SS_SECRET_HASH_BYTES));
    return err ? err : apikey_get_row(c, STMT_APIKEY_GET_HASH, out);
}

static int sq_apikey_list(store_engine_conn *ec, const char *org_id, store_apikey_cb cb, void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key(c, STMT_APIKEY_LIST, org_id, &st);
    if (err)
        return err;
    int rc;
    store_apikey k;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        apikey_from_row(st, &k);
        if (cb(ctx, &k) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return sq_rows_end(c, STMT_APIKEY_LIST, rc);
}

/* The key's MQTT sessions go with it, in its transaction. */
static int sq_apikey_delete(store_engine_conn *ec, const char *id)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_tx_begin(c);
    if (err)
        return err;
    err = sq_stmt_key(c, STMT_APIKEY_DELETE, id, &st);
    if (!err)
        err = sq_step_changed(c, STMT_APIKEY_DELETE);
    if (!err)
        err = sq_broker_drop_principal(c, id);
    return sq_tx_end(c, err);
}

/* ---- invitations ------------------------------------------------------------- */

static int sq_invitation_put(store_engine_conn *ec, const store_invitation *inv)
{
    sq_conn *c = sq_conn_of(ec);
    if ((int)inv->role < (int)STORE_ROLE_DASHBOARD || (int)inv->role > (int)STORE_ROLE_OWNER)
        return SS_INVAL;
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_INVITE_UPSERT, &st);
    if (err)
        return err;
    err = sq_bind_check(
        c, STMT_INVITE_UPSERT,
        sq_bind_text(st, 1, inv->id) | sq_bind_text(st, 2, inv->org_id) |
            sq_bind_text(st, 3, inv->user_id) | sqlite3_bind_int(st, 4, (int)inv->role) |
            sq_bind_text(st, 5, inv->invited_by) | sqlite3_bind_int64(st, 6, inv->created_at));
    return err ? err : sq_step_done(c, STMT_INVITE_UPSERT);
}

static int sq_invitation_invite(store_engine_conn *ec, const store_user *new_user,
                                store_invitation *inv)
{
    sq_conn *c = sq_conn_of(ec);
    int err = sq_tx_begin(c);
    if (err)
        return err;
    store_user found;
    err = sq_user_get_by_email(sq_ec(c), new_user->email, &found);
    if (err == SS_NOT_FOUND) {
        found = *new_user;
        err = sq_user_create(sq_ec(c), &found);
    }
    if (!err) {
        memcpy(inv->user_id, found.id, sizeof inv->user_id);
        err = sq_invitation_put(sq_ec(c), inv);
    }
    return sq_tx_end(c, err);
}

static void invitation_from_row(sqlite3_stmt *st, store_invitation *inv)
{
    sq_col_text(st, 0, inv->id, sizeof inv->id);
    sq_col_text(st, 1, inv->org_id, sizeof inv->org_id);
    sq_col_text(st, 2, inv->user_id, sizeof inv->user_id);
    int role = sqlite3_column_int(st, 3);
    inv->role = role > STORE_ROLE_OWNER ? STORE_ROLE_OWNER : (store_role)role;
    sq_col_text(st, 4, inv->invited_by, sizeof inv->invited_by);
    inv->created_at = sqlite3_column_int64(st, 5);
    sq_col_text(st, 6, inv->email, sizeof inv->email);
}

static int sq_invitation_get(store_engine_conn *ec, const char *id, store_invitation *out)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_row_by_key(c, STMT_INVITE_GET, id, &st);
    if (!err)
        invitation_from_row(st, out);
    sqlite3_reset(st);
    return err;
}

static int invitation_rows(sq_conn *c, stmt_id id, const char *key, store_invitation_cb cb,
                           void *ctx)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key(c, id, key, &st);
    if (err)
        return err;
    int rc;
    store_invitation inv;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        invitation_from_row(st, &inv);
        if (cb(ctx, &inv) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return sq_rows_end(c, id, rc);
}

static int sq_invitation_list_user(store_engine_conn *ec, const char *user_id,
                                   store_invitation_cb cb, void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    return invitation_rows(c, STMT_INVITE_LIST_USER, user_id, cb, ctx);
}

static int sq_invitation_list_org(store_engine_conn *ec, const char *org_id, store_invitation_cb cb,
                                  void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    return invitation_rows(c, STMT_INVITE_LIST_ORG, org_id, cb, ctx);
}

static int sq_invitation_delete(store_engine_conn *ec, const char *id)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key(c, STMT_INVITE_DELETE, id, &st);
    return err ? err : sq_step_changed(c, STMT_INVITE_DELETE);
}

static int sq_invitation_accept(store_engine_conn *ec, const char *id, const char *user_id,
                                store_invitation *out)
{
    sq_conn *c = sq_conn_of(ec);
    int err = sq_tx_begin(c);
    if (err)
        return err;
    store_role current = STORE_ROLE_NONE;
    err = sq_invitation_get(sq_ec(c), id, out);
    if (!err && strcmp(out->user_id, user_id) != 0)
        err = SS_NOT_FOUND;
    if (!err)
        err = sq_membership_get(sq_ec(c), out->org_id, user_id, &current);
    if (!err && current < out->role)
        err = sq_membership_set(sq_ec(c), out->org_id, user_id, out->role);
    if (!err)
        err = sq_invitation_delete(sq_ec(c), id);
    return sq_tx_end(c, err);
}

/* ---- audit log ----------------------------------------------------------------- */

static int sq_audit_append(store_engine_conn *ec, const store_audit *a)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_AUDIT_INSERT, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_AUDIT_INSERT,
                        sqlite3_bind_int64(st, 1, a->ts) | sq_bind_text(st, 2, a->org_id) |
                            sq_bind_text(st, 3, a->actor) | sq_bind_text(st, 4, a->action) |
                            sq_bind_text(st, 5, a->target) | sq_bind_text(st, 6, a->addr) |
                            sq_bind_text(st, 7, a->detail) | sq_bind_text(st, 8, a->actor_name));
    return err ? err : sq_step_done(c, STMT_AUDIT_INSERT);
}

static void audit_from_row(sqlite3_stmt *st, store_audit *a)
{
    a->id = sqlite3_column_int64(st, 0);
    a->ts = sqlite3_column_int64(st, 1);
    sq_col_text(st, 2, a->org_id, sizeof a->org_id);
    sq_col_text(st, 3, a->actor, sizeof a->actor);
    sq_col_text(st, 4, a->action, sizeof a->action);
    sq_col_text(st, 5, a->target, sizeof a->target);
    sq_col_text(st, 6, a->addr, sizeof a->addr);
    sq_col_text(st, 7, a->detail, sizeof a->detail);
    sq_col_text(st, 8, a->actor_name, sizeof a->actor_name);
}

/* SS_INVAL for a limit of 0, as for readings queries. Entries with the same
 * ts come newest appended first (by id). */
static int sq_audit_list(store_engine_conn *ec, const char *org_id, int64_t from, int64_t to,
                         int64_t before_ts, int64_t before_id, size_t limit, store_audit_cb cb,
                         void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    if (limit == 0)
        return SS_INVAL;
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_AUDIT_LIST, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_AUDIT_LIST,
                        sq_bind_text(st, 1, org_id) | sqlite3_bind_int64(st, 2, from) |
                            sqlite3_bind_int64(st, 3, to) |
                            sqlite3_bind_int64(st, 4, sq_limit_i64(limit)) |
                            sqlite3_bind_int64(st, 5, before_ts) |
                            sqlite3_bind_int64(st, 6, before_id));
    if (err)
        return err;
    int rc;
    store_audit a;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        audit_from_row(st, &a);
        if (cb(ctx, &a) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return sq_rows_end(c, STMT_AUDIT_LIST, rc);
}

/* ---- devices ------------------------------------------------------------------ */

/* SS_QUOTA when the org or an ancestor already has as many devices in its
 * subtree as its max_devices allows. */
static int device_quota_check(sq_conn *c, const char *org_id)
{
    sqlite3_stmt *st = NULL;
    int err = sq_row_by_key(c, STMT_DEVICE_QUOTA_FULL, org_id, &st);
    if (!err && sqlite3_column_int(st, 0))
        err = SS_QUOTA;
    sqlite3_reset(st);
    return err == SS_NOT_FOUND ? SS_STORE : err;
}

static int device_insert(sq_conn *c, const store_device *d)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_DEVICE_INSERT, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_DEVICE_INSERT,
                        sq_bind_text(st, 1, d->id) | sq_bind_text(st, 2, d->org_id) |
                            sq_bind_text(st, 3, d->name) | sq_bind_text(st, 4, d->description) |
                            sq_bind_blob(st, 5, d->token_hash, sizeof d->token_hash) |
                            sqlite3_bind_int(st, 6, d->disabled != 0) |
                            sqlite3_bind_int64(st, 7, d->created_at) |
                            sq_bind_text(st, 8, d->attributes[0] ? d->attributes : "{}"));
    return err ? err : sq_step_done(c, STMT_DEVICE_INSERT);
}

/* The check and the insert in one write transaction: two creates at once
 * cannot both pass the last free place. */
static int sq_device_create(store_engine_conn *ec, const store_device *d)
{
    sq_conn *c = sq_conn_of(ec);
    int err = sq_tx_begin(c);
    if (err)
        return err;
    err = device_quota_check(c, d->org_id);
    if (!err)
        err = device_insert(c, d);
    return sq_tx_end(c, err);
}

static void device_from_row(sqlite3_stmt *st, store_device *d)
{
    sq_col_text(st, 0, d->id, sizeof d->id);
    sq_col_text(st, 1, d->org_id, sizeof d->org_id);
    sq_col_text(st, 2, d->name, sizeof d->name);
    sq_col_text(st, 3, d->description, sizeof d->description);
    sq_col_blob(st, 4, d->token_hash, sizeof d->token_hash);
    d->disabled = sqlite3_column_int(st, 5);
    d->created_at = sqlite3_column_int64(st, 6);
    sq_col_text(st, 7, d->attributes, sizeof d->attributes);
    d->last_seen = sqlite3_column_int64(st, 8);
    sq_col_text(st, 9, d->last_protocol, sizeof d->last_protocol);
}

static int sq_device_get(store_engine_conn *ec, const char *id, store_device *out)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_row_by_key(c, STMT_DEVICE_GET, id, &st);
    if (!err)
        device_from_row(st, out);
    sqlite3_reset(st);
    return err;
}

/* store_device is 2.3 KiB: one on the heap per list call, not per row. */
static int device_rows(sq_conn *c, stmt_id id, store_device_cb cb, void *ctx)
{
    store_device *d = malloc(sizeof *d);
    if (!d) {
        sqlite3_reset(c->stmts[id]);
        return SS_NOMEM;
    }
    int rc;
    while ((rc = sqlite3_step(c->stmts[id])) == SQLITE_ROW) {
        device_from_row(c->stmts[id], d);
        if (cb(ctx, d) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    free(d);
    return sq_rows_end(c, id, rc);
}

static int sq_device_list(store_engine_conn *ec, const char *org_id, store_device_cb cb, void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key(c, STMT_DEVICE_LIST, org_id, &st);
    return err ? err : device_rows(c, STMT_DEVICE_LIST, cb, ctx);
}

static int sq_device_list_after(store_engine_conn *ec, const char *org_id,
                                const char *after_name, const char *after_id,
                                store_device_cb cb, void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_DEVICE_LIST_AFTER, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_DEVICE_LIST_AFTER,
                        sq_bind_text(st, 1, org_id) | sq_bind_text(st, 2, after_name) |
                            sq_bind_text(st, 3, after_id));
    return err ? err : device_rows(c, STMT_DEVICE_LIST_AFTER, cb, ctx);
}

static int device_seen_one(sq_conn *c, const store_device_seen *r)
{
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_DEVICE_SET_SEEN, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_DEVICE_SET_SEEN,
                        sq_bind_text(st, 1, r->id) | sqlite3_bind_int64(st, 2, r->at) |
                            sq_bind_text(st, 3, r->protocol));
    return err ? err : sq_step_done(c, STMT_DEVICE_SET_SEEN);
}

/* Every row in one transaction: one commit a flush, however many devices. */
static int sq_device_set_seen(store_engine_conn *ec, const store_device_seen *rows, size_t n)
{
    sq_conn *c = sq_conn_of(ec);
    for (size_t i = 0; i < n; i++)
        if (!sq_arr_ok(rows[i].id, sizeof rows[i].id) ||
            !sq_arr_ok(rows[i].protocol, sizeof rows[i].protocol))
            return SS_INVAL;
    if (n == 0)
        return SS_OK;
    int err = sq_tx_begin(c);
    for (size_t i = 0; !err && i < n; i++)
        err = device_seen_one(c, &rows[i]);
    return sq_tx_end(c, err);
}

static int sq_device_list_all(store_engine_conn *ec, store_device_cb cb, void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_DEVICE_LIST_ALL, &st);
    return err ? err : device_rows(c, STMT_DEVICE_LIST_ALL, cb, ctx);
}

static int sq_device_update(store_engine_conn *ec, const store_device *d)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_DEVICE_UPDATE, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_DEVICE_UPDATE,
                        sq_bind_text(st, 1, d->id) | sq_bind_text(st, 2, d->name) |
                            sq_bind_text(st, 3, d->description) |
                            sqlite3_bind_int(st, 4, d->disabled != 0) |
                            sq_bind_text(st, 5, d->attributes[0] ? d->attributes : "{}"));
    return err ? err : sq_step_changed(c, STMT_DEVICE_UPDATE);
}

static int sq_device_set_token(store_engine_conn *ec, const char *id,
                               const uint8_t hash[SS_SECRET_HASH_BYTES])
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_DEVICE_SET_TOKEN, &st);
    if (err)
        return err;
    err = sq_bind_check(c, STMT_DEVICE_SET_TOKEN,
                        sq_bind_text(st, 1, id) | sq_bind_blob(st, 2, hash, SS_SECRET_HASH_BYTES));
    return err ? err : sq_step_changed(c, STMT_DEVICE_SET_TOKEN);
}

/* The series go to the purge list (their readings are deleted later, in
 * bounded chunks: store_purge_step), then series, then the device (whose
 * absence is SS_NOT_FOUND and rolls everything back). */
static int device_delete_rows(sq_conn *c, const char *id)
{
    static const stmt_id steps[] = {STMT_DEVICE_PURGE_SERIES, STMT_DEVICE_DEL_SERIES,
                                    STMT_DEVICE_DELETE};
    int err = SS_OK;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0] && !err; i++) {
        sqlite3_stmt *st = NULL;
        err = sq_stmt_get(c, steps[i], &st);
        if (!err)
            err = sq_bind_check(c, steps[i], sq_bind_text(st, 1, id));
    }
    if (!err)
        err = sq_step_done(c, STMT_DEVICE_PURGE_SERIES);
    if (!err)
        err = sq_step_done(c, STMT_DEVICE_DEL_SERIES);
    if (!err)
        err = sq_step_changed(c, STMT_DEVICE_DELETE);
    if (!err)
        err = sq_broker_drop_principal(c, id);
    return err;
}

static int sq_device_delete(store_engine_conn *ec, const char *id)
{
    sq_conn *c = sq_conn_of(ec);
    int err = sq_tx_begin(c);
    if (err)
        return err;
    /* Inside the write lock: see store.device_generation. */
    atomic_fetch_add(&c->owner->device_generation, 1);
    return sq_tx_end(c, device_delete_rows(c, id));
}

/* ---- org tree and device count ----------------------------------------------------- */

static int sq_org_tree(store_engine_conn *ec,
                       int (*cb)(void *ctx, const char *id, const char *parent_id), void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_ORG_TREE, &st);
    if (err)
        return err;
    int rc;
    char id[SS_ID_LEN + 1], parent[SS_ID_LEN + 1];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sq_col_text(st, 0, id, sizeof id);
        sq_col_text(st, 1, parent, sizeof parent);
        if (cb(ctx, id, parent) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return sq_rows_end(c, STMT_ORG_TREE, rc);
}

/* Breadth first (by depth, then id), so the org itself comes first.
 * SS_NOT_FOUND when there is no such org. */
static int sq_org_subtree(store_engine_conn *ec, const char *org_id,
                          int (*cb)(void *ctx, const char *id), void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_key(c, STMT_ORG_SUBTREE, org_id, &st);
    if (err)
        return err;
    int rc;
    size_t rows = 0;
    char id[SS_ID_LEN + 1];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        rows++;
        sq_col_text(st, 0, id, sizeof id);
        if (cb(ctx, id) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    err = sq_rows_end(c, STMT_ORG_SUBTREE, rc);
    return !err && rows == 0 ? SS_NOT_FOUND : err;
}

/* 0 for an org without devices, or with no such org. */

/* ---- quotas ----------------------------------------------------------------------- */

/* SS_INVAL for a negative limit; SS_NOT_FOUND (foreign key) when setting a
 * quota on an org that does not exist. Removing a quota never set is not
 * an error. */
static int sq_quota_set(store_engine_conn *ec, const store_quota *q)
{
    sq_conn *c = sq_conn_of(ec);
    if (!sq_arr_ok(q->org_id, sizeof q->org_id) || q->max_devices < 0 ||
        q->max_readings_per_day < 0 || q->max_bytes_per_day < 0)
        return SS_INVAL;
    int none = q->max_devices == 0 && q->max_readings_per_day == 0 && q->max_bytes_per_day == 0;
    stmt_id id = none ? STMT_QUOTA_DELETE : STMT_QUOTA_UPSERT;
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, id, &st);
    if (err)
        return err;
    int rc = sq_bind_arr(st, 1, q->org_id, sizeof q->org_id);
    if (!none)
        rc |= sqlite3_bind_int64(st, 2, q->max_devices) |
              sqlite3_bind_int64(st, 3, q->max_readings_per_day) |
              sqlite3_bind_int64(st, 4, q->max_bytes_per_day);
    err = sq_bind_check(c, id, rc);
    return err ? err : sq_step_done(c, id);
}

static void quota_from_row(sqlite3_stmt *st, store_quota *q)
{
    sq_col_text(st, 0, q->org_id, sizeof q->org_id);
    q->max_devices = sqlite3_column_int64(st, 1);
    q->max_readings_per_day = sqlite3_column_int64(st, 2);
    q->max_bytes_per_day = sqlite3_column_int64(st, 3);
}

static int sq_quota_get(store_engine_conn *ec, const char *org_id, store_quota *out)
{
    sq_conn *c = sq_conn_of(ec);
    *out = (store_quota){0};
    snprintf(out->org_id, sizeof out->org_id, "%s", org_id);
    sqlite3_stmt *st = NULL;
    int err = sq_row_by_key(c, STMT_QUOTA_GET, org_id, &st);
    if (!err)
        quota_from_row(st, out);
    sqlite3_reset(st);
    return err == SS_NOT_FOUND ? SS_OK : err;
}

/* Orgs with a quota, by org id. */
static int sq_quota_list(store_engine_conn *ec, int (*cb)(void *ctx, const store_quota *q),
                         void *ctx)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_QUOTA_LIST, &st);
    if (err)
        return err;
    int rc;
    store_quota q;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        quota_from_row(st, &q);
        if (cb(ctx, &q) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return sq_rows_end(c, STMT_QUOTA_LIST, rc);
}

/* ---- the table ---------------------------------------------------------------- */

const store_accounts_table sq_accounts_table = {
    .user_count = sq_user_count,
    .user_create = sq_user_create,
    .user_get = sq_user_get,
    .user_get_by_email = sq_user_get_by_email,
    .user_set_password = sq_user_set_password,
    .user_set_disabled = sq_user_set_disabled,
    .user_unlock_login = sq_user_unlock_login,
    .user_in_reach = sq_user_in_reach,
    .session_create = sq_session_create,
    .session_write_held = sq_session_write_held,
    .session_get = sq_session_get,
    .session_delete = sq_session_delete,
    .session_delete_user = sq_session_delete_user,
    .session_touch = sq_session_touch,
    .session_list_user = sq_session_list_user,
    .session_delete_id = sq_session_delete_id,
    .org_create = sq_org_create,
    .org_get = sq_org_get,
    .org_list = sq_org_list,
    .membership_set = sq_membership_set,
    .role_effective = sq_role_effective,
    .org_delete = sq_org_delete,
    .org_device_ids = sq_org_device_ids,
    .org_rename = sq_org_rename,
    .member_list = sq_member_list,
    .membership_change = sq_membership_change,
    .membership_get = sq_membership_get,
    .member_count = sq_member_count,
    .membership_list = sq_membership_list,
    .invitation_put = sq_invitation_put,
    .invitation_invite = sq_invitation_invite,
    .invitation_get = sq_invitation_get,
    .invitation_list_user = sq_invitation_list_user,
    .invitation_list_org = sq_invitation_list_org,
    .invitation_delete = sq_invitation_delete,
    .invitation_accept = sq_invitation_accept,
    .org_tree = sq_org_tree,
    .org_subtree = sq_org_subtree,
    .quota_set = sq_quota_set,
    .quota_get = sq_quota_get,
    .quota_list = sq_quota_list,
    .apikey_create = sq_apikey_create,
    .apikey_get = sq_apikey_get,
    .apikey_get_by_hash = sq_apikey_get_by_hash,
    .apikey_list = sq_apikey_list,
    .apikey_delete = sq_apikey_delete,
    .audit_append = sq_audit_append,
    .audit_list = sq_audit_list,
    .device_create = sq_device_create,
    .device_get = sq_device_get,
    .device_list = sq_device_list,
    .device_list_all = sq_device_list_all,
    .device_list_after = sq_device_list_after,
    .device_set_seen = sq_device_set_seen,
    .device_update = sq_device_update,
    .device_set_token = sq_device_set_token,
    .device_delete = sq_device_delete,
};
