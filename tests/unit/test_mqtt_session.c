/* Unit tests of src/mqtt/session.c and deliver.c: sessions, routing and the
 * QoS flows out, with the real subscription index, retained store and
 * messages, and two stand-ins: the connection (conn.c: packets sent are
 * recorded) and the persister (persist.h: records kept until the test
 * commits them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/clock.h"
#include "core/err.h"
#include "mqtt/session.h"

#define ORG "0123456789abcdef01234567"
#define ORG2 "aaaaaaaaaaaaaaaaaaaaaaaa"
#define DEV_A "da0000000000000000000000"
#define DEV_B "db0000000000000000000000"
#define SENT_MAX 4096
/* Records one test makes at most: the retained limit test's 10 000 and a few. */
#define OPS_MAX 16384

/* ---- the connection's stand-in ------------------------------------------------------- */

typedef struct sent {
    mqtt_conn *c;
    uint8_t type;
    uint8_t qos, retain, dup;
    uint16_t packet_id;
    char topic[64];
    char payload[256];
    uint32_t n_ids;
    uint32_t ids[MQTT_SUB_IDS_MAX];
} sent;


/* A connection signed in as a device of org. */
static void set_device(mqtt_who *w, const char *device_id, const char *org, int disabled)
{
    aaa_principal p;
    aaa_principal_device(&p, device_id, org, disabled);
    mqtt_who_set(w, &p);
}

static sent g_sent[SENT_MAX];
static unsigned g_n_sent;
static int g_send_rc;          /* what mqtt_conn_send answers */
static size_t g_unsent;        /* what mqtt_conn_unsent answers */
static uint8_t g_disconnect_reason;
static mqtt_conn *g_disconnected;

int mqtt_conn_send(mqtt_conn *c, const mqtt_packet *p)
{
    if (g_send_rc)
        return g_send_rc;
    assert_true(g_n_sent < SENT_MAX);
    sent *s = &g_sent[g_n_sent++];
    memset(s, 0, sizeof *s);
    s->c = c;
    s->type = p->type;
    if (p->type == MQTT_PUBLISH) {
        const mqtt_publish *pub = &p->publish;
        s->qos = pub->qos;
        s->retain = pub->retain;
        s->dup = pub->dup;
        s->packet_id = pub->packet_id;
        snprintf(s->topic, sizeof s->topic, "%.*s", (int)pub->topic.len, pub->topic.p);
        snprintf(s->payload, sizeof s->payload, "%.*s", (int)pub->payload_len,
                 (const char *)pub->payload);
        s->n_ids = pub->props.n_sub_ids;
        memcpy(s->ids, pub->props.sub_ids, sizeof s->ids);
    } else {
        s->packet_id = p->ack.packet_id;
    }
    return 0;
}

void mqtt_conn_disconnect(mqtt_conn *c, uint8_t reason)
{
    g_disconnected = c;
    g_disconnect_reason = reason;
    c->state = MQTT_CONN_CLOSING;
}

size_t mqtt_conn_unsent(const mqtt_conn *c)
{
    (void)c;
    return g_unsent;
}

/* The stalled-reader check deliver.c asks for: the test runs it. */
static uint64_t g_stall_check_ms;

void mqtt_conn_stall_check(mqtt_conn *c, uint64_t ms)
{
    (void)c;
    g_stall_check_ms = ms;
}

/* What the client's socket took: the tests move bytes_out. */
uint64_t net_stream_bytes_taken(const net_stream *st)
{
    return st->bytes_out;
}

/* ---- the persister's stand-in ----------------------------------------------------------- */

typedef enum { OP_SESSION_PUT, OP_SESSION_DEL, OP_SUB_PUT, OP_SUB_DEL, OP_DELIVERY_PUT,
               OP_DELIVERY_DEL, OP_INBOUND_PUT, OP_INBOUND_DEL, OP_RETAIN_PUT } op_kind;

typedef struct op {
    op_kind kind;
    uint64_t seq;
    uint8_t state;
    uint16_t packet_id;
    mqtt_persist_done_cb done;
    void *ctx;
} op;

static op g_ops[OPS_MAX];
static unsigned g_n_ops, g_committed;
static int g_persist_rc;       /* what the next records answer */

static int record(op_kind kind, uint64_t seq, uint8_t state, uint16_t packet_id,
                  mqtt_persist_done_cb done, void *ctx)
{
    if (g_persist_rc)
        return g_persist_rc;
    assert_true(g_n_ops < OPS_MAX);
    g_ops[g_n_ops++] = (op){kind, seq, state, packet_id, done, ctx};
    return 0;
}

/* Runs the callbacks of everything recorded so far, in order. */
static void commit(void)
{
    while (g_committed < g_n_ops) {
        op *o = &g_ops[g_committed++];
        if (o->done)
            o->done(o->ctx, 0);
    }
}

static unsigned count_ops(op_kind kind)
{
    unsigned n = 0;
    for (unsigned i = 0; i < g_n_ops; i++)
        n += g_ops[i].kind == kind;
    return n;
}

/* What the store "holds" at the next mqtt_sessions_new (NULL: nothing). */
static int (*g_load)(const mqtt_persist_loader *l);

