/* publish.c — an inbound PUBLISH (SPEC §3.6): topic aliases, the ACL, and
 * its steps in order — QoS 2: the packet id kept with the session (a
 * retransmission is then answered, not routed twice); a data topic: its
 * readings through the ingest gateway, committed; every topic: routed to
 * subscribers (and kept when retained) — answered (PUBACK / PUBREC) once
 * the last step is done, so nothing acknowledged is lost. Answers go out
 * in the order the PUBLISHes came (MQTT-4.6.0-2): c->pubs is answered
 * from its head. A step that finds no room (the ingest queue's or the
 * persister's share of the org is full) blocks the connection's input
 * until room is made. Also PUBREL, which ends an inbound QoS 2 flow. */
#include "mqtt/conn_internal.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "mqtt/acl.h"
#include "mqtt/topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The steps of one inbound PUBLISH, in order; each may be skipped. */
enum { PUB_INBOUND, PUB_INGEST, PUB_ROUTE, PUB_DONE };

typedef struct mqtt_pub {
    gateway_msg gmsg;        /* a data topic's readings (first: the gateway's record) */
    ss_list link;            /* in c->pubs, in arrival order */
    mqtt_conn *c;
    gateway_sender from;     /* whose readings (a key: acting as the device) */
    mqtt_msg *msg;           /* the message to route: one reference */
    uint64_t serial;         /* the publisher's session's (no-local), also after it left */
    uint16_t packet_id;
    uint8_t qos;
    uint8_t step;
    uint8_t reason;          /* the answer: 0 until something refuses it */
    unsigned data : 1;       /* a data topic */
    unsigned inbound : 1;    /* QoS 2: its id is kept with the session */
    unsigned routed : 1;     /* mqtt_route took it */
    unsigned matched : 1;    /* … and found subscribers */
    unsigned waiting : 1;    /* a callback is due */
    unsigned in_call : 1;    /* inside the call whose callback may run at once */
    unsigned finished : 1;   /* answer it when it reaches the head */
    unsigned metered : 1;    /* the gateway counts it in the session record */
    /* While it is c->blocked (one at a time): here, not in the connection,
     * so an idle connection does not carry them. */
    ingest_waiter ingest_wait;       /* room in the ingest queue */
    mqtt_persist_waiter persist_wait; /* room in the persister */
} mqtt_pub;

static void pub_run(mqtt_pub *p);

/* ---- inbound PUBLISH: the steps ------------------------------------------------------- */

/* One PUBLISH in the session record's messages (SPEC §5): every one the
 * client sent; those of a data topic that reached the gateway are counted
 * there, with their readings. */
static void pub_count(mqtt_conn *c)
{
    if (c->broker->opt.meter)
        meter_message(c->broker->opt.meter, &c->acct);
}

static void pub_free(mqtt_pub *p)
{
    mqtt_conn *c = p->c;
    if (!p->metered)
        pub_count(c);
    ss_list_remove(&p->link);
    c->pubs_count--;
    if (p->qos > 0)
        c->inflight_in--;
    readings_free(&p->gmsg.item.readings);
    mqtt_msg_unref(p->msg);
    free(p);
}

/* The reason the answer carries. */
static uint8_t pub_reason(const mqtt_pub *p)
{
    if (p->reason == 0 && p->routed && !p->data && !p->matched)
        return MQTT_RC_NO_MATCHING_SUBSCRIBERS;
    return p->reason;
}

