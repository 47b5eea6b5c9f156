/* store_accounts.h — accounts and metadata: users, sessions, organisations,
 * memberships, invitations, API keys, the audit log, devices, the org tree
 * and quota settings.
 *
 * The store_* functions below are what the rest of SensorSpace calls; each
 * hands the call to the accounts table of the engine chosen at open
 * (store_accounts_table, at the end), whose entries keep the same contract.
 * Conventions (returns, lists, strings): store_base.h. */
#ifndef SS_STORE_ACCOUNTS_H
#define SS_STORE_ACCOUNTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "store/store_base.h"

/* ---- users ------------------------------------------------------------ */

/* Argon2id encoded hash as produced by crypto_pwhash_str. */
#define STORE_PW_HASH_MAX 128

typedef struct store_user {
    char id[SS_ID_LEN + 1];
    char email[SS_EMAIL_MAX + 1];   /* stored lowercased by the caller */
    char pw_hash[STORE_PW_HASH_MAX];
    int superadmin;
    int disabled;
    int64_t created_at;
    int64_t login_unlocked_at;      /* ms of the last lift of its login throttle; 0: never */
} store_user;

int store_user_count(store_conn *c, int64_t *out);
/* SS_EXISTS when the id or email is taken. */
int store_user_create(store_conn *c, const store_user *u);
int store_user_get(store_conn *c, const char *id, store_user *out);
int store_user_get_by_email(store_conn *c, const char *email, store_user *out);
int store_user_set_password(store_conn *c, const char *id, const char *pw_hash);
int store_user_set_disabled(store_conn *c, const char *id, int disabled);
/* Lifts the login throttle of the account: sets login_unlocked_at to now_ms
 * (never backwards), which every server reads at the next sign-in.
 * SS_NOT_FOUND when there is no such user. */
int store_user_unlock_login(store_conn *c, const char *id, int64_t now_ms);
/* *out = 1 when the user is a direct member of an org in reach: an org
 * where admin_id holds admin or owner, or the org key_org_id, or a
 * descendant of either (NULL for either: none). */
int store_user_in_reach(store_conn *c, const char *admin_id, const char *key_org_id,
                        const char *user_id, int *out);

/* ---- sessions (people signed in) ------------------------------------- */

typedef struct store_session {
    uint8_t token_hash[SS_SECRET_HASH_BYTES];
    char id[SS_ID_LEN + 1];         /* not a secret: names the session in lists */
    char user_id[SS_ID_LEN + 1];
    char csrf[2 * SS_SECRET_BYTES + 1];
    char peer[46];                  /* address it signed in from */
    int64_t created_at;
    int64_t last_seen_at;           /* for idle expiry */
    int64_t expires_at;             /* absolute expiry */
} store_session;

/* On a full disk the session is held in memory instead (SS_OK), served by
 * every session call below as if stored (expiry, touch, delete, list), and
 * written by store_session_write_held once there is room; a restart before
 * that ends it (the person signs in again). SS_FULL only when
 * the memory for held sessions is full too. */
int store_session_create(store_conn *c, const store_session *s);
/* Writes the sessions held in memory, oldest first, until the disk is full
 * again (SS_FULL); expired ones are dropped. Call it now and then. */
int store_session_write_held(store_conn *c, int64_t now_ms);
/* SS_NOT_FOUND when absent or expired (expires_at <= now_ms). */
int store_session_get(store_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES], int64_t now_ms,
                      store_session *out);
/* The session deletes below, on a full disk: the delete is held in memory,
 * in force at once for every session call of this process and written by
 * store_session_write_held once there is room, and the call answers SS_FULL,
 * since a restart before that brings the sessions back. SS_STORE when the
 * memory for held deletes is full too: nothing was ended. */
int store_session_delete(store_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES]);
/* Deletes every session of the user except `keep` (NULL: all of them). */
int store_session_delete_user(store_conn *c, const char *user_id,
                              const uint8_t *keep /* SS_SECRET_HASH_BYTES or NULL */);
