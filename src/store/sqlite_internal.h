/* sqlite_internal.h — what the files of the SQLite engine share with each
 * other (and with their unit tests), never with the rest of SensorSpace:
 * the rest of the code sees only store.h.
 *
 * The engine (store_engine.h) is a path, a durability setting and the
 * connections the store's pool holds. Each connection prepares its
 * statements once (lazily, on first use) and keeps them; each call binds,
 * steps and resets. Writes that span statements run in BEGIN IMMEDIATE
 * transactions: the write lock is taken up front, so two writers queue on
 * the busy timeout instead of deadlocking when a reader tries to upgrade.
 *
 * Its files, one job each: sqlite_db.c (connections, pragmas, checkpoints,
 * the disk; the engine's entry), sqlite_accounts.c and sqlite_sessions.c
 * (store_accounts.h), sqlite_series.c (store_series.h), sqlite_usage.c
 * (store_usage.h), sqlite_broker.c (store_broker.h), sqlite_dashboards.c
 * (store_dashboards.h), sqlite_migrate.c (the
 * schema). */
#ifndef SS_STORE_SQLITE_INTERNAL_H
#define SS_STORE_SQLITE_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "core/limits.h"
#include "core/log.h"
#include "store/store.h"
#include "store/store_engine.h"

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
/* Page cache of a connection while it reads an export page: a scan reads
 * each page of readings once, so a few hundred pages (the b-trees' upper
 * levels and the page being read) are all it uses. */
#define STORE_EXPORT_CACHE_KIB 1024
/* The org tree walks of the SQL stop where every other does. */
#define STORE_ORG_DEPTH_MAX SS_ORG_DEPTH_MAX
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
/* Rows of one multi-row upsert of a bulk write (store_batch.bulk): SQLite
 * spends more on running a statement (its cursor opened, its b-tree
 * descended from the root) than on a row, so 64 rows a run more than double
 * the rows written a second (measured: 0.96 M/s one a statement, 2.2 M/s
 * 64 a statement); past that the gain is a few percent. */
#define SQ_UPSERT_ROWS 64
#define SQ_ROW_PARAMS "(?,?,?)"
#define SQ_ROWS_8                                                                                 \
    SQ_ROW_PARAMS "," SQ_ROW_PARAMS "," SQ_ROW_PARAMS "," SQ_ROW_PARAMS "," SQ_ROW_PARAMS         \
                  "," SQ_ROW_PARAMS "," SQ_ROW_PARAMS "," SQ_ROW_PARAMS
#define SQ_ROWS_64                                                                                \
    SQ_ROWS_8 "," SQ_ROWS_8 "," SQ_ROWS_8 "," SQ_ROWS_8 "," SQ_ROWS_8 "," SQ_ROWS_8 "," SQ_ROWS_8 \
              "," SQ_ROWS_8

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

/* The width of a rollup (sqlite_rollups.c): readings are summed per
 * minute of ts beside the raw rows, and a bucketed query whose width is a
 * whole number of minutes reads those sums instead of every reading. A
 * minute keeps the raw rows a rollup stands for small enough to sum again
 * at once when one of them is replaced or deleted. A plain literal: the
 * migration pastes it into SQL. */
#define SQ_ROLLUP_MS 60000
/* (series, minute) sums a writing connection gathers in one transaction
 * before it writes them out (and starts again): a power of two, filled to
 * 3/4 (open addressing). 96 bytes a slot (a long double sum), 384 KiB per
 * writing connection, allocated on its first write. A commit of one
 * reading for each of many series writes them out every 3,008 series. */
#define SQ_ROLLUP_SLOTS 4096u
#define SQ_ROLLUP_FILL_MAX (SQ_ROLLUP_SLOTS / 4u * 3u)
/* The newest ts of the minutes a writing connection wrote last, kept
 * between its commits (24 bytes each, direct-mapped: a collision forgets
 * one): a reading older than its series' newest but newer than everything
 * of its own minute (a device's uploads of two time ranges interleaved)
 * then adds to the minute's rollup instead of having it summed again. */
#define SQ_ROLLUP_MARKS 4096u

_Static_assert((SERIES_CACHE_SLOTS & (SERIES_CACHE_SLOTS - 1)) == 0, "slots: a power of two");
_Static_assert((SQ_ROLLUP_SLOTS & (SQ_ROLLUP_SLOTS - 1)) == 0, "rollup slots: a power of two");
_Static_assert((SQ_ROLLUP_MARKS & (SQ_ROLLUP_MARKS - 1)) == 0, "rollup marks: a power of two");
_Static_assert(SS_CHANNEL_MAX < UINT8_MAX, "channel length is kept in a byte");
_Static_assert(SS_ID_LEN < UINT8_MAX && STORE_PROTOCOL_MAX < UINT8_MAX,
               "usage key lengths are kept in a byte");

#define STR_(x) #x
#define STR(x) STR_(x)

/* ---- statements ---------------------------------------------------------- */

/* A bucketed query's scan of the rollups reads the one sum its fn needs
 * beside the count: each column a row yields costs the VM a step, and a
 * rollup row read whole costs twice a reading's. */
