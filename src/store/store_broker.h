/* store_broker.h — the MQTT broker's durable state: persistent sessions,
 * their subscriptions, the messages queued or in flight to them, inbound
 * QoS 2 packet ids, retained messages, and the will of a session whose
 * connection ended while the will's delay runs, per organisation.
 *
 * Written as batches of changes, each batch one transaction (the broker's
 * group commit, as store_write_batches is the readings'); read back once,
 * at start-up, through the list functions. A message is stored once by its
 * id however many deliveries and retained entries point at it, and
 * deleted in the transaction that removes the last of them.
 *
 * Served by the engine that keeps the accounts (store_engine.h): an org's
 * delete (store_org_delete), a device's (store_device_delete) and an API
 * key's (store_apikey_delete) remove its broker state in their own
 * transaction. Conventions: store_base.h. */
#ifndef SS_STORE_BROKER_H
#define SS_STORE_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "store/store_base.h"

/* Strings below are NUL-terminated; ids are SS_ID_LEN hex characters. */

typedef struct store_broker_session {
    const char *org_id;
    const char *client_id;
    const char *principal_id;  /* the device or API key of org_id that owns it */
    uint32_t expiry_s;         /* session expiry interval; UINT32_MAX: never */
    int64_t disconnected_ms;   /* its last connection's end; 0: connected when written */
    /* Its will while the will's delay runs (the connection ended): the
     * message (a put's msg) and when it is due. 0: none. */
    uint64_t will_msg_id;
    int64_t will_at_ms;
} store_broker_session;

typedef struct store_broker_sub {
    const char *org_id;
    const char *client_id;
    const char *filter;
    uint8_t options;
    uint32_t sub_id;           /* 0: none */
} store_broker_sub;

typedef struct store_broker_message {
    uint64_t id;               /* > 0, chosen by the writer (store_broker_message_id_max) */
    const char *org_id;
    const char *topic;
    const uint8_t *payload;
    size_t payload_len;
    const uint8_t *props;      /* its 5.0 properties, encoded; kept as bytes */
    size_t props_len;
    uint8_t qos;
    uint8_t retain;
    int64_t published_ms;
} store_broker_message;

typedef struct store_broker_delivery {
    const char *org_id;
    const char *client_id;
    uint64_t seq;              /* the session's order of deliveries */
    uint64_t msg_id;
    uint8_t qos;
    uint8_t retain;
    uint16_t packet_id;
    uint8_t state;             /* the broker's; kept as given */
    const uint32_t *sub_ids;
    uint32_t n_sub_ids;        /* at most STORE_BROKER_SUB_IDS_MAX */
} store_broker_delivery;

/* Subscription ids one delivery keeps at most (the broker's bound on
 * those one PUBLISH carries, MQTT_SUB_IDS_MAX). */
#define STORE_BROKER_SUB_IDS_MAX 32u

typedef struct store_broker_inbound {
    const char *org_id;
    const char *client_id;
    uint16_t packet_id;
} store_broker_inbound;

typedef struct store_broker_retained {
    const char *org_id;
    const char *topic;
    uint64_t msg_id;
} store_broker_retained;

typedef enum {
    STORE_BROKER_SESSION_PUT = 0, /* session (and its will's msg): added or replaced */
    STORE_BROKER_SESSION_DEL,     /* session (org, client): it and all that hangs on it */
    STORE_BROKER_SUB_PUT,         /* sub: added or replaced, by (org, client, filter) */
    STORE_BROKER_SUB_DEL,         /* sub (org, client, filter) */
    STORE_BROKER_DELIVERY_PUT,    /* delivery and msg: added, or its state replaced */
    STORE_BROKER_DELIVERY_DEL,    /* delivery (org, client, seq) */
    STORE_BROKER_INBOUND_PUT,     /* inbound */
    STORE_BROKER_INBOUND_DEL,     /* inbound */
    STORE_BROKER_RETAIN_PUT,      /* retained and msg: the topic's retained message */
    STORE_BROKER_RETAIN_DEL,      /* retained (org, topic) */
    STORE_BROKER_PRINCIPAL_DEL,   /* session.principal_id: every session it owns */
} store_broker_change_kind;

