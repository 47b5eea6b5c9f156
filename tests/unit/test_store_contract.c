/* test_store_contract.c — the store contract suite: the same cases run
 * against every engine in `engines` below, each case in a fresh, empty
 * store of its own, through store.h only. A case here tests what the
 * interfaces (store_accounts.h, store_series.h, store_usage.h) promise,
 * never how an engine keeps it: what an engine does inside (its files,
 * pragmas, caches, migrations) is tested in that engine's own file
 * (test_store.c for SQLite). A new engine is added to the list and must
 * pass every case the others pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <unistd.h>

#include "core/err.h"
#include "core/limits.h"
#include "store/store.h"
#include "store_cases.h"

/* ---- the engines ------------------------------------------------------- */

typedef struct contract_engine {
    const char *name;
    /* The store URL of a fresh, empty store; an engine kept in files puts
     * them in the case's own data directory. */
    const char *url;
    /* Set: the series and the usage are kept by a second engine instance,
     * whose store URL is this file in the case's data directory, and the
     * accounts by the engine of url (store_options.series_url). */
    const char *series_file;
} contract_engine;

static const contract_engine engines[] = {
    {.name = "sqlite", .url = "sqlite:"},
    /* Two SQLite files: every case, across two engines, so what writes
     * across concerns (a device's or an org's delete) is held to the same
     * duties as in one engine. */
    {.name = "sqlite-split", .url = "sqlite:", .series_file = "series.db"},
};

/* The engine the cases run against now (main walks the list). */
static const contract_engine *engine;

/* ---- fixture ----------------------------------------------------------- */

