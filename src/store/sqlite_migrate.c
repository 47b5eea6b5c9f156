/* sqlite_migrate.c — the SQLite schema as an ordered list of migrations.
 *
 * PRAGMA user_version holds the number of migrations applied. Migration i
 * (counting from 1) takes the schema from version i-1 to i and runs in its
 * own transaction together with the version bump, so a crash leaves the
 * database at a version boundary. A shipped migration is never edited: a
 * change is a new entry at the end. */
#include "store/sqlite_internal.h"

#include <stdio.h>

#include "core/err.h"

/* Why the layout is as it is:
 * - token hashes are BLOBs so a lookup compares 32 raw bytes;
 * - readings hang off a small integer series id (one per device and channel)
 *   in a WITHOUT ROWID table keyed (series_id, ts): a batch insert appends to
 *   one b-tree and a range scan of a channel is a contiguous key range;
 * - readings carry no foreign key: checking one per inserted reading costs a
 *   series lookup on the hottest path; store_device_delete puts a
 *   device's series on the purge list (migration 5) before deleting them,
 *   and the writers' series caches are invalidated by a generation counter
 *   (sqlite_series.c);
 * - series keeps last_ts/last_value so "latest" needs no scan. */
static const char *const migrations[] = {
    /* 1: accounts, organisations, devices, readings. */
    "CREATE TABLE users ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  email TEXT NOT NULL UNIQUE,"
    "  pw_hash TEXT NOT NULL,"
    "  superadmin INTEGER NOT NULL,"
    "  disabled INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE sessions ("
    "  token_hash BLOB PRIMARY KEY NOT NULL,"
    "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  csrf TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL"
    ") WITHOUT ROWID, STRICT;"
    "CREATE INDEX sessions_by_user ON sessions(user_id);"
    "CREATE TABLE orgs ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  name TEXT NOT NULL,"
    "  parent_id TEXT REFERENCES orgs(id),"
    "  created_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX orgs_by_parent ON orgs(parent_id);"
    "CREATE INDEX orgs_by_name ON orgs(name, id);"
    "CREATE TABLE memberships ("
    "  org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,"
    "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  role INTEGER NOT NULL CHECK (role BETWEEN 1 AND 4),"
    "  PRIMARY KEY (org_id, user_id)"
    ") WITHOUT ROWID, STRICT;"
    "CREATE INDEX memberships_by_user ON memberships(user_id);"
    "CREATE TABLE devices ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  org_id TEXT NOT NULL REFERENCES orgs(id),"
    "  name TEXT NOT NULL,"
    "  description TEXT NOT NULL,"
    "  token_hash BLOB NOT NULL UNIQUE,"
    "  disabled INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX devices_by_org ON devices(org_id, name, id);"
    "CREATE TABLE series ("
    "  id INTEGER PRIMARY KEY,"
    "  device_id TEXT NOT NULL REFERENCES devices(id),"
    "  channel TEXT NOT NULL,"
    "  last_ts INTEGER NOT NULL,"
    "  last_value REAL NOT NULL,"
    "  UNIQUE (device_id, channel)"
    ") STRICT;"
    "CREATE TABLE readings ("
    "  series_id INTEGER NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  value REAL NOT NULL,"
    "  PRIMARY KEY (series_id, ts)"
    ") WITHOUT ROWID, STRICT;",

    /* 2: sessions named and listable, API keys, the audit log.
     * - a session's id is a name for lists, not a secret; sessions from
     *   version 1 have none (''), hence a partial unique index;
     * - apikeys.created_by and every audit column are plain text without a
     *   foreign key: they record history, which outlives the user or org
     *   they name (store_org_delete keeps the audit rows);
     * - audit is read by org over a time range, newest first: the index
     *   (org_id, ts) ends in the rowid, so ORDER BY ts, id walks it. */
    "ALTER TABLE sessions ADD COLUMN id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE sessions ADD COLUMN peer TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER NOT NULL DEFAULT 0;"
    "CREATE UNIQUE INDEX sessions_by_id ON sessions(id) WHERE id <> '';"
    "CREATE TABLE apikeys ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  org_id TEXT NOT NULL REFERENCES orgs(id),"
    "  name TEXT NOT NULL,"
    "  scopes INTEGER NOT NULL,"
    "  key_hash BLOB NOT NULL UNIQUE,"
    "  created_by TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX apikeys_by_org ON apikeys(org_id, created_at);"
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY,"
    "  ts INTEGER NOT NULL,"
    "  org_id TEXT NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  target TEXT NOT NULL,"
    "  addr TEXT NOT NULL,"
    "  detail TEXT NOT NULL"
    ") STRICT;"
    "CREATE INDEX audit_by_org_ts ON audit(org_id, ts);",

    /* 3: accounting — usage per org, hour and protocol; quotas; session
     * records.
     * - usage and acct_sessions carry no foreign key: they are billing
     *   history and outlive the org they name (store_org_delete keeps
     *   them); a quota belongs to a live org and goes with it;
     * - usage is keyed (org_id, hour, protocol) WITHOUT ROWID: a commit
     *   upserts a few rows by exact key, and a query for some orgs over a
     *   time range walks one contiguous key range per org;
     * - usage_by_hour serves the start-up scan of one day over every org
     *   (store_usage_day) without reading the whole history; rows are
     *   inserted once per org, hour and protocol and then only their
     *   counters change, so the index costs nothing on the hot path;
     * - acct_sessions are listed by org, newest first; the few active ones
     *   are found at start-up through a partial index (ended rows, nearly
     *   all of them, stay out of it). */
    "CREATE TABLE usage ("
    "  org_id TEXT NOT NULL,"
    "  hour INTEGER NOT NULL,"
    "  protocol TEXT NOT NULL,"
    "  bytes_in INTEGER NOT NULL DEFAULT 0,"
    "  bytes_out INTEGER NOT NULL DEFAULT 0,"
    "  messages INTEGER NOT NULL DEFAULT 0,"
    "  readings INTEGER NOT NULL DEFAULT 0,"
    "  rejected INTEGER NOT NULL DEFAULT 0,"
    "  api_requests INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (org_id, hour, protocol)"
    ") WITHOUT ROWID, STRICT;"
    "CREATE INDEX usage_by_hour ON usage(hour);"
    "CREATE TABLE quotas ("
    "  org_id TEXT PRIMARY KEY NOT NULL REFERENCES orgs(id),"
    "  max_devices INTEGER NOT NULL,"
    "  max_readings_per_day INTEGER NOT NULL,"
    "  max_bytes_per_day INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE acct_sessions ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  principal_id TEXT NOT NULL,"
    "  org_id TEXT NOT NULL,"
    "  protocol TEXT NOT NULL,"
    "  addr TEXT NOT NULL,"
    "  started_at INTEGER NOT NULL,"
    "  ended_at INTEGER NOT NULL,"
    "  end_reason TEXT NOT NULL,"
    "  bytes_in INTEGER NOT NULL,"
    "  bytes_out INTEGER NOT NULL,"
    "  messages INTEGER NOT NULL,"
    "  readings INTEGER NOT NULL,"
    "  refused INTEGER NOT NULL,"
    "  api_requests INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX acct_sessions_by_org ON acct_sessions(org_id, started_at);"
    "CREATE INDEX acct_sessions_active ON acct_sessions(ended_at) WHERE ended_at = 0;",

    /* 4: usage rows get a rowid. Each commit adds to the row of its (org,
     * hour, protocol); found by the rowid the writer remembers, that is one
     * integer seek instead of a seek by a three-column text key (about a
     * third less work per commit). The key stays unique, so the upsert by
     * key and queries by org and time are as before. */
    "CREATE TABLE usage_v4 ("
    "  id INTEGER PRIMARY KEY,"
    "  org_id TEXT NOT NULL,"
    "  hour INTEGER NOT NULL,"
    "  protocol TEXT NOT NULL,"
    "  bytes_in INTEGER NOT NULL DEFAULT 0,"
    "  bytes_out INTEGER NOT NULL DEFAULT 0,"
    "  messages INTEGER NOT NULL DEFAULT 0,"
    "  readings INTEGER NOT NULL DEFAULT 0,"
    "  rejected INTEGER NOT NULL DEFAULT 0,"
    "  api_requests INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (org_id, hour, protocol)"
    ") STRICT;"
    "INSERT INTO usage_v4(org_id, hour, protocol, bytes_in, bytes_out, messages, readings,"
    "  rejected, api_requests)"
    "  SELECT org_id, hour, protocol, bytes_in, bytes_out, messages, readings, rejected,"
    "  api_requests FROM usage ORDER BY org_id, hour, protocol;"
    "DROP TABLE usage;"
    "ALTER TABLE usage_v4 RENAME TO usage;"
    "CREATE INDEX usage_by_hour ON usage(hour);",

    /* 5: a deleted device's readings are purged in the background. The
     * delete moves its series ids here in the transaction that deletes the
     * device (so the list is as durable as the delete, and a restart
     * resumes the purge); store_purge_step deletes their readings in
     * bounded chunks and drops each id with its last reading. A new series
     * never takes an id still listed here (series ids are assigned past
     * both tables' maxima). */
    "CREATE TABLE purge_series ("
    "  series_id INTEGER PRIMARY KEY"
    ") STRICT;",

    /* 6: consent to join, login throttle lifts, audit actors by name.
     * - an invitation is a pending membership: (org, user) unique, so
     *   inviting again only changes the role; it goes with its org or
     *   user, and is looked up by user for "my invitations";
     * - users.login_unlocked_at is written by whoever lifts the login
     *   throttle of an account (the superadmin, or `reset-password`
     *   offline): the server reads it at each sign-in, so a lift reaches a
     *   running server, or every node of a shared store, without a signal;
     * - audit.actor_name records the actor's email or API key name as it
     *   was then: history, like the rest of the row. */
    "CREATE TABLE invitations ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,"
    "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  role INTEGER NOT NULL CHECK (role BETWEEN 1 AND 4),"
    "  invited_by TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  UNIQUE (org_id, user_id)"
    ") STRICT;"
    "CREATE INDEX invitations_by_user ON invitations(user_id, created_at);"
    "ALTER TABLE users ADD COLUMN login_unlocked_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE audit ADD COLUMN actor_name TEXT NOT NULL DEFAULT '';",

    /* 7: the MQTT broker's durable state (store_broker.h).
     * - every table leads with org_id, so an org's delete is one key range
     *   per table; sessions, subscriptions, deliveries and inbound QoS 2
     *   ids are keyed (org_id, client_id, …) WITHOUT ROWID: a session's
     *   rows sit together and deliveries come back in seq order;
     * - a message is one row however many deliveries and retained entries
     *   name it, deleted with the last of them: both name it through an
     *   index on msg_id, which that check walks;
     * - no foreign keys: a write that would break one (a delivery for a
     *   session deleted meanwhile) is skipped by its own statement instead
     *   of failing the whole group commit it is part of;
     * - sessions by principal: a device's or key's delete takes its
     *   sessions in the same transaction. */
    "CREATE TABLE broker_sessions ("
    "  org_id TEXT NOT NULL,"
    "  client_id TEXT NOT NULL,"
    "  principal_id TEXT NOT NULL,"
    "  expiry_s INTEGER NOT NULL,"
    "  disconnected_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (org_id, client_id)"
    ") WITHOUT ROWID, STRICT;"
    "CREATE INDEX broker_sessions_by_principal ON broker_sessions(principal_id);"
    "CREATE TABLE broker_subs ("
    "  org_id TEXT NOT NULL,"
    "  client_id TEXT NOT NULL,"
    "  topic_filter TEXT NOT NULL,"
    "  options INTEGER NOT NULL,"
    "  sub_id INTEGER NOT NULL,"
    "  PRIMARY KEY (org_id, client_id, topic_filter)"
    ") WITHOUT ROWID, STRICT;"
    "CREATE TABLE broker_messages ("
    "  id INTEGER PRIMARY KEY,"
    "  org_id TEXT NOT NULL,"
    "  topic TEXT NOT NULL,"
    "  payload BLOB NOT NULL,"
    "  props BLOB NOT NULL,"
    "  qos INTEGER NOT NULL,"
    "  retain INTEGER NOT NULL,"
    "  published_ms INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX broker_messages_by_org ON broker_messages(org_id);"
    "CREATE TABLE broker_deliveries ("
    "  org_id TEXT NOT NULL,"
    "  client_id TEXT NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  msg_id INTEGER NOT NULL,"
    "  qos INTEGER NOT NULL,"
    "  retain INTEGER NOT NULL,"
    "  packet_id INTEGER NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  sub_ids BLOB NOT NULL,"
    "  PRIMARY KEY (org_id, client_id, seq)"
    ") WITHOUT ROWID, STRICT;"
    "CREATE INDEX broker_deliveries_by_msg ON broker_deliveries(msg_id);"
    "CREATE TABLE broker_inbound ("
    "  org_id TEXT NOT NULL,"
    "  client_id TEXT NOT NULL,"
    "  packet_id INTEGER NOT NULL,"
    "  PRIMARY KEY (org_id, client_id, packet_id)"
    ") WITHOUT ROWID, STRICT;"
    "CREATE TABLE broker_retained ("
    "  org_id TEXT NOT NULL,"
    "  topic TEXT NOT NULL,"
    "  msg_id INTEGER NOT NULL,"
    "  PRIMARY KEY (org_id, topic)"
    ") WITHOUT ROWID, STRICT;"
    "CREATE INDEX broker_retained_by_msg ON broker_retained(msg_id);",
    /* Devices describe themselves: attributes (a JSON object's text), and
     * when and by which protocol their newest batch was stored (written
     * from memory now and then, never once per batch). */
    "ALTER TABLE devices ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';"
    "ALTER TABLE devices ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN last_protocol TEXT NOT NULL DEFAULT '';",

    /* 9: a persistent session's will while its delay runs (store_broker.h):
     * the message it points at is kept like a delivery's, so the check
     * that deletes a message nothing points at looks here too, through
     * an index of the sessions that have one. */
    "ALTER TABLE broker_sessions ADD COLUMN will_msg_id INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE broker_sessions ADD COLUMN will_at_ms INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX broker_sessions_by_will ON broker_sessions(will_msg_id)"
    " WHERE will_msg_id > 0;",

    /* 10: dashboards (store_dashboards.h). The layout is one JSON text,
     * read and written whole (aaa/dashboards.h checks it); an org's are
     * listed by name through the index, and go with the org by the
     * foreign key's cascade, inside store_org_delete's transaction. */
    "CREATE TABLE dashboards ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  kind INTEGER NOT NULL CHECK (kind IN (0, 1)),"
    "  spec TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  created_by TEXT NOT NULL"
    ") STRICT;"
    "CREATE INDEX dashboards_by_org ON dashboards(org_id, name, id);",

    /* 11: the dashboard role below viewer (SPEC §2). Roles are stored as
     * numbers checked by a CHECK, which SQLite cannot alter: memberships
     * and invitations are rebuilt with the new range, every role kept in
     * meaning (viewer 1 -> 2 … owner 4 -> 5), with their indexes. Nothing
     * references either table, so dropping the old ones cascades
     * nowhere. */
    "CREATE TABLE memberships_v11 ("
    "  org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,"
    "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  role INTEGER NOT NULL CHECK (role BETWEEN 1 AND 5),"
    "  PRIMARY KEY (org_id, user_id)"
    ") WITHOUT ROWID, STRICT;"
    "INSERT INTO memberships_v11(org_id, user_id, role)"
    " SELECT org_id, user_id, role + 1 FROM memberships;"
    "DROP TABLE memberships;"
    "ALTER TABLE memberships_v11 RENAME TO memberships;"
    "CREATE INDEX memberships_by_user ON memberships(user_id);"
    "CREATE TABLE invitations_v11 ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,"
    "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  role INTEGER NOT NULL CHECK (role BETWEEN 1 AND 5),"
    "  invited_by TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  UNIQUE (org_id, user_id)"
    ") STRICT;"
    "INSERT INTO invitations_v11(id, org_id, user_id, role, invited_by, created_at)"
    " SELECT id, org_id, user_id, role + 1, invited_by, created_at FROM invitations;"
    "DROP TABLE invitations;"
    "ALTER TABLE invitations_v11 RENAME TO invitations;"
    "CREATE INDEX invitations_by_user ON invitations(user_id, created_at);",

    /* 12: per-minute rollups of the readings (sqlite_rollups.c), read by
     * bucketed queries a whole number of minutes wide; summed here from
     * the readings already stored. A minute's first and last values are
     * those of its earliest and latest ts. */
    "CREATE TABLE rollups ("
    "  series_id INTEGER NOT NULL,"
    "  minute INTEGER NOT NULL,"
    "  n INTEGER NOT NULL,"
    "  total REAL NOT NULL,"
    "  lo REAL NOT NULL,"
    "  hi REAL NOT NULL,"
    "  first_value REAL NOT NULL,"
    "  last_value REAL NOT NULL,"
    "  PRIMARY KEY (series_id, minute)"
    ") WITHOUT ROWID, STRICT;"
    "INSERT INTO rollups(series_id, minute, n, total, lo, hi, first_value, last_value)"
    " SELECT g.series_id, g.minute, g.n, g.total, g.lo, g.hi,"
    "  (SELECT value FROM readings r WHERE r.series_id = g.series_id AND r.ts = g.t0),"
    "  (SELECT value FROM readings r WHERE r.series_id = g.series_id AND r.ts = g.t1)"
    " FROM (SELECT series_id, ts - ts % " STR(SQ_ROLLUP_MS) " AS minute, count(*) AS n,"
    "  sum(value) AS total, min(value) AS lo, max(value) AS hi, min(ts) AS t0,"
    "  max(ts) AS t1 FROM readings GROUP BY series_id, minute) g;",
};

