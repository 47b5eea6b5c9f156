/* Unit tests of src/aaa/conn_registry: connections registered by principal,
 * revoked from any thread, closed on the loop thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "aaa/conn_registry.h"
#include "core/err.h"

#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "bbbbbbbbbbbbbbbbbbbbbbbb"
#define THREADS 4
#define REVOKES_PER_THREAD 200

typedef struct fixture {
    uv_loop_t loop;
    conn_registry *reg;
} fixture;

/* One connection of a test: counts how often it was told to close. */
typedef struct fake_conn {
    conn_reg_entry entry;
    int revoked;
    struct fake_conn *also_close;   /* closed from inside this one's callback */
    conn_registry *reg;
} fake_conn;

static void on_revoked(conn_reg_entry *e)
{
    fake_conn *c = e->data;
    c->revoked++;
    /* What an owner does when one close takes others with it. */
    if (c->also_close)
        conn_registry_remove(c->reg, &c->also_close->entry);
}

static void conn_init(fake_conn *c, conn_registry *reg)
{
    memset(c, 0, sizeof *c);
    c->entry.on_revoked = on_revoked;
    c->entry.data = c;
    c->reg = reg;
}

static int setup(void **state)
{
    static fixture f;
    memset(&f, 0, sizeof f);
    if (uv_loop_init(&f.loop) || conn_registry_new(&f.loop, &f.reg))
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->reg)
        conn_registry_close(f->reg);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return uv_loop_close(&f->loop) == 0 ? 0 : -1;
}

