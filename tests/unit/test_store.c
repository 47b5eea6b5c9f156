/* test_store.c — the SQLite engine's own tests, each case in its own
 * temporary data directory: opening and URLs, durability pragmas,
 * migrations, the full disk, the pool and the series cache, and the rows
 * as SQLite keeps them. What every engine promises is tested once for all
 * engines in test_store_contract.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <sqlite3.h>
#include <unistd.h>

#include "core/err.h"
#include "core/limits.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "store/maint.h"
#include "store/sqlite_internal.h"
#include "store/store.h"
#include "store_cases.h"

typedef struct fx {
    char dir[64];
    char db_path[128];
    store *s;
    store_conn *c;
} fx;

/* ---- fixture --------------------------------------------------------- */

static fx *fx_new(void)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/ss_test_store_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db_path, sizeof f->db_path, "%s/sensorspace.db", f->dir);
    return f;
}

static int fx_open(fx *f, store_durability d)
{
    store_options opt = {.url = "sqlite:", .data_dir = f->dir, .durability = d};
    char why[256];
    int err = store_open(&opt, &f->s, why, sizeof why);
    if (err)
        return err;
    return store_conn_acquire(f->s, &f->c);
}

static void fx_close(fx *f)
{
    if (f->c)
        store_conn_release(f->s, f->c);
    store_close(f->s);
    f->c = NULL;
    f->s = NULL;
}

