/* store_sqlite.c — store.h on SQLite 3.
 *
 * A `store` is a path, a durability setting and a mutex-protected pool of
 * connections. Each connection prepares its statements once (lazily, on
 * first use) and keeps them; each call binds, steps and resets. Writes that
 * span statements run in BEGIN IMMEDIATE transactions: the write lock is
 * taken up front, so two writers queue on the busy timeout instead of
 * deadlocking when a reader tries to upgrade. The schema lives in
 * sqlite_migrate.c. */
#include "store/store.h"

#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "store/sqlite_internal.h"

#define LOG_MOD "store"

/* Every connection writes (sessions, devices, the store thread's group
 * commits) and SQLite has one writer at a time. Transactions are short (a
 * group commit of SS_COMMIT_READINGS_MAX readings takes well under a
 * second), so a writer that waits 5 s for the lock is facing a stuck
 * process, not a busy one. */
#define STORE_BUSY_TIMEOUT_MS 5000
/* The log's truncation after a full disk holds the write lock while it
 * waits for readers: it waits this long at most, then tries again at the
 * next checkpoint, so an ingest commit is delayed by this, never failed. */
#define STORE_TRUNCATE_WAIT_MS 50
/* Page cache per connection, KiB (a negative cache_size counts KiB): holds
 * the upper levels of the readings b-tree and the series table; a handful of
 * connections stay well under 100 MiB. */
#define STORE_CACHE_KIB 16384
/* Orgs nest a few levels (provider, customer, site). A walk up or down the
 * tree stops at this depth, so a cycle (impossible through the API, possible
 * in a hand-edited file) cannot loop forever. A plain literal: it is pasted
 * into SQL text. */
#define STORE_ORG_DEPTH_MAX 32
/* Series cache slots per writing connection; a power of two so the hash is
 * masked. About 120 bytes a slot, 1 MiB per writer, allocated on the first
 * write. When the fill limit is reached the cache is emptied and refilled:
 * open addressing stays fast below 3/4 full. */
#define SERIES_CACHE_SLOTS 8192u
#define SERIES_CACHE_FILL_MAX (SERIES_CACHE_SLOTS / 4u * 3u)
/* WAL pages (4 KiB) before a commit checkpoints them into the database. A
 * group commit of single readings from many devices dirties one readings
 * page per device; checkpointing every 1000 pages (the default) rewrote
 * those same pages into the file after nearly every commit. 10000 pages
 * (about 40 MiB of WAL) checkpoints a page once per ~10 commits: ~30% more
 * readings/s in that case, measured. */
#define STORE_WAL_CHECKPOINT_PAGES 10000
/* Bytes of free space a checkpoint leaves untouched besides the pages it
 * moves: room for the shared-memory index and the database's own growth of
 * a b-tree level. */
#define STORE_CHECKPOINT_SLACK_BYTES (1024 * 1024)
/* Sign-ins a full disk keeps in memory until space returns (about 300
 * bytes each): many more people than sign in during the minutes an
 * operator takes to free space. Past it a sign-in answers 503. */
#define STORE_HELD_SESSIONS_MAX 1024u
/* After a checkpoint the WAL file is truncated to this size, bytes, so a
 * burst does not leave a huge file behind; above the checkpoint size so it
 * is not truncated and regrown every time. */
#define STORE_WAL_SIZE_LIMIT 67108864
/* Distinct (org, hour, protocol) usage rows one write call sums in memory
 * before upserting them. A group commit holds batches of a few orgs in one
 * or two hours over a handful of protocols; when more keys come, the sums
 * so far are upserted and the slots reused (the upsert adds, so splitting a
 * key's sum over two upserts gives the same row). */
#define USAGE_AGG_SLOTS 64u
/* Usage rowids a connection remembers (direct-mapped by key hash): more
 * than the (org, protocol) pairs that write in any one hour on most servers;
 * a miss costs one upsert by key. */
#define USAGE_ID_SLOTS 256u

/* Orgs one usage query sums (an org and its descendants): each is one
 * bound parameter of an IN list. */
#define USAGE_QUERY_ORGS_MAX 1024u
/* Room for the usage query's text: the fixed part and, per org, ",?NNNN". */
#define USAGE_QUERY_SQL_MAX (512u + USAGE_QUERY_ORGS_MAX * 8u)
/* The protocol a batch without one arrived by (store.h). */
#define USAGE_PROTOCOL_DEFAULT "http"
/* The database file inside data_dir for the URL "sqlite:". */
#define STORE_DB_FILE "sensorspace.db"
#define STORE_URL_SCHEME "sqlite:"
/* Room for an error message from open, for the log. */
#define STORE_ERR_MAX 512

_Static_assert((SERIES_CACHE_SLOTS & (SERIES_CACHE_SLOTS - 1)) == 0, "slots: a power of two");
_Static_assert(SS_CHANNEL_MAX < UINT8_MAX, "channel length is kept in a byte");
_Static_assert(SS_ID_LEN < UINT8_MAX && STORE_PROTOCOL_MAX < UINT8_MAX,
               "usage key lengths are kept in a byte");

#define STR_(x) #x
#define STR(x) STR_(x)

/* ---- statements ---------------------------------------------------------- */

#define USER_COLS "id, email, pw_hash, superadmin, disabled, created_at"
#define ORG_COLS "id, name, parent_id, created_at"
#define DEVICE_COLS "id, org_id, name, description, token_hash, disabled, created_at"
#define SESSION_COLS "token_hash, id, user_id, csrf, peer, created_at, last_seen_at, expires_at"
#define APIKEY_COLS "id, org_id, name, scopes, key_hash, created_by, created_at"
#define AUDIT_COLS "id, ts, org_id, actor, action, target, addr, detail, actor_name"
#define INVITE_COLS "i.id, i.org_id, i.user_id, i.role, i.invited_by, i.created_at, u.email"
#define INVITE_FROM " FROM invitations i JOIN users u ON u.id = i.user_id"
#define USAGE_COUNTERS "bytes_in, bytes_out, messages, readings, rejected, api_requests"
#define QUOTA_COLS "org_id, max_devices, max_readings_per_day, max_bytes_per_day"
#define ACCT_COLS                                                                 \
    "id, kind, principal_id, org_id, protocol, addr, started_at, ended_at,"       \
    " end_reason, bytes_in, bytes_out, messages, readings, refused, api_requests"

/* Buckets: ts >= SS_TS_MIN_MS > 0, so ts % every is never negative and
 * ts - ts % every is the start of the bucket. For first/last, SQLite fills
 * the bare column `value` from the row holding min(ts)/max(ts) of the group
 * (documented behaviour for a single min()/max() aggregate). */
#define BUCKET_SQL(expr, order)                                                  \
    "SELECT ts - ts % ?4 AS b, " expr " FROM readings"                           \
    " WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3 GROUP BY b ORDER BY b " order \
    " LIMIT ?5"

