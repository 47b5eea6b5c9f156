/* store.h — the whole surface of the store.
 *
 * The store speaks users, sessions, organisations, devices, readings and
 * series, never rows or SQL: SQLite today (store_sqlite.c), PostgreSQL and a
 * time-series engine later, behind this same header.
 *
 * Threads: a `store` is shared by every thread. Each thread that talks to it
 * takes a `store_conn` with store_conn_acquire and gives it back with
 * store_conn_release; a connection is used by one thread at a time.
 *
 * Returns: every function returns 0 on success or a negative SS_* code:
 * SS_NOT_FOUND (no such thing), SS_EXISTS (unique key taken), SS_FULL (disk
 * full: writes refused, reads still served), SS_STORE (any other store
 * failure, logged with its cause), SS_NOMEM. A failed write leaves nothing
 * behind (each call is one transaction).
 *
 * Strings: IDs are SS_ID_LEN lowercase hex characters; every char array of a
 * record is NUL-terminated; an empty parent_id means "no parent". */
#ifndef SS_STORE_H
#define SS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/reading.h"

typedef struct store store;
typedef struct store_conn store_conn;

/* Protocols, as usage and session records name them. */
#define STORE_PROTOCOL_MAX 8   /* "https", "http", "tcp", "udp", "mqtt", "mqtts" */

typedef enum {
    /* Each commit reaches the disk before it is acknowledged: survives a
     * power loss. Costs one fsync per group commit. */
    STORE_DURABILITY_FULL = 0,
    /* Each commit reaches the OS before it is acknowledged: survives a killed
     * process, not a power loss. */
    STORE_DURABILITY_NORMAL = 1,
} store_durability;

typedef struct store_options {
    const char *url;       /* "sqlite:" (file in data_dir) or "sqlite:/path/file.db" */
    const char *data_dir;  /* existing directory */
    store_durability durability;
} store_options;

/* Opens the store and brings its schema to the newest version (versioned
 * migrations, each in its own transaction). OUT out; errbuf gets a reason a
 * person can act on. Returns 0, SS_INVAL (bad url), SS_STORE. */
int store_open(const store_options *opt, store **out, char *errbuf, size_t errlen);
/* Closes every connection; all must have been released. */
void store_close(store *s);

/* Takes an idle connection, opening one if none is idle. 0, SS_STORE. */
int store_conn_acquire(store *s, store_conn **out);
void store_conn_release(store *s, store_conn *c);

/* Answers 0 when the store can serve a trivial read (for /healthz). */
int store_ping(store_conn *c);

/* Moves committed data from the write-ahead log into the database without
 * waiting for, or blocking, the writer (a passive checkpoint). Call it
 * often from off the commit path, so that the commit that crosses the
 * automatic checkpoint size rarely has to do this work itself. 0,
 * SS_FULL or SS_STORE; a checkpoint that could not finish is not an error.
 *
 * Disk space: a checkpoint runs (this one, the automatic one, the one at
 * close) only when the disk has room for every page the log holds, since
 * one that runs out of room half-way frees nothing and keeps the space it
 * took; until then new data goes on into the log. After a write met a
 * full disk, the first checkpoint that fits folds the whole log and
 * truncates it, giving its space back. */
int store_checkpoint(store_conn *c);

/* 1 while the disk is full: the last write met no room (a commit that
 * succeeds clears it). Any thread. */
int store_full(store *s);
/* 1 when a write that only tidies up (the purge) may run: the disk is not
 * full and a checkpoint of the log would fit. Such a write grows the log
 * with pages no checkpoint can fold meanwhile, taking the space ingest
 * needs. Any thread. */
int store_room_to_write(store *s);
/* While store_full, and a checkpoint would fit again, writes one page that
 * changes nothing: when it commits the disk has room and store_full is
 * cleared, even when nothing else writes. SS_OK when not full (or no
 * longer), SS_FULL while still full. Call it now and then. */
int store_probe_room(store_conn *c);

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

