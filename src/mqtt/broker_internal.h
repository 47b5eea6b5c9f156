/* broker_internal.h — what the broker's own files share; nothing outside
 * src/mqtt/ includes it.
 *
 *   broker.c   the broker struct, listeners, stop, the readings fan-out hook
 *   conn.c     a client connection: bytes in, packets out, keep-alive,
 *              DISCONNECT, revocation, accounting; with connect.c
 *              (CONNECT), publish.c (inbound PUBLISH: readings through the
 *              gateway, every topic routed, answered in order) and
 *              subscribe.c (SUBSCRIBE / UNSUBSCRIBE framing), sharing
 *              conn_internal.h
 *   auth.c     CONNECT's credentials into a principal (device token on the
 *              loop, API key on the worker pool)
 *   session.c  sessions by (principal, client id): attach, takeover,
 *              clean / persistent, expiry, wills, the load; session_subs.c
 *              their subscriptions and inbound QoS 2 ids
 *   route.c    routing a message to the matching sessions
 *   deliver.c  outbound: queues, the in-flight window, QoS 1/2 flows to
 *              the client, redelivery; readings.c readings/<device>
 *   sys.c      the broker's own counts on $SYS/broker/…, in the
 *              superadmin's tree
 *
 * A connection belongs to at most one session and a session to at most
 * one connection at a time. Loop thread only. */
#ifndef SS_MQTT_BROKER_INTERNAL_H
#define SS_MQTT_BROKER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "aaa/conn_registry.h"
#include "aaa/meter.h"
#include "aaa/principal.h"
#include "core/buf.h"
#include "core/limits.h"
#include "core/list.h"
#include "core/metrics.h"
#include "ingest/gateway.h"
#include "ingest/queue.h"
#include "mqtt/acl.h"
#include "mqtt/broker.h"
#include "mqtt/codec.h"
#include "mqtt/message.h"
#include "mqtt/persist.h"
#include "mqtt/retain.h"
#include "mqtt/subs.h"
#include "net/conn_set.h"

/* MQTT 5 §3.1.3.1: servers must take 1..23 characters; we take up to
 * this many bytes of any UTF-8. */
#define MQTT_CLIENT_ID_MAX 128u

typedef struct mqtt_session mqtt_session;
typedef struct mqtt_conn mqtt_conn;

struct mqtt_broker {
    uv_loop_t *loop;
    mqtt_broker_options opt;
    net_conn_set *plain;          /* "mqtt", or NULL */
    net_conn_set *tls;            /* "mqtts", or NULL */
    mqtt_subs *subs;
    mqtt_retain *retain;
    mqtt_persist *persist;
    fanout_sub readings;          /* every stored batch to readings/<device> */
    void *sessions;               /* session.c's table by (org, client id) */
    uint64_t next_serial;         /* sessions' serials (no-local) */
    int stopping;
    void (*stop_done)(void *arg);
    void *stop_arg;
    unsigned stops_pending;
    ss_list flush;                /* connections with packets queued to write */
    uv_check_t flusher;           /* writes them once per loop turn */
    uv_timer_t sys_timer;         /* sys.c: $SYS/broker/… every SS_MQTT_SYS_INTERVAL_MS */
    int64_t started_ms;           /* sys.c: the uptime's start */
    uint64_t msgs_in;             /* PUBLISHes received from clients */
    uint64_t msgs_out;            /* PUBLISHes sent to clients */
    unsigned sign_ins;            /* auth.c: persons' sign-ins on the worker pool */
    uint64_t revocations;         /* auth.c: ids revoked so far, the last ones below */
    char revoked[SS_MQTT_REVOKED_RECENT_MAX][SS_ID_LEN + 1];
};

typedef enum {
    MQTT_CONN_NEW = 0,            /* waiting for CONNECT */
    MQTT_CONN_AUTHENTICATING,     /* an API key on the worker pool */
    MQTT_CONN_ACTIVE,             /* CONNACK 0 sent */
    MQTT_CONN_CLOSING,
} mqtt_conn_state;