#define STMT_MAP(X)                                                                      \
    X(BEGIN, "BEGIN IMMEDIATE")                                                          \
    X(COMMIT, "COMMIT")                                                                  \
    X(ROLLBACK, "ROLLBACK")                                                              \
    X(PING, "SELECT 1")                                                                  \
    X(USER_COUNT, "SELECT count(*) FROM users")                                          \
    X(USER_INSERT, "INSERT INTO users(" USER_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)")  \
    X(USER_GET, "SELECT " USER_COLS ", login_unlocked_at FROM users WHERE id = ?1")      \
    X(USER_GET_EMAIL, "SELECT " USER_COLS ", login_unlocked_at FROM users"               \
                      " WHERE email = ?1")                                               \
    X(USER_UNLOCK, "UPDATE users SET login_unlocked_at = max(login_unlocked_at, ?2)"     \
                   " WHERE id = ?1")                                                     \
    X(USER_IN_REACH,                                                                     \
      "WITH RECURSIVE down(id, depth) AS ("                                              \
      " SELECT org_id, 0 FROM memberships WHERE user_id = ?1 AND role >= 3"              \
      " UNION"                                                                           \
      " SELECT id, 0 FROM orgs WHERE id = ?2"                                            \
      " UNION"                                                                           \
      " SELECT o.id, d.depth + 1 FROM orgs o JOIN down d ON o.parent_id = d.id"          \
      "  WHERE d.depth < " STR(STORE_ORG_DEPTH_MAX) ")"                                  \
      " SELECT EXISTS (SELECT 1 FROM memberships WHERE user_id = ?3"                     \
      "  AND org_id IN (SELECT id FROM down))")                                          \
    X(INVITE_UPSERT, "INSERT INTO invitations(id, org_id, user_id, role, invited_by,"    \
                     " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"                      \
                     " ON CONFLICT(org_id, user_id) DO UPDATE SET id = excluded.id,"     \
                     " role = excluded.role, invited_by = excluded.invited_by,"          \
                     " created_at = excluded.created_at")                                \
    X(INVITE_GET, "SELECT " INVITE_COLS INVITE_FROM " WHERE i.id = ?1")                  \
    X(INVITE_LIST_USER, "SELECT " INVITE_COLS INVITE_FROM " WHERE i.user_id = ?1"        \
                        " ORDER BY i.created_at DESC, i.id")                             \
    X(INVITE_LIST_ORG, "SELECT " INVITE_COLS INVITE_FROM " WHERE i.org_id = ?1"          \
                       " ORDER BY i.created_at DESC, i.id")                              \
    X(INVITE_DELETE, "DELETE FROM invitations WHERE id = ?1")                            \
    X(USER_SET_PW, "UPDATE users SET pw_hash = ?2 WHERE id = ?1")                        \
    X(USER_SET_DISABLED, "UPDATE users SET disabled = ?2 WHERE id = ?1")                 \
    X(SESSION_INSERT, "INSERT INTO sessions(" SESSION_COLS ")"                           \
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")                        \
    X(SESSION_GET, "SELECT " SESSION_COLS                                                \
                   " FROM sessions WHERE token_hash = ?1 AND expires_at > ?2")           \
    X(SESSION_TOUCH, "UPDATE sessions SET last_seen_at = max(last_seen_at, ?2)"          \
                     " WHERE token_hash = ?1")                                           \
    X(SESSION_LIST_USER, "SELECT " SESSION_COLS " FROM sessions"                         \
                         " WHERE user_id = ?1 AND expires_at > ?2"                       \
                         " ORDER BY created_at DESC, id DESC")                           \
    X(SESSION_DELETE_ID, "DELETE FROM sessions WHERE user_id = ?1 AND id = ?2"           \
                         " AND id <> ''")                                                \
    X(SESSION_DELETE, "DELETE FROM sessions WHERE token_hash = ?1")                      \
    X(SESSION_DELETE_USER, "DELETE FROM sessions WHERE user_id = ?1"                     \
                           " AND token_hash IS NOT ?2")                                  \
    X(ORG_INSERT, "INSERT INTO orgs(" ORG_COLS ") VALUES (?1, ?2, ?3, ?4)")              \
    X(ORG_GET, "SELECT " ORG_COLS " FROM orgs WHERE id = ?1")                            \
    X(ORG_LIST_ALL, "SELECT " ORG_COLS " FROM orgs ORDER BY name, id")                   \
    X(ORG_LIST_USER,                                                                     \
      "WITH RECURSIVE tree(id, depth) AS ("                                              \
      " SELECT org_id, 0 FROM memberships WHERE user_id = ?1"                            \
      " UNION"                                                                           \
      " SELECT o.id, t.depth + 1 FROM orgs o JOIN tree t ON o.parent_id = t.id"          \
      "  WHERE t.depth < " STR(STORE_ORG_DEPTH_MAX) ")"                                  \
      " SELECT " ORG_COLS " FROM orgs WHERE id IN (SELECT id FROM tree)"                 \
      " ORDER BY name, id")                                                              \
    X(MEMBER_UPSERT, "INSERT INTO memberships(org_id, user_id, role) VALUES (?1, ?2, ?3)" \
                     " ON CONFLICT(org_id, user_id) DO UPDATE SET role = excluded.role") \
    X(MEMBER_DELETE, "DELETE FROM memberships WHERE org_id = ?1 AND user_id = ?2")       \
    X(ORG_RENAME, "UPDATE orgs SET name = ?2 WHERE id = ?1")                             \
    X(ORG_DELETE_CHECK, "SELECT (SELECT count(*) FROM orgs WHERE id = ?1),"              \
                        " EXISTS (SELECT 1 FROM orgs WHERE parent_id = ?1)")             \
    X(ORG_PURGE_SERIES, "INSERT OR IGNORE INTO purge_series(series_id) SELECT s.id"      \
                        " FROM series s JOIN devices d ON d.id = s.device_id"            \
                        " WHERE d.org_id = ?1")                                          \
    X(ORG_DEL_SERIES, "DELETE FROM series WHERE device_id IN"                            \
                      " (SELECT id FROM devices WHERE org_id = ?1)")                     \
    X(ORG_DEL_DEVICES, "DELETE FROM devices WHERE org_id = ?1")                          \
    X(ORG_DEL_APIKEYS, "DELETE FROM apikeys WHERE org_id = ?1")                          \
    X(ORG_DEL_MEMBERS, "DELETE FROM memberships WHERE org_id = ?1")                      \
    X(ORG_DEL_QUOTA, "DELETE FROM quotas WHERE org_id = ?1")                             \
    X(ORG_DEL_INVITES, "DELETE FROM invitations WHERE org_id = ?1")                      \
    X(ORG_DELETE, "DELETE FROM orgs WHERE id = ?1")                                      \
    X(ORG_DEVICE_IDS, "SELECT id FROM devices WHERE org_id = ?1 ORDER BY id")            \
    X(MEMBER_GET, "SELECT role FROM memberships WHERE org_id = ?1 AND user_id = ?2")     \
    X(MEMBER_COUNT, "SELECT count(*) FROM memberships WHERE org_id = ?1 AND role = ?2")  \
    X(APIKEY_INSERT, "INSERT INTO apikeys(" APIKEY_COLS ")"                              \
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")                             \
    X(APIKEY_GET, "SELECT " APIKEY_COLS " FROM apikeys WHERE id = ?1")                   \
    X(APIKEY_GET_HASH, "SELECT " APIKEY_COLS " FROM apikeys WHERE key_hash = ?1")        \
    X(APIKEY_LIST, "SELECT " APIKEY_COLS " FROM apikeys WHERE org_id = ?1"               \
                   " ORDER BY created_at DESC, id DESC")                                 \
    X(APIKEY_DELETE, "DELETE FROM apikeys WHERE id = ?1")                                \
    X(AUDIT_INSERT, "INSERT INTO audit(ts, org_id, actor, action, target, addr, detail,"  \
                    " actor_name) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")              \
    X(AUDIT_LIST, "SELECT " AUDIT_COLS " FROM audit WHERE org_id = ?1"                   \
                  " AND ts >= ?2 AND ts < ?3 ORDER BY ts DESC, id DESC LIMIT ?4")        \
    X(ORG_MEMBERS, "SELECT u.id, u.email, u.pw_hash, u.superadmin, u.disabled,"          \
                   " u.created_at, m.role FROM memberships m JOIN users u"               \
                   " ON u.id = m.user_id WHERE m.org_id = ?1 ORDER BY u.email")          \
    X(MEMBER_LIST, "SELECT org_id, role FROM memberships WHERE user_id = ?1"             \
                   " ORDER BY org_id")                                                   \
    X(ROLE_EFFECTIVE,                                                                    \
      "WITH RECURSIVE up(id, depth) AS ("                                                \
      " SELECT id, 0 FROM orgs WHERE id = ?2"                                            \
      " UNION ALL"                                                                       \
      " SELECT o.parent_id, u.depth + 1 FROM up u JOIN orgs o ON o.id = u.id"            \
      "  WHERE o.parent_id IS NOT NULL AND u.depth < " STR(STORE_ORG_DEPTH_MAX) ")"      \
      " SELECT (SELECT count(*) FROM up),"                                               \
      "  coalesce((SELECT max(role) FROM memberships WHERE user_id = ?1"                 \
      "   AND org_id IN (SELECT id FROM up)), 0)")                                       \
    X(DEVICE_QUOTA_FULL,                                                                 \
      "WITH RECURSIVE up(id, depth) AS ("                                                \
      " SELECT id, 0 FROM orgs WHERE id = ?1"                                            \
      " UNION ALL"                                                                       \
      " SELECT o.parent_id, u.depth + 1 FROM up u JOIN orgs o ON o.id = u.id"            \
      "  WHERE o.parent_id IS NOT NULL AND u.depth < " STR(STORE_ORG_DEPTH_MAX) "),"     \
      " limited(id, most) AS (SELECT q.org_id, q.max_devices FROM quotas q"              \
      "  JOIN up ON q.org_id = up.id WHERE q.max_devices > 0),"                          \
      " down(top, id, depth) AS ("                                                       \
      " SELECT id, id, 0 FROM limited"                                                   \
      " UNION"                                                                           \
      " SELECT d.top, o.id, d.depth + 1 FROM orgs o JOIN down d ON o.parent_id = d.id"   \
      "  WHERE d.depth < " STR(STORE_ORG_DEPTH_MAX) ")"                                  \
      " SELECT EXISTS (SELECT 1 FROM limited l WHERE (SELECT count(*) FROM devices v"    \
      "  WHERE v.org_id IN (SELECT id FROM down WHERE top = l.id)) >= l.most)")          \
    X(DEVICE_INSERT, "INSERT INTO devices(" DEVICE_COLS ")"                              \
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")                             \
    X(DEVICE_GET, "SELECT " DEVICE_COLS " FROM devices WHERE id = ?1")                   \
    X(DEVICE_LIST, "SELECT " DEVICE_COLS " FROM devices WHERE org_id = ?1"               \
                   " ORDER BY name, id")                                                 \
    X(DEVICE_LIST_ALL, "SELECT " DEVICE_COLS " FROM devices ORDER BY id")                \
    X(DEVICE_UPDATE, "UPDATE devices SET name = ?2, description = ?3, disabled = ?4"     \
                     " WHERE id = ?1")                                                   \
    X(DEVICE_SET_TOKEN, "UPDATE devices SET token_hash = ?2 WHERE id = ?1")              \
    X(DEVICE_PURGE_SERIES, "INSERT OR IGNORE INTO purge_series(series_id)"               \
                           " SELECT id FROM series WHERE device_id = ?1")                \
    X(PURGE_NEXT, "SELECT series_id FROM purge_series ORDER BY series_id LIMIT 1")       \
    X(PURGE_BOUND, "SELECT ts FROM readings WHERE series_id = ?1"                        \
                   " ORDER BY ts LIMIT 1 OFFSET ?2")                                     \
    X(PURGE_BELOW, "DELETE FROM readings WHERE series_id = ?1 AND ts < ?2")              \
    X(PURGE_REST, "DELETE FROM readings WHERE series_id = ?1")                           \
    X(PURGE_DONE, "DELETE FROM purge_series WHERE series_id = ?1")                       \
    X(PURGE_COUNT, "SELECT count(*) FROM purge_series")                                  \
    X(DEVICE_DEL_SERIES, "DELETE FROM series WHERE device_id = ?1")                      \
    X(DEVICE_DELETE, "DELETE FROM devices WHERE id = ?1")                                \
    X(SERIES_FIND, "SELECT id FROM series WHERE device_id = ?1 AND channel = ?2")        \
    X(SERIES_COUNT, "SELECT count(*) FROM series WHERE device_id = ?1")                  \
    X(SERIES_INSERT, "INSERT INTO series(id, device_id, channel, last_ts, last_value)"   \
                     " VALUES (1 + max(coalesce((SELECT max(id) FROM series), 0),"       \
                     " coalesce((SELECT max(series_id) FROM purge_series), 0)),"         \
                     " ?1, ?2, ?3, ?4)")                                                 \
    X(SERIES_SET_LAST, "UPDATE series SET last_ts = ?2, last_value = ?3"                 \
                       " WHERE id = ?1 AND last_ts <= ?2")                               \
    X(READING_UPSERT, "INSERT INTO readings(series_id, ts, value) VALUES (?1, ?2, ?3)"   \
                      " ON CONFLICT(series_id, ts) DO UPDATE SET value = excluded.value") \
    X(CHANNEL_LIST, "SELECT channel, (SELECT count(*) FROM readings r"                   \
                    " WHERE r.series_id = s.id), last_ts, last_value"                    \
                    " FROM series s WHERE device_id = ?1 ORDER BY channel")              \
    X(CHANNEL_NAMES, "SELECT channel FROM series WHERE device_id = ?1 ORDER BY channel")  \
    X(CHANNEL_LATEST, "SELECT channel, 0, last_ts, last_value FROM series"               \
                      " WHERE device_id = ?1 ORDER BY channel")                          \
    X(POINTS_ASC, "SELECT ts, value FROM readings WHERE series_id = ?1"                  \
                  " AND ts >= ?2 AND ts < ?3 ORDER BY ts ASC LIMIT ?4")                  \
    X(POINTS_DESC, "SELECT ts, value FROM readings WHERE series_id = ?1"                 \
                   " AND ts >= ?2 AND ts < ?3 ORDER BY ts DESC LIMIT ?4")                \
    X(USAGE_BUMP_COUNTS, "UPDATE usage SET messages = messages + ?2,"                    \
                         " readings = readings + ?3 WHERE id = ?1")                      \
    X(USAGE_ADD_COUNTS, "INSERT INTO usage(org_id, hour, protocol, messages, readings)"  \
                        " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(org_id, hour, protocol)" \
                        " DO UPDATE SET messages = messages + excluded.messages,"        \
                        " readings = readings + excluded.readings RETURNING id")         \
    X(USAGE_ADD, "INSERT INTO usage(org_id, hour, protocol, " USAGE_COUNTERS ")"         \
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"                          \
                 " ON CONFLICT(org_id, hour, protocol) DO UPDATE SET"                    \
                 " bytes_in = bytes_in + excluded.bytes_in,"                             \
                 " bytes_out = bytes_out + excluded.bytes_out,"                          \
                 " messages = messages + excluded.messages,"                             \
                 " readings = readings + excluded.readings,"                             \
                 " rejected = rejected + excluded.rejected,"                             \
                 " api_requests = api_requests + excluded.api_requests")                 \
    X(USAGE_DAY, "SELECT org_id, sum(readings), sum(bytes_in + bytes_out) FROM usage"    \
                 " WHERE hour >= ?1 AND hour < ?2 GROUP BY org_id ORDER BY org_id")      \
    X(ORG_TREE, "SELECT id, coalesce(parent_id, '') FROM orgs ORDER BY id")              \
    X(ORG_SUBTREE,                                                                       \
      "WITH RECURSIVE down(id, depth) AS ("                                              \
      " SELECT id, 0 FROM orgs WHERE id = ?1"                                            \
      " UNION"                                                                           \
      " SELECT o.id, d.depth + 1 FROM orgs o JOIN down d ON o.parent_id = d.id"          \
      "  WHERE d.depth < " STR(STORE_ORG_DEPTH_MAX) ")"                                  \
      " SELECT id, min(depth) AS m FROM down GROUP BY id ORDER BY m, id")                \
    X(QUOTA_UPSERT, "INSERT INTO quotas(" QUOTA_COLS ") VALUES (?1, ?2, ?3, ?4)"         \
                    " ON CONFLICT(org_id) DO UPDATE SET"                                 \
                    " max_devices = excluded.max_devices,"                               \
                    " max_readings_per_day = excluded.max_readings_per_day,"             \
                    " max_bytes_per_day = excluded.max_bytes_per_day")                   \
    X(QUOTA_DELETE, "DELETE FROM quotas WHERE org_id = ?1")                              \
    X(QUOTA_GET, "SELECT " QUOTA_COLS " FROM quotas WHERE org_id = ?1")                  \
    X(QUOTA_LIST, "SELECT " QUOTA_COLS " FROM quotas ORDER BY org_id")                   \
    X(ACCT_UPSERT, "INSERT INTO acct_sessions(" ACCT_COLS ") VALUES (?1, ?2, ?3, ?4,"    \
                   " ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"                  \
                   " ON CONFLICT(id) DO UPDATE SET kind = excluded.kind,"                \
                   " principal_id = excluded.principal_id, org_id = excluded.org_id,"    \
                   " protocol = excluded.protocol, addr = excluded.addr,"                \
                   " started_at = excluded.started_at, ended_at = excluded.ended_at,"    \
                   " end_reason = excluded.end_reason, bytes_in = excluded.bytes_in,"    \
                   " bytes_out = excluded.bytes_out, messages = excluded.messages,"      \
                   " readings = excluded.readings, refused = excluded.refused,"          \
                   " api_requests = excluded.api_requests")                              \
    X(ACCT_LIST, "SELECT " ACCT_COLS " FROM acct_sessions WHERE org_id = ?1"             \
                 " AND (?2 IS NULL OR kind = ?2) AND (?3 = 0 OR ended_at = 0)"           \
                 " ORDER BY started_at DESC, id DESC LIMIT ?4")                          \
    X(ACCT_CLOSE_STALE, "UPDATE acct_sessions SET ended_at = ?1, end_reason = 'crash'"   \
                        " WHERE ended_at = 0 AND started_at < ?1")                       \
    X(ACCT_OPEN, "INSERT INTO acct_sessions(" ACCT_COLS ") VALUES (?1, ?2, ?3, ?4,"      \
                 " ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"                    \
                 " ON CONFLICT(id) DO NOTHING")                                          \
    X(BUCKET_AVG_ASC, BUCKET_SQL("avg(value)", "ASC"))                                   \
    X(BUCKET_AVG_DESC, BUCKET_SQL("avg(value)", "DESC"))                                 \
    X(BUCKET_MIN_ASC, BUCKET_SQL("min(value)", "ASC"))                                   \
    X(BUCKET_MIN_DESC, BUCKET_SQL("min(value)", "DESC"))                                 \
    X(BUCKET_MAX_ASC, BUCKET_SQL("max(value)", "ASC"))                                   \
    X(BUCKET_MAX_DESC, BUCKET_SQL("max(value)", "DESC"))                                 \
    X(BUCKET_SUM_ASC, BUCKET_SQL("sum(value)", "ASC"))                                   \
    X(BUCKET_SUM_DESC, BUCKET_SQL("sum(value)", "DESC"))                                 \
    X(BUCKET_COUNT_ASC, BUCKET_SQL("count(value)", "ASC"))                               \
    X(BUCKET_COUNT_DESC, BUCKET_SQL("count(value)", "DESC"))                             \
    X(BUCKET_FIRST_ASC, BUCKET_SQL("value, min(ts)", "ASC"))                             \
    X(BUCKET_FIRST_DESC, BUCKET_SQL("value, min(ts)", "DESC"))                           \
    X(BUCKET_LAST_ASC, BUCKET_SQL("value, max(ts)", "ASC"))                              \
    X(BUCKET_LAST_DESC, BUCKET_SQL("value, max(ts)", "DESC"))

typedef enum {
#define STMT_ENUM(name, sql) STMT_##name,
    STMT_MAP(STMT_ENUM)
#undef STMT_ENUM
    STMT_COUNT
} stmt_id;

static const char *const stmt_sql[STMT_COUNT] = {
#define STMT_TEXT(name, sql) sql,
    STMT_MAP(STMT_TEXT)
#undef STMT_TEXT
};

static const char *const stmt_name[STMT_COUNT] = {
#define STMT_NAME(name, sql) #name,
    STMT_MAP(STMT_NAME)
#undef STMT_NAME
};

/* Indexed by store_agg, then by desc. */
static const stmt_id bucket_stmt[][2] = {
    [STORE_AGG_AVG] = {STMT_BUCKET_AVG_ASC, STMT_BUCKET_AVG_DESC},
    [STORE_AGG_MIN] = {STMT_BUCKET_MIN_ASC, STMT_BUCKET_MIN_DESC},
    [STORE_AGG_MAX] = {STMT_BUCKET_MAX_ASC, STMT_BUCKET_MAX_DESC},
    [STORE_AGG_SUM] = {STMT_BUCKET_SUM_ASC, STMT_BUCKET_SUM_DESC},
    [STORE_AGG_COUNT] = {STMT_BUCKET_COUNT_ASC, STMT_BUCKET_COUNT_DESC},
    [STORE_AGG_FIRST] = {STMT_BUCKET_FIRST_ASC, STMT_BUCKET_FIRST_DESC},
    [STORE_AGG_LAST] = {STMT_BUCKET_LAST_ASC, STMT_BUCKET_LAST_DESC},
};

/* ---- types --------------------------------------------------------------- */

/* One (device, channel) → series id, plus the newest reading of the current
 * write call for that series (flushed to series.last_* before commit). */
typedef struct series_slot {
    int64_t series_id;  /* 0: empty (INTEGER PRIMARY KEY ids start at 1) */
    int64_t pend_ts;
    double pend_value;
    uint32_t hash;
    uint8_t channel_len;
    uint8_t pending;
    char device_id[SS_ID_LEN + 1];
    char channel[SS_CHANNEL_MAX + 1];
} series_slot;

typedef struct series_cache {
    series_slot *slots;    /* SERIES_CACHE_SLOTS; NULL until the first write */
    uint32_t *touched;     /* slots with a pending last_ts/last_value */
    size_t used;
    size_t ntouched;
    uint64_t generation;   /* the store's device generation the slots belong to */
} series_cache;

/* The channel check of one batch (SS_DEVICE_CHANNELS_MAX): the channels
 * it would create, accepted so far, as a set of reading indexes (open
 * addressing by the key's hash), and the order they were added in, so a
 * refused group's are taken out again (last in, first out, which linear
 * probing allows). Allocated with the series cache. */
#define CHECK_SET_SLOTS (2u * SS_DEVICE_CHANNELS_MAX)
typedef struct channel_check {
    uint32_t set[CHECK_SET_SLOTS];           /* reading index + 1; 0: empty */
    uint32_t added[SS_DEVICE_CHANNELS_MAX];  /* set slots, in the order filled */
    size_t n_added;                          /* the batch's new channels */
    int64_t existing;                        /* the device's series; -1: not counted */
} channel_check;

_Static_assert((CHECK_SET_SLOTS & (CHECK_SET_SLOTS - 1)) == 0, "set: a power of two");

/* What a reading's series is looked up by. */
typedef struct series_key {
    const char *device_id;
    size_t device_len;
    const char *channel;
    size_t channel_len;
    uint32_t hash;
} series_key;

/* One usage row's additions of the current write call. */
typedef struct usage_slot {
    int64_t hour;
    int64_t messages;
    int64_t readings;
    uint8_t org_len;
    uint8_t protocol_len;
    char org_id[SS_ID_LEN + 1];
    char protocol[STORE_PROTOCOL_MAX + 1];
} usage_slot;

typedef struct usage_agg {
    usage_slot slots[USAGE_AGG_SLOTS];
    size_t used;
    size_t last;  /* the slot hit last: consecutive batches share a key */
} usage_agg;

/* The rowid of a usage row this connection wrote to (id 0: empty). */
typedef struct usage_row_id {
    usage_slot key;  /* its counts unused */
    int64_t id;
} usage_row_id;

/* A session delete held in memory: by token hash, or of a user's sessions
 * (one by id, or all but `keep`) created up to `at`. */
typedef struct held_delete {
    int by_hash;
    uint8_t hash[SS_SECRET_HASH_BYTES];
    char user_id[SS_ID_LEN + 1];
    char id[SS_ID_LEN + 1];          /* "": every one of the user's */
    int has_keep;
    uint8_t keep[SS_SECRET_HASH_BYTES];
    int64_t at;
} held_delete;

struct store_conn {
    sqlite3 *db;
    store *owner;
    store_conn *next_idle;
    sqlite3_stmt *stmts[STMT_COUNT];
    series_cache cache;
    channel_check *check;  /* NULL until the first write */
    usage_agg usage;
    /* Rows written lately, by a hash of their key: the next commit's write
     * to one is an UPDATE by rowid. Emptied when a write is rolled back. */
    usage_row_id usage_ids[USAGE_ID_SLOTS];
    /* sqlite3_total_changes64 when the transaction began. */
    sqlite3_int64 tx_changes;
};

struct store {
    char path[PATH_MAX];
    store_durability durability;
    pthread_mutex_t lock;  /* guards idle and open_count */
    store_conn *idle;
    size_t open_count;
    /* Bumped by every device delete while it holds the write lock. A writer
     * compares it with its cache's after taking the write lock and drops
     * the cache when it moved, so no writer can hold the id of a series
     * deleted by another connection (readings have no foreign key that
     * would catch such a write). */
    atomic_uint_fast64_t device_generation;
    /* The disk is full: the last write met SQLITE_FULL (cleared by a
     * commit that succeeds). */
    atomic_int full;
    /* A write met a full disk since the log was last folded whole into the
     * database and truncated: the next checkpoint that can finish does so,
     * giving the log's space back. */
    atomic_int shrink_log;
    /* Frames in the write-ahead log after the last commit: a checkpoint
     * may have to add up to this many pages to the database file. */
    atomic_int_fast64_t wal_frames;
    int page_size;
    /* Sign-ins the disk had no room for (STORE_HELD_SESSIONS_MAX): served
     * from here and written when space returns. */
    pthread_mutex_t held_lock;
    /* One writer of the hold at a time (store_session_write_held). */
    pthread_mutex_t held_write_lock;
    store_session held[STORE_HELD_SESSIONS_MAX];
    size_t n_held;
    /* Session deletes the disk had no room for: the sessions they name are
     * refused from here on, and the deletes written when space returns. */
    held_delete dels[STORE_HELD_SESSIONS_MAX];
    size_t n_dels;
};

/* ---- small helpers -------------------------------------------------------- */

static void set_err(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

/* Maps an SQLite result code to an SS_* code; logs what an operator must
 * see (anything but a taken key or a missing parent). */
static int sq_err(store_conn *c, int rc, const char *what)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return SS_EXISTS;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return SS_NOT_FOUND;
    default:
        break;
    }
    if ((rc & 0xff) == SQLITE_FULL) {
        atomic_store(&c->owner->full, 1);
        atomic_store(&c->owner->shrink_log, 1);
        log_warn(LOG_MOD, "%s: %s: writes refused until space is freed", what,
                 sqlite3_errmsg(c->db));
        return SS_FULL;
    }
    if ((rc & 0xff) == SQLITE_NOMEM)
        return SS_NOMEM;
    log_error(LOG_MOD, "%s: %s (code %d)", what, sqlite3_errmsg(c->db), rc);
    return SS_STORE;
}

/* Binding with SQLITE_STATIC never allocates; a bind fails only on a wrong
 * index or a statement left running, both bugs. The binds of one call are
 * OR-ed together (SQLITE_OK is 0) and checked once. */
static int bind_check(store_conn *c, stmt_id id, int rc)
{
    if (rc == SQLITE_OK)
        return SS_OK;
    log_error(LOG_MOD, "%s: bind failed: %s", stmt_name[id], sqlite3_errmsg(c->db));
    sqlite3_reset(c->stmts[id]);
    return SS_STORE;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static int bind_blob(sqlite3_stmt *st, int i, const uint8_t *b, size_t len)
{
    return sqlite3_bind_blob(st, i, b, (int)len, SQLITE_STATIC);
}

/* size_t limits beyond INT64_MAX mean "no limit". */
static int64_t limit_i64(size_t limit)
{
    return limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit;
}

static void col_text(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    size_t len = s ? (size_t)sqlite3_column_bytes(st, i) : 0;
    if (len >= cap)
        len = cap - 1;
    if (len)
        memcpy(dst, s, len);
    dst[len] = '\0';
}

static void col_blob(sqlite3_stmt *st, int i, uint8_t *dst, size_t cap)
{
    const void *b = sqlite3_column_blob(st, i);
    size_t len = b ? (size_t)sqlite3_column_bytes(st, i) : 0;
    if (len > cap)
        len = cap;
    memset(dst, 0, cap);
    if (len)
        memcpy(dst, b, len);
}

/* Prepares statement `id` on first use; it stays prepared for the life of
 * the connection. */
static int stmt_get(store_conn *c, stmt_id id, sqlite3_stmt **out)
{
    if (!c->stmts[id]) {
        int rc = sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &c->stmts[id], NULL);
        if (rc != SQLITE_OK)
            return sq_err(c, rc, stmt_name[id]);
    }
    *out = c->stmts[id];
    return SS_OK;
}

/* Runs a statement that returns no rows, then resets it. */
static int step_done(store_conn *c, stmt_id id)
{
    int rc = sqlite3_step(c->stmts[id]);
    int err = rc == SQLITE_DONE ? SS_OK : sq_err(c, rc, stmt_name[id]);
    sqlite3_reset(c->stmts[id]);
    return err;
}

/* As step_done, and SS_NOT_FOUND when no row was changed. */
static int step_changed(store_conn *c, stmt_id id)
{
    int err = step_done(c, id);
    if (err == SS_OK && sqlite3_changes(c->db) == 0)
        return SS_NOT_FOUND;
    return err;
}

/* Steps to the first row: SS_OK with the row readable, SS_NOT_FOUND or an
 * error. The caller resets the statement. */
static int step_row(store_conn *c, stmt_id id)
{
    int rc = sqlite3_step(c->stmts[id]);
    if (rc == SQLITE_ROW)
        return SS_OK;
    if (rc == SQLITE_DONE)
        return SS_NOT_FOUND;
    return sq_err(c, rc, stmt_name[id]);
}

/* Steps a statement (bound already) to its one row and reads the row's
 * first column as an integer; the statement is reset either way.
 * SS_NOT_FOUND when there is no row. */
static int step_int64(store_conn *c, stmt_id id, int64_t *out)
{
    int err = step_row(c, id);
    if (!err)
        *out = sqlite3_column_int64(c->stmts[id], 0);
    sqlite3_reset(c->stmts[id]);
    return err;
}

/* Ends a row loop: SQLITE_DONE (or a stop asked by the callback) is
 * success. Resets the statement. */
static int rows_end(store_conn *c, stmt_id id, int rc)
{
    int err = rc == SQLITE_DONE ? SS_OK : sq_err(c, rc, stmt_name[id]);
    sqlite3_reset(c->stmts[id]);
    return err;
}

/* ---- transactions ---------------------------------------------------------- */

static int tx_begin(store_conn *c)
{
    sqlite3_stmt *st = NULL;
    c->tx_changes = sqlite3_total_changes64(c->db);
    int err = stmt_get(c, STMT_BEGIN, &st);
    return err ? err : step_done(c, STMT_BEGIN);
}

/* Only a commit that wrote something shows the disk has room again: one
 * that wrote nothing succeeds on a full disk too. */
static int tx_commit(store_conn *c)
{
    sqlite3_stmt *st = NULL;
    int wrote = sqlite3_total_changes64(c->db) != c->tx_changes;
    int err = stmt_get(c, STMT_COMMIT, &st);
    if (!err)
        err = step_done(c, STMT_COMMIT);
    if (!err && wrote)
        atomic_store(&c->owner->full, 0);
    return err;
}

/* Some errors (SQLITE_FULL, IOERR) already rolled the transaction back;
 * only roll back what is still open. */
static void tx_rollback(store_conn *c)
{
    if (sqlite3_get_autocommit(c->db))
        return;
    sqlite3_stmt *st = NULL;
    if (stmt_get(c, STMT_ROLLBACK, &st) == SS_OK)
        step_done(c, STMT_ROLLBACK);
}

/* Commits when err is SS_OK, else rolls back; returns the outcome. */
static int tx_end(store_conn *c, int err)
{
    if (err == SS_OK)
        err = tx_commit(c);
    if (err != SS_OK)
        tx_rollback(c);
    return err;
}

/* ---- space for checkpoints -------------------------------------------------- */

/* Free bytes on the file system of the database, as an unprivileged
 * process may use them; -1 when that cannot be read. */
static int64_t disk_free_bytes(const store *s)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", s->path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    struct statvfs v;
    if (statvfs(dir, &v) != 0)
        return -1;
    return (int64_t)v.f_bavail * (int64_t)v.f_frsize;
}

/* 1 when a checkpoint can finish: the disk has room for every page the log
 * holds. A checkpoint that runs out of space half-way keeps the pages it
 * added to the database file and frees nothing, so space an operator frees
 * would go to it, not to new data; better to wait until it fits, and let
 * new data take the space meanwhile. */
static int checkpoint_fits(const store *s)
{
    int64_t free_bytes = disk_free_bytes(s);
    if (free_bytes < 0)
        return 1;
    int64_t need = (int64_t)atomic_load(&s->wal_frames) * s->page_size +
                   STORE_CHECKPOINT_SLACK_BYTES;
    return free_bytes >= need;
}

/* SQLite's automatic checkpoint, replaced by the same PASSIVE checkpoint at
 * the same size, which runs only when it fits; it also learns the log's
 * size after each commit. */
static int on_wal_commit(void *ctx, sqlite3 *db, const char *name, int frames)
{
    store *s = ctx;
    atomic_store(&s->wal_frames, frames);
    if (frames >= STORE_WAL_CHECKPOINT_PAGES && checkpoint_fits(s))
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

/* At start the log's size is known only from its file (frames of 24 bytes
 * of header and a page): an upper bound of what a checkpoint needs. */
static void wal_frames_from_file(store *s, sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    s->page_size = 4096;
    if (sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0)
        s->page_size = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof wal, "%s-wal", s->path);
    struct stat sb;
    if (stat(wal, &sb) == 0)
        atomic_store(&s->wal_frames, (int64_t)sb.st_size / (s->page_size + 24));
}

/* ---- connections ----------------------------------------------------------- */

static void conn_free(store_conn *c)
{
    /* The last connection to close checkpoints the log; on a full disk
     * that would only eat what space is left. */
    if (c->db && !checkpoint_fits(c->owner))
        sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    for (size_t i = 0; i < STMT_COUNT; i++)
        sqlite3_finalize(c->stmts[i]);
    sqlite3_close(c->db);
    free(c->cache.slots);
    free(c->cache.touched);
    free(c->check);
    free(c);
}

/* WAL lets readers run beside the one writer and turns a commit into one
 * append (plus one fsync with synchronous=FULL). */
static int conn_wal(store_conn *c, char *errbuf, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    int ok = mode && strcmp((const char *)mode, "wal") == 0;
    if (!ok)
        set_err(errbuf, errlen, "%s: cannot enable WAL journal mode: %s", c->owner->path,
                rc == SQLITE_ROW ? "not supported on this file system" : sqlite3_errmsg(c->db));
    sqlite3_finalize(st);
    return ok ? SS_OK : SS_STORE;
}

/* synchronous=FULL syncs the WAL at every commit: a commit survives a power
 * loss. In WAL mode synchronous=NORMAL syncs only at checkpoints: a commit
 * is in the OS once acknowledged and survives the process being killed, but
 * the newest commits may be lost on a power loss. */
static const char *const sync_pragma[] = {
    [STORE_DURABILITY_FULL] = "PRAGMA synchronous = FULL",
    [STORE_DURABILITY_NORMAL] = "PRAGMA synchronous = NORMAL",
};

static int conn_configure(store_conn *c, char *errbuf, size_t errlen)
{
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, STORE_BUSY_TIMEOUT_MS);
    int err = conn_wal(c, errbuf, errlen);
    if (err)
        return err;
    const char *pragmas[] = {
        sync_pragma[c->owner->durability],
        "PRAGMA foreign_keys = ON",
        "PRAGMA cache_size = -" STR(STORE_CACHE_KIB),
        "PRAGMA temp_store = MEMORY",
        "PRAGMA journal_size_limit = " STR(STORE_WAL_SIZE_LIMIT),
    };
    for (size_t i = 0; i < sizeof pragmas / sizeof pragmas[0]; i++) {
        if (sqlite3_exec(c->db, pragmas[i], NULL, NULL, NULL) != SQLITE_OK) {
            set_err(errbuf, errlen, "%s: %s: %s", c->owner->path, pragmas[i],
                    sqlite3_errmsg(c->db));
            return SS_STORE;
        }
    }
    sqlite3_wal_hook(c->db, on_wal_commit, c->owner);
    return SS_OK;
}

