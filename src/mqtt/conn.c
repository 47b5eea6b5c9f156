/* conn.c — one MQTT client connection (SPEC §3.6): bytes in, packets out,
 * keep-alive, the packets' dispatch, DISCONNECT, revocation, accounting,
 * the stop. CONNECT is connect.c's, an inbound PUBLISH publish.c's,
 * SUBSCRIBE / UNSUBSCRIBE subscribe.c's.
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
 * Writing: packets are encoded into c->out; the broker hands every
 * connection's out to its stream once per loop turn (broker.c). A client
 * that lets SS_MQTT_UNSENT_MAX pile up unread is a stalled reader and is
 * closed.
 *
 * Lifetime: the connection set frees the connection once its handles are
 * closed and nothing holds it (c->held: a commit or route of one of its
 * PUBLISHes still to report back; an API key on the worker pool). */
#include "mqtt/conn_internal.h"

#include "core/err.h"
#include "core/log.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

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

static void on_timer(uv_timer_t *t);
static void on_revoked(conn_reg_entry *e);

/* ---- state ------------------------------------------------------------------ */

/* Closed now or closing after its last bytes: nothing more is read,
 * routed or answered. */
int mqtt_conn_ended(const mqtt_conn *c)
{
    return c->base.closing || c->base.ending;
}

const char *mqtt_conn_org(const mqtt_conn *c)
{
    return c->who.org_id;
}

