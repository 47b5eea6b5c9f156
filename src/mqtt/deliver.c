/* deliver.c — a session's side of the outbound flow: its queue and
 * in-flight window, the QoS 1 and 2 flows to its client, redelivery on
 * reconnect, the queue's bounds and stalled readers. route.c decides who
 * gets a message; readings.c makes the readings/<device> messages.
 *
 * QoS 0 is sent at once, or waits in the session's queue while its
 * client is behind in reading, or is dropped (offline); QoS 1 and 2 wait
 * in the queue for the in-flight window. The queue is bounded, QoS 1/2 by
 * SS_MQTT_SESSION_QUEUE_*, QoS 0 by SS_MQTT_QOS0_QUEUE_BYTES_MAX: past a
 * bound the oldest queued of that kind is dropped, and a connected client
 * that stopped reading is disconnected. For a stored session each
 * delivery of QoS 1 or 2 and each change of its state is recorded in the
 * persister. */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "mqtt/session.h"

/* ---- deliveries ------------------------------------------------------------------- */

/* The session's deliveries' state, made with the first; NULL: no memory. */
static mqtt_session_out *out_of(mqtt_session *s)
{
    if (s->out)
        return s->out;
    mqtt_session_out *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    ss_list_init(&o->queue);
    ss_list_init(&o->in_flight);
    o->next_packet_id = 1;
    s->out = o;
    return o;
}

static void delivery_free(mqtt_delivery *d)
{
    mqtt_msg_unref(d->msg);
    free(d);
}

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
static size_t qos0_cost_of(const mqtt_msg *m, unsigned n_sub_ids)
{
    return mqtt_msg_size(m) + sizeof(mqtt_delivery) + n_sub_ids * sizeof(uint32_t);
}

static size_t qos0_cost(const mqtt_delivery *d)
{
    return qos0_cost_of(d->msg, d->n_sub_ids);
}

