/* conn_internal.h — what the files of one client connection share, and
 * nothing else includes: conn.c (bytes in and out, keep-alive, dispatch,
 * DISCONNECT, revocation, accounting, the stop), connect.c (CONNECT),
 * publish.c (inbound PUBLISH and PUBREL), subscribe.c (SUBSCRIBE and
 * UNSUBSCRIBE). Loop thread only. */
#ifndef SS_MQTT_CONN_INTERNAL_H
#define SS_MQTT_CONN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "mqtt/broker_internal.h"

#define CONN_LOG "mqtt"
/* PUBLISHes of every QoS one connection may have unanswered before it is
 * no longer read. QoS 0 ones are outside the Receive Maximum, and a data
 * message of QoS 0 still waits for its commit: a device streaming QoS 0
 * readings keeps this many in the ingest queue (whose per-device share
 * bounds their bytes), enough for one group commit of a fast sender. */
#define CONN_PUBS_MAX (8u * SS_MQTT_RECEIVE_MAX)

/* ---- conn.c ------------------------------------------------------------------- */

/* Closed now or closing after its last bytes: nothing more is read,
 * routed or answered. */
int mqtt_conn_ended(const mqtt_conn *c);
/* The org whose topic tree the client sees (its principal's). */
const char *mqtt_conn_org(const mqtt_conn *c);
/* Encodes p into the output (whatever the state: CONNACK too), at `at` (a
 * position in c->out, for a SUBACK ahead of the retained messages its
 * subscriptions queued) or at its end (SIZE_MAX). Closes a stalled
 * reader (SS_BUSY). 0, SS_CLOSED, SS_TOO_LARGE, SS_BUSY, SS_NOMEM. */
int mqtt_conn_queue_at(mqtt_conn *c, const mqtt_packet *p, size_t at);
int mqtt_conn_queue(mqtt_conn *c, const mqtt_packet *p);
/* Queues p (a SUBACK, UNSUBACK or PUBCOMP: what it says is in the
 * session) once everything recorded for c's session so far is committed,
 * so a kill -9 after the client read it loses nothing it stands for (at
 * once for a clean session; at once too when the persister is full). */
void mqtt_conn_queue_committed(mqtt_conn *c, const mqtt_packet *p);
/* Closes now (dropping what is unsent) / once what is queued is out.
 * why: the session record's end reason unless one is set. */
void mqtt_conn_close_now(mqtt_conn *c, const char *why);
void mqtt_conn_close_after_write(mqtt_conn *c);
/* The client broke the protocol or the rules: 5.0 DISCONNECT with the
 * reason, 3.1.1 closes; logged with `what`. */
void mqtt_conn_refuse(mqtt_conn *c, uint8_t reason, const char *what);
/* Something that held the input back has gone: the input goes on. Only
 * from the loop's callbacks, never while the input is being read. */
void mqtt_conn_continue(mqtt_conn *c);
/* The broker stops and the client's PUBLISHes are answered: DISCONNECT
 * 0x8B. */
void mqtt_conn_maybe_stop(mqtt_conn *c);
/* The keep-alive granted, from now; mqtt_conn_timer: on_timer after ms
 * (a refusal held back, state MQTT_CONN_CLOSING). */
void mqtt_conn_arm_keep_alive(mqtt_conn *c);
void mqtt_conn_timer(mqtt_conn *c, uint64_t ms);

/* ---- connect.c ----------------------------------------------------------------- */

/* The first packet. 1 when it must stay in the input (an API key is being
 * checked: it is read again once the check is done), else 0. */
int mqtt_connect_in(mqtt_conn *c, const mqtt_packet *p);
/* CONNACK with a refusal (5.0 reason, said in 3.1.1's terms there), then
 * the close. */
void mqtt_connect_refuse(mqtt_conn *c, uint8_t reason, const char *why);
/* A refusal held back for an address that keeps failing is due. */
void mqtt_connect_refused_due(mqtt_conn *c);

/* ---- publish.c ------------------------------------------------------------------ */

void mqtt_publish_in(mqtt_conn *c, const mqtt_publish *pb);
void mqtt_publish_rel(mqtt_conn *c, const mqtt_ack *a);
/* The topic as the org's tree knows it (out: MQTT_ACL_TOPIC_CAP bytes),
 * and whether the client may publish there: a PUBLISH's or a will's.
 * 0 or the reason to refuse with. */
uint8_t mqtt_publish_resolve(mqtt_conn *c, const mqtt_str *t, char *out, size_t *len);
/* At open: the list. At free: the blocked PUBLISH's wait cancelled and the
 * PUBLISHes nobody answers any more freed. */
void mqtt_publish_setup(mqtt_conn *c);
void mqtt_publish_release(mqtt_conn *c);

/* ---- subscribe.c ---------------------------------------------------------------- */

void mqtt_subscribe_in(mqtt_conn *c, const mqtt_packet *p);
void mqtt_unsubscribe_in(mqtt_conn *c, const mqtt_packet *p);

#endif