/* May the next packet of the input be handled now? */
static int conn_can_process(const mqtt_conn *c)
{
    if (mqtt_conn_ended(c) || c->blocked || c->stopping || c->state == MQTT_CONN_AUTHENTICATING ||
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
    if (mqtt_conn_ended(c))
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
    metrics_stream_bytes(b->opt.metrics, metrics_protocol_parse(mqtt_conn_protocol(c)),
                         &c->bytes_reported, in, out);
    if (!b->opt.meter || !c->acct.open)
        return;
    meter_bytes(b->opt.meter, &c->acct, mqtt_conn_org(c), mqtt_conn_protocol(c), in - c->acct_in,
                out - c->acct_out);
    c->acct_in = in;
    c->acct_out = out;
}

/* ---- writing -------------------------------------------------------------------- */

size_t mqtt_conn_unsent(const mqtt_conn *c)
{
    return c->out.len + c->base.stream.write_pending;
}

void mqtt_conn_close_now(mqtt_conn *c, const char *why)
{
    if (mqtt_conn_ended(c))
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
    if (c->out.len == 0 || mqtt_conn_ended(c))
        return;
    int rc = net_stream_write(&c->base.stream, c->out.data, c->out.len);
    /* Freed, not kept: an idle connection holds no output buffer. */
    buf_free(&c->out);
    conn_report_bytes(c);
    if (rc) {
        log_debug(CONN_LOG, "writing to %s: %s", mqtt_conn_peer(c), ss_strerror(rc));
        mqtt_conn_close_now(c, rc == SS_CLOSED ? "closed" : "error");
        return;
    }
    /* What waited in c->out counted as unsent; the socket took it all at
     * once, so no drain will be reported: the session may send more now
     * (what it held back while this turn's output looked unread). */
    if (c->base.stream.write_pending == 0 && c->state == MQTT_CONN_ACTIVE)
        mqtt_deliver_resume(c);
}

/* Closes once what is queued is written, or after SS_CLOSE_LINGER_MS: a
 * peer that stopped reading cannot hold it open. */
void mqtt_conn_close_after_write(mqtt_conn *c)
{
    if (mqtt_conn_ended(c))
        return;
    c->state = MQTT_CONN_CLOSING;
    conn_registry_remove(c->broker->opt.conns, &c->reg);
    mqtt_conn_flush(c);
    if (!mqtt_conn_ended(c))
        net_conn_close_after_write(&c->base, SS_CLOSE_LINGER_MS, 0);
}

/* ---- reason strings (5.0) --------------------------------------------------------- */

/* The short text a refusal carries: what the client did or what the
 * server cannot do now, in the client's terms; never whose things, never
 * a secret. NULL: nothing to add (0x84 too: a client of a level we do not
 * speak need not read 5.0 properties). */
static const char *conn_reason_text(uint8_t r)
{
    switch (r) {
    case MQTT_RC_UNSPECIFIED: return "not done: the server cannot take it now, try again";
    case MQTT_RC_MALFORMED_PACKET: return "malformed packet";
    case MQTT_RC_PROTOCOL_ERROR: return "protocol error";
    case MQTT_RC_CLIENTID_NOT_VALID: return "client identifier not accepted";
    case MQTT_RC_BAD_USERNAME_OR_PASSWORD:
    case MQTT_RC_NOT_AUTHORIZED: return "not authorized";
    case MQTT_RC_SERVER_UNAVAILABLE: return "server unavailable, try again later";
    case MQTT_RC_SERVER_BUSY: return "server busy, try again later";
    case MQTT_RC_SERVER_SHUTTING_DOWN: return "server shutting down";
    case MQTT_RC_BAD_AUTHENTICATION_METHOD:
        return "no authentication methods: the password is a device token or API key";
    case MQTT_RC_KEEP_ALIVE_TIMEOUT: return "nothing received for 1.5 keep-alives";
    case MQTT_RC_SESSION_TAKEN_OVER: return "another connection took the session over";
    case MQTT_RC_TOPIC_FILTER_INVALID: return "topic filter not valid";
    case MQTT_RC_TOPIC_NAME_INVALID: return "topic name not valid";
    case MQTT_RC_PACKET_ID_NOT_FOUND: return "packet identifier not known";
    case MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED: return "more QoS 1 and 2 PUBLISHes in flight than allowed";
    case MQTT_RC_TOPIC_ALIAS_INVALID: return "topic alias not valid";
    case MQTT_RC_PACKET_TOO_LARGE: return "packet too large";
    case MQTT_RC_QUOTA_EXCEEDED: return "quota exceeded";
    case MQTT_RC_ADMINISTRATIVE_ACTION: return "credentials revoked";
    case MQTT_RC_PAYLOAD_FORMAT_INVALID: return "payload not valid for a data topic";
    default: return NULL;
    }
}

/* The reason of a refusal p carries (0: none), and where its properties
 * are. */
static uint8_t conn_refusal(mqtt_packet *p, mqtt_props **props)
{
    switch (p->type) {
    case MQTT_CONNACK: *props = &p->connack.props; return p->connack.reason;
    case MQTT_DISCONNECT: *props = &p->disconnect.props; return p->disconnect.reason;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: *props = &p->ack.props; return p->ack.reason;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        *props = &p->suback.props;
        for (uint32_t i = 0; i < p->suback.count; i++)
            if (p->suback.reasons[i] >= MQTT_RC_UNSPECIFIED)
                return p->suback.reasons[i];
        return 0;
    default: return 0;
    }
}

/* A 5.0 refusal gets a reason string where the client allows one
 * (MQTT-3.1.2-29: on CONNACK and DISCONNECT always, elsewhere unless
 * Request Problem Information was 0). 1 when q (a copy of p) has one. */
static int conn_with_reason_string(const mqtt_conn *c, const mqtt_packet *p, mqtt_packet *q)
{
    if (c->version != MQTT_V5)
        return 0;
    if (!c->request_problem_info && p->type != MQTT_CONNACK && p->type != MQTT_DISCONNECT)
        return 0;
    *q = *p;
    mqtt_props *pr = NULL;
    uint8_t r = conn_refusal(q, &pr);
    if (r < MQTT_RC_UNSPECIFIED || MQTT_HAS(pr, MQTT_PROP_REASON_STRING))
        return 0;
    const char *text = conn_reason_text(r);
    if (!text)
        return 0;
    pr->reason_string = (mqtt_str){text, (uint16_t)strlen(text)};
    MQTT_SET(pr, MQTT_PROP_REASON_STRING);
    return 1;
}

/* Encodes p into the output, at `at` (a position in c->out) or at its
 * end (at == SIZE_MAX). */
static int conn_queue_at(mqtt_conn *c, const mqtt_packet *p, size_t at)
{
    if (mqtt_conn_ended(c))
        return SS_CLOSED;
    size_t size = mqtt_encoded_size(p, c->version);
    if (size > c->max_packet_out)
        return SS_TOO_LARGE;
    if (mqtt_conn_unsent(c) + size > SS_MQTT_UNSENT_MAX) {
        log_info(CONN_LOG, "%s does not read what it is sent; closing", mqtt_conn_peer(c));
        mqtt_conn_close_now(c, "error");
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
        log_warn(CONN_LOG, "cannot send to %s: %s; closing", mqtt_conn_peer(c), ss_strerror(rc));
        mqtt_conn_close_now(c, "error");
        return rc;
    }
    if (p->type == MQTT_PUBLISH)
        c->broker->msgs_out++;
    mqtt_broker_flush_later(c->broker, c);
    return SS_OK;
}

/* A reason string never makes the packet too large for the client
 * (MQTT-3.2.2-19 and the like): then it goes without. */
int mqtt_conn_queue_at(mqtt_conn *c, const mqtt_packet *p, size_t at)
{
    mqtt_packet q;
    if (conn_with_reason_string(c, p, &q)) {
        int rc = conn_queue_at(c, &q, at);
        if (rc != SS_TOO_LARGE)
            return rc;
    }
    return conn_queue_at(c, p, at);
}

int mqtt_conn_queue(mqtt_conn *c, const mqtt_packet *p)
{
    return mqtt_conn_queue_at(c, p, SIZE_MAX);
}

int mqtt_conn_send(mqtt_conn *c, const mqtt_packet *p)
{
    if (c->state != MQTT_CONN_ACTIVE)
        return SS_CLOSED;
    return mqtt_conn_queue(c, p);
}

/* An acknowledgement standing for session records (a persistent
 * session's subscription, an inbound QoS 2 id's end), kept until they are
 * committed. */
typedef struct conn_later_ack {
    mqtt_conn *c;
    mqtt_packet p;           /* suback.reasons point at `reasons` */
    uint8_t reasons[];
} conn_later_ack;

static void on_ack_committed(void *ctx, int status)
{
    conn_later_ack *l = ctx;
    mqtt_conn *c = l->c;
    (void)status;  /* a failed commit keeps the change in memory: still answered */
    c->held--;
    if (!mqtt_conn_ended(c))
        mqtt_conn_queue(c, &l->p);
    free(l);
    if (mqtt_conn_ended(c))
        net_conn_release(&c->base);
}

void mqtt_conn_queue_committed(mqtt_conn *c, const mqtt_packet *p)
{
    uint32_t n = p->type == MQTT_SUBACK || p->type == MQTT_UNSUBACK ? p->suback.count : 0;
    conn_later_ack *l = c->session ? malloc(sizeof *l + n) : NULL;
    if (!l) {
        mqtt_conn_queue(c, p);
        return;
    }
    l->c = c;
    l->p = *p;
    if (n > 0) {
        memcpy(l->reasons, p->suback.reasons, n);
        l->p.suback.reasons = l->reasons;
    }
    c->held++;
    if (mqtt_session_committed(c->session, on_ack_committed, l) != SS_OK) {
        /* The persister is full: answered now, as before it waited. */
        c->held--;
        free(l);
        mqtt_conn_queue(c, p);
    }
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

/* text: the reason string, NULL for conn_reason_text's. */
static void conn_disconnect(mqtt_conn *c, uint8_t reason, const char *text)
{
    if (mqtt_conn_ended(c))
        return;
    c->disconnect_reason = reason;
    if (!c->end_reason)
        c->end_reason = disconnect_end_reason(reason);
    log_debug(CONN_LOG, "disconnecting %s (reason 0x%02x)", mqtt_conn_peer(c), reason);
    /* A server DISCONNECT exists in 5.0 only, and only after CONNACK. */
    if (c->version == MQTT_V5 && c->state == MQTT_CONN_ACTIVE) {
        mqtt_packet p = {.type = MQTT_DISCONNECT};
        p.disconnect.reason = reason;
        if (text) {
            p.disconnect.props.reason_string = (mqtt_str){text, (uint16_t)strlen(text)};
            MQTT_SET(&p.disconnect.props, MQTT_PROP_REASON_STRING);
        }
        if (mqtt_conn_queue(c, &p) == SS_TOO_LARGE && text)
            conn_disconnect(c, reason, NULL);
    }
    mqtt_conn_close_after_write(c);
}

void mqtt_conn_disconnect(mqtt_conn *c, uint8_t reason)
{
    conn_disconnect(c, reason, NULL);
}

/* The client broke the protocol (or the rules): 5.0 DISCONNECT with the
 * reason, 3.1.1 closes. */
void mqtt_conn_refuse(mqtt_conn *c, uint8_t reason, const char *what)
{
    log_info(CONN_LOG, "%s: %s (reason 0x%02x); disconnecting", mqtt_conn_peer(c), what, reason);
    if (!c->end_reason)
        c->end_reason = "error";
    /* What broke the protocol says more than the code's generic text. */
    int protocol = reason == MQTT_RC_PROTOCOL_ERROR || reason == MQTT_RC_MALFORMED_PACKET;
    conn_disconnect(c, reason, protocol ? what : NULL);
}

void mqtt_conn_maybe_stop(mqtt_conn *c)
{
    if (c->stopping && !mqtt_conn_ended(c) && ss_list_empty(&c->pubs))
        mqtt_conn_disconnect(c, MQTT_RC_SERVER_SHUTTING_DOWN);
}


/* An answer to one of our PUBLISHes. */
static void conn_ack(mqtt_conn *c, const mqtt_packet *p)
{
    int rc = mqtt_deliver_ack(c, p->type, p->ack.packet_id, p->ack.reason);
    if (rc == SS_NOT_FOUND && p->type == MQTT_PUBREC) {
        mqtt_packet rel = {.type = MQTT_PUBREL};
        rel.ack.packet_id = p->ack.packet_id;
        rel.ack.reason = MQTT_RC_PACKET_ID_NOT_FOUND;
        mqtt_conn_queue(c, &rel);
    }
}


/* ---- DISCONNECT and the other packets -------------------------------------------------- */

static void conn_client_disconnect(mqtt_conn *c, const mqtt_disconnect *d)
{
    /* 5.0: only "disconnect with will message" keeps the will. */
    c->will_suppressed = !(c->version == MQTT_V5 && d->reason == MQTT_RC_DISCONNECT_WITH_WILL);
    if (c->version == MQTT_V5 && MQTT_HAS(&d->props, MQTT_PROP_SESSION_EXPIRY_INTERVAL)) {
        uint32_t e = d->props.session_expiry;
        if (c->expiry_s == 0 && e != 0) {
            mqtt_conn_refuse(c, MQTT_RC_PROTOCOL_ERROR, "DISCONNECT set a session expiry after 0");
            return;
        }
        if (c->session)
            mqtt_session_set_expiry(c, e > SS_MQTT_SESSION_EXPIRY_MAX_S ? SS_MQTT_SESSION_EXPIRY_MAX_S : e);
    }
    if (!c->end_reason)
        c->end_reason = "closed";
    mqtt_conn_close_after_write(c);
}

static void conn_dispatch(mqtt_conn *c, const mqtt_packet *p)
{
    switch (p->type) {
    case MQTT_PUBLISH:
        c->broker->msgs_in++;
        mqtt_publish_in(c, &p->publish);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        conn_ack(c, p);
        break;
    case MQTT_PUBREL:
        mqtt_publish_rel(c, &p->ack);
        break;
    case MQTT_SUBSCRIBE:
        mqtt_subscribe_in(c, p);
        break;
    case MQTT_UNSUBSCRIBE:
        mqtt_unsubscribe_in(c, p);
        break;
    case MQTT_PINGREQ:
        mqtt_conn_queue(c, &(mqtt_packet){.type = MQTT_PINGRESP});
        break;
    case MQTT_DISCONNECT:
        conn_client_disconnect(c, &p->disconnect);
        break;
    default:
        /* A second CONNECT (MQTT-3.1.0-2), AUTH we never asked for, or a
         * packet only a server sends. */
        mqtt_conn_refuse(c, MQTT_RC_PROTOCOL_ERROR, "a packet out of place");
        break;
    }
}

/* A packet the codec refused: its reason to a 5.0 client after CONNACK,
 * a CONNACK for a CONNECT of a level we do not speak, else a close. */
static void conn_bad_packet(mqtt_conn *c, int rc, const mqtt_packet *p)
{
    if (c->state == MQTT_CONN_NEW && rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION) {
        /* The codec read the level it refused: answer in its terms. */
        c->version = p->type == MQTT_CONNECT && p->connect.version == MQTT_V5 ? MQTT_V5 : MQTT_V311;
        mqtt_connect_refuse(c, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, "a protocol level we do not speak");
        return;
    }
    if (c->state == MQTT_CONN_NEW) {
        log_info(CONN_LOG, "%s sent a malformed first packet (reason 0x%02x); closing", mqtt_conn_peer(c), rc);
        mqtt_conn_close_now(c, "error");
        return;
    }
    mqtt_conn_refuse(c, (uint8_t)rc, "a malformed packet");
}

/* ---- timers ------------------------------------------------------------------- */

void mqtt_conn_arm_keep_alive(mqtt_conn *c)
{
    if (c->stall_check)
        return;  /* armed again once the check has run */
    if (c->keep_alive_s > 0)
        net_conn_timer_start(&c->base, on_timer, CONN_KEEP_ALIVE_MS(c->keep_alive_s));
    else
        net_conn_timer_stop(&c->base);
}

void mqtt_conn_timer(mqtt_conn *c, uint64_t ms)
{
    net_conn_timer_start(&c->base, on_timer, ms);
}

/* The keep-alive waits meanwhile: the check is due within
 * SS_MQTT_STALL_MS, and grants it afresh. */
void mqtt_conn_stall_check(mqtt_conn *c, uint64_t ms)
{
    if (mqtt_conn_ended(c) || c->state != MQTT_CONN_ACTIVE)
        return;
    c->stall_check = 1;
    net_conn_timer_start(&c->base, on_timer, ms);
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
            if (mqtt_connect_in(c, &p))
                break;
        } else {
            conn_dispatch(c, &p);
        }
        off += total;
    }
    return off;
}