struct mqtt_conn {
    net_conn base;                /* first: the connection set's */
    mqtt_broker *broker;
    mqtt_session *session;
    char **aliases_in;            /* topic alias -> topic, topic_alias_max_in entries */
    ss_buf in;                    /* the unread part of a packet that came in pieces */
    conn_reg_entry reg;           /* under the principal's id: revocation */
    /* The session record; its addr is the client's address from the
     * start, also without a meter (mqtt_conn_peer). */
    meter_session acct;
    quota_ref quota;              /* a device's org quota, kept between its PUBLISHes */
    mqtt_who who;                 /* device or key, once authenticated */
    uint8_t state;                /* mqtt_conn_state */
    uint8_t version;              /* 0 until CONNECT, then MQTT_V311 / MQTT_V5 */
    uint8_t request_problem_info; /* 5.0: reason strings allowed beyond CONNACK/DISCONNECT */
    uint8_t disconnect_reason;    /* why the server ends it (5.0 DISCONNECT) */
    unsigned tls : 1;             /* accepted on the TLS listener (mqtt_conn_protocol) */
    unsigned will_suppressed : 1; /* normal DISCONNECT: no will */
    /* conn.c's own from here on. */
    unsigned read_paused : 1;     /* back-pressure: the stream is paused */
    unsigned stopping : 1;        /* the broker stops: DISCONNECT 0x8B once idle */
    unsigned auth_pending : 1;    /* an API key on the worker pool (auth.c) */
    unsigned stall_check : 1;     /* the timer is deliver.c's stall check, not the keep-alive */
    uint16_t keep_alive_s;        /* as granted (server keep-alive) */
    uint16_t receive_max_out;     /* the client's Receive Maximum: our window to it */
    uint16_t topic_alias_max_in;  /* ours, as sent in CONNACK */
    uint32_t max_packet_out;      /* the client's Maximum Packet Size */
    uint32_t expiry_s;            /* the session expiry CONNECT asked for, capped */
    unsigned inflight_in;         /* its QoS 1/2 PUBLISHes not yet acknowledged */
    unsigned held;                /* messages of ours in the ingest queue or persister */
    unsigned pubs_count;          /* of every QoS; bounded (back-pressure) */
    uint32_t in_off;              /* conn.c's: bytes of `in` already handled (one packet at most) */
    ss_buf out;                   /* packets not yet handed to the stream */
    ss_list flush_link;           /* in broker->flush while out is not empty */
    ss_list pubs;                 /* its PUBLISHes not yet answered (struct mqtt_pub) */
    struct mqtt_pub *blocked;     /* the PUBLISH waiting for room (its waiters); reading stops */
    metrics_bytes_mark bytes_reported;
    uint64_t acct_in, acct_out;   /* stream counters already in the meter */
    const char *end_reason;       /* the session record's: "closed" unless set */
};

/* "mqtt" or "mqtts": usage, session records, metrics. */
static inline const char *mqtt_conn_protocol(const mqtt_conn *c)
{
    return c->tls ? "mqtts" : "mqtt";
}

/* The client's address, as its session record keeps it. */
static inline const char *mqtt_conn_peer(const mqtt_conn *c)
{
    return c->acct.rec.addr;
}

/* ---- broker.c ---------------------------------------------------------------- */

/* c has packets in c->out: they are written at the end of this loop turn
 * (once, however many were queued). */
void mqtt_broker_flush_later(mqtt_broker *b, mqtt_conn *c);

/* ---- conn.c ------------------------------------------------------------------ */

/* Encodes and sends p; a packet over the client's Maximum Packet Size is
 * not sent (MQTT-3.1.2-24): SS_TOO_LARGE, and the caller drops what it
 * carried. Past the unsent bound the client is a stalled reader: SS_BUSY,
 * and it is disconnected. 0, SS_TOO_LARGE, SS_BUSY, SS_CLOSED, SS_NOMEM. */
int mqtt_conn_send(mqtt_conn *c, const mqtt_packet *p);
/* Ends the connection with a 5.0 DISCONNECT carrying `reason` (3.1.1:
 * just closes), after what is queued. */
void mqtt_conn_disconnect(mqtt_conn *c, uint8_t reason);
/* Bytes queued for the client and not yet written. */
size_t mqtt_conn_unsent(const mqtt_conn *c);
/* The connection set's hooks and connection size, for a listener. */
void mqtt_conn_hooks(net_conn_set_options *so);
/* deliver.c suspects a stalled reader: mqtt_deliver_stall_check runs in
 * ms (on the connection's timer, the keep-alive's again after it). */
