/* conn.c — one MQTT client connection (SPEC §3.6): bytes in, packets out,
 * CONNECT, keep-alive, inbound PUBLISH, SUBSCRIBE / UNSUBSCRIBE framing,
 * DISCONNECT, revocation, accounting.
 *
 * Reading: each read is cut into packets where it lies; a packet begun in
 * one read waits in c->in for its end. A packet's size is known from its
 * fixed header, so one over MQTT_PACKET_MAX is refused before its body is
 * buffered. Reading stops (back-pressure) while a PUBLISH waits for room
 * (the ingest queue's or the persister's share is full), while an API key
 * is checked on the worker pool, and while the connection has as many
 * PUBLISHes unanswered as it may: what it sends meanwhile waits in the
 * kernel's socket buffer, not in our memory.
 *
 * Inbound PUBLISH: each becomes a `mqtt_pub` that goes through its steps
 * in order — QoS 2: the packet id kept with the session (a retransmission
 * is then answered, not routed twice); a data topic: its readings through
 * the ingest gateway, committed; every topic: routed to subscribers (and
 * kept when retained) — and is answered (PUBACK / PUBREC) once the last
 * step is done, so nothing acknowledged is lost. Answers go out in the
 * order the PUBLISHes came (MQTT-4.6.0-2): the list c->pubs is answered
 * from its head.
 *
 * Writing: packets are encoded into c->out; the broker hands every
 * connection's out to its stream once per loop turn (broker.c). A client
 * that lets SS_MQTT_UNSENT_MAX pile up unread is a stalled reader and is
 * closed.
 *
 * Lifetime: the connection set frees the connection once its handles are
 * closed and nothing holds it (c->held: a commit or route of one of its
 * PUBLISHes still to report back; an API key on the worker pool). */
#include "mqtt/broker_internal.h"

#include "aaa/secret.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "mqtt/acl.h"
#include "mqtt/topic.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONN_LOG "mqtt"
/* PUBLISHes of every QoS one connection may have unanswered before it is
 * no longer read. QoS 0 ones are outside the Receive Maximum, and a data
 * message of QoS 0 still waits for its commit: a device streaming QoS 0
 * readings keeps this many in the ingest queue (whose per-device share
 * bounds their bytes), enough for one group commit of a fast sender. */
#define CONN_PUBS_MAX (8u * SS_MQTT_RECEIVE_MAX)
/* MQTT-3.1.2-24 (5.0 §3.1.2.10): one and a half keep-alives without a
 * packet end the connection. */
#define CONN_KEEP_ALIVE_MS(s) ((uint64_t)(s) * 1500u)
/* An input buffer that grew past this (a large packet came in pieces) is
 * freed once empty: an idle connection holds no large buffer. */
#define CONN_IN_KEEP 1024u

_Static_assert(SS_MQTT_SESSION_SUBS_MAX <= MQTT_SUB_IDS_MAX,
               "a delivery carries the ids of every subscription a session may hold");
_Static_assert(SS_MQTT_UNSENT_MAX >= 2u * MQTT_PACKET_MAX,
               "a largest packet queued behind another never makes a stalled reader");
_Static_assert(SS_MQTT_RECEIVE_MAX <= UINT16_MAX && SS_MQTT_TOPIC_ALIASES_MAX <= UINT16_MAX,
               "announced in two bytes");

/* The steps of one inbound PUBLISH, in order; each may be skipped. */
enum { PUB_INBOUND, PUB_INGEST, PUB_ROUTE, PUB_DONE };

typedef struct mqtt_pub {
    gateway_msg gmsg;        /* a data topic's readings (first: the gateway's record) */
    ss_list link;            /* in c->pubs, in arrival order */
    mqtt_conn *c;
    gateway_sender from;     /* whose readings (a key: acting as the device) */
    mqtt_msg *msg;           /* the message to route: one reference */
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
} mqtt_pub;

static void on_timer(uv_timer_t *t);
static void conn_continue(mqtt_conn *c);
static void pub_run(mqtt_pub *p);

/* ---- state ------------------------------------------------------------------ */

/* Closed now or closing after its last bytes: nothing more is read,
 * routed or answered. */
static int conn_ended(const mqtt_conn *c)
{
    return c->base.closing || c->base.ending;
}

static const char *conn_org(const mqtt_conn *c)
{
    return aaa_principal_org(&c->who);
}

/* May the next packet of the input be handled now? */
static int conn_can_process(const mqtt_conn *c)
{
    if (conn_ended(c) || c->blocked || c->stopping || c->state == MQTT_CONN_AUTHENTICATING ||
        c->state == MQTT_CONN_CLOSING)
        return 0;
    if (c->pubs_count >= CONN_PUBS_MAX)
        return 0;
    /* A 3.1.1 client is not told our Receive Maximum: it is held back
     * instead of disconnected. */
    return c->version != MQTT_V311 || c->inflight_in < SS_MQTT_RECEIVE_MAX;
}

static void conn_backpressure(mqtt_conn *c)
{
    if (conn_ended(c))
        return;
    int hold = !conn_can_process(c);
    if (hold && !c->read_paused) {
        c->read_paused = 1;
        net_stream_pause(&c->base.stream);
    } else if (!hold && c->read_paused) {
        c->read_paused = 0;
        net_stream_resume(&c->base.stream);
    }
}

/* ---- accounting ----------------------------------------------------------------- */

/* Adds the bytes moved since the last report: after each write and at
 * close, so a long-lived connection shows up before it ends. */
static void conn_report_bytes(mqtt_conn *c)
{
    mqtt_broker *b = c->broker;
    uint64_t in = c->base.stream.bytes_in, out = c->base.stream.bytes_out;
    metrics_stream_bytes(b->opt.metrics, metrics_protocol_parse(c->protocol),
                         &c->bytes_reported, in, out);
    if (!b->opt.meter || !c->acct.open)
        return;
    meter_bytes(b->opt.meter, &c->acct, conn_org(c), c->protocol, in - c->acct_in,
                out - c->acct_out);
    c->acct_in = in;
    c->acct_out = out;
}