/* Input read into c->in and not yet handled: from c->in_off on. */
static size_t conn_unread(const mqtt_conn *c)
{
    return c->in.len - c->in_off;
}

/* Feeds what waits in c->in. Handled bytes are skipped, not moved: input
 * held back resumes a packet at a time, and moving the rest every time
 * cost more than the packets themselves. The buffer is compacted only
 * once the handled part outweighs the rest (so every byte moves at most
 * about once), and before CONNECT (connect.c reads it from the start). */
static void conn_drain_in(mqtt_conn *c)
{
    size_t used = conn_feed(c, (const uint8_t *)c->in.data + c->in_off, conn_unread(c));
    if (mqtt_conn_ended(c))
        return;
    c->in_off += used;
    if (conn_unread(c) == 0) {
        c->in_off = 0;
        if (c->in.cap > CONN_IN_KEEP)
            buf_free(&c->in);
        else
            buf_reset(&c->in);
    } else if (c->in_off >= conn_unread(c) || c->state != MQTT_CONN_ACTIVE) {
        buf_consume(&c->in, c->in_off);
        c->in_off = 0;
    }
}

/* Something that held the input back has gone: go on with it. Never
 * called while the input is being fed (only from callbacks of the loop). */
void mqtt_conn_continue(mqtt_conn *c)
{
    if (mqtt_conn_ended(c))
        return;
    if (conn_unread(c) > 0 && conn_can_process(c))
        conn_drain_in(c);
    conn_backpressure(c);
}