/* Roles, each including the ones below it (SPEC §2). */
typedef enum {
    STORE_ROLE_NONE = 0,
    STORE_ROLE_VIEWER = 1,
    STORE_ROLE_EDITOR = 2,
    STORE_ROLE_ADMIN = 3,
    STORE_ROLE_OWNER = 4,
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

/* Deletes the org with its devices, memberships and API keys, in one
 * transaction; the devices' readings go as in store_device_delete. SS_CONFLICT when it has child orgs (they
 * must be deleted first), SS_NOT_FOUND when absent. The audit log keeps its
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

/* ---- usage and quotas (accounting) ---------------------------------- */

#define STORE_HOUR_MS 3600000LL
#define STORE_DAY_MS 86400000LL

typedef struct store_usage {
    char org_id[SS_ID_LEN + 1];
    int64_t bucket;            /* ms: start of the hour (or day, in queries) */
    char protocol[STORE_PROTOCOL_MAX + 1];
    int64_t bytes_in;
    int64_t bytes_out;
    int64_t messages;
    int64_t readings;
    int64_t rejected;
    int64_t api_requests;
} store_usage;

/* Adds each delta to its (org_id, hour bucket, protocol) row, creating the
 * row when needed, in one transaction. bucket must be an hour start. */
int store_usage_add(store_conn *c, const store_usage *deltas, size_t n);

typedef int (*store_usage_cb)(void *ctx, const store_usage *u);
/* Usage summed over the given orgs, per bucket of `every_ms` (an hour or a
 * day: STORE_HOUR_MS or STORE_DAY_MS) and protocol, for hours in
 * [from, to), ordered by bucket then protocol. org_id of each row is the
 * first of org_ids. */
int store_usage_query(store_conn *c, const char *const *org_ids, size_t n_orgs, int64_t from,
                      int64_t to, int64_t every_ms, store_usage_cb cb, void *ctx);
/* Per org, the sums of readings and of bytes (in + out) over all protocols
 * for the hours in [day_start, day_start + STORE_DAY_MS): for the quota
 * state at start-up. Rows carry org_id, readings, bytes_in (the sum). */
int store_usage_day(store_conn *c, int64_t day_start, store_usage_cb cb, void *ctx);

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

/* ---- session records (accounting) --------------------------------------- */

typedef struct store_acct_session {
    char id[SS_ID_LEN + 1];
    char kind[8];                  /* "device", "user", "apikey" */
    char principal_id[SS_ID_LEN + 1];
    char org_id[SS_ID_LEN + 1];    /* "" for a user without one org */
    char protocol[STORE_PROTOCOL_MAX + 1];
    char addr[46];
    int64_t started_at;
    int64_t ended_at;              /* 0 while active */
    char end_reason[16];           /* closed, timeout, revoked, quota, error, shutdown, crash */
    int64_t bytes_in;
    int64_t bytes_out;
    int64_t messages;
    int64_t readings;
    int64_t refused;
    int64_t api_requests;
} store_acct_session;

/* Writes each record whole (insert or replace by id), in one transaction:
 * the meter flushes live sessions' running counts and ended ones. */
int store_acct_session_put(store_conn *c, const store_acct_session *s, size_t n);
typedef int (*store_acct_session_cb)(void *ctx, const store_acct_session *s);
/* The org's session records, newest first, at most limit; kind NULL for
 * every kind; active_only: ended_at = 0 only. */
int store_acct_session_list(store_conn *c, const char *org_id, const char *kind, int active_only,
                            size_t limit, store_acct_session_cb cb, void *ctx);
/* At start-up: records left active by a crash (started before now_ms)
 * get ended_at = now and end_reason "crash". */
int store_acct_session_close_stale(store_conn *c, int64_t now_ms);

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

/* ---- devices ----------------------------------------------------------- */

typedef struct store_device {
    char id[SS_ID_LEN + 1];
    char org_id[SS_ID_LEN + 1];
    char name[SS_NAME_MAX + 1];
    char description[SS_DESCRIPTION_MAX + 1];
    uint8_t token_hash[SS_SECRET_HASH_BYTES];
    int disabled;
    int64_t created_at;
} store_device;

typedef int (*store_device_cb)(void *ctx, const store_device *d);

/* SS_NOT_FOUND when org_id names no org; SS_QUOTA when the org or an
 * ancestor already has as many devices (its own and its descendants') as
 * its max_devices allows, checked in the same transaction as the insert. */
int store_device_create(store_conn *c, const store_device *d);
int store_device_get(store_conn *c, const char *id, store_device *out);
/* The org's devices, by name then id. */
int store_device_list(store_conn *c, const char *org_id, store_device_cb cb, void *ctx);
/* Every device of every org, for the in-memory token cache. */
int store_device_list_all(store_conn *c, store_device_cb cb, void *ctx);
/* Writes name, description and disabled of `d` (matched by d->id). */
int store_device_update(store_conn *c, const store_device *d);
int store_device_set_token(store_conn *c, const char *id,
                           const uint8_t hash[SS_SECRET_HASH_BYTES]);
/* Deletes the device, in one short transaction however many readings it
 * has: the device and its series are gone at once (from every answer), and
 * its readings are put on a durable purge list that store_purge_step
 * empties in bounded chunks. */
int store_device_delete(store_conn *c, const char *id);

/* Deletes at most max_rows readings of deleted devices (oldest purge first)
 * in one transaction, so the purge interleaves with ingest commits instead
 * of holding the write lock for seconds. OUT deleted: readings deleted;
 * more: 0 once the purge list is empty (nothing left to call for). */
int store_purge_step(store_conn *c, size_t max_rows, size_t *deleted, int *more);
/* Series of deleted devices whose readings are still to be purged: a read,
 * no write lock taken. */
int store_purge_pending(store_conn *c, int64_t *series);

/* ---- readings and series ---------------------------------------------- */

typedef struct store_batch {
    const char *device_id;
    const char *org_id;
    const ss_reading *readings;
    size_t len;
    const char *protocol;   /* that brought the readings; NULL counts as "http" */
    int64_t received_at;    /* ms; its UTC hour is the usage bucket */
    /* The session record the batch came by, as it stands before this
     * batch, or NULL: when the batch stores any reading and the store has
     * no record of that id yet, it is written in the same transaction with
     * the batch's one message and the readings it stored added (as the
     * usage counts them), so a record that stored readings survives a
     * crash (and is ended "crash" at the next start). A record already
     * there is left as it is. */
    const store_acct_session *session;
    /* Optional: the batch in groups, each stored whole or refused whole
     * (TCP: one per line). Group g is readings [end of g-1, group_ends[g]),
     * the first starts at 0, the last ends at len. NULL: one group, the
     * whole batch. */
    const uint32_t *group_ends;
    size_t n_groups;
    /* OUT: one flag per group (one when group_ends is NULL), set to 1 for
     * a group refused because it would give the device more than
     * SS_DEVICE_CHANNELS_MAX channels, else 0. NULL: such a group fails the
     * whole call with SS_TOO_LARGE instead. */
    uint8_t *refused;
} store_batch;

/* Stores every reading of every batch in one transaction: all or nothing,
 * but for the groups refused for the channel limit: such a group writes
 * nothing and is flagged in its batch's `refused`, and the rest of the call
 * is stored. The check costs nothing while every reading's channel is in
 * the writer's cache of series; a new channel costs one count of the
 * device's series.
 * A reading with the same device, channel and ts as a stored one replaces
 * its value (writes are idempotent, so a retried batch does not double).
 * In the same transaction, each batch that stores any reading adds 1
 * message and the readings it stored to the usage of (org, hour of
 * received_at, protocol): after any crash the usage equals what is stored,
 * no more and no less.
 * Returns 0 only once the commit is as durable as the store's durability
 * setting promises. SS_FULL when the disk is full. */
int store_write_batches(store_conn *c, const store_batch *batches, size_t n);

typedef struct store_channel {
    char name[SS_CHANNEL_MAX + 1];
    int64_t count;      /* readings stored */
    int64_t last_ts;    /* the newest reading's ts */
    double last_value;  /* and its value */
} store_channel;

typedef int (*store_channel_cb)(void *ctx, const store_channel *ch);
/* The device's channels, by name. Counting readings walks each series:
 * for names alone use store_channel_names. */
int store_channel_list(store_conn *c, const char *device_id, store_channel_cb cb, void *ctx);
/* The same without the count (0): each series keeps its newest reading,
 * so this reads one row per channel and never the readings. */
int store_channel_latest(store_conn *c, const char *device_id, store_channel_cb cb, void *ctx);
/* The names of the device's channels, by name, without touching readings. */
int store_channel_names(store_conn *c, const char *device_id,
                        int (*cb)(void *ctx, const char *name), void *ctx);

typedef struct store_query {
    const char *device_id;
    const char *channel;
    int64_t from;   /* inclusive, ms */
    int64_t to;     /* exclusive, ms */
    size_t limit;   /* at most this many points or buckets (>= 1) */
    int desc;       /* 1: newest first */
} store_query;

typedef int (*store_point_cb)(void *ctx, int64_t ts, double value);
/* Raw points of one channel in [from, to), ordered by ts. */
int store_query_points(store_conn *c, const store_query *q, store_point_cb cb, void *ctx);

typedef enum {
    STORE_AGG_AVG, STORE_AGG_MIN, STORE_AGG_MAX, STORE_AGG_SUM,
    STORE_AGG_COUNT, STORE_AGG_FIRST, STORE_AGG_LAST,
} store_agg;

/* One point per non-empty bucket of `every_ms` in [from, to); a bucket
 * starts at a multiple of every_ms since the epoch and its start is the
 * point's ts. first/last are by ts within the bucket. Ordered as q->desc. */
int store_query_buckets(store_conn *c, const store_query *q, int64_t every_ms, store_agg fn,
                        store_point_cb cb, void *ctx);

#endif