typedef struct fx {
    char dir[64];
    char series_url[128];
    store *s;
    store_conn *c;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/ss_test_contract_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    store_options opt = {.url = engine->url, .data_dir = f->dir,
                         .durability = STORE_DURABILITY_NORMAL};
    if (engine->series_file) {
        snprintf(f->series_url, sizeof f->series_url, "sqlite:%s/%s", f->dir,
                 engine->series_file);
        opt.series_url = f->series_url;
    }
    char why[256] = "";
    int err = store_open(&opt, &f->s, why, sizeof why);
    if (!err)
        err = store_conn_acquire(f->s, &f->c);
    if (err) {
        print_error("%s: cannot open a store: %s\n", engine->name, why);
        if (f->s)
            store_close(f->s);
        rm_dir(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    store_conn_release(f->s, f->c);
    store_close(f->s);
    rm_dir(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ----------------------------------------------------------- */

static int member_cb(void *ctx, const char *org_id, store_role role)
{
    collect *k = ctx;
    if (k->n < COLLECT_MAX) {
        snprintf(k->ids[k->n], sizeof k->ids[0], "%s", org_id);
        k->roles[k->n] = role;
    }
    return collect_next(k);
}

static int device_cb(void *ctx, const store_device *d)
{
    collect *k = ctx;
    if (k->n < COLLECT_MAX)
        snprintf(k->ids[k->n], sizeof k->ids[0], "%s", d->id);
    return collect_next(k);
}

static int point_cb(void *ctx, int64_t ts, double value)
{
    collect *k = ctx;
    if (k->n < COLLECT_MAX) {
        k->ts[k->n] = ts;
        k->v[k->n] = value;
    }
    return collect_next(k);
}

static int count_invitation(void *ctx, const store_invitation *inv)
{
    (void)inv;
    (*(int *)ctx)++;
    return 0;
}

/* Ten points of "t" at BASE + i s, value i. */
static void add_ten_points(store_conn *c)
{
    add_org_and_device(c, 1);
    ss_reading rs[10];
    for (int i = 0; i < 10; i++)
        rs[i] = rd("t", BASE + i * 1000, i);
    assert_int_equal(write_one(c, 1, rs, 10), SS_OK);
}

static collect *points(store_conn *c, int64_t from, int64_t to, size_t limit, int desc)
{
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    store_query q = {.device_id = id, .channel = "t", .from = from, .to = to,
                     .limit = limit, .desc = desc};
    collect *k = collect_new();
    assert_int_equal(store_query_points(c, &q, point_cb, k), SS_OK);
    return k;
}

static void assert_values(const collect *k, const double *want, size_t n)
{
    assert_int_equal(k->n, n);
    for (size_t i = 0; i < n; i++)
        assert_true(k->v[i] == want[i]);
}

/* Bucket 0 [BASE, +1 min): 1 @0 s, 5 @10 s, 3 @50 s. Bucket 1: 10 @65 s,
 * -2 @119.999 s. Bucket 2 empty. Bucket 3: 7 @180 s. Written out of order
 * so first/last must come from ts, not from insertion. */
static void add_bucket_points(store_conn *c)
{
    add_org_and_device(c, 1);
    ss_reading rs[] = {
        rd("t", BASE + 50000, 3), rd("t", BASE + 180000, 7), rd("t", BASE + 10000, 5),
        rd("t", BASE + 119999, -2), rd("t", BASE, 1), rd("t", BASE + 65000, 10),
    };
    assert_int_equal(write_one(c, 1, rs, sizeof rs / sizeof rs[0]), SS_OK);
}

static collect *buckets(store_conn *c, int64_t from, size_t limit, int desc, store_agg fn)
{
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    store_query q = {.device_id = id, .channel = "t", .from = from, .to = BASE + 4 * MINUTE,
                     .limit = limit, .desc = desc};
    collect *k = collect_new();
    assert_int_equal(store_query_buckets(c, &q, MINUTE, fn, point_cb, k), SS_OK);
    return k;
}

/* The longest text an IPv6 address with an IPv4 tail takes. */
#define PEER_LONGEST "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"

static int id_cb(void *ctx, const char *id)
{
    collect *k = ctx;
    if (k->n < COLLECT_MAX)
        snprintf(k->ids[k->n], sizeof k->ids[0], "%s", id);
    return collect_next(k);
}

static int apikey_cb(void *ctx, const store_apikey *key)
{
    collect *k = ctx;
    if (k->n < COLLECT_MAX) {
        snprintf(k->ids[k->n], sizeof k->ids[0], "%s", key->id);
        k->ts[k->n] = key->created_at;
    }
    return collect_next(k);
}

static void assert_apikey_equal(const store_apikey *got, const store_apikey *want)
{
    assert_string_equal(got->id, want->id);
    assert_string_equal(got->org_id, want->org_id);
    assert_string_equal(got->name, want->name);
    assert_int_equal(got->scopes, want->scopes);
    assert_memory_equal(got->key_hash, want->key_hash, SS_SECRET_HASH_BYTES);
    assert_string_equal(got->created_by, want->created_by);
    assert_int_equal(got->created_at, want->created_at);
}

typedef struct audit_one {
    store_audit a;
    int n;
} audit_one;

static int audit_copy_cb(void *ctx, const store_audit *a)
{
    audit_one *o = ctx;
    o->a = *a;
    o->n++;
    return 0;
}

static void assert_acct(const store_acct_session *got, const store_acct_session *want)
{
    assert_string_equal(got->id, want->id);
    assert_string_equal(got->kind, want->kind);
    assert_string_equal(got->principal_id, want->principal_id);
    assert_string_equal(got->org_id, want->org_id);
    assert_string_equal(got->protocol, want->protocol);
    assert_string_equal(got->addr, want->addr);
    assert_string_equal(got->end_reason, want->end_reason);
    assert_int_equal(got->started_at, want->started_at);
    assert_int_equal(got->ended_at, want->ended_at);
    assert_int_equal(got->bytes_in, want->bytes_in);
    assert_int_equal(got->bytes_out, want->bytes_out);
    assert_int_equal(got->messages, want->messages);
    assert_int_equal(got->readings, want->readings);
    assert_int_equal(got->refused, want->refused);
    assert_int_equal(got->api_requests, want->api_requests);
}

/* ---- accounts, series and usage: what each function promises --------- */

static void test_user_create_get_and_count(void **state)
{
    fx *f = *state;
    int64_t n = -1;
    assert_int_equal(store_user_count(f->c, &n), SS_OK);
    assert_int_equal(n, 0);
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    assert_int_equal(store_user_count(f->c, &n), SS_OK);
    assert_int_equal(n, 1);

    store_user u;
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_USER, 1);
    assert_int_equal(store_user_get(f->c, id, &u), SS_OK);
    assert_string_equal(u.id, id);
    assert_string_equal(u.email, "ann@example.com");
    assert_string_equal(u.pw_hash, "$argon2id$v=19$hash-1");
    assert_int_equal(u.superadmin, 0);
    assert_int_equal(u.disabled, 0);
    assert_int_equal(u.created_at, 1001);

    memset(&u, 0, sizeof u);
    assert_int_equal(store_user_get_by_email(f->c, "ann@example.com", &u), SS_OK);
    assert_string_equal(u.id, id);
    assert_int_equal(store_user_get_by_email(f->c, "ANN@example.com", &u), SS_NOT_FOUND);
    make_id(id, TAG_USER, 99);
    assert_int_equal(store_user_get(f->c, id, &u), SS_NOT_FOUND);
}

static void test_user_duplicate_email_or_id_exists(void **state)
{
    fx *f = *state;
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    assert_int_equal(add_user(f->c, 2, "ann@example.com"), SS_EXISTS);
    assert_int_equal(add_user(f->c, 1, "bob@example.com"), SS_EXISTS);
    int64_t n = -1;
    assert_int_equal(store_user_count(f->c, &n), SS_OK);
    assert_int_equal(n, 1);
}

static void test_user_superadmin_and_longest_email_round_trip(void **state)
{
    fx *f = *state;
    store_user u = {.superadmin = 1, .created_at = 5};
    make_id(u.id, TAG_USER, 7);
    memset(u.email, 'e', SS_EMAIL_MAX);
    u.email[SS_EMAIL_MAX] = '\0';
    memset(u.pw_hash, 'h', STORE_PW_HASH_MAX - 1);
    u.pw_hash[STORE_PW_HASH_MAX - 1] = '\0';
    assert_int_equal(store_user_create(f->c, &u), SS_OK);
    store_user got;
    assert_int_equal(store_user_get(f->c, u.id, &got), SS_OK);
    assert_string_equal(got.email, u.email);
    assert_string_equal(got.pw_hash, u.pw_hash);
    assert_int_equal(got.superadmin, 1);
}

static void test_user_set_password_and_disabled(void **state)
{
    fx *f = *state;
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    char id[SS_ID_LEN + 1], missing[SS_ID_LEN + 1];
    make_id(id, TAG_USER, 1);
    make_id(missing, TAG_USER, 2);
    assert_int_equal(store_user_set_password(f->c, id, "$argon2id$new"), SS_OK);
    assert_int_equal(store_user_set_disabled(f->c, id, 1), SS_OK);
    store_user u;
    assert_int_equal(store_user_get(f->c, id, &u), SS_OK);
    assert_string_equal(u.pw_hash, "$argon2id$new");
    assert_int_equal(u.disabled, 1);
    assert_int_equal(store_user_set_disabled(f->c, id, 0), SS_OK);
    assert_int_equal(store_user_get(f->c, id, &u), SS_OK);
    assert_int_equal(u.disabled, 0);
    assert_int_equal(store_user_set_password(f->c, missing, "x"), SS_NOT_FOUND);
    assert_int_equal(store_user_set_disabled(f->c, missing, 1), SS_NOT_FOUND);
}

static void test_session_create_get_and_expiry(void **state)
{
    fx *f = *state;
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    store_session s = mk_session(1, 10, 5000);
    assert_int_equal(store_session_create(f->c, &s), SS_OK);
    store_session got;
    assert_int_equal(store_session_get(f->c, s.token_hash, 4999, &got), SS_OK);
    assert_memory_equal(got.token_hash, s.token_hash, SS_SECRET_HASH_BYTES);
    assert_string_equal(got.user_id, s.user_id);
    assert_string_equal(got.csrf, "csrf-10");
    assert_int_equal(got.created_at, 100);
    assert_int_equal(got.expires_at, 5000);
    /* expires_at <= now is expired. */
    assert_int_equal(store_session_get(f->c, s.token_hash, 5000, &got), SS_NOT_FOUND);
    uint8_t other[SS_SECRET_HASH_BYTES];
    fill_hash(other, 11);
    assert_int_equal(store_session_get(f->c, other, 0, &got), SS_NOT_FOUND);
}

static void test_session_unknown_user_or_duplicate(void **state)
{
    fx *f = *state;
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    store_session s = mk_session(2, 10, 5000);
    assert_int_equal(store_session_create(f->c, &s), SS_NOT_FOUND);
    s = mk_session(1, 10, 5000);
    assert_int_equal(store_session_create(f->c, &s), SS_OK);
    assert_int_equal(store_session_create(f->c, &s), SS_EXISTS);
}

static void test_session_delete(void **state)
{
    fx *f = *state;
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    store_session s = mk_session(1, 10, 5000);
    assert_int_equal(store_session_create(f->c, &s), SS_OK);
    assert_int_equal(store_session_delete(f->c, s.token_hash), SS_OK);
    store_session got;
    assert_int_equal(store_session_get(f->c, s.token_hash, 0, &got), SS_NOT_FOUND);
    assert_int_equal(store_session_delete(f->c, s.token_hash), SS_NOT_FOUND);
}

static void test_session_delete_user_keeps_one_or_none(void **state)
{
    fx *f = *state;
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    assert_int_equal(add_user(f->c, 2, "bob@example.com"), SS_OK);
    store_session s[3] = {mk_session(1, 10, 9000), mk_session(1, 20, 9000), mk_session(1, 30, 9000)};
    store_session bob = mk_session(2, 40, 9000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(store_session_create(f->c, &s[i]), SS_OK);
    assert_int_equal(store_session_create(f->c, &bob), SS_OK);

    assert_int_equal(store_session_delete_user(f->c, s[0].user_id, s[1].token_hash), SS_OK);
    store_session got;
    assert_int_equal(store_session_get(f->c, s[0].token_hash, 0, &got), SS_NOT_FOUND);
    assert_int_equal(store_session_get(f->c, s[1].token_hash, 0, &got), SS_OK);
    assert_int_equal(store_session_get(f->c, s[2].token_hash, 0, &got), SS_NOT_FOUND);

    assert_int_equal(store_session_delete_user(f->c, s[0].user_id, NULL), SS_OK);
    assert_int_equal(store_session_get(f->c, s[1].token_hash, 0, &got), SS_NOT_FOUND);
    assert_int_equal(store_session_get(f->c, bob.token_hash, 0, &got), SS_OK);
    /* Nothing left to delete is not an error. */
    assert_int_equal(store_session_delete_user(f->c, s[0].user_id, NULL), SS_OK);
}

static void test_org_create_top_level_and_child(void **state)
{
    fx *f = *state;
    add_org_tree(f->c);
    store_org o;
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_ORG, 1);
    assert_int_equal(store_org_get(f->c, id, &o), SS_OK);
    assert_string_equal(o.name, "beta");
    assert_string_equal(o.parent_id, "");
    assert_int_equal(o.created_at, 2001);
    make_id(id, TAG_ORG, 3);
    assert_int_equal(store_org_get(f->c, id, &o), SS_OK);
    assert_id(o.parent_id, TAG_ORG, 2);
    make_id(id, TAG_ORG, 9);
    assert_int_equal(store_org_get(f->c, id, &o), SS_NOT_FOUND);
}

static void test_org_child_of_unknown_parent_not_found(void **state)
{
    fx *f = *state;
    assert_int_equal(add_org(f->c, 2, "orphan", 1), SS_NOT_FOUND);
    assert_int_equal(add_org(f->c, 1, "top", -1), SS_OK);
    assert_int_equal(add_org(f->c, 1, "again", -1), SS_EXISTS);
}

static void test_org_list_all_by_name_then_id(void **state)
{
    fx *f = *state;
    add_org_tree(f->c);
    collect *k = collect_new();
    assert_int_equal(store_org_list(f->c, NULL, org_cb, k), SS_OK);
    assert_int_equal(k->n, 4);
    assert_id(k->ids[0], TAG_ORG, 2);
    assert_id(k->ids[1], TAG_ORG, 4);
    assert_id(k->ids[2], TAG_ORG, 1);
    assert_id(k->ids[3], TAG_ORG, 3);
    free(k);

    k = collect_new();
    k->stop_after = 2;
    assert_int_equal(store_org_list(f->c, NULL, org_cb, k), SS_OK);
    assert_int_equal(k->n, 2);
    free(k);
}

static void test_org_list_for_user_includes_descendants_once(void **state)
{
    fx *f = *state;
    add_org_tree(f->c);
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    assert_int_equal(add_user(f->c, 2, "bob@example.com"), SS_OK);
    char ann[SS_ID_LEN + 1], bob[SS_ID_LEN + 1], o1[SS_ID_LEN + 1], o3[SS_ID_LEN + 1];
    make_id(ann, TAG_USER, 1);
    make_id(bob, TAG_USER, 2);
    make_id(o1, TAG_ORG, 1);
    make_id(o3, TAG_ORG, 3);
    /* Member of the top and, again, of a grandchild. */
    assert_int_equal(store_membership_set(f->c, o1, ann, STORE_ROLE_VIEWER), SS_OK);
    assert_int_equal(store_membership_set(f->c, o3, ann, STORE_ROLE_EDITOR), SS_OK);

    collect *k = collect_new();
    assert_int_equal(store_org_list(f->c, ann, org_cb, k), SS_OK);
    assert_int_equal(k->n, 3);
    assert_id(k->ids[0], TAG_ORG, 2);
    assert_id(k->ids[1], TAG_ORG, 1);
    assert_id(k->ids[2], TAG_ORG, 3);
    free(k);

    k = collect_new();
    assert_int_equal(store_org_list(f->c, bob, org_cb, k), SS_OK);
    assert_int_equal(k->n, 0);
    free(k);
}

static void test_role_inherited_from_grandparent(void **state)
{
    fx *f = *state;
    add_people(f->c);
    assert_int_equal(set_role(f->c, 1, 1, STORE_ROLE_ADMIN), SS_OK);
    assert_int_equal(role_of(f->c, 1, 3), STORE_ROLE_ADMIN);
    assert_int_equal(role_of(f->c, 1, 2), STORE_ROLE_ADMIN);
    assert_int_equal(role_of(f->c, 1, 1), STORE_ROLE_ADMIN);
    assert_int_equal(role_of(f->c, 1, 4), STORE_ROLE_NONE);
}

static void test_role_highest_wins_and_never_flows_up(void **state)
{
    fx *f = *state;
    add_people(f->c);
    assert_int_equal(set_role(f->c, 2, 3, STORE_ROLE_VIEWER), SS_OK);
    assert_int_equal(set_role(f->c, 2, 2, STORE_ROLE_OWNER), SS_OK);
    assert_int_equal(role_of(f->c, 2, 3), STORE_ROLE_OWNER);
    assert_int_equal(role_of(f->c, 2, 1), STORE_ROLE_NONE);
    assert_int_equal(set_role(f->c, 3, 1, STORE_ROLE_EDITOR), SS_OK);
    assert_int_equal(set_role(f->c, 3, 3, STORE_ROLE_VIEWER), SS_OK);
    assert_int_equal(role_of(f->c, 3, 3), STORE_ROLE_EDITOR);
    /* Replacing a role. */
    assert_int_equal(set_role(f->c, 3, 1, STORE_ROLE_VIEWER), SS_OK);
    assert_int_equal(role_of(f->c, 3, 3), STORE_ROLE_VIEWER);
}

static void test_role_none_for_strangers_not_found_for_unknown_org(void **state)
{
    fx *f = *state;
    add_people(f->c);
    assert_int_equal(role_of(f->c, 4, 3), STORE_ROLE_NONE);
    char u[SS_ID_LEN + 1], o[SS_ID_LEN + 1];
    make_id(u, TAG_USER, 4);
    make_id(o, TAG_ORG, 77);
    store_role r = STORE_ROLE_OWNER;
    assert_int_equal(store_role_effective(f->c, u, o, &r), SS_NOT_FOUND);
}

static void test_membership_none_removes_and_unknowns(void **state)
{
    fx *f = *state;
    add_people(f->c);
    assert_int_equal(set_role(f->c, 1, 2, STORE_ROLE_EDITOR), SS_OK);
    assert_int_equal(set_role(f->c, 1, 2, STORE_ROLE_NONE), SS_OK);
    assert_int_equal(role_of(f->c, 1, 2), STORE_ROLE_NONE);
    assert_int_equal(set_role(f->c, 1, 2, STORE_ROLE_NONE), SS_NOT_FOUND);
    assert_int_equal(set_role(f->c, 1, 99, STORE_ROLE_VIEWER), SS_NOT_FOUND);
    assert_int_equal(set_role(f->c, 99, 1, STORE_ROLE_VIEWER), SS_NOT_FOUND);
    assert_int_equal(set_role(f->c, 1, 1, (store_role)(STORE_ROLE_OWNER + 1)), SS_INVAL);
    assert_int_equal(set_role(f->c, 1, 1, (store_role)-1), SS_INVAL);
}

static void test_membership_list_direct_only(void **state)
{
    fx *f = *state;
    add_people(f->c);
    assert_int_equal(set_role(f->c, 1, 3, STORE_ROLE_VIEWER), SS_OK);
    assert_int_equal(set_role(f->c, 1, 1, STORE_ROLE_OWNER), SS_OK);
    char u[SS_ID_LEN + 1];
    make_id(u, TAG_USER, 1);
    collect *k = collect_new();
    assert_int_equal(store_membership_list(f->c, u, member_cb, k), SS_OK);
    assert_int_equal(k->n, 2);
    assert_id(k->ids[0], TAG_ORG, 1);
    assert_int_equal(k->roles[0], STORE_ROLE_OWNER);
    assert_id(k->ids[1], TAG_ORG, 3);
    assert_int_equal(k->roles[1], STORE_ROLE_VIEWER);
    free(k);
}

/* Org 1 > 2 > 3, and 4 apart. An admin of 1 reaches members of 1, 2, 3;
 * an editor's orgs and org 4 are out of reach; a key of org 2 reaches 2, 3. */
static void test_user_in_reach_of_admins_and_keys(void **state)
{
    fx *f = *state;
    add_people(f->c);
    char ann[SS_ID_LEN + 1], bob[SS_ID_LEN + 1], cat[SS_ID_LEN + 1], o2[SS_ID_LEN + 1];
    make_id(ann, TAG_USER, 1);
    make_id(bob, TAG_USER, 2);
    make_id(cat, TAG_USER, 3);
    make_id(o2, TAG_ORG, 2);
    assert_int_equal(set_role(f->c, 1, 1, STORE_ROLE_ADMIN), SS_OK);
    assert_int_equal(set_role(f->c, 2, 3, STORE_ROLE_VIEWER), SS_OK);
    assert_int_equal(set_role(f->c, 3, 4, STORE_ROLE_OWNER), SS_OK);
    int in = -1;
    assert_int_equal(store_user_in_reach(f->c, ann, NULL, bob, &in), SS_OK);
    assert_int_equal(in, 1);
    assert_int_equal(store_user_in_reach(f->c, ann, NULL, cat, &in), SS_OK);
    assert_int_equal(in, 0);
    assert_int_equal(store_user_in_reach(f->c, NULL, o2, bob, &in), SS_OK);
    assert_int_equal(in, 1);
    assert_int_equal(store_user_in_reach(f->c, NULL, o2, ann, &in), SS_OK);
    assert_int_equal(in, 0);
    /* an editor reaches nobody */
    assert_int_equal(set_role(f->c, 1, 1, STORE_ROLE_EDITOR), SS_OK);
    assert_int_equal(store_user_in_reach(f->c, ann, NULL, bob, &in), SS_OK);
    assert_int_equal(in, 0);
}

static void test_invitation_put_accept_decline(void **state)
{
    fx *f = *state;
    add_people(f->c);
    store_invitation inv = {.role = STORE_ROLE_EDITOR, .created_at = 5};
    snprintf(inv.id, sizeof inv.id, "%s", "000000000000000000000001");
    make_id(inv.org_id, TAG_ORG, 2);
    make_id(inv.user_id, TAG_USER, 2);
    snprintf(inv.invited_by, sizeof inv.invited_by, "user:x");
    assert_int_equal(store_invitation_put(f->c, &inv), SS_OK);
    /* again: replaced, not doubled */
    snprintf(inv.id, sizeof inv.id, "%s", "000000000000000000000002");
    inv.role = STORE_ROLE_VIEWER;
    assert_int_equal(store_invitation_put(f->c, &inv), SS_OK);
    int n = 0;
    assert_int_equal(store_invitation_list_user(f->c, inv.user_id, count_invitation, &n), SS_OK);
    assert_int_equal(n, 1);
    store_invitation got;
    assert_int_equal(store_invitation_get(f->c, "000000000000000000000001", &got), SS_NOT_FOUND);
    assert_int_equal(store_invitation_get(f->c, "000000000000000000000002", &got), SS_OK);
    assert_string_equal(got.email, "bob@example.com");
    assert_int_equal(got.role, STORE_ROLE_VIEWER);
    /* not a member until accepted, and only by the invitee */
    assert_int_equal(role_of(f->c, 2, 2), STORE_ROLE_NONE);
    char ann[SS_ID_LEN + 1];
    make_id(ann, TAG_USER, 1);
    assert_int_equal(store_invitation_accept(f->c, got.id, ann, &got), SS_NOT_FOUND);
    assert_int_equal(store_invitation_accept(f->c, got.id, inv.user_id, &got), SS_OK);
    assert_int_equal(role_of(f->c, 2, 2), STORE_ROLE_VIEWER);
    assert_int_equal(store_invitation_accept(f->c, got.id, inv.user_id, &got), SS_NOT_FOUND);
    /* a higher role held already stays; declining deletes */
    assert_int_equal(set_role(f->c, 2, 2, STORE_ROLE_ADMIN), SS_OK);
    assert_int_equal(store_invitation_put(f->c, &inv), SS_OK);
    assert_int_equal(store_invitation_accept(f->c, inv.id, inv.user_id, &got), SS_OK);
    assert_int_equal(role_of(f->c, 2, 2), STORE_ROLE_ADMIN);
    assert_int_equal(store_invitation_put(f->c, &inv), SS_OK);
    assert_int_equal(store_invitation_delete(f->c, inv.id), SS_OK);
    assert_int_equal(store_invitation_delete(f->c, inv.id), SS_NOT_FOUND);
    /* unknown org or user */
    make_id(inv.org_id, TAG_ORG, 99);
    assert_int_equal(store_invitation_put(f->c, &inv), SS_NOT_FOUND);
}

static void test_user_unlock_login_moves_forward(void **state)
{
    fx *f = *state;
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_USER, 1);
    store_user u;
    assert_int_equal(store_user_get(f->c, id, &u), SS_OK);
    assert_int_equal(u.login_unlocked_at, 0);
    assert_int_equal(store_user_unlock_login(f->c, id, 500), SS_OK);
    assert_int_equal(store_user_unlock_login(f->c, id, 400), SS_OK);
    assert_int_equal(store_user_get_by_email(f->c, "ann@example.com", &u), SS_OK);
    assert_int_equal(u.login_unlocked_at, 500);
    make_id(id, TAG_USER, 9);
    assert_int_equal(store_user_unlock_login(f->c, id, 1), SS_NOT_FOUND);
}

/* One transaction: the existing account untouched, or the new one made. */
static void test_invitation_invite_existing_or_new(void **state)
{
    fx *f = *state;
    add_people(f->c);
    store_user fresh = {.created_at = 9};
    make_id(fresh.id, TAG_USER, 50);
    snprintf(fresh.email, sizeof fresh.email, "bob@example.com");
    snprintf(fresh.pw_hash, sizeof fresh.pw_hash, "$argon2id$new");
    store_invitation inv = {.role = STORE_ROLE_VIEWER, .created_at = 9};
    snprintf(inv.id, sizeof inv.id, "%s", "000000000000000000000011");
    make_id(inv.org_id, TAG_ORG, 1);
    assert_int_equal(store_invitation_invite(f->c, &fresh, &inv), SS_OK);
    char bob[SS_ID_LEN + 1];
    make_id(bob, TAG_USER, 2);
    assert_string_equal(inv.user_id, bob);
    store_user u;
    assert_int_equal(store_user_get(f->c, bob, &u), SS_OK);
    assert_string_equal(u.pw_hash, "$argon2id$v=19$hash-2");
    assert_int_equal(store_user_get(f->c, fresh.id, &u), SS_NOT_FOUND);
    snprintf(fresh.email, sizeof fresh.email, "new@example.com");
    snprintf(inv.id, sizeof inv.id, "%s", "000000000000000000000012");
    assert_int_equal(store_invitation_invite(f->c, &fresh, &inv), SS_OK);
    assert_string_equal(inv.user_id, fresh.id);
    assert_int_equal(store_user_get_by_email(f->c, "new@example.com", &u), SS_OK);
    assert_string_equal(u.pw_hash, "$argon2id$new");
    /* an unknown org leaves no account behind */
    snprintf(fresh.email, sizeof fresh.email, "ghost@example.com");
    make_id(fresh.id, TAG_USER, 51);
    snprintf(inv.id, sizeof inv.id, "%s", "000000000000000000000013");
    make_id(inv.org_id, TAG_ORG, 99);
    assert_int_equal(store_invitation_invite(f->c, &fresh, &inv), SS_NOT_FOUND);
    assert_int_equal(store_user_get_by_email(f->c, "ghost@example.com", &u), SS_NOT_FOUND);
}

static void test_device_create_get_round_trip(void **state)
{
    fx *f = *state;
    assert_int_equal(add_org(f->c, 1, "org", -1), SS_OK);
    store_device d = {.disabled = 1, .created_at = 42};
    make_id(d.id, TAG_DEVICE, 1);
    make_id(d.org_id, TAG_ORG, 1);
    memset(d.name, 'n', SS_NAME_MAX);
    memset(d.description, 'd', SS_DESCRIPTION_MAX);
    fill_hash(d.token_hash, 200);
    assert_int_equal(store_device_create(f->c, &d), SS_OK);
    store_device got;
    memset(&got, 0x55, sizeof got);
    assert_int_equal(store_device_get(f->c, d.id, &got), SS_OK);
    assert_string_equal(got.id, d.id);
    assert_string_equal(got.org_id, d.org_id);
    assert_string_equal(got.name, d.name);
    assert_string_equal(got.description, d.description);
    assert_memory_equal(got.token_hash, d.token_hash, SS_SECRET_HASH_BYTES);
    assert_int_equal(got.disabled, 1);
    assert_int_equal(got.created_at, 42);
    char missing[SS_ID_LEN + 1];
    make_id(missing, TAG_DEVICE, 2);
    assert_int_equal(store_device_get(f->c, missing, &got), SS_NOT_FOUND);
}

static void test_device_duplicates_and_unknown_org(void **state)
{
    fx *f = *state;
    assert_int_equal(add_org(f->c, 1, "org", -1), SS_OK);
    assert_int_equal(add_device(f->c, 1, 1, "a", 1), SS_OK);
    assert_int_equal(add_device(f->c, 2, 1, "b", 1), SS_EXISTS);
    assert_int_equal(add_device(f->c, 1, 1, "c", 2), SS_EXISTS);
    assert_int_equal(add_device(f->c, 3, 9, "d", 3), SS_NOT_FOUND);
}

static void test_device_list_by_org_and_all(void **state)
{
    fx *f = *state;
    assert_int_equal(add_org(f->c, 1, "one", -1), SS_OK);
    assert_int_equal(add_org(f->c, 2, "two", -1), SS_OK);
    assert_int_equal(add_device(f->c, 1, 1, "b-dev", 1), SS_OK);
    assert_int_equal(add_device(f->c, 2, 1, "a-dev", 2), SS_OK);
    assert_int_equal(add_device(f->c, 3, 2, "z-dev", 3), SS_OK);
    char org[SS_ID_LEN + 1];
    make_id(org, TAG_ORG, 1);
    collect *k = collect_new();
    assert_int_equal(store_device_list(f->c, org, device_cb, k), SS_OK);
    assert_int_equal(k->n, 2);
    assert_id(k->ids[0], TAG_DEVICE, 2);
    assert_id(k->ids[1], TAG_DEVICE, 1);
    free(k);
    k = collect_new();
    assert_int_equal(store_device_list_all(f->c, device_cb, k), SS_OK);
    assert_int_equal(k->n, 3);
    free(k);
    k = collect_new();
    k->stop_after = 1;
    assert_int_equal(store_device_list_all(f->c, device_cb, k), SS_OK);
    assert_int_equal(k->n, 1);
    free(k);
}

static void test_device_attributes_and_last_seen(void **state)
{
    fx *f = *state;
    assert_int_equal(add_org(f->c, 1, "org", -1), SS_OK);
    assert_int_equal(add_device(f->c, 1, 1, "a", 1), SS_OK);
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    store_device d;
    assert_int_equal(store_device_get(f->c, id, &d), SS_OK);
    assert_string_equal(d.attributes, "{}");
    assert_int_equal(d.last_seen, 0);
    assert_string_equal(d.last_protocol, "");
    snprintf(d.attributes, sizeof d.attributes, "{\"type\":\"sensor\",\"tags\":[\"roof\"]}");
    assert_int_equal(store_device_update(f->c, &d), SS_OK);

    /* Many devices in one call; one gone is skipped; never backwards. */
    store_device_seen seen[2] = {{.at = 5000}, {.at = 7000}};
    snprintf(seen[0].id, sizeof seen[0].id, "%s", id);
    snprintf(seen[0].protocol, sizeof seen[0].protocol, "tcp");
    make_id(seen[1].id, TAG_DEVICE, 9);
    snprintf(seen[1].protocol, sizeof seen[1].protocol, "udp");
    assert_int_equal(store_device_set_seen(f->c, seen, 2), SS_OK);
    seen[0].at = 4000;
    snprintf(seen[0].protocol, sizeof seen[0].protocol, "http");
    assert_int_equal(store_device_set_seen(f->c, seen, 1), SS_OK);
    assert_int_equal(store_device_set_seen(f->c, seen, 0), SS_OK);

    store_device got;
    assert_int_equal(store_device_get(f->c, id, &got), SS_OK);
    assert_string_equal(got.attributes, "{\"type\":\"sensor\",\"tags\":[\"roof\"]}");
    assert_int_equal(got.last_seen, 5000);
    assert_string_equal(got.last_protocol, "tcp");
    /* An update of the other fields leaves last_seen as it is. */
    got.disabled = 1;
    assert_int_equal(store_device_update(f->c, &got), SS_OK);
    assert_int_equal(store_device_get(f->c, id, &got), SS_OK);
    assert_int_equal(got.last_seen, 5000);
}

static void test_device_list_after_resumes_by_name_then_id(void **state)
{
    fx *f = *state;
    assert_int_equal(add_org(f->c, 1, "one", -1), SS_OK);
    assert_int_equal(add_org(f->c, 2, "two", -1), SS_OK);
    assert_int_equal(add_device(f->c, 1, 1, "b", 1), SS_OK);
    assert_int_equal(add_device(f->c, 2, 1, "a", 2), SS_OK);
    assert_int_equal(add_device(f->c, 3, 1, "b", 3), SS_OK);
    assert_int_equal(add_device(f->c, 4, 2, "c", 4), SS_OK);
    char org[SS_ID_LEN + 1], d1[SS_ID_LEN + 1], d2[SS_ID_LEN + 1];
    make_id(org, TAG_ORG, 1);
    make_id(d1, TAG_DEVICE, 1);
    make_id(d2, TAG_DEVICE, 2);
    collect *k = collect_new();
    assert_int_equal(store_device_list_after(f->c, org, "a", d2, device_cb, k), SS_OK);
    assert_int_equal(k->n, 2);
    assert_id(k->ids[0], TAG_DEVICE, 1);
    assert_id(k->ids[1], TAG_DEVICE, 3);
    free(k);
    k = collect_new();
    assert_int_equal(store_device_list_after(f->c, org, "b", d1, device_cb, k), SS_OK);
    assert_int_equal(k->n, 1);
    assert_id(k->ids[0], TAG_DEVICE, 3);
    free(k);
    k = collect_new();
    assert_int_equal(store_device_list_after(f->c, org, "", "", device_cb, k), SS_OK);
    assert_int_equal(k->n, 3);
    free(k);
}

static void test_audit_list_before_resumes_by_ts_then_id(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 4; i++)
        assert_int_equal(add_audit(f->c, 1, 1000 + 10 * i, "device.create"), SS_OK);
    assert_int_equal(add_audit(f->c, 1, 1010, "device.delete"), SS_OK);
    char o1[SS_ID_LEN + 1];
    make_id(o1, TAG_ORG, 1);
    collect *all = collect_new();
    assert_int_equal(store_audit_list(f->c, o1, 0, INT64_MAX, 100, audit_cb, all), SS_OK);
    assert_int_equal(all->n, 5);
    /* From after each entry: the rest of the list, in the same order. */
    for (size_t at = 0; at < all->n; at++) {
        collect *k = collect_new();
        assert_int_equal(store_audit_list_before(f->c, o1, 0, INT64_MAX, all->ts[at],
                                                 all->num[at], 100, audit_cb, k), SS_OK);
        assert_int_equal(k->n, all->n - at - 1);
        for (size_t i = 0; i < k->n; i++)
            assert_int_equal(k->num[i], all->num[at + 1 + i]);
        free(k);
    }
    free(all);
}

static void test_device_update_and_set_token(void **state)
{
    fx *f = *state;
    assert_int_equal(add_org(f->c, 1, "org", -1), SS_OK);
    assert_int_equal(add_device(f->c, 1, 1, "a", 1), SS_OK);
    assert_int_equal(add_device(f->c, 2, 1, "b", 2), SS_OK);
    store_device d;
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    assert_int_equal(store_device_get(f->c, id, &d), SS_OK);
    snprintf(d.name, sizeof d.name, "renamed");
    snprintf(d.description, sizeof d.description, "new text");
    d.disabled = 1;
    assert_int_equal(store_device_update(f->c, &d), SS_OK);
    store_device got;
    assert_int_equal(store_device_get(f->c, id, &got), SS_OK);
    assert_string_equal(got.name, "renamed");
    assert_string_equal(got.description, "new text");
    assert_int_equal(got.disabled, 1);

    uint8_t h[SS_SECRET_HASH_BYTES];
    fill_hash(h, 90);
    assert_int_equal(store_device_set_token(f->c, id, h), SS_OK);
    assert_int_equal(store_device_get(f->c, id, &got), SS_OK);
    assert_memory_equal(got.token_hash, h, SS_SECRET_HASH_BYTES);
    fill_hash(h, 2);
    assert_int_equal(store_device_set_token(f->c, id, h), SS_EXISTS);

    make_id(d.id, TAG_DEVICE, 9);
    assert_int_equal(store_device_update(f->c, &d), SS_NOT_FOUND);
    assert_int_equal(store_device_set_token(f->c, d.id, h), SS_NOT_FOUND);
}

static void test_write_batches_two_devices_and_channel_list(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    assert_int_equal(add_device(f->c, 2, 1, "two", 2), SS_OK);
    ss_reading r1[] = {rd("temp", BASE + 10, 20.5), rd("hum", BASE + 10, 40),
                       rd("temp", BASE + 20, 21.5)};
    ss_reading r2[] = {rd("temp", BASE + 5, -3)};
    char d1[SS_ID_LEN + 1], d2[SS_ID_LEN + 1];
    make_id(d1, TAG_DEVICE, 1);
    make_id(d2, TAG_DEVICE, 2);
    store_batch b[] = {{.device_id = d1, .org_id = "", .readings = r1, .len = 3},
                       {.device_id = d2, .org_id = "", .readings = r2, .len = 1}};
    assert_int_equal(store_write_batches(f->c, b, 2), SS_OK);

    collect *k = channels_of(f->c, 1);
    assert_int_equal(k->n, 2);
    assert_string_equal(k->ch[0].name, "hum");
    assert_int_equal(k->ch[0].count, 1);
    assert_int_equal(k->ch[0].last_ts, BASE + 10);
    assert_true(k->ch[0].last_value == 40);
    assert_string_equal(k->ch[1].name, "temp");
    assert_int_equal(k->ch[1].count, 2);
    assert_int_equal(k->ch[1].last_ts, BASE + 20);
    assert_true(k->ch[1].last_value == 21.5);
    free(k);
    /* The newest reading of each channel, from the series alone. */
    k = collect_new();
    assert_int_equal(store_channel_latest(f->c, d1, channel_cb, k), SS_OK);
    assert_int_equal(k->n, 2);
    assert_string_equal(k->ch[0].name, "hum");
    assert_int_equal(k->ch[0].last_ts, BASE + 10);
    assert_true(k->ch[0].last_value == 40);
    assert_string_equal(k->ch[1].name, "temp");
    assert_int_equal(k->ch[1].last_ts, BASE + 20);
    assert_true(k->ch[1].last_value == 21.5);
    free(k);
    k = channels_of(f->c, 2);
    assert_int_equal(k->n, 1);
    assert_int_equal(k->ch[0].last_ts, BASE + 5);
    assert_true(k->ch[0].last_value == -3);
    free(k);
    /* An empty call and an empty batch are fine. */
    assert_int_equal(store_write_batches(f->c, NULL, 0), SS_OK);
    assert_int_equal(write_one(f->c, 1, NULL, 0), SS_OK);
}

static void test_write_duplicate_ts_replaces_value(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    ss_reading a = rd("t", BASE, 1);
    ss_reading b = rd("t", BASE, 2);
    assert_int_equal(write_one(f->c, 1, &a, 1), SS_OK);
    assert_int_equal(write_one(f->c, 1, &b, 1), SS_OK);
    collect *k = channels_of(f->c, 1);
    assert_int_equal(k->n, 1);
    assert_int_equal(k->ch[0].count, 1);
    assert_true(k->ch[0].last_value == 2);
    free(k);
    /* Within one call the later reading wins. */
    ss_reading same[] = {rd("t", BASE + 1, 5), rd("t", BASE + 1, 6)};
    assert_int_equal(write_one(f->c, 1, same, 2), SS_OK);
    k = channels_of(f->c, 1);
    assert_int_equal(k->ch[0].count, 2);
    assert_int_equal(k->ch[0].last_ts, BASE + 1);
    assert_true(k->ch[0].last_value == 6);
    free(k);
}

static void test_write_older_reading_keeps_last(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    ss_reading newer = rd("t", BASE + 5000, 5);
    ss_reading older[] = {rd("t", BASE + 3000, 3), rd("t", BASE + 1000, 1)};
    assert_int_equal(write_one(f->c, 1, &newer, 1), SS_OK);
    assert_int_equal(write_one(f->c, 1, older, 2), SS_OK);
    collect *k = channels_of(f->c, 1);
    assert_int_equal(k->ch[0].count, 3);
    assert_int_equal(k->ch[0].last_ts, BASE + 5000);
    assert_true(k->ch[0].last_value == 5);
    free(k);
    /* Same ts as the last one in a later call: its value becomes the last. */
    ss_reading again = rd("t", BASE + 5000, 55);
    assert_int_equal(write_one(f->c, 1, &again, 1), SS_OK);
    k = channels_of(f->c, 1);
    assert_int_equal(k->ch[0].count, 3);
    assert_true(k->ch[0].last_value == 55);
    free(k);
}

static void test_write_longest_channel_and_bad_input(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    ss_reading r = {.ts = BASE, .value = 1};
    memset(r.channel, 'c', SS_CHANNEL_MAX);
    r.channel[SS_CHANNEL_MAX] = '\0';
    assert_int_equal(write_one(f->c, 1, &r, 1), SS_OK);
    collect *k = channels_of(f->c, 1);
    assert_int_equal(k->n, 1);
    assert_int_equal(strlen(k->ch[0].name), SS_CHANNEL_MAX);
    free(k);

    ss_reading unterminated = r;
    memset(unterminated.channel, 'c', sizeof unterminated.channel);
    assert_int_equal(write_one(f->c, 1, &unterminated, 1), SS_INVAL);
    ss_reading empty = rd("", BASE, 1);
    assert_int_equal(write_one(f->c, 1, &empty, 1), SS_INVAL);
    store_batch nodev = {.device_id = NULL, .readings = &r, .len = 1};
    assert_int_equal(store_write_batches(f->c, &nodev, 1), SS_INVAL);
    char longid[SS_ID_LEN + 2];
    memset(longid, 'a', SS_ID_LEN + 1);
    longid[SS_ID_LEN + 1] = '\0';
    store_batch toolong = {.device_id = longid, .readings = &r, .len = 1};
    assert_int_equal(store_write_batches(f->c, &toolong, 1), SS_INVAL);
    k = channels_of(f->c, 1);
    assert_int_equal(k->n, 1);
    assert_int_equal(k->ch[0].count, 1);
    free(k);
}

static void test_points_from_inclusive_to_exclusive(void **state)
{
    fx *f = *state;
    add_ten_points(f->c);
    collect *k = points(f->c, BASE + 2000, BASE + 7000, 100, 0);
    assert_values(k, (double[]){2, 3, 4, 5, 6}, 5);
    assert_int_equal(k->ts[0], BASE + 2000);
    free(k);
    k = points(f->c, BASE + 2000, BASE + 7000, 100, 1);
    assert_values(k, (double[]){6, 5, 4, 3, 2}, 5);
    free(k);
    k = points(f->c, BASE + 5000, BASE + 5000, 100, 0);
    assert_int_equal(k->n, 0);
    free(k);
}

static void test_points_limit_asc_and_desc(void **state)
{
    fx *f = *state;
    add_ten_points(f->c);
    collect *k = points(f->c, BASE + 2000, BASE + 7000, 3, 0);
    assert_values(k, (double[]){2, 3, 4}, 3);
    free(k);
    k = points(f->c, BASE + 2000, BASE + 7000, 3, 1);
    assert_values(k, (double[]){6, 5, 4}, 3);
    free(k);
    k = points(f->c, 0, INT64_MAX, 1, 1);
    assert_values(k, (double[]){9}, 1);
    free(k);
    k = points(f->c, 0, INT64_MAX, 10, 0);
    assert_int_equal(k->n, 10);
    free(k);
}

static void test_points_callback_stops_early(void **state)
{
    fx *f = *state;
    add_ten_points(f->c);
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    store_query q = {.device_id = id, .channel = "t", .from = 0, .to = INT64_MAX, .limit = 100};
    collect *k = collect_new();
    k->stop_after = 2;
    assert_int_equal(store_query_points(f->c, &q, point_cb, k), SS_OK);
    assert_int_equal(k->n, 2);
    free(k);
    /* The statement was reset: the next query starts afresh. */
    k = points(f->c, 0, INT64_MAX, 100, 0);
    assert_int_equal(k->n, 10);
    free(k);
}

static void test_query_unknown_device_or_channel_is_empty(void **state)
{
    fx *f = *state;
    add_ten_points(f->c);
    char id[SS_ID_LEN + 1], ghost[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    make_id(ghost, TAG_DEVICE, 9);
    store_query q[] = {
        {.device_id = ghost, .channel = "t", .from = 0, .to = INT64_MAX, .limit = 10},
        {.device_id = id, .channel = "nope", .from = 0, .to = INT64_MAX, .limit = 10},
    };
    for (size_t i = 0; i < 2; i++) {
        collect *k = collect_new();
        assert_int_equal(store_query_points(f->c, &q[i], point_cb, k), SS_OK);
        assert_int_equal(store_query_buckets(f->c, &q[i], MINUTE, STORE_AGG_AVG, point_cb, k),
                         SS_OK);
        assert_int_equal(k->n, 0);
        free(k);
    }
}

static void test_query_bad_arguments_inval(void **state)
{
    fx *f = *state;
    add_ten_points(f->c);
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    store_query q = {.device_id = id, .channel = "t", .from = 0, .to = INT64_MAX, .limit = 0};
    collect *k = collect_new();
    assert_int_equal(store_query_points(f->c, &q, point_cb, k), SS_INVAL);
    q.limit = 1;
    assert_int_equal(store_query_buckets(f->c, &q, 0, STORE_AGG_AVG, point_cb, k), SS_INVAL);
    assert_int_equal(store_query_buckets(f->c, &q, -5, STORE_AGG_AVG, point_cb, k), SS_INVAL);
    assert_int_equal(store_query_buckets(f->c, &q, MINUTE, (store_agg)7, point_cb, k), SS_INVAL);
    assert_int_equal(k->n, 0);
    free(k);
}

static void test_buckets_every_function(void **state)
{
    fx *f = *state;
    add_bucket_points(f->c);
    static const struct {
        store_agg fn;
        double want[3];
    } cases[] = {
        {STORE_AGG_AVG, {3, 4, 7}},   {STORE_AGG_MIN, {1, -2, 7}},
        {STORE_AGG_MAX, {5, 10, 7}},  {STORE_AGG_SUM, {9, 8, 7}},
        {STORE_AGG_COUNT, {3, 2, 1}}, {STORE_AGG_FIRST, {1, 10, 7}},
        {STORE_AGG_LAST, {3, -2, 7}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        collect *k = buckets(f->c, BASE, 100, 0, cases[i].fn);
        assert_values(k, cases[i].want, 3);
        assert_int_equal(k->ts[0], BASE);
        assert_int_equal(k->ts[1], BASE + MINUTE);
        assert_int_equal(k->ts[2], BASE + 3 * MINUTE);
        free(k);
        k = buckets(f->c, BASE, 100, 1, cases[i].fn);
        double rev[3] = {cases[i].want[2], cases[i].want[1], cases[i].want[0]};
        assert_values(k, rev, 3);
        assert_int_equal(k->ts[0], BASE + 3 * MINUTE);
        free(k);
    }
}

static void test_buckets_limit_and_partial_first_bucket(void **state)
{
    fx *f = *state;
    add_bucket_points(f->c);
    collect *k = buckets(f->c, BASE, 2, 0, STORE_AGG_SUM);
    assert_values(k, (double[]){9, 8}, 2);
    free(k);
    k = buckets(f->c, BASE, 2, 1, STORE_AGG_SUM);
    assert_values(k, (double[]){7, 8}, 2);
    free(k);
    /* from inside bucket 0: its start stays the epoch multiple. */
    k = buckets(f->c, BASE + 10000, 1, 0, STORE_AGG_AVG);
    assert_values(k, (double[]){4}, 1);
    assert_int_equal(k->ts[0], BASE);
    free(k);
    k = buckets(f->c, BASE + 10000, 1, 0, STORE_AGG_FIRST);
    assert_values(k, (double[]){5}, 1);
    free(k);
}

/* Random readings over 40 one-minute buckets, some left empty; values are
 * multiples of 1/64 so every sum is exact and any order of adding agrees. */
#define RB_BUCKETS 40
#define RB_MAX 400

typedef struct rand_points {
    size_t n;
    int64_t ts[RB_MAX];
    double v[RB_MAX];
} rand_points;

static void add_random_points(store_conn *c, rand_points *p)
{
    add_org_and_device(c, 1);
    ss_reading rs[RB_MAX];
    p->n = 0;
    for (int64_t b = 0; b < RB_BUCKETS; b++) {
        if (rand() % 5 == 0)
            continue;
        for (int64_t t = b * MINUTE; t < (b + 1) * MINUTE && p->n < RB_MAX; t += 1 + rand() % 9000) {
            if (rand() % 3)
                continue;
            p->ts[p->n] = BASE + t;
            p->v[p->n] = (double)(rand() % 20001 - 10000) / 64.0;
            rs[p->n] = rd("t", p->ts[p->n], p->v[p->n]);
            p->n++;
        }
    }
    for (size_t i = p->n; i > 1; i--) { /* stored out of order */
        size_t j = (size_t)rand() % i;
        ss_reading r = rs[i - 1];
        rs[i - 1] = rs[j];
        rs[j] = r;
    }
    for (size_t i = 0; i < p->n; i += 100)
        assert_int_equal(write_one(c, 1, rs + i, p->n - i < 100 ? p->n - i : 100), SS_OK);
}

/* The buckets of [from, to) by the definition, one reading at a time. */
static size_t naive_buckets(const rand_points *p, int64_t from, int64_t to, store_agg fn,
                            int64_t *ts_out, double *v_out)
{
    size_t n = 0;
    for (int64_t b = 0; b < RB_BUCKETS; b++) {
        int64_t start = BASE + b * MINUTE, first_ts = INT64_MAX, last_ts = INT64_MIN;
        double sum = 0, min = 0, max = 0, first = 0, last = 0;
        int64_t count = 0;
        for (size_t i = 0; i < p->n; i++) {
            if (p->ts[i] < from || p->ts[i] >= to || p->ts[i] - p->ts[i] % MINUTE != start)
                continue;
            double v = p->v[i];
            sum += v;
            min = count == 0 || v < min ? v : min;
            max = count == 0 || v > max ? v : max;
            if (p->ts[i] < first_ts) {
                first_ts = p->ts[i];
                first = v;
            }
            if (p->ts[i] > last_ts) {
                last_ts = p->ts[i];
                last = v;
            }
            count++;
        }
        if (count == 0)
            continue;
        double vals[] = {[STORE_AGG_AVG] = sum / (double)count, [STORE_AGG_MIN] = min,
                         [STORE_AGG_MAX] = max, [STORE_AGG_SUM] = sum,
                         [STORE_AGG_COUNT] = (double)count, [STORE_AGG_FIRST] = first,
                         [STORE_AGG_LAST] = last};
        ts_out[n] = start;
        v_out[n] = vals[fn];
        n++;
    }
    return n;
}

static void test_buckets_match_naive_on_random_data(void **state)
{
    fx *f = *state;
    srand(1313);
    static rand_points p;
    add_random_points(f->c, &p);
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    for (int round = 0; round < 30; round++) {
        int64_t from = BASE + rand() % (RB_BUCKETS * MINUTE);
        int64_t to = from + 1 + rand() % (RB_BUCKETS * MINUTE);
        if (round == 0) { /* the whole range, every bucket */
            from = BASE;
            to = BASE + RB_BUCKETS * MINUTE;
        }
        size_t limit = round == 0 ? RB_BUCKETS : 1 + (size_t)(rand() % RB_BUCKETS);
        for (int fn = STORE_AGG_AVG; fn <= STORE_AGG_LAST; fn++) {
            int64_t want_ts[RB_BUCKETS];
            double want_v[RB_BUCKETS];
            size_t want = naive_buckets(&p, from, to, (store_agg)fn, want_ts, want_v);
            for (int desc = 0; desc <= 1; desc++) {
                store_query q = {.device_id = id, .channel = "t", .from = from, .to = to,
                                 .limit = limit, .desc = desc};
                collect *k = collect_new();
                assert_int_equal(store_query_buckets(f->c, &q, MINUTE, (store_agg)fn, point_cb, k),
                                 SS_OK);
                assert_int_equal(k->n, want < limit ? want : limit);
                for (size_t i = 0; i < k->n; i++) {
                    size_t w = desc ? want - 1 - i : i;
                    assert_int_equal(k->ts[i], want_ts[w]);
                    assert_true(k->v[i] == want_v[w]);
                }
                free(k);
            }
        }
    }
}

static void test_session_new_fields_round_trip(void **state)
{
    fx *f = *state;
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    store_session s = mk_named_session(1, 7, 100, 5000);
    snprintf(s.peer, sizeof s.peer, "%s", PEER_LONGEST);
    s.last_seen_at = 150;
    assert_int_equal(store_session_create(f->c, &s), SS_OK);
    store_session got;
    memset(&got, 0x5a, sizeof got);
    assert_int_equal(store_session_get(f->c, s.token_hash, 4999, &got), SS_OK);
    assert_id(got.id, TAG_SESSION, 7);
    assert_string_equal(got.peer, PEER_LONGEST);
    assert_int_equal(strlen(got.peer), sizeof got.peer - 1);
    assert_int_equal(got.created_at, 100);
    assert_int_equal(got.last_seen_at, 150);
    assert_int_equal(got.expires_at, 5000);
    assert_string_equal(got.csrf, s.csrf);
    assert_memory_equal(got.token_hash, s.token_hash, SS_SECRET_HASH_BYTES);
}

static void test_session_duplicate_id_exists_unnamed_allowed(void **state)
{
    fx *f = *state;
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    store_session a = mk_named_session(1, 1, 100, 5000);
    store_session b = mk_named_session(1, 2, 100, 5000);
    memcpy(b.id, a.id, sizeof b.id);
    assert_int_equal(store_session_create(f->c, &a), SS_OK);
    assert_int_equal(store_session_create(f->c, &b), SS_EXISTS);
    /* Unnamed sessions (as version 1 made them) do not collide. */
    store_session u1 = mk_session(1, 50, 5000), u2 = mk_session(1, 51, 5000);
    assert_int_equal(store_session_create(f->c, &u1), SS_OK);
    assert_int_equal(store_session_create(f->c, &u2), SS_OK);
}

static void test_session_touch_moves_last_seen_forward_only(void **state)
{
    fx *f = *state;
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    store_session s = mk_named_session(1, 1, 100, 5000);
    assert_int_equal(store_session_create(f->c, &s), SS_OK);
    store_session got;
    assert_int_equal(store_session_touch(f->c, s.token_hash, 700), SS_OK);
    assert_int_equal(store_session_get(f->c, s.token_hash, 0, &got), SS_OK);
    assert_int_equal(got.last_seen_at, 700);
    /* A request finishing late with an older time does not move it back. */
    assert_int_equal(store_session_touch(f->c, s.token_hash, 600), SS_OK);
    assert_int_equal(store_session_get(f->c, s.token_hash, 0, &got), SS_OK);
    assert_int_equal(got.last_seen_at, 700);
    assert_int_equal(got.created_at, 100);
    assert_int_equal(got.expires_at, 5000);

    assert_int_equal(store_session_delete(f->c, s.token_hash), SS_OK);
    assert_int_equal(store_session_touch(f->c, s.token_hash, 800), SS_NOT_FOUND);
    uint8_t other[SS_SECRET_HASH_BYTES];
    fill_hash(other, 200);
    assert_int_equal(store_session_touch(f->c, other, 800), SS_NOT_FOUND);
}

static void test_session_list_newest_first_skips_expired_and_others(void **state)
{
    fx *f = *state;
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    assert_int_equal(add_user(f->c, 2, "bob@example.com"), SS_OK);
    store_session s[] = {
        mk_named_session(1, 1, 100, 9000), mk_named_session(1, 2, 300, 9000),
        mk_named_session(1, 3, 200, 9000), mk_named_session(1, 4, 400, 1000), /* expires */
        mk_named_session(2, 5, 500, 9000),                                     /* bob's */
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        assert_int_equal(store_session_create(f->c, &s[i]), SS_OK);
    char uid[SS_ID_LEN + 1];
    make_id(uid, TAG_USER, 1);

    collect *k = collect_new();
    assert_int_equal(store_session_list_user(f->c, uid, 1000, session_cb, k), SS_OK);
    assert_int_equal(k->n, 3);
    assert_id(k->ids[0], TAG_SESSION, 2);
    assert_id(k->ids[1], TAG_SESSION, 3);
    assert_id(k->ids[2], TAG_SESSION, 1);
    free(k);

    /* expires_at > now still counts: 999 < 1000. */
    k = collect_new();
    assert_int_equal(store_session_list_user(f->c, uid, 999, session_cb, k), SS_OK);
    assert_int_equal(k->n, 4);
    assert_id(k->ids[0], TAG_SESSION, 4);
    free(k);

    k = collect_new();
    k->stop_after = 1;
    assert_int_equal(store_session_list_user(f->c, uid, 1000, session_cb, k), SS_OK);
    assert_int_equal(k->n, 1);
    free(k);

    char nobody[SS_ID_LEN + 1];
    make_id(nobody, TAG_USER, 9);
    k = collect_new();
    assert_int_equal(store_session_list_user(f->c, nobody, 0, session_cb, k), SS_OK);
    assert_int_equal(k->n, 0);
    free(k);
}

static void test_session_delete_id_only_for_its_user(void **state)
{
    fx *f = *state;
    assert_int_equal(add_user(f->c, 1, "ann@example.com"), SS_OK);
    assert_int_equal(add_user(f->c, 2, "bob@example.com"), SS_OK);
    store_session ann = mk_named_session(1, 1, 100, 9000);
    store_session ann2 = mk_named_session(1, 2, 100, 9000);
    store_session bob = mk_named_session(2, 3, 100, 9000);
    assert_int_equal(store_session_create(f->c, &ann), SS_OK);
    assert_int_equal(store_session_create(f->c, &ann2), SS_OK);
    assert_int_equal(store_session_create(f->c, &bob), SS_OK);

    /* Bob cannot end Ann's session by naming it. */
    assert_int_equal(store_session_delete_id(f->c, bob.user_id, ann.id), SS_NOT_FOUND);
    store_session got;
    assert_int_equal(store_session_get(f->c, ann.token_hash, 0, &got), SS_OK);

    assert_int_equal(store_session_delete_id(f->c, ann.user_id, ann.id), SS_OK);
    assert_int_equal(store_session_get(f->c, ann.token_hash, 0, &got), SS_NOT_FOUND);
    assert_int_equal(store_session_get(f->c, ann2.token_hash, 0, &got), SS_OK);
    assert_int_equal(store_session_get(f->c, bob.token_hash, 0, &got), SS_OK);
    assert_int_equal(store_session_delete_id(f->c, ann.user_id, ann.id), SS_NOT_FOUND);
    assert_int_equal(store_session_delete_id(f->c, ann.user_id, ""), SS_NOT_FOUND);
}

static void test_org_device_ids_of_one_org_only(void **state)
{
    fx *f = *state;
    add_org_tree(f->c);
    assert_int_equal(add_device(f->c, 3, 1, "c", 3), SS_OK);
    assert_int_equal(add_device(f->c, 1, 1, "a", 1), SS_OK);
    assert_int_equal(add_device(f->c, 2, 2, "b", 2), SS_OK);
    char o1[SS_ID_LEN + 1], o4[SS_ID_LEN + 1], o9[SS_ID_LEN + 1];
    make_id(o1, TAG_ORG, 1);
    make_id(o4, TAG_ORG, 4);
    make_id(o9, TAG_ORG, 9);
    collect *k = collect_new();
    assert_int_equal(store_org_device_ids(f->c, o1, id_cb, k), SS_OK);
    assert_int_equal(k->n, 2); /* not the child org's device */
    assert_id(k->ids[0], TAG_DEVICE, 1);
    assert_id(k->ids[1], TAG_DEVICE, 3);
    free(k);
    k = collect_new();
    k->stop_after = 1;
    assert_int_equal(store_org_device_ids(f->c, o1, id_cb, k), SS_OK);
    assert_int_equal(k->n, 1);
    free(k);
    k = collect_new();
    assert_int_equal(store_org_device_ids(f->c, o4, id_cb, k), SS_OK);
    assert_int_equal(store_org_device_ids(f->c, o9, id_cb, k), SS_OK);
    assert_int_equal(k->n, 0);
    free(k);
}

static void test_membership_get_direct_role_only(void **state)
{
    fx *f = *state;
    add_people(f->c);
    assert_int_equal(set_role(f->c, 1, 1, STORE_ROLE_OWNER), SS_OK);
    assert_int_equal(set_role(f->c, 1, 3, STORE_ROLE_VIEWER), SS_OK);
    char u1[SS_ID_LEN + 1], o1[SS_ID_LEN + 1], o2[SS_ID_LEN + 1], o3[SS_ID_LEN + 1];
    char o9[SS_ID_LEN + 1];
    make_id(u1, TAG_USER, 1);
    make_id(o1, TAG_ORG, 1);
    make_id(o2, TAG_ORG, 2);
    make_id(o3, TAG_ORG, 3);
    make_id(o9, TAG_ORG, 9);
    store_role r = (store_role)-1;
    assert_int_equal(store_membership_get(f->c, o1, u1, &r), SS_OK);
    assert_int_equal(r, STORE_ROLE_OWNER);
    /* Direct only: the inherited owner role does not show in org 3 or 2. */
    assert_int_equal(store_membership_get(f->c, o3, u1, &r), SS_OK);
    assert_int_equal(r, STORE_ROLE_VIEWER);
    r = (store_role)-1;
    assert_int_equal(store_membership_get(f->c, o2, u1, &r), SS_OK);
    assert_int_equal(r, STORE_ROLE_NONE);
    r = (store_role)-1;
    assert_int_equal(store_membership_get(f->c, o9, u1, &r), SS_OK);
    assert_int_equal(r, STORE_ROLE_NONE);
}

static void test_member_count_exact_role(void **state)
{
    fx *f = *state;
    add_people(f->c);
    assert_int_equal(set_role(f->c, 1, 1, STORE_ROLE_OWNER), SS_OK);
    assert_int_equal(set_role(f->c, 2, 1, STORE_ROLE_OWNER), SS_OK);
    assert_int_equal(set_role(f->c, 3, 1, STORE_ROLE_ADMIN), SS_OK);
    assert_int_equal(set_role(f->c, 4, 2, STORE_ROLE_OWNER), SS_OK);
    char o1[SS_ID_LEN + 1], o3[SS_ID_LEN + 1];
    make_id(o1, TAG_ORG, 1);
    make_id(o3, TAG_ORG, 3);
    int64_t n = -1;
    assert_int_equal(store_member_count(f->c, o1, STORE_ROLE_OWNER, &n), SS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(store_member_count(f->c, o1, STORE_ROLE_ADMIN, &n), SS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_member_count(f->c, o1, STORE_ROLE_VIEWER, &n), SS_OK);
    assert_int_equal(n, 0);
    /* Not inherited: org 3 has no direct owner. */
    assert_int_equal(store_member_count(f->c, o3, STORE_ROLE_OWNER, &n), SS_OK);
    assert_int_equal(n, 0);
    assert_int_equal(set_role(f->c, 2, 1, STORE_ROLE_NONE), SS_OK);
    assert_int_equal(store_member_count(f->c, o1, STORE_ROLE_OWNER, &n), SS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_member_count(f->c, o1, STORE_ROLE_NONE, &n), SS_INVAL);
    assert_int_equal(store_member_count(f->c, o1, (store_role)(STORE_ROLE_OWNER + 1), &n), SS_INVAL);
}

static void test_membership_change_keeps_an_owner(void **state)
{
    fx *f = *state;
    add_people(f->c);
    char o1[SS_ID_LEN + 1], u1[SS_ID_LEN + 1], u2[SS_ID_LEN + 1];
    make_id(o1, TAG_ORG, 1);
    make_id(u1, TAG_USER, 1);
    make_id(u2, TAG_USER, 2);
    assert_int_equal(store_membership_change(f->c, o1, u1, STORE_ROLE_OWNER), SS_OK);
    assert_int_equal(store_membership_change(f->c, o1, u2, STORE_ROLE_OWNER), SS_OK);
    assert_int_equal(store_membership_change(f->c, o1, u1, STORE_ROLE_ADMIN), SS_OK);
    /* u2 is the last owner now: neither lowered nor removed */
    assert_int_equal(store_membership_change(f->c, o1, u2, STORE_ROLE_ADMIN), SS_CONFLICT);
    assert_int_equal(store_membership_change(f->c, o1, u2, STORE_ROLE_NONE), SS_CONFLICT);
    store_role r;
    assert_int_equal(store_membership_get(f->c, o1, u2, &r), SS_OK);
    assert_int_equal(r, STORE_ROLE_OWNER);
    assert_int_equal(store_membership_change(f->c, o1, u1, STORE_ROLE_NONE), SS_OK);
}

static void test_apikey_create_get_and_by_hash_round_trip(void **state)
{
    fx *f = *state;
    add_org_tree(f->c);
    store_apikey k = {.scopes = STORE_SCOPE_DATA_READ | STORE_SCOPE_DATA_WRITE | STORE_SCOPE_MANAGE,
                      .created_at = 4242};
    make_id(k.id, TAG_APIKEY, 1);
    make_id(k.org_id, TAG_ORG, 2);
    memset(k.name, 'n', SS_NAME_MAX);
    fill_hash(k.key_hash, 9);
    make_id(k.created_by, TAG_USER, 3);
    assert_int_equal(store_apikey_create(f->c, &k), SS_OK);

    store_apikey got;
    memset(&got, 0x5a, sizeof got);
    assert_int_equal(store_apikey_get(f->c, k.id, &got), SS_OK);
    assert_apikey_equal(&got, &k);
    memset(&got, 0x5a, sizeof got);
    assert_int_equal(store_apikey_get_by_hash(f->c, k.key_hash, &got), SS_OK);
    assert_apikey_equal(&got, &k);

    uint8_t other[SS_SECRET_HASH_BYTES];
    fill_hash(other, 10);
    assert_int_equal(store_apikey_get_by_hash(f->c, other, &got), SS_NOT_FOUND);
    char missing[SS_ID_LEN + 1];
    make_id(missing, TAG_APIKEY, 2);
    assert_int_equal(store_apikey_get(f->c, missing, &got), SS_NOT_FOUND);
}

static void test_apikey_list_newest_first_per_org_and_delete(void **state)
{
    fx *f = *state;
    add_org_tree(f->c);
    assert_int_equal(add_apikey(f->c, 1, 1, 1, 100), SS_OK);
    assert_int_equal(add_apikey(f->c, 2, 1, 2, 300), SS_OK);
    assert_int_equal(add_apikey(f->c, 3, 1, 3, 200), SS_OK);
    assert_int_equal(add_apikey(f->c, 4, 2, 4, 400), SS_OK);
    char o1[SS_ID_LEN + 1], o3[SS_ID_LEN + 1];
    make_id(o1, TAG_ORG, 1);
    make_id(o3, TAG_ORG, 3);
    collect *k = collect_new();
    assert_int_equal(store_apikey_list(f->c, o1, apikey_cb, k), SS_OK);
    assert_int_equal(k->n, 3);
    assert_id(k->ids[0], TAG_APIKEY, 2);
    assert_id(k->ids[1], TAG_APIKEY, 3);
    assert_id(k->ids[2], TAG_APIKEY, 1);
    free(k);
    k = collect_new();
    k->stop_after = 2;
    assert_int_equal(store_apikey_list(f->c, o1, apikey_cb, k), SS_OK);
    assert_int_equal(k->n, 2);
    free(k);
    k = collect_new();
    assert_int_equal(store_apikey_list(f->c, o3, apikey_cb, k), SS_OK);
    assert_int_equal(k->n, 0);
    free(k);

    char id[SS_ID_LEN + 1];
    make_id(id, TAG_APIKEY, 2);
    assert_int_equal(store_apikey_delete(f->c, id), SS_OK);
    store_apikey got;
    assert_int_equal(store_apikey_get(f->c, id, &got), SS_NOT_FOUND);
    uint8_t h[SS_SECRET_HASH_BYTES];
    fill_hash(h, 2);
    assert_int_equal(store_apikey_get_by_hash(f->c, h, &got), SS_NOT_FOUND);
    assert_int_equal(store_apikey_delete(f->c, id), SS_NOT_FOUND);
    k = collect_new();
    assert_int_equal(store_apikey_list(f->c, o1, apikey_cb, k), SS_OK);
    assert_int_equal(k->n, 2);
    free(k);
}

static void test_audit_round_trip_with_increasing_ids(void **state)
{
    fx *f = *state;
    assert_int_equal(add_audit(f->c, 1, 500, "member.remove"), SS_OK);
    assert_int_equal(add_audit(f->c, 1, 600, "member.add"), SS_OK);
    /* Entries outside any org. */
    assert_int_equal(add_audit(f->c, 0, 550, "user.disable"), SS_OK);

    char o1[SS_ID_LEN + 1];
    make_id(o1, TAG_ORG, 1);
    collect *k = collect_new();
    assert_int_equal(store_audit_list(f->c, o1, 0, INT64_MAX, 10, audit_cb, k), SS_OK);
    assert_int_equal(k->n, 2);
    assert_int_equal(k->ts[0], 600);
    assert_int_equal(k->ts[1], 500);
    assert_true(k->num[0] > k->num[1]);
    assert_true(k->num[1] > 0);
    assert_true(k->num[1] != 12345); /* the caller's id is ignored */
    free(k);
    k = collect_new();
    assert_int_equal(store_audit_list(f->c, "", 0, INT64_MAX, 10, audit_cb, k), SS_OK);
    assert_int_equal(k->n, 1);
    assert_int_equal(k->ts[0], 550);
    free(k);
}

static void test_audit_fields_round_trip_at_full_length(void **state)
{
    fx *f = *state;
    store_audit a = {.ts = 600};
    make_id(a.org_id, TAG_ORG, 1);
    memset(a.actor, 'a', sizeof a.actor - 1);
    memset(a.action, 'b', sizeof a.action - 1);
    memset(a.target, 'c', sizeof a.target - 1);
    memset(a.addr, 'd', sizeof a.addr - 1);
    memset(a.detail, 'e', sizeof a.detail - 1);
    memset(a.actor_name, 'f', sizeof a.actor_name - 1);
    assert_int_equal(store_audit_append(f->c, &a), SS_OK);
    audit_one o = {.n = 0};
    assert_int_equal(store_audit_list(f->c, a.org_id, 600, 601, 1, audit_copy_cb, &o), SS_OK);
    assert_int_equal(o.n, 1);
    assert_true(o.a.id > 0);
    assert_int_equal(o.a.ts, 600);
    assert_string_equal(o.a.org_id, a.org_id);
    assert_string_equal(o.a.actor, a.actor);
    assert_string_equal(o.a.action, a.action);
    assert_string_equal(o.a.target, a.target);
    assert_string_equal(o.a.addr, a.addr);
    assert_string_equal(o.a.detail, a.detail);
    assert_string_equal(o.a.actor_name, a.actor_name);
}

static void test_audit_list_range_limit_newest_first_per_org(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 10; i++)
        assert_int_equal(add_audit(f->c, 1, 1000 + 10 * i, "device.create"), SS_OK);
    /* Same ts twice: the later append comes first. */
    assert_int_equal(add_audit(f->c, 1, 1050, "device.delete"), SS_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(add_audit(f->c, 2, 1000 + 10 * i, "org.rename"), SS_OK);
    char o1[SS_ID_LEN + 1], o2[SS_ID_LEN + 1], o3[SS_ID_LEN + 1];
    make_id(o1, TAG_ORG, 1);
    make_id(o2, TAG_ORG, 2);
    make_id(o3, TAG_ORG, 3);

    /* from inclusive, to exclusive. */
    collect *k = collect_new();
    assert_int_equal(store_audit_list(f->c, o1, 1020, 1060, 100, audit_cb, k), SS_OK);
    assert_int_equal(k->n, 5);
    int64_t want[] = {1050, 1050, 1040, 1030, 1020};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(k->ts[i], want[i]);
        assert_id(k->ids[i], TAG_ORG, 1);
    }
    assert_true(k->num[0] > k->num[1]);
    free(k);

    /* limit N of N+1. */
    k = collect_new();
    assert_int_equal(store_audit_list(f->c, o1, 0, INT64_MAX, 10, audit_cb, k), SS_OK);
    assert_int_equal(k->n, 10);
    assert_int_equal(k->ts[0], 1090);
    assert_int_equal(k->ts[9], 1000 + 10);
    free(k);
    k = collect_new();
    assert_int_equal(store_audit_list(f->c, o1, 0, INT64_MAX, 11, audit_cb, k), SS_OK);
    assert_int_equal(k->n, 11);
    free(k);
    k = collect_new();
    assert_int_equal(store_audit_list(f->c, o1, 0, INT64_MAX, SIZE_MAX, audit_cb, k), SS_OK);
    assert_int_equal(k->n, 11);
    free(k);

    k = collect_new();
    k->stop_after = 3;
    assert_int_equal(store_audit_list(f->c, o1, 0, INT64_MAX, 100, audit_cb, k), SS_OK);
    assert_int_equal(k->n, 3);
    free(k);

    k = collect_new();
    assert_int_equal(store_audit_list(f->c, o2, 0, INT64_MAX, 100, audit_cb, k), SS_OK);
    assert_int_equal(k->n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_id(k->ids[i], TAG_ORG, 2);
    free(k);

    k = collect_new();
    assert_int_equal(store_audit_list(f->c, o3, 0, INT64_MAX, 100, audit_cb, k), SS_OK);
    assert_int_equal(store_audit_list(f->c, o1, 1060, 1060, 100, audit_cb, k), SS_OK);
    assert_int_equal(store_audit_list(f->c, o1, 2000, 1000, 100, audit_cb, k), SS_OK);
    assert_int_equal(k->n, 0);
    assert_int_equal(store_audit_list(f->c, o1, 0, INT64_MAX, 0, audit_cb, k), SS_INVAL);
    free(k);
}

static void test_usage_query_hours_days_orgs_and_bounds(void **state)
{
    fx *f = *state;
    store_usage u[] = {
        mk_usage(1, HOUR(0), "http", 1),  mk_usage(1, HOUR(0), "tcp", 2),
        mk_usage(1, HOUR(5), "http", 4),  mk_usage(1, HOUR(24), "http", 8),
        mk_usage(2, HOUR(23), "http", 16), mk_usage(2, HOUR(25), "udp", 32),
        mk_usage(3, HOUR(1), "http", 64),
    };
    assert_int_equal(store_usage_add(f->c, u, sizeof u / sizeof u[0]), SS_OK);
    char o1[SS_ID_LEN + 1], o2[SS_ID_LEN + 1];
    make_id(o1, TAG_ORG, 1);
    make_id(o2, TAG_ORG, 2);

    /* Per hour, one org, ordered by bucket then protocol. */
    usage_list *l = usage_of(f->c, 1, HOUR(0), HOUR(48), STORE_HOUR_MS);
    assert_int_equal(l->n, 4);
    assert_usage(&l->u[0], HOUR(0), "http", 1, 2);
    assert_usage(&l->u[1], HOUR(0), "tcp", 2, 4);
    assert_usage(&l->u[2], HOUR(5), "http", 4, 8);
    assert_usage(&l->u[3], HOUR(24), "http", 8, 16);
    free(l);

    /* Bounds: from inclusive, to exclusive. */
    l = usage_of(f->c, 1, HOUR(5), HOUR(24), STORE_HOUR_MS);
    assert_int_equal(l->n, 1);
    assert_usage(&l->u[0], HOUR(5), "http", 4, 8);
    free(l);
    l = usage_of(f->c, 1, HOUR(5) + 1, HOUR(24) + 1, STORE_HOUR_MS);
    assert_int_equal(l->n, 1);
    assert_usage(&l->u[0], HOUR(24), "http", 8, 16);
    free(l);

    /* Per UTC day over two orgs: summed, named by the first org. */
    const char *ids[] = {o2, o1};
    l = calloc(1, sizeof *l);
    assert_int_equal(store_usage_query(f->c, ids, 2, HOUR(0), HOUR(48), STORE_DAY_MS, usage_cb, l),
                     SS_OK);
    assert_int_equal(l->n, 4);
    assert_usage(&l->u[0], DAY0, "http", 1 + 4 + 16, 2 * (1 + 4 + 16));
    assert_usage(&l->u[1], DAY0, "tcp", 2, 4);
    assert_usage(&l->u[2], DAY0 + STORE_DAY_MS, "http", 8, 16);
    assert_usage(&l->u[3], DAY0 + STORE_DAY_MS, "udp", 32, 64);
    for (size_t i = 0; i < l->n; i++)
        assert_string_equal(l->u[i].org_id, o2);
    assert_int_equal(l->u[0].bytes_in, 100 * 21);
    assert_int_equal(l->u[0].api_requests, 4 * 21);
    free(l);

    /* The callback stops early. */
    l = calloc(1, sizeof *l);
    l->stop_after = 1;
    assert_int_equal(store_usage_query(f->c, ids, 2, HOUR(0), HOUR(48), STORE_DAY_MS, usage_cb, l),
                     SS_OK);
    assert_int_equal(l->n, 1);
    free(l);

    /* An org without usage, no orgs, an empty range: no rows. */
    l = usage_of(f->c, 9, HOUR(0), HOUR(48), STORE_HOUR_MS);
    assert_int_equal(l->n, 0);
    assert_int_equal(store_usage_query(f->c, ids, 0, HOUR(0), HOUR(48), STORE_HOUR_MS, usage_cb,
                                       l), SS_OK);
    assert_int_equal(store_usage_query(f->c, ids, 2, HOUR(5), HOUR(5), STORE_HOUR_MS, usage_cb,
                                       l), SS_OK);
    assert_int_equal(l->n, 0);
    free(l);

    /* Only hours and days. */
    assert_int_equal(store_usage_query(f->c, ids, 2, HOUR(0), HOUR(48), 60000, usage_cb, NULL),
                     SS_INVAL);
    assert_int_equal(store_usage_query(f->c, ids, 2, HOUR(0), HOUR(48), 0, usage_cb, NULL),
                     SS_INVAL);
    const char *bad[] = {o1, NULL};
    assert_int_equal(store_usage_query(f->c, bad, 2, HOUR(0), HOUR(48), STORE_HOUR_MS, usage_cb,
                                       NULL), SS_INVAL);
    assert_int_equal(store_usage_query(f->c, NULL, 1, HOUR(0), HOUR(48), STORE_HOUR_MS, usage_cb,
                                       NULL), SS_INVAL);
}

/* The IN list holds up to 1024 orgs (an org and its descendants). */
static void test_usage_query_org_count_limit(void **state)
{
    fx *f = *state;
    enum { ORGS_MAX = 1024 };
    char(*ids)[SS_ID_LEN + 1] = calloc(ORGS_MAX + 1, sizeof *ids);
    const char **ptrs = calloc(ORGS_MAX + 1, sizeof *ptrs);
    assert_non_null(ids);
    assert_non_null(ptrs);
    for (unsigned i = 0; i <= ORGS_MAX; i++) {
        make_id(ids[i], TAG_ORG, i + 1);
        ptrs[i] = ids[i];
    }
    store_usage u[] = {mk_usage(1, HOUR(0), "http", 1), mk_usage(ORGS_MAX, HOUR(0), "http", 2),
                       mk_usage(ORGS_MAX + 1, HOUR(0), "http", 4)};
    assert_int_equal(store_usage_add(f->c, u, 3), SS_OK);
    usage_list *l = calloc(1, sizeof *l);
    assert_int_equal(store_usage_query(f->c, ptrs, ORGS_MAX, HOUR(0), HOUR(1), STORE_HOUR_MS,
                                       usage_cb, l), SS_OK);
    assert_int_equal(l->n, 1);
    assert_usage(&l->u[0], HOUR(0), "http", 3, 6);
    free(l);
    assert_int_equal(store_usage_query(f->c, ptrs, ORGS_MAX + 1, HOUR(0), HOUR(1), STORE_HOUR_MS,
                                       usage_cb, NULL), SS_INVAL);
    free(ptrs);
    free(ids);
}

static void test_usage_day_sums_readings_and_bytes_per_org(void **state)
{
    fx *f = *state;
    store_usage u[] = {
        mk_usage(1, HOUR(0), "http", 1), mk_usage(1, HOUR(23), "tcp", 2),
        mk_usage(1, HOUR(24), "http", 100), mk_usage(1, HOUR(-1), "http", 200),
        mk_usage(2, HOUR(12), "udp", 4),
    };
    assert_int_equal(store_usage_add(f->c, u, sizeof u / sizeof u[0]), SS_OK);
    usage_list *l = calloc(1, sizeof *l);
    assert_int_equal(store_usage_day(f->c, DAY0, usage_cb, l), SS_OK);
    assert_int_equal(l->n, 2);
    assert_id(l->u[0].org_id, TAG_ORG, 1);
    assert_int_equal(l->u[0].readings, 2 * 3);
    assert_int_equal(l->u[0].bytes_in, 110 * 3);
    assert_id(l->u[1].org_id, TAG_ORG, 2);
    assert_int_equal(l->u[1].readings, 8);
    assert_int_equal(l->u[1].bytes_in, 440);
    free(l);
    l = calloc(1, sizeof *l);
    assert_int_equal(store_usage_day(f->c, DAY0 + 2 * STORE_DAY_MS, usage_cb, l), SS_OK);
    assert_int_equal(l->n, 0);
    free(l);
}

static void test_org_tree_lists_every_org_with_parent(void **state)
{
    fx *f = *state;
    tree_list *t = calloc(1, sizeof *t);
    assert_int_equal(store_org_tree(f->c, tree_cb, t), SS_OK);
    assert_int_equal(t->n, 0);
    add_org_forest(f->c);
    assert_int_equal(store_org_tree(f->c, tree_cb, t), SS_OK);
    assert_int_equal(t->n, 5);
    unsigned parent[] = {0, 1, 2, 1, 0};
    for (unsigned i = 0; i < 5; i++) {
        assert_id(t->ids[i], TAG_ORG, i + 1);
        if (parent[i])
            assert_id(t->parents[i], TAG_ORG, parent[i]);
        else
            assert_string_equal(t->parents[i], "");
    }
    free(t);
    t = calloc(1, sizeof *t);
    t->stop_after = 2;
    assert_int_equal(store_org_tree(f->c, tree_cb, t), SS_OK);
    assert_int_equal(t->n, 2);
    free(t);
}

static void test_org_subtree_org_first_with_grandchildren(void **state)
{
    fx *f = *state;
    add_org_forest(f->c);
    char id[SS_ID_LEN + 1];
    tree_list *t = calloc(1, sizeof *t);
    make_id(id, TAG_ORG, 1);
    assert_int_equal(store_org_subtree(f->c, id, subtree_cb, t), SS_OK);
    assert_int_equal(t->n, 4);
    assert_id(t->ids[0], TAG_ORG, 1);
    assert_id(t->ids[1], TAG_ORG, 2);
    assert_id(t->ids[2], TAG_ORG, 4);
    assert_id(t->ids[3], TAG_ORG, 3);
    free(t);

    t = calloc(1, sizeof *t);
    make_id(id, TAG_ORG, 2);
    assert_int_equal(store_org_subtree(f->c, id, subtree_cb, t), SS_OK);
    assert_int_equal(t->n, 2);
    assert_id(t->ids[0], TAG_ORG, 2);
    assert_id(t->ids[1], TAG_ORG, 3);
    free(t);

    t = calloc(1, sizeof *t);
    make_id(id, TAG_ORG, 5);
    assert_int_equal(store_org_subtree(f->c, id, subtree_cb, t), SS_OK);
    assert_int_equal(t->n, 1);
    assert_id(t->ids[0], TAG_ORG, 5);
    free(t);

    t = calloc(1, sizeof *t);
    t->stop_after = 1;
    make_id(id, TAG_ORG, 1);
    assert_int_equal(store_org_subtree(f->c, id, subtree_cb, t), SS_OK);
    assert_int_equal(t->n, 1);
    make_id(id, TAG_ORG, 9);
    assert_int_equal(store_org_subtree(f->c, id, subtree_cb, t), SS_NOT_FOUND);
    free(t);
}

static void test_acct_session_put_inserts_then_updates(void **state)
{
    fx *f = *state;
    store_acct_session s = mk_acct(1, 1, "device", 100, 0);
    assert_int_equal(store_acct_session_put(f->c, &s, 1), SS_OK);
    acct_list *l = acct_of(f->c, 1, NULL, 0, 10);
    assert_int_equal(l->n, 1);
    assert_acct(&l->s[0], &s);
    free(l);
    /* Same id: the record is replaced whole. */
    s.ended_at = 200;
    s.messages = 99;
    snprintf(s.end_reason, sizeof s.end_reason, "timeout");
    assert_int_equal(store_acct_session_put(f->c, &s, 1), SS_OK);
    l = acct_of(f->c, 1, NULL, 0, 10);
    assert_int_equal(l->n, 1);
    assert_acct(&l->s[0], &s);
    free(l);
    /* Every string at full length round-trips. */
    store_acct_session full = mk_acct(2, 1, "apikey", 300, 0);
    memset(full.kind, 'k', sizeof full.kind - 1);
    memset(full.protocol, 'p', sizeof full.protocol - 1);
    memset(full.addr, 'a', sizeof full.addr - 1);
    memset(full.end_reason, 'e', sizeof full.end_reason - 1);
    assert_int_equal(store_acct_session_put(f->c, &full, 1), SS_OK);
    l = acct_of(f->c, 1, NULL, 0, 1);
    assert_int_equal(l->n, 1);
    assert_acct(&l->s[0], &full);
    free(l);
}

static void test_acct_session_list_filters_and_limit(void **state)
{
    fx *f = *state;
    store_acct_session s[] = {
        mk_acct(1, 1, "device", 100, 150), mk_acct(2, 1, "user", 300, 0),
        mk_acct(3, 1, "device", 200, 0),   mk_acct(4, 1, "apikey", 400, 450),
        mk_acct(5, 2, "device", 500, 0),   mk_acct(6, 0, "user", 600, 0),
    };
    assert_int_equal(store_acct_session_put(f->c, s, 6), SS_OK);

    acct_list *l = acct_of(f->c, 1, NULL, 0, 100);
    assert_int_equal(l->n, 4);
    int64_t want[] = {400, 300, 200, 100};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(l->s[i].started_at, want[i]);
    free(l);

    l = acct_of(f->c, 1, "device", 0, 100);
    assert_int_equal(l->n, 2);
    assert_int_equal(l->s[0].started_at, 200);
    assert_int_equal(l->s[1].started_at, 100);
    free(l);

    l = acct_of(f->c, 1, NULL, 1, 100);
    assert_int_equal(l->n, 2);
    assert_int_equal(l->s[0].started_at, 300);
    assert_int_equal(l->s[1].started_at, 200);
    free(l);

    l = acct_of(f->c, 1, "device", 1, 100);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->s[0].kind, "device");
    assert_int_equal(l->s[0].ended_at, 0);
    free(l);

    /* limit N of N+1. */
    l = acct_of(f->c, 1, NULL, 0, 3);
    assert_int_equal(l->n, 3);
    assert_int_equal(l->s[2].started_at, 200);
    free(l);
    l = acct_of(f->c, 1, NULL, 0, SIZE_MAX);
    assert_int_equal(l->n, 4);
    free(l);

    /* A user without one org is listed under "". */
    l = calloc(1, sizeof *l);
    assert_int_equal(store_acct_session_list(f->c, "", NULL, 0, 10, acct_cb, l), SS_OK);
    assert_int_equal(l->n, 1);
    assert_int_equal(l->s[0].started_at, 600);
    assert_int_equal(store_acct_session_list(f->c, "", NULL, 0, 0, acct_cb, l), SS_INVAL);
    free(l);
    l = acct_of(f->c, 1, "nokind", 0, 100);
    assert_int_equal(l->n, 0);
    free(l);
}

/* ---- duties every engine keeps (store_series.h, store_accounts.h) ------ */

/* Two orgs, each with a device, a member, a key, an invitation, an audit
 * entry, readings and a session record: every list of one org shows its
 * own rows only. */
static void add_two_orgs_of_everything(store_conn *c)
{
    for (unsigned o = 1; o <= 2; o++) {
        char email[32];
        snprintf(email, sizeof email, "member%u@example.com", o);
        assert_int_equal(add_user(c, o, email), SS_OK);
        snprintf(email, sizeof email, "invited%u@example.com", o);
        assert_int_equal(add_user(c, 10 + o, email), SS_OK);
        assert_int_equal(add_org(c, o, o == 1 ? "one" : "two", -1), SS_OK);
        assert_int_equal(set_role(c, o, o, STORE_ROLE_EDITOR), SS_OK);
        assert_int_equal(add_device(c, o, o, "dev", (uint8_t)(16 * o)), SS_OK);
        assert_int_equal(add_apikey(c, o, o, (uint8_t)(100 + o), 5000 + o), SS_OK);
        assert_int_equal(add_audit(c, o, BASE + o, "device.create"), SS_OK);
        store_invitation inv = {.role = STORE_ROLE_VIEWER, .created_at = 6000 + o};
        snprintf(inv.id, sizeof inv.id, "%08x%016x", 0x1au, o);
        make_id(inv.org_id, TAG_ORG, o);
        make_id(inv.user_id, TAG_USER, 10 + o);
        snprintf(inv.invited_by, sizeof inv.invited_by, "user:%08x%016x", TAG_USER, o);
        assert_int_equal(store_invitation_put(c, &inv), SS_OK);
        store_acct_session rec = mk_acct(o, o, "device", 100, 0);
        char dev[SS_ID_LEN + 1], org[SS_ID_LEN + 1];
        make_id(dev, TAG_DEVICE, o);
        make_id(org, TAG_ORG, o);
        ss_reading r = rd("t", BASE, o);
        store_batch b = {.device_id = dev, .org_id = org, .readings = &r, .len = 1,
                         .protocol = "tcp", .received_at = HOUR(0), .session = &rec};
        assert_int_equal(store_write_batches(c, &b, 1), SS_OK);
    }
}

static int invitation_cb(void *ctx, const store_invitation *inv)
{
    collect *k = ctx;
    if (k->n < COLLECT_MAX)
        snprintf(k->ids[k->n], sizeof k->ids[0], "%s", inv->org_id);
    return collect_next(k);
}

static int member_org_cb(void *ctx, const store_user *u, store_role role)
{
    collect *k = ctx;
    if (k->n < COLLECT_MAX) {
        snprintf(k->ids[k->n], sizeof k->ids[0], "%s", u->id);
        k->roles[k->n] = role;
    }
    return collect_next(k);
}

static void test_lists_of_one_org_hold_its_own_rows_only(void **state)
{
    fx *f = *state;
    add_two_orgs_of_everything(f->c);
    for (unsigned o = 1; o <= 2; o++) {
        char org[SS_ID_LEN + 1];
        make_id(org, TAG_ORG, o);
        collect *k = collect_new();
        assert_int_equal(store_device_list(f->c, org, device_cb, k), SS_OK);
        assert_int_equal(k->n, 1);
        assert_id(k->ids[0], TAG_DEVICE, o);
        free(k);

        k = collect_new();
        assert_int_equal(store_apikey_list(f->c, org, apikey_cb, k), SS_OK);
        assert_int_equal(k->n, 1);
        free(k);

        k = collect_new();
        assert_int_equal(store_member_list(f->c, org, member_org_cb, k), SS_OK);
        assert_int_equal(k->n, 1);
        assert_id(k->ids[0], TAG_USER, o);
        free(k);

        k = collect_new();
        assert_int_equal(store_invitation_list_org(f->c, org, invitation_cb, k), SS_OK);
        assert_int_equal(k->n, 1);
        assert_string_equal(k->ids[0], org);
        free(k);

        k = collect_new();
        assert_int_equal(store_audit_list(f->c, org, 0, INT64_MAX, 10, audit_cb, k), SS_OK);
        assert_int_equal(k->n, 1);
        free(k);

        acct_list *a = acct_of(f->c, o, NULL, 0, 10);
        assert_int_equal(a->n, 1);
        assert_string_equal(a->s[0].org_id, org);
        free(a);

        usage_list *u = usage_of(f->c, o, HOUR(0), HOUR(1), STORE_HOUR_MS);
        assert_int_equal(u->n, 1);
        assert_usage(&u->u[0], HOUR(0), "tcp", 1, 1);
        free(u);

        /* A person sees the orgs they belong to, not the other. */
        char user[SS_ID_LEN + 1];
        make_id(user, TAG_USER, o);
        k = collect_new();
        assert_int_equal(store_org_list(f->c, user, org_cb, k), SS_OK);
        assert_int_equal(k->n, 1);
        assert_string_equal(k->ids[0], org);
        free(k);
    }
}

/* Makes a batch for an unknown device one that every engine refuses
 * whole. An engine keeping the accounts and the series refuses the unknown
 * device; a series engine apart from the accounts knows no devices and
 * takes the ids it is given, so there the batch also carries a reading
 * no parser lets through (an empty channel). */
static void refused_by_every_engine(ss_reading *r)
{
    if (engine->series_file)
        r->channel[0] = '\0';
}

/* Each batch that stores readings adds its message and readings to the
 * usage of (org, hour, protocol) in the same transaction; a call that
 * fails adds nothing, for any of its batches. */
static void test_usage_is_committed_with_the_readings(void **state)
{
    fx *f = *state;
    assert_int_equal(add_org(f->c, 1, "org", -1), SS_OK);
    assert_int_equal(add_device(f->c, 1, 1, "a", 1), SS_OK);
    assert_int_equal(add_device(f->c, 2, 1, "b", 2), SS_OK);
    char dev[3][SS_ID_LEN + 1], org[SS_ID_LEN + 1];
    make_id(dev[1], TAG_DEVICE, 1);
    make_id(dev[2], TAG_DEVICE, 2);
    make_id(dev[0], TAG_DEVICE, 99); /* no such device */
    make_id(org, TAG_ORG, 1);
    ss_reading rs[3] = {rd("t", BASE, 1), rd("h", BASE, 2), rd("t", BASE + 1, 3)};
    store_batch ok[2] = {
        {.device_id = dev[1], .org_id = org, .readings = rs, .len = 3, .protocol = "tcp",
         .received_at = HOUR(0) + 5},
        {.device_id = dev[2], .org_id = org, .readings = rs, .len = 1, .protocol = "tcp",
         .received_at = HOUR(0) + 6},
    };
    assert_int_equal(store_write_batches(f->c, ok, 2), SS_OK);
    usage_list *u = usage_of(f->c, 1, HOUR(0), HOUR(1), STORE_HOUR_MS);
    assert_int_equal(u->n, 1);
    assert_usage(&u->u[0], HOUR(0), "tcp", 2, 4);
    free(u);

    /* One batch of the call fails: neither its readings nor the others'
     * are stored, and the usage does not move. */
    ss_reading later = rd("t", BASE + 100, 9);
    ss_reading ghostly = later;
    refused_by_every_engine(&ghostly);
    store_batch bad[2] = {
        {.device_id = dev[2], .org_id = org, .readings = &later, .len = 1, .protocol = "tcp",
         .received_at = HOUR(0) + 7},
        {.device_id = dev[0], .org_id = org, .readings = &ghostly, .len = 1, .protocol = "tcp",
         .received_at = HOUR(0) + 7},
    };
    assert_int_not_equal(store_write_batches(f->c, bad, 2), SS_OK);
    u = usage_of(f->c, 1, HOUR(0), HOUR(1), STORE_HOUR_MS);
    assert_int_equal(u->n, 1);
    assert_usage(&u->u[0], HOUR(0), "tcp", 2, 4);
    free(u);
    collect *k = collect_new();
    store_query q = {.device_id = dev[2], .channel = "t", .from = BASE, .to = BASE + 1000,
                     .limit = 10};
    assert_int_equal(store_query_points(f->c, &q, point_cb, k), SS_OK);
    assert_int_equal(k->n, 1);
    assert_int_equal(k->ts[0], BASE);
    free(k);
}

/* A batch's session record is written with the readings it stored: with
 * the batch's message and readings counted, once per batch; a failed call
 * writes no record. */
static void test_session_record_is_committed_with_the_readings(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    char dev[SS_ID_LEN + 1], ghost[SS_ID_LEN + 1], org[SS_ID_LEN + 1];
    make_id(dev, TAG_DEVICE, 1);
    make_id(ghost, TAG_DEVICE, 99);
    make_id(org, TAG_ORG, 1);
    ss_reading rs[2] = {rd("t", BASE, 1), rd("h", BASE, 2)};
    ss_reading ghostly[2] = {rs[0], rs[1]};
    refused_by_every_engine(&ghostly[1]);
    store_acct_session lost = mk_acct(8, 1, "device", 100, 0);
    store_batch fail = {.device_id = ghost, .org_id = org, .readings = ghostly, .len = 2,
                        .protocol = "tcp", .received_at = BASE, .session = &lost};
    assert_int_not_equal(store_write_batches(f->c, &fail, 1), SS_OK);
    acct_list *l = acct_of(f->c, 1, NULL, 0, 10);
    assert_int_equal(l->n, 0);
    free(l);

    store_acct_session rec = mk_acct(7, 1, "device", 100, 0);
    store_batch b = {.device_id = dev, .org_id = org, .readings = rs, .len = 2,
                     .protocol = "tcp", .received_at = BASE, .session = &rec};
    assert_int_equal(store_write_batches(f->c, &b, 1), SS_OK);
    l = acct_of(f->c, 1, NULL, 0, 10);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->s[0].id, rec.id);
    assert_int_equal(l->s[0].messages, rec.messages + 1);
    assert_int_equal(l->s[0].readings, rec.readings + 2);
    assert_int_equal(l->s[0].ended_at, 0);
    free(l);

    /* A record already there (the meter wrote it before these readings)
     * gets the batch's message and readings added, in the batch's commit:
     * what a crash leaves counts every reading acknowledged. */
    assert_int_equal(store_write_batches(f->c, &b, 1), SS_OK);
    l = acct_of(f->c, 1, NULL, 1, 10);
    assert_int_equal(l->n, 1);
    assert_int_equal(l->s[0].messages, rec.messages + 2);
    assert_int_equal(l->s[0].readings, rec.readings + 4);
    free(l);

    /* The meter's snapshot taken before that commit and written after it
     * sets the other counts but takes no message or reading away. */
    store_acct_session older = rec;
    older.messages += 1;
    older.readings += 2;
    older.bytes_in += 50;
    assert_int_equal(store_acct_session_put(f->c, &older, 1), SS_OK);
    l = acct_of(f->c, 1, NULL, 1, 10);
    assert_int_equal(l->n, 1);
    assert_int_equal(l->s[0].messages, rec.messages + 2);
    assert_int_equal(l->s[0].readings, rec.readings + 4);
    assert_int_equal(l->s[0].bytes_in, older.bytes_in);
    free(l);

    /* A crash leaves it active; the next start ends it "crash". */
    assert_int_equal(store_acct_session_close_stale(f->c, BASE + 5), SS_OK);
    l = acct_of(f->c, 1, NULL, 0, 10);
    assert_int_equal(l->n, 1);
    assert_int_equal(l->s[0].ended_at, BASE + 5);
    assert_string_equal(l->s[0].end_reason, "crash");
    free(l);
}

/* Many batches of many records in one commit (an MQTT group commit):
 * each record counts each of its batches once, whether the store had it
 * before or not, past the number of records a commit sums at once. */
static void test_session_records_of_one_commit_count_every_batch(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    char dev[SS_ID_LEN + 1], org[SS_ID_LEN + 1];
    make_id(dev, TAG_DEVICE, 1);
    make_id(org, TAG_ORG, 1);
    enum { RECORDS = 40, ROUNDS = 2, BATCHES = RECORDS * ROUNDS };
    store_acct_session recs[RECORDS];
    ss_reading rs[BATCHES];
    store_batch b[BATCHES];
    for (unsigned i = 0; i < RECORDS; i++)
        recs[i] = mk_acct(i + 1, 1, "device", 100, 0);
    for (unsigned k = 0; k < BATCHES; k++) {
        rs[k] = rd("t", BASE + k, (double)k);
        b[k] = (store_batch){.device_id = dev, .org_id = org, .readings = &rs[k], .len = 1,
                             .protocol = "mqtt", .received_at = BASE,
                             .session = &recs[k % RECORDS]};
    }
    /* The first record is in the store already, as the meter wrote it. */
    assert_int_equal(store_acct_session_put(f->c, &recs[0], 1), SS_OK);
    assert_int_equal(store_write_batches(f->c, b, BATCHES), SS_OK);
    acct_list *l = acct_of(f->c, 1, NULL, 0, 100);
    assert_int_equal(l->n, RECORDS);
    for (size_t j = 0; j < l->n; j++) {
        unsigned i = 0;
        while (i < RECORDS && strcmp(recs[i].id, l->s[j].id) != 0)
            i++;
        assert_true(i < RECORDS);
        assert_int_equal(l->s[j].messages, recs[i].messages + ROUNDS);
        assert_int_equal(l->s[j].readings, recs[i].readings + ROUNDS);
    }
    free(l);
}

/* A deleted device's series leave every answer at once; its readings go
 * in bounded purge steps until none is pending, and no other device's
 * readings go with them. */
static void test_deleted_device_is_purged_in_steps(void **state)
{
    fx *f = *state;
    assert_int_equal(add_org(f->c, 1, "org", -1), SS_OK);
    assert_int_equal(add_device(f->c, 1, 1, "gone", 1), SS_OK);
    assert_int_equal(add_device(f->c, 2, 1, "kept", 2), SS_OK);
    enum { N = 50 };
    ss_reading rs[N];
    for (int i = 0; i < N; i++)
        rs[i] = rd(i % 2 ? "a" : "b", BASE + i, i);
    assert_int_equal(write_one(f->c, 1, rs, N), SS_OK);
    assert_int_equal(write_one(f->c, 2, rs, N), SS_OK);
    int64_t pending = -1;
    assert_int_equal(store_purge_pending(f->c, &pending), SS_OK);
    assert_int_equal(pending, 0);

    char gone[SS_ID_LEN + 1];
    make_id(gone, TAG_DEVICE, 1);
    assert_int_equal(store_device_delete(f->c, gone), SS_OK);
    store_device d;
    assert_int_equal(store_device_get(f->c, gone, &d), SS_NOT_FOUND);
    assert_int_equal(store_device_delete(f->c, gone), SS_NOT_FOUND);
    collect *k = channels_of(f->c, 1);
    assert_int_equal(k->n, 0);
    free(k);
    assert_int_equal(store_purge_pending(f->c, &pending), SS_OK);
    assert_true(pending >= 1);

    size_t total = 0, steps = 0;
    int more = 1;
    while (more) {
        size_t deleted = 0;
        assert_int_equal(store_purge_step(f->c, 7, &deleted, &more), SS_OK);
        assert_true(deleted <= 7);
        total += deleted;
        assert_true(++steps < 100);
    }
    assert_int_equal(total, N);
    assert_int_equal(store_purge_pending(f->c, &pending), SS_OK);
    assert_int_equal(pending, 0);
    k = channels_of(f->c, 2);
    assert_int_equal(k->n, 2);
    assert_int_equal(k->ch[0].count + k->ch[1].count, N);
    free(k);
}

/* Deletes [from, to) to its end in steps of `step`; OUT the steps taken. */
static size_t delete_all(store_conn *c, const char *channel, int64_t from, int64_t to,
                         size_t step, size_t *steps)
{
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    store_range r = {.device_id = id, .channel = channel, .from = from, .to = to};
    size_t total = 0;
    int more = 1;
    *steps = 0;
    while (more) {
        size_t deleted = 0;
        assert_int_equal(store_delete_readings(c, &r, step, &deleted, &more), SS_OK);
        assert_true(deleted <= step);
        total += deleted;
        assert_true(++*steps < 100);
    }
    return total;
}

static collect *points_of(store_conn *c, const char *channel)
{
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    store_query q = {.device_id = id, .channel = channel, .from = BASE, .to = BASE + 3600000,
                     .limit = 1000};
    collect *k = collect_new();
    assert_int_equal(store_query_points(c, &q, point_cb, k), SS_OK);
    return k;
}

/* A range deleted in bounded steps leaves nothing inside it and all outside
 * it, of the channel named or of all; latest becomes the newest remaining
 * reading, and a series emptied leaves the channel list. */
static void test_delete_range_in_steps_keeps_outside_and_latest(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    enum { N = 40 };
    ss_reading rs[2 * N];
    for (int i = 0; i < N; i++) {
        rs[2 * i] = rd("a", BASE + i * 1000, i);
        rs[2 * i + 1] = rd("b", BASE + i * 1000, 100 + i);
    }
    assert_int_equal(write_one(f->c, 1, rs, 2 * N), SS_OK);

    /* Channel a only, [10 s, 40 s): its newest (39 s) goes; 9 s is latest. */
    size_t steps = 0;
    assert_int_equal(delete_all(f->c, "a", BASE + 10000, BASE + 40000, 7, &steps), N - 10);
    assert_true(steps >= (N - 10) / 7);
    collect *k = channels_of(f->c, 1);
    assert_int_equal(k->n, 2);
    assert_string_equal(k->ch[0].name, "a");
    assert_int_equal(k->ch[0].count, 10);
    assert_int_equal(k->ch[0].last_ts, BASE + 9000);
    assert_true(k->ch[0].last_value == 9);
    assert_int_equal(k->ch[1].count, N);
    assert_int_equal(k->ch[1].last_ts, BASE + (N - 1) * 1000);
    free(k);

    /* Every channel, [5 s, 20 s): both lose 5..9, b also 10..19; its
     * latest stays (outside the range). */
    assert_int_equal(delete_all(f->c, NULL, BASE + 5000, BASE + 20000, 4, &steps), 5 + 15);
    k = points_of(f->c, "a");
    assert_int_equal(k->n, 5);
    assert_int_equal(k->ts[4], BASE + 4000);
    free(k);
    k = points_of(f->c, "b");
    assert_int_equal(k->n, N - 15);
    assert_int_equal(k->ts[4], BASE + 4000);
    assert_int_equal(k->ts[5], BASE + 20000);
    free(k);
    k = channels_of(f->c, 1);
    assert_int_equal(k->ch[0].count, 5);
    assert_int_equal(k->ch[1].count, N - 15);
    assert_int_equal(k->ch[1].last_ts, BASE + (N - 1) * 1000);
    free(k);

    /* A range with nothing in it, an unknown channel: nothing, no error. */
    assert_int_equal(delete_all(f->c, NULL, BASE + 5000, BASE + 20000, 4, &steps), 0);
    assert_int_equal(steps, 1);
    assert_int_equal(delete_all(f->c, "zz", BASE, BASE + N * 1000, 4, &steps), 0);

    /* Emptied: channel a leaves the list, b is whole again after a write. */
    assert_int_equal(delete_all(f->c, "a", BASE, BASE + N * 1000, 3, &steps), 5);
    k = channels_of(f->c, 1);
    assert_int_equal(k->n, 1);
    assert_string_equal(k->ch[0].name, "b");
    free(k);
    ss_reading again = rd("a", BASE + 500, 7);
    assert_int_equal(write_one(f->c, 1, &again, 1), SS_OK);
    k = channels_of(f->c, 1);
    assert_int_equal(k->n, 2);
    assert_int_equal(k->ch[0].count, 1);
    assert_int_equal(k->ch[0].last_ts, BASE + 500);
    free(k);
    k = points_of(f->c, "a");
    assert_int_equal(k->n, 1);
    free(k);

    /* Bad arguments. */
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 1);
    store_range bad = {.device_id = id, .from = BASE, .to = BASE};
    size_t deleted = 9;
    int more = 9;
    assert_int_equal(store_delete_readings(f->c, &bad, 10, &deleted, &more), SS_INVAL);
    bad.to = BASE + 1;
    assert_int_equal(store_delete_readings(f->c, &bad, 0, &deleted, &more), SS_INVAL);
    assert_int_equal(deleted, 0);
    assert_int_equal(more, 0);
}

/* Paging a range by moving `from` past the last ts seen returns every
 * point once, in order. */
static void test_points_paged_by_from_return_each_once(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    enum { N = 10 };
    ss_reading rs[N];
    for (int i = 0; i < N; i++)
        rs[i] = rd("t", BASE + 1000 * (N - i), N - i);
    assert_int_equal(write_one(f->c, 1, rs, N), SS_OK);
    char dev[SS_ID_LEN + 1];
    make_id(dev, TAG_DEVICE, 1);
    int64_t from = BASE, seen = 0, last = 0;
    for (int page = 0; page < N; page++) {
        collect *k = collect_new();
        store_query q = {.device_id = dev, .channel = "t", .from = from, .to = BASE + 1000 * N + 1,
                         .limit = 3};
        assert_int_equal(store_query_points(f->c, &q, point_cb, k), SS_OK);
        for (size_t i = 0; i < k->n; i++) {
            assert_true(k->ts[i] > last);
            last = k->ts[i];
            assert_true(k->v[i] == (double)(last - BASE) / 1000);
        }
        seen += (int64_t)k->n;
        size_t n = k->n;
        free(k);
        if (n < 3)
            break;
        from = last + 1;
    }
    assert_int_equal(seen, N);
}

/* ---- export pages ------------------------------------------------------ */

#define EXPORT_ROWS_MAX 64

typedef struct export_rows {
    size_t n, page_n;
    size_t device[EXPORT_ROWS_MAX];
    char channel[EXPORT_ROWS_MAX][SS_CHANNEL_MAX + 1];
    int64_t ts[EXPORT_ROWS_MAX];
    double v[EXPORT_ROWS_MAX];
} export_rows;

static int export_row_cb(void *ctx, const store_export_row *row)
{
    export_rows *k = ctx;
    assert_true(k->n < EXPORT_ROWS_MAX);
    k->device[k->n] = row->device;
    snprintf(k->channel[k->n], sizeof k->channel[0], "%s", row->channel);
    k->ts[k->n] = row->ts;
    k->v[k->n] = row->value;
    k->n++;
    k->page_n++;
    return 0;
}

/* Devices 1 and 3 of org 1 with channels a, b / a, c (four readings each,
 * ts BASE + 1000 * i, value device * 100 + i), device 2 with none, and
 * device 4 of org 2 with readings on a. */
static void add_export_readings(store_conn *c)
{
    assert_int_equal(add_org(c, 1, "one", -1), SS_OK);
    assert_int_equal(add_org(c, 2, "two", -1), SS_OK);
    for (unsigned d = 1; d <= 4; d++)
        assert_int_equal(add_device(c, d, d == 4 ? 2 : 1, "dev", (uint8_t)(d * 7)), SS_OK);
    static const char *const chans[5][2] = {{0}, {"a", "b"}, {0}, {"c", "a"}, {"a", "b"}};
    for (unsigned d = 1; d <= 4; d++) {
        if (d == 2)
            continue;
        ss_reading rs[8];
        for (int i = 0; i < 8; i++)
            rs[i] = rd(chans[d][i % 2], BASE + 1000 * (3 - i / 2), d * 100 + (3 - i / 2));
        assert_int_equal(write_one(c, d, rs, 8), SS_OK);
    }
}

/* Runs a scan page after page to its end; every page within its budget. */
static export_rows *export_all(store_conn *c, store_export_scan *s)
{
    export_rows *k = calloc(1, sizeof *k);
    assert_non_null(k);
    store_export_cursor cur = {0};
    for (int page = 0; !cur.done; page++) {
        assert_true(page < 100);
        k->page_n = 0;
        assert_int_equal(store_export_page(c, s, &cur, export_row_cb, k), SS_OK);
        assert_true(k->page_n <= s->max_rows);
    }
    return k;
}

/* Followed cursor to cursor, pages return each reading of the devices and
 * range once, in (device, channel, ts) order, whatever the page budgets;
 * a device without series and another org's device add nothing. */
static void test_export_pages_return_each_reading_once_in_order(void **state)
{
    fx *f = *state;
    add_export_readings(f->c);
    char ids[4][SS_ID_LEN + 1];
    const char *devs[4];
    for (unsigned d = 0; d < 3; d++) {
        make_id(ids[d], TAG_DEVICE, d + 1);
        devs[d] = ids[d];
    }
    static const size_t budgets[][2] = {{1, 1}, {2, 1}, {3, 2}, {100, 1}, {1, 100}, {100, 100}};
    for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
        store_export_scan s = {.device_ids = devs, .n_devices = 3, .from = BASE + 1000,
                               .to = BASE + 3000, .max_rows = budgets[b][0],
                               .max_series = budgets[b][1]};
        export_rows *k = export_all(f->c, &s);
        /* [BASE+1000, BASE+3000): ts 1 and 2 of each series. */
        static const size_t want_dev[] = {0, 0, 0, 0, 2, 2, 2, 2};
        static const char *const want_ch[] = {"a", "a", "b", "b", "a", "a", "c", "c"};
        assert_int_equal(k->n, 8);
        for (size_t i = 0; i < 8; i++) {
            assert_int_equal(k->device[i], want_dev[i]);
            assert_string_equal(k->channel[i], want_ch[i]);
            assert_int_equal(k->ts[i], BASE + 1000 * (1 + (int64_t)(i % 2)));
            assert_true(k->v[i] == (double)((want_dev[i] + 1) * 100 + 1 + i % 2));
        }
        free(k);
    }
}

/* A channel filter keeps the named channels; a device list keeps its
 * devices, also one past the others' ids; an empty range is done at once. */
static void test_export_filters_channels_devices_and_range(void **state)
{
    fx *f = *state;
    add_export_readings(f->c);
    char d3[SS_ID_LEN + 1], d4[SS_ID_LEN + 1];
    make_id(d3, TAG_DEVICE, 3);
    make_id(d4, TAG_DEVICE, 4);
    const char *devs[] = {d3};
    const char *chans[] = {"b", "c"};
    store_export_scan s = {.device_ids = devs, .n_devices = 1, .channels = chans,
                           .n_channels = 2, .from = BASE, .to = BASE + 10000, .max_rows = 2,
                           .max_series = 1};
    export_rows *k = export_all(f->c, &s);
    assert_int_equal(k->n, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(k->channel[i], "c");
        assert_int_equal(k->ts[i], BASE + 1000 * (int64_t)i);
    }
    free(k);
    const char *other[] = {d4};
    s = (store_export_scan){.device_ids = other, .n_devices = 1, .from = BASE, .to = BASE + 10000,
                            .max_rows = 10, .max_series = 10};
    k = export_all(f->c, &s);
    assert_int_equal(k->n, 8);
    free(k);
    s.to = s.from;
    k = export_all(f->c, &s);
    assert_int_equal(k->n, 0);
    free(k);
}

/* A page with no device, no budget or no callback is refused. */
static void test_export_bad_scan_inval(void **state)
{
    fx *f = *state;
    const char *devs[] = {"x"};
    store_export_cursor cur = {0};
    export_rows k = {0};
    store_export_scan ok = {.device_ids = devs, .n_devices = 1, .from = 0, .to = 10,
                            .max_rows = 1, .max_series = 1};
    store_export_scan bad[4] = {ok, ok, ok, ok};
    bad[0].n_devices = 0;
    bad[1].max_rows = 0;
    bad[2].max_series = 0;
    bad[3].n_channels = 1;  /* without channels */
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(store_export_page(f->c, &bad[i], &cur, export_row_cb, &k), SS_INVAL);
    assert_int_equal(store_export_page(f->c, &ok, &cur, NULL, &k), SS_INVAL);
    assert_int_equal(store_export_page(f->c, &ok, &cur, export_row_cb, &k), SS_OK);
    assert_true(cur.done);
}

/* Latest is the reading with the highest ts, whatever order they came in;
 * a reading at a stored ts replaces its value. */
static void test_latest_is_the_newest_by_ts(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    ss_reading a[2] = {rd("t", BASE + 10, 1), rd("h", BASE, 5)};
    ss_reading b[2] = {rd("t", BASE + 5, 2), rd("h", BASE, 6)};
    assert_int_equal(write_one(f->c, 1, a, 2), SS_OK);
    assert_int_equal(write_one(f->c, 1, b, 2), SS_OK);
    char dev[SS_ID_LEN + 1];
    make_id(dev, TAG_DEVICE, 1);
    collect *k = collect_new();
    assert_int_equal(store_channel_latest(f->c, dev, channel_cb, k), SS_OK);
    assert_int_equal(k->n, 2);
    assert_string_equal(k->ch[0].name, "h");
    assert_int_equal(k->ch[0].last_ts, BASE);
    assert_true(k->ch[0].last_value == 6);
    assert_string_equal(k->ch[1].name, "t");
    assert_int_equal(k->ch[1].last_ts, BASE + 10);
    assert_true(k->ch[1].last_value == 1);
    free(k);
    k = channels_of(f->c, 1);
    assert_int_equal(k->n, 2);
    assert_int_equal(k->ch[0].count, 1);
    assert_int_equal(k->ch[1].count, 2);
    free(k);
}

/* An org with a child is not deleted (SS_CONFLICT); once the child is
 * gone it goes with its devices, and its readings leave every answer. */
static void test_org_delete_conflicts_with_children_then_takes_devices(void **state)
{
    fx *f = *state;
    assert_int_equal(add_org(f->c, 1, "parent", -1), SS_OK);
    assert_int_equal(add_org(f->c, 2, "child", 1), SS_OK);
    assert_int_equal(add_device(f->c, 1, 1, "dev", 1), SS_OK);
    ss_reading r = rd("t", BASE, 1);
    assert_int_equal(write_one(f->c, 1, &r, 1), SS_OK);
    char parent[SS_ID_LEN + 1], child[SS_ID_LEN + 1], dev[SS_ID_LEN + 1];
    make_id(parent, TAG_ORG, 1);
    make_id(child, TAG_ORG, 2);
    make_id(dev, TAG_DEVICE, 1);
    assert_int_equal(store_org_delete(f->c, parent), SS_CONFLICT);
    store_org o;
    assert_int_equal(store_org_get(f->c, parent, &o), SS_OK);
    assert_int_equal(store_org_delete(f->c, child), SS_OK);
    assert_int_equal(store_org_delete(f->c, child), SS_NOT_FOUND);
    assert_int_equal(store_org_delete(f->c, parent), SS_OK);
    assert_int_equal(store_org_get(f->c, parent, &o), SS_NOT_FOUND);
    store_device d;
    assert_int_equal(store_device_get(f->c, dev, &d), SS_NOT_FOUND);
    collect *k = channels_of(f->c, 1);
    assert_int_equal(k->n, 0);
    free(k);
}

/* Runs the purge to its end; OUT the readings it deleted. */
static size_t purge_all(store_conn *c)
{
    size_t total = 0, steps = 0;
    int more = 1;
    while (more) {
        size_t deleted = 0;
        assert_int_equal(store_purge_step(c, 16, &deleted, &more), SS_OK);
        total += deleted;
        assert_true(++steps < 1000);
    }
    int64_t pending = -1;
    assert_int_equal(store_purge_pending(c, &pending), SS_OK);
    assert_int_equal(pending, 0);
    return total;
}

/* An org's delete drops every series of its devices, whichever engine
 * keeps them: none is left in any answer, the purge takes exactly their
 * readings, and the other org's series and the usage (history) stay. */
static void test_org_delete_leaves_no_series_behind(void **state)
{
    fx *f = *state;
    assert_int_equal(add_org(f->c, 1, "gone", -1), SS_OK);
    assert_int_equal(add_org(f->c, 2, "kept", -1), SS_OK);
    assert_int_equal(add_device(f->c, 1, 1, "a", 1), SS_OK);
    assert_int_equal(add_device(f->c, 2, 1, "b", 2), SS_OK);
    assert_int_equal(add_device(f->c, 3, 2, "c", 3), SS_OK);
    char org[SS_ID_LEN + 1];
    make_id(org, TAG_ORG, 1);
    enum { N = 20 };
    ss_reading rs[N];
    for (int i = 0; i < N; i++)
        rs[i] = rd(i % 2 ? "a" : "b", BASE + i, i);
    for (unsigned d = 1; d <= 3; d++) {
        char dev[SS_ID_LEN + 1];
        make_id(dev, TAG_DEVICE, d);
        store_batch b = {.device_id = dev, .org_id = org, .readings = rs, .len = N,
                         .protocol = "tcp", .received_at = HOUR(0)};
        assert_int_equal(store_write_batches(f->c, &b, 1), SS_OK);
    }
    assert_int_equal(store_org_delete(f->c, org), SS_OK);
    for (unsigned d = 1; d <= 2; d++) {
        collect *k = channels_of(f->c, d);
        assert_int_equal(k->n, 0);
        free(k);
    }
    assert_int_equal(purge_all(f->c), 2 * N);
    collect *k = channels_of(f->c, 3);
    assert_int_equal(k->n, 2);
    assert_int_equal(k->ch[0].count + k->ch[1].count, N);
    free(k);
    usage_list *u = usage_of(f->c, 1, HOUR(0), HOUR(1), STORE_HOUR_MS);
    assert_int_equal(u->n, 1);
    assert_usage(&u->u[0], HOUR(0), "tcp", 3, 3 * N);
    free(u);
}

/* A device deleted and made again under the same id starts with no
 * readings: writes after the delete go to a new series (no writer keeps
 * the dropped one), and the purge of the old one takes none of them. */
static void test_device_made_again_after_delete_starts_empty(void **state)
{
    fx *f = *state;
    add_org_and_device(f->c, 1);
    ss_reading old[3] = {rd("t", BASE, 1), rd("t", BASE + 1, 2), rd("h", BASE, 3)};
    assert_int_equal(write_one(f->c, 1, old, 3), SS_OK);
    char dev[SS_ID_LEN + 1];
    make_id(dev, TAG_DEVICE, 1);
    assert_int_equal(store_device_delete(f->c, dev), SS_OK);
    assert_int_equal(add_device(f->c, 1, 1, "again", 9), SS_OK);
    ss_reading now = rd("t", BASE + 5, 7);
    assert_int_equal(write_one(f->c, 1, &now, 1), SS_OK);
    collect *k = channels_of(f->c, 1);
    assert_int_equal(k->n, 1);
    assert_string_equal(k->ch[0].name, "t");
    assert_int_equal(k->ch[0].count, 1);
    assert_int_equal(k->ch[0].last_ts, BASE + 5);
    free(k);
    assert_int_equal(purge_all(f->c), 3);
    k = channels_of(f->c, 1);
    assert_int_equal(k->n, 1);
    assert_int_equal(k->ch[0].count, 1);
    free(k);
}

/* Quota settings round trip; max_devices is kept in the transaction of the
 * device insert (SS_QUOTA), counting the org's descendants. */
static void test_quota_settings_and_max_devices(void **state)
{
    fx *f = *state;
    assert_int_equal(add_org(f->c, 1, "parent", -1), SS_OK);
    assert_int_equal(add_org(f->c, 2, "child", 1), SS_OK);
    store_quota q = {.max_devices = 2, .max_readings_per_day = 1000, .max_bytes_per_day = 5};
    make_id(q.org_id, TAG_ORG, 1);
    assert_int_equal(store_quota_set(f->c, &q), SS_OK);
    store_quota got;
    assert_int_equal(store_quota_get(f->c, q.org_id, &got), SS_OK);
    assert_int_equal(got.max_devices, 2);
    assert_int_equal(got.max_readings_per_day, 1000);
    assert_int_equal(got.max_bytes_per_day, 5);
    assert_int_equal(add_device(f->c, 1, 1, "a", 1), SS_OK);
    assert_int_equal(add_device(f->c, 2, 2, "b", 2), SS_OK);
    assert_int_equal(add_device(f->c, 3, 2, "c", 3), SS_QUOTA);
    store_device d;
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, 3);
    assert_int_equal(store_device_get(f->c, id, &d), SS_NOT_FOUND);
    /* All zero removes the quota. */
    store_quota none = {0};
    snprintf(none.org_id, sizeof none.org_id, "%s", q.org_id);
    assert_int_equal(store_quota_set(f->c, &none), SS_OK);
    assert_int_equal(store_quota_get(f->c, q.org_id, &got), SS_OK);
    assert_int_equal(got.max_devices, 0);
    assert_int_equal(add_device(f->c, 3, 2, "c", 3), SS_OK);
}