/* ---- writing -------------------------------------------------------------------- */

size_t mqtt_conn_unsent(const mqtt_conn *c)
{
    return c->out.len + c->base.stream.write_pending;
}

static void conn_close_now(mqtt_conn *c, const char *why)
{
    if (conn_ended(c))
        return;
    if (!c->end_reason)
        c->end_reason = why;
    c->state = MQTT_CONN_CLOSING;
    conn_registry_remove(c->broker->opt.conns, &c->reg);
    if (ss_list_linked(&c->flush_link))
        ss_list_remove(&c->flush_link);
    buf_free(&c->out);
    net_conn_close(&c->base);
}

void mqtt_conn_flush(mqtt_conn *c)
{
    if (ss_list_linked(&c->flush_link))
        ss_list_remove(&c->flush_link);
    if (c->out.len == 0 || conn_ended(c))
        return;
    int rc = net_stream_write(&c->base.stream, c->out.data, c->out.len);
    /* Freed, not kept: an idle connection holds no output buffer. */
    buf_free(&c->out);
    conn_report_bytes(c);
    if (rc) {
        log_debug(CONN_LOG, "writing to %s: %s", c->peer, ss_strerror(rc));
        conn_close_now(c, rc == SS_CLOSED ? "closed" : "error");
    }
}

/* Closes once what is queued is written, or after SS_CLOSE_LINGER_MS: a
 * peer that stopped reading cannot hold it open. */
static void conn_close_after_write(mqtt_conn *c)
{
    if (conn_ended(c))
        return;
    c->state = MQTT_CONN_CLOSING;
    conn_registry_remove(c->broker->opt.conns, &c->reg);
    mqtt_conn_flush(c);
    if (!conn_ended(c))
        net_conn_close_after_write(&c->base, SS_CLOSE_LINGER_MS, 0);
}

/* Encodes p into the output, at `at` (a position in c->out) or at its
 * end (at == SIZE_MAX). */
static int conn_queue_at(mqtt_conn *c, const mqtt_packet *p, size_t at)
{
    if (conn_ended(c))
        return SS_CLOSED;
    size_t size = mqtt_encoded_size(p, c->version);
    if (size > c->max_packet_out)
        return SS_TOO_LARGE;
    if (mqtt_conn_unsent(c) + size > SS_MQTT_UNSENT_MAX) {
        log_info(CONN_LOG, "%s does not read what it is sent; closing", c->peer);
        conn_close_now(c, "error");
        return SS_BUSY;
    }
    size_t before = c->out.len;
    int rc = mqtt_encode(p, c->version, &c->out);
    if (rc == SS_OK && at < before) {
        /* Moved in front of what was queued after `at`. */
        size_t n = c->out.len - before;
        char *tmp = malloc(n);
        if (!tmp) {
            rc = SS_NOMEM;
        } else {
            memcpy(tmp, c->out.data + before, n);
            memmove(c->out.data + at + n, c->out.data + at, before - at);
            memcpy(c->out.data + at, tmp, n);
            free(tmp);
        }
    }
    if (rc != SS_OK) {
        log_warn(CONN_LOG, "cannot send to %s: %s; closing", c->peer, ss_strerror(rc));
        conn_close_now(c, "error");
        return rc;
    }
    mqtt_broker_flush_later(c->broker, c);
    return SS_OK;
}

static int conn_queue(mqtt_conn *c, const mqtt_packet *p)
{
    return conn_queue_at(c, p, SIZE_MAX);
}

int mqtt_conn_send(mqtt_conn *c, const mqtt_packet *p)
{
    if (c->state != MQTT_CONN_ACTIVE)
        return SS_CLOSED;
    return conn_queue(c, p);
}

/* The session record's end reason a server DISCONNECT implies. */
static const char *disconnect_end_reason(uint8_t reason)
{
    switch (reason) {
    case MQTT_RC_SERVER_SHUTTING_DOWN: return "shutdown";
    case MQTT_RC_ADMINISTRATIVE_ACTION: return "revoked";
    case MQTT_RC_KEEP_ALIVE_TIMEOUT: return "timeout";
    case MQTT_RC_NORMAL_DISCONNECTION:
    case MQTT_RC_SESSION_TAKEN_OVER: return "closed";
    default: return "error";
    }
}

void mqtt_conn_disconnect(mqtt_conn *c, uint8_t reason)
{
    if (conn_ended(c))
        return;
    c->disconnect_reason = reason;
    if (!c->end_reason)
        c->end_reason = disconnect_end_reason(reason);
    /* A server DISCONNECT exists in 5.0 only, and only after CONNACK. */
    if (c->version == MQTT_V5 && c->state == MQTT_CONN_ACTIVE) {
        mqtt_packet p = {.type = MQTT_DISCONNECT};
        p.disconnect.reason = reason;
        conn_queue(c, &p);
    }
    conn_close_after_write(c);
}

/* The client broke the protocol (or the rules): 5.0 DISCONNECT with the
 * reason, 3.1.1 closes. */
static void conn_refuse(mqtt_conn *c, uint8_t reason, const char *what)
{
    log_info(CONN_LOG, "%s: %s (reason 0x%02x); disconnecting", c->peer, what, reason);
    if (!c->end_reason)
        c->end_reason = "error";
    mqtt_conn_disconnect(c, reason);
}

/* ---- inbound PUBLISH: the steps ------------------------------------------------------- */