/* NOMUTEX: a connection is used by one thread at a time (store.h), so
 * SQLite's per-connection mutex would only cost. */
static int conn_open(store *s, store_conn **out, char *errbuf, size_t errlen)
{
    store_conn *c = calloc(1, sizeof *c);
    if (!c)
        return SS_NOMEM;
    c->owner = s;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(s->path, &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        set_err(errbuf, errlen, "cannot open %s: %s", s->path,
                c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        conn_free(c);
        return rc == SQLITE_NOMEM ? SS_NOMEM : SS_STORE;
    }
    int err = conn_configure(c, errbuf, errlen);
    if (err) {
        conn_free(c);
        return err;
    }
    *out = c;
    return SS_OK;
}

int store_conn_acquire(store *s, store_conn **out)
{
    pthread_mutex_lock(&s->lock);
    store_conn *c = s->idle;
    if (c)
        s->idle = c->next_idle;
    pthread_mutex_unlock(&s->lock);
    if (c) {
        c->next_idle = NULL;
        *out = c;
        return SS_OK;
    }
    char why[STORE_ERR_MAX] = "";
    int err = conn_open(s, &c, why, sizeof why);
    if (err) {
        log_error(LOG_MOD, "new connection: %s", why[0] ? why : ss_strerror(err));
        return err == SS_NOMEM ? SS_NOMEM : SS_STORE;
    }
    pthread_mutex_lock(&s->lock);
    s->open_count++;
    pthread_mutex_unlock(&s->lock);
    *out = c;
    return SS_OK;
}

void store_conn_release(store *s, store_conn *c)
{
    if (!c)
        return;
    /* Every call ends its own transaction; this only guards against a bug
     * handing the next user a connection holding the write lock. */
    tx_rollback(c);
    pthread_mutex_lock(&s->lock);
    c->next_idle = s->idle;
    s->idle = c;
    pthread_mutex_unlock(&s->lock);
}

sqlite3 *store_sqlite_db(store_conn *c)
{
    return c->db;
}

/* ---- open and close ---------------------------------------------------------- */

static int store_path(const store_options *opt, char *path, size_t cap, char *errbuf,
                      size_t errlen)
{
    const char *url = opt->url ? opt->url : "";
    size_t scheme = strlen(STORE_URL_SCHEME);
    if (strncmp(url, STORE_URL_SCHEME, scheme) != 0) {
        set_err(errbuf, errlen, "unknown store url \"%s\": use \"sqlite:\" or \"sqlite:/path/file.db\"",
                url);
        return SS_INVAL;
    }
    const char *file = url + scheme;
    int n;
    if (file[0] == '\0') {
        if (!opt->data_dir || opt->data_dir[0] == '\0') {
            set_err(errbuf, errlen, "store url \"sqlite:\" needs a data directory");
            return SS_INVAL;
        }
        n = snprintf(path, cap, "%s/%s", opt->data_dir, STORE_DB_FILE);
    } else if (file[0] == '/') {
        n = snprintf(path, cap, "%s", file);
    } else {
        set_err(errbuf, errlen, "store url \"%s\": the file path must be absolute", url);
        return SS_INVAL;
    }
    if (n < 0 || (size_t)n >= cap) {
        set_err(errbuf, errlen, "store file path is too long");
        return SS_INVAL;
    }
    return SS_OK;
}

static void store_free(store *s)
{
    pthread_mutex_destroy(&s->held_write_lock);
    pthread_mutex_destroy(&s->held_lock);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int store_init(const store_options *opt, store *s, char *errbuf, size_t errlen)
{
    if (opt->durability != STORE_DURABILITY_FULL && opt->durability != STORE_DURABILITY_NORMAL) {
        set_err(errbuf, errlen, "unknown store durability %d", (int)opt->durability);
        return SS_INVAL;
    }
    s->durability = opt->durability;
    atomic_init(&s->device_generation, 0);
    return store_path(opt, s->path, sizeof s->path, errbuf, errlen);
}

int store_open(const store_options *opt, store **out, char *errbuf, size_t errlen)
{
    char local[STORE_ERR_MAX];
    if (!errbuf || errlen == 0) {
        errbuf = local;
        errlen = sizeof local;
    }
    errbuf[0] = '\0';
    if (!opt || !out) {
        set_err(errbuf, errlen, "no store options");
        return SS_INVAL;
    }
    store *s = calloc(1, sizeof *s);
    if (!s)
        return SS_NOMEM;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return SS_NOMEM;
    }
    if (pthread_mutex_init(&s->held_lock, NULL) != 0) {
        pthread_mutex_destroy(&s->lock);
        free(s);
        return SS_NOMEM;
    }
    if (pthread_mutex_init(&s->held_write_lock, NULL) != 0) {
        pthread_mutex_destroy(&s->held_lock);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return SS_NOMEM;
    }
    store_conn *c = NULL;
    int err = store_init(opt, s, errbuf, errlen);
    if (!err)
        err = conn_open(s, &c, errbuf, errlen);
    if (!err)
        wal_frames_from_file(s, c->db);
    if (!err)
        err = store_sqlite_migrate(c->db, errbuf, errlen);
    if (err) {
        if (c)
            conn_free(c);
        store_free(s);
        return err == SS_INVAL || err == SS_NOMEM ? err : SS_STORE;
    }
    s->idle = c;
    s->open_count = 1;
    *out = s;
    return SS_OK;
}

void store_close(store *s)
{
    if (!s)
        return;
    size_t closed = 0;
    while (s->idle) {
        store_conn *c = s->idle;
        s->idle = c->next_idle;
        conn_free(c);
        closed++;
    }
    /* A connection still out is a bug in the caller; freeing under it
     * would turn that into a use after free, so it leaks instead. */
    if (closed != s->open_count)
        log_error(LOG_MOD, "closed with %zu connection(s) still acquired",
                  s->open_count - closed);
    store_free(s);
}

int store_ping(store_conn *c)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_PING, &st);
    if (err)
        return err;
    err = step_row(c, STMT_PING);
    sqlite3_reset(st);
    return err == SS_NOT_FOUND ? SS_STORE : err;
}

int store_full(store *s)
{
    return atomic_load(&s->full);
}

int store_room_to_write(store *s)
{
    return !atomic_load(&s->full) && checkpoint_fits(s);
}

/* Rewrites the schema version with its own value: one page to the log,
 * nothing changed. */
static int probe_write(store_conn *c)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int version = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (version < 0)
        return sq_err(c, rc, "room probe");
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", version);
    rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? SS_OK : sq_err(c, rc, "room probe");
}

int store_probe_room(store_conn *c)
{
    store *s = c->owner;
    if (!atomic_load(&s->full) || !checkpoint_fits(s))
        return atomic_load(&s->full) ? SS_FULL : SS_OK;
    int err = tx_begin(c);
    if (!err)
        err = tx_end(c, probe_write(c));
    if (!err) {
        atomic_store(&s->full, 0);
        log_info(LOG_MOD, "the disk has room again: writes accepted");
    }
    return err;
}

/* 1 when a checkpoint of the log can finish, measured: it writes each page
 * once, in place, and grows the file only by the pages the database (as
 * the log's last commit has it) has beyond the file's end. The log's size
 * (checkpoint_fits) is an upper bound of that, far above it when commits
 * rewrite the same pages, or delete (the purge). */