/* Usage rows added by the meter sum per (org, hour, protocol), and the day
 * sums serve the quota state at start-up. */
static void test_usage_add_sums_and_day_totals(void **state)
{
    fx *f = *state;
    store_usage u[3] = {mk_usage(1, HOUR(1), "http", 1), mk_usage(1, HOUR(1), "http", 2),
                        mk_usage(1, HOUR(2), "udp", 1)};
    assert_int_equal(store_usage_add(f->c, u, 3), SS_OK);
    usage_list *l = usage_of(f->c, 1, HOUR(0), HOUR(24), STORE_HOUR_MS);
    assert_int_equal(l->n, 2);
    assert_usage(&l->u[0], HOUR(1), "http", 3, 6);
    assert_int_equal(l->u[0].api_requests, 12);
    assert_usage(&l->u[1], HOUR(2), "udp", 1, 2);
    free(l);
    l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(store_usage_day(f->c, DAY0, usage_cb, l), SS_OK);
    assert_int_equal(l->n, 1);
    assert_int_equal(l->u[0].readings, 8);
    assert_int_equal(l->u[0].bytes_in, 4 * 110);
    free(l);
}

/* ---- the broker's state (store_broker.h) ------------------------------- */

/* What the broker lists hold, as counts and a text line per row in order. */
typedef struct broker_dump {
    size_t sessions, subs, messages, deliveries, inbound, retained;
    char rows[COLLECT_MAX][160];
    size_t n;
} broker_dump;

