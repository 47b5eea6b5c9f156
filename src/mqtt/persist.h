/* persist.h — the broker's durable state: persistent sessions, their
 * subscriptions and queued QoS 1/2 messages, inbound QoS 2 state, the
 * will of a session whose connection ended while the will's delay runs,
 * and retained messages, written to the store (store_broker.h) off the
 * loop.
 *
 * The broker records each change as an operation; one writer thread takes
 * every operation pending and commits them in one transaction (group
 * commit, as the ingest queue does for readings), in the order they were
 * recorded, then runs their `done` callbacks on the loop in that order.
 * What the broker acknowledges on the strength of a change (a PUBACK for
 * a message queued for a persistent session, a SUBACK, a retained message
 * set) it acknowledges in `done`, so it survives a `kill -9`.
 *
 * Bounded: operations pending take at most MQTT_PERSIST_PENDING_MAX bytes
 * in all and MQTT_PERSIST_ORG_PENDING_MAX per organisation; past either,
 * an operation is refused with SS_BUSY and the broker holds the client
 * back (stops reading it) until `ready` (mqtt_persist_wait) — so one org
 * that floods waits alone.
 *
 * State is loaded once, before the listeners open (mqtt_persist_load).
 * Loop thread only, apart from the writer thread inside. */
#ifndef SS_MQTT_PERSIST_H
#define SS_MQTT_PERSIST_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/limits.h"
#include "core/list.h"
#include "mqtt/message.h"
#include "store/store.h"

/* Pending operations' bytes (messages' payloads mostly): in all, and per
 * org. A full store or a slow disk makes publishers wait, not the broker
 * grow. */
#define MQTT_PERSIST_PENDING_MAX (64u * 1024u * 1024u)
#define MQTT_PERSIST_ORG_PENDING_MAX (8u * 1024u * 1024u)

typedef struct mqtt_persist mqtt_persist;

/* `status`: 0 committed; SS_FULL (disk full), SS_STORE, SS_NOMEM: not
 * stored (the broker then refuses what depended on it: PUBACK 0x80 / 0x97
 * …). A failed commit fails the operations it held, no others; retrying
 * is the broker's. A change whose org, principal or session the store no
 * longer has (deleted meanwhile: an org, device or key delete takes its
 * broker state in its own transaction) writes nothing and completes with
 * 0: there is nothing left to keep. */
typedef void (*mqtt_persist_done_cb)(void *ctx, int status);

/* Starts the writer thread on a store connection of its own; message ids
 * go on from the highest stored. 0, SS_NOMEM or SS_STORE. The store must
 * outlive the persister. */
int mqtt_persist_start(uv_loop_t *loop, store *st, mqtt_persist **out);
/* Commits what is pending (and what callbacks record meanwhile), runs
 * every callback, stops the thread; `done` runs on the loop after. From
 * the call on, new changes are refused with SS_CLOSED once the last
 * callback ran. */
void mqtt_persist_stop(mqtt_persist *p, void (*done)(void *arg), void *arg);
/* After stop's `done` (NULL is harmless). */
void mqtt_persist_free(mqtt_persist *p);

/* ---- loading ----------------------------------------------------------------- */

typedef struct mqtt_persist_session {
    const char *org_id;
    const char *client_id;
    const char *principal_id;    /* the device or key of org_id that owns it (a
                                  * session of any other principal is not kept) */
    uint32_t expiry_s;           /* session expiry interval; UINT32_MAX: never */
    int64_t disconnected_ms;     /* when its last connection ended (expiry runs from it);
                                  * 0 when written: connected (loaded as ended at the load) */
    /* Its will while the will's delay runs, and when it is due; NULL:
     * none. A put takes its own reference; the loader's is the loader's
     * (take one to keep it). */
    mqtt_msg *will;
    int64_t will_at_ms;
} mqtt_persist_session;

typedef struct mqtt_persist_sub {
    const char *org_id;
    const char *client_id;
    const char *filter;          /* as subscribed, "$share/…" included */
    uint8_t options;
    uint32_t sub_id;
} mqtt_persist_sub;

/* A message queued for, or in flight to, a session. */
typedef enum {
    MQTT_DELIVERY_QUEUED = 0,    /* not sent yet */
    MQTT_DELIVERY_SENT = 1,      /* PUBLISH sent: awaits PUBACK / PUBREC (resent with DUP) */
    MQTT_DELIVERY_RELEASED = 2,  /* QoS 2: PUBREC received, PUBREL sent: awaits PUBCOMP */
} mqtt_delivery_state;

typedef struct mqtt_persist_delivery {
    const char *org_id;
    const char *client_id;
    uint64_t seq;                /* the session's order of deliveries */
    mqtt_msg *msg;               /* the loader's reference: take one to keep it */
    uint8_t qos;                 /* granted */
    uint8_t retain;              /* as delivered (retain-as-published) */
    uint16_t packet_id;          /* 0 while queued */
    mqtt_delivery_state state;
    const uint32_t *sub_ids;
    uint32_t n_sub_ids;
} mqtt_persist_delivery;