static int setup_with(void **state, store_durability d)
{
    fx *f = fx_new();
    if (fx_open(f, d) != SS_OK) {
        rm_dir(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, STORE_DURABILITY_NORMAL);
}

static int setup_bare(void **state)
{
    *state = fx_new();
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    if (f->s)
        fx_close(f);
    rm_dir(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ----------------------------------------------------------- */

static int64_t q_int(store_conn *c, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(store_sqlite_db(c), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void exec_raw(store_conn *c, const char *sql)
{
    assert_int_equal(sqlite3_exec(store_sqlite_db(c), sql, NULL, NULL, NULL), SQLITE_OK);
}

/* Readings of no series that are not waiting for the purge either: lost
 * to every answer and to the purge alike. */
static int64_t orphan_readings(store_conn *c)
{
    return q_int(c, "SELECT count(*) FROM readings WHERE series_id NOT IN (SELECT id FROM series)"
                    " AND series_id NOT IN (SELECT series_id FROM purge_series)");
}

/* Runs the purge of deleted devices' readings to its end; the number of
 * readings it deleted. */
static size_t purge_all(store_conn *c, size_t chunk)
{
    size_t total = 0, deleted = 0;
    int more = 1;
    for (int i = 0; more && i < 100000; i++) {
        assert_int_equal(store_purge_step(c, chunk, &deleted, &more), SS_OK);
        assert_true(deleted <= chunk);
        total += deleted;
    }
    assert_int_equal(more, 0);
    return total;
}

/* ---- open, migrations, durability ---------------------------------------- */

static void test_open_creates_schema_and_reopen_keeps_version(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_open(f, STORE_DURABILITY_FULL), SS_OK);
    assert_true(store_sqlite_schema_latest() >= 1);
    assert_int_equal(q_int(f->c, "PRAGMA user_version"), store_sqlite_schema_latest());
    assert_int_equal(add_user(f->c, 1, "a@example.com"), SS_OK);
    fx_close(f);

    assert_int_equal(fx_open(f, STORE_DURABILITY_FULL), SS_OK);
    assert_int_equal(q_int(f->c, "PRAGMA user_version"), store_sqlite_schema_latest());
    int64_t n = -1;
    assert_int_equal(store_user_count(f->c, &n), SS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_ping(f->c), SS_OK);
}

static void test_open_refuses_newer_schema(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_open(f, STORE_DURABILITY_NORMAL), SS_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", store_sqlite_schema_latest() + 1);
    exec_raw(f->c, sql);
    fx_close(f);

    store_options opt = {.url = "sqlite:", .data_dir = f->dir};
    char why[256] = "";
    store *s = NULL;
    assert_int_equal(store_open(&opt, &s, why, sizeof why), SS_STORE);
    assert_null(s);
    assert_non_null(strstr(why, "newer"));
}

static void test_open_url_with_absolute_path(void **state)
{
    fx *f = *state;
    char url[160];
    snprintf(url, sizeof url, "sqlite:%s/other.db", f->dir);
    store_options opt = {.url = url, .data_dir = NULL};
    char why[256];
    assert_int_equal(store_open(&opt, &f->s, why, sizeof why), SS_OK);
    assert_int_equal(store_conn_acquire(f->s, &f->c), SS_OK);
    assert_int_equal(store_ping(f->c), SS_OK);
    char path[160];
    snprintf(path, sizeof path, "%s/other.db", f->dir);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_not_equal(access(f->db_path, F_OK), 0);
}

static void test_open_rejects_bad_urls_with_reason(void **state)
{
    fx *f = *state;
    const char *bad[] = {"postgres://localhost/db", "", "sqlite", "sqlite:relative.db",
                         "SQLITE:", "sqlite:./x.db"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        store_options opt = {.url = bad[i], .data_dir = f->dir};
        char why[256] = "";
        store *s = NULL;
        assert_int_equal(store_open(&opt, &s, why, sizeof why), SS_INVAL);
        assert_null(s);
        assert_true(strlen(why) > 0);
    }
    store_options none = {.url = NULL, .data_dir = f->dir};
    store *s = NULL;
    assert_int_equal(store_open(&none, &s, NULL, 0), SS_INVAL);
    store_options nodir = {.url = "sqlite:", .data_dir = NULL};
    assert_int_equal(store_open(&nodir, &s, NULL, 0), SS_INVAL);
    store_options baddur = {.url = "sqlite:", .data_dir = f->dir, .durability = 7};
    assert_int_equal(store_open(&baddur, &s, NULL, 0), SS_INVAL);
}

/* The engine is chosen by the scheme: an unknown one fails the open with
 * the schemes this build knows. */
static void test_open_unknown_scheme_names_the_known_ones(void **state)
{
    fx *f = *state;
    store_options opt = {.url = "postgres://localhost/db", .data_dir = f->dir};
    char why[256] = "";
    store *s = NULL;
    assert_int_equal(store_open(&opt, &s, why, sizeof why), SS_INVAL);
    assert_null(s);
    assert_non_null(strstr(why, "postgres://localhost/db"));
    assert_non_null(strstr(why, "\"sqlite:\""));
}

/* A count from a database file read apart from the store. */
static int64_t file_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* A series URL opens a second SQLite file for the series and the usage:
 * the readings, their usage and the purge list are there, the device in
 * the first; a series URL no engine takes fails the open, naming it. */
static void test_open_series_apart_in_a_second_file(void **state)
{
    fx *f = *state;
    char series_url[192], series_path[160];
    snprintf(series_path, sizeof series_path, "%s/series.db", f->dir);
    snprintf(series_url, sizeof series_url, "sqlite:%s", series_path);
    const char *bad[] = {"postgres://localhost/db", "sqlite:relative.db"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        store_options opt = {.url = "sqlite:", .series_url = bad[i], .data_dir = f->dir};
        char why[256] = "";
        store *s = NULL;
        assert_int_equal(store_open(&opt, &s, why, sizeof why), SS_INVAL);
        assert_null(s);
        assert_non_null(strstr(why, bad[i]));
    }
    store_options opt = {.url = "sqlite:", .series_url = series_url, .data_dir = f->dir};
    char why[256] = "";
    assert_int_equal(store_open(&opt, &f->s, why, sizeof why), SS_OK);
    assert_int_equal(store_conn_acquire(f->s, &f->c), SS_OK);
    add_org_and_device(f->c, 1);
    ss_reading rs[2] = {rd("t", BASE, 1), rd("h", BASE, 2)};
    char dev[SS_ID_LEN + 1], org[SS_ID_LEN + 1];
    make_id(dev, TAG_DEVICE, 1);
    make_id(org, TAG_ORG, 1);
    store_batch b = {.device_id = dev, .org_id = org, .readings = rs, .len = 2,
                     .protocol = "tcp", .received_at = BASE};
    assert_int_equal(store_write_batches(f->c, &b, 1), SS_OK);
    assert_int_equal(store_device_delete(f->c, dev), SS_OK);
    fx_close(f);
    assert_int_equal(file_int(f->db_path, "SELECT count(*) FROM orgs"), 1);
    assert_int_equal(file_int(f->db_path, "SELECT count(*) FROM readings"), 0);
    assert_int_equal(file_int(f->db_path, "SELECT count(*) FROM usage"), 0);
    assert_int_equal(file_int(series_path, "SELECT count(*) FROM orgs"), 0);
    assert_int_equal(file_int(series_path, "SELECT count(*) FROM series"), 0);
    assert_int_equal(file_int(series_path, "SELECT count(*) FROM purge_series"), 2);
    assert_int_equal(file_int(series_path, "SELECT count(*) FROM readings"), 2);
    assert_int_equal(file_int(series_path, "SELECT sum(readings) FROM usage"), 2);
}

static void test_open_missing_data_dir_is_store_error(void **state)
{
    fx *f = *state;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/missing", f->dir);
    store_options opt = {.url = "sqlite:", .data_dir = dir};
    char why[256] = "";
    store *s = NULL;
    assert_int_equal(store_open(&opt, &s, why, sizeof why), SS_STORE);
    assert_true(strlen(why) > 0);
}

static void test_durability_full_syncs_every_commit(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_open(f, STORE_DURABILITY_FULL), SS_OK);
    assert_int_equal(q_int(f->c, "PRAGMA synchronous"), 2);
    assert_int_equal(q_int(f->c, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
    assert_int_equal(q_int(f->c, "PRAGMA foreign_keys"), 1);
    /* A second connection gets the same settings. */
    store_conn *c2 = NULL;
    assert_int_equal(store_conn_acquire(f->s, &c2), SS_OK);
    assert_ptr_not_equal(c2, f->c);
    assert_int_equal(q_int(c2, "PRAGMA synchronous"), 2);
    assert_int_equal(q_int(c2, "PRAGMA foreign_keys"), 1);
    store_conn_release(f->s, c2);
}

static void test_durability_normal_in_wal(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_open(f, STORE_DURABILITY_NORMAL), SS_OK);
    assert_int_equal(q_int(f->c, "PRAGMA synchronous"), 1);
    assert_int_equal(q_int(f->c, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
}

static void test_pool_reuses_released_connections(void **state)
{
    fx *f = *state;
    store_conn *a = NULL, *b = NULL, *again = NULL;
    assert_int_equal(store_conn_acquire(f->s, &a), SS_OK);
    assert_int_equal(store_conn_acquire(f->s, &b), SS_OK);
    assert_ptr_not_equal(a, b);
    assert_ptr_not_equal(a, f->c);
    store_conn_release(f->s, a);
    assert_int_equal(store_conn_acquire(f->s, &again), SS_OK);
    assert_ptr_equal(again, a);
    store_conn_release(f->s, again);
    store_conn_release(f->s, b);
}

/* ---- sessions ----------------------------------------------------------------- */

static int count_session(void *ctx, const store_session *s)
{
    (void)s;
    (*(size_t *)ctx)++;
    return 0;
}

/* SPEC §4: sign-in on a full disk. The page count is pinned, so sessions
 * fill the pages there are and the rest meet SQLITE_FULL: those are held in
 * memory, served, revoked, and written once there is room. */
static void test_session_on_a_full_disk_is_held_until_space_returns(void **state)
{
    fx *f = *state;
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld",
             (long long)q_int(f->c, "PRAGMA page_count"));
    exec_raw(f->c, sql);
    enum { N = 200 };
    store_session *s = calloc(N, sizeof *s);
    assert_non_null(s);
    for (int i = 0; i < N; i++) {
        s[i] = mk_session(1, (uint8_t)i, 1000000);
        snprintf(s[i].id, sizeof s[i].id, "%024x", i + 1);
        assert_int_equal(store_session_create(f->c, &s[i]), SS_OK);
    }
    assert_int_equal(store_full(f->s), 1);
    store_session got;
    for (int i = 0; i < N; i++)
        assert_int_equal(store_session_get(f->c, s[i].token_hash, 999999, &got), SS_OK);
    assert_int_equal(store_session_get(f->c, s[N - 1].token_hash, 1000000, &got), SS_NOT_FOUND);
    assert_int_equal(store_session_touch(f->c, s[N - 1].token_hash, 500), SS_OK);
    assert_int_equal(store_session_get(f->c, s[N - 1].token_hash, 0, &got), SS_OK);
    assert_int_equal(got.last_seen_at, 500);
    assert_int_equal(store_session_delete(f->c, s[N - 1].token_hash), SS_OK);
    assert_int_equal(store_session_get(f->c, s[N - 1].token_hash, 0, &got), SS_NOT_FOUND);
    assert_int_equal(store_session_delete_id(f->c, s[N - 2].user_id, s[N - 2].id), SS_OK);
    assert_int_equal(store_session_get(f->c, s[N - 2].token_hash, 0, &got), SS_NOT_FOUND);
    size_t listed = 0;
    assert_int_equal(store_session_list_user(f->c, s[0].user_id, 0, count_session, &listed), 0);
    assert_int_equal(listed, N - 2);
    assert_int_equal(store_session_write_held(f->c, 0), SS_FULL);
    exec_raw(f->c, "PRAGMA max_page_count = 1000000");
    assert_int_equal(store_session_write_held(f->c, 0), SS_OK);
    /* in the database now: a reopened store has every one but the two ended */
    fx_close(f);
    assert_int_equal(fx_open(f, STORE_DURABILITY_NORMAL), SS_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(store_session_get(f->c, s[i].token_hash, 0, &got),
                         i >= N - 2 ? SS_NOT_FOUND : SS_OK);
    free(s);
}

/* "store full" stays until a write shows room again: an empty transaction
 * (the idle purge's look used to be one) commits on a full disk too and
 * must not clear it; the room probe, one page rewritten, does. */
static void test_full_is_cleared_only_by_a_write(void **state)
{
    fx *f = *state;
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld",
             (long long)q_int(f->c, "PRAGMA page_count"));
    exec_raw(f->c, sql);
    for (int i = 0; i < 200 && !store_full(f->s); i++) {
        store_session s = mk_session(1, (uint8_t)i, 1000000);
        snprintf(s.id, sizeof s.id, "%024x", i + 1);
        assert_int_equal(store_session_create(f->c, &s), SS_OK);
    }
    assert_int_equal(store_full(f->s), 1);
    assert_int_equal(store_room_to_write(f->s), 0);
    size_t deleted = 9;
    int more = 1;
    assert_int_equal(store_purge_step(f->c, 10, &deleted, &more), SS_OK);
    assert_int_equal(deleted, 0);
    assert_int_equal(more, 0);
    assert_int_equal(store_full(f->s), 1);
    int64_t pending = -1;
    assert_int_equal(store_purge_pending(f->c, &pending), SS_OK);
    assert_int_equal(pending, 0);
    assert_int_equal(store_full(f->s), 1);
    assert_int_equal(store_probe_room(f->c), SS_OK);
    assert_int_equal(store_full(f->s), 0);
    assert_int_equal(store_room_to_write(f->s), 1);
}

typedef struct held_writer {
    store_conn *c;
    int rc;
} held_writer;

static void *held_writer_main(void *arg)
{
    held_writer *w = arg;
    w->rc = store_session_write_held(w->c, 0);
    return NULL;
}

/* Writing the held sessions may wait the busy timeout for the write lock;
 * meanwhile every request's session look-up goes on (it needs the hold's
 * lock for a moment, never the writer's). A session deleted and one
 * touched while it was being written are deleted and touched in the
 * database too. */
static void test_held_sessions_written_without_blocking_lookups(void **state)
{
    fx *f = *state;
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld",
             (long long)q_int(f->c, "PRAGMA page_count"));
    exec_raw(f->c, sql);
    enum { N = 200 };
    store_session *s = calloc(N, sizeof *s);
    assert_non_null(s);
    int first = -1;  /* the first session held */
    for (int i = 0; i < N; i++) {
        s[i] = mk_session(1, (uint8_t)i, 1000000);
        snprintf(s[i].id, sizeof s[i].id, "%024x", i + 1);
        assert_int_equal(store_session_create(f->c, &s[i]), SS_OK);
        if (first < 0 && store_full(f->s))
            first = i;
    }
    assert_true(first >= 0 && first < N - 2);
    exec_raw(f->c, "PRAGMA max_page_count = 1000000");

    sqlite3 *blocker = NULL;
    assert_int_equal(sqlite3_open(f->db_path, &blocker), SQLITE_OK);
    assert_int_equal(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    held_writer w = {.c = f->c};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, held_writer_main, &w), 0);
    usleep(200 * 1000);  /* the writer waits on the write lock now */
    store_conn *c2 = NULL;
    assert_int_equal(store_conn_acquire(f->s, &c2), SS_OK);
    store_session got;
    int64_t t0 = clock_now_ms();
    assert_int_equal(store_session_get(c2, s[N - 1].token_hash, 0, &got), SS_OK);
    assert_int_equal(store_session_touch(c2, s[N - 1].token_hash, 700), SS_OK);
    int64_t took = clock_now_ms() - t0;
    assert_true(took < 500);
    /* the first held session is being written now: ended meanwhile */
    assert_int_equal(store_session_delete(c2, s[first].token_hash), SS_OK);
    assert_int_equal(sqlite3_exec(blocker, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(blocker);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(w.rc, SS_OK);
    store_conn_release(f->s, c2);

    fx_close(f);
    assert_int_equal(fx_open(f, STORE_DURABILITY_NORMAL), SS_OK);
    assert_int_equal(store_session_get(f->c, s[first].token_hash, 0, &got), SS_NOT_FOUND);
    assert_int_equal(store_session_get(f->c, s[first + 1].token_hash, 0, &got), SS_OK);
    assert_int_equal(store_session_get(f->c, s[N - 1].token_hash, 0, &got), SS_OK);
    assert_int_equal(got.last_seen_at, 700);
    free(s);
}

/* ---- roles ---------------------------------------------------------------------- */

/* A cycle cannot be made through store.h; a hand-edited file could. */
static void test_org_cycle_does_not_loop(void **state)
{
    fx *f = *state;
    add_people(f->c);
    exec_raw(f->c, "UPDATE orgs SET parent_id = '000000bb0000000000000003'"
                   " WHERE id = '000000bb0000000000000001'");
    assert_int_equal(set_role(f->c, 1, 2, STORE_ROLE_EDITOR), SS_OK);
    assert_int_equal(role_of(f->c, 4, 3), STORE_ROLE_NONE);
    assert_int_equal(role_of(f->c, 1, 1), STORE_ROLE_EDITOR);
    char u[SS_ID_LEN + 1];
    make_id(u, TAG_USER, 1);
    collect *k = collect_new();
    assert_int_equal(store_org_list(f->c, u, org_cb, k), SS_OK);
    assert_int_equal(k->n, 3);
    free(k);
}

/* ---- devices -------------------------------------------------------------------- */

static void test_device_delete_removes_readings(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    assert_int_equal(add_device(f->c, 2, 1, "keep", 2), SS_OK);
    ss_reading rs[] = {rd("t", BASE, 1), rd("h", BASE, 2), rd("t", BASE + 1, 3)};
    assert_int_equal(write_one(f->c, 1, rs, 3), SS_OK);
    assert_int_equal(write_one(f->c, 2, rs, 3), SS_OK);
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    assert_int_equal(store_device_delete(f->c, id), SS_OK);
    store_device d;
    assert_int_equal(store_device_get(f->c, id, &d), SS_NOT_FOUND);
    collect *k = channels_of(f->c, 1);
    assert_int_equal(k->n, 0);
    free(k);
    k = channels_of(f->c, 2);
    assert_int_equal(k->n, 2);
    free(k);
    /* The readings wait for the purge, then are gone. */
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM readings"), 6);
    assert_int_equal(purge_all(f->c, SS_PURGE_CHUNK_ROWS), 3);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM readings"), 3);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM series"), 2);
    assert_int_equal(store_device_delete(f->c, id), SS_NOT_FOUND);
}

/* Many readings go in chunks of at most the given size, oldest first, and
 * leave the other device's readings alone. */
static void test_device_delete_purges_in_bounded_chunks(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    assert_int_equal(add_device(f->c, 2, 1, "keep", 2), SS_OK);
    enum { N = 25 };
    ss_reading rs[N];
    for (int i = 0; i < N; i++)
        rs[i] = rd(i % 2 ? "a" : "b", BASE + i, i);
    assert_int_equal(write_one(f->c, 1, rs, N), SS_OK);
    assert_int_equal(write_one(f->c, 2, rs, 3), SS_OK);
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    assert_int_equal(store_device_delete(f->c, id), SS_OK);
    int64_t pending = 0;
    assert_int_equal(store_purge_pending(f->c, &pending), SS_OK);
    assert_int_equal(pending, 2);

    size_t deleted = 0;
    int more = 0;
    assert_int_equal(store_purge_step(f->c, 10, &deleted, &more), SS_OK);
    assert_int_equal(deleted, 10);
    assert_int_equal(more, 1);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM readings"), N + 3 - 10);
    assert_int_equal(purge_all(f->c, 10), N - 10);
    assert_int_equal(store_purge_pending(f->c, &pending), SS_OK);
    assert_int_equal(pending, 0);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM readings"), 3);
    assert_int_equal(orphan_readings(f->c), 0);
    /* Nothing left: a step is a no-op. */
    assert_int_equal(store_purge_step(f->c, 10, &deleted, &more), SS_OK);
    assert_int_equal(deleted, 0);
    assert_int_equal(more, 0);
    assert_int_equal(store_purge_step(f->c, 0, &deleted, &more), SS_INVAL);
}

/* The purge list is durable: a store closed half-way through a purge
 * finishes it after it is opened again. */
static void test_purge_resumes_after_reopen(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    enum { N = 40 };
    ss_reading rs[N];
    for (int i = 0; i < N; i++)
        rs[i] = rd("t", BASE + i, i);
    assert_int_equal(write_one(f->c, 1, rs, N), SS_OK);
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    assert_int_equal(store_device_delete(f->c, id), SS_OK);
    size_t deleted = 0;
    int more = 0;
    assert_int_equal(store_purge_step(f->c, 15, &deleted, &more), SS_OK);
    assert_int_equal(deleted, 15);
    fx_close(f);

    assert_int_equal(fx_open(f, STORE_DURABILITY_NORMAL), SS_OK);
    int64_t pending = 0;
    assert_int_equal(store_purge_pending(f->c, &pending), SS_OK);
    assert_int_equal(pending, 1);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM readings"), N - 15);
    assert_int_equal(purge_all(f->c, 15), N - 15);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM readings"), 0);
}

/* The housekeeping thread reports the store healthy at once, and purges a
 * deleted device's readings once kicked, in chunks of the size it is
 * given. */
static void test_maint_thread_purges_and_reports_health(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    enum { N = 45 };
    ss_reading rs[N];
    for (int i = 0; i < N; i++)
        rs[i] = rd("t", BASE + i, i);
    assert_int_equal(write_one(f->c, 1, rs, N), SS_OK);
    store_maint *m = NULL;
    metrics *mx = NULL;
    assert_int_equal(metrics_new(&mx), SS_OK);
    store_maint_options opt = {.purge_chunk_rows = 10, .metrics = mx};
    assert_int_equal(store_maint_start(f->s, &opt, &m), SS_OK);
    assert_true(store_maint_healthy(m, clock_now_ms()));
    assert_false(store_maint_healthy(m, clock_now_ms() + SS_HEALTH_STALE_MS + 1));
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    assert_int_equal(store_device_delete(f->c, id), SS_OK);
    store_maint_kick(m);
    int64_t pending = 1;
    for (int i = 0; i < 500 && (pending || q_int(f->c, "SELECT count(*) FROM readings")); i++) {
        usleep(10000);
        assert_int_equal(store_purge_pending(f->c, &pending), SS_OK);
    }
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM readings"), 0);
    store_maint_stop(m);  /* after the chunk in progress: the metrics are final */
    ss_buf out = SS_BUF_INIT;
    assert_int_equal(metrics_render(mx, &out), SS_OK);
    assert_non_null(strstr(out.data, "\nsensorspace_readings_purged_total 45\n"));
    assert_non_null(strstr(out.data, "\nsensorspace_purge_pending_series 0\n"));
    buf_free(&out);
    metrics_free(mx);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM readings"), 0);
    pending = -1;
    assert_int_equal(store_purge_pending(f->c, &pending), SS_OK);
    assert_int_equal(pending, 0);
}

/* A series created while another waits for the purge never takes its id:
 * the purge would delete the new readings, and the old ones would show up
 * as the new series'. */
static void test_new_series_never_takes_an_id_waiting_for_purge(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    ss_reading a = rd("t", BASE, 1);
    assert_int_equal(write_one(f->c, 1, &a, 1), SS_OK);
    int64_t old_id = q_int(f->c, "SELECT max(id) FROM series");
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    assert_int_equal(store_device_delete(f->c, id), SS_OK);
    assert_int_equal(add_device(f->c, 2, 1, "new", 2), SS_OK);
    ss_reading b = rd("t", BASE + 5, 2);
    assert_int_equal(write_one(f->c, 2, &b, 1), SS_OK);
    assert_true(q_int(f->c, "SELECT max(id) FROM series") > old_id);
    collect *k = channels_of(f->c, 2);
    assert_int_equal(k->n, 1);
    assert_int_equal(k->ch[0].count, 1);
    free(k);
    assert_int_equal(purge_all(f->c, SS_PURGE_CHUNK_ROWS), 1);
    k = channels_of(f->c, 2);
    assert_int_equal(k->n, 1);
    assert_int_equal(k->ch[0].count, 1);
    assert_int_equal(k->ch[0].last_ts, BASE + 5);
    free(k);
}

/* ---- readings --------------------------------------------------------------------- */

static void test_write_all_or_nothing_with_unknown_device(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    assert_int_equal(add_device(f->c, 2, 1, "two", 2), SS_OK);
    ss_reading rs[] = {rd("t", BASE, 1), rd("u", BASE, 2)};
    char d1[SS_ID_LEN + 1], ghost[SS_ID_LEN + 1];
    make_id(d1, TAG_DEVICE, 1);
    make_id(ghost, TAG_DEVICE, 9);
    store_batch b[] = {{.device_id = d1, .readings = rs, .len = 2},
                       {.device_id = ghost, .readings = rs, .len = 2}};
    assert_int_equal(store_write_batches(f->c, b, 2), SS_NOT_FOUND);
    collect *k = channels_of(f->c, 1);
    assert_int_equal(k->n, 0);
    free(k);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM readings"), 0);

    /* The rolled-back series ids must not linger in the cache: device 2
     * takes the ids first, then device 1 must get series of its own. */
    assert_int_equal(write_one(f->c, 2, rs, 2), SS_OK);
    assert_int_equal(write_one(f->c, 1, rs, 1), SS_OK);
    k = channels_of(f->c, 1);
    assert_int_equal(k->n, 1);
    assert_int_equal(k->ch[0].count, 1);
    free(k);
    k = channels_of(f->c, 2);
    assert_int_equal(k->n, 2);
    assert_int_equal(k->ch[0].count, 1);
    assert_int_equal(k->ch[1].count, 1);
    free(k);
    assert_int_equal(orphan_readings(f->c), 0);
}

static void test_write_disk_full_is_full_and_leaves_nothing(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    ss_reading first = rd("t", BASE, 1);
    assert_int_equal(write_one(f->c, 1, &first, 1), SS_OK);
    enum { N = 5000 };
    ss_reading *rs = calloc(N, sizeof *rs);
    assert_non_null(rs);
    for (int i = 0; i < N; i++)
        rs[i] = rd(i % 2 ? "t" : "big", BASE + 1 + i, i);
    int64_t pages = q_int(f->c, "PRAGMA page_count");
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", (long long)pages);
    exec_raw(f->c, sql);
    assert_int_equal(write_one(f->c, 1, rs, N), SS_FULL);
    /* Reads are still served; nothing of the call is left. */
    assert_int_equal(store_ping(f->c), SS_OK);
    collect *k = channels_of(f->c, 1);
    assert_int_equal(k->n, 1);
    assert_int_equal(k->ch[0].count, 1);
    assert_int_equal(k->ch[0].last_ts, BASE);
    free(k);
    /* Nor of its usage: the first write's row only. */
    assert_int_equal(q_int(f->c, "SELECT messages * 1000 + readings FROM usage"), 1001);
    exec_raw(f->c, "PRAGMA max_page_count = 1000000");
    assert_int_equal(write_one(f->c, 1, rs, N), SS_OK);
    assert_int_equal(q_int(f->c, "SELECT messages * 100000 + readings FROM usage"),
                     2 * 100000 + 1 + N);
    k = channels_of(f->c, 1);
    assert_int_equal(k->n, 2);
    assert_int_equal(k->ch[0].count, N / 2);
    assert_int_equal(k->ch[1].count, N / 2 + 1);
    assert_int_equal(k->ch[1].last_ts, BASE + N);
    free(k);
    assert_int_equal(orphan_readings(f->c), 0);
    free(rs);
}

/* More distinct series in one call than the cache holds: it is flushed and
 * refilled mid-transaction, and every series' last reading stays right. */
/* The readings of device `dev`, as (channel, ts, value) rows in key order,
 * one text: what two devices stored is then compared as one string. */
static char *stored_rows(store_conn *c, unsigned dev)
{
    char id[SS_ID_LEN + 1], sql[256];
    make_id(id, TAG_DEVICE, dev);
    snprintf(sql, sizeof sql,
             "SELECT group_concat(s.channel || ' ' || r.ts || ' ' || r.value || ' ' || s.last_ts"
             " || ' ' || s.last_value, ';') FROM (SELECT * FROM readings ORDER BY series_id, ts)"
             " r JOIN series s ON s.id = r.series_id WHERE s.device_id = '%s'",
             id);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(store_sqlite_db(c), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const char *text = (const char *)sqlite3_column_text(st, 0);
    char *out = strdup(text ? text : "");
    sqlite3_finalize(st);
    return out;
}

/* A bulk write (an import's) stores what the same readings store one row a
 * statement: full multi-row statements and a tail, runs of one channel and
 * a channel coming back after another, a ts repeated within one statement
 * and across statements (the later value wins), a reading older than the
 * series' last, and a stored reading replaced. */
static void test_bulk_write_stores_what_the_plain_write_does(void **state)
{
    fx *f = *state;
    enum { N = 3 * SQ_UPSERT_ROWS + 17 };
    add_org_and_device(f->c, 1);
    add_org_and_device(f->c, 2);
    ss_reading old[2] = {rd("a", BASE + 5, -1), rd("c", BASE + 100000, -2)};
    assert_int_equal(write_one(f->c, 1, old, 2), SS_OK);
    assert_int_equal(write_one(f->c, 2, old, 2), SS_OK);
    ss_reading *rs = calloc(N, sizeof *rs);
    assert_non_null(rs);
    for (int i = 0; i < N; i++) {
        const char *ch = i < 100 ? "a" : i < 150 ? "b" : i < 170 ? "a" : "c";
        rs[i] = rd(ch, BASE + i % 90, i);  /* ts come back: replaced */
    }
    rs[20] = rd("a", BASE + 19, 1000);      /* same ts as rs[19], same statement */
    rs[N - 1] = rd("c", BASE + 1, 2000);    /* same ts as an earlier one, in the tail */
    char id1[SS_ID_LEN + 1], id2[SS_ID_LEN + 1];
    make_id(id1, TAG_DEVICE, 1);
    make_id(id2, TAG_DEVICE, 2);
    uint8_t refused[2] = {9, 9};
    store_batch b[2] = {
        {.device_id = id1, .org_id = "", .readings = rs, .len = N, .refused = &refused[0],
         .bulk = 1},
        {.device_id = id2, .org_id = "", .readings = rs, .len = N, .refused = &refused[1]},
    };
    assert_int_equal(store_write_batches(f->c, b, 2), SS_OK);
    assert_int_equal(refused[0], 0);
    char *bulk = stored_rows(f->c, 1), *plain = stored_rows(f->c, 2);
    assert_true(strlen(bulk) > 0);
    assert_string_equal(bulk, plain);
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT r.value FROM readings r JOIN series s ON s.id = r.series_id"
             " WHERE s.device_id = '%s' AND s.channel = 'a' AND r.ts = %lld",
             id1, (long long)(BASE + 19));
    assert_int_equal(q_int(f->c, sql), 1000);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM series"), 6);
    assert_int_equal(q_int(f->c, "SELECT sum(readings) FROM usage"), 2 * (2 + N));
    assert_int_equal(orphan_readings(f->c), 0);
    free(bulk);
    free(plain);
    free(rs);
}

static void test_write_more_series_than_cache_holds(void **state)
{
    fx *f = *state;
    /* More series than the cache holds, spread over devices within the
     * channel limit. */
    enum { DEVICES = 7, PER_DEVICE = 1000, CHANNELS = DEVICES * PER_DEVICE };
    ss_reading *rs = calloc(2 * CHANNELS, sizeof *rs);
    assert_non_null(rs);
    char ids[DEVICES][SS_ID_LEN + 1];
    store_batch b[DEVICES];
    char name[16];
    for (int d = 0; d < DEVICES; d++) {
        add_org_and_device(f->c, (unsigned)d + 1);
        make_id(ids[d], TAG_DEVICE, (unsigned)d + 1);
        ss_reading *mine = rs + 2 * d * PER_DEVICE;
        for (int i = 0; i < PER_DEVICE; i++) {
            int ch = d * PER_DEVICE + i;
            snprintf(name, sizeof name, "c%05d", ch);
            mine[i] = rd(name, BASE, ch);
            mine[PER_DEVICE + i] = rd(name, BASE + 1, ch + 0.5);
        }
        b[d] = (store_batch){.device_id = ids[d], .org_id = "", .readings = mine,
                             .len = 2 * PER_DEVICE};
    }
    assert_int_equal(store_write_batches(f->c, b, DEVICES), SS_OK);
    for (int d = 0; d < DEVICES; d++)
        b[d].len = PER_DEVICE;
    assert_int_equal(store_write_batches(f->c, b, DEVICES), SS_OK);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM series"), CHANNELS);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM readings"), 2 * CHANNELS);
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM series WHERE last_ts = %lld"
             " AND last_value = CAST(substr(channel, 2) AS INTEGER) + 0.5",
             (long long)(BASE + 1));
    assert_int_equal(q_int(f->c, sql), CHANNELS);
    assert_int_equal(orphan_readings(f->c), 0);
    free(rs);
}