static int checkpoint_fits_now(store_conn *c)
{
    if (checkpoint_fits(c->owner))
        return 1;
    sqlite3_stmt *st = NULL;
    int64_t pages = -1;
    if (sqlite3_prepare_v2(c->db, "PRAGMA page_count", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        pages = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    struct stat sb;
    int64_t free_bytes = disk_free_bytes(c->owner);
    if (pages < 0 || free_bytes < 0 || stat(c->owner->path, &sb) != 0)
        return 0;
    int64_t growth = pages * c->owner->page_size - (int64_t)sb.st_size;
    return free_bytes >= (growth > 0 ? growth : 0) + STORE_CHECKPOINT_SLACK_BYTES;
}

/* Truncates the log once a passive checkpoint has folded all of it: the
 * truncation then copies nothing, and holds the write lock only while it
 * waits for readers, STORE_TRUNCATE_WAIT_MS at most. A truncation that
 * copied the whole log would hold the lock as long, and ingest commits
 * would wait the busy timeout out and fail, just when space came back. */
static int checkpoint_truncate(store_conn *c)
{
    sqlite3_busy_timeout(c->db, STORE_TRUNCATE_WAIT_MS);
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    sqlite3_busy_timeout(c->db, STORE_BUSY_TIMEOUT_MS);
    return rc;
}

/* After a full disk the log is folded (passively, beside the writer) and
 * then truncated: the log's space goes back to the disk, for the database
 * to grow into. After each checkpoint the log's size counts only the
 * frames not yet folded. */
int store_checkpoint(store_conn *c)
{
    store *s = c->owner;
    if (!checkpoint_fits_now(c))
        return SS_OK;
    int shrink = atomic_load(&s->shrink_log);
    int log = 0, folded = 0;
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &folded);
    if (rc == SQLITE_OK && log >= folded)
        atomic_store(&s->wal_frames, log - folded);
    if (rc == SQLITE_OK && shrink && log == folded)
        rc = checkpoint_truncate(c);
    else
        shrink = 0;
    if (rc == SQLITE_OK && shrink) {
        atomic_store(&s->shrink_log, 0);
        atomic_store(&s->wal_frames, 0);
        log_info(LOG_MOD, "write-ahead log folded into the database and truncated");
    }
    if (rc == SQLITE_OK || (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
        return SS_OK;
    if ((rc & 0xff) == SQLITE_FULL) {
        atomic_store(&s->shrink_log, 1);
        return SS_FULL;
    }
    log_warn(LOG_MOD, "checkpoint: %s", sqlite3_errmsg(c->db));
    return SS_STORE;
}

/* ---- users --------------------------------------------------------------------- */

int store_user_count(store_conn *c, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_USER_COUNT, &st);
    if (err)
        return err;
    err = step_int64(c, STMT_USER_COUNT, out);
    return err == SS_NOT_FOUND ? SS_STORE : err;
}

int store_user_create(store_conn *c, const store_user *u)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_USER_INSERT, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_USER_INSERT,
                     bind_text(st, 1, u->id) | bind_text(st, 2, u->email) |
                         bind_text(st, 3, u->pw_hash) | sqlite3_bind_int(st, 4, u->superadmin != 0) |
                         sqlite3_bind_int(st, 5, u->disabled != 0) |
                         sqlite3_bind_int64(st, 6, u->created_at));
    return err ? err : step_done(c, STMT_USER_INSERT);
}

static void user_from_row(sqlite3_stmt *st, store_user *u)
{
    col_text(st, 0, u->id, sizeof u->id);
    col_text(st, 1, u->email, sizeof u->email);
    col_text(st, 2, u->pw_hash, sizeof u->pw_hash);
    u->superadmin = sqlite3_column_int(st, 3);
    u->disabled = sqlite3_column_int(st, 4);
    u->created_at = sqlite3_column_int64(st, 5);
    u->login_unlocked_at = 0;  /* read only by store_user_get*, column 6 */
}

static int user_get_by(store_conn *c, stmt_id id, const char *key, store_user *out)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, id, &st);
    if (err)
        return err;
    err = bind_check(c, id, bind_text(st, 1, key));
    if (err)
        return err;
    err = step_row(c, id);
    if (!err) {
        user_from_row(st, out);
        out->login_unlocked_at = sqlite3_column_int64(st, 6);
    }
    sqlite3_reset(st);
    return err;
}

int store_user_get(store_conn *c, const char *id, store_user *out)
{
    return user_get_by(c, STMT_USER_GET, id, out);
}

int store_user_get_by_email(store_conn *c, const char *email, store_user *out)
{
    return user_get_by(c, STMT_USER_GET_EMAIL, email, out);
}

int store_user_set_password(store_conn *c, const char *id, const char *pw_hash)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_USER_SET_PW, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_USER_SET_PW, bind_text(st, 1, id) | bind_text(st, 2, pw_hash));
    return err ? err : step_changed(c, STMT_USER_SET_PW);
}

int store_user_set_disabled(store_conn *c, const char *id, int disabled)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_USER_SET_DISABLED, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_USER_SET_DISABLED,
                     bind_text(st, 1, id) | sqlite3_bind_int(st, 2, disabled != 0));
    return err ? err : step_changed(c, STMT_USER_SET_DISABLED);
}

int store_user_unlock_login(store_conn *c, const char *id, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_USER_UNLOCK, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_USER_UNLOCK, bind_text(st, 1, id) | sqlite3_bind_int64(st, 2, now_ms));
    return err ? err : step_changed(c, STMT_USER_UNLOCK);
}

int store_user_in_reach(store_conn *c, const char *admin_id, const char *key_org_id,
                        const char *user_id, int *out)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_USER_IN_REACH, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_USER_IN_REACH,
                     (admin_id ? bind_text(st, 1, admin_id) : sqlite3_bind_null(st, 1)) |
                         (key_org_id ? bind_text(st, 2, key_org_id) : sqlite3_bind_null(st, 2)) |
                         bind_text(st, 3, user_id));
    if (err)
        return err;
    err = step_row(c, STMT_USER_IN_REACH);
    if (!err)
        *out = sqlite3_column_int(st, 0) != 0;
    sqlite3_reset(st);
    return err == SS_NOT_FOUND ? SS_STORE : err;
}

/* ---- sessions ------------------------------------------------------------------ */

static int held_deletes_write(store_conn *c);
static int held_delete_add(store *s, const held_delete *d);
static int session_delete_db(store_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES]);

/* Sessions held in memory, for sign-in on a full disk (store.h). Every
 * session call looks here first, under held_lock: a held session is never
 * in the database too, since the write that moves it there and its removal
 * from here happen under the same lock. */

static ssize_t held_find(const store *s, const uint8_t hash[SS_SECRET_HASH_BYTES])
{
    for (size_t i = 0; i < s->n_held; i++) {
        if (memcmp(s->held[i].token_hash, hash, SS_SECRET_HASH_BYTES) == 0)
            return (ssize_t)i;
    }
    return -1;
}

static void held_remove(store *s, size_t i)
{
    s->held[i] = s->held[--s->n_held];
}

/* SS_OK once held, SS_FULL when there is no room left for it either. */
static int held_add(store *s, const store_session *sess)
{
    int err = SS_FULL;
    pthread_mutex_lock(&s->held_lock);
    if (s->n_held < STORE_HELD_SESSIONS_MAX) {
        s->held[s->n_held++] = *sess;
        err = SS_OK;
    }
    pthread_mutex_unlock(&s->held_lock);
    if (!err)
        log_info(LOG_MOD, "disk full: a sign-in is kept in memory until space returns");
    return err;
}

static int session_insert(store_conn *c, const store_session *s)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_SESSION_INSERT, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_SESSION_INSERT,
                     bind_blob(st, 1, s->token_hash, sizeof s->token_hash) |
                         bind_text(st, 2, s->id) | bind_text(st, 3, s->user_id) |
                         bind_text(st, 4, s->csrf) | bind_text(st, 5, s->peer) |
                         sqlite3_bind_int64(st, 6, s->created_at) |
                         sqlite3_bind_int64(st, 7, s->last_seen_at) |
                         sqlite3_bind_int64(st, 8, s->expires_at));
    return err ? err : step_done(c, STMT_SESSION_INSERT);
}

int store_session_create(store_conn *c, const store_session *s)
{
    int err = session_insert(c, s);
    return err == SS_FULL ? held_add(c->owner, s) : err;
}

/* Takes the oldest held session out of the hold once it is in the
 * database. Anything done to it meanwhile (held_lock was not held while it
 * was written) is carried over: a delete deletes the row written, a touch
 * is written too. */
static int held_settle(store_conn *c, const store_session *h, int written)
{
    store *s = c->owner;
    pthread_mutex_lock(&s->held_lock);
    ssize_t i = held_find(s, h->token_hash);
    int64_t seen = i >= 0 ? s->held[i].last_seen_at : 0;
    if (i >= 0) {
        memmove(&s->held[i], &s->held[i + 1], (s->n_held - (size_t)i - 1) * sizeof s->held[0]);
        s->n_held--;
    }
    pthread_mutex_unlock(&s->held_lock);
    if (!written)
        return SS_OK;
    if (i < 0) {
        int err = session_delete_db(c, h->token_hash);
        if (err && err != SS_NOT_FOUND) {
            /* ended meanwhile, and its row could not go: refused from here */
            held_delete d = {.by_hash = 1};
            memcpy(d.hash, h->token_hash, sizeof d.hash);
            held_delete_add(s, &d);
        }
        return SS_OK;
    }
    if (seen > h->last_seen_at)
        store_session_touch(c, h->token_hash, seen);
    return SS_OK;
}

/* Moves held sessions to the database, oldest first, until one does not
 * fit; drops those expired meanwhile. held_lock is taken only to copy and
 * to settle, never across a write, which may wait the busy timeout while
 * every request's session look-up needs the lock. */
int store_session_write_held(store_conn *c, int64_t now_ms)
{
    store *s = c->owner;
    pthread_mutex_lock(&s->held_write_lock);
    int err = held_deletes_write(c);
    while (err == SS_OK) {
        pthread_mutex_lock(&s->held_lock);
        size_t n = s->n_held;
        store_session h;
        if (n > 0)
            h = s->held[0];
        pthread_mutex_unlock(&s->held_lock);
        if (n == 0)
            break;
        int write = h.expires_at > now_ms;
        err = write ? session_insert(c, &h) : SS_OK;
        if (err == SS_EXISTS || err == SS_NOT_FOUND) {
            err = SS_OK;  /* not to be written: an id taken, a user deleted */
            write = 0;
        }
        if (err == SS_OK)
            err = held_settle(c, &h, write);
    }
    pthread_mutex_unlock(&s->held_write_lock);
    return err;
}

/* The held session of this hash, when it has not expired. 1 when found. */
static int held_get(store *s, const uint8_t hash[SS_SECRET_HASH_BYTES], int64_t now_ms,
                    store_session *out)
{
    pthread_mutex_lock(&s->held_lock);
    ssize_t i = held_find(s, hash);
    int found = i >= 0 && s->held[i].expires_at > now_ms;
    if (found)
        *out = s->held[i];
    pthread_mutex_unlock(&s->held_lock);
    return found;
}

/* Removes the held sessions matching; the number removed. */
static size_t held_drop(store *s, const uint8_t *hash, const char *user_id, const char *id,
                        const uint8_t *keep)
{
    size_t n = 0;
    pthread_mutex_lock(&s->held_lock);
    for (size_t i = s->n_held; i-- > 0;) {
        const store_session *h = &s->held[i];
        int match = hash ? memcmp(h->token_hash, hash, SS_SECRET_HASH_BYTES) == 0
                         : strcmp(h->user_id, user_id) == 0 && (!id || strcmp(h->id, id) == 0) &&
                               !(keep && memcmp(h->token_hash, keep, SS_SECRET_HASH_BYTES) == 0);
        if (match) {
            held_remove(s, i);
            n++;
        }
    }
    pthread_mutex_unlock(&s->held_lock);
    return n;
}

static int session_delete_user_db(store_conn *c, const char *user_id, const uint8_t *keep);
static int session_delete_id_db(store_conn *c, const char *user_id, const char *id);

/* 1 when a held delete names the session. Under held_lock. */
static int held_deleted(const store *s, const store_session *sess)
{
    for (size_t i = 0; i < s->n_dels; i++) {
        const held_delete *d = &s->dels[i];
        if (d->by_hash ? memcmp(d->hash, sess->token_hash, SS_SECRET_HASH_BYTES) == 0
                       : strcmp(d->user_id, sess->user_id) == 0 && sess->created_at <= d->at &&
                             (!d->id[0] || strcmp(d->id, sess->id) == 0) &&
                             !(d->has_keep &&
                               memcmp(d->keep, sess->token_hash, SS_SECRET_HASH_BYTES) == 0))
            return 1;
    }
    return 0;
}

/* Holds a delete the disk had no room for. It is in force on this
 * process at once but not durable, so it is never an SS_OK: SS_FULL once
 * held, SS_STORE when there is no room in memory either (the sessions
 * stay valid). */
static int held_delete_add(store *s, const held_delete *d)
{
    int err = SS_STORE;
    pthread_mutex_lock(&s->held_lock);
    if (s->n_dels < STORE_HELD_SESSIONS_MAX) {
        s->dels[s->n_dels++] = *d;
        err = SS_FULL;
    }
    pthread_mutex_unlock(&s->held_lock);
    if (err == SS_FULL)
        log_info(LOG_MOD, "disk full: a sign-out is kept in memory until space returns");
    else
        log_warn(LOG_MOD, "disk full: a sign-out could not be kept in memory either");
    return err;
}

static int held_delete_write(store_conn *c, const held_delete *d)
{
    int err = d->by_hash ? session_delete_db(c, d->hash)
              : d->id[0] ? session_delete_id_db(c, d->user_id, d->id)
                         : session_delete_user_db(c, d->user_id, d->has_keep ? d->keep : NULL);
    return err == SS_NOT_FOUND ? SS_OK : err;
}

/* Writes the held deletes, oldest first, until one does not fit. Under
 * held_write_lock, the only place deletes leave the hold: the first one
 * stays the first while it is written without held_lock. */
static int held_deletes_write(store_conn *c)
{
    store *s = c->owner;
    int err = SS_OK;
    for (;;) {
        pthread_mutex_lock(&s->held_lock);
        size_t n = s->n_dels;
        held_delete d;
        if (n > 0)
            d = s->dels[0];
        pthread_mutex_unlock(&s->held_lock);
        if (n == 0 || err)
            break;
        err = held_delete_write(c, &d);
        if (err)
            break;
        pthread_mutex_lock(&s->held_lock);
        memmove(&s->dels[0], &s->dels[1], (s->n_dels - 1) * sizeof s->dels[0]);
        s->n_dels--;
        pthread_mutex_unlock(&s->held_lock);
    }
    return err;
}

static int held_touch(store *s, const uint8_t hash[SS_SECRET_HASH_BYTES], int64_t now_ms)
{
    pthread_mutex_lock(&s->held_lock);
    ssize_t i = held_find(s, hash);
    if (i >= 0 && s->held[i].last_seen_at < now_ms)
        s->held[i].last_seen_at = now_ms;
    pthread_mutex_unlock(&s->held_lock);
    return i >= 0;
}

static int held_list(store *s, const char *user_id, int64_t now_ms, store_session_cb cb,
                     void *ctx)
{
    int stop = 0;
    pthread_mutex_lock(&s->held_lock);
    for (size_t i = 0; i < s->n_held && !stop; i++) {
        if (strcmp(s->held[i].user_id, user_id) == 0 && s->held[i].expires_at > now_ms)
            stop = cb(ctx, &s->held[i]);
    }
    pthread_mutex_unlock(&s->held_lock);
    return stop;
}

static void session_from_row(sqlite3_stmt *st, store_session *s)
{
    col_blob(st, 0, s->token_hash, sizeof s->token_hash);
    col_text(st, 1, s->id, sizeof s->id);
    col_text(st, 2, s->user_id, sizeof s->user_id);
    col_text(st, 3, s->csrf, sizeof s->csrf);
    col_text(st, 4, s->peer, sizeof s->peer);
    s->created_at = sqlite3_column_int64(st, 5);
    s->last_seen_at = sqlite3_column_int64(st, 6);
    s->expires_at = sqlite3_column_int64(st, 7);
}

int store_session_get(store_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES], int64_t now_ms,
                      store_session *out)
{
    if (held_get(c->owner, hash, now_ms, out))
        return SS_OK;
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_SESSION_GET, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_SESSION_GET,
                     bind_blob(st, 1, hash, SS_SECRET_HASH_BYTES) |
                         sqlite3_bind_int64(st, 2, now_ms));
    if (err)
        return err;
    err = step_row(c, STMT_SESSION_GET);
    if (!err)
        session_from_row(st, out);
    sqlite3_reset(st);
    if (!err) {
        pthread_mutex_lock(&c->owner->held_lock);
        if (held_deleted(c->owner, out))
            err = SS_NOT_FOUND;
        pthread_mutex_unlock(&c->owner->held_lock);
    }
    return err;
}

int store_session_delete(store_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES])
{
    if (held_drop(c->owner, hash, NULL, NULL, NULL))
        return SS_OK;
    int err = session_delete_db(c, hash);
    if (err != SS_FULL)
        return err;
    held_delete d = {.by_hash = 1};
    memcpy(d.hash, hash, sizeof d.hash);
    return held_delete_add(c->owner, &d);
}

/* A user's sessions: the held ones go at once; on a full disk the delete of
 * the stored ones is held, for sessions created until now. */
static int delete_user_sessions(store_conn *c, const char *user_id, const char *id,
                                const uint8_t *keep)
{
    size_t held = held_drop(c->owner, NULL, user_id, id, keep);
    if (id && held)
        return SS_OK;
    int err = id ? session_delete_id_db(c, user_id, id) : session_delete_user_db(c, user_id, keep);
    if (err != SS_FULL)
        return err;
    held_delete d = {.has_keep = keep != NULL, .at = clock_now_ms()};
    snprintf(d.user_id, sizeof d.user_id, "%s", user_id);
    snprintf(d.id, sizeof d.id, "%s", id ? id : "");
    if (keep)
        memcpy(d.keep, keep, sizeof d.keep);
    return held_delete_add(c->owner, &d);
}

int store_session_delete_user(store_conn *c, const char *user_id, const uint8_t *keep)
{
    return delete_user_sessions(c, user_id, NULL, keep);
}

int store_session_delete_id(store_conn *c, const char *user_id, const char *id)
{
    if (!id[0])
        return SS_NOT_FOUND;
    return delete_user_sessions(c, user_id, id, NULL);
}