void mqtt_conn_stall_check(mqtt_conn *c, uint64_t ms);
/* Hands what c has queued to the stream (the broker's once-per-turn
 * write; c is off broker->flush already). */
void mqtt_conn_flush(mqtt_conn *c);

/* ---- auth.c ------------------------------------------------------------------ */

/* Status of mqtt_auth_start and of its callback: 0 signed in (c->who
 * set); SS_AUTH refused (nothing said about why);
 * SS_BUSY: SS_MQTT_SIGN_IN_RUNNING_MAX persons' sign-ins are being
 * checked; SS_NOMEM / SS_STORE: the server cannot check now. */
typedef void (*mqtt_auth_cb)(mqtt_conn *c, int status);
/* A device token is checked at once (its status returned, `done` not
 * called); an API key (username "apikey") or a person (an email as the
 * username, a password: the superadmin alone is admitted) goes to the
 * worker pool: MQTT_AUTH_LATER, c->auth_pending set while it is there
 * (the connection is held), and `done` runs on the loop, also when the
 * connection closed meanwhile (then only to let it go). */
#define MQTT_AUTH_LATER 1
int mqtt_auth_start(mqtt_conn *c, const mqtt_connect *cn, mqtt_auth_cb done);
/* Counts a refused sign-in against the peer's address (the login
 * throttle). Returns how long to hold the refusal back: 0 while the
 * address has free failures left, then the throttle's wait, at most
 * SS_MQTT_REFUSED_DELAY_MAX_MS. */
uint64_t mqtt_auth_failed(mqtt_conn *c, const mqtt_connect *cn);
/* A principal or org was revoked (every id the registry revokes): a
 * sign-in on the worker pool meanwhile is refused when it was its own. */
void mqtt_auth_revoked(mqtt_broker *b, const char *id);

/* ---- sys.c ------------------------------------------------------------------- */

/* The superadmin's own tree (a person's org is none): it holds $SYS/…
 * only, and no device's or key's org is ever named so. */
#define MQTT_SYS_TREE ""
/* Publishes the counts now and every SS_MQTT_SYS_INTERVAL_MS after:
 * call once the broker's parts exist. mqtt_sys_stop closes the timer
 * (with the broker's stop). */
void mqtt_sys_start(mqtt_broker *b);
void mqtt_sys_stop(mqtt_broker *b);
/* Publishes the counts now (the superadmin signed in: the retained
 * values a new subscriber gets are current). */
void mqtt_sys_publish(mqtt_broker *b);

/* ---- session.c --------------------------------------------------------------- */

/* Also loads the persisted state (sessions, subscriptions, queues, inbound
 * QoS 2 ids, retained messages) when b->persist is set: call it once
 * b->subs, b->retain and b->persist exist, before the listeners open.
 * 0, SS_NOMEM or SS_STORE. */
int mqtt_sessions_new(mqtt_broker *b);
/* The broker stops: session.c's timer (expiry, will delay) closes; no
 * will is sent after it. */
void mqtt_sessions_stop(mqtt_broker *b);
void mqtt_sessions_free(mqtt_broker *b);

/* Attaches c to the session (org, client id): a live connection on it is
 * taken over (DISCONNECT 0x8E); clean_start drops what it had. expiry_s:
 * 5.0's Session Expiry Interval (3.1.1: 0 for a clean session, UINT32_MAX
 * otherwise). OUT present: session present flag. 0 or SS_NOMEM / SS_BUSY. */
int mqtt_session_attach(mqtt_conn *c, const char *client_id, size_t len, int clean_start,
                        uint32_t expiry_s, int *present);
/* The connection ended: its will is published now or after its delay
 * (unless suppressed), the session ends now or when it expires. */
void mqtt_session_detach(mqtt_conn *c);
/* 5.0 DISCONNECT's Session Expiry Interval (already checked: not from 0
 * to nonzero, MQTT-3.14.2-2; capped). */
