/* broker.h — the MQTT 3.1.1 and 5.0 broker of SPEC §3.6, on the server's
 * loop, with a plaintext and a TLS listener sharing one set of sessions,
 * subscriptions and retained messages.
 *
 * A device signs in with its token as the password, an app with username
 * "apikey" and an API key; each sees its own organisation's topic tree
 * (acl.h). PUBLISH to devices/<id>/data… goes through the ingest gateway
 * like every other protocol and is acknowledged after the commit; every
 * batch stored by any protocol comes back out on readings/<device id>
 * (the fan-out). Persistent sessions, their queued QoS 1/2 messages and
 * retained messages are kept in the store (persist.h). docs/mqtt.md is
 * the device maker's guide, docs/mqtt-conformance.md the statement-by-
 * statement account of both specifications. Loop thread only. */
#ifndef SS_MQTT_BROKER_H
#define SS_MQTT_BROKER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "aaa/conn_registry.h"
#include "aaa/meter.h"
#include "aaa/principal.h"
#include "aaa/quota.h"
#include "aaa/throttle.h"
#include "core/metrics.h"
#include "ingest/fanout.h"
#include "ingest/gateway.h"
#include "ingest/queue.h"
#include "net/stream.h"
#include "store/store.h"

typedef struct mqtt_broker mqtt_broker;

typedef struct mqtt_broker_options {
    store *store;               /* required: API keys (on the worker pool), persistence */
    gateway *gateway;           /* required: device tokens, readings */
    fanout *fanout;             /* required: stored batches to readings/<device> */
    conn_registry *conns;       /* required: revocations disconnect clients */
    quota *quotas;              /* optional: the org tree for keys */
    meter *meter;               /* optional: session records, bytes */
    metrics *metrics;           /* optional */
    throttle *logins;           /* optional: failed sign-ins per address, as for REST */
    net_loop_buffers *bufs;     /* the loop's shared read buffers */
    ingest_queue *queue;        /* optional: its load on $SYS/broker/… */
    aaa_session_policy session_policy;
    uint64_t connect_timeout_ms; /* time to CONNECT; 0: SS_FIRST_MESSAGE_TIMEOUT_MS */
} mqtt_broker_options;

/* Loads the persisted state (sessions, retained messages) and starts the
 * persister. 0, SS_NOMEM, SS_STORE. */
int mqtt_broker_new(uv_loop_t *loop, const mqtt_broker_options *opt, mqtt_broker **out);

/* Starts a listener: name "mqtt" (tls NULL) or "mqtts". OUT bound
 * "HOST:PORT". 0, SS_INVAL (bad address), SS_NOMEM or net_tcp_listen's
 * code (SS_IN_USE …). */
int mqtt_broker_listen(mqtt_broker *b, const char *name, const char *addr, SSL_CTX *tls,
                       char *bound, size_t cap);

/* Stops accepting; each client gets DISCONNECT 0x8B (5.0) once what it has
 * in flight is acknowledged, wills are not sent (the server, not the
 * client, went away), persistent sessions stay in the store. `done` runs
 * once every connection is closed and the persister has committed. */
void mqtt_broker_stop(mqtt_broker *b, void (*done)(void *arg), void *arg);
void mqtt_broker_free(mqtt_broker *b);

/* Connected clients, over both listeners. */
size_t mqtt_broker_connections(const mqtt_broker *b);

#endif