static int session_delete_db(store_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES])
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_SESSION_DELETE, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_SESSION_DELETE, bind_blob(st, 1, hash, SS_SECRET_HASH_BYTES));
    return err ? err : step_changed(c, STMT_SESSION_DELETE);
}

/* `token_hash IS NOT NULL` holds for every row, so a NULL keep deletes all
 * of the user's sessions with the same statement. Deleting none is not an
 * error: the user may simply have no other session. */
static int session_delete_user_db(store_conn *c, const char *user_id, const uint8_t *keep)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_SESSION_DELETE_USER, &st);
    if (err)
        return err;
    int rc = bind_text(st, 1, user_id);
    rc |= keep ? bind_blob(st, 2, keep, SS_SECRET_HASH_BYTES) : sqlite3_bind_null(st, 2);
    err = bind_check(c, STMT_SESSION_DELETE_USER, rc);
    return err ? err : step_done(c, STMT_SESSION_DELETE_USER);
}

/* last_seen_at never moves back: two requests of one session finishing out
 * of order keep the later time. */
int store_session_touch(store_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES], int64_t now_ms)
{
    if (held_touch(c->owner, hash, now_ms))
        return SS_OK;
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_SESSION_TOUCH, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_SESSION_TOUCH,
                     bind_blob(st, 1, hash, SS_SECRET_HASH_BYTES) |
                         sqlite3_bind_int64(st, 2, now_ms));
    return err ? err : step_changed(c, STMT_SESSION_TOUCH);
}

int store_session_list_user(store_conn *c, const char *user_id, int64_t now_ms,
                            store_session_cb cb, void *ctx)
{
    if (held_list(c->owner, user_id, now_ms, cb, ctx))
        return SS_OK;
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_SESSION_LIST_USER, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_SESSION_LIST_USER,
                     bind_text(st, 1, user_id) | sqlite3_bind_int64(st, 2, now_ms));
    if (err)
        return err;
    int rc;
    store_session s;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        session_from_row(st, &s);
        /* A held session being written is listed once, from the hold. */
        pthread_mutex_lock(&c->owner->held_lock);
        int gone = held_deleted(c->owner, &s) || held_find(c->owner, s.token_hash) >= 0;
        pthread_mutex_unlock(&c->owner->held_lock);
        if (!gone && cb(ctx, &s) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return rows_end(c, STMT_SESSION_LIST_USER, rc);
}

/* Sessions from schema version 1 have the id '': they cannot be named, so
 * an empty id matches none of them. */
static int session_delete_id_db(store_conn *c, const char *user_id, const char *id)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_SESSION_DELETE_ID, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_SESSION_DELETE_ID, bind_text(st, 1, user_id) | bind_text(st, 2, id));
    return err ? err : step_changed(c, STMT_SESSION_DELETE_ID);
}

/* ---- organisations and roles ------------------------------------------------ */

int store_org_create(store_conn *c, const store_org *org)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_ORG_INSERT, &st);
    if (err)
        return err;
    int rc = bind_text(st, 1, org->id) | bind_text(st, 2, org->name);
    rc |= org->parent_id[0] ? bind_text(st, 3, org->parent_id) : sqlite3_bind_null(st, 3);
    rc |= sqlite3_bind_int64(st, 4, org->created_at);
    err = bind_check(c, STMT_ORG_INSERT, rc);
    return err ? err : step_done(c, STMT_ORG_INSERT);
}

static void org_from_row(sqlite3_stmt *st, store_org *org)
{
    col_text(st, 0, org->id, sizeof org->id);
    col_text(st, 1, org->name, sizeof org->name);
    col_text(st, 2, org->parent_id, sizeof org->parent_id);
    org->created_at = sqlite3_column_int64(st, 3);
}

int store_org_get(store_conn *c, const char *id, store_org *out)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_ORG_GET, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_ORG_GET, bind_text(st, 1, id));
    if (err)
        return err;
    err = step_row(c, STMT_ORG_GET);
    if (!err)
        org_from_row(st, out);
    sqlite3_reset(st);
    return err;
}

int store_org_list(store_conn *c, const char *user_id, store_org_cb cb, void *ctx)
{
    stmt_id id = user_id ? STMT_ORG_LIST_USER : STMT_ORG_LIST_ALL;
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, id, &st);
    if (err)
        return err;
    if (user_id) {
        err = bind_check(c, id, bind_text(st, 1, user_id));
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
    return rows_end(c, id, rc);
}

static int membership_delete(store_conn *c, const char *org_id, const char *user_id)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_MEMBER_DELETE, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_MEMBER_DELETE, bind_text(st, 1, org_id) | bind_text(st, 2, user_id));
    return err ? err : step_changed(c, STMT_MEMBER_DELETE);
}

/* SS_NOT_FOUND for an unknown org or user (foreign keys), or when removing
 * a membership that does not exist. */
int store_membership_set(store_conn *c, const char *org_id, const char *user_id, store_role role)
{
    if ((int)role < (int)STORE_ROLE_NONE || (int)role > (int)STORE_ROLE_OWNER)
        return SS_INVAL;
    if (role == STORE_ROLE_NONE)
        return membership_delete(c, org_id, user_id);
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_MEMBER_UPSERT, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_MEMBER_UPSERT,
                     bind_text(st, 1, org_id) | bind_text(st, 2, user_id) |
                         sqlite3_bind_int(st, 3, (int)role));
    return err ? err : step_done(c, STMT_MEMBER_UPSERT);
}

int store_membership_change(store_conn *c, const char *org_id, const char *user_id,
                            store_role role)
{
    int err = tx_begin(c);
    if (err)
        return err;
    store_role current = STORE_ROLE_NONE;
    int64_t owners = 0;
    err = store_membership_get(c, org_id, user_id, &current);
    if (!err && current == STORE_ROLE_OWNER && role != STORE_ROLE_OWNER) {
        err = store_member_count(c, org_id, STORE_ROLE_OWNER, &owners);
        if (!err && owners <= 1)
            err = SS_CONFLICT;
    }
    if (!err)
        err = store_membership_set(c, org_id, user_id, role);
    return tx_end(c, err);
}

/* One statement: the walk up from the org (at most STORE_ORG_DEPTH_MAX
 * steps) counts the orgs found (0: no such org) and takes the user's
 * highest role among them. */
int store_role_effective(store_conn *c, const char *user_id, const char *org_id,
                         store_role *out)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_ROLE_EFFECTIVE, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_ROLE_EFFECTIVE, bind_text(st, 1, user_id) | bind_text(st, 2, org_id));
    if (err)
        return err;
    err = step_row(c, STMT_ROLE_EFFECTIVE);
    if (!err && sqlite3_column_int64(st, 0) == 0)
        err = SS_NOT_FOUND;
    if (!err) {
        int role = sqlite3_column_int(st, 1);
        *out = role > STORE_ROLE_OWNER ? STORE_ROLE_OWNER : (store_role)role;
    }
    sqlite3_reset(st);
    return err;
}

int store_org_rename(store_conn *c, const char *id, const char *name)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_ORG_RENAME, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_ORG_RENAME, bind_text(st, 1, id) | bind_text(st, 2, name));
    return err ? err : step_changed(c, STMT_ORG_RENAME);
}

int store_member_list(store_conn *c, const char *org_id, store_member_cb cb, void *ctx)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_ORG_MEMBERS, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_ORG_MEMBERS, bind_text(st, 1, org_id));
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
    return rows_end(c, STMT_ORG_MEMBERS, rc);
}

int store_membership_list(store_conn *c, const char *user_id, store_membership_cb cb, void *ctx)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_MEMBER_LIST, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_MEMBER_LIST, bind_text(st, 1, user_id));
    if (err)
        return err;
    int rc;
    char org_id[SS_ID_LEN + 1];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        col_text(st, 0, org_id, sizeof org_id);
        if (cb(ctx, org_id, (store_role)sqlite3_column_int(st, 1)) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return rows_end(c, STMT_MEMBER_LIST, rc);
}

/* Under the write lock, so no child can appear between the check and the
 * delete. The parent_id foreign key would refuse the delete anyway, but as
 * a constraint error that reads as "not found". */
static int org_delete_check(store_conn *c, const char *id)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_ORG_DELETE_CHECK, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_ORG_DELETE_CHECK, bind_text(st, 1, id));
    if (err)
        return err;
    err = step_row(c, STMT_ORG_DELETE_CHECK);
    if (!err && sqlite3_column_int64(st, 0) == 0)
        err = SS_NOT_FOUND;
    else if (!err && sqlite3_column_int(st, 1) != 0)
        err = SS_CONFLICT;
    sqlite3_reset(st);
    return err;
}

/* Children before parents: the series go to the purge list (their readings
 * are deleted later, in bounded chunks: store_purge_step), then series,
 * devices, API keys, memberships, the quota, then the org. Audit rows,
 * usage and session records stay: they are history (and billing). */
static int org_delete_rows(store_conn *c, const char *id)
{
    static const stmt_id steps[] = {STMT_ORG_PURGE_SERIES, STMT_ORG_DEL_SERIES,
                                    STMT_ORG_DEL_DEVICES,  STMT_ORG_DEL_APIKEYS,
                                    STMT_ORG_DEL_MEMBERS,  STMT_ORG_DEL_QUOTA,
                                    STMT_ORG_DEL_INVITES,  STMT_ORG_DELETE};
    int err = SS_OK;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0] && !err; i++) {
        sqlite3_stmt *st = NULL;
        err = stmt_get(c, steps[i], &st);
        if (!err)
            err = bind_check(c, steps[i], bind_text(st, 1, id));
        if (!err)
            err = steps[i] == STMT_ORG_DELETE ? step_changed(c, steps[i]) : step_done(c, steps[i]);
    }
    return err;
}

int store_org_delete(store_conn *c, const char *id)
{
    int err = tx_begin(c);
    if (err)
        return err;
    err = org_delete_check(c, id);
    if (!err) {
        /* Inside the write lock: see store.device_generation. */
        atomic_fetch_add(&c->owner->device_generation, 1);
        err = org_delete_rows(c, id);
    }
    return tx_end(c, err);
}

int store_org_device_ids(store_conn *c, const char *org_id,
                         int (*cb)(void *ctx, const char *device_id), void *ctx)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_ORG_DEVICE_IDS, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_ORG_DEVICE_IDS, bind_text(st, 1, org_id));
    if (err)
        return err;
    int rc;
    char id[SS_ID_LEN + 1];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        col_text(st, 0, id, sizeof id);
        if (cb(ctx, id) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return rows_end(c, STMT_ORG_DEVICE_IDS, rc);
}

int store_membership_get(store_conn *c, const char *org_id, const char *user_id,
                         store_role *out)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_MEMBER_GET, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_MEMBER_GET, bind_text(st, 1, org_id) | bind_text(st, 2, user_id));
    if (err)
        return err;
    err = step_row(c, STMT_MEMBER_GET);
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
int store_member_count(store_conn *c, const char *org_id, store_role role, int64_t *out)
{
    if ((int)role < (int)STORE_ROLE_VIEWER || (int)role > (int)STORE_ROLE_OWNER)
        return SS_INVAL;
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_MEMBER_COUNT, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_MEMBER_COUNT,
                     bind_text(st, 1, org_id) | sqlite3_bind_int(st, 2, (int)role));
    if (err)
        return err;
    err = step_int64(c, STMT_MEMBER_COUNT, out);
    return err == SS_NOT_FOUND ? SS_STORE : err;
}

/* ---- API keys ------------------------------------------------------------------ */

/* Every scope bit store.h defines; a key with any other bit is refused so
 * an unknown scope can never be granted by accident. */
#define STORE_SCOPES_ALL (STORE_SCOPE_DATA_READ | STORE_SCOPE_DATA_WRITE | STORE_SCOPE_MANAGE)

/* SS_INVAL for unknown scope bits. */
int store_apikey_create(store_conn *c, const store_apikey *k)
{
    if ((k->scopes & ~STORE_SCOPES_ALL) != 0)
        return SS_INVAL;
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_APIKEY_INSERT, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_APIKEY_INSERT,
                     bind_text(st, 1, k->id) | bind_text(st, 2, k->org_id) |
                         bind_text(st, 3, k->name) | sqlite3_bind_int64(st, 4, k->scopes) |
                         bind_blob(st, 5, k->key_hash, sizeof k->key_hash) |
                         bind_text(st, 6, k->created_by) |
                         sqlite3_bind_int64(st, 7, k->created_at));
    return err ? err : step_done(c, STMT_APIKEY_INSERT);
}

static void apikey_from_row(sqlite3_stmt *st, store_apikey *k)
{
    col_text(st, 0, k->id, sizeof k->id);
    col_text(st, 1, k->org_id, sizeof k->org_id);
    col_text(st, 2, k->name, sizeof k->name);
    k->scopes = (unsigned)sqlite3_column_int64(st, 3) & STORE_SCOPES_ALL;
    col_blob(st, 4, k->key_hash, sizeof k->key_hash);
    col_text(st, 5, k->created_by, sizeof k->created_by);
    k->created_at = sqlite3_column_int64(st, 6);
}

/* Runs a one-row lookup whose ?1 is already bound. */
static int apikey_get_row(store_conn *c, stmt_id id, store_apikey *out)
{
    int err = step_row(c, id);
    if (!err)
        apikey_from_row(c->stmts[id], out);
    sqlite3_reset(c->stmts[id]);
    return err;
}

int store_apikey_get(store_conn *c, const char *id, store_apikey *out)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_APIKEY_GET, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_APIKEY_GET, bind_text(st, 1, id));
    return err ? err : apikey_get_row(c, STMT_APIKEY_GET, out);
}

int store_apikey_get_by_hash(store_conn *c, const uint8_t hash[SS_SECRET_HASH_BYTES],
                             store_apikey *out)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_APIKEY_GET_HASH, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_APIKEY_GET_HASH, bind_blob(st, 1, hash, SS_SECRET_HASH_BYTES));
    return err ? err : apikey_get_row(c, STMT_APIKEY_GET_HASH, out);
}

int store_apikey_list(store_conn *c, const char *org_id, store_apikey_cb cb, void *ctx)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_APIKEY_LIST, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_APIKEY_LIST, bind_text(st, 1, org_id));
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
    return rows_end(c, STMT_APIKEY_LIST, rc);
}

int store_apikey_delete(store_conn *c, const char *id)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_APIKEY_DELETE, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_APIKEY_DELETE, bind_text(st, 1, id));
    return err ? err : step_changed(c, STMT_APIKEY_DELETE);
}

/* ---- invitations ------------------------------------------------------------- */

int store_invitation_put(store_conn *c, const store_invitation *inv)
{
    if ((int)inv->role < (int)STORE_ROLE_VIEWER || (int)inv->role > (int)STORE_ROLE_OWNER)
        return SS_INVAL;
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_INVITE_UPSERT, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_INVITE_UPSERT,
                     bind_text(st, 1, inv->id) | bind_text(st, 2, inv->org_id) |
                         bind_text(st, 3, inv->user_id) | sqlite3_bind_int(st, 4, (int)inv->role) |
                         bind_text(st, 5, inv->invited_by) |
                         sqlite3_bind_int64(st, 6, inv->created_at));
    return err ? err : step_done(c, STMT_INVITE_UPSERT);
}

int store_invitation_invite(store_conn *c, const store_user *new_user, store_invitation *inv)
{
    int err = tx_begin(c);
    if (err)
        return err;
    store_user found;
    err = store_user_get_by_email(c, new_user->email, &found);
    if (err == SS_NOT_FOUND) {
        found = *new_user;
        err = store_user_create(c, &found);
    }
    if (!err) {
        memcpy(inv->user_id, found.id, sizeof inv->user_id);
        err = store_invitation_put(c, inv);
    }
    return tx_end(c, err);
}

static void invitation_from_row(sqlite3_stmt *st, store_invitation *inv)
{
    col_text(st, 0, inv->id, sizeof inv->id);
    col_text(st, 1, inv->org_id, sizeof inv->org_id);
    col_text(st, 2, inv->user_id, sizeof inv->user_id);
    int role = sqlite3_column_int(st, 3);
    inv->role = role > STORE_ROLE_OWNER ? STORE_ROLE_OWNER : (store_role)role;
    col_text(st, 4, inv->invited_by, sizeof inv->invited_by);
    inv->created_at = sqlite3_column_int64(st, 5);
    col_text(st, 6, inv->email, sizeof inv->email);
}

int store_invitation_get(store_conn *c, const char *id, store_invitation *out)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_INVITE_GET, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_INVITE_GET, bind_text(st, 1, id));
    if (err)
        return err;
    err = step_row(c, STMT_INVITE_GET);
    if (!err)
        invitation_from_row(st, out);
    sqlite3_reset(st);
    return err;
}

static int invitation_rows(store_conn *c, stmt_id id, const char *key, store_invitation_cb cb,
                           void *ctx)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, id, &st);
    if (err)
        return err;
    err = bind_check(c, id, bind_text(st, 1, key));
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
    return rows_end(c, id, rc);
}

int store_invitation_list_user(store_conn *c, const char *user_id, store_invitation_cb cb,
                               void *ctx)
{
    return invitation_rows(c, STMT_INVITE_LIST_USER, user_id, cb, ctx);
}

int store_invitation_list_org(store_conn *c, const char *org_id, store_invitation_cb cb,
                              void *ctx)
{
    return invitation_rows(c, STMT_INVITE_LIST_ORG, org_id, cb, ctx);
}

int store_invitation_delete(store_conn *c, const char *id)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_INVITE_DELETE, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_INVITE_DELETE, bind_text(st, 1, id));
    return err ? err : step_changed(c, STMT_INVITE_DELETE);
}

