/* session.h — a broker session and the messages owed to its client, as
 * session.c keeps them and deliver.c sends them. Only those two files
 * include it; the rest of the broker sees a session through
 * broker_internal.h.
 *
 * A session holds its subscriptions, its will, its inbound QoS 2 packet
 * ids and two lists of deliveries (in `out`, made with the first one):
 * `queue`, not sent yet, and `in_flight`, sent and not yet acknowledged
 * (QoS 1 and 2), both in the session's order. Those of QoS 1 and 2 are bounded by SS_MQTT_SESSION_QUEUE_MAX
 * messages and SS_MQTT_SESSION_QUEUE_BYTES_MAX bytes; QoS 0 is queued only
 * while its client is connected and behind in reading, within
 * SS_MQTT_QOS0_QUEUE_BYTES_MAX, and never stored. A session whose expiry
 * interval is not 0 is `stored`: every change to it is recorded in the
 * persister (persist.h) as well. Loop thread only. */
#ifndef SS_MQTT_SESSION_H
#define SS_MQTT_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mqtt/broker_internal.h"

/* A session's key within its org: "<principal id>/<client id>". A client
 * id is its principal's own: another device or key of the org using the
 * same one has a session of its own, and can neither take this one over
 * nor end it. The store keeps sessions under this key as their client id. */
#define MQTT_SESSION_KEY_MAX (SS_ID_LEN + 1u + MQTT_CLIENT_ID_MAX)

typedef struct mqtt_delivery {
    ss_list link;            /* in the session's queue or in_flight */
    mqtt_msg *msg;           /* one reference */
    uint64_t seq;            /* the session's order; the store's key */
    uint16_t packet_id;      /* 0 while queued */
    uint8_t qos;             /* granted: 1 or 2 */
    uint8_t retain;          /* as delivered (retain-as-published) */
    uint8_t state;           /* mqtt_delivery_state */
    uint8_t n_sub_ids;
    uint32_t sub_ids[];      /* n_sub_ids */
} mqtt_delivery;

/* A session's deliveries, made with its first one: a session nothing was
 * ever delivered to (an idle device's) holds none of this. */
typedef struct mqtt_session_out {
    ss_list queue;           /* not sent yet */
    ss_list in_flight;       /* sent, not yet acknowledged */
    size_t bytes_qos0;       /* what the QoS 0 deliveries hold, themselves included */
    size_t bytes;            /* of QoS 1/2 deliveries: mqtt_msg_size */
    int64_t stall_mark_ms;   /* overflowed while connected: since when its */
    uint64_t stall_mark_bytes; /* bytes its socket had taken then, */
    size_t stall_dropped;    /* and the bytes dropped for it meanwhile */
    unsigned n_qos0;         /* queued deliveries of QoS 0 (connected only) */
    uint16_t n_queued;
    uint16_t n_in_flight;
    uint16_t next_packet_id;
} mqtt_session_out;

typedef struct mqtt_session_sub {
    ss_list link;            /* in the session's subs */
    uint8_t options;
    uint32_t sub_id;
    uint16_t len;
    char filter[];           /* as subscribed, "$share/…" included; NUL-terminated */
} mqtt_session_sub;

struct mqtt_session {
    mqtt_broker *broker;
    mqtt_session *next;      /* in its hash bucket */
    uint64_t hash;
    uint64_t serial;         /* no-local: the origin of what its clients publish */
    mqtt_conn *conn;         /* NULL while offline */
    /* Its will, while its connection lives or its delay runs. */
    mqtt_msg *will;
    int64_t will_at_ms;      /* 0: not due (online, or none) */
    int64_t expire_at_ms;    /* 0: online, or never */
    ss_list subs;            /* subscriptions */
    mqtt_session_out *out;   /* deliveries: NULL until the first (deliver.c) */
    uint64_t next_seq;
    uint16_t *qos2_in;       /* inbound QoS 2: PUBREC sent, PUBREL awaited */
    uint64_t route_gen;      /* mqtt_route's merge of one message's subscriptions (deliver.c) */
    uint32_t expiry_s;       /* UINT32_MAX: never */
    uint32_t will_delay_s;
    uint32_t heap_idx;       /* in the deadline heap; UINT32_MAX: not in it */
    uint32_t dropped;        /* deliveries lost to the queue bound (its log's pace) */
    unsigned route_idx;
    /* Counts bounded well below 65,536 (the static asserts in session.c). */
    uint16_t n_subs;
    uint16_t n_qos2_in;
    uint16_t cap_qos2_in;
    uint8_t stored;          /* recorded in the persister */
    uint8_t resend;          /* in_flight goes again (DUP) at the next resume */
    char org_id[SS_ID_LEN + 1];
    /* The session key (above), NUL-terminated, as long as it is: an idle
     * connection's session holds no room for the longest. Its principal
     * is the part before the first '/' (mqtt_session_principal). */
    char client_id[];
};