static void pub_free(mqtt_pub *p)
{
    mqtt_conn *c = p->c;
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
            conn_refuse(c, r, "a QoS 0 PUBLISH was refused");
        return;
    }
    if (r >= MQTT_RC_UNSPECIFIED && c->version != MQTT_V5) {
        conn_refuse(c, r, "a PUBLISH was refused");
        return;
    }
    mqtt_packet a = {.type = p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC};
    a.ack.packet_id = p->packet_id;
    a.ack.reason = r;
    conn_queue(c, &a);
    /* A failed PUBREC ends the flow: no PUBREL follows (MQTT-4.3.3). */
    if (p->qos == 2 && r >= MQTT_RC_UNSPECIFIED && p->inbound && c->session)
        mqtt_session_inbound_del(c->session, p->packet_id);
}

static void conn_maybe_stop(mqtt_conn *c)
{
    if (c->stopping && !conn_ended(c) && ss_list_empty(&c->pubs))
        mqtt_conn_disconnect(c, MQTT_RC_SERVER_SHUTTING_DOWN);
}

/* Answers the PUBLISHes at the head of the list that are done. */
static void conn_answer_ready(mqtt_conn *c)
{
    ss_list *n;
    while (!conn_ended(c) && (n = ss_list_first(&c->pubs)) != NULL) {
        mqtt_pub *p = ss_list_entry(n, mqtt_pub, link);
        if (!p->finished)
            break;
        pub_answer(c, p);
        pub_free(p);
    }
    conn_maybe_stop(c);
}

/* A step's callback came back (or room was made): the PUBLISH goes on;
 * for a connection that ended meanwhile it is dropped, unanswered. */
