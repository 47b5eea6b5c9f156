/* deliver.c — the broker's outbound side: a published message routed to
 * the sessions whose subscriptions match, each session's queue and
 * in-flight window, the QoS 1 and 2 flows to its client, redelivery on
 * reconnect, and every stored batch of readings as readings/<device>.
 *
 * A message matching several subscriptions of one session is delivered
 * once, at the highest QoS granted among them, with all their
 * subscription identifiers (MQTT-3.3.4-2, -3). QoS 0 is sent at once,
 * or waits in the session's queue while its client is behind in reading,
 * or is dropped (offline); QoS 1 and 2 wait in the queue for the
 * in-flight window. The queue is bounded, QoS 1/2 by
 * SS_MQTT_SESSION_QUEUE_*, QoS 0 by SS_MQTT_QOS0_QUEUE_BYTES_MAX: past a
 * bound the oldest queued of that kind is dropped, and a connected client
 * that stopped reading is disconnected. For a stored session each
 * delivery and each change of its state is recorded in the persister,
 * and the publisher's acknowledgement waits for those records. */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/json_out.h"
#include "core/log.h"
#include "core/metrics.h"
#include "mqtt/session.h"

/* Hits of one route held on the stack before the heap is needed. */
#define ROUTE_HITS_INLINE 8u

/* ---- deliveries ------------------------------------------------------------------- */

static mqtt_delivery *delivery_new(mqtt_msg *m, uint8_t qos, uint8_t retain, const uint32_t *ids,
                                   unsigned n)
{
    mqtt_delivery *d = calloc(1, sizeof *d + n * sizeof d->sub_ids[0]);
    if (!d)
        return NULL;
    ss_list_init(&d->link);
    d->msg = mqtt_msg_ref(m);
    d->qos = qos;
    d->retain = retain;
    d->state = MQTT_DELIVERY_QUEUED;
    d->n_sub_ids = (uint8_t)n;
    if (n)
        memcpy(d->sub_ids, ids, n * sizeof ids[0]);
    return d;
}

static int record_delivery(mqtt_session *s, const mqtt_delivery *d, mqtt_persist_done_cb done,
                          void *ctx)
{
    mqtt_persist *p = s->broker->persist;
    if (!p || !s->stored || d->qos == 0)
        return SS_OK;
    mqtt_persist_delivery pd = {.org_id = s->org_id,
                                .client_id = s->client_id,
                                .seq = d->seq,
                                .msg = d->msg,
                                .qos = d->qos,
                                .retain = d->retain,
                                .packet_id = d->packet_id,
                                .state = (mqtt_delivery_state)d->state,
                                .sub_ids = d->sub_ids,
                                .n_sub_ids = d->n_sub_ids};
    return mqtt_persist_delivery_put(p, &pd, done, ctx);
}

static void record_delivery_quietly(mqtt_session *s, const mqtt_delivery *d)
{
    int rc = record_delivery(s, d, NULL, NULL);
    if (rc)
        log_warn("mqtt", "a delivery's state was not recorded: %s", ss_strerror(rc));
}

/* What a waiting QoS 0 delivery holds: its message and itself. */
static size_t qos0_cost(const mqtt_delivery *d)
{
    return mqtt_msg_size(d->msg) + sizeof *d + d->n_sub_ids * sizeof d->sub_ids[0];
}

/* The delivery leaves the session: acknowledged, dropped or expired. */
static void delivery_end(mqtt_session *s, mqtt_delivery *d)
{
    if (d->state == MQTT_DELIVERY_QUEUED)
        s->n_queued--;
    else
        s->n_in_flight--;
    if (d->qos == 0) {
        s->n_qos0--;
        s->bytes_qos0 -= qos0_cost(d);
    } else {
        s->bytes -= mqtt_msg_size(d->msg);
    }
    ss_list_remove(&d->link);
    mqtt_persist *p = s->broker->persist;
    if (p && s->stored && d->qos > 0) {
        int rc = mqtt_persist_delivery_del(p, s->org_id, s->client_id, d->seq, NULL, NULL);
        if (rc)
            log_warn("mqtt", "a completed delivery was not recorded: %s", ss_strerror(rc));
    }
    mqtt_msg_unref(d->msg);
    free(d);
}

