/* test_gateway.c — the ingest gateway and the commit fan-out, against the
 * real SQLite store, ingest queue, quotas, meter and metrics.
 *
 * The last test starts the real HTTP, TCP and UDP listeners on port 0 and
 * sends one message over each from a client thread: the fan-out must see
 * the three batches, in commit order, through the code each protocol
 * really uses. Every test ends with uv_loop_close() == 0. */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "aaa/access.h"
#include "aaa/device_cache.h"
#include "aaa/meter.h"
#include "aaa/quota.h"
#include "aaa/secret.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/metrics.h"
#include "http/api.h"
#include "http/server.h"
#include "ingest/fanout.h"
#include "ingest/gateway.h"
#include "ingest/queue.h"
#include "net/stream.h"
#include "socket/tcp_ingest.h"
#include "socket/udp_ingest.h"
#include "store/store.h"

#define ORG_A "0123456789abcdef0123456a"
#define ORG_B "0123456789abcdef0123456b"
#define DEV_A "a00000000000000000000001"
#define DEV_A2 "a00000000000000000000002"
#define DEV_OFF "a00000000000000000000009"   /* disabled */
#define DEV_B "b00000000000000000000001"
#define DEV_GONE "c00000000000000000000001"  /* cached, not in the store */
#define TOKEN_A "token-of-device-a"
#define TOKEN_A2 "token-of-device-a2"
#define TOKEN_OFF "token-of-the-disabled-device"
#define TOKEN_B "token-of-device-b"
#define TOKEN_GONE "token-of-a-deleted-device"
#define BASE_TS 1732480000000LL
#define WATCHDOG_MS 30000u
#define BATCHES_MAX 16

typedef struct fixture {
    char dir[64];
    store *s;
    uv_loop_t loop;
    uv_timer_t watchdog;
    net_loop_buffers bufs;
    ingest_queue *q;
    fanout *fan;
    device_cache *devices;
    quota *quotas;
    meter *meter;
    metrics *metrics;
    gateway *gw;
    int meter_stopped;
    /* Acknowledgements seen. */
    int acks;
    gateway_result last;
    int stop_after_acks;
    /* Batches the fan-out offered. */
    fanout_sub sub;
    int batches;
    char batch_protocol[BATCHES_MAX][8];
    char batch_device[BATCHES_MAX][SS_ID_LEN + 1];
    size_t batch_len[BATCHES_MAX];
    double batch_first[BATCHES_MAX];
    int stop_after_batches;
} fixture;

/* ---- set-up --------------------------------------------------------------- */

static void remove_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
    rmdir(path);
}

static void add_device(fixture *fx, store_conn *c, const char *org, const char *id,
                       const char *token, int disabled)
{
    uint8_t hash[SS_SECRET_HASH_BYTES];
    secret_hash(token, strlen(token), hash);
    if (c) {
        store_device d = {0};
        strcpy(d.id, id);
        strcpy(d.org_id, org);
        strcpy(d.name, id);
        memcpy(d.token_hash, hash, sizeof hash);
        d.created_at = BASE_TS;
        assert_int_equal(store_device_create(c, &d), SS_OK);
    }
    assert_int_equal(device_cache_put(fx->devices, id, org, hash, disabled), SS_OK);
}

static void add_org(fixture *fx, store_conn *c, const char *id)
{
    store_org org = {.created_at = BASE_TS};
    strcpy(org.id, id);
    strcpy(org.name, id);
    assert_int_equal(store_org_create(c, &org), SS_OK);
    assert_int_equal(quota_set_org(fx->quotas, id, ""), SS_OK);
}

static void watchdog_cb(uv_timer_t *t)
{
    (void)t;
    fail_msg("the test did not finish within %u ms", WATCHDOG_MS);
}

static void on_batch(fanout_sub *sub, const fanout_batch *b)
{
    fixture *fx = sub->data;
    assert_true(fx->batches < BATCHES_MAX);
    snprintf(fx->batch_protocol[fx->batches], sizeof fx->batch_protocol[0], "%s", b->protocol);
    snprintf(fx->batch_device[fx->batches], sizeof fx->batch_device[0], "%s", b->device_id);
    fx->batch_len[fx->batches] = b->len;
    fx->batch_first[fx->batches] = b->readings[0].value;
    fx->batches++;
    if (fx->stop_after_batches && fx->batches == fx->stop_after_batches)
        uv_stop(&fx->loop);
}