int mqtt_persist_load(mqtt_persist *p, const mqtt_persist_loader *l, int64_t now_ms)
{
    (void)p, (void)now_ms;
    return g_load ? g_load(l) : 0;
}
int mqtt_persist_session_put(mqtt_persist *p, const mqtt_persist_session *s,
                             mqtt_persist_done_cb done, void *ctx)
{
    (void)p, (void)s;
    return record(OP_SESSION_PUT, 0, 0, 0, done, ctx);
}
int mqtt_persist_session_del(mqtt_persist *p, const char *org_id, const char *client_id,
                             mqtt_persist_done_cb done, void *ctx)
{
    (void)p, (void)org_id, (void)client_id;
    return record(OP_SESSION_DEL, 0, 0, 0, done, ctx);
}
int mqtt_persist_sub_put(mqtt_persist *p, const mqtt_persist_sub *s, mqtt_persist_done_cb done,
                         void *ctx)
{
    (void)p, (void)s;
    return record(OP_SUB_PUT, 0, 0, 0, done, ctx);
}
int mqtt_persist_sub_del(mqtt_persist *p, const char *org_id, const char *client_id,
                         const char *filter, mqtt_persist_done_cb done, void *ctx)
{
    (void)p, (void)org_id, (void)client_id, (void)filter;
    return record(OP_SUB_DEL, 0, 0, 0, done, ctx);
}
int mqtt_persist_delivery_put(mqtt_persist *p, const mqtt_persist_delivery *d,
                              mqtt_persist_done_cb done, void *ctx)
{
    (void)p;
    return record(OP_DELIVERY_PUT, d->seq, (uint8_t)d->state, d->packet_id, done, ctx);
}
int mqtt_persist_delivery_del(mqtt_persist *p, const char *org_id, const char *client_id,
                              uint64_t seq, mqtt_persist_done_cb done, void *ctx)
{
    (void)p, (void)org_id, (void)client_id;
    return record(OP_DELIVERY_DEL, seq, 0, 0, done, ctx);
}
int mqtt_persist_inbound_put(mqtt_persist *p, const char *org_id, const char *client_id,
                             uint16_t packet_id, mqtt_persist_done_cb done, void *ctx)
{
    (void)p, (void)org_id, (void)client_id;
    return record(OP_INBOUND_PUT, 0, 0, packet_id, done, ctx);
}
int mqtt_persist_inbound_del(mqtt_persist *p, const char *org_id, const char *client_id,
                             uint16_t packet_id, mqtt_persist_done_cb done, void *ctx)
{
    (void)p, (void)org_id, (void)client_id;
    return record(OP_INBOUND_DEL, 0, 0, packet_id, done, ctx);
}
int mqtt_persist_retain_put(mqtt_persist *p, mqtt_msg *m, mqtt_persist_done_cb done, void *ctx)
{
    (void)p, (void)m;
    return record(OP_RETAIN_PUT, 0, 0, 0, done, ctx);
}

/* ---- fixture ------------------------------------------------------------------------------ */