/* A message the client will never get: counted, and logged when a
 * session's count reaches a power of two (a flood is a few lines). */
static void dropped(mqtt_session *s, const char *why)
{
    mqtt_broker *b = s->broker;
    s->dropped++;
    mqtt_sessions_of(b)->dropped++;
    metrics_mqtt_dropped(b->opt.metrics, 1);
    if ((s->dropped & (s->dropped - 1)) == 0)
        log_warn("mqtt", "a session of %s in org %s dropped a message (%s): %llu so far",
                 s->principal_id, s->org_id, why, (unsigned long long)s->dropped);
}

static void delivery_drop(mqtt_session *s, mqtt_delivery *d, const char *why)
{
    delivery_end(s, d);
    dropped(s, why);
}

static void session_add(mqtt_session *s, mqtt_delivery *d)
{
    ss_list *list = d->state == MQTT_DELIVERY_QUEUED ? &s->queue : &s->in_flight;
    ss_list_insert_tail(list, &d->link);
    if (d->state == MQTT_DELIVERY_QUEUED)
        s->n_queued++;
    else
        s->n_in_flight++;
    if (d->qos == 0) {
        s->n_qos0++;
        s->bytes_qos0 += qos0_cost(d);
    } else {
        s->bytes += mqtt_msg_size(d->msg);
    }
}

/* ---- packets out -------------------------------------------------------------------- */

static int send_publish(mqtt_conn *c, const mqtt_msg *m, uint8_t qos, uint8_t retain, int dup,
                        uint16_t packet_id, const uint32_t *ids, unsigned n, int64_t now)
{
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_PUBLISH;
    p.flags = (uint8_t)((dup ? MQTT_PUBLISH_DUP : 0) | (qos << MQTT_PUBLISH_QOS_SHIFT) |
                        (retain ? MQTT_PUBLISH_RETAIN : 0));
    mqtt_publish *pub = &p.publish;
    pub->qos = qos;
    pub->retain = retain;
    pub->dup = (uint8_t)dup;
    pub->topic.p = m->topic;
    pub->topic.len = m->topic_len;
    pub->packet_id = packet_id;
    pub->props = m->props;
    pub->props.has &= ~((uint64_t)1 << MQTT_PROP_TOPIC_ALIAS);
    pub->props.has &= ~((uint64_t)1 << MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
    pub->props.n_sub_ids = n;
    if (n) {
        memcpy(pub->props.sub_ids, ids, n * sizeof ids[0]);
        MQTT_SET(&pub->props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
    }
    /* What is left of the expiry interval (MQTT-3.3.2-6). */
    if (MQTT_HAS(&m->props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL))
        pub->props.message_expiry = mqtt_msg_expiry_left(m, now);
    pub->payload = m->payload;
    pub->payload_len = m->payload_len;
    return mqtt_conn_send(c, &p);
}

static int send_pubrel(mqtt_conn *c, uint16_t packet_id)
{
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_PUBREL;
    p.flags = 0x02;  /* MQTT-3.6.1-1 */
    p.ack.packet_id = packet_id;
    p.ack.reason = MQTT_RC_SUCCESS;
    return mqtt_conn_send(c, &p);
}

/* A client that leaves this much output unread gets no more PUBLISHes
 * until it reads: QoS 0 is dropped for it, QoS 1/2 waits in its queue. */
static int conn_stalled(const mqtt_conn *c)
{
    return mqtt_conn_unsent(c) > SS_MQTT_DELIVER_UNSENT_MAX;
}

static int conn_ready(const mqtt_conn *c)
{
    return c && c->state == MQTT_CONN_ACTIVE;
}

static mqtt_delivery *in_flight_find(const mqtt_session *s, uint16_t packet_id)
{
    /* Acks come in order: the one acknowledged is nearly always first. */
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &s->in_flight) {
        mqtt_delivery *d = ss_list_entry(it, mqtt_delivery, link);
        if (d->packet_id == packet_id)
            return d;
    }
    return NULL;
}

static uint16_t next_packet_id(mqtt_session *s)
{
    for (;;) {
        uint16_t id = s->next_packet_id++;
        if (id == 0)
            continue;
        if (!in_flight_find(s, id))
            return id;
    }
}

/* The in-flight deliveries go again on a new connection: PUBLISH with DUP
 * (MQTT-4.4.0-1), or PUBREL for a QoS 2 one already received. */
static void resend_in_flight(mqtt_conn *c, mqtt_session *s, int64_t now)
{
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &s->in_flight) {
        mqtt_delivery *d = ss_list_entry(it, mqtt_delivery, link);
        int rc;
        if (d->state == MQTT_DELIVERY_RELEASED)
            rc = send_pubrel(c, d->packet_id);
        else
            rc = send_publish(c, d->msg, d->qos, d->retain, 1, d->packet_id, d->sub_ids,
                              d->n_sub_ids, now);
        if (rc == SS_TOO_LARGE) {
            delivery_drop(s, d, "too large for the client");
            continue;
        }
        if (rc || c->session != s)
            return;
    }
}