/* The session's principal (its key's first part). OUT id. */
void mqtt_session_principal(const mqtt_session *s, char id[SS_ID_LEN + 1]);

/* session.c's table: sessions by (org, client id), their deadlines (will
 * delay, expiry) in a heap under one timer. */
typedef struct mqtt_sessions {
    mqtt_session **buckets;
    size_t n_buckets;        /* a power of two */
    size_t count;
    uint8_t hash_key[16];    /* client ids are the client's choice: a keyed hash */
    mqtt_session **heap;
    size_t heap_len;
    size_t heap_cap;
    uv_timer_t timer;
    unsigned timer_init : 1;
    unsigned stopped : 1;    /* mqtt_sessions_stop ran: no will, no timer */
    struct mqtt_owner **owners;  /* stored sessions per principal, by hash_id */
    size_t n_owner_buckets;  /* a power of two */
    size_t n_owners;
    uint64_t route_gen;      /* deliver.c: one per mqtt_route */
    uint64_t dropped;        /* deliveries lost to queue bounds, all sessions */
    size_t qos0_bytes;       /* QoS 0 waiting in every session's queue (their cost) */
} mqtt_sessions;

static inline mqtt_sessions *mqtt_sessions_of(const mqtt_broker *b)
{
    return (mqtt_sessions *)b->sessions;
}

/* ---- session.c and session_subs.c, for each other ------------------------------------------ */

/* Logs a change the persister refused (the session goes on in memory). */
void mqtt_session_persist_failed(const char *what, int rc);
/* The session's subscription to exactly this filter, or NULL. */
mqtt_session_sub *mqtt_session_sub_find(mqtt_session *s, const char *filter, size_t len);
/* Adds or replaces the session's subscription in its list and the org's
 * index (not the store). OUT existed. 0 or SS_NOMEM. */
int mqtt_session_sub_set(mqtt_session *s, const char *filter, size_t len, uint8_t options,
                         uint32_t sub_id, int *existed);
/* Records the subscription in the store (a stored session only). */
void mqtt_session_record_sub(mqtt_session *s, const mqtt_session_sub *sub);
/* Every subscription of the session leaves its list and the index. */
void mqtt_session_subs_forget(mqtt_session *s);
/* Inbound QoS 2 ids: the index of packet_id or -1; push: 0, SS_QUOTA
 * (SS_MQTT_RECEIVE_MAX held) or SS_NOMEM. */
int mqtt_session_qos2_find(const mqtt_session *s, uint16_t packet_id);
int mqtt_session_qos2_push(mqtt_session *s, uint16_t packet_id);

/* ---- deliver.c, for route.c ------------------------------------------------------------- */

/* QoS 0 to the session: sent at once to a connected client that reads,
 * queued while it is behind, dropped for an offline session. */
void mqtt_deliver_qos0(mqtt_session *s, mqtt_msg *m, uint8_t retain, const uint32_t *ids,
                       unsigned n);
/* Queues a delivery (`seq` 0: the session's next; a QoS 1/2 one already
 * recorded in the store when `recorded`), keeps the queue's bounds and
 * sends what the window and the socket allow. */
void mqtt_deliver_enqueue(mqtt_session *s, mqtt_msg *m, uint8_t qos, uint8_t retain,
                          const uint32_t *ids, unsigned n, uint64_t seq, int recorded);

/* ---- deliver.c, for session.c ---------------------------------------------------- */

/* Queues (QoS 1/2) or sends (QoS 0) one message to one session, as a
 * retained message for a new subscription or a restored will would be:
 * qos granted, retain as delivered, up to one subscription id (0: none).
 * Recorded in the store for a stored session. */
void mqtt_deliver_one(mqtt_session *s, mqtt_msg *m, uint8_t qos, uint8_t retain,
                      uint32_t sub_id);
/* A delivery as the store had it (the loader): queued or in flight. 0 or
 * SS_NOMEM. */
int mqtt_deliver_restore(mqtt_session *s, const mqtt_persist_delivery *d);
/* The session's client went away: queued QoS 0 deliveries go. */
void mqtt_deliver_offline(mqtt_session *s);
/* Frees every delivery of the session (the store's copies go with the
 * session's own record, or were never there). */
void mqtt_deliver_clear(mqtt_session *s);
/* Records every delivery of the session in the store (a session that
 * becomes stored). */
void mqtt_deliver_store_all(mqtt_session *s);

#endif