/* The delivery leaves the session: acknowledged, dropped or expired. */
static void delivery_end(mqtt_session *s, mqtt_delivery *d)
{
    if (d->state == MQTT_DELIVERY_QUEUED)
        s->out->n_queued--;
    else
        s->out->n_in_flight--;
    if (d->qos == 0) {
        s->out->n_qos0--;
        s->out->bytes_qos0 -= qos0_cost(d);
        mqtt_sessions_of(s->broker)->qos0_bytes -= qos0_cost(d);
    } else {
        s->out->bytes -= mqtt_msg_size(d->msg);
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
    if ((s->dropped & (s->dropped - 1)) != 0)
        return;
    char principal[SS_ID_LEN + 1];
    mqtt_session_principal(s, principal);
    log_warn("mqtt", "a session of %s in org %s dropped a message (%s): %llu so far", principal,
             s->org_id, why, (unsigned long long)s->dropped);
}

static void delivery_drop(mqtt_session *s, mqtt_delivery *d, const char *why)
{
    delivery_end(s, d);
    dropped(s, why);
}

static void session_add(mqtt_session *s, mqtt_delivery *d)
{
    ss_list *list = d->state == MQTT_DELIVERY_QUEUED ? &s->out->queue : &s->out->in_flight;
    ss_list_insert_tail(list, &d->link);
    if (d->state == MQTT_DELIVERY_QUEUED)
        s->out->n_queued++;
    else
        s->out->n_in_flight++;
    if (d->qos == 0) {
        s->out->n_qos0++;
        s->out->bytes_qos0 += qos0_cost(d);
        mqtt_sessions_of(s->broker)->qos0_bytes += qos0_cost(d);
    } else {
        s->out->bytes += mqtt_msg_size(d->msg);
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
    if (!s->out)
        return NULL;
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &s->out->in_flight) {
        mqtt_delivery *d = ss_list_entry(it, mqtt_delivery, link);
        if (d->packet_id == packet_id)
            return d;
    }
    return NULL;
}

static uint16_t next_packet_id(mqtt_session *s)
{
    for (;;) {
        uint16_t id = s->out->next_packet_id++;
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
    if (!s->out)
        return;
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &s->out->in_flight) {
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
    s->out->n_queued--;
    d->state = MQTT_DELIVERY_SENT;
    d->packet_id = next_packet_id(s);
    ss_list_insert_tail(&s->out->in_flight, &d->link);
    s->out->n_in_flight++;
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
    if (!s->out)
        return;
    unsigned window = c->receive_max_out ? c->receive_max_out : UINT16_MAX;
    if (window > SS_MQTT_INFLIGHT_OUT_MAX)
        window = SS_MQTT_INFLIGHT_OUT_MAX;
    ss_list *first;
    while ((first = ss_list_first(&s->out->queue)) && !conn_stalled(c)) {
        mqtt_delivery *d = ss_list_entry(first, mqtt_delivery, link);
        if (d->qos > 0 && s->out->n_in_flight >= window)
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
        return s->out->bytes_qos0 > SS_MQTT_QOS0_QUEUE_BYTES_MAX;
    return s->out->n_queued + s->out->n_in_flight - s->out->n_qos0 > SS_MQTT_SESSION_QUEUE_MAX ||
           s->out->bytes > SS_MQTT_SESSION_QUEUE_BYTES_MAX;
}

/* The oldest queued delivery of QoS 0 (qos0) or of QoS 1/2; NULL when
 * there is none (those of QoS 1/2 may all be in flight). */
static mqtt_delivery *first_to_drop(mqtt_session *s, int qos0)
{
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &s->out->queue) {
        mqtt_delivery *d = ss_list_entry(it, mqtt_delivery, link);
        if ((d->qos == 0) == (qos0 != 0))
            return d;
    }
    return NULL;
}

/* A connected client whose queue overflowed: one that reads, however
 * slowly, only loses what was dropped; one whose socket took less than
 * SS_MQTT_STALL_TAKEN_MIN while SS_MQTT_STALL_DROPPED_BYTES meant for it were dropped (and
 * SS_MQTT_STALL_MIN_MS passed), or for SS_MQTT_STALL_MS, is a stalled
 * reader and is disconnected (0x97; a persistent session stays). What
 * the socket took is what the peer's TCP acknowledged, not our completed
 * writes: one large write to a slow reader completes long after its first
 * bytes were read. Asked of the kernel only when a bound is due (then or
 * on the connection's timer, as a flood may end first), not per drop. */
static void stall_judge(mqtt_session *s, mqtt_conn *c, int64_t now)
{
    int64_t stood = now - s->out->stall_mark_ms;
    int64_t due = s->out->stall_dropped >= SS_MQTT_STALL_DROPPED_BYTES ? SS_MQTT_STALL_MIN_MS
                                                                  : SS_MQTT_STALL_MS;
    if (stood < due) {
        mqtt_conn_stall_check(c, (uint64_t)(due - stood));
        return;
    }
    uint64_t taken = net_stream_bytes_taken(&c->base.stream);
    if (taken >= s->out->stall_mark_bytes + SS_MQTT_STALL_TAKEN_MIN) {
        s->out->stall_mark_ms = 0;  /* it read since the mark: slow, not stalled */
        return;
    }
    mqtt_conn_disconnect(c, MQTT_RC_QUOTA_EXCEEDED);
}

static void overflowed(mqtt_session *s, size_t lost)
{
    mqtt_conn *c = s->conn;
    if (!c || c->state != MQTT_CONN_ACTIVE || !out_of(s))
        return;
    int64_t now = clock_now_ms();
    if (s->out->stall_mark_ms == 0) {
        s->out->stall_mark_ms = now;
        s->out->stall_mark_bytes = net_stream_bytes_taken(&c->base.stream);
        s->out->stall_dropped = 0;
    }
    s->out->stall_dropped += lost;
    stall_judge(s, c, now);
}

void mqtt_deliver_stall_check(mqtt_conn *c)
{
    mqtt_session *s = c->session;
    if (s && s->out && s->out->stall_mark_ms && conn_ready(c))
        stall_judge(s, c, clock_now_ms());
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

void mqtt_deliver_qos0(mqtt_session *s, mqtt_msg *m, uint8_t retain, const uint32_t *ids,
                       unsigned n)
{
    mqtt_conn *c = s->conn;
    if (!conn_ready(c))
        return;
    if (conn_stalled(c) || (s->out && s->out->n_qos0)) {
        /* All sessions' waiting QoS 0 together stay within one bound: many
         * slow readers of one flood cannot add up past it. */
        size_t cost = qos0_cost_of(m, n);
        if (mqtt_sessions_of(s->broker)->qos0_bytes + cost > SS_MQTT_QOS0_QUEUED_TOTAL_MAX) {
            dropped(s, "the broker's room for QoS 0 is full");
            overflowed(s, mqtt_msg_size(m));
            return;
        }
        mqtt_deliver_enqueue(s, m, 0, retain, ids, n, 0, 1);
        return;
    }
    int rc = send_publish(c, m, 0, retain, 0, 0, ids, n, clock_now_ms());
    if (rc == SS_TOO_LARGE)
        dropped(s, "too large for the client");
}

void mqtt_deliver_enqueue(mqtt_session *s, mqtt_msg *m, uint8_t qos, uint8_t retain,
                          const uint32_t *ids, unsigned n, uint64_t seq, int recorded)
{
    mqtt_delivery *d = delivery_new(m, qos, retain, ids, n);
    if (!d || !out_of(s)) {
        if (d)
            delivery_free(d);
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
        mqtt_deliver_qos0(s, m, retain, &sub_id, n);
    else
        mqtt_deliver_enqueue(s, m, qos, retain, &sub_id, n, 0, 0);
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
    if (!d || !out_of(s)) {
        if (d)
            delivery_free(d);
        return SS_NOMEM;
    }
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
        ss_list_remove(it);
        delivery_free(ss_list_entry(it, mqtt_delivery, link));
    }
}

void mqtt_deliver_clear(mqtt_session *s)
{
    mqtt_session_out *o = s->out;
    if (!o)
        return;
    mqtt_sessions_of(s->broker)->qos0_bytes -= o->bytes_qos0;
    clear_list(&o->in_flight);
    clear_list(&o->queue);
    free(o);
    s->out = NULL;
}

void mqtt_deliver_offline(mqtt_session *s)
{
    if (!s->out)
        return;
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &s->out->queue) {
        mqtt_delivery *d = ss_list_entry(it, mqtt_delivery, link);
        if (d->qos == 0)
            delivery_end(s, d);
    }
}

void mqtt_deliver_store_all(mqtt_session *s)
{
    if (!s->out)
        return;
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &s->out->in_flight)
        record_delivery_quietly(s, ss_list_entry(it, mqtt_delivery, link));
    ss_list_foreach_safe(it, tmp, &s->out->queue)
        record_delivery_quietly(s, ss_list_entry(it, mqtt_delivery, link));
}