/* Sets last_seen_at. SS_NOT_FOUND when the session is gone. */
int store_session_touch(store_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES], int64_t now_ms);

typedef int (*store_session_cb)(void *ctx, const store_session *s);
/* The user's sessions not yet expired at now_ms (absolute expiry), newest
 * first. The token_hash of each is filled too; never show it. */
int store_session_list_user(store_conn *c, const char *user_id, int64_t now_ms,
                            store_session_cb cb, void *ctx);
/* Deletes the user's session with this id. SS_NOT_FOUND when the user has
 * none by that id. */
int store_session_delete_id(store_conn *c, const char *user_id, const char *id);

/* ---- organisations and roles ----------------------------------------- */

typedef struct store_org {
    char id[SS_ID_LEN + 1];
    char name[SS_NAME_MAX + 1];
    char parent_id[SS_ID_LEN + 1];  /* "" for a top-level org */
    int64_t created_at;
} store_org;

/* Roles, each including the ones below it (SPEC §2). The numbers are
 * stored (memberships, invitations): a new role is a migration. */
typedef enum {
    STORE_ROLE_NONE = 0,
    STORE_ROLE_DASHBOARD = 1,       /* the org's dashboards and what they show */
    STORE_ROLE_VIEWER = 2,
    STORE_ROLE_EDITOR = 3,
    STORE_ROLE_ADMIN = 4,
    STORE_ROLE_OWNER = 5,
} store_role;

/* Callbacks of list functions return 0 to go on, nonzero to stop early
 * (the list function then returns 0). Records passed are valid only during
 * the call. */
typedef int (*store_org_cb)(void *ctx, const store_org *org);

/* SS_NOT_FOUND when parent_id names no org. */
int store_org_create(store_conn *c, const store_org *org);
int store_org_get(store_conn *c, const char *id, store_org *out);
/* Every org when user_id is NULL; else the orgs the user is a member of and
 * all their descendants. Ordered by name, then id. */
int store_org_list(store_conn *c, const char *user_id, store_org_cb cb, void *ctx);
/* Sets (inserts or replaces) the user's role in the org; STORE_ROLE_NONE
 * removes the membership. */
int store_membership_set(store_conn *c, const char *org_id, const char *user_id, store_role role);
/* The user's highest role over the org and all its ancestors (a role in an
 * org holds in its descendants). STORE_ROLE_NONE when there is none, and
 * SS_NOT_FOUND when the org does not exist. */
int store_role_effective(store_conn *c, const char *user_id, const char *org_id,
                         store_role *out);

/* Deletes the org with its devices, memberships, API keys and MQTT broker
 * state (store_broker.h), in one transaction; the devices' readings go as
 * in store_device_delete.
 * SS_CONFLICT when it has child orgs (they must be deleted first),
 * SS_NOT_FOUND when absent. The audit log keeps its
 * entries. */
int store_org_delete(store_conn *c, const char *id);
/* Ids of the org's devices (for the token cache when deleting an org). */
int store_org_device_ids(store_conn *c, const char *org_id,
                         int (*cb)(void *ctx, const char *device_id), void *ctx);

/* Renames the org. SS_NOT_FOUND when absent. */
int store_org_rename(store_conn *c, const char *id, const char *name);

typedef int (*store_member_cb)(void *ctx, const store_user *u, store_role role);
/* The org's direct members with their roles, by email. */
int store_member_list(store_conn *c, const char *org_id, store_member_cb cb, void *ctx);

/* Sets the user's role like store_membership_set, but in one transaction
 * with the check that the org keeps an owner: SS_CONFLICT (nothing changed)
 * when it would take the owner role from the org's last owner, so two
 * owners demoting each other at once cannot leave the org with none. */
int store_membership_change(store_conn *c, const char *org_id, const char *user_id,
                            store_role role);

/* The user's direct role in the org (STORE_ROLE_NONE when not a member). */
int store_membership_get(store_conn *c, const char *org_id, const char *user_id,
                         store_role *out);