static void dump_row(broker_dump *d, const char *fmt, ...)
{
    if (d->n >= COLLECT_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->rows[d->n++], sizeof d->rows[0], fmt, ap);
    va_end(ap);
}

static int dump_session(void *ctx, const store_broker_session *s)
{
    broker_dump *d = ctx;
    d->sessions++;
    dump_row(d, "session %.4s/%s %.4s %u %lld", s->org_id + 20, s->client_id,
             s->principal_id + 20, s->expiry_s, (long long)s->disconnected_ms);
    return 0;
}

static int dump_sub(void *ctx, const store_broker_sub *s)
{
    broker_dump *d = ctx;
    d->subs++;
    dump_row(d, "sub %s %s %u %u", s->client_id, s->filter, s->options, s->sub_id);
    return 0;
}

static int dump_message(void *ctx, const store_broker_message *m)
{
    broker_dump *d = ctx;
    d->messages++;
    dump_row(d, "msg %llu %s %.*s [%zu] q%u r%u %lld", (unsigned long long)m->id, m->topic,
             (int)m->payload_len, (const char *)m->payload, m->props_len, m->qos, m->retain,
             (long long)m->published_ms);
    return 0;
}

static int dump_delivery(void *ctx, const store_broker_delivery *dv)
{
    broker_dump *d = ctx;
    d->deliveries++;
    dump_row(d, "delivery %s %llu m%llu q%u r%u p%u s%u ids%u:%u", dv->client_id,
             (unsigned long long)dv->seq, (unsigned long long)dv->msg_id, dv->qos, dv->retain,
             dv->packet_id, dv->state, dv->n_sub_ids, dv->n_sub_ids ? dv->sub_ids[dv->n_sub_ids - 1] : 0);
    return 0;
}