#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))

int store_sqlite_schema_latest(void)
{
    return MIGRATION_COUNT;
}

static int schema_version(sqlite3 *db, int *out, char *errbuf, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        snprintf(errbuf, errlen, "cannot read the schema version: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? SS_OK : SS_STORE;
}

static int exec_sql(sqlite3 *db, const char *sql, int target, char *errbuf, size_t errlen)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return SS_OK;
    snprintf(errbuf, errlen, "schema migration %d failed: %s", target, sqlite3_errmsg(db));
    return SS_STORE;
}

/* Runs the migration reaching version `target`, unless another process got
 * there first (checked under the write lock). */
static int apply_one(sqlite3 *db, int target, char *errbuf, size_t errlen)
{
    int err = exec_sql(db, "BEGIN IMMEDIATE", target, errbuf, errlen);
    if (err)
        return err;
    int version = 0;
    err = schema_version(db, &version, errbuf, errlen);
    if (!err && version < target) {
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", target);
        err = exec_sql(db, migrations[target - 1], target, errbuf, errlen);
        if (!err)
            err = exec_sql(db, bump, target, errbuf, errlen);
    }
    if (!err)
        err = exec_sql(db, "COMMIT", target, errbuf, errlen);
    if (err && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

int store_sqlite_migrate(sqlite3 *db, char *errbuf, size_t errlen)
{
    return store_sqlite_migrate_to(db, MIGRATION_COUNT, errbuf, errlen);
}

int store_sqlite_migrate_to(sqlite3 *db, int target_version, char *errbuf, size_t errlen)
{
    if (target_version < 0 || target_version > MIGRATION_COUNT) {
        snprintf(errbuf, errlen, "no schema version %d (this build knows 0 to %d)",
                 target_version, MIGRATION_COUNT);
        return SS_INVAL;
    }
    int version = 0;
    int err = schema_version(db, &version, errbuf, errlen);
    if (err)
        return err;
    if (version > MIGRATION_COUNT) {
        snprintf(errbuf, errlen,
                 "database schema version %d is newer than this build knows (%d): "
                 "run a newer SensorSpace or restore a matching backup",
                 version, MIGRATION_COUNT);
        return SS_STORE;
    }
    for (int target = version + 1; target <= target_version && !err; target++)
        err = apply_one(db, target, errbuf, errlen);
    return err;
}
