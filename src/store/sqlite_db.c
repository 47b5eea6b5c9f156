/* sqlite_db.c — the SQLite engine's entry (store_engine.h): opening the
 * file, connections and their pragmas, transactions, checkpoints and the
 * room left on the disk; and the helpers every sqlite_*.c file uses. */
#include "store/sqlite_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <sys/statvfs.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#define LOG_MOD SQ_LOG_MOD

/* ---- statements ---------------------------------------------------------- */

const char *const sq_stmt_sql[STMT_COUNT] = {
#define STMT_TEXT(name, sql) sql,
    STMT_MAP(STMT_TEXT)
#undef STMT_TEXT
};

const char *const sq_stmt_name[STMT_COUNT] = {
#define STMT_NAME(name, sql) #name,
    STMT_MAP(STMT_NAME)
#undef STMT_NAME
};

/* ---- small helpers -------------------------------------------------------- */

/* Maps an SQLite result code to an SS_* code; logs what an operator must
 * see (anything but a taken key or a missing parent). */
int sq_err(sq_conn *c, int rc, const char *what)
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

void sq_col_text(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    size_t len = s ? (size_t)sqlite3_column_bytes(st, i) : 0;
    if (len >= cap)
        len = cap - 1;
    if (len)
        memcpy(dst, s, len);
    dst[len] = '\0';
}

void sq_col_blob(sqlite3_stmt *st, int i, uint8_t *dst, size_t cap)
{
    const void *b = sqlite3_column_blob(st, i);
    size_t len = b ? (size_t)sqlite3_column_bytes(st, i) : 0;
    if (len > cap)
        len = cap;
    memset(dst, 0, cap);
    if (len)
        memcpy(dst, b, len);
}

/* ---- transactions ---------------------------------------------------------- */

int sq_tx_begin(sq_conn *c)
{
    sqlite3_stmt *st = NULL;
    c->tx_changes = sqlite3_total_changes64(c->db);
    int err = sq_stmt_get(c, STMT_BEGIN, &st);
    return err ? err : sq_step_done(c, STMT_BEGIN);
}

/* Only a commit that wrote something shows the disk has room again: one
 * that wrote nothing succeeds on a full disk too. */
int sq_tx_commit(sq_conn *c)
{
    sqlite3_stmt *st = NULL;
    int wrote = sqlite3_total_changes64(c->db) != c->tx_changes;
    int err = sq_stmt_get(c, STMT_COMMIT, &st);
    if (!err)
        err = sq_step_done(c, STMT_COMMIT);
    if (!err && wrote)
        atomic_store(&c->owner->full, 0);
    return err;
}

/* Some errors (SQLITE_FULL, IOERR) already rolled the transaction back;
 * only roll back what is still open. */
void sq_tx_rollback(sq_conn *c)
{
    if (sqlite3_get_autocommit(c->db))
        return;
    sqlite3_stmt *st = NULL;
    if (sq_stmt_get(c, STMT_ROLLBACK, &st) == SS_OK)
        sq_step_done(c, STMT_ROLLBACK);
}

/* Commits when err is SS_OK, else rolls back; returns the outcome. */
int sq_tx_end(sq_conn *c, int err)
{
    if (err == SS_OK)
        err = sq_tx_commit(c);
    if (err != SS_OK)
        sq_tx_rollback(c);
    return err;
}

/* ---- space for checkpoints -------------------------------------------------- */

/* Free bytes on the file system of the database, as an unprivileged
 * process may use them; -1 when that cannot be read. */
static int64_t sq_disk_free_bytes(const sq_store *s)
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
static int sq_checkpoint_fits(const sq_store *s)
{
    int64_t free_bytes = sq_disk_free_bytes(s);
    if (free_bytes < 0)
        return 1;
    int64_t need =
        (int64_t)atomic_load(&s->wal_frames) * s->page_size + STORE_CHECKPOINT_SLACK_BYTES;
    return free_bytes >= need;
}

/* SQLite's automatic checkpoint, replaced by the same PASSIVE checkpoint at
 * the same size, which runs only when it fits; it also learns the log's
 * size after each commit. */