static int dump_inbound(void *ctx, const store_broker_inbound *in)
{
    broker_dump *d = ctx;
    d->inbound++;
    dump_row(d, "inbound %s %u", in->client_id, in->packet_id);
    return 0;
}

static int dump_retained(void *ctx, const store_broker_retained *r)
{
    broker_dump *d = ctx;
    d->retained++;
    dump_row(d, "retained %s m%llu", r->topic, (unsigned long long)r->msg_id);
    return 0;
}

static broker_dump *broker_dump_of(store_conn *c)
{
    broker_dump *d = calloc(1, sizeof *d);
    assert_non_null(d);
    assert_int_equal(store_broker_sessions(c, dump_session, d), SS_OK);
    assert_int_equal(store_broker_subs(c, dump_sub, d), SS_OK);
    assert_int_equal(store_broker_messages(c, dump_message, d), SS_OK);
    assert_int_equal(store_broker_deliveries(c, dump_delivery, d), SS_OK);
    assert_int_equal(store_broker_inbound_list(c, dump_inbound, d), SS_OK);
    assert_int_equal(store_broker_retained_list(c, dump_retained, d), SS_OK);
    return d;
}

/* Ids of the broker cases: org n, its device n (the session's owner). */
typedef struct broker_ids {
    char org[SS_ID_LEN + 1];
    char dev[SS_ID_LEN + 1];
} broker_ids;

