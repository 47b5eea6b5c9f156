/* store_cases.h — the records, ids and collectors the store's unit tests
 * share (test_store_contract.c, test_store.c): a case builds users, orgs,
 * devices and readings through store.h and collects what lists answer. */
#ifndef SS_TEST_STORE_CASES_H
#define SS_TEST_STORE_CASES_H

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
#include "test_dir.h"

/* A bucket-aligned base time, well after SS_TS_MIN_MS. */
#define MINUTE 60000LL

#define BASE ((SS_TS_MIN_MS / MINUTE + 1000) * MINUTE)
#define COLLECT_MAX 64

static inline void make_id(char out[SS_ID_LEN + 1], unsigned tag, unsigned n)
{
    snprintf(out, SS_ID_LEN + 1, "%08x%016x", tag, n);
}

#define TAG_USER 0xaa
#define TAG_ORG 0xbb
#define TAG_DEVICE 0xcc

static inline int add_user(store_conn *c, unsigned n, const char *email)
{
    store_user u = {.superadmin = 0, .disabled = 0, .created_at = 1000 + n};
    make_id(u.id, TAG_USER, n);
    snprintf(u.email, sizeof u.email, "%s", email);
    snprintf(u.pw_hash, sizeof u.pw_hash, "$argon2id$v=19$hash-%u", n);
    return store_user_create(c, &u);
}

/* parent < 0: top-level. */
static inline int add_org(store_conn *c, unsigned n, const char *name, int parent)
{
    store_org o = {.created_at = 2000 + n};
    make_id(o.id, TAG_ORG, n);
    snprintf(o.name, sizeof o.name, "%s", name);
    if (parent >= 0)
        make_id(o.parent_id, TAG_ORG, (unsigned)parent);
    return store_org_create(c, &o);
}

static inline void fill_hash(uint8_t h[SS_SECRET_HASH_BYTES], uint8_t seed)
{
    for (size_t i = 0; i < SS_SECRET_HASH_BYTES; i++)
        h[i] = (uint8_t)(seed + i);
}

static inline int add_device(store_conn *c, unsigned n, unsigned org, const char *name, uint8_t seed)
{
    store_device d = {.disabled = 0, .created_at = 3000 + n};
    make_id(d.id, TAG_DEVICE, n);
    make_id(d.org_id, TAG_ORG, org);
    snprintf(d.name, sizeof d.name, "%s", name);
    snprintf(d.description, sizeof d.description, "device %u", n);
    fill_hash(d.token_hash, seed);
    return store_device_create(c, &d);
}

static inline ss_reading rd(const char *channel, int64_t ts, double value)
{
    ss_reading r = {.ts = ts, .value = value};
    snprintf(r.channel, sizeof r.channel, "%s", channel);
    return r;
}

static inline int write_one(store_conn *c, unsigned device, const ss_reading *rs, size_t n)
{
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, device);
    store_batch b = {.device_id = id, .org_id = "", .readings = rs, .len = n};
    return store_write_batches(c, &b, 1);
}

/* A device with one org, ready for readings. */
static inline void add_org_and_device(store_conn *c, unsigned device)
{
    int err = add_org(c, 1, "org", -1);
    assert_true(err == SS_OK || err == SS_EXISTS);
    assert_int_equal(add_device(c, device, 1, "dev", (uint8_t)device), SS_OK);
}

typedef struct collect {
    size_t n;
    size_t stop_after; /* 0: never stop */
    char ids[COLLECT_MAX][SS_ID_LEN + 1];
    store_role roles[COLLECT_MAX];
    int64_t ts[COLLECT_MAX];
    int64_t num[COLLECT_MAX];
    double v[COLLECT_MAX];
    store_channel ch[COLLECT_MAX];
} collect;

static inline collect *collect_new(void)
{
    collect *k = calloc(1, sizeof *k);
    assert_non_null(k);
    return k;
}

static inline int collect_next(collect *k)
{
    k->n++;
    return k->stop_after && k->n >= k->stop_after;
}

static inline int org_cb(void *ctx, const store_org *org)
{
    collect *k = ctx;
    if (k->n < COLLECT_MAX)
        snprintf(k->ids[k->n], sizeof k->ids[0], "%s", org->id);
    return collect_next(k);
}

static inline int channel_cb(void *ctx, const store_channel *ch)
{
    collect *k = ctx;
    if (k->n < COLLECT_MAX)
        k->ch[k->n] = *ch;
    return collect_next(k);
}

static inline void assert_id(const char *got, unsigned tag, unsigned n)
{
    char want[SS_ID_LEN + 1];
    make_id(want, tag, n);
    assert_string_equal(got, want);
}