void mqtt_session_set_expiry(mqtt_conn *c, uint32_t expiry_s);
/* Sets the will of c's session (m: one reference handed over; NULL none). */
void mqtt_session_set_will(mqtt_conn *c, mqtt_msg *m, uint32_t delay_s);
/* Subscribes c's session to filter (resolved by the ACL) with options and
 * id; sends the matching retained messages as retain handling says.
 * OUT reason: the SUBACK code (granted QoS or a 5.0 failure reason). */
int mqtt_session_subscribe(mqtt_conn *c, const char *filter, size_t len, uint8_t options,
                           uint32_t sub_id, uint8_t *reason);
/* OUT reason: 0x00 or 0x11 (no subscription existed). */
int mqtt_session_unsubscribe(mqtt_conn *c, const char *filter, size_t len, uint8_t *reason);
/* Inbound QoS 2 (PUBREC sent, PUBREL awaited), kept with the session so
 * a retransmitted PUBLISH after a reconnect is not routed twice
 * (MQTT-4.3.3-9). add: 0, SS_EXISTS (already there: answer PUBREC, route
 * nothing), SS_QUOTA (over the window), SS_BUSY (the persister is full:
 * nothing kept, wait with mqtt_persist_wait), SS_NOMEM; `done` as
 * mqtt_route.
 * del: 0 or SS_NOT_FOUND (PUBCOMP 0x92). */
int mqtt_session_inbound_add(mqtt_session *s, uint16_t packet_id, mqtt_persist_done_cb done,
                             void *ctx);
int mqtt_session_inbound_del(mqtt_session *s, uint16_t packet_id);
/* The session's serial (b->next_serial at its creation): what an inbound
 * PUBLISH passes to mqtt_route as origin_serial (no-local). */
uint64_t mqtt_session_serial(const mqtt_session *s);
/* `done` runs once everything recorded so far for the session is in the
 * store (the persister commits in order), at once when the session is not
 * stored: what a SUBACK, UNSUBACK or PUBCOMP of a persistent session
 * waits for to survive a kill -9. 0 (done will run, maybe inside this
 * call), SS_BUSY (the persister is full: mqtt_persist_wait) or SS_NOMEM;
 * done never runs on those. */
int mqtt_session_committed(mqtt_session *s, mqtt_persist_done_cb done, void *ctx);
/* A revoked principal or deleted org: its sessions end (persistent ones
 * too), their connections are disconnected by the caller. */
void mqtt_sessions_drop_principal(mqtt_broker *b, const char *principal_id);

/* ---- deliver.c --------------------------------------------------------------- */

/* Routes a message published in m->org_id (to subscribers, and to the
 * retained store when m->retain): every matching session gets a delivery
 * at min(QoS published, granted). `done` (may be NULL) runs once every
 * delivery queued for a persistent session, and the retained message, is
 * in the store: the publisher's PUBACK / PUBREC waits for it. OUT
 * matched: subscribers found (5.0's 0x10 "no matching subscribers").
 * 0 (done will run, possibly inside this call), SS_BUSY (the persister is
 * full: nothing routed, wait with mqtt_persist_wait), SS_QUOTA (a new
 * retained topic past SS_MQTT_RETAINED_PER_ORG_MAX: nothing routed) or
 * SS_NOMEM; done never runs on those. */
int mqtt_route(mqtt_broker *b, mqtt_msg *m, uint64_t origin_serial, mqtt_persist_done_cb done,
               void *ctx, int *matched);
/* The client acknowledged one of our PUBLISHes: PUBACK, PUBREC, PUBCOMP
 * (type), with its 5.0 reason. 0, or SS_NOT_FOUND for an unknown id
 * (PUBREL/PUBCOMP answer 0x92). */
int mqtt_deliver_ack(mqtt_conn *c, uint8_t type, uint16_t packet_id, uint8_t reason);
/* Sends what the session has queued, as far as the in-flight window and
 * the socket take: after CONNACK (resending in-flight ones with DUP,
 * MQTT-4.4.0-1), after an ack, after the socket drained. */
void mqtt_deliver_resume(mqtt_conn *c);
/* The stalled-reader check mqtt_conn_stall_check asked for is due: the
 * client is disconnected if its socket took nothing meanwhile. */
void mqtt_deliver_stall_check(mqtt_conn *c);
/* The fan-out hook: each stored batch as readings/<device id> messages. */
void mqtt_deliver_readings(fanout_sub *sub, const fanout_batch *batch);

#endif