static broker_ids broker_org(store_conn *c, unsigned n)
{
    broker_ids b;
    make_id(b.org, TAG_ORG, n);
    make_id(b.dev, TAG_DEVICE, n);
    assert_int_equal(add_org(c, n, "broker", -1), SS_OK);
    assert_int_equal(add_device(c, n, n, "dev", (uint8_t)(40 + n)), SS_OK);
    return b;
}

static store_broker_change session_put(const broker_ids *b, const char *client, uint32_t expiry)
{
    return (store_broker_change){
        .kind = STORE_BROKER_SESSION_PUT,
        .session = {.org_id = b->org, .client_id = client, .principal_id = b->dev,
                    .expiry_s = expiry, .disconnected_ms = 0},
    };
}

static store_broker_message broker_msg(const broker_ids *b, uint64_t id, const char *topic,
                                       const char *payload)
{
    static const uint8_t props[] = {0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x3c};
    return (store_broker_message){
        .id = id, .org_id = b->org, .topic = topic, .payload = (const uint8_t *)payload,
        .payload_len = strlen(payload), .props = props, .props_len = sizeof props, .qos = 1,
        .retain = 0, .published_ms = BASE + (int64_t)id,
    };
}

static store_broker_change delivery_put(const broker_ids *b, const char *client, uint64_t seq,
                                        const store_broker_message *m)
{
    static const uint32_t ids[] = {7, 300000};
    return (store_broker_change){
        .kind = STORE_BROKER_DELIVERY_PUT,
        .delivery = {.org_id = b->org, .client_id = client, .seq = seq, .msg_id = m->id,
                     .qos = 1, .retain = 0, .packet_id = 0, .state = 0, .sub_ids = ids,
                     .n_sub_ids = 2},
        .msg = m,
    };
}