/* SS_DEVICE_CHANNELS_MAX: a group that would create channel 1025 writes
 * nothing and is flagged; the groups before and after it that stay within
 * the limit are stored, in the same call as another device's batch. */
static void test_write_refuses_groups_past_the_channel_limit(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    add_org_and_device(f->c, 2);
    enum { MAX = SS_DEVICE_CHANNELS_MAX };
    ss_reading *rs = calloc(MAX + 8, sizeof *rs);
    assert_non_null(rs);
    char name[16];
    for (int i = 0; i < MAX - 2; i++) {
        snprintf(name, sizeof name, "c%d", i);
        rs[i] = rd(name, BASE, i);
    }
    assert_int_equal(write_one(f->c, 1, rs, MAX - 2), SS_OK);
    /* Groups: [old c0, new n1] [new n2, new n3] [old c1, c1 again] [new n1 again] */
    ss_reading g[7] = {rd("c0", BASE + 1, 1), rd("n1", BASE + 1, 2), rd("n2", BASE + 1, 3),
                       rd("n3", BASE + 1, 4), rd("c1", BASE + 1, 5), rd("c1", BASE + 2, 6),
                       rd("n1", BASE + 2, 7)};
    uint32_t ends[4] = {2, 4, 6, 7};
    uint8_t refused[4] = {9, 9, 9, 9};
    uint8_t other_refused = 9;
    char id1[SS_ID_LEN + 1], id2[SS_ID_LEN + 1];
    make_id(id1, TAG_DEVICE, 1);
    make_id(id2, TAG_DEVICE, 2);
    store_batch b[2] = {
        {.device_id = id1, .org_id = "", .readings = g, .len = 7, .group_ends = ends,
         .n_groups = 4, .refused = refused},
        {.device_id = id2, .org_id = "", .readings = g, .len = 4, .refused = &other_refused},
    };
    assert_int_equal(store_write_batches(f->c, b, 2), SS_OK);
    assert_int_equal(refused[0], 0);
    assert_int_equal(refused[1], 1);  /* n2, n3 would make MAX + 1 */
    assert_int_equal(refused[2], 0);
    assert_int_equal(refused[3], 0);  /* n1 exists now */
    assert_int_equal(other_refused, 0);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM series WHERE channel IN ('n2','n3')"), 2);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM series WHERE device_id = '%s'", id1);
    assert_int_equal(q_int(f->c, sql), MAX - 1);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM readings"), (MAX - 2) + 5 + 4);
    /* Usage counts what was stored. */
    assert_int_equal(q_int(f->c, "SELECT sum(readings) FROM usage"), (MAX - 2) + 5 + 4);
    /* Without flags to report it, a refused group fails the call whole. */
    ss_reading two[2] = {rd("x1", BASE, 1), rd("x2", BASE, 2)};
    assert_int_equal(write_one(f->c, 1, two, 2), SS_TOO_LARGE);
    ss_reading one = rd("x1", BASE, 1);
    assert_int_equal(write_one(f->c, 1, &one, 1), SS_OK);
    assert_int_equal(q_int(f->c, sql), MAX);
    assert_int_equal(write_one(f->c, 1, &two[1], 1), SS_TOO_LARGE);
    assert_int_equal(write_one(f->c, 1, &one, 1), SS_OK);  /* existing: still fine */
    free(rs);
}