int store_invitation_accept(store_conn *c, const char *id, const char *user_id,
                            store_invitation *out)
{
    int err = tx_begin(c);
    if (err)
        return err;
    store_role current = STORE_ROLE_NONE;
    err = store_invitation_get(c, id, out);
    if (!err && strcmp(out->user_id, user_id) != 0)
        err = SS_NOT_FOUND;
    if (!err)
        err = store_membership_get(c, out->org_id, user_id, &current);
    if (!err && current < out->role)
        err = store_membership_set(c, out->org_id, user_id, out->role);
    if (!err)
        err = store_invitation_delete(c, id);
    return tx_end(c, err);
}

/* ---- audit log ----------------------------------------------------------------- */

int store_audit_append(store_conn *c, const store_audit *a)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_AUDIT_INSERT, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_AUDIT_INSERT,
                     sqlite3_bind_int64(st, 1, a->ts) | bind_text(st, 2, a->org_id) |
                         bind_text(st, 3, a->actor) | bind_text(st, 4, a->action) |
                         bind_text(st, 5, a->target) | bind_text(st, 6, a->addr) |
                         bind_text(st, 7, a->detail) | bind_text(st, 8, a->actor_name));
    return err ? err : step_done(c, STMT_AUDIT_INSERT);
}

static void audit_from_row(sqlite3_stmt *st, store_audit *a)
{
    a->id = sqlite3_column_int64(st, 0);
    a->ts = sqlite3_column_int64(st, 1);
    col_text(st, 2, a->org_id, sizeof a->org_id);
    col_text(st, 3, a->actor, sizeof a->actor);
    col_text(st, 4, a->action, sizeof a->action);
    col_text(st, 5, a->target, sizeof a->target);
    col_text(st, 6, a->addr, sizeof a->addr);
    col_text(st, 7, a->detail, sizeof a->detail);
    col_text(st, 8, a->actor_name, sizeof a->actor_name);
}

/* SS_INVAL for a limit of 0, as for readings queries. Entries with the same
 * ts come newest appended first (by id). */
int store_audit_list(store_conn *c, const char *org_id, int64_t from, int64_t to, size_t limit,
                     store_audit_cb cb, void *ctx)
{
    if (limit == 0)
        return SS_INVAL;
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_AUDIT_LIST, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_AUDIT_LIST,
                     bind_text(st, 1, org_id) | sqlite3_bind_int64(st, 2, from) |
                         sqlite3_bind_int64(st, 3, to) |
                         sqlite3_bind_int64(st, 4, limit_i64(limit)));
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
    return rows_end(c, STMT_AUDIT_LIST, rc);
}

/* ---- devices ------------------------------------------------------------------ */

/* SS_QUOTA when the org or an ancestor already has as many devices in its
 * subtree as its max_devices allows. */
static int device_quota_check(store_conn *c, const char *org_id)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_DEVICE_QUOTA_FULL, &st);
    if (!err)
        err = bind_check(c, STMT_DEVICE_QUOTA_FULL, bind_text(st, 1, org_id));
    if (!err)
        err = step_row(c, STMT_DEVICE_QUOTA_FULL);
    if (!err && sqlite3_column_int(st, 0))
        err = SS_QUOTA;
    sqlite3_reset(st);
    return err == SS_NOT_FOUND ? SS_STORE : err;
}

static int device_insert(store_conn *c, const store_device *d)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_DEVICE_INSERT, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_DEVICE_INSERT,
                     bind_text(st, 1, d->id) | bind_text(st, 2, d->org_id) |
                         bind_text(st, 3, d->name) | bind_text(st, 4, d->description) |
                         bind_blob(st, 5, d->token_hash, sizeof d->token_hash) |
                         sqlite3_bind_int(st, 6, d->disabled != 0) |
                         sqlite3_bind_int64(st, 7, d->created_at));
    return err ? err : step_done(c, STMT_DEVICE_INSERT);
}

/* The check and the insert in one write transaction: two creates at once
 * cannot both pass the last free place. */
int store_device_create(store_conn *c, const store_device *d)
{
    int err = tx_begin(c);
    if (err)
        return err;
    err = device_quota_check(c, d->org_id);
    if (!err)
        err = device_insert(c, d);
    return tx_end(c, err);
}

static void device_from_row(sqlite3_stmt *st, store_device *d)
{
    col_text(st, 0, d->id, sizeof d->id);
    col_text(st, 1, d->org_id, sizeof d->org_id);
    col_text(st, 2, d->name, sizeof d->name);
    col_text(st, 3, d->description, sizeof d->description);
    col_blob(st, 4, d->token_hash, sizeof d->token_hash);
    d->disabled = sqlite3_column_int(st, 5);
    d->created_at = sqlite3_column_int64(st, 6);
}

int store_device_get(store_conn *c, const char *id, store_device *out)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_DEVICE_GET, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_DEVICE_GET, bind_text(st, 1, id));
    if (err)
        return err;
    err = step_row(c, STMT_DEVICE_GET);
    if (!err)
        device_from_row(st, out);
    sqlite3_reset(st);
    return err;
}

/* store_device is 2.3 KiB: one on the heap per list call, not per row. */
static int device_rows(store_conn *c, stmt_id id, store_device_cb cb, void *ctx)
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
    return rows_end(c, id, rc);
}

int store_device_list(store_conn *c, const char *org_id, store_device_cb cb, void *ctx)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_DEVICE_LIST, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_DEVICE_LIST, bind_text(st, 1, org_id));
    return err ? err : device_rows(c, STMT_DEVICE_LIST, cb, ctx);
}

int store_device_list_all(store_conn *c, store_device_cb cb, void *ctx)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_DEVICE_LIST_ALL, &st);
    return err ? err : device_rows(c, STMT_DEVICE_LIST_ALL, cb, ctx);
}

int store_device_update(store_conn *c, const store_device *d)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_DEVICE_UPDATE, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_DEVICE_UPDATE,
                     bind_text(st, 1, d->id) | bind_text(st, 2, d->name) |
                         bind_text(st, 3, d->description) |
                         sqlite3_bind_int(st, 4, d->disabled != 0));
    return err ? err : step_changed(c, STMT_DEVICE_UPDATE);
}

int store_device_set_token(store_conn *c, const char *id, const uint8_t hash[SS_SECRET_HASH_BYTES])
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_DEVICE_SET_TOKEN, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_DEVICE_SET_TOKEN,
                     bind_text(st, 1, id) | bind_blob(st, 2, hash, SS_SECRET_HASH_BYTES));
    return err ? err : step_changed(c, STMT_DEVICE_SET_TOKEN);
}

/* The series go to the purge list (their readings are deleted later, in
 * bounded chunks: store_purge_step), then series, then the device (whose
 * absence is SS_NOT_FOUND and rolls everything back). */
static int device_delete_rows(store_conn *c, const char *id)
{
    static const stmt_id steps[] = {STMT_DEVICE_PURGE_SERIES, STMT_DEVICE_DEL_SERIES,
                                    STMT_DEVICE_DELETE};
    int err = SS_OK;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0] && !err; i++) {
        sqlite3_stmt *st = NULL;
        err = stmt_get(c, steps[i], &st);
        if (!err)
            err = bind_check(c, steps[i], bind_text(st, 1, id));
    }
    if (!err)
        err = step_done(c, STMT_DEVICE_PURGE_SERIES);
    if (!err)
        err = step_done(c, STMT_DEVICE_DEL_SERIES);
    if (!err)
        err = step_changed(c, STMT_DEVICE_DELETE);
    return err;
}

int store_device_delete(store_conn *c, const char *id)
{
    int err = tx_begin(c);
    if (err)
        return err;
    /* Inside the write lock: see store.device_generation. */
    atomic_fetch_add(&c->owner->device_generation, 1);
    return tx_end(c, device_delete_rows(c, id));
}

/* ---- purge of deleted devices' readings -------------------------------------------- */

/* The oldest series waiting for the purge: SS_NOT_FOUND when none. */
static int purge_next(store_conn *c, int64_t *series_id)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_PURGE_NEXT, &st);
    if (!err)
        err = step_int64(c, STMT_PURGE_NEXT, series_id);
    return err;
}

/* The ts of the series' reading `skip` places from its oldest: the first
 * one a chunk of `skip` readings leaves. SS_NOT_FOUND when fewer remain. */
static int purge_bound(store_conn *c, int64_t series_id, size_t skip, int64_t *ts)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_PURGE_BOUND, &st);
    if (!err)
        err = bind_check(c, STMT_PURGE_BOUND,
                         sqlite3_bind_int64(st, 1, series_id) |
                             sqlite3_bind_int64(st, 2, limit_i64(skip)));
    if (!err)
        err = step_int64(c, STMT_PURGE_BOUND, ts);
    return err;
}

/* Runs one of the PURGE_* deletes; *changed gets the rows it deleted. */
static int purge_exec(store_conn *c, stmt_id id, int64_t series_id, int64_t ts, size_t *changed)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, id, &st);
    if (err)
        return err;
    int rc = sqlite3_bind_int64(st, 1, series_id);
    if (id == STMT_PURGE_BELOW)
        rc |= sqlite3_bind_int64(st, 2, ts);
    err = bind_check(c, id, rc);
    if (!err)
        err = step_done(c, id);
    if (!err && changed)
        *changed = (size_t)sqlite3_changes(c->db);
    return err;
}

/* Deletes up to `budget` readings of one purged series, oldest first; the
 * series leaves the list with its last reading. */
static int purge_series_chunk(store_conn *c, int64_t series_id, size_t budget, size_t *deleted)
{
    int64_t bound = 0;
    int err = purge_bound(c, series_id, budget, &bound);
    if (err == SS_OK)
        return purge_exec(c, STMT_PURGE_BELOW, series_id, bound, deleted);
    if (err != SS_NOT_FOUND)
        return err;
    err = purge_exec(c, STMT_PURGE_REST, series_id, 0, deleted);
    return err ? err : purge_exec(c, STMT_PURGE_DONE, series_id, 0, NULL);
}

static int purge_rows(store_conn *c, size_t max_rows, size_t *deleted, int *more)
{
    int err = SS_OK;
    while (!err && *deleted < max_rows) {
        int64_t series_id = 0;
        err = purge_next(c, &series_id);
        if (err == SS_NOT_FOUND) {
            *more = 0;
            return SS_OK;
        }
        size_t n = 0;
        if (!err)
            err = purge_series_chunk(c, series_id, max_rows - *deleted, &n);
        *deleted += n;
    }
    return err;
}

int store_purge_step(store_conn *c, size_t max_rows, size_t *deleted, int *more)
{
    *deleted = 0;
    *more = 1;
    if (max_rows == 0)
        return SS_INVAL;
    int err = tx_begin(c);
    if (err)
        return err;
    err = tx_end(c, purge_rows(c, max_rows, deleted, more));
    if (err)
        *deleted = 0;
    return err;
}

int store_purge_pending(store_conn *c, int64_t *series)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_PURGE_COUNT, &st);
    if (err)
        return err;
    err = step_int64(c, STMT_PURGE_COUNT, series);
    return err == SS_NOT_FOUND ? SS_STORE : err;
}

/* ---- series cache ---------------------------------------------------------------- */

static void cache_clear(series_cache *sc)
{
    if (sc->used)
        memset(sc->slots, 0, SERIES_CACHE_SLOTS * sizeof *sc->slots);
    sc->used = 0;
    sc->ntouched = 0;
}

static int cache_ready(series_cache *sc)
{
    if (sc->slots)
        return SS_OK;
    sc->slots = calloc(SERIES_CACHE_SLOTS, sizeof *sc->slots);
    sc->touched = calloc(SERIES_CACHE_FILL_MAX, sizeof *sc->touched);
    if (sc->slots && sc->touched)
        return SS_OK;
    free(sc->slots);
    free(sc->touched);
    sc->slots = NULL;
    sc->touched = NULL;
    return SS_NOMEM;
}

/* The series cache and the channel check's scratch, on the first write. */
static int write_scratch_ready(store_conn *c)
{
    if (!c->check)
        c->check = calloc(1, sizeof *c->check);
    return c->check ? cache_ready(&c->cache) : SS_NOMEM;
}

/* Called with the write lock held, so no device delete can slip between
 * this check and the commit. */
static void cache_sync_generation(store_conn *c)
{
    uint64_t gen = atomic_load(&c->owner->device_generation);
    if (gen == c->cache.generation)
        return;
    cache_clear(&c->cache);
    c->cache.generation = gen;
}

/* FNV-1a: short keys, no adversary able to choose them beyond their own
 * channel names, and a miss costs only one indexed query. */
static uint32_t hash_bytes(uint32_t h, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

#define FNV_OFFSET 2166136261u
/* Hashed between device id and channel; no valid id or channel holds it. */
#define HASH_SEPARATOR "/"

/* The slot holding the key, or the empty slot where it belongs. The fill
 * limit guarantees an empty slot exists. */
static series_slot *cache_probe(series_cache *sc, const series_key *k)
{
    uint32_t mask = SERIES_CACHE_SLOTS - 1;
    for (uint32_t i = k->hash & mask;; i = (i + 1) & mask) {
        series_slot *s = &sc->slots[i];
        if (s->series_id == 0)
            return s;
        if (s->hash == k->hash && s->channel_len == k->channel_len &&
            memcmp(s->channel, k->channel, k->channel_len) == 0 &&
            memcmp(s->device_id, k->device_id, k->device_len) == 0 &&
            s->device_id[k->device_len] == '\0')
            return s;
    }
}

static int series_set_last(store_conn *c, const series_slot *s)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_SERIES_SET_LAST, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_SERIES_SET_LAST,
                     sqlite3_bind_int64(st, 1, s->series_id) | sqlite3_bind_int64(st, 2, s->pend_ts) |
                         sqlite3_bind_double(st, 3, s->pend_value));
    return err ? err : step_done(c, STMT_SERIES_SET_LAST);
}

/* Writes each touched series' newest reading of this call to its row,
 * where it is newer than (or as new as) the stored one: one UPDATE per
 * series, not per reading. */
static int series_flush(store_conn *c)
{
    series_cache *sc = &c->cache;
    for (size_t i = 0; i < sc->ntouched; i++) {
        series_slot *s = &sc->slots[sc->touched[i]];
        int err = series_set_last(c, s);
        if (err)
            return err;
        s->pending = 0;
    }
    sc->ntouched = 0;
    return SS_OK;
}

static int series_find(store_conn *c, const series_key *k, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_SERIES_FIND, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_SERIES_FIND,
                     sqlite3_bind_text(st, 1, k->device_id, (int)k->device_len, SQLITE_STATIC) |
                         sqlite3_bind_text(st, 2, k->channel, (int)k->channel_len, SQLITE_STATIC));
    if (err)
        return err;
    err = step_int64(c, STMT_SERIES_FIND, out);
    return err;
}

/* A new series starts with its first reading as the last one. SS_NOT_FOUND
 * (foreign key) when the device does not exist. */
static int series_insert(store_conn *c, const series_key *k, const ss_reading *r, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_SERIES_INSERT, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_SERIES_INSERT,
                     sqlite3_bind_text(st, 1, k->device_id, (int)k->device_len, SQLITE_STATIC) |
                         sqlite3_bind_text(st, 2, k->channel, (int)k->channel_len, SQLITE_STATIC) |
                         sqlite3_bind_int64(st, 3, r->ts) | sqlite3_bind_double(st, 4, r->value));
    if (!err)
        err = step_done(c, STMT_SERIES_INSERT);
    if (!err)
        *out = sqlite3_last_insert_rowid(c->db);
    return err;
}

static void slot_fill(series_slot *s, const series_key *k, int64_t series_id)
{
    s->series_id = series_id;
    s->hash = k->hash;
    s->pending = 0;
    s->channel_len = (uint8_t)k->channel_len;
    memcpy(s->device_id, k->device_id, k->device_len);
    s->device_id[k->device_len] = '\0';
    memcpy(s->channel, k->channel, k->channel_len);
    s->channel[k->channel_len] = '\0';
}

/* The reading's series slot: from the cache, else looked up or created
 * (once per series per connection after warm-up). A full cache is flushed
 * and emptied first. */
static int series_resolve(store_conn *c, const series_key *k, const ss_reading *r,
                          series_slot **out)
{
    series_cache *sc = &c->cache;
    series_slot *s = cache_probe(sc, k);
    if (s->series_id != 0) {
        *out = s;
        return SS_OK;
    }
    if (sc->used >= SERIES_CACHE_FILL_MAX) {
        int err = series_flush(c);
        if (err)
            return err;
        cache_clear(sc);
        s = cache_probe(sc, k);
    }
    int64_t id = 0;
    int err = series_find(c, k, &id);
    if (err == SS_NOT_FOUND)
        err = series_insert(c, k, r, &id);
    if (err)
        return err;
    slot_fill(s, k, id);
    sc->used++;
    *out = s;
    return SS_OK;
}

/* Remembers the call's newest reading of the series; a later reading with
 * the same ts wins, as its value also wins in readings. */
static void series_note(series_cache *sc, series_slot *s, const ss_reading *r)
{
    if (s->pending && r->ts < s->pend_ts)
        return;
    if (!s->pending)
        sc->touched[sc->ntouched++] = (uint32_t)(s - sc->slots);
    s->pending = 1;
    s->pend_ts = r->ts;
    s->pend_value = r->value;
}

/* The key of a reading of the device k already names. SS_INVAL for a
 * channel no parser would let through. */