/* Sends the head of the queue: 0 sent, 1 skipped (expired, too large),
 * else the connection's error. A QoS 0 one is done once written. */
static int send_next(mqtt_conn *c, mqtt_session *s, mqtt_delivery *d, int64_t now)
{
    if (mqtt_msg_expired(d->msg, now)) {
        delivery_drop(s, d, "expired");
        return 1;
    }
    if (d->qos == 0) {
        int rc = send_publish(c, d->msg, 0, d->retain, 0, 0, d->sub_ids, d->n_sub_ids, now);
        if (rc == SS_TOO_LARGE)
            delivery_drop(s, d, "too large for the client");
        else
            delivery_end(s, d);
        return rc == SS_TOO_LARGE ? 1 : rc;
    }
    ss_list_remove(&d->link);
    s->n_queued--;
    d->state = MQTT_DELIVERY_SENT;
    d->packet_id = next_packet_id(s);
    ss_list_insert_tail(&s->in_flight, &d->link);
    s->n_in_flight++;
    int rc = send_publish(c, d->msg, d->qos, d->retain, 0, d->packet_id, d->sub_ids,
                          d->n_sub_ids, now);
    if (rc == SS_TOO_LARGE) {
        /* MQTT-3.1.2-25: dropped as if sent and acknowledged. */
        delivery_drop(s, d, "too large for the client");
        return 1;
    }
    record_delivery_quietly(s, d);
    return rc;
}

void mqtt_deliver_resume(mqtt_conn *c)
{
    mqtt_session *s = c->session;
    if (!s || !conn_ready(c))
        return;
    int64_t now = clock_now_ms();
    if (s->resend) {
        s->resend = 0;
        resend_in_flight(c, s, now);
        if (c->session != s)
            return;
    }
    unsigned window = c->receive_max_out ? c->receive_max_out : UINT16_MAX;
    if (window > SS_MQTT_INFLIGHT_OUT_MAX)
        window = SS_MQTT_INFLIGHT_OUT_MAX;
    ss_list *first;
    while ((first = ss_list_first(&s->queue)) && !conn_stalled(c)) {
        mqtt_delivery *d = ss_list_entry(first, mqtt_delivery, link);
        if (d->qos > 0 && s->n_in_flight >= window)
            return;  /* in order: a QoS 0 behind it waits too */
        int rc = send_next(c, s, d, now);
        if (rc < 0 || c->session != s)
            return;
    }
}

/* ---- queueing ------------------------------------------------------------------------ */

/* QoS 1/2: SS_MQTT_SESSION_QUEUE_MAX messages and _BYTES_MAX, in flight
 * included; QoS 0 waiting for a connected client: SS_MQTT_QOS0_QUEUE_BYTES_MAX. */