typedef struct store_broker_change {
    store_broker_change_kind kind;
    union {
        store_broker_session session;
        store_broker_sub sub;
        store_broker_delivery delivery;
        store_broker_inbound inbound;
        store_broker_retained retained;
    };
    /* DELIVERY_PUT, RETAIN_PUT and a SESSION_PUT with a will: the message
     * pointed at (id equal to the record's msg_id or will_msg_id), written
     * unless it is stored already. */
    const store_broker_message *msg;
} store_broker_change;

/* Applies the n changes in order, in one transaction: all or nothing.
 * A change that belongs to what the store no longer has writes nothing and
 * is no error, so a deleted org's or principal's late changes leave no row
 * behind: a session put whose org or principal is gone (deleted, or the
 * principal not a device or key of that org), a sub, delivery or inbound
 * put whose session is gone, a retained put whose org is gone. A delete of
 * what is not there is no error either. In the same transaction, every
 * message no delivery, no retained entry and no session's will points at
 * any more is deleted (a session put without a will lets go of the one it
 * had).
 * Returns 0 only once the commit is as durable as the store's durability
 * setting promises; SS_FULL when the disk is full; SS_INVAL for a change
 * no engine could keep (an unknown kind, a NULL string, a missing msg,
 * more sub ids than STORE_BROKER_SUB_IDS_MAX, a will without its due
 * time). */
int store_broker_apply(store_conn *c, const store_broker_change *changes, size_t n);

/* The highest message id stored (0: none): a writer's ids go on from it. */
int store_broker_message_id_max(store_conn *c, uint64_t *out);

/* ---- the load, once at start-up ------------------------------------------ */
/* Each list calls cb per row (store_base.h: nonzero stops), ordered as said. */

/* By org, then client id. */
int store_broker_sessions(store_conn *c, int (*cb)(void *ctx, const store_broker_session *s),
                          void *ctx);
/* By org, client id, then filter. */
int store_broker_subs(store_conn *c, int (*cb)(void *ctx, const store_broker_sub *s), void *ctx);
/* By id. */
int store_broker_messages(store_conn *c, int (*cb)(void *ctx, const store_broker_message *m),
                          void *ctx);
/* By org, client id, then seq. */
int store_broker_deliveries(store_conn *c, int (*cb)(void *ctx, const store_broker_delivery *d),
                            void *ctx);
/* By org, client id, then packet id. */
int store_broker_inbound_list(store_conn *c, int (*cb)(void *ctx, const store_broker_inbound *i),
                              void *ctx);
/* By org, then topic. */
int store_broker_retained_list(store_conn *c,
                               int (*cb)(void *ctx, const store_broker_retained *r), void *ctx);

/* ---- the engine's table ---------------------------------------------------- */

/* What the engine that keeps the accounts provides for the broker: one
 * entry per store_broker_* function above, named without the prefix, same
 * arguments (its own connection first) and contract. Its accounts table's
 * org_delete, device_delete and apikey_delete remove the org's or the
 * principal's broker state (sessions and what hangs on them; an org's
 * retained messages) in their own transaction. */
typedef struct store_broker_table {
    int (*apply)(store_engine_conn *c, const store_broker_change *changes, size_t n);
    int (*message_id_max)(store_engine_conn *c, uint64_t *out);
    int (*sessions)(store_engine_conn *c, int (*cb)(void *ctx, const store_broker_session *s),
                    void *ctx);
    int (*subs)(store_engine_conn *c, int (*cb)(void *ctx, const store_broker_sub *s), void *ctx);
    int (*messages)(store_engine_conn *c, int (*cb)(void *ctx, const store_broker_message *m),
                    void *ctx);
    int (*deliveries)(store_engine_conn *c,
                      int (*cb)(void *ctx, const store_broker_delivery *d), void *ctx);
    int (*inbound_list)(store_engine_conn *c, int (*cb)(void *ctx, const store_broker_inbound *i),
                        void *ctx);
    int (*retained_list)(store_engine_conn *c,
                         int (*cb)(void *ctx, const store_broker_retained *r), void *ctx);
} store_broker_table;

#endif