static int on_wal_commit(void *ctx, sqlite3 *db, const char *name, int frames)
{
    sq_store *s = ctx;
    atomic_store(&s->wal_frames, frames);
    if (frames >= STORE_WAL_CHECKPOINT_PAGES && sq_checkpoint_fits(s))
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

/* At start the log's size is known only from its file (frames of 24 bytes
 * of header and a page): an upper bound of what a checkpoint needs. */
static void wal_frames_from_file(sq_store *s, sqlite3 *db)
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

static void conn_free(sq_conn *c)
{
    /* The last connection to close checkpoints the log; on a full disk
     * that would only eat what space is left. */
    if (c->db && !sq_checkpoint_fits(c->owner))
        sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    for (size_t i = 0; i < STMT_COUNT; i++)
        sqlite3_finalize(c->stmts[i]);
    sqlite3_close(c->db);
    free(c->cache.slots);
    free(c->cache.touched);
    free(c->check);
    sq_rollup_free(c);
    free(c->gc_ids);
    free(c);
}

/* WAL lets readers run beside the one writer and turns a commit into one
 * append (plus one fsync with synchronous=FULL). */
static int conn_wal(sq_conn *c, char *errbuf, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    int ok = mode && strcmp((const char *)mode, "wal") == 0;
    if (!ok)
        store_engine_err(errbuf, errlen, "%s: cannot enable WAL journal mode: %s", c->owner->path,
                         rc == SQLITE_ROW ? "not supported on this file system"
                                          : sqlite3_errmsg(c->db));
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

static int conn_configure(sq_conn *c, char *errbuf, size_t errlen)
{
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, STORE_BUSY_TIMEOUT_MS);
    int err = conn_wal(c, errbuf, errlen);
    if (err)
        return err;
    const char *pragmas[] = {
        sync_pragma[c->owner->durability],
        c->owner->series_alone ? "PRAGMA foreign_keys = OFF" : "PRAGMA foreign_keys = ON",
        "PRAGMA cache_size = -" STR(STORE_CACHE_KIB),
        "PRAGMA temp_store = MEMORY",
        "PRAGMA journal_size_limit = " STR(STORE_WAL_SIZE_LIMIT),
    };
    for (size_t i = 0; i < sizeof pragmas / sizeof pragmas[0]; i++) {
        if (sqlite3_exec(c->db, pragmas[i], NULL, NULL, NULL) != SQLITE_OK) {
            store_engine_err(errbuf, errlen, "%s: %s: %s", c->owner->path, pragmas[i],
                             sqlite3_errmsg(c->db));
            return SS_STORE;
        }
    }
    sqlite3_wal_hook(c->db, on_wal_commit, c->owner);
    return SS_OK;
}

/* NOMUTEX: a connection is used by one thread at a time (store.h), so
 * SQLite's per-connection mutex would only cost. */
static int conn_open(sq_store *s, sq_conn **out, char *errbuf, size_t errlen)
{
    sq_conn *c = calloc(1, sizeof *c);
    if (!c)
        return SS_NOMEM;
    c->owner = s;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(s->path, &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        store_engine_err(errbuf, errlen, "cannot open %s: %s", s->path,
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

/* The engine handle the store holds is an sq_store. */
static sq_store *sq_store_of(store_engine *e)
{
    return (sq_store *)(void *)e;
}

/* The spare connection (the one that migrated the schema) first, else a
 * new one. */
static int sq_conn_open(store_engine *e, store_engine_conn **out)
{
    sq_store *s = sq_store_of(e);
    pthread_mutex_lock(&s->lock);
    sq_conn *c = s->spare;
    s->spare = NULL;
    pthread_mutex_unlock(&s->lock);
    if (c) {
        *out = sq_ec(c);
        return SS_OK;
    }
    char why[STORE_ERR_MAX] = "";
    int err = conn_open(s, &c, why, sizeof why);
    if (err) {
        log_error(LOG_MOD, "new connection: %s", why[0] ? why : ss_strerror(err));
        return err == SS_NOMEM ? SS_NOMEM : SS_STORE;
    }
    *out = sq_ec(c);
    return SS_OK;
}

static void sq_conn_close(store_engine_conn *ec)
{
    conn_free(sq_conn_of(ec));
}

/* Every call ends its own transaction; this only guards against a bug
 * handing the next user a connection holding the write lock. */
static void sq_conn_reset(store_engine_conn *ec)
{
    sq_tx_rollback(sq_conn_of(ec));
}

sqlite3 *store_sqlite_db(store_conn *c)
{
    return sq_conn_of(store_conn_engine(c, STORE_PART_SERIES))->db;
}

/* ---- open and close ---------------------------------------------------------- */

static int store_path(const store_options *opt, char *path, size_t cap, char *errbuf, size_t errlen)
{
    const char *url = opt->url ? opt->url : "";
    size_t scheme = strlen(STORE_URL_SCHEME);
    if (strncmp(url, STORE_URL_SCHEME, scheme) != 0) {
        store_engine_err(errbuf, errlen,
                         "unknown store url \"%s\": use \"sqlite:\" or \"sqlite:/path/file.db\"",
                         url);
        return SS_INVAL;
    }
    const char *file = url + scheme;
    int n;
    if (file[0] == '\0') {
        if (!opt->data_dir || opt->data_dir[0] == '\0') {
            store_engine_err(errbuf, errlen, "store url \"sqlite:\" needs a data directory");
            return SS_INVAL;
        }
        n = snprintf(path, cap, "%s/%s", opt->data_dir, STORE_DB_FILE);
    } else if (file[0] == '/') {
        n = snprintf(path, cap, "%s", file);
    } else {
        store_engine_err(errbuf, errlen, "store url \"%s\": the file path must be absolute", url);
        return SS_INVAL;
    }
    if (n < 0 || (size_t)n >= cap) {
        store_engine_err(errbuf, errlen, "store file path is too long");
        return SS_INVAL;
    }
    return SS_OK;
}

static void store_free(sq_store *s)
{
    pthread_mutex_destroy(&s->held_write_lock);
    pthread_mutex_destroy(&s->held_lock);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int store_init(const store_options *opt, sq_store *s, char *errbuf, size_t errlen)
{
    if (opt->durability != STORE_DURABILITY_FULL && opt->durability != STORE_DURABILITY_NORMAL) {
        store_engine_err(errbuf, errlen, "unknown store durability %d", (int)opt->durability);
        return SS_INVAL;
    }
    s->durability = opt->durability;
    atomic_init(&s->device_generation, 0);
    return store_path(opt, s->path, sizeof s->path, errbuf, errlen);
}

static int sq_open(const store_options *opt, unsigned parts, store_engine **out, char *errbuf,
                   size_t errlen)
{
    char local[STORE_ERR_MAX];
    if (!errbuf || errlen == 0) {
        errbuf = local;
        errlen = sizeof local;
    }
    errbuf[0] = '\0';
    if (!opt || !out) {
        store_engine_err(errbuf, errlen, "no store options");
        return SS_INVAL;
    }
    sq_store *s = calloc(1, sizeof *s);
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
    s->series_alone = !(parts & STORE_PART_BIT(STORE_PART_ACCOUNTS));
    sq_conn *c = NULL;
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
    s->spare = c;
    *out = (store_engine *)(void *)s;
    return SS_OK;
}

static void sq_close(store_engine *e)
{
    sq_store *s = sq_store_of(e);
    if (s->spare)
        conn_free(s->spare);
    store_free(s);
}

static int sq_ping(store_engine_conn *ec)
{
    sq_conn *c = sq_conn_of(ec);
    sqlite3_stmt *st = NULL;
    int err = sq_stmt_get(c, STMT_PING, &st);
    if (err)
        return err;
    err = sq_step_row(c, STMT_PING);
    sqlite3_reset(st);
    return err == SS_NOT_FOUND ? SS_STORE : err;
}

static int sq_full(store_engine *e)
{
    sq_store *s = sq_store_of(e);
    return atomic_load(&s->full);
}

static int sq_room_to_write(store_engine *e)
{
    sq_store *s = sq_store_of(e);
    return !atomic_load(&s->full) && sq_checkpoint_fits(s);
}

/* Rewrites the schema version with its own value: one page to the log,
 * nothing changed. */
static int probe_write(sq_conn *c)
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

static int sq_probe_room(store_engine_conn *ec)
{
    sq_conn *c = sq_conn_of(ec);
    sq_store *s = c->owner;
    if (!atomic_load(&s->full) || !sq_checkpoint_fits(s))
        return atomic_load(&s->full) ? SS_FULL : SS_OK;
    int err = sq_tx_begin(c);
    if (!err)
        err = sq_tx_end(c, probe_write(c));
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
static int checkpoint_fits_now(sq_conn *c)
{
    if (sq_checkpoint_fits(c->owner))
        return 1;
    sqlite3_stmt *st = NULL;
    int64_t pages = -1;
    if (sqlite3_prepare_v2(c->db, "PRAGMA page_count", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        pages = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    struct stat sb;
    int64_t free_bytes = sq_disk_free_bytes(c->owner);
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
static int checkpoint_truncate(sq_conn *c)
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
static int sq_checkpoint(store_engine_conn *ec)
{
    sq_conn *c = sq_conn_of(ec);
    sq_store *s = c->owner;
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

/* ---- the engine ------------------------------------------------------------------ */

const store_engine_kind store_sqlite_engine = {
    .name = "SQLite",
    .scheme = STORE_URL_SCHEME,
    .open = sq_open,
    .close = sq_close,
    .conn_open = sq_conn_open,
    .conn_close = sq_conn_close,
    .conn_reset = sq_conn_reset,
    .ping = sq_ping,
    .checkpoint = sq_checkpoint,
    .full = sq_full,
    .room_to_write = sq_room_to_write,
    .probe_room = sq_probe_room,
    .accounts = &sq_accounts_table,
    .series = &sq_series_table,
    .usage = &sq_usage_table,
    .broker = &sq_broker_table,
    .dashboards = &sq_dashboards_table,
};