static int over_bounds(const mqtt_session *s, int qos0)
{
    if (qos0)
        return s->bytes_qos0 > SS_MQTT_QOS0_QUEUE_BYTES_MAX;
    return s->n_queued + s->n_in_flight - s->n_qos0 > SS_MQTT_SESSION_QUEUE_MAX ||
           s->bytes > SS_MQTT_SESSION_QUEUE_BYTES_MAX;
}

/* The oldest queued delivery of QoS 0 (qos0) or of QoS 1/2; NULL when
 * there is none (those of QoS 1/2 may all be in flight). */
static mqtt_delivery *first_to_drop(mqtt_session *s, int qos0)
{
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &s->queue) {
        mqtt_delivery *d = ss_list_entry(it, mqtt_delivery, link);
        if ((d->qos == 0) == (qos0 != 0))
            return d;
    }
    return NULL;
}

/* A connected client whose queue overflowed by `lost` bytes: one that
 * reads, however slowly, only loses what was dropped; one whose socket
 * took no byte while SS_MQTT_STALL_DROPPED_BYTES meant for it were
 * dropped, or for SS_MQTT_STALL_MS, is a stalled reader and is
 * disconnected (0x97; a persistent session stays). */
static void overflowed(mqtt_session *s, size_t lost)
{
    mqtt_conn *c = s->conn;
    if (!c || c->state != MQTT_CONN_ACTIVE)
        return;
    int64_t now = clock_now_ms();
    uint64_t out = c->base.stream.bytes_out;
    if (s->stall_mark_ms == 0 || out != s->stall_mark_bytes) {
        s->stall_mark_ms = now;
        s->stall_mark_bytes = out;
        s->stall_dropped = 0;
    }
    s->stall_dropped += lost;
    if (s->stall_dropped >= SS_MQTT_STALL_DROPPED_BYTES || now - s->stall_mark_ms >= SS_MQTT_STALL_MS)
        mqtt_conn_disconnect(c, MQTT_RC_QUOTA_EXCEEDED);
}

/* Past a bound of the session the oldest queued of that kind go. */
static void enforce_bounds(mqtt_session *s)
{
    size_t lost = 0;
    mqtt_delivery *d;
    for (int qos0 = 1; qos0 >= 0; qos0--) {
        while (over_bounds(s, qos0) && (d = first_to_drop(s, qos0))) {
            lost += mqtt_msg_size(d->msg);
            delivery_drop(s, d, "queue full");
        }
    }
    if (lost)
        overflowed(s, lost);
}

static void enqueue(mqtt_session *s, mqtt_msg *m, uint8_t qos, uint8_t retain,
                    const uint32_t *ids, unsigned n, uint64_t seq, int recorded);

/* QoS 0 goes out at once to a connected client that reads; to one whose
 * output waits unread it is queued behind what waits (bounded as the
 * rest); an offline session does not keep it. */
static void send_qos0(mqtt_session *s, mqtt_msg *m, uint8_t retain, const uint32_t *ids,
                      unsigned n)
{
    mqtt_conn *c = s->conn;
    if (!conn_ready(c))
        return;
    if (conn_stalled(c) || s->n_qos0) {
        enqueue(s, m, 0, retain, ids, n, 0, 1);
        return;
    }
    int rc = send_publish(c, m, 0, retain, 0, 0, ids, n, clock_now_ms());
    if (rc == SS_TOO_LARGE)
        dropped(s, "too large for the client");
}

/* Queues a delivery (a QoS 1/2 one already recorded when `recorded`) and
 * sends what the window and the socket allow. */
static void enqueue(mqtt_session *s, mqtt_msg *m, uint8_t qos, uint8_t retain,
                    const uint32_t *ids, unsigned n, uint64_t seq, int recorded)
{
    mqtt_delivery *d = delivery_new(m, qos, retain, ids, n);
    if (!d) {
        dropped(s, "out of memory");
        return;
    }
    d->seq = seq ? seq : s->next_seq++;
    if (!recorded)
        record_delivery_quietly(s, d);
    session_add(s, d);
    enforce_bounds(s);
    if (s->conn)
        mqtt_deliver_resume(s->conn);
}