/* ---- concurrency and the series cache -------------------------------------------------- */

#define THREAD_TXNS 100
#define THREAD_READINGS 20

typedef struct writer {
    store *s;
    unsigned device;
    int64_t ts0;
    int failures;
} writer;

static void *writer_main(void *arg)
{
    writer *w = arg;
    store_conn *c = NULL;
    if (store_conn_acquire(w->s, &c) != SS_OK) {
        w->failures++;
        return NULL;
    }
    ss_reading rs[THREAD_READINGS];
    for (int t = 0; t < THREAD_TXNS; t++) {
        for (int i = 0; i < THREAD_READINGS; i++) {
            int64_t ts = w->ts0 + t * THREAD_READINGS + i;
            /* Own channel, plus one both threads write to. */
            rs[i] = rd(i % 2 ? "own" : "shared", ts, (double)ts);
        }
        if (write_one(c, w->device, rs, THREAD_READINGS) != SS_OK)
            w->failures++;
    }
    store_conn_release(w->s, c);
    return NULL;
}

static void test_concurrent_writers_never_surface_busy(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    assert_int_equal(add_device(f->c, 2, 1, "two", 2), SS_OK);
    writer w[2] = {{.s = f->s, .device = 1, .ts0 = BASE},
                   {.s = f->s, .device = 1, .ts0 = BASE + 1000000}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
    /* Meanwhile this connection keeps reading. */
    for (int i = 0; i < 50; i++)
        assert_int_equal(store_ping(f->c), SS_OK);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(w[0].failures + w[1].failures, 0);
    collect *k = channels_of(f->c, 1);
    assert_int_equal(k->n, 2);
    assert_int_equal(k->ch[0].count + k->ch[1].count, 2 * THREAD_TXNS * THREAD_READINGS);
    assert_int_equal(k->ch[1].count, THREAD_TXNS * THREAD_READINGS);
    assert_int_equal(k->ch[0].last_ts, BASE + 1000000 + THREAD_TXNS * THREAD_READINGS - 1);
    free(k);
}

/* Connection A caches device 1's series ids; connection B deletes the
 * device and a new device with the same id appears. A's next write must
 * land in new series, not in the ids of deleted ones. */
static void test_series_cache_survives_delete_on_other_connection(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    ss_reading a = rd("t", BASE, 1);
    assert_int_equal(write_one(f->c, 1, &a, 1), SS_OK);

    store_conn *b = NULL;
    assert_int_equal(store_conn_acquire(f->s, &b), SS_OK);
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    assert_int_equal(store_device_delete(b, id), SS_OK);
    /* Without the device, A's write is refused and leaves nothing. */
    ss_reading a2 = rd("t", BASE + 1, 2);
    assert_int_equal(write_one(f->c, 1, &a2, 1), SS_NOT_FOUND);
    assert_int_equal(orphan_readings(f->c), 0);

    assert_int_equal(add_device(b, 1, 1, "reborn", 77), SS_OK);
    store_conn_release(f->s, b);
    ss_reading a3 = rd("t", BASE + 2, 3);
    assert_int_equal(write_one(f->c, 1, &a3, 1), SS_OK);
    collect *k = channels_of(f->c, 1);
    assert_int_equal(k->n, 1);
    assert_int_equal(k->ch[0].count, 1);
    assert_int_equal(k->ch[0].last_ts, BASE + 2);
    free(k);
    assert_int_equal(orphan_readings(f->c), 0);
}

/* The same with the delete between two warm writes and no failed write in
 * between to empty the cache by accident. */
static void test_series_cache_dropped_after_delete_and_recreate(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    assert_int_equal(add_device(f->c, 2, 1, "two", 2), SS_OK);
    ss_reading a = rd("t", BASE, 1);
    assert_int_equal(write_one(f->c, 1, &a, 1), SS_OK);

    store_conn *b = NULL;
    assert_int_equal(store_conn_acquire(f->s, &b), SS_OK);
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    assert_int_equal(store_device_delete(b, id), SS_OK);
    assert_int_equal(add_device(b, 1, 1, "reborn", 77), SS_OK);
    /* Device 2 takes the freed series id. */
    assert_int_equal(write_one(b, 2, &a, 1), SS_OK);
    store_conn_release(f->s, b);

    ss_reading a2 = rd("t", BASE + 1, 2);
    assert_int_equal(write_one(f->c, 1, &a2, 1), SS_OK);
    collect *k = channels_of(f->c, 1);
    assert_int_equal(k->n, 1);
    assert_int_equal(k->ch[0].count, 1);
    assert_int_equal(k->ch[0].last_ts, BASE + 1);
    free(k);
    k = channels_of(f->c, 2);
    assert_int_equal(k->n, 1);
    assert_int_equal(k->ch[0].count, 1);
    free(k);
    assert_int_equal(orphan_readings(f->c), 0);
}

/* ---- schema version 2: sessions named, API keys, audit ------------------------ */

/* A database left by a release with schema version 1, holding a user and
 * a session: opening it upgrades the schema and keeps the session. */
static void test_migrate_from_version_1_keeps_sessions(void **state)
{
    fx *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
    char why[256] = "";
    assert_int_equal(store_sqlite_migrate_to(db, 1, why, sizeof why), SS_OK);
    const char *v1_rows =
        "INSERT INTO users VALUES ('000000aa0000000000000001', 'ann@example.com', 'h', 0, 0, 1);"
        "INSERT INTO sessions VALUES (x'0102', '000000aa0000000000000001', 'csrf-old', 5, 9000);"
        "INSERT INTO sessions VALUES (x'0304', '000000aa0000000000000001', 'csrf-old2', 6, 9000);";
    assert_int_equal(sqlite3_exec(db, v1_rows, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    /* Unknown versions are refused; an older target is a no-op. */
    assert_int_equal(store_sqlite_migrate_to(db, store_sqlite_schema_latest() + 1, why, sizeof why),
                     SS_INVAL);
    assert_int_equal(store_sqlite_migrate_to(db, -1, why, sizeof why), SS_INVAL);
    assert_int_equal(store_sqlite_migrate_to(db, 0, why, sizeof why), SS_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);

    assert_int_equal(fx_open(f, STORE_DURABILITY_NORMAL), SS_OK);
    assert_int_equal(store_sqlite_schema_latest(), store_sqlite_schema_latest());
    assert_int_equal(q_int(f->c, "PRAGMA user_version"), store_sqlite_schema_latest());
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM sessions WHERE id = '' AND peer = ''"
                                 " AND last_seen_at = 0"), 2);
    char uid[SS_ID_LEN + 1];
    make_id(uid, TAG_USER, 1);
    collect *k = collect_new();
    assert_int_equal(store_session_list_user(f->c, uid, 0, session_cb, k), SS_OK);
    assert_int_equal(k->n, 2);
    assert_string_equal(k->ids[0], "");
    assert_int_equal(k->ts[0], 6);
    free(k);
    /* Unnamed sessions cannot be deleted by name. */
    assert_int_equal(store_session_delete_id(f->c, uid, ""), SS_NOT_FOUND);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM sessions"), 2);
    /* New sessions and the new tables work in the upgraded file. */
    store_session s = mk_named_session(1, 1, 10, 9000);
    assert_int_equal(store_session_create(f->c, &s), SS_OK);
    store_audit a = {.ts = 1};
    assert_int_equal(store_audit_append(f->c, &a), SS_OK);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM apikeys"), 0);
}

/* ---- org delete, device ids, membership queries ------------------------------- */

static void test_org_delete_refuses_children_then_removes_all_but_audit(void **state)
{
    fx *f = *state;
    add_people(f->c); /* orgs 1 > 2 > 3, 4; users 1-4 */
    assert_int_equal(add_device(f->c, 1, 2, "in2", 1), SS_OK);
    assert_int_equal(add_device(f->c, 2, 2, "in2b", 2), SS_OK);
    assert_int_equal(add_device(f->c, 3, 4, "in4", 3), SS_OK);
    ss_reading rs[] = {rd("t", BASE, 1), rd("h", BASE, 2)};
    for (unsigned d = 1; d <= 3; d++)
        assert_int_equal(write_one(f->c, d, rs, 2), SS_OK);
    assert_int_equal(set_role(f->c, 1, 2, STORE_ROLE_ADMIN), SS_OK);
    assert_int_equal(set_role(f->c, 2, 4, STORE_ROLE_ADMIN), SS_OK);
    assert_int_equal(add_apikey(f->c, 1, 2, 41, 1), SS_OK);
    assert_int_equal(add_apikey(f->c, 2, 4, 42, 1), SS_OK);
    assert_int_equal(add_audit(f->c, 2, 10, "device.create"), SS_OK);

    char o2[SS_ID_LEN + 1], o3[SS_ID_LEN + 1];
    make_id(o2, TAG_ORG, 2);
    make_id(o3, TAG_ORG, 3);
    /* Org 2 still has child 3: nothing is touched. */
    assert_int_equal(store_org_delete(f->c, o2), SS_CONFLICT);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM devices"), 3);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM readings"), 6);

    assert_int_equal(store_org_delete(f->c, o3), SS_OK);
    assert_int_equal(store_org_delete(f->c, o2), SS_OK);
    /* The devices' readings wait for the purge. */
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM readings"), 6);
    assert_int_equal(purge_all(f->c, 3), 4);
    store_org org;
    assert_int_equal(store_org_get(f->c, o2, &org), SS_NOT_FOUND);
    assert_int_equal(store_org_get(f->c, o3, &org), SS_NOT_FOUND);
    assert_int_equal(store_org_delete(f->c, o2), SS_NOT_FOUND);

    /* Org 4's device, readings, member and key are untouched. */
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM devices"), 1);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM series"), 2);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM readings"), 2);
    assert_int_equal(orphan_readings(f->c), 0);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM memberships"), 1);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM apikeys"), 1);
    store_device d;
    char dev1[SS_ID_LEN + 1];
    make_id(dev1, TAG_DEVICE, 1);
    assert_int_equal(store_device_get(f->c, dev1, &d), SS_NOT_FOUND);
    store_apikey key;
    char k1[SS_ID_LEN + 1];
    make_id(k1, TAG_APIKEY, 1);
    assert_int_equal(store_apikey_get(f->c, k1, &key), SS_NOT_FOUND);
    /* The audit log keeps the deleted org's entries. */
    collect *k = collect_new();
    assert_int_equal(store_audit_list(f->c, o2, 0, 100, 10, audit_cb, k), SS_OK);
    assert_int_equal(k->n, 1);
    free(k);
    /* The parent is now childless and deletable; the users remain. */
    char o1[SS_ID_LEN + 1];
    make_id(o1, TAG_ORG, 1);
    assert_int_equal(store_org_delete(f->c, o1), SS_OK);
    int64_t n = 0;
    assert_int_equal(store_user_count(f->c, &n), SS_OK);
    assert_int_equal(n, 4);
}