static inline collect *channels_of(store_conn *c, unsigned device)
{
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_DEVICE, device);
    collect *k = collect_new();
    assert_int_equal(store_channel_list(c, id, channel_cb, k), SS_OK);
    return k;
}

static inline store_session mk_session(unsigned user, uint8_t seed, int64_t expires)
{
    store_session s = {.created_at = 100, .expires_at = expires};
    fill_hash(s.token_hash, seed);
    make_id(s.user_id, TAG_USER, user);
    snprintf(s.csrf, sizeof s.csrf, "csrf-%u", seed);
    return s;
}

/* 1 "beta" top, 2 "alpha" child of 1, 3 "gamma" child of 2, 4 "alpha" top. */
static inline void add_org_tree(store_conn *c)
{
    assert_int_equal(add_org(c, 1, "beta", -1), SS_OK);
    assert_int_equal(add_org(c, 2, "alpha", 1), SS_OK);
    assert_int_equal(add_org(c, 3, "gamma", 2), SS_OK);
    assert_int_equal(add_org(c, 4, "alpha", -1), SS_OK);
}

static inline store_role role_of(store_conn *c, unsigned user, unsigned org)
{
    char u[SS_ID_LEN + 1], o[SS_ID_LEN + 1];
    make_id(u, TAG_USER, user);
    make_id(o, TAG_ORG, org);
    store_role r = (store_role)-1;
    assert_int_equal(store_role_effective(c, u, o, &r), SS_OK);
    return r;
}

static inline int set_role(store_conn *c, unsigned user, unsigned org, store_role role)
{
    char u[SS_ID_LEN + 1], o[SS_ID_LEN + 1];
    make_id(u, TAG_USER, user);
    make_id(o, TAG_ORG, org);
    return store_membership_set(c, o, u, role);
}

static inline void add_people(store_conn *c)
{
    add_org_tree(c);
    assert_int_equal(add_user(c, 1, "ann@example.com"), SS_OK);
    assert_int_equal(add_user(c, 2, "bob@example.com"), SS_OK);
    assert_int_equal(add_user(c, 3, "cat@example.com"), SS_OK);
    assert_int_equal(add_user(c, 4, "stranger@example.com"), SS_OK);
}

#define TAG_SESSION 0xdd
#define TAG_APIKEY 0xee

static inline int session_cb(void *ctx, const store_session *s)
{
    collect *k = ctx;
    if (k->n < COLLECT_MAX) {
        snprintf(k->ids[k->n], sizeof k->ids[0], "%s", s->id);
        k->ts[k->n] = s->created_at;
    }
    return collect_next(k);
}

static inline int audit_cb(void *ctx, const store_audit *a)
{
    collect *k = ctx;
    if (k->n < COLLECT_MAX) {
        snprintf(k->ids[k->n], sizeof k->ids[0], "%s", a->org_id);
        k->ts[k->n] = a->ts;
        k->num[k->n] = a->id;
    }
    return collect_next(k);
}

/* A session named by `n`, created at `created`. */
static inline store_session mk_named_session(unsigned user, unsigned n, int64_t created, int64_t expires)
{
    store_session s = mk_session(user, (uint8_t)(100 + n), expires);
    make_id(s.id, TAG_SESSION, n);
    snprintf(s.peer, sizeof s.peer, "192.0.2.%u", n);
    s.created_at = created;
    s.last_seen_at = created;
    return s;
}

static inline int add_apikey(store_conn *c, unsigned n, unsigned org, uint8_t seed, int64_t created)
{
    store_apikey k = {.scopes = STORE_SCOPE_DATA_READ, .created_at = created};
    make_id(k.id, TAG_APIKEY, n);
    make_id(k.org_id, TAG_ORG, org);
    snprintf(k.name, sizeof k.name, "key %u", n);
    fill_hash(k.key_hash, seed);
    make_id(k.created_by, TAG_USER, 1);
    return store_apikey_create(c, &k);
}

static inline int add_audit(store_conn *c, unsigned org, int64_t ts, const char *action)
{
    store_audit a = {.id = 12345, .ts = ts};
    if (org)
        make_id(a.org_id, TAG_ORG, org);
    snprintf(a.actor, sizeof a.actor, "user:%08x%016x", TAG_USER, 1u);
    snprintf(a.action, sizeof a.action, "%s", action);
    snprintf(a.target, sizeof a.target, "org:%u", org);
    snprintf(a.addr, sizeof a.addr, "198.51.100.7");
    snprintf(a.detail, sizeof a.detail, "{\"n\":%lld}", (long long)ts);
    return store_audit_append(c, &a);
}