void mqtt_deliver_one(mqtt_session *s, mqtt_msg *m, uint8_t qos, uint8_t retain,
                      uint32_t sub_id)
{
    unsigned n = sub_id ? 1 : 0;
    if (qos == 0)
        send_qos0(s, m, retain, &sub_id, n);
    else
        enqueue(s, m, qos, retain, &sub_id, n, 0, 0);
}

/* ---- routing --------------------------------------------------------------------------- */

/* One session's share of a message: the merge of its matching
 * subscriptions. */
typedef struct route_hit {
    mqtt_session *s;
    uint64_t seq;            /* the delivery's, once recorded */
    uint8_t qos;
    uint8_t retain;
    uint8_t recorded;
    uint8_t n_ids;
    uint32_t ids[MQTT_SUB_IDS_MAX];
} route_hit;

typedef struct route_ctx {
    const mqtt_msg *m;
    uint64_t origin;
    uint64_t gen;
    route_hit *hits;
    unsigned n;
    unsigned cap;
    int nomem;
    route_hit inline_hits[ROUTE_HITS_INLINE];
} route_ctx;

/* The publisher's acknowledgement waits for every record of one route. */
typedef struct route_job {
    unsigned pending;
    int status;
    mqtt_persist_done_cb done;
    void *ctx;
} route_job;

static void job_done(void *ctx, int status)
{
    route_job *j = ctx;
    if (status && !j->status)
        j->status = status;
    if (--j->pending > 0)
        return;
    if (j->done)
        j->done(j->ctx, j->status);
    free(j);
}

/* A record's hold on the job, taken before the call that may complete it. */
static void job_hold(route_job *j)
{
    if (j)
        j->pending++;
}

static void job_unhold(route_job *j)
{
    if (j)
        j->pending--;
}

static route_hit *hit_for(route_ctx *r, mqtt_session *s)
{
    if (s->route_gen == r->gen)
        return &r->hits[s->route_idx];
    if (r->n == r->cap) {
        unsigned cap = r->cap * 2;
        route_hit *h = malloc(cap * sizeof *h);
        if (!h) {
            r->nomem = 1;
            return NULL;
        }
        memcpy(h, r->hits, r->n * sizeof *h);
        if (r->hits != r->inline_hits)
            free(r->hits);
        r->hits = h;
        r->cap = cap;
    }
    route_hit *h = &r->hits[r->n];
    memset(h, 0, offsetof(route_hit, ids));
    h->s = s;
    s->route_gen = r->gen;
    s->route_idx = r->n++;
    return h;
}

static void on_match(void *ctx, const mqtt_sub_entry *e)
{
    route_ctx *r = ctx;
    mqtt_session *s = e->owner;
    if ((e->options & MQTT_SUBOPT_NO_LOCAL) && r->origin && s->serial == r->origin)
        return;  /* MQTT-3.8.3-3 */
    route_hit *h = hit_for(r, s);
    if (!h)
        return;
    uint8_t granted = e->options & MQTT_SUBOPT_QOS_MASK;
    uint8_t qos = granted < r->m->qos ? granted : r->m->qos;
    if (qos > h->qos)
        h->qos = qos;
    if (e->options & MQTT_SUBOPT_RETAIN_AS_PUBLISHED)
        h->retain |= r->m->retain;
    for (unsigned i = 0; e->sub_id && i <= h->n_ids && h->n_ids < MQTT_SUB_IDS_MAX; i++) {
        if (i == h->n_ids) {
            h->ids[h->n_ids++] = e->sub_id;
            break;
        }
        if (h->ids[i] == e->sub_id)
            break;
    }
}

/* A shared group's message goes to a member that is online when there is
 * one. */
static int pick_online(void *owner)
{
    const mqtt_session *s = owner;
    return s->conn != NULL;
}