#define ROLLUP_SCAN(col, dir)                                                              \
    "SELECT minute, n, " col " FROM rollups WHERE series_id = ?1 AND minute >= ?2"        \
    " AND minute < ?3 ORDER BY minute " dir

#define USER_COLS "id, email, pw_hash, superadmin, disabled, created_at"
#define ORG_COLS "id, name, parent_id, created_at"
#define DEVICE_COLS                                                                      \
    "id, org_id, name, description, token_hash, disabled, created_at, attributes,"       \
    " last_seen, last_protocol"
#define SESSION_COLS "token_hash, id, user_id, csrf, peer, created_at, last_seen_at, expires_at"
#define APIKEY_COLS "id, org_id, name, scopes, key_hash, created_by, created_at"
#define AUDIT_COLS "id, ts, org_id, actor, action, target, addr, detail, actor_name"
#define INVITE_COLS "i.id, i.org_id, i.user_id, i.role, i.invited_by, i.created_at, u.email"
#define INVITE_FROM " FROM invitations i JOIN users u ON u.id = i.user_id"
#define USAGE_COUNTERS "bytes_in, bytes_out, messages, readings, rejected, api_requests"
#define QUOTA_COLS "org_id, max_devices, max_readings_per_day, max_bytes_per_day"
#define DASHBOARD_COLS "id, org_id, name, kind, created_at, updated_at, created_by, spec"
#define ACCT_COLS                                                                 \
    "id, kind, principal_id, org_id, protocol, addr, started_at, ended_at,"       \
    " end_reason, bytes_in, bytes_out, messages, readings, refused, api_requests"

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
      " SELECT org_id, 0 FROM memberships WHERE user_id = ?1 AND role >= 4"              \
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
                  " AND ts >= ?2 AND ts < ?3 AND (ts, id) < (?5, ?6)"                    \
                  " ORDER BY ts DESC, id DESC LIMIT ?4")                                 \
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
    X(DASHBOARD_COUNT, "SELECT count(*) FROM dashboards WHERE org_id = ?1")             \
    X(DASHBOARD_INSERT, "INSERT INTO dashboards(" DASHBOARD_COLS ")"                     \
                        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")                      \
    X(DASHBOARD_GET, "SELECT " DASHBOARD_COLS " FROM dashboards WHERE id = ?1")          \
    X(DASHBOARD_UPDATE, "UPDATE dashboards SET name = ?2, kind = ?3, spec = ?4,"         \
                        " updated_at = ?5 WHERE id = ?1")                                \
    X(DASHBOARD_DELETE, "DELETE FROM dashboards WHERE id = ?1")                          \
    X(DASHBOARD_LIST, "SELECT " DASHBOARD_COLS " FROM dashboards WHERE org_id = ?1"      \
                      " ORDER BY name, id")                                              \
    X(DASHBOARD_LIST_AFTER, "SELECT " DASHBOARD_COLS " FROM dashboards"                  \
                            " WHERE org_id = ?1 AND (name, id) > (?2, ?3)"               \
                            " ORDER BY name, id")                                        \
    X(DEVICE_INSERT, "INSERT INTO devices(" DEVICE_COLS ")"                              \
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, '')")                  \
    X(DEVICE_GET, "SELECT " DEVICE_COLS " FROM devices WHERE id = ?1")                   \
    X(DEVICE_LIST, "SELECT " DEVICE_COLS " FROM devices WHERE org_id = ?1"               \
                   " ORDER BY name, id")                                                 \
    X(DEVICE_LIST_AFTER, "SELECT " DEVICE_COLS " FROM devices WHERE org_id = ?1"         \
                         " AND (name, id) > (?2, ?3) ORDER BY name, id")                 \
    X(DEVICE_SET_SEEN, "UPDATE devices SET last_seen = ?2, last_protocol = ?3"           \
                       " WHERE id = ?1 AND last_seen <= ?2")                             \
    X(DEVICE_LIST_ALL, "SELECT " DEVICE_COLS " FROM devices ORDER BY id")                \
    X(DEVICE_UPDATE, "UPDATE devices SET name = ?2, description = ?3, disabled = ?4,"    \
                     " attributes = ?5 WHERE id = ?1")                                   \
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
    X(SERIES_FIND, "SELECT id, last_ts FROM series WHERE device_id = ?1 AND channel = ?2") \
    X(SERIES_COUNT, "SELECT count(*) FROM series WHERE device_id = ?1")                  \
    X(SERIES_INSERT, "INSERT INTO series(id, device_id, channel, last_ts, last_value)"   \
                     " VALUES (1 + max(coalesce((SELECT max(id) FROM series), 0),"       \
                     " coalesce((SELECT max(series_id) FROM purge_series), 0)),"         \
                     " ?1, ?2, ?3, ?4)")                                                 \
    X(SERIES_SET_LAST, "UPDATE series SET last_ts = ?2, last_value = ?3"                 \
                       " WHERE id = ?1 AND last_ts <= ?2")                               \
    X(READING_UPSERT, "INSERT INTO readings(series_id, ts, value) VALUES (?1, ?2, ?3)"   \
                      " ON CONFLICT(series_id, ts) DO UPDATE SET value = excluded.value") \
    X(READING_UPSERT_ROWS, "INSERT INTO readings(series_id, ts, value) VALUES " SQ_ROWS_64 \
                           " ON CONFLICT(series_id, ts) DO UPDATE SET value = excluded.value") \
    X(CHANNEL_LIST, "SELECT channel, (SELECT count(*) FROM readings r"                   \
                    " WHERE r.series_id = s.id), last_ts, last_value"                    \
                    " FROM series s WHERE device_id = ?1 ORDER BY channel")              \
    X(CHANNEL_NAMES, "SELECT channel FROM series WHERE device_id = ?1 ORDER BY channel")  \
    X(EXPORT_SERIES, "SELECT id, channel FROM series WHERE device_id = ?1"               \
                     " AND channel >= ?2 ORDER BY channel")                              \
    X(CHANNEL_LATEST, "SELECT channel, 0, last_ts, last_value FROM series"               \
                      " WHERE device_id = ?1 ORDER BY channel")                          \
    X(POINTS_ASC, "SELECT ts, value FROM readings WHERE series_id = ?1"                  \
                  " AND ts >= ?2 AND ts < ?3 ORDER BY ts ASC LIMIT ?4")                  \
    X(POINTS_DESC, "SELECT ts, value FROM readings WHERE series_id = ?1"                 \
                   " AND ts >= ?2 AND ts < ?3 ORDER BY ts DESC LIMIT ?4")                \
    X(SCAN_ASC, "SELECT ts, value FROM readings WHERE series_id = ?1"                    \
                " AND ts >= ?2 AND ts < ?3 ORDER BY ts ASC")                             \
    X(SCAN_DESC, "SELECT ts, value FROM readings WHERE series_id = ?1"                   \
                 " AND ts >= ?2 AND ts < ?3 ORDER BY ts DESC")                           \
    X(RANGE_SERIES, "SELECT id, last_ts FROM series WHERE device_id = ?1"                \
                    " AND (?2 IS NULL OR channel = ?2) ORDER BY channel")                \
    X(RANGE_BOUND, "SELECT ts FROM readings WHERE series_id = ?1"                        \
                   " AND ts >= ?2 AND ts < ?3 ORDER BY ts LIMIT 1 OFFSET ?4")            \
    X(RANGE_DELETE, "DELETE FROM readings WHERE series_id = ?1"                          \
                    " AND ts >= ?2 AND ts < ?3")                                         \
    X(SERIES_NEWEST, "SELECT ts, value FROM readings WHERE series_id = ?1"               \
                     " ORDER BY ts DESC LIMIT 1")                                        \
    X(SERIES_RESET_LAST, "UPDATE series SET last_ts = ?2, last_value = ?3 WHERE id = ?1") \
    X(SERIES_DELETE, "DELETE FROM series WHERE id = ?1")                                 \
    X(ROLLUP_ADD, "INSERT INTO rollups(series_id, minute, n, total, lo, hi, first_value,"  \
                  " last_value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"                 \
                  " ON CONFLICT(series_id, minute) DO UPDATE SET n = n + excluded.n,"    \
                  " total = total + excluded.total, lo = min(lo, excluded.lo),"          \
                  " hi = max(hi, excluded.hi), last_value = excluded.last_value")        \
    X(ROLLUP_PUT, "INSERT OR REPLACE INTO rollups(series_id, minute, n, total, lo, hi,"  \
                  " first_value, last_value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")   \
    X(ROLLUP_DROP, "DELETE FROM rollups WHERE series_id = ?1"                            \
                   " AND minute >= ?2 AND minute < ?3")                                  \
    X(ROLLUP_TOTAL_ASC, ROLLUP_SCAN("total", "ASC"))                                     \
    X(ROLLUP_TOTAL_DESC, ROLLUP_SCAN("total", "DESC"))                                   \
    X(ROLLUP_LO_ASC, ROLLUP_SCAN("lo", "ASC"))                                           \
    X(ROLLUP_LO_DESC, ROLLUP_SCAN("lo", "DESC"))                                         \
    X(ROLLUP_HI_ASC, ROLLUP_SCAN("hi", "ASC"))                                           \
    X(ROLLUP_HI_DESC, ROLLUP_SCAN("hi", "DESC"))                                         \
    X(ROLLUP_FIRST_ASC, ROLLUP_SCAN("first_value", "ASC"))                               \
    X(ROLLUP_FIRST_DESC, ROLLUP_SCAN("first_value", "DESC"))                             \
    X(ROLLUP_LAST_ASC, ROLLUP_SCAN("last_value", "ASC"))                                 \
    X(ROLLUP_LAST_DESC, ROLLUP_SCAN("last_value", "DESC"))                               \
    X(ROLLUP_PURGE_BELOW, "DELETE FROM rollups WHERE series_id = ?1 AND minute < ?2")    \
    X(ROLLUP_PURGE_REST, "DELETE FROM rollups WHERE series_id = ?1")                     \
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
                   " bytes_out = excluded.bytes_out,"                                    \
                   " messages = max(messages, excluded.messages),"                       \
                   " readings = max(readings, excluded.readings),"                       \
                   " refused = excluded.refused, api_requests = excluded.api_requests")  \
    X(ACCT_LIST, "SELECT " ACCT_COLS " FROM acct_sessions WHERE org_id = ?1"             \
                 " AND (?2 IS NULL OR kind = ?2) AND (?3 = 0 OR ended_at = 0)"           \
                 " AND (started_at, id) < (?5, ?6)"                                      \
                 " ORDER BY started_at DESC, id DESC LIMIT ?4")                          \
    X(ACCT_CLOSE_STALE, "UPDATE acct_sessions SET ended_at = ?1, end_reason = 'crash'"   \
                        " WHERE ended_at = 0 AND started_at < ?1")                       \
    X(ACCT_COMMIT, "INSERT INTO acct_sessions(" ACCT_COLS ") VALUES (?1, ?2, ?3, ?4,"    \
                   " ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"                  \
                   " ON CONFLICT(id) DO UPDATE SET messages = messages + ?17,"          \
                   " readings = readings + ?16")                                         \
    X(BROKER_SESSION_PUT,                                                                   \
      "INSERT INTO broker_sessions(org_id, client_id, principal_id,"                        \
      " expiry_s, disconnected_ms, will_msg_id, will_at_ms) SELECT ?1, ?2,"                 \
      " ?3, ?4, ?5, ?6, ?7 WHERE EXISTS"                                                    \
      " (SELECT 1 FROM devices WHERE id = ?3 AND org_id = ?1) OR EXISTS"                    \
      " (SELECT 1 FROM apikeys WHERE id = ?3 AND org_id = ?1) ON"                           \
      " CONFLICT(org_id, client_id) DO UPDATE SET principal_id ="                           \
      " excluded.principal_id, expiry_s = excluded.expiry_s,"                               \
      " disconnected_ms = excluded.disconnected_ms, will_msg_id ="                          \
      " excluded.will_msg_id, will_at_ms = excluded.will_at_ms")                            \
    X(BROKER_SESSION_WILL_OLD,                                                              \
      "SELECT will_msg_id FROM broker_sessions WHERE org_id = ?1 AND"                       \
      " client_id = ?2 AND will_msg_id > 0 AND will_msg_id <> ?3")                          \
    X(BROKER_SESSION_MSGS,                                                                  \
      "SELECT msg_id FROM broker_deliveries WHERE org_id = ?1 AND client_id"                \
      " = ?2 UNION ALL SELECT will_msg_id FROM broker_sessions WHERE org_id"                \
      " = ?1 AND client_id = ?2 AND will_msg_id > 0")                                       \
    X(BROKER_SESSION_DEL_DELIVERIES,                                                        \
      "DELETE FROM broker_deliveries WHERE org_id = ?1 AND client_id = ?2")                 \
    X(BROKER_SESSION_DEL_SUBS,                                                              \
      "DELETE FROM broker_subs WHERE org_id = ?1 AND client_id = ?2")                       \
    X(BROKER_SESSION_DEL_INBOUND,                                                           \
      "DELETE FROM broker_inbound WHERE org_id = ?1 AND client_id = ?2")                    \
    X(BROKER_SESSION_DEL,                                                                   \
      "DELETE FROM broker_sessions WHERE org_id = ?1 AND client_id = ?2")                   \
    X(BROKER_SUB_PUT,                                                                       \
      "INSERT INTO broker_subs(org_id, client_id, topic_filter, options,"                   \
      " sub_id) SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM"                      \
      " broker_sessions WHERE org_id = ?1 AND client_id = ?2) ON"                           \
      " CONFLICT(org_id, client_id, topic_filter) DO UPDATE SET options ="                  \
      " excluded.options, sub_id = excluded.sub_id")                                        \
    X(BROKER_SUB_DEL,                                                                       \
      "DELETE FROM broker_subs WHERE org_id = ?1 AND client_id = ?2 AND"                    \
      " topic_filter = ?3")                                                                 \
    X(BROKER_MSG_PUT,                                                                       \
      "INSERT INTO broker_messages(id, org_id, topic, payload, props, qos,"                 \
      " retain, published_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON"                   \
      " CONFLICT(id) DO NOTHING")                                                           \
    X(BROKER_DELIVERY_PUT,                                                                  \
      "INSERT INTO broker_deliveries(org_id, client_id, seq, msg_id, qos,"                  \
      " retain, packet_id, state, sub_ids) SELECT ?1, ?2, ?3, ?4, ?5, ?6,"                  \
      " ?7, ?8, ?9 WHERE EXISTS (SELECT 1 FROM broker_sessions WHERE org_id"                \
      " = ?1 AND client_id = ?2) ON CONFLICT(org_id, client_id, seq) DO"                    \
      " UPDATE SET msg_id = excluded.msg_id, qos = excluded.qos, retain ="                  \
      " excluded.retain, packet_id = excluded.packet_id, state ="                           \
      " excluded.state, sub_ids = excluded.sub_ids")                                        \
    X(BROKER_DELIVERY_OLD,                                                                  \
      "SELECT msg_id FROM broker_deliveries WHERE org_id = ?1 AND client_id"                \
      " = ?2 AND seq = ?3 AND msg_id <> ?4")                                                \
    X(BROKER_DELIVERY_DEL,                                                                  \
      "DELETE FROM broker_deliveries WHERE org_id = ?1 AND client_id = ?2"                  \
      " AND seq = ?3 RETURNING msg_id")                                                     \
    X(BROKER_INBOUND_PUT,                                                                   \
      "INSERT INTO broker_inbound(org_id, client_id, packet_id) SELECT ?1,"                 \
      " ?2, ?3 WHERE EXISTS (SELECT 1 FROM broker_sessions WHERE org_id ="                  \
      " ?1 AND client_id = ?2) ON CONFLICT(org_id, client_id, packet_id) DO"                \
      " NOTHING")                                                                           \
    X(BROKER_INBOUND_DEL,                                                                   \
      "DELETE FROM broker_inbound WHERE org_id = ?1 AND client_id = ?2 AND"                 \
      " packet_id = ?3")                                                                    \
    X(BROKER_RETAIN_OLD,                                                                    \
      "SELECT msg_id FROM broker_retained WHERE org_id = ?1 AND topic = ?2")                \
    X(BROKER_RETAIN_PUT,                                                                    \
      "INSERT INTO broker_retained(org_id, topic, msg_id) SELECT ?1, ?2, ?3"                \
      " WHERE EXISTS (SELECT 1 FROM orgs WHERE id = ?1) ON CONFLICT(org_id,"                \
      " topic) DO UPDATE SET msg_id = excluded.msg_id")                                     \
    X(BROKER_RETAIN_DEL,                                                                    \
      "DELETE FROM broker_retained WHERE org_id = ?1 AND topic = ?2"                        \
      " RETURNING msg_id")                                                                  \
    X(BROKER_PRINCIPAL_MSGS,                                                                \
      "SELECT d.msg_id FROM broker_sessions s JOIN broker_deliveries d ON"                  \
      " d.org_id = s.org_id AND d.client_id = s.client_id WHERE"                            \
      " s.principal_id = ?1 UNION ALL SELECT will_msg_id FROM"                              \
      " broker_sessions WHERE principal_id = ?1 AND will_msg_id > 0")                       \
    X(BROKER_PRINCIPAL_DEL_DELIVERIES,                                                      \
      "DELETE FROM broker_deliveries WHERE (org_id, client_id) IN (SELECT"                  \
      " org_id, client_id FROM broker_sessions WHERE principal_id = ?1)")                   \
    X(BROKER_PRINCIPAL_DEL_SUBS,                                                            \
      "DELETE FROM broker_subs WHERE (org_id, client_id) IN (SELECT org_id,"                \
      " client_id FROM broker_sessions WHERE principal_id = ?1)")                           \
    X(BROKER_PRINCIPAL_DEL_INBOUND,                                                         \
      "DELETE FROM broker_inbound WHERE (org_id, client_id) IN (SELECT"                     \
      " org_id, client_id FROM broker_sessions WHERE principal_id = ?1)")                   \
    X(BROKER_PRINCIPAL_DEL,                                                                 \
      "DELETE FROM broker_sessions WHERE principal_id = ?1")                                \
    X(BROKER_MSG_GC,                                                                        \
      "DELETE FROM broker_messages WHERE id = ?1 AND NOT EXISTS (SELECT 1"                  \
      " FROM broker_deliveries WHERE msg_id = ?1) AND NOT EXISTS (SELECT 1"                 \
      " FROM broker_retained WHERE msg_id = ?1) AND NOT EXISTS (SELECT 1"                   \
      " FROM broker_sessions WHERE will_msg_id = ?1 AND will_msg_id > 0)")                  \
    X(BROKER_MSG_MAX,                                                                       \
      "SELECT coalesce(max(id), 0) FROM broker_messages")                                   \
    X(BROKER_SESSIONS,                                                                      \
      "SELECT org_id, client_id, principal_id, expiry_s, disconnected_ms,"                  \
      " will_msg_id, will_at_ms FROM broker_sessions ORDER BY org_id,"                      \
      " client_id")                                                                         \
    X(BROKER_SUBS,                                                                          \
      "SELECT org_id, client_id, topic_filter, options, sub_id FROM"                        \
      " broker_subs ORDER BY org_id, client_id, topic_filter")                              \
    X(BROKER_MESSAGES,                                                                      \
      "SELECT id, org_id, topic, payload, props, qos, retain, published_ms"                 \
      " FROM broker_messages ORDER BY id")                                                  \
    X(BROKER_DELIVERIES,                                                                    \
      "SELECT org_id, client_id, seq, msg_id, qos, retain, packet_id,"                      \
      " state, sub_ids FROM broker_deliveries ORDER BY org_id, client_id,"                  \
      " seq")                                                                               \
    X(BROKER_INBOUND,                                                                       \
      "SELECT org_id, client_id, packet_id FROM broker_inbound ORDER BY"                    \
      " org_id, client_id, packet_id")                                                      \
    X(BROKER_RETAINED,                                                                      \
      "SELECT org_id, topic, msg_id FROM broker_retained ORDER BY org_id,"                  \
      " topic")                                                                             \
    X(ORG_DEL_BROKER_DELIVERIES,                                                            \
      "DELETE FROM broker_deliveries WHERE org_id = ?1")                                    \
    X(ORG_DEL_BROKER_SUBS,                                                                  \
      "DELETE FROM broker_subs WHERE org_id = ?1")                                          \
    X(ORG_DEL_BROKER_INBOUND,                                                               \
      "DELETE FROM broker_inbound WHERE org_id = ?1")                                       \
    X(ORG_DEL_BROKER_SESSIONS,                                                              \
      "DELETE FROM broker_sessions WHERE org_id = ?1")                                      \
    X(ORG_DEL_BROKER_RETAINED,                                                              \
      "DELETE FROM broker_retained WHERE org_id = ?1")                                      \
    X(ORG_DEL_BROKER_MESSAGES,                                                              \
      "DELETE FROM broker_messages WHERE org_id = ?1")

