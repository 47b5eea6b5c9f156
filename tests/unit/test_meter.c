/* Unit tests of src/aaa/meter.c against the real SQLite store: session
 * records and usage deltas reach the store; bytes reach the quota. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aaa/meter.h"
#include "aaa/quota.h"
#include "aaa/secret.h"
#include "core/clock.h"
#include "core/err.h"
#include "store/sqlite_internal.h"
#include "store/store.h"

typedef struct fixture {
    char dir[64];
    store *s;
    uv_loop_t loop;
    quota *q;
    meter *m;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/ss-meter-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(secret_init(), 0);
    store_options opt = {.url = "sqlite:", .data_dir = fx->dir,
                         .durability = STORE_DURABILITY_NORMAL};
    char err[256];
    assert_int_equal(store_open(&opt, &fx->s, err, sizeof err), 0);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(quota_new(&fx->q), 0);
    assert_int_equal(quota_set_org(fx->q, "org1", ""), 0);
    assert_int_equal(meter_new(&fx->loop, fx->s, fx->q, &fx->m), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    meter_free(fx->m);
    quota_free(fx->q);
    store_close(fx->s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

typedef struct found {
    store_acct_session recs[8];
    size_t n;
    store_usage usage[8];
    size_t n_usage;
} found;

static int take_session(void *ctx, const store_acct_session *s)
{
    found *f = ctx;
    if (f->n < 8)
        f->recs[f->n++] = *s;
    return 0;
}

static int take_usage(void *ctx, const store_usage *u)
{
    found *f = ctx;
    if (f->n_usage < 8)
        f->usage[f->n_usage++] = *u;
    return 0;
}

static void read_back(fixture *fx, const char *org, found *f)
{
    store_conn *c;
    assert_int_equal(store_conn_acquire(fx->s, &c), 0);
    const char *orgs[] = {org};
    int64_t now = clock_now_ms();
    assert_int_equal(store_acct_session_list(c, org, NULL, 0, 8, take_session, f), 0);
    assert_int_equal(store_usage_query(c, orgs, 1, now - STORE_DAY_MS, now + STORE_HOUR_MS,
                                       STORE_HOUR_MS, take_usage, f),
                     0);
    store_conn_release(fx->s, c);
}

static void device_record_and_usage_reach_the_store(void **state)
{
    fixture *fx = *state;
    meter_session s;
    meter_session_open(fx->m, &s, "device", "dev1", "org1", "tcp", "127.0.0.1");
    meter_bytes(fx->m, &s, "org1", "tcp", 100, 20);
    meter_stored(fx->m, &s, 3);
    meter_refused(fx->m, &s, "org1", "tcp", 0);
    meter_refused(fx->m, &s, "org1", "tcp", 5);
    meter_session_end(fx->m, &s, "revoked");
    meter_session_end(fx->m, &s, "closed");  /* a second end changes nothing */
    meter_stop(fx->m, "shutdown");
    found f = {0};
    read_back(fx, "org1", &f);
    assert_int_equal(f.n, 1);
    store_acct_session *r = &f.recs[0];
    assert_string_equal(r->kind, "device");
    assert_string_equal(r->principal_id, "dev1");
    assert_string_equal(r->end_reason, "revoked");
    assert_true(r->ended_at >= r->started_at && r->ended_at > 0);
    assert_int_equal(r->bytes_in, 100);
    assert_int_equal(r->bytes_out, 20);
    assert_int_equal(r->messages, 3);
    assert_int_equal(r->readings, 3);
    assert_int_equal(r->refused, 6);
    assert_int_equal(f.n_usage, 1);
    assert_string_equal(f.usage[0].protocol, "tcp");
    assert_int_equal(f.usage[0].bytes_in, 100);
    assert_int_equal(f.usage[0].bytes_out, 20);
    assert_int_equal(f.usage[0].rejected, 6);
    assert_int_equal(f.usage[0].readings, 0);  /* readings come from commits */
}