static int retained_quota(mqtt_broker *b, const mqtt_msg *m)
{
    if (!m->retain || m->payload_len == 0 || !b->retain)
        return SS_OK;
    if (mqtt_retain_get(b->retain, m->org_id, m->topic, m->topic_len))
        return SS_OK;
    return mqtt_retain_count(b->retain, m->org_id) >= SS_MQTT_RETAINED_PER_ORG_MAX ? SS_QUOTA
                                                                                   : SS_OK;
}

/* Records what the route changes in the store, before anything changes
 * in memory: the retained message, then one delivery per stored session.
 * Refused at the first record while a publisher can wait (can_wait):
 * nothing routed (SS_BUSY); any other refusal leaves that delivery in
 * memory only (a will, readings: nobody could send them again). */
static int route_record(mqtt_broker *b, mqtt_msg *m, route_ctx *r, route_job *j, int can_wait)
{
    mqtt_persist *p = b->persist;
    if (!p)
        return SS_OK;
    int first = can_wait;
    if (m->retain && b->retain) {
        job_hold(j);
        int rc = mqtt_persist_retain_put(p, m, j ? job_done : NULL, j);
        if (rc)
            job_unhold(j);
        if (rc && first)
            return rc;
        if (rc)
            log_warn("mqtt", "a retained message was kept in memory only: %s", ss_strerror(rc));
        first = 0;
    }
    for (unsigned i = 0; i < r->n; i++) {
        route_hit *h = &r->hits[i];
        if (h->qos == 0 || !h->s->stored)
            continue;
        mqtt_persist_delivery pd = {.org_id = h->s->org_id,
                                    .client_id = h->s->client_id,
                                    .seq = h->s->next_seq,
                                    .msg = m,
                                    .qos = h->qos,
                                    .retain = h->retain,
                                    .state = MQTT_DELIVERY_QUEUED,
                                    .sub_ids = h->ids,
                                    .n_sub_ids = h->n_ids};
        job_hold(j);
        int rc = mqtt_persist_delivery_put(p, &pd, j ? job_done : NULL, j);
        if (rc)
            job_unhold(j);
        if (rc && first)
            return rc;
        if (rc) {
            log_warn("mqtt", "a delivery was kept in memory only: %s", ss_strerror(rc));
            continue;
        }
        first = 0;
        h->seq = h->s->next_seq++;
        h->recorded = 1;
    }
    return SS_OK;
}

static void route_apply(mqtt_broker *b, mqtt_msg *m, route_ctx *r)
{
    if (m->retain && b->retain && mqtt_retain_set(b->retain, m))
        log_error("mqtt", "out of memory: a retained message was not kept");
    for (unsigned i = 0; i < r->n; i++) {
        route_hit *h = &r->hits[i];
        if (h->qos == 0)
            send_qos0(h->s, m, h->retain, h->ids, h->n_ids);
        else
            enqueue(h->s, m, h->qos, h->retain, h->ids, h->n_ids, h->seq, h->recorded);
    }
}

int mqtt_route(mqtt_broker *b, mqtt_msg *m, uint64_t origin_serial, mqtt_persist_done_cb done,
               void *ctx, int *matched)
{
    *matched = 0;
    int rc = retained_quota(b, m);
    if (rc)
        return rc;
    route_ctx r = {.m = m, .origin = origin_serial, .cap = ROUTE_HITS_INLINE};
    r.hits = r.inline_hits;
    mqtt_sessions *t = mqtt_sessions_of(b);
    r.gen = ++t->route_gen;
    mqtt_subs_match(b->subs, m->org_id, m->topic, m->topic_len, pick_online, on_match, &r);
    route_job *j = NULL;
    if (!r.nomem && done && !(j = calloc(1, sizeof *j)))
        r.nomem = 1;
    if (r.nomem) {
        rc = SS_NOMEM;
        goto out;
    }
    if (j) {
        j->pending = 1;  /* this call's own, released at the end */
        j->done = done;
        j->ctx = ctx;
    }
    rc = route_record(b, m, &r, j, done != NULL);
    if (rc) {
        free(j);
        j = NULL;
        goto out;
    }
    route_apply(b, m, &r);
    /* A retained message is kept for subscribers to come: not 0x10. */
    *matched = (int)r.n + (m->retain && m->payload_len > 0 && b->retain && r.n == 0);
out:
    if (r.hits != r.inline_hits)
        free(r.hits);
    if (j)
        job_done(j, SS_OK);
    return rc;
}