static void on_read(net_stream *st, const char *data, size_t len)
{
    mqtt_conn *c = (mqtt_conn *)st;
    if (mqtt_conn_ended(c))
        return;
    if (conn_unread(c) == 0) {
        /* The usual case: whole packets parsed in place, no copy. */
        size_t used = conn_feed(c, (const uint8_t *)data, len);
        if (!mqtt_conn_ended(c) && used < len && buf_append(&c->in, data + used, len - used)) {
            mqtt_conn_close_now(c, "error");
            return;
        }
    } else {
        if (buf_append(&c->in, data, len)) {
            mqtt_conn_close_now(c, "error");
            return;
        }
        conn_drain_in(c);
    }
    if (mqtt_conn_ended(c))
        return;
    if (c->state == MQTT_CONN_ACTIVE)
        mqtt_conn_arm_keep_alive(c);
    conn_backpressure(c);
}

static void on_timer(uv_timer_t *t)
{
    mqtt_conn *c = t->data;
    if (c->state == MQTT_CONN_CLOSING) {
        mqtt_connect_refused_due(c);  /* a refusal held back is due */
        return;
    }
    if (c->state == MQTT_CONN_NEW || c->state == MQTT_CONN_AUTHENTICATING) {
        log_info(CONN_LOG, "%s sent no CONNECT within %" PRIu64 " ms; closing", mqtt_conn_peer(c),
                 c->broker->opt.connect_timeout_ms);
        mqtt_conn_close_now(c, "timeout");
        return;
    }
    if (c->stall_check) {
        c->stall_check = 0;
        mqtt_deliver_stall_check(c);
        if (!mqtt_conn_ended(c))
            mqtt_conn_arm_keep_alive(c);
        return;
    }
    if (c->read_paused) {
        /* Its bytes wait for us, not the other way round. */
        mqtt_conn_arm_keep_alive(c);
        return;
    }
    log_debug(CONN_LOG, "%s sent nothing for 1.5 keep-alives; closing", mqtt_conn_peer(c));
    mqtt_conn_disconnect(c, MQTT_RC_KEEP_ALIVE_TIMEOUT);
}