static store_broker_change delivery_del(const broker_ids *b, const char *client, uint64_t seq)
{
    return (store_broker_change){
        .kind = STORE_BROKER_DELIVERY_DEL,
        .delivery = {.org_id = b->org, .client_id = client, .seq = seq},
    };
}

static store_broker_change retain_put(const broker_ids *b, const store_broker_message *m)
{
    return (store_broker_change){
        .kind = STORE_BROKER_RETAIN_PUT,
        .retained = {.org_id = b->org, .topic = m->topic, .msg_id = m->id},
        .msg = m,
    };
}

static void assert_row(const broker_dump *d, size_t i, const char *want)
{
    assert_true(i < d->n);
    assert_string_equal(d->rows[i], want);
}

/* Everything written comes back as written, in each list's order; a put
 * again replaces (a delivery's state, a session's expiry) instead of
 * adding; a message pointed at twice is stored once. */
static void test_broker_state_round_trip(void **state)
{
    fx *f = *state;
    broker_ids b = broker_org(f->c, 1);
    store_broker_message m1 = broker_msg(&b, 5, "devices/x/cmd", "on");
    store_broker_message m2 = broker_msg(&b, 9, "status", "up");
    store_broker_change ch[] = {
        session_put(&b, "zeta", 60),
        session_put(&b, "alpha", UINT32_MAX),
        {.kind = STORE_BROKER_SUB_PUT,
         .sub = {.org_id = b.org, .client_id = "alpha", .filter = "devices/+/cmd", .options = 1,
                 .sub_id = 7}},
        {.kind = STORE_BROKER_SUB_PUT,
         .sub = {.org_id = b.org, .client_id = "alpha", .filter = "$share/g/status",
                 .options = 0x2a, .sub_id = 0}},
        delivery_put(&b, "alpha", 2, &m1),
        delivery_put(&b, "alpha", 1, &m1),
        delivery_put(&b, "zeta", 1, &m1),
        {.kind = STORE_BROKER_INBOUND_PUT,
         .inbound = {.org_id = b.org, .client_id = "zeta", .packet_id = 65535}},
        retain_put(&b, &m2),
    };
    assert_int_equal(store_broker_apply(f->c, ch, sizeof ch / sizeof ch[0]), SS_OK);
    store_broker_change again[] = {session_put(&b, "zeta", 30), delivery_put(&b, "alpha", 2, &m1)};
    again[0].session.disconnected_ms = BASE;
    again[1].delivery.packet_id = 12;
    again[1].delivery.state = 1;
    again[1].delivery.n_sub_ids = 1;
    assert_int_equal(store_broker_apply(f->c, again, 2), SS_OK);
    broker_dump *d = broker_dump_of(f->c);
    assert_int_equal(d->n, 11);
    assert_row(d, 0, "session 0001/alpha 0001 4294967295 0");
    char want[160];
    snprintf(want, sizeof want, "session 0001/zeta 0001 30 %lld", (long long)BASE);
    assert_row(d, 1, want);
    assert_row(d, 2, "sub alpha $share/g/status 42 0");
    assert_row(d, 3, "sub alpha devices/+/cmd 1 7");
    snprintf(want, sizeof want, "msg 5 devices/x/cmd on [7] q1 r0 %lld", (long long)BASE + 5);
    assert_row(d, 4, want);
    snprintf(want, sizeof want, "msg 9 status up [7] q1 r0 %lld", (long long)BASE + 9);
    assert_row(d, 5, want);
    assert_row(d, 6, "delivery alpha 1 m5 q1 r0 p0 s0 ids2:300000");
    assert_row(d, 7, "delivery alpha 2 m5 q1 r0 p12 s1 ids1:7");
    assert_row(d, 8, "delivery zeta 1 m5 q1 r0 p0 s0 ids2:300000");
    assert_row(d, 9, "inbound zeta 65535");
    assert_row(d, 10, "retained status m9");
    uint64_t max = 0;
    assert_int_equal(store_broker_message_id_max(f->c, &max), SS_OK);
    assert_int_equal(max, 9);
    free(d);
}

/* A message goes in the transaction that removes the last delivery or
 * retained entry pointing at it, and not before. */
static void test_broker_message_deleted_with_last_reference(void **state)
{
    fx *f = *state;
    broker_ids b = broker_org(f->c, 1);
    store_broker_message m = broker_msg(&b, 1, "t", "x");
    store_broker_message other = broker_msg(&b, 2, "t", "y");
    store_broker_change ch[] = {session_put(&b, "a", 60), session_put(&b, "b", 60),
                                delivery_put(&b, "a", 1, &m), delivery_put(&b, "b", 1, &m),
                                retain_put(&b, &m)};
    assert_int_equal(store_broker_apply(f->c, ch, 5), SS_OK);
    store_broker_change del_a = delivery_del(&b, "a", 1);
    assert_int_equal(store_broker_apply(f->c, &del_a, 1), SS_OK);
    broker_dump *d = broker_dump_of(f->c);
    assert_int_equal(d->messages, 1);
    free(d);
    /* The retained entry moves to another message; the session holding
     * the last delivery ends: the first message has nothing left. */
    store_broker_change end[] = {
        retain_put(&b, &other),
        {.kind = STORE_BROKER_SESSION_DEL, .session = {.org_id = b.org, .client_id = "b"}},
    };
    assert_int_equal(store_broker_apply(f->c, end, 2), SS_OK);
    d = broker_dump_of(f->c);
    assert_int_equal(d->messages, 1);
    assert_int_equal(d->deliveries, 0);
    assert_int_equal(d->sessions, 1);
    char want[160];
    snprintf(want, sizeof want, "msg 2 t y [7] q1 r0 %lld", (long long)BASE + 2);
    assert_row(d, 1, want);
    free(d);
}