/* A writer on another connection cached the series of an org's device; the
 * org is deleted and a device with the same id comes back. */
static void test_org_delete_drops_series_cache_of_other_connections(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    ss_reading a = rd("t", BASE, 1);
    assert_int_equal(write_one(f->c, 1, &a, 1), SS_OK);

    store_conn *b = NULL;
    assert_int_equal(store_conn_acquire(f->s, &b), SS_OK);
    char o1[SS_ID_LEN + 1];
    make_id(o1, TAG_ORG, 1);
    assert_int_equal(store_org_delete(b, o1), SS_OK);
    assert_int_equal(add_org(b, 1, "again", -1), SS_OK);
    assert_int_equal(add_device(b, 2, 1, "other", 2), SS_OK);
    assert_int_equal(write_one(b, 2, &a, 1), SS_OK); /* may reuse the freed series id */
    assert_int_equal(add_device(b, 1, 1, "reborn", 1), SS_OK);
    store_conn_release(f->s, b);

    ss_reading a2 = rd("t", BASE + 1, 2);
    assert_int_equal(write_one(f->c, 1, &a2, 1), SS_OK);
    collect *k = channels_of(f->c, 1);
    assert_int_equal(k->n, 1);
    assert_int_equal(k->ch[0].count, 1);
    assert_int_equal(k->ch[0].last_ts, BASE + 1);
    free(k);
    k = channels_of(f->c, 2);
    assert_int_equal(k->n, 1);
    assert_int_equal(k->ch[0].count, 1);
    assert_int_equal(k->ch[0].last_ts, BASE);
    free(k);
    assert_int_equal(orphan_readings(f->c), 0);
}

/* ---- API keys --------------------------------------------------------------------- */

static void test_apikey_duplicates_unknown_org_and_bad_scopes(void **state)
{
    fx *f = *state;
    add_org_tree(f->c);
    assert_int_equal(add_apikey(f->c, 1, 1, 7, 1), SS_OK);
    /* Same hash, new id. */
    assert_int_equal(add_apikey(f->c, 2, 1, 7, 1), SS_EXISTS);
    /* Same id, new hash. */
    assert_int_equal(add_apikey(f->c, 1, 1, 8, 1), SS_EXISTS);
    assert_int_equal(add_apikey(f->c, 3, 99, 9, 1), SS_NOT_FOUND);
    store_apikey k = {.scopes = STORE_SCOPE_MANAGE << 1};
    make_id(k.id, TAG_APIKEY, 4);
    make_id(k.org_id, TAG_ORG, 1);
    fill_hash(k.key_hash, 11);
    assert_int_equal(store_apikey_create(f->c, &k), SS_INVAL);
    k.scopes = 0; /* a key with no scope is useless but harmless */
    assert_int_equal(store_apikey_create(f->c, &k), SS_OK);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM apikeys"), 2);
}

/* ---- usage, quotas, session records ------------------------------------------ */

/* A batch of device `device` in org `org`. */
static store_batch mk_batch(char dev[SS_ID_LEN + 1], char org[SS_ID_LEN + 1], unsigned device,
                            unsigned org_n, const ss_reading *rs, size_t n, const char *protocol,
                            int64_t received_at)
{
    make_id(dev, TAG_DEVICE, device);
    make_id(org, TAG_ORG, org_n);
    return (store_batch){.device_id = dev, .org_id = org, .readings = rs, .len = n,
                         .protocol = protocol, .received_at = received_at};
}

/* Two orgs: devices 1 and 2 in org 1, device 3 in org 2. */
static void add_two_orgs_three_devices(store_conn *c)
{
    assert_int_equal(add_org(c, 1, "one", -1), SS_OK);
    assert_int_equal(add_org(c, 2, "two", -1), SS_OK);
    assert_int_equal(add_device(c, 1, 1, "d1", 1), SS_OK);
    assert_int_equal(add_device(c, 2, 1, "d2", 2), SS_OK);
    assert_int_equal(add_device(c, 3, 2, "d3", 3), SS_OK);
}

static void test_write_batches_add_usage_per_org_hour_protocol(void **state)
{
    fx *f = *state;
    add_two_orgs_three_devices(f->c);
    ss_reading rs[] = {rd("t", BASE, 1), rd("u", BASE, 2)};
    char d[6][SS_ID_LEN + 1], o[6][SS_ID_LEN + 1];
    store_batch b[] = {
        /* Same org, hour and protocol from two devices: one row. */
        mk_batch(d[0], o[0], 1, 1, rs, 2, "http", HOUR(0)),
        mk_batch(d[1], o[1], 2, 1, rs, 1, "http", HOUR(1) - 1),
        /* Another protocol: its own row. */
        mk_batch(d[2], o[2], 1, 1, rs, 1, "tcp", HOUR(0) + 5),
        /* The hour of received_at, not of the readings' ts. */
        mk_batch(d[3], o[3], 2, 1, rs, 2, "http", HOUR(1)),
        /* No protocol counts as "http"; another org its own row. */
        mk_batch(d[4], o[4], 3, 2, rs, 1, NULL, HOUR(0) + 7),
        mk_batch(d[5], o[5], 1, 1, rs, 1, NULL, HOUR(0) + 9),
    };
    assert_int_equal(store_write_batches(f->c, b, 6), SS_OK);

    usage_list *l = usage_of(f->c, 1, HOUR(0), HOUR(24), STORE_HOUR_MS);
    assert_int_equal(l->n, 3);
    assert_usage(&l->u[0], HOUR(0), "http", 3, 4);
    assert_usage(&l->u[1], HOUR(0), "tcp", 1, 1);
    assert_usage(&l->u[2], HOUR(1), "http", 1, 2);
    assert_int_equal(l->u[0].bytes_in + l->u[0].bytes_out + l->u[0].rejected +
                         l->u[0].api_requests, 0);
    free(l);
    l = usage_of(f->c, 2, HOUR(0), HOUR(24), STORE_HOUR_MS);
    assert_int_equal(l->n, 1);
    assert_usage(&l->u[0], HOUR(0), "http", 1, 1);
    free(l);

    /* A later commit adds to the same rows. */
    assert_int_equal(store_write_batches(f->c, b, 1), SS_OK);
    l = usage_of(f->c, 1, HOUR(0), HOUR(1), STORE_HOUR_MS);
    assert_int_equal(l->n, 2);
    assert_usage(&l->u[0], HOUR(0), "http", 4, 6);
    free(l);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM usage"), 4);
}

/* More distinct (org, hour, protocol) keys in one call than the in-memory
 * sums hold: every key still ends with its exact count, and the usage adds
 * up to what was stored. */
static void test_write_batches_usage_with_many_keys_in_one_call(void **state)
{
    fx *f = *state;
    add_two_orgs_three_devices(f->c);
    enum { KEYS = 150, PER_KEY = 3 };
    store_batch *b = calloc(KEYS * PER_KEY, sizeof *b);
    ss_reading *rs = calloc(KEYS * PER_KEY, sizeof *rs);
    char dev[SS_ID_LEN + 1], org[SS_ID_LEN + 1];
    make_id(dev, TAG_DEVICE, 1);
    make_id(org, TAG_ORG, 1);
    assert_non_null(b);
    assert_non_null(rs);
    /* Keys interleaved, so each comes back after the sums have filled. */
    for (size_t i = 0; i < KEYS * PER_KEY; i++) {
        rs[i] = rd("t", BASE + (int64_t)i, (double)i);
        b[i] = (store_batch){.device_id = dev, .org_id = org, .readings = &rs[i], .len = 1,
                             .protocol = "udp", .received_at = HOUR(i % KEYS) + 1};
    }
    assert_int_equal(store_write_batches(f->c, b, KEYS * PER_KEY), SS_OK);
    free(b);
    free(rs);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM usage"), KEYS);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM usage WHERE messages = 3 AND readings = 3"),
                     KEYS);
    assert_int_equal(q_int(f->c, "SELECT sum(readings) FROM usage"),
                     q_int(f->c, "SELECT count(*) FROM readings"));
}

static void test_write_batches_failed_adds_no_usage(void **state)
{
    fx *f = *state;
    add_two_orgs_three_devices(f->c);
    ss_reading r = rd("t", BASE, 1);
    char d[3][SS_ID_LEN + 1], o[3][SS_ID_LEN + 1];

    /* A device deleted since its token was checked fails the whole call. */
    assert_int_equal(store_device_delete(f->c, mk_batch(d[0], o[0], 2, 1, &r, 1, "http", 0)
                                                   .device_id),
                     SS_OK);
    store_batch b[] = {mk_batch(d[1], o[1], 1, 1, &r, 1, "http", HOUR(0)),
                       mk_batch(d[2], o[2], 2, 1, &r, 1, "http", HOUR(0))};
    assert_int_equal(store_write_batches(f->c, b, 2), SS_NOT_FOUND);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM usage"), 0);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM readings"), 0);

    /* A protocol or org too long is refused, with nothing written. */
    b[1].device_id = b[0].device_id;
    b[1].protocol = "123456789";
    assert_int_equal(store_write_batches(f->c, b, 2), SS_INVAL);
    b[1].protocol = "12345678";
    char long_org[SS_ID_LEN + 2];
    memset(long_org, 'b', SS_ID_LEN + 1);
    long_org[SS_ID_LEN + 1] = '\0';
    b[1].org_id = long_org;
    assert_int_equal(store_write_batches(f->c, b, 2), SS_INVAL);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM usage"), 0);

    /* Nothing of the failed calls lingers: the next one counts only itself. */
    b[1].org_id = b[0].org_id;
    assert_int_equal(store_write_batches(f->c, b, 2), SS_OK);
    usage_list *l = usage_of(f->c, 1, HOUR(0), HOUR(1), STORE_HOUR_MS);
    assert_int_equal(l->n, 2);
    assert_usage(&l->u[0], HOUR(0), "12345678", 1, 1);
    assert_usage(&l->u[1], HOUR(0), "http", 1, 1);
    free(l);
}

static void test_usage_add_accumulates_all_counters(void **state)
{
    fx *f = *state;
    store_usage u[] = {mk_usage(1, HOUR(2), "https", 1), mk_usage(1, HOUR(2), "https", 2),
                       mk_usage(1, HOUR(2), "mqtt", 5)};
    assert_int_equal(store_usage_add(f->c, u, 3), SS_OK);
    assert_int_equal(store_usage_add(f->c, u, 1), SS_OK);
    usage_list *l = usage_of(f->c, 1, HOUR(0), HOUR(24), STORE_HOUR_MS);
    assert_int_equal(l->n, 2);
    const store_usage *h = &l->u[0];
    assert_int_equal(h->bucket, HOUR(2));
    assert_string_equal(h->protocol, "https");
    assert_id(h->org_id, TAG_ORG, 1);
    assert_int_equal(h->bytes_in, 400);
    assert_int_equal(h->bytes_out, 40);
    assert_int_equal(h->messages, 4);
    assert_int_equal(h->readings, 8);
    assert_int_equal(h->rejected, 12);
    assert_int_equal(h->api_requests, 16);
    assert_usage(&l->u[1], HOUR(2), "mqtt", 5, 10);
    free(l);
    /* Usage needs no org row (history outlives orgs). */
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM orgs"), 0);
}