/* ---- acknowledgements ------------------------------------------------------------------ */

static void delivery_done(mqtt_session *s, mqtt_delivery *d)
{
    delivery_end(s, d);
}

int mqtt_deliver_ack(mqtt_conn *c, uint8_t type, uint16_t packet_id, uint8_t reason)
{
    mqtt_session *s = c->session;
    mqtt_delivery *d = s ? in_flight_find(s, packet_id) : NULL;
    if (!d)
        return SS_NOT_FOUND;
    if (type == MQTT_PUBACK && d->qos == 1 && d->state == MQTT_DELIVERY_SENT) {
        delivery_done(s, d);
    } else if (type == MQTT_PUBREC && d->qos == 2 && d->state == MQTT_DELIVERY_SENT) {
        if (reason >= MQTT_RC_UNSPECIFIED) {
            delivery_done(s, d);  /* the client refused it: the flow ends here */
        } else {
            d->state = MQTT_DELIVERY_RELEASED;
            record_delivery_quietly(s, d);
            send_pubrel(c, packet_id);
        }
    } else if (type == MQTT_PUBREC && d->state == MQTT_DELIVERY_RELEASED) {
        send_pubrel(c, packet_id);  /* our PUBREL crossed its resent PUBREC */
    } else if (type == MQTT_PUBCOMP && d->state == MQTT_DELIVERY_RELEASED) {
        delivery_done(s, d);
    } else {
        return SS_NOT_FOUND;
    }
    if (c->session == s)
        mqtt_deliver_resume(c);
    return SS_OK;
}

/* ---- session.c's needs ------------------------------------------------------------------ */

int mqtt_deliver_restore(mqtt_session *s, const mqtt_persist_delivery *pd)
{
    unsigned n = pd->n_sub_ids < MQTT_SUB_IDS_MAX ? pd->n_sub_ids : MQTT_SUB_IDS_MAX;
    if (pd->qos == 0 || pd->qos > 2)
        return SS_OK;
    mqtt_delivery *d = delivery_new(pd->msg, pd->qos, pd->retain, pd->sub_ids, n);
    if (!d)
        return SS_NOMEM;
    d->seq = pd->seq;
    d->packet_id = pd->packet_id;
    d->state = pd->state;
    if (d->state != MQTT_DELIVERY_QUEUED && d->packet_id == 0)
        d->state = MQTT_DELIVERY_QUEUED;
    session_add(s, d);
    if (pd->seq >= s->next_seq)
        s->next_seq = pd->seq + 1;
    if (d->state != MQTT_DELIVERY_QUEUED)
        s->resend = 1;
    return SS_OK;
}

static void clear_list(ss_list *list)
{
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, list) {
        mqtt_delivery *d = ss_list_entry(it, mqtt_delivery, link);
        ss_list_remove(it);
        mqtt_msg_unref(d->msg);
        free(d);
    }
}

void mqtt_deliver_clear(mqtt_session *s)
{
    clear_list(&s->in_flight);
    clear_list(&s->queue);
    s->n_in_flight = s->n_queued = s->n_qos0 = 0;
    s->bytes = s->bytes_qos0 = 0;
}

void mqtt_deliver_offline(mqtt_session *s)
{
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &s->queue) {
        mqtt_delivery *d = ss_list_entry(it, mqtt_delivery, link);
        if (d->qos == 0)
            delivery_end(s, d);
    }
}

void mqtt_deliver_store_all(mqtt_session *s)
{
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &s->in_flight)
        record_delivery_quietly(s, ss_list_entry(it, mqtt_delivery, link));
    ss_list_foreach_safe(it, tmp, &s->queue)
        record_delivery_quietly(s, ss_list_entry(it, mqtt_delivery, link));
}

/* ---- readings/<device> ---------------------------------------------------------------- */