typedef struct mqtt_persist_loader {
    void *ctx;
    int (*session)(void *ctx, const mqtt_persist_session *s);
    int (*sub)(void *ctx, const mqtt_persist_sub *s);
    int (*delivery)(void *ctx, const mqtt_persist_delivery *d);  /* in seq order per session */
    /* Inbound QoS 2: PUBREC sent for packet_id, PUBREL not yet received. */
    int (*inbound_qos2)(void *ctx, const char *org_id, const char *client_id, uint16_t packet_id);
    int (*retained)(void *ctx, mqtt_msg *m);                    /* the loader's reference */
} mqtt_persist_loader;

/* Calls the loader for everything stored: sessions first, then their
 * subscriptions, deliveries and inbound QoS 2 ids, then retained
 * messages. Each stored message is one mqtt_msg (its id set), however
 * many deliveries and retained entries point at it. A callback returning
 * nonzero stops the load with that code. Sessions whose expiry passed
 * while the server was down (now_ms), and retained messages whose message
 * expiry did, are deleted instead of loaded (on a full disk only left
 * out) — but a session that still holds a will is loaded, expired as it
 * is: its end, and so its will, is the broker's to carry out. On the
 * calling thread, before the listeners open. 0, a callback's code,
 * SS_STORE or SS_NOMEM. */
int mqtt_persist_load(mqtt_persist *p, const mqtt_persist_loader *l, int64_t now_ms);

/* ---- changes ------------------------------------------------------------------- */
/* Each records one change and returns 0 (done, may be NULL, runs after its
 * commit), SS_BUSY (over a pending bound: nothing recorded), SS_NOMEM,
 * SS_INVAL (a NULL string, an id longer than SS_ID_LEN, more sub ids than
 * MQTT_SUB_IDS_MAX) or SS_CLOSED (stopped).
 * A message (by its id, assigned here on first use) is written once
 * however many deliveries and retained entries point at it, and deleted
 * by the store with the last of them. */

/* The session as it is now: with s->will it keeps that will (a message
 * like a delivery's), without one it lets go of any it had. */
int mqtt_persist_session_put(mqtt_persist *p, const mqtt_persist_session *s,
                             mqtt_persist_done_cb done, void *ctx);
/* The session ends: it, its subscriptions, deliveries and inbound QoS 2
 * ids are deleted. */
int mqtt_persist_session_del(mqtt_persist *p, const char *org_id, const char *client_id,
                             mqtt_persist_done_cb done, void *ctx);
/* Every session the principal (a device or key of org_id, revoked or
 * deleted) owns ends, as by session_del. */
int mqtt_persist_principal_del(mqtt_persist *p, const char *org_id, const char *principal_id,
                               mqtt_persist_done_cb done, void *ctx);
int mqtt_persist_sub_put(mqtt_persist *p, const mqtt_persist_sub *s, mqtt_persist_done_cb done,
                         void *ctx);
int mqtt_persist_sub_del(mqtt_persist *p, const char *org_id, const char *client_id,
                         const char *filter, mqtt_persist_done_cb done, void *ctx);
/* Adds a delivery or changes its state, packet id (by org, client, seq). */
int mqtt_persist_delivery_put(mqtt_persist *p, const mqtt_persist_delivery *d,
                              mqtt_persist_done_cb done, void *ctx);
/* The delivery is complete (PUBACK, PUBCOMP) or dropped. */
int mqtt_persist_delivery_del(mqtt_persist *p, const char *org_id, const char *client_id,
                              uint64_t seq, mqtt_persist_done_cb done, void *ctx);
int mqtt_persist_inbound_put(mqtt_persist *p, const char *org_id, const char *client_id,
                             uint16_t packet_id, mqtt_persist_done_cb done, void *ctx);
int mqtt_persist_inbound_del(mqtt_persist *p, const char *org_id, const char *client_id,
                             uint16_t packet_id, mqtt_persist_done_cb done, void *ctx);
/* m's retain flag set: keeps it as its topic's retained message (an
 * empty payload deletes the topic's). */
int mqtt_persist_retain_put(mqtt_persist *p, mqtt_msg *m, mqtt_persist_done_cb done, void *ctx);

/* Back-pressure: after SS_BUSY (on the same loop turn), w->ready(w) runs
 * on the loop once the org may have room again, once. Waiting twice is
 * waiting once; a waiter zeroed or cancelled may be cancelled again. The
 * waiter lives in the caller's struct. */
typedef struct mqtt_persist_waiter {
    void (*ready)(struct mqtt_persist_waiter *w);
    void *data;
    char org_id[SS_ID_LEN + 1];
    /* Private. */
    ss_list link;
} mqtt_persist_waiter;
void mqtt_persist_wait(mqtt_persist *p, mqtt_persist_waiter *w);
void mqtt_persist_cancel_wait(mqtt_persist *p, mqtt_persist_waiter *w);

#endif
