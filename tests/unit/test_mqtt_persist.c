/* test_mqtt_persist.c — the broker's persister against the real SQLite
 * store in a directory of its own: what is written comes back at the next
 * load, callbacks run in the order changes were recorded, the pending
 * bounds refuse and wake, a message goes with its last delivery, an org's
 * delete takes its state, a session's will is kept with it while its delay
 * runs, and a full disk is reported to the callbacks.
 *
 * Every test counts its callbacks and ends with uv_loop_close() == 0. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <uv.h>

#include "core/err.h"
#include "core/limits.h"
#include "mqtt/codec.h"
#include "mqtt/message.h"
#include "mqtt/persist.h"
#include "mqtt/protocol.h"
#include "store/sqlite_internal.h"
#include "store/store.h"
#include "test_dir.h"

/* ---- fixture ------------------------------------------------------------------- */

#define ORG_A "0a0a0a0a0a0a0a0a0a0a0a0a"
#define ORG_B "0b0b0b0b0b0b0b0b0b0b0b0b"
#define DEV_A "da0000000000000000000000"
#define DEV_B "db0000000000000000000000"
#define KEY_A "ea0000000000000000000000"
#define T0 1764000000000LL
/* A test that hangs is a failure, not a stuck CI job. */
#define WATCHDOG_MS 30000u
#define DONES_MAX 4096

typedef struct fx {
    char dir[64];
    store *s;
    sqlite3 *writer_db;  /* the persister's connection, for the full-disk test */
    uv_loop_t loop;
    uv_timer_t watchdog;
    mqtt_persist *p;
    int stopped;
    /* Callbacks: the ctx of each done in order, and its status. */
    int n_done;
    intptr_t order[DONES_MAX];
    int status[DONES_MAX];
} fx;

static void store_up(fx *f)
{
    store_options opt = {.url = "sqlite:", .data_dir = f->dir,
                         .durability = STORE_DURABILITY_NORMAL};
    char why[256] = "";
    assert_int_equal(store_open(&opt, &f->s, why, sizeof why), SS_OK);
}

static void add_accounts(store *s)
{
    store_conn *c = NULL;
    assert_int_equal(store_conn_acquire(s, &c), SS_OK);
    const char *orgs[] = {ORG_A, ORG_B}, *devs[] = {DEV_A, DEV_B};
    for (int i = 0; i < 2; i++) {
        store_org o = {.created_at = T0};
        snprintf(o.id, sizeof o.id, "%s", orgs[i]);
        snprintf(o.name, sizeof o.name, "org %d", i);
        assert_int_equal(store_org_create(c, &o), SS_OK);
        store_device d = {.created_at = T0};
        snprintf(d.id, sizeof d.id, "%s", devs[i]);
        snprintf(d.org_id, sizeof d.org_id, "%s", orgs[i]);
        snprintf(d.name, sizeof d.name, "dev %d", i);
        memset(d.token_hash, 0x10 + i, sizeof d.token_hash);
        assert_int_equal(store_device_create(c, &d), SS_OK);
    }
    store_apikey k = {.scopes = STORE_SCOPE_DATA_READ, .created_at = T0};
    snprintf(k.id, sizeof k.id, "%s", KEY_A);
    snprintf(k.org_id, sizeof k.org_id, "%s", ORG_A);
    snprintf(k.name, sizeof k.name, "app");
    memset(k.key_hash, 0x30, sizeof k.key_hash);
    assert_int_equal(store_apikey_create(c, &k), SS_OK);
    store_conn_release(s, c);
}

/* The persister takes the connection released last: the one whose handle
 * is noted here. */
static void persist_up(fx *f)
{
    store_conn *c = NULL;
    assert_int_equal(store_conn_acquire(f->s, &c), SS_OK);
    f->writer_db = store_sqlite_db(c);
    store_conn_release(f->s, c);
    assert_int_equal(mqtt_persist_start(&f->loop, f->s, &f->p), SS_OK);
    f->stopped = 0;
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    fail_msg("the test hung");
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/ss_test_persist_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    store_up(f);
    add_accounts(f->s);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->watchdog), 0);
    assert_int_equal(uv_timer_start(&f->watchdog, on_watchdog, WATCHDOG_MS, 0), 0);
    uv_unref((uv_handle_t *)&f->watchdog);
    persist_up(f);
    *state = f;
    return 0;
}

static void on_stopped(void *arg)
{
    ((fx *)arg)->stopped = 1;
}

static void persist_down(fx *f)
{
    mqtt_persist_stop(f->p, on_stopped, f);
    while (!f->stopped)
        uv_run(&f->loop, UV_RUN_ONCE);
    mqtt_persist_free(f->p);
    f->p = NULL;
}

static int teardown(void **state)
{
    fx *f = *state;
    if (f->p)
        persist_down(f);
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    store_close(f->s);
    rm_dir(f->dir);
    free(f);
    return 0;
}

/* Stops the persister, closes the store, opens both again. */
static void reopen(fx *f)
{
    persist_down(f);
    store_close(f->s);
    store_up(f);
    persist_up(f);
}

/* ---- helpers ----------------------------------------------------------------- */

static void on_done(void *ctx, int status)
{
    fx *f = *(fx **)ctx;
    assert_true(f->n_done < DONES_MAX);
    /* ctx points at a slot of `tags`: its index is the change's number. */
    f->order[f->n_done] = (intptr_t)ctx;
    f->status[f->n_done] = status;
    f->n_done++;
}