static int key_of_reading(series_key *k, uint32_t device_hash, const ss_reading *r)
{
    k->channel = r->channel;
    k->channel_len = strnlen(r->channel, sizeof r->channel);
    if (k->channel_len == 0 || k->channel_len > SS_CHANNEL_MAX)
        return SS_INVAL;
    k->hash = hash_bytes(device_hash, k->channel, k->channel_len);
    return SS_OK;
}

/* ---- the channel limit ---------------------------------------------------------- */

static int series_count(store_conn *c, const series_key *k, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_SERIES_COUNT, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_SERIES_COUNT,
                     sqlite3_bind_text(st, 1, k->device_id, (int)k->device_len, SQLITE_STATIC));
    if (!err)
        err = step_int64(c, STMT_SERIES_COUNT, out);
    return err;
}

/* Whether the reading's series exists: a cache hit (the hot path: no query),
 * else looked up, and then cached for the write that follows. */
static int series_known(store_conn *c, const series_key *k, int *known)
{
    series_cache *sc = &c->cache;
    series_slot *s = cache_probe(sc, k);
    *known = 1;
    if (s->series_id != 0)
        return SS_OK;
    int64_t id = 0;
    int err = series_find(c, k, &id);
    if (err == SS_NOT_FOUND)
        *known = 0;
    if (err)
        return err == SS_NOT_FOUND ? SS_OK : err;
    if (sc->used >= SERIES_CACHE_FILL_MAX) {
        err = series_flush(c);
        if (err)
            return err;
        cache_clear(sc);
        s = cache_probe(sc, k);
    }
    slot_fill(s, k, id);
    sc->used++;
    return SS_OK;
}

/* The set slot of the reading's channel among the batch's new ones: the
 * slot holding it, or the empty one where it belongs. */
static uint32_t check_probe(const channel_check *cc, const ss_reading *rs, const series_key *k)
{
    uint32_t mask = CHECK_SET_SLOTS - 1;
    for (uint32_t i = k->hash & mask;; i = (i + 1) & mask) {
        uint32_t v = cc->set[i];
        if (v == 0 || strcmp(rs[v - 1].channel, k->channel) == 0)
            return i;
    }
}

/* Takes the set back to its first `mark` additions. */
static void check_undo(channel_check *cc, size_t mark)
{
    while (cc->n_added > mark)
        cc->set[cc->added[--cc->n_added]] = 0;
}

/* Whether readings [from, to) of b may be stored: every new channel they
 * bring, with those accepted before them in the batch, must keep the
 * device within SS_DEVICE_CHANNELS_MAX. A refused group's new channels are
 * taken out of the set again. */
static int check_group(store_conn *c, const store_batch *b, series_key *k, uint32_t device_hash,
                       size_t from, size_t to, int *refuse)
{
    channel_check *cc = c->check;
    size_t mark = cc->n_added;
    *refuse = 0;
    for (size_t i = from; i < to; i++) {
        int known = 0;
        int err = key_of_reading(k, device_hash, &b->readings[i]);
        if (!err)
            err = series_known(c, k, &known);
        if (err)
            return err;
        if (known)
            continue;
        uint32_t slot = check_probe(cc, b->readings, k);
        if (cc->set[slot] != 0)
            continue;
        if (cc->existing < 0 && (err = series_count(c, k, &cc->existing)) != SS_OK)
            return err;
        if (cc->existing + (int64_t)cc->n_added >= (int64_t)SS_DEVICE_CHANNELS_MAX) {
            check_undo(cc, mark);
            *refuse = 1;
            return SS_OK;
        }
        cc->set[slot] = (uint32_t)i + 1;
        cc->added[cc->n_added++] = slot;
    }
    return SS_OK;
}

/* ---- writing readings ---------------------------------------------------------- */

static int reading_insert(store_conn *c, sqlite3_stmt *st, int64_t series_id, const ss_reading *r)
{
    int rc = sqlite3_bind_int64(st, 1, series_id) | sqlite3_bind_int64(st, 2, r->ts) |
             sqlite3_bind_double(st, 3, r->value);
    int err = bind_check(c, STMT_READING_UPSERT, rc);
    return err ? err : step_done(c, STMT_READING_UPSERT);
}

static int write_group(store_conn *c, sqlite3_stmt *ins, const store_batch *b, series_key *k,
                       uint32_t device_hash, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        const ss_reading *r = &b->readings[i];
        series_slot *s;
        int err = key_of_reading(k, device_hash, r);
        if (!err)
            err = series_resolve(c, k, r, &s);
        if (!err)
            err = reading_insert(c, ins, s->series_id, r);
        if (err)
            return err;
        series_note(&c->cache, s, r);
    }
    return SS_OK;
}

/* Where group g of b ends; SS_INVAL when the groups do not tile the batch. */
static int group_end(const store_batch *b, size_t g, size_t from, size_t *end)
{
    size_t e = b->group_ends ? b->group_ends[g] : b->len;
    int last = !b->group_ends || g + 1 == b->n_groups;
    if (e < from || e > b->len || (last && e != b->len))
        return SS_INVAL;
    *end = e;
    return SS_OK;
}

/* Checks, then writes, one group at a time. OUT written: readings stored. */
static int batch_groups(store_conn *c, sqlite3_stmt *ins, const store_batch *b, series_key *k,
                        uint32_t device_hash, size_t *written)
{
    size_t n_groups = b->group_ends ? b->n_groups : 1;
    size_t from = 0;
    for (size_t g = 0; g < n_groups; g++) {
        size_t to = 0;
        int refuse = 0;
        int err = group_end(b, g, from, &to);
        if (!err)
            err = check_group(c, b, k, device_hash, from, to, &refuse);
        if (!err && refuse && !b->refused)
            err = SS_TOO_LARGE;
        if (!err && !refuse)
            err = write_group(c, ins, b, k, device_hash, from, to);
        if (err)
            return err;
        if (b->refused)
            b->refused[g] = (uint8_t)refuse;
        if (!refuse)
            *written += to - from;
        from = to;
    }
    return SS_OK;
}

static int batch_write(store_conn *c, sqlite3_stmt *ins, const store_batch *b, size_t *written)
{
    *written = 0;
    if (!b->device_id || (!b->readings && b->len > 0) || (b->group_ends && b->n_groups == 0))
        return SS_INVAL;
    series_key k = {.device_id = b->device_id};
    k.device_len = strnlen(b->device_id, SS_ID_LEN + 1);
    if (k.device_len == 0 || k.device_len > SS_ID_LEN)
        return SS_INVAL;
    uint32_t device_hash = hash_bytes(hash_bytes(FNV_OFFSET, k.device_id, k.device_len),
                                      HASH_SEPARATOR, 1);
    c->check->existing = -1;
    int err = batch_groups(c, ins, b, &k, device_hash, written);
    check_undo(c->check, 0);
    return err;
}

/* ---- usage of a write call ------------------------------------------------------ */

/* UTC hours start at multiples of an hour since the epoch; floor, so a
 * time before the epoch still lands at its hour's start. */
static int64_t hour_of(int64_t ms)
{
    int64_t r = ms % STORE_HOUR_MS;
    return ms - (r < 0 ? r + STORE_HOUR_MS : r);
}

static int usage_slot_match(const usage_slot *u, int64_t hour, const char *org, size_t org_len,
                            const char *protocol, size_t protocol_len)
{
    return u->hour == hour && u->org_len == org_len && u->protocol_len == protocol_len &&
           memcmp(u->org_id, org, org_len) == 0 && memcmp(u->protocol, protocol, protocol_len) == 0;
}

static usage_row_id *usage_id_entry(store_conn *c, const usage_slot *u)
{
    uint32_t h = hash_bytes(hash_bytes(FNV_OFFSET, u->org_id, u->org_len), u->protocol,
                            u->protocol_len);
    h ^= (uint32_t)(u->hour / STORE_HOUR_MS);
    return &c->usage_ids[h % USAGE_ID_SLOTS];
}

/* UPDATE by the remembered rowid: SS_NOT_FOUND when there is none, or no
 * such row now. */
static int usage_bump_by_id(store_conn *c, const usage_row_id *e, const usage_slot *u)
{
    if (!e->id || !usage_slot_match(&e->key, u->hour, u->org_id, u->org_len, u->protocol,
                                    u->protocol_len))
        return SS_NOT_FOUND;
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_USAGE_BUMP_COUNTS, &st);
    if (!err)
        err = bind_check(c, STMT_USAGE_BUMP_COUNTS,
                         sqlite3_bind_int64(st, 1, e->id) | sqlite3_bind_int64(st, 2, u->messages) |
                             sqlite3_bind_int64(st, 3, u->readings));
    return err ? err : step_changed(c, STMT_USAGE_BUMP_COUNTS);
}

/* The upsert by key, which answers the row's id. */
static int usage_upsert_counts(store_conn *c, const usage_slot *u, int64_t *id)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_USAGE_ADD_COUNTS, &st);
    if (!err)
        err = bind_check(c, STMT_USAGE_ADD_COUNTS,
                         sqlite3_bind_text(st, 1, u->org_id, u->org_len, SQLITE_STATIC) |
                             sqlite3_bind_int64(st, 2, u->hour) |
                             sqlite3_bind_text(st, 3, u->protocol, u->protocol_len,
                                               SQLITE_STATIC) |
                             sqlite3_bind_int64(st, 4, u->messages) |
                             sqlite3_bind_int64(st, 5, u->readings));
    /* The upsert is done by the first step (SQLite makes every change of a
     * statement with RETURNING there), so the reset after its row is safe. */
    if (!err)
        err = step_int64(c, STMT_USAGE_ADD_COUNTS, id);
    return err == SS_NOT_FOUND ? SS_STORE : err;
}

/* Adds one summed row: by its remembered rowid (the usual case: the row of
 * this hour exists after the first commit in it), else by the upsert. */
static int usage_write_slot(store_conn *c, const usage_slot *u)
{
    usage_row_id *e = usage_id_entry(c, u);
    int err = usage_bump_by_id(c, e, u);
    if (err != SS_NOT_FOUND)
        return err;
    int64_t id = 0;
    err = usage_upsert_counts(c, u, &id);
    if (!err) {
        e->key = *u;
        e->id = id;
    }
    return err;
}

/* Writes every summed row and empties the slots. */
static int usage_flush(store_conn *c)
{
    usage_agg *ua = &c->usage;
    int err = SS_OK;
    for (size_t i = 0; i < ua->used && !err; i++)
        err = usage_write_slot(c, &ua->slots[i]);
    ua->used = 0;
    ua->last = 0;
    return err;
}

/* The slot of the key: the last one hit, else found by a scan of the few
 * used, else a new one (after upserting the sums so far when all are
 * used). */
static int usage_slot_get(store_conn *c, int64_t hour, const char *org, size_t org_len,
                          const char *protocol, size_t protocol_len, usage_slot **out)
{
    usage_agg *ua = &c->usage;
    if (ua->used && usage_slot_match(&ua->slots[ua->last], hour, org, org_len, protocol,
                                     protocol_len)) {
        *out = &ua->slots[ua->last];
        return SS_OK;
    }
    for (size_t i = 0; i < ua->used; i++) {
        if (usage_slot_match(&ua->slots[i], hour, org, org_len, protocol, protocol_len)) {
            ua->last = i;
            *out = &ua->slots[i];
            return SS_OK;
        }
    }
    if (ua->used == USAGE_AGG_SLOTS) {
        int err = usage_flush(c);
        if (err)
            return err;
    }
    usage_slot *u = &ua->slots[ua->used];
    *u = (usage_slot){.hour = hour, .org_len = (uint8_t)org_len,
                      .protocol_len = (uint8_t)protocol_len};
    memcpy(u->org_id, org, org_len);
    memcpy(u->protocol, protocol, protocol_len);
    ua->last = ua->used++;
    *out = u;
    return SS_OK;
}

/* Adds the batch's 1 message and the readings it stored to its usage slot.
 * A batch without an org (tests, tools) is counted under the org "", so
 * the usage still adds up to what is stored. */
static int usage_note(store_conn *c, const store_batch *b, size_t written)
{
    const char *org = b->org_id ? b->org_id : "";
    const char *protocol = b->protocol && b->protocol[0] ? b->protocol : USAGE_PROTOCOL_DEFAULT;
    size_t org_len = strnlen(org, SS_ID_LEN + 1);
    size_t protocol_len = strnlen(protocol, STORE_PROTOCOL_MAX + 1);
    if (org_len > SS_ID_LEN || protocol_len > STORE_PROTOCOL_MAX)
        return SS_INVAL;
    usage_slot *u;
    int err = usage_slot_get(c, hour_of(b->received_at), org, org_len, protocol, protocol_len,
                             &u);
    if (err)
        return err;
    u->messages++;
    u->readings += (int64_t)written;
    return SS_OK;
}

static int acct_check(const store_acct_session *s);
static int acct_put_one(store_conn *c, stmt_id id, const store_acct_session *s);

/* The batch's session record, when it has none in the store yet and the
 * batch stored something: counted as the usage is, one message and the
 * readings written, so the record agrees with the usage after a crash. */
static int batch_session(store_conn *c, const store_batch *b, size_t written)
{
    if (!b->session || written == 0)
        return SS_OK;
    store_acct_session rec = *b->session;
    rec.messages++;
    rec.readings += (int64_t)written;
    int err = acct_check(&rec);
    return err ? err : acct_put_one(c, STMT_ACCT_OPEN, &rec);
}

/* One transaction for all batches. Per reading: a cache probe and one
 * prepared upsert; per series touched: one UPDATE of last_ts/last_value;
 * per distinct (org, hour, protocol): one usage upsert. On any failure
 * everything is rolled back and the cache emptied (it may name series whose
 * insert was just rolled back). A device that does not exist (deleted since
 * its token was checked) fails the call with SS_NOT_FOUND. */
int store_write_batches(store_conn *c, const store_batch *batches, size_t n)
{
    if (n > 0 && !batches)
        return SS_INVAL;
    sqlite3_stmt *ins = NULL;
    int err = write_scratch_ready(c);
    if (!err)
        err = stmt_get(c, STMT_READING_UPSERT, &ins);
    if (!err)
        err = tx_begin(c);
    if (err)
        return err;
    cache_sync_generation(c);
    for (size_t i = 0; i < n && !err; i++) {
        size_t written = 0;
        err = batch_write(c, ins, &batches[i], &written);
        if (!err && (written > 0 || batches[i].len == 0))
            err = usage_note(c, &batches[i], written);
        if (!err)
            err = batch_session(c, &batches[i], written);
    }
    if (!err)
        err = series_flush(c);
    if (!err)
        err = usage_flush(c);
    c->usage.used = 0;  /* a failed call leaves no sums for the next */
    err = tx_end(c, err);
    if (err) {
        cache_clear(&c->cache);
        memset(c->usage_ids, 0, sizeof c->usage_ids);
    }
    return err;
}

/* ---- reading queries -------------------------------------------------------------- */

static int query_series(store_conn *c, const store_query *q, int64_t *out)
{
    if (!q || !q->device_id || !q->channel || q->limit == 0)
        return SS_INVAL;
    size_t dlen = strlen(q->device_id);
    size_t clen = strlen(q->channel);
    if (dlen > SS_ID_LEN || clen > SS_CHANNEL_MAX)
        return SS_NOT_FOUND;
    series_key k = {.device_id = q->device_id, .device_len = dlen,
                    .channel = q->channel, .channel_len = clen};
    return series_find(c, &k, out);
}

/* Steps a query of (ts, value) rows into the callback. */
static int point_rows(store_conn *c, stmt_id id, store_point_cb cb, void *ctx)
{
    sqlite3_stmt *st = c->stmts[id];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cb(ctx, sqlite3_column_int64(st, 0), sqlite3_column_double(st, 1)) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return rows_end(c, id, rc);
}

int store_query_points(store_conn *c, const store_query *q, store_point_cb cb, void *ctx)
{
    int64_t series_id;
    int err = query_series(c, q, &series_id);
    if (err == SS_NOT_FOUND)
        return SS_OK;
    if (err)
        return err;
    stmt_id id = q->desc ? STMT_POINTS_DESC : STMT_POINTS_ASC;
    sqlite3_stmt *st = NULL;
    err = stmt_get(c, id, &st);
    if (err)
        return err;
    err = bind_check(c, id,
                     sqlite3_bind_int64(st, 1, series_id) | sqlite3_bind_int64(st, 2, q->from) |
                         sqlite3_bind_int64(st, 3, q->to) |
                         sqlite3_bind_int64(st, 4, limit_i64(q->limit)));
    return err ? err : point_rows(c, id, cb, ctx);
}

int store_query_buckets(store_conn *c, const store_query *q, int64_t every_ms, store_agg fn,
                        store_point_cb cb, void *ctx)
{
    if (every_ms <= 0 || (int)fn < (int)STORE_AGG_AVG || (int)fn > (int)STORE_AGG_LAST)
        return SS_INVAL;
    int64_t series_id;
    int err = query_series(c, q, &series_id);
    if (err == SS_NOT_FOUND)
        return SS_OK;
    if (err)
        return err;
    stmt_id id = bucket_stmt[fn][q->desc ? 1 : 0];
    sqlite3_stmt *st = NULL;
    err = stmt_get(c, id, &st);
    if (err)
        return err;
    err = bind_check(c, id,
                     sqlite3_bind_int64(st, 1, series_id) | sqlite3_bind_int64(st, 2, q->from) |
                         sqlite3_bind_int64(st, 3, q->to) | sqlite3_bind_int64(st, 4, every_ms) |
                         sqlite3_bind_int64(st, 5, limit_i64(q->limit)));
    return err ? err : point_rows(c, id, cb, ctx);
}