typedef struct fixture {
    uv_loop_t loop;
    mqtt_broker b;
    mqtt_conn conns[4];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->b.loop = &f->loop;
    f->b.persist = (mqtt_persist *)f;  /* the stand-in never looks at it */
    assert_int_equal(mqtt_subs_new(&f->b.subs), 0);
    assert_int_equal(mqtt_retain_new(&f->b.retain), 0);
    assert_int_equal(mqtt_sessions_new(&f->b), 0);
    for (unsigned i = 0; i < 4; i++) {
        mqtt_conn *c = &f->conns[i];
        c->broker = &f->b;
        c->version = MQTT_V5;
        c->state = MQTT_CONN_ACTIVE;
        set_device(&c->who, i % 2 ? DEV_B : DEV_A, ORG, 0);
    }
    g_n_sent = g_n_ops = g_committed = 0;
    g_load = NULL;
    g_send_rc = g_persist_rc = 0;
    g_unsent = 0;
    g_disconnected = NULL;
    g_disconnect_reason = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    mqtt_sessions_stop(&f->b);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    mqtt_sessions_free(&f->b);
    mqtt_subs_free(f->b.subs);
    mqtt_retain_free(f->b.retain);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static mqtt_conn *attach(fixture *f, unsigned i, const char *id, int clean, uint32_t expiry,
                         int *present)
{
    mqtt_conn *c = &f->conns[i];
    c->state = MQTT_CONN_ACTIVE;
    c->will_suppressed = 0;
    int p = 0;
    assert_int_equal(mqtt_session_attach(c, id, strlen(id), clean, expiry, &p), 0);
    if (present)
        *present = p;
    mqtt_deliver_resume(c);
    return c;
}

static void subscribe(mqtt_conn *c, const char *filter, uint8_t options, uint32_t sub_id,
                      uint8_t want)
{
    uint8_t reason = 0xFF;
    assert_int_equal(mqtt_session_subscribe(c, filter, strlen(filter), options, sub_id, &reason),
                     0);
    assert_int_equal(reason, want);
}

static int publish(fixture *f, const char *topic, const char *payload, uint8_t qos,
                   uint8_t retain, uint64_t origin, mqtt_persist_done_cb done, void *ctx)
{
    mqtt_msg *m = mqtt_msg_new(ORG, topic, strlen(topic), (const uint8_t *)payload,
                               strlen(payload), qos, retain, NULL, clock_now_ms());
    assert_non_null(m);
    int matched = 0;
    int rc = mqtt_route(&f->b, m, origin, done, ctx, &matched);
    mqtt_msg_unref(m);
    return rc;
}

static unsigned sent_to(const mqtt_conn *c, uint8_t type)
{
    unsigned n = 0;
    for (unsigned i = 0; i < g_n_sent; i++)
        n += g_sent[i].c == c && g_sent[i].type == type;
    return n;
}

static const sent *last_sent(void)
{
    assert_true(g_n_sent > 0);
    return &g_sent[g_n_sent - 1];
}

static void on_done(void *ctx, int status)
{
    int *n = ctx;
    assert_int_equal(status, 0);
    (*n)++;
}

/* ---- routing ---------------------------------------------------------------------------- */

/* MQTT-3.3.4-2, -3: one delivery at the highest QoS granted, with every
 * matching subscription's identifier. */
static void overlapping_subscriptions_give_one_delivery(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = attach(f, 0, "app", 1, 0, NULL);
    subscribe(c, "a/+", 0, 7, 0);
    subscribe(c, "a/#", 1, 9, 1);
    assert_int_equal(publish(f, "a/b", "x", 2, 0, 0, NULL, NULL), 0);
    assert_int_equal(g_n_sent, 1);
    const sent *s = last_sent();
    assert_int_equal(s->qos, 1);  /* min(2 published, 1 granted) */
    assert_int_equal(s->n_ids, 2);
    assert_true((s->ids[0] == 7 && s->ids[1] == 9) || (s->ids[0] == 9 && s->ids[1] == 7));
}

/* MQTT-3.8.3-3: no-local; retain-as-published (MQTT-3.3.1-12, -13). */
static void no_local_and_retain_as_published(void **state)
{
    fixture *f = *state;
    mqtt_conn *me = attach(f, 0, "me", 1, 0, NULL);
    mqtt_conn *rap = attach(f, 1, "rap", 1, 0, NULL);
    mqtt_conn *plain = attach(f, 2, "plain", 1, 0, NULL);
    subscribe(me, "t", MQTT_SUBOPT_NO_LOCAL, 0, 0);
    subscribe(rap, "t", MQTT_SUBOPT_RETAIN_AS_PUBLISHED, 0, 0);
    subscribe(plain, "t", 0, 0, 0);
    assert_int_equal(publish(f, "t", "x", 0, 1, mqtt_session_serial(me->session), NULL, NULL), 0);
    assert_int_equal(sent_to(me, MQTT_PUBLISH), 0);
    assert_int_equal(sent_to(rap, MQTT_PUBLISH), 1);
    assert_int_equal(sent_to(plain, MQTT_PUBLISH), 1);
    for (unsigned i = 0; i < g_n_sent; i++)
        assert_int_equal(g_sent[i].retain, g_sent[i].c == rap);
}

static void another_orgs_subscriber_gets_nothing(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = &f->conns[3];
    set_device(&c->who, DEV_B, ORG2, 0);
    attach(f, 3, "other", 1, 0, NULL);
    subscribe(c, "#", 1, 0, 1);
    assert_int_equal(publish(f, "t", "x", 1, 0, 0, NULL, NULL), 0);
    assert_int_equal(g_n_sent, 0);
}

/* The publisher's acknowledgement waits for the records of a stored
 * subscriber's delivery; with none it may run at once. */
static void done_waits_for_the_store_of_a_persistent_subscriber(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = attach(f, 0, "clean", 1, 0, NULL);
    subscribe(c, "t", 1, 0, 1);
    int done = 0;
    assert_int_equal(publish(f, "t", "x", 1, 0, 0, on_done, &done), 0);
    assert_int_equal(done, 1);
    mqtt_conn *p = attach(f, 1, "kept", 0, 600, NULL);
    subscribe(p, "t", 1, 0, 1);
    done = 0;
    assert_int_equal(publish(f, "t", "y", 1, 0, 0, on_done, &done), 0);
    assert_int_equal(done, 0);
    assert_true(count_ops(OP_DELIVERY_PUT) >= 1);
    commit();
    assert_int_equal(done, 1);
}

static void full_persister_routes_nothing(void **state)
{
    fixture *f = *state;
    mqtt_conn *p = attach(f, 1, "kept", 0, 600, NULL);
    subscribe(p, "t", 1, 0, 1);
    mqtt_conn *c = attach(f, 0, "clean", 1, 0, NULL);
    subscribe(c, "t", 1, 0, 1);
    g_persist_rc = SS_BUSY;
    int done = 0;
    assert_int_equal(publish(f, "t", "x", 1, 0, 0, on_done, &done), SS_BUSY);
    assert_int_equal(g_n_sent, 0);
    g_persist_rc = 0;
    commit();
    assert_int_equal(done, 0);
    /* A will or readings: nobody waits to send it again, so it goes in
     * memory only. */
    g_persist_rc = SS_BUSY;
    assert_int_equal(publish(f, "t", "y", 1, 0, 0, NULL, NULL), 0);
    g_persist_rc = 0;
    assert_int_equal(sent_to(p, MQTT_PUBLISH), 1);
    assert_int_equal(sent_to(c, MQTT_PUBLISH), 1);
}

static void retained_limit_per_org(void **state)
{
    fixture *f = *state;
    char topic[32];
    for (unsigned i = 0; i < SS_MQTT_RETAINED_PER_ORG_MAX; i++) {
        snprintf(topic, sizeof topic, "r/%u", i);
        assert_int_equal(publish(f, topic, "v", 0, 1, 0, NULL, NULL), 0);
    }
    assert_int_equal(publish(f, "r/new", "v", 0, 1, 0, NULL, NULL), SS_QUOTA);
    assert_int_equal(publish(f, "r/0", "changed", 0, 1, 0, NULL, NULL), 0);
    assert_int_equal(publish(f, "r/1", "", 0, 1, 0, NULL, NULL), 0);  /* clears one */
    assert_int_equal(publish(f, "r/new", "v", 0, 1, 0, NULL, NULL), 0);
}

/* ---- the flows out ------------------------------------------------------------------------ */

static void window_follows_receive_maximum(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = &f->conns[0];
    c->receive_max_out = 2;
    attach(f, 0, "slow", 1, 0, NULL);
    subscribe(c, "t", 1, 0, 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(publish(f, "t", "x", 1, 0, 0, NULL, NULL), 0);
    assert_int_equal(g_n_sent, 2);
    uint16_t first = g_sent[0].packet_id;
    assert_int_not_equal(first, 0);
    assert_int_not_equal(g_sent[1].packet_id, first);
    assert_int_equal(mqtt_deliver_ack(c, MQTT_PUBACK, first, 0), 0);
    assert_int_equal(g_n_sent, 3);
    assert_int_equal(mqtt_deliver_ack(c, MQTT_PUBACK, first, 0), SS_NOT_FOUND);
}

static void qos2_flow_out(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = attach(f, 0, "q2", 1, 0, NULL);
    subscribe(c, "t", 2, 0, 2);
    assert_int_equal(publish(f, "t", "x", 2, 0, 0, NULL, NULL), 0);
    uint16_t id = last_sent()->packet_id;
    assert_int_equal(mqtt_deliver_ack(c, MQTT_PUBCOMP, id, 0), SS_NOT_FOUND);
    assert_int_equal(mqtt_deliver_ack(c, MQTT_PUBACK, id, 0), SS_NOT_FOUND);
    assert_int_equal(mqtt_deliver_ack(c, MQTT_PUBREC, id, 0), 0);
    assert_int_equal(last_sent()->type, MQTT_PUBREL);
    assert_int_equal(last_sent()->packet_id, id);
    assert_int_equal(mqtt_deliver_ack(c, MQTT_PUBCOMP, id, 0), 0);
    assert_int_equal(c->session->out->n_in_flight, 0);
}

/* MQTT-4.4.0-1: on a new connection the unacknowledged PUBLISHes go again
 * with DUP and their ids, a released QoS 2 one as PUBREL; then the queue. */
static void reconnect_resends_in_flight_with_dup(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = &f->conns[0];
    c->receive_max_out = 2;
    attach(f, 0, "again", 0, 600, NULL);
    subscribe(c, "t", 2, 0, 2);
    for (int i = 0; i < 3; i++)
        assert_int_equal(publish(f, "t", "x", 2, 0, 0, NULL, NULL), 0);
    uint16_t a = g_sent[0].packet_id, b = g_sent[1].packet_id;
    assert_int_equal(mqtt_deliver_ack(c, MQTT_PUBREC, a, 0), 0);  /* a: released */
    mqtt_session_detach(c);
    g_n_sent = 0;
    int present = 0;
    mqtt_conn *c2 = &f->conns[2];
    c2->receive_max_out = 2;
    set_device(&c2->who, DEV_A, ORG, 0);
    attach(f, 2, "again", 0, 600, &present);
    assert_int_equal(present, 1);
    assert_int_equal(g_n_sent, 2);
    assert_int_equal(g_sent[0].type, MQTT_PUBREL);
    assert_int_equal(g_sent[0].packet_id, a);
    assert_int_equal(g_sent[1].type, MQTT_PUBLISH);
    assert_int_equal(g_sent[1].packet_id, b);
    assert_int_equal(g_sent[1].dup, 1);
    assert_int_equal(mqtt_deliver_ack(c2, MQTT_PUBCOMP, a, 0), 0);
    assert_int_equal(g_n_sent, 3);  /* the queued third */
    assert_int_equal(g_sent[2].dup, 0);
}

static void offline_persistent_session_keeps_qos1_not_qos0(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = attach(f, 0, "away", 0, 600, NULL);
    subscribe(c, "t", 1, 0, 1);
    c->will_suppressed = 1;
    mqtt_session_detach(c);
    assert_int_equal(publish(f, "t", "q0", 0, 0, 0, NULL, NULL), 0);
    assert_int_equal(publish(f, "t", "q1", 1, 0, 0, NULL, NULL), 0);
    g_n_sent = 0;
    int present = 0;
    attach(f, 0, "away", 0, 600, &present);
    assert_int_equal(present, 1);
    assert_int_equal(g_n_sent, 1);
    assert_string_equal(g_sent[0].payload, "q1");
}

static void clean_start_drops_what_the_session_had(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = attach(f, 0, "fresh", 0, 600, NULL);
    subscribe(c, "t", 1, 0, 1);
    mqtt_session_detach(c);
    assert_int_equal(publish(f, "t", "x", 1, 0, 0, NULL, NULL), 0);
    g_n_sent = 0;
    int present = 1;
    attach(f, 0, "fresh", 1, 600, &present);
    assert_int_equal(present, 0);
    assert_int_equal(g_n_sent, 0);
    assert_int_equal(publish(f, "t", "y", 1, 0, 0, NULL, NULL), 0);
    assert_int_equal(g_n_sent, 0);  /* the subscription went too */
}

/* The oldest queued go past the bound; a connected client that let its
 * queue fill is disconnected. */
static void full_queue_drops_the_oldest(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = attach(f, 0, "full", 0, 600, NULL);
    subscribe(c, "t", 1, 0, 1);
    mqtt_session_detach(c);
    char payload[16];
    for (unsigned i = 0; i < SS_MQTT_SESSION_QUEUE_MAX + 5; i++) {
        snprintf(payload, sizeof payload, "%u", i);
        assert_int_equal(publish(f, "t", payload, 1, 0, 0, NULL, NULL), 0);
    }
    g_n_sent = 0;
    c->receive_max_out = 1;
    attach(f, 0, "full", 0, 600, NULL);
    assert_int_equal(c->session->out->n_queued + c->session->out->n_in_flight, SS_MQTT_SESSION_QUEUE_MAX);
    assert_string_equal(g_sent[0].payload, "5");
    assert_null(g_disconnected);
    /* Connected, it overflows again: while its socket takes bytes it only
     * loses messages; once no byte went out for SS_MQTT_STALL_MS it is a
     * stalled reader and is disconnected. */
    for (unsigned i = 0; i < 10; i++) {
        c->base.stream.bytes_out += SS_MQTT_STALL_TAKEN_MIN;
        c->session->out->stall_mark_ms -= SS_MQTT_STALL_MS;
        assert_int_equal(publish(f, "t", "more", 1, 0, 0, NULL, NULL), 0);
    }
    assert_null(g_disconnected);
    assert_int_equal(publish(f, "t", "more", 1, 0, 0, NULL, NULL), 0);
    assert_null(g_disconnected);  /* stalled, but not for long yet */
    c->session->out->stall_mark_ms -= SS_MQTT_STALL_MS;
    assert_int_equal(publish(f, "t", "more", 1, 0, 0, NULL, NULL), 0);
    assert_ptr_equal(g_disconnected, c);
    assert_int_equal(g_disconnect_reason, MQTT_RC_QUOTA_EXCEEDED);
}

/* A client behind in reading gets nothing more until it drains; then
 * what waited goes in order, QoS 0 included. */
static void client_behind_gets_its_queue_when_it_drains(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = attach(f, 0, "stall", 1, 0, NULL);
    subscribe(c, "t", 1, 0, 1);
    g_unsent = SS_MQTT_DELIVER_UNSENT_MAX + 1;
    assert_int_equal(publish(f, "t", "q0", 0, 0, 0, NULL, NULL), 0);
    assert_int_equal(publish(f, "t", "q1", 1, 0, 0, NULL, NULL), 0);
    assert_int_equal(publish(f, "t", "q0-again", 0, 0, 0, NULL, NULL), 0);
    assert_int_equal(g_n_sent, 0);
    g_unsent = 0;
    mqtt_deliver_resume(c);  /* drained */
    assert_int_equal(g_n_sent, 3);
    assert_string_equal(g_sent[0].payload, "q0");
    assert_int_equal(g_sent[0].qos, 0);
    assert_string_equal(g_sent[1].payload, "q1");
    assert_string_equal(g_sent[2].payload, "q0-again");
    assert_int_equal(c->session->out->n_queued, 0);
    assert_int_equal(c->session->out->n_in_flight, 1);
}

/* All sessions' waiting QoS 0 stay under one total: the tenth slow reader
 * of a flood finds it full and loses the next message; what leaves frees
 * room. */
static void qos0_total_bounded(void **state)
{
    fixture *f = *state;
    mqtt_sessions *t = mqtt_sessions_of(&f->b);
    mqtt_conn *c = attach(f, 0, "slow", 1, 0, NULL);
    subscribe(c, "t", 0, 0, 0);
    g_unsent = SS_MQTT_DELIVER_UNSENT_MAX + 1;
    assert_int_equal(publish(f, "t", "a", 0, 0, 0, NULL, NULL), 0);
    assert_int_equal(c->session->out->n_qos0, 1);
    size_t one = t->qos0_bytes;
    assert_true(one > 0);
    t->qos0_bytes = SS_MQTT_QOS0_QUEUED_TOTAL_MAX;  /* as if others held the rest */
    assert_int_equal(publish(f, "t", "b", 0, 0, 0, NULL, NULL), 0);
    assert_int_equal(c->session->out->n_qos0, 1);
    assert_int_equal(c->session->dropped, 1);
    t->qos0_bytes = one;
    g_unsent = 0;
    mqtt_deliver_resume(c);
    assert_int_equal(t->qos0_bytes, 0);
    assert_string_equal(last_sent()->payload, "a");
}

/* A flood of QoS 0 past the client's queue and past
 * SS_MQTT_STALL_DROPPED_BYTES more, all within a moment; then the stall
 * check comes due (SS_MQTT_STALL_MIN_MS later), the client's socket having
 * taken `taken` bytes meanwhile. */
static mqtt_conn *flood_then_check(fixture *f, const char *client, uint64_t taken)
{
    mqtt_conn *c = attach(f, 0, client, 1, 0, NULL);
    subscribe(c, "t", 0, 0, 0);
    g_unsent = SS_MQTT_DELIVER_UNSENT_MAX + 1;
    g_stall_check_ms = 0;
    size_t len = 60000;
    char *big = malloc(len + 1);
    assert_non_null(big);
    memset(big, 'z', len);
    big[len] = 0;
    for (size_t flooded = 0; flooded < SS_MQTT_QOS0_QUEUE_BYTES_MAX + SS_MQTT_STALL_DROPPED_BYTES + 2 * len;
         flooded += len)
        assert_int_equal(publish(f, "t", big, 0, 0, 0, NULL, NULL), 0);
    free(big);
    /* A reader's acknowledgements come in steps: a flood of a moment
     * proves nothing yet, a check is due soon. */
    assert_null(g_disconnected);
    assert_true(g_stall_check_ms > 0 && g_stall_check_ms <= SS_MQTT_STALL_MIN_MS);
    c->base.stream.bytes_out += taken;
    c->session->out->stall_mark_ms -= SS_MQTT_STALL_MIN_MS;
    mqtt_deliver_stall_check(c);
    return c;
}

/* A client whose socket takes nothing while a flood meant for it is
 * dropped is a stalled reader long before SS_MQTT_STALL_MS. */
static void stalled_reader_is_disconnected_during_a_flood(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = flood_then_check(f, "stuck", SS_MQTT_STALL_TAKEN_MIN - 1);
    assert_ptr_equal(g_disconnected, c);
    assert_int_equal(g_disconnect_reason, MQTT_RC_QUOTA_EXCEEDED);
}

/* One whose socket took bytes meanwhile reads, slowly: it loses what was
 * dropped and stays (what it took counted by the peer's acknowledgements,
 * not by whole writes done). */
static void slow_reader_keeps_its_connection_through_a_flood(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = flood_then_check(f, "slow", SS_MQTT_STALL_TAKEN_MIN);
    assert_null(g_disconnected);
    assert_true(c->session->dropped > 0);
    assert_int_equal(c->session->out->stall_mark_ms, 0);
}

/* QoS 0 waits within a budget of its own: past it the oldest QoS 0 go,
 * and no QoS 1 message; a gone client's QoS 0 is not kept. */
static void qos0_budget_apart(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = attach(f, 0, "behind", 0, 600, NULL);
    subscribe(c, "t", 1, 0, 1);
    g_unsent = SS_MQTT_DELIVER_UNSENT_MAX + 1;
    assert_int_equal(publish(f, "t", "first-q1", 1, 0, 0, NULL, NULL), 0);
    mqtt_session *s = c->session;
    unsigned n = 0;
    while (s->dropped == 0) {
        c->base.stream.bytes_out++;  /* it reads, slowly: never stalled */
        assert_int_equal(publish(f, "t", "q0", 0, 0, 0, NULL, NULL), 0);
        n++;
    }
    assert_true(n > SS_MQTT_SESSION_QUEUE_MAX);  /* QoS 1's count is not QoS 0's */
    assert_true(s->out->bytes_qos0 <= SS_MQTT_QOS0_QUEUE_BYTES_MAX);
    assert_int_equal(publish(f, "t", "last-q1", 1, 0, 0, NULL, NULL), 0);
    assert_null(g_disconnected);
    assert_int_equal(s->out->n_queued - s->out->n_qos0, 2);
    mqtt_session_detach(c);
    assert_int_equal(s->out->n_queued, 2);
    assert_int_equal(s->out->n_qos0, 0);
    assert_int_equal(s->out->bytes_qos0, 0);
    g_unsent = 0;
    g_n_sent = 0;
    attach(f, 0, "behind", 0, 600, NULL);
    assert_int_equal(g_n_sent, 2);
    assert_string_equal(g_sent[0].payload, "first-q1");
    assert_string_equal(g_sent[1].payload, "last-q1");
}

/* MQTT-3.1.2-25: too large for the client: dropped, the next one goes. */
static void too_large_for_the_client_is_dropped(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = attach(f, 0, "small", 1, 0, NULL);
    subscribe(c, "t", 1, 0, 1);
    g_send_rc = SS_TOO_LARGE;
    assert_int_equal(publish(f, "t", "big", 1, 0, 0, NULL, NULL), 0);
    g_send_rc = 0;
    assert_int_equal(c->session->out->n_in_flight + c->session->out->n_queued, 0);
    assert_int_equal(publish(f, "t", "ok", 1, 0, 0, NULL, NULL), 0);
    assert_string_equal(last_sent()->payload, "ok");
}

/* ---- sessions ----------------------------------------------------------------------------- */

static void second_connection_takes_over(void **state)
{
    fixture *f = *state;
    mqtt_conn *old = attach(f, 0, "dup", 0, 600, NULL);
    mqtt_session *s = old->session;
    int present = 0;
    mqtt_conn *now = attach(f, 2, "dup", 0, 600, &present);
    assert_int_equal(present, 1);
    assert_ptr_equal(g_disconnected, old);
    assert_int_equal(g_disconnect_reason, MQTT_RC_SESSION_TAKEN_OVER);
    assert_null(old->session);
    assert_ptr_equal(now->session, s);
    mqtt_session_detach(old);  /* conn.c's close of the old one: nothing */
    assert_ptr_equal(now->session, s);
}

/* A client id is its principal's own: another device using it neither
 * resumes, takes over nor ends this one's session. */
static void another_principal_does_not_touch_a_session(void **state)
{
    fixture *f = *state;
    mqtt_conn *a = attach(f, 0, "shared-id", 0, 600, NULL);
    subscribe(a, "t", 1, 0, 1);
    int present = 1;
    mqtt_conn *b = attach(f, 1, "shared-id", 1, 0, &present);  /* DEV_B, clean */
    assert_int_equal(present, 0);
    assert_null(g_disconnected);
    assert_non_null(a->session);
    assert_ptr_not_equal(a->session, b->session);
    mqtt_session_detach(a);
    assert_int_equal(publish(f, "t", "kept", 1, 0, 0, NULL, NULL), 0);
    attach(f, 2, "shared-id", 0, 600, &present);  /* DEV_A again */
    assert_int_equal(present, 1);
    assert_string_equal(last_sent()->payload, "kept");
}

static void set_will(mqtt_conn *c, const char *topic, uint32_t delay)
{
    mqtt_msg *w = mqtt_msg_new(ORG, topic, strlen(topic), (const uint8_t *)"bye", 3, 0, 0, NULL,
                               clock_now_ms());
    assert_non_null(w);
    mqtt_session_set_will(c, w, delay);
}

static void will_on_abrupt_close_not_after_disconnect(void **state)
{
    fixture *f = *state;
    mqtt_conn *w = attach(f, 0, "watch", 1, 0, NULL);
    subscribe(w, "will/#", 0, 0, 0);
    mqtt_conn *c = attach(f, 2, "dies", 1, 0, NULL);
    set_will(c, "will/dies", 0);
    mqtt_session_detach(c);
    assert_int_equal(sent_to(w, MQTT_PUBLISH), 1);
    c = attach(f, 2, "polite", 1, 0, NULL);
    set_will(c, "will/polite", 0);
    c->will_suppressed = 1;
    mqtt_session_detach(c);
    assert_int_equal(sent_to(w, MQTT_PUBLISH), 1);
}

static void on_run_for(uv_timer_t *t)
{
    uv_timer_stop(t);
}

static void run_for(fixture *f, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    uv_timer_start(&t, on_run_for, ms, 0);
    while (uv_is_active((uv_handle_t *)&t))
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* 5.0: a will waits its delay, and a reconnection in the meantime cancels
 * it (MQTT-3.1.3-9); the session's expiry ends it. */
static void will_delay_and_session_expiry(void **state)
{
    fixture *f = *state;
    mqtt_conn *w = attach(f, 0, "watch", 1, 0, NULL);
    subscribe(w, "will/#", 0, 0, 0);
    mqtt_conn *c = attach(f, 2, "delayed", 0, 600, NULL);
    set_will(c, "will/delayed", 1);
    mqtt_session_detach(c);
    assert_int_equal(sent_to(w, MQTT_PUBLISH), 0);
    run_for(f, 1100);
    assert_int_equal(sent_to(w, MQTT_PUBLISH), 1);
    c = attach(f, 2, "cancelled", 0, 600, NULL);
    set_will(c, "will/cancelled", 1);
    mqtt_session_detach(c);
    attach(f, 2, "cancelled", 0, 600, NULL);
    run_for(f, 1100);
    assert_int_equal(sent_to(w, MQTT_PUBLISH), 1);
    c = attach(f, 3, "short", 0, 1, NULL);
    mqtt_session_detach(c);
    run_for(f, 1100);
    int present = 1;
    attach(f, 3, "short", 0, 1, &present);
    assert_int_equal(present, 0);
}

static void retain_handling(void **state)
{
    fixture *f = *state;
    assert_int_equal(publish(f, "s/door", "open", 1, 1, 0, NULL, NULL), 0);
    mqtt_conn *c = attach(f, 0, "r", 1, 0, NULL);
    subscribe(c, "s/+", 1 | (2 << MQTT_SUBOPT_RETAIN_HANDLING_SHIFT), 0, 1);
    assert_int_equal(g_n_sent, 0);
    subscribe(c, "s/#", 1 | (1 << MQTT_SUBOPT_RETAIN_HANDLING_SHIFT), 0, 1);
    assert_int_equal(g_n_sent, 1);
    assert_int_equal(last_sent()->retain, 1);
    subscribe(c, "s/#", 1 | (1 << MQTT_SUBOPT_RETAIN_HANDLING_SHIFT), 0, 1);
    assert_int_equal(g_n_sent, 1);
    subscribe(c, "s/door", 0, 0, 0);
    assert_int_equal(g_n_sent, 2);
    assert_int_equal(last_sent()->qos, 0);
}

static void subscription_limit_and_unsubscribe(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = attach(f, 0, "many", 1, 0, NULL);
    char filter[32];
    for (unsigned i = 0; i < SS_MQTT_SESSION_SUBS_MAX; i++) {
        snprintf(filter, sizeof filter, "f/%u", i);
        subscribe(c, filter, 0, 0, 0);
    }
    subscribe(c, "f/over", 0, 0, MQTT_RC_QUOTA_EXCEEDED);
    subscribe(c, "f/0", 1, 0, 1);  /* a replacement is no new one */
    uint8_t reason = 0xFF;
    assert_int_equal(mqtt_session_unsubscribe(c, "f/0", 3, &reason), 0);
    assert_int_equal(reason, MQTT_RC_SUCCESS);
    assert_int_equal(mqtt_session_unsubscribe(c, "f/0", 3, &reason), 0);
    assert_int_equal(reason, MQTT_RC_NO_SUBSCRIPTION_EXISTED);
    subscribe(c, "f/over", 0, 0, 0);
    c->version = MQTT_V311;
    subscribe(c, "f/over2", 0, 0, MQTT_311_SUBACK_FAILURE);
}

static void inbound_qos2_ids(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = attach(f, 0, "in", 0, 600, NULL);
    int done = 0;
    assert_int_equal(mqtt_session_inbound_add(c->session, 5, on_done, &done), 0);
    assert_int_equal(done, 0);
    commit();
    assert_int_equal(done, 1);
    assert_int_equal(mqtt_session_inbound_add(c->session, 5, on_done, &done), SS_EXISTS);
    assert_int_equal(mqtt_session_inbound_del(c->session, 5), 0);
    assert_int_equal(mqtt_session_inbound_del(c->session, 5), SS_NOT_FOUND);
    for (unsigned i = 1; i <= SS_MQTT_RECEIVE_MAX; i++)
        assert_int_equal(mqtt_session_inbound_add(c->session, (uint16_t)i, NULL, NULL), 0);
    assert_int_equal(mqtt_session_inbound_add(c->session, 999, NULL, NULL), SS_QUOTA);
}

/* A full persister is not a client over its window: the PUBLISH waits for
 * room (SS_BUSY) instead of the client being told it broke the Receive
 * Maximum (SS_QUOTA), and the id is not kept from the refused try. */
static void inbound_qos2_full_persister_is_not_the_window(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = attach(f, 0, "in-full", 0, 600, NULL);
    g_persist_rc = SS_BUSY;
    assert_int_equal(mqtt_session_inbound_add(c->session, 5, NULL, NULL), SS_BUSY);
    g_persist_rc = 0;
    assert_int_equal(mqtt_session_inbound_add(c->session, 5, NULL, NULL), 0);
    for (unsigned i = 6; i < 5 + SS_MQTT_RECEIVE_MAX; i++)
        assert_int_equal(mqtt_session_inbound_add(c->session, (uint16_t)i, NULL, NULL), 0);
    g_persist_rc = SS_BUSY;
    assert_int_equal(mqtt_session_inbound_add(c->session, 999, NULL, NULL), SS_QUOTA);
    g_persist_rc = 0;
}

/* A SUBACK of a persistent session waits for its subscription's record;
 * a clean session's need not. */
static void committed_waits_for_what_was_recorded(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = attach(f, 0, "kept", 0, 600, NULL);
    subscribe(c, "t", 1, 0, 1);
    int done = 0;
    assert_int_equal(mqtt_session_committed(c->session, on_done, &done), 0);
    assert_int_equal(done, 0);
    commit();
    assert_int_equal(done, 1);
    mqtt_conn *clean = attach(f, 1, "clean", 1, 0, NULL);
    assert_int_equal(mqtt_session_committed(clean->session, on_done, &done), 0);
    assert_int_equal(done, 2);
    g_persist_rc = SS_BUSY;
    assert_int_equal(mqtt_session_committed(c->session, on_done, &done), SS_BUSY);
    g_persist_rc = 0;
    commit();
    assert_int_equal(done, 2);
}

static void dropped_principal_loses_its_sessions(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = attach(f, 0, "gone", 0, 600, NULL);
    mqtt_conn *other = attach(f, 1, "stays", 0, 600, NULL);
    mqtt_sessions_drop_principal(&f->b, DEV_A);
    assert_null(c->session);
    assert_non_null(other->session);
    assert_true(count_ops(OP_SESSION_DEL) >= 1);
}

static void stored_sessions_per_principal_are_bounded(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = &f->conns[0];
    char id[32];
    int present = 0;
    for (unsigned i = 0; i < SS_MQTT_STORED_SESSIONS_PER_PRINCIPAL_MAX; i++) {
        snprintf(id, sizeof id, "s%u", i);
        assert_int_equal(mqtt_session_attach(c, id, strlen(id), 0, 600, &present), 0);
        c->will_suppressed = 1;
        mqtt_session_detach(c);
    }
    assert_int_equal(mqtt_session_attach(c, "one-more", 8, 0, 600, &present), SS_QUOTA);
    assert_null(c->session);
    /* A clean session, another principal, a stored one resumed: fine. */
    assert_int_equal(mqtt_session_attach(c, "clean", 5, 1, 0, &present), 0);
    mqtt_session_detach(c);
    assert_int_equal(mqtt_session_attach(&f->conns[1], "one-more", 8, 0, 600, &present), 0);
    assert_int_equal(mqtt_session_attach(c, "s3", 2, 0, 600, &present), 0);
    assert_int_equal(present, 1);
    /* One ends (clean start, expiry 0): room for another. */
    assert_int_equal(mqtt_session_attach(&f->conns[2], "s3", 2, 1, 0, &present), 0);
    assert_null(c->session);
    assert_int_equal(mqtt_session_attach(c, "one-more-2", 10, 0, 600, &present), 0);
}

/* ---- loading ------------------------------------------------------------------------------ */

/* The store keeps a session under "<principal>/<client id>". */
#define STORED_BACK DEV_A "/back"

static int load_one_of_each(const mqtt_persist_loader *l)
{
    mqtt_persist_session ps = {.org_id = ORG, .client_id = STORED_BACK, .principal_id = DEV_A,
                               .expiry_s = 600, .disconnected_ms = clock_now_ms()};
    mqtt_persist_sub sub = {.org_id = ORG, .client_id = STORED_BACK, .filter = "t/#", .options = 2,
                            .sub_id = 4};
    mqtt_msg *m = mqtt_msg_new(ORG, "t/a", 3, (const uint8_t *)"in-flight", 9, 2, 0, NULL,
                               clock_now_ms());
    mqtt_msg *q = mqtt_msg_new(ORG, "t/b", 3, (const uint8_t *)"queued", 6, 1, 0, NULL,
                               clock_now_ms());
    mqtt_msg *r = mqtt_msg_new(ORG, "s/x", 3, (const uint8_t *)"kept", 4, 1, 1, NULL,
                               clock_now_ms());
    uint32_t ids[1] = {4};
    mqtt_persist_delivery sent_one = {.org_id = ORG, .client_id = STORED_BACK, .seq = 7, .msg = m,
                                      .qos = 2, .packet_id = 300,
                                      .state = MQTT_DELIVERY_SENT, .sub_ids = ids,
                                      .n_sub_ids = 1};
    mqtt_persist_delivery queued = {.org_id = ORG, .client_id = STORED_BACK, .seq = 9, .msg = q,
                                    .qos = 1, .state = MQTT_DELIVERY_QUEUED};
    int rc = l->session(l->ctx, &ps);
    rc = rc ? rc : l->sub(l->ctx, &sub);
    rc = rc ? rc : l->delivery(l->ctx, &sent_one);
    rc = rc ? rc : l->delivery(l->ctx, &queued);
    rc = rc ? rc : l->inbound_qos2(l->ctx, ORG, STORED_BACK, 11);
    rc = rc ? rc : l->retained(l->ctx, r);
    mqtt_msg_unref(m);
    mqtt_msg_unref(q);
    mqtt_msg_unref(r);
    return rc;
}

/* What the store kept comes back: the session with its subscription, its
 * deliveries (the one in flight again with DUP and its id, MQTT-4.4.0-1),
 * its inbound QoS 2 id, and the retained messages. */
static void loaded_session_resumes(void **state)
{
    fixture *f = *state;
    mqtt_sessions_stop(&f->b);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    mqtt_sessions_free(&f->b);
    g_load = load_one_of_each;
    assert_int_equal(mqtt_sessions_new(&f->b), 0);
    int present = 0;
    mqtt_conn *c = attach(f, 0, "back", 0, 600, &present);
    assert_int_equal(present, 1);
    assert_int_equal(g_n_sent, 2);
    assert_int_equal(g_sent[0].packet_id, 300);
    assert_int_equal(g_sent[0].dup, 1);
    assert_int_equal(g_sent[0].n_ids, 1);
    assert_string_equal(g_sent[1].payload, "queued");
    assert_int_not_equal(g_sent[1].packet_id, 300);
    assert_int_equal(mqtt_session_inbound_add(c->session, 11, NULL, NULL), SS_EXISTS);
    unsigned before = g_n_ops;
    assert_int_equal(publish(f, "t/c", "new", 1, 0, 0, NULL, NULL), 0);
    assert_string_equal(last_sent()->payload, "new");
    /* A delivery recorded after the load continues the session's order. */
    assert_int_equal(g_ops[before].kind, OP_DELIVERY_PUT);
    assert_int_equal(g_ops[before].seq, 10);
    subscribe(c, "s/#", 1, 0, 1);
    assert_string_equal(last_sent()->payload, "kept");
}

/* ---- readings/<device> ------------------------------------------------------------------------ */

static void readings_one_message_per_time(void **state)
{
    fixture *f = *state;
    mqtt_conn *c = attach(f, 0, "reader", 1, 0, NULL);
    subscribe(c, "readings/" DEV_A, 1, 0, 1);
    ss_reading r[4] = {{.ts = 1732480000000, .value = 21.6},
                       {.ts = 1732480000001, .value = 0.1},
                       {.ts = 1732480000000, .value = 40},
                       {.ts = 1732480000000, .value = 21.7}};
    strcpy(r[0].channel, "temp");
    strcpy(r[1].channel, "temp");
    strcpy(r[2].channel, "rh");
    strcpy(r[3].channel, "temp");
    fanout_batch batch = {.device_id = DEV_A, .org_id = ORG, .protocol = "http",
                          .readings = r, .len = 4};
    mqtt_deliver_readings(&f->b.readings, &batch);
    assert_int_equal(g_n_sent, 2);
    assert_string_equal(g_sent[0].topic, "readings/" DEV_A);
    assert_int_equal(g_sent[0].qos, 1);
    assert_string_equal(g_sent[0].payload,
                        "{\"ts\":1732480000000,\"values\":{\"rh\":40,\"temp\":21.7}}");
    assert_string_equal(g_sent[1].payload, "{\"ts\":1732480000001,\"values\":{\"temp\":0.1}}");
    batch.device_id = DEV_B;  /* nobody listens to it */
    mqtt_deliver_readings(&f->b.readings, &batch);
    assert_int_equal(g_n_sent, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(overlapping_subscriptions_give_one_delivery),
        T(no_local_and_retain_as_published),
        T(another_orgs_subscriber_gets_nothing),
        T(done_waits_for_the_store_of_a_persistent_subscriber),
        T(full_persister_routes_nothing),
        T(retained_limit_per_org),
        T(window_follows_receive_maximum),
        T(qos2_flow_out),
        T(reconnect_resends_in_flight_with_dup),
        T(offline_persistent_session_keeps_qos1_not_qos0),
        T(clean_start_drops_what_the_session_had),
        T(full_queue_drops_the_oldest),
        T(client_behind_gets_its_queue_when_it_drains),
        T(qos0_budget_apart),
        T(stalled_reader_is_disconnected_during_a_flood),
        T(slow_reader_keeps_its_connection_through_a_flood),
        T(qos0_total_bounded),
        T(too_large_for_the_client_is_dropped),
        T(second_connection_takes_over),
        T(another_principal_does_not_touch_a_session),
        T(will_on_abrupt_close_not_after_disconnect),
        T(will_delay_and_session_expiry),
        T(retain_handling),
        T(subscription_limit_and_unsubscribe),
        T(inbound_qos2_ids),
        T(inbound_qos2_full_persister_is_not_the_window),
        T(committed_waits_for_what_was_recorded),
        T(dropped_principal_loses_its_sessions),
        T(stored_sessions_per_principal_are_bounded),
        T(loaded_session_resumes),
        T(readings_one_message_per_time),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