/* Callback contexts: tags[i] holds the fixture; its address tells i. */
static fx *tags[DONES_MAX];

static void *tag(fx *f, int i)
{
    tags[i] = f;
    return &tags[i];
}

static int tag_index(intptr_t ctx)
{
    return (int)((fx **)ctx - tags);
}

static void run_until_done(fx *f, int n)
{
    while (f->n_done < n)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static mqtt_msg *msg(const char *org, const char *topic, const char *payload, size_t len)
{
    mqtt_msg *m = mqtt_msg_new(org, topic, strlen(topic), (const uint8_t *)payload, len, 1, 0,
                               NULL, T0);
    assert_non_null(m);
    return m;
}

static mqtt_msg *msg_with_props(const char *org, const char *topic, const char *payload)
{
    mqtt_props pr = {0};
    MQTT_SET(&pr, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR);
    pr.payload_format = 1;
    MQTT_SET(&pr, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
    pr.message_expiry = 3600;
    MQTT_SET(&pr, MQTT_PROP_CONTENT_TYPE);
    pr.content_type = (mqtt_str){.p = "text/plain", .len = 10};
    mqtt_msg *m = mqtt_msg_new(org, topic, strlen(topic), (const uint8_t *)payload,
                               strlen(payload), 2, 1, &pr, T0 + 5);
    assert_non_null(m);
    return m;
}

static int put_session(fx *f, const char *org, const char *client, const char *principal,
                       uint32_t expiry, int64_t disconnected, int i)
{
    mqtt_persist_session s = {.org_id = org, .client_id = client, .principal_id = principal,
                              .expiry_s = expiry, .disconnected_ms = disconnected};
    return mqtt_persist_session_put(f->p, &s, on_done, tag(f, i));
}

static int put_delivery(fx *f, const char *org, const char *client, uint64_t seq, mqtt_msg *m,
                        int i)
{
    mqtt_persist_delivery d = {.org_id = org, .client_id = client, .seq = seq, .msg = m,
                               .qos = 1, .state = MQTT_DELIVERY_QUEUED};
    return mqtt_persist_delivery_put(f->p, &d, on_done, tag(f, i));
}

/* ---- what the load hands over ---------------------------------------------------- */

#define LOADED_MAX 32

typedef struct loaded {
    int n_sessions, n_subs, n_deliveries, n_inbound, n_retained;
    char sessions[LOADED_MAX][160];
    char subs[LOADED_MAX][160];
    char deliveries[LOADED_MAX][160];
    mqtt_msg *delivery_msg[LOADED_MAX];  /* a reference each */
    char inbound[LOADED_MAX][80];
    char wills[LOADED_MAX][160];         /* "<client> <topic> <payload> <due>", by session */
    int n_wills;
    mqtt_msg *retained[LOADED_MAX];      /* a reference each */
    int stop_at_session;                 /* nonzero: the load stops with 77 there */
} loaded;

static int on_session(void *ctx, const mqtt_persist_session *s)
{
    loaded *l = ctx;
    if (l->stop_at_session && l->n_sessions + 1 == l->stop_at_session)
        return 77;
    snprintf(l->sessions[l->n_sessions++], sizeof l->sessions[0], "%.2s/%s %.2s %u %lld",
             s->org_id, s->client_id, s->principal_id, s->expiry_s,
             (long long)s->disconnected_ms);
    if (s->will)
        snprintf(l->wills[l->n_wills++], sizeof l->wills[0], "%s %s %.*s %lld", s->client_id,
                 s->will->topic, (int)s->will->payload_len, (const char *)s->will->payload,
                 (long long)s->will_at_ms);
    return 0;
}

static int on_sub(void *ctx, const mqtt_persist_sub *s)
{
    loaded *l = ctx;
    snprintf(l->subs[l->n_subs++], sizeof l->subs[0], "%s %s %u %u", s->client_id, s->filter,
             s->options, s->sub_id);
    return 0;
}

static int on_delivery(void *ctx, const mqtt_persist_delivery *d)
{
    loaded *l = ctx;
    int i = l->n_deliveries++;
    snprintf(l->deliveries[i], sizeof l->deliveries[0], "%s %llu %s q%u r%u p%u s%u ids%u:%u",
             d->client_id, (unsigned long long)d->seq, d->msg->topic, d->qos, d->retain,
             d->packet_id, d->state, d->n_sub_ids, d->n_sub_ids ? d->sub_ids[1] : 0);
    l->delivery_msg[i] = mqtt_msg_ref(d->msg);
    return 0;
}

static int on_inbound(void *ctx, const char *org_id, const char *client_id, uint16_t packet_id)
{
    loaded *l = ctx;
    snprintf(l->inbound[l->n_inbound++], sizeof l->inbound[0], "%.2s/%s %u", org_id, client_id,
             packet_id);
    return 0;
}

static int on_retained(void *ctx, mqtt_msg *m)
{
    loaded *l = ctx;
    l->retained[l->n_retained++] = mqtt_msg_ref(m);
    return 0;
}

static loaded *load(fx *f, int64_t now_ms, int expect)
{
    loaded *l = calloc(1, sizeof *l);
    assert_non_null(l);
    mqtt_persist_loader ld = {.ctx = l, .session = on_session, .sub = on_sub,
                              .delivery = on_delivery, .inbound_qos2 = on_inbound,
                              .retained = on_retained};
    assert_int_equal(mqtt_persist_load(f->p, &ld, now_ms), expect);
    return l;
}

static void loaded_free(loaded *l)
{
    for (int i = 0; i < l->n_deliveries; i++)
        mqtt_msg_unref(l->delivery_msg[i]);
    for (int i = 0; i < l->n_retained; i++)
        mqtt_msg_unref(l->retained[i]);
    free(l);
}

static int count_cb(void *ctx, const store_broker_message *m)
{
    (void)m;
    (*(int *)ctx)++;
    return 0;
}

static int stored_messages(fx *f)
{
    store_conn *c = NULL;
    assert_int_equal(store_conn_acquire(f->s, &c), SS_OK);
    int n = 0;
    assert_int_equal(store_broker_messages(c, count_cb, &n), SS_OK);
    store_conn_release(f->s, c);
    return n;
}

/* ---- cases --------------------------------------------------------------------- */

/* Sessions, subscriptions, deliveries (one message shared by two),
 * inbound QoS 2 ids and retained messages written, the store closed and
 * opened again: the load gives back each as written, one mqtt_msg per
 * stored message, its properties and time of publication kept; a cleared
 * retained topic stays cleared; new message ids go on past the stored
 * ones. */
static void test_state_survives_a_reopen(void **state)
{
    fx *f = *state;
    mqtt_msg *m1 = msg(ORG_A, "devices/x/cmd", "on", 2);
    mqtt_msg *m2 = msg_with_props(ORG_A, "devices/x/cfg", "{\"a\":1}");
    mqtt_msg *r1 = msg_with_props(ORG_A, "status/1", "up");
    mqtt_msg *r2 = msg(ORG_A, "status/2", "x", 1);
    mqtt_msg *clear2 = msg(ORG_A, "status/2", "", 0);
    int i = 0;
    assert_int_equal(put_session(f, ORG_A, "dev", DEV_A, UINT32_MAX, 0, i++), SS_OK);
    assert_int_equal(put_session(f, ORG_A, "app", KEY_A, 600, T0, i++), SS_OK);
    mqtt_persist_sub s1 = {.org_id = ORG_A, .client_id = "app", .filter = "devices/+/cmd",
                           .options = 1, .sub_id = 4};
    mqtt_persist_sub s2 = {.org_id = ORG_A, .client_id = "app", .filter = "$share/g/#",
                           .options = 0x2a};
    assert_int_equal(mqtt_persist_sub_put(f->p, &s1, on_done, tag(f, i++)), SS_OK);
    assert_int_equal(mqtt_persist_sub_put(f->p, &s2, on_done, tag(f, i++)), SS_OK);
    assert_int_equal(put_delivery(f, ORG_A, "app", 1, m1, i++), SS_OK);
    assert_int_equal(put_delivery(f, ORG_A, "dev", 1, m1, i++), SS_OK);
    uint32_t ids[] = {4, 1000};
    mqtt_persist_delivery d = {.org_id = ORG_A, .client_id = "app", .seq = 2, .msg = m2,
                               .qos = 2, .retain = 1, .packet_id = 9,
                               .state = MQTT_DELIVERY_RELEASED, .sub_ids = ids, .n_sub_ids = 2};
    assert_int_equal(mqtt_persist_delivery_put(f->p, &d, on_done, tag(f, i++)), SS_OK);
    assert_int_equal(mqtt_persist_inbound_put(f->p, ORG_A, "dev", 65535, on_done, tag(f, i++)),
                     SS_OK);
    assert_int_equal(mqtt_persist_retain_put(f->p, r1, on_done, tag(f, i++)), SS_OK);
    assert_int_equal(mqtt_persist_retain_put(f->p, r2, on_done, tag(f, i++)), SS_OK);
    assert_int_equal(mqtt_persist_retain_put(f->p, clear2, on_done, tag(f, i++)), SS_OK);
    assert_true(m1->id > 0 && m2->id > m1->id && r1->id > m2->id);
    assert_int_equal(clear2->id, 0);
    run_until_done(f, i);
    for (int k = 0; k < i; k++)
        assert_int_equal(f->status[k], SS_OK);
    uint64_t m1_id = m1->id, m2_id = m2->id, r1_id = r1->id;
    mqtt_msg_unref(m1);
    mqtt_msg_unref(m2);
    mqtt_msg_unref(r1);
    mqtt_msg_unref(r2);
    mqtt_msg_unref(clear2);

    reopen(f);
    loaded *l = load(f, T0 + 1000, SS_OK);
    assert_int_equal(l->n_sessions, 2);
    char want[160];
    snprintf(want, sizeof want, "0a/app ea 600 %lld", (long long)T0);
    assert_string_equal(l->sessions[0], want);
    snprintf(want, sizeof want, "0a/dev da 4294967295 %lld", (long long)T0 + 1000);
    assert_string_equal(l->sessions[1], want);
    assert_int_equal(l->n_subs, 2);
    assert_string_equal(l->subs[0], "app $share/g/# 42 0");
    assert_string_equal(l->subs[1], "app devices/+/cmd 1 4");
    assert_int_equal(l->n_deliveries, 3);
    assert_string_equal(l->deliveries[0], "app 1 devices/x/cmd q1 r0 p0 s0 ids0:0");
    assert_string_equal(l->deliveries[1], "app 2 devices/x/cfg q2 r1 p9 s2 ids2:1000");
    assert_string_equal(l->deliveries[2], "dev 1 devices/x/cmd q1 r0 p0 s0 ids0:0");
    assert_ptr_equal(l->delivery_msg[0], l->delivery_msg[2]);
    assert_int_equal(l->delivery_msg[0]->id, m1_id);
    mqtt_msg *got2 = l->delivery_msg[1];
    assert_int_equal(got2->id, m2_id);
    assert_int_equal(got2->qos, 2);
    assert_int_equal(got2->retain, 1);
    assert_int_equal(got2->published_ms, T0 + 5);
    assert_int_equal(got2->payload_len, 7);
    assert_memory_equal(got2->payload, "{\"a\":1}", 7);
    assert_true(MQTT_HAS(&got2->props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL));
    assert_int_equal(got2->props.message_expiry, 3600);
    assert_int_equal(got2->props.payload_format, 1);
    assert_int_equal(got2->props.content_type.len, 10);
    assert_memory_equal(got2->props.content_type.p, "text/plain", 10);
    assert_int_equal(l->n_inbound, 1);
    assert_string_equal(l->inbound[0], "0a/dev 65535");
    assert_int_equal(l->n_retained, 1);
    assert_int_equal(l->retained[0]->id, r1_id);
    assert_string_equal(l->retained[0]->topic, "status/1");
    loaded_free(l);
    /* Three stored: r2 went with its topic's clearing. */
    assert_int_equal(stored_messages(f), 3);
    mqtt_msg *next = msg(ORG_A, "t", "n", 1);
    f->n_done = 0;
    assert_int_equal(put_delivery(f, ORG_A, "dev", 2, next, 0), SS_OK);
    assert_true(next->id > r1_id);
    run_until_done(f, 1);
    mqtt_msg_unref(next);
}

/* Callbacks run on the loop in the order the changes were recorded,
 * across many commits, and the writer takes whatever is pending at once:
 * fewer commits than changes. */
static void test_dones_run_in_recorded_order(void **state)
{
    fx *f = *state;
    enum { N = 2000 };
    assert_int_equal(put_session(f, ORG_A, "c", DEV_A, 60, 0, 0), SS_OK);
    mqtt_msg *m = msg(ORG_A, "t", "x", 1);
    for (int i = 1; i < N; i++) {
        int err = i % 2 ? put_delivery(f, ORG_A, "c", (uint64_t)i, m, i)
                        : mqtt_persist_delivery_del(f->p, ORG_A, "c", (uint64_t)i - 1, on_done,
                                                    tag(f, i));
        assert_int_equal(err, SS_OK);
        if (i % 500 == 0)
            uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    run_until_done(f, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(tag_index(f->order[i]), i);
        assert_int_equal(f->status[i], SS_OK);
    }
    mqtt_msg_unref(m);
    /* The last change put a delivery: its message stays. */
    assert_int_equal(stored_messages(f), 1);
}

typedef struct test_waiter {
    mqtt_persist_waiter w;
    int woken;
} test_waiter;

static void on_ready(mqtt_persist_waiter *w)
{
    ((test_waiter *)w)->woken++;
}

/* One org past its pending bound is refused with SS_BUSY and nothing is
 * recorded; another org is served meanwhile; the refused org's waiter is
 * woken once its changes are committed, and then it is admitted. A
 * waiter cancelled is not woken. */
static void test_org_bound_refuses_and_wakes(void **state)
{
    fx *f = *state;
    enum { BIG = 200 * 1024 };
    char *payload = malloc(BIG);
    assert_non_null(payload);
    memset(payload, 'p', BIG);
    assert_int_equal(put_session(f, ORG_A, "a", DEV_A, 60, 0, 0), SS_OK);
    int i = 1, err = SS_OK;
    size_t sent = 0;
    while (err == SS_OK) {
        mqtt_msg *m = msg(ORG_A, "big", payload, BIG);
        err = put_delivery(f, ORG_A, "a", (uint64_t)i, m, i);
        if (err == SS_OK) {
            i++;
            sent += BIG;
        } else {
            assert_int_equal(m->id, 0);
        }
        mqtt_msg_unref(m);
        assert_true(sent <= MQTT_PERSIST_ORG_PENDING_MAX);
    }
    assert_int_equal(err, SS_BUSY);
    assert_true(sent + 2 * BIG > MQTT_PERSIST_ORG_PENDING_MAX);
    /* Another org goes on. */
    assert_int_equal(put_session(f, ORG_B, "b", DEV_B, 60, 0, i), SS_OK);
    int n = i + 1;
    test_waiter w = {.w = {.ready = on_ready}}, gone = {.w = {.ready = on_ready}};
    snprintf(w.w.org_id, sizeof w.w.org_id, "%s", ORG_A);
    snprintf(gone.w.org_id, sizeof gone.w.org_id, "%s", ORG_A);
    mqtt_persist_wait(f->p, &w.w);
    mqtt_persist_wait(f->p, &w.w);
    mqtt_persist_wait(f->p, &gone.w);
    mqtt_persist_cancel_wait(f->p, &gone.w);
    mqtt_persist_cancel_wait(f->p, &gone.w);
    run_until_done(f, n);
    assert_int_equal(w.woken, 1);
    assert_int_equal(gone.woken, 0);
    for (int k = 0; k < n; k++)
        assert_int_equal(f->status[k], SS_OK);
    mqtt_msg *m = msg(ORG_A, "big", payload, BIG);
    assert_int_equal(put_delivery(f, ORG_A, "a", (uint64_t)n, m, n), SS_OK);
    run_until_done(f, n + 1);
    mqtt_msg_unref(m);
    free(payload);
}

/* A message is deleted in the commit that removes the last delivery
 * pointing at it; a session's delete takes its deliveries and their
 * messages; a principal's drop takes its sessions. */
static void test_message_goes_with_its_last_delivery(void **state)
{
    fx *f = *state;
    mqtt_msg *m = msg(ORG_A, "t", "x", 1);
    mqtt_msg *k = msg(ORG_A, "k", "y", 1);
    int i = 0;
    assert_int_equal(put_session(f, ORG_A, "a", DEV_A, 60, 0, i++), SS_OK);
    assert_int_equal(put_session(f, ORG_A, "b", DEV_A, 60, 0, i++), SS_OK);
    assert_int_equal(put_session(f, ORG_A, "k", KEY_A, 60, 0, i++), SS_OK);
    assert_int_equal(put_delivery(f, ORG_A, "a", 1, m, i++), SS_OK);
    assert_int_equal(put_delivery(f, ORG_A, "b", 1, m, i++), SS_OK);
    assert_int_equal(put_delivery(f, ORG_A, "k", 1, k, i++), SS_OK);
    run_until_done(f, i);
    assert_int_equal(stored_messages(f), 2);
    assert_int_equal(mqtt_persist_delivery_del(f->p, ORG_A, "a", 1, on_done, tag(f, i++)), SS_OK);
    run_until_done(f, i);
    assert_int_equal(stored_messages(f), 2);
    assert_int_equal(mqtt_persist_session_del(f->p, ORG_A, "b", on_done, tag(f, i++)), SS_OK);
    run_until_done(f, i);
    assert_int_equal(stored_messages(f), 1);
    assert_int_equal(mqtt_persist_principal_del(f->p, ORG_A, KEY_A, on_done, tag(f, i++)), SS_OK);
    run_until_done(f, i);
    assert_int_equal(stored_messages(f), 0);
    for (int n = 0; n < i; n++)
        assert_int_equal(f->status[n], SS_OK);
    mqtt_msg_unref(m);
    mqtt_msg_unref(k);
    loaded *l = load(f, T0, SS_OK);
    assert_int_equal(l->n_sessions, 1);
    assert_int_equal(l->n_deliveries, 0);
    loaded_free(l);
}

/* An org's delete takes its broker state and no other org's; a change
 * recorded for it afterwards completes with 0 and writes nothing. */
static void test_org_delete_takes_its_rows(void **state)
{
    fx *f = *state;
    mqtt_msg *a = msg(ORG_A, "t", "a", 1);
    mqtt_msg *b = msg(ORG_B, "t", "b", 1);
    mqtt_msg *ra = msg(ORG_A, "r", "a", 1);
    int i = 0;
    assert_int_equal(put_session(f, ORG_A, "a", DEV_A, 60, 0, i++), SS_OK);
    assert_int_equal(put_session(f, ORG_B, "b", DEV_B, 60, 0, i++), SS_OK);
    assert_int_equal(put_delivery(f, ORG_A, "a", 1, a, i++), SS_OK);
    assert_int_equal(put_delivery(f, ORG_B, "b", 1, b, i++), SS_OK);
    assert_int_equal(mqtt_persist_retain_put(f->p, ra, on_done, tag(f, i++)), SS_OK);
    run_until_done(f, i);
    store_conn *c = NULL;
    assert_int_equal(store_conn_acquire(f->s, &c), SS_OK);
    assert_int_equal(store_org_delete(c, ORG_A), SS_OK);
    store_conn_release(f->s, c);
    mqtt_msg *late = msg(ORG_A, "t", "late", 4);
    assert_int_equal(put_delivery(f, ORG_A, "a", 2, late, i++), SS_OK);
    assert_int_equal(put_session(f, ORG_A, "z", DEV_A, 60, 0, i++), SS_OK);
    run_until_done(f, i);
    for (int n = 0; n < i; n++)
        assert_int_equal(f->status[n], SS_OK);
    assert_int_equal(stored_messages(f), 1);
    loaded *l = load(f, T0, SS_OK);
    assert_int_equal(l->n_sessions, 1);
    assert_string_equal(l->sessions[0], "0b/b db 60 1764000000000");
    assert_int_equal(l->n_deliveries, 1);
    assert_int_equal(l->n_retained, 0);
    loaded_free(l);
    mqtt_msg_unref(a);
    mqtt_msg_unref(b);
    mqtt_msg_unref(ra);
    mqtt_msg_unref(late);
}

/* Sessions whose expiry passed while the server was down are deleted at
 * the load, with their deliveries; one connected when it went down counts
 * as ended at the load; a callback's nonzero answer stops the load. */
static void test_load_deletes_expired_sessions(void **state)
{
    fx *f = *state;
    mqtt_msg *m = msg(ORG_A, "t", "x", 1);
    int i = 0;
    assert_int_equal(put_session(f, ORG_A, "gone", DEV_A, 10, T0, i++), SS_OK);
    assert_int_equal(put_session(f, ORG_A, "kept", DEV_A, 10, T0 + 5000, i++), SS_OK);
    assert_int_equal(put_session(f, ORG_A, "live", DEV_A, 10, 0, i++), SS_OK);
    assert_int_equal(put_delivery(f, ORG_A, "gone", 1, m, i++), SS_OK);
    mqtt_persist_sub s = {.org_id = ORG_A, .client_id = "gone", .filter = "#"};
    assert_int_equal(mqtt_persist_sub_put(f->p, &s, on_done, tag(f, i++)), SS_OK);
    run_until_done(f, i);
    mqtt_msg_unref(m);
    loaded *l = calloc(1, sizeof *l);
    assert_non_null(l);
    l->stop_at_session = 2;
    mqtt_persist_loader ld = {.ctx = l, .session = on_session, .sub = on_sub,
                              .delivery = on_delivery, .inbound_qos2 = on_inbound,
                              .retained = on_retained};
    assert_int_equal(mqtt_persist_load(f->p, &ld, T0 + 10000), 77);
    loaded_free(l);
    l = load(f, T0 + 10000, SS_OK);
    assert_int_equal(l->n_sessions, 2);
    assert_string_equal(l->sessions[0], "0a/kept da 10 1764000005000");
    assert_string_equal(l->sessions[1], "0a/live da 10 1764000010000");
    assert_int_equal(l->n_subs + l->n_deliveries, 0);
    loaded_free(l);
    assert_int_equal(stored_messages(f), 0);
}

static int put_session_will(fx *f, const char *client, uint32_t expiry, int64_t disconnected,
                            mqtt_msg *will, int64_t will_at, int i)
{
    mqtt_persist_session s = {.org_id = ORG_A, .client_id = client, .principal_id = DEV_A,
                              .expiry_s = expiry, .disconnected_ms = disconnected,
                              .will = will, .will_at_ms = will_at};
    return mqtt_persist_session_put(f->p, &s, on_done, tag(f, i));
}

/* The will of a session whose connection ended while the will's delay runs
 * is stored with it (a message like a delivery's) and comes back at the
 * load with its due time, across a reopen; a session that expired while
 * the server was down is loaded all the same while it holds a will (its
 * end sends it), and deleted at the load without one. Putting the session
 * again without its will (resumed, or the will sent) lets the message go;
 * so do the session's delete and its principal's; a will for a session
 * whose principal is gone is not kept. A will without its due time is
 * refused. */
static void test_will_kept_while_its_delay_runs(void **state)
{
    fx *f = *state;
    mqtt_msg *w1 = msg_with_props(ORG_A, "devices/x/status", "offline");
    mqtt_msg *w2 = msg(ORG_A, "devices/x/gone", "bye", 3);
    mqtt_msg *w3 = msg(ORG_A, "devices/x/late", "late", 4);
    int i = 0;
    assert_int_equal(put_session_will(f, "waiting", 600, T0, w1, T0 + 30000, i++), SS_OK);
    assert_int_equal(put_session_will(f, "expired", 10, T0, w2, T0 + 60000, i++), SS_OK);
    assert_int_equal(put_session(f, ORG_A, "plain", DEV_A, 10, T0, i++), SS_OK);
    assert_int_equal(put_session_will(f, "bad", 600, T0, w3, 0, 99), SS_INVAL);
    run_until_done(f, i);
    for (int k = 0; k < i; k++)
        assert_int_equal(f->status[k], SS_OK);
    assert_int_equal(stored_messages(f), 2);
    reopen(f);

    /* At T0 + 20 s: "expired" (10 s) and "plain" are past their expiry. */
    loaded *l = load(f, T0 + 20000, SS_OK);
    assert_int_equal(l->n_sessions, 2);
    assert_string_equal(l->sessions[0], "0a/expired da 10 1764000000000");
    assert_string_equal(l->sessions[1], "0a/waiting da 600 1764000000000");
    assert_int_equal(l->n_wills, 2);
    assert_string_equal(l->wills[0], "expired devices/x/gone bye 1764000060000");
    assert_string_equal(l->wills[1], "waiting devices/x/status offline 1764000030000");
    loaded_free(l);

    /* Resumed: the session put again without its will lets it go. */
    f->n_done = 0;
    i = 0;
    assert_int_equal(put_session(f, ORG_A, "waiting", DEV_A, 600, 0, i++), SS_OK);
    run_until_done(f, i);
    assert_int_equal(stored_messages(f), 1);
    /* The session's delete takes its will; so does its principal's. */
    assert_int_equal(mqtt_persist_session_del(f->p, ORG_A, "expired", on_done, tag(f, i++)),
                     SS_OK);
    run_until_done(f, i);
    assert_int_equal(stored_messages(f), 0);
    assert_int_equal(put_session_will(f, "again", 600, T0, w3, T0 + 1000, i++), SS_OK);
    run_until_done(f, i);
    assert_int_equal(stored_messages(f), 1);
    assert_int_equal(mqtt_persist_principal_del(f->p, ORG_A, DEV_A, on_done, tag(f, i++)),
                     SS_OK);
    run_until_done(f, i);
    assert_int_equal(stored_messages(f), 0);
    /* No principal: nothing kept, the will's message neither. */
    mqtt_persist_session s = {.org_id = ORG_A, .client_id = "nobody", .principal_id = DEV_B,
                              .expiry_s = 600, .disconnected_ms = T0, .will = w2,
                              .will_at_ms = T0 + 1000};
    assert_int_equal(mqtt_persist_session_put(f->p, &s, on_done, tag(f, i++)), SS_OK);
    run_until_done(f, i);
    for (int k = 0; k < i; k++)
        assert_int_equal(f->status[k], SS_OK);
    assert_int_equal(stored_messages(f), 0);
    l = load(f, T0 + 20000, SS_OK);
    assert_int_equal(l->n_sessions + l->n_wills, 0);
    loaded_free(l);
    mqtt_msg_unref(w1);
    mqtt_msg_unref(w2);
    mqtt_msg_unref(w3);
}

/* A retained message whose expiry passed while the server was down is
 * deleted at the load, not handed over: it would count against its org's
 * retained messages until a subscription happened to walk over it. One
 * still within its expiry, and one without, are loaded. */
static void test_load_deletes_expired_retained(void **state)
{
    fx *f = *state;
    mqtt_props pr = {0};
    MQTT_SET(&pr, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
    pr.message_expiry = 10;
    mqtt_msg *gone = mqtt_msg_new(ORG_A, "status/gone", 11, (const uint8_t *)"x", 1, 0, 1, &pr,
                                  T0);
    pr.message_expiry = 3600;
    mqtt_msg *later = mqtt_msg_new(ORG_A, "status/later", 12, (const uint8_t *)"y", 1, 0, 1, &pr,
                                   T0);
    mqtt_msg *kept = msg(ORG_A, "status/kept", "z", 1);
    assert_non_null(gone);
    assert_non_null(later);
    int i = 0;
    assert_int_equal(mqtt_persist_retain_put(f->p, gone, on_done, tag(f, i++)), SS_OK);
    assert_int_equal(mqtt_persist_retain_put(f->p, later, on_done, tag(f, i++)), SS_OK);
    assert_int_equal(mqtt_persist_retain_put(f->p, kept, on_done, tag(f, i++)), SS_OK);
    run_until_done(f, i);
    mqtt_msg_unref(gone);
    mqtt_msg_unref(later);
    mqtt_msg_unref(kept);
    assert_int_equal(stored_messages(f), 3);
    loaded *l = load(f, T0 + 20000, SS_OK);
    assert_int_equal(l->n_retained, 2);
    assert_string_equal(l->retained[0]->topic, "status/kept");
    assert_string_equal(l->retained[1]->topic, "status/later");
    loaded_free(l);
    assert_int_equal(stored_messages(f), 2);
}

/* A disk that is full fails the commits it meets with SS_FULL, reported
 * to each of their callbacks and to no other: once there is room, the
 * next changes commit. */
static void test_full_store_is_reported(void **state)
{
    fx *f = *state;
    assert_int_equal(put_session(f, ORG_A, "a", DEV_A, 60, 0, 0), SS_OK);
    run_until_done(f, 1);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(f->writer_db, "PRAGMA page_count", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long pages = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", pages);
    assert_int_equal(sqlite3_exec(f->writer_db, sql, NULL, NULL, NULL), SQLITE_OK);
    enum { BIG = 64 * 1024 };
    char *payload = calloc(1, BIG);
    assert_non_null(payload);
    mqtt_msg *m = msg(ORG_A, "big", payload, BIG);
    assert_int_equal(put_delivery(f, ORG_A, "a", 1, m, 1), SS_OK);
    run_until_done(f, 2);
    assert_int_equal(f->status[1], SS_FULL);
    assert_true(store_full(f->s));
    assert_int_equal(sqlite3_exec(f->writer_db, "PRAGMA max_page_count = 1000000", NULL, NULL,
                                  NULL),
                     SQLITE_OK);
    assert_int_equal(put_delivery(f, ORG_A, "a", 1, m, 2), SS_OK);
    run_until_done(f, 3);
    assert_int_equal(f->status[2], SS_OK);
    assert_false(store_full(f->s));
    mqtt_msg_unref(m);
    free(payload);
    assert_int_equal(stored_messages(f), 1);
}

static void on_done_records_more(void *ctx, int status)
{
    on_done(ctx, status);
    fx *f = *(fx **)ctx;
    if (f->n_done == 1)
        assert_int_equal(mqtt_persist_session_del(f->p, ORG_A, "a", on_done, tag(f, 1)), SS_OK);
}

/* Stop commits what is pending, and what a callback records meanwhile,
 * runs every callback, then refuses new changes. */
static void test_stop_flushes(void **state)
{
    fx *f = *state;
    mqtt_persist_session s = {.org_id = ORG_A, .client_id = "a", .principal_id = DEV_A,
                              .expiry_s = 60};
    assert_int_equal(mqtt_persist_session_put(f->p, &s, on_done_records_more, tag(f, 0)), SS_OK);
    persist_down(f);
    assert_int_equal(f->n_done, 2);
    assert_int_equal(f->status[0], SS_OK);
    assert_int_equal(f->status[1], SS_OK);
    assert_int_equal(tag_index(f->order[1]), 1);
    persist_up(f);
    loaded *l = load(f, T0, SS_OK);
    assert_int_equal(l->n_sessions, 0);
    loaded_free(l);
}

static void on_done_stops(void *ctx, int status)
{
    on_done(ctx, status);
    fx *f = *(fx **)ctx;
    mqtt_persist_stop(f->p, on_stopped, f);
}

/* Records a change from a callback that runs after another callback of
 * its commit stopped the persister; the answer is checked once stopped. */
static int late_record;

static void on_done_records_late(void *ctx, int status)
{
    on_done(ctx, status);
    fx *f = *(fx **)ctx;
    late_record = mqtt_persist_session_del(f->p, ORG_A, "a", on_done, tag(f, 4));
}

/* A callback that stops the persister while later callbacks of its own
 * commit are still to run: those run next, in order, before anything
 * committed after them, and what they record is committed too. The
 * store is held locked while the changes are recorded, so the writer
 * takes the last three in one commit. */
static void test_stop_from_a_callback_keeps_order(void **state)
{
    fx *f = *state;
    late_record = -1;
    store_conn *c = NULL;
    assert_int_equal(store_conn_acquire(f->s, &c), SS_OK);
    sqlite3 *db = store_sqlite_db(c);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(put_session(f, ORG_A, "a", DEV_A, 60, 0, 0), SS_OK);
    uv_sleep(200); /* the writer takes the first change and waits for the lock */
    mqtt_persist_session s = {.org_id = ORG_A, .principal_id = DEV_A, .expiry_s = 60};
    s.client_id = "b";
    assert_int_equal(mqtt_persist_session_put(f->p, &s, on_done_stops, tag(f, 1)), SS_OK);
    s.client_id = "c";
    assert_int_equal(mqtt_persist_session_put(f->p, &s, on_done_records_late, tag(f, 2)), SS_OK);
    assert_int_equal(put_session(f, ORG_A, "d", DEV_A, 60, 0, 3), SS_OK);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    store_conn_release(f->s, c);
    while (!f->stopped)
        uv_run(&f->loop, UV_RUN_ONCE);
    mqtt_persist_free(f->p);
    f->p = NULL;
    assert_int_equal(late_record, SS_OK);
    assert_int_equal(f->n_done, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(tag_index(f->order[i]), i);
        assert_int_equal(f->status[i], SS_OK);
    }
    persist_up(f);
    loaded *l = load(f, T0, SS_OK);
    assert_int_equal(l->n_sessions, 3);
    assert_string_equal(l->sessions[0], "0a/b da 60 1764000000000");
    loaded_free(l);
}

typedef struct tally {
    int done;
    int failed;
} tally;

static void on_tally(void *ctx, int status)
{
    tally *t = ctx;
    t->done++;
    t->failed += status != SS_OK;
}

/* Throughput of one writer: deliveries put and deleted, as a QoS 1
 * fan-out makes them, committed in group commits. */
static void test_throughput_of_one_writer(void **state)
{
    fx *f = *state;
    enum { SESSIONS = 10, MSGS = 3000 };
    char client[SESSIONS][16];
    for (int s = 0; s < SESSIONS; s++) {
        snprintf(client[s], sizeof client[s], "c%d", s);
        assert_int_equal(put_session(f, ORG_A, client[s], DEV_A, 60, 0, 0), SS_OK);
    }
    run_until_done(f, SESSIONS);
    tally t = {0};
    uint64_t started = uv_hrtime();
    int recorded = 0;
    for (int k = 0; k < MSGS; k++) {
        mqtt_msg *m = msg(ORG_A, "devices/x/data", "{\"t\":21.5}", 10);
        for (int s = 0; s < SESSIONS; s++) {
            mqtt_persist_delivery d = {.org_id = ORG_A, .client_id = client[s],
                                       .seq = (uint64_t)k + 1, .msg = m, .qos = 1};
            while (mqtt_persist_delivery_put(f->p, &d, on_tally, &t) == SS_BUSY)
                uv_run(&f->loop, UV_RUN_ONCE);
            recorded++;
        }
        mqtt_msg_unref(m);
        for (int s = 0; s < SESSIONS && k > 0; s++) {
            while (mqtt_persist_delivery_del(f->p, ORG_A, client[s], (uint64_t)k, on_tally, &t) ==
                   SS_BUSY)
                uv_run(&f->loop, UV_RUN_ONCE);
            recorded++;
        }
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    while (t.done < recorded)
        uv_run(&f->loop, UV_RUN_ONCE);
    double secs = (double)(uv_hrtime() - started) / 1e9;
    print_message("broker changes: %d in %.3f s: %.0f/s\n", recorded, secs, recorded / secs);
    assert_int_equal(t.failed, 0);
    assert_int_equal(stored_messages(f), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_state_survives_a_reopen),
        T(test_dones_run_in_recorded_order),
        T(test_org_bound_refuses_and_wakes),
        T(test_message_goes_with_its_last_delivery),
        T(test_org_delete_takes_its_rows),
        T(test_load_deletes_expired_sessions),
        T(test_load_deletes_expired_retained),
        T(test_will_kept_while_its_delay_runs),
        T(test_full_store_is_reported),
        T(test_stop_flushes),
        T(test_stop_from_a_callback_keeps_order),
        T(test_throughput_of_one_writer),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