static int setup(void **state)
{
    assert_int_equal(secret_init(), 0);
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    strcpy(fx->dir, "/tmp/ss_test_gateway_XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    store_options opt = {.url = "sqlite:", .data_dir = fx->dir,
                         .durability = STORE_DURABILITY_NORMAL};
    char errbuf[256] = "";
    if (store_open(&opt, &fx->s, errbuf, sizeof errbuf) != SS_OK)
        fail_msg("store_open: %s", errbuf);
    assert_int_equal(device_cache_new(&fx->devices), SS_OK);
    assert_int_equal(quota_new(&fx->quotas), SS_OK);
    assert_int_equal(metrics_new(&fx->metrics), SS_OK);
    store_conn *c;
    assert_int_equal(store_conn_acquire(fx->s, &c), SS_OK);
    add_org(fx, c, ORG_A);
    add_org(fx, c, ORG_B);
    add_device(fx, c, ORG_A, DEV_A, TOKEN_A, 0);
    add_device(fx, c, ORG_A, DEV_A2, TOKEN_A2, 0);
    add_device(fx, c, ORG_A, DEV_OFF, TOKEN_OFF, 1);
    add_device(fx, c, ORG_B, DEV_B, TOKEN_B, 0);
    add_device(fx, NULL, ORG_A, DEV_GONE, TOKEN_GONE, 0);
    store_conn_release(fx->s, c);

    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->loop.data = &fx->bufs;
    assert_int_equal(uv_timer_init(&fx->loop, &fx->watchdog), 0);
    assert_int_equal(uv_timer_start(&fx->watchdog, watchdog_cb, WATCHDOG_MS, 0), 0);
    uv_unref((uv_handle_t *)&fx->watchdog);
    assert_int_equal(fanout_new(&fx->fan), SS_OK);
    assert_int_equal(ingest_queue_start(&fx->loop, fx->s, fanout_offer, fx->fan, &fx->q), SS_OK);
    ingest_queue_set_metrics(fx->q, fx->metrics);
    assert_int_equal(meter_new(&fx->loop, fx->s, fx->quotas, &fx->meter), SS_OK);
    gateway_options gopt = {.queue = fx->q, .devices = fx->devices, .quotas = fx->quotas,
                            .meter = fx->meter, .metrics = fx->metrics};
    assert_int_equal(gateway_new(&gopt, &fx->gw), SS_OK);
    fx->sub.on_batch = on_batch;
    fx->sub.data = fx;
    fanout_subscribe(fx->fan, &fx->sub);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    if (fx->q)
        ingest_queue_stop(fx->q);
    if (!fx->meter_stopped)
        meter_stop(fx->meter, "shutdown");
    uv_close((uv_handle_t *)&fx->watchdog, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    meter_free(fx->meter);
    gateway_free(fx->gw);
    fanout_free(fx->fan);
    metrics_free(fx->metrics);
    quota_free(fx->quotas);
    device_cache_free(fx->devices);
    store_close(fx->s);
    remove_dir(fx->dir);
    free(fx);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

/* The count of a labelled metric, `name{label="value"}`. */
static unsigned long long counted(fixture *fx, const char *name, const char *label,
                                  const char *value)
{
    ss_buf b = SS_BUF_INIT;
    assert_int_equal(metrics_render(fx->metrics, &b), SS_OK);
    assert_int_equal(buf_append(&b, "", 1), SS_OK);
    char key[128];
    snprintf(key, sizeof key, "%s{%s=\"%s\"} ", name, label, value);
    const char *p = strstr(b.data, key);
    assert_non_null(p);
    unsigned long long n = strtoull(p + strlen(key), NULL, 10);
    buf_free(&b);
    return n;
}

/* The count of sensorspace_readings_refused_total for one reason. */
static unsigned long long refused(fixture *fx, const char *reason)
{
    return counted(fx, "sensorspace_readings_refused_total", "reason", reason);
}

typedef struct test_msg {
    gateway_msg msg;
    fixture *fx;
} test_msg;

static void on_ack(gateway_msg *msg, const gateway_result *r)
{
    test_msg *tm = (test_msg *)msg;
    fixture *fx = tm->fx;
    fx->acks++;
    fx->last = *r;
    if (fx->stop_after_acks && fx->acks == fx->stop_after_acks)
        uv_stop(&fx->loop);
}

/* The ack of a message gateway_ingest made (and frees). */
static void on_owned_ack(gateway_msg *msg, const gateway_result *r)
{
    fixture *fx = msg->data;
    fx->acks++;
    fx->last = *r;
    if (fx->stop_after_acks && fx->acks == fx->stop_after_acks)
        uv_stop(&fx->loop);
}

static test_msg *new_msg(fixture *fx)
{
    test_msg *tm = calloc(1, sizeof *tm);
    assert_non_null(tm);
    tm->fx = fx;
    tm->msg.ack = on_ack;
    return tm;
}

static void free_msg(test_msg *tm)
{
    readings_free(&tm->msg.item.readings);
    free(tm);
}

static void parse_lines(fixture *fx, const gateway_sender *from, test_msg *tm, const char *text)
{
    gateway_body body = {.format = GATEWAY_LINES, .data = text, .len = strlen(text)};
    ss_parse_error err = {0};
    assert_int_equal(gateway_parse(fx->gw, from, &body, clock_now_ms(), &tm->msg.item.readings,
                                   &err),
                     SS_OK);
}

static void sender_by_token(fixture *fx, const char *token, gateway_sender *from,
                            meter_session *session)
{
    assert_int_equal(gateway_auth_token(fx->gw, token, strlen(token), from), SS_OK);
    from->protocol = "tcp";
    from->session = session;
    from->quota = NULL;
    if (session)
        meter_session_open(fx->meter, session, "device", from->dev.device_id, from->dev.org_id,
                           "tcp", "127.0.0.1");
}

static void run_until_acks(fixture *fx, int n)
{
    fx->stop_after_acks = n;
    while (fx->acks < n)
        uv_run(&fx->loop, UV_RUN_DEFAULT);
    fx->stop_after_acks = 0;
}

/* ---- authentication ------------------------------------------------------------ */

static void test_gateway_auth_by_token(void **state)
{
    fixture *fx = *state;
    gateway_sender from = {0};
    assert_int_equal(gateway_auth_token(fx->gw, TOKEN_A, strlen(TOKEN_A), &from), SS_OK);
    assert_string_equal(from.dev.device_id, DEV_A);
    assert_string_equal(from.dev.org_id, ORG_A);
    assert_int_equal(refused(fx, "invalid_token"), 0);
    assert_int_equal(gateway_auth_token(fx->gw, "nope", 4, &from), SS_AUTH);
    assert_int_equal(gateway_auth_token(fx->gw, TOKEN_OFF, strlen(TOKEN_OFF), &from), SS_AUTH);
    assert_int_equal(gateway_auth_token(fx->gw, "", 0, &from), SS_AUTH);
    char huge[SECRET_TEXT_MAX + 8];
    memset(huge, 'x', sizeof huge);
    assert_int_equal(gateway_auth_token(fx->gw, huge, sizeof huge, &from), SS_AUTH);
    assert_int_equal(refused(fx, "invalid_token"), 4);
}

static void test_gateway_auth_by_key(void **state)
{
    fixture *fx = *state;
    gateway_sender from = {0};
    gateway_key writer = {.org_id = ORG_A, .scopes = STORE_SCOPE_DATA_WRITE};
    assert_int_equal(gateway_auth_key(fx->gw, &writer, DEV_A2, &from), SS_OK);
    assert_string_equal(from.dev.device_id, DEV_A2);
    assert_string_equal(from.dev.org_id, ORG_A);
    /* Reading or managing is not writing. */
    gateway_key reader = {.org_id = ORG_A,
                          .scopes = STORE_SCOPE_DATA_READ | STORE_SCOPE_MANAGE};
    assert_int_equal(gateway_auth_key(fx->gw, &reader, DEV_A2, &from), SS_FORBIDDEN);
    /* Another org's device is not found, exactly as one that does not
     * exist: nothing about it is revealed. */
    assert_int_equal(gateway_auth_key(fx->gw, &writer, DEV_B, &from), SS_NOT_FOUND);
    assert_int_equal(gateway_auth_key(fx->gw, &writer, "ffffffffffffffffffffffff", &from),
                     SS_NOT_FOUND);
    assert_int_equal(gateway_auth_key(fx->gw, &writer, "a0000000000000000000000100", &from),
                     SS_NOT_FOUND);
    assert_int_equal(gateway_auth_key(fx->gw, &writer, DEV_OFF, &from), SS_CONFLICT);
    gateway_key writer_b = {.org_id = ORG_B, .scopes = STORE_SCOPE_DATA_WRITE};
    assert_int_equal(gateway_auth_key(fx->gw, &writer_b, DEV_A, &from), SS_NOT_FOUND);
    assert_int_equal(gateway_auth_key(fx->gw, &writer_b, DEV_B, &from), SS_OK);
}

/* SPEC: a role holds in all descendant orgs, and a key acts in its org's
 * tree; the gateway asks aaa's rule, on the org tree in memory. */
static void test_gateway_auth_key_in_descendant_orgs(void **state)
{
    fixture *fx = *state;
    static const char child[] = "a00000000000000000000009";
    static const char child_dev[] = "d00000000000000000000009";
    assert_int_equal(quota_set_org(fx->quotas, child, ORG_A), SS_OK);
    add_device(fx, NULL, child, child_dev, "token-of-a-child-device", 0);
    gateway_sender from = {0};
    gateway_key writer = {.org_id = ORG_A, .scopes = STORE_SCOPE_DATA_WRITE};
    assert_int_equal(gateway_auth_key(fx->gw, &writer, child_dev, &from), SS_OK);
    assert_string_equal(from.dev.org_id, child);
    /* Not upward, nor sideways. */
    gateway_key child_writer = {.scopes = STORE_SCOPE_DATA_WRITE};
    strcpy(child_writer.org_id, child);
    assert_int_equal(gateway_auth_key(fx->gw, &child_writer, DEV_A, &from), SS_NOT_FOUND);
    assert_int_equal(gateway_auth_key(fx->gw, &child_writer, child_dev, &from), SS_OK);
    /* Without data:write: forbidden in its tree, not found outside it
     * (another org's device is not revealed by the scopes either). */
    gateway_key reader = {.org_id = ORG_B, .scopes = STORE_SCOPE_DATA_READ};
    assert_int_equal(gateway_auth_key(fx->gw, &reader, DEV_A, &from), SS_NOT_FOUND);
    assert_int_equal(gateway_auth_key(fx->gw, &reader, DEV_B, &from), SS_FORBIDDEN);
    assert_int_equal(aaa_key_may_write(fx->quotas, ORG_A, STORE_SCOPE_DATA_WRITE, child), 0);
    assert_int_equal(aaa_key_may_write(fx->quotas, child, STORE_SCOPE_DATA_WRITE, ORG_A),
                     SS_NOT_FOUND);
    assert_int_equal(aaa_key_may_write(NULL, ORG_A, STORE_SCOPE_DATA_WRITE, child), SS_NOT_FOUND);
}

/* A key's message goes through the same path as a token's. */
static void test_gateway_key_message_is_stored(void **state)
{
    fixture *fx = *state;
    gateway_sender from = {0};
    gateway_key writer = {.org_id = ORG_A, .scopes = STORE_SCOPE_DATA_WRITE};
    assert_int_equal(gateway_auth_key(fx->gw, &writer, DEV_A2, &from), SS_OK);
    from.protocol = "http";
    test_msg *tm = new_msg(fx);
    parse_lines(fx, &from, tm, "temp=1\ntemp=2\n");
    assert_int_equal(gateway_submit(fx->gw, &from, &tm->msg, clock_now_ms()), SS_OK);
    run_until_acks(fx, 1);
    assert_int_equal(fx->last.status, SS_OK);
    assert_int_equal(fx->last.stored, 2);
    assert_int_equal(fx->batches, 1);
    assert_string_equal(fx->batch_device[0], DEV_A2);
    free_msg(tm);
}

/* ---- parsing ----------------------------------------------------------------- */

static void test_gateway_parse_formats_and_refusals(void **state)
{
    fixture *fx = *state;
    gateway_sender from = {0};
    sender_by_token(fx, TOKEN_A, &from, NULL);
    ss_readings r = SS_READINGS_INIT;
    ss_parse_error err = {0};
    int64_t now = clock_now_ms();
    gateway_body json = {.format = GATEWAY_JSON, .data = "{\"a\":1,\"b\":2}", .len = 13};
    assert_int_equal(gateway_parse(fx->gw, &from, &json, now, &r, &err), SS_OK);
    gateway_body line = {.format = GATEWAY_LINE, .data = "c=3", .len = 3};
    assert_int_equal(gateway_parse(fx->gw, &from, &line, now, &r, &err), SS_OK);
    gateway_body value = {.format = GATEWAY_VALUE, .data = "4.5\n", .len = 4, .channel = "d",
                          .channel_len = 1};
    assert_int_equal(gateway_parse(fx->gw, &from, &value, now, &r, &err), SS_OK);
    assert_int_equal(r.len, 4);
    assert_string_equal(r.items[3].channel, "d");
    assert_true(r.items[3].value == 4.5);
    gateway_body bad = {.format = GATEWAY_LINES, .data = "x=oops\n", .len = 7};
    assert_int_equal(gateway_parse(fx->gw, &from, &bad, now, &r, &err), SS_PARSE);
    assert_int_equal(r.len, 4);
    assert_int_equal(refused(fx, "bad_reading"), 1);
    readings_free(&r);
}

/* ---- quota and room ------------------------------------------------------------ */

static void test_gateway_quota_refusal_counts_and_reserves_nothing(void **state)
{
    fixture *fx = *state;
    quota_limits l = {.max_readings_per_day = 2};
    assert_int_equal(quota_set_limits(fx->quotas, ORG_A, &l), SS_OK);
    gateway_sender from = {0};
    meter_session session = {0};
    sender_by_token(fx, TOKEN_A, &from, &session);
    test_msg *tm = new_msg(fx);
    parse_lines(fx, &from, tm, "a=1,b=2,c=3\n");
    assert_int_equal(gateway_submit(fx->gw, &from, &tm->msg, clock_now_ms()), SS_QUOTA);
    assert_int_equal(refused(fx, "quota_exceeded"), 3);
    assert_int_equal(session.rec.messages, 1);
    assert_int_equal(session.rec.refused, 3);
    assert_int_equal(fx->acks, 0);
    /* Nothing stayed reserved: two readings still fit today. */
    readings_reset(&tm->msg.item.readings);
    parse_lines(fx, &from, tm, "a=1,b=2\n");
    assert_int_equal(gateway_submit(fx->gw, &from, &tm->msg, clock_now_ms()), SS_OK);
    run_until_acks(fx, 1);
    assert_int_equal(fx->last.stored, 2);
    assert_int_equal(session.rec.messages, 2);
    assert_int_equal(session.rec.readings, 2);
    meter_session_end(fx->meter, &session, "closed");
    free_msg(tm);
}

static void test_gateway_busy_refusal_releases_the_reservation(void **state)
{
    fixture *fx = *state;
    quota_limits l = {.max_readings_per_day = SS_INGEST_DEVICE_READINGS_MAX + 1};
    assert_int_equal(quota_set_limits(fx->quotas, ORG_A, &l), SS_OK);
    gateway_sender from = {0};
    sender_by_token(fx, TOKEN_A, &from, NULL);
    /* A device with nothing queued has room for one item of any size; the
     * loop does not run, so it stays queued and fills the device's share. */
    test_msg *big = new_msg(fx);
    for (size_t i = 0; i < SS_INGEST_DEVICE_READINGS_MAX; i++)
        assert_int_equal(readings_push(&big->msg.item.readings, "t", 1, BASE_TS, (double)i),
                         SS_OK);
    assert_int_equal(gateway_submit(fx->gw, &from, &big->msg, clock_now_ms()), SS_OK);
    gateway_request rq = {.body = {.format = GATEWAY_LINES, .data = "a=1\n", .len = 4},
                          .ack = on_owned_ack, .data = fx};
    gateway_msg *msg;
    gateway_refusal why;
    assert_int_equal(gateway_ingest(fx->gw, &from, &rq, clock_now_ms(), &msg, &why), SS_BUSY);
    assert_int_equal(refused(fx, "ingest_busy"), 1);
    test_msg *small = new_msg(fx);
    parse_lines(fx, &from, small, "a=1\n");
    assert_int_equal(gateway_submit(fx->gw, &from, &small->msg, clock_now_ms()), SS_BUSY);
    /* Busy is counted by the protocol's choice (refuse, or wait). */
    gateway_refuse(fx->gw, &from, METRICS_REFUSED_INGEST_BUSY, 1);
    assert_int_equal(refused(fx, "ingest_busy"), 2);
    run_until_acks(fx, 1);
    assert_int_equal(fx->last.stored, SS_INGEST_DEVICE_READINGS_MAX);
    /* The busy message's reservation was given back: its one reading fits. */
    assert_int_equal(gateway_submit(fx->gw, &from, &small->msg, clock_now_ms()), SS_OK);
    run_until_acks(fx, 2);
    assert_int_equal(fx->last.status, SS_OK);
    /* And the day is now full. */
    readings_reset(&small->msg.item.readings);
    parse_lines(fx, &from, small, "a=2\n");
    assert_int_equal(gateway_submit(fx->gw, &from, &small->msg, clock_now_ms()), SS_QUOTA);
    free_msg(big);
    free_msg(small);
}

/* A bulk import reserves all its readings at once (all or nothing), then
 * submits them prepaid: a submit reserves nothing more, a busy one gives
 * nothing back, the commit settles what it stored, and what is never
 * submitted goes back with gateway_release. */
static void test_gateway_prepaid_messages_draw_on_one_reservation(void **state)
{
    fixture *fx = *state;
    quota_limits l = {.max_readings_per_day = 5};
    assert_int_equal(quota_set_limits(fx->quotas, ORG_A, &l), SS_OK);
    quota_ref ref = {0};
    assert_int_equal(gateway_reserve(fx->gw, ORG_A, "import", 6, clock_now_ms(), &ref), SS_QUOTA);
    assert_int_equal(refused(fx, "quota_exceeded"), 6);
    assert_int_equal(gateway_reserve(fx->gw, ORG_A, "import", 4, clock_now_ms(), &ref), SS_OK);
    gateway_sender from = {0};
    sender_by_token(fx, TOKEN_A, &from, NULL);
    from.quota = &ref;
    /* Only one reading is left for anyone else today. */
    test_msg *other = new_msg(fx);
    parse_lines(fx, &from, other, "a=1,b=2\n");
    assert_int_equal(gateway_submit(fx->gw, &from, &other->msg, clock_now_ms()), SS_QUOTA);
    test_msg *tm = new_msg(fx);
    parse_lines(fx, &from, tm, "a=1,b=2,c=3\n");
    tm->msg.prepaid = 1;
    assert_int_equal(gateway_submit(fx->gw, &from, &tm->msg, clock_now_ms()), SS_OK);
    run_until_acks(fx, 1);
    assert_int_equal(fx->last.stored, 3);
    /* One reading of the reservation was never submitted: given back, the
     * day has two left (5 - 3). */
    gateway_release(fx->gw, ORG_A, 1, clock_now_ms(), &ref);
    assert_int_equal(gateway_submit(fx->gw, &from, &other->msg, clock_now_ms()), SS_OK);
    run_until_acks(fx, 2);
    assert_int_equal(fx->last.stored, 2);
    free_msg(other);
    free_msg(tm);
}

/* ---- the one entry point ---------------------------------------------------------- */

/* gateway_ingest admits, parses, reserves and submits, counts each
 * refusal once, and frees the message it made after the ack. */
static void test_gateway_ingest_counts_every_refusal(void **state)
{
    fixture *fx = *state;
    quota_limits l = {.max_readings_per_day = 3};
    assert_int_equal(quota_set_limits(fx->quotas, ORG_A, &l), SS_OK);
    gateway_sender from = {0};
    sender_by_token(fx, TOKEN_A, &from, NULL);
    gateway_request rq = {.body = {.format = GATEWAY_LINES, .data = "a=1,b=2\n", .len = 8},
                          .ack = on_owned_ack, .data = fx};
    gateway_msg *msg = NULL;
    gateway_refusal why;
    assert_int_equal(gateway_ingest(fx->gw, &from, &rq, clock_now_ms(), &msg, &why), SS_OK);
    assert_non_null(msg);
    run_until_acks(fx, 1);
    assert_int_equal(fx->last.status, SS_OK);
    assert_int_equal(fx->last.stored, 2);
    /* A bad body: counted once as a bad reading, with where it failed. */
    rq.body = (gateway_body){.format = GATEWAY_LINES, .data = "x=oops\n", .len = 7};
    assert_int_equal(gateway_ingest(fx->gw, &from, &rq, clock_now_ms(), &msg, &why), SS_PARSE);
    assert_true(why.counted);
    assert_int_equal(why.readings, 0);
    assert_int_equal(why.err.position, 1);
    assert_int_equal(refused(fx, "bad_reading"), 1);
    /* Over quota: counted with its readings. */
    rq.body = (gateway_body){.format = GATEWAY_JSON, .data = "{\"a\":1,\"b\":2}", .len = 13};
    assert_int_equal(gateway_ingest(fx->gw, &from, &rq, clock_now_ms(), &msg, &why), SS_QUOTA);
    assert_int_equal(why.readings, 2);
    assert_int_equal(refused(fx, "quota_exceeded"), 2);
    /* Busy: the device's share is full; refused before parse, counted
     * once by the gateway, not by the protocol. */
    test_msg *big = new_msg(fx);
    for (size_t i = 0; i < SS_INGEST_DEVICE_READINGS_MAX; i++)
        assert_int_equal(readings_push(&big->msg.item.readings, "t", 1, BASE_TS, (double)i),
                         SS_OK);
    quota_limits none = {0};
    assert_int_equal(quota_set_limits(fx->quotas, ORG_A, &none), SS_OK);
    assert_int_equal(gateway_submit(fx->gw, &from, &big->msg, clock_now_ms()), SS_OK);
    rq.body = (gateway_body){.format = GATEWAY_LINES, .data = "a=1\n", .len = 4};
    assert_int_equal(gateway_ingest(fx->gw, &from, &rq, clock_now_ms(), &msg, &why), SS_BUSY);
    assert_true(why.counted);
    assert_int_equal(refused(fx, "ingest_busy"), 1);
    big->msg.ack = on_ack;
    big->fx = fx;
    run_until_acks(fx, 2);
    free_msg(big);
}

static void on_bare_done(ingest_item *item, int status)
{
    fixture *fx = item->data;
    assert_int_equal(status, SS_OK);
    fx->acks++;
    if (fx->stop_after_acks && fx->acks == fx->stop_after_acks)
        uv_stop(&fx->loop);
}

/* Stored readings are counted where the commit is settled, once: by the
 * gateway, not by the queue (an item that bypasses the gateway is
 * counted by nobody). */
static void test_gateway_counts_stored_readings(void **state)
{
    fixture *fx = *state;
    gateway_sender from = {0};
    sender_by_token(fx, TOKEN_A, &from, NULL);
    from.protocol = "udp";
    gateway_request rq = {.body = {.format = GATEWAY_LINES, .data = "a=1,b=2\n", .len = 8},
                          .ack = on_owned_ack, .data = fx};
    gateway_msg *msg = NULL;
    gateway_refusal why;
    assert_int_equal(gateway_ingest(fx->gw, &from, &rq, clock_now_ms(), &msg, &why), SS_OK);
    run_until_acks(fx, 1);
    assert_int_equal(counted(fx, "sensorspace_readings_stored_total", "protocol", "udp"), 2);
    ingest_item bare = {.protocol = "udp", .done = on_bare_done, .data = fx};
    strcpy(bare.device_id, DEV_A);
    strcpy(bare.org_id, ORG_A);
    assert_int_equal(readings_push(&bare.readings, "c", 1, BASE_TS, 3.0), SS_OK);
    assert_int_equal(ingest_queue_submit(fx->q, &bare), SS_OK);
    run_until_acks(fx, 2);
    assert_int_equal(counted(fx, "sensorspace_readings_stored_total", "protocol", "udp"), 2);
    readings_free(&bare.readings);
}

/* ---- settling --------------------------------------------------------------------- */

static void test_gateway_settles_on_commit(void **state)
{
    fixture *fx = *state;
    quota_limits l = {.max_readings_per_day = 3};
    assert_int_equal(quota_set_limits(fx->quotas, ORG_A, &l), SS_OK);
    gateway_sender from = {0};
    meter_session session = {0};
    quota_ref ref = {0};
    sender_by_token(fx, TOKEN_A, &from, &session);
    from.quota = &ref;
    test_msg *tm = new_msg(fx);
    parse_lines(fx, &from, tm, "a=1,b=2\n");
    assert_int_equal(gateway_submit(fx->gw, &from, &tm->msg, clock_now_ms()), SS_OK);
    assert_non_null(ref.org);
    /* The session record goes with the readings, as it was at submit. */
    assert_non_null(tm->msg.item.session);
    run_until_acks(fx, 1);
    assert_int_equal(fx->last.status, SS_OK);
    assert_int_equal(fx->last.stored, 2);
    assert_int_equal(fx->last.refused, 0);
    assert_int_equal(session.rec.messages, 1);
    assert_int_equal(session.rec.readings, 2);
    assert_int_equal(session.rec.refused, 0);
    /* Quota: the two stored count for today. */
    readings_reset(&tm->msg.item.readings);
    parse_lines(fx, &from, tm, "a=3,b=4\n");
    assert_int_equal(gateway_submit(fx->gw, &from, &tm->msg, clock_now_ms()), SS_QUOTA);
    assert_int_equal(fx->batches, 1);
    assert_string_equal(fx->batch_protocol[0], "tcp");
    assert_int_equal(fx->batch_len[0], 2);
    meter_session_end(fx->meter, &session, "closed");
    free_msg(tm);
}

static void test_gateway_settles_on_store_failure(void **state)
{
    fixture *fx = *state;
    quota_limits l = {.max_readings_per_day = 2};
    assert_int_equal(quota_set_limits(fx->quotas, ORG_A, &l), SS_OK);
    /* A device deleted while its readings waited: the store refuses them. */
    gateway_sender from = {0};
    meter_session session = {0};
    sender_by_token(fx, TOKEN_GONE, &from, &session);
    from.gone = METRICS_REFUSED_INVALID_TOKEN;
    test_msg *tm = new_msg(fx);
    parse_lines(fx, &from, tm, "a=1,b=2\n");
    assert_int_equal(gateway_submit(fx->gw, &from, &tm->msg, clock_now_ms()), SS_OK);
    run_until_acks(fx, 1);
    assert_int_equal(fx->last.status, SS_NOT_FOUND);
    assert_int_equal(fx->last.stored, 0);
    assert_int_equal(fx->last.refused, 2);
    assert_int_equal(refused(fx, "invalid_token"), 2);
    assert_int_equal(session.rec.messages, 1);
    assert_int_equal(session.rec.refused, 2);
    assert_int_equal(session.rec.readings, 0);
    assert_int_equal(fx->batches, 0);
    meter_session_end(fx->meter, &session, "closed");
    /* The reservation was given back: another device of the org stores two. */
    gateway_sender other = {0};
    sender_by_token(fx, TOKEN_A, &other, NULL);
    readings_reset(&tm->msg.item.readings);
    parse_lines(fx, &other, tm, "a=1,b=2\n");
    assert_int_equal(gateway_submit(fx->gw, &other, &tm->msg, clock_now_ms()), SS_OK);
    run_until_acks(fx, 2);
    assert_int_equal(fx->last.status, SS_OK);
    free_msg(tm);
}

/* A device deleted while its readings waited counts under the reason its
 * protocol answers: HTTP's 401 invalid_token, TCP's 503 store_unavailable. */
static void test_gateway_deleted_device_counts_as_the_protocol_answers(void **state)
{
    fixture *fx = *state;
    gateway_sender http = {0}, tcp = {0};
    sender_by_token(fx, TOKEN_GONE, &http, NULL);
    http.protocol = "http";
    http.gone = METRICS_REFUSED_INVALID_TOKEN;
    sender_by_token(fx, TOKEN_GONE, &tcp, NULL);
    tcp.gone = METRICS_REFUSED_STORE_UNAVAILABLE;
    unsigned long long auth0 = refused(fx, "invalid_token");
    test_msg *a = new_msg(fx);
    parse_lines(fx, &http, a, "a=1\n");
    assert_int_equal(gateway_submit(fx->gw, &http, &a->msg, clock_now_ms()), SS_OK);
    run_until_acks(fx, 1);
    assert_int_equal(fx->last.status, SS_NOT_FOUND);
    assert_int_equal(refused(fx, "invalid_token"), auth0 + 1);
    assert_int_equal(refused(fx, "store_unavailable"), 0);
    test_msg *b = new_msg(fx);
    parse_lines(fx, &tcp, b, "a=1,b=2\n");
    assert_int_equal(gateway_submit(fx->gw, &tcp, &b->msg, clock_now_ms()), SS_OK);
    run_until_acks(fx, 2);
    assert_int_equal(fx->last.status, SS_NOT_FOUND);
    assert_int_equal(refused(fx, "invalid_token"), auth0 + 1);
    assert_int_equal(refused(fx, "store_unavailable"), 2);
    free_msg(a);
    free_msg(b);
}

/* TCP's groups: the one the store refuses for the channel limit is a
 * refused message, the rest stored, and the fan-out sees only the stored. */
static void test_gateway_channel_refusal_by_group(void **state)
{
    fixture *fx = *state;
    gateway_sender from = {0};
    meter_session session = {0};
    sender_by_token(fx, TOKEN_A2, &from, &session);
    test_msg *tm = new_msg(fx);
    /* Fill the device's channels up to its limit, in one group. */
    for (unsigned i = 0; i < SS_DEVICE_CHANNELS_MAX; i++) {
        char ch[16];
        int n = snprintf(ch, sizeof ch, "c%u", i);
        assert_int_equal(readings_push(&tm->msg.item.readings, ch, (size_t)n, BASE_TS, 1), SS_OK);
    }
    assert_int_equal(gateway_submit(fx->gw, &from, &tm->msg, clock_now_ms()), SS_OK);
    run_until_acks(fx, 1);
    assert_int_equal(fx->last.stored, SS_DEVICE_CHANNELS_MAX);
    readings_reset(&tm->msg.item.readings);
    /* Three lines: the middle one would add a channel. */
    assert_int_equal(readings_push(&tm->msg.item.readings, "c0", 2, BASE_TS + 1, 10), SS_OK);
    assert_int_equal(readings_push(&tm->msg.item.readings, "new", 3, BASE_TS + 1, 20), SS_OK);
    assert_int_equal(readings_push(&tm->msg.item.readings, "c1", 2, BASE_TS + 1, 30), SS_OK);
    uint32_t ends[3] = {1, 2, 3};
    uint8_t flags[3] = {0};
    tm->msg.item.group_ends = ends;
    tm->msg.item.group_refused = flags;
    tm->msg.item.n_groups = 3;
    unsigned long long bad_before = refused(fx, "bad_reading");
    assert_int_equal(gateway_submit(fx->gw, &from, &tm->msg, clock_now_ms()), SS_OK);
    run_until_acks(fx, 2);
    assert_int_equal(fx->last.status, SS_OK);
    assert_int_equal(fx->last.stored, 2);
    assert_int_equal(fx->last.refused, 1);
    assert_int_equal(flags[1], 1);
    assert_int_equal(refused(fx, "bad_reading"), bad_before + 1);
    /* The refused line is a refused message, the batch a stored one. */
    assert_int_equal(session.rec.messages, 3);
    assert_int_equal(session.rec.refused, 1);
    /* The fan-out: the first batch, then the two stored lines apart. */
    assert_int_equal(fx->batches, 3);
    assert_int_equal(fx->batch_len[1], 1);
    assert_true(fx->batch_first[1] == 10);
    assert_int_equal(fx->batch_len[2], 1);
    assert_true(fx->batch_first[2] == 30);
    meter_session_end(fx->meter, &session, "closed");
    free_msg(tm);
}

/* ---- fan-out ------------------------------------------------------------------ */

typedef struct sub_probe {
    fanout_sub sub;
    fanout *fan;
    int calls;
    fanout_sub *unsubscribe;  /* unsubscribed from inside the callback */
    fanout_sub *subscribe;    /* subscribed from inside the callback */
} sub_probe;

static void probe_batch(fanout_sub *sub, const fanout_batch *b)
{
    (void)b;
    sub_probe *p = (sub_probe *)sub;
    p->calls++;
    if (p->unsubscribe) {
        fanout_unsubscribe(p->fan, p->unsubscribe);
        p->unsubscribe = NULL;
    }
    if (p->subscribe) {
        fanout_subscribe(p->fan, p->subscribe);
        p->subscribe = NULL;
    }
}

static void offer_one(fanout *f, ss_reading *r)
{
    ingest_item it = {.device_id = DEV_A, .org_id = ORG_A, .protocol = "udp"};
    it.readings.items = r;
    it.readings.len = it.readings.cap = 1;
    fanout_offer(f, &it);
}

static void test_fanout_subscribe_and_unsubscribe_inside_callbacks(void **state)
{
    (void)state;
    fanout *f;
    assert_int_equal(fanout_new(&f), SS_OK);
    ss_reading r = {.ts = BASE_TS, .value = 1, .channel = "t"};
    sub_probe a = {.sub.on_batch = probe_batch, .fan = f};
    sub_probe b = {.sub.on_batch = probe_batch, .fan = f};
    sub_probe c = {.sub.on_batch = probe_batch, .fan = f};
    sub_probe late = {.sub.on_batch = probe_batch, .fan = f};
    offer_one(f, &r);  /* nobody listens: nothing happens */
    fanout_subscribe(f, &a.sub);
    fanout_subscribe(f, &b.sub);
    fanout_subscribe(f, &c.sub);
    fanout_subscribe(f, &c.sub);  /* twice is once */
    assert_int_equal(fanout_subscribers(f), 3);
    /* a removes b, which is next: b is not called; a adds late, which
     * waits for the next batch. */
    a.unsubscribe = &b.sub;
    a.subscribe = &late.sub;
    offer_one(f, &r);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(late.calls, 0);
    /* c removes itself. */
    c.unsubscribe = &c.sub;
    offer_one(f, &r);
    assert_int_equal(a.calls, 2);
    assert_int_equal(c.calls, 2);
    assert_int_equal(late.calls, 1);
    offer_one(f, &r);
    assert_int_equal(c.calls, 2);
    assert_int_equal(late.calls, 2);
    fanout_unsubscribe(f, &b.sub);  /* not subscribed: harmless */
    assert_int_equal(fanout_subscribers(f), 2);
    /* A refused item offers nothing. */
    ingest_item refused_item = {.device_id = DEV_A, .org_id = ORG_A, .protocol = "http"};
    refused_item.readings.items = &r;
    refused_item.readings.len = 1;
    refused_item.readings_refused = 1;
    fanout_offer(f, &refused_item);
    assert_int_equal(a.calls, 3);
    fanout_free(f);
}

/* One commit split by a refused group is several batches; a subscriber
 * added during the first of them sees none of that commit, and the whole
 * of the next. */
static void test_fanout_subscriber_added_mid_commit_waits_for_the_next(void **state)
{
    (void)state;
    fanout *f;
    assert_int_equal(fanout_new(&f), SS_OK);
    ss_reading rs[3] = {{.ts = BASE_TS, .value = 1, .channel = "t"},
                        {.ts = BASE_TS, .value = 2, .channel = "u"},
                        {.ts = BASE_TS, .value = 3, .channel = "t"}};
    uint32_t ends[3] = {1, 2, 3};
    uint8_t refused_groups[3] = {0, 1, 0};
    ingest_item it = {.device_id = DEV_A, .org_id = ORG_A, .protocol = "tcp"};
    it.readings.items = rs;
    it.readings.len = it.readings.cap = 3;
    it.group_ends = ends;
    it.group_refused = refused_groups;
    it.n_groups = 3;
    it.readings_refused = 1;
    sub_probe a = {.sub.on_batch = probe_batch, .fan = f};
    sub_probe late = {.sub.on_batch = probe_batch, .fan = f};
    fanout_subscribe(f, &a.sub);
    a.subscribe = &late.sub;
    fanout_offer(f, &it);
    assert_int_equal(a.calls, 2);     /* the groups before and after the refused one */
    assert_int_equal(late.calls, 0);  /* nothing of the commit it joined in */
    fanout_offer(f, &it);
    assert_int_equal(a.calls, 4);
    assert_int_equal(late.calls, 2);
    fanout_free(f);
}

/* ---- three protocols, one fan-out -------------------------------------------- */

typedef struct client_job {
    int http_port, tcp_port, udp_port;
    char http_answer[256];
    char tcp_answer[64];
} client_job;

static int port_of(const char *bound)
{
    const char *colon = strrchr(bound, ':');
    assert_non_null(colon);
    return atoi(colon + 1);
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_all(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = send(fd, s, n, 0);
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

/* Reads until `until` is in the answer (or the peer closes). */
static void read_until(int fd, char *out, size_t cap, const char *until)
{
    size_t len = 0;
    out[0] = '\0';
    while (len + 1 < cap && !strstr(out, until)) {
        ssize_t r = recv(fd, out + len, cap - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
        out[len] = '\0';
    }
}

/* One message over each protocol, each answered before the next goes: so
 * their commits come in this order. */
static void client_main(void *arg)
{
    client_job *job = arg;
    int fd = connect_to(job->http_port);
    send_all(fd, "POST /api/v1/data HTTP/1.1\r\nHost: t\r\nX-Auth-Token: " TOKEN_A "\r\n"
                 "Content-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
                 "http=1.0\n");
    read_until(fd, job->http_answer, sizeof job->http_answer, "}");
    close(fd);
    fd = connect_to(job->tcp_port);
    send_all(fd, "AUTH " TOKEN_A2 "\ntcp=2\n");
    read_until(fd, job->tcp_answer, sizeof job->tcp_answer, "ACK 1\n");
    close(fd);
    int ufd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)job->udp_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    static const char dgram[] = TOKEN_B "\nudp=3\n";
    assert_true(sendto(ufd, dgram, sizeof dgram - 1, 0, (struct sockaddr *)&a, sizeof a) > 0);
    close(ufd);
}

static void test_fanout_sees_http_tcp_and_udp_in_commit_order(void **state)
{
    fixture *fx = *state;
    conn_registry *conns;
    assert_int_equal(conn_registry_new(&fx->loop, &conns), SS_OK);
    api_ctx api = {.loop = &fx->loop, .store = fx->s, .queue = fx->q, .devices = fx->devices,
                   .gateway = fx->gw, .quotas = fx->quotas, .meter = fx->meter,
                   .metrics = fx->metrics, .conns = conns};
    http_server_options hopt = {.name = "http", .on_request = api_handle, .on_head = api_head,
                                .ctx = &api, .bufs = &fx->bufs, .on_account = api_account};
    tcp_ingest_options topt = {.gateway = fx->gw, .conns = conns, .meter = fx->meter,
                               .bufs = &fx->bufs, .metrics = fx->metrics};
    udp_ingest_options uopt = {.gateway = fx->gw, .meter = fx->meter, .metrics = fx->metrics};
    http_server *http;
    tcp_ingest *tcp;
    udp_ingest *udp;
    char hb[64], tb[64], ub[64];
    assert_int_equal(http_server_start(&fx->loop, "127.0.0.1:0", &hopt, &http, hb, sizeof hb),
                     SS_OK);
    assert_int_equal(tcp_ingest_start(&fx->loop, "127.0.0.1:0", &topt, &tcp, tb, sizeof tb),
                     SS_OK);
    assert_int_equal(udp_ingest_start(&fx->loop, "127.0.0.1:0", &uopt, &udp, ub, sizeof ub),
                     SS_OK);
    client_job job = {.http_port = port_of(hb), .tcp_port = port_of(tb), .udp_port = port_of(ub)};
    uv_thread_t client;
    assert_int_equal(uv_thread_create(&client, client_main, &job), 0);
    fx->stop_after_batches = 3;
    while (fx->batches < 3)
        uv_run(&fx->loop, UV_RUN_DEFAULT);
    uv_thread_join(&client);
    assert_non_null(strstr(job.http_answer, "{\"stored\":1}"));
    assert_non_null(strstr(job.tcp_answer, "OK\nACK 1\n"));
    assert_string_equal(fx->batch_protocol[0], "http");
    assert_string_equal(fx->batch_device[0], DEV_A);
    assert_true(fx->batch_first[0] == 1.0);
    assert_string_equal(fx->batch_protocol[1], "tcp");
    assert_string_equal(fx->batch_device[1], DEV_A2);
    assert_true(fx->batch_first[1] == 2.0);
    assert_string_equal(fx->batch_protocol[2], "udp");
    assert_string_equal(fx->batch_device[2], DEV_B);
    assert_true(fx->batch_first[2] == 3.0);
    http_server_stop(http, NULL, NULL);
    tcp_ingest_stop(tcp, NULL, NULL);
    udp_ingest_stop(udp, NULL, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    ingest_queue_stop(fx->q);
    fx->q = NULL;
    conn_registry_close(conns);
    meter_stop(fx->meter, "shutdown");
    fx->meter_stopped = 1;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    http_server_free(http);
    tcp_ingest_free(tcp);
    udp_ingest_free(udp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gateway_auth_by_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gateway_auth_by_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gateway_auth_key_in_descendant_orgs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gateway_key_message_is_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gateway_parse_formats_and_refusals, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gateway_ingest_counts_every_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gateway_counts_stored_readings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gateway_quota_refusal_counts_and_reserves_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_gateway_busy_refusal_releases_the_reservation,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_gateway_prepaid_messages_draw_on_one_reservation,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_gateway_settles_on_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gateway_settles_on_store_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_gateway_deleted_device_counts_as_the_protocol_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gateway_channel_refusal_by_group, setup, teardown),
        cmocka_unit_test(test_fanout_subscribe_and_unsubscribe_inside_callbacks),
        cmocka_unit_test(test_fanout_subscriber_added_mid_commit_waits_for_the_next),
        cmocka_unit_test_setup_teardown(test_fanout_sees_http_tcp_and_udp_in_commit_order, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