static void pub_answer(mqtt_conn *c, mqtt_pub *p)
{
    uint8_t r = pub_reason(p);
    if (p->qos == 0) {
        /* No answer to carry a refusal the client caused: it is told by a
         * DISCONNECT. A store failure loses a QoS 0 message, as QoS 0
         * allows. */
        if (r >= MQTT_RC_UNSPECIFIED && r != MQTT_RC_UNSPECIFIED)
            mqtt_conn_refuse(c, r, "a QoS 0 PUBLISH was refused");
        return;
    }
    if (r >= MQTT_RC_UNSPECIFIED && c->version != MQTT_V5) {
        mqtt_conn_refuse(c, r, "a PUBLISH was refused");
        return;
    }
    mqtt_packet a = {.type = p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC};
    a.ack.packet_id = p->packet_id;
    a.ack.reason = r;
    mqtt_conn_queue(c, &a);
    /* A failed PUBREC ends the flow: no PUBREL follows (MQTT-4.3.3). */
    if (p->qos == 2 && r >= MQTT_RC_UNSPECIFIED && p->inbound && c->session)
        mqtt_session_inbound_del(c->session, p->packet_id);
}

/* Answers the PUBLISHes at the head of the list that are done. */
static void conn_answer_ready(mqtt_conn *c)
{
    ss_list *n;
    while (!mqtt_conn_ended(c) && (n = ss_list_first(&c->pubs)) != NULL) {
        mqtt_pub *p = ss_list_entry(n, mqtt_pub, link);
        if (!p->finished)
            break;
        pub_answer(c, p);
        pub_free(p);
    }
    mqtt_conn_maybe_stop(c);
}

/* A PUBLISH of a connection that ended goes on to its end, unanswered,
 * when it is a QoS 2 one whose packet id the session kept: the client's
 * retransmission after a reconnect is answered by the id alone
 * (MQTT-4.3.3-9), so what this one was to do would be done by nobody. */
static int pub_outlives(const mqtt_pub *p)
{
    return p->inbound && p->reason == 0;
}

/* A step's callback came back (or room was made): the PUBLISH goes on;
 * for a connection that ended meanwhile it is dropped, unanswered, unless
 * it outlives the connection. */
static void pub_resume(mqtt_pub *p)
{
    mqtt_conn *c = p->c;
    if (mqtt_conn_ended(c)) {
        if (pub_outlives(p)) {
            pub_run(p);
            if (p->waiting)
                return;  /* its next callback comes back here */
        }
        pub_free(p);
        net_conn_release(&c->base);
        return;
    }
    pub_run(p);
    mqtt_conn_continue(c);
}

static void on_inbound_kept(void *ctx, int status)
{
    mqtt_pub *p = ctx;
    p->c->held--;
    p->waiting = 0;
    if (status != SS_OK) {
        p->reason = MQTT_RC_UNSPECIFIED;
        p->step = PUB_DONE;
    } else {
        p->step = p->data ? PUB_INGEST : PUB_ROUTE;
    }
    if (!p->in_call)
        pub_resume(p);
}

/* QoS 2: its packet id is kept with the session before anything else, so a
 * retransmission (DUP, after a reconnect) is answered, never routed or
 * stored twice (MQTT-4.3.3-9). Returns 1 while it waits. */
static int pub_inbound(mqtt_pub *p)
{
    mqtt_conn *c = p->c;
    if (!c->session) {
        p->reason = MQTT_RC_UNSPECIFIED;
        p->step = PUB_DONE;
        return 0;
    }
    p->waiting = 1;
    p->in_call = 1;
    c->held++;
    int rc = mqtt_session_inbound_add(c->session, p->packet_id, on_inbound_kept, p);
    p->in_call = 0;
    if (rc == SS_OK) {
        p->inbound = 1;
        return p->waiting;
    }
    c->held--;
    p->waiting = 0;
    p->step = PUB_DONE;
    if (rc == SS_EXISTS)
        return 0;  /* already had: PUBREC again, nothing else */
    if (rc == SS_QUOTA) {
        mqtt_conn_refuse(c, MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED, "more QoS 2 PUBLISHes in flight than announced");
        return 1;
    }
    if (rc == SS_BUSY && !mqtt_conn_ended(c)) {
        /* The persister's share of the org is full: wait for room, as a
         * route does, reading nothing meanwhile. */
        p->step = PUB_INBOUND;
        c->blocked = p;
        snprintf(p->persist_wait.org_id, sizeof p->persist_wait.org_id, "%s", p->msg->org_id);
        mqtt_persist_wait(c->broker->persist, &p->persist_wait);
        return 1;
    }
    p->reason = MQTT_RC_UNSPECIFIED;
    return 0;
}