/* A delivery put again for its (org, client, seq) with another message
 * (a session's seq used again after its delete failed) replaces the
 * message it pointed at, which goes when nothing else points at it; one
 * still retained stays. */
static void test_broker_delivery_put_again_frees_the_message_it_replaced(void **state)
{
    fx *f = *state;
    broker_ids b = broker_org(f->c, 1);
    store_broker_message m1 = broker_msg(&b, 1, "t", "x");
    store_broker_message m2 = broker_msg(&b, 2, "t", "y");
    store_broker_message m3 = broker_msg(&b, 3, "t", "z");
    store_broker_change ch[] = {session_put(&b, "a", 60), delivery_put(&b, "a", 1, &m1),
                                delivery_put(&b, "a", 2, &m2), retain_put(&b, &m2)};
    assert_int_equal(store_broker_apply(f->c, ch, 4), SS_OK);
    store_broker_change again[] = {delivery_put(&b, "a", 1, &m3), delivery_put(&b, "a", 2, &m3)};
    assert_int_equal(store_broker_apply(f->c, again, 2), SS_OK);
    broker_dump *d = broker_dump_of(f->c);
    assert_int_equal(d->deliveries, 2);
    assert_int_equal(d->messages, 2);
    char want[160];
    snprintf(want, sizeof want, "msg 2 t y [7] q1 r0 %lld", (long long)BASE + 2);
    assert_row(d, 1, want);
    snprintf(want, sizeof want, "msg 3 t z [7] q1 r0 %lld", (long long)BASE + 3);
    assert_row(d, 2, want);
    free(d);
}

/* Changes for what the store no longer has write nothing and fail nothing
 * else of their batch: a session of an unknown org or of a principal that
 * is not the org's, a delivery or sub for a session that is gone; their
 * message is not left behind. A delete of nothing is no error. */
static void test_broker_changes_without_parent_write_nothing(void **state)
{
    fx *f = *state;
    broker_ids b = broker_org(f->c, 1);
    broker_ids other = broker_org(f->c, 2);
    broker_ids ghost;
    make_id(ghost.org, TAG_ORG, 9);
    make_id(ghost.dev, TAG_DEVICE, 9);
    broker_ids foreign = b;
    memcpy(foreign.dev, other.dev, sizeof foreign.dev);
    store_broker_message m = broker_msg(&b, 3, "t", "x");
    store_broker_message ghost_m = broker_msg(&ghost, 4, "t", "x");
    store_broker_change ch[] = {
        session_put(&ghost, "g", 60),
        session_put(&foreign, "f", 60),
        delivery_put(&b, "nobody", 1, &m),
        {.kind = STORE_BROKER_SUB_PUT,
         .sub = {.org_id = b.org, .client_id = "nobody", .filter = "#"}},
        {.kind = STORE_BROKER_INBOUND_PUT,
         .inbound = {.org_id = b.org, .client_id = "nobody", .packet_id = 1}},
        retain_put(&ghost, &ghost_m),
        delivery_del(&b, "nobody", 7),
        {.kind = STORE_BROKER_SESSION_DEL, .session = {.org_id = b.org, .client_id = "none"}},
        session_put(&b, "real", 60),
    };
    assert_int_equal(store_broker_apply(f->c, ch, sizeof ch / sizeof ch[0]), SS_OK);
    broker_dump *d = broker_dump_of(f->c);
    assert_int_equal(d->n, 1);
    assert_row(d, 0, "session 0001/real 0001 60 0");
    free(d);
}

/* A change no engine could keep fails the call before anything is
 * written. */
static void test_broker_bad_change_inval_writes_nothing(void **state)
{
    fx *f = *state;
    broker_ids b = broker_org(f->c, 1);
    store_broker_message m = broker_msg(&b, 3, "t", "x");
    store_broker_change ch[] = {session_put(&b, "a", 60), delivery_put(&b, "a", 1, &m)};
    ch[1].msg = NULL;
    assert_int_equal(store_broker_apply(f->c, ch, 2), SS_INVAL);
    ch[1] = delivery_put(&b, "a", 1, &m);
    ch[1].delivery.n_sub_ids = STORE_BROKER_SUB_IDS_MAX + 1;
    assert_int_equal(store_broker_apply(f->c, ch, 2), SS_INVAL);
    ch[1] = delivery_put(&b, "a", 1, &m);
    ch[1].delivery.msg_id = 4;
    assert_int_equal(store_broker_apply(f->c, ch, 2), SS_INVAL);
    broker_dump *d = broker_dump_of(f->c);
    assert_int_equal(d->n, 0);
    free(d);
}

/* Puts one session of each kind of owner in org n, with a sub, a
 * delivery, an inbound id and a retained message. */
static void broker_fill(store_conn *c, const broker_ids *b, const char *key_id, uint64_t msg)
{
    store_broker_message m = broker_msg(b, msg, "t", "x");
    store_broker_message r = broker_msg(b, msg + 1, "r", "y");
    store_broker_change ch[] = {
        session_put(b, "dev", 60),
        session_put(b, "app", 60),
        {.kind = STORE_BROKER_SUB_PUT, .sub = {.org_id = b->org, .client_id = "dev", .filter = "#"}},
        {.kind = STORE_BROKER_SUB_PUT, .sub = {.org_id = b->org, .client_id = "app", .filter = "#"}},
        delivery_put(b, "dev", 1, &m),
        delivery_put(b, "app", 1, &m),
        {.kind = STORE_BROKER_INBOUND_PUT,
         .inbound = {.org_id = b->org, .client_id = "dev", .packet_id = 1}},
        retain_put(b, &r),
    };
    ch[1].session.principal_id = key_id;
    assert_int_equal(store_broker_apply(c, ch, sizeof ch / sizeof ch[0]), SS_OK);
}

/* An org's delete takes its broker state in its transaction, and only its
 * own; a device's or an API key's takes the sessions it owns. */
static void test_broker_state_goes_with_its_org_device_or_key(void **state)
{
    fx *f = *state;
    broker_ids b1 = broker_org(f->c, 1);
    broker_ids b2 = broker_org(f->c, 2);
    assert_int_equal(add_apikey(f->c, 1, 1, 0x51, 100), SS_OK);
    assert_int_equal(add_apikey(f->c, 2, 2, 0x52, 100), SS_OK);
    char key1[SS_ID_LEN + 1], key2[SS_ID_LEN + 1];
    make_id(key1, TAG_APIKEY, 1);
    make_id(key2, TAG_APIKEY, 2);
    broker_fill(f->c, &b1, key1, 10);
    broker_fill(f->c, &b2, key2, 20);
    broker_dump *d = broker_dump_of(f->c);
    assert_int_equal(d->sessions, 4);
    assert_int_equal(d->messages, 4);
    free(d);
    assert_int_equal(store_org_delete(f->c, b1.org), SS_OK);
    d = broker_dump_of(f->c);
    assert_int_equal(d->sessions, 2);
    assert_int_equal(d->subs, 2);
    assert_int_equal(d->messages, 2);
    assert_int_equal(d->deliveries, 2);
    assert_int_equal(d->inbound, 1);
    assert_int_equal(d->retained, 1);
    assert_row(d, 0, "session 0002/app 0002 60 0");
    free(d);
    /* The device's session goes with the device; the message stays for
     * the key's session. Then the key's: the message goes too. */
    assert_int_equal(store_device_delete(f->c, b2.dev), SS_OK);
    d = broker_dump_of(f->c);
    assert_int_equal(d->sessions, 1);
    assert_int_equal(d->inbound, 0);
    assert_int_equal(d->messages, 2);
    free(d);
    assert_int_equal(store_apikey_delete(f->c, key2), SS_OK);
    d = broker_dump_of(f->c);
    assert_int_equal(d->sessions + d->subs + d->deliveries + d->inbound, 0);
    assert_int_equal(d->messages, 1);
    assert_int_equal(d->retained, 1);
    free(d);
    assert_int_equal(store_apikey_delete(f->c, key2), SS_NOT_FOUND);
}

/* A principal's drop, as a change, takes every session it owns. */
static void test_broker_principal_drop_change(void **state)
{
    fx *f = *state;
    broker_ids b = broker_org(f->c, 1);
    assert_int_equal(add_apikey(f->c, 1, 1, 0x51, 100), SS_OK);
    char key[SS_ID_LEN + 1];
    make_id(key, TAG_APIKEY, 1);
    broker_fill(f->c, &b, key, 10);
    store_broker_change ch = {.kind = STORE_BROKER_PRINCIPAL_DEL, .session = {.principal_id = b.dev}};
    assert_int_equal(store_broker_apply(f->c, &ch, 1), SS_OK);
    broker_dump *d = broker_dump_of(f->c);
    assert_int_equal(d->sessions, 1);
    assert_int_equal(d->subs, 1);
    assert_int_equal(d->deliveries, 1);
    assert_int_equal(d->inbound, 0);
    assert_row(d, 0, "session 0001/app 0001 60 0");
    free(d);
}

/* ---- dashboards ---------------------------------------------------------- */

#define TAG_DASH 0xdd

static store_dashboard *dash_new(unsigned n, unsigned org, const char *name)
{
    store_dashboard *d = calloc(1, sizeof *d);
    assert_non_null(d);
    make_id(d->id, TAG_DASH, n);
    make_id(d->org_id, TAG_ORG, org);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->kind = STORE_DASHBOARD_STATIC;
    d->created_at = 5000 + n;
    d->updated_at = 5000 + n;
    snprintf(d->created_by, sizeof d->created_by, "user:%024u", n);
    snprintf(d->spec, sizeof d->spec, "{\"widgets\":[]}");
    return d;
}

static int dash_cb(void *ctx, const store_dashboard *d)
{
    collect *k = ctx;
    if (k->n < COLLECT_MAX)
        snprintf(k->ids[k->n], sizeof k->ids[0], "%s", d->id);
    return collect_next(k);
}

static void test_dashboard_create_get_update_delete(void **state)
{
    fx *f = *state;
    assert_int_equal(add_org(f->c, 1, "one", -1), SS_OK);
    store_dashboard *d = dash_new(1, 1, "Boiler room");
    /* the longest layout round-trips whole */
    memset(d->spec, 'x', SS_DASHBOARD_SPEC_MAX);
    d->spec[SS_DASHBOARD_SPEC_MAX] = '\0';
    assert_int_equal(store_dashboard_create(f->c, d), SS_OK);
    assert_int_equal(store_dashboard_create(f->c, d), SS_EXISTS);
    store_dashboard *got = calloc(1, sizeof *got);
    assert_non_null(got);
    assert_int_equal(store_dashboard_get(f->c, d->id, got), SS_OK);
    assert_string_equal(got->name, "Boiler room");
    assert_string_equal(got->org_id, d->org_id);
    assert_string_equal(got->created_by, d->created_by);
    assert_int_equal(strlen(got->spec), SS_DASHBOARD_SPEC_MAX);
    assert_int_equal(got->kind, STORE_DASHBOARD_STATIC);
    assert_int_equal(got->created_at, 5001);

    snprintf(d->name, sizeof d->name, "Cellar");
    d->kind = STORE_DASHBOARD_DYNAMIC;
    snprintf(d->spec, sizeof d->spec, "{\"device_filter\":{},\"widgets\":[]}");
    d->updated_at = 9000;
    d->created_at = 1;  /* not written by an update */
    assert_int_equal(store_dashboard_update(f->c, d), SS_OK);
    assert_int_equal(store_dashboard_get(f->c, d->id, got), SS_OK);
    assert_string_equal(got->name, "Cellar");
    assert_int_equal(got->kind, STORE_DASHBOARD_DYNAMIC);
    assert_string_equal(got->spec, d->spec);
    assert_int_equal(got->updated_at, 9000);
    assert_int_equal(got->created_at, 5001);

    assert_int_equal(store_dashboard_delete(f->c, d->id), SS_OK);
    assert_int_equal(store_dashboard_get(f->c, d->id, got), SS_NOT_FOUND);
    assert_int_equal(store_dashboard_delete(f->c, d->id), SS_NOT_FOUND);
    assert_int_equal(store_dashboard_update(f->c, d), SS_NOT_FOUND);
    make_id(d->org_id, TAG_ORG, 9);
    assert_int_equal(store_dashboard_create(f->c, d), SS_NOT_FOUND);
    free(got);
    free(d);
}

static void test_dashboard_list_by_name_paged_per_org_and_bounded(void **state)
{
    fx *f = *state;
    assert_int_equal(add_org(f->c, 1, "one", -1), SS_OK);
    assert_int_equal(add_org(f->c, 2, "two", -1), SS_OK);
    const char *names[] = {"b", "a", "c", "a"};
    for (unsigned i = 0; i < 4; i++) {
        store_dashboard *d = dash_new(i + 1, 1, names[i]);
        assert_int_equal(store_dashboard_create(f->c, d), SS_OK);
        free(d);
    }
    store_dashboard *other = dash_new(50, 2, "a");
    assert_int_equal(store_dashboard_create(f->c, other), SS_OK);
    free(other);
    char org[SS_ID_LEN + 1];
    make_id(org, TAG_ORG, 1);
    collect *k = collect_new();
    assert_int_equal(store_dashboard_list(f->c, org, NULL, NULL, dash_cb, k), SS_OK);
    assert_int_equal(k->n, 4);
    assert_id(k->ids[0], TAG_DASH, 2);
    assert_id(k->ids[1], TAG_DASH, 4);
    assert_id(k->ids[2], TAG_DASH, 1);
    assert_id(k->ids[3], TAG_DASH, 3);
    char after[SS_ID_LEN + 1];
    make_id(after, TAG_DASH, 4);
    free(k);
    k = collect_new();
    assert_int_equal(store_dashboard_list(f->c, org, "a", after, dash_cb, k), SS_OK);
    assert_int_equal(k->n, 2);
    assert_id(k->ids[0], TAG_DASH, 1);
    free(k);
    /* the per-org bound, counted in the insert's transaction */
    for (unsigned i = 4; i < SS_DASHBOARDS_PER_ORG_MAX; i++) {
        store_dashboard *d = dash_new(100 + i, 1, "more");
        assert_int_equal(store_dashboard_create(f->c, d), SS_OK);
        free(d);
    }
    store_dashboard *over = dash_new(999, 1, "over");
    assert_int_equal(store_dashboard_create(f->c, over), SS_CONFLICT);
    make_id(over->org_id, TAG_ORG, 2);
    assert_int_equal(store_dashboard_create(f->c, over), SS_OK);
    free(over);
}

static void test_dashboard_goes_with_its_org(void **state)
{
    fx *f = *state;
    assert_int_equal(add_org(f->c, 1, "one", -1), SS_OK);
    store_dashboard *d = dash_new(1, 1, "x");
    assert_int_equal(store_dashboard_create(f->c, d), SS_OK);
    assert_int_equal(store_org_delete(f->c, d->org_id), SS_OK);
    assert_int_equal(store_dashboard_get(f->c, d->id, d), SS_NOT_FOUND);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_user_create_get_and_count),
        T(test_user_duplicate_email_or_id_exists),
        T(test_user_superadmin_and_longest_email_round_trip),
        T(test_user_set_password_and_disabled),
        T(test_session_create_get_and_expiry),
        T(test_session_unknown_user_or_duplicate),
        T(test_session_delete),
        T(test_session_delete_user_keeps_one_or_none),
        T(test_org_create_top_level_and_child),
        T(test_org_child_of_unknown_parent_not_found),
        T(test_org_list_all_by_name_then_id),
        T(test_org_list_for_user_includes_descendants_once),
        T(test_role_inherited_from_grandparent),
        T(test_role_highest_wins_and_never_flows_up),
        T(test_role_none_for_strangers_not_found_for_unknown_org),
        T(test_membership_none_removes_and_unknowns),
        T(test_membership_list_direct_only),
        T(test_user_in_reach_of_admins_and_keys),
        T(test_invitation_put_accept_decline),
        T(test_user_unlock_login_moves_forward),
        T(test_invitation_invite_existing_or_new),
        T(test_device_create_get_round_trip),
        T(test_device_duplicates_and_unknown_org),
        T(test_device_list_by_org_and_all),
        T(test_device_update_and_set_token),
        T(test_device_attributes_and_last_seen),
        T(test_device_list_after_resumes_by_name_then_id),
        T(test_audit_list_before_resumes_by_ts_then_id),
        T(test_write_batches_two_devices_and_channel_list),
        T(test_write_duplicate_ts_replaces_value),
        T(test_write_older_reading_keeps_last),
        T(test_write_longest_channel_and_bad_input),
        T(test_points_from_inclusive_to_exclusive),
        T(test_points_limit_asc_and_desc),
        T(test_points_callback_stops_early),
        T(test_query_unknown_device_or_channel_is_empty),
        T(test_query_bad_arguments_inval),
        T(test_buckets_every_function),
        T(test_buckets_limit_and_partial_first_bucket),
        T(test_buckets_match_naive_on_random_data),
        T(test_session_new_fields_round_trip),
        T(test_session_duplicate_id_exists_unnamed_allowed),
        T(test_session_touch_moves_last_seen_forward_only),
        T(test_session_list_newest_first_skips_expired_and_others),
        T(test_session_delete_id_only_for_its_user),
        T(test_org_device_ids_of_one_org_only),
        T(test_membership_get_direct_role_only),
        T(test_member_count_exact_role),
        T(test_membership_change_keeps_an_owner),
        T(test_apikey_create_get_and_by_hash_round_trip),
        T(test_apikey_list_newest_first_per_org_and_delete),
        T(test_audit_round_trip_with_increasing_ids),
        T(test_audit_fields_round_trip_at_full_length),
        T(test_audit_list_range_limit_newest_first_per_org),
        T(test_usage_query_hours_days_orgs_and_bounds),
        T(test_usage_query_org_count_limit),
        T(test_usage_day_sums_readings_and_bytes_per_org),
        T(test_org_tree_lists_every_org_with_parent),
        T(test_org_subtree_org_first_with_grandchildren),
        T(test_acct_session_put_inserts_then_updates),
        T(test_acct_session_list_filters_and_limit),
        T(test_lists_of_one_org_hold_its_own_rows_only),
        T(test_usage_is_committed_with_the_readings),
        T(test_session_record_is_committed_with_the_readings),
        T(test_session_records_of_one_commit_count_every_batch),
        T(test_deleted_device_is_purged_in_steps),
        T(test_delete_range_in_steps_keeps_outside_and_latest),
        T(test_points_paged_by_from_return_each_once),
        T(test_export_pages_return_each_reading_once_in_order),
        T(test_export_filters_channels_devices_and_range),
        T(test_export_bad_scan_inval),
        T(test_latest_is_the_newest_by_ts),
        T(test_org_delete_conflicts_with_children_then_takes_devices),
        T(test_org_delete_leaves_no_series_behind),
        T(test_device_made_again_after_delete_starts_empty),
        T(test_quota_settings_and_max_devices),
        T(test_usage_add_sums_and_day_totals),
        T(test_broker_state_round_trip),
        T(test_broker_message_deleted_with_last_reference),
        T(test_broker_delivery_put_again_frees_the_message_it_replaced),
        T(test_broker_changes_without_parent_write_nothing),
        T(test_broker_bad_change_inval_writes_nothing),
        T(test_broker_state_goes_with_its_org_device_or_key),
        T(test_broker_principal_drop_change),
        T(test_dashboard_create_get_update_delete),
        T(test_dashboard_list_by_name_paged_per_org_and_bounded),
        T(test_dashboard_goes_with_its_org),
#undef T
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof engines / sizeof engines[0]; i++) {
        engine = &engines[i];
        failed += cmocka_run_group_tests_name(engines[i].name, tests, NULL, NULL);
    }
    return failed;
}