/* ---- channels --------------------------------------------------------------------- */

/* The rows of id (channel, count, last_ts, last_value) to cb. */
static int channel_rows(store_conn *c, stmt_id id, const char *device_id, store_channel_cb cb,
                        void *ctx)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, id, &st);
    if (err)
        return err;
    err = bind_check(c, id, bind_text(st, 1, device_id));
    if (err)
        return err;
    int rc;
    store_channel ch;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        col_text(st, 0, ch.name, sizeof ch.name);
        ch.count = sqlite3_column_int64(st, 1);
        ch.last_ts = sqlite3_column_int64(st, 2);
        ch.last_value = sqlite3_column_double(st, 3);
        if (cb(ctx, &ch) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return rows_end(c, id, rc);
}

int store_channel_list(store_conn *c, const char *device_id, store_channel_cb cb, void *ctx)
{
    return channel_rows(c, STMT_CHANNEL_LIST, device_id, cb, ctx);
}

int store_channel_latest(store_conn *c, const char *device_id, store_channel_cb cb, void *ctx)
{
    return channel_rows(c, STMT_CHANNEL_LATEST, device_id, cb, ctx);
}

int store_channel_names(store_conn *c, const char *device_id,
                        int (*cb)(void *ctx, const char *name), void *ctx)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_CHANNEL_NAMES, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_CHANNEL_NAMES, bind_text(st, 1, device_id));
    if (err)
        return err;
    int rc;
    char name[SS_CHANNEL_MAX + 1];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        col_text(st, 0, name, sizeof name);
        if (cb(ctx, name) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return rows_end(c, STMT_CHANNEL_NAMES, rc);
}

/* ---- usage ------------------------------------------------------------------------ */

/* A char array of a record, bound up to its NUL (or its end, should a
 * caller forget the NUL). */
static int bind_arr(sqlite3_stmt *st, int i, const char *arr, size_t cap)
{
    return sqlite3_bind_text(st, i, arr, (int)strnlen(arr, cap), SQLITE_STATIC);
}

/* 1 when the array holds a NUL-terminated string. */
static int arr_ok(const char *arr, size_t cap)
{
    return strnlen(arr, cap) < cap;
}

/* SS_INVAL for an unterminated string, an empty protocol or a bucket that
 * is not an hour start. */
static int usage_delta_check(const store_usage *u)
{
    if (!arr_ok(u->org_id, sizeof u->org_id) || !arr_ok(u->protocol, sizeof u->protocol) ||
        u->protocol[0] == '\0')
        return SS_INVAL;
    return hour_of(u->bucket) == u->bucket ? SS_OK : SS_INVAL;
}

static int usage_add_one(store_conn *c, sqlite3_stmt *st, const store_usage *u)
{
    int err = bind_check(c, STMT_USAGE_ADD,
                         bind_arr(st, 1, u->org_id, sizeof u->org_id) |
                             sqlite3_bind_int64(st, 2, u->bucket) |
                             bind_arr(st, 3, u->protocol, sizeof u->protocol) |
                             sqlite3_bind_int64(st, 4, u->bytes_in) |
                             sqlite3_bind_int64(st, 5, u->bytes_out) |
                             sqlite3_bind_int64(st, 6, u->messages) |
                             sqlite3_bind_int64(st, 7, u->readings) |
                             sqlite3_bind_int64(st, 8, u->rejected) |
                             sqlite3_bind_int64(st, 9, u->api_requests));
    return err ? err : step_done(c, STMT_USAGE_ADD);
}

/* Every delta is checked before the transaction starts: a bad one writes
 * nothing. */
int store_usage_add(store_conn *c, const store_usage *deltas, size_t n)
{
    if (n > 0 && !deltas)
        return SS_INVAL;
    for (size_t i = 0; i < n; i++) {
        if (usage_delta_check(&deltas[i]))
            return SS_INVAL;
    }
    if (n == 0)
        return SS_OK;
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_USAGE_ADD, &st);
    if (!err)
        err = tx_begin(c);
    if (err)
        return err;
    for (size_t i = 0; i < n && !err; i++)
        err = usage_add_one(c, st, &deltas[i]);
    return tx_end(c, err);
}

/* The query text for n_orgs orgs (1 <= n_orgs <= USAGE_QUERY_ORGS_MAX):
 * ?1 bucket width, ?2 from, ?3 to, ?4... the org ids. The bucket is the
 * floor of the hour to a multiple of the width. */
static void usage_query_sql(char *sql, size_t cap, size_t n_orgs)
{
    int len = snprintf(sql, cap,
                       "SELECT hour - ((hour %% ?1) + ?1) %% ?1 AS b, protocol,"
                       " sum(bytes_in), sum(bytes_out), sum(messages), sum(readings),"
                       " sum(rejected), sum(api_requests) FROM usage"
                       " WHERE hour >= ?2 AND hour < ?3 AND org_id IN (");
    for (size_t i = 0; i < n_orgs; i++)
        len += snprintf(sql + len, cap - (size_t)len, "%s?%zu", i ? "," : "", i + 4);
    snprintf(sql + len, cap - (size_t)len, ") GROUP BY b, protocol ORDER BY b, protocol");
}

static int usage_query_bind(sqlite3_stmt *st, const char *const *org_ids, size_t n_orgs,
                            int64_t from, int64_t to, int64_t every_ms)
{
    int rc = sqlite3_bind_int64(st, 1, every_ms) | sqlite3_bind_int64(st, 2, from) |
             sqlite3_bind_int64(st, 3, to);
    for (size_t i = 0; i < n_orgs; i++)
        rc |= bind_text(st, (int)i + 4, org_ids[i]);
    return rc;
}

static void usage_from_row(sqlite3_stmt *st, const char *org_id, store_usage *u)
{
    snprintf(u->org_id, sizeof u->org_id, "%s", org_id);
    u->bucket = sqlite3_column_int64(st, 0);
    col_text(st, 1, u->protocol, sizeof u->protocol);
    u->bytes_in = sqlite3_column_int64(st, 2);
    u->bytes_out = sqlite3_column_int64(st, 3);
    u->messages = sqlite3_column_int64(st, 4);
    u->readings = sqlite3_column_int64(st, 5);
    u->rejected = sqlite3_column_int64(st, 6);
    u->api_requests = sqlite3_column_int64(st, 7);
}

/* SQLITE_DONE at the end or when the callback stops, else the step's
 * error. */
static int usage_rows(sqlite3_stmt *st, const char *org_id, store_usage_cb cb, void *ctx)
{
    int rc;
    store_usage u;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        usage_from_row(st, org_id, &u);
        if (cb(ctx, &u) != 0)
            return SQLITE_DONE;
    }
    return rc;
}

static int usage_query_args_check(const char *const *org_ids, size_t n_orgs, int64_t every_ms)
{
    if (every_ms != STORE_HOUR_MS && every_ms != STORE_DAY_MS)
        return SS_INVAL;
    if (n_orgs > USAGE_QUERY_ORGS_MAX || (n_orgs > 0 && !org_ids))
        return SS_INVAL;
    for (size_t i = 0; i < n_orgs; i++) {
        if (!org_ids[i] || strnlen(org_ids[i], SS_ID_LEN + 1) > SS_ID_LEN)
            return SS_INVAL;
    }
    return SS_OK;
}

/* Its text depends on the number of orgs, so the statement is prepared
 * per call: a usage report is a rare request, not the ingest path. No orgs
 * sum to nothing: no rows. */
int store_usage_query(store_conn *c, const char *const *org_ids, size_t n_orgs, int64_t from,
                      int64_t to, int64_t every_ms, store_usage_cb cb, void *ctx)
{
    int err = usage_query_args_check(org_ids, n_orgs, every_ms);
    if (err || n_orgs == 0)
        return err;
    char *sql = malloc(USAGE_QUERY_SQL_MAX);
    if (!sql)
        return SS_NOMEM;
    usage_query_sql(sql, USAGE_QUERY_SQL_MAX, n_orgs);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    free(sql);
    if (rc == SQLITE_OK)
        rc = usage_query_bind(st, org_ids, n_orgs, from, to, every_ms);
    if (rc == SQLITE_OK)
        rc = usage_rows(st, org_ids[0], cb, ctx);
    err = rc == SQLITE_DONE ? SS_OK : sq_err(c, rc, "usage query");
    sqlite3_finalize(st);
    return err;
}

int store_usage_day(store_conn *c, int64_t day_start, store_usage_cb cb, void *ctx)
{
    if (day_start > INT64_MAX - STORE_DAY_MS)
        return SS_INVAL;
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_USAGE_DAY, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_USAGE_DAY,
                     sqlite3_bind_int64(st, 1, day_start) |
                         sqlite3_bind_int64(st, 2, day_start + STORE_DAY_MS));
    if (err)
        return err;
    int rc;
    store_usage u = {.bucket = day_start};
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        col_text(st, 0, u.org_id, sizeof u.org_id);
        u.readings = sqlite3_column_int64(st, 1);
        u.bytes_in = sqlite3_column_int64(st, 2);
        if (cb(ctx, &u) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return rows_end(c, STMT_USAGE_DAY, rc);
}

/* ---- org tree and device count ----------------------------------------------------- */

int store_org_tree(store_conn *c, int (*cb)(void *ctx, const char *id, const char *parent_id),
                   void *ctx)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_ORG_TREE, &st);
    if (err)
        return err;
    int rc;
    char id[SS_ID_LEN + 1], parent[SS_ID_LEN + 1];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        col_text(st, 0, id, sizeof id);
        col_text(st, 1, parent, sizeof parent);
        if (cb(ctx, id, parent) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return rows_end(c, STMT_ORG_TREE, rc);
}

/* Breadth first (by depth, then id), so the org itself comes first.
 * SS_NOT_FOUND when there is no such org. */
int store_org_subtree(store_conn *c, const char *org_id, int (*cb)(void *ctx, const char *id),
                      void *ctx)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_ORG_SUBTREE, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_ORG_SUBTREE, bind_text(st, 1, org_id));
    if (err)
        return err;
    int rc;
    size_t rows = 0;
    char id[SS_ID_LEN + 1];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        rows++;
        col_text(st, 0, id, sizeof id);
        if (cb(ctx, id) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    err = rows_end(c, STMT_ORG_SUBTREE, rc);
    return !err && rows == 0 ? SS_NOT_FOUND : err;
}

/* 0 for an org without devices, or with no such org. */

/* ---- quotas ----------------------------------------------------------------------- */

/* SS_INVAL for a negative limit; SS_NOT_FOUND (foreign key) when setting a
 * quota on an org that does not exist. Removing a quota never set is not
 * an error. */
int store_quota_set(store_conn *c, const store_quota *q)
{
    if (!arr_ok(q->org_id, sizeof q->org_id) || q->max_devices < 0 ||
        q->max_readings_per_day < 0 || q->max_bytes_per_day < 0)
        return SS_INVAL;
    int none = q->max_devices == 0 && q->max_readings_per_day == 0 && q->max_bytes_per_day == 0;
    stmt_id id = none ? STMT_QUOTA_DELETE : STMT_QUOTA_UPSERT;
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, id, &st);
    if (err)
        return err;
    int rc = bind_arr(st, 1, q->org_id, sizeof q->org_id);
    if (!none)
        rc |= sqlite3_bind_int64(st, 2, q->max_devices) |
              sqlite3_bind_int64(st, 3, q->max_readings_per_day) |
              sqlite3_bind_int64(st, 4, q->max_bytes_per_day);
    err = bind_check(c, id, rc);
    return err ? err : step_done(c, id);
}

static void quota_from_row(sqlite3_stmt *st, store_quota *q)
{
    col_text(st, 0, q->org_id, sizeof q->org_id);
    q->max_devices = sqlite3_column_int64(st, 1);
    q->max_readings_per_day = sqlite3_column_int64(st, 2);
    q->max_bytes_per_day = sqlite3_column_int64(st, 3);
}

int store_quota_get(store_conn *c, const char *org_id, store_quota *out)
{
    *out = (store_quota){0};
    snprintf(out->org_id, sizeof out->org_id, "%s", org_id);
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_QUOTA_GET, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_QUOTA_GET, bind_text(st, 1, org_id));
    if (err)
        return err;
    err = step_row(c, STMT_QUOTA_GET);
    if (!err)
        quota_from_row(st, out);
    sqlite3_reset(st);
    return err == SS_NOT_FOUND ? SS_OK : err;
}

/* Orgs with a quota, by org id. */
int store_quota_list(store_conn *c, int (*cb)(void *ctx, const store_quota *q), void *ctx)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_QUOTA_LIST, &st);
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
    return rows_end(c, STMT_QUOTA_LIST, rc);
}

/* ---- session records ---------------------------------------------------------------- */

/* SS_INVAL for an empty id or kind, or any unterminated string. */
static int acct_check(const store_acct_session *s)
{
    int ok = arr_ok(s->id, sizeof s->id) && arr_ok(s->kind, sizeof s->kind) &&
             arr_ok(s->principal_id, sizeof s->principal_id) &&
             arr_ok(s->org_id, sizeof s->org_id) && arr_ok(s->protocol, sizeof s->protocol) &&
             arr_ok(s->addr, sizeof s->addr) && arr_ok(s->end_reason, sizeof s->end_reason);
    return ok && s->id[0] && s->kind[0] ? SS_OK : SS_INVAL;
}

static int acct_put_one(store_conn *c, stmt_id id, const store_acct_session *s)
{
    sqlite3_stmt *st = NULL;
    int serr = stmt_get(c, id, &st);
    if (serr)
        return serr;
    int rc = bind_arr(st, 1, s->id, sizeof s->id) | bind_arr(st, 2, s->kind, sizeof s->kind) |
             bind_arr(st, 3, s->principal_id, sizeof s->principal_id) |
             bind_arr(st, 4, s->org_id, sizeof s->org_id) |
             bind_arr(st, 5, s->protocol, sizeof s->protocol) |
             bind_arr(st, 6, s->addr, sizeof s->addr) | sqlite3_bind_int64(st, 7, s->started_at) |
             sqlite3_bind_int64(st, 8, s->ended_at) |
             bind_arr(st, 9, s->end_reason, sizeof s->end_reason);
    rc |= sqlite3_bind_int64(st, 10, s->bytes_in) | sqlite3_bind_int64(st, 11, s->bytes_out) |
          sqlite3_bind_int64(st, 12, s->messages) | sqlite3_bind_int64(st, 13, s->readings) |
          sqlite3_bind_int64(st, 14, s->refused) | sqlite3_bind_int64(st, 15, s->api_requests);
    int err = bind_check(c, id, rc);
    return err ? err : step_done(c, id);
}

/* Every record is checked before the transaction starts. */
int store_acct_session_put(store_conn *c, const store_acct_session *s, size_t n)
{
    if (n > 0 && !s)
        return SS_INVAL;
    for (size_t i = 0; i < n; i++) {
        if (acct_check(&s[i]))
            return SS_INVAL;
    }
    if (n == 0)
        return SS_OK;
    int err = tx_begin(c);
    if (err)
        return err;
    for (size_t i = 0; i < n && !err; i++)
        err = acct_put_one(c, STMT_ACCT_UPSERT, &s[i]);
    return tx_end(c, err);
}

static void acct_from_row(sqlite3_stmt *st, store_acct_session *s)
{
    col_text(st, 0, s->id, sizeof s->id);
    col_text(st, 1, s->kind, sizeof s->kind);
    col_text(st, 2, s->principal_id, sizeof s->principal_id);
    col_text(st, 3, s->org_id, sizeof s->org_id);
    col_text(st, 4, s->protocol, sizeof s->protocol);
    col_text(st, 5, s->addr, sizeof s->addr);
    s->started_at = sqlite3_column_int64(st, 6);
    s->ended_at = sqlite3_column_int64(st, 7);
    col_text(st, 8, s->end_reason, sizeof s->end_reason);
    s->bytes_in = sqlite3_column_int64(st, 9);
    s->bytes_out = sqlite3_column_int64(st, 10);
    s->messages = sqlite3_column_int64(st, 11);
    s->readings = sqlite3_column_int64(st, 12);
    s->refused = sqlite3_column_int64(st, 13);
    s->api_requests = sqlite3_column_int64(st, 14);
}

/* SS_INVAL for a limit of 0, as for the audit log. Records started at the
 * same time come by id, descending. */
int store_acct_session_list(store_conn *c, const char *org_id, const char *kind, int active_only,
                            size_t limit, store_acct_session_cb cb, void *ctx)
{
    if (limit == 0)
        return SS_INVAL;
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_ACCT_LIST, &st);
    if (err)
        return err;
    int rc = bind_text(st, 1, org_id) |
             (kind ? bind_text(st, 2, kind) : sqlite3_bind_null(st, 2)) |
             sqlite3_bind_int(st, 3, active_only != 0) |
             sqlite3_bind_int64(st, 4, limit_i64(limit));
    err = bind_check(c, STMT_ACCT_LIST, rc);
    if (err)
        return err;
    store_acct_session s;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        acct_from_row(st, &s);
        if (cb(ctx, &s) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    return rows_end(c, STMT_ACCT_LIST, rc);
}

int store_acct_session_close_stale(store_conn *c, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(c, STMT_ACCT_CLOSE_STALE, &st);
    if (err)
        return err;
    err = bind_check(c, STMT_ACCT_CLOSE_STALE, sqlite3_bind_int64(st, 1, now_ms));
    return err ? err : step_done(c, STMT_ACCT_CLOSE_STALE);
}