/* The readings of a data topic come from the device itself, or from a key
 * acting as the device it names (data:write, in the key's org tree). */
static int pub_sender(mqtt_pub *p, const mqtt_str *device)
{
    mqtt_conn *c = p->c;
    if (c->who.kind == AAA_PRINCIPAL_DEVICE) {
        /* the device that signed in (what its token gave, in c->who) */
        p->from = (gateway_sender){.protocol = mqtt_conn_protocol(c),
                                   .session = c->broker->opt.meter ? &c->acct : NULL,
                                   .quota = &c->quota,
                                   .gone = METRICS_REFUSED_INVALID_TOKEN};
        memcpy(p->from.dev.device_id, c->who.id, sizeof p->from.dev.device_id);
        memcpy(p->from.dev.org_id, c->who.org_id, sizeof p->from.dev.org_id);
        return SS_OK;
    }
    char id[SS_ID_LEN + 1];
    if (device->len > SS_ID_LEN)
        return SS_NOT_FOUND;
    memcpy(id, device->p, device->len);
    id[device->len] = '\0';
    gateway_key key = {.scopes = c->who.scopes};
    snprintf(key.org_id, sizeof key.org_id, "%s", mqtt_conn_org(c));
    int rc = gateway_auth_key(c->broker->opt.gateway, &key, id, &p->from);
    if (rc != SS_OK)
        return rc;
    p->from.protocol = mqtt_conn_protocol(c);
    p->from.session = c->broker->opt.meter ? &c->acct : NULL;
    p->from.quota = NULL;
    p->from.gone = METRICS_REFUSED_STORE_UNAVAILABLE;
    return SS_OK;
}

/* JSON (an object or an array) or line format, by its first character. */
static gateway_format payload_format(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')
            continue;
        return p[i] == '{' || p[i] == '[' ? GATEWAY_JSON : GATEWAY_LINES;
    }
    return GATEWAY_JSON;
}

/* Parses a data topic's payload into readings. 0 or the reason to answer. */
static uint8_t pub_parse(mqtt_pub *p)
{
    const mqtt_msg *m = p->msg;
    mqtt_str device, channel;
    mqtt_acl_data_topic(m->topic, m->topic_len, &device, &channel);
    if (pub_sender(p, &device) != SS_OK)
        return MQTT_RC_NOT_AUTHORIZED;
    gateway_body body = {.data = (const char *)m->payload, .len = m->payload_len};
    if (channel.len > 0) {
        body.format = GATEWAY_VALUE;
        body.channel = channel.p;
        body.channel_len = channel.len;
    } else {
        body.format = payload_format(m->payload, m->payload_len);
    }
    ss_parse_error err = {0};
    int rc = gateway_parse(p->c->broker->opt.gateway, &p->from, &body, clock_now_ms(),
                           &p->gmsg.item.readings, &err);
    p->metered = rc != SS_OK;  /* a refusal is counted by the gateway */
    if (rc == SS_NOMEM)
        return MQTT_RC_UNSPECIFIED;
    if (rc != SS_OK) {
        log_debug(CONN_LOG, "%s: bad payload on %s: %s", mqtt_conn_peer(p->c), m->topic, err.message);
        return MQTT_RC_PAYLOAD_FORMAT_INVALID;
    }
    return 0;
}