static void open_records_are_closed_at_stop_and_bytes_hit_quota(void **state)
{
    fixture *fx = *state;
    quota_limits l = {.max_bytes_per_day = 50};
    assert_int_equal(quota_set_limits(fx->q, "org1", &l), 0);
    meter_session s;
    meter_session_open(fx->m, &s, "apikey", "key1", "org1", "https", "::1");
    meter_api_request(fx->m, &s, "org1", "https");
    meter_bytes(fx->m, &s, "org1", "https", 30, 30);
    /* bytes reach the quota at the flush, not per request */
    assert_int_equal(quota_reserve_readings(fx->q, "org1", 0, clock_now_ms(), NULL), 0);
    meter_flush(fx->m);
    assert_int_equal(quota_reserve_readings(fx->q, "org1", 0, clock_now_ms(), NULL), SS_QUOTA);
    meter_session *u = meter_user_session(fx->m, "login1", "user1", "org1", "http", "127.0.0.1");
    assert_non_null(u);
    assert_ptr_equal(meter_user_session(fx->m, "login1", "user1", "org1", "http", "127.0.0.1"), u);
    /* another org of the same login is another record */
    meter_session *elsewhere = meter_user_session(fx->m, "login1", "user1", "", "http", "127.0.0.1");
    assert_ptr_not_equal(elsewhere, u);
    meter_api_request(fx->m, u, "org1", "http");
    meter_stop(fx->m, "shutdown");
    uv_run(&fx->loop, UV_RUN_DEFAULT);  /* the flush above, then the last write */
    found f = {0};
    read_back(fx, "org1", &f);
    assert_int_equal(f.n, 2);  /* the app's and the person's, in org1 */
    for (size_t i = 0; i < f.n; i++) {
        assert_string_equal(f.recs[i].end_reason, "shutdown");
        assert_int_equal(f.recs[i].api_requests, 1);
    }
    store_conn *c;
    found people = {0};
    assert_int_equal(store_conn_acquire(fx->s, &c), 0);
    assert_int_equal(store_acct_session_list(c, "org1", "user", 0, 8, take_session, &people), 0);
    store_conn_release(fx->s, c);
    assert_int_equal(people.n, 1);
    assert_string_equal(people.recs[0].principal_id, "user1");
    assert_int_equal(strlen(people.recs[0].id), SS_ID_LEN);
}

static void flush_on_the_worker_pool(void **state)
{
    fixture *fx = *state;
    meter_session s;
    meter_session_open(fx->m, &s, "device", "dev2", "org1", "http", "127.0.0.1");
    meter_bytes(fx->m, &s, "org1", "http", 7, 9);
    meter_flush(fx->m);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    /* the flush runs on a worker; wait for its completion on the loop */
    for (int i = 0; i < 200; i++) {
        found f = {0};
        read_back(fx, "org1", &f);
        if (f.n == 1 && f.recs[0].ended_at == 0 && f.recs[0].bytes_in == 7)
            break;
        usleep(10000);
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    }
    found f = {0};
    read_back(fx, "org1", &f);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.recs[0].ended_at, 0);  /* still active */
    meter_session_end(fx->m, &s, "closed");
    meter_stop(fx->m, "shutdown");
}

static void a_users_logins_end_at_once_but_the_kept_one(void **state)
{
    fixture *fx = *state;
    assert_non_null(meter_user_session(fx->m, "login1", "user1", "org1", "http", "::1"));
    assert_non_null(meter_user_session(fx->m, "login2", "user1", "org1", "http", "::1"));
    assert_non_null(meter_user_session(fx->m, "login3", "user2", "org1", "http", "::1"));
    assert_non_null(meter_user_session(fx->m, "login4", "user1", "org1", "http", "::1"));
    meter_user_end_all(fx->m, "user1", "login1", "revoked");
    meter_user_end(fx->m, "login3", "revoked");
    meter_flush(fx->m);
    size_t revoked = 0, active = 0;
    for (int i = 0; i < 200 && revoked + active < 4; i++) {  /* the flush runs on a worker */
        usleep(10000);
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        found f = {0};
        read_back(fx, "org1", &f);
        revoked = active = 0;
        for (size_t k = 0; k < f.n; k++) {
            revoked += f.recs[k].ended_at > 0 && strcmp(f.recs[k].end_reason, "revoked") == 0;
            active += f.recs[k].ended_at == 0 && strcmp(f.recs[k].principal_id, "user1") == 0;
        }
    }
    assert_int_equal(revoked, 3);
    assert_int_equal(active, 1);  /* login1's */
    meter_stop(fx->m, "shutdown");
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    found g = {0};
    read_back(fx, "org1", &g);
    assert_int_equal(g.n, 4);
}

/* Makes the store refuse writes (SQLITE_READONLY, as a full disk or a
 * held lock would fail them) or take them again. The pool holds the one
 * connection every call here uses in turn. */