/* A UTC day start (hence an hour start) after BASE. */
#define DAY0 ((BASE / STORE_DAY_MS + 10) * STORE_DAY_MS)

#define HOUR(n) (DAY0 + (int64_t)(n) * STORE_HOUR_MS)
#define USAGE_MAX 256

typedef struct usage_list {
    size_t n;
    size_t stop_after; /* 0: never stop */
    store_usage u[USAGE_MAX];
} usage_list;

static inline int usage_cb(void *ctx, const store_usage *u)
{
    usage_list *l = ctx;
    if (l->n < USAGE_MAX)
        l->u[l->n] = *u;
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

static inline usage_list *usage_of(store_conn *c, unsigned org, int64_t from, int64_t to, int64_t every)
{
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_ORG, org);
    const char *ids[] = {id};
    usage_list *l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(store_usage_query(c, ids, 1, from, to, every, usage_cb, l), SS_OK);
    return l;
}

static inline void assert_usage(const store_usage *u, int64_t bucket, const char *protocol,
                         int64_t messages, int64_t readings)
{
    assert_int_equal(u->bucket, bucket);
    assert_string_equal(u->protocol, protocol);
    assert_int_equal(u->messages, messages);
    assert_int_equal(u->readings, readings);
}

static inline store_usage mk_usage(unsigned org, int64_t hour, const char *protocol, int64_t k)
{
    store_usage u = {.bucket = hour, .bytes_in = 100 * k, .bytes_out = 10 * k, .messages = k,
                     .readings = 2 * k, .rejected = 3 * k, .api_requests = 4 * k};
    make_id(u.org_id, TAG_ORG, org);
    snprintf(u.protocol, sizeof u.protocol, "%s", protocol);
    return u;
}

typedef struct tree_list {
    size_t n;
    size_t stop_after;
    char ids[COLLECT_MAX][SS_ID_LEN + 1];
    char parents[COLLECT_MAX][SS_ID_LEN + 1];
} tree_list;

static inline int tree_cb(void *ctx, const char *id, const char *parent_id)
{
    tree_list *t = ctx;
    if (t->n < COLLECT_MAX) {
        snprintf(t->ids[t->n], sizeof t->ids[0], "%s", id);
        snprintf(t->parents[t->n], sizeof t->parents[0], "%s", parent_id ? parent_id : "(null)");
    }
    t->n++;
    return t->stop_after && t->n >= t->stop_after;
}

static inline int subtree_cb(void *ctx, const char *id)
{
    return tree_cb(ctx, id, "");
}

/* 1 ─┬─ 2 ── 3
 *    └─ 4
 * 5 */
static inline void add_org_forest(store_conn *c)
{
    assert_int_equal(add_org(c, 1, "a", -1), SS_OK);
    assert_int_equal(add_org(c, 2, "b", 1), SS_OK);
    assert_int_equal(add_org(c, 3, "c", 2), SS_OK);
    assert_int_equal(add_org(c, 4, "d", 1), SS_OK);
    assert_int_equal(add_org(c, 5, "e", -1), SS_OK);
}

static inline store_acct_session mk_acct(unsigned n, unsigned org, const char *kind, int64_t started,
                                  int64_t ended)
{
    store_acct_session s = {.started_at = started, .ended_at = ended, .bytes_in = n,
                            .bytes_out = 2 * n, .messages = 3 * n, .readings = 4 * n,
                            .refused = 5 * n, .api_requests = 6 * n};
    snprintf(s.id, sizeof s.id, "%08x%016x", 0xddu, n);
    snprintf(s.kind, sizeof s.kind, "%s", kind);
    make_id(s.principal_id, TAG_DEVICE, n);
    if (org)
        make_id(s.org_id, TAG_ORG, org);
    snprintf(s.protocol, sizeof s.protocol, "mqtts");
    snprintf(s.addr, sizeof s.addr, "2001:db8::%u", n);
    snprintf(s.end_reason, sizeof s.end_reason, "%s", ended ? "closed" : "");
    return s;
}

typedef struct acct_list {
    size_t n;
    store_acct_session s[COLLECT_MAX];
} acct_list;

static inline int acct_cb(void *ctx, const store_acct_session *s)
{
    acct_list *l = ctx;
    if (l->n < COLLECT_MAX)
        l->s[l->n] = *s;
    l->n++;
    return 0;
}

static inline acct_list *acct_of(store_conn *c, unsigned org, const char *kind, int active_only,
                          size_t limit)
{
    char id[SS_ID_LEN + 1];
    make_id(id, TAG_ORG, org);
    acct_list *l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(store_acct_session_list(c, id, kind, active_only, limit, acct_cb, l), SS_OK);
    return l;
}

#endif