static void on_committed(gateway_msg *gm, const gateway_result *r)
{
    mqtt_pub *p = gm->data;
    p->c->held--;
    p->waiting = 0;
    readings_free(&p->gmsg.item.readings);
    if (r->status != SS_OK) {
        p->reason = MQTT_RC_UNSPECIFIED;  /* SPEC §4: a full store answers 0x80 */
        p->step = PUB_DONE;
    } else if (r->refused > 0) {
        p->reason = MQTT_RC_PAYLOAD_FORMAT_INVALID;  /* the channel limit: refused whole */
        p->step = PUB_DONE;
    } else {
        p->step = PUB_ROUTE;
    }
    pub_resume(p);
}

static void on_ingest_room(ingest_waiter *w)
{
    mqtt_pub *p = (mqtt_pub *)((char *)w - offsetof(mqtt_pub, ingest_wait));
    if (p->c->blocked != p)
        return;
    p->c->blocked = NULL;
    pub_resume(p);
}

/* A data topic: its readings through the gateway, answered after the
 * commit. Returns 1 while it waits. */
static int pub_ingest(mqtt_pub *p)
{
    mqtt_conn *c = p->c;
    gateway *gw = c->broker->opt.gateway;
    if (p->gmsg.item.readings.len == 0) {
        uint8_t r = pub_parse(p);
        if (r) {
            p->reason = r;
            p->step = PUB_DONE;
            return 0;
        }
    }
    p->gmsg.ack = on_committed;
    p->gmsg.data = p;
    p->gmsg.item.held_bytes = sizeof *p + mqtt_msg_size(p->msg);
    int rc = gateway_submit(gw, &p->from, &p->gmsg, clock_now_ms());
    if (rc == SS_QUOTA || rc == SS_OK)
        p->metered = 1;  /* refused and counted now, or counted at the commit */
    if (rc == SS_QUOTA) {
        readings_free(&p->gmsg.item.readings);
        p->reason = MQTT_RC_QUOTA_EXCEEDED;
        p->step = PUB_DONE;
        return 0;
    }
    if (rc != SS_OK && mqtt_conn_ended(c)) {
        /* Nobody to wait for room for. */
        readings_free(&p->gmsg.item.readings);
        p->reason = MQTT_RC_UNSPECIFIED;
        p->step = PUB_DONE;
        return 0;
    }
    if (rc != SS_OK) {
        /* The device's or org's share of the queue is full: wait for room,
         * reading nothing meanwhile. */
        c->blocked = p;
        gateway_wait(gw, &p->ingest_wait, &p->from);
        return 1;
    }
    c->held++;
    p->waiting = 1;
    return 1;
}

static void on_routed(void *ctx, int status)
{
    mqtt_pub *p = ctx;
    p->c->held--;
    p->waiting = 0;
    if (status != SS_OK)
        p->reason = MQTT_RC_UNSPECIFIED;
    p->step = PUB_DONE;
    if (!p->in_call)
        pub_resume(p);
}

static void on_persist_room(mqtt_persist_waiter *w)
{
    mqtt_pub *p = w->data;
    if (p->c->blocked != p)
        return;
    p->c->blocked = NULL;
    pub_resume(p);
}

/* To every matching subscriber (and the retained store), answered once
 * what persistent sessions need is stored. Returns 1 while it waits. */
static int pub_route(mqtt_pub *p)
{
    mqtt_conn *c = p->c;
    mqtt_broker *b = c->broker;
    uint64_t serial = p->serial;
    int matched = 0;
    p->waiting = 1;
    p->in_call = 1;
    c->held++;
    int rc = mqtt_route(b, p->msg, serial, on_routed, p, &matched);
    p->in_call = 0;
    if (rc == SS_OK) {
        p->routed = 1;
        p->matched = matched > 0;
        return p->waiting;
    }
    c->held--;
    p->waiting = 0;
    if (rc == SS_BUSY && !mqtt_conn_ended(c)) {
        c->blocked = p;
        snprintf(p->persist_wait.org_id, sizeof p->persist_wait.org_id, "%s", p->msg->org_id);
        mqtt_persist_wait(b->persist, &p->persist_wait);
        return 1;
    }
    p->reason = rc == SS_QUOTA ? MQTT_RC_QUOTA_EXCEEDED : MQTT_RC_UNSPECIFIED;
    p->step = PUB_DONE;
    return 0;
}