/* Runs the loop until the async has been delivered. */
static void deliver(fixture *f)
{
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void revoke_closes_every_connection_of_the_principal_only(void **state)
{
    fixture *f = *state;
    fake_conn a1, a2, b1;
    conn_init(&a1, f->reg);
    conn_init(&a2, f->reg);
    conn_init(&b1, f->reg);
    conn_registry_add(f->reg, &a1.entry, ID_A);
    conn_registry_add(f->reg, &a2.entry, ID_A);
    conn_registry_add(f->reg, &b1.entry, ID_B);
    assert_int_equal(conn_registry_count(f->reg, ID_A), 2);
    assert_int_equal(conn_registry_count(f->reg, ID_B), 1);
    assert_int_equal(conn_registry_revoke(f->reg, ID_A), SS_OK);
    /* handed to the loop: nothing happens on the calling thread */
    assert_int_equal(a1.revoked + a2.revoked, 0);
    deliver(f);
    assert_int_equal(a1.revoked, 1);
    assert_int_equal(a2.revoked, 1);
    assert_int_equal(b1.revoked, 0);
    assert_int_equal(conn_registry_count(f->reg, ID_A), 0);
    assert_int_equal(conn_registry_count(f->reg, ID_B), 1);
    assert_false(a1.entry.registered);
    conn_registry_remove(f->reg, &b1.entry);
}

/* A key derived from an id (a person's access key, "a:<id>", longer
 * than an id) is a principal of its own: revoking it closes only what
 * registered under it, and revoking the id leaves it alone. */
static void derived_key_is_apart_from_its_id(void **state)
{
    fixture *f = *state;
    fake_conn by_id, by_key;
    conn_init(&by_id, f->reg);
    conn_init(&by_key, f->reg);
    const char *key = "a:" ID_A;
    assert_true(strlen(key) > SS_ID_LEN && strlen(key) <= CONN_REG_KEY_MAX);
    conn_registry_add(f->reg, &by_id.entry, ID_A);
    conn_registry_add(f->reg, &by_key.entry, key);
    assert_int_equal(conn_registry_count(f->reg, key), 1);
    assert_int_equal(conn_registry_revoke(f->reg, key), SS_OK);
    deliver(f);
    assert_int_equal(by_key.revoked, 1);
    assert_int_equal(by_id.revoked, 0);
    conn_registry_add(f->reg, &by_key.entry, key);
    assert_int_equal(conn_registry_revoke(f->reg, ID_A), SS_OK);
    deliver(f);
    assert_int_equal(by_id.revoked, 1);
    assert_int_equal(by_key.revoked, 1);
    conn_registry_remove(f->reg, &by_key.entry);
}

/* The watcher hears each revoked principal, connected or not, before its
 * connections are closed; none after it is removed. */
typedef struct watch_log {
    int calls;
    char last[SS_ID_LEN + 1];
    int conn_revoked_before;
    fake_conn *conn;
} watch_log;

static void on_watch(void *ctx, const char *principal)
{
    watch_log *w = ctx;
    w->calls++;
    snprintf(w->last, sizeof w->last, "%s", principal);
    w->conn_revoked_before = w->conn ? w->conn->revoked : 0;
}

static void watcher_hears_every_revocation_first(void **state)
{
    fixture *f = *state;
    watch_log w = {0};
    fake_conn a;
    conn_init(&a, f->reg);
    w.conn = &a;
    conn_registry_add(f->reg, &a.entry, ID_A);
    conn_registry_watch(f->reg, on_watch, &w);
    conn_registry_revoke(f->reg, ID_B);  /* nobody connected */
    deliver(f);
    assert_int_equal(w.calls, 1);
    assert_string_equal(w.last, ID_B);
    conn_registry_revoke(f->reg, ID_A);
    deliver(f);
    assert_int_equal(w.calls, 2);
    assert_string_equal(w.last, ID_A);
    assert_int_equal(w.conn_revoked_before, 0);
    assert_int_equal(a.revoked, 1);
    conn_registry_watch(f->reg, NULL, NULL);
    conn_registry_revoke(f->reg, ID_B);
    deliver(f);
    assert_int_equal(w.calls, 2);
}

static void removed_connection_is_not_closed(void **state)
{
    fixture *f = *state;
    fake_conn a;
    conn_init(&a, f->reg);
    conn_registry_add(f->reg, &a.entry, ID_A);
    conn_registry_remove(f->reg, &a.entry);
    /* removing twice is harmless */
    conn_registry_remove(f->reg, &a.entry);
    assert_int_equal(conn_registry_count(f->reg, ID_A), 0);
    conn_registry_revoke(f->reg, ID_A);
    deliver(f);
    assert_int_equal(a.revoked, 0);
}

static void revoke_of_unknown_principal_closes_nothing(void **state)
{
    fixture *f = *state;
    fake_conn a;
    conn_init(&a, f->reg);
    conn_registry_add(f->reg, &a.entry, ID_A);
    assert_int_equal(conn_registry_revoke(f->reg, ID_B), SS_OK);
    assert_int_equal(conn_registry_revoke(f->reg, ""), SS_OK);
    deliver(f);
    assert_int_equal(a.revoked, 0);
    assert_int_equal(conn_registry_count(f->reg, ID_A), 1);
    conn_registry_remove(f->reg, &a.entry);
}

static void connection_registered_after_delivery_survives(void **state)
{
    fixture *f = *state;
    fake_conn old, fresh;
    conn_init(&old, f->reg);
    conn_init(&fresh, f->reg);
    conn_registry_add(f->reg, &old.entry, ID_A);
    conn_registry_revoke(f->reg, ID_A);
    deliver(f);
    /* a device that reconnects with its new token is not closed by the old
     * revocation */
    conn_registry_add(f->reg, &fresh.entry, ID_A);
    deliver(f);
    assert_int_equal(old.revoked, 1);
    assert_int_equal(fresh.revoked, 0);
    conn_registry_remove(f->reg, &fresh.entry);
}

static void callback_may_remove_another_entry_of_the_same_principal(void **state)
{
    fixture *f = *state;
    fake_conn a, b, c;
    conn_init(&a, f->reg);
    conn_init(&b, f->reg);
    conn_init(&c, f->reg);
    conn_registry_add(f->reg, &a.entry, ID_A);
    conn_registry_add(f->reg, &b.entry, ID_A);
    conn_registry_add(f->reg, &c.entry, ID_A);
    /* c is first in the list (added last); its close takes b with it */
    c.also_close = &b;
    conn_registry_revoke(f->reg, ID_A);
    deliver(f);
    assert_int_equal(c.revoked, 1);
    assert_int_equal(b.revoked, 0);
    assert_int_equal(a.revoked, 1);
    assert_int_equal(conn_registry_count(f->reg, ID_A), 0);
}

static void many_revocations_fold_into_one_delivery(void **state)
{
    fixture *f = *state;
    fake_conn a, b;
    conn_init(&a, f->reg);
    conn_init(&b, f->reg);
    conn_registry_add(f->reg, &a.entry, ID_A);
    conn_registry_add(f->reg, &b.entry, ID_B);
    for (int i = 0; i < 10; i++) {
        conn_registry_revoke(f->reg, ID_A);
        conn_registry_revoke(f->reg, ID_B);
    }
    deliver(f);
    assert_int_equal(a.revoked, 1);
    assert_int_equal(b.revoked, 1);
}

static void re_adding_moves_the_entry_to_the_new_principal(void **state)
{
    fixture *f = *state;
    fake_conn a;
    conn_init(&a, f->reg);
    conn_registry_add(f->reg, &a.entry, ID_A);
    conn_registry_add(f->reg, &a.entry, ID_B);
    assert_int_equal(conn_registry_count(f->reg, ID_A), 0);
    assert_int_equal(conn_registry_count(f->reg, ID_B), 1);
    conn_registry_revoke(f->reg, ID_A);
    deliver(f);
    assert_int_equal(a.revoked, 0);
    conn_registry_revoke(f->reg, ID_B);
    deliver(f);
    assert_int_equal(a.revoked, 1);
}

typedef struct revoker_arg {
    conn_registry *reg;
    int failures;
} revoker_arg;

static void revoker(void *p)
{
    revoker_arg *arg = p;
    for (int i = 0; i < REVOKES_PER_THREAD; i++)
        if (conn_registry_revoke(arg->reg, i % 2 ? ID_A : ID_B) != SS_OK)
            arg->failures++;
}

/* REST handlers revoke from the worker pool while the loop runs. */
static void revoke_from_other_threads_reaches_the_loop(void **state)
{
    fixture *f = *state;
    fake_conn a, b;
    conn_init(&a, f->reg);
    conn_init(&b, f->reg);
    conn_registry_add(f->reg, &a.entry, ID_A);
    conn_registry_add(f->reg, &b.entry, ID_B);
    uv_thread_t t[THREADS];
    revoker_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (revoker_arg){.reg = f->reg};
        assert_int_equal(uv_thread_create(&t[i], revoker, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        uv_thread_join(&t[i]);
        assert_int_equal(args[i].failures, 0);
    }
    deliver(f);
    assert_int_equal(a.revoked, 1);
    assert_int_equal(b.revoked, 1);
    assert_int_equal(conn_registry_count(f->reg, ID_A), 0);
}

/* Closing with revocations still queued and entries still registered frees
 * everything (ASan's leak check fails the run otherwise). */
static void close_with_pending_revocations_frees_them(void **state)
{
    fixture *f = *state;
    fake_conn a;
    conn_init(&a, f->reg);
    conn_registry_add(f->reg, &a.entry, ID_A);
    conn_registry_revoke(f->reg, ID_B);
    conn_registry_revoke(f->reg, ID_A);
    /* closed before the loop ran the async: nothing is delivered any more */
    conn_registry_close(f->reg);
    f->reg = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(a.revoked, 0);
}

/* A stream checks its access on a worker and registers on the loop a
 * moment later: a revocation in between is found by the mark taken before
 * the check, for that key only, and past the remembered ones every key
 * counts as revoked. */
static void revoked_since_a_mark(void **state)
{
    fixture *f = *state;
    uint64_t mark = conn_registry_mark(f->reg);
    assert_false(conn_registry_revoked_since(f->reg, ID_A, mark));
    assert_int_equal(conn_registry_revoke(f->reg, ID_A), SS_OK);
    assert_true(conn_registry_revoked_since(f->reg, ID_A, mark));
    assert_false(conn_registry_revoked_since(f->reg, ID_B, mark));
    uint64_t later = conn_registry_mark(f->reg);
    assert_false(conn_registry_revoked_since(f->reg, ID_A, later));
    for (unsigned i = 0; i < SS_CONN_REG_RECENT_MAX; i++)
        assert_int_equal(conn_registry_revoke(f->reg, ID_B), SS_OK);
    assert_false(conn_registry_revoked_since(f->reg, ID_A, later));  /* still remembered */
    assert_int_equal(conn_registry_revoke(f->reg, ID_B), SS_OK);
    assert_true(conn_registry_revoked_since(f->reg, ID_A, later));  /* cannot tell */
    assert_true(conn_registry_revoked_since(f->reg, ID_B, later));
    deliver(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(revoke_closes_every_connection_of_the_principal_only,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(derived_key_is_apart_from_its_id, setup, teardown),
        cmocka_unit_test_setup_teardown(revoked_since_a_mark, setup, teardown),
        cmocka_unit_test_setup_teardown(watcher_hears_every_revocation_first, setup, teardown),
        cmocka_unit_test_setup_teardown(removed_connection_is_not_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(revoke_of_unknown_principal_closes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(connection_registered_after_delivery_survives, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(callback_may_remove_another_entry_of_the_same_principal,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(many_revocations_fold_into_one_delivery, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(re_adding_moves_the_entry_to_the_new_principal, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(revoke_from_other_threads_reaches_the_loop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(close_with_pending_revocations_frees_them, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