static void test_usage_add_bad_delta_writes_nothing(void **state)
{
    fx *f = *state;
    store_usage u[] = {mk_usage(1, HOUR(2), "https", 1), mk_usage(1, HOUR(2) + 1, "https", 1)};
    assert_int_equal(store_usage_add(f->c, u, 2), SS_INVAL);
    u[1] = mk_usage(1, HOUR(3), "", 1);
    assert_int_equal(store_usage_add(f->c, u, 2), SS_INVAL);
    memset(u[1].protocol, 'p', sizeof u[1].protocol);
    assert_int_equal(store_usage_add(f->c, u, 2), SS_INVAL);
    assert_int_equal(store_usage_add(f->c, NULL, 1), SS_INVAL);
    assert_int_equal(store_usage_add(f->c, NULL, 0), SS_OK);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM usage"), 0);
}

/* A hand-edited cycle (impossible through the API) ends, each org once. */
static void test_org_subtree_cycle_ends(void **state)
{
    fx *f = *state;
    add_org_forest(f->c);
    exec_raw(f->c, "PRAGMA foreign_keys = OFF");
    exec_raw(f->c, "UPDATE orgs SET parent_id = '000000bb0000000000000003'"
                   " WHERE id = '000000bb0000000000000001'");
    exec_raw(f->c, "PRAGMA foreign_keys = ON");
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_ORG, 1);
    tree_list *t = calloc(1, sizeof *t);
    assert_int_equal(store_org_subtree(f->c, id, subtree_cb, t), SS_OK);
    assert_int_equal(t->n, 4);
    assert_id(t->ids[0], TAG_ORG, 1);
    free(t);
}

typedef struct quota_list {
    size_t n;
    store_quota q[COLLECT_MAX];
} quota_list;

static int quota_cb(void *ctx, const store_quota *q)
{
    quota_list *l = ctx;
    if (l->n < COLLECT_MAX)
        l->q[l->n] = *q;
    l->n++;
    return 0;
}

static store_quota mk_quota(unsigned org, int64_t dev, int64_t rd_day, int64_t bytes_day)
{
    store_quota q = {.max_devices = dev, .max_readings_per_day = rd_day,
                     .max_bytes_per_day = bytes_day};
    make_id(q.org_id, TAG_ORG, org);
    return q;
}

static void assert_quota(const store_quota *got, const store_quota *want)
{
    assert_string_equal(got->org_id, want->org_id);
    assert_int_equal(got->max_devices, want->max_devices);
    assert_int_equal(got->max_readings_per_day, want->max_readings_per_day);
    assert_int_equal(got->max_bytes_per_day, want->max_bytes_per_day);
}

static void test_quota_set_get_list_and_remove(void **state)
{
    fx *f = *state;
    add_two_orgs_three_devices(f->c);
    store_quota got;
    memset(&got, 0x55, sizeof got);
    store_quota q1 = mk_quota(1, 10, 0, 5000), q2 = mk_quota(2, 0, 100, 0);
    assert_int_equal(store_quota_get(f->c, q1.org_id, &got), SS_OK);
    assert_string_equal(got.org_id, q1.org_id);
    assert_int_equal(got.max_devices + got.max_readings_per_day + got.max_bytes_per_day, 0);

    assert_int_equal(store_quota_set(f->c, &q1), SS_OK);
    assert_int_equal(store_quota_set(f->c, &q2), SS_OK);
    assert_int_equal(store_quota_get(f->c, q1.org_id, &got), SS_OK);
    assert_quota(&got, &q1);
    /* Set again replaces. */
    q1 = mk_quota(1, 11, 12, INT64_MAX);
    assert_int_equal(store_quota_set(f->c, &q1), SS_OK);
    assert_int_equal(store_quota_get(f->c, q1.org_id, &got), SS_OK);
    assert_quota(&got, &q1);

    quota_list *l = calloc(1, sizeof *l);
    assert_int_equal(store_quota_list(f->c, quota_cb, l), SS_OK);
    assert_int_equal(l->n, 2);
    assert_quota(&l->q[0], &q1);
    assert_quota(&l->q[1], &q2);
    free(l);

    /* All zero removes; removing none is fine. */
    store_quota zero = mk_quota(2, 0, 0, 0);
    assert_int_equal(store_quota_set(f->c, &zero), SS_OK);
    assert_int_equal(store_quota_set(f->c, &zero), SS_OK);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM quotas"), 1);
    assert_int_equal(store_quota_get(f->c, q2.org_id, &got), SS_OK);
    assert_int_equal(got.max_readings_per_day, 0);
}

static void test_quota_bad_values_and_unknown_org(void **state)
{
    fx *f = *state;
    add_two_orgs_three_devices(f->c);
    store_quota q = mk_quota(1, -1, 0, 0);
    assert_int_equal(store_quota_set(f->c, &q), SS_INVAL);
    q = mk_quota(1, 0, -1, 0);
    assert_int_equal(store_quota_set(f->c, &q), SS_INVAL);
    q = mk_quota(1, 0, 0, -1);
    assert_int_equal(store_quota_set(f->c, &q), SS_INVAL);
    q = mk_quota(9, 1, 0, 0);
    assert_int_equal(store_quota_set(f->c, &q), SS_NOT_FOUND);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM quotas"), 0);
}

static void test_acct_session_put_bad_record_writes_nothing(void **state)
{
    fx *f = *state;
    store_acct_session s[2] = {mk_acct(1, 1, "device", 100, 0), mk_acct(2, 1, "", 100, 0)};
    assert_int_equal(store_acct_session_put(f->c, s, 2), SS_INVAL);
    s[1] = mk_acct(2, 1, "user", 100, 0);
    s[1].id[0] = '\0';
    assert_int_equal(store_acct_session_put(f->c, s, 2), SS_INVAL);
    s[1] = mk_acct(2, 1, "user", 100, 0);
    memset(s[1].addr, 'a', sizeof s[1].addr);
    assert_int_equal(store_acct_session_put(f->c, s, 2), SS_INVAL);
    assert_int_equal(store_acct_session_put(f->c, NULL, 1), SS_INVAL);
    assert_int_equal(store_acct_session_put(f->c, NULL, 0), SS_OK);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM acct_sessions"), 0);
}

static void test_acct_session_close_stale_ends_active_as_crash(void **state)
{
    fx *f = *state;
    store_acct_session s[] = {mk_acct(1, 1, "device", 100, 150), mk_acct(2, 1, "user", 300, 0),
                              mk_acct(3, 2, "device", 200, 0)};
    assert_int_equal(store_acct_session_put(f->c, s, 3), SS_OK);
    assert_int_equal(store_acct_session_close_stale(f->c, 9000), SS_OK);
    acct_list *l = acct_of(f->c, 1, NULL, 0, 10);
    assert_int_equal(l->n, 2);
    assert_int_equal(l->s[0].ended_at, 9000);
    assert_string_equal(l->s[0].end_reason, "crash");
    assert_int_equal(l->s[0].messages, 6);
    assert_int_equal(l->s[1].ended_at, 150);
    assert_string_equal(l->s[1].end_reason, "closed");
    free(l);
    l = acct_of(f->c, 2, NULL, 1, 10);
    assert_int_equal(l->n, 0);
    free(l);
    /* Nothing left active: a second call changes nothing. */
    assert_int_equal(store_acct_session_close_stale(f->c, 9999), SS_OK);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM acct_sessions WHERE ended_at = 9999"), 0);
}

/* The session record written with a batch counts what that transaction
 * stored, as the usage does: a group refused for the channel limit adds
 * nothing to it, and a batch that stored nothing writes no record. */
static void test_batch_session_record_counts_only_what_was_stored(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    enum { MAX = SS_DEVICE_CHANNELS_MAX };
    ss_reading *rs = calloc(MAX - 1, sizeof *rs);
    assert_non_null(rs);
    char name[16];
    for (int i = 0; i < MAX - 1; i++) {
        snprintf(name, sizeof name, "c%d", i);
        rs[i] = rd(name, BASE, i);
    }
    assert_int_equal(write_one(f->c, 1, rs, MAX - 1), SS_OK);
    free(rs);
    char dev[SS_ID_LEN + 1], org[SS_ID_LEN + 1];
    make_id(dev, TAG_DEVICE, 1);
    make_id(org, TAG_ORG, 1);
    store_acct_session before = mk_acct(7, 1, "device", 100, 0);
    /* Groups: [old c0, new n1] stored, [new n2, new n3] refused. */
    ss_reading g[4] = {rd("c0", BASE + 1, 1), rd("n1", BASE + 1, 2), rd("n2", BASE + 1, 3),
                       rd("n3", BASE + 1, 4)};
    uint32_t ends[2] = {2, 4};
    uint8_t refused[2] = {9, 9};
    store_batch b = {.device_id = dev, .org_id = org, .readings = g, .len = 4,
                     .protocol = "tcp", .received_at = BASE, .session = &before,
                     .group_ends = ends, .n_groups = 2, .refused = refused};
    /* Refused whole first (n2, n3 alone): no record. */
    store_batch whole = b;
    whole.readings = g + 2;
    whole.len = 2;
    whole.group_ends = NULL;
    whole.n_groups = 0;
    uint8_t whole_refused = 9;
    whole.refused = &whole_refused;
    assert_int_equal(store_write_batches(f->c, &whole, 1), SS_OK);
    assert_int_equal(whole_refused, 1);
    acct_list *l = acct_of(f->c, 1, NULL, 0, 10);
    assert_int_equal(l->n, 0);
    free(l);
    assert_int_equal(store_write_batches(f->c, &b, 1), SS_OK);
    assert_int_equal(refused[0], 0);
    assert_int_equal(refused[1], 1);
    l = acct_of(f->c, 1, NULL, 0, 10);
    assert_int_equal(l->n, 1);
    assert_int_equal(l->s[0].messages, before.messages + 1);
    assert_int_equal(l->s[0].readings, before.readings + 2);
    assert_int_equal(l->s[0].refused, before.refused);
    free(l);
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT sum(readings) FROM usage WHERE org_id = '%s' AND protocol = 'tcp'", org);
    assert_int_equal(q_int(f->c, sql), 2);
}

/* Deleting an org drops its quota but keeps its usage and session records
 * (billing history). */
static void test_org_delete_removes_quota_keeps_usage_and_sessions(void **state)
{
    fx *f = *state;
    add_two_orgs_three_devices(f->c);
    store_quota q1 = mk_quota(1, 5, 0, 0), q2 = mk_quota(2, 7, 0, 0);
    assert_int_equal(store_quota_set(f->c, &q1), SS_OK);
    assert_int_equal(store_quota_set(f->c, &q2), SS_OK);
    ss_reading r = rd("t", BASE, 1);
    char d[SS_ID_LEN + 1], o[SS_ID_LEN + 1];
    store_batch b = mk_batch(d, o, 3, 2, &r, 1, "tcp", HOUR(0));
    assert_int_equal(store_write_batches(f->c, &b, 1), SS_OK);
    store_acct_session s = mk_acct(1, 2, "device", 100, 0);
    assert_int_equal(store_acct_session_put(f->c, &s, 1), SS_OK);

    assert_int_equal(store_org_delete(f->c, o), SS_OK);
    store_quota got;
    assert_int_equal(store_quota_get(f->c, o, &got), SS_OK);
    assert_int_equal(got.max_devices, 0);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM quotas"), 1);
    usage_list *l = usage_of(f->c, 2, HOUR(0), HOUR(1), STORE_HOUR_MS);
    assert_int_equal(l->n, 1);
    assert_usage(&l->u[0], HOUR(0), "tcp", 1, 1);
    free(l);
    acct_list *a = acct_of(f->c, 2, NULL, 0, 10);
    assert_int_equal(a->n, 1);
    free(a);
}

/* A database left at schema version 2 gains the accounting tables and
 * keeps its rows. */