/* Direct members of the org holding exactly `role`. */
int store_member_count(store_conn *c, const char *org_id, store_role role, int64_t *out);

typedef int (*store_membership_cb)(void *ctx, const char *org_id, store_role role);
/* The user's direct memberships. */
int store_membership_list(store_conn *c, const char *user_id, store_membership_cb cb, void *ctx);

/* ---- invitations (joining an org with the person's consent) ---------- */

typedef struct store_invitation {
    char id[SS_ID_LEN + 1];
    char org_id[SS_ID_LEN + 1];
    char user_id[SS_ID_LEN + 1];
    char email[SS_EMAIL_MAX + 1];   /* the invitee's, filled by reads */
    store_role role;
    char invited_by[48];            /* an audit actor: "user:<id>", "apikey:<id>" */
    int64_t created_at;
} store_invitation;

typedef int (*store_invitation_cb)(void *ctx, const store_invitation *inv);

/* Invites the user to the org; an invitation of the same user to the same
 * org is replaced (new id, role, inviter and time). SS_NOT_FOUND when the
 * org or user does not exist. */
int store_invitation_put(store_conn *c, const store_invitation *inv);
/* Invites whoever has new_user->email, in one transaction (one commit,
 * whether or not the account exists): the existing account, untouched, or
 * else new_user, created. Sets inv->user_id to the account's id, then puts
 * the invitation as store_invitation_put does. */
int store_invitation_invite(store_conn *c, const store_user *new_user, store_invitation *inv);
int store_invitation_get(store_conn *c, const char *id, store_invitation *out);
/* The user's invitations / the org's, newest first. */
int store_invitation_list_user(store_conn *c, const char *user_id, store_invitation_cb cb,
                               void *ctx);
int store_invitation_list_org(store_conn *c, const char *org_id, store_invitation_cb cb,
                              void *ctx);
/* Withdraws or declines. SS_NOT_FOUND when absent. */
int store_invitation_delete(store_conn *c, const char *id);
/* In one transaction: the user's invitation becomes a membership with the
 * invited role (a higher role the user holds already stays) and is gone.
 * SS_NOT_FOUND when the user has no invitation by that id. OUT out: the
 * invitation as it was. */
int store_invitation_accept(store_conn *c, const char *id, const char *user_id,
                            store_invitation *out);


/* ---- org tree and quotas ---------------------------------------------- */

/* Every org's id and parent id, for the in-memory org tree. */
int store_org_tree(store_conn *c, int (*cb)(void *ctx, const char *id, const char *parent_id),
                   void *ctx);
/* The org and all its descendants (the org first). */
int store_org_subtree(store_conn *c, const char *org_id,
                      int (*cb)(void *ctx, const char *id), void *ctx);

typedef struct store_quota {
    char org_id[SS_ID_LEN + 1];
    int64_t max_devices;           /* 0: unlimited */
    int64_t max_readings_per_day;  /* 0: unlimited */
    int64_t max_bytes_per_day;     /* 0: unlimited */
} store_quota;

/* Sets (inserts or replaces) the org's quota; all zero removes it. */
int store_quota_set(store_conn *c, const store_quota *q);
/* The org's quota; all zero (and 0) when none is set. */
int store_quota_get(store_conn *c, const char *org_id, store_quota *out);
int store_quota_list(store_conn *c, int (*cb)(void *ctx, const store_quota *q), void *ctx);

/* ---- API keys (apps) ----------------------------------------------- */

#define STORE_SCOPE_DATA_READ 1u
#define STORE_SCOPE_DATA_WRITE 2u
#define STORE_SCOPE_MANAGE 4u

typedef struct store_apikey {
    char id[SS_ID_LEN + 1];
    char org_id[SS_ID_LEN + 1];
    char name[SS_NAME_MAX + 1];
    unsigned scopes;                 /* STORE_SCOPE_* bits */
    uint8_t key_hash[SS_SECRET_HASH_BYTES];
    char created_by[SS_ID_LEN + 1];  /* user id */
    int64_t created_at;
} store_apikey;