static void pub_resume(mqtt_pub *p)
{
    mqtt_conn *c = p->c;
    if (conn_ended(c)) {
        pub_free(p);
        net_conn_release(&c->base);
        return;
    }
    pub_run(p);
    conn_continue(c);
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
    if (rc == SS_BUSY) {
        conn_refuse(c, MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED, "more QoS 2 PUBLISHes in flight than announced");
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
        p->from = c->sender;
        return SS_OK;
    }
    char id[SS_ID_LEN + 1];
    if (device->len > SS_ID_LEN)
        return SS_NOT_FOUND;
    memcpy(id, device->p, device->len);
    id[device->len] = '\0';
    gateway_key key = {.scopes = aaa_principal_scopes(&c->who)};
    snprintf(key.org_id, sizeof key.org_id, "%s", conn_org(c));
    int rc = gateway_auth_key(c->broker->opt.gateway, &key, id, &p->from);
    if (rc != SS_OK)
        return rc;
    p->from.protocol = c->protocol;
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
    if (rc == SS_NOMEM)
        return MQTT_RC_UNSPECIFIED;
    if (rc != SS_OK) {
        log_debug(CONN_LOG, "%s: bad payload on %s: %s", p->c->peer, m->topic, err.message);
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
    mqtt_conn *c = (mqtt_conn *)((char *)w - offsetof(mqtt_conn, ingest_wait));
    mqtt_pub *p = c->blocked;
    c->blocked = NULL;
    if (p)
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
    if (rc == SS_QUOTA) {
        readings_free(&p->gmsg.item.readings);
        p->reason = MQTT_RC_QUOTA_EXCEEDED;
        p->step = PUB_DONE;
        return 0;
    }
    if (rc != SS_OK) {
        /* The device's or org's share of the queue is full: wait for room,
         * reading nothing meanwhile. */
        c->blocked = p;
        gateway_wait(gw, &c->ingest_wait, &p->from);
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
    mqtt_conn *c = w->data;
    mqtt_pub *p = c->blocked;
    c->blocked = NULL;
    if (p)
        pub_resume(p);
}

/* To every matching subscriber (and the retained store), answered once
 * what persistent sessions need is stored. Returns 1 while it waits. */
static int pub_route(mqtt_pub *p)
{
    mqtt_conn *c = p->c;
    mqtt_broker *b = c->broker;
    uint64_t serial = c->session ? mqtt_session_serial(c->session) : 0;
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
    if (rc == SS_BUSY) {
        c->blocked = p;
        snprintf(c->persist_wait.org_id, sizeof c->persist_wait.org_id, "%s", p->msg->org_id);
        mqtt_persist_wait(b->persist, &c->persist_wait);
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
        if (waits || conn_ended(p->c))
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
    p->qos = pb->qos;
    p->packet_id = pb->packet_id;
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
static uint8_t pub_resolve(mqtt_conn *c, const mqtt_str *t, char *out, size_t *len)
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
        conn_refuse(c, r, "a PUBLISH was refused");
        return;
    }
    mqtt_pub *p = pub_new(c, pb);
    if (!p) {
        conn_close_now(c, "error");
        return;
    }
    p->reason = r;
    p->step = PUB_DONE;
    pub_run(p);
}

static void conn_publish(mqtt_conn *c, const mqtt_publish *pb)
{
    if (MQTT_HAS(&pb->props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER)) {
        /* MQTT-3.3.4-6: only the server sends one. */
        conn_refuse(c, MQTT_RC_PROTOCOL_ERROR, "a PUBLISH with a subscription identifier");
        return;
    }
    if (pb->qos > 0 && c->inflight_in >= SS_MQTT_RECEIVE_MAX) {
        conn_refuse(c, MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED, "more PUBLISHes in flight than announced");
        return;
    }
    mqtt_str t;
    char topic[MQTT_ACL_TOPIC_CAP];
    size_t len = 0;
    uint8_t r = pub_topic(c, pb, &t);
    if (r == 0)
        r = pub_resolve(c, &t, topic, &len);
    if (r) {
        pub_refused(c, pb, r);
        return;
    }
    mqtt_pub *p = pub_new(c, pb);
    if (p)
        p->msg = mqtt_msg_new(conn_org(c), topic, len, pb->payload, pb->payload_len, pb->qos,
                              pb->retain, &pb->props, clock_now_ms());
    if (!p || !p->msg) {
        log_warn(CONN_LOG, "out of memory reading from %s; closing", c->peer);
        conn_close_now(c, "error");
        return;
    }
    mqtt_str device, channel;
    p->data = mqtt_acl_data_topic(topic, len, &device, &channel);
    p->step = p->qos == 2 ? PUB_INBOUND : p->data ? PUB_INGEST : PUB_ROUTE;
    pub_run(p);
}

/* PUBREL: the QoS 2 flow of one of its PUBLISHes ends (PUBCOMP). */
static void conn_pubrel(mqtt_conn *c, const mqtt_ack *a)
{
    int rc = c->session ? mqtt_session_inbound_del(c->session, a->packet_id) : SS_NOT_FOUND;
    mqtt_packet p = {.type = MQTT_PUBCOMP};
    p.ack.packet_id = a->packet_id;
    p.ack.reason = rc == SS_OK ? MQTT_RC_SUCCESS : MQTT_RC_PACKET_ID_NOT_FOUND;
    conn_queue(c, &p);
}

/* An answer to one of our PUBLISHes. */
static void conn_ack(mqtt_conn *c, const mqtt_packet *p)
{
    int rc = mqtt_deliver_ack(c, p->type, p->ack.packet_id, p->ack.reason);
    if (rc == SS_NOT_FOUND && p->type == MQTT_PUBREC) {
        mqtt_packet rel = {.type = MQTT_PUBREL};
        rel.ack.packet_id = p->ack.packet_id;
        rel.ack.reason = MQTT_RC_PACKET_ID_NOT_FOUND;
        conn_queue(c, &rel);
    }
}

/* ---- SUBSCRIBE / UNSUBSCRIBE --------------------------------------------------------- */

/* 3.1.1 knows one failure code. */
static uint8_t suback_code(const mqtt_conn *c, uint8_t r)
{
    return c->version != MQTT_V5 && r >= MQTT_RC_UNSPECIFIED ? MQTT_311_SUBACK_FAILURE : r;
}

/* One filter of a SUBSCRIBE. OUT reason. 1 when the connection ended (a
 * protocol error), else 0. */
static int conn_subscribe_one(mqtt_conn *c, const mqtt_str *f, uint8_t options, uint32_t sub_id,
                              uint8_t *reason)
{
    int shared = 0;
    char filter[MQTT_ACL_TOPIC_CAP];
    size_t len = 0;
    if (!mqtt_topic_filter_valid(f->p, f->len, &shared) ||
        mqtt_acl_resolve(&c->who, f->p, f->len, filter, sizeof filter, &len) != SS_OK) {
        *reason = suback_code(c, MQTT_RC_TOPIC_FILTER_INVALID);
        return 0;
    }
    if (shared && (options & MQTT_SUBOPT_NO_LOCAL)) {
        conn_refuse(c, MQTT_RC_PROTOCOL_ERROR, "no-local on a shared subscription");
        return 1;
    }
    if (mqtt_acl_check(&c->who, MQTT_ACL_SUBSCRIBE, filter, len) != SS_OK) {
        *reason = suback_code(c, MQTT_RC_NOT_AUTHORIZED);
        return 0;
    }
    *reason = MQTT_RC_UNSPECIFIED;
    if (c->session && mqtt_session_subscribe(c, filter, len, options, sub_id, reason) != SS_OK)
        *reason = MQTT_RC_UNSPECIFIED;
    *reason = suback_code(c, *reason);
    return conn_ended(c);
}

/* SUBACK goes out before the retained messages the subscriptions sent
 * (they were queued behind the mark). */
static void conn_subscribe(mqtt_conn *c, const mqtt_packet *p)
{
    const mqtt_subscribe *s = &p->subscribe;
    uint8_t *reasons = malloc(s->count);
    if (!reasons) {
        conn_close_now(c, "error");
        return;
    }
    uint32_t sub_id = s->props.n_sub_ids > 0 ? s->props.sub_ids[0] : 0;
    size_t mark = c->out.len, pos = 0;
    uint32_t n = 0;
    mqtt_str f;
    uint8_t options;
    while (n < s->count && mqtt_filter_next(p, &pos, &f, &options)) {
        if (conn_subscribe_one(c, &f, options, sub_id, &reasons[n])) {
            free(reasons);
            return;
        }
        n++;
    }
    mqtt_packet a = {.type = MQTT_SUBACK};
    a.suback.packet_id = s->packet_id;
    a.suback.reasons = reasons;
    a.suback.count = n;
    conn_queue_at(c, &a, mark <= c->out.len ? mark : SIZE_MAX);
    free(reasons);
}

static void conn_unsubscribe(mqtt_conn *c, const mqtt_packet *p)
{
    const mqtt_subscribe *s = &p->subscribe;
    uint8_t *reasons = malloc(s->count);
    if (!reasons) {
        conn_close_now(c, "error");
        return;
    }
    size_t pos = 0;
    uint32_t n = 0;
    mqtt_str f;
    uint8_t options;
    while (n < s->count && mqtt_filter_next(p, &pos, &f, &options)) {
        char filter[MQTT_ACL_TOPIC_CAP];
        size_t len = 0;
        uint8_t r = MQTT_RC_TOPIC_FILTER_INVALID;
        if (mqtt_topic_filter_valid(f.p, f.len, NULL) &&
            mqtt_acl_resolve(&c->who, f.p, f.len, filter, sizeof filter, &len) == SS_OK) {
            r = MQTT_RC_NO_SUBSCRIPTION_EXISTED;
            if (c->session && mqtt_session_unsubscribe(c, filter, len, &r) != SS_OK)
                r = MQTT_RC_UNSPECIFIED;
        }
        reasons[n++] = r;
    }
    mqtt_packet a = {.type = MQTT_UNSUBACK};
    a.suback.packet_id = s->packet_id;
    a.suback.reasons = reasons;
    a.suback.count = n;
    conn_queue(c, &a);
    free(reasons);
}

/* ---- DISCONNECT and the other packets -------------------------------------------------- */

static void conn_client_disconnect(mqtt_conn *c, const mqtt_disconnect *d)
{
    /* 5.0: only "disconnect with will message" keeps the will. */
    c->will_suppressed = !(c->version == MQTT_V5 && d->reason == MQTT_RC_DISCONNECT_WITH_WILL);
    if (c->version == MQTT_V5 && MQTT_HAS(&d->props, MQTT_PROP_SESSION_EXPIRY_INTERVAL)) {
        uint32_t e = d->props.session_expiry;
        if (c->expiry_s == 0 && e != 0) {
            conn_refuse(c, MQTT_RC_PROTOCOL_ERROR, "DISCONNECT set a session expiry after 0");
            return;
        }
        if (c->session)
            mqtt_session_set_expiry(c, e > SS_MQTT_SESSION_EXPIRY_MAX_S ? SS_MQTT_SESSION_EXPIRY_MAX_S : e);
    }
    if (!c->end_reason)
        c->end_reason = "closed";
    conn_close_after_write(c);
}

static void conn_dispatch(mqtt_conn *c, const mqtt_packet *p)
{
    switch (p->type) {
    case MQTT_PUBLISH:
        conn_publish(c, &p->publish);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        conn_ack(c, p);
        break;
    case MQTT_PUBREL:
        conn_pubrel(c, &p->ack);
        break;
    case MQTT_SUBSCRIBE:
        conn_subscribe(c, p);
        break;
    case MQTT_UNSUBSCRIBE:
        conn_unsubscribe(c, p);
        break;
    case MQTT_PINGREQ:
        conn_queue(c, &(mqtt_packet){.type = MQTT_PINGRESP});
        break;
    case MQTT_DISCONNECT:
        conn_client_disconnect(c, &p->disconnect);
        break;
    default:
        /* A second CONNECT (MQTT-3.1.0-2), AUTH we never asked for, or a
         * packet only a server sends. */
        conn_refuse(c, MQTT_RC_PROTOCOL_ERROR, "a packet out of place");
        break;
    }
}

/* ---- CONNECT ----------------------------------------------------------------------- */

/* A 5.0 CONNACK reason as 3.1.1 says it. */
static uint8_t connack_311(uint8_t r)
{
    switch (r) {
    case MQTT_RC_SUCCESS: return MQTT_311_ACCEPTED;
    case MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION: return MQTT_311_BAD_PROTOCOL_VERSION;
    case MQTT_RC_CLIENTID_NOT_VALID: return MQTT_311_IDENTIFIER_REJECTED;
    case MQTT_RC_BAD_USERNAME_OR_PASSWORD: return MQTT_311_BAD_USERNAME_PASSWORD;
    case MQTT_RC_SERVER_UNAVAILABLE:
    case MQTT_RC_SERVER_BUSY:
    case MQTT_RC_QUOTA_EXCEEDED:
    case MQTT_RC_UNSPECIFIED: return MQTT_311_SERVER_UNAVAILABLE;
    default: return MQTT_311_NOT_AUTHORIZED;
    }
}

static void conn_refuse_connect(mqtt_conn *c, uint8_t reason, const char *why)
{
    log_info(CONN_LOG, "refused a connection from %s: %s", c->peer, why);
    mqtt_packet p = {.type = MQTT_CONNACK};
    p.connack.reason = c->version == MQTT_V5 ? reason : connack_311(reason);
    conn_queue(c, &p);
    conn_close_after_write(c);
}

/* Checks of CONNECT before its credentials. 0 or the reason to refuse. */
static uint8_t connect_check(const mqtt_connect *cn)
{
    if (cn->version == MQTT_V5 && MQTT_HAS(&cn->props, MQTT_PROP_AUTHENTICATION_METHOD))
        return MQTT_RC_BAD_AUTHENTICATION_METHOD;
    if (cn->client_id.len > MQTT_CLIENT_ID_MAX)
        return MQTT_RC_CLIENTID_NOT_VALID;
    /* MQTT-3.1.3-8: 3.1.1 assigns an id only to a clean session. */
    if (cn->client_id.len == 0 && cn->version == MQTT_V311 && !cn->clean_start)
        return MQTT_RC_CLIENTID_NOT_VALID;
    return 0;
}

/* The will, resolved in the client's tree and allowed by its ACL. */
static uint8_t connect_will(mqtt_conn *c, const mqtt_connect *cn, mqtt_msg **out)
{
    *out = NULL;
    if (!cn->will)
        return 0;
    char topic[MQTT_ACL_TOPIC_CAP];
    size_t len = 0;
    uint8_t r = pub_resolve(c, &cn->will_topic, topic, &len);
    if (r)
        return r;
    *out = mqtt_msg_new(conn_org(c), topic, len, cn->will_payload.p, cn->will_payload.len,
                        cn->will_qos, cn->will_retain, &cn->will_props, clock_now_ms());
    return *out ? 0 : MQTT_RC_SERVER_UNAVAILABLE;
}

/* What the client asked for, within our limits. OUT *ka_changed: the
 * keep-alive granted differs (5.0 Server Keep Alive). */
static void connect_options(mqtt_conn *c, const mqtt_connect *cn, int *ka_changed)
{
    const mqtt_props *pr = &cn->props;
    c->max_packet_out = MQTT_HAS(pr, MQTT_PROP_MAXIMUM_PACKET_SIZE) ? pr->max_packet_size
                                                                     : UINT32_MAX;
    c->receive_max_out = MQTT_HAS(pr, MQTT_PROP_RECEIVE_MAXIMUM) ? pr->receive_max : UINT16_MAX;
    c->request_problem_info =
        MQTT_HAS(pr, MQTT_PROP_REQUEST_PROBLEM_INFORMATION) ? pr->request_problem_info : 1;
    c->topic_alias_max_in = cn->version == MQTT_V5 ? SS_MQTT_TOPIC_ALIASES_MAX : 0;
    c->keep_alive_s = cn->keep_alive;
    *ka_changed = 0;
    if (cn->version == MQTT_V5 &&
        (cn->keep_alive == 0 || cn->keep_alive > SS_MQTT_KEEP_ALIVE_MAX_S)) {
        c->keep_alive_s = SS_MQTT_KEEP_ALIVE_MAX_S;
        *ka_changed = 1;
    }
    uint32_t want = cn->clean_start ? 0 : UINT32_MAX;
    if (cn->version == MQTT_V5)
        want = MQTT_HAS(pr, MQTT_PROP_SESSION_EXPIRY_INTERVAL) ? pr->session_expiry : 0;
    c->expiry_s = want > SS_MQTT_SESSION_EXPIRY_MAX_S ? SS_MQTT_SESSION_EXPIRY_MAX_S : want;
}

static void conn_send_connack(mqtt_conn *c, int present, const char *assigned, int ka_changed,
                              int expiry_capped)
{
    mqtt_packet p = {.type = MQTT_CONNACK};
    p.connack.session_present = (uint8_t)present;
    mqtt_props *pr = &p.connack.props;
    pr->receive_max = SS_MQTT_RECEIVE_MAX;
    pr->max_packet_size = MQTT_PACKET_MAX;
    pr->topic_alias_max = SS_MQTT_TOPIC_ALIASES_MAX;
    pr->retain_available = pr->wildcard_sub_available = 1;
    pr->sub_id_available = pr->shared_sub_available = 1;
    MQTT_SET(pr, MQTT_PROP_RECEIVE_MAXIMUM);
    MQTT_SET(pr, MQTT_PROP_MAXIMUM_PACKET_SIZE);
    MQTT_SET(pr, MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
    MQTT_SET(pr, MQTT_PROP_RETAIN_AVAILABLE);
    MQTT_SET(pr, MQTT_PROP_WILDCARD_SUB_AVAILABLE);
    MQTT_SET(pr, MQTT_PROP_SUBSCRIPTION_ID_AVAILABLE);
    MQTT_SET(pr, MQTT_PROP_SHARED_SUB_AVAILABLE);
    if (ka_changed) {
        pr->server_keep_alive = c->keep_alive_s;
        MQTT_SET(pr, MQTT_PROP_SERVER_KEEP_ALIVE);
    }
    if (expiry_capped) {
        pr->session_expiry = c->expiry_s;
        MQTT_SET(pr, MQTT_PROP_SESSION_EXPIRY_INTERVAL);
    }
    if (assigned) {
        pr->assigned_client_id = (mqtt_str){assigned, (uint16_t)strlen(assigned)};
        MQTT_SET(pr, MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER);
    }
    conn_queue(c, &p);
}

static void on_revoked(conn_reg_entry *e);

/* Signed in: registered for revocation, a session record opened, and a
 * device's readings accounted to it. */
static void conn_register(mqtt_conn *c)
{
    mqtt_broker *b = c->broker;
    const char *id = aaa_principal_id(&c->who);
    int device = c->who.kind == AAA_PRINCIPAL_DEVICE;
    c->reg.on_revoked = on_revoked;
    c->reg.data = c;
    conn_registry_add(b->opt.conns, &c->reg, id);
    if (device) {
        c->sender.protocol = c->protocol;
        c->sender.gone = METRICS_REFUSED_INVALID_TOKEN;
        c->sender.quota = &c->quota;
        c->sender.session = b->opt.meter ? &c->acct : NULL;
    }
    if (!b->opt.meter)
        return;
    meter_session_open(b->opt.meter, &c->acct, device ? "device" : "apikey", id, conn_org(c),
                       c->protocol, c->peer);
    /* The record's bytes start with the CONNECT that opened it. */
    c->acct_in = 0;
    c->acct_out = c->base.stream.bytes_out;
}

static void conn_arm_keep_alive(mqtt_conn *c)
{
    if (c->keep_alive_s > 0)
        net_conn_timer_start(&c->base, on_timer, CONN_KEEP_ALIVE_MS(c->keep_alive_s));
    else
        net_conn_timer_stop(&c->base);
}

/* Attaches the session and answers CONNACK. */
static void conn_open_session(mqtt_conn *c, const mqtt_connect *cn, mqtt_msg *will)
{
    char assigned[SS_ID_LEN + 1];
    const char *id = cn->client_id.p;
    size_t id_len = cn->client_id.len;
    if (id_len == 0) {
        secret_new_id(assigned);
        id = assigned;
        id_len = SS_ID_LEN;
    }
    int ka_changed = 0, present = 0;
    connect_options(c, cn, &ka_changed);
    int capped = cn->version == MQTT_V5 && MQTT_HAS(&cn->props, MQTT_PROP_SESSION_EXPIRY_INTERVAL) &&
                 cn->props.session_expiry > c->expiry_s;
    int rc = mqtt_session_attach(c, id, id_len, cn->clean_start, c->expiry_s, &present);
    if (rc != SS_OK) {
        mqtt_msg_unref(will);
        if (rc == SS_QUOTA)
            conn_refuse_connect(c, MQTT_RC_QUOTA_EXCEEDED, "its principal holds as many stored sessions as it may");
        else
            conn_refuse_connect(c, MQTT_RC_SERVER_BUSY, "no room for its session");
        return;
    }
    conn_register(c);
    if (will)
        mqtt_session_set_will(c, will, cn->will_props.will_delay);
    conn_send_connack(c, present, id == assigned ? assigned : NULL, ka_changed, capped);
    c->state = MQTT_CONN_ACTIVE;
    conn_arm_keep_alive(c);
    log_debug(CONN_LOG, "%s %s connected from %s over %s",
              c->who.kind == AAA_PRINCIPAL_DEVICE ? "device" : "key", aaa_principal_id(&c->who),
              c->peer, c->protocol);
    mqtt_deliver_resume(c);
}

/* A refused sign-in from an address that keeps failing: the CONNACK
 * goes out after `ms` (on_timer), nothing is read meanwhile. */
static void conn_refuse_later(mqtt_conn *c, uint64_t ms)
{
    log_info(CONN_LOG, "refused a connection from %s: not a device token or API key of ours "
             "(answered in %" PRIu64 " ms: its address keeps failing)", c->peer, ms);
    c->state = MQTT_CONN_CLOSING;
    c->disconnect_reason = MQTT_RC_NOT_AUTHORIZED;
    net_conn_timer_start(&c->base, on_timer, ms);
}

/* The credentials were checked (status as mqtt_auth_start's). */
static void conn_signed_in(mqtt_conn *c, const mqtt_connect *cn, int status)
{
    if (status == SS_AUTH) {
        uint64_t delay = mqtt_auth_failed(c, cn);
        if (delay > 0)
            conn_refuse_later(c, delay);
        else
            conn_refuse_connect(c, MQTT_RC_NOT_AUTHORIZED, "not a device token or API key of ours");
        return;
    }
    if (status != SS_OK) {
        conn_refuse_connect(c, MQTT_RC_SERVER_UNAVAILABLE, ss_strerror(status));
        return;
    }
    mqtt_msg *will = NULL;
    uint8_t r = connect_will(c, cn, &will);
    if (r) {
        conn_refuse_connect(c, r, "its will's topic is not its own");
        return;
    }
    conn_open_session(c, cn, will);
}

static void on_auth_done(mqtt_conn *c, int status)
{
    if (conn_ended(c)) {
        net_conn_release(&c->base);
        return;
    }
    /* The CONNECT waited in c->in, unread: decode it again. */
    mqtt_packet p;
    size_t used = 0;
    c->state = MQTT_CONN_NEW;
    if (mqtt_decode((const uint8_t *)c->in.data, c->in.len, 0, MQTT_PACKET_MAX, &p, &used) !=
        SS_OK) {
        conn_close_now(c, "error");
        return;
    }
    conn_signed_in(c, &p.connect, status);
    if (conn_ended(c))
        return;
    buf_consume(&c->in, used);
    conn_continue(c);
}

/* The first packet. Returns 1 when it stays in the input (an API key is
 * being checked), else 0. */
static int conn_connect(mqtt_conn *c, const mqtt_packet *p)
{
    if (p->type != MQTT_CONNECT) {
        log_info(CONN_LOG, "%s sent a packet before CONNECT; closing", c->peer);
        conn_close_now(c, "error");
        return 0;
    }
    const mqtt_connect *cn = &p->connect;
    c->version = cn->version;
    uint8_t r = connect_check(cn);
    if (r) {
        conn_refuse_connect(c, r, "its CONNECT asks for what we do not do");
        return 0;
    }
    int rc = mqtt_auth_start(c, cn, on_auth_done);
    if (rc == MQTT_AUTH_LATER) {
        c->state = MQTT_CONN_AUTHENTICATING;
        return 1;
    }
    conn_signed_in(c, cn, rc);
    return 0;
}

/* A packet the codec refused: its reason to a 5.0 client after CONNACK,
 * a CONNACK for a CONNECT of a level we do not speak, else a close. */
static void conn_bad_packet(mqtt_conn *c, int rc, const mqtt_packet *p)
{
    if (c->state == MQTT_CONN_NEW && rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION) {
        /* The codec read the level it refused: answer in its terms. */
        c->version = p->type == MQTT_CONNECT && p->connect.version == MQTT_V5 ? MQTT_V5 : MQTT_V311;
        conn_refuse_connect(c, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, "a protocol level we do not speak");
        return;
    }
    if (c->state == MQTT_CONN_NEW) {
        log_info(CONN_LOG, "%s sent a malformed first packet (reason 0x%02x); closing", c->peer, rc);
        conn_close_now(c, "error");
        return;
    }
    conn_refuse(c, (uint8_t)rc, "a malformed packet");
}

/* ---- reading ------------------------------------------------------------------- */

/* Handles the whole packets at the start of buf. Returns the bytes used;
 * the rest (a packet not all there yet, or ones that must wait) stays for
 * later. */
static size_t conn_feed(mqtt_conn *c, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (off < len && conn_can_process(c)) {
        size_t total = 0;
        int rc = mqtt_frame(buf + off, len - off, MQTT_PACKET_MAX, &total);
        if (rc == MQTT_DECODE_MORE || (rc == 0 && total > len - off))
            break;
        mqtt_packet p = {0};
        size_t used = 0;
        if (rc == 0)
            rc = mqtt_decode(buf + off, total, c->version, MQTT_PACKET_MAX, &p, &used);
        if (rc != 0) {
            conn_bad_packet(c, rc == MQTT_DECODE_MORE ? MQTT_RC_MALFORMED_PACKET : rc, &p);
            return len;
        }
        if (c->state == MQTT_CONN_NEW) {
            if (conn_connect(c, &p))
                break;
        } else {
            conn_dispatch(c, &p);
        }
        off += total;
    }
    return off;
}

static void conn_drain_in(mqtt_conn *c)
{
    size_t used = conn_feed(c, (const uint8_t *)c->in.data, c->in.len);
    if (conn_ended(c))
        return;
    buf_consume(&c->in, used);
    if (c->in.len == 0 && c->in.cap > CONN_IN_KEEP)
        buf_free(&c->in);
}

/* Something that held the input back has gone: go on with it. Never
 * called while the input is being fed (only from callbacks of the loop). */
static void conn_continue(mqtt_conn *c)
{
    if (conn_ended(c))
        return;
    if (c->in.len > 0 && conn_can_process(c))
        conn_drain_in(c);
    conn_backpressure(c);
}

static void on_read(net_stream *st, const char *data, size_t len)
{
    mqtt_conn *c = (mqtt_conn *)st;
    if (conn_ended(c))
        return;
    if (c->in.len == 0) {
        /* The usual case: whole packets parsed in place, no copy. */
        size_t used = conn_feed(c, (const uint8_t *)data, len);
        if (!conn_ended(c) && used < len && buf_append(&c->in, data + used, len - used)) {
            conn_close_now(c, "error");
            return;
        }
    } else {
        if (buf_append(&c->in, data, len)) {
            conn_close_now(c, "error");
            return;
        }
        conn_drain_in(c);
    }
    if (conn_ended(c))
        return;
    if (c->state == MQTT_CONN_ACTIVE)
        conn_arm_keep_alive(c);
    conn_backpressure(c);
}

static void on_timer(uv_timer_t *t)
{
    mqtt_conn *c = t->data;
    if (c->state == MQTT_CONN_CLOSING) {
        /* A refusal held back (conn_refuse_later) is due. */
        mqtt_packet p = {.type = MQTT_CONNACK};
        p.connack.reason = c->version == MQTT_V5 ? c->disconnect_reason
                                                 : connack_311(c->disconnect_reason);
        conn_queue(c, &p);
        conn_close_after_write(c);
        return;
    }
    if (c->state == MQTT_CONN_NEW || c->state == MQTT_CONN_AUTHENTICATING) {
        log_info(CONN_LOG, "%s sent no CONNECT within %" PRIu64 " ms; closing", c->peer,
                 c->broker->opt.connect_timeout_ms);
        conn_close_now(c, "timeout");
        return;
    }
    if (c->read_paused) {
        /* Its bytes wait for us, not the other way round. */
        conn_arm_keep_alive(c);
        return;
    }
    log_debug(CONN_LOG, "%s sent nothing for 1.5 keep-alives; closing", c->peer);
    mqtt_conn_disconnect(c, MQTT_RC_KEEP_ALIVE_TIMEOUT);
}

static void on_stream_error(net_stream *st, int err)
{
    mqtt_conn *c = (mqtt_conn *)st;
    if (err != SS_CLOSED)
        log_debug(CONN_LOG, "connection from %s: %s", c->peer, ss_strerror(err));
    conn_close_now(c, err == SS_CLOSED ? "closed" : "error");
}

/* The client has read what we wrote: its session may send more. */
static void on_drained(net_stream *st)
{
    mqtt_conn *c = (mqtt_conn *)st;
    if (c->state == MQTT_CONN_ACTIVE && !conn_ended(c))
        mqtt_deliver_resume(c);
}

/* ---- revocation, stop, lifetime --------------------------------------------------- */

static void on_revoked(conn_reg_entry *e)
{
    mqtt_conn *c = e->data;
    log_info(CONN_LOG, "%s %s: revoked; disconnecting the client at %s",
             c->who.kind == AAA_PRINCIPAL_DEVICE ? "device" : "key", aaa_principal_id(&c->who),
             c->peer);
    c->end_reason = "revoked";
    mqtt_sessions_drop_principal(c->broker, aaa_principal_id(&c->who));
    mqtt_conn_disconnect(c, MQTT_RC_ADMINISTRATIVE_ACTION);
}

/* The broker stops: no will (the server went away, not the client); a
 * signed-in client gets DISCONNECT 0x8B once its PUBLISHes are answered. */
static void on_conn_stop(net_conn *nc)
{
    mqtt_conn *c = (mqtt_conn *)nc;
    c->end_reason = "shutdown";
    c->stopping = 1;
    c->will_suppressed = 1;
    if (c->state != MQTT_CONN_ACTIVE) {
        conn_close_now(c, NULL);
        return;
    }
    conn_backpressure(c);
    conn_maybe_stop(c);
}

static void on_conn_open(net_conn *nc)
{
    mqtt_conn *c = (mqtt_conn *)nc;
    c->broker = net_conn_ctx(nc);
    c->protocol = c->base.stream.ssl ? "mqtts" : "mqtt";
    c->max_packet_out = UINT32_MAX;
    ss_list_init(&c->flush_link);
    ss_list_init(&c->pubs);
    ss_list_init(&c->persist_wait.link);
    c->ingest_wait.ready = on_ingest_room;
    c->persist_wait.ready = on_persist_room;
    c->persist_wait.data = c;
    net_stream_peer(&c->base.stream, c->peer, sizeof c->peer);
    net_conn_timer_start(nc, on_timer, c->broker->opt.connect_timeout_ms);
}

static void on_conn_closed(net_conn *nc)
{
    mqtt_conn *c = (mqtt_conn *)nc;
    conn_report_bytes(c);
    mqtt_session_detach(c);
}

static int conn_held(const net_conn *nc)
{
    const mqtt_conn *c = (const mqtt_conn *)nc;
    return c->held > 0 || c->auth_pending;
}

static void on_conn_free(net_conn *nc)
{
    mqtt_conn *c = (mqtt_conn *)nc;
    mqtt_broker *b = c->broker;
    if (c->blocked && c->blocked->step == PUB_ROUTE)
        mqtt_persist_cancel_wait(b->persist, &c->persist_wait);
    gateway_cancel_wait(b->opt.gateway, &c->ingest_wait);
    conn_registry_remove(b->opt.conns, &c->reg);
    if (ss_list_linked(&c->flush_link))
        ss_list_remove(&c->flush_link);
    ss_list *it, *tmp;
    ss_list_foreach_safe(it, tmp, &c->pubs) {
        pub_free(ss_list_entry(it, mqtt_pub, link));
    }
    for (unsigned i = 0; c->aliases_in && i < c->topic_alias_max_in; i++)
        free(c->aliases_in[i]);
    free(c->aliases_in);
    buf_free(&c->in);
    buf_free(&c->out);
    if (b->opt.meter)
        meter_session_end(b->opt.meter, &c->acct, c->end_reason ? c->end_reason : "closed");
}

void mqtt_conn_hooks(net_conn_set_options *so)
{
    so->conn_size = sizeof(mqtt_conn);
    so->on_read = on_read;
    so->on_error = on_stream_error;
    so->on_drained = on_drained;
    so->on_open = on_conn_open;
    so->on_closed = on_conn_closed;
    so->held = conn_held;
    so->on_free = on_conn_free;
    so->on_stop = on_conn_stop;
}