static void test_migrate_from_version_2_adds_accounting(void **state)
{
    fx *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
    char why[256] = "";
    assert_int_equal(store_sqlite_migrate_to(db, 2, why, sizeof why), SS_OK);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO orgs VALUES ('000000bb0000000000000001',"
                                      " 'old', NULL, 1)", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "SELECT * FROM usage", NULL, NULL, NULL), SQLITE_ERROR);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);

    assert_int_equal(fx_open(f, STORE_DURABILITY_NORMAL), SS_OK);
    assert_int_equal(q_int(f->c, "PRAGMA user_version"), store_sqlite_schema_latest());
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM orgs"), 1);
    store_quota q = mk_quota(1, 3, 0, 0);
    assert_int_equal(store_quota_set(f->c, &q), SS_OK);
    store_usage u = mk_usage(1, HOUR(0), "http", 1);
    assert_int_equal(store_usage_add(f->c, &u, 1), SS_OK);
    store_acct_session s = mk_acct(1, 1, "device", 1, 0);
    assert_int_equal(store_acct_session_put(f->c, &s, 1), SS_OK);
}

static void test_migrate_from_version_3_keeps_usage(void **state)
{
    fx *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
    char why[256] = "";
    assert_int_equal(store_sqlite_migrate_to(db, 3, why, sizeof why), SS_OK);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO usage VALUES ('000000bb0000000000000001', 0,"
                                      " 'http', 1, 2, 3, 4, 5, 6), ('000000bb0000000000000001',"
                                      " 3600000, 'tcp', 0, 0, 1, 1, 0, 0)", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);

    assert_int_equal(fx_open(f, STORE_DURABILITY_NORMAL), SS_OK);
    assert_int_equal(q_int(f->c, "PRAGMA user_version"), store_sqlite_schema_latest());
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM usage"), 2);
    assert_int_equal(q_int(f->c, "SELECT bytes_in + bytes_out + messages + readings + rejected"
                                 " + api_requests FROM usage WHERE protocol = 'http'"), 21);
    /* The key is still unique: the upsert adds to the row that was there. */
    store_usage u = mk_usage(1, 0, "http", 1);
    assert_int_equal(store_usage_add(f->c, &u, 1), SS_OK);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM usage"), 2);
    assert_int_equal(q_int(f->c, "SELECT readings FROM usage WHERE protocol = 'http'"), 4 + 2);
    assert_int_equal(sqlite3_exec(store_sqlite_db(f->c), "INSERT INTO usage(org_id, hour, protocol)"
                                  " VALUES ('000000bb0000000000000001', 0, 'http')",
                                  NULL, NULL, NULL), SQLITE_CONSTRAINT_UNIQUE);
}

/* ---- per-minute rollups ------------------------------------------------------- */

/* Rollup rows that differ from the sums of the readings as they stand
 * (sum to a relative 1e-9: the rollups add per minute), plus rows of
 * minutes without readings: 0 when the rollups follow the readings. */
static int64_t rollups_off(store_conn *c)
{
    return q_int(c,
                 "WITH g AS (SELECT series_id, ts - ts % " STR(SQ_ROLLUP_MS) " AS minute,"
                 " count(*) AS n, sum(value) AS total, min(value) AS lo, max(value) AS hi,"
                 " min(ts) AS t0, max(ts) AS t1 FROM readings GROUP BY 1, 2),"
                 " want AS (SELECT g.*, r0.value AS fv, r1.value AS lv FROM g"
                 " JOIN readings r0 ON r0.series_id = g.series_id AND r0.ts = g.t0"
                 " JOIN readings r1 ON r1.series_id = g.series_id AND r1.ts = g.t1)"
                 " SELECT (SELECT count(*) FROM want w LEFT JOIN rollups u"
                 " ON u.series_id = w.series_id AND u.minute = w.minute WHERE u.n IS NULL"
                 " OR u.n <> w.n OR abs(u.total - w.total) > 1e-9 * (1 + abs(w.total))"
                 " OR u.lo <> w.lo OR u.hi <> w.hi OR u.first_value <> w.fv"
                 " OR u.last_value <> w.lv)"
                 " + (SELECT count(*) FROM rollups) - (SELECT count(*) FROM want)");
}

/* Writes n readings of channel ch to device dev, plain or bulk. */
static void write_run(store_conn *c, unsigned dev, const ss_reading *rs, size_t n, int bulk)
{
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, dev);
    store_batch b = {.device_id = id, .org_id = "", .readings = rs, .len = n, .bulk = bulk};
    assert_int_equal(store_write_batches(c, &b, 1), SS_OK);
}

/* Every way a reading is written keeps its minute's rollup equal to the
 * readings': in order, older than the stored ones, a ts again (in one
 * statement, one call, and a later call), more minutes in one call than
 * the connection gathers before writing them out, plain and bulk. */
static void test_rollups_follow_every_write(void **state)
{
    fx *f = *state;
    enum { MINUTES = 3 * SQ_ROLLUP_SLOTS / 2, N = 4 * MINUTES };
    add_org_and_device(f->c, 1);
    add_org_and_device(f->c, 2);
    ss_reading *rs = calloc(N, sizeof *rs);
    assert_non_null(rs);
    for (int bulk = 0; bulk <= 1; bulk++) {
        unsigned dev = 1 + (unsigned)bulk;
        /* In order: four readings a minute, two channels. */
        for (int i = 0; i < N; i++)
            rs[i] = rd(i % 2 ? "a" : "b", BASE + (int64_t)i * 15000, i * 0.25);
        write_run(f->c, dev, rs, N, bulk);
        assert_int_equal(rollups_off(f->c), 0);
        /* Again, later, with some of the same ts mixed in (replaced). */
        for (int i = 0; i < N; i++) {
            int64_t ts = BASE + (int64_t)N * 15000 + (int64_t)i * 7000;
            rs[i] = rd("a", i % 5 == 4 ? ts - 7000 : ts, -i * 0.5);
        }
        write_run(f->c, dev, rs, N, bulk);
        assert_int_equal(rollups_off(f->c), 0);
        /* Older than everything stored, between stored ones, and stored ts
         * replaced, across many minutes in one call. */
        for (int i = 0; i < N; i++)
            rs[i] = rd("b", BASE - 3 * MINUTE + (int64_t)i * 11003, 1e6 - i);
        write_run(f->c, dev, rs, N, bulk);
        assert_int_equal(rollups_off(f->c), 0);
        /* One reading: a replaced one only, then a new one. */
        rs[0] = rd("a", BASE + 15000, 42);
        write_run(f->c, dev, rs, 1, bulk);
        rs[0] = rd("a", BASE + (int64_t)N * 60000, 43);
        write_run(f->c, dev, rs, 1, bulk);
        assert_int_equal(rollups_off(f->c), 0);
    }
    assert_true(q_int(f->c, "SELECT count(*) FROM rollups") > MINUTES);
    free(rs);
}

/* Two connections writing one series in turn: each sees the other's
 * readings as stored, so one sent again by the other is a replacement,
 * not a reading to add. */
static void test_rollups_with_two_writers(void **state)
{
    fx *f = *state;
    store_conn *other = NULL;
    assert_int_equal(store_conn_acquire(f->s, &other), SS_OK);
    add_org_and_device(f->c, 1);
    ss_reading r = rd("v", BASE, 1);
    write_run(f->c, 1, &r, 1, 0);
    r = rd("v", BASE + 1000, 2);
    write_run(other, 1, &r, 1, 0);
    r = rd("v", BASE + 1000, 5); /* the other's ts, newer than this one's last */
    write_run(f->c, 1, &r, 1, 0);
    r = rd("v", BASE + 2000, 7);
    write_run(other, 1, &r, 1, 0);
    assert_int_equal(rollups_off(f->c), 0);
    assert_int_equal(q_int(f->c, "SELECT n * 100 + total FROM rollups"), 3 * 100 + 13);
    /* The other's reading is the minute's newest: one between it and this
     * connection's own last one is not the minute's last. */
    r = rd("v", BASE + 30000, 30);
    write_run(other, 1, &r, 1, 0);
    r = rd("v", BASE + 20000, 20);
    write_run(f->c, 1, &r, 1, 0);
    assert_int_equal(rollups_off(f->c), 0);
    store_conn_release(f->s, other);
}

/* One device's uploads of two time ranges, interleaved call by call (two
 * connections of one device): each range's readings are older than the
 * series' newest but newer than everything of their own minute, and the
 * minutes stay right; a reading sent again inside such a minute too. */
static void test_rollups_of_interleaved_ranges(void **state)
{
    fx *f = *state;
    enum { N = 400, CALLS = 30 };
    add_org_and_device(f->c, 1);
    ss_reading rs[N];
    for (int k = 0; k < CALLS; k++) {
        for (int part = 0; part < 2; part++) {
            int64_t t0 = BASE + (int64_t)part * 100 * MINUTE + (int64_t)k * N * 700;
            for (int i = 0; i < N; i++)
                rs[i] = rd("v", t0 + (int64_t)i * 700, k * 1000 + i + part * 0.5);
            if (k % 7 == 6)
                rs[N / 2] = rd("v", t0 - 700 * 3, -5);  /* sent again: replaces */
            write_run(f->c, 1, rs, N, 0);
        }
        assert_int_equal(rollups_off(f->c), 0);
    }
}


/* A range delete in small steps drops the minutes it covers and sums the
 * ones at its edges again; a purged device leaves no rollup. */
static void test_rollups_follow_deletes_and_the_purge(void **state)
{
    fx *f = *state;
    enum { N = 2000 };
    add_org_and_device(f->c, 1);
    ss_reading *rs = calloc(N, sizeof *rs);
    assert_non_null(rs);
    for (int i = 0; i < N; i++)
        rs[i] = rd(i % 3 ? "a" : "b", BASE + (int64_t)i * 1700, (i * 37) % 101);
    write_run(f->c, 1, rs, N, 0);
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    store_range r = {.device_id = id, .channel = NULL, .from = BASE + 61234, .to = BASE + 999999};
    size_t deleted = 0, total = 0;
    int more = 1;
    while (more) {
        assert_int_equal(store_delete_readings(f->c, &r, 97, &deleted, &more), SS_OK);
        total += deleted;
        assert_int_equal(rollups_off(f->c), 0);
    }
    assert_true(total > 500);
    /* One reading inside a minute (i = 601: channel a, 1,021,700 ms in). */
    r = (store_range){.device_id = id, .channel = "a", .from = BASE + 1021700,
                      .to = BASE + 1021701};
    assert_int_equal(store_delete_readings(f->c, &r, 10, &deleted, &more), SS_OK);
    assert_int_equal(deleted, 1);
    assert_int_equal(rollups_off(f->c), 0);
    /* All of one channel: the range ends at the largest ts. */
    r = (store_range){.device_id = id, .channel = "b", .from = 0, .to = INT64_MAX};
    for (more = 1; more;)
        assert_int_equal(store_delete_readings(f->c, &r, 1000, &deleted, &more), SS_OK);
    assert_int_equal(rollups_off(f->c), 0);
    assert_int_equal(store_device_delete(f->c, id), SS_OK);
    purge_all(f->c, 333);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM rollups"), 0);
    free(rs);
}

typedef struct bucket_list {
    size_t n;
    int64_t ts[4096];
    double v[4096];
} bucket_list;

static int bucket_cb(void *ctx, int64_t ts, double v)
{
    bucket_list *l = ctx;
    assert_true(l->n < 4096);
    l->ts[l->n] = ts;
    l->v[l->n++] = v;
    return 0;
}

/* The buckets of [from, to) computed here from the raw points. */
static void buckets_by_hand(store_conn *c, const store_query *q, int64_t every, store_agg fn,
                            bucket_list *out)
{
    static bucket_list pts;
    pts.n = 0;
    store_query all = *q;
    all.desc = 0;
    all.limit = 4096;
    assert_int_equal(store_query_points(c, &all, bucket_cb, &pts), SS_OK);
    assert_true(pts.n < 4096);
    out->n = 0;
    for (size_t i = 0; i < pts.n;) {
        int64_t start = pts.ts[i] - pts.ts[i] % every;
        long double sum = 0;
        double lo = pts.v[i], hi = pts.v[i], first = pts.v[i], last = pts.v[i];
        size_t n = 0;
        for (; i < pts.n && pts.ts[i] - start < every; i++, n++) {
            sum += pts.v[i];
            lo = pts.v[i] < lo ? pts.v[i] : lo;
            hi = pts.v[i] > hi ? pts.v[i] : hi;
            last = pts.v[i];
        }
        double v = fn == STORE_AGG_AVG ? (double)(sum / n) : fn == STORE_AGG_SUM ? (double)sum
                 : fn == STORE_AGG_COUNT ? (double)n : fn == STORE_AGG_MIN ? lo
                 : fn == STORE_AGG_MAX ? hi : fn == STORE_AGG_FIRST ? first : last;
        out->ts[out->n] = start;
        out->v[out->n++] = v;
    }
}