typedef int (*store_apikey_cb)(void *ctx, const store_apikey *k);

/* SS_NOT_FOUND when org_id names no org; SS_EXISTS for a duplicate hash. */
int store_apikey_create(store_conn *c, const store_apikey *k);
int store_apikey_get(store_conn *c, const char *id, store_apikey *out);
int store_apikey_get_by_hash(store_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES],
                             store_apikey *out);
/* The org's keys, newest first. */
int store_apikey_list(store_conn *c, const char *org_id, store_apikey_cb cb, void *ctx);
/* The key's MQTT sessions (store_broker.h) go with it, in one transaction. */
int store_apikey_delete(store_conn *c, const char *id);

/* ---- audit log ------------------------------------------------------- */

/* Detail of an audit entry: the changed fields and their new values, each
 * value shortened to fit (api_audit). */
#define STORE_AUDIT_DETAIL_MAX SS_AUDIT_DETAIL_MAX

typedef struct store_audit {
    int64_t id;            /* assigned by the store, increasing */
    int64_t ts;            /* ms */
    char org_id[SS_ID_LEN + 1];  /* "" for actions outside any org */
    char actor[48];        /* "user:<id>", "apikey:<id>" or "cli:reset-password" */
    char actor_name[SS_EMAIL_MAX + 1];  /* the user's email or the key's name, then */
    char action[48];       /* "device.create", "member.remove" … */
    char target[80];       /* the thing acted on: "device:<id>" … */
    char addr[46];         /* the client's address */
    char detail[STORE_AUDIT_DETAIL_MAX];  /* JSON object; never a secret */
} store_audit;

typedef int (*store_audit_cb)(void *ctx, const store_audit *a);

/* Appends an entry (a->id is ignored). There is no update nor delete. */
int store_audit_append(store_conn *c, const store_audit *a);
/* Entries of the org with from <= ts < to, newest first, at most limit. */
int store_audit_list(store_conn *c, const char *org_id, int64_t from, int64_t to, size_t limit,
                     store_audit_cb cb, void *ctx);
/* The same, from the entry after (ts, id) = (before_ts, before_id) in that
 * order on: a page of the log resumes where the last one ended, whatever
 * was appended meanwhile (keyset). */
int store_audit_list_before(store_conn *c, const char *org_id, int64_t from, int64_t to,
                            int64_t before_ts, int64_t before_id, size_t limit,
                            store_audit_cb cb, void *ctx);

/* ---- devices ----------------------------------------------------------- */

typedef struct store_device {
    char id[SS_ID_LEN + 1];
    char org_id[SS_ID_LEN + 1];
    char name[SS_NAME_MAX + 1];
    char description[SS_DESCRIPTION_MAX + 1];
    uint8_t token_hash[SS_SECRET_HASH_BYTES];
    int disabled;
    int64_t created_at;
    /* A JSON object (its text, "{}" for none), checked by the caller. */
    char attributes[SS_DEVICE_ATTRIBUTES_MAX + 1];
    /* When its newest stored batch came (ms, 0: never) and by which
     * protocol ("" never): written by store_device_set_seen, not by
     * create or update. */
    int64_t last_seen;
    char last_protocol[STORE_PROTOCOL_MAX];
} store_device;

/* A device's newest stored batch, as store_device_set_seen writes it. */
typedef struct store_device_seen {
    char id[SS_ID_LEN + 1];
    int64_t at;
    char protocol[STORE_PROTOCOL_MAX];
} store_device_seen;

typedef int (*store_device_cb)(void *ctx, const store_device *d);

/* SS_NOT_FOUND when org_id names no org; SS_QUOTA when the org or an
 * ancestor already has as many devices (its own and its descendants') as
 * its max_devices allows, checked in the same transaction as the insert. */