static void on_stream_error(net_stream *st, int err)
{
    mqtt_conn *c = (mqtt_conn *)st;
    if (err != SS_CLOSED)
        log_debug(CONN_LOG, "connection from %s: %s", mqtt_conn_peer(c), ss_strerror(err));
    mqtt_conn_close_now(c, err == SS_CLOSED ? "closed" : "error");
}

/* The client has read what we wrote: its session may send more. */
static void on_drained(net_stream *st)
{
    mqtt_conn *c = (mqtt_conn *)st;
    if (c->state == MQTT_CONN_ACTIVE && !mqtt_conn_ended(c))
        mqtt_deliver_resume(c);
}

/* ---- revocation, stop, lifetime --------------------------------------------------- */

static void on_revoked(conn_reg_entry *e)
{
    mqtt_conn *c = e->data;
    log_info(CONN_LOG, "%s %s: revoked; disconnecting the client at %s",
             c->who.kind == AAA_PRINCIPAL_PERSON   ? "superadmin"
             : c->who.kind == AAA_PRINCIPAL_DEVICE ? "device" : "key",
             c->who.id, mqtt_conn_peer(c));
    c->end_reason = "revoked";
    mqtt_sessions_drop_principal(c->broker, c->who.id);
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
        mqtt_conn_close_now(c, NULL);
        return;
    }
    conn_backpressure(c);
    mqtt_conn_maybe_stop(c);
}

static void on_conn_open(net_conn *nc)
{
    mqtt_conn *c = (mqtt_conn *)nc;
    c->broker = net_conn_ctx(nc);
    c->tls = c->base.stream.ssl != NULL;
    c->max_packet_out = UINT32_MAX;
    ss_list_init(&c->flush_link);
    c->reg.on_revoked = on_revoked;
    c->reg.data = c;
    mqtt_publish_setup(c);
    net_stream_peer(&c->base.stream, c->acct.rec.addr, sizeof c->acct.rec.addr);
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
    mqtt_publish_release(c);
    conn_registry_remove(b->opt.conns, &c->reg);
    if (ss_list_linked(&c->flush_link))
        ss_list_remove(&c->flush_link);
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