typedef struct reading_ref {
    const ss_reading *r;
    size_t pos;
} reading_ref;

/* By time, then channel, then arrival: one message per time, and of one
 * channel's readings at one time the last that came is the one told. */
static int reading_cmp(const void *a, const void *b)
{
    const reading_ref *x = a, *y = b;
    if (x->r->ts != y->r->ts)
        return x->r->ts < y->r->ts ? -1 : 1;
    int c = strcmp(x->r->channel, y->r->channel);
    if (c)
        return c;
    return x->pos < y->pos ? -1 : (x->pos > y->pos);
}

/* {"ts":…,"values":{…}} of refs[0..n), all of one ts; channel names need
 * no escaping ([A-Za-z0-9_.-]). */
static int readings_json(ss_buf *out, const reading_ref *refs, size_t n)
{
    buf_reset(out);
    int rc = buf_printf(out, "{\"ts\":%lld,\"values\":{", (long long)refs[0].r->ts);
    const char *sep = "";
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i + 1 < n && strcmp(refs[i].r->channel, refs[i + 1].r->channel) == 0)
            continue;  /* a later reading of the channel follows */
        char num[JSON_OUT_DOUBLE_MAX];
        json_out_double(refs[i].r->value, num);
        rc = buf_printf(out, "%s\"%s\":%s", sep, refs[i].r->channel, num);
        sep = ",";
    }
    return rc ? rc : buf_append_str(out, "}}");
}

static void publish_reading_group(mqtt_broker *b, const fanout_batch *batch, const char *topic,
                                  size_t topic_len, ss_buf *json, const reading_ref *refs,
                                  size_t n)
{
    if (readings_json(json, refs, n)) {
        log_error("mqtt", "out of memory: readings not published");
        return;
    }
    mqtt_msg *m = mqtt_msg_new(batch->org_id, topic, topic_len, (const uint8_t *)json->data,
                               json->len, 1, 0, NULL, clock_now_ms());
    if (!m) {
        log_error("mqtt", "out of memory: readings not published");
        return;
    }
    int matched = 0;
    int rc = mqtt_route(b, m, 0, NULL, NULL, &matched);
    if (rc)
        log_warn("mqtt", "readings of a device not published: %s", ss_strerror(rc));
    mqtt_msg_unref(m);
}

static void count_match(void *ctx, const mqtt_sub_entry *e)
{
    (void)e;
    (*(unsigned *)ctx)++;
}

void mqtt_deliver_readings(fanout_sub *sub, const fanout_batch *batch)
{
    mqtt_broker *b = (mqtt_broker *)((char *)sub - offsetof(mqtt_broker, readings));
    if (!b->subs || mqtt_subs_count(b->subs) == 0 || b->stopping)
        return;
    char topic[sizeof "readings/" + SS_ID_LEN];
    int tl = snprintf(topic, sizeof topic, "readings/%s", batch->device_id);
    if (tl < 0 || (size_t)tl >= sizeof topic)
        return;
    /* Nobody listens (the usual case): no message is made. */
    unsigned listeners = 0;
    mqtt_subs_match(b->subs, batch->org_id, topic, (size_t)tl, NULL, count_match, &listeners);
    if (listeners == 0)
        return;
    reading_ref one, *refs = &one;
    if (batch->len > 1 && !(refs = malloc(batch->len * sizeof *refs))) {
        log_error("mqtt", "out of memory: readings not published");
        return;
    }
    for (size_t i = 0; i < batch->len; i++)
        refs[i] = (reading_ref){.r = &batch->readings[i], .pos = i};
    if (batch->len > 1)
        qsort(refs, batch->len, sizeof *refs, reading_cmp);
    ss_buf json = SS_BUF_INIT;
    for (size_t i = 0, j; i < batch->len; i = j) {
        for (j = i + 1; j < batch->len && refs[j].r->ts == refs[i].r->ts; j++)
            ;
        publish_reading_group(b, batch, topic, (size_t)tl, &json, refs + i, j - i);
    }
    buf_free(&json);
    if (refs != &one)
        free(refs);
}