int store_device_create(store_conn *c, const store_device *d);
int store_device_get(store_conn *c, const char *id, store_device *out);
/* The org's devices, by name then id. */
int store_device_list(store_conn *c, const char *org_id, store_device_cb cb, void *ctx);
/* The same from the device after (after_name, after_id) in that order on
 * (keyset: a page resumes there whatever was added meanwhile). */
int store_device_list_after(store_conn *c, const char *org_id, const char *after_name,
                            const char *after_id, store_device_cb cb, void *ctx);
/* Sets last_seen and last_protocol of each device, in one transaction; a
 * value older than the stored one, or a device gone, is skipped. */
int store_device_set_seen(store_conn *c, const store_device_seen *rows, size_t n);
/* Every device of every org, for the in-memory token cache. */
int store_device_list_all(store_conn *c, store_device_cb cb, void *ctx);
/* Writes name, description, disabled and attributes of `d` (matched by
 * d->id). */
int store_device_update(store_conn *c, const store_device *d);
int store_device_set_token(store_conn *c, const char *id,
                           const uint8_t hash[SS_SECRET_HASH_BYTES]);
/* Deletes the device and its MQTT sessions (store_broker.h), in one short
 * transaction however many readings it has (one per engine when the series are kept apart from the accounts:
 * store_engine.h): the device and its series are gone at once (from every
 * answer), and its readings are put on a durable purge list that
 * store_purge_step empties in bounded chunks. */
int store_device_delete(store_conn *c, const char *id);

/* ---- the engine's table ------------------------------------------------ */

/* What an engine that keeps accounts provides: one entry per store_*
 * function above, named without the prefix, with the same arguments (its
 * own connection first) and the same contract, in full: each call one
 * transaction; SS_NOT_FOUND, SS_EXISTS, SS_CONFLICT and SS_QUOTA where the
 * function above says; lists ordered as it says and each org's lists
 * holding that org's rows only. The delete of a device or an org ends its
 * series too: an engine that also keeps the series does that in the same
 * transaction; else store.c follows the delete with the series engine's
 * drop_devices (store_series.h), and the engine's delete ends the
 * accounts rows alone. */