static void store_writable(fixture *fx, int on)
{
    store_conn *c;
    assert_int_equal(store_conn_acquire(fx->s, &c), 0);
    assert_int_equal(sqlite3_exec(store_sqlite_db(c),
                                  on ? "PRAGMA query_only = 0" : "PRAGMA query_only = 1", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    store_conn_release(fx->s, c);
}

static int count_record(void *ctx, const store_acct_session *s)
{
    (void)s;
    (*(size_t *)ctx)++;
    return 0;
}

static void a_failed_write_is_kept_and_merged_into_the_next(void **state)
{
    fixture *fx = *state;
    store_writable(fx, 0);
    meter_session s;
    meter_session_open(fx->m, &s, "device", "dev1", "org1", "http", "127.0.0.1");
    meter_bytes(fx->m, &s, "org1", "http", 100, 20);
    meter_refused(fx->m, &s, "org1", "http", 0);
    meter_bytes(fx->m, NULL, "org1", "udp", 7, 0);
    meter_flush(fx->m);
    uv_run(&fx->loop, UV_RUN_ONCE);  /* the write fails on the worker pool */
    found none = {0};
    read_back(fx, "org1", &none);
    assert_int_equal(none.n, 0);
    assert_int_equal(none.n_usage, 0);
    /* more counts meanwhile, then the store takes writes again */
    meter_bytes(fx->m, &s, "org1", "http", 5, 5);
    meter_refused(fx->m, &s, "org1", "http", 2);
    meter_bytes(fx->m, NULL, "org1", "udp", 3, 0);
    meter_session_end(fx->m, &s, "closed");
    store_writable(fx, 1);
    meter_stop(fx->m, "shutdown");
    found f = {0};
    read_back(fx, "org1", &f);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.recs[0].end_reason, "closed");
    assert_int_equal(f.recs[0].bytes_in, 105);
    assert_int_equal(f.recs[0].bytes_out, 25);
    assert_int_equal(f.recs[0].refused, 3);
    assert_int_equal(f.n_usage, 2);  /* http, udp: one row each, nothing counted twice */
    assert_string_equal(f.usage[0].protocol, "http");
    assert_int_equal(f.usage[0].bytes_in, 105);
    assert_int_equal(f.usage[0].bytes_out, 25);
    assert_int_equal(f.usage[0].rejected, 3);
    assert_string_equal(f.usage[1].protocol, "udp");
    assert_int_equal(f.usage[1].bytes_in, 10);
}

static void records_past_the_limit_drop_the_oldest_and_usage_keeps_their_counts(void **state)
{
    fixture *fx = *state;
    store_writable(fx, 0);
    size_t n = METER_HELD_RECORDS_MAX + 10;
    for (size_t i = 0; i < n; i++) {
        meter_session s;
        meter_session_open(fx->m, &s, "device", "dev1", "org1", "tcp", "127.0.0.1");
        meter_bytes(fx->m, &s, "org1", "tcp", 1, 0);
        meter_session_end(fx->m, &s, "closed");
    }
    meter_flush(fx->m);
    uv_run(&fx->loop, UV_RUN_ONCE);
    store_writable(fx, 1);
    meter_stop(fx->m, "shutdown");
    store_conn *c;
    size_t recs = 0;
    assert_int_equal(store_conn_acquire(fx->s, &c), 0);
    assert_int_equal(store_acct_session_list(c, "org1", NULL, 0, n, count_record, &recs), 0);
    store_conn_release(fx->s, c);
    assert_int_equal(recs, METER_HELD_RECORDS_MAX);
    found f = {0};
    read_back(fx, "org1", &f);
    assert_int_equal(f.n_usage, 1);
    assert_int_equal(f.usage[0].bytes_in, (int64_t)n);
}

static void records_a_crash_left_open_end_at_the_first_write_that_fits(void **state)
{
    fixture *fx = *state;
    store_conn *c;
    store_acct_session old = {.id = "stale1", .kind = "device", .principal_id = "dev9",
                              .org_id = "org1", .protocol = "tcp", .started_at = 1000};
    assert_int_equal(store_conn_acquire(fx->s, &c), 0);
    assert_int_equal(store_acct_session_put(c, &old, 1), 0);
    store_conn_release(fx->s, c);
    store_writable(fx, 0);
    meter_close_stale(fx->m, clock_now_ms());
    meter_flush(fx->m);
    uv_run(&fx->loop, UV_RUN_ONCE);  /* fails: the record stays open */
    meter_session s;  /* a record of this process, started after */
    meter_session_open(fx->m, &s, "device", "dev1", "org1", "tcp", "127.0.0.1");
    store_writable(fx, 1);
    meter_flush(fx->m);
    uv_run(&fx->loop, UV_RUN_ONCE);
    found f = {0};
    read_back(fx, "org1", &f);
    assert_int_equal(f.n, 2);
    for (size_t i = 0; i < f.n; i++) {
        int stale = strcmp(f.recs[i].id, "stale1") == 0;
        assert_string_equal(f.recs[i].end_reason, stale ? "crash" : "");
        assert_true(stale ? f.recs[i].ended_at > 0 : f.recs[i].ended_at == 0);
    }
    meter_session_end(fx->m, &s, "closed");
    meter_stop(fx->m, "shutdown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(device_record_and_usage_reach_the_store, setup, teardown),
        cmocka_unit_test_setup_teardown(open_records_are_closed_at_stop_and_bytes_hit_quota, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(flush_on_the_worker_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(a_users_logins_end_at_once_but_the_kept_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_failed_write_is_kept_and_merged_into_the_next, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            records_past_the_limit_drop_the_oldest_and_usage_keeps_their_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(records_a_crash_left_open_end_at_the_first_write_that_fits,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