/* Runs the steps until one waits; a PUBLISH done is answered in turn. */
static void pub_run(mqtt_pub *p)
{
    while (p->step != PUB_DONE) {
        int waits;
        if (p->step == PUB_INBOUND)
            waits = pub_inbound(p);
        else if (p->step == PUB_INGEST)
            waits = pub_ingest(p);
        else
            waits = pub_route(p);
        if (waits || (mqtt_conn_ended(p->c) && !pub_outlives(p)))
            return;
    }
    p->finished = 1;
    conn_answer_ready(p->c);
}

/* ---- inbound PUBLISH: the packet ------------------------------------------------------- */

static mqtt_pub *pub_new(mqtt_conn *c, const mqtt_publish *pb)
{
    mqtt_pub *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->c = c;
    ss_list_init(&p->persist_wait.link);
    p->ingest_wait.ready = on_ingest_room;
    p->persist_wait.ready = on_persist_room;
    p->persist_wait.data = p;
    p->qos = pb->qos;
    p->packet_id = pb->packet_id;
    p->serial = c->session ? mqtt_session_serial(c->session) : 0;
    ss_list_insert_tail(&c->pubs, &p->link);
    c->pubs_count++;
    if (p->qos > 0)
        c->inflight_in++;
    return p;
}

/* 5.0 topic aliases (ours, up to topic_alias_max_in): a PUBLISH with a
 * topic and an alias sets it, one with an alias alone uses it. OUT t: the
 * topic. 0 or the reason to refuse with. */
static uint8_t pub_topic(mqtt_conn *c, const mqtt_publish *pb, mqtt_str *t)
{
    *t = pb->topic;
    if (!MQTT_HAS(&pb->props, MQTT_PROP_TOPIC_ALIAS))
        return t->len > 0 ? 0 : MQTT_RC_PROTOCOL_ERROR;
    uint16_t a = pb->props.topic_alias;
    if (a == 0 || a > c->topic_alias_max_in)
        return MQTT_RC_TOPIC_ALIAS_INVALID;
    if (t->len == 0) {
        const char *known = c->aliases_in ? c->aliases_in[a - 1] : NULL;
        if (!known)
            return MQTT_RC_PROTOCOL_ERROR;
        t->p = known;
        t->len = (uint16_t)strlen(known);
        return 0;
    }
    if (!mqtt_topic_name_valid(t->p, t->len))
        return MQTT_RC_TOPIC_NAME_INVALID;
    if (!c->aliases_in)
        c->aliases_in = calloc(c->topic_alias_max_in, sizeof *c->aliases_in);
    char *copy = c->aliases_in ? strndup(t->p, t->len) : NULL;
    if (!copy)
        return MQTT_RC_UNSPECIFIED;
    free(c->aliases_in[a - 1]);
    c->aliases_in[a - 1] = copy;
    return 0;
}

/* The topic as the org's tree knows it, and whether this client may
 * publish there. 0 or the reason to refuse with. */
uint8_t mqtt_publish_resolve(mqtt_conn *c, const mqtt_str *t, char *out, size_t *len)
{
    if (!mqtt_topic_name_valid(t->p, t->len) ||
        mqtt_acl_resolve(&c->who, t->p, t->len, out, MQTT_ACL_TOPIC_CAP, len) != SS_OK)
        return MQTT_RC_TOPIC_NAME_INVALID;
    if (mqtt_acl_check(&c->who, MQTT_ACL_PUBLISH, out, *len) != SS_OK)
        return MQTT_RC_NOT_AUTHORIZED;
    return 0;
}

/* A PUBLISH refused before any step: answered in its turn (QoS 1/2 of
 * 5.0), else the connection ends. Topic alias and protocol errors end it
 * whatever the QoS. */