typedef struct store_accounts_table {
    int (*user_count)(store_engine_conn *c, int64_t *out);
    int (*user_create)(store_engine_conn *c, const store_user *u);
    int (*user_get)(store_engine_conn *c, const char *id, store_user *out);
    int (*user_get_by_email)(store_engine_conn *c, const char *email, store_user *out);
    int (*user_set_password)(store_engine_conn *c, const char *id, const char *pw_hash);
    int (*user_set_disabled)(store_engine_conn *c, const char *id, int disabled);
    int (*user_unlock_login)(store_engine_conn *c, const char *id, int64_t now_ms);
    int (*user_in_reach)(store_engine_conn *c, const char *admin_id, const char *key_org_id,
                         const char *user_id, int *out);
    int (*session_create)(store_engine_conn *c, const store_session *s);
    int (*session_write_held)(store_engine_conn *c, int64_t now_ms);
    int (*session_get)(store_engine_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES],
                       int64_t now_ms, store_session *out);
    int (*session_delete)(store_engine_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES]);
    int (*session_delete_user)(store_engine_conn *c, const char *user_id,
                               const uint8_t *keep /* SS_SECRET_HASH_BYTES or NULL */);
    int (*session_touch)(store_engine_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES],
                         int64_t now_ms);
    int (*session_list_user)(store_engine_conn *c, const char *user_id, int64_t now_ms,
                             store_session_cb cb, void *ctx);
    int (*session_delete_id)(store_engine_conn *c, const char *user_id, const char *id);
    int (*org_create)(store_engine_conn *c, const store_org *org);
    int (*org_get)(store_engine_conn *c, const char *id, store_org *out);
    int (*org_list)(store_engine_conn *c, const char *user_id, store_org_cb cb, void *ctx);
    int (*membership_set)(store_engine_conn *c, const char *org_id, const char *user_id,
                          store_role role);
    int (*role_effective)(store_engine_conn *c, const char *user_id, const char *org_id,
                          store_role *out);
    int (*org_delete)(store_engine_conn *c, const char *id);
    int (*org_device_ids)(store_engine_conn *c, const char *org_id,
                          int (*cb)(void *ctx, const char *device_id), void *ctx);
    int (*org_rename)(store_engine_conn *c, const char *id, const char *name);
    int (*member_list)(store_engine_conn *c, const char *org_id, store_member_cb cb, void *ctx);
    int (*membership_change)(store_engine_conn *c, const char *org_id, const char *user_id,
                             store_role role);
    int (*membership_get)(store_engine_conn *c, const char *org_id, const char *user_id,
                          store_role *out);
    int (*member_count)(store_engine_conn *c, const char *org_id, store_role role, int64_t *out);
    int (*membership_list)(store_engine_conn *c, const char *user_id, store_membership_cb cb,
                           void *ctx);
    int (*invitation_put)(store_engine_conn *c, const store_invitation *inv);
    int (*invitation_invite)(store_engine_conn *c, const store_user *new_user,
                             store_invitation *inv);
    int (*invitation_get)(store_engine_conn *c, const char *id, store_invitation *out);
    int (*invitation_list_user)(store_engine_conn *c, const char *user_id, store_invitation_cb cb,
                                void *ctx);
    int (*invitation_list_org)(store_engine_conn *c, const char *org_id, store_invitation_cb cb,
                               void *ctx);
    int (*invitation_delete)(store_engine_conn *c, const char *id);
    int (*invitation_accept)(store_engine_conn *c, const char *id, const char *user_id,
                             store_invitation *out);
    int (*org_tree)(store_engine_conn *c,
                    int (*cb)(void *ctx, const char *id, const char *parent_id), void *ctx);
    int (*org_subtree)(store_engine_conn *c, const char *org_id,
                       int (*cb)(void *ctx, const char *id), void *ctx);
    int (*quota_set)(store_engine_conn *c, const store_quota *q);
    int (*quota_get)(store_engine_conn *c, const char *org_id, store_quota *out);
    int (*quota_list)(store_engine_conn *c, int (*cb)(void *ctx, const store_quota *q), void *ctx);
    int (*apikey_create)(store_engine_conn *c, const store_apikey *k);
    int (*apikey_get)(store_engine_conn *c, const char *id, store_apikey *out);
    int (*apikey_get_by_hash)(store_engine_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES],
                              store_apikey *out);
    int (*apikey_list)(store_engine_conn *c, const char *org_id, store_apikey_cb cb, void *ctx);
    int (*apikey_delete)(store_engine_conn *c, const char *id);
    int (*audit_append)(store_engine_conn *c, const store_audit *a);
    /* store_audit_list_before; store_audit_list is it from the start. */
    int (*audit_list)(store_engine_conn *c, const char *org_id, int64_t from, int64_t to,
                      int64_t before_ts, int64_t before_id, size_t limit, store_audit_cb cb,
                      void *ctx);
    int (*device_create)(store_engine_conn *c, const store_device *d);
    int (*device_get)(store_engine_conn *c, const char *id, store_device *out);
    int (*device_list)(store_engine_conn *c, const char *org_id, store_device_cb cb, void *ctx);
    int (*device_list_all)(store_engine_conn *c, store_device_cb cb, void *ctx);
    int (*device_list_after)(store_engine_conn *c, const char *org_id, const char *after_name,
                             const char *after_id, store_device_cb cb, void *ctx);
    int (*device_set_seen)(store_engine_conn *c, const store_device_seen *rows, size_t n);
    int (*device_update)(store_engine_conn *c, const store_device *d);
    int (*device_set_token)(store_engine_conn *c, const char *id,
                            const uint8_t hash[SS_SECRET_HASH_BYTES]);
    int (*device_delete)(store_engine_conn *c, const char *id);
} store_accounts_table;

#endif