typedef enum {
#define STMT_ENUM(name, sql) STMT_##name,
    STMT_MAP(STMT_ENUM)
#undef STMT_ENUM
    STMT_COUNT
} stmt_id;

extern const char *const sq_stmt_sql[STMT_COUNT];
extern const char *const sq_stmt_name[STMT_COUNT];

/* ---- types --------------------------------------------------------------- */

typedef struct sq_store sq_store;
typedef struct sq_conn sq_conn;

/* One (device, channel) → series id, plus the newest reading of the current
 * write call for that series (flushed to series.last_* before commit). */
typedef struct series_slot {
    int64_t series_id;  /* 0: empty (INTEGER PRIMARY KEY ids start at 1) */
    /* At least the newest ts stored (committed, or written by this
     * transaction): a reading past it adds to its minute's rollup, one at
     * or before it may replace a reading, and has the minute summed again.
     * Too high only costs a sum; never too low (series.last_ts only grows
     * but by a range delete, which lowers the truth below it). */
    int64_t known_ts;
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
    uint64_t writes_seen;  /* the store's reading writes, as of this cache's last */
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

/* The rollups a write transaction adds to (sqlite_rollups.c). */
typedef struct rollup_acc rollup_acc;

struct sq_conn {
    sqlite3 *db;
    sq_store *owner;
    sqlite3_stmt *stmts[STMT_COUNT];
    series_cache cache;
    channel_check *check;  /* NULL until the first write */
    rollup_acc *rollups;   /* NULL until the first write */
    usage_agg usage;
    /* Rows written lately, by a hash of their key: the next commit's write
     * to one is an UPDATE by rowid. Emptied when a write is rolled back. */
    usage_row_id usage_ids[USAGE_ID_SLOTS];
    /* sqlite3_total_changes64 when the transaction began. */
    sqlite3_int64 tx_changes;
    /* Broker messages the current transaction may have left unreferenced
     * (sqlite_broker.c): checked, and deleted if so, before its commit. */
    uint64_t *gc_ids;
    size_t gc_n, gc_cap;
};

struct sq_store {
    char path[PATH_MAX];
    store_durability durability;
    /* It keeps the series without the accounts (another engine has them):
     * its devices table stays empty, so the series' foreign key to it is
     * not enforced on its connections. */
    int series_alone;
    /* The connection that migrated the schema at open, handed out by the
     * first conn_open. */
    pthread_mutex_t lock;  /* guards spare */
    sq_conn *spare;
    /* Bumped by every device delete while it holds the write lock. A writer
     * compares it with its cache's after taking the write lock and drops
     * the cache when it moved, so no writer can hold the id of a series
     * deleted by another connection (readings have no foreign key that
     * would catch such a write). */
    atomic_uint_fast64_t device_generation;
    /* Bumped by every committed write of readings, under the write lock. A
     * writer that finds it moved by another connection since its own last
     * drops its cache: the slots' known_ts (sqlite_rollups.c) must never be
     * behind what is stored. One writer (the ingest queue's) never does. */
    atomic_uint_fast64_t reading_writes;
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

/* An engine connection is an sq_conn: the engine hands out its own and
 * gets them back. */
static inline sq_conn *sq_conn_of(store_engine_conn *ec)
{
    return (sq_conn *)(void *)ec;
}

/* And back, for a call from one entry of a table to another. */
static inline store_engine_conn *sq_ec(sq_conn *c)
{
    return (store_engine_conn *)(void *)c;
}

/* ---- helpers of every file (sqlite_db.c) ------------------------------------ */

/* The log module of the engine's messages. */
#define SQ_LOG_MOD "store"

/* Maps an SQLite result code to an SS_* code; logs what an operator must
 * see (anything but a taken key or a missing parent). */
int sq_err(sq_conn *c, int rc, const char *what);
void sq_col_text(sqlite3_stmt *st, int i, char *dst, size_t cap);
void sq_col_blob(sqlite3_stmt *st, int i, uint8_t *dst, size_t cap);
int sq_tx_begin(sq_conn *c);
/* Only a commit that wrote something shows the disk has room again. */
int sq_tx_commit(sq_conn *c);
void sq_tx_rollback(sq_conn *c);
/* Commits when err is SS_OK, else rolls back; returns the outcome. */
int sq_tx_end(sq_conn *c, int err);

/* ---- per-minute rollups (sqlite_rollups.c) ------------------------------- */

/* Adds a reading just written to s's series to its minute's rollup, in
 * memory until sq_rollup_flush (or a full table) writes it; moves
 * s->known_ts. Inside the write transaction. */
int sq_rollup_note(sq_conn *c, series_slot *s, const ss_reading *r);
/* Writes what sq_rollup_note gathered: before the commit. */
int sq_rollup_flush(sq_conn *c);
/* Writes it out early when the table nears full: called between two
 * statements, when no noted reading waits in a half-bound one. */
int sq_rollup_spill(sq_conn *c);
/* Forgets it: the transaction was rolled back. */
void sq_rollup_discard(sq_conn *c);
/* Forgets what the connection knew of the minutes it wrote: with its
 * series cache (another connection may have written since). */
void sq_rollup_forget(sq_conn *c);
void sq_rollup_free(sq_conn *c);
/* Readings of the series in [from, to) were deleted: their minutes'
 * rollups are dropped, and the two at the edges summed again from what is
 * left. Inside the deleting transaction. */
int sq_rollup_deleted(sq_conn *c, int64_t series_id, int64_t from, int64_t to);
/* store_series_table.query_buckets over one series: rollups for the whole
 * minutes of a range when every_ms is a whole number of them, the raw
 * readings for the rest. */
int sq_rollup_query(sq_conn *c, int64_t series_id, const store_query *q, int64_t every_ms,
                    store_agg fn, store_point_cb cb, void *ctx);

/* Checks a session record before it is written (sqlite_usage.c). */
int sq_acct_check(const store_acct_session *s);
/* The `messages` batches and the `readings` they stored, counted into
 * their session record in the batches' transaction (sqlite_series.c): s,
 * which carries them already, is written when the store has no record of
 * its id, else they are added to the record there (sqlite_usage.c). */
int sq_acct_count_commit(sq_conn *c, const store_acct_session *s, int64_t messages,
                         int64_t readings);

/* The accounts table's session entries (sqlite_sessions.c). */
int sq_session_create(store_engine_conn *ec, const store_session *s);
int sq_session_write_held(store_engine_conn *ec, int64_t now_ms);
int sq_session_get(store_engine_conn *ec, const uint8_t hash[SS_SECRET_HASH_BYTES], int64_t now_ms,
                   store_session *out);
int sq_session_delete(store_engine_conn *ec, const uint8_t hash[SS_SECRET_HASH_BYTES]);
int sq_session_delete_user(store_engine_conn *ec, const char *user_id, const uint8_t *keep);
int sq_session_touch(store_engine_conn *ec, const uint8_t hash[SS_SECRET_HASH_BYTES],
                     int64_t now_ms);
int sq_session_list_user(store_engine_conn *ec, const char *user_id, int64_t now_ms,
                         store_session_cb cb, void *ctx);
int sq_session_delete_id(store_engine_conn *ec, const char *user_id, const char *id);

/* The broker state of an org, or of a principal (its sessions and what
 * hangs on them, and the messages left unreferenced), deleted inside the
 * caller's transaction: the accounts' deletes call these
 * (sqlite_broker.c). */
int sq_broker_drop_org(sq_conn *c, const char *org_id);
int sq_broker_drop_principal(sq_conn *c, const char *principal_id);

/* The engine's tables (one file each). */
extern const store_broker_table sq_broker_table;
extern const store_dashboards_table sq_dashboards_table;
extern const store_accounts_table sq_accounts_table;
extern const store_series_table sq_series_table;
extern const store_usage_table sq_usage_table;

/* The statement helpers, inline: several run once per reading. */

/* Binding with SQLITE_STATIC never allocates; a bind fails only on a wrong
 * index or a statement left running, both bugs. The binds of one call are
 * OR-ed together (SQLITE_OK is 0) and checked once. */
static inline int sq_bind_check(sq_conn *c, stmt_id id, int rc)
{
    if (rc == SQLITE_OK)
        return SS_OK;
    log_error(SQ_LOG_MOD, "%s: bind failed: %s", sq_stmt_name[id], sqlite3_errmsg(c->db));
    sqlite3_reset(c->stmts[id]);
    return SS_STORE;
}

static inline int sq_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static inline int sq_bind_blob(sqlite3_stmt *st, int i, const uint8_t *b, size_t len)
{
    return sqlite3_bind_blob(st, i, b, (int)len, SQLITE_STATIC);
}

/* size_t limits beyond INT64_MAX mean "no limit". */
static inline int64_t sq_limit_i64(size_t limit)
{
    return limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit;
}

/* Prepares statement `id` on first use; it stays prepared for the life of
 * the connection. */
static inline int sq_stmt_get(sq_conn *c, stmt_id id, sqlite3_stmt **out)
{
    if (!c->stmts[id]) {
        int rc = sqlite3_prepare_v3(c->db, sq_stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &c->stmts[id], NULL);
        if (rc != SQLITE_OK)
            return sq_err(c, rc, sq_stmt_name[id]);
    }
    *out = c->stmts[id];
    return SS_OK;
}

/* Prepares statement `id` and binds its one text parameter, ?1: the shape
 * of every lookup by an id. On a bind failure the statement is reset. */
static inline int sq_stmt_key(sq_conn *c, stmt_id id, const char *key, sqlite3_stmt **out)
{
    int err = sq_stmt_get(c, id, out);
    return err ? err : sq_bind_check(c, id, sq_bind_text(*out, 1, key));
}

/* Runs a statement that returns no rows, then resets it. */
static inline int sq_step_done(sq_conn *c, stmt_id id)
{
    int rc = sqlite3_step(c->stmts[id]);
    int err = rc == SQLITE_DONE ? SS_OK : sq_err(c, rc, sq_stmt_name[id]);
    sqlite3_reset(c->stmts[id]);
    return err;
}

/* As step_done, and SS_NOT_FOUND when no row was changed. */
static inline int sq_step_changed(sq_conn *c, stmt_id id)
{
    int err = sq_step_done(c, id);
    if (err == SS_OK && sqlite3_changes(c->db) == 0)
        return SS_NOT_FOUND;
    return err;
}

/* Steps to the first row: SS_OK with the row readable, SS_NOT_FOUND or an
 * error. The caller resets the statement. */
static inline int sq_step_row(sq_conn *c, stmt_id id)
{
    int rc = sqlite3_step(c->stmts[id]);
    if (rc == SQLITE_ROW)
        return SS_OK;
    if (rc == SQLITE_DONE)
        return SS_NOT_FOUND;
    return sq_err(c, rc, sq_stmt_name[id]);
}

/* The same for a lookup by two keys, ?1 and ?2. */
static inline int sq_stmt_key2(sq_conn *c, stmt_id id, const char *key1, const char *key2,
                               sqlite3_stmt **out)
{
    int err = sq_stmt_get(c, id, out);
    return err ? err
               : sq_bind_check(c, id, sq_bind_text(*out, 1, key1) | sq_bind_text(*out, 2, key2));
}

/* sq_stmt_key, then sq_step_row: SS_OK with the row readable, SS_NOT_FOUND
 * or an error. The caller resets the statement either way (st stays NULL,
 * and sqlite3_reset(NULL) does nothing, when it could not be prepared). */
static inline int sq_row_by_key(sq_conn *c, stmt_id id, const char *key, sqlite3_stmt **out)
{
    int err = sq_stmt_key(c, id, key, out);
    return err ? err : sq_step_row(c, id);
}

/* Steps a statement (bound already) to its one row and reads the row's
 * first column as an integer; the statement is reset either way.
 * SS_NOT_FOUND when there is no row. */
static inline int sq_step_int64(sq_conn *c, stmt_id id, int64_t *out)
{
    int err = sq_step_row(c, id);
    if (!err)
        *out = sqlite3_column_int64(c->stmts[id], 0);
    sqlite3_reset(c->stmts[id]);
    return err;
}

/* Ends a row loop: SQLITE_DONE (or a stop asked by the callback) is
 * success. Resets the statement. */
static inline int sq_rows_end(sq_conn *c, stmt_id id, int rc)
{
    int err = rc == SQLITE_DONE ? SS_OK : sq_err(c, rc, sq_stmt_name[id]);
    sqlite3_reset(c->stmts[id]);
    return err;
}

/* A char array of a record, bound up to its NUL (or its end, should a
 * caller forget the NUL). */
static inline int sq_bind_arr(sqlite3_stmt *st, int i, const char *arr, size_t cap)
{
    return sqlite3_bind_text(st, i, arr, (int)strnlen(arr, cap), SQLITE_STATIC);
}

/* 1 when the array holds a NUL-terminated string. */
static inline int sq_arr_ok(const char *arr, size_t cap)
{
    return strnlen(arr, cap) < cap;
}

/* UTC hours start at multiples of an hour since the epoch; floor, so a
 * time before the epoch still lands at its hour's start. */
static inline int64_t sq_hour_of(int64_t ms)
{
    int64_t r = ms % STORE_HOUR_MS;
    return ms - (r < 0 ? r + STORE_HOUR_MS : r);
}

/* ---- schema and test hooks ------------------------------------------------------ */

/* The newest schema version this build knows (its number of migrations). */
int store_sqlite_schema_latest(void);

/* Brings the schema of `db` (a configured connection, busy timeout set) to
 * the newest version, each migration in its own BEGIN IMMEDIATE transaction,
 * so two processes opening the same file at once migrate it once. Refuses a
 * database whose version is newer than this build knows. Returns 0 or
 * SS_STORE with a reason a person can act on in errbuf (errbuf non-NULL,
 * errlen > 0). */
int store_sqlite_migrate(sqlite3 *db, char *errbuf, size_t errlen);
/* As store_sqlite_migrate, stopping at `target_version` (nothing to do when
 * the database is already there or past it), so a test can build a database
 * as an older release left it and check the upgrade. SS_INVAL for a version
 * this build does not know. */
int store_sqlite_migrate_to(sqlite3 *db, int target_version, char *errbuf, size_t errlen);

/* The SQLite handle of the connection serving the readings of a store on
 * SQLite, for tests that inspect pragmas or inject faults (PRAGMA
 * max_page_count to fill the "disk"). Not for production code: everything
 * it needs is in store.h. */
sqlite3 *store_sqlite_db(store_conn *c);

#endif
