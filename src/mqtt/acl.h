/* acl.h — who may publish and subscribe where in their org's topic tree
 * (SPEC §3.6), answered by the shared access layer (aaa/access.h) for the
 * principal the connection signed in as.
 *
 *   devices/<id>/…      a device: its own id only ("devices/me/…" is its
 *                       alias, rewritten here); a key: data:read or manage
 *                       subscribes, data:write publishes (to devices/<id>/data…
 *                       it stores readings as that device)
 *   readings/<device>   the broker publishes every stored batch here; keys
 *                       with data:read subscribe; nobody publishes
 *   anything else       keys: subscribe with data:read, publish with
 *                       data:write; devices: nothing
 *   $SYS/…              the superadmin subscribes (and nowhere else: their
 *                       tree is their own, it holds $SYS/… only); the
 *                       broker alone publishes; no org's wildcard reaches it
 *   any other $…        nobody's ('$' topics are the server's, 5.0 §4.7.2)
 *
 * A filter whose first level is a wildcard reaches all three parts, so
 * all three must be allowed. Every client acts in its own org's tree (a
 * device's, a key's own org): aaa_check_data_own answers without the
 * store. A person other than the superadmin is allowed nothing here.
 *
 * Answers are SS codes the broker words as reason codes: 0; SS_FORBIDDEN
 * (5.0 0x87; 3.1.1 SUBACK 0x80, or a closed connection for PUBLISH).
 * Pure: no store, no state; loop thread or any. */
#ifndef SS_MQTT_ACL_H
#define SS_MQTT_ACL_H

#include <stddef.h>
#include <stdint.h>

#include "aaa/principal.h"
#include "mqtt/codec.h"

/* Room for a topic once "me" is replaced by a device id. */
#define MQTT_ACL_TOPIC_CAP (1024u + SS_ID_LEN + 1u)

/* Who a connection signed in as: what the broker needs of its
 * aaa_principal (664 bytes, most of them a person's records), kept for as
 * long as the connection lasts. */
typedef struct mqtt_who {
    aaa_principal_kind kind;      /* DEVICE or KEY; NONE before sign-in */
    unsigned scopes;              /* aaa_principal_scopes */
    uint8_t superadmin;
    uint8_t disabled;             /* a device's, as the token cache had it */
    char id[SS_ID_LEN + 1];       /* aaa_principal_id */
    char org_id[SS_ID_LEN + 1];   /* aaa_principal_org */
} mqtt_who;

/* Keeps what the broker needs of p. */
void mqtt_who_set(mqtt_who *w, const aaa_principal *p);

typedef enum {
    MQTT_ACL_PUBLISH = 0,
    MQTT_ACL_SUBSCRIBE,
} mqtt_acl_op;

/* The topic name or filter as the org's tree knows it: for a device,
 * "devices/me" as the first two levels becomes "devices/<its id>"; else
 * copied. A shared filter's "$share/<group>/" prefix is kept. OUT out
 * (NUL-terminated), *out_len. 0 or SS_TOO_LARGE (cap too small). */
int mqtt_acl_resolve(const mqtt_who *p, const char *topic, size_t len, char *out,
                     size_t cap, size_t *out_len);

/* May p publish to this topic name / subscribe to this filter (resolved,
 * shared prefix included)? A filter is allowed only when every topic it
 * can match is allowed ("devices/+/data" is not a device's). 0 or
 * SS_FORBIDDEN. */
int mqtt_acl_check(const mqtt_who *p, mqtt_acl_op op, const char *topic, size_t len);

/* A data topic (resolved): "devices/<id>/data" (channel->len = 0) or
 * "devices/<id>/data/<channel>". 1 with the spans, else 0. */
int mqtt_acl_data_topic(const char *topic, size_t len, mqtt_str *device_id, mqtt_str *channel);

#endif