/* A bucketed query a whole number of minutes wide answers what the raw
 * readings do, over a range that starts and ends inside a minute, every
 * fn, both orders, and a limit; and it reads the rollups (a rollup changed
 * behind the store's back shows in its answer, not in a width of 90 s). */
static void test_bucketed_query_reads_rollups_as_the_readings(void **state)
{
    fx *f = *state;
    enum { N = 3000 };
    add_org_and_device(f->c, 1);
    ss_reading *rs = calloc(N, sizeof *rs);
    assert_non_null(rs);
    for (int i = 0; i < N; i++)
        rs[i] = rd("v", BASE + (int64_t)i * 1300 + (i % 7) * 100, ((i * 7919) % 1000) / 8.0);
    write_run(f->c, 1, rs, N, 1);
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    static bucket_list got, want;
    for (int fn = STORE_AGG_AVG; fn <= STORE_AGG_LAST; fn++) {
        for (int desc = 0; desc <= 1; desc++) {
            store_query q = {.device_id = id, .channel = "v", .from = BASE + 45678,
                             .to = BASE + (int64_t)N * 1300 - 34567, .limit = 4096,
                             .desc = desc};
            got.n = 0;
            assert_int_equal(store_query_buckets(f->c, &q, 3 * MINUTE, fn, bucket_cb, &got),
                             SS_OK);
            buckets_by_hand(f->c, &q, 3 * MINUTE, fn, &want);
            assert_int_equal(got.n, want.n);
            for (size_t i = 0; i < want.n; i++) {
                size_t j = desc ? want.n - 1 - i : i;
                assert_int_equal(got.ts[i], want.ts[j]);
                assert_true(fabs(got.v[i] - want.v[j]) <= 1e-9 * (1 + fabs(want.v[j])));
            }
            q.limit = 5;
            got.n = 0;
            assert_int_equal(store_query_buckets(f->c, &q, 3 * MINUTE, fn, bucket_cb, &got),
                             SS_OK);
            assert_int_equal(got.n, 5);
        }
    }
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE rollups SET hi = 1e9 WHERE minute = %lld",
             (long long)(BASE + 10 * MINUTE));
    exec_raw(f->c, sql);
    store_query q = {.device_id = id, .channel = "v", .from = BASE, .to = BASE + 20 * MINUTE,
                     .limit = 100};
    got.n = 0;
    assert_int_equal(store_query_buckets(f->c, &q, 2 * MINUTE, STORE_AGG_MAX, bucket_cb, &got),
                     SS_OK);
    size_t changed = 0;
    for (size_t i = 0; i < got.n; i++) {
        int holds = got.ts[i] <= BASE + 10 * MINUTE && BASE + 10 * MINUTE < got.ts[i] + 2 * MINUTE;
        assert_true(holds ? got.v[i] == 1e9 : got.v[i] < 1e9);
        changed += holds;
    }
    assert_int_equal(changed, 1);
    got.n = 0;
    assert_int_equal(store_query_buckets(f->c, &q, 90000, STORE_AGG_MAX, bucket_cb, &got), SS_OK);
    for (size_t i = 0; i < got.n; i++)
        assert_true(got.v[i] < 1e9);
    free(rs);
}

/* Readings stored before the rollups existed are summed by the migration. */
static void test_migrate_from_version_11_sums_the_readings(void **state)
{
    fx *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
    char why[256] = "";
    assert_int_equal(store_sqlite_migrate_to(db, 11, why, sizeof why), SS_OK);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO readings VALUES (1, 60000000, 1),"
                                      " (1, 60000001, 3), (1, 60059999, -2), (1, 60060000, 7),"
                                      " (2, 60000500, 5)", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    assert_int_equal(fx_open(f, STORE_DURABILITY_NORMAL), SS_OK);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM rollups"), 3);
    assert_int_equal(q_int(f->c, "SELECT n * 1000000 + total * 1000 + (lo + 10) * 100"
                                 " + (hi * 10) + first_value FROM rollups"
                                 " WHERE series_id = 1 AND minute = 60000000"),
                     3 * 1000000 + 2 * 1000 + 8 * 100 + 30 + 1);
    assert_int_equal(q_int(f->c, "SELECT last_value FROM rollups WHERE series_id = 1"
                                 " AND minute = 60000000"), -2);
    assert_int_equal(rollups_off(f->c), 0);
}

/* max_devices counts the devices of the org's whole subtree, and is
 * checked by the create itself, so no two creates can pass it together. */
/* The plan of a statement, every row's detail joined. */
static void query_plan(store_conn *c, stmt_id id, char *out, size_t cap)
{
    char sql[1024];
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", sq_stmt_sql[id]);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(store_sqlite_db(c), sql, -1, &st, NULL), SQLITE_OK);
    out[0] = '\0';
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s; ", (const char *)sqlite3_column_text(st, 3));
    }
    sqlite3_finalize(st);
}

/* An export page walks a device's series by the (device_id, channel)
 * index and each series' readings by their primary key: a year of a
 * thousand devices is never scanned, nor sorted, also once ANALYZE has
 * statistics of a store that size (here: 1000 devices, 2 channels, a
 * reading every 3.65 days for a year). */
static void test_export_statements_use_the_indexes(void **state)
{
    fx *f = *state;
    exec_raw(f->c, "PRAGMA foreign_keys = OFF;"
                   "WITH RECURSIVE d(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM d WHERE i < 1000)"
                   " INSERT INTO series(id, device_id, channel, last_ts, last_value)"
                   " SELECT 2 * i, printf('%024x', i), 'temp', 0, 0 FROM d"
                   " UNION ALL SELECT 2 * i + 1, printf('%024x', i), 'rh', 0, 0 FROM d;"
                   "WITH RECURSIVE t(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM t WHERE j < 99)"
                   " INSERT INTO readings SELECT s.id, 1700000000000 + j * 315360000, j FROM series s, t;"
                   "ANALYZE;");
    char plan[512];
    query_plan(f->c, STMT_EXPORT_SERIES, plan, sizeof plan);
    assert_non_null(strstr(plan, "SEARCH series USING COVERING INDEX"));
    assert_non_null(strstr(plan, "(device_id=? AND channel>?)"));
    assert_null(strstr(plan, "TEMP B-TREE"));
    query_plan(f->c, STMT_POINTS_ASC, plan, sizeof plan);
    assert_non_null(strstr(plan, "SEARCH readings USING PRIMARY KEY (series_id=? AND ts>? AND ts<?)"));
    assert_null(strstr(plan, "TEMP B-TREE"));
}

static void test_device_create_respects_max_devices_up_the_tree(void **state)
{
    fx *f = *state;
    add_two_orgs_three_devices(f->c);
    assert_int_equal(add_org(f->c, 3, "child of one", 1), SS_OK);
    store_quota q = mk_quota(1, 3, 0, 0);
    assert_int_equal(store_quota_set(f->c, &q), SS_OK);
    assert_int_equal(add_device(f->c, 4, 3, "in the child", 4), SS_OK);  /* 3 of 3 */
    assert_int_equal(add_device(f->c, 5, 1, "one too many", 5), SS_QUOTA);
    assert_int_equal(add_device(f->c, 6, 3, "one too many below", 6), SS_QUOTA);
    assert_int_equal(add_device(f->c, 7, 2, "another tree", 7), SS_OK);
    assert_int_equal(q_int(f->c, "SELECT count(*) FROM devices"), 5);
    /* a free place again, or no limit: creates pass */
    char d[SS_ID_LEN + 1];
    make_id(d, TAG_DEVICE, 4);
    assert_int_equal(store_device_delete(f->c, d), SS_OK);
    assert_int_equal(add_device(f->c, 5, 1, "fits now", 5), SS_OK);
    q = mk_quota(1, 0, 0, 0);
    assert_int_equal(store_quota_set(f->c, &q), SS_OK);
    assert_int_equal(add_device(f->c, 6, 3, "unlimited", 6), SS_OK);
    /* a limit below the child counts only the child's subtree */
    q = mk_quota(3, 1, 0, 0);
    assert_int_equal(store_quota_set(f->c, &q), SS_OK);
    assert_int_equal(add_device(f->c, 8, 3, "child full", 8), SS_QUOTA);
    assert_int_equal(add_device(f->c, 9, 1, "parent free", 9), SS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TB(fn) cmocka_unit_test_setup_teardown(fn, setup_bare, teardown)
        TB(test_open_creates_schema_and_reopen_keeps_version),
        TB(test_open_refuses_newer_schema),
        TB(test_open_url_with_absolute_path),
        TB(test_open_rejects_bad_urls_with_reason),
        TB(test_open_unknown_scheme_names_the_known_ones),
        TB(test_open_missing_data_dir_is_store_error),
        TB(test_open_series_apart_in_a_second_file),
        TB(test_durability_full_syncs_every_commit),
        TB(test_durability_normal_in_wal),
        T(test_pool_reuses_released_connections),
        T(test_session_on_a_full_disk_is_held_until_space_returns),
        T(test_held_sessions_written_without_blocking_lookups),
        T(test_full_is_cleared_only_by_a_write),
        T(test_org_cycle_does_not_loop),
        T(test_device_delete_removes_readings),
        T(test_device_delete_purges_in_bounded_chunks),
        T(test_purge_resumes_after_reopen),
        T(test_new_series_never_takes_an_id_waiting_for_purge),
        T(test_maint_thread_purges_and_reports_health),
        T(test_write_all_or_nothing_with_unknown_device),
        T(test_write_disk_full_is_full_and_leaves_nothing),
        T(test_write_more_series_than_cache_holds),
        T(test_rollups_follow_every_write),
        T(test_rollups_with_two_writers),
        T(test_rollups_of_interleaved_ranges),
        T(test_rollups_follow_deletes_and_the_purge),
        T(test_bucketed_query_reads_rollups_as_the_readings),
        TB(test_migrate_from_version_11_sums_the_readings),
        T(test_bulk_write_stores_what_the_plain_write_does),
        T(test_write_refuses_groups_past_the_channel_limit),
        T(test_concurrent_writers_never_surface_busy),
        T(test_series_cache_survives_delete_on_other_connection),
        T(test_series_cache_dropped_after_delete_and_recreate),
        TB(test_migrate_from_version_1_keeps_sessions),
        T(test_org_delete_refuses_children_then_removes_all_but_audit),
        T(test_org_delete_drops_series_cache_of_other_connections),
        T(test_apikey_duplicates_unknown_org_and_bad_scopes),
        T(test_write_batches_add_usage_per_org_hour_protocol),
        T(test_write_batches_usage_with_many_keys_in_one_call),
        T(test_write_batches_failed_adds_no_usage),
        T(test_usage_add_accumulates_all_counters),
        T(test_usage_add_bad_delta_writes_nothing),
        T(test_org_subtree_cycle_ends),
        T(test_quota_set_get_list_and_remove),
        T(test_quota_bad_values_and_unknown_org),
        T(test_acct_session_put_bad_record_writes_nothing),
        T(test_acct_session_close_stale_ends_active_as_crash),
        T(test_batch_session_record_counts_only_what_was_stored),
        T(test_org_delete_removes_quota_keeps_usage_and_sessions),
        TB(test_migrate_from_version_2_adds_accounting),
        TB(test_migrate_from_version_3_keeps_usage),
        T(test_device_create_respects_max_devices_up_the_tree),
        T(test_export_statements_use_the_indexes),
#undef T
#undef TB
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