static void pub_refused(mqtt_conn *c, const mqtt_publish *pb, uint8_t r)
{
    int fatal = r == MQTT_RC_PROTOCOL_ERROR || r == MQTT_RC_TOPIC_ALIAS_INVALID;
    if (fatal || pb->qos == 0 || c->version != MQTT_V5) {
        pub_count(c);
        mqtt_conn_refuse(c, r, "a PUBLISH was refused");
        return;
    }
    mqtt_pub *p = pub_new(c, pb);
    if (!p) {
        mqtt_conn_close_now(c, "error");
        return;
    }
    p->reason = r;
    p->step = PUB_DONE;
    pub_run(p);
}

void mqtt_publish_in(mqtt_conn *c, const mqtt_publish *pb)
{
    if (MQTT_HAS(&pb->props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER)) {
        /* MQTT-3.3.4-6: only the server sends one. */
        pub_count(c);
        mqtt_conn_refuse(c, MQTT_RC_PROTOCOL_ERROR, "a PUBLISH with a subscription identifier");
        return;
    }
    if (pb->qos > 0 && c->inflight_in >= SS_MQTT_RECEIVE_MAX) {
        pub_count(c);
        mqtt_conn_refuse(c, MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED, "more PUBLISHes in flight than announced");
        return;
    }
    mqtt_str t;
    char topic[MQTT_ACL_TOPIC_CAP];
    size_t len = 0;
    uint8_t r = pub_topic(c, pb, &t);
    if (r == 0)
        r = mqtt_publish_resolve(c, &t, topic, &len);
    if (r) {
        pub_refused(c, pb, r);
        return;
    }
    mqtt_pub *p = pub_new(c, pb);
    if (p)
        p->msg = mqtt_msg_new(mqtt_conn_org(c), topic, len, pb->payload, pb->payload_len, pb->qos,
                              pb->retain, &pb->props, clock_now_ms());
    if (!p || !p->msg) {
        log_warn(CONN_LOG, "out of memory reading from %s; closing", mqtt_conn_peer(c));
        mqtt_conn_close_now(c, "error");
        return;
    }
    mqtt_str device, channel;
    p->data = mqtt_acl_data_topic(topic, len, &device, &channel);
    p->step = p->qos == 2 ? PUB_INBOUND : p->data ? PUB_INGEST : PUB_ROUTE;
    pub_run(p);
}

/* PUBREL: the QoS 2 flow of one of its PUBLISHes ends (PUBCOMP). */
void mqtt_publish_rel(mqtt_conn *c, const mqtt_ack *a)
{
    int rc = c->session ? mqtt_session_inbound_del(c->session, a->packet_id) : SS_NOT_FOUND;
    mqtt_packet p = {.type = MQTT_PUBCOMP};
    p.ack.packet_id = a->packet_id;
    p.ack.reason = rc == SS_OK ? MQTT_RC_SUCCESS : MQTT_RC_PACKET_ID_NOT_FOUND;
    mqtt_conn_queue_committed(c, &p);
}

/* ---- the connection's ------------------------------------------------------------ */

void mqtt_publish_setup(mqtt_conn *c)
{
    ss_list_init(&c->pubs);
}

void mqtt_publish_release(mqtt_conn *c)
{
    mqtt_broker *b = c->broker;
    mqtt_pub *blocked = c->blocked;
    if (blocked && (blocked->step == PUB_ROUTE || blocked->step == PUB_INBOUND))
        mqtt_persist_cancel_wait(b->persist, &blocked->persist_wait);
    if (blocked)
        gateway_cancel_wait(b->opt.gateway, &blocked->ingest_wait);
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &c->pubs) {
        pub_free(ss_list_entry(it, mqtt_pub, link));
    }
    for (unsigned i = 0; c->aliases_in && i < c->topic_alias_max_in; i++)
        free(c->aliases_in[i]);
    free(c->aliases_in);
    c->aliases_in = NULL;
}
